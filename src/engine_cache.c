/* Result files: the download queue, the downloads themselves (outside the
 * API rate, at most MAX_DOWNLOADS at once, never with the API key), the cache
 * under cache_dir, its eviction past cache_max, and -o keep. */
#include "engine_internal.h"

#include "cachepath.h"
#include "media.h"
#include "netmsg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEEP_EVERY_MS 3600000 /* -o keep looks for old tasks hourly (and at start) */

void cache_note_store_error(struct engine *e, int err)
{
    if (err == -ENOSPC || err == -EDQUOT)
        engine_count(e, &e->c.disk_full);
}

/* What a failed write to the cache leaves a file in: a full disk (or quota)
 * is said as such, counted, and retried at the next read. */
static enum file_state cache_failure_state(struct engine *e, int err)
{
    if (err != ENOSPC && err != EDQUOT)
        return FILE_FAILED;
    engine_count(e, &e->c.disk_full);
    return FILE_NOSPACE;
}

static struct dl_job *cache_find_job(struct engine *e, uint32_t idx, uint32_t n)
{
    for (struct dl_job *j = e->dl_head; j; j = j->next)
        if (j->task_idx == idx && (n == UINT32_MAX || j->file_n == n))
            return j;
    return NULL;
}

void cache_queue_file(struct engine *e, uint32_t idx, uint32_t n, bool front)
{
    if (cache_find_job(e, idx, n))
        return;
    struct dl_job *j = calloc(1, sizeof(*j));
    if (!j) {
        log_error(e->log, "out of memory queueing a download");
        return;
    }
    j->task_idx = idx;
    j->file_n = n;
    if (front || !e->dl_tail) {
        j->next = e->dl_head;
        e->dl_head = j;
        if (!e->dl_tail)
            e->dl_tail = j;
    } else {
        e->dl_tail->next = j;
        e->dl_tail = j;
    }
    if (idx < e->ts_cap)
        e->ts[idx].pt.phase = PHASE_DOWNLOADING;
}

/* A downloading task whose files are all settled (none queued, none in
 * flight) is done. */
static void cache_settle_task(struct engine *e, uint32_t idx)
{
    const struct task *t = store_task_at(e->store, idx);
    if (idx >= e->ts_cap || e->ts[idx].pt.phase != PHASE_DOWNLOADING || !t)
        return;
    if (cache_find_job(e, idx, UINT32_MAX))
        return;
    for (uint32_t n = 0; t->files && n < t->n_urls; n++)
        if (t->files[n].state == FILE_DOWNLOADING)
            return;
    e->ts[idx].pt.phase = PHASE_DONE;
}

void cache_queue_task(struct engine *e, const struct task *t)
{
    for (uint32_t n = 0; t->files && n < t->n_urls; n++)
        if (t->files[n].state == FILE_PENDING)
            cache_queue_file(e, t->idx, n, false);
    cache_settle_task(e, t->idx);
}

static int cache_mkdir_parents(char *path, mode_t mode)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, mode);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}

static size_t cache_on_file_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (x->written + (int64_t)n > x->cap_bytes) {
        x->too_big = true;
        return 0;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(x->fd, ptr + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            x->write_errno = errno;
            return 0;
        }
        done += (size_t)w;
    }
    x->written += (int64_t)n;
    return n;
}

/* A whole file may leave the cache only if it can be fetched again: its
 * provider's result URLs never expire. Anything else is the user's data. */
static bool cache_can_evict(struct engine *e, const struct task *t, uint32_t n)
{
    return t->files[n].state == FILE_DONE && !media_is_data_uri(t->urls[n]) &&
           provider_url_lifetime_s(engine_provider_of(e, engine_provider_index(e, t->model_idx))) <
               0;
}

/* The least recently opened evictable file, or NULL. */
static const struct task *cache_pick_victim(struct engine *e, uint32_t *vn)
{
    const struct task *victim = NULL;
    int64_t oldest = INT64_MAX;
    for (uint32_t i = 0; i < store_task_slots(e->store); i++) {
        const struct task *t = store_task_at(e->store, i);
        for (uint32_t n = 0; t && t->files && n < t->n_urls; n++) {
            int64_t at = __atomic_load_n(&t->files[n].atime_ms, __ATOMIC_RELAXED);
            if (at < oldest && cache_can_evict(e, t, n)) {
                oldest = at;
                victim = t;
                *vn = n;
            }
        }
    }
    return victim;
}

/* Least recently opened evictable files go first, until the cache fits its
 * cap; what cannot go is kept, and the log and stats say so. */
static void cache_evict(struct engine *e)
{
    while (e->cfg.cache_max_bytes > 0 && e->cache_bytes > e->cfg.cache_max_bytes) {
        uint32_t vn = 0;
        const struct task *victim = cache_pick_victim(e, &vn);
        if (!victim) {
            int64_t over = e->cache_bytes - e->cfg.cache_max_bytes;
            if (!e->over_cap_said)
                log_warn(e->log,
                         "the cache holds %lld bytes over cache_max: they are results whose "
                         "URLs expire at the provider, kept because they could not be fetched "
                         "again; forget finished tasks with rmdir, or mount with -o keep=DAYS",
                         (long long)over);
            e->over_cap_said = true;
            e->kept_over_cap = over;
            return;
        }
        const char *model = engine_model_name(e, victim);
        char path[4096];
        if (cache_file_path(path, sizeof(path), e->cfg.cache_dir, model, victim->id,
                            victim->files[vn].name) == 0)
            unlink(path);
        e->cache_bytes -= victim->files[vn].size;
        engine_count(e, &e->c.evictions);
        log_info(e->log, "%s/%s: evicted files/%s from the cache (fetched again when read)", model,
                 victim->id, victim->files[vn].name);
        store_file_set(e->store, victim->idx, vn, FILE_PENDING, NULL, -2);
    }
    e->over_cap_said = false;
    e->kept_over_cap = 0;
}

/* A whole file entered the cache. */
static void cache_add_file(struct engine *e, const struct task *t, uint32_t n, const char *name,
                           int64_t size, int64_t wall_ms)
{
    store_file_set(e->store, t->idx, n, FILE_DONE, name, size);
    __atomic_store_n(&t->files[n].atime_ms, wall_ms, __ATOMIC_RELAXED);
    e->cache_bytes += size;
    cache_evict(e);
}

/* Writes all of buf to fd: NULL, or why not (x->write_errno set). */
static const char *cache_write_all(struct xfer *x, const unsigned char *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t w = write(x->fd, buf + done, len - done);
        if (w < 0 && errno != EINTR) {
            x->write_errno = errno;
            return strerror(errno);
        }
        if (w > 0)
            done += (size_t)w;
    }
    return NULL;
}

/* A data: URI (or a text output) is the file itself: decoded into the part
 * file x->fd, then renamed like a download. */
static void cache_save_inline(struct engine *e, struct xfer *x, const struct task *t)
{
    const char *model = engine_model_name(e, t);
    unsigned char *bytes;
    size_t len;
    char type[128], name[32], part[4096], path[4096];
    int rc = media_data_uri_decode(t->urls[x->file_n], &bytes, &len, type, sizeof(type));
    const char *why = NULL;
    if (rc < 0)
        why = rc == -ENOMEM ? "out of memory" : "the provider's data: URI is malformed";
    else if ((int64_t)len > e->cfg.file_max_bytes)
        why = "larger than file_max";
    else
        why = cache_write_all(x, bytes, len);
    free(bytes);
    cache_part_path(part, sizeof(part), e->cfg.cache_dir, model, t->id, x->file_n);
    store_file_name(t, x->file_n, type[0] && rc == 0 ? type : NULL, name, sizeof(name));
    if (!why && (fsync(x->fd) != 0 ||
                 cache_file_path(path, sizeof(path), e->cfg.cache_dir, model, t->id, name) < 0 ||
                 rename(part, path) != 0)) {
        x->write_errno = errno;
        why = strerror(errno);
    }
    if (why) {
        unlink(part);
        log_warn(e->log, "%s/%s: files/%s: cannot store the provider's inline output: %s%s", model,
                 t->id, name, why,
                 x->write_errno == ENOSPC ? ": cache_dir is full, free space there" : "");
        store_file_set(e->store, x->task_idx, x->file_n,
                       x->write_errno ? cache_failure_state(e, x->write_errno) : FILE_FAILED, NULL,
                       -2);
        return;
    }
    cache_add_file(e, t, x->file_n, name, (int64_t)len, clock_now_ms());
}

/* A plain GET: the API key never goes to a result host. */
static int cache_start_get(struct engine *e, struct xfer *x, const char *url)
{
    x->h = curl_easy_init();
    if (!x->h)
        return -ENOMEM;
    CURL *h = x->h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)e->cfg.file_max_bytes);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    /* Big files take long: give up only when the transfer stalls. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "genfs/" GENFS_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cache_on_file_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    return xfer_add(e, x);
}

/* Opens the part file of x's download: 0, or the errno it failed with (logged). */
static int cache_open_part(struct engine *e, struct xfer *x, const struct task *t)
{
    char part[4096];
    const char *model = engine_model_name(e, t);
    if (cache_part_path(part, sizeof(part), e->cfg.cache_dir, model, t->id, x->file_n) < 0 ||
        cache_mkdir_parents(part, 0700) < 0 ||
        (x->fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        int saved = errno;
        log_error(e->log, "%s/%s: cannot write to the cache (%s): check cache_dir %s", model, t->id,
                  strerror(saved), e->cfg.cache_dir);
        return saved;
    }
    return 0;
}

static void cache_start_download(struct engine *e, const struct dl_job *j)
{
    const struct task *t = store_task_at(e->store, j->task_idx);
    if (!t || !t->files || j->file_n >= t->n_urls || t->files[j->file_n].state == FILE_DONE ||
        t->files[j->file_n].state == FILE_DOWNLOADING)
        return;
    struct xfer *x = xfer_new(X_DOWNLOAD, 0);
    if (!x)
        return;
    x->task_idx = j->task_idx;
    x->file_n = j->file_n;
    x->attempt = j->attempts + 1;
    x->cap_bytes = e->cfg.file_max_bytes;
    int err = cache_open_part(e, x, t);
    if (err) {
        store_file_set(e->store, j->task_idx, j->file_n, cache_failure_state(e, err), NULL, -2);
        xfer_free(x);
        return;
    }
    if (media_is_data_uri(t->urls[j->file_n])) {
        cache_save_inline(e, x, t);
        xfer_free(x);
        return;
    }
    if (cache_start_get(e, x, t->urls[j->file_n]) < 0) {
        store_file_set(e->store, j->task_idx, j->file_n, FILE_FAILED, NULL, -2);
        xfer_free(x);
        return;
    }
    e->downloads++;
    engine_count(e, &e->c.downloads);
    store_file_set(e->store, j->task_idx, j->file_n, FILE_DOWNLOADING, NULL, -2);
}

static void cache_unlink_job(struct engine *e, struct dl_job **jp)
{
    struct dl_job *j = *jp;
    *jp = j->next;
    if (e->dl_tail == j) {
        e->dl_tail = NULL;
        for (struct dl_job *k = e->dl_head; k; k = k->next)
            e->dl_tail = k;
    }
}

int64_t cache_launch(struct engine *e, int64_t mono_ms, int64_t wait)
{
    for (struct dl_job **jp = &e->dl_head; *jp && e->downloads < MAX_DOWNLOADS;) {
        struct dl_job *j = *jp;
        if (j->not_before_ms > mono_ms) {
            if (j->not_before_ms - mono_ms < wait)
                wait = j->not_before_ms - mono_ms;
            jp = &j->next;
            continue;
        }
        cache_unlink_job(e, jp);
        cache_start_download(e, j);
        cache_settle_task(e, j->task_idx);
        free(j);
    }
    return wait;
}

/* The download succeeded: the part file becomes the file. */
static int cache_store_download(struct engine *e, struct xfer *x, const struct task *t,
                                const char *part, int64_t wall_ms)
{
    char name[32], path[4096];
    const char *model = engine_model_name(e, t);
    store_file_name(t, x->file_n, x->content_type[0] ? x->content_type : NULL, name, sizeof(name));
    if (fsync(x->fd) != 0 ||
        cache_file_path(path, sizeof(path), e->cfg.cache_dir, model, t->id, name) < 0 ||
        rename(part, path) != 0)
        return errno;
    engine_count_bytes(e, x->written);
    cache_add_file(e, t, x->file_n, name, x->written, wall_ms);
    return 0;
}

/* Why a download failed (in why) and what the file is left in; true when
 * another attempt may do better. */
static bool cache_failed_why(struct engine *e, const struct xfer *x, CURLcode cc, long http,
                             char *why, size_t len, enum file_state *final)
{
    *final = FILE_FAILED;
    if (cc == CURLE_OK && (http == 403 || http == 404 || http == 410)) {
        *final = FILE_EXPIRED;
        snprintf(why, len, "the result URL expired (HTTP %ld): the provider no longer serves it",
                 http);
    } else if (cc == CURLE_OK) {
        snprintf(why, len, "HTTP %ld", http);
        return http == 408 || http == 429 || http >= 500;
    } else if (cc == CURLE_UNSUPPORTED_PROTOCOL) {
        snprintf(why, len, "refused: it leads to a URL that is not http(s)");
    } else if (cc == CURLE_TOO_MANY_REDIRECTS) {
        snprintf(why, len, "refused: more than %ld redirects", MAX_REDIRECTS);
    } else if (cc == CURLE_FILESIZE_EXCEEDED || (cc == CURLE_WRITE_ERROR && x->too_big)) {
        snprintf(why, len, "refused: larger than the %lld-byte file_max",
                 (long long)e->cfg.file_max_bytes);
    } else if (cc == CURLE_WRITE_ERROR && x->write_errno) {
        *final = cache_failure_state(e, x->write_errno);
        snprintf(why, len, "cannot write to cache_dir %s: %s%s", e->cfg.cache_dir,
                 strerror(x->write_errno),
                 *final == FILE_NOSPACE ? " (free space there; a read tries again)" : "");
    } else {
        snprintf(why, len, "%s", curl_easy_strerror(cc));
        return cc != CURLE_WRITE_ERROR;
    }
    return false;
}

static void cache_retry_later(struct engine *e, const struct xfer *x, int64_t mono_ms)
{
    engine_count(e, &e->c.retries);
    store_file_set(e->store, x->task_idx, x->file_n, FILE_PENDING, NULL, -2);
    cache_queue_file(e, x->task_idx, x->file_n, false);
    struct dl_job *j = cache_find_job(e, x->task_idx, x->file_n);
    if (j) {
        j->attempts = x->attempt;
        j->not_before_ms = mono_ms + plan_backoff_ms(e, (uint32_t)x->attempt);
    }
}

void cache_on_download(struct engine *e, struct xfer *x, CURLcode cc, long http,
                       struct clock_pair now)
{
    e->downloads--;
    const struct task *t = store_task_at(e->store, x->task_idx);
    if (!t)
        return; /* forgotten meanwhile: its cache dir is gone */
    const char *model = engine_model_name(e, t);
    char part[4096], why[256] = "", url[256];
    cache_part_path(part, sizeof(part), e->cfg.cache_dir, model, t->id, x->file_n);
    enum file_state final = FILE_FAILED;
    bool retry = false;
    if (cc == CURLE_OK && http >= 200 && http < 300) {
        int err = cache_store_download(e, x, t, part, now.wall_ms);
        if (err == 0) {
            cache_settle_task(e, x->task_idx);
            return;
        }
        final = cache_failure_state(e, err);
        snprintf(why, sizeof(why), "cannot store it in cache_dir %s: %s", e->cfg.cache_dir,
                 strerror(err));
    } else {
        retry = cache_failed_why(e, x, cc, http, why, sizeof(why), &final);
    }
    unlink(part);
    netmsg_show_url(t->urls[x->file_n], url, sizeof(url));
    if (retry && x->attempt < DOWNLOAD_ATTEMPTS) {
        log_info(e->log, "%s/%s: download of files/%u failed: %s (%s); retrying", model, t->id,
                 x->file_n, why, url);
        cache_retry_later(e, x, now.mono_ms);
        return;
    }
    log_warn(e->log, "%s/%s: download of files/%u failed: %s (%s)", model, t->id, x->file_n, why,
             url);
    store_file_set(e->store, x->task_idx, x->file_n, final, NULL, -2);
    cache_settle_task(e, x->task_idx);
}

/* Removes a task's cache directory and what is in it. */
void cache_forget_task(struct engine *e, const struct task *t)
{
    char dir[4096];
    if (cache_task_dir(dir, sizeof(dir), e->cfg.cache_dir, engine_model_name(e, t), t->id) < 0)
        return;
    for (uint32_t n = 0; t->files && n < t->n_urls; n++)
        if (t->files[n].state == FILE_DONE)
            e->cache_bytes -= t->files[n].size;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
    rmdir(dir);
}

/* -o keep=DAYS: finished tasks that ended longer ago are forgotten, with their
 * files, as rmdir would. */
void cache_forget_old(struct engine *e, struct clock_pair now)
{
    if (e->cfg.keep_ms <= 0 || now.mono_ms - e->last_keep_ms < KEEP_EVERY_MS)
        return;
    e->last_keep_ms = now.mono_ms;
    for (uint32_t i = 0; i < store_task_slots(e->store); i++) {
        const struct task *t = store_task_at(e->store, i);
        if (!t || !task_state_final(t->state) || now.wall_ms - t->change_ms < e->cfg.keep_ms)
            continue;
        log_info(e->log, "%s/%s: forgotten (ended over %lld days ago: -o keep)",
                 engine_model_name(e, t), t->id, (long long)(e->cfg.keep_ms / 86400000));
        cache_forget_task(e, t);
        hook_token_remove(e->hook, t->cb_token);
        if (store_task_remove(e->store, i) == 0)
            engine_forget_slot(e, i);
    }
}

/* At start: what is already in the cache is served from there; the rest of
 * every finished task's files is downloaded again. */
void cache_scan(struct engine *e)
{
    for (uint32_t i = 0; i < store_task_slots(e->store); i++) {
        const struct task *t = store_task_at(e->store, i);
        for (uint32_t n = 0; t && t->files && n < t->n_urls; n++) {
            char path[4096];
            struct stat st;
            if (cache_file_path(path, sizeof(path), e->cfg.cache_dir, engine_model_name(e, t),
                                t->id, t->files[n].name) == 0 &&
                stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                (t->files[n].size < 0 || st.st_size == t->files[n].size)) {
                store_file_set(e->store, i, n, FILE_DONE, NULL, st.st_size);
                int64_t at = (int64_t)st.st_atim.tv_sec * 1000;
                __atomic_store_n(&t->files[n].atime_ms, at, __ATOMIC_RELAXED);
                e->cache_bytes += st.st_size;
            } else {
                cache_queue_file(e, i, n, false);
            }
        }
    }
    cache_evict(e);
}

void cache_free(struct engine *e)
{
    while (e->dl_head) {
        struct dl_job *j = e->dl_head;
        e->dl_head = j->next;
        free(j);
    }
}
