/* libFuzzer target: hook_path_token, the callback request path parser of the
 * webhook listener. Byte 0 picks the callback URL's path prefix (as
 * configured), the rest is the request path libmicrohttpd hands over
 * (NUL-terminated there, so here too: an exact-size copy plus the NUL). */
#include "fuzz_common.h"
#include "hook.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const prefixes[] = {"/genfs", "/genfs/", "", "/", "/a/b/c//", "/cb"};
#define N_PREFIXES (sizeof(prefixes) / sizeof(prefixes[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *prefix = prefixes[data[0] % N_PREFIXES];
    size_t n = size - 1;
    char *path = fuzz_cstr(data + 1, n);
    const char *tok = hook_path_token(prefix, path);
    if (tok) {
        check(tok > path && tok < path + n + 1, "the token points into the path");
        check(tok[-1] == '/', "the token follows a slash");
        check(strlen(tok) == HOOK_TOKEN_LEN, "the token is 32 characters");
        check(strspn(tok, "0123456789abcdef") == HOOK_TOKEN_LEN, "the token is lowercase hex");
        size_t pl = strlen(prefix);
        while (pl > 0 && prefix[pl - 1] == '/')
            pl--;
        check(memcmp(path, prefix, pl) == 0, "the path starts with the prefix");
    }
    free(path);
    return 0;
}
