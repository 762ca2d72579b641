#!/usr/bin/env bats
# Issue 12: file watchers (inotifywait) see real events on the mount.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    cat >"$CONFIG" <<'JSON'
{"models": {"test-image": {"initial_ms": 200, "interval_ms": 300, "max_ms": 600000}}}
JSON
    EV="$BATS_TEST_TMPDIR/events.log"
}

teardown() {
    [ -n "${WATCH_PID:-}" ] && kill "$WATCH_PID" 2>/dev/null
    genfs_teardown
    [ -z "${PUB:-}" ] || rm -rf "$PUB"
    [ -z "${FUSE_DEV_MODE:-}" ] || chmod "$FUSE_DEV_MODE" /dev/fuse
}

as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# watch PATH [inotifywait args...]: start a watcher in the background.
watch() {
    local path=$1
    shift
    timeout 60 inotifywait -m "$@" --format '%w|%e|%f' "$path" >"$EV" 2>"$EV.err" 3>&- &
    WATCH_PID=$!
    wait_until 10 grep -q "Watches established" "$EV.err"
}

saw() { # saw PATTERN: the event log has a line matching PATTERN
    grep -qE "$1" "$EV"
}

@test "a watcher of the model dir sees CREATE,ISDIR for a new task before the write returns" {
    genfs_mount -o config="$CONFIG"
    watch "$MNT/test-image" -e create
    id=$(genfs_submit test-image '{"prompt": "seen", "sim_duration_ms": 30000}')
    # The write returned after the announcement: the event is already there.
    wait_until 5 saw "\|CREATE,ISDIR\|$id$"
    run cat "$EV"
    assert_output --partial "CREATE,ISDIR|$id"
    assert_output --partial "CREATE|latest"
}

@test "a watcher of a task dir sees MODIFY and CLOSE_WRITE on state, result and error when it ends" {
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "watch state", "sim_duration_ms": 2000}')
    watch "$MNT/test-image/$id" -e modify -e close_write
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    wait_until 10 saw "\|CLOSE_WRITE,CLOSE\|error$"
    run cat "$EV"
    assert_output --partial "MODIFY|state"
    assert_output --partial "CLOSE_WRITE,CLOSE|state"
    assert_output --partial "CLOSE_WRITE,CLOSE|result"
    assert_output --partial "CLOSE_WRITE,CLOSE|error"
}

@test "a watcher of a single state file sees each state change" {
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "one file", "sim_duration_ms": 3000}')
    timeout 60 inotifywait -m -e close_write --format '%e' "$MNT/test-image/$id/state" >"$EV" 2>"$EV.err" 3>&- &
    WATCH_PID=$!
    wait_until 10 grep -q "Watches established" "$EV.err"
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    wait_until 10 bash -c "[ \$(grep -c CLOSE_WRITE '$EV') -ge 1 ]"
    [ "$(grep -c CLOSE_WRITE "$EV")" -ge 1 ]
    run cat "$MNT/test-image/$id/state"
    assert_output success
}

@test "inotifywait -m -r on the mount sees a task appear, end, and its files arrive whole" {
    genfs_mount -o config="$CONFIG"
    watch "$MNT" -r -e create -e close_write
    # inotifywait -r watches files/ only once it has read files/'s CREATE: held back until then
    # (the first downloads fail), a local download could otherwise finish before that watch.
    sim_faults '{"media_error_rate": 1}' >/dev/null
    id=$(genfs_submit test-image '{"prompt": "everything", "sim_duration_ms": 1000, "sim_outputs": 2}')
    wait_until 60 saw "$id/\|CREATE,ISDIR\|files$"
    sleep 0.5
    sim_faults '{"media_error_rate": 0}' >/dev/null
    # Each file retries on its own backoff: either may land first.
    wait_until 60 saw "files/\|CLOSE_WRITE,CLOSE\|1.png$"
    wait_until 60 saw "files/\|CLOSE_WRITE,CLOSE\|0.png$"
    run cat "$EV"
    assert_output --partial "test-image/|CREATE,ISDIR|$id"
    assert_output --partial "$id/|CLOSE_WRITE,CLOSE|state"
    assert_output --partial "$id/|CREATE,ISDIR|files"
    assert_output --partial "files/|CREATE|0.png"
    assert_output --partial "files/|CLOSE_WRITE,CLOSE|0.png"
    # Whole when announced: the bytes match the simulator's.
    want=$(sim_task "$id" | sim_json 'd["media_sha256"][0]')
    got=$(sha256sum "$MNT/test-image/$id/files/0.png" | cut -d' ' -f1)
    assert_equal "$got" "$want"
}

@test "users still cannot write to state or result" {
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "read only", "sim_duration_ms": 300}')
    run bash -c "echo hacked > '$MNT/test-image/$id/state'"
    assert_failure
    assert_output --partial "Permission denied"
    run bash -c "echo hacked > '$MNT/test-image/$id/result'"
    assert_failure
    run mkdir "$MNT/test-image/$id/files2"
    assert_failure
}

@test "-o notify=off: no events, everything else works" {
    genfs_mount -o config="$CONFIG" -o notify=off
    watch "$MNT/test-image" -e create
    id=$(genfs_submit test-image '{"prompt": "quiet", "sim_duration_ms": 300}')
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    sleep 1
    ! saw "CREATE,ISDIR" || false
}

@test "unmount with announcements queued is clean" {
    genfs_mount -o config="$CONFIG"
    watch "$MNT" -r -e create -e close_write
    for i in $(seq 1 30); do
        genfs_submit test-image "{\"prompt\": \"burst $i\", \"sim_duration_ms\": 300}" >/dev/null
    done
    genfs_unmount
    [ "$GENFS_EXIT_STATUS" -eq 0 ]
    ! genfs_is_mounted || false
}

@test "announcements come from a child process holding nothing of genfs's; kill -9 mid-stream leaves no hung mount" {
    genfs_mount -o config="$CONFIG"
    for round in 1 2 3 4; do
        child=$(pgrep -P "$GENFS_PID" -x genfs-announce)
        [ -n "$child" ] || fail "round $round: no genfs-announce child of $GENFS_PID"
        # Not /dev/fuse, the database or the state_dir lock: only stdio and its socket.
        run bash -c "ls -l /proc/$child/fd | grep -E '/dev/fuse|$STATE_DIR'"
        assert_failure
        # A stream of announcements: tasks ending one after another.
        for i in $(seq 1 20); do
            genfs_submit test-image "{\"prompt\": \"round $round task $i\", \"sim_duration_ms\": $((i * 40))}" >/dev/null
        done
        sleep "0.$((RANDOM % 9 + 1))"
        genfs_kill9
        run timeout 10 stat "$MNT"
        assert_failure
        assert_output --partial "Transport endpoint is not connected"
        wait_until 10 pid_gone "$child"
        genfs_mount -o config="$CONFIG"
    done
    # What was submitted is all still there after four crashes.
    run bash -c "find '$MNT/test-image' -mindepth 1 -maxdepth 1 -type d | wc -l"
    assert_output 80
}

@test "a non-root mount with default_permissions: ATTRIB on state, and files/ and its files still appear" {
    # The kernel checks modes itself here, for a user without root's override: a mount by
    # nobody, everything done as nobody (without allow_other no one else may look).
    # A user mounts through /dev/fuse, which Debian makes 0666; some containers keep it 0600.
    if ! as_nobody test -r /dev/fuse -a -w /dev/fuse; then
        FUSE_DEV_MODE=$(stat -c %a /dev/fuse)
        chmod 666 /dev/fuse
    fi
    PUB=$(mktemp -d /tmp/genfs-test-dp.XXXXXX)
    chmod 755 "$PUB"
    install -m 755 "$(genfs_bin)" "$PUB/genfs"
    install -d -o 65534 -g 65534 "$PUB/n"
    MNT="$PUB/n/mnt" STATE_DIR="$PUB/n/state" CACHE_DIR="$PUB/n/cache"
    as_nobody mkdir "$MNT"
    cp "$CONFIG" "$PUB/config.json"
    chmod 644 "$PUB/config.json"
    GENFS_LOG="$BATS_TEST_TMPDIR/genfs.log"
    env -u GENFS_SIM_KEY GENFS_API_KEY="$GENFS_SIM_KEY" setpriv --reuid=65534 --regid=65534 \
        --clear-groups "$PUB/genfs" -f -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" \
        -o "models=test-image,config=$PUB/config.json,default_permissions" "$MNT" >>"$GENFS_LOG" 2>&1 3>&- &
    GENFS_PID=$!
    wait_until 10 as_nobody test -e "$MNT/README" || fail "no mount: $(cat "$GENFS_LOG")"
    as_nobody timeout 60 inotifywait -m -r -e create -e close_write -e attrib --format '%w|%e|%f' \
        "$MNT/test-image" >"$EV" 2>"$EV.err" 3>&- &
    WATCH_PID=$!
    wait_until 10 grep -q "Watches established" "$EV.err"
    sim_faults '{"media_error_rate": 1}' >/dev/null # held back until files/ is watched (above)
    id=$(as_nobody sh -c "exec 3<>'$MNT/test-image/new'; echo '{\"prompt\": \"as nobody\", \"sim_duration_ms\": 1000}' >&3; read -r id <&3; echo \$id")
    [ -n "$id" ]
    run as_nobody timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    wait_until 30 saw "$id/\|CREATE,ISDIR\|files$" || fail "events: $(cat "$EV"; grep -i announce "$GENFS_LOG" | head -5)"
    sleep 0.5
    sim_faults '{"media_error_rate": 0}' >/dev/null
    wait_until 30 saw "files/\|CLOSE_WRITE,CLOSE\|0.png$" || fail "events: $(cat "$EV"; grep -i announce "$GENFS_LOG" | head -5)"
    run cat "$EV"
    assert_output --partial "test-image/|CREATE,ISDIR|$id"
    assert_output --partial "$id/|ATTRIB|state"
    assert_output --partial "$id/|CREATE,ISDIR|files"
    assert_output --partial "files/|CREATE|0.png"
    # Modes stay honest to users: state is read-only, and no one but the notifier makes dirs.
    run as_nobody sh -c "echo hacked > '$MNT/test-image/$id/state'"
    assert_failure
    run as_nobody mkdir "$MNT/test-image/$id/mine"
    assert_failure
    assert_equal "$(as_nobody cat "$MNT/test-image/$id/state")" success
}
