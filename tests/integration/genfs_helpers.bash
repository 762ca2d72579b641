# Helpers to mount genfs against genfs-sim in bats tests.
#
#   genfs_setup [SIM_ARGS...]   start the simulator (sim_start) and make MNT, STATE_DIR, CACHE_DIR
#   genfs_mount [GENFS_ARGS...] mount build/genfs on $MNT in the foreground (background job),
#                               wait until the mount answers; exports GENFS_PID, GENFS_LOG.
#                               Default -o: api_url=$SIM_URL, state_dir, cache_dir,
#                               models=$GENFS_MODELS (default test-image:test-audio:test-video),
#                               check=$GENFS_CHECK (default off: the tests count requests)
#   genfs_unmount               fusermount3 -u, then -uz, then kill -9 by PID; waits for exit
#   genfs_teardown              genfs_unmount and sim_stop; safe to call twice
#   genfs_submit MODEL TEXT     write TEXT to MODEL/new on one fd and print the task id
#   wait_for CMD... [timeout]   use wait_until SECONDS CMD...: retry CMD every 0.1 s
#
# Every test's teardown must call genfs_teardown so nothing is left mounted.

GENFS_HELPERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=sim_helpers.bash
source "$GENFS_HELPERS_DIR/sim_helpers.bash"
GENFS_REPO_ROOT="$(cd "$GENFS_HELPERS_DIR/../.." && pwd)"

genfs_bin() {
    local dir="${BUILD_DIR:-build}"
    case "$dir" in
    /*) ;;
    *) dir="$GENFS_REPO_ROOT/$dir" ;;
    esac
    printf '%s\n' "$dir/genfs"
}

genfs_setup() {
    local base="${BATS_TEST_TMPDIR:-$(mktemp -d)}"
    MNT="$base/mnt"
    STATE_DIR="$base/state"
    CACHE_DIR="$base/cache"
    mkdir -p "$MNT"
    export MNT STATE_DIR CACHE_DIR
    sim_start "$@"
}

# wait_until SECONDS CMD...: true once CMD succeeds, false after SECONDS.
wait_until() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    while [ "$SECONDS" -le "$end" ]; do
        if "$@" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

genfs_answers() {
    ls "$MNT" 2>/dev/null | grep -qx README
}

genfs_is_mounted() {
    grep -q " $MNT fuse" /proc/mounts
}

genfs_mount() {
    local bin
    bin="$(genfs_bin)"
    GENFS_LOG="${BATS_TEST_TMPDIR:-/tmp}/genfs.log"
    export GENFS_LOG
    local models="${GENFS_MODELS:-test-image:test-audio:test-video}"
    GENFS_API_KEY="$GENFS_SIM_KEY" "$bin" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR,models=$models" \
        -o "check=${GENFS_CHECK:-off}" \
        "$@" "$MNT" >>"$GENFS_LOG" 2>&1 3>&- &
    GENFS_PID=$!
    export GENFS_PID
    # A listing needs the live daemon (a stat of README may be answered from
    # the kernel's cache of an earlier, dead mount).
    if ! wait_until 10 genfs_answers; then
        echo "genfs_mount: the mount did not come up; log:" >&2
        cat "$GENFS_LOG" >&2
        return 1
    fi
}

# One line per thread: where a daemon that will not exit is stuck.
genfs_thread_dump() {
    local pid=$1 t
    if command -v gdb >/dev/null; then
        timeout 60 gdb -nx -batch -p "$pid" -ex 'thread apply all bt 12' 2>/dev/null |
            awk '/^Thread /{if (l) print l; l="  " $1 " " $2 ":"; next}
                 /^#[0-9]/{for (i = 1; i <= NF; i++) if ($i == "in") {l = l " " $(i+1); break}
                           if ($0 !~ / in /) l = l " " $2}
                 END{if (l) print l}'
    fi
    for t in /proc/"$pid"/task/*; do
        echo "  ${t##*/}: $(cat "$t/comm" 2>/dev/null) in kernel: $(tr '\n' ' ' <"$t/stack" 2>/dev/null | cut -c1-160)"
    done
}

# fusermount3 -u MOUNTPOINT, again while it says busy: an unmount that meets
# one of genfs's own inotify announcements (a file open in the mount for a
# few milliseconds) fails like any unmount of a file system in use, and a
# user runs it again. Fails with fusermount3's last message.
genfs_fusermount_u() {
    local try err
    for try in $(seq 1 50); do
        err=$(fusermount3 -u "$1" 2>&1) && return 0
        [[ $err == *busy* ]] || break
        sleep 0.1
    done
    echo "$err" >&2
    return 1
}

# PID has exited for good: gone, or a zombie none of whose threads lives on.
# (A zombie whose thread still waits in the kernel, e.g. on a FUSE request,
# is not: wait(1) on it would block.)
genfs_pid_exited() {
    local threads
    [ -e "/proc/$1" ] || return 0
    case "$(ps -o stat= -p "$1" 2>/dev/null)" in
    Z*) ;;
    "") return 0 ;;
    *) return 1 ;;
    esac
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 0
    [ "${threads:-0}" -le 1 ]
}

# Aborts the FUSE connection of MOUNTPOINT (fusectl): every request waiting
# on it fails, so nothing can stay blocked on a daemon that will not answer.
genfs_abort_conn() {
    local dev
    dev=$(mountpoint -d "$1" 2>/dev/null | cut -d: -f2)
    [ -n "$dev" ] || return 0
    [ -d /sys/fs/fuse/connections ] && [ -z "$(ls /sys/fs/fuse/connections)" ] &&
        mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null
    [ -w "/sys/fs/fuse/connections/$dev/abort" ] && echo 1 >"/sys/fs/fuse/connections/$dev/abort"
    return 0
}

# kill -9 the daemon, as a crash would. It must die whole at once: its
# /dev/fuse closes, the connection is aborted and the mount then answers
# ENOTCONN. One that cannot (a thread of its own waiting on a request to its
# own mount) fails here after its connection is aborted, instead of hanging
# everyone blocked on the mount.
genfs_kill9() {
    kill -9 "$GENFS_PID" 2>/dev/null
    local ok=0
    wait_until 20 genfs_pid_exited "$GENFS_PID" ||
        { genfs_force_end "genfs_kill9: still there 20 s after kill -9"; ok=1; }
    genfs_reap
    return "$ok"
}

# The daemon did not end when it should have: show where it is stuck, abort
# its connection (so nothing stays blocked on the mount) and kill it.
genfs_force_end() {
    echo "$1 (pid $GENFS_PID); its threads:" >&2
    genfs_thread_dump "$GENFS_PID" >&2
    genfs_abort_conn "$MNT"
    fusermount3 -uz "$MNT" 2>/dev/null || true
    kill -9 "$GENFS_PID" 2>/dev/null || true
    wait_until 10 genfs_pid_exited "$GENFS_PID" || true
}

# Collects the exit status of a daemon that has exited (255: it cannot be).
genfs_reap() {
    if genfs_pid_exited "$GENFS_PID"; then
        GENFS_EXIT_STATUS=0
        wait "$GENFS_PID" 2>/dev/null || GENFS_EXIT_STATUS=$?
    else
        echo "pid $GENFS_PID cannot be ended" >&2
        GENFS_EXIT_STATUS=255
    fi
    GENFS_PID=
}

genfs_unmount() {
    [ -n "${MNT:-}" ] || return 0
    local forced=0
    if genfs_is_mounted; then
        genfs_fusermount_u "$MNT" 2>/dev/null || true
    fi
    if [ -n "${GENFS_PID:-}" ]; then
        # Wide: a sanitizer build exits slowly; a daemon that never exits still fails.
        if ! wait_until 30 genfs_pid_exited "$GENFS_PID"; then
            forced=1
            genfs_force_end "genfs_unmount: still running 30 s after the unmount"
        fi
        genfs_reap
    fi
    if genfs_is_mounted; then
        fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
    fi
    # A daemon that had to be killed fails the test that unmounted it.
    [ "$forced" = 0 ]
}

genfs_teardown() {
    genfs_unmount
    sim_stop 2>/dev/null || true
}

genfs_submit() {
    local model=$1 text=$2 id
    exec {fd}<>"$MNT/$model/new" || return 1
    printf '%s\n' "$text" >&"$fd" || {
        exec {fd}>&-
        return 1
    }
    # The read submits (one open..read is one task) and fails with the submission's errno.
    read -r id <&"$fd" || {
        exec {fd}>&-
        return 1
    }
    exec {fd}>&-
    printf '%s\n' "$id"
}

# ---- added for the fs_*.bats suites (issue 3) ----
#   gfs ARGS...                 run tests/integration/py/gfs.py (write/submit/read/pollwait/...)
#   genfs_fast_config [MAX_MS]  write a config whose test-* profiles poll every 100 ms (give up
#                               after MAX_MS, default 600000); prints its path
#   genfs_wait_exit SECONDS     wait until $GENFS_PID has exited (zombie or gone), reap it into
#                               GENFS_EXIT_STATUS and clear GENFS_PID; false on timeout
#   genfs_stats_get EXPR        cat MOUNT/stats | sim_json EXPR
#   $GENFS_SIGDFL CMD...        (a plain command, so $! is CMD's own pid when run with &)
#                               exec CMD with SIGINT/SIGQUIT at their default action: background
#                               jobs of a non-interactive shell otherwise ignore them
#   pid_gone PID                true once PID has exited (gone or a zombie)

gfs() {
    python3 "$GENFS_HELPERS_DIR/py/gfs.py" "$@"
}

genfs_fast_config() {
    local max=${1:-600000}
    local f="${BATS_TEST_TMPDIR:-/tmp}/genfs-config.json"
    cat >"$f" <<JSON
{"models": {
  "test-image": {"initial_ms": 100, "interval_ms": 100, "max_ms": $max},
  "test-audio": {"initial_ms": 100, "interval_ms": 100, "max_ms": $max},
  "test-video": {"initial_ms": 100, "interval_ms": 100, "max_ms": $max}}}
JSON
    printf '%s\n' "$f"
}

genfs_wait_exit() {
    [ -n "${GENFS_PID:-}" ] || return 1
    wait_until "$1" genfs_pid_exited "$GENFS_PID" || return 1
    genfs_reap
}

genfs_stats_get() {
    cat "$MNT/stats" | sim_json "$1"
}

GENFS_SIGDFL="$GENFS_HELPERS_DIR/py/sigdfl.py"

pid_gone() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || st=
    case "$st" in
    "" | Z*) return 0 ;;
    esac
    return 1
}

# ---- shared by the protocol suites (protocols, providers, faults, disk_full) ----
#   genfs_image_model PROTOCOL    the model of PROTOCOL's sim that behaves like test-image
#                                 (nested for replicate and fal)
#   errno_of_read PATH [SECONDS]  the errno name of reading PATH whole, or "ok"; gives up
#                                 after SECONDS (default 120)

genfs_image_model() {
    case $1 in
    apixo) echo test-image ;;
    kie) echo grok-imagine/text-to-image ;;
    replicate) echo test/image ;;
    fal) echo fal-ai/test-image ;;
    esac
}

# errno_of_write PATH TEXT: the errno name of writing TEXT to PATH with one write(2) on an
# O_WRONLY descriptor (from the write or the close), or "ok". A relative "@PATH" in TEXT is
# found from the caller's directory.
errno_of_write() {
    timeout 120 python3 "$GENFS_HELPERS_DIR/py/gfs.py" rawwrite "$1" "text:$2" || true
}

errno_of_read() {
    timeout "${2:-120}" python3 - "$1" <<'PY'
import errno, sys
try:
    open(sys.argv[1], "rb").read()
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}
