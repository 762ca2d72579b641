#include "media.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *type;
    const char *ext;
} types[] = {
    {"image/png", "png"},         {"image/jpeg", "jpg"},        {"image/jpg", "jpg"},
    {"image/gif", "gif"},         {"image/webp", "webp"},       {"image/avif", "avif"},
    {"image/svg+xml", "svg"},     {"image/bmp", "bmp"},         {"image/tiff", "tiff"},
    {"audio/wav", "wav"},         {"audio/x-wav", "wav"},       {"audio/wave", "wav"},
    {"audio/vnd.wave", "wav"},    {"audio/mpeg", "mp3"},        {"audio/mp3", "mp3"},
    {"audio/ogg", "ogg"},         {"audio/flac", "flac"},       {"audio/x-flac", "flac"},
    {"audio/aac", "aac"},         {"audio/mp4", "m4a"},         {"video/mp4", "mp4"},
    {"video/webm", "webm"},       {"video/quicktime", "mov"},   {"video/x-matroska", "mkv"},
    {"model/gltf-binary", "glb"}, {"application/json", "json"},
};

static const char *const url_exts[] = {"png",  "jpg",  "gif", "webp", "avif", "svg", "bmp",
                                       "tiff", "wav",  "mp3", "ogg",  "flac", "aac", "m4a",
                                       "mp4",  "webm", "mov", "mkv",  "glb",  "json"};

const char *media_ext_for_type(const char *content_type)
{
    if (!content_type)
        return NULL;
    while (*content_type == ' ')
        content_type++;
    size_t len = strcspn(content_type, "; \t");
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strlen(types[i].type) == len && strncasecmp(types[i].type, content_type, len) == 0)
            return types[i].ext;
    return NULL;
}

const char *media_ext_for_url(const char *url)
{
    if (!url)
        return NULL;
    const char *path = strstr(url, "://");
    path = path ? strchr(path + 3, '/') : url;
    if (!path)
        return NULL;
    size_t len = strcspn(path, "?#");
    const char *dot = NULL;
    for (size_t i = 0; i < len; i++) {
        if (path[i] == '/')
            dot = NULL;
        else if (path[i] == '.')
            dot = path + i;
    }
    if (!dot)
        return NULL;
    size_t elen = (size_t)(path + len - dot - 1);
    if (elen == 4 && strncasecmp(dot + 1, "jpeg", 4) == 0)
        return "jpg";
    for (size_t i = 0; i < sizeof(url_exts) / sizeof(url_exts[0]); i++)
        if (strlen(url_exts[i]) == elen && strncasecmp(url_exts[i], dot + 1, elen) == 0)
            return url_exts[i];
    return NULL;
}

void media_file_name(unsigned n, const char *url, const char *content_type, char *out,
                     size_t outlen)
{
    const char *ext = media_ext_for_type(content_type);
    if (!ext)
        ext = media_ext_for_url(url);
    snprintf(out, outlen, "%u.%s", n, ext ? ext : "bin");
}
