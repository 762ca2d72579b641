#include "log.h"

#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define LOG_LINE_MAX 512

struct log {
    pthread_mutex_t lock;
    enum log_level level;
    int use_syslog;
    char lines[LOG_RING_LINES][LOG_LINE_MAX];
    unsigned head;  /* next slot to write */
    unsigned count; /* lines held */
    int64_t mtime_ms;
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; name && i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

struct log *log_new(enum log_level level, int use_syslog)
{
    struct log *lg = calloc(1, sizeof(*lg));
    if (!lg)
        return NULL;
    pthread_mutex_init(&lg->lock, NULL);
    lg->level = level;
    lg->use_syslog = use_syslog;
    lg->mtime_ms = clock_now_ms();
    return lg;
}

void log_free(struct log *lg)
{
    if (!lg)
        return;
    pthread_mutex_destroy(&lg->lock);
    free(lg);
}

void log_set_syslog(struct log *lg, int use_syslog)
{
    pthread_mutex_lock(&lg->lock);
    if (use_syslog && !lg->use_syslog)
        openlog("genfs", LOG_PID, LOG_DAEMON);
    lg->use_syslog = use_syslog;
    pthread_mutex_unlock(&lg->lock);
}

void log_msg(struct log *lg, enum log_level lvl, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX - 48];
    /* stamp(24) + level(5) + separators fit in the 48 spared above. */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* One line per message, and no terminal escapes from names or provider
     * text: the ring and syslog are line oriented, and people cat them. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : '?';

    int64_t now = clock_now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[64];
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now % 1000));

    pthread_mutex_lock(&lg->lock);
    /* The ring keeps info and above even when the console is quieter. */
    if (lvl <= LOG_LVL_INFO || lvl <= lg->level) {
        snprintf(lg->lines[lg->head], LOG_LINE_MAX, "%.24s %.5s %.*s\n", stamp, level_names[lvl],
                 (int)(LOG_LINE_MAX - 48), msg);
        lg->head = (lg->head + 1) % LOG_RING_LINES;
        if (lg->count < LOG_RING_LINES)
            lg->count++;
        lg->mtime_ms = now;
    }
    if (lvl <= lg->level) {
        if (lg->use_syslog) {
            static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
            syslog(prio[lvl], "%s", msg);
        } else {
            fprintf(stderr, "genfs: %s: %s\n", level_names[lvl], msg);
        }
    }
    pthread_mutex_unlock(&lg->lock);
}

char *log_ring_text(struct log *lg, size_t *len, int64_t *mtime_ms)
{
    pthread_mutex_lock(&lg->lock);
    size_t total = 0;
    unsigned first = (lg->head + LOG_RING_LINES - lg->count) % LOG_RING_LINES;
    for (unsigned i = 0; i < lg->count; i++)
        total += strlen(lg->lines[(first + i) % LOG_RING_LINES]);
    char *out = malloc(total + 1);
    if (out) {
        size_t off = 0;
        for (unsigned i = 0; i < lg->count; i++) {
            const char *l = lg->lines[(first + i) % LOG_RING_LINES];
            size_t n = strlen(l);
            memcpy(out + off, l, n);
            off += n;
        }
        out[off] = '\0';
        *len = off;
    }
    if (mtime_ms)
        *mtime_ms = lg->mtime_ms;
    pthread_mutex_unlock(&lg->lock);
    return out;
}
