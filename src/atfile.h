/* Local files as inputs (issue 19): in a JSON input, a string value "@PATH"
 * names a local file, which genfs reads with the writer's permissions and
 * replaces with a URL (an upload's, or a data: URI). "@@TEXT" is the literal
 * string "@TEXT", and "@" alone is itself. Object keys are never files. Pure:
 * this finds the names and rewrites the values; reading, uploading and
 * resolving relative paths are the caller's. */
#ifndef GENFS_ATFILE_H
#define GENFS_ATFILE_H

#include <stddef.h>

/* More distinct files than this in one input is refused (-E2BIG). */
#define ATFILE_MAX 32

struct atfile_list {
    char **paths;     /* the distinct PATHs (without the @), in document order */
    size_t n;         /* how many */
    size_t n_escaped; /* how many "@@" values need unescaping */
};

/* Finds the "@PATH" values of an input object (at any depth, in objects and
 * arrays). 0 (n may be 0), -EINVAL when the text is not a JSON object,
 * -E2BIG over ATFILE_MAX distinct files, -ENOMEM. */
int atfile_find(const char *input_json, struct atfile_list *out);

/* The input with each "@PATH" replaced by urls[i], where files->paths[i] is
 * PATH, and each "@@TEXT" by "@TEXT": compact JSON in *out (malloc'd). Call
 * it whenever atfile_find found files or escapes. 0, -EINVAL (not an object,
 * or a PATH that files does not hold), -ENOMEM. */
int atfile_rewrite(const char *input_json, const struct atfile_list *files, const char *const *urls,
                   char **out);

void atfile_list_clear(struct atfile_list *l);

/* The Content-Type a file's extension says (case-insensitive: "photo.JPG" is
 * image/jpeg), or NULL (application/octet-stream) for one it does not know. */
const char *atfile_content_type(const char *path);

#endif
