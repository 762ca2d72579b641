/* Status streams (profile section stream, fal's status/stream): one GET per
 * pending task whose server-sent events are status objects. Each event is
 * applied as a poll's answer (poll_on_answer), so the state machine, the
 * result fetch and the downloads are the polls' own; the task's polls wait
 * while its stream is open. A stream that fails or ends before the task
 * does hands the task back to its schedule, after a backoff. */
#include "engine_internal.h"

#include "sse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define STREAM_ATTEMPTS 3 /* streams one task may open; then it is only polled */
#define STREAM_REFUSALS 3 /* "not here" answers in a row that turn a provider's streams off */
/* fal sends a comment every 15 s: a stream silent for this long is dead. */
#define STREAM_IDLE_MS 60000
/* Descriptors kept for all but streams: FUSE, SQLite, polls, downloads, the announcer. */
#define STREAM_FD_RESERVE 256

struct stream_prov {
    int max;      /* the profile's max_open; 0: no streams */
    int open;     /* open, or due to open at their timers */
    int refusals; /* 404/405/501 in a row, with no stream served between */
    bool off;     /* the provider does not serve streams: polls only */
};

struct stream_live {
    struct sse *sse;
    char *news; /* the latest status event not yet applied (each event is a whole status) */
    size_t news_len;
    int64_t last_byte_ms; /* monotonic */
    bool checked, http_ok;
};

int stream_init(struct engine *e)
{
    e->streams = calloc(e->cfg.n_providers ? e->cfg.n_providers : 1, sizeof(*e->streams));
    if (!e->streams)
        return -ENOMEM;
    int total = 0;
    /* With callbacks the provider already pushes the end: no stream besides. */
    for (size_t i = 0; !e->cfg.callback_url && i < e->cfg.n_providers; i++) {
        e->streams[i].max = provider_stream_max(engine_provider_of(e, i));
        total += e->streams[i].max;
    }
    /* Each stream may hold a connection's descriptor: leave room for everything else. */
    struct rlimit nofile;
    int budget = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < (1u << 20)
                     ? (int)nofile.rlim_cur - STREAM_FD_RESERVE
                     : 1 << 20;
    if (total > 0 && total > budget) {
        int kept = 0;
        for (size_t i = 0; i < e->cfg.n_providers; i++) {
            int m = e->streams[i].max;
            e->streams[i].max = budget > 0 ? (int)((int64_t)m * budget / total) : 0;
            kept += e->streams[i].max;
        }
        log_warn(e->log,
                 "the limit of open files (%d, ulimit -n) leaves room for %d status streams, "
                 "not the %d the profiles allow: the other pending tasks are polled (raise "
                 "ulimit -n for more)",
                 (int)nofile.rlim_cur, kept, total);
        total = kept;
    }
    return total;
}

void stream_free(struct engine *e)
{
    free(e->streams);
}

void stream_live_free(struct stream_live *live)
{
    if (!live)
        return;
    sse_free(live->sse);
    free(live->news);
    free(live);
}

/* While its stream is open a task is polled only at its deadline, so that
 * readers hear of the time limit on time. */
static void stream_arm_deadline(struct engine *e, const struct task *t, struct clock_pair now)
{
    plan_cancel(e, t->idx);
    int64_t dl = engine_task_deadline(e, t, engine_model_name(e, t));
    if (!t->gave_up && dl > now.wall_ms)
        plan_poll_at(e, t->idx, now.mono_ms + (dl - now.wall_ms));
    e->ts[t->idx].pt.phase = PHASE_POLLING;
}

bool stream_plan(struct engine *e, const struct task *t, struct clock_pair now)
{
    if (plan_ensure_slot(e, t->idx) < 0)
        return false;
    struct tsched *ts = &e->ts[t->idx];
    if (ts->stream) {
        stream_arm_deadline(e, t, now);
        return true;
    }
    if (ts->stream_wanted) {
        plan_poll_at(e, t->idx, now.mono_ms);
        return true;
    }
    struct stream_prov *sp = &e->streams[engine_provider_index(e, t->model_idx)];
    /* After a failed stream the schedule's next poll comes first. */
    if (sp->max == 0 || sp->off || sp->open >= sp->max || ts->stream_tries >= STREAM_ATTEMPTS ||
        now.mono_ms < ts->stream_after_ms)
        return false;
    sp->open++;
    ts->stream_wanted = true;
    ts->stream_pi = engine_provider_index(e, t->model_idx);
    plan_poll_at(e, t->idx, now.mono_ms);
    return true;
}

static void stream_on_event(void *arg, const struct sse_event *ev)
{
    struct stream_live *lv = arg;
    char *copy = malloc(ev->data_len + 1);
    if (!copy)
        return;
    memcpy(copy, ev->data, ev->data_len + 1);
    free(lv->news);
    lv->news = copy;
    lv->news_len = ev->data_len;
}

/* A refusal's body is kept as a poll's would be, to be read the same way. */
static size_t stream_keep_body(struct xfer *x, const char *ptr, size_t n)
{
    if (x->len + n > MAX_BODY)
        return n;
    char *b = realloc(x->buf, x->len + n + 1);
    if (!b)
        return 0;
    memcpy(b + x->len, ptr, n);
    x->buf = b;
    x->len += n;
    x->buf[x->len] = '\0';
    return n;
}

/* Runs inside curl_multi_perform: it only parses; stream_deliver applies. */
static size_t stream_on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    struct stream_live *lv = x->live;
    size_t n = size * nmemb;
    lv->last_byte_ms = clock_mono_ms();
    if (!lv->checked) {
        long code = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        lv->http_ok = code >= 200 && code <= 299;
        lv->checked = true;
    }
    if (!lv->http_ok)
        return stream_keep_body(x, ptr, n);
    return sse_feed(lv->sse, ptr, n, stream_on_event, lv) == 0 ? n : 0;
}

void stream_setopt(struct xfer *x)
{
    CURL *h = x->h;
    /* It lasts as long as the task: no overall timeout, a silence limit instead. */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, stream_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    /* One HTTP/2 connection carries them all where the provider offers it. */
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
}

static int stream_open(struct engine *e, const struct task *t, size_t pi)
{
    struct xfer *x = xfer_new(X_STREAM, pi);
    if (!x)
        return -ENOMEM;
    x->live = calloc(1, sizeof(*x->live));
    if (!x->live || !(x->live->sse = sse_new(MAX_BODY)) ||
        provider_build_stream(engine_provider_of(e, pi), engine_model_name(e, t), t->id, &x->req) <
            0) {
        xfer_free(x);
        return -ENOMEM;
    }
    x->task_idx = t->idx;
    struct clock_pair now = clock_read_pair();
    x->live->last_byte_ms = now.mono_ms;
    if (xfer_start(e, x, (long)(e->cfg.timeout_s * 500)) < 0) {
        xfer_free(x);
        return -EIO;
    }
    struct tsched *ts = &e->ts[t->idx];
    ts->stream = x;
    ts->stream_tries++;
    ts->pt.phase = PHASE_POLLING;
    /* One request, however long it stays open. */
    store_task_note_poll(e->store, t->idx, now.wall_ms);
    engine_count(e, &e->c.status);
    stream_arm_deadline(e, t, now);
    return 0;
}

bool stream_start_due(struct engine *e, uint32_t idx)
{
    struct tsched *ts = &e->ts[idx];
    if (!ts->stream_wanted)
        return false;
    ts->stream_wanted = false;
    const struct task *t = store_task_at(e->store, idx);
    if (t && !task_state_final(t->state) && stream_open(e, t, ts->stream_pi) == 0)
        return true;
    e->streams[ts->stream_pi].open--;
    return false;
}

/* The latest event of x, as the answer to a status poll of its task. */
static void stream_apply_news(struct engine *e, struct xfer *x, struct clock_pair now)
{
    struct stream_live *lv = x->live;
    char *data = lv->news;
    size_t len = lv->news_len;
    lv->news = NULL;
    uint32_t idx = x->task_idx;
    const struct task *t = store_task_at(e->store, idx);
    enum phase ph = e->ts[idx].pt.phase;
    if (t && !task_state_final(t->state) &&
        (ph == PHASE_POLLING || ph == PHASE_SCHEDULED || ph == PHASE_GIVEN_UP)) {
        xfer_redact(e, data);
        struct xfer answer = {
            .kind = X_STATUS, .pi = x->pi, .task_idx = idx, .buf = data, .len = len, .fd = -1};
        e->ts[idx].pt.phase = PHASE_POLLING;
        poll_on_answer(e, &answer, CURLE_OK, 200, now);
    }
    free(data);
}

void stream_deliver(struct engine *e)
{
    struct clock_pair now = clock_read_pair();
    for (struct xfer *x = e->xfers, *next; x; x = next) {
        next = x->next;
        if (x->kind != X_STREAM)
            continue;
        if (x->live->news) {
            stream_apply_news(e, x, now);
        } else if (now.mono_ms - x->live->last_byte_ms > STREAM_IDLE_MS) {
            xfer_detach(e, x);
            stream_on_end(e, x, CURLE_OPERATION_TIMEDOUT, 200, now);
            xfer_free(x);
        }
    }
}

/* 404, 405 or 501 before any event: the provider may not serve streams at
 * all; a few in a row with none served between turn its streams off. */
static bool stream_note_refusal(struct engine *e, const struct xfer *x, long http)
{
    struct stream_prov *sp = &e->streams[x->pi];
    bool served = sse_events(x->live->sse) > 0;
    bool refused = !served && (http == 404 || http == 405 || http == 501);
    if (served)
        sp->refusals = 0;
    if (refused && ++sp->refusals >= STREAM_REFUSALS && !sp->off) {
        sp->off = true;
        log_warn(e->log,
                 "provider %s: its status stream answers HTTP %ld; its tasks are polled instead "
                 "(remount to try streams again)",
                 e->cfg.providers[x->pi].name, http);
    }
    return refused;
}

/* The stream ended before its task: an HTTP error is read as a poll's
 * (a 429 slows the rate, a 5xx backs off); a cut or a clean early end
 * says nothing of the task, which goes back to its schedule. Either way no
 * stream for it again before a backoff. */
static void stream_fall_back(struct engine *e, struct xfer *x, CURLcode cc, long http, bool refused,
                             struct clock_pair now)
{
    uint32_t idx = x->task_idx;
    struct tsched *ts = &e->ts[idx];
    const struct task *t = store_task_at(e->store, idx);
    int64_t wait = plan_backoff_ms(e, ts->stream_tries);
    ts->stream_after_ms = now.mono_ms + wait;
    if (cc == CURLE_OK && (http < 200 || http > 299) && !refused) {
        x->kind = X_STATUS;
        ts->pt.phase = PHASE_POLLING;
        poll_on_answer(e, x, cc, http, now);
        x->kind = X_STREAM;
        return;
    }
    if (!refused) {
        engine_count(e, cc != CURLE_OK ? &e->c.transport_errors : &e->c.errors);
        char msg[512];
        if (cc != CURLE_OK)
            xfer_transport_msg(e, x, cc, true, msg, sizeof(msg));
        else
            snprintf(msg, sizeof(msg), "closed by the provider");
        if (engine_log_once(e, "a status stream ended early"))
            log_warn(e->log,
                     "%s/%s: its status stream ended before the task did (%s); it is polled "
                     "until another stream opens (said once per 10 min)",
                     engine_model_name(e, t), t->id, msg);
    }
    plan_schedule(e, t, now, refused ? 0 : now.mono_ms + wait);
}

void stream_on_end(struct engine *e, struct xfer *x, CURLcode cc, long http, struct clock_pair now)
{
    uint32_t idx = x->task_idx;
    if (x->live->news)
        stream_apply_news(e, x, now);
    if (idx >= e->ts_cap || e->ts[idx].stream != x)
        return;
    e->ts[idx].stream = NULL;
    e->streams[x->pi].open--;
    bool refused = stream_note_refusal(e, x, http);
    const struct task *t = store_task_at(e->store, idx);
    enum phase ph = e->ts[idx].pt.phase;
    if (!t || task_state_final(t->state) ||
        (ph != PHASE_POLLING && ph != PHASE_SCHEDULED && ph != PHASE_GIVEN_UP))
        return;
    stream_fall_back(e, x, cc, http, refused, now);
}

void stream_drop(struct engine *e, struct xfer *x)
{
    if (x->task_idx < e->ts_cap && e->ts[x->task_idx].stream == x) {
        e->ts[x->task_idx].stream = NULL;
        e->streams[x->pi].open--;
    }
    xfer_detach(e, x);
    xfer_free(x);
}

void stream_close(struct engine *e, uint32_t idx)
{
    if (idx >= e->ts_cap)
        return;
    struct tsched *ts = &e->ts[idx];
    if (ts->stream)
        stream_drop(e, ts->stream);
    if (ts->stream_wanted) {
        e->streams[ts->stream_pi].open--;
        ts->stream_wanted = false;
    }
}
