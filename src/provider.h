/* Pure protocol layer: a generic interpreter of provider profiles (JSON data,
 * see docs/providers.md). It builds the HTTP requests of a profile and parses
 * the answers into genfs terms; maps HTTP/envelope codes to errno. */
#ifndef GENFS_PROVIDER_H
#define GENFS_PROVIDER_H

#include "task.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct provider; /* opaque */

struct provider_request {
    const char *method; /* "GET", "POST" or "PUT" (static string) */
    char *url;          /* malloc'd */
    char *body;         /* malloc'd JSON, or an upload's bytes (body_len of them); or NULL */
    size_t body_len;    /* the body's length: an upload's body may hold NUL bytes */
    char *content_type; /* malloc'd Content-Type of the body, NULL for application/json */
    bool no_auth;       /* send without the API key (a presigned upload URL holds its own) */
};

struct provider_error {
    int err;                /* negative errno (SPEC 3 mapping) */
    bool retryable;         /* transient: worth retrying (429, 455, 5xx, malformed) */
    int64_t retry_after_ms; /* from Retry-After, or -1 */
    long code;              /* the refusal's HTTP or in-body code, 0 if none */
    char msg[256];          /* one line: what went wrong */
};

struct provider_submit {
    char *task_id;    /* malloc'd */
    char *status_url; /* malloc'd or NULL: a provider-given URL to poll */
    char *result_url; /* malloc'd or NULL: where the result is fetched once done */
    char *cancel_url; /* malloc'd or NULL: where the task is canceled (cancel.url_field) */
};

/* Outputs of a success: urls[i] is an http(s) URL to fetch or a data: URI to
 * decode (text outputs become data:text/plain URIs); names[i] is the name
 * the provider gave it (an output object's key, safe as a file name) or NULL
 * (files/<i>.ext). */
struct provider_status {
    enum task_state state;
    int progress; /* 0..100, -1 unknown */
    char **urls;  /* malloc'd array of malloc'd */
    char **names; /* n_urls entries, each malloc'd or NULL; NULL when urls is */
    size_t n_urls;
    char *fail_code;                           /* malloc'd or NULL */
    char *fail_msg;                            /* malloc'd or NULL */
    int64_t create_ms, update_ms, complete_ms; /* 0 when absent */
    int64_t cost_ms;                           /* the provider's own run time, 0 if absent */
    char *data_json;   /* the status object as received (compact), malloc'd */
    bool needs_result; /* done: the URLs come from a separate result request */
    /* What the engine shows in MODEL/ID/progress, logs, prompt and input.json; the
     * progress above also comes from the logs (status.progress_logs). */
    int queue_position; /* the task's place in the provider's queue (0: next), -1 unknown */
    char *logs;         /* the provider's logs as this answer holds them, malloc'd or NULL */
    char *input_json;   /* the task's input object as the provider holds it (compact), or NULL */
    char *cancel_url;   /* a provider-given cancel URL on the base URL's origin, or NULL */
};

/* Built-in profiles, generated from the files in profiles/ at build time. */
struct provider_builtin {
    const char *name;
    const char *json;
};
extern const struct provider_builtin provider_builtins[];

/* A profile from JSON text; source names it in messages (a file path or
 * "built-in NAME"). NULL with one line in err naming the bad key. */
struct provider *provider_load_json(const char *text, const char *source, char *err, size_t errlen);
/* A built-in profile by name ("apixo", "kie", "replicate", "fal"), or NULL. */
struct provider *provider_load_builtin(const char *name, char *err, size_t errlen);
/* Overrides the profile's base URL (api_url); a trailing slash is dropped. */
int provider_set_base_url(struct provider *p, const char *base_url);
const char *provider_name(const struct provider *p);
const char *provider_base_url(const struct provider *p); /* NULL if none */
/* How long the provider's result URLs live (profile key result_url_lifetime_s):
 * seconds, -1 for ever, 0 when the profile does not say (assume they expire). */
int64_t provider_url_lifetime_s(const struct provider *p);
/* The header that names an error's type (profile key error_type_header), or NULL. */
const char *provider_error_type_header(const struct provider *p);
/* Whether the profile has a cancel request (profile section cancel); without
 * one, provider_build_cancel answers -EOPNOTSUPP. */
bool provider_can_cancel(const struct provider *p);
/* The default provider's name. */
#define PROVIDER_DEFAULT "apixo"
void provider_free(struct provider *p);

/* The profile's auth header line for curl, e.g. "Authorization: Bearer KEY"
 * (malloc'd); NULL if the key holds control characters. */
char *provider_auth_header(const struct provider *p, const char *key);

void provider_request_clear(struct provider_request *r);
void provider_submit_clear(struct provider_submit *s);
void provider_status_clear(struct provider_status *s);

/* input_json: the input object text; request_json: top-level fields beside
 * the input (a model's request.json, e.g. APIXO's "provider" routing), or
 * NULL; they never replace a field the profile's body sets. callback_url
 * NULL for async. */
int provider_build_submit(const struct provider *p, const char *model, const char *input_json,
                          const char *request_json, const char *callback_url,
                          struct provider_request *out);
/* status_url: from the submit answer, or NULL for the profile's template. */
int provider_build_status(const struct provider *p, const char *model, const char *task_id,
                          const char *status_url, struct provider_request *out);
/* ---- status stream (profile section stream) ---- */

/* How many status streams may be open at once (stream.max_open), 0 when the
 * profile has no stream: its tasks are polled. */
int provider_stream_max(const struct provider *p);
#define PROVIDER_STREAM_MAX_OPEN 100
/* GET of the task's status stream: server-sent events whose data are status
 * objects, each read by provider_parse_status as a 200 answer. -EOPNOTSUPP
 * without a stream section. */
int provider_build_stream(const struct provider *p, const char *model, const char *task_id,
                          struct provider_request *out);

/* For profiles whose status answer does not hold the result (needs_result). */
int provider_build_result(const struct provider *p, const char *model, const char *task_id,
                          const char *result_url, struct provider_request *out);

/* The headers of an answer that the parsers read; any field may be NULL. */
struct provider_headers {
    const char *retry_after;
    const char *error_type; /* the profile's error_type_header (fal's X-Fal-Error-Type) */
};

/* http_status: the HTTP status (0 if none); hdr: the answer's headers (NULL:
 * none); now: for HTTP dates. Returns 0 and fills out, or a negative errno
 * and fills err. */
int provider_parse_submit(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          struct provider_submit *out, struct provider_error *err);
int provider_parse_status(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          struct provider_status *out, struct provider_error *err);

/* The answer to provider_build_result: out gets state success with the
 * URLs, or failed with the provider's code and message; transient trouble is
 * a negative errno with err->retryable. */
int provider_parse_result(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          struct provider_status *out, struct provider_error *err);

/* ---- cancel (profile section cancel) ---- */

/* cancel_url: the provider's own (provider_submit or provider_status
 * cancel_url), or NULL for the profile's template. -EOPNOTSUPP when the
 * profile has no cancel. */
int provider_build_cancel(const struct provider *p, const char *model, const char *task_id,
                          const char *cancel_url, struct provider_request *out);

enum provider_cancel_outcome {
    PROVIDER_CANCEL_DONE,      /* the task is canceled now */
    PROVIDER_CANCEL_REQUESTED, /* the provider is stopping it; a poll shows its end */
    PROVIDER_CANCEL_TOO_LATE,  /* it had already ended: it stays as it ended */
};

/* The answer to provider_build_cancel. A refusal that the profile's answers
 * name (fal's 400 ALREADY_COMPLETED) is an outcome, not an error; an answer
 * naming no such task is -ENOENT; anything else maps as SPEC 3 says. */
int provider_parse_cancel(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          enum provider_cancel_outcome *out, struct provider_error *err);

/* ---- local files as inputs (profile section upload; atfile.h finds them) ---- */

enum provider_upload_way {
    PROVIDER_UPLOAD_DATA_URI, /* inline: provider_upload_data_uri, no request */
    PROVIDER_UPLOAD_REQUEST,  /* provider_build_upload, then (initiate_put) a PUT */
};

/* How a local file of len bytes reaches this provider: 0 and *way, or
 * -EOPNOTSUPP (the profile has no upload and takes no data: URIs) or -EFBIG
 * (over upload.max_bytes), each with a line in msg saying what to do. */
int provider_upload_plan(const struct provider *p, size_t len, enum provider_upload_way *way,
                         char *msg, size_t msglen);
/* "data:TYPE;base64,..." of the bytes (malloc'd, or NULL when out of memory). */
char *provider_upload_data_uri(const unsigned char *data, size_t len, const char *content_type);

struct provider_upload_file {
    const unsigned char *data;
    size_t len;
    const char *name;         /* a base name, for the provider's records */
    const char *content_type; /* e.g. "image/png"; NULL for application/octet-stream */
};

struct provider_upload {
    char *file_url; /* malloc'd: the URL that goes into the input */
    char *put_url;  /* malloc'd or NULL: initiate_put's URL to PUT the bytes to */
};

/* The upload request (multipart, json, or initiate_put's first request). The
 * same file gives the same request, so a retry sends the same bytes; an
 * upload never submits a task. */
int provider_build_upload(const struct provider *p, const struct provider_upload_file *f,
                          struct provider_request *out);
/* Its answer: out->file_url, and out->put_url for initiate_put. */
int provider_parse_upload(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          struct provider_upload *out, struct provider_error *err);
/* initiate_put's second request: the bytes to put_url, without the key. */
int provider_build_upload_put(const struct provider_upload *u, const struct provider_upload_file *f,
                              struct provider_request *out);
/* Its answer: 0 for a 2xx, else the SPEC 3 errno with err filled. */
int provider_parse_upload_put(long http_status, const struct provider_headers *hdr, time_t now,
                              struct provider_error *err);
void provider_upload_clear(struct provider_upload *u);

/* Answers longer than this are refused unread. */
#define PROVIDER_MAX_BODY_BYTES ((size_t)1024 * 1024)

/* SPEC 3: 400/422 EINVAL, 401/403 EACCES, 402 EDQUOT, 404 ENOENT,
 * 429 EAGAIN, 455/5xx EIO, anything else non-2xx EIO. Negative errno, 0 for 2xx/200. */
int provider_errno_for_code(long code);
bool provider_code_retryable(long code);
/* Retry-After: delta seconds or an HTTP date. ms from now, or -1 if unparsable. */
int64_t provider_parse_retry_after(const char *value, time_t now);
/* RateLimit-Remaining and RateLimit-Reset (or their X- forms): when the window
 * is spent (remaining 0), ms until it resets (reset in delta seconds, or Unix
 * seconds as some providers send), capped like Retry-After; else -1. */
int64_t provider_parse_ratelimit(const char *remaining, const char *reset, time_t now);

#endif
