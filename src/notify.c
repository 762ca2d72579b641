#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_QUEUE_MAX 100000

struct item {
    enum notify_op op;
    char *path;
    fuse_ino_t parent;
    char *name;
    char *target;
    notify_done_fn done;
    void *arg;
    struct item *next;
};

struct notify {
    char *mountpoint;
    struct fuse_session *se;
    struct log *log;
    bool attr_only;
    pthread_t thread;
    pid_t tid;
    /* held (read) while touching the session; main takes it (write) to mark
     * the session dead before its fd is closed */
    pthread_rwlock_t alive_lock;
    bool alive;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct item *head, *tail;
    size_t queued;
    bool stopping;
    bool started;
    uint64_t made, failed, busy_us;
};

static void item_free(struct item *it)
{
    free(it->path);
    free(it->name);
    free(it->target);
    free(it);
}

/* Drop the kernel's cached entry, so the operation reaches genfs (a name
 * cached as present gives EEXIST without asking us). */
static void drop_entry(struct notify *n, const struct item *it)
{
    pthread_rwlock_rdlock(&n->alive_lock);
    if (n->alive && it->parent && it->name)
        fuse_lowlevel_notify_inval_entry(n->se, it->parent, it->name, strlen(it->name));
    pthread_rwlock_unlock(&n->alive_lock);
}

/* Absolute paths, no descriptor held on the mount: an open one would make
 * a plain unmount fail as busy. */
static int full_path(struct notify *n, const char *rel, char *buf, size_t len)
{
    int k = snprintf(buf, len, "%s/%s", n->mountpoint, rel);
    return k < 0 || (size_t)k >= len ? -ENAMETOOLONG : 0;
}

static int announce(struct notify *n, const struct item *it)
{
    int fd, rc = 0;
    char path[4096];
    if (it->op != NOTE_BARRIER && full_path(n, it->path, path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    switch (it->op) {
    case NOTE_MKDIR:
        drop_entry(n, it);
        rc = mkdir(path, 0755);
        break;
    case NOTE_MODIFY:
        if (n->attr_only) {
            rc = utimensat(AT_FDCWD, path, NULL, 0);
            break;
        }
        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return -errno;
        if (write(fd, "\n", 1) != 1)
            rc = -errno;
        close(fd);
        return rc;
    case NOTE_CREATE:
        drop_entry(n, it);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0444);
        if (fd < 0)
            return -errno;
        close(fd);
        return 0;
    case NOTE_SYMLINK:
        drop_entry(n, it);
        rc = symlink(it->target, path);
        break;
    case NOTE_BARRIER:
        return 0;
    }
    return rc < 0 ? -errno : 0;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *notify_main(void *arg)
{
    struct notify *n = arg;
    pthread_mutex_lock(&n->lock);
    n->tid = (pid_t)syscall(SYS_gettid);
    pthread_cond_broadcast(&n->cond);
    for (;;) {
        while (!n->head && !n->stopping)
            pthread_cond_wait(&n->cond, &n->lock);
        if (n->stopping)
            break;
        struct item *it = n->head;
        n->head = it->next;
        if (!n->head)
            n->tail = NULL;
        n->queued--;
        pthread_mutex_unlock(&n->lock);

        int64_t t0 = mono_us();
        int rc = announce(n, it);
        /* A user's lookup may have cached the name again in between: once more. */
        if (rc == -EEXIST)
            rc = announce(n, it);
        if (rc < 0 && rc != -ENOENT)
            log_debug(n->log, "announcement for %s failed: %s", it->path ? it->path : "-",
                      strerror(-rc));
        if (it->done)
            it->done(it->arg, rc == 0);
        int64_t spent = mono_us() - t0;

        pthread_mutex_lock(&n->lock);
        if (it->op != NOTE_BARRIER) {
            n->busy_us += (uint64_t)spent;
            if (rc == 0)
                n->made++;
            else
                n->failed++;
        }
        item_free(it);
    }
    /* Whatever is still queued is dropped: no operation on a dying mount. */
    struct item *rest = n->head;
    n->head = n->tail = NULL;
    pthread_mutex_unlock(&n->lock);
    while (rest) {
        struct item *next = rest->next;
        if (rest->done)
            rest->done(rest->arg, false);
        item_free(rest);
        rest = next;
    }
    return NULL;
}

int notify_start(const char *mountpoint, struct fuse_session *se, struct log *lg, bool attr_only,
                 struct notify **out)
{
    struct notify *n = calloc(1, sizeof(*n));
    if (!n || !(n->mountpoint = strdup(mountpoint))) {
        free(n);
        return -ENOMEM;
    }
    n->se = se;
    n->log = lg;
    n->attr_only = attr_only;
    n->alive = true;
    pthread_rwlock_init(&n->alive_lock, NULL);
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    int rc = pthread_create(&n->thread, NULL, notify_main, n);
    if (rc != 0) {
        free(n->mountpoint);
        free(n);
        return -rc;
    }
    n->started = true;
    pthread_mutex_lock(&n->lock);
    while (n->tid == 0)
        pthread_cond_wait(&n->cond, &n->lock);
    pthread_mutex_unlock(&n->lock);
    *out = n;
    return 0;
}

void notify_halt(struct notify *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    n->stopping = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    pthread_rwlock_wrlock(&n->alive_lock);
    n->alive = false;
    pthread_rwlock_unlock(&n->alive_lock);
}

void notify_stop(struct notify *n)
{
    if (!n)
        return;
    notify_halt(n);
    if (n->started)
        pthread_join(n->thread, NULL);
    pthread_rwlock_destroy(&n->alive_lock);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    free(n->mountpoint);
    free(n);
}

pid_t notify_tid(const struct notify *n)
{
    return n ? n->tid : 0;
}

void notify_post(struct notify *n, enum notify_op op, const char *path, fuse_ino_t parent,
                 const char *name, const char *target, notify_done_fn done, void *arg)
{
    struct item *it = n ? calloc(1, sizeof(*it)) : NULL;
    if (it) {
        it->op = op;
        it->path = path ? strdup(path) : NULL;
        it->parent = parent;
        it->name = name ? strdup(name) : NULL;
        it->target = target ? strdup(target) : NULL;
        it->done = done;
        it->arg = arg;
    }
    bool queued = false;
    if (it) {
        pthread_mutex_lock(&n->lock);
        if (!n->stopping && n->queued < NOTIFY_QUEUE_MAX) {
            if (n->tail)
                n->tail->next = it;
            else
                n->head = it;
            n->tail = it;
            n->queued++;
            queued = true;
            pthread_cond_signal(&n->cond);
        }
        pthread_mutex_unlock(&n->lock);
    }
    if (!queued) {
        if (it)
            item_free(it);
        if (done)
            done(arg, false);
    }
}

void notify_counts(struct notify *n, uint64_t *made, uint64_t *failed, uint64_t *busy_us)
{
    *made = *failed = *busy_us = 0;
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    *made = n->made;
    *failed = n->failed;
    *busy_us = n->busy_us;
    pthread_mutex_unlock(&n->lock);
}
