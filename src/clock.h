/* The clocks, in one place. Wall time (CLOCK_REALTIME) is for what is stored
 * and shown: task times are persisted and compared across restarts. Timers
 * (when a poll is due, backoffs, rate limits, intervals) run on
 * CLOCK_MONOTONIC, which a clock step neither fires early nor stalls. */
#ifndef GENFS_CLOCK_H
#define GENFS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall-clock milliseconds since the epoch: to store and to show. */
static inline int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic milliseconds (from an arbitrary start): for timers. */
static inline int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic microseconds: for measuring short spans. */
static inline int64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One moment on both clocks. */
struct clock_pair {
    int64_t wall_ms;
    int64_t mono_ms;
};

static inline struct clock_pair clock_read_pair(void)
{
    return (struct clock_pair){.wall_ms = clock_now_ms(), .mono_ms = clock_mono_ms()};
}

#endif
