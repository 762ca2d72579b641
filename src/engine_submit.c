/* Submissions: the queue of writes to new, their requests and answers. A
 * submission is retried only when the provider provably did not take it. */
#include "engine_internal.h"

#include "input.h"
#include "netmsg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What genfs did about a submission that may have been taken, and what to check. */
#define MAY_EXIST                                                                                  \
    "genfs did not send it again, since the task may exist at the provider: check its "            \
    "dashboard, adopt the task with mkdir MODEL/ID if it is there, or write again if not"

static const char *submit_model_name(struct engine *e, const struct engine_cmd *cmd)
{
    const struct model *m = store_model_at(e->store, cmd->model_idx);
    return m ? m->name : "?";
}

/* A submission that ends in an error: said once, here, with the model (the
 * writer hears the same message as its errno). */
void submit_fail(struct engine *e, struct engine_cmd *cmd, int err, const char *msg)
{
    engine_count(e, &e->c.errors);
    store_submit_drop(e->store, cmd->intent);
    cmd->intent = 0;
    log_warn(e->log, "%s: submission failed: %s", submit_model_name(e, cmd), msg);
    engine_finish_cmd(cmd, err, msg);
}

void submit_queue(struct engine *e, struct engine_cmd *cmd)
{
    cmd->next = NULL;
    if (e->submits_tail)
        e->submits_tail->next = cmd;
    else
        e->submits_head = cmd;
    e->submits_tail = cmd;
}

void submit_prepare(struct engine *e, struct engine_cmd *cmd)
{
    cmd->first_ms = clock_mono_ms();
    if (cmd->n_files > 0)
        upload_begin(e, cmd); /* then submit_ready */
    else
        submit_ready(e, cmd);
}

/* The model's defaults under json (replaced in place): 0 or a negative errno. */
static int submit_merge(const char *defaults, char **json)
{
    char *merged = NULL;
    int rc = input_merge_defaults(defaults, *json, &merged);
    if (rc == 0) {
        free(*json);
        *json = merged;
    }
    return rc;
}

void submit_ready(struct engine *e, struct engine_cmd *cmd)
{
    /* The model's defaults go under the writer's input once, here: input.json shows
     * what was sent. */
    const struct model *m = store_model_at(e->store, cmd->model_idx);
    if (m && m->defaults) {
        int rc = submit_merge(m->defaults, &cmd->input_json);
        if (rc == 0 && cmd->shown_json)
            rc = submit_merge(m->defaults, &cmd->shown_json);
        if (rc < 0) {
            submit_fail(e, cmd, rc,
                        "the model's defaults.json and the input cannot be merged: both must "
                        "be JSON objects");
            return;
        }
    }
    cmd->not_before_ms = 0;
    submit_queue(e, cmd);
}

/* Webhook mode: the callback URL with this submission's own token. */
static int submit_callback_url(struct engine *e, struct xfer *x, char *cb, size_t len)
{
    cb[0] = '\0';
    if (!e->cfg.callback_url)
        return 0;
    size_t bl = strlen(e->cfg.callback_url);
    while (bl > 0 && e->cfg.callback_url[bl - 1] == '/')
        bl--;
    if (hook_token_new(x->token) < 0)
        return -EIO;
    snprintf(cb, len, "%.*s/%s", (int)bl, e->cfg.callback_url, x->token);
    return 0;
}

int submit_start(struct engine *e, struct engine_cmd *cmd)
{
    const struct model *m = store_model_at(e->store, cmd->model_idx);
    if (!m) {
        submit_fail(e, cmd, -ENOENT, "the model directory was removed");
        return 0;
    }
    /* Team mounts: recorded before it is sent, or not sent at all. */
    store_submit_drop(e->store, cmd->intent);
    if (store_submit_intent(e->store, cmd->model_idx, cmd->input_json, &cmd->intent) < 0) {
        submit_fail(e, cmd, -EIO,
                    "the task database (-o store) cannot be reached, so the task could not be "
                    "recorded: nothing was submitted; write again once it is back");
        return 0;
    }
    struct xfer *x = xfer_new(X_SUBMIT, engine_provider_index(e, cmd->model_idx));
    char cb[1024];
    if (x && submit_callback_url(e, x, cb, sizeof(cb)) < 0) {
        xfer_free(x);
        submit_fail(e, cmd, -EIO, "cannot draw a random callback token");
        return 0;
    }
    if (!x || provider_build_submit(engine_provider_of(e, x->pi), m->name, cmd->input_json,
                                    m->request, cb[0] ? cb : NULL, &x->req) < 0) {
        xfer_free(x);
        submit_fail(e, cmd, -ENOMEM, "out of memory building the request");
        return 0;
    }
    x->cmd = cmd;
    cmd->attempts++;
    /* libcurl silently resends a request whose reused connection died before
     * any answer; for a submit that can create the task twice. A fresh
     * connection is never resent. */
    x->fresh = true;
    if (xfer_start(e, x, (long)(e->cfg.timeout_s * 1000)) < 0) {
        xfer_free(x);
        submit_fail(e, cmd, -EIO, "cannot start the HTTP request");
        return 0;
    }
    engine_count(e, &e->c.submit);
    return 1;
}

/* The provider took it: the task is stored (committed before the writer
 * hears of it) and scheduled. */
static void submit_accept(struct engine *e, struct xfer *x, const struct provider_submit *sub,
                          struct clock_pair now)
{
    struct engine_cmd *cmd = x->cmd;
    const char *model = submit_model_name(e, cmd);
    struct task_new tn = {.model_idx = cmd->model_idx,
                          .id = sub->task_id,
                          .input_json = cmd->shown_json ? cmd->shown_json : cmd->input_json,
                          .prompt = cmd->prompt,
                          .status_url = sub->status_url,
                          .result_url = sub->result_url,
                          .cb_token = x->token[0] ? x->token : NULL,
                          .submit_ms = now.wall_ms,
                          .intent = cmd->intent};
    uint32_t idx;
    rate_on_success(&e->rate);
    int err = store_task_insert(e->store, &tn, &idx);
    if (err == 0) {
        cmd->task_idx = idx;
        if (x->token[0])
            hook_token_add(e->hook, x->token, idx);
        log_info(e->log, "%s/%s: submitted", model, sub->task_id);
        plan_schedule(e, store_task_at(e->store, idx), now, 0);
        engine_finish_cmd(cmd, 0, NULL);
        return;
    }
    bool full = err == -ENOSPC;
    cache_note_store_error(e, err);
    log_error(e->log,
              "%s/%s: accepted by the provider but not stored (%s%s): adopt it with "
              "mkdir %s/%s once there is room",
              model, sub->task_id, strerror(-err), full ? ": state_dir is full" : "",
              store_model_at(e->store, cmd->model_idx) ? model : "MODEL", sub->task_id);
    char msg[400];
    snprintf(msg, sizeof(msg), "task %s was accepted but could not be stored%s", sub->task_id,
             full ? ": state_dir is full" : "");
    engine_finish_cmd(cmd, full ? -ENOSPC : -EIO, msg);
}

/* How a submission that was not accepted ended. */
struct submit_outcome {
    int err;
    bool retry;     /* provably not taken: may be sent again */
    bool throttled; /* 429: nothing was taken; retried until the request timeout */
    int64_t wait;   /* Retry-After (ms), or -1 */
    char msg[1024];
};

static void submit_read_transport(struct engine *e, const struct xfer *x, CURLcode cc,
                                  struct submit_outcome *o)
{
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        char url[256];
        netmsg_show_url(x->req.url, url, sizeof(url));
        o->err = -ETIMEDOUT;
        snprintf(o->msg, sizeof(o->msg), "%s did not answer the submission in time; %s", url,
                 MAY_EXIST);
        return;
    }
    o->err = -EIO;
    xfer_transport_msg(e, x, cc, false, o->msg, sizeof(o->msg));
    o->retry = xfer_never_sent(cc);
    if (!o->retry)
        snprintf(o->msg + strlen(o->msg), sizeof(o->msg) - strlen(o->msg), "; %s", MAY_EXIST);
}

static void submit_read_refusal(struct engine *e, long http, const struct provider_error *perr,
                                struct submit_outcome *o, int64_t mono_ms)
{
    snprintf(o->msg, sizeof(o->msg), "%s", perr->msg);
    if (http == 429 || perr->err == -EAGAIN) {
        engine_count(e, &e->c.http_429);
        rate_on_throttle(&e->rate, mono_ms, perr->retry_after_ms);
        o->throttled = true;
    } else if (http == 503 && perr->retry_after_ms >= 0) {
        o->retry = true;
    }
    o->wait = perr->retry_after_ms;
    if (!o->retry && !o->throttled && perr->retryable && (http < 200 || http >= 300))
        snprintf(o->msg + strlen(o->msg), sizeof(o->msg) - strlen(o->msg), "; %s", MAY_EXIST);
    o->err = perr->err ? perr->err : -EIO;
}

/* Nothing was taken on a 429, so retrying is safe: until the request's
 * timeout, honouring Retry-After and the shared rate. A 429 that says when
 * to come back is retried then, not on a growing backoff (a storm of them
 * would stall the write for minutes). */
static void submit_retry_or_fail(struct engine *e, struct engine_cmd *cmd, struct submit_outcome *o,
                                 int64_t mono_ms)
{
    int64_t b = o->throttled && o->wait >= 0 ? 0 : plan_backoff_ms(e, (uint32_t)cmd->attempts);
    int64_t next = mono_ms + (o->wait > b ? o->wait : b);
    if (o->throttled && next < cmd->first_ms + (int64_t)(e->cfg.timeout_s * 1000))
        o->retry = true;
    else if (o->throttled)
        snprintf(o->msg + strlen(o->msg), sizeof(o->msg) - strlen(o->msg),
                 "; still refused after %.0f s (-o timeout): nothing was submitted, write again "
                 "later",
                 e->cfg.timeout_s);
    if (o->retry && (o->throttled || cmd->attempts < SUBMIT_ATTEMPTS)) {
        engine_count(e, &e->c.retries);
        cmd->not_before_ms = next;
        log_info(e->log, "%s: submission not taken (%s); retrying", submit_model_name(e, cmd),
                 o->msg);
        submit_queue(e, cmd);
        return;
    }
    submit_fail(e, cmd, o->err, o->msg);
}

void submit_on_answer(struct engine *e, struct xfer *x, CURLcode cc, long http,
                      struct clock_pair now)
{
    struct submit_outcome o = {.wait = -1};
    xfer_note_rate_headers(e, x, now.mono_ms);
    if (cc != CURLE_OK) {
        engine_count(e, &e->c.transport_errors);
        submit_read_transport(e, x, cc, &o);
    } else {
        struct provider_submit sub = {0};
        struct provider_error perr = {0};
        struct provider_headers hdr = xfer_provider_headers(x);
        int err = provider_parse_submit(engine_provider_of(e, x->pi), http, x->buf ? x->buf : "",
                                        x->len, &hdr, time(NULL), &sub, &perr);
        xfer_redact(e, perr.msg);
        if (err == 0) {
            submit_accept(e, x, &sub, now);
            provider_submit_clear(&sub);
            return;
        }
        submit_read_refusal(e, http, &perr, &o, now.mono_ms);
    }
    submit_retry_or_fail(e, x->cmd, &o, now.mono_ms);
}
