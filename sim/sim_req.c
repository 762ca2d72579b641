#include "sim_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sim_req_copy(char *dst, size_t cap, const char *src, size_t len)
{
    if (len == 0 || len >= cap)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* A model name: non-empty segments separated by single slashes. */
int sim_req_model_ok(const char *s, size_t len)
{
    if (len == 0 || s[0] == '/' || s[len - 1] == '/')
        return 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (s[i] == '/' && s[i + 1] == '/')
            return 0;
    return 1;
}

static void sim_req_route_media(const char *rest, struct sim_route_info *out)
{
    /* {taskId}/{n}.{ext} */
    const char *slash = strchr(rest, '/');
    if (!slash || sim_req_copy(out->task_id, sizeof(out->task_id), rest, (size_t)(slash - rest)))
        return;
    const char *name = slash + 1;
    char *end = NULL;
    if (*name < '0' || *name > '9')
        return;
    long n = strtol(name, &end, 10);
    if (n < 0 || n >= SIM_OUTPUTS_MAX || *end != '.' || strchr(end, '/'))
        return;
    if (sim_req_copy(out->ext, sizeof(out->ext), end + 1, strlen(end + 1)))
        return;
    out->media_index = (int)n;
    out->route = SIM_ROUTE_MEDIA;
}

void sim_req_route(const char *method, const char *path, struct sim_route_info *out)
{
    memset(out, 0, sizeof(*out));
    out->route = SIM_ROUTE_NOT_FOUND;
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0;
    static const char media[] = "/media/";
    if (strncmp(path, media, sizeof(media) - 1) == 0) {
        if (get)
            sim_req_route_media(path + sizeof(media) - 1, out);
        else
            out->route = SIM_ROUTE_BAD_METHOD;
        return;
    }
    static const struct {
        const char *path;
        int post;
        enum sim_route route;
    } fixed[] = {
        {"/_sim/figures", 0, SIM_ROUTE_FIGURES},
        {"/_sim/tasks", 0, SIM_ROUTE_TASKS},
        {"/_sim/faults", 0, SIM_ROUTE_FAULTS_GET},
        {"/_sim/faults", 1, SIM_ROUTE_FAULTS_SET},
        {"/_sim/faults/reset", 1, SIM_ROUTE_FAULTS_RESET},
        {"/_sim/reset", 1, SIM_ROUTE_RESET},
    };
    int path_known = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(path, fixed[i].path) != 0)
            continue;
        path_known = 1;
        if ((fixed[i].post && post) || (!fixed[i].post && get)) {
            out->route = fixed[i].route;
            return;
        }
    }
    static const char task[] = "/_sim/tasks/";
    if (strncmp(path, task, sizeof(task) - 1) == 0) {
        const char *id = path + sizeof(task) - 1;
        if (!strchr(id, '/') &&
            sim_req_copy(out->task_id, sizeof(out->task_id), id, strlen(id)) == 0)
            out->route = get ? SIM_ROUTE_TASK : SIM_ROUTE_BAD_METHOD;
        return;
    }
    if (path_known)
        out->route = SIM_ROUTE_BAD_METHOD;
}

int sim_req_is_api(enum sim_route r)
{
    return r == SIM_ROUTE_SUBMIT || r == SIM_ROUTE_STATUS || r == SIM_ROUTE_RESULT ||
           r == SIM_ROUTE_CANCEL;
}

/* A message naming the field relative to prefix; -1 for the callers' returns. */
static int sim_req_fail_field(char *msg, size_t msglen, const char *prefix, const char *text)
{
    snprintf(msg, msglen, "%s%s", prefix, text);
    return -1;
}

static int sim_req_int(const cJSON *it, long long lo, long long hi, long long *out)
{
    if (!cJSON_IsNumber(it) || it->valuedouble < (double)lo || it->valuedouble > (double)hi ||
        it->valuedouble != (double)(long long)it->valuedouble)
        return -1;
    *out = (long long)it->valuedouble;
    return 0;
}

void sim_req_submit_init(struct sim_submit *out)
{
    memset(out, 0, sizeof(*out));
    out->duration_ms = -1;
}

int sim_req_prompt_parse(const cJSON *input, const char *prefix, struct sim_submit *out, char *msg,
                         size_t msglen)
{
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(input, "prompt");
    if (!cJSON_IsString(prompt) || prompt->valuestring[0] == '\0')
        return sim_req_fail_field(msg, msglen, prefix,
                                  "prompt: required, must be a non-empty string");
    out->prompt = prompt->valuestring;
    return 0;
}

int sim_req_knobs_parse(const cJSON *input, const char *prefix, int outcomes,
                        struct sim_submit *out, char *msg, size_t msglen)
{
    const cJSON *it;
    long long v;
    if ((it = cJSON_GetObjectItemCaseSensitive(input, "sim_duration_ms"))) {
        if (sim_req_int(it, 0, 100000000000LL, &v))
            return sim_req_fail_field(msg, msglen, prefix,
                                      "sim_duration_ms: must be an integer >= 0");
        out->duration_ms = v;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(input, "sim_outcome"))) {
        static const struct {
            const char *word;
            enum sim_outcome outcome;
            int needs;
        } words[] = {{"success", SIM_OUTCOME_SUCCESS, 0},
                     {"failed", SIM_OUTCOME_FAILED, 0},
                     {"canceled", SIM_OUTCOME_CANCELED, SIM_KNOB_CANCELED},
                     {"aborted", SIM_OUTCOME_ABORTED, SIM_KNOB_ABORTED}};
        int found = 0;
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]) && !found; i++) {
            if (cJSON_IsString(it) && strcmp(it->valuestring, words[i].word) == 0 &&
                (words[i].needs & outcomes) == words[i].needs) {
                out->outcome = words[i].outcome;
                found = 1;
            }
        }
        if (!found)
            return sim_req_fail_field(msg, msglen, prefix,
                                      (outcomes & SIM_KNOB_ABORTED)
                                          ? "sim_outcome: must be \"success\", \"failed\", "
                                            "\"canceled\" or \"aborted\""
                                          : "sim_outcome: must be \"success\" or \"failed\"");
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(input, "sim_fail_code"))) {
        if (!cJSON_IsString(it))
            return sim_req_fail_field(msg, msglen, prefix, "sim_fail_code: must be a string");
        out->fail_code = it->valuestring;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(input, "sim_fail_msg"))) {
        if (!cJSON_IsString(it))
            return sim_req_fail_field(msg, msglen, prefix, "sim_fail_msg: must be a string");
        out->fail_msg = it->valuestring;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(input, "sim_fail_loc"))) {
        if (!cJSON_IsString(it) || !it->valuestring[0])
            return sim_req_fail_field(msg, msglen, prefix,
                                      "sim_fail_loc: must be a non-empty string");
        out->fail_loc = it->valuestring;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(input, "sim_outputs"))) {
        if (sim_req_int(it, 1, SIM_OUTPUTS_MAX, &v))
            return sim_req_fail_field(msg, msglen, prefix, "sim_outputs: must be an integer 1..8");
        out->outputs = (int)v;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(input, "sim_media_bytes"))) {
        /* Up to 8 GiB: enough for any size test, far below what could overflow a length. */
        if (sim_req_int(it, 1, 8LL << 30, &v))
            return sim_req_fail_field(msg, msglen, prefix,
                                      "sim_media_bytes: must be an integer 1..2^33");
        out->media_bytes = (unsigned long long)v;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(input, "sim_credits"))) {
        if (!cJSON_IsString(it))
            return sim_req_fail_field(msg, msglen, prefix, "sim_credits: must be a string");
        if (strcmp(it->valuestring, "none") == 0)
            out->reject = 402;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(input, "sim_reject"))) {
        if (sim_req_int(it, 400, 599, &v))
            return sim_req_fail_field(msg, msglen, prefix,
                                      "sim_reject: must be an HTTP code 400..599");
        out->reject = (int)v;
    }
    return 0;
}

void sim_req_submit_free(struct sim_submit *s)
{
    cJSON_Delete(s->root);
    memset(s, 0, sizeof(*s));
}

struct sim_req_buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sim_req_put(struct sim_req_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static int sim_req_key_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

static void sim_req_canon(struct sim_req_buf *b, const cJSON *it)
{
    if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
        int obj = cJSON_IsObject(it);
        size_t n = (size_t)cJSON_GetArraySize(it);
        const cJSON **kids = calloc(n ? n : 1, sizeof(*kids));
        if (!kids) {
            b->oom = 1;
            return;
        }
        size_t i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, it)
        {
            kids[i++] = c;
        }
        if (obj)
            qsort(kids, n, sizeof(*kids), sim_req_key_cmp);
        sim_req_put(b, obj ? "{" : "[", 1);
        for (i = 0; i < n; i++) {
            if (i)
                sim_req_put(b, ",", 1);
            if (obj) {
                /* Print the key through cJSON so escaping matches the values'. */
                cJSON *k = cJSON_CreateString(kids[i]->string ? kids[i]->string : "");
                char *ks = k ? cJSON_PrintUnformatted(k) : NULL;
                if (ks) {
                    sim_req_put(b, ks, strlen(ks));
                    sim_req_put(b, ":", 1);
                } else {
                    b->oom = 1;
                }
                cJSON_free(ks);
                cJSON_Delete(k);
            }
            sim_req_canon(b, kids[i]);
        }
        sim_req_put(b, obj ? "}" : "]", 1);
        free(kids);
        return;
    }
    char *s = cJSON_PrintUnformatted(it);
    if (!s) {
        b->oom = 1;
        return;
    }
    sim_req_put(b, s, strlen(s));
    cJSON_free(s);
}

char *sim_req_canonical_json(const cJSON *item)
{
    struct sim_req_buf b = {0};
    sim_req_canon(&b, item);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
