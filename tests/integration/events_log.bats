#!/usr/bin/env bats
# Issue 22: MOUNT/events.log, the state changes as a log file (tail -f, tail -n 20 -f,
# less +F, head, grep, wc), kept in state_dir across restarts and crashes, rotated to
# events.log.1 at 8 MiB, announced to inotify as it grows; a script resumes from the time of
# the last line it saw. The sim runs in real time so that each phase of a task can be seen.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup
    mkdir -p -m 700 "$STATE_DIR"
    BG_PIDS=()
}

teardown() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    genfs_teardown
}

mount_fast() {
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive" "$@"
}

# seed_log N [BYTES]: N lines of history in STATE_DIR/events.log before the mount (or, with
# BYTES, as many as keep it under BYTES), a millisecond apart, a day ago; the last line is
# in $SEED_LAST.
seed_log() {
    SEED_LAST=$(python3 - "$STATE_DIR/events.log" "$1" "${2:-0}" <<'PY'
import sys, time
path, n, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = int((time.time() - 86400) * 1000)
out, size, last = [], 0, ""
for i in range(n if not cap else 1 << 30):
    ms = t0 + i
    line = "%d.%03d seed-model task_seed%08d success\n" % (ms // 1000, ms % 1000, i)
    if cap and size + len(line) > cap:
        break
    out.append(line)
    size += len(line)
    last = line
with open(path, "w") as f:
    f.write("".join(out))
print(last, end="")
PY
    )
}

# seed_line N: the N-th line seed_log wrote (1-based)
seed_line() {
    sed -n "${1}p" "$STATE_DIR/events.log"
}

# follow OUT CMD...: run CMD in the background, stdout to OUT, stderr to OUT.err
follow() {
    local out=$1
    shift
    "$@" >"$out" 2>"$out.err" 3>&- &
    BG_PIDS+=($!)
}

# has_lines FILE N: FILE has at least N lines
has_lines() {
    [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]
}

# more_modify FILE N: FILE has more than N MODIFY lines
more_modify() {
    [ "$(grep -c "^MODIFY" "$1")" -gt "$2" ]
}

# the state words of task $2 in log file $1
states_of() {
    awk -v id="$2" '$3 == id { printf "%s%s", sep, $4; sep = " " } END { print "" }' "$1"
}

@test "events.log: tail -f shows the last 10 lines, then each change as it comes" {
    seed_log 15
    mount_fast
    follow "$BATS_TEST_TMPDIR/tail" tail -f "$MNT/events.log"
    wait_until 30 has_lines "$BATS_TEST_TMPDIR/tail" 10
    run head -n1 "$BATS_TEST_TMPDIR/tail"
    assert_output "$(seed_line 6)"
    id=$(genfs_submit test-image '{"prompt": "followed by tail", "sim_duration_ms": 1000}')
    wait_until 60 grep -q " $id success\$" "$BATS_TEST_TMPDIR/tail"
    run states_of "$BATS_TEST_TMPDIR/tail" "$id"
    assert_output --regexp '^waiting( queuing)? generating success$'
    run cat "$BATS_TEST_TMPDIR/tail.err"
    assert_output ""
}

@test "events.log: tail -n 20 -f shows the last 20 lines, then what comes" {
    seed_log 30
    mount_fast
    follow "$BATS_TEST_TMPDIR/tail" tail -n 20 -f "$MNT/events.log"
    wait_until 30 has_lines "$BATS_TEST_TMPDIR/tail" 20
    run head -n1 "$BATS_TEST_TMPDIR/tail"
    assert_output "$(seed_line 11)"
    id=$(genfs_submit test-image '{"prompt": "twenty and more", "sim_duration_ms": 500}')
    wait_until 60 grep -q " $id success\$" "$BATS_TEST_TMPDIR/tail"
    run sed -n 20p "$BATS_TEST_TMPDIR/tail"
    assert_output "$SEED_LAST"
    run sed -n 21p "$BATS_TEST_TMPDIR/tail"
    assert_output --regexp " test-image $id waiting\$"
}

@test "events.log: head -n1, grep and wc -l as on a log file; its size and mtime move as it grows" {
    seed_log 5
    mount_fast
    run head -n1 "$MNT/events.log"
    assert_success
    assert_output "$(seed_line 1)" # and nothing on stderr
    run wc -l <"$MNT/events.log"
    assert_output 5
    size1=$(stat -c %s "$MNT/events.log")
    mtime1=$(stat -c %Y "$MNT/events.log")
    [ "$size1" -eq "$(stat -c %s "$STATE_DIR/events.log")" ]
    sleep 1.1 # a whole second: stat -c %Y has no fractions
    id=$(genfs_submit test-image '{"prompt": "counted", "sim_duration_ms": 300}')
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    wait_until 10 grep -q " $id success\$" "$MNT/events.log"
    run grep -c " test-image $id " "$MNT/events.log"
    assert_output --regexp '^[34]$'
    size2=$(stat -c %s "$MNT/events.log")
    [ "$size2" -gt "$size1" ]
    [ "$size2" -eq "$(cat "$MNT/events.log" | wc -c)" ]
    [ "$(stat -c %Y "$MNT/events.log")" -gt "$mtime1" ]
    run head -n1 "$MNT/events.log.1"
    assert_success
    assert_output "" # no rotation yet: empty
}

@test "events.log: less +F follows it in a terminal; Ctrl-C then q leaves" {
    seed_log 3
    mount_fast
    run timeout 120 python3 - "$MNT" "$SEED_LAST" <<'PY'
import fcntl, os, pty, select, struct, sys, termios, time

mnt, seed = sys.argv[1], sys.argv[2].strip().encode()
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    os.environ.update(TERM="xterm", LESSHISTFILE="-")
    os.environ.pop("LESS", None)
    os.execvp("less", ["less", "+F", mnt + "/events.log"])

seen = b""

def pump(secs):
    global seen
    r, _, _ = select.select([fd], [], [], secs)
    if r:
        try:
            seen += os.read(fd, 65536)
        except OSError:
            pass

def until(what, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if what():
            return True
        pump(0.1)
    return False

def exited():
    return os.waitpid(pid, os.WNOHANG)[0] == pid

def fail(why):
    print(why, "; the screen:", seen[-2000:].decode(errors="replace"))
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    sys.exit(1)

if not until(lambda: seed in seen and b"Waiting for data" in seen, 30):
    fail("less did not show the log and follow it")
nfd = os.open(mnt + "/test-image/new", os.O_RDWR)
os.write(nfd, b'{"prompt": "followed by less", "sim_duration_ms": 500}\n')
tid = os.read(nfd, 256).decode().strip()
os.close(nfd)
if not until(lambda: (tid + " success").encode() in seen, 60):
    fail("no success line for " + tid)
os.write(fd, b"\x03")
pump(1)
os.write(fd, b"q")
status = None
end = time.monotonic() + 10
while time.monotonic() < end and status is None:
    p, st = os.waitpid(pid, os.WNOHANG)
    if p == pid:
        status = st
    else:
        pump(0.1)
if status is None:
    fail("less did not quit on Ctrl-C then q")
print("followed", tid, "exit", os.waitstatus_to_exitcode(status))
PY
    assert_success
    assert_output --regexp '^followed task_[a-z0-9]+ exit 0$'
}

@test "events.log: kept across a crash; tasks that end while genfs is down get their last line; a script resumes from its last time" {
    mount_fast
    ids=()
    for i in 1 2 3; do
        ids+=("$(genfs_submit test-image "{\"prompt\": \"through a crash $i\", \"sim_duration_ms\": 4000}")")
    done
    for id in "${ids[@]}"; do
        wait_until 30 grep -q " $id waiting\$" "$MNT/events.log"
    done
    # A follower saw everything so far, then genfs dies and the tasks end meanwhile.
    cp "$MNT/events.log" "$BATS_TEST_TMPDIR/seen"
    last=$(tail -n1 "$BATS_TEST_TMPDIR/seen" | cut -d' ' -f1)
    genfs_kill9
    for id in "${ids[@]}"; do
        sim_wait_done test-image "$id" 60 >/dev/null
    done
    mount_fast
    for id in "${ids[@]}"; do
        wait_until 60 grep -q " $id success\$" "$MNT/events.log"
    done
    # The history before the crash is there, once.
    for id in "${ids[@]}"; do
        run grep -c " $id waiting\$" "$MNT/events.log"
        assert_output 1
    done
    run bash -c "head -n $(wc -l <"$BATS_TEST_TMPDIR/seen") '$MNT/events.log' | cmp - '$BATS_TEST_TMPDIR/seen'"
    assert_success
    # Times only increase, through the restart: the one-liner of the README resumes.
    run bash -c "cut -d' ' -f1 '$MNT/events.log' | sort -n -c -u && echo increasing"
    assert_output increasing
    cat "$MNT/events.log.1" "$MNT/events.log" | awk -v t="$last" '$1 > t' >"$BATS_TEST_TMPDIR/rest"
    for id in "${ids[@]}"; do
        grep -q " $id success\$" "$BATS_TEST_TMPDIR/rest"
    done
    run bash -c "cat '$BATS_TEST_TMPDIR/seen' '$BATS_TEST_TMPDIR/rest' | cmp - '$MNT/events.log'"
    assert_success
}

@test "events.log: at 8 MiB it becomes events.log.1 and starts again; tail -f goes on" {
    seed_log 0 $((8 * 1024 * 1024 - 20))
    seeded=$(stat -c %s "$STATE_DIR/events.log")
    mount_fast
    follow "$BATS_TEST_TMPDIR/tail" tail -f "$MNT/events.log"
    wait_until 30 has_lines "$BATS_TEST_TMPDIR/tail" 10
    id=$(genfs_submit test-image '{"prompt": "rotate", "sim_duration_ms": 500}')
    wait_until 60 grep -q " $id success\$" "$MNT/events.log"
    [ "$(stat -c %s "$MNT/events.log.1")" -eq "$seeded" ]
    [ "$(stat -c %s "$STATE_DIR/events.log.1")" -eq "$seeded" ]
    run tail -n1 "$MNT/events.log.1"
    assert_output "$SEED_LAST"
    run states_of "$MNT/events.log" "$id"
    assert_output --regexp '^waiting( queuing)? generating success$'
    run grep -vc " $id " "$MNT/events.log"
    assert_output 0
    # tail -f saw the file start again and went on with the new lines.
    wait_until 60 grep -q " $id success\$" "$BATS_TEST_TMPDIR/tail"
    run cat "$BATS_TEST_TMPDIR/tail.err"
    assert_output --partial "file truncated"
    run states_of "$BATS_TEST_TMPDIR/tail" "$id"
    assert_output --regexp '^waiting( queuing)? generating success$'
    # Resuming from the last seeded line gives exactly the new ones.
    t=$(cut -d' ' -f1 <<<"$SEED_LAST")
    run bash -c "cat '$MNT/events.log.1' '$MNT/events.log' | awk -v t='$t' '\$1 > t' | cmp - '$MNT/events.log'"
    assert_success
}

@test "events.log: inotifywait sees MODIFY as it grows" {
    mount_fast
    follow "$BATS_TEST_TMPDIR/ev" inotifywait -m -e modify --format '%e %f' "$MNT/events.log"
    wait_until 10 grep -q "Watches established" "$BATS_TEST_TMPDIR/ev.err"
    id=$(genfs_submit test-image '{"prompt": "watched", "sim_duration_ms": 500}')
    wait_until 30 grep -q "^MODIFY" "$BATS_TEST_TMPDIR/ev"
    # Its last change is announced too: a watcher woken reads the success line.
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    n=$(grep -c "^MODIFY" "$BATS_TEST_TMPDIR/ev")
    wait_until 10 grep -q " $id success\$" "$MNT/events.log"
    id2=$(genfs_submit test-image '{"prompt": "watched too", "sim_duration_ms": 500}')
    wait_until 30 more_modify "$BATS_TEST_TMPDIR/ev" "$n"
    grep -q " $id2 waiting\$" "$MNT/events.log"
}

@test "events and events.log carry the same lines; events starts at now, events.log keeps the history" {
    seed_log 4
    mount_fast
    follow "$BATS_TEST_TMPDIR/stream" cat "$MNT/events"
    wait_until 10 bash -c "ls -l /proc/${BG_PIDS[0]}/fd | grep -qF '$MNT/events'"
    id=$(genfs_submit test-image '{"prompt": "both", "sim_duration_ms": 500}')
    wait_until 60 grep -q " $id success\$" "$BATS_TEST_TMPDIR/stream"
    run grep -c seed-model "$BATS_TEST_TMPDIR/stream"
    assert_output 0
    run bash -c "grep -F ' $id ' '$MNT/events.log' | cmp - '$BATS_TEST_TMPDIR/stream'"
    assert_success
    run grep -c seed-model "$MNT/events.log"
    assert_output 4
}
