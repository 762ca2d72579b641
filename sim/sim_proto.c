#include "sim_proto.h"

#include "sim_media.h"
#include "sim_rng.h"
#include "sim_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIM_PROTO_HUGE_BODY (5u << 20)

int sim_proto_parse(const char *s, enum sim_protocol *out)
{
    if (!s)
        return -1;
    if (strcmp(s, "native") == 0)
        *out = SIM_PROTO_NATIVE;
    else if (strcmp(s, "replicate") == 0)
        *out = SIM_PROTO_REPLICATE;
    else if (strcmp(s, "fal") == 0)
        *out = SIM_PROTO_FAL;
    else
        return -1;
    return 0;
}

const char *sim_proto_name(enum sim_protocol p)
{
    switch (p) {
    case SIM_PROTO_REPLICATE:
        return "replicate";
    case SIM_PROTO_FAL:
        return "fal";
    default:
        return "native";
    }
}

/* Test models in each protocol's own naming, so tests need no --profile; timings as test-image. */
#define SIM_PROTO_TEST(name, kind)                                                                 \
    "\"" name "\": {\"kind\": \"" kind "\", \"median_ms\": 5000, \"sigma\": 0.3, "                 \
    "\"min_ms\": 2000, \"max_ms\": 15000}"

static const char sim_proto_replicate_models[] =
    "{\"models\": {" SIM_PROTO_TEST("test/image", "image") ", " SIM_PROTO_TEST(
        "test/audio", "audio") ", " SIM_PROTO_TEST("test/video", "video") "}}";

static const char sim_proto_fal_models[] =
    "{\"models\": {" SIM_PROTO_TEST("fal-ai/test-image", "image") ", " SIM_PROTO_TEST(
        "fal-ai/test/audio", "audio") ", " SIM_PROTO_TEST("fal-ai/test/video", "video") "}}";

const char *sim_proto_models_profile(enum sim_protocol p)
{
    switch (p) {
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

/* ---- routes ------------------------------------------------------------------------------- */

static int sim_proto_ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static void sim_proto_route_replicate(int get, int post, const char *path,
                                      struct sim_route_info *out)
{
    static const char models[] = "/v1/models/";
    static const char preds[] = "/v1/predictions/";
    static const char suffix[] = "/predictions";
    if (strncmp(path, models, sizeof(models) - 1) == 0) {
        const char *rest = path + sizeof(models) - 1;
        size_t len = strlen(rest);
        if (!sim_proto_ends_with(rest, len, suffix))
            return;
        size_t mlen = len - (sizeof(suffix) - 1);
        if (!sim_req_model_ok(rest, mlen) ||
            sim_req_copy(out->model, sizeof(out->model), rest, mlen) != 0)
            return;
        out->route = post ? SIM_ROUTE_SUBMIT : SIM_ROUTE_BAD_METHOD;
        return;
    }
    if (strncmp(path, preds, sizeof(preds) - 1) == 0) {
        /* {id} only: POST {id}/cancel is not simulated and stays 404. */
        const char *id = path + sizeof(preds) - 1;
        if (strchr(id, '/') || sim_req_copy(out->task_id, sizeof(out->task_id), id, strlen(id)))
            return;
        out->route = get ? SIM_ROUTE_STATUS : SIM_ROUTE_BAD_METHOD;
    }
}

static void sim_proto_route_fal(int get, int post, const char *path, struct sim_route_info *out)
{
    if (path[0] != '/')
        return;
    const char *rest = path + 1;
    size_t len = strlen(rest);
    if (post) {
        if (sim_req_model_ok(rest, len) &&
            sim_req_copy(out->model, sizeof(out->model), rest, len) == 0)
            out->route = SIM_ROUTE_SUBMIT;
        return;
    }
    if (!get)
        return;
    /* {model}/requests/{id} or {model}/requests/{id}/status; the model is all before. */
    enum sim_route r = SIM_ROUTE_RESULT;
    if (sim_proto_ends_with(rest, len, "/status")) {
        r = SIM_ROUTE_STATUS;
        len -= 7;
    }
    size_t i = len;
    while (i > 0 && rest[i - 1] != '/')
        i--;
    static const char req[] = "/requests/";
    size_t rl = sizeof(req) - 1;
    if (i < rl + 1 || memcmp(rest + i - rl, req, rl) != 0)
        return;
    size_t mlen = i - rl;
    if (!sim_req_model_ok(rest, mlen) ||
        sim_req_copy(out->model, sizeof(out->model), rest, mlen) != 0 ||
        sim_req_copy(out->task_id, sizeof(out->task_id), rest + i, len - i) != 0) {
        out->model[0] = '\0';
        return;
    }
    out->route = r;
}

void sim_proto_route(enum sim_protocol p, const char *method, const char *path,
                     struct sim_route_info *out)
{
    if (p == SIM_PROTO_NATIVE || strncmp(path, "/_sim/", 6) == 0 ||
        strncmp(path, "/media/", 7) == 0) {
        sim_req_route(method, path, out);
        return;
    }
    memset(out, 0, sizeof(*out));
    out->route = SIM_ROUTE_NOT_FOUND;
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0;
    if (p == SIM_PROTO_REPLICATE)
        sim_proto_route_replicate(get, post, path, out);
    else
        sim_proto_route_fal(get, post, path, out);
}

/* ---- submit ------------------------------------------------------------------------------- */

static int sim_proto_fail(char *msg, size_t msglen, const char *text)
{
    snprintf(msg, msglen, "%s", text);
    return 422;
}

static int sim_proto_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static int sim_proto_submit_replicate(const char *body, size_t len, struct sim_submit *out,
                                      char *msg, size_t msglen)
{
    if (!body || len == 0)
        return sim_proto_fail(msg, msglen, "body: expected a JSON object");
    out->root = cJSON_ParseWithLength(body, len);
    if (!out->root || !cJSON_IsObject(out->root))
        return sim_proto_fail(msg, msglen, "body: not a JSON object");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(out->root, "input");
    if (!cJSON_IsObject(input))
        return sim_proto_fail(msg, msglen, "input: required, must be an object");
    out->input = input;
    int rc = sim_req_prompt_parse(input, "input.", out, msg, msglen);
    if (rc)
        return rc;
    const cJSON *wh = cJSON_GetObjectItemCaseSensitive(out->root, "webhook");
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(out->root, "webhook_events_filter");
    if (wh && !cJSON_IsNull(wh)) {
        if (!cJSON_IsString(wh) || !sim_proto_http_url(wh->valuestring))
            return sim_proto_fail(msg, msglen, "webhook: must be an http(s) URL");
        out->callback = 1;
        out->callback_url = wh->valuestring;
    }
    if (filter && !cJSON_IsNull(filter)) {
        if (!cJSON_IsArray(filter))
            return sim_proto_fail(msg, msglen, "webhook_events_filter: must be an array");
        int completed = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, filter)
        {
            static const char *const known[] = {"start", "output", "logs", "completed", NULL};
            int ok = 0;
            for (int k = 0; cJSON_IsString(e) && known[k]; k++)
                ok |= strcmp(e->valuestring, known[k]) == 0;
            if (!ok)
                return sim_proto_fail(msg, msglen,
                                      "webhook_events_filter: items must be start, output, "
                                      "logs or completed");
            completed |= strcmp(e->valuestring, "completed") == 0;
        }
        /* Only the "completed" event is ever sent; a filter without it means no webhook. */
        if (!completed) {
            out->callback = 0;
            out->callback_url = NULL;
        }
    }
    return sim_req_knobs_parse(input, "input.", 1, out, msg, msglen);
}

static int sim_proto_submit_fal(const char *body, size_t len, const char *webhook,
                                struct sim_submit *out, char *msg, size_t msglen)
{
    if (!body || len == 0)
        return sim_proto_fail(msg, msglen, "body: expected a JSON object");
    out->root = cJSON_ParseWithLength(body, len);
    if (!out->root || !cJSON_IsObject(out->root))
        return sim_proto_fail(msg, msglen, "body: not a JSON object");
    out->input = out->root;
    int rc = sim_req_prompt_parse(out->input, "", out, msg, msglen);
    if (rc)
        return rc;
    if (webhook) {
        if (!sim_proto_http_url(webhook))
            return sim_proto_fail(msg, msglen, "fal_webhook: must be an http(s) URL");
        out->callback = 1;
        out->callback_url = webhook;
    }
    return sim_req_knobs_parse(out->input, "", 0, out, msg, msglen);
}

int sim_proto_submit_parse(enum sim_protocol p, const char *body, size_t len,
                           const char *fal_webhook, struct sim_submit *out, char *msg,
                           size_t msglen)
{
    if (p == SIM_PROTO_NATIVE)
        return sim_req_submit_parse(body, len, out, msg, msglen);
    sim_req_submit_init(out);
    if (p == SIM_PROTO_REPLICATE)
        return sim_proto_submit_replicate(body, len, out, msg, msglen);
    return sim_proto_submit_fal(body, len, fal_webhook, out, msg, msglen);
}

/* ---- ids and times ------------------------------------------------------------------------ */

void sim_proto_task_id(enum sim_protocol p, uint64_t seed, uint64_t counter, char *out)
{
    if (p == SIM_PROTO_NATIVE) {
        sim_model_task_id(seed, counter, out);
        return;
    }
    /* Same (seed, counter) hash as native ids, so each protocol's ids replay per seed too. */
    uint64_t a = sim_rng_hash_u64(sim_rng_hash_u64(seed, 0x7461736b6964ULL), counter);
    uint64_t b = sim_rng_mix(a ^ 0x5bd1e9955bd1e995ULL);
    if (p == SIM_PROTO_REPLICATE) {
        static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
        /* 12 characters from a, 13 from b (shifts up to 60), the last from both's
         * top bits: a shift of 64 or more would be undefined. */
        for (int i = 0; i < 26; i++) {
            uint64_t w = i < 12 ? a >> (5 * i) : i < 25 ? b >> (5 * (i - 12)) : (a ^ b) >> 59;
            out[i] = b32[w & 31];
        }
        out[26] = '\0';
        return;
    }
    /* 8-4-4-4-12 with the version nibble 4 and the variant bits 10. */
    unsigned long long hi = a, lo = b;
    snprintf(out, SIM_TASK_ID_MAX + 1, "%08llx-%04llx-4%03llx-%04llx-%012llx", hi >> 32,
             (hi >> 16) & 0xffff, hi & 0xfff, 0x8000 | ((lo >> 48) & 0x3fff),
             lo & 0xffffffffffffULL);
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

/* ---- answers ------------------------------------------------------------------------------ */

static cJSON *sim_proto_envelope(int code, const char *msg, cJSON *data)
{
    cJSON *env = cJSON_CreateObject();
    if (!env) {
        cJSON_Delete(data);
        return NULL;
    }
    cJSON_AddNumberToObject(env, "code", code);
    cJSON_AddStringToObject(env, "msg", msg);
    cJSON_AddItemToObject(env, "data", data ? data : cJSON_CreateNull());
    return env;
}

static void sim_proto_add_time(cJSON *o, const char *key, long long ms, int set)
{
    if (!set) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char iso[SIM_PROTO_ISO_MAX];
    sim_proto_iso8601(ms, iso);
    cJSON_AddStringToObject(o, key, iso);
}

static void sim_proto_url(char *out, size_t cap, const char *base, const char *what,
                          const struct sim_task *t, const char *tail)
{
    if (strcmp(what, "replicate") == 0)
        snprintf(out, cap, "%s/v1/predictions/%s%s", base, t->id, tail);
    else
        snprintf(out, cap, "%s/%s/requests/%s%s", base, t->model, t->id, tail);
}

/* replicate's version id: a stable 64-hex digest of the model name. */
static void sim_proto_version(const char *model, char out[65])
{
    struct sim_sha256 s;
    sim_sha256_init(&s);
    sim_sha256_update(&s, "genfs-sim:", 10);
    sim_sha256_update(&s, model, strlen(model));
    sim_sha256_final_hex(&s, out);
}

static cJSON *sim_proto_prediction(const struct sim_task *t, long long now_ms, const char *base)
{
    struct sim_task_view v;
    sim_task_view_at(t, now_ms, &v);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    char buf[600];
    const char *status = "starting";
    if (v.done)
        status = t->canceled ? "canceled" : t->failed ? "failed" : "succeeded";
    else if (strcmp(v.state, "generating") == 0)
        status = "processing";
    sim_proto_version(t->model, buf);
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "model", t->model);
    cJSON_AddStringToObject(o, "version", buf);
    cJSON_AddStringToObject(o, "status", status);
    cJSON *in = cJSON_Parse(t->input_json);
    cJSON_AddItemToObject(o, "input", in ? in : cJSON_CreateObject());
    if (v.done && !t->failed) {
        /* One output is a bare URL string, several an array, as replicate's models do. */
        if (t->outputs == 1) {
            sim_task_media_url(t, base, 0, buf, sizeof(buf));
            cJSON_AddStringToObject(o, "output", buf);
        } else {
            cJSON *a = cJSON_AddArrayToObject(o, "output");
            for (int i = 0; a && i < t->outputs; i++) {
                sim_task_media_url(t, base, i, buf, sizeof(buf));
                cJSON_AddItemToArray(a, cJSON_CreateString(buf));
            }
        }
    } else {
        cJSON_AddNullToObject(o, "output");
    }
    if (v.done && t->failed && !t->canceled)
        cJSON_AddStringToObject(o, "error", t->fail_msg);
    else
        cJSON_AddNullToObject(o, "error");
    cJSON_AddStringToObject(o, "logs", "");
    cJSON_AddBoolToObject(o, "data_removed", 0);
    cJSON_AddStringToObject(o, "source", "api");
    sim_proto_add_time(o, "created_at", t->submit_ms, 1);
    sim_proto_add_time(o, "started_at", v.start_ms, now_ms >= v.start_ms);
    sim_proto_add_time(o, "completed_at", t->complete_ms, v.done);
    cJSON *urls = cJSON_AddObjectToObject(o, "urls");
    sim_proto_url(buf, sizeof(buf), base, "replicate", t, "");
    cJSON_AddStringToObject(urls, "get", buf);
    sim_proto_url(buf, sizeof(buf), base, "replicate", t, "/cancel");
    cJSON_AddStringToObject(urls, "cancel", buf);
    cJSON *metrics = cJSON_AddObjectToObject(o, "metrics");
    if (v.done)
        cJSON_AddNumberToObject(metrics, "predict_time",
                                (double)(t->complete_ms - v.start_ms) / 1000.0);
    return o;
}

static void sim_proto_fal_urls(cJSON *o, const struct sim_task *t, const char *base)
{
    char buf[600];
    cJSON_AddStringToObject(o, "request_id", t->id);
    sim_proto_url(buf, sizeof(buf), base, "fal", t, "");
    cJSON_AddStringToObject(o, "response_url", buf);
    sim_proto_url(buf, sizeof(buf), base, "fal", t, "/status");
    cJSON_AddStringToObject(o, "status_url", buf);
    sim_proto_url(buf, sizeof(buf), base, "fal", t, "/cancel");
    cJSON_AddStringToObject(o, "cancel_url", buf);
}

static cJSON *sim_proto_fal_status(const struct sim_task *t, long long now_ms, const char *base)
{
    struct sim_task_view v;
    sim_task_view_at(t, now_ms, &v);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (v.done) {
        cJSON_AddStringToObject(o, "status", "COMPLETED");
        cJSON_AddNullToObject(o, "logs");
        if (t->failed) {
            cJSON_AddStringToObject(o, "error", t->fail_msg);
            cJSON_AddStringToObject(o, "error_type", t->fail_code);
        }
        cJSON *m = cJSON_AddObjectToObject(o, "metrics");
        cJSON_AddNumberToObject(m, "inference_time",
                                (double)(t->complete_ms - v.start_ms) / 1000.0);
    } else if (strcmp(v.state, "generating") == 0) {
        cJSON_AddStringToObject(o, "status", "IN_PROGRESS");
        cJSON_AddNullToObject(o, "logs");
    } else {
        /* One ahead while "waiting", at the head while "queuing". */
        cJSON_AddStringToObject(o, "status", "IN_QUEUE");
        cJSON_AddNumberToObject(o, "queue_position", strcmp(v.state, "waiting") == 0 ? 1 : 0);
    }
    sim_proto_fal_urls(o, t, base);
    return o;
}

static cJSON *sim_proto_fal_file(const struct sim_task *t, int n, const char *base)
{
    cJSON *f = cJSON_CreateObject();
    struct sim_media *m = sim_media_new(t->kind, sim_task_media_seed(t, n), t->media_bytes);
    if (!f || !m) {
        cJSON_Delete(f);
        sim_media_free(m);
        return NULL;
    }
    char url[600], name[32];
    sim_task_media_url(t, base, n, url, sizeof(url));
    snprintf(name, sizeof(name), "%d.%s", n, sim_media_ext(t->kind));
    cJSON_AddStringToObject(f, "url", url);
    cJSON_AddStringToObject(f, "content_type", sim_media_mime(t->kind));
    cJSON_AddStringToObject(f, "file_name", name);
    cJSON_AddNumberToObject(f, "file_size", (double)sim_media_size(m));
    if (t->kind == SIM_KIND_IMAGE) {
        cJSON_AddNumberToObject(f, "width", m->width);
        cJSON_AddNumberToObject(f, "height", m->height);
    }
    sim_media_free(m);
    return f;
}

/* The result object of a completed, successful fal request. */
static cJSON *sim_proto_fal_payload(const struct sim_task *t, const char *base)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (t->kind == SIM_KIND_IMAGE) {
        cJSON *a = cJSON_AddArrayToObject(o, "images");
        for (int i = 0; a && i < t->outputs; i++)
            cJSON_AddItemToArray(a, sim_proto_fal_file(t, i, base));
        /* The seed the input asked for, else one derived from the media seed. */
        cJSON *in = cJSON_Parse(t->input_json);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(in, "seed");
        double seed = cJSON_IsNumber(s) ? s->valuedouble : (double)(t->media_seed >> 33);
        cJSON_Delete(in);
        cJSON_AddNumberToObject(o, "seed", seed);
        cJSON_AddStringToObject(o, "prompt", t->prompt);
        return o;
    }
    /* One file under "video"/"audio"; several also as an array under "videos"/"audios". */
    int video = t->kind == SIM_KIND_VIDEO;
    cJSON_AddItemToObject(o, video ? "video" : "audio", sim_proto_fal_file(t, 0, base));
    if (t->outputs > 1) {
        cJSON *a = cJSON_AddArrayToObject(o, video ? "videos" : "audios");
        for (int i = 0; a && i < t->outputs; i++)
            cJSON_AddItemToArray(a, sim_proto_fal_file(t, i, base));
    }
    return o;
}

cJSON *sim_proto_result_json(const struct sim_task *t, long long now_ms, const char *base,
                             int *status)
{
    struct sim_task_view v;
    sim_task_view_at(t, now_ms, &v);
    if (!v.done) {
        *status = 400;
        return sim_proto_error_json(SIM_PROTO_FAL, 400, "Request is still in progress");
    }
    if (t->failed) {
        *status = 422;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "detail", t->fail_msg);
        cJSON_AddStringToObject(o, "error_type", t->fail_code);
        return o;
    }
    *status = 200;
    return sim_proto_fal_payload(t, base);
}

cJSON *sim_proto_submit_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base, int *status)
{
    if (p == SIM_PROTO_REPLICATE) {
        *status = 201;
        return sim_proto_prediction(t, now_ms, base);
    }
    *status = 200;
    if (p == SIM_PROTO_FAL) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            return NULL;
        cJSON_AddStringToObject(o, "status", "IN_QUEUE");
        sim_proto_fal_urls(o, t, base);
        cJSON_AddNumberToObject(o, "queue_position", 0);
        return o;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "taskId", t->id);
    return sim_proto_envelope(200, "success", data);
}

cJSON *sim_proto_status_json(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                             const char *base)
{
    switch (p) {
    case SIM_PROTO_REPLICATE:
        return sim_proto_prediction(t, now_ms, base);
    case SIM_PROTO_FAL:
        return sim_proto_fal_status(t, now_ms, base);
    default:
        return sim_proto_envelope(200, "success", sim_task_status_json(t, now_ms, base));
    }
}

char *sim_proto_callback_body(enum sim_protocol p, const struct sim_task *t, long long now_ms,
                              const char *base)
{
    cJSON *o;
    if (p == SIM_PROTO_FAL) {
        struct sim_task_view v;
        sim_task_view_at(t, now_ms, &v);
        o = cJSON_CreateObject();
        if (!o)
            return NULL;
        cJSON_AddStringToObject(o, "request_id", t->id);
        cJSON_AddStringToObject(o, "gateway_request_id", t->id);
        cJSON_AddStringToObject(o, "status", t->failed ? "ERROR" : "OK");
        cJSON_AddItemToObject(o, "payload",
                              t->failed ? cJSON_CreateNull() : sim_proto_fal_payload(t, base));
        if (t->failed)
            cJSON_AddStringToObject(o, "error", t->fail_msg);
        else
            cJSON_AddNullToObject(o, "error");
    } else {
        o = sim_proto_status_json(p, t, now_ms, base);
    }
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static const char *sim_proto_replicate_title(int status)
{
    switch (status) {
    case 400:
        return "Bad request";
    case 401:
        return "Unauthenticated";
    case 402:
        return "Insufficient credit";
    case 404:
        return "Not found";
    case 405:
        return "Method not allowed";
    case 410:
        return "Gone";
    case 422:
        return "Input validation failed";
    case 429:
        return "Request was throttled";
    case 502:
        return "Bad gateway";
    case 455:
    case 503:
        return "Service unavailable";
    case 504:
        return "Gateway timeout";
    default:
        return status >= 500 ? "Internal server error" : "Error";
    }
}

cJSON *sim_proto_error_json(enum sim_protocol p, int status, const char *msg)
{
    if (p == SIM_PROTO_NATIVE)
        return sim_proto_envelope(status, msg, NULL);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (p == SIM_PROTO_REPLICATE)
        cJSON_AddStringToObject(o, "title", sim_proto_replicate_title(status));
    cJSON_AddStringToObject(o, "detail", msg);
    if (p == SIM_PROTO_REPLICATE)
        cJSON_AddNumberToObject(o, "status", status);
    return o;
}

/* ---- malformed answers -------------------------------------------------------------------- */

static char *sim_proto_huge(const char *head)
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

static const char sim_proto_html[] =
    "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n";

static char *sim_proto_malformed_native(enum sim_malformed_kind kind, int submit, const char *id)
{
    char buf[1024];
    switch (kind) {
    case SIM_MALFORMED_TRUNCATED:
        snprintf(buf, sizeof(buf), "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"%s",
                 id);
        break;
    case SIM_MALFORMED_NOT_JSON:
        snprintf(buf, sizeof(buf), "%s", sim_proto_html);
        break;
    case SIM_MALFORMED_NO_DATA:
        snprintf(buf, sizeof(buf), "{\"code\":200,\"msg\":\"success\"}");
        break;
    case SIM_MALFORMED_WRONG_TYPES:
        snprintf(buf, sizeof(buf),
                 "{\"code\":\"200\",\"msg\":200,\"data\":{\"taskId\":12345,\"state\":7,"
                 "\"progress\":\"half\",\"resultJson\":42,\"createTime\":\"yesterday\"}}");
        break;
    case SIM_MALFORMED_RESULTJSON_OBJECT:
        if (submit)
            snprintf(buf, sizeof(buf),
                     "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"\"}}");
        else
            snprintf(buf, sizeof(buf),
                     "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"%s\",\"state\":"
                     "\"success\",\"resultJson\":{\"resultUrls\":[\"http://127.0.0.1:9/x.png\"]},"
                     "\"failCode\":\"\",\"failMsg\":\"\"}}",
                     id);
        break;
    case SIM_MALFORMED_UNKNOWN_STATE:
        if (submit)
            snprintf(buf, sizeof(buf), "{\"code\":200,\"msg\":\"success\",\"data\":[]}");
        else
            snprintf(buf, sizeof(buf),
                     "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"%s\",\"state\":"
                     "\"exploding\",\"resultJson\":\"\",\"failCode\":\"\",\"failMsg\":\"\"}}",
                     id);
        break;
    case SIM_MALFORMED_HUGE:
    default:
        return sim_proto_huge("{\"code\":200,\"msg\":\"success\",\"data\":null,\"pad\":\"");
    }
    return strdup(buf);
}

/* replicate: the same seven kinds in prediction shape. A broken submit answer never holds an
 * id and a status together. */
static char *sim_proto_malformed_replicate(enum sim_malformed_kind kind, int submit, const char *id)
{
    char buf[1024];
    switch (kind) {
    case SIM_MALFORMED_TRUNCATED:
        snprintf(buf, sizeof(buf), "{\"id\":\"%s\",\"status\":\"proc", id);
        break;
    case SIM_MALFORMED_NOT_JSON:
        snprintf(buf, sizeof(buf), "%s", sim_proto_html);
        break;
    case SIM_MALFORMED_NO_DATA:
        snprintf(buf, sizeof(buf), "{}");
        break;
    case SIM_MALFORMED_WRONG_TYPES:
        snprintf(buf, sizeof(buf),
                 "{\"id\":12345,\"status\":7,\"output\":{\"url\":42},\"error\":42,"
                 "\"urls\":\"none\",\"created_at\":17}");
        break;
    case SIM_MALFORMED_RESULTJSON_OBJECT:
        /* Output of the wrong shape: an object where a URL string or array belongs. */
        if (submit)
            snprintf(buf, sizeof(buf), "{\"id\":\"\",\"status\":\"starting\",\"output\":null}");
        else
            snprintf(buf, sizeof(buf),
                     "{\"id\":\"%s\",\"status\":\"succeeded\",\"output\":{\"image\":"
                     "\"http://127.0.0.1:9/x.png\"},\"error\":null}",
                     id);
        break;
    case SIM_MALFORMED_UNKNOWN_STATE:
        if (submit)
            snprintf(buf, sizeof(buf), "[]");
        else
            snprintf(buf, sizeof(buf),
                     "{\"id\":\"%s\",\"status\":\"exploding\",\"output\":null,\"error\":null}", id);
        break;
    case SIM_MALFORMED_HUGE:
    default:
        return sim_proto_huge("{\"id\":null,\"status\":null,\"pad\":\"");
    }
    return strdup(buf);
}

/* fal: the same seven kinds in queue shapes; route picks submit, status or result. */
static char *sim_proto_malformed_fal(enum sim_malformed_kind kind, enum sim_route route,
                                     const char *id)
{
    char buf[1024];
    int submit = route == SIM_ROUTE_SUBMIT, result = route == SIM_ROUTE_RESULT;
    switch (kind) {
    case SIM_MALFORMED_TRUNCATED:
        if (result)
            snprintf(buf, sizeof(buf), "{\"images\":[{\"url\":\"http://127.0.0.1:9/");
        else
            snprintf(buf, sizeof(buf), "{\"request_id\":\"%s\",\"status\":\"IN_PR", id);
        break;
    case SIM_MALFORMED_NOT_JSON:
        snprintf(buf, sizeof(buf), "%s", sim_proto_html);
        break;
    case SIM_MALFORMED_NO_DATA:
        snprintf(buf, sizeof(buf), "{}");
        break;
    case SIM_MALFORMED_WRONG_TYPES:
        if (result)
            snprintf(buf, sizeof(buf),
                     "{\"images\":\"http://127.0.0.1:9/x.png\",\"video\":7,\"audio\":[1]}");
        else
            snprintf(buf, sizeof(buf),
                     "{\"request_id\":12345,\"status\":7,\"queue_position\":\"first\","
                     "\"response_url\":42,\"status_url\":false}");
        break;
    case SIM_MALFORMED_RESULTJSON_OBJECT:
        if (submit)
            snprintf(buf, sizeof(buf),
                     "{\"request_id\":\"\",\"response_url\":\"\",\"status_url\":\"\"}");
        else if (result)
            snprintf(buf, sizeof(buf), "{\"images\":[{\"content_type\":\"image/png\"}]}");
        else
            snprintf(buf, sizeof(buf), "{\"request_id\":\"%s\",\"status\":{\"COMPLETED\":true}}",
                     id);
        break;
    case SIM_MALFORMED_UNKNOWN_STATE:
        if (submit)
            snprintf(buf, sizeof(buf), "[]");
        else if (result)
            snprintf(buf, sizeof(buf), "{\"detail\":null}");
        else
            snprintf(buf, sizeof(buf), "{\"request_id\":\"%s\",\"status\":\"EXPLODING\"}", id);
        break;
    case SIM_MALFORMED_HUGE:
    default:
        return sim_proto_huge("{\"request_id\":null,\"status\":null,\"pad\":\"");
    }
    return strdup(buf);
}

char *sim_proto_malformed_body(enum sim_protocol p, enum sim_malformed_kind kind,
                               enum sim_route route, const char *id)
{
    int submit = route == SIM_ROUTE_SUBMIT;
    if (submit)
        id = "";
    switch (p) {
    case SIM_PROTO_REPLICATE:
        return sim_proto_malformed_replicate(kind, submit, id);
    case SIM_PROTO_FAL:
        return sim_proto_malformed_fal(kind, route, id);
    default:
        return sim_proto_malformed_native(kind, submit, id);
    }
}
