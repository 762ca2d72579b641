#!/usr/bin/env bats
# Issue 9: a mount that lost its daemon is cleaned at the next start.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
}

teardown() {
    genfs_teardown
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
