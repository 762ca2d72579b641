#!/usr/bin/env bats
# Issue 20: a task's small files are read through the kernel's page cache (no round trip
# for a repeated read), and still every read after a change sees the new content: the
# change invalidates the cached pages before anyone is woken or told of it.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup
}

teardown() {
    genfs_teardown
}

mount_fast() {
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive" "$@"
}

# Reads the state files given, each open-read-close as cat does, as fast as it can until
# every one says success or failed; prints each distinct (file, content) seen in order, and
# "torn FILE TEXT" for any content that is not a whole state word and a newline, except the
# one cut a read racing the change may make (README: "generati", the new word at the old
# size), which it counts.
read_until_final() {
    timeout 120 python3 - "$@" <<'PY'
import sys
words = {"waiting\n", "queuing\n", "generating\n", "success\n", "failed\n"}
paths, last, done = sys.argv[1:], {}, set()
while len(done) < len(paths):
    for p in paths:
        if p in done:
            continue
        with open(p) as f:
            text = f.read()
        if text == "generati":
            print("raced", p)
            continue
        if text not in words:
            print("torn", p, repr(text))
        if last.get(p) != text:
            last[p] = text
            print("seen", p.split("/")[-2], text.strip())
        if text in ("success\n", "failed\n"):
            done.add(p)
PY
}

@test "state read in a tight loop through the cache: every change seen in order, no word stale after it moved, no other cut" {
    mount_fast
    local ids=() paths=() i
    for i in 1 2 3 4 5 6; do
        ids+=("$(genfs_submit test-image "{\"prompt\": \"cache $i\", \"sim_duration_ms\": $((20000 + i * 3000))}")")
    done
    for i in "${ids[@]}"; do paths+=("$MNT/test-image/$i/state"); done
    run read_until_final "${paths[@]}"
    assert_success
    refute_output --partial "torn"
    for i in "${ids[@]}"; do
        # Each task went waiting -> generating -> success, and the loop saw each word in that
        # order, once: a word seen again after the next one would be a stale cached copy.
        seq=$(printf '%s\n' "$output" | awk -v id="$i" '$1 == "seen" && $2 == id {printf "%s ", $3}')
        [ "$seq" = "waiting generating success " ] || fail "task $i seen as: $seq"
        [ "$(cat "$MNT/test-image/$i/state")" = success ]
    done
}

@test "a state cached while pending says success as soon as a blocked cat result returns" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "warm", "sim_duration_ms": 30000}')
    d=$MNT/test-image/$id
    # Warm the caches of the pending task's files: read each one several times.
    for _ in 1 2 3; do cat "$d/state" "$d/error" "$d/status.json" >/dev/null; done
    [ "$(cat "$d/state")" != success ]
    run timeout 60 cat "$d/result"
    assert_success
    [ -n "$output" ]
    run cat "$d/state"
    assert_output success
    run cat "$d/result"
    [ -n "$output" ]
    # status.json holds the last answer, which said the task succeeded.
    grep -q . "$d/status.json"
    run python3 -c 'import json,sys; print(json.load(open(sys.argv[1])))' "$d/status.json"
    assert_success
}

@test "after inotify's MODIFY of state, cat shows the new word, not the cached one" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "watched", "sim_duration_ms": 30000}')
    d=$MNT/test-image/$id
    wait_until 20 test -s "$d/status.json"
    before=$(cat "$d/state")
    cat "$d/state" >/dev/null
    # One MODIFY per change: the first after now is the move from the word read above.
    run timeout 60 bash -c 'inotifywait -q -e modify --format %e "$1" >/dev/null && cat "$1"' \
        _ "$d/state"
    assert_success
    [ "$output" != "$before" ] || fail "cat after MODIFY still said '$before'"
    [[ "$output" =~ ^(generating|success)$ ]]
}

@test "poll(2) on a state descriptor whose reads come from the cache: no wake until the word moves" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "poll cached", "sim_duration_ms": 40000}')
    d=$MNT/test-image/$id
    wait_until 20 test -s "$d/status.json"
    cat "$d/state" "$d/state" >/dev/null
    run timeout 30 python3 "$GENFS_HELPERS_DIR/py/gfs.py" pollwait "$d/state" 1
    assert_success
    assert_line "before: waiting"
    assert_line "after: waiting"
    assert_line --regexp '^woke: no '
    run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" pollwait "$d/state" 40
    assert_success
    assert_line "before: waiting"
    assert_line "after: generating"
    assert_line --regexp '^woke: yes '
}

@test "one descriptor kept open: pread after a change reads the new word" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "kept open", "sim_duration_ms": 20000}')
    d=$MNT/test-image/$id
    run timeout 90 python3 - "$d/state" "$d/result" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
first = os.pread(fd, 64, 0).decode().strip()
again = os.pread(fd, 64, 0).decode().strip()
with open(sys.argv[2]) as r:
    r.read()  # blocks until the task is done
print("first", first, "again", again, "after", os.pread(fd, 64, 0).decode().strip())
PY
    assert_success
    assert_output --regexp '^first (waiting|generating) again (waiting|generating) after success$'
}
