/* Uploads of every protocol (sim_upload.h). Answers follow tests/fixtures/providers:
 * replicate/file-created.json, fal/upload-initiate-apis-io.json, kie/upload-file-stream-docs.json.
 */
#include "sim_upload.h"

#include "sim_rng.h"
#include "sim_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The value of a header parameter (boundary=..., name="..."), quoted or not, into out. */
static int sim_upload_param(const char *h, size_t hlen, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl < hlen; i++) {
        /* The key must start a parameter: after ';', ' ' or the start. */
        if ((i > 0 && h[i - 1] != ';' && h[i - 1] != ' ') || strncasecmp(h + i, key, kl) != 0 ||
            h[i + kl] != '=')
            continue;
        const char *v = h + i + kl + 1, *end = h + hlen;
        size_t n = 0;
        if (v < end && *v == '"') {
            v++;
            while (v + n < end && v[n] != '"')
                n++;
        } else {
            while (v + n < end && v[n] != ';' && v[n] != ' ' && v[n] != '\r')
                n++;
        }
        if (n == 0 || n >= cap)
            return -1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

int sim_upload_part(const char *ctype, const char *body, size_t len, const char *name,
                    struct sim_part *out, char *msg, size_t msglen)
{
    char boundary[128], delim[132];
    memset(out, 0, sizeof(*out));
    if (!ctype || strncasecmp(ctype, "multipart/form-data", 19) != 0 ||
        sim_upload_param(ctype, strlen(ctype), "boundary", boundary, sizeof(boundary)) != 0) {
        snprintf(msg, msglen, "Content-Type must be multipart/form-data with a boundary");
        return -1;
    }
    int dl = snprintf(delim, sizeof(delim), "--%s", boundary);
    const char *p = body ? memmem(body, len, delim, (size_t)dl) : NULL, *end = body + len;
    while (p) {
        const char *head = p + dl;
        if (end - head >= 2 && head[0] == '-' && head[1] == '-')
            break; /* the closing delimiter */
        if (end - head < 2 || head[0] != '\r' || head[1] != '\n')
            break;
        head += 2;
        const char *hend = memmem(head, (size_t)(end - head), "\r\n\r\n", 4);
        if (!hend)
            break;
        const char *data = hend + 4;
        /* The part ends at CRLF and the next delimiter. */
        char next[136];
        int nl = snprintf(next, sizeof(next), "\r\n%s", delim);
        const char *stop = memmem(data, (size_t)(end - data), next, (size_t)nl);
        if (!stop)
            break;
        char pname[128] = "";
        size_t hl = (size_t)(hend - head);
        const char *cd = NULL;
        for (size_t i = 0; i + 20 <= hl; i++)
            if (strncasecmp(head + i, "Content-Disposition:", 20) == 0) {
                cd = head + i;
                break;
            }
        size_t cdl = 0;
        while (cd && cd + cdl < hend && cd[cdl] != '\r')
            cdl++;
        if (cd && sim_upload_param(cd, cdl, "name", pname, sizeof(pname)) == 0 &&
            strcmp(pname, name) == 0) {
            sim_upload_param(cd, cdl, "filename", out->filename, sizeof(out->filename));
            for (size_t i = 0; i + 13 <= hl; i++) {
                if (strncasecmp(head + i, "Content-Type:", 13) != 0)
                    continue;
                const char *v = head + i + 13;
                while (*v == ' ')
                    v++;
                size_t n = 0;
                while (v + n < hend && v[n] != '\r' && n + 1 < sizeof(out->content_type))
                    n++;
                memcpy(out->content_type, v, n);
                out->content_type[n] = '\0';
                break;
            }
            out->data = data;
            out->len = (size_t)(stop - data);
            return 0;
        }
        p = stop + 2;
    }
    snprintf(msg, msglen, "multipart body: no part named %s", name);
    return -1;
}

/* {prefix}{id}{rest}: the id (up to the next '/' or the end) into out. */
static int sim_upload_id_at(const char *path, const char *prefix, struct sim_route_info *out,
                            const char **rest)
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0)
        return 0;
    const char *id = path + pl;
    size_t n = strcspn(id, "/");
    if (sim_req_copy(out->task_id, sizeof(out->task_id), id, n))
        return 0;
    *rest = id + n;
    return 1;
}

int sim_upload_route(enum sim_protocol p, const char *method, const char *path,
                     struct sim_route_info *out)
{
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0, put = strcmp(method, "PUT") == 0;
    const char *rest = NULL;
    memset(out, 0, sizeof(*out));
    static const char *const create[] = {
        [SIM_PROTO_APIXO] = NULL,
        [SIM_PROTO_KIE] = "/api/file-stream-upload",
        [SIM_PROTO_REPLICATE] = "/v1/files",
        [SIM_PROTO_FAL] = "/storage/upload/initiate",
    };
    if (create[p] && strcmp(path, create[p]) == 0) {
        out->route = post ? SIM_ROUTE_UPLOAD : SIM_ROUTE_BAD_METHOD;
        return 1;
    }
    if (p == SIM_PROTO_REPLICATE && sim_upload_id_at(path, "/v1/files/", out, &rest) && !*rest) {
        out->route = get ? SIM_ROUTE_UPLOAD_GET : SIM_ROUTE_BAD_METHOD;
        return 1;
    }
    if (sim_upload_id_at(path, "/files/", out, &rest) && rest[0] == '/' &&
        sim_req_copy(out->model, sizeof(out->model), rest + 1, strlen(rest + 1)) == 0) {
        out->route = get ? SIM_ROUTE_UPLOAD_FILE : SIM_ROUTE_BAD_METHOD;
        return 1;
    }
    if (sim_upload_id_at(path, "/_upload/", out, &rest) && !*rest) {
        out->route = put ? SIM_ROUTE_UPLOAD_PUT : SIM_ROUTE_BAD_METHOD;
        return 1;
    }
    if (strcmp(path, "/_sim/uploads") == 0) {
        out->route = get ? SIM_ROUTE_UPLOADS : SIM_ROUTE_BAD_METHOD;
        return 1;
    }
    if (sim_upload_id_at(path, "/_sim/uploads/", out, &rest) && !*rest) {
        out->route = get ? SIM_ROUTE_UPLOAD_BYTES : SIM_ROUTE_BAD_METHOD;
        return 1;
    }
    memset(out, 0, sizeof(*out));
    return 0;
}

/* A name safe in a URL path: [A-Za-z0-9._-], "upload.bin" when nothing is left. */
static char *sim_upload_safe_name(const char *name)
{
    char buf[128];
    size_t n = 0;
    for (const char *c = name; c && *c && n + 1 < sizeof(buf); c++)
        buf[n++] = (strchr("._-", *c) || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                    (*c >= 'A' && *c <= 'Z'))
                       ? *c
                       : '_';
    buf[n] = '\0';
    if (n == 0 || strspn(buf, ".") == n)
        snprintf(buf, sizeof(buf), "upload.bin");
    return strdup(buf);
}

static int sim_upload_take(struct sim_upload *out, const char *name, const char *type,
                           const char *data, size_t len)
{
    out->name = sim_upload_safe_name(name);
    out->content_type = strdup(type && *type ? type : "application/octet-stream");
    out->data = malloc(len ? len : 1);
    if (!out->name || !out->content_type || !out->data)
        return 500;
    if (len)
        memcpy(out->data, data, len);
    out->len = len;
    out->complete = 1;
    return 0;
}

int sim_upload_parse(enum sim_protocol p, const char *ctype, const char *body, size_t len,
                     struct sim_upload *out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof(*out));
    if (p == SIM_PROTO_FAL) {
        cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "content_type");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "file_name");
        int rc = 0;
        if (!cJSON_IsString(t) || !cJSON_IsString(n)) {
            snprintf(msg, msglen, "content_type and file_name: field required");
            rc = 422;
        } else {
            out->name = sim_upload_safe_name(n->valuestring);
            out->content_type = strdup(t->valuestring);
            rc = out->name && out->content_type ? 0 : 500;
        }
        cJSON_Delete(j);
        return rc;
    }
    struct sim_part part, fname;
    const char *field = p == SIM_PROTO_KIE ? "file" : "content";
    if (sim_upload_part(ctype, body, len, field, &part, msg, msglen) != 0)
        return p == SIM_PROTO_KIE ? 400 : 422;
    char given[256];
    snprintf(given, sizeof(given), "%s", part.filename);
    /* kie names the file by its fileName field when there is one. */
    if (p == SIM_PROTO_KIE &&
        sim_upload_part(ctype, body, len, "fileName", &fname, msg, msglen) == 0)
        snprintf(given, sizeof(given), "%.*s", (int)fname.len, fname.data);
    return sim_upload_take(out, given, part.content_type, part.data, part.len);
}

void sim_upload_id(uint64_t seed, uint64_t counter, char out[SIM_UPLOAD_ID_MAX + 1])
{
    uint64_t a = sim_rng_hash_u64(sim_rng_hash_u64(seed, 0x75706c6f6164ULL), counter);
    uint64_t b = sim_rng_mix(a ^ 0x9e3779b97f4a7c15ULL);
    snprintf(out, SIM_UPLOAD_ID_MAX + 1, "%016llx%016llx", (unsigned long long)a,
             (unsigned long long)b);
}

void sim_upload_file_url(const struct sim_upload *u, const char *base, char *out, size_t cap)
{
    snprintf(out, cap, "%s/files/%s/%s", base, u->id, u->name);
}

static void sim_upload_sha(const struct sim_upload *u, char hex[65])
{
    struct sim_sha256 s;
    sim_sha256_init(&s);
    sim_sha256_update(&s, u->data ? u->data : (const unsigned char *)"", u->len);
    sim_sha256_final_hex(&s, hex);
}

cJSON *sim_upload_answer(enum sim_protocol p, const struct sim_upload *u, const char *base,
                         long long now_ms, int *status)
{
    char url[600], iso[SIM_PROTO_ISO_MAX], sha[65];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    *status = 200;
    sim_upload_file_url(u, base, url, sizeof(url));
    if (p == SIM_PROTO_FAL) {
        char put[600];
        snprintf(put, sizeof(put), "%s/_upload/%s?signature=sim", base, u->id);
        cJSON_AddStringToObject(o, "upload_url", put);
        cJSON_AddStringToObject(o, "file_url", url);
        return o;
    }
    sim_proto_iso8601(u->created_ms, iso);
    if (p == SIM_PROTO_KIE) {
        char path[300];
        snprintf(path, sizeof(path), "genfs/%s", u->name);
        cJSON_AddBoolToObject(o, "success", 1);
        cJSON_AddNumberToObject(o, "code", 200);
        cJSON_AddStringToObject(o, "msg", "File uploaded successfully");
        cJSON *d = cJSON_AddObjectToObject(o, "data");
        cJSON_AddStringToObject(d, "fileName", u->name);
        cJSON_AddStringToObject(d, "filePath", path);
        cJSON_AddStringToObject(d, "downloadUrl", url);
        cJSON_AddNumberToObject(d, "fileSize", (double)u->len);
        cJSON_AddStringToObject(d, "mimeType", u->content_type);
        cJSON_AddStringToObject(d, "uploadedAt", iso);
        return o;
    }
    /* replicate's file object; the sim has no MD5, so etag is the SHA-256's first half. */
    *status = 201;
    sim_upload_sha(u, sha);
    cJSON_AddStringToObject(o, "id", u->id);
    cJSON_AddStringToObject(o, "name", u->name);
    cJSON_AddStringToObject(o, "content_type", u->content_type);
    cJSON_AddNumberToObject(o, "size", (double)u->len);
    char etag[33];
    snprintf(etag, sizeof(etag), "%.32s", sha);
    cJSON_AddStringToObject(o, "etag", etag);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "checksums"), "sha256", sha);
    cJSON_AddObjectToObject(o, "metadata");
    cJSON_AddStringToObject(o, "created_at", iso);
    sim_proto_iso8601(now_ms + 86400000LL, iso);
    cJSON_AddStringToObject(o, "expires_at", iso);
    char get[600];
    snprintf(get, sizeof(get), "%s/v1/files/%s", base, u->id);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "urls"), "get", get);
    return o;
}

cJSON *sim_upload_figure_json(const struct sim_upload *u, const char *base)
{
    char url[600], sha[65];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    sim_upload_file_url(u, base, url, sizeof(url));
    cJSON_AddStringToObject(o, "id", u->id);
    cJSON_AddStringToObject(o, "name", u->name);
    cJSON_AddStringToObject(o, "content_type", u->content_type);
    cJSON_AddNumberToObject(o, "size", (double)u->len);
    cJSON_AddBoolToObject(o, "complete", u->complete);
    if (u->complete) {
        sim_upload_sha(u, sha);
        cJSON_AddStringToObject(o, "sha256", sha);
    } else {
        cJSON_AddNullToObject(o, "sha256");
    }
    cJSON_AddStringToObject(o, "file_url", url);
    return o;
}

void sim_upload_free(struct sim_upload *u)
{
    if (!u)
        return;
    free(u->name);
    free(u->content_type);
    free(u->data);
    free(u);
}
