/* The parked list: link, unlink, and take by id, kind, task, file and readiness. */
#include "parked.h"
#include "tap.h"

#include <stdlib.h>

enum { K_RESULT, K_EVENTS, K_FILE, K_ATTR };

static struct parked items[6];

/* Parks six requests: results of tasks 1 and 2, events, file 0 and 1 of task 1, attr 1/0. */
static void park_six(struct parked_list *l)
{
    static const struct {
        unsigned kind;
        uint32_t idx, file_n;
    } spec[6] = {{K_RESULT, 1, 0}, {K_RESULT, 2, 0}, {K_EVENTS, 0, 0},
                 {K_FILE, 1, 0},   {K_FILE, 1, 1},   {K_ATTR, 1, 0}};
    *l = (struct parked_list){0};
    for (int i = 0; i < 6; i++) {
        items[i] =
            (struct parked){.kind = spec[i].kind, .idx = spec[i].idx, .file_n = spec[i].file_n};
        parked_link(l, &items[i]);
    }
}

static int count(const struct parked *p)
{
    int n = 0;
    for (; p; p = p->next)
        n++;
    return n;
}

static bool listed(const struct parked_list *l, const struct parked *want)
{
    for (const struct parked *p = l->head; p; p = p->next)
        if (p == want)
            return true;
    return false;
}

static void test_ids(void)
{
    struct parked_list l;
    park_six(&l);
    bool distinct = true;
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            distinct = distinct && items[i].id != items[j].id && items[i].id != 0;
    TAP_CHECK(distinct, "each parked request has its own id, never 0");
    struct parked *t = parked_take(&l, &(struct parked_match){.id = items[3].id});
    TAP_CHECK(t == &items[3] && !t->next, "an interrupt takes its request by id, and only it");
    TAP_CHECK(!listed(&l, &items[3]) && count(l.head) == 5, "it is gone from the list");
    t = parked_take(&l, &(struct parked_match){.id = items[3].id});
    TAP_CHECK(!t, "a second interrupt of the same id finds nothing (answered once)");
    uint64_t old = items[3].id;
    parked_link(&l, &items[3]);
    TAP_CHECK(items[3].id > old, "a request parked again gets a new id: a late interrupt of the "
                                 "old one misses it");
}

static void test_kinds(void)
{
    struct parked_list l;
    park_six(&l);
    struct parked *t = parked_take(
        &l, &(struct parked_match){.kinds = 1u << K_RESULT, .idx = 1, .file_n = PARKED_ANY});
    TAP_CHECK(t == &items[0] && !t->next, "a task's results: task 1's reader, not task 2's");
    t = parked_take(&l, &(struct parked_match){
                            .kinds = (1u << K_FILE) | (1u << K_ATTR), .idx = 1, .file_n = 0});
    TAP_EQ_INT(count(t), 2, "file 0 of task 1: its read and its stat, not file 1's read");
    TAP_CHECK(t && t->next && t == &items[3] && t->next == &items[5],
              "taken in the order they were parked (oldest first)");
    t = parked_take(&l,
                    &(struct parked_match){.kinds = 1u << K_FILE, .idx = 1, .file_n = PARKED_ANY});
    TAP_CHECK(t == &items[4], "PARKED_ANY file: every file of the task (the task forgotten)");
    TAP_CHECK(count(l.head) == 2 && listed(&l, &items[1]) && listed(&l, &items[2]),
              "the others stay parked");
    t = parked_take(&l,
                    &(struct parked_match){.kinds = ~0u, .idx = PARKED_ANY, .file_n = PARKED_ANY});
    TAP_EQ_INT(count(t), 2, "shutdown takes everything left");
    TAP_CHECK(l.head == NULL, "and the list is empty");
}

static bool odd_task(void *arg, struct parked *p)
{
    (*(int *)arg)++;
    return p->idx % 2 == 1;
}

static void test_ready(void)
{
    struct parked_list l;
    park_six(&l);
    int asked = 0;
    struct parked *t = parked_take(&l, &(struct parked_match){.kinds = 1u << K_RESULT,
                                                              .idx = PARKED_ANY,
                                                              .file_n = PARKED_ANY,
                                                              .ready = odd_task,
                                                              .arg = &asked});
    TAP_CHECK(t == &items[0] && !t->next, "only the requests ready() says yes to are taken");
    TAP_EQ_INT(asked, 2, "ready() is asked only of requests that match the rest");
    TAP_CHECK(listed(&l, &items[1]), "a request not ready yet waits on");
}

static void test_unlink(void)
{
    struct parked_list l;
    park_six(&l);
    parked_unlink(&l, &items[2]); /* the middle */
    parked_unlink(&l, &items[5]); /* the head (newest) */
    parked_unlink(&l, &items[0]); /* the tail (oldest) */
    int n = 0;
    bool links = true;
    for (struct parked *p = l.head; p; p = p->next, n++)
        links = links && (p->next == NULL || p->next->prev == p);
    TAP_CHECK(n == 3 && links && l.head == &items[4] && l.head->prev == NULL,
              "unlinking the middle, the head and the tail leaves a whole list of 3");
    TAP_CHECK(!items[2].next && !items[2].prev, "an unlinked request points nowhere");
}

int main(void)
{
    test_ids();
    test_kinds();
    test_ready();
    test_unlink();
    return tap_done();
}
