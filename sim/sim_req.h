/* Request parsing for genfs-sim: which endpoint a method+path is, and validation of a submit
 * body. Pure. */
#ifndef SIM_REQ_H
#define SIM_REQ_H

#include "sim_model.h"

#include <cjson/cJSON.h>
#include <stddef.h>

enum sim_route {
    SIM_ROUTE_NOT_FOUND,
    SIM_ROUTE_BAD_METHOD,
    SIM_ROUTE_SUBMIT,
    SIM_ROUTE_STATUS,
    SIM_ROUTE_MEDIA,
    SIM_ROUTE_FIGURES,
    SIM_ROUTE_TASKS,
    SIM_ROUTE_TASK,
    SIM_ROUTE_FAULTS_GET,
    SIM_ROUTE_FAULTS_SET,
    SIM_ROUTE_FAULTS_RESET,
    SIM_ROUTE_RESET,
    SIM_ROUTE_RESULT, /* fal: GET {model}/requests/{id}, the result object */
};

struct sim_route_info {
    enum sim_route route;
    char model[SIM_MODEL_NAME_MAX + 1];
    char task_id[65];
    int media_index;
    char ext[8];
};

/* Classifies method + path (no query string). Over-long model or task id: NOT_FOUND. */
void sim_req_route(const char *method, const char *path, struct sim_route_info *out);
/* Whether the request is one of the provider API endpoints (submit, status, result). */
int sim_req_is_api(enum sim_route r);

enum sim_outcome {
    SIM_OUTCOME_DRAW,
    SIM_OUTCOME_SUCCESS,
    SIM_OUTCOME_FAILED,
    SIM_OUTCOME_CANCELED /* replicate only */
};

#define SIM_OUTPUTS_MAX 8

struct sim_submit {
    cJSON *root; /* owned; free with sim_req_submit_free */
    const cJSON *input;
    const char *prompt;
    int callback;
    const char *callback_url;
    long long duration_ms; /* -1 = draw from the model */
    enum sim_outcome outcome;
    const char *fail_code;
    const char *fail_msg;
    int outputs;
    unsigned long long media_bytes; /* 0 = default size */
    int no_credits;
};

/* Parses and validates a submit body. Returns 0, or the HTTP code to answer (422) with a message
 * naming the field. */
int sim_req_submit_parse(const char *body, size_t len, struct sim_submit *out, char *msg,
                         size_t msglen);
void sim_req_submit_free(struct sim_submit *s);
/* Checks input.prompt and sets out->prompt. prefix names the input object in messages
 * ("input." for native and replicate, "" for fal whose body is the input). */
int sim_req_prompt_parse(const cJSON *input, const char *prefix, struct sim_submit *out, char *msg,
                         size_t msglen);
/* Parses the sim_* test knobs of an input object into out (which must have been zeroed and
 * given its defaults by the caller). allow_canceled admits sim_outcome "canceled". */
int sim_req_knobs_parse(const cJSON *input, const char *prefix, int allow_canceled,
                        struct sim_submit *out, char *msg, size_t msglen);
/* Zeroes out and sets the defaults (no duration, one output). */
void sim_req_submit_init(struct sim_submit *out);

/* Canonical JSON (object keys sorted, no spaces), malloc'd; NULL when out of memory. Two inputs
 * that differ only in key order or spacing give the same text. */
char *sim_req_canonical_json(const cJSON *item);

/* Copies len bytes of src into dst with a NUL; -1 if empty or over cap - 1. */
int sim_req_copy(char *dst, size_t cap, const char *src, size_t len);
/* 1 when s (len bytes) is a model id: non-empty segments, single slashes. */
int sim_req_model_ok(const char *s, size_t len);

#endif
