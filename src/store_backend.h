/* The store's persistence behind one interface: SQLite (store_sqlite.c, the
 * embedded default) and PostgreSQL (store_pg.c, team mounts). Rows are text
 * and numbers; store.c turns them into its in-memory tables. */
#ifndef GENFS_STORE_BACKEND_H
#define GENFS_STORE_BACKEND_H

#include "log.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A team mount's lease as this mount counts it: shorter than the database's
 * (10 s) by the renewal period, so it stops polling before another may start. */
#define STORE_LEASE_MS 7000

struct store_row_model {
    const char *name;
    int64_t created_ms;
    const char *hist, *provider, *defaults, *request;
};

struct store_row_task {
    const char *model, *id;
    int64_t seq;
    const char *state;
    bool adopted, gave_up;
    const char *input, *prompt, *status_json, *status_url, *urls, *fail_code, *fail_msg;
    int64_t submit_ms, change_ms, status_ms, complete_ms, last_poll_ms;
    uint32_t polls;
    const char *files, *result_url, *cb_token;
    bool here;   /* submitted from this mount (its `latest` may point at it) */
    bool leased; /* this mount holds the task's lease (SQLite: always) */
};

enum store_model_col { STORE_COL_HIST, STORE_COL_PROVIDER, STORE_COL_DEFAULTS, STORE_COL_REQUEST };

/* One task's poll bookkeeping, persisted lazily. */
struct store_poll_row {
    const char *model, *id;
    int64_t last_poll_ms;
    uint32_t polls;
};

/* What a back end hands store.c while loading, and (team mounts) when another
 * mount changed a row: each returns 0 or a negative errno. */
struct store_rows_cb {
    void *arg;
    int (*model)(void *arg, const struct store_row_model *r);
    int (*task)(void *arg, const struct store_row_task *r);
    void (*task_gone)(void *arg, const char *model, const char *id);
    void (*model_gone)(void *arg, const char *name);
    /* The task's lease was renewed for (mine) or taken from this mount. */
    void (*lease)(void *arg, const char *model, const char *id, bool mine);
};

struct store_backend_ops {
    int (*load)(void *h, const struct store_rows_cb *cb);
    int (*model_put)(void *h, const char *name, int64_t created_ms, const char *provider);
    int (*model_del)(void *h, const char *name);
    int (*model_set)(void *h, const char *name, enum store_model_col col, const char *text);
    int (*task_insert)(void *h, const struct store_row_task *r, int64_t intent);
    /* The columns a status answer or a deadline changes. */
    int (*task_update)(void *h, const struct store_row_task *r);
    int (*task_files)(void *h, const char *model, const char *id, const char *files);
    int (*task_del)(void *h, const char *model, const char *id);
    int (*polls_flush)(void *h, const struct store_poll_row *rows, size_t n);
    void (*close)(void *h);
    /* Team mounts only (NULL for SQLite): */
    int (*wait_fd)(void *h);
    /* Reads other mounts' changes, renews and takes leases, reconnects. */
    int (*sync)(void *h, const struct store_rows_cb *cb, int64_t now_ms);
    /* A submission about to be sent is recorded first: *intent names it. */
    int (*intent_add)(void *h, const char *model, const char *input, int64_t *intent);
    void (*intent_drop)(void *h, int64_t intent);
    void (*rate_report)(void *h, double weight, bool throttled, int64_t retry_after_ms);
    void (*rate_read)(void *h, struct store_rate_share *out);
};

struct store_backend {
    const struct store_backend_ops *ops;
    void *h;
};

/* store_sqlite.c: STATE_DIR/tasks.db, refused when genfs used it before and
 * it went missing, empty or lost its log (unless fresh: moved aside). */
int store_sqlite_open(const char *state_dir, bool fresh, struct log *lg, struct store_backend *out,
                      char *err, size_t errlen);
/* store_pg.c: a libpq connection string (postgresql://... or key=value). */
int store_pg_open(const char *conninfo, const char *state_dir, struct log *lg,
                  struct store_backend *out, char *err, size_t errlen);

#endif
