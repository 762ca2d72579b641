#!/usr/bin/env bats
# Issue 23: local storage failures say so. A cache_dir or state_dir on a full
# disk (a small tmpfs) gives ENOSPC, the log names the directory, stats counts it.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    [ "$(id -u)" -eq 0 ] || skip "mounting a small tmpfs needs root"
    genfs_setup --time-scale 0.01
    CONFIG=$(genfs_fast_config)
    SMALL="$BATS_TEST_TMPDIR/small"
    mkdir -p "$SMALL"
    mount -t tmpfs -o size=256k,mode=0700 genfs-test-small "$SMALL"
}

teardown() {
    genfs_teardown
    if [ -n "${SMALL:-}" ] && grep -q " $SMALL tmpfs" /proc/mounts; then
        umount "$SMALL" || umount -l "$SMALL"
    fi
}

@test "a full cache_dir: reading the file fails with ENOSPC, the log names cache_dir, stats counts it" {
    # A 197 KB picture fits in 256 KiB once, not twice.
    CACHE_DIR="$SMALL"
    genfs_mount -o config="$CONFIG",cache_dir="$SMALL"
    # One after the other: two downloads at once could each find the disk full.
    a=$(genfs_submit test-image '{"prompt": "fits", "sim_duration_ms": 200}')
    timeout 60 cat "$MNT/test-image/$a/result" >/dev/null
    timeout 60 cat "$MNT/test-image/$a/files/0.png" >/dev/null
    b=$(genfs_submit test-image '{"prompt": "does not fit", "sim_duration_ms": 200}')
    timeout 60 cat "$MNT/test-image/$b/result" >/dev/null
    run errno_of_read "$MNT/test-image/$b/files/0.png" 60
    assert_output ENOSPC
    run cat "$MNT/log"
    assert_output --partial "cannot write to cache_dir $SMALL"
    assert_output --partial "No space left on device"
    run genfs_stats_get 'd["disk_full"]'
    [ "$output" -ge 1 ]
}

@test "a full state_dir: the write to new fails with ENOSPC and the log says how to adopt the task" {
    STATE_DIR="$SMALL/state"
    genfs_mount -o config="$CONFIG",state_dir="$STATE_DIR"
    # Fill what is left of the disk.
    head -c 1M /dev/zero >"$SMALL/filler" 2>/dev/null || true
    run timeout 60 python3 -c "
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, b'{\"prompt\": \"' + b'x' * 200000 + b'\", \"sim_duration_ms\": 200}')
    os.close(fd)
except OSError as e:
    print(errno.errorcode[e.errno])
    sys.exit(1)
print('written')" "$MNT/test-image/new"
    assert_output ENOSPC
    run cat "$MNT/log"
    assert_output --partial "state_dir is full"
    assert_output --partial "mkdir test-image/"
    run genfs_stats_get 'd["disk_full"]'
    [ "$output" -ge 1 ]
}
