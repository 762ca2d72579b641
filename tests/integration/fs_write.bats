#!/usr/bin/env bats
# Writing to MODEL/new (SPEC 3): what is sent, the id on the same fd, and the errno a writer
# gets for each way a submission can fail; every failure also leaves a line in MOUNT/log.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
}

teardown() {
    genfs_teardown
}

mount_fast() {
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive" "$@"
}

sim_submits() {
    sim_figures | sim_json 'd["requests"]["submit"]'
}

log_lines() {
    wc -l <"$MNT/log"
}

# The log lines added after line $1, on stdout; fails when there are none.
new_log_lines() {
    local from=$1 text
    text=$(tail -n +"$((from + 1))" "$MNT/log")
    if [ -z "$text" ]; then
        echo "no new line in MOUNT/log; it holds:" >&2
        cat "$MNT/log" >&2
        return 1
    fi
    printf '%s\n' "$text"
}

@test "text written to new is the prompt, trailing newline stripped; input.json wraps it" {
    mount_fast
    id=$(genfs_submit test-image 'a lighthouse at dusk')
    [ -d "$MNT/test-image/$id" ]
    run cat "$MNT/test-image/$id/prompt"
    assert_output 'a lighthouse at dusk'
    run sim_json 'd["prompt"]' <"$MNT/test-image/$id/input.json"
    assert_output 'a lighthouse at dusk'
    run sim_task "$id"
    assert_success
    run sim_json 'd["prompt"]' <<<"$output"
    assert_output 'a lighthouse at dusk'
}

@test "a JSON object written to new is the whole input" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "owl", "sim_duration_ms": 100, "seed": 7}')
    run sim_json 'd["seed"], d["prompt"], d["sim_duration_ms"]' <"$MNT/test-image/$id/input.json"
    assert_output '[7, "owl", 100]'
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
}

@test "exec 3<>new; echo hi >&3; read id <&3 gives the id of a new task directory" {
    mount_fast
    # In a child shell: bats keeps its own output on fd 3.
    run bash -c 'exec 3<>"$1/test-image/new"; echo hi >&3; read -r id <&3; exec 3>&-; echo "$id"' _ "$MNT"
    assert_success
    id=$output
    [[ "$id" =~ ^[A-Za-z0-9._~-]+$ ]]
    [ -d "$MNT/test-image/$id" ]
    run cat "$MNT/test-image/$id/prompt"
    assert_output hi
    run ls "$MNT/test-image"
    assert_line "$id"
    run readlink "$MNT/test-image/latest"
    assert_output "$id"
}

@test "a newline alone and whitespace only: EINVAL, nothing sent, a line in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" $'text:\n'
    assert_failure
    assert_output EINVAL
    run gfs write "$MNT/test-image/new" $'text:  \t \n\n '
    assert_output EINVAL
    # A command whose close(2) of its output reports errors (a shell builtin's does not: see
    # the test of errors at close below).
    run bash -c "/bin/echo > '$MNT/test-image/new'"
    assert_failure
    assert_output --partial "Invalid argument"
    run sim_submits
    assert_output 0
    new_log_lines "$before"
    run ls "$MNT/test-image"
    refute_output --partial latest
}

@test "a { that is not a valid JSON object: EINVAL, nothing sent, a line in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" 'text:{'
    assert_output EINVAL
    run gfs write "$MNT/test-image/new" 'text:{"prompt": "x"'
    assert_output EINVAL
    run gfs write "$MNT/test-image/new" 'text:  {"prompt": "x"} trailing'
    assert_output EINVAL
    run sim_submits
    assert_output 0
    new_log_lines "$before"
}

@test "1 MiB + 1 bytes in one buffered write: EFBIG, nothing sent, a line in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" fill:1048577:a
    assert_failure
    assert_output EFBIG
    run sim_submits
    assert_output 0
    run new_log_lines "$before"
    assert_success
    assert_output --partial "1048576"
}

@test "3 MiB in one buffered write: EFBIG, nothing sent" {
    mount_fast
    run gfs write "$MNT/test-image/new" fill:3145728:z
    assert_output EFBIG
    run sim_submits
    assert_output 0
}

@test "exactly 1 MiB of prompt text is never EFBIG and becomes at most one task, whole" {
    mount_fast
    run gfs write "$MNT/test-image/new" fill:1048576:p
    refute_output EFBIG
    n=$(sim_figures | sim_json 'd["tasks"]')
    if [ "$output" = ok ]; then
        # Accepted: one task holding the whole prompt.
        [ "$n" -eq 1 ]
        lens=$(sim_tasks | sim_json 'sorted(len(t["prompt"]) for t in d)')
        assert_equal "$lens" '[1048576]'
    else
        # Refused by the provider: nothing stored by it, and the reason is the provider's.
        [ "$n" -eq 0 ]
    fi
}

@test "wrong API key: EACCES, a line in log" {
    GENFS_SIM_KEY=sk-wrong-key-for-this-sim mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" text:hello
    assert_failure
    assert_output EACCES
    run bash -c "cat > '$MNT/test-image/new' <<<hello"
    assert_failure
    assert_output --partial "Permission denied"
    run new_log_lines "$before"
    assert_success
    assert_output --partial 401
    run sim_figures
    run sim_json 'd["tasks"]' <<<"$output"
    assert_output 0
}

@test "a model the provider does not know: ENOENT, a line in log" {
    mount_fast
    mkdir "$MNT/nosuchmodel"
    before=$(log_lines)
    run gfs write "$MNT/nosuchmodel/new" text:hello
    assert_failure
    assert_output ENOENT
    run new_log_lines "$before"
    assert_success
    assert_output --partial nosuchmodel
}

@test "input the provider rejects (an object without prompt): EINVAL from its 400, its reason in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" 'text:{"negative_prompt": "dogs"}'
    assert_failure
    assert_output EINVAL
    # It was the provider that refused: the request reached it.
    run sim_submits
    assert_output 1
    run new_log_lines "$before"
    assert_success
    assert_output --partial "(400: Missing required field: input.prompt)"
}

@test "no credits left (402): EDQUOT, a line in log" {
    mount_fast
    before=$(log_lines)
    run gfs write "$MNT/test-image/new" 'text:{"prompt": "x", "sim_credits": "none"}'
    assert_failure
    assert_output EDQUOT
    run bash -c "/bin/echo '{\"prompt\": \"y\", \"sim_credits\": \"none\"}' > '$MNT/test-image/new'"
    assert_failure
    assert_output --partial "Disk quota exceeded"
    run new_log_lines "$before"
    assert_success
    assert_output --partial 402
}

@test "429s that outlast -o timeout: EAGAIN after several attempts, a line in log" {
    # 429s are retried until the request's timeout: 5 s here, against 50 s of refusals.
    mount_fast -o timeout=5
    sim_faults '{"burst_429": 50, "burst_retry_after": 1}' >/dev/null
    before=$(log_lines)
    run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" write "$MNT/test-image/new" text:patience
    assert_failure
    assert_output EAGAIN
    n=$(sim_submits)
    [ "$n" -ge 2 ]
    run new_log_lines "$before"
    assert_success
    assert_output --partial 429
    # Once the provider takes requests again, so does new.
    sim_faults_reset >/dev/null
    run gfs write "$MNT/test-image/new" text:patience
    assert_output ok
}

@test "a 500 from the provider: EIO, a line in log" {
    mount_fast
    sim_faults '{"error_500": 1}' >/dev/null
    before=$(log_lines)
    run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" write "$MNT/test-image/new" text:boom
    assert_failure
    assert_output EIO
    run new_log_lines "$before"
    assert_success
    assert_output --partial 500
}

@test "a provider slower than -o timeout=2: ETIMEDOUT within a few seconds, a line in log" {
    mount_fast -o timeout=2
    sim_faults '{"slow_rate": 1, "slow_ms": 5000}' >/dev/null
    before=$(log_lines)
    start=$SECONDS
    run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" write "$MNT/test-image/new" text:slowly
    took=$((SECONDS - start))
    assert_failure
    assert_output ETIMEDOUT
    [ "$took" -lt 15 ]
    # Sent once, never again: it may have been taken, and the log says so.
    run new_log_lines "$before"
    assert_success
    assert_output --partial "may exist"
    assert_equal "$(sim_submits)" 1
}

@test "a 500 or a reset after the submission was sent: EIO once, never resent, the log says the task may exist" {
    mount_fast
    local n=0 faults
    for faults in '{"error_500": 1}' '{"error_500": 0, "reset_rate": 1}'; do
        n=$((n + 1))
        sim_faults "$faults" >/dev/null
        before=$(log_lines)
        run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" write "$MNT/test-image/new" "text:try $n"
        assert_output EIO
        assert_equal "$(sim_submits)" "$n"
        run new_log_lines "$before"
        assert_output --partial "may exist"
    done
}

@test "the write returns only once the task is stored: it is listed at once, and after a remount" {
    mount_fast
    id=$(genfs_submit test-image '{"prompt": "durable", "sim_duration_ms": 100}')
    [ -d "$MNT/test-image/$id" ]
    genfs_unmount
    mount_fast
    [ -d "$MNT/test-image/$id" ]
    run cat "$MNT/test-image/$id/prompt"
    assert_output durable
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
}

@test "-o log_level=warn: the daemon's log holds the refusal but no info line; MOUNT/log keeps both" {
    mount_fast -o log_level=warn
    id=$(genfs_submit test-image '{"prompt": "quiet log", "sim_duration_ms": 100}')
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    run gfs write "$MNT/test-image/new" $'text:\n'
    assert_output EINVAL
    run grep -c "$id: success" "$MNT/log"
    assert_output 1
    # stderr lines are "genfs: LEVEL: text"
    run grep -c '^genfs: warn: ' "$GENFS_LOG"
    [ "$output" -ge 1 ] || fail "no warn line in the daemon's log: $(cat "$GENFS_LOG")"
    run grep -E '^genfs: (info|debug): ' "$GENFS_LOG"
    assert_output ''
}

# ---- issue 18: one input is one task, whatever tool writes it --------------------------------

# input_file PATH TAG SIZE: SIZE bytes, "TAG " then filler, ending in one newline.
input_file() {
    python3 - "$@" <<'PY'
import sys
path, tag, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
head = (tag + " ").encode()
body = (b"a fox in the snow, watercolor; " * (size // 31 + 1))[: size - len(head) - 1]
with open(path, "wb") as f:
    f.write(head + body + b"\n")
PY
}

# write_with TOOL FILE NEW: write FILE's bytes to NEW the way TOOL does.
write_with() {
    local tool=$1 src=$2 new=$3
    case $tool in
    echo) bash -c 's=$(cat "$1"); echo "$s" > "$2"' _ "$src" "$new" ;;
    printf) bash -c 's=$(cat "$1"); printf "%s\n" "$s" > "$2"' _ "$src" "$new" ;;
    cat) cat "$src" >"$new" ;;
    cp) cp "$src" "$new" ;;
    dd) dd if="$src" of="$new" bs=1k status=none ;;
    python) python3 -c 'import sys; open(sys.argv[2], "w").write(open(sys.argv[1]).read())' "$src" "$new" ;;
    make)
        # A recipe whose commands write in pieces, from child processes of its shell.
        printf 'all:\n\t{ head -c 1000 $(SRC); tail -c +1001 $(SRC); } > $(NEW)\n' >"$BATS_TEST_TMPDIR/Makefile"
        make -s -f "$BATS_TEST_TMPDIR/Makefile" SRC="$src" NEW="$new"
        ;;
    esac
}

@test "echo, printf, cat, cp, dd, python and a make recipe at 5000 B, 64 KiB, 128 KiB and 1 MiB: each one task, whole" {
    mount_fast
    local tool size n=0 want="$BATS_TEST_TMPDIR/want"
    : >"$want"
    for size in 5000 65537 131073 1048576; do
        for tool in echo printf cat cp dd python make; do
            n=$((n + 1))
            f="$BATS_TEST_TMPDIR/in.$n"
            input_file "$f" "case-$n-$tool-$size" "$size"
            run write_with "$tool" "$f" "$MNT/test-image/new"
            assert_success
            # The prompt is the input without its trailing newline.
            printf '%s %s %s\n' "case-$n-$tool-$size" "$((size - 1))" \
                "$(head -c $((size - 1)) "$f" | sha256sum | cut -d' ' -f1)" >>"$want"
        done
    done
    # One task per input, holding all of it: nothing split, nothing lost.
    run python3 -c '
import hashlib, json, sys
tasks = json.load(open(sys.argv[1]))
got = sorted("%s %d %s" % (t["prompt"].split(" ", 1)[0], len(t["prompt"].encode()),
             hashlib.sha256(t["prompt"].encode()).hexdigest()) for t in tasks)
want = sorted(l.strip() for l in open(sys.argv[2]))
for g in got:
    if g not in want: print("unexpected task:", g[:120])
for w in want:
    if w not in got: print("missing:", w)
print(len(got), "tasks for", len(want), "inputs")
' <(sim_tasks) "$want"
    echo "$output"
    assert_output "28 tasks for 28 inputs"
    assert_equal "$(sim_figures | sim_json 'd["duplicate_submissions"]')" 0
}

@test "stat new: a block size of 1 MiB, so buffered writers send an input in one write" {
    mount_fast
    run stat -c %o "$MNT/test-image/new"
    assert_output 1048576
}

@test "exec 3<>new, two writes, read: one task of both; a read after a refused input gives its errno" {
    mount_fast
    run bash -c 'exec 3<>"$1/test-image/new"; printf "two " >&3; printf "halves\n" >&3
        read -r id <&3; echo "$id"' _ "$MNT"
    assert_success
    id=$output
    run cat "$MNT/test-image/$id/prompt"
    assert_output "two halves"
    assert_equal "$(sim_submits)" 1
    before=$(log_lines)
    run bash -c 'exec 3<>"$1/test-image/new"; printf "{\"prompt\": " >&3; read -r id <&3' _ "$MNT"
    assert_failure
    assert_output --partial "Invalid argument"
    assert_equal "$(sim_submits)" 1
    run new_log_lines "$before"
    assert_output --partial "not a valid JSON object"
}

@test "errors reach the writer at close: cat, cp, dd, python and /bin/echo; a shell builtin's redirection drops it, log has it" {
    mount_fast
    local f="$BATS_TEST_TMPDIR/blank"
    printf '  \n\t\n' >"$f"
    run bash -c 'cat "$1" > "$2"' _ "$f" "$MNT/test-image/new"
    assert_failure
    assert_output --partial "Invalid argument"
    run cp "$f" "$MNT/test-image/new"
    assert_failure
    assert_output --partial "Invalid argument"
    run dd if="$f" of="$MNT/test-image/new" status=none
    assert_failure
    assert_output --partial "Invalid argument"
    run gfs write "$MNT/test-image/new" "file:$f"
    assert_output EINVAL
    run bash -c '/bin/echo " " > "$1"' _ "$MNT/test-image/new"
    assert_failure
    assert_output --partial "Invalid argument"
    run bash -c '/bin/echo "{\"prompt\": \"x\", \"sim_credits\": \"none\"}" > "$1"' _ "$MNT/test-image/new"
    assert_failure
    assert_output --partial "Disk quota exceeded"
    # bash restores its stdout after a builtin with dup2(2), which drops the close's error:
    # the exit status is 0, the submission still failed, and log says why.
    before=$(log_lines)
    run bash -c 'echo " " > "$1"' _ "$MNT/test-image/new"
    assert_success
    run new_log_lines "$before"
    assert_output --partial "empty"
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
}

@test "EFBIG at the write that passes 1 MiB, for writers of many small writes; nothing sent" {
    mount_fast
    local f="$BATS_TEST_TMPDIR/big"
    head -c $((1048576 + 65536)) /dev/zero | tr '\0' 'b' >"$f"
    run dd if="$f" of="$MNT/test-image/new" bs=64k
    assert_failure
    assert_output --partial "File too large"
    # 16 writes of 64 KiB are 1 MiB: the 17th is the one refused, and close says it again.
    run python3 -c '
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
n = 0
try:
    while True:
        os.write(fd, b"c" * 65536)
        n += 1
except OSError as e:
    print(n, "writes, then", errno.errorcode[e.errno])
try:
    os.close(fd)
    print("close ok")
except OSError as e:
    print("close", errno.errorcode[e.errno])
' "$MNT/test-image/new"
    assert_output "$(printf '16 writes, then EFBIG\nclose EFBIG')"
    run bash -c 'cat "$1" > "$2"' _ "$f" "$MNT/test-image/new"
    assert_failure
    assert_output --partial "File too large"
    assert_equal "$(sim_submits)" 0
    # The next open is a fresh input.
    id=$(genfs_submit test-image 'after the big one')
    run cat "$MNT/test-image/$id/prompt"
    assert_output 'after the big one'
}

@test "a writer killed before it closes new sends nothing: its input is dropped and log says so" {
    mount_fast
    before=$(log_lines)
    run python3 -c '
import os, signal, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b"half of a prompt")
os.kill(os.getpid(), signal.SIGKILL)
' "$MNT/test-image/new"
    assert_equal "$status" 137
    # Ctrl-C (SIGINT) to cat while its input still comes from a pipe.
    mkfifo "$BATS_TEST_TMPDIR/fifo"
    $GENFS_SIGDFL cat "$BATS_TEST_TMPDIR/fifo" >"$MNT/test-image/new" 3>&- &
    local cat_pid=$!
    exec 5>"$BATS_TEST_TMPDIR/fifo"
    printf 'the start of it' >&5
    # cat has written what it read (its wchar counts it)
    wait_until 30 bash -c '[ "$(awk "/^wchar/ {print \$2}" /proc/$1/io)" -ge 15 ]' _ "$cat_pid"
    kill -INT "$cat_pid"
    local st=0
    wait "$cat_pid" || st=$?
    exec 5>&-
    assert_equal "$st" 130
    run new_log_lines "$before"
    assert_output --partial "killed"
    assert_equal "$(sim_submits)" 0
}
