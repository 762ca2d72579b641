/* Input files uploaded to genfs-sim (issue 19), as each protocol takes them: replicate's Files
 * API (POST /v1/files, multipart part "content"), fal's storage (POST
 * /storage/upload/initiate, then PUT of the bytes to the upload_url it gives), kie's stream
 * upload (POST /api/file-stream-upload, multipart part "file"). The bytes are kept so a test
 * can fetch them back (GET /_sim/uploads/{id}) and compare. Pure: parsing, ids and answers;
 * the server keeps the records. */
#ifndef SIM_UPLOAD_H
#define SIM_UPLOAD_H

#include "sim_proto.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_UPLOAD_ID_MAX 32
/* Uploads are bigger than API bodies; the sim keeps them in memory. */
#define SIM_UPLOAD_MAX ((size_t)64 << 20)

struct sim_upload {
    char id[SIM_UPLOAD_ID_MAX + 1];
    char *name;         /* a safe file name */
    char *content_type; /* as the client gave it */
    unsigned char *data;
    size_t len;
    int complete; /* the bytes are here (fal: once PUT) */
    long long created_ms;
};

/* One part of a multipart/form-data body; data points into the body. */
struct sim_part {
    const char *data;
    size_t len;
    char filename[256];
    char content_type[128];
};

/* Finds the part called name in a multipart/form-data body whose Content-Type header is ctype.
 * 0, or -1 with a message. */
int sim_upload_part(const char *ctype, const char *body, size_t len, const char *name,
                    struct sim_part *out, char *msg, size_t msglen);

/* Routes the upload endpoints of protocol p and the ones every protocol has (/files/{id}/NAME,
 * the bytes as the provider's CDN serves them; /_upload/{id}, fal's presigned PUT;
 * /_sim/uploads[/{id}]). 1 when the path is one of them (out filled: task_id the upload's id,
 * model the NAME of /files/), else 0. */
int sim_upload_route(enum sim_protocol p, const char *method, const char *path,
                     struct sim_route_info *out);

/* Parses an upload request of protocol p into out (copying the bytes; fal's initiate has none
 * yet). 0, or the HTTP code to refuse with and a message. */
int sim_upload_parse(enum sim_protocol p, const char *ctype, const char *body, size_t len,
                     struct sim_upload *out, char *msg, size_t msglen);

/* The counter-th upload's id: 32 hex. */
void sim_upload_id(uint64_t seed, uint64_t counter, char out[SIM_UPLOAD_ID_MAX + 1]);

/* "{base}/files/{id}/{name}": where the bytes are served, without a key. */
void sim_upload_file_url(const struct sim_upload *u, const char *base, char *out, size_t cap);

/* The answer to the upload request (*status: replicate 201, else 200). */
cJSON *sim_upload_answer(enum sim_protocol p, const struct sim_upload *u, const char *base,
                         long long now_ms, int *status);

/* The /_sim/uploads record: id, name, content_type, size, complete, sha256, file_url. */
cJSON *sim_upload_figure_json(const struct sim_upload *u, const char *base);

void sim_upload_free(struct sim_upload *u);

#endif
