#include "announcer.h"

#include "clock.h"
#include "mountinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ANNOUNCE_QUEUE_MAX 100000

struct item {
    enum announce_op op;
    char *path;
    fuse_ino_t parent;
    char *name;
    char *target;
    announce_done_fn done;
    void *arg;
    struct item *next;
};

struct announcer {
    char *mountpoint;
    struct fuse_session *se;
    struct log *log;
    bool attr_only;
    pthread_t thread;
    /* The announcer process and our end of its socket (see announcer_start). */
    pid_t child;
    int sock;
    bool child_lost; /* logged once */
    /* The mount's device, to notice the user's unmount (see watch_main);
     * watch: found, and the announcer may use a private view of the mount. */
    bool watch;
    unsigned dev_major, dev_minor;
    int mountinfo_fd;
    int wake_fd; /* wakes the watcher at announcer_halt */
    pthread_t watcher;
    bool watcher_started;
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
static void drop_entry(struct announcer *n, const struct item *it)
{
    pthread_rwlock_rdlock(&n->alive_lock);
    if (n->alive && it->parent && it->name)
        fuse_lowlevel_notify_inval_entry(n->se, it->parent, it->name, strlen(it->name));
    pthread_rwlock_unlock(&n->alive_lock);
}

/* One request to the announcer: the operation (uint32_t), then the absolute
 * path and the symlink target, each NUL-terminated and under WIRE_PATH bytes;
 * the answer is an int32_t, 0 or -errno. Before the first request the
 * announcer says how it reaches the mount: an int32_t, 0 (a private view) or
 * -errno (why not: through the mount itself). */
#define WIRE_PATH 4096
#define WIRE_MAX (sizeof(uint32_t) + 2 * WIRE_PATH)

/* Runs in the announcer process: system calls only (it was forked from a
 * threaded process, so no malloc, stdio or locks). path: relative to dir. */
static int announce_here(enum announce_op op, int dir, const char *path, const char *target,
                         bool attr_only)
{
    int fd, rc = 0;
    switch (op) {
    case ANNOUNCE_MKDIR:
        rc = mkdirat(dir, path, 0755);
        break;
    case ANNOUNCE_MODIFY:
        if (attr_only) {
            rc = utimensat(dir, path, NULL, 0);
            break;
        }
        fd = openat(dir, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return -errno;
        if (write(fd, "\n", 1) != 1)
            rc = -errno;
        close(fd);
        return rc;
    case ANNOUNCE_CREATE:
        fd = openat(dir, path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0444);
        if (fd < 0)
            return -errno;
        close(fd);
        return 0;
    case ANNOUNCE_SYMLINK:
        rc = symlinkat(target, dir, path);
        break;
    case ANNOUNCE_BARRIER:
        return 0;
    }
    return rc < 0 ? -errno : 0;
}

/* view: a private view of the mount (see view_open), whose root the paths
 * are then taken from, or -1: the absolute paths through the mount itself. */
static _Noreturn void announcer_main(int sock, int view, size_t mnt_len, bool attr_only)
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
        int dir = AT_FDCWD;
        if (view >= 0 && plen > mnt_len + 1) {
            dir = view;
            path += mnt_len + 1;
        }
        int32_t rc = announce_here((enum announce_op)op, dir, path, target, attr_only);
        if (send(sock, &rc, sizeof(rc), MSG_NOSIGNAL) != (ssize_t)sizeof(rc))
            _exit(0);
    }
}

/* A descriptor and an errno in one message (fd < 0: none). */
static void send_fd(int sock, int fd, int32_t err)
{
    char ctl[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {.iov_base = &err, .iov_len = sizeof(err)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        mh.msg_control = ctl;
        mh.msg_controllen = sizeof(ctl);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* The descriptor send_fd sent, or -errno. */
static int recv_fd(int sock)
{
    int32_t err = -EPIPE;
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &err, .iov_len = sizeof(err)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
    ssize_t k;
    do
        k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (k < 0 && errno == EINTR);
    struct cmsghdr *cm = k > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
    int fd = -1;
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    if (fd >= 0)
        return fd;
    return k == (ssize_t)sizeof(err) && err > 0 ? -err : -EPIPE;
}

/* A child joined to its parent by a socket pair (sv[0] the parent's end, sv[1]
 * the child's): the child's pid, 0 in the child, or a negative errno. */
static pid_t fork_with_socket(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(sv[0]);
        close(sv[1]);
        return -err;
    }
    return pid;
}

/* Without the privilege to copy a mount here (genfs is not root), a child
 * makes the copy in a user and mount namespace of its own, where it has that
 * privilege, and hands it over; its namespace, with its copy of every other
 * mount, goes when it exits. */
static int view_from_userns(const char *mnt)
{
    int sv[2];
    pid_t pid = fork_with_socket(sv);
    if (pid < 0)
        return (int)pid;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = -1;
        int32_t err = 0;
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0 ||
            (fd = open_tree(AT_FDCWD, mnt, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)) < 0)
            err = errno;
        send_fd(sv[1], fd, err);
        _exit(0);
    }
    close(sv[1]);
    int fd = recv_fd(sv[0]);
    close(sv[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return fd;
}

/* A private view of the mount: a detached copy of it (open_tree), the same
 * file system (inotify watchers see what is done through it), which a
 * user's umount does not count, so an announcement never makes it fail with
 * "busy". The copy keeps the file system alive after the user's unmount
 * until the announcer ends: watch_main sees to that. Returns the descriptor
 * or -errno. Runs in the announcer: system calls only. */
static int view_open(const char *mnt, unsigned major, unsigned minor)
{
    int fd = open_tree(AT_FDCWD, mnt, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0 && errno != EPERM)
        return -errno;
    if (fd < 0 && (fd = view_from_userns(mnt)) < 0)
        return fd;
    /* Still ours (not what is below an early unmount)? DONT_SYNC: from what
     * the kernel has, no request (genfs may not be serving yet). */
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, 0, &sx) < 0 ||
        sx.stx_dev_major != major || sx.stx_dev_minor != minor) {
        close(fd);
        return -ESTALE;
    }
    return fd;
}

/* Absolute paths: the announcer takes them from the root of its view, or,
 * without one, goes through the mount (holding nothing between two). */
static int full_path(struct announcer *n, const char *rel, char *buf, size_t len)
{
    int k = snprintf(buf, len, "%s/%s", n->mountpoint, rel);
    return k < 0 || (size_t)k >= len ? -ENAMETOOLONG : 0;
}

/* Hands one announcement to the announcer and waits for its answer. */
static int announcer_perform(struct announcer *n, const struct item *it)
{
    char msg[WIRE_MAX];
    uint32_t op = it->op;
    if (it->op == ANNOUNCE_BARRIER)
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
    if (it->op != ANNOUNCE_MODIFY)
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

/* The announcer's first word: how it reaches the mount. */
static void announcer_hello(struct announcer *n)
{
    int32_t how;
    ssize_t k;
    do
        k = recv(n->sock, &how, sizeof(how), 0);
    while (k < 0 && errno == EINTR);
    if (k != (ssize_t)sizeof(how))
        return; /* gone: the first announcement says so */
    if (how == 0) {
        log_debug(n->log, "announcements go through a private view of the mount");
        return;
    }
    const char *why = !n->watch       ? "genfs cannot watch /proc/self/mountinfo for the unmount"
                      : how == -EPERM ? "no user namespaces: see kernel.unprivileged_userns_clone "
                                        "and user.max_user_namespaces"
                                      : strerror(-how);
    log_info(n->log,
             "announcements go through the mount itself (no private view of it: %s): an "
             "unmount that meets one fails with \"Device or resource busy\"; run it again",
             why);
}

static void *announcer_thread_main(void *arg)
{
    struct announcer *n = arg;
    announcer_hello(n);
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

        int64_t t0 = clock_mono_us();
        int rc = announcer_perform(n, it);
        /* A user's lookup may have cached the name again in between: once more. */
        if (rc == -EEXIST)
            rc = announcer_perform(n, it);
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
        int64_t spent = clock_mono_us() - t0;

        pthread_mutex_lock(&n->lock);
        if (it->op != ANNOUNCE_BARRIER) {
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

/* The user unmounted the mount: the announcer's view is what keeps the file
 * system alive now. Ending the announcer lets the kernel finish it, which
 * ends the session like any unmount. */
static void announcer_end_unmounted(struct announcer *n)
{
    pthread_mutex_lock(&n->lock);
    bool stopping = n->stopping;
    n->stopping = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    if (!stopping)
        log_info(n->log, "%s was unmounted: ending the inotify announcer", n->mountpoint);
    shutdown(n->sock, SHUT_RDWR);
    kill(n->child, SIGKILL);
}

/* Watches genfs's own mount table (poll() on mountinfo wakes at each change
 * of it) until no mount of the file system is left in it. */
static void *watch_main(void *arg)
{
    struct announcer *n = arg;
    for (;;) {
        char *text = mountinfo_read(n->mountinfo_fd);
        bool gone = text && !mountinfo_has_dev(text, n->dev_major, n->dev_minor);
        if (gone) {
            announcer_end_unmounted(n);
            free(text);
            return NULL;
        }
        struct pollfd p[2] = {{.fd = n->mountinfo_fd, .events = POLLPRI},
                              {.fd = n->wake_fd, .events = POLLIN}};
        /* A table that could not be read is read again in a second; so is
         * one after a failed poll (it must not stop watching: after the
         * unmount, the view would keep the file system alive). */
        int k = poll(p, 2, text ? -1 : 1000);
        free(text);
        if (k > 0 && p[1].revents)
            return NULL;
        if (k < 0 && errno != EINTR)
            poll(p + 1, 1, 1000);
    }
}

/* The mount genfs just made at the mountpoint: its device, from the top of
 * what is mounted there. Sets n->watch when the announcer may use a view. */
static void mount_find(struct announcer *n)
{
    n->mountinfo_fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    char *text = n->mountinfo_fd >= 0 ? mountinfo_read(n->mountinfo_fd) : NULL;
    struct mountinfo_entry at[64];
    size_t k = text ? mountinfo_at(text, n->mountpoint, at, 64) : 0;
    const struct mountinfo_entry *top = mountinfo_top(at, k < 64 ? k : 64);
    if (top && mountinfo_is_fuse(top)) {
        n->dev_major = top->major;
        n->dev_minor = top->minor;
        n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        n->watch = n->wake_fd >= 0;
    }
    free(text);
}

/* The announcer is a process of its own, not a thread: an announcement is
 * a request to our own mount that the kernel waits for without interruption.
 * If genfs dies (kill -9, a crash) while a thread of its own waits there,
 * the process can never finish exiting, /dev/fuse stays open and the mount,
 * the state_dir lock and every waiting reader hang with it. A separate
 * process holds nothing of genfs's: when genfs dies its /dev/fuse closes,
 * the connection is aborted and the announcer's request fails. */
static int announcer_fork(struct announcer *n, void (*in_child)(void *), void *child_arg)
{
    int sv[2];
    pid_t parent = getpid();
    struct rlimit nofile;
    int open_max = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < (1u << 20)
                       ? (int)nofile.rlim_cur
                       : 1 << 20;
    pid_t pid = fork_with_socket(sv);
    if (pid < 0)
        return (int)pid;
    if (pid == 0) {
        if (in_child)
            in_child(child_arg);
        /* Keep only the socket and stdio: not /dev/fuse, the database,
         * the state_dir lock or any connection of genfs's. */
        int keep = sv[1];
        /* One close per descriptor up to the limit, not close_range(2): valgrind
         * (3.19) aborts on close_range over its own descriptors. */
        for (int fd = 3; fd < open_max; fd++)
            if (fd != keep)
                close(fd);
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
        int view = n->watch ? view_open(n->mountpoint, n->dev_major, n->dev_minor) : -ENOENT;
        int32_t how = view < 0 ? view : 0;
        if (send(keep, &how, sizeof(how), MSG_NOSIGNAL) != (ssize_t)sizeof(how))
            _exit(0);
        announcer_main(keep, view, strlen(n->mountpoint), n->attr_only);
    }
    close(sv[1]);
    n->sock = sv[0];
    n->child = pid;
    return 0;
}

int announcer_start(const char *mountpoint, struct fuse_session *se, struct log *lg, bool attr_only,
                    void (*in_child)(void *), void *child_arg, struct announcer **out)
{
    struct announcer *n = calloc(1, sizeof(*n));
    if (!n || !(n->mountpoint = strdup(mountpoint))) {
        free(n);
        return -ENOMEM;
    }
    n->se = se;
    n->log = lg;
    n->attr_only = attr_only;
    n->alive = true;
    n->sock = -1;
    n->wake_fd = -1;
    n->mountinfo_fd = -1;
    pthread_rwlock_init(&n->alive_lock, NULL);
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    mount_find(n);
    int rc = announcer_fork(n, in_child, child_arg);
    if (rc == 0) {
        rc = -pthread_create(&n->thread, NULL, announcer_thread_main, n);
        n->started = rc == 0;
    }
    /* A view without a watcher would keep the file system alive after the
     * user's unmount: no announcer rather than that. */
    if (rc == 0 && n->watch) {
        rc = -pthread_create(&n->watcher, NULL, watch_main, n);
        n->watcher_started = rc == 0;
    }
    if (rc < 0) {
        announcer_stop(n);
        return rc;
    }
    *out = n;
    return 0;
}

void announcer_halt(struct announcer *n)
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
    if (n->wake_fd >= 0)
        eventfd_write(n->wake_fd, 1);
}

void announcer_stop(struct announcer *n)
{
    if (!n)
        return;
    announcer_halt(n);
    if (n->started)
        pthread_join(n->thread, NULL);
    if (n->watcher_started)
        pthread_join(n->watcher, NULL);
    if (n->sock >= 0)
        close(n->sock);
    if (n->mountinfo_fd >= 0)
        close(n->mountinfo_fd);
    if (n->wake_fd >= 0)
        close(n->wake_fd);
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

pid_t announcer_pid(const struct announcer *n)
{
    return n ? n->child : 0;
}

void announcer_post(struct announcer *n, enum announce_op op, const char *path, fuse_ino_t parent,
                    const char *name, const char *target, announce_done_fn done, void *arg)
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
        if (!n->stopping && n->queued < ANNOUNCE_QUEUE_MAX) {
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

void announcer_counts(struct announcer *n, uint64_t *made, uint64_t *failed, uint64_t *busy_us)
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
