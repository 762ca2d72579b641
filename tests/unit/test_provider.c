#include "provider.h"
#include "tap.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>

#define NOW ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 GMT */

static struct provider *prov;

/* A built-in profile with its base URL overridden, as -o api_url does. */
static struct provider *load(const char *name, const char *base)
{
    char err[256];
    struct provider *p = provider_load_builtin(name, err, sizeof(err));
    if (p && base && provider_set_base_url(p, base) < 0) {
        provider_free(p);
        return NULL;
    }
    return p;
}

static int status(long http, const char *body, struct provider_status *st,
                  struct provider_error *err)
{
    return provider_parse_status(prov, http, body, body ? strlen(body) : 0, NULL, NOW, st, err);
}

static int submit(long http, const char *body, const char *retry_after, struct provider_submit *s,
                  struct provider_error *err)
{
    struct provider_headers hdr = {.retry_after = retry_after};
    return provider_parse_submit(prov, http, body, body ? strlen(body) : 0, &hdr, NOW, s, err);
}

static void test_requests(void)
{
    struct provider_request r;
    struct provider *slash = load("apixo", "http://127.0.0.1:8080/api/");
    TAP_EQ_INT(
        provider_build_submit(slash, "fal-ai/flux/dev", "{\"prompt\":\"a\"}", NULL, NULL, &r), 0,
        "build submit");
    TAP_EQ_STR(r.method, "POST", "  POST");
    TAP_EQ_STR(r.url, "http://127.0.0.1:8080/api/generateTask/fal-ai/flux/dev",
               "  trailing slash of base stripped, model slashes kept");
    cJSON *b = cJSON_Parse(r.body);
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
    TAP_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "request_type")), "async",
               "  request_type async");
    TAP_CHECK(!cJSON_HasObjectItem(b, "callback_url"), "  no callback_url");
    TAP_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "prompt")), "a",
               "  input object embedded");
    cJSON_Delete(b);
    provider_request_clear(&r);
    TAP_CHECK(r.url == NULL && r.body == NULL, "request cleared");

    TAP_EQ_INT(provider_build_submit(prov, "sora-2", "{\"prompt\":\"b\",\"n\":2}", NULL,
                                     "https://me.example/hook/tok", &r),
               0, "build callback submit");
    TAP_EQ_STR(r.url, "http://sim.test/generateTask/sora-2", "  base without slash");
    b = cJSON_Parse(r.body);
    TAP_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "request_type")),
               "callback", "  request_type callback");
    TAP_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "callback_url")),
               "https://me.example/hook/tok", "  callback_url");
    in = cJSON_GetObjectItemCaseSensitive(b, "input");
    TAP_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(in, "n")), 2, "  input kept");
    cJSON_Delete(b);
    provider_request_clear(&r);

    TAP_EQ_INT(provider_build_submit(prov, "m", "[1]", NULL, NULL, &r), -EINVAL,
               "input not an object");
    TAP_EQ_INT(provider_build_submit(prov, "m", "{", NULL, NULL, &r), -EINVAL, "input not JSON");
    TAP_EQ_INT(provider_build_submit(prov, "", "{}", NULL, NULL, &r), -EINVAL, "empty model");

    TAP_EQ_INT(provider_build_status(slash, "fal-ai/flux/dev", "abc-123", NULL, &r), 0,
               "build status");
    TAP_EQ_STR(r.method, "GET", "  GET");
    TAP_EQ_STR(r.url, "http://127.0.0.1:8080/api/statusTask/fal-ai/flux/dev?taskId=abc-123",
               "  status URL");
    TAP_CHECK(r.body == NULL, "  no body");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_status(prov, "m x", "a/b?c", NULL, &r), 0, "odd names");
    TAP_EQ_STR(r.url, "http://sim.test/statusTask/m%20x?taskId=a%2Fb%3Fc", "  percent-encoded");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_status(prov, "m", "t", "http://sim.test/poll/9", &r), 0,
               "status with a given URL");
    TAP_EQ_STR(r.url, "http://sim.test/poll/9", "  given URL on the provider's origin used");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_status(prov, "m", "t", "https://other.test/poll/9", &r), 0,
               "status with a URL on another host");
    TAP_EQ_STR(r.url, "http://sim.test/statusTask/m?taskId=t",
               "  not followed: the key would go to another host");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_status(prov, "m", "", NULL, &r), -EINVAL, "empty task id");
    provider_free(slash);

    char *h = provider_auth_header(prov, "sk-123");
    TAP_EQ_STR(h, "Authorization: Bearer sk-123", "auth header");
    free(h);
    TAP_CHECK(provider_auth_header(prov, "sk\r\nX-Evil: 1") == NULL, "key with CRLF refused");
}

static void test_codes(void)
{
    static const struct {
        long code;
        int err;
        bool retry;
    } want[] = {
        {200, 0, false},       {201, 0, false},       {400, -EINVAL, false}, {422, -EINVAL, false},
        {401, -EACCES, false}, {403, -EACCES, false}, {402, -EDQUOT, false}, {404, -ENOENT, false},
        {429, -EAGAIN, true},  {455, -EIO, true},     {500, -EIO, true},     {502, -EIO, true},
        {503, -EIO, true},     {504, -EIO, true},     {501, -EIO, false},    {418, -EIO, false},
        {302, -EIO, false},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        TAP_CHECK(provider_errno_for_code(want[i].code) == want[i].err &&
                      provider_code_retryable(want[i].code) == want[i].retry,
                  "code %ld: errno %d, retryable %d", want[i].code, want[i].err, want[i].retry);
    }

    /* Each code as an HTTP status, with an envelope message, and as an
     * envelope code inside an HTTP 200. */
    for (size_t i = 2; i < sizeof(want) / sizeof(want[0]); i++) {
        char body[128];
        struct provider_submit s;
        struct provider_error e;
        snprintf(body, sizeof(body), "{\"code\":%ld,\"msg\":\"nope\\nreally\",\"data\":null}",
                 want[i].code);
        int rc = submit(want[i].code, body, NULL, &s, &e);
        char code[16];
        snprintf(code, sizeof(code), "(%ld: ", want[i].code);
        TAP_CHECK(rc == want[i].err && e.err == rc && e.retryable == want[i].retry &&
                      strstr(e.msg, code) && strstr(e.msg, "nope really") && !s.task_id,
                  "HTTP %ld: %s", want[i].code, e.msg);
        rc = submit(200, body, NULL, &s, &e);
        TAP_CHECK(rc == want[i].err && e.retryable == want[i].retry && strstr(e.msg, code),
                  "envelope code %ld in HTTP 200: %s", want[i].code, e.msg);
    }
    struct provider_submit s;
    struct provider_error e;
    submit(401, "<html>Unauthorized</html>", NULL, &s, &e);
    TAP_EQ_STR(e.msg, "the provider refused the API key (401): check GENFS_API_KEY or key_file",
               "401 message without an envelope");
    submit(402, "", NULL, &s, &e);
    TAP_EQ_STR(e.msg, "insufficient credits (402): top up the account", "402 message");
    TAP_EQ_INT(
        submit(200, "{\"code\":201,\"msg\":\"x\",\"data\":{\"taskId\":\"a\"}}", NULL, &s, &e),
        -EPROTO, "envelope code 201 is not success");
    TAP_CHECK(e.retryable, "  retryable");
    TAP_EQ_INT(submit(0, NULL, NULL, &s, &e), -EIO, "no HTTP answer");
    TAP_CHECK(e.retryable, "  retryable");
}

static void test_retry_after(void)
{
    TAP_EQ_INT(provider_parse_retry_after("7", NOW), 7000, "Retry-After seconds");
    TAP_EQ_INT(provider_parse_retry_after(" 0 ", NOW), 0, "Retry-After 0, spaces");
    TAP_EQ_INT(provider_parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", NOW), 30000,
               "Retry-After HTTP date");
    TAP_EQ_INT(provider_parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", NOW), 0,
               "date in the past: now");
    TAP_EQ_INT(provider_parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", 0), 0, "the epoch");
    TAP_EQ_INT(provider_parse_retry_after("Sun, 01 Mar 2026 00:00:10 GMT",
                                          (time_t)1772323200), /* 2026-03-01 00:00:00 */
               10000, "date after a February");
    TAP_EQ_INT(provider_parse_retry_after("Thu, 29 Feb 2024 12:00:05 GMT", (time_t)1709208000),
               5000, "leap day");
    TAP_EQ_INT(provider_parse_retry_after("99999999", NOW), 3600000, "huge delay capped at 1 h");
    TAP_EQ_INT(provider_parse_retry_after("99999999999999999999999999", NOW), 3600000,
               "overflowing delay capped");
    TAP_EQ_INT(provider_parse_retry_after("-5", NOW), -1, "negative refused");
    TAP_EQ_INT(provider_parse_retry_after("5s", NOW), -1, "junk after seconds");
    TAP_EQ_INT(provider_parse_retry_after("", NOW), -1, "empty");
    TAP_EQ_INT(provider_parse_retry_after(NULL, NOW), -1, "NULL");
    TAP_EQ_INT(provider_parse_retry_after("Tue, 14 Nov 2023 22:13:50 PST", NOW), -1, "not GMT");
    TAP_EQ_INT(provider_parse_retry_after("Tue, 14 Foo 2023 22:13:50 GMT", NOW), -1, "bad month");
    TAP_EQ_INT(provider_parse_retry_after("Tue, 14 Nov 2023 25:13:50 GMT", NOW), -1, "bad hour");
    TAP_EQ_INT(provider_parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT x", NOW), -1,
               "junk after date");

    TAP_EQ_INT(provider_parse_ratelimit("0", "7", NOW), 7000, "RateLimit window spent: its reset");
    TAP_EQ_INT(provider_parse_ratelimit("0", "1700000030", NOW), 30000, "a reset as a Unix time");
    TAP_EQ_INT(provider_parse_ratelimit("3", "7", NOW), -1, "requests left: no pause");
    TAP_EQ_INT(provider_parse_ratelimit("0", NULL, NOW), -1, "no reset: no pause");
    TAP_EQ_INT(provider_parse_ratelimit("0", "soon", NOW), -1, "a reset that is no number");
    TAP_EQ_INT(provider_parse_ratelimit("0", "999999", NOW), 3600000, "capped at an hour");

    struct provider_submit s;
    struct provider_error e;
    submit(429, "{\"code\":429,\"msg\":\"slow down\"}", "12", &s, &e);
    TAP_EQ_INT(e.retry_after_ms, 12000, "429 carries Retry-After");
    TAP_EQ_INT(e.err, -EAGAIN, "  EAGAIN");
    submit(503, "", "Tue, 14 Nov 2023 22:13:22 GMT", &s, &e);
    TAP_EQ_INT(e.retry_after_ms, 2000, "503 carries a Retry-After date");
    submit(429, "", NULL, &s, &e);
    TAP_EQ_INT(e.retry_after_ms, -1, "429 without Retry-After");
    submit(200, "{\"code\":429,\"msg\":\"busy\",\"data\":null}", "3", &s, &e);
    TAP_EQ_INT(e.retry_after_ms, 3000, "envelope 429 honours Retry-After");
    submit(500, "", "3", &s, &e);
    TAP_EQ_INT(e.retry_after_ms, -1, "500 ignores Retry-After");
}

static void test_submit(void)
{
    struct provider_submit s;
    struct provider_error e;
    TAP_EQ_INT(submit(200, "{\"code\":200,\"msg\":\"ok\",\"data\":{\"taskId\":\"task_9f.A-1~\"}}",
                      NULL, &s, &e),
               0, "submit ok");
    TAP_EQ_STR(s.task_id, "task_9f.A-1~", "  taskId");
    TAP_CHECK(s.status_url == NULL, "  no status URL");
    provider_submit_clear(&s);
    TAP_CHECK(s.task_id == NULL, "submit cleared");
    TAP_EQ_INT(
        submit(201, "{\"code\":200,\"data\":{\"taskId\":\"x\",\"extra\":[1]}}", NULL, &s, &e), 0,
        "HTTP 201, unknown fields ignored");
    provider_submit_clear(&s);

    char long_id[256];
    memset(long_id, 'a', 201);
    long_id[201] = '\0';
    char body_long[300];
    snprintf(body_long, sizeof(body_long), "{\"code\":200,\"data\":{\"taskId\":\"%s\"}}", long_id);
    static const struct {
        const char *body;
        const char *what;
    } bad[] = {
        {"{\"code\":200,\"data\":{}}", "taskId is missing"},
        {"{\"code\":200,\"data\":{\"taskId\":7}}", "not a string"},
        {"{\"code\":200,\"data\":{\"taskId\":\"\"}}", "safe file name"},
        {"{\"code\":200,\"data\":{\"taskId\":\"a/b\"}}", "safe file name"},
        {"{\"code\":200,\"data\":{\"taskId\":\"..\"}}", "safe file name"},
        {"{\"code\":200,\"data\":{\"taskId\":\".hidden\"}}", "safe file name"},
        {"{\"code\":200,\"data\":{\"taskId\":\"a b\"}}", "safe file name"},
        {"{\"code\":200,\"data\":\"t1\"}", "\"data\" is missing or not an object"},
        {"{\"code\":200}", "\"data\" is missing"},
        {"{\"code\":\"200\",\"data\":{\"taskId\":\"a\"}}", "\"code\" is missing or not a number"},
        {"{\"data\":{\"taskId\":\"a\"}}", "\"code\" is missing"},
        {"[200]", "not a JSON object"},
        {"{\"code\":200,", "not valid JSON"},
        {"", "empty"},
        {"{\"code\":200,\"data\":{\"taskId\":\"a\"}} trailing", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = submit(200, bad[i].body, NULL, &s, &e);
        TAP_CHECK(rc == -EPROTO && e.err == -EPROTO && e.retryable && strstr(e.msg, bad[i].what) &&
                      strstr(e.msg, "submit answer: ") == e.msg && !s.task_id,
                  "malformed submit %zu: %s", i, e.msg);
    }
    TAP_EQ_INT(submit(200, body_long, NULL, &s, &e), -EPROTO, "taskId over 200 chars");
    long_id[200] = '\0';
    snprintf(body_long, sizeof(body_long), "{\"code\":200,\"data\":{\"taskId\":\"%s\"}}", long_id);
    TAP_EQ_INT(submit(200, body_long, NULL, &s, &e), 0, "taskId of 200 chars");
    provider_submit_clear(&s);

    const char *ok = "{\"code\":200,\"data\":{\"taskId\":\"a\"}}";
    TAP_EQ_INT(provider_parse_submit(prov, 200, ok, (size_t)1024 * 1024 + 1, NULL, NOW, &s, &e),
               -EPROTO, "body over 1 MiB refused unread");
    TAP_CHECK(e.retryable && strstr(e.msg, "1 MiB"), "  %s", e.msg);
    TAP_EQ_INT(provider_parse_submit(prov, 200, ok, 20, NULL, NOW, &s, &e), -EPROTO,
               "length is honoured (truncated body)");
}

static const char *status_body(const char *data)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf), "{\"code\":200,\"message\":\"success\",\"data\":%s}", data);
    return buf;
}

static void test_status(void)
{
    struct provider_status st;
    struct provider_error e;
    const char *words[] = {"pending", "processing"};
    const enum task_state want_state[] = {TASK_WAITING, TASK_GENERATING};
    for (int i = 0; i < 2; i++) {
        char data[256];
        snprintf(data, sizeof(data),
                 "{\"taskId\":\"t\",\"state\":\"%s\",\"resultJson\":null,\"failCode\":null,"
                 "\"createTime\":1700000000000,\"updateTime\":null}",
                 words[i]);
        TAP_EQ_INT(status(200, status_body(data), &st, &e), 0, words[i]);
        TAP_EQ_INT(st.state, want_state[i], "  state");
        TAP_CHECK(st.n_urls == 0 && !st.fail_code && st.progress == -1, "  nothing else");
        TAP_EQ_INT(st.create_ms, INT64_C(1700000000000), "  createTime");
        TAP_EQ_INT(st.update_ms, 0, "  null updateTime is 0");
        TAP_EQ_STR(st.data_json, data, "  data_json is the compact data object");
        provider_status_clear(&st);
    }

    const char *ok = "{\"taskId\":\"t\",\"state\":\"success\","
                     "\"resultJson\":\"{\\\"resultUrls\\\":[\\\"https://cdn.test/0.png\\\","
                     "\\\"ftp://cdn.test/x\\\",7,\\\"http://cdn.test/1.png\\\"]}\","
                     "\"completeTime\":1700000009000,\"futureField\":{\"a\":1}}";
    TAP_EQ_INT(status(200, status_body(ok), &st, &e), 0, "success");
    TAP_EQ_INT(st.state, TASK_SUCCESS, "  state success");
    TAP_EQ_INT(st.complete_ms, INT64_C(1700000009000), "  completeTime");
    TAP_EQ_INT(st.n_urls, 2, "  only http(s) URLs kept");
    TAP_CHECK(st.n_urls == 2 && strcmp(st.urls[0], "https://cdn.test/0.png") == 0 &&
                  strcmp(st.urls[1], "http://cdn.test/1.png") == 0,
              "  URLs in order");
    provider_status_clear(&st);
    TAP_CHECK(st.urls == NULL && st.n_urls == 0 && st.data_json == NULL, "status cleared");

    TAP_EQ_INT(status(200,
                      status_body("{\"state\":\"failed\",\"failCode\":501,\"failMsg\":\"NSFW\","
                                  "\"resultJson\":\"\"}"),
                      &st, &e),
               0, "fail with a numeric code");
    TAP_EQ_INT(st.state, TASK_FAILED, "  state failed");
    TAP_EQ_STR(st.fail_code, "501", "  numeric failCode as string");
    TAP_EQ_STR(st.fail_msg, "NSFW", "  failMsg");
    provider_status_clear(&st);
    TAP_EQ_INT(
        status(200, status_body("{\"state\":\"failed\",\"failCode\":\"E_TIMEOUT\"}"), &st, &e), 0,
        "failed with a string code");
    TAP_EQ_STR(st.fail_code, "E_TIMEOUT", "  failCode");
    TAP_CHECK(st.fail_msg == NULL, "  no failMsg");
    provider_status_clear(&st);

    static const struct {
        const char *data;
        const char *what;
    } bad[] = {
        {"{\"state\":\"done\"}", "unknown state \"done\""},
        {"{\"state\":\"SUCCESS\"}", "unknown state"},
        {"{\"state\":3}", "state is missing or not a string"},
        {"{\"progress\":3}", "state is missing"},
        {"{\"state\":\"success\"}", "resultJson is not a string"},
        {"{\"state\":\"success\",\"resultJson\":{\"resultUrls\":[\"https://a\"]}}",
         "resultJson is not a string"},
        {"{\"state\":\"success\",\"resultJson\":\"{oops\"}", "resultJson is not a JSON object"},
        {"{\"state\":\"success\",\"resultJson\":\"[]\"}", "resultJson is not a JSON object"},
        {"{\"state\":\"success\",\"resultJson\":\"{}\"}", "has no resultUrls"},
        {"[]", "\"data\" is missing or not an object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = status(200, status_body(bad[i].data), &st, &e);
        TAP_CHECK(rc == -EPROTO && e.retryable && strstr(e.msg, bad[i].what) &&
                      strstr(e.msg, "status answer: ") == e.msg && st.n_urls == 0 && !st.urls &&
                      !st.data_json,
                  "malformed status %zu: %s", i, e.msg);
    }
    /* A well-formed success without an http(s) URL is a failed task with a clear error. */
    static const char *const no_url[] = {
        "{\"state\":\"success\",\"resultJson\":\"{\\\"resultUrls\\\":[]}\"}",
        "{\"state\":\"success\",\"resultJson\":\"{\\\"resultUrls\\\":[\\\"file:///a\\\"]}\"}",
        "{\"state\":\"success\",\"resultJson\":\"{\\\"resultUrls\\\":[\\\"ftp://h/x\\\",3]}\"}",
    };
    for (size_t i = 0; i < sizeof(no_url) / sizeof(no_url[0]); i++) {
        int rc = status(200, status_body(no_url[i]), &st, &e);
        TAP_CHECK(rc == 0 && st.state == TASK_FAILED && st.n_urls == 0 && st.fail_code &&
                      strcmp(st.fail_code, "no_result_url") == 0 && st.fail_msg &&
                      strstr(st.fail_msg, "without any http(s) result URL in resultUrls") &&
                      st.data_json,
                  "success without an http(s) URL %zu is failed: %s", i,
                  st.fail_msg ? st.fail_msg : "(no message)");
        provider_status_clear(&st);
    }
    TAP_EQ_INT(status(200, "{\"code\":200,\"data\":{\"state\":", &st, &e), -EPROTO,
               "truncated status body");
    TAP_EQ_INT(status(404, "{\"code\":404,\"msg\":\"task not found\",\"data\":null}", &st, &e),
               -ENOENT, "unknown task: ENOENT");
    TAP_CHECK(!e.retryable && strstr(e.msg, "task not found"), "  %s", e.msg);
    TAP_EQ_INT(status(200, "{\"code\":455,\"msg\":\"maintenance\",\"data\":null}", &st, &e), -EIO,
               "455 in an HTTP 200");
    TAP_CHECK(e.retryable, "  retryable");
}

/* status.progress, in a profile of the user's own (no built-in reports a percentage in its
 * status answer). */
static void test_progress(void)
{
    static const char profile[] =
        "{\"name\": \"pct\", \"base_url\": \"http://sim.test\","
        " \"auth\": {\"header\": \"Authorization\", \"value\": \"Bearer {key}\"},"
        " \"envelope\": {\"code\": \"code\", \"ok\": 200, \"data\": \"data\"},"
        " \"submit\": {\"url\": \"{base}/t\", \"body\": \"{input}\", \"task_id\": \"id\"},"
        " \"status\": {\"url\": \"{base}/t/{id}\", \"state\": \"state\","
        " \"states\": {\"processing\": \"generating\"}, \"progress\": \"progress\","
        " \"result\": \"resultJson\", \"result_is_json_string\": true, \"urls\": \"resultUrls\"}}";
    char err[256];
    struct provider *apixo = prov;
    prov = provider_load_json(profile, "test", err, sizeof(err));
    TAP_CHECK(prov != NULL, "a profile with status.progress loads (%s)", prov ? "ok" : err);
    if (prov) {
        struct provider_status st;
        struct provider_error e;
        TAP_EQ_INT(
            status(200, status_body("{\"state\":\"processing\",\"progress\":150.7}"), &st, &e), 0,
            "progress clamped");
        TAP_EQ_INT(st.progress, 100, "  to 100");
        provider_status_clear(&st);
        TAP_EQ_INT(
            status(200, status_body("{\"state\":\"processing\",\"progress\":\"45%\"}"), &st, &e), 0,
            "progress of the wrong type ignored");
        TAP_EQ_INT(st.progress, -1, "  unknown");
        provider_status_clear(&st);

        provider_free(prov);
    }
    prov = apixo;
}

/* A profile of the generic kind: a JSON upload with the bytes in base64,
 * logs as an array of {timestamp, message}, progress from a pattern. */
static const char generic_profile[] =
    "{\"name\":\"gen\",\"base_url\":\"http://g.test/api\",\"auth\":{\"header\":\"X-Key\","
    "\"value\":\"{key}\"},\"submit\":{\"url\":\"{base}/"
    "s\",\"body\":\"{input}\",\"task_id\":\"id\"},"
    "\"status\":{\"url\":\"{base}/t/{id}\",\"state\":\"s\",\"states\":{\"run\":\"generating\","
    "\"ok\":\"success\"},\"result\":\"out\",\"logs\":\"log\",\"progress_logs\":\"step ([0-9]+)%\","
    "\"queue_position\":\"q\",\"input\":\"in\"},\"upload\":{\"kind\":\"json\","
    "\"url\":\"{upload_base}/up\",\"body\":{\"name\":\"{file_name}\",\"type\":\"{content_type}\","
    "\"b64\":\"{data_base64}\",\"uri\":\"{data_uri}\",\"keep\":[1,\"x\"]},\"file_url\":\"f.url\","
    "\"max_bytes\":10,\"data_uri_ok\":true,\"data_uri_max_bytes\":2}}";

static void test_control(void)
{
    char err[256];
    struct provider *p = provider_load_json(generic_profile, "generic", err, sizeof(err));
    TAP_CHECK(p != NULL, "a profile with logs, progress and a json upload loads: %s", p ? "" : err);
    if (!p)
        return;
    struct provider_status st;
    struct provider_error e;
    const char *body = "{\"s\":\"run\",\"q\":\"first\",\"in\":[1],\"log\":[{\"timestamp\":\"t1\","
                       "\"message\":\"step 20%\"},{\"message\":\"step 35% done\"},7,"
                       "{\"timestamp\":\"t3\",\"message\":\"saving\"}]}";
    TAP_EQ_INT(provider_parse_status(p, 200, body, strlen(body), NULL, NOW, &st, &e), 0,
               "status with an array of log entries");
    TAP_CHECK(st.logs && strcmp(st.logs, "t1 step 20%\nstep 35% done\nt3 saving\n") == 0,
              "  one line each, timestamp first where given, non-entries skipped");
    TAP_EQ_INT(st.progress, 35, "  progress of the last line that matches");
    TAP_EQ_INT(st.queue_position, -1, "  a queue position that is no number is left out");
    TAP_CHECK(st.input_json == NULL, "  an input that is no object is left out");
    provider_status_clear(&st);
    /* Only the tail of long logs is searched: an early match does not count. */
    size_t n = 200000;
    char *big = malloc(n + 64);
    memcpy(big, "{\"s\":\"run\",\"log\":\"step 50%\\n", 28);
    memset(big + 28, 'x', n);
    memcpy(big + 28 + n, "\"}", 3);
    TAP_EQ_INT(provider_parse_status(p, 200, big, strlen(big), NULL, NOW, &st, &e), 0,
               "status with 200 kB of logs");
    TAP_EQ_INT(st.progress, -1, "  a match far from the end is not the progress");
    TAP_EQ_INT(strlen(st.logs), n + 9, "  the logs are whole");
    provider_status_clear(&st);
    free(big);

    static const unsigned char bytes[] = {0xff, 0x00, 'a', 'b'};
    struct provider_upload_file f = {bytes, 4, "", NULL};
    enum provider_upload_way way;
    char msg[256];
    TAP_EQ_INT(provider_upload_plan(p, 2, &way, msg, sizeof(msg)), 0, "2 bytes");
    TAP_EQ_INT(way, PROVIDER_UPLOAD_DATA_URI, "  inline");
    TAP_EQ_INT(provider_upload_plan(p, 11, &way, msg, sizeof(msg)), -EFBIG, "11 bytes: EFBIG");
    char *uri = provider_upload_data_uri(bytes, 4, "image/png");
    TAP_EQ_STR(uri, "data:image/png;base64,/wBhYg==", "data: URI of the bytes");
    free(uri);
    uri = provider_upload_data_uri(bytes, 3, "bad;type");
    TAP_EQ_STR(uri, "data:application/octet-stream;base64,/wBh", "  a type that would break it");
    free(uri);
    struct provider_request r;
    TAP_EQ_INT(provider_build_upload(p, &f, &r), 0, "json upload request");
    TAP_EQ_STR(r.url, "http://g.test/api/up", "  {upload_base} is the base URL");
    TAP_EQ_STR(
        r.body,
        "{\"name\":\"upload.bin\",\"type\":\"application/octet-stream\",\"b64\":\"/wBhYg==\","
        "\"uri\":\"data:application/octet-stream;base64,/wBhYg==\",\"keep\":[1,\"x\"]}",
        "  the template filled in");
    provider_request_clear(&r);
    const char *ans = "{\"f\":{\"url\":\"file:///etc/passwd\"}}";
    struct provider_upload u;
    TAP_EQ_INT(provider_parse_upload(p, 200, ans, strlen(ans), NULL, NOW, &u, &e), -EPROTO,
               "an upload answer whose URL is not http(s)");
    TAP_CHECK(e.retryable && strstr(e.msg, "f.url"), "  is malformed, retryable: %s", e.msg);
    const char *refused = "{\"detail\":\"too big\"}";
    TAP_EQ_INT(provider_parse_upload(p, 413, refused, strlen(refused), NULL, NOW, &u, &e), -EIO,
               "a 413 upload answer");
    f.len = 11;
    TAP_EQ_INT(provider_build_upload(p, &f, &r), -EFBIG, "an upload over max_bytes is not built");
    TAP_EQ_INT(provider_build_cancel(p, "m", "t", NULL, &r), -EOPNOTSUPP,
               "no cancel section: EOPNOTSUPP");
    enum provider_cancel_outcome out;
    TAP_EQ_INT(provider_parse_cancel(p, 200, "{}", 2, NULL, NOW, &out, &e), -EOPNOTSUPP,
               "  and no cancel answer");
    provider_free(p);
}

/* fal's status stream (fal docs, "Stream request status"): on the app, with the status query. */
static void test_stream(void)
{
    struct provider *fal = load("fal", "http://sim.test");
    struct provider_request r;
    TAP_EQ_INT(provider_stream_max(fal), 1000, "fal streams, 1000 at most (its profile)");
    TAP_EQ_INT(provider_build_stream(fal, "fal-ai/flux/dev", "rq-1", &r), 0, "stream request");
    TAP_EQ_STR(r.url, "http://sim.test/fal-ai/flux/requests/rq-1/status/stream?logs=1",
               "  on the app id, with ?logs=1");
    TAP_EQ_STR(r.method, "GET", "  a GET");
    provider_request_clear(&r);
    provider_free(fal);
    TAP_EQ_INT(provider_stream_max(prov), 0, "apixo does not stream");
    TAP_EQ_INT(provider_build_stream(prov, "m", "t", &r), -EOPNOTSUPP, "  no stream request");
    char err[256];
    const char *bad =
        "{\"name\":\"x\",\"auth\":{\"header\":\"A\",\"value\":\"{key}\"},"
        "\"submit\":{\"url\":\"{base}/s\",\"body\":\"{input}\",\"task_id\":\"id\"},"
        "\"status\":{\"url\":\"{base}/t\",\"state\":\"s\",\"states\":{\"ok\":\"success\"}},"
        "\"result\":{\"url\":\"{base}/r\"},"
        "\"stream\":{\"url\":\"{base}/e\",\"max_open\":0}}";
    struct provider *p = provider_load_json(bad, "test", err, sizeof(err));
    TAP_CHECK(!p && strstr(err, "stream.max_open"), "max_open 0 refused: %s", err);
    provider_free(p);
}

int main(void)
{
    prov = load("apixo", "http://sim.test");
    test_stream();
    test_requests();
    test_codes();
    test_retry_after();
    test_submit();
    test_status();
    test_progress();
    test_control();
    provider_free(prov);
    return tap_done();
}
