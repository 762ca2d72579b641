/* genfs-sim models: completion-time distributions reproducible for a seed, medians near the
 * model's, bounds respected, time scale applied; profiles merged with their options (output
 * shape, outputs, forced outcome, logs, required input fields). */
#include "sim_model.h"
#include "sim_rng.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check_model(const struct sim_models *ms, const char *name, double median, double lo,
                        double hi)
{
    const struct sim_model *m = sim_models_find(ms, name);
    TAP_CHECK(m != NULL, "model %s exists", name);
    if (!m)
        return;
    enum { N = 4001 };
    static double v[N];
    int in_bounds = 1;
    for (int i = 0; i < N; i++) {
        v[i] = sim_model_draw_ms(m, 1, (uint64_t)i + 1);
        if (v[i] < lo || v[i] > hi)
            in_bounds = 0;
    }
    qsort(v, N, sizeof(v[0]), cmp_double);
    double med = v[N / 2];
    TAP_CHECK(med > median * 0.93 && med < median * 1.07, "%s: median %.0f ms near %.0f", name, med,
              median);
    TAP_CHECK(in_bounds, "%s: every draw within [%.0f, %.0f]", name, lo, hi);
    TAP_CHECK(v[N / 10] < med * 0.8 && v[N * 9 / 10] > med * 1.2, "%s: a real spread (%.0f..%.0f)",
              name, v[N / 10], v[N * 9 / 10]);
}

int main(void)
{
    struct sim_models ms;
    TAP_EQ_INT(sim_models_init_default(&ms), 0, "default models");
    check_model(&ms, "nano-banana", 8000, 3000, 30000);
    check_model(&ms, "flux-2", 20000, 8000, 60000);
    check_model(&ms, "sora-2", 180000, 60000, 500000);
    check_model(&ms, "veo-3-1", 120000, 45000, 400000);
    check_model(&ms, "suno", 60000, 20000, 250000);
    check_model(&ms, "test-image", 5000, 2000, 15000);
    TAP_CHECK(sim_models_find(&ms, "test-audio")->kind == SIM_KIND_AUDIO, "test-audio is audio");
    TAP_CHECK(sim_models_find(&ms, "test-video")->kind == SIM_KIND_VIDEO, "test-video is video");
    TAP_CHECK(sim_models_find(&ms, "nope") == NULL, "unknown model");

    const struct sim_model *nb = sim_models_find(&ms, "nano-banana");
    TAP_CHECK(sim_model_draw_ms(nb, 7, 3) == sim_model_draw_ms(nb, 7, 3), "same seed, same draw");
    int differ = 0;
    for (uint64_t i = 1; i < 20; i++)
        differ += sim_model_draw_ms(nb, 7, i) != sim_model_draw_ms(nb, 8, i);
    TAP_CHECK(differ > 15, "another seed, other draws (%d of 19 differ)", differ);
    /* test-image and test-audio share their parameters: only the name tells them apart. */
    const struct sim_model *ti = sim_models_find(&ms, "test-image");
    const struct sim_model *ta = sim_models_find(&ms, "test-audio");
    differ = 0;
    for (uint64_t i = 1; i < 20; i++)
        differ += sim_model_draw_ms(ti, 7, i) != sim_model_draw_ms(ta, 7, i);
    TAP_CHECK(differ > 15, "the model name enters the draw (%d of 19 differ)", differ);
    TAP_EQ_INT(sim_model_scale_ms(8000, 0.01), 80, "time scale 0.01");
    TAP_EQ_INT(sim_model_scale_ms(8000, 1), 8000, "time scale 1");
    TAP_EQ_INT(sim_model_scale_ms(8000, 0), 0, "time scale 0");

    /* flux-2 needs a mode as APIXO's does; the others only a prompt. */
    char field[64] = "";
    int missing = -1;
    cJSON *in = cJSON_Parse("{\"prompt\": \"p\"}");
    const struct sim_model *fx = sim_models_find(&ms, "flux-2");
    TAP_CHECK(sim_model_check_requires(fx, in, field, sizeof(field), &missing) == -1 &&
                  strcmp(field, "mode") == 0 && missing == 1,
              "flux-2 without mode: mode missing (%s, %d)", field, missing);
    TAP_EQ_INT(sim_model_check_requires(nb, in, field, sizeof(field), &missing), 0,
               "nano-banana needs no mode");
    cJSON_AddStringToObject(in, "mode", "pro-text-to-image");
    TAP_EQ_INT(sim_model_check_requires(fx, in, field, sizeof(field), &missing), 0,
               "flux-2 with mode pro-text-to-image");
    cJSON_ReplaceItemInObject(in, "mode", cJSON_CreateString("sketch"));
    TAP_CHECK(sim_model_check_requires(fx, in, field, sizeof(field), &missing) == -1 &&
                  missing == 0,
              "flux-2 with an unknown mode: a bad value, not a missing one");
    cJSON_Delete(in);
    TAP_CHECK(nb->output == SIM_OUT_AUTO && nb->end == SIM_END_DRAW && nb->logs_bytes == 0,
              "built-in models: automatic output, drawn end, no logs");

    char err[256] = "";
    const char *prof = "{\"models\": {\"fal-ai/flux/dev\": {\"kind\": \"image\", \"median_ms\": "
                       "1000, \"sigma\": 0, \"min_ms\": 10, \"max_ms\": 5000, \"fail_rate\": 0.5},"
                       " \"suno\": {\"median_ms\": 30000}}}";
    TAP_EQ_INT(sim_models_load_profile(&ms, prof, err, sizeof(err)), 0, "profile loads");
    const struct sim_model *f = sim_models_find(&ms, "fal-ai/flux/dev");
    TAP_CHECK(f && f->kind == SIM_KIND_IMAGE && f->fail_rate == 0.5, "profile adds a model");
    TAP_CHECK(f && sim_model_draw_ms(f, 1, 1) == 1000, "sigma 0 gives the median");
    const struct sim_model *s = sim_models_find(&ms, "suno");
    TAP_CHECK(s && s->median_ms == 30000 && s->kind == SIM_KIND_AUDIO && s->min_ms == 20000,
              "profile overrides one field, keeps the rest");
    TAP_EQ_INT(
        sim_models_load_profile(&ms, "{\"models\": {\"x\": {\"median_ms\": 1}}}", err, sizeof(err)),
        -1, "new model without kind refused");
    TAP_CHECK(strstr(err, "kind") != NULL, "message names the field: %s", err);
    TAP_EQ_INT(sim_models_load_profile(&ms, "{\"models\": {\"x\": {\"kind\": \"smell\"}}}", err,
                                       sizeof(err)),
               -1, "bad kind refused");
    TAP_EQ_INT(sim_models_load_profile(&ms, "[1]", err, sizeof(err)), -1, "not an object");
    TAP_CHECK(sim_models_find(&ms, "x") == NULL, "failed profile adds nothing");

    const char *opts = "{\"models\": {\"o/stems\": {\"kind\": \"audio\", \"output\": \"named\", "
                       "\"outputs\": 4, \"outcome\": \"aborted\", \"logs_bytes\": 70000, "
                       "\"requires\": {\"style\": []}}, \"o/chat\": {\"kind\": \"text\"}}}";
    TAP_EQ_INT(sim_models_load_profile(&ms, opts, err, sizeof(err)), 0, "model options load");
    const struct sim_model *st = sim_models_find(&ms, "o/stems");
    TAP_CHECK(st && st->output == SIM_OUT_NAMED && st->outputs == 4 && st->end == SIM_END_ABORTED &&
                  st->logs_bytes == 70000 && st->requires,
              "output, outputs, outcome, logs_bytes, requires");
    TAP_CHECK(sim_models_find(&ms, "o/chat")->kind == SIM_KIND_TEXT, "kind text");
    in = cJSON_Parse("{\"prompt\": \"p\", \"style\": \"anything\"}");
    TAP_EQ_INT(sim_model_check_requires(st, in, field, sizeof(field), &missing), 0,
               "an empty list admits any non-empty string");
    cJSON_Delete(in);
    TAP_EQ_INT(sim_models_load_profile(
                   &ms, "{\"models\": {\"o/stems\": {\"requires\": {\"mode\": [\"a\"]}}}}", err,
                   sizeof(err)),
               0, "requires replaced");
    TAP_CHECK(cJSON_GetObjectItem(st->requires, "mode") &&
                  !cJSON_GetObjectItem(st->requires, "style"),
              "the new requires replace the old");
    static const char *const bad[][2] = {
        {"{\"models\": {\"y\": {\"kind\": \"image\", \"output\": \"blob\"}}}", "output"},
        {"{\"models\": {\"y\": {\"kind\": \"image\", \"outputs\": 9}}}", "outputs"},
        {"{\"models\": {\"y\": {\"kind\": \"image\", \"outcome\": \"maybe\"}}}", "outcome"},
        {"{\"models\": {\"y\": {\"kind\": \"image\", \"requires\": {\"m\": [1]}}}}", "requires"},
        {"{\"models\": {\"y\": {\"kind\": \"image\", \"requires\": [\"m\"]}}}", "requires"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = sim_models_load_profile(&ms, bad[i][0], err, sizeof(err));
        TAP_CHECK(rc == -1 && strstr(err, bad[i][1]), "bad %s refused: %s", bad[i][1], err);
    }
    TAP_CHECK(sim_models_find(&ms, "y") == NULL, "no bad model added");

    /* rng sanity: uniform mean, normal mean and spread */
    double sum = 0, sq = 0, nsum = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        sum += sim_rng_unit(sim_rng_hash_u64(3, i));
        double z = sim_rng_normal(sim_rng_hash_u64(4, i));
        nsum += z;
        sq += z * z;
    }
    TAP_CHECK(sum / 100000 > 0.49 && sum / 100000 < 0.51, "uniform mean %.4f", sum / 100000);
    TAP_CHECK(nsum / 100000 > -0.02 && nsum / 100000 < 0.02, "normal mean %.4f", nsum / 100000);
    TAP_CHECK(sq / 100000 > 0.97 && sq / 100000 < 1.03, "normal variance %.4f", sq / 100000);
    sim_models_free(&ms);
    return tap_done();
}
