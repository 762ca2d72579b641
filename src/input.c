/* What a write to MODEL/new means (SPEC 3): a JSON object is the whole
 * provider input, anything else is prompt text. */
#include "input.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool input_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int input_fail(int err, char *msg, size_t msglen, const char *fmt, ...)
{
    if (msg && msglen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF), or len if all is. */
static size_t input_utf8_check(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t j = 2; j <= n; j++) {
            if (s[i + j] < 0x80 || s[i + j] > 0xBF)
                return i;
        }
        i += n + 1;
    }
    return len;
}

/* text: NUL-terminated copy of the whole buffer, len bytes, first non-space at start. */
static int input_parse_object(char *text, size_t len, size_t start, char **json, char **prompt,
                              char *msg, size_t msglen)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = root ? start : (size_t)(end ? end - text : 0);
        cJSON_Delete(root);
        return input_fail(-EINVAL, msg, msglen,
                          "the input starts with '{' but is not a valid JSON object (near byte "
                          "%zu): fix the JSON, or write plain text",
                          at);
    }
    for (const char *p = end; p < text + len; p++) {
        if (!input_is_space((unsigned char)*p)) {
            cJSON_Delete(root);
            return input_fail(-EINVAL, msg, msglen,
                              "the input has data after its JSON object (at byte %zu): write "
                              "exactly one JSON object",
                              (size_t)(p - text));
        }
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    *prompt = strdup(cJSON_IsString(p) ? p->valuestring : "");
    cJSON_Delete(root);
    if (!*prompt)
        return -ENOMEM;
    /* Minify the user's own text rather than re-print the parsed tree: cJSON
     * keeps numbers as doubles and would alter big integers such as seeds. */
    text[end - text] = '\0';
    cJSON_Minify(text + start);
    *json = strdup(text + start);
    if (!*json) {
        free(*prompt);
        *prompt = NULL;
        return -ENOMEM;
    }
    return 0;
}

static int input_parse_text(char *text, size_t len, char **json, char **prompt)
{
    if (len > 0 && text[len - 1] == '\n') {
        len--;
        if (len > 0 && text[len - 1] == '\r')
            len--;
    }
    text[len] = '\0';
    cJSON *root = cJSON_CreateObject();
    if (!root || !cJSON_AddStringToObject(root, "prompt", text)) {
        cJSON_Delete(root);
        return -ENOMEM;
    }
    *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    *prompt = strdup(text);
    if (!*json || !*prompt) {
        free(*json);
        free(*prompt);
        *json = *prompt = NULL;
        return -ENOMEM;
    }
    return 0;
}

int input_check_piece(const char *buf, size_t len, size_t before, char *msg, size_t msglen)
{
    if (msg && msglen > 0)
        msg[0] = '\0';
    if (len > INPUT_MAX_BYTES || before > INPUT_MAX_BYTES - len)
        return input_fail(-EFBIG, msg, msglen,
                          "the input is over the %d-byte (1 MiB) limit: shorten it, or pass "
                          "large media by URL",
                          INPUT_MAX_BYTES);
    const char *nul = len ? memchr(buf, '\0', len) : NULL;
    if (nul)
        return input_fail(-EINVAL, msg, msglen,
                          "the input contains a NUL byte (at byte %zu): write text or a JSON "
                          "object, not binary data",
                          before + (size_t)(nul - buf));
    return 0;
}

int input_parse(const char *buf, size_t len, char **json, char **prompt, char *msg, size_t msglen)
{
    *json = *prompt = NULL;
    if (msg && msglen > 0)
        msg[0] = '\0';
    if (len > INPUT_MAX_BYTES)
        return input_fail(-EFBIG, msg, msglen,
                          "the input is %zu bytes, over the 1 MiB limit: shorten it, or pass "
                          "large media by URL",
                          len);
    int rc = input_check_piece(buf, len, 0, msg, msglen); /* NUL bytes */
    if (rc < 0)
        return rc;
    size_t start = 0;
    while (start < len && input_is_space((unsigned char)buf[start]))
        start++;
    if (start == len)
        return input_fail(-EINVAL, msg, msglen,
                          "the prompt is empty: write some text or a JSON object to new");
    size_t bad = input_utf8_check((const unsigned char *)buf, len);
    if (bad < len)
        return input_fail(-EINVAL, msg, msglen,
                          "the input is not valid UTF-8 (at byte %zu): convert it to UTF-8", bad);

    char *text = malloc(len + 1);
    if (!text)
        return -ENOMEM;
    memcpy(text, buf, len);
    text[len] = '\0';
    rc = buf[start] == '{' ? input_parse_object(text, len, start, json, prompt, msg, msglen)
                           : input_parse_text(text, len, json, prompt);
    free(text);
    return rc;
}

/* Adds to dst every key of src it lacks; objects on both sides merge deeper. */
static int input_merge_under(cJSON *dst, const cJSON *src, int depth)
{
    if (depth > 32)
        return -EINVAL;
    const cJSON *it;
    cJSON_ArrayForEach(it, src)
    {
        cJSON *have = cJSON_GetObjectItemCaseSensitive(dst, it->string);
        if (have && cJSON_IsObject(have) && cJSON_IsObject(it)) {
            int rc = input_merge_under(have, it, depth + 1);
            if (rc < 0)
                return rc;
        } else if (!have) {
            cJSON *copy = cJSON_Duplicate(it, true);
            if (!copy || !cJSON_AddItemToObject(dst, it->string, copy)) {
                cJSON_Delete(copy);
                return -ENOMEM;
            }
        }
    }
    return 0;
}

int input_merge_defaults(const char *defaults_json, const char *input_json, char **out)
{
    *out = NULL;
    cJSON *input = cJSON_Parse(input_json);
    cJSON *defaults = defaults_json ? cJSON_Parse(defaults_json) : cJSON_CreateObject();
    int rc = cJSON_IsObject(input) && cJSON_IsObject(defaults) ? 0 : -EINVAL;
    if (rc == 0)
        rc = input_merge_under(input, defaults, 0);
    if (rc == 0 && !(*out = cJSON_PrintUnformatted(input)))
        rc = -ENOMEM;
    cJSON_Delete(input);
    cJSON_Delete(defaults);
    return rc;
}
