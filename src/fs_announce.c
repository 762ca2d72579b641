/* The announcer's side: what each store change announces (announce) and every answer
 * to the announcer's own requests (fs_announcer_asks, announcer_*). */
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

/* The one test of who asks: the announcer (genfs-announce, a child process, see
 * announcer.c) performs on the mount the operation whose event a watcher should see. */
bool fs_announcer_asks(struct fs *f, fuse_req_t req)
{
    return f->announcer_pid != 0 && fuse_req_ctx(req)->pid == f->announcer_pid;
}

static void hidden_add(struct fs *f, fuse_ino_t ino)
{
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_hidden; i++)
        if (f->hidden[i] == ino)
            goto out;
    if (f->n_hidden == f->cap_hidden) {
        size_t cap = f->cap_hidden ? f->cap_hidden * 2 : 64;
        fuse_ino_t *h = realloc(f->hidden, cap * sizeof(*h));
        if (!h)
            goto out;
        f->hidden = h;
        f->cap_hidden = cap;
    }
    f->hidden[f->n_hidden++] = ino;
out:
    pthread_mutex_unlock(&f->lock);
}

/* True if ino was hidden (and is no longer). */
static bool hidden_take(struct fs *f, fuse_ino_t ino)
{
    bool found = false;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_hidden; i++) {
        if (f->hidden[i] == ino) {
            f->hidden[i] = f->hidden[--f->n_hidden];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return found;
}

static bool hidden_has(struct fs *f, fuse_ino_t ino)
{
    bool found = false;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_hidden && !found; i++)
        found = f->hidden[i] == ino;
    pthread_mutex_unlock(&f->lock);
    return found;
}
struct unhide {
    struct fs *f;
    fuse_ino_t ino;
};

/* An announcement that failed leaves nothing hidden: later ones below it must find it. */
static void unhide_done(void *arg, bool ok)
{
    struct unhide *u = arg;
    if (!ok)
        hidden_take(u->f, u->ino);
    free(u);
}

/* Announces the creation of ino (path, as name in parent): hidden from the announcer's own
 * lookups until then, so its operation reaches us and raises the event. */
static void announce_new(struct fs *f, fuse_ino_t ino, enum announce_op op, const char *path,
                         fuse_ino_t parent, const char *name, const char *target)
{
    hidden_add(f, ino);
    struct unhide *u = malloc(sizeof(*u));
    if (u)
        *u = (struct unhide){.f = f, .ino = ino};
    announcer_post(f->announcer, op, path, parent, name, target, u ? unhide_done : NULL, u);
}

/* progress and logs: a MODIFY for each that the change moved (struct task shown). */
static void announce_live(struct fs *f, const struct store_change *c)
{
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, c->task_idx);
    unsigned shown = t ? t->shown : 0;
    store_unlock(f->store);
    static const struct {
        unsigned bit;
        const char *name;
    } live[] = {{STORE_SHOWN_PROGRESS, "progress"}, {STORE_SHOWN_LOGS, "logs"}};
    char path[1024];
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        if (!(shown & live[i].bit))
            continue;
        snprintf(path, sizeof(path), "%s/%s/%s", c->model_name, c->task_id, live[i].name);
        announcer_post(f->announcer, ANNOUNCE_MODIFY, path, 0, NULL, NULL, NULL, NULL);
    }
}

/* Announcements for watchers (engine thread; the announcer does the work). */
void fs_announce_change(struct fs *f, const struct store_change *c)
{
    char path[1024];
    switch (c->kind) {
    case STORE_TASK_ADDED: {
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, c->task_idx);
        bool adopted = t && t->adopted;
        store_unlock(f->store);
        /* An adopted task came from the user's own mkdir: the kernel saw it. */
        if (adopted)
            return;
        fuse_ino_t dir = model_ino(c->model_idx, MK_DIR);
        snprintf(path, sizeof(path), "%s/%s", c->model_name, c->task_id);
        announce_new(f, task_ino(c->task_idx, TK_DIR), ANNOUNCE_MKDIR, path, dir, c->task_id, NULL);
        snprintf(path, sizeof(path), "%s/latest", c->model_name);
        announce_new(f, model_ino(c->model_idx, MK_LATEST), ANNOUNCE_SYMLINK, path, dir, "latest",
                     c->task_id);
        return;
    }
    case STORE_TASK_STATE: {
        static const char *const ends[] = {"state", "result", "error"};
        size_t n = task_state_final(c->new_state) ? 3 : 1;
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s/%s", c->model_name, c->task_id, ends[i]);
            announcer_post(f->announcer, ANNOUNCE_MODIFY, path, 0, NULL, NULL, NULL, NULL);
        }
        if (c->new_state == TASK_SUCCESS) {
            /* files/ appears now: announced, so recursive watchers watch it too. */
            snprintf(path, sizeof(path), "%s/%s/files", c->model_name, c->task_id);
            announce_new(f, task_ino(c->task_idx, TK_FILES), ANNOUNCE_MKDIR, path,
                         task_ino(c->task_idx, TK_DIR), "files", NULL);
        }
        announce_live(f, c);
        return;
    }
    case STORE_TASK_STATUS:
        announce_live(f, c);
        return;
    case STORE_FILE_CHANGED: {
        char name[32] = "";
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, c->task_idx);
        if (t && t->files && c->file_n < t->n_urls && t->files[c->file_n].state == FILE_DONE)
            snprintf(name, sizeof(name), "%s", t->files[c->file_n].name);
        store_unlock(f->store);
        if (!name[0])
            return;
        snprintf(path, sizeof(path), "%s/%s/files/%s", c->model_name, c->task_id, name);
        announce_new(f, task_ino(c->task_idx, (enum task_kind)(TK_FILE0 + c->file_n)),
                     ANNOUNCE_CREATE, path, task_ino(c->task_idx, TK_FILES), name, NULL);
        return;
    }
    default:
        return;
    }
}

/* ---- the announcer's requests: each handler that it reaches sends it here, and
 * what is answered changes nothing (the kernel raises the event on the reply) ---- */

/* Not yet announced: absent to the announcer, so its mkdir or create reaches us. */
void fs_announcer_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *f = req_fs(req);
    fuse_ino_t ino = child_ino(f, parent, name);
    if (!ino || hidden_has(f, ino))
        fuse_reply_err(req, ENOENT);
    else
        reply_entry(req, f, ino);
}

/* An ATTRIB announcement: the attributes as they are. */
void fs_announcer_setattr(fuse_req_t req, fuse_ino_t ino)
{
    op_getattr(req, ino, NULL);
}

/* A MODIFY announcement opens the file for writing: a handle that changes nothing. */
void fs_announcer_open(fuse_req_t req, struct fuse_file_info *fi)
{
    struct fh *h = calloc(1, sizeof(*h));
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    h->kind = FH_ANNOUNCE;
    fi->direct_io = 1;
    fi->fh = (uint64_t)(uintptr_t)h;
    if (fuse_reply_open(req, fi) == -ENOENT)
        free(h); /* interrupted: no release will come */
}

void fs_announcer_read(fuse_req_t req)
{
    fuse_reply_buf(req, NULL, 0);
}

/* The kernel raises MODIFY. */
void fs_announcer_write(fuse_req_t req, size_t size)
{
    fuse_reply_write(req, size);
}

/* MKDIR of a task directory or files/: it exists already, the announcer makes it visible. */
void fs_announcer_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *f = req_fs(req);
    fuse_ino_t ino = child_ino(f, parent, name);
    hidden_take(f, ino);
    if (ino)
        reply_entry(req, f, ino);
    else
        fuse_reply_err(req, ENOENT);
}

/* CREATE of files/<n> once whole (the inotify CREATE of files/0.png). */
void fs_announcer_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                         struct fuse_file_info *fi)
{
    struct fs *f = req_fs(req);
    fuse_ino_t ino = child_ino(f, parent, name);
    struct fuse_entry_param e = {0};
    struct fh *h = ino ? calloc(1, sizeof(*h)) : NULL;
    if (!h || fs_stat(f, ino, &e.attr) < 0) {
        free(h);
        op_refuse_name(req, parent, name);
        return;
    }
    hidden_take(f, ino);
    h->kind = FH_ANNOUNCE;
    e.ino = ino;
    e.generation = 1;
    e.attr_timeout = attr_timeout_for(f, ino);
    e.entry_timeout = ENTRY_TIMEOUT;
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    if (fuse_reply_create(req, &e, fi) == -ENOENT)
        free(h);
}

/* SYMLINK: latest now names the new task. */
void fs_announcer_symlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *f = req_fs(req);
    struct node n = node_of(parent);
    if (n.type != N_MODEL || strcmp(name, "latest") != 0) {
        op_refuse_name(req, parent, name);
        return;
    }
    fuse_ino_t ino = model_ino(n.idx, MK_LATEST);
    hidden_take(f, ino);
    reply_entry(req, f, ino);
}
