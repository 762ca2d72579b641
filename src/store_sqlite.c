/* The store's SQLite back end: STATE_DIR/tasks.db in WAL mode, synchronous
 * FULL, so a row is on disk before the call that wrote it returns. */
#include "store_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sqlite_be {
    sqlite3 *db;
    struct log *log;
    char *state_dir; /* for its state file */
    bool loaded;     /* only a store that loaded is stopped cleanly */
};

static int sqlite_be_fail(char *err, size_t errlen, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sqlite_be_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return e;
}

static const char sqlite_be_schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS models(name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,"
    " hist TEXT, provider TEXT, defaults TEXT, request TEXT);"
    "CREATE TABLE IF NOT EXISTS tasks("
    " model TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " state TEXT NOT NULL, adopted INTEGER NOT NULL DEFAULT 0, gave_up INTEGER NOT NULL DEFAULT 0,"
    " input TEXT, prompt TEXT, status_json TEXT, status_url TEXT, result_url TEXT, urls TEXT,"
    " files TEXT, cb_token TEXT,"
    " fail_code TEXT, fail_msg TEXT, submit_ms INTEGER NOT NULL, change_ms INTEGER NOT NULL,"
    " status_ms INTEGER NOT NULL DEFAULT 0, complete_ms INTEGER NOT NULL DEFAULT 0,"
    " last_poll_ms INTEGER NOT NULL DEFAULT 0, polls INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(model, id));"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '2');";

static int sqlite_be_exec(struct sqlite_be *b, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(b->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error(b->log, "database: %s (in: %.60s)", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

static int sqlite_be_prepare(struct sqlite_be *b, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(b->db, sql, -1, st, NULL) != SQLITE_OK) {
        log_error(b->log, "database: %s", sqlite3_errmsg(b->db));
        return -EIO;
    }
    return 0;
}

static int sqlite_be_step_done(struct sqlite_be *b, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_FULL) {
        log_error(b->log, "database write failed: the disk of state_dir is full: free space "
                          "there");
        return -ENOSPC;
    }
    if (rc != SQLITE_DONE) {
        log_error(b->log, "database write failed: %s", sqlite3_errmsg(b->db));
        return -EIO;
    }
    return 0;
}

static void sqlite_be_bind(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static const char *sqlite_be_col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static int sqlite_be_load_models(struct sqlite_be *b, const struct store_rows_cb *cb)
{
    sqlite3_stmt *st;
    int rc = sqlite_be_prepare(
        b, "SELECT name, created_ms, hist, provider, defaults, request FROM models ORDER BY rowid",
        &st);
    if (rc < 0)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_row_model r = {.name = sqlite_be_col(st, 0),
                                    .created_ms = sqlite3_column_int64(st, 1),
                                    .hist = sqlite_be_col(st, 2),
                                    .provider = sqlite_be_col(st, 3),
                                    .defaults = sqlite_be_col(st, 4),
                                    .request = sqlite_be_col(st, 5)};
        if (cb->model(cb->arg, &r) == -ENOMEM)
            break;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int sqlite_be_load(void *h, const struct store_rows_cb *cb)
{
    struct sqlite_be *b = h;
    int rc = sqlite_be_load_models(b, cb);
    sqlite3_stmt *st;
    if (rc < 0 || (rc = sqlite_be_prepare(
                       b,
                       "SELECT model, id, seq, state, adopted, gave_up, input, prompt, status_json,"
                       " status_url, urls, fail_code, fail_msg, submit_ms, change_ms, status_ms,"
                       " complete_ms, last_poll_ms, polls, files, result_url, cb_token"
                       " FROM tasks ORDER BY seq",
                       &st)) < 0)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_row_task r = {.model = sqlite_be_col(st, 0),
                                   .id = sqlite_be_col(st, 1),
                                   .seq = sqlite3_column_int64(st, 2),
                                   .state = sqlite_be_col(st, 3),
                                   .adopted = sqlite3_column_int(st, 4),
                                   .gave_up = sqlite3_column_int(st, 5),
                                   .input = sqlite_be_col(st, 6),
                                   .prompt = sqlite_be_col(st, 7),
                                   .status_json = sqlite_be_col(st, 8),
                                   .status_url = sqlite_be_col(st, 9),
                                   .urls = sqlite_be_col(st, 10),
                                   .fail_code = sqlite_be_col(st, 11),
                                   .fail_msg = sqlite_be_col(st, 12),
                                   .submit_ms = sqlite3_column_int64(st, 13),
                                   .change_ms = sqlite3_column_int64(st, 14),
                                   .status_ms = sqlite3_column_int64(st, 15),
                                   .complete_ms = sqlite3_column_int64(st, 16),
                                   .last_poll_ms = sqlite3_column_int64(st, 17),
                                   .polls = (uint32_t)sqlite3_column_int64(st, 18),
                                   .files = sqlite_be_col(st, 19),
                                   .result_url = sqlite_be_col(st, 20),
                                   .cb_token = sqlite_be_col(st, 21),
                                   .here = true,
                                   .leased = true};
        if (cb->task(cb->arg, &r) == -ENOMEM)
            break;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        log_error(b->log, "cannot load tasks: %s", sqlite3_errmsg(b->db));
        return -EIO;
    }
    b->loaded = true;
    return 0;
}

static int sqlite_be_model_put(void *h, const char *name, int64_t created_ms, const char *provider)
{
    struct sqlite_be *b = h;
    sqlite3_stmt *st;
    int rc = sqlite_be_prepare(
        b, "INSERT OR IGNORE INTO models(name, created_ms, provider) VALUES(?1, ?2, ?3)", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, created_ms);
    sqlite_be_bind(st, 3, provider);
    return sqlite_be_step_done(b, st);
}

/* One statement with text ?1 and ?2 (and ?3). */
static int sqlite_be_run3(struct sqlite_be *b, const char *sql, const char *a1, const char *a2,
                          const char *a3)
{
    sqlite3_stmt *st;
    int rc = sqlite_be_prepare(b, sql, &st);
    if (rc < 0)
        return rc;
    sqlite_be_bind(st, 1, a1);
    sqlite_be_bind(st, 2, a2);
    if (a3)
        sqlite_be_bind(st, 3, a3);
    return sqlite_be_step_done(b, st);
}

static int sqlite_be_model_del(void *h, const char *name)
{
    return sqlite_be_run3(h, "DELETE FROM models WHERE name=?1", name, NULL, NULL);
}

static int sqlite_be_model_set(void *h, const char *name, enum store_model_col col,
                               const char *text)
{
    static const char *const sql[] = {
        [STORE_COL_HIST] = "UPDATE models SET hist=?1 WHERE name=?2",
        [STORE_COL_PROVIDER] = "UPDATE models SET provider=?1 WHERE name=?2",
        [STORE_COL_DEFAULTS] = "UPDATE models SET defaults=?1 WHERE name=?2",
        [STORE_COL_REQUEST] = "UPDATE models SET request=?1 WHERE name=?2",
    };
    return sqlite_be_run3(h, sql[col], text, name, NULL);
}

static int sqlite_be_task_insert(void *h, const struct store_row_task *r, int64_t intent)
{
    (void)intent;
    struct sqlite_be *b = h;
    sqlite3_stmt *st;
    int rc = sqlite_be_prepare(b,
                               "INSERT INTO tasks(model, id, seq, state, adopted, input, prompt,"
                               " status_url, submit_ms, change_ms, status_ms, result_url, cb_token)"
                               " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9, ?10, ?11)",
                               &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, r->seq);
    sqlite3_bind_text(st, 4, r->state, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, r->adopted);
    sqlite_be_bind(st, 6, r->input);
    sqlite_be_bind(st, 7, r->prompt);
    sqlite_be_bind(st, 8, r->status_url);
    sqlite3_bind_int64(st, 9, r->submit_ms);
    sqlite_be_bind(st, 10, r->result_url);
    sqlite_be_bind(st, 11, r->cb_token);
    return sqlite_be_step_done(b, st);
}

static int sqlite_be_task_update(void *h, const struct store_row_task *r)
{
    struct sqlite_be *b = h;
    sqlite3_stmt *st;
    int rc =
        sqlite_be_prepare(b,
                          "UPDATE tasks SET state=?1, gave_up=?2, status_json=?3, urls=?4,"
                          " fail_code=?5, fail_msg=?6, change_ms=?7, status_ms=?8, complete_ms=?9,"
                          " last_poll_ms=?10, polls=?11 WHERE model=?12 AND id=?13",
                          &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, r->state, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, r->gave_up);
    sqlite_be_bind(st, 3, r->status_json);
    sqlite_be_bind(st, 4, r->urls);
    sqlite_be_bind(st, 5, r->fail_code);
    sqlite_be_bind(st, 6, r->fail_msg);
    sqlite3_bind_int64(st, 7, r->change_ms);
    sqlite3_bind_int64(st, 8, r->status_ms);
    sqlite3_bind_int64(st, 9, r->complete_ms);
    sqlite3_bind_int64(st, 10, r->last_poll_ms);
    sqlite3_bind_int64(st, 11, r->polls);
    sqlite3_bind_text(st, 12, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, r->id, -1, SQLITE_STATIC);
    return sqlite_be_step_done(b, st);
}

static int sqlite_be_task_files(void *h, const char *model, const char *id, const char *files)
{
    return sqlite_be_run3(h, "UPDATE tasks SET files=?1 WHERE model=?2 AND id=?3", files, model,
                          id);
}

static int sqlite_be_task_del(void *h, const char *model, const char *id)
{
    return sqlite_be_run3(h, "DELETE FROM tasks WHERE model=?1 AND id=?2", model, id, NULL);
}

static int sqlite_be_polls_flush(void *h, const struct store_poll_row *rows, size_t n)
{
    struct sqlite_be *b = h;
    int rc = sqlite_be_exec(b, "BEGIN");
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    if ((rc = sqlite_be_prepare(
             b, "UPDATE tasks SET last_poll_ms=?1, polls=?2 WHERE model=?3 AND id=?4", &st)) < 0) {
        sqlite_be_exec(b, "ROLLBACK");
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, rows[i].last_poll_ms);
        sqlite3_bind_int64(st, 2, rows[i].polls);
        sqlite3_bind_text(st, 3, rows[i].model, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, rows[i].id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = -EIO;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    int crc = sqlite_be_exec(b, "COMMIT");
    return rc < 0 ? rc : crc;
}

/* Schema 2 (genfs 0.2): per-model input defaults and request fields. */
static int sqlite_be_migrate(struct sqlite_be *b, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    bool has_defaults = false;
    if (sqlite_be_prepare(b, "PRAGMA table_info(models)", &st) < 0)
        return sqlite_be_fail(err, errlen, -EIO, "database %s: cannot read its schema", path);
    while (sqlite3_step(st) == SQLITE_ROW)
        has_defaults = has_defaults || strcmp(sqlite_be_col(st, 1), "defaults") == 0;
    sqlite3_finalize(st);
    if (!has_defaults &&
        sqlite_be_exec(b, "BEGIN; ALTER TABLE models ADD COLUMN defaults TEXT;"
                          " ALTER TABLE models ADD COLUMN request TEXT;"
                          " UPDATE meta SET value='2' WHERE key='schema'; COMMIT;") < 0)
        return sqlite_be_fail(
            err, errlen, -EIO,
            "database %s: cannot add the columns of schema 2 (see the log); it is left "
            "as it was",
            path);
    return sqlite_be_exec(b, "UPDATE meta SET value='2' WHERE key='schema' AND value='1';") < 0
               ? sqlite_be_fail(err, errlen, -EIO, "database %s: cannot record its schema version",
                                path)
               : 0;
}

/* STATE_DIR/state says whether genfs used this directory before and how it
 * stopped: "running" while a genfs has it, "clean" after a clean stop. A
 * database that went missing or empty, or lost its write-ahead log in a
 * crash, is then told apart from a first start. */
static int sqlite_be_state_mark(const char *dir, const char *word)
{
    char path[4096], tmp[4100];
    snprintf(path, sizeof(path), "%s/state", dir);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    char line[32];
    int n = snprintf(line, sizeof(line), "%s\n", word);
    int rc = write(fd, line, (size_t)n) == n && fsync(fd) == 0 ? 0 : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    return rc;
}

/* What the state file says: "running", "clean", or "" when there is none. */
static void sqlite_be_state_read(const char *dir, char *word, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/state", dir);
    word[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (!fgets(word, (int)len, f))
        word[0] = '\0';
    word[strcspn(word, "\n")] = '\0';
    fclose(f);
}

/* Refuses a database that genfs used before and that is now missing, empty,
 * or without its write-ahead log after an unclean stop; with fresh, moves
 * what is left of it aside instead. */
static int sqlite_be_check_files(const char *dir, const char *db, bool fresh, struct log *lg,
                                 char *err, size_t errlen)
{
    char word[32], wal[4110];
    sqlite_be_state_read(dir, word, sizeof(word));
    snprintf(wal, sizeof(wal), "%s-wal", db);
    struct stat st;
    bool have_db = stat(db, &st) == 0, empty = have_db && st.st_size == 0;
    bool have_wal = stat(wal, &st) == 0;
    const char *wrong = NULL;
    if (!word[0])
        return 0; /* never used by a genfs that recorded its state: a first start */
    if (!have_db)
        wrong = "is missing";
    else if (empty)
        wrong = "is empty (0 bytes)";
    else if (strcmp(word, "running") == 0 && !have_wal)
        wrong = "lost its write-ahead log (tasks.db-wal) after genfs stopped uncleanly, and with "
                "it the last changes";
    if (!wrong)
        return 0;
    if (!fresh)
        return sqlite_be_fail(
            err, errlen, -EIO,
            "database %s, which genfs used before, %s: restore it (and tasks.db-wal) "
            "from a backup, or mount with -o fresh to start with no tasks (what is left "
            "is moved aside; tasks at the provider can be adopted with mkdir MODEL/ID)",
            db, wrong);
    char aside[4200];
    snprintf(aside, sizeof(aside), "%s.broken-%lld", db, (long long)time(NULL));
    if (have_db && rename(db, aside) != 0)
        return sqlite_be_fail(err, errlen, -errno, "-o fresh: cannot move %s aside: %s", db,
                              strerror(errno));
    log_warn(lg, "-o fresh: database %s %s; starting with no tasks%s%s", db, wrong,
             have_db ? ", the old one is " : "", have_db ? aside : "");
    return 0;
}

static int sqlite_be_quick_check(struct sqlite_be *b, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(b->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK)
        return 0;
    int src = sqlite3_step(st);
    bool ok = src == SQLITE_ROW && strcmp(sqlite_be_col(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    if (!ok)
        return sqlite_be_fail(
            err, errlen, -EIO,
            "database %s is corrupt: move it aside to start afresh, or restore a backup", path);
    return 0;
}

static void sqlite_be_close(void *h)
{
    struct sqlite_be *b = h;
    if (!b)
        return;
    /* The last connection's close checkpoints the log and removes it. */
    if (b->db && sqlite3_close(b->db) == SQLITE_OK && b->loaded)
        sqlite_be_state_mark(b->state_dir, "clean");
    free(b->state_dir);
    free(b);
}

static const struct store_backend_ops sqlite_be_ops = {
    .load = sqlite_be_load,
    .model_put = sqlite_be_model_put,
    .model_del = sqlite_be_model_del,
    .model_set = sqlite_be_model_set,
    .task_insert = sqlite_be_task_insert,
    .task_update = sqlite_be_task_update,
    .task_files = sqlite_be_task_files,
    .task_del = sqlite_be_task_del,
    .polls_flush = sqlite_be_polls_flush,
    .close = sqlite_be_close,
};

static int sqlite_be_open_db(struct sqlite_be *b, const char *path, char *err, size_t errlen)
{
    mode_t old = umask(077);
    int orc = sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    umask(old);
    if (orc != SQLITE_OK)
        return sqlite_be_fail(err, errlen, -EIO, "cannot open database %s: %s", path,
                              b->db ? sqlite3_errmsg(b->db) : "out of memory");
    sqlite3_busy_timeout(b->db, 2000);
    char *msg = NULL;
    if (sqlite3_exec(b->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA quick_check;",
                     NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(b->db, sqlite_be_schema, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = sqlite_be_fail(
            err, errlen, -EIO,
            "database %s is unusable (%s): move it aside to start afresh, or restore a backup",
            path, msg ? msg : sqlite3_errmsg(b->db));
        sqlite3_free(msg);
        return rc;
    }
    int rc = sqlite_be_migrate(b, path, err, errlen);
    return rc < 0 ? rc : sqlite_be_quick_check(b, path, err, errlen);
}

int store_sqlite_open(const char *state_dir, bool fresh, struct log *lg, struct store_backend *out,
                      char *err, size_t errlen)
{
    struct sqlite_be *b = calloc(1, sizeof(*b));
    if (!b)
        return sqlite_be_fail(err, errlen, -ENOMEM, "out of memory");
    b->log = lg;
    char path[4096];
    snprintf(path, sizeof(path), "%s/tasks.db", state_dir);
    int rc = sqlite_be_check_files(state_dir, path, fresh, lg, err, errlen);
    if (rc == 0)
        rc = sqlite_be_open_db(b, path, err, errlen);
    if (rc == 0 && (rc = sqlite_be_state_mark(state_dir, "running")) < 0)
        sqlite_be_fail(err, errlen, rc, "cannot write %s/state: %s", state_dir, strerror(-rc));
    if (rc == 0 && !(b->state_dir = strdup(state_dir)))
        rc = sqlite_be_fail(err, errlen, -ENOMEM, "out of memory");
    if (rc < 0) {
        sqlite_be_close(b);
        return rc;
    }
    out->ops = &sqlite_be_ops;
    out->h = b;
    return 0;
}
