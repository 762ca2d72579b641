#!/usr/bin/env bats
# Issue 9: genfs as an installed Linux tool. meson install into a temporary
# prefix; mount(8) with -t fuse.genfs and an fstab line (through the installed
# mount.fuse.genfs helper, with the key from a key_file only); the systemd user
# unit; the man page (renders without warnings, matches genfs --help); the
# config example; the scripts of docs/examples against genfs-sim.
#
# mount(8) looks for helpers in /sbin only, so the mount(8) tests run in a
# private mount namespace (unshare -m) where the temporary prefix's sbin is
# bound over /usr/sbin: nothing outside the test sees it, and the mounts made
# there are not visible outside either.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup_file() {
    # One install for the whole file: its own build dir, configured with a
    # temporary prefix, so the paths baked into the helper and the unit are
    # the installed ones.
    local root
    root="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    INST="$BATS_FILE_TMPDIR/inst"
    PREFIX="$INST/prefix"
    export INST PREFIX
    meson setup "$INST/build" "$root" --prefix="$PREFIX" >"$INST.setup.log" 2>&1 ||
        { cat "$INST.setup.log" >&2; return 1; }
    meson install -C "$INST/build" >"$INST.install.log" 2>&1 ||
        { cat "$INST.install.log" >&2; return 1; }
}

setup() {
    export SIM_BIN="$PREFIX/bin/genfs-sim"
    genfs_setup --time-scale 0.01
    # The key comes from a file only: nothing in the environment.
    unset GENFS_API_KEY
    KEYF="$BATS_TEST_TMPDIR/key"
    (umask 077 && printf '%s\n' "$GENFS_SIM_KEY" >"$KEYF")
    CONFIG="$(genfs_fast_config)"
    export KEYF CONFIG
    REPO="$GENFS_REPO_ROOT"
}

# The pid of the genfs that holds STATE_DIR (it writes it in the lock file).
daemon_pid() {
    local pid
    pid=$(cat "$STATE_DIR/lock" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

teardown() {
    [ -n "${BG_PID:-}" ] && kill "$BG_PID" 2>/dev/null
    [ -n "${BG_PID2:-}" ] && kill "$BG_PID2" 2>/dev/null
    genfs_teardown
    # A daemon this test started through the helper (daemonized, or in a
    # private namespace): stop it by its own pid.
    local pid
    if pid=$(daemon_pid); then
        kill -TERM "$pid" 2>/dev/null
        wait_until 10 pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null
    fi
    return 0
}

# in_ns SCRIPT: run bash SCRIPT in a private mount namespace in which the
# installed sbin is /usr/sbin (so mount(8) finds mount.fuse.genfs).
in_ns() {
    unshare -m --propagation private bash -c \
        'mount --bind "$0" /usr/sbin || exit 99; eval "$1"' "$PREFIX/sbin" "$1" 3>&-
}

mount_opts() {
    printf 'api_url=%s,key_file=%s,state_dir=%s,cache_dir=%s,models=test-image,config=%s' \
        "$SIM_URL" "$KEYF" "$STATE_DIR" "$CACHE_DIR" "$CONFIG"
}

@test "meson install puts genfs, genfs-sim, the man page, the mount helper, the unit and the profiles in the prefix" {
    for f in bin/genfs bin/genfs-sim sbin/mount.fuse.genfs; do
        [ -x "$PREFIX/$f" ] || fail "$f is not installed executable"
    done
    for f in share/man/man1/genfs.1 lib/systemd/user/genfs@.service \
        share/genfs/profiles/apixo.json share/genfs/profiles/kie.json share/genfs/profiles/replicate.json \
        share/genfs/profiles/fal.json share/doc/genfs/config.example.json \
        share/doc/genfs/config.md share/doc/genfs/examples/Makefile \
        share/doc/genfs/examples/watch-folder.sh; do
        [ -f "$PREFIX/$f" ] || fail "$f is not installed"
    done
    [ -x "$PREFIX/share/doc/genfs/examples/watch-folder.sh" ]
    # The installed paths are baked in, not the @placeholders@.
    run grep -c "$PREFIX/bin/genfs" "$PREFIX/sbin/mount.fuse.genfs"
    assert_output 1
    run grep '^ExecStart=' "$PREFIX/lib/systemd/user/genfs@.service"
    assert_output --partial "ExecStart=$PREFIX/bin/genfs -f "
    run grep -rl '@GENFS@\|@BINDIR@' "$PREFIX/sbin" "$PREFIX/lib"
    assert_failure
    # man finds the installed page.
    run env MANPATH="$PREFIX/share/man" man -w genfs
    assert_success
    assert_output "$PREFIX/share/man/man1/genfs.1"
    run "$PREFIX/bin/genfs" --version
    assert_success
    assert_output --partial "genfs "
}

@test "the man page renders without warnings (man -l, groff -ww, man --warnings)" {
    command -v man >/dev/null || skip "man-db is not installed"
    command -v groff >/dev/null || skip "groff is not installed"
    run bash -c "MANWIDTH=80 man -l '$REPO/docs/genfs.1' 2>&1 >/dev/null"
    assert_success
    assert_output ""
    run bash -c "groff -man -ww -z '$REPO/docs/genfs.1' 2>&1"
    assert_success
    assert_output ""
    run bash -c "MANWIDTH=80 man --warnings -l '$REPO/docs/genfs.1' 2>&1 >/dev/null"
    assert_success
    assert_output ""
    # Narrow terminals too: nothing that cannot be broken.
    run bash -c "MANWIDTH=60 man --warnings -l '$REPO/docs/genfs.1' 2>&1 >/dev/null"
    assert_output ""
    # The sections a man page needs, and the installed copy is the same page.
    run bash -c "MANWIDTH=80 man -l '$REPO/docs/genfs.1' | col -b"
    for s in NAME SYNOPSIS DESCRIPTION OPTIONS "THE MOUNT" ERRORS WATCHING FILES ENVIRONMENT \
        EXAMPLES "SEE ALSO"; do
        assert_line "$s"
    done
    cmp "$REPO/docs/genfs.1" "$PREFIX/share/man/man1/genfs.1"
}

@test "every option of genfs --help is described in the man page" {
    local text help opts o missing=
    # The rendered page, with typographic hyphens and minus signs made plain.
    text=$(MANWIDTH=200 man -l "$REPO/docs/genfs.1" 2>/dev/null | col -b |
        sed 's/\xe2\x80\x90/-/g; s/\xe2\x88\x92/-/g')
    help=$("$PREFIX/bin/genfs" --help)
    # -o NAME=..., and the NAME= that follow a comma (callback_listen=)
    opts=$(printf '%s\n' "$help" | grep -oE '(-o |,)[a-z_]+(=|\b)' | sed 's/^-o //; s/^,//' |
        sort -u)
    [ -n "$opts" ]
    for o in $opts; do
        case $o in
        *=) printf '%s\n' "$text" | grep -qE -- "(-o |,)$o" || missing="$missing $o" ;;
        *) printf '%s\n' "$text" | grep -qE -- "-o $o\b" || missing="$missing $o" ;;
        esac
    done
    # the flags
    for o in $(printf '%s\n' "$help" | grep -oE '^ +-[a-zA-Z-]+(, --[a-z]+)?' | tr ',' ' '); do
        case $o in -o) continue ;; esac
        printf '%s\n' "$text" | grep -qE -- "(^| )$o\b" || missing="$missing $o"
    done
    [ -z "$missing" ] || fail "in genfs --help but not in docs/genfs.1:$missing"
    # and each default the help states is the one its man paragraph states
    run python3 - "$help" "$text" <<'PY'
import re, sys
help_text, man = sys.argv[1], sys.argv[2]
bad = []
for m in re.finditer(r"-o (\w+)=\S*\s+[^\n]*?\(default ([^);]+)", help_text):
    name, default = m.group(1), m.group(2).strip()
    # the man paragraph of -o NAME: up to the next option's tag line
    p = re.search(r"\n {7}-o " + name + r"=.*?(?=\n {7}-)", man, re.S)
    para = " ".join(p.group(0).split()) if p else ""
    word = default.split()[-1] if default.startswith("$") else default
    w = re.escape(word)
    if not para or not re.search(r"default[^.]*?" + w + r"|" + w + r" \(the default", para):
        bad.append("%s (default %s)" % (name, default))
print(" ".join(bad))
PY
    assert_success
    assert_output ""
}

@test "mount.fuse.genfs with an fstab options string: mount-only options dropped, key from key_file, fsname from the source" {
    chmod 600 "$KEYF"
    # The test's own environment holds the key (for the sim and curl); mount(8) would not.
    run env -u GENFS_SIM_KEY -u GENFS_API_KEY "$PREFIX/sbin/mount.fuse.genfs" genfs "$MNT" -o \
        "rw,nosuid,nodev,noexec,noauto,user,_netdev,nofail,x-systemd.automount,x-systemd.idle-timeout=60,defaults,comment=genfs,$(mount_opts)" \
        3>&-
    assert_success
    genfs_is_mounted
    run grep " $MNT " /proc/mounts
    assert_output --regexp "^genfs $MNT fuse.genfs .*nosuid,nodev,noexec"
    # Daemonized: the helper returned with the mount up, and the key is nowhere
    # on genfs's command line or in its environment.
    pid=$(daemon_pid)
    run tr '\0' ' ' <"/proc/$pid/cmdline"
    assert_output --partial "$PREFIX/bin/genfs -o fsname=genfs,rw,nosuid,nodev,noexec,api_url="
    refute_output --partial "$GENFS_SIM_KEY"
    refute_output --partial "noauto"
    refute_output --partial "x-systemd"
    refute_output --partial "_netdev"
    ! grep -qF "$GENFS_SIM_KEY" "/proc/$pid/environ" || false
    # It works: a task goes through and its image lands in files/.
    id=$(genfs_submit test-image 'a lighthouse, through mount(8)')
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    assert_output --partial "http"
    run timeout 60 head -c 4 "$MNT/test-image/$id/files/0.png"
    assert_output $'\x89PNG'
    genfs_fusermount_u "$MNT"
    wait_until 20 pid_gone "$pid"
    ! genfs_is_mounted || false
}

@test "mount.fuse.genfs: a key_file others can read, or no key, fails with genfs's message and mounts nothing" {
    chmod 644 "$KEYF"
    run "$PREFIX/sbin/mount.fuse.genfs" genfs "$MNT" -o "$(mount_opts)" 3>&-
    assert_failure 2
    assert_output --partial "key_file"
    ! genfs_is_mounted || false
    run "$PREFIX/sbin/mount.fuse.genfs" genfs "$MNT" \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" 3>&-
    assert_failure 2
    assert_output --partial "no API key"
    ! genfs_is_mounted || false
}

@test "mount.fuse.genfs: -f and -v say what would run; setuid=USER runs genfs as USER; bad usage fails" {
    run "$PREFIX/sbin/mount.fuse.genfs" src "$MNT" -fv -o noauto,users,nofail,api_url=http://h,models=a:b/c
    assert_success
    assert_output "mount.fuse.genfs: $PREFIX/bin/genfs -o fsname=src,api_url=http://h,models=a:b/c $MNT"
    run "$PREFIX/sbin/mount.fuse.genfs" genfs "$MNT" -f -o setuid=nobody,fsname=mine,ro
    assert_success
    assert_output --regexp "su - nobody -s /bin/sh -c .* $PREFIX/bin/genfs -o fsname=mine,ro $MNT\$"
    run "$PREFIX/sbin/mount.fuse.genfs" genfs
    assert_failure
    assert_output --partial usage
    run "$PREFIX/sbin/mount.fuse.genfs" genfs "$MNT" -q
    assert_failure
}

@test "mount -t fuse.genfs runs the installed helper; /proc/mounts shows fuse.genfs; umount stops genfs cleanly" {
    chmod 600 "$KEYF"
    OPTS="$(mount_opts)"
    export OPTS
    run in_ns '
        set -e
        mount -t fuse.genfs genfs "$MNT" -o "$OPTS"
        grep " $MNT " /proc/mounts
        pid=$(cat "$STATE_DIR/lock")
        exec 4<>"$MNT/test-image/new"
        echo "a fox, from mount -t" >&4
        read -r id <&4
        exec 4>&-
        echo "state: $(timeout 60 cat "$MNT/test-image/$id/result" >/dev/null && cat "$MNT/test-image/$id/state")"
        echo "magic: $(timeout 60 head -c 4 "$MNT/test-image/$id/files/0.png" | tail -c 3)"
        # Again while busy: genfs may be announcing files/0.png (README).
        for i in $(seq 1 50); do umount "$MNT" 2>/dev/null && break; sleep 0.1; done
        for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && echo "genfs still running" || echo "genfs exited"
        grep -c " $MNT " /proc/mounts || true
    '
    assert_success
    assert_line --regexp "^genfs $MNT fuse.genfs "
    assert_line "state: success"
    assert_line "magic: PNG"
    assert_line "genfs exited"
    assert_line 0
    ! genfs_is_mounted || false
}

@test "an fstab line: mount MOUNTPOINT (mount -T) with genfs options in the fourth field" {
    chmod 600 "$KEYF"
    FSTAB="$BATS_TEST_TMPDIR/fstab"
    printf '# genfs, as in genfs(1)\ngenfs %s fuse.genfs noauto,user,_netdev,nofail,x-systemd.automount,%s 0 0\n' \
        "$MNT" "$(mount_opts)" >"$FSTAB"
    export FSTAB
    run in_ns '
        set -e
        mount -T "$FSTAB" "$MNT"
        grep " $MNT " /proc/mounts
        ls "$MNT"
        umount "$MNT"
    '
    assert_success
    assert_line --regexp "^genfs $MNT fuse.genfs .*nosuid,nodev,noexec"
    assert_line "README"
    assert_line "test-image"
}

@test "the systemd user unit: verifies, and its ExecStart/ExecStop mount with the key as a credential and stop cleanly" {
    local unit="$PREFIX/lib/systemd/user/genfs@.service"
    run grep -E '^(LoadCredential|ExecStop|Restart|RestartPreventExitStatus)=' "$unit"
    assert_line "LoadCredential=genfs-key:%E/genfs/key"
    assert_line "ExecStop=fusermount3 -u %f"
    assert_line "Restart=on-failure"
    assert_line "RestartPreventExitStatus=2"
    if command -v systemd-analyze >/dev/null; then
        # An instance for a mount path, verified by the user manager's rules.
        local d="$BATS_TEST_TMPDIR/units" inst
        inst="genfs@$(systemd-escape --path "$MNT").service"
        mkdir -p "$d" "$BATS_TEST_TMPDIR/run"
        chmod 700 "$BATS_TEST_TMPDIR/run"
        cp "$unit" "$d/$inst"
        run env XDG_RUNTIME_DIR="$BATS_TEST_TMPDIR/run" MANPATH="$PREFIX/share/man" \
            systemd-analyze --user verify "$d/$inst"
        assert_success
        assert_output ""
    fi
    # Run what systemd would run: %f is the unescaped path, the credential is
    # a copy of the key in $CREDENTIALS_DIRECTORY, GENFS_OPTIONS from the .env.
    local creds="$BATS_TEST_TMPDIR/creds" start stop
    mkdir -p "$creds"
    install -m 400 "$KEYF" "$creds/genfs-key"
    GENFS_OPTIONS="-o api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR,models=test-image"
    start=$(sed -n 's/^ExecStart=//p' "$unit")
    stop=$(sed -n 's/^ExecStop=//p' "$unit")
    start=${start//'${CREDENTIALS_DIRECTORY}'/$creds}
    start=${start//'$GENFS_OPTIONS'/$GENFS_OPTIONS}
    start=${start//%f/$MNT}
    stop=${stop//%f/$MNT}
    # shellcheck disable=SC2086 # split as systemd splits it
    $start >"$BATS_TEST_TMPDIR/unit.log" 2>&1 3>&- &
    GENFS_PID=$!
    wait_until 10 test -e "$MNT/README" || { cat "$BATS_TEST_TMPDIR/unit.log"; false; }
    id=$(genfs_submit test-image 'a fox, from the unit')
    run timeout 60 cat "$MNT/test-image/$id/state"
    assert_success
    # shellcheck disable=SC2086
    $stop
    genfs_wait_exit 30
    assert_equal "$GENFS_EXIT_STATUS" 0
    ! genfs_is_mounted || false
}

@test "docs/config.example.json is a config genfs accepts" {
    python3 -m json.tool "$REPO/docs/config.example.json" >/dev/null
    # Its paths are examples: the command line overrides them.
    GENFS_MODELS=test-image genfs_mount -o "config=$REPO/docs/config.example.json,key_file=$KEYF"
    [ -d "$MNT/nano-banana" ]
    [ -d "$MNT/flux-2" ]
    [ -d "$MNT/sora-2" ]
    [ -f "$MNT/test-image/new" ]
    # every key of the example is explained in config.md
    for k in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))))' \
        "$REPO/docs/config.example.json"); do
        grep -q "| \`$k\` |" "$REPO/docs/config.md" || fail "config.md does not explain $k"
    done
}

@test "examples: the Makefile turns a file of prompts into images, in parallel, and resumes without resubmitting" {
    genfs_mount -o "config=$CONFIG,key_file=$KEYF"
    local w="$BATS_TEST_TMPDIR/make"
    mkdir -p "$w"
    printf 'a red fox\na lighthouse at dawn\na bowl of ramen\n' >"$w/prompts.txt"
    run timeout 120 make -s -C "$w" -f "$REPO/docs/examples/Makefile" -j3 \
        MOUNT="$MNT" MODEL=test-image PROMPTS=prompts.txt
    assert_success
    for n in 1 2 3; do
        [ "$(head -c 4 "$w/out/$n.png" | tail -c 3)" = PNG ] || fail "out/$n.png is not a PNG"
        [ -d "$MNT/test-image/$(cat "$w/out/$n.id")" ]
    done
    # the prompt of line 2 went to task 2
    run cat "$MNT/test-image/$(cat "$w/out/2.id")/prompt"
    assert_output "a lighthouse at dawn"
    # a second run with one image gone fetches it again from the same task
    rm "$w/out/3.png"
    ls "$MNT/test-image" | grep -c '^task_' >"$w/before"
    run timeout 60 make -s -C "$w" -f "$REPO/docs/examples/Makefile" MOUNT="$MNT" \
        MODEL=test-image PROMPTS=prompts.txt
    assert_success
    [ -f "$w/out/3.png" ]
    [ "$(ls "$MNT/test-image" | grep -c '^task_')" = "$(cat "$w/before")" ]
}

@test "examples: follow-events.sh copies the files of every task that succeeds" {
    genfs_mount -o "config=$CONFIG,key_file=$KEYF"
    local dest="$BATS_TEST_TMPDIR/dest"
    timeout 120 "$REPO/docs/examples/follow-events.sh" "$MNT" "$dest" \
        >"$BATS_TEST_TMPDIR/follow.out" 2>&1 3>&- &
    BG_PID=$!
    sleep 0.5 # events starts at "now": let it open first
    a=$(genfs_submit test-image 'first')
    b=$(genfs_submit test-image '{"prompt": "second", "sim_outcome": "failed", "sim_fail_msg": "no"}')
    c=$(genfs_submit test-image 'third')
    wait_until 60 test -f "$dest/test-image/$a/0.png" || { cat "$BATS_TEST_TMPDIR/follow.out"; false; }
    wait_until 60 test -f "$dest/test-image/$c/0.png"
    wait_until 30 grep -q "test-image/$b failed" "$BATS_TEST_TMPDIR/follow.out"
    [ ! -e "$dest/test-image/$b" ]
    cmp "$dest/test-image/$a/0.png" "$MNT/test-image/$a/files/0.png"
    ! ls "$dest/test-image" | grep -q '^\.' || false
}

@test "examples: poll_tasks.py waits for every task with poll(2) and prints each state change" {
    genfs_mount -o "config=$CONFIG,key_file=$KEYF"
    run timeout 120 python3 "$REPO/docs/examples/poll_tasks.py" "$MNT/test-image" \
        '{"prompt": "one", "sim_duration_ms": 800}' 'two'
    assert_success
    assert_output --regexp 'task_[^ ]+ success'
    assert_output --regexp 'task_[^ ]+ result http'
    assert_output --regexp 'files .*/files/0\.png'
    [ "$(printf '%s\n' "$output" | grep -c ' success$')" = 2 ]
}

@test "examples: watch-folder.sh (inotifywait -m -e close_write -r) copies every finished image out" {
    command -v inotifywait >/dev/null || skip "inotify-tools is not installed"
    genfs_mount -o "config=$CONFIG,key_file=$KEYF"
    local dest="$BATS_TEST_TMPDIR/out"
    timeout 120 "$REPO/docs/examples/watch-folder.sh" "$MNT" "$dest" \
        >"$BATS_TEST_TMPDIR/watch.out" 2>&1 3>&- &
    BG_PID=$!
    sleep 1 # inotifywait -r sets its watches up
    a=$(genfs_submit test-image 'watched one')
    b=$(genfs_submit test-image 'watched two')
    wait_until 60 test -f "$dest/test-image/$a/0.png" || { cat "$BATS_TEST_TMPDIR/watch.out"; false; }
    wait_until 60 test -f "$dest/test-image/$b/0.png"
    cmp "$dest/test-image/$b/0.png" "$MNT/test-image/$b/files/0.png"
    # only result files, whole, nothing from state/result/error
    run find "$dest" -type f
    assert_equal "$(printf '%s\n' "$output" | grep -vc '/files\|0\.png$')" 0
}
