#!/usr/bin/env bats
# Issue 13: one mount serving several providers at once, named in the config.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
    # A second simulator speaking fal, with its own key.
    FAL_KEY_VALUE="fal-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    FAL_PORT_FILE="$BATS_TEST_TMPDIR/fal.port"
    GENFS_SIM_KEY="$FAL_KEY_VALUE" "$(sim_bin)" --protocol fal --time-scale 0.01 \
        --listen 127.0.0.1:0 --port-file "$FAL_PORT_FILE" >"$BATS_TEST_TMPDIR/fal.log" 2>&1 3>&- &
    FAL_PID=$!
    wait_until 10 test -s "$FAL_PORT_FILE"
    FAL_URL="http://127.0.0.1:$(cat "$FAL_PORT_FILE")"
    install -m 600 /dev/null "$BATS_TEST_TMPDIR/fal.key"
    printf '%s\n' "$FAL_KEY_VALUE" >"$BATS_TEST_TMPDIR/fal.key"
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    cat >"$CONFIG" <<JSON
{"providers": {"fal": {"api_url": "$FAL_URL", "key_file": "$BATS_TEST_TMPDIR/fal.key"}},
 "models": {"fal-ai/test-image": {"provider": "fal", "initial_ms": 100, "interval_ms": 100, "max_ms": 600000},
            "fal-ai/test/video": {"provider": "fal"},
            "test-image": {"initial_ms": 100, "interval_ms": 100, "max_ms": 600000}}}
JSON
}

teardown() {
    genfs_teardown
    kill "$FAL_PID" 2>/dev/null || true
    wait "$FAL_PID" 2>/dev/null || true
}

fal_task() {
    curl -s "$FAL_URL/_sim/tasks/$1"
}

@test "models of two providers in one mount: each task goes to its own provider with its own key" {
    GENFS_MODELS=test-image genfs_mount -o config="$CONFIG"
    run cat "$MNT/test-image/.provider"
    assert_output apixo
    run cat "$MNT/fal-ai/test-image/.provider"
    assert_output fal

    nid=$(genfs_submit test-image '{"prompt": "apixo one", "sim_duration_ms": 300}')
    fid=$(genfs_submit fal-ai/test-image '{"prompt": "fal one", "sim_duration_ms": 300}')
    run timeout 30 cat "$MNT/test-image/$nid/result"
    assert_success
    assert_output "$(sim_task "$nid" | sim_json 'd["result_urls"][0]')"
    run timeout 30 cat "$MNT/fal-ai/test-image/$fid/result"
    assert_success
    assert_output "$(fal_task "$fid" | sim_json 'd["result_urls"][0]')"
    # Each provider saw only its own task.
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 1
    assert_equal "$(curl -s "$FAL_URL/_sim/figures" | sim_json 'd["tasks"]')" 1
}

@test "a model made by mkdir in a provider's namespace belongs to that provider, also after remount" {
    GENFS_MODELS=test-image genfs_mount -o config="$CONFIG"
    run mkdir "$MNT/fal-ai/test/audio"
    assert_success
    run cat "$MNT/fal-ai/test/audio/.provider"
    assert_output fal
    genfs_unmount
    GENFS_MODELS=test-image genfs_mount -o config="$CONFIG"
    run cat "$MNT/fal-ai/test/audio/.provider"
    assert_output fal
    fid=$(genfs_submit fal-ai/test/audio '{"prompt": "fal audio", "sim_duration_ms": 300}')
    run timeout 30 cat "$MNT/fal-ai/test/audio/$fid/result"
    assert_success
}

@test "a model naming an unknown provider is refused at start, naming the key" {
    cat >"$CONFIG" <<'JSON'
{"models": {"x/y": {"provider": "nowhere"}}}
JSON
    run timeout 20 env GENFS_API_KEY="$GENFS_SIM_KEY" "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,config=$CONFIG" "$MNT"
    assert_equal "$status" 2
    assert_output --partial "models.x/y.provider"
}

@test "a config provider without a key_file is refused at start" {
    cat >"$CONFIG" <<JSON
{"providers": {"fal": {"api_url": "$FAL_URL"}}}
JSON
    run timeout 20 env GENFS_API_KEY="$GENFS_SIM_KEY" "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,state_dir=$STATE_DIR,config=$CONFIG" "$MNT"
    assert_equal "$status" 2
    assert_output --partial "providers.fal needs a key_file"
}
