/* Pure: names of downloaded result files (files/0.png, 1.wav, ...) from the
 * Content-Type a server gave or the URL's own extension. */
#ifndef GENFS_MEDIA_H
#define GENFS_MEDIA_H

#include <stdbool.h>
#include <stddef.h>

/* The extension (no dot) for a Content-Type such as "image/png; charset=x",
 * or NULL when the type says nothing useful (octet-stream, text/plain...). */
const char *media_ext_for_type(const char *content_type);

/* The extension of the URL's path (query and fragment ignored) when it is a
 * known media extension, else NULL. "jpeg" is returned as "jpg". */
const char *media_ext_for_url(const char *url);

/* "STEM.ext" (stem NULL: "N.ext"): the extension from the Content-Type first,
 * then the URL (a data: URI's media type), else "bin". url and content_type
 * may be NULL. Writes into out (size >= 32). */
void media_file_name(unsigned n, const char *stem, const char *url, const char *content_type,
                     char *out, size_t outlen);

/* True for a data: URI (RFC 2397), which is decoded locally, never fetched. */
bool media_is_data_uri(const char *url);

/* Decodes a data: URI: *out gets the bytes (malloc'd), *outlen their count,
 * mediatype its media type without parameters ("" when the URI names none).
 * 0, -EINVAL for a URI that is not a well-formed data: URI, or -ENOMEM. */
int media_data_uri_decode(const char *uri, unsigned char **out, size_t *outlen, char *mediatype,
                          size_t mtlen);

/* A data: URI of media type text/plain (UTF-8, base64) holding text (malloc'd, or NULL). */
char *media_data_uri_text(const char *text, size_t len);

#endif
