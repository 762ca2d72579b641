#!/usr/bin/env bats
# Issue 22, shell habits: rm -rf of a task forgets it and rm -rf of a model removes it, while a
# single rm is refused; what cp -r, cp -a, rsync -a and tar copy out of the mount can be
# rm -rf'ed by its owner; and the README's provider examples run as printed against genfs-sim.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

bats_require_minimum_version 1.5.0

setup() {
    genfs_setup --time-scale 0.01
}

teardown() {
    # A README example's genfs runs in a mount namespace of its own: end it by its binary.
    local p
    if [ -n "${README_BIN:-}" ]; then
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/exe" 2>/dev/null)" = "$README_BIN/genfs" ] || continue
            kill -TERM "${p#/proc/}" 2>/dev/null
            wait_until 10 pid_gone "${p#/proc/}" || kill -KILL "${p#/proc/}" 2>/dev/null
        done
    fi
    genfs_teardown
    [ -z "${PUB:-}" ] || rm -rf "$PUB"
    [ -z "${FUSE_DEV_MODE:-}" ] || chmod "$FUSE_DEV_MODE" /dev/fuse
}

mount_fast() {
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive" "$@"
}

# A finished task of test-image with its file whole: prints the id.
finished_task() {
    local id
    id=$(genfs_submit test-image "{\"prompt\": \"${1:-a heron}\", \"sim_duration_ms\": 200}")
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    timeout 60 cat "$MNT/test-image/$id/files/0.png" >/dev/null
    wait_until 30 lists "$MNT/test-image/$id/files"
    printf '%s\n' "$id"
}

# DIR lists something (a file under files/ is listed once whole).
lists() {
    [ -n "$(ls -A "$1")" ]
}

# The names in a task's directory and its files/, one per line.
task_names() {
    (cd "$MNT/test-image/$1" && ls -A && ls -A files)
}

@test "rm -rf MODEL/ID forgets the task with nothing said, like rmdir; it stays gone after a remount" {
    mount_fast
    local id pending
    id=$(finished_task)
    [ -d "$CACHE_DIR/test-image/$id" ]
    # One still generating: no files/ yet.
    pending=$(genfs_submit test-image '{"prompt": "slow", "sim_duration_ms": 600000}')
    run rm -rf "$MNT/test-image/$id" "$MNT/test-image/$pending"
    assert_success
    assert_output ""
    [ ! -e "$MNT/test-image/$id" ]
    [ ! -e "$MNT/test-image/$pending" ]
    run ls "$MNT/test-image"
    refute_line "$id"
    refute_line "$pending"
    [ ! -e "$CACHE_DIR/test-image/$id" ] # the cached media went with it
    genfs_unmount
    mount_fast
    [ ! -e "$MNT/test-image/$id" ]
    [ ! -e "$MNT/test-image/$pending" ]
}

@test "rm -rfv lists every entry removed, and Python's shutil.rmtree and find -delete forget a task too" {
    mount_fast
    local a b c
    a=$(finished_task one)
    b=$(finished_task two)
    c=$(finished_task three)
    run rm -rfv "$MNT/test-image/$a"
    assert_success
    assert_line "removed '$MNT/test-image/$a/state'"
    assert_line "removed '$MNT/test-image/$a/files/0.png'"
    assert_line "removed directory '$MNT/test-image/$a/files'"
    assert_line "removed directory '$MNT/test-image/$a'"
    run python3 -c 'import shutil, sys; shutil.rmtree(sys.argv[1])' "$MNT/test-image/$b"
    assert_success
    run find "$MNT/test-image/$c" -delete
    assert_success
    assert_output ""
    for x in "$a" "$b" "$c"; do
        [ ! -e "$MNT/test-image/$x" ]
    done
}

@test "rm of one file of a task or of a model, rm -f, rmdir files/: EPERM, a line in log that says what to run, nothing changes" {
    mount_fast
    local id before
    id=$(finished_task)
    before=$(task_names "$id")
    for f in state result files/0.png; do
        run rm "$MNT/test-image/$id/$f"
        assert_failure
        assert_output --partial "Operation not permitted"
        run rm -f "$MNT/test-image/$id/$f"
        assert_failure
    done
    run rmdir "$MNT/test-image/$id/files"
    assert_failure
    assert_output --partial "Operation not permitted"
    for f in new defaults.json latest; do
        run rm "$MNT/test-image/$f"
        assert_failure
        assert_output --partial "Operation not permitted"
    done
    run rm "$MNT/README"
    assert_failure
    [ "$(task_names "$id")" = "$before" ]
    [ -L "$MNT/test-image/latest" ] && [ -e "$MNT/test-image/new" ]
    run cat "$MNT/log"
    assert_output --partial "rm test-image/$id/state refused: a task's files go only with the task: rm -r test-image/$id (or rmdir) forgets it"
    assert_output --partial "rm test-image/$id/files/0.png refused"
    assert_output --partial "rmdir test-image/$id/files refused"
    assert_output --partial "rm test-image/defaults.json refused: a model's own files go only with the model: rm -r test-image removes it and forgets its tasks"
    assert_output --partial "rm README refused: genfs's own files cannot be removed"
}

@test "an rm -r that lets go of the task's directory without removing it leaves the task whole" {
    mount_fast
    local id before
    id=$(finished_task)
    before=$(task_names "$id")
    # What an interrupted rm -r has done: unlinked some entries through the directory it holds.
    run python3 - "$MNT/test-image/$id" <<'PY'
import os, sys
d = sys.argv[1]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
os.unlink("state", dir_fd=fd)
os.unlink("result", dir_fd=fd)
files = os.open("files", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
try:
    os.rmdir("files", dir_fd=fd)
    print("rmdir files/ with a file in it: ok")
except OSError as e:
    print("rmdir files/ with a file in it:", os.strerror(e.errno))
os.unlink("0.png", dir_fd=files)
os.close(files)
print("while held:", " ".join(sorted(os.listdir(d))), os.path.exists(d + "/state"))
os.close(fd)
PY
    assert_success
    assert_line "rmdir files/ with a file in it: Directory not empty"
    assert_line "while held: ctl error files input.json logs progress prompt status.json False"
    # Let go: everything is back, and still readable.
    wait_until 10 test -e "$MNT/test-image/$id/state"
    [ "$(task_names "$id")" = "$before" ]
    [ "$(cat "$MNT/test-image/$id/state")" = success ]
    cmp "$MNT/test-image/$id/files/0.png" "$CACHE_DIR/test-image/$id/0.png"
    # A find -delete of one file is such a removal too: the file is back once find exits.
    run find "$MNT/test-image/$id" -name prompt -delete
    assert_success
    wait_until 10 test -e "$MNT/test-image/$id/prompt"
    [ "$(task_names "$id")" = "$before" ]
}

@test "rm -rf MODEL removes the model with its tasks and settings; a model whose rmdir fails stays whole" {
    # test-audio is made here (by mkdir), so that nothing makes it again at a mount.
    printf '{"models": {"test-image": {"initial_ms": 100, "interval_ms": 100}}}\n' \
        >"$BATS_TEST_TMPDIR/one.json"
    GENFS_MODELS=test-image genfs_mount -o "config=$BATS_TEST_TMPDIR/one.json,schedule=fixed"
    local a b
    mkdir "$MNT/test-audio"
    echo '{"voice": "low"}' >"$MNT/test-audio/defaults.json"
    a=$(genfs_submit test-audio '{"prompt": "a song", "sim_duration_ms": 200}')
    b=$(genfs_submit test-audio '{"prompt": "still singing", "sim_duration_ms": 600000}')
    timeout 60 cat "$MNT/test-audio/$a/result" >/dev/null
    run rm -rf "$MNT/test-audio"
    assert_success
    assert_output ""
    [ ! -e "$MNT/test-audio" ]
    mkdir "$MNT/test-audio"
    [ "$(cat "$MNT/test-audio/defaults.json")" = "{}" ]
    [ ! -e "$MNT/test-audio/$a" ] && [ ! -e "$MNT/test-audio/$b" ]

    # rm -r gets as far as the model's rmdir, which a task added meanwhile makes fail.
    echo '{"voice": "high"}' >"$MNT/test-audio/defaults.json"
    b=$(genfs_submit test-audio '{"prompt": "late", "sim_duration_ms": 600000}')
    run python3 - "$MNT/test-audio" "$b" <<'PY'
import os, sys
d, task = sys.argv[1], sys.argv[2]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
for name in ("new", "latest", ".provider", "defaults.json", "request.json"):
    os.unlink(name, dir_fd=fd)
print("while held:", " ".join(sorted(os.listdir(d))))
os.close(fd)
try:
    os.rmdir(d)
except OSError as e:
    print("rmdir:", os.strerror(e.errno))
PY
    assert_success
    assert_line "while held: $b"
    assert_line "rmdir: Directory not empty"
    wait_until 10 test -e "$MNT/test-audio/new"
    [ "$(sim_json 'd["voice"]' <"$MNT/test-audio/defaults.json")" = high ]
    [ "$(readlink "$MNT/test-audio/latest")" = "$b" ]
    [ -d "$MNT/test-audio/$b" ]
}

as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# genfs mounted by nobody, with -o OPTS added: MNT, STATE_DIR, CACHE_DIR in a directory nobody
# owns, and PUB/n/copies for what is copied out.
mount_as_nobody() {
    if ! as_nobody test -r /dev/fuse -a -w /dev/fuse; then
        FUSE_DEV_MODE=$(stat -c %a /dev/fuse)
        chmod 666 /dev/fuse
    fi
    PUB=$(mktemp -d /tmp/genfs-test-sh.XXXXXX)
    chmod 755 "$PUB"
    install -m 755 "$(genfs_bin)" "$PUB/genfs"
    install -d -o 65534 -g 65534 "$PUB/n" "$PUB/n/copies"
    MNT="$PUB/n/mnt" STATE_DIR="$PUB/n/state" CACHE_DIR="$PUB/n/cache"
    as_nobody mkdir "$MNT"
    cp "$(genfs_fast_config)" "$PUB/config.json"
    chmod 644 "$PUB/config.json"
    GENFS_LOG="$BATS_TEST_TMPDIR/genfs.log"
    env -u GENFS_SIM_KEY HOME="$PUB/n" GENFS_API_KEY="$GENFS_SIM_KEY" \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$PUB/genfs" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR,check=off" \
        -o "models=test-image,config=$PUB/config.json$1" "$MNT" >>"$GENFS_LOG" 2>&1 3>&- &
    GENFS_PID=$!
    wait_until 10 as_nobody test -e "$MNT/README" || fail "no mount: $(cat "$GENFS_LOG")"
}

# A finished task submitted by nobody, its file whole: prints its directory.
nobody_task() {
    local id t
    id=$(as_nobody sh -c "exec 3<>'$MNT/test-image/new'; echo '{\"prompt\": \"a copy\", \"sim_duration_ms\": 200}' >&3; read -r id <&3; echo \$id")
    [ -n "$id" ] || return 1
    t=$MNT/test-image/$id
    as_nobody timeout 60 cat "$t/result" >/dev/null
    as_nobody timeout 60 cat "$t/files/0.png" >/dev/null
    wait_until 30 as_nobody sh -c "ls -A '$t/files' | grep -q ."
    printf '%s\n' "$t"
}

@test "as a user (not root): modes 0755/0444; cp -r, cp -a, rsync -a and tar copies rm -rf'ed by their owner; rm -rf in the mount" {
    mount_as_nobody ""
    local t c=$PUB/n/copies
    t=$(nobody_task)
    [ "$(as_nobody stat -c %a "$t")" = 755 ]
    [ "$(as_nobody stat -c %a "$t/files")" = 755 ]
    [ "$(as_nobody stat -c %a "$t/state")" = 444 ]
    [ "$(as_nobody stat -c %a "$t/files/0.png")" = 444 ]

    as_nobody cp -r "$t" "$c/cp-r"
    as_nobody cp -a "$t" "$c/cp-a"
    as_nobody rsync -a "$t/" "$c/rsync/"
    as_nobody mkdir "$c/tar"
    as_nobody sh -c "tar -C '${t%/*}' -cf - '${t##*/}' | tar -C '$c/tar' -xf -"
    for x in cp-r cp-a rsync "tar/${t##*/}"; do
        as_nobody cmp "$c/$x/files/0.png" "$t/files/0.png"
        [ "$(stat -c %a "$c/$x")" = 755 ] || fail "$x: mode $(stat -c %a "$c/$x")"
        run as_nobody rm -rf "$c/$x"
        assert_success
        assert_output ""
        [ ! -e "$c/$x" ]
    done
    run as_nobody rm -rf "$t"
    assert_success
    assert_output ""
    run as_nobody test -e "$t"
    assert_failure
}

@test "as a user with default_permissions (the kernel checks modes): rm is genfs's EPERM, rm -rf forgets" {
    mount_as_nobody ",default_permissions"
    local t
    t=$(nobody_task)
    run as_nobody rm -f "$t/state"
    assert_failure
    assert_output --partial "Operation not permitted"
    run as_nobody rm -rf "$t"
    assert_success
    assert_output ""
    run as_nobody test -e "$t"
    assert_failure
}

# The commands of README.md's console block that contains MARK, as a script: each "$ " line
# and the lines that continue it.
readme_block() {
    python3 - "$GENFS_REPO_ROOT/README.md" "$1" <<'PY'
import sys
text, mark = open(sys.argv[1]).read(), sys.argv[2]
blocks = [b.split("```", 1)[0] for b in text.split("```console\n")[1:]]
block = next(b for b in blocks if mark in b)
cont = False
for line in block.splitlines():
    if line.startswith("$ ") or cont:
        print(line[2:] if line.startswith("$ ") else line)
        cont = line.endswith("\\")
PY
}

# A genfs-sim speaking PROTOCOL (with the README's extra models) in place of the APIXO one, and
# a HOME and a PATH for the README's commands: genfs is a copy of the build's, as once installed.
readme_setup() {
    sim_stop
    sim_start --protocol "$1" --time-scale 0.2 --profile "$GENFS_REPO_ROOT/docs/examples/sim-models.json"
    README_BIN="$BATS_TEST_TMPDIR/bin"
    mkdir -p "$README_BIN" "$BATS_TEST_TMPDIR/home" "$BATS_TEST_TMPDIR/work"
    install -m 755 "$(genfs_bin)" "$README_BIN/genfs"
    # The README's first block made the key directory (install -d -m 700 ~/.config/genfs).
    install -d -m 700 "$BATS_TEST_TMPDIR/home/.config" "$BATS_TEST_TMPDIR/home/.config/genfs"
}

# Runs README.md's block that contains MARK as printed, against the sim of readme_setup, in a
# mount namespace of its own (the README mounts on /mnt/NAME), then CHECK (a script run there
# after it) and unmounts.
readme_run() {
    local script
    script=$(readme_block "$1")
    [ -n "$script" ] || fail "no README block with $1"
    env -u GENFS_API_KEY -u XDG_CONFIG_HOME -u XDG_STATE_HOME -u XDG_CACHE_HOME \
        HOME="$BATS_TEST_TMPDIR/home" PATH="$README_BIN:$PATH" GENFS_API_URL="$SIM_URL" \
        REPLICATE_API_TOKEN="$GENFS_SIM_KEY" FAL_KEY="$GENFS_SIM_KEY" KIE_API_KEY="$GENFS_SIM_KEY" \
        SCRIPT="$script" CHECK="$2" WORK="$BATS_TEST_TMPDIR/work" \
        timeout 120 unshare -m bash -c '
            set -eu
            mount -t tmpfs readme-mnt /mnt
            mkdir /mnt/kie /mnt/replicate /mnt/fal
            cd "$WORK"
            printf "+ %s\n" "$SCRIPT"
            eval "$SCRIPT"
            eval "$CHECK"
            for m in /mnt/kie /mnt/replicate /mnt/fal; do
                ! mountpoint -q "$m" || fusermount3 -u "$m"
            done' 3>&-
}

@test "README's Replicate example runs as printed against genfs-sim --protocol replicate" {
    readme_setup replicate
    run readme_run provider=replicate '
        m=/mnt/replicate/black-forest-labs/flux-schnell
        test "$(cat $m/latest/state)" = success
        grep -q "output_format" $m/latest/input.json
        curl -sf "$(cat $m/latest/result)" | cmp - fox.png
        echo "fox.png: $(head -c 4 fox.png | tail -c 3)"'
    assert_success
    assert_line "fox.png: PNG"
}

@test "README's fal example runs as printed against genfs-sim --protocol fal" {
    readme_setup fal
    run readme_run provider=fal '
        m=/mnt/fal/fal-ai/flux/dev
        test "$(cat $m/latest/state)" = success
        grep -q "output_format" $m/latest/input.json
        curl -sf "$(cat $m/latest/result)" | cmp - fox.png
        echo "fox.png: $(head -c 4 fox.png | tail -c 3)"'
    assert_success
    assert_line "fox.png: PNG"
}

@test "README's kie example runs as printed against genfs-sim --protocol kie" {
    readme_setup kie
    run readme_run provider=kie '
        m=/mnt/kie/grok-imagine/text-to-image
        timeout 60 cat $m/latest/result
        echo "state: $(cat $m/latest/state)"'
    assert_success
    assert_line "state: success"
}
