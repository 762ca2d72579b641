#include "opts.h"

#include "names.h"
#include "provider.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAX_BYTES 4096
#define CONFIG_MAX_BYTES (1024 * 1024)

enum { KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG };

struct raw_opts {
    char *api_url;
    char *key_file;
    char *key; /* -o key=, refused: a key in argv is in ps for everyone */
    char *config;
    char *state_dir;
    char *cache_dir;
    char *store;
    char *models;
    char *schedule;
    char *rate;
    char *provider;
    char *notify;
    char *log_level;
    char *callback_url;
    char *callback_listen;
    char *timeout;
    char *callback_poll;
    char *file_max;
    char *cache_max;
    char *keep;
    char *check;
    char *mountpoint;
    int foreground;
    int debug;
    int fresh;
    int help;
    int version;
    int extra_nonopt;
    int nonempty;
};

#define RAW(t, f)                                                                                  \
    {                                                                                              \
        t, offsetof(struct raw_opts, f), 1                                                         \
    }
static const struct fuse_opt opt_spec[] = {
    RAW("api_url=%s", api_url),
    RAW("key_file=%s", key_file),
    RAW("key=%s", key),
    RAW("api_key=%s", key),
    RAW("config=%s", config),
    RAW("state_dir=%s", state_dir),
    RAW("cache_dir=%s", cache_dir),
    RAW("store=%s", store),
    RAW("models=%s", models),
    RAW("schedule=%s", schedule),
    RAW("rate=%s", rate),
    RAW("provider=%s", provider),
    RAW("notify=%s", notify),
    RAW("log_level=%s", log_level),
    RAW("callback_url=%s", callback_url),
    RAW("callback_listen=%s", callback_listen),
    RAW("timeout=%s", timeout),
    RAW("callback_poll=%s", callback_poll),
    RAW("file_max=%s", file_max),
    RAW("cache_max=%s", cache_max),
    RAW("keep=%s", keep),
    RAW("check=%s", check),
    {"fresh", offsetof(struct raw_opts, fresh), 1},
    {"nonempty", offsetof(struct raw_opts, nonempty), 1},
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("-f", KEY_FOREGROUND),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_END,
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct raw_opts *r = data;
    (void)outargs;
    switch (key) {
    case KEY_HELP:
        r->help = 1;
        return 0;
    case KEY_VERSION:
        r->version = 1;
        return 0;
    case KEY_FOREGROUND:
        r->foreground = 1;
        return 0;
    case KEY_DEBUG:
        r->debug = 1;
        r->foreground = 1;
        return 0;
    case FUSE_OPT_KEY_NONOPT:
        if (!r->mountpoint) {
            r->mountpoint = strdup(arg);
            return 0;
        }
        r->extra_nonopt = 1;
        return 0;
    default:
        return 1; /* keep for libfuse */
    }
}

static int opts_refuse(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int opts_refuse(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

bool opts_model_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 200)
        return false;
    if (names_is_root_file(name))
        return false;
    /* Segments separated by '/', none empty, none starting with '.'. */
    bool seg_start = true, colon = false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (c == '/') {
            if (seg_start)
                return false;
            seg_start = true;
            continue;
        }
        if (seg_start && c == '.')
            return false;
        seg_start = false;
        /* ':' once, in the last segment: Replicate's OWNER/NAME:VERSION. */
        if (c == ':' && !colon && !strchr(p, '/') && p[1]) {
            colon = true;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return !seg_start;
}

/* "2G", "500M", "4096": bytes; -EINVAL when not a size. */
static int parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    static const char units[] = "kmgt";
    double mul = 1;
    const char *u = *end ? strchr(units, tolower((unsigned char)*end)) : NULL;
    if (u) {
        for (const char *k = units; k <= u; k++)
            mul *= 1024.0;
        end++;
        if (*end == 'i')
            end++;
    }
    if (*end == 'B')
        end++;
    if (*end || v * mul > 9.0e18)
        return -EINVAL;
    *out = (int64_t)(v * mul);
    return 0;
}

/* The user's home: $HOME when it is an absolute path, else the password
 * database's entry of the real uid (mount(8) and systemd may start us without
 * HOME). Never a shared place such as /tmp, whose files anyone can plant:
 * NULL, and why in why, when neither names a directory. */
static char *home_find(char *why, size_t whylen)
{
    const char *home = getenv("HOME");
    const char *from = "HOME";
    if (!home || home[0] != '/') {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
        from = "the password database";
        if (!home || home[0] != '/') {
            snprintf(why, whylen,
                     "HOME is unset or relative and the password database has no home for uid %u",
                     (unsigned)getuid());
            return NULL;
        }
    }
    struct stat st;
    if (stat(home, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "the home directory %s (from %s) is not a directory", home, from);
        return NULL;
    }
    /* Resolved, so that the walk of opts_read_trusted knows it when it gets there. */
    char *real = realpath(home, NULL);
    return real ? real : strdup(home);
}

/* $ENV/genfs, else HOME/rel/genfs; NULL when ENV is unset (or relative, which
 * the XDG spec says to ignore) and there is no home. */
static char *xdg_dir(const struct opts *o, const char *env, const char *rel)
{
    const char *base = getenv(env);
    char buf[4096];
    if (base && base[0] == '/')
        snprintf(buf, sizeof(buf), "%s/genfs", base);
    else if (o->home)
        snprintf(buf, sizeof(buf), "%s/%s/genfs", o->home, rel);
    else
        return NULL;
    return strdup(buf);
}

static int add_model(struct opts *o, const char *name, char *err, size_t errlen)
{
    if (!opts_model_name_valid(name))
        return opts_refuse(
            err, errlen,
            "invalid model name '%s': use letters, digits, '.', '_' and '-', '/' between "
            "segments, ':' before a version (no segment starting with '.', not "
            "README/events/stats/log)",
            name);
    for (size_t i = 0; i < o->n_models; i++)
        if (strcmp(o->models[i].name, name) == 0)
            return 0;
    struct opts_model *m = realloc(o->models, (o->n_models + 1) * sizeof(*m));
    if (!m)
        return opts_refuse(err, errlen, "out of memory");
    o->models = m;
    memset(&m[o->n_models], 0, sizeof(*m));
    m[o->n_models].name = strdup(name);
    o->n_models++;
    return 0;
}

static struct opts_model *find_model(struct opts *o, const char *name)
{
    for (size_t i = 0; i < o->n_models; i++)
        if (strcmp(o->models[i].name, name) == 0)
            return &o->models[i];
    return NULL;
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 100000)
        return -EINVAL;
    *out = v;
    return 0;
}

static int read_fd(int fd, size_t max, char **out, size_t *len)
{
    char *buf = malloc(max + 1);
    if (!buf)
        return -ENOMEM;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(buf);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            return -EFBIG;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* OpenSSH's rule for the files it trusts (secure_filename), on the open
 * file fd and the directories above its resolved path: each belongs to the
 * user or root, and no one else may write it, so no one else could have
 * written the file or swapped it for another. A sticky directory (/tmp) may
 * be writable by all: in it, no one else can rename or remove what the user
 * or root owns. The walk stops at the home directory, like OpenSSH's. */
static int check_trusted(const struct opts *o, int fd, const char *path, const char *what,
                         bool secret, char *err, size_t errlen)
{
    uid_t uid = getuid();
    struct stat st;
    if (fstat(fd, &st) != 0)
        return opts_refuse(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return opts_refuse(err, errlen, "%s %s is not a regular file", what, path);
    if (st.st_uid != uid && st.st_uid != 0)
        return opts_refuse(err, errlen,
                           "%s %s belongs to uid %u, not to you (uid %u)%s: another user may have "
                           "written it; remove it, or chown it to yourself",
                           what, path, (unsigned)st.st_uid, (unsigned)uid, uid ? " or root" : "");
    if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)))
        return opts_refuse(err, errlen,
                           "%s %s is accessible by other users (mode %03o): run chmod 600 %s", what,
                           path, (unsigned)(st.st_mode & 0777), path);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return opts_refuse(err, errlen,
                           "%s %s is writable by other users (mode %03o): run chmod go-w %s", what,
                           path, (unsigned)(st.st_mode & 0777), path);
    char *real = realpath(path, NULL);
    if (!real)
        return opts_refuse(err, errlen, "cannot resolve %s %s: %s", what, path, strerror(errno));
    struct stat at;
    int rc = 0;
    if (stat(real, &at) != 0 || at.st_dev != st.st_dev || at.st_ino != st.st_ino)
        rc = opts_refuse(err, errlen, "%s %s changed while genfs read it: try again", what, path);
    for (char *slash = strrchr(real, '/'); rc == 0 && slash; slash = strrchr(real, '/')) {
        if (slash == real)
            slash[1] = '\0'; /* "/" itself, then stop */
        else
            *slash = '\0';
        struct stat d;
        if (stat(real, &d) != 0)
            rc = opts_refuse(err, errlen, "cannot check the directory %s of %s %s: %s", real, what,
                             path, strerror(errno));
        else if (d.st_uid != uid && d.st_uid != 0)
            rc = opts_refuse(err, errlen,
                             "%s %s is in %s, which belongs to uid %u (not you or root), who could "
                             "swap it: move the file to a directory of yours",
                             what, path, real, (unsigned)d.st_uid);
        else if ((d.st_mode & (S_IWGRP | S_IWOTH)) && !(d.st_mode & S_ISVTX))
            rc = opts_refuse(err, errlen,
                             "%s %s is in %s, which other users may write (mode %03o): run chmod "
                             "go-w %s, or move the file",
                             what, path, real, (unsigned)(d.st_mode & 0777), real);
        if (strcmp(real, "/") == 0 || (o->home && strcmp(real, o->home) == 0))
            break;
    }
    free(real);
    return rc;
}

static int read_trusted(const struct opts *o, const char *path, const char *what, bool secret,
                        size_t max, char **text, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(-e));
        return e;
    }
    int rc = check_trusted(o, fd, path, what, secret, err, errlen);
    if (rc == 0 && (rc = read_fd(fd, max, text, len)) < 0)
        snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(-rc));
    close(fd);
    return rc;
}

int opts_read_trusted(const struct opts *o, const char *path, const char *what, size_t max,
                      char **text, size_t *len, char *err, size_t errlen)
{
    return read_trusted(o, path, what, false, max, text, len, err, errlen);
}

/* A key from a file only its owner can read; one line, trailing space cut. */
static int read_key_file(const struct opts *o, const char *path, char **key, char *err,
                         size_t errlen)
{
    char *buf;
    size_t len;
    int r = read_trusted(o, path, "key_file", true, KEY_MAX_BYTES, &buf, &len, err, errlen);
    if (r < 0)
        return -EINVAL;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    *key = buf;
    return 0;
}

static int check_key(const char *key, const char *what, char *err, size_t errlen)
{
    if (!key || !*key)
        return opts_refuse(err, errlen,
                           "no API key%s%s: set GENFS_API_KEY or pass -o key_file=PATH (a "
                           "file only you can read)",
                           what ? " for provider " : "", what ? what : "");
    for (const char *p = key; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return opts_refuse(err, errlen,
                               "the API key holds control characters: check its source");
    return 0;
}

static int load_key(struct opts *o, char *err, size_t errlen)
{
    int rc;
    if (o->key_file) {
        if ((rc = read_key_file(o, o->key_file, &o->api_key, err, errlen)) < 0)
            return rc;
    } else if (getenv("GENFS_API_KEY")) {
        char *v = getenv("GENFS_API_KEY");
        o->api_key = strdup(v);
        /* Out of /proc/PID/environ (the original block) and children's. */
        explicit_bzero(v, strlen(v));
        unsetenv("GENFS_API_KEY");
    }
    if ((rc = check_key(o->api_key, NULL, err, errlen)) < 0)
        return rc;
    for (size_t i = 0; i < o->n_providers; i++) {
        struct opts_provider *p = &o->providers[i];
        if (!p->key_file)
            return opts_refuse(err, errlen, "config: providers.%s needs a key_file", p->name);
        if ((rc = read_key_file(o, p->key_file, &p->api_key, err, errlen)) < 0 ||
            (rc = check_key(p->api_key, p->name, err, errlen)) < 0)
            return rc;
    }
    return 0;
}

static int config_providers(struct opts *o, const cJSON *obj, char *err, size_t errlen)
{
    if (!cJSON_IsObject(obj))
        return opts_refuse(err, errlen, "config: providers must be an object of name: settings");
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (!cJSON_IsObject(it))
            return opts_refuse(err, errlen, "config: providers.%s must be an object", it->string);
        struct opts_provider *grown =
            realloc(o->providers, (o->n_providers + 1) * sizeof(*o->providers));
        if (!grown)
            return opts_refuse(err, errlen, "out of memory");
        o->providers = grown;
        struct opts_provider *p = &o->providers[o->n_providers++];
        memset(p, 0, sizeof(*p));
        p->name = strdup(it->string);
        const cJSON *f;
        cJSON_ArrayForEach(f, it)
        {
            char **slot = strcmp(f->string, "profile") == 0    ? &p->profile
                          : strcmp(f->string, "api_url") == 0  ? &p->api_url
                          : strcmp(f->string, "key_file") == 0 ? &p->key_file
                                                               : NULL;
            if (!slot)
                return opts_refuse(err, errlen, "config: unknown key providers.%s.%s", p->name,
                                   f->string);
            if (!cJSON_IsString(f))
                return opts_refuse(err, errlen, "config: providers.%s.%s must be a string", p->name,
                                   f->string);
            free(*slot); /* a key given twice: the last one counts */
            *slot = strdup(f->valuestring);
        }
        if (!p->profile)
            p->profile = strdup(p->name);
    }
    return 0;
}

static int config_profile(const cJSON *obj, const char *path, struct opts_model *om, char *err,
                          size_t errlen)
{
    struct sched_profile *p = &om->profile;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        int64_t *slot = NULL;
        if (strcmp(it->string, "provider") == 0) {
            if (!cJSON_IsString(it))
                return opts_refuse(err, errlen, "config: %s.provider must be a string", path);
            free(om->provider);
            om->provider = strdup(it->valuestring);
            continue;
        }
        if (strcmp(it->string, "defaults") == 0 || strcmp(it->string, "request") == 0) {
            bool defaults = it->string[0] == 'd';
            if (!cJSON_IsObject(it))
                return opts_refuse(err, errlen, "config: %s.%s must be a JSON object", path,
                                   it->string);
            char **slot_json = defaults ? &om->defaults_json : &om->request_json;
            free(*slot_json);
            *slot_json = cJSON_PrintUnformatted(it);
            continue;
        }
        /* The user's numbers: initial_ms becomes learned's floor, and the
         * interval is no longer the unknown model's guess. */
        if (strcmp(it->string, "initial_ms") == 0) {
            slot = &p->initial_ms;
            p->initial_is_floor = true;
        } else if (strcmp(it->string, "interval_ms") == 0) {
            slot = &p->interval_ms;
            p->interval_is_guess = false;
        } else if (strcmp(it->string, "max_ms") == 0)
            slot = &p->max_ms;
        else if (strcmp(it->string, "late_ms") == 0)
            slot = &p->late_ms;
        else
            return opts_refuse(err, errlen, "config: unknown key %s.%s", path, it->string);
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 86400000.0)
            return opts_refuse(err, errlen, "config: %s.%s must be a number of milliseconds", path,
                               it->string);
        *slot = (int64_t)it->valuedouble;
    }
    if (p->interval_ms < 100)
        return opts_refuse(err, errlen, "config: %s.interval_ms must be at least 100", path);
    if (p->late_ms != 0 && p->late_ms < 100)
        return opts_refuse(err, errlen, "config: %s.late_ms must be at least 100", path);
    return 0;
}

static int set_string(char **slot, const cJSON *it, const char *key, char *err, size_t errlen)
{
    if (!cJSON_IsString(it))
        return opts_refuse(err, errlen, "config: %s must be a string", key);
    if (!*slot) /* the command line wins */
        *slot = strdup(it->valuestring);
    return 0;
}

/* The config's string keys: where each goes (the command line wins). */
static const struct {
    const char *key;
    size_t off;
} config_strings[] = {
    {"api_url", offsetof(struct opts, api_url)},
    {"state_dir", offsetof(struct opts, state_dir)},
    {"cache_dir", offsetof(struct opts, cache_dir)},
    {"store", offsetof(struct opts, store_url)},
    {"schedule", offsetof(struct opts, schedule_name)},
    {"callback_url", offsetof(struct opts, callback_url)},
    {"callback_listen", offsetof(struct opts, callback_listen)},
    {"provider", offsetof(struct opts, provider_name)},
    {"log_level", offsetof(struct opts, log_level_word)},
    {"key_file", offsetof(struct opts, key_file)},
};

/* rate, timeout, callback_poll, file_max_bytes, cache_max_bytes; 1: k is none of them. */
static int config_number(struct opts *o, const cJSON *it, const char *k, char *err, size_t errlen)
{
    if (strcmp(k, "rate") == 0) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble > 0))
            return opts_refuse(err, errlen, "config: rate must be a positive number");
        if (o->rate <= 0)
            o->rate = it->valuedouble;
        return 0;
    }
    if (strcmp(k, "timeout") == 0 || strcmp(k, "callback_poll") == 0) {
        /* seconds; the command line wins, as for rate */
        bool t = k[0] == 't';
        double *slot = t ? &o->timeout_s : &o->callback_poll_s;
        if (!cJSON_IsNumber(it) || !(it->valuedouble > 0) || it->valuedouble > (t ? 3600 : 86400))
            return opts_refuse(err, errlen, "config: %s must be a number of seconds, at most %d", k,
                               t ? 3600 : 86400);
        if (*slot <= 0)
            *slot = it->valuedouble;
        return 0;
    }
    if (strcmp(k, "file_max_bytes") == 0 || strcmp(k, "cache_max_bytes") == 0) {
        int64_t *slot = k[0] == 'f' ? &o->file_max_bytes : &o->cache_max_bytes;
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 9.0e18)
            return opts_refuse(err, errlen, "config: %s must be a number of bytes", k);
        if (*slot < 0)
            *slot = (int64_t)it->valuedouble;
        return 0;
    }
    return 1;
}

/* "models": a list of names, or an object of name: schedule profile. */
static int config_models(struct opts *o, const cJSON *it, char *err, size_t errlen)
{
    const cJSON *m;
    int rc = 0;
    if (cJSON_IsArray(it)) {
        cJSON_ArrayForEach(m, it)
        {
            if (!cJSON_IsString(m))
                return opts_refuse(err, errlen, "config: models[] must hold strings");
            if ((rc = add_model(o, m->valuestring, err, errlen)) < 0)
                return rc;
        }
        return 0;
    }
    if (!cJSON_IsObject(it))
        return opts_refuse(err, errlen, "config: models must be an array or an object");
    cJSON_ArrayForEach(m, it)
    {
        if ((rc = add_model(o, m->string, err, errlen)) < 0)
            return rc;
        if (!cJSON_IsObject(m))
            return opts_refuse(err, errlen, "config: models.%s must be an object", m->string);
        struct opts_model *om = find_model(o, m->string);
        char path[300];
        snprintf(path, sizeof(path), "models.%s", m->string);
        sched_profile_default(m->string, &om->profile);
        if ((rc = config_profile(m, path, om, err, errlen)) < 0)
            return rc;
        om->has_profile = true;
    }
    return 0;
}

static int config_key(struct opts *o, const cJSON *it, const char *source, char *err, size_t errlen)
{
    const char *k = it->string;
    for (size_t i = 0; i < sizeof(config_strings) / sizeof(config_strings[0]); i++)
        if (strcmp(k, config_strings[i].key) == 0)
            return set_string((char **)((char *)o + config_strings[i].off), it, k, err, errlen);
    if (strcmp(k, "providers") == 0)
        return config_providers(o, it, err, errlen);
    if (strcmp(k, "models") == 0)
        return config_models(o, it, err, errlen);
    int rc = config_number(o, it, k, err, errlen);
    if (rc <= 0)
        return rc;
    return opts_refuse(err, errlen, "config %s: unknown key %s", source, k);
}

int opts_config_parse(struct opts *o, const char *text, size_t len, const char *source, char *err,
                      size_t errlen)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        /* Where the parser stopped, as an editor counts: line and column from 1. */
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line = 1, col = 1;
        for (size_t i = 0; i < at; i++, col++)
            if (text[i] == '\n')
                line++, col = 0;
        return opts_refuse(err, errlen, "config %s is not valid JSON: error at line %d, column %d",
                           source, line, col);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return opts_refuse(err, errlen, "config %s is not a JSON object ({...})", source);
    }
    int rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        if ((rc = config_key(o, it, source, err, errlen)) < 0)
            break;
    }
    cJSON_Delete(root);
    /* Every message names the file, so a user with several configs knows which to fix. */
    static const char bare[] = "config: ";
    if (rc < 0 && strncmp(err, bare, sizeof(bare) - 1) == 0) {
        char what[512];
        snprintf(what, sizeof(what), "%s", err + sizeof(bare) - 1);
        snprintf(err, errlen, "config %s: %s", source, what);
    }
    return rc;
}

static int load_config(struct opts *o, bool explicit_path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int r =
        read_trusted(o, o->config_path, "config", false, CONFIG_MAX_BYTES, &buf, &len, err, errlen);
    if (r == -ENOENT && !explicit_path)
        return 0;
    if (r < 0)
        return -EINVAL;
    int rc = opts_config_parse(o, buf, len, o->config_path, err, errlen);
    free(buf);
    return rc;
}

/* The default of state_dir or cache_dir: one line when there is no home. */
static int default_dir(struct opts *o, char **slot, const char *env, const char *rel,
                       const char *opt, const char *why, char *err, size_t errlen)
{
    if (*slot)
        return 0;
    *slot = xdg_dir(o, env, rel);
    if (*slot)
        return 0;
    return opts_refuse(err, errlen, "no place for the %s: %s; set HOME or %s, or pass -o %s=DIR",
                       opt[0] == 's' ? "task database" : "cache", why, env, opt);
}

static int opts_take_raw_numbers(struct opts *o, struct raw_opts *r, int rc, char *err,
                                 size_t errlen)
{
    o->rate = -1;
    if (rc == 0 && r->rate && parse_rate(r->rate, &o->rate) < 0)
        rc = opts_refuse(err, errlen,
                         "invalid rate '%s': give requests per second, e.g. -o rate=10", r->rate);
    free(r->rate);
    o->timeout_s = -1;
    if (rc == 0 && r->timeout && (parse_rate(r->timeout, &o->timeout_s) < 0 || o->timeout_s > 3600))
        rc = opts_refuse(err, errlen,
                         "invalid timeout '%s': give seconds for one request, e.g. -o timeout=60",
                         r->timeout);
    free(r->timeout);
    o->callback_poll_s = -1;
    if (rc == 0 && r->callback_poll &&
        (parse_rate(r->callback_poll, &o->callback_poll_s) < 0 || o->callback_poll_s > 86400))
        rc = opts_refuse(err, errlen, "invalid callback_poll '%s': give seconds, e.g. 60",
                         r->callback_poll);
    free(r->callback_poll);
    o->file_max_bytes = -1;
    o->cache_max_bytes = -1;
    if (rc == 0 && r->file_max &&
        (parse_size(r->file_max, &o->file_max_bytes) < 0 || o->file_max_bytes < 1))
        rc = opts_refuse(err, errlen, "invalid file_max '%s': give a size such as 2G or 500M",
                         r->file_max);
    if (rc == 0 && r->cache_max && parse_size(r->cache_max, &o->cache_max_bytes) < 0)
        rc = opts_refuse(err, errlen,
                         "invalid cache_max '%s': give a size such as 10G (0: no limit)",
                         r->cache_max);
    if (rc == 0 && r->keep) {
        char *end;
        double days = strtod(r->keep, &end);
        if (end == r->keep || *end || !(days > 0 && days <= 36500))
            rc = opts_refuse(err, errlen,
                             "invalid keep '%s': give the days after which finished tasks are "
                             "forgotten, such as 30",
                             r->keep);
        else
            o->keep_days = days;
    }
    o->check = OPTS_CHECK_WARN;
    if (rc == 0 && r->check) {
        if (strcmp(r->check, "off") == 0)
            o->check = OPTS_CHECK_OFF;
        else if (strcmp(r->check, "fail") == 0)
            o->check = OPTS_CHECK_FAIL;
        else if (strcmp(r->check, "warn") != 0)
            rc = opts_refuse(err, errlen, "check must be warn, fail or off, not '%s'", r->check);
    }
    free(r->check);
    free(r->keep);
    free(r->file_max);
    free(r->cache_max);
    return rc;
}

/* The command line's words taken over into o (r's strings move or are freed); the numbers
 * checked. Unset numbers are -1, for the config file to fill. */
static int opts_take_raw(struct opts *o, struct raw_opts *r, char *err, size_t errlen)
{
    int rc = 0;
    if (r->key) {
        explicit_bzero(r->key, strlen(r->key));
        free(r->key);
        r->key = NULL;
        rc = opts_refuse(
            err, errlen,
            "the API key cannot be given on the command line (-o key=), where every user "
            "sees it (ps): put it in a file only you can read (chmod 600 FILE) and pass -o "
            "key_file=FILE, or set GENFS_API_KEY");
    }
    o->show_help = r->help;
    o->show_version = r->version;
    o->foreground = r->foreground;
    o->debug = r->debug;
    o->fresh = r->fresh;
    o->nonempty = r->nonempty;
    o->mountpoint = r->mountpoint;
    o->api_url = r->api_url;
    o->key_file = r->key_file;
    o->state_dir = r->state_dir;
    o->cache_dir = r->cache_dir;
    o->store_url = r->store;
    o->schedule_name = r->schedule;
    o->provider_name = r->provider;
    o->announce_word = r->notify;
    o->log_level_word = r->log_level;
    o->callback_url = r->callback_url;
    o->callback_listen = r->callback_listen;
    o->models_arg = r->models;
    return opts_take_raw_numbers(o, r, rc, err, errlen);
}

/* -o models=A:B:C, each added as if listed in the config. */
static int opts_add_arg_models(struct opts *o, char *err, size_t errlen)
{
    int rc = 0;
    if (o->models_arg) {
        char *copy = strdup(o->models_arg), *save = NULL;
        for (char *t = strtok_r(copy, ":", &save); t && rc == 0; t = strtok_r(NULL, ":", &save)) {
            /* OWNER/NAME:VERSION: a Replicate version (64 hex digits) after a model id with
             * a '/' belongs to it, since ':' also separates the models. */
            char *next = save && strchr(t, '/') && strspn(save, "0123456789abcdef") == 64 &&
                                 (save[64] == ':' || !save[64])
                             ? save
                             : NULL;
            if (next) {
                t[strlen(t)] = ':';
                save = next[64] ? next + 65 : next + 64;
                next[64] = '\0';
            }
            rc = add_model(o, t, err, errlen);
        }
        free(copy);
    }
    return rc;
}

/* The mount's provider (its profile file: the user's own shadows a built-in), and every
 * model's provider known. */
static int opts_settle_provider(struct opts *o, char *err, size_t errlen)
{
    if (!o->provider_name)
        o->provider_name = strdup(PROVIDER_DEFAULT);
    for (size_t i = 0; i < o->n_models; i++) {
        const char *want = o->models[i].provider;
        bool known = !want || strcmp(want, o->provider_name) == 0;
        for (size_t j = 0; !known && j < o->n_providers; j++)
            known = strcmp(o->providers[j].name, want) == 0;
        if (!known)
            return opts_refuse(
                err, errlen,
                "config: models.%s.provider '%s' is neither -o provider nor a key of "
                "providers",
                o->models[i].name, want);
    }
    if (!strchr(o->provider_name, '/')) {
        /* A profile of the user's own shadows a built-in of the same name. */
        char *dir = xdg_dir(o, "XDG_CONFIG_HOME", ".config");
        char path[4096];
        snprintf(path, sizeof(path), "%s/profiles/%s.json", dir ? dir : "", o->provider_name);
        if (dir && access(path, F_OK) == 0)
            o->provider_file = strdup(path);
        free(dir);
    } else {
        o->provider_file = strdup(o->provider_name);
    }
    return 0;
}

/* After the command line and the config: defaults for what neither set, and the checks
 * that need both. */
static int opts_settle(struct opts *o, char *err, size_t errlen)
{
    if (!o->api_url && getenv("GENFS_API_URL"))
        o->api_url = strdup(getenv("GENFS_API_URL"));
    if (o->api_url && strncmp(o->api_url, "http://", 7) != 0 &&
        strncmp(o->api_url, "https://", 8) != 0)
        return opts_refuse(err, errlen, "api_url '%s' must start with http:// or https://",
                           o->api_url);

    if (!o->schedule_name)
        o->schedule_name = strdup("learned");
    if (sched_kind_parse(o->schedule_name, &o->schedule) < 0)
        return opts_refuse(err, errlen,
                           "unknown schedule '%s': use fixed, adaptive, exponential or learned",
                           o->schedule_name);
    if (o->rate <= 0)
        o->rate = 10;
    if (o->timeout_s <= 0)
        o->timeout_s = 60;
    if (o->callback_poll_s <= 0)
        o->callback_poll_s = 60;
    o->log_level = LOG_LVL_INFO;
    if (o->log_level_word && log_level_parse(o->log_level_word, &o->log_level) < 0)
        return opts_refuse(err, errlen, "log_level must be error, warn, info or debug, not '%s'",
                           o->log_level_word);
    if (o->debug)
        o->log_level = LOG_LVL_DEBUG;
    o->announce = true;
    if (o->announce_word) {
        if (strcmp(o->announce_word, "off") == 0)
            o->announce = false;
        else if (strcmp(o->announce_word, "on") != 0)
            return opts_refuse(err, errlen, "notify must be on or off, not '%s'", o->announce_word);
    }
    int rc = opts_settle_provider(o, err, errlen);
    if (rc < 0)
        return rc;
    if (!o->callback_url != !o->callback_listen)
        return opts_refuse(
            err, errlen,
            "callback mode needs both -o callback_url=URL (how the provider reaches us) "
            "and -o callback_listen=ADDR:PORT");
    if (o->callback_url && strncmp(o->callback_url, "http://", 7) != 0 &&
        strncmp(o->callback_url, "https://", 8) != 0)
        return opts_refuse(err, errlen, "callback_url '%s' must start with http:// or https://",
                           o->callback_url);
    if (o->file_max_bytes < 0)
        o->file_max_bytes = INT64_C(2) << 30;
    if (o->cache_max_bytes < 0)
        o->cache_max_bytes = INT64_C(10) << 30;
    return 0;
}

int opts_parse(int argc, char **argv, struct opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    struct raw_opts r = {0};
    o->fuse_args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
    fuse_opt_add_arg(&o->fuse_args, argv[0]);
    /* /proc/mounts shows "genfs ... fuse.genfs"; the user's own -o may override. */
    fuse_opt_add_arg(&o->fuse_args, "-osubtype=genfs,fsname=genfs");
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    if (fuse_opt_parse(&args, &r, opt_spec, opt_proc) != 0) {
        fuse_opt_free_args(&args);
        return opts_refuse(err, errlen, "cannot parse the command line: see genfs --help");
    }
    /* What fuse_opt kept is for libfuse (allow_other, ...). */
    for (int i = 1; i < args.argc; i++)
        fuse_opt_add_arg(&o->fuse_args, args.argv[i]);
    fuse_opt_free_args(&args);

    int rc = opts_take_raw(o, &r, err, errlen);
    bool explicit_config = r.config != NULL;
    o->config_path = r.config;
    if (rc < 0 || o->show_help || o->show_version)
        return rc;
    if (r.extra_nonopt)
        return opts_refuse(err, errlen,
                           "more than one mountpoint given: genfs [options] MOUNTPOINT");
    if (!o->mountpoint)
        return opts_refuse(err, errlen,
                           "no mountpoint: genfs [options] MOUNTPOINT (see genfs --help)");

    char home_why[512] = "";
    o->home = home_find(home_why, sizeof(home_why));
    /* The directory of the user's config and profiles; without a home there is none. */
    char *config_dir = xdg_dir(o, "XDG_CONFIG_HOME", ".config");
    if (!o->config_path && config_dir) {
        size_t n = strlen(config_dir) + sizeof("/config.json");
        o->config_path = malloc(n);
        snprintf(o->config_path, n, "%s/config.json", config_dir);
    }
    free(config_dir);
    if ((rc = opts_add_arg_models(o, err, errlen)) < 0)
        return rc;
    if (o->config_path && (rc = load_config(o, explicit_config, err, errlen)) < 0)
        return rc;
    if ((rc = opts_settle(o, err, errlen)) < 0)
        return rc;
    if ((rc = default_dir(o, &o->state_dir, "XDG_STATE_HOME", ".local/state", "state_dir", home_why,
                          err, errlen)) < 0 ||
        (rc = default_dir(o, &o->cache_dir, "XDG_CACHE_HOME", ".cache", "cache_dir", home_why, err,
                          errlen)) < 0)
        return rc;
    return load_key(o, err, errlen);
}

void opts_print_help(const char *prog)
{
    printf("usage: %s [options] MOUNTPOINT\n"
           "\n"
           "Mount hosted AI generation APIs as files: write a prompt to MODEL/new,\n"
           "read MODEL/<taskId>/result.\n"
           "\n"
           "options:\n"
           "  -f                     stay in the foreground\n"
           "  -d                     debug log (implies -f)\n"
           "  -o api_url=URL         provider base URL (or env GENFS_API_URL)\n"
           "  -o key_file=PATH       file holding the API key, mode 600 (or env GENFS_API_KEY)\n"
           "  -o config=PATH         JSON config (default $XDG_CONFIG_HOME/genfs/config.json)\n"
           "  -o state_dir=DIR       task database (default $XDG_STATE_HOME/genfs)\n"
           "  -o cache_dir=DIR       downloaded media (default $XDG_CACHE_HOME/genfs)\n"
           "  -o store=postgresql://HOST/DB  share tasks with other mounts (team mounts)\n"
           "  -o models=a:b:c        model directories to create at mount\n"
           "  -o schedule=NAME       fixed | adaptive | exponential | learned (default learned)\n"
           "  -o rate=N              at most N API requests per second (default 10)\n"
           "  -o timeout=SECONDS     time limit of one API request (default 60)\n"
           "  -o file_max=SIZE       largest result file downloaded (default 2G)\n"
           "  -o cache_max=SIZE      cache size (default 10G): least recently used files go if\n"
           "                         their provider can serve them again; the rest is kept\n"
           "  -o keep=DAYS           forget finished tasks (and their files) DAYS after they\n"
           "                         ended (default: never; rmdir forgets one)\n"
           "  -o check=warn|fail|off at start, ask each provider once whether it answers and\n"
           "                         takes the key: warn (default), refuse to mount, or skip\n"
           "  -o fresh               start with no tasks when the database genfs used before\n"
           "                         is missing or damaged (what is left is moved aside)\n"
           "  -o provider=NAME|FILE  provider profile: apixo (default), kie, replicate, fal,\n"
           "                         or a profile file (see genfs(1))\n"
           "  -o notify=on|off       inotify announcements for watchers (default on)\n"
           "  -o log_level=LEVEL     error | warn | info (default) | debug: what reaches\n"
           "                         stderr or syslog (-d: debug)\n"
           "  -o callback_url=URL,callback_listen=ADDR:PORT\n"
           "                         webhook mode: the provider calls URL/<token> when a task\n"
           "                         ends; genfs listens on ADDR:PORT\n"
           "  -o callback_poll=SECS  webhook mode: safety polls this often (default 60)\n"
           "  -o allow_other         let other users see the mount (needs user_allow_other)\n"
           "  -o nonempty            mount on a directory that is not empty, or on a live mount\n"
           "  -h, --help             this help\n"
           "  -V, --version          the version\n"
           "\n"
           "See genfs(1) for the mount layout, errors and examples.\n",
           prog);
}

void opts_free(struct opts *o)
{
    free(o->mountpoint);
    free(o->api_url);
    free(o->key_file);
    free(o->config_path);
    free(o->home);
    free(o->state_dir);
    free(o->cache_dir);
    free(o->store_url);
    free(o->schedule_name);
    free(o->provider_name);
    free(o->provider_file);
    free(o->announce_word);
    free(o->log_level_word);
    free(o->callback_url);
    free(o->callback_listen);
    free(o->models_arg);
    for (size_t i = 0; i < o->n_models; i++) {
        free(o->models[i].name);
        free(o->models[i].provider);
        free(o->models[i].defaults_json);
        free(o->models[i].request_json);
    }
    free(o->models);
    for (size_t i = 0; i < o->n_providers; i++) {
        struct opts_provider *p = &o->providers[i];
        free(p->name);
        free(p->profile);
        free(p->api_url);
        free(p->key_file);
        if (p->api_key) {
            explicit_bzero(p->api_key, strlen(p->api_key));
            free(p->api_key);
        }
    }
    free(o->providers);
    if (o->api_key) {
        explicit_bzero(o->api_key, strlen(o->api_key));
        free(o->api_key);
    }
    fuse_opt_free_args(&o->fuse_args);
}
