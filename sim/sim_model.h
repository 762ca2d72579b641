/* The simulated models: kind of output and completion-time distribution (lognormal, clamped),
 * plus deterministic task ids. Pure: no clocks, no I/O (profile text is passed in). */
#ifndef SIM_MODEL_H
#define SIM_MODEL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

enum sim_kind { SIM_KIND_IMAGE, SIM_KIND_AUDIO, SIM_KIND_VIDEO, SIM_KIND_TEXT };

/* How replicate shows a prediction's output (the other protocols have one shape each). */
enum sim_output_shape {
    SIM_OUT_AUTO,    /* a URL string for one output, an array of URLs for several */
    SIM_OUT_URL,     /* always a URL string (the first output) */
    SIM_OUT_URLS,    /* always an array of URLs */
    SIM_OUT_NAMED,   /* an object of named stems, URLs or null (demucs) */
    SIM_OUT_NESTED,  /* arrays of at most two URLs inside an array */
    SIM_OUT_DATAURI, /* data: URIs holding the media themselves */
    SIM_OUT_TOKENS,  /* an array of text tokens, as language models stream them */
    SIM_OUT_TEXT,    /* the text as one string */
};

/* An end the model forces on every task (replicate's canceled and aborted). */
enum sim_model_end { SIM_END_DRAW, SIM_END_CANCELED, SIM_END_ABORTED };

struct sim_model {
    char *name;
    enum sim_kind kind;
    double median_ms;
    double sigma; /* of ln(duration) */
    double min_ms;
    double max_ms;
    double fail_rate; /* fraction of this model's tasks that fail on their own */
    enum sim_output_shape output;
    int outputs; /* outputs per task when the input asks for none */
    enum sim_model_end end;
    long long logs_bytes; /* replicate logs of the finished prediction, about this long */
    /* Input fields the model requires beyond the prompt: {"mode": ["a", "b"]} (an empty
     * array: any non-empty string). Owned; NULL when none. */
    cJSON *requires;
};

struct sim_models {
    struct sim_model *v;
    size_t n;
    size_t cap;
};

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
/* "auto" | "url" | "urls" | "named" | "nested" | "datauri" | "tokens" | "text" -> 0, else -1. */
int sim_output_shape_parse(const char *s, enum sim_output_shape *out);
/* Checks input against m->requires: 0, or -1 with the missing or bad field in field (without
 * the "input." prefix) and whether it was missing (1) or had a value not allowed (0). */
int sim_model_check_requires(const struct sim_model *m, const cJSON *input, char *field,
                             size_t fieldlen, int *missing);

/* Unscaled duration in ms for the task with global sequence number seq. */
double sim_model_draw_ms(const struct sim_model *m, uint64_t seed, uint64_t seq);
/* Applies --time-scale; never returns less than 0. */
long long sim_model_scale_ms(double ms, double time_scale);

#endif
