/* kie.ai's Market API (docs.kie.ai, market/common/get-task-detail): POST
 * {base}/api/v1/jobs/createTask with the model id in the body, GET
 * {base}/api/v1/jobs/recordInfo?taskId=ID, every answer {"code", "msg", "data"}. kie's own
 * refusals (401, 402, 422, 429, 455, 500, ...) come inside an HTTP 200. */
#include "sim_proto_impl.h"

#include <stdlib.h>
#include <string.h>

void sim_kie_route(int get, int post, const char *path, const char *task_query,
                   struct sim_route_info *out)
{
    if (strcmp(path, "/api/v1/jobs/createTask") == 0) {
        out->route = post ? SIM_ROUTE_SUBMIT : SIM_ROUTE_BAD_METHOD;
        return;
    }
    if (strcmp(path, "/api/v1/jobs/recordInfo") != 0)
        return;
    if (!get) {
        out->route = SIM_ROUTE_BAD_METHOD;
        return;
    }
    if (task_query && task_query[0] &&
        sim_req_copy(out->task_id, sizeof(out->task_id), task_query, strlen(task_query)))
        return;
    out->route = SIM_ROUTE_STATUS;
}

int sim_kie_submit_parse(const struct sim_models *ms, const char *body, size_t len,
                         struct sim_submit *out, char *msg, size_t msglen)
{
    if (sim_proto_parse_object(body, len, out))
        return sim_proto_refuse(422, msg, msglen, "The request body must be a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(out->root, "model");
    if (!cJSON_IsString(model) || !model->valuestring[0])
        return sim_proto_refuse(422, msg, msglen, "model is required");
    out->model = sim_models_find(ms, model->valuestring);
    if (!out->model)
        return sim_proto_refuse(422, msg, msglen, "The model %s is not supported",
                                model->valuestring);
    const cJSON *cb = cJSON_GetObjectItemCaseSensitive(out->root, "callBackUrl");
    if (cb && !cJSON_IsNull(cb)) {
        if (!cJSON_IsString(cb) || !sim_proto_http_url(cb->valuestring))
            return sim_proto_refuse(422, msg, msglen, "callBackUrl must be an http(s) URL");
        out->callback = 1;
        out->callback_url = cb->valuestring;
    }
    out->input = cJSON_GetObjectItemCaseSensitive(out->root, "input");
    if (!cJSON_IsObject(out->input))
        return sim_proto_refuse(422, msg, msglen, "input is required");
    if (sim_req_prompt_parse(out->input, "input.", out, msg, msglen))
        return sim_proto_refuse(422, msg, msglen, "input.prompt is required");
    char field[64];
    int missing;
    if (sim_model_check_requires(out->model, out->input, field, sizeof(field), &missing))
        return sim_proto_refuse(422, msg, msglen, "input.%s is %s", field,
                                missing ? "required" : "not a supported value");
    if (sim_req_knobs_parse(out->input, "input.", 0, out, msg, msglen))
        return 422;
    return 0;
}

static cJSON *sim_kie_envelope(int code, const char *msg)
{
    return sim_proto_envelope(code, "msg", msg);
}

/* Real answers carry recordId beside taskId, the same id. */
cJSON *sim_kie_submit_json(const struct sim_task *t)
{
    cJSON *o = sim_kie_envelope(200, "success");
    cJSON *d = cJSON_AddObjectToObject(o, "data");
    cJSON_AddStringToObject(d, "taskId", t->id);
    cJSON_AddStringToObject(d, "recordId", t->id);
    return o;
}

/* The record: every field present, strings empty while not applicable; costTime (the
 * generation's own time, not the wait) once ended well, progress for sora models only, as the
 * docs describe. */
static cJSON *sim_kie_record(const struct sim_task *t, long long now_ms, const char *base)
{
    struct sim_task_view v;
    sim_task_view_at(t, now_ms, &v);
    cJSON *d = cJSON_CreateObject();
    if (!d)
        return NULL;
    cJSON_AddStringToObject(d, "taskId", t->id);
    cJSON_AddStringToObject(d, "model", t->model);
    cJSON_AddStringToObject(d, "state", v.done ? (t->failed ? "fail" : "success") : v.state);
    cJSON_AddStringToObject(d, "param", t->param);
    char *r = v.done && !t->failed ? sim_task_result_json(t, base) : NULL;
    cJSON_AddStringToObject(d, "resultJson", r ? r : "");
    free(r);
    cJSON_AddStringToObject(d, "failCode", v.done && t->failed ? t->fail_code : "");
    cJSON_AddStringToObject(d, "failMsg", v.done && t->failed ? t->fail_msg : "");
    if (v.done && !t->failed)
        cJSON_AddNumberToObject(d, "costTime", (double)(t->complete_ms - v.start_ms));
    if (v.done)
        cJSON_AddNumberToObject(d, "completeTime", (double)t->complete_ms);
    else
        cJSON_AddNullToObject(d, "completeTime");
    cJSON_AddNumberToObject(d, "createTime", (double)t->submit_ms);
    cJSON_AddNumberToObject(d, "updateTime", (double)v.update_ms);
    if (strstr(t->model, "sora"))
        cJSON_AddNumberToObject(d, "progress", v.progress);
    return d;
}

cJSON *sim_kie_status_json(const struct sim_task *t, long long now_ms, const char *base)
{
    cJSON *o = sim_kie_envelope(200, "success");
    cJSON_AddItemToObject(o, "data", sim_kie_record(t, now_ms, base));
    return o;
}

/* The callback says a failure in its code too: 501 with the reason as msg. */
char *sim_kie_callback_body(const struct sim_task *t, long long now_ms, const char *base)
{
    cJSON *o = t->failed ? sim_kie_envelope(501, t->fail_msg) : sim_kie_envelope(200, "success");
    cJSON_AddItemToObject(o, "data", sim_kie_record(t, now_ms, base));
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* kie's documented codes: these answer HTTP 200 with the code in the body. */
static int sim_kie_own_code(int code)
{
    static const int own[] = {400, 401, 402, 404, 422, 429, 433, 455, 500, 501, 505};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (own[i] == code)
            return 1;
    return 0;
}

static const char *sim_kie_reason(int code)
{
    switch (code) {
    case 401:
        return "You do not have access permissions";
    case 402:
        return "The current credits are insufficient. Please top up.";
    case 404:
        return "Not found";
    case 405:
        return "Method not allowed";
    case 410:
        return "The file has expired";
    case 422:
        return "Validation error";
    case 429:
        return "Rate limit exceeded";
    case 455:
        return "Service unavailable: the system is under maintenance";
    case 501:
        return "Generation failed";
    case 505:
        return "The requested feature is currently disabled";
    default:
        return code >= 500
                   ? "Server Error - An unexpected error occurred while processing the request"
                   : "Request failed";
    }
}

cJSON *sim_kie_error_json(int code, const char *msg, int *http)
{
    *http = sim_kie_own_code(code) ? 200 : code;
    cJSON *o = sim_kie_envelope(code, msg ? msg : sim_kie_reason(code));
    cJSON_AddNullToObject(o, "data");
    return o;
}

const struct sim_malformed_form sim_kie_malformed[SIM_MALFORMED_KINDS] = {
    [SIM_MALFORMED_TRUNCATED] = {"{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"%s"},
    [SIM_MALFORMED_NO_DATA] = {"{\"code\":200,\"msg\":\"success\"}"},
    [SIM_MALFORMED_WRONG_TYPES] = {"{\"code\":\"200\",\"msg\":200,\"data\":{\"taskId\":12345,"
                                   "\"state\":7,\"resultJson\":42,\"createTime\":\"yesterday\"}}"},
    [SIM_MALFORMED_RESULTJSON_OBJECT] = {.submit = "{\"code\":200,\"msg\":\"success\","
                                                   "\"data\":{\"taskId\":\"\"}}",
                                         .status = "{\"code\":200,\"msg\":\"success\","
                                                   "\"data\":{\"taskId\":\"%s\",\"state\":"
                                                   "\"success\",\"resultJson\":{\"resultUrls\":["
                                                   "\"http://127.0.0.1:9/x.png\"]},"
                                                   "\"failCode\":\"\",\"failMsg\":\"\"}}"},
    [SIM_MALFORMED_UNKNOWN_STATE] = {.submit = "{\"code\":200,\"msg\":\"success\",\"data\":[]}",
                                     .status = "{\"code\":200,\"msg\":\"success\","
                                               "\"data\":{\"taskId\":\"%s\",\"state\":"
                                               "\"exploding\",\"resultJson\":\"\","
                                               "\"failCode\":\"\",\"failMsg\":\"\"}}"},
    [SIM_MALFORMED_HUGE] = {"{\"code\":200,\"msg\":\"success\",\"data\":null,\"pad\":\""},
};
