#include "sched.h"
#include "tap.h"

#include <errno.h>

#define T0 INT64_C(1700000000000)

/* Polls a task the way the engine does, right at each due time, and checks
 * each due time against the nominal gap and its +-10% jitter. */
static void check_sequence(enum sched_kind k, const char *model, const int64_t *gaps, int n,
                           const char *label)
{
    struct sched_profile p;
    sched_profile_default(model, &p);
    struct sched_task t = {.submit_ms = T0};
    uint64_t rng = 12345;
    int64_t now = T0, base = T0;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        int64_t due = sched_next_due(k, &p, &t, now, &rng);
        int64_t lo = base + gaps[i] - gaps[i] / 10, hi = base + gaps[i] + gaps[i] / 10;
        if (due < lo || due > hi) {
            printf("# %s poll %d: due %+lld, want [%+lld, %+lld]\n", label, i,
                   (long long)(due - T0), (long long)(lo - T0), (long long)(hi - T0));
            ok = 0;
        }
        now = base = t.last_poll_ms = due;
        t.polls++;
    }
    TAP_CHECK(ok, "%s: due times follow the schedule within +-10%%", label);
}

/* Polls on time until the schedule says never; reports the first slow poll. */
static void run_to_end(enum sched_kind k, const char *model, int64_t *first_slow_gap,
                       int64_t *last_due, int64_t *max_normal, int *slow_polls, int *min_slow_ok)
{
    struct sched_profile p;
    sched_profile_default(model, &p);
    struct sched_task t = {.submit_ms = T0};
    int64_t deadline = sched_deadline(k, &p, &t);
    uint64_t rng = 99;
    int64_t now = T0, due;
    *first_slow_gap = -1;
    *max_normal = 0;
    *slow_polls = 0;
    *min_slow_ok = 1;
    *last_due = 0;
    while ((due = sched_next_due(k, &p, &t, now, &rng)) != SCHED_NEVER) {
        int64_t gap = due - (t.polls ? t.last_poll_ms : T0);
        if (due <= deadline) {
            *max_normal = due;
        } else {
            if (*first_slow_gap < 0)
                *first_slow_gap = gap;
            if (gap < SCHED_SLOW_INTERVAL_MS || gap > SCHED_SLOW_INTERVAL_MS * 11 / 10)
                *min_slow_ok = 0;
            (*slow_polls)++;
        }
        *last_due = due;
        now = t.last_poll_ms = due;
        t.polls++;
    }
}

static void test_sequences(void)
{
    int64_t fixed[] = {3000, 3000, 3000, 3000, 3000, 3000};
    check_sequence(SCHED_FIXED, "flux-2", fixed, 6, "fixed");
    int64_t adaptive_nb[] = {5000, 3000, 3000, 3000, 3000};
    check_sequence(SCHED_ADAPTIVE, "nano-banana", adaptive_nb, 5, "adaptive nano-banana");
    int64_t adaptive_sora[] = {60000, 15000, 15000, 15000};
    check_sequence(SCHED_ADAPTIVE, "sora-2", adaptive_sora, 4, "adaptive sora-2");
    int64_t learned[] = {10000, 5000, 5000};
    check_sequence(SCHED_LEARNED, "some/unknown-model", learned, 3, "learned falls back");
    int64_t expo[] = {2000, 3000, 4500, 6750, 10125, 15187, 22781, 30000, 30000, 30000};
    check_sequence(SCHED_EXPONENTIAL, "suno", expo, 10, "exponential");
}

static void test_profiles(void)
{
    static const struct {
        const char *model;
        int64_t i, v, m;
    } want[] = {
        {"nano-banana", 5000, 3000, 120000}, {"flux-2", 10000, 5000, 180000},
        {"sora-2", 60000, 15000, 600000},    {"veo-3-1", 45000, 10000, 480000},
        {"suno", 30000, 10000, 300000},      {"fal-ai/flux/dev", 10000, 5000, 300000},
        {NULL, 10000, 5000, 300000},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct sched_profile p;
        sched_profile_default(want[i].model, &p);
        TAP_CHECK(p.initial_ms == want[i].i && p.interval_ms == want[i].v && p.max_ms == want[i].m,
                  "profile of %s", want[i].model ? want[i].model : "(null)");
    }
}

static void test_deadlines(void)
{
    struct sched_profile p;
    struct sched_task t = {.submit_ms = T0, .last_poll_ms = T0 + 50000, .polls = 7};
    sched_profile_default("veo-3-1", &p);
    TAP_EQ_INT(sched_deadline(SCHED_FIXED, &p, &t) - T0, 480000, "fixed deadline = profile max");
    TAP_EQ_INT(sched_deadline(SCHED_ADAPTIVE, &p, &t) - T0, 480000, "adaptive deadline");
    TAP_EQ_INT(sched_deadline(SCHED_LEARNED, &p, &t) - T0, 480000, "learned deadline");
    TAP_EQ_INT(sched_deadline(SCHED_EXPONENTIAL, &p, &t) - T0, 600000, "exponential: 10 min");
    sched_profile_default("nano-banana", &p);
    TAP_EQ_INT(sched_deadline(SCHED_ADAPTIVE, &p, &t) - T0, 120000, "nano-banana deadline");
    TAP_EQ_INT(sched_deadline(SCHED_EXPONENTIAL, &p, &t) - T0, 600000,
               "exponential ignores the profile");
}

static void test_slow_and_never(void)
{
    const enum sched_kind kinds[] = {SCHED_FIXED, SCHED_ADAPTIVE, SCHED_EXPONENTIAL, SCHED_LEARNED};
    for (size_t i = 0; i < 4; i++) {
        struct sched_profile p;
        sched_profile_default("nano-banana", &p);
        struct sched_task t0 = {.submit_ms = T0};
        int64_t deadline = sched_deadline(kinds[i], &p, &t0);
        int64_t first_slow, last, max_normal;
        int slow, slow_ok;
        run_to_end(kinds[i], "nano-banana", &first_slow, &last, &max_normal, &slow, &slow_ok);
        const char *name = sched_kind_name(kinds[i]);
        TAP_CHECK(max_normal < deadline && max_normal > deadline - 40000,
                  "%s: normal polls run up to the deadline (last at %+lld)", name,
                  (long long)(max_normal - T0));
        TAP_CHECK(first_slow >= SCHED_SLOW_INTERVAL_MS, "%s: first slow poll 5 min after the last",
                  name);
        TAP_CHECK(slow_ok, "%s: slow polls every 5 to 5.5 min", name);
        TAP_CHECK(slow >= 240 && slow <= 288, "%s: about 24 h of slow polls (%d)", name, slow);
        TAP_CHECK(last < T0 + SCHED_LATE_WINDOW_MS, "%s: nothing after 24 h", name);
    }
    struct sched_profile p;
    sched_profile_default("suno", &p);
    uint64_t rng = 5;
    struct sched_task t = {
        .submit_ms = T0, .last_poll_ms = T0 + SCHED_LATE_WINDOW_MS - 1000, .polls = 300};
    TAP_EQ_INT(sched_next_due(SCHED_ADAPTIVE, &p, &t, t.last_poll_ms + 10, &rng), SCHED_NEVER,
               "NEVER when the next slow poll would pass 24 h");
    t.last_poll_ms = T0 + 400000;
    TAP_EQ_INT(sched_next_due(SCHED_ADAPTIVE, &p, &t, T0 + SCHED_LATE_WINDOW_MS, &rng), SCHED_NEVER,
               "NEVER when restored after 24 h");
}

static void test_restart(void)
{
    struct sched_profile p;
    sched_profile_default("sora-2", &p);
    uint64_t rng = 7;

    /* Stored mid-schedule, restarted before the next due time: resumes it. */
    struct sched_task t = {.submit_ms = T0, .last_poll_ms = T0 + 90000, .polls = 3};
    int64_t due = sched_next_due(SCHED_ADAPTIVE, &p, &t, T0 + 91000, &rng);
    TAP_CHECK(due >= T0 + 90000 + 13500 && due <= T0 + 90000 + 16500,
              "adaptive resumes at last poll + interval (%+lld)", (long long)(due - T0));
    t = (struct sched_task){.submit_ms = T0, .last_poll_ms = T0 + 200000, .polls = 8};
    due = sched_next_due(SCHED_EXPONENTIAL, &p, &t, T0 + 200100, &rng);
    TAP_CHECK(due >= T0 + 200000 + 27000 && due <= T0 + 200000 + 33000,
              "exponential resumes at its capped gap, not at 2 s (%+lld)", (long long)(due - T0));
    t = (struct sched_task){.submit_ms = T0, .last_poll_ms = T0 + 3000, .polls = 3};
    due = sched_next_due(SCHED_EXPONENTIAL, &p, &t, T0 + 3100, &rng);
    TAP_CHECK(due >= T0 + 3000 + 6075 && due <= T0 + 3000 + 7425,
              "exponential poll 3 gap is 2000*1.5^3 (%+lld)", (long long)(due - T0));

    /* Overdue while the daemon was down: now plus a little, one poll, no burst. */
    int64_t now = T0 + 150000;
    t = (struct sched_task){.submit_ms = T0, .last_poll_ms = T0 + 75000, .polls = 2};
    due = sched_next_due(SCHED_ADAPTIVE, &p, &t, now, &rng);
    TAP_CHECK(due >= now && due <= now + 1500, "overdue task is due now (%+lld ms)",
              (long long)(due - now));
    t.last_poll_ms = due;
    t.polls++;
    int64_t next = sched_next_due(SCHED_ADAPTIVE, &p, &t, due + 200, &rng);
    TAP_CHECK(next >= due + 13500, "then back to the interval, not a catch-up burst");

    /* Many restored tasks that are all overdue are spread a little. */
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int i = 0; i < 50; i++) {
        t = (struct sched_task){.submit_ms = T0, .last_poll_ms = T0 + 60000, .polls = 1};
        due = sched_next_due(SCHED_ADAPTIVE, &p, &t, now, &rng);
        lo = due < lo ? due : lo;
        hi = due > hi ? due : hi;
    }
    TAP_CHECK(lo >= now && hi > lo, "overdue tasks are spread, never before now");

    /* Restored after the deadline with a poll long ago: slow polling, due now. */
    now = T0 + 3600000;
    t = (struct sched_task){.submit_ms = T0, .last_poll_ms = T0 + 500000, .polls = 20};
    due = sched_next_due(SCHED_ADAPTIVE, &p, &t, now, &rng);
    TAP_CHECK(due >= now && due <= now + 30000, "late task restored: polled soon");
    t.last_poll_ms = due;
    t.polls++;
    next = sched_next_due(SCHED_ADAPTIVE, &p, &t, due + 100, &rng);
    TAP_CHECK(next >= due + SCHED_SLOW_INTERVAL_MS, "late task then slow");
}

static void test_jitter_and_rng(void)
{
    struct sched_profile p;
    sched_profile_default("flux-2", &p);
    struct sched_task t = {.submit_ms = T0, .last_poll_ms = T0 + 10000, .polls = 1};
    uint64_t a = 42, b = 42;
    int same = 1, spread = 0, within = 1;
    int64_t first = sched_next_due(SCHED_ADAPTIVE, &p, &t, T0 + 10000, &a);
    sched_next_due(SCHED_ADAPTIVE, &p, &t, T0 + 10000, &b);
    for (int i = 0; i < 1000; i++) {
        int64_t da = sched_next_due(SCHED_ADAPTIVE, &p, &t, T0 + 10000, &a);
        int64_t db = sched_next_due(SCHED_ADAPTIVE, &p, &t, T0 + 10000, &b);
        same &= da == db;
        spread |= da != first;
        within &= da >= T0 + 10000 + 4500 && da <= T0 + 10000 + 5500;
    }
    TAP_CHECK(same, "same seed, same due times");
    TAP_CHECK(spread, "jitter varies the due time");
    TAP_CHECK(within, "jitter stays within +-10%% of the gap");

    uint64_t z = 0;
    uint64_t r1 = sched_rand(&z);
    TAP_CHECK(z != 0 && r1 != 0, "a zero rng state is reseeded");
    uint64_t s = 1, prev = 0;
    int distinct = 1;
    for (int i = 0; i < 100; i++) {
        uint64_t r = sched_rand(&s);
        distinct &= r != prev && s != 0;
        prev = r;
    }
    TAP_CHECK(distinct, "sched_rand advances");

    /* now_ms later than the jittered time: never earlier than now. */
    int64_t now = T0 + 10000 + 5400;
    int never_before = 1;
    for (int i = 0; i < 200; i++)
        never_before &= sched_next_due(SCHED_ADAPTIVE, &p, &t, now, &a) >= now;
    TAP_CHECK(never_before, "due time never before now");
}

static void test_names(void)
{
    const char *names[] = {"fixed", "adaptive", "exponential", "learned"};
    for (int i = 0; i < 4; i++) {
        enum sched_kind k = SCHED_FIXED;
        TAP_EQ_INT(sched_kind_parse(names[i], &k), 0, names[i]);
        TAP_EQ_STR(sched_kind_name(k), names[i], "kind name round trip");
    }
    enum sched_kind k;
    TAP_EQ_INT(sched_kind_parse("Fixed", &k), -EINVAL, "unknown kind refused");
    TAP_EQ_INT(sched_kind_parse("", &k), -EINVAL, "empty kind refused");
    TAP_EQ_INT(sched_kind_parse(NULL, &k), -EINVAL, "NULL kind refused");
}

int main(void)
{
    test_sequences();
    test_profiles();
    test_deadlines();
    test_slow_and_never();
    test_restart();
    test_jitter_and_rng();
    test_names();
    return tap_done();
}
