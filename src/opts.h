/* Command line (fuse_opt) and the JSON config: parsing, validation and the
 * one-line messages for bad settings. Reads the config, profile and key
 * files, and only those another user could not have written. */
#ifndef GENFS_OPTS_H
#define GENFS_OPTS_H

#include "log.h"
#include "sched.h"

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>

struct opts_model {
    char *name;
    char *provider; /* a name from the config's "providers", or NULL: the mount's own */
    bool has_profile;
    struct sched_profile profile;
    char *defaults_json; /* models.NAME.defaults: merged under every input, or NULL */
    char *request_json;  /* models.NAME.request: top-level request fields, or NULL */
};

/* A further provider from the config, beside the mount's own (-o provider). */
struct opts_provider {
    char *name;
    char *profile; /* built-in name or profile file; default: name */
    char *api_url;
    char *key_file;
    char *api_key; /* secret */
};

/* -o check: the start-up request to each provider. */
enum opts_check { OPTS_CHECK_WARN, OPTS_CHECK_FAIL, OPTS_CHECK_OFF };

struct opts {
    char *mountpoint;
    bool foreground;
    bool debug;
    bool show_help;
    bool show_version;
    bool nonempty; /* mount over a non-empty directory or a live mount */
    char *api_url;
    char *key_file;
    char *config_path;
    char *home; /* $HOME, else the password database's; NULL when neither is a directory */
    char *state_dir;
    char *cache_dir;
    char *store_url; /* -o store: a libpq connection string (team mounts), or NULL: SQLite */
    char *schedule_name;
    char *provider_name;
    char *provider_file; /* a profile file to load, else provider_name is built in */
    char *announce_word;
    char *log_level_word;
    char *callback_url;
    char *callback_listen;
    char *models_arg;
    double rate;
    double timeout_s; /* one API request's time limit */
    int64_t file_max_bytes;
    double callback_poll_s; /* callback mode: safety polls this often */
    int64_t cache_max_bytes;
    double keep_days; /* -o keep: forget finished tasks this long after they ended; 0: never */
    enum sched_kind schedule;
    bool announce;
    enum opts_check check;
    bool fresh; /* -o fresh: start with no tasks when the database is missing or damaged */
    enum log_level log_level; /* what reaches stderr or syslog (MOUNT/log: info and up) */
    struct opts_model *models;
    size_t n_models;
    struct opts_provider *providers;
    size_t n_providers;
    char *api_key;              /* secret: never logged, never in argv */
    struct fuse_args fuse_args; /* what libfuse gets (allow_other, ...) */
};

/* 0, or -EINVAL with a one-line message in err. Help/version set the flags
 * and return 0 without validating the rest. */
int opts_parse(int argc, char **argv, struct opts *o, char *err, size_t errlen);
void opts_free(struct opts *o);

/* The JSON config's text (len bytes, no NUL needed) applied to o, as
 * opts_parse does with the config file: settings already in o (the command
 * line) win. source names it in messages (the file's path). 0, or -EINVAL
 * with a one-line message in err. */
int opts_config_parse(struct opts *o, const char *text, size_t len, const char *source, char *err,
                      size_t errlen);
void opts_print_help(const char *prog);

/* The text (NUL-terminated, at most max bytes) of the file at path, if no
 * other user could have written it or put it there: the file and every
 * directory above it (up to o->home or /) belong to the user or root and no
 * one else may write them, except a sticky directory such as /tmp. what
 * names the file in messages ("config", "key_file", ...). 0, or a negative
 * errno with a one-line message in err that says what to change. */
int opts_read_trusted(const struct opts *o, const char *path, const char *what, size_t max,
                      char **text, size_t *len, char *err, size_t errlen);

/* Model id rules shared by the command line and mkdir: segments of
 * [A-Za-z0-9._-] separated by '/', none empty or starting with '.'; the last
 * may hold one ':' before a version (OWNER/NAME:VERSION). */
bool opts_model_name_valid(const char *name);

#endif
