/* genfs-sim SHA-256 against the FIPS 180-2 / NIST vectors, whole and in odd pieces. */
#include "sim_sha256.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static void check(const char *msg, size_t len, size_t step, const char *want, const char *name)
{
    struct sim_sha256 s;
    char hex[65];
    sim_sha256_init(&s);
    for (size_t i = 0; i < len; i += step)
        sim_sha256_update(&s, msg + i, len - i < step ? len - i : step);
    sim_sha256_final_hex(&s, hex);
    TAP_EQ_STR(hex, want, name);
}

int main(void)
{
    const char *abc = "abc";
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    const char *four =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
        "klmnopqrlmnopqrsmnopqrstnopqrstu";
    check("", 0, 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty");
    check(abc, 3, 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "abc");
    check(two, strlen(two), 64, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
          "448-bit message");
    check(two, strlen(two), 5, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
          "448-bit message in 5-byte pieces");
    check(four, strlen(four), 7, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
          "896-bit message");
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    check(million, 1000000, 4096,
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "a million 'a'");
    check(million, 64, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
          "exactly one block");
    check(million, 55, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
          "55 bytes (padding fits)");
    check(million, 56, 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
          "56 bytes (padding spills)");
    free(million);
    return tap_done();
}
