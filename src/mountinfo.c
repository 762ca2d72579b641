#include "mountinfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The next space-separated field of *p, NUL-terminated; NULL at the end. */
static char *next_field(char **p)
{
    char *s = *p;
    while (*s == ' ')
        s++;
    if (!*s)
        return NULL;
    char *e = strchr(s, ' ');
    if (e) {
        *e = '\0';
        *p = e + 1;
    } else {
        *p = s + strlen(s);
    }
    return s;
}

/* The kernel writes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static bool parse_uint(const char *s, char end, unsigned *out, const char **rest)
{
    char *e;
    errno = 0;
    unsigned long v = strtoul(s, &e, 10);
    if (e == s || *e != end || errno || v > 0xffffffffUL)
        return false;
    *out = (unsigned)v;
    if (rest)
        *rest = e + 1;
    return true;
}

int mountinfo_parse_line(char *line, struct mountinfo_entry *e)
{
    char *p = line;
    char *id = next_field(&p), *parent = next_field(&p), *dev = next_field(&p);
    char *root = next_field(&p), *point = next_field(&p), *opts = next_field(&p);
    const char *minor;
    if (!opts || !parse_uint(id, '\0', &e->id, NULL) ||
        !parse_uint(parent, '\0', &e->parent, NULL) || !parse_uint(dev, ':', &e->major, &minor) ||
        !parse_uint(minor, '\0', &e->minor, NULL) || root[0] != '/' || point[0] != '/')
        return -EINVAL;
    /* Optional fields (shared:N, master:N ...) up to the separator. */
    char *f;
    while ((f = next_field(&p)) && strcmp(f, "-") != 0)
        ;
    char *fstype = f ? next_field(&p) : NULL;
    char *source = fstype ? next_field(&p) : NULL;
    if (!source)
        return -EINVAL;
    unescape(point);
    unescape(source);
    e->point = point;
    e->fstype = fstype;
    e->source = source;
    return 0;
}

/* Calls fn on each line that parses; stops when it returns true. */
static bool each_line(char *text, bool (*fn)(const struct mountinfo_entry *, void *), void *arg)
{
    char *line = text;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        struct mountinfo_entry e;
        if (mountinfo_parse_line(line, &e) == 0 && fn(&e, arg))
            return true;
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

struct at_state {
    const char *point;
    struct mountinfo_entry *out;
    size_t max, n;
};

static bool collect_at(const struct mountinfo_entry *e, void *arg)
{
    struct at_state *st = arg;
    if (strcmp(e->point, st->point) == 0) {
        if (st->n < st->max)
            st->out[st->n] = *e;
        st->n++;
    }
    return false;
}

size_t mountinfo_at(char *text, const char *point, struct mountinfo_entry *out, size_t max)
{
    struct at_state st = {.point = point, .out = out, .max = max};
    each_line(text, collect_at, &st);
    return st.n;
}

const struct mountinfo_entry *mountinfo_top(const struct mountinfo_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool covered = false;
        for (size_t j = 0; j < n && !covered; j++)
            covered = j != i && v[j].parent == v[i].id;
        if (!covered)
            return &v[i];
    }
    return NULL;
}

struct dev_state {
    unsigned major, minor;
};

static bool is_dev(const struct mountinfo_entry *e, void *arg)
{
    const struct dev_state *d = arg;
    return e->major == d->major && e->minor == d->minor;
}

bool mountinfo_has_dev(char *text, unsigned major, unsigned minor)
{
    struct dev_state d = {major, minor};
    return each_line(text, is_dev, &d);
}

bool mountinfo_is_fuse(const struct mountinfo_entry *e)
{
    return strcmp(e->fstype, "fuse") == 0 || strcmp(e->fstype, "fuseblk") == 0 ||
           strncmp(e->fstype, "fuse.", 5) == 0;
}

/* The whole of /proc/self/mountinfo, read again from the start. */
char *mountinfo_read(int fd)
{
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    if (!buf || lseek(fd, 0, SEEK_SET) < 0) {
        free(buf);
        return NULL;
    }
    for (;;) {
        if (cap - len < 4096) {
            char *b = realloc(buf, cap * 2);
            if (!b)
                break;
            buf = b;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + len, cap - len - 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            break;
        if (k == 0) {
            buf[len] = '\0';
            return buf;
        }
        len += (size_t)k;
    }
    free(buf);
    return NULL;
}
