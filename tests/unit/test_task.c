#include "tap.h"
#include "task.h"

#include <errno.h>

int main(void)
{
    for (int i = 0; i < TASK_STATE_COUNT; i++) {
        enum task_state s = TASK_WAITING;
        const char *name = task_state_name((enum task_state)i);
        TAP_EQ_INT(task_state_parse(name, &s), 0, name);
        TAP_EQ_INT(s, i, "name/parse round trip");
    }
    TAP_EQ_STR(task_state_name(TASK_GENERATING), "generating", "generating");
    enum task_state s = TASK_WAITING;
    TAP_EQ_INT(task_state_parse("fail", &s), 0, "\"fail\" accepted");
    TAP_EQ_INT(s, TASK_FAILED, "\"fail\" means failed");
    TAP_EQ_INT(task_state_parse("done", &s), -EINVAL, "unknown word refused");
    TAP_EQ_INT(task_state_parse("", &s), -EINVAL, "empty word refused");
    TAP_EQ_INT(task_state_parse(NULL, &s), -EINVAL, "NULL refused");
    TAP_EQ_STR(task_state_name((enum task_state)42), "unknown", "out-of-range name");
    TAP_CHECK(task_state_final(TASK_SUCCESS) && task_state_final(TASK_FAILED) &&
                  !task_state_final(TASK_GENERATING),
              "final states");
    return tap_done();
}
