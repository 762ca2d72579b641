#!/usr/bin/env bats
# Issue 19: control and insight from the shell. MODEL/ID/ctl (cancel at the provider, poll now),
# MODEL/ID/progress (percentage, queue position, elapsed, time left), MODEL/ID/logs, and local
# files as inputs ("@photo.jpg" uploaded, its URL sent); issue 22: an adopted task's input.
# Against genfs-sim speaking each protocol (docs/simulator.md).

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

teardown() {
    genfs_teardown
    [ -z "${PUB:-}" ] || rm -rf "$PUB"
    [ -z "${FUSE_DEV_MODE:-}" ] || chmod "$FUSE_DEV_MODE" /dev/fuse
}

as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# ctl_setup PROTOCOL MODELS [GENFS ARGS...]: the sim speaking PROTOCOL at real speed, genfs
# mounted with that built-in profile polling every 200 ms (CTL_POLL_MS to change).
ctl_setup() {
    local p=$1 models=$2
    shift 2
    genfs_setup --protocol "$p"
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    python3 - "$models" "${CTL_POLL_MS:-200}" >"$CONFIG" <<'PY'
import json, sys
ms = int(sys.argv[2])
print(json.dumps({"models": {m: {"initial_ms": ms, "interval_ms": ms, "max_ms": 600000}
                             for m in sys.argv[1].split(":")}}))
PY
    GENFS_MODELS=$models genfs_mount -o "config=$CONFIG,provider=$p" "$@"
}

state_is() {
    [ "$(cat "$1/state")" = "$2" ]
}

sim_state_of() {
    sim_task "$1" | sim_json 'd["state"]'
}

# cancel_case PROTOCOL MODEL: a long task is canceled at the provider from the shell; a reader
# blocked on result is answered; the sim saw the cancel.
cancel_case() {
    local p=$1 m=$2
    ctl_setup "$p" "$m"
    id=$(genfs_submit "$m" '{"prompt": "a slow one", "sim_duration_ms": 120000}')
    [ -n "$id" ]
    T="$MNT/$m/$id"
    run cat "$T/ctl"
    assert_output "$(printf 'cancel\npoll')"
    timeout 120 cat "$T/result" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
    reader=$!
    sleep 1
    run timeout 60 sh -c "echo cancel > '$T/ctl'"
    assert_success
    # The write returns once the provider took it and genfs saw the end.
    run cat "$T/state"
    assert_output failed
    run cat "$T/error"
    assert_output --regexp '^canceled: '
    rc=0
    wait "$reader" || rc=$?
    [ "$rc" -ne 0 ]
    grep -q "Input/output error" "$BATS_TEST_TMPDIR/err"
    [ "$(sim_state_of "$id")" != generating ]
    grep -q "$m/$id: cancel requested" "$MNT/log"
    # Once ended there is nothing to cancel: EALREADY, with a line that says so.
    assert_equal "$(errno_of_write "$T/ctl" cancel)" EALREADY
    grep -q "$m/$id/ctl: cancel: the task has already ended" "$MNT/log"
    run cat "$T/ctl"
    assert_output ""
}

@test "ctl: cancel on replicate ends the task failed: canceled, the reader of result answered" {
    cancel_case replicate test/image
}

@test "ctl: cancel on fal ends the task failed: canceled, the reader of result answered" {
    cancel_case fal fal-ai/test-image
}

@test "ctl: no cancel in the profile is EOPNOTSUPP with one log line; poll; unknown is EINVAL" {
    # The first poll by the schedule is a minute away: only ctl's poll asks before.
    CTL_POLL_MS=60000 ctl_setup kie grok-imagine/text-to-image
    m=grok-imagine/text-to-image
    id=$(genfs_submit "$m" '{"prompt": "x", "sim_duration_ms": 60000}')
    T="$MNT/$m/$id"
    run cat "$T/ctl"
    assert_output poll
    # Python names EOPNOTSUPP by its Linux alias ENOTSUP (the same number).
    assert_equal "$(errno_of_write "$T/ctl" cancel)" ENOTSUP
    assert_equal "$(grep -c "$m/$id/ctl: cancel refused: provider kie has no cancel" "$MNT/log")" 1
    run cat "$T/state"
    assert_output --regexp '^(waiting|queuing|generating)$'
    # poll asks now, long before the schedule would: the first status request.
    assert_equal "$(genfs_stats_get 'd["requests"]["status"]')" 0
    run sh -c "echo poll > '$T/ctl'"
    assert_success
    polled() { [ "$(genfs_stats_get 'd["requests"]["status"]')" -eq 1 ]; }
    wait_until 20 polled
    [ -s "$T/status.json" ]
    assert_equal "$(errno_of_write "$T/ctl" frobnicate)" EINVAL
    grep -q "$m/$id/ctl: unknown command \"frobnicate\": the commands are cancel" "$MNT/log"
    # Others than the owner cannot send commands.
    run setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo poll > '$T/ctl'"
    assert_failure
}

# samples DIR SECONDS: the progress line of task DIR every 0.3 s until it ends (or SECONDS).
samples() {
    local end=$((SECONDS + $2))
    while [ "$SECONDS" -le "$end" ]; do
        cat "$1/progress"
        case $(cat "$1/state") in success | failed) return 0 ;; esac
        sleep 0.3
    done
}

# The "left ~N.Ns" values of progress lines, in seconds, one a line.
lefts() {
    sed -n 's/.* left ~\([0-9.]*\)s$/\1/p'
}

@test "progress: replicate's percentage, elapsed and a learned time left that falls; logs fill" {
    ctl_setup replicate test/image
    m=test/image
    # Teach genfs how long this model takes.
    for i in 1 2 3; do
        id=$(genfs_submit "$m" "{\"prompt\": \"teach $i\", \"sim_duration_ms\": 6000}")
        timeout 60 cat "$MNT/$m/$id/result" >/dev/null
    done
    id=$(genfs_submit "$m" '{"prompt": "watched", "sim_duration_ms": 6000}')
    T="$MNT/$m/$id"
    run cat "$T/progress"
    assert_output --regexp '^(waiting|queuing|generating)( [0-9]+%)? elapsed [0-9.]+s left ~[0-9.]+s$'
    samples "$T" 60 >"$BATS_TEST_TMPDIR/progress"
    cat "$BATS_TEST_TMPDIR/progress"
    grep -Eq '^generating [0-9]+% elapsed [0-9.]+s left ~[0-9.]+s$' "$BATS_TEST_TMPDIR/progress"
    lefts <"$BATS_TEST_TMPDIR/progress" >"$BATS_TEST_TMPDIR/lefts"
    [ "$(wc -l <"$BATS_TEST_TMPDIR/lefts")" -ge 3 ]
    # Falls as the task runs: the last estimate is well below the first.
    awk 'NR == 1 {f = $1} {l = $1} END {exit !(l < f - 1)}' "$BATS_TEST_TMPDIR/lefts"
    run cat "$T/progress"
    assert_output --regexp '^success 100% elapsed [0-9.]+s$'
    # The provider's logs, as the last answer held them: tqdm's lines up to 100%.
    grep -q '^Using seed' "$T/logs"
    grep -q '100%|' "$T/logs"
}

# progress_like DIR REGEX: the progress line of task DIR matches REGEX.
progress_like() {
    grep -Eq "$2" "$1/progress"
}

@test "progress: fal's queue position while queued; logs fill as fal logs; poll(2) and inotify wake" {
    ctl_setup fal fal-ai/test-image
    m=fal-ai/test-image
    # Queued for the first 30% of its 60 s, then generating with logs; canceled at the end.
    id=$(genfs_submit "$m" '{"prompt": "in line", "sim_duration_ms": 60000}')
    T="$MNT/$m/$id"
    timeout 120 inotifywait -m -e modify --format '%f' "$T" >"$BATS_TEST_TMPDIR/ev" \
        2>"$BATS_TEST_TMPDIR/ev.err" 3>&- &
    watcher=$!
    wait_until 10 grep -q "Watches established" "$BATS_TEST_TMPDIR/ev.err"
    # poll(2): readable at open, not after a read, readable again once the task moved.
    run timeout 60 python3 - "$T/progress" <<'PY'
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
p = select.poll()
p.register(fd, select.POLLIN)
print("first", bool(p.poll(0)))
os.read(fd, 4096)
print("after read", bool(p.poll(0)))
print("woke", bool(p.poll(30000)))
PY
    assert_output "$(printf 'first True\nafter read False\nwoke True')"
    wait_until 30 progress_like "$T" '^queuing position [01] elapsed [0-9.]+s$' ||
        fail "progress: $(cat "$T/progress")"
    [ ! -s "$T/logs" ]
    wait_until 60 test -s "$T/logs" || fail "no logs; progress: $(cat "$T/progress")"
    run cat "$T/progress"
    assert_output --regexp '^generating elapsed [0-9.]+s$'
    run timeout 60 sh -c "echo cancel > '$T/ctl'"
    assert_success
    kill "$watcher"
    wait "$watcher" || true
    grep -qx progress "$BATS_TEST_TMPDIR/ev"
    grep -qx logs "$BATS_TEST_TMPDIR/ev"
}

# The uploads the sim kept, as JSON.
sim_uploads() {
    sim_curl -f "$SIM_URL/_sim/uploads"
}

# upload_case PROTOCOL MODEL FIELD: "@photo.jpg" (relative, 300 KB: over replicate's inline
# limit) in FIELD reaches the sim as an upload whose bytes are the file's; the task's input at
# the sim and input.json hold its URL; fetched back from that URL, the bytes are the file's.
upload_case() {
    local p=$1 m=$2 field=$3
    ctl_setup "$p" "$m"
    cd "$BATS_TEST_TMPDIR"
    head -c 300000 /dev/urandom >photo.jpg
    assert_equal "$(errno_of_write "$MNT/$m/new" \
        "{\"prompt\": \"make it snowy\", \"$field\": [\"@photo.jpg\"], \"sim_duration_ms\": 300}")" ok
    id=$(readlink "$MNT/$m/latest")
    [ -n "$id" ]
    url=$(sim_json "d[\"$field\"][0]" <"$MNT/$m/$id/input.json")
    [[ $url == http://127.0.0.1:* ]]
    assert_equal "$(sim_task "$id" | sim_json "d[\"input\"][\"$field\"][0]")" "$url"
    assert_equal "$(sim_uploads | sim_json 'd[0]["sha256"]')" "$(sha256sum <photo.jpg | cut -d' ' -f1)"
    assert_equal "$(sim_uploads | sim_json 'd[0]["name"]')" photo.jpg
    assert_equal "$(sim_uploads | sim_json 'd[0]["content_type"]')" image/jpeg
    sim_curl -sS -f -o kept "$SIM_URL/_sim/uploads/$(sim_uploads | sim_json 'd[0]["id"]')"
    cmp kept photo.jpg
    # Fetched back from the URL sent (Replicate's is the file object, behind the key).
    if [ "$p" != replicate ]; then
        curl -sS -f -o fetched "$url"
        cmp fetched photo.jpg
    fi
    # One upload, one task: nothing doubled.
    assert_equal "$(sim_uploads | sim_json 'len(d)')" 1
    assert_equal "$(sim_tasks | sim_json 'len(d)')" 1
    ! grep -q "$(head -c 30 photo.jpg | base64 | head -c 20)" "$MNT/$m/$id/input.json"
    run timeout 60 cat "$MNT/$m/$id/result"
    assert_success
}

@test "@PATH: a local file reaches fal as an uploaded URL whose bytes are the file's" {
    upload_case fal fal-ai/test-image image_urls
}

@test "@PATH: a local file reaches kie as an uploaded URL whose bytes are the file's" {
    upload_case kie grok-imagine/text-to-image image_urls
}

@test "@PATH: replicate: a file over 256 KB is uploaded, a small one goes inline; input.json shows no bytes" {
    upload_case replicate test/image image
    cd "$BATS_TEST_TMPDIR"
    head -c 3000 /dev/urandom >small.png
    m=test/image
    assert_equal "$(errno_of_write "$MNT/$m/new" \
        '{"prompt": "inline", "image": "@small.png", "note": "@@literal"}')" ok
    id=$(readlink "$MNT/$m/latest")
    sent=$(sim_task "$id" | sim_json 'd["input"]["image"]')
    [[ $sent == data:image/png\;base64,* ]]
    printf '%s' "${sent#*,}" | base64 -d | cmp - small.png
    assert_equal "$(sim_task "$id" | sim_json 'd["input"]["note"]')" "@literal"
    run sim_json 'd["image"]' <"$MNT/$m/$id/input.json"
    assert_output "data:image/png;base64,... (3000 bytes of @small.png, sent inline)"
    assert_equal "$(sim_uploads | sim_json 'len(d)')" 1
}

@test "@PATH: a missing file is ENOENT, one over the profile's limit EFBIG, each with a log line" {
    ctl_setup fal fal-ai/test-image
    m=fal-ai/test-image
    cd "$BATS_TEST_TMPDIR"
    assert_equal "$(errno_of_write "$MNT/$m/new" '{"prompt": "x", "image_url": "@nope.jpg"}')" ENOENT
    assert_equal "$(grep -c 'write to new refused: @nope.jpg: no such file' "$MNT/log")" 1
    truncate -s 200M huge.png # sparse: only its size is looked at
    assert_equal "$(errno_of_write "$MNT/$m/new" "{\"prompt\": \"x\", \"image_url\": \"@$PWD/huge.png\"}")" EFBIG
    assert_equal "$(grep -c "write to new refused: @$PWD/huge.png: a file of 209715200 bytes is over" "$MNT/log")" 1
    mkfifo fifo
    assert_equal "$(errno_of_write "$MNT/$m/new" '{"prompt": "x", "image_url": "@fifo"}')" EINVAL
    assert_equal "$(sim_uploads | sim_json 'len(d)')" 0
    assert_equal "$(sim_tasks | sim_json 'len(d)')" 0
    [ ! -e "$MNT/$m/latest" ]
    # Only a JSON input names files: a text prompt goes as written.
    assert_equal "$(errno_of_write "$MNT/$m/new" '@nope.jpg is not a file here')" ok
    assert_equal "$(cat "$MNT/$m/latest/prompt")" "@nope.jpg is not a file here"
    assert_equal "$(sim_uploads | sim_json 'len(d)')" 0
}

@test "@PATH: a file the writing user cannot read is EACCES (a mount by nobody, written by nobody)" {
    if ! as_nobody test -r /dev/fuse -a -w /dev/fuse; then
        FUSE_DEV_MODE=$(stat -c %a /dev/fuse)
        chmod 666 /dev/fuse
    fi
    genfs_setup --protocol fal
    PUB=$(mktemp -d /tmp/genfs-test-ctl.XXXXXX)
    chmod 755 "$PUB"
    install -m 755 "$(genfs_bin)" "$PUB/genfs"
    install -d -o 65534 -g 65534 "$PUB/n"
    MNT="$PUB/n/mnt" STATE_DIR="$PUB/n/state" CACHE_DIR="$PUB/n/cache"
    as_nobody mkdir "$MNT"
    GENFS_LOG="$BATS_TEST_TMPDIR/genfs.log"
    echo '{"models": {"fal-ai/test-image": {"initial_ms": 200, "interval_ms": 200}}}' >"$PUB/config.json"
    chmod 644 "$PUB/config.json"
    env -u GENFS_SIM_KEY GENFS_API_KEY="$GENFS_SIM_KEY" setpriv --reuid=65534 --regid=65534 \
        --clear-groups "$PUB/genfs" -f -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" \
        -o "models=fal-ai/test-image,provider=fal,check=off,config=$PUB/config.json" "$MNT" \
        >>"$GENFS_LOG" 2>&1 3>&- &
    GENFS_PID=$!
    wait_until 10 as_nobody test -e "$MNT/README" || fail "no mount: $(cat "$GENFS_LOG")"
    head -c 1000 /dev/urandom >"$PUB/secret.jpg"
    chmod 600 "$PUB/secret.jpg" # root's
    head -c 1000 /dev/urandom >"$PUB/open.jpg"
    chmod 644 "$PUB/open.jpg"
    m=fal-ai/test-image
    run as_nobody /usr/bin/python3 - "$MNT/$m/new" "$PUB" <<'PY'
import errno, os, sys
new, pub = sys.argv[1], sys.argv[2]
os.chdir(pub)
for name in ("secret.jpg", "open.jpg"):
    fd = os.open(new, os.O_WRONLY)
    try:
        os.write(fd, ('{"prompt": "x", "image_url": "@%s", "sim_duration_ms": 100}' % name).encode())
        os.close(fd)
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
PY
    assert_output "$(printf 'secret.jpg EACCES\nopen.jpg ok')"
    run as_nobody grep -c 'write to new refused: @secret.jpg: the writer may not read it' "$MNT/log"
    assert_output 1
    assert_equal "$(sim_uploads | sim_json 'len(d)')" 1
    assert_equal "$(sim_uploads | sim_json 'd[0]["sha256"]')" "$(sha256sum <"$PUB/open.jpg" | cut -d' ' -f1)"
}

# adopt_case PROTOCOL MODEL: a task submitted elsewhere and adopted with mkdir shows the input
# the provider's status holds.
adopt_case() {
    local p=$1 m=$2
    ctl_setup "$p" "$m"
    id=$(sim_submit_input "$p" "$m" '{"prompt": "a fox, submitted elsewhere", "seed": 7, "sim_duration_ms": 2000}')
    [ -n "$id" ]
    mkdir "$MNT/$m/$id"
    assert_equal "$(cat "$MNT/$m/$id/prompt")" "a fox, submitted elsewhere"
    assert_equal "$(sim_json 'd["seed"]' <"$MNT/$m/$id/input.json")" 7
    assert_equal "$(sim_json 'd["prompt"]' <"$MNT/$m/$id/input.json")" "a fox, submitted elsewhere"
    run timeout 60 cat "$MNT/$m/$id/result"
    assert_success
    # Kept across a restart: it is stored with the task.
    genfs_unmount
    GENFS_MODELS=$m genfs_mount -o "config=$CONFIG,provider=$p"
    assert_equal "$(cat "$MNT/$m/$id/prompt")" "a fox, submitted elsewhere"
}

@test "adopted: replicate's input fills prompt and input.json" {
    adopt_case replicate test/image
}

@test "adopted: kie's param fills prompt and input.json" {
    adopt_case kie grok-imagine/text-to-image
}

@test "@PATH: uploads refused with 429 are sent again, one that keeps failing is EIO; one upload, one task" {
    ctl_setup fal fal-ai/test-image
    m=fal-ai/test-image
    cd "$BATS_TEST_TMPDIR"
    head -c 5000 /dev/urandom >photo.jpg
    sim_faults '{"burst_429": 2}' >/dev/null
    assert_equal "$(errno_of_write "$MNT/$m/new" \
        '{"prompt": "again", "image_urls": ["@photo.jpg"], "sim_duration_ms": 200}')" ok
    grep -q "upload of @photo.jpg not taken" "$MNT/log"
    assert_equal "$(sim_uploads | sim_json 'len(d)')" 1
    assert_equal "$(sim_uploads | sim_json 'd[0]["sha256"]')" "$(sha256sum <photo.jpg | cut -d' ' -f1)"
    assert_equal "$(sim_tasks | sim_json 'len(d)')" 1
    # An upload that can never be made fails the write, naming the file; no task is made.
    sim_faults '{"error_500": 1}' >/dev/null
    assert_equal "$(errno_of_write "$MNT/$m/new" '{"prompt": "no", "image_urls": ["@photo.jpg"]}')" EIO
    grep -q "upload of @photo.jpg failed: .*nothing was submitted" "$MNT/log"
    sim_faults '{"error_500": 0}' >/dev/null
    assert_equal "$(sim_tasks | sim_json 'len(d)')" 1
}
