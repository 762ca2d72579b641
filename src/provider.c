/* The provider profile interpreter: one generic reading of a profile (JSON
 * data: how to authenticate, submit, find the task id, poll, map states,
 * find result URLs and errors) for every provider. Every answer is
 * untrusted: anything malformed becomes -EPROTO, retryable, with a message
 * naming what was wrong. */
#include "provider.h"

#include "media.h"
#include "names.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* API answers are small; a bigger one is an attack on memory (cJSON spends
 * a node per value). */
#define PROVIDER_MAX_BODY ((size_t)1024 * 1024)
#define PROVIDER_MAX_URLS 64
/* An output's name, as files/NAME.ext (task_file names hold 32 bytes). */
#define PROVIDER_MAX_NAME 20
/* A provider asking for a longer pause would freeze every task; cap it. */
#define PROVIDER_MAX_RETRY_AFTER_MS INT64_C(3600000)
/* A progress pattern is a short ERE: without intervals and back-references
 * (the costly parts of POSIX regex), matching stays cheap on any logs. */
#define PROVIDER_MAX_REGEX 200
/* Only the logs' tail is searched for progress: the latest line is there. */
#define PROVIDER_PROGRESS_TAIL ((size_t)64 * 1024)
/* The default upload size limit, and the default inline (data: URI) limit. */
#define PROVIDER_UPLOAD_MAX ((size_t)100 * 1024 * 1024)
#define PROVIDER_DATA_URI_MAX ((size_t)256 * 1024)

enum time_format { TIMES_NONE, TIMES_MS, TIMES_ISO };

struct state_word {
    char *word;
    enum task_state state;
};

enum upload_kind { UPLOAD_NONE, UPLOAD_MULTIPART, UPLOAD_JSON, UPLOAD_INITIATE_PUT };

/* A word of a cancel answer and what it means (cancel.answers). */
struct cancel_word {
    char *word;
    enum provider_cancel_outcome outcome;
    bool not_found;
};

/* A submission of another shape for model ids matching a glob: Replicate's
 * "owner/name:version" goes to /v1/predictions with the version in the body. */
struct submit_variant {
    char *match;
    char *url;
    cJSON *body, *callback_body; /* NULL: the plain submit's */
};

struct provider {
    char *name;
    char *base_url; /* without trailing slash, or NULL */
    char *auth_header;
    char *auth_value; /* holds {key} */
    /* envelope around every answer, or none */
    char *env_code, *env_message, *env_data;
    long env_ok;
    char **error_message; /* where a non-2xx body says what went wrong */
    char *error_type_header;
    int64_t url_lifetime_s; /* how long result URLs live: -1 for ever, 0 unknown */
    size_t n_error_message;
    /* submit */
    char *submit_method, *submit_url;
    cJSON *submit_body, *callback_body, *callback_query;
    struct submit_variant *variants; /* first match wins, before the plain submit */
    size_t n_variants;
    char *submit_task_id, *submit_status_url, *submit_result_url;
    /* status */
    char *status_url, *state_path, *progress_path, *result_path, *urls_path;
    bool result_is_json_string;
    char *failed_if, *error_code_path, *error_msg_path;
    struct state_word *states;
    size_t n_states;
    enum time_format times;
    char *create_path, *update_path, *complete_path, *cost_path;
    bool outputs_any; /* every value of the output is one (Replicate), not only URLs */
    long *not_yet;    /* codes of a status answer that mean "not visible yet" (kie's 422) */
    size_t n_not_yet;
    char **app_ns; /* namespaces whose apps have three segments (fal's workflows/) */
    size_t n_app_ns;
    /* separate result request */
    bool has_result;
    char *result_url, *result_urls_path, *result_error_code, *result_error_msg;
    /* logs, progress, queue and the adopted task's input in a status answer */
    char *logs_path, *queue_path, *input_path, *input_field;
    bool input_is_json_string;
    regex_t progress_re; /* status.progress_logs, when has_progress_re */
    bool has_progress_re;
    cJSON *status_query; /* query parameters added to every status URL (fal's logs=1) */
    /* cancel */
    bool has_cancel;
    char *cancel_method, *cancel_url, *cancel_url_field, *cancel_state;
    struct cancel_word *cancel_words;
    size_t n_cancel_words;
    /* status stream (server-sent events of status objects), when stream_url */
    char *stream_url;
    int stream_max;
    /* upload */
    enum upload_kind upload_kind;
    char *upload_base; /* {upload_base}: upload.base_url, else the base URL */
    char *upload_url, *upload_field, *upload_file_url, *upload_put_url;
    cJSON *upload_fields, *upload_body;
    size_t upload_max, data_uri_max;
    bool data_uri_ok;
    bool loaded; /* a later base URL (-o api_url) takes the uploads along */
};

/* ---- profile loading ---- */

struct loader {
    const char *source;
    char *err;
    size_t errlen;
    bool failed;
};

static void load_fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void load_fail(struct loader *l, const char *fmt, ...)
{
    if (l->failed)
        return;
    l->failed = true;
    int n = snprintf(l->err, l->errlen, "provider profile %s: ", l->source);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < l->errlen)
        vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Every key of obj must be in allowed (NULL-terminated). */
static void load_keys(struct loader *l, const cJSON *obj, const char *where,
                      const char *const *allowed)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, it->string) == 0;
        if (!ok)
            load_fail(l, "unknown key %s%s%s", where, *where ? "." : "", it->string);
    }
}

static char *load_str(struct loader *l, const cJSON *obj, const char *where, const char *key,
                      bool required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            load_fail(l, "missing key %s.%s", where, key);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        load_fail(l, "%s.%s must be a string", where, key);
        return NULL;
    }
    return strdup(v->valuestring);
}

static const cJSON *load_obj(struct loader *l, const cJSON *obj, const char *where, const char *key,
                             bool required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            load_fail(l, "missing key %s%s%s", where, *where ? "." : "", key);
        return NULL;
    }
    if (!cJSON_IsObject(v)) {
        load_fail(l, "%s%s%s must be an object", where, *where ? "." : "", key);
        return NULL;
    }
    return v;
}

static bool load_bool(struct loader *l, const cJSON *obj, const char *where, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return false;
    if (!cJSON_IsBool(v))
        load_fail(l, "%s.%s must be true or false", where, key);
    return cJSON_IsTrue(v);
}

/* A body template: an object or the string "{input}". */
static cJSON *load_body(struct loader *l, const cJSON *obj, const char *where, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (!cJSON_IsObject(v) && !(cJSON_IsString(v) && strcmp(v->valuestring, "{input}") == 0)) {
        load_fail(l, "%s.%s must be an object or \"{input}\"", where, key);
        return NULL;
    }
    return cJSON_Duplicate(v, true);
}

static bool url_template_ok(const char *t)
{
    return t && (strncmp(t, "{base}", 6) == 0 || strncmp(t, "http://", 7) == 0 ||
                 strncmp(t, "https://", 8) == 0 || strncmp(t, "{result_url}", 12) == 0 ||
                 strncmp(t, "{upload_base}", 13) == 0);
}

static void load_error_message(struct loader *l, struct provider *p, const cJSON *root)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "error_message");
    if (!v)
        return;
    if (cJSON_IsString(v)) {
        p->error_message = calloc(1, sizeof(char *));
        if (p->error_message)
            p->error_message[p->n_error_message++] = strdup(v->valuestring);
        return;
    }
    if (!cJSON_IsArray(v)) {
        load_fail(l, "error_message must be a string or an array of strings");
        return;
    }
    p->error_message = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(char *));
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it)) {
            load_fail(l, "error_message must be a string or an array of strings");
            return;
        }
        if (p->error_message)
            p->error_message[p->n_error_message++] = strdup(it->valuestring);
    }
}

static void load_states(struct loader *l, struct provider *p, const cJSON *status)
{
    const cJSON *st = load_obj(l, status, "status", "states", true);
    if (!st)
        return;
    p->states = calloc((size_t)cJSON_GetArraySize(st) + 1, sizeof(*p->states));
    const cJSON *it;
    cJSON_ArrayForEach(it, st)
    {
        enum task_state s;
        if (!cJSON_IsString(it) || task_state_parse(it->valuestring, &s) < 0) {
            load_fail(l,
                      "status.states.%s must be one of waiting, queuing, generating, success, "
                      "failed",
                      it->string);
            return;
        }
        if (p->states) {
            p->states[p->n_states].word = strdup(it->string);
            p->states[p->n_states++].state = s;
        }
    }
    if (p->n_states == 0)
        load_fail(l, "status.states is empty");
}

static void load_envelope(struct loader *l, struct provider *p, const cJSON *root)
{
    const cJSON *env = load_obj(l, root, "", "envelope", false);
    if (!env)
        return;
    static const char *const keys[] = {"code", "ok", "message", "data", NULL};
    load_keys(l, env, "envelope", keys);
    p->env_code = load_str(l, env, "envelope", "code", true);
    p->env_message = load_str(l, env, "envelope", "message", false);
    p->env_data = load_str(l, env, "envelope", "data", true);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(env, "ok");
    if (!cJSON_IsNumber(ok) || !(ok->valuedouble >= 0 && ok->valuedouble <= 999999))
        load_fail(l, "envelope.ok must be a number (the code of success)");
    else
        p->env_ok = (long)ok->valuedouble;
}

static void load_variants(struct loader *l, struct provider *p, const cJSON *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sub, "variants");
    if (!v)
        return;
    if (!cJSON_IsArray(v)) {
        load_fail(l, "submit.variants must be an array of objects");
        return;
    }
    p->variants = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*p->variants));
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        static const char *const keys[] = {"match", "url", "body", "callback_body", NULL};
        if (!cJSON_IsObject(it)) {
            load_fail(l, "submit.variants must be an array of objects");
            return;
        }
        load_keys(l, it, "submit.variants[]", keys);
        if (!p->variants)
            continue;
        struct submit_variant *sv = &p->variants[p->n_variants++];
        sv->match = load_str(l, it, "submit.variants[]", "match", true);
        sv->url = load_str(l, it, "submit.variants[]", "url", true);
        if (sv->url && !url_template_ok(sv->url))
            load_fail(l, "submit.variants[].url must start with {base} or http(s)://");
        sv->body = load_body(l, it, "submit.variants[]", "body");
        sv->callback_body = load_body(l, it, "submit.variants[]", "callback_body");
    }
}

static void load_submit(struct loader *l, struct provider *p, const cJSON *root)
{
    const cJSON *sub = load_obj(l, root, "", "submit", true);
    if (!sub)
        return;
    static const char *const keys[] = {"method",         "url",      "body",    "callback_body",
                                       "callback_query", "variants", "task_id", "status_url",
                                       "result_url",     NULL};
    load_keys(l, sub, "submit", keys);
    p->submit_method = load_str(l, sub, "submit", "method", false);
    if (!p->submit_method)
        p->submit_method = strdup("POST");
    else if (strcmp(p->submit_method, "POST") != 0 && strcmp(p->submit_method, "PUT") != 0)
        load_fail(l, "submit.method must be POST or PUT");
    p->submit_url = load_str(l, sub, "submit", "url", true);
    if (p->submit_url && !url_template_ok(p->submit_url))
        load_fail(l, "submit.url must start with {base} or http(s)://");
    p->submit_body = load_body(l, sub, "submit", "body");
    if (!p->submit_body && !l->failed)
        load_fail(l, "missing key submit.body");
    p->callback_body = load_body(l, sub, "submit", "callback_body");
    const cJSON *q = load_obj(l, sub, "submit", "callback_query", false);
    if (q) {
        const cJSON *it;
        cJSON_ArrayForEach(it, q)
        {
            if (!cJSON_IsString(it))
                load_fail(l, "submit.callback_query.%s must be a string", it->string);
        }
        p->callback_query = cJSON_Duplicate(q, true);
    }
    load_variants(l, p, sub);
    p->submit_task_id = load_str(l, sub, "submit", "task_id", true);
    p->submit_status_url = load_str(l, sub, "submit", "status_url", false);
    p->submit_result_url = load_str(l, sub, "submit", "result_url", false);
}

/* A progress pattern: an ERE whose first group is the percentage. */
static void load_progress_re(struct loader *l, struct provider *p, const char *re)
{
    bool backref = false;
    for (const char *c = re; *c; c++)
        backref |= c[0] == '\\' && isdigit((unsigned char)c[1]);
    if (strlen(re) > PROVIDER_MAX_REGEX || strchr(re, '{') || backref) {
        load_fail(l,
                  "status.progress_logs must be a regular expression of at most %d bytes, "
                  "without {m,n} intervals or back-references",
                  PROVIDER_MAX_REGEX);
        return;
    }
    if (regcomp(&p->progress_re, re, REG_EXTENDED | REG_NEWLINE) != 0) {
        load_fail(l, "status.progress_logs is not a valid extended regular expression");
        return;
    }
    p->has_progress_re = true;
    if (p->progress_re.re_nsub < 1)
        load_fail(l, "status.progress_logs needs a group (...) around the percentage");
}

/* Every value of a query object must be a string. */
static cJSON *load_query(struct loader *l, const cJSON *obj, const char *where, const char *key)
{
    const cJSON *q = load_obj(l, obj, where, key, false), *it;
    cJSON_ArrayForEach(it, q)
    {
        if (!cJSON_IsString(it))
            load_fail(l, "%s.%s.%s must be a string", where, key, it->string);
    }
    return q ? cJSON_Duplicate(q, true) : NULL;
}

static void load_status_extras(struct loader *l, struct provider *p, const cJSON *st)
{
    p->logs_path = load_str(l, st, "status", "logs", false);
    p->queue_path = load_str(l, st, "status", "queue_position", false);
    p->input_path = load_str(l, st, "status", "input", false);
    p->input_field = load_str(l, st, "status", "input_field", false);
    p->input_is_json_string = load_bool(l, st, "status", "input_is_json_string");
    char *re = load_str(l, st, "status", "progress_logs", false);
    if (re && !p->logs_path)
        load_fail(l, "status.progress_logs needs status.logs (where the logs are)");
    else if (re)
        load_progress_re(l, p, re);
    free(re);
    p->status_query = load_query(l, st, "status", "query");
}

static void load_status(struct loader *l, struct provider *p, const cJSON *root)
{
    const cJSON *st = load_obj(l, root, "", "status", true);
    if (!st)
        return;
    static const char *const keys[] = {"url",
                                       "state",
                                       "states",
                                       "progress",
                                       "result",
                                       "result_is_json_string",
                                       "urls",
                                       "failed_if",
                                       "error_code",
                                       "error_message",
                                       "times",
                                       "create_time",
                                       "update_time",
                                       "complete_time",
                                       "cost_time",
                                       "outputs",
                                       "not_yet_codes",
                                       "logs",
                                       "progress_logs",
                                       "queue_position",
                                       "input",
                                       "input_is_json_string",
                                       "input_field",
                                       "query",
                                       NULL};
    load_keys(l, st, "status", keys);
    p->status_url = load_str(l, st, "status", "url", true);
    if (p->status_url && !url_template_ok(p->status_url))
        load_fail(l, "status.url must start with {base} or http(s)://");
    p->state_path = load_str(l, st, "status", "state", true);
    load_states(l, p, st);
    p->progress_path = load_str(l, st, "status", "progress", false);
    p->result_path = load_str(l, st, "status", "result", false);
    p->result_is_json_string = load_bool(l, st, "status", "result_is_json_string");
    p->urls_path = load_str(l, st, "status", "urls", false);
    p->failed_if = load_str(l, st, "status", "failed_if", false);
    p->error_code_path = load_str(l, st, "status", "error_code", false);
    p->error_msg_path = load_str(l, st, "status", "error_message", false);
    char *times = load_str(l, st, "status", "times", false);
    p->times = !times                      ? TIMES_NONE
               : strcmp(times, "ms") == 0  ? TIMES_MS
               : strcmp(times, "iso") == 0 ? TIMES_ISO
                                           : TIMES_NONE;
    if (times && p->times == TIMES_NONE)
        load_fail(l, "status.times must be \"ms\" or \"iso\"");
    free(times);
    p->create_path = load_str(l, st, "status", "create_time", false);
    p->update_path = load_str(l, st, "status", "update_time", false);
    p->complete_path = load_str(l, st, "status", "complete_time", false);
    p->cost_path = load_str(l, st, "status", "cost_time", false);
    char *outputs = load_str(l, st, "status", "outputs", false);
    if (outputs && strcmp(outputs, "any") != 0 && strcmp(outputs, "urls") != 0)
        load_fail(l, "status.outputs must be \"urls\" or \"any\"");
    p->outputs_any = outputs && strcmp(outputs, "any") == 0;
    free(outputs);
    load_status_extras(l, p, st);
    const cJSON *ny = cJSON_GetObjectItemCaseSensitive(st, "not_yet_codes"), *it;
    if (ny && !cJSON_IsArray(ny))
        load_fail(l, "status.not_yet_codes must be an array of codes");
    p->not_yet = calloc((size_t)cJSON_GetArraySize(ny) + 1, sizeof(long));
    if (!cJSON_IsArray(ny))
        ny = NULL;
    cJSON_ArrayForEach(it, ny)
    {
        if (!cJSON_IsNumber(it) || it->valuedouble < 100 || it->valuedouble > 999999)
            load_fail(l, "status.not_yet_codes must be an array of codes");
        else if (p->not_yet)
            p->not_yet[p->n_not_yet++] = (long)it->valuedouble;
    }
}

static void load_result(struct loader *l, struct provider *p, const cJSON *root)
{
    const cJSON *r = load_obj(l, root, "", "result", false);
    if (!r) {
        if (!p->result_path && !l->failed)
            load_fail(l, "no way to the result: give status.result or a result section");
        return;
    }
    static const char *const keys[] = {"url", "urls", "error_code", "error_message", NULL};
    load_keys(l, r, "result", keys);
    p->has_result = true;
    p->result_url = load_str(l, r, "result", "url", true);
    if (p->result_url && !url_template_ok(p->result_url))
        load_fail(l, "result.url must start with {base}, {result_url} or http(s)://");
    p->result_urls_path = load_str(l, r, "result", "urls", false);
    if (!p->result_urls_path)
        p->result_urls_path = strdup("");
    p->result_error_code = load_str(l, r, "result", "error_code", false);
    p->result_error_msg = load_str(l, r, "result", "error_message", false);
}

static void load_cancel(struct loader *l, struct provider *p, const cJSON *root)
{
    const cJSON *c = load_obj(l, root, "", "cancel", false);
    if (!c)
        return;
    static const char *const keys[] = {"method", "url", "url_field", "state", "answers", NULL};
    load_keys(l, c, "cancel", keys);
    p->has_cancel = true;
    p->cancel_method = load_str(l, c, "cancel", "method", false);
    if (!p->cancel_method)
        p->cancel_method = strdup("POST");
    else if (strcmp(p->cancel_method, "POST") != 0 && strcmp(p->cancel_method, "PUT") != 0)
        load_fail(l, "cancel.method must be POST or PUT");
    p->cancel_url = load_str(l, c, "cancel", "url", true);
    if (p->cancel_url && !url_template_ok(p->cancel_url))
        load_fail(l, "cancel.url must start with {base} or http(s)://");
    p->cancel_url_field = load_str(l, c, "cancel", "url_field", false);
    p->cancel_state = load_str(l, c, "cancel", "state", true);
    const cJSON *a = load_obj(l, c, "cancel", "answers", true), *it;
    p->cancel_words = calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof(*p->cancel_words));
    cJSON_ArrayForEach(it, a)
    {
        static const char *const names[] = {"canceled", "requested", "too_late", "not_found"};
        static const enum provider_cancel_outcome outs[] = {
            PROVIDER_CANCEL_DONE, PROVIDER_CANCEL_REQUESTED, PROVIDER_CANCEL_TOO_LATE,
            PROVIDER_CANCEL_TOO_LATE};
        size_t k = 0;
        while (cJSON_IsString(it) && k < 4 && strcmp(it->valuestring, names[k]) != 0)
            k++;
        if (!cJSON_IsString(it) || k == 4) {
            load_fail(l, "cancel.answers.%s must be canceled, requested, too_late or not_found",
                      it->string);
            return;
        }
        if (!p->cancel_words)
            continue;
        struct cancel_word *w = &p->cancel_words[p->n_cancel_words++];
        w->word = strdup(it->string);
        w->outcome = outs[k];
        w->not_found = k == 3;
    }
    if (p->n_cancel_words == 0 && !l->failed)
        load_fail(l, "cancel.answers is empty");
}

/* stream: where a task's status is streamed as server-sent events, each a status object. */
static void load_stream(struct loader *l, struct provider *p, const cJSON *root)
{
    const cJSON *st = load_obj(l, root, "", "stream", false);
    if (!st)
        return;
    static const char *const keys[] = {"url", "max_open", NULL};
    load_keys(l, st, "stream", keys);
    p->stream_url = load_str(l, st, "stream", "url", true);
    if (p->stream_url && !url_template_ok(p->stream_url))
        load_fail(l, "stream.url must start with {base} or http(s)://");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(st, "max_open");
    p->stream_max = PROVIDER_STREAM_MAX_OPEN;
    if (cJSON_IsNumber(m) && m->valuedouble >= 1 && m->valuedouble <= 10000 &&
        m->valuedouble == floor(m->valuedouble))
        p->stream_max = (int)m->valuedouble;
    else if (m)
        load_fail(l, "stream.max_open must be a whole number of streams from 1 to 10000");
}

/* A size in bytes: a whole number from 1 to 4 GiB. */
static size_t load_size(struct loader *l, const cJSON *obj, const char *key, size_t dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return dflt;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 4294967296.0) ||
        v->valuedouble != floor(v->valuedouble)) {
        load_fail(l, "upload.%s must be a number of bytes (1 to 4 GiB)", key);
        return dflt;
    }
    return (size_t)v->valuedouble;
}

static void load_upload(struct loader *l, struct provider *p, const cJSON *root)
{
    const cJSON *u = load_obj(l, root, "", "upload", false);
    if (!u)
        return;
    static const char *const keys[] = {"kind",
                                       "base_url",
                                       "url",
                                       "field",
                                       "fields",
                                       "body",
                                       "file_url",
                                       "put_url",
                                       "max_bytes",
                                       "data_uri_ok",
                                       "data_uri_max_bytes",
                                       NULL};
    load_keys(l, u, "upload", keys);
    char *kind = load_str(l, u, "upload", "kind", false);
    p->upload_kind = !kind                               ? UPLOAD_NONE
                     : strcmp(kind, "multipart") == 0    ? UPLOAD_MULTIPART
                     : strcmp(kind, "json") == 0         ? UPLOAD_JSON
                     : strcmp(kind, "initiate_put") == 0 ? UPLOAD_INITIATE_PUT
                                                         : UPLOAD_NONE;
    if (kind && p->upload_kind == UPLOAD_NONE)
        load_fail(l, "upload.kind must be multipart, json or initiate_put");
    free(kind);
    p->data_uri_ok = load_bool(l, u, "upload", "data_uri_ok");
    p->upload_max = load_size(l, u, "max_bytes", PROVIDER_UPLOAD_MAX);
    p->data_uri_max = load_size(l, u, "data_uri_max_bytes", PROVIDER_DATA_URI_MAX);
    if (p->upload_kind == UPLOAD_NONE) {
        if (!p->data_uri_ok && !l->failed)
            load_fail(l, "upload needs a kind, or data_uri_ok: true");
        return;
    }
    char *base = load_str(l, u, "upload", "base_url", false);
    if (base && strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        load_fail(l, "upload.base_url must start with http:// or https://");
    else if (base)
        p->upload_base = strndup(base, strlen(base) - (base[strlen(base) - 1] == '/'));
    free(base);
    p->upload_url = load_str(l, u, "upload", "url", true);
    if (p->upload_url && !url_template_ok(p->upload_url))
        load_fail(l, "upload.url must start with {base}, {upload_base} or http(s)://");
    p->upload_file_url = load_str(l, u, "upload", "file_url", true);
    if (p->upload_kind == UPLOAD_MULTIPART) {
        p->upload_field = load_str(l, u, "upload", "field", true);
        p->upload_fields = load_query(l, u, "upload", "fields");
    } else {
        const cJSON *b = load_obj(l, u, "upload", "body", true);
        p->upload_body = b ? cJSON_Duplicate(b, true) : NULL;
    }
    if (p->upload_kind == UPLOAD_INITIATE_PUT)
        p->upload_put_url = load_str(l, u, "upload", "put_url", true);
}

struct provider *provider_load_json(const char *text, const char *source, char *err, size_t errlen)
{
    struct loader l = {.source = source, .err = err, .errlen = errlen};
    cJSON *root = cJSON_Parse(text);
    if (!cJSON_IsObject(root)) {
        load_fail(&l, "not a valid JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    struct provider *p = calloc(1, sizeof(*p));
    if (!p) {
        load_fail(&l, "out of memory");
        cJSON_Delete(root);
        return NULL;
    }
    static const char *const keys[] = {"name",
                                       "about",
                                       "base_url",
                                       "auth",
                                       "envelope",
                                       "error_message",
                                       "submit",
                                       "status",
                                       "result",
                                       "error_type_header",
                                       "result_url_lifetime_s",
                                       "app_namespaces",
                                       "cancel",
                                       "upload",
                                       "stream",
                                       NULL};
    load_keys(&l, root, "", keys);
    p->name = load_str(&l, root, "profile", "name", true);
    p->base_url = load_str(&l, root, "profile", "base_url", false);
    if (p->base_url && provider_set_base_url(p, p->base_url) < 0)
        load_fail(&l, "base_url must start with http:// or https://");
    const cJSON *auth = load_obj(&l, root, "", "auth", true);
    if (auth) {
        static const char *const akeys[] = {"header", "value", NULL};
        load_keys(&l, auth, "auth", akeys);
        p->auth_header = load_str(&l, auth, "auth", "header", true);
        p->auth_value = load_str(&l, auth, "auth", "value", true);
        if (p->auth_value && !strstr(p->auth_value, "{key}"))
            load_fail(&l, "auth.value must hold {key}");
        if (p->auth_header && (!*p->auth_header || strpbrk(p->auth_header, ": \r\n")))
            load_fail(&l, "auth.header must be a plain header name");
    }
    load_envelope(&l, p, root);
    p->error_type_header = load_str(&l, root, "profile", "error_type_header", false);
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(root, "app_namespaces"), *nsi;
    if (ns && !cJSON_IsArray(ns))
        load_fail(&l, "app_namespaces must be an array of strings");
    p->app_ns = calloc((size_t)cJSON_GetArraySize(ns) + 1, sizeof(char *));
    if (!cJSON_IsArray(ns))
        ns = NULL;
    cJSON_ArrayForEach(nsi, ns)
    {
        if (!cJSON_IsString(nsi))
            load_fail(&l, "app_namespaces must be an array of strings");
        else if (p->app_ns)
            p->app_ns[p->n_app_ns++] = strdup(nsi->valuestring);
    }
    const cJSON *life = cJSON_GetObjectItemCaseSensitive(root, "result_url_lifetime_s");
    if (cJSON_IsNumber(life) && (life->valuedouble == -1 || life->valuedouble >= 1) &&
        life->valuedouble < 1e10)
        p->url_lifetime_s = (int64_t)life->valuedouble;
    else if (life && !cJSON_IsNull(life))
        load_fail(&l, "result_url_lifetime_s must be a number of seconds, or -1 for URLs that "
                      "never expire");
    load_error_message(&l, p, root);
    load_submit(&l, p, root);
    load_status(&l, p, root);
    load_result(&l, p, root);
    load_cancel(&l, p, root);
    load_upload(&l, p, root);
    load_stream(&l, p, root);
    cJSON_Delete(root);
    if (l.failed) {
        provider_free(p);
        return NULL;
    }
    p->loaded = true;
    return p;
}

struct provider *provider_load_builtin(const char *name, char *err, size_t errlen)
{
    for (const struct provider_builtin *b = provider_builtins; b->name; b++) {
        if (strcmp(b->name, name) == 0) {
            char source[64];
            snprintf(source, sizeof(source), "built-in %s", name);
            return provider_load_json(b->json, source, err, errlen);
        }
    }
    snprintf(err, errlen, "no built-in provider profile '%s'", name);
    return NULL;
}

int provider_set_base_url(struct provider *p, const char *base_url)
{
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)
        return -EINVAL;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    char *copy = strndup(base_url, n);
    if (!copy)
        return -ENOMEM;
    free(p->base_url);
    p->base_url = copy;
    /* A mount pointed elsewhere (a test server, a proxy) uploads there too. */
    if (p->loaded) {
        free(p->upload_base);
        p->upload_base = NULL;
    }
    return 0;
}

const char *provider_name(const struct provider *p)
{
    return p->name;
}

const char *provider_base_url(const struct provider *p)
{
    return p->base_url;
}

const char *provider_error_type_header(const struct provider *p)
{
    return p->error_type_header;
}

int64_t provider_url_lifetime_s(const struct provider *p)
{
    return p->url_lifetime_s;
}

void provider_free(struct provider *p)
{
    if (!p)
        return;
    char **strs[] = {&p->name,
                     &p->base_url,
                     &p->auth_header,
                     &p->auth_value,
                     &p->env_code,
                     &p->env_message,
                     &p->env_data,
                     &p->submit_method,
                     &p->submit_url,
                     &p->submit_task_id,
                     &p->submit_status_url,
                     &p->submit_result_url,
                     &p->status_url,
                     &p->state_path,
                     &p->progress_path,
                     &p->result_path,
                     &p->urls_path,
                     &p->failed_if,
                     &p->error_code_path,
                     &p->error_msg_path,
                     &p->create_path,
                     &p->update_path,
                     &p->complete_path,
                     &p->cost_path,
                     &p->result_url,
                     &p->result_urls_path,
                     &p->result_error_code,
                     &p->result_error_msg,
                     &p->error_type_header,
                     &p->logs_path,
                     &p->queue_path,
                     &p->input_path,
                     &p->input_field,
                     &p->cancel_method,
                     &p->cancel_url,
                     &p->cancel_url_field,
                     &p->cancel_state,
                     &p->upload_base,
                     &p->upload_url,
                     &p->upload_field,
                     &p->upload_file_url,
                     &p->upload_put_url,
                     &p->stream_url};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    for (size_t i = 0; i < p->n_error_message; i++)
        free(p->error_message[i]);
    free(p->error_message);
    for (size_t i = 0; i < p->n_states; i++)
        free(p->states[i].word);
    free(p->states);
    cJSON_Delete(p->submit_body);
    cJSON_Delete(p->callback_body);
    cJSON_Delete(p->callback_query);
    for (size_t i = 0; i < p->n_variants; i++) {
        free(p->variants[i].match);
        free(p->variants[i].url);
        cJSON_Delete(p->variants[i].body);
        cJSON_Delete(p->variants[i].callback_body);
    }
    free(p->variants);
    free(p->not_yet);
    for (size_t i = 0; i < p->n_app_ns; i++)
        free(p->app_ns[i]);
    free(p->app_ns);
    if (p->has_progress_re)
        regfree(&p->progress_re);
    cJSON_Delete(p->status_query);
    for (size_t i = 0; i < p->n_cancel_words; i++)
        free(p->cancel_words[i].word);
    free(p->cancel_words);
    cJSON_Delete(p->upload_fields);
    cJSON_Delete(p->upload_body);
    free(p);
}

bool provider_can_cancel(const struct provider *p)
{
    return p->has_cancel;
}

char *provider_auth_header(const struct provider *p, const char *key)
{
    /* A CR or LF in the key would smuggle extra header lines into requests. */
    for (const char *c = key; *c; c++) {
        if (iscntrl((unsigned char)*c))
            return NULL;
    }
    const char *at = strstr(p->auth_value, "{key}");
    /* Sized once and written in place: no intermediate buffer (as asprintf
     * may use) is freed with the key in it. */
    int pre = (int)(at - p->auth_value);
    size_t len = strlen(p->auth_header) + 2 + (size_t)pre + strlen(key) + strlen(at + 5);
    char *line = malloc(len + 1);
    if (line)
        snprintf(line, len + 1, "%s: %.*s%s%s", p->auth_header, pre, p->auth_value, key, at + 5);
    return line;
}

void provider_request_clear(struct provider_request *r)
{
    free(r->url);
    free(r->body);
    free(r->content_type);
    *r = (struct provider_request){0};
}

void provider_submit_clear(struct provider_submit *s)
{
    free(s->task_id);
    free(s->status_url);
    free(s->result_url);
    free(s->cancel_url);
    *s = (struct provider_submit){0};
}

void provider_upload_clear(struct provider_upload *u)
{
    free(u->file_url);
    free(u->put_url);
    *u = (struct provider_upload){0};
}

void provider_status_clear(struct provider_status *s)
{
    for (size_t i = 0; i < s->n_urls; i++) {
        free(s->urls[i]);
        free(s->names ? s->names[i] : NULL);
    }
    free(s->urls);
    free(s->names);
    free(s->fail_code);
    free(s->fail_msg);
    free(s->data_json);
    free(s->logs);
    free(s->input_json);
    free(s->cancel_url);
    *s = (struct provider_status){.progress = -1, .queue_position = -1};
}

/* ---- requests ---- */

/* Appends s to the string being built in *out (len bytes so far),
 * percent-encoding every byte outside RFC 3986's unreserved set (and '/'
 * when keep_slash, since model ids with slashes are path segments). */
static int provider_append_enc(char **out, size_t *len, const char *s, size_t n, bool keep_slash)
{
    char *grown = realloc(*out, *len + 3 * n + 1);
    if (!grown)
        return -ENOMEM;
    *out = grown;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || strchr("-._~", c) || (keep_slash && c == '/'))
            grown[(*len)++] = (char)c;
        else
            *len += (size_t)sprintf(grown + *len, "%%%02X", c);
    }
    grown[*len] = '\0';
    return 0;
}

static int provider_append_raw(char **out, size_t *len, const char *s, size_t n)
{
    char *grown = realloc(*out, *len + n + 1);
    if (!grown)
        return -ENOMEM;
    *out = grown;
    memcpy(grown + *len, s, n);
    *len += n;
    grown[*len] = '\0';
    return 0;
}

struct vars {
    const char *base, *model, *id, *callback_url, *result_url, *upload_base;
    char app[256];       /* the model id's first two segments (fal's app), without a version */
    const char *version; /* the text after the model id's last ':', or NULL */
};

static void provider_vars_model(const struct provider *p, struct vars *v, const char *model)
{
    v->model = model;
    const char *colon = strrchr(model, ':');
    v->version = colon && colon[1] ? colon + 1 : NULL;
    size_t n = colon ? (size_t)(colon - model) : strlen(model);
    /* The app is OWNER/APP, or NS/OWNER/APP in the profile's app namespaces. */
    int segments = 2;
    for (size_t i = 0; i < p->n_app_ns; i++) {
        size_t l = strlen(p->app_ns[i]);
        if (strncmp(model, p->app_ns[i], l) == 0 && model[l] == '/')
            segments = 3;
    }
    const char *end = model;
    for (int i = 0; i < segments && end; i++) {
        end = memchr(end, '/', n - (size_t)(end - model));
        if (end && i < segments - 1)
            end++;
    }
    if (end)
        n = (size_t)(end - model);
    if (n >= sizeof(v->app))
        n = 0;
    memcpy(v->app, model, n);
    v->app[n] = '\0';
}

/* Expands {base} {model} {id} {callback_url} {result_url} in a URL template:
 * the model keeps its slashes, the id and callback URL are encoded. */
static char *provider_expand(const char *tmpl, const struct vars *v)
{
    char *out = strdup("");
    size_t len = 0;
    const char *p = tmpl;
    while (out && *p) {
        const char *open = strchr(p, '{');
        size_t lit = open ? (size_t)(open - p) : strlen(p);
        int rc = provider_append_raw(&out, &len, p, lit);
        p += lit;
        if (rc == 0 && open) {
            const char *close = strchr(open, '}');
            size_t nl = close ? (size_t)(close - open + 1) : 0;
            const char *val = NULL;
            bool raw = false, slash = false;
            if (nl == 6 && strncmp(open, "{base}", 6) == 0)
                val = v->base, raw = true;
            else if (nl == 7 && strncmp(open, "{model}", 7) == 0)
                val = v->model, slash = true;
            else if (nl == 5 && strncmp(open, "{app}", 5) == 0)
                val = v->app[0] ? v->app : NULL, slash = true;
            else if (nl == 9 && strncmp(open, "{version}", 9) == 0)
                val = v->version;
            else if (nl == 4 && strncmp(open, "{id}", 4) == 0)
                val = v->id;
            else if (nl == 14 && strncmp(open, "{callback_url}", 14) == 0)
                val = v->callback_url;
            else if (nl == 12 && strncmp(open, "{result_url}", 12) == 0)
                val = v->result_url, raw = true;
            else if (nl == 13 && strncmp(open, "{upload_base}", 13) == 0)
                val = v->upload_base, raw = true;
            if (!val) {
                free(out);
                return NULL; /* a variable this request has no value for */
            }
            rc = raw ? provider_append_raw(&out, &len, val, strlen(val))
                     : provider_append_enc(&out, &len, val, strlen(val), slash);
            p = open + nl;
        }
        if (rc < 0) {
            free(out);
            return NULL;
        }
    }
    return out;
}

/* A copy of a body template with "{input}" replaced by the input object and
 * the other variables expanded inside strings. */
static cJSON *provider_fill(const cJSON *tmpl, const cJSON *input, const struct vars *v)
{
    if (cJSON_IsString(tmpl)) {
        if (strcmp(tmpl->valuestring, "{input}") == 0)
            return cJSON_Duplicate(input, true);
        if (strcmp(tmpl->valuestring, "{callback_url}") == 0)
            return v->callback_url ? cJSON_CreateString(v->callback_url) : NULL;
        if (strcmp(tmpl->valuestring, "{model}") == 0)
            return cJSON_CreateString(v->model);
        if (strcmp(tmpl->valuestring, "{version}") == 0)
            return v->version ? cJSON_CreateString(v->version) : NULL;
        return cJSON_Duplicate(tmpl, true);
    }
    if (cJSON_IsObject(tmpl) || cJSON_IsArray(tmpl)) {
        cJSON *out = cJSON_IsObject(tmpl) ? cJSON_CreateObject() : cJSON_CreateArray();
        const cJSON *it;
        cJSON_ArrayForEach(it, tmpl)
        {
            cJSON *c = provider_fill(it, input, v);
            if (!c) {
                cJSON_Delete(out);
                return NULL;
            }
            if (cJSON_IsObject(tmpl))
                cJSON_AddItemToObject(out, it->string, c);
            else
                cJSON_AddItemToArray(out, c);
        }
        return out;
    }
    return cJSON_Duplicate(tmpl, true);
}

static const char *provider_base(const struct provider *p)
{
    return p->base_url ? p->base_url : "";
}

/* Appends KEY=VALUE for each member of query to *url (values are templates;
 * provider_expand encodes the variables in them). */
static int provider_append_query(char **url, const cJSON *query, const struct vars *v)
{
    size_t len = strlen(*url);
    bool first = !strchr(*url, '?');
    const cJSON *it;
    cJSON_ArrayForEach(it, query)
    {
        char *val = provider_expand(it->valuestring, v);
        int rc = val ? 0 : -ENOMEM;
        if (rc == 0)
            rc = provider_append_raw(url, &len, first ? "?" : "&", 1);
        if (rc == 0)
            rc = provider_append_enc(url, &len, it->string, strlen(it->string), false);
        if (rc == 0)
            rc = provider_append_raw(url, &len, "=", 1);
        if (rc == 0)
            rc = provider_append_raw(url, &len, val, strlen(val));
        free(val);
        if (rc < 0)
            return rc;
        first = false;
    }
    return 0;
}

int provider_build_submit(const struct provider *p, const char *model, const char *input_json,
                          const char *request_json, const char *callback_url,
                          struct provider_request *out)
{
    *out =
        (struct provider_request){.method = strcmp(p->submit_method, "PUT") == 0 ? "PUT" : "POST"};
    if (!model || !*model || !input_json)
        return -EINVAL;
    cJSON *input = cJSON_Parse(input_json);
    if (!cJSON_IsObject(input)) {
        cJSON_Delete(input);
        return -EINVAL;
    }
    struct vars v = {.base = provider_base(p), .callback_url = callback_url};
    provider_vars_model(p, &v, model);
    const char *url = p->submit_url;
    const cJSON *plain = p->submit_body, *cb = p->callback_body;
    for (size_t i = 0; i < p->n_variants; i++) {
        if (fnmatch(p->variants[i].match, model, 0) == 0) {
            url = p->variants[i].url;
            plain = p->variants[i].body ? p->variants[i].body : plain;
            cb = p->variants[i].callback_body ? p->variants[i].callback_body
                 : p->variants[i].body        ? NULL
                                              : cb;
            break;
        }
    }
    const cJSON *tmpl = callback_url && cb ? cb : plain;
    cJSON *body = provider_fill(tmpl, input, &v);
    cJSON_Delete(input);
    cJSON *extra = request_json ? cJSON_Parse(request_json) : NULL;
    if (request_json && !cJSON_IsObject(extra)) {
        cJSON_Delete(extra);
        cJSON_Delete(body);
        return -EINVAL;
    }
    const cJSON *it;
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(extra);
        extra = NULL;
    }
    cJSON_ArrayForEach(it, extra)
    {
        if (!cJSON_HasObjectItem(body, it->string))
            cJSON_AddItemToObject(body, it->string, cJSON_Duplicate(it, true));
    }
    cJSON_Delete(extra);
    out->body = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    out->url = provider_expand(url, &v);
    /* Providers that take the callback in the query string. */
    if (out->url && callback_url && p->callback_query &&
        provider_append_query(&out->url, p->callback_query, &v) < 0) {
        free(out->url);
        out->url = NULL;
    }
    if (!out->body || !out->url) {
        provider_request_clear(out);
        return -ENOMEM;
    }
    out->body_len = strlen(out->body);
    return 0;
}

/* A URL the provider handed us is only followed on the provider's own
 * origin: the API key goes with it. */
static bool provider_same_origin(const struct provider *p, const char *url)
{
    const char *base = p->base_url;
    if (!base || !url)
        return false;
    const char *bh = strstr(base, "://"), *uh = strstr(url, "://");
    if (!bh || !uh || (bh - base) != (uh - url) || strncmp(base, url, (size_t)(bh - base)) != 0)
        return false;
    size_t bl = strcspn(bh + 3, "/?#"), ul = strcspn(uh + 3, "/?#");
    return bl == ul && strncasecmp(bh + 3, uh + 3, bl) == 0;
}

/* A request to a provider-given URL on the provider's origin, else to the
 * profile's template for the model and task. */
static int provider_task_url(const struct provider *p, const char *tmpl, const char *model,
                             const char *task_id, const char *given, char **out)
{
    if (given && provider_same_origin(p, given)) {
        *out = strdup(given);
    } else {
        if (!model || !*model || !task_id || !*task_id)
            return -EINVAL;
        struct vars v = {.base = provider_base(p), .id = task_id};
        provider_vars_model(p, &v, model);
        *out = provider_expand(tmpl, &v);
    }
    return *out ? 0 : -ENOMEM;
}

/* A GET of the task's URL from template (the status query added), as status and stream are. */
static int provider_build_task_get(const struct provider *p, const char *template,
                                   const char *model, const char *task_id, const char *status_url,
                                   struct provider_request *out)
{
    *out = (struct provider_request){.method = "GET"};
    int rc = provider_task_url(p, template, model, task_id, status_url, &out->url);
    struct vars v = {.base = provider_base(p)};
    if (rc == 0 && p->status_query && provider_append_query(&out->url, p->status_query, &v) < 0)
        rc = -ENOMEM;
    if (rc < 0)
        provider_request_clear(out);
    return rc;
}

int provider_build_status(const struct provider *p, const char *model, const char *task_id,
                          const char *status_url, struct provider_request *out)
{
    return provider_build_task_get(p, p->status_url, model, task_id, status_url, out);
}

int provider_stream_max(const struct provider *p)
{
    return p->stream_url ? p->stream_max : 0;
}

int provider_build_stream(const struct provider *p, const char *model, const char *task_id,
                          struct provider_request *out)
{
    *out = (struct provider_request){.method = "GET"};
    if (!p->stream_url)
        return -EOPNOTSUPP;
    return provider_build_task_get(p, p->stream_url, model, task_id, NULL, out);
}

int provider_build_cancel(const struct provider *p, const char *model, const char *task_id,
                          const char *cancel_url, struct provider_request *out)
{
    *out = (struct provider_request){.method = "POST"};
    if (!p->has_cancel)
        return -EOPNOTSUPP;
    out->method = strcmp(p->cancel_method, "PUT") == 0 ? "PUT" : "POST";
    return provider_task_url(p, p->cancel_url, model, task_id, cancel_url, &out->url);
}

int provider_build_result(const struct provider *p, const char *model, const char *task_id,
                          const char *result_url, struct provider_request *out)
{
    *out = (struct provider_request){.method = "GET"};
    if (!p->has_result)
        return -EINVAL;
    return provider_task_url(p, p->result_url, model, task_id, result_url, &out->url);
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

/* What a code means to the user, and what to do about it. Transient codes get
 * no advice here: what genfs does about them depends on the request, and the
 * engine says it. */
static void provider_code_text(long code, const char **what, const char **advice)
{
    *advice = NULL;
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
        *advice = "lower -o rate if this persists";
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

int64_t provider_parse_ratelimit(const char *remaining, const char *reset, time_t now)
{
    if (!remaining || !reset)
        return -1;
    char *end;
    errno = 0;
    unsigned long long left = strtoull(remaining, &end, 10);
    if (errno || end == remaining || *end || left != 0)
        return -1;
    unsigned long long secs = strtoull(reset, &end, 10);
    if (errno || end == reset || *end)
        return -1;
    /* A Unix time (GitHub-style) rather than seconds to wait. */
    if (secs > 1000000000ULL)
        secs = secs > (unsigned long long)now ? secs - (unsigned long long)now : 0;
    if (secs > (unsigned long long)PROVIDER_MAX_RETRY_AFTER_MS / 1000)
        return PROVIDER_MAX_RETRY_AFTER_MS;
    return (int64_t)secs * 1000;
}

/* ---- helpers for answers ---- */

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

/* A provider's reason as one line: a string; a number; or an array of
 * validation errors as FastAPI-style services give them ({loc, msg, type}),
 * joined as "prompt: ensure this value ...; seed: ..." (malloc'd, or NULL). */
static char *provider_reason(const cJSON *v)
{
    if (cJSON_IsString(v))
        return v->valuestring[0] ? strdup(v->valuestring) : NULL;
    char *out = NULL;
    if (cJSON_IsNumber(v)) {
        provider_dup_code(v, &out);
        return out;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, "msg");
        if (!cJSON_IsString(m))
            m = cJSON_GetObjectItemCaseSensitive(v, "message");
        if (!cJSON_IsString(m) || !m->valuestring[0])
            return NULL;
        /* "loc": ["body", "prompt"]: the field, without the "body" part. */
        const cJSON *loc = cJSON_GetObjectItemCaseSensitive(v, "loc"), *it;
        char field[128] = "";
        size_t n = 0;
        if (!cJSON_IsArray(loc))
            loc = NULL;
        cJSON_ArrayForEach(it, loc)
        {
            char part[64];
            if (cJSON_IsString(it) && strcmp(it->valuestring, "body") != 0)
                snprintf(part, sizeof(part), "%s", it->valuestring);
            else if (cJSON_IsNumber(it))
                snprintf(part, sizeof(part), "%d", it->valueint);
            else
                continue;
            n += (size_t)snprintf(field + n, sizeof(field) - n, "%s%s", n ? "." : "", part);
            if (n >= sizeof(field))
                n = sizeof(field) - 1;
        }
        if (asprintf(&out, "%s%s%s", field, field[0] ? ": " : "", m->valuestring) < 0)
            out = NULL;
        return out;
    }
    if (!cJSON_IsArray(v))
        return NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        char *one = provider_reason(it);
        if (!one)
            continue;
        char *joined;
        if (asprintf(&joined, "%s%s%s", out ? out : "", out ? "; " : "", one) < 0)
            joined = NULL;
        free(one);
        free(out);
        out = joined;
        if (!out)
            return NULL;
    }
    return out;
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

/* The value at a dotted path ("urls.get", "images.0.url"); "" is the value itself. */
static const cJSON *provider_at(const cJSON *v, const char *path)
{
    if (!path)
        return NULL;
    const char *p = path;
    while (v && *p) {
        size_t n = strcspn(p, ".");
        char key[128];
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        if (cJSON_IsArray(v) && n > 0 && strspn(key, "0123456789") == n)
            v = cJSON_GetArrayItem(v, atoi(key));
        else if (cJSON_IsObject(v))
            v = cJSON_GetObjectItemCaseSensitive(v, key);
        else
            return NULL;
        p += n;
        if (*p == '.')
            p++;
    }
    return v;
}

/* Copies a provider's text into a one-line, bounded form. */
static void provider_clean(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *c = s; c && *c && n + 1 < outlen; c++)
        out[n++] = iscntrl((unsigned char)*c) ? ' ' : *c;
    out[n] = '\0';
}

/* What the body of an error answer says, from the profile's error_message paths. */
static void provider_error_text(const struct provider *p, const cJSON *root, char *out,
                                size_t outlen)
{
    out[0] = '\0';
    for (size_t i = 0; root && i < p->n_error_message; i++) {
        char *reason = provider_reason(provider_at(root, p->error_message[i]));
        if (reason) {
            provider_clean(reason, out, outlen);
            free(reason);
            return;
        }
    }
}

static int provider_fail_code(const struct provider *p, struct provider_error *err, long code,
                              const cJSON *root, const struct provider_headers *hdr, time_t now)
{
    char pmsg[160], text[120], type[40] = "";
    const char *what, *advice;
    provider_error_text(p, root, text, sizeof(text));
    if (hdr && hdr->error_type && *hdr->error_type)
        provider_clean(hdr->error_type, type, sizeof(type));
    snprintf(pmsg, sizeof(pmsg), "%s%s%s", type, type[0] && text[0] ? ": " : "", text);
    provider_code_text(code, &what, &advice);
    int e = provider_errno_for_code(code);
    err->code = code;
    if (code == 429 || code == 503)
        err->retry_after_ms = provider_parse_retry_after(hdr ? hdr->retry_after : NULL, now);
    return provider_fail(err, e ? e : -EPROTO, provider_code_retryable(code) || !e,
                         "%s (%ld%s%s)%s%s", what, code, pmsg[0] ? ": " : "", pmsg,
                         advice ? ": " : "", advice ? advice : "");
}

/* Checks the HTTP status and, for profiles with one, the envelope; on
 * success *root holds the parsed body and *data the object to read. */
static int provider_open(const struct provider *p, const char *what, long http_status,
                         const char *body, size_t len, const struct provider_headers *hdr,
                         time_t now, cJSON **root, const cJSON **data, struct provider_error *err)
{
    *err = (struct provider_error){.retry_after_ms = -1};
    *root = NULL;
    if (len > PROVIDER_MAX_BODY)
        body = NULL;
    if (http_status == 0)
        return provider_fail(err, -EIO, true, "%s: no HTTP answer from the provider", what);
    cJSON *doc = body && len ? provider_parse_json(body, len) : NULL;
    if (http_status < 200 || http_status > 299) {
        int rc =
            provider_fail_code(p, err, http_status, cJSON_IsObject(doc) ? doc : NULL, hdr, now);
        cJSON_Delete(doc);
        return rc;
    }
    if (len > PROVIDER_MAX_BODY)
        return provider_fail(err, -EPROTO, true, "%s: the body of %zu bytes is over 1 MiB", what,
                             len);
    if (!doc || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return provider_fail(err, -EPROTO, true, "%s: the body is %s", what,
                             !body || !len ? "empty"
                             : doc         ? "not a JSON object"
                                           : "not valid JSON");
    }
    int rc = 0;
    if (!p->env_code) {
        *data = doc;
    } else {
        const cJSON *code = provider_at(doc, p->env_code);
        /* A code is a small whole number; anything else (1e19, NaN) is garbage. */
        if (!cJSON_IsNumber(code) || !(code->valuedouble >= 0 && code->valuedouble <= 999999))
            rc = provider_fail(err, -EPROTO, true, "%s: \"%s\" is missing or not a number", what,
                               p->env_code);
        else if ((long)code->valuedouble != p->env_ok)
            rc = provider_fail_code(p, err, (long)code->valuedouble, doc, hdr, now);
        else if (!cJSON_IsObject(*data = provider_at(doc, p->env_data)))
            rc = provider_fail(err, -EPROTO, true, "%s: \"%s\" is missing or not an object", what,
                               p->env_data);
    }
    if (rc < 0)
        cJSON_Delete(doc);
    else
        *root = doc;
    return rc;
}

static bool provider_is_url(const char *s)
{
    return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0 || media_is_data_uri(s);
}

/* Adds one output; url is taken over (freed on failure). name may be NULL. */
static int provider_add_output(struct provider_status *out, char *url, const char *name)
{
    if (!url)
        return -ENOMEM;
    if (out->n_urls >= PROVIDER_MAX_URLS) {
        free(url);
        return 0;
    }
    char **grown = realloc(out->urls, (out->n_urls + 1) * sizeof(char *));
    if (!grown) {
        free(url);
        return -ENOMEM;
    }
    out->urls = grown;
    char **names = realloc(out->names, (out->n_urls + 1) * sizeof(char *));
    if (!names) {
        free(url);
        return -ENOMEM;
    }
    out->names = names;
    /* A file name: safe characters only, short enough for "NAME.ext". */
    char clean[PROVIDER_MAX_NAME + 1];
    size_t n = 0;
    for (const char *c = name; c && *c && n < PROVIDER_MAX_NAME; c++)
        clean[n++] = isalnum((unsigned char)*c) || strchr("-_", *c) ? *c : '_';
    clean[n] = '\0';
    names[out->n_urls] = NULL;
    if (n > 0 && !(names[out->n_urls] = strdup(clean))) {
        free(url);
        return -ENOMEM;
    }
    grown[out->n_urls++] = url;
    return 0;
}

/* Result URLs wherever they sit: a string, an array of them, or objects
 * holding "url", at any depth. Only http(s) URLs and data: URIs count; a
 * plain string field of an object counts when it names a media file
 * ("audio": ".../a.wav"), not when it is some other link ("prompt"). An
 * output under an object's key is named after it (fal's "video"); array
 * members are not. */
static int provider_collect(const cJSON *v, const char *name, struct provider_status *out,
                            int depth)
{
    if (!v || depth > 16)
        return 0;
    if (cJSON_IsString(v))
        return provider_is_url(v->valuestring)
                   ? provider_add_output(out, strdup(v->valuestring), name)
                   : 0;
    if (cJSON_IsObject(v)) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, "url");
        if (cJSON_IsString(u))
            return provider_collect(u, name, out, depth + 1);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        bool field = cJSON_IsObject(v);
        if (field && cJSON_IsString(it) && !media_is_data_uri(it->valuestring) &&
            !media_ext_for_url(it->valuestring))
            continue;
        int rc = provider_collect(it, field ? it->string : NULL, out, depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* An array of strings none of which is a URL: a language model's tokens. */
static bool provider_is_tokens(const cJSON *v)
{
    if (!cJSON_IsArray(v) || !v->child)
        return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it) || provider_is_url(it->valuestring))
            return false;
    }
    return true;
}

/* "name-key" for the parts of a named output (NULL name: key alone). */
static char *provider_join_name(const char *name, const char *key)
{
    char *out;
    if (!name)
        return strdup(key);
    return asprintf(&out, "%s-%s", name, key) < 0 ? NULL : out;
}

/* Every value of an output is one (status.outputs "any", as Replicate's
 * outputs are): URLs and data: URIs are fetched or decoded, any other string
 * or number is text; an object's keys name its parts; null is nothing. */
static int provider_collect_any(const cJSON *v, const char *name, struct provider_status *out,
                                int depth)
{
    if (!v || cJSON_IsNull(v) || depth > 16)
        return 0;
    if (cJSON_IsString(v)) {
        if (provider_is_url(v->valuestring))
            return provider_add_output(out, strdup(v->valuestring), name);
        return provider_add_output(out, media_data_uri_text(v->valuestring, strlen(v->valuestring)),
                                   name ? name : "output");
    }
    if (cJSON_IsNumber(v) || cJSON_IsBool(v)) {
        char *text = cJSON_PrintUnformatted(v);
        char *uri = text ? media_data_uri_text(text, strlen(text)) : NULL;
        free(text);
        return provider_add_output(out, uri, name ? name : "output");
    }
    if (provider_is_tokens(v)) {
        size_t len = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            len += strlen(it->valuestring);
        }
        char *text = malloc(len + 1), *o = text;
        cJSON_ArrayForEach(it, v)
        {
            if (text)
                o = stpcpy(o, it->valuestring);
        }
        char *uri = text ? media_data_uri_text(text, len) : NULL;
        free(text);
        return provider_add_output(out, uri, name ? name : "output");
    }
    if (cJSON_IsObject(v)) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, "url");
        if (cJSON_IsString(u) && provider_is_url(u->valuestring))
            return provider_collect_any(u, name, out, depth + 1);
    }
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, v)
    {
        char idx[16], *sub = NULL;
        int rc = 0;
        if (cJSON_IsObject(v)) {
            sub = provider_join_name(name, it->string);
            rc = sub ? 0 : -ENOMEM;
        } else if (name) {
            snprintf(idx, sizeof(idx), "%d", i);
            sub = provider_join_name(name, idx);
            rc = sub ? 0 : -ENOMEM;
        }
        if (rc == 0)
            rc = provider_collect_any(it, sub, out, depth + 1);
        free(sub);
        if (rc < 0)
            return rc;
        i++;
    }
    return 0;
}

/* A well-formed success that names no http(s) result (none at all, or only file:// and the
 * like) is final, not a bad answer to retry: the task failed, and its error says why. */
static int provider_no_url(const char *what, const char *where, struct provider_status *out,
                           struct provider_error *err)
{
    out->state = TASK_FAILED;
    out->fail_code = strdup("no_result_url");
    if (!out->fail_code ||
        asprintf(&out->fail_msg,
                 "the provider reported success without any http(s) result URL in %s (genfs "
                 "fetches http and https only)",
                 where) < 0) {
        out->fail_msg = NULL;
        return provider_fail(err, -ENOMEM, true, "%s: out of memory", what);
    }
    return 0;
}

/* The URLs of a finished task from value, named field in messages (a
 * JSON object inside a string first, when json_string). */
static int provider_urls(const char *what, const char *field, const cJSON *value, bool json_string,
                         const char *urls_path, bool any, struct provider_status *out,
                         struct provider_error *err)
{
    cJSON *parsed = NULL;
    if (json_string) {
        if (!cJSON_IsString(value))
            return provider_fail(err, -EPROTO, true, "%s: %s is not a string", what, field);
        parsed = cJSON_Parse(value->valuestring);
        if (!cJSON_IsObject(parsed)) {
            cJSON_Delete(parsed);
            return provider_fail(err, -EPROTO, true, "%s: %s is not a JSON object", what, field);
        }
        value = parsed;
    }
    const char *path = urls_path ? urls_path : "";
    const cJSON *list = value ? provider_at(value, path) : NULL;
    int rc = 0;
    if (any)
        rc = provider_collect_any(list, NULL, out, 0);
    else if (!list)
        rc = provider_fail(err, -EPROTO, true, "%s: %s has no %s", what, field,
                           *path ? path : "value");
    else if ((rc = provider_collect(list, NULL, out, 0)) == 0 && out->n_urls == 0)
        rc = provider_no_url(what, *path ? path : field, out, err);
    if (rc == -ENOMEM)
        provider_fail(err, rc, true, "%s: out of memory", what);
    cJSON_Delete(parsed);
    return rc;
}

/* "2024-05-01T12:34:56.789Z" or with an offset: Unix ms, 0 if not a time. */
static int64_t provider_iso_ms(const char *s)
{
    int y, mo, d, h, mi;
    double sec;
    int used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
        return 0;
    const char *z = s + used;
    int off = 0;
    if (*z == '+' || *z == '-') {
        int oh = 0, om = 0;
        if (sscanf(z + 1, "%2d:%2d", &oh, &om) < 1)
            return 0;
        off = (oh * 60 + om) * (*z == '-' ? -1 : 1);
    } else if (*z != 'Z' && *z != '\0') {
        return 0;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
        return 0;
    int64_t days = provider_days_from_civil(y, mo, d);
    double ms = ((double)days * 86400 + h * 3600 + mi * 60 - off * 60 + sec) * 1000.0;
    return ms > 0 && ms < 9.0e15 ? (int64_t)ms : 0;
}

static int64_t provider_time(const struct provider *p, const cJSON *data, const char *path)
{
    const cJSON *t = path ? provider_at(data, path) : NULL;
    if (p->times == TIMES_MS && cJSON_IsNumber(t) && isfinite(t->valuedouble) &&
        t->valuedouble >= 0 && t->valuedouble <= 9.0e15)
        return (int64_t)t->valuedouble;
    if (p->times == TIMES_ISO && cJSON_IsString(t))
        return provider_iso_ms(t->valuestring);
    return 0;
}

int provider_parse_submit(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          struct provider_submit *out, struct provider_error *err)
{
    *out = (struct provider_submit){0};
    cJSON *root;
    const cJSON *data;
    int rc = provider_open(p, "submit answer", http_status, body, len, hdr, now, &root, &data, err);
    if (rc < 0)
        return rc;
    const cJSON *id = provider_at(data, p->submit_task_id);
    if (!cJSON_IsString(id))
        rc = provider_fail(err, -EPROTO, true, "submit answer: %s is missing or not a string",
                           p->submit_task_id);
    else if (!names_task_id_valid(id->valuestring))
        rc = provider_fail(err, -EPROTO, true,
                           "submit answer: %s \"%.60s\" is empty, too long or not a safe "
                           "file name",
                           p->submit_task_id, id->valuestring);
    else if (!(out->task_id = strdup(id->valuestring)))
        rc = provider_fail(err, -ENOMEM, true, "submit answer: out of memory");
    /* Provider-given URLs are kept only when they stay on the provider's origin. */
    const cJSON *su = provider_at(data, p->submit_status_url);
    const cJSON *ru = provider_at(data, p->submit_result_url);
    if (rc == 0 && cJSON_IsString(su) && provider_same_origin(p, su->valuestring))
        out->status_url = strdup(su->valuestring);
    if (rc == 0 && cJSON_IsString(ru) && provider_same_origin(p, ru->valuestring))
        out->result_url = strdup(ru->valuestring);
    const cJSON *cu = p->cancel_url_field ? provider_at(data, p->cancel_url_field) : NULL;
    if (rc == 0 && cJSON_IsString(cu) && provider_same_origin(p, cu->valuestring))
        out->cancel_url = strdup(cu->valuestring);
    if (rc < 0)
        provider_submit_clear(out);
    cJSON_Delete(root);
    return rc;
}

static bool provider_state_of(const struct provider *p, const char *word, enum task_state *out)
{
    for (size_t i = 0; i < p->n_states; i++) {
        if (strcmp(p->states[i].word, word) == 0) {
            *out = p->states[i].state;
            return true;
        }
    }
    return false;
}

/* failCode may be a string or a number: a string for us. */
/* The first of a|b|c that is present and not null. */
static const cJSON *provider_at_any(const cJSON *data, const char *paths)
{
    char one[256];
    for (const char *p = paths; p && *p;) {
        size_t n = strcspn(p, "|");
        if (n < sizeof(one)) {
            memcpy(one, p, n);
            one[n] = '\0';
            const cJSON *v = provider_at(data, one);
            if (v && !cJSON_IsNull(v))
                return v;
        }
        p += n + (p[n] == '|');
    }
    return NULL;
}

static int provider_dup_at(const cJSON *data, const char *path, char **out)
{
    return path ? provider_dup_code(provider_at_any(data, path), out) : 0;
}

/* failCode and failMsg of a failed task; without a code, the provider's own
 * word for the end (canceled, aborted, fail) stands in for one. */
static int provider_fail_reason(const cJSON *data, const char *code_path, const char *msg_path,
                                const char *word, struct provider_status *out)
{
    if (provider_dup_at(data, code_path, &out->fail_code) < 0)
        return -ENOMEM;
    const cJSON *m = provider_at_any(data, msg_path);
    out->fail_msg = provider_reason(m);
    if (out->fail_code || !word)
        return 0;
    if (!(out->fail_code = strdup(word)))
        return -ENOMEM;
    if (!out->fail_msg &&
        asprintf(&out->fail_msg, "the provider reports the task %s, without a reason", word) < 0)
        out->fail_msg = NULL;
    return 0;
}

/* Logs as text: a string as it is; an array of lines (strings, or objects
 * holding "message" and maybe "timestamp", as fal gives them), one a line. */
static char *provider_logs_text(const cJSON *v)
{
    if (cJSON_IsString(v))
        return strdup(v->valuestring);
    if (!cJSON_IsArray(v))
        return NULL;
    char *out = strdup("");
    size_t len = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *m = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "message") : it;
        const cJSON *t =
            cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "timestamp") : NULL;
        if (!out || !cJSON_IsString(m))
            continue;
        if ((cJSON_IsString(t) &&
             (provider_append_raw(&out, &len, t->valuestring, strlen(t->valuestring)) < 0 ||
              provider_append_raw(&out, &len, " ", 1) < 0)) ||
            provider_append_raw(&out, &len, m->valuestring, strlen(m->valuestring)) < 0 ||
            provider_append_raw(&out, &len, "\n", 1) < 0) {
            free(out);
            out = NULL;
        }
    }
    return out;
}

/* The percentage of the last line of the logs' tail that the profile's
 * pattern matches (tqdm's " 10%|█         | 5/50"), or -1. */
static int provider_logs_progress(const struct provider *p, const char *logs)
{
    size_t n = strlen(logs);
    const char *start = n > PROVIDER_PROGRESS_TAIL ? logs + n - PROVIDER_PROGRESS_TAIL : logs;
    const char *end = logs + n;
    while (end > start) {
        const char *line = end;
        while (line > start && line[-1] != '\n')
            line--;
        size_t ll = (size_t)(end - line);
        char *copy = strndup(line, ll);
        regmatch_t m[2];
        int pct = -1;
        if (copy && regexec(&p->progress_re, copy, 2, m, 0) == 0 && m[1].rm_so >= 0) {
            char digits[8];
            size_t dl = (size_t)(m[1].rm_eo - m[1].rm_so);
            if (dl > 0 && dl < sizeof(digits)) {
                memcpy(digits, copy + m[1].rm_so, dl);
                digits[dl] = '\0';
                char *e;
                double v = strtod(digits, &e);
                if (*e == '\0' && v >= 0 && v <= 100)
                    pct = (int)v;
            }
        }
        free(copy);
        if (pct >= 0)
            return pct;
        end = line > start ? line - 1 : start;
    }
    return -1;
}

/* The task's input as the provider holds it: an object, or a string of JSON
 * (kie's param) with the input under input_field. Compact text, or NULL. */
static char *provider_input_json(const struct provider *p, const cJSON *data)
{
    const cJSON *v = provider_at(data, p->input_path);
    cJSON *parsed = NULL;
    if (p->input_is_json_string) {
        if (!cJSON_IsString(v))
            return NULL;
        v = parsed = cJSON_Parse(v->valuestring);
    }
    if (v && p->input_field)
        v = provider_at(v, p->input_field);
    char *out = cJSON_IsObject(v) ? cJSON_PrintUnformatted(v) : NULL;
    cJSON_Delete(parsed);
    return out;
}

/* The cosmetic parts of a status answer (logs, progress, queue, input, cancel
 * URL): a missing or ill-typed one is left out, never an error. -ENOMEM only. */
static int provider_status_extras(const struct provider *p, const cJSON *data,
                                  struct provider_status *out)
{
    const cJSON *q = p->queue_path ? provider_at(data, p->queue_path) : NULL;
    if (cJSON_IsNumber(q) && q->valuedouble >= 0 && q->valuedouble < 1e9)
        out->queue_position = (int)q->valuedouble;
    const cJSON *logs = p->logs_path ? provider_at(data, p->logs_path) : NULL;
    if (logs && (cJSON_IsString(logs) || cJSON_IsArray(logs))) {
        if (!(out->logs = provider_logs_text(logs)))
            return -ENOMEM;
        if (out->progress < 0 && p->has_progress_re)
            out->progress = provider_logs_progress(p, out->logs);
    }
    if (p->input_path)
        out->input_json = provider_input_json(p, data);
    const cJSON *cu = p->cancel_url_field ? provider_at(data, p->cancel_url_field) : NULL;
    if (cJSON_IsString(cu) && provider_same_origin(p, cu->valuestring) &&
        !(out->cancel_url = strdup(cu->valuestring)))
        return -ENOMEM;
    return 0;
}

int provider_parse_status(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          struct provider_status *out, struct provider_error *err)
{
    *out = (struct provider_status){.progress = -1, .queue_position = -1};
    cJSON *root;
    const cJSON *data;
    int rc = provider_open(p, "status answer", http_status, body, len, hdr, now, &root, &data, err);
    for (size_t i = 0; rc < 0 && i < p->n_not_yet; i++) {
        if (err->code == p->not_yet[i]) {
            char was[sizeof(err->msg)];
            snprintf(was, sizeof(was), "%s", err->msg);
            return provider_fail(err, -EAGAIN, true,
                                 "status answer: the provider does not show the task yet (%s)",
                                 was);
        }
    }
    if (rc < 0)
        return rc;
    const cJSON *state = provider_at(data, p->state_path);
    const cJSON *failed = p->failed_if ? provider_at(data, p->failed_if) : NULL;
    if (!cJSON_IsString(state)) {
        rc = provider_fail(err, -EPROTO, true, "status answer: %s is missing or not a string",
                           p->state_path);
        goto out;
    }
    if (!provider_state_of(p, state->valuestring, &out->state)) {
        rc = provider_fail(err, -EPROTO, true, "status answer: unknown state \"%.40s\"",
                           state->valuestring);
        goto out;
    }
    /* A provider that says "done" and carries an error means failed. */
    if (out->state == TASK_SUCCESS && failed && !cJSON_IsNull(failed) &&
        !(cJSON_IsString(failed) && !failed->valuestring[0]) && !cJSON_IsFalse(failed))
        out->state = TASK_FAILED;
    /* progress and times are cosmetic: a wrong type is ignored, not fatal. */
    const cJSON *progress = p->progress_path ? provider_at(data, p->progress_path) : NULL;
    if (cJSON_IsNumber(progress) && isfinite(progress->valuedouble))
        out->progress = (int)fmin(100.0, fmax(0.0, progress->valuedouble));
    out->create_ms = provider_time(p, data, p->create_path);
    out->update_ms = provider_time(p, data, p->update_path);
    out->complete_ms = provider_time(p, data, p->complete_path);
    const cJSON *cost = p->cost_path ? provider_at(data, p->cost_path) : NULL;
    if (cJSON_IsNumber(cost) && cost->valuedouble > 0 && cost->valuedouble < 9.0e15)
        out->cost_ms = (int64_t)cost->valuedouble;
    rc = provider_status_extras(p, data, out);
    if (rc < 0)
        goto out;
    if (out->state == TASK_SUCCESS) {
        if (p->result_path)
            rc = provider_urls("status answer", p->result_path, provider_at(data, p->result_path),
                               p->result_is_json_string, p->urls_path, p->outputs_any, out, err);
        else
            out->needs_result = true;
    } else if (out->state == TASK_FAILED) {
        rc = provider_fail_reason(data, p->error_code_path, p->error_msg_path, state->valuestring,
                                  out);
    }
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

int provider_parse_result(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          struct provider_status *out, struct provider_error *err)
{
    *out = (struct provider_status){.progress = -1, .queue_position = -1, .state = TASK_SUCCESS};
    /* A failed request's result answers 400/422 with the reason; a 5xx that
     * names its error type (fal's request_timeout) is the request's own end. */
    bool typed = hdr && hdr->error_type && *hdr->error_type;
    if (http_status == 400 || http_status == 422 || (http_status >= 500 && typed)) {
        cJSON *doc = body && len <= PROVIDER_MAX_BODY ? provider_parse_json(body, len) : NULL;
        out->state = TASK_FAILED;
        char word[64];
        if (hdr && hdr->error_type && *hdr->error_type)
            provider_clean(hdr->error_type, word, sizeof(word));
        else
            snprintf(word, sizeof(word), "%ld", http_status);
        int rc = provider_fail_reason(doc, p->result_error_code, p->result_error_msg, word, out);
        cJSON_Delete(doc);
        if (rc < 0) {
            provider_status_clear(out);
            return provider_fail(err, -ENOMEM, true, "result answer: out of memory");
        }
        return 0;
    }
    cJSON *root;
    const cJSON *data;
    int rc = provider_open(p, "result answer", http_status, body, len, hdr, now, &root, &data, err);
    if (rc < 0)
        return rc;
    rc = provider_urls("result answer", "the result", data, false, p->result_urls_path,
                       p->outputs_any, out, err);
    if (rc == 0 && !(out->data_json = cJSON_PrintUnformatted(data)))
        rc = provider_fail(err, -ENOMEM, true, "result answer: out of memory");
    if (rc < 0)
        provider_status_clear(out);
    cJSON_Delete(root);
    return rc;
}

/* ---- cancel ---- */

int provider_parse_cancel(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          enum provider_cancel_outcome *out, struct provider_error *err)
{
    *err = (struct provider_error){.retry_after_ms = -1};
    *out = PROVIDER_CANCEL_REQUESTED;
    if (!p->has_cancel)
        return provider_fail(err, -EOPNOTSUPP, false, "this provider has no cancel request");
    /* The answer's word first: fal answers 400 ALREADY_COMPLETED, a refusal
     * that is an outcome. */
    cJSON *doc =
        http_status && body && len <= PROVIDER_MAX_BODY ? provider_parse_json(body, len) : NULL;
    const cJSON *word = cJSON_IsObject(doc) ? provider_at(doc, p->cancel_state) : NULL;
    for (size_t i = 0; cJSON_IsString(word) && i < p->n_cancel_words; i++) {
        const struct cancel_word *w = &p->cancel_words[i];
        if (strcmp(w->word, word->valuestring) != 0)
            continue;
        cJSON_Delete(doc);
        if (w->not_found) {
            err->code = http_status;
            return provider_fail(err, -ENOENT, false,
                                 "cancel: the provider knows no such task (%s)", w->word);
        }
        *out = w->outcome;
        return 0;
    }
    cJSON_Delete(doc);
    cJSON *root;
    const cJSON *data;
    int rc = provider_open(p, "cancel answer", http_status, body, len, hdr, now, &root, &data, err);
    if (rc < 0)
        return rc;
    cJSON_Delete(root);
    /* A 2xx without a word the profile knows: the provider took the request. */
    return 0;
}

/* ---- uploads ---- */

int provider_upload_plan(const struct provider *p, size_t len, enum provider_upload_way *way,
                         char *msg, size_t msglen)
{
    *way = PROVIDER_UPLOAD_REQUEST;
    if (p->data_uri_ok && len <= p->data_uri_max) {
        *way = PROVIDER_UPLOAD_DATA_URI;
        return 0;
    }
    if (p->upload_kind == UPLOAD_NONE) {
        if (p->data_uri_ok)
            snprintf(msg, msglen,
                     "a file of %zu bytes is over the %zu that %s takes inline, and %s has no "
                     "upload: pass a URL instead of @PATH",
                     len, p->data_uri_max, p->name, p->name);
        else
            snprintf(msg, msglen,
                     "%s has no file upload and takes no data: URIs: pass a URL instead of @PATH",
                     p->name);
        return p->data_uri_ok ? -EFBIG : -EOPNOTSUPP;
    }
    if (len > p->upload_max) {
        snprintf(msg, msglen,
                 "a file of %zu bytes is over the %zu bytes %s's upload takes: pass a URL "
                 "instead of @PATH",
                 len, p->upload_max, p->name);
        return -EFBIG;
    }
    return 0;
}

static const char provider_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of the bytes after prefix (malloc'd, NUL-terminated). */
static char *provider_base64(const char *prefix, const unsigned char *data, size_t len)
{
    size_t pl = strlen(prefix);
    if (len > (SIZE_MAX - pl - 8) / 4 * 3)
        return NULL;
    char *out = malloc(pl + (len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    memcpy(out, prefix, pl);
    char *o = out + pl;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)data[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        *o++ = provider_b64[(v >> 18) & 63];
        *o++ = provider_b64[(v >> 12) & 63];
        *o++ = i + 1 < len ? provider_b64[(v >> 6) & 63] : '=';
        *o++ = i + 2 < len ? provider_b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static const char *provider_type_of(const struct provider_upload_file *f)
{
    return f->content_type && *f->content_type ? f->content_type : "application/octet-stream";
}

char *provider_upload_data_uri(const unsigned char *data, size_t len, const char *content_type)
{
    char prefix[160];
    const char *type = content_type && *content_type ? content_type : "application/octet-stream";
    /* A type with characters that would break the URI is not worth keeping. */
    if (strlen(type) > 100 || strpbrk(type, ",;\"\r\n \\"))
        type = "application/octet-stream";
    snprintf(prefix, sizeof(prefix), "data:%s;base64,", type);
    return provider_base64(prefix, data, len);
}

/* A file name safe inside a multipart header and a JSON value: printable
 * ASCII without quotes, backslashes or slashes; "upload.bin" when none is left. */
static void provider_safe_name(const char *name, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *c = name; c && *c && n + 1 < outlen; c++)
        out[n++] = (*c > ' ' && *c < 127 && !strchr("\"\\/;", *c)) ? *c : '_';
    out[n] = '\0';
    if (n == 0 || strspn(out, ".") == n)
        snprintf(out, outlen, "upload.bin");
}

/* A body template of an upload with "{file_name}", "{content_type}",
 * "{data_base64}" and "{data_uri}" string values filled in. */
static cJSON *provider_fill_upload(const cJSON *tmpl, const struct provider_upload_file *f,
                                   const char *name)
{
    if (cJSON_IsString(tmpl)) {
        const char *t = tmpl->valuestring;
        if (strcmp(t, "{file_name}") == 0)
            return cJSON_CreateString(name);
        if (strcmp(t, "{content_type}") == 0)
            return cJSON_CreateString(provider_type_of(f));
        if (strcmp(t, "{data_base64}") == 0 || strcmp(t, "{data_uri}") == 0) {
            char *b = t[6] == 'b' ? provider_base64("", f->data, f->len)
                                  : provider_upload_data_uri(f->data, f->len, f->content_type);
            cJSON *j = b ? cJSON_CreateString(b) : NULL;
            free(b);
            return j;
        }
        return cJSON_Duplicate(tmpl, true);
    }
    if (!cJSON_IsObject(tmpl) && !cJSON_IsArray(tmpl))
        return cJSON_Duplicate(tmpl, true);
    cJSON *out = cJSON_IsObject(tmpl) ? cJSON_CreateObject() : cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, tmpl)
    {
        cJSON *c = out ? provider_fill_upload(it, f, name) : NULL;
        if (!c) {
            cJSON_Delete(out);
            return NULL;
        }
        if (cJSON_IsObject(tmpl))
            cJSON_AddItemToObject(out, it->string, c);
        else
            cJSON_AddItemToArray(out, c);
    }
    return out;
}

/* FNV-1a over the bytes: the boundary depends on the file only, so a retry
 * sends the very same body. */
static uint64_t provider_fnv(const unsigned char *d, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * UINT64_C(0x100000001b3);
    return h;
}

/* multipart/form-data (RFC 7578): the profile's text fields, then the file. */
static int provider_multipart(const struct provider *p, const struct provider_upload_file *f,
                              const char *name, struct provider_request *out)
{
    char boundary[64];
    uint64_t h = provider_fnv(f->data, f->len, UINT64_C(0xcbf29ce484222325));
    /* A boundary must not occur in the content: try another until none does. */
    for (int tries = 0;; tries++, h = provider_fnv((const unsigned char *)"x", 1, h)) {
        snprintf(boundary, sizeof(boundary), "genfs-%016llx", (unsigned long long)h);
        if (tries > 64)
            return -EIO;
        if (!memmem(f->data, f->len, boundary, strlen(boundary)))
            break;
    }
    char *body = strdup("");
    size_t len = 0;
    int rc = body ? 0 : -ENOMEM;
    const cJSON *it;
    cJSON_ArrayForEach(it, p->upload_fields)
    {
        const char *v = strcmp(it->valuestring, "{file_name}") == 0 ? name : it->valuestring;
        char head[512];
        int hl = snprintf(head, sizeof(head),
                          "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n", boundary,
                          it->string);
        if (rc == 0 && (hl < 0 || (size_t)hl >= sizeof(head) || strpbrk(it->string, "\"\r\n")))
            rc = -EINVAL;
        if (rc == 0)
            rc = provider_append_raw(&body, &len, head, (size_t)hl);
        if (rc == 0)
            rc = provider_append_raw(&body, &len, v, strlen(v));
        if (rc == 0)
            rc = provider_append_raw(&body, &len, "\r\n", 2);
    }
    char head[768];
    int hl = snprintf(head, sizeof(head),
                      "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                      "Content-Type: %s\r\n\r\n",
                      boundary, p->upload_field, name, provider_type_of(f));
    if (rc == 0 && (hl < 0 || (size_t)hl >= sizeof(head) || strpbrk(p->upload_field, "\"\r\n") ||
                    strpbrk(provider_type_of(f), "\r\n")))
        rc = -EINVAL;
    if (rc == 0)
        rc = provider_append_raw(&body, &len, head, (size_t)hl);
    if (rc == 0)
        rc = provider_append_raw(&body, &len, (const char *)f->data, f->len);
    snprintf(head, sizeof(head), "\r\n--%s--\r\n", boundary);
    if (rc == 0)
        rc = provider_append_raw(&body, &len, head, strlen(head));
    if (rc == 0 && asprintf(&out->content_type, "multipart/form-data; boundary=%s", boundary) < 0) {
        out->content_type = NULL;
        rc = -ENOMEM;
    }
    if (rc < 0) {
        free(body);
        return rc;
    }
    out->body = body;
    out->body_len = len;
    return 0;
}

int provider_build_upload(const struct provider *p, const struct provider_upload_file *f,
                          struct provider_request *out)
{
    *out = (struct provider_request){.method = "POST"};
    if (p->upload_kind == UPLOAD_NONE)
        return -EOPNOTSUPP;
    if (!f || (!f->data && f->len))
        return -EINVAL;
    if (f->len > p->upload_max)
        return -EFBIG;
    char name[128];
    provider_safe_name(f->name, name, sizeof(name));
    struct vars v = {.base = provider_base(p),
                     .upload_base = p->upload_base ? p->upload_base : provider_base(p)};
    out->url = provider_expand(p->upload_url, &v);
    int rc = out->url ? 0 : -ENOMEM;
    if (rc == 0 && p->upload_kind == UPLOAD_MULTIPART) {
        rc = provider_multipart(p, f, name, out);
    } else if (rc == 0) {
        cJSON *body = provider_fill_upload(p->upload_body, f, name);
        out->body = body ? cJSON_PrintUnformatted(body) : NULL;
        cJSON_Delete(body);
        rc = out->body ? 0 : -ENOMEM;
        if (rc == 0)
            out->body_len = strlen(out->body);
    }
    if (rc < 0)
        provider_request_clear(out);
    return rc;
}

static bool provider_http_url(const char *s)
{
    return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0;
}

int provider_parse_upload(const struct provider *p, long http_status, const char *body, size_t len,
                          const struct provider_headers *hdr, time_t now,
                          struct provider_upload *out, struct provider_error *err)
{
    *out = (struct provider_upload){0};
    cJSON *root;
    const cJSON *data;
    int rc = provider_open(p, "upload answer", http_status, body, len, hdr, now, &root, &data, err);
    if (rc < 0)
        return rc;
    const cJSON *fu = provider_at(data, p->upload_file_url);
    const cJSON *pu = p->upload_put_url ? provider_at(data, p->upload_put_url) : NULL;
    if (!cJSON_IsString(fu) || !provider_http_url(fu->valuestring))
        rc = provider_fail(err, -EPROTO, true, "upload answer: %s is missing or not an http(s) URL",
                           p->upload_file_url);
    else if (p->upload_put_url && (!cJSON_IsString(pu) || !provider_http_url(pu->valuestring)))
        rc = provider_fail(err, -EPROTO, true, "upload answer: %s is missing or not an http(s) URL",
                           p->upload_put_url);
    else if (!(out->file_url = strdup(fu->valuestring)) ||
             (pu && !(out->put_url = strdup(pu->valuestring))))
        rc = provider_fail(err, -ENOMEM, true, "upload answer: out of memory");
    if (rc < 0)
        provider_upload_clear(out);
    cJSON_Delete(root);
    return rc;
}

int provider_build_upload_put(const struct provider_upload *u, const struct provider_upload_file *f,
                              struct provider_request *out)
{
    *out = (struct provider_request){.method = "PUT", .no_auth = true};
    if (!u->put_url || !f || (!f->data && f->len))
        return -EINVAL;
    out->url = strdup(u->put_url);
    out->content_type = strdup(provider_type_of(f));
    out->body = malloc(f->len + 1);
    if (!out->url || !out->content_type || !out->body) {
        provider_request_clear(out);
        return -ENOMEM;
    }
    if (f->len)
        memcpy(out->body, f->data, f->len);
    out->body[f->len] = '\0';
    out->body_len = f->len;
    return 0;
}

int provider_parse_upload_put(long http_status, const struct provider_headers *hdr, time_t now,
                              struct provider_error *err)
{
    *err = (struct provider_error){.retry_after_ms = -1};
    if (http_status >= 200 && http_status <= 299)
        return 0;
    if (http_status == 0)
        return provider_fail(err, -EIO, true, "upload: no HTTP answer from the storage");
    int e = provider_errno_for_code(http_status);
    err->code = http_status;
    if (http_status == 429 || http_status == 503)
        err->retry_after_ms = provider_parse_retry_after(hdr ? hdr->retry_after : NULL, now);
    /* A presigned URL refuses once it expires (403): a new upload gets a new one. */
    return provider_fail(err, e, provider_code_retryable(http_status),
                         "upload: the storage refused the file (%ld)%s", http_status,
                         http_status == 403 ? ": its upload URL expired; the upload starts over"
                                            : "");
}
