#!/usr/bin/env bats
# Issue 18: a `user` mount from /etc/fstab, run by a user through mount(8), which starts the
# helper without HOME. genfs takes the home from the password database, never /tmp (where any
# user could plant a config naming another api_url, which then gets the key), and refuses a
# config, profile or key file another user could have written or swapped, with one line.
#
# The real thing, in a private mount namespace (unshare -m) so nothing outside sees it: the
# test user exists in a copy of /etc/passwd bound over it, /etc/fstab is the test's, the
# helper (scripts/mount.fuse.genfs) is bound over /usr/sbin where mount(8) looks for it, and
# /tmp is a fresh tmpfs in which another user (nobody) plants /tmp/.config/genfs/config.json.
# mount(8) itself (setuid root) runs as the test user with neither HOME nor XDG_* set.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

bats_require_minimum_version 1.5.0

setup() {
    genfs_setup --time-scale 0.01
    DECOY_PID=
    # Outside /tmp, which the namespace hides; /var/tmp is sticky and root's, like /tmp.
    PUB=$(mktemp -d /var/tmp/genfs-um.XXXXXX)
    chmod 755 "$PUB"
    # A uid no one has, for the test user.
    U=64100
    while getent passwd "$U" >/dev/null || getent group "$U" >/dev/null; do
        U=$((U + 1))
    done
    UHOME="$PUB/home/genfs-um"
    mkdir -p "$PUB/bin" "$PUB/sbin" "$PUB/etc" "$PUB/home"
    install -m 755 "$(genfs_bin)" "$PUB/bin/genfs"
    sed "s|@GENFS@|$PUB/bin/genfs|" "$GENFS_REPO_ROOT/scripts/mount.fuse.genfs" \
        >"$PUB/sbin/mount.fuse.genfs"
    chmod 755 "$PUB/sbin/mount.fuse.genfs"
    cp /etc/passwd "$PUB/etc/passwd"
    cp /etc/group "$PUB/etc/group"
    echo "genfs-um:x:$U:$U:genfs test user:$UHOME:/bin/sh" >>"$PUB/etc/passwd"
    echo "genfs-um:x:$U:" >>"$PUB/etc/group"
    install -d -o "$U" -g "$U" -m 755 "$UHOME" "$UHOME/mnt" "$UHOME/.config" \
        "$UHOME/.config/genfs"
    MNT="$UHOME/mnt"
    CONF="$UHOME/.config/genfs/config.json"
    KEYF="$UHOME/.config/genfs/key"
    (umask 077 && printf '%s\n' "$GENFS_SIM_KEY" >"$KEYF")
    cat >"$CONF" <<JSON
{"api_url": "$SIM_URL",
 "models": {"test-image": {"initial_ms": 100, "interval_ms": 100, "max_ms": 600000}}}
JSON
    chown "$U:$U" "$KEYF" "$CONF"
    decoy_start
    chmod 644 "$CONF"
    # What another user plants where the old genfs looked without HOME.
    printf '{"api_url": "%s", "models": ["test-image"]}\n' "$DECOY_URL" >"$PUB/planted.json"
    printf 'genfs %s fuse.genfs noauto,user,key_file=%s 0 0\n' "$MNT" "$KEYF" >"$PUB/etc/fstab"
    # A user mounts through /dev/fuse, which Debian makes 0666; some containers keep it 0600.
    FUSE_DEV_MODE=
    if ! setpriv --reuid="$U" --regid="$U" --clear-groups test -r /dev/fuse -a -w /dev/fuse; then
        FUSE_DEV_MODE=$(stat -c %a /dev/fuse)
        chmod 666 /dev/fuse
    fi
    export PUB U UHOME MNT CONF KEYF DECOY_URL
}

teardown() {
    # A genfs left running in the namespace holds it (and its mount) alive: end it by its pid.
    local p pids=()
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$PUB/bin/genfs" ] && pids+=("${p#/proc/}")
    done
    if [ ${#pids[@]} -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null
        for p in "${pids[@]}"; do
            wait_until 10 pid_gone "$p" || kill -KILL "$p" 2>/dev/null
        done
    fi
    [ -z "${DECOY_PID:-}" ] || kill "$DECOY_PID" 2>/dev/null
    [ -z "${FUSE_DEV_MODE:-}" ] || chmod "$FUSE_DEV_MODE" /dev/fuse
    MNT= genfs_teardown
    rm -rf "$PUB"
}

# The planted config's api_url: records every request it gets (and its Authorization).
decoy_start() {
    DECOY_LOG="$PUB/decoy.log"
    python3 - "$PUB/decoy.port" "$DECOY_LOG" 3>&- <<'PY' &
import http.server, sys
port_file, log = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        with open(log, "a") as f:
            f.write(f"{self.command} {self.path} auth={self.headers.get('Authorization')}\n")
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_POST = do_PUT = do_DELETE = answer
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(port_file + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
s.serve_forever()
PY
    DECOY_PID=$!
    wait_until 10 test -s "$PUB/decoy.port"
    DECOY_URL="http://127.0.0.1:$(cat "$PUB/decoy.port")"
}

# in_ns SCRIPT: bash SCRIPT in the private namespace described at the top, as root; in it,
# as_user CMD runs CMD as the test user, and nobody has planted a config in /tmp.
in_ns() {
    unshare -m --propagation private bash -c '
        set -e
        mount --bind "$PUB/sbin" /usr/sbin
        mount --bind "$PUB/etc/passwd" /etc/passwd
        mount --bind "$PUB/etc/group" /etc/group
        mount --bind "$PUB/etc/fstab" /etc/fstab
        mount -t tmpfs -o mode=1777 tmpfs /tmp
        as_user() { setpriv --reuid="$U" --regid="$U" --clear-groups "$@"; }
        setpriv --reuid=65534 --regid=65534 --clear-groups sh -c \
            "mkdir -p /tmp/.config/genfs && cat \"\$PUB/planted.json\" >/tmp/.config/genfs/config.json"
        cd /
        eval "$1"' in_ns "$1" 3>&-
}

# mount(8) as the test user, run as from a start without a login: no HOME, no XDG_*.
USER_MOUNT='as_user env -i PATH=/usr/bin:/bin mount "$MNT"'

@test "an fstab user mount without HOME: genfs uses the passwd home, not a config planted in /tmp; the key goes to no one else" {
    run in_ns "
        $USER_MOUNT
        echo mounted: \$(grep -c \" \$MNT fuse.genfs \" /proc/mounts)
        id=\$(as_user timeout 30 sh -c 'exec 3<>\"\$MNT/test-image/new\"; echo \"a heron\" >&3; read -r id <&3; echo \$id')
        echo \"state: \$(as_user timeout 60 cat \"\$MNT/test-image/\$id/result\" >/dev/null; as_user cat \"\$MNT/test-image/\$id/state\")\"
        as_user umount \"\$MNT\" || as_user fusermount3 -u \"\$MNT\"
        echo in /tmp: \$(cd /tmp && find . -mindepth 1 | sort | tr '\n' ' ')
    "
    # The planted api_url got nothing, least of all the key.
    [ ! -s "$DECOY_LOG" ] || fail "the planted api_url was called: $(cut -d' ' -f1-2 "$DECOY_LOG" |
        head -3 | tr '\n' ' ')$(grep -qF "$GENFS_SIM_KEY" "$DECOY_LOG" && echo '(with the key)')"
    assert_success
    assert_line "mounted: 1"
    assert_line "state: success"
    # Only what nobody planted: nothing of genfs's own (no .local/state) went to /tmp.
    assert_line "in /tmp: ./.config ./.config/genfs ./.config/genfs/config.json"
    # The task database lives in the home from the password database.
    [ -s "$UHOME/.local/state/genfs/tasks.db" ]
    [ "$(stat -c %u "$UHOME/.local/state/genfs/tasks.db")" = "$U" ]
}

@test "an fstab user mount refuses a config, profile or key file another user could have written, with one line" {
    mkdir "$UHOME/.config/genfs/profiles"
    chown "$U:$U" "$UHOME/.config/genfs/profiles"
    # Each case: what to change (as root, then undone), and the line mount(8) must show.
    run in_ns "
        try() { # try SETUP UNDO
            eval \"\$1\"
            as_user env -i PATH=/usr/bin:/bin mount \"\$MNT\" 2>&1 && echo 'mount: ok' || echo \"mount: failed \$?\"
            echo \"mounts: \$(grep -c \" \$MNT fuse.genfs \" /proc/mounts)\"
            eval \"\$2\"
            echo ---
        }
        try 'chmod 664 \$CONF' 'chmod 644 \$CONF'
        try 'chmod 777 \$UHOME/.config/genfs' 'chmod 755 \$UHOME/.config/genfs'
        try 'chown 65534 \$CONF' 'chown \$U \$CONF'
        try 'chmod 640 \$KEYF' 'chmod 600 \$KEYF'
        try 'chown 65534 \$UHOME/.config' 'chown \$U \$UHOME/.config'
        # A profile of the user's own, named by the config (the last case: it rewrites it).
        printf '{}' >\$UHOME/.config/genfs/profiles/mine.json
        chown \$U \$UHOME/.config/genfs/profiles/mine.json
        printf '{\"provider\": \"mine\"}' >\$CONF
        try 'chmod 666 \$UHOME/.config/genfs/profiles/mine.json' ''
    "
    assert_success
    refute_line "mount: ok"
    refute_line --regexp "^mounts: [^0]"
    assert_line "genfs: config $CONF is writable by other users (mode 664): run chmod go-w $CONF"
    assert_line "genfs: config $CONF is in $UHOME/.config/genfs, which other users may write (mode 777): run chmod go-w $UHOME/.config/genfs, or move the file"
    assert_line "genfs: config $CONF belongs to uid 65534, not to you (uid $U) or root: another user may have written it; remove it, or chown it to yourself"
    assert_line "genfs: key_file $KEYF is accessible by other users (mode 640): run chmod 600 $KEYF"
    assert_line "genfs: config $CONF is in $UHOME/.config, which belongs to uid 65534 (not you or root), who could swap it: move the file to a directory of yours"
    assert_line "genfs: provider profile $UHOME/.config/genfs/profiles/mine.json is writable by other users (mode 666): run chmod go-w $UHOME/.config/genfs/profiles/mine.json"
    # One line each: the message, mount(8)'s status, the mount count, the separator.
    [ "${#lines[@]}" -eq 24 ] || fail "expected 6 cases of 4 lines: $output"
}

@test "an fstab user mount without HOME whose passwd home does not exist fails with one line and writes nothing to /tmp" {
    sed -i "s|:$UHOME:|:$PUB/no-such-home:|" "$PUB/etc/passwd"
    run in_ns "
        $USER_MOUNT 2>&1 && echo 'mount: ok' || echo \"mount: failed \$?\"
        echo mounts: \$(grep -c \" \$MNT fuse.genfs \" /proc/mounts || true)
        echo in /tmp: \$(cd /tmp && find . -mindepth 1 | sort | tr '\n' ' ')
    "
    assert_success
    assert_line "genfs: no place for the task database: the home directory $PUB/no-such-home (from the password database) is not a directory; set HOME or XDG_STATE_HOME, or pass -o state_dir=DIR"
    assert_line --regexp "^mount: failed [1-9]"
    assert_line "mounts: 0"
    assert_line "in /tmp: ./.config ./.config/genfs ./.config/genfs/config.json"
    [ ! -s "$DECOY_LOG" ]
}
