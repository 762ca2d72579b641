/* Wire protocols of genfs-sim beside the native one (SPEC 4): replicate's predictions API and
 * fal's queue API. Routing, submit parsing and every answer body are built here from the same
 * tasks, so sim_main.c only moves bytes. Pure: the caller passes the clock and the base URL. */
#ifndef SIM_PROTO_H
#define SIM_PROTO_H

#include "sim_fault.h"
#include "sim_req.h"
#include "sim_task.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

enum sim_protocol { SIM_PROTO_NATIVE, SIM_PROTO_REPLICATE, SIM_PROTO_FAL };

/* "native" | "replicate" | "fal" -> 0, else -1. */
int sim_proto_parse(const char *s, enum sim_protocol *out);
const char *sim_proto_name(enum sim_protocol p);
/* Models this protocol adds to the built-in ones, as a --profile document (NULL: none). */
const char *sim_proto_models_profile(enum sim_protocol p);
/* The Authorization scheme, with its trailing space: "Bearer " or "Key " (fal). */
const char *sim_proto_auth_scheme(enum sim_protocol p);

/* Classifies method + path for protocol p. /media/ and /_sim/ are the same in every protocol;
 * the API routes fill model (empty for replicate's status, which names no model) and task_id. */
void sim_proto_route(enum sim_protocol p, const char *method, const char *path,
                     struct sim_route_info *out);

/* Parses a submit body of protocol p. fal_webhook is fal's ?fal_webhook= (NULL when absent;
 * ignored by the others). Returns 0, or the HTTP code (422) with a message naming the field. */
int sim_proto_submit_parse(enum sim_protocol p, const char *body, size_t len,
                           const char *fal_webhook, struct sim_submit *out, char *msg,
                           size_t msglen);

/* Task id for the counter-th task: native "tk" + 20 hex, replicate 26 characters of lowercase
 * base32, fal a UUID (version 4 layout). out holds SIM_TASK_ID_MAX + 1 bytes. */
void sim_proto_task_id(enum sim_protocol p, uint64_t seed, uint64_t counter, char *out);

/* Unix ms as ISO 8601 UTC with microseconds, "2024-05-01T12:00:00.123000Z". */
#define SIM_PROTO_ISO_MAX 48
void sim_proto_iso8601(long long ms, char out[SIM_PROTO_ISO_MAX]);

/* Answer to an accepted submit (replicate: HTTP 201 and the prediction; fal: 200 and the queue
 * handle; native: 200 and the envelope with data.taskId). *status gets the HTTP status. */
cJSON *sim_proto_submit_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base, int *status);
/* Answer to a status request at now_ms (always HTTP 200). */
cJSON *sim_proto_status_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base);
/* fal's response_url: 200 result, 400 still in progress, 422 failed. */
cJSON *sim_proto_result_json(const struct sim_task *t, long long now_ms, const char *base,
                             int *status);
/* Body POSTed to the task's callback/webhook when it ends (malloc'd text). */
char *sim_proto_callback_body(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                              const char *base);
/* Error body of protocol p: native {"code","msg","data":null}, replicate
 * {"title","detail","status"}, fal {"detail"}. */
cJSON *sim_proto_error_json(enum sim_protocol p, int status, const char *msg);
/* A broken 200 body of the given kind (malloc'd). route says which answer it imitates; for a
 * submit it never holds a usable task id. id is the task asked about (status/result). */
char *sim_proto_malformed_body(enum sim_protocol p, enum sim_malformed_kind kind,
                               enum sim_route route, const char *id);

#endif
