/* Private to the engine*.c files: struct engine and what one file asks of
 * another. All of it runs on the engine thread unless a field says otherwise.
 *
 *   engine.c         the loop, the inbox and its commands, the public calls
 *   engine_plan.c    when each task's next poll is due (schedules, deadlines)
 *   engine_poll.c    status and result requests and their answers (phase.h)
 *   engine_submit.c  submissions and their answers
 *   engine_ctl.c     MODEL/ID/ctl: cancels, their requests and answers
 *   engine_upload.c  a submission's local files ("@PATH"), uploaded before it goes
 *   engine_cache.c   result downloads, the cache, eviction, -o keep
 *   engine_xfer.c    HTTP transfers: curl handles, bodies, headers, messages
 *   engine_stream.c  status streams (fal): their events read as status answers
 *   engine_stats.c   the counters behind MOUNT/stats */
#ifndef GENFS_ENGINE_INTERNAL_H
#define GENFS_ENGINE_INTERNAL_H

#include "clock.h"
#include "engine.h"
#include "phase.h"
#include "rate.h"
#include "stats.h"
#include "timers.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MAX_INFLIGHT 48
#define MAX_DOWNLOADS 4
#define MAX_BODY PROVIDER_MAX_BODY_BYTES
#define MAX_REDIRECTS 5L
#define CONNECT_TIMEOUT_MS 10000L
#define SUBMIT_ATTEMPTS 5
#define DOWNLOAD_ATTEMPTS 4
#define LOG_ONCE_SLOTS 64

enum xfer_kind { X_SUBMIT, X_STATUS, X_ADOPT, X_RESULT, X_DOWNLOAD, X_CANCEL, X_UPLOAD, X_STREAM };

struct stream_live; /* engine_stream.c: an open status stream's parser and news */
struct stream_prov; /* engine_stream.c: a provider's streams */

/* One HTTP transfer in flight. */
struct xfer {
    enum xfer_kind kind;
    size_t pi;                /* which provider */
    struct xfer *next, *prev; /* in engine->xfers */
    CURL *h;
    struct curl_slist *hdrs;
    struct provider_request req;
    uint32_t task_idx;
    struct engine_cmd *cmd;
    struct upload_job *job; /* X_UPLOAD: whose file (the job answers its command) */
    char *buf;
    size_t len, cap;
    bool too_big;
    /* The answer's headers, taken once it is complete (xfer_take_headers). */
    char retry_after[64];
    char rl_remaining[32], rl_reset[32]; /* RateLimit-Remaining/-Reset (or X-RateLimit-) */
    char error_type[64];                 /* the profile's error_type_header */
    char content_type[128];
    int write_errno;                /* a download's failed write to the cache */
    bool fresh;                     /* no connection reuse (submissions) */
    char token[HOOK_TOKEN_LEN + 1]; /* webhook mode: this submission's callback secret */
    /* downloads */
    uint32_t file_n;
    int attempt;
    int64_t cap_bytes;
    int fd;
    int64_t written;
    struct stream_live *live; /* X_STREAM only */
};

/* A result file waiting to be downloaded. */
struct dl_job {
    uint32_t task_idx;
    uint32_t file_n;
    int attempts;
    int64_t not_before_ms; /* monotonic */
    struct dl_job *next;
};

/* A submission's local files, uploaded one after the other before it is queued. */
struct upload_job {
    struct engine_cmd *cmd;
    size_t file;           /* cmd->files[file] is the one under way */
    char *put_url;         /* initiate_put: where its bytes go next, or NULL */
    char *file_url;        /* initiate_put: its URL once they are there */
    int attempts;          /* of the request under way */
    int64_t not_before_ms; /* monotonic */
    bool inflight;
    struct upload_job *next;
};

/* Per-task engine state, parallel to the store's task slots; the task's
 * next poll is its timer in engine->timers. */
struct tsched {
    struct phase_task pt;
    bool poll_again;   /* a callback came while a request was in flight: it may predate the end */
    bool cancel_asked; /* the provider took a cancel (ctl): a failed end is "canceled" */
    /* The status stream (engine_stream.c): open, or due to open at the timer. */
    struct xfer *stream;
    bool stream_wanted;
    uint8_t stream_tries;
    size_t stream_pi;        /* the provider whose stream it is */
    int64_t stream_after_ms; /* monotonic: no stream before, after one failed */
};

struct engine {
    struct store *store;
    struct log *log;
    struct hook *hook;
    struct announcer *announcer; /* only for its figures */
    struct engine_config cfg;
    char **auth; /* the auth header line of each provider */
    char **keys; /* each provider's key, to mask it where a provider echoes it */
    CURLM *multi;
    pthread_t thread;
    bool started;

    pthread_mutex_t inbox_lock;
    struct engine_cmd *inbox_head, *inbox_tail;
    bool stopping; /* under inbox_lock */

    /* engine-thread only; times are monotonic unless named wall */
    struct engine_cmd *submits_head, *submits_tail;
    struct engine_cmd *cancels_head, *cancels_tail; /* cancels to send (engine_ctl.c) */
    struct engine_cmd *cancels_waiting; /* taken by the provider: answered at the task's end */
    struct upload_job *uploads;         /* submissions whose files are being uploaded */
    struct tsched *ts;
    uint32_t ts_cap;
    struct timers timers; /* each pending task's next poll */
    int inflight;
    int submits_inflight;
    struct xfer *xfers;
    struct rate rate;
    uint64_t rng;
    int64_t last_flush_ms;
    struct dl_job *dl_head, *dl_tail;
    struct sched_hist *hists;    /* the learned schedule's, by model index */
    struct stream_prov *streams; /* by provider index */
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
    struct stats_counters c;
    int64_t cache_bytes_now;
    int64_t kept_over_cap_now;
    double rate_now;

    /* team mounts (engine_team.c) */
    uint64_t team_429s;         /* http_429 as last told to the other mounts */
    uint64_t team_throttle_seq; /* the account's 429 count as last seen */
    int64_t team_rate_ms;
};

/* engine.c */
size_t engine_provider_index(struct engine *e, uint32_t model_idx);
const struct provider *engine_provider_of(struct engine *e, size_t pi);
const char *engine_model_name(struct engine *e, const struct task *t);
void engine_finish_cmd(struct engine_cmd *cmd, int err, const char *msg);
/* True when this message was not logged in the last 10 minutes. */
bool engine_log_once(struct engine *e, const char *msg);
void engine_forget_slot(struct engine *e, uint32_t idx);
/* Poll task idx as soon as the rate allows (after the request in flight, if one is). */
void engine_poll_soon(struct engine *e, uint32_t idx);

/* engine_plan.c */
int plan_ensure_slot(struct engine *e, uint32_t idx);
/* The task's next poll at mono_ms: it is SCHEDULED. */
void plan_poll_at(struct engine *e, uint32_t idx, int64_t mono_ms);
void plan_cancel(struct engine *e, uint32_t idx);
/* A pending task's next poll by its schedule, never before not_before_mono. */
void plan_schedule(struct engine *e, const struct task *t, struct clock_pair now,
                   int64_t not_before_mono);
int64_t plan_backoff_ms(struct engine *e, uint32_t streak);
bool plan_past_deadline(struct engine *e, const struct task *t, int64_t wall_ms);
void plan_learn_duration(struct engine *e, uint32_t model_idx, const struct provider_status *ps);
void plan_free(struct engine *e);

/* engine_poll.c */
void poll_start_status(struct engine *e, uint32_t idx);
void poll_start_adopt(struct engine *e, struct engine_cmd *adopt);
void poll_on_answer(struct engine *e, struct xfer *x, CURLcode cc, long http,
                    struct clock_pair now);

/* engine_submit.c */
void submit_prepare(struct engine *e, struct engine_cmd *cmd);
void submit_queue(struct engine *e, struct engine_cmd *cmd);
int submit_start(struct engine *e, struct engine_cmd *cmd);
void submit_on_answer(struct engine *e, struct xfer *x, CURLcode cc, long http,
                      struct clock_pair now);
/* Ends a submission with an error: one log line, the writer gets err and msg. */
void submit_fail(struct engine *e, struct engine_cmd *cmd, int err, const char *msg);
/* The input is final (its files uploaded): defaults merged, then queued. */
void submit_ready(struct engine *e, struct engine_cmd *cmd);

/* engine_upload.c */
/* Starts the uploads of cmd's files; submit_ready once they are all in. */
void upload_begin(struct engine *e, struct engine_cmd *cmd);
/* Starts what is due; returns ms until the next may be, at most wait. stopping: each
 * waiting submission fails with EIO. */
int64_t upload_launch(struct engine *e, int64_t mono_ms, bool stopping, int64_t wait);
void upload_on_answer(struct engine *e, struct xfer *x, CURLcode cc, long http,
                      struct clock_pair now);

/* engine_ctl.c */
void ctl_cmd_cancel(struct engine *e, struct engine_cmd *cmd);
/* Sends the cancels that may go, answers those that waited long enough; returns ms until
 * one may be due, at most wait. stopping: every one is answered EIO. */
int64_t ctl_launch(struct engine *e, int64_t mono_ms, bool stopping, int64_t wait);
void ctl_on_answer(struct engine *e, struct xfer *x, CURLcode cc, long http, struct clock_pair now);
/* The task ended or was forgotten: its waiting cancels are answered. */
void ctl_on_task_end(struct engine *e, uint32_t idx);
/* An answer that ends a task whose cancel the provider took says "canceled". */
void ctl_mark_canceled(struct engine *e, uint32_t idx, struct provider_status *ps);

/* engine_cache.c */
void cache_queue_file(struct engine *e, uint32_t idx, uint32_t n, bool front);
void cache_queue_task(struct engine *e, const struct task *t);
/* Starts the ready downloads; returns ms until the next one may be ready, at most wait. */
int64_t cache_launch(struct engine *e, int64_t mono_ms, int64_t wait);
void cache_on_download(struct engine *e, struct xfer *x, CURLcode cc, long http,
                       struct clock_pair now);
void cache_forget_task(struct engine *e, const struct task *t);
void cache_forget_old(struct engine *e, struct clock_pair now);
void cache_scan(struct engine *e);
/* Counts a full disk under cache_dir or state_dir. */
void cache_note_store_error(struct engine *e, int err);
void cache_free(struct engine *e);

/* engine_xfer.c */
struct xfer *xfer_new(enum xfer_kind kind, size_t pi);
int xfer_start(struct engine *e, struct xfer *x, long timeout_ms);
int xfer_add(struct engine *e, struct xfer *x);
void xfer_detach(struct engine *e, struct xfer *x);
void xfer_free(struct xfer *x);
/* Copies the headers the engine reads from the final response of x. */
void xfer_take_headers(struct engine *e, struct xfer *x);
struct provider_headers xfer_provider_headers(const struct xfer *x);
/* RateLimit headers that say the window is spent pause the shared rate. */
void xfer_note_rate_headers(struct engine *e, const struct xfer *x, int64_t mono_ms);
/* The transport error of x as one line naming its URL (origin_only: only
 * the scheme, host and port, the same for every task of the provider). */
void xfer_transport_msg(struct engine *e, const struct xfer *x, CURLcode cc, bool origin_only,
                        char *msg, size_t len);
/* A submit may be retried only when the provider provably did not take it. */
bool xfer_never_sent(CURLcode cc);
void xfer_redact(struct engine *e, char *text);

/* engine_stream.c */
/* Sets up each provider's streams; returns how many may be open in all, or -ENOMEM. */
int stream_init(struct engine *e);
void stream_free(struct engine *e);
/* plan_schedule's look at a pending task before its next poll is set: true
 * when a stream serves it (open, or due to open now on its timer), so its
 * polls wait. */
bool stream_plan(struct engine *e, const struct task *t, struct clock_pair now);
/* The task's timer fired: true when that opened its stream (no poll then). */
bool stream_start_due(struct engine *e, uint32_t idx);
/* The curl options of a stream transfer (xfer_start, before it is added). */
void stream_setopt(struct xfer *x);
/* Applies the status events that arrived, as poll answers. */
void stream_deliver(struct engine *e);
void stream_on_end(struct engine *e, struct xfer *x, CURLcode cc, long http, struct clock_pair now);
/* Closes the task's stream, if any (the task is forgotten). */
void stream_close(struct engine *e, uint32_t idx);
/* Closes and frees a stream transfer, whoever holds it (also at shutdown). */
void stream_drop(struct engine *e, struct xfer *x);
void stream_live_free(struct stream_live *live);

/* engine_team.c */
int team_init(struct engine *e);
/* Other mounts' changes, leases and the shared rate: each loop. */
void team_tick(struct engine *e, struct clock_pair now);
/* The task is this mount's to poll; if not, it is looked at again later. */
bool team_may_poll(struct engine *e, uint32_t idx, int64_t mono_ms);

/* engine_stats.c */
void engine_count(struct engine *e, uint64_t *field);
void engine_count_lag(struct engine *e, double lag_ms);
void engine_count_bytes(struct engine *e, int64_t bytes);
/* Copies the engine thread's figures for engine_stats_json. */
void engine_publish_figures(struct engine *e);

#endif
