/* MODEL/ID/ctl's cancel: queued, sent through the shared rate like every
 * request, retried while the provider was not reached (a cancel is safe to
 * repeat), and answered once the provider took it and the task ended (or
 * after CTL_WAIT_MS, when the state shows the end later). */
#include "engine_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_ATTEMPTS 4
#define CTL_WAIT_MS 10000

static void ctl_finish(struct engine *e, struct engine_cmd *cmd, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void ctl_finish(struct engine *e, struct engine_cmd *cmd, int err, const char *fmt, ...)
{
    char msg[1024] = "";
    const struct task *t = store_task_at(e->store, cmd->task_idx);
    int n = t ? snprintf(msg, sizeof(msg), "%s/%s/ctl: ", engine_model_name(e, t), t->id) : 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    xfer_redact(e, msg);
    engine_finish_cmd(cmd, err, err ? msg : NULL);
}

bool engine_can_cancel(struct engine *e, uint32_t model_idx)
{
    return provider_can_cancel(engine_provider_of(e, engine_provider_index(e, model_idx)));
}

static void ctl_queue(struct engine *e, struct engine_cmd *cmd)
{
    cmd->next = NULL;
    if (e->cancels_tail)
        e->cancels_tail->next = cmd;
    else
        e->cancels_head = cmd;
    e->cancels_tail = cmd;
}

/* A cancel that cannot do anything is answered now; *t the task otherwise. */
static bool ctl_refused(struct engine *e, struct engine_cmd *cmd, const struct task **t)
{
    *t = store_task_at(e->store, cmd->task_idx);
    if (!*t) {
        ctl_finish(e, cmd, -ENOENT, "cancel: the task was forgotten meanwhile");
        return true;
    }
    if (task_state_final((*t)->state)) {
        ctl_finish(e, cmd, -EALREADY, "cancel: the task has already ended (%s): nothing to cancel",
                   task_state_name((*t)->state));
        return true;
    }
    if (!engine_can_cancel(e, (*t)->model_idx)) {
        ctl_finish(e, cmd, -EOPNOTSUPP,
                   "cancel refused: provider %s has no cancel request; the task runs on",
                   e->cfg.providers[engine_provider_index(e, (*t)->model_idx)].name);
        return true;
    }
    return false;
}

void ctl_cmd_cancel(struct engine *e, struct engine_cmd *cmd)
{
    const struct task *t;
    if (ctl_refused(e, cmd, &t))
        return;
    cmd->attempts = 0;
    cmd->first_ms = clock_mono_ms();
    cmd->not_before_ms = 0;
    ctl_queue(e, cmd);
}

static void ctl_start(struct engine *e, struct engine_cmd *cmd)
{
    const struct task *t;
    if (ctl_refused(e, cmd, &t))
        return;
    struct xfer *x = xfer_new(X_CANCEL, engine_provider_index(e, t->model_idx));
    if (!x || provider_build_cancel(engine_provider_of(e, x->pi), engine_model_name(e, t), t->id,
                                    t->cancel_url, &x->req) < 0) {
        xfer_free(x);
        ctl_finish(e, cmd, -ENOMEM, "cancel: out of memory building the request");
        return;
    }
    x->cmd = cmd;
    x->task_idx = cmd->task_idx;
    cmd->attempts++;
    if (xfer_start(e, x, (long)(e->cfg.timeout_s * 500)) < 0) {
        xfer_free(x);
        ctl_finish(e, cmd, -EIO, "cancel: cannot start the HTTP request");
        return;
    }
    engine_count(e, &e->c.status);
}

/* Waiting cancels past CTL_WAIT_MS are answered: the provider took them, the state
 * shows the end when it comes. Returns ms until the next one is due, at most wait. */
static int64_t ctl_expire(struct engine *e, int64_t mono_ms, bool stopping, int64_t wait)
{
    for (struct engine_cmd **pp = &e->cancels_waiting, *c; (c = *pp);) {
        if (stopping || c->not_before_ms <= mono_ms) {
            *pp = c->next;
            ctl_finish(e, c, 0, NULL);
            continue;
        }
        if (c->not_before_ms - mono_ms < wait)
            wait = c->not_before_ms - mono_ms;
        pp = &c->next;
    }
    return wait;
}

int64_t ctl_launch(struct engine *e, int64_t mono_ms, bool stopping, int64_t wait)
{
    wait = ctl_expire(e, mono_ms, stopping, wait);
    while (e->cancels_head && (stopping || e->inflight < MAX_INFLIGHT)) {
        struct engine_cmd *c = e->cancels_head;
        if (!stopping && c->not_before_ms > mono_ms)
            return c->not_before_ms - mono_ms < wait ? c->not_before_ms - mono_ms : wait;
        int64_t rw = stopping ? 0 : rate_take(&e->rate, mono_ms);
        if (rw > 0)
            return rw < wait ? rw : wait;
        e->cancels_head = c->next;
        if (!e->cancels_head)
            e->cancels_tail = NULL;
        if (stopping)
            ctl_finish(e, c, -EIO, "cancel: genfs is unmounting: the cancel was not sent");
        else
            ctl_start(e, c);
    }
    return wait;
}

/* The provider took it: poll now, answer the writer when the task ends. */
static void ctl_taken(struct engine *e, struct engine_cmd *cmd, int64_t mono_ms)
{
    uint32_t idx = cmd->task_idx;
    const struct task *t = store_task_at(e->store, idx);
    if (idx < e->ts_cap)
        e->ts[idx].cancel_asked = true;
    log_info(e->log, "%s/%s: cancel requested", engine_model_name(e, t), t->id);
    engine_poll_soon(e, idx);
    cmd->not_before_ms = mono_ms + CTL_WAIT_MS;
    cmd->next = e->cancels_waiting;
    e->cancels_waiting = cmd;
}

/* Not reached, or a transient refusal: again after a backoff, CTL_ATTEMPTS in all. */
static void ctl_retry_or_fail(struct engine *e, struct engine_cmd *cmd, int err, const char *msg,
                              int64_t wait_ms, int64_t mono_ms)
{
    if (cmd->attempts < CTL_ATTEMPTS) {
        int64_t b = plan_backoff_ms(e, (uint32_t)cmd->attempts);
        cmd->not_before_ms = mono_ms + (wait_ms > b ? wait_ms : b);
        engine_count(e, &e->c.retries);
        ctl_queue(e, cmd);
        return;
    }
    ctl_finish(e, cmd, err, "cancel failed after %d attempts: %s; write cancel again",
               cmd->attempts, msg);
}

void ctl_on_answer(struct engine *e, struct xfer *x, CURLcode cc, long http, struct clock_pair now)
{
    struct engine_cmd *cmd = x->cmd;
    if (!store_task_at(e->store, cmd->task_idx)) {
        ctl_finish(e, cmd, -ENOENT, "cancel: the task was forgotten meanwhile");
        return;
    }
    if (cc != CURLE_OK) {
        char msg[1024];
        engine_count(e, &e->c.transport_errors);
        xfer_transport_msg(e, x, cc, false, msg, sizeof(msg));
        ctl_retry_or_fail(e, cmd, cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO, msg, -1,
                          now.mono_ms);
        return;
    }
    xfer_note_rate_headers(e, x, now.mono_ms);
    enum provider_cancel_outcome out;
    struct provider_error perr = {.retry_after_ms = -1};
    struct provider_headers hdr = xfer_provider_headers(x);
    int err = provider_parse_cancel(engine_provider_of(e, x->pi), http, x->buf ? x->buf : "",
                                    x->len, &hdr, time(NULL), &out, &perr);
    xfer_redact(e, perr.msg);
    if (err == 0 && out == PROVIDER_CANCEL_TOO_LATE) {
        rate_on_success(&e->rate);
        engine_poll_soon(e, cmd->task_idx);
        ctl_finish(e, cmd, -EALREADY,
                   "cancel: the task had already ended at the provider: nothing was canceled");
    } else if (err == 0) {
        rate_on_success(&e->rate);
        ctl_taken(e, cmd, now.mono_ms);
    } else if (http == 429 || err == -EAGAIN || perr.retryable) {
        if (http == 429 || err == -EAGAIN) {
            engine_count(e, &e->c.http_429);
            rate_on_throttle(&e->rate, now.mono_ms, perr.retry_after_ms);
        }
        ctl_retry_or_fail(e, cmd, err, perr.msg, perr.retry_after_ms, now.mono_ms);
    } else {
        engine_count(e, &e->c.errors);
        ctl_finish(e, cmd, err, "cancel refused: %s", perr.msg);
    }
}

void ctl_on_task_end(struct engine *e, uint32_t idx)
{
    for (struct engine_cmd **pp = &e->cancels_waiting, *c; (c = *pp);) {
        if (c->task_idx != idx) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        const struct task *t = store_task_at(e->store, idx);
        if (t && t->state != TASK_FAILED)
            ctl_finish(e, c, -EALREADY, "cancel: the task ended (%s) before the cancel took effect",
                       task_state_name(t->state));
        else
            ctl_finish(e, c, 0, NULL);
    }
}

void ctl_mark_canceled(struct engine *e, uint32_t idx, struct provider_status *ps)
{
    if (idx >= e->ts_cap || !e->ts[idx].cancel_asked || ps->state != TASK_FAILED)
        return;
    free(ps->fail_code);
    ps->fail_code = strdup("canceled");
    if (!ps->fail_msg)
        ps->fail_msg = strdup("canceled by a write to ctl");
}
