/* The task state changes as lines, "<secs.millis> <model> <taskId> <state>\n": the newest
 * in memory for the events stream (a ring of bytes addressed by their position in the
 * stream since start), and every one in the log file DIR/events.log, kept across restarts
 * and rotated to DIR/events.log.1 when it would pass its cap. A line's time is when genfs
 * wrote it, one millisecond past the line before when the clock has not moved on (across
 * restarts too): times increase strictly, so the time of the last line a reader saw says
 * where to resume, whatever rotated in between. */
#ifndef GENFS_EVENTLOG_H
#define GENFS_EVENTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A line holds at most this much: times, a model name and a task id of up to 255 bytes. */
#define EVENTLOG_LINE_MAX 512
/* The stream keeps the last MiB (some 15,000 lines) for readers that fall behind. */
#define EVENTLOG_RING_BYTES (1u << 20)
/* events.log is rotated before it would pass 8 MiB: with events.log.1, 8 to 16 MiB of
 * history (some 120,000 to 240,000 lines). */
#define EVENTLOG_FILE_MAX (8u << 20)

/* ---- pure parts ---- */

/* The stream's last bytes: positions [first, end) are held, first at the start of a line. */
struct evring {
    char *bytes;
    size_t cap;
    uint64_t first, end;
};

/* 0 or -ENOMEM. */
int evring_init(struct evring *r, size_t cap);
void evring_free(struct evring *r);
/* line: one whole line ending in '\n', at most cap bytes. The oldest whole lines make room. */
void evring_push(struct evring *r, const char *line, size_t len);
/* Copies what is held from *pos into buf: whole lines while they fit, or a piece of one
 * when the first does not fit. A *pos older than what is held moves to the oldest line
 * held. Returns the bytes copied, 0 when nothing is held at or past *pos. */
size_t evring_fill(const struct evring *r, uint64_t *pos, char *buf, size_t size);

/* The line of a change written at ms into out (EVENTLOG_LINE_MAX bytes): its length. A
 * line too long for it is cut short, and still ends in '\n'. */
size_t eventlog_format(char *out, int64_t ms, const char *model, const char *id, const char *word);
/* The time of the next line, written at now_ms after a line of last_ms. */
int64_t eventlog_next_ms(int64_t last_ms, int64_t now_ms);
/* The bytes of text up to and including its last '\n' (0: none). */
size_t eventlog_whole(const char *text, size_t len);
/* The time in milliseconds of the last line of text (whole lines), or -1. */
int64_t eventlog_last_ms(const char *text, size_t len);

/* ---- the log ---- */

enum eventlog_file { EVENTLOG_CURRENT, EVENTLOG_OLD };

struct eventlog;

/* Opens DIR/events.log to append (created 0600) and DIR/events.log.1 when there is one;
 * a last line cut short by a crash is dropped. file_max: the cap (EVENTLOG_FILE_MAX).
 * Errors: a negative errno and one line in err. */
int eventlog_open(const char *dir, size_t file_max, struct eventlog **out, char *err,
                  size_t errlen);
void eventlog_close(struct eventlog *el);
/* Appends the line of a change seen at now_ms to the stream and to the file (rotating
 * it first when the line would take it past the cap). Returns 0, or a negative errno
 * when the file could not take the line and took the one before (a failure is said
 * once, not once a line); the stream has the line either way. */
int eventlog_append(struct eventlog *el, int64_t now_ms, const char *model, const char *id,
                    const char *word);
/* evring_fill on the stream. */
size_t eventlog_stream_fill(struct eventlog *el, uint64_t *pos, char *buf, size_t size);
/* The stream position after its last byte. */
uint64_t eventlog_stream_end(struct eventlog *el);
/* The time of the last line appended since open, or 0. */
int64_t eventlog_stream_mtime(struct eventlog *el);
/* Reads events.log or events.log.1 (empty when there is none) at off: bytes or -errno. */
ssize_t eventlog_read(struct eventlog *el, enum eventlog_file which, char *buf, size_t size,
                      off_t off);
/* Its size and the time of its last line (0 when unknown). */
void eventlog_stat(struct eventlog *el, enum eventlog_file which, off_t *size, int64_t *mtime_ms);

#endif
