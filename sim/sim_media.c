#include "sim_media.h"

#include "sim_rng.h"
#include "sim_sha256.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PNG_BLOCK 65535u /* largest stored deflate block */
#define PNG_FIXED 75u    /* signature, IHDR, IDAT(zlib header), IDAT(adler), IEND */
#define GIF_HEAD 800u    /* header, screen descriptor, 256-colour table, NETSCAPE2.0 */
#define GIF_FRAME_HEAD 19u
#define GIF_DEFAULT_SIDE 64u
#define GIF_DEFAULT_FRAMES 8u

const char *sim_media_mime(enum sim_kind kind)
{
    switch (kind) {
    case SIM_KIND_AUDIO:
        return "audio/wav";
    case SIM_KIND_VIDEO:
        return "image/gif";
    case SIM_KIND_TEXT:
        return "text/plain";
    default:
        return "image/png";
    }
}

const char *sim_media_ext(enum sim_kind kind)
{
    switch (kind) {
    case SIM_KIND_AUDIO:
        return "wav";
    case SIM_KIND_VIDEO:
        return "gif";
    case SIM_KIND_TEXT:
        return "txt";
    default:
        return "png";
    }
}

static void sim_media_put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void sim_media_put32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void sim_media_put16le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint32_t sim_media_crc(const struct sim_media *m, uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = m->crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- PNG ---------------------------------------------------------------------------------- */

static uint64_t sim_media_png_size(uint32_t w, uint32_t h, uint64_t *raw, uint64_t *nblocks)
{
    *raw = (uint64_t)h * (1 + 3ull * w);
    *nblocks = (*raw + PNG_BLOCK - 1) / PNG_BLOCK;
    return PNG_FIXED + 17 * *nblocks + *raw;
}

static uint8_t sim_media_png_sample(const struct sim_media *m, uint32_t x, uint32_t y, uint32_t c)
{
    const uint32_t *p = m->pat;
    switch (c) {
    case 0:
        return (uint8_t)(x + ((y * (p[0] & 15)) >> 2) + p[1]);
    case 1:
        return (uint8_t)(y + ((x ^ y) & p[2]) + p[3]);
    default:
        return (uint8_t)(((x * y) >> (p[4] & 7)) + p[5] + ((x + y) >> 1));
    }
}

/* Appends a chunk whose type+data are already at piece[start+4..]; writes length and CRC. */
static void sim_media_png_close_chunk(struct sim_media *m, size_t start)
{
    size_t datalen = m->piece_len - start - 8;
    sim_media_put32be(m->piece + start, (uint32_t)datalen);
    uint32_t crc = sim_media_crc(m, 0, m->piece + start + 4, datalen + 4);
    sim_media_put32be(m->piece + m->piece_len, crc);
    m->piece_len += 4;
}

static size_t sim_media_png_open_chunk(struct sim_media *m, const char *type)
{
    size_t start = m->piece_len;
    memcpy(m->piece + start + 4, type, 4);
    m->piece_len += 8;
    return start;
}

static void sim_media_png_piece(struct sim_media *m)
{
    uint8_t *out = m->piece;
    m->piece_len = 0;
    if (m->phase == 0) {
        static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        memcpy(out, sig, 8);
        m->piece_len = 8;
        size_t c = sim_media_png_open_chunk(m, "IHDR");
        sim_media_put32be(out + m->piece_len, m->width);
        sim_media_put32be(out + m->piece_len + 4, m->height);
        out[m->piece_len + 8] = 8;  /* bit depth */
        out[m->piece_len + 9] = 2;  /* colour type RGB */
        out[m->piece_len + 10] = 0; /* deflate */
        out[m->piece_len + 11] = 0; /* adaptive filtering (we use filter 0 everywhere) */
        out[m->piece_len + 12] = 0; /* no interlace */
        m->piece_len += 13;
        sim_media_png_close_chunk(m, c);
        /* The zlib header gets an IDAT of its own so that every later IDAT is exactly one
         * stored block; decoders concatenate IDAT data, so the split is invisible. */
        c = sim_media_png_open_chunk(m, "IDAT");
        out[m->piece_len++] = 0x78; /* deflate, 32 KiB window */
        out[m->piece_len++] = 0x01; /* no dictionary, check bits: 0x7801 % 31 == 0 */
        sim_media_png_close_chunk(m, c);
        m->phase = 1;
        return;
    }
    if (m->phase == 1) {
        uint64_t left = m->raw_total - m->raw_done;
        uint32_t len = left < PNG_BLOCK ? (uint32_t)left : PNG_BLOCK;
        size_t c = sim_media_png_open_chunk(m, "IDAT");
        out[m->piece_len++] = (m->block + 1 == m->nblocks) ? 1 : 0; /* BFINAL, BTYPE 00 */
        sim_media_put16le(out + m->piece_len, len);
        sim_media_put16le(out + m->piece_len + 2, ~len & 0xffff);
        m->piece_len += 4;
        uint8_t *raw = out + m->piece_len;
        uint32_t stride = 1 + 3 * m->width;
        uint32_t a = m->adler_a, b = m->adler_b;
        for (uint32_t i = 0; i < len; i++) {
            uint8_t v;
            if (m->col == 0) {
                v = 0; /* filter type None */
            } else {
                uint32_t k = m->col - 1;
                v = sim_media_png_sample(m, k / 3, m->row, k % 3);
            }
            raw[i] = v;
            a += v;
            if (a >= 65521)
                a -= 65521;
            b += a;
            if (b >= 65521)
                b -= 65521;
            if (++m->col == stride) {
                m->col = 0;
                m->row++;
            }
        }
        m->adler_a = a;
        m->adler_b = b;
        m->piece_len += len;
        m->raw_done += len;
        sim_media_png_close_chunk(m, c);
        if (++m->block == m->nblocks)
            m->phase = 2;
        return;
    }
    if (m->phase == 2) {
        size_t c = sim_media_png_open_chunk(m, "IDAT");
        sim_media_put32be(out + m->piece_len, (m->adler_b << 16) | m->adler_a);
        m->piece_len += 4;
        sim_media_png_close_chunk(m, c);
        c = sim_media_png_open_chunk(m, "IEND");
        sim_media_png_close_chunk(m, c);
        m->phase = 3;
    }
}

/* ---- WAV ---------------------------------------------------------------------------------- */

static void sim_media_wav_piece(struct sim_media *m)
{
    uint8_t *out = m->piece;
    m->piece_len = 0;
    if (m->phase == 0) {
        uint32_t data = (uint32_t)(m->samples * 2);
        memcpy(out, "RIFF", 4);
        sim_media_put32le(out + 4, 36 + data);
        memcpy(out + 8, "WAVEfmt ", 8);
        sim_media_put32le(out + 16, 16);
        sim_media_put16le(out + 20, 1); /* PCM */
        sim_media_put16le(out + 22, 1); /* mono */
        sim_media_put32le(out + 24, SIM_MEDIA_WAV_RATE);
        sim_media_put32le(out + 28, SIM_MEDIA_WAV_RATE * 2);
        sim_media_put16le(out + 32, 2);
        sim_media_put16le(out + 34, 16);
        memcpy(out + 36, "data", 4);
        sim_media_put32le(out + 40, data);
        m->piece_len = 44;
        m->phase = 1;
        return;
    }
    if (m->phase != 1)
        return;
    /* A melody: quarter-second notes of a pentatonic scale picked by the seed, each fading. */
    static const uint32_t scale_hz[8] = {262, 294, 330, 392, 440, 523, 587, 659};
    const uint32_t note_len = SIM_MEDIA_WAV_RATE / 4;
    uint64_t n = m->samples - m->sample;
    if (n > 32768)
        n = 32768;
    for (uint64_t i = 0; i < n; i++, m->sample++) {
        uint64_t note = m->sample / note_len;
        uint32_t in_note = (uint32_t)(m->sample % note_len);
        uint32_t hz = scale_hz[sim_rng_hash_u64(m->seed, note) & 7];
        m->phase_acc += (uint32_t)(((uint64_t)hz << 32) / SIM_MEDIA_WAV_RATE);
        int32_t amp = 9000 - (int32_t)(6000u * in_note / note_len);
        int32_t v = (int32_t)m->sine[m->phase_acc >> 22] * amp / 32767;
        sim_media_put16le(out + m->piece_len, (uint32_t)(uint16_t)(int16_t)v);
        m->piece_len += 2;
    }
    if (m->sample == m->samples)
        m->phase = 2;
}

/* ---- GIF ---------------------------------------------------------------------------------- */

static uint64_t sim_media_gif_size(uint32_t side, uint32_t frames)
{
    uint64_t npix = (uint64_t)side * side;
    uint64_t codes = 1 + npix + (npix - 1) / SIM_MEDIA_GIF_CLEAR_EVERY + 1;
    uint64_t bytes = (codes * 9 + 7) / 8;
    uint64_t sub = bytes + (bytes + 254) / 255 + 1;
    return GIF_HEAD + frames * (GIF_FRAME_HEAD + sub) + 1;
}

static void sim_media_gif_byte(struct sim_media *m, uint8_t b)
{
    m->sub[m->subfill++] = b;
    if (m->subfill == 255) {
        m->piece[m->piece_len++] = 255;
        memcpy(m->piece + m->piece_len, m->sub, 255);
        m->piece_len += 255;
        m->subfill = 0;
    }
}

static void sim_media_gif_code(struct sim_media *m, uint32_t code)
{
    m->bitbuf |= (uint64_t)code << m->nbits;
    m->nbits += 9;
    while (m->nbits >= 8) {
        sim_media_gif_byte(m, (uint8_t)m->bitbuf);
        m->bitbuf >>= 8;
        m->nbits -= 8;
    }
}

static uint8_t sim_media_gif_pixel(const struct sim_media *m, uint32_t x, uint32_t y, uint32_t f)
{
    const uint32_t *p = m->pat;
    uint32_t shift = f * (2 + (p[6] & 3));
    return (uint8_t)((((x + shift) * (1 + (p[0] & 3))) >> 1) + ((y * (1 + (p[1] & 3))) >> 1) +
                     (((x ^ (y + shift)) >> 2) & p[2]));
}

static void sim_media_gif_piece(struct sim_media *m)
{
    uint8_t *out = m->piece;
    m->piece_len = 0;
    if (m->phase == 0) {
        memcpy(out, "GIF89a", 6);
        sim_media_put16le(out + 6, m->width);
        sim_media_put16le(out + 8, m->height);
        out[10] = 0xf7; /* global colour table, 8-bit colour resolution, 256 entries */
        out[11] = 0;
        out[12] = 0;
        memcpy(out + 13, m->palette, 768);
        static const uint8_t loop[19] = {0x21, 0xff, 0x0b, 'N', 'E', 'T', 'S', 'C', 'A', 'P',
                                         'E',  '2',  '.',  '0', 3,   1,   0,   0,   0};
        memcpy(out + 781, loop, sizeof(loop));
        m->piece_len = GIF_HEAD;
        m->phase = 1;
        return;
    }
    if (m->phase == 1) {
        static const uint8_t gce[8] = {0x21, 0xf9, 4, 0x04, 10, 0, 0, 0}; /* 100 ms per frame */
        memcpy(out, gce, 8);
        out[8] = 0x2c;
        memset(out + 9, 0, 4);
        sim_media_put16le(out + 13, m->width);
        sim_media_put16le(out + 15, m->height);
        out[17] = 0; /* no local colour table */
        out[18] = 8; /* LZW minimum code size */
        m->piece_len = GIF_FRAME_HEAD;
        m->pix = 0;
        m->gx = 0;
        m->gy = 0;
        m->bitbuf = 0;
        m->nbits = 0;
        m->subfill = 0;
        sim_media_gif_code(m, 256); /* clear */
        m->phase = 2;
    }
    if (m->phase == 2) {
        while (m->pix < m->npix && m->piece_len < SIM_MEDIA_PIECE_MAX - 1024) {
            if (m->pix > 0 && m->pix % SIM_MEDIA_GIF_CLEAR_EVERY == 0)
                sim_media_gif_code(m, 256);
            sim_media_gif_code(m, sim_media_gif_pixel(m, m->gx, m->gy, m->frame));
            m->pix++;
            if (++m->gx == m->width) {
                m->gx = 0;
                m->gy++;
            }
        }
        if (m->pix < m->npix)
            return;
        sim_media_gif_code(m, 257); /* end of information */
        if (m->nbits > 0) {
            sim_media_gif_byte(m, (uint8_t)m->bitbuf);
            m->bitbuf = 0;
            m->nbits = 0;
        }
        if (m->subfill) {
            out[m->piece_len++] = (uint8_t)m->subfill;
            memcpy(out + m->piece_len, m->sub, m->subfill);
            m->piece_len += m->subfill;
            m->subfill = 0;
        }
        out[m->piece_len++] = 0; /* block terminator */
        m->phase = (++m->frame < m->frames) ? 1 : 3;
        return;
    }
    if (m->phase == 3) {
        out[0] = 0x3b;
        m->piece_len = 1;
        m->phase = 4;
    }
}

/* ---- text --------------------------------------------------------------------------------- */

/* Word i of the text with its leading space (none for the first) and a full stop ending every
 * tenth word: what a language model's tokens look like, split where a client would see them. */
static size_t sim_media_text_token(const struct sim_media *m, uint64_t i, char *out)
{
    static const char *const words[] = {
        "the",   "light", "house", "stands", "over",  "a",     "quiet", "sea", "and",   "its",
        "lamp",  "turns", "slow",  "while",  "gulls", "drift", "past",  "old", "stone", "walls",
        "under", "grey",  "sky",   "where",  "waves", "break", "soft",  "on",  "the",   "rocks"};
    const char *w = words[sim_rng_hash_u64(m->seed, i) % (sizeof(words) / sizeof(words[0]))];
    size_t n = 0;
    if (i > 0)
        out[n++] = ' ';
    size_t wl = strlen(w);
    memcpy(out + n, w, wl);
    n += wl;
    if (i % 10 == 9)
        out[n++] = '.';
    return n;
}

static void sim_media_text_piece(struct sim_media *m)
{
    m->piece_len = 0;
    while (m->piece_len < SIM_MEDIA_PIECE_MAX - 32 && m->raw_done < m->size - 1) {
        char tok[32];
        size_t n = sim_media_text_token(m, m->sample, tok);
        size_t from = m->col;
        size_t take = n - from;
        if (take > m->size - 1 - m->raw_done)
            take = (size_t)(m->size - 1 - m->raw_done);
        memcpy(m->piece + m->piece_len, tok + from, take);
        m->piece_len += take;
        m->raw_done += take;
        if (from + take == n) {
            m->sample++;
            m->col = 0;
        } else {
            m->col = (uint32_t)(from + take);
        }
    }
    if (m->raw_done == m->size - 1 && m->phase == 0) {
        m->piece[m->piece_len++] = '\n';
        m->phase = 1;
    }
}

/* ---- common ------------------------------------------------------------------------------- */

static void sim_media_rewind(struct sim_media *m)
{
    m->pos = 0;
    m->piece_len = 0;
    m->piece_off = 0;
    m->phase = 0;
    m->raw_done = 0;
    m->block = 0;
    m->row = 0;
    m->col = 0;
    m->adler_a = 1;
    m->adler_b = 0;
    m->sample = 0;
    m->phase_acc = 0;
    m->frame = 0;
}

struct sim_media *sim_media_new(enum sim_kind kind, uint64_t seed, uint64_t target_bytes)
{
    struct sim_media *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->kind = kind;
    m->seed = seed;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        m->crc_table[i] = c;
    }
    for (int i = 0; i < 8; i++)
        m->pat[i] = (uint32_t)sim_rng_hash_u64(seed, 100 + (uint64_t)i);
    switch (kind) {
    case SIM_KIND_IMAGE: {
        m->width = 256;
        m->height = 256;
        if (target_bytes) {
            double row = (1 + 3.0 * m->width) * (1 + 17.0 / PNG_BLOCK);
            double h = ((double)target_bytes - PNG_FIXED) / row;
            m->height = h < 1 ? 1 : h > 2e9 ? 2000000000u : (uint32_t)h;
        }
        m->size = sim_media_png_size(m->width, m->height, &m->raw_total, &m->nblocks);
        break;
    }
    case SIM_KIND_AUDIO:
        m->samples = 2 * SIM_MEDIA_WAV_RATE;
        if (target_bytes) {
            m->samples = target_bytes > 46 ? (target_bytes - 44) / 2 : 1;
            if (m->samples > 0x7fff0000u)
                m->samples = 0x7fff0000u;
        }
        for (int i = 0; i < 1024; i++)
            m->sine[i] = (int16_t)lrint(32767.0 * sin(2.0 * M_PI * i / 1024.0));
        m->size = 44 + 2 * m->samples;
        break;
    case SIM_KIND_VIDEO: {
        uint32_t side = GIF_DEFAULT_SIDE;
        m->frames = GIF_DEFAULT_FRAMES;
        if (target_bytes) {
            double per_px = 9.0 / 8.0 * 256.0 / 255.0;
            double avail = (double)target_bytes - GIF_HEAD - 1 - m->frames * (GIF_FRAME_HEAD + 2);
            double s = sqrt(avail / m->frames / per_px);
            side = s < 1 ? 1 : s > 65535 ? 65535u : (uint32_t)s;
        }
        m->width = side;
        m->height = side;
        m->npix = (uint64_t)side * side;
        for (int i = 0; i < 256; i++) {
            m->palette[3 * i] = (uint8_t)(i * (1 + (m->pat[3] & 3)) + m->pat[4]);
            m->palette[3 * i + 1] = (uint8_t)((i ^ m->pat[5]) + (i >> 1));
            m->palette[3 * i + 2] = (uint8_t)(255 - i + (m->pat[7] & 63));
        }
        m->size = sim_media_gif_size(side, m->frames);
        break;
    }
    case SIM_KIND_TEXT:
        m->size = target_bytes ? target_bytes : SIM_MEDIA_TEXT_DEFAULT;
        break;
    }
    sim_media_rewind(m);
    return m;
}

void sim_media_free(struct sim_media *m)
{
    free(m);
}

uint64_t sim_media_size(const struct sim_media *m)
{
    return m->size;
}

size_t sim_media_read(struct sim_media *m, uint8_t *buf, size_t max)
{
    size_t done = 0;
    while (done < max) {
        if (m->piece_off == m->piece_len) {
            m->piece_off = 0;
            switch (m->kind) {
            case SIM_KIND_AUDIO:
                sim_media_wav_piece(m);
                break;
            case SIM_KIND_VIDEO:
                sim_media_gif_piece(m);
                break;
            case SIM_KIND_TEXT:
                sim_media_text_piece(m);
                break;
            default:
                sim_media_png_piece(m);
                break;
            }
            if (m->piece_len == 0)
                break;
        }
        size_t take = m->piece_len - m->piece_off;
        if (take > max - done)
            take = max - done;
        memcpy(buf + done, m->piece + m->piece_off, take);
        m->piece_off += take;
        done += take;
    }
    m->pos += done;
    return done;
}

int sim_media_seek(struct sim_media *m, uint64_t pos)
{
    if (pos > m->size)
        return -1;
    if (pos < m->pos)
        sim_media_rewind(m);
    uint8_t scratch[4096];
    while (m->pos < pos) {
        uint64_t want = pos - m->pos;
        if (sim_media_read(m, scratch, want < sizeof(scratch) ? (size_t)want : sizeof(scratch)) ==
            0)
            return -1;
    }
    return 0;
}

int sim_media_sha256_hex(enum sim_kind kind, uint64_t seed, uint64_t target_bytes, char out[65])
{
    struct sim_media *m = sim_media_new(kind, seed, target_bytes);
    uint8_t *buf = malloc(65536);
    if (!m || !buf) {
        sim_media_free(m);
        free(buf);
        return -1;
    }
    struct sim_sha256 s;
    sim_sha256_init(&s);
    size_t n;
    while ((n = sim_media_read(m, buf, 65536)) > 0)
        sim_sha256_update(&s, buf, n);
    sim_sha256_final_hex(&s, out);
    free(buf);
    sim_media_free(m);
    return 0;
}

char *sim_media_all(enum sim_kind kind, uint64_t seed, uint64_t target_bytes, size_t *len)
{
    struct sim_media *m = sim_media_new(kind, seed, target_bytes);
    char *buf = m && m->size < SIM_MEDIA_INLINE_MAX ? malloc((size_t)m->size + 1) : NULL;
    if (!buf) {
        sim_media_free(m);
        return NULL;
    }
    size_t n = sim_media_read(m, (uint8_t *)buf, (size_t)m->size);
    buf[n] = '\0';
    *len = n;
    sim_media_free(m);
    return buf;
}

char *sim_media_data_uri(enum sim_kind kind, uint64_t seed, uint64_t target_bytes)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n;
    unsigned char *raw = (unsigned char *)sim_media_all(kind, seed, target_bytes, &n);
    if (!raw)
        return NULL;
    const char *mime = sim_media_mime(kind);
    size_t head = strlen("data:") + strlen(mime) + strlen(";base64,");
    char *out = malloc(head + (n + 2) / 3 * 4 + 1);
    if (!out) {
        free(raw);
        return NULL;
    }
    size_t o = (size_t)sprintf(out, "data:%s;base64,", mime);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= raw[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    free(raw);
    return out;
}
