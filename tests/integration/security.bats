#!/usr/bin/env bats
# Issue 10: secrets and access, and bad input from the network.
#  - the API key: never in ps, /proc/PID/cmdline, the log, stats, any file of the mount, the
#    database or the cache; no core dumps; other users cannot read the process
#  - access: without allow_other other users get EACCES; the state and cache are private
#  - a malicious provider (tests/integration/py/evil_provider.py): huge and deeply nested JSON,
#    slow-loris bodies, gigantic Content-Length, result URLs to file:// and to other local
#    services, API redirects, endless media, key echoes, unsafe task ids. genfs stays up, its
#    memory stays bounded, the task's outcome and the log are clear.
# What each test shows, with measured figures: docs/security.md.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

bats_require_minimum_version 1.5.0

setup() {
    EVIL_PID=
    PUB=
}

teardown() {
    genfs_teardown
    if [ -n "${EVIL_PID:-}" ]; then
        kill "$EVIL_PID" 2>/dev/null || true
        wait "$EVIL_PID" 2>/dev/null || true
        EVIL_PID=
    fi
    if [ -n "${PUB:-}" ]; then
        rm -rf "$PUB" 2>/dev/null || true
    fi
}

as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# A place other users can reach, for the tests that involve a second uid (BATS_TEST_TMPDIR is
# private, so without this a refusal would come from the path, not from FUSE).
public_dirs() {
    PUB=$(mktemp -d /tmp/genfs-test-sec.XXXXXX)
    chmod 755 "$PUB"
    MNT="$PUB/mnt" STATE_DIR="$PUB/state" CACHE_DIR="$PUB/cache"
    mkdir -p "$MNT"
    export MNT STATE_DIR CACHE_DIR
}

# Mounts like genfs_mount, but with an environment holding the key only as GENFS_API_KEY (the
# test harness's own GENFS_SIM_KEY would otherwise sit in genfs's environment too).
sec_mount() {
    GENFS_LOG="$BATS_TEST_TMPDIR/genfs.log"
    export GENFS_LOG
    env -u GENFS_SIM_KEY GENFS_API_KEY="$GENFS_SIM_KEY" "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR,models=${GENFS_MODELS:-test-image:test-audio:test-video}" \
        "$@" "$MNT" >>"$GENFS_LOG" 2>&1 3>&- &
    GENFS_PID=$!
    export GENFS_PID
    wait_until 10 test -e "$MNT/README" || {
        cat "$GENFS_LOG" >&2
        return 1
    }
}

fast() {
    printf 'config=%s,schedule=adaptive' "$(genfs_fast_config)"
}

rss_kib() {
    awk '/^VmRSS/ {print $2}' "/proc/$GENFS_PID/status"
}

hwm_kib() {
    awk '/^VmHWM/ {print $2}' "/proc/$GENFS_PID/status"
}

# The mount answers at once (a FUSE thread is free, nothing wedged).
mount_answers() {
    timeout 5 ls "$MNT" >/dev/null && timeout 5 cat "$MNT/stats" >/dev/null
}

# ---- the evil provider ----

evil_start() {
    local dir="$BATS_TEST_TMPDIR"
    rm -f "$dir/evil.port" "$dir/evil.side"
    python3 "$GENFS_HELPERS_DIR/py/evil_provider.py" --port-file "$dir/evil.port" \
        --side-port-file "$dir/evil.side" 2>"$dir/evil.log" 3>&- &
    EVIL_PID=$!
    wait_until 10 test -s "$dir/evil.port" || return 1
    EVIL_URL="http://127.0.0.1:$(cat "$dir/evil.port")"
    SIDE_PORT=$(cat "$dir/evil.side")
    export EVIL_URL SIDE_PORT
}

# Mounts genfs against the evil provider (fast polls, 3 s request timeout unless overridden).
evil_mount() {
    base="$BATS_TEST_TMPDIR"
    MNT="$base/mnt" STATE_DIR="$base/state" CACHE_DIR="$base/cache"
    mkdir -p "$MNT"
    export MNT STATE_DIR CACHE_DIR
    sim_key_init
    evil_start
    SIM_URL=$EVIL_URL genfs_mount -o "$(fast),timeout=3" "$@"
}

evil_get() {
    curl -sS --max-time 10 "$EVIL_URL/_evil/$1"
}

# submit MODE: writes the prompt MODE to test-image/new, prints the task id.
submit() {
    genfs_submit test-image "$1"
}

log_has() {
    grep -q -- "$1" "$MNT/log"
}

# ================================================================ secrets

# A sim and a mount in the test's own (private) directory.
private_mount() {
    sim_start --time-scale 0.01
    local base="$BATS_TEST_TMPDIR"
    MNT="$base/mnt" STATE_DIR="$base/state" CACHE_DIR="$base/cache"
    mkdir -p "$MNT"
    export MNT STATE_DIR CACHE_DIR
    sec_mount
}

@test "the key is in no file of the mount, no log, cmdline, database, WAL or cache after a full workout" {
    sim_start --time-scale 0.01
    base="$BATS_TEST_TMPDIR"
    MNT="$base/mnt" STATE_DIR="$base/state" CACHE_DIR="$base/cache"
    mkdir -p "$MNT"
    export MNT STATE_DIR CACHE_DIR
    sec_mount -o "$(fast)"
    K=$GENFS_SIM_KEY
    [ ${#K} -ge 20 ]
    # success with files (image, audio), a failed task, a refused one, an unknown model,
    # an adopted task, a pending one
    a=$(genfs_submit test-image '{"prompt": "secret a", "sim_duration_ms": 100}')
    b=$(genfs_submit test-audio '{"prompt": "secret b", "sim_duration_ms": 100}')
    c=$(genfs_submit test-image '{"prompt": "secret c", "sim_duration_ms": 100, "sim_outcome": "failed"}')
    p=$(genfs_submit test-video '{"prompt": "still pending", "sim_duration_ms": 600000}')
    run gfs write "$MNT/test-image/new" 'text:{"prompt": "x", "sim_credits": "none"}'
    assert_output EDQUOT
    mkdir "$MNT/no-such-model"
    run gfs write "$MNT/no-such-model/new" text:hello
    assert_output ENOENT
    o=$(sim_submit test-image '{"input": {"prompt": "adopted", "sim_duration_ms": 100}}' | sim_json 'd["data"]["taskId"]')
    mkdir "$MNT/test-image/$o"
    for t in "test-image/$a" "test-audio/$b" "test-image/$o"; do
        timeout 60 cat "$MNT/$t/result" >/dev/null
        timeout 60 cat "$MNT/$t/files/"* >/dev/null
    done
    timeout 60 cat "$MNT/test-image/$c/result" >/dev/null || true
    [ "$(cat "$MNT/test-image/$c/state")" = failed ]

    # Every file of the mount but the blocking ones (events, and result/files of the pending task).
    n=0
    while IFS= read -r -d '' f; do
        case "$f" in
        "$MNT/events" | "$MNT/test-video/$p/result" | "$MNT/test-video/$p/files"*) continue ;;
        esac
        n=$((n + 1))
        if timeout 10 grep -aqF -- "$K" "$f"; then
            fail "the key is in $f"
        fi
    done < <(find "$MNT" -path "$MNT/events" -prune -o \( -type f -o -type l \) -print0)
    [ "$n" -ge 30 ] || fail "only $n files read"
    # latest and the symlinks' targets
    ! readlink "$MNT"/test-*/latest | grep -qF -- "$K" || false
    # the process: arguments of every process, its own cmdline
    # (ps writes to a file first: a grep in the same pipeline would find its own argument)
    ps -eo pid=,args= >"$BATS_TEST_TMPDIR/ps.txt"
    run grep -F -- "$K" "$BATS_TEST_TMPDIR/ps.txt"
    assert_output ''
    ! tr '\0' ' ' <"/proc/$GENFS_PID/cmdline" | grep -qF -- "$K" || false
    # the database with its WAL and shm, the lock, the cache, the daemon's stderr log
    ls "$STATE_DIR"/tasks.db-wal
    run grep -raF -l -- "$K" "$STATE_DIR" "$CACHE_DIR" "$GENFS_LOG"
    assert_failure 1
    assert_output ''
    # the sim saw the key (so it was really in use)
    [ "$(sim_figures | sim_json 'd["requests"]["submit"]')" -ge 5 ]
}

@test "other users cannot read the process: /proc/PID/environ, mem, and a core via gcore" {
    sim_start --time-scale 0.01
    public_dirs
    sec_mount
    run as_nobody cat "/proc/$GENFS_PID/environ"
    assert_failure
    assert_output --partial "Permission denied"
    run as_nobody python3 -c 'import sys; open(sys.argv[1], "rb").read(1)' "/proc/$GENFS_PID/mem"
    assert_failure
    run ! as_nobody grep -qF -- "$GENFS_SIM_KEY" "/proc/$GENFS_PID/cmdline"
    if command -v gcore >/dev/null; then
        run as_nobody timeout 30 gcore -o "$PUB/core" "$GENFS_PID"
        [ ! -s "$PUB/core.$GENFS_PID" ] || fail "nobody dumped genfs's memory"
    fi
}

@test "the key is scrubbed from the process's own environment block (ps e, /proc/PID/environ)" {
    # genfs unsetenv()s GENFS_API_KEY; the kernel still shows the original block, which holds
    # the key unless genfs overwrites the string in place. Root (or a ptrace-capable admin
    # running `ps e`) sees it there.
    private_mount
    ps eww -o args= -p "$GENFS_PID" | grep -q -- "-f -o api_url="
    n_ps=$(ps eww -o args= -p "$GENFS_PID" | grep -cF -- "$GENFS_SIM_KEY" || true)
    n_env=$(tr '\0' '\n' <"/proc/$GENFS_PID/environ" | grep -cF -- "$GENFS_SIM_KEY" || true)
    [ "$n_ps" -eq 0 ] && [ "$n_env" -eq 0 ] ||
        fail "the key is in 'ps e' ($n_ps) and in /proc/$GENFS_PID/environ ($n_env lines)"
}

@test "the inotify announcer (a forked child) keeps no copy of the key in its memory" {
    private_mount
    id=$(genfs_submit test-image 'announce me')
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    child=$(pgrep -P "$GENFS_PID" -x genfs-announce)
    [ -n "$child" ]
    # Root reads both memories: the daemon holds the key (it must), the child must not.
    # A sanitizer runtime keeps its own copy of the environment block it was
    # started with (read from /proc/self/environ, outside genfs's reach): a
    # hit that is that block's GENFS_API_KEY=<key> entry is not counted there.
    sanitizer=0
    grep -q AddressSanitizer "$(genfs_bin)" && sanitizer=1
    run python3 - "$GENFS_SIM_KEY" "$sanitizer" "$GENFS_PID" "$child" <<'PY'
import sys
key = sys.argv[1].encode()
env_entry = b"GENFS_API_KEY=" + key + b"\0"
for pid in sys.argv[3:]:
    hits = 0
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            f = line.split()
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            # readable private memory only (heap, stacks, data); not ASan's shadow
            if "r" not in f[1] or hi - lo > (1 << 30):
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
                hits += data.count(key)
                if sys.argv[2] == "1":
                    hits -= data.count(env_entry)
            except OSError:
                pass
    print(pid, "hits", hits)
PY
    assert_success
    assert_line --regexp "^$GENFS_PID hits [1-9]"
    assert_line "$child hits 0"
}

@test "no core dump: genfs killed by SIGSEGV leaves no core where a control process leaves one" {
    case "$(cat /proc/sys/kernel/core_pattern)" in
    "|"* | /*) skip "core_pattern is $(cat /proc/sys/kernel/core_pattern): cores are not written to the cwd" ;;
    esac
    ctl="$BATS_TEST_TMPDIR/control" gdir="$BATS_TEST_TMPDIR/genfs-cwd"
    mkdir -p "$ctl" "$gdir"
    (
        cd "$ctl" && ulimit -c unlimited && exec sleep 60
    ) 3>&- &
    cpid=$!
    sleep 0.3
    kill -SEGV "$cpid"
    wait "$cpid" || true
    if ! compgen -G "$ctl/core*" >/dev/null; then
        skip "this system writes no core file even for a plain process"
    fi
    sim_start --time-scale 0.01
    base="$BATS_TEST_TMPDIR"
    MNT="$base/mnt" STATE_DIR="$base/state" CACHE_DIR="$base/cache"
    mkdir -p "$MNT"
    export MNT STATE_DIR CACHE_DIR
    GENFS_LOG="$base/genfs.log"
    (
        cd "$gdir" && ulimit -c unlimited &&
            exec env -u GENFS_SIM_KEY GENFS_API_KEY="$GENFS_SIM_KEY" \
                ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0" "$(genfs_bin)" -f \
                -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR,models=test-image" "$MNT"
    ) >>"$GENFS_LOG" 2>&1 3>&- &
    GENFS_PID=$!
    wait_until 10 test -e "$MNT/README"
    genfs_submit test-image '{"prompt": "in memory", "sim_duration_ms": 100}' >/dev/null
    kill -SEGV "$GENFS_PID"
    genfs_wait_exit 10
    [ "$GENFS_EXIT_STATUS" -eq $((128 + 11)) ]
    run ls -A "$gdir"
    assert_output ''
    fusermount3 -uz "$MNT" 2>/dev/null || true
}

@test "a key_file that group or others may read or write (640 604 620 602 660), or a symlink to one, is refused" {
    sim_start --time-scale 0.01
    base="$BATS_TEST_TMPDIR"
    MNT="$base/mnt"
    mkdir -p "$MNT"
    export MNT
    kf="$base/key"
    for mode in 640 604 620 602 660 644; do
        printf '%s\n' "$GENFS_SIM_KEY" >"$kf"
        chmod "$mode" "$kf"
        run --separate-stderr timeout 10 env -u GENFS_API_KEY -u GENFS_SIM_KEY "$(genfs_bin)" -f \
            -o "api_url=$SIM_URL,key_file=$kf,state_dir=$base/state,cache_dir=$base/cache" "$MNT"
        [ "$status" -eq 2 ] || fail "mode $mode: status $status, stderr: $stderr"
        [[ "$stderr" == *key_file* ]] || fail "mode $mode: $stderr"
        [[ "$stderr" != *"$GENFS_SIM_KEY"* ]] || fail "mode $mode: the key is in the message"
        ! genfs_is_mounted || false
    done
    chmod 644 "$kf"
    ln -sf "$kf" "$base/key-link"
    run --separate-stderr timeout 10 env -u GENFS_API_KEY -u GENFS_SIM_KEY "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,key_file=$base/key-link,state_dir=$base/state,cache_dir=$base/cache" "$MNT"
    assert_equal "$status" 2
    # 400 (read-only for the owner) is fine
    chmod 400 "$kf"
    STATE_DIR="$base/state" CACHE_DIR="$base/cache"
    export STATE_DIR CACHE_DIR
    GENFS_SIM_KEY=sk-wrong genfs_mount -o "key_file=$kf"
    genfs_is_mounted
}

@test "a key on the command line (-o key=, -o api_key=) is refused with a pointer to key_file, and never echoed (issue 22)" {
    MNT="$BATS_TEST_TMPDIR/mnt"
    mkdir -p "$MNT"
    secret=sk-on-the-command-line-0123456789
    for opt in key api_key; do
        # Even with a usable key in the environment: the one on the command line is already seen.
        run --separate-stderr timeout 10 env GENFS_API_KEY=sk-env "$(genfs_bin)" -f \
            -o "api_url=http://127.0.0.1:9,$opt=$secret,state_dir=$BATS_TEST_TMPDIR/s" "$MNT"
        [ "$status" -eq 2 ] || fail "-o $opt=: status $status, stderr: $stderr"
        assert_equal "$stderr" "genfs: the API key cannot be given on the command line (-o key=), where every user sees it (ps): put it in a file only you can read (chmod 600 FILE) and pass -o key_file=FILE, or set GENFS_API_KEY"
        ! genfs_is_mounted || false
        # The mount helper (an fstab line, mount -o) refuses it before it would echo it (-v).
        run --separate-stderr env GENFS_BIN="$(genfs_bin)" sh "$GENFS_REPO_ROOT/scripts/mount.fuse.genfs" \
            genfs "$MNT" -v -o "user,$opt=$secret"
        assert_equal "$status" 1
        [[ "$stderr" == *"pass key_file=FILE"* ]] || fail "mount.fuse.genfs: $stderr"
        [[ "$stderr" != *"$secret"* ]] || fail "mount.fuse.genfs echoed the key: $stderr"
    done
    [ ! -e "$BATS_TEST_TMPDIR/s" ]
}

# ================================================================ access

@test "without allow_other another user gets EACCES on the mount; the owner is served" {
    sim_start --time-scale 0.01
    public_dirs
    sec_mount -o "$(fast)"
    id=$(genfs_submit test-image '{"prompt": "mine", "sim_duration_ms": 100}')
    # nobody can reach the mountpoint's directory: a refusal below comes from FUSE
    as_nobody ls "$PUB" >/dev/null
    for cmd in "ls $MNT" "stat $MNT/README" "cat $MNT/README" "cat $MNT/test-image/$id/state" \
        "sh -c 'echo hi > $MNT/test-image/new'" "mkdir $MNT/theirs" "rmdir $MNT/test-image/$id"; do
        run as_nobody sh -c "$cmd"
        assert_failure
        assert_output --partial "Permission denied"
    done
    [ "$(sim_figures | sim_json 'd["requests"]["submit"]')" -eq 1 ]
    [ -d "$MNT/test-image/$id" ]
    [ ! -e "$MNT/theirs" ]
    run cat "$MNT/README"
    assert_success
}

@test "allow_other,default_permissions: another user can read, but cannot write task files, mkdir or rmdir" {
    sim_start --time-scale 0.01
    public_dirs
    sec_mount -o "$(fast),allow_other,default_permissions"
    id=$(genfs_submit test-image '{"prompt": "shared", "sim_duration_ms": 100}')
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    run as_nobody cat "$MNT/test-image/$id/state"
    assert_output success
    run as_nobody ls "$MNT"
    assert_line test-image
    for cmd in "sh -c 'echo x > $MNT/test-image/$id/state'" "mkdir $MNT/theirs" \
        "rmdir $MNT/test-image/$id" "mv $MNT/test-image/$id $MNT/test-image/x"; do
        run as_nobody sh -c "$cmd"
        assert_failure
    done
    [ -d "$MNT/test-image/$id" ]
    [ ! -e "$MNT/theirs" ]
}

@test "allow_other without default_permissions: another user still cannot forget the owner's tasks or add models" {
    # The mount says test-image/ is 0755 and owned by the mounting user; genfs, not the
    # kernel, checks permissions here (no default_permissions).
    sim_start --time-scale 0.01
    public_dirs
    sec_mount -o "$(fast),allow_other"
    id=$(genfs_submit test-image '{"prompt": "not yours", "sim_duration_ms": 100}')
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    run as_nobody cat "$MNT/README"
    assert_success
    run as_nobody sh -c "echo x > $MNT/test-image/$id/state"
    assert_failure
    run as_nobody rmdir "$MNT/test-image/$id"
    assert_failure
    [ -d "$MNT/test-image/$id" ]
    run as_nobody mkdir "$MNT/theirs"
    assert_failure
    [ ! -e "$MNT/theirs" ]
}

@test "state and cache are private even under umask 000: dirs 0700, database, WAL, shm, lock and media 0600" {
    sim_start --time-scale 0.01
    base="$BATS_TEST_TMPDIR"
    MNT="$base/mnt" STATE_DIR="$base/state" CACHE_DIR="$base/cache"
    mkdir -p "$MNT"
    export MNT STATE_DIR CACHE_DIR
    # The config is written first: made under umask 000, everyone could write it, and genfs
    # would refuse it.
    opts=$(fast)
    (
        umask 000
        sec_mount -o "$opts"
        echo "$GENFS_PID" >"$base/pid"
    )
    GENFS_PID=$(cat "$base/pid")
    id=$(genfs_submit test-image '{"prompt": "private", "sim_duration_ms": 100}')
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    timeout 60 cat "$MNT/test-image/$id/files/0.png" >/dev/null
    run stat -c '%a %n' "$STATE_DIR" "$CACHE_DIR" "$CACHE_DIR/test-image" "$CACHE_DIR/test-image/$id"
    assert_output "700 $STATE_DIR
700 $CACHE_DIR
700 $CACHE_DIR/test-image
700 $CACHE_DIR/test-image/$id"
    for f in "$STATE_DIR"/* "$CACHE_DIR/test-image/$id"/*; do
        run stat -c %a "$f"
        assert_output 600
    done
    ls "$STATE_DIR/tasks.db-wal" "$STATE_DIR/lock" >/dev/null
    run as_nobody ls "$STATE_DIR"
    assert_failure
}

# ================================================================ the network

@test "valid status answers of 12 MiB each (4 tasks): genfs stays up, memory bounded (VmHWM < 400 MiB)" {
    evil_mount
    for i in 1 2 3 4; do submit "huge_valid $i" >/dev/null; done
    sleep 10
    mount_answers
    kill -0 "$GENFS_PID"
    hwm=$(hwm_kib)
    echo "VmHWM ${hwm} KiB, VmRSS $(rss_kib) KiB" >&3
    [ "$hwm" -lt $((400 * 1024)) ] || fail "VmHWM $hwm KiB"
    [ "$(evil_get stats | sim_json 'd["status"]')" -ge 8 ]
}

@test "a 40 MiB status answer: the poll fails, the log says it is too big, memory bounded" {
    evil_mount
    id=$(submit huge_body)
    wait_until 30 log_has "$id: status poll failed"
    mount_answers
    hwm=$(hwm_kib)
    echo "VmHWM ${hwm} KiB" >&3
    [ "$hwm" -lt $((200 * 1024)) ]
    [ "$(cat "$MNT/test-image/$id/state")" = waiting ]
    run grep "$id: status poll failed" "$MNT/log"
    assert_output --regexp '1 MiB|too (big|large)|larger'
}

@test "a 15 MiB status answer made of 7.5 M tiny JSON values: memory bounded (VmHWM < 256 MiB)" {
    evil_mount
    submit many_items >/dev/null
    sleep 8
    mount_answers
    kill -0 "$GENFS_PID"
    hwm=$(hwm_kib)
    echo "VmHWM ${hwm} KiB, VmRSS $(rss_kib) KiB" >&3
    [ "$hwm" -lt $((256 * 1024)) ] || fail "VmHWM $((hwm / 1024)) MiB for one 15 MiB answer"
}

@test "JSON nested 500,000 deep in a status answer and 200,000 deep in resultJson: no crash, the poll fails, logged" {
    evil_mount
    a=$(submit deep)
    b=$(submit deep_result)
    wait_until 30 log_has "$a: status poll failed"
    wait_until 30 log_has "$b: status poll failed"
    sleep 2
    kill -0 "$GENFS_PID"
    mount_answers
    run cat "$MNT/test-image/$a/state" "$MNT/test-image/$b/state"
    refute_output --partial success
    # logged once per task, not once per poll
    [ "$(grep -c "$a: status poll failed" "$MNT/log")" -eq 1 ]
    # each poll was answered (and failed): 1 s, 2 s, 4 s... apart
    [ "$(evil_get stats | sim_json 'd["status"]')" -ge 4 ]
}

transport_errors_at_least() {
    [ "$(genfs_stats_get 'd["transport_errors"]')" -ge "$1" ]
}

@test "slow-loris status body and a 10^15 Content-Length: polls time out, the mount answers, other tasks finish" {
    evil_mount
    s=$(submit slowloris)
    g=$(submit big_length)
    sleep 1
    mount_answers
    ok=$(submit ok)
    run timeout 30 cat "$MNT/test-image/$ok/result"
    assert_success
    wait_until 30 log_has "Timeout was reached"
    kill -0 "$GENFS_PID"
    # Both polls time out; the two need not end in the same instant.
    wait_until 60 transport_errors_at_least 2 ||
        fail "transport_errors: $(genfs_stats_get 'd["transport_errors"]')"
    run cat "$MNT/test-image/$s/state" "$MNT/test-image/$g/state"
    refute_output --partial success
    [ "$(hwm_kib)" -lt $((100 * 1024)) ]
}

@test "a result URL file:///etc/passwd: never read; the task fails and its error says why" {
    evil_mount
    id=$(submit file_url)
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_failure
    assert_output --partial "Input/output error"
    assert_equal "$(cat "$MNT/test-image/$id/state")" failed
    run cat "$MNT/test-image/$id/error"
    assert_output "no_result_url: the provider reported success without any http(s) result URL in resultUrls (genfs fetches http and https only)"
    if [ -d "$CACHE_DIR" ]; then
        run grep -rlF "root:" "$CACHE_DIR"
        assert_output ''
    fi
}

@test "result URLs on another local port or on the API host get no Authorization; an API redirect is not followed" {
    evil_mount
    side=$(submit side_url)
    same=$(submit same_origin_url)
    redir=$(submit api_redirect)
    timeout 30 cat "$MNT/test-image/$side/result" "$MNT/test-image/$same/result" >/dev/null
    timeout 30 cat "$MNT/test-image/$side/files/0.png" >/dev/null
    timeout 30 cat "$MNT/test-image/$same/files/0.png" >/dev/null
    wait_until 30 log_has "$redir: status poll failed"
    run grep "$redir" "$MNT/log"
    assert_output --partial 302
    # the side service saw one plain GET for the result, no key, nothing from the redirect
    run evil_get side
    assert_output --partial "/internal/$side/0.png"
    refute_output --partial stolen
    [ "$(sim_json '[r["authorization"] for r in d if r["authorization"]]' <<<"$output")" = "[]" ]
    # media requests to the API host carried no key either; API requests did
    run evil_get requests
    [ "$(sim_json '[r for r in d if r["path"].startswith("/media/") and r["authorization"]]' <<<"$output")" = "[]" ]
    [ "$(sim_json 'len([r for r in d if r["path"].startswith("/generateTask/") and r["authorization"]])' <<<"$output")" -ge 3 ]
}

@test "10,000 result URLs: at most 64 files, memory bounded" {
    evil_mount
    id=$(submit many_urls)
    run timeout 30 cat "$MNT/test-image/$id/result"
    assert_success
    n=$(ls "$MNT/test-image/$id/files" | wc -l)
    echo "files: $n, result lines: ${#lines[@]}, VmHWM $(hwm_kib) KiB" >&3
    [ "$n" -ge 1 ] && [ "$n" -le 64 ]
    [ "${#lines[@]}" -le 64 ]
    [ "$(hwm_kib)" -lt $((200 * 1024)) ]
}

@test "media with Content-Length 10^13: refused at once with EIO, the log says larger than file_max, cache empty" {
    evil_mount
    id=$(submit media_big_length)
    timeout 30 cat "$MNT/test-image/$id/result" >/dev/null
    run timeout 30 cat "$MNT/test-image/$id/files/0.png"
    assert_failure
    assert_output --partial "Input/output error"
    run grep "$id" "$MNT/log"
    assert_output --partial "file_max"
    run find "$CACHE_DIR" -type f
    assert_output ''
}

@test "an endless chunked media body: cut at file_max and refused, never served as a whole file" {
    evil_mount -o file_max=4M
    id=$(submit media_endless)
    timeout 30 cat "$MNT/test-image/$id/result" >/dev/null
    run bash -c 'timeout 60 cat "$1" | wc -c; exit "${PIPESTATUS[0]}"' _ "$MNT/test-image/$id/files/0.png"
    echo "read status $status, $output bytes; cache: $(find "$CACHE_DIR" -type f -printf '%s %p\n')" >&3
    [ "$status" -ne 0 ] || fail "the read succeeded with $output bytes: a cut-off body served as the file"
    run grep "$id" "$MNT/log"
    assert_output --partial "file_max"
    run find "$CACHE_DIR" -type f -size +1k
    assert_output ''
}

@test "a media body trickling 1 byte per 2 s is abandoned after about 60 s, the log says so, the mount answers" {
    evil_mount
    id=$(submit media_trickle)
    timeout 30 cat "$MNT/test-image/$id/result" >/dev/null
    timeout 5 cat "$MNT/test-image/$id/files/0.png" >/dev/null 2>&1 || true
    sleep 5
    mount_answers
    wait_until 90 log_has "$id: download of files/0 failed"
    run grep "$id: download" "$MNT/log"
    assert_output --partial "Timeout"
    mount_answers
}

@test "a provider that echoes the key in its 401 message: the key appears in no log line" {
    evil_mount
    run submit echo_key_submit
    assert_failure
    wait_until 10 log_has "401"
    n_log=$(grep -cF -- "$GENFS_SIM_KEY" "$MNT/log" || true)
    n_daemon=$(grep -cF -- "$GENFS_SIM_KEY" "$GENFS_LOG" || true)
    [ "$n_log" -eq 0 ] && [ "$n_daemon" -eq 0 ] ||
        fail "the key is in $n_log lines of MOUNT/log and $n_daemon of the daemon's log"
}

@test "task ids that are not safe names (../, /, .x, a newline, 250 chars, non-ASCII): the write fails, nothing made" {
    evil_mount
    long=$(printf 'a%.0s' $(seq 250))
    for bad in '..%2F..%2Fescape' 'a%2Fb' '.hidden' 'x%0Ay' "$long" '%C3%A9t%C3%A9' '%2E%2E'; do
        run gfs submit "$MNT/test-image/new" "bad_id:$bad"
        assert_failure
        refute_output --partial ok
    done
    kill -0 "$GENFS_PID"
    run ls "$MNT/test-image"
    assert_output "$(printf 'defaults.json\nnew\nrequest.json')"
    [ ! -e "$BATS_TEST_TMPDIR/escape" ] && [ ! -e "$CACHE_DIR/escape" ] && [ ! -e "$STATE_DIR/escape" ]
    run grep -c "not a safe file name" "$MNT/log"
    [ "$output" -ge 1 ]
}
