/* The per-protocol halves of sim_proto.h (sim_apixo.c, sim_kie.c, sim_replicate.c, sim_fal.c)
 * and the helpers they share (sim_proto.c). Internal to the sim's pure library. */
#ifndef SIM_PROTO_IMPL_H
#define SIM_PROTO_IMPL_H

#include "sim_proto.h"

/* ---- shared (sim_proto.c) ---- */

#define SIM_PROTO_HUGE_BODY (5u << 20)

/* snprintf into msg, then return code: the parsers' refusals in one line. */
int sim_proto_refuse(int code, char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int sim_proto_http_url(const char *s);
/* Parses body as a JSON object into out->root; -1 when it is not one. */
int sim_proto_parse_object(const char *body, size_t len, struct sim_submit *out);
/* {"code": code, msg_key: msg}: the head of APIXO's and kie's answers. */
cJSON *sim_proto_envelope(int code, const char *msg_key, const char *msg);
/* "{" head "xxx…" "\"}" of SIM_PROTO_HUGE_BODY bytes (malloc'd). */
char *sim_proto_huge(const char *head);
/* The status's title as APIXO and replicate word it (455 is maintenance); fallback for a 4xx
 * it does not name. */
const char *sim_proto_http_title(int code, const char *fallback);
extern const char sim_proto_html[];
/* One malformed answer: printf forms whose %s is the task id ("" in a submit answer); a NULL
 * submit or result form takes the status one. */
struct sim_malformed_form {
    const char *status, *submit, *result;
};
/* The protocols' tables, by kind: NOT_JSON is sim_proto_html for all, HUGE's status form the head
 * of sim_proto_huge's body. */
extern const struct sim_malformed_form sim_apixo_malformed[SIM_MALFORMED_KINDS];
extern const struct sim_malformed_form sim_kie_malformed[SIM_MALFORMED_KINDS];
extern const struct sim_malformed_form sim_replicate_malformed[SIM_MALFORMED_KINDS];
extern const struct sim_malformed_form sim_fal_malformed[SIM_MALFORMED_KINDS];
/* The two 64-bit words of the counter-th task id of a seed. */
void sim_proto_id_words(uint64_t seed, uint64_t counter, uint64_t *a, uint64_t *b);

/* ---- APIXO (sim_apixo.c) and kie (sim_kie.c): the {code, message|msg, data} task APIs ---- */

void sim_apixo_route(int get, int post, const char *path, const char *task_query,
                     struct sim_route_info *out);
int sim_apixo_submit_parse(const struct sim_models *ms, const struct sim_route_info *ri,
                           const char *body, size_t len, struct sim_submit *out, char *msg,
                           size_t msglen);
cJSON *sim_apixo_submit_json(const struct sim_task *t);
cJSON *sim_apixo_status_json(const struct sim_task *t, long long now_ms, const char *base);
cJSON *sim_apixo_error_json(int code, const char *msg);

void sim_kie_route(int get, int post, const char *path, const char *task_query,
                   struct sim_route_info *out);
int sim_kie_submit_parse(const struct sim_models *ms, const char *body, size_t len,
                         struct sim_submit *out, char *msg, size_t msglen);
cJSON *sim_kie_submit_json(const struct sim_task *t);
cJSON *sim_kie_status_json(const struct sim_task *t, long long now_ms, const char *base);
char *sim_kie_callback_body(const struct sim_task *t, long long now_ms, const char *base);
cJSON *sim_kie_error_json(int code, const char *msg, int *http);

/* ---- replicate (sim_replicate.c) ---- */

void sim_replicate_route(int get, int post, const char *path, struct sim_route_info *out);
int sim_replicate_submit_parse(const struct sim_models *ms, const struct sim_route_info *ri,
                               const char *body, size_t len, struct sim_submit *out, char *msg,
                               size_t msglen);
/* replicate's version id of a model: a stable 64-hex digest of its name. */
void sim_replicate_version(const char *model, char out[65]);
cJSON *sim_replicate_prediction(const struct sim_task *t, long long now_ms, const char *base);
cJSON *sim_replicate_error_json(int code, const char *msg);

/* ---- fal (sim_fal.c) ---- */

void sim_fal_route(int get, int post, int put, const char *path, struct sim_route_info *out);
int sim_fal_submit_parse(const struct sim_models *ms, const struct sim_route_info *ri,
                         const char *body, size_t len, const char *webhook, struct sim_submit *out,
                         char *msg, size_t msglen);
/* The app id of an endpoint id ("fal-ai/flux/dev" -> "fal-ai/flux"; "workflows/o/a/x" ->
 * "workflows/o/a"): what fal's queue URLs are built on. */
void sim_fal_app_id(const char *model, char *out, size_t cap);
cJSON *sim_fal_submit_json(const struct sim_task *t, const char *base);
/* with_logs: ?logs=1 was asked (the entries so far; else logs is null). */
cJSON *sim_fal_status_json(const struct sim_task *t, long long now_ms, const char *base,
                           int with_logs);
cJSON *sim_fal_result_json(const struct sim_task *t, long long now_ms, const char *base,
                           int *status, const char **error_type);
cJSON *sim_fal_cancel_json(int canceled, int *status);
char *sim_fal_callback_body(const struct sim_task *t, long long now_ms, const char *base);
cJSON *sim_fal_error_json(int code, const char *msg);

#endif
