#!/usr/bin/env bats
# The mount's basic life: submit by writing, read the result, state, error.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
    genfs_mount -o schedule=fixed
}

teardown() {
    genfs_teardown
}

@test "the root lists README, events, stats, log and the model directories" {
    run ls "$MNT"
    assert_success
    assert_output --partial README
    assert_output --partial events
    assert_output --partial stats
    assert_output --partial log
    assert_output --partial test-image
}

@test "a prompt written to new becomes a task that reaches success with the sim's URLs" {
    id=$(genfs_submit test-image '{"prompt": "a red fox", "sim_duration_ms": 1000}')
    [ -n "$id" ]
    [ -d "$MNT/test-image/$id" ]
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    want=$(sim_task "$id" | sim_json 'd["result_urls"][0]')
    assert_output "$want"
    run cat "$MNT/test-image/$id/state"
    assert_output success
    run readlink "$MNT/test-image/latest"
    assert_output "$id"
    run cat "$MNT/test-image/$id/prompt"
    assert_output "a red fox"
}

@test "a failed task: result fails with EIO and error holds code and message" {
    id=$(genfs_submit test-image '{"prompt": "x", "sim_duration_ms": 500, "sim_outcome": "failed", "sim_fail_code": "422", "sim_fail_msg": "content policy"}')
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_failure
    assert_output --partial "Input/output error"
    run cat "$MNT/test-image/$id/error"
    assert_output "422: content policy"
    run cat "$MNT/test-image/$id/state"
    assert_output failed
}

@test "threads reading one stats and one log descriptor at offset 0 at once each get a whole snapshot" {
    genfs_submit test-image 'something for the log' >/dev/null
    run timeout 120 python3 - "$MNT" <<'PY'
import json, os, sys, threading
mnt = sys.argv[1]
bad = []
def hammer(fd, check):
    for _ in range(300):
        text = os.pread(fd, 1 << 20, 0).decode()
        try:
            check(text)
        except Exception as e:
            bad.append(repr(e))
            return
def log_ok(text):
    assert text.endswith("\n") and "mounted" in text, text[:80]
for name, check in (("stats", json.loads), ("log", log_ok)):
    fd = os.open(os.path.join(mnt, name), os.O_RDONLY)
    ts = [threading.Thread(target=hammer, args=(fd, check)) for _ in range(8)]
    for t in ts: t.start()
    for t in ts: t.join()
    os.close(fd)
print("bad:", len(bad), bad[:3])
PY
    assert_success
    assert_output "bad: 0 []"
}
