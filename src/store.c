#include "store.h"

#include "clock.h"
#include "media.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_OBSERVERS 4

struct observer {
    store_observer_fn fn;
    void *arg;
};

struct store {
    pthread_rwlock_t lock;
    struct log *log;
    char *state_dir; /* for its state file */
    sqlite3 *db;
    int lock_fd;
    struct task **tasks;
    uint32_t n_tasks, cap_tasks;
    struct model **models;
    uint32_t n_models, cap_models;
    uint32_t *buckets; /* task hash heads */
    uint32_t n_buckets;
    uint32_t live_tasks;
    int64_t seq;
    bool *dirty; /* poll bookkeeping not yet on disk, by task idx */
    bool any_dirty;
    struct observer observers[MAX_OBSERVERS];
    int n_observers;
};

static int store_fail(char *err, size_t errlen, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int store_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return e;
}

static uint32_t hash_key(uint32_t model_idx, const char *id)
{
    uint32_t h = 2166136261u ^ model_idx;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static void hash_insert(struct store *s, struct task *t)
{
    uint32_t b = hash_key(t->model_idx, t->id) & (s->n_buckets - 1);
    t->hash_next = s->buckets[b];
    s->buckets[b] = t->idx;
}

static void hash_unlink(struct store *s, struct task *t)
{
    uint32_t b = hash_key(t->model_idx, t->id) & (s->n_buckets - 1);
    uint32_t *link = &s->buckets[b];
    while (*link != STORE_NONE) {
        if (*link == t->idx) {
            *link = t->hash_next;
            return;
        }
        link = &s->tasks[*link]->hash_next;
    }
}

static int hash_grow(struct store *s)
{
    uint32_t nb = s->n_buckets ? s->n_buckets * 2 : 1024;
    uint32_t *b = malloc(nb * sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (uint32_t i = 0; i < nb; i++)
        b[i] = STORE_NONE;
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = nb;
    for (uint32_t i = 0; i < s->n_tasks; i++)
        if (s->tasks[i])
            hash_insert(s, s->tasks[i]);
    return 0;
}

static void store_publish(struct store *s, const struct store_change *c)
{
    for (int i = 0; i < s->n_observers; i++)
        s->observers[i].fn(s->observers[i].arg, c);
}

static void task_free(struct task *t)
{
    if (!t)
        return;
    free(t->id);
    free(t->input_json);
    free(t->prompt);
    free(t->status_json);
    free(t->status_url);
    free(t->result_url);
    free(t->cb_token);
    free(t->logs);
    free(t->cancel_url);
    for (size_t i = 0; i < t->n_urls; i++) {
        free(t->urls[i]);
        free(t->names ? t->names[i] : NULL);
    }
    free(t->urls);
    free(t->names);
    free(t->files);
    free(t->fail_code);
    free(t->fail_msg);
    free(t);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- SQLite ---- */

static const char schema_sql[] =
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

static int db_exec(struct store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error(s->log, "database: %s (in: %.60s)", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

static int db_prepare(struct store *s, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        log_error(s->log, "database: %s", sqlite3_errmsg(s->db));
        return -EIO;
    }
    return 0;
}

static int db_step_done(struct store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_FULL) {
        log_error(s->log, "database write failed: the disk of state_dir is full: free space "
                          "there");
        return -ENOSPC;
    }
    if (rc != SQLITE_DONE) {
        log_error(s->log, "database write failed: %s", sqlite3_errmsg(s->db));
        return -EIO;
    }
    return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* A named output is {"url", "name"}, an unnamed one its URL alone. */
static char *urls_to_json(const struct task *t)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < t->n_urls; i++) {
        if (t->names && t->names[i]) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "url", t->urls[i]);
            cJSON_AddStringToObject(o, "name", t->names[i]);
            cJSON_AddItemToArray(a, o);
        } else {
            cJSON_AddItemToArray(a, cJSON_CreateString(t->urls[i]));
        }
    }
    char *out = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return out;
}

static void urls_from_json(struct task *t, const char *text)
{
    cJSON *a = text ? cJSON_Parse(text) : NULL;
    int n = cJSON_GetArraySize(a);
    if (n > 0) {
        t->urls = calloc((size_t)n, sizeof(char *));
        t->names = calloc((size_t)n, sizeof(char *));
        const cJSON *it;
        cJSON_ArrayForEach(it, a)
        {
            const cJSON *url =
                cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "url") : it;
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
            if (!cJSON_IsString(url) || !t->urls || !t->names)
                continue;
            t->names[t->n_urls] = cJSON_IsString(name) ? strdup(name->valuestring) : NULL;
            t->urls[t->n_urls++] = strdup(url->valuestring);
        }
    }
    cJSON_Delete(a);
}

void store_file_name(const struct task *t, uint32_t n, const char *content_type, char *out,
                     size_t outlen)
{
    const char *stem = t->names && n < t->n_urls ? t->names[n] : NULL;
    media_file_name(n, stem, t->urls[n], content_type, out, outlen);
    /* Two outputs must not share a file: a repeated name falls back to the index. */
    for (uint32_t i = 0; stem && t->files && i < n; i++)
        if (strcmp(t->files[i].name, out) == 0)
            media_file_name(n, NULL, t->urls[n], content_type, out, outlen);
}

/* File entries for the task's URLs, named from the URL until a download
 * says better; saved names and sizes (of whole files) come from the row. */
static int files_init(struct task *t, const char *saved)
{
    if (t->n_urls == 0)
        return 0;
    t->files = calloc(t->n_urls, sizeof(*t->files));
    if (!t->files)
        return -ENOMEM;
    for (size_t i = 0; i < t->n_urls; i++) {
        store_file_name(t, (uint32_t)i, NULL, t->files[i].name, sizeof(t->files[i].name));
        t->files[i].size = -1;
        t->files[i].state = FILE_PENDING;
    }
    cJSON *a = saved ? cJSON_Parse(saved) : NULL;
    const cJSON *it;
    size_t i = 0;
    cJSON_ArrayForEach(it, a)
    {
        if (i >= t->n_urls)
            break;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(it, "size");
        if (cJSON_IsString(name) && strlen(name->valuestring) < sizeof(t->files[i].name) &&
            !strchr(name->valuestring, '/'))
            snprintf(t->files[i].name, sizeof(t->files[i].name), "%s", name->valuestring);
        if (cJSON_IsNumber(size))
            t->files[i].size = (int64_t)size->valuedouble;
        i++;
    }
    cJSON_Delete(a);
    return 0;
}

static char *files_to_json(const struct task *t)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < t->n_urls; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->files[i].name);
        if (t->files[i].state == FILE_DONE)
            cJSON_AddNumberToObject(o, "size", (double)t->files[i].size);
        cJSON_AddItemToArray(a, o);
    }
    char *out = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return out;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static int task_write(struct store *s, const struct task *t)
{
    sqlite3_stmt *st;
    int rc = db_prepare(s,
                        "UPDATE tasks SET state=?1, gave_up=?2, status_json=?3, urls=?4,"
                        " fail_code=?5, fail_msg=?6, change_ms=?7, status_ms=?8, complete_ms=?9,"
                        " last_poll_ms=?10, polls=?11 WHERE model=?12 AND id=?13",
                        &st);
    if (rc < 0)
        return rc;
    char *urls = urls_to_json(t);
    sqlite3_bind_text(st, 1, task_state_name(t->state), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, t->gave_up);
    bind_text(st, 3, t->status_json);
    bind_text(st, 4, urls);
    bind_text(st, 5, t->fail_code);
    bind_text(st, 6, t->fail_msg);
    sqlite3_bind_int64(st, 7, t->change_ms);
    sqlite3_bind_int64(st, 8, t->status_ms);
    sqlite3_bind_int64(st, 9, t->complete_ms);
    sqlite3_bind_int64(st, 10, t->last_poll_ms);
    sqlite3_bind_int64(st, 11, t->polls);
    sqlite3_bind_text(st, 12, s->models[t->model_idx]->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, t->id, -1, SQLITE_STATIC);
    rc = db_step_done(s, st);
    free(urls);
    return rc;
}

/* ---- in-memory tables ---- */

static int model_append(struct store *s, const char *name, int64_t mtime, bool ns, uint32_t *idx)
{
    if (s->n_models == s->cap_models) {
        uint32_t cap = s->cap_models ? s->cap_models * 2 : 16;
        struct model **m = realloc(s->models, cap * sizeof(*m));
        if (!m)
            return -ENOMEM;
        s->models = m;
        s->cap_models = cap;
    }
    struct model *m = calloc(1, sizeof(*m));
    if (!m || !(m->name = strdup(name))) {
        free(m);
        return -ENOMEM;
    }
    m->idx = s->n_models;
    m->latest = STORE_NONE;
    m->mtime_ms = mtime;
    m->ns = ns;
    const char *slash = strrchr(m->name, '/');
    m->leaf = slash ? slash + 1 : m->name;
    m->parent = STORE_NONE;
    if (slash) {
        char *prefix = strndup(m->name, (size_t)(slash - m->name));
        const struct model *p = prefix ? store_model_find(s, prefix) : NULL;
        free(prefix);
        if (p) {
            m->parent = p->idx;
            s->models[p->idx]->n_children++;
        }
    }
    s->models[s->n_models++] = m;
    *idx = m->idx;
    return 0;
}

/* The namespaces above name, made as needed; -ENOTDIR if one is a model. */
static int model_prefixes(struct store *s, const char *name, int64_t mtime)
{
    for (const char *p = strchr(name, '/'); p; p = strchr(p + 1, '/')) {
        char *prefix = strndup(name, (size_t)(p - name));
        if (!prefix)
            return -ENOMEM;
        const struct model *m = store_model_find(s, prefix);
        int rc = 0;
        uint32_t idx;
        if (m && !m->ns)
            rc = -ENOTDIR;
        else if (!m)
            rc = model_append(s, prefix, mtime, true, &idx);
        free(prefix);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int model_load(struct store *s, const char *name, int64_t mtime, uint32_t *idx)
{
    const struct model *m = store_model_find(s, name);
    if (m && !m->ns) {
        *idx = m->idx;
        return 0;
    }
    if (m || model_prefixes(s, name, mtime) < 0) {
        log_warn(s->log, "model %s clashes with another model's directories: not shown", name);
        return -ENOTDIR;
    }
    return model_append(s, name, mtime, false, idx);
}

static int task_append(struct store *s, struct task *t)
{
    if (s->n_tasks == s->cap_tasks) {
        uint32_t cap = s->cap_tasks ? s->cap_tasks * 2 : 1024;
        struct task **a = realloc(s->tasks, cap * sizeof(*a));
        bool *d = realloc(s->dirty, cap * sizeof(*d));
        if (a)
            s->tasks = a;
        if (d)
            s->dirty = d;
        if (!a || !d)
            return -ENOMEM;
        memset(s->dirty + s->cap_tasks, 0, (cap - s->cap_tasks) * sizeof(*d));
        s->cap_tasks = cap;
    }
    if (s->live_tasks + 1 > s->n_buckets && hash_grow(s) < 0)
        return -ENOMEM;
    t->idx = s->n_tasks;
    t->progress = t->queue_position = -1; /* unknown until a status answer says */
    s->tasks[s->n_tasks++] = t;
    s->live_tasks++;
    hash_insert(s, t);
    struct model *m = s->models[t->model_idx];
    m->n_tasks++;
    if (!t->adopted)
        m->latest = t->idx;
    return 0;
}

static int load_all(struct store *s)
{
    sqlite3_stmt *st;
    int rc =
        db_prepare(s,
                   "SELECT name, created_ms, hist, provider, defaults, request FROM models ORDER "
                   "BY rowid",
                   &st);
    if (rc < 0)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint32_t idx;
        int lrc = model_load(s, col_text(st, 0), sqlite3_column_int64(st, 1), &idx);
        if (lrc == -ENOMEM)
            break;
        if (lrc == 0 && col_text(st, 2))
            s->models[idx]->hist = strdup(col_text(st, 2));
        if (lrc == 0 && col_text(st, 3))
            s->models[idx]->provider = strdup(col_text(st, 3));
        if (lrc == 0 && col_text(st, 4))
            s->models[idx]->defaults = strdup(col_text(st, 4));
        if (lrc == 0 && col_text(st, 5))
            s->models[idx]->request = strdup(col_text(st, 5));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -EIO;

    rc = db_prepare(s,
                    "SELECT model, id, seq, state, adopted, gave_up, input, prompt, status_json,"
                    " status_url, urls, fail_code, fail_msg, submit_ms, change_ms, status_ms,"
                    " complete_ms, last_poll_ms, polls, files, result_url, cb_token"
                    " FROM tasks ORDER BY seq",
                    &st);
    if (rc < 0)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint32_t midx;
        if (model_load(s, col_text(st, 0), 0, &midx) < 0)
            continue;
        struct task *t = calloc(1, sizeof(*t));
        if (!t)
            break;
        t->model_idx = midx;
        t->id = strdup(col_text(st, 1));
        int64_t seq = sqlite3_column_int64(st, 2);
        if (seq > s->seq)
            s->seq = seq;
        if (task_state_parse(col_text(st, 3), &t->state) < 0)
            t->state = TASK_WAITING;
        t->adopted = sqlite3_column_int(st, 4);
        t->gave_up = sqlite3_column_int(st, 5);
        t->input_json = dup_or_null(col_text(st, 6));
        t->prompt = dup_or_null(col_text(st, 7));
        t->status_json = dup_or_null(col_text(st, 8));
        t->status_url = dup_or_null(col_text(st, 9));
        urls_from_json(t, col_text(st, 10));
        t->fail_code = dup_or_null(col_text(st, 11));
        t->fail_msg = dup_or_null(col_text(st, 12));
        t->submit_ms = sqlite3_column_int64(st, 13);
        t->change_ms = sqlite3_column_int64(st, 14);
        t->status_ms = sqlite3_column_int64(st, 15);
        t->complete_ms = sqlite3_column_int64(st, 16);
        t->last_poll_ms = sqlite3_column_int64(st, 17);
        t->polls = (uint32_t)sqlite3_column_int64(st, 18);
        if (t->state == TASK_SUCCESS)
            files_init(t, col_text(st, 19));
        t->result_url = dup_or_null(col_text(st, 20));
        t->cb_token = dup_or_null(col_text(st, 21));
        t->version = 1;
        if (task_append(s, t) < 0) {
            task_free(t);
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int take_dir_lock(struct store *s, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/lock", dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0)
        return store_fail(err, errlen, -errno, "cannot open %s: %s", path, strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(s->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        return store_fail(err, errlen, -EBUSY,
                          "state_dir %s is in use by another genfs (pid %s): unmount it first or "
                          "pass a different -o state_dir",
                          dir, pid[0] ? pid : "?");
    }
    return 0;
}

void store_write_pid(struct store *s)
{
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) == 0 && pwrite(s->lock_fd, pid, (size_t)n, 0) < 0)
        log_debug(s->log, "cannot record pid in the state_dir lock file");
}

static int mkdir_p(const char *dir, mode_t mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Schema 2 (genfs 0.2): per-model input defaults and request fields. */
static int db_migrate(struct store *s, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    bool has_defaults = false;
    if (db_prepare(s, "PRAGMA table_info(models)", &st) < 0)
        return store_fail(err, errlen, -EIO, "database %s: cannot read its schema", path);
    while (sqlite3_step(st) == SQLITE_ROW)
        has_defaults = has_defaults || strcmp(col_text(st, 1), "defaults") == 0;
    sqlite3_finalize(st);
    if (!has_defaults && db_exec(s, "BEGIN; ALTER TABLE models ADD COLUMN defaults TEXT;"
                                    " ALTER TABLE models ADD COLUMN request TEXT;"
                                    " UPDATE meta SET value='2' WHERE key='schema'; COMMIT;") < 0)
        return store_fail(
            err, errlen, -EIO,
            "database %s: cannot add the columns of schema 2 (see the log); it is left "
            "as it was",
            path);
    return db_exec(s, "UPDATE meta SET value='2' WHERE key='schema' AND value='1';") < 0
               ? store_fail(err, errlen, -EIO, "database %s: cannot record its schema version",
                            path)
               : 0;
}

/* STATE_DIR/state says whether genfs used this directory before and how it
 * stopped: "running" while a genfs has it, "clean" after a clean stop. A
 * database that went missing or empty, or lost its write-ahead log in a
 * crash, is then told apart from a first start. */
static int state_mark(const char *dir, const char *word)
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
static void state_read(const char *dir, char *word, size_t len)
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
static int check_db_files(const char *dir, const char *db, bool fresh, struct log *lg, char *err,
                          size_t errlen)
{
    char word[32], wal[4110];
    state_read(dir, word, sizeof(word));
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
        return store_fail(
            err, errlen, -EIO,
            "database %s, which genfs used before, %s: restore it (and tasks.db-wal) "
            "from a backup, or mount with -o fresh to start with no tasks (what is left "
            "is moved aside; tasks at the provider can be adopted with mkdir MODEL/ID)",
            db, wrong);
    char aside[4200];
    snprintf(aside, sizeof(aside), "%s.broken-%lld", db, (long long)time(NULL));
    if (have_db && rename(db, aside) != 0)
        return store_fail(err, errlen, -errno, "-o fresh: cannot move %s aside: %s", db,
                          strerror(errno));
    log_warn(lg, "-o fresh: database %s %s; starting with no tasks%s%s", db, wrong,
             have_db ? ", the old one is " : "", have_db ? aside : "");
    return 0;
}

int store_open(const char *state_dir, bool fresh, struct log *lg, struct store **out, char *err,
               size_t errlen)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return store_fail(err, errlen, -ENOMEM, "out of memory");
    s->log = lg;
    s->lock_fd = -1;
    pthread_rwlock_init(&s->lock, NULL);
    int rc = mkdir_p(state_dir, 0700);
    if (rc < 0) {
        store_fail(err, errlen, rc, "cannot create state_dir %s: %s", state_dir, strerror(-rc));
        goto out_fail;
    }
    if ((rc = take_dir_lock(s, state_dir, err, errlen)) < 0)
        goto out_fail;
    store_write_pid(s);
    if ((rc = hash_grow(s)) < 0)
        goto out_fail;

    char path[4096];
    snprintf(path, sizeof(path), "%s/tasks.db", state_dir);
    if ((rc = check_db_files(state_dir, path, fresh, lg, err, errlen)) < 0)
        goto out_fail;
    mode_t old = umask(077);
    int orc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    umask(old);
    if (orc != SQLITE_OK) {
        rc = store_fail(err, errlen, -EIO, "cannot open database %s: %s", path,
                        s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto out_fail;
    }
    sqlite3_busy_timeout(s->db, 2000);
    char *msg = NULL;
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA quick_check;",
                     NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        rc = store_fail(err, errlen, -EIO,
                        "database %s is unusable (%s): move it aside to start afresh, or restore a "
                        "backup",
                        path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        goto out_fail;
    }
    if ((rc = db_migrate(s, path, err, errlen)) < 0)
        goto out_fail;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK) {
        int src = sqlite3_step(st);
        bool ok = src == SQLITE_ROW && strcmp(col_text(st, 0), "ok") == 0;
        sqlite3_finalize(st);
        if (!ok) {
            rc = store_fail(err, errlen, -EIO,
                            "database %s is corrupt: move it aside to start afresh, or restore a "
                            "backup",
                            path);
            goto out_fail;
        }
    }
    if (load_all(s) < 0) {
        rc = store_fail(err, errlen, -EIO, "cannot load tasks from %s: %s", path,
                        sqlite3_errmsg(s->db));
        goto out_fail;
    }
    if ((rc = state_mark(state_dir, "running")) < 0) {
        store_fail(err, errlen, rc, "cannot write %s/state: %s", state_dir, strerror(-rc));
        goto out_fail;
    }
    s->state_dir = strdup(state_dir);
    *out = s;
    return 0;
out_fail:
    store_close(s);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    if (s->db) {
        store_flush(s);
        /* The last connection's close checkpoints the log and removes it. */
        if (sqlite3_close(s->db) == SQLITE_OK && s->state_dir)
            state_mark(s->state_dir, "clean");
    }
    free(s->state_dir);
    for (uint32_t i = 0; i < s->n_tasks; i++)
        task_free(s->tasks[i]);
    for (uint32_t i = 0; i < s->n_models; i++) {
        if (s->models[i]) {
            free(s->models[i]->name);
            free(s->models[i]->hist);
            free(s->models[i]->provider);
            free(s->models[i]->defaults);
            free(s->models[i]->request);
        }
        free(s->models[i]);
    }
    free(s->tasks);
    free(s->dirty);
    free(s->models);
    free(s->buckets);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_rwlock_destroy(&s->lock);
    free(s);
}

int store_observe(struct store *s, store_observer_fn fn, void *arg)
{
    if (s->n_observers == MAX_OBSERVERS)
        return -ENOSPC;
    s->observers[s->n_observers++] = (struct observer){fn, arg};
    return 0;
}

void store_rdlock(struct store *s)
{
    pthread_rwlock_rdlock(&s->lock);
}

void store_unlock(struct store *s)
{
    pthread_rwlock_unlock(&s->lock);
}

uint32_t store_task_slots(struct store *s)
{
    return s->n_tasks;
}

const struct task *store_task_at(struct store *s, uint32_t idx)
{
    return idx < s->n_tasks ? s->tasks[idx] : NULL;
}

const struct task *store_task_find(struct store *s, uint32_t model_idx, const char *id)
{
    uint32_t i = s->buckets[hash_key(model_idx, id) & (s->n_buckets - 1)];
    while (i != STORE_NONE) {
        const struct task *t = s->tasks[i];
        if (t->model_idx == model_idx && strcmp(t->id, id) == 0)
            return t;
        i = t->hash_next;
    }
    return NULL;
}

uint32_t store_model_slots(struct store *s)
{
    return s->n_models;
}

const struct model *store_model_at(struct store *s, uint32_t idx)
{
    return idx < s->n_models ? s->models[idx] : NULL;
}

const struct model *store_model_find(struct store *s, const char *name)
{
    for (uint32_t i = 0; i < s->n_models; i++)
        if (s->models[i] && strcmp(s->models[i]->name, name) == 0)
            return s->models[i];
    return NULL;
}

const struct model *store_model_child(struct store *s, uint32_t parent, const char *leaf)
{
    for (uint32_t i = 0; i < s->n_models; i++) {
        const struct model *m = s->models[i];
        if (m && m->parent == parent && strcmp(m->leaf, leaf) == 0)
            return m;
    }
    return NULL;
}

static void wrlock(struct store *s)
{
    pthread_rwlock_wrlock(&s->lock);
}

int store_model_add(struct store *s, const char *name, const char *provider, uint32_t *idx)
{
    const struct model *m = store_model_find(s, name);
    if (m) {
        *idx = m->idx;
        return -EEXIST;
    }
    for (const char *p = strchr(name, '/'); p; p = strchr(p + 1, '/')) {
        char prefix[256];
        snprintf(prefix, sizeof(prefix), "%.*s", (int)(p - name), name);
        const struct model *pm = store_model_find(s, prefix);
        if (pm && !pm->ns)
            return -ENOTDIR;
    }
    sqlite3_stmt *st;
    int64_t now = clock_now_ms();
    int rc = db_prepare(
        s, "INSERT OR IGNORE INTO models(name, created_ms, provider) VALUES(?1, ?2, ?3)", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    bind_text(st, 3, provider);
    if ((rc = db_step_done(s, st)) < 0)
        return rc;
    wrlock(s);
    rc = model_prefixes(s, name, now);
    if (rc == 0)
        rc = model_append(s, name, now, false, idx);
    if (rc == 0 && provider)
        s->models[*idx]->provider = strdup(provider);
    store_unlock(s);
    if (rc == 0)
        store_publish(s, &(struct store_change){.kind = STORE_MODEL_ADDED,
                                                .task_idx = STORE_NONE,
                                                .model_idx = *idx,
                                                .model_name = name,
                                                .at_ms = now});
    return rc;
}

int store_model_remove(struct store *s, uint32_t idx)
{
    struct model *m = idx < s->n_models ? s->models[idx] : NULL;
    if (!m)
        return -ENOENT;
    if (m->n_tasks > 0 || m->n_children > 0)
        return -ENOTEMPTY;
    if (!m->ns) {
        sqlite3_stmt *st;
        int rc = db_prepare(s, "DELETE FROM models WHERE name=?1", &st);
        if (rc < 0)
            return rc;
        sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
        if ((rc = db_step_done(s, st)) < 0)
            return rc;
    }
    wrlock(s);
    s->models[idx] = NULL;
    if (m->parent != STORE_NONE && s->models[m->parent])
        s->models[m->parent]->n_children--;
    store_unlock(s);
    store_publish(s, &(struct store_change){.kind = STORE_MODEL_REMOVED,
                                            .task_idx = STORE_NONE,
                                            .model_idx = idx,
                                            .model_name = m->name,
                                            .at_ms = clock_now_ms()});
    free(m->name);
    free(m->hist);
    free(m->provider);
    free(m->defaults);
    free(m->request);
    free(m);
    return 0;
}

/* Sets one text column of a model's row and its copy in memory. */
static int model_set_text(struct store *s, uint32_t idx, const char *sql, const char *text,
                          size_t field)
{
    struct model *m = idx < s->n_models ? s->models[idx] : NULL;
    if (!m || m->ns)
        return -ENOENT;
    char *copy = text ? strdup(text) : NULL;
    if (text && !copy)
        return -ENOMEM;
    sqlite3_stmt *st;
    int rc = db_prepare(s, sql, &st);
    if (rc == 0) {
        bind_text(st, 1, text);
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
        rc = db_step_done(s, st);
    }
    if (rc < 0) {
        free(copy);
        return rc;
    }
    char **slot = (char **)((char *)m + field);
    wrlock(s);
    free(*slot);
    *slot = copy;
    store_unlock(s);
    return rc;
}

int store_model_set_provider(struct store *s, uint32_t idx, const char *provider)
{
    return model_set_text(s, idx, "UPDATE models SET provider=?1 WHERE name=?2", provider,
                          offsetof(struct model, provider));
}

int store_model_set_hist(struct store *s, uint32_t idx, const char *text)
{
    return model_set_text(s, idx, "UPDATE models SET hist=?1 WHERE name=?2", text,
                          offsetof(struct model, hist));
}

int store_model_set_defaults(struct store *s, uint32_t idx, const char *json)
{
    return model_set_text(s, idx, "UPDATE models SET defaults=?1 WHERE name=?2", json,
                          offsetof(struct model, defaults));
}

int store_model_set_request(struct store *s, uint32_t idx, const char *json)
{
    return model_set_text(s, idx, "UPDATE models SET request=?1 WHERE name=?2", json,
                          offsetof(struct model, request));
}

int store_task_insert(struct store *s, const struct task_new *tn, uint32_t *idx)
{
    struct model *m = tn->model_idx < s->n_models ? s->models[tn->model_idx] : NULL;
    if (!m)
        return -ENOENT;
    if (m->ns)
        return -EISDIR;
    if (store_task_find(s, tn->model_idx, tn->id))
        return -EEXIST;
    struct task *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->model_idx = tn->model_idx;
    t->id = strdup(tn->id);
    t->state = TASK_WAITING;
    t->adopted = tn->adopted;
    t->input_json = dup_or_null(tn->input_json);
    t->prompt = dup_or_null(tn->prompt);
    t->status_url = dup_or_null(tn->status_url);
    t->result_url = dup_or_null(tn->result_url);
    t->cb_token = dup_or_null(tn->cb_token);
    t->submit_ms = tn->submit_ms;
    t->change_ms = tn->submit_ms;
    t->status_ms = tn->submit_ms;
    t->version = 1;

    sqlite3_stmt *st;
    int rc = db_prepare(s,
                        "INSERT INTO tasks(model, id, seq, state, adopted, input, prompt,"
                        " status_url, submit_ms, change_ms, status_ms, result_url, cb_token)"
                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9, ?10, ?11)",
                        &st);
    if (rc < 0) {
        task_free(t);
        return rc;
    }
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, s->seq + 1);
    sqlite3_bind_text(st, 4, task_state_name(t->state), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, t->adopted);
    bind_text(st, 6, t->input_json);
    bind_text(st, 7, t->prompt);
    bind_text(st, 8, t->status_url);
    sqlite3_bind_int64(st, 9, t->submit_ms);
    bind_text(st, 10, t->result_url);
    bind_text(st, 11, t->cb_token);
    if ((rc = db_step_done(s, st)) < 0) {
        task_free(t);
        return rc;
    }
    s->seq++;
    wrlock(s);
    rc = task_append(s, t);
    if (rc == 0)
        m->mtime_ms = t->submit_ms;
    store_unlock(s);
    if (rc < 0) {
        task_free(t);
        return rc;
    }
    *idx = t->idx;
    store_publish(s, &(struct store_change){.kind = STORE_TASK_ADDED,
                                            .task_idx = t->idx,
                                            .model_idx = t->model_idx,
                                            .old_state = t->state,
                                            .new_state = t->state,
                                            .task_id = t->id,
                                            .model_name = m->name,
                                            .at_ms = t->submit_ms});
    return 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

int store_task_apply_status(struct store *s, uint32_t idx, const struct provider_status *ps,
                            int64_t now_ms)
{
    struct task *t = idx < s->n_tasks ? s->tasks[idx] : NULL;
    if (!t)
        return -ENOENT;
    /* A final state is final: a provider that flips back is not believed. */
    bool state_moves = ps->state != t->state && !task_state_final(t->state);
    bool status_moves = !str_eq(ps->data_json, t->status_json);
    if (!state_moves && !status_moves) {
        s->dirty[idx] = true;
        s->any_dirty = true;
        return 0;
    }
    enum task_state old = t->state;
    char *new_status = dup_or_null(ps->data_json);
    char **urls = NULL, **names = NULL;
    size_t n_urls = 0;
    char *fcode = NULL, *fmsg = NULL;
    if (state_moves && ps->state == TASK_SUCCESS && ps->n_urls > 0) {
        urls = calloc(ps->n_urls, sizeof(char *));
        names = calloc(ps->n_urls, sizeof(char *));
        for (size_t i = 0; urls && names && i < ps->n_urls; i++) {
            names[n_urls] = ps->names ? dup_or_null(ps->names[i]) : NULL;
            urls[n_urls++] = strdup(ps->urls[i]);
        }
    }
    if (state_moves && ps->state == TASK_FAILED) {
        fcode = strdup(ps->fail_code ? ps->fail_code : "unknown");
        fmsg = strdup(ps->fail_msg ? ps->fail_msg : "the provider gave no reason");
    }
    /* An answer without logs (fal's result request) keeps the last ones. */
    char *logs = dup_or_null(ps->logs ? ps->logs : t->logs);
    char *cancel_url = ps->cancel_url ? strdup(ps->cancel_url) : dup_or_null(t->cancel_url);
    wrlock(s);
    free(t->status_json);
    t->status_json = new_status;
    t->status_ms = now_ms;
    t->shown =
        (state_moves || ps->progress != t->progress || ps->queue_position != t->queue_position
             ? STORE_SHOWN_PROGRESS
             : 0) |
        (str_eq(logs, t->logs) ? 0 : STORE_SHOWN_LOGS);
    t->progress = ps->progress;
    t->queue_position = ps->queue_position;
    free(t->logs);
    t->logs = logs;
    free(t->cancel_url);
    t->cancel_url = cancel_url;
    if (state_moves) {
        t->state = ps->state;
        t->change_ms = now_ms;
        if (ps->state == TASK_SUCCESS) {
            t->urls = urls;
            t->names = names;
            t->n_urls = n_urls;
            files_init(t, NULL);
        } else if (ps->state == TASK_FAILED) {
            t->fail_code = fcode;
            t->fail_msg = fmsg;
        }
        if (task_state_final(ps->state)) {
            t->complete_ms = ps->complete_ms;
            t->gave_up = false;
        }
    }
    t->version++;
    store_unlock(s);
    s->dirty[idx] = false;
    int rc = task_write(s, t);
    store_publish(s,
                  &(struct store_change){.kind = state_moves ? STORE_TASK_STATE : STORE_TASK_STATUS,
                                         .task_idx = idx,
                                         .model_idx = t->model_idx,
                                         .old_state = old,
                                         .new_state = t->state,
                                         .task_id = t->id,
                                         .model_name = s->models[t->model_idx]->name,
                                         .at_ms = now_ms});
    return rc;
}

void store_task_note_poll(struct store *s, uint32_t idx, int64_t now_ms)
{
    struct task *t = idx < s->n_tasks ? s->tasks[idx] : NULL;
    if (!t)
        return;
    wrlock(s);
    t->last_poll_ms = now_ms;
    t->polls++;
    store_unlock(s);
    s->dirty[idx] = true;
    s->any_dirty = true;
}

int store_task_set_gave_up(struct store *s, uint32_t idx, bool gave_up)
{
    struct task *t = idx < s->n_tasks ? s->tasks[idx] : NULL;
    if (!t || t->gave_up == gave_up)
        return t ? 0 : -ENOENT;
    wrlock(s);
    t->gave_up = gave_up;
    t->version++;
    store_unlock(s);
    int rc = task_write(s, t);
    if (gave_up)
        store_publish(s, &(struct store_change){.kind = STORE_TASK_GAVE_UP,
                                                .task_idx = idx,
                                                .model_idx = t->model_idx,
                                                .old_state = t->state,
                                                .new_state = t->state,
                                                .task_id = t->id,
                                                .model_name = s->models[t->model_idx]->name,
                                                .at_ms = clock_now_ms()});
    return rc;
}

int store_task_remove(struct store *s, uint32_t idx)
{
    struct task *t = idx < s->n_tasks ? s->tasks[idx] : NULL;
    if (!t)
        return -ENOENT;
    struct model *m = s->models[t->model_idx];
    sqlite3_stmt *st;
    int rc = db_prepare(s, "DELETE FROM tasks WHERE model=?1 AND id=?2", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->id, -1, SQLITE_STATIC);
    if ((rc = db_step_done(s, st)) < 0)
        return rc;
    wrlock(s);
    hash_unlink(s, t);
    s->tasks[idx] = NULL;
    s->live_tasks--;
    m->n_tasks--;
    if (m->latest == idx) {
        m->latest = STORE_NONE;
        for (uint32_t i = s->n_tasks; i-- > 0;) {
            const struct task *o = s->tasks[i];
            if (o && o->model_idx == m->idx && !o->adopted) {
                m->latest = i;
                break;
            }
        }
    }
    m->mtime_ms = clock_now_ms();
    store_unlock(s);
    s->dirty[idx] = false;
    store_publish(s, &(struct store_change){.kind = STORE_TASK_REMOVED,
                                            .task_idx = idx,
                                            .model_idx = t->model_idx,
                                            .old_state = t->state,
                                            .new_state = t->state,
                                            .task_id = t->id,
                                            .model_name = m->name,
                                            .at_ms = m->mtime_ms});
    task_free(t);
    return 0;
}

int store_flush(struct store *s)
{
    if (!s->any_dirty)
        return 0;
    int rc = db_exec(s, "BEGIN");
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    if ((rc = db_prepare(s, "UPDATE tasks SET last_poll_ms=?1, polls=?2 WHERE model=?3 AND id=?4",
                         &st)) < 0) {
        db_exec(s, "ROLLBACK");
        return rc;
    }
    for (uint32_t i = 0; i < s->n_tasks; i++) {
        const struct task *t = s->tasks[i];
        if (!t || !s->dirty[i])
            continue;
        sqlite3_bind_int64(st, 1, t->last_poll_ms);
        sqlite3_bind_int64(st, 2, t->polls);
        sqlite3_bind_text(st, 3, s->models[t->model_idx]->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, t->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = -EIO;
        sqlite3_reset(st);
        s->dirty[i] = false;
    }
    sqlite3_finalize(st);
    s->any_dirty = false;
    int crc = db_exec(s, "COMMIT");
    return rc < 0 ? rc : crc;
}

void store_count_states(struct store *s, uint32_t counts[TASK_STATE_COUNT])
{
    memset(counts, 0, sizeof(uint32_t) * TASK_STATE_COUNT);
    for (uint32_t i = 0; i < s->n_tasks; i++)
        if (s->tasks[i])
            counts[s->tasks[i]->state]++;
}

int store_file_set(struct store *s, uint32_t idx, uint32_t n, enum file_state st, const char *name,
                   int64_t size)
{
    struct task *t = idx < s->n_tasks ? s->tasks[idx] : NULL;
    if (!t || !t->files || n >= t->n_urls)
        return -ENOENT;
    struct task_file *f = &t->files[n];
    wrlock(s);
    f->state = st;
    if (name)
        snprintf(f->name, sizeof(f->name), "%s", name);
    if (size >= -1)
        f->size = size;
    t->version++;
    store_unlock(s);
    int rc = 0;
    if (st == FILE_DONE) {
        sqlite3_stmt *q;
        char *files = files_to_json(t);
        rc = db_prepare(s, "UPDATE tasks SET files=?1 WHERE model=?2 AND id=?3", &q);
        if (rc == 0) {
            bind_text(q, 1, files);
            sqlite3_bind_text(q, 2, s->models[t->model_idx]->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, t->id, -1, SQLITE_STATIC);
            rc = db_step_done(s, q);
        }
        free(files);
    }
    store_publish(s, &(struct store_change){.kind = STORE_FILE_CHANGED,
                                            .task_idx = idx,
                                            .model_idx = t->model_idx,
                                            .file_n = n,
                                            .old_state = t->state,
                                            .new_state = t->state,
                                            .task_id = t->id,
                                            .model_name = s->models[t->model_idx]->name,
                                            .at_ms = clock_now_ms()});
    return rc;
}
