/* The engine's loop and its public calls: the inbox of commands from other
 * threads, what is started when, and the answers handed to the files that
 * own them (engine_internal.h lists them). */
#include "engine_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define FLUSH_EVERY_MS 1000
#define STOP_GRACE_MS 15000
#define LOG_ONCE_MS 600000

/* ---- shared by the engine's files ---- */

/* The provider a model belongs to: its own, else the mount's (index 0). */
size_t engine_provider_index(struct engine *e, uint32_t model_idx)
{
    const struct model *m = store_model_at(e->store, model_idx);
    for (size_t i = 1; m && m->provider && i < e->cfg.n_providers; i++)
        if (strcmp(e->cfg.providers[i].name, m->provider) == 0)
            return i;
    return 0;
}

const struct provider *engine_provider_of(struct engine *e, size_t pi)
{
    return e->cfg.providers[pi].prov;
}

const char *engine_model_name(struct engine *e, const struct task *t)
{
    return store_model_at(e->store, t->model_idx)->name;
}

void engine_finish_cmd(struct engine_cmd *cmd, int err, const char *msg)
{
    if (cmd->done)
        cmd->done(cmd, err, msg);
}

/* A flaky provider must not flood the log with one line per poll. */
bool engine_log_once(struct engine *e, const char *msg)
{
    uint64_t h = 1469598103934665603u;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        h = (h ^ *p) * 1099511628211u;
    int64_t now = clock_mono_ms();
    size_t oldest = 0;
    for (size_t i = 0; i < LOG_ONCE_SLOTS; i++) {
        if (e->logged[i].hash == h) {
            if (now - e->logged[i].at_ms < LOG_ONCE_MS)
                return false;
            e->logged[i].at_ms = now;
            return true;
        }
        if (e->logged[i].at_ms < e->logged[oldest].at_ms)
            oldest = i;
    }
    e->logged[oldest].hash = h;
    e->logged[oldest].at_ms = now;
    return true;
}

/* A forgotten task's slot: no timer, and a fresh state for the next task in it. */
void engine_forget_slot(struct engine *e, uint32_t idx)
{
    plan_cancel(e, idx);
    stream_close(e, idx);
    if (idx < e->ts_cap)
        e->ts[idx] = (struct tsched){.pt.phase = PHASE_DONE};
}

/* ---- commands ---- */

static void engine_cmd_model_set(struct engine *e, struct engine_cmd *cmd)
{
    bool defaults = strcmp(cmd->name, "defaults") == 0;
    int rc = defaults ? store_model_set_defaults(e->store, cmd->model_idx, cmd->input_json)
                      : store_model_set_request(e->store, cmd->model_idx, cmd->input_json);
    engine_finish_cmd(cmd, rc,
                      rc ? "cannot store the model's settings in the database: see the log" : NULL);
}

static void engine_cmd_adopt(struct engine *e, struct engine_cmd *cmd)
{
    const struct task *t = store_task_find(e->store, cmd->model_idx, cmd->name);
    if (t) {
        cmd->task_idx = t->idx;
        engine_finish_cmd(cmd, -EEXIST, "that task is already here");
        return;
    }
    poll_start_adopt(e, cmd);
}

static void engine_cmd_forget(struct engine *e, struct engine_cmd *cmd)
{
    const struct task *t = store_task_at(e->store, cmd->task_idx);
    if (t) {
        cache_forget_task(e, t);
        hook_token_remove(e->hook, t->cb_token);
    }
    int rc = store_task_remove(e->store, cmd->task_idx);
    if (rc == 0) {
        engine_forget_slot(e, cmd->task_idx);
        ctl_on_task_end(e, cmd->task_idx);
    }
    engine_finish_cmd(cmd, rc, rc ? "cannot forget the task: see the log" : NULL);
}

static void engine_cmd_model_add(struct engine *e, struct engine_cmd *cmd)
{
    /* A model made by mkdir belongs where its namespace's models do. */
    const char *prov = NULL;
    const char *slash = strrchr(cmd->name, '/');
    for (uint32_t i = 0; slash && !prov && i < store_model_slots(e->store); i++) {
        const struct model *m = store_model_at(e->store, i);
        if (m && !m->ns && m->provider &&
            strncmp(m->name, cmd->name, (size_t)(slash - cmd->name) + 1) == 0)
            prov = m->provider;
    }
    uint32_t idx;
    int rc = store_model_add(e->store, cmd->name, prov, &idx);
    cmd->model_idx = idx;
    engine_finish_cmd(cmd, rc,
                      rc == -EEXIST ? "the model exists"
                      : rc          ? "cannot add the model"
                                    : 0);
}

static void engine_cmd_fetch(struct engine *e, struct engine_cmd *cmd)
{
    const struct task *t = store_task_at(e->store, cmd->task_idx);
    if (t && t->files && cmd->file_n < t->n_urls) {
        enum file_state fs = t->files[cmd->file_n].state;
        if (fs == FILE_FAILED || fs == FILE_NOSPACE)
            store_file_set(e->store, cmd->task_idx, cmd->file_n, FILE_PENDING, NULL, -2);
        if (fs == FILE_FAILED || fs == FILE_NOSPACE || fs == FILE_PENDING)
            cache_queue_file(e, cmd->task_idx, cmd->file_n, true);
    }
    engine_finish_cmd(cmd, 0, NULL);
}

void engine_poll_soon(struct engine *e, uint32_t idx)
{
    if (store_task_at(e->store, idx) && idx < e->ts_cap) {
        switch (phase_on_callback(e->ts[idx].pt.phase)) {
        case PHASE_CALLBACK_POLL_NOW:
            plan_poll_at(e, idx, clock_mono_ms());
            break;
        case PHASE_CALLBACK_POLL_AFTER:
            e->ts[idx].poll_again = true;
            break;
        case PHASE_CALLBACK_IGNORE:
            break;
        }
    }
}

static void engine_cmd_poll_now(struct engine *e, struct engine_cmd *cmd)
{
    engine_poll_soon(e, cmd->task_idx);
    engine_finish_cmd(cmd, 0, NULL);
}

static void engine_handle_cmd(struct engine *e, struct engine_cmd *cmd)
{
    switch (cmd->kind) {
    case ENGINE_SUBMIT:
        submit_prepare(e, cmd);
        break;
    case ENGINE_MODEL_SET:
        engine_cmd_model_set(e, cmd);
        break;
    case ENGINE_ADOPT:
        engine_cmd_adopt(e, cmd);
        break;
    case ENGINE_FORGET:
        engine_cmd_forget(e, cmd);
        break;
    case ENGINE_MODEL_ADD:
        engine_cmd_model_add(e, cmd);
        break;
    case ENGINE_MODEL_REMOVE: {
        int rc = store_model_remove(e->store, cmd->model_idx);
        engine_finish_cmd(cmd, rc,
                          rc == -ENOTEMPTY ? "the model still holds tasks: rmdir them first" : 0);
        break;
    }
    case ENGINE_FETCH:
        engine_cmd_fetch(e, cmd);
        break;
    case ENGINE_POLL_NOW:
        engine_cmd_poll_now(e, cmd);
        break;
    case ENGINE_CANCEL:
        ctl_cmd_cancel(e, cmd);
        break;
    }
}

/* ---- the loop ---- */

static void engine_drain_done(struct engine *e)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(e->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode cc = m->data.result;
        long http = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &http);
        xfer_detach(e, x);
        xfer_take_headers(e, x);
        if (cc == CURLE_WRITE_ERROR && x->too_big && x->kind != X_DOWNLOAD) {
            /* A huge API answer is a malformed one: the parser says so from its
             * length, without reading it. */
            cc = CURLE_OK;
            x->len = MAX_BODY + 1;
        }
        struct clock_pair now = clock_read_pair();
        /* Mask an echoed key in the raw answer, before anything derives text
         * from it (a message cut short would otherwise keep part of it). */
        if (x->kind != X_DOWNLOAD && x->buf)
            xfer_redact(e, x->buf);
        if (x->kind == X_DOWNLOAD)
            cache_on_download(e, x, cc, http, now);
        else if (x->kind == X_SUBMIT)
            submit_on_answer(e, x, cc, http, now);
        else if (x->kind == X_CANCEL)
            ctl_on_answer(e, x, cc, http, now);
        else if (x->kind == X_UPLOAD)
            upload_on_answer(e, x, cc, http, now);
        else if (x->kind == X_STREAM)
            stream_on_end(e, x, cc, http, now);
        else
            poll_on_answer(e, x, cc, http, now);
        xfer_free(x);
    }
}

static bool engine_is_stopping(struct engine *e)
{
    pthread_mutex_lock(&e->inbox_lock);
    bool s = e->stopping;
    pthread_mutex_unlock(&e->inbox_lock);
    return s;
}

static void engine_take_inbox(struct engine *e)
{
    pthread_mutex_lock(&e->inbox_lock);
    struct engine_cmd *c = e->inbox_head;
    e->inbox_head = e->inbox_tail = NULL;
    pthread_mutex_unlock(&e->inbox_lock);
    while (c) {
        struct engine_cmd *next = c->next;
        engine_handle_cmd(e, c);
        c = next;
    }
}

static struct engine_cmd *engine_pop_submit(struct engine *e)
{
    struct engine_cmd *c = e->submits_head;
    e->submits_head = c->next;
    if (!e->submits_head)
        e->submits_tail = NULL;
    return c;
}

/* Submissions first: someone is blocked in write(2). Returns ms until one
 * may go, at most wait; *rate_bound when the rate holds them back. */
static int64_t engine_launch_submits(struct engine *e, int64_t now, bool stopping, int64_t wait,
                                     bool *rate_bound)
{
    while (e->submits_head && e->inflight < MAX_INFLIGHT) {
        struct engine_cmd *c = e->submits_head;
        if (stopping) {
            engine_finish_cmd(engine_pop_submit(e), -EIO,
                              "genfs is unmounting: the task was not submitted");
            continue;
        }
        if (c->not_before_ms > now) {
            /* Retries keep their order: the first blocks those behind it. */
            int64_t w = c->not_before_ms - now;
            return w < wait ? w : wait;
        }
        int64_t rw = rate_take(&e->rate, now);
        if (rw > 0) {
            *rate_bound = true;
            return rw < wait ? rw : wait;
        }
        submit_start(e, engine_pop_submit(e));
    }
    return wait;
}

/* Status polls that are due, as the rate allows. */
static int64_t engine_launch_polls(struct engine *e, int64_t now, int64_t wait)
{
    uint32_t idx;
    int64_t due;
    while (e->inflight < MAX_INFLIGHT && timers_peek_first(&e->timers, &idx, &due)) {
        if (due > now)
            return due - now < wait ? due - now : wait;
        if (!team_may_poll(e, idx, now))
            continue;
        int64_t rw = rate_take(&e->rate, now);
        if (rw > 0)
            return rw < wait ? rw : wait;
        if (now - due > 1000)
            engine_count(e, &e->c.polls_late);
        plan_cancel(e, idx);
        if (!stream_start_due(e, idx))
            poll_start_status(e, idx);
    }
    return wait;
}

/* Starts what is due and allowed; returns ms until something may be due. */
static int64_t engine_launch_due(struct engine *e, int64_t now, bool stopping)
{
    bool rate_bound = false;
    int64_t wait = engine_launch_submits(e, now, stopping, FLUSH_EVERY_MS, &rate_bound);
    if (!rate_bound)
        wait = ctl_launch(e, now, stopping, wait); /* someone waits on a cancel, too */
    wait = upload_launch(e, now, stopping, wait);
    if (stopping || rate_bound)
        return wait;
    wait = cache_launch(e, now, wait);
    return engine_launch_polls(e, now, wait);
}

/* Whatever is still in flight at the end: answer its waiter, drop the rest. */
static void engine_drop_inflight(struct engine *e)
{
    while (e->xfers) {
        struct xfer *x = e->xfers;
        if (x->kind == X_STREAM) {
            stream_drop(e, x); /* its task no longer points at it */
            continue;
        }
        xfer_detach(e, x);
        if (x->cmd)
            engine_finish_cmd(x->cmd, -EIO,
                              "genfs is unmounting: the answer did not arrive in time");
        if (x->job)
            x->job->inflight = false; /* its submission fails in upload_launch */
        xfer_free(x);
    }
}

static void *engine_run_loop(void *arg)
{
    struct engine *e = arg;
    int64_t stop_started = 0;
    for (;;) {
        engine_take_inbox(e);
        bool stopping = engine_is_stopping(e);
        if (stopping && !stop_started)
            stop_started = clock_mono_ms();
        int running = 0;
        curl_multi_perform(e->multi, &running);
        engine_drain_done(e);
        stream_deliver(e);
        struct clock_pair now = clock_read_pair();
        team_tick(e, now);
        int64_t wait = engine_launch_due(e, now.mono_ms, stopping);
        if (now.mono_ms - e->last_flush_ms >= FLUSH_EVERY_MS) {
            store_flush(e->store);
            e->last_flush_ms = now.mono_ms;
        }
        engine_publish_figures(e);
        cache_forget_old(e, now);
        if (stopping) {
            /* Status polls can be dropped; a submission in flight cannot. */
            if (e->submits_inflight == 0 || now.mono_ms - stop_started > STOP_GRACE_MS)
                break;
            if (wait > 100)
                wait = 100;
        }
        if (wait < 0)
            wait = 0;
        if (wait > FLUSH_EVERY_MS)
            wait = FLUSH_EVERY_MS;
        /* A team mount also wakes when another mount changed something. */
        struct curl_waitfd db = {.fd = store_wait_fd(e->store), .events = CURL_WAIT_POLLIN};
        curl_multi_poll(e->multi, db.fd >= 0 ? &db : NULL, db.fd >= 0 ? 1 : 0, (int)wait, NULL);
    }
    engine_drop_inflight(e);
    engine_take_inbox(e);
    ctl_launch(e, clock_mono_ms(), true, 0);
    upload_launch(e, clock_mono_ms(), true, 0);
    store_flush(e->store);
    return NULL;
}

/* ---- public ---- */

static int engine_load_keys(struct engine *e, const struct engine_config *cfg)
{
    e->auth = calloc(cfg->n_providers, sizeof(char *));
    e->keys = calloc(cfg->n_providers, sizeof(char *));
    if (!e->auth || !e->keys)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n_providers; i++)
        e->keys[i] = strdup(cfg->providers[i].api_key);
    for (size_t i = 0; i < cfg->n_providers; i++) {
        e->auth[i] = provider_auth_header(cfg->providers[i].prov, cfg->providers[i].api_key);
        if (!e->auth[i]) {
            log_error(e->log, "provider %s: the API key cannot be sent (control characters?)",
                      cfg->providers[i].name);
            return -EINVAL;
        }
    }
    return 0;
}

/* Resumes every unfinished task where its schedule left off. */
static int engine_resume_tasks(struct engine *e, struct clock_pair now)
{
    uint32_t n = store_task_slots(e->store);
    if (n > 0 && plan_ensure_slot(e, n) < 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const struct task *t = store_task_at(e->store, i);
        if (t && !task_state_final(t->state))
            plan_schedule(e, t, now, 0);
    }
    cache_scan(e);
    e->cache_bytes_now = e->cache_bytes;
    return 0;
}

struct engine *engine_new(struct store *st, struct log *lg, const struct engine_config *cfg)
{
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->store = st;
    e->log = lg;
    e->cfg = *cfg;
    e->last_keep_ms = INT64_MIN / 2; /* -o keep looks at once */
    timers_init(&e->timers);
    pthread_mutex_init(&e->inbox_lock, NULL);
    pthread_mutex_init(&e->stats_lock, NULL);
    e->multi = curl_multi_init();
    int streams = stream_init(e);
    if (engine_load_keys(e, cfg) < 0 || !e->multi || streams < 0) {
        engine_free(e);
        return NULL;
    }
    /* Over HTTP/1.1 each open stream holds a connection of its own. */
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)(MAX_INFLIGHT + streams));
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)(MAX_INFLIGHT + streams));
    if (getrandom(&e->rng, sizeof(e->rng), 0) != sizeof(e->rng) || e->rng == 0)
        e->rng = (uint64_t)clock_now_ms() | 1;
    struct clock_pair now = clock_read_pair();
    rate_init(&e->rate, cfg->rate, now.mono_ms);
    e->rate_now = cfg->rate;
    if (engine_resume_tasks(e, now) < 0 || team_init(e) < 0) {
        engine_free(e);
        return NULL;
    }
    return e;
}

int engine_start(struct engine *e)
{
    int rc = pthread_create(&e->thread, NULL, engine_run_loop, e);
    if (rc != 0)
        return -rc;
    e->started = true;
    return 0;
}

const char *engine_provider_name(struct engine *e, uint32_t model_idx)
{
    store_rdlock(e->store);
    size_t pi = engine_provider_index(e, model_idx);
    store_unlock(e->store);
    return e->cfg.providers[pi].name;
}

void engine_set_announcer(struct engine *e, struct announcer *n)
{
    e->announcer = n;
}

void engine_set_hook(struct engine *e, struct hook *h)
{
    e->hook = h;
    for (uint32_t i = 0; i < store_task_slots(e->store); i++) {
        const struct task *t = store_task_at(e->store, i);
        if (t && t->cb_token && !task_state_final(t->state))
            hook_token_add(h, t->cb_token, i);
    }
}

static void engine_free_poll_now(struct engine_cmd *cmd, int err, const char *msg)
{
    (void)err;
    (void)msg;
    free(cmd);
}

void engine_poll_now(struct engine *e, uint32_t task_idx)
{
    struct engine_cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->kind = ENGINE_POLL_NOW;
    c->task_idx = task_idx;
    c->done = engine_free_poll_now;
    engine_post(e, c);
}

void engine_post(struct engine *e, struct engine_cmd *cmd)
{
    cmd->next = NULL;
    pthread_mutex_lock(&e->inbox_lock);
    if (e->inbox_tail)
        e->inbox_tail->next = cmd;
    else
        e->inbox_head = cmd;
    e->inbox_tail = cmd;
    pthread_mutex_unlock(&e->inbox_lock);
    curl_multi_wakeup(e->multi);
}

void engine_stop(struct engine *e)
{
    if (!e || !e->started)
        return;
    pthread_mutex_lock(&e->inbox_lock);
    e->stopping = true;
    pthread_mutex_unlock(&e->inbox_lock);
    curl_multi_wakeup(e->multi);
    pthread_join(e->thread, NULL);
    e->started = false;
}

void engine_wipe_keys(struct engine *e)
{
    for (size_t i = 0; e && i < e->cfg.n_providers; i++) {
        if (e->auth && e->auth[i])
            explicit_bzero(e->auth[i], strlen(e->auth[i]));
        if (e->keys && e->keys[i])
            explicit_bzero(e->keys[i], strlen(e->keys[i]));
    }
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    engine_stop(e);
    if (e->multi)
        curl_multi_cleanup(e->multi);
    engine_wipe_keys(e);
    for (size_t i = 0; e->auth && i < e->cfg.n_providers; i++)
        free(e->auth[i]);
    free(e->auth);
    for (size_t i = 0; e->keys && i < e->cfg.n_providers; i++)
        free(e->keys[i]);
    free(e->keys);
    cache_free(e);
    plan_free(e);
    stream_free(e);
    pthread_mutex_destroy(&e->inbox_lock);
    pthread_mutex_destroy(&e->stats_lock);
    free(e);
}
