/* The one source of truth: models and tasks in memory, mirrored in SQLite
 * (WAL) so nothing the provider accepted is lost, or in PostgreSQL shared by
 * a team's mounts (store_backend.h). Readers take the read lock; only the
 * engine thread mutates, then observers hear of the change. */
#ifndef GENFS_STORE_H
#define GENFS_STORE_H

#include "log.h"
#include "provider.h"
#include "sched.h"
#include "task.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_NONE UINT32_MAX

enum file_state {
    FILE_PENDING,     /* not on disk: to be downloaded */
    FILE_DOWNLOADING, /* a transfer is writing it */
    FILE_DONE,        /* whole, in the cache */
    FILE_FAILED,      /* retries used up: readers get EIO */
    FILE_EXPIRED,     /* the URL answered 403/404/410: readers get ENOENT */
    FILE_NOSPACE,     /* the cache's disk was full: readers get ENOSPC, a read tries again */
};

/* One downloaded result, files/<name>, for the URL of the same index. */
struct task_file {
    char name[32];
    int64_t size; /* -1 while unknown */
    enum file_state state;
    int64_t atime_ms; /* last opened: for least-recently-used eviction (atomic) */
};

struct task {
    uint32_t idx; /* stable for the life of the daemon: inode numbers derive from it */
    uint32_t model_idx;
    char *id;
    enum task_state state;
    bool adopted; /* mkdir'ed, not submitted from this mount */
    bool gave_up; /* past the schedule's deadline: readers get ETIMEDOUT */
    char *input_json;
    char *prompt;
    char *status_json; /* last status object as received, or NULL */
    char *status_url;
    char *result_url;
    char *cb_token; /* callback mode: the secret in this task's callback URL */
    char **urls;    /* http(s) URLs to fetch, data: URIs to decode */
    char **names;   /* n_urls names the provider gave its outputs (each may be NULL), or NULL */
    size_t n_urls;
    struct task_file *files; /* n_urls of them once the task succeeded */
    char *fail_code;
    char *fail_msg;
    int64_t submit_ms;   /* provider accepted it (or adoption time) */
    int64_t change_ms;   /* genfs saw the last state change */
    int64_t status_ms;   /* status.json last changed */
    int64_t complete_ms; /* provider's completeTime, 0 if unknown */
    int64_t last_poll_ms;
    uint32_t polls;
    uint64_t version; /* bumps on every visible change */
    uint32_t hash_next;
    /* From the last status answer, in memory only (MODEL/ID/progress, logs, ctl): */
    int progress;       /* 0..100, -1 unknown */
    int queue_position; /* the provider's queue, 0: next; -1 unknown */
    char *logs;         /* the provider's logs, or NULL */
    char *cancel_url;   /* a cancel URL the provider gave, or NULL */
    unsigned shown;     /* STORE_SHOWN_* that the last change moved */
};

/* What a change of a task moved, for the files that show it (struct task shown). */
#define STORE_SHOWN_PROGRESS 1u /* progress, queue position or state */
#define STORE_SHOWN_LOGS 2u

/* A model, or a namespace: a directory that only holds models, for model ids
 * with slashes ("fal-ai/flux/dev" makes namespaces "fal-ai", "fal-ai/flux"). */
struct model {
    uint32_t idx;
    char *name;       /* the whole id */
    const char *leaf; /* its last segment, inside name */
    uint32_t parent;  /* namespace index, or STORE_NONE at the root */
    bool ns;          /* a namespace: derived from the models below it, not stored */
    uint32_t n_children;
    uint32_t latest; /* newest task submitted from this mount, or STORE_NONE */
    char *hist;      /* the learned schedule's durations (sched_hist text), or NULL */
    char *provider;  /* the provider it belongs to, or NULL: the mount's own */
    char *defaults;  /* JSON object merged under every input (defaults.json), or NULL */
    char *request;   /* JSON object of top-level request fields (request.json), or NULL */
    uint32_t n_tasks;
    int64_t mtime_ms;
};

enum store_change_kind {
    STORE_TASK_ADDED,
    STORE_TASK_STATE,   /* state moved (and maybe result/error) */
    STORE_TASK_STATUS,  /* status.json changed, state did not */
    STORE_TASK_GAVE_UP, /* deadline passed: readers get ETIMEDOUT */
    STORE_TASK_REMOVED,
    STORE_FILE_CHANGED, /* files[file_n] changed state, name or size */
    STORE_MODEL_ADDED,
    STORE_MODEL_REMOVED,
};

struct store_change {
    enum store_change_kind kind;
    uint32_t task_idx; /* STORE_NONE for model changes */
    uint32_t model_idx;
    uint32_t file_n;
    enum task_state old_state, new_state;
    const char *task_id; /* valid during the callback only */
    const char *model_name;
    int64_t at_ms;
    bool remote;             /* another mount of the same database made it (team mounts) */
    const struct task *gone; /* STORE_TASK_REMOVED: the task, valid during the callback */
};

typedef void (*store_observer_fn)(void *arg, const struct store_change *c);

struct store;

/* Creates state_dir (0700), takes an exclusive lock on it, opens or creates
 * the database and loads everything. A database genfs used before that is
 * missing, empty or lost its log in a crash is refused, unless fresh (then
 * moved aside). Errors: negative errno and one line in err. */
int store_open(const char *state_dir, bool fresh, struct log *lg, struct store **out, char *err,
               size_t errlen);
/* The same with the tasks in the database at url (a libpq connection string:
 * a team mount) instead of STATE_DIR/tasks.db when url is not NULL. */
int store_open_at(const char *state_dir, const char *url, bool fresh, struct log *lg,
                  struct store **out, char *err, size_t errlen);
void store_close(struct store *s);
/* Record this process's pid in the state_dir lock (after daemonizing). */
void store_write_pid(struct store *s);
int store_observe(struct store *s, store_observer_fn fn, void *arg);

void store_rdlock(struct store *s);
void store_unlock(struct store *s);
/* Under the read lock (or on the engine thread): */
uint32_t store_task_slots(struct store *s);
const struct task *store_task_at(struct store *s, uint32_t idx); /* NULL if removed */
const struct task *store_task_find(struct store *s, uint32_t model_idx, const char *id);
uint32_t store_model_slots(struct store *s);
const struct model *store_model_at(struct store *s, uint32_t idx);
const struct model *store_model_find(struct store *s, const char *name);
/* The model or namespace named leaf under parent (STORE_NONE: the root). */
const struct model *store_model_child(struct store *s, uint32_t parent, const char *leaf);

/* Engine thread only. Each returns 0 or a negative errno. */
/* Adds a model (and the namespaces above it). -EEXIST when the name is
 * taken, -ENOTDIR when a prefix of it is a model. */
int store_model_add(struct store *s, const char *name, const char *provider, uint32_t *idx);
/* A model's provider changed (the config says so now). */
int store_model_set_provider(struct store *s, uint32_t idx, const char *provider);
/* -ENOTEMPTY while it has tasks (a model) or models (a namespace). */
int store_model_remove(struct store *s, uint32_t idx);
/* Persist the learned schedule's state of a model (engine thread). */
int store_model_set_hist(struct store *s, uint32_t idx, const char *text);
/* A model's defaults.json / request.json (JSON object text, NULL: none), durably. */
int store_model_set_defaults(struct store *s, uint32_t idx, const char *json);
int store_model_set_request(struct store *s, uint32_t idx, const char *json);

struct task_new {
    uint32_t model_idx;
    const char *id;
    const char *input_json; /* may be NULL (adopted) */
    const char *prompt;
    const char *status_url;
    const char *result_url;
    const char *cb_token;
    bool adopted;
    int64_t submit_ms;
    int64_t intent; /* store_submit_intent's, or 0 */
};
/* Committed to disk before it returns 0. */
int store_task_insert(struct store *s, const struct task_new *tn, uint32_t *idx);
/* Apply a parsed status answer; raises STATE or STATUS observers as fits. */
int store_task_apply_status(struct store *s, uint32_t idx, const struct provider_status *st,
                            int64_t now_ms);
/* Bookkeeping of one poll sent: persisted lazily (see store_flush). */
void store_task_note_poll(struct store *s, uint32_t idx, int64_t now_ms);
int store_task_set_gave_up(struct store *s, uint32_t idx, bool gave_up);
int store_task_remove(struct store *s, uint32_t idx);
/* Engine thread: a result file's new state (name NULL keeps the name, size
 * < -1 keeps the size). A file that became DONE is persisted. */
int store_file_set(struct store *s, uint32_t idx, uint32_t n, enum file_state st, const char *name,
                   int64_t size);
/* The file name of output n: its given name or its index, with the extension
 * the Content-Type (may be NULL) or the URL says. */
void store_file_name(const struct task *t, uint32_t n, const char *content_type, char *out,
                     size_t outlen);
/* Persist pending poll bookkeeping in one transaction. */
int store_flush(struct store *s);

/* Counts of live tasks by state. */
void store_count_states(struct store *s, uint32_t counts[TASK_STATE_COUNT]);

/* Team mounts (-o store=postgresql://...): every mount of one database shares
 * its tasks. With SQLite these do nothing (a task is always this mount's). */
bool store_is_team(struct store *s);
/* A descriptor that becomes readable when another mount changed something, or -1. */
int store_wait_fd(struct store *s);
/* Engine thread: reads other mounts' changes (their observers are told here,
 * with remote set), renews and takes leases, reconnects after an outage. */
void store_sync(struct store *s, int64_t now_ms);
/* This mount holds the task's lease: it alone polls it. */
bool store_task_leased(struct store *s, uint32_t idx, int64_t now_ms);
uint32_t store_leased_pending(struct store *s, int64_t now_ms);
/* A submission is recorded before it is sent (-EIO: the database cannot take
 * it, so it is not sent); task_new.intent closes it, store_submit_drop
 * forgets one that was not taken. */
int store_submit_intent(struct store *s, uint32_t model_idx, const char *input, int64_t *intent);
void store_submit_drop(struct store *s, int64_t intent);

/* The account's rate as the team shares it. */
struct store_rate_share {
    double fraction;        /* of the configured rate this mount may use now */
    uint64_t throttle_seq;  /* bumps on every 429 any mount reports */
    int64_t retry_after_ms; /* left of the last Retry-After reported, or 0 */
};
/* Tells this mount's weight (its demand) and a 429 it saw; returns the share. */
void store_team_rate(struct store *s, double weight, bool throttled, int64_t retry_after_ms,
                     struct store_rate_share *out);

#endif
