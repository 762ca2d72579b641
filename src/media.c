#include "media.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

bool media_is_data_uri(const char *url)
{
    return url && strncasecmp(url, "data:", 5) == 0;
}

/* The media type of a data: URI, lower-cased, without parameters. */
static void media_data_type(const char *uri, char *out, size_t outlen)
{
    const char *t = uri + 5;
    size_t n = strcspn(t, ";,");
    if (n >= outlen)
        n = 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)t[i]);
    out[n] = '\0';
}

void media_file_name(unsigned n, const char *stem, const char *url, const char *content_type,
                     char *out, size_t outlen)
{
    const char *ext = media_ext_for_type(content_type);
    if (!ext && media_is_data_uri(url)) {
        char type[64];
        media_data_type(url, type, sizeof(type));
        ext = strcmp(type, "text/plain") == 0 ? "txt" : media_ext_for_type(type);
    } else if (!ext) {
        ext = media_ext_for_url(url);
    }
    if (stem)
        snprintf(out, outlen, "%s.%s", stem, ext ? ext : "bin");
    else
        snprintf(out, outlen, "%u.%s", n, ext ? ext : "bin");
}

static int media_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

static int media_hex_value(unsigned char c)
{
    if (isdigit(c))
        return c - '0';
    c = (unsigned char)tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int media_data_uri_decode(const char *uri, unsigned char **out, size_t *outlen, char *mediatype,
                          size_t mtlen)
{
    *out = NULL;
    *outlen = 0;
    if (!media_is_data_uri(uri))
        return -EINVAL;
    const char *comma = strchr(uri + 5, ',');
    if (!comma)
        return -EINVAL;
    media_data_type(uri, mediatype, mtlen);
    /* ";base64" is the last parameter before the comma (RFC 2397). */
    bool b64 = comma - uri >= 12 && strncasecmp(comma - 7, ";base64", 7) == 0;
    const unsigned char *d = (const unsigned char *)comma + 1;
    size_t n = strlen((const char *)d);
    unsigned char *buf = malloc(n + 1);
    if (!buf)
        return -ENOMEM;
    size_t len = 0;
    if (b64) {
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < n; i++) {
            if (d[i] == '=' || isspace(d[i]))
                continue;
            int v = media_b64_value(d[i]);
            if (v < 0) {
                free(buf);
                return -EINVAL;
            }
            acc = (acc << 6) | (uint32_t)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                buf[len++] = (unsigned char)(acc >> bits);
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            int hi, lo;
            if (d[i] == '%' && i + 2 < n && (hi = media_hex_value(d[i + 1])) >= 0 &&
                (lo = media_hex_value(d[i + 2])) >= 0) {
                buf[len++] = (unsigned char)(hi * 16 + lo);
                i += 2;
            } else {
                buf[len++] = d[i];
            }
        }
    }
    *out = buf;
    *outlen = len;
    return 0;
}

char *media_data_uri_text(const char *text, size_t len)
{
    static const char prefix[] = "data:text/plain;charset=utf-8;base64,";
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t cap = sizeof(prefix) + (len + 2) / 3 * 4;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    memcpy(out, prefix, sizeof(prefix) - 1);
    char *o = out + sizeof(prefix) - 1;
    const unsigned char *t = (const unsigned char *)text;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)t[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)t[i + 1] << 8;
        if (i + 2 < len)
            v |= t[i + 2];
        *o++ = alphabet[(v >> 18) & 63];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        *o++ = i + 2 < len ? alphabet[v & 63] : '=';
    }
    *o = '\0';
    return out;
}
