/* Pure polling schedules (SPEC 5): when a task's next status poll is due,
 * when readers give up (ETIMEDOUT), and the slow polling that follows for
 * 24 h. Deterministic given its inputs and the caller's RNG state. */
#ifndef GENFS_SCHED_H
#define GENFS_SCHED_H

#include <stdbool.h>
#include <stdint.h>

enum sched_kind { SCHED_FIXED, SCHED_ADAPTIVE, SCHED_EXPONENTIAL, SCHED_LEARNED };

/* Milliseconds, as in the seed guide's per-model table. */
struct sched_profile {
    int64_t initial_ms;  /* first poll this long after submit */
    int64_t interval_ms; /* then every interval */
    int64_t max_ms;      /* readers give up after this long */
};

/* What the scheduler needs to know of one task. Times are ms on any
 * monotonic-or-wall clock, as long as the caller is consistent. */
struct sched_task {
    int64_t submit_ms;    /* when the provider accepted it */
    int64_t last_poll_ms; /* when the last status poll was sent; 0 = none yet */
    uint32_t polls;       /* status polls sent so far */
};

#define SCHED_NEVER INT64_C(-1)
#define SCHED_SLOW_INTERVAL_MS INT64_C(300000) /* after give-up: every 5 min */
#define SCHED_LATE_WINDOW_MS INT64_C(86400000) /* ... for 24 h after submit */

/* "fixed" | "adaptive" | "exponential" | "learned" -> 0, else -EINVAL. */
int sched_kind_parse(const char *name, enum sched_kind *out);
const char *sched_kind_name(enum sched_kind k);

/* The built-in profile for a model id (seed guide table; unknown models get
 * 10000/5000/300000). */
void sched_profile_default(const char *model, struct sched_profile *out);

/* Time (ms) after which readers of result get ETIMEDOUT:
 * fixed/adaptive/learned: submit + profile max; exponential: submit + 10 min. */
int64_t sched_deadline(enum sched_kind k, const struct sched_profile *p,
                       const struct sched_task *t);

/* Absolute due time of the next status poll, jitter included (+-10% of the
 * gap, drawn from *rng which is advanced), never earlier than now_ms.
 * fixed: every 3 s from submit. adaptive: initial, then every interval.
 * exponential: 2 s, then x1.5 per poll, capped at 30 s. learned: as
 * adaptive until a learned model exists (issue 8).
 * Past the deadline: every SCHED_SLOW_INTERVAL_MS after the last poll,
 * until submit + SCHED_LATE_WINDOW_MS, then SCHED_NEVER. */
int64_t sched_next_due(enum sched_kind k, const struct sched_profile *p, const struct sched_task *t,
                       int64_t now_ms, uint64_t *rng);

/* xorshift64* step; never returns 0 state. Exposed for tests and jitter users. */
uint64_t sched_rand(uint64_t *rng);

#endif
