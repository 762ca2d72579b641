/* Pure: names of downloaded result files (files/0.png, 1.wav, ...) from the
 * Content-Type a server gave or the URL's own extension. */
#ifndef GENFS_MEDIA_H
#define GENFS_MEDIA_H

#include <stddef.h>

/* The extension (no dot) for a Content-Type such as "image/png; charset=x",
 * or NULL when the type says nothing useful (octet-stream, text/plain...). */
const char *media_ext_for_type(const char *content_type);

/* The extension of the URL's path (query and fragment ignored) when it is a
 * known media extension, else NULL. "jpeg" is returned as "jpg". */
const char *media_ext_for_url(const char *url);

/* "N.ext": from the Content-Type first, then the URL, else "N.bin".
 * Either argument may be NULL. Writes into out (size >= 32). */
void media_file_name(unsigned n, const char *url, const char *content_type, char *out,
                     size_t outlen);

#endif
