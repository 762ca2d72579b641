#include "fs_internal.h"

#include "cachepath.h"
#include "clock.h"
#include "input.h"
#include "media.h"
#include "notify.h"
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

bool from_notifier(struct fs *f, fuse_req_t req)
{
    return f->notify_pid != 0 && fuse_req_ctx(req)->pid == f->notify_pid;
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
bool hidden_take(struct fs *f, fuse_ino_t ino)
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

bool hidden_has(struct fs *f, fuse_ino_t ino)
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

/* Announces the creation of ino (path, as name in parent): hidden from the notifier's own
 * lookups until then, so its operation reaches us and raises the event. */
static void announce_new(struct fs *f, fuse_ino_t ino, enum notify_op op, const char *path,
                         fuse_ino_t parent, const char *name, const char *target)
{
    hidden_add(f, ino);
    struct unhide *u = malloc(sizeof(*u));
    if (u)
        *u = (struct unhide){.f = f, .ino = ino};
    notify_post(f->notify, op, path, parent, name, target, u ? unhide_done : NULL, u);
}

/* Announcements for watchers (engine thread; the notifier does the work). */
void announce(struct fs *f, const struct store_change *c)
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
        announce_new(f, task_ino(c->task_idx, TK_DIR), NOTE_MKDIR, path, dir, c->task_id, NULL);
        snprintf(path, sizeof(path), "%s/latest", c->model_name);
        announce_new(f, model_ino(c->model_idx, MK_LATEST), NOTE_SYMLINK, path, dir, "latest",
                     c->task_id);
        return;
    }
    case STORE_TASK_STATE: {
        static const char *const ends[] = {"state", "result", "error"};
        size_t n = task_state_final(c->new_state) ? 3 : 1;
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s/%s", c->model_name, c->task_id, ends[i]);
            notify_post(f->notify, NOTE_MODIFY, path, 0, NULL, NULL, NULL, NULL);
        }
        if (c->new_state == TASK_SUCCESS) {
            /* files/ appears now: announced, so recursive watchers watch it too. */
            snprintf(path, sizeof(path), "%s/%s/files", c->model_name, c->task_id);
            announce_new(f, task_ino(c->task_idx, TK_FILES), NOTE_MKDIR, path,
                         task_ino(c->task_idx, TK_DIR), "files", NULL);
        }
        return;
    }
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
        announce_new(f, task_ino(c->task_idx, (enum task_kind)(TK_FILE0 + c->file_n)), NOTE_CREATE,
                     path, task_ino(c->task_idx, TK_FILES), name, NULL);
        return;
    }
    default:
        return;
    }
}
