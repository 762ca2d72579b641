/* genfs-sim's uploads: multipart parts, the routes of each protocol, the parsers, and answers
 * in the shapes of tests/fixtures/providers (replicate/file-created.json,
 * fal/upload-initiate-apis-io.json, kie/upload-file-stream-docs.json). */
#include "sim_upload.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define R SIM_PROTO_REPLICATE
#define F SIM_PROTO_FAL
#define K SIM_PROTO_KIE

static const char body[] = "--XyZ\r\n"
                           "Content-Disposition: form-data; name=\"uploadPath\"\r\n\r\n"
                           "genfs\r\n"
                           "--XyZ\r\n"
                           "Content-Disposition: form-data; name=\"file\"; filename=\"a b.png\"\r\n"
                           "Content-Type: image/png\r\n\r\n"
                           "\x89PNG\r\n--Xy\0Z\r\n"
                           "--XyZ\r\n"
                           "Content-Disposition: form-data; name=\"fileName\"\r\n\r\n"
                           "cat.png\r\n"
                           "--XyZ--\r\n";

static void test_part(void)
{
    struct sim_part p;
    char msg[128];
    const char *ct = "multipart/form-data; boundary=XyZ";
    TAP_EQ_INT(sim_upload_part(ct, body, sizeof(body) - 1, "file", &p, msg, sizeof(msg)), 0,
               "the file part");
    TAP_EQ_INT(p.len, 12, "  its bytes up to the delimiter (CRLF and NUL inside kept)");
    TAP_CHECK(p.data && memcmp(p.data, "\x89PNG\r\n--Xy\0Z", 12) == 0, "  as sent");
    TAP_EQ_STR(p.filename, "a b.png", "  filename");
    TAP_EQ_STR(p.content_type, "image/png", "  its Content-Type");
    TAP_EQ_INT(sim_upload_part("multipart/form-data; boundary=\"XyZ\"", body, sizeof(body) - 1,
                               "uploadPath", &p, msg, sizeof(msg)),
               0, "a quoted boundary, a text part");
    TAP_CHECK(p.len == 5 && memcmp(p.data, "genfs", 5) == 0, "  its value");
    TAP_EQ_INT(sim_upload_part(ct, body, sizeof(body) - 1, "content", &p, msg, sizeof(msg)), -1,
               "no part of that name");
    TAP_CHECK(strstr(msg, "content") != NULL, "  says which: %s", msg);
    TAP_EQ_INT(
        sim_upload_part("application/json", body, sizeof(body) - 1, "file", &p, msg, sizeof(msg)),
        -1, "not multipart");
    TAP_EQ_INT(sim_upload_part(ct, body, 40, "file", &p, msg, sizeof(msg)), -1, "a cut body");
}

static void test_routes(void)
{
    struct sim_route_info ri;
    TAP_CHECK(sim_upload_route(R, "POST", "/v1/files", &ri) && ri.route == SIM_ROUTE_UPLOAD,
              "replicate POST /v1/files");
    TAP_CHECK(sim_upload_route(R, "GET", "/v1/files/abc", &ri) &&
                  ri.route == SIM_ROUTE_UPLOAD_GET && strcmp(ri.task_id, "abc") == 0,
              "replicate GET /v1/files/{id}");
    TAP_CHECK(sim_upload_route(F, "POST", "/storage/upload/initiate", &ri) &&
                  ri.route == SIM_ROUTE_UPLOAD,
              "fal initiate");
    TAP_CHECK(!sim_upload_route(F, "POST", "/v1/files", &ri), "  replicate's path is no fal one");
    TAP_CHECK(sim_upload_route(F, "PUT", "/_upload/u1", &ri) && ri.route == SIM_ROUTE_UPLOAD_PUT,
              "fal's presigned PUT");
    TAP_CHECK(sim_upload_route(K, "POST", "/api/file-stream-upload", &ri) &&
                  ri.route == SIM_ROUTE_UPLOAD,
              "kie stream upload");
    TAP_CHECK(sim_upload_route(K, "GET", "/files/u1/cat.png", &ri) &&
                  ri.route == SIM_ROUTE_UPLOAD_FILE && strcmp(ri.task_id, "u1") == 0 &&
                  strcmp(ri.model, "cat.png") == 0,
              "GET /files/{id}/{name}");
    TAP_CHECK(sim_upload_route(SIM_PROTO_APIXO, "GET", "/_sim/uploads/u1", &ri) &&
                  ri.route == SIM_ROUTE_UPLOAD_BYTES,
              "/_sim/uploads/{id} in every protocol");
    TAP_CHECK(sim_upload_route(SIM_PROTO_APIXO, "DELETE", "/_sim/uploads", &ri) &&
                  ri.route == SIM_ROUTE_BAD_METHOD,
              "/_sim/uploads is GET only");
    TAP_CHECK(!sim_upload_route(SIM_PROTO_APIXO, "POST", "/v1/files", &ri), "APIXO has no upload");
}

static void test_parse_answers(void)
{
    struct sim_upload u = {0};
    char msg[128];
    const char *ct = "multipart/form-data; boundary=XyZ";
    TAP_EQ_INT(sim_upload_parse(K, ct, body, sizeof(body) - 1, &u, msg, sizeof(msg)), 0,
               "kie upload");
    TAP_EQ_STR(u.name, "cat.png", "  named by its fileName field");
    TAP_CHECK(u.len == 12 && u.complete, "  the bytes kept");
    snprintf(u.id, sizeof(u.id), "u1");
    u.created_ms = 1000000000000LL;
    int st = 0;
    cJSON *a = sim_upload_answer(K, &u, "http://s", u.created_ms, &st);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(a, "data");
    TAP_EQ_INT(st, 200, "  answer 200");
    TAP_CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "success")) &&
                  cJSON_GetObjectItemCaseSensitive(a, "code")->valueint == 200,
              "  success, code 200");
    TAP_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "downloadUrl")),
               "http://s/files/u1/cat.png", "  data.downloadUrl serves the file");
    cJSON_Delete(a);
    free(u.name);
    free(u.content_type);
    free(u.data);

    TAP_EQ_INT(sim_upload_parse(R, ct, body, sizeof(body) - 1, &u, msg, sizeof(msg)), 422,
               "replicate wants the part \"content\"");
    free(u.name);
    free(u.content_type);
    free(u.data);
    static const char rep[] =
        "--b\r\nContent-Disposition: form-data; name=\"content\"; "
        "filename=\"../x y.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n";
    TAP_EQ_INT(sim_upload_parse(R, "multipart/form-data; boundary=b", rep, sizeof(rep) - 1, &u, msg,
                                sizeof(msg)),
               0, "replicate upload");
    TAP_EQ_STR(u.name, ".._x_y.txt", "  a name safe in a URL");
    snprintf(u.id, sizeof(u.id), "f1");
    a = sim_upload_answer(R, &u, "http://s", 0, &st);
    TAP_EQ_INT(st, 201, "  201 Created");
    TAP_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                   cJSON_GetObjectItemCaseSensitive(a, "urls"), "get")),
               "http://s/v1/files/f1", "  urls.get");
    TAP_EQ_INT(cJSON_GetObjectItemCaseSensitive(a, "size")->valueint, 2, "  size");
    TAP_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                   cJSON_GetObjectItemCaseSensitive(a, "checksums"), "sha256")),
               "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
               "  checksums.sha256 of \"hi\"");
    cJSON_Delete(a);
    free(u.name);
    free(u.content_type);
    free(u.data);

    const char *init = "{\"content_type\":\"image/png\",\"file_name\":\"a.png\"}";
    TAP_EQ_INT(sim_upload_parse(F, NULL, init, strlen(init), &u, msg, sizeof(msg)), 0,
               "fal initiate");
    TAP_CHECK(!u.complete && u.len == 0, "  no bytes until the PUT");
    snprintf(u.id, sizeof(u.id), "g1");
    a = sim_upload_answer(F, &u, "http://s", 0, &st);
    TAP_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "upload_url")),
               "http://s/_upload/g1?signature=sim", "  upload_url: the presigned PUT");
    TAP_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "file_url")),
               "http://s/files/g1/a.png", "  file_url");
    cJSON_Delete(a);
    a = sim_upload_figure_json(&u, "http://s");
    TAP_CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a, "sha256")) &&
                  cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(a, "complete")),
              "  its record: not complete, no sha256 yet");
    cJSON_Delete(a);
    free(u.name);
    free(u.content_type);
    TAP_EQ_INT(sim_upload_parse(F, NULL, "{}", 2, &u, msg, sizeof(msg)), 422,
               "fal initiate without its fields: 422");
    free(u.name);
    free(u.content_type);
    char id1[SIM_UPLOAD_ID_MAX + 1], id2[SIM_UPLOAD_ID_MAX + 1];
    sim_upload_id(1, 1, id1);
    sim_upload_id(1, 2, id2);
    TAP_CHECK(strlen(id1) == 32 && strcmp(id1, id2) != 0, "upload ids: 32 hex, distinct");
}

int main(void)
{
    test_part();
    test_routes();
    test_parse_answers();
    return tap_done();
}
