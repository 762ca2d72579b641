/* genfs: start-up order, the context that owns every module, signals and a
 * clean unmount. */
#include "engine.h"
#include "eventlog.h"
#include "fs.h"
#include "hook.h"
#include "log.h"
#include "mountinfo.h"
#include "opts.h"
#include "probe.h"
#include "provider.h"
#include "store.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

struct genfs_ctx {
    struct opts opts;
    struct log *log;
    struct store *store;
    struct eventlog *evlog;
    struct engine_provider *providers;
    size_t n_providers;
    struct engine *engine;
    struct fs *fs;
    struct hook *hook;
    struct announcer *announcer;
    struct fuse_session *se;
};

static bool has_fuse_option(const struct fuse_args *a, const char *opt)
{
    for (int i = 0; i < a->argc; i++)
        if (strstr(a->argv[i], opt))
            return true;
    return false;
}

static void on_callback(void *arg, uint32_t task_idx)
{
    engine_poll_now(arg, task_idx);
}

/* The callback URL's path: callbacks must come to PATH/<token>. */
static const char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? p : "";
}

/* A profile: from a file when given (one no other user could have written),
 * else a built-in by name. */
static struct provider *load_provider(const struct opts *o, const char *name, const char *file,
                                      char *err, size_t errlen)
{
    if (file) {
        char *text;
        size_t len;
        if (opts_read_trusted(o, file, "provider profile", 1u << 20, &text, &len, err, errlen) < 0)
            return NULL;
        struct provider *p = provider_load_json(text, file, err, errlen);
        free(text);
        return p;
    }
    struct provider *p = provider_load_builtin(name, err, errlen);
    if (!p)
        snprintf(err, errlen,
                 "unknown provider '%s': use apixo, kie, replicate, fal, or a profile file", name);
    return p;
}

/* Whether the FUSE mount on top of path has lost its daemon. statfs is
 * never answered from the kernel's cache (a stat() of a dead mount is, for a
 * minute after its last attribute fetch), and a connection whose daemon died
 * fails it at once with ENOTCONN. Asked from a child, so that a daemon alive
 * but stuck cannot hang this start: after 5 s it counts as alive. */
static bool mount_is_dead(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct statfs sf;
        _exit(statfs(path, &sf) < 0 && errno == ENOTCONN ? 1 : 0);
    }
    if (pid < 0)
        return false;
    int status;
    for (int i = 0; i < 600; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 1;
        if (r < 0)
            return false;
        if (i == 500)
            kill(pid, SIGKILL);
        usleep(10000);
    }
    return false; /* stuck even after SIGKILL, in a request the daemon holds */
}

static int unmount_lazily(const char *mountpoint)
{
    if (geteuid() == 0)
        return umount2(mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("fusermount3", "fusermount3", "-u", "-z", "-q", "--", mountpoint, (char *)NULL);
        _exit(127);
    }
    int status;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status))
        return WEXITSTATUS(status) == 0 ? 0 : -1;
    return -1;
}

/* The mountpoint as /proc/self/mountinfo writes it. Resolving the path
 * itself fails under a dead mount (ENOTCONN): then its parent is resolved. */
static char *mountpoint_canonical(const char *mountpoint)
{
    char *abs = realpath(mountpoint, NULL);
    if (abs || errno != ENOTCONN)
        return abs;
    char *d = strdup(mountpoint), *b = strdup(mountpoint);
    char *dir = d && b ? realpath(dirname(d), NULL) : NULL;
    if (dir && asprintf(&abs, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, basename(b)) < 0)
        abs = NULL;
    free(dir);
    free(d);
    free(b);
    return abs;
}

/* The FUSE mount on top of point: 1 and its type in fstype, or 0 (none). */
static int mountpoint_top_fuse(const char *point, char *fstype, size_t len)
{
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    char *text = fd >= 0 ? mountinfo_read(fd) : NULL;
    if (fd >= 0)
        close(fd);
    struct mountinfo_entry at[64];
    size_t k = text ? mountinfo_at(text, point, at, 64) : 0;
    const struct mountinfo_entry *top = mountinfo_top(at, k < 64 ? k : 64);
    int found = top && mountinfo_is_fuse(top);
    if (found)
        snprintf(fstype, len, "%s", top->fstype);
    free(text);
    return found;
}

/* False only when the directory could be read and holds something. */
static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return true; /* the mount says what is wrong with it */
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* Before mounting: every FUSE mount at the mountpoint whose daemon died
 * (kill -9, a crash) is removed, from the top down, so that genfs never
 * mounts on top of a dead one (after the next crash there would be two, and
 * removing only the top one would leave the mountpoint unusable). A live
 * genfs mount there, or a directory that is not empty, is refused unless
 * nonempty. Returns 0, or -1 having said what to do. */
static int mountpoint_clean(const char *mountpoint, bool nonempty)
{
    char *point = mountpoint_canonical(mountpoint);
    if (!point)
        return 0; /* the mount says what is wrong with the path */
    int rc = 0;
    char fstype[128];
    for (int removed = 0; mountpoint_top_fuse(point, fstype, sizeof(fstype)); removed++) {
        if (!mount_is_dead(point)) {
            if (strcmp(fstype, "fuse.genfs") == 0 && !nonempty) {
                fprintf(stderr,
                        "genfs: %s is already mounted by a running genfs: unmount it first "
                        "(fusermount3 -u %s), or pass -o nonempty to mount on top of it\n",
                        mountpoint, mountpoint);
                rc = -1;
            }
            break;
        }
        if (removed == 64 || unmount_lazily(point) != 0) {
            fprintf(stderr,
                    "genfs: %s is a stale mount (its daemon died) and could not be unmounted: "
                    "run fusermount3 -uz %s, then start genfs again\n",
                    mountpoint, mountpoint);
            rc = -1;
            break;
        }
        fprintf(stderr, "genfs: %s was a stale mount (its daemon had died): unmounted it\n",
                mountpoint);
    }
    if (rc == 0 && !nonempty && !dir_is_empty(point)) {
        fprintf(stderr,
                "genfs: %s is not empty, and the mount would hide what is in it: empty it, "
                "choose another directory, or pass -o nonempty\n",
                mountpoint);
        rc = -1;
    }
    free(point);
    return rc;
}

static int start_failed(const char *msg)
{
    fprintf(stderr, "genfs: %s\n", msg);
    return 2;
}

/* The announcer is forked from genfs and never talks to a provider: its copy
 * of the keys goes at once. */
static void wipe_keys(void *engine)
{
    engine_wipe_keys(engine);
}

/* The mount's own provider, then those the config names. */
static int run_load_providers(struct genfs_ctx *c, char *err, size_t errlen)
{
    struct opts *o = &c->opts;
    c->n_providers = 1 + o->n_providers;
    c->providers = calloc(c->n_providers, sizeof(*c->providers));
    if (!c->providers)
        return start_failed("out of memory");
    for (size_t i = 0; i < c->n_providers; i++) {
        struct engine_provider *ep = &c->providers[i];
        const struct opts_provider *op = i ? &o->providers[i - 1] : NULL;
        const char *profile = op ? op->profile : o->provider_name;
        const char *file = op ? (strchr(op->profile, '/') ? op->profile : NULL) : o->provider_file;
        const char *api_url = op ? op->api_url : o->api_url;
        ep->name = op ? op->name : o->provider_name;
        ep->api_key = op ? op->api_key : o->api_key;
        ep->prov = load_provider(o, profile, file, err, errlen);
        if (!ep->prov)
            return start_failed(err);
        if (api_url && provider_set_base_url(ep->prov, api_url) < 0) {
            snprintf(err, errlen, "provider %s: api_url must start with http:// or https://",
                     ep->name);
            return start_failed(err);
        }
        if (!provider_base_url(ep->prov)) {
            if (!op)
                return start_failed("no provider URL: pass -o api_url=URL or set GENFS_API_URL");
            snprintf(err, errlen, "config: providers.%s needs an api_url", ep->name);
            return start_failed(err);
        }
    }
    return 0;
}

/* Models named on the command line or in the config exist from the start. */
static int run_add_models(struct genfs_ctx *c, char *err, size_t errlen)
{
    struct opts *o = &c->opts;
    for (size_t i = 0; i < o->n_models; i++) {
        uint32_t idx;
        const char *prov = o->models[i].provider;
        if (prov && strcmp(prov, o->provider_name) == 0)
            prov = NULL; /* the mount's own */
        int rc = store_model_add(c->store, o->models[i].name, prov, &idx);
        if (rc == -EEXIST) {
            const struct model *m = store_model_at(c->store, idx);
            const char *was = m ? m->provider : NULL;
            if (m && !m->ns && (!was != !prov || (was && prov && strcmp(was, prov) != 0)))
                rc = store_model_set_provider(c->store, idx, prov);
            else
                rc = 0;
        }
        /* The config's defaults seed a model; a write to its defaults.json wins later. */
        const struct model *m = rc == 0 ? store_model_at(c->store, idx) : NULL;
        if (m && !m->defaults && o->models[i].defaults_json)
            rc = store_model_set_defaults(c->store, idx, o->models[i].defaults_json);
        if (rc == 0 && m && !m->request && o->models[i].request_json)
            rc = store_model_set_request(c->store, idx, o->models[i].request_json);
        if (rc < 0) {
            snprintf(err, errlen, "cannot add model %s to the database", o->models[i].name);
            return start_failed(err);
        }
    }
    return 0;
}

/* Say what is wrong while the user still looks: a URL where nothing answers, a key the
 * provider refuses. Offline mounts still work unless asked to fail. */
static int run_check_providers(struct genfs_ctx *c, char *err, size_t errlen)
{
    struct opts *o = &c->opts;
    for (size_t i = 0; o->check != OPTS_CHECK_OFF && i < c->n_providers; i++) {
        const char *model = "genfs-probe";
        for (size_t j = 0; j < o->n_models; j++) {
            const char *prov = o->models[j].provider;
            if ((i == 0 && (!prov || strcmp(prov, o->provider_name) == 0)) ||
                (i > 0 && prov && strcmp(prov, c->providers[i].name) == 0)) {
                model = o->models[j].name;
                break;
            }
        }
        if (probe_provider(c->providers[i].prov, c->providers[i].api_key, model, 5000, err,
                           errlen) < 0) {
            char line[600];
            snprintf(line, sizeof(line), "provider %s: %s", c->providers[i].name, err);
            if (o->check == OPTS_CHECK_FAIL)
                return start_failed(line);
            log_warn(c->log, "%s", line);
        }
    }
    return 0;
}

static int run_new_engine(struct genfs_ctx *c)
{
    struct opts *o = &c->opts;
    struct engine_config ec = {.providers = c->providers,
                               .n_providers = c->n_providers,
                               .schedule = o->schedule,
                               .rate = o->rate,
                               .timeout_s = o->timeout_s,
                               .cache_dir = o->cache_dir,
                               .file_max_bytes = o->file_max_bytes,
                               .keep_ms = (int64_t)(o->keep_days * 86400000.0),
                               .cache_max_bytes = o->cache_max_bytes,
                               .callback_url = o->callback_url,
                               .callback_poll_ms = (int64_t)(o->callback_poll_s * 1000),
                               .models = o->models,
                               .n_models = o->n_models};
    c->engine = engine_new(c->store, c->log, &ec);
    if (!c->engine)
        return start_failed("cannot start the engine (out of memory, or a bad API key)");
    /* The engine copied what it needs; the key need not stay around. */
    explicit_bzero(o->api_key, strlen(o->api_key));
    for (size_t i = 0; i < o->n_providers; i++)
        explicit_bzero(o->providers[i].api_key, strlen(o->providers[i].api_key));
    c->fs = fs_new(c->store, c->engine, c->log, c->evlog, o->cache_dir);
    if (!c->fs)
        return start_failed("out of memory");

    return 0;
}

/* Mounts and goes to the background; 0, or the exit status. */
static int run_mount(struct genfs_ctx *c, bool *attr_only, char **abs_mnt)
{
    struct opts *o = &c->opts;
    char err[512];
    /* Read before fuse_session_new, which takes the mount options out of the list. With
     * default_permissions the kernel checks modes itself: announce changes with ATTRIB
     * instead of writes. */
    *attr_only = has_fuse_option(&o->fuse_args, "default_permissions");
    c->se = fuse_session_new(&o->fuse_args, fs_ops(), sizeof(struct fuse_lowlevel_ops), c->fs);
    if (!c->se)
        return start_failed("invalid FUSE options (see genfs --help)");
    fs_set_session(c->fs, c->se);
    if (fuse_set_signal_handlers(c->se) != 0)
        return start_failed("cannot install signal handlers");
    if (mountpoint_clean(o->mountpoint, o->nonempty) < 0) {
        fuse_remove_signal_handlers(c->se);
        return 2;
    }
    /* Resolved now: after mounting, resolving it would ask our own mount. */
    *abs_mnt = realpath(o->mountpoint, NULL);
    if (!*abs_mnt)
        return start_failed("cannot resolve the mountpoint: check that it exists");
    if (fuse_session_mount(c->se, o->mountpoint) != 0) {
        snprintf(err, sizeof(err),
                 "cannot mount on %s: check that it is an empty directory you own (and "
                 "that /dev/fuse is usable)",
                 o->mountpoint);
        fuse_remove_signal_handlers(c->se);
        return start_failed(err);
    }
    if (fuse_daemonize(o->foreground) != 0) {
        fuse_session_unmount(c->se);
        fuse_remove_signal_handlers(c->se);
        return start_failed("cannot go to the background");
    }
    if (!o->foreground)
        log_set_syslog(c->log, 1);
    store_write_pid(c->store);
    return 0;
}

/* Threads and children that must be born in the daemon, after the fork. */
static int run_start_services(struct genfs_ctx *c, bool attr_only, const char *abs_mnt)
{
    struct opts *o = &c->opts;
    char err[512];
    /* The listener's thread must be born in the daemon, after the fork. */
    if (o->callback_listen) {
        if (hook_start(o->callback_listen, url_path(o->callback_url), c->log, on_callback,
                       c->engine, &c->hook, err, sizeof(err)) < 0) {
            log_error(c->log, "%s", err);
            fuse_session_unmount(c->se);
            fuse_remove_signal_handlers(c->se);
            return 2;
        }
        engine_set_hook(c->engine, c->hook);
    }
    if (o->announce) {
        if (announcer_start(abs_mnt, c->se, c->log, attr_only, wipe_keys, c->engine,
                            &c->announcer) == 0) {
            fs_set_announcer(c->fs, c->announcer);
            engine_set_announcer(c->engine, c->announcer);
        } else
            log_warn(c->log, "cannot start the announcer: watchers will see no events");
    }
    if (engine_start(c->engine) < 0) {
        log_error(c->log, "cannot start the engine thread");
        fuse_session_unmount(c->se);
        fuse_remove_signal_handlers(c->se);
        return 1;
    }
    return 0;
}

/* The FUSE loop, then an orderly stop. */
static int run_serve(struct genfs_ctx *c)
{
    struct opts *o = &c->opts;
    log_info(c->log, "mounted %s (provider %s at %s, schedule %s, rate %.3g/s)", o->mountpoint,
             c->providers[0].name, provider_base_url(c->providers[0].prov),
             sched_kind_name(o->schedule), o->rate);

    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(lc, 16);
    int rc = fuse_session_loop_mt(c->se, lc);
    fuse_loop_cfg_destroy(lc);

    log_info(c->log, "unmounting %s", o->mountpoint);
    /* No announcement on a dying mount; waiting readers are answered; the
     * engine finishes submissions in flight; closing the session's
     * descriptor ends an announcement caught mid-way, then the announcer goes. */
    announcer_halt(c->announcer);
    fs_shutdown(c->fs);
    hook_stop(c->hook);
    c->hook = NULL;
    engine_stop(c->engine);
    fuse_session_unmount(c->se);
    fuse_remove_signal_handlers(c->se);
    engine_set_announcer(c->engine, NULL);
    announcer_stop(c->announcer);
    c->announcer = NULL;
    /* The loop returns the signal's number after SIGTERM/SIGINT: a clean stop. */
    return rc < 0 ? 1 : 0;
}

static int run(struct genfs_ctx *c)
{
    char err[512];
    struct opts *o = &c->opts;
    c->log = log_new(o->log_level, 0);
    if (!c->log)
        return start_failed("out of memory");
    if (store_open_at(o->state_dir, o->store_url, o->fresh, c->log, &c->store, err, sizeof(err)) <
        0)
        return start_failed(err);
    /* Next to the database, under its lock: one genfs appends to it. */
    if (eventlog_open(o->state_dir, EVENTLOG_FILE_MAX, &c->evlog, err, sizeof(err)) < 0)
        return start_failed(err);
    /* Each step returns 0 or the exit status, having said what went wrong. */
    int rc = run_load_providers(c, err, sizeof(err));
    if (rc == 0)
        rc = run_add_models(c, err, sizeof(err));
    if (rc == 0)
        rc = run_check_providers(c, err, sizeof(err));
    if (rc == 0)
        rc = run_new_engine(c);
    bool attr_only = false;
    char *abs_mnt = NULL;
    if (rc == 0)
        rc = run_mount(c, &attr_only, &abs_mnt);
    if (rc == 0)
        rc = run_start_services(c, attr_only, abs_mnt);
    free(abs_mnt);
    return rc != 0 ? rc : run_serve(c);
}

int main(int argc, char **argv)
{
    struct genfs_ctx c = {0};
    char err[512] = "";
    /* The key lives in this process's memory: keep it out of core dumps. */
    prctl(PR_SET_DUMPABLE, 0);
    /* Each status stream holds a connection: allow what the hard limit allows (up to 64 Ki)
     * rather than the 1024 a login shell gives; the engine sizes its streams to it. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536 &&
        nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max < 65536 ? nofile.rlim_max : 65536;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    if (opts_parse(argc, argv, &c.opts, err, sizeof(err)) < 0) {
        opts_free(&c.opts);
        return start_failed(err);
    }
    if (c.opts.show_help) {
        opts_print_help(argv[0]);
        opts_free(&c.opts);
        return 0;
    }
    if (c.opts.show_version) {
        printf("genfs %s (libfuse %s, %s)\n", GENFS_VERSION, fuse_pkgversion(), curl_version());
        opts_free(&c.opts);
        return 0;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = run(&c);
    if (c.se)
        fuse_session_destroy(c.se);
    engine_free(c.engine);
    fs_free(c.fs);
    eventlog_close(c.evlog);
    for (size_t i = 0; i < c.n_providers; i++)
        provider_free(c.providers[i].prov);
    free(c.providers);
    store_close(c.store);
    log_free(c.log);
    opts_free(&c.opts);
    curl_global_cleanup();
    return rc;
}
