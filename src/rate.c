/* Token bucket with AIMD: the bucket refills at `current` tokens per second
 * and holds about one second of requests, so short bursts pass and the
 * long-run rate never exceeds `current`. */
#include "rate.h"

#include <math.h>

#define RATE_FLOOR 0.2 /* requests/s: throttling never stops us entirely */
#define RATE_CUT_EVERY_MS 1000
/* Once 429s stop, the rate doubles every second (after a second's grace): from
 * the floor back to 10/s in about 7 s. */
#define RATE_RECOVER_AFTER_MS 1000
#define RATE_DOUBLE_MS 1000.0

static void rate_set_current(struct rate *r, double current);

static void rate_recover(struct rate *r, int64_t now_ms)
{
    if (r->current >= r->limit || r->last_cut_ms == INT64_MIN)
        return;
    double since = (double)(now_ms - r->last_cut_ms - RATE_RECOVER_AFTER_MS);
    if (since <= 0)
        return;
    double up = r->cut_rate * pow(2.0, since / RATE_DOUBLE_MS);
    if (up > r->current)
        rate_set_current(r, fmin(r->limit, up));
}

static void rate_refill(struct rate *r, int64_t now_ms)
{
    if (now_ms > r->last_ms) {
        r->tokens += (double)(now_ms - r->last_ms) * r->current / 1000.0;
        r->last_ms = now_ms;
    }
    rate_recover(r, now_ms);
    if (r->tokens > r->burst)
        r->tokens = r->burst;
}

static void rate_set_current(struct rate *r, double current)
{
    r->current = current;
    r->burst = fmax(1.0, current);
}

void rate_init(struct rate *r, double per_second, int64_t now_ms)
{
    r->limit = per_second >= RATE_FLOOR ? per_second : RATE_FLOOR;
    rate_set_current(r, r->limit);
    r->tokens = r->burst;
    r->last_ms = now_ms;
    r->blocked_until_ms = INT64_MIN;
    r->last_cut_ms = INT64_MIN;
}

int64_t rate_take(struct rate *r, int64_t now_ms)
{
    if (now_ms < r->blocked_until_ms)
        return r->blocked_until_ms - now_ms;
    rate_refill(r, now_ms);
    if (r->tokens >= 1.0) {
        r->tokens -= 1.0;
        return 0;
    }
    int64_t wait = (int64_t)ceil((1.0 - r->tokens) * 1000.0 / r->current);
    return wait > 0 ? wait : 1;
}

void rate_pause(struct rate *r, int64_t now_ms, int64_t ms)
{
    rate_refill(r, now_ms);
    if (ms > 0 && now_ms + ms > r->blocked_until_ms) {
        r->blocked_until_ms = now_ms + ms;
        /* Nothing accrues while blocked, so the block's end releases no burst. */
        r->last_ms = r->blocked_until_ms;
        r->tokens = 1.0; /* one request as the pause ends, then the pace */
    }
}

void rate_on_throttle(struct rate *r, int64_t now_ms, int64_t retry_after_ms)
{
    /* The provider said when to come back: that is a pause, not a reason to
     * slow down for good. */
    if (retry_after_ms > 0) {
        rate_pause(r, now_ms, retry_after_ms);
        return;
    }
    /* Credit the time elapsed so far at the old rate before slowing down. */
    rate_refill(r, now_ms);
    if (r->last_cut_ms == INT64_MIN || now_ms - r->last_cut_ms >= RATE_CUT_EVERY_MS) {
        rate_set_current(r, fmax(r->current / 2.0, RATE_FLOOR));
        r->cut_rate = r->current;
        r->last_cut_ms = now_ms;
    }
    /* End the burst in progress: one request may go, then the new pace. */
    r->tokens = fmin(r->tokens, 1.0);
}

void rate_on_success(struct rate *r)
{
    rate_set_current(r, fmin(r->limit, r->current + r->limit / 20.0));
}

void rate_set_limit(struct rate *r, double per_second)
{
    double limit = per_second >= RATE_FLOOR ? per_second : RATE_FLOOR;
    if (limit == r->limit)
        return;
    double k = limit / r->limit;
    r->limit = limit;
    rate_set_current(r, fmax(RATE_FLOOR, fmin(limit, r->current * k)));
    r->cut_rate = fmax(RATE_FLOOR, r->cut_rate * k);
    r->tokens = fmin(r->tokens, r->burst);
}
