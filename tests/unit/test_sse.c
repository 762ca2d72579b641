/* sse: the event-stream parser on the format's own examples (WHATWG HTML,
 * "Server-sent events", 9.2.6), on fal's status events, and on every split
 * of a stream into two chunks. */
#include "sse.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 16

struct seen {
    int n;
    char type[MAX_SEEN][32];
    char data[MAX_SEEN][256];
    char id[MAX_SEEN][32];
};

static void on_event(void *arg, const struct sse_event *ev)
{
    struct seen *s = arg;
    if (s->n >= MAX_SEEN)
        return;
    snprintf(s->type[s->n], sizeof(s->type[0]), "%s", ev->type);
    snprintf(s->data[s->n], sizeof(s->data[0]), "%s", ev->data);
    snprintf(s->id[s->n], sizeof(s->id[0]), "%s", ev->id);
    if (strlen(ev->data) != ev->data_len)
        snprintf(s->data[s->n], sizeof(s->data[0]), "<data_len wrong>");
    s->n++;
}

static struct seen parse_all(const char *text, size_t len, int *rc)
{
    struct seen s = {0};
    struct sse *p = sse_new(4096);
    *rc = sse_feed(p, text, len, on_event, &s);
    sse_free(p);
    return s;
}

static void test_fields(void)
{
    int rc;
    struct seen s = parse_all("data: YHOO\ndata: +2\ndata: 10\n\n", 31, &rc);
    TAP_EQ_INT(rc, 0, "multi-line data parses");
    TAP_EQ_INT(s.n, 1, "one event");
    TAP_EQ_STR(s.data[0], "YHOO\n+2\n10", "data lines joined by LF");
    TAP_EQ_STR(s.type[0], "message", "default type");

    const char *t = ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
                    "data:  third event\n\n";
    s = parse_all(t, strlen(t), &rc);
    TAP_EQ_INT(s.n, 3, "the spec's second example: three events");
    TAP_EQ_STR(s.data[0], "first event", "first");
    TAP_EQ_STR(s.id[0], "1", "id set");
    TAP_EQ_STR(s.data[1], "second event", "no space after the colon");
    TAP_EQ_STR(s.id[1], "", "an empty id field resets the id");
    TAP_EQ_STR(s.data[2], " third event", "only one leading space is dropped");

    t = "data\n\ndata\ndata\n\ndata:\n";
    s = parse_all(t, strlen(t), &rc);
    TAP_EQ_INT(s.n, 2, "a last event without its blank line is not dispatched");
    TAP_EQ_STR(s.data[0], "", "field name alone: empty data");
    TAP_EQ_STR(s.data[1], "\n", "two empty data lines: one LF");

    t = "event: status\ndata: {}\n\nevent: other\n\ndata: x\n\n";
    s = parse_all(t, strlen(t), &rc);
    TAP_EQ_INT(s.n, 2, "an event without data is not dispatched");
    TAP_EQ_STR(s.type[0], "status", "event type");
    TAP_EQ_STR(s.type[1], "message", "the type resets after each blank line");

    t = "foo: bar\nretry: 2500\nretry: 1x\ndata: y\n\n";
    struct sse *p = sse_new(4096);
    struct seen s2 = {0};
    TAP_EQ_INT(sse_feed(p, t, strlen(t), on_event, &s2), 0, "unknown fields ignored");
    TAP_EQ_INT(sse_retry_ms(p), 2500, "retry in ms; a non-digit value ignored");
    TAP_EQ_INT(sse_events(p), 1, "events counted");
    sse_free(p);
}

static void test_line_ends(void)
{
    int rc;
    struct seen s = parse_all("data: a\r\rdata: b\r\n\r\ndata: c\n\n", 29, &rc);
    TAP_EQ_INT(s.n, 3, "CR, CRLF and LF all end lines");
    TAP_EQ_STR(s.data[0], "a", "CR CR");
    TAP_EQ_STR(s.data[1], "b", "CRLF CRLF");
    TAP_EQ_STR(s.data[2], "c", "LF LF");

    s = parse_all("\xEF\xBB\xBF"
                  "data: bom\n\n",
                  14, &rc);
    TAP_EQ_INT(s.n, 1, "a leading BOM is skipped");
    TAP_EQ_STR(s.data[0], "bom", "BOM data");

    struct sse *p = sse_new(4096);
    struct seen s2 = {0};
    sse_feed(p, ": keep-alive\n\n: again\n", 22, on_event, &s2);
    TAP_EQ_INT(sse_comments(p), 2, "comments counted");
    TAP_EQ_INT(s2.n, 0, "comments dispatch nothing");
    sse_free(p);
}

/* fal's status events (fal docs, "Stream request status"), split at every byte. */
static void test_splits(void)
{
    const char *t = ": ping\r\n"
                    "data: {\"status\": \"IN_QUEUE\", \"queue_position\": 0}\r\n\r\n"
                    "data: {\"status\": \"IN_PROGRESS\", \"logs\": []}\r\n\r\n"
                    "event: x\rid: 7\rdata: {\"status\": \"COMPLETED\"}\r\r";
    size_t n = strlen(t);
    int bad = 0;
    for (size_t cut = 0; cut <= n; cut++) {
        for (size_t cut2 = cut; cut2 <= n; cut2 += 7) {
            struct sse *p = sse_new(4096);
            struct seen s = {0};
            int rc = sse_feed(p, t, cut, on_event, &s);
            rc |= sse_feed(p, t + cut, cut2 - cut, on_event, &s);
            rc |= sse_feed(p, t + cut2, n - cut2, on_event, &s);
            if (rc || s.n != 3 || strcmp(s.data[2], "{\"status\": \"COMPLETED\"}") != 0 ||
                strcmp(s.id[2], "7") != 0 || strcmp(s.type[2], "x") != 0 ||
                strcmp(s.data[0], "{\"status\": \"IN_QUEUE\", \"queue_position\": 0}") != 0 ||
                sse_comments(p) != 1)
                bad++;
            sse_free(p);
        }
    }
    TAP_EQ_INT(bad, 0, "every split into three chunks gives the same events");

    struct sse *p = sse_new(4096);
    struct seen s = {0};
    for (size_t i = 0; i < n; i++)
        sse_feed(p, t + i, 1, on_event, &s);
    TAP_EQ_INT(s.n, 3, "byte by byte");
    sse_free(p);
}

static void test_limits(void)
{
    struct sse *p = sse_new(64);
    char big[200];
    memset(big, 'a', sizeof(big));
    struct seen s = {0};
    TAP_EQ_INT(sse_feed(p, "data: ", 6, on_event, &s), 0, "start of a long line");
    TAP_EQ_INT(sse_feed(p, big, sizeof(big), on_event, &s), -E2BIG, "a line past the limit");
    TAP_EQ_INT(sse_feed(p, "\n\n", 2, on_event, &s), -E2BIG, "the error sticks");
    TAP_EQ_INT(s.n, 0, "nothing dispatched");
    sse_free(p);

    p = sse_new(64);
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++)
        rc = sse_feed(p, "data: 0123456789\n", 17, on_event, &s);
    TAP_EQ_INT(rc, -E2BIG, "an event of many lines past the limit");
    sse_free(p);
    /* A line too long is refused whether it came whole or in pieces. */
    char line[100];
    memset(line, 'x', sizeof(line));
    line[0] = ':';
    line[sizeof(line) - 1] = '\n';
    p = sse_new(64);
    TAP_EQ_INT(sse_feed(p, line, sizeof(line), on_event, &s), -E2BIG, "a long comment, whole");
    sse_free(p);
    p = sse_new(64);
    sse_feed(p, line, 50, on_event, &s);
    TAP_EQ_INT(sse_feed(p, line + 50, 50, on_event, &s), -E2BIG, "  and split in two");
    sse_free(p);
    sse_free(NULL);
    TAP_CHECK(1, "sse_free(NULL) is a no-op");
}

int main(void)
{
    test_fields();
    test_line_ends();
    test_splits();
    test_limits();
    return tap_done();
}
