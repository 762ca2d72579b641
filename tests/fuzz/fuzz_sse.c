/* libFuzzer target: sse_feed, the status stream's parser (bytes from the
 * network). The first byte picks where the input is split; whatever the
 * split, the events and the error are the same as when it is fed whole, and
 * every event's data ends with a NUL at its length (it may hold others). */
#include "fuzz_common.h"
#include "sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct tally {
    uint64_t n;
    uint64_t hash;
};

static void fuzz_sse_on_event(void *arg, const struct sse_event *ev)
{
    struct tally *t = arg;
    check(ev->data[ev->data_len] == '\0', "data is NUL-terminated at data_len");
    check(ev->type[0] != '\0', "an event always has a type");
    t->n++;
    for (size_t i = 0; i < ev->data_len; i++)
        t->hash = (t->hash ^ (unsigned char)ev->data[i]) * 1099511628211u;
    for (const char *p = ev->id; *p; p++)
        t->hash = (t->hash ^ (unsigned char)*p) * 1099511628211u;
    t->hash = (t->hash ^ 0xff) * 1099511628211u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cut = data[0] % size;
    char *text = fuzz_copy(data + 1, size - 1);
    size_t n = size - 1;
    if (cut > n)
        cut = n;

    struct tally whole = {0, 1469598103934665603u}, split = whole;
    struct sse *a = sse_new(1024), *b = sse_new(1024);
    check(a && b, "allocation");
    int ra = sse_feed(a, text, n, fuzz_sse_on_event, &whole);
    int rb = sse_feed(b, text, cut, fuzz_sse_on_event, &split);
    if (rb == 0)
        rb = sse_feed(b, text + cut, n - cut, fuzz_sse_on_event, &split);
    check(ra == 0 || ra == -7 /* E2BIG */, "0 or -E2BIG");
    if (ra == 0) {
        check(rb == 0, "a split stream parses as the whole one");
        check(whole.n == split.n && whole.hash == split.hash, "same events whatever the split");
        check(sse_retry_ms(a) == sse_retry_ms(b), "same retry");
        check(sse_comments(a) == sse_comments(b), "same comments");
    }
    check(sse_events(a) == whole.n, "events counted");
    sse_free(a);
    sse_free(b);
    free(text);
    return 0;
}
