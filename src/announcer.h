/* The announcer: turns store changes into real operations on the mount
 * (mkdir, open-write-close, create, symlink) so the kernel raises inotify
 * events for watchers. A thread queues them to an announcer process that
 * performs them, through a private view of the mount where it can have one
 * (a user's unmount does not count it, and genfs ends the announcer when it
 * sees that unmount); FUSE handlers recognise its requests by its pid and
 * treat them as announcements that change nothing. */
#ifndef GENFS_ANNOUNCER_H
#define GENFS_ANNOUNCER_H

#include "log.h"

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>

enum announce_op {
    ANNOUNCE_MKDIR,   /* a task dir appeared: CREATE,ISDIR */
    ANNOUNCE_MODIFY,  /* a file changed: MODIFY, CLOSE_WRITE */
    ANNOUNCE_CREATE,  /* a file is whole: CREATE, CLOSE_WRITE */
    ANNOUNCE_SYMLINK, /* latest points elsewhere: CREATE */
    ANNOUNCE_BARRIER, /* nothing: its done callback runs after what came before */
};

/* Runs on the announcer's thread after the operation (ok: it raised its event). */
typedef void (*announce_done_fn)(void *arg, bool ok);

struct announcer;

/* mountpoint: absolute (resolved before mounting), just mounted by se;
 * in_child(child_arg) runs first in the announcer (system calls only: wipe
 * secrets); attr_only: the kernel checks modes itself (default_permissions):
 * MODIFY falls back to an ATTRIB announcement. */
int announcer_start(const char *mountpoint, struct fuse_session *se, struct log *lg, bool attr_only,
                    void (*in_child)(void *), void *child_arg, struct announcer **out);
/* Takes no more items and stops touching the session; call before the
 * session's descriptor is closed. Does not wait. */
void announcer_halt(struct announcer *n);
/* announcer_halt, then joins the thread and ends the announcer (whose request in
 * flight, if any, failed when the session's descriptor was closed), dropping
 * what is queued with done(ok = false). */
void announcer_stop(struct announcer *n);
/* The announcer's pid: FUSE requests with this pid are announcements. */
pid_t announcer_pid(const struct announcer *n);

/* Queue an announcement. path: relative to the mount root; parent/name: the
 * entry to drop from the kernel's dentry cache first (parent 0: none);
 * target: the symlink target for ANNOUNCE_SYMLINK. Never blocks. */
void announcer_post(struct announcer *n, enum announce_op op, const char *path, fuse_ino_t parent,
                    const char *name, const char *target, announce_done_fn done, void *arg);

/* Figures: announcements made, failed, and the time spent on them. */
void announcer_counts(struct announcer *n, uint64_t *made, uint64_t *failed, uint64_t *busy_us);

#endif
