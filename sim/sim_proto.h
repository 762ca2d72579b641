/* The wire protocols of genfs-sim: APIXO's task API (the default), kie.ai's Market API,
 * replicate's predictions API and fal's queue API. Routing, submit parsing and every answer body
 * are built here from the same tasks, so sim_main.c only moves bytes. Pure: the caller passes the
 * clock and the base URL. One file per protocol (sim_apixo.c, sim_kie.c, sim_replicate.c,
 * sim_fal.c); this header is their common face. */
#ifndef SIM_PROTO_H
#define SIM_PROTO_H

#include "sim_fault.h"
#include "sim_model.h"
#include "sim_req.h"
#include "sim_task.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

enum sim_protocol { SIM_PROTO_APIXO, SIM_PROTO_KIE, SIM_PROTO_REPLICATE, SIM_PROTO_FAL };

/* "apixo" | "kie" | "replicate" | "fal" -> 0, else -1. */
int sim_proto_parse(const char *s, enum sim_protocol *out);
const char *sim_proto_name(enum sim_protocol p);
/* Models this protocol adds to the built-in ones, as a --profile document (NULL: none). */
const char *sim_proto_models_profile(enum sim_protocol p);
/* The Authorization scheme, with its trailing space: "Bearer " or "Key " (fal). */
const char *sim_proto_auth_scheme(enum sim_protocol p);

/* Classifies method + path for protocol p. /media/ and /_sim/ are the same in every protocol.
 * task_query is the request's taskId query parameter (APIXO's and kie's status name the task
 * there; NULL when absent, which leaves task_id empty). */
void sim_proto_route(enum sim_protocol p, const char *method, const char *path,
                     const char *task_query, struct sim_route_info *out);

/* Parses a submit of protocol p routed as ri: finds the model (in the path, or in the body for
 * kie and replicate's version submit) and checks the body. fal_webhook is fal's ?fal_webhook=
 * (NULL when absent; ignored by the others). Returns 0, or the code to refuse with (the
 * protocol's own: APIXO 400/404, kie 422, replicate 404/422, fal 404/422) and a message. */
int sim_proto_submit_parse(enum sim_protocol p, const struct sim_models *ms,
                           const struct sim_route_info *ri, const char *body, size_t len,
                           const char *fal_webhook, struct sim_submit *out, char *msg,
                           size_t msglen);

/* Task id for the counter-th task: APIXO "task_" + 20 [a-z0-9], kie 32 hex, replicate 26
 * characters of lowercase base32, fal a UUID (version 4 layout). out holds SIM_TASK_ID_MAX + 1
 * bytes. */
void sim_proto_task_id(enum sim_protocol p, uint64_t seed, uint64_t counter, char *out);

/* The failure a task of protocol p shows when neither sim_fail_code nor sim_fail_msg says
 * (drawn per task from the provider's real failure kinds). loc is fal's validation field or
 * NULL. */
void sim_proto_default_failure(enum sim_protocol p, uint64_t seed, uint64_t seq, const char **code,
                               const char **msg, const char **loc);

/* Unix ms as ISO 8601 UTC with microseconds, "2024-05-01T12:00:00.123000Z". */
#define SIM_PROTO_ISO_MAX 48
void sim_proto_iso8601(long long ms, char out[SIM_PROTO_ISO_MAX]);

/* Whether a status, result or cancel request routed under ri->model may see task t: APIXO's
 * model must be the task's, fal's app id the task's app; kie and replicate name no model. */
int sim_proto_task_visible(enum sim_protocol p, const struct sim_task *t, const char *model);

/* Answer to an accepted submit; *status gets the HTTP status (replicate 201, else 200). */
cJSON *sim_proto_submit_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base, int *status);
/* Answer to a status request at now_ms (always HTTP 200). */
cJSON *sim_proto_status_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base);
/* The same, asked with fal's ?logs=1 (with_logs): the runner's log entries so far in "logs". */
cJSON *sim_proto_status_logs_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                                  const char *base, int with_logs);
/* fal's status stream: the first time after after_ms at which the status it shows may change
 * (a new phase, a log step with with_logs, the end); after the end, after_ms + 1. */
long long sim_fal_stream_next_ms(const struct sim_task *t, long long after_ms, int with_logs);
/* fal's response_url: 200 result, 400 still in progress or cancelled, 422/5xx failed. For a
 * request error *error_type is set to the X-Fal-Error-Type header value (else NULL). */
cJSON *sim_proto_result_json(const struct sim_task *t, long long now_ms, const char *base,
                             int *status, const char **error_type);
/* Answer to a cancel (replicate POST .../cancel, fal PUT .../cancel) once sim_task_cancel ran;
 * canceled says whether it stopped the task (0: it had already ended). */
cJSON *sim_proto_cancel_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base, int canceled, int *status);
/* Body POSTed to the task's callback/webhook when it ends (malloc'd text). */
char *sim_proto_callback_body(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                              const char *base);
/* Error body of protocol p for code (msg NULL: the provider's usual wording for the code).
 * *http gets the HTTP status: the code itself, except kie's own codes, which come inside an
 * HTTP 200. */
cJSON *sim_proto_error_json(enum sim_protocol p, int code, const char *msg, int *http);
/* The answer to a status of a task that does not exist: the code and message (kie: 422
 * "recordInfo is null", else 404). */
int sim_proto_unknown_task(enum sim_protocol p, const char *id, char *msg, size_t msglen);
/* A broken 200 body of the given kind (malloc'd). route says which answer it imitates; for a
 * submit it never holds a usable task id. id is the task asked about (status/result). */
char *sim_proto_malformed_body(enum sim_protocol p, enum sim_malformed_kind kind,
                               enum sim_route route, const char *id);

#endif
