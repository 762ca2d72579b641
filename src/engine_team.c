/* Team mounts (-o store=postgresql://...): the engine's side of sharing one
 * database with other mounts. Their changes reach this engine's schedule
 * (a task added there is known here, one that ended there is not polled
 * here), only tasks this mount leases are polled, and the account's rate is
 * shared: each mount takes a share by its demand, and a 429 one sees slows all. */
#include "engine_internal.h"

#define TEAM_RATE_EVERY_MS 1000
#define TEAM_NOT_MINE_RECHECK_MS 1000

/* Another mount's change, as the engine must hear of it. */
static void team_on_change(void *arg, const struct store_change *c)
{
    struct engine *e = arg;
    if (!c->remote || c->task_idx == STORE_NONE)
        return;
    const struct task *t = store_task_at(e->store, c->task_idx);
    switch (c->kind) {
    case STORE_TASK_ADDED:
        if (t && !task_state_final(t->state) && plan_ensure_slot(e, c->task_idx) == 0)
            plan_schedule(e, t, clock_read_pair(), 0);
        break;
    case STORE_TASK_STATE:
        /* Ended by the mount that polled it, which downloads its files; here
         * they are listed once that mount has them whole (their sizes come
         * with the row) and come into this mount's cache when read. */
        if (task_state_final(c->new_state))
            engine_forget_slot(e, c->task_idx);
        break;
    case STORE_TASK_REMOVED:
        if (c->gone) {
            cache_forget_task(e, c->gone);
            hook_token_remove(e->hook, c->gone->cb_token);
        }
        engine_forget_slot(e, c->task_idx);
        break;
    default:
        break;
    }
}

int team_init(struct engine *e)
{
    return store_is_team(e->store) ? store_observe(e->store, team_on_change, e) : 0;
}

static uint32_t team_queued_submits(const struct engine *e)
{
    uint32_t n = 0;
    for (const struct engine_cmd *c = e->submits_head; c; c = c->next)
        n++;
    return n;
}

/* This mount's demand and a 429 it saw go to the database; its share and
 * the others' 429s come back. */
static void team_rate(struct engine *e, struct clock_pair now)
{
    pthread_mutex_lock(&e->stats_lock);
    uint64_t seen = e->c.http_429;
    pthread_mutex_unlock(&e->stats_lock);
    bool throttled = seen != e->team_429s;
    e->team_429s = seen;
    /* blocked_until_ms is INT64_MIN until a first pause. */
    int64_t left =
        e->rate.blocked_until_ms > now.mono_ms ? e->rate.blocked_until_ms - now.mono_ms : 0;
    double weight = 1.0 + store_leased_pending(e->store, now.wall_ms) + team_queued_submits(e) +
                    (double)e->submits_inflight;
    struct store_rate_share sh;
    store_team_rate(e->store, weight, throttled, left, &sh);
    rate_set_limit(&e->rate, e->cfg.rate * sh.fraction);
    if (sh.throttle_seq != e->team_throttle_seq && e->team_throttle_seq != 0 && !throttled) {
        rate_on_throttle(&e->rate, now.mono_ms, sh.retry_after_ms);
        log_info(e->log, "another mount of the store was refused with 429: slowing down here too%s",
                 sh.retry_after_ms > 0 ? " (pausing for its Retry-After)" : "");
    }
    e->team_throttle_seq = sh.throttle_seq;
}

void team_tick(struct engine *e, struct clock_pair now)
{
    if (!store_is_team(e->store))
        return;
    store_sync(e->store, now.wall_ms);
    if (now.mono_ms - e->team_rate_ms >= TEAM_RATE_EVERY_MS) {
        e->team_rate_ms = now.mono_ms;
        team_rate(e, now);
    }
}

bool team_may_poll(struct engine *e, uint32_t idx, int64_t mono_ms)
{
    if (store_task_leased(e->store, idx, clock_now_ms()))
        return true;
    /* Another mount polls it; if its lease runs out this one takes it. */
    plan_poll_at(e, idx, mono_ms + TEAM_NOT_MINE_RECHECK_MS);
    return false;
}
