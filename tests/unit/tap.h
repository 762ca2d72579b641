/* Minimal TAP producer for genfs unit tests: plain asserts that keep going,
 * one "ok"/"not ok" line per check, and a plan at the end. */
#ifndef GENFS_TAP_H
#define GENFS_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_count;
static int tap_failed;

#define TAP_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        tap_count++;                                                                               \
        if (cond) {                                                                                \
            printf("ok %d - ", tap_count);                                                         \
        } else {                                                                                   \
            tap_failed++;                                                                          \
            printf("not ok %d - ", tap_count);                                                     \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        if (!(cond))                                                                               \
            printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                       \
    } while (0)

#define TAP_EQ_INT(a, b, name)                                                                     \
    do {                                                                                           \
        long long tap_a_ = (long long)(a), tap_b_ = (long long)(b);                                \
        TAP_CHECK(tap_a_ == tap_b_, "%s (got %lld, want %lld)", name, tap_a_, tap_b_);             \
    } while (0)

#define TAP_EQ_STR(a, b, name)                                                                     \
    do {                                                                                           \
        const char *tap_a_ = (a), *tap_b_ = (b);                                                   \
        TAP_CHECK(tap_a_ && tap_b_ && strcmp(tap_a_, tap_b_) == 0, "%s (got \"%s\", want \"%s\")", \
                  name, tap_a_ ? tap_a_ : "(null)", tap_b_ ? tap_b_ : "(null)");                   \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
