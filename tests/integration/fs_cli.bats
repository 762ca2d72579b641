#!/usr/bin/env bats
# The command line (SPEC 2): --help, --version, settings refused at start with exit status 2,
# one line on stderr and nothing mounted; the API key kept out of sight.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

bats_require_minimum_version 1.5.0

setup() {
    GENFS=$(genfs_bin)
    MNT="$BATS_TEST_TMPDIR/mnt"
    STATE_DIR="$BATS_TEST_TMPDIR/state"
    CACHE_DIR="$BATS_TEST_TMPDIR/cache"
    CFG_HOME="$BATS_TEST_TMPDIR/xdg-config"
    mkdir -p "$MNT" "$CFG_HOME"
    export MNT STATE_DIR CACHE_DIR
    # A URL nobody needs to answer: these refusals happen before any request.
    NOURL="http://127.0.0.1:9"
    KEY="sk-cli-test-$$-$RANDOM"
}

teardown() {
    genfs_teardown
}

# Runs genfs in the foreground with a controlled environment (no key, no URL from outside,
# an empty XDG config home) plus the given env assignments, then the arguments.
# Usage: genfs_try [VAR=VALUE...] -- ARGS...
genfs_try() {
    local envs=()
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    run --separate-stderr timeout 10 env -u GENFS_API_KEY -u GENFS_API_URL \
        XDG_CONFIG_HOME="$CFG_HOME" XDG_STATE_HOME="$BATS_TEST_TMPDIR/xdg-state" \
        XDG_CACHE_HOME="$BATS_TEST_TMPDIR/xdg-cache" "${envs[@]}" "$GENFS" "$@"
}

# The refusal SPEC 2 asks for: status 2, exactly one line on stderr, nothing on stdout, no mount.
assert_refused() {
    if [ "$status" -ne 2 ]; then
        echo "exit status $status, expected 2; stderr: $stderr" >&2
        return 1
    fi
    if [ "${#stderr_lines[@]}" -ne 1 ]; then
        echo "stderr has ${#stderr_lines[@]} lines, expected 1:" >&2
        printf '%s\n' "$stderr" >&2
        return 1
    fi
    if [ -n "$output" ]; then
        echo "unexpected stdout: $output" >&2
        return 1
    fi
    if genfs_is_mounted; then
        echo "$MNT is mounted" >&2
        return 1
    fi
}

@test "--help exits 0 and lists the -o options" {
    run --separate-stderr "$GENFS" --help
    assert_success
    for o in api_url= key_file= config= state_dir= cache_dir= models= schedule= rate= provider= notify=; do
        assert_output --partial "-o $o"
    done
    assert_output --partial "MOUNTPOINT"
    assert_output --partial "--version"
}

@test "--version exits 0 and prints genfs and a version" {
    run --separate-stderr "$GENFS" --version
    assert_success
    assert_line --index 0 --regexp '^genfs [0-9]+\.[0-9]+'
}

@test "no mountpoint: exit 2, one line naming the mountpoint" {
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL"
    assert_refused
    [[ "$stderr" == *mountpoint* ]]
}

@test "no API key: exit 2, one line saying how to give one" {
    genfs_try -- -f -o "api_url=$NOURL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *GENFS_API_KEY* || "$stderr" == *key_file* ]]
}

@test "an empty GENFS_API_KEY counts as no key" {
    genfs_try GENFS_API_KEY= -- -f -o "api_url=$NOURL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
}

@test "a profile without a base URL and no api_url: exit 2, one line naming api_url" {
    # Every built-in has its base URL; a profile of one's own may not.
    python3 - "$GENFS_REPO_ROOT/profiles/apixo.json" "$BATS_TEST_TMPDIR/nobase.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
del p["base_url"]
json.dump(p, open(sys.argv[2], "w"))
PY
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "provider=$BATS_TEST_TMPDIR/nobase.json,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *api_url* ]]
}

@test "api_url ftp://: exit 2, one line saying http:// or https://" {
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=ftp://127.0.0.1/,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *http* ]]
}

@test "unknown schedule: exit 2, one line listing the schedules" {
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,schedule=sometimes,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *sometimes* ]]
    [[ "$stderr" == *fixed* && "$stderr" == *learned* ]]
}

@test "bad rate (abc, 0, -1): exit 2, one line naming rate" {
    for r in abc 0 -1; do
        genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,rate=$r,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
        assert_refused
        [[ "$stderr" == *rate* ]]
    done
}

@test "key_file readable by others (644) is refused; chmod 600 then mounts and its key is used" {
    sim_start --time-scale 0.01
    printf '%s\n' "$GENFS_SIM_KEY" >"$BATS_TEST_TMPDIR/key"
    chmod 644 "$BATS_TEST_TMPDIR/key"
    genfs_try -- -f -o "api_url=$SIM_URL,key_file=$BATS_TEST_TMPDIR/key,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *key_file* ]]
    [[ "$stderr" == *600* ]]
    [[ "$stderr" != *"$GENFS_SIM_KEY"* ]]

    chmod 600 "$BATS_TEST_TMPDIR/key"
    # The environment holds a wrong key: the file's key must win.
    GENFS_SIM_KEY=sk-not-the-right-one genfs_mount -o "key_file=$BATS_TEST_TMPDIR/key,config=$(genfs_fast_config),schedule=adaptive"
    genfs_is_mounted
    run gfs submit "$MNT/test-image/new" '{"prompt": "key from file", "sim_duration_ms": 100}'
    assert_success
    id=${output#ok }
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    assert_output --regexp '^https?://'
}

@test "unknown key in an explicit config: exit 2, one line naming the key" {
    printf '{"api_url": "%s", "colour": "blue"}\n' "$NOURL" >"$BATS_TEST_TMPDIR/c.json"
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "config=$BATS_TEST_TMPDIR/c.json,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *colour* ]]
}

@test "unknown key in the default config (XDG_CONFIG_HOME/genfs/config.json) is refused too" {
    mkdir -p "$CFG_HOME/genfs"
    printf '{"colour": "blue"}\n' >"$CFG_HOME/genfs/config.json"
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *colour* ]]
}

@test "config keys of the wrong type or range: exit 2, one line naming the file and the key's path" {
    local c json key
    for c in '{"rate": "fast"}|rate' '{"timeout": 0}|timeout' '{"callback_poll": 90000}|callback_poll' \
        '{"schedule": 5}|schedule' '{"log_level": true}|log_level' '{"cache_max_bytes": -1}|cache_max_bytes' \
        '{"models": [1]}|models[]' '{"models": {"flux-2": {"initial_ms": "soon"}}}|models.flux-2.initial_ms' \
        '{"models": {"flux-2": {"interval_ms": 5}}}|models.flux-2.interval_ms' \
        '{"models": {"flux-2": 3}}|models.flux-2' '{"providers": {"r": {"profile": 3}}}|providers.r.profile'; do
        json=${c%|*}
        key=${c##*|}
        printf '%s\n' "$json" >"$BATS_TEST_TMPDIR/c.json"
        genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,config=$BATS_TEST_TMPDIR/c.json,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
        assert_refused || fail "config $json"
        [[ "$stderr" == *"c.json"* && "$stderr" == *"$key"* ]] ||
            fail "config $json: the message names neither the file nor $key: $stderr"
    done
}

@test "a config that is not JSON: exit 2, one line naming the file" {
    printf '{\n  "rate": 5,\n  "models": [nano-banana]\n}\n' >"$BATS_TEST_TMPDIR/c.json"
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,config=$BATS_TEST_TMPDIR/c.json,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *c.json* ]]
    [[ "$stderr" == *"line 3, column 14"* ]]
}

@test "an explicit config that cannot be read (missing, a directory): exit 2, one line" {
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,config=$BATS_TEST_TMPDIR/nope.json,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *nope.json* ]]
    mkdir "$BATS_TEST_TMPDIR/adir"
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,config=$BATS_TEST_TMPDIR/adir,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *adir* ]]
    # Mode 000 only stops someone other than root.
    if [ "$(id -u)" -ne 0 ]; then
        printf '{}\n' >"$BATS_TEST_TMPDIR/locked.json"
        chmod 000 "$BATS_TEST_TMPDIR/locked.json"
        genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,config=$BATS_TEST_TMPDIR/locked.json,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
        assert_refused
        [[ "$stderr" == *locked.json* ]]
    fi
}

@test "a bad model name in -o models: exit 2, one line" {
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,models=good:README,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *README* ]]
}

@test "notify=maybe: exit 2, one line" {
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,notify=maybe,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *notify* ]]
}

@test "the default schedule is learned (stats says so)" {
    sim_start --time-scale 0.01
    genfs_mount
    run genfs_stats_get 'd["schedule"]'
    assert_success
    assert_output learned
}

@test "the key never shows in ps, MOUNT/log, stats or the daemon's own log" {
    sim_start --time-scale 0.01
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive"
    id=$(genfs_submit test-image '{"prompt": "secret keeping", "sim_duration_ms": 100}')
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    # A refused submission and a failed one put more lines in the log.
    mkdir "$MNT/nosuchmodel"
    run gfs write "$MNT/nosuchmodel/new" text:hello
    assert_output ENOENT
    run gfs write "$MNT/test-image/new" 'text:{"sim_credits": "none", "prompt": "x"}'
    assert_output EDQUOT
    [ -n "$GENFS_SIM_KEY" ]
    run ps -o args= -p "$GENFS_PID"
    assert_success
    assert_output --partial "$MNT"
    refute_output --partial "$GENFS_SIM_KEY"
    run cat "$MNT/log"
    assert_success
    assert_output --partial nosuchmodel
    refute_output --partial "$GENFS_SIM_KEY"
    run cat "$MNT/stats"
    assert_success
    refute_output --partial "$GENFS_SIM_KEY"
    run cat "$GENFS_LOG"
    refute_output --partial "$GENFS_SIM_KEY"
}

@test "with key_file the key is in no process argument and no log either" {
    sim_start --time-scale 0.01
    printf '%s\n' "$GENFS_SIM_KEY" >"$BATS_TEST_TMPDIR/key"
    chmod 600 "$BATS_TEST_TMPDIR/key"
    genfs_mount -o "key_file=$BATS_TEST_TMPDIR/key"
    run ps -o args= -p "$GENFS_PID"
    assert_output --partial "key_file=$BATS_TEST_TMPDIR/key"
    refute_output --partial "$GENFS_SIM_KEY"
    run cat "$MNT/log" "$MNT/stats" "$GENFS_LOG"
    refute_output --partial "$GENFS_SIM_KEY"
}

@test "an unknown log_level: exit 2, one line naming the levels" {
    genfs_try GENFS_API_KEY="$KEY" -- -f -o "api_url=$NOURL,log_level=loud,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_refused
    [[ "$stderr" == *log_level* && "$stderr" == *"error, warn, info or debug"* ]]
}
