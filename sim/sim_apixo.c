/* APIXO's task API (apixo.ai/docs, api-reference): POST {base}/generateTask/{model}, GET
 * {base}/statusTask/{model}?taskId=ID, every answer {"code", "message", "data"} with the HTTP
 * status equal to the code, and a refusal's reason in data.error. */
#include "sim_proto_impl.h"

#include <stdlib.h>
#include <string.h>

void sim_apixo_route(int get, int post, const char *path, const char *task_query,
                     struct sim_route_info *out)
{
    static const char gen[] = "/generateTask/", st[] = "/statusTask/";
    const char *rest;
    int submit;
    if (strncmp(path, gen, sizeof(gen) - 1) == 0) {
        rest = path + sizeof(gen) - 1;
        submit = 1;
    } else if (strncmp(path, st, sizeof(st) - 1) == 0) {
        rest = path + sizeof(st) - 1;
        submit = 0;
    } else {
        return;
    }
    size_t len = strlen(rest);
    if (!sim_req_model_ok(rest, len) || sim_req_copy(out->model, sizeof(out->model), rest, len))
        return;
    if (submit ? !post : !get) {
        out->route = SIM_ROUTE_BAD_METHOD;
        return;
    }
    if (!submit && task_query && task_query[0] &&
        sim_req_copy(out->task_id, sizeof(out->task_id), task_query, strlen(task_query)))
        return; /* an id longer than any task's: no such task */
    out->route = submit ? SIM_ROUTE_SUBMIT : SIM_ROUTE_STATUS;
}

int sim_apixo_submit_parse(const struct sim_models *ms, const struct sim_route_info *ri,
                           const char *body, size_t len, struct sim_submit *out, char *msg,
                           size_t msglen)
{
    out->model = sim_models_find(ms, ri->model);
    if (!out->model)
        return sim_proto_refuse(404, msg, msglen, "Model not found: %s", ri->model);
    if (sim_proto_parse_object(body, len, out))
        return sim_proto_refuse(400, msg, msglen, "Invalid request body: expected a JSON object");
    const cJSON *provider = cJSON_GetObjectItemCaseSensitive(out->root, "provider");
    if (provider) {
        static const char *const routes[] = {"auto", "value", "official", NULL};
        int ok = 0;
        for (int i = 0; cJSON_IsString(provider) && routes[i]; i++)
            ok |= strcmp(provider->valuestring, routes[i]) == 0;
        if (!ok)
            return sim_proto_refuse(400, msg, msglen,
                                    "Invalid value for provider: must be auto, value or official");
        out->provider = provider->valuestring;
    }
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(out->root, "request_type");
    if (rt && (!cJSON_IsString(rt) ||
               (strcmp(rt->valuestring, "async") != 0 && strcmp(rt->valuestring, "callback") != 0)))
        return sim_proto_refuse(400, msg, msglen,
                                "Invalid value for request_type: must be async or callback");
    /* An async task ignores a callback_url, as the service does. */
    if (rt && strcmp(rt->valuestring, "callback") == 0) {
        const cJSON *cb = cJSON_GetObjectItemCaseSensitive(out->root, "callback_url");
        if (!cb || cJSON_IsNull(cb))
            return sim_proto_refuse(400, msg, msglen, "Missing required field: callback_url");
        if (!cJSON_IsString(cb) || !sim_proto_http_url(cb->valuestring))
            return sim_proto_refuse(400, msg, msglen,
                                    "Invalid value for callback_url: must be an http(s) URL");
        out->callback = 1;
        out->callback_url = cb->valuestring;
    }
    out->input = cJSON_GetObjectItemCaseSensitive(out->root, "input");
    if (!cJSON_IsObject(out->input))
        return sim_proto_refuse(400, msg, msglen, "Missing required field: input");
    if (sim_req_prompt_parse(out->input, "input.", out, msg, msglen))
        return sim_proto_refuse(400, msg, msglen, "Missing required field: input.prompt");
    char field[64];
    int missing;
    if (sim_model_check_requires(out->model, out->input, field, sizeof(field), &missing))
        return missing
                   ? sim_proto_refuse(400, msg, msglen, "Missing required field: input.%s", field)
                   : sim_proto_refuse(400, msg, msglen, "Invalid value for input.%s", field);
    if (sim_req_knobs_parse(out->input, "input.", 0, out, msg, msglen))
        return 400;
    return 0;
}

cJSON *sim_apixo_submit_json(const struct sim_task *t)
{
    cJSON *o = sim_proto_envelope(200, "message", "success");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "data"), "taskId", t->id);
    return o;
}

/* The fields that apply to the state, as the service gives them: a running task shows only its
 * id, state and createTime. */
cJSON *sim_apixo_status_json(const struct sim_task *t, long long now_ms, const char *base)
{
    struct sim_task_view v;
    sim_task_view_at(t, now_ms, &v);
    cJSON *o = sim_proto_envelope(200, "message", "success");
    if (!o)
        return NULL;
    cJSON *d = cJSON_AddObjectToObject(o, "data");
    cJSON_AddStringToObject(d, "taskId", t->id);
    const char *state = v.done                               ? (t->failed ? "failed" : "success")
                        : strcmp(v.state, "generating") == 0 ? "processing"
                                                             : "pending";
    cJSON_AddStringToObject(d, "state", state);
    if (v.done && !t->failed) {
        char *r = sim_task_result_json(t, base);
        cJSON_AddStringToObject(d, "resultJson", r ? r : "");
        free(r);
    }
    if (v.done && t->failed) {
        cJSON_AddStringToObject(d, "failCode", t->fail_code);
        cJSON_AddStringToObject(d, "failMsg", t->fail_msg);
    }
    if (v.done && !t->failed)
        cJSON_AddNumberToObject(d, "costTime", (double)(t->complete_ms - t->submit_ms));
    cJSON_AddNumberToObject(d, "createTime", (double)t->submit_ms);
    if (v.done)
        cJSON_AddNumberToObject(d, "completeTime", (double)t->complete_ms);
    return o;
}

static const char *sim_apixo_title(int code)
{
    switch (code) {
    case 400:
        return "Invalid request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment required";
    case 429:
        return "Too many requests";
    default:
        return sim_proto_http_title(code, "Request failed");
    }
}

static const char *sim_apixo_reason(int code)
{
    switch (code) {
    case 401:
        return "Invalid or missing API key";
    case 402:
        return "Insufficient balance, please top up your account";
    case 403:
        return "Content violates usage policy";
    case 404:
        return "Resource not found";
    case 405:
        return "Method not allowed";
    case 410:
        return "Result has expired";
    case 429:
        return "Rate limit exceeded, please retry later";
    case 455:
        return "Service under maintenance, please retry later";
    case 502:
        return "Bad gateway, please retry later";
    case 503:
        return "Model temporarily unavailable, please retry later";
    case 504:
        return "Gateway timeout, please retry later";
    default:
        return code >= 500 ? "Internal server error, please retry later" : "Invalid request";
    }
}

cJSON *sim_apixo_error_json(int code, const char *msg)
{
    cJSON *o = sim_proto_envelope(code, "message", sim_apixo_title(code));
    if (!o)
        return NULL;
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "data"), "error",
                            msg ? msg : sim_apixo_reason(code));
    return o;
}

const struct sim_malformed_form sim_apixo_malformed[SIM_MALFORMED_KINDS] = {
    [SIM_MALFORMED_TRUNCATED] = {"{\"code\":200,\"message\":\"success\",\"data\":{\"taskId\":\"%s"},
    [SIM_MALFORMED_NO_DATA] = {"{\"code\":200,\"message\":\"success\"}"},
    [SIM_MALFORMED_WRONG_TYPES] = {"{\"code\":\"200\",\"message\":200,\"data\":{\"taskId\":12345,"
                                   "\"state\":7,\"resultJson\":42,\"createTime\":\"yesterday\"}}"},
    [SIM_MALFORMED_RESULTJSON_OBJECT] = {.submit = "{\"code\":200,\"message\":\"success\","
                                                   "\"data\":{\"taskId\":\"\"}}",
                                         .status =
                                             "{\"code\":200,\"message\":\"success\","
                                             "\"data\":{\"taskId\":\"%s\","
                                             "\"state\":\"success\",\"resultJson\":{"
                                             "\"resultUrls\":[\"http://127.0.0.1:9/x.png\"]}}}"},
    [SIM_MALFORMED_UNKNOWN_STATE] = {.submit = "{\"code\":200,\"message\":\"success\",\"data\":[]}",
                                     .status = "{\"code\":200,\"message\":\"success\","
                                               "\"data\":{\"taskId\":\"%s\","
                                               "\"state\":\"exploding\","
                                               "\"createTime\":1700000000000}}"},
    [SIM_MALFORMED_HUGE] = {"{\"code\":200,\"message\":\"success\",\"data\":null,\"pad\":\""},
};
