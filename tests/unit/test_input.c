#include "input.h"
#include "tap.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>

static int parse(const char *buf, size_t len, char **json, char **prompt, char *msg)
{
    return input_parse(buf, len, json, prompt, msg, 256);
}

/* Parses s and checks the result's json and prompt (a prompt may hold a
 * newline, which must not reach the TAP output). */
static void expect_ok(const char *s, const char *json, const char *prompt, const char *name)
{
    char *j = NULL, *p = NULL, msg[256];
    int rc = parse(s, strlen(s), &j, &p, msg);
    TAP_EQ_INT(rc, 0, name);
    TAP_EQ_STR(j, json, "  json");
    TAP_CHECK(p && strcmp(p, prompt) == 0, "  prompt");
    free(j);
    free(p);
}

static void expect_err(const char *s, size_t len, int err, const char *in_msg, const char *name)
{
    char *j = (char *)"x", *p = (char *)"x", msg[256];
    int rc = parse(s, len, &j, &p, msg);
    TAP_EQ_INT(rc, err, name);
    TAP_CHECK(j == NULL && p == NULL, "  no output on error");
    TAP_CHECK(strstr(msg, in_msg) != NULL && !strchr(msg, '\n'), "  message \"%s\"", msg);
}

static void test_text(void)
{
    expect_ok("a cat\n", "{\"prompt\":\"a cat\"}", "a cat", "text: trailing newline stripped");
    expect_ok("a cat\r\n", "{\"prompt\":\"a cat\"}", "a cat", "text: trailing CRLF stripped");
    expect_ok("a cat\n\n", "{\"prompt\":\"a cat\\n\"}", "a cat\n", "only one newline stripped");
    expect_ok("  a cat ", "{\"prompt\":\"  a cat \"}", "  a cat ", "other whitespace kept");
    expect_ok("say \"hi\"\tnow", "{\"prompt\":\"say \\\"hi\\\"\\tnow\"}", "say \"hi\"\tnow",
              "quotes and tabs escaped");
    expect_ok("[1,2]", "{\"prompt\":\"[1,2]\"}", "[1,2]", "a JSON array is prompt text");
    expect_ok("\"quoted\"", "{\"prompt\":\"\\\"quoted\\\"\"}", "\"quoted\"",
              "a JSON string is prompt text");
    expect_ok("caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x90\x88",
              "{\"prompt\":\"caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x90\x88\"}",
              "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x90\x88", "UTF-8 text kept as is");
    expect_ok("x", "{\"prompt\":\"x\"}", "x", "one byte");
}

static void test_object(void)
{
    expect_ok("{\"prompt\": \"a dog\", \"size\": 2}\n", "{\"prompt\":\"a dog\",\"size\":2}",
              "a dog", "object: compact, prompt taken");
    expect_ok("  \n{\"aspect\":\"16:9\"}  \n", "{\"aspect\":\"16:9\"}", "",
              "object without prompt: accepted, empty prompt");
    expect_ok("{\"prompt\": 42}", "{\"prompt\":42}", "", "non-string prompt: empty prompt");
    expect_ok("{\"prompt\": \"\"}", "{\"prompt\":\"\"}", "", "empty prompt string");
    expect_ok("{}", "{}", "", "empty object");
    expect_ok("{\"seed\": 12345678901234567890, \"t\": \"a  b\"}",
              "{\"seed\":12345678901234567890,\"t\":\"a  b\"}", "",
              "big numbers and spaces in strings unchanged");
    expect_ok("{\"n\": {\"deep\": [1, 2, {\"x\": null}]}}", "{\"n\":{\"deep\":[1,2,{\"x\":null}]}}",
              "", "nested object");
}

static void test_errors(void)
{
    expect_err("", 0, -EINVAL, "empty", "empty input");
    expect_err(" \t\r\n\n ", 6, -EINVAL, "empty", "whitespace only");
    expect_err("\n", 1, -EINVAL, "empty", "just a newline");
    expect_err("a\0b", 3, -EINVAL, "NUL", "NUL byte in text");
    expect_err("{\"prompt\":\"a\"}\0", 15, -EINVAL, "NUL", "NUL byte after an object");
    expect_err("{\"prompt\": ", 11, -EINVAL, "not a valid JSON object", "truncated object");
    expect_err("{prompt: 1}", 11, -EINVAL, "not a valid JSON object", "unquoted key");
    expect_err("{\"a\":1} {\"b\":2}", 15, -EINVAL, "after its JSON object", "two objects");
    expect_err("{\"a\":1}x", 8, -EINVAL, "after its JSON object", "trailing garbage");
    expect_err("caf\xe9", 4, -EINVAL, "UTF-8", "Latin-1 byte");
    expect_err("\xc0\xaf", 2, -EINVAL, "UTF-8", "overlong encoding");
    expect_err("\xed\xa0\x80", 3, -EINVAL, "UTF-8", "UTF-16 surrogate");
    expect_err("\xf4\x90\x80\x80", 4, -EINVAL, "UTF-8", "above U+10FFFF");
    expect_err("ab\xe2\x98", 4, -EINVAL, "UTF-8", "truncated sequence");
    expect_err("{\"p\":\"\xff\"}", 8, -EINVAL, "UTF-8", "invalid UTF-8 inside JSON");
}

static void test_sizes(void)
{
    size_t n = INPUT_MAX_BYTES;
    char *big = malloc(n + 1);
    memset(big, 'a', n + 1);
    char *j = NULL, *p = NULL, msg[256];
    TAP_EQ_INT(parse(big, n, &j, &p, msg), 0, "exactly 1 MiB accepted");
    TAP_CHECK(p && strlen(p) == n, "  whole prompt kept");
    free(j);
    free(p);
    expect_err(big, n + 1, -EFBIG, "1 MiB", "1 MiB + 1 refused");

    /* An object of exactly 1 MiB. */
    memset(big, ' ', n);
    memcpy(big, "{\"prompt\":\"x\"}", 14);
    TAP_EQ_INT(parse(big, n, &j, &p, msg), 0, "1 MiB object with trailing spaces accepted");
    TAP_EQ_STR(j, "{\"prompt\":\"x\"}", "  json");
    free(j);
    free(p);
    free(big);

    /* msg is optional. */
    TAP_EQ_INT(input_parse("", 0, &j, &p, NULL, 0), -EINVAL, "NULL msg is fine");
    TAP_EQ_INT(input_parse(" ", 1, &j, &p, msg, 8), -EINVAL, "short msg buffer is fine");
    TAP_CHECK(strlen(msg) == 7, "  message truncated to the buffer");
}

/* Pieces of one input, as successive write(2)s bring them. */
static void test_pieces(void)
{
    char msg[256];
    TAP_EQ_INT(input_check_piece("abc", 3, 0, msg, sizeof(msg)), 0, "a first piece");
    TAP_EQ_INT(input_check_piece("abc", 3, INPUT_MAX_BYTES - 3, msg, sizeof(msg)), 0,
               "a piece that ends at exactly 1 MiB");
    TAP_EQ_INT(input_check_piece("abcd", 4, INPUT_MAX_BYTES - 3, msg, sizeof(msg)), -EFBIG,
               "a piece that passes 1 MiB by one byte");
    TAP_CHECK(strstr(msg, "1048576") != NULL, "  message names the limit: \"%s\"", msg);
    TAP_EQ_INT(input_check_piece("a", 1, (size_t)-1, msg, sizeof(msg)), -EFBIG,
               "no overflow in before + len");
    TAP_EQ_INT(input_check_piece("ab\0c", 4, 100, msg, sizeof(msg)), -EINVAL, "a NUL byte");
    TAP_CHECK(strstr(msg, "at byte 102") != NULL, "  at its place in the whole input: \"%s\"", msg);
    TAP_EQ_INT(input_check_piece("", 0, 0, NULL, 0), 0, "an empty piece, no msg");
}

static void test_roundtrip(void)
{
    const char *s = "line one\nline \"two\"\\ and \x01 control\n";
    char *j = NULL, *p = NULL, msg[256];
    TAP_EQ_INT(parse(s, strlen(s), &j, &p, msg), 0, "text with escapes");
    cJSON *root = cJSON_Parse(j);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    TAP_CHECK(cJSON_IsString(pr) && strcmp(pr->valuestring, p) == 0 &&
                  strncmp(p, s, strlen(s) - 1) == 0 && strlen(p) == strlen(s) - 1,
              "  json parses back to the prompt");
    cJSON_Delete(root);
    free(j);
    free(p);
}

static void test_defaults(void)
{
    char *out = NULL;
    TAP_EQ_INT(input_merge_defaults("{\"mode\":\"pro-text-to-image\",\"n\":1,\"opts\":{\"a\":1,"
                                    "\"b\":2}}",
                                    "{\"prompt\":\"fox\",\"n\":4,\"opts\":{\"b\":3}}", &out),
               0, "defaults merged under the input");
    TAP_EQ_STR(out,
               "{\"prompt\":\"fox\",\"n\":4,\"opts\":{\"b\":3,\"a\":1},\"mode\":\"pro-text-to-"
               "image\"}",
               "  the writer's keys win, objects merge key by key");
    free(out);
    TAP_EQ_INT(input_merge_defaults(NULL, "{\"prompt\":\"x\"}", &out), 0, "no defaults");
    TAP_EQ_STR(out, "{\"prompt\":\"x\"}", "  the input as it was");
    free(out);
    TAP_EQ_INT(input_merge_defaults("[1]", "{}", &out), -EINVAL, "defaults not an object");
    TAP_CHECK(out == NULL, "  nothing made");
    TAP_EQ_INT(input_merge_defaults("{}", "\"x\"", &out), -EINVAL, "input not an object");
}

int main(void)
{
    test_text();
    test_object();
    test_errors();
    test_sizes();
    test_pieces();
    test_roundtrip();
    test_defaults();
    return tap_done();
}
