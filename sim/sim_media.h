/* Media encoders for genfs-sim: PNG (stored deflate), WAV (16-bit PCM mono), animated GIF89a
 * (9-bit LZW with clear codes) and plain text (words drawn from the seed, ending in a newline).
 * They produce their bytes sequentially in pieces of at most ~64 KiB, so a 200 MB file is streamed
 * with constant memory, and the exact size is known before the first byte (Content-Length). Pure:
 * no I/O. */
#ifndef SIM_MEDIA_H
#define SIM_MEDIA_H

#include "sim_model.h"

#include <stddef.h>
#include <stdint.h>

#define SIM_MEDIA_PIECE_MAX 70000
#define SIM_MEDIA_WAV_RATE 22050
#define SIM_MEDIA_GIF_CLEAR_EVERY 250 /* literals between clear codes: keeps codes at 9 bits */
#define SIM_MEDIA_TEXT_DEFAULT 240    /* bytes of a text output by default */
/* Largest media sim_media_all builds in memory (data: URIs, inline text): 64 MiB. */
#define SIM_MEDIA_INLINE_MAX (64ull << 20)

struct sim_media {
    enum sim_kind kind;
    uint64_t seed;
    uint64_t size;
    uint64_t pos; /* bytes handed out by sim_media_read so far */
    uint8_t piece[SIM_MEDIA_PIECE_MAX];
    size_t piece_len;
    size_t piece_off;
    int phase;
    uint32_t crc_table[256];
    uint32_t pat[8]; /* pattern parameters drawn from the seed */
    /* PNG */
    uint32_t width, height;
    uint64_t raw_total, raw_done, nblocks, block;
    uint32_t row, col;
    uint32_t adler_a, adler_b;
    /* WAV */
    uint64_t samples, sample;
    uint32_t phase_acc;
    int16_t sine[1024];
    /* GIF */
    uint32_t frames, frame, gx, gy;
    uint64_t npix, pix;
    uint64_t bitbuf;
    int nbits;
    uint8_t sub[255];
    size_t subfill;
    uint8_t palette[768];
};

/* target_bytes 0 = the default size (PNG 256x256, WAV 2 s, GIF 8 frames 64x64, text 240 B);
 * otherwise the dimensions grow so the file is about that big (text: exactly that big). Returns
 * NULL when out of memory. */
struct sim_media *sim_media_new(enum sim_kind kind, uint64_t seed, uint64_t target_bytes);
void sim_media_free(struct sim_media *m);
uint64_t sim_media_size(const struct sim_media *m);
/* Copies the next bytes into buf; returns 0 at the end. */
size_t sim_media_read(struct sim_media *m, uint8_t *buf, size_t max);
/* Positions the stream at pos (restarting and skipping if pos is behind). 0 or -1 if past end. */
int sim_media_seek(struct sim_media *m, uint64_t pos);
/* SHA-256 of the whole file, hex. Returns -1 when out of memory. */
int sim_media_sha256_hex(enum sim_kind kind, uint64_t seed, uint64_t target_bytes, char out[65]);

/* The whole file in memory with a NUL after it (for text and data: URIs); NULL when out of
 * memory or larger than SIM_MEDIA_INLINE_MAX. */
char *sim_media_all(enum sim_kind kind, uint64_t seed, uint64_t target_bytes, size_t *len);
/* "data:MIME;base64,..." of the whole file (malloc'd); NULL as for sim_media_all. */
char *sim_media_data_uri(enum sim_kind kind, uint64_t seed, uint64_t target_bytes);

const char *sim_media_mime(enum sim_kind kind);
const char *sim_media_ext(enum sim_kind kind);

#endif
