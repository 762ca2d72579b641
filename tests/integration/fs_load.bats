#!/usr/bin/env bats
# Many tasks at once (SPEC 3, 4): 200 concurrent writers, every task reaches the sim's result,
# no duplicate submissions, and genfs's stats add up with the sim's own figures.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
}

teardown() {
    genfs_teardown
}

sim_tasks_file() {
    sim_curl -f "$SIM_URL/_sim/tasks?sha256=0" >"$BATS_TEST_TMPDIR/sim-tasks.json"
}

# true once every task in MNT/MODEL is final and the tasks counted in stats are N
all_final() {
    local model=$1 n=$2
    genfs_stats_get "d['tasks']['success'] + d['tasks']['failed'] == $n and d['queue_depth'] == 0" |
        grep -qx true
}

@test "200 tasks written at once all reach success with the sim's URLs; 200 submits, no duplicates" {
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive,rate=200"
    mkdir "$BATS_TEST_TMPDIR/ids"
    pids=()
    for i in $(seq 1 200); do
        (genfs_submit test-image "{\"prompt\": \"crowd member $i\", \"sim_duration_ms\": $((1000 + i * 10))}" \
            >"$BATS_TEST_TMPDIR/ids/$i") 3>&- &
        pids+=($!)
    done
    failed=0
    for p in "${pids[@]}"; do
        wait "$p" || failed=$((failed + 1))
    done
    [ "$failed" -eq 0 ]
    # 200 distinct ids, each a directory.
    run bash -c "cat '$BATS_TEST_TMPDIR'/ids/* | sort -u | grep -c ."
    assert_output 200
    run bash -c "ls '$MNT/test-image' | grep -vx -e new -e latest -e defaults.json -e request.json | wc -l"
    assert_output 200
    wait_until 60 all_final test-image 200
    sim_tasks_file
    run python3 "$GENFS_HELPERS_DIR/py/compare_results.py" "$MNT" test-image \
        "$BATS_TEST_TMPDIR/sim-tasks.json" "$BATS_TEST_TMPDIR"/ids/*
    assert_success
    assert_output "checked 200"
    run sim_figures
    assert_success
    figs=$output
    run sim_json 'd["duplicate_submissions"]' <<<"$figs"
    assert_output 0
    run sim_json 'd["requests"]["submit"]' <<<"$figs"
    assert_output 200
    run sim_json 'd["tasks"]' <<<"$figs"
    assert_output 200
    run genfs_stats_get 'd["tasks"]["success"]'
    assert_output 200
}

@test "stats is JSON whose figures add up with the sim's once things are quiet" {
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive,rate=100"
    for i in $(seq 1 10); do
        genfs_submit test-image "{\"prompt\": \"count me $i\", \"sim_duration_ms\": $((2000 + i * 300))}" >/dev/null
    done
    genfs_submit test-audio '{"prompt": "and me", "sim_duration_ms": 3000, "sim_outcome": "failed"}' >/dev/null
    # One refused by the provider: it still counts as a submit request.
    run gfs write "$MNT/test-image/new" 'text:{"prompt": "x", "sim_credits": "none"}'
    assert_output EDQUOT
    wait_until 60 all_final test-image 11
    sleep 0.5
    run python3 - "$MNT/stats" "$SIM_URL" <<'PY'
import json, sys, urllib.request
with open(sys.argv[1]) as f:
    g = json.loads(f.read())
s = json.load(urllib.request.urlopen(sys.argv[2] + "/_sim/figures"))
for k in ("waiting", "queuing", "generating", "success", "failed"):
    assert k in g["tasks"], "tasks." + k + " missing"
print("tasks", g["tasks"]["success"], g["tasks"]["failed"],
      g["tasks"]["waiting"] + g["tasks"]["queuing"] + g["tasks"]["generating"])
print("submit", g["requests"]["submit"], s["requests"]["submit"])
print("status_diff_ok", abs(g["requests"]["status"] - s["requests"]["status"]) <= 1,
      g["requests"]["status"], s["requests"]["status"])
print("queue_depth", g["queue_depth"])
PY
    assert_success
    assert_line "tasks 10 1 0"
    assert_line "submit 12 12"
    assert_line --regexp '^status_diff_ok True '
    assert_line "queue_depth 0"
}
