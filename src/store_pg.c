/* The store's PostgreSQL back end (team mounts): one schema shared by every
 * mount of a store, changes announced with NOTIFY and read back by a cursor
 * on a change sequence, task leases with an expiry, the account's rate. */
#include "store_backend.h"

#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define PG_SCHEMA_VERSION 1
#define PG_LEASE_S 10          /* a lease not renewed for this long is free */
#define PG_LEASE_EVERY_MS 2000 /* leases renewed and free ones taken */
#define PG_LEASE_TAKE 500      /* free tasks taken at each round, at most */
#define PG_RATE_EVERY_MS 1000  /* this mount's weight told, the shares read */
#define PG_RETRY_EVERY_MS 1000 /* a lost connection tried again, at first */
#define PG_RETRY_MAX_MS 8000   /* a connection attempt can block for connect_timeout: back off */
#define PG_SWEEP_EVERY_MS 5000 /* changes read again: commits may land out of order */
#define PG_MOUNT_ALIVE_S 5     /* a mount not heard of for this long has no share */
/* Of the rate, this part is split evenly between live mounts, the rest by
 * demand (tasks leased, submissions queued): an idle mount can still submit. */
#define PG_EVEN_PART 0.25

struct pg_be {
    PGconn *c;
    struct log *log;
    char *conninfo;
    char where[160]; /* host and database, for the log: never the password */
    char me[40];     /* this mount's id: lease owner and writer */
    bool down;
    int64_t cursor;     /* highest change read */
    int64_t sweep_from; /* the cursor as it was at the last sweep */
    int64_t last_lease_ms, last_rate_ms, last_retry_ms, last_sweep_ms;
    int64_t retry_every_ms;
    double weight;
    struct store_rate_share share;
};

static const char pg_be_schema[] =
    "CREATE TABLE IF NOT EXISTS genfs_meta(key text PRIMARY KEY, value text NOT NULL);"
    "CREATE SEQUENCE IF NOT EXISTS genfs_changes;"
    "CREATE TABLE IF NOT EXISTS genfs_models(name text PRIMARY KEY, created_ms bigint NOT NULL,"
    " hist text, provider text, defaults text, request text, writer text,"
    " changed bigint NOT NULL DEFAULT nextval('genfs_changes'));"
    "CREATE TABLE IF NOT EXISTS genfs_tasks("
    " model text NOT NULL, id text NOT NULL, seq bigserial, state text NOT NULL,"
    " adopted boolean NOT NULL DEFAULT false, gave_up boolean NOT NULL DEFAULT false,"
    " input text, prompt text, status_json text, status_url text, result_url text, urls text,"
    " files text, cb_token text, fail_code text, fail_msg text, submit_ms bigint NOT NULL,"
    " change_ms bigint NOT NULL, status_ms bigint NOT NULL DEFAULT 0,"
    " complete_ms bigint NOT NULL DEFAULT 0, last_poll_ms bigint NOT NULL DEFAULT 0,"
    " polls bigint NOT NULL DEFAULT 0, origin text, writer text,"
    " lease_owner text, lease_until timestamptz,"
    " changed bigint NOT NULL DEFAULT nextval('genfs_changes'), PRIMARY KEY(model, id));"
    "CREATE INDEX IF NOT EXISTS genfs_tasks_changed ON genfs_tasks(changed);"
    "CREATE INDEX IF NOT EXISTS genfs_tasks_lease ON genfs_tasks(lease_until)"
    " WHERE state NOT IN ('success', 'failed');"
    "CREATE TABLE IF NOT EXISTS genfs_gone(changed bigint PRIMARY KEY, kind char(1) NOT NULL,"
    " model text NOT NULL, id text, writer text);"
    "CREATE TABLE IF NOT EXISTS genfs_intents(id bigserial PRIMARY KEY, mount text NOT NULL,"
    " model text NOT NULL, input text, created timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS genfs_mounts(id text PRIMARY KEY, seen timestamptz NOT NULL,"
    " weight double precision NOT NULL DEFAULT 1);"
    "CREATE TABLE IF NOT EXISTS genfs_account(key text PRIMARY KEY,"
    " throttle_seq bigint NOT NULL DEFAULT 0, retry_until timestamptz);"
    "INSERT INTO genfs_account(key) VALUES('rate') ON CONFLICT DO NOTHING;"
    /* Every change a reader must see takes a new number and wakes the listeners;
     * poll bookkeeping and leases do not. The numbers are taken under a lock held
     * to the commit, so they become visible in their order and a reader's cursor
     * never passes one still to come. */
    "CREATE OR REPLACE FUNCTION genfs_touch() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN PERFORM pg_advisory_xact_lock(7158863203); NEW.changed := nextval('genfs_changes'); "
    "NEW.writer := current_setting('genfs.writer', "
    "true);"
    " PERFORM pg_notify('genfs', '');"
    " RETURN NEW; END $$;"
    "DROP TRIGGER IF EXISTS genfs_tasks_touch ON genfs_tasks;"
    "CREATE TRIGGER genfs_tasks_touch BEFORE INSERT OR UPDATE OF state, gave_up, status_json,"
    " urls, files, fail_code, fail_msg ON genfs_tasks FOR EACH ROW EXECUTE FUNCTION genfs_touch();"
    "DROP TRIGGER IF EXISTS genfs_models_touch ON genfs_models;"
    "CREATE TRIGGER genfs_models_touch BEFORE INSERT OR UPDATE OF hist, provider, defaults,"
    " request ON genfs_models FOR EACH ROW EXECUTE FUNCTION genfs_touch();";

/* A forgotten task or model leaves a tombstone that other mounts read. */
static const char pg_be_schema_gone[] =
    "CREATE OR REPLACE FUNCTION genfs_forget_task() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN PERFORM pg_advisory_xact_lock(7158863203);"
    " INSERT INTO genfs_gone VALUES(nextval('genfs_changes'), 't', OLD.model, OLD.id,"
    " current_setting('genfs.writer', true)); PERFORM pg_notify('genfs', ''); RETURN OLD; END $$;"
    "CREATE OR REPLACE FUNCTION genfs_forget_model() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN PERFORM pg_advisory_xact_lock(7158863203);"
    " INSERT INTO genfs_gone VALUES(nextval('genfs_changes'), 'm', OLD.name, NULL,"
    " current_setting('genfs.writer', true)); PERFORM pg_notify('genfs', ''); RETURN OLD; END $$;"
    "DROP TRIGGER IF EXISTS genfs_tasks_forget ON genfs_tasks;"
    "CREATE TRIGGER genfs_tasks_forget AFTER DELETE ON genfs_tasks FOR EACH ROW"
    " EXECUTE FUNCTION genfs_forget_task();"
    "DROP TRIGGER IF EXISTS genfs_models_forget ON genfs_models;"
    "CREATE TRIGGER genfs_models_forget AFTER DELETE ON genfs_models FOR EACH ROW"
    " EXECUTE FUNCTION genfs_forget_model();";

static int pg_be_fail(char *err, size_t errlen, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int pg_be_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return e;
}

/* libpq's message on one line. */
static const char *pg_be_msg(struct pg_be *b)
{
    static const char none[] = "no message";
    const char *m = b->c ? PQerrorMessage(b->c) : none;
    return m && m[0] ? m : none;
}

static void pg_be_lost(struct pg_be *b)
{
    if (b->down)
        return;
    b->down = true;
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", pg_be_msg(b));
    msg[strcspn(msg, "\n")] = '\0';
    log_error(b->log,
              "database %s unreachable (%s): serving what is known, writes to new fail "
              "with EIO until it is back; retrying",
              b->where, msg);
}

/* A statement with text parameters: its result, or NULL (logged) on failure. */
static PGresult *pg_be_run(struct pg_be *b, const char *sql, int n, const char *const *params)
{
    if (b->down || !b->c)
        return NULL;
    /* Without parameters, a script of several statements (the schema) may run. */
    PGresult *r =
        n == 0 ? PQexec(b->c, sql) : PQexecParams(b->c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    if (PQstatus(b->c) != CONNECTION_OK) {
        pg_be_lost(b);
    } else {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", r ? PQresultErrorMessage(r) : pg_be_msg(b));
        msg[strcspn(msg, "\n")] = '\0';
        log_error(b->log, "database %s: %s (in: %.60s)", b->where, msg, sql);
    }
    PQclear(r);
    return NULL;
}

static int pg_be_do(struct pg_be *b, const char *sql, int n, const char *const *params)
{
    PGresult *r = pg_be_run(b, sql, n, params);
    if (!r)
        return -EIO;
    PQclear(r);
    return 0;
}

static const char *pg_be_val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int64_t pg_be_num(const PGresult *r, int row, int col)
{
    const char *v = pg_be_val(r, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}

static bool pg_be_bool(const PGresult *r, int row, int col)
{
    const char *v = pg_be_val(r, row, col);
    return v && v[0] == 't';
}

#define PG_TASK_COLS                                                                               \
    "model, id, seq, state, adopted, gave_up, input, prompt, status_json, status_url, urls,"       \
    " fail_code, fail_msg, submit_ms, change_ms, status_ms, complete_ms, last_poll_ms, polls,"     \
    " files, result_url, cb_token, origin = $1, lease_owner = $1 AND lease_until > now(), changed"

static struct store_row_task pg_be_task_row(const PGresult *r, int i)
{
    return (struct store_row_task){.model = pg_be_val(r, i, 0),
                                   .id = pg_be_val(r, i, 1),
                                   .seq = pg_be_num(r, i, 2),
                                   .state = pg_be_val(r, i, 3),
                                   .adopted = pg_be_bool(r, i, 4),
                                   .gave_up = pg_be_bool(r, i, 5),
                                   .input = pg_be_val(r, i, 6),
                                   .prompt = pg_be_val(r, i, 7),
                                   .status_json = pg_be_val(r, i, 8),
                                   .status_url = pg_be_val(r, i, 9),
                                   .urls = pg_be_val(r, i, 10),
                                   .fail_code = pg_be_val(r, i, 11),
                                   .fail_msg = pg_be_val(r, i, 12),
                                   .submit_ms = pg_be_num(r, i, 13),
                                   .change_ms = pg_be_num(r, i, 14),
                                   .status_ms = pg_be_num(r, i, 15),
                                   .complete_ms = pg_be_num(r, i, 16),
                                   .last_poll_ms = pg_be_num(r, i, 17),
                                   .polls = (uint32_t)pg_be_num(r, i, 18),
                                   .files = pg_be_val(r, i, 19),
                                   .result_url = pg_be_val(r, i, 20),
                                   .cb_token = pg_be_val(r, i, 21),
                                   .here = pg_be_bool(r, i, 22),
                                   .leased = pg_be_bool(r, i, 23)};
}

static void pg_be_note_cursor(struct pg_be *b, int64_t changed)
{
    if (changed > b->cursor)
        b->cursor = changed;
}

/* Models then tasks changed after `after` by other mounts (all at start). */
static int pg_be_read_rows(struct pg_be *b, const struct store_rows_cb *cb, int64_t after, bool all)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, after);
    const char *p[] = {b->me, num};
    PGresult *r = pg_be_run(b,
                            "SELECT name, created_ms, hist, provider, defaults, request, changed"
                            " FROM genfs_models WHERE changed > $2 AND ($3 OR writer IS DISTINCT"
                            " FROM $1) ORDER BY created_ms, name",
                            3, (const char *[]){p[0], p[1], all ? "t" : "f"});
    if (!r)
        return -EIO;
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_row_model m = {.name = pg_be_val(r, i, 0),
                                    .created_ms = pg_be_num(r, i, 1),
                                    .hist = pg_be_val(r, i, 2),
                                    .provider = pg_be_val(r, i, 3),
                                    .defaults = pg_be_val(r, i, 4),
                                    .request = pg_be_val(r, i, 5)};
        pg_be_note_cursor(b, pg_be_num(r, i, 6));
        cb->model(cb->arg, &m);
    }
    PQclear(r);
    r = pg_be_run(b,
                  "SELECT " PG_TASK_COLS " FROM genfs_tasks WHERE changed > $2 AND ($3 OR writer"
                  " IS DISTINCT FROM $1) ORDER BY seq",
                  3, (const char *[]){p[0], p[1], all ? "t" : "f"});
    if (!r)
        return -EIO;
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_row_task t = pg_be_task_row(r, i);
        pg_be_note_cursor(b, pg_be_num(r, i, 24));
        if (cb->task(cb->arg, &t) == -ENOMEM)
            break;
    }
    PQclear(r);
    return 0;
}

static int pg_be_read_gone(struct pg_be *b, const struct store_rows_cb *cb, int64_t after)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, after);
    PGresult *r = pg_be_run(b,
                            "SELECT kind, model, id, changed FROM genfs_gone WHERE changed > $2"
                            " AND writer IS DISTINCT FROM $1 ORDER BY changed",
                            2, (const char *[]){b->me, num});
    if (!r)
        return -EIO;
    for (int i = 0; i < PQntuples(r); i++) {
        pg_be_note_cursor(b, pg_be_num(r, i, 3));
        if (pg_be_val(r, i, 0)[0] == 't')
            cb->task_gone(cb->arg, pg_be_val(r, i, 1), pg_be_val(r, i, 2));
        else
            cb->model_gone(cb->arg, pg_be_val(r, i, 1));
    }
    PQclear(r);
    return 0;
}

/* Submissions this mount had recorded but not stored when it stopped (a
 * crash between sending and storing): said once, never sent again. */
static void pg_be_old_intents(struct pg_be *b)
{
    PGresult *r = pg_be_run(b,
                            "DELETE FROM genfs_intents WHERE mount = $1 RETURNING model,"
                            " to_char(created, 'YYYY-MM-DD HH24:MI:SS TZ')",
                            1, (const char *[]){b->me});
    for (int i = 0; r && i < PQntuples(r); i++)
        log_warn(b->log,
                 "%s: a submission sent at %s was not recorded before genfs stopped; it was "
                 "not sent again: check the provider's dashboard and adopt the task with "
                 "mkdir %s/ID if it is there",
                 PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 0));
    PQclear(r);
}

static int pg_be_load(void *h, const struct store_rows_cb *cb)
{
    struct pg_be *b = h;
    pg_be_old_intents(b);
    /* The cursor starts at the newest change so far: what the load reads is whole. */
    PGresult *r = pg_be_run(b, "SELECT last_value FROM genfs_changes", 0, NULL);
    if (!r)
        return -EIO;
    int64_t start = pg_be_num(r, 0, 0);
    PQclear(r);
    int rc = pg_be_read_rows(b, cb, 0, true);
    if (start > b->cursor)
        b->cursor = start;
    b->sweep_from = b->cursor;
    return rc;
}

static int pg_be_model_put(void *h, const char *name, int64_t created_ms, const char *provider)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, created_ms);
    return pg_be_do(h,
                    "INSERT INTO genfs_models(name, created_ms, provider) VALUES($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    3, (const char *[]){name, num, provider});
}

static int pg_be_model_del(void *h, const char *name)
{
    return pg_be_do(h, "DELETE FROM genfs_models WHERE name=$1", 1, (const char *[]){name});
}

static int pg_be_model_set(void *h, const char *name, enum store_model_col col, const char *text)
{
    static const char *const sql[] = {
        [STORE_COL_HIST] = "UPDATE genfs_models SET hist=$1 WHERE name=$2",
        [STORE_COL_PROVIDER] = "UPDATE genfs_models SET provider=$1 WHERE name=$2",
        [STORE_COL_DEFAULTS] = "UPDATE genfs_models SET defaults=$1 WHERE name=$2",
        [STORE_COL_REQUEST] = "UPDATE genfs_models SET request=$1 WHERE name=$2",
    };
    return pg_be_do(h, sql[col], 2, (const char *[]){text, name});
}

/* The task and the end of its intent in one transaction; the lease is ours. */
static int pg_be_task_insert(void *h, const struct store_row_task *r, int64_t intent)
{
    struct pg_be *b = h;
    char sub[32], lease[32], in[32];
    snprintf(sub, sizeof(sub), "%" PRId64, r->submit_ms);
    snprintf(lease, sizeof(lease), "%d seconds", PG_LEASE_S);
    snprintf(in, sizeof(in), "%" PRId64, intent);
    PGresult *res = pg_be_run(
        b,
        "WITH done AS (DELETE FROM genfs_intents WHERE id = $13::bigint)"
        " INSERT INTO genfs_tasks(model, id, state, adopted, input, prompt, status_url,"
        " submit_ms, change_ms, status_ms, result_url, cb_token, origin, lease_owner, lease_until)"
        " VALUES($1, $2, $3, $4::boolean, $5, $6, $7, $8, $8, $8, $9, $10, $11, $11,"
        " now() + $12::interval) ON CONFLICT DO NOTHING RETURNING seq",
        13,
        (const char *[]){r->model, r->id, r->state, r->adopted ? "t" : "f", r->input, r->prompt,
                         r->status_url, sub, r->result_url, r->cb_token, b->me, lease, in});
    if (!res)
        return -EIO;
    int n = PQntuples(res);
    PQclear(res);
    return n == 1 ? 0 : -EEXIST;
}

static int pg_be_task_update(void *h, const struct store_row_task *r)
{
    char ms[5][32];
    snprintf(ms[0], 32, "%" PRId64, r->change_ms);
    snprintf(ms[1], 32, "%" PRId64, r->status_ms);
    snprintf(ms[2], 32, "%" PRId64, r->complete_ms);
    snprintf(ms[3], 32, "%" PRId64, r->last_poll_ms);
    snprintf(ms[4], 32, "%" PRIu32, r->polls);
    return pg_be_do(h,
                    "UPDATE genfs_tasks SET state=$1, gave_up=$2::boolean, status_json=$3,"
                    " urls=$4, fail_code=$5, fail_msg=$6, change_ms=$7, status_ms=$8,"
                    " complete_ms=$9, last_poll_ms=$10, polls=$11 WHERE model=$12 AND id=$13",
                    13,
                    (const char *[]){r->state, r->gave_up ? "t" : "f", r->status_json, r->urls,
                                     r->fail_code, r->fail_msg, ms[0], ms[1], ms[2], ms[3], ms[4],
                                     r->model, r->id});
}

static int pg_be_task_files(void *h, const char *model, const char *id, const char *files)
{
    return pg_be_do(h, "UPDATE genfs_tasks SET files=$1 WHERE model=$2 AND id=$3", 3,
                    (const char *[]){files, model, id});
}

static int pg_be_task_del(void *h, const char *model, const char *id)
{
    return pg_be_do(h, "DELETE FROM genfs_tasks WHERE model=$1 AND id=$2", 2,
                    (const char *[]){model, id});
}

static int pg_be_polls_flush(void *h, const struct store_poll_row *rows, size_t n)
{
    struct pg_be *b = h;
    if (n == 0)
        return 0;
    if (pg_be_do(b, "BEGIN", 0, NULL) < 0)
        return -EIO;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char ms[32], polls[32];
        snprintf(ms, sizeof(ms), "%" PRId64, rows[i].last_poll_ms);
        snprintf(polls, sizeof(polls), "%" PRIu32, rows[i].polls);
        rc =
            pg_be_do(b, "UPDATE genfs_tasks SET last_poll_ms=$1, polls=$2 WHERE model=$3 AND id=$4",
                     4, (const char *[]){ms, polls, rows[i].model, rows[i].id});
    }
    int crc = pg_be_do(b, rc == 0 ? "COMMIT" : "ROLLBACK", 0, NULL);
    return rc < 0 ? rc : crc;
}

static int pg_be_intent_add(void *h, const char *model, const char *input, int64_t *intent)
{
    struct pg_be *b = h;
    PGresult *r = pg_be_run(b,
                            "INSERT INTO genfs_intents(mount, model, input) VALUES($1, $2, $3)"
                            " RETURNING id",
                            3, (const char *[]){b->me, model, input});
    if (!r)
        return -EIO;
    *intent = pg_be_num(r, 0, 0);
    PQclear(r);
    return 0;
}

static void pg_be_intent_drop(void *h, int64_t intent)
{
    char in[32];
    snprintf(in, sizeof(in), "%" PRId64, intent);
    pg_be_do(h, "DELETE FROM genfs_intents WHERE id = $1::bigint", 1, (const char *[]){in});
}

/* Renews this mount's leases and takes free or expired ones, whole rows
 * back so a task taken over is known here before it is polled. */
static void pg_be_leases(struct pg_be *b, const struct store_rows_cb *cb)
{
    char lease[32], take[16];
    snprintf(lease, sizeof(lease), "%d seconds", PG_LEASE_S);
    snprintf(take, sizeof(take), "%d", PG_LEASE_TAKE);
    PGresult *r = pg_be_run(b,
                            "UPDATE genfs_tasks SET lease_until = now() + $2::interval"
                            " WHERE lease_owner = $1 AND state NOT IN ('success', 'failed')"
                            " RETURNING model, id",
                            2, (const char *[]){b->me, lease});
    if (!r)
        return;
    for (int i = 0; i < PQntuples(r); i++)
        cb->lease(cb->arg, pg_be_val(r, i, 0), pg_be_val(r, i, 1), true);
    PQclear(r);
    r = pg_be_run(b,
                  "UPDATE genfs_tasks SET lease_owner = $1, lease_until = now() + $2::interval"
                  " WHERE (model, id) IN (SELECT model, id FROM genfs_tasks"
                  " WHERE state NOT IN ('success', 'failed')"
                  " AND (lease_until IS NULL OR lease_until < now())"
                  " ORDER BY seq LIMIT $3::int FOR UPDATE SKIP LOCKED) RETURNING " PG_TASK_COLS,
                  3, (const char *[]){b->me, lease, take});
    if (!r)
        return;
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_row_task t = pg_be_task_row(r, i);
        t.leased = true;
        if (i == 0)
            log_info(b->log, "took over %d task%s whose lease had run out (%s/%s first)",
                     PQntuples(r), PQntuples(r) == 1 ? "" : "s", t.model, t.id);
        cb->task(cb->arg, &t);
        cb->lease(cb->arg, t.model, t.id, true);
    }
    PQclear(r);
}

static void pg_be_rate_report(void *h, double weight, bool throttled, int64_t retry_after_ms)
{
    struct pg_be *b = h;
    b->weight = weight;
    if (!throttled)
        return;
    char ms[32];
    snprintf(ms, sizeof(ms), "%" PRId64, retry_after_ms > 0 ? retry_after_ms : 0);
    PGresult *r = pg_be_run(b,
                            "UPDATE genfs_account SET throttle_seq = throttle_seq + 1,"
                            " retry_until = GREATEST(retry_until, now() + $1::bigint *"
                            " interval '1 millisecond') WHERE key = 'rate' RETURNING throttle_seq",
                            1, (const char *[]){ms});
    if (!r)
        return;
    /* The mount that saw the 429 has already slowed: it does not count it twice. */
    b->share.throttle_seq = (uint64_t)pg_be_num(r, 0, 0);
    PQclear(r);
}

/* This mount's weight told; its share of the rate and the account's last 429 read. */
static void pg_be_rate_sync(struct pg_be *b)
{
    char w[32], alive[32];
    snprintf(w, sizeof(w), "%.3f", b->weight > 0 ? b->weight : 1.0);
    snprintf(alive, sizeof(alive), "%d seconds", PG_MOUNT_ALIVE_S);
    if (pg_be_do(b,
                 "INSERT INTO genfs_mounts(id, seen, weight) VALUES($1, now(), $2::float8)"
                 " ON CONFLICT(id) DO UPDATE SET seen = now(), weight = EXCLUDED.weight",
                 2, (const char *[]){b->me, w}) < 0)
        return;
    PGresult *r = pg_be_run(
        b,
        "SELECT (SELECT sum(weight) FROM genfs_mounts WHERE seen > now() - $1::interval),"
        " (SELECT count(*) FROM genfs_mounts WHERE seen > now() - $1::interval),"
        " throttle_seq, GREATEST(0, extract(epoch FROM retry_until - now()) * 1000)::bigint"
        " FROM genfs_account WHERE key = 'rate'",
        1, (const char *[]){alive});
    if (!r)
        return;
    double total = PQntuples(r) ? strtod(PQgetvalue(r, 0, 0), NULL) : 0;
    double mounts = PQntuples(r) ? (double)pg_be_num(r, 0, 1) : 1;
    double mine = b->weight > 0 ? b->weight : 1.0;
    b->share.fraction = total > mine && mounts > 1
                            ? PG_EVEN_PART / mounts + (1 - PG_EVEN_PART) * mine / total
                            : 1.0;
    if (PQntuples(r)) {
        b->share.throttle_seq = (uint64_t)pg_be_num(r, 0, 2);
        b->share.retry_after_ms = pg_be_num(r, 0, 3);
    }
    PQclear(r);
}

static void pg_be_rate_read(void *h, struct store_rate_share *out)
{
    struct pg_be *b = h;
    *out = b->share;
}

static int pg_be_wait_fd(void *h)
{
    struct pg_be *b = h;
    return b->c && !b->down ? PQsocket(b->c) : -1;
}

/* Connects and listens; on failure libpq's message says why (pg_be_msg). */
static int pg_be_connect(struct pg_be *b)
{
    if (b->c)
        PQfinish(b->c);
    /* The connection string is libpq's own (URL or key=value); a password in
     * it is refused at open: secrets come from PGPASSFILE or ~/.pgpass. */
    const char *keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
    const char *vals[] = {b->conninfo, "3", "genfs", NULL};
    b->c = PQconnectdbParams(keys, vals, 1);
    if (!b->c || PQstatus(b->c) != CONNECTION_OK) {
        b->down = true;
        return -EIO;
    }
    b->down = false;
    char set[96];
    snprintf(set, sizeof(set), "SET genfs.writer = '%s'", b->me);
    if (pg_be_do(b, set, 0, NULL) < 0 || pg_be_do(b, "LISTEN genfs", 0, NULL) < 0)
        return -EIO;
    return 0;
}

/* Creates the schema or checks its version, under a lock so two mounts
 * starting together do not race. */
static int pg_be_migrate(struct pg_be *b, char *err, size_t errlen)
{
    if (pg_be_do(b, "BEGIN", 0, NULL) < 0 ||
        pg_be_do(b, "SELECT pg_advisory_xact_lock(7158863202)", 0, NULL) < 0 ||
        pg_be_do(b,
                 "CREATE TABLE IF NOT EXISTS genfs_meta(key text PRIMARY KEY, value text NOT NULL)",
                 0, NULL) < 0)
        return pg_be_fail(err, errlen, -EIO, "database %s: cannot read its schema: %s", b->where,
                          pg_be_msg(b));
    PGresult *r = pg_be_run(b, "SELECT value FROM genfs_meta WHERE key = 'schema'", 0, NULL);
    int have = r && PQntuples(r) ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    if (have > PG_SCHEMA_VERSION) {
        pg_be_do(b, "ROLLBACK", 0, NULL);
        return pg_be_fail(err, errlen, -EPROTO,
                          "database %s has schema %d, newer than this genfs knows (%d): upgrade "
                          "genfs on this machine",
                          b->where, have, PG_SCHEMA_VERSION);
    }
    char ver[160];
    snprintf(ver, sizeof(ver),
             "INSERT INTO genfs_meta VALUES('schema', '%d') ON CONFLICT(key) DO UPDATE SET "
             "value = EXCLUDED.value",
             PG_SCHEMA_VERSION);
    if ((have < PG_SCHEMA_VERSION &&
         (pg_be_do(b, pg_be_schema, 0, NULL) < 0 || pg_be_do(b, pg_be_schema_gone, 0, NULL) < 0 ||
          pg_be_do(b, ver, 0, NULL) < 0)) ||
        pg_be_do(b, "COMMIT", 0, NULL) < 0) {
        pg_be_do(b, "ROLLBACK", 0, NULL);
        return pg_be_fail(err, errlen, -EIO,
                          "database %s: cannot create genfs's tables (see the log): the role "
                          "needs CREATE on the database's schema",
                          b->where);
    }
    if (have < PG_SCHEMA_VERSION)
        log_info(b->log, "database %s: created genfs's tables (schema %d)", b->where,
                 PG_SCHEMA_VERSION);
    return 0;
}

/* The connection back after it was lost: the caller then rewrites what it
 * could not store and reads what it missed. Returns 1 when it came back. */
static int pg_be_retry(struct pg_be *b, int64_t now_ms)
{
    if (now_ms - b->last_retry_ms < b->retry_every_ms)
        return 0;
    b->last_retry_ms = now_ms;
    if (pg_be_connect(b) < 0) {
        b->down = true;
        b->retry_every_ms =
            b->retry_every_ms * 2 > PG_RETRY_MAX_MS ? PG_RETRY_MAX_MS : b->retry_every_ms * 2;
        return 0;
    }
    b->retry_every_ms = PG_RETRY_EVERY_MS;
    log_info(b->log, "database %s is back: catching up", b->where);
    b->last_lease_ms = b->last_rate_ms = 0;
    return 1;
}

static int pg_be_sync(void *h, const struct store_rows_cb *cb, int64_t now_ms)
{
    struct pg_be *b = h;
    int back = 0;
    if (b->down && !(back = pg_be_retry(b, now_ms)))
        return 0;
    bool woken = back;
    if (!PQconsumeInput(b->c)) {
        pg_be_lost(b);
        return 0;
    }
    for (PGnotify *n; (n = PQnotifies(b->c)); PQfreemem(n))
        woken = true;
    if (now_ms - b->last_sweep_ms >= PG_SWEEP_EVERY_MS) {
        /* Numbers are taken before commit: one may land below the cursor. */
        int64_t from = b->sweep_from;
        b->sweep_from = b->cursor;
        b->last_sweep_ms = now_ms;
        pg_be_read_rows(b, cb, from, false);
        pg_be_read_gone(b, cb, from);
    } else if (woken) {
        int64_t from = b->cursor;
        pg_be_read_rows(b, cb, from, false);
        pg_be_read_gone(b, cb, from);
    }
    if (now_ms - b->last_lease_ms >= PG_LEASE_EVERY_MS) {
        b->last_lease_ms = now_ms;
        pg_be_leases(b, cb);
    }
    if (now_ms - b->last_rate_ms >= PG_RATE_EVERY_MS) {
        b->last_rate_ms = now_ms;
        pg_be_rate_sync(b);
    }
    return back;
}

static void pg_be_close(void *h)
{
    struct pg_be *b = h;
    if (!b)
        return;
    if (b->c && !b->down) {
        /* Leases and the share go at once: the other mounts need not wait them out. */
        pg_be_do(b,
                 "UPDATE genfs_tasks SET lease_owner = NULL, lease_until = NULL"
                 " WHERE lease_owner = $1",
                 1, (const char *[]){b->me});
        pg_be_do(b, "DELETE FROM genfs_mounts WHERE id = $1", 1, (const char *[]){b->me});
    }
    if (b->c)
        PQfinish(b->c);
    if (b->conninfo)
        explicit_bzero(b->conninfo, strlen(b->conninfo));
    free(b->conninfo);
    free(b);
}

static const struct store_backend_ops pg_be_ops = {
    .load = pg_be_load,
    .model_put = pg_be_model_put,
    .model_del = pg_be_model_del,
    .model_set = pg_be_model_set,
    .task_insert = pg_be_task_insert,
    .task_update = pg_be_task_update,
    .task_files = pg_be_task_files,
    .task_del = pg_be_task_del,
    .polls_flush = pg_be_polls_flush,
    .close = pg_be_close,
    .wait_fd = pg_be_wait_fd,
    .sync = pg_be_sync,
    .intent_add = pg_be_intent_add,
    .intent_drop = pg_be_intent_drop,
    .rate_report = pg_be_rate_report,
    .rate_read = pg_be_rate_read,
};

/* This mount's id, kept in STATE_DIR/mount-id: `latest` and the lease owner
 * stay this mount's across restarts. */
static int pg_be_mount_id(const char *state_dir, char *id, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/mount-id", state_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        bool ok = fgets(id, (int)len, f) != NULL;
        fclose(f);
        id[strcspn(id, "\n")] = '\0';
        if (ok && strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32)
            return 0;
    }
    unsigned char raw[16];
    if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
        return -EIO;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(id + 2 * i, len - 2 * i, "%02x", raw[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = dprintf(fd, "%s\n", id) > 0 && fsync(fd) == 0 ? 0 : -EIO;
    close(fd);
    return rc;
}

/* A password in the connection string would sit in argv or the config:
 * libpq reads it from PGPASSFILE or ~/.pgpass instead. */
static bool pg_be_has_password(const char *conninfo)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    if (!opts) {
        PQfreemem(msg);
        return false;
    }
    bool has = false;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            has = true;
    PQconninfoFree(opts);
    return has;
}

int store_pg_open(const char *conninfo, const char *state_dir, struct log *lg,
                  struct store_backend *out, char *err, size_t errlen)
{
    if (pg_be_has_password(conninfo))
        return pg_be_fail(err, errlen, -EINVAL,
                          "-o store: the connection string holds a password; put it in "
                          "~/.pgpass or the file PGPASSFILE names (mode 0600) instead");
    struct pg_be *b = calloc(1, sizeof(*b));
    if (!b || !(b->conninfo = strdup(conninfo))) {
        free(b);
        return pg_be_fail(err, errlen, -ENOMEM, "out of memory");
    }
    b->log = lg;
    b->weight = 1;
    b->share.fraction = 1;
    b->retry_every_ms = PG_RETRY_EVERY_MS;
    int rc = pg_be_mount_id(state_dir, b->me, sizeof(b->me));
    if (rc < 0) {
        pg_be_close(b);
        return pg_be_fail(err, errlen, rc, "cannot keep %s/mount-id: %s", state_dir, strerror(-rc));
    }
    rc = pg_be_connect(b);
    snprintf(b->where, sizeof(b->where), "%s/%s", b->c && PQhost(b->c) ? PQhost(b->c) : "?",
             b->c && PQdb(b->c) ? PQdb(b->c) : "?");
    if (rc < 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", pg_be_msg(b));
        msg[strcspn(msg, "\n")] = '\0';
        pg_be_close(b);
        return pg_be_fail(err, errlen, -EIO,
                          "cannot connect to the task database (-o store): %s: check that it "
                          "runs and the connection string",
                          msg);
    }
    if ((rc = pg_be_migrate(b, err, errlen)) < 0) {
        pg_be_close(b);
        return rc;
    }
    log_info(lg, "tasks in PostgreSQL %s (team mount %.8s)", b->where, b->me);
    out->ops = &pg_be_ops;
    out->h = b;
    return 0;
}
