#!/usr/bin/env bats
# Issue 5: server errors, resets, slow answers, 429 and malformed bodies:
# nothing lost, nothing submitted twice, the provider never hammered.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    cat >"$CONFIG" <<'JSON'
{"models": {"test-image": {"initial_ms": 300, "interval_ms": 500, "max_ms": 300000}}}
JSON
}

teardown() {
    genfs_teardown
}

stat_of() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$MNT/stats" "$1"
}

# Submits N tasks with distinct prompts (durations spread over 0.3..3.3 s);
# ids go to $BATS_TEST_TMPDIR/ids. A refused write is retried with a new prompt,
# as a user would, so every slot ends with one accepted task.
submit_many() {
    local n=$1 i id try
    : >"$BATS_TEST_TMPDIR/ids"
    for i in $(seq 1 "$n"); do
        for try in 1 2 3 4 5 6; do
            if id=$(genfs_submit test-image "{\"prompt\": \"fault $i try $try\", \"sim_duration_ms\": $(( (i * 337) % 3000 + 300 ))}" 2>/dev/null) && [ -n "$id" ]; then
                echo "$id" >>"$BATS_TEST_TMPDIR/ids"
                break
            fi
        done
    done
}

all_final() {
    local id
    while read -r id; do
        case "$(cat "$MNT/test-image/$id/state")" in
        success | failed) ;;
        *) return 1 ;;
        esac
    done <"$BATS_TEST_TMPDIR/ids"
}

# Every accepted task is in its true terminal state with the true result.
check_truth() {
    local id
    sim_tasks >"$BATS_TEST_TMPDIR/sim.json"
    while read -r id; do
        truth=$(sim_json "[t for t in d if t['taskId']=='$id'][0]['final_state']" <"$BATS_TEST_TMPDIR/sim.json")
        got=$(cat "$MNT/test-image/$id/state")
        [ "$got" = "$truth" ] || fail "task $id: genfs says $got, the simulator $truth"
        if [ "$truth" = success ]; then
            want=$(sim_json "[t for t in d if t['taskId']=='$id'][0]['result_urls'][0]" <"$BATS_TEST_TMPDIR/sim.json")
            got=$(timeout 10 cat "$MNT/test-image/$id/result")
            [ "$got" = "$want" ] || fail "task $id: result $got, want $want"
        fi
    done <"$BATS_TEST_TMPDIR/ids"
}

@test "60 tasks through 20% 500s, 10% resets, slow answers past the timeout and 429 bursts all end right, none doubled" {
    genfs_setup --seed 7 --fault error_500=0.2 --fault reset_rate=0.1 --fault slow_rate=0.05 \
        --fault slow_ms=6000 --fault burst_429=5
    genfs_mount -o config="$CONFIG" -o timeout=4 -o rate=50
    submit_many 60
    [ "$(wc -l <"$BATS_TEST_TMPDIR/ids")" -eq 60 ]
    sim_faults '{"burst_429": 5}' >/dev/null
    wait_until 120 all_final
    check_truth
    run sim_figures
    assert_equal "$(echo "$output" | sim_json 'd["duplicate_submissions"]')" 0
    # Slow answers went past the 4 s timeout, and the log said so.
    [ "$(echo "$output" | sim_json 'd["faults_injected"].get("slow_rate", 0)')" -gt 0 ]
    grep -q "Timeout was reached" "$MNT/log" || fail "no timeout in the log: $(cat "$MNT/log")"
    [ "$(stat_of 'd["transport_errors"]')" -gt 0 ]
    # The stats show what happened.
    [ "$(stat_of 'd["retries"]')" -gt 0 ]
    [ "$(stat_of 'd["http_429"]')" -gt 0 ]
    stat_of 'd["rate_current"]' >/dev/null
}

@test "a submission refused with 429 is retried after Retry-After and lands once" {
    genfs_setup --fault burst_429=3
    genfs_mount -o config="$CONFIG"
    run genfs_submit test-image '{"prompt": "after the burst", "sim_duration_ms": 300}'
    assert_success
    id=$output
    [ -d "$MNT/test-image/$id" ]
    run sim_figures
    assert_equal "$(echo "$output" | sim_json 'd["tasks"]')" 1
    [ "$(stat_of 'd["http_429"]')" -ge 3 ]
    # A 429 with Retry-After is a pause, not a slowdown: the rate in force is the limit.
    run stat_of 'd["rate_current"] == d["rate_limit"]'
    assert_output True
}

@test "a submission answered 503 with Retry-After is retried until the provider takes it" {
    genfs_setup --fault error_503=1
    genfs_mount -o config="$CONFIG"
    ( sleep 1.5; sim_faults '{"error_503": 0}' >/dev/null ) &
    run genfs_submit test-image '{"prompt": "after the outage", "sim_duration_ms": 300}'
    assert_success
    [ -d "$MNT/test-image/$output" ]
    run sim_figures
    assert_equal "$(echo "$output" | sim_json 'd["tasks"]')" 1
}

@test "connection refused at submit is retried: the provider coming up late still gets the task once" {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sim_key_init
    base="$BATS_TEST_TMPDIR"
    MNT="$base/mnt" STATE_DIR="$base/state" CACHE_DIR="$base/cache"
    export MNT STATE_DIR CACHE_DIR
    mkdir -p "$MNT"
    SIM_URL="http://127.0.0.1:$port"
    export SIM_URL
    genfs_mount -o config="$CONFIG"
    genfs_submit test-image '{"prompt": "early bird", "sim_duration_ms": 300}' >"$base/id" &
    writer=$!
    sleep 1.5
    sim_start --listen "127.0.0.1:$port"
    timeout 60 tail --pid="$writer" -f /dev/null
    wait "$writer"
    id=$(cat "$base/id")
    [ -n "$id" ]
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    run sim_figures
    assert_equal "$(echo "$output" | sim_json 'd["tasks"]')" 1
}

@test "a submission hit by a 500 is not retried: EIO, and the log says the task may exist" {
    genfs_setup --fault error_500=1
    genfs_mount -o config="$CONFIG"
    run genfs_submit test-image '{"prompt": "x"}'
    assert_failure
    assert_output --partial "Input/output error"
    run grep -c "may exist" "$MNT/log"
    [ "$output" -ge 1 ]
    # What genfs did, and what the user should check: not "genfs retries it".
    run cat "$MNT/log"
    assert_output --partial "genfs did not send it again"
    assert_output --partial "adopt the task with mkdir"
    refute_output --partial "genfs retries it"
    run sim_figures
    assert_equal "$(echo "$output" | sim_json 'd["requests"]["submit"]')" 1
}

@test "malformed status answers never crash genfs and are logged once, not per poll" {
    genfs_setup
    genfs_mount -o config="$CONFIG"
    sim_faults '{"malformed_rate": 1}' >/dev/null
    # Submit answers are broken too while the switch is on: submit first.
    sim_faults '{"malformed_rate": 0}' >/dev/null
    : >"$BATS_TEST_TMPDIR/ids"
    for i in $(seq 1 10); do
        genfs_submit test-image "{\"prompt\": \"garbled $i\", \"sim_duration_ms\": 300}" >>"$BATS_TEST_TMPDIR/ids"
    done
    sim_faults '{"malformed_rate": 1}' >/dev/null
    before=$(sim_figures | sim_json 'd["requests"]["status"]')
    sleep 8
    kill -0 "$GENFS_PID"
    run cat "$MNT/test-image/$(head -1 "$BATS_TEST_TMPDIR/ids")/state"
    assert_success
    polls=$(( $(sim_figures | sim_json 'd["requests"]["status"]') - before ))
    lines=$(grep -c "status poll failed" "$MNT/log" || true)
    # seven kinds of broken body, each said once at most, whatever the number of polls
    [ "$polls" -ge 15 ]
    [ "$lines" -ge 1 ]
    [ "$lines" -le 7 ]
    sim_faults '{"malformed_rate": 0}' >/dev/null
    wait_until 90 all_final
    check_truth
}

@test "a hung provider does not wedge genfs: polls time out, the mount answers, tasks finish later" {
    genfs_setup
    genfs_mount -o config="$CONFIG" -o timeout=2
    id=$(genfs_submit test-image '{"prompt": "stuck", "sim_duration_ms": 500}')
    sim_faults '{"slow_rate": 1, "slow_ms": 4000}' >/dev/null
    sleep 3
    run timeout 5 ls "$MNT/test-image"
    assert_success
    run timeout 5 cat "$MNT/stats"
    assert_success
    sim_faults '{"slow_rate": 0}' >/dev/null
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    [ "$(stat_of 'd["transport_errors"]')" -gt 0 ]
}

@test "-o rate=2 holds: 6 tasks due every 100 ms make at most 2 requests a second (plus the bucket)" {
    genfs_setup
    cat >"$CONFIG" <<'JSON'
{"models": {"test-image": {"initial_ms": 100, "interval_ms": 100, "max_ms": 300000}}}
JSON
    t0=$(date +%s%3N)
    genfs_mount -o config="$CONFIG" -o rate=2 -o schedule=adaptive
    for i in 1 2 3 4 5 6; do
        genfs_submit test-image "{\"prompt\": \"rate $i\", \"sim_duration_ms\": 120000}" >/dev/null
    done
    sleep 8
    n=$(sim_figures | sim_json 'd["requests"]["submit"] + d["requests"]["status"]')
    secs=$((($(date +%s%3N) - t0 + 999) / 1000))
    echo "requests: $n in $secs s" >&3
    # Unlimited, these tasks alone would ask about 60 times a second.
    [ "$n" -le $((2 * secs + 2)) ] || fail "$n requests in $secs s at rate=2"
    [ "$n" -ge 8 ] || fail "only $n requests: the tasks were not polled"
    [ "$(stat_of 'd["rate_limit"]')" = 2 ]
}

@test "a provider that forgot the task (404 on every poll): failed with not_found, readers answered" {
    genfs_setup
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "forgotten", "sim_duration_ms": 600000}')
    [ -n "$id" ]
    wait_until 30 test -s "$MNT/test-image/$id/status.json"
    # The sim forgets every task: status answers 404 from now on.
    curl -s -X POST "$SIM_URL/_sim/reset" >/dev/null
    assert_equal "$(errno_of_read "$MNT/test-image/$id/result" 150)" EIO
    run cat "$MNT/test-image/$id/state"
    assert_output failed
    run cat "$MNT/test-image/$id/error"
    assert_output --partial "not_found:"
    assert_output --partial "no longer knows this task"
    # Bounded: a handful of polls, and none once it failed.
    polls=$(sim_figures | sim_json 'd["requests"]["status"]')
    [ "$polls" -le 8 ]
    sleep 3
    assert_equal "$(sim_figures | sim_json 'd["requests"]["status"]')" "$polls"
}

@test "every poll answered 500: the deadline still holds, readers get ETIMEDOUT" {
    genfs_setup
    cat >"$CONFIG" <<'JSON'
{"models": {"test-image": {"initial_ms": 300, "interval_ms": 500, "max_ms": 4000}}}
JSON
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "never answered", "sim_duration_ms": 600000}')
    [ -n "$id" ]
    sim_faults '{"error_500": 1}' >/dev/null
    assert_equal "$(errno_of_read "$MNT/test-image/$id/result" 150)" ETIMEDOUT
    run cat "$MNT/log"
    assert_output --partial "not done within the model's time limit"
    # Not failed: a late success is still possible, so slow polling goes on.
    run cat "$MNT/test-image/$id/state"
    refute_output failed
}

@test "five 429s with Retry-After on a submission: retried until taken, one task, no EAGAIN" {
    genfs_setup --fault burst_429=5 --fault burst_retry_after=1
    genfs_mount -o config="$CONFIG"
    run genfs_submit test-image '{"prompt": "patience", "sim_duration_ms": 300}'
    assert_success
    id=$output
    [ -d "$MNT/test-image/$id" ]
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 1
    assert_equal "$(sim_figures | sim_json 'd["responses"].get("429", 0)')" 5
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
}

@test "a submission refused with 429 past -o timeout: EAGAIN, and the log says nothing was submitted" {
    genfs_setup --fault burst_429=1000 --fault burst_retry_after=1
    genfs_mount -o config="$CONFIG",timeout=4
    run gfs write "$MNT/test-image/new" 'text:{"prompt": "never taken"}'
    assert_failure
    assert_output EAGAIN
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
    run cat "$MNT/log"
    assert_output --partial "nothing was submitted"
}

@test "a storm of 30 429s with Retry-After: 1 passes in about 30 s and leaves the rate at its limit" {
    genfs_setup --fault burst_429=30 --fault burst_retry_after=1
    genfs_mount -o config="$CONFIG"
    start=$SECONDS
    submit_many 5
    assert_equal "$(sort -u "$BATS_TEST_TMPDIR/ids" | wc -l)" 5
    for id in $(cat "$BATS_TEST_TMPDIR/ids"); do
        run timeout 150 cat "$MNT/test-image/$id/result"
        assert_success
    done
    took=$((SECONDS - start))
    echo "the storm and 5 tasks took $took s"
    # Each refusal costs its Retry-After, not ever longer waits (166 s before).
    [ "$took" -lt 120 ]
    assert_equal "$(sim_figures | sim_json 'd["responses"].get("429", 0)')" 30
    run stat_of 'd["rate_current"] == d["rate_limit"]'
    assert_output True
}
