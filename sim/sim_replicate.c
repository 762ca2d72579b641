/* replicate's predictions API (the OpenAPI description, replicate-python's cassettes): official
 * models by name, community models by version, deployments; outputs in every shape models give
 * (strings, arrays, named stems with nulls, nested arrays, data: URIs, text tokens); canceled and
 * aborted ends; errors as {"title", "detail", "status"}. */
#include "sim_proto_impl.h"

#include "sim_media.h"
#include "sim_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_REPLICATE_BAD_VERSION                                                                  \
    "The specified version does not exist (or perhaps you don't have permission to use it?)"

static int sim_replicate_ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* {prefix}{model}/predictions: the model between them. */
static int sim_replicate_model_path(const char *path, const char *prefix,
                                    struct sim_route_info *out)
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0)
        return 0;
    const char *rest = path + pl;
    size_t len = strlen(rest);
    static const char suffix[] = "/predictions";
    if (!sim_replicate_ends_with(rest, len, suffix))
        return 0;
    size_t mlen = len - (sizeof(suffix) - 1);
    return sim_req_model_ok(rest, mlen) &&
           sim_req_copy(out->model, sizeof(out->model), rest, mlen) == 0;
}

void sim_replicate_route(int get, int post, const char *path, struct sim_route_info *out)
{
    if (sim_replicate_model_path(path, "/v1/models/", out)) {
        out->route = post ? SIM_ROUTE_SUBMIT : SIM_ROUTE_BAD_METHOD;
        return;
    }
    if (sim_replicate_model_path(path, "/v1/deployments/", out)) {
        out->deployment = 1;
        out->route = post ? SIM_ROUTE_SUBMIT : SIM_ROUTE_BAD_METHOD;
        return;
    }
    out->model[0] = '\0';
    /* POST /v1/predictions names the version in the body; listing predictions is not
     * simulated. */
    if (strcmp(path, "/v1/predictions") == 0) {
        if (post)
            out->route = SIM_ROUTE_SUBMIT;
        return;
    }
    static const char preds[] = "/v1/predictions/";
    if (strncmp(path, preds, sizeof(preds) - 1) != 0)
        return;
    const char *id = path + sizeof(preds) - 1;
    const char *slash = strchr(id, '/');
    if (slash) {
        if (strcmp(slash, "/cancel") != 0 ||
            sim_req_copy(out->task_id, sizeof(out->task_id), id, (size_t)(slash - id)))
            return;
        out->route = post ? SIM_ROUTE_CANCEL : SIM_ROUTE_BAD_METHOD;
        return;
    }
    if (sim_req_copy(out->task_id, sizeof(out->task_id), id, strlen(id)))
        return;
    out->route = get ? SIM_ROUTE_STATUS : SIM_ROUTE_BAD_METHOD;
}

void sim_replicate_version(const char *model, char out[65])
{
    struct sim_sha256 s;
    sim_sha256_init(&s);
    sim_sha256_update(&s, "genfs-sim:", 10);
    sim_sha256_update(&s, model, strlen(model));
    sim_sha256_final_hex(&s, out);
}

/* A version as clients send it: the 64-hex id, "owner/name:id", or an official model's
 * "owner/name". NULL when no model has it. */
static const struct sim_model *sim_replicate_find_version(const struct sim_models *ms,
                                                          const char *version)
{
    char digest[65];
    const char *colon = strchr(version, ':');
    if (colon) {
        char name[SIM_MODEL_NAME_MAX + 1];
        if (sim_req_copy(name, sizeof(name), version, (size_t)(colon - version)))
            return NULL;
        const struct sim_model *m = sim_models_find(ms, name);
        if (!m)
            return NULL;
        sim_replicate_version(m->name, digest);
        return strcmp(digest, colon + 1) == 0 ? m : NULL;
    }
    for (size_t i = 0; i < ms->n; i++) {
        sim_replicate_version(ms->v[i].name, digest);
        if (strcmp(digest, version) == 0)
            return &ms->v[i];
    }
    return strchr(version, '/') ? sim_models_find(ms, version) : NULL;
}

int sim_replicate_submit_parse(const struct sim_models *ms, const struct sim_route_info *ri,
                               const char *body, size_t len, struct sim_submit *out, char *msg,
                               size_t msglen)
{
    if (ri->model[0]) {
        out->model = sim_models_find(ms, ri->model);
        if (!out->model)
            return sim_proto_refuse(404, msg, msglen, "%s not found: %s",
                                    ri->deployment ? "Deployment" : "Model", ri->model);
    }
    if (sim_proto_parse_object(body, len, out))
        return sim_proto_refuse(422, msg, msglen, "body: not a JSON object");
    if (!out->model) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(out->root, "version");
        if (!cJSON_IsString(v) || !v->valuestring[0])
            return sim_proto_refuse(422, msg, msglen, "version: required");
        out->model = sim_replicate_find_version(ms, v->valuestring);
        if (!out->model)
            return sim_proto_refuse(422, msg, msglen, "%s", SIM_REPLICATE_BAD_VERSION);
    }
    out->input = cJSON_GetObjectItemCaseSensitive(out->root, "input");
    if (!cJSON_IsObject(out->input))
        return sim_proto_refuse(422, msg, msglen, "input: required, must be an object");
    if (sim_req_prompt_parse(out->input, "input.", out, msg, msglen))
        return 422;
    char field[64];
    int missing;
    if (sim_model_check_requires(out->model, out->input, field, sizeof(field), &missing))
        return sim_proto_refuse(422, msg, msglen, "input.%s: %s", field,
                                missing ? "required" : "not one of the allowed values");
    const cJSON *wh = cJSON_GetObjectItemCaseSensitive(out->root, "webhook");
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(out->root, "webhook_events_filter");
    if (wh && !cJSON_IsNull(wh)) {
        if (!cJSON_IsString(wh) || !sim_proto_http_url(wh->valuestring))
            return sim_proto_refuse(422, msg, msglen, "webhook: must be an http(s) URL");
        out->callback = 1;
        out->callback_url = wh->valuestring;
    }
    if (filter && !cJSON_IsNull(filter)) {
        if (!cJSON_IsArray(filter))
            return sim_proto_refuse(422, msg, msglen, "webhook_events_filter: must be an array");
        int completed = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, filter)
        {
            static const char *const known[] = {"start", "output", "logs", "completed", NULL};
            int ok = 0;
            for (int k = 0; cJSON_IsString(e) && known[k]; k++)
                ok |= strcmp(e->valuestring, known[k]) == 0;
            if (!ok)
                return sim_proto_refuse(422, msg, msglen,
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
    if (sim_req_knobs_parse(out->input, "input.", SIM_KNOB_CANCELED | SIM_KNOB_ABORTED, out, msg,
                            msglen))
        return 422;
    return 0;
}

/* ---- the prediction ----------------------------------------------------------------------- */

static cJSON *sim_replicate_url(const struct sim_task *t, const char *base, int n)
{
    char url[600];
    sim_task_media_url(t, base, n, url, sizeof(url));
    return cJSON_CreateString(url);
}

/* Output n as a data: URI of the media itself. */
static cJSON *sim_replicate_data_uri(const struct sim_task *t, int n)
{
    char *s = sim_media_data_uri(t->kind, sim_task_media_seed(t, n), t->media_bytes);
    cJSON *j = s ? cJSON_CreateString(s) : cJSON_CreateNull();
    free(s);
    return j;
}

/* The text of the task (output 0's text file) as a string, or split into tokens that each
 * start with their space, as language models stream them. */
static cJSON *sim_replicate_text(const struct sim_task *t, int tokens)
{
    size_t n;
    char *text = sim_media_all(SIM_KIND_TEXT, sim_task_media_seed(t, 0), t->media_bytes, &n);
    if (!text)
        return cJSON_CreateNull();
    cJSON *out;
    if (!tokens) {
        out = cJSON_CreateString(text);
    } else {
        out = cJSON_CreateArray();
        size_t start = 0;
        for (size_t i = 1; out && i <= n; i++) {
            if (i < n && text[i] != ' ')
                continue;
            char keep = text[i];
            text[i] = '\0';
            cJSON_AddItemToArray(out, cJSON_CreateString(text + start));
            text[i] = keep;
            start = i;
        }
    }
    free(text);
    return out;
}

static cJSON *sim_replicate_output(const struct sim_task *t, const char *base)
{
    /* demucs' stems in its key order; the URLs fill them in this order, the rest stay null. */
    static const char *const stems[] = {"vocals", "bass", "drums", "guitar", "piano", "other"};
    static const int fill[] = {0, 1, 2, 5, 3, 4};
    enum sim_output_shape shape = t->output;
    if (shape == SIM_OUT_AUTO)
        shape = t->kind == SIM_KIND_TEXT ? SIM_OUT_TOKENS
                : t->outputs == 1        ? SIM_OUT_URL
                                         : SIM_OUT_URLS;
    cJSON *o = NULL;
    switch (shape) {
    case SIM_OUT_URL:
        return sim_replicate_url(t, base, 0);
    case SIM_OUT_NAMED: {
        o = cJSON_CreateObject();
        int url_of[6] = {-1, -1, -1, -1, -1, -1};
        for (int i = 0; i < t->outputs && i < 6; i++)
            url_of[fill[i]] = i;
        for (int k = 0; o && k < 6; k++)
            cJSON_AddItemToObject(o, stems[k],
                                  url_of[k] < 0 ? cJSON_CreateNull()
                                                : sim_replicate_url(t, base, url_of[k]));
        return o;
    }
    case SIM_OUT_NESTED:
        o = cJSON_CreateArray();
        for (int i = 0; o && i < t->outputs; i += 2) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, sim_replicate_url(t, base, i));
            if (i + 1 < t->outputs)
                cJSON_AddItemToArray(pair, sim_replicate_url(t, base, i + 1));
            cJSON_AddItemToArray(o, pair);
        }
        return o;
    case SIM_OUT_DATAURI:
        if (t->outputs == 1)
            return sim_replicate_data_uri(t, 0);
        o = cJSON_CreateArray();
        for (int i = 0; o && i < t->outputs; i++)
            cJSON_AddItemToArray(o, sim_replicate_data_uri(t, i));
        return o;
    case SIM_OUT_TOKENS:
    case SIM_OUT_TEXT:
        return sim_replicate_text(t, shape == SIM_OUT_TOKENS);
    default:
        o = cJSON_CreateArray();
        for (int i = 0; o && i < t->outputs; i++)
            cJSON_AddItemToArray(o, sim_replicate_url(t, base, i));
        return o;
    }
}

#define SIM_REPLICATE_LOG_LINE 27 /* "step 000001: loss 1.000000\n" */

#define SIM_REPLICATE_STEPS 50

/* A diffusion model's logs as recorded (tests/fixtures/providers/replicate/
 * prediction-processing-tqdm-10pct.json): the seed and prompt, then one tqdm line per step
 * done, " 10%|█         | 5/50 [00:01<00:09,  4.91it/s]". */
static char *sim_replicate_tqdm(const struct sim_task *t, long long upto, long long start_ms,
                                long long end)
{
    long long span = end > start_ms ? end - start_ms : 1;
    int steps =
        upto >= end ? SIM_REPLICATE_STEPS : (int)(SIM_REPLICATE_STEPS * (upto - start_ms) / span);
    /* 64 bytes a line at most (a cell of the bar is 3 bytes of UTF-8), and the head. */
    size_t cap = (size_t)(steps + 1) * 96 + strlen(t->prompt) + 64, n = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    n += (size_t)snprintf(s, cap, "Using seed: %llu\nPrompt: %.*s\ntxt2img mode\n",
                          (unsigned long long)(t->media_seed >> 48), 200, t->prompt);
    for (int i = 0; i <= steps; i++) {
        int pct = i * 100 / SIM_REPLICATE_STEPS, cells = pct / 10;
        n += (size_t)snprintf(s + n, cap - n, "%3d%%|", pct);
        for (int c = 0; c < 10; c++)
            n += (size_t)snprintf(s + n, cap - n, "%s", c < cells ? "\xe2\x96\x88" : " ");
        n += (size_t)snprintf(s + n, cap - n, "| %d/%d [00:%02d<00:%02d,  4.92it/s]\n", i,
                              SIM_REPLICATE_STEPS, i / 5 % 60, (SIM_REPLICATE_STEPS - i) / 5 % 60);
    }
    return s;
}

/* The logs printed by now_ms (none before it starts): a model with logs_bytes prints that much
 * over the whole generation, a share of it while it runs; the others print tqdm progress. */
static char *sim_replicate_logs(const struct sim_task *t, long long now_ms, long long start_ms)
{
    long long end = t->submit_ms + t->duration_ms,
              upto = now_ms < t->complete_ms ? now_ms : t->complete_ms;
    if (t->logs_bytes <= 0)
        return upto > start_ms && !t->aborted ? sim_replicate_tqdm(t, upto, start_ms, end)
                                              : strdup("");
    long long total = t->logs_bytes > 0 ? t->logs_bytes / SIM_REPLICATE_LOG_LINE + 1 : 0;
    long long lines = 0;
    if (total && !t->aborted && upto >= end)
        lines = total;
    else if (total && !t->aborted && upto > start_ms)
        lines = total * (upto - start_ms) / (end - start_ms);
    char *s = malloc((size_t)(lines * SIM_REPLICATE_LOG_LINE) + 1);
    if (!s)
        return NULL;
    for (long long i = 0; i < lines; i++)
        snprintf(s + i * SIM_REPLICATE_LOG_LINE, SIM_REPLICATE_LOG_LINE + 1,
                 "step %06lld: loss %.6f\n", (i + 1) % 1000000, 1.0 / (double)(i + 1));
    s[lines * SIM_REPLICATE_LOG_LINE] = '\0';
    return s;
}

static void sim_replicate_add_time(cJSON *o, const char *key, long long ms, int set)
{
    if (!set) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char iso[SIM_PROTO_ISO_MAX];
    sim_proto_iso8601(ms, iso);
    cJSON_AddStringToObject(o, key, iso);
}

cJSON *sim_replicate_prediction(const struct sim_task *t, long long now_ms, const char *base)
{
    struct sim_task_view v;
    sim_task_view_at(t, now_ms, &v);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    char buf[600];
    const char *status = "starting";
    if (v.done)
        status = t->aborted    ? "aborted"
                 : t->canceled ? "canceled"
                 : t->failed   ? "failed"
                               : "succeeded";
    else if (strcmp(v.state, "generating") == 0)
        status = "processing";
    int started = v.done ? sim_task_started(t) : now_ms >= v.start_ms && !t->aborted;
    sim_replicate_version(t->model, buf);
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "model", t->model);
    cJSON_AddStringToObject(o, "version", buf);
    cJSON_AddStringToObject(o, "status", status);
    cJSON *in = cJSON_Parse(t->input_json);
    cJSON_AddItemToObject(o, "input", in ? in : cJSON_CreateObject());
    cJSON_AddItemToObject(
        o, "output", v.done && !t->failed ? sim_replicate_output(t, base) : cJSON_CreateNull());
    if (v.done && t->failed && !t->canceled)
        cJSON_AddStringToObject(o, "error", t->fail_msg);
    else
        cJSON_AddNullToObject(o, "error");
    /* A canceled prediction shows logs null, as recorded. */
    char *logs = v.done && t->canceled ? NULL : sim_replicate_logs(t, now_ms, v.start_ms);
    if (logs)
        cJSON_AddStringToObject(o, "logs", logs);
    else
        cJSON_AddNullToObject(o, "logs");
    free(logs);
    cJSON_AddBoolToObject(o, "data_removed", 0);
    cJSON_AddStringToObject(o, "source", "api");
    sim_replicate_add_time(o, "created_at", t->submit_ms, 1);
    sim_replicate_add_time(o, "started_at", v.start_ms, started);
    sim_replicate_add_time(o, "completed_at", t->complete_ms, v.done);
    cJSON *urls = cJSON_AddObjectToObject(o, "urls");
    snprintf(buf, sizeof(buf), "%s/v1/predictions/%s", base, t->id);
    cJSON_AddStringToObject(urls, "get", buf);
    snprintf(buf, sizeof(buf), "%s/v1/predictions/%s/cancel", base, t->id);
    cJSON_AddStringToObject(urls, "cancel", buf);
    cJSON *metrics = cJSON_AddObjectToObject(o, "metrics");
    if (v.done && started)
        cJSON_AddNumberToObject(metrics, "predict_time",
                                (double)(t->complete_ms - v.start_ms) / 1000.0);
    if (v.done)
        cJSON_AddNumberToObject(metrics, "total_time",
                                (double)(t->complete_ms - t->submit_ms) / 1000.0);
    return o;
}

static const char *sim_replicate_title(int code)
{
    switch (code) {
    case 400:
        return "Bad request";
    case 401:
        return "Unauthenticated";
    case 402:
        return "Insufficient credit";
    case 422:
        return "Input validation failed";
    case 429:
        return "Request was throttled";
    default:
        return sim_proto_http_title(code, "Error");
    }
}

static const char *sim_replicate_reason(int code)
{
    switch (code) {
    case 401:
        return "You did not pass a valid authentication token";
    case 402:
        return "You have insufficient credit to run this model. Go to "
               "https://replicate.com/account/billing#billing to purchase credit.";
    case 404:
        return "The requested resource could not be found.";
    case 429:
        return "Request was throttled. Expected available in 1 second.";
    default:
        return sim_replicate_title(code);
    }
}

/* {"title", "detail", "status"} as recorded: a bad version has its own title, a 404 none, and
 * an input error lists its field in invalid_fields ("- input.x: why\n" in detail). */
cJSON *sim_replicate_error_json(int code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    const char *detail = msg ? msg : sim_replicate_reason(code);
    const char *colon = strstr(detail, ": ");
    int field = code == 422 && strncmp(detail, "input.", 6) == 0 && colon;
    if (code == 422 && strcmp(detail, SIM_REPLICATE_BAD_VERSION) == 0)
        cJSON_AddStringToObject(o, "title", "Invalid version or not permitted");
    else if (code != 404)
        cJSON_AddStringToObject(o, "title", sim_replicate_title(code));
    if (field) {
        char buf[600];
        snprintf(buf, sizeof(buf), "- %s\n", detail);
        cJSON_AddStringToObject(o, "detail", buf);
    } else {
        cJSON_AddStringToObject(o, "detail", detail);
    }
    cJSON_AddNumberToObject(o, "status", code);
    if (field) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "type", strstr(colon, "required") ? "required" : "invalid");
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(colon - detail), detail);
        cJSON_AddStringToObject(f, "field", name);
        cJSON_AddStringToObject(f, "description", colon + 2);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "invalid_fields"), f);
    }
    return o;
}

/* The malformed kinds in prediction shape. A broken submit answer never holds an id and a
 * status together; a broken output is a number where URLs belong. */
const struct sim_malformed_form sim_replicate_malformed[SIM_MALFORMED_KINDS] = {
    [SIM_MALFORMED_TRUNCATED] = {"{\"id\":\"%s\",\"status\":\"proc"},
    [SIM_MALFORMED_NO_DATA] = {"{}"},
    [SIM_MALFORMED_WRONG_TYPES] = {"{\"id\":12345,\"status\":7,\"output\":{\"url\":42},"
                                   "\"error\":42,\"urls\":\"none\",\"created_at\":17}"},
    [SIM_MALFORMED_RESULTJSON_OBJECT] =
        {.submit = "{\"id\":\"\",\"status\":\"starting\",\"output\":null}",
         .status = "{\"id\":\"%s\",\"status\":\"succeeded\",\"output\":42,\"error\":null}"},
    [SIM_MALFORMED_UNKNOWN_STATE] =
        {.submit = "[]",
         .status = "{\"id\":\"%s\",\"status\":\"exploding\",\"output\":null,\"error\":null}"},
    [SIM_MALFORMED_HUGE] = {"{\"id\":null,\"status\":null,\"pad\":\""},
};
