#include "eventlog.h"
#include "tap.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void push(struct evring *r, const char *line)
{
    evring_push(r, line, strlen(line));
}

/* What a reader at *pos gets with a buffer of size, as a string. */
static const char *fill(const struct evring *r, uint64_t *pos, size_t size)
{
    static char buf[256];
    size_t n = evring_fill(r, pos, buf, size < sizeof(buf) - 1 ? size : sizeof(buf) - 1);
    buf[n] = '\0';
    return buf;
}

static void test_ring(void)
{
    struct evring r;
    TAP_EQ_INT(evring_init(&r, 32), 0, "a ring of 32 bytes");
    uint64_t pos = 0;
    TAP_EQ_STR(fill(&r, &pos, 100), "", "nothing pushed: nothing to read");
    push(&r, "1 a\n");
    push(&r, "2 bb\n");
    TAP_EQ_STR(fill(&r, &pos, 100), "1 a\n2 bb\n", "every line from the start");
    TAP_EQ_INT(pos, 0, "the position stays where it was asked");
    pos = 4;
    TAP_EQ_STR(fill(&r, &pos, 100), "2 bb\n", "from the second line's position");
    TAP_EQ_STR(fill(&r, &pos, 7), "2 bb\n", "whole lines while they fit");
    pos = 0;
    TAP_EQ_STR(fill(&r, &pos, 7), "1 a\n", "the second line does not fit: the first alone");
    TAP_EQ_STR(fill(&r, &pos, 2), "1 ", "a small buffer takes a piece of a line");
    pos = 2;
    TAP_EQ_STR(fill(&r, &pos, 100), "a\n2 bb\n", "from the middle of a line, then whole lines");
    pos = 9;
    TAP_EQ_STR(fill(&r, &pos, 100), "", "at the end: nothing yet");
    /* 9 + 11 + 9 + 9 bytes: past 32, the oldest lines go, the rest wraps around. */
    push(&r, "3 cccccccc\n");
    push(&r, "4 dddddd\n");
    push(&r, "5 eeeeee\n");
    TAP_EQ_INT(r.end, 38, "the stream's end counts every byte");
    TAP_EQ_INT(r.first, 9, "the oldest whole lines made room");
    pos = 0;
    TAP_EQ_STR(fill(&r, &pos, 100), "3 cccccccc\n4 dddddd\n5 eeeeee\n",
               "a reader that fell behind gets the oldest line held, across the wrap");
    TAP_EQ_INT(pos, 9, "and is told where that is");
    pos = 29;
    TAP_EQ_STR(fill(&r, &pos, 100), "5 eeeeee\n", "a line written across the wrap");
    push(&r, "6 a line of thirty-one bytes..\n");
    TAP_EQ_INT(r.first, 38, "a line as long as the ring leaves only itself");
    pos = 10;
    TAP_EQ_STR(fill(&r, &pos, 100), "6 a line of thirty-one bytes..\n", "and is read whole");
    evring_free(&r);
}

static void test_format(void)
{
    char line[EVENTLOG_LINE_MAX];
    size_t n = eventlog_format(line, 1795568049337, "flux-2", "tk5f", "success");
    TAP_EQ_STR(line, "1795568049.337 flux-2 tk5f success\n", "the line of a change");
    TAP_EQ_INT(n, strlen(line), "its length");
    eventlog_format(line, 1795568049005, "m", "id", "waiting");
    TAP_EQ_STR(line, "1795568049.005 m id waiting\n", "milliseconds with their zeros");
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    n = eventlog_format(line, 1, big, "id", "failed");
    TAP_EQ_INT(n, EVENTLOG_LINE_MAX - 1, "a line too long is cut at the limit");
    TAP_CHECK(line[n - 1] == '\n' && line[n] == '\0', "and still ends in a newline");

    TAP_EQ_INT(eventlog_next_ms(1000, 2000), 2000, "the clock moved on: now");
    TAP_EQ_INT(eventlog_next_ms(2000, 2000), 2001, "the same millisecond: one past the last");
    TAP_EQ_INT(eventlog_next_ms(5000, 2000), 5001, "the clock went back: still increasing");
    TAP_EQ_INT(eventlog_next_ms(-1, 0), 0, "nothing before");
}

static void test_scan(void)
{
    const char *t = "1.001 m a waiting\n2.002 m a success\n3.0";
    TAP_EQ_INT(eventlog_whole(t, strlen(t)), 36, "whole lines end at the last newline");
    TAP_EQ_INT(eventlog_whole("abc", 3), 0, "no newline: nothing whole");
    TAP_EQ_INT(eventlog_whole("", 0), 0, "empty");
    TAP_EQ_INT(eventlog_last_ms(t, 36), 2002, "the time of the last line");
    TAP_EQ_INT(eventlog_last_ms("1795568049.337 m id success\n", 28), 1795568049337, "a real time");
    TAP_EQ_INT(eventlog_last_ms("17.5 m id x\n", 12), -1, "not three digits of milliseconds");
    TAP_EQ_INT(eventlog_last_ms("garbage here\n", 13), -1, "not a line of ours");
    TAP_EQ_INT(eventlog_last_ms("1.001 m a x", 11), -1, "no newline at the end");
    TAP_EQ_INT(eventlog_last_ms("", 0), -1, "empty");
    TAP_EQ_INT(eventlog_last_ms("1.001\n", 6), -1, "a time alone");
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        *len = 0;
        return NULL;
    }
    char *buf = calloc(1, 1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, fp);
    fclose(fp);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_file(void)
{
    char dir[] = "/tmp/test_eventlog.XXXXXX", err[256], path[300], old[300], buf[4096];
    bool made = mkdtemp(dir) != NULL;
    TAP_CHECK(made, "a scratch directory");
    snprintf(path, sizeof(path), "%s/events.log", dir);
    snprintf(old, sizeof(old), "%s/events.log.1", dir);
    struct eventlog *el = NULL;
    TAP_EQ_INT(eventlog_open(dir, 80, &el, err, sizeof(err)), 0, "opens a new log");
    struct stat st;
    TAP_CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "events.log, mode 0600");
    TAP_EQ_INT(eventlog_append(el, 5000, "m", "a", "waiting"), 0, "appends a line");
    TAP_EQ_INT(eventlog_append(el, 5000, "m", "a", "success"), 0, "and one more");
    off_t size;
    int64_t mt;
    eventlog_stat(el, EVENTLOG_CURRENT, &size, &mt);
    TAP_EQ_INT(size, 36, "its size counts both lines");
    TAP_EQ_INT(mt, 5001, "its mtime is the last line's time");
    ssize_t n = eventlog_read(el, EVENTLOG_CURRENT, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    TAP_EQ_STR(buf, "5.000 m a waiting\n5.001 m a success\n",
               "read back, the second a millisecond later");
    n = eventlog_read(el, EVENTLOG_CURRENT, buf, 5, 18);
    TAP_CHECK(n == 5 && memcmp(buf, "5.001", 5) == 0, "read at an offset");
    TAP_EQ_INT(eventlog_read(el, EVENTLOG_CURRENT, buf, sizeof(buf), 36), 0, "end of file");
    TAP_EQ_INT(eventlog_read(el, EVENTLOG_OLD, buf, sizeof(buf), 0), 0,
               "no events.log.1 yet: empty");
    uint64_t pos = 0;
    n = (ssize_t)eventlog_stream_fill(el, &pos, buf, sizeof(buf) - 1);
    buf[n] = '\0';
    TAP_EQ_STR(buf, "5.000 m a waiting\n5.001 m a success\n", "the stream has the same lines");
    TAP_EQ_INT(eventlog_stream_end(el), 36, "and ends where the file does");
    TAP_EQ_INT(eventlog_stream_mtime(el), 5001, "its mtime");
    eventlog_close(el);

    /* A crash in the middle of a line: the piece goes; the times go on from the file. */
    int fd = open(path, O_WRONLY | O_APPEND);
    bool cut = fd >= 0 && write(fd, "9.999 m b gen", 13) == 13;
    TAP_CHECK(cut, "a line cut short");
    close(fd);
    TAP_EQ_INT(eventlog_open(dir, 80, &el, err, sizeof(err)), 0, "opens it again");
    eventlog_stat(el, EVENTLOG_CURRENT, &size, &mt);
    TAP_EQ_INT(size, 36, "the piece was dropped");
    TAP_EQ_INT(eventlog_stream_end(el), 0, "the stream starts empty");
    TAP_EQ_INT(eventlog_stream_mtime(el), 0, "with no time");
    TAP_EQ_INT(eventlog_append(el, 1000, "m", "b", "failed"), 0, "a line with the clock back");
    n = eventlog_read(el, EVENTLOG_CURRENT, buf, sizeof(buf) - 1, 36);
    buf[n > 0 ? n : 0] = '\0';
    TAP_EQ_STR(buf, "5.002 m b failed\n", "its time goes on from the history's last line");

    /* 53 bytes; 18 more fit the cap of 80, the next 18 would pass it: rotated first. */
    TAP_EQ_INT(eventlog_append(el, 6000, "m", "c", "waiting"), 0, "a line that fits the cap");
    TAP_EQ_INT(eventlog_append(el, 7000, "m", "c", "success"), 0, "one past the cap: rotated");
    eventlog_stat(el, EVENTLOG_CURRENT, &size, &mt);
    TAP_EQ_INT(size, 18, "events.log holds the newest line alone");
    eventlog_stat(el, EVENTLOG_OLD, &size, &mt);
    TAP_EQ_INT(size, 71, "events.log.1 the lines before it");
    TAP_EQ_INT(mt, 6000, "with the time of its last line");
    n = eventlog_read(el, EVENTLOG_OLD, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    TAP_EQ_INT(count_lines(buf), 4, "four lines in events.log.1 through the log");
    size_t len;
    char *text = slurp(old, &len);
    TAP_EQ_INT(len, 71, "and on disk");
    free(text);
    for (int i = 0; i < 6; i++)
        eventlog_append(el, 8000 + i, "m", "d", "queuing");
    text = slurp(path, &len);
    TAP_EQ_INT(len, 54, "events.log stays under its cap");
    free(text);
    text = slurp(old, &len);
    TAP_CHECK(len == 72 && strstr(text, "5.000 m a waiting\n") == NULL,
              "a second rotation keeps only the file before it (%zu bytes)", len);
    free(text);
    eventlog_close(el);

    /* The times go on from events.log.1 when events.log was just rotated. */
    int gone = unlink(path);
    TAP_EQ_INT(gone, 0, "events.log gone");
    TAP_EQ_INT(eventlog_open(dir, 80, &el, err, sizeof(err)), 0, "opens with events.log.1 only");
    eventlog_append(el, 0, "m", "e", "waiting");
    n = eventlog_read(el, EVENTLOG_CURRENT, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    TAP_EQ_INT(eventlog_last_ms(buf, (size_t)(n > 0 ? n : 0)), 8003,
               "its first line comes after events.log.1's last");
    eventlog_close(el);

    bool clean = unlink(path) == 0 && unlink(old) == 0 && rmdir(dir) == 0;
    TAP_CHECK(clean, "cleaned up");
    int rc = eventlog_open("/nonexistent/dir", 80, &el, err, sizeof(err));
    TAP_CHECK(rc < 0 && strstr(err, "/nonexistent/dir/events.log") != NULL,
              "a directory that is not there: says which file (%s)", err);
}

int main(void)
{
    test_ring();
    test_format();
    test_scan();
    test_file();
    return tap_done();
}
