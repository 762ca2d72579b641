/* Fault switches and the decisions taken from them. Pure: the caller passes the clock, the
 * seed and a request number; each decision is a function of those, so a seeded run injects the
 * same faults into the same requests. */
#ifndef SIM_FAULT_H
#define SIM_FAULT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

struct sim_faults {
    double error_500, error_502, error_503, error_504, error_455;
    double reset_rate, slow_rate, malformed_rate;
    double fail_rate, lost_callback_rate, media_error_rate;
    long long slow_ms;           /* default 10000 */
    long long burst_429;         /* the next N API requests get 429; counts down */
    long long burst_retry_after; /* seconds, default 1 */
    long long rate_limit;        /* API requests per second; 0 = unlimited */
    long long media_ttl_ms;      /* 0 = media never expire */
    long long errors_in_body;    /* 1: errors answer HTTP 200, code only in the body */
    long long result_5xx;        /* fal: the next N fetches of a completed result fail */
    long long result_5xx_status; /* with this status, default 500 */
    long long stream_off;        /* fal: 1 = the status stream URL is not served (404) */
    long long stream_cut;        /* fal: the next N status streams are cut after one event */
    long long stream_429;        /* fal: the next N status streams answer 429 (burst_retry_after) */
    long long stream_500;        /* fal: the next N status streams answer 500 */
    char media_redirect[1024];   /* "" = off */
};

/* Mutable bookkeeping beside the switches (rate-limit window, malformed kind cycle). */
struct sim_fault_state {
    long long window_sec;
    long long window_count;
    unsigned malformed_next;
};

enum sim_fault_action {
    SIM_FAULT_NONE,
    SIM_FAULT_STATUS,    /* answer with status (and Retry-After if retry_after > 0) */
    SIM_FAULT_RESET,     /* close the connection without an answer */
    SIM_FAULT_MALFORMED, /* answer 200 with a broken body of kind malformed_kind */
    SIM_FAULT_SLOW,      /* answer normally after delay_ms */
    SIM_FAULT_REDIRECT,  /* media: 302 to media_redirect */
};

enum sim_malformed_kind {
    SIM_MALFORMED_TRUNCATED,
    SIM_MALFORMED_NOT_JSON,
    SIM_MALFORMED_NO_DATA,
    SIM_MALFORMED_WRONG_TYPES,
    SIM_MALFORMED_RESULTJSON_OBJECT,
    SIM_MALFORMED_UNKNOWN_STATE,
    SIM_MALFORMED_HUGE,
    SIM_MALFORMED_KINDS
};

struct sim_fault_decision {
    enum sim_fault_action action;
    int status;
    int retry_after;
    long long delay_ms;
    int reset_after_create; /* submit + RESET: 1 = the task is created before the reset */
    enum sim_malformed_kind malformed_kind;
    const char *name; /* the switch that fired, for the figures; NULL when none */
};

void sim_fault_defaults(struct sim_faults *f);
/* Merges a JSON object of switches. Returns 0, or -1 with a message (unknown name, wrong type,
 * out of range); on error nothing is changed. */
int sim_fault_merge(struct sim_faults *f, const cJSON *obj, char *err, size_t errlen);
/* Parses one "NAME=VALUE" from the command line (same names and checks as the JSON). */
int sim_fault_merge_arg(struct sim_faults *f, const char *arg, char *err, size_t errlen);
cJSON *sim_fault_to_json(const struct sim_faults *f);
/* Names of every counter sim_fault_decision.name can take (NULL-terminated), for figures. */
extern const char *const sim_fault_counter_names[];

/* Decision for a provider API request (submit, status, result, cancel). May count down burst_429
 * and updates the rate-limit window in st. */
void sim_fault_decide_api(struct sim_faults *f, struct sim_fault_state *st, uint64_t seed,
                          uint64_t reqno, long long now_ms, struct sim_fault_decision *out);
/* fal's result fetch of a completed request: the 5xx status to answer instead (counting
 * result_5xx down), or 0. */
int sim_fault_decide_result(struct sim_faults *f);
/* fal's status stream: served, not served (stream_off), refused with 429 or 500 (counting
 * stream_429, then stream_500 down), or cut after its first event (counting stream_cut down). */
enum sim_stream_fault {
    SIM_STREAM_SERVE,
    SIM_STREAM_OFF,
    SIM_STREAM_CUT,
    SIM_STREAM_429,
    SIM_STREAM_500
};
enum sim_stream_fault sim_fault_decide_stream(struct sim_faults *f);
/* Decision for a media request of a task that completed at complete_ms. */
void sim_fault_decide_media(const struct sim_faults *f, uint64_t seed, uint64_t reqno,
                            long long now_ms, long long complete_ms,
                            struct sim_fault_decision *out);
/* Whether a new task with sequence number seq should fail because of fail_rate/model_rate. */
int sim_fault_task_fails(const struct sim_faults *f, double model_rate, uint64_t seed,
                         uint64_t seq);
/* Whether the callback of task seq is dropped. */
int sim_fault_callback_lost(const struct sim_faults *f, uint64_t seed, uint64_t seq);

#endif
