#include "probe.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct probe_body {
    char buf[16384];
    size_t len;
};

static size_t probe_on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct probe_body *b = arg;
    size_t n = size * nmemb, room = sizeof(b->buf) - 1 - b->len;
    memcpy(b->buf + b->len, ptr, n < room ? n : room);
    b->len += n < room ? n : room;
    return n;
}

static int probe_here(const struct provider *p, const char *key, const char *model, long timeout_ms,
                      char *msg, size_t msglen)
{
    struct provider_request r;
    msg[0] = '\0';
    /* No provider has this task: a 404 (or any answer but a refused key) is a
     * provider that answers and takes the key. */
    if (provider_build_status(p, model, "genfs-probe-0", NULL, &r) < 0)
        return 0;
    char *auth = provider_auth_header(p, key);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = auth ? curl_slist_append(NULL, auth) : NULL;
    struct probe_body body = {.len = 0};
    long http = 0;
    CURLcode cc = CURLE_FAILED_INIT;
    if (h && hdrs) {
        curl_easy_setopt(h, CURLOPT_URL, r.url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "genfs/" GENFS_VERSION);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, probe_on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
        cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    int rc = 0;
    if (cc != CURLE_OK) {
        rc = -EHOSTUNREACH;
        snprintf(msg, msglen,
                 "nothing answered at %s (%s): check api_url and the network; genfs mounts "
                 "anyway and submits once the provider answers",
                 provider_base_url(p), curl_easy_strerror(cc));
    } else {
        struct provider_status st;
        struct provider_error e;
        if (provider_parse_status(p, http, body.buf, body.len, NULL, 0, &st, &e) == -EACCES) {
            rc = -EACCES;
            snprintf(msg, msglen, "%s at %s", e.msg, provider_base_url(p));
        }
        provider_status_clear(&st);
    }
    provider_request_clear(&r);
    return rc;
}

/* The request runs in a child: curl's buffers that held the key die with it,
 * and never reach the heap the announcer is later forked from. */
int probe_provider(const struct provider *p, const char *key, const char *model, long timeout_ms,
                   char *msg, size_t msglen)
{
    struct {
        int rc;
        char msg[512];
    } answer = {0, ""};
    int fds[2];
    msg[0] = '\0';
    if (pipe2(fds, O_CLOEXEC) < 0)
        return 0;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    if (pid == 0) {
        close(fds[0]);
        answer.rc = probe_here(p, key, model, timeout_ms, answer.msg, sizeof(answer.msg));
        ssize_t w = write(fds[1], &answer, sizeof(answer));
        _exit(w == (ssize_t)sizeof(answer) ? 0 : 1);
    }
    close(fds[1]);
    ssize_t n;
    do
        n = read(fds[0], &answer, sizeof(answer));
    while (n < 0 && errno == EINTR);
    close(fds[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof(answer))
        return 0; /* the check itself failed: say nothing rather than something wrong */
    answer.msg[sizeof(answer.msg) - 1] = '\0';
    snprintf(msg, msglen, "%s", answer.msg);
    return answer.rc;
}
