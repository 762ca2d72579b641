#include "eventlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- pure parts ---- */

_Static_assert(EVENTLOG_LINE_MAX <= EVENTLOG_RING_BYTES, "a line must fit the ring");

int evring_init(struct evring *r, size_t cap)
{
    *r = (struct evring){.bytes = malloc(cap), .cap = cap};
    return r->bytes ? 0 : -ENOMEM;
}

void evring_free(struct evring *r)
{
    free(r->bytes);
    r->bytes = NULL;
}

/* n bytes from stream position pos (held) into out. */
static void ring_copy(const struct evring *r, uint64_t pos, char *out, size_t n)
{
    size_t at = (size_t)(pos % r->cap), first = r->cap - at < n ? r->cap - at : n;
    memcpy(out, r->bytes + at, first);
    memcpy(out + first, r->bytes, n - first);
}

void evring_push(struct evring *r, const char *line, size_t len)
{
    /* Drop whole lines from the front, while their bytes are still there to scan. */
    while (r->end + len - r->first > r->cap) {
        while (r->bytes[r->first % r->cap] != '\n')
            r->first++;
        r->first++;
    }
    size_t at = (size_t)(r->end % r->cap), first = r->cap - at < len ? r->cap - at : len;
    memcpy(r->bytes + at, line, first);
    memcpy(r->bytes, line + first, len - first);
    r->end += len;
}

size_t evring_fill(const struct evring *r, uint64_t *pos, char *buf, size_t size)
{
    if (*pos < r->first)
        *pos = r->first;
    if (*pos >= r->end || size == 0)
        return 0;
    uint64_t avail = r->end - *pos;
    size_t take = avail < size ? (size_t)avail : size;
    ring_copy(r, *pos, buf, take);
    if (take < avail) {
        const char *nl = memrchr(buf, '\n', take);
        if (nl)
            take = (size_t)(nl - buf) + 1;
    }
    return take;
}

size_t eventlog_format(char *out, int64_t ms, const char *model, const char *id, const char *word)
{
    int n = snprintf(out, EVENTLOG_LINE_MAX, "%lld.%03d %s %s %s\n", (long long)(ms / 1000),
                     (int)(ms % 1000), model, id, word);
    if (n < 0 || n >= EVENTLOG_LINE_MAX) {
        out[EVENTLOG_LINE_MAX - 2] = '\n';
        n = EVENTLOG_LINE_MAX - 1;
    }
    return (size_t)n;
}

int64_t eventlog_next_ms(int64_t last_ms, int64_t now_ms)
{
    return now_ms > last_ms ? now_ms : last_ms + 1;
}

size_t eventlog_whole(const char *text, size_t len)
{
    const char *nl = len ? memrchr(text, '\n', len) : NULL;
    return nl ? (size_t)(nl - text) + 1 : 0;
}

int64_t eventlog_last_ms(const char *text, size_t len)
{
    if (len == 0 || text[len - 1] != '\n')
        return -1;
    const char *nl = len > 1 ? memrchr(text, '\n', len - 1) : NULL;
    const char *line = nl ? nl + 1 : text, *end = text + len;
    long long secs = 0;
    const char *p = line;
    for (; p < end && *p >= '0' && *p <= '9' && secs < INT64_MAX / 10000; p++)
        secs = secs * 10 + (*p - '0');
    if (p == line || end - p < 5 || p[0] != '.')
        return -1;
    int millis = 0;
    for (int i = 1; i <= 3; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        millis = millis * 10 + (p[i] - '0');
    }
    return p[4] == ' ' ? (int64_t)secs * 1000 + millis : -1;
}

/* ---- the log ---- */

struct evfile {
    int fd;
    off_t size;
    int64_t mtime_ms;
};

struct eventlog {
    pthread_mutex_t lock; /* everything below */
    char *path, *old_path;
    size_t file_max;
    struct evfile cur, old; /* old.fd -1: no events.log.1 */
    bool failing;           /* the last line did not reach the file */
    int64_t last_ms;        /* the time of the newest line, in the files or since */
    int64_t stream_ms;
    struct evring ring;
};

static int64_t stat_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* The last bytes of fd (size bytes long) into buf: how many. */
static size_t read_tail(int fd, off_t size, char *buf, size_t cap)
{
    off_t from = size > (off_t)cap ? size - (off_t)cap : 0;
    ssize_t n = pread(fd, buf, (size_t)(size - from), from);
    return n > 0 ? (size_t)n : 0;
}

/* A file opened for the log: its size and mtime; for the current one, a last line cut
 * short by a crash (write(2) of a whole line that did not finish) is dropped. */
static int evfile_load(struct evfile *ef, bool current, int64_t *last_ms)
{
    struct stat st;
    if (fstat(ef->fd, &st) < 0)
        return -errno;
    ef->size = st.st_size;
    ef->mtime_ms = stat_ms(&st);
    char tail[2 * EVENTLOG_LINE_MAX];
    size_t n = read_tail(ef->fd, ef->size, tail, sizeof(tail)), whole = eventlog_whole(tail, n);
    if (current && whole < n) {
        /* No newline at all in the last two lines' worth: not a line of ours, so it is
         * ended rather than dropped. */
        if (whole == 0 && write(ef->fd, "\n", 1) == 1)
            ef->size++;
        else if (whole > 0 && ftruncate(ef->fd, ef->size - (off_t)(n - whole)) == 0)
            ef->size -= (off_t)(n - whole);
    }
    int64_t ms = eventlog_last_ms(tail, whole);
    if (ms > *last_ms)
        *last_ms = ms;
    return 0;
}

int eventlog_open(const char *dir, size_t file_max, struct eventlog **out, char *err, size_t errlen)
{
    struct eventlog *el = calloc(1, sizeof(*el));
    if (!el || evring_init(&el->ring, EVENTLOG_RING_BYTES) < 0) {
        free(el);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    el->cur.fd = el->old.fd = -1;
    el->file_max = file_max;
    el->last_ms = -1;
    pthread_mutex_init(&el->lock, NULL);
    int rc = 0;
    if (asprintf(&el->path, "%s/events.log", dir) < 0 ||
        asprintf(&el->old_path, "%s/events.log.1", dir) < 0) {
        el->path = el->old_path = NULL;
        rc = -ENOMEM;
    }
    if (rc == 0) {
        el->cur.fd = open(el->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        rc = el->cur.fd < 0 ? -errno : evfile_load(&el->cur, true, &el->last_ms);
    }
    if (rc == 0) {
        el->old.fd = open(el->old_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (el->old.fd < 0 && errno != ENOENT)
            rc = -errno;
        else if (el->old.fd >= 0)
            rc = evfile_load(&el->old, false, &el->last_ms);
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot open %s/events.log: %s", dir, strerror(-rc));
        eventlog_close(el);
        return rc;
    }
    *out = el;
    return 0;
}

void eventlog_close(struct eventlog *el)
{
    if (!el)
        return;
    if (el->cur.fd >= 0)
        close(el->cur.fd);
    if (el->old.fd >= 0)
        close(el->old.fd);
    pthread_mutex_destroy(&el->lock);
    evring_free(&el->ring);
    free(el->path);
    free(el->old_path);
    free(el);
}

/* events.log becomes events.log.1 (the one before goes) and a new events.log starts, as
 * logrotate does: readers following the mount's events.log see it start again. */
static int rotate(struct eventlog *el)
{
    if (rename(el->path, el->old_path) < 0)
        return -errno;
    int fd = open(el->path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int rc = -errno;
        if (rename(el->old_path, el->path) < 0)
            rc = -errno;
        return rc;
    }
    if (el->old.fd >= 0)
        close(el->old.fd);
    el->old = el->cur;
    el->cur = (struct evfile){.fd = fd, .size = 0, .mtime_ms = el->old.mtime_ms};
    return 0;
}

int eventlog_append(struct eventlog *el, int64_t now_ms, const char *model, const char *id,
                    const char *word)
{
    char line[EVENTLOG_LINE_MAX];
    pthread_mutex_lock(&el->lock);
    int64_t ms = eventlog_next_ms(el->last_ms, now_ms);
    size_t len = eventlog_format(line, ms, model, id, word);
    evring_push(&el->ring, line, len);
    el->last_ms = el->stream_ms = ms;
    /* A rotation that fails leaves the line to the file as it is, past the cap. */
    int rc = 0;
    if (el->cur.size > 0 && (size_t)el->cur.size + len > el->file_max)
        rc = rotate(el);
    ssize_t n = write(el->cur.fd, line, len);
    if (n == (ssize_t)len) {
        el->cur.size += (off_t)len;
        el->cur.mtime_ms = ms;
    } else {
        rc = n < 0 ? -errno : -ENOSPC;
        /* Only whole lines in the file. */
        if (n > 0 && ftruncate(el->cur.fd, el->cur.size) < 0)
            rc = -errno;
    }
    bool was_failing = el->failing;
    el->failing = rc < 0;
    pthread_mutex_unlock(&el->lock);
    return was_failing ? 0 : rc;
}

size_t eventlog_stream_fill(struct eventlog *el, uint64_t *pos, char *buf, size_t size)
{
    pthread_mutex_lock(&el->lock);
    size_t n = evring_fill(&el->ring, pos, buf, size);
    pthread_mutex_unlock(&el->lock);
    return n;
}

uint64_t eventlog_stream_end(struct eventlog *el)
{
    pthread_mutex_lock(&el->lock);
    uint64_t end = el->ring.end;
    pthread_mutex_unlock(&el->lock);
    return end;
}

int64_t eventlog_stream_mtime(struct eventlog *el)
{
    pthread_mutex_lock(&el->lock);
    int64_t ms = el->stream_ms;
    pthread_mutex_unlock(&el->lock);
    return ms;
}

ssize_t eventlog_read(struct eventlog *el, enum eventlog_file which, char *buf, size_t size,
                      off_t off)
{
    pthread_mutex_lock(&el->lock);
    const struct evfile *ef = which == EVENTLOG_OLD ? &el->old : &el->cur;
    ssize_t n = 0;
    if (ef->fd >= 0 && off < ef->size) {
        /* Never past the last whole line counted, whatever the file holds. */
        size_t want = (size_t)(ef->size - off) < size ? (size_t)(ef->size - off) : size;
        n = pread(ef->fd, buf, want, off);
        if (n < 0)
            n = -errno;
    }
    pthread_mutex_unlock(&el->lock);
    return n;
}

void eventlog_stat(struct eventlog *el, enum eventlog_file which, off_t *size, int64_t *mtime_ms)
{
    pthread_mutex_lock(&el->lock);
    const struct evfile *ef = which == EVENTLOG_OLD ? &el->old : &el->cur;
    *size = ef->fd >= 0 ? ef->size : 0;
    *mtime_ms = ef->fd >= 0 ? ef->mtime_ms : 0;
    pthread_mutex_unlock(&el->lock);
}
