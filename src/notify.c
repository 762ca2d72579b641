#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
    /* The announcer process and our end of its socket (see notify_start). */
    pid_t child;
    int sock;
    bool child_lost; /* logged once */
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

/* One request to the announcer: the operation (uint32_t), then the absolute
 * path and the symlink target, each NUL-terminated and under WIRE_PATH bytes;
 * the answer is an int32_t, 0 or -errno. */
#define WIRE_PATH 4096
#define WIRE_MAX (sizeof(uint32_t) + 2 * WIRE_PATH)

/* Runs in the announcer process: system calls only (it was forked from a
 * threaded process, so no malloc, stdio or locks). */
static int announce_here(enum notify_op op, const char *path, const char *target, bool attr_only)
{
    int fd, rc = 0;
    switch (op) {
    case NOTE_MKDIR:
        rc = mkdir(path, 0755);
        break;
    case NOTE_MODIFY:
        if (attr_only) {
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
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0444);
        if (fd < 0)
            return -errno;
        close(fd);
        return 0;
    case NOTE_SYMLINK:
        rc = symlink(target, path);
        break;
    case NOTE_BARRIER:
        return 0;
    }
    return rc < 0 ? -errno : 0;
}

/* attr_only: fixed for the mount, known before the fork. */
static _Noreturn void announcer_main(int sock, bool attr_only)
{
    static char buf[WIRE_MAX + 1];
    for (;;) {
        ssize_t k = recv(sock, buf, WIRE_MAX, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= (ssize_t)sizeof(uint32_t))
            _exit(0); /* genfs closed its end, or is gone */
        buf[k] = '\0';
        uint32_t op;
        memcpy(&op, buf, sizeof(op));
        const char *path = buf + sizeof(op);
        size_t plen = strlen(path);
        const char *target = sizeof(op) + plen + 1 < (size_t)k ? path + plen + 1 : "";
        int32_t rc = announce_here((enum notify_op)op, path, target, attr_only);
        if (send(sock, &rc, sizeof(rc), MSG_NOSIGNAL) != (ssize_t)sizeof(rc))
            _exit(0);
    }
}

/* Absolute paths, no descriptor held on the mount between announcements. */
static int full_path(struct notify *n, const char *rel, char *buf, size_t len)
{
    int k = snprintf(buf, len, "%s/%s", n->mountpoint, rel);
    return k < 0 || (size_t)k >= len ? -ENAMETOOLONG : 0;
}

/* Hands one announcement to the announcer and waits for its answer. */
static int announce(struct notify *n, const struct item *it)
{
    char msg[WIRE_MAX];
    uint32_t op = it->op;
    if (it->op == NOTE_BARRIER)
        return 0;
    memcpy(msg, &op, sizeof(op));
    size_t used = sizeof(op);
    if (full_path(n, it->path, msg + used, WIRE_PATH) < 0)
        return -ENAMETOOLONG;
    used += strlen(msg + used) + 1;
    const char *target = it->target ? it->target : "";
    size_t tlen = strlen(target);
    if (tlen >= WIRE_PATH)
        return -ENAMETOOLONG;
    memcpy(msg + used, target, tlen + 1);
    used += tlen + 1;
    if (it->op != NOTE_MODIFY)
        drop_entry(n, it);
    int32_t rc;
    if (send(n->sock, msg, used, MSG_NOSIGNAL) != (ssize_t)used)
        return -EPIPE;
    ssize_t k;
    do
        k = recv(n->sock, &rc, sizeof(rc), 0);
    while (k < 0 && errno == EINTR);
    return k == (ssize_t)sizeof(rc) ? rc : -EPIPE;
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
        pthread_mutex_lock(&n->lock);
        bool stopping = n->stopping;
        pthread_mutex_unlock(&n->lock);
        if (rc == -EPIPE && !n->child_lost && !stopping) {
            n->child_lost = true;
            log_warn(n->log, "the inotify announcer process is gone: watchers of the mount "
                             "will see no more events until genfs is mounted again");
        } else if (rc < 0 && rc != -ENOENT && rc != -EPIPE) {
            log_debug(n->log, "announcement for %s failed: %s", it->path ? it->path : "-",
                      strerror(-rc));
        }
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

/* The announcer is a process of its own, not a thread: an announcement is
 * a request to our own mount that the kernel waits for without interruption.
 * If genfs dies (kill -9, a crash) while a thread of its own waits there,
 * the process can never finish exiting, /dev/fuse stays open and the mount,
 * the state_dir lock and every waiting reader hang with it. A separate
 * process holds nothing of genfs's: when genfs dies its /dev/fuse closes,
 * the connection is aborted and the announcer's request fails. */
static int announcer_fork(struct notify *n, void (*in_child)(void *), void *child_arg)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(sv[0]);
        close(sv[1]);
        return -err;
    }
    if (pid == 0) {
        if (in_child)
            in_child(child_arg);
        /* Keep only the socket and stdio: not /dev/fuse, the database,
         * the state_dir lock or any connection of genfs's. */
        int keep = sv[1];
        if (keep > 3)
            close_range(3, (unsigned)keep - 1, 0);
        close_range((unsigned)keep + 1, ~0U, 0);
        prctl(PR_SET_NAME, "genfs-announce");
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        /* Ctrl-C or a stop of the unit reaches the whole group: genfs
         * shuts down and closes the socket, which is what ends this one. */
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigaction(SIGINT, &ign, NULL);
        sigaction(SIGTERM, &ign, NULL);
        sigaction(SIGHUP, &ign, NULL);
        announcer_main(keep, n->attr_only);
    }
    close(sv[1]);
    n->sock = sv[0];
    n->child = pid;
    return 0;
}

int notify_start(const char *mountpoint, struct fuse_session *se, struct log *lg, bool attr_only,
                 void (*in_child)(void *), void *child_arg, struct notify **out)
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
    n->sock = -1;
    int rc = announcer_fork(n, in_child, child_arg);
    if (rc < 0) {
        free(n->mountpoint);
        free(n);
        return rc;
    }
    pthread_rwlock_init(&n->alive_lock, NULL);
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    rc = pthread_create(&n->thread, NULL, notify_main, n);
    if (rc != 0) {
        n->started = false;
        notify_stop(n);
        return -rc;
    }
    n->started = true;
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
    /* Wakes the thread if it waits for the announcer's answer. */
    if (n->sock >= 0)
        shutdown(n->sock, SHUT_RDWR);
}

void notify_stop(struct notify *n)
{
    if (!n)
        return;
    notify_halt(n);
    if (n->started)
        pthread_join(n->thread, NULL);
    if (n->sock >= 0)
        close(n->sock);
    if (n->child > 0) {
        /* Its request (if any) failed when the session's descriptor closed. */
        kill(n->child, SIGKILL);
        for (int i = 0; i < 200 && waitpid(n->child, NULL, WNOHANG) == 0; i++)
            usleep(10000);
    }
    pthread_rwlock_destroy(&n->alive_lock);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    free(n->mountpoint);
    free(n);
}

pid_t notify_pid(const struct notify *n)
{
    return n ? n->child : 0;
}

bool notify_attr_only(const struct notify *n)
{
    return n && n->attr_only;
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
