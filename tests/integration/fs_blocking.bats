#!/usr/bin/env bats
# Blocking reads of result (SPEC 3, 5): block until the end, many at once without freezing the
# mount, Ctrl-C, O_NONBLOCK, poll(2), and the give-up with ETIMEDOUT.
# The sim runs in real time here: every task says how long it takes (sim_duration_ms).

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup
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

now_ms() {
    date +%s%3N
}

mount_fast() {
    genfs_mount -o "config=$(genfs_fast_config "${MAX_MS:-600000}"),schedule=adaptive" "$@"
}

sim_urls() {
    sim_curl -f "$SIM_URL/_sim/tasks/$1?sha256=0" | sim_json '"\n".join(d["result_urls"])'
}

is_pending_word() {
    [[ "$1" == waiting || "$1" == queuing || "$1" == generating ]]
}

@test "cat result blocks until the task is done, then prints the sim's URLs" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "slow boat", "sim_duration_ms": 3000}')
    t0=$(now_ms)
    run timeout 60 cat "$MNT/test-image/$id/result"
    took=$(($(now_ms) - t0))
    assert_success
    assert_output "$(sim_urls "$id")"
    # It waited for the task (3 s from submission), it did not return early.
    [ "$took" -ge 2000 ]
    run cat "$MNT/test-image/$id/state"
    assert_output success
}

@test "50 blocked readers do not freeze the mount; all of them get the result" {
    mount_fast -o rate=100
    ids=()
    for i in 1 2 3 4 5; do
        ids+=("$(genfs_submit test-image "{\"prompt\": \"crowd $i\", \"sim_duration_ms\": 10000}")")
    done
    for i in $(seq 0 49); do
        id=${ids[$((i % 5))]}
        timeout 60 cat "$MNT/test-image/$id/result" >"$BATS_TEST_TMPDIR/out.$i" 2>&1 3>&- &
        BG_PIDS+=($!)
    done
    sleep 1
    t0=$(now_ms)
    run timeout 5 ls "$MNT/test-image"
    assert_success
    assert_line "${ids[0]}"
    run timeout 5 cat "$MNT/test-image/${ids[1]}/state"
    assert_success
    is_pending_word "$output"
    run timeout 5 cat "$MNT/stats"
    assert_success
    run timeout 5 python3 "$GENFS_HELPERS_DIR/py/gfs.py" submit "$MNT/test-audio/new" 'meanwhile'
    assert_success
    assert_output --regexp '^ok .+'
    took=$(($(now_ms) - t0))
    [ "$took" -lt 5000 ]
    # The readers were still blocked all that time.
    n=0
    for p in "${BG_PIDS[@]}"; do
        pid_gone "$p" || n=$((n + 1))
    done
    [ "$n" -eq 50 ]
    for p in "${BG_PIDS[@]}"; do
        wait "$p"
    done
    for i in $(seq 0 49); do
        id=${ids[$((i % 5))]}
        [ "$(cat "$BATS_TEST_TMPDIR/out.$i")" = "$(sim_urls "$id")" ]
    done
}

@test "SIGINT to a blocked cat result ends it within 2 s; the task carries on" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "interrupt me", "sim_duration_ms": 6000}')
    python3 "$GENFS_SIGDFL" cat "$MNT/test-image/$id/result" >"$BATS_TEST_TMPDIR/out" 2>&1 3>&- &
    pid=$!
    BG_PIDS+=("$pid")
    sleep 1
    ! pid_gone "$pid" || false
    t0=$(now_ms)
    kill -INT "$pid"
    wait_until 10 pid_gone "$pid"
    took=$(($(now_ms) - t0))
    [ "$took" -lt 2000 ]
    wait "$pid" || st=$?
    [ "${st:-0}" -eq 130 ]
    # The mount and the task are fine: a new reader gets the result.
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    assert_output "$(sim_urls "$id")"
}

@test "O_NONBLOCK read of a pending result: EAGAIN at once; state never blocks" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "not yet", "sim_duration_ms": 600000}')
    t0=$(now_ms)
    run timeout 10 python3 "$GENFS_HELPERS_DIR/py/gfs.py" read "$MNT/test-image/$id/result" nonblock
    assert_failure
    assert_output EAGAIN
    run timeout 5 cat "$MNT/test-image/$id/state"
    assert_success
    is_pending_word "$output"
    run timeout 5 cat "$MNT/test-image/$id/error"
    assert_success
    assert_output ""
    [ $(($(now_ms) - t0)) -lt 5000 ]
}

@test "O_NONBLOCK read of a finished result reads it" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "done soon", "sim_duration_ms": 200}')
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    run python3 "$GENFS_HELPERS_DIR/py/gfs.py" read "$MNT/test-image/$id/result" nonblock
    assert_success
    assert_output "$(sim_urls "$id")"
}

@test "poll(2) on state: no wake while nothing changes, a wake when the state moves" {
    mount_fast
    # APIXO says pending (waiting) until 12 s, then processing (generating).
    id=$(genfs_submit test-image '{"prompt": "watch me", "sim_duration_ms": 40000}')
    # After the first status answer nothing changes until the state moves at 4 s.
    wait_until 10 test -s "$MNT/test-image/$id/status.json"
    run timeout 30 python3 "$GENFS_HELPERS_DIR/py/gfs.py" pollwait "$MNT/test-image/$id/state" 1
    assert_success
    assert_line "before: waiting"
    assert_line "after: waiting"
    assert_line --regexp '^woke: no '
    run timeout 30 python3 "$GENFS_HELPERS_DIR/py/gfs.py" pollwait "$MNT/test-image/$id/state" 20
    assert_success
    assert_line "before: waiting"
    assert_line "after: generating"
    assert_line --regexp '^woke: yes '
}

@test "poll(2) on state: a status.json-only change (same state word) is no change of state" {
    # The first status poll comes 3 s after the submission; the state moves at 8 s.
    cat >"$BATS_TEST_TMPDIR/slow-first.json" <<'JSON'
{"models": {"test-image": {"initial_ms": 3000, "interval_ms": 30000, "max_ms": 600000}}}
JSON
    genfs_mount -o "config=$BATS_TEST_TMPDIR/slow-first.json,schedule=adaptive"
    id=$(genfs_submit test-image '{"prompt": "quiet", "sim_duration_ms": 80000}')
    run timeout 30 python3 "$GENFS_HELPERS_DIR/py/gfs.py" pollwait "$MNT/test-image/$id/state" 5
    assert_success
    # The status poll did happen meanwhile ...
    [ -s "$MNT/test-image/$id/status.json" ]
    # ... but state said waiting before and after: poll must not report it readable.
    assert_line "before: waiting"
    assert_line "after: waiting"
    assert_line --regexp '^woke: no '
}

@test "poll(2) on result wakes when the task ends; the result is then there" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "ping me", "sim_duration_ms": 3000}')
    run timeout 30 python3 "$GENFS_HELPERS_DIR/py/gfs.py" pollwait "$MNT/test-image/$id/result" 20
    assert_success
    assert_line --regexp '^woke: yes '
    want=$(sim_urls "$id")
    assert_line "after: $want"
    run cat "$MNT/test-image/$id/state"
    assert_output success
}

@test "give-up: past the profile's max_ms, result fails with ETIMEDOUT and state stays pending" {
    MAX_MS=1500 mount_fast
    id=$(genfs_submit test-image '{"prompt": "never mind", "sim_duration_ms": 60000}')
    t0=$(now_ms)
    run timeout 30 cat "$MNT/test-image/$id/result"
    took=$(($(now_ms) - t0))
    assert_failure
    assert_output --partial "Connection timed out"
    [ "$took" -ge 800 ]
    [ "$took" -lt 10000 ]
    run python3 "$GENFS_HELPERS_DIR/py/gfs.py" read "$MNT/test-image/$id/result"
    assert_output ETIMEDOUT
    run cat "$MNT/test-image/$id/state"
    is_pending_word "$output"
    # The task is not lost: still listed, still the sim's.
    [ -d "$MNT/test-image/$id" ]
    run cat "$MNT/log"
    assert_output --partial "$id"
}
