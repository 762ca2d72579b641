/* Reading /proc/PID/mountinfo: which mounts sit at a path, and whether a
 * device is still mounted. Pure but for mountinfo_read. */
#ifndef GENFS_MOUNTINFO_H
#define GENFS_MOUNTINFO_H

#include <stdbool.h>
#include <stddef.h>

struct mountinfo_entry {
    unsigned id, parent;
    unsigned major, minor; /* st_dev of the file system */
    const char *point;     /* where it is mounted, escapes (\040 ...) decoded */
    const char *fstype;    /* "fuse.genfs", "ext4", ... */
    const char *source;
};

/* Parses one line in place (fields NUL-terminated, the mount point decoded):
 * 0, or -EINVAL for a line that is not a mountinfo line. */
int mountinfo_parse_line(char *line, struct mountinfo_entry *e);
/* The mounts at point (an absolute path without a trailing '/'), in the
 * order of text, which is parsed in place: up to max stored in out; returns
 * how many there are. */
size_t mountinfo_at(char *text, const char *point, struct mountinfo_entry *out, size_t max);
/* Of n mounts at one point, the one on top: the one none of the others is
 * mounted on; NULL when n is 0. */
const struct mountinfo_entry *mountinfo_top(const struct mountinfo_entry *v, size_t n);
/* Whether text (parsed in place) lists a mount of the device major:minor. */
bool mountinfo_has_dev(char *text, unsigned major, unsigned minor);
/* The whole file open at fd (mountinfo), read again from its start: malloc'd
 * text, or NULL. */
char *mountinfo_read(int fd);
/* A FUSE file system ("fuse", "fuseblk", "fuse.NAME"). */
bool mountinfo_is_fuse(const struct mountinfo_entry *e);

#endif
