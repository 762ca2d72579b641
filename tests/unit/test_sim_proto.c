/* genfs-sim protocols (APIXO, kie, replicate, fal): routes (model ids with slashes, task ids in
 * the query, fal's app ids), submit parsing and its refusals, ids, default failures, and the
 * exact answer shapes over a task's life (the shapes genfs's provider profiles must match). */
#include "sim_media.h"
#include "sim_proto.h"
#include "sim_proto_impl.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const enum sim_protocol A = SIM_PROTO_APIXO, K = SIM_PROTO_KIE, R = SIM_PROTO_REPLICATE,
                               F = SIM_PROTO_FAL;

static struct sim_models models;

static void route_q(enum sim_protocol p, const char *method, const char *path, const char *query,
                    enum sim_route want, const char *model, const char *id)
{
    struct sim_route_info ri;
    sim_proto_route(p, method, path, query, &ri);
    TAP_CHECK(ri.route == want && (!model || strcmp(ri.model, model) == 0) &&
                  (!id || strcmp(ri.task_id, id) == 0),
              "%s %s %s%s%s -> route %d model \"%s\" id \"%s\"", sim_proto_name(p), method, path,
              query ? "?taskId=" : "", query ? query : "", (int)ri.route, ri.model, ri.task_id);
}

static void route(enum sim_protocol p, const char *method, const char *path, enum sim_route want,
                  const char *model, const char *id)
{
    route_q(p, method, path, NULL, want, model, id);
}

static void test_routes(void)
{
    route(A, "POST", "/generateTask/nano-banana", SIM_ROUTE_SUBMIT, "nano-banana", NULL);
    route(A, "POST", "/generateTask/fal-ai/flux/dev", SIM_ROUTE_SUBMIT, "fal-ai/flux/dev", NULL);
    route_q(A, "GET", "/statusTask/nano-banana", "task_1", SIM_ROUTE_STATUS, "nano-banana",
            "task_1");
    route_q(A, "GET", "/statusTask/a/b", "t9", SIM_ROUTE_STATUS, "a/b", "t9");
    route(A, "GET", "/statusTask/nano-banana", SIM_ROUTE_STATUS, "nano-banana", "");
    route(A, "GET", "/generateTask/nano-banana", SIM_ROUTE_BAD_METHOD, NULL, NULL);
    route(A, "POST", "/statusTask/nano-banana", SIM_ROUTE_BAD_METHOD, NULL, NULL);
    route(A, "POST", "/generateTask/", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(A, "POST", "/generateTask/a//b", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(A, "GET", "/generateTask/nano-banana/tk123", SIM_ROUTE_BAD_METHOD, NULL, NULL);
    char longid[100];
    memset(longid, 'x', 99);
    longid[99] = '\0';
    route_q(A, "GET", "/statusTask/nano-banana", longid, SIM_ROUTE_NOT_FOUND, NULL, NULL);
    char longpath[600] = "/generateTask/";
    memset(longpath + 14, 'm', 400);
    route(A, "POST", longpath, SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(A, "GET", "/media/abc/0.txt", SIM_ROUTE_MEDIA, NULL, "abc");

    route(K, "POST", "/api/v1/jobs/createTask", SIM_ROUTE_SUBMIT, "", NULL);
    route_q(K, "GET", "/api/v1/jobs/recordInfo", "abc", SIM_ROUTE_STATUS, "", "abc");
    route(K, "GET", "/api/v1/jobs/createTask", SIM_ROUTE_BAD_METHOD, NULL, NULL);
    route(K, "POST", "/generateTask/nano-banana", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(K, "GET", "/_sim/figures", SIM_ROUTE_FIGURES, NULL, NULL);

    route(R, "POST", "/v1/models/black-forest-labs/flux-schnell/predictions", SIM_ROUTE_SUBMIT,
          "black-forest-labs/flux-schnell", NULL);
    route(R, "POST", "/v1/models/a/b/c/predictions", SIM_ROUTE_SUBMIT, "a/b/c", NULL);
    route(R, "GET", "/v1/models/test/image/predictions", SIM_ROUTE_BAD_METHOD, NULL, NULL);
    route(R, "POST", "/v1/models//predictions", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(R, "POST", "/v1/predictions", SIM_ROUTE_SUBMIT, "", NULL);
    route(R, "GET", "/v1/predictions", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(R, "POST", "/v1/deployments/acme/my-sdxl/predictions", SIM_ROUTE_SUBMIT, "acme/my-sdxl",
          NULL);
    route(R, "GET", "/v1/predictions/abc123", SIM_ROUTE_STATUS, "", "abc123");
    route(R, "POST", "/v1/predictions/abc123/cancel", SIM_ROUTE_CANCEL, "", "abc123");
    route(R, "GET", "/v1/predictions/abc123/cancel", SIM_ROUTE_BAD_METHOD, NULL, NULL);
    route(R, "POST", "/v1/predictions/abc123/other", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    struct sim_route_info ri;
    sim_proto_route(R, "POST", "/v1/deployments/acme/x/predictions", NULL, &ri);
    TAP_CHECK(ri.deployment, "a deployment submit is marked");

    route(F, "POST", "/fal-ai/flux/dev", SIM_ROUTE_SUBMIT, "fal-ai/flux/dev", NULL);
    route(F, "GET", "/fal-ai/flux/requests/u-1/status", SIM_ROUTE_STATUS, "fal-ai/flux", "u-1");
    route(F, "GET", "/fal-ai/flux/requests/u-1", SIM_ROUTE_RESULT, "fal-ai/flux", "u-1");
    route(F, "PUT", "/fal-ai/flux/requests/u-1/cancel", SIM_ROUTE_CANCEL, "fal-ai/flux", "u-1");
    route(F, "GET", "/fal-ai/flux/requests/u-1/status/stream", SIM_ROUTE_STREAM, "fal-ai/flux",
          "u-1");
    route(F, "GET", "/workflows/a/b/requests/u-2/status/stream", SIM_ROUTE_STREAM, "workflows/a/b",
          "u-2");
    route(F, "GET", "/fal-ai/flux/dev/requests/u-1/status", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "GET", "/fal-ai/flux/dev/requests/u-1", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "GET", "/workflows/me/app/requests/u-3/status", SIM_ROUTE_STATUS, "workflows/me/app",
          "u-3");
    route(F, "GET", "/fal-ai/test-image/requests/u-2", SIM_ROUTE_RESULT, "fal-ai/test-image",
          "u-2");
    route(F, "GET", "/fal-ai/x/requests/", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "GET", "/requests/u-1", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "POST", "/", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "PUT", "/fal-ai/x/requests/u-1", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "GET", "/media/u-1/1.wav", SIM_ROUTE_MEDIA, NULL, "u-1");
    route(F, "POST", "/_sim/reset", SIM_ROUTE_RESET, NULL, NULL);
}

/* ---- submit parsing ----------------------------------------------------------------------- */

static int parse(enum sim_protocol p, const char *path, const char *body, const char *hook,
                 struct sim_submit *s, char *msg)
{
    struct sim_route_info ri;
    sim_proto_route(p, "POST", path, NULL, &ri);
    return sim_proto_submit_parse(p, &models, &ri, body, strlen(body), hook, s, msg, 256);
}

static void refused(enum sim_protocol p, const char *path, const char *body, const char *hook,
                    int code, const char *want)
{
    char msg[256] = "";
    struct sim_submit s;
    int rc = parse(p, path, body, hook, &s, msg);
    TAP_CHECK(rc == code && strstr(msg, want) != NULL, "%s: %d \"%s\" for %s (got %d: %s)",
              sim_proto_name(p), code, want, body, rc, msg);
    sim_req_submit_free(&s);
}

static void test_submit_apixo(void)
{
    char msg[256] = "";
    struct sim_submit s;
    const char *nb = "/generateTask/nano-banana";
    int rc = parse(A, nb,
                   "{\"provider\":\"value\",\"request_type\":\"callback\",\"callback_url\":"
                   "\"https://h/cb\",\"input\":{\"prompt\":\"fox\",\"sim_outputs\":2}}",
                   NULL, &s, msg);
    TAP_EQ_INT(rc, 0, "apixo: a full body parses");
    TAP_CHECK(s.model && strcmp(s.model->name, "nano-banana") == 0, "apixo: model from the path");
    TAP_EQ_STR(s.provider, "value", "apixo: provider routing recorded");
    TAP_CHECK(s.callback && strcmp(s.callback_url, "https://h/cb") == 0, "apixo: callback");
    TAP_CHECK(s.outputs == 2 && strcmp(s.prompt, "fox") == 0, "apixo: prompt and knobs");
    sim_req_submit_free(&s);
    rc = parse(A, nb, "{\"callback_url\":\"http://h/cb\",\"input\":{\"prompt\":\"x\"}}", NULL, &s,
               msg);
    TAP_CHECK(rc == 0 && !s.callback && !s.provider, "apixo: async ignores a callback_url");
    sim_req_submit_free(&s);
    TAP_EQ_INT(parse(A, "/generateTask/flux-2",
                     "{\"input\":{\"prompt\":\"x\",\"mode\":\"pro-text-to-image\"}}", NULL, &s,
                     msg),
               0, "apixo: flux-2 with its mode");
    sim_req_submit_free(&s);
    refused(A, "/generateTask/flux-2", "{\"input\":{\"prompt\":\"x\"}}", NULL, 400,
            "Missing required field: input.mode");
    refused(A, "/generateTask/flux-2", "{\"input\":{\"prompt\":\"x\",\"mode\":\"draw\"}}", NULL,
            400, "Invalid value for input.mode");
    refused(A, nb, "{\"input\":{}}", NULL, 400, "Missing required field: input.prompt");
    refused(A, nb, "{\"input\":{\"prompt\":\"\"}}", NULL, 400,
            "Missing required field: input.prompt");
    refused(A, nb, "{\"request_type\":\"async\"}", NULL, 400, "Missing required field: input");
    refused(A, nb, "[1]", NULL, 400, "JSON object");
    refused(A, nb, "{\"provider\":\"cheapest\",\"input\":{\"prompt\":\"x\"}}", NULL, 400,
            "provider");
    refused(A, nb, "{\"request_type\":\"sync\",\"input\":{\"prompt\":\"x\"}}", NULL, 400,
            "request_type");
    refused(A, nb, "{\"request_type\":\"callback\",\"input\":{\"prompt\":\"x\"}}", NULL, 400,
            "Missing required field: callback_url");
    refused(A, nb,
            "{\"request_type\":\"callback\",\"callback_url\":\"ftp://x\",\"input\":{\"prompt\":"
            "\"x\"}}",
            NULL, 400, "callback_url");
    refused(A, nb, "{\"input\":{\"prompt\":\"x\",\"sim_outputs\":9}}", NULL, 400,
            "input.sim_outputs");
    refused(A, "/generateTask/no-such", "{\"input\":{\"prompt\":\"x\"}}", NULL, 404,
            "Model not found: no-such");
}

static void test_submit_kie(void)
{
    char msg[256] = "";
    struct sim_submit s;
    const char *ct = "/api/v1/jobs/createTask";
    int rc = parse(K, ct,
                   "{\"model\":\"grok-imagine/text-to-image\",\"callBackUrl\":\"http://h/k\","
                   "\"input\":{\"prompt\":\"owl\",\"aspect_ratio\":\"3:2\"}}",
                   NULL, &s, msg);
    TAP_EQ_INT(rc, 0, "kie: createTask parses");
    TAP_CHECK(s.model && strcmp(s.model->name, "grok-imagine/text-to-image") == 0,
              "kie: the model comes from the body");
    TAP_CHECK(s.callback && strcmp(s.callback_url, "http://h/k") == 0, "kie: callBackUrl");
    sim_req_submit_free(&s);
    refused(K, ct, "{\"input\":{\"prompt\":\"x\"}}", NULL, 422, "model is required");
    refused(K, ct, "{\"model\":\"nope/x\",\"input\":{\"prompt\":\"x\"}}", NULL, 422,
            "not supported");
    refused(K, ct, "{\"model\":\"grok-imagine/text-to-image\"}", NULL, 422, "input is required");
    refused(K, ct, "{\"model\":\"grok-imagine/text-to-image\",\"input\":{}}", NULL, 422,
            "input.prompt is required");
    refused(K, ct, "{\"model\":\"flux-2\",\"input\":{\"prompt\":\"x\"}}", NULL, 422,
            "input.mode is required");
    refused(K, ct,
            "{\"model\":\"grok-imagine/text-to-image\",\"callBackUrl\":\"x\",\"input\":{"
            "\"prompt\":\"x\"}}",
            NULL, 422, "callBackUrl");
    refused(K, ct, "nope", NULL, 422, "JSON object");
}

static void test_submit_replicate(void)
{
    char msg[256] = "";
    struct sim_submit s;
    int rc =
        parse(R, "/v1/models/test/image/predictions",
              "{\"input\":{\"prompt\":\"fox\",\"sim_outputs\":3,\"sim_outcome\":\"aborted\"},"
              "\"webhook\":\"http://h/x\",\"webhook_events_filter\":[\"start\",\"completed\"]}",
              NULL, &s, msg);
    TAP_EQ_INT(rc, 0, "replicate: a full body parses");
    TAP_CHECK(s.outputs == 3 && s.outcome == SIM_OUTCOME_ABORTED, "replicate: knobs, aborted");
    TAP_CHECK(s.callback && strcmp(s.callback_url, "http://h/x") == 0, "replicate: webhook");
    sim_req_submit_free(&s);
    rc = parse(R, "/v1/models/test/image/predictions",
               "{\"input\":{\"prompt\":\"fox\"},\"webhook\":\"http://h/x\","
               "\"webhook_events_filter\":[\"start\"]}",
               NULL, &s, msg);
    TAP_CHECK(rc == 0 && !s.callback, "replicate: a filter without completed sends no webhook");
    sim_req_submit_free(&s);

    char version[65], body[300];
    sim_replicate_version("test/demucs", version);
    snprintf(body, sizeof(body), "{\"version\":\"%s\",\"input\":{\"prompt\":\"song\"}}", version);
    rc = parse(R, "/v1/predictions", body, NULL, &s, msg);
    TAP_CHECK(rc == 0 && strcmp(s.model->name, "test/demucs") == 0,
              "replicate: a community model by its version id");
    sim_req_submit_free(&s);
    snprintf(body, sizeof(body), "{\"version\":\"test/demucs:%s\",\"input\":{\"prompt\":\"s\"}}",
             version);
    rc = parse(R, "/v1/predictions", body, NULL, &s, msg);
    TAP_CHECK(rc == 0 && strcmp(s.model->name, "test/demucs") == 0,
              "replicate: owner/name:version");
    sim_req_submit_free(&s);
    refused(R, "/v1/predictions",
            "{\"version\":\"0000000000000000000000000000000000000000000000000000000000000000\","
            "\"input\":{\"prompt\":\"x\"}}",
            NULL, 422, "The specified version does not exist");
    refused(R, "/v1/predictions", "{\"input\":{\"prompt\":\"x\"}}", NULL, 422, "version");
    refused(R, "/v1/deployments/acme/none/predictions", "{\"input\":{\"prompt\":\"x\"}}", NULL, 404,
            "Deployment not found: acme/none");
    refused(R, "/v1/models/no/such/predictions", "{\"input\":{\"prompt\":\"x\"}}", NULL, 404,
            "Model not found: no/such");
    refused(R, "/v1/models/test/image/predictions", "{\"prompt\":\"fox\"}", NULL, 422, "input");
    refused(R, "/v1/models/test/image/predictions", "{\"input\":{}}", NULL, 422, "input.prompt");
    refused(R, "/v1/models/test/image/predictions",
            "{\"input\":{\"prompt\":\"p\"},\"webhook\":\"ftp://x\"}", NULL, 422, "webhook");
    refused(R, "/v1/models/test/image/predictions",
            "{\"input\":{\"prompt\":\"p\"},\"webhook_events_filter\":[\"done\"]}", NULL, 422,
            "webhook_events_filter");
}

/* When fal's status stream looks again: each phase, each log step, the end. */
static void test_fal_stream_times(void)
{
    struct sim_task t = {.submit_ms = 1000, .duration_ms = 1000, .complete_ms = 2000};
    TAP_EQ_INT(sim_fal_stream_next_ms(&t, 1000, 0), 1100, "stream: the queue after a tenth");
    TAP_EQ_INT(sim_fal_stream_next_ms(&t, 1100, 0), 1300, "stream: generation at 3/10");
    TAP_EQ_INT(sim_fal_stream_next_ms(&t, 1300, 0), 2000, "stream: without logs, the end next");
    TAP_EQ_INT(sim_fal_stream_next_ms(&t, 1300, 1), 1387, "stream: with logs, the first step");
    TAP_EQ_INT(sim_fal_stream_next_ms(&t, 1950, 1), 2000, "stream: the last step is the end");
    TAP_EQ_INT(sim_fal_stream_next_ms(&t, 2000, 1), 2001, "stream: after the end, no change");
    t.complete_ms = 1200; /* canceled early */
    TAP_EQ_INT(sim_fal_stream_next_ms(&t, 1100, 1), 1200, "stream: a cancel's end comes first");
}

static void test_submit_fal(void)
{
    char msg[256] = "";
    struct sim_submit s;
    int rc = parse(F, "/fal-ai/flux/dev",
                   "{\"prompt\":\"owl\",\"sim_duration_ms\":100,\"sim_credits\":\"none\"}",
                   "https://h/cb?x=1", &s, msg);
    TAP_EQ_INT(rc, 0, "fal: the body is the input");
    TAP_CHECK(s.duration_ms == 100 && s.reject == 402 && s.input == s.root, "fal: knobs, input");
    TAP_CHECK(s.callback && strcmp(s.callback_url, "https://h/cb?x=1") == 0,
              "fal: fal_webhook from the query");
    sim_req_submit_free(&s);
    refused(F, "/fal-ai/test-image", "{\"input\":{\"prompt\":\"p\"}}", NULL, 422, "prompt");
    refused(F, "/fal-ai/test-image", "[1]", NULL, 422, "body");
    refused(F, "/fal-ai/test-image", "{\"prompt\":\"p\"}", "file:///etc/passwd", 422,
            "fal_webhook");
    refused(F, "/fal-ai/test-image", "{\"prompt\":\"p\",\"sim_outcome\":\"canceled\"}", NULL, 422,
            "sim_outcome");
    refused(F, "/fal-ai/none", "{\"prompt\":\"p\"}", NULL, 404, "fal-ai/none");
}

/* ---- ids and failures --------------------------------------------------------------------- */

static int all_of(const char *s, const char *set)
{
    return s[strspn(s, set)] == '\0';
}

static void test_ids(void)
{
    char a[SIM_TASK_ID_MAX + 1], b[SIM_TASK_ID_MAX + 1];
    sim_proto_task_id(A, 1, 1, a);
    TAP_CHECK(strlen(a) == 25 && strncmp(a, "task_", 5) == 0 &&
                  all_of(a + 5, "abcdefghijklmnopqrstuvwxyz0123456789"),
              "apixo id: task_ + 20 [a-z0-9] (%s)", a);
    sim_proto_task_id(A, 1, 2, b);
    TAP_CHECK(strcmp(a, b) != 0, "apixo ids differ per counter");
    sim_proto_task_id(K, 1, 1, a);
    TAP_CHECK(strlen(a) == 32 && all_of(a, "0123456789abcdef"), "kie id: 32 hex (%s)", a);
    sim_proto_task_id(R, 1, 1, a);
    TAP_CHECK(strlen(a) == 26 && all_of(a, "abcdefghijklmnopqrstuvwxyz234567"),
              "replicate id: 26 base32 characters (%s)", a);
    sim_proto_task_id(F, 1, 1, a);
    TAP_CHECK(strlen(a) == 36 && a[8] == '-' && a[13] == '-' && a[14] == '4' && a[18] == '-' &&
                  strchr("89ab", a[19]) && a[23] == '-',
              "fal id: a UUID v4 (%s)", a);
    sim_proto_task_id(F, 1, 1, b);
    TAP_EQ_STR(a, b, "fal id: reproducible");
    char iso[SIM_PROTO_ISO_MAX];
    sim_proto_iso8601(1700000000123LL, iso);
    TAP_EQ_STR(iso, "2023-11-14T22:13:20.123000Z", "ISO 8601 with microseconds");

    const char *code, *msg, *loc;
    int words = 1, seen_loc = 0, seen_request = 0;
    for (uint64_t seq = 1; seq <= 40; seq++) {
        sim_proto_default_failure(A, 1, seq, &code, &msg, &loc);
        words &= all_of(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") && msg[0] && !loc;
        sim_proto_default_failure(F, 1, seq, &code, &msg, &loc);
        seen_loc |= loc != NULL;
        seen_request |= loc == NULL;
    }
    TAP_CHECK(words, "apixo failures: an upper-case word and a sentence");
    TAP_CHECK(seen_loc && seen_request, "fal failures: both model (loc) and request errors");
    const char *c2, *m2, *l2;
    sim_proto_default_failure(K, 9, 3, &code, &msg, &loc);
    sim_proto_default_failure(K, 9, 3, &c2, &m2, &l2);
    TAP_CHECK(code == c2 && msg == m2, "the failure drawn is a function of seed and task");
}

/* ---- answers ------------------------------------------------------------------------------ */

/* A task as sim_main makes it: submitted at 1e12 ms, 1 s long. */
static struct sim_task *mk(const char *id, const char *model, enum sim_kind kind, int outputs,
                           int failed)
{
    struct sim_task *t = calloc(1, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->model = strdup(model);
    t->kind = kind;
    t->prompt = strdup("a fox");
    t->input_json = strdup("{\"prompt\":\"a fox\",\"seed\":7}");
    t->param = strdup("{\"model\":\"m\",\"input\":{\"prompt\":\"a fox\"}}");
    t->submit_ms = 1000000000000LL;
    t->duration_ms = 1000;
    t->complete_ms = t->submit_ms + 1000;
    t->failed = failed;
    t->fail_code = strdup("content_policy_violation");
    t->fail_msg = strdup("blocked");
    t->outputs = outputs;
    t->media_seed = 99;
    return t;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? it->valuedouble : -1;
}

static int has(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k) != NULL;
}

static int is_null(const cJSON *o, const char *k)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const cJSON *obj(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static char *print(const cJSON *j)
{
    return j ? cJSON_PrintUnformatted(j) : NULL;
}

static void test_apixo_answers(void)
{
    const char *base = "http://127.0.0.1:5";
    struct sim_task *t = mk("task_abc", "nano-banana", SIM_KIND_IMAGE, 2, 0);
    int st = 0;
    cJSON *p = sim_proto_submit_json(A, t, t->submit_ms, base, &st);
    char *s = print(p);
    TAP_EQ_STR(s, "{\"code\":200,\"message\":\"success\",\"data\":{\"taskId\":\"task_abc\"}}",
               "apixo submit answer");
    TAP_EQ_INT(st, 200, "apixo submit: 200");
    free(s);
    cJSON_Delete(p);
    p = sim_proto_status_json(A, t, t->submit_ms + 50, base);
    const cJSON *d = obj(p, "data");
    TAP_CHECK(num(p, "code") == 200 && strcmp(str(p, "message"), "success") == 0,
              "apixo status envelope");
    TAP_EQ_STR(str(d, "state"), "pending", "pending at first");
    TAP_CHECK(!has(d, "resultJson") && !has(d, "failCode") && !has(d, "completeTime") &&
                  !has(d, "costTime") && num(d, "createTime") == 1e12,
              "pending: only taskId, state and createTime");
    cJSON_Delete(p);
    p = sim_proto_status_json(A, t, t->submit_ms + 500, base);
    TAP_EQ_STR(str(obj(p, "data"), "state"), "processing", "processing after 30%");
    cJSON_Delete(p);
    p = sim_proto_status_json(A, t, t->submit_ms + 1000, base);
    d = obj(p, "data");
    TAP_EQ_STR(str(d, "state"), "success", "success at the end");
    TAP_EQ_STR(str(d, "resultJson"),
               "{\"resultUrls\":[\"http://127.0.0.1:5/media/task_abc/0.png\","
               "\"http://127.0.0.1:5/media/task_abc/1.png\"]}",
               "resultJson: a string of JSON");
    TAP_CHECK(num(d, "costTime") == 1000 && num(d, "completeTime") == 1e12 + 1000 &&
                  !has(d, "failCode"),
              "success: costTime, completeTime, no failCode");
    cJSON_Delete(p);
    char *cb = sim_proto_callback_body(A, t, t->complete_ms, base);
    p = sim_proto_status_json(A, t, t->complete_ms, base);
    s = print(p);
    TAP_EQ_STR(cb, s, "apixo callback: the status envelope");
    free(s);
    free(cb);
    cJSON_Delete(p);
    t->failed = 1;
    free(t->fail_code);
    t->fail_code = strdup("NSFW_DETECTED");
    p = sim_proto_status_json(A, t, t->complete_ms, base);
    d = obj(p, "data");
    TAP_CHECK(strcmp(str(d, "state"), "failed") == 0 &&
                  strcmp(str(d, "failCode"), "NSFW_DETECTED") == 0 &&
                  strcmp(str(d, "failMsg"), "blocked") == 0 && !has(d, "resultJson"),
              "failed: failCode, failMsg, no resultJson");
    cJSON_Delete(p);
    TAP_CHECK(sim_proto_task_visible(A, t, "nano-banana") && !sim_proto_task_visible(A, t, "x"),
              "apixo: a task is seen under its own model only");
    sim_task_free(t);

    int http = 0;
    p = sim_proto_error_json(A, 400, "Missing required field: input.prompt", &http);
    s = print(p);
    TAP_EQ_STR(s,
               "{\"code\":400,\"message\":\"Invalid request\",\"data\":{\"error\":\"Missing "
               "required field: input.prompt\"}}",
               "apixo 400 shape");
    TAP_EQ_INT(http, 400, "apixo: HTTP status equals the code");
    free(s);
    cJSON_Delete(p);
    static const int codes[] = {401, 402, 403, 404, 429, 500, 503};
    int ok = 1;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        p = sim_proto_error_json(A, codes[i], NULL, &http);
        ok &= http == codes[i] && num(p, "code") == codes[i] && str(p, "message") &&
              str(obj(p, "data"), "error") && str(obj(p, "data"), "error")[0];
        cJSON_Delete(p);
    }
    TAP_CHECK(ok, "apixo 401/402/403/404/429/500/503: the code, a title and a reason");
    char msg[128];
    TAP_EQ_INT(sim_proto_unknown_task(A, "task_x", msg, sizeof(msg)), 404, "apixo unknown: 404");
}

static void test_kie_answers(void)
{
    const char *base = "http://127.0.0.1:5";
    struct sim_task *t = mk("0123abcd", "grok-imagine/text-to-image", SIM_KIND_IMAGE, 1, 0);
    int st = 0;
    cJSON *p = sim_proto_submit_json(K, t, t->submit_ms, base, &st);
    char *s = print(p);
    TAP_EQ_STR(s,
               "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"0123abcd\","
               "\"recordId\":\"0123abcd\"}}",
               "kie createTask answer: recordId beside taskId, as recorded");
    free(s);
    cJSON_Delete(p);
    const char *want[] = {"waiting", "queuing", "generating", "success"};
    const long long at[] = {50, 200, 500, 1000};
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        p = sim_proto_status_json(K, t, t->submit_ms + at[i], base);
        ok &= strcmp(str(obj(p, "data"), "state"), want[i]) == 0;
        cJSON_Delete(p);
    }
    TAP_CHECK(ok, "kie states: waiting, queuing, generating, success");
    p = sim_proto_status_json(K, t, t->submit_ms + 500, base);
    const cJSON *d = obj(p, "data");
    TAP_CHECK(strcmp(str(p, "msg"), "success") == 0 && strcmp(str(d, "resultJson"), "") == 0 &&
                  strcmp(str(d, "failCode"), "") == 0 && is_null(d, "completeTime") &&
                  !has(d, "costTime") && !has(d, "progress") &&
                  strcmp(str(d, "model"), "grok-imagine/text-to-image") == 0 &&
                  strcmp(str(d, "param"), t->param) == 0,
              "kie record while running: empty strings, completeTime null, model and param");
    cJSON_Delete(p);
    p = sim_proto_status_json(K, t, t->complete_ms, base);
    d = obj(p, "data");
    TAP_CHECK(strcmp(str(d, "resultJson"),
                     "{\"resultUrls\":[\"http://127.0.0.1:5/media/0123abcd/0.png\"]}") == 0 &&
                  num(d, "costTime") == 700 && num(d, "completeTime") == 1e12 + 1000,
              "kie success: resultJson string, costTime (the generation's 70%%), completeTime");
    cJSON_Delete(p);
    t->failed = 1;
    p = sim_proto_status_json(K, t, t->complete_ms, base);
    d = obj(p, "data");
    TAP_CHECK(strcmp(str(d, "state"), "fail") == 0 && strcmp(str(d, "failMsg"), "blocked") == 0,
              "kie failure: state fail with failCode and failMsg");
    cJSON_Delete(p);
    char *cb = sim_proto_callback_body(K, t, t->complete_ms, base);
    p = cJSON_Parse(cb);
    TAP_CHECK(num(p, "code") == 501 && strcmp(str(p, "msg"), "blocked") == 0 &&
                  strcmp(str(obj(p, "data"), "state"), "fail") == 0,
              "kie callback of a failure: code 501, msg the reason");
    cJSON_Delete(p);
    free(cb);
    sim_task_free(t);
    t = mk("s1", "sora-2", SIM_KIND_VIDEO, 1, 0);
    p = sim_proto_status_json(K, t, t->submit_ms + 650, base);
    TAP_EQ_INT(num(obj(p, "data"), "progress"), 50, "kie: sora models report progress");
    cJSON_Delete(p);
    sim_task_free(t);

    int http = 0;
    p = sim_proto_error_json(K, 402, NULL, &http);
    TAP_CHECK(http == 200 && num(p, "code") == 402 && is_null(p, "data") && str(p, "msg"),
              "kie 402: inside an HTTP 200");
    cJSON_Delete(p);
    p = sim_proto_error_json(K, 401, NULL, &http);
    TAP_CHECK(http == 200 && strcmp(str(p, "msg"), "You do not have access permissions") == 0,
              "kie 401 in the body, kie's words");
    cJSON_Delete(p);
    p = sim_proto_error_json(K, 503, NULL, &http);
    TAP_EQ_INT(http, 503, "kie: a code kie does not use is an HTTP status");
    cJSON_Delete(p);
    char msg[128];
    TAP_EQ_INT(sim_proto_unknown_task(K, "x", msg, sizeof(msg)), 422, "kie unknown task: 422");
    TAP_EQ_STR(msg, "recordInfo is null", "kie unknown task message");
}

static void test_replicate_answers(void)
{
    const char *base = "http://127.0.0.1:5";
    struct sim_task *t = mk("abc", "test/image", SIM_KIND_IMAGE, 1, 0);
    int st = 0;
    cJSON *p = sim_proto_submit_json(R, t, t->submit_ms, base, &st);
    TAP_EQ_INT(st, 201, "replicate submit: 201");
    TAP_EQ_STR(str(p, "status"), "starting", "starting at submit");
    TAP_CHECK(str(p, "version") && strlen(str(p, "version")) == 64, "version: 64 hex");
    TAP_CHECK(is_null(p, "output") && is_null(p, "error") && is_null(p, "started_at") &&
                  is_null(p, "completed_at"),
              "output, error, started_at, completed_at null at first");
    TAP_EQ_STR(str(p, "created_at"), "2001-09-09T01:46:40.000000Z", "created_at ISO 8601");
    TAP_EQ_STR(str(p, "logs"), "", "logs: empty string");
    TAP_EQ_STR(str(obj(p, "urls"), "get"), "http://127.0.0.1:5/v1/predictions/abc", "urls.get");
    TAP_EQ_STR(str(obj(p, "urls"), "cancel"), "http://127.0.0.1:5/v1/predictions/abc/cancel",
               "urls.cancel");
    cJSON_Delete(p);
    p = sim_proto_status_json(R, t, t->submit_ms + 500, base);
    TAP_EQ_STR(str(p, "status"), "processing", "processing after 30%");
    TAP_EQ_STR(str(p, "started_at"), "2001-09-09T01:46:40.300000Z", "started_at at 30%");
    cJSON_Delete(p);
    p = sim_proto_status_json(R, t, t->submit_ms + 2000, base);
    TAP_EQ_STR(str(p, "output"), "http://127.0.0.1:5/media/abc/0.png", "one output: a string");
    TAP_CHECK(num(obj(p, "metrics"), "predict_time") == 0.7 &&
                  num(obj(p, "metrics"), "total_time") == 1.0,
              "metrics predict_time and total_time");
    cJSON_Delete(p);

    t->outputs = 3;
    t->output = SIM_OUT_NESTED;
    p = sim_proto_status_json(R, t, t->complete_ms, base);
    char *s = print(obj(p, "output"));
    TAP_EQ_STR(s,
               "[[\"http://127.0.0.1:5/media/abc/0.png\",\"http://127.0.0.1:5/media/abc/1.png\"],"
               "[\"http://127.0.0.1:5/media/abc/2.png\"]]",
               "nested output: arrays in an array");
    free(s);
    cJSON_Delete(p);
    t->output = SIM_OUT_URLS;
    t->outputs = 1;
    p = sim_proto_status_json(R, t, t->complete_ms, base);
    TAP_CHECK(cJSON_GetArraySize(obj(p, "output")) == 1, "urls: an array even for one");
    cJSON_Delete(p);
    t->output = SIM_OUT_DATAURI;
    p = sim_proto_status_json(R, t, t->complete_ms, base);
    const char *du = str(p, "output");
    TAP_CHECK(du && strncmp(du, "data:image/png;base64,iVBORw0KGgo", 33) == 0,
              "datauri: the PNG itself, base64");
    size_t plen;
    char *png = sim_media_all(SIM_KIND_IMAGE, sim_task_media_seed(t, 0), 0, &plen);
    TAP_CHECK(du && strlen(du) == 22 + (plen + 2) / 3 * 4, "datauri: the whole file (%zu bytes)",
              plen);
    free(png);
    cJSON_Delete(p);
    sim_task_free(t);

    t = mk("dmx", "test/demucs", SIM_KIND_AUDIO, 4, 0);
    t->output = SIM_OUT_NAMED;
    p = sim_proto_status_json(R, t, t->complete_ms, base);
    const cJSON *o = obj(p, "output");
    TAP_CHECK(cJSON_IsObject(o) &&
                  strcmp(str(o, "vocals"), "http://127.0.0.1:5/media/dmx/0.wav") == 0 &&
                  strcmp(str(o, "other"), "http://127.0.0.1:5/media/dmx/3.wav") == 0 &&
                  is_null(o, "guitar") && is_null(o, "piano") && str(o, "bass") && str(o, "drums"),
              "named output: demucs stems, guitar and piano null");
    cJSON_Delete(p);
    sim_task_free(t);

    t = mk("txt", "test/text", SIM_KIND_TEXT, 1, 0);
    t->output = SIM_OUT_TOKENS;
    p = sim_proto_status_json(R, t, t->complete_ms, base);
    o = obj(p, "output");
    size_t tlen;
    char *text = sim_media_all(SIM_KIND_TEXT, sim_task_media_seed(t, 0), 0, &tlen);
    char joined[4096] = "";
    int spaced = 1;
    const cJSON *tok;
    cJSON_ArrayForEach(tok, o)
    {
        strncat(joined, tok->valuestring, sizeof(joined) - strlen(joined) - 1);
        spaced &= tok == o->child || tok->valuestring[0] == ' ';
    }
    TAP_CHECK(cJSON_GetArraySize(o) > 10 && spaced,
              "tokens: an array, each after the first "
              "starting with its space (%d)",
              cJSON_GetArraySize(o));
    TAP_CHECK(text && strcmp(joined, text) == 0, "tokens join to the text file's bytes");
    cJSON_Delete(p);
    t->output = SIM_OUT_TEXT;
    p = sim_proto_status_json(R, t, t->complete_ms, base);
    TAP_CHECK(str(p, "output") && strcmp(str(p, "output"), text) == 0,
              "text: the same text as one string");
    TAP_EQ_INT(tlen, SIM_MEDIA_TEXT_DEFAULT, "text length");
    cJSON_Delete(p);
    free(text);
    sim_task_free(t);

    t = mk("lg", "test/longlogs", SIM_KIND_IMAGE, 1, 0);
    t->logs_bytes = 100000;
    p = sim_proto_status_json(R, t, t->submit_ms + 100, base);
    TAP_EQ_STR(str(p, "logs"), "", "no logs before it starts");
    cJSON_Delete(p);
    p = sim_proto_status_json(R, t, t->submit_ms + 650, base);
    size_t half = strlen(str(p, "logs"));
    cJSON_Delete(p);
    char *wh = sim_proto_callback_body(R, t, t->complete_ms, base);
    p = cJSON_Parse(wh);
    size_t full = strlen(str(p, "logs"));
    TAP_CHECK(full >= 100000 && full < 100100 && half > full / 3 && half < full * 2 / 3,
              "long logs: %zu bytes in the webhook body, %zu halfway", full, half);
    TAP_CHECK(strncmp(str(p, "logs"), "step 000001: loss 1.000000\n", 27) == 0,
              "logs are lines of text");
    cJSON_Delete(p);
    free(wh);
    sim_task_free(t);

    t = mk("cx", "test/image", SIM_KIND_IMAGE, 1, 0);
    int canceled = sim_task_cancel(t, t->submit_ms + 500);
    p = sim_proto_cancel_json(R, t, t->submit_ms + 500, base, canceled, &st);
    TAP_CHECK(st == 200 && strcmp(str(p, "status"), "canceled") == 0 && is_null(p, "error") &&
                  is_null(p, "output") && str(p, "completed_at") && str(p, "started_at"),
              "cancel: 200, the prediction canceled, error null");
    TAP_CHECK(is_null(p, "logs"), "a canceled prediction's logs: null, as recorded");
    cJSON_Delete(p);
    sim_task_free(t);
    t = mk("ab", "test/aborted", SIM_KIND_IMAGE, 1, 1);
    t->aborted = 1;
    p = sim_proto_status_json(R, t, t->submit_ms + 600, base);
    TAP_CHECK(strcmp(str(p, "status"), "starting") == 0 && is_null(p, "started_at"),
              "aborted: never processing");
    cJSON_Delete(p);
    p = sim_proto_status_json(R, t, t->complete_ms, base);
    TAP_CHECK(strcmp(str(p, "status"), "aborted") == 0 && strcmp(str(p, "error"), "blocked") == 0 &&
                  is_null(p, "started_at") && !has(obj(p, "metrics"), "predict_time"),
              "aborted: its error, never started");
    cJSON_Delete(p);
    t->aborted = 0;
    p = sim_proto_status_json(R, t, t->complete_ms, base);
    TAP_CHECK(strcmp(str(p, "status"), "failed") == 0 && strcmp(str(p, "error"), "blocked") == 0,
              "failed: error is the message");
    cJSON_Delete(p);
    sim_task_free(t);

    int http;
    p = sim_proto_error_json(R, 422, "input.prompt: required, must be a non-empty string", &http);
    s = print(p);
    TAP_EQ_STR(s,
               "{\"title\":\"Input validation failed\",\"detail\":\"- input.prompt: required, "
               "must be a non-empty string\\n\",\"status\":422,\"invalid_fields\":[{\"type\":"
               "\"required\",\"field\":\"input.prompt\",\"description\":\"required, must be a "
               "non-empty string\"}]}",
               "replicate input error: detail lines and invalid_fields, as recorded");
    free(s);
    cJSON_Delete(p);
    p = sim_proto_error_json(R, 422,
                             "The specified version does not exist (or perhaps you don't have "
                             "permission to use it?)",
                             &http);
    TAP_EQ_STR(str(p, "title"), "Invalid version or not permitted", "a bad version's own title");
    cJSON_Delete(p);
    p = sim_proto_error_json(R, 404, "Prediction not found: x", &http);
    TAP_CHECK(!has(p, "title") && num(p, "status") == 404 && str(p, "detail"),
              "a 404: detail and status, no title, as recorded");
    cJSON_Delete(p);
    p = sim_proto_error_json(R, 401, NULL, &http);
    TAP_EQ_STR(str(p, "detail"), "You did not pass a valid authentication token",
               "401 in replicate's words");
    cJSON_Delete(p);
}

static void test_fal_answers(void)
{
    const char *base = "http://127.0.0.1:5";
    struct sim_task *t = mk("u-1", "fal-ai/flux/dev", SIM_KIND_IMAGE, 2, 0);
    int st = 0;
    cJSON *p = sim_proto_submit_json(F, t, t->submit_ms, base, &st);
    TAP_EQ_INT(st, 200, "fal submit: 200");
    TAP_EQ_STR(str(p, "response_url"), "http://127.0.0.1:5/fal-ai/flux/requests/u-1",
               "response_url on the app id");
    TAP_EQ_STR(str(p, "status_url"), "http://127.0.0.1:5/fal-ai/flux/requests/u-1/status",
               "status_url on the app id");
    TAP_EQ_STR(str(p, "cancel_url"), "http://127.0.0.1:5/fal-ai/flux/requests/u-1/cancel",
               "cancel_url on the app id");
    cJSON_Delete(p);
    t->callback_url = strdup("http://h/wh");
    p = sim_proto_submit_json(F, t, t->submit_ms, base, &st);
    char *s0 = print(p);
    TAP_EQ_STR(s0, "{\"request_id\":\"u-1\",\"gateway_request_id\":\"u-1\"}",
               "fal submit with a webhook: the two ids only, as documented");
    free(s0);
    cJSON_Delete(p);
    free(t->callback_url);
    t->callback_url = NULL;
    TAP_CHECK(sim_proto_task_visible(F, t, "fal-ai/flux") &&
                  !sim_proto_task_visible(F, t, "fal-ai/flux/dev") &&
                  !sim_proto_task_visible(F, t, "fal-ai/other"),
              "fal: a request is seen under its app id only");
    p = sim_proto_status_json(F, t, t->submit_ms + 50, base);
    TAP_CHECK(strcmp(str(p, "status"), "IN_QUEUE") == 0 && num(p, "queue_position") == 1 &&
                  is_null(p, "logs") && cJSON_IsObject(obj(p, "metrics")),
              "IN_QUEUE position 1 while waiting, logs null and metrics {} as recorded");
    cJSON_Delete(p);
    p = sim_proto_status_json(F, t, t->submit_ms + 500, base);
    TAP_EQ_STR(str(p, "status"), "IN_PROGRESS", "IN_PROGRESS");
    cJSON_Delete(p);
    const char *et = "x";
    p = sim_proto_result_json(t, t->submit_ms + 500, base, &st, &et);
    TAP_CHECK(st == 400 && strcmp(str(p, "detail"), "Request is still in progress") == 0 && !et,
              "result before completion: 400");
    cJSON_Delete(p);
    p = sim_proto_result_json(t, t->complete_ms, base, &st, &et);
    const cJSON *i1 = cJSON_GetArrayItem(obj(p, "images"), 1);
    TAP_CHECK(st == 200 && strcmp(str(i1, "url"), "http://127.0.0.1:5/media/u-1/1.png") == 0 &&
                  num(i1, "width") == 256 && num(p, "seed") == 7,
              "result: images with url and size, the input's seed");
    cJSON_Delete(p);

    t->failed = 1;
    t->fail_loc = strdup("prompt");
    free(t->fail_code);
    free(t->fail_msg);
    t->fail_code = strdup("value_error.any_str.max_length");
    t->fail_msg = strdup("ensure this value has at most 2500 characters");
    p = sim_proto_result_json(t, t->complete_ms, base, &st, &et);
    char *s = print(p);
    TAP_EQ_STR(
        s,
        "{\"detail\":[{\"loc\":[\"body\",\"prompt\"],\"msg\":\"ensure this value has at "
        "most 2500 characters\",\"type\":\"value_error.any_str.max_length\",\"url\":"
        "\"https://docs.fal.ai/errors/#value_error.any_str.max_length\",\"input\":\"a fox\"}]}",
        "model error: 422 with detail an array of loc/msg/type/url/input");
    TAP_CHECK(st == 422 && !et, "model error: 422, no X-Fal-Error-Type");
    free(s);
    cJSON_Delete(p);
    free(t->fail_loc);
    t->fail_loc = NULL;
    free(t->fail_code);
    t->fail_code = strdup("request_timeout");
    p = sim_proto_result_json(t, t->complete_ms, base, &st, &et);
    TAP_CHECK(st == 504 && et && strcmp(et, "request_timeout") == 0 &&
                  strcmp(str(p, "error_type"), "request_timeout") == 0 && str(p, "detail"),
              "request error: its typical status, error_type in body and header");
    cJSON_Delete(p);
    free(t->fail_code);
    t->fail_code = strdup("E42");
    p = sim_proto_result_json(t, t->complete_ms, base, &st, &et);
    TAP_CHECK(st == 422 && strcmp(et, "E42") == 0, "another error type: 422 with error_type");
    cJSON_Delete(p);
    p = sim_proto_status_json(F, t, t->complete_ms, base);
    TAP_CHECK(strcmp(str(p, "status"), "COMPLETED") == 0 &&
                  strcmp(str(p, "error_type"), "E42") == 0 && str(p, "error"),
              "failed: COMPLETED with error and error_type");
    cJSON_Delete(p);
    char *cb = sim_proto_callback_body(F, t, t->complete_ms, base);
    p = cJSON_Parse(cb);
    TAP_CHECK(strcmp(str(p, "status"), "ERROR") == 0 &&
                  strcmp(str(p, "error"), "Invalid status code: 422") == 0 &&
                  strcmp(str(obj(p, "payload"), "error_type"), "E42") == 0,
              "fal webhook ERROR: the status code, the failed result as payload");
    cJSON_Delete(p);
    free(cb);
    sim_task_free(t);

    t = mk("u-4", "fal-ai/flux/dev", SIM_KIND_IMAGE, 1, 0);
    int canceled = sim_task_cancel(t, t->submit_ms + 100);
    p = sim_proto_cancel_json(F, t, t->submit_ms + 100, base, canceled, &st);
    TAP_CHECK(st == 202 && strcmp(str(p, "status"), "CANCELLATION_REQUESTED") == 0,
              "cancel while queued: 202 CANCELLATION_REQUESTED");
    cJSON_Delete(p);
    p = sim_proto_cancel_json(F, t, t->submit_ms + 200, base,
                              sim_task_cancel(t, t->submit_ms + 200), &st);
    TAP_CHECK(st == 400 && strcmp(str(p, "status"), "ALREADY_COMPLETED") == 0,
              "cancel of an ended request: 400 ALREADY_COMPLETED");
    cJSON_Delete(p);
    p = sim_proto_result_json(t, t->submit_ms + 200, base, &st, &et);
    TAP_CHECK(st == 400 && strcmp(et, "request_cancelled") == 0, "a cancelled result: 400");
    cJSON_Delete(p);
    sim_task_free(t);

    t = mk("u-2", "fal-ai/test/audio", SIM_KIND_AUDIO, 3, 0);
    p = sim_proto_result_json(t, t->complete_ms, base, &st, &et);
    TAP_CHECK(cJSON_IsObject(obj(p, "audio")) && cJSON_GetArraySize(obj(p, "audios")) == 3,
              "three audios: audio (the first) and audios");
    cJSON_Delete(p);
    t->kind = SIM_KIND_TEXT;
    p = sim_proto_result_json(t, t->complete_ms, base, &st, &et);
    TAP_CHECK(str(p, "output") && strlen(str(p, "output")) == SIM_MEDIA_TEXT_DEFAULT,
              "a text app answers its text under output");
    cJSON_Delete(p);
    sim_task_free(t);
}

/* A broken submit answer must never give a client an id it could poll. */
static void test_malformed(void)
{
    for (int p = SIM_PROTO_APIXO; p <= SIM_PROTO_FAL; p++) {
        int usable = 0, broken = 0;
        for (int k = 0; k < SIM_MALFORMED_KINDS; k++) {
            char *b = sim_proto_malformed_body((enum sim_protocol)p, (enum sim_malformed_kind)k,
                                               SIM_ROUTE_SUBMIT, "tk1");
            cJSON *j = b ? cJSON_Parse(b) : NULL;
            const cJSON *d = obj(j, "data");
            const char *id = p == SIM_PROTO_FAL         ? str(j, "request_id")
                             : p == SIM_PROTO_REPLICATE ? str(j, "id")
                                                        : str(d, "taskId");
            usable |= id && id[0];
            broken += b != NULL;
            cJSON_Delete(j);
            free(b);
            b = sim_proto_malformed_body((enum sim_protocol)p, (enum sim_malformed_kind)k,
                                         SIM_ROUTE_STATUS, "tk1");
            broken += b != NULL;
            free(b);
        }
        TAP_CHECK(!usable && broken == 2 * SIM_MALFORMED_KINDS,
                  "%s: every malformed kind built, no usable id in a submit answer",
                  sim_proto_name((enum sim_protocol)p));
    }
}

/* Progress and logs as the clients read them (issue 19): replicate's tqdm lines, fal's log
 * entries with ?logs=1, kie's progress field. */
static void test_progress_logs(void)
{
    const char *base = "http://127.0.0.1:5";
    struct sim_task *t = mk("pl", "test/image", SIM_KIND_IMAGE, 1, 0);
    struct sim_task_view v;
    sim_task_view_at(t, t->submit_ms, &v);
    long long mid = v.start_ms + (t->complete_ms - v.start_ms) / 2;
    cJSON *p = sim_proto_status_json(R, t, mid, base);
    const char *logs = str(p, "logs");
    TAP_CHECK(logs && strstr(logs, "Using seed: ") == logs, "replicate logs start with the seed");
    TAP_CHECK(logs &&
                  strstr(logs, " 50%|\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96"
                               "\x88     | 25/50 [") &&
                  !strstr(logs, " 52%|"),
              "  halfway: tqdm lines up to 50%% (25/50), as recorded");
    cJSON_Delete(p);
    p = sim_proto_status_json(R, t, t->complete_ms, base);
    TAP_CHECK(str(p, "logs") && strstr(str(p, "logs"), "100%|") != NULL, "  done: 100%%");
    cJSON_Delete(p);

    struct sim_task *f = mk("fl", "fal-ai/flux/dev", SIM_KIND_IMAGE, 1, 0);
    p = sim_proto_status_json(F, f, mid, base);
    TAP_CHECK(is_null(p, "logs"), "fal without ?logs=1: logs null");
    cJSON_Delete(p);
    p = sim_proto_status_logs_json(F, f, mid, base, 1);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(p, "logs");
    TAP_EQ_STR(str(p, "status"), "IN_PROGRESS", "fal with ?logs=1 halfway");
    TAP_EQ_INT(cJSON_GetArraySize(l), 5, "  5 entries: the start and 4 steps of 8");
    const cJSON *last = cJSON_GetArrayItem(l, 4);
    TAP_EQ_STR(str(last, "message"), "INFO:RUNNER:step 4/8", "  the latest step");
    TAP_CHECK(str(last, "timestamp") && !strchr(str(last, "timestamp"), 'Z') && has(last, "labels"),
              "  {timestamp without a zone, message, labels} as fal's docs show");
    cJSON_Delete(p);
    p = sim_proto_status_logs_json(F, f, f->submit_ms, base, 1);
    TAP_EQ_STR(str(p, "status"), "IN_QUEUE", "fal queued");
    TAP_EQ_INT(num(p, "queue_position"), 1, "  queue_position 1 while waiting");
    cJSON_Delete(p);
    sim_task_free(t);
    sim_task_free(f);

    struct sim_task *k = mk("kp", "sora-2", SIM_KIND_VIDEO, 1, 0);
    p = sim_proto_status_json(K, k, mid, base);
    TAP_CHECK(num(obj(p, "data"), "progress") > 0 && num(obj(p, "data"), "progress") < 100,
              "kie sora: progress between 0 and 100 while generating");
    TAP_EQ_STR(str(obj(p, "data"), "param"), k->param, "  param: the submitted body");
    cJSON_Delete(p);
    sim_task_free(k);
}

int main(void)
{
    enum sim_protocol p;
    TAP_CHECK(sim_proto_parse("apixo", &p) == 0 && p == A, "parse apixo");
    TAP_CHECK(sim_proto_parse("kie", &p) == 0 && p == K, "parse kie");
    TAP_CHECK(sim_proto_parse("native", &p) == -1, "native is gone");
    TAP_EQ_STR(sim_proto_name((enum sim_protocol)0), "apixo", "the first protocol: apixo");
    TAP_EQ_STR(sim_proto_auth_scheme(F), "Key ", "fal scheme");
    TAP_EQ_STR(sim_proto_auth_scheme(K), "Bearer ", "kie scheme");
    char err[256];
    sim_models_init_default(&models);
    int ok = 1;
    for (int q = SIM_PROTO_APIXO; q <= SIM_PROTO_FAL; q++) {
        const char *prof = sim_proto_models_profile((enum sim_protocol)q);
        ok &= !prof || sim_models_load_profile(&models, prof, err, sizeof(err)) == 0;
    }
    TAP_CHECK(ok, "built-in protocol models load (%s)", ok ? "" : err);
    const struct sim_model *m = sim_models_find(&models, "test/demucs");
    TAP_CHECK(m && m->output == SIM_OUT_NAMED && m->outputs == 4 && m->kind == SIM_KIND_AUDIO,
              "test/demucs: named audio stems");
    m = sim_models_find(&models, "test/longlogs");
    TAP_CHECK(m && m->logs_bytes > 65536, "test/longlogs: logs over 64 KiB");
    TAP_CHECK(sim_models_find(&models, "test/aborted")->end == SIM_END_ABORTED &&
                  sim_models_find(&models, "test/canceled")->end == SIM_END_CANCELED &&
                  sim_models_find(&models, "test/text")->kind == SIM_KIND_TEXT,
              "test/aborted, test/canceled, test/text");
    test_routes();
    test_submit_apixo();
    test_submit_kie();
    test_submit_replicate();
    test_submit_fal();
    test_fal_stream_times();
    test_ids();
    test_apixo_answers();
    test_kie_answers();
    test_replicate_answers();
    test_fal_answers();
    test_malformed();
    test_progress_logs();
    sim_models_free(&models);
    return tap_done();
}
