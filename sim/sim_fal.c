/* fal's queue API (fal-js queue.ts, fal's queue and error docs): POST {base}/{endpoint id}, then
 * status, result and cancel on the endpoint's app id only ("fal-ai/flux/dev" polls under
 * "fal-ai/flux"); a failed request's result is a model error (422, detail an array of
 * {loc, msg, type}) or a request error (detail a string, error_type in the body and the
 * X-Fal-Error-Type header). */
#include "sim_proto_impl.h"

#include "sim_media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Segments of the app id: owner/alias, after a namespace prefix as fal-js parses it. */
static int sim_fal_app_segments(const char *model)
{
    return strncmp(model, "workflows/", 10) == 0 || strncmp(model, "comfy/", 6) == 0 ? 3 : 2;
}

void sim_fal_app_id(const char *model, char *out, size_t cap)
{
    int want = sim_fal_app_segments(model), seen = 0;
    size_t i = 0;
    for (; model[i]; i++)
        if (model[i] == '/' && ++seen == want)
            break;
    snprintf(out, cap, "%.*s", (int)i, model);
}

static int sim_fal_is_app_id(const char *s, size_t len)
{
    int slashes = 0;
    for (size_t i = 0; i < len; i++)
        slashes += s[i] == '/';
    char head[16];
    snprintf(head, sizeof(head), "%.*s", (int)(len < 15 ? len : 15), s);
    return slashes < sim_fal_app_segments(head);
}

void sim_fal_route(int get, int post, int put, const char *path, struct sim_route_info *out)
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
    /* {app}/requests/{id}, .../status, .../status/stream (GET) or .../cancel (PUT). */
    enum sim_route r;
    static const char status[] = "/status", cancel[] = "/cancel", stream[] = "/status/stream";
    if (get && len > 14 && strcmp(rest + len - 14, stream) == 0) {
        r = SIM_ROUTE_STREAM;
        len -= 14;
    } else if (get && len > 7 && strcmp(rest + len - 7, status) == 0) {
        r = SIM_ROUTE_STATUS;
        len -= 7;
    } else if (put && len > 7 && strcmp(rest + len - 7, cancel) == 0) {
        r = SIM_ROUTE_CANCEL;
        len -= 7;
    } else if (get) {
        r = SIM_ROUTE_RESULT;
    } else {
        return;
    }
    size_t i = len;
    while (i > 0 && rest[i - 1] != '/')
        i--;
    static const char req[] = "/requests/";
    size_t rl = sizeof(req) - 1;
    if (i < rl + 1 || memcmp(rest + i - rl, req, rl) != 0)
        return;
    size_t mlen = i - rl;
    /* A status on the endpoint's full path is refused, as fal refuses it: the queue lives on
     * the app id. */
    if (!sim_req_model_ok(rest, mlen) || !sim_fal_is_app_id(rest, mlen) ||
        sim_req_copy(out->model, sizeof(out->model), rest, mlen) != 0 ||
        sim_req_copy(out->task_id, sizeof(out->task_id), rest + i, len - i) != 0) {
        out->model[0] = '\0';
        return;
    }
    out->route = r;
}

int sim_fal_submit_parse(const struct sim_models *ms, const struct sim_route_info *ri,
                         const char *body, size_t len, const char *webhook, struct sim_submit *out,
                         char *msg, size_t msglen)
{
    out->model = sim_models_find(ms, ri->model);
    if (!out->model)
        return sim_proto_refuse(404, msg, msglen, "Application '%s' not found", ri->model);
    if (sim_proto_parse_object(body, len, out))
        return sim_proto_refuse(422, msg, msglen, "body: not a JSON object");
    out->input = out->root;
    if (sim_req_prompt_parse(out->input, "", out, msg, msglen))
        return 422;
    char field[64];
    int missing;
    if (sim_model_check_requires(out->model, out->input, field, sizeof(field), &missing))
        return sim_proto_refuse(422, msg, msglen, "%s: %s", field,
                                missing ? "field required" : "unexpected value");
    if (webhook) {
        if (!sim_proto_http_url(webhook))
            return sim_proto_refuse(422, msg, msglen, "fal_webhook: must be an http(s) URL");
        out->callback = 1;
        out->callback_url = webhook;
    }
    if (sim_req_knobs_parse(out->input, "", 0, out, msg, msglen))
        return 422;
    return 0;
}

static void sim_fal_urls(cJSON *o, const struct sim_task *t, const char *base)
{
    char app[SIM_MODEL_NAME_MAX + 1], buf[600];
    sim_fal_app_id(t->model, app, sizeof(app));
    cJSON_AddStringToObject(o, "request_id", t->id);
    snprintf(buf, sizeof(buf), "%s/%s/requests/%s", base, app, t->id);
    cJSON_AddStringToObject(o, "response_url", buf);
    snprintf(buf, sizeof(buf), "%s/%s/requests/%s/status", base, app, t->id);
    cJSON_AddStringToObject(o, "status_url", buf);
    snprintf(buf, sizeof(buf), "%s/%s/requests/%s/cancel", base, app, t->id);
    cJSON_AddStringToObject(o, "cancel_url", buf);
}

/* With a webhook the answer is the two ids only, as documented; the client builds the queue
 * URLs itself. */
cJSON *sim_fal_submit_json(const struct sim_task *t, const char *base)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (t->callback_url) {
        cJSON_AddStringToObject(o, "request_id", t->id);
        cJSON_AddStringToObject(o, "gateway_request_id", t->id);
        return o;
    }
    cJSON_AddStringToObject(o, "status", "IN_QUEUE");
    sim_fal_urls(o, t, base);
    cJSON_AddNumberToObject(o, "queue_position", 0);
    return o;
}

#define SIM_FAL_CANCELLED "Request was cancelled"

/* What a failed request says: its message and type (a cancel has its own). */
static const char *sim_fal_error_msg(const struct sim_task *t)
{
    return t->canceled ? SIM_FAL_CANCELLED : t->fail_msg;
}

static const char *sim_fal_error_type(const struct sim_task *t)
{
    return t->canceled ? "request_cancelled" : t->fail_code;
}

#define SIM_FAL_LOG_STEPS 8

/* The runner's log entries up to now_ms, as fal's docs show them ({timestamp, message,
 * labels}, timestamps without a zone): one at the start, one per step of 8 done. */
static cJSON *sim_fal_logs(const struct sim_task *t, long long now_ms, long long start_ms)
{
    long long upto = now_ms < t->complete_ms ? now_ms : t->complete_ms;
    long long end = t->submit_ms + t->duration_ms, span = end > start_ms ? end - start_ms : 1;
    cJSON *a = cJSON_CreateArray();
    if (!a || upto < start_ms || !sim_task_started(t))
        return a;
    int steps =
        upto >= end ? SIM_FAL_LOG_STEPS : (int)(SIM_FAL_LOG_STEPS * (upto - start_ms) / span);
    for (int i = 0; i <= steps; i++) {
        char iso[SIM_PROTO_ISO_MAX], msg[64];
        sim_proto_iso8601(start_ms + span * i / SIM_FAL_LOG_STEPS, iso);
        iso[strlen(iso) - 1] = '\0'; /* no "Z" */
        if (i == 0)
            snprintf(msg, sizeof(msg), "INFO:RUNNER:Running the model...");
        else
            snprintf(msg, sizeof(msg), "INFO:RUNNER:step %d/%d", i, SIM_FAL_LOG_STEPS);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "timestamp", iso);
        cJSON_AddStringToObject(e, "message", msg);
        cJSON_AddObjectToObject(e, "labels");
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

/* "logs": the entries when asked for (?logs=1), else null. */
static void sim_fal_add_logs(cJSON *o, const struct sim_task *t, long long now_ms,
                             const struct sim_task_view *v, int with_logs)
{
    if (with_logs)
        cJSON_AddItemToObject(o, "logs", sim_fal_logs(t, now_ms, v->start_ms));
    else
        cJSON_AddNullToObject(o, "logs");
}

cJSON *sim_fal_status_json(const struct sim_task *t, long long now_ms, const char *base,
                           int with_logs)
{
    struct sim_task_view v;
    sim_task_view_at(t, now_ms, &v);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (v.done) {
        cJSON_AddStringToObject(o, "status", "COMPLETED");
        sim_fal_add_logs(o, t, now_ms, &v, with_logs);
        if (t->failed) {
            cJSON_AddStringToObject(o, "error", sim_fal_error_msg(t));
            cJSON_AddStringToObject(o, "error_type", sim_fal_error_type(t));
        }
        cJSON *m = cJSON_AddObjectToObject(o, "metrics");
        if (sim_task_started(t))
            cJSON_AddNumberToObject(m, "inference_time",
                                    (double)(t->complete_ms - v.start_ms) / 1000.0);
    } else if (strcmp(v.state, "generating") == 0) {
        cJSON_AddStringToObject(o, "status", "IN_PROGRESS");
        sim_fal_add_logs(o, t, now_ms, &v, with_logs);
        cJSON_AddObjectToObject(o, "metrics");
    } else {
        /* One ahead while "waiting", at the head while "queuing". */
        cJSON_AddStringToObject(o, "status", "IN_QUEUE");
        cJSON_AddNullToObject(o, "logs");
        cJSON_AddObjectToObject(o, "metrics");
        cJSON_AddNumberToObject(o, "queue_position", strcmp(v.state, "waiting") == 0 ? 1 : 0);
    }
    sim_fal_urls(o, t, base);
    return o;
}

long long sim_fal_stream_next_ms(const struct sim_task *t, long long after_ms, int with_logs)
{
    struct sim_task_view v;
    sim_task_view_at(t, after_ms, &v);
    long long d = t->duration_ms, end = t->submit_ms + d;
    long long at[3 + SIM_FAL_LOG_STEPS] = {t->submit_ms + d / 10, v.start_ms, t->complete_ms};
    int n = 3;
    /* A log entry per step of generation, as sim_fal_logs adds them. */
    for (int i = 1; with_logs && i <= SIM_FAL_LOG_STEPS; i++)
        at[n++] = v.start_ms + (end > v.start_ms ? end - v.start_ms : 1) * i / SIM_FAL_LOG_STEPS;
    long long next = t->complete_ms > after_ms ? t->complete_ms : after_ms + 1;
    for (int i = 0; i < n; i++)
        if (at[i] > after_ms && at[i] < next)
            next = at[i];
    return next;
}

static cJSON *sim_fal_file(const struct sim_task *t, int n, const char *base)
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

/* The result object of a completed, successful request. */
static cJSON *sim_fal_payload(const struct sim_task *t, const char *base)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (t->kind == SIM_KIND_IMAGE) {
        cJSON *a = cJSON_AddArrayToObject(o, "images");
        for (int i = 0; a && i < t->outputs; i++)
            cJSON_AddItemToArray(a, sim_fal_file(t, i, base));
        /* The seed the input asked for, else one derived from the media seed. */
        cJSON *in = cJSON_Parse(t->input_json);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(in, "seed");
        double seed = cJSON_IsNumber(s) ? s->valuedouble : (double)(t->media_seed >> 33);
        cJSON_Delete(in);
        cJSON_AddNumberToObject(o, "seed", seed);
        cJSON_AddStringToObject(o, "prompt", t->prompt);
        return o;
    }
    if (t->kind == SIM_KIND_TEXT) {
        /* Language model apps answer their text under "output". */
        size_t n;
        char *text = sim_media_all(SIM_KIND_TEXT, sim_task_media_seed(t, 0), t->media_bytes, &n);
        cJSON_AddStringToObject(o, "output", text ? text : "");
        free(text);
        return o;
    }
    /* One file under "video"/"audio"; several also as an array under "videos"/"audios". */
    int video = t->kind == SIM_KIND_VIDEO;
    cJSON_AddItemToObject(o, video ? "video" : "audio", sim_fal_file(t, 0, base));
    if (t->outputs > 1) {
        cJSON *a = cJSON_AddArrayToObject(o, video ? "videos" : "audios");
        for (int i = 0; a && i < t->outputs; i++)
            cJSON_AddItemToArray(a, sim_fal_file(t, i, base));
    }
    return o;
}

/* The HTTP status of a request error by its type (fal's "typical status code"); types that are
 * not infrastructure failures answer 422 as model errors do. */
static int sim_fal_error_status(const char *type)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {{"request_timeout", 504},           {"startup_timeout", 504},
               {"runner_scheduling_failure", 503}, {"runner_connection_timeout", 503},
               {"runner_disconnected", 503},       {"runner_connection_refused", 503},
               {"runner_connection_error", 503},   {"internal_error", 500},
               {"request_cancelled", 400}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].type, type) == 0)
            return map[i].status;
    return 422;
}

/* [{"loc": ["body", F], "msg", "type", "url", "input"}]: a model error as fal's docs show it (the
 * input only when the field was given). */
static cJSON *sim_fal_model_errors(const struct sim_task *t)
{
    cJSON *a = cJSON_CreateArray(), *e = cJSON_CreateObject();
    if (!a || !e) {
        cJSON_Delete(a);
        cJSON_Delete(e);
        return NULL;
    }
    cJSON *loc = cJSON_AddArrayToObject(e, "loc");
    cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
    cJSON_AddItemToArray(loc, cJSON_CreateString(t->fail_loc));
    cJSON_AddStringToObject(e, "msg", t->fail_msg);
    cJSON_AddStringToObject(e, "type", t->fail_code);
    char url[256];
    snprintf(url, sizeof(url), "https://docs.fal.ai/errors/#%s", t->fail_code);
    cJSON_AddStringToObject(e, "url", url);
    cJSON *in = cJSON_Parse(t->input_json);
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(in, t->fail_loc);
    if (v)
        cJSON_AddItemToObject(e, "input", v);
    cJSON_Delete(in);
    cJSON_AddItemToArray(a, e);
    return a;
}

cJSON *sim_fal_result_json(const struct sim_task *t, long long now_ms, const char *base,
                           int *status, const char **error_type)
{
    struct sim_task_view v;
    sim_task_view_at(t, now_ms, &v);
    *error_type = NULL;
    if (!v.done) {
        *status = 400;
        return sim_fal_error_json(400, "Request is still in progress");
    }
    if (!t->failed) {
        *status = 200;
        return sim_fal_payload(t, base);
    }
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (t->fail_loc && !t->canceled) {
        *status = 422;
        cJSON_AddItemToObject(o, "detail", sim_fal_model_errors(t));
        return o;
    }
    *error_type = sim_fal_error_type(t);
    *status = sim_fal_error_status(*error_type);
    cJSON_AddStringToObject(o, "detail", sim_fal_error_msg(t));
    cJSON_AddStringToObject(o, "error_type", *error_type);
    return o;
}

cJSON *sim_fal_cancel_json(int canceled, int *status)
{
    cJSON *o = cJSON_CreateObject();
    *status = canceled ? 202 : 400;
    cJSON_AddStringToObject(o, "status", canceled ? "CANCELLATION_REQUESTED" : "ALREADY_COMPLETED");
    return o;
}

/* OK with the result as payload; ERROR with "Invalid status code: N" and the failed result's
 * body as payload, as fal's webhook docs show. */
char *sim_fal_callback_body(const struct sim_task *t, long long now_ms, const char *base)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "request_id", t->id);
    cJSON_AddStringToObject(o, "gateway_request_id", t->id);
    cJSON_AddStringToObject(o, "status", t->failed ? "ERROR" : "OK");
    if (t->failed) {
        int status;
        const char *et;
        char err[64];
        cJSON_AddItemToObject(o, "payload", sim_fal_result_json(t, now_ms, base, &status, &et));
        snprintf(err, sizeof(err), "Invalid status code: %d", status);
        cJSON_AddStringToObject(o, "error", err);
    } else {
        cJSON_AddItemToObject(o, "payload", sim_fal_payload(t, base));
        cJSON_AddNullToObject(o, "error");
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static const char *sim_fal_reason(int code)
{
    switch (code) {
    case 401:
        return "No user found for Key ID and Secret";
    case 402:
        return "User is locked. Reason: Exhausted balance. Top up your balance at "
               "fal.ai/dashboard/billing.";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 410:
        return "File has expired";
    case 429:
        return "Too many requests";
    case 502:
        return "Bad Gateway";
    case 455:
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return code >= 500 ? "Internal Server Error" : "Request failed";
    }
}

cJSON *sim_fal_error_json(int code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "detail", msg ? msg : sim_fal_reason(code));
    return o;
}

/* The malformed kinds in queue shapes: submit, status and result answers. */
const struct sim_malformed_form sim_fal_malformed[SIM_MALFORMED_KINDS] = {
    [SIM_MALFORMED_TRUNCATED] = {.status = "{\"request_id\":\"%s\",\"status\":\"IN_PR",
                                 .result = "{\"images\":[{\"url\":\"http://127.0.0.1:9/"},
    [SIM_MALFORMED_NO_DATA] = {"{}"},
    [SIM_MALFORMED_WRONG_TYPES] =
        {.status = "{\"request_id\":12345,\"status\":7,\"queue_position\":\"first\","
                   "\"response_url\":42,\"status_url\":false}",
         .result = "{\"images\":\"http://127.0.0.1:9/x.png\",\"video\":7,\"audio\":[1]}"},
    [SIM_MALFORMED_RESULTJSON_OBJECT] =
        {.submit = "{\"request_id\":\"\",\"response_url\":\"\",\"status_url\":\"\"}",
         .status = "{\"request_id\":\"%s\",\"status\":{\"COMPLETED\":true}}",
         .result = "{\"images\":[{\"content_type\":\"image/png\"}]}"},
    [SIM_MALFORMED_UNKNOWN_STATE] = {.submit = "[]",
                                     .status = "{\"request_id\":\"%s\",\"status\":\"EXPLODING\"}",
                                     .result = "{\"detail\":null}"},
    [SIM_MALFORMED_HUGE] = {"{\"request_id\":null,\"status\":null,\"pad\":\""},
};
