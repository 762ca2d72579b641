/* Polling schedules (SPEC 5). Everything is derived from (submit, last poll,
 * poll count) so that a task restored after a restart resumes where its
 * schedule was instead of starting over. */
#include "sched.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
    {"nano-banana", {5000, 3000, 120000, SCHED_SLOW_INTERVAL_MS, false, false}},
    {"flux-2", {10000, 5000, 180000, SCHED_SLOW_INTERVAL_MS, false, false}},
    {"sora-2", {60000, 15000, 600000, SCHED_SLOW_INTERVAL_MS, false, false}},
    {"veo-3-1", {45000, 10000, 480000, SCHED_SLOW_INTERVAL_MS, false, false}},
    {"suno", {30000, 10000, 300000, SCHED_SLOW_INTERVAL_MS, false, false}},
};

static const struct sched_profile sched_fallback = {10000, 5000, 300000, SCHED_SLOW_INTERVAL_MS,
                                                    false, true};

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

/* The task's last poll, or its submit before the first poll. */
static int64_t sched_base(const struct sched_task *t)
{
    return t->polls > 0 && t->last_poll_ms > t->submit_ms ? t->last_poll_ms : t->submit_ms;
}

/* Due time for a poll `gap` ms after base, or slow polling past deadline. */
static int64_t sched_due_from(int64_t base, int64_t gap, int64_t deadline, int64_t late_ms,
                              const struct sched_task *t, int64_t now_ms, uint64_t *rng)
{
    if (gap < 1)
        gap = 1;
    int64_t due;
    if (base + gap < deadline) {
        due = base + sched_uniform(rng, gap - gap / 10, gap + gap / 10);
    } else {
        /* Given up: jitter only upwards so slow polls stay at most one per
         * late interval (SCHED_SLOW_INTERVAL_MS unless configured), as SPEC 5
         * promises the provider. */
        gap = late_ms > 0 ? late_ms : SCHED_SLOW_INTERVAL_MS;
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

int64_t sched_next_due(enum sched_kind k, const struct sched_profile *p, const struct sched_task *t,
                       int64_t now_ms, uint64_t *rng)
{
    return sched_due_from(sched_base(t), sched_gap(k, p, t->polls), sched_deadline(k, p, t),
                          p->late_ms, t, now_ms, rng);
}

/* ---- learned schedule ---- */

#define SCHED_LEARNED_MIN_GAP_MS 250.0
#define SCHED_LEARNED_MIN_GAP_FRAC 0.03
/* The tail bound: 1.5 intervals, adaptive's worst lag (one interval) and
 * half again; a guessed interval is replaced by the learned median / 5
 * (about what the seed table gives its models). */
#define SCHED_TAIL_INTERVALS 1.5
#define SCHED_GUESS_MEDIAN_DIV 5.0
#define SCHED_LEARNED_HORIZON_Q 0.995
/* Grid points of the plan: up to four per bucket (each about 3% apart), fewer
 * when the distribution is wide, so one call stays cheap. */
#define SCHED_PLAN_MAX 200
#define SCHED_PLAN_SUB 4
#define SCHED_PLAN_LAG_DOUBT 1.2

void sched_hist_init(struct sched_hist *h)
{
    memset(h, 0, sizeof(*h));
}

static double sched_hist_edge(double i)
{
    return SCHED_HIST_MIN_MS * pow(SCHED_HIST_RATIO, i);
}

static int sched_hist_bucket(double ms)
{
    if (!(ms >= SCHED_HIST_MIN_MS))
        return 0;
    double i = floor(log(ms / SCHED_HIST_MIN_MS) / log(SCHED_HIST_RATIO));
    return i >= SCHED_HIST_BUCKETS - 1 ? SCHED_HIST_BUCKETS - 1 : (int)i;
}

void sched_hist_observe(struct sched_hist *h, int64_t duration_ms)
{
    if (duration_ms <= 0)
        return;
    for (int i = 0; i < SCHED_HIST_BUCKETS; i++)
        h->w[i] *= SCHED_HIST_DECAY;
    h->w[sched_hist_bucket((double)duration_ms)] += 1.0;
    if (h->count < UINT32_MAX)
        h->count++;
}

bool sched_hist_ready(const struct sched_hist *h)
{
    return h && h->count >= SCHED_HIST_READY;
}

static double sched_weights_total(const double *w)
{
    double sum = 0;
    for (int i = 0; i < SCHED_HIST_BUCKETS; i++)
        sum += w[i];
    return sum;
}

/* Quantile of a weight array; durations are spread log-uniformly inside a
 * bucket, which is what a log-spaced layout assumes anyway. */
static double sched_weights_quantile(const double *w, double q)
{
    double total = sched_weights_total(w);
    if (!(total > 0))
        return 0;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    double want = q * total, acc = 0;
    int last = 0;
    for (int i = 0; i < SCHED_HIST_BUCKETS; i++) {
        if (w[i] <= 0)
            continue;
        if (acc + w[i] >= want)
            return sched_hist_edge(i + (want - acc) / w[i]);
        acc += w[i];
        last = i;
    }
    return sched_hist_edge(last + 1);
}

int64_t sched_hist_quantile(const struct sched_hist *h, double q)
{
    return (int64_t)llround(sched_weights_quantile(h->w, q));
}

int sched_hist_encode(const struct sched_hist *h, char *buf, size_t len)
{
    size_t off = 0;
    int n = snprintf(buf, len, "v1 %" PRIu32, h->count);
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    off = (size_t)n;
    for (int i = 0; i < SCHED_HIST_BUCKETS; i++) {
        if (!(h->w[i] > 0))
            continue;
        n = snprintf(buf + off, len - off, " %d:%.17g", i, h->w[i]);
        if (n < 0 || (size_t)n >= len - off)
            return -ENOSPC;
        off += (size_t)n;
    }
    if (off + 2 > len)
        return -ENOSPC;
    buf[off++] = '\n';
    buf[off] = '\0';
    return (int)off;
}

/* Decimal digits only (no sign, no spaces: strtoul would take both), at most
 * max_digits of them. */
static const char *sched_parse_uint(const char *s, int max_digits, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;
    while (*s >= '0' && *s <= '9') {
        if (++n > max_digits)
            return NULL;
        v = v * 10 + (uint64_t)(*s++ - '0');
    }
    if (n == 0)
        return NULL;
    *out = v;
    return s;
}

int sched_hist_decode(struct sched_hist *h, const char *text)
{
    /* Decay keeps every weight, and their sum, below 1/(1-DECAY); anything
     * above (with rounding room) was not written by sched_hist_encode. */
    const double bound = 1.0 / (1.0 - SCHED_HIST_DECAY) + 1e-6;
    if (!text || strncmp(text, "v1 ", 3) != 0)
        return -EINVAL;
    struct sched_hist tmp;
    sched_hist_init(&tmp);
    uint64_t count;
    const char *s = sched_parse_uint(text + 3, 10, &count);
    if (!s || count > UINT32_MAX)
        return -EINVAL;
    tmp.count = (uint32_t)count;
    int prev = -1;
    double sum = 0;
    for (;;) {
        if (*s == '\0' || (s[0] == '\n' && s[1] == '\0'))
            break;
        if (*s != ' ')
            return -EINVAL;
        uint64_t idx;
        s = sched_parse_uint(s + 1, 3, &idx);
        if (!s || idx >= SCHED_HIST_BUCKETS || (int)idx <= prev || *s != ':')
            return -EINVAL;
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return -EINVAL; /* no sign, space, "inf" or "nan" */
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno == ERANGE || !isfinite(v) || !(v > 0) || v > bound)
            return -EINVAL;
        s = end;
        sum += v;
        tmp.w[idx] = v;
        prev = (int)idx;
    }
    if (sum > bound || (tmp.count == 0 && prev >= 0))
        return -EINVAL;
    *h = tmp;
    return 0;
}

int64_t sched_deadline_learned(const struct sched_profile *p, const struct sched_hist *h,
                               const struct sched_task *t)
{
    int64_t max = p->max_ms;
    if (sched_hist_ready(h)) {
        int64_t slow = 3 * sched_hist_quantile(h, 0.99);
        if (slow > max)
            max = slow;
    }
    return t->submit_ms + max;
}

/* The plan: candidate poll times (ms since submit) g[0] = 0 < g[1] < ... <
 * g[n-1] = horizon, the share of tasks done by each (m) and the matching
 * first moment (x), and cost[i], the least expected lag + lambda x polls
 * still to come from g[i] on (weighted by the tasks still running). */
struct sched_plan {
    double wt[SCHED_HIST_BUCKETS]; /* smoothed weights, normalised to 1 */
    double bm[SCHED_HIST_BUCKETS]; /* mass below bucket i */
    double bx[SCHED_HIST_BUCKETS]; /* first moment below bucket i */
    double tail;                   /* ms: tasks may wait this long for their poll (jitter aside) */
    int n;
    double g[SCHED_PLAN_MAX + 2], m[SCHED_PLAN_MAX + 2], x[SCHED_PLAN_MAX + 2];
    double cost[SCHED_PLAN_MAX + 2], best_cost[SCHED_PLAN_MAX + 2];
    int next[SCHED_PLAN_MAX + 2];
};

/* Share of tasks done by t and their sum of durations (normalised weights,
 * log-uniform inside a bucket: density ~ 1/x, so mass ln(t/a)/ln(r) and
 * first moment (t-a)/ln(r) on [a, t]); O(1) from the per-bucket sums. */
static void sched_plan_cum(const struct sched_plan *pl, double t, double *m, double *x)
{
    if (!(t > SCHED_HIST_MIN_MS)) {
        *m = *x = 0;
        return;
    }
    int i = sched_hist_bucket(t);
    double a = sched_hist_edge(i), lr = log(SCHED_HIST_RATIO);
    double f = log(t / a) / lr;
    if (f > 1)
        f = 1; /* past the last bucket */
    *m = pl->bm[i] + pl->wt[i] * f;
    *x = pl->bx[i] + pl->wt[i] * (fmin(t, a * SCHED_HIST_RATIO) - a) / lr;
}

/* The tail bound on a gap from `from` (mass done by then: m_from) to `to`.
 * Once tasks have begun to end, no gap longer than the bound: the
 * histogram's tail rests on a handful of tasks, and a long gap where it
 * shows little mass is where a slow task would wait longest. Before that
 * (the first poll), the gap may skip what ends early as long as at most
 * SCHED_TAIL_SHARE of the tasks wait longer than the bound. Monotone in
 * `to`, so loops over increasing `to` may stop at the first refusal. */
static bool sched_plan_too_far(const struct sched_plan *pl, double from, double m_from, double to)
{
    if (!(to - pl->tail > from))
        return false;
    if (m_from > SCHED_TAIL_SHARE)
        return true;
    double m, x;
    sched_plan_cum(pl, to - pl->tail, &m, &x);
    return m - m_from > SCHED_TAIL_SHARE;
}

/* Expected lag and polls of the seed exponential backoff on the plan's
 * distribution, for the tasks done by the horizon: the yardstick that sets
 * lambda. Beyond its 10 min it keeps its 30 s cap here, since only the
 * exchange rate between polls and lag is wanted. */
static void sched_plan_exponential(const struct sched_profile *p, const struct sched_plan *pl,
                                   double *polls, double *lag)
{
    double horizon = pl->g[pl->n - 1], e = 0, pm = 0, px = 0;
    *polls = *lag = 0;
    for (uint32_t k = 0; e < horizon; k++) {
        e += (double)sched_gap(SCHED_EXPONENTIAL, p, k);
        double m, x;
        sched_plan_cum(pl, e < horizon ? e : horizon, &m, &x);
        *polls += (m - pm) * (k + 1);
        *lag += (m - pm) * e - (x - px);
        pm = m;
        px = x;
    }
}

/* Optimal inspection by dynamic programming over the grid (O(n^2)): the
 * cost of polling next at g[j] from g[i] is the lag of the tasks ending in
 * between plus lambda for each task still running at g[i]. Returns the
 * predicted polls and lag of the plan followed from the submit. */
static void sched_plan_solve(struct sched_plan *pl, double lambda, double *polls, double *lag)
{
    int n = pl->n;
    pl->cost[n - 1] = 0;
    pl->next[n - 1] = -1;
    for (int i = n - 2; i >= 0; i--) {
        double best = INFINITY, run = lambda * (1 - pl->m[i]);
        int bj = n - 1;
        for (int j = i + 1; j < n; j++) {
            /* The next grid point is always allowed (it is at most 13%
             * further); past it, the tail bound and then the lag term only
             * grow with j, and cost[j] >= 0: no later j can win. */
            if (j > i + 1 && sched_plan_too_far(pl, pl->g[i], pl->m[i], pl->g[j]))
                break;
            double c = (pl->m[j] - pl->m[i]) * pl->g[j] - (pl->x[j] - pl->x[i]) + run;
            if (c >= best)
                break;
            c += pl->cost[j];
            if (c < best) {
                best = c;
                bj = j;
            }
        }
        pl->cost[i] = best;
        pl->next[i] = bj;
    }
    *polls = *lag = 0;
    int k = 0;
    for (int i = 0; pl->next[i] >= 0; i = pl->next[i]) {
        int j = pl->next[i];
        k++;
        *polls += (pl->m[j] - pl->m[i]) * k;
        *lag += (pl->m[j] - pl->m[i]) * pl->g[j] - (pl->x[j] - pl->x[i]);
    }
}

/* Builds the grid from the histogram and leaves in best_cost the
 * cost-to-go of the chosen lambda. A deterministic function of h alone, so
 * every poll of a task follows the same plan. */
static void sched_plan_build(struct sched_plan *pl, const struct sched_profile *p,
                             const struct sched_hist *h)
{
    double interval = (double)p->interval_ms;
    if (p->interval_is_guess)
        interval = fmax(SCHED_LEARNED_MIN_GAP_MS,
                        sched_weights_quantile(h->w, 0.5) / SCHED_GUESS_MEDIAN_DIV);
    /* Jitter may stretch a gap by 10% more; planning for 1.5 / 1.1 to
     * absorb it cost 5% more polls for a p99 already within bounds. */
    pl->tail = SCHED_TAIL_INTERVALS * interval;
    /* Smoothing over neighbouring buckets: about 100 effective samples leave
     * gaps in the histogram that the optimiser would trust and skip. */
    double total = 0;
    for (int i = 0; i < SCHED_HIST_BUCKETS; i++) {
        double l = i > 0 ? h->w[i - 1] : 0, r = i < SCHED_HIST_BUCKETS - 1 ? h->w[i + 1] : 0;
        pl->wt[i] = 0.25 * l + 0.5 * h->w[i] + 0.25 * r;
        total += pl->wt[i];
    }
    double bm = 0, bx = 0;
    for (int i = 0; i < SCHED_HIST_BUCKETS; i++) {
        pl->wt[i] /= total;
        pl->bm[i] = bm;
        pl->bx[i] = bx;
        bm += pl->wt[i];
        bx += pl->wt[i] * sched_hist_edge(i) * (SCHED_HIST_RATIO - 1) / log(SCHED_HIST_RATIO);
    }
    double horizon = sched_weights_quantile(pl->wt, SCHED_LEARNED_HORIZON_Q);
    int lo = 0;
    while (lo < SCHED_HIST_BUCKETS - 1 && pl->wt[lo] <= 0)
        lo++;
    int span = sched_hist_bucket(horizon) - lo + 1;
    int sub = span > 0 ? SCHED_PLAN_MAX / span : SCHED_PLAN_SUB;
    sub = sub < 1 ? 1 : sub > SCHED_PLAN_SUB ? SCHED_PLAN_SUB : sub;
    pl->n = 0;
    pl->g[pl->n++] = 0;
    for (int i = lo; i < SCHED_HIST_BUCKETS && pl->n < SCHED_PLAN_MAX + 1; i++) {
        for (int s = 0; s < sub && pl->n < SCHED_PLAN_MAX + 1; s++) {
            double g = sched_hist_edge(i + (double)s / sub);
            if (g >= horizon)
                break;
            if (g > pl->g[pl->n - 1])
                pl->g[pl->n++] = g;
        }
    }
    if (horizon > pl->g[pl->n - 1])
        pl->g[pl->n++] = horizon;
    for (int i = 0; i < pl->n; i++)
        sched_plan_cum(pl, pl->g[i], &pl->m[i], &pl->x[i]);

    /* lambda (ms of lag one poll is worth) on a ladder around exponential's
     * own lag per poll; keep the plan cheapest in exponential's terms, its
     * polls / exponential's + its lag / exponential's. (Issue 8 kept the
     * plan furthest inside "half the polls or half the lag"; under the tail
     * bound that choice bought lag with polls, ~5% more of them.) */
    static const double ladder[] = {0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0};
    double ep, el;
    sched_plan_exponential(p, pl, &ep, &el);
    if (!(ep > 0) || !(el > 0)) {
        ep = 1;
        el = SCHED_LEARNED_MIN_GAP_MS;
    }
    double best = INFINITY;
    for (size_t k = 0; k < sizeof(ladder) / sizeof(ladder[0]); k++) {
        double polls, lag;
        sched_plan_solve(pl, ladder[k] * el / ep, &polls, &lag);
        /* Planned on ~100 effective samples, the lag comes out optimistic
         * (by 10-30% on fresh tasks in the unit tests' simulations): judge
         * the plans by a pessimistic lag so the chosen one keeps a margin. */
        lag *= SCHED_PLAN_LAG_DOUBT;
        double score = polls / ep + lag / el;
        if (score < best) {
            best = score;
            memcpy(pl->best_cost, pl->cost, sizeof(pl->cost[0]) * (size_t)pl->n);
        }
    }
}

/* Exploration's gap after a poll at `a` ms since submit (0: the first). */
static double sched_explore_gap(const struct sched_profile *p, double a)
{
    if (!(a > 0))
        return (double)SCHED_EXPLORE_FIRST_MS;
    return fmin(fmax(SCHED_LEARNED_MIN_GAP_MS, a / 2), (double)p->interval_ms);
}

/* The plan's best next poll time (ms since submit) for a task still running
 * at `a`, no earlier than `not_before`: only tasks still running at a count,
 * which is what conditioning on "not done at the last poll" means. */
static double sched_plan_continue(const struct sched_plan *pl, double a, double not_before)
{
    double ma, xa, best = INFINITY, target = pl->g[pl->n - 1];
    bool first = true;
    sched_plan_cum(pl, a, &ma, &xa);
    for (int j = 1; j < pl->n; j++) {
        if (pl->g[j] < not_before)
            continue;
        if (!first && sched_plan_too_far(pl, a, ma, pl->g[j]))
            break;
        first = false;
        double c = (pl->m[j] - ma) * pl->g[j] - (pl->x[j] - xa);
        if (c >= best)
            break; /* as in sched_plan_solve */
        c += pl->best_cost[j];
        if (c < best) {
            best = c;
            target = pl->g[j];
        }
    }
    /* The grid is up to 13% apart: off it when its next point is too far. */
    if (ma > SCHED_TAIL_SHARE && target - a > pl->tail)
        target = a + pl->tail;
    return target;
}

int64_t sched_next_due_learned(const struct sched_profile *p, const struct sched_hist *h,
                               const struct sched_task *t, int64_t now_ms, uint64_t *rng)
{
    int64_t base = sched_base(t);
    double a = (double)(base - t->submit_ms);
    double floor = p->initial_is_floor ? (double)p->initial_ms : 0;
    double gap;
    if (!sched_hist_ready(h) || !(sched_weights_total(h->w) > 0)) {
        gap = sched_explore_gap(p, a);
    } else {
        struct sched_plan pl;
        sched_plan_build(&pl, p, h);
        /* The tail bound wins over the 3% rule on very long tasks. */
        double min_gap =
            fmax(SCHED_LEARNED_MIN_GAP_MS, fmin(SCHED_LEARNED_MIN_GAP_FRAC * a, pl.tail));
        if (a + min_gap < pl.g[pl.n - 1]) {
            gap = sched_plan_continue(&pl, a, fmax(a + min_gap, floor)) - a;
        } else {
            /* Slower than nearly every task seen: the model may have slowed
             * down; back off gently while the histogram catches up, within
             * the tail bound since nothing says these tasks are rare. */
            gap = fmax(min_gap, fmin(a / 4, pl.tail));
        }
    }
    if (a + gap < floor)
        gap = floor - a;
    int64_t due = sched_due_from(base, (int64_t)llround(gap), sched_deadline_learned(p, h, t),
                                 p->late_ms, t, now_ms, rng);
    /* Jitter must not pull a poll below the user's floor. */
    if (due != SCHED_NEVER && due < t->submit_ms + (int64_t)floor)
        due = t->submit_ms + (int64_t)floor;
    return due;
}

/* The weight of durations below ms, spread log-uniformly inside a bucket as
 * sched_weights_quantile assumes. */
static double sched_weights_below(const double *w, double ms)
{
    int b = sched_hist_bucket(ms);
    double acc = 0;
    for (int i = 0; i < b; i++)
        acc += w[i];
    double frac = ms > SCHED_HIST_MIN_MS ? log(ms / sched_hist_edge(b)) / log(SCHED_HIST_RATIO) : 0;
    return acc + w[b] * (frac < 0 ? 0 : frac > 1 ? 1 : frac);
}

int64_t sched_hist_median_left(const struct sched_hist *h, int64_t elapsed_ms)
{
    double total = h ? sched_weights_total(h->w) : 0;
    if (!(total > 0))
        return -1;
    double e = elapsed_ms > 0 ? (double)elapsed_ms : 0;
    double below = sched_weights_below(h->w, e);
    /* Past (nearly) everything the model ever took: no median to give. */
    if (total - below <= total * 1e-6)
        return -1;
    double end = sched_weights_quantile(h->w, (below + 0.5 * (total - below)) / total);
    return end > e ? (int64_t)llround(end - e) : 0;
}
