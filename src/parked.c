#include "parked.h"

#include <stddef.h>

uint64_t parked_link(struct parked_list *l, struct parked *p)
{
    p->id = ++l->last_id;
    p->prev = NULL;
    p->next = l->head;
    if (l->head)
        l->head->prev = p;
    l->head = p;
    return p->id;
}

void parked_unlink(struct parked_list *l, struct parked *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
}

static bool parked_matches(struct parked *p, const struct parked_match *m)
{
    if (m->id)
        return p->id == m->id;
    if (!(m->kinds & (1u << p->kind)))
        return false;
    if (m->idx != PARKED_ANY && p->idx != m->idx)
        return false;
    if (m->file_n != PARKED_ANY && p->file_n != m->file_n)
        return false;
    return !m->ready || m->ready(m->arg, p);
}

/* The one walker of the list: every wake-up and interrupt goes through it. */
struct parked *parked_take(struct parked_list *l, const struct parked_match *m)
{
    struct parked *taken = NULL;
    for (struct parked *p = l->head, *next; p; p = next) {
        next = p->next;
        if (parked_matches(p, m)) {
            parked_unlink(l, p);
            p->next = taken;
            taken = p;
        }
    }
    return taken;
}
