/* The webhook listener (callback mode): libmicrohttpd's own thread checks
 * each callback's token and asks the engine to poll that task now. It never
 * changes state itself: a callback is a hint, never the truth. */
#ifndef GENFS_HOOK_H
#define GENFS_HOOK_H

#include "log.h"

#include <stddef.h>
#include <stdint.h>

#define HOOK_TOKEN_BYTES 16 /* 128 bits from getrandom */
#define HOOK_TOKEN_LEN (2 * HOOK_TOKEN_BYTES)
/* A Replicate webhook is the whole prediction, logs included: well over 64 KiB. */
#define HOOK_MAX_BODY (1024 * 1024)

struct hook;

/* Called from the listener's thread for a valid callback. */
typedef void (*hook_poll_fn)(void *arg, uint32_t task_idx);

/* listen: "ADDR:PORT" ([v6]:PORT too); path: the callback URL's path, the
 * prefix every callback must carry before "/<token>". */
int hook_start(const char *listen, const char *path, struct log *lg, hook_poll_fn fn, void *arg,
               struct hook **out, char *err, size_t errlen);
void hook_stop(struct hook *h);

/* The token table (thread-safe). */
int hook_token_add(struct hook *h, const char *token, uint32_t task_idx);
void hook_token_remove(struct hook *h, const char *token);

/* A fresh random token, HOOK_TOKEN_LEN hex chars and a NUL. */
int hook_token_new(char out[HOOK_TOKEN_LEN + 1]);

/* Pure: the token of a request path under prefix, or NULL if the path is not
 * PREFIX/<token> with a well-formed token. Points into path. */
const char *hook_path_token(const char *prefix, const char *path);

/* Figures for stats: callbacks accepted, bad requests answered with an error,
 * bad requests over their source's budget (connection dropped unanswered). */
void hook_counts(struct hook *h, uint64_t *accepted, uint64_t *rejected, uint64_t *dropped);

#endif
