/* Pure: turns what a user wrote to MODEL/new into the provider's input
 * object (SPEC 3). Text is a prompt, a JSON object is the whole input. */
#ifndef GENFS_INPUT_H
#define GENFS_INPUT_H

#include <stddef.h>

#define INPUT_MAX_BYTES (1024 * 1024)

/* On success returns 0 and sets *json (malloc'd, compact JSON object text)
 * and *prompt (malloc'd: the "prompt" string if the object has one, else "").
 * Errors: -EINVAL (empty/whitespace only, NUL bytes, '{' that is not a valid
 * JSON object, invalid UTF-8 in a text prompt), -EFBIG (over INPUT_MAX_BYTES).
 * msg (if not NULL) gets one line saying what was wrong and what to do. */
int input_parse(const char *buf, size_t len, char **json, char **prompt, char *msg, size_t msglen);

/* The input a model's defaults (a JSON object text, or NULL) make of what the
 * writer gave: the defaults' keys under the writer's, objects merged key by
 * key, the writer's value winning. 0 with *out (malloc'd compact JSON), or
 * -EINVAL when either is not a JSON object, or -ENOMEM. */
int input_merge_defaults(const char *defaults_json, const char *input_json, char **out);

/* What the len bytes at buf, written after the first `before` bytes of an input,
 * already make of it: -EFBIG when the input passes INPUT_MAX_BYTES, -EINVAL for
 * a NUL byte (input_parse would refuse either, whatever comes next), else 0.
 * msg as for input_parse. */
int input_check_piece(const char *buf, size_t len, size_t before, char *msg, size_t msglen);

#endif
