/* The simulated models: kind of output and completion-time distribution (lognormal, clamped),
 * plus deterministic task ids. Pure: no clocks, no I/O (profile text is passed in). */
#ifndef SIM_MODEL_H
#define SIM_MODEL_H

#include <stddef.h>
#include <stdint.h>

enum sim_kind { SIM_KIND_IMAGE, SIM_KIND_AUDIO, SIM_KIND_VIDEO };

struct sim_model {
    char *name;
    enum sim_kind kind;
    double median_ms;
    double sigma; /* of ln(duration) */
    double min_ms;
    double max_ms;
    double fail_rate; /* fraction of this model's tasks that fail on their own */
};

struct sim_models {
    struct sim_model *v;
    size_t n;
    size_t cap;
};

#define SIM_TASK_ID_LEN 22 /* "tk" + 20 hex (native ids) */
/* Longest id of any protocol (fal's UUIDs are 36), for buffers that hold any task id. */
#define SIM_TASK_ID_MAX 40
#define SIM_MODEL_NAME_MAX 255

int sim_models_init_default(struct sim_models *ms);
void sim_models_free(struct sim_models *ms);
const struct sim_model *sim_models_find(const struct sim_models *ms, const char *name);
/* Merges a profile {"models": {name: {...}}} into the table. Returns 0, or -1 with a message
 * naming the offending model/field in err. */
int sim_models_load_profile(struct sim_models *ms, const char *json, char *err, size_t errlen);

const char *sim_kind_name(enum sim_kind k);
int sim_kind_parse(const char *s, enum sim_kind *out);

/* Unscaled duration in ms for the task with global sequence number seq. */
double sim_model_draw_ms(const struct sim_model *m, uint64_t seed, uint64_t seq);
/* Applies --time-scale; never returns less than 0. */
long long sim_model_scale_ms(double ms, double time_scale);
/* out gets "tk" + 20 lowercase hex digits and a NUL: SIM_TASK_ID_LEN + 1 bytes. */
void sim_model_task_id(uint64_t seed, uint64_t counter, char *out);

#endif
