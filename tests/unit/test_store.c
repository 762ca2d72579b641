/* The store on a real SQLite database in a temporary state_dir: what it keeps in memory, what
 * it commits before it tells observers, what a restart gives back, and the schema 1 -> 2
 * migration. */
#include "log.h"
#include "store.h"
#include "tap.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct log *lg;

/* What one observer saw: the kinds in order and, for each, what a second connection to the
 * database read at that moment (the change must be committed before anyone hears of it). */
struct seen {
    char db_path[4200];
    struct store *s;
    int n;
    enum store_change_kind kinds[32];
    char db_state[32][16]; /* the task row's state, "" when there is no row */
    char mem_state[32][16];
};

static void db_read_state(const char *path, const char *model, const char *id, char *out,
                          size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT state FROM tasks WHERE model=?1 AND id=?2", -1, &st, NULL) ==
            SQLITE_OK) {
        sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void observe(void *arg, const struct store_change *c)
{
    struct seen *w = arg;
    if (w->n == 32)
        return;
    int i = w->n++;
    w->kinds[i] = c->kind;
    w->db_state[i][0] = w->mem_state[i][0] = '\0';
    if (c->task_idx == STORE_NONE)
        return;
    db_read_state(w->db_path, c->model_name, c->task_id, w->db_state[i], sizeof(w->db_state[i]));
    /* The observer may read the store: it is told after the write lock is let go. */
    store_rdlock(w->s);
    const struct task *t = store_task_at(w->s, c->task_idx);
    if (t)
        snprintf(w->mem_state[i], sizeof(w->mem_state[i]), "%s", task_state_name(t->state));
    store_unlock(w->s);
}

static struct store *open_ok(const char *dir, bool fresh, const char *what)
{
    struct store *s = NULL;
    char err[512] = "";
    int rc = store_open(dir, fresh, lg, &s, err, sizeof(err));
    TAP_CHECK(rc == 0 && s, "%s: store_open (rc %d, %s)", what, rc, err);
    return rc == 0 ? s : NULL;
}

static void read_file(const char *path, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(out, 1, len - 1, f);
        out[n] = '\0';
        out[strcspn(out, "\n")] = '\0';
        fclose(f);
    }
}

static uint32_t insert(struct store *s, uint32_t model, const char *id, bool adopted,
                       int64_t submit_ms)
{
    uint32_t idx = STORE_NONE;
    struct task_new tn = {.model_idx = model,
                          .id = id,
                          .input_json = adopted ? NULL : "{\"prompt\":\"a fox\"}",
                          .prompt = adopted ? NULL : "a fox",
                          .status_url = "http://127.0.0.1:9/status",
                          .adopted = adopted,
                          .submit_ms = submit_ms};
    TAP_EQ_INT(store_task_insert(s, &tn, &idx), 0, "insert a task");
    return idx;
}

static struct provider_status status(enum task_state st, const char *json)
{
    return (struct provider_status){.state = st, .progress = -1, .data_json = (char *)json};
}

static void test_create_get(const char *dir)
{
    struct store *s = open_ok(dir, false, "a new state_dir");
    if (!s)
        return;
    char path[4200], word[64];
    snprintf(path, sizeof(path), "%s/state", dir);
    read_file(path, word, sizeof(word));
    TAP_EQ_STR(word, "running", "the state file says running while the store is open");

    struct store *other = NULL;
    char err[512] = "";
    TAP_EQ_INT(store_open(dir, false, lg, &other, err, sizeof(err)), -EBUSY,
               "a second open of the same state_dir is refused");
    TAP_CHECK(strstr(err, "in use by another genfs") != NULL, "  and says why: %s", err);

    uint32_t m = STORE_NONE, again = STORE_NONE, dev = STORE_NONE;
    TAP_EQ_INT(store_model_add(s, "flux-2", NULL, &m), 0, "add a model");
    TAP_EQ_INT(store_model_add(s, "flux-2", NULL, &again), -EEXIST, "the same name again");
    TAP_EQ_INT(again, m, "  gives the existing model's index");
    TAP_EQ_INT(store_model_add(s, "fal-ai/flux/dev", "fal", &dev), 0, "a model with slashes");
    const struct model *ns = store_model_find(s, "fal-ai/flux");
    TAP_CHECK(ns && ns->ns && ns->n_children == 1, "  makes namespaces above it");
    const struct model *top = store_model_child(s, STORE_NONE, "fal-ai");
    TAP_CHECK(top && top->ns && store_model_child(s, top->idx, "flux") == ns,
              "  found leaf by leaf from the root");
    TAP_EQ_STR(store_model_at(s, dev)->provider, "fal", "  with its provider");
    uint32_t under = STORE_NONE;
    TAP_EQ_INT(store_model_add(s, "flux-2/pro", NULL, &under), -ENOTDIR,
               "a model under a model is refused");

    uint32_t a = insert(s, m, "task_a", false, 1000);
    uint32_t b = insert(s, m, "task_b", true, 2000);
    const struct task *t = store_task_find(s, m, "task_a");
    TAP_CHECK(t && t->idx == a, "a task is found by model and id");
    TAP_CHECK(t && t->state == TASK_WAITING && strcmp(t->prompt, "a fox") == 0 &&
                  t->submit_ms == 1000 && t->change_ms == 1000,
              "  waiting, with its prompt and times");
    TAP_CHECK(store_task_find(s, dev, "task_a") == NULL, "  not under another model");
    TAP_EQ_INT(store_model_at(s, m)->n_tasks, 2, "the model counts its tasks");
    TAP_EQ_INT(store_model_at(s, m)->latest, a, "latest is the newest submitted, not adopted");
    TAP_CHECK(store_task_at(s, b) && store_task_at(s, b)->adopted, "an adopted task is marked");
    struct task_new dup = {.model_idx = m, .id = "task_a", .submit_ms = 5};
    uint32_t idx;
    TAP_EQ_INT(store_task_insert(s, &dup, &idx), -EEXIST, "the same id twice is refused");
    struct task_new in_ns = {.model_idx = ns->idx, .id = "x", .submit_ms = 5};
    TAP_EQ_INT(store_task_insert(s, &in_ns, &idx), -EISDIR, "a task in a namespace is refused");
    uint32_t counts[TASK_STATE_COUNT];
    store_count_states(s, counts);
    TAP_EQ_INT(counts[TASK_WAITING], 2, "two tasks waiting");
    store_close(s);
    read_file(path, word, sizeof(word));
    TAP_EQ_STR(word, "clean", "the state file says clean after a close");
}

static void test_status_and_observers(const char *dir)
{
    struct store *s = open_ok(dir, false, "reopen for statuses");
    if (!s)
        return;
    struct seen *w = calloc(1, sizeof(*w));
    snprintf(w->db_path, sizeof(w->db_path), "%s/tasks.db", dir);
    w->s = s;
    TAP_EQ_INT(store_observe(s, observe, w), 0, "an observer");
    const struct model *m = store_model_find(s, "flux-2");
    uint32_t a = store_task_find(s, m->idx, "task_a")->idx;

    uint32_t c = insert(s, m->idx, "task_c", false, 3000);
    TAP_CHECK(w->n == 1 && w->kinds[0] == STORE_TASK_ADDED, "insert raises TASK_ADDED");
    TAP_EQ_STR(w->db_state[0], "waiting", "  after the row is committed");
    TAP_EQ_STR(w->mem_state[0], "waiting", "  and in memory");

    struct provider_status ps = status(TASK_GENERATING, "{\"state\":\"processing\"}");
    TAP_EQ_INT(store_task_apply_status(s, a, &ps, 4000), 0, "apply generating");
    TAP_CHECK(w->n == 2 && w->kinds[1] == STORE_TASK_STATE, "  raises TASK_STATE");
    TAP_EQ_STR(w->db_state[1], "generating", "  once the new state is on disk");
    TAP_EQ_STR(w->mem_state[1], "generating", "  and in memory");
    const struct task *t = store_task_at(s, a);
    TAP_CHECK(t->change_ms == 4000 && t->status_ms == 4000 &&
                  strcmp(t->status_json, "{\"state\":\"processing\"}") == 0,
              "  with its change time and status.json");

    uint64_t v = t->version;
    TAP_EQ_INT(store_task_apply_status(s, a, &ps, 4500), 0, "the same status again");
    TAP_CHECK(w->n == 2 && t->version == v, "  changes nothing and tells no one");

    ps = status(TASK_GENERATING, "{\"state\":\"processing\",\"progress\":50}");
    TAP_EQ_INT(store_task_apply_status(s, a, &ps, 5000), 0, "a new status, same state");
    TAP_CHECK(w->n == 3 && w->kinds[2] == STORE_TASK_STATUS, "  raises TASK_STATUS");
    TAP_CHECK(t->change_ms == 4000 && t->status_ms == 5000, "  moves status_ms, not change_ms");

    char *urls[] = {"http://127.0.0.1:9/media/a/0.png", "http://127.0.0.1:9/media/a/1.wav"};
    char *names[] = {NULL, "vocals"};
    ps = status(TASK_SUCCESS, "{\"state\":\"success\"}");
    ps.urls = urls;
    ps.names = names;
    ps.n_urls = 2;
    ps.complete_ms = 5900;
    TAP_EQ_INT(store_task_apply_status(s, a, &ps, 6000), 0, "apply success with two outputs");
    TAP_CHECK(w->n == 4 && w->kinds[3] == STORE_TASK_STATE, "  raises TASK_STATE");
    TAP_EQ_STR(w->db_state[3], "success", "  once success is on disk");
    TAP_CHECK(t->n_urls == 2 && t->files && t->complete_ms == 5900, "  two files, completeTime");
    TAP_EQ_STR(t->files[0].name, "0.png", "  an unnamed output is named by its index and URL");
    TAP_EQ_STR(t->files[1].name, "vocals.wav", "  a named output by its name");
    TAP_CHECK(t->files[0].state == FILE_PENDING && t->files[0].size == -1,
              "  both pending, size unknown");

    ps = status(TASK_GENERATING, "{\"state\":\"processing\"}");
    TAP_EQ_INT(store_task_apply_status(s, a, &ps, 7000), 0, "a provider that flips back");
    TAP_CHECK(t->state == TASK_SUCCESS && w->kinds[w->n - 1] == STORE_TASK_STATUS,
              "  is not believed: still success (only status.json moved)");

    ps = status(TASK_FAILED, "{\"state\":\"failed\"}");
    TAP_EQ_INT(store_task_apply_status(s, c, &ps, 7100), 0, "apply failed with no reason");
    t = store_task_at(s, c);
    TAP_EQ_STR(t->fail_code, "unknown", "  the code is unknown");
    TAP_EQ_STR(t->fail_msg, "the provider gave no reason", "  and the message says so");

    int before = w->n;
    TAP_EQ_INT(store_file_set(s, a, 1, FILE_DONE, "vocals.wav", 1234), 0, "a file done");
    TAP_CHECK(w->n == before + 1 && w->kinds[before] == STORE_FILE_CHANGED,
              "  raises FILE_CHANGED");
    TAP_EQ_INT(store_file_set(s, a, 0, FILE_DOWNLOADING, NULL, -2), 0, "a file downloading");
    TAP_CHECK(store_task_at(s, a)->files[0].size == -1, "  size < -1 keeps the size");
    TAP_EQ_INT(store_file_set(s, a, 5, FILE_DONE, NULL, 1), -ENOENT, "no such file");
    TAP_EQ_INT(store_file_set(s, c, 0, FILE_DONE, NULL, 1), -ENOENT, "a failed task has none");

    store_task_note_poll(s, a, 8000);
    store_task_note_poll(s, a, 8100);
    TAP_EQ_INT(store_task_at(s, a)->polls, 2, "polls counted in memory");
    TAP_EQ_INT(store_flush(s), 0, "flush the poll bookkeeping");

    TAP_EQ_INT(store_task_set_gave_up(s, c, true), 0, "give up on a task");
    TAP_CHECK(w->kinds[w->n - 1] == STORE_TASK_GAVE_UP && store_task_at(s, c)->gave_up,
              "  raises GAVE_UP");
    store_close(s);
    free(w);
}

static void test_reopen(const char *dir)
{
    struct store *s = open_ok(dir, false, "reopen after a restart");
    if (!s)
        return;
    const struct model *m = store_model_find(s, "flux-2");
    TAP_CHECK(m && !m->ns && m->n_tasks == 3, "the model and its three tasks are back");
    TAP_CHECK(store_model_find(s, "fal-ai/flux") && store_model_find(s, "fal-ai/flux")->ns,
              "namespaces are made again from the models below them");
    const struct task *a = m ? store_task_find(s, m->idx, "task_a") : NULL;
    TAP_CHECK(a && a->state == TASK_SUCCESS && a->n_urls == 2, "task_a: success, two URLs");
    if (a) {
        TAP_EQ_STR(a->urls[1], "http://127.0.0.1:9/media/a/1.wav", "  its URLs");
        TAP_EQ_STR(a->files[1].name, "vocals.wav", "  its named output");
        TAP_EQ_INT(a->files[1].size, 1234, "  the size of the file that was whole");
        TAP_EQ_INT(a->files[0].size, -1, "  unknown for the one that was not");
        TAP_EQ_INT(a->polls, 2, "  the flushed poll count");
        TAP_EQ_INT(a->last_poll_ms, 8100, "  and the last poll");
        TAP_EQ_STR(a->status_json, "{\"state\":\"processing\"}", "  the last status.json");
    }
    const struct task *c = m ? store_task_find(s, m->idx, "task_c") : NULL;
    TAP_CHECK(c && c->state == TASK_FAILED && c->gave_up && strcmp(c->fail_code, "unknown") == 0,
              "task_c: failed, given up, with its code");
    const struct task *b = m ? store_task_find(s, m->idx, "task_b") : NULL;
    TAP_CHECK(b && b->adopted && b->input_json == NULL, "task_b: adopted, no input");
    TAP_EQ_INT(m ? m->latest : 0, c ? c->idx : 1, "latest is the newest submitted task again");
    store_close(s);
}

static void test_forget(const char *dir)
{
    struct store *s = open_ok(dir, false, "reopen to forget");
    if (!s)
        return;
    struct seen *w = calloc(1, sizeof(*w));
    snprintf(w->db_path, sizeof(w->db_path), "%s/tasks.db", dir);
    w->s = s;
    store_observe(s, observe, w);
    uint32_t mi = store_model_find(s, "flux-2")->idx;
    uint32_t a = store_task_find(s, mi, "task_a")->idx;
    uint32_t c = store_task_find(s, mi, "task_c")->idx;
    uint32_t b = store_task_find(s, mi, "task_b")->idx;
    TAP_EQ_INT(store_model_set_defaults(s, mi, "{\"mode\":\"pro-text-to-image\"}"), 0,
               "set the model's defaults");
    TAP_EQ_INT(store_model_remove(s, mi), -ENOTEMPTY, "a model with tasks is not removed");

    TAP_EQ_INT(store_task_remove(s, c), 0, "forget the latest task");
    TAP_CHECK(w->n == 1 && w->kinds[0] == STORE_TASK_REMOVED, "  raises TASK_REMOVED");
    TAP_EQ_STR(w->db_state[0], "", "  once its row is gone");
    TAP_CHECK(store_task_at(s, c) == NULL && store_task_find(s, mi, "task_c") == NULL,
              "  gone from memory");
    TAP_EQ_INT(store_model_at(s, mi)->latest, a, "  latest falls back to the one before");
    TAP_EQ_INT(store_task_remove(s, c), -ENOENT, "forgetting it again: ENOENT");
    TAP_EQ_INT(store_task_remove(s, a), 0, "forget task_a");
    TAP_EQ_INT(store_model_at(s, mi)->latest, STORE_NONE, "  no submitted task left: no latest");
    TAP_EQ_INT(store_task_remove(s, b), 0, "forget the adopted one");
    TAP_EQ_INT(store_model_at(s, mi)->n_tasks, 0, "the model has no tasks");

    uint32_t dev = store_model_find(s, "fal-ai/flux/dev")->idx;
    uint32_t ns = store_model_find(s, "fal-ai/flux")->idx;
    TAP_EQ_INT(store_model_remove(s, ns), -ENOTEMPTY, "a namespace with a model is not removed");
    TAP_EQ_INT(store_model_remove(s, dev), 0, "remove the model under it");
    TAP_EQ_INT(store_model_remove(s, ns), 0, "  then the namespace");
    TAP_EQ_INT(store_model_remove(s, mi), 0, "remove the emptied model (with its defaults)");
    TAP_CHECK(store_model_find(s, "flux-2") == NULL, "  gone");
    store_close(s);
    free(w);

    s = open_ok(dir, false, "reopen after forgetting");
    if (!s)
        return;
    uint32_t counts[TASK_STATE_COUNT], total = 0;
    store_count_states(s, counts);
    for (int i = 0; i < TASK_STATE_COUNT; i++)
        total += counts[i];
    TAP_EQ_INT(total, 0, "no task comes back");
    TAP_CHECK(store_model_find(s, "flux-2") == NULL &&
                  store_model_find(s, "fal-ai/flux/dev") == NULL,
              "no model comes back");
    store_close(s);
}

/* A database as genfs 0.1 left it: schema 1, no defaults or request columns. */
static int make_schema1(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/tasks.db", dir);
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(
            db,
            "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
            "CREATE TABLE models(name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,"
            " hist TEXT, provider TEXT);"
            "CREATE TABLE tasks(model TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " state TEXT NOT NULL, adopted INTEGER NOT NULL DEFAULT 0,"
            " gave_up INTEGER NOT NULL DEFAULT 0, input TEXT, prompt TEXT, status_json TEXT,"
            " status_url TEXT, result_url TEXT, urls TEXT, files TEXT, cb_token TEXT,"
            " fail_code TEXT, fail_msg TEXT, submit_ms INTEGER NOT NULL,"
            " change_ms INTEGER NOT NULL, status_ms INTEGER NOT NULL DEFAULT 0,"
            " complete_ms INTEGER NOT NULL DEFAULT 0, last_poll_ms INTEGER NOT NULL DEFAULT 0,"
            " polls INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(model, id));"
            "INSERT INTO meta VALUES('schema', '1');"
            "INSERT INTO models VALUES('nano-banana', 10, '{\"n\":3}', NULL);"
            "INSERT INTO tasks(model, id, seq, state, prompt, urls, files, submit_ms, change_ms)"
            " VALUES('nano-banana', 'task_old', 7, 'success', 'a heron',"
            " '[\"http://127.0.0.1:9/media/old/0.png\"]', '[{\"name\":\"0.png\",\"size\":99}]',"
            " 100, 200);",
            NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static void db_read_schema(const char *dir, char *out, size_t len, int *columns)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/tasks.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    *columns = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto done;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='schema'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA table_info(models)", -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 1);
            *columns += strcmp(name, "defaults") == 0 || strcmp(name, "request") == 0;
        }
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_migrate(const char *dir)
{
    TAP_EQ_INT(make_schema1(dir), 0, "a schema 1 database");
    struct store *s = open_ok(dir, false, "open a schema 1 database");
    if (!s)
        return;
    char schema[16];
    int columns;
    db_read_schema(dir, schema, sizeof(schema), &columns);
    TAP_EQ_STR(schema, "2", "it is schema 2 now");
    TAP_EQ_INT(columns, 2, "  with the defaults and request columns");
    const struct model *m = store_model_find(s, "nano-banana");
    TAP_CHECK(m && m->hist && strcmp(m->hist, "{\"n\":3}") == 0 && !m->defaults && !m->request,
              "its model is kept, with its history and no defaults");
    const struct task *t = m ? store_task_find(s, m->idx, "task_old") : NULL;
    TAP_CHECK(t && t->state == TASK_SUCCESS && t->files && t->files[0].size == 99 &&
                  strcmp(t->prompt, "a heron") == 0,
              "its task is kept, with its file");
    if (m) {
        TAP_EQ_INT(store_model_set_defaults(s, m->idx, "{\"size\":\"1k\"}"), 0,
                   "defaults can be set after the migration");
        TAP_EQ_INT(store_model_set_request(s, m->idx, "{\"provider\":\"auto\"}"), 0,
                   "  and request fields");
    }
    uint32_t idx = STORE_NONE;
    struct task_new tn = {.model_idx = m ? m->idx : 0, .id = "task_new", .submit_ms = 300};
    TAP_EQ_INT(store_task_insert(s, &tn, &idx), 0, "a new task after the migration");
    store_close(s);

    s = open_ok(dir, false, "reopen the migrated database");
    if (!s)
        return;
    db_read_schema(dir, schema, sizeof(schema), &columns);
    TAP_CHECK(strcmp(schema, "2") == 0 && columns == 2, "still schema 2, migrated once");
    m = store_model_find(s, "nano-banana");
    TAP_CHECK(m && m->defaults && strcmp(m->defaults, "{\"size\":\"1k\"}") == 0 && m->request &&
                  strcmp(m->request, "{\"provider\":\"auto\"}") == 0,
              "the defaults and request fields persisted");
    TAP_EQ_INT(m ? m->n_tasks : 0, 2, "both tasks are there");
    /* The sequence continues after the old rows: the new task loads after the old one. */
    const struct task *old = m ? store_task_find(s, m->idx, "task_old") : NULL;
    const struct task *nw = m ? store_task_find(s, m->idx, "task_new") : NULL;
    TAP_CHECK(old && nw && old->idx < nw->idx, "  in the order they were submitted");
    store_close(s);
}

static void test_missing_db(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/tasks.db", dir);
    TAP_EQ_INT(unlink(path), 0, "the database of a used state_dir goes missing");
    struct store *s = NULL;
    char err[1024] = "";
    TAP_EQ_INT(store_open(dir, false, lg, &s, err, sizeof(err)), -EIO, "open refuses");
    TAP_CHECK(strstr(err, "is missing") && strstr(err, "-o fresh"), "  saying what to do: %s", err);
    s = open_ok(dir, true, "-o fresh starts afresh");
    if (!s)
        return;
    TAP_CHECK(store_model_find(s, "nano-banana") == NULL, "  with nothing in it");
    store_close(s);
}

static void rm_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# could not remove %s\n", dir);
}

int main(void)
{
    lg = log_new(LOG_LVL_ERROR, 0);
    char tmpl[] = "/tmp/genfs-test-store-XXXXXX";
    char *base = mkdtemp(tmpl);
    if (!base || !lg) {
        printf("Bail out! cannot make a temporary directory\n");
        return 1;
    }
    char dir[4096], dir1[4096];
    snprintf(dir, sizeof(dir), "%s/state/genfs", base); /* made with its parents */
    snprintf(dir1, sizeof(dir1), "%s/old", base);
    test_create_get(dir);
    test_status_and_observers(dir);
    test_reopen(dir);
    test_forget(dir);
    struct store *s = open_ok(dir1, false, "a second state_dir");
    store_close(s); /* creates it; the schema 1 file replaces its database below */
    char db[4200];
    snprintf(db, sizeof(db), "%s/tasks.db", dir1);
    unlink(db);
    snprintf(db, sizeof(db), "%s/state", dir1);
    unlink(db);
    test_migrate(dir1);
    test_missing_db(dir1);
    rm_tree(base);
    log_free(lg);
    return tap_done();
}
