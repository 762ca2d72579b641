/* Pure token bucket for the global request rate: a 429 with Retry-After is a
 * pause; one without halves the rate, which comes back to the limit quickly
 * (doubling every second) once 429s stop, and with every success. */
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
    double cut_rate;          /* current right after that cut, where recovery starts */
};

void rate_init(struct rate *r, double per_second, int64_t now_ms);
/* 0 when a request may go now (a token is taken), else ms to wait (> 0). */
int64_t rate_take(struct rate *r, int64_t now_ms);
/* A 429. With retry_after_ms > 0: no request before then (rate_pause), the
 * rate stays. Without: halve current (floor 0.2/s), at most once a second
 * (the 429s of requests already in flight are one signal, not many). */
void rate_on_throttle(struct rate *r, int64_t now_ms, int64_t retry_after_ms);
/* No request for ms from now (a provider's Retry-After, or its RateLimit
 * headers saying the window is spent); a shorter pause never shortens one. */
void rate_pause(struct rate *r, int64_t now_ms, int64_t ms);
/* The configured rate changed (a team mount's share of the account's):
 * current keeps its proportion of the limit. */
void rate_set_limit(struct rate *r, double per_second);
/* A non-429 answer: additive increase of current towards limit. */
void rate_on_success(struct rate *r);

#endif
