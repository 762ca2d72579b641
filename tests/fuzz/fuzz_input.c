/* libFuzzer target: input_parse, what a user writes to MODEL/new. The bytes
 * are the write's buffer, exact size, no NUL after it. */
#include "fuzz_common.h"
#include "input.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_copy(data, size);
    char *json = NULL, *prompt = NULL, msg[512];
    memset(msg, 'x', sizeof(msg));
    int rc = input_parse(buf, size, &json, &prompt, msg, sizeof(msg));
    check(memchr(msg, '\0', sizeof(msg)) != NULL, "msg NUL-terminated");
    if (rc == 0) {
        check(json != NULL && prompt != NULL, "json and prompt set");
        /* The input object is compact JSON text of an object. */
        cJSON *doc = cJSON_Parse(json);
        check(cJSON_IsObject(doc), "json is a JSON object");
        cJSON_Delete(doc);
    } else {
        check(rc == -EINVAL || rc == -EFBIG || rc == -ENOMEM, "errors are EINVAL/EFBIG/ENOMEM");
        check(json == NULL && prompt == NULL, "nothing returned on failure");
        check(msg[0] != '\0' || rc == -ENOMEM, "a failure says why");
    }
    free(json);
    free(prompt);
    free(buf);
    return 0;
}
