#include "writer.h"

#include <stdlib.h>
#include <string.h>

long writer_tgid(const char *status)
{
    const char *p = status;
    if (p && strncmp(p, "Tgid:", 5) != 0) {
        p = strstr(p, "\nTgid:");
        p = p ? p + 1 : NULL;
    }
    if (!p)
        return -1;
    char *end;
    long v = strtol(p + 5, &end, 10);
    return end != p + 5 && v > 0 ? v : -1;
}

/* exit_code is field 52; the command name (field 2) may hold spaces and
 * parentheses, so counting starts after its last ')'. */
#define STAT_EXIT_CODE_FIELD 52

int writer_kill_signal(const char *stat)
{
    const char *p = stat ? strrchr(stat, ')') : NULL;
    if (!p)
        return 0;
    p++;
    for (int field = 3; field <= STAT_EXIT_CODE_FIELD; field++) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            return 0;
        if (field == STAT_EXIT_CODE_FIELD) {
            long code = strtol(p, NULL, 10);
            return (int)(code & 0x7f);
        }
        p += strcspn(p, " \n");
    }
    return 0;
}

enum writer_close writer_on_close(bool last, bool by_opener, bool read_write, int kill_signal)
{
    if (by_opener && kill_signal)
        return WRITER_DROP;
    if (last || (by_opener && !read_write))
        return WRITER_SUBMIT;
    return WRITER_KEEP;
}
