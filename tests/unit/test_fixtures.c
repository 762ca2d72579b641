/* The built-in profiles on answers recorded from the real services
 * (tests/fixtures/providers/: their docs and their SDKs' test recordings,
 * each naming its source in MANIFEST.json). One check per answer: what a
 * correct reading of it is, as the manifest says. */
#include "media.h"
#include "provider.h"
#include "tap.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NOW ((time_t)1700000000)

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *grown = realloc(buf, cap);
            if (!grown)
                break;
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static const char *str_at(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A header of the recorded answer, by name in any case. */
static const char *header(const cJSON *entry, const char *name)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(entry, "headers"), *it;
    cJSON_ArrayForEach(it, h)
    {
        if (strcasecmp(it->string, name) == 0 && cJSON_IsString(it))
            return it->valuestring;
    }
    return NULL;
}

static int errno_of(const char *name)
{
    static const struct {
        const char *name;
        int err;
    } names[] = {{"EINVAL", EINVAL}, {"EACCES", EACCES}, {"EDQUOT", EDQUOT},
                 {"ENOENT", ENOENT}, {"EAGAIN", EAGAIN}, {"EIO", EIO}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i].name, name) == 0)
            return names[i].err;
    return 0;
}

/* Why the reading differs from the expectation, or "" when it does not. */
struct why {
    char text[512];
};

static void why_set(struct why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_set(struct why *w, const char *fmt, ...)
{
    if (w->text[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->text, sizeof(w->text), fmt, ap);
    va_end(ap);
}

static bool str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_refusal(const cJSON *expect, int rc, const struct provider_error *e,
                          struct why *w)
{
    int want = errno_of(str_at(expect, "errno"));
    if (rc != -want)
        why_set(w, "errno %d, want -%s (%s)", rc, str_at(expect, "errno"), e->msg);
    const char *part = str_at(expect, "message_contains");
    if (part && !strstr(e->msg, part))
        why_set(w, "the message \"%s\" lacks \"%s\"", e->msg, part);
}

/* A refusal the manifest expects is checked here; false when there is no answer
 * to read further (a refusal, expected or not). */
static bool check_answered(const cJSON *expect, int rc, const struct provider_error *e,
                           struct why *w)
{
    if (str_at(expect, "errno")) {
        check_refusal(expect, rc, e, w);
        return false;
    }
    if (rc < 0)
        why_set(w, "refused: %s", e->msg);
    return rc >= 0;
}

static void check_output(const cJSON *want, const struct provider_status *st, size_t i,
                         struct why *w)
{
    const char *url = st->urls[i];
    const char *name = st->names ? st->names[i] : NULL;
    const char *text = str_at(want, "text");
    if (text) {
        unsigned char *bytes = NULL;
        size_t len = 0;
        char type[64];
        if (media_data_uri_decode(url, &bytes, &len, type, sizeof(type)) < 0 ||
            strcmp(type, "text/plain") != 0 || len != strlen(text) || memcmp(bytes, text, len))
            why_set(w, "output %zu is not the text \"%.40s...\"", i, text);
        free(bytes);
        return;
    }
    const char *wurl = str_at(want, "url");
    bool prefix = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(want, "prefix"));
    if (!wurl || (prefix ? strncmp(url, wurl, strlen(wurl)) != 0 : strcmp(url, wurl) != 0))
        why_set(w, "output %zu is %.80s, want %.80s", i, url, wurl ? wurl : "(none)");
    const cJSON *wname = cJSON_GetObjectItemCaseSensitive(want, "name");
    if (cJSON_IsString(wname) ? !str_same(name, wname->valuestring) : name != NULL)
        why_set(w, "output %zu is named %s, want %s", i, name ? name : "(none)",
                cJSON_IsString(wname) ? wname->valuestring : "(none)");
}

/* What MODEL/ID/progress, logs, input.json and ctl are made of (issue 19). */
static void check_controls(const cJSON *expect, const struct provider_status *st, struct why *w)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(expect, "queue_position");
    if (cJSON_IsNumber(q) && st->queue_position != q->valueint)
        why_set(w, "queue position %d, want %d", st->queue_position, q->valueint);
    const char *logs = str_at(expect, "logs_contains");
    if (logs && !(st->logs && strstr(st->logs, logs)))
        why_set(w, "logs \"%.60s\" lack \"%s\"", st->logs ? st->logs : "(none)", logs);
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(expect, "input");
    cJSON *got = st->input_json ? cJSON_Parse(st->input_json) : NULL;
    if (in && !cJSON_Compare(in, got, true))
        why_set(w, "input %s", st->input_json ? st->input_json : "(none)");
    cJSON_Delete(got);
    const char *cu = str_at(expect, "cancel_url");
    if (cu && !str_same(st->cancel_url, cu))
        why_set(w, "cancel URL %s", st->cancel_url ? st->cancel_url : "(none)");
}

static void check_cancel(const cJSON *expect, int rc, enum provider_cancel_outcome out,
                         const struct provider_error *e, struct why *w)
{
    static const char *const names[] = {"canceled", "requested", "too_late"};
    if (!check_answered(expect, rc, e, w))
        return;
    const char *want = str_at(expect, "outcome");
    if (!want || strcmp(names[out], want) != 0)
        why_set(w, "outcome %s, want %s", names[out], want ? want : "?");
}

static void check_upload(const cJSON *expect, int rc, const struct provider_upload *u,
                         const struct provider_error *e, struct why *w)
{
    if (!check_answered(expect, rc, e, w))
        return;
    if (!str_same(u->file_url, str_at(expect, "file_url")))
        why_set(w, "file URL %s", u->file_url ? u->file_url : "(none)");
    if (!str_same(u->put_url, str_at(expect, "put_url")))
        why_set(w, "upload URL %s", u->put_url ? u->put_url : "(none)");
}

static void check_status(const cJSON *expect, int rc, const struct provider_status *st,
                         const struct provider_error *e, struct why *w)
{
    if (!check_answered(expect, rc, e, w))
        return;
    enum task_state want;
    const char *state = str_at(expect, "state");
    if (!state || task_state_parse(state, &want) < 0 || st->state != want)
        why_set(w, "state %s, want %s", task_state_name(st->state), state ? state : "?");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(expect, "outputs");
    if (outs && (size_t)cJSON_GetArraySize(outs) != st->n_urls)
        why_set(w, "%zu outputs, want %d", st->n_urls, cJSON_GetArraySize(outs));
    for (size_t i = 0; outs && i < st->n_urls && i < (size_t)cJSON_GetArraySize(outs); i++)
        check_output(cJSON_GetArrayItem(outs, (int)i), st, i, w);
    const char *code = str_at(expect, "fail_code");
    if (code && !str_same(st->fail_code, code))
        why_set(w, "failCode %s, want %s", st->fail_code ? st->fail_code : "(none)", code);
    const char *msg = str_at(expect, "fail_msg_contains");
    if (msg && !(st->fail_msg && strstr(st->fail_msg, msg)))
        why_set(w, "failMsg \"%s\" lacks \"%s\"", st->fail_msg ? st->fail_msg : "", msg);
    const cJSON *nr = cJSON_GetObjectItemCaseSensitive(expect, "needs_result");
    if (nr && cJSON_IsTrue(nr) != st->needs_result)
        why_set(w, "needs_result %d", st->needs_result);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(expect, "progress");
    if (cJSON_IsNumber(pr) && st->progress != pr->valueint)
        why_set(w, "progress %d, want %d", st->progress, pr->valueint);
    check_controls(expect, st, w);
}

static void check_submit(const cJSON *expect, int rc, const struct provider_submit *s,
                         const struct provider_error *e, struct why *w)
{
    if (!check_answered(expect, rc, e, w))
        return;
    if (!str_same(s->task_id, str_at(expect, "task_id")))
        why_set(w, "task id %s", s->task_id ? s->task_id : "(none)");
    if (!str_same(s->status_url, str_at(expect, "status_url")))
        why_set(w, "status URL %s", s->status_url ? s->status_url : "(none)");
    if (!str_same(s->result_url, str_at(expect, "result_url")))
        why_set(w, "result URL %s", s->result_url ? s->result_url : "(none)");
}

static void run_entry(const char *dir, const cJSON *entry)
{
    const char *file = str_at(entry, "file"), *name = str_at(entry, "provider");
    const char *kind = str_at(entry, "kind");
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(entry, "expect");
    const cJSON *http = cJSON_GetObjectItemCaseSensitive(entry, "http_status");
    char path[4096], err[256];
    snprintf(path, sizeof(path), "%s/%s", dir, file ? file : "?");
    size_t len = 0;
    char *body = file ? read_file(path, &len) : NULL;
    struct provider *p = name ? provider_load_builtin(name, err, sizeof(err)) : NULL;
    struct why w = {{0}};
    if (!body || !p || !kind || !cJSON_IsObject(expect) || !cJSON_IsNumber(http)) {
        TAP_CHECK(false, "%s: the entry is whole and its file and profile load", path);
        free(body);
        provider_free(p);
        return;
    }
    struct provider_headers hdr = {.retry_after = header(entry, "Retry-After"),
                                   .error_type = header(entry, "X-Fal-Error-Type")};
    long code = (long)http->valuedouble;
    struct provider_error e;
    if (strcmp(kind, "submit") == 0) {
        struct provider_submit s;
        int rc = provider_parse_submit(p, code, body, len, &hdr, NOW, &s, &e);
        check_submit(expect, rc, &s, &e, &w);
        provider_submit_clear(&s);
    } else if (strcmp(kind, "cancel") == 0) {
        enum provider_cancel_outcome out;
        int rc = provider_parse_cancel(p, code, body, len, &hdr, NOW, &out, &e);
        check_cancel(expect, rc, out, &e, &w);
    } else if (strcmp(kind, "upload") == 0) {
        struct provider_upload u;
        int rc = provider_parse_upload(p, code, body, len, &hdr, NOW, &u, &e);
        check_upload(expect, rc, &u, &e, &w);
        provider_upload_clear(&u);
    } else {
        /* A callback body of these providers is their status answer; genfs only polls on
         * it, and a correct reading of it is the status it holds. */
        struct provider_status st;
        int rc = strcmp(kind, "result") == 0
                     ? provider_parse_result(p, code, body, len, &hdr, NOW, &st, &e)
                     : provider_parse_status(p, code, body, len, &hdr, NOW, &st, &e);
        check_status(expect, rc, &st, &e, &w);
        provider_status_clear(&st);
    }
    TAP_CHECK(!w.text[0], "%s %s %s%s%s", name, kind, file, w.text[0] ? ": " : "", w.text);
    free(body);
    provider_free(p);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures/providers";
    char path[4096];
    snprintf(path, sizeof(path), "%s/MANIFEST.json", dir);
    size_t len = 0;
    char *text = read_file(path, &len);
    cJSON *manifest = text ? cJSON_Parse(text) : NULL;
    free(text);
    TAP_CHECK(cJSON_GetArraySize(manifest) > 0, "%s lists recorded answers", path);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, manifest)
    {
        /* fal's webhook is an envelope of its own ({request_id, status: OK|ERROR,
         * payload}); genfs takes any callback as a hint to poll and reads none. */
        const char *kind = str_at(entry, "kind"), *prov = str_at(entry, "provider");
        if (kind && prov && strcmp(kind, "webhook") == 0 && strcmp(prov, "fal") == 0) {
            printf("# %s: a fal webhook body, which genfs does not read\n", str_at(entry, "file"));
            continue;
        }
        run_entry(dir, entry);
    }
    cJSON_Delete(manifest);
    return tap_done();
}
