/* libFuzzer target: the JSON config parser (opts_config_parse, what
 * load_config applies from $XDG_CONFIG_HOME/genfs/config.json). The struct
 * starts as opts_parse leaves it before the config is read: nothing set on
 * the command line, numbers at their "unset" values. */
#include "fuzz_common.h"
#include "opts.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_copy(data, size);
    struct opts o;
    memset(&o, 0, sizeof(o));
    o.rate = -1;
    o.timeout_s = 60;
    o.callback_poll_s = 60;
    o.file_max_bytes = -1;
    o.cache_max_bytes = -1;
    char err[512];
    memset(err, 'x', sizeof(err));
    int rc = opts_config_parse(&o, text, size, "fuzz.json", err, sizeof(err));
    check(rc == 0 || rc == -22 /* EINVAL */, "0 or -EINVAL");
    if (rc < 0)
        check(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0', "a failure says why");
    for (size_t i = 0; i < o.n_models; i++) {
        check(o.models[i].name != NULL, "every model named");
        check(opts_model_name_valid(o.models[i].name), "model names are valid");
        if (rc == 0 && o.models[i].has_profile)
            check(o.models[i].profile.interval_ms >= 100, "interval at least 100 ms");
    }
    for (size_t i = 0; i < o.n_providers; i++)
        check(o.providers[i].name != NULL, "every provider named");
    opts_free(&o);
    free(text);
    return 0;
}
