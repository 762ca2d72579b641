#!/usr/bin/env bats
# Clean shutdown: SIGTERM or SIGINT with a blocked reader, fusermount3 -u with nothing open, and what
# survives for the next mount.

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
    for p in "${BG_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    genfs_teardown
}

# SIG to the daemon with a cat blocked on result: the cat gets an error, genfs exits 0.
signal_with_blocked_reader() {
    id=$(genfs_submit test-image '{"prompt": "long wait", "sim_duration_ms": 600000}')
    cat "$MNT/test-image/$id/result" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
    cat_pid=$!
    BG_PIDS+=("$cat_pid")
    sleep 1
    ! pid_gone "$cat_pid" || false
    kill -"$1" "$GENFS_PID"
    wait_until 10 pid_gone "$cat_pid"
    st=0
    wait "$cat_pid" || st=$?
    [ "$st" -ne 0 ]
    [ ! -s "$BATS_TEST_TMPDIR/out" ]
    [ -s "$BATS_TEST_TMPDIR/err" ]
    genfs_wait_exit 30
    [ "$GENFS_EXIT_STATUS" -eq 0 ] || { echo "genfs exited with status $GENFS_EXIT_STATUS" >&2; false; }
    run grep -F " $MNT " /proc/mounts
    assert_failure
}

@test "SIGTERM with a blocked cat result: the cat gets an error, genfs exits 0, nothing mounted" {
    signal_with_blocked_reader TERM
}

@test "SIGINT (Ctrl-C on genfs -f) with a blocked cat result: the same clean end" {
    # A background job of a script starts with SIGINT ignored (libfuse then leaves it so);
    # Ctrl-C reaches a genfs -f started from a terminal, whose SIGINT is the default.
    genfs_unmount
    local real
    real=$(genfs_bin)
    printf '#!/usr/bin/env python3\nimport os, signal, sys\nsignal.signal(signal.SIGINT, signal.SIG_DFL)\nos.execv("%s", ["%s"] + sys.argv[1:])\n' \
        "$real" "$real" >"$BATS_TEST_TMPDIR/genfs-tty"
    chmod +x "$BATS_TEST_TMPDIR/genfs-tty"
    genfs_bin() { printf '%s\n' "$BATS_TEST_TMPDIR/genfs-tty"; }
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive"
    ignored=$(awk '/^SigIgn:/ {print $2}' "/proc/$GENFS_PID/status")
    [ $((16#$ignored & 2)) -eq 0 ] || fail "SIGINT is ignored by genfs (SigIgn $ignored)"
    signal_with_blocked_reader INT
}

@test "fusermount3 -u with nothing open unmounts, and genfs exits 0" {
    id=$(genfs_submit test-image '{"prompt": "done", "sim_duration_ms": 100}')
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    run genfs_fusermount_u "$MNT"
    assert_success
    genfs_wait_exit 30
    [ "$GENFS_EXIT_STATUS" -eq 0 ] || { echo "genfs exited with status $GENFS_EXIT_STATUS" >&2; false; }
    run grep -F " $MNT " /proc/mounts
    assert_failure
    [ ! -e "$MNT/README" ]
}

@test "a task pending at SIGTERM is polled again after the next mount and completes" {
    id=$(genfs_submit test-image '{"prompt": "resume me", "sim_duration_ms": 4000}')
    run cat "$MNT/test-image/$id/state"
    assert_output --regexp '^(waiting|queuing|generating)$'
    kill -TERM "$GENFS_PID"
    genfs_wait_exit 30
    ! genfs_is_mounted || false
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive"
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    assert_output "$(sim_curl -f "$SIM_URL/_sim/tasks/$id?sha256=0" | sim_json '"\n".join(d["result_urls"])')"
    run cat "$MNT/test-image/$id/prompt"
    assert_output "resume me"
}
