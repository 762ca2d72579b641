/* Pure polling schedules (SPEC 5): when a task's next status poll is due,
 * when readers give up (ETIMEDOUT), and the slow polling that follows for
 * 24 h. Deterministic given its inputs and the caller's RNG state. */
#ifndef GENFS_SCHED_H
#define GENFS_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sched_kind { SCHED_FIXED, SCHED_ADAPTIVE, SCHED_EXPONENTIAL, SCHED_LEARNED };

/* Milliseconds, as in the seed guide's per-model table. */
struct sched_profile {
    int64_t initial_ms;  /* first poll this long after submit */
    int64_t interval_ms; /* then every interval */
    int64_t max_ms;      /* readers give up after this long */
    int64_t late_ms; /* past max_ms: one poll per late_ms for 24 h (0: SCHED_SLOW_INTERVAL_MS) */
    /* learned only: the user set initial_ms, so no poll comes earlier (a
     * provider that bills or limits early polls); otherwise learned polls
     * where its histogram says, initial_ms unused. */
    bool initial_is_floor;
    /* interval_ms is the fallback's guess for a model nobody described:
     * once learned has a histogram, its tail bound follows the histogram. */
    bool interval_is_guess;
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
 * 10000/5000/300000 with interval_is_guess). Never initial_is_floor. */
void sched_profile_default(const char *model, struct sched_profile *out);

/* Time (ms) after which readers of result get ETIMEDOUT:
 * fixed/adaptive/learned: submit + profile max; exponential: submit + 10 min. */
int64_t sched_deadline(enum sched_kind k, const struct sched_profile *p,
                       const struct sched_task *t);

/* Absolute due time of the next status poll, jitter included (+-10% of the
 * gap, drawn from *rng which is advanced), never earlier than now_ms.
 * fixed: every 3 s from submit. adaptive: initial, then every interval.
 * exponential: 2 s, then x1.5 per poll, capped at 30 s. learned: as
 * adaptive here; sched_next_due_learned is the learned schedule proper.
 * Past the deadline: every SCHED_SLOW_INTERVAL_MS after the last poll,
 * until submit + SCHED_LATE_WINDOW_MS, then SCHED_NEVER. */
int64_t sched_next_due(enum sched_kind k, const struct sched_profile *p, const struct sched_task *t,
                       int64_t now_ms, uint64_t *rng);

/* ---- learned schedule (issue 8) ----
 *
 * Per model, a log-spaced histogram of observed completion times: bucket i
 * holds durations in [MIN * RATIO^i, MIN * RATIO^(i+1)) ms (bucket 0 also
 * takes anything shorter, the last anything longer): 96 buckets of 13% from
 * 100 ms to about 3.4 h, so one layout serves 1 s images and hour-long videos
 * and a --time-scale'd simulator alike. Before each observation every weight
 * is multiplied by SCHED_HIST_DECAY: recent tasks weigh more (half-life about
 * 34 tasks, about 100 effective samples), so a model whose speed drifts is
 * followed within a few dozen tasks. Plain data, no pointers: the engine keeps
 * one per model and persists it with sched_hist_encode. */
#define SCHED_HIST_BUCKETS 96
#define SCHED_HIST_MIN_MS 100.0
#define SCHED_HIST_RATIO 1.13
#define SCHED_HIST_DECAY 0.98
#define SCHED_HIST_READY 20 /* observations before learned leaves adaptive */

struct sched_hist {
    uint32_t count;               /* observations so far (not decayed) */
    double w[SCHED_HIST_BUCKETS]; /* decayed weights; sum < 1/(1-DECAY) */
};

void sched_hist_init(struct sched_hist *h);

/* One finished task took duration_ms from submit to completion. Best is the
 * provider's own completeTime - createTime when it gives them: the time genfs
 * noticed is late by the detection lag and would teach the schedule to poll
 * late. Durations <= 0 are ignored. */
void sched_hist_observe(struct sched_hist *h, int64_t duration_ms);

/* True once SCHED_HIST_READY tasks were observed. */
bool sched_hist_ready(const struct sched_hist *h);

/* Duration (ms) below which a fraction q (clamped to [0, 1]) of the weight
 * lies, interpolated log-linearly inside the bucket; 0 when empty. */
int64_t sched_hist_quantile(const struct sched_hist *h, double q);

/* Text form, one line: "v1 COUNT" then " I:W" for each nonzero bucket I
 * (0..95, increasing) with its weight W (%.17g, so decode gives back the
 * exact doubles), then "\n". E.g. "v1 3 40:0.9604 47:1\n". Returns the
 * length written (NUL not counted) or -ENOSPC if len is too small. */
int sched_hist_encode(const struct sched_hist *h, char *buf, size_t len);

/* Parses sched_hist_encode's text (the final newline optional). 0, or
 * -EINVAL for anything else (bad version, numbers, order, range, weights that
 * decay could not produce, trailing bytes), leaving *h untouched. */
int sched_hist_decode(struct sched_hist *h, const char *text);

/* Readers' deadline for learned: submit + max(profile max, 3 x the learned
 * p99) so slow-but-normal tasks of a model do not time out; the profile's
 * max while h is NULL or not ready. */
int64_t sched_deadline_learned(const struct sched_profile *p, const struct sched_hist *h,
                               const struct sched_task *t);

#define SCHED_EXPLORE_FIRST_MS INT64_C(1000) /* exploration's first poll */
#define SCHED_TAIL_SHARE 0.002               /* tasks a gap may leave waiting past the bound */

/* The learned schedule (issues 8 and 20).
 *
 * Exploration, while h is NULL or not ready (a model genfs has not seen
 * finish SCHED_HIST_READY times): first poll SCHED_EXPLORE_FIRST_MS after
 * the submit, then gaps of half the time elapsed (at least 250 ms), at most
 * the profile's interval: a new model's short tasks are noticed within
 * about a second, long ones at adaptive's pace, and these tasks train h.
 *
 * Once ready, polls are placed where the model's tasks end: an optimal
 * inspection plan on the (smoothed) histogram minimising expected detection
 * lag + lambda x expected polls, lambda chosen (from a ladder around the
 * seed exponential backoff's own lag per poll on the same distribution) to
 * minimise the plan's polls / exponential's + its lag / exponential's. The
 * plan bounds the tail: no gap may leave more than SCHED_TAIL_SHARE of the
 * tasks unnoticed for longer than 1.5 x the interval (the interval from
 * the histogram, median / 5, when it is only a guess; +-10% jitter aside):
 * the first poll may skip the few tasks that end early, and once tasks have
 * begun to end no gap is longer than the bound. The next poll is the plan's
 * best continuation from the time elapsed at the last poll, so a restart
 * resumes from (submit, last_poll, polls) alone. Gaps are at least
 * max(250 ms, min(3% of elapsed, the bound)); past the learned p99.5 a gentle exponential
 * (gap = elapsed / 4, at most the tail bound).
 *
 * Both phases: with initial_is_floor no poll before submit + initial_ms.
 * Jitter, deadline (as sched_deadline_learned) and slow polling as
 * sched_next_due. Costs a few tens of microseconds per call. */
int64_t sched_next_due_learned(const struct sched_profile *p, const struct sched_hist *h,
                               const struct sched_task *t, int64_t now_ms, uint64_t *rng);

/* The median time left (ms) of a task of this model that has run elapsed_ms:
 * the median of the learned durations given that they exceed elapsed_ms,
 * minus elapsed_ms (MODEL/ID/progress). -1 when h is NULL or empty, or when
 * elapsed_ms is past (nearly) every duration learned. */
int64_t sched_hist_median_left(const struct sched_hist *h, int64_t elapsed_ms);

/* xorshift64* step; never returns 0 state. Exposed for tests and jitter users. */
uint64_t sched_rand(uint64_t *rng);

#endif
