/* libFuzzer target: sched_hist_decode, the learned schedule's stored
 * histogram (read back from the task database). Whatever decodes must encode
 * back to a text that decodes to the same histogram, and a failed decode
 * must leave the histogram untouched. */
#include "fuzz_common.h"
#include "sched.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);

    struct sched_hist h, before;
    memset(&h, 0x5a, sizeof(h));
    memcpy(&before, &h, sizeof(h));
    int rc = sched_hist_decode(&h, text);
    if (rc != 0) {
        check(rc == -22 /* EINVAL */, "0 or -EINVAL");
        check(memcmp(&h, &before, sizeof(h)) == 0, "a failed decode leaves h untouched");
    } else {
        char buf[8192];
        int n = sched_hist_encode(&h, buf, sizeof(buf));
        check(n > 0 && (size_t)n < sizeof(buf), "a decoded histogram encodes");
        struct sched_hist again;
        sched_hist_init(&again);
        check(sched_hist_decode(&again, buf) == 0, "its encoding decodes");
        check(memcmp(&again, &h, sizeof(h)) == 0, "round trip gives the same histogram");
        char buf2[8192];
        int n2 = sched_hist_encode(&again, buf2, sizeof(buf2));
        check(n2 == n && memcmp(buf, buf2, (size_t)n) == 0, "encoding is stable");
        /* The decoded histogram is usable: quantiles within the layout. */
        int64_t q = sched_hist_quantile(&h, 0.5);
        check(q >= 0, "quantile non-negative");
        sched_hist_observe(&h, 1500);
    }
    free(text);
    return 0;
}
