#include "sim_fault.h"

#include "sim_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum sim_fault_type { SIM_FT_RATE, SIM_FT_INT, SIM_FT_STR, SIM_FT_5XX };

static const struct {
    const char *name;
    enum sim_fault_type type;
    size_t off;
} sim_fault_switches[] = {
#define RATE(n)                                                                                    \
    {                                                                                              \
#n, SIM_FT_RATE, offsetof(struct sim_faults, n)                                            \
    }
#define INT(n)                                                                                     \
    {                                                                                              \
#n, SIM_FT_INT, offsetof(struct sim_faults, n)                                             \
    }
    RATE(error_500),
    RATE(error_502),
    RATE(error_503),
    RATE(error_504),
    RATE(error_455),
    RATE(reset_rate),
    RATE(slow_rate),
    RATE(malformed_rate),
    RATE(fail_rate),
    RATE(lost_callback_rate),
    RATE(media_error_rate),
    INT(slow_ms),
    INT(burst_429),
    INT(burst_retry_after),
    INT(rate_limit),
    INT(media_ttl_ms),
    INT(errors_in_body),
    INT(result_5xx),
    INT(stream_off),
    INT(stream_cut),
    INT(stream_429),
    INT(stream_500),
    {"result_5xx_status", SIM_FT_5XX, offsetof(struct sim_faults, result_5xx_status)},
    {"media_redirect", SIM_FT_STR, offsetof(struct sim_faults, media_redirect)},
#undef RATE
#undef INT
};

#define SIM_FAULT_NSWITCH (sizeof(sim_fault_switches) / sizeof(sim_fault_switches[0]))

const char *const sim_fault_counter_names[] = {
    "error_500",  "error_502",          "error_503",        "error_504",    "error_455",
    "reset_rate", "slow_rate",          "malformed_rate",   "burst_429",    "rate_limit",
    "fail_rate",  "lost_callback_rate", "media_error_rate", "media_ttl_ms", "media_redirect",
    "result_5xx", "stream_off",         "stream_cut",       "stream_429",   "stream_500",
    NULL};

void sim_fault_defaults(struct sim_faults *f)
{
    memset(f, 0, sizeof(*f));
    f->slow_ms = 10000;
    f->burst_retry_after = 1;
    f->result_5xx_status = 500;
}

static int sim_fault_check(const cJSON *v, enum sim_fault_type type, const char *name, char *err,
                           size_t errlen)
{
    switch (type) {
    case SIM_FT_RATE:
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1)) {
            snprintf(err, errlen, "fault \"%s\" must be a number in [0, 1]", name);
            return -1;
        }
        return 0;
    case SIM_FT_INT:
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1e15) ||
            v->valuedouble != floor(v->valuedouble)) {
            snprintf(err, errlen, "fault \"%s\" must be a non-negative integer", name);
            return -1;
        }
        return 0;
    case SIM_FT_5XX:
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 500 && v->valuedouble <= 599) ||
            v->valuedouble != floor(v->valuedouble)) {
            snprintf(err, errlen, "fault \"%s\" must be an HTTP status 500..599", name);
            return -1;
        }
        return 0;
    case SIM_FT_STR:
        if (cJSON_IsNumber(v) && v->valuedouble == 0)
            return 0; /* 0 switches it off like every other switch */
        if (!cJSON_IsString(v) ||
            strlen(v->valuestring) >= sizeof(((struct sim_faults *)0)->media_redirect)) {
            snprintf(err, errlen, "fault \"%s\" must be a string (a URL)", name);
            return -1;
        }
        return 0;
    }
    return -1;
}

static void sim_fault_set(struct sim_faults *f, size_t i, const cJSON *v)
{
    char *p = (char *)f + sim_fault_switches[i].off;
    switch (sim_fault_switches[i].type) {
    case SIM_FT_RATE:
        *(double *)p = v->valuedouble;
        break;
    case SIM_FT_INT:
    case SIM_FT_5XX:
        *(long long *)p = (long long)v->valuedouble;
        break;
    case SIM_FT_STR:
        snprintf(p, sizeof(f->media_redirect), "%s", cJSON_IsString(v) ? v->valuestring : "");
        break;
    }
}

static int sim_fault_index(const char *name)
{
    for (size_t i = 0; i < SIM_FAULT_NSWITCH; i++)
        if (strcmp(sim_fault_switches[i].name, name) == 0)
            return (int)i;
    return -1;
}

int sim_fault_merge(struct sim_faults *f, const cJSON *obj, char *err, size_t errlen)
{
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "faults: expected a JSON object");
        return -1;
    }
    const cJSON *v;
    /* Check everything first so that a bad switch leaves the others untouched too. */
    cJSON_ArrayForEach(v, obj)
    {
        int i = v->string ? sim_fault_index(v->string) : -1;
        if (i < 0) {
            snprintf(err, errlen, "unknown fault \"%s\"", v->string ? v->string : "");
            return -1;
        }
        if (sim_fault_check(v, sim_fault_switches[i].type, v->string, err, errlen) != 0)
            return -1;
    }
    cJSON_ArrayForEach(v, obj)
    {
        sim_fault_set(f, (size_t)sim_fault_index(v->string), v);
    }
    return 0;
}

int sim_fault_merge_arg(struct sim_faults *f, const char *arg, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        snprintf(err, errlen, "--fault wants NAME=VALUE, got \"%s\"", arg);
        return -1;
    }
    char name[64];
    size_t nlen = (size_t)(eq - arg);
    if (nlen >= sizeof(name)) {
        snprintf(err, errlen, "unknown fault \"%.*s\"", (int)nlen, arg);
        return -1;
    }
    memcpy(name, arg, nlen);
    name[nlen] = '\0';
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return -1;
    char *end = NULL;
    double d = strtod(eq + 1, &end);
    if (eq[1] && end && *end == '\0')
        cJSON_AddNumberToObject(obj, name, d);
    else
        cJSON_AddStringToObject(obj, name, eq + 1);
    int rc = sim_fault_merge(f, obj, err, errlen);
    cJSON_Delete(obj);
    return rc;
}

cJSON *sim_fault_to_json(const struct sim_faults *f)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    for (size_t i = 0; i < SIM_FAULT_NSWITCH; i++) {
        const char *p = (const char *)f + sim_fault_switches[i].off;
        switch (sim_fault_switches[i].type) {
        case SIM_FT_RATE:
            cJSON_AddNumberToObject(o, sim_fault_switches[i].name, *(const double *)p);
            break;
        case SIM_FT_INT:
        case SIM_FT_5XX:
            cJSON_AddNumberToObject(o, sim_fault_switches[i].name, (double)*(const long long *)p);
            break;
        case SIM_FT_STR:
            cJSON_AddStringToObject(o, sim_fault_switches[i].name, p);
            break;
        }
    }
    return o;
}

static double sim_fault_draw(uint64_t seed, uint64_t what, uint64_t reqno)
{
    return sim_rng_unit(sim_rng_hash_u64(sim_rng_hash_u64(seed, what), reqno));
}

void sim_fault_decide_api(struct sim_faults *f, struct sim_fault_state *st, uint64_t seed,
                          uint64_t reqno, long long now_ms, struct sim_fault_decision *out)
{
    memset(out, 0, sizeof(*out));
    out->action = SIM_FAULT_NONE;
    if (f->burst_429 > 0) {
        f->burst_429--;
        out->action = SIM_FAULT_STATUS;
        out->status = 429;
        out->retry_after = (int)(f->burst_retry_after > 0 ? f->burst_retry_after : 1);
        out->name = "burst_429";
        return;
    }
    if (f->rate_limit > 0) {
        /* Fixed one-second windows; only admitted requests count, so a client pacing itself at
         * exactly the limit never sees a 429. */
        long long sec = now_ms / 1000;
        if (sec != st->window_sec) {
            st->window_sec = sec;
            st->window_count = 0;
        }
        if (st->window_count >= f->rate_limit) {
            out->action = SIM_FAULT_STATUS;
            out->status = 429;
            out->retry_after = 1;
            out->name = "rate_limit";
            return;
        }
        st->window_count++;
    }
    /* One uniform draw against the cumulative rates: the faults are mutually exclusive and each
     * fires at exactly its own rate (while the rates sum to at most 1). */
    double u = sim_fault_draw(seed, 0x6661756c74ULL, reqno);
    const struct {
        double rate;
        int status;
        const char *name;
    } codes[] = {{f->error_500, 500, "error_500"},
                 {f->error_502, 502, "error_502"},
                 {f->error_503, 503, "error_503"},
                 {f->error_504, 504, "error_504"},
                 {f->error_455, 455, "error_455"}};
    double acc = 0;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        acc += codes[i].rate;
        if (u < acc) {
            out->action = SIM_FAULT_STATUS;
            out->status = codes[i].status;
            out->retry_after = codes[i].status == 503 ? 1 : 0;
            out->name = codes[i].name;
            return;
        }
    }
    acc += f->reset_rate;
    if (u < acc) {
        out->action = SIM_FAULT_RESET;
        out->reset_after_create = sim_fault_draw(seed, 0x7265736574ULL, reqno) < 0.5;
        out->name = "reset_rate";
        return;
    }
    acc += f->malformed_rate;
    if (u < acc) {
        out->action = SIM_FAULT_MALFORMED;
        out->status = 200;
        out->malformed_kind = (enum sim_malformed_kind)(st->malformed_next++ % SIM_MALFORMED_KINDS);
        out->name = "malformed_rate";
        return;
    }
    acc += f->slow_rate;
    if (u < acc) {
        out->action = SIM_FAULT_SLOW;
        out->delay_ms = f->slow_ms;
        out->name = "slow_rate";
    }
}

int sim_fault_decide_result(struct sim_faults *f)
{
    if (f->result_5xx <= 0)
        return 0;
    f->result_5xx--;
    return (int)f->result_5xx_status;
}

enum sim_stream_fault sim_fault_decide_stream(struct sim_faults *f)
{
    if (f->stream_off)
        return SIM_STREAM_OFF;
    if (f->stream_429 > 0) {
        f->stream_429--;
        return SIM_STREAM_429;
    }
    if (f->stream_500 > 0) {
        f->stream_500--;
        return SIM_STREAM_500;
    }
    if (f->stream_cut <= 0)
        return SIM_STREAM_SERVE;
    f->stream_cut--;
    return SIM_STREAM_CUT;
}

void sim_fault_decide_media(const struct sim_faults *f, uint64_t seed, uint64_t reqno,
                            long long now_ms, long long complete_ms, struct sim_fault_decision *out)
{
    memset(out, 0, sizeof(*out));
    out->action = SIM_FAULT_NONE;
    if (f->media_redirect[0]) {
        out->action = SIM_FAULT_REDIRECT;
        out->status = 302;
        out->name = "media_redirect";
        return;
    }
    if (f->media_ttl_ms > 0 && now_ms - complete_ms > f->media_ttl_ms) {
        out->action = SIM_FAULT_STATUS;
        out->status = 410;
        out->name = "media_ttl_ms";
        return;
    }
    if (sim_fault_draw(seed, 0x6d65646961ULL, reqno) < f->media_error_rate) {
        out->action = SIM_FAULT_STATUS;
        out->status = 500;
        out->name = "media_error_rate";
    }
}

int sim_fault_task_fails(const struct sim_faults *f, double model_rate, uint64_t seed, uint64_t seq)
{
    double rate = f->fail_rate + model_rate;
    return sim_fault_draw(seed, 0x6661696cULL, seq) < rate;
}

int sim_fault_callback_lost(const struct sim_faults *f, uint64_t seed, uint64_t seq)
{
    return sim_fault_draw(seed, 0x6c6f7374ULL, seq) < f->lost_callback_rate;
}
