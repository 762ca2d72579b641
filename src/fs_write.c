/* Writing: new's input reassembled from its write(2)s and submitted on the one path
 * that ends it (new_end), and the settings files defaults.json and request.json. */
#include "fs_internal.h"

#include "announcer.h"
#include "atfile.h"
#include "cachepath.h"
#include "clock.h"
#include "input.h"
#include "media.h"
#include "opts.h"
#include "writer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The start of /proc/TID/NAME, NUL-terminated; false if it cannot be read. */
static bool proc_read(pid_t tid, const char *name, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/%s", (long)tid, name);
    int fd = tid > 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return true;
}

/* The process of the thread behind a request (FUSE gives thread ids); the
 * thread id itself when /proc cannot say. */
long proc_process(pid_t tid)
{
    char buf[1024];
    long tgid = proc_read(tid, "status", buf, sizeof(buf)) ? writer_tgid(buf) : -1;
    return tgid > 0 ? tgid : (long)tid;
}

/* The signal killing thread tid, or 0. */
static int proc_kill_signal(pid_t tid)
{
    char buf[1024];
    return proc_read(tid, "stat", buf, sizeof(buf)) ? writer_kill_signal(buf) : 0;
}
static void new_input_drop(struct fh *h)
{
    free(h->in);
    h->in = NULL;
    h->in_len = h->in_cap = 0;
}

/* Called with f->lock held when the input written to h ends (a close that ends
 * it, a read, the last close): its error, or 0 with *out the submission to post
 * once the lock is released (NULL: nothing to submit). size: the reader's. */
int new_end(struct fs *f, fuse_req_t req, struct fh *h, enum op_kind kind, size_t size,
            int kill_signal, struct op **out)
{
    *out = NULL;
    if (h->in_err) {
        int err = h->in_err;
        h->in_err = 0;
        return -err;
    }
    if (h->in_len == 0)
        return 0;
    if (kill_signal) {
        log_warn(f->log,
                 "input to new dropped, nothing sent: its writer was killed (signal %d) "
                 "before it closed new, so the input may be incomplete",
                 kill_signal);
        new_input_drop(h);
        return 0;
    }
    char msg[256] = "";
    char *json = NULL, *prompt = NULL;
    size_t lead = 0;
    while (lead < h->in_len && strchr(" \t\r\n", h->in[lead]))
        lead++;
    bool json_input = lead < h->in_len && h->in[lead] == '{';
    int rc = input_parse(h->in, h->in_len, &json, &prompt, msg, sizeof(msg));
    new_input_drop(h);
    if (rc < 0) {
        log_warn(f->log, "write to new refused: %s", msg);
        return rc;
    }
    struct op *o = op_new(f, req, kind);
    if (!o) {
        free(json);
        free(prompt);
        return -ENOMEM;
    }
    o->fh = h;
    o->p.size = size;
    o->json_input = json_input;
    o->cmd.kind = ENGINE_SUBMIT;
    o->cmd.model_idx = h->idx;
    o->cmd.input_json = json;
    o->cmd.prompt = prompt;
    *out = o;
    return 0;
}

/* ---- "@PATH" inputs: local files read with the writer's rights ---- */

/* Opens path as the writer would: an absolute one in its root, a relative one from its
 * working directory (through /proc/PID, PID the writer's process). genfs's own rights are
 * the writer's: only the mount's owner, or root, may write to new (by_owner), so genfs
 * never reads a file for a writer who could not (a root writer on a user's mount gets
 * the owner's rights, fewer). 0 with *fd, or a negative errno. */
static int at_open(long pid, const char *path, int *fd)
{
    char full[PATH_MAX + 64];
    if ((size_t)snprintf(full, sizeof(full), "/proc/%ld/%s/%s", pid,
                         path[0] == '/' ? "root" : "cwd",
                         path[0] == '/' ? path + 1 : path) >= sizeof(full))
        return -ENAMETOOLONG;
    /* O_NONBLOCK: a FIFO named by mistake must not hold this thread. */
    *fd = open(full, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    return *fd >= 0 ? 0 : errno == EPERM ? -EACCES : -errno;
}

/* The whole file at fd, once fstat says it is a regular file the provider can take. */
static int at_read(struct fs *f, uint32_t model_idx, int fd, struct engine_file *ef, char *msg,
                   size_t msglen)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode)) {
        snprintf(msg, msglen, "not a regular file");
        return -EINVAL;
    }
    int rc = engine_upload_check(f->engine, model_idx, (size_t)st.st_size, msg, msglen);
    if (rc < 0)
        return rc;
    ef->data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (!ef->data)
        return -ENOMEM;
    while (ef->len < (size_t)st.st_size) {
        ssize_t n = pread(fd, ef->data + ef->len, (size_t)st.st_size - ef->len, (off_t)ef->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO; /* shrank while read */
        ef->len += (size_t)n;
    }
    return 0;
}

/* One file: read into ef, or the errno with one log line naming the path. */
static int at_load(struct fs *f, uint32_t model_idx, const struct fh *h, const char *path,
                   struct engine_file *ef)
{
    char msg[512] = "";
    int fd;
    int rc = at_open(h->opener, path, &fd);
    if (rc == 0) {
        rc = at_read(f, model_idx, fd, ef, msg, sizeof(msg));
        close(fd);
    }
    if (rc == 0) {
        const char *base = strrchr(path, '/');
        ef->name = strdup(base ? base + 1 : path);
        ef->content_type = atfile_content_type(path);
        return ef->name ? 0 : -ENOMEM;
    }
    if (rc == -ENOENT)
        snprintf(msg, sizeof(msg),
                 "no such file (a relative path is from the writer's working "
                 "directory)");
    else if (rc == -EACCES)
        snprintf(msg, sizeof(msg),
                 "the writer may not read it (genfs reads \"@PATH\" files with "
                 "the writing user's own rights)");
    else if (!msg[0])
        snprintf(msg, sizeof(msg), "%s", strerror(-rc));
    log_warn(f->log, "write to new refused: @%s: %s; nothing was submitted", path, msg);
    return rc;
}

int new_attach_files(struct fs *f, struct op *o, const struct fh *h)
{
    /* A text prompt is sent as written, "@" and all. */
    if (!o->json_input)
        return 0;
    struct atfile_list l = {0};
    int rc = atfile_find(o->cmd.input_json, &l);
    if (rc == -E2BIG)
        log_warn(f->log, "write to new refused: more than %d \"@PATH\" files in one input",
                 ATFILE_MAX);
    if (rc == 0 && l.n == 0 && l.n_escaped > 0) {
        /* Only "@@" escapes: the literal strings go as they are meant. */
        char *plain = NULL;
        if ((rc = atfile_rewrite(o->cmd.input_json, &l, NULL, &plain)) == 0) {
            free(o->cmd.input_json);
            o->cmd.input_json = plain;
        }
    }
    if (rc == 0 && l.n > 0) {
        o->cmd.files = calloc(l.n, sizeof(*o->cmd.files));
        rc = o->cmd.files ? 0 : -ENOMEM;
        for (size_t i = 0; rc == 0 && i < l.n; i++) {
            o->cmd.n_files = i + 1;
            o->cmd.files[i].path = strdup(l.paths[i]);
            rc = o->cmd.files[i].path
                     ? at_load(f, o->cmd.model_idx, h, l.paths[i], &o->cmd.files[i])
                     : -ENOMEM;
        }
    }
    atfile_list_clear(&l);
    return rc;
}

/* defaults.json / request.json: what is written between open and close
 * replaces the file, at close; an empty file clears it. */
static void model_json_write(fuse_req_t req, struct fh *h, const char *buf, size_t size, off_t off)
{
    struct fs *f = req_fs(req);
    pthread_mutex_lock(&f->lock);
    int rc = 0;
    if (off < 0 || (size_t)off + size > MODEL_JSON_MAX) {
        rc = -EFBIG;
    } else {
        size_t end = (size_t)off + size;
        char *grown = end > h->edit_len ? realloc(h->edit, end) : h->edit;
        if (!grown) {
            rc = -ENOMEM;
        } else {
            if ((size_t)off > h->edit_len)
                memset(grown + h->edit_len, ' ', (size_t)off - h->edit_len);
            memcpy(grown + off, buf, size);
            h->edit = grown;
            h->edit_len = end > h->edit_len ? end : h->edit_len;
            h->edit_dirty = true;
            /* Shells ignore errors at close: say at the write what is already wrong. */
            size_t lead = 0;
            while (lead < h->edit_len && strchr(" \t\r\n", h->edit[lead]))
                lead++;
            if (lead < h->edit_len && h->edit[lead] != '{') {
                rc = -EINVAL;
                h->edit_dirty = false;
                h->edit_len = 0;
            }
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (rc == -EINVAL)
        log_warn(f->log,
                 "write to %s refused: not a JSON object; write an object such as "
                 "{\"mode\": \"pro-text-to-image\"}, or nothing to clear it",
                 h->edit_kind == MK_DEFAULTS ? "defaults.json" : "request.json");
    if (rc == -EFBIG)
        log_warn(f->log, "write to %s refused: over %d bytes",
                 h->edit_kind == MK_DEFAULTS ? "defaults.json" : "request.json", MODEL_JSON_MAX);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_write(req, size);
}

static void model_json_flush(fuse_req_t req, struct fh *h)
{
    struct fs *f = req_fs(req);
    const char *file = h->edit_kind == MK_DEFAULTS ? "defaults.json" : "request.json";
    pthread_mutex_lock(&f->lock);
    bool dirty = h->edit_dirty;
    h->edit_dirty = false;
    char *text = dirty && h->edit ? strndup(h->edit, h->edit_len) : NULL;
    pthread_mutex_unlock(&f->lock);
    if (!dirty) {
        fuse_reply_err(req, 0); /* a dup'ed fd closing, or nothing written */
        return;
    }
    char *json = NULL;
    size_t skip = text ? strspn(text, " \t\r\n") : 0;
    if (text && text[skip]) {
        cJSON *obj = cJSON_Parse(text);
        if (cJSON_IsObject(obj))
            json = cJSON_PrintUnformatted(obj);
        cJSON_Delete(obj);
        if (!json) {
            log_warn(f->log,
                     "write to %s refused: not a JSON object; write an object such as "
                     "{\"mode\": \"pro-text-to-image\"}, or nothing to clear it",
                     file);
            free(text);
            fuse_reply_err(req, EINVAL);
            return;
        }
    }
    free(text);
    struct op *o = op_new(f, req, OP_MODEL_SET);
    if (!o || !(o->cmd.name = strdup(h->edit_kind == MK_DEFAULTS ? "defaults" : "request"))) {
        if (o)
            op_free(o);
        free(json);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    o->cmd.kind = ENGINE_MODEL_SET;
    o->cmd.model_idx = h->idx;
    o->cmd.input_json = json;
    op_post(f, o);
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi)
{
    (void)ino;
    (void)off; /* new is not seekable: pieces come in order, each after the last */
    struct fs *f = req_fs(req);
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    if (h && h->kind == FH_ANNOUNCE) {
        fs_announcer_write(req, size);
        return;
    }
    if (h && h->kind == FH_MODEL_JSON) {
        model_json_write(req, h, buf, size, off);
        return;
    }
    if (h && h->kind == FH_CTL) {
        ctl_write(req, h, buf, size);
        return;
    }
    if (!h || h->kind != FH_NEW) {
        fuse_reply_err(req, EACCES);
        return;
    }
    /* Collected until the input ends; only what already makes it invalid is refused here. */
    char msg[256] = "";
    pthread_mutex_lock(&f->lock);
    int rc = h->in_err ? -h->in_err : input_check_piece(buf, size, h->in_len, msg, sizeof(msg));
    if (rc == 0 && h->in_len + size > h->in_cap) {
        size_t cap = h->in_cap ? h->in_cap : 4096;
        while (cap < h->in_len + size)
            cap *= 2;
        char *in = realloc(h->in, cap < INPUT_MAX_BYTES ? cap : INPUT_MAX_BYTES);
        if (in) {
            h->in = in;
            h->in_cap = cap < INPUT_MAX_BYTES ? cap : INPUT_MAX_BYTES;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc == 0) {
        memcpy(h->in + h->in_len, buf, size);
        h->in_len += size;
    } else if (!h->in_err && rc != -ENOMEM) {
        log_warn(f->log, "write to new refused: %s", msg);
        h->in_err = -rc;
        new_input_drop(h);
    }
    pthread_mutex_unlock(&f->lock);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_write(req, size);
}

/* Every close(2) of a copy of the descriptor (dup, fork, a shell's redirection)
 * comes here; release comes after the last one, too late to report anything. */
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct fs *f = req_fs(req);
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    if (h && h->kind == FH_MODEL_JSON) {
        model_json_flush(req, h);
        return;
    }
    if (!h || h->kind != FH_NEW) {
        fuse_reply_err(req, 0);
        return;
    }
    pthread_mutex_lock(&f->lock);
    bool has_input = h->in_len > 0 || h->in_err;
    pthread_mutex_unlock(&f->lock);
    if (!has_input) {
        fuse_reply_err(req, 0);
        return;
    }
    pid_t tid = fuse_req_ctx(req)->pid;
    bool by_opener = proc_process(tid) == h->opener;
    int sig = by_opener ? proc_kill_signal(tid) : 0;
    enum writer_close what = writer_on_close(false, by_opener, h->read_write, sig);
    pthread_mutex_lock(&f->lock);
    struct op *o = NULL;
    int rc = 0;
    if (what != WRITER_KEEP)
        rc = new_end(f, req, h, OP_SUBMIT_CLOSE, 0, what == WRITER_DROP ? sig : 0, &o);
    else if (h->in_err)
        rc = -h->in_err; /* the input goes on, and stays refused */
    pthread_mutex_unlock(&f->lock);
    if (o && (rc = new_attach_files(f, o, h)) < 0)
        op_free(o);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else if (o)
        op_post(f, o);
    else
        fuse_reply_err(req, 0);
}

/* ---- ctl: each write(2) is one command (Plan 9's ctl files) ---- */

#define CTL_COMMANDS "cancel (at the provider), poll (ask the provider now)"

/* "MODEL/ID" of task idx for messages; false when it is gone. */
static bool ctl_task_path(struct fs *f, uint32_t idx, char *out, size_t len, uint32_t *model_idx,
                          bool *can_cancel)
{
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    const struct model *m = t ? store_model_at(f->store, t->model_idx) : NULL;
    if (m) {
        snprintf(out, len, "%s/%s", m->name, t->id);
        *model_idx = t->model_idx;
        *can_cancel = engine_can_cancel(f->engine, t->model_idx);
    }
    store_unlock(f->store);
    return m != NULL;
}

/* poll is answered at once (the engine polls as soon as the rate allows); cancel once the
 * provider took it and genfs saw the task end (or gave it a few seconds: engine_ctl.c). */
void ctl_write(fuse_req_t req, struct fh *h, const char *buf, size_t size)
{
    struct fs *f = req_fs(req);
    char word[64];
    size_t b = 0, e = size;
    while (b < e && strchr(" \t\r\n", buf[b]))
        b++;
    while (e > b && strchr(" \t\r\n", buf[e - 1]))
        e--;
    snprintf(word, sizeof(word), "%.*s", (int)(e - b), buf + b);
    char path[512];
    bool can_cancel = false;
    uint32_t model_idx = 0;
    if (!ctl_task_path(f, h->idx, path, sizeof(path), &model_idx, &can_cancel)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (strcmp(word, "poll") == 0) {
        engine_poll_now(f->engine, h->idx);
        fuse_reply_write(req, size);
        return;
    }
    if (strcmp(word, "cancel") != 0) {
        log_warn(f->log, "%s/ctl: unknown command \"%.40s\": the commands are " CTL_COMMANDS, path,
                 word);
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (!can_cancel) {
        log_warn(f->log,
                 "%s/ctl: cancel refused: provider %s has no cancel request; the task runs on "
                 "(rmdir only forgets it here)",
                 path, engine_provider_name(f->engine, model_idx));
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    struct op *o = op_new(f, req, OP_CTL);
    if (!o) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    o->p.size = size;
    o->cmd.kind = ENGINE_CANCEL;
    o->cmd.task_idx = h->idx;
    op_post(f, o);
}
