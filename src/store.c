#include "store.h"

#include "clock.h"
#include "media.h"
#include "store_backend.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
    struct store_backend be;
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
    /* Team mounts, by task idx: this mount's lease runs to (wall ms, 0: none),
     * and a change the database did not take (written again on reconnect). */
    int64_t *lease_ms;
    bool *unsaved;
    bool any_unsaved;
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

/* ---- rows ---- */

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

static int task_grow(struct store *s)
{
    uint32_t cap = s->cap_tasks ? s->cap_tasks * 2 : 1024;
    struct task **a = realloc(s->tasks, cap * sizeof(*a));
    if (a)
        s->tasks = a;
    bool *d = a ? realloc(s->dirty, cap * sizeof(*d)) : NULL;
    if (d)
        s->dirty = d;
    bool *u = d ? realloc(s->unsaved, cap * sizeof(*u)) : NULL;
    if (u)
        s->unsaved = u;
    int64_t *l = u ? realloc(s->lease_ms, cap * sizeof(*l)) : NULL;
    if (!l)
        return -ENOMEM;
    s->lease_ms = l;
    size_t more = cap - s->cap_tasks;
    memset(s->dirty + s->cap_tasks, 0, more * sizeof(*d));
    memset(s->unsaved + s->cap_tasks, 0, more * sizeof(*u));
    memset(s->lease_ms + s->cap_tasks, 0, more * sizeof(*l));
    s->cap_tasks = cap;
    return 0;
}

/* here: submitted from this mount, so `latest` may point at it. */
static int task_append(struct store *s, struct task *t, bool here)
{
    if (s->n_tasks == s->cap_tasks && task_grow(s) < 0)
        return -ENOMEM;
    if (s->live_tasks + 1 > s->n_buckets && hash_grow(s) < 0)
        return -ENOMEM;
    t->idx = s->n_tasks;
    t->progress = t->queue_position = -1; /* unknown until a status answer says */
    s->tasks[s->n_tasks++] = t;
    s->live_tasks++;
    hash_insert(s, t);
    struct model *m = s->models[t->model_idx];
    m->n_tasks++;
    if (!t->adopted && here)
        m->latest = t->idx;
    return 0;
}

/* A task in memory from its row (model_idx already resolved). */
static struct task *task_from_row(const struct store_row_task *r, uint32_t midx)
{
    struct task *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->model_idx = midx;
    t->id = strdup(r->id);
    if (task_state_parse(r->state, &t->state) < 0)
        t->state = TASK_WAITING;
    t->adopted = r->adopted;
    t->gave_up = r->gave_up;
    t->input_json = dup_or_null(r->input);
    t->prompt = dup_or_null(r->prompt);
    t->status_json = dup_or_null(r->status_json);
    t->status_url = dup_or_null(r->status_url);
    urls_from_json(t, r->urls);
    t->fail_code = dup_or_null(r->fail_code);
    t->fail_msg = dup_or_null(r->fail_msg);
    t->submit_ms = r->submit_ms;
    t->change_ms = r->change_ms;
    t->status_ms = r->status_ms;
    t->complete_ms = r->complete_ms;
    t->last_poll_ms = r->last_poll_ms;
    t->polls = r->polls;
    if (t->state == TASK_SUCCESS)
        files_init(t, r->files);
    t->result_url = dup_or_null(r->result_url);
    t->cb_token = dup_or_null(r->cb_token);
    t->version = 1;
    return t;
}

/* The row of a task as it is in memory; *urls is the caller's to free. */
static struct store_row_task task_row(struct store *s, const struct task *t, char **urls)
{
    *urls = urls_to_json(t);
    return (struct store_row_task){.model = s->models[t->model_idx]->name,
                                   .id = t->id,
                                   .state = task_state_name(t->state),
                                   .adopted = t->adopted,
                                   .gave_up = t->gave_up,
                                   .input = t->input_json,
                                   .prompt = t->prompt,
                                   .status_json = t->status_json,
                                   .status_url = t->status_url,
                                   .urls = *urls,
                                   .fail_code = t->fail_code,
                                   .fail_msg = t->fail_msg,
                                   .submit_ms = t->submit_ms,
                                   .change_ms = t->change_ms,
                                   .status_ms = t->status_ms,
                                   .complete_ms = t->complete_ms,
                                   .last_poll_ms = t->last_poll_ms,
                                   .polls = t->polls,
                                   .result_url = t->result_url,
                                   .cb_token = t->cb_token};
}

static int task_write(struct store *s, const struct task *t)
{
    char *urls;
    struct store_row_task r = task_row(s, t, &urls);
    int rc = s->be.ops->task_update(s->be.h, &r);
    free(urls);
    if (rc < 0 && s->be.ops->sync) {
        s->unsaved[t->idx] = true;
        s->any_unsaved = true;
    }
    return rc;
}

static int load_model_row(void *arg, const struct store_row_model *r)
{
    struct store *s = arg;
    uint32_t idx;
    int lrc = model_load(s, r->name, r->created_ms, &idx);
    if (lrc < 0)
        return lrc;
    struct model *m = s->models[idx];
    m->hist = dup_or_null(r->hist);
    m->provider = dup_or_null(r->provider);
    m->defaults = dup_or_null(r->defaults);
    m->request = dup_or_null(r->request);
    return 0;
}

static int load_task_row(void *arg, const struct store_row_task *r)
{
    struct store *s = arg;
    uint32_t midx;
    if (model_load(s, r->model, 0, &midx) < 0)
        return 0;
    if (r->seq > s->seq)
        s->seq = r->seq;
    struct task *t = task_from_row(r, midx);
    if (!t || task_append(s, t, r->here) < 0) {
        task_free(t);
        return -ENOMEM;
    }
    s->lease_ms[t->idx] = r->leased ? clock_now_ms() + STORE_LEASE_MS : 0;
    return 0;
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

int store_open(const char *state_dir, bool fresh, struct log *lg, struct store **out, char *err,
               size_t errlen)
{
    return store_open_at(state_dir, NULL, fresh, lg, out, err, errlen);
}

int store_open_at(const char *state_dir, const char *url, bool fresh, struct log *lg,
                  struct store **out, char *err, size_t errlen)
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
    rc = url ? store_pg_open(url, state_dir, lg, &s->be, err, errlen)
             : store_sqlite_open(state_dir, fresh, lg, &s->be, err, errlen);
    if (rc < 0)
        goto out_fail;
    struct store_rows_cb cb = {.arg = s, .model = load_model_row, .task = load_task_row};
    if ((rc = s->be.ops->load(s->be.h, &cb)) < 0) {
        store_fail(err, errlen, rc, "cannot load the tasks from the database: see the log");
        goto out_fail;
    }
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
    if (s->be.ops) {
        store_flush(s);
        s->be.ops->close(s->be.h);
    }
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
    free(s->unsaved);
    free(s->lease_ms);
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
    int64_t now = clock_now_ms();
    int rc = s->be.ops->model_put(s->be.h, name, now, provider);
    if (rc < 0)
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

/* The in-memory part of removing a model (remote: another mount did). */
static void model_drop(struct store *s, struct model *m, bool remote)
{
    uint32_t idx = m->idx;
    wrlock(s);
    s->models[idx] = NULL;
    if (m->parent != STORE_NONE && s->models[m->parent])
        s->models[m->parent]->n_children--;
    store_unlock(s);
    store_publish(s, &(struct store_change){.kind = STORE_MODEL_REMOVED,
                                            .task_idx = STORE_NONE,
                                            .model_idx = idx,
                                            .model_name = m->name,
                                            .at_ms = clock_now_ms(),
                                            .remote = remote});
    free(m->name);
    free(m->hist);
    free(m->provider);
    free(m->defaults);
    free(m->request);
    free(m);
}

int store_model_remove(struct store *s, uint32_t idx)
{
    struct model *m = idx < s->n_models ? s->models[idx] : NULL;
    if (!m)
        return -ENOENT;
    if (m->n_tasks > 0 || m->n_children > 0)
        return -ENOTEMPTY;
    if (!m->ns) {
        int rc = s->be.ops->model_del(s->be.h, m->name);
        if (rc < 0)
            return rc;
    }
    model_drop(s, m, false);
    return 0;
}

/* Sets one text column of a model's row and its copy in memory. */
static int model_set_text(struct store *s, uint32_t idx, enum store_model_col col, const char *text,
                          size_t field)
{
    struct model *m = idx < s->n_models ? s->models[idx] : NULL;
    if (!m || m->ns)
        return -ENOENT;
    char *copy = text ? strdup(text) : NULL;
    if (text && !copy)
        return -ENOMEM;
    int rc = s->be.ops->model_set(s->be.h, m->name, col, text);
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
    return model_set_text(s, idx, STORE_COL_PROVIDER, provider, offsetof(struct model, provider));
}

int store_model_set_hist(struct store *s, uint32_t idx, const char *text)
{
    return model_set_text(s, idx, STORE_COL_HIST, text, offsetof(struct model, hist));
}

int store_model_set_defaults(struct store *s, uint32_t idx, const char *json)
{
    return model_set_text(s, idx, STORE_COL_DEFAULTS, json, offsetof(struct model, defaults));
}

int store_model_set_request(struct store *s, uint32_t idx, const char *json)
{
    return model_set_text(s, idx, STORE_COL_REQUEST, json, offsetof(struct model, request));
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

    char *urls;
    struct store_row_task r = task_row(s, t, &urls);
    r.seq = s->seq + 1;
    int rc = s->be.ops->task_insert(s->be.h, &r, tn->intent);
    free(urls);
    /* A team mount whose database went away while the provider took the task
     * keeps it, and writes it when the database is back. */
    bool keep = rc == -EIO && s->be.ops->sync;
    if (rc < 0 && !keep) {
        task_free(t);
        return rc;
    }
    s->seq++;
    wrlock(s);
    rc = task_append(s, t, true);
    if (rc == 0)
        s->lease_ms[t->idx] = clock_now_ms() + STORE_LEASE_MS;
    if (rc == 0)
        m->mtime_ms = t->submit_ms;
    store_unlock(s);
    if (rc < 0) {
        task_free(t);
        return rc;
    }
    if (keep) {
        s->unsaved[t->idx] = true;
        s->any_unsaved = true;
        log_warn(s->log,
                 "%s/%s: taken by the provider while the database is away: kept here, "
                 "written when it is back",
                 m->name, t->id);
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

/* The in-memory part of forgetting a task (remote: another mount did). */
static void task_drop(struct store *s, struct task *t, bool remote)
{
    uint32_t idx = t->idx;
    struct model *m = s->models[t->model_idx];
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
    s->unsaved[idx] = false;
    s->lease_ms[idx] = 0;
    store_publish(s, &(struct store_change){.kind = STORE_TASK_REMOVED,
                                            .task_idx = idx,
                                            .model_idx = t->model_idx,
                                            .old_state = t->state,
                                            .new_state = t->state,
                                            .task_id = t->id,
                                            .model_name = m->name,
                                            .at_ms = m->mtime_ms,
                                            .remote = remote,
                                            .gone = t});
    task_free(t);
}

int store_task_remove(struct store *s, uint32_t idx)
{
    struct task *t = idx < s->n_tasks ? s->tasks[idx] : NULL;
    if (!t)
        return -ENOENT;
    int rc = s->be.ops->task_del(s->be.h, s->models[t->model_idx]->name, t->id);
    if (rc < 0)
        return rc;
    task_drop(s, t, false);
    return 0;
}

int store_flush(struct store *s)
{
    if (!s->any_dirty)
        return 0;
    struct store_poll_row *rows = malloc(s->n_tasks * sizeof(*rows));
    if (!rows)
        return -ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < s->n_tasks; i++) {
        const struct task *t = s->tasks[i];
        if (t && s->dirty[i])
            rows[n++] = (struct store_poll_row){.model = s->models[t->model_idx]->name,
                                                .id = t->id,
                                                .last_poll_ms = t->last_poll_ms,
                                                .polls = t->polls};
        s->dirty[i] = false;
    }
    s->any_dirty = false;
    int rc = s->be.ops->polls_flush(s->be.h, rows, n);
    free(rows);
    return rc;
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
        char *files = files_to_json(t);
        rc = s->be.ops->task_files(s->be.h, s->models[t->model_idx]->name, t->id, files);
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

/* ---- team mounts: other mounts' changes, leases, submissions, the rate ---- */

static int sync_model_row(void *arg, const struct store_row_model *r)
{
    struct store *s = arg;
    const struct model *known = store_model_find(s, r->name);
    if (known && !known->ns) {
        struct model *m = s->models[known->idx];
        char *defaults = dup_or_null(r->defaults), *request = dup_or_null(r->request);
        wrlock(s);
        free(m->defaults);
        free(m->request);
        m->defaults = defaults;
        m->request = request;
        store_unlock(s);
        return 0;
    }
    uint32_t idx;
    wrlock(s);
    int rc = model_load(s, r->name, r->created_ms, &idx);
    if (rc == 0) {
        s->models[idx]->provider = dup_or_null(r->provider);
        s->models[idx]->defaults = dup_or_null(r->defaults);
        s->models[idx]->request = dup_or_null(r->request);
    }
    store_unlock(s);
    if (rc == 0)
        store_publish(s, &(struct store_change){.kind = STORE_MODEL_ADDED,
                                                .task_idx = STORE_NONE,
                                                .model_idx = idx,
                                                .model_name = s->models[idx]->name,
                                                .at_ms = clock_now_ms(),
                                                .remote = true});
    return rc == -ENOMEM ? rc : 0;
}

static int sync_task_add(struct store *s, const struct store_row_task *r, uint32_t midx)
{
    struct task *t = task_from_row(r, midx);
    if (!t)
        return -ENOMEM;
    wrlock(s);
    int rc = task_append(s, t, r->here);
    store_unlock(s);
    if (rc < 0) {
        task_free(t);
        return rc;
    }
    s->lease_ms[t->idx] = r->leased ? clock_now_ms() + STORE_LEASE_MS : 0;
    store_publish(s, &(struct store_change){.kind = STORE_TASK_ADDED,
                                            .task_idx = t->idx,
                                            .model_idx = midx,
                                            .old_state = t->state,
                                            .new_state = t->state,
                                            .task_id = t->id,
                                            .model_name = s->models[midx]->name,
                                            .at_ms = t->submit_ms,
                                            .remote = true});
    return 0;
}

/* Takes the row's state into t, as a status answer here would have. */
static void sync_task_take(struct task *t, struct task *row, bool state_moves)
{
    char *swap = t->status_json;
    t->status_json = row->status_json;
    row->status_json = swap;
    t->status_ms = row->status_ms;
    if (!state_moves) {
        t->gave_up = row->gave_up;
        return;
    }
    t->state = row->state;
    t->change_ms = row->change_ms;
    if (row->state == TASK_SUCCESS && t->n_urls == 0) {
        t->urls = row->urls;
        t->names = row->names;
        t->n_urls = row->n_urls;
        t->files = row->files;
        row->urls = row->names = NULL;
        row->n_urls = 0;
        row->files = NULL;
    } else if (row->state == TASK_FAILED && !t->fail_code) {
        t->fail_code = row->fail_code;
        t->fail_msg = row->fail_msg;
        row->fail_code = row->fail_msg = NULL;
    }
    t->complete_ms = row->complete_ms;
    t->gave_up = task_state_final(t->state) ? false : row->gave_up;
}

static int sync_task_update(struct store *s, struct task *t, const struct store_row_task *r)
{
    enum task_state st;
    if (task_state_parse(r->state, &st) < 0)
        return 0;
    /* A final state is final, here as from a provider. */
    bool state_moves = st != t->state && !task_state_final(t->state);
    bool status_moves = !str_eq(r->status_json, t->status_json);
    bool gave_up = !state_moves && r->gave_up != t->gave_up;
    if (!state_moves && !status_moves && !gave_up)
        return 0;
    struct task *row = task_from_row(r, t->model_idx);
    if (!row)
        return -ENOMEM;
    enum task_state old = t->state;
    wrlock(s);
    sync_task_take(t, row, state_moves);
    t->version++;
    store_unlock(s);
    task_free(row);
    enum store_change_kind kind = state_moves    ? STORE_TASK_STATE
                                  : status_moves ? STORE_TASK_STATUS
                                                 : STORE_TASK_GAVE_UP;
    if (kind == STORE_TASK_GAVE_UP && !t->gave_up)
        return 0;
    store_publish(s, &(struct store_change){.kind = kind,
                                            .task_idx = t->idx,
                                            .model_idx = t->model_idx,
                                            .old_state = old,
                                            .new_state = t->state,
                                            .task_id = t->id,
                                            .model_name = s->models[t->model_idx]->name,
                                            .at_ms = clock_now_ms(),
                                            .remote = true});
    return 0;
}

/* Names and sizes another mount learnt by downloading: the files are then
 * listed here with their size, and come into this mount's cache when read. */
static void sync_task_files(struct store *s, struct task *t, const char *files)
{
    if (!t->files || !files)
        return;
    struct task row = {.urls = t->urls, .names = t->names, .n_urls = t->n_urls};
    if (files_init(&row, files) < 0)
        return;
    for (uint32_t n = 0; n < t->n_urls; n++) {
        struct task_file *f = &t->files[n];
        const struct task_file *g = &row.files[n];
        if (f->state != FILE_PENDING || f->size >= 0 || g->size < 0)
            continue;
        wrlock(s);
        memcpy(f->name, g->name, sizeof(f->name));
        f->size = g->size;
        t->version++;
        store_unlock(s);
        store_publish(s, &(struct store_change){.kind = STORE_FILE_CHANGED,
                                                .task_idx = t->idx,
                                                .model_idx = t->model_idx,
                                                .file_n = n,
                                                .old_state = t->state,
                                                .new_state = t->state,
                                                .task_id = t->id,
                                                .model_name = s->models[t->model_idx]->name,
                                                .at_ms = clock_now_ms(),
                                                .remote = true});
    }
    free(row.files);
}

static struct task *sync_find(struct store *s, const char *model, const char *id)
{
    const struct model *m = model ? store_model_find(s, model) : NULL;
    return m && id ? (struct task *)store_task_find(s, m->idx, id) : NULL;
}

static int sync_task_row(void *arg, const struct store_row_task *r)
{
    struct store *s = arg;
    const struct model *m = store_model_find(s, r->model);
    if (!m || m->ns)
        return 0; /* its model's row comes first; one that clashes is not shown */
    struct task *t = sync_find(s, r->model, r->id);
    if (!t)
        return sync_task_add(s, r, m->idx);
    int rc = sync_task_update(s, t, r);
    sync_task_files(s, t, r->files);
    return rc;
}

static void sync_task_gone(void *arg, const char *model, const char *id)
{
    struct store *s = arg;
    struct task *t = sync_find(s, model, id);
    if (t)
        task_drop(s, t, true);
}

static void sync_model_gone(void *arg, const char *name)
{
    struct store *s = arg;
    const struct model *m = store_model_find(s, name);
    if (m && !m->ns && m->n_tasks == 0 && m->n_children == 0)
        model_drop(s, s->models[m->idx], true);
}

static void sync_lease(void *arg, const char *model, const char *id, bool mine)
{
    struct store *s = arg;
    struct task *t = sync_find(s, model, id);
    if (t)
        s->lease_ms[t->idx] = mine ? clock_now_ms() + STORE_LEASE_MS : 0;
}

bool store_is_team(struct store *s)
{
    return s->be.ops->sync != NULL;
}

int store_wait_fd(struct store *s)
{
    return s->be.ops->wait_fd ? s->be.ops->wait_fd(s->be.h) : -1;
}

void store_sync(struct store *s, int64_t now_ms)
{
    if (!s->be.ops->sync)
        return;
    struct store_rows_cb cb = {.arg = s,
                               .model = sync_model_row,
                               .task = sync_task_row,
                               .task_gone = sync_task_gone,
                               .model_gone = sync_model_gone,
                               .lease = sync_lease};
    if (s->be.ops->sync(s->be.h, &cb, now_ms) != 1 || !s->any_unsaved)
        return;
    /* Back after an outage: what this mount learnt meanwhile goes in first
     * (a task the provider took meanwhile is inserted, then brought up to date). */
    s->any_unsaved = false;
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n_tasks; i++) {
        const struct task *t = s->tasks[i];
        if (!s->unsaved[i] || !t)
            continue;
        s->unsaved[i] = false;
        n++;
        char *urls;
        struct store_row_task r = task_row(s, t, &urls);
        s->be.ops->task_insert(s->be.h, &r, 0);
        free(urls);
        task_write(s, t);
    }
    log_info(s->log, "wrote %u task change%s made while the database was away", n,
             n == 1 ? "" : "s");
}

bool store_task_leased(struct store *s, uint32_t idx, int64_t now_ms)
{
    if (!s->be.ops->sync)
        return true;
    return idx < s->n_tasks && s->lease_ms[idx] > now_ms;
}

uint32_t store_leased_pending(struct store *s, int64_t now_ms)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n_tasks; i++)
        if (s->tasks[i] && !task_state_final(s->tasks[i]->state) && s->lease_ms[i] > now_ms)
            n++;
    return n;
}

int store_submit_intent(struct store *s, uint32_t model_idx, const char *input, int64_t *intent)
{
    *intent = 0;
    const struct model *m = store_model_at(s, model_idx);
    if (!s->be.ops->intent_add || !m)
        return 0;
    return s->be.ops->intent_add(s->be.h, m->name, input, intent);
}

void store_submit_drop(struct store *s, int64_t intent)
{
    if (intent && s->be.ops->intent_drop)
        s->be.ops->intent_drop(s->be.h, intent);
}

void store_team_rate(struct store *s, double weight, bool throttled, int64_t retry_after_ms,
                     struct store_rate_share *out)
{
    *out = (struct store_rate_share){.fraction = 1};
    if (!s->be.ops->rate_report)
        return;
    s->be.ops->rate_report(s->be.h, weight, throttled, retry_after_ms);
    s->be.ops->rate_read(s->be.h, out);
}
