#include "rate.h"
#include "tap.h"

#include <math.h>

#define T0 INT64_C(1000000)

/* Sends as fast as the bucket allows from t0 for `ms` of fake time; records
 * the send times in `at` (up to cap) and returns how many went. */
static int drive(struct rate *r, int64_t t0, int64_t ms, int64_t *at, int cap)
{
    int n = 0;
    int64_t now = t0;
    while (now < t0 + ms && n < cap) {
        int64_t wait = rate_take(r, now);
        if (wait == 0)
            at[n++] = now;
        else
            now += wait;
    }
    return n;
}

/* Most sends seen in any window of w ms. */
static int max_in_window(const int64_t *at, int n, int64_t w)
{
    int best = 0;
    for (int i = 0, j = 0; i < n; i++) {
        while (at[i] - at[j] >= w)
            j++;
        best = i - j + 1 > best ? i - j + 1 : best;
    }
    return best;
}

static void test_steady(void)
{
    struct rate r;
    static int64_t at[4000];
    rate_init(&r, 10, T0);
    TAP_CHECK(r.burst >= 1 && fabs(r.burst - 10) < 1e-9, "burst is one second of requests");
    int n = drive(&r, T0, 10000, at, 4000);
    TAP_CHECK(n >= 100, "at 10/s, 100 requests pass in 10 s (%d)", n);
    TAP_CHECK(n <= 111, "at 10/s, no more than burst + 10 s of rate (%d)", n);
    int ok = 1;
    const int64_t windows[] = {100, 500, 1000, 3000, 10000};
    for (int i = 0; i < 5; i++) {
        int most = max_in_window(at, n, windows[i]);
        if (most > 10 + 10 * windows[i] / 1000 + 1) {
            printf("# window %lld ms: %d\n", (long long)windows[i], most);
            ok = 0;
        }
    }
    TAP_CHECK(ok, "no window holds more than burst + rate * t");
    int n2 = drive(&r, at[n - 1] + 1, 20000, at, 4000);
    TAP_CHECK(n2 >= 199 && n2 <= 201, "sustained rate is 10/s (%d in 20 s)", n2);
    TAP_CHECK(max_in_window(at, n2, 1000) <= 11, "no burst once the bucket is drained");

    rate_init(&r, 0.5, T0);
    TAP_CHECK(fabs(r.burst - 1) < 1e-9, "burst is at least one token");
    TAP_EQ_INT(rate_take(&r, T0), 0, "first request at 0.5/s passes");
    TAP_EQ_INT(rate_take(&r, T0), 2000, "next one waits 2 s");
    TAP_EQ_INT(rate_take(&r, T0 + 2000), 0, "and passes after 2 s");
}

static void test_throttle(void)
{
    struct rate r;
    rate_init(&r, 10, T0);
    rate_on_throttle(&r, T0, 0);
    TAP_CHECK(fabs(r.current - 5) < 1e-9, "a 429 halves the rate");
    TAP_EQ_INT(rate_take(&r, T0), 0, "one request may still go");
    TAP_EQ_INT(rate_take(&r, T0), 200, "then at the halved pace");
    rate_on_throttle(&r, T0 + 500, 0);
    TAP_CHECK(fabs(r.current - 5) < 1e-9, "429s within a second halve the rate once");
    for (int i = 1; i <= 20; i++)
        rate_on_throttle(&r, T0 + 1000 * i, 0);
    TAP_CHECK(fabs(r.current - 0.2) < 1e-9, "the rate never drops below 0.2/s");

    rate_init(&r, 10, T0);
    rate_on_throttle(&r, T0, 3000);
    TAP_CHECK(fabs(r.current - 10) < 1e-9, "a 429 with Retry-After does not slow the rate");
    TAP_EQ_INT(rate_take(&r, T0), 3000, "Retry-After blocks every request");
    TAP_EQ_INT(rate_take(&r, T0 + 2500), 500, "until the block ends");
    TAP_EQ_INT(rate_take(&r, T0 + 3000), 0, "one request when the block ends");
    TAP_CHECK(rate_take(&r, T0 + 3000) > 0, "no burst saved up while blocked");
    rate_on_throttle(&r, T0 + 3000, 1000);
    TAP_EQ_INT(rate_take(&r, T0 + 3500), 500, "a later Retry-After blocks again");
    rate_on_throttle(&r, T0 + 3600, 100);
    TAP_EQ_INT(rate_take(&r, T0 + 3700), 300, "a shorter Retry-After does not shorten a block");
}

static void test_recovery(void)
{
    struct rate r;
    rate_init(&r, 10, T0);
    rate_on_throttle(&r, T0, 0);
    rate_on_throttle(&r, T0 + 1000, 0);
    TAP_CHECK(fabs(r.current - 2.5) < 1e-9, "two 429s a second apart: a quarter of the limit");
    rate_on_success(&r);
    TAP_CHECK(fabs(r.current - 3.0) < 1e-9, "a success adds limit/20");
    int steps = 1;
    while (r.current < r.limit && steps < 100) {
        rate_on_success(&r);
        steps++;
    }
    TAP_EQ_INT(steps, 15, "back to the limit after 15 successes");
    rate_on_success(&r);
    TAP_CHECK(fabs(r.current - 10) < 1e-9 && fabs(r.burst - 10) < 1e-9,
              "never above the limit; burst follows the rate");
    static int64_t at[400];
    int n = drive(&r, T0 + 100000, 10000, at, 400);
    TAP_CHECK(n >= 100 && n <= 111, "full rate again after recovery (%d in 10 s)", n);
}

/* Thirty 429s with Retry-After: 1, one after another, as a storm sends them:
 * each costs about its second, not ever longer waits. */
static void test_storm(void)
{
    struct rate r;
    rate_init(&r, 10, T0);
    int64_t now = T0;
    for (int i = 0; i < 30; i++) {
        int64_t wait;
        while ((wait = rate_take(&r, now)) > 0)
            now += wait;
        rate_on_throttle(&r, now, 1000);
    }
    while (rate_take(&r, now) > 0)
        now++;
    TAP_CHECK(now - T0 <= 31000, "30 refusals with Retry-After: 1 pass in about 30 s (%lld ms)",
              (long long)(now - T0));
    TAP_CHECK(fabs(r.current - 10) < 1e-9, "  and the rate is the configured one after it");

    rate_init(&r, 10, T0);
    for (int i = 0; i < 10; i++)
        rate_on_throttle(&r, T0 + 1000 * i, -1);
    TAP_CHECK(r.current < 0.5, "ten 429s without Retry-After, a second apart: near the floor");
    static int64_t at[400];
    int64_t stop = T0 + 9000;
    TAP_CHECK(rate_take(&r, stop + 1000) >= 0 && r.current < 1.0, "  still slow a second later");
    int n = drive(&r, stop + 10000, 10000, at, 400);
    TAP_CHECK(n >= 95, "  back to the full rate within 10 s of the last 429 (%d in the next 10 s)",
              n);
    rate_init(&r, 10, T0);
    rate_pause(&r, T0, 2000);
    rate_pause(&r, T0 + 100, 500);
    TAP_EQ_INT(rate_take(&r, T0 + 1000), 1000, "a shorter pause does not shorten one");
}

/* A team mount's share of the account's rate (rate_set_limit). */
static void test_share(void)
{
    struct rate r;
    static int64_t at[400];
    rate_init(&r, 30, T0);
    rate_set_limit(&r, 10);
    while (rate_take(&r, T0) == 0)
        ;
    int n = drive(&r, T0, 10000, at, 400);
    TAP_CHECK(n >= 95 && n <= 102, "a third of 30/s: about 10 a second (%d in 10 s)", n);
    rate_on_throttle(&r, T0 + 10000, -1);
    rate_set_limit(&r, 20);
    TAP_CHECK(fabs(r.current - 10) < 1e-9, "a halved rate keeps its proportion of a new limit");
    rate_set_limit(&r, 0);
    TAP_CHECK(r.limit >= 0.2 && r.current >= 0.2, "a share never goes below the floor");
}

int main(void)
{
    test_steady();
    test_throttle();
    test_recovery();
    test_storm();
    test_share();
    return tap_done();
}
