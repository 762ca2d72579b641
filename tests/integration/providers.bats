#!/usr/bin/env bats
# Provider profiles (docs/providers.md) end to end: genfs mounted with -o provider=apixo, kie,
# replicate or fal against genfs-sim speaking that protocol (--protocol, docs/simulator.md).
# For each protocol: submit and result (bytes equal the sim's), a failed task (EIO, error
# file), errno of the provider's refusals, callbacks (webhooks) and nested model directories.
#
# Each area is a helper taking the protocol; the @test blocks call it once per protocol.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

bats_require_minimum_version 1.5.0

teardown() {
    genfs_teardown
}

# ---- per-protocol facts ---------------------------------------------------------------------

# What genfs's error file holds for a task failed with sim_fail_code E42 and
# sim_fail_msg "content policy": "CODE: MESSAGE"; replicate carries no code, and its
# status word stands in.
failed_error_text() {
    case $1 in
    apixo | kie | fal) echo "E42: content policy" ;;
    replicate) echo "failed: content policy" ;;
    esac
}

# The code each provider refuses an input without a prompt with (APIXO 400 with data.error,
# the others 422), and a model it lacks (kie: 422 "not supported", the others 404).
no_prompt_code() {
    case $1 in
    apixo) echo 400 ;;
    *) echo 422 ;;
    esac
}
unknown_model_code() {
    case $1 in
    kie) echo 422 ;;
    *) echo 404 ;;
    esac
}

# ---- common steps ---------------------------------------------------------------------------

# start_sim PROTOCOL [SIM ARGS...]: the sim speaking PROTOCOL, plus MNT/STATE_DIR/CACHE_DIR.
start_sim() {
    local p=$1
    shift
    SIM_PROTOCOL=$p
    export SIM_PROTOCOL
    genfs_setup --protocol "$p" "$@"
}

# poll_config FILE INITIAL_MS INTERVAL_MS MODEL...: a genfs config giving MODELs that schedule.
poll_config() {
    local f=$1 initial=$2 interval=$3 m sep=""
    shift 3
    {
        printf '{"models": {'
        for m in "$@"; do
            printf '%s\n  "%s": {"initial_ms": %s, "interval_ms": %s, "max_ms": 600000}' \
                "$sep" "$m" "$initial" "$interval"
            sep=,
        done
        printf '}}\n'
    } >"$f"
}

# mount_proto PROTOCOL MODELS [GENFS ARGS...]: mount with -o provider=PROTOCOL, the models
# (colon separated) polled every 100 ms.
mount_proto() {
    local p=$1 models=$2 cfg
    shift 2
    cfg="$BATS_TEST_TMPDIR/fast-config.json"
    local IFS=:
    # shellcheck disable=SC2086
    poll_config "$cfg" 100 100 $models
    unset IFS
    GENFS_MODELS=$models genfs_mount -o "provider=$p,config=$cfg" "$@"
}

log_lines() {
    wc -l <"$MNT/log"
}

# new_log_lines N: the lines of MOUNT/log after line N; fails when there are none.
new_log_lines() {
    local text
    text=$(tail -n +"$(($1 + 1))" "$MNT/log")
    if [ -z "$text" ]; then
        echo "no new line in MOUNT/log; it holds:" >&2
        cat "$MNT/log" >&2
        return 1
    fi
    printf '%s\n' "$text"
}

sim_count() {
    sim_figures | sim_json "$1"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now_ms() {
    date +%s%3N
}

# ---- 1. submit, result, state, files --------------------------------------------------------

check_submit() {
    local p=$1 m id want
    m=$(genfs_image_model "$p")
    start_sim "$p" --time-scale 0.01
    mount_proto "$p" "$m"
    id=$(genfs_submit "$m" '{"prompt": "a red fox", "sim_duration_ms": 1000, "sim_outputs": 2}')
    [ -n "$id" ]
    [ -d "$MNT/$m/$id" ]
    # The task reached the sim under the model id, slashes kept.
    assert_equal "$(sim_task "$id" | sim_json 'd["model"]')" "$m"
    run timeout 60 cat "$MNT/$m/$id/result"
    assert_success
    want=$(sim_task "$id" | sim_json '"\n".join(d["result_urls"])')
    [ "$(printf '%s\n' "$want" | wc -l)" -eq 2 ]
    assert_output "$want"
    run cat "$MNT/$m/$id/state"
    assert_output success
    run cat "$MNT/$m/$id/prompt"
    assert_output "a red fox"
    run cat "$MNT/$m/$id/error"
    assert_output ""
    run readlink "$MNT/$m/latest"
    assert_output "$id"
    local n sha
    for n in 0 1; do
        sha=$(sha256sum "$MNT/$m/$id/files/$n.png" | cut -d' ' -f1)
        assert_equal "$sha" "$(sim_task "$id" | sim_json "d['media_sha256'][$n]")"
    done
    # Listed once whole: both, now that they were read.
    run ls "$MNT/$m/$id/files"
    assert_success
    assert_output "$(printf '0.png\n1.png')"
}

@test "apixo: write to new, the id is a directory, result prints the sim's URLs, files/ match" {
    check_submit apixo
}

@test "kie: write to grok-imagine/text-to-image/new, the id is a directory, result prints the sim's URLs, files/ match" {
    check_submit kie
}

@test "replicate: write to test/image/new, the id is a directory, result prints the sim's URLs, files/ match" {
    check_submit replicate
}

@test "fal: write to fal-ai/test-image/new, the id is a directory, result prints the sim's URLs, files/ match" {
    check_submit fal
}

# ---- 2. a failed task -----------------------------------------------------------------------

check_failed() {
    local p=$1 m id
    m=$(genfs_image_model "$p")
    start_sim "$p" --time-scale 0.01
    mount_proto "$p" "$m"
    id=$(genfs_submit "$m" '{"prompt": "x", "sim_duration_ms": 500, "sim_outcome": "failed", "sim_fail_code": "E42", "sim_fail_msg": "content policy"}')
    [ -n "$id" ]
    [ -d "$MNT/$m/$id" ]
    run timeout 60 cat "$MNT/$m/$id/result"
    assert_failure
    assert_output --partial "Input/output error"
    run gfs read "$MNT/$m/$id/result"
    assert_failure
    assert_output EIO
    run cat "$MNT/$m/$id/state"
    assert_output failed
    run cat "$MNT/$m/$id/error"
    assert_success
    assert_output "$(failed_error_text "$p")"
    assert_equal "$(sim_task "$id" | sim_json 'd["final_state"]')" failed
    run ls "$MNT/$m/$id/files"
    assert_failure
}

@test "apixo: a failed task: result gives EIO, error holds failCode and failMsg" {
    check_failed apixo
}

@test "kie: a failed task: result gives EIO, error holds failCode and failMsg" {
    check_failed kie
}

@test "replicate: a failed task: result gives EIO, error holds the message (no code in replicate)" {
    check_failed replicate
}

@test "fal: a failed task: result gives EIO, error holds error_type and error" {
    check_failed fal
}

@test "replicate: a canceled prediction is failed: result gives EIO, error says there is no code" {
    start_sim replicate --time-scale 0.01
    mount_proto replicate test/image
    id=$(genfs_submit test/image '{"prompt": "never mind", "sim_duration_ms": 500, "sim_outcome": "canceled"}')
    [ -n "$id" ]
    run timeout 60 python3 "$GENFS_HELPERS_DIR/py/gfs.py" read "$MNT/test/image/$id/result"
    assert_failure
    assert_output EIO
    run cat "$MNT/test/image/$id/state"
    assert_output failed
    assert_equal "$(sim_task "$id" | sim_json 'd["final_state"]')" canceled
    # replicate's error is null for a cancel: its word stands in for the code, and says so.
    run cat "$MNT/test/image/$id/error"
    assert_output --regexp '^canceled: .*canceled'
}

# ---- 3. errno of the provider's refusals ----------------------------------------------------

# The namespace under which check_refusals makes an unknown model ("" = top level).
unknown_model_parent() {
    case $1 in
    apixo) echo "" ;;
    kie) echo grok-imagine/ ;;
    replicate) echo test/ ;;
    fal) echo fal-ai/ ;;
    esac
}

check_refusals() {
    local p=$1 m before unknown
    m=$(genfs_image_model "$p")
    start_sim "$p" --time-scale 0.01
    mount_proto "$p" "$m"

    # An input the provider rejects (no prompt): its 400/422 is EINVAL; the request reached it.
    local code
    code=$(no_prompt_code "$p")
    before=$(log_lines)
    run gfs write "$MNT/$m/new" 'text:{"negative_prompt": "dogs"}'
    assert_failure
    assert_output EINVAL
    assert_equal "$(sim_count 'd["requests"]["submit"]')" 1
    assert_equal "$(sim_count "d['responses'].get('$code', 0)")" 1
    run new_log_lines "$before"
    assert_success
    assert_output --partial "($code"
    # The provider's own reason, next to genfs's advice.
    assert_output --partial prompt

    # No credits: 402 is EDQUOT.
    before=$(log_lines)
    run gfs write "$MNT/$m/new" 'text:{"prompt": "x", "sim_credits": "none"}'
    assert_failure
    assert_output EDQUOT
    assert_equal "$(sim_count 'd["responses"].get("402", 0)')" 1
    run new_log_lines "$before"
    assert_success
    assert_output --partial 402

    # A model the provider lacks: mkdir adds it here, the provider's 404 is ENOENT (kie
    # answers 422 "not supported": EINVAL).
    unknown="$(unknown_model_parent "$p")no-such-model"
    run mkdir "$MNT/$unknown"
    assert_success
    [ -f "$MNT/$unknown/new" ]
    before=$(log_lines)
    run gfs write "$MNT/$unknown/new" text:hello
    assert_failure
    if [ "$p" = kie ]; then assert_output EINVAL; else assert_output ENOENT; fi
    # kie's two refusals share the code 422.
    local want=1
    [ "$p" != kie ] || want=2
    assert_equal "$(sim_count "d['responses'].get('$(unknown_model_code "$p")', 0)")" "$want"
    run new_log_lines "$before"
    assert_success
    assert_output --partial no-such-model

    # None of these made a task, and no task directory appeared.
    assert_equal "$(sim_count 'd["tasks"]')" 0
    run ls "$MNT/$m"
    assert_output "$(printf 'defaults.json\nnew\nrequest.json')"
}

check_wrong_key() {
    local p=$1 m before
    m=$(genfs_image_model "$p")
    start_sim "$p" --time-scale 0.01
    GENFS_SIM_KEY=sk-wrong-key-for-this-sim mount_proto "$p" "$m"
    before=$(log_lines)
    run gfs write "$MNT/$m/new" text:hello
    assert_failure
    assert_output EACCES
    run bash -c "cat > '$MNT/$m/new' <<<hello"
    assert_failure
    assert_output --partial "Permission denied"
    assert_equal "$(sim_count 'd["responses"].get("401", 0)')" 2
    assert_equal "$(sim_count 'd["tasks"]')" 0
    run new_log_lines "$before"
    assert_success
    assert_output --partial 401
}

@test "apixo: refusals: no prompt EINVAL, no credits EDQUOT, unknown model ENOENT" {
    check_refusals apixo
}

@test "kie: refusals: no prompt EINVAL, no credits EDQUOT, unknown model EINVAL (its 422)" {
    check_refusals kie
}

@test "replicate: refusals: no prompt EINVAL, no credits EDQUOT, unknown model ENOENT" {
    check_refusals replicate
}

@test "fal: refusals: no prompt EINVAL, no credits EDQUOT, unknown model ENOENT" {
    check_refusals fal
}

@test "apixo: a wrong API key: EACCES" {
    check_wrong_key apixo
}

@test "kie: a wrong API key (an in-body 401): EACCES" {
    check_wrong_key kie
}

@test "replicate: a wrong API key (Bearer): EACCES" {
    check_wrong_key replicate
}

@test "fal: a wrong API key (Key): EACCES" {
    check_wrong_key fal
}

# ---- 4. callbacks ---------------------------------------------------------------------------

check_callback() {
    local p=$1 m id port cb cfg t0 t1 want
    m=$(genfs_image_model "$p")
    # Real time: the task takes 1.5 s, polling would first look after 20 s.
    start_sim "$p" --time-scale 1
    port=$(free_port)
    cb="http://127.0.0.1:$port/cb"
    cfg="$BATS_TEST_TMPDIR/slow-config.json"
    poll_config "$cfg" 20000 20000 "$m"
    GENFS_MODELS=$m genfs_mount -o "provider=$p,config=$cfg" \
        -o "callback_url=$cb,callback_listen=127.0.0.1:$port,callback_poll=120"
    t0=$(now_ms)
    id=$(genfs_submit "$m" '{"prompt": "call me", "sim_duration_ms": 1500}')
    [ -n "$id" ]
    run timeout 30 cat "$MNT/$m/$id/result"
    t1=$(now_ms)
    assert_success
    want=$(sim_task "$id" | sim_json '"\n".join(d["result_urls"])')
    assert_output "$want"
    echo "result after $((t1 - t0)) ms"
    # A callback brings it within a few seconds; polling alone would take 20 s.
    [ $((t1 - t0)) -lt 8000 ]
    run cat "$MNT/$m/$id/state"
    assert_output success
    # The sim was given a callback URL under ours, and sent the callback.
    run sim_json 'd["callback_url"]' <<<"$(sim_task "$id")"
    assert_output --partial "$cb"
    assert_equal "$(sim_count 'd["requests"]["callback_sent"]')" 1
    # At most the callback-triggered status request (and perhaps one early poll).
    local polls
    polls=$(sim_task "$id" | sim_json 'd["status_requests"]')
    echo "status requests: $polls"
    [ "$polls" -le 2 ]
    if [ "$p" = fal ]; then
        assert_equal "$(sim_task "$id" | sim_json 'd["result_requests"]')" 1
        assert_equal "$(sim_count 'd["requests"]["result"]')" 1
    else
        assert_equal "$(sim_count 'd["requests"]["result"]')" 0
    fi
    run python3 -c "import json; print(json.load(open('$MNT/stats'))['callbacks']['accepted'])"
    assert_output 1

    # A failure comes by callback just as quickly.
    t0=$(now_ms)
    id=$(genfs_submit "$m" '{"prompt": "call me off", "sim_duration_ms": 1500, "sim_outcome": "failed", "sim_fail_code": "E42", "sim_fail_msg": "content policy"}')
    [ -n "$id" ]
    run timeout 30 python3 "$GENFS_HELPERS_DIR/py/gfs.py" read "$MNT/$m/$id/result"
    t1=$(now_ms)
    assert_failure
    assert_output EIO
    echo "failure after $((t1 - t0)) ms"
    [ $((t1 - t0)) -lt 8000 ]
    run cat "$MNT/$m/$id/error"
    assert_output "$(failed_error_text "$p")"
    [ "$(sim_task "$id" | sim_json 'd["status_requests"]')" -le 2 ]
    run python3 -c "import json; print(json.load(open('$MNT/stats'))['callbacks']['accepted'])"
    assert_output 2
}

@test "apixo: a callback brings a 1.5 s task's result at once, with at most 2 status requests" {
    check_callback apixo
}

@test "kie: a callBackUrl brings a 1.5 s task's result at once, with at most 2 status requests" {
    check_callback kie
}

@test "replicate: a webhook brings a 1.5 s prediction's result at once, with at most 2 status requests" {
    check_callback replicate
}

@test "fal: a fal_webhook brings a 1.5 s request's result at once: at most 2 status requests, 1 result request" {
    check_callback fal
}

# ---- 5. nested model directories ------------------------------------------------------------

# check_nested PROTOCOL MODELS NS SUB TOP_MODEL DEEP_MODEL: mount MODELS (colon separated),
# where TOP_MODEL is NS/NAME and DEEP_MODEL is NS/SUB/NAME; the sim gets "${SIM_EXTRA[@]}".
# ls shows the namespaces, mkdir in a namespace adds a model (kept across a remount), rmdir
# of a non-empty namespace is ENOTEMPTY, a model two levels down works, and mkdir in a
# nested model adopts a task.
check_nested() {
    local p=$1 models=$2 ns=$3 sub=$4 top_model=$5 deep_model=$6 id
    start_sim "$p" --time-scale 0.01 "${SIM_EXTRA[@]}"
    mount_proto "$p" "$models"

    run ls "$MNT"
    assert_success
    assert_line "$ns"
    refute_line "${top_model#"$ns"/}"
    run ls "$MNT/$ns"
    assert_success
    assert_line "${top_model#"$ns"/}"
    assert_line "$sub"
    [ -f "$MNT/$top_model/new" ]
    [ ! -e "$MNT/$ns/new" ]
    [ ! -e "$MNT/$ns/$sub/new" ]

    # mkdir inside a namespace adds a model.
    run mkdir "$MNT/$ns/$sub/new-model"
    assert_success
    [ -d "$MNT/$ns/$sub/new-model" ]
    [ -f "$MNT/$ns/$sub/new-model/new" ]
    run ls "$MNT/$ns/$sub"
    assert_line new-model
    # ... directly under the top namespace too.
    run mkdir "$MNT/$ns/top-new-model"
    assert_success
    [ -f "$MNT/$ns/top-new-model/new" ]
    run ls "$MNT/$ns"
    assert_line top-new-model

    # The models added survive a remount with the same state_dir.
    genfs_unmount
    mount_proto "$p" "$models"
    [ -f "$MNT/$ns/$sub/new-model/new" ]
    [ -f "$MNT/$ns/top-new-model/new" ]
    run ls "$MNT"
    assert_line "$ns"

    # A non-empty namespace cannot be removed.
    run rmdir "$MNT/$ns"
    assert_failure
    assert_output --partial "Directory not empty"
    run rmdir "$MNT/$ns/$sub"
    assert_failure
    assert_output --partial "Directory not empty"
    [ -d "$MNT/$ns/$sub/new-model" ]
    # The empty model just added can be.
    run rmdir "$MNT/$ns/$sub/new-model"
    assert_success
    [ ! -e "$MNT/$ns/$sub/new-model" ]

    # A model in a sub-namespace works end to end, under its full id.
    id=$(genfs_submit "$deep_model" '{"prompt": "deep", "sim_duration_ms": 500}')
    [ -n "$id" ]
    [ -d "$MNT/$deep_model/$id" ]
    run timeout 60 cat "$MNT/$deep_model/$id/result"
    assert_success
    assert_output "$(sim_task "$id" | sim_json 'd["result_urls"][0]')"
    assert_equal "$(sim_task "$id" | sim_json 'd["model"]')" "$deep_model"

    # mkdir inside a nested model adopts a task made outside genfs.
    id=$(sim_submit_input "$p" "$top_model" '{"prompt": "made elsewhere", "sim_duration_ms": 500}')
    [ -n "$id" ]
    run mkdir "$MNT/$top_model/$id"
    assert_success
    run timeout 60 cat "$MNT/$top_model/$id/result"
    assert_success
    assert_output "$(sim_task "$id" | sim_json 'd["result_urls"][0]')"
}

@test "apixo: nested model ids (from a sim profile) are namespaces; mkdir adds a model; rmdir non-empty ENOTEMPTY" {
    # APIXO's built-ins are flat: give the sim two nested models.
    local prof="$BATS_TEST_TMPDIR/sim-profile.json"
    cat >"$prof" <<'JSON'
{"models": {
  "acme/image": {"kind": "image", "median_ms": 5000, "sigma": 0.3, "min_ms": 2000, "max_ms": 15000},
  "acme/test/audio": {"kind": "audio", "median_ms": 5000, "sigma": 0.3, "min_ms": 2000, "max_ms": 15000}}}
JSON
    SIM_EXTRA=(--profile "$prof")
    check_nested apixo acme/image:acme/test/audio acme test acme/image acme/test/audio
}

@test "replicate: owner/name models are nested; mkdir test/new-model adds a model; rmdir test ENOTEMPTY" {
    # replicate ids are owner/name; a deeper one (the sim accepts slashes) checks the second level.
    local prof="$BATS_TEST_TMPDIR/sim-profile.json"
    cat >"$prof" <<'JSON'
{"models": {"test/more/audio": {"kind": "audio", "median_ms": 5000, "sigma": 0.3, "min_ms": 2000, "max_ms": 15000}}}
JSON
    SIM_EXTRA=(--profile "$prof")
    check_nested replicate test/image:test/audio:test/video:test/more/audio test more test/image test/more/audio
}

@test "fal: fal-ai holds test-image and test; mkdir fal-ai/test/new-model adds a model; rmdir fal-ai ENOTEMPTY" {
    SIM_EXTRA=()
    check_nested fal fal-ai/test-image:fal-ai/test/audio:fal-ai/test/video fal-ai test fal-ai/test-image fal-ai/test/audio
}

# ---- 6. profiles of the user's own ----------------------------------------------------------

@test "a user's own profile: -o provider=FILE, or NAME from XDG_CONFIG_HOME/genfs/profiles; a bad one is refused" {
    start_sim replicate --time-scale 0.01
    local xdg="$BATS_TEST_TMPDIR/xdg" id
    mkdir -p "$xdg/genfs/profiles"
    export XDG_CONFIG_HOME=$xdg
    # The built-in replicate profile under another name: it is the file that is used.
    sed 's/"name": "replicate"/"name": "mine"/' "$BATS_TEST_DIRNAME/../../profiles/replicate.json" \
        >"$BATS_TEST_TMPDIR/mine.json"
    grep -q '"name": "mine"' "$BATS_TEST_TMPDIR/mine.json"
    mount_proto "$BATS_TEST_TMPDIR/mine.json" test/image
    id=$(genfs_submit test/image '{"prompt": "from a file", "sim_duration_ms": 200}')
    run timeout 60 cat "$MNT/test/image/$id/result"
    assert_success
    assert_output "$(sim_task "$id" | sim_json 'd["result_urls"][0]')"
    genfs_unmount

    cp "$BATS_TEST_TMPDIR/mine.json" "$xdg/genfs/profiles/mine.json"
    mount_proto mine test/image
    id=$(genfs_submit test/image '{"prompt": "by name", "sim_duration_ms": 200}')
    run timeout 60 cat "$MNT/test/image/$id/result"
    assert_success
    assert_output "$(sim_task "$id" | sim_json 'd["result_urls"][0]')"
    genfs_unmount

    printf '{"name": "bad", "colour": 1}\n' >"$xdg/genfs/profiles/bad.json"
    run --separate-stderr timeout 10 env GENFS_API_KEY="$GENFS_SIM_KEY" "$(genfs_bin)" -f \
        -o "api_url=$SIM_URL,provider=bad,state_dir=$STATE_DIR,cache_dir=$CACHE_DIR" "$MNT"
    assert_equal "$status" 2
    assert_equal "${#stderr_lines[@]}" 1
    [[ "$stderr" == *"$xdg/genfs/profiles/bad.json"* && "$stderr" == *colour* ]] || fail "$stderr"
    ! genfs_is_mounted || false
}
