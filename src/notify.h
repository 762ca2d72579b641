/* The notifier: turns store changes into real operations on the mount
 * (mkdir, open-write-close, create, symlink) so the kernel raises inotify
 * events for watchers. A thread queues them to an announcer process that
 * performs them, through a private view of the mount where it can have one
 * (a user's unmount does not count it, and genfs ends the announcer when it
 * sees that unmount); FUSE handlers recognise its requests by its pid and
 * treat them as announcements that change nothing. */
#ifndef GENFS_NOTIFY_H
#define GENFS_NOTIFY_H

#include "log.h"

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>

enum notify_op {
    NOTE_MKDIR,   /* a task dir appeared: CREATE,ISDIR */
    NOTE_MODIFY,  /* a file changed: MODIFY, CLOSE_WRITE */
    NOTE_CREATE,  /* a file is whole: CREATE, CLOSE_WRITE */
    NOTE_SYMLINK, /* latest points elsewhere: CREATE */
    NOTE_BARRIER, /* nothing: its done callback runs after what came before */
};

/* Runs on the notifier's thread after the operation (ok: it raised its event). */
typedef void (*notify_done_fn)(void *arg, bool ok);

struct notify;

/* mountpoint: absolute (resolved before mounting), just mounted by se;
 * in_child(child_arg) runs first in the announcer (system calls only: wipe
 * secrets); attr_only: the kernel checks modes itself (default_permissions):
 * MODIFY falls back to an ATTRIB announcement. */
int notify_start(const char *mountpoint, struct fuse_session *se, struct log *lg, bool attr_only,
                 void (*in_child)(void *), void *child_arg, struct notify **out);
/* Takes no more items and stops touching the session; call before the
 * session's descriptor is closed. Does not wait. */
void notify_halt(struct notify *n);
/* notify_halt, then joins the thread and ends the announcer (whose request in
 * flight, if any, failed when the session's descriptor was closed), dropping
 * what is queued with done(ok = false). */
void notify_stop(struct notify *n);
/* The announcer's pid: FUSE requests with this pid are announcements. */
pid_t notify_pid(const struct notify *n);

/* Queue an announcement. path: relative to the mount root; parent/name: the
 * entry to drop from the kernel's dentry cache first (parent 0: none);
 * target: the symlink target for NOTE_SYMLINK. Never blocks. */
void notify_post(struct notify *n, enum notify_op op, const char *path, fuse_ino_t parent,
                 const char *name, const char *target, notify_done_fn done, void *arg);

/* Figures: announcements made, failed, and the time spent on them. */
void notify_counts(struct notify *n, uint64_t *made, uint64_t *failed, uint64_t *busy_us);

#endif
