/* The mount: inodes derived from store indexes, every FUSE low-level op,
 * deferred replies (result, events, writes to new, mkdir/rmdir through the
 * engine), poll handles and kernel cache invalidation. */
#ifndef GENFS_FS_H
#define GENFS_FS_H

#include "announcer.h"
#include "engine.h"
#include "eventlog.h"
#include "log.h"
#include "store.h"

#include <fuse_lowlevel.h>

struct fs;

/* el: the events stream and events.log (eventlog.h), the caller's until after fs_free. */
struct fs *fs_new(struct store *st, struct engine *eng, struct log *lg, struct eventlog *el,
                  const char *cache_dir);
void fs_free(struct fs *f);
const struct fuse_lowlevel_ops *fs_ops(void);
/* The session the kernel notifications go to; set before the loop runs. */
void fs_set_session(struct fs *f, struct fuse_session *se);
/* The announcer whose requests are announcements (set before the loop runs). */
void fs_set_announcer(struct fs *f, struct announcer *n);
/* Answer every deferred request (the mount is going away). */
void fs_shutdown(struct fs *f);

#endif
