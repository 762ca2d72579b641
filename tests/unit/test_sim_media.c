/* genfs-sim media encoders: decode what they produce with independent code (bitwise CRC, our own
 * inflate of stored blocks, a full GIF LZW decoder, base64) and check sizes, streaming and
 * seeking, text, and data: URIs. */
#include "sim_media.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *read_all(enum sim_kind kind, uint64_t seed, uint64_t target, size_t *len)
{
    struct sim_media *m = sim_media_new(kind, seed, target);
    size_t size = (size_t)sim_media_size(m);
    uint8_t *buf = malloc(size + 1);
    size_t got = 0, n;
    /* Odd chunk sizes on purpose: pieces must join up whatever the reader asks for. */
    while ((n = sim_media_read(m, buf + got, got + 7919 <= size ? 7919 : size + 1 - got)) > 0)
        got += n;
    *len = got;
    TAP_EQ_INT(got, size, "bytes produced equal the announced size");
    sim_media_free(m);
    return buf;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[1] << 8 | p[0];
}

static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void test_png(uint64_t target)
{
    size_t len;
    uint8_t *d = read_all(SIM_KIND_IMAGE, 42, target, &len);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    TAP_CHECK(len > 8 && memcmp(d, sig, 8) == 0, "PNG signature");
    size_t off = 8;
    int crc_ok = 1, saw_iend = 0;
    uint32_t w = 0, h = 0;
    uint8_t *z = malloc(len);
    size_t zlen = 0;
    while (off + 12 <= len) {
        uint32_t n = be32(d + off);
        if (off + 12 + n > len)
            break;
        if (crc32_bitwise(d + off + 4, n + 4) != be32(d + off + 8 + n))
            crc_ok = 0;
        if (memcmp(d + off + 4, "IHDR", 4) == 0) {
            w = be32(d + off + 8);
            h = be32(d + off + 12);
            TAP_CHECK(d[off + 16] == 8 && d[off + 17] == 2, "IHDR: 8-bit RGB");
        } else if (memcmp(d + off + 4, "IDAT", 4) == 0) {
            memcpy(z + zlen, d + off + 8, n);
            zlen += n;
        } else if (memcmp(d + off + 4, "IEND", 4) == 0) {
            saw_iend = 1;
        }
        off += 12 + n;
    }
    TAP_CHECK(crc_ok, "every chunk CRC matches");
    TAP_CHECK(saw_iend && off == len, "IEND ends the file exactly");
    if (!target) {
        TAP_EQ_INT(w, 256, "default width");
        TAP_EQ_INT(h, 256, "default height");
    } else if (target > 100000) {
        double ratio = (double)len / (double)target;
        TAP_CHECK(ratio > 0.99 && ratio < 1.01, "size %zu close to target %llu", len,
                  (unsigned long long)target);
    } else {
        TAP_EQ_INT(h, 1, "a tiny target still gives one whole row");
    }
    /* zlib: header, stored blocks, adler32 */
    TAP_CHECK(zlen > 6 && (z[0] * 256 + z[1]) % 31 == 0 && (z[0] & 15) == 8, "zlib header");
    size_t zp = 2, rawlen = 0;
    uint8_t *raw = malloc(zlen);
    int final = 0, stored_ok = 1;
    while (!final && zp + 5 <= zlen) {
        final = z[zp] & 1;
        if ((z[zp] >> 1) != 0)
            stored_ok = 0;
        uint32_t bl = le16(z + zp + 1), nbl = le16(z + zp + 3);
        if ((bl ^ 0xffff) != nbl)
            stored_ok = 0;
        memcpy(raw + rawlen, z + zp + 5, bl);
        rawlen += bl;
        zp += 5 + bl;
    }
    TAP_CHECK(stored_ok && final, "stored deflate blocks with LEN/NLEN, last one final");
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < rawlen; i++) {
        a = (a + raw[i]) % 65521;
        b = (b + a) % 65521;
    }
    TAP_CHECK(zp + 4 == zlen && be32(z + zp) == ((b << 16) | a), "adler32 trailer");
    TAP_EQ_INT(rawlen, (size_t)h * (1 + 3 * (size_t)w), "inflated size is h * (1 + 3w)");
    int filters_ok = 1, varied = 0;
    for (uint32_t y = 0; y < h; y++) {
        if (raw[(size_t)y * (1 + 3 * w)] != 0)
            filters_ok = 0;
    }
    for (size_t i = 2; i < rawlen && !varied; i++)
        varied = raw[i] != raw[1];
    TAP_CHECK(filters_ok, "every scanline uses filter 0");
    TAP_CHECK(varied, "pixels are not flat");
    free(raw);
    free(z);
    free(d);
}

static void test_wav(uint64_t target)
{
    size_t len;
    uint8_t *d = read_all(SIM_KIND_AUDIO, 7, target, &len);
    TAP_CHECK(memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WAVEfmt ", 8) == 0, "RIFF/WAVE");
    TAP_EQ_INT(le32(d + 4), len - 8, "RIFF size");
    TAP_EQ_INT(le16(d + 20), 1, "PCM");
    TAP_EQ_INT(le16(d + 22), 1, "mono");
    TAP_EQ_INT(le32(d + 24), 22050, "22050 Hz");
    TAP_EQ_INT(le32(d + 28), 44100, "byte rate");
    TAP_EQ_INT(le16(d + 34), 16, "16 bits");
    TAP_CHECK(memcmp(d + 36, "data", 4) == 0, "data chunk");
    TAP_EQ_INT(le32(d + 40), len - 44, "data size");
    if (!target)
        TAP_EQ_INT((len - 44) / 2, 44100, "default 2 s of samples");
    int16_t peak = 0;
    for (size_t i = 44; i + 1 < len; i += 2) {
        int16_t s = (int16_t)le16(d + i);
        if (s > peak)
            peak = s;
    }
    TAP_CHECK(peak > 1000, "audible samples (peak %d)", peak);
    free(d);
}

/* Standard GIF LZW decoder (variable code size, clear, EOI). Returns pixels decoded or -1. */
static long lzw_decode(const uint8_t *data, size_t n, int min, uint8_t *out, size_t cap)
{
    uint16_t prefix[4096];
    uint8_t suffix[4096], stack[4097];
    int clear = 1 << min, eoi = clear + 1, size = min + 1, next = clear + 2, prev = -1;
    uint8_t first = 0;
    size_t bitpos = 0, o = 0;
    for (int i = 0; i < clear; i++) {
        prefix[i] = 0xffff;
        suffix[i] = (uint8_t)i;
    }
    while (bitpos + (size_t)size <= n * 8) {
        int code = 0;
        for (int k = 0; k < size; k++, bitpos++)
            code |= ((data[bitpos / 8] >> (bitpos % 8)) & 1) << k;
        if (code == clear) {
            size = min + 1;
            next = clear + 2;
            prev = -1;
            continue;
        }
        if (code == eoi)
            return (long)o;
        int c = code, sp = 0;
        if (code > next || (code == next && prev < 0))
            return -1;
        if (code == next) {
            stack[sp++] = first;
            c = prev;
        }
        while (c >= clear) {
            stack[sp++] = suffix[c];
            c = prefix[c];
        }
        stack[sp++] = (uint8_t)c;
        first = (uint8_t)c;
        while (sp > 0) {
            if (o >= cap)
                return -1;
            out[o++] = stack[--sp];
        }
        if (prev >= 0 && next < 4096) {
            prefix[next] = (uint16_t)prev;
            suffix[next] = first;
            next++;
            if (next == (1 << size) && size < 12)
                size++;
        }
        prev = code;
    }
    return -1;
}

static void test_gif(uint64_t target)
{
    size_t len;
    uint8_t *d = read_all(SIM_KIND_VIDEO, 9, target, &len);
    TAP_CHECK(memcmp(d, "GIF89a", 6) == 0, "GIF89a header");
    uint32_t w = le16(d + 6), h = le16(d + 8);
    if (!target) {
        TAP_EQ_INT(w, 64, "default width");
        TAP_EQ_INT(h, 64, "default height");
    }
    TAP_EQ_INT(d[10] & 0x87, 0x87, "global colour table of 256");
    size_t off = 13 + 768;
    TAP_CHECK(memcmp(d + off, "\x21\xff\x0bNETSCAPE2.0\x03\x01", 16) == 0, "NETSCAPE2.0 loop");
    off += 19;
    int frames = 0, frames_ok = 1;
    uint8_t *pix = malloc((size_t)w * h + 1);
    uint8_t *first_frame = malloc((size_t)w * h + 1);
    int differ = 0;
    while (off < len && d[off] == 0x21 && d[off + 1] == 0xf9) {
        off += 8;
        if (d[off] != 0x2c || le16(d + off + 5) != w || le16(d + off + 7) != h) {
            frames_ok = 0;
            break;
        }
        int min = d[off + 10];
        off += 11;
        size_t cap = 0, zl = 0;
        for (size_t p = off; d[p]; p += 1 + d[p])
            cap += d[p];
        uint8_t *z = malloc(cap + 1);
        while (d[off]) {
            memcpy(z + zl, d + off + 1, d[off]);
            zl += d[off];
            off += 1 + d[off];
        }
        off++; /* terminator */
        long got = lzw_decode(z, zl, min, pix, (size_t)w * h);
        if (got != (long)((size_t)w * h))
            frames_ok = 0;
        if (frames == 0)
            memcpy(first_frame, pix, (size_t)w * h);
        else if (memcmp(first_frame, pix, (size_t)w * h) != 0)
            differ = 1;
        free(z);
        frames++;
    }
    TAP_CHECK(frames_ok, "every frame LZW-decodes to w*h pixels");
    TAP_CHECK(frames >= 2 && differ, "animated: %d frames that differ", frames);
    TAP_CHECK(off + 1 == len && d[off] == 0x3b, "trailer ends the file");
    if (target) {
        double ratio = (double)len / (double)target;
        TAP_CHECK(ratio > 0.95 && ratio < 1.05, "size %zu close to target %llu", len,
                  (unsigned long long)target);
    }
    free(pix);
    free(first_frame);
    free(d);
}

static void test_stream(enum sim_kind kind)
{
    size_t len;
    uint8_t *a = read_all(kind, 5, 300000, &len);
    size_t len2;
    uint8_t *b = read_all(kind, 5, 300000, &len2);
    TAP_CHECK(len == len2 && memcmp(a, b, len) == 0, "%s: same seed, same bytes",
              sim_media_ext(kind));
    size_t len3;
    uint8_t *c = read_all(kind, 6, 300000, &len3);
    TAP_CHECK(len != len3 || memcmp(a, c, len) != 0, "%s: other seed, other bytes",
              sim_media_ext(kind));
    struct sim_media *m = sim_media_new(kind, 5, 300000);
    uint8_t buf[1000];
    int seek_ok = 1;
    uint64_t offs[] = {200000, 17, 150001, len - 10};
    for (size_t i = 0; i < 4; i++) {
        size_t n;
        if (sim_media_seek(m, offs[i]) != 0)
            seek_ok = 0;
        n = sim_media_read(m, buf, sizeof(buf));
        size_t want = len - offs[i] < sizeof(buf) ? len - offs[i] : sizeof(buf);
        if (n != want || memcmp(buf, a + offs[i], n) != 0)
            seek_ok = 0;
    }
    TAP_CHECK(seek_ok, "%s: seek forwards and backwards gives the same bytes", sim_media_ext(kind));
    char hex[65];
    sim_media_sha256_hex(kind, 5, 300000, hex);
    TAP_EQ_INT(strlen(hex), 64, "sha256 hex length");
    sim_media_free(m);
    free(a);
    free(b);
    free(c);
}

static void test_text(uint64_t target)
{
    size_t len;
    uint8_t *t = read_all(SIM_KIND_TEXT, 3, target, &len);
    TAP_EQ_INT(len, target ? target : SIM_MEDIA_TEXT_DEFAULT, "text: exactly the size asked");
    int printable = 1;
    for (size_t i = 0; i + 1 < len; i++)
        printable &= (t[i] >= 'a' && t[i] <= 'z') || t[i] == ' ' || t[i] == '.';
    TAP_CHECK(printable && t[len - 1] == '\n', "text: words, spaces, full stops, a final newline");
    size_t n;
    char *all = sim_media_all(SIM_KIND_TEXT, 3, target, &n);
    TAP_CHECK(all && n == len && memcmp(all, t, len) == 0 && all[n] == '\0',
              "sim_media_all: the same bytes, NUL-terminated");
    free(all);
    free(t);
}

static int b64_value(char c)
{
    const char *set = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(set, c);
    return c && p ? (int)(p - set) : -1;
}

static void test_data_uri(enum sim_kind kind, const char *head)
{
    size_t len;
    uint8_t *raw = read_all(kind, 8, 0, &len);
    char *uri = sim_media_data_uri(kind, 8, 0);
    size_t hl = strlen(head);
    TAP_CHECK(uri && strncmp(uri, head, hl) == 0, "data URI starts %s", head);
    /* Decode it back and compare with the file. */
    const char *b = uri ? uri + hl : "";
    size_t bl = strlen(b), o = 0;
    uint8_t *dec = malloc(bl / 4 * 3 + 3);
    int ok = bl % 4 == 0;
    for (size_t i = 0; ok && i < bl; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = b[i + k] == '=' ? 0 : b64_value(b[i + k]);
        ok &= v[0] >= 0 && v[1] >= 0 && v[2] >= 0 && v[3] >= 0;
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        dec[o++] = (uint8_t)(w >> 16);
        if (b[i + 2] != '=')
            dec[o++] = (uint8_t)(w >> 8);
        if (b[i + 3] != '=')
            dec[o++] = (uint8_t)w;
    }
    TAP_CHECK(ok && o == len && memcmp(dec, raw, len) == 0, "%s data URI decodes to the file",
              sim_media_ext(kind));
    free(dec);
    free(uri);
    free(raw);
}

int main(void)
{
    test_png(0);
    test_png(1000000);
    test_png(10);
    test_wav(0);
    test_wav(100000);
    test_gif(0);
    test_gif(500000);
    test_stream(SIM_KIND_IMAGE);
    test_stream(SIM_KIND_AUDIO);
    test_stream(SIM_KIND_VIDEO);
    test_stream(SIM_KIND_TEXT);
    test_text(0);
    test_text(1);
    test_text(100000);
    test_data_uri(SIM_KIND_IMAGE, "data:image/png;base64,");
    test_data_uri(SIM_KIND_AUDIO, "data:audio/wav;base64,");
    test_data_uri(SIM_KIND_TEXT, "data:text/plain;base64,");
    TAP_EQ_STR(sim_media_mime(SIM_KIND_IMAGE), "image/png", "png mime");
    TAP_EQ_STR(sim_media_mime(SIM_KIND_AUDIO), "audio/wav", "wav mime");
    TAP_EQ_STR(sim_media_mime(SIM_KIND_VIDEO), "image/gif", "gif mime");
    TAP_EQ_STR(sim_media_mime(SIM_KIND_TEXT), "text/plain", "text mime");
    TAP_EQ_STR(sim_media_ext(SIM_KIND_TEXT), "txt", "text extension");
    return tap_done();
}
