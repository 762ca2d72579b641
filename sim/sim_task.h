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
    char *provider; /* APIXO's routing field as submitted, NULL when absent */
    uint64_t seq;
    /* complete_ms is the true end: submit_ms + duration_ms, or earlier once canceled. */
    long long submit_ms, duration_ms, complete_ms;
    int failed;
    int canceled; /* failed, shown as canceled (replicate) or cancelled (fal) */
    int aborted;  /* failed before it ever started (replicate's aborted) */
    char *fail_code, *fail_msg;
    char *fail_loc; /* fal: the input field of a validation error; NULL for a request error */
    enum sim_output_shape output;
    long long logs_bytes;
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
    /* waiting | queuing | generating | success | failed | canceled | aborted */
    const char *state;
    int progress; /* 0..100 */
    long long update_ms;
    long long start_ms; /* when generation starts (the end of queuing) */
    int done;
};

void sim_task_view_at(const struct sim_task *t, long long now_ms, struct sim_task_view *v);
/* Whether generation had begun by the task's end (an aborted or early-canceled task never
 * started). */
int sim_task_started(const struct sim_task *t);
/* Ends a running task at now_ms as canceled; 0 when it had already ended (nothing changes). */
int sim_task_cancel(struct sim_task *t, long long now_ms);
/* Seed of output n's media. */
uint64_t sim_task_media_seed(const struct sim_task *t, int n);
/* "{base}/media/{id}/{n}.{ext}" into out. */
void sim_task_media_url(const struct sim_task *t, const char *base, int n, char *out, size_t cap);
/* ["{base}/media/{id}/0.ext", ...]: one URL per output. */
cJSON *sim_task_urls_json(const struct sim_task *t, const char *base);
/* The text {"resultUrls": [...]} that APIXO and kie put in resultJson. */
char *sim_task_result_json(const struct sim_task *t, const char *base);
/* The /_sim/tasks record; sha256 may be NULL (then "media_sha256" is left empty). */
cJSON *sim_task_figure_json(const struct sim_task *t, long long now_ms, const char *base,
                            char (*sha256)[65]);
void sim_task_free(struct sim_task *t);

#endif
