#include "tap.h"
#include "timers.h"

#include <stdlib.h>

/* Pops every timer in order; returns how many, ids in out. */
static int drain(struct timers *tm, uint32_t *out, int64_t *dues, int cap)
{
    int n = 0;
    uint32_t id;
    int64_t due;
    while (n < cap && timers_peek_first(tm, &id, &due)) {
        out[n] = id;
        dues[n++] = due;
        timers_remove(tm, id);
    }
    return n;
}

static void test_order(void)
{
    struct timers tm;
    timers_init(&tm);
    uint32_t id;
    int64_t due;
    TAP_CHECK(!timers_peek_first(&tm, &id, &due), "an empty heap has no first timer");
    TAP_EQ_INT(timers_set(&tm, 7, 300), 0, "set 7 at 300");
    timers_set(&tm, 3, 100);
    timers_set(&tm, 9, 200);
    TAP_CHECK(timers_peek_first(&tm, &id, &due) && id == 3 && due == 100,
              "the earliest comes first (%u at %lld)", id, (long long)due);
    timers_set(&tm, 3, 400);
    TAP_CHECK(timers_peek_first(&tm, &id, &due) && id == 9, "moving a timer later re-orders it");
    timers_set(&tm, 7, 50);
    TAP_CHECK(timers_peek_first(&tm, &id, &due) && id == 7 && due == 50,
              "moving a timer earlier re-orders it");
    TAP_EQ_INT(tm.len, 3, "setting a set timer again does not add one");
    timers_remove(&tm, 9);
    timers_remove(&tm, 9);
    TAP_CHECK(!timers_is_set(&tm, 9) && tm.len == 2, "remove clears a timer, twice is harmless");
    TAP_CHECK(!timers_is_set(&tm, 5000), "an id past the arrays is not set");
    timers_remove(&tm, 5000);
    uint32_t ids[8];
    int64_t dues[8];
    int n = drain(&tm, ids, dues, 8);
    TAP_CHECK(n == 2 && ids[0] == 7 && ids[1] == 3, "drained in due order: 7 then 3");
    timers_free(&tm);
}

static void test_tie_break(void)
{
    struct timers tm;
    timers_init(&tm);
    const uint32_t order[] = {42, 5, 17, 0, 99, 3, 64};
    for (int i = 0; i < 7; i++)
        timers_set(&tm, order[i], 1000);
    uint32_t ids[8];
    int64_t dues[8];
    int n = drain(&tm, ids, dues, 8);
    int ok = n == 7;
    for (int i = 1; i < n; i++)
        ok &= ids[i - 1] < ids[i];
    TAP_CHECK(ok, "timers due at the same time fire by id, whatever the order they were set");
    timers_free(&tm);
}

/* Random sets, moves and removes against a plain array: the heap always
 * gives the (due, id) minimum. */
static void test_random(void)
{
    enum { IDS = 3000, STEPS = 60000 };
    struct timers tm;
    timers_init(&tm);
    static int64_t ref[IDS];
    static bool set[IDS];
    unsigned seed = 1;
    int ok = 1, grew = 1;
    for (int step = 0; step < STEPS && ok; step++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t id = (seed >> 8) % IDS;
        if ((seed >> 4) % 4 == 0) {
            timers_remove(&tm, id);
            set[id] = false;
        } else {
            ref[id] = (int64_t)((seed >> 12) % 500);
            set[id] = true;
            grew &= timers_set(&tm, id, ref[id]) == 0;
        }
        uint32_t want = UINT32_MAX, got;
        int64_t due;
        for (uint32_t i = 0; i < IDS; i++)
            if (set[i] && (want == UINT32_MAX || ref[i] < ref[want]))
                want = i;
        bool any = timers_peek_first(&tm, &got, &due);
        ok = want == UINT32_MAX ? !any : any && got == want && due == ref[want];
        if (!ok)
            printf("# step %d: want %u, got %u\n", step, want, any ? got : UINT32_MAX);
    }
    TAP_CHECK(grew, "the arrays grow past their first 1024 ids");
    TAP_CHECK(ok, "after %d random sets and removes the first timer is always the minimum", STEPS);
    timers_free(&tm);
}

int main(void)
{
    test_order();
    test_tie_break();
    test_random();
    return tap_done();
}
