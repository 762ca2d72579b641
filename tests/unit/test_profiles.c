/* The profile interpreter on the built-in replicate and fal profiles, and
 * on broken profiles. */
#include "provider.h"
#include "tap.h"

#include <errno.h>
#include <stdlib.h>

static void test_replicate(void)
{
    char err[256];
    struct provider *p = provider_load_builtin("replicate", err, sizeof(err));
    TAP_CHECK(p != NULL, "replicate loads (%s)", p ? "ok" : err);
    if (!p)
        return;
    TAP_EQ_STR(provider_base_url(p), "https://api.replicate.com", "default base URL");
    TAP_EQ_INT(provider_set_base_url(p, "http://127.0.0.1:9/"), 0, "api_url overrides it");
    char *h = provider_auth_header(p, "r8_x");
    TAP_EQ_STR(h, "Authorization: Bearer r8_x", "bearer auth");
    free(h);

    struct provider_request r;
    TAP_EQ_INT(
        provider_build_submit(p, "black-forest-labs/flux-schnell", "{\"prompt\":\"a\"}", NULL, &r),
        0, "submit");
    TAP_EQ_STR(r.url, "http://127.0.0.1:9/v1/models/black-forest-labs/flux-schnell/predictions",
               "  URL keeps the model's slash");
    TAP_EQ_STR(r.body, "{\"input\":{\"prompt\":\"a\"}}", "  body");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_submit(p, "o/m", "{\"prompt\":\"a\"}", "http://cb/x?t=1", &r), 0,
               "submit with a webhook");
    TAP_EQ_STR(r.body,
               "{\"input\":{\"prompt\":\"a\"},\"webhook\":\"http://cb/x?t=1\","
               "\"webhook_events_filter\":[\"completed\"]}",
               "  webhook fields");
    provider_request_clear(&r);

    struct provider_submit sub;
    struct provider_error e;
    const char *ans = "{\"id\":\"abc123\",\"status\":\"starting\",\"urls\":{\"get\":"
                      "\"http://127.0.0.1:9/v1/predictions/abc123\",\"cancel\":\"x\"}}";
    TAP_EQ_INT(provider_parse_submit(p, 201, ans, strlen(ans), NULL, 0, &sub, &e), 0,
               "201 prediction");
    TAP_EQ_STR(sub.task_id, "abc123", "  id");
    TAP_EQ_STR(sub.status_url, "http://127.0.0.1:9/v1/predictions/abc123", "  urls.get kept");
    provider_submit_clear(&sub);
    const char *evil = "{\"id\":\"abc\",\"urls\":{\"get\":\"https://evil.test/steal\"}}";
    TAP_EQ_INT(provider_parse_submit(p, 201, evil, strlen(evil), NULL, 0, &sub, &e), 0,
               "a poll URL on another host");
    TAP_CHECK(sub.status_url == NULL, "  is dropped: the key would go there");
    provider_submit_clear(&sub);

    struct provider_status st;
    const char *proc = "{\"id\":\"abc\",\"status\":\"processing\",\"output\":null}";
    TAP_EQ_INT(provider_parse_status(p, 200, proc, strlen(proc), NULL, 0, &st, &e), 0,
               "processing");
    TAP_EQ_INT(st.state, TASK_GENERATING, "  generating");
    provider_status_clear(&st);
    const char *one = "{\"status\":\"succeeded\",\"output\":\"https://r.test/a.png\","
                      "\"created_at\":\"2024-01-01T00:00:00Z\","
                      "\"completed_at\":\"2024-01-01T00:00:02.5Z\"}";
    TAP_EQ_INT(provider_parse_status(p, 200, one, strlen(one), NULL, 0, &st, &e), 0,
               "succeeded, one URL string");
    TAP_EQ_INT(st.n_urls, 1, "  one URL");
    TAP_EQ_INT(st.complete_ms - st.create_ms, 2500, "  ISO times");
    TAP_EQ_INT(st.create_ms, 1704067200000LL, "  created_at in Unix ms");
    provider_status_clear(&st);
    const char *many = "{\"status\":\"succeeded\",\"output\":[\"https://r/a\",\"https://r/b\"]}";
    TAP_EQ_INT(provider_parse_status(p, 200, many, strlen(many), NULL, 0, &st, &e), 0,
               "succeeded, an array");
    TAP_EQ_INT(st.n_urls, 2, "  two URLs");
    provider_status_clear(&st);
    const char *cancel = "{\"status\":\"canceled\",\"error\":\"user canceled\"}";
    TAP_EQ_INT(provider_parse_status(p, 200, cancel, strlen(cancel), NULL, 0, &st, &e), 0,
               "canceled");
    TAP_EQ_INT(st.state, TASK_FAILED, "  counts as failed");
    TAP_EQ_STR(st.fail_msg, "user canceled", "  message");
    provider_status_clear(&st);
    const char *e404 = "{\"title\":\"Not found\",\"detail\":\"no such model\",\"status\":404}";
    TAP_EQ_INT(provider_parse_submit(p, 404, e404, strlen(e404), NULL, 0, &sub, &e), -ENOENT,
               "404 -> ENOENT");
    TAP_CHECK(strstr(e.msg, "no such model") != NULL, "  detail in the message: %s", e.msg);
    provider_free(p);
}

static void test_fal(void)
{
    char err[256];
    struct provider *p = provider_load_builtin("fal", err, sizeof(err));
    TAP_CHECK(p != NULL, "fal loads");
    if (!p)
        return;
    provider_set_base_url(p, "http://q.test");
    char *h = provider_auth_header(p, "k1");
    TAP_EQ_STR(h, "Authorization: Key k1", "Key auth");
    free(h);
    struct provider_request r;
    TAP_EQ_INT(provider_build_submit(p, "fal-ai/flux/dev", "{\"prompt\":\"a b\"}",
                                     "http://cb.test/hook/t0k?x=1", &r),
               0, "submit with webhook");
    TAP_EQ_STR(
        r.url,
        "http://q.test/fal-ai/flux/dev?fal_webhook=http%3A%2F%2Fcb.test%2Fhook%2Ft0k%3Fx%3D1",
        "  webhook in the query, encoded");
    TAP_EQ_STR(r.body, "{\"prompt\":\"a b\"}", "  the input is the whole body");
    provider_request_clear(&r);

    struct provider_submit sub;
    struct provider_error e;
    const char *ans = "{\"request_id\":\"0f1e-22\",\"response_url\":"
                      "\"http://q.test/fal-ai/flux/dev/requests/0f1e-22\",\"status_url\":"
                      "\"http://q.test/fal-ai/flux/dev/requests/0f1e-22/status\"}";
    TAP_EQ_INT(provider_parse_submit(p, 200, ans, strlen(ans), NULL, 0, &sub, &e), 0, "submit ok");
    TAP_EQ_STR(sub.result_url, "http://q.test/fal-ai/flux/dev/requests/0f1e-22", "  response_url");
    provider_submit_clear(&sub);

    struct provider_status st;
    const char *q = "{\"status\":\"IN_QUEUE\",\"queue_position\":3}";
    TAP_EQ_INT(provider_parse_status(p, 200, q, strlen(q), NULL, 0, &st, &e), 0, "in queue");
    TAP_EQ_INT(st.state, TASK_QUEUING, "  queuing");
    provider_status_clear(&st);
    const char *done = "{\"status\":\"COMPLETED\",\"logs\":null}";
    TAP_EQ_INT(provider_parse_status(p, 200, done, strlen(done), NULL, 0, &st, &e), 0, "completed");
    TAP_CHECK(st.state == TASK_SUCCESS && st.needs_result && st.n_urls == 0,
              "  success, result to fetch");
    provider_status_clear(&st);
    const char *bad = "{\"status\":\"COMPLETED\",\"error\":\"nsfw\",\"error_type\":\"policy\"}";
    TAP_EQ_INT(provider_parse_status(p, 200, bad, strlen(bad), NULL, 0, &st, &e), 0,
               "completed with an error");
    TAP_EQ_INT(st.state, TASK_FAILED, "  failed");
    TAP_EQ_STR(st.fail_code, "policy", "  error_type");
    TAP_EQ_STR(st.fail_msg, "nsfw", "  error");
    provider_status_clear(&st);

    TAP_EQ_INT(provider_build_result(p, "fal-ai/flux/dev", "0f1e-22", NULL, &r), 0,
               "result request from the template");
    TAP_EQ_STR(r.url, "http://q.test/fal-ai/flux/dev/requests/0f1e-22", "  URL");
    provider_request_clear(&r);
    const char *res = "{\"images\":[{\"url\":\"https://f/0.png\",\"width\":1},{\"url\":"
                      "\"https://f/1.png\"}],\"video\":{\"url\":\"https://f/v.mp4\"},"
                      "\"prompt\":\"https://not-a-result\",\"seed\":4}";
    TAP_EQ_INT(provider_parse_result(p, 200, res, strlen(res), NULL, 0, &st, &e), 0,
               "result object");
    TAP_EQ_INT(st.n_urls, 3, "  urls of images[] and video, not plain fields");
    provider_status_clear(&st);
    const char *fail = "{\"detail\":\"bad prompt\",\"error_type\":\"validation\"}";
    TAP_EQ_INT(provider_parse_result(p, 422, fail, strlen(fail), NULL, 0, &st, &e), 0,
               "422 result");
    TAP_CHECK(st.state == TASK_FAILED && st.fail_msg && strcmp(st.fail_msg, "bad prompt") == 0,
              "  the task failed with the detail");
    provider_status_clear(&st);
    TAP_CHECK(provider_parse_result(p, 503, "", 0, NULL, 0, &st, &e) < 0 && e.retryable,
              "503 result is transient");
    provider_free(p);
}

static void test_bad_profiles(void)
{
    static const struct {
        const char *json;
        const char *want;
    } bad[] = {
        {"[1]", "not a valid JSON object"},
        {"{\"name\":\"x\",\"color\":1}", "unknown key color"},
        {"{\"name\":\"x\",\"auth\":{\"header\":\"A\",\"value\":\"nokey\"}}", "auth.value"},
        {"{\"name\":\"x\",\"auth\":{\"header\":\"A\",\"value\":\"{key}\"},\"submit\":{\"url\":"
         "\"{base}/s\",\"body\":\"{input}\",\"task_id\":\"id\",\"oops\":1}}",
         "unknown key submit.oops"},
        {"{\"name\":\"x\",\"auth\":{\"header\":\"A\",\"value\":\"{key}\"},\"submit\":{\"url\":"
         "\"{base}/s\",\"body\":\"{input}\",\"task_id\":\"id\"},\"status\":{\"url\":\"{base}/\","
         "\"state\":\"s\",\"states\":{\"ok\":\"done\"}}}",
         "status.states.ok"},
        {"{\"name\":\"x\",\"auth\":{\"header\":\"A\",\"value\":\"{key}\"},\"submit\":{\"url\":"
         "\"{base}/s\",\"body\":\"{input}\",\"task_id\":\"id\"},\"status\":{\"url\":\"{base}/\","
         "\"state\":\"s\",\"states\":{\"ok\":\"success\"}}}",
         "no way to the result"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        struct provider *p = provider_load_json(bad[i].json, "/tmp/p.json", err, sizeof(err));
        TAP_CHECK(!p && strstr(err, bad[i].want) && strstr(err, "/tmp/p.json"),
                  "bad profile %zu refused naming file and key: %s", i, err);
        provider_free(p);
    }
    char err[256];
    TAP_CHECK(provider_load_builtin("nope", err, sizeof(err)) == NULL, "unknown built-in");
}

int main(void)
{
    test_replicate();
    test_fal();
    test_bad_profiles();
    return tap_done();
}
