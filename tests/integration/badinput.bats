#!/usr/bin/env bats
# Issue 10, bad input from users: binary and NUL bytes, invalid UTF-8, oversized and concurrent
# writes on one descriptor, odd names for mkdir/rmdir, and every way of changing what is
# read-only. Each case: a clear errno, nothing sent to the provider, nothing changed.
# Already covered elsewhere (not repeated here): empty/whitespace and bad JSON (fs_write.bats),
# 1 MiB + 1 and 3 MiB buffered writes (fs_write.bats), bad model names .hidden 'a b' 'semi;colon'
# (fs_models.bats), echo > state/result, rm/mv/ln/touch (fs_models.bats), notifier
# writes (notify.bats). See docs/security.md.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive"
}

teardown() {
    genfs_teardown
}

sim_submits() {
    sim_figures | sim_json 'd["requests"]["submit"]'
}

sim_status_requests() {
    sim_figures | sim_json 'd["requests"]["status"]'
}

# A listing of the whole mount (type and path of everything but stats/log/events) to compare.
tree_of() {
    (cd "$MNT" && find . -path ./stats -prune -o -path ./log -prune -o -path ./events -prune \
        -o -printf '%y %p %s\n' | sort)
}

# probe.py: one python process runs a list of operations and prints "NAME ERRNO" per line.
probe() {
    python3 - "$MNT" "$@" <<'PY'
import errno, os, sys, threading
mnt = sys.argv[1].encode()
ops = sys.argv[2:]

def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))

def p(rel):
    return mnt + b"/" + rel.encode("utf-8", "surrogateescape")

def unesc(s):
    # \xNN escapes in arguments stand for raw bytes (names that are not UTF-8)
    return s.encode("latin-1").decode("unicode_escape").encode("latin-1").decode(
        "utf-8", "surrogateescape")

def write_new(rel, data):
    fd = os.open(p(rel), os.O_RDWR)
    try:
        os.write(fd, data)
        return "ok " + os.read(fd, 200).decode().strip()
    finally:
        os.close(fd)

for op in ops:
    kind, _, arg = op.partition(":")
    try:
        if kind == "write":                     # write:MODEL/new:BYTES (python escapes)
            rel, _, data = arg.partition(":")
            data = data.encode("latin-1").decode("unicode_escape").encode("latin-1")
            print(op[:60], write_new(rel, data))
            continue
        if kind == "mkdir":
            os.mkdir(p(unesc(arg)))
        elif kind == "rmdir":
            os.rmdir(p(unesc(arg)))
        elif kind == "otrunc":
            os.close(os.open(p(arg), os.O_WRONLY | os.O_TRUNC))
        elif kind == "ordwr":
            os.close(os.open(p(arg), os.O_RDWR))
        elif kind == "truncate":
            os.truncate(p(arg), 0)
        elif kind == "chmod":
            os.chmod(p(arg), 0o777)
        elif kind == "chown":
            os.chown(p(arg), 65534, 65534)
        elif kind == "utime":
            os.utime(p(arg), (0, 0))
        elif kind == "setxattr":
            os.setxattr(p(arg), b"user.evil", b"1")
        elif kind == "removexattr":
            os.removexattr(p(arg), b"user.evil")
        elif kind == "unlink":
            os.unlink(p(arg))
        elif kind == "rename":
            a, _, b = arg.partition(">")
            os.rename(p(a), p(b))
        elif kind == "renamein":               # a file from outside the mount into it
            a, _, b = arg.partition(">")
            os.rename(a.encode(), p(b))
        elif kind == "link":
            a, _, b = arg.partition(">")
            os.link(p(a), p(b))
        elif kind == "symlink":
            a, _, b = arg.partition(">")
            os.symlink(a.encode(), p(b))
        elif kind == "mkfifo":
            os.mkfifo(p(arg))
        elif kind == "mknod":
            os.mknod(p(arg), 0o600 | 0o100000)
        elif kind == "creat":
            os.close(os.open(p(arg), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        else:
            raise SystemExit("unknown op " + op)
        print(op[:60], "ok")
    except OSError as e:
        print(op[:60], name(e))
PY
}

@test "NUL bytes anywhere in a write (text or JSON): EINVAL, nothing sent, the log says where" {
    before=$(wc -l <"$MNT/log")
    run probe 'write:test-image/new:a\x00b' 'write:test-image/new:\x00' \
        'write:test-image/new:\x00\x00\x00\n' 'write:test-image/new:{"prompt": "a"}\x00' \
        'write:test-image/new:prompt\n\x00'
    assert_success
    [ "$(grep -c ' EINVAL$' <<<"$output")" -eq 5 ] || fail "expected 5 EINVAL: $output"
    assert_equal "$(sim_submits)" 0
    run tail -n +"$((before + 1))" "$MNT/log"
    assert_output --partial "NUL byte"
    refute_output --partial "submitted"
}

@test "invalid UTF-8 (a stray byte, a cut sequence, an overlong form, inside a JSON string): EINVAL, nothing sent" {
    before=$(wc -l <"$MNT/log")
    run probe 'write:test-image/new:\xff\xfe bad' 'write:test-image/new:caf\xc3' \
        'write:test-image/new:\xc0\xaf' 'write:test-image/new:{"prompt": "\xff"}' \
        'write:test-image/new:\xed\xa0\x80 surrogate'
    assert_success
    [ "$(grep -c ' EINVAL$' <<<"$output")" -eq 5 ] || fail "expected 5 EINVAL: $output"
    assert_equal "$(sim_submits)" 0
    run tail -n +"$((before + 1))" "$MNT/log"
    assert_output --partial "UTF-8"
}

@test "control characters, terminal escapes, a BOM and non-ASCII text are prompts, sent exactly" {
    run probe 'write:test-image/new:\x01\x07\x08\x1b[31mred\x1b[0m\tend' \
        'write:test-image/new:\xef\xbb\xbfbom first' 'write:test-image/new:caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\xa6\x8a'
    assert_success
    [ "$(grep -c ' ok task_' <<<"$output")" -eq 3 ] || fail "expected 3 tasks: $output"
    run sim_json '[t["prompt"] for t in d]' < <(sim_tasks)
    assert_output '["\u0001\u0007\b\u001b[31mred\u001b[0m\tend", "\ufeffbom first", "caf\u00e9 \u2713 \ud83e\udd8a"]'
    # input.json holds the control characters as JSON escapes, not raw bytes
    id=$(sim_tasks | sim_json 'd[0]["taskId"]')
    run grep -c $'\x1b' "$MNT/test-image/$id/input.json"
    assert_output 0
}

@test "1 MiB + 1 bytes in one raw write(2): the writer learns EFBIG, at the write or at close; nothing sent" {
    # (fs_write.bats covers a buffered writer, which retries a short count and gets EFBIG.)
    run python3 - "$MNT/test-image/new" <<'PY'
import errno, os, sys
def attempt(rest):
    fd = os.open(sys.argv[1], os.O_WRONLY)
    out = []
    data = b"a" * (1048576 + 1)
    try:
        n = os.write(fd, data)
        out.append("write" if n == len(data) else "short")
        if n < len(data) and rest:
            os.write(fd, data[n:])
            out.append("rest ok")
    except OSError as e:
        out.append(errno.errorcode[e.errno])
    try:
        os.close(fd)
        out.append("close-ok")
    except OSError as e:
        out.append("close-" + errno.errorcode[e.errno])
    print(" ".join(out))
attempt(True)   # a writer that writes the rest after a short count
attempt(False)  # one write(2), then close(2), as `write(fd, buf, n); close(fd)` in C
PY
    assert_success
    echo "$output"
    assert_equal "$(sim_submits)" 0
    # Writing the rest after the short count: EFBIG.
    assert_line --index 0 --regexp '^(EFBIG|short EFBIG) close-(ok|EFBIG)$'
    # One write(2) then close(2): EFBIG must reach the writer at one of them; a short count
    # with a successful close drops the input silently.
    assert_line --index 1 --regexp '^(EFBIG close-(ok|EFBIG)|short close-EFBIG)$'
}

@test "16 threads writing at once on one shared new fd: one task of all 16 writes, each whole, none doubled" {
    # One open..read is one task (SPEC 3), however many write(2)s fill it.
    run python3 - "$MNT/test-image/new" <<'PY'
import errno, os, sys, threading
fd = os.open(sys.argv[1], os.O_RDWR)
res = {}
def w(i):
    data = ("shared fd writer %d " % i + "z" * (i * 3000)).encode()
    try:
        res[i] = os.write(fd, data) == len(data)
    except OSError as e:
        res[i] = errno.errorcode[e.errno]
ts = [threading.Thread(target=w, args=(i,)) for i in range(16)]
[t.start() for t in ts]
[t.join() for t in ts]
print(sorted(res.items()))
print("id", os.read(fd, 200).decode().strip())
os.close(fd)
PY
    assert_success
    assert_line --index 0 "$(python3 -c 'print(sorted((i, True) for i in range(16)))')"
    id=$(sed -n 's/^id //p' <<<"$output")
    [ -d "$MNT/test-image/$id" ]
    # The pieces in the order they came, each whole: writer i's 3000*i z's after its tag.
    run sim_json 'sorted((int(m.group(1)), len(m.group(2))) for m in __import__("re").finditer(r"shared fd writer (\d+) (z*)", d[0]["prompt"])) == [(i, i * 3000) for i in range(16)] and len(d)' < <(sim_tasks)
    assert_output 1
    assert_equal "$(sim_figures | sim_json 'd["duplicate_submissions"]')" 0
    [ "$(find "$MNT/test-image" -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 1 ]
}

@test "mkdir of odd model names: dots, 255/256 bytes, not UTF-8, a newline, non-ASCII: refused, nothing made" {
    before=$(tree_of)
    long255=$(printf 'a%.0s' $(seq 255))
    long256=${long255}b
    run probe mkdir:. mkdir:.. mkdir:... mkdir:.... "mkdir:$long255" "mkdir:$long256" \
        'mkdir:\xff\xfe' 'mkdir:caf\xc3' 'mkdir:a\nb' 'mkdir:\xc3\xa9t\xc3\xa9' 'mkdir:a\x01b' \
        'mkdir:a\\b' 'mkdir:-' 'mkdir:a..b'
    assert_success
    assert_line 'mkdir:. EEXIST'
    assert_line 'mkdir:.. EEXIST'
    assert_line 'mkdir:... EINVAL'
    assert_line 'mkdir:.... EINVAL'
    assert_line --regexp "^mkdir:a{50}.* (EINVAL|ENAMETOOLONG)$"
    [ "$(grep -cE ' (EINVAL|ENAMETOOLONG)$' <<<"$output")" -ge 9 ]
    # Plain names with odd but harmless shapes are models like any other.
    assert_line 'mkdir:- ok'
    assert_line 'mkdir:a..b ok'
    rmdir "$MNT/-" "$MNT/a..b"
    [ "$(tree_of)" = "$before" ]
    assert_equal "$(sim_figures | sim_json 'd["requests"]["total"]')" 0
    # The log names the refusals without raw control characters.
    run grep -c $'\x01' "$MNT/log"
    assert_output 0
}

@test "rmdir of ., .., a file, a missing name, new, latest, files/: the right errno, nothing changes" {
    id=$(genfs_submit test-image '{"prompt": "stay", "sim_duration_ms": 100}')
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    timeout 60 cat "$MNT/test-image/$id/files/0.png" >/dev/null
    before=$(tree_of)
    run probe rmdir:. rmdir:.. rmdir:nonexistent rmdir:README rmdir:stats rmdir:test-image/new \
        rmdir:test-image/latest "rmdir:test-image/$id/files" "rmdir:test-image/$id/state" \
        "rmdir:test-image/$id/files/0.png" rmdir:test-image/nosuchtask
    assert_success
    assert_line 'rmdir:. EINVAL'
    assert_line --regexp '^rmdir:\.\. (ENOTEMPTY|EBUSY|EINVAL)$'
    assert_line 'rmdir:nonexistent ENOENT'
    assert_line 'rmdir:README ENOTDIR'
    assert_line 'rmdir:stats ENOTDIR'
    assert_line 'rmdir:test-image/new ENOTDIR'
    assert_line 'rmdir:test-image/latest ENOTDIR'
    # files/ is a directory: ENOTDIR would be a lie (see docs/security.md)
    assert_line --regexp "^rmdir:test-image/$id/files (EPERM|EACCES|ENOTEMPTY|EBUSY)$"
    assert_line "rmdir:test-image/$id/state ENOTDIR"
    assert_line "rmdir:test-image/$id/files/0.png ENOTDIR"
    assert_line 'rmdir:test-image/nosuchtask ENOENT'
    [ "$(tree_of)" = "$before" ]
}

@test "mkdir MODEL/<odd id> (not UTF-8, 300 chars, a newline, dots, slashes): refused without asking the provider" {
    before=$(tree_of)
    long=tk$(printf '0%.0s' $(seq 298))
    run probe 'mkdir:test-image/\xff' "mkdir:test-image/$long" 'mkdir:test-image/tk\nx' \
        'mkdir:test-image/...' 'mkdir:test-image/.tk' 'mkdir:test-image/tk x' \
        'mkdir:test-image/tk%2F..' mkdir:test-image/new mkdir:test-image/latest
    assert_success
    assert_line 'mkdir:test-image/new EEXIST'
    # no task yet, so no latest: refused as a bad id, or as existing
    assert_line --regexp '^mkdir:test-image/latest (EEXIST|EINVAL)$'
    [ "$(grep -cE ' (EINVAL|ENAMETOOLONG|ENOENT)$' <<<"$output")" -ge 7 ] || fail "$output"
    [ "$(tree_of)" = "$before" ]
    # Only names that could be task ids reach the provider: here tk%2F.. at most.
    [ "$(sim_status_requests)" -le 1 ]
}

@test "read-only files refuse O_TRUNC, truncate, chmod, chown, utimes, xattrs: EACCES/EPERM, contents unchanged" {
    id=$(genfs_submit test-image '{"prompt": "read only", "sim_duration_ms": 100}')
    d=test-image/$id
    timeout 60 cat "$MNT/$d/result" >/dev/null
    timeout 60 cat "$MNT/$d/files/0.png" >/dev/null
    want_state=$(cat "$MNT/$d/state")
    want_result=$(cat "$MNT/$d/result")
    want_png=$(sha256sum <"$MNT/$d/files/0.png")
    ops=()
    for f in README stats log "$d/state" "$d/result" "$d/error" "$d/prompt" "$d/input.json" \
        "$d/status.json" "$d/files/0.png"; do
        ops+=("otrunc:$f" "ordwr:$f" "truncate:$f" "chmod:$f" "chown:$f" "utime:$f" "setxattr:$f")
    done
    # (new itself may be truncated: that is how `echo > new` opens it)
    ops+=(chmod:test-image "chmod:$d" chown:test-image/new chmod:test-image/new utime:test-image)
    run probe "${ops[@]}"
    assert_success
    if grep -vE ' (EACCES|EPERM|EROFS|ENOTSUP|EOPNOTSUPP|ENOSYS)$' <<<"$output"; then
        fail "some change was not refused (above)"
    fi
    # Opening for writing is refused with EACCES, as the 0444 mode says.
    assert_line "otrunc:$d/state EACCES"
    assert_line "ordwr:$d/files/0.png EACCES"
    assert_equal "$(cat "$MNT/$d/state")" "$want_state"
    assert_equal "$(cat "$MNT/$d/result")" "$want_result"
    assert_equal "$(sha256sum <"$MNT/$d/files/0.png")" "$want_png"
    run stat -c '%a %u' "$MNT/$d/state" "$MNT/test-image/new"
    assert_line --index 0 "444 $(id -u)"
    assert_line --index 1 "666 $(id -u)"
}

@test "rename over files, across models, in from outside; link, symlink, mkfifo, mknod, create, unlink in files/: refused, nothing changes" {
    id=$(genfs_submit test-image '{"prompt": "fixed", "sim_duration_ms": 100}')
    d=test-image/$id
    timeout 60 cat "$MNT/$d/result" >/dev/null
    timeout 60 cat "$MNT/$d/files/0.png" >/dev/null
    outside="$BATS_TEST_TMPDIR/outside.txt"
    echo outside >"$outside"
    before=$(tree_of)
    run probe "rename:README>stats" "rename:$d>test-audio/$id" "rename:$d/files/0.png>$d/files/1.png" \
        "rename:$d/state>$d/result" "rename:test-image/latest>test-image/latest2" \
        "rename:test-image/new>test-audio/new" "renamein:$outside>test-image/outside.txt" \
        "link:$d/files/0.png>$d/files/copy.png" "link:test-image/latest>test-image/l2" \
        "symlink:/etc/passwd>$d/files/passwd.png" "symlink:/etc>test-image/etc" \
        "mkfifo:test-image/fifo" "mknod:$d/node" "creat:$d/files/2.png" "creat:$d/extra" \
        "unlink:$d/files/0.png" "unlink:test-image/.provider" "unlink:$d/status.json"
    assert_success
    if grep -vE ' (EPERM|EACCES|EXDEV|EROFS)$' <<<"$output"; then
        fail "some change was not refused (above)"
    fi
    assert_line --regexp '^renamein:.* EXDEV$'
    assert_line "unlink:$d/files/0.png EPERM"
    assert_line --regexp '^symlink:/etc/passwd>.* EPERM$'
    ! grep -q ' ENOENT$' <<<"$output" || fail "ENOENT for a name that exists: $output"
    [ "$(tree_of)" = "$before" ]
    [ -f "$outside" ]
    run readlink "$MNT/test-image/latest"
    assert_output "$id"
}
