/* The engine thread: one loop around curl_multi_poll with a timer heap of
 * due status polls, the global rate limit, retries, and the commands that
 * FUSE handlers post (submit, adopt, forget, models). Every task state
 * change happens here, through the store. The files behind it are listed
 * in engine_internal.h. */
#ifndef GENFS_ENGINE_H
#define GENFS_ENGINE_H

#include "announcer.h"
#include "hook.h"
#include "log.h"
#include "opts.h"
#include "provider.h"
#include "sched.h"
#include "store.h"

#include <stdint.h>

struct engine;

enum engine_cmd_kind {
    ENGINE_SUBMIT,       /* model_idx, input_json, prompt -> task_idx */
    ENGINE_ADOPT,        /* model_idx, name = task id -> task_idx */
    ENGINE_FORGET,       /* task_idx */
    ENGINE_MODEL_ADD,    /* name -> model_idx */
    ENGINE_MODEL_REMOVE, /* model_idx */
    ENGINE_POLL_NOW,     /* task_idx; no reply */
    ENGINE_FETCH,        /* task_idx, file_n: download (again) now */
    ENGINE_MODEL_SET,    /* model_idx, name "defaults" | "request", input_json: object or NULL */
    ENGINE_CANCEL,       /* task_idx: cancel at the provider (MODEL/ID/ctl) */
};

/* A local file named "@PATH" in a submission's input, read by the writer's rights
 * (fs_write.c), uploaded before the submission (engine_upload.c). */
struct engine_file {
    char *path; /* as written, without the @ */
    unsigned char *data;
    size_t len;
    char *name;               /* its base name, for the provider's records */
    const char *content_type; /* static, from the extension; NULL: octet-stream */
    char *url;                /* what replaces "@PATH" once uploaded, or NULL */
    char *shown;              /* what input.json shows in its place, or NULL: url */
};

struct engine_cmd;
/* Runs on the engine thread once the command is done. err: 0 or negative
 * errno; msg: one line for the user when err != 0. Owns nothing: the poster
 * frees the command (it may do so inside this callback). */
typedef void (*engine_done_fn)(struct engine_cmd *cmd, int err, const char *msg);

struct engine_cmd {
    enum engine_cmd_kind kind;
    uint32_t model_idx;
    uint32_t task_idx;
    uint32_t file_n;
    char *name;
    char *input_json;
    char *prompt;
    engine_done_fn done; /* may be NULL */
    void *arg;
    struct engine_file *files; /* ENGINE_SUBMIT: the input's local files, n_files of them */
    size_t n_files;
    char *shown_json; /* what input.json shows when it differs from what is sent, or NULL */
    /* engine-private */
    int attempts;
    int64_t first_ms;      /* monotonic: the first attempt (429s are retried until the timeout) */
    int64_t not_before_ms; /* monotonic: no attempt before */
    int64_t intent;        /* team mounts: the submission's record (store_submit_intent) */
    struct engine_cmd *next;
};

/* One provider the mount speaks to; the first is the mount's own. */
struct engine_provider {
    const char *name;
    struct provider *prov;
    const char *api_key;
};

struct engine_config {
    const struct engine_provider *providers;
    size_t n_providers;
    enum sched_kind schedule;
    double rate;
    double timeout_s;
    const char *cache_dir;
    int64_t file_max_bytes;          /* one result file */
    int64_t cache_max_bytes;         /* all whole files; 0 = no limit */
    int64_t keep_ms;                 /* -o keep: forget tasks ended longer ago; 0 = never */
    const char *callback_url;        /* webhook mode: the listener's public base URL, else NULL */
    int64_t callback_poll_ms;        /* webhook mode: safety polls this often */
    const struct opts_model *models; /* profile overrides from the config */
    size_t n_models;
};

struct engine *engine_new(struct store *st, struct log *lg, const struct engine_config *cfg);
int engine_start(struct engine *e);
/* Stops taking work, lets in-flight submissions finish (bounded), joins. */
void engine_stop(struct engine *e);
void engine_free(struct engine *e);
/* Zeroes the keys and auth headers in place, frees nothing: for a process
 * forked from genfs that never talks to a provider (async-signal-safe). */
void engine_wipe_keys(struct engine *e);

/* Webhook mode: the listener whose token table the engine keeps up to date
 * (call before engine_start). */
void engine_set_hook(struct engine *e, struct hook *h);
/* The announcer whose figures stats shows (may be NULL). */
void engine_set_announcer(struct engine *e, struct announcer *n);
/* Thread-safe: poll this task as soon as the rate allows (a callback came). */
void engine_poll_now(struct engine *e, uint32_t task_idx);

/* Thread-safe: queue a command and wake the loop. */
void engine_post(struct engine *e, struct engine_cmd *cmd);

/* Frees a command's files (engine_file) and shown_json, leaving none. */
void engine_cmd_clear_files(struct engine_cmd *cmd);
/* Whether a local file of len bytes can reach the provider of a model (thread-safe):
 * 0, or -EFBIG / -EOPNOTSUPP with a line in msg saying what to do. */
int engine_upload_check(struct engine *e, uint32_t model_idx, size_t len, char *msg, size_t msglen);

/* Whether the provider of a model has a cancel request (with the store read-locked). */
bool engine_can_cancel(struct engine *e, uint32_t model_idx);

/* The name of the provider a model belongs to (thread-safe). */
const char *engine_provider_name(struct engine *e, uint32_t model_idx);

/* Thread-safe: the figures behind MOUNT/stats as JSON text (malloc'd). */
char *engine_stats_json(struct engine *e);

/* The deadline after which readers give up on this task (ms). */
int64_t engine_task_deadline(struct engine *e, const struct task *t, const char *model);

#endif
