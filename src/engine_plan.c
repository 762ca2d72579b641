/* When each task's next poll is due: the schedules of sched.c on the task's
 * stored (wall-clock) times, turned into a monotonic timer. */
#include "engine_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int plan_ensure_slot(struct engine *e, uint32_t idx)
{
    if (idx < e->ts_cap)
        return timers_reserve(&e->timers, idx);
    uint32_t cap = e->ts_cap ? e->ts_cap : 1024;
    while (cap <= idx)
        cap *= 2;
    struct tsched *ts = realloc(e->ts, cap * sizeof(*ts));
    if (!ts)
        return -ENOMEM;
    e->ts = ts;
    for (uint32_t i = e->ts_cap; i < cap; i++)
        e->ts[i] = (struct tsched){.pt.phase = PHASE_DONE};
    e->ts_cap = cap;
    return timers_reserve(&e->timers, cap - 1);
}

void plan_poll_at(struct engine *e, uint32_t idx, int64_t mono_ms)
{
    if (plan_ensure_slot(e, idx) < 0 || timers_set(&e->timers, idx, mono_ms) < 0) {
        log_error(e->log, "out of memory scheduling a poll");
        return;
    }
    e->ts[idx].pt.phase = PHASE_SCHEDULED;
}

void plan_cancel(struct engine *e, uint32_t idx)
{
    timers_remove(&e->timers, idx);
}

void plan_free(struct engine *e)
{
    timers_free(&e->timers);
    free(e->ts);
    free(e->hists);
}

static void plan_model_profile(struct engine *e, const char *model, struct sched_profile *p)
{
    for (size_t i = 0; i < e->cfg.n_models; i++)
        if (e->cfg.models[i].has_profile && strcmp(e->cfg.models[i].name, model) == 0) {
            *p = e->cfg.models[i].profile;
            return;
        }
    sched_profile_default(model, p);
}

static struct sched_task plan_view_task(const struct task *t)
{
    return (struct sched_task){
        .submit_ms = t->submit_ms, .last_poll_ms = t->last_poll_ms, .polls = t->polls};
}

/* The learned schedule's histogram of a model, loaded from the store the
 * first time; NULL for the other schedules. */
static struct sched_hist *plan_model_hist(struct engine *e, uint32_t model_idx)
{
    if (e->cfg.schedule != SCHED_LEARNED)
        return NULL;
    if (model_idx >= e->n_hists) {
        uint32_t n = model_idx + 16;
        struct sched_hist *h = realloc(e->hists, n * sizeof(*h));
        if (!h)
            return NULL;
        for (uint32_t i = e->n_hists; i < n; i++) {
            sched_hist_init(&h[i]);
            const struct model *m = store_model_at(e->store, i);
            if (m && m->hist && sched_hist_decode(&h[i], m->hist) < 0)
                sched_hist_init(&h[i]);
        }
        e->hists = h;
        e->n_hists = n;
    }
    return &e->hists[model_idx];
}

/* A finished task teaches the learned schedule how long this model takes:
 * the provider's own times, since ours include the detection lag. */
void plan_learn_duration(struct engine *e, uint32_t model_idx, const struct provider_status *ps)
{
    struct sched_hist *h = plan_model_hist(e, model_idx);
    int64_t took = ps->create_ms > 0 && ps->complete_ms > ps->create_ms
                       ? ps->complete_ms - ps->create_ms
                       : ps->cost_ms;
    if (!h || took <= 0)
        return;
    sched_hist_observe(h, took);
    char text[4096];
    if (sched_hist_encode(h, text, sizeof(text)) > 0)
        store_model_set_hist(e->store, model_idx, text);
}

int64_t engine_task_deadline(struct engine *e, const struct task *t, const char *model)
{
    struct sched_profile p;
    plan_model_profile(e, model, &p);
    struct sched_task v = plan_view_task(t);
    if (e->cfg.schedule == SCHED_LEARNED)
        return sched_deadline_learned(&p, plan_model_hist(e, t->model_idx), &v);
    return sched_deadline(e->cfg.schedule, &p, &v);
}

bool plan_past_deadline(struct engine *e, const struct task *t, int64_t wall_ms)
{
    return wall_ms >= engine_task_deadline(e, t, engine_model_name(e, t));
}

/* Callbacks bring the news; polls are only a safety net for lost ones. */
static int64_t plan_callback_due(struct engine *e, const struct task *t, int64_t wall_ms)
{
    int64_t base = t->polls > 0 && t->last_poll_ms > t->submit_ms ? t->last_poll_ms : t->submit_ms;
    int64_t gap = e->cfg.callback_poll_ms;
    int64_t due = base + gap - gap / 10 + (int64_t)(sched_rand(&e->rng) % (uint64_t)(gap / 5 + 1));
    return due < wall_ms ? wall_ms : due;
}

/* The wall-clock time of the task's next poll by its schedule, never past
 * the deadline, so readers hear of the give-up on time; SCHED_NEVER once the
 * schedule has given up. */
static int64_t plan_next_due(struct engine *e, const struct task *t, int64_t wall_ms)
{
    struct sched_profile p;
    plan_model_profile(e, engine_model_name(e, t), &p);
    struct sched_task v = plan_view_task(t);
    int64_t due, deadline;
    if (e->cfg.schedule == SCHED_LEARNED) {
        const struct sched_hist *h = plan_model_hist(e, t->model_idx);
        due = sched_next_due_learned(&p, h, &v, wall_ms, &e->rng);
        deadline = sched_deadline_learned(&p, h, &v);
    } else {
        due = sched_next_due(e->cfg.schedule, &p, &v, wall_ms, &e->rng);
        deadline = sched_deadline(e->cfg.schedule, &p, &v);
    }
    if (e->cfg.callback_url && wall_ms < deadline)
        due = plan_callback_due(e, t, wall_ms);
    if (!t->gave_up && deadline > wall_ms && (due == SCHED_NEVER || due > deadline))
        due = deadline;
    return due;
}

void plan_schedule(struct engine *e, const struct task *t, struct clock_pair now,
                   int64_t not_before_mono)
{
    int64_t due = plan_next_due(e, t, now.wall_ms);
    if (due == SCHED_NEVER) {
        log_info(e->log,
                 "%s/%s: no answer within 24 h; polling stopped (rmdir it or adopt it "
                 "again to retry)",
                 engine_model_name(e, t), t->id);
        plan_cancel(e, t->idx);
        if (plan_ensure_slot(e, t->idx) == 0)
            e->ts[t->idx].pt.phase = PHASE_GIVEN_UP;
        return;
    }
    if (stream_plan(e, t, now))
        return; /* its stream brings the news */
    /* The schedule speaks wall-clock time (its inputs are stored); the timer
     * waits the same span on the monotonic clock. */
    int64_t mono = now.mono_ms + (due - now.wall_ms);
    plan_poll_at(e, t->idx, mono < not_before_mono ? not_before_mono : mono);
}

int64_t plan_backoff_ms(struct engine *e, uint32_t streak)
{
    int64_t b = 1000;
    for (uint32_t i = 1; i < streak && b < 60000; i++)
        b *= 2;
    if (b > 60000)
        b = 60000;
    return b / 2 + (int64_t)(sched_rand(&e->rng) % (uint64_t)(b / 2 + 1));
}
