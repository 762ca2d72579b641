/* The parked list: requests that wait, each with an id, a kind, a task and a file, taken
 * off the list by what a wake-up (or an interrupt, by id) matches. Pure: no locks, no I/O;
 * the caller holds the lock that guards the list. */
#ifndef GENFS_PARKED_H
#define GENFS_PARKED_H

#include <stdbool.h>
#include <stdint.h>

#define PARKED_ANY UINT32_MAX /* any task, or every file of a task */

/* Embedded first in the caller's own request record. */
struct parked {
    uint64_t id; /* given by parked_link, never 0 */
    unsigned kind;
    uint32_t idx;
    uint32_t file_n;
    struct parked *next, *prev;
};

struct parked_list {
    struct parked *head;
    uint64_t last_id;
};

/* What a taker looks for: the request's id (then nothing else counts), or kinds (a bit set
 * of 1u << kind) and the task and file (PARKED_ANY: any); ready, if set, must also say yes. */
struct parked_match {
    uint64_t id;
    unsigned kinds;
    uint32_t idx;
    uint32_t file_n;
    bool (*ready)(void *arg, struct parked *p);
    void *arg;
};

/* Links p at the head and gives it a new id, which it returns. */
uint64_t parked_link(struct parked_list *l, struct parked *p);
void parked_unlink(struct parked_list *l, struct parked *p);
/* Unlinks every request m matches; returns them linked through ->next (NULL: none). */
struct parked *parked_take(struct parked_list *l, const struct parked_match *m);

#endif
