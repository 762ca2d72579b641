#include "stats.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

void stats_add_lag(struct stats_counters *c, double lag_ms)
{
    c->lag_ms[c->lag_head] = lag_ms;
    c->lag_head = (c->lag_head + 1) % STATS_LAG_SAMPLES;
    if (c->n_lag < STATS_LAG_SAMPLES)
        c->n_lag++;
}

double stats_percentile(const double *sorted, uint32_t n, unsigned pct)
{
    if (pct > 100)
        pct = 100;
    /* rank = ceil(pct * n / 100), in integers: no rounding puts it one off. */
    uint64_t rank = ((uint64_t)pct * n + 99) / 100;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static int stats_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats_add_tasks(cJSON *root, const struct stats_view *v)
{
    cJSON *tasks = cJSON_AddObjectToObject(root, "tasks");
    for (int s = 0; s < TASK_STATE_COUNT; s++)
        cJSON_AddNumberToObject(tasks, task_state_name((enum task_state)s), v->states[s]);
    const struct stats_counters *c = &v->c;
    cJSON *req = cJSON_AddObjectToObject(root, "requests");
    cJSON_AddNumberToObject(req, "submit", (double)c->submit);
    cJSON_AddNumberToObject(req, "status", (double)(c->status + c->adopt));
    cJSON_AddNumberToObject(req, "total", (double)(c->submit + c->status + c->adopt));
    cJSON *dl = cJSON_AddObjectToObject(root, "downloads");
    cJSON_AddNumberToObject(dl, "started", (double)c->downloads);
    cJSON_AddNumberToObject(dl, "bytes", (double)c->download_bytes);
    cJSON_AddNumberToObject(dl, "evictions", (double)c->evictions);
    cJSON_AddNumberToObject(dl, "cache_bytes", (double)v->cache_bytes);
    cJSON_AddNumberToObject(dl, "kept_over_cap_bytes", (double)v->kept_over_cap);
}

static void stats_add_counters(cJSON *root, const struct stats_view *v)
{
    cJSON *cbs = cJSON_AddObjectToObject(root, "callbacks");
    cJSON_AddNumberToObject(cbs, "accepted", (double)v->callbacks_accepted);
    cJSON_AddNumberToObject(cbs, "rejected", (double)v->callbacks_rejected);
    cJSON_AddNumberToObject(cbs, "dropped", (double)v->callbacks_dropped);
    cJSON *an = cJSON_AddObjectToObject(root, "announcements");
    cJSON_AddNumberToObject(an, "made", (double)v->announcements_made);
    cJSON_AddNumberToObject(an, "failed", (double)v->announcements_failed);
    cJSON_AddNumberToObject(an, "busy_ms", (double)v->announcements_busy_us / 1000.0);
    const struct stats_counters *c = &v->c;
    cJSON_AddNumberToObject(root, "retries", (double)c->retries);
    cJSON_AddNumberToObject(root, "http_429", (double)c->http_429);
    cJSON_AddNumberToObject(root, "errors", (double)c->errors);
    cJSON_AddNumberToObject(root, "transport_errors", (double)c->transport_errors);
    cJSON_AddNumberToObject(root, "disk_full", (double)c->disk_full);
    cJSON_AddNumberToObject(root, "polls_late", (double)c->polls_late);
    cJSON_AddNumberToObject(root, "rate_limit", v->rate_limit);
    cJSON_AddNumberToObject(root, "rate_current", v->rate_current);
    cJSON_AddStringToObject(root, "schedule", v->schedule);
}

static void stats_add_lag_summary(cJSON *root, struct stats_counters *c)
{
    cJSON *lag = cJSON_AddObjectToObject(root, "detection_lag_ms");
    cJSON_AddNumberToObject(lag, "samples", c->n_lag);
    if (c->n_lag == 0)
        return;
    qsort(c->lag_ms, c->n_lag, sizeof(double), stats_cmp_double);
    double sum = 0;
    for (uint32_t i = 0; i < c->n_lag; i++)
        sum += c->lag_ms[i];
    cJSON_AddNumberToObject(lag, "mean", sum / c->n_lag);
    cJSON_AddNumberToObject(lag, "p50", stats_percentile(c->lag_ms, c->n_lag, 50));
    cJSON_AddNumberToObject(lag, "p99", stats_percentile(c->lag_ms, c->n_lag, 99));
}

char *stats_build_json(struct stats_view *v)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    stats_add_tasks(root, v);
    stats_add_counters(root, v);
    stats_add_lag_summary(root, &v->c);
    uint32_t pending =
        v->states[TASK_WAITING] + v->states[TASK_QUEUING] + v->states[TASK_GENERATING];
    cJSON_AddNumberToObject(root, "queue_depth", pending);
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    if (!out)
        return NULL;
    size_t n = strlen(out);
    char *o2 = realloc(out, n + 2);
    if (!o2)
        return out;
    o2[n] = '\n';
    o2[n + 1] = '\0';
    return o2;
}
