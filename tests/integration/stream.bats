#!/usr/bin/env bats
# Issue 20: fal's status stream. genfs follows each pending request's
# GET .../requests/ID/status/stream (server-sent events) and learns the end
# from it, one status request per task; a stream cut mid-way, or a provider
# that does not serve streams, falls back to the schedule's polls.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

MODEL=fal-ai/test-image

teardown() {
    genfs_teardown
}

# stream_setup INITIAL_MS [SIM ARGS...]: the sim speaking fal, genfs with the fal profile whose
# first poll comes INITIAL_MS after submission (then every 300 ms).
stream_setup() {
    local initial=$1
    shift
    genfs_setup --protocol fal "$@"
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    printf '{"models": {"%s": {"initial_ms": %s, "interval_ms": 300, "max_ms": 600000}}}\n' \
        "$MODEL" "$initial" >"$CONFIG"
    GENFS_MODELS=$MODEL genfs_mount -o "config=$CONFIG,provider=${PROVIDER:-fal}"
}

figure() {
    sim_figures | python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

# status_requests ID: what the sim counted for the task (polls and streams).
status_requests() {
    sim_task "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status_requests"])'
}

streams_open_is() {
    [ "$(figure 'd["streams_open"]')" = "$1" ]
}

log_has() {
    grep -q "$1" "$MNT/log"
}

@test "stream: completion known from the stream, one status request per task, blocked cat answered" {
    # The schedule's first poll would come after 10 minutes: only the stream can tell the end.
    stream_setup 600000
    local ids=() pids=() i
    for i in 1 2 3 4; do
        ids+=("$(genfs_submit "$MODEL" "{\"prompt\": \"stream $i\", \"sim_duration_ms\": $((800 * i))}")")
    done
    for i in 0 1 2 3; do
        timeout 120 cat "$MNT/$MODEL/${ids[$i]}/result" >"$BATS_TEST_TMPDIR/result.$i" &
        pids+=($!)
    done
    for i in 0 1 2 3; do
        wait "${pids[$i]}"
        grep -q "/media/${ids[$i]}/" "$BATS_TEST_TMPDIR/result.$i"
        assert_equal "$(cat "$MNT/$MODEL/${ids[$i]}/state")" success
        assert_equal "$(status_requests "${ids[$i]}")" 1
    done
    assert_equal "$(figure 'd["requests"]["status_stream"]')" 4
    assert_equal "$(figure 'd["requests"]["status"]')" 4
    # genfs counts each stream as one status request too, beside each result request.
    assert_equal "$(figure 'd["requests"]["result"]')" 4
    assert_equal "$(genfs_stats_get 'd["requests"]["status"]')" 8
    # Each stream ended with its task.
    wait_until 30 streams_open_is 0
}

@test "stream: after a remount the pending task's stream is opened again and brings the end" {
    stream_setup 600000
    id=$(genfs_submit "$MODEL" '{"prompt": "across a remount", "sim_duration_ms": 6000}')
    wait_until 30 streams_open_is 1
    genfs_unmount
    GENFS_MODELS=$MODEL genfs_mount -o "config=$CONFIG,provider=fal"
    run timeout 120 cat "$MNT/$MODEL/$id/result"
    assert_success
    assert_output --partial "/media/"
    # One stream per mount, no poll (the first would come after 10 minutes).
    assert_equal "$(status_requests "$id")" 2
    assert_equal "$(figure 'd["requests"]["status_stream"]')" 2
}

@test "stream: a stream cut mid-way falls back to polling and the task still finishes" {
    stream_setup 200 --fault stream_cut=1000
    id=$(genfs_submit "$MODEL" '{"prompt": "cut", "sim_duration_ms": 4000}')
    run timeout 120 cat "$MNT/$MODEL/$id/result"
    assert_success
    assert_output --partial "/media/"
    assert_equal "$(cat "$MNT/$MODEL/$id/state")" success
    cuts=$(figure 'd["faults_injected"]["stream_cut"]')
    [ "$cuts" -ge 1 ] && [ "$cuts" -le 3 ]
    # Polls answered what the cut streams could not.
    [ "$(status_requests "$id")" -gt "$cuts" ]
    wait_until 10 log_has "status stream ended before the task did"
}

@test "stream: a 429 on the stream slows the rate as a poll's would, a 500 backs off, the task ends" {
    stream_setup 200 --fault stream_429=1 --fault stream_500=1
    id=$(genfs_submit "$MODEL" '{"prompt": "refused streams", "sim_duration_ms": 8000}')
    run timeout 120 cat "$MNT/$MODEL/$id/result"
    assert_success
    assert_output --partial "/media/"
    assert_equal "$(figure 'd["faults_injected"]["stream_429"]')" 1
    assert_equal "$(figure 'd["faults_injected"]["stream_500"]')" 1
    [ "$(genfs_stats_get 'd["http_429"]')" -ge 1 ]
    # The third stream was served and brought the end.
    assert_equal "$(figure 'd["requests"]["status_stream"]')" 3
    assert_equal "$(cat "$MNT/$MODEL/$id/state")" success
}

@test "stream: a provider that serves no stream is polled, and streams are turned off" {
    stream_setup 200 --fault stream_off=1
    local ids=() i
    for i in 1 2 3 4; do
        ids+=("$(genfs_submit "$MODEL" "{\"prompt\": \"off $i\", \"sim_duration_ms\": 1500}")")
    done
    for i in 0 1 2 3; do
        run timeout 120 cat "$MNT/$MODEL/${ids[$i]}/result"
        assert_success
        assert_output --partial "/media/"
    done
    assert_equal "$(figure 'd["requests"]["status_stream"]')" 0
    wait_until 10 log_has "its status stream answers HTTP 404"
    # Turned off: a later task is not tried with a stream at all.
    other=$(figure 'd["requests"]["other"]')
    id=$(genfs_submit "$MODEL" '{"prompt": "after", "sim_duration_ms": 500}')
    run timeout 120 cat "$MNT/$MODEL/$id/result"
    assert_success
    assert_equal "$(figure 'd["requests"]["other"]')" "$other"
}

@test "stream: at most max_open streams at once, the other tasks polled" {
    PROVIDER="$BATS_TEST_TMPDIR/fal2.json"
    python3 - "$GENFS_REPO_ROOT/profiles/fal.json" >"$PROVIDER" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["stream"]["max_open"] = 2
print(json.dumps(p))
PY
    stream_setup 200
    local ids=() i
    for i in 1 2 3 4 5 6; do
        ids+=("$(genfs_submit "$MODEL" "{\"prompt\": \"bounded $i\", \"sim_duration_ms\": 6000}")")
    done
    for i in 0 1 2 3 4 5; do
        run timeout 120 cat "$MNT/$MODEL/${ids[$i]}/result"
        assert_success
    done
    assert_equal "$(figure 'd["streams_open_max"]')" 2
    [ "$(figure 'd["requests"]["status"]')" -gt "$(figure 'd["requests"]["status_stream"]')" ]
}
