/* Open files: op_open builds a handle by kind, op_read hands each read to its kind's
 * reader; poll and release; when a result or a cache file can be answered. */
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

/* ---- open, read ---- */

static void reply_slice(fuse_req_t req, const char *text, size_t len, size_t size, off_t off)
{
    if (off < 0 || (size_t)off >= len)
        fuse_reply_buf(req, NULL, 0);
    else
        fuse_reply_buf(req, text + off, len - (size_t)off < size ? len - (size_t)off : size);
}

/* Takes ownership of text (NULL: an empty snapshot). */
static struct snap *snap_wrap(char *text, size_t len)
{
    struct snap *s = malloc(sizeof(*s));
    if (!s) {
        free(text);
        return NULL;
    }
    *s = (struct snap){.refs = 1, .len = text ? len : 0, .text = text};
    return s;
}

static void snap_put(struct snap *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        free(s->text);
        free(s);
    }
}

static struct snap *snapshot(struct fs *f, fuse_ino_t ino)
{
    size_t len = 0;
    char *text;
    if (ino == INO_STATS) {
        text = engine_stats_json(f->engine);
        len = text ? strlen(text) : 0;
    } else {
        text = log_ring_text(f->log, &len, NULL);
    }
    return snap_wrap(text, len);
}

/* The cache file of files/<n> when it is whole, else -1; touch marks it
 * used for the least-recently-used eviction. */
static int media_open(struct fs *f, uint32_t idx, uint32_t n, bool touch)
{
    char path[4096];
    int fd = -1;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    if (t && t->files && n < t->n_urls && t->files[n].state == FILE_DONE) {
        const struct model *m = store_model_at(f->store, t->model_idx);
        if (cache_file_path(path, sizeof(path), f->cache_dir, m->name, t->id, t->files[n].name) ==
            0)
            fd = open(path, O_RDONLY | O_CLOEXEC);
        if (touch)
            __atomic_store_n(&t->files[n].atime_ms, clock_now_ms(), __ATOMIC_RELAXED);
    }
    store_unlock(f->store);
    return fd;
}

static enum file_state media_state(struct fs *f, uint32_t idx, uint32_t n)
{
    enum file_state st = FILE_EXPIRED;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    if (t && t->files && n < t->n_urls)
        st = t->files[n].state;
    store_unlock(f->store);
    return st;
}

void reply_fd(fuse_req_t req, int fd, size_t size, off_t off)
{
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
    bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    bv.buf[0].fd = fd;
    bv.buf[0].pos = off;
    fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
}

static void fetch_done(struct engine_cmd *cmd, int err, const char *msg)
{
    (void)err;
    (void)msg;
    free(cmd);
}

static void post_fetch(struct fs *f, uint32_t idx, uint32_t n)
{
    struct engine_cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->kind = ENGINE_FETCH;
    c->task_idx = idx;
    c->file_n = n;
    c->done = fetch_done;
    engine_post(f->engine, c);
}

/* What a reader of files/<n> gets now: 1 (cache file open in *fd), a
 * negative errno, or 0 to wait for the download. */
int media_ready(struct fs *f, uint32_t idx, uint32_t n, int *fd)
{
    *fd = media_open(f, idx, n, false);
    if (*fd >= 0)
        return 1;
    switch (media_state(f, idx, n)) {
    case FILE_FAILED:
        return -EIO;
    case FILE_NOSPACE:
        return -ENOSPC;
    case FILE_EXPIRED:
        return -ENOENT;
    case FILE_DONE: /* evicted between the two looks */
    case FILE_PENDING:
    case FILE_DOWNLOADING:
        return 0;
    }
    return -EIO;
}

/* What a stat of files/<n> gets now: 1 (its attributes), a negative errno, or 0
 * to wait until it is whole. */
int media_attr_ready(struct fs *f, uint32_t idx, uint32_t n)
{
    int rc = -ENOENT;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    if (t && t->files && n < t->n_urls) {
        const struct task_file *tf = &t->files[n];
        if (file_listed(tf))
            rc = 1;
        else if (tf->state == FILE_FAILED)
            rc = -EIO;
        else if (tf->state == FILE_NOSPACE)
            rc = -ENOSPC;
        else if (tf->state == FILE_EXPIRED)
            rc = -ENOENT;
        else
            rc = 0;
    }
    store_unlock(f->store);
    return rc;
}

bool attr_waiting(struct fs *f, struct pending *p)
{
    return media_attr_ready(f, p->k.idx, p->k.file_n) == 0;
}

/* rc from media_attr_ready; 0 (still not whole: the mount is going away) is EIO. */
void answer_attr(struct fs *f, fuse_req_t req, uint32_t idx, uint32_t n, int rc)
{
    fuse_ino_t ino = task_ino(idx, (enum task_kind)(TK_FILE0 + n));
    struct stat st;
    if (rc == 1 && (rc = fs_stat(f, ino, &st)) == 0)
        fuse_reply_attr(req, &st, attr_timeout_for(f, ino));
    else
        fuse_reply_err(req, rc < 0 ? -rc : EIO);
}

/* A stat of a file under files/ that is not whole waits until it is, so that
 * rsync, tar or shutil.copy2 never copy a short file: true once req is answered
 * or parked here, false for every other inode. */
bool file_attr_answered(struct fs *f, fuse_req_t req, fuse_ino_t ino)
{
    struct node n = node_of(ino);
    if (n.type != N_TASK || n.kind < TK_FILE0)
        return false;
    const uint32_t idx = n.idx, file_n = (uint32_t)(n.kind - TK_FILE0);
    int rc = media_attr_ready(f, idx, file_n);
    if (rc == 1)
        return false;
    if (rc == -EIO) {
        /* Tell this caller now; try once more in the background. */
        post_fetch(f, idx, file_n);
        log_warn(f->log, "stat of a result file failed: its download failed (see above)");
    }
    if (rc == 0) {
        struct pending *p = calloc(1, sizeof(*p));
        if (!p) {
            fuse_reply_err(req, ENOMEM);
            return true;
        }
        *p = (struct pending){.k = {.kind = P_ATTR, .idx = idx, .file_n = file_n}, .req = req};
        if (park(f, p, attr_waiting)) {
            post_fetch(f, idx, file_n);
            return true;
        }
        free(p);
        rc = media_attr_ready(f, idx, file_n);
    }
    answer_attr(f, req, idx, file_n, rc);
    return true;
}
/* What a handle holds, by its kind. */
static void fh_free(struct fh *h)
{
    switch (h->kind) {
    case FH_MEDIA:
        if (h->fd >= 0)
            close(h->fd);
        break;
    case FH_SNAPSHOT:
        snap_put(h->snap);
        break;
    case FH_NEW:
        free(h->task_id);
        free(h->in);
        break;
    case FH_MODEL_JSON:
        free(h->edit);
        break;
    case FH_PLAIN:
    case FH_STATE:
    case FH_RESULT:
    case FH_EVENTS:
    case FH_ANNOUNCE:
    case FH_LIVE:
    case FH_CTL:
        break;
    }
    free(h);
}

/* new, the settings files and .provider; 0 or the errno the open gets. */
static int open_model(struct fs *f, fuse_req_t req, struct node n, struct fh *h,
                      struct fuse_file_info *fi)
{
    int acc = fi->flags & O_ACCMODE;
    bool settings = n.kind == MK_DEFAULTS || n.kind == MK_REQUEST;
    h->idx = n.idx;
    if ((n.kind == MK_NEW || settings) && acc != O_RDONLY && !by_owner(req))
        return EACCES;
    if (n.kind == MK_NEW) {
        h->kind = FH_NEW;
        h->read_write = acc == O_RDWR;
        h->opener = proc_process(fuse_req_ctx(req)->pid);
        fi->nonseekable = 1;
        return 0;
    }
    if (settings && acc != O_RDONLY) {
        h->kind = FH_MODEL_JSON;
        h->edit_kind = (enum model_kind)n.kind;
        h->edit_dirty = (fi->flags & O_TRUNC) != 0; /* "> defaults.json" alone clears it */
        return 0;
    }
    if (acc != O_RDONLY)
        return EACCES;
    char *text = NULL;
    if (settings) {
        store_rdlock(f->store);
        const struct model *m = store_model_at(f->store, n.idx);
        const char *json = m ? (n.kind == MK_DEFAULTS ? m->defaults : m->request) : NULL;
        if (asprintf(&text, "%s\n", json ? json : "{}") < 0)
            text = NULL;
        store_unlock(f->store);
    } else if (n.kind == MK_PROVIDER) {
        if (asprintf(&text, "%s\n", engine_provider_name(f->engine, n.idx)) < 0)
            text = NULL;
    } else {
        return EISDIR; /* the directory, or latest */
    }
    h->kind = FH_SNAPSHOT;
    h->snap = snap_wrap(text, text ? strlen(text) : 0);
    return 0;
}

/* events, stats, log; README and events.log need no handle (*hp becomes NULL). */
static void open_fixed(struct fs *f, fuse_ino_t ino, struct fh **hp, struct fuse_file_info *fi)
{
    struct fh *h = *hp;
    if (ino == INO_EVENTS) {
        /* Seekable within its own bytes: head puts back what it read past its lines,
         * and the shell's read reads ahead and seeks back (SPEC 3: each open from now). */
        h->kind = FH_EVENTS;
        h->base = h->next = eventlog_stream_end(f->evlog);
    } else if (ino == INO_STATS || ino == INO_LOG) {
        h->kind = FH_SNAPSHOT;
        h->snap = snapshot(f, ino);
    } else if (ino == INO_EVENTS_LOG || ino == INO_EVENTS_LOG1) {
        /* Read from the file in state_dir at each read (direct_io): it grows. */
        free(h);
        *hp = NULL;
    } else {
        /* README is static: cached by the kernel, read without a handle. */
        free(h);
        *hp = NULL;
        fi->direct_io = 0;
        fi->keep_cache = 1;
    }
}

/* Whether an open of a task's text file n.kind may read through the kernel's page cache:
 * the small files that change only with a published change (which invalidates them) and
 * whose new text is never a longer rewrite of an old one that a read racing the change could
 * cut at the old size (error, prompt, input.json only go from empty to their text; of
 * state's words only "generating" is longer than the others), and result once it is final
 * text; never a result that must block, nor status.json (a JSON cut short is no JSON). */
static bool task_text_cacheable(const struct task *t, enum task_kind k)
{
    switch (k) {
    case TK_STATE:
    case TK_ERROR:
    case TK_PROMPT:
    case TK_INPUT:
        return true;
    case TK_RESULT:
        return t->state == TASK_SUCCESS;
    default:
        return false;
    }
}

/* A task's files and files/<n>; 0, ENOENT, or EACCES (ctl opened to write by another user). */
static int open_task(struct fs *f, fuse_req_t req, struct node n, struct fh *h,
                     struct fuse_file_info *fi)
{
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, n.idx);
    bool exists = t != NULL;
    bool cacheable = t && task_text_cacheable(t, (enum task_kind)n.kind);
    uint64_t version = t ? t->version : 0;
    enum task_state state = t ? t->state : TASK_WAITING;
    store_unlock(f->store);
    if (!exists)
        return ENOENT;
    h->idx = n.idx;
    h->kind = n.kind == TK_STATE ? FH_STATE : n.kind == TK_RESULT ? FH_RESULT : FH_PLAIN;
    if (cacheable && fs_cache_current(f, n.idx, version)) {
        /* Repeated reads need no round trip; a change invalidates the pages (fs.c) before
         * anyone is told of it. keep_cache: what is cached is current (the version says
         * so). No flush: a read-only open has nothing to write back. */
        fi->direct_io = 0;
        fi->keep_cache = 1;
        fi->noflush = 1;
        /* A cached read never reaches us: this descriptor has seen the current word. */
        h->seen_state = state;
        h->read_once = true;
    }
    if (n.kind == TK_PROGRESS || n.kind == TK_LOGS)
        h->kind = FH_LIVE;
    if (n.kind == TK_CTL && (fi->flags & O_ACCMODE) != O_RDONLY) {
        /* Commands cost the owner's key, as submissions do. */
        if (!by_owner(req))
            return EACCES;
        h->kind = FH_CTL;
        fi->nonseekable = 1;
    }
    if (n.kind >= TK_FILE0) {
        h->kind = FH_MEDIA;
        h->file_n = (uint32_t)(n.kind - TK_FILE0);
        h->fd = media_open(f, h->idx, h->file_n, true);
        if (h->fd >= 0) {
            /* Whole and immutable: let the page cache keep it. */
            fi->direct_io = 0;
            fi->keep_cache = 1;
        }
    }
    return 0;
}

/* The handle by kind (struct fh); the one error funnel below answers every refusal. */
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *f = req_fs(req);
    struct node n = node_of(ino);
    int acc = fi->flags & O_ACCMODE;
    if (acc != O_RDONLY && fs_announcer_asks(f, req)) {
        fs_announcer_open(req, fi);
        return;
    }
    struct fh *h = calloc(1, sizeof(*h));
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fi->direct_io = 1;
    int err = 0;
    if (n.type == N_MODEL)
        err = open_model(f, req, n, h, fi);
    else if (acc != O_RDONLY && !(n.type == N_TASK && n.kind == TK_CTL))
        err = EACCES;
    else if (n.type == N_FIXED)
        open_fixed(f, ino, &h, fi);
    else if (n.type == N_TASK)
        err = open_task(f, req, n, h, fi);
    else
        err = EISDIR;
    if (err) {
        free(h);
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    if (fuse_reply_open(req, fi) == -ENOENT && h)
        fh_free(h); /* the opener was interrupted: no release will come for this handle */
}
/* Result content, or the errno a reader gets now, or 0 to wait. */
int result_ready(struct fs *f, uint32_t idx, char **text, size_t *len)
{
    int rc = 0;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    if (!t)
        rc = -ENOENT;
    else if (t->state == TASK_SUCCESS)
        *text = task_file_text(f, t, TK_RESULT, len), rc = 1;
    else if (t->state == TASK_FAILED)
        rc = -EIO;
    else if (t->gave_up)
        rc = -ETIMEDOUT;
    store_unlock(f->store);
    return rc;
}

static bool result_waiting(struct fs *f, struct pending *p)
{
    char *text = NULL;
    size_t len = 0;
    int rc = result_ready(f, p->k.idx, &text, &len);
    free(text);
    return rc == 0;
}

bool media_waiting(struct fs *f, struct pending *p)
{
    int fd;
    int rc = media_ready(f, p->k.idx, p->k.file_n, &fd);
    if (fd >= 0)
        close(fd);
    return rc == 0;
}

void answer_result(fuse_req_t req, int rc, char *text, size_t len, size_t size, off_t off)
{
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        reply_slice(req, text, len, size, off);
    free(text);
}

/* The stream's bytes at the handle's offset off (with f->lock held): whole lines while
 * they fit, a piece of one for a small buffer. */
size_t events_fill(struct fs *f, struct fh *h, off_t off, char *buf, size_t size)
{
    uint64_t want = h->base + (uint64_t)off, pos = want;
    size_t used = eventlog_stream_fill(f->evlog, &pos, buf, size);
    /* Fell behind, the oldest lines are gone: its offsets go on from the oldest kept. */
    h->base += pos - want;
    h->next = pos + used;
    return used;
}

/* Nothing at the offset of the parked read yet (with f->lock held). */
bool events_waiting(struct fs *f, struct pending *p)
{
    return p->fh->base + (uint64_t)p->off >= eventlog_stream_end(f->evlog);
}

/* new: a read after writing ends the input: submit it, answer with its id. */
static void read_new(fuse_req_t req, struct fh *h, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino;
    (void)off;
    (void)fi;
    struct fs *f = req_fs(req);
    pthread_mutex_lock(&f->lock);
    struct op *o = NULL;
    int rc = new_end(f, req, h, OP_READ_ID, size, 0, &o);
    if (rc < 0 || o) {
        pthread_mutex_unlock(&f->lock);
        if (rc == 0 && (rc = new_attach_files(f, o, h)) < 0)
            op_free(o);
        if (rc < 0)
            fuse_reply_err(req, -rc);
        else
            op_post(f, o);
        return;
    }
    char line[256] = "";
    if (h->task_id)
        snprintf(line, sizeof(line), "%s\n", h->task_id);
    size_t len = strlen(line), from = h->id_pos < len ? h->id_pos : len;
    size_t n = len - from < size ? len - from : size;
    h->id_pos = from + n;
    pthread_mutex_unlock(&f->lock);
    fuse_reply_buf(req, line + from, n);
}

/* stats, log, .provider, a settings file opened to read: the snapshot. */
static void read_snapshot(fuse_req_t req, struct fh *h, fuse_ino_t ino, size_t size, off_t off,
                          struct fuse_file_info *fi)
{
    (void)fi;
    struct fs *f = req_fs(req);
    /* Offset 0 is a fresh look (cat again on the same fd, tail -f). */
    struct snap *fresh = NULL, *old = NULL, *s;
    if (off == 0 && (ino == INO_STATS || ino == INO_LOG))
        fresh = snapshot(f, ino);
    pthread_mutex_lock(&f->lock);
    if (fresh) {
        old = h->snap;
        h->snap = fresh;
    }
    s = h->snap;
    if (s)
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&f->lock);
    snap_put(old);
    if (s)
        reply_slice(req, s->text, s->len, size, off);
    else
        fuse_reply_err(req, ENOMEM);
    snap_put(s);
}

/* events: the lines at the offset, or wait for them (EOF once the mount goes away). */
static void read_events(fuse_req_t req, struct fh *h, fuse_ino_t ino, size_t size, off_t off,
                        struct fuse_file_info *fi)
{
    (void)ino;
    struct fs *f = req_fs(req);
    char *buf = malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    pthread_mutex_lock(&f->lock);
    size_t used = events_fill(f, h, off, buf, size);
    bool answer = used > 0 || f->shutting_down;
    pthread_mutex_unlock(&f->lock);
    if (!answer) {
        struct pending *p = pending_for_read(req, fi);
        if (!p) {
            free(buf);
            return;
        }
        *p = (struct pending){.k.kind = P_EVENTS, .req = req, .size = size, .off = off, .fh = h};
        /* Checked again under the lock the appender takes: no line slips in between. */
        if (park(f, p, events_waiting)) {
            free(buf);
            return;
        }
        free(p);
        pthread_mutex_lock(&f->lock);
        used = events_fill(f, h, off, buf, size);
        pthread_mutex_unlock(&f->lock);
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

/* events.log and events.log.1: the files in state_dir, as they are now. */
static void read_event_log(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
    struct fs *f = req_fs(req);
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ssize_t n = eventlog_read(f->evlog, ino == INO_EVENTS_LOG1 ? EVENTLOG_OLD : EVENTLOG_CURRENT,
                              buf, size, off);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

/* result: waits until the task ends. */
static void read_result(fuse_req_t req, struct fh *h, fuse_ino_t ino, size_t size, off_t off,
                        struct fuse_file_info *fi)
{
    (void)ino;
    struct fs *f = req_fs(req);
    char *text = NULL;
    size_t len = 0;
    int rc = result_ready(f, h->idx, &text, &len);
    if (rc != 0) {
        answer_result(req, rc, text, len, size, off);
        return;
    }
    struct pending *p = pending_for_read(req, fi);
    if (!p)
        return;
    *p = (struct pending){
        .k = {.kind = P_RESULT, .idx = h->idx}, .req = req, .size = size, .off = off, .fh = h};
    if (park(f, p, result_waiting))
        return;
    free(p);
    rc = result_ready(f, h->idx, &text, &len);
    answer_result(req, rc ? rc : -EIO, text, len, size, off);
}

/* files/<n>: from the cache file, or waits until it is whole. */
static void read_media(fuse_req_t req, struct fh *h, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)ino;
    struct fs *f = req_fs(req);
    pthread_mutex_lock(&f->lock);
    int kept = h->fd;
    pthread_mutex_unlock(&f->lock);
    if (kept >= 0) {
        reply_fd(req, kept, size, off);
        return;
    }
    /* Once a read is answered the kernel may RELEASE the handle at once: nothing
     * may touch h after a reply or after park() hands the request away. */
    const uint32_t idx = h->idx, file_n = h->file_n;
    int fd;
    int rc = media_ready(f, idx, file_n, &fd);
    if (rc == 1) {
        int spare = fd;
        pthread_mutex_lock(&f->lock);
        if (h->fd < 0)
            h->fd = fd, spare = -1; /* kept for the next reads; RELEASE closes it */
        pthread_mutex_unlock(&f->lock);
        reply_fd(req, fd, size, off);
        if (spare >= 0)
            close(spare);
        return;
    }
    if (rc == -EIO || rc == -ENOSPC) {
        /* Tell this reader now; try once more in the background. */
        post_fetch(f, idx, file_n);
        log_warn(f->log, "read of a result file failed: %s (see above)",
                 rc == -EIO ? "its download failed" : "cache_dir is full");
    }
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    struct pending *p = pending_for_read(req, fi);
    if (!p)
        return;
    *p = (struct pending){.k = {.kind = P_FILE, .idx = idx, .file_n = file_n},
                          .req = req,
                          .size = size,
                          .off = off,
                          .fh = h};
    if (park(f, p, media_waiting)) {
        /* An evicted file comes back on demand. */
        post_fetch(f, idx, file_n);
        return;
    }
    free(p);
    rc = media_ready(f, idx, file_n, &fd);
    if (rc == 1) {
        reply_fd(req, fd, size, off);
        close(fd);
    } else {
        fuse_reply_err(req, rc ? -rc : EIO);
    }
}

static void read_announce(fuse_req_t req, struct fh *h, fuse_ino_t ino, size_t size, off_t off,
                          struct fuse_file_info *fi)
{
    (void)h;
    (void)ino;
    (void)size;
    (void)off;
    (void)fi;
    fs_announcer_read(req);
}

/* A settings file opened read-write: what was written so far. */
static void read_model_json(fuse_req_t req, struct fh *h, fuse_ino_t ino, size_t size, off_t off,
                            struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    struct fs *f = req_fs(req);
    pthread_mutex_lock(&f->lock);
    reply_slice(req, h->edit ? h->edit : "", h->edit_len, size, off);
    pthread_mutex_unlock(&f->lock);
}

/* state and the other plain task files: the text now. */
static void read_task_text(fuse_req_t req, struct fh *h, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)fi;
    struct fs *f = req_fs(req);
    struct node n = node_of(ino);
    size_t len = 0;
    char *text = NULL;
    enum task_state state = TASK_WAITING;
    uint64_t version = 0;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, h->idx);
    if (t) {
        text = task_file_text(f, t, (enum task_kind)n.kind, &len);
        state = t->state;
        version = t->version;
    }
    store_unlock(f->store);
    if (!t) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    /* After the store lock: fs->lock is taken before it elsewhere (wake_files). */
    pthread_mutex_lock(&f->lock);
    h->seen_state = state;
    h->seen_version = version;
    h->read_once = true;
    pthread_mutex_unlock(&f->lock);
    reply_slice(req, text, len, size, off);
    free(text);
}

static void (*const readers[])(fuse_req_t, struct fh *, fuse_ino_t, size_t, off_t,
                               struct fuse_file_info *) = {
    [FH_PLAIN] = read_task_text, [FH_NEW] = read_new,           [FH_STATE] = read_task_text,
    [FH_RESULT] = read_result,   [FH_EVENTS] = read_events,     [FH_SNAPSHOT] = read_snapshot,
    [FH_MEDIA] = read_media,     [FH_ANNOUNCE] = read_announce, [FH_MODEL_JSON] = read_model_json,
    [FH_LIVE] = read_task_text,  [FH_CTL] = read_task_text,
};

/* Each kind of open file has its reader; README and the event logs are read without a
 * handle. */
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    if (h)
        readers[h->kind](req, h, ino, size, off, fi);
    else if (ino == INO_README)
        reply_slice(req, readme_text, readme_len, size, off);
    else if (ino == INO_EVENTS_LOG || ino == INO_EVENTS_LOG1)
        read_event_log(req, ino, size, off);
    else
        fuse_reply_err(req, EBADF);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct fs *f = req_fs(req);
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    if (h) {
        pthread_mutex_lock(&f->lock);
        if (h->ph) {
            if (h->poll_prev)
                h->poll_prev->poll_next = h->poll_next;
            else
                f->pollers = h->poll_next;
            if (h->poll_next)
                h->poll_next->poll_prev = h->poll_prev;
            fuse_pollhandle_destroy(h->ph);
        }
        /* The last close: an input no close has ended yet (a read-write descriptor
         * never read, or a child that inherited it closing after its opener) is
         * submitted now; nobody waits for it, so its errors reach only the log. */
        struct op *o = NULL;
        if (h->kind == FH_NEW && new_end(f, NULL, h, OP_SUBMIT_LAST, 0, 0, &o) == 0 && o)
            o->fh = NULL;
        pthread_mutex_unlock(&f->lock);
        if (o && new_attach_files(f, o, h) < 0)
            op_free(o), o = NULL;
        if (o)
            engine_post(f->engine, &o->cmd);
        fh_free(h);
    }
    fuse_reply_err(req, 0);
}

void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
    struct fs *f = req_fs(req);
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    (void)ino;
    unsigned revents = 0;
    if (!h) {
        if (ph)
            fuse_pollhandle_destroy(ph);
        fuse_reply_poll(req, POLLIN | POLLRDNORM);
        return;
    }
    enum task_state state = TASK_WAITING;
    bool final = false, told = true;
    uint64_t version = 0;
    if (h->kind == FH_STATE || h->kind == FH_RESULT || h->kind == FH_LIVE) {
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, h->idx);
        if (t) {
            state = t->state;
            final = task_state_final(t->state) || t->gave_up;
            version = t->version;
        }
        store_unlock(f->store);
        /* A change of state committed but not yet invalidated in the kernel is not readable
         * yet: a read now could meet the old cached size; its wake-up follows the
         * invalidation. */
        if (h->kind == FH_STATE)
            told = fs_cache_current(f, h->idx, version);
    }
    pthread_mutex_lock(&f->lock);
    switch (h->kind) {
    case FH_STATE:
        /* Readable when the word changed since this descriptor last read it. */
        if (!h->read_once || (state != h->seen_state && told))
            revents = POLLIN | POLLRDNORM;
        break;
    case FH_RESULT:
        if (final)
            revents = POLLIN | POLLRDNORM;
        break;
    case FH_LIVE:
        /* Readable when the task moved (a status answer, a state) since this fd last read. */
        if (!h->read_once || version != h->seen_version)
            revents = POLLIN | POLLRDNORM;
        break;
    case FH_EVENTS:
        if (h->next < eventlog_stream_end(f->evlog))
            revents = POLLIN | POLLRDNORM;
        break;
    case FH_NEW:
        revents = POLLOUT | POLLWRNORM | (h->task_id ? POLLIN | POLLRDNORM : 0);
        break;
    default:
        revents = POLLIN | POLLRDNORM;
    }
    if (ph) {
        if (h->ph) {
            fuse_pollhandle_destroy(h->ph);
        } else {
            h->poll_prev = NULL;
            h->poll_next = f->pollers;
            if (f->pollers)
                f->pollers->poll_prev = h;
            f->pollers = h;
        }
        h->ph = ph;
    }
    pthread_mutex_unlock(&f->lock);
    fuse_reply_poll(req, revents);
}
static void event_log_announced(void *arg, bool ok);

/* events.log grew: a MODIFY for its watchers. One at a time is queued, however many lines
 * come meanwhile; the lines that come while it is queued or under way get one more. */
static void event_log_announce(struct fs *f)
{
    if (!f->announcer || __atomic_exchange_n(&f->evlog_note, 1, __ATOMIC_SEQ_CST))
        return;
    __atomic_store_n(&f->evlog_noted, eventlog_stream_end(f->evlog), __ATOMIC_SEQ_CST);
    announcer_post(f->announcer, ANNOUNCE_MODIFY, "events.log", 0, NULL, NULL, event_log_announced,
                   f);
}

/* On the announcer's thread: the line appended after the flag was seen set finds it clear
 * (and announces itself), or is seen here. */
static void event_log_announced(void *arg, bool ok)
{
    struct fs *f = arg;
    __atomic_store_n(&f->evlog_note, 0, __ATOMIC_SEQ_CST);
    if (ok && eventlog_stream_end(f->evlog) != __atomic_load_n(&f->evlog_noted, __ATOMIC_SEQ_CST))
        event_log_announce(f);
}

/* A line for the change in events and events.log (with f->lock held). */
void events_append(struct fs *f, const struct store_change *c, const char *word)
{
    int rc = eventlog_append(f->evlog, clock_now_ms(), c->model_name, c->task_id, word);
    if (rc < 0)
        log_warn(f->log,
                 "cannot write to events.log in state_dir (%s): its lines are missing until "
                 "there is room (the events stream has them)",
                 strerror(-rc));
    event_log_announce(f);
}
