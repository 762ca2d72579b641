#include "engine.h"

#include "cachepath.h"
#include "clock.h"
#include "input.h"
#include "media.h"
#include "rate.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_INFLIGHT 48
#define MAX_BODY PROVIDER_MAX_BODY_BYTES
#define SUBMIT_ATTEMPTS 5
/* What genfs did about a submission that may have been taken, and what to check. */
#define MAY_EXIST                                                                                  \
    "genfs did not send it again, since the task may exist at the provider: check its "            \
    "dashboard, adopt the task with mkdir MODEL/ID if it is there, or write again if not"
/* "No such task" this many polls in a row (with backoff): the provider lost it. */
#define MISSING_POLLS 5
/* Result requests of a task the provider called done, before it is failed. */
#define RESULT_ATTEMPTS 5
#define CONNECT_TIMEOUT_MS 10000L
#define FLUSH_EVERY_MS 1000
#define STOP_GRACE_MS 15000
#define LAG_SAMPLES 4096
#define LOG_ONCE_SLOTS 64
#define LOG_ONCE_MS 600000

enum xfer_kind { X_SUBMIT, X_STATUS, X_ADOPT, X_RESULT, X_DOWNLOAD };

#define MAX_DOWNLOADS 4
#define DOWNLOAD_ATTEMPTS 4
#define MAX_REDIRECTS 5L
#define KEEP_EVERY_MS 3600000 /* -o keep looks for old tasks hourly (and at start) */

struct xfer {
    enum xfer_kind kind;
    size_t pi;                /* which provider */
    struct xfer *next, *prev; /* in engine->xfers */
    CURL *h;
    struct curl_slist *hdrs;
    struct provider_request req;
    uint32_t task_idx;
    struct engine_cmd *cmd;
    char *buf;
    size_t len, cap;
    bool too_big;
    char retry_after[64];
    char rl_remaining[32], rl_reset[32]; /* RateLimit-Remaining/-Reset (or X-RateLimit-) */
    const char *error_type_header;       /* the profile's, for API requests */
    char error_type[64];
    int write_errno;                /* a download's failed write to the cache */
    bool fresh;                     /* no connection reuse (submissions) */
    char token[HOOK_TOKEN_LEN + 1]; /* webhook mode: this submission's callback secret */
    /* downloads */
    uint32_t file_n;
    int attempt;
    int64_t cap_bytes;
    int fd;
    int64_t written;
    char content_type[128];
};

/* A result file waiting to be downloaded. */
struct dl_job {
    uint32_t task_idx;
    uint32_t file_n;
    int attempts;
    int64_t not_before_ms;
    struct dl_job *next;
};

/* Per-task scheduling state, parallel to the store's task slots. */
struct tsched {
    int64_t due_ms;
    uint32_t heap_pos; /* UINT32_MAX: not in the heap */
    uint32_t fail_streak;
    uint32_t missing_streak; /* status polls answered "no such task" in a row */
    uint32_t result_streak;  /* failed result requests of a task the provider called done */
    bool inflight;
    bool poll_again; /* a callback came while a poll was in flight: that poll may predate the end */
};

struct counters {
    uint64_t submit, status, adopt, downloads, download_bytes, evictions;
    uint64_t retries, http_429, errors, transport_errors;
    uint64_t disk_full;  /* writes to cache_dir or state_dir that found the disk full */
    uint64_t polls_late; /* sent over 1 s after due */
    double lag_ms[LAG_SAMPLES];
    uint32_t n_lag, lag_head;
};

struct engine {
    struct store *store;
    struct log *log;
    struct hook *hook;
    struct notify *notify; /* only for its figures */
    struct engine_config cfg;
    char **auth; /* the auth header line of each provider */
    char **keys; /* each provider's key, to mask it where a provider echoes it */
    CURLM *multi;
    pthread_t thread;
    bool started;

    pthread_mutex_t inbox_lock;
    struct engine_cmd *inbox_head, *inbox_tail;
    bool stopping; /* under inbox_lock */

    /* engine-thread only */
    struct engine_cmd *submits_head, *submits_tail;
    struct tsched *ts;
    uint32_t ts_cap;
    uint32_t *heap;
    uint32_t heap_len, heap_cap;
    int inflight;
    int submits_inflight;
    struct xfer *xfers;
    struct rate rate;
    uint64_t rng;
    int64_t last_flush_ms;
    struct dl_job *dl_head, *dl_tail;
    struct sched_hist *hists; /* the learned schedule's, by model index */
    uint32_t n_hists;
    struct {
        uint64_t hash;
        int64_t at_ms;
    } logged[LOG_ONCE_SLOTS];
    int downloads;
    int64_t cache_bytes;   /* whole files in the cache */
    int64_t kept_over_cap; /* bytes over cache_max that could not be evicted */
    bool over_cap_said;
    int64_t last_keep_ms;

    pthread_mutex_t stats_lock;
    struct counters c;
    int64_t cache_bytes_now;
    int64_t kept_over_cap_now;
    double rate_now;
};

/* ---- heap of tasks by due time ---- */

static bool heap_less(struct engine *e, uint32_t a, uint32_t b)
{
    return e->ts[e->heap[a]].due_ms < e->ts[e->heap[b]].due_ms;
}

static void heap_swap(struct engine *e, uint32_t a, uint32_t b)
{
    uint32_t t = e->heap[a];
    e->heap[a] = e->heap[b];
    e->heap[b] = t;
    e->ts[e->heap[a]].heap_pos = a;
    e->ts[e->heap[b]].heap_pos = b;
}

static void heap_up(struct engine *e, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(e, i, p))
            break;
        heap_swap(e, i, p);
        i = p;
    }
}

static void heap_down(struct engine *e, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->heap_len && heap_less(e, l, m))
            m = l;
        if (r < e->heap_len && heap_less(e, r, m))
            m = r;
        if (m == i)
            return;
        heap_swap(e, i, m);
        i = m;
    }
}

static int ts_ensure(struct engine *e, uint32_t idx)
{
    if (idx < e->ts_cap)
        return 0;
    uint32_t cap = e->ts_cap ? e->ts_cap : 1024;
    while (cap <= idx)
        cap *= 2;
    struct tsched *ts = realloc(e->ts, cap * sizeof(*ts));
    uint32_t *heap = realloc(e->heap, cap * sizeof(*heap));
    if (ts)
        e->ts = ts;
    if (heap)
        e->heap = heap;
    if (!ts || !heap)
        return -ENOMEM;
    for (uint32_t i = e->ts_cap; i < cap; i++)
        e->ts[i] = (struct tsched){.heap_pos = UINT32_MAX};
    e->ts_cap = cap;
    e->heap_cap = cap;
    return 0;
}

static void heap_remove(struct engine *e, uint32_t idx)
{
    if (idx >= e->ts_cap || e->ts[idx].heap_pos == UINT32_MAX)
        return;
    uint32_t pos = e->ts[idx].heap_pos;
    e->heap_len--;
    if (pos != e->heap_len) {
        heap_swap(e, pos, e->heap_len);
        heap_up(e, pos);
        heap_down(e, pos);
    }
    e->ts[idx].heap_pos = UINT32_MAX;
}

static void heap_set(struct engine *e, uint32_t idx, int64_t due)
{
    if (ts_ensure(e, idx) < 0) {
        log_error(e->log, "out of memory scheduling a poll");
        return;
    }
    struct tsched *t = &e->ts[idx];
    t->due_ms = due;
    if (t->heap_pos == UINT32_MAX) {
        t->heap_pos = e->heap_len;
        e->heap[e->heap_len++] = idx;
        heap_up(e, t->heap_pos);
    } else {
        heap_up(e, t->heap_pos);
        heap_down(e, t->heap_pos);
    }
}

/* ---- profiles and schedule ---- */

static void model_profile(struct engine *e, const char *model, struct sched_profile *p)
{
    for (size_t i = 0; i < e->cfg.n_models; i++)
        if (e->cfg.models[i].has_profile && strcmp(e->cfg.models[i].name, model) == 0) {
            *p = e->cfg.models[i].profile;
            return;
        }
    sched_profile_default(model, p);
}

static struct sched_task sched_view(const struct task *t)
{
    return (struct sched_task){
        .submit_ms = t->submit_ms, .last_poll_ms = t->last_poll_ms, .polls = t->polls};
}

/* The learned schedule's histogram of a model, loaded from the store the
 * first time; NULL for the other schedules. */
static struct sched_hist *model_hist(struct engine *e, uint32_t model_idx)
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
static void learn_duration(struct engine *e, uint32_t model_idx, const struct provider_status *ps)
{
    struct sched_hist *h = model_hist(e, model_idx);
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
    model_profile(e, model, &p);
    struct sched_task v = sched_view(t);
    if (e->cfg.schedule == SCHED_LEARNED)
        return sched_deadline_learned(&p, model_hist(e, t->model_idx), &v);
    return sched_deadline(e->cfg.schedule, &p, &v);
}

/* Next poll of a pending task: the schedule's time, but never past the
 * deadline, so readers hear of the give-up on time. */
static void schedule_task_after(struct engine *e, const struct task *t, int64_t now,
                                int64_t not_before)
{
    const struct model *m = store_model_at(e->store, t->model_idx);
    struct sched_profile p;
    model_profile(e, m->name, &p);
    struct sched_task v = sched_view(t);
    int64_t due, deadline;
    if (e->cfg.schedule == SCHED_LEARNED) {
        const struct sched_hist *h = model_hist(e, t->model_idx);
        due = sched_next_due_learned(&p, h, &v, now, &e->rng);
        deadline = sched_deadline_learned(&p, h, &v);
    } else {
        due = sched_next_due(e->cfg.schedule, &p, &v, now, &e->rng);
        deadline = sched_deadline(e->cfg.schedule, &p, &v);
    }
    if (e->cfg.callback_url && now < deadline) {
        /* Callbacks bring the news; polls are only a safety net for lost ones. */
        int64_t base =
            t->polls > 0 && t->last_poll_ms > t->submit_ms ? t->last_poll_ms : t->submit_ms;
        int64_t gap = e->cfg.callback_poll_ms;
        due = base + gap - gap / 10 + (int64_t)(sched_rand(&e->rng) % (uint64_t)(gap / 5 + 1));
        if (due < now)
            due = now;
    }
    if (!t->gave_up && deadline > now && (due == SCHED_NEVER || due > deadline))
        due = deadline;
    if (due != SCHED_NEVER && due < not_before)
        due = not_before;
    if (due == SCHED_NEVER) {
        log_info(e->log,
                 "%s/%s: no answer within 24 h; polling stopped (rmdir it or adopt it "
                 "again to retry)",
                 m->name, t->id);
        heap_remove(e, t->idx);
        return;
    }
    heap_set(e, t->idx, due);
}

static void schedule_task(struct engine *e, const struct task *t, int64_t now)
{
    schedule_task_after(e, t, now, 0);
}

/* The provider a model belongs to: its own, else the mount's (index 0). */
static size_t prov_index(struct engine *e, uint32_t model_idx)
{
    const struct model *m = store_model_at(e->store, model_idx);
    for (size_t i = 1; m && m->provider && i < e->cfg.n_providers; i++)
        if (strcmp(e->cfg.providers[i].name, m->provider) == 0)
            return i;
    return 0;
}

static const struct provider *prov_of(struct engine *e, size_t pi)
{
    return e->cfg.providers[pi].prov;
}

/* ---- transfers ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (x->len + n > MAX_BODY) {
        x->too_big = true;
        return 0;
    }
    if (x->len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + n + 1)
            cap *= 2;
        char *b = realloc(x->buf, cap);
        if (!b)
            return 0;
        x->buf = b;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, ptr, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return n;
}

/* Copies the value of header line ptr (n bytes) into out when its name is
 * name (with the colon, lower case); true if it was. */
static bool header_grab(const char *ptr, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    if (!name[0] || n <= nl || strncasecmp(ptr, name, nl) != 0 || ptr[nl] != ':')
        return false;
    const char *v = ptr + nl + 1;
    size_t vl = n - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= outlen)
        vl = outlen - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
    return true;
}

/* A provider whose RateLimit headers say the window is spent gets no request
 * until it resets. */
static void note_rate_headers(struct engine *e, const struct xfer *x, int64_t now)
{
    int64_t ms = provider_parse_ratelimit(x->rl_remaining[0] ? x->rl_remaining : NULL,
                                          x->rl_reset[0] ? x->rl_reset : NULL, time(NULL));
    if (ms > 0)
        rate_pause(&e->rate, now, ms);
}

static struct provider_headers xfer_headers(const struct xfer *x)
{
    return (struct provider_headers){.retry_after = x->retry_after[0] ? x->retry_after : NULL,
                                     .error_type = x->error_type[0] ? x->error_type : NULL};
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (n > 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        /* A new response (after a redirect): only its own headers count. */
        x->content_type[0] = x->retry_after[0] = x->error_type[0] = '\0';
        x->rl_remaining[0] = x->rl_reset[0] = '\0';
        return n;
    }
    const struct {
        const char *name;
        char *out;
        size_t len;
    } wanted[] = {
        {"content-type", x->content_type, sizeof(x->content_type)},
        {"retry-after", x->retry_after, sizeof(x->retry_after)},
        {"ratelimit-remaining", x->rl_remaining, sizeof(x->rl_remaining)},
        {"x-ratelimit-remaining", x->rl_remaining, sizeof(x->rl_remaining)},
        {"ratelimit-reset", x->rl_reset, sizeof(x->rl_reset)},
        {"x-ratelimit-reset", x->rl_reset, sizeof(x->rl_reset)},
        {x->error_type_header ? x->error_type_header : "", x->error_type, sizeof(x->error_type)},
    };
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
        if (header_grab(ptr, n, wanted[i].name, wanted[i].out, wanted[i].len))
            break;
    return n;
}

static void xfer_detach(struct engine *e, struct xfer *x)
{
    curl_multi_remove_handle(e->multi, x->h);
    e->inflight -= x->kind != X_DOWNLOAD;
    e->submits_inflight -= x->kind == X_SUBMIT;
    if (x->prev)
        x->prev->next = x->next;
    else
        e->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
}

static void xfer_free(struct xfer *x)
{
    if (!x)
        return;
    if (x->kind == X_DOWNLOAD && x->fd >= 0)
        close(x->fd);
    if (x->h)
        curl_easy_cleanup(x->h);
    /* One of them is the auth header: no copy of the key left in freed memory. */
    for (struct curl_slist *l = x->hdrs; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(x->hdrs);
    provider_request_clear(&x->req);
    free(x->buf);
    free(x);
}

static int xfer_add(struct engine *e, struct xfer *x)
{
    if (curl_multi_add_handle(e->multi, x->h) != CURLM_OK)
        return -EIO;
    /* Downloads have their own limit: they go to other hosts. */
    e->inflight += x->kind != X_DOWNLOAD;
    e->submits_inflight += x->kind == X_SUBMIT;
    x->prev = NULL;
    x->next = e->xfers;
    if (e->xfers)
        e->xfers->prev = x;
    e->xfers = x;
    return 0;
}

static int xfer_start(struct engine *e, struct xfer *x, long timeout_ms)
{
    x->h = curl_easy_init();
    if (!x->h)
        return -ENOMEM;
    x->error_type_header = provider_error_type_header(prov_of(e, x->pi));
    x->hdrs = curl_slist_append(x->hdrs, e->auth[x->pi]);
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    CURL *h = x->h;
    curl_easy_setopt(h, CURLOPT_URL, x->req.url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "genfs/" GENFS_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (x->fresh)
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    if (strcmp(x->req.method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->req.body ? x->req.body : "");
        if (strcmp(x->req.method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->req.method);
    }
    return xfer_add(e, x);
}

static void count(struct engine *e, uint64_t *field)
{
    pthread_mutex_lock(&e->stats_lock);
    (*field)++;
    pthread_mutex_unlock(&e->stats_lock);
}

static void record_lag(struct engine *e, double lag)
{
    pthread_mutex_lock(&e->stats_lock);
    e->c.lag_ms[e->c.lag_head] = lag;
    e->c.lag_head = (e->c.lag_head + 1) % LAG_SAMPLES;
    if (e->c.n_lag < LAG_SAMPLES)
        e->c.n_lag++;
    pthread_mutex_unlock(&e->stats_lock);
}

static int64_t backoff_ms(struct engine *e, uint32_t streak)
{
    int64_t b = 1000;
    for (uint32_t i = 1; i < streak && b < 60000; i++)
        b *= 2;
    if (b > 60000)
        b = 60000;
    return b / 2 + (int64_t)(sched_rand(&e->rng) % (uint64_t)(b / 2 + 1));
}

/* True when this message was not logged in the last 10 minutes: a flaky
 * provider must not flood the log with one line per poll. */
static bool log_once(struct engine *e, const char *msg)
{
    uint64_t h = 1469598103934665603u;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        h = (h ^ *p) * 1099511628211u;
    int64_t now = clock_now_ms();
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

/* ---- downloads of result files ---- */

static const char *model_of(struct engine *e, const struct task *t)
{
    return store_model_at(e->store, t->model_idx)->name;
}

static void dl_queue(struct engine *e, uint32_t idx, uint32_t n, bool front)
{
    for (struct dl_job *j = e->dl_head; j; j = j->next)
        if (j->task_idx == idx && j->file_n == n)
            return;
    struct dl_job *j = calloc(1, sizeof(*j));
    if (!j) {
        log_error(e->log, "out of memory queueing a download");
        return;
    }
    j->task_idx = idx;
    j->file_n = n;
    if (front || !e->dl_tail) {
        j->next = e->dl_head;
        e->dl_head = j;
        if (!e->dl_tail)
            e->dl_tail = j;
    } else {
        e->dl_tail->next = j;
        e->dl_tail = j;
    }
}

static void dl_queue_task(struct engine *e, const struct task *t)
{
    for (uint32_t n = 0; t->files && n < t->n_urls; n++)
        if (t->files[n].state == FILE_PENDING)
            dl_queue(e, t->idx, n, false);
}

static int mkdir_parents(char *path, mode_t mode)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, mode);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}

static size_t on_file_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (x->written + (int64_t)n > x->cap_bytes) {
        x->too_big = true;
        return 0;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(x->fd, ptr + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            x->write_errno = errno;
            return 0;
        }
        done += (size_t)w;
    }
    x->written += (int64_t)n;
    return n;
}

static void evict_if_needed(struct engine *e);

/* What a failed write to the cache leaves a file in: a full disk (or quota)
 * is said as such, counted, and retried at the next read. */
static enum file_state cache_failure(struct engine *e, int err)
{
    if (err != ENOSPC && err != EDQUOT)
        return FILE_FAILED;
    count(e, &e->c.disk_full);
    return FILE_NOSPACE;
}

/* A data: URI (or a text output) is the file itself: decoded into the part
 * file x->fd, then renamed like a download. */
static void save_inline_output(struct engine *e, struct xfer *x, const struct task *t)
{
    const char *model = model_of(e, t);
    unsigned char *bytes;
    size_t len;
    char type[128], name[32], part[4096], path[4096];
    int rc = media_data_uri_decode(t->urls[x->file_n], &bytes, &len, type, sizeof(type));
    const char *why = NULL;
    if (rc < 0) {
        why = rc == -ENOMEM ? "out of memory" : "the provider's data: URI is malformed";
    } else if ((int64_t)len > e->cfg.file_max_bytes) {
        why = "larger than file_max";
    } else {
        for (size_t done = 0; !why && done < len;) {
            ssize_t w = write(x->fd, bytes + done, len - done);
            if (w < 0 && errno != EINTR) {
                x->write_errno = errno;
                why = strerror(errno);
            } else if (w > 0) {
                done += (size_t)w;
            }
        }
    }
    free(bytes);
    cache_part_path(part, sizeof(part), e->cfg.cache_dir, model, t->id, x->file_n);
    store_file_name(t, x->file_n, type[0] && rc == 0 ? type : NULL, name, sizeof(name));
    if (!why && (fsync(x->fd) != 0 ||
                 cache_file_path(path, sizeof(path), e->cfg.cache_dir, model, t->id, name) < 0 ||
                 rename(part, path) != 0)) {
        x->write_errno = errno;
        why = strerror(errno);
    }
    if (why) {
        unlink(part);
        log_warn(e->log, "%s/%s: files/%s: cannot store the provider's inline output: %s%s", model,
                 t->id, name, why,
                 x->write_errno == ENOSPC ? ": cache_dir is full, free space there" : "");
        store_file_set(e->store, x->task_idx, x->file_n,
                       x->write_errno ? cache_failure(e, x->write_errno) : FILE_FAILED, NULL, -2);
        return;
    }
    store_file_set(e->store, x->task_idx, x->file_n, FILE_DONE, name, (int64_t)len);
    __atomic_store_n(&t->files[x->file_n].atime_ms, clock_now_ms(), __ATOMIC_RELAXED);
    e->cache_bytes += (int64_t)len;
    evict_if_needed(e);
}

static void start_download(struct engine *e, struct dl_job *j)
{
    const struct task *t = store_task_at(e->store, j->task_idx);
    if (!t || !t->files || j->file_n >= t->n_urls || t->files[j->file_n].state == FILE_DONE ||
        t->files[j->file_n].state == FILE_DOWNLOADING) {
        free(j);
        return;
    }
    char part[4096];
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x) {
        free(j);
        return;
    }
    x->kind = X_DOWNLOAD;
    x->fd = -1;
    x->task_idx = j->task_idx;
    x->file_n = j->file_n;
    x->attempt = j->attempts + 1;
    x->cap_bytes = e->cfg.file_max_bytes;
    if (cache_part_path(part, sizeof(part), e->cfg.cache_dir, model_of(e, t), t->id, j->file_n) <
            0 ||
        mkdir_parents(part, 0700) < 0 ||
        (x->fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        int saved = errno;
        log_error(e->log, "%s/%s: cannot write to the cache (%s): check cache_dir %s",
                  model_of(e, t), t->id, strerror(saved), e->cfg.cache_dir);
        store_file_set(e->store, j->task_idx, j->file_n, cache_failure(e, saved), NULL, -2);
        xfer_free(x);
        free(j);
        return;
    }
    if (media_is_data_uri(t->urls[j->file_n])) {
        save_inline_output(e, x, t);
        xfer_free(x);
        free(j);
        return;
    }
    x->h = curl_easy_init();
    CURL *h = x->h;
    /* A plain GET: the API key never goes to a result host. */
    curl_easy_setopt(h, CURLOPT_URL, t->urls[j->file_n]);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)e->cfg.file_max_bytes);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    /* Big files take long: give up only when the transfer stalls. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "genfs/" GENFS_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_file_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    if (xfer_add(e, x) < 0) {
        store_file_set(e->store, j->task_idx, j->file_n, FILE_FAILED, NULL, -2);
        xfer_free(x);
        free(j);
        return;
    }
    e->downloads++;
    count(e, &e->c.downloads);
    store_file_set(e->store, j->task_idx, j->file_n, FILE_DOWNLOADING, NULL, -2);
    free(j);
}

/* A whole file may leave the cache only if it can be fetched again: its
 * provider's result URLs never expire. Anything else is the user's data. */
static bool evictable(struct engine *e, const struct task *t, uint32_t n)
{
    return t->files[n].state == FILE_DONE && !media_is_data_uri(t->urls[n]) &&
           provider_url_lifetime_s(prov_of(e, prov_index(e, t->model_idx))) < 0;
}

/* Least recently opened evictable files go first, until the cache fits its
 * cap; what cannot go is kept, and the log and stats say so. */
static void evict_if_needed(struct engine *e)
{
    while (e->cfg.cache_max_bytes > 0 && e->cache_bytes > e->cfg.cache_max_bytes) {
        const struct task *victim = NULL;
        uint32_t vn = 0;
        int64_t oldest = INT64_MAX;
        for (uint32_t i = 0; i < store_task_slots(e->store); i++) {
            const struct task *t = store_task_at(e->store, i);
            for (uint32_t n = 0; t && t->files && n < t->n_urls; n++) {
                int64_t at = __atomic_load_n(&t->files[n].atime_ms, __ATOMIC_RELAXED);
                if (at < oldest && evictable(e, t, n)) {
                    oldest = at;
                    victim = t;
                    vn = n;
                }
            }
        }
        if (!victim) {
            int64_t over = e->cache_bytes - e->cfg.cache_max_bytes;
            if (!e->over_cap_said)
                log_warn(e->log,
                         "the cache holds %lld bytes over cache_max: they are results whose "
                         "URLs expire at the provider, kept because they could not be fetched "
                         "again; forget finished tasks with rmdir, or mount with -o keep=DAYS",
                         (long long)over);
            e->over_cap_said = true;
            e->kept_over_cap = over;
            return;
        }
        char path[4096];
        if (cache_file_path(path, sizeof(path), e->cfg.cache_dir, model_of(e, victim), victim->id,
                            victim->files[vn].name) == 0)
            unlink(path);
        e->cache_bytes -= victim->files[vn].size;
        count(e, &e->c.evictions);
        log_info(e->log, "%s/%s: evicted files/%s from the cache (fetched again when read)",
                 model_of(e, victim), victim->id, victim->files[vn].name);
        store_file_set(e->store, victim->idx, vn, FILE_PENDING, NULL, -2);
    }
    e->over_cap_said = false;
    e->kept_over_cap = 0;
}

static void cache_forget(struct engine *e, const struct task *t);

/* -o keep=DAYS: finished tasks that ended longer ago are forgotten, with their
 * files, as rmdir would. */
static void forget_old(struct engine *e, int64_t now)
{
    if (e->cfg.keep_ms <= 0 || now - e->last_keep_ms < KEEP_EVERY_MS)
        return;
    e->last_keep_ms = now;
    for (uint32_t i = 0; i < store_task_slots(e->store); i++) {
        const struct task *t = store_task_at(e->store, i);
        if (!t || !task_state_final(t->state) || now - t->change_ms < e->cfg.keep_ms)
            continue;
        log_info(e->log, "%s/%s: forgotten (ended over %lld days ago: -o keep)", model_of(e, t),
                 t->id, (long long)(e->cfg.keep_ms / 86400000));
        cache_forget(e, t);
        hook_token_remove(e->hook, t->cb_token);
        if (store_task_remove(e->store, i) == 0 && i < e->ts_cap)
            heap_remove(e, i);
    }
}

static void on_download_done(struct engine *e, struct xfer *x, CURLcode cc, long http, int64_t now)
{
    e->downloads--;
    const struct task *t = store_task_at(e->store, x->task_idx);
    char part[4096];
    if (!t) {
        return; /* forgotten meanwhile: its cache dir is gone */
    }
    const char *model = model_of(e, t);
    cache_part_path(part, sizeof(part), e->cfg.cache_dir, model, t->id, x->file_n);
    const char *url = t->urls[x->file_n];
    char why[256] = "";
    enum file_state final = FILE_FAILED;
    bool retry = false;
    if (cc == CURLE_OK && http >= 200 && http < 300) {
        char name[32], path[4096];
        store_file_name(t, x->file_n, x->content_type[0] ? x->content_type : NULL, name,
                        sizeof(name));
        if (fsync(x->fd) != 0 ||
            cache_file_path(path, sizeof(path), e->cfg.cache_dir, model, t->id, name) < 0 ||
            rename(part, path) != 0) {
            int saved = errno;
            final = cache_failure(e, saved);
            snprintf(why, sizeof(why), "cannot store it in cache_dir %s: %s", e->cfg.cache_dir,
                     strerror(saved));
        } else {
            store_file_set(e->store, x->task_idx, x->file_n, FILE_DONE, name, x->written);
            __atomic_store_n(&t->files[x->file_n].atime_ms, now, __ATOMIC_RELAXED);
            e->cache_bytes += x->written;
            pthread_mutex_lock(&e->stats_lock);
            e->c.download_bytes += (uint64_t)x->written;
            pthread_mutex_unlock(&e->stats_lock);
            evict_if_needed(e);
            return;
        }
    } else if (cc == CURLE_OK && (http == 403 || http == 404 || http == 410)) {
        final = FILE_EXPIRED;
        snprintf(why, sizeof(why),
                 "the result URL expired (HTTP %ld): the provider no longer "
                 "serves it",
                 http);
    } else if (cc == CURLE_OK) {
        snprintf(why, sizeof(why), "HTTP %ld", http);
        retry = http == 408 || http == 429 || http >= 500;
    } else if (cc == CURLE_UNSUPPORTED_PROTOCOL) {
        snprintf(why, sizeof(why), "refused: it leads to a URL that is not http(s)");
    } else if (cc == CURLE_TOO_MANY_REDIRECTS) {
        snprintf(why, sizeof(why), "refused: more than %ld redirects", MAX_REDIRECTS);
    } else if (cc == CURLE_FILESIZE_EXCEEDED || (cc == CURLE_WRITE_ERROR && x->too_big)) {
        snprintf(why, sizeof(why), "refused: larger than the %lld-byte file_max",
                 (long long)e->cfg.file_max_bytes);
    } else if (cc == CURLE_WRITE_ERROR && x->write_errno) {
        final = cache_failure(e, x->write_errno);
        snprintf(why, sizeof(why), "cannot write to cache_dir %s: %s%s", e->cfg.cache_dir,
                 strerror(x->write_errno),
                 final == FILE_NOSPACE ? " (free space there; a read tries again)" : "");
    } else {
        snprintf(why, sizeof(why), "%s", curl_easy_strerror(cc));
        retry = cc != CURLE_WRITE_ERROR;
    }
    unlink(part);
    if (retry && x->attempt < DOWNLOAD_ATTEMPTS) {
        count(e, &e->c.retries);
        log_info(e->log, "%s/%s: download of files/%u failed (%s); retrying", model, t->id,
                 x->file_n, why);
        store_file_set(e->store, x->task_idx, x->file_n, FILE_PENDING, NULL, -2);
        dl_queue(e, x->task_idx, x->file_n, false);
        for (struct dl_job *j = e->dl_head; j; j = j->next)
            if (j->task_idx == x->task_idx && j->file_n == x->file_n) {
                j->attempts = x->attempt;
                j->not_before_ms = now + backoff_ms(e, (uint32_t)x->attempt);
            }
        return;
    }
    log_warn(e->log, "%s/%s: download of files/%u failed: %s (%s)", model, t->id, x->file_n, why,
             url);
    store_file_set(e->store, x->task_idx, x->file_n, final, NULL, -2);
}

/* Removes a task's cache directory and what is in it. */
static void cache_forget(struct engine *e, const struct task *t)
{
    char dir[4096];
    if (cache_task_dir(dir, sizeof(dir), e->cfg.cache_dir, model_of(e, t), t->id) < 0)
        return;
    for (uint32_t n = 0; t->files && n < t->n_urls; n++)
        if (t->files[n].state == FILE_DONE)
            e->cache_bytes -= t->files[n].size;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
    rmdir(dir);
}

/* At start: what is already in the cache is served from there; the rest of
 * every finished task's files is downloaded again. */
static void cache_scan(struct engine *e)
{
    for (uint32_t i = 0; i < store_task_slots(e->store); i++) {
        const struct task *t = store_task_at(e->store, i);
        for (uint32_t n = 0; t && t->files && n < t->n_urls; n++) {
            char path[4096];
            struct stat st;
            if (cache_file_path(path, sizeof(path), e->cfg.cache_dir, model_of(e, t), t->id,
                                t->files[n].name) == 0 &&
                stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                (t->files[n].size < 0 || st.st_size == t->files[n].size)) {
                store_file_set(e->store, i, n, FILE_DONE, NULL, st.st_size);
                int64_t at = (int64_t)st.st_atim.tv_sec * 1000;
                __atomic_store_n(&t->files[n].atime_ms, at, __ATOMIC_RELAXED);
                e->cache_bytes += st.st_size;
            } else {
                dl_queue(e, i, n, false);
            }
        }
    }
    evict_if_needed(e);
}

/* A provider may echo the key back (in an error message, a failMsg): never
 * let it reach the log, the mount or the database. */
static void redact(struct engine *e, char *text)
{
    for (size_t i = 0; text && e->keys && i < e->cfg.n_providers; i++) {
        const char *key = e->keys[i];
        size_t n = key ? strlen(key) : 0;
        if (n < 4)
            continue;
        for (char *p = strstr(text, key); p; p = strstr(p + n, key))
            memset(p, '*', n);
    }
}

static void redact_status(struct engine *e, struct provider_status *ps, struct provider_error *perr)
{
    redact(e, perr->msg);
    redact(e, ps->fail_code);
    redact(e, ps->fail_msg);
    redact(e, ps->data_json);
}

/* ---- commands ---- */

static void cmd_finish(struct engine_cmd *cmd, int err, const char *msg)
{
    if (cmd->done)
        cmd->done(cmd, err, msg);
}

/* A submission that ends in an error: said once, here, with the model (the
 * writer hears the same message as its errno). */
static void submit_fail(struct engine *e, struct engine_cmd *cmd, int err, const char *msg)
{
    const struct model *m = store_model_at(e->store, cmd->model_idx);
    count(e, &e->c.errors);
    log_warn(e->log, "%s: submission failed: %s", m ? m->name : "?", msg);
    cmd_finish(cmd, err, msg);
}

static void submit_queue(struct engine *e, struct engine_cmd *cmd)
{
    cmd->next = NULL;
    if (e->submits_tail)
        e->submits_tail->next = cmd;
    else
        e->submits_head = cmd;
    e->submits_tail = cmd;
}

static int start_submit(struct engine *e, struct engine_cmd *cmd)
{
    const struct model *m = store_model_at(e->store, cmd->model_idx);
    if (!m) {
        submit_fail(e, cmd, -ENOENT, "the model directory was removed");
        return 0;
    }
    struct xfer *x = calloc(1, sizeof(*x));
    char cb[1024] = "";
    if (x && e->cfg.callback_url) {
        size_t bl = strlen(e->cfg.callback_url);
        while (bl > 0 && e->cfg.callback_url[bl - 1] == '/')
            bl--;
        if (hook_token_new(x->token) < 0) {
            xfer_free(x);
            submit_fail(e, cmd, -EIO, "cannot draw a random callback token");
            return 0;
        }
        snprintf(cb, sizeof(cb), "%.*s/%s", (int)bl, e->cfg.callback_url, x->token);
    }
    if (x)
        x->pi = prov_index(e, cmd->model_idx);
    if (!x || provider_build_submit(prov_of(e, x->pi), m->name, cmd->input_json, m->request,
                                    cb[0] ? cb : NULL, &x->req) < 0) {
        xfer_free(x);
        submit_fail(e, cmd, -ENOMEM, "out of memory building the request");
        return 0;
    }
    x->kind = X_SUBMIT;
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
    count(e, &e->c.submit);
    return 1;
}

static void start_status(struct engine *e, uint32_t idx, struct engine_cmd *adopt)
{
    const char *model, *id, *status_url = NULL;
    char *id_copy = NULL;
    uint32_t model_idx;
    if (adopt) {
        const struct model *m = store_model_at(e->store, adopt->model_idx);
        if (!m) {
            cmd_finish(adopt, -ENOENT, "the model directory was removed");
            return;
        }
        model = m->name;
        id = adopt->name;
        model_idx = adopt->model_idx;
    } else {
        const struct task *t = store_task_at(e->store, idx);
        if (!t)
            return;
        model = store_model_at(e->store, t->model_idx)->name;
        id = t->id;
        status_url = t->status_url;
        model_idx = t->model_idx;
    }
    struct xfer *x = calloc(1, sizeof(*x));
    if (x)
        x->pi = prov_index(e, model_idx);
    if (!x || provider_build_status(prov_of(e, x->pi), model, id, status_url, &x->req) < 0) {
        xfer_free(x);
        free(id_copy);
        if (adopt)
            cmd_finish(adopt, -ENOMEM, "out of memory building the request");
        return;
    }
    x->kind = adopt ? X_ADOPT : X_STATUS;
    x->cmd = adopt;
    x->task_idx = idx;
    /* A poll is cheap to repeat: half the submit's patience. */
    if (xfer_start(e, x, (long)(e->cfg.timeout_s * 500)) < 0) {
        xfer_free(x);
        if (adopt)
            cmd_finish(adopt, -EIO, "cannot start the HTTP request");
        else
            heap_set(e, idx, clock_now_ms() + 1000);
        return;
    }
    if (adopt) {
        count(e, &e->c.adopt);
    } else {
        e->ts[idx].inflight = true;
        store_task_note_poll(e->store, idx, clock_now_ms());
        count(e, &e->c.status);
    }
}

/* Profiles whose status says only "done" keep the result at another URL. */
static void start_result(struct engine *e, uint32_t idx)
{
    const struct task *t = store_task_at(e->store, idx);
    if (!t)
        return;
    const char *model = store_model_at(e->store, t->model_idx)->name;
    struct xfer *x = calloc(1, sizeof(*x));
    if (x)
        x->pi = prov_index(e, t->model_idx);
    if (!x || provider_build_result(prov_of(e, x->pi), model, t->id, t->result_url, &x->req) < 0) {
        xfer_free(x);
        log_error(e->log, "%s/%s: cannot build the result request", model, t->id);
        heap_set(e, idx, clock_now_ms() + 5000);
        return;
    }
    x->kind = X_RESULT;
    x->task_idx = idx;
    if (xfer_start(e, x, (long)(e->cfg.timeout_s * 500)) < 0) {
        xfer_free(x);
        heap_set(e, idx, clock_now_ms() + 1000);
        return;
    }
    e->ts[idx].inflight = true;
    count(e, &e->c.status);
}

static void handle_cmd(struct engine *e, struct engine_cmd *cmd)
{
    int rc;
    uint32_t idx;
    switch (cmd->kind) {
    case ENGINE_SUBMIT: {
        cmd->first_ms = clock_now_ms();
        /* The model's defaults go under the writer's input once, here: input.json shows
         * what was sent. */
        const struct model *m = store_model_at(e->store, cmd->model_idx);
        char *merged = NULL;
        if (m && m->defaults) {
            rc = input_merge_defaults(m->defaults, cmd->input_json, &merged);
            if (rc < 0) {
                submit_fail(e, cmd, rc,
                            "the model's defaults.json and the input cannot be merged: both must "
                            "be JSON objects");
                break;
            }
            free(cmd->input_json);
            cmd->input_json = merged;
        }
        cmd->not_before_ms = 0;
        submit_queue(e, cmd);
        break;
    }
    case ENGINE_MODEL_SET: {
        bool defaults = strcmp(cmd->name, "defaults") == 0;
        rc = defaults ? store_model_set_defaults(e->store, cmd->model_idx, cmd->input_json)
                      : store_model_set_request(e->store, cmd->model_idx, cmd->input_json);
        cmd_finish(cmd, rc,
                   rc ? "cannot store the model's settings in the database: see the log" : NULL);
        break;
    }
    case ENGINE_ADOPT: {
        const struct task *t = store_task_find(e->store, cmd->model_idx, cmd->name);
        if (t) {
            cmd->task_idx = t->idx;
            cmd_finish(cmd, -EEXIST, "that task is already here");
        } else {
            start_status(e, STORE_NONE, cmd);
        }
        break;
    }
    case ENGINE_FORGET:
        if (store_task_at(e->store, cmd->task_idx)) {
            cache_forget(e, store_task_at(e->store, cmd->task_idx));
            hook_token_remove(e->hook, store_task_at(e->store, cmd->task_idx)->cb_token);
        }
        rc = store_task_remove(e->store, cmd->task_idx);
        if (rc == 0 && cmd->task_idx < e->ts_cap)
            heap_remove(e, cmd->task_idx);
        cmd_finish(cmd, rc, rc ? "cannot forget the task: see the log" : NULL);
        break;
    case ENGINE_MODEL_ADD: {
        /* A model made by mkdir belongs where its namespace's models do. */
        const char *prov = NULL;
        const char *slash = strrchr(cmd->name, '/');
        for (uint32_t i = 0; slash && !prov && i < store_model_slots(e->store); i++) {
            const struct model *m = store_model_at(e->store, i);
            if (m && !m->ns && m->provider &&
                strncmp(m->name, cmd->name, (size_t)(slash - cmd->name) + 1) == 0)
                prov = m->provider;
        }
        rc = store_model_add(e->store, cmd->name, prov, &idx);
        cmd->model_idx = idx;
        cmd_finish(cmd, rc, rc == -EEXIST ? "the model exists" : rc ? "cannot add the model" : 0);
        break;
    }
    case ENGINE_MODEL_REMOVE:
        rc = store_model_remove(e->store, cmd->model_idx);
        cmd_finish(cmd, rc, rc == -ENOTEMPTY ? "the model still holds tasks: rmdir them first" : 0);
        break;
    case ENGINE_FETCH: {
        const struct task *t = store_task_at(e->store, cmd->task_idx);
        if (t && t->files && cmd->file_n < t->n_urls) {
            enum file_state fs = t->files[cmd->file_n].state;
            if (fs == FILE_FAILED || fs == FILE_NOSPACE)
                store_file_set(e->store, cmd->task_idx, cmd->file_n, FILE_PENDING, NULL, -2);
            if (fs == FILE_FAILED || fs == FILE_NOSPACE || fs == FILE_PENDING)
                dl_queue(e, cmd->task_idx, cmd->file_n, true);
        }
        cmd_finish(cmd, 0, NULL);
        break;
    }
    case ENGINE_POLL_NOW: {
        const struct task *t = store_task_at(e->store, cmd->task_idx);
        if (t && !task_state_final(t->state) && cmd->task_idx < e->ts_cap) {
            if (e->ts[cmd->task_idx].inflight)
                e->ts[cmd->task_idx].poll_again = true;
            else
                heap_set(e, cmd->task_idx, clock_now_ms());
        }
        cmd_finish(cmd, 0, NULL);
        break;
    }
    }
}

/* ---- answers ---- */

static void transport_error_msg(CURLcode cc, char *msg, size_t len)
{
    snprintf(msg, len, "network error talking to the provider: %s", curl_easy_strerror(cc));
}

/* A submit may be retried only when the provider provably did not take it. */
static bool submit_not_taken(CURLcode cc)
{
    return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
           cc == CURLE_COULDNT_RESOLVE_PROXY || cc == CURLE_SSL_CONNECT_ERROR;
}

static void on_submit_done(struct engine *e, struct xfer *x, CURLcode cc, long http, int64_t now)
{
    struct engine_cmd *cmd = x->cmd;
    const struct model *m = store_model_at(e->store, cmd->model_idx);
    char msg[400];
    int err;
    bool retry = false, throttled = false;
    int64_t wait = -1;
    note_rate_headers(e, x, now);
    if (cc != CURLE_OK) {
        count(e, &e->c.transport_errors);
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            err = -ETIMEDOUT;
            snprintf(msg, sizeof(msg), "the provider did not answer the submission in time; %s",
                     MAY_EXIST);
        } else {
            err = -EIO;
            transport_error_msg(cc, msg, sizeof(msg));
            retry = submit_not_taken(cc);
            if (!retry)
                snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "; %s", MAY_EXIST);
        }
    } else {
        struct provider_submit sub = {0};
        struct provider_error perr = {0};
        struct provider_headers hdr = xfer_headers(x);
        err = provider_parse_submit(prov_of(e, x->pi), http, x->buf ? x->buf : "", x->len, &hdr,
                                    time(NULL), &sub, &perr);
        redact(e, perr.msg);
        if (err == 0) {
            uint32_t idx;
            rate_on_success(&e->rate);
            struct task_new tn = {.model_idx = cmd->model_idx,
                                  .id = sub.task_id,
                                  .input_json = cmd->input_json,
                                  .prompt = cmd->prompt,
                                  .status_url = sub.status_url,
                                  .result_url = sub.result_url,
                                  .cb_token = x->token[0] ? x->token : NULL,
                                  .submit_ms = now};
            err = store_task_insert(e->store, &tn, &idx);
            if (err == 0) {
                cmd->task_idx = idx;
                if (x->token[0])
                    hook_token_add(e->hook, x->token, idx);
                log_info(e->log, "%s/%s: submitted", m ? m->name : "?", sub.task_id);
                schedule_task(e, store_task_at(e->store, idx), now);
                cmd_finish(cmd, 0, NULL);
            } else {
                bool full = err == -ENOSPC;
                if (full)
                    count(e, &e->c.disk_full);
                log_error(e->log,
                          "%s/%s: accepted by the provider but not stored (%s%s): adopt it with "
                          "mkdir %s/%s once there is room",
                          m ? m->name : "?", sub.task_id, strerror(-err),
                          full ? ": state_dir is full" : "", m ? m->name : "MODEL", sub.task_id);
                snprintf(msg, sizeof(msg), "task %s was accepted but could not be stored%s",
                         sub.task_id, full ? ": state_dir is full" : "");
                cmd_finish(cmd, full ? -ENOSPC : -EIO, msg);
            }
            provider_submit_clear(&sub);
            return;
        }
        snprintf(msg, sizeof(msg), "%s", perr.msg);
        if (http == 429 || perr.err == -EAGAIN) {
            count(e, &e->c.http_429);
            rate_on_throttle(&e->rate, now, perr.retry_after_ms);
            throttled = true;
        } else if (http == 503 && perr.retry_after_ms >= 0) {
            retry = true;
        }
        wait = perr.retry_after_ms;
        if (!retry && !throttled && perr.retryable && (http < 200 || http >= 300))
            snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "; %s", MAY_EXIST);
        err = perr.err ? perr.err : -EIO;
    }
    /* Nothing was taken on a 429, so retrying is safe: until the request's
     * timeout, honouring Retry-After and the shared rate. */
    /* A 429 that says when to come back is retried then, not on a growing backoff
     * (a storm of them would stall the write for minutes). */
    int64_t b = throttled && wait >= 0 ? 0 : backoff_ms(e, (uint32_t)cmd->attempts);
    int64_t next = now + (wait > b ? wait : b);
    if (throttled && next < cmd->first_ms + (int64_t)(e->cfg.timeout_s * 1000))
        retry = true;
    else if (throttled)
        snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
                 "; still refused after %.0f s (-o timeout): nothing was submitted, write again "
                 "later",
                 e->cfg.timeout_s);
    if (retry && (throttled || cmd->attempts < SUBMIT_ATTEMPTS)) {
        count(e, &e->c.retries);
        cmd->not_before_ms = next;
        log_info(e->log, "%s: submission not taken (%s); retrying", m ? m->name : "?", msg);
        submit_queue(e, cmd);
        return;
    }
    submit_fail(e, cmd, err, msg);
}

/* Past its deadline a pending task's readers get ETIMEDOUT; polling goes on slowly. */
static void check_deadline(struct engine *e, uint32_t idx, const struct task *t, const char *model,
                           int64_t now)
{
    if (t->gave_up || task_state_final(t->state) || now < engine_task_deadline(e, t, model))
        return;
    log_warn(e->log,
             "%s/%s: not done within the model's time limit; readers get ETIMEDOUT, polling goes "
             "on slowly for 24 h",
             model, t->id);
    store_task_set_gave_up(e->store, idx, true);
}

/* A status (or result) answer parsed: store it; a task that ended gets its
 * downloads queued and teaches the schedule, one still pending is scheduled. */
static void apply_answer(struct engine *e, uint32_t idx, const struct provider_status *ps,
                         bool poll_again, int64_t now)
{
    const struct task *t = store_task_at(e->store, idx);
    const char *model = model_of(e, t);
    bool was_final = task_state_final(t->state);
    store_task_apply_status(e->store, idx, ps, now);
    t = store_task_at(e->store, idx);
    if (!task_state_final(t->state)) {
        check_deadline(e, idx, t, model, now);
        if (poll_again)
            heap_set(e, idx, now);
        else
            schedule_task(e, t, now);
        return;
    }
    heap_remove(e, idx);
    if (was_final)
        return;
    dl_queue_task(e, t);
    hook_token_remove(e->hook, t->cb_token);
    if (t->state == TASK_SUCCESS)
        learn_duration(e, t->model_idx, ps);
    log_info(e->log, "%s/%s: %s", model, t->id, task_state_name(t->state));
    if (ps->complete_ms > 0 && now >= ps->complete_ms)
        record_lag(e, (double)(now - ps->complete_ms));
}

/* genfs itself ends a task as failed (the provider lost it, or will not give
 * its result): the log says why, readers are answered, nothing polls it again. */
static void fail_task(struct engine *e, uint32_t idx, const char *code, int64_t now,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail_task(struct engine *e, uint32_t idx, const char *code, int64_t now,
                      const char *fmt, ...)
{
    const struct task *t = store_task_at(e->store, idx);
    if (!t)
        return;
    struct provider_status ps = {.state = TASK_FAILED, .progress = -1};
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&ps.fail_msg, fmt, ap) < 0)
        ps.fail_msg = NULL;
    va_end(ap);
    log_warn(e->log, "%s/%s: %s", model_of(e, t), t->id, ps.fail_msg ? ps.fail_msg : code);
    ps.fail_code = strdup(code);
    ps.data_json = t->status_json ? strdup(t->status_json) : NULL;
    apply_answer(e, idx, &ps, false, now);
    provider_status_clear(&ps);
}

static void on_status_done(struct engine *e, struct xfer *x, CURLcode cc, long http, int64_t now)
{
    uint32_t idx = x->task_idx;
    struct engine_cmd *adopt = x->kind == X_ADOPT ? x->cmd : NULL;
    bool poll_again = false;
    if (!adopt) {
        if (idx < e->ts_cap) {
            e->ts[idx].inflight = false;
            poll_again = e->ts[idx].poll_again;
            e->ts[idx].poll_again = false;
        }
        if (!store_task_at(e->store, idx))
            return; /* forgotten meanwhile */
    }
    struct provider_status ps = {0};
    struct provider_error perr = {0};
    int err;
    char msg[300];
    if (cc != CURLE_OK) {
        count(e, &e->c.transport_errors);
        err = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        transport_error_msg(cc, msg, sizeof(msg));
        perr.retryable = true;
        perr.retry_after_ms = -1;
    } else {
        int (*parse)(const struct provider *, long, const char *, size_t,
                     const struct provider_headers *, time_t, struct provider_status *,
                     struct provider_error *) =
            x->kind == X_RESULT ? provider_parse_result : provider_parse_status;
        note_rate_headers(e, x, now);
        struct provider_headers hdr = xfer_headers(x);
        err = parse(prov_of(e, x->pi), http, x->buf ? x->buf : "", x->len, &hdr, time(NULL), &ps,
                    &perr);
        redact_status(e, &ps, &perr);
        snprintf(msg, sizeof(msg), "%s", perr.msg);
        if (http == 429 || perr.err == -EAGAIN) {
            count(e, &e->c.http_429);
            rate_on_throttle(&e->rate, now, perr.retry_after_ms);
        } else if (err == 0) {
            rate_on_success(&e->rate);
        }
    }

    if (adopt) {
        const struct model *m = store_model_at(e->store, adopt->model_idx);
        if (err == 0 && m) {
            struct task_new tn = {.model_idx = adopt->model_idx,
                                  .id = adopt->name,
                                  .adopted = true,
                                  .prompt = "",
                                  .submit_ms = ps.create_ms > 0 ? ps.create_ms : now};
            err = store_task_insert(e->store, &tn, &idx);
            if (err == 0 && ts_ensure(e, idx) < 0)
                err = -ENOMEM;
            if (err == 0) {
                if (!ps.needs_result)
                    store_task_apply_status(e->store, idx, &ps, now);
                store_task_note_poll(e->store, idx, now);
                const struct task *t = store_task_at(e->store, idx);
                if (ps.needs_result)
                    start_result(e, idx);
                else if (!task_state_final(t->state))
                    schedule_task(e, t, now);
                else
                    dl_queue_task(e, t);
                adopt->task_idx = idx;
                log_info(e->log, "%s/%s: adopted (%s)", m->name, adopt->name,
                         task_state_name(t->state));
                cmd_finish(adopt, 0, NULL);
            } else {
                cmd_finish(adopt, err, "cannot store the adopted task");
            }
        } else {
            if (err == -ENOENT)
                snprintf(msg, sizeof(msg), "the provider knows no task %s for model %s",
                         adopt->name, m ? m->name : "?");
            cmd_finish(adopt, err ? err : -ENOENT, msg);
        }
        provider_status_clear(&ps);
        return;
    }

    const struct task *t = store_task_at(e->store, idx);
    const char *model = store_model_at(e->store, t->model_idx)->name;
    struct tsched *ts = &e->ts[idx];
    if (err == 0 && ps.needs_result && !task_state_final(t->state)) {
        ts->fail_streak = 0;
        ts->missing_streak = 0;
        start_result(e, idx);
    } else if (err == 0) {
        ts->fail_streak = 0;
        ts->missing_streak = 0;
        apply_answer(e, idx, &ps, poll_again, now);
    } else if (x->kind == X_RESULT && ++ts->result_streak >= RESULT_ATTEMPTS) {
        /* The provider said done but will not hand over the result: retrying
         * for the whole deadline would only hide that. */
        fail_task(e, idx, "result_unavailable", now,
                  "the provider reported the task done, but its result request failed %u times "
                  "(last: %s)",
                  ts->result_streak, msg);
    } else if (x->kind == X_STATUS && err == -ENOENT && ++ts->missing_streak >= MISSING_POLLS) {
        fail_task(e, idx, "not_found", now,
                  "the provider no longer knows this task: %u status polls in a row answered "
                  "\"no such task\" (last: %s)",
                  ts->missing_streak, msg);
    } else {
        /* A failed poll is a missed look: the schedule's next poll is the retry,
         * pushed back further while failures go on, so a struggling provider
         * gets fewer requests, not more. A 429 with Retry-After is no failure
         * of the provider's: it said when to come back. */
        if (err != -ENOENT)
            ts->missing_streak = 0;
        bool paused = err == -EAGAIN && perr.retry_after_ms >= 0;
        uint32_t streak = paused ? 1 : ++ts->fail_streak;
        count(e, &e->c.errors);
        if (log_once(e, msg))
            log_warn(e->log, "%s/%s: status poll failed (%s); will retry (said once per 10 min)",
                     model, t->id, msg);
        /* The deadline holds whatever the polls answer. */
        check_deadline(e, idx, t, model, now);
        int64_t wait = backoff_ms(e, streak);
        if (perr.retry_after_ms > wait)
            wait = perr.retry_after_ms;
        count(e, &e->c.retries);
        schedule_task_after(e, t, now, now + wait);
    }
    provider_status_clear(&ps);
}

static void drain_done(struct engine *e)
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
        if (cc == CURLE_WRITE_ERROR && x->too_big && x->kind != X_DOWNLOAD) {
            /* A huge API answer is a malformed one: the parser says so from its
             * length, without reading it. */
            cc = CURLE_OK;
            x->len = MAX_BODY + 1;
        }
        int64_t now = clock_now_ms();
        /* Mask an echoed key in the raw answer, before anything derives text
         * from it (a message cut short would otherwise keep part of it). */
        if (x->kind != X_DOWNLOAD && x->buf)
            redact(e, x->buf);
        if (x->kind == X_DOWNLOAD)
            on_download_done(e, x, cc, http, now);
        else if (x->kind == X_SUBMIT)
            on_submit_done(e, x, cc, http, now);
        else
            on_status_done(e, x, cc, http, now);
        xfer_free(x);
    }
}

/* ---- loop ---- */

static bool is_stopping(struct engine *e)
{
    pthread_mutex_lock(&e->inbox_lock);
    bool s = e->stopping;
    pthread_mutex_unlock(&e->inbox_lock);
    return s;
}

static void take_inbox(struct engine *e)
{
    pthread_mutex_lock(&e->inbox_lock);
    struct engine_cmd *c = e->inbox_head;
    e->inbox_head = e->inbox_tail = NULL;
    pthread_mutex_unlock(&e->inbox_lock);
    while (c) {
        struct engine_cmd *next = c->next;
        handle_cmd(e, c);
        c = next;
    }
}

/* Starts what is due and allowed; returns ms until something may be due. */
static int64_t launch_due(struct engine *e, int64_t now, bool stopping)
{
    int64_t wait = FLUSH_EVERY_MS;
    /* Submissions first: someone is blocked in write(2). */
    while (e->submits_head && e->inflight < MAX_INFLIGHT) {
        struct engine_cmd *c = e->submits_head;
        if (stopping) {
            e->submits_head = c->next;
            if (!e->submits_head)
                e->submits_tail = NULL;
            cmd_finish(c, -EIO, "genfs is unmounting: the task was not submitted");
            continue;
        }
        if (c->not_before_ms > now) {
            int64_t w = c->not_before_ms - now;
            /* Retries keep their order: the first blocks those behind it. */
            if (w < wait)
                wait = w;
            break;
        }
        int64_t rw = rate_take(&e->rate, now);
        if (rw > 0) {
            if (rw < wait)
                wait = rw;
            return wait;
        }
        e->submits_head = c->next;
        if (!e->submits_head)
            e->submits_tail = NULL;
        start_submit(e, c);
    }
    if (stopping)
        return wait;
    /* Downloads: the first ready ones, up to their own limit. */
    for (struct dl_job **jp = &e->dl_head; *jp && e->downloads < MAX_DOWNLOADS;) {
        struct dl_job *j = *jp;
        if (j->not_before_ms > now) {
            if (j->not_before_ms - now < wait)
                wait = j->not_before_ms - now;
            jp = &j->next;
            continue;
        }
        *jp = j->next;
        if (e->dl_tail == j) {
            e->dl_tail = NULL;
            for (struct dl_job *k = e->dl_head; k; k = k->next)
                e->dl_tail = k;
        }
        start_download(e, j);
    }
    while (e->heap_len > 0 && e->inflight < MAX_INFLIGHT) {
        uint32_t idx = e->heap[0];
        int64_t due = e->ts[idx].due_ms;
        if (due > now) {
            if (due - now < wait)
                wait = due - now;
            break;
        }
        int64_t rw = rate_take(&e->rate, now);
        if (rw > 0) {
            if (rw < wait)
                wait = rw;
            break;
        }
        if (now - due > 1000)
            count(e, &e->c.polls_late);
        heap_remove(e, idx);
        start_status(e, idx, NULL);
    }
    return wait;
}

static void *engine_main(void *arg)
{
    struct engine *e = arg;
    int64_t stop_started = 0;
    for (;;) {
        take_inbox(e);
        bool stopping = is_stopping(e);
        int64_t now = clock_now_ms();
        if (stopping && !stop_started)
            stop_started = now;
        int running = 0;
        curl_multi_perform(e->multi, &running);
        drain_done(e);
        now = clock_now_ms();
        int64_t wait = launch_due(e, now, stopping);
        if (now - e->last_flush_ms >= FLUSH_EVERY_MS) {
            store_flush(e->store);
            e->last_flush_ms = now;
        }
        pthread_mutex_lock(&e->stats_lock);
        e->rate_now = e->rate.current;
        e->cache_bytes_now = e->cache_bytes;
        e->kept_over_cap_now = e->kept_over_cap;
        pthread_mutex_unlock(&e->stats_lock);
        forget_old(e, now);
        if (stopping) {
            /* Status polls can be dropped; a submission in flight cannot. */
            if (e->submits_inflight == 0 || now - stop_started > STOP_GRACE_MS)
                break;
            if (wait > 100)
                wait = 100;
        }
        if (wait < 0)
            wait = 0;
        if (wait > FLUSH_EVERY_MS)
            wait = FLUSH_EVERY_MS;
        curl_multi_poll(e->multi, NULL, 0, (int)wait, NULL);
    }
    /* Whatever is still in flight: answer its waiter, drop the rest. */
    while (e->xfers) {
        struct xfer *x = e->xfers;
        xfer_detach(e, x);
        if (x->cmd)
            cmd_finish(x->cmd, -EIO, "genfs is unmounting: the answer did not arrive in time");
        xfer_free(x);
    }
    take_inbox(e);
    store_flush(e->store);
    return NULL;
}

/* ---- public ---- */

struct engine *engine_new(struct store *st, struct log *lg, const struct engine_config *cfg)
{
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->store = st;
    e->log = lg;
    e->cfg = *cfg;
    e->last_keep_ms = INT64_MIN / 2; /* -o keep looks at once */
    e->auth = calloc(cfg->n_providers, sizeof(char *));
    e->keys = calloc(cfg->n_providers, sizeof(char *));
    for (size_t i = 0; e->keys && i < cfg->n_providers; i++)
        e->keys[i] = strdup(cfg->providers[i].api_key);
    for (size_t i = 0; e->auth && i < cfg->n_providers; i++) {
        e->auth[i] = provider_auth_header(cfg->providers[i].prov, cfg->providers[i].api_key);
        if (!e->auth[i]) {
            log_error(lg, "provider %s: the API key cannot be sent (control characters?)",
                      cfg->providers[i].name);
            engine_free(e);
            return NULL;
        }
    }
    e->multi = curl_multi_init();
    pthread_mutex_init(&e->inbox_lock, NULL);
    pthread_mutex_init(&e->stats_lock, NULL);
    if (!e->auth || !e->multi) {
        engine_free(e);
        return NULL;
    }
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)MAX_INFLIGHT);
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)MAX_INFLIGHT);
    if (getrandom(&e->rng, sizeof(e->rng), 0) != sizeof(e->rng) || e->rng == 0)
        e->rng = (uint64_t)clock_now_ms() | 1;
    int64_t now = clock_now_ms();
    rate_init(&e->rate, cfg->rate, now);
    e->rate_now = cfg->rate;

    /* Resume every unfinished task where its schedule left off. */
    uint32_t n = store_task_slots(st);
    if (n > 0 && ts_ensure(e, n) < 0) {
        engine_free(e);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct task *t = store_task_at(st, i);
        if (t && !task_state_final(t->state))
            schedule_task(e, t, now);
    }
    cache_scan(e);
    e->cache_bytes_now = e->cache_bytes;
    return e;
}

int engine_start(struct engine *e)
{
    int rc = pthread_create(&e->thread, NULL, engine_main, e);
    if (rc != 0)
        return -rc;
    e->started = true;
    return 0;
}

const char *engine_provider_name(struct engine *e, uint32_t model_idx)
{
    store_rdlock(e->store);
    size_t pi = prov_index(e, model_idx);
    store_unlock(e->store);
    return e->cfg.providers[pi].name;
}

void engine_set_notify(struct engine *e, struct notify *n)
{
    e->notify = n;
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

static void poll_now_done(struct engine_cmd *cmd, int err, const char *msg)
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
    c->done = poll_now_done;
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
    for (size_t i = 0; e->auth && i < e->cfg.n_providers; i++) {
        if (e->auth[i]) {
            explicit_bzero(e->auth[i], strlen(e->auth[i]));
            free(e->auth[i]);
        }
    }
    free(e->auth);
    for (size_t i = 0; e->keys && i < e->cfg.n_providers; i++) {
        if (e->keys[i]) {
            explicit_bzero(e->keys[i], strlen(e->keys[i]));
            free(e->keys[i]);
        }
    }
    free(e->keys);
    while (e->dl_head) {
        struct dl_job *j = e->dl_head;
        e->dl_head = j->next;
        free(j);
    }
    free(e->hists);
    free(e->ts);
    free(e->heap);
    pthread_mutex_destroy(&e->inbox_lock);
    pthread_mutex_destroy(&e->stats_lock);
    free(e);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

char *engine_stats_json(struct engine *e)
{
    uint32_t states[TASK_STATE_COUNT];
    store_rdlock(e->store);
    store_count_states(e->store, states);
    store_unlock(e->store);

    pthread_mutex_lock(&e->stats_lock);
    struct counters c = e->c;
    double rate_now = e->rate_now;
    int64_t cache_bytes = e->cache_bytes_now;
    int64_t kept_over_cap = e->kept_over_cap_now;
    pthread_mutex_unlock(&e->stats_lock);

    cJSON *root = cJSON_CreateObject();
    cJSON *tasks = cJSON_AddObjectToObject(root, "tasks");
    for (int s = 0; s < TASK_STATE_COUNT; s++)
        cJSON_AddNumberToObject(tasks, task_state_name((enum task_state)s), states[s]);
    cJSON *req = cJSON_AddObjectToObject(root, "requests");
    cJSON_AddNumberToObject(req, "submit", (double)c.submit);
    cJSON_AddNumberToObject(req, "status", (double)(c.status + c.adopt));
    cJSON_AddNumberToObject(req, "total", (double)(c.submit + c.status + c.adopt));
    cJSON *dl = cJSON_AddObjectToObject(root, "downloads");
    cJSON_AddNumberToObject(dl, "started", (double)c.downloads);
    cJSON_AddNumberToObject(dl, "bytes", (double)c.download_bytes);
    cJSON_AddNumberToObject(dl, "evictions", (double)c.evictions);
    cJSON_AddNumberToObject(dl, "cache_bytes", (double)cache_bytes);
    /* Results kept past cache_max: their URLs expire, so they cannot be fetched again. */
    cJSON_AddNumberToObject(dl, "kept_over_cap_bytes", (double)kept_over_cap);
    uint64_t cb_ok, cb_bad, cb_dropped;
    hook_counts(e->hook, &cb_ok, &cb_bad, &cb_dropped);
    cJSON *cbs = cJSON_AddObjectToObject(root, "callbacks");
    cJSON_AddNumberToObject(cbs, "accepted", (double)cb_ok);
    cJSON_AddNumberToObject(cbs, "rejected", (double)cb_bad);
    cJSON_AddNumberToObject(cbs, "dropped", (double)cb_dropped);
    uint64_t made, failed, busy_us;
    notify_counts(e->notify, &made, &failed, &busy_us);
    cJSON *an = cJSON_AddObjectToObject(root, "announcements");
    cJSON_AddNumberToObject(an, "made", (double)made);
    cJSON_AddNumberToObject(an, "failed", (double)failed);
    cJSON_AddNumberToObject(an, "busy_ms", (double)busy_us / 1000.0);
    cJSON_AddNumberToObject(root, "retries", (double)c.retries);
    cJSON_AddNumberToObject(root, "http_429", (double)c.http_429);
    cJSON_AddNumberToObject(root, "errors", (double)c.errors);
    cJSON_AddNumberToObject(root, "transport_errors", (double)c.transport_errors);
    cJSON_AddNumberToObject(root, "disk_full", (double)c.disk_full);
    cJSON_AddNumberToObject(root, "polls_late", (double)c.polls_late);
    cJSON_AddNumberToObject(root, "rate_limit", e->cfg.rate);
    cJSON_AddNumberToObject(root, "rate_current", rate_now);
    cJSON_AddStringToObject(root, "schedule", sched_kind_name(e->cfg.schedule));
    cJSON *lag = cJSON_AddObjectToObject(root, "detection_lag_ms");
    cJSON_AddNumberToObject(lag, "samples", c.n_lag);
    if (c.n_lag > 0) {
        qsort(c.lag_ms, c.n_lag, sizeof(double), cmp_double);
        double sum = 0;
        for (uint32_t i = 0; i < c.n_lag; i++)
            sum += c.lag_ms[i];
        cJSON_AddNumberToObject(lag, "mean", sum / c.n_lag);
        cJSON_AddNumberToObject(lag, "p50", c.lag_ms[(c.n_lag - 1) / 2]);
        cJSON_AddNumberToObject(lag, "p99", c.lag_ms[(uint32_t)((c.n_lag - 1) * 0.99)]);
    }
    uint32_t pending = states[TASK_WAITING] + states[TASK_QUEUING] + states[TASK_GENERATING];
    cJSON_AddNumberToObject(root, "queue_depth", pending);
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    if (out) {
        size_t n = strlen(out);
        char *o2 = realloc(out, n + 2);
        if (o2) {
            o2[n] = '\n';
            o2[n + 1] = '\0';
            out = o2;
        }
    }
    return out;
}
