/* The names the mount gives meaning to, in one place: the root's own files (no model may
 * take them) and the characters of a task id (a directory name). Pure. */
#ifndef GENFS_NAMES_H
#define GENFS_NAMES_H

#include <stdbool.h>

enum names_root {
    ROOT_README,
    ROOT_EVENTS,      /* the changes from each open on */
    ROOT_EVENTS_LOG,  /* the same lines, kept: for tail and less */
    ROOT_EVENTS_LOG1, /* events.log before its last rotation */
    ROOT_STATS,
    ROOT_LOG,
    ROOT_COUNT
};

#define NAMES_TASK_ID_MAX 200

/* In the order ls shows them. */
extern const char *const names_root[ROOT_COUNT];

/* name is a root file, or a path below one ("events/x"): no model may be called so. */
bool names_is_root_file(const char *name);
/* A task id as a provider may give it and a directory may be called: 1 to 200 of
 * A-Z a-z 0-9 . _ ~ -, not starting with '.'. */
bool names_task_id_valid(const char *id);

#endif
