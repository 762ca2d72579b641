/* libFuzzer target: the provider answer parsers (provider_parse_submit,
 * provider_parse_status, provider_parse_result, provider_parse_cancel,
 * provider_parse_upload) of every built-in profile.
 *
 * Input layout: byte 0 picks the profile (apixo, kie, replicate, fal) and the
 * parser; byte 1 picks the HTTP status and the Retry-After header; the rest
 * is the body, passed with its exact length and no terminating NUL, as the
 * engine's contract allows (so a read past len is caught by ASan). With bit
 * 7 of byte 1 set, the body up to its first newline is the Retry-After value
 * instead, and the rest after it the body. */
#include "fuzz_common.h"
#include "provider.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const profile_names[] = {"apixo", "kie", "replicate", "fal"};
#define N_PROFILES (sizeof(profile_names) / sizeof(profile_names[0]))
static struct provider *profiles[N_PROFILES];

static const long http_codes[] = {200, 201, 400, 401, 404, 429, 503, 0};
static const char *const retry_afters[] = {NULL, "7", "Wed, 21 Oct 2015 07:28:00 GMT", "soon"};
#define NOW ((time_t)1700000000)

static void check_error(int rc, const struct provider_error *e)
{
    check(rc < 0, "a failure is a negative errno");
    check(memchr(e->msg, '\0', sizeof(e->msg)) != NULL, "error message NUL-terminated");
    check(e->retry_after_ms >= -1, "retry_after_ms is -1 or a delay");
}

static void check_status(const struct provider_status *s)
{
    check((int)s->state >= TASK_WAITING && (int)s->state <= TASK_FAILED, "state in range");
    check(s->progress >= -1 && s->progress <= 100, "progress in -1..100");
    check(s->n_urls == 0 || s->urls != NULL, "urls array present");
    for (size_t i = 0; i < s->n_urls; i++)
        check(s->urls[i] != NULL, "every url set");
    check(s->queue_position >= -1, "queue position -1 or a place");
    check(!s->input_json || s->input_json[0] == '{', "an input is an object");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    for (size_t i = 0; i < N_PROFILES; i++) {
        profiles[i] = provider_load_builtin(profile_names[i], err, sizeof(err));
        if (!profiles[i]) {
            fprintf(stderr, "fuzz_provider: built-in %s: %s\n", profile_names[i], err);
            abort();
        }
        provider_set_base_url(profiles[i], "http://127.0.0.1:9");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const struct provider *p = profiles[data[0] % N_PROFILES];
    unsigned parser = (data[0] / N_PROFILES) % 5;
    long http = http_codes[data[1] & 7];
    const char *retry_after = retry_afters[(data[1] >> 3) & 3];
    const uint8_t *body_start = data + 2;
    size_t len = size - 2;

    char *ra_copy = NULL;
    if (data[1] & 0x80) {
        const uint8_t *nl = memchr(body_start, '\n', len);
        size_t ra_len = nl ? (size_t)(nl - body_start) : len;
        ra_copy = fuzz_cstr(body_start, ra_len);
        retry_after = ra_copy;
        body_start += nl ? ra_len + 1 : ra_len;
        len -= nl ? ra_len + 1 : ra_len;
        int64_t ms = provider_parse_retry_after(ra_copy, NOW);
        check(ms >= -1, "provider_parse_retry_after gives -1 or a delay");
    }
    char *body = fuzz_copy(body_start, len);
    /* The error type header, when given, is the Retry-After value too: any text. */
    struct provider_headers hdr = {.retry_after = retry_after,
                                   .error_type = (data[1] & 0x40) ? retry_after : NULL};

    struct provider_error e;
    memset(&e, 0xa5, sizeof(e)); /* the parsers must fill it themselves */
    if (parser == 0) {
        struct provider_submit s = {0};
        int rc = provider_parse_submit(p, http, body, len, &hdr, NOW, &s, &e);
        if (rc == 0) {
            check(s.task_id != NULL && s.task_id[0] != '\0', "a submit gives a task id");
            check(strchr(s.task_id, '/') == NULL, "the task id is a safe file name");
        } else {
            check_error(rc, &e);
        }
        provider_submit_clear(&s);
    } else if (parser == 3) {
        enum provider_cancel_outcome out;
        int rc = provider_parse_cancel(p, http, body, len, &hdr, NOW, &out, &e);
        if (rc == 0)
            check(out <= PROVIDER_CANCEL_TOO_LATE, "a cancel outcome in range");
        else
            check_error(rc, &e);
    } else if (parser == 4) {
        struct provider_upload u = {0};
        int rc = provider_parse_upload(p, http, body, len, &hdr, NOW, &u, &e);
        if (rc == 0)
            check(u.file_url != NULL && strncmp(u.file_url, "http", 4) == 0,
                  "an upload gives an http(s) file URL");
        else
            check_error(rc, &e);
        provider_upload_clear(&u);
    } else {
        struct provider_status s = {0};
        int rc = parser == 1 ? provider_parse_status(p, http, body, len, &hdr, NOW, &s, &e)
                             : provider_parse_result(p, http, body, len, &hdr, NOW, &s, &e);
        if (rc == 0)
            check_status(&s);
        else
            check_error(rc, &e);
        provider_status_clear(&s);
    }
    free(body);
    free(ra_copy);
    return 0;
}
