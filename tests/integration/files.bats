#!/usr/bin/env bats
# Issue 6: files/ — result media downloaded into the cache and served from it:
# names and bytes, deferred readers, failures and retries, LRU eviction and
# re-fetch, expired URLs, refused redirects, remount, file_max; issue 18: a file is listed
# once whole, and a stat or copy by name right after `cat result` waits for all of it.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
    # Quick polls: the tests are about the downloads, not detection.
    CONFIG=$(genfs_fast_config)
    PY_PID=
}

teardown() {
    if [ -n "${PY_PID:-}" ]; then
        kill "$PY_PID" 2>/dev/null || true
        wait "$PY_PID" 2>/dev/null || true
        PY_PID=
    fi
    genfs_teardown
}

sha_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# sim_sha ID N: the sim's sha256 of output N of task ID.
sim_sha() {
    sim_task "$1" | sim_json "d['media_sha256'][$2]"
}

# sim_media_requests ID: media requests the sim received for task ID.
sim_media_requests() {
    sim_task "$1" | sim_json "d['media_requests']"
}

# submit_done MODEL JSON: submit through the mount, wait until the task ended
# (result unblocks), print the id.
submit_done() {
    local id
    id=$(genfs_submit "$1" "$2") || return 1
    [ -n "$id" ] || return 1
    timeout 60 cat "$MNT/$1/$id/result" >/dev/null || return 1
    printf '%s\n' "$id"
}

# whole MODEL ID NAME: the cache file is there and no .part remains.
whole() {
    [ -f "$CACHE_DIR/$1/$2/$3" ] && ! compgen -G "$CACHE_DIR/$1/$2/*.part" >/dev/null &&
        ! compgen -G "$CACHE_DIR/$1/$2/.*.part" >/dev/null
}

log_has() {
    grep -q -- "$1" "$MNT/log"
}

@test "files/ appears once the task succeeded, named by kind, bytes equal the sim's, in the cache" {
    genfs_mount -o config="$CONFIG"
    # Pending: no files/ yet.
    id=$(genfs_submit test-image '{"prompt": "pending fox", "sim_duration_ms": 30000000, "sim_outputs": 2}')
    [ -n "$id" ]
    run ls "$MNT/test-image/$id/files"
    assert_failure
    run cat "$MNT/test-image/$id/state"
    refute_output success
    run ls "$MNT/test-image/$id"
    refute_output --partial files

    declare -A ext=([test-image]=png [test-audio]=wav [test-video]=gif)
    declare -A magic=([test-image]="PNG image data" [test-audio]="WAVE audio" [test-video]="GIF image data")
    for model in test-image test-audio test-video; do
        id=$(submit_done "$model" '{"prompt": "three of a kind", "sim_duration_ms": 500, "sim_outputs": 3}')
        [ -n "$id" ]
        d="$MNT/$model/$id/files"
        run cat "$MNT/$model/$id/state"
        assert_output success
        # files/ is there at once; each file is listed once whole (read below by name).
        [ -d "$d" ]
        for n in 0 1 2; do
            f="$d/$n.${ext[$model]}"
            want=$(sim_sha "$id" "$n")
            [ "${#want}" -eq 64 ]
            run timeout 60 sha256sum "$f"
            assert_success
            assert_output "$want  $f"
            run file -b "$f"
            assert_output --partial "${magic[$model]}"
            # Whole: stat shows the real size, the bytes are in the cache, no .part left.
            bytes=$(wc -c <"$f")
            [ "$bytes" -gt 0 ]
            assert_equal "$(stat -c %s "$f")" "$bytes"
            c="$CACHE_DIR/$model/$id/$n.${ext[$model]}"
            [ -f "$c" ]
            assert_equal "$(sha_of "$c")" "$want"
        done
        whole "$model" "$id" "0.${ext[$model]}"
        run ls "$d"
        assert_success
        assert_output "$(printf '0.%s\n1.%s\n2.%s' "${ext[$model]}" "${ext[$model]}" "${ext[$model]}")"
        run ls -A "$CACHE_DIR/$model/$id"
        refute_output --partial part
    done
    run genfs_stats_get 'd["downloads"]["started"]'
    assert_output 9
}

@test "five concurrent readers right after success of a 30 MB download all read the right bytes" {
    genfs_mount -o config="$CONFIG"
    id=$(submit_done test-audio '{"prompt": "a long song", "sim_duration_ms": 500, "sim_media_bytes": 31457280}')
    [ -n "$id" ]
    d="$MNT/test-audio/$id/files"
    out="$BATS_TEST_TMPDIR/readers"
    mkdir -p "$out"
    pids=()
    for i in 1 2 3 4 5; do
        timeout 60 sha256sum "$d/0.wav" >"$out/$i" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    want=$(sim_sha "$id" 0)
    # Shown when the test fails. A reader that gets 0 bytes (sha256 e3b0c442...) while the
    # file is whole means the kernel used a size 0 cached from a stat during the download.
    cat "$out"/*
    stat -c 'stat size now: %s' "$d/0.wav"
    for i in 1 2 3 4 5; do
        run cat "$out/$i"
        assert_output "$want  $d/0.wav"
    done
    assert_equal "$(stat -c %s "$d/0.wav")" 31457280
    whole test-audio "$id" 0.wav
}

@test "readers of a download held back by failing attempts wait (deferred) and all get the bytes" {
    genfs_mount -o config="$CONFIG"
    # Every media request fails: the first attempts fail, retries wait with backoff.
    sim_faults '{"media_error_rate": 1}' >/dev/null
    id=$(submit_done test-audio '{"prompt": "held song", "sim_duration_ms": 500, "sim_media_bytes": 31457280}')
    [ -n "$id" ]
    d="$MNT/test-audio/$id/files"
    out="$BATS_TEST_TMPDIR/readers"
    mkdir -p "$out"
    pids=()
    for i in 1 2 3 4 5; do
        timeout 60 sha256sum "$d/0.wav" >"$out/$i" 2>&1 &
        pids+=($!)
    done
    sleep 1
    # The readers are blocked (in stat or read(2)): none has finished.
    for p in "${pids[@]}"; do kill -0 "$p"; done
    [ ! -f "$CACHE_DIR/test-audio/$id/0.wav" ]
    sim_faults '{"media_error_rate": 0}' >/dev/null
    for p in "${pids[@]}"; do wait "$p"; done
    want=$(sim_sha "$id" 0)
    for i in 1 2 3 4 5; do
        run cat "$out/$i"
        assert_output "$want  $d/0.wav"
    done
    whole test-audio "$id" 0.wav
    log_has "retrying"
}

@test "a download that keeps failing: read fails with EIO after the retries, log says why; a later read fetches again" {
    genfs_mount -o config="$CONFIG"
    sim_faults '{"media_error_rate": 1}' >/dev/null
    id=$(submit_done test-image '{"prompt": "broken media", "sim_duration_ms": 500}')
    [ -n "$id" ]
    f="$MNT/test-image/$id/files/0.png"
    # Blocks during the retries (backoff), then fails.
    run timeout 60 cat "$f"
    assert_failure
    assert_output --partial "Input/output error"
    run cat "$MNT/log"
    assert_output --partial "download of files/0 failed"
    assert_output --partial "HTTP 500"
    assert_output --partial "retrying"
    # Retried: the sim saw more than one media request for it.
    [ "$(sim_media_requests "$id")" -ge 2 ]
    [ ! -e "$CACHE_DIR/test-image/$id/0.png" ]

    sim_faults '{"media_error_rate": 0}' >/dev/null
    # A read of a failed file starts a new attempt (the first may still be EIO).
    wait_until 60 timeout 30 cat "$f" >/dev/null
    run timeout 60 sha256sum "$f"
    assert_success
    assert_output "$(sim_sha "$id" 0)  $f"
    whole test-image "$id" 0.png
}

# The built-in apixo profile with result URLs that never expire, as a user's own profile.
lasting_profile() {
    python3 - "$GENFS_REPO_ROOT/profiles/apixo.json" "$BATS_TEST_TMPDIR/lasting.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["name"] = "lasting"
p["result_url_lifetime_s"] = -1
json.dump(p, open(sys.argv[2], "w"))
PY
    printf '%s\n' "$BATS_TEST_TMPDIR/lasting.json"
}

@test "cache_max keeps results whose URLs expire: every file stays readable, log and stats say so" {
    genfs_mount -o config="$CONFIG",cache_max=250K
    ids=()
    for i in 1 2 3; do
        ids+=("$(submit_done test-image "{\"prompt\": \"kept picture $i\", \"sim_duration_ms\": 500}")")
    done
    for id in "${ids[@]}"; do
        f="$MNT/test-image/$id/files/0.png"
        run timeout 60 sha256sum "$f"
        assert_success
        assert_output "$(sim_sha "$id" 0)  $f"
    done
    # Three 197 KB files are over 250K: nothing was evicted, nothing fetched twice.
    for id in "${ids[@]}"; do
        [ -f "$CACHE_DIR/test-image/$id/0.png" ]
        assert_equal "$(sim_media_requests "$id")" 1
    done
    run genfs_stats_get 'd["downloads"]["evictions"]'
    assert_output 0
    run genfs_stats_get 'd["downloads"]["kept_over_cap_bytes"]'
    [ "$output" -gt 0 ]
    run cat "$MNT/log"
    assert_output --partial "over cache_max"
    assert_output --partial "URLs expire"
}

@test "cache_max evicts the least recently opened file; reading it again fetches it again" {
    genfs_mount -o config="$CONFIG",cache_max=250K,provider="$(lasting_profile)"
    a=$(submit_done test-image '{"prompt": "first picture", "sim_duration_ms": 500}')
    fa="$MNT/test-image/$a/files/0.png"
    run timeout 60 sha256sum "$fa"
    assert_output "$(sim_sha "$a" 0)  $fa"
    assert_equal "$(stat -c %s "$fa")" 197007
    wait_until 10 test -f "$CACHE_DIR/test-image/$a/0.png"

    b=$(submit_done test-image '{"prompt": "second picture", "sim_duration_ms": 500}')
    fb="$MNT/test-image/$b/files/0.png"
    run timeout 60 sha256sum "$fb"
    assert_output "$(sim_sha "$b" 0)  $fb"
    # Two 197 KB files do not fit in 250K: the older one left the cache.
    wait_until 10 test ! -e "$CACHE_DIR/test-image/$a/0.png"
    [ -f "$CACHE_DIR/test-image/$b/0.png" ]
    run genfs_stats_get 'd["downloads"]["evictions"]'
    [ "$output" -ge 1 ]
    assert_equal "$(sim_media_requests "$a")" 1

    # Read again: fetched again, right bytes; now b is the one evicted.
    run timeout 60 sha256sum "$fa"
    assert_success
    assert_output "$(sim_sha "$a" 0)  $fa"
    assert_equal "$(sim_media_requests "$a")" 2
    [ -f "$CACHE_DIR/test-image/$a/0.png" ]
    wait_until 10 test ! -e "$CACHE_DIR/test-image/$b/0.png"
    run genfs_stats_get 'd["downloads"]["evictions"]'
    [ "$output" -ge 2 ]
    run cat "$MNT/log"
    assert_output --partial "evicted files/0.png"
    # Cache never holds more than its cap once settled.
    total=$(du -cb "$CACHE_DIR"/test-image/*/*.png | tail -1 | cut -f1)
    [ "$total" -le 256000 ]
}

@test "an expired result URL: read fails with ENOENT and log says the URL expired" {
    genfs_mount -o config="$CONFIG"
    sim_faults '{"media_ttl_ms": 1}' >/dev/null
    id=$(genfs_submit test-image '{"prompt": "gone soon", "sim_duration_ms": 500}')
    [ -n "$id" ]
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    sleep 0.05
    f="$MNT/test-image/$id/files/0.png"
    run timeout 60 cat "$f"
    assert_failure
    assert_output --partial "No such file or directory"
    run cat "$MNT/log"
    assert_output --partial "expired"
    assert_output --partial "410"
    [ ! -e "$CACHE_DIR/test-image/$id/0.png" ]
    # Still expired on a second read, no retry storm.
    run timeout 60 cat "$f"
    assert_failure
    assert_output --partial "No such file or directory"
}

@test "a redirect to file:// is refused (EIO, log says so) and never serves the local file" {
    genfs_mount -o config="$CONFIG"
    sim_faults '{"media_redirect": "file:///etc/passwd"}' >/dev/null
    id=$(submit_done test-image '{"prompt": "sneaky", "sim_duration_ms": 500}')
    f="$MNT/test-image/$id/files/0.png"
    run timeout 60 cat "$f"
    assert_failure
    assert_output --partial "Input/output error"
    refute_output --partial "root:"
    run cat "$MNT/log"
    assert_output --partial "not http(s)"
    for c in "$CACHE_DIR"/test-image/"$id"/*; do
        [ -e "$c" ] || continue
        ! cmp -s "$c" /etc/passwd || false
    done
    run timeout 10 cat "$f"
    refute_output --partial "root:"
}

@test "a redirect loop is refused after 5 redirects" {
    genfs_mount -o config="$CONFIG"
    id=$(genfs_submit test-image '{"prompt": "round and round", "sim_duration_ms": 200000}')
    [ -n "$id" ]
    # Every media request answers 302 to this task's own media URL: an endless loop.
    sim_faults "{\"media_redirect\": \"$SIM_URL/media/$id/0.png\"}" >/dev/null
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    f="$MNT/test-image/$id/files/0.png"
    run timeout 60 cat "$f"
    assert_failure
    assert_output --partial "Input/output error"
    run cat "$MNT/log"
    assert_output --partial "more than 5 redirects"
    # The first attempt stopped after 6 requests (the first and 5 redirects).
    run sim_figures
    n=$(printf '%s' "$output" | sim_json 'd["requests"]["media"]')
    [ "$n" -ge 6 ]
}

@test "an http redirect to another host serving the right bytes is followed" {
    genfs_mount -o config="$CONFIG"
    # First task, no redirect: its bytes go to a small local web server.
    a=$(submit_done test-image '{"prompt": "same picture", "sim_duration_ms": 500}')
    www="$BATS_TEST_TMPDIR/www"
    mkdir -p "$www"
    timeout 60 cat "$MNT/test-image/$a/files/0.png" >"$www/moved.png"
    pf="$BATS_TEST_TMPDIR/py.port"
    python3 - "$www" "$pf" >"$BATS_TEST_TMPDIR/py.log" 2>&1 3>&- <<'PY' &
import functools, http.server, os, sys
d, pf = sys.argv[1], sys.argv[2]
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
with open(pf + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(pf + ".tmp", pf)
s.serve_forever()
PY
    PY_PID=$!
    wait_until 10 test -s "$pf"
    port=$(cat "$pf")
    sim_faults "{\"media_redirect\": \"http://127.0.0.1:$port/moved.png\"}" >/dev/null
    # Same prompt and seed: the sim's media for it has the same bytes.
    b=$(submit_done test-image '{"prompt": "same picture", "sim_duration_ms": 500, "sim_outputs": 1}')
    f="$MNT/test-image/$b/files/0.png"
    run timeout 60 sha256sum "$f"
    assert_success
    assert_output "$(sim_sha "$a" 0)  $f"
    run cat "$BATS_TEST_TMPDIR/py.log"
    assert_output --partial "GET /moved.png"
    run sim_figures
    n=$(printf '%s' "$output" | sim_json 'd["responses"].get("302", 0)')
    [ "$n" -ge 1 ]
}

@test "after a remount cached files are served without a new media request; rmdir removes the cache dir" {
    genfs_mount -o config="$CONFIG"
    id=$(submit_done test-video '{"prompt": "kept", "sim_duration_ms": 500, "sim_outputs": 2}')
    d="$MNT/test-video/$id/files"
    for n in 0 1; do
        run timeout 60 sha256sum "$d/$n.gif"
        assert_output "$(sim_sha "$id" "$n")  $d/$n.gif"
    done
    before=$(sim_figures | sim_json 'd["requests"]["media"]')
    assert_equal "$before" 2
    genfs_unmount
    genfs_mount -o config="$CONFIG"
    for n in 0 1; do
        run timeout 60 sha256sum "$d/$n.gif"
        assert_success
        assert_output "$(sim_sha "$id" "$n")  $d/$n.gif"
        assert_equal "$(stat -c %s "$d/$n.gif")" "$(stat -c %s "$CACHE_DIR/test-video/$id/$n.gif")"
    done
    sleep 0.5
    assert_equal "$(sim_figures | sim_json 'd["requests"]["media"]')" "$before"
    [ -d "$CACHE_DIR/test-video/$id" ]
    rmdir "$MNT/test-video/$id"
    [ ! -e "$MNT/test-video/$id" ]
    [ ! -e "$CACHE_DIR/test-video/$id" ]
}

@test "file_max: a result larger than the cap is refused with EIO, log says larger than file_max" {
    genfs_mount -o config="$CONFIG",file_max=1K
    id=$(submit_done test-image '{"prompt": "too big", "sim_duration_ms": 500}')
    f="$MNT/test-image/$id/files/0.png"
    run timeout 60 cat "$f"
    assert_failure
    assert_output --partial "Input/output error"
    run cat "$MNT/log"
    assert_output --partial "larger than"
    assert_output --partial "file_max"
    [ ! -e "$CACHE_DIR/test-image/$id/0.png" ]
    run ls -A "$CACHE_DIR/test-image/$id"
    refute_output --partial part
}

# slow_media SECONDS: every media request of the sim answers 302 to a local server that
# takes SECONDS to send its file, $WWW/slow.png (300000 random bytes, image/png).
slow_media() {
    WWW="$BATS_TEST_TMPDIR/www"
    mkdir -p "$WWW"
    head -c 300000 /dev/urandom >"$WWW/slow.png"
    local pf="$BATS_TEST_TMPDIR/slow.port"
    python3 "$GENFS_HELPERS_DIR/py/slow_http.py" "$WWW" "$pf" "$1" \
        2>"$BATS_TEST_TMPDIR/slow.log" 3>&- &
    PY_PID=$!
    wait_until 10 test -s "$pf"
    sim_faults "{\"media_redirect\": \"http://127.0.0.1:$(cat "$pf")/slow.png\"}" >/dev/null
}

# copy_with TOOL SRC DEST: copy one file the way TOOL does.
copy_with() {
    case $1 in
    cp) cp "$2" "$3" ;;
    cat) cat "$2" >"$3" ;;
    rsync) rsync -a "$2" "$3" ;;
    tar) tar -C "${2%/*}" -cf - "${2##*/}" | tar -xOf - >"$3" ;;
    shutil) python3 -c 'import shutil, sys; shutil.copy2(sys.argv[1], sys.argv[2])' "$2" "$3" ;;
    esac
}

@test "right after cat result, while the download runs: stat shows the real size, cp, cat, rsync, tar and shutil.copy2 get the whole file" {
    genfs_mount -o config="$CONFIG"
    slow_media 5
    local tools=(stat cp cat rsync tar shutil) ids=() i out="$BATS_TEST_TMPDIR/out"
    mkdir -p "$out"
    for i in "${!tools[@]}"; do
        ids+=("$(genfs_submit test-image "{\"prompt\": \"slow $i\", \"sim_duration_ms\": 300}")")
    done
    pids=()
    for i in "${!tools[@]}"; do
        (
            id=${ids[$i]} tool=${tools[$i]}
            d="$MNT/test-image/$id/files"
            timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
            # The download has only begun: the file is not in the cache yet.
            [ -e "$CACHE_DIR/test-image/$id/0.png" ] && echo "already whole" >"$out/$tool.early"
            if [ "$tool" = stat ]; then
                timeout 60 stat -c %s "$d/0.png" >"$out/stat.size" 2>&1
            else
                timeout 60 bash -c "$(declare -f copy_with); copy_with $tool '$d/0.png' '$out/$tool.png'" \
                    >"$out/$tool.err" 2>&1
            fi
        ) 3>&- &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    ! compgen -G "$out/*.early" >/dev/null || fail "a download ended before its reader started"
    run cat "$out/stat.size"
    assert_output 300000
    for tool in cp cat rsync tar shutil; do
        cmp "$WWW/slow.png" "$out/$tool.png" || fail "$tool: $(cat "$out/$tool.err")"
    done
}

@test "while the download runs files/ lists nothing that is not whole: find, rsync -a files/ and tar c files copy no short file" {
    genfs_mount -o config="$CONFIG"
    slow_media 5
    id=$(submit_done test-image '{"prompt": "listed once whole", "sim_duration_ms": 300, "sim_outputs": 2}')
    d="$MNT/test-image/$id/files"
    [ ! -e "$CACHE_DIR/test-image/$id/0.png" ]
    # Listed: only what is whole, with its real size.
    for size in $(find "$d" -type f -printf '%s\n'); do
        [ "$size" -eq 300000 ] || fail "files/ lists a file of $size bytes"
    done
    out="$BATS_TEST_TMPDIR/copy"
    mkdir -p "$out/rsync" "$out/tar"
    run rsync -a "$d/" "$out/rsync/"
    assert_success
    run tar -C "$d" -cf "$out/files.tar" .
    assert_success
    tar -C "$out/tar" -xf "$out/files.tar"
    for f in "$out"/rsync/* "$out"/tar/*; do
        [ -e "$f" ] || continue
        cmp "$WWW/slow.png" "$f" || fail "a short copy: $f ($(stat -c %s "$f") bytes)"
    done
    # By name, each waits for its file and gets all of it; then both are listed.
    cmp "$WWW/slow.png" "$d/0.png"
    cmp "$WWW/slow.png" "$d/1.png"
    run ls "$d"
    assert_output "$(printf '0.png\n1.png')"
    run stat -c %s "$d/0.png" "$d/1.png"
    assert_output "$(printf '300000\n300000')"
}
