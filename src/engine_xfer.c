/* HTTP transfers of the engine: curl handles, bodies, headers, the wording
 * of transport errors, and the masking of echoed keys. */
#include "engine_internal.h"

#include "netmsg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct xfer *xfer_new(enum xfer_kind kind, size_t pi)
{
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->kind = kind;
    x->pi = pi;
    x->fd = -1;
    return x;
}

static size_t xfer_on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (x->len + n > MAX_BODY) {
        x->too_big = true;
        return 0;
    }
    if (x->len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + n + 1)
            cap *= 2;
        char *b = realloc(x->buf, cap);
        if (!b)
            return 0;
        x->buf = b;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, ptr, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return n;
}

/* The value of header name in the last response of x (after redirects),
 * the last one if it came more than once; "" if absent. */
static void xfer_copy_header(struct xfer *x, const char *name, char *out, size_t len)
{
    struct curl_header *h;
    out[0] = '\0';
    if (!name || !name[0] || curl_easy_header(x->h, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return;
    if (h->amount > 1 &&
        curl_easy_header(x->h, name, h->amount - 1, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return;
    size_t n = strlen(h->value);
    if (n >= len)
        n = len - 1;
    memcpy(out, h->value, n);
    out[n] = '\0';
}

void xfer_take_headers(struct engine *e, struct xfer *x)
{
    if (x->kind == X_DOWNLOAD) {
        xfer_copy_header(x, "Content-Type", x->content_type, sizeof(x->content_type));
        return;
    }
    xfer_copy_header(x, "Retry-After", x->retry_after, sizeof(x->retry_after));
    xfer_copy_header(x, "RateLimit-Remaining", x->rl_remaining, sizeof(x->rl_remaining));
    if (!x->rl_remaining[0])
        xfer_copy_header(x, "X-RateLimit-Remaining", x->rl_remaining, sizeof(x->rl_remaining));
    xfer_copy_header(x, "RateLimit-Reset", x->rl_reset, sizeof(x->rl_reset));
    if (!x->rl_reset[0])
        xfer_copy_header(x, "X-RateLimit-Reset", x->rl_reset, sizeof(x->rl_reset));
    xfer_copy_header(x, provider_error_type_header(engine_provider_of(e, x->pi)), x->error_type,
                     sizeof(x->error_type));
}

struct provider_headers xfer_provider_headers(const struct xfer *x)
{
    return (struct provider_headers){.retry_after = x->retry_after[0] ? x->retry_after : NULL,
                                     .error_type = x->error_type[0] ? x->error_type : NULL};
}

void xfer_note_rate_headers(struct engine *e, const struct xfer *x, int64_t mono_ms)
{
    int64_t ms = provider_parse_ratelimit(x->rl_remaining[0] ? x->rl_remaining : NULL,
                                          x->rl_reset[0] ? x->rl_reset : NULL, time(NULL));
    if (ms > 0)
        rate_pause(&e->rate, mono_ms, ms);
}

void xfer_detach(struct engine *e, struct xfer *x)
{
    curl_multi_remove_handle(e->multi, x->h);
    /* Downloads and streams have their own limits. */
    e->inflight -= x->kind != X_DOWNLOAD && x->kind != X_STREAM;
    e->submits_inflight -= x->kind == X_SUBMIT;
    if (x->prev)
        x->prev->next = x->next;
    else
        e->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
}

void xfer_free(struct xfer *x)
{
    if (!x)
        return;
    if (x->fd >= 0)
        close(x->fd);
    if (x->h)
        curl_easy_cleanup(x->h);
    /* One of them is the auth header: no copy of the key left in freed memory. */
    for (struct curl_slist *l = x->hdrs; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(x->hdrs);
    provider_request_clear(&x->req);
    stream_live_free(x->live);
    free(x->buf);
    free(x);
}

int xfer_add(struct engine *e, struct xfer *x)
{
    if (curl_multi_add_handle(e->multi, x->h) != CURLM_OK)
        return -EIO;
    /* Downloads have their own limit (they go to other hosts), streams theirs
     * (they stay open as long as their tasks run). */
    e->inflight += x->kind != X_DOWNLOAD && x->kind != X_STREAM;
    e->submits_inflight += x->kind == X_SUBMIT;
    x->prev = NULL;
    x->next = e->xfers;
    if (e->xfers)
        e->xfers->prev = x;
    e->xfers = x;
    return 0;
}

/* An API request: the provider's auth, JSON both ways, no redirects. */
int xfer_start(struct engine *e, struct xfer *x, long timeout_ms)
{
    x->h = curl_easy_init();
    if (!x->h)
        return -ENOMEM;
    /* A presigned upload URL holds its own rights: the key never goes there. */
    if (!x->req.no_auth)
        x->hdrs = curl_slist_append(x->hdrs, e->auth[x->pi]);
    char ctype[256];
    snprintf(ctype, sizeof(ctype), "Content-Type: %s",
             x->req.content_type ? x->req.content_type : "application/json");
    x->hdrs = curl_slist_append(x->hdrs, ctype);
    x->hdrs = curl_slist_append(x->hdrs, x->kind == X_STREAM ? "Accept: text/event-stream"
                                                             : "Accept: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    CURL *h = x->h;
    curl_easy_setopt(h, CURLOPT_URL, x->req.url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "genfs/" GENFS_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, xfer_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (x->fresh)
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    if (strcmp(x->req.method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->req.body ? x->req.body : "");
        /* An upload's bytes may hold NUL bytes. */
        if (x->req.body && x->req.body_len > 0)
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req.body_len);
        if (strcmp(x->req.method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->req.method);
    }
    if (x->kind == X_STREAM)
        stream_setopt(x);
    return xfer_add(e, x);
}

bool xfer_never_sent(CURLcode cc)
{
    return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
           cc == CURLE_COULDNT_RESOLVE_PROXY || cc == CURLE_SSL_CONNECT_ERROR;
}

void xfer_transport_msg(struct engine *e, const struct xfer *x, CURLcode cc, bool origin_only,
                        char *msg, size_t len)
{
    netmsg_format(msg, len, x->req.url, origin_only, xfer_never_sent(cc), curl_easy_strerror(cc));
    size_t n = strlen(msg);
    snprintf(msg + n, len - n, "; check api_url and the network");
    xfer_redact(e, msg);
}

/* A provider may echo the key back (in an error message, a failMsg): never
 * let it reach the log, the mount or the database. */
void xfer_redact(struct engine *e, char *text)
{
    for (size_t i = 0; text && e->keys && i < e->cfg.n_providers; i++) {
        const char *key = e->keys[i];
        size_t n = key ? strlen(key) : 0;
        if (n < 4)
            continue;
        for (char *p = strstr(text, key); p; p = strstr(p + n, key))
            memset(p, '*', n);
    }
}
