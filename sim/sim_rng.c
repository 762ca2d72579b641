#include "sim_rng.h"

#include <math.h>

/* splitmix64 finaliser: cheap and with full avalanche, so nearby counters give unrelated
 * values. */
uint64_t sim_rng_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t sim_rng_hash_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    /* FNV-1a over the bytes, seeded by the running hash, then mixed: FNV alone is weak in
     * the high bits. */
    uint64_t f = 0xcbf29ce484222325ULL ^ sim_rng_mix(h);
    for (size_t i = 0; i < len; i++) {
        f ^= p[i];
        f *= 0x100000001b3ULL;
    }
    return sim_rng_mix(f ^ (uint64_t)len);
}

uint64_t sim_rng_hash_str(uint64_t h, const char *s)
{
    size_t n = 0;
    while (s && s[n])
        n++;
    return sim_rng_hash_bytes(h, s ? s : "", n);
}

uint64_t sim_rng_hash_u64(uint64_t h, uint64_t v)
{
    return sim_rng_mix(sim_rng_mix(h) ^ (v * 0xd6e8feb86659fd93ULL));
}

double sim_rng_unit(uint64_t h)
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

double sim_rng_normal(uint64_t h)
{
    double u1 = sim_rng_unit(sim_rng_hash_u64(h, 1));
    double u2 = sim_rng_unit(sim_rng_hash_u64(h, 2));
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
