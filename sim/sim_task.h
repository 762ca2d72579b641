/* Simulated tasks: the record, an id -> task hash table, and the status a task shows at a given
 * time. The state is computed from the clock, never stepped, so no timer thread is needed and
 * every answer is consistent with the task's true completion time. Pure. */
#ifndef SIM_TASK_H
#define SIM_TASK_H

#include "sim_model.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

struct sim_task {
    char id[SIM_TASK_ID_MAX + 1];
    char *model;
    enum sim_kind kind;
    char *prompt;
    char *input_json; /* the input object as submitted (canonical) */
    char *param;      /* the whole request body as received */
    char *callback_url;
    uint64_t seq;
    long long submit_ms, duration_ms, complete_ms;
    int failed;
    int canceled; /* replicate's sim_outcome "canceled": failed, shown as canceled */
    char *fail_code, *fail_msg;
    int outputs;
    unsigned long long media_bytes;
    uint64_t media_seed; /* hash(seed, model, prompt); output n adds n */
    long long status_requests, media_requests, result_requests;
    char (*sha256)[65]; /* cached per output, NULL until computed */
};

/* Chained hash table keyed by strings (task ids, duplicate keys); grows as it fills. */
struct sim_table_entry {
    char *key;
    void *value;
    struct sim_table_entry *next;
};

struct sim_table {
    struct sim_table_entry **slots;
    size_t nslots;
    size_t count;
};

int sim_table_init(struct sim_table *t);
/* Frees the entries and keys, not the values. */
void sim_table_free(struct sim_table *t);
void *sim_table_get(const struct sim_table *t, const char *key);
/* Inserts or replaces; key is copied. Returns -1 when out of memory. */
int sim_table_put(struct sim_table *t, const char *key, void *value);

struct sim_task_view {
    const char *state; /* waiting | queuing | generating | success | failed | canceled */
    int progress;      /* 0..100 */
    long long update_ms;
    long long start_ms; /* when generation starts (the end of queuing) */
    int done;
};

void sim_task_view_at(const struct sim_task *t, long long now_ms, struct sim_task_view *v);
/* Seed of output n's media. */
uint64_t sim_task_media_seed(const struct sim_task *t, int n);
/* "{base}/media/{id}/{n}.{ext}" into out. */
void sim_task_media_url(const struct sim_task *t, const char *base, int n, char *out, size_t cap);
/* The "data" object of a status answer at now_ms. */
cJSON *sim_task_status_json(const struct sim_task *t, long long now_ms, const char *base);
/* The /_sim/tasks record; sha256 may be NULL (then "media_sha256" is left empty). */
cJSON *sim_task_figure_json(const struct sim_task *t, long long now_ms, const char *base,
                            char (*sha256)[65]);
void sim_task_free(struct sim_task *t);

#endif
