#include "names.h"

#include <string.h>

const char *const names_root[ROOT_COUNT] = {
    [ROOT_README] = "README",         [ROOT_EVENTS] = "events",
    [ROOT_EVENTS_LOG] = "events.log", [ROOT_EVENTS_LOG1] = "events.log.1",
    [ROOT_STATS] = "stats",           [ROOT_LOG] = "log",
};

bool names_is_root_file(const char *name)
{
    for (int i = 0; i < ROOT_COUNT; i++) {
        size_t n = strlen(names_root[i]);
        if (strncmp(name, names_root[i], n) == 0 && (name[n] == '\0' || name[n] == '/'))
            return true;
    }
    return false;
}

bool names_task_id_valid(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n <= NAMES_TASK_ID_MAX && id[0] != '.' &&
           strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") == n;
}
