/* The counters behind MOUNT/stats: counted on the engine thread under
 * stats_lock, read by engine_stats_json from any thread. The text itself is
 * stats.c's. */
#include "engine_internal.h"

#include <stdlib.h>

void engine_count(struct engine *e, uint64_t *field)
{
    pthread_mutex_lock(&e->stats_lock);
    (*field)++;
    pthread_mutex_unlock(&e->stats_lock);
}

void engine_count_lag(struct engine *e, double lag_ms)
{
    pthread_mutex_lock(&e->stats_lock);
    stats_add_lag(&e->c, lag_ms);
    pthread_mutex_unlock(&e->stats_lock);
}

void engine_count_bytes(struct engine *e, int64_t bytes)
{
    pthread_mutex_lock(&e->stats_lock);
    e->c.download_bytes += (uint64_t)bytes;
    pthread_mutex_unlock(&e->stats_lock);
}

void engine_publish_figures(struct engine *e)
{
    pthread_mutex_lock(&e->stats_lock);
    e->rate_now = e->rate.current;
    e->cache_bytes_now = e->cache_bytes;
    e->kept_over_cap_now = e->kept_over_cap;
    pthread_mutex_unlock(&e->stats_lock);
}

char *engine_stats_json(struct engine *e)
{
    /* About 33 KiB of lag samples: on the heap, not on a FUSE worker's stack. */
    struct stats_view *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    store_rdlock(e->store);
    store_count_states(e->store, v->states);
    store_unlock(e->store);
    pthread_mutex_lock(&e->stats_lock);
    v->c = e->c;
    v->rate_current = e->rate_now;
    v->cache_bytes = e->cache_bytes_now;
    v->kept_over_cap = e->kept_over_cap_now;
    pthread_mutex_unlock(&e->stats_lock);
    hook_counts(e->hook, &v->callbacks_accepted, &v->callbacks_rejected, &v->callbacks_dropped);
    announcer_counts(e->announcer, &v->announcements_made, &v->announcements_failed,
                     &v->announcements_busy_us);
    v->rate_limit = e->cfg.rate;
    v->schedule = sched_kind_name(e->cfg.schedule);
    char *out = stats_build_json(v);
    free(v);
    return out;
}
