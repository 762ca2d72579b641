#include "stats.h"
#include "tap.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void test_percentile(void)
{
    const double two[] = {10, 20};
    TAP_EQ_INT(stats_percentile(two, 2, 99), 20, "two samples: p99 is the larger");
    TAP_EQ_INT(stats_percentile(two, 2, 50), 10, "two samples: p50 is the smaller");
    const double one[] = {7};
    TAP_EQ_INT(stats_percentile(one, 1, 0), 7, "one sample: p0 is it");
    TAP_EQ_INT(stats_percentile(one, 1, 99), 7, "one sample: p99 is it");
    static double hundred[100];
    for (int i = 0; i < 100; i++)
        hundred[i] = i + 1;
    TAP_EQ_INT(stats_percentile(hundred, 100, 99), 99, "1..100: p99 is 99 (rank 99, not 100)");
    TAP_EQ_INT(stats_percentile(hundred, 100, 50), 50, "1..100: p50 is 50");
    TAP_EQ_INT(stats_percentile(hundred, 100, 100), 100, "1..100: p100 is the largest");
    TAP_EQ_INT(stats_percentile(hundred, 100, 1), 1, "1..100: p1 is the smallest");
    TAP_EQ_INT(stats_percentile(hundred, 99, 99), 99, "1..99: p99 is 99 (rank ceil(98.01))");
    TAP_EQ_INT(stats_percentile(hundred, 3, 50), 2, "1..3: p50 is the middle one");
    TAP_EQ_INT(stats_percentile(hundred, 4, 50), 2, "1..4: p50 is the 2nd (nearest rank)");
}

static void test_lag_ring(void)
{
    struct stats_counters *c = calloc(1, sizeof(*c));
    for (int i = 0; i < STATS_LAG_SAMPLES + 10; i++)
        stats_add_lag(c, i);
    TAP_EQ_INT(c->n_lag, STATS_LAG_SAMPLES, "the ring holds at most STATS_LAG_SAMPLES");
    TAP_EQ_INT(c->lag_ms[0], STATS_LAG_SAMPLES, "the oldest sample is the one replaced");
    free(c);
}

static double num_at(const cJSON *root, const char *obj, const char *key)
{
    const cJSON *o = obj ? cJSON_GetObjectItemCaseSensitive(root, obj) : root;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_json(void)
{
    struct stats_view *v = calloc(1, sizeof(*v));
    v->states[TASK_WAITING] = 2;
    v->states[TASK_GENERATING] = 1;
    v->states[TASK_SUCCESS] = 4;
    v->c.submit = 5;
    v->c.status = 30;
    v->c.adopt = 1;
    v->announcements_busy_us = 2500;
    v->rate_limit = 10;
    v->rate_current = 5;
    v->schedule = "adaptive";
    stats_add_lag(&v->c, 300);
    stats_add_lag(&v->c, 100);
    char *text = stats_build_json(v);
    size_t n = text ? strlen(text) : 0;
    TAP_CHECK(n > 0 && text[n - 1] == '\n', "the text ends in a newline");
    cJSON *root = cJSON_Parse(text);
    TAP_CHECK(cJSON_IsObject(root), "the text is a JSON object");
    TAP_EQ_INT(num_at(root, "tasks", "success"), 4, "tasks by state");
    TAP_EQ_INT(num_at(root, "requests", "status"), 31, "status requests include adoptions");
    TAP_EQ_INT(num_at(root, "requests", "total"), 36, "total requests");
    TAP_EQ_INT(num_at(root, NULL, "queue_depth"), 3, "queue depth is the pending tasks");
    TAP_CHECK(num_at(root, "announcements", "busy_ms") == 2.5, "busy time in ms");
    TAP_EQ_INT(num_at(root, "detection_lag_ms", "samples"), 2, "two lag samples");
    TAP_EQ_INT(num_at(root, "detection_lag_ms", "p50"), 100, "lag p50 by nearest rank");
    TAP_EQ_INT(num_at(root, "detection_lag_ms", "p99"), 300, "lag p99 of two samples: the larger");
    TAP_EQ_INT(num_at(root, "detection_lag_ms", "mean"), 200, "lag mean");
    const cJSON *sched = cJSON_GetObjectItemCaseSensitive(root, "schedule");
    TAP_EQ_STR(cJSON_IsString(sched) ? sched->valuestring : NULL, "adaptive", "schedule");
    cJSON_Delete(root);
    free(text);
    v->c.n_lag = 0;
    text = stats_build_json(v);
    root = cJSON_Parse(text);
    TAP_CHECK(num_at(root, "detection_lag_ms", "p99") == -1 &&
                  num_at(root, "detection_lag_ms", "samples") == 0,
              "no samples: no percentiles");
    cJSON_Delete(root);
    free(text);
    free(v);
}

int main(void)
{
    test_percentile();
    test_lag_ring();
    test_json();
    return tap_done();
}
