#include "sse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte buffer, always NUL-terminated once allocated. */
struct sse_buf {
    char *p;
    size_t len, cap;
};

struct sse {
    size_t max;
    struct sse_buf line, data, type, id;
    int64_t retry_ms;
    uint64_t events, comments;
    bool after_cr;  /* the last byte was a CR: an LF right after it ends nothing */
    bool bom_check; /* the stream's first bytes may be a UTF-8 byte order mark */
    size_t bom_seen;
    int err;
};

static int sse_buf_add(struct sse_buf *b, const char *p, size_t n, size_t max)
{
    if (b->len + n > max)
        return -E2BIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int sse_buf_set(struct sse_buf *b, const char *p, size_t n, size_t max)
{
    b->len = 0;
    return sse_buf_add(b, p, n, max);
}

/* The buffer as a C string; empty (also when it starts with a NUL) gives dflt. */
static const char *sse_buf_str(const struct sse_buf *b, const char *dflt)
{
    return b->len && b->p[0] ? b->p : dflt;
}

struct sse *sse_new(size_t max_bytes)
{
    struct sse *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->max = max_bytes;
    s->retry_ms = -1;
    s->bom_check = true;
    return s;
}

void sse_free(struct sse *s)
{
    if (!s)
        return;
    free(s->line.p);
    free(s->data.p);
    free(s->type.p);
    free(s->id.p);
    free(s);
}

/* A blank line: the event so far goes out if it has data; the type resets. */
static void sse_dispatch(struct sse *s, void (*on_event)(void *, const struct sse_event *),
                         void *arg)
{
    if (s->data.len > 0) {
        s->data.p[--s->data.len] = '\0'; /* the last data line's "\n" */
        struct sse_event ev = {.type = sse_buf_str(&s->type, "message"),
                               .data = s->data.p,
                               .data_len = s->data.len,
                               .id = sse_buf_str(&s->id, "")};
        s->events++;
        if (on_event)
            on_event(arg, &ev);
    }
    s->data.len = 0;
    s->type.len = 0;
}

static void sse_set_retry(struct sse *s, const char *v, size_t n)
{
    int64_t ms = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        if (ms > INT64_MAX / 10 - 10)
            return;
        ms = ms * 10 + (v[i] - '0');
    }
    if (n > 0)
        s->retry_ms = ms;
}

/* One complete line, without its end. */
static int sse_on_line(struct sse *s, const char *l, size_t n,
                       void (*on_event)(void *, const struct sse_event *), void *arg)
{
    if (n == 0) {
        sse_dispatch(s, on_event, arg);
        return 0;
    }
    if (l[0] == ':') {
        s->comments++;
        return 0;
    }
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl > 0 && v[0] == ' ') {
        v++;
        vl--;
    }
    if (fl == 4 && memcmp(l, "data", 4) == 0) {
        int rc = sse_buf_add(&s->data, v, vl, s->max);
        return rc ? rc : sse_buf_add(&s->data, "\n", 1, s->max);
    }
    if (fl == 5 && memcmp(l, "event", 5) == 0)
        return sse_buf_set(&s->type, v, vl, s->max);
    if (fl == 2 && memcmp(l, "id", 2) == 0 && !memchr(v, '\0', vl))
        return sse_buf_set(&s->id, v, vl, s->max);
    if (fl == 5 && memcmp(l, "retry", 5) == 0)
        sse_set_retry(s, v, vl);
    return 0; /* other fields are ignored, as the format says */
}

/* Skips a leading UTF-8 byte order mark, however the chunks split it. */
static size_t sse_skip_bom(struct sse *s, const char *buf, size_t len)
{
    static const char bom[] = "\xEF\xBB\xBF";
    size_t i = 0;
    while (s->bom_check && i < len) {
        if (buf[i] != bom[s->bom_seen]) {
            s->bom_check = false;
            /* A partial mark was not one: its bytes belong to the first line. */
            if (s->bom_seen > 0)
                s->err = sse_buf_add(&s->line, bom, s->bom_seen, s->max);
            return i;
        }
        i++;
        if (++s->bom_seen == 3)
            s->bom_check = false;
    }
    return i;
}

int sse_feed(struct sse *s, const char *buf, size_t len,
             void (*on_event)(void *arg, const struct sse_event *ev), void *arg)
{
    size_t i = sse_skip_bom(s, buf, len);
    while (!s->err && i < len) {
        if (s->after_cr && buf[i] == '\n') {
            s->after_cr = false;
            i++;
            continue;
        }
        s->after_cr = false;
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        if (j == len) {
            s->err = sse_buf_add(&s->line, buf + i, j - i, s->max);
            break;
        }
        s->after_cr = buf[j] == '\r';
        if (s->line.len > 0) {
            s->err = sse_buf_add(&s->line, buf + i, j - i, s->max);
            if (!s->err)
                s->err = sse_on_line(s, s->line.p, s->line.len, on_event, arg);
            s->line.len = 0;
        } else {
            /* The same limit as a line gathered over several chunks. */
            s->err = j - i > s->max ? -E2BIG : sse_on_line(s, buf + i, j - i, on_event, arg);
        }
        i = j + 1;
    }
    return s->err;
}

int64_t sse_retry_ms(const struct sse *s)
{
    return s->retry_ms;
}

uint64_t sse_events(const struct sse *s)
{
    return s->events;
}

uint64_t sse_comments(const struct sse *s)
{
    return s->comments;
}
