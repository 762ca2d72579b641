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
static void inval_task(struct fs *f, uint32_t idx)
{
    if (!f->se)
        return;
    static const enum task_kind kinds[] = {TK_DIR,    TK_STATE, TK_RESULT,   TK_ERROR,
                                           TK_STATUS, TK_CTL,   TK_PROGRESS, TK_LOGS};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        fuse_lowlevel_notify_inval_inode(f->se, task_ino(idx, kinds[i]), -1, 0);
}
static void on_store_change(void *arg, const struct store_change *c)
{
    struct fs *f = arg;
    if (f->announcer)
        fs_announce_change(f, c);
    switch (c->kind) {
    case STORE_TASK_ADDED:
    case STORE_TASK_STATE:
        pthread_mutex_lock(&f->lock);
        events_append(f, c, task_state_name(c->new_state));
        wake_events(f);
        pthread_mutex_unlock(&f->lock);
        if (c->kind == STORE_TASK_STATE) {
            inval_task(f, c->task_idx);
            if (task_state_final(c->new_state))
                wake_results(f, c->task_idx);
        } else if (f->se) {
            fuse_lowlevel_notify_inval_inode(f->se, model_ino(c->model_idx, MK_DIR), -1, 0);
            fuse_lowlevel_notify_inval_inode(f->se, model_ino(c->model_idx, MK_LATEST), -1, 0);
        }
        wake_pollers(f, c->task_idx);
        break;
    case STORE_TASK_STATUS:
        if (f->se) {
            fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_STATUS), -1, 0);
            fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_PROGRESS), -1, 0);
            fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_LOGS), -1, 0);
        }
        wake_pollers(f, c->task_idx); /* progress and logs */
        break;
    case STORE_TASK_GAVE_UP:
        wake_results(f, c->task_idx);
        wake_pollers(f, c->task_idx);
        break;
    case STORE_TASK_REMOVED:
        wake_results(f, c->task_idx);
        wake_files(f, c->task_idx, UINT32_MAX);
        break;
    case STORE_FILE_CHANGED:
        if (f->se) {
            fuse_lowlevel_notify_inval_inode(
                f->se, task_ino(c->task_idx, (enum task_kind)(TK_FILE0 + c->file_n)), -1, 0);
            fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_FILES), -1, 0);
        }
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
    while (f->dirs) {
        struct dir_open *d = f->dirs;
        f->dirs = d->next;
        free(d);
    }
    free(f->cache_dir);
    free(f);
}
