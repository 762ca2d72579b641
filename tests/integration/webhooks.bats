#!/usr/bin/env bats
# Issue 7: callbacks bring results within milliseconds; polling stays as the
# safety net; forged callbacks change nothing.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup
    CB_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    CB_URL="http://127.0.0.1:$CB_PORT/genfs-cb"
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    # Without callbacks these tasks would be polled late: the first poll after 20 s.
    cat >"$CONFIG" <<'JSON'
{"models": {"test-image": {"initial_ms": 20000, "interval_ms": 20000, "max_ms": 600000}}}
JSON
}

teardown() {
    genfs_teardown
}

mount_cb() {
    genfs_mount -o config="$CONFIG" -o "callback_url=$CB_URL,callback_listen=127.0.0.1:$CB_PORT" "$@"
}

# ms between the sim's true completion and genfs's success event
lag_of() {
    local id=$1 done_ms ev_ms
    done_ms=$(sim_task "$id" | sim_json 'd["complete_ms"]')
    ev_ms=$(awk -v id="$id" '$3 == id && $4 == "success" { printf "%d", $1 * 1000 }' "$BATS_TEST_TMPDIR/events")
    if [ -z "$ev_ms" ] || [ -z "$done_ms" ]; then
        echo "no success event for $id in events, or no completion time at the sim"
        return 1
    fi
    echo $((ev_ms - done_ms))
}

@test "a callback from the provider brings the result at once, with one status request" {
    mount_cb -o callback_poll=120
    timeout 60 cat "$MNT/events" >"$BATS_TEST_TMPDIR/events" &
    id=$(genfs_submit test-image '{"prompt": "call me", "sim_duration_ms": 1500}')
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    assert_output "$(sim_task "$id" | sim_json 'd["result_urls"][0]')"
    [ "$(sim_task "$id" | sim_json 'd["status_requests"]')" -le 2 ]
    sleep 0.3
    lag=$(lag_of "$id") || fail "$lag"
    echo "lag: $lag ms"
    # Polling would have taken 20 s; a callback takes milliseconds (wide bound for slow machines).
    [ "$lag" -lt 5000 ]
    run python3 -c "import json; print(json.load(open('$MNT/stats'))['callbacks']['accepted'])"
    assert_output 1
}

@test "forged callbacks are rejected and change nothing" {
    mount_cb -o callback_poll=120
    id=$(genfs_submit test-image '{"prompt": "wait for it", "sim_duration_ms": 30000}')
    before=$(sim_task "$id" | sim_json 'd["status_requests"]')
    run curl -s -o /dev/null -w '%{http_code}' -X POST "$CB_URL/0123456789abcdef0123456789abcdef" -d '{}'
    assert_output 404
    run curl -s -o /dev/null -w '%{http_code}' "$CB_URL/0123456789abcdef0123456789abcdef"
    assert_output 405
    run curl -s -o /dev/null -w '%{http_code}' -X POST "$CB_URL/../../etc/passwd" -d '{}'
    assert_output 404
    head -c 1100000 /dev/zero | tr '\0' a >"$BATS_TEST_TMPDIR/big"
    run curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$BATS_TEST_TMPDIR/big" "$CB_URL/0123456789abcdef0123456789abcdef"
    [ "$output" = 413 ] || [ "$output" = 000 ]
    sleep 0.5
    run cat "$MNT/test-image/$id/state"
    refute_output success
    assert_equal "$(sim_task "$id" | sim_json 'd["status_requests"]')" "$before"
    [ "$(python3 -c "import json; print(json.load(open('$MNT/stats'))['callbacks']['accepted'])")" -eq 0 ]
}

@test "a flood of bad callbacks is cut off per source and the mount stays responsive" {
    mount_cb -o callback_poll=120
    pids=()
    for i in $(seq 1 300); do
        curl -s -m 2 -o /dev/null -X POST "$CB_URL/ffffffffffffffffffffffffffffffff" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    # The first 20 of a source are answered (404), then 5 a second: the rest are dropped unanswered.
    read -r rejected dropped < <(python3 -c "import json; c = json.load(open('$MNT/stats'))['callbacks']; print(c['rejected'], c['dropped'])")
    echo "answered: $rejected, dropped: $dropped"
    [ "$rejected" -ge 20 ]
    [ "$rejected" -lt 150 ]
    [ "$dropped" -gt 0 ]
    [ $((rejected + dropped)) -ge 150 ]
    run timeout 5 ls "$MNT/test-image"
    assert_success
    id=$(genfs_submit test-image '{"prompt": "still here", "sim_duration_ms": 500}')
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
}

@test "lost callbacks: the safety polls still bring the result" {
    sim_faults '{"lost_callback_rate": 1}' >/dev/null
    mount_cb -o callback_poll=2
    id=$(genfs_submit test-image '{"prompt": "lost", "sim_duration_ms": 500}')
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    run sim_figures
    [ "$(echo "$output" | sim_json 'd["requests"]["callback_lost"]')" -ge 1 ]
}

@test "callback_poll from the config file sets the safety polls; -o callback_poll wins over it" {
    sim_faults '{"lost_callback_rate": 1}' >/dev/null
    cat >"$CONFIG" <<'JSON'
{"callback_poll": 2, "models": {"test-image": {"initial_ms": 20000, "interval_ms": 20000, "max_ms": 600000}}}
JSON
    mount_cb
    id=$(genfs_submit test-image '{"prompt": "lost, config", "sim_duration_ms": 500}')
    # The default (60 s) would first poll after 54 s at the earliest.
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    genfs_unmount
    mount_cb -o callback_poll=120
    id=$(genfs_submit test-image '{"prompt": "lost, command line", "sim_duration_ms": 500}')
    sleep 6
    run cat "$MNT/test-image/$id/state"
    refute_output success
    assert_equal "$(sim_task "$id" | sim_json 'd["status_requests"]')" 0
}

@test "a restart between submit and callback: the stored token still works" {
    mount_cb -o callback_poll=120
    id=$(genfs_submit test-image '{"prompt": "across restarts", "sim_duration_ms": 4000}')
    genfs_unmount
    mount_cb -o callback_poll=120
    timeout 60 cat "$MNT/events" >"$BATS_TEST_TMPDIR/events" &
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    sleep 0.3
    lag=$(lag_of "$id") || fail "$lag"
    echo "lag: $lag ms"
    [ "$lag" -lt 5000 ]
}

@test "callback mode needs both settings: one alone is refused at start" {
    run timeout 20 env GENFS_API_KEY="$GENFS_SIM_KEY" "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,callback_url=$CB_URL" "$MNT"
    assert_equal "$status" 2
    assert_output --partial "callback_listen"
}
