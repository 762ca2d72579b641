#include "hook.h"

#include "clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#define TOKEN_BUCKETS 4096
#define BAD_SOURCES 64
#define BAD_PER_SECOND 5.0
#define BAD_BURST 20.0

struct token_entry {
    char token[HOOK_TOKEN_LEN + 1];
    uint32_t task_idx;
    struct token_entry *next;
};

/* Bad requests are budgeted per source address, so a flood costs the
 * listener little and never reaches the engine. */
struct bad_source {
    struct sockaddr_storage addr;
    double tokens;
    int64_t last_ms;
};

struct hook {
    struct MHD_Daemon *d;
    struct log *log;
    char *prefix;
    hook_poll_fn fn;
    void *arg;
    pthread_mutex_t lock;
    struct token_entry *buckets[TOKEN_BUCKETS];
    struct bad_source bad[BAD_SOURCES];
    /* rejected: bad requests answered with an error; dropped: over budget, unanswered */
    uint64_t accepted, rejected, dropped;
};

struct request {
    size_t body;
    bool too_big;
};

static unsigned token_hash(const char *t)
{
    unsigned h = 2166136261u;
    for (; *t; t++)
        h = (h ^ (unsigned char)*t) * 16777619u;
    return h % TOKEN_BUCKETS;
}

int hook_token_new(char out[HOOK_TOKEN_LEN + 1])
{
    unsigned char raw[HOOK_TOKEN_BYTES];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

const char *hook_path_token(const char *prefix, const char *path)
{
    size_t pl = strlen(prefix);
    while (pl > 0 && prefix[pl - 1] == '/')
        pl--;
    if (strncmp(path, prefix, pl) != 0 || path[pl] != '/')
        return NULL;
    const char *tok = path + pl + 1;
    if (strlen(tok) != HOOK_TOKEN_LEN || strspn(tok, "0123456789abcdef") != HOOK_TOKEN_LEN)
        return NULL;
    return tok;
}

int hook_token_add(struct hook *h, const char *token, uint32_t task_idx)
{
    if (!h)
        return 0;
    struct token_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    snprintf(e->token, sizeof(e->token), "%s", token);
    e->task_idx = task_idx;
    unsigned b = token_hash(e->token);
    pthread_mutex_lock(&h->lock);
    e->next = h->buckets[b];
    h->buckets[b] = e;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

void hook_token_remove(struct hook *h, const char *token)
{
    if (!h || !token)
        return;
    unsigned b = token_hash(token);
    pthread_mutex_lock(&h->lock);
    for (struct token_entry **p = &h->buckets[b]; *p; p = &(*p)->next) {
        if (strcmp((*p)->token, token) == 0) {
            struct token_entry *dead = *p;
            *p = dead->next;
            free(dead);
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
}

static bool token_lookup(struct hook *h, const char *token, uint32_t *idx)
{
    bool found = false;
    pthread_mutex_lock(&h->lock);
    for (struct token_entry *e = h->buckets[token_hash(token)]; e; e = e->next) {
        if (strcmp(e->token, token) == 0) {
            *idx = e->task_idx;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return found;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (b->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
    return false;
}

/* True when this source may still have a bad request answered. */
static bool bad_budget(struct hook *h, const struct sockaddr *src)
{
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&h->lock);
    struct bad_source *slot = NULL, *oldest = &h->bad[0];
    for (int i = 0; i < BAD_SOURCES; i++) {
        if (h->bad[i].last_ms && src && same_addr(&h->bad[i].addr, src)) {
            slot = &h->bad[i];
            break;
        }
        if (h->bad[i].last_ms < oldest->last_ms)
            oldest = &h->bad[i];
    }
    if (!slot) {
        slot = oldest;
        memset(slot, 0, sizeof(*slot));
        if (src)
            memcpy(&slot->addr, src,
                   src->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in));
        slot->tokens = BAD_BURST;
        slot->last_ms = now;
    }
    slot->tokens += (double)(now - slot->last_ms) * BAD_PER_SECOND / 1000.0;
    if (slot->tokens > BAD_BURST)
        slot->tokens = BAD_BURST;
    slot->last_ms = now;
    bool ok = slot->tokens >= 1.0;
    if (ok) {
        slot->tokens -= 1.0;
        h->rejected++;
    } else {
        h->dropped++;
    }
    pthread_mutex_unlock(&h->lock);
    return ok;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reject(struct hook *h, struct MHD_Connection *c, unsigned status,
                              const char *text)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!bad_budget(h, ci ? ci->client_addr : NULL))
        return MHD_NO; /* over budget: drop the connection, spend nothing */
    return answer(c, status, text);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    struct hook *h = cls;
    struct request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        rq->body += *upload_size;
        if (rq->body > HOOK_MAX_BODY)
            rq->too_big = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") != 0)
        return reject(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only\n");
    if (rq->too_big)
        return reject(h, c, MHD_HTTP_CONTENT_TOO_LARGE, "body over 1 MiB\n");
    const char *tok = hook_path_token(h->prefix, url);
    uint32_t idx;
    if (!tok || !token_lookup(h, tok, &idx))
        return reject(h, c, MHD_HTTP_NOT_FOUND, "unknown callback\n");
    pthread_mutex_lock(&h->lock);
    h->accepted++;
    pthread_mutex_unlock(&h->lock);
    h->fn(h->arg, idx);
    return answer(c, MHD_HTTP_OK, "ok\n");
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return -EINVAL;
    size_t hl = (size_t)(colon - listen);
    if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') {
        listen++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return -EINVAL;
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    return -EINVAL;
}

int hook_start(const char *listen, const char *path, struct log *lg, hook_poll_fn fn, void *arg,
               struct hook **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_listen(listen, &ss, &sl) < 0) {
        snprintf(err, errlen, "callback_listen '%s' must be ADDR:PORT with a numeric address",
                 listen);
        return -EINVAL;
    }
    struct hook *h = calloc(1, sizeof(*h));
    if (!h || !(h->prefix = strdup(path))) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    h->log = lg;
    h->fn = fn;
    h->arg = arg;
    pthread_mutex_init(&h->lock, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, h, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)32, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "cannot listen for callbacks on %s: address in use or not ours",
                 listen);
        pthread_mutex_destroy(&h->lock);
        free(h->prefix);
        free(h);
        return -EADDRINUSE;
    }
    *out = h;
    return 0;
}

void hook_stop(struct hook *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    for (int i = 0; i < TOKEN_BUCKETS; i++) {
        while (h->buckets[i]) {
            struct token_entry *e = h->buckets[i];
            h->buckets[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&h->lock);
    free(h->prefix);
    free(h);
}

void hook_counts(struct hook *h, uint64_t *accepted, uint64_t *rejected, uint64_t *dropped)
{
    *accepted = *rejected = *dropped = 0;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    *accepted = h->accepted;
    *rejected = h->rejected;
    *dropped = h->dropped;
    pthread_mutex_unlock(&h->lock);
}
