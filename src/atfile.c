/* "@PATH" values of a JSON input: found in document order, replaced by URLs
 * afterwards (atfile.h). */
#include "atfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Deeper inputs are refused by cJSON's own nesting limit before this. */
#define ATFILE_MAX_DEPTH 64

static bool atfile_is_file(const char *s)
{
    return s[0] == '@' && s[1] != '\0' && s[1] != '@';
}

static bool atfile_is_escape(const char *s)
{
    return s[0] == '@' && s[1] == '@';
}

static int atfile_add(struct atfile_list *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->paths[i], path) == 0)
            return 0;
    if (l->n == ATFILE_MAX)
        return -E2BIG;
    char **grown = realloc(l->paths, (l->n + 1) * sizeof(char *));
    if (!grown)
        return -ENOMEM;
    l->paths = grown;
    if (!(l->paths[l->n] = strdup(path)))
        return -ENOMEM;
    l->n++;
    return 0;
}

static int atfile_walk(const cJSON *v, struct atfile_list *l, int depth)
{
    if (depth > ATFILE_MAX_DEPTH)
        return -EINVAL;
    if (cJSON_IsString(v)) {
        if (atfile_is_file(v->valuestring))
            return atfile_add(l, v->valuestring + 1);
        if (atfile_is_escape(v->valuestring))
            l->n_escaped++;
        return 0;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        int rc = atfile_walk(it, l, depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void atfile_list_clear(struct atfile_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    *l = (struct atfile_list){0};
}

int atfile_find(const char *input_json, struct atfile_list *out)
{
    *out = (struct atfile_list){0};
    cJSON *root = input_json ? cJSON_Parse(input_json) : NULL;
    int rc = cJSON_IsObject(root) ? atfile_walk(root, out, 0) : -EINVAL;
    cJSON_Delete(root);
    if (rc < 0)
        atfile_list_clear(out);
    return rc;
}

/* A parsed value owns its string: it is swapped for a copy of s. */
static int atfile_set(cJSON *v, const char *s)
{
    char *copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    free(v->valuestring);
    v->valuestring = copy;
    return 0;
}

static int atfile_replace(cJSON *v, const struct atfile_list *files, const char *const *urls,
                          int depth)
{
    if (depth > ATFILE_MAX_DEPTH)
        return -EINVAL;
    if (cJSON_IsString(v)) {
        if (atfile_is_escape(v->valuestring))
            return atfile_set(v, v->valuestring + 1);
        if (!atfile_is_file(v->valuestring))
            return 0;
        for (size_t i = 0; i < files->n; i++)
            if (strcmp(files->paths[i], v->valuestring + 1) == 0)
                return urls[i] ? atfile_set(v, urls[i]) : -EINVAL;
        return -EINVAL;
    }
    cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        int rc = atfile_replace(it, files, urls, depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int atfile_rewrite(const char *input_json, const struct atfile_list *files, const char *const *urls,
                   char **out)
{
    *out = NULL;
    cJSON *root = input_json ? cJSON_Parse(input_json) : NULL;
    int rc = cJSON_IsObject(root) ? atfile_replace(root, files, urls, 0) : -EINVAL;
    if (rc == 0 && !(*out = cJSON_PrintUnformatted(root)))
        rc = -ENOMEM;
    cJSON_Delete(root);
    return rc;
}

const char *atfile_content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"png", "image/png"},       {"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},
        {"webp", "image/webp"},     {"gif", "image/gif"},         {"heic", "image/heic"},
        {"avif", "image/avif"},     {"bmp", "image/bmp"},         {"tif", "image/tiff"},
        {"tiff", "image/tiff"},     {"mp3", "audio/mpeg"},        {"wav", "audio/wav"},
        {"flac", "audio/flac"},     {"ogg", "audio/ogg"},         {"m4a", "audio/mp4"},
        {"mp4", "video/mp4"},       {"webm", "video/webm"},       {"mov", "video/quicktime"},
        {"txt", "text/plain"},      {"json", "application/json"}, {"pdf", "application/pdf"},
        {"zip", "application/zip"},
    };
    const char *base = strrchr(path, '/');
    const char *dot = strrchr(base ? base + 1 : path, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcasecmp(dot + 1, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}
