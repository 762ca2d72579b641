/* Pure: the engine's state machine of one task. A task is in one phase at a
 * time; each answer to its requests (a status answer, a result answer, a
 * transport error, an HTTP refusal, all against its deadline) goes through
 * phase_on_answer, which decides what the engine does next, and the engine
 * applies the decision (engine_poll.c). Two moves happen outside answers:
 * the schedule stops polling (GIVEN_UP, engine_plan.c), and a task's last
 * download settles DOWNLOADING into DONE (engine_cache.c). */
#ifndef GENFS_PHASE_H
#define GENFS_PHASE_H

#include "task.h"

#include <stdbool.h>
#include <stdint.h>

enum phase {
    PHASE_DONE,        /* ended with nothing left to do (also a free slot) */
    PHASE_SCHEDULED,   /* pending: its next status poll is on a timer */
    PHASE_POLLING,     /* a status request is in flight */
    PHASE_FETCHING,    /* the status said done: the result request is in flight */
    PHASE_DOWNLOADING, /* succeeded: its result files are queued or downloading */
    PHASE_GIVEN_UP,    /* no answer within the schedule's 24 h: polling stopped */
};

/* "No such task" this many polls in a row (with backoff): the provider lost it. */
#define PHASE_MISSING_POLLS 5
/* Failed result requests of a task the provider called done, before it is failed. */
#define PHASE_RESULT_ATTEMPTS 5

/* A task's phase and the streaks the decisions count. */
struct phase_task {
    enum phase phase;
    uint32_t fail_streak;    /* failed requests in a row */
    uint32_t missing_streak; /* status polls answered "no such task" in a row */
    uint32_t result_streak;  /* failed result requests */
};

/* The answer to the request in flight (the task is POLLING or FETCHING). */
struct phase_event {
    bool transport_failed;        /* no HTTP answer (connect, timeout, reset) */
    long http;                    /* the HTTP status; 0 when transport_failed */
    int err;                      /* 0: the answer parsed; else a negative errno */
    int64_t retry_after_ms;       /* what Retry-After said, or -1 */
    bool needs_result;            /* err == 0: done, the result is fetched separately */
    enum task_state answer_state; /* err == 0: the state the answer gives */
    bool has_urls;                /* err == 0: the answer lists result files */
    bool task_final;              /* the task had ended before this answer */
    bool past_deadline;           /* now is past the model's time limit for the task */
    bool gave_up;                 /* readers were told of the time limit already */
    bool poll_again;              /* a callback came while the request was in flight */
};

enum phase_action {
    PHASE_APPLY,          /* store the answer; then the phase says what follows */
    PHASE_FETCH_RESULT,   /* send the result request */
    PHASE_FAIL_NO_RESULT, /* fail the task: done, but its result request keeps failing */
    PHASE_FAIL_LOST,      /* fail the task: the provider no longer knows it */
    PHASE_RETRY,          /* a missed look: poll again after a backoff */
};

/* What the answer does to the shared request rate. */
enum phase_rate {
    PHASE_RATE_KEEP,
    PHASE_RATE_SUCCESS,  /* an answer: the rate may grow back */
    PHASE_RATE_THROTTLE, /* 429 (or the provider's "slow down"): the rate halves */
};

struct phase_decision {
    struct phase_task next;
    enum phase_action action;
    enum phase_rate rate;
    bool give_up;            /* past the time limit now: tell the readers (ETIMEDOUT) */
    bool poll_now;           /* APPLY, still pending: poll at once, not on the schedule */
    uint32_t backoff_streak; /* RETRY: the exponent of the backoff */
    int64_t min_wait_ms;     /* RETRY: no poll sooner than this (Retry-After), or -1 */
};

/* What an answer does to the rate (also the first answer about an adopted task). */
enum phase_rate phase_rate_for(const struct phase_event *ev);

struct phase_decision phase_on_answer(const struct phase_task *cur, const struct phase_event *ev);

/* The phase of a task adopted with mkdir MODEL/ID, from the first status
 * answer (err == 0): fetch its result, poll it, download it, or nothing. */
enum phase phase_on_adopt(const struct phase_event *ev);

/* A callback (or another reason to look now) for a task in this phase. */
enum phase_callback {
    PHASE_CALLBACK_IGNORE,     /* it has ended: nothing to poll */
    PHASE_CALLBACK_POLL_NOW,   /* move its next poll to now */
    PHASE_CALLBACK_POLL_AFTER, /* a request is in flight and may predate the news: poll after it */
};
enum phase_callback phase_on_callback(enum phase p);

#endif
