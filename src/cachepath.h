/* Where downloaded results live: CACHE/<model>/<taskId>/<name>, written to
 * CACHE/<model>/<taskId>/.<n>.part first and renamed when whole. */
#ifndef GENFS_CACHEPATH_H
#define GENFS_CACHEPATH_H

#include <stdio.h>

static inline int cache_task_dir(char *buf, size_t len, const char *cache_dir, const char *model,
                                 const char *id)
{
    int n = snprintf(buf, len, "%s/%s/%s", cache_dir, model, id);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static inline int cache_file_path(char *buf, size_t len, const char *cache_dir, const char *model,
                                  const char *id, const char *name)
{
    int n = snprintf(buf, len, "%s/%s/%s/%s", cache_dir, model, id, name);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static inline int cache_part_path(char *buf, size_t len, const char *cache_dir, const char *model,
                                  const char *id, unsigned file_n)
{
    int n = snprintf(buf, len, "%s/%s/%s/.%u.part", cache_dir, model, id, file_n);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

#endif
