/* genfs-sim: a local provider for genfs (SPEC 7), speaking APIXO's, kie's, replicate's or fal's
 * protocol (--protocol, APIXO by default). This file holds the I/O: command line, the
 * libmicrohttpd server (thread per connection, so slow answers can simply sleep), the callback
 * sender (libcurl multi on its own thread) and the one context struct. Decisions are made by the
 * pure modules (sim_fault, sim_req, sim_task, sim_media, sim_model, sim_proto). */
#include "sim_fault.h"
#include "sim_media.h"
#include "sim_model.h"
#include "sim_proto.h"
#include "sim_req.h"
#include "sim_rng.h"
#include "sim_task.h"
#include "sim_upload.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SIM_BODY_MAX (2u << 20) /* genfs sends at most 1 MiB of input */
#define SIM_CALLBACK_TIMEOUT_MS 5000L
#define SIM_CALLBACK_RETRY_MS 1000
#define SIM_CALLBACK_RETRIES 3 /* after a failed delivery, as the providers retry */
#define SIM_HUGE_BODY (5u << 20)
#define SIM_STATUS_MAX 600

struct sim_callback {
    char id[SIM_TASK_ID_MAX + 1];
    uint64_t seq;
    long long due_ms;
    int attempt;
};

struct sim_cb_transfer {
    struct sim_callback cb;
    CURL *easy;
    char *body;
    struct curl_slist *headers;
    struct sim_cb_transfer *next; /* in-flight list, so shutdown can free them */
};

static void sim_cb_transfer_free(struct sim_cb_transfer **list, struct sim_cb_transfer *x)
{
    for (struct sim_cb_transfer **p = list; *p; p = &(*p)->next) {
        if (*p == x) {
            *p = x->next;
            break;
        }
    }
    curl_slist_free_all(x->headers);
    free(x->body);
    free(x);
}

struct sim_figures {
    long long submit, status, result, cancel, media, upload, other;
    long long status_stream; /* fal's status streams opened (also counted in status) */
    long long streams_open, streams_open_max;
    long long callback_sent, callback_lost, callback_failed;
    long long responses[SIM_STATUS_MAX];
    long long faults[32];
    long long duplicates, created_then_reset;
};

struct sim_ctx {
    /* configuration, fixed after start */
    char listen_host[256];
    char listen_port[16];
    const char *port_file;
    uint64_t seed;
    double time_scale;
    char key[1024];
    int have_key;
    int quiet;
    char base_url[320];
    enum sim_protocol protocol;
    struct sim_models models;
    struct MHD_Daemon *mhd;
    pthread_t cb_thread;
    atomic_int stopping;

    /* everything below is guarded by lock */
    pthread_mutex_t lock;
    struct sim_faults faults;
    struct sim_fault_state fault_state;
    uint64_t api_reqno, media_reqno, task_counter;
    struct sim_table tasks;  /* id -> struct sim_task */
    struct sim_table dups;   /* model "\n" canonical input -> (void *)1 */
    struct sim_task **order; /* submission order, for /_sim/tasks */
    size_t ntasks, cap_tasks;
    struct sim_callback *pending;
    size_t npending, cap_pending;
    struct sim_table uploads; /* id -> struct sim_upload */
    struct sim_upload **upload_order;
    size_t nuploads, cap_uploads;
    uint64_t upload_counter;
    struct sim_figures fig;
};

/* Per-connection upload buffer (MHD calls the handler several times per request). */
struct sim_conn {
    char *body;
    size_t len, cap;
    size_t max; /* SIM_BODY_MAX, or SIM_UPLOAD_MAX for a file upload */
    int too_big;
};

static long long sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sim_log(const struct sim_ctx *ctx, const char *fmt, ...)
{
    if (ctx->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("genfs-sim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Sleeps in small steps so that SIGTERM is never held up by a slow answer. */
static void sim_sleep_ms(struct sim_ctx *ctx, long long ms)
{
    while (ms > 0 && !atomic_load(&ctx->stopping)) {
        long long step = ms < 50 ? ms : 50;
        struct timespec ts = {step / 1000, (step % 1000) * 1000000};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static void sim_fig_fault(struct sim_ctx *ctx, const char *name)
{
    for (int i = 0; name && sim_fault_counter_names[i]; i++) {
        if (strcmp(sim_fault_counter_names[i], name) == 0) {
            ctx->fig.faults[i]++;
            return;
        }
    }
}

static void sim_fig_response(struct sim_ctx *ctx, int code)
{
    pthread_mutex_lock(&ctx->lock);
    if (code >= 0 && code < SIM_STATUS_MAX)
        ctx->fig.responses[code]++;
    pthread_mutex_unlock(&ctx->lock);
}

/* ---- responses ---------------------------------------------------------------------------- */

static enum MHD_Result sim_http_queue(struct MHD_Connection *c, int status, struct MHD_Response *r,
                                      int retry_after)
{
    if (!r)
        return MHD_NO;
    if (retry_after > 0) {
        char v[32];
        snprintf(v, sizeof(v), "%d", retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned int)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result sim_http_text(struct MHD_Connection *c, int status, char *body,
                                     const char *type, int retry_after)
{
    if (!body)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    return sim_http_queue(c, status, r, retry_after);
}

/* Raw JSON (the /_sim/ endpoints); takes ownership of j. */
static enum MHD_Result sim_http_raw_json(struct MHD_Connection *c, int status, cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s)
        return MHD_NO;
    /* cJSON allocates with malloc by default, so MHD may free it. */
    return sim_http_text(c, status, s, "application/json", 0);
}

/* A protocol answer with HTTP status http; code (the envelope's, else http) is counted in the
 * figures. fal_error_type, when set, goes out as X-Fal-Error-Type. Takes ownership of j. */
static enum MHD_Result sim_http_proto_json(struct sim_ctx *ctx, struct MHD_Connection *c, int http,
                                           int code, cJSON *j, int retry_after,
                                           const char *fal_error_type)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s)
        return MHD_NO;
    sim_fig_response(ctx, code);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    /* replicate's errors are problem documents (RFC 9457), as its answers say. */
    MHD_add_response_header(r, "Content-Type",
                            ctx->protocol == SIM_PROTO_REPLICATE && http >= 400
                                ? "application/problem+json"
                                : "application/json");
    if (fal_error_type)
        MHD_add_response_header(r, "X-Fal-Error-Type", fal_error_type);
    return sim_http_queue(c, http, r, retry_after);
}

/* An error in the protocol's shape; msg NULL gives the provider's usual wording. An API error
 * follows the protocol's HTTP status rules (kie's own codes inside an HTTP 200, and
 * errors_in_body for APIXO and kie); other errors (media, unknown paths) answer the code as
 * the HTTP status. */
static enum MHD_Result sim_http_error(struct sim_ctx *ctx, struct MHD_Connection *c, int code,
                                      const char *msg, int retry_after, int api)
{
    int http;
    cJSON *j = sim_proto_error_json(ctx->protocol, code, msg, &http);
    pthread_mutex_lock(&ctx->lock);
    int in_body = ctx->faults.errors_in_body != 0;
    pthread_mutex_unlock(&ctx->lock);
    if (!api)
        http = code;
    else if (in_body && (ctx->protocol == SIM_PROTO_APIXO || ctx->protocol == SIM_PROTO_KIE))
        http = 200;
    return sim_http_proto_json(ctx, c, http, code, j, retry_after, NULL);
}

/* ---- handlers ----------------------------------------------------------------------------- */

/* "Authorization: Bearer KEY" (APIXO, kie, replicate) or "Key KEY" (fal); the wrong scheme fails.
 */
static int sim_http_authorized(struct sim_ctx *ctx, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *scheme = sim_proto_auth_scheme(ctx->protocol);
    size_t sl = strlen(scheme);
    if (!h || strncasecmp(h, scheme, sl) != 0)
        return 0;
    const char *tok = h + sl;
    while (*tok == ' ')
        tok++;
    if (!ctx->have_key)
        return *tok != '\0';
    /* Compare the whole length whatever the content, not to leak a prefix by timing. */
    size_t a = strlen(tok), b = strlen(ctx->key);
    unsigned diff = (unsigned)(a != b);
    for (size_t i = 0; i < a; i++)
        diff |= (unsigned)(tok[i] ^ ctx->key[i % (b ? b : 1)]);
    return diff == 0;
}

static void sim_ctx_schedule_callback(struct sim_ctx *ctx, const struct sim_task *t, long long due,
                                      int attempt)
{
    if (ctx->npending == ctx->cap_pending) {
        size_t cap = ctx->cap_pending ? ctx->cap_pending * 2 : 64;
        struct sim_callback *p = realloc(ctx->pending, cap * sizeof(*p));
        if (!p)
            return;
        ctx->pending = p;
        ctx->cap_pending = cap;
    }
    struct sim_callback *cb = &ctx->pending[ctx->npending++];
    memcpy(cb->id, t->id, sizeof(cb->id));
    cb->seq = t->seq;
    cb->due_ms = due;
    cb->attempt = attempt;
}

/* Brings a task's pending callback forward to now (its end moved, as a cancel moves it). Called
 * with the lock held. */
static void sim_ctx_callback_now(struct sim_ctx *ctx, const struct sim_task *t, long long now)
{
    for (size_t i = 0; i < ctx->npending; i++)
        if (ctx->pending[i].seq == t->seq && strcmp(ctx->pending[i].id, t->id) == 0)
            ctx->pending[i].due_ms = now;
}

#define SIM_ABORTED_MSG "Prediction aborted: its deadline passed before it started"

/* Sets the task's end: the input's sim_outcome, else the model's forced end, else a draw
 * against fail_rate; and the failure it shows. Called with the lock held. */
static void sim_ctx_task_outcome(struct sim_ctx *ctx, struct sim_task *t,
                                 const struct sim_model *model, const struct sim_submit *sub)
{
    enum sim_outcome o = sub->outcome;
    if (o == SIM_OUTCOME_DRAW && model->end == SIM_END_CANCELED)
        o = SIM_OUTCOME_CANCELED;
    else if (o == SIM_OUTCOME_DRAW && model->end == SIM_END_ABORTED)
        o = SIM_OUTCOME_ABORTED;
    if (o == SIM_OUTCOME_DRAW) {
        t->failed = sim_fault_task_fails(&ctx->faults, model->fail_rate, ctx->seed, t->seq);
        if (t->failed)
            sim_fig_fault(ctx, "fail_rate");
    } else {
        t->failed = o != SIM_OUTCOME_SUCCESS;
        t->canceled = o == SIM_OUTCOME_CANCELED;
        t->aborted = o == SIM_OUTCOME_ABORTED;
    }
    const char *code, *msg, *loc;
    sim_proto_default_failure(ctx->protocol, ctx->seed, t->seq, &code, &msg, &loc);
    if (t->aborted)
        msg = SIM_ABORTED_MSG;
    /* The drawn failure's field only goes with its own code and message. */
    if (sub->fail_code || sub->fail_msg)
        loc = NULL;
    t->fail_code = strdup(sub->fail_code ? sub->fail_code : code);
    t->fail_msg = strdup(sub->fail_msg ? sub->fail_msg : msg);
    if (sub->fail_loc || loc)
        t->fail_loc = strdup(sub->fail_loc ? sub->fail_loc : loc);
}

/* Creates the task for a validated submit. Called with the lock held. */
static struct sim_task *sim_ctx_create_task(struct sim_ctx *ctx, const struct sim_submit *sub,
                                            const char *body, size_t len, const char *canon)
{
    const struct sim_model *model = sub->model;
    struct sim_task *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    do {
        t->seq = ++ctx->task_counter;
        sim_proto_task_id(ctx->protocol, ctx->seed, t->seq, t->id);
    } while (sim_table_get(&ctx->tasks, t->id));
    t->model = strdup(model->name);
    t->kind = model->kind;
    t->prompt = strdup(sub->prompt);
    t->input_json = strdup(canon);
    t->param = strndup(body, len);
    t->callback_url = sub->callback ? strdup(sub->callback_url) : NULL;
    t->provider = sub->provider ? strdup(sub->provider) : NULL;
    t->submit_ms = sim_now_ms();
    if (sub->duration_ms >= 0)
        t->duration_ms = sim_model_scale_ms((double)sub->duration_ms, ctx->time_scale);
    else
        t->duration_ms =
            sim_model_scale_ms(sim_model_draw_ms(model, ctx->seed, t->seq), ctx->time_scale);
    t->complete_ms = t->submit_ms + t->duration_ms;
    sim_ctx_task_outcome(ctx, t, model, sub);
    t->outputs = sub->outputs ? sub->outputs : model->outputs ? model->outputs : 1;
    t->output = model->output;
    t->logs_bytes = model->logs_bytes;
    t->media_bytes = sub->media_bytes;
    uint64_t h = sim_rng_hash_str(sim_rng_hash_u64(ctx->seed, 0x6d65646961ULL), model->name);
    t->media_seed = sim_rng_hash_str(h, sub->prompt);
    if (!t->model || !t->prompt || !t->input_json || !t->param || !t->fail_code || !t->fail_msg ||
        (sub->callback && !t->callback_url) || (sub->provider && !t->provider)) {
        sim_task_free(t);
        return NULL;
    }
    if (ctx->ntasks == ctx->cap_tasks) {
        size_t cap = ctx->cap_tasks ? ctx->cap_tasks * 2 : 1024;
        struct sim_task **o = realloc(ctx->order, cap * sizeof(*o));
        if (!o) {
            sim_task_free(t);
            return NULL;
        }
        ctx->order = o;
        ctx->cap_tasks = cap;
    }
    if (sim_table_put(&ctx->tasks, t->id, t) != 0) {
        sim_task_free(t);
        return NULL;
    }
    ctx->order[ctx->ntasks++] = t;
    if (t->callback_url)
        sim_ctx_schedule_callback(ctx, t, t->complete_ms, 0);
    return t;
}

/* Check order for a submit, in every protocol: fault switches, key (401), then the protocol's
 * parser (model 404 and body 400/422; kie reads the model from the body), then sim_reject /
 * sim_credits. */
static enum MHD_Result sim_handle_submit(struct sim_ctx *ctx, struct MHD_Connection *c,
                                         const struct sim_route_info *ri, struct sim_conn *sc)
{
    struct sim_fault_decision fd;
    pthread_mutex_lock(&ctx->lock);
    ctx->fig.submit++;
    sim_fault_decide_api(&ctx->faults, &ctx->fault_state, ctx->seed, ++ctx->api_reqno, sim_now_ms(),
                         &fd);
    sim_fig_fault(ctx, fd.name);
    pthread_mutex_unlock(&ctx->lock);

    if (fd.action == SIM_FAULT_STATUS)
        return sim_http_error(ctx, c, fd.status, NULL, fd.retry_after, 1);
    if (fd.action == SIM_FAULT_MALFORMED) {
        sim_fig_response(ctx, 200);
        return sim_http_text(
            c, 200, sim_proto_malformed_body(ctx->protocol, fd.malformed_kind, ri->route, ""),
            "application/json", 0);
    }
    int reset = fd.action == SIM_FAULT_RESET;
    if (reset && !fd.reset_after_create)
        return MHD_NO;

    if (!sim_http_authorized(ctx, c))
        return reset ? MHD_NO : sim_http_error(ctx, c, 401, NULL, 0, 1);
    char msg[512];
    struct sim_submit sub;
    int rc;
    if (sc->too_big) {
        sim_req_submit_init(&sub);
        snprintf(msg, sizeof(msg), "body: larger than %u bytes", SIM_BODY_MAX);
        rc = ctx->protocol == SIM_PROTO_APIXO ? 400 : 422;
    } else {
        /* MHD decodes the query; the value lives as long as the connection's request. */
        const char *hook = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fal_webhook");
        rc = sim_proto_submit_parse(ctx->protocol, &ctx->models, ri, sc->body, sc->len, hook, &sub,
                                    msg, sizeof(msg));
    }
    const char *why = msg;
    if (rc == 0 && sub.reject) {
        rc = sub.reject;
        why = NULL;
    }
    if (rc != 0) {
        sim_req_submit_free(&sub);
        return reset ? MHD_NO : sim_http_error(ctx, c, rc, why, 0, 1);
    }
    char *canon = sim_req_canonical_json(sub.input);
    const char *mname = sub.model->name;
    size_t klen = strlen(mname) + (canon ? strlen(canon) : 0) + 2;
    char *dkey = malloc(klen);
    struct sim_task *t = NULL;
    char id[SIM_TASK_ID_MAX + 1] = "";
    cJSON *answer = NULL;
    int answer_status = 200;
    if (canon && dkey) {
        snprintf(dkey, klen, "%s\n%s", mname, canon);
        pthread_mutex_lock(&ctx->lock);
        t = sim_ctx_create_task(ctx, &sub, sc->body, sc->len, canon);
        if (t) {
            memcpy(id, t->id, sizeof(id));
            /* Built under the lock: the task may be forgotten by /_sim/reset right after. */
            answer = sim_proto_submit_json(ctx->protocol, t, sim_now_ms(), ctx->base_url,
                                           &answer_status);
            if (sim_table_get(&ctx->dups, dkey))
                ctx->fig.duplicates++;
            else
                sim_table_put(&ctx->dups, dkey, (void *)1);
            if (reset)
                ctx->fig.created_then_reset++;
        }
        pthread_mutex_unlock(&ctx->lock);
    }
    free(dkey);
    free(canon);
    if (t)
        sim_log(ctx, "task %s model %s created", id, mname);
    sim_req_submit_free(&sub);
    if (reset) {
        cJSON_Delete(answer);
        return MHD_NO;
    }
    if (!t)
        return sim_http_error(ctx, c, 500, "out of memory", 0, 1);
    if (fd.action == SIM_FAULT_SLOW)
        sim_sleep_ms(ctx, fd.delay_ms);
    return sim_http_proto_json(ctx, c, answer_status, 200, answer, 0, NULL);
}

/* The answer to a status, result or cancel of a task the caller may see, built under the
 * lock. */
struct sim_api_answer {
    cJSON *body;
    int status;
    char fal_error_type[64];
};

static void sim_ctx_answer_task(struct sim_ctx *ctx, struct sim_task *t, enum sim_route route,
                                int with_logs, struct sim_api_answer *a)
{
    long long now = sim_now_ms();
    a->status = 200;
    if (route == SIM_ROUTE_RESULT) {
        struct sim_task_view v;
        sim_task_view_at(t, now, &v);
        t->result_requests++;
        int fault = v.done ? sim_fault_decide_result(&ctx->faults) : 0;
        if (fault) {
            sim_fig_fault(ctx, "result_5xx");
            a->body = sim_proto_error_json(ctx->protocol, fault, NULL, &a->status);
            return;
        }
        const char *et = NULL;
        a->body = sim_proto_result_json(t, now, ctx->base_url, &a->status, &et);
        if (et)
            snprintf(a->fal_error_type, sizeof(a->fal_error_type), "%s", et);
        return;
    }
    if (route == SIM_ROUTE_CANCEL) {
        int canceled = sim_task_cancel(t, now);
        if (canceled && t->callback_url)
            sim_ctx_callback_now(ctx, t, now);
        a->body = sim_proto_cancel_json(ctx->protocol, t, now, ctx->base_url, canceled, &a->status);
        return;
    }
    t->status_requests++;
    a->body = sim_proto_status_logs_json(ctx->protocol, t, now, ctx->base_url, with_logs);
}

/* Status (every protocol), fal's result fetch and the cancels: the same faults and key check;
 * a task asked under another model (APIXO) or app (fal) does not exist. */
static enum MHD_Result sim_handle_status(struct sim_ctx *ctx, struct MHD_Connection *c,
                                         const struct sim_route_info *ri)
{
    struct sim_fault_decision fd;
    pthread_mutex_lock(&ctx->lock);
    if (ri->route == SIM_ROUTE_RESULT)
        ctx->fig.result++;
    else if (ri->route == SIM_ROUTE_CANCEL)
        ctx->fig.cancel++;
    else
        ctx->fig.status++;
    sim_fault_decide_api(&ctx->faults, &ctx->fault_state, ctx->seed, ++ctx->api_reqno, sim_now_ms(),
                         &fd);
    sim_fig_fault(ctx, fd.name);
    pthread_mutex_unlock(&ctx->lock);

    switch (fd.action) {
    case SIM_FAULT_STATUS:
        return sim_http_error(ctx, c, fd.status, NULL, fd.retry_after, 1);
    case SIM_FAULT_RESET:
        return MHD_NO;
    case SIM_FAULT_MALFORMED:
        sim_fig_response(ctx, 200);
        return sim_http_text(
            c, 200,
            sim_proto_malformed_body(ctx->protocol, fd.malformed_kind, ri->route, ri->task_id),
            "application/json", 0);
    case SIM_FAULT_SLOW:
        sim_sleep_ms(ctx, fd.delay_ms);
        break;
    default:
        break;
    }
    if (!sim_http_authorized(ctx, c))
        return sim_http_error(ctx, c, 401, NULL, 0, 1);
    char msg[512];
    if (!ri->task_id[0])
        return sim_http_error(ctx, c, 400,
                              ctx->protocol == SIM_PROTO_KIE ? "taskId parameter is required"
                                                             : "Missing required parameter: taskId",
                              0, 1);
    if (ctx->protocol == SIM_PROTO_APIXO && !sim_models_find(&ctx->models, ri->model)) {
        snprintf(msg, sizeof(msg), "Model not found: %s", ri->model);
        return sim_http_error(ctx, c, 404, msg, 0, 1);
    }
    struct sim_api_answer a = {0};
    /* fal's ?logs=1 (fal-js sends logs=0 when it wants none). */
    const char *logs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "logs");
    int with_logs = logs && strcmp(logs, "1") == 0;
    pthread_mutex_lock(&ctx->lock);
    struct sim_task *t = sim_table_get(&ctx->tasks, ri->task_id);
    if (t && sim_proto_task_visible(ctx->protocol, t, ri->model))
        sim_ctx_answer_task(ctx, t, ri->route, with_logs, &a);
    pthread_mutex_unlock(&ctx->lock);
    if (!a.body) {
        int code = sim_proto_unknown_task(ctx->protocol, ri->task_id, msg, sizeof(msg));
        return sim_http_error(ctx, c, code, msg, 0, 1);
    }
    return sim_http_proto_json(ctx, c, a.status, a.status, a.body, 0,
                               a.fal_error_type[0] ? a.fal_error_type : NULL);
}

/* ---- fal's status stream ------------------------------------------------------------------ */

#define SIM_STREAM_PING_MS 15000 /* fal's docs: a comment every 15 s keeps it open */
#define SIM_STREAM_STEP_MS 100   /* the longest sleep between looks: a cancel moves the end */

/* One open stream: what it sent last and the bytes still to send. */
struct sim_stream {
    struct sim_ctx *ctx;
    char id[SIM_TASK_ID_MAX + 1];
    int with_logs, cut;
    char *last; /* the last status sent */
    char *out;  /* the event being sent */
    size_t out_len, out_off;
    long long look_ms, next_ms, ping_ms;
    int events, done;
};

static void sim_stream_free(void *cls)
{
    struct sim_stream *s = cls;
    pthread_mutex_lock(&s->ctx->lock);
    s->ctx->fig.streams_open--;
    pthread_mutex_unlock(&s->ctx->lock);
    free(s->last);
    free(s->out);
    free(s);
}

static int sim_stream_send(struct sim_stream *s, const char *fmt, const char *text)
{
    free(s->out);
    size_t n = strlen(fmt) + strlen(text) + 1;
    s->out = malloc(n);
    if (!s->out)
        return -1;
    snprintf(s->out, n, fmt, text);
    s->out_len = strlen(s->out);
    s->out_off = 0;
    return 1;
}

/* The task's status at now when it may have changed since the last look: 1 with an event to
 * send when it did, 0 when not, -1 when the task is gone. */
static int sim_stream_look(struct sim_stream *s, long long now)
{
    struct sim_ctx *ctx = s->ctx;
    pthread_mutex_lock(&ctx->lock);
    struct sim_task *t = sim_table_get(&ctx->tasks, s->id);
    if (!t) {
        pthread_mutex_unlock(&ctx->lock);
        return -1;
    }
    if (s->last && now < sim_fal_stream_next_ms(t, s->look_ms, s->with_logs)) {
        s->next_ms = sim_fal_stream_next_ms(t, s->look_ms, s->with_logs);
        pthread_mutex_unlock(&ctx->lock);
        return 0;
    }
    cJSON *j = sim_proto_status_logs_json(ctx->protocol, t, now, ctx->base_url, s->with_logs);
    struct sim_task_view v;
    sim_task_view_at(t, now, &v);
    s->next_ms = sim_fal_stream_next_ms(t, now, s->with_logs);
    pthread_mutex_unlock(&ctx->lock);
    s->look_ms = now;
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text)
        return -1;
    if (s->last && strcmp(text, s->last) == 0) {
        free(text);
        return 0;
    }
    free(s->last);
    s->last = text;
    s->events++;
    s->done = v.done;
    return sim_stream_send(s, "data: %s\n\n", text);
}

/* MHD's reader on the connection's own thread: it sleeps until the status changes. */
static ssize_t sim_stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sim_stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->out_off < s->out_len) {
            size_t n = s->out_len - s->out_off < max ? s->out_len - s->out_off : max;
            memcpy(buf, s->out + s->out_off, n);
            s->out_off += n;
            return (ssize_t)n;
        }
        if (s->done || atomic_load(&s->ctx->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM; /* fal closes it after COMPLETED */
        if (s->cut && s->events >= 1)
            return MHD_CONTENT_READER_END_WITH_ERROR; /* the connection is dropped mid-stream */
        long long now = sim_now_ms();
        int rc = sim_stream_look(s, now);
        if (rc < 0)
            return MHD_CONTENT_READER_END_OF_STREAM; /* forgotten by /_sim/reset */
        if (rc > 0)
            continue;
        if (now >= s->ping_ms) {
            s->ping_ms = now + SIM_STREAM_PING_MS;
            if (sim_stream_send(s, ": %s\n\n", "ping") < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        long long wait = (s->next_ms < s->ping_ms ? s->next_ms : s->ping_ms) - now;
        sim_sleep_ms(s->ctx, wait < 1 ? 1 : wait > SIM_STREAM_STEP_MS ? SIM_STREAM_STEP_MS : wait);
    }
}

/* An API request's fault (a status, a reset, a delay) and key check, for the requests that
 * know no other fault: true when that answered it (in *out). */
static bool sim_fault_or_key_answer(struct sim_ctx *ctx, struct MHD_Connection *c,
                                    const struct sim_fault_decision *fd, enum MHD_Result *out)
{
    if (fd->action == SIM_FAULT_STATUS) {
        *out = sim_http_error(ctx, c, fd->status, NULL, fd->retry_after, 1);
        return true;
    }
    if (fd->action == SIM_FAULT_RESET) {
        *out = MHD_NO;
        return true;
    }
    if (fd->action == SIM_FAULT_SLOW)
        sim_sleep_ms(ctx, fd->delay_ms);
    if (!sim_http_authorized(ctx, c)) {
        *out = sim_http_error(ctx, c, 401, NULL, 0, 1);
        return true;
    }
    return false;
}

/* GET {app}/requests/{id}/status/stream: the API faults and key check of a status, then a
 * status event at once and at each change, closed after COMPLETED. stream_off answers as for
 * an unknown path; stream_cut drops the connection after the first event. */
static enum MHD_Result sim_handle_stream(struct sim_ctx *ctx, struct MHD_Connection *c,
                                         const struct sim_route_info *ri)
{
    struct sim_fault_decision fd;
    pthread_mutex_lock(&ctx->lock);
    enum sim_stream_fault sf = sim_fault_decide_stream(&ctx->faults);
    if (sf == SIM_STREAM_OFF) {
        ctx->fig.other++;
        pthread_mutex_unlock(&ctx->lock);
        return sim_http_error(ctx, c, 404, NULL, 0, 0);
    }
    ctx->fig.status++;
    ctx->fig.status_stream++;
    sim_fault_decide_api(&ctx->faults, &ctx->fault_state, ctx->seed, ++ctx->api_reqno, sim_now_ms(),
                         &fd);
    sim_fig_fault(ctx, fd.name);
    static const char *const names[] = {[SIM_STREAM_CUT] = "stream_cut",
                                        [SIM_STREAM_429] = "stream_429",
                                        [SIM_STREAM_500] = "stream_500"};
    if (sf != SIM_STREAM_SERVE)
        sim_fig_fault(ctx, names[sf]);
    int retry_after = (int)ctx->faults.burst_retry_after;
    pthread_mutex_unlock(&ctx->lock);
    if (sf == SIM_STREAM_429 || sf == SIM_STREAM_500)
        return sim_http_error(ctx, c, sf == SIM_STREAM_429 ? 429 : 500, NULL,
                              sf == SIM_STREAM_429 ? retry_after : 0, 1);
    enum MHD_Result answered;
    if (sim_fault_or_key_answer(ctx, c, &fd, &answered))
        return answered;
    struct sim_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return MHD_NO;
    s->ctx = ctx;
    s->cut = sf == SIM_STREAM_CUT;
    const char *logs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "logs");
    s->with_logs = logs && strcmp(logs, "1") == 0;
    s->ping_ms = sim_now_ms() + SIM_STREAM_PING_MS;
    pthread_mutex_lock(&ctx->lock);
    struct sim_task *t = sim_table_get(&ctx->tasks, ri->task_id);
    int found = t && sim_proto_task_visible(ctx->protocol, t, ri->model);
    if (found) {
        t->status_requests++;
        /* Counted here, let go in sim_stream_free. */
        if (++ctx->fig.streams_open > ctx->fig.streams_open_max)
            ctx->fig.streams_open_max = ctx->fig.streams_open;
        snprintf(s->id, sizeof(s->id), "%s", t->id);
    }
    pthread_mutex_unlock(&ctx->lock);
    if (!found) {
        free(s);
        char msg[512];
        int code = sim_proto_unknown_task(ctx->protocol, ri->task_id, msg, sizeof(msg));
        return sim_http_error(ctx, c, code, msg, 0, 1);
    }
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 4096, sim_stream_reader, s, sim_stream_free);
    if (!r) {
        sim_stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    sim_fig_response(ctx, 200);
    return sim_http_queue(c, 200, r, 0);
}

static ssize_t sim_http_media_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sim_media *m = cls;
    if (pos != m->pos && sim_media_seek(m, pos) != 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = sim_media_read(m, (uint8_t *)buf, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)n;
}

static void sim_http_media_free(void *cls)
{
    sim_media_free(cls);
}

static enum MHD_Result sim_handle_media(struct sim_ctx *ctx, struct MHD_Connection *c,
                                        const struct sim_route_info *ri)
{
    struct sim_fault_decision fd = {0};
    enum sim_kind kind = SIM_KIND_IMAGE;
    uint64_t seed = 0;
    unsigned long long bytes = 0;
    char redirect[sizeof(ctx->faults.media_redirect)] = "";
    int found = 0;
    long long now = sim_now_ms();

    pthread_mutex_lock(&ctx->lock);
    ctx->fig.media++;
    struct sim_task *t = sim_table_get(&ctx->tasks, ri->task_id);
    if (t && !t->failed && now >= t->complete_ms && ri->media_index < t->outputs &&
        strcmp(ri->ext, sim_media_ext(t->kind)) == 0) {
        found = 1;
        t->media_requests++;
        kind = t->kind;
        seed = sim_task_media_seed(t, ri->media_index);
        bytes = t->media_bytes;
        sim_fault_decide_media(&ctx->faults, ctx->seed, ++ctx->media_reqno, now, t->complete_ms,
                               &fd);
        sim_fig_fault(ctx, fd.name);
        memcpy(redirect, ctx->faults.media_redirect, sizeof(redirect));
    }
    pthread_mutex_unlock(&ctx->lock);

    if (!found)
        return sim_http_error(ctx, c, 404, NULL, 0, 0);
    if (fd.action == SIM_FAULT_REDIRECT) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Location", redirect);
        sim_fig_response(ctx, 302);
        return sim_http_queue(c, 302, r, 0);
    }
    if (fd.action == SIM_FAULT_STATUS)
        return sim_http_error(ctx, c, fd.status, NULL, 0, 0);
    struct sim_media *m = sim_media_new(kind, seed, bytes);
    if (!m)
        return sim_http_error(ctx, c, 500, "out of memory", 0, 0);
    struct MHD_Response *r = MHD_create_response_from_callback(
        sim_media_size(m), 64 * 1024, sim_http_media_reader, m, sim_http_media_free);
    if (!r) {
        sim_media_free(m);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", sim_media_mime(kind));
    sim_fig_response(ctx, 200);
    return sim_http_queue(c, 200, r, 0);
}

static cJSON *sim_ctx_figures_json(struct sim_ctx *ctx)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    pthread_mutex_lock(&ctx->lock);
    const struct sim_figures *f = &ctx->fig;
    cJSON *rq = cJSON_AddObjectToObject(o, "requests");
    cJSON_AddNumberToObject(rq, "submit", (double)f->submit);
    cJSON_AddNumberToObject(rq, "status", (double)f->status);
    cJSON_AddNumberToObject(rq, "status_stream", (double)f->status_stream);
    cJSON_AddNumberToObject(o, "streams_open", (double)f->streams_open);
    cJSON_AddNumberToObject(o, "streams_open_max", (double)f->streams_open_max);
    cJSON_AddNumberToObject(rq, "result", (double)f->result);
    cJSON_AddNumberToObject(rq, "cancel", (double)f->cancel);
    cJSON_AddNumberToObject(rq, "media", (double)f->media);
    cJSON_AddNumberToObject(rq, "upload", (double)f->upload);
    cJSON_AddNumberToObject(rq, "callback_sent", (double)f->callback_sent);
    cJSON_AddNumberToObject(rq, "callback_lost", (double)f->callback_lost);
    cJSON_AddNumberToObject(rq, "callback_failed", (double)f->callback_failed);
    cJSON_AddNumberToObject(rq, "other", (double)f->other);
    cJSON_AddNumberToObject(
        rq, "total",
        (double)(f->submit + f->status + f->result + f->cancel + f->media + f->upload + f->other));
    cJSON *rs = cJSON_AddObjectToObject(o, "responses");
    for (int i = 0; i < SIM_STATUS_MAX; i++) {
        if (f->responses[i]) {
            char k[8];
            snprintf(k, sizeof(k), "%d", i);
            cJSON_AddNumberToObject(rs, k, (double)f->responses[i]);
        }
    }
    cJSON *fi = cJSON_AddObjectToObject(o, "faults_injected");
    for (int i = 0; sim_fault_counter_names[i]; i++)
        cJSON_AddNumberToObject(fi, sim_fault_counter_names[i], (double)f->faults[i]);
    cJSON_AddNumberToObject(o, "tasks", (double)ctx->ntasks);
    cJSON_AddNumberToObject(o, "uploads", (double)ctx->nuploads);
    cJSON_AddNumberToObject(o, "duplicate_submissions", (double)f->duplicates);
    cJSON_AddNumberToObject(o, "tasks_created_then_reset", (double)f->created_then_reset);
    cJSON_AddNumberToObject(o, "pending_callbacks", (double)ctx->npending);
    cJSON_AddNumberToObject(o, "seed", (double)ctx->seed);
    cJSON_AddNumberToObject(o, "time_scale", ctx->time_scale);
    cJSON_AddStringToObject(o, "protocol", sim_proto_name(ctx->protocol));
    pthread_mutex_unlock(&ctx->lock);
    return o;
}

struct sim_sha_job {
    char id[SIM_TASK_ID_MAX + 1];
    uint64_t seq;
    enum sim_kind kind;
    uint64_t seeds[SIM_OUTPUTS_MAX];
    unsigned long long bytes;
    int outputs;
    char (*sha)[65];
};

/* Fills the sha256 cache of the given tasks (all when id is NULL). Hashing big media takes a
 * while, so it runs without the lock and the results are attached afterwards. */
static void sim_ctx_fill_sha(struct sim_ctx *ctx, const char *id)
{
    struct sim_sha_job *jobs = NULL;
    size_t n = 0;
    pthread_mutex_lock(&ctx->lock);
    size_t cap = id ? 1 : ctx->ntasks;
    jobs = calloc(cap ? cap : 1, sizeof(*jobs));
    for (size_t i = 0; jobs && i < ctx->ntasks && n < cap; i++) {
        struct sim_task *t = ctx->order[i];
        if (t->failed || t->sha256 || (id && strcmp(id, t->id) != 0))
            continue;
        struct sim_sha_job *j = &jobs[n++];
        memcpy(j->id, t->id, sizeof(j->id));
        j->seq = t->seq;
        j->kind = t->kind;
        j->bytes = t->media_bytes;
        j->outputs = t->outputs;
        for (int k = 0; k < t->outputs; k++)
            j->seeds[k] = sim_task_media_seed(t, k);
    }
    pthread_mutex_unlock(&ctx->lock);
    for (size_t i = 0; i < n; i++) {
        jobs[i].sha = calloc((size_t)jobs[i].outputs, sizeof(*jobs[i].sha));
        for (int k = 0; jobs[i].sha && k < jobs[i].outputs; k++)
            sim_media_sha256_hex(jobs[i].kind, jobs[i].seeds[k], jobs[i].bytes, jobs[i].sha[k]);
    }
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < n; i++) {
        struct sim_task *t = sim_table_get(&ctx->tasks, jobs[i].id);
        if (t && t->seq == jobs[i].seq && !t->sha256) {
            t->sha256 = jobs[i].sha;
            jobs[i].sha = NULL;
        }
        free(jobs[i].sha);
    }
    pthread_mutex_unlock(&ctx->lock);
    free(jobs);
}

static enum MHD_Result sim_handle_tasks(struct sim_ctx *ctx, struct MHD_Connection *c,
                                        const char *id)
{
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "sha256");
    int want_sha = !(q && strcmp(q, "0") == 0);
    if (want_sha)
        sim_ctx_fill_sha(ctx, id);
    long long now = sim_now_ms();
    cJSON *out = NULL;
    pthread_mutex_lock(&ctx->lock);
    if (id) {
        struct sim_task *t = sim_table_get(&ctx->tasks, id);
        if (t)
            out = sim_task_figure_json(t, now, ctx->base_url, t->sha256);
    } else {
        out = cJSON_CreateArray();
        for (size_t i = 0; out && i < ctx->ntasks; i++) {
            struct sim_task *t = ctx->order[i];
            cJSON_AddItemToArray(out, sim_task_figure_json(t, now, ctx->base_url, t->sha256));
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    if (!out && id) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "error", "task not found");
        return sim_http_raw_json(c, 404, e);
    }
    return sim_http_raw_json(c, 200, out);
}

/* Called with the lock held. */
static void sim_ctx_forget_tasks(struct sim_ctx *ctx)
{
    for (size_t i = 0; i < ctx->ntasks; i++)
        sim_task_free(ctx->order[i]);
    ctx->ntasks = 0;
    sim_table_free(&ctx->tasks);
    sim_table_free(&ctx->dups);
    sim_table_init(&ctx->tasks);
    sim_table_init(&ctx->dups);
    ctx->npending = 0;
    for (size_t i = 0; i < ctx->nuploads; i++)
        sim_upload_free(ctx->upload_order[i]);
    ctx->nuploads = 0;
    sim_table_free(&ctx->uploads);
    sim_table_init(&ctx->uploads);
}

static enum MHD_Result sim_handle_sim(struct sim_ctx *ctx, struct MHD_Connection *c,
                                      const struct sim_route_info *ri, struct sim_conn *sc)
{
    char err[256];
    switch (ri->route) {
    case SIM_ROUTE_FIGURES:
        return sim_http_raw_json(c, 200, sim_ctx_figures_json(ctx));
    case SIM_ROUTE_TASKS:
        return sim_handle_tasks(ctx, c, NULL);
    case SIM_ROUTE_TASK:
        return sim_handle_tasks(ctx, c, ri->task_id);
    case SIM_ROUTE_FAULTS_SET: {
        cJSON *j = sc->len ? cJSON_ParseWithLength(sc->body, sc->len) : NULL;
        pthread_mutex_lock(&ctx->lock);
        int rc = j ? sim_fault_merge(&ctx->faults, j, err, sizeof(err)) : -1;
        pthread_mutex_unlock(&ctx->lock);
        cJSON_Delete(j);
        if (rc != 0) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "error", j ? err : "faults: body is not JSON");
            return sim_http_raw_json(c, 400, e);
        }
    }
    /* fall through - answer with the switches now in force */
    case SIM_ROUTE_FAULTS_GET: {
        pthread_mutex_lock(&ctx->lock);
        cJSON *o = sim_fault_to_json(&ctx->faults);
        pthread_mutex_unlock(&ctx->lock);
        return sim_http_raw_json(c, 200, o);
    }
    case SIM_ROUTE_FAULTS_RESET: {
        pthread_mutex_lock(&ctx->lock);
        sim_fault_defaults(&ctx->faults);
        memset(&ctx->fault_state, 0, sizeof(ctx->fault_state));
        cJSON *o = sim_fault_to_json(&ctx->faults);
        pthread_mutex_unlock(&ctx->lock);
        return sim_http_raw_json(c, 200, o);
    }
    case SIM_ROUTE_RESET: {
        pthread_mutex_lock(&ctx->lock);
        sim_ctx_forget_tasks(ctx);
        memset(&ctx->fig, 0, sizeof(ctx->fig));
        pthread_mutex_unlock(&ctx->lock);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "reset", 1);
        return sim_http_raw_json(c, 200, o);
    }
    default:
        return MHD_NO;
    }
}

/* Bytes as a response (copied). */
static enum MHD_Result sim_http_bytes(struct sim_ctx *ctx, struct MHD_Connection *c,
                                      const unsigned char *data, size_t len, const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    sim_fig_response(ctx, 200);
    return sim_http_queue(c, 200, r, 0);
}

/* Keeps a new upload. Called with the lock held; takes u (freed on failure). */
static int sim_ctx_add_upload(struct sim_ctx *ctx, struct sim_upload *u)
{
    do
        sim_upload_id(ctx->seed, ++ctx->upload_counter, u->id);
    while (sim_table_get(&ctx->uploads, u->id));
    if (ctx->nuploads == ctx->cap_uploads) {
        size_t cap = ctx->cap_uploads ? ctx->cap_uploads * 2 : 64;
        struct sim_upload **o = realloc(ctx->upload_order, cap * sizeof(*o));
        if (!o) {
            sim_upload_free(u);
            return -1;
        }
        ctx->upload_order = o;
        ctx->cap_uploads = cap;
    }
    if (sim_table_put(&ctx->uploads, u->id, u) != 0) {
        sim_upload_free(u);
        return -1;
    }
    ctx->upload_order[ctx->nuploads++] = u;
    return 0;
}

/* The upload request of the protocol (faults and key as for any API request). */
static enum MHD_Result sim_handle_upload_create(struct sim_ctx *ctx, struct MHD_Connection *c,
                                                const struct sim_conn *sc)
{
    struct sim_fault_decision fd;
    pthread_mutex_lock(&ctx->lock);
    sim_fault_decide_api(&ctx->faults, &ctx->fault_state, ctx->seed, ++ctx->api_reqno, sim_now_ms(),
                         &fd);
    sim_fig_fault(ctx, fd.name);
    pthread_mutex_unlock(&ctx->lock);
    enum MHD_Result answered;
    if (sim_fault_or_key_answer(ctx, c, &fd, &answered))
        return answered;
    char msg[256];
    if (sc->too_big) {
        snprintf(msg, sizeof(msg), "file: larger than %zu bytes", (size_t)SIM_UPLOAD_MAX);
        return sim_http_error(ctx, c, 413, msg, 0, 0);
    }
    struct sim_upload *u = calloc(1, sizeof(*u));
    if (!u)
        return sim_http_error(ctx, c, 500, "out of memory", 0, 1);
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    int rc = sim_upload_parse(ctx->protocol, ct, sc->body, sc->len, u, msg, sizeof(msg));
    if (rc != 0) {
        sim_upload_free(u);
        return sim_http_error(ctx, c, rc, msg, 0, 1);
    }
    u->created_ms = sim_now_ms();
    int status = 200;
    cJSON *answer = NULL;
    pthread_mutex_lock(&ctx->lock);
    if (sim_ctx_add_upload(ctx, u) == 0)
        answer = sim_upload_answer(ctx->protocol, u, ctx->base_url, u->created_ms, &status);
    pthread_mutex_unlock(&ctx->lock);
    if (!answer)
        return sim_http_error(ctx, c, 500, "out of memory", 0, 1);
    return sim_http_proto_json(ctx, c, status, status, answer, 0, NULL);
}

/* fal's presigned PUT: the bytes of an initiated upload. Like a signed storage URL, it refuses
 * an Authorization header (the key must not go there). */
static enum MHD_Result sim_handle_upload_put(struct sim_ctx *ctx, struct MHD_Connection *c,
                                             const struct sim_route_info *ri,
                                             const struct sim_conn *sc)
{
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "error", "a presigned upload URL takes no Authorization header");
        sim_fig_response(ctx, 400);
        return sim_http_raw_json(c, 400, e);
    }
    if (sc->too_big)
        return sim_http_error(ctx, c, 413, "file: too large", 0, 0);
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    unsigned char *copy = malloc(sc->len ? sc->len : 1);
    char *type = strdup(ct && *ct ? ct : "application/octet-stream");
    int found = 0;
    pthread_mutex_lock(&ctx->lock);
    struct sim_upload *u = sim_table_get(&ctx->uploads, ri->task_id);
    if (u && copy && type) {
        found = 1;
        if (sc->len)
            memcpy(copy, sc->body, sc->len);
        free(u->data);
        free(u->content_type);
        u->data = copy;
        u->len = sc->len;
        u->content_type = type;
        u->complete = 1;
        copy = NULL;
        type = NULL;
    }
    pthread_mutex_unlock(&ctx->lock);
    free(copy);
    free(type);
    if (!found)
        return sim_http_error(ctx, c, 404, "no such upload", 0, 0);
    return sim_http_bytes(ctx, c, (const unsigned char *)"", 0, "text/plain");
}

/* Uploads: the protocol's requests, the file URLs, and the test-only /_sim/uploads. */
static enum MHD_Result sim_handle_upload(struct sim_ctx *ctx, struct MHD_Connection *c,
                                         const struct sim_route_info *ri, struct sim_conn *sc)
{
    pthread_mutex_lock(&ctx->lock);
    if (ri->route != SIM_ROUTE_UPLOADS && ri->route != SIM_ROUTE_UPLOAD_BYTES)
        ctx->fig.upload++;
    pthread_mutex_unlock(&ctx->lock);
    if (ri->route == SIM_ROUTE_UPLOAD)
        return sim_handle_upload_create(ctx, c, sc);
    if (ri->route == SIM_ROUTE_UPLOAD_PUT)
        return sim_handle_upload_put(ctx, c, ri, sc);
    if (ri->route == SIM_ROUTE_UPLOAD_GET && !sim_http_authorized(ctx, c))
        return sim_http_error(ctx, c, 401, NULL, 0, 1);
    cJSON *j = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0;
    char type[128] = "";
    int found = 0, status = 200;
    pthread_mutex_lock(&ctx->lock);
    if (ri->route == SIM_ROUTE_UPLOADS) {
        j = cJSON_CreateArray();
        for (size_t i = 0; j && i < ctx->nuploads; i++)
            cJSON_AddItemToArray(j, sim_upload_figure_json(ctx->upload_order[i], ctx->base_url));
        found = 1;
    } else {
        struct sim_upload *u = sim_table_get(&ctx->uploads, ri->task_id);
        if (u && ri->route == SIM_ROUTE_UPLOAD_GET) {
            j = sim_upload_answer(ctx->protocol, u, ctx->base_url, u->created_ms, &status);
            found = 1;
        } else if (u && u->complete &&
                   (ri->route == SIM_ROUTE_UPLOAD_BYTES || strcmp(ri->model, u->name) == 0)) {
            /* /files/{id}/{name} must name the file as its URL does. */
            bytes = malloc(u->len ? u->len : 1);
            if (bytes && u->len)
                memcpy(bytes, u->data, u->len);
            len = u->len;
            snprintf(type, sizeof(type), "%s", u->content_type);
            found = bytes != NULL;
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    if (!found)
        return sim_http_error(ctx, c, 404, "no such file", 0, 0);
    if (j)
        return ri->route == SIM_ROUTE_UPLOADS ? sim_http_raw_json(c, 200, j)
                                              : sim_http_proto_json(ctx, c, 200, 200, j, 0, NULL);
    enum MHD_Result r = sim_http_bytes(ctx, c, bytes, len, type);
    free(bytes);
    return r;
}

static enum MHD_Result sim_http_handler(void *cls, struct MHD_Connection *c, const char *url,
                                        const char *method, const char *version, const char *upload,
                                        size_t *upload_size, void **con_cls)
{
    struct sim_ctx *ctx = cls;
    struct sim_conn *sc = *con_cls;
    (void)version;
    if (!sc) {
        sc = calloc(1, sizeof(*sc));
        if (!sc)
            return MHD_NO;
        struct sim_route_info first;
        sim_proto_route(ctx->protocol, method, url, NULL, &first);
        sc->max = first.route == SIM_ROUTE_UPLOAD || first.route == SIM_ROUTE_UPLOAD_PUT
                      ? SIM_UPLOAD_MAX
                      : SIM_BODY_MAX;
        *con_cls = sc;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (sc->too_big || sc->len + n > sc->max) {
            sc->too_big = 1;
            return MHD_YES;
        }
        if (sc->len + n + 1 > sc->cap) {
            size_t cap = sc->cap ? sc->cap : 4096;
            while (cap < sc->len + n + 1)
                cap *= 2;
            char *b = realloc(sc->body, cap);
            if (!b)
                return MHD_NO;
            sc->body = b;
            sc->cap = cap;
        }
        memcpy(sc->body + sc->len, upload, n);
        sc->len += n;
        sc->body[sc->len] = '\0';
        return MHD_YES;
    }
    struct sim_route_info ri;
    sim_proto_route(ctx->protocol, method, url,
                    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "taskId"), &ri);
    sim_log(ctx, "%s %s", method, url);
    switch (ri.route) {
    case SIM_ROUTE_SUBMIT:
        return sim_handle_submit(ctx, c, &ri, sc);
    case SIM_ROUTE_STATUS:
    case SIM_ROUTE_RESULT:
    case SIM_ROUTE_CANCEL:
        return sim_handle_status(ctx, c, &ri);
    case SIM_ROUTE_MEDIA:
        return sim_handle_media(ctx, c, &ri);
    case SIM_ROUTE_STREAM:
        return sim_handle_stream(ctx, c, &ri);
    case SIM_ROUTE_UPLOAD:
    case SIM_ROUTE_UPLOAD_GET:
    case SIM_ROUTE_UPLOAD_PUT:
    case SIM_ROUTE_UPLOAD_FILE:
    case SIM_ROUTE_UPLOADS:
    case SIM_ROUTE_UPLOAD_BYTES:
        return sim_handle_upload(ctx, c, &ri, sc);
    case SIM_ROUTE_NOT_FOUND:
    case SIM_ROUTE_BAD_METHOD:
        pthread_mutex_lock(&ctx->lock);
        ctx->fig.other++;
        pthread_mutex_unlock(&ctx->lock);
        if (ri.route == SIM_ROUTE_BAD_METHOD)
            return sim_http_error(ctx, c, 405, NULL, 0, 0);
        return sim_http_error(ctx, c, 404, NULL, 0, 0);
    default:
        return sim_handle_sim(ctx, c, &ri, sc);
    }
}

static void sim_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                               enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct sim_conn *sc = *con_cls;
    if (sc) {
        free(sc->body);
        free(sc);
    }
    *con_cls = NULL;
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static size_t sim_cb_discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Moves the callbacks that are due into curl transfers (or drops the lost ones). */
static void sim_cb_start_due(struct sim_ctx *ctx, CURLM *multi, struct sim_cb_transfer **list)
{
    long long now = sim_now_ms();
    pthread_mutex_lock(&ctx->lock);
    size_t i = 0;
    while (i < ctx->npending) {
        struct sim_callback cb = ctx->pending[i];
        if (cb.due_ms > now) {
            i++;
            continue;
        }
        ctx->pending[i] = ctx->pending[--ctx->npending];
        struct sim_task *t = sim_table_get(&ctx->tasks, cb.id);
        if (!t || t->seq != cb.seq || !t->callback_url)
            continue;
        if (cb.attempt == 0 && sim_fault_callback_lost(&ctx->faults, ctx->seed, t->seq)) {
            ctx->fig.callback_lost++;
            sim_fig_fault(ctx, "lost_callback_rate");
            continue;
        }
        struct sim_cb_transfer *x = calloc(1, sizeof(*x));
        CURL *e = curl_easy_init();
        if (x)
            x->body = sim_proto_callback_body(
                ctx->protocol, t, now > t->complete_ms ? now : t->complete_ms, ctx->base_url);
        if (!x || !e || !x->body) {
            if (x)
                free(x->body);
            free(x);
            if (e)
                curl_easy_cleanup(e);
            continue;
        }
        x->cb = cb;
        x->headers = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_URL, t->callback_url);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, SIM_CALLBACK_TIMEOUT_MS);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sim_cb_discard);
        curl_easy_setopt(e, CURLOPT_PRIVATE, x);
        x->easy = e;
        x->next = *list;
        *list = x;
        if (cb.attempt == 0)
            ctx->fig.callback_sent++;
        curl_multi_add_handle(multi, e);
    }
    pthread_mutex_unlock(&ctx->lock);
}

static void sim_cb_finish(struct sim_ctx *ctx, CURLM *multi, struct sim_cb_transfer **list)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        struct sim_cb_transfer *x = NULL;
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        int ok = msg->data.result == CURLE_OK && code >= 200 && code < 300;
        curl_multi_remove_handle(multi, e);
        curl_easy_cleanup(e);
        pthread_mutex_lock(&ctx->lock);
        struct sim_task *t = sim_table_get(&ctx->tasks, x->cb.id);
        if (!ok && x->cb.attempt < SIM_CALLBACK_RETRIES && t && t->seq == x->cb.seq) {
            sim_ctx_schedule_callback(ctx, t, sim_now_ms() + SIM_CALLBACK_RETRY_MS,
                                      x->cb.attempt + 1);
        } else if (!ok) {
            ctx->fig.callback_failed++;
        }
        pthread_mutex_unlock(&ctx->lock);
        sim_log(ctx, "callback %s attempt %d: %s", x->cb.id, x->cb.attempt + 1,
                ok ? "delivered" : "failed");
        sim_cb_transfer_free(list, x);
    }
}

static void *sim_cb_thread(void *arg)
{
    struct sim_ctx *ctx = arg;
    CURLM *multi = curl_multi_init();
    struct sim_cb_transfer *list = NULL;
    if (!multi)
        return NULL;
    while (!atomic_load(&ctx->stopping)) {
        int running = 0;
        sim_cb_start_due(ctx, multi, &list);
        curl_multi_perform(multi, &running);
        sim_cb_finish(ctx, multi, &list);
        /* 20 ms granularity: callbacks arrive promptly even at --time-scale 0.01. */
        curl_multi_poll(multi, NULL, 0, 20, NULL);
    }
    /* Abandon transfers still in flight. */
    while (list) {
        curl_multi_remove_handle(multi, list->easy);
        curl_easy_cleanup(list->easy);
        sim_cb_transfer_free(&list, list);
    }
    curl_multi_cleanup(multi);
    return NULL;
}

/* ---- start-up ----------------------------------------------------------------------------- */

static void sim_usage(FILE *f)
{
    fputs("usage: genfs-sim [--listen ADDR:PORT] [--port-file FILE] [--seed N]\n"
          "                 [--time-scale X] [--key KEY] [--key-file FILE] [--profile FILE]\n"
          "                 [--protocol apixo|kie|replicate|fal] [--fault NAME=VALUE]...\n"
          "                 [--quiet] [--help]\n"
          "A local provider for genfs: APIXO's (the default), kie's, replicate's or fal's\n"
          "protocol, real media, seeded timings and faults. Key: --key, --key-file or env\n"
          "GENFS_SIM_KEY (none: any token); sent as \"Authorization: Bearer KEY\" (fal:\n"
          "\"Key KEY\").\n"
          "See docs/simulator.md.\n",
          f);
}

static char *sim_read_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max, f) : 0;
    int bad = ferror(f) || !buf;
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int sim_set_key(struct sim_ctx *ctx, const char *key)
{
    size_t n = strlen(key);
    while (n &&
           (key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == ' ' || key[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof(ctx->key))
        return -1;
    memcpy(ctx->key, key, n);
    ctx->key[n] = '\0';
    ctx->have_key = 1;
    return 0;
}

static int sim_die(const char *fmt, const char *arg)
{
    fputs("genfs-sim: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 2;
}

static int sim_parse_listen(struct sim_ctx *ctx, const char *arg)
{
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || !colon[1] || strlen(colon + 1) >= sizeof(ctx->listen_port))
        return -1;
    size_t hl = (size_t)(colon - arg);
    if (arg[0] == '[' && hl >= 2 && arg[hl - 1] == ']') {
        arg++;
        hl -= 2;
    }
    if (hl >= sizeof(ctx->listen_host))
        return -1;
    memcpy(ctx->listen_host, arg, hl);
    ctx->listen_host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return -1;
    snprintf(ctx->listen_port, sizeof(ctx->listen_port), "%ld", p);
    return 0;
}

static int sim_parse_args(struct sim_ctx *ctx, int argc, char **argv)
{
    char err[256];
    const char *key_file = NULL, *key = NULL;
    /* Profiles are loaded after every option is read, so they override the protocol's own
     * built-in models whatever the order of --profile and --protocol. */
    const char *profiles[64];
    size_t nprofiles = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            sim_usage(stdout);
            exit(0);
        } else if (strcmp(a, "--quiet") == 0) {
            ctx->quiet = 1;
            continue;
        }
        static const char *const with_value[] = {
            "--listen",   "--port-file", "--seed",  "--time-scale", "--key",
            "--key-file", "--profile",   "--fault", "--protocol",   NULL};
        int known = 0;
        for (int k = 0; with_value[k]; k++)
            known |= strcmp(a, with_value[k]) == 0;
        if (!known)
            return sim_die("unknown option \"%s\" (see --help)", a);
        if (!v)
            return sim_die("%s: missing value (see --help)", a);
        i++;
        char *end;
        if (strcmp(a, "--listen") == 0) {
            if (sim_parse_listen(ctx, v) != 0)
                return sim_die("--listen wants ADDR:PORT, got \"%s\"", v);
        } else if (strcmp(a, "--port-file") == 0) {
            ctx->port_file = v;
        } else if (strcmp(a, "--seed") == 0) {
            errno = 0;
            ctx->seed = strtoull(v, &end, 0);
            if (errno || *end || !*v)
                return sim_die("--seed wants an integer, got \"%s\"", v);
        } else if (strcmp(a, "--time-scale") == 0) {
            ctx->time_scale = strtod(v, &end);
            if (*end || !*v || !(ctx->time_scale >= 0 && ctx->time_scale <= 1e6))
                return sim_die("--time-scale wants a number >= 0, got \"%s\"", v);
        } else if (strcmp(a, "--key") == 0) {
            key = v;
        } else if (strcmp(a, "--key-file") == 0) {
            key_file = v;
        } else if (strcmp(a, "--profile") == 0) {
            if (nprofiles == sizeof(profiles) / sizeof(profiles[0]))
                return sim_die("--profile: more than 64 given%s", "");
            profiles[nprofiles++] = v;
        } else if (strcmp(a, "--protocol") == 0) {
            if (sim_proto_parse(v, &ctx->protocol) != 0)
                return sim_die("--protocol wants apixo, kie, replicate or fal, got \"%s\"", v);
        } else if (strcmp(a, "--fault") == 0) {
            if (sim_fault_merge_arg(&ctx->faults, v, err, sizeof(err)) != 0)
                return sim_die("--fault: %s", err);
        } else {
            return sim_die("unknown option \"%s\" (see --help)", a);
        }
    }
    const char *builtin = sim_proto_models_profile(ctx->protocol);
    if (builtin && sim_models_load_profile(&ctx->models, builtin, err, sizeof(err)) != 0)
        return sim_die("%s", err);
    for (size_t k = 0; k < nprofiles; k++) {
        char *text = sim_read_file(profiles[k], 4u << 20);
        int rc = text ? sim_models_load_profile(&ctx->models, text, err, sizeof(err)) : -1;
        if (!text)
            snprintf(err, sizeof(err), "--profile: cannot read \"%s\"", profiles[k]);
        free(text);
        if (rc != 0)
            return sim_die("%s", err);
    }
    if (key && sim_set_key(ctx, key) != 0)
        return sim_die("--key: empty or too long%s", "");
    if (!key && key_file) {
        char *text = sim_read_file(key_file, sizeof(ctx->key));
        if (!text || sim_set_key(ctx, text) != 0) {
            free(text);
            return sim_die("--key-file: cannot read a key from \"%s\"", key_file);
        }
        free(text);
    }
    const char *env = getenv("GENFS_SIM_KEY");
    if (!key && !key_file && env && *env && sim_set_key(ctx, env) != 0)
        return sim_die("GENFS_SIM_KEY: too long%s", "");
    return 0;
}

static int sim_listen(struct sim_ctx *ctx, int *port_out)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(ctx->listen_host, ctx->listen_port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "genfs-sim: --listen %s: %s\n", ctx->listen_host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 512) != 0) {
        fprintf(stderr, "genfs-sim: cannot listen on %s:%s: %s\n", ctx->listen_host,
                ctx->listen_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    int v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    /* Result URLs must name an address clients can reach, not the wildcard. */
    const char *host = ctx->listen_host;
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    if (strchr(host, ':'))
        snprintf(ctx->base_url, sizeof(ctx->base_url), "http://[%s]:%d", host, *port_out);
    else
        snprintf(ctx->base_url, sizeof(ctx->base_url), "http://%s:%d", host, *port_out);
    return fd;
}

static int sim_write_port_file(const char *path, int port)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return -1;
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (f) {
        int ok = fprintf(f, "%d\n", port) > 0;
        if (fclose(f) == 0 && ok && rename(tmp, path) == 0)
            rc = 0;
    }
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int main(int argc, char **argv)
{
    struct sim_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    snprintf(ctx.listen_host, sizeof(ctx.listen_host), "127.0.0.1");
    snprintf(ctx.listen_port, sizeof(ctx.listen_port), "0");
    ctx.seed = 1;
    ctx.time_scale = 1.0;
    sim_fault_defaults(&ctx.faults);
    if (sim_models_init_default(&ctx.models) != 0)
        return 1;
    int rc = sim_parse_args(&ctx, argc, argv);
    if (rc != 0) {
        sim_models_free(&ctx.models);
        return rc;
    }
    if (sim_table_init(&ctx.tasks) != 0 || sim_table_init(&ctx.dups) != 0 ||
        sim_table_init(&ctx.uploads) != 0)
        return 1;
    pthread_mutex_init(&ctx.lock, NULL);

    /* Signals are taken synchronously by main via sigwait: block them before any thread
     * starts so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int port = 0;
    int fd = sim_listen(&ctx, &port);
    if (fd < 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ctx.mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                   MHD_USE_POLL | (ctx.quiet ? 0 : MHD_USE_ERROR_LOG),
                               0, NULL, NULL, sim_http_handler, &ctx, MHD_OPTION_LISTEN_SOCKET, fd,
                               MHD_OPTION_NOTIFY_COMPLETED, sim_http_completed, &ctx,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned int)4000, MHD_OPTION_END);
    if (!ctx.mhd) {
        fprintf(stderr, "genfs-sim: cannot start the HTTP server\n");
        close(fd);
        return 1;
    }
    if (pthread_create(&ctx.cb_thread, NULL, sim_cb_thread, &ctx) != 0) {
        fprintf(stderr, "genfs-sim: cannot start the callback thread\n");
        MHD_stop_daemon(ctx.mhd);
        return 1;
    }
    if (ctx.port_file && sim_write_port_file(ctx.port_file, port) != 0) {
        fprintf(stderr, "genfs-sim: cannot write --port-file %s: %s\n", ctx.port_file,
                strerror(errno));
        atomic_store(&ctx.stopping, 1);
        pthread_join(ctx.cb_thread, NULL);
        MHD_stop_daemon(ctx.mhd);
        return 1;
    }
    fprintf(stderr, "genfs-sim listening on %s\n", ctx.base_url);
    fflush(stderr);

    int sig = 0;
    sigwait(&sigs, &sig);
    sim_log(&ctx, "signal %d: stopping", sig);
    atomic_store(&ctx.stopping, 1);
    MHD_stop_daemon(ctx.mhd);
    close(fd);
    pthread_join(ctx.cb_thread, NULL);
    curl_global_cleanup();
    pthread_mutex_lock(&ctx.lock);
    sim_ctx_forget_tasks(&ctx);
    pthread_mutex_unlock(&ctx.lock);
    sim_table_free(&ctx.tasks);
    sim_table_free(&ctx.dups);
    sim_table_free(&ctx.uploads);
    free(ctx.upload_order);
    free(ctx.order);
    free(ctx.pending);
    sim_models_free(&ctx.models);
    pthread_mutex_destroy(&ctx.lock);
    return 0;
}
