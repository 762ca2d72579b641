#include "sim_model.h"

#include "sim_rng.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Medians and ranges follow the seed polling guide (a model is polled from "initial" on, and
 * gives up at "max"), so genfs's schedules meet realistic spreads. */
/* flux-2 wants its generation mode as APIXO's Flux 2 does, so genfs's per-model input defaults
 * can be tested. */
static const struct {
    const char *name;
    enum sim_kind kind;
    double median_ms, sigma, min_ms, max_ms;
    const char *requires;
} sim_model_defaults[] = {
    {"nano-banana", SIM_KIND_IMAGE, 8000, 0.45, 3000, 30000, NULL},
    {"flux-2", SIM_KIND_IMAGE, 20000, 0.40, 8000, 60000,
     "{\"mode\": [\"pro-text-to-image\", \"pro-image-to-image\", \"flex-text-to-image\", "
     "\"flex-image-to-image\"]}"},
    {"sora-2", SIM_KIND_VIDEO, 180000, 0.35, 60000, 500000, NULL},
    {"veo-3-1", SIM_KIND_VIDEO, 120000, 0.40, 45000, 400000, NULL},
    {"suno", SIM_KIND_AUDIO, 60000, 0.40, 20000, 250000, NULL},
    {"test-image", SIM_KIND_IMAGE, 5000, 0.30, 2000, 15000, NULL},
    {"test-audio", SIM_KIND_AUDIO, 5000, 0.30, 2000, 15000, NULL},
    {"test-video", SIM_KIND_VIDEO, 5000, 0.30, 2000, 15000, NULL},
};

const char *sim_kind_name(enum sim_kind k)
{
    switch (k) {
    case SIM_KIND_AUDIO:
        return "audio";
    case SIM_KIND_VIDEO:
        return "video";
    case SIM_KIND_TEXT:
        return "text";
    default:
        return "image";
    }
}

int sim_kind_parse(const char *s, enum sim_kind *out)
{
    if (!s)
        return -1;
    if (strcmp(s, "image") == 0)
        *out = SIM_KIND_IMAGE;
    else if (strcmp(s, "audio") == 0)
        *out = SIM_KIND_AUDIO;
    else if (strcmp(s, "video") == 0)
        *out = SIM_KIND_VIDEO;
    else if (strcmp(s, "text") == 0)
        *out = SIM_KIND_TEXT;
    else
        return -1;
    return 0;
}

int sim_output_shape_parse(const char *s, enum sim_output_shape *out)
{
    static const char *const names[] = {"auto",    "url",    "urls", "named", "nested",
                                        "datauri", "tokens", "text", NULL};
    for (int i = 0; s && names[i]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum sim_output_shape)i;
            return 0;
        }
    }
    return -1;
}

int sim_model_check_requires(const struct sim_model *m, const cJSON *input, char *field,
                             size_t fieldlen, int *missing)
{
    const cJSON *req;
    cJSON_ArrayForEach(req, m->requires)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, req->string);
        snprintf(field, fieldlen, "%s", req->string);
        if (!cJSON_IsString(v) || !v->valuestring[0]) {
            *missing = 1;
            return -1;
        }
        int ok = cJSON_GetArraySize(req) == 0;
        const cJSON *allowed;
        cJSON_ArrayForEach(allowed, req)
        {
            ok |= cJSON_IsString(allowed) && strcmp(allowed->valuestring, v->valuestring) == 0;
        }
        if (!ok) {
            *missing = 0;
            return -1;
        }
    }
    return 0;
}

static struct sim_model *sim_models_add(struct sim_models *ms, const char *name)
{
    if (ms->n == ms->cap) {
        size_t cap = ms->cap ? ms->cap * 2 : 16;
        struct sim_model *v = realloc(ms->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        ms->v = v;
        ms->cap = cap;
    }
    struct sim_model *m = &ms->v[ms->n];
    memset(m, 0, sizeof(*m));
    m->name = strdup(name);
    if (!m->name)
        return NULL;
    ms->n++;
    return m;
}

int sim_models_init_default(struct sim_models *ms)
{
    memset(ms, 0, sizeof(*ms));
    for (size_t i = 0; i < sizeof(sim_model_defaults) / sizeof(sim_model_defaults[0]); i++) {
        struct sim_model *m = sim_models_add(ms, sim_model_defaults[i].name);
        if (!m)
            return -1;
        m->kind = sim_model_defaults[i].kind;
        m->median_ms = sim_model_defaults[i].median_ms;
        m->sigma = sim_model_defaults[i].sigma;
        m->min_ms = sim_model_defaults[i].min_ms;
        m->max_ms = sim_model_defaults[i].max_ms;
        if (sim_model_defaults[i].requires &&
            !(m->requires = cJSON_Parse(sim_model_defaults[i].requires)))
            return -1;
    }
    return 0;
}

void sim_models_free(struct sim_models *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        free(ms->v[i].name);
        cJSON_Delete(ms->v[i].requires);
    }
    free(ms->v);
    memset(ms, 0, sizeof(*ms));
}

const struct sim_model *sim_models_find(const struct sim_models *ms, const char *name)
{
    for (size_t i = 0; i < ms->n; i++)
        if (strcmp(ms->v[i].name, name) == 0)
            return &ms->v[i];
    return NULL;
}

static int sim_models_num(const cJSON *o, const char *field, double lo, double hi, double *out,
                          const char *model, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!it)
        return 0;
    if (!cJSON_IsNumber(it) || it->valuedouble < lo || it->valuedouble > hi) {
        snprintf(err, errlen, "profile: model \"%s\": \"%s\" must be a number in [%g, %g]", model,
                 field, lo, hi);
        return -1;
    }
    *out = it->valuedouble;
    return 0;
}

/* The non-numeric model options: output, outcome, requires. tmp->requires may be replaced by
 * a new object that the caller's model then owns. */
static int sim_models_options(const cJSON *e, const char *name, struct sim_model *tmp, char *err,
                              size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(e, "output");
    if (it && (!cJSON_IsString(it) || sim_output_shape_parse(it->valuestring, &tmp->output))) {
        snprintf(err, errlen,
                 "profile: model \"%s\": \"output\" must be auto|url|urls|named|nested|"
                 "datauri|tokens|text",
                 name);
        return -1;
    }
    it = cJSON_GetObjectItemCaseSensitive(e, "outcome");
    if (it) {
        if (cJSON_IsString(it) && strcmp(it->valuestring, "canceled") == 0)
            tmp->end = SIM_END_CANCELED;
        else if (cJSON_IsString(it) && strcmp(it->valuestring, "aborted") == 0)
            tmp->end = SIM_END_ABORTED;
        else if (cJSON_IsString(it) && strcmp(it->valuestring, "draw") == 0)
            tmp->end = SIM_END_DRAW;
        else {
            snprintf(err, errlen,
                     "profile: model \"%s\": \"outcome\" must be draw|canceled|aborted", name);
            return -1;
        }
    }
    it = cJSON_GetObjectItemCaseSensitive(e, "requires");
    if (!it)
        return 0;
    int ok = cJSON_IsObject(it);
    const cJSON *f, *v;
    cJSON_ArrayForEach(f, it)
    {
        ok &= cJSON_IsArray(f);
        cJSON_ArrayForEach(v, f)
        {
            ok &= cJSON_IsString(v);
        }
    }
    cJSON *copy = ok ? cJSON_Duplicate(it, 1) : NULL;
    if (!copy) {
        snprintf(err, errlen,
                 "profile: model \"%s\": \"requires\" must map fields to arrays of strings", name);
        return -1;
    }
    tmp->requires = copy;
    return 0;
}

int sim_models_load_profile(struct sim_models *ms, const char *json, char *err, size_t errlen)
{
    cJSON *root = cJSON_Parse(json);
    int rc = -1;
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "profile: not a JSON object");
        goto out;
    }
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsObject(models)) {
        snprintf(err, errlen, "profile: \"models\" must be an object");
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, models)
    {
        const char *name = e->string;
        if (!cJSON_IsObject(e) || !name || !*name || strlen(name) > SIM_MODEL_NAME_MAX ||
            name[0] == '/' || name[strlen(name) - 1] == '/' || strstr(name, "//")) {
            snprintf(err, errlen, "profile: model \"%s\": bad name or not an object",
                     name ? name : "");
            goto out;
        }
        struct sim_model tmp;
        const struct sim_model *old = sim_models_find(ms, name);
        if (old) {
            tmp = *old;
        } else {
            /* A new model starts from a generic 5 s image model; kind is then required. */
            memset(&tmp, 0, sizeof(tmp));
            tmp.median_ms = 5000;
            tmp.sigma = 0.3;
            tmp.min_ms = 0;
            tmp.max_ms = 1e12;
        }
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(e, "kind");
        if (kind) {
            if (!cJSON_IsString(kind) || sim_kind_parse(kind->valuestring, &tmp.kind) != 0) {
                snprintf(err, errlen,
                         "profile: model \"%s\": \"kind\" must be image|audio|video|text", name);
                goto out;
            }
        } else if (!old) {
            snprintf(err, errlen, "profile: model \"%s\": \"kind\" is required for a new model",
                     name);
            goto out;
        }
        double outputs = tmp.outputs, logs = (double)tmp.logs_bytes;
        if (sim_models_num(e, "median_ms", 0, 1e10, &tmp.median_ms, name, err, errlen) ||
            sim_models_num(e, "sigma", 0, 10, &tmp.sigma, name, err, errlen) ||
            sim_models_num(e, "min_ms", 0, 1e10, &tmp.min_ms, name, err, errlen) ||
            sim_models_num(e, "max_ms", 0, 1e12, &tmp.max_ms, name, err, errlen) ||
            sim_models_num(e, "fail_rate", 0, 1, &tmp.fail_rate, name, err, errlen) ||
            sim_models_num(e, "outputs", 1, 8, &outputs, name, err, errlen) ||
            sim_models_num(e, "logs_bytes", 0, 1 << 26, &logs, name, err, errlen))
            goto out;
        tmp.outputs = (int)outputs;
        tmp.logs_bytes = (long long)logs;
        if (tmp.min_ms > tmp.max_ms) {
            snprintf(err, errlen, "profile: model \"%s\": min_ms > max_ms", name);
            goto out;
        }
        if (sim_models_options(e, name, &tmp, err, errlen) != 0)
            goto out;
        struct sim_model *m = old ? (struct sim_model *)old : sim_models_add(ms, name);
        if (!m) {
            if (!old)
                cJSON_Delete(tmp.requires);
            snprintf(err, errlen, "profile: out of memory");
            goto out;
        }
        char *keep = m->name;
        cJSON *requires = tmp.requires == m->requires ? NULL : m->requires;
        *m = tmp;
        m->name = keep;
        cJSON_Delete(requires);
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

double sim_model_draw_ms(const struct sim_model *m, uint64_t seed, uint64_t seq)
{
    uint64_t h = sim_rng_hash_str(sim_rng_hash_u64(seed, 0x6475726174696f6eULL), m->name);
    h = sim_rng_hash_u64(h, seq);
    double ms = m->median_ms;
    if (m->sigma > 0 && m->median_ms > 0)
        ms = exp(log(m->median_ms) + m->sigma * sim_rng_normal(h));
    if (ms < m->min_ms)
        ms = m->min_ms;
    if (ms > m->max_ms)
        ms = m->max_ms;
    return ms;
}

long long sim_model_scale_ms(double ms, double time_scale)
{
    double v = ms * time_scale;
    if (!(v > 0))
        return 0;
    if (v > 9e15)
        v = 9e15;
    return llround(v);
}
