#include "mountinfo.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* Three genfs mounts stacked on /home/me/gen (the lower two dead), one with
 * a space in its path, and lines the parser must skip. */
static const char TABLE[] =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "60 27 0:40 / /home/me/gen rw,nosuid,nodev,relatime shared:30 - fuse.genfs genfs "
    "rw,user_id=1000,group_id=1000\n"
    "not a mountinfo line\n"
    "61 60 0:41 / /home/me/gen rw,nosuid,nodev,relatime shared:31 - fuse.genfs genfs rw\n"
    "63 27 0:43 / /home/me/my\\040gen rw,nosuid,nodev - fuse.genfs genfs rw\n"
    "62 61 0:42 / /home/me/gen rw,nosuid,nodev,relatime master:2 propagate_from:1 - fuse.genfs "
    "genfs rw\n"
    "64 27 0:44 / /tmp rw - tmpfs tmp\\134fs rw\n";

static char *table(void)
{
    char *t = malloc(sizeof(TABLE));
    memcpy(t, TABLE, sizeof(TABLE));
    return t;
}

static void test_parse_line(void)
{
    char line[] = "61 60 0:41 /sub /home/me/a\\011b rw,relatime shared:3 master:1 - fuse.genfs "
                  "my\\040src rw,user_id=0";
    struct mountinfo_entry e;
    TAP_EQ_INT(mountinfo_parse_line(line, &e), 0, "a line with two optional fields parses");
    TAP_EQ_INT(e.id, 61, "mount id");
    TAP_EQ_INT(e.parent, 60, "parent id");
    TAP_EQ_INT(e.major, 0, "major");
    TAP_EQ_INT(e.minor, 41, "minor");
    TAP_EQ_STR(e.point, "/home/me/a\tb", "\\011 in the mount point is a tab");
    TAP_EQ_STR(e.fstype, "fuse.genfs", "fstype after the separator");
    TAP_EQ_STR(e.source, "my src", "source decoded");
    TAP_CHECK(mountinfo_is_fuse(&e), "fuse.genfs is FUSE");

    char bad1[] = "61 60 0:41 / /x rw fuse.genfs genfs rw"; /* no separator */
    char bad2[] = "61 60 041 / /x rw - fuse genfs rw";      /* no major:minor */
    char bad3[] = "x 60 0:41 / /x rw - fuse genfs rw";
    char bad4[] = "61 60 0:41 / /x rw -";
    TAP_CHECK(mountinfo_parse_line(bad1, &e) < 0, "no ' - ' separator: refused");
    TAP_CHECK(mountinfo_parse_line(bad2, &e) < 0, "a device without ':': refused");
    TAP_CHECK(mountinfo_parse_line(bad3, &e) < 0, "a non-numeric id: refused");
    TAP_CHECK(mountinfo_parse_line(bad4, &e) < 0, "nothing after the separator: refused");

    char ext[] = "27 1 8:1 / / rw - ext4 /dev/sda1 rw";
    TAP_EQ_INT(mountinfo_parse_line(ext, &e), 0, "a line without optional fields parses");
    TAP_CHECK(!mountinfo_is_fuse(&e), "ext4 is not FUSE");
    char blk[] = "27 1 8:1 / /m rw - fuseblk /dev/sdb1 rw";
    mountinfo_parse_line(blk, &e);
    TAP_CHECK(mountinfo_is_fuse(&e), "fuseblk is FUSE");
    char fusex[] = "27 1 8:1 / /m rw - fusectl fusectl rw";
    mountinfo_parse_line(fusex, &e);
    TAP_CHECK(!mountinfo_is_fuse(&e), "fusectl is not a FUSE mount");
}

static void test_stack(void)
{
    char *t = table();
    struct mountinfo_entry v[8];
    size_t n = mountinfo_at(t, "/home/me/gen", v, 8);
    TAP_EQ_INT(n, 3, "three mounts at /home/me/gen");
    const struct mountinfo_entry *top = mountinfo_top(v, n);
    TAP_CHECK(top && top->id == 62, "the top is the one mounted on the others (id 62), "
                                    "though not last in the table");
    TAP_EQ_INT(mountinfo_top(v, 2)->id, 61, "of the lower two, 61 is on top");
    TAP_CHECK(mountinfo_top(v, 0) == NULL, "no mounts, no top");
    free(t);

    t = table();
    TAP_EQ_INT(mountinfo_at(t, "/home/me/gen", v, 1), 3, "the count is whole when max is small");
    TAP_EQ_INT(v[0].id, 60, "and the first is stored");
    free(t);

    t = table();
    TAP_EQ_INT(mountinfo_at(t, "/home/me/my gen", v, 8), 1, "a path with a space is found");
    free(t);
    t = table();
    TAP_EQ_INT(mountinfo_at(t, "/home/me", v, 8), 0, "a parent of a mount point is not one");
    free(t);
}

static void test_has_dev(void)
{
    char *t = table();
    TAP_CHECK(mountinfo_has_dev(t, 0, 42), "0:42 is mounted");
    free(t);
    t = table();
    TAP_CHECK(!mountinfo_has_dev(t, 0, 45), "0:45 is not");
    free(t);
    t = table();
    TAP_CHECK(!mountinfo_has_dev(t, 4, 1), "4:1 is not 0:41");
    free(t);
    char empty[] = "";
    TAP_CHECK(!mountinfo_has_dev(empty, 0, 21), "an empty table has nothing");
}

int main(void)
{
    test_parse_line();
    test_stack();
    test_has_dev();
    return tap_done();
}
