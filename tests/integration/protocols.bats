#!/usr/bin/env bats
# Issue 16: the core cases against every built-in protocol, as the real
# services answer (genfs-sim follows tests/fixtures/providers): submit and a
# blocking result, files/, a failed task with its reason in error, refusals
# with their errno and the provider's reason in log, callbacks. Then what is
# particular to each: APIXO's models that want more than a prompt, kie's
# in-body errors, Replicate's output shapes and end states, fal's apps.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

teardown() {
    genfs_teardown
}

# proto_setup PROTOCOL [MODELS] [GENFS ARGS...]: the sim speaking PROTOCOL, genfs mounted with
# that built-in profile (fast polls, so the tests wait on the sim's clock, not on genfs).
proto_setup() {
    local p=$1 models=${2:-}
    shift 2 || shift $#
    [ -n "$models" ] || models=$(genfs_image_model "$p")
    genfs_setup --protocol "$p" --time-scale 0.01
    SIM_PROTOCOL=$p
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    python3 - "$models" >"$CONFIG" <<'PY'
import json, sys
print(json.dumps({"models": {m: {"initial_ms": 100, "interval_ms": 150, "max_ms": 600000}
                             for m in sys.argv[1].split(":")}}))
PY
    GENFS_MODELS=$models genfs_mount -o "config=$CONFIG,provider=$p" "$@"
}

# DIR lists at least N entries.
files_listed() {
    [ "$(ls "$1" | wc -l)" -ge "$2" ]
}

core_success() {
    local p=$1 m
    proto_setup "$p"
    m=$(genfs_image_model "$p")
    id=$(genfs_submit "$m" '{"prompt": "a lighthouse at dawn", "sim_duration_ms": 400}')
    [ -n "$id" ]
    run timeout 120 cat "$MNT/$m/$id/result"
    assert_success
    assert_equal "${#lines[@]}" 1
    [[ "${lines[0]}" == http://127.0.0.1:* ]]
    run cat "$MNT/$m/$id/state"
    assert_output success
    # files/ lists a file once it is whole: the download may still be running.
    wait_until 60 files_listed "$MNT/$m/$id/files" 1
    f=$(ls "$MNT/$m/$id/files/")
    run timeout 60 sha256sum "$MNT/$m/$id/files/$f"
    assert_output "$(sim_task "$id" | sim_json 'd["media_sha256"][0]')  $MNT/$m/$id/files/$f"
    assert_equal "$(sim_task "$id" | sim_json 'd["prompt"]')" "a lighthouse at dawn"
}

core_failed() {
    local p=$1 m
    proto_setup "$p"
    m=$(genfs_image_model "$p")
    id=$(genfs_submit "$m" '{"prompt": "x", "sim_duration_ms": 300, "sim_outcome": "failed",
        "sim_fail_code": "NSFW_DETECTED", "sim_fail_msg": "the image was flagged"}')
    [ -n "$id" ]
    assert_equal "$(errno_of_read "$MNT/$m/$id/result")" EIO
    run cat "$MNT/$m/$id/state"
    assert_output failed
    run cat "$MNT/$m/$id/error"
    assert_output --partial "the image was flagged"
}

core_refused() {
    local p=$1 m
    proto_setup "$p"
    m=$(genfs_image_model "$p")
    assert_equal "$(errno_of_write "$MNT/$m/new" '{"prompt": "x", "sim_reject": 400}')" EINVAL
    assert_equal "$(errno_of_write "$MNT/$m/new" '{"prompt": "x", "sim_credits": "none"}')" EDQUOT
    run cat "$MNT/log"
    assert_output --partial "(400"
    assert_output --partial "(402"
    # Each refusal is said once.
    [ "$(grep -c '(400' "$MNT/log")" -eq 1 ]
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
}

core_callback() {
    local p=$1 m port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    m=$(genfs_image_model "$p")
    genfs_setup --protocol "$p" --time-scale 0.01
    CONFIG="$BATS_TEST_TMPDIR/config.json"
    # Polls alone would come after 60 s: only the callback can answer the reader in time.
    printf '{"models": {"%s": {"initial_ms": 60000, "interval_ms": 60000, "max_ms": 600000}}}\n' \
        "$m" >"$CONFIG"
    GENFS_MODELS=$m genfs_mount -o "config=$CONFIG,provider=$p" \
        -o "callback_url=http://127.0.0.1:$port/cb,callback_listen=127.0.0.1:$port,callback_poll=120"
    id=$(genfs_submit "$m" '{"prompt": "called back", "sim_duration_ms": 500}')
    run timeout 30 cat "$MNT/$m/$id/result"
    assert_success
    [[ "$output" == http://127.0.0.1:* ]]
    [ "$(genfs_stats_get 'd["callbacks"]["accepted"]')" -ge 1 ]
}

@test "apixo: submit, a blocking result, files/ with the provider's bytes" { core_success apixo; }
@test "kie: submit, a blocking result, files/ with the provider's bytes" { core_success kie; }
@test "replicate: submit, a blocking result, files/ with the provider's bytes" { core_success replicate; }
@test "fal: submit, a blocking result, files/ with the provider's bytes" { core_success fal; }

@test "apixo: a failed task: EIO, error holds the reason" { core_failed apixo; }
@test "kie: a failed task: EIO, error holds the reason" { core_failed kie; }
@test "replicate: a failed task: EIO, error holds the reason" { core_failed replicate; }
@test "fal: a failed task: EIO, error holds the reason" { core_failed fal; }

@test "apixo: refusals: EINVAL and EDQUOT, the reason in log once" { core_refused apixo; }
@test "kie: refusals: EINVAL and EDQUOT, the reason in log once" { core_refused kie; }
@test "replicate: refusals: EINVAL and EDQUOT, the reason in log once" { core_refused replicate; }
@test "fal: refusals: EINVAL and EDQUOT, the reason in log once" { core_refused fal; }

@test "apixo: a callback answers the reader before any poll would" { core_callback apixo; }
@test "kie: a callback answers the reader before any poll would" { core_callback kie; }
@test "replicate: a callback answers the reader before any poll would" { core_callback replicate; }
@test "fal: a callback answers the reader before any poll would" { core_callback fal; }

@test "apixo is the default: no provider option speaks it, and a refused input's reason reaches log" {
    genfs_setup --time-scale 0.01
    GENFS_MODELS=flux-2 genfs_mount -o config="$(genfs_fast_config)"
    run cat "$MNT/flux-2/.provider"
    assert_output apixo
    # flux2 wants a mode beside the prompt: refused, with APIXO's own reason.
    assert_equal "$(errno_of_write "$MNT/flux-2/new" 'a fox in the snow')" EINVAL
    run cat "$MNT/log"
    assert_output --partial "input.mode"
    # defaults.json gives it to every input; request.json the routing field.
    echo '{"mode": "pro-text-to-image", "sim_duration_ms": 300}' >"$MNT/flux-2/defaults.json"
    echo '{"provider": "official"}' >"$MNT/flux-2/request.json"
    run cat "$MNT/flux-2/defaults.json"
    assert_output '{"mode":"pro-text-to-image","sim_duration_ms":300}'
    id=$(genfs_submit flux-2 'a fox in the snow')
    run timeout 120 cat "$MNT/flux-2/$id/result"
    assert_success
    assert_equal "$(sim_task "$id" | sim_json 'd["input"]["mode"]')" pro-text-to-image
    assert_equal "$(sim_task "$id" | sim_json 'd["provider"]')" official
    run cat "$MNT/flux-2/$id/input.json"
    assert_output --partial '"mode":"pro-text-to-image"'
    # The settings last: a remount still has them.
    genfs_unmount
    GENFS_MODELS=flux-2 genfs_mount -o config="$(genfs_fast_config)"
    run cat "$MNT/flux-2/defaults.json"
    assert_output '{"mode":"pro-text-to-image","sim_duration_ms":300}'
    # Something that cannot be an object is refused at the write.
    run bash -c "echo 'mode=pro' > '$MNT/flux-2/defaults.json'"
    assert_failure
}

@test "kie: an error code inside an HTTP 200 is a refusal with its reason" {
    genfs_setup --protocol kie --time-scale 0.01 --fault errors_in_body=1
    GENFS_MODELS=grok-imagine/text-to-image genfs_mount -o provider=kie
    assert_equal "$(errno_of_write "$MNT/grok-imagine/text-to-image/new" '{"prompt": "x", "sim_credits": "none"}')" EDQUOT
    run cat "$MNT/log"
    assert_output --partial "(402"
}

@test "replicate: named outputs, tokens, data: URIs and nested arrays all land in files/" {
    proto_setup replicate test/demucs:test/text:test/datauri:test/nested
    d=$(genfs_submit test/demucs '{"prompt": "stems", "audio": "https://example.com/a.mp3", "sim_duration_ms": 300}')
    t=$(genfs_submit test/text '{"prompt": "say hello", "sim_duration_ms": 300}')
    u=$(genfs_submit test/datauri '{"prompt": "inline", "sim_duration_ms": 300}')
    n=$(genfs_submit test/nested '{"prompt": "three", "sim_duration_ms": 300}')
    for x in "test/demucs/$d" "test/text/$t" "test/datauri/$u" "test/nested/$n"; do
        run timeout 120 cat "$MNT/$x/result"
        assert_success
        run cat "$MNT/$x/state"
        assert_output success
    done
    # demucs: one file per stem, named after its key; null stems are not files.
    wait_until 60 files_listed "$MNT/test/demucs/$d/files" 4
    run ls "$MNT/test/demucs/$d/files"
    [ "${#lines[@]}" -eq 4 ]
    assert_output --partial vocals.wav
    # text: the tokens joined, readable as a file, and result names it.
    run timeout 60 cat "$MNT/test/text/$t/files/output.txt"
    assert_success
    [ -n "$output" ]
    expected=$(sim_status_proto replicate test/text "$t" | python3 -c 'import json,sys; print("".join(json.load(sys.stdin)["output"]), end="")')
    assert_equal "$output" "$expected"
    run cat "$MNT/test/text/$t/result"
    assert_output files/output.txt
    # data: URI: decoded into the file, never fetched.
    run timeout 60 sha256sum "$MNT/test/datauri/$u/files/0.png"
    assert_output "$(sim_task "$u" | sim_json 'd["media_sha256"][0]')  $MNT/test/datauri/$u/files/0.png"
    assert_equal "$(sim_task "$u" | sim_json 'd["media_requests"]')" 0
    # nested arrays: three files, by index.
    wait_until 60 files_listed "$MNT/test/nested/$n/files" 3
    run ls "$MNT/test/nested/$n/files"
    [ "${#lines[@]}" -eq 3 ]
}

@test "replicate: canceled and aborted predictions are failed, and error says which" {
    proto_setup replicate test/canceled:test/aborted
    c=$(genfs_submit test/canceled '{"prompt": "x", "sim_duration_ms": 300}')
    a=$(genfs_submit test/aborted '{"prompt": "x", "sim_duration_ms": 300}')
    assert_equal "$(errno_of_read "$MNT/test/canceled/$c/result")" EIO
    assert_equal "$(errno_of_read "$MNT/test/aborted/$a/result")" EIO
    run cat "$MNT/test/canceled/$c/error"
    assert_output --partial canceled
    run cat "$MNT/test/aborted/$a/error"
    assert_output --partial aborted
}

@test "replicate: a model by version and a deployment submit where Replicate wants them" {
    # genfs-sim's version id of test/image (docs/simulator.md).
    v=$(printf 'genfs-sim:test/image' | sha256sum | cut -c1-64)
    proto_setup replicate "test/image:$v:deployments/test/image"
    a=$(genfs_submit "test/image:$v" '{"prompt": "by version", "sim_duration_ms": 300}')
    b=$(genfs_submit deployments/test/image '{"prompt": "deployed", "sim_duration_ms": 300}')
    for x in "test/image:$v/$a" "deployments/test/image/$b"; do
        run timeout 120 cat "$MNT/$x/result"
        assert_success
    done
    run grep -E "POST /v1/predictions|POST /v1/deployments/test/image/predictions" "$SIM_LOG"
    assert_output --partial "POST /v1/predictions"
    assert_output --partial "POST /v1/deployments/test/image/predictions"
}

@test "replicate: a webhook body with 100 KB of logs is taken as a hint" {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    genfs_setup --protocol replicate --time-scale 0.01
    printf '{"models": {"test/longlogs": {"initial_ms": 60000, "interval_ms": 60000}}}\n' \
        >"$BATS_TEST_TMPDIR/c.json"
    GENFS_MODELS=test/longlogs genfs_mount -o "config=$BATS_TEST_TMPDIR/c.json,provider=replicate" \
        -o "callback_url=http://127.0.0.1:$port/cb,callback_listen=127.0.0.1:$port,callback_poll=120"
    id=$(genfs_submit test/longlogs '{"prompt": "talkative", "sim_duration_ms": 500}')
    run timeout 30 cat "$MNT/test/longlogs/$id/result"
    assert_success
    [ "$(genfs_stats_get 'd["callbacks"]["accepted"]')" -ge 1 ]
    assert_equal "$(genfs_stats_get 'd["callbacks"]["rejected"]')" 0
}

@test "fal: an endpoint with a sub-path is polled on its app, also when adopted" {
    proto_setup fal fal-ai/flux/dev
    id=$(genfs_submit fal-ai/flux/dev '{"prompt": "on the app", "sim_duration_ms": 300}')
    run timeout 120 cat "$MNT/fal-ai/flux/dev/$id/result"
    assert_success
    # A request submitted elsewhere, adopted with mkdir.
    other=$(sim_submit_input fal fal-ai/flux/dev '{"prompt": "elsewhere", "sim_duration_ms": 300}')
    mkdir "$MNT/fal-ai/flux/dev/$other"
    run timeout 120 cat "$MNT/fal-ai/flux/dev/$other/result"
    assert_success
    [[ "$output" == http://127.0.0.1:* ]]
}

@test "fal: a validation failure names the field and the reason in error" {
    proto_setup fal
    id=$(genfs_submit fal-ai/test-image '{"prompt": "x", "sim_duration_ms": 300, "sim_outcome": "failed",
        "sim_fail_loc": "prompt", "sim_fail_msg": "ensure this value has at most 2500 characters"}')
    assert_equal "$(errno_of_read "$MNT/fal-ai/test-image/$id/result")" EIO
    run cat "$MNT/fal-ai/test-image/$id/error"
    assert_output --partial "prompt: ensure this value has at most 2500 characters"
}

@test "fal: COMPLETED but the result keeps answering 5xx: a few tries, then failed with the reason" {
    proto_setup fal
    sim_faults '{"result_5xx": 1000, "result_5xx_status": 502}' >/dev/null
    id=$(genfs_submit fal-ai/test-image '{"prompt": "x", "sim_duration_ms": 300}')
    assert_equal "$(errno_of_read "$MNT/fal-ai/test-image/$id/result")" EIO
    run cat "$MNT/fal-ai/test-image/$id/error"
    assert_output --partial "result_unavailable"
    assert_output --partial "502"
    # A few tries, not a poll every interval until the deadline.
    [ "$(sim_task "$id" | sim_json 'd["result_requests"]')" -le 6 ]
}
