#include "sim_task.h"

#include "sim_media.h"
#include "sim_rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t sim_table_hash(const char *key)
{
    return sim_rng_hash_str(0x7461626c65ULL, key);
}

int sim_table_init(struct sim_table *t)
{
    t->nslots = 1024;
    t->count = 0;
    t->slots = calloc(t->nslots, sizeof(*t->slots));
    return t->slots ? 0 : -1;
}

void sim_table_free(struct sim_table *t)
{
    for (size_t i = 0; i < t->nslots; i++) {
        struct sim_table_entry *e = t->slots[i];
        while (e) {
            struct sim_table_entry *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

void *sim_table_get(const struct sim_table *t, const char *key)
{
    if (!t->slots)
        return NULL;
    for (struct sim_table_entry *e = t->slots[sim_table_hash(key) % t->nslots]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e->value;
    return NULL;
}

static int sim_table_grow(struct sim_table *t)
{
    size_t n = t->nslots * 2;
    struct sim_table_entry **slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < t->nslots; i++) {
        struct sim_table_entry *e = t->slots[i];
        while (e) {
            struct sim_table_entry *next = e->next;
            size_t k = sim_table_hash(e->key) % n;
            e->next = slots[k];
            slots[k] = e;
            e = next;
        }
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
    return 0;
}

int sim_table_put(struct sim_table *t, const char *key, void *value)
{
    size_t k = sim_table_hash(key) % t->nslots;
    for (struct sim_table_entry *e = t->slots[k]; e; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            e->value = value;
            return 0;
        }
    }
    struct sim_table_entry *e = malloc(sizeof(*e));
    if (!e)
        return -1;
    e->key = strdup(key);
    if (!e->key) {
        free(e);
        return -1;
    }
    e->value = value;
    e->next = t->slots[k];
    t->slots[k] = e;
    t->count++;
    if (t->count > t->nslots)
        sim_table_grow(t); /* failure only costs speed, not correctness */
    return 0;
}

void sim_task_view_at(const struct sim_task *t, long long now_ms, struct sim_task_view *v)
{
    long long el = now_ms - t->submit_ms;
    long long d = t->duration_ms;
    memset(v, 0, sizeof(*v));
    if (el < 0)
        el = 0;
    v->start_ms = t->submit_ms + d * 3 / 10;
    if (now_ms >= t->complete_ms) {
        v->done = 1;
        v->state = t->aborted    ? "aborted"
                   : t->canceled ? "canceled"
                   : t->failed   ? "failed"
                                 : "success";
        v->progress = t->failed ? 0 : 100;
        v->update_ms = t->complete_ms;
        return;
    }
    /* Phases as providers report them: a short wait, a queue, then the generation proper
     * whose progress rises linearly but never shows 100 before the end. An aborted task
     * never leaves the queue. */
    long long q = d / 10, g = d * 3 / 10;
    if (el < q) {
        v->state = "waiting";
        v->update_ms = t->submit_ms;
    } else if (el < g || t->aborted) {
        v->state = "queuing";
        v->update_ms = t->submit_ms + q;
    } else {
        v->state = "generating";
        long long span = d - g;
        long long p = span > 0 ? (el - g) * 100 / span : 99;
        v->progress = p > 99 ? 99 : (int)p;
        v->update_ms = now_ms;
    }
}

int sim_task_started(const struct sim_task *t)
{
    /* A task that ran its whole (maybe zero) duration started; a cut-short one if cut after
     * its queue. */
    return !t->aborted && (t->complete_ms >= t->submit_ms + t->duration_ms ||
                           t->submit_ms + t->duration_ms * 3 / 10 < t->complete_ms);
}

int sim_task_cancel(struct sim_task *t, long long now_ms)
{
    if (now_ms >= t->complete_ms)
        return 0;
    t->complete_ms = now_ms > t->submit_ms ? now_ms : t->submit_ms;
    t->failed = 1;
    t->canceled = 1;
    return 1;
}

uint64_t sim_task_media_seed(const struct sim_task *t, int n)
{
    return sim_rng_hash_u64(t->media_seed, (uint64_t)n);
}

void sim_task_media_url(const struct sim_task *t, const char *base, int n, char *out, size_t cap)
{
    snprintf(out, cap, "%s/media/%s/%d.%s", base, t->id, n, sim_media_ext(t->kind));
}

cJSON *sim_task_urls_json(const struct sim_task *t, const char *base)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < t->outputs; i++) {
        char url[512];
        sim_task_media_url(t, base, i, url, sizeof(url));
        cJSON_AddItemToArray(a, cJSON_CreateString(url));
    }
    return a;
}

char *sim_task_result_json(const struct sim_task *t, const char *base)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "resultUrls", sim_task_urls_json(t, base));
    char *s = r ? cJSON_PrintUnformatted(r) : NULL;
    cJSON_Delete(r);
    return s;
}

cJSON *sim_task_figure_json(const struct sim_task *t, long long now_ms, const char *base,
                            char (*sha256)[65])
{
    struct sim_task_view v;
    sim_task_view_at(t, now_ms, &v);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "taskId", t->id);
    cJSON_AddStringToObject(o, "model", t->model);
    cJSON_AddStringToObject(o, "prompt", t->prompt);
    cJSON *in = cJSON_Parse(t->input_json);
    cJSON_AddItemToObject(o, "input", in ? in : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "state", v.state);
    cJSON_AddStringToObject(o, "final_state",
                            t->aborted    ? "aborted"
                            : t->canceled ? "canceled"
                            : t->failed   ? "failed"
                                          : "success");
    cJSON_AddStringToObject(o, "fail_code", t->failed ? t->fail_code : "");
    cJSON_AddStringToObject(o, "fail_msg", t->failed ? t->fail_msg : "");
    cJSON_AddNumberToObject(o, "submit_ms", (double)t->submit_ms);
    cJSON_AddNumberToObject(o, "duration_ms", (double)t->duration_ms);
    cJSON_AddNumberToObject(o, "complete_ms", (double)t->complete_ms);
    cJSON_AddNumberToObject(o, "status_requests", (double)t->status_requests);
    cJSON_AddNumberToObject(o, "media_requests", (double)t->media_requests);
    cJSON_AddNumberToObject(o, "result_requests", (double)t->result_requests);
    if (t->callback_url)
        cJSON_AddStringToObject(o, "callback_url", t->callback_url);
    if (t->provider)
        cJSON_AddStringToObject(o, "provider", t->provider);
    else
        cJSON_AddNullToObject(o, "provider");
    cJSON_AddItemToObject(o, "result_urls",
                          t->failed ? cJSON_CreateArray() : sim_task_urls_json(t, base));
    cJSON *sh = cJSON_CreateArray();
    for (int i = 0; sh && sha256 && !t->failed && i < t->outputs; i++)
        cJSON_AddItemToArray(sh, cJSON_CreateString(sha256[i]));
    cJSON_AddItemToObject(o, "media_sha256", sh);
    return o;
}

void sim_task_free(struct sim_task *t)
{
    if (!t)
        return;
    free(t->model);
    free(t->prompt);
    free(t->input_json);
    free(t->param);
    free(t->callback_url);
    free(t->provider);
    free(t->fail_loc);
    free(t->fail_code);
    free(t->fail_msg);
    free(t->sha256);
    free(t);
}
