/* The start-up check of a provider: one cheap request (the status of a task
 * id no one has) that shows whether the base URL answers and the key is
 * accepted, so that a mount says what is wrong while the user still looks. */
#ifndef GENFS_PROBE_H
#define GENFS_PROBE_H

#include "provider.h"

#include <stddef.h>

/* 0 when the provider answered and did not refuse the key; -EACCES when it
 * refused the key; -EHOSTUNREACH when nothing answered at its URL (timeout_ms
 * at the most). msg gets one line naming the URL and what to do. */
int probe_provider(const struct provider *p, const char *key, const char *model, long timeout_ms,
                   char *msg, size_t msglen);

#endif
