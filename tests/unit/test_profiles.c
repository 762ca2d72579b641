/* The profile interpreter on the built-in replicate and fal profiles, and
 * on broken profiles. */
#include "media.h"
#include "provider.h"
#include "tap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
    TAP_EQ_INT(provider_build_submit(p, "black-forest-labs/flux-schnell", "{\"prompt\":\"a\"}",
                                     NULL, NULL, &r),
               0, "submit");
    TAP_EQ_STR(r.url, "http://127.0.0.1:9/v1/models/black-forest-labs/flux-schnell/predictions",
               "  URL keeps the model's slash");
    TAP_EQ_STR(r.body, "{\"input\":{\"prompt\":\"a\"}}", "  body");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_submit(p, "o/m", "{\"prompt\":\"a\"}", NULL, "http://cb/x?t=1", &r),
               0, "submit with a webhook");
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
    TAP_EQ_INT(provider_build_submit(p, "fal-ai/flux/dev", "{\"prompt\":\"a b\"}", NULL,
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
    /* The whole reason (each field of a validation failure) is in the result answer. */
    TAP_CHECK(st.state == TASK_SUCCESS && st.needs_result,
              "  the result request tells how it ended, with every field's reason");
    provider_status_clear(&st);

    TAP_EQ_INT(provider_build_result(p, "fal-ai/flux/dev", "0f1e-22", NULL, &r), 0,
               "result request from the template");
    TAP_EQ_STR(r.url, "http://q.test/fal-ai/flux/requests/0f1e-22",
               "  URL on the app, without the endpoint's sub-path (as fal documents)");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_status(p, "fal-ai/flux/dev", "0f1e-22", NULL, &r), 0,
               "status request of an adopted request");
    TAP_EQ_STR(r.url, "http://q.test/fal-ai/flux/requests/0f1e-22/status?logs=1",
               "  on the app too");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_status(p, "fal-ai/fast-sdxl", "9", NULL, &r), 0,
               "an app without a sub-path");
    TAP_EQ_STR(r.url, "http://q.test/fal-ai/fast-sdxl/requests/9/status?logs=1", "  unchanged");
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
    const char *arr = "{\"detail\":[{\"loc\":[\"body\",\"prompt\"],\"msg\":\"ensure this value "
                      "has at most 2500 characters\",\"type\":\"value_error.any_str.max_length\"},"
                      "{\"loc\":[\"body\",\"image_size\",0],\"msg\":\"bad size\",\"type\":\"x\"}]}";
    TAP_EQ_INT(provider_parse_result(p, 422, arr, strlen(arr), NULL, 0, &st, &e), 0,
               "422 result with a detail array");
    TAP_EQ_STR(st.fail_msg,
               "prompt: ensure this value has at most 2500 characters; image_size.0: bad size",
               "  the messages joined, each with its field");
    TAP_EQ_STR(st.fail_code, "value_error.any_str.max_length",
               "  the first error's type is the code (as fal's clients read it)");
    provider_status_clear(&st);
    struct provider_submit s2;
    TAP_CHECK(provider_parse_submit(p, 422, arr, strlen(arr), NULL, 0, &s2, &e) == -EINVAL &&
                  strstr(e.msg, "prompt: ensure this value has at most 2500 characters"),
              "a refused submit names the field and the reason: %s", e.msg);
    TAP_CHECK(provider_parse_result(p, 503, "", 0, NULL, 0, &st, &e) < 0 && e.retryable,
              "503 result is transient");
    provider_free(p);
}

/* Parses a status answer of profile p. */
static int parse(struct provider *p, const char *body, struct provider_status *st)
{
    struct provider_error e;
    return provider_parse_status(p, 200, body, strlen(body), NULL, 0, st, &e);
}

static void test_replicate_shapes(void)
{
    char err[256];
    struct provider *p = provider_load_builtin("replicate", err, sizeof(err));
    TAP_CHECK(p != NULL, "replicate loads");
    if (!p)
        return;
    struct provider_request r;
    TAP_EQ_INT(provider_build_submit(
                   p,
                   "cjwbw/demucs:25a173108cff36ef9f80f854c162d01df9e6528be175794b81158fa03836d953",
                   "{\"audio\":\"https://a/x.mp3\"}", NULL, NULL, &r),
               0, "a community model by version");
    TAP_EQ_STR(r.url, "https://api.replicate.com/v1/predictions", "  POST /v1/predictions");
    TAP_EQ_STR(r.body,
               "{\"version\":\"25a173108cff36ef9f80f854c162d01df9e6528be175794b81158fa03836d953\","
               "\"input\":{\"audio\":\"https://a/x.mp3\"}}",
               "  the version in the body");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_submit(p, "o/m:v1", "{}", NULL, "https://cb/t", &r), 0,
               "by version, with a webhook");
    TAP_CHECK(strstr(r.body, "\"version\":\"v1\"") &&
                  strstr(r.body, "\"webhook\":\"https://cb/t\""),
              "  version and webhook: %s", r.body);
    provider_request_clear(&r);
    TAP_EQ_INT(
        provider_build_submit(p, "deployments/acme/my-sdxl", "{\"prompt\":\"a\"}", NULL, NULL, &r),
        0, "a deployment");
    TAP_EQ_STR(r.url, "https://api.replicate.com/v1/deployments/acme/my-sdxl/predictions",
               "  POST /v1/deployments/OWNER/NAME/predictions");
    TAP_EQ_STR(r.body, "{\"input\":{\"prompt\":\"a\"}}", "  the input alone");
    provider_request_clear(&r);

    struct provider_status st;
    const char *demucs =
        "{\"status\":\"succeeded\",\"output\":{\"bass\":\"https://r/bass.wav\","
        "\"drums\":\"https://r/drums.wav\",\"guitar\":null,\"other\":"
        "\"https://r/other.wav\",\"piano\":null,\"vocals\":\"https://r/vocals.wav\"}}";
    TAP_EQ_INT(parse(p, demucs, &st), 0, "an object of named URLs with nulls");
    TAP_CHECK(st.state == TASK_SUCCESS && st.n_urls == 4, "  success, four outputs (%zu)",
              st.n_urls);
    TAP_CHECK(st.n_urls == 4 && strcmp(st.names[0], "bass") == 0 &&
                  strcmp(st.names[3], "vocals") == 0 &&
                  strcmp(st.urls[3], "https://r/vocals.wav") == 0,
              "  named after their keys");
    provider_status_clear(&st);

    const char *nested = "{\"status\":\"succeeded\",\"output\":[[\"https://r/0.png\","
                         "\"https://r/1.png\"],[\"https://r/2.png\"]]}";
    TAP_EQ_INT(parse(p, nested, &st), 0, "nested arrays");
    TAP_CHECK(st.n_urls == 3 && !st.names[0] && strcmp(st.urls[2], "https://r/2.png") == 0,
              "  three outputs, in order, by index");
    provider_status_clear(&st);

    const char *tokens =
        "{\"status\":\"succeeded\",\"output\":[\"Once\",\" upon\",\" a\",\" time\"]}";
    TAP_EQ_INT(parse(p, tokens, &st), 0, "a language model's tokens");
    TAP_CHECK(st.state == TASK_SUCCESS && st.n_urls == 1 && strcmp(st.names[0], "output") == 0,
              "  one text output");
    unsigned char *bytes = NULL;
    size_t len = 0;
    char type[64];
    TAP_CHECK(st.n_urls == 1 &&
                  media_data_uri_decode(st.urls[0], &bytes, &len, type, sizeof(type)) == 0 &&
                  len == 16 && memcmp(bytes, "Once upon a time", 16) == 0 &&
                  strcmp(type, "text/plain") == 0,
              "  holding the joined text");
    free(bytes);
    provider_status_clear(&st);

    const char *text = "{\"status\":\"succeeded\",\"output\":\"A cat on a mat.\"}";
    TAP_EQ_INT(parse(p, text, &st), 0, "a plain string that is no URL");
    TAP_CHECK(st.state == TASK_SUCCESS && st.n_urls == 1 && media_is_data_uri(st.urls[0]),
              "  is a text output, not a failure");
    provider_status_clear(&st);

    const char *data =
        "{\"status\":\"succeeded\",\"output\":[\"data:image/png;base64,iVBORw0KGgo=\"]}";
    TAP_EQ_INT(parse(p, data, &st), 0, "a data: URI");
    TAP_CHECK(st.n_urls == 1 && strncmp(st.urls[0], "data:image/png;base64,", 22) == 0,
              "  kept as the output, to decode");
    provider_status_clear(&st);

    const char *none = "{\"status\":\"succeeded\",\"output\":null}";
    TAP_EQ_INT(parse(p, none, &st), 0, "a success with no output");
    TAP_CHECK(st.state == TASK_SUCCESS && st.n_urls == 0, "  is a success with nothing to fetch");
    provider_status_clear(&st);

    const char *canceled = "{\"status\":\"canceled\",\"error\":null,\"output\":null}";
    TAP_EQ_INT(parse(p, canceled, &st), 0, "canceled");
    TAP_CHECK(st.state == TASK_FAILED && strcmp(st.fail_code, "canceled") == 0 &&
                  strstr(st.fail_msg, "canceled"),
              "  failed, and error says canceled: %s", st.fail_msg ? st.fail_msg : "(none)");
    provider_status_clear(&st);
    const char *aborted = "{\"status\":\"aborted\",\"error\":\"Prediction deadline exceeded\"}";
    TAP_EQ_INT(parse(p, aborted, &st), 0, "aborted");
    TAP_CHECK(st.state == TASK_FAILED && strcmp(st.fail_code, "aborted") == 0 &&
                  strcmp(st.fail_msg, "Prediction deadline exceeded") == 0,
              "  failed with the provider's reason");
    provider_status_clear(&st);
    provider_free(p);
}

static void test_apixo_kie(void)
{
    char err[256];
    struct provider *p = provider_load_builtin("apixo", err, sizeof(err));
    TAP_CHECK(p != NULL, "apixo loads (%s)", p ? "ok" : err);
    if (!p)
        return;
    TAP_EQ_STR(provider_base_url(p), "https://api.apixo.ai/api/v1", "apixo's base URL built in");
    struct provider_request r;
    TAP_EQ_INT(provider_build_status(p, "flux-2", "tk1", NULL, &r), 0, "apixo status");
    TAP_EQ_STR(r.url, "https://api.apixo.ai/api/v1/statusTask/flux-2?taskId=tk1",
               "  GET statusTask/{model}?taskId={id}");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_submit(p, "flux-2", "{\"prompt\":\"a\"}",
                                     "{\"provider\":\"official\",\"input\":{\"evil\":1}}", NULL,
                                     &r),
               0, "apixo submit with a model's request fields");
    TAP_EQ_STR(
        r.body,
        "{\"request_type\":\"async\",\"input\":{\"prompt\":\"a\"},\"provider\":\"official\"}",
        "  beside the input, never replacing what the profile sets");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_submit(p, "flux-2", "{}", "[1]", NULL, &r), -EINVAL,
               "request fields that are not an object");
    struct provider_status st;
    struct provider_error e;
    const char *bad = "{\"code\":400,\"message\":\"Invalid request\",\"data\":{\"error\":"
                      "\"Missing required field: input.prompt\"}}";
    struct provider_submit sub;
    TAP_EQ_INT(provider_parse_submit(p, 400, bad, strlen(bad), NULL, 0, &sub, &e), -EINVAL,
               "a refused input");
    TAP_CHECK(strstr(e.msg, "Missing required field: input.prompt") != NULL,
              "  the provider's reason (data.error) reaches the message: %s", e.msg);
    const char *failed = "{\"code\":200,\"message\":\"success\",\"data\":{\"taskId\":\"t\","
                         "\"state\":\"failed\",\"failCode\":\"CONTENT_VIOLATION\",\"failMsg\":"
                         "\"The prompt violates the content policy\",\"costTime\":0}}";
    TAP_EQ_INT(parse(p, failed, &st), 0, "apixo failed");
    TAP_CHECK(st.state == TASK_FAILED && strcmp(st.fail_code, "CONTENT_VIOLATION") == 0,
              "  failCode word");
    provider_status_clear(&st);
    const char *ok =
        "{\"code\":200,\"message\":\"success\",\"data\":{\"taskId\":\"t\",\"state\":"
        "\"success\",\"resultJson\":\"{\\\"resultUrls\\\":[\\\"https://c/0.png\\\"]}\","
        "\"costTime\":8123,\"createTime\":0,\"completeTime\":0}}";
    TAP_EQ_INT(parse(p, ok, &st), 0, "apixo success");
    TAP_CHECK(st.state == TASK_SUCCESS && st.n_urls == 1 && st.cost_ms == 8123,
              "  URL and costTime");
    provider_status_clear(&st);
    provider_free(p);

    p = provider_load_builtin("kie", err, sizeof(err));
    TAP_CHECK(p != NULL, "kie loads (%s)", p ? "ok" : err);
    if (!p)
        return;
    TAP_EQ_INT(provider_build_submit(p, "grok-imagine/text-to-image", "{\"prompt\":\"a\"}", NULL,
                                     "https://cb/t", &r),
               0, "kie submit");
    TAP_EQ_STR(r.url, "https://api.kie.ai/api/v1/jobs/createTask", "  createTask");
    TAP_EQ_STR(r.body,
               "{\"model\":\"grok-imagine/text-to-image\",\"callBackUrl\":\"https://cb/t\","
               "\"input\":{\"prompt\":\"a\"}}",
               "  the model id in the body");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_status(p, "grok-imagine/text-to-image", "k1", NULL, &r), 0,
               "kie status");
    TAP_EQ_STR(r.url, "https://api.kie.ai/api/v1/jobs/recordInfo?taskId=k1", "  recordInfo");
    provider_request_clear(&r);
    const char *inbody = "{\"code\":402,\"msg\":\"Insufficient credits\",\"data\":null}";
    TAP_EQ_INT(provider_parse_submit(p, 200, inbody, strlen(inbody), NULL, 0, &sub, &e), -EDQUOT,
               "an in-body 402 inside an HTTP 200");
    TAP_CHECK(strstr(e.msg, "Insufficient credits") != NULL, "  with its reason: %s", e.msg);
    const char *fail = "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"k1\",\"state\":"
                       "\"fail\",\"failCode\":\"500\",\"failMsg\":\"internal error\"}}";
    TAP_EQ_INT(parse(p, fail, &st), 0, "kie fail");
    TAP_CHECK(st.state == TASK_FAILED && strcmp(st.fail_msg, "internal error") == 0, "  failed");
    provider_status_clear(&st);
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
#define MINI                                                                                       \
    "{\"name\":\"x\",\"auth\":{\"header\":\"A\",\"value\":\"{key}\"},\"submit\":{\"url\":"         \
    "\"{base}/s\",\"body\":\"{input}\",\"task_id\":\"id\"},\"status\":{\"url\":\"{base}/\","       \
    "\"state\":\"s\",\"states\":{\"ok\":\"success\"},\"result\":\"r\""
        {MINI ",\"progress_logs\":\"([0-9]+)%\"}}", "status.progress_logs needs status.logs"},
        {MINI ",\"logs\":\"l\",\"progress_logs\":\"([0-9]{1,3})%\"}}", "without {m,n}"},
        {MINI ",\"logs\":\"l\",\"progress_logs\":\"(a)\\\\1\"}}", "back-references"},
        {MINI ",\"logs\":\"l\",\"progress_logs\":\"[0-9]+%\"}}", "needs a group"},
        {MINI ",\"logs\":\"l\",\"progress_logs\":\"([0-9\"}}", "not a valid extended"},
        {MINI ",\"query\":{\"logs\":1}}}", "status.query.logs must be a string"},
        {MINI "},\"cancel\":{\"url\":\"{base}/c\",\"state\":\"s\",\"answers\":{\"x\":\"gone\"}}}",
         "cancel.answers.x"},
        {MINI "},\"cancel\":{\"method\":\"GET\",\"url\":\"{base}/c\",\"state\":\"s\","
              "\"answers\":{\"x\":\"canceled\"}}}",
         "cancel.method"},
        {MINI "},\"cancel\":{\"url\":\"{base}/c\",\"answers\":{\"x\":\"canceled\"}}}",
         "missing key cancel.state"},
        {MINI "},\"upload\":{\"kind\":\"ftp\"}}", "upload.kind"},
        {MINI "},\"upload\":{\"max_bytes\":5}}", "upload needs a kind"},
        {MINI "},\"upload\":{\"kind\":\"multipart\",\"url\":\"{upload_base}/f\","
              "\"file_url\":\"u\"}}",
         "missing key upload.field"},
        {MINI "},\"upload\":{\"kind\":\"initiate_put\",\"url\":\"{base}/i\",\"body\":{},"
              "\"file_url\":\"u\"}}",
         "missing key upload.put_url"},
        {MINI "},\"upload\":{\"kind\":\"json\",\"url\":\"{base}/i\",\"body\":{},"
              "\"file_url\":\"u\",\"max_bytes\":-1}}",
         "upload.max_bytes"},
        {MINI
         "},\"upload\":{\"kind\":\"json\",\"url\":\"ftp://x\",\"body\":{},\"file_url\":\"u\"}}",
         "upload.url"},
#undef MINI
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

/* Whether the request's body holds the text s. */
static bool body_has(const struct provider_request *r, const char *s)
{
    return r->body && memmem(r->body, r->body_len, s, strlen(s)) != NULL;
}

/* Cancel, logs, progress, queue position, adopted input and uploads in the
 * built-in profiles (issue 19). */
static void test_control(void)
{
    char err[256];
    struct provider_request r;
    struct provider_error e;
    struct provider_status st;
    enum provider_cancel_outcome out;

    struct provider *p = provider_load_builtin("replicate", err, sizeof(err));
    provider_set_base_url(p, "http://r.test");
    TAP_CHECK(provider_can_cancel(p), "replicate can cancel");
    TAP_EQ_INT(provider_build_cancel(p, "o/m", "abc", NULL, &r), 0, "replicate cancel request");
    TAP_EQ_STR(r.method, "POST", "  POST");
    TAP_EQ_STR(r.url, "http://r.test/v1/predictions/abc/cancel", "  from the template");
    provider_request_clear(&r);
    TAP_EQ_INT(
        provider_build_cancel(p, "o/m", "abc", "http://r.test/v1/predictions/abc/cancel2", &r), 0,
        "replicate cancel at the URL the prediction gave");
    TAP_EQ_STR(r.url, "http://r.test/v1/predictions/abc/cancel2", "  that URL");
    provider_request_clear(&r);
    TAP_EQ_INT(provider_build_cancel(p, "o/m", "abc", "http://evil.test/x", &r), 0,
               "a cancel URL on another host");
    TAP_EQ_STR(r.url, "http://r.test/v1/predictions/abc/cancel", "  is not followed");
    provider_request_clear(&r);
    const char *canceled = "{\"id\":\"abc\",\"status\":\"canceled\",\"logs\":null}";
    TAP_EQ_INT(provider_parse_cancel(p, 200, canceled, strlen(canceled), NULL, 0, &out, &e), 0,
               "replicate cancel answer");
    TAP_EQ_INT(out, PROVIDER_CANCEL_DONE, "  canceled");
    const char *done = "{\"id\":\"abc\",\"status\":\"succeeded\"}";
    TAP_EQ_INT(provider_parse_cancel(p, 200, done, strlen(done), NULL, 0, &out, &e), 0,
               "cancel of a finished prediction");
    TAP_EQ_INT(out, PROVIDER_CANCEL_TOO_LATE, "  too late");
    const char *nf = "{\"detail\":\"Not found.\"}";
    TAP_EQ_INT(provider_parse_cancel(p, 404, nf, strlen(nf), NULL, 0, &out, &e), -ENOENT,
               "cancel of an unknown prediction: ENOENT");
    const char *proc = "{\"id\":\"abc\",\"status\":\"processing\",\"input\":{\"prompt\":\"fox\"},"
                       "\"logs\":\"Using seed: 1\\n  0%|          | 0/50 [00:00<?, ?it/s]\\n 10%|"
                       "\xe2\x96\x88         | 5/50 [00:01<00:09,  4.91it/s]\\n\","
                       "\"urls\":{\"cancel\":\"http://r.test/v1/predictions/abc/cancel\"}}";
    TAP_EQ_INT(provider_parse_status(p, 200, proc, strlen(proc), NULL, 0, &st, &e), 0,
               "replicate processing with tqdm logs");
    TAP_EQ_INT(st.progress, 10, "  progress from the last tqdm line");
    TAP_CHECK(st.logs && strstr(st.logs, "Using seed: 1\n"), "  logs as text");
    TAP_EQ_STR(st.input_json, "{\"prompt\":\"fox\"}", "  the input object");
    TAP_EQ_STR(st.cancel_url, "http://r.test/v1/predictions/abc/cancel", "  the cancel URL");
    TAP_EQ_INT(st.queue_position, -1, "  no queue position");
    provider_status_clear(&st);
    enum provider_upload_way way;
    char msg[256];
    TAP_EQ_INT(provider_upload_plan(p, 1000, &way, msg, sizeof(msg)), 0, "a small file");
    TAP_EQ_INT(way, PROVIDER_UPLOAD_DATA_URI, "  goes inline as a data: URI");
    TAP_EQ_INT(provider_upload_plan(p, 300000, &way, msg, sizeof(msg)), 0, "a bigger file");
    TAP_EQ_INT(way, PROVIDER_UPLOAD_REQUEST, "  is uploaded");
    TAP_EQ_INT(provider_upload_plan(p, 200u << 20, &way, msg, sizeof(msg)), -EFBIG,
               "a file over 100 MiB: EFBIG");
    TAP_CHECK(strstr(msg, "URL") != NULL, "  saying what to do: %s", msg);
    static const unsigned char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    struct provider_upload_file f = {png, sizeof(png) - 1, "dir/in put\".png", "image/png"};
    TAP_EQ_INT(provider_build_upload(p, &f, &r), 0, "replicate upload request");
    TAP_EQ_STR(r.url, "http://r.test/v1/files", "  the Files API on the base URL");
    TAP_CHECK(r.content_type && strncmp(r.content_type, "multipart/form-data; boundary=", 30) == 0,
              "  multipart: %s", r.content_type ? r.content_type : "(none)");
    TAP_CHECK(!r.no_auth, "  with the key");
    TAP_CHECK(body_has(&r, "name=\"content\"; filename=\"dir_in_put_.png\"\r\n"
                           "Content-Type: image/png\r\n\r\n"),
              "  the file part, its name made safe");
    TAP_CHECK(r.body && memmem(r.body, r.body_len, png, sizeof(png) - 1) != NULL,
              "  the bytes, NULs included");
    struct provider_request again;
    provider_build_upload(p, &f, &again);
    TAP_CHECK(again.body_len == r.body_len && memcmp(again.body, r.body, r.body_len) == 0,
              "  a retry sends the same body");
    provider_request_clear(&again);
    provider_request_clear(&r);
    provider_free(p);

    p = provider_load_builtin("fal", err, sizeof(err));
    provider_set_base_url(p, "http://q.test");
    TAP_EQ_INT(provider_build_cancel(p, "fal-ai/flux/dev", "r1", NULL, &r), 0, "fal cancel");
    TAP_EQ_STR(r.method, "PUT", "  PUT");
    TAP_EQ_STR(r.url, "http://q.test/fal-ai/flux/requests/r1/cancel", "  on the app");
    provider_request_clear(&r);
    const char *already = "{\"status\": \"ALREADY_COMPLETED\"}";
    TAP_EQ_INT(provider_parse_cancel(p, 400, already, strlen(already), NULL, 0, &out, &e), 0,
               "fal's 400 ALREADY_COMPLETED is an answer");
    TAP_EQ_INT(out, PROVIDER_CANCEL_TOO_LATE, "  too late");
    const char *queued = "{\"status\":\"IN_QUEUE\",\"queue_position\":3,\"logs\":null}";
    TAP_EQ_INT(provider_parse_status(p, 200, queued, strlen(queued), NULL, 0, &st, &e), 0,
               "fal in queue");
    TAP_EQ_INT(st.queue_position, 3, "  its position");
    TAP_CHECK(st.logs == NULL, "  logs null: none");
    provider_status_clear(&st);
    f = (struct provider_upload_file){png, sizeof(png) - 1, "a.png", "image/png"};
    TAP_EQ_INT(provider_build_upload(p, &f, &r), 0, "fal upload: initiate");
    TAP_EQ_STR(r.url, "http://q.test/storage/upload/initiate?storage_type=fal-cdn-v3",
               "  api_url takes the uploads along");
    TAP_EQ_STR(r.body, "{\"content_type\":\"image/png\",\"file_name\":\"a.png\"}", "  JSON body");
    provider_request_clear(&r);
    const char *init = "{\"upload_url\":\"https://up.test/put?sig=1\",\"file_url\":"
                       "\"https://v3.fal.media/files/a.png\"}";
    struct provider_upload u;
    TAP_EQ_INT(provider_parse_upload(p, 200, init, strlen(init), NULL, 0, &u, &e), 0,
               "initiate answer");
    TAP_EQ_STR(u.file_url, "https://v3.fal.media/files/a.png", "  file URL");
    TAP_EQ_STR(u.put_url, "https://up.test/put?sig=1", "  upload URL");
    TAP_EQ_INT(provider_build_upload_put(&u, &f, &r), 0, "the PUT");
    TAP_CHECK(r.no_auth && strcmp(r.method, "PUT") == 0 && r.body_len == f.len &&
                  memcmp(r.body, png, f.len) == 0 && strcmp(r.content_type, "image/png") == 0,
              "  the bytes, their type, without the key");
    provider_request_clear(&r);
    provider_upload_clear(&u);
    TAP_EQ_INT(provider_parse_upload_put(200, NULL, 0, &e), 0, "a 200 PUT answer");
    TAP_EQ_INT(provider_parse_upload_put(403, NULL, 0, &e), -EACCES, "an expired upload URL");
    TAP_CHECK(strstr(e.msg, "expired") != NULL, "  says so: %s", e.msg);
    TAP_EQ_INT(provider_upload_plan(p, 10, &way, msg, sizeof(msg)), 0, "fal: even a tiny file");
    TAP_EQ_INT(way, PROVIDER_UPLOAD_REQUEST, "  is uploaded (not every fal model takes data:)");
    provider_free(p);

    p = provider_load_builtin("kie", err, sizeof(err));
    TAP_CHECK(!provider_can_cancel(p), "kie has no cancel");
    TAP_EQ_INT(provider_build_cancel(p, "m", "t", NULL, &r), -EOPNOTSUPP, "  EOPNOTSUPP");
    TAP_EQ_INT(provider_build_upload(p, &f, &r), 0, "kie upload");
    TAP_EQ_STR(r.url, "https://kieai.redpandaai.co/api/file-stream-upload", "  on kie's file host");
    TAP_CHECK(body_has(&r, "name=\"fileName\"\r\n\r\na.png\r\n") &&
                  body_has(&r, "name=\"uploadPath\"\r\n\r\ngenfs\r\n") &&
                  body_has(&r, "name=\"file\"; filename=\"a.png\""),
              "  fields uploadPath and fileName, then the file");
    provider_request_clear(&r);
    const char *rec = "{\"code\":200,\"msg\":\"success\",\"data\":{\"taskId\":\"k\",\"state\":"
                      "\"generating\",\"progress\":45,\"param\":\"{\\\"model\\\":\\\"m\\\","
                      "\\\"input\\\":{\\\"prompt\\\":\\\"a cat\\\"}}\"}}";
    TAP_EQ_INT(provider_parse_status(p, 200, rec, strlen(rec), NULL, 0, &st, &e), 0,
               "kie recordInfo with param and progress");
    TAP_EQ_INT(st.progress, 45, "  progress");
    TAP_EQ_STR(st.input_json, "{\"prompt\":\"a cat\"}", "  the input inside param");
    provider_status_clear(&st);
    provider_free(p);

    p = provider_load_builtin("apixo", err, sizeof(err));
    TAP_CHECK(!provider_can_cancel(p), "APIXO has no cancel");
    TAP_EQ_INT(provider_upload_plan(p, 10, &way, msg, sizeof(msg)), -EOPNOTSUPP,
               "APIXO takes no local files");
    TAP_CHECK(strstr(msg, "apixo") && strstr(msg, "URL"), "  says so: %s", msg);
    provider_free(p);
}

int main(void)
{
    test_replicate();
    test_fal();
    test_replicate_shapes();
    test_apixo_kie();
    test_bad_profiles();
    test_control();
    return tap_done();
}
