/* Task state words (SPEC 3). */
#include "task.h"

#include <errno.h>
#include <string.h>

static const char *const task_state_names[TASK_STATE_COUNT] = {
    [TASK_WAITING] = "waiting", [TASK_QUEUING] = "queuing", [TASK_GENERATING] = "generating",
    [TASK_SUCCESS] = "success", [TASK_FAILED] = "failed",
};

const char *task_state_name(enum task_state s)
{
    if ((unsigned)s >= TASK_STATE_COUNT)
        return "unknown";
    return task_state_names[s];
}

int task_state_parse(const char *word, enum task_state *out)
{
    if (!word)
        return -EINVAL;
    for (int i = 0; i < TASK_STATE_COUNT; i++) {
        if (strcmp(word, task_state_names[i]) == 0) {
            *out = (enum task_state)i;
            return 0;
        }
    }
    /* The provider's own docs use "fail" in places (SPEC 4). */
    if (strcmp(word, "fail") == 0) {
        *out = TASK_FAILED;
        return 0;
    }
    return -EINVAL;
}
