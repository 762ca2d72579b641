#include "phase.h"
#include "tap.h"

#include <errno.h>

/* A status answer that parsed, with this state. */
static struct phase_event answer(enum task_state st)
{
    return (struct phase_event){.http = 200, .retry_after_ms = -1, .answer_state = st};
}

static struct phase_event refused(long http, int err, int64_t retry_after_ms)
{
    return (struct phase_event){.http = http, .err = err, .retry_after_ms = retry_after_ms};
}

static struct phase_event unreachable(void)
{
    return (struct phase_event){.transport_failed = true, .err = -EIO, .retry_after_ms = -1};
}

static const struct phase_task polling = {.phase = PHASE_POLLING};
static const struct phase_task fetching = {.phase = PHASE_FETCHING};

static void test_parsed(void)
{
    struct phase_task cur = {.phase = PHASE_POLLING, .fail_streak = 3, .missing_streak = 2};
    struct phase_event ev = answer(TASK_GENERATING);
    struct phase_decision d = phase_on_answer(&cur, &ev);
    TAP_CHECK(d.action == PHASE_APPLY && d.next.phase == PHASE_SCHEDULED,
              "pending answer: stored, then scheduled");
    TAP_CHECK(d.next.fail_streak == 0 && d.next.missing_streak == 0, "an answer ends the streaks");
    TAP_CHECK(d.rate == PHASE_RATE_SUCCESS && !d.poll_now && !d.give_up,
              "an answer lets the rate grow; no early poll, no give-up");
    ev.poll_again = true;
    d = phase_on_answer(&cur, &ev);
    TAP_CHECK(d.poll_now, "a callback during the poll: poll again at once");
    ev = answer(TASK_SUCCESS);
    ev.has_urls = true;
    ev.poll_again = true;
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(d.action == PHASE_APPLY && d.next.phase == PHASE_DOWNLOADING && !d.poll_now,
              "success with files: stored, then downloading");
    ev = answer(TASK_FAILED);
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(d.action == PHASE_APPLY && d.next.phase == PHASE_DONE, "failure: stored, done");
    ev = answer(TASK_GENERATING);
    ev.task_final = true;
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(d.action == PHASE_APPLY && d.next.phase == PHASE_DONE,
              "a task that had ended stays ended whatever the provider says");
    ev = answer(TASK_SUCCESS);
    ev.needs_result = true;
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(d.action == PHASE_FETCH_RESULT && d.next.phase == PHASE_FETCHING,
              "done, result elsewhere: fetch the result");
    ev.task_final = true;
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(d.action == PHASE_APPLY, "an ended task's result is not fetched again");
}

static void test_deadline(void)
{
    struct phase_event ev = answer(TASK_GENERATING);
    ev.past_deadline = true;
    struct phase_decision d = phase_on_answer(&polling, &ev);
    TAP_CHECK(d.give_up && d.next.phase == PHASE_SCHEDULED,
              "past the deadline and pending: give up (readers told), polling goes on");
    ev.gave_up = true;
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(!d.give_up, "given up already: not again");
    ev = answer(TASK_SUCCESS);
    ev.past_deadline = true;
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(!d.give_up, "an answer that ends the task after the deadline: no give-up");
    ev = unreachable();
    ev.past_deadline = true;
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(d.action == PHASE_RETRY && d.give_up, "the deadline holds whatever the polls answer");
}

static void test_failures(void)
{
    struct phase_event ev = unreachable();
    struct phase_task cur = polling;
    struct phase_decision d = phase_on_answer(&cur, &ev);
    TAP_CHECK(d.action == PHASE_RETRY && d.next.phase == PHASE_SCHEDULED,
              "transport error: a missed look, retried");
    TAP_CHECK(d.rate == PHASE_RATE_KEEP, "a transport error leaves the rate alone");
    TAP_EQ_INT(d.backoff_streak, 1, "first failure: backoff exponent 1");
    cur = d.next;
    cur.phase = PHASE_POLLING;
    d = phase_on_answer(&cur, &ev);
    TAP_EQ_INT(d.backoff_streak, 2, "second failure in a row: exponent 2");
    TAP_EQ_INT(d.min_wait_ms, -1, "no Retry-After: no minimum wait");

    ev = refused(500, -EIO, -1);
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(d.action == PHASE_RETRY && d.rate == PHASE_RATE_KEEP, "HTTP 500: retried");

    ev = refused(429, -EAGAIN, 7000);
    cur = (struct phase_task){.phase = PHASE_POLLING, .fail_streak = 4};
    d = phase_on_answer(&cur, &ev);
    TAP_CHECK(d.rate == PHASE_RATE_THROTTLE, "429: the rate is throttled");
    TAP_CHECK(d.backoff_streak == 1 && d.next.fail_streak == 4 && d.min_wait_ms == 7000,
              "429 with Retry-After: no growing backoff, waits as told");
    ev = refused(429, -EAGAIN, -1);
    d = phase_on_answer(&cur, &ev);
    TAP_CHECK(d.backoff_streak == 5, "429 without Retry-After counts as a failure");
    ev = refused(200, -EAGAIN, -1);
    d = phase_on_answer(&polling, &ev);
    TAP_CHECK(d.rate == PHASE_RATE_THROTTLE, "the provider's own \"not yet\" (EAGAIN) throttles");
}

static void test_missing(void)
{
    struct phase_task cur = polling;
    struct phase_event ev = refused(404, -ENOENT, -1);
    struct phase_decision d;
    for (int i = 1; i < PHASE_MISSING_POLLS; i++) {
        d = phase_on_answer(&cur, &ev);
        cur = d.next;
        cur.phase = PHASE_POLLING;
    }
    TAP_CHECK(d.action == PHASE_RETRY && cur.missing_streak == PHASE_MISSING_POLLS - 1,
              "\"no such task\" is retried %d times", PHASE_MISSING_POLLS - 1);
    struct phase_event other = refused(500, -EIO, -1);
    d = phase_on_answer(&cur, &other);
    TAP_EQ_INT(d.next.missing_streak, 0, "another error breaks the \"no such task\" streak");
    d = phase_on_answer(&cur, &ev);
    TAP_CHECK(d.action == PHASE_FAIL_LOST && d.next.phase == PHASE_DONE,
              "the %dth \"no such task\" in a row: the provider lost it, the task fails",
              PHASE_MISSING_POLLS);
    d = phase_on_answer(&(struct phase_task){.phase = PHASE_FETCHING, .missing_streak = 9}, &ev);
    TAP_CHECK(d.action == PHASE_RETRY, "a result request's 404 is no lost task");
}

static void test_result(void)
{
    struct phase_task cur = fetching;
    struct phase_event ev = refused(500, -EIO, -1);
    struct phase_decision d;
    for (int i = 1; i < PHASE_RESULT_ATTEMPTS; i++) {
        d = phase_on_answer(&cur, &ev);
        TAP_CHECK(d.action == PHASE_RETRY && d.next.phase == PHASE_SCHEDULED,
                  "failed result request %d: poll again later", i);
        cur = d.next;
        cur.phase = PHASE_FETCHING;
    }
    d = phase_on_answer(&cur, &ev);
    TAP_CHECK(d.action == PHASE_FAIL_NO_RESULT && d.next.phase == PHASE_DONE,
              "after %d failed result requests the task fails", PHASE_RESULT_ATTEMPTS);
    ev = answer(TASK_SUCCESS);
    ev.has_urls = true;
    d = phase_on_answer(&fetching, &ev);
    TAP_CHECK(d.action == PHASE_APPLY && d.next.phase == PHASE_DOWNLOADING,
              "the result answer: stored, downloading");
}

static void test_adopt_and_callback(void)
{
    struct phase_event ev = answer(TASK_QUEUING);
    TAP_EQ_INT(phase_on_adopt(&ev), PHASE_SCHEDULED, "adopting a pending task: scheduled");
    ev = answer(TASK_SUCCESS);
    ev.has_urls = true;
    TAP_EQ_INT(phase_on_adopt(&ev), PHASE_DOWNLOADING, "adopting a finished task: downloading");
    ev.needs_result = true;
    TAP_EQ_INT(phase_on_adopt(&ev), PHASE_FETCHING, "adopting one whose result is elsewhere");
    ev = answer(TASK_FAILED);
    TAP_EQ_INT(phase_on_adopt(&ev), PHASE_DONE, "adopting a failed task: done");

    TAP_EQ_INT(phase_on_callback(PHASE_SCHEDULED), PHASE_CALLBACK_POLL_NOW, "callback: poll now");
    TAP_EQ_INT(phase_on_callback(PHASE_GIVEN_UP), PHASE_CALLBACK_POLL_NOW,
               "callback on a task no longer polled: poll now");
    TAP_EQ_INT(phase_on_callback(PHASE_POLLING), PHASE_CALLBACK_POLL_AFTER,
               "callback during a poll: poll again after it");
    TAP_EQ_INT(phase_on_callback(PHASE_FETCHING), PHASE_CALLBACK_POLL_AFTER,
               "callback during the result request: poll again after it");
    TAP_EQ_INT(phase_on_callback(PHASE_DOWNLOADING), PHASE_CALLBACK_IGNORE,
               "callback on an ended task: ignored");
    TAP_EQ_INT(phase_on_callback(PHASE_DONE), PHASE_CALLBACK_IGNORE, "callback when done: ignored");
}

int main(void)
{
    test_parsed();
    test_deadline();
    test_failures();
    test_missing();
    test_result();
    test_adopt_and_callback();
    return tap_done();
}
