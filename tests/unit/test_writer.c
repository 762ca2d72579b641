#include "tap.h"
#include "writer.h"

static void test_tgid(void)
{
    TAP_EQ_INT(writer_tgid("Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n"
                           "Ngid:\t0\nPid:\t4250\n"),
               4242, "Tgid of a thread's status");
    TAP_EQ_INT(writer_tgid("Tgid:\t7\nPid:\t7\n"), 7, "Tgid on the first line");
    TAP_EQ_INT(writer_tgid("Name:\tx\nPid:\t9\n"), -1, "no Tgid line");
    TAP_EQ_INT(writer_tgid("Name:\tTgid: 5\nPid:\t9\n"), -1, "Tgid: inside another line");
    TAP_EQ_INT(writer_tgid("Tgid:\tnope\n"), -1, "not a number");
    TAP_EQ_INT(writer_tgid(""), -1, "empty");
    TAP_EQ_INT(writer_tgid(NULL), -1, "NULL");
}

/* A /proc/PID/stat line with the given command name and exit_code (field 52). */
static const char *stat_line(char *buf, size_t len, const char *comm, int exit_code)
{
    int n = snprintf(buf, len, "123 (%s) S 1 123 123 0 -1 4194304", comm);
    for (int field = 10; field < 52; field++)
        n += snprintf(buf + n, len - (size_t)n, " %d", field);
    snprintf(buf + n, len - (size_t)n, " %d\n", exit_code);
    return buf;
}

static void test_kill_signal(void)
{
    char b[1024];
    TAP_EQ_INT(writer_kill_signal(stat_line(b, sizeof(b), "cat", 0)), 0, "alive: 0");
    TAP_EQ_INT(writer_kill_signal(stat_line(b, sizeof(b), "cat", 9)), 9, "killed by SIGKILL");
    TAP_EQ_INT(writer_kill_signal(stat_line(b, sizeof(b), "cat", 2)), 2, "killed by SIGINT");
    TAP_EQ_INT(writer_kill_signal(stat_line(b, sizeof(b), "cat", 6 | 0x80)), 6,
               "killed by SIGABRT, dumping core");
    TAP_EQ_INT(writer_kill_signal(stat_line(b, sizeof(b), "cat", 3 << 8)), 0,
               "exiting normally with status 3: not killed");
    TAP_EQ_INT(writer_kill_signal(stat_line(b, sizeof(b), "a) (b c", 15)), 15,
               "a command name with spaces and parentheses");
    TAP_EQ_INT(writer_kill_signal("123 (cat) S 1 123 123 0\n"), 0, "a short line (old kernel)");
    TAP_EQ_INT(writer_kill_signal("garbage"), 0, "no command name");
    TAP_EQ_INT(writer_kill_signal(NULL), 0, "NULL");
}

static void test_on_close(void)
{
    TAP_EQ_INT(writer_on_close(false, true, false, 0), WRITER_SUBMIT,
               "a close by the opener ends the input");
    TAP_EQ_INT(writer_on_close(false, false, false, 0), WRITER_KEEP,
               "a child's close of its inherited copy does not");
    TAP_EQ_INT(writer_on_close(false, true, true, 0), WRITER_KEEP,
               "read-write: the opener's close before the read does not");
    TAP_EQ_INT(writer_on_close(true, false, false, 0), WRITER_SUBMIT, "the last close always does");
    TAP_EQ_INT(writer_on_close(true, false, true, 0), WRITER_SUBMIT, "  read-write too");
    TAP_EQ_INT(writer_on_close(false, true, false, 2), WRITER_DROP,
               "the opener killed (Ctrl-C): nothing sent");
    TAP_EQ_INT(writer_on_close(false, true, true, 9), WRITER_DROP,
               "  read-write too: it will never read the id");
    TAP_EQ_INT(writer_on_close(false, false, false, 9), WRITER_KEEP,
               "a killed child does not end its opener's input");
}

int main(void)
{
    test_tgid();
    test_kill_signal();
    test_on_close();
    return tap_done();
}
