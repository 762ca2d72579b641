/* genfs-sim protocols: replicate and fal routes (model ids with slashes), submit parsing and its
 * 422 messages, ids, and the exact answer shapes over a task's life (the shapes genfs's provider
 * profiles must match). */
#include "sim_proto.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static void route(enum sim_protocol p, const char *method, const char *path, enum sim_route want,
                  const char *model, const char *id)
{
    struct sim_route_info ri;
    sim_proto_route(p, method, path, &ri);
    TAP_CHECK(ri.route == want && (!model || strcmp(ri.model, model) == 0) &&
                  (!id || strcmp(ri.task_id, id) == 0),
              "%s %s %s -> route %d model \"%s\" id \"%s\"", sim_proto_name(p), method, path,
              (int)ri.route, ri.model, ri.task_id);
}

static void test_routes(void)
{
    enum sim_protocol R = SIM_PROTO_REPLICATE, F = SIM_PROTO_FAL;
    route(R, "POST", "/v1/models/black-forest-labs/flux-schnell/predictions", SIM_ROUTE_SUBMIT,
          "black-forest-labs/flux-schnell", NULL);
    route(R, "POST", "/v1/models/test/image/predictions", SIM_ROUTE_SUBMIT, "test/image", NULL);
    route(R, "POST", "/v1/models/a/b/c/predictions", SIM_ROUTE_SUBMIT, "a/b/c", NULL);
    route(R, "GET", "/v1/models/test/image/predictions", SIM_ROUTE_BAD_METHOD, NULL, NULL);
    route(R, "POST", "/v1/models//predictions", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(R, "POST", "/v1/models/predictions", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(R, "GET", "/v1/predictions/abc123", SIM_ROUTE_STATUS, "", "abc123");
    route(R, "POST", "/v1/predictions/abc123/cancel", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(R, "POST", "/generateTask/test-image", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(R, "GET", "/media/abc/0.png", SIM_ROUTE_MEDIA, NULL, "abc");
    route(R, "GET", "/_sim/figures", SIM_ROUTE_FIGURES, NULL, NULL);

    route(F, "POST", "/fal-ai/flux/dev", SIM_ROUTE_SUBMIT, "fal-ai/flux/dev", NULL);
    route(F, "POST", "/fal-ai/test-image", SIM_ROUTE_SUBMIT, "fal-ai/test-image", NULL);
    route(F, "GET", "/fal-ai/flux/dev/requests/u-1/status", SIM_ROUTE_STATUS, "fal-ai/flux/dev",
          "u-1");
    route(F, "GET", "/fal-ai/flux/dev/requests/u-1", SIM_ROUTE_RESULT, "fal-ai/flux/dev", "u-1");
    route(F, "GET", "/fal-ai/test-image/requests/u-2", SIM_ROUTE_RESULT, "fal-ai/test-image",
          "u-2");
    route(F, "GET", "/fal-ai/x/requests/", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "GET", "/requests/u-1", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "GET", "/fal-ai/x", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "POST", "/", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "PUT", "/fal-ai/x/requests/u-1/cancel", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route(F, "GET", "/media/u-1/1.wav", SIM_ROUTE_MEDIA, NULL, "u-1");
    route(F, "POST", "/_sim/reset", SIM_ROUTE_RESET, NULL, NULL);

    route(SIM_PROTO_NATIVE, "POST", "/generateTask/fal-ai/flux/dev", SIM_ROUTE_SUBMIT,
          "fal-ai/flux/dev", NULL);
    TAP_CHECK(sim_req_is_api(SIM_ROUTE_RESULT), "a result fetch is an API request (faults)");
}

static int parse(enum sim_protocol p, const char *body, const char *hook, struct sim_submit *s,
                 char *msg)
{
    return sim_proto_submit_parse(p, body, strlen(body), hook, s, msg, 256);
}

static void bad(enum sim_protocol p, const char *body, const char *hook, const char *field)
{
    char msg[256] = "";
    struct sim_submit s;
    int rc = parse(p, body, hook, &s, msg);
    TAP_CHECK(rc == 422 && strstr(msg, field) != NULL, "%s: 422 naming %s for %s (got %d: %s)",
              sim_proto_name(p), field, body, rc, msg);
    sim_req_submit_free(&s);
}

static void test_submit(void)
{
    char msg[256] = "";
    struct sim_submit s;
    enum sim_protocol R = SIM_PROTO_REPLICATE, F = SIM_PROTO_FAL;

    int rc =
        parse(R,
              "{\"input\":{\"prompt\":\"fox\",\"sim_outputs\":3,\"sim_outcome\":\"canceled\"},"
              "\"webhook\":\"http://h/x\",\"webhook_events_filter\":[\"start\",\"completed\"]}",
              NULL, &s, msg);
    TAP_EQ_INT(rc, 0, "replicate: a full body parses");
    TAP_EQ_STR(s.prompt, "fox", "replicate: prompt");
    TAP_EQ_INT(s.outputs, 3, "replicate: sim_outputs");
    TAP_EQ_INT(s.outcome, SIM_OUTCOME_CANCELED, "replicate: sim_outcome canceled");
    TAP_CHECK(s.callback && strcmp(s.callback_url, "http://h/x") == 0, "replicate: webhook");
    sim_req_submit_free(&s);
    rc = parse(R,
               "{\"input\":{\"prompt\":\"fox\"},\"webhook\":\"http://h/x\","
               "\"webhook_events_filter\":[\"start\"]}",
               NULL, &s, msg);
    TAP_CHECK(rc == 0 && !s.callback, "replicate: a filter without completed sends no webhook");
    sim_req_submit_free(&s);
    bad(R, "{\"prompt\":\"fox\"}", NULL, "input");
    bad(R, "{\"input\":{}}", NULL, "input.prompt");
    bad(R, "nope", NULL, "body");
    bad(R, "{\"input\":{\"prompt\":\"p\"},\"webhook\":\"ftp://x\"}", NULL, "webhook");
    bad(R, "{\"input\":{\"prompt\":\"p\"},\"webhook_events_filter\":[\"done\"]}", NULL,
        "webhook_events_filter");
    bad(R, "{\"input\":{\"prompt\":\"p\",\"sim_outputs\":9}}", NULL, "input.sim_outputs");

    rc = parse(F, "{\"prompt\":\"owl\",\"sim_duration_ms\":100,\"sim_credits\":\"none\"}",
               "https://h/cb?x=1", &s, msg);
    TAP_EQ_INT(rc, 0, "fal: the body is the input");
    TAP_EQ_STR(s.prompt, "owl", "fal: prompt");
    TAP_EQ_INT(s.duration_ms, 100, "fal: sim_duration_ms");
    TAP_CHECK(s.no_credits, "fal: sim_credits none");
    TAP_CHECK(s.input == s.root, "fal: input is the whole body");
    TAP_CHECK(s.callback && strcmp(s.callback_url, "https://h/cb?x=1") == 0,
              "fal: fal_webhook from the query");
    sim_req_submit_free(&s);
    bad(F, "{\"input\":{\"prompt\":\"p\"}}", NULL, "prompt");
    bad(F, "[1]", NULL, "body");
    bad(F, "{\"prompt\":\"p\"}", "file:///etc/passwd", "fal_webhook");
    bad(F, "{\"prompt\":\"p\",\"sim_outcome\":\"canceled\"}", NULL, "sim_outcome");
    bad(SIM_PROTO_NATIVE, "{\"input\":{\"prompt\":\"p\",\"sim_outcome\":\"canceled\"}}", NULL,
        "input.sim_outcome");
}

static void test_ids(void)
{
    char a[SIM_TASK_ID_MAX + 1], b[SIM_TASK_ID_MAX + 1];
    sim_proto_task_id(SIM_PROTO_REPLICATE, 1, 1, a);
    int ok = strlen(a) == 26;
    for (size_t i = 0; a[i]; i++)
        ok &= (a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '2' && a[i] <= '7');
    TAP_CHECK(ok, "replicate id: 26 base32 characters (%s)", a);
    sim_proto_task_id(SIM_PROTO_REPLICATE, 1, 2, b);
    TAP_CHECK(strcmp(a, b) != 0, "replicate ids differ per counter");
    sim_proto_task_id(SIM_PROTO_FAL, 1, 1, a);
    TAP_CHECK(strlen(a) == 36 && a[8] == '-' && a[13] == '-' && a[14] == '4' && a[18] == '-' &&
                  strchr("89ab", a[19]) && a[23] == '-',
              "fal id: a UUID v4 (%s)", a);
    sim_proto_task_id(SIM_PROTO_FAL, 1, 1, b);
    TAP_EQ_STR(a, b, "fal id: reproducible");
    sim_proto_task_id(SIM_PROTO_NATIVE, 1, 1, a);
    TAP_CHECK(strlen(a) == SIM_TASK_ID_LEN && a[0] == 't' && a[1] == 'k', "native id: tk + hex");
    char iso[SIM_PROTO_ISO_MAX];
    sim_proto_iso8601(1700000000123LL, iso);
    TAP_EQ_STR(iso, "2023-11-14T22:13:20.123000Z", "ISO 8601 with microseconds");
}

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
    t->param = strdup("{}");
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

static int is_null(const cJSON *o, const char *k)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void test_replicate_answers(void)
{
    const char *base = "http://127.0.0.1:5";
    struct sim_task *t = mk("abc", "test/image", SIM_KIND_IMAGE, 1, 0);
    int st = 0;
    cJSON *p = sim_proto_submit_json(SIM_PROTO_REPLICATE, t, t->submit_ms, base, &st);
    TAP_EQ_INT(st, 201, "replicate submit: 201");
    TAP_EQ_STR(str(p, "id"), "abc", "prediction id");
    TAP_EQ_STR(str(p, "model"), "test/image", "prediction model");
    TAP_EQ_STR(str(p, "status"), "starting", "starting at submit");
    TAP_CHECK(str(p, "version") && strlen(str(p, "version")) == 64, "version: 64 hex");
    TAP_CHECK(is_null(p, "output") && is_null(p, "error") && is_null(p, "started_at") &&
                  is_null(p, "completed_at"),
              "output, error, started_at, completed_at null at first");
    TAP_EQ_STR(str(p, "created_at"), "2001-09-09T01:46:40.000000Z", "created_at ISO 8601");
    TAP_EQ_STR(str(p, "logs"), "", "logs: empty string");
    const cJSON *urls = cJSON_GetObjectItemCaseSensitive(p, "urls");
    TAP_EQ_STR(str(urls, "get"), "http://127.0.0.1:5/v1/predictions/abc", "urls.get");
    TAP_EQ_STR(str(urls, "cancel"), "http://127.0.0.1:5/v1/predictions/abc/cancel", "urls.cancel");
    TAP_EQ_STR(str(cJSON_GetObjectItemCaseSensitive(p, "input"), "prompt"), "a fox", "input");
    cJSON_Delete(p);

    p = sim_proto_status_json(SIM_PROTO_REPLICATE, t, t->submit_ms + 500, base);
    TAP_EQ_STR(str(p, "status"), "processing", "processing after 30%");
    TAP_EQ_STR(str(p, "started_at"), "2001-09-09T01:46:40.300000Z", "started_at at 30%");
    cJSON_Delete(p);
    p = sim_proto_status_json(SIM_PROTO_REPLICATE, t, t->submit_ms + 2000, base);
    TAP_EQ_STR(str(p, "status"), "succeeded", "succeeded");
    TAP_EQ_STR(str(p, "output"), "http://127.0.0.1:5/media/abc/0.png", "one output: a string");
    TAP_EQ_STR(str(p, "completed_at"), "2001-09-09T01:46:41.000000Z", "completed_at");
    cJSON_Delete(p);
    t->outputs = 2;
    p = sim_proto_status_json(SIM_PROTO_REPLICATE, t, t->submit_ms + 2000, base);
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(p, "output");
    TAP_CHECK(cJSON_IsArray(out) && cJSON_GetArraySize(out) == 2 &&
                  strcmp(cJSON_GetArrayItem(out, 1)->valuestring,
                         "http://127.0.0.1:5/media/abc/1.png") == 0,
              "several outputs: an array of URLs");
    cJSON_Delete(p);
    t->failed = 1;
    p = sim_proto_status_json(SIM_PROTO_REPLICATE, t, t->submit_ms + 2000, base);
    TAP_CHECK(strcmp(str(p, "status"), "failed") == 0 && is_null(p, "output") &&
                  strcmp(str(p, "error"), "blocked") == 0,
              "failed: error is sim_fail_msg, output null");
    cJSON_Delete(p);
    t->canceled = 1;
    p = sim_proto_status_json(SIM_PROTO_REPLICATE, t, t->submit_ms + 2000, base);
    TAP_CHECK(strcmp(str(p, "status"), "canceled") == 0 && is_null(p, "error"), "canceled");
    cJSON_Delete(p);
    sim_task_free(t);

    p = sim_proto_error_json(SIM_PROTO_REPLICATE, 422, "input.prompt: required");
    char *s = cJSON_PrintUnformatted(p);
    TAP_EQ_STR(s,
               "{\"title\":\"Input validation failed\",\"detail\":\"input.prompt: required\","
               "\"status\":422}",
               "replicate error shape");
    free(s);
    cJSON_Delete(p);
}

static void test_fal_answers(void)
{
    const char *base = "http://127.0.0.1:5";
    struct sim_task *t = mk("u-1", "fal-ai/flux/dev", SIM_KIND_IMAGE, 2, 0);
    int st = 0;
    cJSON *p = sim_proto_submit_json(SIM_PROTO_FAL, t, t->submit_ms, base, &st);
    TAP_EQ_INT(st, 200, "fal submit: 200");
    TAP_EQ_STR(str(p, "request_id"), "u-1", "request_id");
    TAP_EQ_STR(str(p, "response_url"), "http://127.0.0.1:5/fal-ai/flux/dev/requests/u-1",
               "response_url");
    TAP_EQ_STR(str(p, "status_url"), "http://127.0.0.1:5/fal-ai/flux/dev/requests/u-1/status",
               "status_url");
    TAP_EQ_STR(str(p, "cancel_url"), "http://127.0.0.1:5/fal-ai/flux/dev/requests/u-1/cancel",
               "cancel_url");
    TAP_EQ_INT(cJSON_GetObjectItemCaseSensitive(p, "queue_position")->valueint, 0,
               "queue_position");
    cJSON_Delete(p);

    p = sim_proto_status_json(SIM_PROTO_FAL, t, t->submit_ms + 50, base);
    TAP_CHECK(strcmp(str(p, "status"), "IN_QUEUE") == 0 &&
                  cJSON_GetObjectItemCaseSensitive(p, "queue_position")->valueint == 1,
              "IN_QUEUE position 1 while waiting");
    cJSON_Delete(p);
    p = sim_proto_status_json(SIM_PROTO_FAL, t, t->submit_ms + 200, base);
    TAP_CHECK(strcmp(str(p, "status"), "IN_QUEUE") == 0 &&
                  cJSON_GetObjectItemCaseSensitive(p, "queue_position")->valueint == 0,
              "IN_QUEUE position 0 while queuing");
    cJSON_Delete(p);
    p = sim_proto_status_json(SIM_PROTO_FAL, t, t->submit_ms + 500, base);
    TAP_CHECK(strcmp(str(p, "status"), "IN_PROGRESS") == 0 && is_null(p, "logs"), "IN_PROGRESS");
    cJSON_Delete(p);
    p = sim_proto_result_json(t, t->submit_ms + 500, base, &st);
    TAP_CHECK(st == 400 && strcmp(str(p, "detail"), "Request is still in progress") == 0,
              "result before completion: 400");
    cJSON_Delete(p);
    p = sim_proto_status_json(SIM_PROTO_FAL, t, t->submit_ms + 1000, base);
    TAP_CHECK(strcmp(str(p, "status"), "COMPLETED") == 0 && !str(p, "error"),
              "COMPLETED without error");
    cJSON_Delete(p);
    p = sim_proto_result_json(t, t->submit_ms + 1000, base, &st);
    const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(p, "images");
    const cJSON *i1 = cJSON_GetArrayItem(imgs, 1);
    TAP_CHECK(st == 200 && cJSON_GetArraySize(imgs) == 2, "result: two images");
    TAP_EQ_STR(str(i1, "url"), "http://127.0.0.1:5/media/u-1/1.png", "image url");
    TAP_EQ_STR(str(i1, "content_type"), "image/png", "image content_type");
    TAP_EQ_INT(cJSON_GetObjectItemCaseSensitive(i1, "width")->valueint, 256, "image width");
    TAP_EQ_INT(cJSON_GetObjectItemCaseSensitive(i1, "height")->valueint, 256, "image height");
    TAP_EQ_INT(cJSON_GetObjectItemCaseSensitive(p, "seed")->valueint, 7, "seed from the input");
    TAP_EQ_STR(str(p, "prompt"), "a fox", "prompt");
    cJSON_Delete(p);
    char *cb = sim_proto_callback_body(SIM_PROTO_FAL, t, t->complete_ms, base);
    cJSON *c = cJSON_Parse(cb);
    TAP_CHECK(strcmp(str(c, "status"), "OK") == 0 && strcmp(str(c, "request_id"), "u-1") == 0 &&
                  strcmp(str(c, "gateway_request_id"), "u-1") == 0 && is_null(c, "error") &&
                  cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(
                      cJSON_GetObjectItemCaseSensitive(c, "payload"), "images")),
              "fal webhook OK with the payload");
    cJSON_Delete(c);
    free(cb);

    t->failed = 1;
    p = sim_proto_status_json(SIM_PROTO_FAL, t, t->submit_ms + 1000, base);
    TAP_CHECK(strcmp(str(p, "status"), "COMPLETED") == 0 &&
                  strcmp(str(p, "error"), "blocked") == 0 &&
                  strcmp(str(p, "error_type"), "content_policy_violation") == 0,
              "failed: COMPLETED with error and error_type");
    cJSON_Delete(p);
    p = sim_proto_result_json(t, t->submit_ms + 1000, base, &st);
    TAP_CHECK(st == 422 && strcmp(str(p, "detail"), "blocked") == 0 &&
                  strcmp(str(p, "error_type"), "content_policy_violation") == 0,
              "failed result: 422 detail + error_type");
    cJSON_Delete(p);
    cb = sim_proto_callback_body(SIM_PROTO_FAL, t, t->complete_ms, base);
    c = cJSON_Parse(cb);
    TAP_CHECK(strcmp(str(c, "status"), "ERROR") == 0 && is_null(c, "payload") &&
                  strcmp(str(c, "error"), "blocked") == 0,
              "fal webhook ERROR");
    cJSON_Delete(c);
    free(cb);
    sim_task_free(t);

    t = mk("u-2", "fal-ai/test/video", SIM_KIND_VIDEO, 1, 0);
    p = sim_proto_result_json(t, t->complete_ms, base, &st);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "video");
    TAP_CHECK(cJSON_IsObject(v) && strcmp(str(v, "content_type"), "image/gif") == 0 &&
                  cJSON_GetObjectItemCaseSensitive(v, "file_size")->valuedouble > 0 &&
                  !cJSON_GetObjectItemCaseSensitive(p, "videos"),
              "one video: {\"video\": {url, content_type, file_size}}");
    cJSON_Delete(p);
    t->kind = SIM_KIND_AUDIO;
    t->outputs = 3;
    p = sim_proto_result_json(t, t->complete_ms, base, &st);
    TAP_CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(p, "audio")) &&
                  cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "audios")) == 3,
              "three audios: audio (the first) and audios");
    cJSON_Delete(p);
    sim_task_free(t);
}

/* A broken submit answer must never give a client an id it could poll. */
static void test_malformed(void)
{
    for (int p = SIM_PROTO_NATIVE; p <= SIM_PROTO_FAL; p++) {
        int usable = 0, broken = 0;
        for (int k = 0; k < SIM_MALFORMED_KINDS; k++) {
            char *b = sim_proto_malformed_body((enum sim_protocol)p, (enum sim_malformed_kind)k,
                                               SIM_ROUTE_SUBMIT, "tk1");
            cJSON *j = b ? cJSON_Parse(b) : NULL;
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
            const char *id = p == SIM_PROTO_NATIVE ? str(d, "taskId")
                             : p == SIM_PROTO_FAL  ? str(j, "request_id")
                                                   : str(j, "id");
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

int main(void)
{
    enum sim_protocol p;
    TAP_CHECK(sim_proto_parse("fal", &p) == 0 && p == SIM_PROTO_FAL, "parse fal");
    TAP_CHECK(sim_proto_parse("kie", &p) == -1, "parse rejects unknown");
    TAP_EQ_STR(sim_proto_auth_scheme(SIM_PROTO_FAL), "Key ", "fal scheme");
    TAP_EQ_STR(sim_proto_auth_scheme(SIM_PROTO_REPLICATE), "Bearer ", "replicate scheme");
    struct sim_models ms;
    char err[256];
    sim_models_init_default(&ms);
    TAP_CHECK(sim_models_load_profile(&ms, sim_proto_models_profile(SIM_PROTO_REPLICATE), err,
                                      sizeof(err)) == 0 &&
                  sim_models_load_profile(&ms, sim_proto_models_profile(SIM_PROTO_FAL), err,
                                          sizeof(err)) == 0,
              "built-in protocol models load");
    const struct sim_model *m = sim_models_find(&ms, "fal-ai/test/audio");
    TAP_CHECK(m && m->kind == SIM_KIND_AUDIO && m->median_ms == 5000, "fal-ai/test/audio");
    m = sim_models_find(&ms, "test/video");
    TAP_CHECK(m && m->kind == SIM_KIND_VIDEO, "test/video");
    sim_models_free(&ms);
    test_routes();
    test_submit();
    test_ids();
    test_replicate_answers();
    test_fal_answers();
    test_malformed();
    return tap_done();
}
