/* atfile: "@PATH" values of an input found in order, escapes, and the rewrite
 * with the URLs. */
#include "atfile.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static void test_find(void)
{
    struct atfile_list l;
    const char *in = "{\"prompt\":\"a cat\",\"image_url\":\"@/tmp/a.png\",\"refs\":[\"@b.jpg\","
                     "{\"mask\":\"@/tmp/a.png\"},\"@@handle\",\"@\",\"x@y\"],\"@key\":1}";
    TAP_EQ_INT(atfile_find(in, &l), 0, "an input with files");
    TAP_EQ_INT(l.n, 2, "  two distinct files (one named twice)");
    TAP_EQ_STR(l.n > 0 ? l.paths[0] : NULL, "/tmp/a.png", "  the first, in document order");
    TAP_EQ_STR(l.n > 1 ? l.paths[1] : NULL, "b.jpg", "  a relative path as written");
    TAP_EQ_INT(l.n_escaped, 1, "  one @@ escape");
    const char *urls[] = {"https://f.test/a.png", "data:image/jpeg;base64,AAAA"};
    char *out = NULL;
    TAP_EQ_INT(atfile_rewrite(in, &l, urls, &out), 0, "rewrite");
    TAP_EQ_STR(out,
               "{\"prompt\":\"a cat\",\"image_url\":\"https://f.test/a.png\",\"refs\":["
               "\"data:image/jpeg;base64,AAAA\",{\"mask\":\"https://f.test/a.png\"},\"@handle\","
               "\"@\",\"x@y\"],\"@key\":1}",
               "  every @PATH is its URL, @@ is @, keys and other strings unchanged");
    free(out);
    struct atfile_list short_list = {l.paths, 1, 0};
    out = NULL;
    TAP_EQ_INT(atfile_rewrite(in, &short_list, urls, &out), -EINVAL,
               "a path without its URL is refused");
    TAP_CHECK(out == NULL, "  nothing written");
    atfile_list_clear(&l);

    TAP_EQ_INT(atfile_find("{\"prompt\":\"no files\",\"n\":[1,2]}", &l), 0, "no files");
    TAP_CHECK(l.n == 0 && l.n_escaped == 0, "  none found");
    atfile_list_clear(&l);
    TAP_EQ_INT(atfile_find("[\"@a\"]", &l), -EINVAL, "an array is not an input object");
    TAP_EQ_INT(atfile_find("{\"a\":", &l), -EINVAL, "broken JSON");
    TAP_EQ_INT(atfile_find(NULL, &l), -EINVAL, "no input");
}

static void test_limits(void)
{
    char in[4096];
    size_t n = (size_t)snprintf(in, sizeof(in), "{\"f\":[");
    for (int i = 0; i <= ATFILE_MAX; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "%s\"@f%d\"", i ? "," : "", i);
    snprintf(in + n, sizeof(in) - n, "]}");
    struct atfile_list l;
    TAP_EQ_INT(atfile_find(in, &l), -E2BIG, "more than ATFILE_MAX files: E2BIG");
    TAP_CHECK(l.n == 0 && l.paths == NULL, "  nothing kept");
    /* The same file many times is one file. */
    n = (size_t)snprintf(in, sizeof(in), "{\"f\":[");
    for (int i = 0; i <= ATFILE_MAX; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "%s\"@same\"", i ? "," : "");
    snprintf(in + n, sizeof(in) - n, "]}");
    TAP_EQ_INT(atfile_find(in, &l), 0, "one file named over ATFILE_MAX times");
    TAP_EQ_INT(l.n, 1, "  is one file");
    atfile_list_clear(&l);
}

static void test_content_type(void)
{
    TAP_CHECK(strcmp(atfile_content_type("photo.jpg"), "image/jpeg") == 0, "jpg");
    TAP_CHECK(strcmp(atfile_content_type("/a.b/Photo.JPEG"), "image/jpeg") == 0, "JPEG, a dir");
    TAP_CHECK(strcmp(atfile_content_type("x.png"), "image/png") == 0, "png");
    TAP_CHECK(strcmp(atfile_content_type("song.mp3"), "audio/mpeg") == 0, "mp3");
    TAP_CHECK(atfile_content_type("/a.png/noext") == NULL, "a dot in a directory is no extension");
    TAP_CHECK(atfile_content_type("x.unknown") == NULL, "unknown extension");
    TAP_CHECK(atfile_content_type("png") == NULL, "no dot");
}

int main(void)
{
    test_content_type();
    test_find();
    test_limits();
    return tap_done();
}
