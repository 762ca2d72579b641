/* Status and result requests and what their answers do: each answer becomes
 * a phase_event, phase_on_answer decides, and this file applies the
 * decision. Adoption (mkdir MODEL/ID) starts with a status request too. */
#include "engine_internal.h"

#include "input.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A poll is cheap to repeat: half the submit's patience. */
static long poll_timeout_ms(struct engine *e)
{
    return (long)(e->cfg.timeout_s * 500);
}

void poll_start_status(struct engine *e, uint32_t idx)
{
    const struct task *t = store_task_at(e->store, idx);
    if (!t)
        return;
    struct xfer *x = xfer_new(X_STATUS, engine_provider_index(e, t->model_idx));
    if (!x || provider_build_status(engine_provider_of(e, x->pi), engine_model_name(e, t), t->id,
                                    t->status_url, &x->req) < 0) {
        xfer_free(x);
        return;
    }
    x->task_idx = idx;
    struct clock_pair now = clock_read_pair();
    if (xfer_start(e, x, poll_timeout_ms(e)) < 0) {
        xfer_free(x);
        plan_poll_at(e, idx, now.mono_ms + 1000);
        return;
    }
    e->ts[idx].pt.phase = PHASE_POLLING;
    store_task_note_poll(e->store, idx, now.wall_ms);
    engine_count(e, &e->c.status);
}

void poll_start_adopt(struct engine *e, struct engine_cmd *adopt)
{
    const struct model *m = store_model_at(e->store, adopt->model_idx);
    if (!m) {
        engine_finish_cmd(adopt, -ENOENT, "the model directory was removed");
        return;
    }
    struct xfer *x = xfer_new(X_ADOPT, engine_provider_index(e, adopt->model_idx));
    if (!x || provider_build_status(engine_provider_of(e, x->pi), m->name, adopt->name, NULL,
                                    &x->req) < 0) {
        xfer_free(x);
        engine_finish_cmd(adopt, -ENOMEM, "out of memory building the request");
        return;
    }
    x->cmd = adopt;
    x->task_idx = STORE_NONE;
    if (xfer_start(e, x, poll_timeout_ms(e)) < 0) {
        xfer_free(x);
        engine_finish_cmd(adopt, -EIO, "cannot start the HTTP request");
        return;
    }
    engine_count(e, &e->c.adopt);
}

/* Profiles whose status says only "done" keep the result at another URL. */
static void poll_start_result(struct engine *e, uint32_t idx)
{
    const struct task *t = store_task_at(e->store, idx);
    if (!t)
        return;
    const char *model = engine_model_name(e, t);
    struct xfer *x = xfer_new(X_RESULT, engine_provider_index(e, t->model_idx));
    if (!x || provider_build_result(engine_provider_of(e, x->pi), model, t->id, t->result_url,
                                    &x->req) < 0) {
        xfer_free(x);
        log_error(e->log, "%s/%s: cannot build the result request", model, t->id);
        plan_poll_at(e, idx, clock_mono_ms() + 5000);
        return;
    }
    x->task_idx = idx;
    if (xfer_start(e, x, poll_timeout_ms(e)) < 0) {
        xfer_free(x);
        plan_poll_at(e, idx, clock_mono_ms() + 1000);
        return;
    }
    e->ts[idx].pt.phase = PHASE_FETCHING;
    engine_count(e, &e->c.status);
}

/* What the answer says, as the state machine reads it; msg gets its error
 * in one line, key what the log dedupes it on. */
static void poll_read_answer(struct engine *e, struct xfer *x, CURLcode cc, long http,
                             struct clock_pair now, struct provider_status *ps,
                             struct phase_event *ev, char *msg, size_t len, char *key,
                             size_t keylen)
{
    *ev = (struct phase_event){.http = http, .retry_after_ms = -1};
    if (cc != CURLE_OK) {
        engine_count(e, &e->c.transport_errors);
        ev->transport_failed = true;
        ev->http = 0;
        ev->err = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        xfer_transport_msg(e, x, cc, false, msg, len);
        /* One line for a provider that cannot be reached, not one per task. */
        xfer_transport_msg(e, x, cc, true, key, keylen);
        return;
    }
    struct provider_error perr = {0};
    struct provider_headers hdr = xfer_provider_headers(x);
    xfer_note_rate_headers(e, x, now.mono_ms);
    ev->err = (x->kind == X_RESULT ? provider_parse_result : provider_parse_status)(
        engine_provider_of(e, x->pi), http, x->buf ? x->buf : "", x->len, &hdr, time(NULL), ps,
        &perr);
    xfer_redact(e, perr.msg);
    xfer_redact(e, ps->fail_code);
    xfer_redact(e, ps->fail_msg);
    xfer_redact(e, ps->data_json);
    ev->retry_after_ms = perr.retry_after_ms;
    ev->needs_result = ps->needs_result;
    ev->answer_state = ps->state;
    ev->has_urls = ps->n_urls > 0;
    snprintf(msg, len, "%s", perr.msg);
    snprintf(key, keylen, "%s", perr.msg);
}

static void poll_apply_rate(struct engine *e, enum phase_rate r, int64_t retry_after_ms,
                            int64_t mono_ms)
{
    if (r == PHASE_RATE_THROTTLE) {
        engine_count(e, &e->c.http_429);
        rate_on_throttle(&e->rate, mono_ms, retry_after_ms);
    } else if (r == PHASE_RATE_SUCCESS) {
        rate_on_success(&e->rate);
    }
}

/* Past its deadline a pending task's readers get ETIMEDOUT; polling goes on slowly. */
static void poll_give_up(struct engine *e, uint32_t idx, const struct task *t)
{
    log_warn(e->log,
             "%s/%s: not done within the model's time limit; readers get ETIMEDOUT, polling goes "
             "on slowly for 24 h",
             engine_model_name(e, t), t->id);
    store_task_set_gave_up(e->store, idx, true);
}

/* Stores a parsed answer. The task's state in memory moves even when the
 * database write fails; the database keeps the old one, so after a restart
 * the task is polled again and the provider's answer moves it once more. */
static void poll_store_answer(struct engine *e, uint32_t idx, const struct provider_status *ps,
                              struct clock_pair now)
{
    int rc = store_task_apply_status(e->store, idx, ps, now.wall_ms);
    if (rc == 0)
        return;
    cache_note_store_error(e, rc);
    const struct task *t = store_task_at(e->store, idx);
    if (engine_log_once(e, "a task's answer was not saved"))
        log_warn(e->log,
                 "%s/%s: its latest answer is not saved in state_dir (%s); it is asked again after "
                 "a restart (said once per 10 min)",
                 engine_model_name(e, t), t->id, strerror(-rc));
}

/* The answer is stored; a task still pending is polled again, one that just
 * ended gets its downloads queued and teaches the schedule. */
static void poll_apply_answer(struct engine *e, uint32_t idx, const struct provider_status *ps,
                              const struct phase_decision *d, struct clock_pair now)
{
    const struct task *t = store_task_at(e->store, idx);
    bool was_final = task_state_final(t->state);
    poll_store_answer(e, idx, ps, now);
    t = store_task_at(e->store, idx);
    if (d->next.phase == PHASE_SCHEDULED) {
        if (d->give_up)
            poll_give_up(e, idx, t);
        if (d->poll_now)
            plan_poll_at(e, idx, now.mono_ms);
        else
            plan_schedule(e, t, now, 0);
        return;
    }
    plan_cancel(e, idx);
    if (was_final)
        return;
    cache_queue_task(e, t);
    hook_token_remove(e->hook, t->cb_token);
    ctl_on_task_end(e, idx);
    if (t->state == TASK_SUCCESS)
        plan_learn_duration(e, t->model_idx, ps);
    log_info(e->log, "%s/%s: %s", engine_model_name(e, t), t->id, task_state_name(t->state));
    if (ps->complete_ms > 0 && now.wall_ms >= ps->complete_ms)
        engine_count_lag(e, (double)(now.wall_ms - ps->complete_ms));
}

/* genfs itself ends a task as failed (the provider lost it, or will not give
 * its result): the log says why, readers are answered, nothing polls it again. */
static void poll_fail_task(struct engine *e, uint32_t idx, const char *code, struct clock_pair now,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void poll_fail_task(struct engine *e, uint32_t idx, const char *code, struct clock_pair now,
                           const char *fmt, ...)
{
    const struct task *t = store_task_at(e->store, idx);
    struct provider_status ps = {.state = TASK_FAILED, .progress = -1, .queue_position = -1};
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&ps.fail_msg, fmt, ap) < 0)
        ps.fail_msg = NULL;
    va_end(ap);
    log_warn(e->log, "%s/%s: %s", engine_model_name(e, t), t->id, ps.fail_msg ? ps.fail_msg : code);
    ps.fail_code = strdup(code);
    ps.data_json = t->status_json ? strdup(t->status_json) : NULL;
    struct phase_decision ended = {.next.phase = PHASE_DONE, .action = PHASE_APPLY};
    poll_apply_answer(e, idx, &ps, &ended, now);
    provider_status_clear(&ps);
}

/* A missed look: said once per 10 minutes, retried after the backoff. */
static void poll_retry_later(struct engine *e, uint32_t idx, const struct phase_decision *d,
                             const char *msg, const char *key, struct clock_pair now)
{
    const struct task *t = store_task_at(e->store, idx);
    engine_count(e, &e->c.errors);
    if (engine_log_once(e, key))
        log_warn(e->log, "%s/%s: status poll failed (%s); will retry (said once per 10 min)",
                 engine_model_name(e, t), t->id, msg);
    if (d->give_up)
        poll_give_up(e, idx, t);
    int64_t wait = plan_backoff_ms(e, d->backoff_streak);
    if (d->min_wait_ms > wait)
        wait = d->min_wait_ms;
    engine_count(e, &e->c.retries);
    plan_schedule(e, t, now, now.mono_ms + wait);
}

static void poll_apply_decision(struct engine *e, uint32_t idx, const struct phase_decision *d,
                                const struct provider_status *ps, const char *msg, const char *key,
                                struct clock_pair now)
{
    e->ts[idx].pt = d->next;
    switch (d->action) {
    case PHASE_FETCH_RESULT:
        poll_start_result(e, idx);
        break;
    case PHASE_APPLY:
        poll_apply_answer(e, idx, ps, d, now);
        break;
    case PHASE_FAIL_NO_RESULT:
        poll_fail_task(e, idx, "result_unavailable", now,
                       "the provider reported the task done, but its result request failed %u "
                       "times (last: %s)",
                       d->next.result_streak, msg);
        break;
    case PHASE_FAIL_LOST:
        poll_fail_task(e, idx, "not_found", now,
                       "the provider no longer knows this task: %u status polls in a row "
                       "answered \"no such task\" (last: %s)",
                       d->next.missing_streak, msg);
        break;
    case PHASE_RETRY:
        poll_retry_later(e, idx, d, msg, key, now);
        break;
    }
}

/* The first answer about an adopted task: it is stored, then polled,
 * fetched or downloaded as its phase says. */
static void poll_adopt_store(struct engine *e, struct engine_cmd *adopt,
                             const struct provider_status *ps, const struct phase_event *ev,
                             struct clock_pair now)
{
    const struct model *m = store_model_at(e->store, adopt->model_idx);
    /* Where the status holds the task's input (Replicate's input, kie's param), the
     * adopted task's prompt and input.json show it. */
    char *input = NULL, *prompt = NULL;
    if (ps->input_json &&
        input_parse(ps->input_json, strlen(ps->input_json), &input, &prompt, NULL, 0) < 0)
        input = prompt = NULL;
    struct task_new tn = {.model_idx = adopt->model_idx,
                          .id = adopt->name,
                          .adopted = true,
                          .input_json = input,
                          .prompt = prompt ? prompt : "",
                          .submit_ms = ps->create_ms > 0 ? ps->create_ms : now.wall_ms};
    uint32_t idx;
    int err = store_task_insert(e->store, &tn, &idx);
    free(input);
    free(prompt);
    if (err == 0)
        err = plan_ensure_slot(e, idx);
    if (err < 0) {
        engine_finish_cmd(adopt, err, "cannot store the adopted task");
        return;
    }
    enum phase next = phase_on_adopt(ev);
    if (!ps->needs_result)
        poll_store_answer(e, idx, ps, now);
    store_task_note_poll(e->store, idx, now.wall_ms);
    const struct task *t = store_task_at(e->store, idx);
    if (next == PHASE_FETCHING) {
        poll_start_result(e, idx);
    } else if (next == PHASE_SCHEDULED) {
        plan_schedule(e, t, now, 0);
    } else {
        e->ts[idx].pt.phase = next;
        cache_queue_task(e, t);
    }
    adopt->task_idx = idx;
    log_info(e->log, "%s/%s: adopted (%s)", m->name, adopt->name, task_state_name(t->state));
    engine_finish_cmd(adopt, 0, NULL);
}

static void poll_on_adopt_answer(struct engine *e, struct engine_cmd *adopt,
                                 const struct provider_status *ps, const struct phase_event *ev,
                                 char *msg, size_t len, struct clock_pair now)
{
    const struct model *m = store_model_at(e->store, adopt->model_idx);
    if (ev->err == 0 && m) {
        poll_adopt_store(e, adopt, ps, ev, now);
        return;
    }
    if (ev->err == -ENOENT)
        snprintf(msg, len, "the provider knows no task %s for model %s", adopt->name,
                 m ? m->name : "?");
    engine_finish_cmd(adopt, ev->err ? ev->err : -ENOENT, msg);
}

void poll_on_answer(struct engine *e, struct xfer *x, CURLcode cc, long http, struct clock_pair now)
{
    uint32_t idx = x->task_idx;
    bool poll_again = false;
    if (x->kind != X_ADOPT) {
        poll_again = e->ts[idx].poll_again;
        e->ts[idx].poll_again = false;
        if (!store_task_at(e->store, idx))
            return; /* forgotten meanwhile */
    }
    struct provider_status ps = {0};
    struct phase_event ev;
    char msg[1024], key[1024];
    poll_read_answer(e, x, cc, http, now, &ps, &ev, msg, sizeof(msg), key, sizeof(key));
    if (x->kind == X_ADOPT) {
        poll_apply_rate(e, phase_rate_for(&ev), ev.retry_after_ms, now.mono_ms);
        poll_on_adopt_answer(e, x->cmd, &ps, &ev, msg, sizeof(msg), now);
    } else {
        const struct task *t = store_task_at(e->store, idx);
        ev.task_final = task_state_final(t->state);
        ev.gave_up = t->gave_up;
        ev.past_deadline = plan_past_deadline(e, t, now.wall_ms);
        ev.poll_again = poll_again;
        ctl_mark_canceled(e, idx, &ps);
        struct phase_decision d = phase_on_answer(&e->ts[idx].pt, &ev);
        poll_apply_rate(e, d.rate, ev.retry_after_ms, now.mono_ms);
        poll_apply_decision(e, idx, &d, &ps, msg, key, now);
    }
    provider_status_clear(&ps);
}
