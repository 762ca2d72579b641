#!/usr/bin/env bats
# MOUNT/events (one line per task state change, each open starts at "now") and what stat(2)
# says of the live files (size = what cat returns, mtime moves with the state). SPEC 3.
# The sim runs in real time so that each phase of a task lasts long enough to be seen.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive"
    BG_PIDS=()
}

teardown() {
    local p
    [ -z "${EVFD:-}" ] || exec {EVFD}<&-
    for p in "${BG_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    genfs_teardown
}

# start_events FILE: cat MOUNT/events into FILE in the background, once it has the file open
start_events() {
    cat "$MNT/events" >"$1" 2>&1 3>&- &
    EV_PID=$!
    BG_PIDS+=("$EV_PID")
    wait_until 10 has_open "$EV_PID" "$MNT/events"
}

has_open() {
    ls -l "/proc/$1/fd" 2>/dev/null | grep -qF -- "$2"
}

# has_lines FILE N: FILE has at least N lines
has_lines() {
    [ "$(wc -l <"$1")" -ge "$2" ]
}

# states_of FILE ID: the state words of ID's lines in FILE, space-separated
states_of() {
    awk -v id="$2" '$3 == id { printf "%s%s", sep, $4; sep = " " } END { print "" }' "$1"
}

# states_of_loop FILE ID: the same for lines "<time> <taskId> <state>"
states_of_loop() {
    awk -v id="$2" '$2 == id { printf "%s%s", sep, $3; sep = " " } END { print "" }' "$1"
}

@test "events: lines '<secs.millis> <model> <taskId> <state>' from waiting to success, in order" {
    start_events "$BATS_TEST_TMPDIR/ev"
    id=$(genfs_submit test-image '{"prompt": "eventful", "sim_duration_ms": 4000}')
    wait_until 30 grep -q " $id success\$" "$BATS_TEST_TMPDIR/ev"
    evlines=$(grep -F " $id " "$BATS_TEST_TMPDIR/ev")
    # Every line of the stream has the format, not only this task's.
    run grep -cvE '^[0-9]{10}\.[0-9]{3} [A-Za-z0-9._-]+ [A-Za-z0-9._~-]+ (waiting|queuing|generating|success|failed)$' "$BATS_TEST_TMPDIR/ev"
    assert_output 0
    run states_of "$BATS_TEST_TMPDIR/ev" "$id"
    assert_output --regexp '^waiting( queuing)? generating success$'
    # Model column, and times that never go back and are close to now.
    run awk -v id="$id" '$3 == id { print $2 }' "$BATS_TEST_TMPDIR/ev"
    refute_output --partial test-audio
    now=$(date +%s)
    run python3 -c '
import sys
ts = [float(l.split()[0]) for l in sys.stdin.read().splitlines()]
now = float(sys.argv[1])
print("ordered" if ts == sorted(ts) else "unordered", all(abs(now - t) < 120 for t in ts))
' "$now" <<<"$evlines"
    assert_output "ordered True"
}

@test "events: a failed task ends with a failed line" {
    start_events "$BATS_TEST_TMPDIR/ev"
    id=$(genfs_submit test-video '{"prompt": "doomed", "sim_duration_ms": 1000, "sim_outcome": "failed"}')
    wait_until 30 grep -q " $id failed\$" "$BATS_TEST_TMPDIR/ev"
    run states_of "$BATS_TEST_TMPDIR/ev" "$id"
    assert_output --regexp '^waiting .*failed$'
    run grep -c " test-video $id " "$BATS_TEST_TMPDIR/ev"
    refute_output 0
}

@test "events: each open starts at now, with no old lines; an older reader sees everything" {
    start_events "$BATS_TEST_TMPDIR/ev1"
    id1=$(genfs_submit test-image '{"prompt": "first", "sim_duration_ms": 500}')
    wait_until 30 grep -q " $id1 success\$" "$BATS_TEST_TMPDIR/ev1"
    start_events "$BATS_TEST_TMPDIR/ev2"
    id2=$(genfs_submit test-image '{"prompt": "second", "sim_duration_ms": 500}')
    wait_until 30 grep -q " $id2 success\$" "$BATS_TEST_TMPDIR/ev2"
    run grep -c -F "$id1" "$BATS_TEST_TMPDIR/ev2"
    assert_output 0
    run states_of "$BATS_TEST_TMPDIR/ev2" "$id2"
    assert_output --regexp '^waiting .*success$'
    wait_until 10 grep -q " $id2 success\$" "$BATS_TEST_TMPDIR/ev1"
    run states_of "$BATS_TEST_TMPDIR/ev1" "$id2"
    assert_output --regexp '^waiting .*success$'
}

@test "events: a reader with nothing new blocks, and SIGTERM ends it" {
    start_events "$BATS_TEST_TMPDIR/ev"
    sleep 1
    ! pid_gone "$EV_PID" || false
    [ ! -s "$BATS_TEST_TMPDIR/ev" ]
    kill -TERM "$EV_PID"
    wait_until 5 pid_gone "$EV_PID"
}

@test "stat: the size of state, result, error, prompt, input.json is what cat returns" {
    id=$(genfs_submit test-image '{"prompt": "measure me", "sim_duration_ms": 1500}')
    f=$MNT/test-image/$id
    for n in state prompt input.json error; do
        [ "$(stat -c %s "$f/$n")" -eq "$(cat "$f/$n" | wc -c)" ]
    done
    run timeout 60 cat "$f/result"
    assert_success
    for n in state result prompt input.json error status.json; do
        size=$(stat -c %s "$f/$n")
        bytes=$(cat "$f/$n" | wc -c)
        [ "$size" -eq "$bytes" ] || { echo "$n: stat says $size, cat gives $bytes" >&2; false; }
    done
    [ "$(stat -c %s "$f/state")" -eq 8 ] # "success\n"
    id2=$(genfs_submit test-image '{"prompt": "fail me", "sim_duration_ms": 300, "sim_outcome": "failed", "sim_fail_code": "500", "sim_fail_msg": "out of paint"}')
    wait_until 30 grep -qx failed "$MNT/test-image/$id2/state"
    [ "$(stat -c %s "$MNT/test-image/$id2/error")" -eq "$(cat "$MNT/test-image/$id2/error" | wc -c)" ]
    run cat "$MNT/test-image/$id2/error"
    assert_output "500: out of paint"
}

@test "stat: the mtime of state moves when the state changes" {
    id=$(genfs_submit test-image '{"prompt": "tick", "sim_duration_ms": 6000}')
    f=$MNT/test-image/$id/state
    run cat "$f"
    assert_output waiting
    m1=$(gfs mtime "$f")
    sleep 0.3
    # Steady while the state is: states only move forward, so the same word
    # read after the mtime means no change came before it (under load the
    # task may well have moved on to queuing meanwhile).
    m1b=$(gfs mtime "$f")
    if [ "$(cat "$f")" = waiting ]; then
        [ "$m1b" -eq "$m1" ]
    fi
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    m2=$(gfs mtime "$f")
    [ "$m2" -gt "$m1" ]
    # ... to about when it ended: within a minute of now.
    now_ns=$(date +%s%N)
    [ $((now_ns - m2)) -lt 60000000000 ]
}

@test "stat: the size of log is what cat returns" {
    id=$(genfs_submit test-image '{"prompt": "say something", "sim_duration_ms": 100}')
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    gfs write "$MNT/test-image/new" 'text:{' || true
    # The log may take a line between stat and cat: compare only while it held still.
    local i before got after
    for i in 1 2 3 4 5; do
        before=$(stat -c %s "$MNT/log")
        got=$(cat "$MNT/log" | wc -c)
        after=$(stat -c %s "$MNT/log")
        [ "$before" = "$after" ] && break
        sleep 0.5
    done
    [ "$before" = "$after" ] || fail "the log never held still: $before, $after"
    [ "$before" -eq "$got" ] || fail "stat says $before bytes, cat read $got"
    [ "$before" -gt 0 ]
}

@test "events: a shell while-read loop gets whole lines" {
    out="$BATS_TEST_TMPDIR/loop.out"
    bash -c 'while read -r t m id st; do echo "$id $st"; [ "$st" = success ] && exit 0; done < "$1"' \
        _ "$MNT/events" >"$out" 2>&1 3>&- &
    loop=$!
    BG_PIDS+=("$loop")
    wait_until 10 has_open "$loop" "$MNT/events"
    id=$(genfs_submit test-image '{"prompt": "read by the shell", "sim_duration_ms": 1000}')
    wait_until 60 grep -q "^$id success$" "$out"
    run cat "$out"
    assert_line "$id waiting"
    assert_line "$id success"
}

@test "events: head -n1 prints the next line and exits 0, with nothing on stderr" {
    head -n1 "$MNT/events" >"$BATS_TEST_TMPDIR/head.out" 2>"$BATS_TEST_TMPDIR/head.err" 3>&- &
    h=$!
    BG_PIDS+=("$h")
    wait_until 10 has_open "$h" "$MNT/events"
    # Two tasks at once: head's read may take more than one line, and puts the rest back.
    id=$(genfs_submit test-image '{"prompt": "first in line", "sim_duration_ms": 1000}')
    genfs_submit test-image '{"prompt": "second", "sim_duration_ms": 1000}' >/dev/null
    wait_until 60 pid_gone "$h"
    rc=0
    wait "$h" || rc=$?
    run cat "$BATS_TEST_TMPDIR/head.err"
    assert_output ""
    [ "$rc" -eq 0 ]
    run cat "$BATS_TEST_TMPDIR/head.out"
    assert_output --regexp "^[0-9]{10}\.[0-9]{3} test-image $id waiting\$"
}

@test "events: two heads on one descriptor read the first line and the second" {
    start_events "$BATS_TEST_TMPDIR/all"
    exec {EVFD}<"$MNT/events"
    genfs_submit test-image '{"prompt": "one", "sim_duration_ms": 2000}' >/dev/null
    genfs_submit test-image '{"prompt": "two", "sim_duration_ms": 2000}' >/dev/null
    wait_until 30 has_lines "$BATS_TEST_TMPDIR/all" 2
    # Both lines are there: the first head reads them both and puts the second back.
    run timeout 30 head -n1 <&"$EVFD"
    assert_success
    assert_output "$(sed -n 1p "$BATS_TEST_TMPDIR/all")"
    run timeout 30 head -n1 <&"$EVFD"
    assert_success
    assert_output "$(sed -n 2p "$BATS_TEST_TMPDIR/all")"
}

@test "events: a while-read loop sees each line of a burst once, in order" {
    out="$BATS_TEST_TMPDIR/loop.out"
    # A slow loop: lines pile up while it sleeps, and each read takes several.
    bash -c 'while read -r t m id st; do echo "$t $id $st"; sleep 0.3; done < "$1"' \
        _ "$MNT/events" >"$out" 2>&1 3>&- &
    loop=$!
    BG_PIDS+=("$loop")
    wait_until 10 has_open "$loop" "$MNT/events"
    ids=()
    for i in 1 2 3 4; do
        ids+=("$(genfs_submit test-image "{\"prompt\": \"burst $i\", \"sim_duration_ms\": 300}")")
    done
    for id in "${ids[@]}"; do
        wait_until 60 grep -q " $id success\$" "$out"
    done
    for id in "${ids[@]}"; do
        run states_of_loop "$out" "$id"
        assert_output --regexp '^waiting( queuing)? generating success$'
    done
    # Every line once: no time twice, and never going back.
    run bash -c "cut -d' ' -f1 '$out' | sort -n -c -u && echo sorted"
    assert_output sorted
}

@test "events: O_NONBLOCK with nothing new is EAGAIN; Ctrl-C ends a blocked head" {
    run gfs read "$MNT/events" nonblock
    assert_output EAGAIN
    $GENFS_SIGDFL head -n1 "$MNT/events" >/dev/null 2>&1 3>&- &
    h=$!
    BG_PIDS+=("$h")
    wait_until 10 has_open "$h" "$MNT/events"
    sleep 0.5
    ! pid_gone "$h" || false
    kill -INT "$h"
    wait_until 5 pid_gone "$h"
}
