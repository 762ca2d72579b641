/* Pure: the engine's counters and the text of MOUNT/stats built from them;
 * percentiles by nearest rank. */
#ifndef GENFS_STATS_H
#define GENFS_STATS_H

#include "task.h"

#include <stdint.h>

#define STATS_LAG_SAMPLES 4096

struct stats_counters {
    uint64_t submit, status, adopt, downloads, download_bytes, evictions;
    uint64_t retries, http_429, errors, transport_errors;
    uint64_t disk_full;  /* writes to cache_dir or state_dir that found the disk full */
    uint64_t polls_late; /* sent over 1 s after due */
    double lag_ms[STATS_LAG_SAMPLES]; /* the last detection lags, a ring */
    uint32_t n_lag, lag_head;
};

/* Everything MOUNT/stats shows, gathered by the engine. */
struct stats_view {
    struct stats_counters c;
    uint32_t states[TASK_STATE_COUNT];
    int64_t cache_bytes;
    int64_t kept_over_cap; /* results kept past cache_max: their URLs expire */
    uint64_t callbacks_accepted, callbacks_rejected, callbacks_dropped;
    uint64_t announcements_made, announcements_failed, announcements_busy_us;
    double rate_limit, rate_current;
    const char *schedule;
};

/* Records one detection lag, replacing the oldest once the ring is full. */
void stats_add_lag(struct stats_counters *c, double lag_ms);
/* The pct-th percentile (0..100) of n >= 1 sorted samples by nearest rank:
 * the smallest sample that at least pct % of the samples do not exceed. */
double stats_percentile(const double *sorted, uint32_t n, unsigned pct);
/* MOUNT/stats as JSON text ending in a newline (malloc'd, NULL when out of
 * memory). Sorts v->c.lag_ms in place. */
char *stats_build_json(struct stats_view *v);

#endif
