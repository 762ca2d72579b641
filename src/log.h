/* Levelled log: stderr (foreground) or syslog (daemon), and the ring of the
 * last lines behind MOUNT/log. Thread-safe. Callers never pass the API key. */
#ifndef GENFS_LOG_H
#define GENFS_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

#define LOG_RING_LINES 200

struct log; /* opaque */

/* "error" | "warn" | "info" | "debug" -> 0, else -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);

struct log *log_new(enum log_level level, int use_syslog);
void log_free(struct log *lg);
void log_set_syslog(struct log *lg, int use_syslog);

void log_msg(struct log *lg, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copy of the ring as text (malloc'd, NUL-terminated), its length in *len,
 * and the time of the newest line in *mtime_ms. */
char *log_ring_text(struct log *lg, size_t *len, int64_t *mtime_ms);

#define log_error(lg, ...) log_msg(lg, LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(lg, ...) log_msg(lg, LOG_LVL_WARN, __VA_ARGS__)
#define log_info(lg, ...) log_msg(lg, LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(lg, ...) log_msg(lg, LOG_LVL_DEBUG, __VA_ARGS__)

#endif
