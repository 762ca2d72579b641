/* sched_hist_median_left: the time-left estimate behind MODEL/ID/progress. */
#include "sched.h"
#include "tap.h"

#include <stdlib.h>

static void test_empty(void)
{
    struct sched_hist h;
    sched_hist_init(&h);
    TAP_EQ_INT(sched_hist_median_left(NULL, 0), -1, "no histogram: unknown");
    TAP_EQ_INT(sched_hist_median_left(&h, 0), -1, "empty histogram: unknown");
}

/* Every task took about 10 s: the time left falls as the task runs, by about what passed. */
static void test_one_duration(void)
{
    struct sched_hist h;
    sched_hist_init(&h);
    for (int i = 0; i < 30; i++)
        sched_hist_observe(&h, 10000);
    int64_t at0 = sched_hist_median_left(&h, 0), at3 = sched_hist_median_left(&h, 3000);
    int64_t at6 = sched_hist_median_left(&h, 6000);
    TAP_CHECK(at0 > 8500 && at0 < 11500, "at the start about 10 s left (got %lld)", (long long)at0);
    TAP_CHECK(at3 < at0 && at6 < at3, "falls as it runs (%lld, %lld, %lld)", (long long)at0,
              (long long)at3, (long long)at6);
    TAP_CHECK(llabs((at0 - at6) - 6000) < 1000, "by about the time that passed (%lld)",
              (long long)(at0 - at6));
    TAP_CHECK(sched_hist_median_left(&h, 10300) >= 0, "inside the last bucket: still an estimate");
    TAP_EQ_INT(sched_hist_median_left(&h, 60000), -1, "past every duration learned: unknown");
}

/* Half the tasks take 2 s, half 20 s: one still running at 5 s is one of the slow ones. */
static void test_conditional(void)
{
    struct sched_hist h;
    sched_hist_init(&h);
    for (int i = 0; i < 40; i++)
        sched_hist_observe(&h, i % 2 ? 2000 : 20000);
    int64_t at0 = sched_hist_median_left(&h, 0), at5 = sched_hist_median_left(&h, 5000);
    TAP_CHECK(at0 > 1500 && at0 < 21000, "at the start between the two (got %lld)", (long long)at0);
    TAP_CHECK(at5 > 13000 && at5 < 17000, "at 5 s: the slow ones' 15 s left (got %lld)",
              (long long)at5);
}

int main(void)
{
    test_empty();
    test_one_duration();
    test_conditional();
    return tap_done();
}
