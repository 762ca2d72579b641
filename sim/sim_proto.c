#include "sim_proto.h"

#include "sim_proto_impl.h"

#include "sim_rng.h"
#include "sim_upload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sim_proto_parse(const char *s, enum sim_protocol *out)
{
    static const char *const names[] = {"apixo", "kie", "replicate", "fal", NULL};
    for (int i = 0; s && names[i]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum sim_protocol)i;
            return 0;
        }
    }
    return -1;
}

const char *sim_proto_name(enum sim_protocol p)
{
    switch (p) {
    case SIM_PROTO_KIE:
        return "kie";
    case SIM_PROTO_REPLICATE:
        return "replicate";
    case SIM_PROTO_FAL:
        return "fal";
    default:
        return "apixo";
    }
}

/* Test models in each protocol's own naming, so tests need no --profile; all timed as
 * test-image (5 s, 0.30, 2-15 s). */
#define SIM_T "\"median_ms\": 5000, \"sigma\": 0.3, \"min_ms\": 2000, \"max_ms\": 15000"

static const char sim_proto_kie_models[] =
    "{\"models\": {"
    "\"grok-imagine/text-to-image\": {\"kind\": \"image\", " SIM_T "}, "
    "\"grok-imagine/text-to-video\": {\"kind\": \"video\", " SIM_T "}, "
    "\"elevenlabs/text-to-speech\": {\"kind\": \"audio\", " SIM_T "}}}";

/* The replicate shapes a client must cope with: demucs' named stems (two of them null), a
 * language model's tokens or string, data: URIs, nested arrays, canceled and aborted ends, and
 * logs over 64 KiB. */
static const char sim_proto_replicate_models[] =
    "{\"models\": {"
    "\"test/image\": {\"kind\": \"image\", " SIM_T "}, "
    "\"test/audio\": {\"kind\": \"audio\", " SIM_T "}, "
    "\"test/video\": {\"kind\": \"video\", " SIM_T "}, "
    "\"test/demucs\": {\"kind\": \"audio\", \"output\": \"named\", \"outputs\": 4, " SIM_T "}, "
    "\"test/text\": {\"kind\": \"text\", \"output\": \"tokens\", " SIM_T "}, "
    "\"test/text-string\": {\"kind\": \"text\", \"output\": \"text\", " SIM_T "}, "
    "\"test/datauri\": {\"kind\": \"image\", \"output\": \"datauri\", " SIM_T "}, "
    "\"test/nested\": {\"kind\": \"image\", \"output\": \"nested\", \"outputs\": 3, " SIM_T "}, "
    "\"test/canceled\": {\"kind\": \"image\", \"outcome\": \"canceled\", " SIM_T "}, "
    "\"test/aborted\": {\"kind\": \"image\", \"outcome\": \"aborted\", " SIM_T "}, "
    "\"test/longlogs\": {\"kind\": \"image\", \"logs_bytes\": 100000, " SIM_T "}}}";

static const char sim_proto_fal_models[] =
    "{\"models\": {"
    "\"fal-ai/test-image\": {\"kind\": \"image\", " SIM_T "}, "
    "\"fal-ai/test/audio\": {\"kind\": \"audio\", " SIM_T "}, "
    "\"fal-ai/test/video\": {\"kind\": \"video\", " SIM_T "}, "
    "\"fal-ai/flux/dev\": {\"kind\": \"image\", " SIM_T "}}}";

const char *sim_proto_models_profile(enum sim_protocol p)
{
    switch (p) {
    case SIM_PROTO_KIE:
        return sim_proto_kie_models;
    case SIM_PROTO_REPLICATE:
        return sim_proto_replicate_models;
    case SIM_PROTO_FAL:
        return sim_proto_fal_models;
    default:
        return NULL;
    }
}

const char *sim_proto_auth_scheme(enum sim_protocol p)
{
    return p == SIM_PROTO_FAL ? "Key " : "Bearer ";
}

/* ---- shared helpers ----------------------------------------------------------------------- */

int sim_proto_refuse(int code, char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return code;
}

int sim_proto_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

int sim_proto_parse_object(const char *body, size_t len, struct sim_submit *out)
{
    if (!body || len == 0)
        return -1;
    out->root = cJSON_ParseWithLength(body, len);
    return out->root && cJSON_IsObject(out->root) ? 0 : -1;
}

cJSON *sim_proto_envelope(int code, const char *msg_key, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "code", code);
    cJSON_AddStringToObject(o, msg_key, msg);
    return o;
}

char *sim_proto_huge(const char *head)
{
    size_t n = SIM_PROTO_HUGE_BODY, hl = strlen(head);
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memset(s, 'x', n);
    memcpy(s, head, hl);
    memcpy(s + n - 2, "\"}", 2);
    s[n] = '\0';
    return s;
}

const char *sim_proto_http_title(int code, const char *fallback)
{
    switch (code) {
    case 403:
        return "Forbidden";
    case 404:
        return "Not found";
    case 405:
        return "Method not allowed";
    case 410:
        return "Gone";
    case 502:
        return "Bad gateway";
    case 455:
    case 503:
        return "Service unavailable";
    case 504:
        return "Gateway timeout";
    default:
        return code >= 500 ? "Internal server error" : fallback;
    }
}

const char sim_proto_html[] =
    "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n";

void sim_proto_id_words(uint64_t seed, uint64_t counter, uint64_t *a, uint64_t *b)
{
    *a = sim_rng_hash_u64(sim_rng_hash_u64(seed, 0x7461736b6964ULL), counter);
    *b = sim_rng_mix(*a ^ 0x5bd1e9955bd1e995ULL);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

void sim_proto_route(enum sim_protocol p, const char *method, const char *path,
                     const char *task_query, struct sim_route_info *out)
{
    if (sim_upload_route(p, method, path, out))
        return;
    if (strncmp(path, "/_sim/", 6) == 0 || strncmp(path, "/media/", 7) == 0) {
        sim_req_route(method, path, out);
        return;
    }
    memset(out, 0, sizeof(*out));
    out->route = SIM_ROUTE_NOT_FOUND;
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0;
    switch (p) {
    case SIM_PROTO_KIE:
        sim_kie_route(get, post, path, task_query, out);
        break;
    case SIM_PROTO_REPLICATE:
        sim_replicate_route(get, post, path, out);
        break;
    case SIM_PROTO_FAL:
        sim_fal_route(get, post, strcmp(method, "PUT") == 0, path, out);
        break;
    default:
        sim_apixo_route(get, post, path, task_query, out);
        break;
    }
}

int sim_proto_submit_parse(enum sim_protocol p, const struct sim_models *ms,
                           const struct sim_route_info *ri, const char *body, size_t len,
                           const char *fal_webhook, struct sim_submit *out, char *msg,
                           size_t msglen)
{
    sim_req_submit_init(out);
    switch (p) {
    case SIM_PROTO_KIE:
        return sim_kie_submit_parse(ms, body, len, out, msg, msglen);
    case SIM_PROTO_REPLICATE:
        return sim_replicate_submit_parse(ms, ri, body, len, out, msg, msglen);
    case SIM_PROTO_FAL:
        return sim_fal_submit_parse(ms, ri, body, len, fal_webhook, out, msg, msglen);
    default:
        return sim_apixo_submit_parse(ms, ri, body, len, out, msg, msglen);
    }
}

void sim_proto_task_id(enum sim_protocol p, uint64_t seed, uint64_t counter, char *out)
{
    uint64_t a, b;
    sim_proto_id_words(seed, counter, &a, &b);
    switch (p) {
    case SIM_PROTO_REPLICATE: {
        static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
        /* 12 characters from a, 13 from b (shifts up to 60), the last from both's top bits: a
         * shift of 64 or more would be undefined. */
        for (int i = 0; i < 26; i++) {
            uint64_t w = i < 12 ? a >> (5 * i) : i < 25 ? b >> (5 * (i - 12)) : (a ^ b) >> 59;
            out[i] = b32[w & 31];
        }
        out[26] = '\0';
        return;
    }
    case SIM_PROTO_FAL: {
        /* 8-4-4-4-12 with the version nibble 4 and the variant bits 10. */
        unsigned long long hi = a, lo = b;
        snprintf(out, SIM_TASK_ID_MAX + 1, "%08llx-%04llx-4%03llx-%04llx-%012llx", hi >> 32,
                 (hi >> 16) & 0xffff, hi & 0xfff, 0x8000 | ((lo >> 48) & 0x3fff),
                 lo & 0xffffffffffffULL);
        return;
    }
    case SIM_PROTO_KIE:
        snprintf(out, SIM_TASK_ID_MAX + 1, "%016llx%016llx", (unsigned long long)a,
                 (unsigned long long)b);
        return;
    default: {
        static const char an[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        memcpy(out, "task_", 5);
        for (int i = 0; i < 20; i++) {
            uint64_t w = sim_rng_hash_u64(i < 10 ? a : b, (uint64_t)i);
            out[5 + i] = an[w % 36];
        }
        out[25] = '\0';
        return;
    }
    }
}

void sim_proto_default_failure(enum sim_protocol p, uint64_t seed, uint64_t seq, const char **code,
                               const char **msg, const char **loc)
{
    static const struct {
        const char *code, *msg, *loc;
    } apixo[] = {{"CONTENT_VIOLATION", "Content violates usage policy", NULL},
                 {"NSFW_DETECTED", "NSFW content detected in the generated output", NULL},
                 {"PROCESSING_TIMEOUT", "Generation took too long and was stopped", NULL},
                 {"INSUFFICIENT_CREDITS", "Account has no credits left to finish the task", NULL}},
      kie[] = {{"400", "Your prompt was flagged by the content filter, please modify it", NULL},
               {"500", "Internal error, please try again later", NULL},
               {"501", "Generation failed, please try again later", NULL}},
      replicate[] = {{"nsfw",
                      "NSFW content detected. Try running it again, or try a different prompt.",
                      NULL},
                     {"oom", "CUDA out of memory. Tried to allocate 2.00 GiB", NULL},
                     {"exception", "Prediction failed: the model raised an exception", NULL}},
      fal[] = {
          {"content_policy_violation", "The content was flagged by a content checker.", "prompt"},
          {"value_error.any_str.max_length", "ensure this value has at most 2500 characters",
           "prompt"},
          {"request_timeout", "Request timed out", NULL},
          {"runner_disconnected", "The runner disconnected unexpectedly during processing", NULL}};
    uint64_t h = sim_rng_hash_u64(sim_rng_hash_u64(seed, 0x6661696c6b696e64ULL), seq);
#define SIM_PICK(tab)                                                                              \
    do {                                                                                           \
        size_t i = (size_t)(h % (sizeof(tab) / sizeof(tab[0])));                                   \
        *code = tab[i].code;                                                                       \
        *msg = tab[i].msg;                                                                         \
        *loc = tab[i].loc;                                                                         \
    } while (0)
    switch (p) {
    case SIM_PROTO_KIE:
        SIM_PICK(kie);
        break;
    case SIM_PROTO_REPLICATE:
        SIM_PICK(replicate);
        break;
    case SIM_PROTO_FAL:
        SIM_PICK(fal);
        break;
    default:
        SIM_PICK(apixo);
        break;
    }
#undef SIM_PICK
}

void sim_proto_iso8601(long long ms, char out[SIM_PROTO_ISO_MAX])
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char date[24];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, SIM_PROTO_ISO_MAX, "%s.%03d000Z", date, (int)(((ms % 1000) + 1000) % 1000));
}

int sim_proto_task_visible(enum sim_protocol p, const struct sim_task *t, const char *model)
{
    if (p == SIM_PROTO_APIXO)
        return strcmp(t->model, model) == 0;
    if (p == SIM_PROTO_FAL) {
        char app[SIM_MODEL_NAME_MAX + 1];
        sim_fal_app_id(t->model, app, sizeof(app));
        return strcmp(app, model) == 0;
    }
    return 1;
}

cJSON *sim_proto_submit_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base, int *status)
{
    *status = 200;
    switch (p) {
    case SIM_PROTO_KIE:
        return sim_kie_submit_json(t);
    case SIM_PROTO_REPLICATE:
        *status = 201;
        return sim_replicate_prediction(t, now_ms, base);
    case SIM_PROTO_FAL:
        return sim_fal_submit_json(t, base);
    default:
        return sim_apixo_submit_json(t);
    }
}

cJSON *sim_proto_status_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base)
{
    return sim_proto_status_logs_json(p, t, now_ms, base, 0);
}

cJSON *sim_proto_status_logs_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                                  const char *base, int with_logs)
{
    switch (p) {
    case SIM_PROTO_KIE:
        return sim_kie_status_json(t, now_ms, base);
    case SIM_PROTO_REPLICATE:
        return sim_replicate_prediction(t, now_ms, base);
    case SIM_PROTO_FAL:
        return sim_fal_status_json(t, now_ms, base, with_logs);
    default:
        return sim_apixo_status_json(t, now_ms, base);
    }
}

cJSON *sim_proto_result_json(const struct sim_task *t, long long now_ms, const char *base,
                             int *status, const char **error_type)
{
    return sim_fal_result_json(t, now_ms, base, status, error_type);
}

cJSON *sim_proto_cancel_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base, int canceled, int *status)
{
    if (p == SIM_PROTO_FAL)
        return sim_fal_cancel_json(canceled, status);
    /* replicate answers the prediction as it now stands, canceled or already ended. */
    *status = 200;
    return sim_replicate_prediction(t, now_ms, base);
}

char *sim_proto_callback_body(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                              const char *base)
{
    if (p == SIM_PROTO_FAL)
        return sim_fal_callback_body(t, now_ms, base);
    if (p == SIM_PROTO_KIE)
        return sim_kie_callback_body(t, now_ms, base);
    cJSON *o = sim_proto_status_json(p, t, now_ms, base);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

cJSON *sim_proto_error_json(enum sim_protocol p, int code, const char *msg, int *http)
{
    *http = code;
    switch (p) {
    case SIM_PROTO_KIE:
        return sim_kie_error_json(code, msg, http);
    case SIM_PROTO_REPLICATE:
        return sim_replicate_error_json(code, msg);
    case SIM_PROTO_FAL:
        return sim_fal_error_json(code, msg);
    default:
        return sim_apixo_error_json(code, msg);
    }
}

int sim_proto_unknown_task(enum sim_protocol p, const char *id, char *msg, size_t msglen)
{
    switch (p) {
    case SIM_PROTO_KIE:
        return sim_proto_refuse(422, msg, msglen, "recordInfo is null");
    case SIM_PROTO_REPLICATE:
        return sim_proto_refuse(404, msg, msglen, "Prediction not found: %s", id);
    case SIM_PROTO_FAL:
        return sim_proto_refuse(404, msg, msglen, "Request not found");
    default:
        return sim_proto_refuse(404, msg, msglen, "Task not found: %s", id);
    }
}

char *sim_proto_malformed_body(enum sim_protocol p, enum sim_malformed_kind kind,
                               enum sim_route route, const char *id)
{
    const struct sim_malformed_form *forms = p == SIM_PROTO_KIE         ? sim_kie_malformed
                                             : p == SIM_PROTO_REPLICATE ? sim_replicate_malformed
                                             : p == SIM_PROTO_FAL       ? sim_fal_malformed
                                                                        : sim_apixo_malformed;
    if (kind == SIM_MALFORMED_NOT_JSON)
        return strdup(sim_proto_html);
    if (kind < 0 || kind >= SIM_MALFORMED_HUGE)
        return sim_proto_huge(forms[SIM_MALFORMED_HUGE].status);
    const struct sim_malformed_form *f = &forms[kind];
    const char *form = route == SIM_ROUTE_SUBMIT && f->submit   ? f->submit
                       : route == SIM_ROUTE_RESULT && f->result ? f->result
                                                                : f->status;
    char buf[1024];
    /* The forms are the tables' literals, each with one %s at most. */
    snprintf(buf, sizeof(buf), form, route == SIM_ROUTE_SUBMIT ? "" : id);
    return strdup(buf);
}
