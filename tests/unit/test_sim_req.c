/* genfs-sim request parsing: routes (model names with slashes, task ids, media names) and the
 * submit body checks with their 422 messages. */
#include "sim_req.h"
#include "tap.h"

#include <string.h>

static void route(const char *method, const char *path, enum sim_route want, const char *model,
                  const char *id)
{
    struct sim_route_info ri;
    sim_req_route(method, path, &ri);
    TAP_CHECK(ri.route == want && (!model || strcmp(ri.model, model) == 0) &&
                  (!id || strcmp(ri.task_id, id) == 0),
              "%s %s -> route %d model \"%s\" id \"%s\"", method, path, (int)ri.route, ri.model,
              ri.task_id);
}

static int submit(const char *body, char *msg, size_t msglen, struct sim_submit *s)
{
    int rc = sim_req_submit_parse(body, strlen(body), s, msg, msglen);
    return rc;
}

static void bad(const char *body, const char *field)
{
    char msg[256] = "";
    struct sim_submit s;
    int rc = submit(body, msg, sizeof(msg), &s);
    TAP_CHECK(rc == 422 && strstr(msg, field) != NULL, "422 naming %s for %s (got %d: %s)", field,
              body, rc, msg);
    sim_req_submit_free(&s);
}

int main(void)
{
    route("POST", "/generateTask/nano-banana", SIM_ROUTE_SUBMIT, "nano-banana", NULL);
    route("POST", "/generateTask/fal-ai/flux/dev", SIM_ROUTE_SUBMIT, "fal-ai/flux/dev", NULL);
    route("GET", "/generateTask/nano-banana/tk123", SIM_ROUTE_STATUS, "nano-banana", "tk123");
    route("GET", "/generateTask/fal-ai/flux/dev/tk9", SIM_ROUTE_STATUS, "fal-ai/flux/dev", "tk9");
    route("GET", "/generateTask/nano-banana", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route("GET", "/generateTask/nano-banana/", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route("POST", "/generateTask/", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route("POST", "/generateTask/a//b", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route("DELETE", "/generateTask/x", SIM_ROUTE_BAD_METHOD, NULL, NULL);
    route("GET", "/media/tkabc/0.png", SIM_ROUTE_MEDIA, NULL, "tkabc");
    route("HEAD", "/media/tkabc/7.wav", SIM_ROUTE_MEDIA, NULL, "tkabc");
    route("GET", "/media/tkabc/8.png", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route("GET", "/media/tkabc/x.png", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route("GET", "/media/tkabc/0.png/more", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    route("GET", "/_sim/figures", SIM_ROUTE_FIGURES, NULL, NULL);
    route("GET", "/_sim/tasks", SIM_ROUTE_TASKS, NULL, NULL);
    route("GET", "/_sim/tasks/tk1", SIM_ROUTE_TASK, NULL, "tk1");
    route("GET", "/_sim/faults", SIM_ROUTE_FAULTS_GET, NULL, NULL);
    route("POST", "/_sim/faults", SIM_ROUTE_FAULTS_SET, NULL, NULL);
    route("POST", "/_sim/faults/reset", SIM_ROUTE_FAULTS_RESET, NULL, NULL);
    route("POST", "/_sim/reset", SIM_ROUTE_RESET, NULL, NULL);
    route("GET", "/_sim/reset", SIM_ROUTE_BAD_METHOD, NULL, NULL);
    route("GET", "/", SIM_ROUTE_NOT_FOUND, NULL, NULL);
    char longpath[600] = "/generateTask/";
    memset(longpath + 14, 'm', 400);
    route("POST", longpath, SIM_ROUTE_NOT_FOUND, NULL, NULL);
    TAP_CHECK(sim_req_is_api(SIM_ROUTE_SUBMIT) && sim_req_is_api(SIM_ROUTE_STATUS) &&
                  !sim_req_is_api(SIM_ROUTE_MEDIA),
              "api routes");

    char msg[256];
    struct sim_submit s;
    TAP_EQ_INT(
        submit("{\"request_type\":\"async\",\"input\":{\"prompt\":\"cat\"}}", msg, sizeof(msg), &s),
        0, "minimal async submit");
    TAP_EQ_STR(s.prompt, "cat", "prompt");
    TAP_CHECK(s.callback == 0 && s.outputs == 1 && s.duration_ms == -1 && s.media_bytes == 0 &&
                  s.outcome == SIM_OUTCOME_DRAW && !s.no_credits,
              "defaults");
    sim_req_submit_free(&s);
    TAP_EQ_INT(submit("{\"request_type\":\"callback\",\"callback_url\":\"http://h/x\",\"input\":"
                      "{\"prompt\":\"p\",\"sim_duration_ms\":1500,\"sim_outcome\":\"failed\","
                      "\"sim_fail_code\":\"451\",\"sim_fail_msg\":\"no\",\"sim_outputs\":3,"
                      "\"sim_media_bytes\":200000000,\"sim_credits\":\"none\"}}",
                      msg, sizeof(msg), &s),
               0, "every knob");
    TAP_CHECK(s.callback && strcmp(s.callback_url, "http://h/x") == 0, "callback url");
    TAP_CHECK(s.duration_ms == 1500 && s.outcome == SIM_OUTCOME_FAILED && s.outputs == 3 &&
                  s.media_bytes == 200000000ull && s.no_credits,
              "knobs parsed");
    TAP_EQ_STR(s.fail_code, "451", "fail code");
    TAP_EQ_STR(s.fail_msg, "no", "fail msg");
    sim_req_submit_free(&s);

    bad("", "body");
    bad("not json", "body");
    bad("[1,2]", "body");
    bad("{\"request_type\":\"async\"}", "input");
    bad("{\"input\":\"x\"}", "input");
    bad("{\"input\":{}}", "input.prompt");
    bad("{\"input\":{\"prompt\":\"\"}}", "input.prompt");
    bad("{\"input\":{\"prompt\":5}}", "input.prompt");
    bad("{\"request_type\":\"sync\",\"input\":{\"prompt\":\"p\"}}", "request_type");
    bad("{\"request_type\":\"callback\",\"input\":{\"prompt\":\"p\"}}", "callback_url");
    bad("{\"request_type\":\"callback\",\"callback_url\":\"ftp://x\",\"input\":{\"prompt\":\"p\"}}",
        "callback_url");
    bad("{\"request_type\":\"async\",\"callback_url\":\"http://x\",\"input\":{\"prompt\":\"p\"}}",
        "callback_url");
    bad("{\"input\":{\"prompt\":\"p\",\"sim_outputs\":9}}", "sim_outputs");
    bad("{\"input\":{\"prompt\":\"p\",\"sim_duration_ms\":-1}}", "sim_duration_ms");
    bad("{\"input\":{\"prompt\":\"p\",\"sim_duration_ms\":1.5}}", "sim_duration_ms");
    bad("{\"input\":{\"prompt\":\"p\",\"sim_outcome\":\"meh\"}}", "sim_outcome");
    bad("{\"input\":{\"prompt\":\"p\",\"sim_media_bytes\":0}}", "sim_media_bytes");

    cJSON *a =
        cJSON_Parse("{\"b\": [1, {\"z\": 1, \"a\": \"x\"}], \"a\": null, \"c\": \"\\u00e9\"}");
    cJSON *b = cJSON_Parse("{\"c\":\"\\u00e9\",\"a\":null,\"b\":[1,{\"a\":\"x\",\"z\":1}]}");
    char *ca = sim_req_canonical_json(a), *cb = sim_req_canonical_json(b);
    TAP_EQ_STR(ca, cb, "canonical JSON ignores key order and spacing");
    TAP_CHECK(ca && strncmp(ca, "{\"a\":null,\"b\":[1,{\"a\":\"x\",\"z\":1}]", 33) == 0,
              "keys sorted: %s", ca ? ca : "(null)");
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_free(ca);
    cJSON_free(cb);
    return tap_done();
}
