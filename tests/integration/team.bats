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
    [ -z "${WATCHER:-}" ] || kill "$WATCHER" 2>/dev/null || true
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

# team_mount NAME [GENFS_ARGS...]: mount NAME on the shared database (given
# with -o store, or by the store key of the config TEAM_CONFIG when set).
team_mount() {
    local n=$1
    shift
    team_use "$n"
    mkdir -p "$MNT"
    [[ " ${TEAM[*]} " == *" $n "* ]] || TEAM+=("$n")
    local store=(-o "store=$PG_URL")
    [ -z "${TEAM_CONFIG:-}" ] || store=()
    genfs_mount -o config="${TEAM_CONFIG:-$CONFIG}" "${store[@]}" "$@" || return 1
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
    WATCHER=$!
    sleep 0.5
    id=$(on a genfs_submit test-image '{"prompt": "shared", "sim_duration_ms": 1500}')
    t0=$(date +%s%3N)
    wait_until 5 has_task b "$id" || fail "task $id never appeared on B"
    lag=$(($(date +%s%3N) - t0))
    echo "seen on B after $lag ms" >&3
    [ "$lag" -le 1000 ] || fail "B saw the task after $lag ms"
    grep_event() { grep -q "CREATE,ISDIR $id" "$BATS_TEST_TMPDIR/events"; }
    wait_until 5 grep_event || fail "no inotify event on B: $(cat "$BATS_TEST_TMPDIR/events")"
    kill "$WATCHER"
    # A blocked read on B is answered when A's poll ends the task.
    got=$(timeout 30 cat "$BATS_TEST_TMPDIR/b/mnt/test-image/$id/result")
    want=$(sim_task "$id" | sim_json 'd["result_urls"][0]')
    assert_equal "$got" "$want"
    # latest stays per mount: A's points at it, B has none.
    [ "$(readlink "$BATS_TEST_TMPDIR/a/mnt/test-image/latest")" = "$id" ]
    [ ! -e "$BATS_TEST_TMPDIR/b/mnt/test-image/latest" ]
    # A, which polled it, downloads its file; B lists it once A has it whole,
    # with its size, and downloads it into its own cache when it is read.
    listed_on_b() { [ -n "$(ls "$BATS_TEST_TMPDIR/b/mnt/test-image/$id/files")" ]; }
    wait_until 20 listed_on_b || fail "B never listed the files"
    [ -z "$(find "$BATS_TEST_TMPDIR/b/cache" -type f)" ] || fail "B downloaded before a read"
    f=$(ls "$BATS_TEST_TMPDIR/b/mnt/test-image/$id/files" | head -n1)
    [ "$(stat -c %s "$BATS_TEST_TMPDIR/b/mnt/test-image/$id/files/$f")" = \
        "$(stat -c %s "$BATS_TEST_TMPDIR/a/mnt/test-image/$id/files/$f")" ]
    cmp "$BATS_TEST_TMPDIR/b/mnt/test-image/$id/files/$f" "$BATS_TEST_TMPDIR/a/mnt/test-image/$id/files/$f"
    [ -n "$(find "$BATS_TEST_TMPDIR/b/cache" -type f)" ]
    # Only one mount polled it.
    run sim_figures
    assert_equal "$(echo "$output" | sim_json 'd["duplicate_submissions"]')" 0
}

# submit_n NAME N DURATION_MS: N tasks on mount NAME; their ids in $BATS_TEST_TMPDIR/ids
submit_n() {
    local n=$1 count=$2 ms=$3 i id
    for i in $(seq 1 "$count"); do
        id=$(on "$n" genfs_submit test-image "{\"prompt\": \"$n $i\", \"sim_duration_ms\": $ms}") ||
            return 1
        echo "$id" >>"$BATS_TEST_TMPDIR/ids"
    done
}

# all_final_on NAME: every task in ids ended, as mount NAME shows it.
all_final_on() {
    local id
    while read -r id; do
        case "$(cat "$BATS_TEST_TMPDIR/$1/mnt/test-image/$id/state" 2>/dev/null)" in
        success | failed) ;;
        *) return 1 ;;
        esac
    done <"$BATS_TEST_TMPDIR/ids"
}

# check_truth_on NAME: each task's state on NAME is the simulator's.
check_truth_on() {
    local id truth got
    sim_tasks >"$BATS_TEST_TMPDIR/sim.json"
    while read -r id; do
        truth=$(sim_json "[t for t in d if t['taskId']=='$id'][0]['final_state']" <"$BATS_TEST_TMPDIR/sim.json")
        got=$(cat "$BATS_TEST_TMPDIR/$1/mnt/test-image/$id/state")
        [ "$got" = "$truth" ] || fail "task $id on $1: $got, the simulator says $truth"
    done <"$BATS_TEST_TMPDIR/ids"
}

@test "kill -9 of A with 20 tasks in flight: B takes them over and finishes them, none submitted twice" {
    genfs_setup --seed 3
    team_mount a
    team_mount b
    submit_n a 20 8000
    wait_until 10 has_task b "$(tail -n1 "$BATS_TEST_TMPDIR/ids")"
    on a genfs_kill9
    TEAM_PID_a=
    on a genfs_unmount
    t0=$SECONDS
    wait_until 90 all_final_on b || fail "B did not finish A's tasks: $(cat "$BATS_TEST_TMPDIR/b/mnt/log")"
    echo "B finished A's tasks $((SECONDS - t0)) s after the kill" >&3
    check_truth_on b
    grep -q "took over" "$BATS_TEST_TMPDIR/b/mnt/log" || fail "B's log does not say it took over"
    run sim_figures
    assert_equal "$(echo "$output" | sim_json 'd["duplicate_submissions"]')" 0
    assert_equal "$(echo "$output" | sim_json 'd["tasks"]')" 20
    # A, mounted again, shows the tasks B finished, and its latest is its own.
    team_mount a
    all_final_on a
    check_truth_on a
    [ "$(readlink "$BATS_TEST_TMPDIR/a/mnt/test-image/latest")" = "$(tail -n1 "$BATS_TEST_TMPDIR/ids")" ]
    [ ! -e "$BATS_TEST_TMPDIR/b/mnt/test-image/latest" ]
}

@test "rmdir of a task on A forgets it on B too; a model made on B is on A" {
    genfs_setup
    team_mount a
    team_mount b
    id=$(on a genfs_submit test-image '{"prompt": "to forget", "sim_duration_ms": 300}')
    wait_until 10 state_is b "$id" success
    rm -rf "$BATS_TEST_TMPDIR/a/mnt/test-image/$id"
    # (B's kernel may keep a looked-up entry for its timeout: the listing is genfs's.)
    gone_on_b() { ! ls "$BATS_TEST_TMPDIR/b/mnt/test-image" | grep -qx "$id"; }
    wait_until 5 gone_on_b || fail "B still shows $id"
    mkdir "$BATS_TEST_TMPDIR/b/mnt/team-model"
    model_on_a() { ls "$BATS_TEST_TMPDIR/a/mnt" | grep -qx team-model; }
    wait_until 5 model_on_a || fail "the model made on B is not on A"
}

@test "the database restarted mid-run: nothing lost, tasks finish, both mounts agree" {
    genfs_setup --seed 5
    team_mount a
    team_mount b
    submit_n a 10 4000
    submit_n b 10 4000
    pg_stop_now
    sleep 3
    pg_start
    wait_until 90 all_final_on a || fail "A: not all final: $(cat "$BATS_TEST_TMPDIR/a/mnt/log")"
    wait_until 30 all_final_on b || fail "B: not all final: $(cat "$BATS_TEST_TMPDIR/b/mnt/log")"
    check_truth_on a
    check_truth_on b
    # The database holds every task, in its final state.
    [ "$(pg_psql "SELECT count(*) FROM genfs_tasks WHERE state IN ('success', 'failed')")" -eq 20 ]
    grep -q "is back" "$BATS_TEST_TMPDIR/a/mnt/log"
    run sim_figures
    assert_equal "$(echo "$output" | sim_json 'd["duplicate_submissions"]')" 0
    assert_equal "$(echo "$output" | sim_json 'd["tasks"]')" 20
}

@test "the database down: a write to new fails with EIO and a log line, nothing is sent; known tasks still read; it resumes after" {
    genfs_setup
    team_mount a
    id=$(on a genfs_submit test-image '{"prompt": "before", "sim_duration_ms": 300}')
    wait_until 10 state_is a "$id" success
    pg_stop_now
    run on a genfs_submit test-image '{"prompt": "while down", "sim_duration_ms": 300}'
    assert_failure
    python3 - "$BATS_TEST_TMPDIR/a/mnt/test-image/new" <<'PY'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b'{"prompt": "while down"}\n')
try:
    os.read(fd, 100)
except OSError as e:
    sys.exit(0 if e.errno == errno.EIO else 1)
sys.exit(2)
PY
    grep -q "cannot be reached.*nothing was submitted" "$BATS_TEST_TMPDIR/a/mnt/log"
    grep -q "unreachable" "$BATS_TEST_TMPDIR/a/mnt/log"
    [ "$(sim_figures | sim_json 'd["tasks"]')" -eq 1 ]
    # What is known is still served.
    [ "$(cat "$BATS_TEST_TMPDIR/a/mnt/test-image/$id/state")" = success ]
    cat "$BATS_TEST_TMPDIR/a/mnt/test-image/$id/result" >/dev/null
    pg_start
    submit_again() { on a genfs_submit test-image '{"prompt": "after", "sim_duration_ms": 300}' >/dev/null; }
    wait_until 20 submit_again
    [ "$(sim_figures | sim_json 'd["tasks"]')" -eq 2 ]
}

@test "a password in the connection string is refused at start and never logged; an unreachable database is refused" {
    genfs_setup
    team_use a
    mkdir -p "$MNT"
    run "$(genfs_bin)" -f -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" \
        -o "store=postgresql://genfs:hunter2secret@localhost/genfs" "$MNT"
    assert_failure
    assert_output --partial "pgpass"
    refute_output --partial "hunter2secret"
    # A database that does not answer at start: no mount, libpq's reason, one line.
    run "$(genfs_bin)" -f -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" \
        -o "store=postgresql:///genfs?host=$BATS_TEST_TMPDIR/nowhere&user=genfs" "$MNT"
    assert_equal "$status" 2
    assert_output --partial "cannot connect to the task database"
    refute_output --partial "serving what is known"
}

@test "three mounts share -o rate=3: together they stay under it, and a 429 seen by one slows the others" {
    genfs_setup
    cat >"$CONFIG" <<'JSON'
{"models": {"test-image": {"initial_ms": 100, "interval_ms": 100, "max_ms": 600000}}}
JSON
    t0=$(date +%s%3N)
    team_mount a -o rate=3 -o schedule=adaptive
    team_mount b -o rate=3 -o schedule=adaptive
    team_mount c -o rate=3 -o schedule=adaptive
    for n in a b c; do submit_n "$n" 3 300000; done
    sleep 10
    n=$(sim_figures | sim_json 'd["requests"]["submit"] + d["requests"]["status"]')
    secs=$((($(date +%s%3N) - t0 + 999) / 1000))
    echo "requests: $n in $secs s by three mounts at rate=3" >&3
    # Alone, each mount could make 3 a second: 9 together. Each bucket holds 3 at start.
    [ "$n" -le $((3 * secs + 9)) ] || fail "$n requests in $secs s: the rate is not shared"
    [ "$n" -ge $((secs)) ] || fail "only $n requests in $secs s: the tasks were not polled"
    # A 429 on whichever mount polls next is told to the others.
    sim_faults '{"burst_429": 2}' >/dev/null
    told() { grep -q "another mount of the store was refused with 429" "$BATS_TEST_TMPDIR/$1/mnt/log"; }
    told_any() { told a || told b || told c; }
    wait_until 20 told_any || fail "no mount heard of the 429"
}

@test "poll(2) on B wakes when A's poll moves the state, and B's events has the line (B's store from its config)" {
    genfs_setup
    team_mount a
    python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); c["store"] = sys.argv[2]; json.dump(c, open(sys.argv[3], "w"))' \
        "$CONFIG" "$PG_URL" "$BATS_TEST_TMPDIR/config-b.json"
    TEAM_CONFIG="$BATS_TEST_TMPDIR/config-b.json" team_mount b
    grep -q "tasks in PostgreSQL" "$BATS_TEST_TMPDIR/b/mnt/log" || fail "B is not on the database"
    exec {ev}<"$BATS_TEST_TMPDIR/b/mnt/events"
    # APIXO says waiting for the first stretch of a long task, then generating.
    id=$(on a genfs_submit test-image '{"prompt": "watched from b", "sim_duration_ms": 40000}')
    wait_until 10 has_task b "$id"
    wait_until 10 test -s "$BATS_TEST_TMPDIR/a/mnt/test-image/$id/status.json"
    run timeout 40 python3 "$GENFS_HELPERS_DIR/py/gfs.py" pollwait \
        "$BATS_TEST_TMPDIR/b/mnt/test-image/$id/state" 30
    assert_success
    assert_line "before: waiting"
    assert_line "after: generating"
    assert_line --regexp '^woke: yes '
    line_seen() { timeout 5 grep -m1 -q "test-image $id generating" <&"$ev"; }
    wait_until 10 line_seen || fail "B's events has no generating line for $id"
    exec {ev}<&-
}

@test "a submission recorded but never stored (a crash between sending and storing) is reported at the next start, and not sent" {
    genfs_setup
    team_mount a
    me=$(cat "$BATS_TEST_TMPDIR/a/state/mount-id")
    on a genfs_unmount
    pg_psql "INSERT INTO genfs_intents(mount, model, input) VALUES('$me', 'test-image', '{\"prompt\": \"lost\"}')"
    team_mount a
    grep -q "test-image: a submission sent at .* was not recorded before genfs stopped" \
        "$BATS_TEST_TMPDIR/a/mnt/log" || fail "no line in the log: $(cat "$BATS_TEST_TMPDIR/a/mnt/log")"
    [ "$(pg_psql 'SELECT count(*) FROM genfs_intents')" -eq 0 ]
    [ "$(sim_figures | sim_json 'd["tasks"]')" -eq 0 ]
}
