#include "netmsg.h"
#include "tap.h"

#include <string.h>

static void check_url(const char *url, const char *want, const char *label)
{
    char out[256];
    netmsg_show_url(url, out, sizeof(out));
    TAP_EQ_STR(out, want, label);
}

static void test_show(void)
{
    check_url("https://api.apixo.ai/api/v1/generateTask/x",
              "https://api.apixo.ai/api/v1/generateTask/x", "a plain URL is shown whole");
    check_url("https://cdn.example/o/1.png?X-Amz-Signature=abc&token=k",
              "https://cdn.example/o/1.png", "the query is left out");
    check_url("https://cdn.example/o/1.png#frag", "https://cdn.example/o/1.png",
              "the fragment is left out");
    check_url("https://user:secret@host:8443/p?q=1", "https://host:8443/p",
              "user:password@ is left out");
    check_url("http://127.0.0.1:9/?key=abc", "http://127.0.0.1:9/", "a query right after the host");
    check_url("http://h?k=v", "http://h", "a query with no path");
    check_url("no-scheme/path?x", "no-scheme/path", "no scheme: the query still goes");
    char origin[64];
    netmsg_show_origin("https://u:p@api.example:8080/v1/task/42?sig=s", origin, sizeof(origin));
    TAP_EQ_STR(origin, "https://api.example:8080", "the origin is scheme, host and port");
    char small[12];
    netmsg_show_url("https://example.com/long/path", small, sizeof(small));
    TAP_EQ_STR(small, "https://exa", "cut to fit the buffer");
}

static void test_format(void)
{
    char msg[512];
    netmsg_format(msg, sizeof(msg), "https://api.apixo.ai/api/v1/generateTask/x?k=SECRET", false,
                  true, "Couldn't connect to server");
    TAP_EQ_STR(msg,
               "could not reach https://api.apixo.ai/api/v1/generateTask/x: Couldn't connect to "
               "server",
               "unreachable: says so, with the URL and the reason");
    TAP_CHECK(!strstr(msg, "SECRET"), "the query's secret is not in the message");
    netmsg_format(msg, sizeof(msg), "https://api.example/v1/t/1", true, false,
                  "Timeout was reached");
    TAP_EQ_STR(msg, "network error talking to https://api.example: Timeout was reached",
               "other errors, by origin only");
    netmsg_format(msg, sizeof(msg), NULL, false, false, "Failure");
    TAP_EQ_STR(msg, "network error talking to the provider: Failure", "no URL: the provider");
}

int main(void)
{
    test_show();
    test_format();
    return tap_done();
}
