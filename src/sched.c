/* Polling schedules (SPEC 5). Everything is derived from (submit, last poll,
 * poll count) so that a task restored after a restart resumes where its
 * schedule was instead of starting over. */
#include "sched.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define SCHED_FIXED_GAP_MS INT64_C(3000)
#define SCHED_EXP_FIRST_MS 2000.0
#define SCHED_EXP_FACTOR 1.5
#define SCHED_EXP_CAP_MS 30000.0
#define SCHED_EXP_MAX_MS INT64_C(600000)

static const char *const sched_kind_names[] = {
    [SCHED_FIXED] = "fixed",
    [SCHED_ADAPTIVE] = "adaptive",
    [SCHED_EXPONENTIAL] = "exponential",
    [SCHED_LEARNED] = "learned",
};

static const struct {
    const char *model;
    struct sched_profile profile;
} sched_builtin[] = {
    {"nano-banana", {5000, 3000, 120000}}, {"flux-2", {10000, 5000, 180000}},
    {"sora-2", {60000, 15000, 600000}},    {"veo-3-1", {45000, 10000, 480000}},
    {"suno", {30000, 10000, 300000}},
};

static const struct sched_profile sched_fallback = {10000, 5000, 300000};

int sched_kind_parse(const char *name, enum sched_kind *out)
{
    if (!name)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(sched_kind_names) / sizeof(sched_kind_names[0]); i++) {
        if (strcmp(name, sched_kind_names[i]) == 0) {
            *out = (enum sched_kind)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *sched_kind_name(enum sched_kind k)
{
    if ((unsigned)k >= sizeof(sched_kind_names) / sizeof(sched_kind_names[0]))
        return "unknown";
    return sched_kind_names[k];
}

void sched_profile_default(const char *model, struct sched_profile *out)
{
    *out = sched_fallback;
    if (!model)
        return;
    for (size_t i = 0; i < sizeof(sched_builtin) / sizeof(sched_builtin[0]); i++) {
        if (strcmp(model, sched_builtin[i].model) == 0) {
            *out = sched_builtin[i].profile;
            return;
        }
    }
}

int64_t sched_deadline(enum sched_kind k, const struct sched_profile *p, const struct sched_task *t)
{
    if (k == SCHED_EXPONENTIAL)
        return t->submit_ms + SCHED_EXP_MAX_MS;
    return t->submit_ms + p->max_ms;
}

uint64_t sched_rand(uint64_t *rng)
{
    /* A zero state would stay zero forever: reseed from a fixed odd constant. */
    if (*rng == 0)
        *rng = UINT64_C(0x9E3779B97F4A7C15);
    uint64_t x = *rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* Gap (ms) between poll number `polls` (0 = the first) and what precedes it:
 * the submit for the first poll, the previous poll for the others. */
static int64_t sched_gap(enum sched_kind k, const struct sched_profile *p, uint32_t polls)
{
    switch (k) {
    case SCHED_FIXED:
        return SCHED_FIXED_GAP_MS;
    case SCHED_EXPONENTIAL: {
        double gap = SCHED_EXP_FIRST_MS * pow(SCHED_EXP_FACTOR, (double)polls);
        return (int64_t)fmin(gap, SCHED_EXP_CAP_MS);
    }
    case SCHED_ADAPTIVE:
    case SCHED_LEARNED:
        break;
    }
    return polls == 0 ? p->initial_ms : p->interval_ms;
}

/* Uniform in [lo, hi] (lo <= hi); modulo bias is irrelevant at these sizes. */
static int64_t sched_uniform(uint64_t *rng, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(sched_rand(rng) % (uint64_t)(hi - lo + 1));
}

int64_t sched_next_due(enum sched_kind k, const struct sched_profile *p, const struct sched_task *t,
                       int64_t now_ms, uint64_t *rng)
{
    int64_t base = t->polls > 0 && t->last_poll_ms > t->submit_ms ? t->last_poll_ms : t->submit_ms;
    int64_t gap = sched_gap(k, p, t->polls);
    if (gap < 1)
        gap = 1;
    int64_t due;
    if (base + gap < sched_deadline(k, p, t)) {
        due = base + sched_uniform(rng, gap - gap / 10, gap + gap / 10);
    } else {
        /* Given up: jitter only upwards so slow polls stay at most one per
         * SCHED_SLOW_INTERVAL_MS, as SPEC 5 promises the provider. */
        gap = SCHED_SLOW_INTERVAL_MS;
        int64_t end = t->submit_ms + SCHED_LATE_WINDOW_MS;
        if (base + gap >= end || now_ms >= end)
            return SCHED_NEVER;
        due = base + sched_uniform(rng, gap, gap + gap / 10);
    }
    /* Overdue, e.g. the daemon was down: poll now, spread by a little jitter
     * so that many restored tasks do not all fire in the same millisecond. */
    if (due < now_ms)
        due = now_ms + sched_uniform(rng, 0, gap / 10);
    return due;
}
