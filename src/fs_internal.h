/* Private to the fs_*.c files: the mount's types and what one file asks of another. */
#ifndef GENFS_FS_INTERNAL_H
#define GENFS_FS_INTERNAL_H

#include "eventlog.h"
#include "fs.h"
#include "parked.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

/* Inode numbers are derived, never stored (see docs/design.md). */
#define INO_ROOT 1
#define INO_README 2
#define INO_EVENTS 3
#define INO_STATS 4
#define INO_LOG 5
#define INO_EVENTS_LOG 6
#define INO_EVENTS_LOG1 7
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
    TK_COUNT,     /* the plain files above */
    TK_FILES = 7, /* files/ */
    TK_CTL = 8,   /* ctl: commands written, the accepted ones read */
    TK_PROGRESS,  /* progress: one line, the provider's figures and genfs's estimate */
    TK_LOGS,      /* logs: the provider's */
    TK_LAST = TK_LOGS,
    TK_FILE0 = 16, /* files/<n>: TK_FILE0 + n */
};
#define MAX_FILES ((1u << TASK_SHIFT) - TK_FILE0)

#define ENTRY_TIMEOUT 60.0
#define ATTR_TIMEOUT 60.0
#define NEW_MAX_WRITE INPUT_MAX_BYTES

enum node_type { N_NONE, N_ROOT, N_FIXED, N_MODEL, N_TASK };

struct node {
    enum node_type type;
    fuse_ino_t fixed;
    uint32_t idx; /* model or task index */
    int kind;
};

static inline fuse_ino_t model_ino(uint32_t idx, enum model_kind k)
{
    return MODEL_BASE + ((fuse_ino_t)idx << 4) + k;
}

static inline fuse_ino_t task_ino(uint32_t idx, enum task_kind k)
{
    return TASK_BASE + ((fuse_ino_t)idx << TASK_SHIFT) + k;
}

static inline struct node node_of(fuse_ino_t ino)
{
    struct node n = {0};
    if (ino == INO_ROOT) {
        n.type = N_ROOT;
    } else if (ino >= TASK_BASE) {
        n.type = N_TASK;
        n.idx = (uint32_t)((ino - TASK_BASE) >> TASK_SHIFT);
        n.kind = (int)((ino - TASK_BASE) & ((1u << TASK_SHIFT) - 1));
        if (n.kind > TK_LAST && n.kind < TK_FILE0)
            n.type = N_NONE;
    } else if (ino >= MODEL_BASE) {
        n.type = N_MODEL;
        n.idx = (uint32_t)((ino - MODEL_BASE) >> 4);
        n.kind = (int)((ino - MODEL_BASE) & 15);
        if (n.kind > MK_REQUEST)
            n.type = N_NONE;
    } else if (ino >= INO_README && ino <= INO_EVENTS_LOG1) {
        n.type = N_FIXED;
        n.fixed = ino;
    }
    return n;
}
/* ---- open files and deferred requests ---- */

/* FH_ANNOUNCE: the announcer's own open of a file, which changes nothing. */
enum fh_kind {
    FH_PLAIN,
    FH_NEW,
    FH_STATE,
    FH_RESULT,
    FH_EVENTS,
    FH_SNAPSHOT,
    FH_MEDIA,
    FH_ANNOUNCE,
    FH_MODEL_JSON, /* defaults.json or request.json opened for writing */
    FH_LIVE,       /* progress, logs: poll(2) says when the task moved since the last read */
    FH_CTL,        /* ctl: each write(2) is a command */
};

/* A snapshot outlives the handle while a read still answers from it: libfuse
 * hands the bytes to writev(2), and RELEASE (or a parallel pread at offset 0
 * that takes a new snapshot) may come on another thread meanwhile. */
struct snap {
    unsigned refs;
    size_t len;
    char *text;
};

/* An open file: a union tagged by kind. Fields marked "open" are set by op_open before
 * the handle is published and only read after; every other field is guarded by fs->lock. */
struct fh {
    enum fh_kind kind; /* open */
    uint32_t idx;      /* open: the task, or the model of new and the settings files */
    struct fuse_pollhandle *ph;
    struct fh *poll_next, *poll_prev; /* in fs->pollers while ph is set */
    union {
        struct { /* FH_STATE, FH_PLAIN, FH_LIVE: what this fd last read, for poll(2) */
            enum task_state seen_state;
            bool read_once;
            uint64_t seen_version; /* FH_LIVE: the task's version */
        };
        struct { /* FH_EVENTS: offset r is the stream's position base + r (eventlog.h) */
            uint64_t base;
            uint64_t next; /* where the last read ended, for poll(2) */
        };
        struct {             /* FH_MEDIA: files/<n> */
            uint32_t file_n; /* open */
            int fd;          /* the cache file once whole, or -1 */
        };
        struct snap *snap; /* FH_SNAPSHOT: stats/log/.provider/settings, swapped */
        struct {           /* FH_NEW */
            /* the input written since the last submission, however many write(2)s
             * brought it; the close that ends it (writer_on_close) or a read submits it */
            char *in;
            size_t in_len, in_cap;
            int in_err;      /* a write made the input invalid (EFBIG, EINVAL): the rest is
                              * refused too, and the close or read that ends it says so again */
            long opener;     /* open: the process that opened the descriptor */
            bool read_write; /* open: opened O_RDWR, the read of the task id submits */
            char *task_id;
            size_t id_pos;
        };
        struct {        /* FH_MODEL_JSON: defaults.json / request.json being written */
            char *edit; /* the text so far */
            size_t edit_len;
            bool edit_dirty;           /* written since the last flush */
            enum model_kind edit_kind; /* open */
        };
    };
};

/* P_ATTR: a stat of a file under files/ that is not whole yet. */
enum pend_kind { P_RESULT, P_EVENTS, P_OP, P_FILE, P_ATTR };

/* A parked request: k (first, so a struct parked * is one) holds its id, kind (enum
 * pend_kind), task and file for parked.c's list. */
struct pending {
    struct parked k;
    fuse_req_t req;
    size_t size;
    off_t off;
    struct fh *fh;
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
    OP_MODEL_SET,
    OP_CTL /* a write to ctl: answered with its size once the command is done */
};

/* A request answered once the engine has done a command. */
struct op {
    struct engine_cmd cmd;
    struct fs *fs;
    enum op_kind kind;
    struct pending p;
    struct fh *fh;
    bool json_input; /* a submission written as a JSON object: its "@PATH" values are files */
};

/* A task's or model's directory held open (opendir): rm -r and its kind hold the directory
 * they empty (see "removing" in fs_tree.c). Guarded by fs->lock. */
struct dir_open {
    fuse_ino_t ino;
    pid_t tid; /* the thread that opened it */
    struct dir_open *next, *prev;
};

/* An entry unlinked as part of removing its task's or model's directory (anchor): gone from
 * lookups and listings until nobody holds the anchor open any more. */
struct gone_entry {
    fuse_ino_t ino, anchor;
};

struct fs {
    char *cache_dir;
    struct announcer *announcer;
    pid_t announcer_pid;
    /* inodes not yet announced: absent to the announcer's own lookups, so its
     * mkdir/create/symlink reaches us and raises the event (under lock) */
    fuse_ino_t *hidden;
    size_t n_hidden, cap_hidden;
    struct store *store;
    struct engine *engine;
    struct log *log;
    struct fuse_session *se;
    pthread_mutex_t lock; /* pending, pollers, events, fh fields below */
    struct parked_list parked;
    struct dir_open *dirs;
    struct gone_entry *gone;
    size_t n_gone, cap_gone;
    struct fh *pollers;
    struct eventlog *evlog; /* events and events.log */
    /* events.log's inotify MODIFY (atomics, see event_log_announce in fs_files.c): 1 while
     * one is queued, and the stream's end when it was queued */
    int evlog_note;
    uint64_t evlog_noted;
    bool shutting_down;
    int64_t start_ms;
    /* Per task: the version whose change the kernel's caches were told of (engine thread
     * writes, under lock). An open finds its page cache current only when the task's
     * version is still this one; see fs_cache_current. */
    uint64_t *told;
    uint32_t n_told;
};
static inline struct fs *req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* With allow_other, other users may look but not submit, adopt or forget:
 * tasks are billed to the owner's key. */
static inline bool by_owner(fuse_req_t req)
{
    uid_t uid = fuse_req_ctx(req)->uid;
    return uid == getuid() || uid == 0;
}

/* fs.c: whether the kernel's cached pages and attributes of task idx can serve an open
 * now (the task is at the version its last change was invalidated for). */
bool fs_cache_current(struct fs *f, uint32_t idx, uint64_t version);

/* fs_tree.c: the tree, inode numbers to attributes, names and listings; README. */
extern const char readme_text[];
extern const size_t readme_len;
fuse_ino_t child_ino(struct fs *f, fuse_ino_t parent, const char *name);
/* With the store read-locked. f: for progress (the model's learned times) and ctl. */
char *task_file_text(struct fs *f, const struct task *t, enum task_kind k, size_t *len);
bool file_listed(const struct task_file *tf);
int fs_stat(struct fs *f, fuse_ino_t ino, struct stat *st);
double attr_timeout_for(struct fs *f, fuse_ino_t ino);
void reply_entry(fuse_req_t req, struct fs *f, fuse_ino_t ino);
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi);
void op_readlink(fuse_req_t req, fuse_ino_t ino);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi);
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_refuse_name(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi);
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags);
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);

/* fs_files.c: open files, the handle by kind, reads and poll; when a result or a cache
 * file can be answered. */
void reply_fd(fuse_req_t req, int fd, size_t size, off_t off);
int media_ready(struct fs *f, uint32_t idx, uint32_t n, int *fd);
int media_attr_ready(struct fs *f, uint32_t idx, uint32_t n);
bool attr_waiting(struct fs *f, struct pending *p);
void answer_attr(struct fs *f, fuse_req_t req, uint32_t idx, uint32_t n, int rc);
bool file_attr_answered(struct fs *f, fuse_req_t req, fuse_ino_t ino);
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
int result_ready(struct fs *f, uint32_t idx, char **text, size_t *len);
bool media_waiting(struct fs *f, struct pending *p);
void answer_result(fuse_req_t req, int rc, char *text, size_t len, size_t size, off_t off);
size_t events_fill(struct fs *f, struct fh *h, off_t off, char *buf, size_t size);
bool events_waiting(struct fs *f, struct pending *p);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph);
void events_append(struct fs *f, const struct store_change *c, const char *word);

/* fs_write.c: writes, new's input and its one submission path, the settings files. */
long proc_process(pid_t tid);
int new_end(struct fs *f, fuse_req_t req, struct fh *h, enum op_kind kind, size_t size,
            int kill_signal, struct op **out);
/* Without f->lock: the "@PATH" files of o's input, read as the writer h names would (its
 * process resolves relative paths); 0 or the errno the writer gets, logged. */
int new_attach_files(struct fs *f, struct op *o, const struct fh *h);
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ctl_write(fuse_req_t req, struct fh *h, const char *buf, size_t size);

/* fs_park.c: parked requests, their interrupts and wake-ups; engine-backed ops. */
bool park(struct fs *f, struct pending *p, bool (*waiting)(struct fs *, struct pending *));
struct pending *pending_for_read(fuse_req_t req, const struct fuse_file_info *fi);
void defer(struct fs *f, struct pending *p);
struct op *op_new(struct fs *f, fuse_req_t req, enum op_kind kind);
void op_post(struct fs *f, struct op *o);
void op_free(struct op *o);
void wake_events(struct fs *f);
void wake_results(struct fs *f, uint32_t idx);
void wake_files(struct fs *f, uint32_t idx, uint32_t n);
void wake_pollers(struct fs *f, uint32_t idx);

/* fs_announce.c: the announcer's side. fs_announcer_asks is the one test of who asks; each
 * handler the announcer reaches hands its request to the announcer_* function of the op. */
bool fs_announcer_asks(struct fs *f, fuse_req_t req);
void fs_announcer_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_announcer_setattr(fuse_req_t req, fuse_ino_t ino);
void fs_announcer_open(fuse_req_t req, struct fuse_file_info *fi);
void fs_announcer_read(fuse_req_t req);
void fs_announcer_write(fuse_req_t req, size_t size);
void fs_announcer_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_announcer_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                         struct fuse_file_info *fi);
void fs_announcer_symlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_announce_change(struct fs *f, const struct store_change *c);

#endif
