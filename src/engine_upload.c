/* A submission's local files ("@PATH", read by fs_write.c with the writer's
 * rights): each becomes a URL from the profile's upload request (or a data:
 * URI where the profile takes one), one file after the other, before the
 * submission is queued. An upload creates no task, so one that may not have
 * arrived is sent again (the same bytes); the submission itself goes once. */
#include "engine_internal.h"

#include "atfile.h"
#include "netmsg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void engine_cmd_clear_files(struct engine_cmd *cmd)
{
    for (size_t i = 0; i < cmd->n_files; i++) {
        struct engine_file *f = &cmd->files[i];
        free(f->path);
        free(f->data);
        free(f->name);
        free(f->url);
        free(f->shown);
    }
    free(cmd->files);
    cmd->files = NULL;
    cmd->n_files = 0;
    free(cmd->shown_json);
    cmd->shown_json = NULL;
}

int engine_upload_check(struct engine *e, uint32_t model_idx, size_t len, char *msg, size_t msglen)
{
    store_rdlock(e->store);
    size_t pi = engine_provider_index(e, model_idx);
    store_unlock(e->store);
    enum provider_upload_way way;
    return provider_upload_plan(engine_provider_of(e, pi), len, &way, msg, msglen);
}

static void upload_unlink(struct engine *e, struct upload_job *j)
{
    for (struct upload_job **pp = &e->uploads; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    free(j->put_url);
    free(j->file_url);
    free(j);
}

/* An upload that cannot be done: the submission fails, naming the file. */
static void upload_fail(struct engine *e, struct upload_job *j, int err, const char *what)
{
    char msg[1400];
    snprintf(msg, sizeof(msg), "upload of @%s failed: %s; nothing was submitted",
             j->cmd->files[j->file].path, what);
    struct engine_cmd *cmd = j->cmd;
    upload_unlink(e, j);
    submit_fail(e, cmd, err, msg);
}

/* Every file has its URL: the input gets them in place of "@PATH" (input.json gets
 * the shown form: no file contents), then it is submitted. */
static void upload_done(struct engine *e, struct upload_job *j)
{
    struct engine_cmd *cmd = j->cmd;
    upload_unlink(e, j);
    struct atfile_list l = {0};
    const char **urls = calloc(cmd->n_files, sizeof(char *));
    const char **shown = calloc(cmd->n_files, sizeof(char *));
    int rc = atfile_find(cmd->input_json, &l);
    /* atfile_find gives the paths in the order fs_write.c read them. */
    if (rc == 0 && (!urls || !shown || l.n != cmd->n_files))
        rc = -ENOMEM;
    bool inline_any = false;
    for (size_t i = 0; rc == 0 && i < cmd->n_files; i++) {
        urls[i] = cmd->files[i].url;
        shown[i] = cmd->files[i].shown ? cmd->files[i].shown : cmd->files[i].url;
        inline_any |= cmd->files[i].shown != NULL;
    }
    char *sent = NULL, *seen = NULL;
    if (rc == 0)
        rc = atfile_rewrite(cmd->input_json, &l, urls, &sent);
    if (rc == 0 && inline_any)
        rc = atfile_rewrite(cmd->input_json, &l, shown, &seen);
    atfile_list_clear(&l);
    free(urls);
    free(shown);
    if (rc < 0) {
        free(sent);
        free(seen);
        submit_fail(e, cmd, rc, "cannot put the uploaded files' URLs into the input");
        return;
    }
    free(cmd->input_json);
    cmd->input_json = sent;
    cmd->shown_json = seen;
    log_info(e->log, "%s: %zu local file(s) uploaded",
             store_model_at(e->store, cmd->model_idx)->name, cmd->n_files);
    submit_ready(e, cmd);
}

/* Files that go inline need no request: past them, to the next that does (or the end). */
static bool upload_skip_inline(struct engine *e, struct upload_job *j, size_t pi)
{
    const struct provider *p = engine_provider_of(e, pi);
    for (; j->file < j->cmd->n_files; j->file++) {
        struct engine_file *f = &j->cmd->files[j->file];
        enum provider_upload_way way;
        char msg[512];
        int rc = provider_upload_plan(p, f->len, &way, msg, sizeof(msg));
        if (rc < 0) {
            upload_fail(e, j, rc, msg);
            return false;
        }
        if (way != PROVIDER_UPLOAD_DATA_URI)
            return true;
        f->url = provider_upload_data_uri(f->data, f->len, f->content_type);
        if (!f->url || asprintf(&f->shown, "data:%s;base64,... (%zu bytes of @%s, sent inline)",
                                f->content_type ? f->content_type : "application/octet-stream",
                                f->len, f->path) < 0) {
            f->shown = NULL;
            upload_fail(e, j, -ENOMEM, "out of memory");
            return false;
        }
    }
    upload_done(e, j);
    return false;
}

void upload_begin(struct engine *e, struct engine_cmd *cmd)
{
    struct upload_job *j = calloc(1, sizeof(*j));
    if (!j) {
        submit_fail(e, cmd, -ENOMEM, "out of memory");
        return;
    }
    j->cmd = cmd;
    j->next = e->uploads;
    e->uploads = j;
    upload_skip_inline(e, j, engine_provider_index(e, cmd->model_idx));
}

static void upload_start(struct engine *e, struct upload_job *j)
{
    struct engine_file *f = &j->cmd->files[j->file];
    struct provider_upload_file uf = {
        .data = f->data, .len = f->len, .name = f->name, .content_type = f->content_type};
    struct xfer *x = xfer_new(X_UPLOAD, engine_provider_index(e, j->cmd->model_idx));
    struct provider_upload u = {.put_url = j->put_url};
    int rc = !x           ? -ENOMEM
             : j->put_url ? provider_build_upload_put(&u, &uf, &x->req)
                          : provider_build_upload(engine_provider_of(e, x->pi), &uf, &x->req);
    if (rc < 0) {
        xfer_free(x);
        upload_fail(e, j, rc, "cannot build the upload request");
        return;
    }
    x->job = j;
    j->attempts++;
    /* A big file takes a while: the whole submission timeout for each request. */
    if (xfer_start(e, x, (long)(e->cfg.timeout_s * 1000)) < 0) {
        xfer_free(x);
        upload_fail(e, j, -EIO, "cannot start the HTTP request");
        return;
    }
    j->inflight = true;
}

int64_t upload_launch(struct engine *e, int64_t mono_ms, bool stopping, int64_t wait)
{
    for (struct upload_job *j = e->uploads, *next; j; j = next) {
        next = j->next;
        if (stopping && !j->inflight) {
            upload_fail(e, j, -EIO, "genfs is unmounting");
        } else if (!j->inflight && j->not_before_ms <= mono_ms && e->inflight < MAX_INFLIGHT) {
            upload_start(e, j);
        } else if (!j->inflight && j->not_before_ms - mono_ms < wait) {
            wait = j->not_before_ms > mono_ms ? j->not_before_ms - mono_ms : 0;
        }
    }
    return wait;
}

/* Not reached, or a transient refusal: the same request again after a backoff. */
static void upload_retry(struct engine *e, struct upload_job *j, int err, const char *msg,
                         int64_t wait_ms, int64_t mono_ms)
{
    if (j->attempts >= SUBMIT_ATTEMPTS) {
        upload_fail(e, j, err, msg);
        return;
    }
    int64_t b = plan_backoff_ms(e, (uint32_t)j->attempts);
    j->not_before_ms = mono_ms + (wait_ms > b ? wait_ms : b);
    engine_count(e, &e->c.retries);
    log_info(e->log, "upload of @%s not taken (%s); retrying", j->cmd->files[j->file].path, msg);
}

/* The answer of the request under way: its URL (and for initiate_put, where the bytes go). */
static int upload_read(struct engine *e, struct xfer *x, struct upload_job *j, long http,
                       struct provider_error *perr)
{
    struct provider_headers hdr = xfer_provider_headers(x);
    if (j->put_url) {
        int rc = provider_parse_upload_put(http, &hdr, time(NULL), perr);
        if (rc == 0) {
            j->cmd->files[j->file].url = j->file_url;
            j->file_url = NULL;
            free(j->put_url);
            j->put_url = NULL;
        }
        return rc;
    }
    struct provider_upload u = {0};
    int rc = provider_parse_upload(engine_provider_of(e, x->pi), http, x->buf ? x->buf : "", x->len,
                                   &hdr, time(NULL), &u, perr);
    if (rc == 0 && u.put_url) {
        j->put_url = u.put_url;
        j->file_url = u.file_url;
    } else if (rc == 0) {
        j->cmd->files[j->file].url = u.file_url;
        free(u.put_url);
    } else {
        provider_upload_clear(&u);
    }
    return rc;
}

void upload_on_answer(struct engine *e, struct xfer *x, CURLcode cc, long http,
                      struct clock_pair now)
{
    struct upload_job *j = x->job;
    j->inflight = false;
    char msg[1024];
    if (cc != CURLE_OK) {
        engine_count(e, &e->c.transport_errors);
        xfer_transport_msg(e, x, cc, false, msg, sizeof(msg));
        upload_retry(e, j, cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO, msg, -1,
                     now.mono_ms);
        return;
    }
    xfer_note_rate_headers(e, x, now.mono_ms);
    struct provider_error perr = {.retry_after_ms = -1};
    int rc = upload_read(e, x, j, http, &perr);
    xfer_redact(e, perr.msg);
    if (rc < 0 && (http == 429 || perr.retryable)) {
        if (http == 429)
            rate_on_throttle(&e->rate, now.mono_ms, perr.retry_after_ms);
        upload_retry(e, j, rc, perr.msg, perr.retry_after_ms, now.mono_ms);
        return;
    }
    if (rc < 0) {
        upload_fail(e, j, rc, perr.msg);
        return;
    }
    j->attempts = 0;
    j->not_before_ms = 0;
    if (j->put_url)
        return; /* the bytes next, from upload_launch */
    j->file++;
    upload_skip_inline(e, j, x->pi);
}
