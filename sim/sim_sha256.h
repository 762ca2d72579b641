/* SHA-256 (FIPS 180-4), streaming, so the figures can hash media of any size without holding
 * it. */
#ifndef SIM_SHA256_H
#define SIM_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sim_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
};

void sim_sha256_init(struct sim_sha256 *s);
void sim_sha256_update(struct sim_sha256 *s, const void *data, size_t len);
void sim_sha256_final(struct sim_sha256 *s, uint8_t out[32]);
/* Final as 64 lowercase hex digits and a NUL. */
void sim_sha256_final_hex(struct sim_sha256 *s, char out[65]);

#endif
