/* Pure: a min-heap of timers keyed by a small integer id (the engine's task
 * slots), ordered by due time and, on equal times, by id, so timers due at
 * the same moment fire in a fixed order. The unit of time is the caller's. */
#ifndef GENFS_TIMERS_H
#define GENFS_TIMERS_H

#include <stdbool.h>
#include <stdint.h>

#define TIMERS_NONE UINT32_MAX

struct timers {
    int64_t *due;   /* by id */
    uint32_t *pos;  /* by id: where it is in heap, TIMERS_NONE when not set */
    uint32_t *heap; /* ids, earliest first */
    uint32_t len;   /* ids in the heap */
    uint32_t cap;   /* ids the arrays have room for */
};

void timers_init(struct timers *tm);
void timers_free(struct timers *tm);
/* Room for ids 0..id: 0 or -ENOMEM. */
int timers_reserve(struct timers *tm, uint32_t id);
/* Sets (or moves) id's timer to due: 0 or -ENOMEM. */
int timers_set(struct timers *tm, uint32_t id, int64_t due);
/* Clears id's timer, if it has one. */
void timers_remove(struct timers *tm, uint32_t id);
bool timers_is_set(const struct timers *tm, uint32_t id);
/* The earliest timer: true with its id and due time, false when none is set. */
bool timers_peek_first(const struct timers *tm, uint32_t *id, int64_t *due);

#endif
