/* genfs-sim request parsing shared by the protocols: the /media/ and /_sim/ routes, the prompt
 * check and the sim_* knobs with their messages, canonical JSON. */
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

/* Parses the knobs of an input object; returns the parser's answer, msg gets its message. */
static int knobs(const char *input, int outcomes, struct sim_submit *s, char *msg)
{
    cJSON *in = cJSON_Parse(input);
    sim_req_submit_init(s);
    int rc = sim_req_knobs_parse(in, "input.", outcomes, s, msg, 256);
    /* The knobs point into the input: keep it as the submit's root, freed with it. */
    s->root = in;
    return rc;
}

static void bad(const char *input, int outcomes, const char *field)
{
    char msg[256] = "";
    struct sim_submit s;
    int rc = knobs(input, outcomes, &s, msg);
    TAP_CHECK(rc == -1 && strstr(msg, field) != NULL, "refused naming %s for %s (got %d: %s)",
              field, input, rc, msg);
    sim_req_submit_free(&s);
}

int main(void)
{
    route("POST", "/generateTask/nano-banana", SIM_ROUTE_NOT_FOUND, NULL, NULL);
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
    TAP_CHECK(sim_req_is_api(SIM_ROUTE_SUBMIT) && sim_req_is_api(SIM_ROUTE_STATUS) &&
                  sim_req_is_api(SIM_ROUTE_RESULT) && sim_req_is_api(SIM_ROUTE_CANCEL) &&
                  !sim_req_is_api(SIM_ROUTE_MEDIA) && !sim_req_is_api(SIM_ROUTE_FIGURES),
              "api routes");

    char msg[256];
    struct sim_submit s;
    TAP_EQ_INT(knobs("{\"prompt\":\"cat\"}", 0, &s, msg), 0, "no knobs");
    TAP_CHECK(s.callback == 0 && s.outputs == 0 && s.duration_ms == -1 && s.media_bytes == 0 &&
                  s.outcome == SIM_OUTCOME_DRAW && !s.reject && !s.fail_loc,
              "defaults (outputs 0: the model's own)");
    TAP_EQ_INT(sim_req_prompt_parse(s.root, "input.", &s, msg, sizeof(msg)), 0, "prompt found");
    TAP_EQ_STR(s.prompt, "cat", "prompt");
    sim_req_submit_free(&s);
    TAP_EQ_INT(knobs("{\"prompt\":\"p\",\"sim_duration_ms\":1500,\"sim_outcome\":\"failed\","
                     "\"sim_fail_code\":\"451\",\"sim_fail_msg\":\"no\",\"sim_outputs\":3,"
                     "\"sim_media_bytes\":200000000,\"sim_credits\":\"none\","
                     "\"sim_fail_loc\":\"prompt\"}",
                     0, &s, msg),
               0, "every knob");
    TAP_CHECK(s.duration_ms == 1500 && s.outcome == SIM_OUTCOME_FAILED && s.outputs == 3 &&
                  s.media_bytes == 200000000ull && s.reject == 402,
              "knobs parsed; sim_credits none is a 402");
    TAP_EQ_STR(s.fail_code, "451", "fail code");
    TAP_EQ_STR(s.fail_msg, "no", "fail msg");
    TAP_EQ_STR(s.fail_loc, "prompt", "fail loc");
    sim_req_submit_free(&s);
    TAP_EQ_INT(knobs("{\"prompt\":\"p\",\"sim_reject\":503}", 0, &s, msg), 0, "sim_reject");
    TAP_EQ_INT(s.reject, 503, "sim_reject 503");
    sim_req_submit_free(&s);
    /* TAP_CHECK evaluates its condition twice: the parse runs before it. */
    int rc = knobs("{\"sim_outcome\":\"aborted\"}", SIM_KNOB_CANCELED | SIM_KNOB_ABORTED, &s, msg);
    TAP_CHECK(rc == 0 && s.outcome == SIM_OUTCOME_ABORTED, "aborted where admitted");
    sim_req_submit_free(&s);
    rc = knobs("{\"sim_outcome\":\"canceled\"}", SIM_KNOB_CANCELED, &s, msg);
    TAP_CHECK(rc == 0 && s.outcome == SIM_OUTCOME_CANCELED, "canceled where admitted");
    sim_req_submit_free(&s);

    struct sim_submit p;
    sim_req_submit_init(&p);
    cJSON *in = cJSON_Parse("{\"prompt\":\"\"}");
    TAP_CHECK(sim_req_prompt_parse(in, "input.", &p, msg, sizeof(msg)) == -1 &&
                  strstr(msg, "input.prompt"),
              "empty prompt refused: %s", msg);
    cJSON_Delete(in);
    in = cJSON_Parse("{\"prompt\":5}");
    TAP_CHECK(sim_req_prompt_parse(in, "", &p, msg, sizeof(msg)) == -1 &&
                  strncmp(msg, "prompt", 6) == 0,
              "a number is no prompt; the field named without prefix: %s", msg);
    cJSON_Delete(in);

    bad("{\"sim_outputs\":9}", 0, "input.sim_outputs");
    bad("{\"sim_duration_ms\":-1}", 0, "input.sim_duration_ms");
    bad("{\"sim_duration_ms\":1.5}", 0, "input.sim_duration_ms");
    bad("{\"sim_outcome\":\"meh\"}", 0, "input.sim_outcome");
    bad("{\"sim_outcome\":\"canceled\"}", 0, "input.sim_outcome");
    bad("{\"sim_outcome\":\"aborted\"}", SIM_KNOB_CANCELED, "input.sim_outcome");
    bad("{\"sim_media_bytes\":0}", 0, "input.sim_media_bytes");
    bad("{\"sim_reject\":200}", 0, "input.sim_reject");
    bad("{\"sim_fail_loc\":\"\"}", 0, "input.sim_fail_loc");
    bad("{\"sim_fail_code\":7}", 0, "input.sim_fail_code");

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
