/* The mount's wiring: fs_new, the ops table and the store observer, which hands each
 * change to the file that serves it. What answers what: docs/design.md, "The fs module
 * by what it serves". */
#include "fs_internal.h"

#include "announcer.h"
#include "cachepath.h"
#include "clock.h"
#include "input.h"
#include "media.h"
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

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs sv = {.f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255};
    fuse_reply_statfs(req, &sv);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* One write(2) of up to 1 MiB reaches us as one request. */
    conn->max_write = NEW_MAX_WRITE;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Cached media goes from the cache file to the reader without a copy here. */
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .opendir = op_opendir,
    .releasedir = op_releasedir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .statfs = op_statfs,
    .create = op_create,
    .poll = op_poll,
};

const struct fuse_lowlevel_ops *fs_ops(void)
{
    return &ops;
}

/* ---- store observer: runs on the engine thread ---- */

/* The kernel's attributes of the task's directory, and the attributes and pages (off 0,
 * len 0: data too) of its text files, so the next read of a cached open asks us again.
 * Neither takes an inode lock; dropping pages waits only for a read of them in flight,
 * which a FUSE worker answers from the store without the engine. */
static void inval_task(struct fs *f, uint32_t idx)
{
    if (!f->se)
        return;
    static const enum task_kind kinds[] = {TK_STATE,  TK_RESULT, TK_ERROR,
                                           TK_STATUS, TK_PROMPT, TK_INPUT};
    /* ctl, progress and logs are direct_io: their attributes only. */
    static const enum task_kind direct[] = {TK_DIR, TK_CTL, TK_PROGRESS, TK_LOGS};
    for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++)
        fuse_lowlevel_notify_inval_inode(f->se, task_ino(idx, direct[i]), -1, 0);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        fuse_lowlevel_notify_inval_inode(f->se, task_ino(idx, kinds[i]), 0, 0);
}

static void inval_changed(struct fs *f, const struct store_change *c)
{
    if (!f->se)
        return;
    switch (c->kind) {
    case STORE_TASK_ADDED:
        fuse_lowlevel_notify_inval_inode(f->se, model_ino(c->model_idx, MK_DIR), -1, 0);
        fuse_lowlevel_notify_inval_inode(f->se, model_ino(c->model_idx, MK_LATEST), -1, 0);
        break;
    case STORE_TASK_STATE:
        inval_task(f, c->task_idx);
        break;
    case STORE_TASK_STATUS:
        /* Only status.json and the live files move with an answer that keeps the state
         * (prompt and input.json are set once, when the task is stored). */
        fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_STATUS), 0, 0);
        fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_PROGRESS), -1, 0);
        fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_LOGS), -1, 0);
        break;
    case STORE_FILE_CHANGED:
        fuse_lowlevel_notify_inval_inode(
            f->se, task_ino(c->task_idx, (enum task_kind)(TK_FILE0 + c->file_n)), -1, 0);
        fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_FILES), -1, 0);
        break;
    default:
        break;
    }
}

/* After the invalidations of a change: opens of the task's files may use the cache again. */
static void told_set(struct fs *f, uint32_t idx)
{
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    uint64_t v = t ? t->version : 0;
    store_unlock(f->store);
    pthread_mutex_lock(&f->lock);
    if (idx >= f->n_told) {
        uint32_t n = idx + 1 > f->n_told * 2 ? idx + 1 : f->n_told * 2;
        uint64_t *grown = realloc(f->told, n * sizeof(*grown));
        if (grown) {
            memset(grown + f->n_told, 0, (n - f->n_told) * sizeof(*grown));
            f->told = grown;
            f->n_told = n;
        }
    }
    if (idx < f->n_told)
        f->told[idx] = v;
    pthread_mutex_unlock(&f->lock);
}

bool fs_cache_current(struct fs *f, uint32_t idx, uint64_t version)
{
    pthread_mutex_lock(&f->lock);
    /* Never told: the task is as the store loaded it (version 1), which no kernel cache of
     * this mount has seen otherwise. */
    uint64_t told = idx < f->n_told && f->told[idx] ? f->told[idx] : 1;
    pthread_mutex_unlock(&f->lock);
    return told == version;
}

/* A task's appearance or state change told to readers: a line in events, then the parked
 * results and the poll handles. */
static void wake_task_change(struct fs *f, const struct store_change *c)
{
    pthread_mutex_lock(&f->lock);
    events_append(f, c, task_state_name(c->new_state));
    wake_events(f);
    pthread_mutex_unlock(&f->lock);
    if (c->kind == STORE_TASK_STATE && task_state_final(c->new_state))
        wake_results(f, c->task_idx);
    wake_pollers(f, c->task_idx);
}

/* wake_task_change, held back until the announcer has performed the change's announcements:
 * its write to state (or result, error) changes the kernel's attribute version, which would
 * make the kernel drop the attributes a woken reader is fetching right then and read the new
 * text at the old size. */
struct held_wake {
    struct fs *f;
    struct store_change c;
};

static void held_wake_run(void *arg, bool ok)
{
    (void)ok;
    struct held_wake *w = arg;
    wake_task_change(w->f, &w->c);
    free((char *)w->c.task_id);
    free((char *)w->c.model_name);
    free(w);
}

static bool wake_after_announcements(struct fs *f, const struct store_change *c)
{
    struct held_wake *w = malloc(sizeof(*w));
    if (!w)
        return false;
    *w = (struct held_wake){.f = f, .c = *c};
    w->c.task_id = strdup(c->task_id);
    w->c.model_name = strdup(c->model_name);
    if (!w->c.task_id || !w->c.model_name) {
        free((char *)w->c.task_id);
        free((char *)w->c.model_name);
        free(w);
        return false;
    }
    announcer_post(f->announcer, ANNOUNCE_BARRIER, NULL, 0, NULL, NULL, held_wake_run, w);
    return true;
}

/* The one completion path: the kernel's caches first (a reader woken below, or told by the
 * announcer, must read the new content), then announcements, then parked readers and
 * pollers. */
static void on_store_change(void *arg, const struct store_change *c)
{
    struct fs *f = arg;
    inval_changed(f, c);
    if (c->task_idx != STORE_NONE)
        told_set(f, c->task_idx);
    if (f->announcer)
        fs_announce_change(f, c);
    switch (c->kind) {
    case STORE_TASK_ADDED:
    case STORE_TASK_STATE:
        if (!f->announcer || !wake_after_announcements(f, c))
            wake_task_change(f, c);
        break;
    case STORE_TASK_STATUS:
        wake_pollers(f, c->task_idx); /* progress and logs */
        break;
    case STORE_TASK_GAVE_UP:
        wake_results(f, c->task_idx);
        wake_pollers(f, c->task_idx);
        break;
    case STORE_TASK_REMOVED:
        wake_results(f, c->task_idx);
        wake_files(f, c->task_idx, PARKED_ANY);
        break;
    case STORE_FILE_CHANGED:
        wake_files(f, c->task_idx, c->file_n);
        break;
    case STORE_MODEL_ADDED:
    case STORE_MODEL_REMOVED:
        break;
    }
}

struct fs *fs_new(struct store *st, struct engine *eng, struct log *lg, struct eventlog *el,
                  const char *cache_dir)
{
    struct fs *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->cache_dir = strdup(cache_dir);
    f->evlog = el;
    f->store = st;
    f->engine = eng;
    f->log = lg;
    f->start_ms = clock_now_ms();
    pthread_mutex_init(&f->lock, NULL);
    if (store_observe(st, on_store_change, f) < 0) {
        fs_free(f);
        return NULL;
    }
    return f;
}

void fs_set_session(struct fs *f, struct fuse_session *se)
{
    f->se = se;
}

void fs_set_announcer(struct fs *f, struct announcer *n)
{
    f->announcer = n;
    f->announcer_pid = announcer_pid(n);
}
void fs_free(struct fs *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->lock);
    free(f->hidden);
    free(f->gone);
    free(f->told);
    while (f->dirs) {
        struct dir_open *d = f->dirs;
        f->dirs = d->next;
        free(d);
    }
    free(f->cache_dir);
    free(f);
}
