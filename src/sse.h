/* Pure: an incremental parser of server-sent events (the WHATWG "event
 * stream" format): bytes in any chunks, events out through a callback, with
 * the event/data/id/retry fields, multi-line data, CR/LF/CRLF line ends and
 * comments. It owns its buffers; nothing here does I/O. */
#ifndef GENFS_SSE_H
#define GENFS_SSE_H

#include <stddef.h>
#include <stdint.h>

struct sse; /* opaque */

/* One dispatched event; the strings live until the callback returns. */
struct sse_event {
    const char *type; /* the event field, "message" when none was given */
    const char *data; /* the data lines joined by "\n", NUL-terminated (it may hold NULs) */
    size_t data_len;
    const char *id; /* the last event id seen on the stream, "" when none */
};

/* A parser whose lines and events are refused past max_bytes each. */
struct sse *sse_new(size_t max_bytes);
void sse_free(struct sse *s);

/* Feeds len bytes (any split: a line or a CRLF may straddle two calls) and
 * calls on_event for each event they complete. Returns 0, or -E2BIG when a
 * line or an event outgrew max_bytes, or -ENOMEM; after an error every later
 * call returns it again. */
int sse_feed(struct sse *s, const char *buf, size_t len,
             void (*on_event)(void *arg, const struct sse_event *ev), void *arg);

/* The reconnection time the stream asked for (retry field), or -1. */
int64_t sse_retry_ms(const struct sse *s);
/* Events dispatched and comment lines seen so far. */
uint64_t sse_events(const struct sse *s);
uint64_t sse_comments(const struct sse *s);

#endif
