/* Pure token bucket for the global request rate, with AIMD on throttling:
 * a 429 halves the rate, successes bring it back gradually to the limit. */
#ifndef GENFS_RATE_H
#define GENFS_RATE_H

#include <stdint.h>

struct rate {
    double limit;   /* configured requests per second */
    double current; /* in force now (<= limit) */
    double tokens;
    double burst; /* bucket size */
    int64_t last_ms;
    int64_t blocked_until_ms; /* Retry-After: no request before this */
    int64_t last_cut_ms;      /* the rate halves at most once a second */
};

void rate_init(struct rate *r, double per_second, int64_t now_ms);
/* 0 when a request may go now (a token is taken), else ms to wait (> 0). */
int64_t rate_take(struct rate *r, int64_t now_ms);
/* A 429: halve current (floor 0.2/s), at most once a second: the 429s of
 * requests already in flight are one signal, not many. retry_after_ms > 0
 * blocks everything until then. */
void rate_on_throttle(struct rate *r, int64_t now_ms, int64_t retry_after_ms);
/* A non-429 answer: additive increase of current towards limit. */
void rate_on_success(struct rate *r);

#endif
