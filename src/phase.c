#include "phase.h"

#include <errno.h>

/* 429, or the provider's own "slow down", halves the rate; an answer that
 * parsed lets it grow back. A transport error says nothing about the rate. */
enum phase_rate phase_rate_for(const struct phase_event *ev)
{
    if (ev->transport_failed)
        return PHASE_RATE_KEEP;
    if (ev->http == 429 || ev->err == -EAGAIN)
        return PHASE_RATE_THROTTLE;
    return ev->err == 0 ? PHASE_RATE_SUCCESS : PHASE_RATE_KEEP;
}

/* The answer parsed: store it, or fetch the result it points to. */
static void phase_on_parsed(const struct phase_event *ev, struct phase_decision *d)
{
    d->next.fail_streak = 0;
    d->next.missing_streak = 0;
    if (ev->needs_result && !ev->task_final) {
        d->action = PHASE_FETCH_RESULT;
        d->next.phase = PHASE_FETCHING;
        return;
    }
    d->action = PHASE_APPLY;
    /* A final state is final: the store keeps the first one. */
    bool ended = ev->task_final || task_state_final(ev->answer_state);
    if (!ended) {
        d->next.phase = PHASE_SCHEDULED;
        d->poll_now = ev->poll_again;
        d->give_up = ev->past_deadline && !ev->gave_up;
    } else if (!ev->task_final && ev->answer_state == TASK_SUCCESS && ev->has_urls) {
        d->next.phase = PHASE_DOWNLOADING;
    } else {
        d->next.phase = PHASE_DONE;
    }
}

/* A failed request is a missed look: the schedule's next poll is the retry,
 * pushed back further while failures go on, so a struggling provider gets
 * fewer requests, not more. A 429 with Retry-After is no failure of the
 * provider's: it said when to come back. */
static void phase_on_failed(const struct phase_event *ev, struct phase_decision *d)
{
    if (ev->err != -ENOENT)
        d->next.missing_streak = 0;
    bool paused = ev->err == -EAGAIN && ev->retry_after_ms >= 0;
    d->backoff_streak = paused ? 1 : ++d->next.fail_streak;
    d->min_wait_ms = ev->retry_after_ms;
    /* The time limit holds whatever the polls answer. */
    d->give_up = ev->past_deadline && !ev->gave_up && !ev->task_final;
    d->action = PHASE_RETRY;
    d->next.phase = PHASE_SCHEDULED;
}

struct phase_decision phase_on_answer(const struct phase_task *cur, const struct phase_event *ev)
{
    struct phase_decision d = {.next = *cur, .rate = phase_rate_for(ev), .min_wait_ms = -1};
    bool result_request = cur->phase == PHASE_FETCHING;
    if (ev->err == 0) {
        phase_on_parsed(ev, &d);
    } else if (result_request && ++d.next.result_streak >= PHASE_RESULT_ATTEMPTS) {
        /* The provider said done but will not hand over the result: retrying
         * for the whole deadline would only hide that. */
        d.action = PHASE_FAIL_NO_RESULT;
        d.next.phase = PHASE_DONE;
    } else if (!result_request && ev->err == -ENOENT &&
               ++d.next.missing_streak >= PHASE_MISSING_POLLS) {
        d.action = PHASE_FAIL_LOST;
        d.next.phase = PHASE_DONE;
    } else {
        phase_on_failed(ev, &d);
    }
    return d;
}

enum phase phase_on_adopt(const struct phase_event *ev)
{
    if (ev->needs_result)
        return PHASE_FETCHING;
    if (!task_state_final(ev->answer_state))
        return PHASE_SCHEDULED;
    return ev->answer_state == TASK_SUCCESS && ev->has_urls ? PHASE_DOWNLOADING : PHASE_DONE;
}

enum phase_callback phase_on_callback(enum phase p)
{
    switch (p) {
    case PHASE_SCHEDULED:
    case PHASE_GIVEN_UP:
        return PHASE_CALLBACK_POLL_NOW;
    case PHASE_POLLING:
    case PHASE_FETCHING:
        return PHASE_CALLBACK_POLL_AFTER;
    case PHASE_DOWNLOADING:
    case PHASE_DONE:
        break;
    }
    return PHASE_CALLBACK_IGNORE;
}
