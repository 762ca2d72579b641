/* The native provider profile (SPEC 4): request building and answer
 * parsing. Every answer is untrusted: anything malformed becomes -EPROTO,
 * retryable, with a message naming what was wrong. */
#include "provider.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROVIDER_MAX_BODY ((size_t)16 * 1024 * 1024)
#define PROVIDER_MAX_TASK_ID 200
/* A provider asking for a longer pause would freeze every task; cap it. */
#define PROVIDER_MAX_RETRY_AFTER_MS INT64_C(3600000)

struct provider {
    char *base_url; /* without trailing slash */
};

struct provider *provider_new_native(const char *base_url)
{
    struct provider *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    size_t n = strlen(base_url);
    if (n > 0 && base_url[n - 1] == '/')
        n--;
    p->base_url = strndup(base_url, n);
    if (!p->base_url) {
        free(p);
        return NULL;
    }
    return p;
}

void provider_free(struct provider *p)
{
    if (!p)
        return;
    free(p->base_url);
    free(p);
}

char *provider_auth_header(const struct provider *p, const char *key)
{
    (void)p;
    /* A CR or LF in the key would smuggle extra header lines into requests. */
    for (const char *c = key; *c; c++) {
        if (iscntrl((unsigned char)*c))
            return NULL;
    }
    char *line = NULL;
    if (asprintf(&line, "Authorization: Bearer %s", key) < 0)
        return NULL;
    return line;
}

void provider_request_clear(struct provider_request *r)
{
    free(r->url);
    free(r->body);
    *r = (struct provider_request){0};
}

void provider_submit_clear(struct provider_submit *s)
{
    free(s->task_id);
    free(s->status_url);
    *s = (struct provider_submit){0};
}

void provider_status_clear(struct provider_status *s)
{
    for (size_t i = 0; i < s->n_urls; i++)
        free(s->urls[i]);
    free(s->urls);
    free(s->fail_code);
    free(s->fail_msg);
    free(s->data_json);
    *s = (struct provider_status){.progress = -1};
}

/* ---- requests ---- */

/* Appends s to the string being built in *out (len bytes so far),
 * percent-encoding every byte outside RFC 3986's unreserved set (and '/'
 * when keep_slash, since model ids with slashes are path segments). */
static int provider_append_path(char **out, size_t *len, const char *s, bool keep_slash)
{
    char *grown = realloc(*out, *len + 3 * strlen(s) + 1);
    if (!grown)
        return -ENOMEM;
    *out = grown;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (isalnum(*c) || strchr("-._~", *c) || (keep_slash && *c == '/'))
            grown[(*len)++] = (char)*c;
        else
            *len += (size_t)sprintf(grown + *len, "%%%02X", *c);
    }
    grown[*len] = '\0';
    return 0;
}

static char *provider_task_url(const struct provider *p, const char *model, const char *task_id)
{
    char *url = strdup(p->base_url);
    size_t len = strlen(p->base_url);
    if (!url || provider_append_path(&url, &len, "/generateTask/", true) < 0 ||
        provider_append_path(&url, &len, model, true) < 0 ||
        (task_id && (provider_append_path(&url, &len, "/", true) < 0 ||
                     provider_append_path(&url, &len, task_id, false) < 0))) {
        free(url);
        return NULL;
    }
    return url;
}

int provider_build_submit(const struct provider *p, const char *model, const char *input_json,
                          const char *callback_url, struct provider_request *out)
{
    *out = (struct provider_request){.method = "POST"};
    if (!model || !*model || !input_json)
        return -EINVAL;
    cJSON *input = cJSON_Parse(input_json);
    if (!cJSON_IsObject(input)) {
        cJSON_Delete(input);
        return -EINVAL;
    }
    cJSON *root = cJSON_CreateObject();
    bool ok = root &&
              cJSON_AddStringToObject(root, "request_type", callback_url ? "callback" : "async") &&
              (!callback_url || cJSON_AddStringToObject(root, "callback_url", callback_url));
    if (ok)
        ok = cJSON_AddItemToObject(root, "input", input);
    else
        cJSON_Delete(input);
    out->body = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    out->url = provider_task_url(p, model, NULL);
    if (!out->body || !out->url) {
        provider_request_clear(out);
        return -ENOMEM;
    }
    return 0;
}

int provider_build_status(const struct provider *p, const char *model, const char *task_id,
                          const char *status_url, struct provider_request *out)
{
    *out = (struct provider_request){.method = "GET"};
    if (status_url) {
        out->url = strdup(status_url);
    } else {
        if (!model || !*model || !task_id || !*task_id)
            return -EINVAL;
        out->url = provider_task_url(p, model, task_id);
    }
    return out->url ? 0 : -ENOMEM;
}

/* ---- codes ---- */

int provider_errno_for_code(long code)
{
    if (code >= 200 && code <= 299)
        return 0;
    switch (code) {
    case 400:
    case 422:
        return -EINVAL;
    case 401:
    case 403:
        return -EACCES;
    case 402:
        return -EDQUOT;
    case 404:
        return -ENOENT;
    case 429:
        return -EAGAIN;
    default:
        return -EIO;
    }
}

bool provider_code_retryable(long code)
{
    switch (code) {
    case 429:
    case 455:
    case 500:
    case 502:
    case 503:
    case 504:
        return true;
    default:
        return false;
    }
}

/* What a code means to the user, and what to do about it. */
static void provider_code_text(long code, const char **what, const char **advice)
{
    *advice = "genfs retries it";
    switch (code) {
    case 400:
    case 422:
        *what = "the provider rejected the input";
        *advice = "check the input fields this model accepts";
        return;
    case 401:
    case 403:
        *what = "the provider refused the API key";
        *advice = "check GENFS_API_KEY or key_file";
        return;
    case 402:
        *what = "insufficient credits";
        *advice = "top up the account";
        return;
    case 404:
        *what = "the provider knows no such model or task";
        *advice = "check the model directory name and the task id";
        return;
    case 429:
        *what = "the provider is rate limiting us";
        *advice = "genfs retries it; lower -o rate if this persists";
        return;
    case 455:
        *what = "the provider is unavailable (maintenance)";
        return;
    case 500:
    case 502:
    case 503:
    case 504:
        *what = "the provider had a server error";
        return;
    default:
        *what = "the provider answered with an unexpected code";
        *advice = NULL;
        return;
    }
}

/* ---- Retry-After ---- */

static int64_t provider_days_from_civil(int64_t y, int m, int d)
{
    /* Howard Hinnant's days_from_civil: proleptic Gregorian, 1970-01-01 = 0. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* IMF-fixdate, the only date form RFC 9110 lets servers send:
 * "Sun, 06 Nov 1994 08:49:37 GMT". Seconds since the epoch, or -1. */
static int64_t provider_parse_http_date(const char *s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char wday[4], mon[4], zone[4];
    int d, y, hh, mm, ss, used = 0;
    if (sscanf(s, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3s%n", wday, &d, mon, &y, &hh, &mm,
               &ss, zone, &used) != 8 ||
        strcmp(zone, "GMT") != 0)
        return -1;
    for (const char *rest = s + used; *rest; rest++) {
        if (!isspace((unsigned char)*rest))
            return -1;
    }
    const char *m = strlen(mon) == 3 ? strstr(months, mon) : NULL;
    if (!m || (m - months) % 3 != 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || hh < 0 ||
        mm < 0 || ss < 0)
        return -1;
    int month = (int)(m - months) / 3 + 1;
    return provider_days_from_civil(y, month, d) * 86400 + hh * 3600 + mm * 60 + ss;
}

int64_t provider_parse_retry_after(const char *value, time_t now)
{
    if (!value)
        return -1;
    while (isspace((unsigned char)*value))
        value++;
    int64_t ms;
    if (isdigit((unsigned char)*value)) {
        char *end;
        errno = 0;
        unsigned long long secs = strtoull(value, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (*end)
            return -1;
        if (errno == ERANGE || secs > (unsigned long long)PROVIDER_MAX_RETRY_AFTER_MS / 1000)
            return PROVIDER_MAX_RETRY_AFTER_MS;
        ms = (int64_t)secs * 1000;
    } else {
        int64_t when = provider_parse_http_date(value);
        if (when < 0)
            return -1;
        ms = when > (int64_t)now ? (when - (int64_t)now) * 1000 : 0;
    }
    return ms < PROVIDER_MAX_RETRY_AFTER_MS ? ms : PROVIDER_MAX_RETRY_AFTER_MS;
}

/* ---- answers ---- */

static int provider_fail(struct provider_error *err, int code, bool retryable, const char *fmt, ...)
{
    err->err = code;
    err->retryable = retryable;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

/* Copies the provider's own message into a one-line, bounded form. */
static void provider_clean_msg(const cJSON *root, char *out, size_t outlen)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "msg");
    out[0] = '\0';
    if (!cJSON_IsString(m) || !m->valuestring[0])
        return;
    size_t n = 0;
    for (const char *c = m->valuestring; *c && n + 1 < outlen; c++)
        out[n++] = iscntrl((unsigned char)*c) ? ' ' : *c;
    out[n] = '\0';
}

static int provider_fail_code(struct provider_error *err, long code, const cJSON *root,
                              const char *retry_after, time_t now)
{
    char pmsg[120];
    const char *what, *advice;
    provider_clean_msg(root, pmsg, sizeof(pmsg));
    provider_code_text(code, &what, &advice);
    int e = provider_errno_for_code(code);
    if (code == 429 || code == 503)
        err->retry_after_ms = provider_parse_retry_after(retry_after, now);
    return provider_fail(err, e ? e : -EPROTO, provider_code_retryable(code) || !e,
                         "%s (%ld%s%s)%s%s", what, code, pmsg[0] ? ": " : "", pmsg,
                         advice ? ": " : "", advice ? advice : "");
}

/* The whole body must be one JSON value; trailing whitespace is fine. */
static cJSON *provider_parse_json(const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(body, len, &end, false);
    while (doc && end < body + len && isspace((unsigned char)*end))
        end++;
    if (doc && end != body + len) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* Checks the HTTP status and the envelope; on success *root holds the
 * parsed body and *data its "data" object. */
static int provider_parse_envelope(const char *what, long http_status, const char *body, size_t len,
                                   const char *retry_after, time_t now, cJSON **root,
                                   const cJSON **data, struct provider_error *err)
{
    *err = (struct provider_error){.retry_after_ms = -1};
    *root = NULL;
    if (len > PROVIDER_MAX_BODY)
        body = NULL;
    if (http_status == 0)
        return provider_fail(err, -EIO, true, "%s: no HTTP answer from the provider", what);
    cJSON *doc = body && len ? provider_parse_json(body, len) : NULL;
    if (http_status < 200 || http_status > 299) {
        int rc = provider_fail_code(err, http_status, cJSON_IsObject(doc) ? doc : NULL, retry_after,
                                    now);
        cJSON_Delete(doc);
        return rc;
    }
    if (len > PROVIDER_MAX_BODY)
        return provider_fail(err, -EPROTO, true, "%s: the body of %zu bytes is over 16 MiB", what,
                             len);
    if (!doc || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return provider_fail(err, -EPROTO, true, "%s: the body is %s", what,
                             !body || !len ? "empty"
                             : doc         ? "not a JSON object"
                                           : "not valid JSON");
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(doc, "code");
    int rc;
    if (!cJSON_IsNumber(code))
        rc = provider_fail(err, -EPROTO, true, "%s: \"code\" is missing or not a number", what);
    else if (code->valuedouble != 200)
        rc = provider_fail_code(err, (long)code->valuedouble, doc, retry_after, now);
    else if (!cJSON_IsObject(*data = cJSON_GetObjectItemCaseSensitive(doc, "data")))
        rc = provider_fail(err, -EPROTO, true, "%s: \"data\" is missing or not an object", what);
    else
        rc = 0;
    if (rc < 0)
        cJSON_Delete(doc);
    else
        *root = doc;
    return rc;
}

/* Task ids become directory names: refuse anything that is not a plain,
 * harmless file name. */
static bool provider_task_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > PROVIDER_MAX_TASK_ID || id[0] == '.')
        return false;
    for (const unsigned char *c = (const unsigned char *)id; *c; c++) {
        if (!isalnum(*c) && !strchr("-._~", *c))
            return false;
    }
    return true;
}

int provider_parse_submit(const struct provider *p, long http_status, const char *body, size_t len,
                          const char *retry_after, time_t now, struct provider_submit *out,
                          struct provider_error *err)
{
    (void)p;
    *out = (struct provider_submit){0};
    cJSON *root;
    const cJSON *data;
    int rc = provider_parse_envelope("submit answer", http_status, body, len, retry_after, now,
                                     &root, &data, err);
    if (rc < 0)
        return rc;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(data, "taskId");
    if (!cJSON_IsString(id))
        rc = provider_fail(err, -EPROTO, true, "submit answer: taskId is missing or not a string");
    else if (!provider_task_id_ok(id->valuestring))
        rc = provider_fail(err, -EPROTO, true,
                           "submit answer: taskId \"%.60s\" is empty, too long or not a safe "
                           "file name",
                           id->valuestring);
    else if (!(out->task_id = strdup(id->valuestring)))
        rc = provider_fail(err, -ENOMEM, true, "submit answer: out of memory");
    cJSON_Delete(root);
    return rc;
}

static int64_t provider_time_ms(const cJSON *data, const char *name)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(data, name);
    if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) || t->valuedouble < 0 ||
        t->valuedouble > 9.0e15)
        return 0;
    return (int64_t)t->valuedouble;
}

/* "resultJson": a string holding {"resultUrls": [...]}; keeps the http(s) URLs. */
static int provider_parse_result(const cJSON *data, struct provider_status *out,
                                 struct provider_error *err)
{
    const cJSON *rj = cJSON_GetObjectItemCaseSensitive(data, "resultJson");
    if (!cJSON_IsString(rj))
        return provider_fail(err, -EPROTO, true, "status answer: resultJson is not a string");
    cJSON *result = cJSON_Parse(rj->valuestring);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(result, "resultUrls");
    int rc = 0;
    if (!cJSON_IsObject(result))
        rc = provider_fail(err, -EPROTO, true, "status answer: resultJson is not a JSON object");
    else if (!cJSON_IsArray(list))
        rc = provider_fail(err, -EPROTO, true, "status answer: resultJson has no resultUrls array");
    else if (!(out->urls = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(char *))))
        rc = -ENOMEM;
    const cJSON *u, *items = rc == 0 ? list : NULL;
    cJSON_ArrayForEach(u, items)
    {
        if (!cJSON_IsString(u) || (strncmp(u->valuestring, "https://", 8) != 0 &&
                                   strncmp(u->valuestring, "http://", 7) != 0))
            continue;
        if (!(out->urls[out->n_urls] = strdup(u->valuestring))) {
            rc = -ENOMEM;
            break;
        }
        out->n_urls++;
    }
    if (rc == 0 && out->n_urls == 0)
        rc = provider_fail(err, -EPROTO, true,
                           "status answer: success without any http(s) URL in resultUrls");
    cJSON_Delete(result);
    return rc;
}

/* failCode may be a string or a number; either way a string for us. */
static int provider_dup_code(const cJSON *c, char **out)
{
    char num[32];
    const char *s;
    if (cJSON_IsString(c)) {
        s = c->valuestring;
    } else if (cJSON_IsNumber(c)) {
        double v = c->valuedouble;
        if (v == floor(v) && fabs(v) < 1e15)
            snprintf(num, sizeof(num), "%lld", (long long)v);
        else
            snprintf(num, sizeof(num), "%g", v);
        s = num;
    } else {
        return 0;
    }
    *out = strdup(s);
    return *out ? 0 : -ENOMEM;
}

int provider_parse_status(const struct provider *p, long http_status, const char *body, size_t len,
                          const char *retry_after, time_t now, struct provider_status *out,
                          struct provider_error *err)
{
    (void)p;
    *out = (struct provider_status){.progress = -1};
    cJSON *root;
    const cJSON *data;
    int rc = provider_parse_envelope("status answer", http_status, body, len, retry_after, now,
                                     &root, &data, err);
    if (rc < 0)
        return rc;
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(data, "state");
    if (!cJSON_IsString(state)) {
        rc = provider_fail(err, -EPROTO, true, "status answer: state is missing or not a string");
        goto out;
    }
    if (task_state_parse(state->valuestring, &out->state) < 0) {
        rc = provider_fail(err, -EPROTO, true, "status answer: unknown state \"%.40s\"",
                           state->valuestring);
        goto out;
    }
    /* progress and times are cosmetic: a wrong type is ignored, not fatal. */
    const cJSON *progress = cJSON_GetObjectItemCaseSensitive(data, "progress");
    if (cJSON_IsNumber(progress) && isfinite(progress->valuedouble))
        out->progress = (int)fmin(100.0, fmax(0.0, progress->valuedouble));
    out->create_ms = provider_time_ms(data, "createTime");
    out->update_ms = provider_time_ms(data, "updateTime");
    out->complete_ms = provider_time_ms(data, "completeTime");
    if (out->state == TASK_SUCCESS)
        rc = provider_parse_result(data, out, err);
    else if (out->state == TASK_FAILED &&
             (provider_dup_code(cJSON_GetObjectItemCaseSensitive(data, "failCode"),
                                &out->fail_code) < 0 ||
              provider_dup_code(cJSON_GetObjectItemCaseSensitive(data, "failMsg"), &out->fail_msg) <
                  0))
        rc = -ENOMEM;
    if (rc == 0 && !(out->data_json = cJSON_PrintUnformatted(data)))
        rc = -ENOMEM;
out:
    if (rc == -ENOMEM)
        provider_fail(err, rc, true, "status answer: out of memory");
    if (rc < 0)
        provider_status_clear(out);
    cJSON_Delete(root);
    return rc;
}
