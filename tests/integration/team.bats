#!/usr/bin/env bats
# Team mounts (issue 21): two or three genfs mounts on this machine, standing
# in for workstations, share one private PostgreSQL and one genfs-sim.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'
load 'pg_helpers'

setup() {
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    cat >"$CONFIG" <<'JSON'
{"models": {"test-image": {"initial_ms": 200, "interval_ms": 300, "max_ms": 600000}}}
JSON
    TEAM=()
    pg_start
}

teardown() {
    local n
    for n in "${TEAM[@]}"; do
        team_use "$n"
        genfs_unmount || true
    done
    MNT=
    sim_stop 2>/dev/null || true
    pg_teardown
}

# team_use NAME: the genfs helpers act on mount NAME (MNT, STATE_DIR, GENFS_PID...).
team_use() {
    local base="$BATS_TEST_TMPDIR/$1"
    MNT="$base/mnt" STATE_DIR="$base/state" CACHE_DIR="$base/cache"
    local pidvar="TEAM_PID_$1"
    GENFS_PID="${!pidvar:-}"
    export MNT STATE_DIR CACHE_DIR GENFS_PID
}

# team_mount NAME [GENFS_ARGS...]: mount NAME on the shared database.
team_mount() {
    local n=$1
    shift
    team_use "$n"
    mkdir -p "$MNT"
    [[ " ${TEAM[*]} " == *" $n "* ]] || TEAM+=("$n")
    genfs_mount -o config="$CONFIG" -o "store=$PG_URL" "$@" || return 1
    printf -v "TEAM_PID_$n" '%s' "$GENFS_PID"
}

# on NAME CMD...: run CMD with the helpers pointed at mount NAME.
on() {
    local n=$1
    shift
    team_use "$n"
    "$@"
}

has_task() {
    [ -d "$BATS_TEST_TMPDIR/$1/mnt/test-image/$2" ]
}

state_is() {
    [ "$(cat "$BATS_TEST_TMPDIR/$1/mnt/test-image/$2/state" 2>/dev/null)" = "$3" ]
}

@test "a task submitted on A is on B within a second, with an inotify event there, and B reads its result" {
    genfs_setup
    team_mount a
    team_mount b
    inotifywait -q -m -e create --format '%e %f' "$BATS_TEST_TMPDIR/b/mnt/test-image" \
        >"$BATS_TEST_TMPDIR/events" 2>/dev/null 3>&- &
    watcher=$!
    sleep 0.5
    id=$(on a genfs_submit test-image '{"prompt": "shared", "sim_duration_ms": 1500}')
    t0=$(date +%s%3N)
    wait_until 5 has_task b "$id" || fail "task $id never appeared on B"
    lag=$(($(date +%s%3N) - t0))
    echo "seen on B after $lag ms" >&3
    [ "$lag" -le 1000 ] || fail "B saw the task after $lag ms"
    grep_event() { grep -q "CREATE,ISDIR $id" "$BATS_TEST_TMPDIR/events"; }
    wait_until 5 grep_event || fail "no inotify event on B: $(cat "$BATS_TEST_TMPDIR/events")"
    kill "$watcher"
    # A blocked read on B is answered when A's poll ends the task.
    got=$(timeout 30 cat "$BATS_TEST_TMPDIR/b/mnt/test-image/$id/result")
    want=$(sim_task "$id" | sim_json 'd["result_urls"][0]')
    assert_equal "$got" "$want"
    # latest stays per mount: A's points at it, B has none.
    [ "$(readlink "$BATS_TEST_TMPDIR/a/mnt/test-image/latest")" = "$id" ]
    [ ! -e "$BATS_TEST_TMPDIR/b/mnt/test-image/latest" ]
    # B downloads the file into its own cache.
    cmp <(cat "$BATS_TEST_TMPDIR/b/mnt/test-image/$id/files/"*) <(cat "$BATS_TEST_TMPDIR/a/mnt/test-image/$id/files/"*)
    [ -n "$(find "$BATS_TEST_TMPDIR/b/cache" -type f)" ]
    # Only one mount polled it.
    run sim_figures
    assert_equal "$(echo "$output" | sim_json 'd["duplicate_submissions"]')" 0
}
