/* The mount's reserved names and the task-id character set. */
#include "names.h"
#include "tap.h"

#include <string.h>

int main(void)
{
    TAP_CHECK(names_is_root_file("events") && names_is_root_file("events.log.1") &&
                  names_is_root_file("README"),
              "the root's files are reserved");
    TAP_CHECK(names_is_root_file("log/x") && names_is_root_file("stats/a/b"),
              "so is a model path below one of them");
    TAP_CHECK(!names_is_root_file("logs") && !names_is_root_file("eventsx") &&
                  !names_is_root_file("fal-ai/flux/dev") && !names_is_root_file("event"),
              "a name that only starts like one is not");
    TAP_CHECK(names_task_id_valid("75f3onrb4yw6gh7qqlimpz3gru") &&
                  names_task_id_valid("764cabfa-30ba-4c6a-a2c5-19f8b6ae2c64") &&
                  names_task_id_valid("a.b_c~d-e"),
              "Replicate's, fal's and kie's ids are valid");
    static const char *const bad[] = {"",    ".hidden", "..",          "a/b",
                                      "a b", "a\nb",    "caf\xc3\xa9", "x:y"};
    bool none = true;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        none = none && !names_task_id_valid(bad[i]);
    TAP_CHECK(none, "empty, dot-first, slashes, spaces, newlines, non-ASCII, colons are not");
    char id[NAMES_TASK_ID_MAX + 2];
    memset(id, 'a', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    TAP_CHECK(!names_task_id_valid(id), "201 characters is too long");
    id[NAMES_TASK_ID_MAX] = '\0';
    TAP_CHECK(names_task_id_valid(id), "200 is not");
    return tap_done();
}
