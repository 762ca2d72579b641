#!/usr/bin/env bats
# Issue 22: start-up tells the user what is wrong while they are still looking:
# one cheap request per provider at mount time (-o check=warn by default).

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

bats_require_minimum_version 1.5.0

setup() {
    genfs_setup --time-scale 0.01
}

teardown() {
    genfs_teardown
}

@test "a wrong key: the mount comes up, and the terminal is told at once, naming the URL" {
    GENFS_SIM_KEY=sk-not-this-one GENFS_CHECK=warn genfs_mount
    run grep "provider apixo" "$GENFS_LOG"
    assert_success
    assert_output --partial "refused the API key (401"
    assert_output --partial "$SIM_URL"
    assert_output --partial "key_file"
    [ -f "$MNT/test-image/new" ]
}

@test "an api_url where nothing listens: a warning naming it, and an offline mount still works" {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    SIM_URL="http://127.0.0.1:$port" GENFS_CHECK=warn genfs_mount
    run grep "nothing answered at http://127.0.0.1:$port" "$GENFS_LOG"
    assert_success
    [ -f "$MNT/test-image/new" ]
}

@test "-o check=fail: a refused key stops the start with one line, nothing mounted" {
    run --separate-stderr timeout 20 env GENFS_API_KEY=sk-not-this-one "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR,check=fail" "$MNT"
    assert_equal "$status" 2
    assert_equal "${#stderr_lines[@]}" 1
    [[ "$stderr" == *"provider apixo: the provider refused the API key (401"* ]] || fail "$stderr"
    ! genfs_is_mounted || false
    # The right key passes the check: one status request for a task no one has.
    GENFS_CHECK=fail genfs_mount
    [ -f "$MNT/test-image/new" ]
    assert_equal "$(sim_figures | sim_json 'd["requests"]["status"]')" 2
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
}

@test "-o check=something: refused at start, naming the choices" {
    run --separate-stderr timeout 20 env GENFS_API_KEY=k "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR,check=maybe" "$MNT"
    assert_equal "$status" 2
    [[ "$stderr" == *"warn, fail or off"* ]] || fail "$stderr"
}
