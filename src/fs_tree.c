/* The tree: inode numbers to nodes, attributes (fs_stat), lookup, readdir, readlink,
 * setattr, mkdir and rmdir, and the names genfs refuses. */
#include "fs_internal.h"

#include "announcer.h"
#include "cachepath.h"
#include "clock.h"
#include "input.h"
#include "media.h"
#include "names.h"
#include "opts.h"
#include "writer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A task's own files by kind (NULL: none, or files/ which is listed where it exists). */
static const char *const task_file_names[TK_LAST + 1] = {
    [TK_STATE] = "state",   [TK_RESULT] = "result",     [TK_ERROR] = "error",
    [TK_PROMPT] = "prompt", [TK_INPUT] = "input.json",  [TK_STATUS] = "status.json",
    [TK_CTL] = "ctl",       [TK_PROGRESS] = "progress", [TK_LOGS] = "logs",
};
static const fuse_ino_t fixed_files[ROOT_COUNT] = {
    [ROOT_README] = INO_README,         [ROOT_EVENTS] = INO_EVENTS,
    [ROOT_EVENTS_LOG] = INO_EVENTS_LOG, [ROOT_EVENTS_LOG1] = INO_EVENTS_LOG1,
    [ROOT_STATS] = INO_STATS,           [ROOT_LOG] = INO_LOG,
};
/* ---- content of files ---- */

const char readme_text[] =
    "genfs: hosted AI generation as files\n"
    "\n"
    "  echo 'a red fox in snow' > MODEL/new    submit a task (the close returns once accepted)\n"
    "  echo '{\"mode\": \"x\"}' > MODEL/defaults.json   fields merged under every input\n"
    "  cat MODEL/latest/result                 wait for it, print the result URLs\n"
    "  cat MODEL/ID/state                      waiting|queuing|generating|success|failed\n"
    "  cat MODEL/ID/error                      \"code: message\" once failed\n"
    "  cat events                              one line per state change, from now on\n"
    "  tail -n 20 -f events.log                the same lines as a log, with their history\n"
    "                                          (tail and less need it: events never ends)\n"
    "  cat stats                               engine figures (JSON)\n"
    "  cat log                                 the last 200 log lines\n"
    "  mkdir MODEL                             add a model directory\n"
    "  mkdir MODEL/ID                          adopt a task submitted elsewhere\n"
    "  rmdir MODEL/ID                          forget a task (it is not canceled)\n"
    "  echo cancel > MODEL/ID/ctl              cancel it at the provider (cat ctl: commands)\n"
    "  cat MODEL/ID/progress                   percentage, queue, elapsed, estimated time left\n"
    "  cat MODEL/ID/logs                       the provider's logs, as of the last poll\n"
    "\n"
    "A JSON object written to new is sent as the whole input. To get the id on the\n"
    "same descriptor: exec 3<>MODEL/new; echo prompt >&3; read id <&3\n"
    "Reading result blocks until the task ends (Ctrl-C works); it fails with EIO\n"
    "when the task failed and ETIMEDOUT when it is overdue (genfs keeps polling).\n"
    "In a JSON input, \"@photo.jpg\" is a local file, uploaded and sent as its URL:\n"
    "  echo '{\"prompt\": \"make it snowy\", \"image_urls\": [\"@photo.jpg\"]}' > MODEL/new\n"
    "events.log is kept across restarts; at 8 MiB it becomes events.log.1 and starts\n"
    "again. Its times only increase: a script that saw up to time T resumes with\n"
    "  cat events.log.1 events.log | awk -v t=T '$1 > t'\n";
const size_t readme_len = sizeof(readme_text) - 1;

/* A model directory's own files, in listing order (directory offset 3 + i); lookup and
 * readdir both read this table. */
struct model_file {
    const char *name;
    enum model_kind kind;
    mode_t type;
};
static const struct model_file model_files[] = {
    {"new", MK_NEW, S_IFREG},
    {"latest", MK_LATEST, S_IFLNK},
    {".provider", MK_PROVIDER, S_IFREG},
    {"defaults.json", MK_DEFAULTS, S_IFREG},
    {"request.json", MK_REQUEST, S_IFREG},
};

static const struct model_file *model_file_named(const char *name)
{
    for (size_t i = 0; i < sizeof(model_files) / sizeof(model_files[0]); i++)
        if (strcmp(name, model_files[i].name) == 0)
            return &model_files[i];
    return NULL;
}

/* latest exists once the model has a task. */
static bool model_file_shown(const struct model *m, const struct model_file *mf)
{
    return mf->kind != MK_LATEST || m->latest != STORE_NONE;
}

/* A duration as progress shows it: "8.4s" under a minute, "3m05s", "2h07m". */
static void progress_duration(FILE *m, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms < 60000)
        fprintf(m, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        fprintf(m, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000 % 60));
    else
        fprintf(m, "%dh%02dm", (int)(ms / 3600000), (int)(ms / 60000 % 60));
}

/* progress: "STATE [P%] [position N] elapsed D [left ~D]": the provider's percentage and
 * queue position, the time since submission, and the median time left of the model's
 * learned durations (sched_hist_median_left) while it runs. */
static void progress_line(struct fs *f, FILE *m, const struct task *t)
{
    bool final = task_state_final(t->state);
    fprintf(m, "%s", task_state_name(t->state));
    if (t->state == TASK_SUCCESS)
        fprintf(m, " 100%%");
    else if (!final && t->progress >= 0)
        fprintf(m, " %d%%", t->progress);
    if (!final && t->queue_position >= 0 && t->state != TASK_GENERATING)
        fprintf(m, " position %d", t->queue_position);
    int64_t end =
        final ? (t->complete_ms > t->submit_ms ? t->complete_ms : t->change_ms) : clock_now_ms();
    fprintf(m, " elapsed ");
    progress_duration(m, end - t->submit_ms);
    const struct model *md = store_model_at(f->store, t->model_idx);
    struct sched_hist h;
    if (!final && md && md->hist && sched_hist_decode(&h, md->hist) == 0) {
        int64_t left = sched_hist_median_left(&h, end - t->submit_ms);
        if (left >= 0) {
            fprintf(m, " left ~");
            progress_duration(m, left);
        }
    }
    fprintf(m, "\n");
}

/* Text of a task file, malloc'd. Caller holds the store read lock. */
char *task_file_text(struct fs *f, const struct task *t, enum task_kind k, size_t *len)
{
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    if (!m)
        return NULL;
    switch (k) {
    case TK_STATE:
        fprintf(m, "%s\n", task_state_name(t->state));
        break;
    case TK_RESULT:
        /* An inline output (data: URI, text) has no URL worth showing: its file's path. */
        if (t->state == TASK_SUCCESS)
            for (size_t i = 0; i < t->n_urls; i++)
                fprintf(m, media_is_data_uri(t->urls[i]) ? "files/%s\n" : "%s\n",
                        media_is_data_uri(t->urls[i]) ? t->files[i].name : t->urls[i]);
        break;
    case TK_ERROR:
        if (t->state == TASK_FAILED)
            fprintf(m, "%s: %s\n", t->fail_code ? t->fail_code : "unknown",
                    t->fail_msg ? t->fail_msg : "");
        break;
    case TK_PROMPT:
        if (t->prompt && *t->prompt)
            fprintf(m, "%s\n", t->prompt);
        break;
    case TK_INPUT:
        if (t->input_json)
            fprintf(m, "%s\n", t->input_json);
        break;
    case TK_STATUS:
        if (t->status_json)
            fprintf(m, "%s\n", t->status_json);
        break;
    case TK_CTL:
        /* The commands that do something now. */
        if (!task_state_final(t->state))
            fprintf(m, "%spoll\n", engine_can_cancel(f->engine, t->model_idx) ? "cancel\n" : "");
        break;
    case TK_PROGRESS:
        progress_line(f, m, t);
        break;
    case TK_LOGS:
        if (t->logs && *t->logs)
            fprintf(m, t->logs[strlen(t->logs) - 1] == '\n' ? "%s" : "%s\n", t->logs);
        break;
    default:
        break;
    }
    fclose(m);
    *len = n;
    return out;
}

static int64_t task_file_mtime(const struct task *t, enum task_kind k)
{
    switch (k) {
    case TK_STATE:
    case TK_DIR:
        return t->change_ms;
    case TK_RESULT:
    case TK_ERROR:
        return task_state_final(t->state) ? t->change_ms : t->submit_ms;
    case TK_STATUS:
    case TK_LOGS:
        return t->status_ms;
    case TK_PROGRESS:
        return t->status_ms > t->change_ms ? t->status_ms : t->change_ms;
    default:
        return t->submit_ms;
    }
}

static void set_time(struct stat *st, int64_t ms)
{
    st->st_mtim.tv_sec = ms / 1000;
    st->st_mtim.tv_nsec = (ms % 1000) * 1000000;
    st->st_ctim = st->st_mtim;
    st->st_atim = st->st_mtim;
}

/* files/<n> is listed, and its stat answered at once, when it is whole, or known
 * to be from an earlier whole download (since evicted from the cache, or not yet
 * found there after a remount): its size is then the real one. Before that a
 * lookup by name finds it, but a stat waits (SPEC 3: listed once whole). */
bool file_listed(const struct task_file *tf)
{
    return tf->state == FILE_DONE || (tf->size >= 0 && tf->state != FILE_EXPIRED);
}

/* The stat_* fill st for their node with the store read-locked: 0 or -ENOENT. */
static int stat_root(struct fs *f, struct stat *st)
{
    st->st_mode = S_IFDIR | 0755;
    uint32_t models = 0;
    for (uint32_t i = 0; i < store_model_slots(f->store); i++) {
        const struct model *m = store_model_at(f->store, i);
        models += m && m->parent == STORE_NONE;
    }
    st->st_nlink = 2 + models;
    set_time(st, f->start_ms);
    return 0;
}

static int stat_fixed(struct fs *f, struct node n, struct stat *st)
{
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    if (n.fixed == INO_README) {
        st->st_size = sizeof(readme_text) - 1;
        set_time(st, f->start_ms);
    } else if (n.fixed == INO_EVENTS) {
        int64_t ms = eventlog_stream_mtime(f->evlog);
        set_time(st, ms ? ms : f->start_ms);
    } else if (n.fixed == INO_EVENTS_LOG || n.fixed == INO_EVENTS_LOG1) {
        int64_t ms;
        eventlog_stat(f->evlog, n.fixed == INO_EVENTS_LOG1 ? EVENTLOG_OLD : EVENTLOG_CURRENT,
                      &st->st_size, &ms);
        set_time(st, ms ? ms : f->start_ms);
    } else if (n.fixed == INO_LOG) {
        size_t len = 0;
        int64_t mt = 0;
        free(log_ring_text(f->log, &len, &mt));
        st->st_size = (off_t)len;
        set_time(st, mt);
    } else {
        char *stats = engine_stats_json(f->engine);
        st->st_size = stats ? (off_t)strlen(stats) : 0;
        free(stats);
        set_time(st, clock_now_ms());
    }
    return 0;
}

static int stat_model(struct fs *f, struct node n, struct stat *st)
{
    const struct model *m = store_model_at(f->store, n.idx);
    if (!m)
        return -ENOENT;
    set_time(st, m->mtime_ms);
    if (n.kind == MK_DIR) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2 + (m->ns ? m->n_children : m->n_tasks);
    } else if (m->ns) {
        return -ENOENT;
    } else if (n.kind == MK_PROVIDER) {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t)strlen(engine_provider_name(f->engine, n.idx)) + 1;
    } else if (n.kind == MK_DEFAULTS || n.kind == MK_REQUEST) {
        const char *json = n.kind == MK_DEFAULTS ? m->defaults : m->request;
        st->st_mode = S_IFREG | 0644;
        st->st_nlink = 1;
        st->st_size = (off_t)strlen(json ? json : "{}") + 1;
    } else if (n.kind == MK_NEW) {
        st->st_mode = S_IFREG | 0666;
        st->st_nlink = 1;
        /* Buffered writers (stdio, Python, cp, cat) size their writes by it: an
         * input up to the limit goes out in one write(2). */
        st->st_blksize = INPUT_MAX_BYTES;
    } else {
        const struct task *t = m->latest != STORE_NONE ? store_task_at(f->store, m->latest) : NULL;
        if (!t)
            return -ENOENT;
        st->st_mode = S_IFLNK | 0777;
        st->st_nlink = 1;
        st->st_size = (off_t)strlen(t->id);
        set_time(st, t->submit_ms);
    }
    return 0;
}

static int stat_task(struct fs *f, struct node n, struct stat *st)
{
    const struct task *t = store_task_at(f->store, n.idx);
    if (!t)
        return -ENOENT;
    set_time(st, task_file_mtime(t, (enum task_kind)n.kind));
    /* Directories are 0755: their owner can remove them (rm -r) and what they hold, so a
     * copy (cp -r, cp -a, rsync -a, tar) keeps a mode its owner can rm -r. Creating in them
     * is refused by genfs itself. */
    if (n.kind == TK_DIR) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = t->files ? 3 : 2;
    } else if (n.kind == TK_FILES) {
        if (!t->files)
            return -ENOENT;
        set_time(st, t->change_ms);
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else if (n.kind >= TK_FILE0) {
        uint32_t fn = (uint32_t)(n.kind - TK_FILE0);
        if (!t->files || fn >= t->n_urls || t->files[fn].state == FILE_EXPIRED)
            return -ENOENT;
        set_time(st, t->change_ms);
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = t->files[fn].size > 0 ? t->files[fn].size : 0;
    } else {
        /* ctl takes commands from the owner (others are refused in open). */
        st->st_mode = S_IFREG | (n.kind == TK_CTL ? 0644 : 0444);
        st->st_nlink = 1;
        size_t len = 0;
        free(task_file_text(f, t, (enum task_kind)n.kind, &len));
        st->st_size = (off_t)len;
    }
    return 0;
}

/* Fills st for ino; 0 or -ENOENT. Takes the store lock itself. */
int fs_stat(struct fs *f, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_blksize = 4096;
    struct node n = node_of(ino);
    store_rdlock(f->store);
    int rc = n.type == N_ROOT    ? stat_root(f, st)
             : n.type == N_FIXED ? stat_fixed(f, n, st)
             : n.type == N_MODEL ? stat_model(f, n, st)
             : n.type == N_TASK  ? stat_task(f, n, st)
                                 : -ENOENT;
    store_unlock(f->store);
    st->st_blocks = (st->st_size + 511) / 512;
    return rc;
}

double attr_timeout_for(struct fs *f, fuse_ino_t ino)
{
    /* stats, log and the events files change all the time without a notification. */
    if (ino == INO_STATS || ino == INO_LOG || ino == INO_EVENTS || ino == INO_EVENTS_LOG ||
        ino == INO_EVENTS_LOG1)
        return 0.0;
    /* A result file not yet whole: its size will change, and a reader that
     * opens it just as it becomes whole must not see the old size. */
    struct node n = node_of(ino);
    if (n.type == N_TASK && n.kind >= TK_FILE0) {
        bool whole = false;
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, n.idx);
        uint32_t fn = (uint32_t)(n.kind - TK_FILE0);
        if (t && t->files && fn < t->n_urls)
            whole = t->files[fn].state == FILE_DONE;
        store_unlock(f->store);
        return whole ? ATTR_TIMEOUT : 0.0;
    }
    return ATTR_TIMEOUT;
}

void reply_entry(fuse_req_t req, struct fs *f, fuse_ino_t ino)
{
    struct fuse_entry_param e = {0};
    int rc = fs_stat(f, ino, &e.attr);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    e.ino = ino;
    e.generation = 1;
    e.attr_timeout = attr_timeout_for(f, ino);
    e.entry_timeout = ENTRY_TIMEOUT;
    fuse_reply_entry(req, &e);
}

/* ---- lookup, getattr, readdir ---- */

static bool entry_gone(struct fs *f, fuse_ino_t ino);

fuse_ino_t child_ino(struct fs *f, fuse_ino_t parent, const char *name)
{
    struct node n = node_of(parent);
    fuse_ino_t ino = 0;
    store_rdlock(f->store);
    if (n.type == N_ROOT) {
        for (int i = 0; i < ROOT_COUNT; i++)
            if (strcmp(name, names_root[i]) == 0)
                ino = fixed_files[i];
        const struct model *m = ino ? NULL : store_model_child(f->store, STORE_NONE, name);
        if (m)
            ino = model_ino(m->idx, MK_DIR);
    } else if (n.type == N_MODEL && n.kind == MK_DIR && store_model_at(f->store, n.idx)) {
        const struct model *m = store_model_at(f->store, n.idx);
        if (m->ns) {
            const struct model *c = store_model_child(f->store, m->idx, name);
            if (c)
                ino = model_ino(c->idx, MK_DIR);
        } else {
            const struct model_file *mf = model_file_named(name);
            const struct task *t = mf ? NULL : store_task_find(f->store, n.idx, name);
            if (mf && model_file_shown(m, mf))
                ino = model_ino(n.idx, mf->kind);
            else if (t)
                ino = task_ino(t->idx, TK_DIR);
        }
    } else if (n.type == N_TASK && n.kind == TK_DIR && store_task_at(f->store, n.idx)) {
        for (int k = 1; k <= TK_LAST; k++)
            if (task_file_names[k] && strcmp(name, task_file_names[k]) == 0)
                ino = task_ino(n.idx, (enum task_kind)k);
        if (strcmp(name, "files") == 0 && store_task_at(f->store, n.idx)->files)
            ino = task_ino(n.idx, TK_FILES);
    } else if (n.type == N_TASK && n.kind == TK_FILES && store_task_at(f->store, n.idx)) {
        const struct task *t = store_task_at(f->store, n.idx);
        /* Found by name before it is whole (a stat then waits), so that cp files/0.png
         * right after cat result gets the file; an expired one is gone. */
        for (uint32_t i = 0; t->files && i < t->n_urls && i < MAX_FILES; i++)
            if (strcmp(name, t->files[i].name) == 0 && t->files[i].state != FILE_EXPIRED)
                ino = task_ino(n.idx, (enum task_kind)(TK_FILE0 + i));
    }
    store_unlock(f->store);
    return ino && entry_gone(f, ino) ? 0 : ino;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *f = req_fs(req);
    if (fs_announcer_asks(f, req)) {
        fs_announcer_lookup(req, parent, name);
        return;
    }
    fuse_ino_t ino = child_ino(f, parent, name);
    if (!ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    reply_entry(req, f, ino);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct fs *f = req_fs(req);
    /* The announcer's stat never waits for a file to be whole. */
    if (!fs_announcer_asks(f, req) && file_attr_answered(f, req, ino))
        return;
    struct stat st;
    int rc = fs_stat(f, ino, &st);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, attr_timeout_for(f, ino));
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi)
{
    (void)attr;
    (void)fi;
    struct node n = node_of(ino);
    if (fs_announcer_asks(req_fs(req), req)) {
        fs_announcer_setattr(req, ino);
        return;
    }
    /* Truncating new or ctl is what "> new" does first: allowed, they hold nothing; a
     * settings file is replaced as a whole at close. */
    if (((n.type == N_MODEL &&
          (n.kind == MK_NEW || n.kind == MK_DEFAULTS || n.kind == MK_REQUEST)) ||
         (n.type == N_TASK && n.kind == TK_CTL)) &&
        (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                    FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) ==
            0) {
        op_getattr(req, ino, NULL);
        return;
    }
    fuse_reply_err(req, (to_set & FUSE_SET_ATTR_SIZE) ? EACCES : EPERM);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct fs *f = req_fs(req);
    struct node n = node_of(ino);
    char target[256] = "";
    if (n.type == N_MODEL && n.kind == MK_LATEST) {
        store_rdlock(f->store);
        const struct model *m = store_model_at(f->store, n.idx);
        const struct task *t =
            m && m->latest != STORE_NONE ? store_task_at(f->store, m->latest) : NULL;
        if (t)
            snprintf(target, sizeof(target), "%s", t->id);
        store_unlock(f->store);
    }
    if (!target[0])
        fuse_reply_err(req, ENOENT);
    else
        fuse_reply_readlink(req, target);
}

struct dirbuf {
    fuse_req_t req;
    char *buf;
    size_t size, used;
    bool plus;
    struct fs *fs;
};

/* Adds one entry; false when the buffer is full. */
static bool dir_add(struct dirbuf *d, const char *name, fuse_ino_t ino, mode_t mode, off_t next)
{
    size_t room = d->size - d->used;
    size_t n;
    if (d->plus) {
        struct fuse_entry_param e = {0};
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            if (fs_stat(d->fs, ino, &e.attr) < 0)
                return true; /* vanished meanwhile: skip it */
            e.ino = ino;
            e.generation = 1;
            e.attr_timeout = attr_timeout_for(d->fs, ino);
            e.entry_timeout = ENTRY_TIMEOUT;
        } else {
            e.attr.st_ino = ino;
            e.attr.st_mode = mode;
        }
        n = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name, &e, next);
    } else {
        struct stat st = {.st_ino = ino, .st_mode = mode};
        n = fuse_add_direntry(d->req, d->buf + d->used, room, name, &st, next);
    }
    if (n > room)
        return false;
    d->used += n;
    return true;
}

/* Directory offsets: 1 ".", 2 "..", then fixed entries, then store slots
 * (slot index + base), so a listing resumes correctly while tasks come and go. */
#define DOFF_SLOTS 16

/* A listing's entries, copied out under the store lock (a stat of each takes it again);
 * ok turns false when memory runs out. want: a rough bound on how many fit the reader's
 * buffer, so huge directories are not copied whole. */
struct listing {
    struct ent {
        char name[256];
        fuse_ino_t ino;
        mode_t mode;
        off_t next;
    } * ents;
    size_t cnt, cap, want;
    bool ok;
    off_t off;
};

/* Adds the entry at directory offset next - 1 if the reader is not past it. */
static void list_add(struct listing *l, const char *name, fuse_ino_t ino, mode_t mode, off_t next)
{
    if (!l->ok || l->off >= next)
        return;
    if (l->cnt == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct ent *e = realloc(l->ents, cap * sizeof(*e));
        if (!e) {
            l->ok = false;
            return;
        }
        l->ents = e;
        l->cap = cap;
    }
    struct ent *e = &l->ents[l->cnt++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->ino = ino;
    e->mode = mode;
    e->next = next;
}

static uint32_t list_first_slot(const struct listing *l)
{
    return l->off > DOFF_SLOTS ? (uint32_t)(l->off - DOFF_SLOTS) : 0;
}

/* The root and a namespace: their fixed files (root only), then their models. */
static void list_models(struct fs *f, struct listing *l, fuse_ino_t ino, const struct model *ns)
{
    list_add(l, ".", ino, S_IFDIR, 1);
    list_add(l, "..", !ns || ns->parent == STORE_NONE ? INO_ROOT : model_ino(ns->parent, MK_DIR),
             S_IFDIR, 2);
    for (int i = 0; !ns && i < ROOT_COUNT; i++)
        list_add(l, names_root[i], fixed_files[i], S_IFREG, (off_t)(3 + i));
    uint32_t parent = ns ? ns->idx : STORE_NONE;
    for (uint32_t i = list_first_slot(l); i < store_model_slots(f->store) && l->cnt < l->want;
         i++) {
        const struct model *m = store_model_at(f->store, i);
        if (m && m->parent == parent)
            list_add(l, m->leaf, model_ino(i, MK_DIR), S_IFDIR, DOFF_SLOTS + i + 1);
    }
}

/* A model: its own files (model_files), then its tasks. */
static void list_model(struct fs *f, struct listing *l, fuse_ino_t ino, const struct model *m)
{
    list_add(l, ".", ino, S_IFDIR, 1);
    list_add(l, "..", m->parent == STORE_NONE ? INO_ROOT : model_ino(m->parent, MK_DIR), S_IFDIR,
             2);
    for (size_t i = 0; i < sizeof(model_files) / sizeof(model_files[0]); i++)
        if (model_file_shown(m, &model_files[i]))
            list_add(l, model_files[i].name, model_ino(m->idx, model_files[i].kind),
                     model_files[i].type, (off_t)(3 + i));
    for (uint32_t i = list_first_slot(l); i < store_task_slots(f->store) && l->cnt < l->want; i++) {
        const struct task *t = store_task_at(f->store, i);
        if (t && t->model_idx == m->idx)
            list_add(l, t->id, task_ino(i, TK_DIR), S_IFDIR, DOFF_SLOTS + i + 1);
    }
}

/* A task: its files (task_file_names), then files/ once it exists. */
static void list_task(struct fs *f, struct listing *l, fuse_ino_t ino, const struct task *t)
{
    list_add(l, ".", ino, S_IFDIR, 1);
    list_add(l, "..", model_ino(store_model_at(f->store, t->model_idx)->idx, MK_DIR), S_IFDIR, 2);
    for (int k = 1; k <= TK_LAST; k++)
        if (k == TK_FILES && t->files)
            list_add(l, "files", task_ino(t->idx, TK_FILES), S_IFDIR, 2 + k);
        else if (task_file_names[k])
            list_add(l, task_file_names[k], task_ino(t->idx, (enum task_kind)k), S_IFREG, 2 + k);
}

/* files/: the result files listed so far (file_listed). */
static void list_files(struct listing *l, fuse_ino_t ino, const struct task *t)
{
    list_add(l, ".", ino, S_IFDIR, 1);
    list_add(l, "..", task_ino(t->idx, TK_DIR), S_IFDIR, 2);
    for (uint32_t i = 0; i < t->n_urls && i < MAX_FILES; i++)
        if (file_listed(&t->files[i]))
            list_add(l, t->files[i].name, task_ino(t->idx, (enum task_kind)(TK_FILE0 + i)), S_IFREG,
                     (off_t)(3 + i));
}

/* Which listing a directory inode has; ENOTDIR for any other inode. */
static int list_dir(struct fs *f, struct listing *l, fuse_ino_t ino)
{
    struct node n = node_of(ino);
    const struct model *m =
        n.type == N_MODEL && n.kind == MK_DIR ? store_model_at(f->store, n.idx) : NULL;
    const struct task *t = n.type == N_TASK ? store_task_at(f->store, n.idx) : NULL;
    if (n.type == N_ROOT)
        list_models(f, l, ino, NULL);
    else if (m && m->ns)
        list_models(f, l, ino, m);
    else if (m)
        list_model(f, l, ino, m);
    else if (t && n.kind == TK_DIR)
        list_task(f, l, ino, t);
    else if (t && n.kind == TK_FILES && t->files)
        list_files(l, ino, t);
    else
        return ENOTDIR;
    return 0;
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
    struct fs *f = req_fs(req);
    struct dirbuf d = {.req = req, .size = size, .plus = plus, .fs = f};
    struct listing l = {.want = size / 24 + 4, .ok = true, .off = off};
    d.buf = malloc(size);
    if (!d.buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    store_rdlock(f->store);
    int err = list_dir(f, &l, ino);
    store_unlock(f->store);
    if (!err && !l.ok)
        err = ENOMEM;
    if (err) {
        fuse_reply_err(req, err);
    } else {
        for (size_t i = 0; i < l.cnt; i++)
            if (!entry_gone(f, l.ents[i].ino) &&
                !dir_add(&d, l.ents[i].name, l.ents[i].ino, l.ents[i].mode, l.ents[i].next))
                break;
        fuse_reply_buf(req, d.buf, d.used);
    }
    free(l.ents);
    free(d.buf);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    readdir_common(req, ino, size, off, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)fi;
    readdir_common(req, ino, size, off, true);
}

/* ---- removing: rm -r of a task or a model ----
 *
 * rm -r (GNU rm's fts), find -delete and Python's shutil.rmtree hold a directory open while
 * they unlink what it lists, then remove it; a plain rm of one file holds nothing. A task's
 * files are what genfs knows of the task and a model's own files are its settings: neither
 * can go on its own. So an unlink in a task (its files, files/ and what it holds) or of a
 * model's own file is taken as part of removing that task or model only when it comes from
 * a process that holds the task's or model's directory (the anchor) open. The entry is
 * then gone from lookups and listings, and the rmdir that follows forgets the task (SPEC 3)
 * or removes the emptied model. If nobody holds the anchor any more and it was not removed
 * (the rm was interrupted, or the model's rmdir refused), its entries come back: a task or
 * a model is either whole or gone. Every other unlink is refused with EPERM and a line in
 * log that says what to run instead. */

/* The directory an entry's removal belongs to: its task's or model's, or 0 (root files). */
static fuse_ino_t entry_anchor(fuse_ino_t ino)
{
    struct node n = node_of(ino);
    if (n.type == N_TASK && n.kind != TK_DIR)
        return task_ino(n.idx, TK_DIR);
    if (n.type == N_MODEL && n.kind != MK_DIR)
        return model_ino(n.idx, MK_DIR);
    return 0;
}

/* f->lock held. */
static bool gone_has(const struct fs *f, fuse_ino_t ino)
{
    for (size_t i = 0; i < f->n_gone; i++)
        if (f->gone[i].ino == ino)
            return true;
    return false;
}

static bool entry_gone(struct fs *f, fuse_ino_t ino)
{
    pthread_mutex_lock(&f->lock);
    bool gone = gone_has(f, ino);
    pthread_mutex_unlock(&f->lock);
    return gone;
}

/* Whether the process of thread tid holds anchor open (f->lock held): opened by that thread,
 * or by another thread of its process (told by /proc, read only when the tids differ). */
static bool held_by(struct fs *f, fuse_ino_t anchor, pid_t tid)
{
    /* FUSE gives 0 for a caller in a pid namespace genfs cannot see: who it is is unknown. */
    if (tid <= 0)
        return false;
    long process = -1;
    for (const struct dir_open *d = f->dirs; d; d = d->next) {
        if (d->ino != anchor)
            continue;
        if (d->tid == tid)
            return true;
        if (process < 0)
            process = proc_process(tid);
        if (proc_process(d->tid) == process)
            return true;
    }
    return false;
}

/* Records ino as removed (f->lock held): 0 or ENOMEM. */
static int gone_add(struct fs *f, fuse_ino_t ino, fuse_ino_t anchor)
{
    if (f->n_gone == f->cap_gone) {
        size_t cap = f->cap_gone ? f->cap_gone * 2 : 16;
        struct gone_entry *g = realloc(f->gone, cap * sizeof(*g));
        if (!g)
            return ENOMEM;
        f->gone = g;
        f->cap_gone = cap;
    }
    f->gone[f->n_gone++] = (struct gone_entry){.ino = ino, .anchor = anchor};
    return 0;
}

/* The last handle on an anchor let go: what was removed in it comes back (if the task or
 * model was removed meanwhile, nothing refers to those inodes any more). */
static void dir_close(struct fs *f, struct dir_open *d)
{
    pthread_mutex_lock(&f->lock);
    if (d->prev)
        d->prev->next = d->next;
    else
        f->dirs = d->next;
    if (d->next)
        d->next->prev = d->prev;
    bool held = false;
    for (const struct dir_open *o = f->dirs; o && !held; o = o->next)
        held = o->ino == d->ino;
    for (size_t i = 0; !held && i < f->n_gone;)
        if (f->gone[i].anchor == d->ino)
            f->gone[i] = f->gone[--f->n_gone];
        else
            i++;
    pthread_mutex_unlock(&f->lock);
    free(d);
}

/* "MODEL/ID" of a task's entry, or "MODEL" of a model's, for messages. */
static void anchor_path(struct fs *f, fuse_ino_t anchor, char *out, size_t len)
{
    struct node n = node_of(anchor);
    snprintf(out, len, "?");
    store_rdlock(f->store);
    const struct task *t = n.type == N_TASK ? store_task_at(f->store, n.idx) : NULL;
    const struct model *m = t                   ? store_model_at(f->store, t->model_idx)
                            : n.type == N_MODEL ? store_model_at(f->store, n.idx)
                                                : NULL;
    if (t && m)
        snprintf(out, len, "%s/%s", m->name, t->id);
    else if (m)
        snprintf(out, len, "%s", m->name);
    store_unlock(f->store);
}

/* One line in log for an unlink or rmdir of ino (name) that is refused: what to do instead. */
static void log_refused_removal(struct fs *f, const char *verb, fuse_ino_t ino, const char *name)
{
    fuse_ino_t anchor = entry_anchor(ino);
    char dir[512];
    if (!anchor) {
        log_warn(f->log, "%s %s refused: genfs's own files cannot be removed", verb, name);
        return;
    }
    anchor_path(f, anchor, dir, sizeof(dir));
    if (node_of(anchor).type == N_TASK)
        log_warn(f->log,
                 "%s %s/%s%s refused: a task's files go only with the task: rm -r %s (or "
                 "rmdir) forgets it",
                 verb, dir, node_of(ino).kind >= TK_FILE0 ? "files/" : "", name, dir);
    else
        log_warn(f->log,
                 "%s %s/%s refused: a model's own files go only with the model: rm -r %s "
                 "removes it and forgets its tasks",
                 verb, dir, name, dir);
}

/* The files listed in files/ now: their inodes in out (at most MAX_FILES), their count. */
static size_t files_listed(struct fs *f, uint32_t task_idx, fuse_ino_t *out)
{
    size_t n = 0;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, task_idx);
    for (uint32_t i = 0; t && t->files && i < t->n_urls && i < MAX_FILES; i++)
        if (file_listed(&t->files[i]))
            out[n++] = task_ino(task_idx, (enum task_kind)(TK_FILE0 + i));
    store_unlock(f->store);
    return n;
}

/* An unlink in a task or of a model's own file, or rmdir of files/, by tid: 0 when it is part
 * of removing the anchor (the entry is then gone), else the errno. files/ goes once what it
 * lists is gone. */
static int remove_entry(struct fs *f, fuse_ino_t ino, pid_t tid)
{
    fuse_ino_t anchor = entry_anchor(ino);
    struct node n = node_of(ino);
    fuse_ino_t *listed = NULL;
    size_t n_listed = 0;
    if (n.type == N_TASK && n.kind == TK_FILES) {
        listed = malloc(MAX_FILES * sizeof(*listed));
        if (!listed)
            return ENOMEM;
        n_listed = files_listed(f, n.idx, listed);
    }
    int err = EPERM;
    pthread_mutex_lock(&f->lock);
    if (anchor && held_by(f, anchor, tid)) {
        err = 0;
        for (size_t i = 0; i < n_listed && !err; i++)
            err = gone_has(f, listed[i]) ? 0 : ENOTEMPTY;
        if (!err)
            err = gone_add(f, ino, anchor);
    }
    pthread_mutex_unlock(&f->lock);
    free(listed);
    return err;
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *f = req_fs(req);
    if (!by_owner(req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    fuse_ino_t ino = child_ino(f, parent, name);
    if (!ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    int err = remove_entry(f, ino, fuse_req_ctx(req)->pid);
    if (err == EPERM)
        log_refused_removal(f, "rm", ino, name);
    fuse_reply_err(req, err);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct node n = node_of(ino);
    if (!(n.type == N_ROOT || (n.type == N_MODEL && n.kind == MK_DIR) ||
          (n.type == N_TASK && (n.kind == TK_DIR || n.kind == TK_FILES)))) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    /* A task's or a model's directory: who holds it decides what an unlink in it means. */
    struct fs *f = req_fs(req);
    struct dir_open *d = NULL;
    bool anchor = (n.type == N_MODEL && n.kind == MK_DIR) || (n.type == N_TASK && n.kind == TK_DIR);
    if (anchor && (d = calloc(1, sizeof(*d)))) {
        d->ino = ino;
        d->tid = fuse_req_ctx(req)->pid;
        pthread_mutex_lock(&f->lock);
        d->next = f->dirs;
        if (f->dirs)
            f->dirs->prev = d;
        f->dirs = d;
        pthread_mutex_unlock(&f->lock);
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    if (fuse_reply_open(req, fi) == -ENOENT && d)
        dir_close(f, d);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct dir_open *d = (struct dir_open *)(uintptr_t)fi->fh;
    if (d)
        dir_close(req_fs(req), d);
    fuse_reply_err(req, 0);
}
static bool segment_valid(const char *name)
{
    return !strchr(name, '/') && opts_model_name_valid(name);
}

/* A model, at the root or in a namespace (ns_name: its full name there, else ""): 0 with
 * *o the engine's command to post (NULL: no memory), or the errno mkdir gets. */
static int mkdir_model(struct fs *f, fuse_req_t req, fuse_ino_t parent, const char *name,
                       const char *ns_name, struct op **o)
{
    if (child_ino(f, parent, name))
        return EEXIST;
    if (!segment_valid(name) || strlen(ns_name) > 200) {
        log_warn(f->log, "mkdir %s refused: model names use letters, digits, '.', '_', '-'", name);
        return EINVAL;
    }
    *o = op_new(f, req, OP_MKDIR_MODEL);
    if (*o) {
        (*o)->cmd.kind = ENGINE_MODEL_ADD;
        (*o)->cmd.name = strdup(ns_name[0] ? ns_name : name);
    }
    return 0;
}

/* A task submitted elsewhere, adopted by its id: as mkdir_model. */
static int mkdir_task(struct fs *f, fuse_req_t req, fuse_ino_t parent, uint32_t model_idx,
                      const char *name, struct op **o)
{
    if (child_ino(f, parent, name))
        return EEXIST;
    if (strcmp(name, "new") == 0 || strcmp(name, "latest") == 0 || !names_task_id_valid(name))
        return EINVAL;
    *o = op_new(f, req, OP_MKDIR_TASK);
    if (*o) {
        (*o)->cmd.kind = ENGINE_ADOPT;
        (*o)->cmd.model_idx = model_idx;
        (*o)->cmd.name = strdup(name);
    }
    return 0;
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)mode;
    struct fs *f = req_fs(req);
    struct node n = node_of(parent);
    if (!by_owner(req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    if (fs_announcer_asks(f, req)) {
        fs_announcer_mkdir(req, parent, name);
        return;
    }
    struct op *o = NULL;
    char model_name[512] = "";
    uint32_t model_idx = STORE_NONE;
    bool in_ns = false;
    if (n.type == N_MODEL && n.kind == MK_DIR) {
        store_rdlock(f->store);
        const struct model *m = store_model_at(f->store, n.idx);
        if (m && m->ns) {
            in_ns = true;
            snprintf(model_name, sizeof(model_name), "%s/%s", m->name, name);
        }
        model_idx = m ? m->idx : STORE_NONE;
        store_unlock(f->store);
    }
    int err = EPERM;
    if (n.type == N_ROOT || in_ns)
        err = mkdir_model(f, req, parent, name, model_name, &o);
    else if (n.type == N_MODEL && n.kind == MK_DIR && model_idx != STORE_NONE)
        err = mkdir_task(f, req, parent, n.idx, name, &o);
    if (!err && (!o || !o->cmd.name)) {
        if (o)
            op_free(o);
        err = ENOMEM;
    }
    if (err)
        fuse_reply_err(req, err);
    else
        op_post(f, o);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *f = req_fs(req);
    if (!by_owner(req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    fuse_ino_t ino = child_ino(f, parent, name);
    struct node n = node_of(ino);
    if (!ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct op *o = op_new(f, req, OP_RMDIR);
    if (!o) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (n.type == N_MODEL && n.kind == MK_DIR) {
        o->cmd.kind = ENGINE_MODEL_REMOVE;
        o->cmd.model_idx = n.idx;
    } else if (n.type == N_TASK && n.kind == TK_DIR) {
        o->cmd.kind = ENGINE_FORGET;
        o->cmd.task_idx = n.idx;
    } else {
        op_free(o);
        int err = ENOTDIR;
        /* files/ goes only as part of removing its task (see "removing" above) */
        if (n.type == N_TASK && n.kind == TK_FILES) {
            err = remove_entry(f, ino, fuse_req_ctx(req)->pid);
            if (err == EPERM)
                log_refused_removal(f, "rmdir", ino, name);
        }
        fuse_reply_err(req, err);
        return;
    }
    op_post(f, o);
}

void op_refuse_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)parent;
    (void)name;
    fuse_reply_err(req, EPERM);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi)
{
    (void)mode;
    /* Only the announcer creates files (a CREATE announcement). */
    if (fs_announcer_asks(req_fs(req), req))
        fs_announcer_create(req, parent, name, fi);
    else
        op_refuse_name(req, parent, name);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)mode;
    (void)rdev;
    op_refuse_name(req, parent, name);
}

void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link;
    if (fs_announcer_asks(req_fs(req), req))
        fs_announcer_symlink(req, parent, name);
    else
        op_refuse_name(req, parent, name);
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags)
{
    (void)newparent;
    (void)newname;
    (void)flags;
    op_refuse_name(req, parent, name);
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino;
    op_refuse_name(req, newparent, newname);
}
