/* Deterministic hashing and draws for genfs-sim. Everything random in the simulator is a
 * pure function of (seed, what, counter) so that a seeded workload replays exactly, whatever
 * the thread interleaving. */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stddef.h>
#include <stdint.h>

uint64_t sim_rng_mix(uint64_t x);
uint64_t sim_rng_hash_bytes(uint64_t h, const void *data, size_t len);
uint64_t sim_rng_hash_str(uint64_t h, const char *s);
uint64_t sim_rng_hash_u64(uint64_t h, uint64_t v);
/* Uniform in [0, 1) from a hash value. */
double sim_rng_unit(uint64_t h);
/* Standard normal from a hash value (Box-Muller on two derived uniforms). */
double sim_rng_normal(uint64_t h);

#endif
