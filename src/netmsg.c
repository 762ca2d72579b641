#include "netmsg.h"

#include <stdio.h>
#include <string.h>

/* Where the authority of url starts (after "scheme://"), or url itself. */
static const char *netmsg_find_authority(const char *url)
{
    const char *s = strstr(url, "://");
    return s ? s + 3 : url;
}

static void netmsg_show(const char *url, bool origin_only, char *out, size_t len)
{
    if (!len)
        return;
    const char *auth = netmsg_find_authority(url);
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', auth_len);
    const char *host = at ? at + 1 : auth;
    size_t host_len = auth_len - (size_t)(host - auth);
    const char *path = auth + auth_len;
    size_t path_len = origin_only ? 0 : strcspn(path, "?#");
    snprintf(out, len, "%.*s%.*s%.*s", (int)(auth - url), url, (int)host_len, host, (int)path_len,
             path);
}

void netmsg_show_url(const char *url, char *out, size_t len)
{
    netmsg_show(url, false, out, len);
}

void netmsg_show_origin(const char *url, char *out, size_t len)
{
    netmsg_show(url, true, out, len);
}

void netmsg_format(char *out, size_t len, const char *url, bool origin_only, bool unreachable,
                   const char *why)
{
    char shown[256] = "the provider";
    if (url)
        netmsg_show(url, origin_only, shown, sizeof(shown));
    snprintf(out, len, "%s %s: %s", unreachable ? "could not reach" : "network error talking to",
             shown, why);
}
