/* Request parsing shared by every protocol of genfs-sim: the /media/ and /_sim/ routes, the
 * sim_* test knobs of an input, and canonical JSON. Pure. */
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
    SIM_ROUTE_RESULT, /* fal: GET {app}/requests/{id}, the result object */
    SIM_ROUTE_CANCEL, /* replicate POST .../cancel, fal PUT .../cancel */
    /* input files (sim_upload.h): task_id holds the upload's id */
    SIM_ROUTE_UPLOAD,       /* replicate POST /v1/files, fal initiate, kie stream upload */
    SIM_ROUTE_UPLOAD_GET,   /* replicate GET /v1/files/{id}: the file object */
    SIM_ROUTE_UPLOAD_PUT,   /* fal: PUT {base}/_upload/{id}, the presigned upload URL */
    SIM_ROUTE_UPLOAD_FILE,  /* GET /files/{id}/{name}: the bytes, without a key */
    SIM_ROUTE_UPLOADS,      /* GET /_sim/uploads: every upload's record */
    SIM_ROUTE_UPLOAD_BYTES, /* GET /_sim/uploads/{id}: the bytes as received */
    SIM_ROUTE_STREAM,       /* fal: GET {app}/requests/{id}/status/stream, server-sent events */
};

struct sim_route_info {
    enum sim_route route;
    /* The model the path names: empty when the body names it (kie, replicate's version
     * submit) or when the path names none (replicate's status); fal's app id for its
     * status, result and cancel. */
    char model[SIM_MODEL_NAME_MAX + 1];
    char task_id[65];
    int deployment; /* replicate: POST /v1/deployments/{owner}/{name}/predictions */
    int media_index;
    char ext[8];
};

/* Classifies a /media/ or /_sim/ path (no query string); anything else is NOT_FOUND. */
void sim_req_route(const char *method, const char *path, struct sim_route_info *out);
/* Whether the request is one of the provider API endpoints (submit, status, result, cancel). */
int sim_req_is_api(enum sim_route r);

enum sim_outcome {
    SIM_OUTCOME_DRAW,
    SIM_OUTCOME_SUCCESS,
    SIM_OUTCOME_FAILED,
    SIM_OUTCOME_CANCELED, /* replicate only */
    SIM_OUTCOME_ABORTED   /* replicate only */
};

#define SIM_OUTPUTS_MAX 8

struct sim_submit {
    cJSON *root; /* owned; free with sim_req_submit_free */
    const cJSON *input;
    const struct sim_model *model; /* the model asked for, once found */
    const char *prompt;            /* NULL: none given (fal then fails the request) */
    int callback;
    const char *callback_url;
    const char *provider;  /* APIXO's routing field, NULL when absent */
    long long duration_ms; /* -1 = draw from the model */
    enum sim_outcome outcome;
    const char *fail_code;
    const char *fail_msg;
    const char *fail_loc; /* fal: a field name for a validation error ({"loc": ["body", F]}) */
    int outputs;          /* 0 = the model's default */
    unsigned long long media_bytes; /* 0 = default size */
    int reject;                     /* an HTTP code the submit answers instead (0 = none) */
};

void sim_req_submit_free(struct sim_submit *s);
/* Checks input.prompt (a non-empty string) and sets out->prompt. Returns 0, or -1 with a message
 * naming the field after prefix ("input." for an input object inside the body, "" for fal). */
int sim_req_prompt_parse(const cJSON *input, const char *prefix, struct sim_submit *out, char *msg,
                         size_t msglen);

/* Which sim_outcome words besides success and failed a protocol admits. */
#define SIM_KNOB_CANCELED 1
#define SIM_KNOB_ABORTED 2

/* Parses the sim_* test knobs of an input object into out (which must have been given its
 * defaults by sim_req_submit_init). Returns 0, or -1 with a message naming the knob. */
int sim_req_knobs_parse(const cJSON *input, const char *prefix, int outcomes,
                        struct sim_submit *out, char *msg, size_t msglen);
/* Zeroes out and sets the defaults (no duration, the model's outputs). */
void sim_req_submit_init(struct sim_submit *out);

/* Canonical JSON (object keys sorted, no spaces), malloc'd; NULL when out of memory. Two inputs
 * that differ only in key order or spacing give the same text. */
char *sim_req_canonical_json(const cJSON *item);

/* Copies len bytes of src into dst with a NUL; -1 if empty or over cap - 1. */
int sim_req_copy(char *dst, size_t cap, const char *src, size_t len);
/* 1 when s (len bytes) is a model id: non-empty segments, single slashes. */
int sim_req_model_ok(const char *s, size_t len);

#endif
