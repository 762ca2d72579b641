/* genfs-sim tasks: the state seen over time, cancels and aborted tasks, the resultJson text and
 * the /_sim/ record, and the hash table. */
#include "sim_task.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct sim_task *make(int failed)
{
    struct sim_task *t = calloc(1, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "tk0123456789abcdef0123");
    t->model = strdup("nano-banana");
    t->kind = SIM_KIND_IMAGE;
    t->prompt = strdup("cat");
    t->input_json = strdup("{\"prompt\":\"cat\"}");
    t->param = strdup("{\"input\":{\"prompt\":\"cat\"}}");
    t->submit_ms = 1000000;
    t->duration_ms = 10000;
    t->complete_ms = t->submit_ms + t->duration_ms;
    t->failed = failed;
    t->fail_code = strdup("500");
    t->fail_msg = strdup("generation failed: content policy");
    t->outputs = 2;
    return t;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

int main(void)
{
    struct sim_task *t = make(0);
    struct sim_task_view v;
    sim_task_view_at(t, 1000000, &v);
    TAP_EQ_STR(v.state, "waiting", "at submit: waiting");
    sim_task_view_at(t, 1000999, &v);
    TAP_EQ_STR(v.state, "waiting", "first 10%: waiting");
    sim_task_view_at(t, 1001000, &v);
    TAP_EQ_STR(v.state, "queuing", "10%: queuing");
    sim_task_view_at(t, 1003000, &v);
    TAP_EQ_STR(v.state, "generating", "30%: generating");
    TAP_EQ_INT(v.progress, 0, "progress starts at 0");
    sim_task_view_at(t, 1006500, &v);
    TAP_EQ_INT(v.progress, 50, "progress halfway");
    sim_task_view_at(t, 1009999, &v);
    TAP_CHECK(v.progress == 99 && !v.done, "never 100 before the end");
    sim_task_view_at(t, 1010000, &v);
    TAP_CHECK(v.done && strcmp(v.state, "success") == 0 && v.progress == 100, "success at end");
    sim_task_view_at(t, 999000, &v);
    TAP_EQ_STR(v.state, "waiting", "clock before submit: waiting");

    char *r = sim_task_result_json(t, "http://127.0.0.1:5");
    cJSON *rj = cJSON_Parse(r);
    cJSON *urls = cJSON_GetObjectItem(rj, "resultUrls");
    TAP_EQ_INT(cJSON_GetArraySize(urls), 2, "resultJson: two result URLs");
    TAP_EQ_STR(cJSON_GetArrayItem(urls, 1)->valuestring,
               "http://127.0.0.1:5/media/tk0123456789abcdef0123/1.png", "URL form");
    cJSON_Delete(rj);
    free(r);
    TAP_CHECK(sim_task_started(t), "a task that ran to its end started");
    t->duration_ms = 0;
    t->complete_ms = t->submit_ms;
    TAP_CHECK(sim_task_started(t), "a zero-length task that ended started too");
    t->duration_ms = 10000;
    t->complete_ms = t->submit_ms + t->duration_ms;

    /* A cancel during generation ends it then; a second cancel changes nothing. */
    TAP_EQ_INT(sim_task_cancel(t, 1005000), 1, "cancel while generating");
    TAP_CHECK(t->failed && t->canceled && t->complete_ms == 1005000, "canceled at that moment");
    sim_task_view_at(t, 1005000, &v);
    TAP_CHECK(v.done && strcmp(v.state, "canceled") == 0, "shows canceled");
    TAP_CHECK(sim_task_started(t), "it had started (30%% is at 1003000)");
    TAP_EQ_INT(sim_task_cancel(t, 1006000), 0, "a second cancel: already ended");
    TAP_EQ_INT(t->complete_ms, 1005000, "end unchanged");
    sim_task_free(t);
    t = make(0);
    TAP_EQ_INT(sim_task_cancel(t, 1001000), 1, "cancel while queued");
    TAP_CHECK(!sim_task_started(t), "canceled in the queue: never started");
    TAP_EQ_INT(sim_task_cancel(t, 1020000), 0, "cancel after the end: 0");
    sim_task_free(t);

    t = make(1);
    t->aborted = 1;
    sim_task_view_at(t, 1005000, &v);
    TAP_EQ_STR(v.state, "queuing", "an aborted task never leaves the queue");
    sim_task_view_at(t, 1010000, &v);
    TAP_EQ_STR(v.state, "aborted", "then ends aborted");
    TAP_CHECK(!sim_task_started(t), "aborted: never started");
    cJSON *d = sim_task_figure_json(t, 1020000, "http://h", NULL);
    TAP_EQ_STR(str(d, "final_state"), "aborted", "figure final_state aborted");
    TAP_CHECK(cJSON_IsNull(cJSON_GetObjectItem(d, "provider")), "no provider given: null");
    cJSON_Delete(d);
    sim_task_free(t);

    t = make(1);
    t->provider = strdup("value");
    d = sim_task_figure_json(t, 1020000, "http://h", NULL);
    TAP_EQ_STR(str(d, "final_state"), "failed", "figure final_state");
    TAP_EQ_STR(str(d, "fail_code"), "500", "figure fail_code");
    TAP_EQ_STR(str(d, "provider"), "value", "figure provider: the routing field as submitted");
    TAP_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(d, "result_urls")), 0,
               "failed: no result URLs");
    TAP_EQ_INT((long long)cJSON_GetObjectItem(d, "complete_ms")->valuedouble, 1010000,
               "figure complete_ms");
    cJSON_Delete(d);
    sim_task_free(t);

    struct sim_table tab;
    sim_table_init(&tab);
    char key[32];
    static int vals[20000];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        vals[i] = i;
        sim_table_put(&tab, key, &vals[i]);
    }
    int found = 1;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        int *p = sim_table_get(&tab, key);
        found &= p && *p == i;
    }
    TAP_CHECK(found, "20000 keys stored and found (table grew to %zu slots)", tab.nslots);
    TAP_EQ_INT(tab.count, 20000, "count");
    TAP_CHECK(sim_table_get(&tab, "nope") == NULL, "absent key");
    sim_table_put(&tab, "k5", &vals[7]);
    TAP_CHECK(*(int *)sim_table_get(&tab, "k5") == 7 && tab.count == 20000, "replace");
    sim_table_free(&tab);
    return tap_done();
}
