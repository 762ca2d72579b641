#!/usr/bin/env bats
# Writing to MODEL/new (SPEC 3): what is sent, the id on the same fd, and the errno a writer
# gets for each way a submission can fail; every failure also leaves a line in MOUNT/log.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
}

teardown() {
    genfs_teardown
}

mount_fast() {
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive" "$@"
}

sim_submits() {
    sim_figures | sim_json 'd["requests"]["submit"]'
}

log_lines() {
    wc -l <"$MNT/log"
}

# The log lines added after line $1, on stdout; fails when there are none.
new_log_lines() {
    local from=$1 text
    text=$(tail -n +"$((from + 1))" "$MNT/log")
    if [ -z "$text" ]; then
        echo "no new line in MOUNT/log; it holds:" >&2
        cat "$MNT/log" >&2
        return 1
    fi
    printf '%s\n' "$text"
}

@test "text written to new is the prompt, trailing newline stripped; input.json wraps it" {
    mount_fast
    id=$(genfs_submit test-image 'a lighthouse at dusk')
    [ -d "$MNT/test-image/$id" ]
    run cat "$MNT/test-image/$id/prompt"
    assert_output 'a lighthouse at dusk'
    run sim_json 'd["prompt"]' <"$MNT/test-image/$id/input.json"
    assert_output 'a lighthouse at dusk'
    run sim_task "$id"
    assert_success
    run sim_json 'd["prompt"]' <<<"$output"
    assert_output 'a lighthouse at dusk'
}

@test "a JSON object written to new is the whole input" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "owl", "sim_duration_ms": 100, "seed": 7}')
    run sim_json 'd["seed"], d["prompt"], d["sim_duration_ms"]' <"$MNT/test-image/$id/input.json"
    assert_output '[7, "owl", 100]'
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
}

@test "exec 3<>new; echo hi >&3; read id <&3 gives the id of a new task directory" {
    mount_fast
    # In a child shell: bats keeps its own output on fd 3.
    run bash -c 'exec 3<>"$1/test-image/new"; echo hi >&3; read -r id <&3; exec 3>&-; echo "$id"' _ "$MNT"
    assert_success
    id=$output
    [[ "$id" =~ ^[A-Za-z0-9._~-]+$ ]]
    [ -d "$MNT/test-image/$id" ]
    run cat "$MNT/test-image/$id/prompt"
    assert_output hi
    run ls "$MNT/test-image"
    assert_line "$id"
    run readlink "$MNT/test-image/latest"
    assert_output "$id"
}

@test "a newline alone and whitespace only: EINVAL, nothing sent, a line in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" $'text:\n'
    assert_failure
    assert_output EINVAL
    run gfs write "$MNT/test-image/new" $'text:  \t \n\n '
    assert_output EINVAL
    run bash -c "echo > '$MNT/test-image/new'"
    assert_failure
    assert_output --partial "Invalid argument"
    run sim_submits
    assert_output 0
    new_log_lines "$before"
    run ls "$MNT/test-image"
    refute_output --partial latest
}

@test "a { that is not a valid JSON object: EINVAL, nothing sent, a line in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" 'text:{'
    assert_output EINVAL
    run gfs write "$MNT/test-image/new" 'text:{"prompt": "x"'
    assert_output EINVAL
    run gfs write "$MNT/test-image/new" 'text:  {"prompt": "x"} trailing'
    assert_output EINVAL
    run sim_submits
    assert_output 0
    new_log_lines "$before"
}

@test "1 MiB + 1 bytes in one buffered write: EFBIG, nothing sent, a line in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" fill:1048577:a
    assert_failure
    assert_output EFBIG
    run sim_submits
    assert_output 0
    run new_log_lines "$before"
    assert_success
    assert_output --partial "1048576"
}

@test "3 MiB in one buffered write: EFBIG, nothing sent" {
    mount_fast
    run gfs write "$MNT/test-image/new" fill:3145728:z
    assert_output EFBIG
    run sim_submits
    assert_output 0
}

@test "exactly 1 MiB of prompt text is never EFBIG and becomes at most one task, whole" {
    mount_fast
    run gfs write "$MNT/test-image/new" fill:1048576:p
    refute_output EFBIG
    n=$(sim_figures | sim_json 'd["tasks"]')
    if [ "$output" = ok ]; then
        # Accepted: one task holding the whole prompt.
        [ "$n" -eq 1 ]
        lens=$(sim_tasks | sim_json 'sorted(len(t["prompt"]) for t in d)')
        assert_equal "$lens" '[1048576]'
    else
        # Refused by the provider: nothing stored by it, and the reason is the provider's.
        [ "$n" -eq 0 ]
    fi
}

@test "wrong API key: EACCES, a line in log" {
    GENFS_SIM_KEY=sk-wrong-key-for-this-sim mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" text:hello
    assert_failure
    assert_output EACCES
    run bash -c "echo hello > '$MNT/test-image/new'"
    assert_output --partial "Permission denied"
    run new_log_lines "$before"
    assert_success
    assert_output --partial 401
    run sim_figures
    run sim_json 'd["tasks"]' <<<"$output"
    assert_output 0
}

@test "a model the provider does not know: ENOENT, a line in log" {
    mount_fast
    mkdir "$MNT/nosuchmodel"
    before=$(log_lines)
    run gfs write "$MNT/nosuchmodel/new" text:hello
    assert_failure
    assert_output ENOENT
    run new_log_lines "$before"
    assert_success
    assert_output --partial nosuchmodel
}

@test "input the provider rejects (an object without prompt): EINVAL from its 422, a line in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" 'text:{"negative_prompt": "dogs"}'
    assert_failure
    assert_output EINVAL
    # It was the provider that refused: the request reached it.
    run sim_submits
    assert_output 1
    run new_log_lines "$before"
    assert_success
    assert_output --partial 422
}

@test "no credits left (402): EDQUOT, a line in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" 'text:{"prompt": "x", "sim_credits": "none"}'
    assert_failure
    assert_output EDQUOT
    run bash -c "echo '{\"prompt\": \"y\", \"sim_credits\": \"none\"}' > '$MNT/test-image/new'"
    assert_output --partial "Disk quota exceeded"
    run new_log_lines "$before"
    assert_success
    assert_output --partial 402
}

@test "429s that outlast the retries: EAGAIN after several attempts, a line in log" {
    mount_fast
    sim_faults '{"burst_429": 50, "burst_retry_after": 1}' >/dev/null
    before=$(log_lines)
    run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" write "$MNT/test-image/new" text:patience
    assert_failure
    assert_output EAGAIN
    n=$(sim_submits)
    [ "$n" -ge 2 ]
    run new_log_lines "$before"
    assert_success
    assert_output --partial 429
    # Once the provider takes requests again, so does new.
    sim_faults_reset >/dev/null
    run gfs write "$MNT/test-image/new" text:patience
    assert_output ok
}

@test "a 500 from the provider: EIO, a line in log" {
    mount_fast
    sim_faults '{"error_500": 1}' >/dev/null
    before=$(log_lines)
    run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" write "$MNT/test-image/new" text:boom
    assert_failure
    assert_output EIO
    run new_log_lines "$before"
    assert_success
    assert_output --partial 500
}

@test "a provider slower than -o timeout=2: ETIMEDOUT within a few seconds, a line in log" {
    mount_fast -o timeout=2
    sim_faults '{"slow_rate": 1, "slow_ms": 5000}' >/dev/null
    before=$(log_lines)
    start=$SECONDS
    run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" write "$MNT/test-image/new" text:slowly
    took=$((SECONDS - start))
    assert_failure
    assert_output ETIMEDOUT
    [ "$took" -lt 15 ]
    # Sent once, never again: it may have been taken, and the log says so.
    run new_log_lines "$before"
    assert_success
    assert_output --partial "may exist"
    assert_equal "$(sim_submits)" 1
}

@test "a 500 or a reset after the submission was sent: EIO once, never resent, the log says the task may exist" {
    mount_fast
    local n=0 faults
    for faults in '{"error_500": 1}' '{"error_500": 0, "reset_rate": 1}'; do
        n=$((n + 1))
        sim_faults "$faults" >/dev/null
        before=$(log_lines)
        run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" write "$MNT/test-image/new" "text:try $n"
        assert_output EIO
        assert_equal "$(sim_submits)" "$n"
        run new_log_lines "$before"
        assert_output --partial "may exist"
    done
}

@test "the write returns only once the task is stored: it is listed at once, and after a remount" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "durable", "sim_duration_ms": 100}')
    [ -d "$MNT/test-image/$id" ]
    genfs_unmount
    mount_fast
    [ -d "$MNT/test-image/$id" ]
    run cat "$MNT/test-image/$id/prompt"
    assert_output durable
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
}

@test "-o log_level=warn: the daemon's log holds the refusal but no info line; MOUNT/log keeps both" {
    mount_fast -o log_level=warn
    id=$(genfs_submit test-image '{"prompt": "quiet log", "sim_duration_ms": 100}')
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    run gfs write "$MNT/test-image/new" $'text:\n'
    assert_output EINVAL
    run grep -c "$id: success" "$MNT/log"
    assert_output 1
    # stderr lines are "genfs: LEVEL: text"
    run grep -c '^genfs: warn: ' "$GENFS_LOG"
    [ "$output" -ge 1 ] || fail "no warn line in the daemon's log: $(cat "$GENFS_LOG")"
    run grep -E '^genfs: (info|debug): ' "$GENFS_LOG"
    assert_output ''
}
