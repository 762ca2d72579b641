/* What every libFuzzer target here shares: an invariant check that names the
 * target (FUZZ_NAME, set by meson) and aborts, and the two ways a target
 * copies its input: exact size without a NUL (ASan then catches a read past
 * the length) or exact size plus the NUL a C-string parser is handed. */
#ifndef GENFS_FUZZ_COMMON_H
#define GENFS_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "%s: invariant broken: %s\n", FUZZ_NAME, what);
        abort();
    }
}

static inline char *fuzz_copy(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (buf && size)
        memcpy(buf, data, size);
    return buf;
}

static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
    }
    return text;
}

#endif
