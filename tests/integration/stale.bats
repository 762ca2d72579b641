#!/usr/bin/env bats
# Issues 9, 23 (item 1) and 22: a mount that lost its daemon is cleaned at the next start, every
# time, however many are stacked there; a live mount or a non-empty directory is not mounted over
# unless asked (-o nonempty).

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
}

teardown() {
    local p
    for p in ${EXTRA_PIDS:-}; do
        kill -9 "$p" 2>/dev/null || true
    done
    genfs_teardown
    # Whatever a failed test left stacked at the mountpoint.
    while [ "$(mounts_at)" -gt 0 ] && umount -l "$MNT" 2>/dev/null; do :; done
}

# How many mounts sit at $MNT (stacked ones count one each).
mounts_at() {
    awk -v m="$MNT" '$5 == m' /proc/self/mountinfo | wc -l
}

two_mounted() {
    [ "$(mounts_at)" -eq 2 ]
}

# genfs once in the foreground with STATE_DIR; for the runs that must refuse.
genfs_once() {
    GENFS_API_KEY="$GENFS_SIM_KEY" timeout 20 "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR,models=test-image" "$@" "$MNT"
}

@test "a stale mount (daemon killed) is detected and cleaned at the next start, with a message" {
    genfs_mount
    id=$(genfs_submit test-image '{"prompt": "before the crash", "sim_duration_ms": 300}')
    genfs_kill9
    run ls "$MNT"
    assert_failure
    assert_output --partial "Transport endpoint is not connected"
    genfs_mount
    grep -q "stale mount" "$GENFS_LOG" || { cat "$GENFS_LOG"; grep "$MNT" /proc/mounts; false; }
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
}

@test "killed right after a stat (the dead mount's attributes still cached): the restart removes it and mounts once" {
    genfs_mount
    stat "$MNT" >/dev/null
    genfs_kill9
    # What fooled the old check: the kernel answers stat() of the dead mount from its cache.
    run stat -c %F "$MNT"
    assert_success
    genfs_mount
    [ "$(mounts_at)" -eq 1 ] || fail "$(mounts_at) mounts at $MNT: $(grep " $MNT " /proc/self/mountinfo)"
    run grep -c "was a stale mount" "$GENFS_LOG"
    assert_output 1
    genfs_unmount
    [ "$(mounts_at)" -eq 0 ]
}

@test "two dead genfs mounts stacked on the mountpoint: the restart removes both and mounts" {
    local state1=$STATE_DIR pid1
    genfs_mount
    pid1=$GENFS_PID
    # The lower mount answers already: wait for the second one to be there.
    STATE_DIR="$BATS_TEST_TMPDIR/state2" genfs_mount -o nonempty
    wait_until 10 two_mounted
    genfs_kill9
    GENFS_PID=$pid1
    genfs_kill9
    run ls "$MNT"
    assert_output --partial "Transport endpoint is not connected"
    STATE_DIR=$state1 genfs_mount
    [ "$(mounts_at)" -eq 1 ] || fail "$(mounts_at) mounts at $MNT: $(grep " $MNT " /proc/self/mountinfo)"
    run grep -c "was a stale mount" "$GENFS_LOG"
    assert_output 2
    genfs_unmount
    [ "$GENFS_EXIT_STATUS" -eq 0 ]
    [ "$(mounts_at)" -eq 0 ]
}

@test "a live genfs mount is not mounted over: exit 2 and why; it keeps working; -o nonempty stacks on it" {
    genfs_mount
    local pid1=$GENFS_PID
    STATE_DIR="$BATS_TEST_TMPDIR/state2" run genfs_once
    assert_equal "$status" 2
    assert_output --partial "is already mounted by a running genfs"
    [ "$(mounts_at)" -eq 1 ]
    id=$(genfs_submit test-image '{"prompt": "still here", "sim_duration_ms": 100}')
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    # The lower mount answers already: wait for the second one to be there.
    STATE_DIR="$BATS_TEST_TMPDIR/state2" genfs_mount -o nonempty
    wait_until 10 two_mounted
    genfs_unmount
    GENFS_PID=$pid1
    genfs_unmount
    [ "$(mounts_at)" -eq 0 ]
}

@test "a directory that is not empty is refused (exit 2, why), and mounted over with -o nonempty" {
    echo mine >"$MNT/mine.txt"
    run genfs_once
    assert_equal "$status" 2
    assert_output --partial "is not empty"
    [ "$(mounts_at)" -eq 0 ]
    genfs_mount -o nonempty
    [ ! -e "$MNT/mine.txt" ]
    genfs_unmount
    assert_equal "$(cat "$MNT/mine.txt")" mine
}
