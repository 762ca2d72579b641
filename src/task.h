/* Task states shared by every module: the five words of SPEC 3 and their
 * names. Pure: no I/O. */
#ifndef GENFS_TASK_H
#define GENFS_TASK_H

#include <stdbool.h>

enum task_state {
    TASK_WAITING = 0,
    TASK_QUEUING,
    TASK_GENERATING,
    TASK_SUCCESS,
    TASK_FAILED,
};

#define TASK_STATE_COUNT 5

/* "waiting", "queuing", ... Never NULL. */
const char *task_state_name(enum task_state s);
/* Accepts the five words and "fail" (as failed). 0 or -EINVAL. */
int task_state_parse(const char *word, enum task_state *out);
static inline bool task_state_final(enum task_state s)
{
    return s == TASK_SUCCESS || s == TASK_FAILED;
}

#endif
