/* Pure: how a network error is said. It names the URL it was about, never
 * what may be secret in it: no user:password@ and no ?query or #fragment
 * (signed URLs carry their signature there). */
#ifndef GENFS_NETMSG_H
#define GENFS_NETMSG_H

#include <stdbool.h>
#include <stddef.h>

/* url without its userinfo, query and fragment, cut to fit out. */
void netmsg_show_url(const char *url, char *out, size_t len);
/* Only the scheme://host[:port] of url (for a message that must read the
 * same for every task of one provider). */
void netmsg_show_origin(const char *url, char *out, size_t len);
/* "could not reach URL: WHY" when unreachable (no connection was made),
 * else "network error talking to URL: WHY", the URL shown as netmsg_show_url
 * (or only its origin). */
void netmsg_format(char *out, size_t len, const char *url, bool origin_only, bool unreachable,
                   const char *why);

#endif
