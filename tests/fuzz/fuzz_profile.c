/* libFuzzer target: provider_load_json, a user's own provider profile
 * (-o provider=FILE, $XDG_CONFIG_HOME/genfs/profiles/NAME.json). A profile
 * that loads is then used to build its requests (submit, status, result,
 * cancel, upload). */
#include "fuzz_common.h"
#include "provider.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    char err[256];
    memset(err, 'x', sizeof(err));
    struct provider *p = provider_load_json(text, "fuzz.json", err, sizeof(err));
    if (!p) {
        check(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0', "a failure says why");
    } else {
        check(provider_name(p) != NULL, "a profile has a name");
        if (!provider_base_url(p))
            provider_set_base_url(p, "http://127.0.0.1:9/");
        struct provider_request r = {0};
        if (provider_build_submit(p, "owner/model", "{\"prompt\":\"a\"}", NULL, NULL, &r) == 0)
            check(r.method != NULL && r.url != NULL, "a submit request has a URL");
        provider_request_clear(&r);
        if (provider_build_submit(p, "m", "{\"prompt\":\"a\"}", NULL, "http://cb.test/h/0123",
                                  &r) == 0)
            check(r.url != NULL, "a callback submit has a URL");
        provider_request_clear(&r);
        if (provider_build_status(p, "owner/model", "t1", NULL, &r) == 0)
            check(r.url != NULL, "a status request has a URL");
        provider_request_clear(&r);
        if (provider_build_result(p, "owner/model", "t1", NULL, &r) == 0)
            check(r.url != NULL, "a result request has a URL");
        provider_request_clear(&r);
        if (provider_build_cancel(p, "owner/model", "t1", NULL, &r) == 0)
            check(r.url != NULL && r.method != NULL, "a cancel request has a URL");
        provider_request_clear(&r);
        static const unsigned char bytes[] = {0, '-', '-', 'g', 0xff};
        struct provider_upload_file f = {bytes, sizeof(bytes), "a \"b\".png", "image/png"};
        if (provider_build_upload(p, &f, &r) == 0)
            check(r.url != NULL && (r.body_len == 0 || r.body != NULL), "an upload has a URL");
        provider_request_clear(&r);
        enum provider_upload_way way;
        char msg[256];
        if (provider_upload_plan(p, sizeof(bytes), &way, msg, sizeof(msg)) < 0)
            check(memchr(msg, '\0', sizeof(msg)) != NULL && msg[0], "a refused upload says why");
        char *auth = provider_auth_header(p, "k3y");
        free(auth);
        provider_free(p);
    }
    free(text);
    return 0;
}
