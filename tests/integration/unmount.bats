#!/usr/bin/env bats
# Issue 18 item 6: an unmount right after the work is done succeeds (genfs's own announcer never
# makes it busy); readers the user still has open keep the usual "busy".

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
}

teardown() {
    [ -z "${HOLD_PID:-}" ] || { kill "$HOLD_PID" 2>/dev/null; wait "$HOLD_PID" 2>/dev/null; } || true
    [ -z "${WATCH_PID:-}" ] || kill "$WATCH_PID" 2>/dev/null || true
    genfs_teardown
    [ -z "${PUB:-}" ] || rm -rf "$PUB"
    [ -z "${FUSE_DEV_MODE:-}" ] || chmod "$FUSE_DEV_MODE" /dev/fuse
}

as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# mount_as_nobody [WRAPPER...]: genfs mounted by nobody (through fusermount3), started
# through WRAPPER (default: setpriv to nobody); MNT, STATE_DIR, CACHE_DIR move to a
# directory nobody owns.
mount_as_nobody() {
    # A user mounts through /dev/fuse, which Debian makes 0666; some containers keep it 0600.
    if ! as_nobody test -r /dev/fuse -a -w /dev/fuse; then
        FUSE_DEV_MODE=$(stat -c %a /dev/fuse)
        chmod 666 /dev/fuse
    fi
    PUB=$(mktemp -d /tmp/genfs-test-um.XXXXXX)
    chmod 755 "$PUB"
    install -m 755 "$(genfs_bin)" "$PUB/genfs"
    install -d -o 65534 -g 65534 "$PUB/n"
    MNT="$PUB/n/mnt" STATE_DIR="$PUB/n/state" CACHE_DIR="$PUB/n/cache"
    as_nobody mkdir "$MNT"
    GENFS_LOG="$BATS_TEST_TMPDIR/genfs.log"
    local wrap=("$@")
    [ "${#wrap[@]}" -gt 0 ] || wrap=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    env -u GENFS_SIM_KEY HOME="$PUB/n" GENFS_API_KEY="$GENFS_SIM_KEY" "${wrap[@]}" "$PUB/genfs" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR,models=test-image" \
        -o log_level=debug "$MNT" >>"$GENFS_LOG" 2>&1 3>&- &
    GENFS_PID=$!
    wait_until 10 as_nobody test -e "$MNT/README" || fail "no mount: $(cat "$GENFS_LOG")"
}

# The announcer holds a descriptor of the mount's own file system (its private view).
announcer_holds_view() {
    local child dev
    child=$(pgrep -P "$GENFS_PID" -x genfs-announce) || return 1
    dev=$(python3 "$GENFS_HELPERS_DIR/py/devof.py" "$MNT")
    [ "$dev" != - ] || return 1
    python3 "$GENFS_HELPERS_DIR/py/devof.py" /proc/"$child"/fd/* | grep -qx "$dev"
}

# A task nobody submits is announced to nobody's inotify watcher on test-image/ (WATCH_PID).
nobody_sees_new_task() {
    as_nobody timeout 60 inotifywait -m -e create --format '%e|%f' "$MNT/test-image" \
        >"$BATS_TEST_TMPDIR/ev" 2>"$BATS_TEST_TMPDIR/ev.err" 3>&- &
    WATCH_PID=$!
    wait_until 10 grep -q "Watches established" "$BATS_TEST_TMPDIR/ev.err"
    id=$(as_nobody sh -c "exec 3<>'$MNT/test-image/new'; echo '{\"prompt\": \"nobody\"}' >&3; read -r id <&3; echo \$id")
    wait_until 10 grep -q "CREATE,ISDIR|$id" "$BATS_TEST_TMPDIR/ev"
}

@test "20 rounds of 12 short tasks, their results read, then one fusermount3 -u: never busy" {
    local round i busy=0 ids err
    for round in $(seq 1 20); do
        genfs_mount -o "config=$(genfs_fast_config)"
        ids=()
        for i in $(seq 1 12); do
            ids+=("$(genfs_submit test-image "{\"prompt\": \"round $round task $i\", \"sim_duration_ms\": $((20 * i)), \"sim_outputs\": 2}")")
        done
        for i in "${ids[@]}"; do
            timeout 60 cat "$MNT/test-image/$i/result" >/dev/null
        done
        # Once, as a user would: no retry.
        if ! err=$(fusermount3 -u "$MNT" 2>&1); then
            echo "round $round: $err" >&3
            [[ $err == *busy* ]] && busy=$((busy + 1))
        fi
        genfs_unmount || fail "round $round: genfs did not exit after the unmount"
        [ "$GENFS_EXIT_STATUS" -eq 0 ] || fail "round $round: genfs exited with $GENFS_EXIT_STATUS"
    done
    echo "busy in $busy of 20 rounds" >&3
    [ "$busy" -eq 0 ]
}

@test "the announcer keeps its own view of the mount open, and fusermount3 -u still succeeds at once" {
    genfs_mount -o "config=$(genfs_fast_config)"
    announcer_holds_view || fail "genfs-announce holds nothing of the mount's file system"
    run fusermount3 -u "$MNT"
    assert_success
    genfs_wait_exit 30 || fail "genfs still runs after the unmount: $(cat "$GENFS_LOG")"
    [ "$GENFS_EXIT_STATUS" -eq 0 ]
    grep -q "was unmounted: ending the inotify announcer" "$GENFS_LOG"
}

@test "non-root: the announcer's view comes through a user namespace, and fusermount3 -u succeeds at once" {
    mount_as_nobody
    # The announcer starts once the mount answers: its line may come a moment later.
    wait_until 10 grep -q "announcements go through a private view of the mount" "$GENFS_LOG"
    announcer_holds_view || fail "genfs-announce holds nothing of the mount's file system"
    # Announcements still reach a watcher (the kernel takes it for the same file system).
    nobody_sees_new_task
    run as_nobody fusermount3 -u "$MNT"
    assert_success
    genfs_wait_exit 30 || fail "genfs still runs after the unmount: $(cat "$GENFS_LOG")"
    [ "$GENFS_EXIT_STATUS" -eq 0 ]
}

@test "non-root without user namespaces: genfs says why, announces through the mount, and unmounts" {
    python3 "$GENFS_HELPERS_DIR/py/no_userns.py" 65534 true || skip "no seccomp filter here"
    mount_as_nobody python3 "$GENFS_HELPERS_DIR/py/no_userns.py" 65534
    wait_until 10 grep -q "announcements go through the mount itself (no private view of it: no user namespaces" "$GENFS_LOG" ||
        fail "no word of the fallback: $(cat "$GENFS_LOG")"
    nobody_sees_new_task
    # The old behaviour: an unmount that meets an announcement is busy and is run again.
    run as_nobody bash -c "$(declare -f genfs_fusermount_u); genfs_fusermount_u '$MNT'"
    assert_success
    genfs_wait_exit 30 || fail "genfs still runs after the unmount: $(cat "$GENFS_LOG")"
    [ "$GENFS_EXIT_STATUS" -eq 0 ]
}

@test "a reader the user has open keeps fusermount3 -u busy; once it is gone the unmount succeeds" {
    genfs_mount -o "config=$(genfs_fast_config)"
    id=$(genfs_submit test-image '{"prompt": "long", "sim_duration_ms": 600000}')
    cat "$MNT/test-image/$id/result" >/dev/null 2>&1 3>&- &
    HOLD_PID=$!
    sleep 0.5
    run fusermount3 -u "$MNT"
    assert_failure
    assert_output --partial "busy"
    genfs_answers
    kill "$HOLD_PID"
    wait "$HOLD_PID" 2>/dev/null || true
    HOLD_PID=
    run genfs_fusermount_u "$MNT"
    assert_success
    genfs_wait_exit 30
    [ "$GENFS_EXIT_STATUS" -eq 0 ]
}

@test "fusermount3 -uz with a reader waiting: the reader still gets its result, then genfs exits 0" {
    genfs_mount -o "config=$(genfs_fast_config)"
    id=$(genfs_submit test-image '{"prompt": "lazy", "sim_duration_ms": 3000}')
    cat "$MNT/test-image/$id/result" >"$BATS_TEST_TMPDIR/out" 2>&1 3>&- &
    HOLD_PID=$!
    sleep 0.5
    fusermount3 -uz "$MNT"
    ! genfs_is_mounted || false
    wait_until 60 pid_gone "$HOLD_PID"
    wait "$HOLD_PID"
    HOLD_PID=
    [ -s "$BATS_TEST_TMPDIR/out" ]
    genfs_wait_exit 30 || fail "genfs still runs after the last reader: $(cat "$GENFS_LOG")"
    [ "$GENFS_EXIT_STATUS" -eq 0 ]
}
