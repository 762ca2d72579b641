#!/usr/bin/env bats
# Issue 4: nothing the provider accepted is ever lost: crashes, remounts,
# adoption, forgetting, and one state_dir per mount.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    # Quick polls so the test is about durability, not waiting.
    cat >"$CONFIG" <<'JSON'
{"models": {"test-image": {"initial_ms": 300, "interval_ms": 400, "max_ms": 120000}}}
JSON
}

teardown() {
    genfs_teardown
}

# Every task dir of MODEL with its state, "id state" per line, sorted.
mount_states() {
    local d
    for d in "$MNT/$1"/*/; do
        [ -f "$d/state" ] || continue
        printf '%s %s\n' "$(basename "$d")" "$(cat "$d/state")"
    done | sort
}

all_final() {
    local n
    n=$(mount_states test-image | grep -cvE ' (success|failed)$' || true)
    [ "$n" -eq 0 ]
}

@test "kill -9 with 100 tasks in flight: after remounts every accepted task ends right, none doubled" {
    genfs_mount -o config="$CONFIG"
    ids="$BATS_TEST_TMPDIR/ids"
    : >"$ids"
    writers=()
    # 100 writers; each records the id only when its write returned it.
    for i in $(seq 1 100); do
        (
            dur=$(( (i * 7919) % 6000 + 500 ))
            outcome=success
            [ $((i % 10)) -eq 0 ] && outcome=failed
            id=$(genfs_submit test-image "{\"prompt\": \"crash test $i\", \"sim_duration_ms\": $dur, \"sim_outcome\": \"$outcome\"}" 2>/dev/null) &&
                [ -n "$id" ] && echo "$id" >>"$ids"
        ) &
        writers+=($!)
        # Kill the daemon at a pseudo-random point while writes are still going on.
        if [ "$i" -eq 60 ]; then
            sleep 0.$((RANDOM % 5 + 1))
            genfs_kill9
        fi
    done
    # The writers caught by the crash got ENOTCONN when the daemon died.
    for w in "${writers[@]}"; do timeout 30 tail --pid="$w" -f /dev/null || true; done
    fusermount3 -uz "$MNT" 2>/dev/null || true

    genfs_mount -o config="$CONFIG"
    # Top the batch up to 100 accepted tasks, then kill again at random points of their life.
    have=$(sort -u "$ids" | wc -l)
    for i in $(seq 1 $((100 - have))); do
        dur=$(( (i * 4999) % 7000 + 500 ))
        id=$(genfs_submit test-image "{\"prompt\": \"after crash $i\", \"sim_duration_ms\": $dur}") &&
            echo "$id" >>"$ids"
    done
    for round in 1 2; do
        sleep "$((RANDOM % 3)).$((RANDOM % 10))"
        genfs_kill9
        fusermount3 -uz "$MNT" 2>/dev/null || true
        genfs_mount -o config="$CONFIG"
    done

    wait_until 90 all_final
    accepted=$(sort -u "$ids" | wc -l)
    [ "$accepted" -eq 100 ]

    # Every task whose write returned an id is here, final, and as the simulator says.
    sim_tasks >"$BATS_TEST_TMPDIR/sim.json"
    while read -r id; do
        [ -d "$MNT/test-image/$id" ] || fail "accepted task $id is missing after the crashes"
        truth=$(sim_json "[t for t in d if t['taskId']=='$id'][0]['final_state']" <"$BATS_TEST_TMPDIR/sim.json")
        got=$(cat "$MNT/test-image/$id/state")
        [ "$got" = "$truth" ] || fail "task $id: state $got, the simulator says $truth"
        if [ "$truth" = success ]; then
            want=$(sim_json "[t for t in d if t['taskId']=='$id'][0]['result_urls'][0]" <"$BATS_TEST_TMPDIR/sim.json")
            run timeout 20 cat "$MNT/test-image/$id/result"
            assert_output "$want"
        fi
    done < <(sort -u "$ids")

    run sim_figures
    dup=$(echo "$output" | sim_json 'd["duplicate_submissions"]')
    assert_equal "$dup" 0
}

@test "unmount and remount keep finished tasks, their files and latest" {
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "keep me", "sim_duration_ms": 200}')
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    result_before=$output
    status_before=$(cat "$MNT/test-image/$id/status.json")
    genfs_unmount
    [ "$GENFS_EXIT_STATUS" -eq 0 ]

    genfs_mount -o config="$CONFIG"
    run cat "$MNT/test-image/$id/state"
    assert_output success
    run cat "$MNT/test-image/$id/result"
    assert_output "$result_before"
    run cat "$MNT/test-image/$id/prompt"
    assert_output "keep me"
    run cat "$MNT/test-image/$id/status.json"
    assert_output "$status_before"
    run readlink "$MNT/test-image/latest"
    assert_output "$id"
}

@test "a late result: past max_ms readers get ETIMEDOUT, the slow polls go on across a restart and the success lands" {
    cat >"$CONFIG" <<'JSON'
{"models": {"test-image": {"initial_ms": 300, "interval_ms": 300, "max_ms": 1000, "late_ms": 1500}}}
JSON
    genfs_mount -o config="$CONFIG" -o schedule=adaptive
    id=$(genfs_submit test-image '{"prompt": "slow but sure", "sim_duration_ms": 7000}')
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_failure
    assert_output --partial "Connection timed out"
    wait_until 10 grep -q "$id: not done within the model's time limit" "$MNT/log"
    genfs_unmount
    [ "$GENFS_EXIT_STATUS" -eq 0 ]
    genfs_mount -o config="$CONFIG" -o schedule=adaptive
    # Still given up after the restart: readers are told at once, the task is kept.
    run timeout 30 cat "$MNT/test-image/$id/result"
    if [ "$(cat "$MNT/test-image/$id/state")" != success ]; then
        assert_failure
        assert_output --partial "Connection timed out"
    fi
    wait_until 60 grep -qx success "$MNT/test-image/$id/state"
    run cat "$MNT/test-image/$id/result"
    assert_success
    assert_output "$(sim_task "$id" | sim_json '"\n".join(d["result_urls"])')"
    sha=$(timeout 60 sha256sum "$MNT/test-image/$id/files/0.png" | cut -d' ' -f1)
    assert_equal "$sha" "$(sim_task "$id" | sim_json 'd["media_sha256"][0]')"
    # The late polls kept to late_ms: none closer than 1.5 s apart after the deadline.
    polls=$(sim_task "$id" | sim_json 'd["status_requests"]')
    [ "$polls" -le 12 ] || fail "$polls status requests for a 7 s task"
    assert_equal "$(sim_figures | sim_json 'd["duplicate_submissions"]')" 0
}

@test "a task pending at unmount resumes polling after remount and completes" {
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "resume me", "sim_duration_ms": 4000}')
    genfs_unmount
    genfs_mount -o config="$CONFIG"
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    run cat "$MNT/test-image/$id/state"
    assert_output success
}

@test "mkdir MODEL/ID adopts a task submitted elsewhere; an unknown id is ENOENT and creates nothing" {
    genfs_mount -o config="$CONFIG"
    body=$(sim_submit test-image '{"request_type": "async", "input": {"prompt": "made elsewhere", "sim_duration_ms": 800}}')
    id=$(echo "$body" | sim_json 'd["data"]["taskId"]')
    run mkdir "$MNT/test-image/$id"
    assert_success
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    want=$(sim_task "$id" | sim_json 'd["result_urls"][0]')
    assert_output "$want"

    run mkdir "$MNT/test-image/tknosuchtask0000"
    assert_failure
    assert_output --partial "No such file or directory"
    [ ! -e "$MNT/test-image/tknosuchtask0000" ]

    # Adopted tasks survive a remount too.
    genfs_unmount
    genfs_mount -o config="$CONFIG"
    run cat "$MNT/test-image/$id/state"
    assert_output success
}

@test "rmdir MODEL/ID forgets a task for good; rmdir MODEL only when empty" {
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "forget me", "sim_duration_ms": 200}')
    timeout 30 cat "$MNT/test-image/$id/result" >/dev/null
    run rmdir "$MNT/test-image"
    assert_failure
    assert_output --partial "not empty"
    run rmdir "$MNT/test-image/$id"
    assert_success
    [ ! -e "$MNT/test-image/$id" ]
    run rmdir "$MNT/test-image"
    assert_success
    [ ! -e "$MNT/test-image" ]
    genfs_unmount
    # (the config would add test-image back: it names it)
    GENFS_MODELS=test-audio genfs_mount
    [ ! -e "$MNT/test-image" ]
    run ls "$MNT"
    refute_output --partial "test-image"
}

@test "a second mount on the same state_dir refuses to start with one clear line" {
    genfs_mount
    other="$BATS_TEST_TMPDIR/mnt2"
    mkdir -p "$other"
    run timeout 20 env GENFS_API_KEY="$GENFS_SIM_KEY" "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR" "$other"
    assert_equal "$status" 2
    assert_output --partial "in use by another genfs"
    [ "${#lines[@]}" -eq 1 ]
    ! grep -q " $other fuse" /proc/mounts || false
}

@test "a corrupt database is refused at start with a message saying what to do" {
    mkdir -p "$STATE_DIR"
    head -c 8192 /dev/urandom >"$STATE_DIR/tasks.db"
    run timeout 20 env GENFS_API_KEY="$GENFS_SIM_KEY" "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR" "$MNT"
    assert_equal "$status" 2
    assert_output --partial "move it aside"
    ! genfs_is_mounted || false
}

@test "the database and state_dir are private to the user" {
    genfs_mount
    run stat -c %a "$STATE_DIR"
    assert_output 700
    run stat -c %a "$STATE_DIR/tasks.db"
    assert_output 600
}

# start_refused: genfs on the same state_dir must refuse to start, with one line.
start_refused() {
    run timeout 20 env GENFS_API_KEY="$GENFS_SIM_KEY" "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_equal "$status" 2
    [ "${#lines[@]}" -eq 1 ]
    assert_output --partial "which genfs used before"
    assert_output --partial "$1"
    assert_output --partial "-o fresh"
    ! genfs_is_mounted || false
}

@test "a database deleted or emptied after a clean stop is refused, and -o fresh starts afresh" {
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "remember me", "sim_duration_ms": 500}')
    [ -n "$id" ]
    genfs_unmount
    rm "$STATE_DIR/tasks.db"
    start_refused "is missing"
    : >"$STATE_DIR/tasks.db"
    start_refused "is empty"
    genfs_mount -o config="$CONFIG",fresh
    run ls "$MNT/test-image"
    refute_output --partial "$id"
    run cat "$MNT/log"
    assert_output --partial "-o fresh"
    compgen -G "$STATE_DIR/tasks.db.broken-*" >/dev/null
}

# crash_with_tasks WORD: genfs mounted, three minute-long tasks submitted ("WORD 1".."WORD 3",
# their ids in ids), then killed with -9 and its dead mount dropped.
crash_with_tasks() {
    genfs_mount -o config="$CONFIG"
    ids=()
    for i in 1 2 3; do
        ids+=("$(genfs_submit test-image "{\"prompt\": \"$1 $i\", \"sim_duration_ms\": 60000}")")
    done
    genfs_kill9
    fusermount3 -uz "$MNT" 2>/dev/null || true
}

@test "a write-ahead log deleted after a crash is refused: the tasks in it are not silently lost" {
    crash_with_tasks "in the log"
    [ "${#ids[@]}" -eq 3 ]
    [ -f "$STATE_DIR/tasks.db-wal" ]
    rm -f "$STATE_DIR/tasks.db-wal" "$STATE_DIR/tasks.db-shm"
    start_refused "write-ahead log"
    # Asked to, it starts with what the database file still holds moved aside.
    genfs_mount -o config="$CONFIG",fresh
    run cat "$MNT/log"
    assert_output --partial "write-ahead log"
}

@test "a crash with the write-ahead log in place restarts with every task" {
    crash_with_tasks kept
    genfs_mount -o config="$CONFIG"
    for id in "${ids[@]}"; do
        [ -d "$MNT/test-image/$id" ]
    done
}

@test "-o keep=DAYS forgets finished tasks that ended longer ago, with their files; unfinished stay" {
    genfs_mount -o config="$CONFIG"
    old=$(genfs_submit test-image '{"prompt": "old news", "sim_duration_ms": 300}')
    timeout 60 cat "$MNT/test-image/$old/result" >/dev/null
    run timeout 60 cat "$MNT/test-image/$old/files/0.png"
    assert_success
    wait_until 10 test -f "$CACHE_DIR/test-image/$old/0.png"
    pending=$(genfs_submit test-image '{"prompt": "still running", "sim_duration_ms": 600000}')
    genfs_unmount
    sleep 3
    # 0.00002 days is 1.7 s: the finished task ended longer ago than that.
    genfs_mount -o config="$CONFIG",keep=0.00002
    wait_until 10 test ! -e "$MNT/test-image/$old"
    [ ! -e "$CACHE_DIR/test-image/$old" ]
    [ -d "$MNT/test-image/$pending" ]
    run cat "$MNT/log"
    assert_output --partial "$old: forgotten"
}
