#include "media.h"
#include "tap.h"

int main(void)
{
    char name[64];
    TAP_EQ_STR(media_ext_for_type("image/png"), "png", "png type");
    TAP_EQ_STR(media_ext_for_type("IMAGE/JPEG; charset=binary"), "jpg", "jpeg type, params, case");
    TAP_EQ_STR(media_ext_for_type("audio/x-wav"), "wav", "x-wav");
    TAP_CHECK(media_ext_for_type("application/octet-stream") == NULL, "octet-stream says nothing");
    TAP_CHECK(media_ext_for_type(NULL) == NULL, "no type");
    TAP_EQ_STR(media_ext_for_url("https://cdn.example/a/b/out.PNG?sig=1.2#x"), "png",
               "URL extension ignores query and fragment");
    TAP_EQ_STR(media_ext_for_url("https://cdn.example/x.jpeg"), "jpg", "jpeg URL gives jpg");
    TAP_CHECK(media_ext_for_url("https://cdn.example.com/file") == NULL, "no extension");
    TAP_CHECK(media_ext_for_url("https://cdn.example.com/dir.png/file") == NULL,
              "a dot in a directory is not an extension");
    TAP_CHECK(media_ext_for_url("https://cdn.example.com/x.exe") == NULL, "unknown extension");
    media_file_name(0, NULL, "http://h/m/t/0.png", NULL, name, sizeof(name));
    TAP_EQ_STR(name, "0.png", "name from URL");
    media_file_name(3, NULL, "http://h/m/t/0.png", "audio/wav", name, sizeof(name));
    TAP_EQ_STR(name, "3.wav", "Content-Type wins over the URL");
    media_file_name(1, NULL, "http://h/blob", "application/octet-stream", name, sizeof(name));
    TAP_EQ_STR(name, "1.bin", "nothing known: bin");
    return tap_done();
}
