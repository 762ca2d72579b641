#include "timers.h"

#include <errno.h>
#include <stdlib.h>

void timers_init(struct timers *tm)
{
    *tm = (struct timers){0};
}

void timers_free(struct timers *tm)
{
    free(tm->due);
    free(tm->pos);
    free(tm->heap);
    timers_init(tm);
}

/* Heap order: the earlier due time first, the smaller id on a tie. */
static bool timers_is_before(const struct timers *tm, uint32_t a, uint32_t b)
{
    uint32_t ia = tm->heap[a], ib = tm->heap[b];
    return tm->due[ia] < tm->due[ib] || (tm->due[ia] == tm->due[ib] && ia < ib);
}

static void timers_swap_slots(struct timers *tm, uint32_t a, uint32_t b)
{
    uint32_t t = tm->heap[a];
    tm->heap[a] = tm->heap[b];
    tm->heap[b] = t;
    tm->pos[tm->heap[a]] = a;
    tm->pos[tm->heap[b]] = b;
}

static void timers_sift_up(struct timers *tm, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!timers_is_before(tm, i, p))
            return;
        timers_swap_slots(tm, i, p);
        i = p;
    }
}

static void timers_sift_down(struct timers *tm, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < tm->len && timers_is_before(tm, l, m))
            m = l;
        if (r < tm->len && timers_is_before(tm, r, m))
            m = r;
        if (m == i)
            return;
        timers_swap_slots(tm, i, m);
        i = m;
    }
}

int timers_reserve(struct timers *tm, uint32_t id)
{
    if (id < tm->cap)
        return 0;
    if (id == TIMERS_NONE)
        return -ENOMEM;
    uint32_t cap = tm->cap ? tm->cap : 1024;
    while (cap <= id)
        cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
    int64_t *due = realloc(tm->due, cap * sizeof(*due));
    if (due)
        tm->due = due;
    uint32_t *pos = realloc(tm->pos, cap * sizeof(*pos));
    if (pos)
        tm->pos = pos;
    uint32_t *heap = realloc(tm->heap, cap * sizeof(*heap));
    if (heap)
        tm->heap = heap;
    if (!due || !pos || !heap)
        return -ENOMEM;
    for (uint32_t i = tm->cap; i < cap; i++)
        tm->pos[i] = TIMERS_NONE;
    tm->cap = cap;
    return 0;
}

int timers_set(struct timers *tm, uint32_t id, int64_t due)
{
    int rc = timers_reserve(tm, id);
    if (rc < 0)
        return rc;
    tm->due[id] = due;
    if (tm->pos[id] == TIMERS_NONE) {
        tm->pos[id] = tm->len;
        tm->heap[tm->len++] = id;
    }
    timers_sift_up(tm, tm->pos[id]);
    timers_sift_down(tm, tm->pos[id]);
    return 0;
}

void timers_remove(struct timers *tm, uint32_t id)
{
    if (!timers_is_set(tm, id))
        return;
    uint32_t at = tm->pos[id];
    tm->len--;
    if (at != tm->len) {
        timers_swap_slots(tm, at, tm->len);
        timers_sift_up(tm, at);
        timers_sift_down(tm, at);
    }
    tm->pos[id] = TIMERS_NONE;
}

bool timers_is_set(const struct timers *tm, uint32_t id)
{
    return id < tm->cap && tm->pos[id] != TIMERS_NONE;
}

bool timers_peek_first(const struct timers *tm, uint32_t *id, int64_t *due)
{
    if (tm->len == 0)
        return false;
    *id = tm->heap[0];
    *due = tm->due[*id];
    return true;
}
