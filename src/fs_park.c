/* Parked requests: a request that cannot be answered yet waits here until a wake-up
 * (or its interrupt, found by id) takes it; the engine-backed ops (op_done). */
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

/* What a wake-up looks for among the parked requests of f (f->lock held). */
struct match {
    uint64_t id; /* 0: any */
    unsigned kinds;
    uint32_t idx;
    uint32_t file_n;
    bool only_ready; /* and only those whose waiting() says they can be answered now */
};
#define KIND(k) (1u << (k))

static bool pending_ready(void *arg, struct parked *k)
{
    struct fs *f = arg;
    struct pending *p = (struct pending *)k;
    return !(k->kind == P_FILE     ? media_waiting(f, p)
             : k->kind == P_EVENTS ? events_waiting(f, p)
                                   : attr_waiting(f, p));
}

/* Unlinks every request m matches and returns them linked through k.next, oldest first, for
 * the caller to answer once it lets go of f->lock, which it holds here. */
static struct pending *take(struct fs *f, const struct match *m)
{
    struct parked_match pm = {.id = m->id,
                              .kinds = m->kinds,
                              .idx = m->idx,
                              .file_n = m->file_n,
                              .ready = m->only_ready ? pending_ready : NULL,
                              .arg = f};
    return (struct pending *)parked_take(&f->parked, &pm);
}

static struct pending *next_taken(struct pending *p)
{
    return (struct pending *)p->k.next;
}

static struct op *op_of(struct pending *p)
{
    return (struct op *)((char *)p - offsetof(struct op, p));
}

/* Interrupts find their request by id, never by a pointer that may be gone. */
static void on_interrupt(fuse_req_t req, void *data)
{
    struct fs *f = req_fs(req);
    uint64_t id = (uint64_t)(uintptr_t)data;
    pthread_mutex_lock(&f->lock);
    struct pending *p = take(f, &(struct match){.id = id});
    if (p) {
        if (p->k.kind == P_OP) {
            /* The engine still holds the op and frees it when done; the fd may
             * be closed before that, so the op lets go of it now. A submission
             * still lands in the store: nothing accepted is lost. */
            struct op *o = op_of(p);
            o->p.req = NULL;
            o->fh = NULL;
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (p) {
        fuse_reply_err(req, EINTR);
        if (p->k.kind != P_OP)
            free(p);
    }
}

/* A pending entry for a read that must wait, or NULL once req is answered:
 * EAGAIN for O_NONBLOCK readers, ENOMEM. */
struct pending *pending_for_read(fuse_req_t req, const struct fuse_file_info *fi)
{
    if (fi->flags & O_NONBLOCK) {
        fuse_reply_err(req, EAGAIN);
        return NULL;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        fuse_reply_err(req, ENOMEM);
    return p;
}

/* Parks a read until the engine can answer it, unless ready() (checked again
 * under f->lock, which the observers also take before waking readers) says
 * it can be answered now: then it returns false and the caller answers. */
bool park(struct fs *f, struct pending *p, bool (*waiting)(struct fs *, struct pending *))
{
    pthread_mutex_lock(&f->lock);
    if (f->shutting_down || !waiting(f, p)) {
        pthread_mutex_unlock(&f->lock);
        return false;
    }
    uint64_t id = parked_link(&f->parked, &p->k);
    pthread_mutex_unlock(&f->lock);
    fuse_req_interrupt_func(p->req, on_interrupt, (void *)(uintptr_t)id);
    return true;
}

void defer(struct fs *f, struct pending *p)
{
    pthread_mutex_lock(&f->lock);
    uint64_t id = parked_link(&f->parked, &p->k);
    pthread_mutex_unlock(&f->lock);
    fuse_req_interrupt_func(p->req, on_interrupt, (void *)(uintptr_t)id);
}
/* ---- engine-backed operations ---- */

static void op_done(struct engine_cmd *cmd, int err, const char *msg);

struct op *op_new(struct fs *f, fuse_req_t req, enum op_kind kind)
{
    struct op *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->fs = f;
    o->kind = kind;
    o->p.k.kind = P_OP;
    o->p.req = req;
    o->cmd.done = op_done;
    o->cmd.arg = o;
    return o;
}

void op_post(struct fs *f, struct op *o)
{
    defer(f, &o->p);
    engine_post(f->engine, &o->cmd);
}

void op_free(struct op *o)
{
    engine_cmd_clear_files(&o->cmd);
    free(o->cmd.name);
    free(o->cmd.input_json);
    free(o->cmd.prompt);
    free(o);
}

/* A submission's answer, held back until the announcer has announced the task. */
struct late_reply {
    fuse_req_t req;
    enum op_kind kind;
    char line[256];
    size_t len;
};

static void late_reply_send(void *arg, bool ok)
{
    (void)ok;
    struct late_reply *lr = arg;
    if (lr->kind == OP_READ_ID)
        fuse_reply_buf(lr->req, lr->line, lr->len);
    else
        fuse_reply_err(lr->req, 0);
    free(lr);
}

static void op_done(struct engine_cmd *cmd, int err, const char *msg)
{
    struct op *o = cmd->arg;
    struct fs *f = o->fs;
    pthread_mutex_lock(&f->lock);
    fuse_req_t req = o->p.req;
    if (req)
        parked_unlink(&f->parked, &o->p.k);
    char idline[256] = "";
    size_t idlen = 0;
    if (o->fh && err == 0) {
        free(o->fh->task_id);
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, cmd->task_idx);
        o->fh->task_id = t ? strdup(t->id) : NULL;
        store_unlock(f->store);
        o->fh->id_pos = 0;
        if (o->kind == OP_READ_ID && o->fh->task_id) {
            snprintf(idline, sizeof(idline), "%s\n", o->fh->task_id);
            idlen = strlen(idline) < o->p.size ? strlen(idline) : o->p.size;
            o->fh->id_pos = idlen;
        }
    }
    pthread_mutex_unlock(&f->lock);
    bool submission = o->kind == OP_SUBMIT_CLOSE || o->kind == OP_READ_ID;
    /* The engine says a failed submission in its log itself: each failure once. */
    if (err && msg && o->kind != OP_RMDIR && err != -EEXIST && !submission &&
        o->kind != OP_SUBMIT_LAST)
        log_warn(f->log, "%s", msg);
    if (req && !err && submission && f->announcer) {
        /* The close or read returns once the task's directory was announced, so a
         * script woken by the event finds the task complete. */
        struct late_reply *lr = malloc(sizeof(*lr));
        if (lr) {
            *lr = (struct late_reply){.req = req, .kind = o->kind, .len = idlen};
            memcpy(lr->line, idline, idlen);
            announcer_post(f->announcer, ANNOUNCE_BARRIER, NULL, 0, NULL, NULL, late_reply_send,
                           lr);
            op_free(o);
            return;
        }
    }
    if (req) {
        if (err)
            fuse_reply_err(req, -err);
        else if (o->kind == OP_READ_ID)
            fuse_reply_buf(req, idline, idlen);
        else if (o->kind == OP_MKDIR_MODEL)
            reply_entry(req, f, model_ino(cmd->model_idx, MK_DIR));
        else if (o->kind == OP_MKDIR_TASK)
            reply_entry(req, f, task_ino(cmd->task_idx, TK_DIR));
        else if (o->kind == OP_CTL)
            fuse_reply_write(req, o->p.size);
        else
            fuse_reply_err(req, 0);
    }
    op_free(o);
}
void wake_events(struct fs *f)
{
    /* Called with f->lock held; replies go out after it is released. A read parked at an
     * offset the stream has not reached yet (a pread ahead) waits on. */
    struct pending *ready = take(f, &(struct match){.kinds = KIND(P_EVENTS),
                                                    .idx = PARKED_ANY,
                                                    .file_n = PARKED_ANY,
                                                    .only_ready = true});
    while (ready) {
        struct pending *next = next_taken(ready);
        char *buf = malloc(ready->size);
        size_t used = buf ? events_fill(f, ready->fh, ready->off, buf, ready->size) : 0;
        pthread_mutex_unlock(&f->lock);
        fuse_reply_buf(ready->req, buf, used);
        pthread_mutex_lock(&f->lock);
        free(buf);
        free(ready);
        ready = next;
    }
}

void wake_results(struct fs *f, uint32_t idx)
{
    pthread_mutex_lock(&f->lock);
    struct pending *ready =
        take(f, &(struct match){.kinds = KIND(P_RESULT), .idx = idx, .file_n = PARKED_ANY});
    pthread_mutex_unlock(&f->lock);
    while (ready) {
        struct pending *next = next_taken(ready);
        char *text = NULL;
        size_t len = 0;
        int rc = result_ready(f, idx, &text, &len);
        answer_result(ready->req, rc ? rc : -EIO, text, len, ready->size, ready->off);
        free(ready);
        ready = next;
    }
}

/* Answers the parked reads (P_FILE) and stats (P_ATTR) of files/<n> of task idx that can
 * be answered now; n = PARKED_ANY: of any of its files (the task was forgotten). */
void wake_files(struct fs *f, uint32_t idx, uint32_t n)
{
    pthread_mutex_lock(&f->lock);
    struct pending *ready = take(
        f, &(struct match){
               .kinds = KIND(P_FILE) | KIND(P_ATTR), .idx = idx, .file_n = n, .only_ready = true});
    pthread_mutex_unlock(&f->lock);
    while (ready) {
        struct pending *next = next_taken(ready);
        if (ready->k.kind == P_ATTR) {
            answer_attr(f, ready->req, idx, ready->k.file_n,
                        media_attr_ready(f, idx, ready->k.file_n));
        } else {
            int fd;
            int rc = media_ready(f, idx, ready->k.file_n, &fd);
            if (rc == 1) {
                reply_fd(ready->req, fd, ready->size, ready->off);
                close(fd);
            } else {
                fuse_reply_err(ready->req, rc < 0 ? -rc : EIO);
            }
        }
        free(ready);
        ready = next;
    }
}

void wake_pollers(struct fs *f, uint32_t idx)
{
    pthread_mutex_lock(&f->lock);
    for (struct fh *h = f->pollers; h; h = h->poll_next)
        if (h->ph && (h->kind == FH_EVENTS || h->idx == idx) &&
            (h->kind == FH_STATE || h->kind == FH_RESULT || h->kind == FH_EVENTS ||
             h->kind == FH_LIVE))
            fuse_lowlevel_notify_poll(h->ph);
    pthread_mutex_unlock(&f->lock);
}
void fs_shutdown(struct fs *f)
{
    pthread_mutex_lock(&f->lock);
    f->shutting_down = true;
    struct pending *p =
        take(f, &(struct match){.kinds = ~0u, .idx = PARKED_ANY, .file_n = PARKED_ANY});
    for (struct fh *h = f->pollers; h; h = h->poll_next)
        if (h->ph)
            fuse_lowlevel_notify_poll(h->ph);
    pthread_mutex_unlock(&f->lock);
    while (p) {
        struct pending *next = next_taken(p);
        if (p->k.kind == P_EVENTS) {
            fuse_reply_buf(p->req, NULL, 0);
            free(p);
        } else if (p->k.kind == P_RESULT || p->k.kind == P_FILE || p->k.kind == P_ATTR) {
            fuse_reply_err(p->req, EIO);
            free(p);
        } else {
            /* Ops are answered by the engine as it stops. */
            fuse_reply_err(p->req, EIO);
            op_of(p)->p.req = NULL;
        }
        p = next;
    }
}
