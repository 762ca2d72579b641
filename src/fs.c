#include "fs.h"

#include "cachepath.h"
#include "clock.h"
#include "input.h"
#include "media.h"
#include "notify.h"
#include "opts.h"
#include "writer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Inode numbers are derived, never stored (see docs/design.md). */
#define INO_ROOT 1
#define INO_README 2
#define INO_EVENTS 3
#define INO_STATS 4
#define INO_LOG 5
#define MODEL_BASE (UINT64_C(1) << 32)
#define TASK_BASE (UINT64_C(1) << 40)
#define TASK_SHIFT 12

/* MK_PROVIDER: .provider, which provider the model belongs to; MK_DEFAULTS and
 * MK_REQUEST: defaults.json and request.json, the model's settings. */
enum model_kind {
    MK_DIR = 0,
    MK_NEW = 1,
    MK_LATEST = 2,
    MK_PROVIDER = 3,
    MK_DEFAULTS = 4,
    MK_REQUEST = 5
};
/* Each settings file holds at most this much. */
#define MODEL_JSON_MAX (64 * 1024)
enum task_kind {
    TK_DIR = 0,
    TK_STATE,
    TK_RESULT,
    TK_ERROR,
    TK_PROMPT,
    TK_INPUT,
    TK_STATUS,
    TK_COUNT,      /* the plain files above */
    TK_FILES = 7,  /* files/ */
    TK_FILE0 = 16, /* files/<n>: TK_FILE0 + n */
};
#define MAX_FILES ((1u << TASK_SHIFT) - TK_FILE0)

static const char *const task_file_names[TK_COUNT] = {NULL,     "state",      "result",     "error",
                                                      "prompt", "input.json", "status.json"};

#define ENTRY_TIMEOUT 60.0
#define ATTR_TIMEOUT 60.0
#define EVENT_RING 8192
#define NEW_MAX_WRITE INPUT_MAX_BYTES

enum node_type { N_NONE, N_ROOT, N_FIXED, N_MODEL, N_TASK };

struct node {
    enum node_type type;
    fuse_ino_t fixed;
    uint32_t idx; /* model or task index */
    int kind;
};

static fuse_ino_t model_ino(uint32_t idx, enum model_kind k)
{
    return MODEL_BASE + ((fuse_ino_t)idx << 4) + k;
}

static fuse_ino_t task_ino(uint32_t idx, enum task_kind k)
{
    return TASK_BASE + ((fuse_ino_t)idx << TASK_SHIFT) + k;
}

static struct node node_of(fuse_ino_t ino)
{
    struct node n = {0};
    if (ino == INO_ROOT) {
        n.type = N_ROOT;
    } else if (ino >= TASK_BASE) {
        n.type = N_TASK;
        n.idx = (uint32_t)((ino - TASK_BASE) >> TASK_SHIFT);
        n.kind = (int)((ino - TASK_BASE) & ((1u << TASK_SHIFT) - 1));
        if (n.kind >= TK_COUNT && n.kind != TK_FILES && n.kind < TK_FILE0)
            n.type = N_NONE;
    } else if (ino >= MODEL_BASE) {
        n.type = N_MODEL;
        n.idx = (uint32_t)((ino - MODEL_BASE) >> 4);
        n.kind = (int)((ino - MODEL_BASE) & 15);
        if (n.kind > MK_REQUEST)
            n.type = N_NONE;
    } else if (ino >= INO_README && ino <= INO_LOG) {
        n.type = N_FIXED;
        n.fixed = ino;
    }
    return n;
}

static const struct {
    const char *name;
    fuse_ino_t ino;
} fixed_files[] = {
    {"README", INO_README},
    {"events", INO_EVENTS},
    {"stats", INO_STATS},
    {"log", INO_LOG},
};

/* ---- open files and deferred requests ---- */

/* FH_ANNOUNCE: the notifier's own open of a file, which changes nothing. */
enum fh_kind {
    FH_PLAIN,
    FH_NEW,
    FH_STATE,
    FH_RESULT,
    FH_EVENTS,
    FH_SNAPSHOT,
    FH_MEDIA,
    FH_ANNOUNCE,
    FH_MODEL_JSON /* defaults.json or request.json opened for writing */
};

/* A snapshot outlives the handle while a read still answers from it: libfuse
 * hands the bytes to writev(2), and RELEASE (or a parallel pread at offset 0
 * that takes a new snapshot) may come on another thread meanwhile. */
struct snap {
    unsigned refs;
    size_t len;
    char *text;
};

struct fh {
    enum fh_kind kind;
    uint32_t idx;
    /* state: the word this fd last read, for poll(2) */
    enum task_state seen_state;
    bool read_once;
    struct fuse_pollhandle *ph;
    struct fh *poll_next, *poll_prev; /* in fs->pollers while ph is set */
    /* events */
    uint64_t cursor;
    size_t line_off; /* bytes of the cursor's line already read */
    /* files/<n>: the cache file once whole */
    uint32_t file_n;
    int fd;
    /* stats/log/.provider snapshot, swapped under fs->lock */
    struct snap *snap;
    /* new: the input written since the last submission, however many write(2)s
     * brought it; the close that ends it (writer_on_close) or a read submits it */
    char *in;
    size_t in_len, in_cap;
    int in_err;      /* a write made the input invalid (EFBIG, EINVAL): the rest is
                      * refused too, and the close or read that ends it says so again */
    long opener;     /* the process that opened the descriptor */
    bool read_write; /* opened O_RDWR: the read of the task id submits */
    char *task_id;
    size_t id_pos;
    /* defaults.json / request.json being written: the text so far */
    char *edit;
    size_t edit_len;
    bool edit_dirty; /* written since the last flush */
    enum model_kind edit_kind;
};

/* P_ATTR: a stat of a file under files/ that is not whole yet. */
enum pend_kind { P_RESULT, P_EVENTS, P_OP, P_FILE, P_ATTR };

struct pending {
    uint64_t id;
    enum pend_kind kind;
    fuse_req_t req;
    uint32_t idx;
    uint32_t file_n;
    size_t size;
    off_t off;
    struct fh *fh;
    struct pending *next, *prev;
};

/* Submissions from new: OP_SUBMIT_CLOSE answers the close(2) (FLUSH) that ended the input,
 * OP_READ_ID the read of the id, OP_SUBMIT_LAST answers nobody (the last close, RELEASE);
 * OP_MODEL_SET answers the close of a settings file. */
enum op_kind {
    OP_SUBMIT_CLOSE,
    OP_READ_ID,
    OP_SUBMIT_LAST,
    OP_MKDIR_MODEL,
    OP_MKDIR_TASK,
    OP_RMDIR,
    OP_MODEL_SET
};

/* A request answered once the engine has done a command. */
struct op {
    struct engine_cmd cmd;
    struct fs *fs;
    enum op_kind kind;
    struct pending p;
    struct fh *fh;
};

struct event_line {
    uint64_t seq;
    char text[240];
};

#define HIDDEN_SLOTS 1024

struct fs {
    char *cache_dir;
    struct notify *notify;
    pid_t notify_pid;
    /* Task dirs and files/ mode: 0555, or 0755 when the kernel checks modes
     * (default_permissions) and would refuse the announcer's mkdir and create
     * there; users' own mkdir and create are still refused by genfs. */
    mode_t task_dir_mode;
    /* inodes not yet announced: absent to the notifier's own lookups, so its
     * mkdir/create/symlink reaches us and raises the event (under lock) */
    fuse_ino_t *hidden;
    size_t n_hidden, cap_hidden;
    struct store *store;
    struct engine *engine;
    struct log *log;
    struct fuse_session *se;
    pthread_mutex_t lock; /* pending, pollers, events, fh fields below */
    struct pending *pending;
    uint64_t next_pending_id;
    struct fh *pollers;
    struct event_line *events;
    uint64_t event_seq; /* next sequence number */
    int64_t event_mtime_ms;
    bool shutting_down;
    int64_t start_ms;
};

static struct fs *req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* With allow_other, other users may look but not submit, adopt or forget:
 * tasks are billed to the owner's key. */
static bool by_owner(fuse_req_t req)
{
    uid_t uid = fuse_req_ctx(req)->uid;
    return uid == getuid() || uid == 0;
}

static bool from_notifier(struct fs *f, fuse_req_t req)
{
    return f->notify_pid != 0 && fuse_req_ctx(req)->pid == f->notify_pid;
}

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
static long proc_process(pid_t tid)
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

static void hidden_add(struct fs *f, fuse_ino_t ino)
{
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_hidden; i++)
        if (f->hidden[i] == ino)
            goto out;
    if (f->n_hidden == f->cap_hidden) {
        size_t cap = f->cap_hidden ? f->cap_hidden * 2 : 64;
        fuse_ino_t *h = realloc(f->hidden, cap * sizeof(*h));
        if (!h)
            goto out;
        f->hidden = h;
        f->cap_hidden = cap;
    }
    f->hidden[f->n_hidden++] = ino;
out:
    pthread_mutex_unlock(&f->lock);
}

/* True if ino was hidden (and is no longer). */
static bool hidden_take(struct fs *f, fuse_ino_t ino)
{
    bool found = false;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_hidden; i++) {
        if (f->hidden[i] == ino) {
            f->hidden[i] = f->hidden[--f->n_hidden];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return found;
}

static bool hidden_has(struct fs *f, fuse_ino_t ino)
{
    bool found = false;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_hidden && !found; i++)
        found = f->hidden[i] == ino;
    pthread_mutex_unlock(&f->lock);
    return found;
}

static void pending_link(struct fs *f, struct pending *p)
{
    p->id = ++f->next_pending_id;
    p->prev = NULL;
    p->next = f->pending;
    if (f->pending)
        f->pending->prev = p;
    f->pending = p;
}

static void pending_unlink(struct fs *f, struct pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        f->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
}

static struct pending *pending_by_id(struct fs *f, uint64_t id)
{
    for (struct pending *p = f->pending; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static struct op *op_of(struct pending *p)
{
    return (struct op *)((char *)p - offsetof(struct op, p));
}

/* Interrupts find their request by id, never by a pointer that may be gone. */
static void on_interrupt(fuse_req_t req, void *data)
{
    struct fs *f = req_fs(req);
    uint64_t id = (uint64_t)(uintptr_t)data;
    pthread_mutex_lock(&f->lock);
    struct pending *p = pending_by_id(f, id);
    if (p) {
        pending_unlink(f, p);
        if (p->kind == P_OP) {
            /* The engine still holds the op and frees it when done; the fd may
             * be closed before that, so the op lets go of it now. A submission
             * still lands in the store: nothing accepted is lost. */
            struct op *o = op_of(p);
            o->p.req = NULL;
            o->fh = NULL;
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (p) {
        fuse_reply_err(req, EINTR);
        if (p->kind != P_OP)
            free(p);
    }
}

/* A pending entry for a read that must wait, or NULL once req is answered:
 * EAGAIN for O_NONBLOCK readers, ENOMEM. */
static struct pending *pending_for_read(fuse_req_t req, const struct fuse_file_info *fi)
{
    if (fi->flags & O_NONBLOCK) {
        fuse_reply_err(req, EAGAIN);
        return NULL;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        fuse_reply_err(req, ENOMEM);
    return p;
}

/* Parks a read until the engine can answer it, unless ready() (checked again
 * under f->lock, which the observers also take before waking readers) says
 * it can be answered now: then it returns false and the caller answers. */
static bool park(struct fs *f, struct pending *p, bool (*waiting)(struct fs *, struct pending *))
{
    pthread_mutex_lock(&f->lock);
    if (f->shutting_down || !waiting(f, p)) {
        pthread_mutex_unlock(&f->lock);
        return false;
    }
    pending_link(f, p);
    uint64_t id = p->id;
    pthread_mutex_unlock(&f->lock);
    fuse_req_interrupt_func(p->req, on_interrupt, (void *)(uintptr_t)id);
    return true;
}

static void defer(struct fs *f, struct pending *p)
{
    pthread_mutex_lock(&f->lock);
    pending_link(f, p);
    uint64_t id = p->id;
    pthread_mutex_unlock(&f->lock);
    fuse_req_interrupt_func(p->req, on_interrupt, (void *)(uintptr_t)id);
}

/* ---- content of files ---- */

static const char readme_text[] =
    "genfs: hosted AI generation as files\n"
    "\n"
    "  echo 'a red fox in snow' > MODEL/new    submit a task (returns once accepted)\n"
    "  cat MODEL/latest/result                 wait for it, print the result URLs\n"
    "  cat MODEL/ID/state                      waiting|queuing|generating|success|failed\n"
    "  cat MODEL/ID/error                      \"code: message\" once failed\n"
    "  cat events                              one line per state change, from now on\n"
    "  cat stats                               engine figures (JSON)\n"
    "  cat log                                 the last 200 log lines\n"
    "  mkdir MODEL                             add a model directory\n"
    "  mkdir MODEL/ID                          adopt a task submitted elsewhere\n"
    "  rmdir MODEL/ID                          forget a task\n"
    "\n"
    "A JSON object written to new is sent as the whole input. To get the id on the\n"
    "same descriptor: exec 3<>MODEL/new; echo prompt >&3; read id <&3\n"
    "Reading result blocks until the task ends (Ctrl-C works); it fails with EIO\n"
    "when the task failed and ETIMEDOUT when it is overdue (genfs keeps polling).\n";

/* Text of a task file, malloc'd. Caller holds the store read lock. */
static char *task_file_text(const struct task *t, enum task_kind k, size_t *len)
{
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    if (!m)
        return NULL;
    switch (k) {
    case TK_STATE:
        fprintf(m, "%s\n", task_state_name(t->state));
        break;
    case TK_RESULT:
        /* An inline output (data: URI, text) has no URL worth showing: its file's path. */
        if (t->state == TASK_SUCCESS)
            for (size_t i = 0; i < t->n_urls; i++)
                fprintf(m, media_is_data_uri(t->urls[i]) ? "files/%s\n" : "%s\n",
                        media_is_data_uri(t->urls[i]) ? t->files[i].name : t->urls[i]);
        break;
    case TK_ERROR:
        if (t->state == TASK_FAILED)
            fprintf(m, "%s: %s\n", t->fail_code ? t->fail_code : "unknown",
                    t->fail_msg ? t->fail_msg : "");
        break;
    case TK_PROMPT:
        if (t->prompt && *t->prompt)
            fprintf(m, "%s\n", t->prompt);
        break;
    case TK_INPUT:
        if (t->input_json)
            fprintf(m, "%s\n", t->input_json);
        break;
    case TK_STATUS:
        if (t->status_json)
            fprintf(m, "%s\n", t->status_json);
        break;
    default:
        break;
    }
    fclose(m);
    *len = n;
    return out;
}

static int64_t task_file_mtime(const struct task *t, enum task_kind k)
{
    switch (k) {
    case TK_STATE:
    case TK_DIR:
        return t->change_ms;
    case TK_RESULT:
    case TK_ERROR:
        return task_state_final(t->state) ? t->change_ms : t->submit_ms;
    case TK_STATUS:
        return t->status_ms;
    default:
        return t->submit_ms;
    }
}

static void set_time(struct stat *st, int64_t ms)
{
    st->st_mtim.tv_sec = ms / 1000;
    st->st_mtim.tv_nsec = (ms % 1000) * 1000000;
    st->st_ctim = st->st_mtim;
    st->st_atim = st->st_mtim;
}

/* files/<n> is listed, and its stat answered at once, when it is whole, or known
 * to be from an earlier whole download (since evicted from the cache, or not yet
 * found there after a remount): its size is then the real one. Before that a
 * lookup by name finds it, but a stat waits (SPEC 3: listed once whole). */
static bool file_listed(const struct task_file *tf)
{
    return tf->state == FILE_DONE || (tf->size >= 0 && tf->state != FILE_EXPIRED);
}

/* Fills st for ino; 0 or -ENOENT. Takes the store lock itself. */
static int fs_stat(struct fs *f, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_blksize = 4096;
    struct node n = node_of(ino);
    int rc = 0;
    store_rdlock(f->store);
    switch (n.type) {
    case N_ROOT: {
        st->st_mode = S_IFDIR | 0755;
        uint32_t models = 0;
        for (uint32_t i = 0; i < store_model_slots(f->store); i++) {
            const struct model *m = store_model_at(f->store, i);
            models += m && m->parent == STORE_NONE;
        }
        st->st_nlink = 2 + models;
        set_time(st, f->start_ms);
        break;
    }
    case N_FIXED:
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        if (n.fixed == INO_README) {
            st->st_size = sizeof(readme_text) - 1;
            set_time(st, f->start_ms);
        } else if (n.fixed == INO_EVENTS) {
            /* event_mtime_ms is read racily on purpose: a torn mtime is harmless. */
            set_time(st, __atomic_load_n(&f->event_mtime_ms, __ATOMIC_RELAXED));
        } else if (n.fixed == INO_LOG) {
            size_t len = 0;
            int64_t mt = 0;
            free(log_ring_text(f->log, &len, &mt));
            st->st_size = (off_t)len;
            set_time(st, mt);
        } else {
            char *stats = engine_stats_json(f->engine);
            st->st_size = stats ? (off_t)strlen(stats) : 0;
            free(stats);
            set_time(st, clock_now_ms());
        }
        break;
    case N_MODEL: {
        const struct model *m = store_model_at(f->store, n.idx);
        if (!m) {
            rc = -ENOENT;
            break;
        }
        set_time(st, m->mtime_ms);
        if (n.kind == MK_DIR) {
            st->st_mode = S_IFDIR | 0755;
            st->st_nlink = 2 + (m->ns ? m->n_children : m->n_tasks);
        } else if (m->ns) {
            rc = -ENOENT;
        } else if (n.kind == MK_PROVIDER) {
            st->st_mode = S_IFREG | 0444;
            st->st_nlink = 1;
            st->st_size = (off_t)strlen(engine_provider_name(f->engine, n.idx)) + 1;
        } else if (n.kind == MK_DEFAULTS || n.kind == MK_REQUEST) {
            const char *json = n.kind == MK_DEFAULTS ? m->defaults : m->request;
            st->st_mode = S_IFREG | 0644;
            st->st_nlink = 1;
            st->st_size = (off_t)strlen(json ? json : "{}") + 1;
        } else if (n.kind == MK_NEW) {
            st->st_mode = S_IFREG | 0666;
            st->st_nlink = 1;
            /* Buffered writers (stdio, Python, cp, cat) size their writes by it: an
             * input up to the limit goes out in one write(2). */
            st->st_blksize = INPUT_MAX_BYTES;
        } else {
            const struct task *t =
                m->latest != STORE_NONE ? store_task_at(f->store, m->latest) : NULL;
            if (!t) {
                rc = -ENOENT;
                break;
            }
            st->st_mode = S_IFLNK | 0777;
            st->st_nlink = 1;
            st->st_size = (off_t)strlen(t->id);
            set_time(st, t->submit_ms);
        }
        break;
    }
    case N_TASK: {
        const struct task *t = store_task_at(f->store, n.idx);
        if (!t) {
            rc = -ENOENT;
            break;
        }
        set_time(st, task_file_mtime(t, (enum task_kind)n.kind));
        if (n.kind == TK_DIR) {
            st->st_mode = S_IFDIR | f->task_dir_mode;
            st->st_nlink = t->files ? 3 : 2;
        } else if (n.kind == TK_FILES) {
            if (!t->files) {
                rc = -ENOENT;
                break;
            }
            set_time(st, t->change_ms);
            st->st_mode = S_IFDIR | f->task_dir_mode;
            st->st_nlink = 2;
        } else if (n.kind >= TK_FILE0) {
            uint32_t fn = (uint32_t)(n.kind - TK_FILE0);
            if (!t->files || fn >= t->n_urls || t->files[fn].state == FILE_EXPIRED) {
                rc = -ENOENT;
                break;
            }
            set_time(st, t->change_ms);
            st->st_mode = S_IFREG | 0444;
            st->st_nlink = 1;
            st->st_size = t->files[fn].size > 0 ? t->files[fn].size : 0;
        } else {
            st->st_mode = S_IFREG | 0444;
            st->st_nlink = 1;
            size_t len = 0;
            free(task_file_text(t, (enum task_kind)n.kind, &len));
            st->st_size = (off_t)len;
        }
        break;
    }
    default:
        rc = -ENOENT;
    }
    store_unlock(f->store);
    st->st_blocks = (st->st_size + 511) / 512;
    return rc;
}

static double attr_timeout_for(struct fs *f, fuse_ino_t ino)
{
    /* stats and log change all the time without a notification. */
    if (ino == INO_STATS || ino == INO_LOG || ino == INO_EVENTS)
        return 0.0;
    /* A result file not yet whole: its size will change, and a reader that
     * opens it just as it becomes whole must not see the old size. */
    struct node n = node_of(ino);
    if (n.type == N_TASK && n.kind >= TK_FILE0) {
        bool whole = false;
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, n.idx);
        uint32_t fn = (uint32_t)(n.kind - TK_FILE0);
        if (t && t->files && fn < t->n_urls)
            whole = t->files[fn].state == FILE_DONE;
        store_unlock(f->store);
        return whole ? ATTR_TIMEOUT : 0.0;
    }
    return ATTR_TIMEOUT;
}

static void reply_entry(fuse_req_t req, struct fs *f, fuse_ino_t ino)
{
    struct fuse_entry_param e = {0};
    int rc = fs_stat(f, ino, &e.attr);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    e.ino = ino;
    e.generation = 1;
    e.attr_timeout = attr_timeout_for(f, ino);
    e.entry_timeout = ENTRY_TIMEOUT;
    fuse_reply_entry(req, &e);
}

/* ---- lookup, getattr, readdir ---- */

static fuse_ino_t child_ino(struct fs *f, fuse_ino_t parent, const char *name)
{
    struct node n = node_of(parent);
    fuse_ino_t ino = 0;
    store_rdlock(f->store);
    if (n.type == N_ROOT) {
        for (size_t i = 0; i < sizeof(fixed_files) / sizeof(fixed_files[0]); i++)
            if (strcmp(name, fixed_files[i].name) == 0)
                ino = fixed_files[i].ino;
        const struct model *m = ino ? NULL : store_model_child(f->store, STORE_NONE, name);
        if (m)
            ino = model_ino(m->idx, MK_DIR);
    } else if (n.type == N_MODEL && n.kind == MK_DIR && store_model_at(f->store, n.idx)) {
        const struct model *m = store_model_at(f->store, n.idx);
        if (m->ns) {
            const struct model *c = store_model_child(f->store, m->idx, name);
            if (c)
                ino = model_ino(c->idx, MK_DIR);
        } else if (strcmp(name, "new") == 0) {
            ino = model_ino(n.idx, MK_NEW);
        } else if (strcmp(name, ".provider") == 0) {
            ino = model_ino(n.idx, MK_PROVIDER);
        } else if (strcmp(name, "defaults.json") == 0) {
            ino = model_ino(n.idx, MK_DEFAULTS);
        } else if (strcmp(name, "request.json") == 0) {
            ino = model_ino(n.idx, MK_REQUEST);
        } else if (strcmp(name, "latest") == 0) {
            if (m->latest != STORE_NONE)
                ino = model_ino(n.idx, MK_LATEST);
        } else {
            const struct task *t = store_task_find(f->store, n.idx, name);
            if (t)
                ino = task_ino(t->idx, TK_DIR);
        }
    } else if (n.type == N_TASK && n.kind == TK_DIR && store_task_at(f->store, n.idx)) {
        for (int k = 1; k < TK_COUNT; k++)
            if (strcmp(name, task_file_names[k]) == 0)
                ino = task_ino(n.idx, (enum task_kind)k);
        if (strcmp(name, "files") == 0 && store_task_at(f->store, n.idx)->files)
            ino = task_ino(n.idx, TK_FILES);
    } else if (n.type == N_TASK && n.kind == TK_FILES && store_task_at(f->store, n.idx)) {
        const struct task *t = store_task_at(f->store, n.idx);
        /* Found by name before it is whole (a stat then waits), so that cp files/0.png
         * right after cat result gets the file; an expired one is gone. */
        for (uint32_t i = 0; t->files && i < t->n_urls && i < MAX_FILES; i++)
            if (strcmp(name, t->files[i].name) == 0 && t->files[i].state != FILE_EXPIRED)
                ino = task_ino(n.idx, (enum task_kind)(TK_FILE0 + i));
    }
    store_unlock(f->store);
    return ino;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *f = req_fs(req);
    fuse_ino_t ino = child_ino(f, parent, name);
    /* Not yet announced: absent to the announcer, so its mkdir or create
     * reaches us (and the kernel raises the event). */
    if (!ino || (from_notifier(f, req) && hidden_has(f, ino))) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    reply_entry(req, f, ino);
}

static bool file_attr_answered(struct fs *f, fuse_req_t req, fuse_ino_t ino);

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct fs *f = req_fs(req);
    if (file_attr_answered(f, req, ino))
        return;
    struct stat st;
    int rc = fs_stat(f, ino, &st);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, attr_timeout_for(f, ino));
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    (void)attr;
    (void)fi;
    struct node n = node_of(ino);
    if (from_notifier(req_fs(req), req)) {
        op_getattr(req, ino, NULL); /* an ATTRIB announcement */
        return;
    }
    /* Truncating new is what "> new" does first: allowed, it holds nothing; a
     * settings file is replaced as a whole at close. */
    if (n.type == N_MODEL && (n.kind == MK_NEW || n.kind == MK_DEFAULTS || n.kind == MK_REQUEST) &&
        (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                    FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) ==
            0) {
        op_getattr(req, ino, NULL);
        return;
    }
    fuse_reply_err(req, (to_set & FUSE_SET_ATTR_SIZE) ? EACCES : EPERM);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct fs *f = req_fs(req);
    struct node n = node_of(ino);
    char target[256] = "";
    if (n.type == N_MODEL && n.kind == MK_LATEST) {
        store_rdlock(f->store);
        const struct model *m = store_model_at(f->store, n.idx);
        const struct task *t =
            m && m->latest != STORE_NONE ? store_task_at(f->store, m->latest) : NULL;
        if (t)
            snprintf(target, sizeof(target), "%s", t->id);
        store_unlock(f->store);
    }
    if (!target[0])
        fuse_reply_err(req, ENOENT);
    else
        fuse_reply_readlink(req, target);
}

struct dirbuf {
    fuse_req_t req;
    char *buf;
    size_t size, used;
    bool plus;
    struct fs *fs;
};

/* Adds one entry; false when the buffer is full. */
static bool dir_add(struct dirbuf *d, const char *name, fuse_ino_t ino, mode_t mode, off_t next)
{
    size_t room = d->size - d->used;
    size_t n;
    if (d->plus) {
        struct fuse_entry_param e = {0};
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            if (fs_stat(d->fs, ino, &e.attr) < 0)
                return true; /* vanished meanwhile: skip it */
            e.ino = ino;
            e.generation = 1;
            e.attr_timeout = attr_timeout_for(d->fs, ino);
            e.entry_timeout = ENTRY_TIMEOUT;
        } else {
            e.attr.st_ino = ino;
            e.attr.st_mode = mode;
        }
        n = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name, &e, next);
    } else {
        struct stat st = {.st_ino = ino, .st_mode = mode};
        n = fuse_add_direntry(d->req, d->buf + d->used, room, name, &st, next);
    }
    if (n > room)
        return false;
    d->used += n;
    return true;
}

/* Directory offsets: 1 ".", 2 "..", then fixed entries, then store slots
 * (slot index + base), so a listing resumes correctly while tasks come and go. */
#define DOFF_SLOTS 16

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
    struct fs *f = req_fs(req);
    struct node n = node_of(ino);
    struct dirbuf d = {.req = req, .size = size, .plus = plus, .fs = f};
    d.buf = malloc(size);
    if (!d.buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    /* Names are copied out under the lock; stat of each takes it again. */
    struct ent {
        char name[256];
        fuse_ino_t ino;
        mode_t mode;
        off_t next;
    };
    size_t cap = 64, cnt = 0;
    struct ent *ents = malloc(cap * sizeof(*ents));
    bool ok = ents != NULL;
#define ADD_ENT(nm, in, md, nx)                                                                    \
    do {                                                                                           \
        if (cnt == cap) {                                                                          \
            struct ent *ne = realloc(ents, cap * 2 * sizeof(*ents));                               \
            if (!ne) {                                                                             \
                ok = false;                                                                        \
                break;                                                                             \
            }                                                                                      \
            ents = ne;                                                                             \
            cap *= 2;                                                                              \
        }                                                                                          \
        snprintf(ents[cnt].name, sizeof(ents[cnt].name), "%s", nm);                                \
        ents[cnt].ino = (in);                                                                      \
        ents[cnt].mode = (md);                                                                     \
        ents[cnt].next = (nx);                                                                     \
        cnt++;                                                                                     \
    } while (0)

    /* A rough bound on how many entries fit, so huge dirs are not copied whole. */
    size_t want = size / 24 + 4;
    int err = 0;
    store_rdlock(f->store);
    if (n.type == N_ROOT) {
        if (off < 1)
            ADD_ENT(".", INO_ROOT, S_IFDIR, 1);
        if (off < 2)
            ADD_ENT("..", INO_ROOT, S_IFDIR, 2);
        for (size_t i = 0; i < sizeof(fixed_files) / sizeof(fixed_files[0]); i++)
            if (off < (off_t)(3 + i))
                ADD_ENT(fixed_files[i].name, fixed_files[i].ino, S_IFREG, (off_t)(3 + i));
        uint32_t start = off > DOFF_SLOTS ? (uint32_t)(off - DOFF_SLOTS) : 0;
        for (uint32_t i = start; i < store_model_slots(f->store) && cnt < want; i++) {
            const struct model *m = store_model_at(f->store, i);
            if (m && m->parent == STORE_NONE)
                ADD_ENT(m->leaf, model_ino(i, MK_DIR), S_IFDIR, DOFF_SLOTS + i + 1);
        }
    } else if (n.type == N_MODEL && n.kind == MK_DIR && store_model_at(f->store, n.idx) &&
               store_model_at(f->store, n.idx)->ns) {
        const struct model *ns = store_model_at(f->store, n.idx);
        if (off < 1)
            ADD_ENT(".", ino, S_IFDIR, 1);
        if (off < 2)
            ADD_ENT("..", ns->parent == STORE_NONE ? INO_ROOT : model_ino(ns->parent, MK_DIR),
                    S_IFDIR, 2);
        uint32_t start = off > DOFF_SLOTS ? (uint32_t)(off - DOFF_SLOTS) : 0;
        for (uint32_t i = start; i < store_model_slots(f->store) && cnt < want; i++) {
            const struct model *m = store_model_at(f->store, i);
            if (m && m->parent == ns->idx)
                ADD_ENT(m->leaf, model_ino(i, MK_DIR), S_IFDIR, DOFF_SLOTS + i + 1);
        }
    } else if (n.type == N_MODEL && n.kind == MK_DIR && store_model_at(f->store, n.idx)) {
        const struct model *m = store_model_at(f->store, n.idx);
        if (off < 1)
            ADD_ENT(".", ino, S_IFDIR, 1);
        if (off < 2)
            ADD_ENT("..", m->parent == STORE_NONE ? INO_ROOT : model_ino(m->parent, MK_DIR),
                    S_IFDIR, 2);
        if (off < 3)
            ADD_ENT("new", model_ino(n.idx, MK_NEW), S_IFREG, 3);
        if (off < 4 && m->latest != STORE_NONE)
            ADD_ENT("latest", model_ino(n.idx, MK_LATEST), S_IFLNK, 4);
        if (off < 5)
            ADD_ENT(".provider", model_ino(n.idx, MK_PROVIDER), S_IFREG, 5);
        if (off < 6)
            ADD_ENT("defaults.json", model_ino(n.idx, MK_DEFAULTS), S_IFREG, 6);
        if (off < 7)
            ADD_ENT("request.json", model_ino(n.idx, MK_REQUEST), S_IFREG, 7);
        uint32_t start = off > DOFF_SLOTS ? (uint32_t)(off - DOFF_SLOTS) : 0;
        for (uint32_t i = start; i < store_task_slots(f->store) && cnt < want; i++) {
            const struct task *t = store_task_at(f->store, i);
            if (t && t->model_idx == n.idx)
                ADD_ENT(t->id, task_ino(i, TK_DIR), S_IFDIR, DOFF_SLOTS + i + 1);
        }
    } else if (n.type == N_TASK && n.kind == TK_DIR && store_task_at(f->store, n.idx)) {
        const struct task *t = store_task_at(f->store, n.idx);
        const struct model *m = store_model_at(f->store, t->model_idx);
        if (off < 1)
            ADD_ENT(".", ino, S_IFDIR, 1);
        if (off < 2)
            ADD_ENT("..", model_ino(m->idx, MK_DIR), S_IFDIR, 2);
        for (int k = 1; k < TK_COUNT; k++)
            if (off < 2 + k)
                ADD_ENT(task_file_names[k], task_ino(n.idx, (enum task_kind)k), S_IFREG, 2 + k);
        if (off < 2 + TK_COUNT && t->files)
            ADD_ENT("files", task_ino(n.idx, TK_FILES), S_IFDIR, 2 + TK_COUNT);
    } else if (n.type == N_TASK && n.kind == TK_FILES && store_task_at(f->store, n.idx) &&
               store_task_at(f->store, n.idx)->files) {
        const struct task *t = store_task_at(f->store, n.idx);
        if (off < 1)
            ADD_ENT(".", ino, S_IFDIR, 1);
        if (off < 2)
            ADD_ENT("..", task_ino(n.idx, TK_DIR), S_IFDIR, 2);
        for (uint32_t i = 0; i < t->n_urls && i < MAX_FILES; i++)
            if (off < (off_t)(3 + i) && file_listed(&t->files[i]))
                ADD_ENT(t->files[i].name, task_ino(n.idx, (enum task_kind)(TK_FILE0 + i)), S_IFREG,
                        (off_t)(3 + i));
    } else {
        err = ENOTDIR;
    }
    store_unlock(f->store);
#undef ADD_ENT
    if (!ok)
        err = ENOMEM;
    if (err) {
        fuse_reply_err(req, err);
    } else {
        for (size_t i = 0; i < cnt; i++)
            if (!dir_add(&d, ents[i].name, ents[i].ino, ents[i].mode, ents[i].next))
                break;
        fuse_reply_buf(req, d.buf, d.used);
    }
    free(ents);
    free(d.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)fi;
    readdir_common(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)fi;
    readdir_common(req, ino, size, off, true);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct node n = node_of(ino);
    if (n.type == N_ROOT || (n.type == N_MODEL && n.kind == MK_DIR) ||
        (n.type == N_TASK && (n.kind == TK_DIR || n.kind == TK_FILES)))
        fuse_reply_open(req, fi);
    else
        fuse_reply_err(req, ENOTDIR);
}

/* ---- open, read ---- */

static void reply_slice(fuse_req_t req, const char *text, size_t len, size_t size, off_t off)
{
    if (off < 0 || (size_t)off >= len)
        fuse_reply_buf(req, NULL, 0);
    else
        fuse_reply_buf(req, text + off, len - (size_t)off < size ? len - (size_t)off : size);
}

/* Takes ownership of text (NULL: an empty snapshot). */
static struct snap *snap_wrap(char *text, size_t len)
{
    struct snap *s = malloc(sizeof(*s));
    if (!s) {
        free(text);
        return NULL;
    }
    *s = (struct snap){.refs = 1, .len = text ? len : 0, .text = text};
    return s;
}

static void snap_put(struct snap *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        free(s->text);
        free(s);
    }
}

static struct snap *snapshot(struct fs *f, fuse_ino_t ino)
{
    size_t len = 0;
    char *text;
    if (ino == INO_STATS) {
        text = engine_stats_json(f->engine);
        len = text ? strlen(text) : 0;
    } else {
        text = log_ring_text(f->log, &len, NULL);
    }
    return snap_wrap(text, len);
}

/* The cache file of files/<n> when it is whole, else -1; touch marks it
 * used for the least-recently-used eviction. */
static int media_open(struct fs *f, uint32_t idx, uint32_t n, bool touch)
{
    char path[4096];
    int fd = -1;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    if (t && t->files && n < t->n_urls && t->files[n].state == FILE_DONE) {
        const struct model *m = store_model_at(f->store, t->model_idx);
        if (cache_file_path(path, sizeof(path), f->cache_dir, m->name, t->id, t->files[n].name) ==
            0)
            fd = open(path, O_RDONLY | O_CLOEXEC);
        if (touch)
            __atomic_store_n(&t->files[n].atime_ms, clock_now_ms(), __ATOMIC_RELAXED);
    }
    store_unlock(f->store);
    return fd;
}

static enum file_state media_state(struct fs *f, uint32_t idx, uint32_t n)
{
    enum file_state st = FILE_EXPIRED;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    if (t && t->files && n < t->n_urls)
        st = t->files[n].state;
    store_unlock(f->store);
    return st;
}

static void reply_fd(fuse_req_t req, int fd, size_t size, off_t off)
{
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
    bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    bv.buf[0].fd = fd;
    bv.buf[0].pos = off;
    fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
}

static void fetch_done(struct engine_cmd *cmd, int err, const char *msg)
{
    (void)err;
    (void)msg;
    free(cmd);
}

static void post_fetch(struct fs *f, uint32_t idx, uint32_t n)
{
    struct engine_cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->kind = ENGINE_FETCH;
    c->task_idx = idx;
    c->file_n = n;
    c->done = fetch_done;
    engine_post(f->engine, c);
}

/* What a reader of files/<n> gets now: 1 (cache file open in *fd), a
 * negative errno, or 0 to wait for the download. */
static int media_ready(struct fs *f, uint32_t idx, uint32_t n, int *fd)
{
    *fd = media_open(f, idx, n, false);
    if (*fd >= 0)
        return 1;
    switch (media_state(f, idx, n)) {
    case FILE_FAILED:
        return -EIO;
    case FILE_NOSPACE:
        return -ENOSPC;
    case FILE_EXPIRED:
        return -ENOENT;
    case FILE_DONE: /* evicted between the two looks */
    case FILE_PENDING:
    case FILE_DOWNLOADING:
        return 0;
    }
    return -EIO;
}

/* What a stat of files/<n> gets now: 1 (its attributes), a negative errno, or 0
 * to wait until it is whole. */
static int media_attr_ready(struct fs *f, uint32_t idx, uint32_t n)
{
    int rc = -ENOENT;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    if (t && t->files && n < t->n_urls) {
        const struct task_file *tf = &t->files[n];
        if (file_listed(tf))
            rc = 1;
        else if (tf->state == FILE_FAILED)
            rc = -EIO;
        else if (tf->state == FILE_NOSPACE)
            rc = -ENOSPC;
        else if (tf->state == FILE_EXPIRED)
            rc = -ENOENT;
        else
            rc = 0;
    }
    store_unlock(f->store);
    return rc;
}

static bool attr_waiting(struct fs *f, struct pending *p)
{
    return media_attr_ready(f, p->idx, p->file_n) == 0;
}

/* rc from media_attr_ready; 0 (still not whole: the mount is going away) is EIO. */
static void answer_attr(struct fs *f, fuse_req_t req, uint32_t idx, uint32_t n, int rc)
{
    fuse_ino_t ino = task_ino(idx, (enum task_kind)(TK_FILE0 + n));
    struct stat st;
    if (rc == 1 && (rc = fs_stat(f, ino, &st)) == 0)
        fuse_reply_attr(req, &st, attr_timeout_for(f, ino));
    else
        fuse_reply_err(req, rc < 0 ? -rc : EIO);
}

/* A stat of a file under files/ that is not whole waits until it is, so that
 * rsync, tar or shutil.copy2 never copy a short file: true once req is answered
 * or parked here, false for every other inode (and for the notifier). */
static bool file_attr_answered(struct fs *f, fuse_req_t req, fuse_ino_t ino)
{
    struct node n = node_of(ino);
    if (n.type != N_TASK || n.kind < TK_FILE0 || from_notifier(f, req))
        return false;
    const uint32_t idx = n.idx, file_n = (uint32_t)(n.kind - TK_FILE0);
    int rc = media_attr_ready(f, idx, file_n);
    if (rc == 1)
        return false;
    if (rc == -EIO) {
        /* Tell this caller now; try once more in the background. */
        post_fetch(f, idx, file_n);
        log_warn(f->log, "stat of a result file failed: its download failed (see above)");
    }
    if (rc == 0) {
        struct pending *p = calloc(1, sizeof(*p));
        if (!p) {
            fuse_reply_err(req, ENOMEM);
            return true;
        }
        *p = (struct pending){.kind = P_ATTR, .req = req, .idx = idx, .file_n = file_n};
        if (park(f, p, attr_waiting)) {
            post_fetch(f, idx, file_n);
            return true;
        }
        free(p);
        rc = media_attr_ready(f, idx, file_n);
    }
    answer_attr(f, req, idx, file_n, rc);
    return true;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *f = req_fs(req);
    struct node n = node_of(ino);
    int acc = fi->flags & O_ACCMODE;
    struct fh *h = calloc(1, sizeof(*h));
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fi->direct_io = 1;
    if (acc != O_RDONLY && from_notifier(f, req)) {
        h->kind = FH_ANNOUNCE;
    } else if (n.type == N_MODEL && n.kind == MK_NEW && acc != O_RDONLY && !by_owner(req)) {
        free(h);
        fuse_reply_err(req, EACCES);
        return;
    } else if (n.type == N_MODEL && n.kind == MK_NEW) {
        h->kind = FH_NEW;
        h->idx = n.idx;
        h->read_write = acc == O_RDWR;
        h->opener = proc_process(fuse_req_ctx(req)->pid);
        fi->nonseekable = 1;
    } else if (n.type == N_MODEL && (n.kind == MK_DEFAULTS || n.kind == MK_REQUEST) &&
               acc != O_RDONLY) {
        if (!by_owner(req)) {
            free(h);
            fuse_reply_err(req, EACCES);
            return;
        }
        h->kind = FH_MODEL_JSON;
        h->idx = n.idx;
        h->edit_kind = (enum model_kind)n.kind;
        h->edit_dirty = (fi->flags & O_TRUNC) != 0; /* "> defaults.json" alone clears it */
    } else if (acc != O_RDONLY) {
        free(h);
        fuse_reply_err(req, EACCES);
        return;
    } else if (n.type == N_MODEL && (n.kind == MK_DEFAULTS || n.kind == MK_REQUEST)) {
        h->kind = FH_SNAPSHOT;
        h->idx = n.idx;
        store_rdlock(f->store);
        const struct model *m = store_model_at(f->store, n.idx);
        const char *json = m ? (n.kind == MK_DEFAULTS ? m->defaults : m->request) : NULL;
        char *text;
        if (asprintf(&text, "%s\n", json ? json : "{}") < 0)
            text = NULL;
        store_unlock(f->store);
        h->snap = snap_wrap(text, text ? strlen(text) : 0);
    } else if (n.type == N_MODEL && n.kind == MK_PROVIDER) {
        h->kind = FH_SNAPSHOT;
        h->idx = n.idx;
        char *text;
        if (asprintf(&text, "%s\n", engine_provider_name(f->engine, n.idx)) < 0)
            text = NULL;
        h->snap = snap_wrap(text, text ? strlen(text) : 0);
    } else if (n.type == N_FIXED) {
        if (ino == INO_EVENTS) {
            h->kind = FH_EVENTS;
            fi->nonseekable = 1;
            pthread_mutex_lock(&f->lock);
            h->cursor = f->event_seq;
            pthread_mutex_unlock(&f->lock);
        } else if (ino == INO_STATS || ino == INO_LOG) {
            h->kind = FH_SNAPSHOT;
            h->snap = snapshot(f, ino);
        } else {
            /* README is static: cached by the kernel, read without a handle. */
            free(h);
            h = NULL;
            fi->direct_io = 0;
            fi->keep_cache = 1;
        }
    } else if (n.type == N_TASK) {
        store_rdlock(f->store);
        bool exists = store_task_at(f->store, n.idx) != NULL;
        store_unlock(f->store);
        if (!exists) {
            free(h);
            fuse_reply_err(req, ENOENT);
            return;
        }
        h->idx = n.idx;
        h->kind = n.kind == TK_STATE ? FH_STATE : n.kind == TK_RESULT ? FH_RESULT : FH_PLAIN;
        h->fd = -1;
        if (n.kind >= TK_FILE0) {
            h->kind = FH_MEDIA;
            h->file_n = (uint32_t)(n.kind - TK_FILE0);
            h->fd = media_open(f, h->idx, h->file_n, true);
            if (h->fd >= 0) {
                /* Whole and immutable: let the page cache keep it. */
                fi->direct_io = 0;
                fi->keep_cache = 1;
            }
        }
    } else {
        free(h);
        fuse_reply_err(req, EISDIR);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    if (fuse_reply_open(req, fi) == -ENOENT && h) {
        /* The opener was interrupted: no release will come for this handle. */
        snap_put(h->snap);
        free(h);
    }
}

static int new_end(struct fs *f, fuse_req_t req, struct fh *h, enum op_kind kind, size_t size,
                   int kill_signal, struct op **out);
static void op_post(struct fs *f, struct op *o);

/* Result content, or the errno a reader gets now, or 0 to wait. */
static int result_ready(struct fs *f, uint32_t idx, char **text, size_t *len)
{
    int rc = 0;
    store_rdlock(f->store);
    const struct task *t = store_task_at(f->store, idx);
    if (!t)
        rc = -ENOENT;
    else if (t->state == TASK_SUCCESS)
        *text = task_file_text(t, TK_RESULT, len), rc = 1;
    else if (t->state == TASK_FAILED)
        rc = -EIO;
    else if (t->gave_up)
        rc = -ETIMEDOUT;
    store_unlock(f->store);
    return rc;
}

static bool result_waiting(struct fs *f, struct pending *p)
{
    char *text = NULL;
    size_t len = 0;
    int rc = result_ready(f, p->idx, &text, &len);
    free(text);
    return rc == 0;
}

static bool media_waiting(struct fs *f, struct pending *p)
{
    int fd;
    int rc = media_ready(f, p->idx, p->file_n, &fd);
    if (fd >= 0)
        close(fd);
    return rc == 0;
}

static void answer_result(fuse_req_t req, int rc, char *text, size_t len, size_t size, off_t off)
{
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        reply_slice(req, text, len, size, off);
    free(text);
}

static size_t events_fill(struct fs *f, struct fh *h, char *buf, size_t size)
{
    size_t used = 0;
    uint64_t oldest = f->event_seq > EVENT_RING ? f->event_seq - EVENT_RING : 0;
    if (h->cursor < oldest) {
        h->cursor = oldest; /* fell behind: the oldest lines are gone */
        h->line_off = 0;
    }
    /* Whole lines while they fit; a reader with a small buffer (the shell's
     * read takes one byte at a time) gets a line in pieces. */
    while (h->cursor < f->event_seq && used < size) {
        const struct event_line *l = &f->events[h->cursor % EVENT_RING];
        size_t n = strlen(l->text) - h->line_off;
        if (used + n > size && used > 0)
            break;
        size_t take = n < size - used ? n : size - used;
        memcpy(buf + used, l->text + h->line_off, take);
        used += take;
        h->line_off += take;
        if (h->line_off == strlen(l->text)) {
            h->cursor++;
            h->line_off = 0;
        }
    }
    return used;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fs *f = req_fs(req);
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    struct node n = node_of(ino);
    if (!h) {
        if (ino == INO_README)
            reply_slice(req, readme_text, sizeof(readme_text) - 1, size, off);
        else
            fuse_reply_err(req, EBADF);
        return;
    }
    switch (h->kind) {
    case FH_NEW: {
        pthread_mutex_lock(&f->lock);
        /* A read after writing ends the input: submit it, answer with its id. */
        struct op *o = NULL;
        int rc = new_end(f, req, h, OP_READ_ID, size, 0, &o);
        if (rc < 0 || o) {
            pthread_mutex_unlock(&f->lock);
            if (rc < 0)
                fuse_reply_err(req, -rc);
            else
                op_post(f, o);
            return;
        }
        char line[256] = "";
        if (h->task_id)
            snprintf(line, sizeof(line), "%s\n", h->task_id);
        size_t len = strlen(line), from = h->id_pos < len ? h->id_pos : len;
        size_t n = len - from < size ? len - from : size;
        h->id_pos = from + n;
        pthread_mutex_unlock(&f->lock);
        fuse_reply_buf(req, line + from, n);
        return;
    }
    case FH_SNAPSHOT: {
        /* Offset 0 is a fresh look (cat again on the same fd, tail -f). */
        struct snap *fresh = NULL, *old = NULL, *s;
        if (off == 0 && (ino == INO_STATS || ino == INO_LOG))
            fresh = snapshot(f, ino);
        pthread_mutex_lock(&f->lock);
        if (fresh) {
            old = h->snap;
            h->snap = fresh;
        }
        s = h->snap;
        if (s)
            __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&f->lock);
        snap_put(old);
        if (s)
            reply_slice(req, s->text, s->len, size, off);
        else
            fuse_reply_err(req, ENOMEM);
        snap_put(s);
        return;
    }
    case FH_EVENTS: {
        char *buf = malloc(size);
        if (!buf) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        pthread_mutex_lock(&f->lock);
        size_t used = events_fill(f, h, buf, size);
        bool wait = used == 0 && !f->shutting_down;
        pthread_mutex_unlock(&f->lock);
        if (used > 0 || !wait) {
            fuse_reply_buf(req, buf, used);
        } else if (fi->flags & O_NONBLOCK) {
            fuse_reply_err(req, EAGAIN);
        } else {
            free(buf);
            struct pending *p = calloc(1, sizeof(*p));
            if (!p) {
                fuse_reply_err(req, ENOMEM);
                return;
            }
            *p = (struct pending){.kind = P_EVENTS, .req = req, .size = size, .fh = h};
            defer(f, p);
            return;
        }
        free(buf);
        return;
    }
    case FH_RESULT: {
        char *text = NULL;
        size_t len = 0;
        int rc = result_ready(f, h->idx, &text, &len);
        if (rc != 0) {
            answer_result(req, rc, text, len, size, off);
            return;
        }
        struct pending *p = pending_for_read(req, fi);
        if (!p)
            return;
        *p = (struct pending){
            .kind = P_RESULT, .req = req, .idx = h->idx, .size = size, .off = off, .fh = h};
        if (park(f, p, result_waiting))
            return;
        free(p);
        rc = result_ready(f, h->idx, &text, &len);
        answer_result(req, rc ? rc : -EIO, text, len, size, off);
        return;
    }
    case FH_MEDIA: {
        if (h->fd >= 0) {
            reply_fd(req, h->fd, size, off);
            return;
        }
        /* Once a read is answered the kernel may RELEASE the handle at once: nothing
         * may touch h after a reply or after park() hands the request away. */
        const uint32_t idx = h->idx, file_n = h->file_n;
        int fd;
        int rc = media_ready(f, idx, file_n, &fd);
        if (rc == 1) {
            int spare = fd;
            pthread_mutex_lock(&f->lock);
            if (h->fd < 0)
                h->fd = fd, spare = -1; /* kept for the next reads; RELEASE closes it */
            pthread_mutex_unlock(&f->lock);
            reply_fd(req, fd, size, off);
            if (spare >= 0)
                close(spare);
            return;
        }
        if (rc == -EIO || rc == -ENOSPC) {
            /* Tell this reader now; try once more in the background. */
            post_fetch(f, idx, file_n);
            log_warn(f->log, "read of a result file failed: %s (see above)",
                     rc == -EIO ? "its download failed" : "cache_dir is full");
        }
        if (rc < 0) {
            fuse_reply_err(req, -rc);
            return;
        }
        struct pending *p = pending_for_read(req, fi);
        if (!p)
            return;
        *p = (struct pending){.kind = P_FILE,
                              .req = req,
                              .idx = idx,
                              .file_n = file_n,
                              .size = size,
                              .off = off,
                              .fh = h};
        if (park(f, p, media_waiting)) {
            /* An evicted file comes back on demand. */
            post_fetch(f, idx, file_n);
            return;
        }
        free(p);
        rc = media_ready(f, idx, file_n, &fd);
        if (rc == 1) {
            reply_fd(req, fd, size, off);
            close(fd);
        } else {
            fuse_reply_err(req, rc ? -rc : EIO);
        }
        return;
    }
    case FH_ANNOUNCE:
        fuse_reply_buf(req, NULL, 0);
        return;
    case FH_MODEL_JSON: /* opened read-write: what was written so far */
        pthread_mutex_lock(&f->lock);
        reply_slice(req, h->edit ? h->edit : "", h->edit_len, size, off);
        pthread_mutex_unlock(&f->lock);
        return;
    case FH_STATE:
    case FH_PLAIN: {
        size_t len = 0;
        char *text = NULL;
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, h->idx);
        if (t) {
            text = task_file_text(t, (enum task_kind)n.kind, &len);
            h->seen_state = t->state;
            h->read_once = true;
        }
        store_unlock(f->store);
        if (!t) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        reply_slice(req, text, len, size, off);
        free(text);
        return;
    }
    }
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct fs *f = req_fs(req);
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    if (h) {
        pthread_mutex_lock(&f->lock);
        if (h->ph) {
            if (h->poll_prev)
                h->poll_prev->poll_next = h->poll_next;
            else
                f->pollers = h->poll_next;
            if (h->poll_next)
                h->poll_next->poll_prev = h->poll_prev;
            fuse_pollhandle_destroy(h->ph);
        }
        /* The last close: an input no close has ended yet (a read-write descriptor
         * never read, or a child that inherited it closing after its opener) is
         * submitted now; nobody waits for it, so its errors reach only the log. */
        struct op *o = NULL;
        if (h->kind == FH_NEW && new_end(f, NULL, h, OP_SUBMIT_LAST, 0, 0, &o) == 0 && o)
            o->fh = NULL;
        pthread_mutex_unlock(&f->lock);
        if (o)
            engine_post(f->engine, &o->cmd);
        if (h->kind == FH_MEDIA && h->fd >= 0)
            close(h->fd);
        snap_put(h->snap);
        free(h->task_id);
        free(h->in);
        free(h->edit);
        free(h);
    }
    fuse_reply_err(req, 0);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                    struct fuse_pollhandle *ph)
{
    struct fs *f = req_fs(req);
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    (void)ino;
    unsigned revents = 0;
    if (!h) {
        if (ph)
            fuse_pollhandle_destroy(ph);
        fuse_reply_poll(req, POLLIN | POLLRDNORM);
        return;
    }
    enum task_state state = TASK_WAITING;
    bool final = false;
    if (h->kind == FH_STATE || h->kind == FH_RESULT) {
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, h->idx);
        if (t) {
            state = t->state;
            final = task_state_final(t->state) || t->gave_up;
        }
        store_unlock(f->store);
    }
    pthread_mutex_lock(&f->lock);
    switch (h->kind) {
    case FH_STATE:
        /* Readable when the word changed since this descriptor last read it. */
        if (!h->read_once || state != h->seen_state)
            revents = POLLIN | POLLRDNORM;
        break;
    case FH_RESULT:
        if (final)
            revents = POLLIN | POLLRDNORM;
        break;
    case FH_EVENTS:
        if (h->cursor < f->event_seq)
            revents = POLLIN | POLLRDNORM;
        break;
    case FH_NEW:
        revents = POLLOUT | POLLWRNORM | (h->task_id ? POLLIN | POLLRDNORM : 0);
        break;
    default:
        revents = POLLIN | POLLRDNORM;
    }
    if (ph) {
        if (h->ph) {
            fuse_pollhandle_destroy(h->ph);
        } else {
            h->poll_prev = NULL;
            h->poll_next = f->pollers;
            if (f->pollers)
                f->pollers->poll_prev = h;
            f->pollers = h;
        }
        h->ph = ph;
    }
    pthread_mutex_unlock(&f->lock);
    fuse_reply_poll(req, revents);
}

/* ---- engine-backed operations ---- */

static void op_done(struct engine_cmd *cmd, int err, const char *msg);

static struct op *op_new(struct fs *f, fuse_req_t req, enum op_kind kind)
{
    struct op *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->fs = f;
    o->kind = kind;
    o->p.kind = P_OP;
    o->p.req = req;
    o->cmd.done = op_done;
    o->cmd.arg = o;
    return o;
}

static void op_post(struct fs *f, struct op *o)
{
    defer(f, &o->p);
    engine_post(f->engine, &o->cmd);
}

static void op_free(struct op *o)
{
    free(o->cmd.name);
    free(o->cmd.input_json);
    free(o->cmd.prompt);
    free(o);
}

/* A submission's answer, held back until the notifier has announced the task. */
struct late_reply {
    fuse_req_t req;
    enum op_kind kind;
    char line[256];
    size_t len;
};

static void late_reply_send(void *arg, bool ok)
{
    (void)ok;
    struct late_reply *lr = arg;
    if (lr->kind == OP_READ_ID)
        fuse_reply_buf(lr->req, lr->line, lr->len);
    else
        fuse_reply_err(lr->req, 0);
    free(lr);
}

static void op_done(struct engine_cmd *cmd, int err, const char *msg)
{
    struct op *o = cmd->arg;
    struct fs *f = o->fs;
    pthread_mutex_lock(&f->lock);
    fuse_req_t req = o->p.req;
    if (req)
        pending_unlink(f, &o->p);
    char idline[256] = "";
    size_t idlen = 0;
    if (o->fh && err == 0) {
        free(o->fh->task_id);
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, cmd->task_idx);
        o->fh->task_id = t ? strdup(t->id) : NULL;
        store_unlock(f->store);
        o->fh->id_pos = 0;
        if (o->kind == OP_READ_ID && o->fh->task_id) {
            snprintf(idline, sizeof(idline), "%s\n", o->fh->task_id);
            idlen = strlen(idline) < o->p.size ? strlen(idline) : o->p.size;
            o->fh->id_pos = idlen;
        }
    }
    pthread_mutex_unlock(&f->lock);
    bool submission = o->kind == OP_SUBMIT_CLOSE || o->kind == OP_READ_ID;
    /* The engine says a failed submission in its log itself: each failure once. */
    if (err && msg && o->kind != OP_RMDIR && err != -EEXIST && !submission &&
        o->kind != OP_SUBMIT_LAST)
        log_warn(f->log, "%s", msg);
    if (req && !err && submission && f->notify) {
        /* The close or read returns once the task's directory was announced, so a
         * script woken by the event finds the task complete. */
        struct late_reply *lr = malloc(sizeof(*lr));
        if (lr) {
            *lr = (struct late_reply){.req = req, .kind = o->kind, .len = idlen};
            memcpy(lr->line, idline, idlen);
            notify_post(f->notify, NOTE_BARRIER, NULL, 0, NULL, NULL, late_reply_send, lr);
            op_free(o);
            return;
        }
    }
    if (req) {
        if (err)
            fuse_reply_err(req, -err);
        else if (o->kind == OP_READ_ID)
            fuse_reply_buf(req, idline, idlen);
        else if (o->kind == OP_MKDIR_MODEL)
            reply_entry(req, f, model_ino(cmd->model_idx, MK_DIR));
        else if (o->kind == OP_MKDIR_TASK)
            reply_entry(req, f, task_ino(cmd->task_idx, TK_DIR));
        else
            fuse_reply_err(req, 0);
    }
    op_free(o);
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
static int new_end(struct fs *f, fuse_req_t req, struct fh *h, enum op_kind kind, size_t size,
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
    o->cmd.kind = ENGINE_SUBMIT;
    o->cmd.model_idx = h->idx;
    o->cmd.input_json = json;
    o->cmd.prompt = prompt;
    *out = o;
    return 0;
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

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino;
    (void)off; /* new is not seekable: pieces come in order, each after the last */
    struct fs *f = req_fs(req);
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    if (h && h->kind == FH_ANNOUNCE) {
        fuse_reply_write(req, size); /* changes nothing: the kernel raises MODIFY */
        return;
    }
    if (h && h->kind == FH_MODEL_JSON) {
        model_json_write(req, h, buf, size, off);
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
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else if (o)
        op_post(f, o);
    else
        fuse_reply_err(req, 0);
}

static bool segment_valid(const char *name)
{
    return !strchr(name, '/') && opts_model_name_valid(name);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)mode;
    struct fs *f = req_fs(req);
    struct node n = node_of(parent);
    if (!by_owner(req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    if (from_notifier(f, req)) {
        fuse_ino_t ino = child_ino(f, parent, name);
        hidden_take(f, ino);
        if (ino)
            reply_entry(req, f, ino);
        else
            fuse_reply_err(req, ENOENT);
        return;
    }
    struct op *o = NULL;
    char model_name[512] = "";
    uint32_t model_idx = STORE_NONE;
    bool in_ns = false;
    if (n.type == N_MODEL && n.kind == MK_DIR) {
        store_rdlock(f->store);
        const struct model *m = store_model_at(f->store, n.idx);
        if (m && m->ns) {
            in_ns = true;
            snprintf(model_name, sizeof(model_name), "%s/%s", m->name, name);
        }
        model_idx = m ? m->idx : STORE_NONE;
        store_unlock(f->store);
    }
    if (n.type == N_ROOT || in_ns) {
        if (child_ino(f, parent, name)) {
            fuse_reply_err(req, EEXIST);
            return;
        }
        if (!segment_valid(name) || strlen(model_name) > 200) {
            log_warn(f->log, "mkdir %s refused: model names use letters, digits, '.', '_', '-'",
                     name);
            fuse_reply_err(req, EINVAL);
            return;
        }
        o = op_new(f, req, OP_MKDIR_MODEL);
        if (o) {
            o->cmd.kind = ENGINE_MODEL_ADD;
            o->cmd.name = strdup(in_ns ? model_name : name);
        }
    } else if (n.type == N_MODEL && n.kind == MK_DIR && model_idx != STORE_NONE) {
        if (child_ino(f, parent, name)) {
            fuse_reply_err(req, EEXIST);
            return;
        }
        if (strcmp(name, "new") == 0 || strcmp(name, "latest") == 0 || name[0] == '.' ||
            strlen(name) > 200 ||
            strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789._~-") != strlen(name)) {
            fuse_reply_err(req, EINVAL);
            return;
        }
        o = op_new(f, req, OP_MKDIR_TASK);
        if (o) {
            o->cmd.kind = ENGINE_ADOPT;
            o->cmd.model_idx = n.idx;
            o->cmd.name = strdup(name);
        }
    } else {
        fuse_reply_err(req, EPERM);
        return;
    }
    if (!o || !o->cmd.name) {
        if (o)
            op_free(o);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    op_post(f, o);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *f = req_fs(req);
    if (!by_owner(req)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    fuse_ino_t ino = child_ino(f, parent, name);
    struct node n = node_of(ino);
    if (!ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct op *o = op_new(f, req, OP_RMDIR);
    if (!o) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (n.type == N_MODEL && n.kind == MK_DIR) {
        o->cmd.kind = ENGINE_MODEL_REMOVE;
        o->cmd.model_idx = n.idx;
    } else if (n.type == N_TASK && n.kind == TK_DIR) {
        o->cmd.kind = ENGINE_FORGET;
        o->cmd.task_idx = n.idx;
    } else {
        op_free(o);
        /* files/ and the like: directories genfs keeps, not the user's to remove */
        fuse_reply_err(req, (n.type == N_TASK && n.kind == TK_FILES) ? EPERM : ENOTDIR);
        return;
    }
    op_post(f, o);
}

static void op_refuse_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)parent;
    (void)name;
    fuse_reply_err(req, EPERM);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    (void)mode;
    struct fs *f = req_fs(req);
    fuse_ino_t ino = from_notifier(f, req) ? child_ino(f, parent, name) : 0;
    struct fuse_entry_param e = {0};
    struct fh *h = ino ? calloc(1, sizeof(*h)) : NULL;
    if (!h || fs_stat(f, ino, &e.attr) < 0) {
        free(h);
        op_refuse_name(req, parent, name);
        return;
    }
    hidden_take(f, ino);
    h->kind = FH_ANNOUNCE;
    h->fd = -1;
    e.ino = ino;
    e.generation = 1;
    e.attr_timeout = attr_timeout_for(f, ino);
    e.entry_timeout = ENTRY_TIMEOUT;
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    if (fuse_reply_create(req, &e, fi) == -ENOENT)
        free(h);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)mode;
    (void)rdev;
    op_refuse_name(req, parent, name);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link;
    struct fs *f = req_fs(req);
    struct node n = node_of(parent);
    if (from_notifier(f, req) && n.type == N_MODEL && strcmp(name, "latest") == 0) {
        fuse_ino_t ino = model_ino(n.idx, MK_LATEST);
        hidden_take(f, ino);
        reply_entry(req, f, ino);
        return;
    }
    op_refuse_name(req, parent, name);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    (void)newparent;
    (void)newname;
    (void)flags;
    op_refuse_name(req, parent, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino;
    op_refuse_name(req, newparent, newname);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs sv = {.f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255};
    fuse_reply_statfs(req, &sv);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* One write(2) of up to 1 MiB reaches us as one request. */
    conn->max_write = NEW_MAX_WRITE;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Cached media goes from the cache file to the reader without a copy here. */
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_refuse_name,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .statfs = op_statfs,
    .create = op_create,
    .poll = op_poll,
};

const struct fuse_lowlevel_ops *fs_ops(void)
{
    return &ops;
}

/* ---- store observer: runs on the engine thread ---- */

static void events_append(struct fs *f, const struct store_change *c, const char *word)
{
    struct event_line *l = &f->events[f->event_seq % EVENT_RING];
    l->seq = f->event_seq;
    snprintf(l->text, sizeof(l->text), "%lld.%03d %s %s %s\n", (long long)(c->at_ms / 1000),
             (int)(c->at_ms % 1000), c->model_name, c->task_id, word);
    f->event_seq++;
    __atomic_store_n(&f->event_mtime_ms, c->at_ms, __ATOMIC_RELAXED);
}

static void wake_events(struct fs *f)
{
    /* Called with f->lock held; replies go out after it is released. */
    struct pending *p = f->pending, *ready = NULL;
    while (p) {
        struct pending *next = p->next;
        if (p->kind == P_EVENTS) {
            pending_unlink(f, p);
            p->next = ready;
            ready = p;
        }
        p = next;
    }
    while (ready) {
        struct pending *next = ready->next;
        char *buf = malloc(ready->size);
        size_t used = buf ? events_fill(f, ready->fh, buf, ready->size) : 0;
        pthread_mutex_unlock(&f->lock);
        fuse_reply_buf(ready->req, buf, used);
        pthread_mutex_lock(&f->lock);
        free(buf);
        free(ready);
        ready = next;
    }
}

static void wake_results(struct fs *f, uint32_t idx)
{
    pthread_mutex_lock(&f->lock);
    struct pending *p = f->pending, *ready = NULL;
    while (p) {
        struct pending *next = p->next;
        if (p->kind == P_RESULT && p->idx == idx) {
            pending_unlink(f, p);
            p->next = ready;
            ready = p;
        }
        p = next;
    }
    pthread_mutex_unlock(&f->lock);
    while (ready) {
        struct pending *next = ready->next;
        char *text = NULL;
        size_t len = 0;
        int rc = result_ready(f, idx, &text, &len);
        answer_result(ready->req, rc ? rc : -EIO, text, len, ready->size, ready->off);
        free(ready);
        ready = next;
    }
}

/* Answers the parked reads (P_FILE) and stats (P_ATTR) of files/<n> of task idx that can
 * be answered now; n = UINT32_MAX: of any of its files (the task was forgotten). */
static void wake_files(struct fs *f, uint32_t idx, uint32_t n)
{
    pthread_mutex_lock(&f->lock);
    struct pending *p = f->pending, *ready = NULL;
    while (p) {
        struct pending *next = p->next;
        if ((p->kind == P_FILE || p->kind == P_ATTR) && p->idx == idx &&
            (n == UINT32_MAX || p->file_n == n) &&
            !(p->kind == P_FILE ? media_waiting(f, p) : attr_waiting(f, p))) {
            pending_unlink(f, p);
            p->next = ready;
            ready = p;
        }
        p = next;
    }
    pthread_mutex_unlock(&f->lock);
    while (ready) {
        struct pending *next = ready->next;
        if (ready->kind == P_ATTR) {
            answer_attr(f, ready->req, idx, ready->file_n, media_attr_ready(f, idx, ready->file_n));
        } else {
            int fd;
            int rc = media_ready(f, idx, ready->file_n, &fd);
            if (rc == 1) {
                reply_fd(ready->req, fd, ready->size, ready->off);
                close(fd);
            } else {
                fuse_reply_err(ready->req, rc < 0 ? -rc : EIO);
            }
        }
        free(ready);
        ready = next;
    }
}

static void wake_pollers(struct fs *f, uint32_t idx)
{
    pthread_mutex_lock(&f->lock);
    for (struct fh *h = f->pollers; h; h = h->poll_next)
        if (h->ph && (h->kind == FH_EVENTS || h->idx == idx) &&
            (h->kind == FH_STATE || h->kind == FH_RESULT || h->kind == FH_EVENTS))
            fuse_lowlevel_notify_poll(h->ph);
    pthread_mutex_unlock(&f->lock);
}

static void inval_task(struct fs *f, uint32_t idx)
{
    if (!f->se)
        return;
    static const enum task_kind kinds[] = {TK_DIR, TK_STATE, TK_RESULT, TK_ERROR, TK_STATUS};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        fuse_lowlevel_notify_inval_inode(f->se, task_ino(idx, kinds[i]), -1, 0);
}

struct unhide {
    struct fs *f;
    fuse_ino_t ino;
};

/* An announcement that failed leaves nothing hidden: later ones below it must find it. */
static void unhide_done(void *arg, bool ok)
{
    struct unhide *u = arg;
    if (!ok)
        hidden_take(u->f, u->ino);
    free(u);
}

/* Announces the creation of ino (path, as name in parent): hidden from the notifier's own
 * lookups until then, so its operation reaches us and raises the event. */
static void announce_new(struct fs *f, fuse_ino_t ino, enum notify_op op, const char *path,
                         fuse_ino_t parent, const char *name, const char *target)
{
    hidden_add(f, ino);
    struct unhide *u = malloc(sizeof(*u));
    if (u)
        *u = (struct unhide){.f = f, .ino = ino};
    notify_post(f->notify, op, path, parent, name, target, u ? unhide_done : NULL, u);
}

/* Announcements for watchers (engine thread; the notifier does the work). */
static void announce(struct fs *f, const struct store_change *c)
{
    char path[1024];
    switch (c->kind) {
    case STORE_TASK_ADDED: {
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, c->task_idx);
        bool adopted = t && t->adopted;
        store_unlock(f->store);
        /* An adopted task came from the user's own mkdir: the kernel saw it. */
        if (adopted)
            return;
        fuse_ino_t dir = model_ino(c->model_idx, MK_DIR);
        snprintf(path, sizeof(path), "%s/%s", c->model_name, c->task_id);
        announce_new(f, task_ino(c->task_idx, TK_DIR), NOTE_MKDIR, path, dir, c->task_id, NULL);
        snprintf(path, sizeof(path), "%s/latest", c->model_name);
        announce_new(f, model_ino(c->model_idx, MK_LATEST), NOTE_SYMLINK, path, dir, "latest",
                     c->task_id);
        return;
    }
    case STORE_TASK_STATE: {
        static const char *const ends[] = {"state", "result", "error"};
        size_t n = task_state_final(c->new_state) ? 3 : 1;
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s/%s", c->model_name, c->task_id, ends[i]);
            notify_post(f->notify, NOTE_MODIFY, path, 0, NULL, NULL, NULL, NULL);
        }
        if (c->new_state == TASK_SUCCESS) {
            /* files/ appears now: announced, so recursive watchers watch it too. */
            snprintf(path, sizeof(path), "%s/%s/files", c->model_name, c->task_id);
            announce_new(f, task_ino(c->task_idx, TK_FILES), NOTE_MKDIR, path,
                         task_ino(c->task_idx, TK_DIR), "files", NULL);
        }
        return;
    }
    case STORE_FILE_CHANGED: {
        char name[32] = "";
        store_rdlock(f->store);
        const struct task *t = store_task_at(f->store, c->task_idx);
        if (t && t->files && c->file_n < t->n_urls && t->files[c->file_n].state == FILE_DONE)
            snprintf(name, sizeof(name), "%s", t->files[c->file_n].name);
        store_unlock(f->store);
        if (!name[0])
            return;
        snprintf(path, sizeof(path), "%s/%s/files/%s", c->model_name, c->task_id, name);
        announce_new(f, task_ino(c->task_idx, (enum task_kind)(TK_FILE0 + c->file_n)), NOTE_CREATE,
                     path, task_ino(c->task_idx, TK_FILES), name, NULL);
        return;
    }
    default:
        return;
    }
}

static void on_store_change(void *arg, const struct store_change *c)
{
    struct fs *f = arg;
    if (f->notify)
        announce(f, c);
    switch (c->kind) {
    case STORE_TASK_ADDED:
    case STORE_TASK_STATE:
        pthread_mutex_lock(&f->lock);
        events_append(f, c, task_state_name(c->new_state));
        wake_events(f);
        pthread_mutex_unlock(&f->lock);
        if (c->kind == STORE_TASK_STATE) {
            inval_task(f, c->task_idx);
            if (task_state_final(c->new_state))
                wake_results(f, c->task_idx);
        } else if (f->se) {
            fuse_lowlevel_notify_inval_inode(f->se, model_ino(c->model_idx, MK_DIR), -1, 0);
            fuse_lowlevel_notify_inval_inode(f->se, model_ino(c->model_idx, MK_LATEST), -1, 0);
        }
        wake_pollers(f, c->task_idx);
        break;
    case STORE_TASK_STATUS:
        if (f->se)
            fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_STATUS), -1, 0);
        break;
    case STORE_TASK_GAVE_UP:
        wake_results(f, c->task_idx);
        wake_pollers(f, c->task_idx);
        break;
    case STORE_TASK_REMOVED:
        wake_results(f, c->task_idx);
        wake_files(f, c->task_idx, UINT32_MAX);
        break;
    case STORE_FILE_CHANGED:
        if (f->se) {
            fuse_lowlevel_notify_inval_inode(
                f->se, task_ino(c->task_idx, (enum task_kind)(TK_FILE0 + c->file_n)), -1, 0);
            fuse_lowlevel_notify_inval_inode(f->se, task_ino(c->task_idx, TK_FILES), -1, 0);
        }
        wake_files(f, c->task_idx, c->file_n);
        break;
    case STORE_MODEL_ADDED:
    case STORE_MODEL_REMOVED:
        break;
    }
}

struct fs *fs_new(struct store *st, struct engine *eng, struct log *lg, const char *cache_dir)
{
    struct fs *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->cache_dir = strdup(cache_dir);
    f->events = calloc(EVENT_RING, sizeof(*f->events));
    if (!f->events) {
        free(f);
        return NULL;
    }
    f->store = st;
    f->engine = eng;
    f->log = lg;
    f->task_dir_mode = 0555;
    f->start_ms = clock_now_ms();
    f->event_mtime_ms = f->start_ms;
    pthread_mutex_init(&f->lock, NULL);
    if (store_observe(st, on_store_change, f) < 0) {
        fs_free(f);
        return NULL;
    }
    return f;
}

void fs_set_session(struct fs *f, struct fuse_session *se)
{
    f->se = se;
}

void fs_set_notify(struct fs *f, struct notify *n)
{
    f->notify = n;
    f->notify_pid = notify_pid(n);
    f->task_dir_mode = notify_attr_only(n) ? 0755 : 0555;
}

void fs_shutdown(struct fs *f)
{
    pthread_mutex_lock(&f->lock);
    f->shutting_down = true;
    struct pending *p = f->pending;
    f->pending = NULL;
    for (struct fh *h = f->pollers; h; h = h->poll_next)
        if (h->ph)
            fuse_lowlevel_notify_poll(h->ph);
    pthread_mutex_unlock(&f->lock);
    while (p) {
        struct pending *next = p->next;
        if (p->kind == P_EVENTS) {
            fuse_reply_buf(p->req, NULL, 0);
            free(p);
        } else if (p->kind == P_RESULT || p->kind == P_FILE || p->kind == P_ATTR) {
            fuse_reply_err(p->req, EIO);
            free(p);
        } else {
            /* Ops are answered by the engine as it stops. */
            fuse_reply_err(p->req, EIO);
            op_of(p)->p.req = NULL;
        }
        p = next;
    }
}

void fs_free(struct fs *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->lock);
    free(f->events);
    free(f->hidden);
    free(f->cache_dir);
    free(f);
}
