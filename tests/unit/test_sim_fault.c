/* genfs-sim fault switches: JSON merge and validation, and decision rates over many draws. */
#include "sim_fault.h"
#include "tap.h"

#include <string.h>

static int merge(struct sim_faults *f, const char *json, char *err, size_t errlen)
{
    cJSON *j = cJSON_Parse(json);
    int rc = sim_fault_merge(f, j, err, errlen);
    cJSON_Delete(j);
    return rc;
}

int main(void)
{
    struct sim_faults f;
    struct sim_fault_state st;
    struct sim_fault_decision d;
    char err[256];
    sim_fault_defaults(&f);
    memset(&st, 0, sizeof(st));
    TAP_EQ_INT(f.slow_ms, 10000, "slow_ms default");
    TAP_EQ_INT(f.burst_retry_after, 1, "burst_retry_after default");

    /* all off: nothing fires */
    int fired = 0;
    for (uint64_t i = 0; i < 10000; i++) {
        sim_fault_decide_api(&f, &st, 1, i, 1000, &d);
        fired += d.action != SIM_FAULT_NONE;
    }
    TAP_EQ_INT(fired, 0, "no faults by default");

    TAP_EQ_INT(merge(&f,
                     "{\"error_500\":0.2,\"error_503\":0.1,\"reset_rate\":0.05,"
                     "\"malformed_rate\":0.05,\"slow_rate\":0.1,\"slow_ms\":50}",
                     err, sizeof(err)),
               0, "merge rates");
    int c500 = 0, c503 = 0, reset = 0, mal = 0, slow = 0, after = 0, ra503 = 1;
    int kinds[SIM_MALFORMED_KINDS] = {0};
    const int N = 100000;
    for (int i = 0; i < N; i++) {
        sim_fault_decide_api(&f, &st, 1, (uint64_t)i, 1000, &d);
        if (d.action == SIM_FAULT_STATUS && d.status == 500)
            c500++;
        if (d.action == SIM_FAULT_STATUS && d.status == 503) {
            c503++;
            ra503 &= d.retry_after == 1;
        }
        if (d.action == SIM_FAULT_RESET) {
            reset++;
            after += d.reset_after_create;
        }
        if (d.action == SIM_FAULT_MALFORMED) {
            mal++;
            kinds[d.malformed_kind]++;
        }
        if (d.action == SIM_FAULT_SLOW && d.delay_ms == 50)
            slow++;
    }
    TAP_CHECK(c500 > N * 0.19 && c500 < N * 0.21, "error_500 at 0.2: %d", c500);
    TAP_CHECK(c503 > N * 0.09 && c503 < N * 0.11, "error_503 at 0.1: %d", c503);
    TAP_CHECK(ra503, "503 carries Retry-After 1");
    TAP_CHECK(reset > N * 0.045 && reset < N * 0.055, "reset_rate 0.05: %d", reset);
    TAP_CHECK(after > reset * 0.45 && after < reset * 0.55, "reset before/after create 50/50");
    TAP_CHECK(mal > N * 0.045 && mal < N * 0.055, "malformed_rate 0.05: %d", mal);
    int all_kinds = 1;
    for (int k = 0; k < SIM_MALFORMED_KINDS; k++)
        all_kinds &= kinds[k] > 0;
    TAP_CHECK(all_kinds, "malformed answers cycle through every kind");
    TAP_CHECK(slow > N * 0.09 && slow < N * 0.11, "slow_rate 0.1 with slow_ms: %d", slow);

    /* reproducible */
    struct sim_fault_decision d1, d2;
    struct sim_fault_state s1 = {0}, s2 = {0};
    int same = 1;
    for (uint64_t i = 0; i < 1000; i++) {
        sim_fault_decide_api(&f, &s1, 9, i, 1000, &d1);
        sim_fault_decide_api(&f, &s2, 9, i, 1000, &d2);
        same &= d1.action == d2.action && d1.status == d2.status;
    }
    TAP_CHECK(same, "same seed and request number, same decision");

    /* burst_429 counts down */
    sim_fault_defaults(&f);
    TAP_EQ_INT(merge(&f, "{\"burst_429\":3,\"burst_retry_after\":7}", err, sizeof(err)), 0,
               "merge burst");
    int c429 = 0, ra = 1;
    for (uint64_t i = 0; i < 10; i++) {
        sim_fault_decide_api(&f, &st, 1, i, 1000, &d);
        if (d.action == SIM_FAULT_STATUS && d.status == 429) {
            c429++;
            ra &= d.retry_after == 7;
        }
    }
    TAP_EQ_INT(c429, 3, "burst_429=3 gives exactly 3");
    TAP_CHECK(ra, "burst Retry-After is burst_retry_after");
    TAP_EQ_INT(f.burst_429, 0, "burst counted down");

    /* result_5xx: the next N result fetches answer result_5xx_status */
    TAP_EQ_INT(sim_fault_decide_result(&f), 0, "result_5xx off: no fault");
    TAP_EQ_INT(f.result_5xx_status, 500, "result_5xx_status defaults to 500");
    TAP_EQ_INT(merge(&f, "{\"result_5xx\":2,\"result_5xx_status\":503}", err, sizeof(err)), 0,
               "merge result_5xx");
    int r1 = sim_fault_decide_result(&f), r2 = sim_fault_decide_result(&f);
    int r3 = sim_fault_decide_result(&f);
    TAP_CHECK(r1 == 503 && r2 == 503 && r3 == 0, "result_5xx=2: two 503s, then the result");
    TAP_EQ_INT(merge(&f, "{\"result_5xx_status\":404}", err, sizeof(err)), -1,
               "result_5xx_status must be a 5xx");
    TAP_CHECK(strstr(err, "500..599") != NULL, "message names the range: %s", err);

    /* fal's status stream: off, or the next N cut */
    sim_fault_defaults(&f);
    TAP_EQ_INT(sim_fault_decide_stream(&f), SIM_STREAM_SERVE, "streams served by default");
    TAP_EQ_INT(merge(&f, "{\"stream_cut\":2}", err, sizeof(err)), 0, "merge stream_cut");
    int c1 = sim_fault_decide_stream(&f), c2 = sim_fault_decide_stream(&f);
    TAP_CHECK(c1 == SIM_STREAM_CUT && c2 == SIM_STREAM_CUT &&
                  sim_fault_decide_stream(&f) == SIM_STREAM_SERVE,
              "stream_cut=2: two cut, then served");
    TAP_EQ_INT(merge(&f, "{\"stream_off\":1,\"stream_cut\":5}", err, sizeof(err)), 0,
               "merge stream_off");
    TAP_EQ_INT(sim_fault_decide_stream(&f), SIM_STREAM_OFF, "stream_off wins");
    TAP_EQ_INT(f.stream_cut, 5, "  and cuts nothing");
    f.stream_off = 0;
    TAP_EQ_INT(merge(&f, "{\"stream_429\":1,\"stream_500\":1}", err, sizeof(err)), 0,
               "merge stream_429, stream_500");
    c1 = sim_fault_decide_stream(&f);
    c2 = sim_fault_decide_stream(&f);
    TAP_CHECK(c1 == SIM_STREAM_429 && c2 == SIM_STREAM_500 &&
                  sim_fault_decide_stream(&f) == SIM_STREAM_CUT,
              "a 429, a 500, then the cuts");
    f.stream_cut = 0;

    /* rate limit per second */
    sim_fault_defaults(&f);
    memset(&st, 0, sizeof(st));
    merge(&f, "{\"rate_limit\":5}", err, sizeof(err));
    int ok = 0, limited = 0;
    for (uint64_t i = 0; i < 20; i++) {
        sim_fault_decide_api(&f, &st, 1, i, 5000 + (long long)i, &d);
        if (d.action == SIM_FAULT_NONE)
            ok++;
        else if (d.status == 429 && d.retry_after == 1)
            limited++;
    }
    TAP_EQ_INT(ok, 5, "rate_limit 5: five pass within a second");
    TAP_EQ_INT(limited, 15, "the rest get 429");
    sim_fault_decide_api(&f, &st, 1, 99, 6001, &d);
    TAP_EQ_INT(d.action, SIM_FAULT_NONE, "next second passes again");

    /* media */
    sim_fault_defaults(&f);
    merge(&f, "{\"media_ttl_ms\":1000}", err, sizeof(err));
    sim_fault_decide_media(&f, 1, 1, 10500, 10000, &d);
    TAP_EQ_INT(d.action, SIM_FAULT_NONE, "media within ttl");
    sim_fault_decide_media(&f, 1, 2, 11001, 10000, &d);
    TAP_EQ_INT(d.status, 410, "media past ttl: 410");
    merge(&f, "{\"media_redirect\":\"file:///etc/passwd\"}", err, sizeof(err));
    sim_fault_decide_media(&f, 1, 3, 10001, 10000, &d);
    TAP_EQ_INT(d.action, SIM_FAULT_REDIRECT, "media_redirect");
    merge(&f, "{\"media_redirect\":\"\",\"media_ttl_ms\":0,\"media_error_rate\":0.3}", err,
          sizeof(err));
    int merr = 0;
    for (uint64_t i = 0; i < 10000; i++) {
        sim_fault_decide_media(&f, 1, i, 0, 0, &d);
        merr += d.status == 500;
    }
    TAP_CHECK(merr > 2800 && merr < 3200, "media_error_rate 0.3: %d", merr);

    /* task failures and lost callbacks */
    sim_fault_defaults(&f);
    merge(&f, "{\"fail_rate\":0.25,\"lost_callback_rate\":0.5}", err, sizeof(err));
    int fails = 0, lost = 0;
    for (uint64_t i = 0; i < 10000; i++) {
        fails += sim_fault_task_fails(&f, 0, 1, i);
        lost += sim_fault_callback_lost(&f, 1, i);
    }
    TAP_CHECK(fails > 2300 && fails < 2700, "fail_rate 0.25: %d", fails);
    TAP_CHECK(lost > 4800 && lost < 5200, "lost_callback_rate 0.5: %d", lost);
    TAP_EQ_INT(sim_fault_task_fails(&f, 1.0, 1, 5), 1, "model fail_rate 1 always fails");

    /* validation */
    TAP_EQ_INT(merge(&f, "{\"error_500\":1.5}", err, sizeof(err)), -1, "rate > 1 refused");
    TAP_EQ_INT(merge(&f, "{\"nope\":1}", err, sizeof(err)), -1, "unknown switch refused");
    TAP_CHECK(strstr(err, "nope") != NULL, "message names it: %s", err);
    TAP_EQ_INT(merge(&f, "{\"slow_ms\":-5}", err, sizeof(err)), -1, "negative int refused");
    TAP_EQ_INT(merge(&f, "{\"error_502\":0.5,\"bogus\":1}", err, sizeof(err)), -1,
               "one bad switch refuses all");
    TAP_CHECK(f.error_502 == 0, "nothing changed");
    TAP_EQ_INT(sim_fault_merge_arg(&f, "error_502=0.2", err, sizeof(err)), 0, "--fault arg");
    TAP_CHECK(f.error_502 == 0.2, "--fault sets it");
    TAP_EQ_INT(sim_fault_merge_arg(&f, "media_redirect=http://x/y", err, sizeof(err)), 0,
               "--fault string");
    TAP_EQ_STR(f.media_redirect, "http://x/y", "string switch set");
    TAP_EQ_INT(sim_fault_merge_arg(&f, "error_502", err, sizeof(err)), -1, "no '=' refused");
    cJSON *j = sim_fault_to_json(&f);
    TAP_CHECK(cJSON_GetObjectItem(j, "error_502") &&
                  cJSON_GetObjectItem(j, "error_502")->valuedouble == 0.2 &&
                  cJSON_GetObjectItem(j, "errors_in_body"),
              "to_json lists the switches");
    cJSON_Delete(j);
    return tap_done();
}
