#!/usr/bin/env bats
# genfs-sim --protocol kie, replicate and fal driven with curl: the same tasks, states, media,
# faults, knobs and /_sim/ figures as the default APIXO protocol (sim.bats), in each provider's
# wire format as the real service answers (docs/simulator.md, "Protocols").
# Run: BUILD_DIR=build bats tests/integration/sim_protocols.bats

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'sim_helpers'

setup() {
    CB_PID=
}

teardown() {
    sim_stop
    if [ -n "${CB_PID:-}" ]; then
        kill "$CB_PID" 2>/dev/null
        wait "$CB_PID" 2>/dev/null
    fi
    true
}

# HTTP status of a request; the body goes to $BATS_TEST_TMPDIR/body, headers to .../headers.
http() {
    curl -sS --max-time 30 -o "$BATS_TEST_TMPDIR/body" -D "$BATS_TEST_TMPDIR/headers" \
        -w '%{http_code}' "$@"
}

body() {
    cat "$BATS_TEST_TMPDIR/body"
}

bodyj() {
    sim_json "$1" <"$BATS_TEST_TMPDIR/body"
}

wait_file() {
    local i
    for i in $(seq 1 100); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# Polls a status URL every 40 ms until the task ends; prints the distinct state words seen, in
# order, space-separated. $3: where the state is (Python on the answer d; default d["status"]).
states_seen() {
    python3 - "$1" "$2" "${3:-d[\"status\"]}" <<'EOF'
import json, sys, time, urllib.request
url, auth, expr = sys.argv[1], sys.argv[2], sys.argv[3]
seen = []
for _ in range(500):
    req = urllib.request.Request(url, headers={"Authorization": auth})
    d = json.load(urllib.request.urlopen(req, timeout=10))
    s = eval(expr, {"d": d})
    if not seen or seen[-1] != s:
        seen.append(s)
    if s in ("succeeded", "failed", "canceled", "aborted", "COMPLETED", "success", "fail"):
        break
    time.sleep(0.04)
print(" ".join(seen))
EOF
}

# Checks a malformed body never offers a usable id: $1 the JSON key of the id ("data.taskId"
# for an id inside data).
no_usable_id() {
    python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
for k in sys.argv[2].split("."):
    d = d.get(k) if isinstance(d, dict) else None
ok = isinstance(d, str) and d != ""
sys.exit(1 if ok else 0)' "$BATS_TEST_TMPDIR/body" "$1"
}

# malformed_submits KEY BODY URL: under malformed_rate=1, seven submits of BODY to URL (one of each
# malformed kind) answer 200 with no usable id at KEY.
malformed_submits() {
    local key="$1" body="$2" url="$3" i
    sim_faults '{"malformed_rate": 1}'
    for i in 1 2 3 4 5 6 7; do
        run http -X POST -H "$(sim_auth_proto)" -d "$body" "$url"
        assert_output 200
        run no_usable_id "$key"
        assert_success
    done
}

# ---- every protocol ---------------------------------------------------------------------------

@test "--protocol: native is gone (exit 2); APIXO is the default, without the others' models" {
    bin="$(sim_bin)"
    run "$bin" --protocol native
    assert_equal "$status" 2
    assert_output --partial "--protocol wants apixo, kie, replicate or fal"
    sim_start --quiet
    id="$(sim_submit_input apixo test-image '{"prompt":"x"}')"
    [[ "$id" =~ ^task_[a-z0-9]{20}$ ]]
    assert_equal "$(sim_figures | sim_json 'd["protocol"]')" apixo
    # the other protocols' test models are not added to APIXO
    run http -X POST -H "$(sim_auth_proto apixo)" -d '{"input":{"prompt":"x"}}' \
        "$SIM_URL/generateTask/test/image"
    assert_output 404
    # nor its routes to the others'
    sim_stop
    sim_start_proto kie --quiet
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"x"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_output 404
}

# ---- kie ----------------------------------------------------------------------------------------

@test "kie: createTask with the model in the body, recordInfo waiting -> ... -> success" {
    sim_start_proto kie --quiet --time-scale 0.01
    run http -X POST -H "$(sim_auth_proto)" -H 'Content-Type: application/json' \
        -d '{"model":"grok-imagine/text-to-image","input":{"prompt":"a red fox","aspect_ratio":"3:2","sim_duration_ms":1000000}}' \
        "$SIM_URL/api/v1/jobs/createTask"
    assert_output 200
    id="$(bodyj 'd["data"]["taskId"]')"
    seen="$(states_seen "$SIM_URL/api/v1/jobs/recordInfo?taskId=$id" "Bearer $GENFS_SIM_KEY" 'd["data"]["state"]')"
    assert_equal "$seen" "waiting queuing generating success"
    [[ "$id" =~ ^[0-9a-f]{32}$ ]]
    assert_equal "$(bodyj '[d["code"], d["msg"]]')" '[200, "success"]'
    b="$(sim_status_proto kie "" "$id")"
    assert_equal "$(printf '%s' "$b" | sim_json '[d["data"][k] for k in ("model", "state", "failCode", "failMsg")]')" \
        '["grok-imagine/text-to-image", "success", "", ""]'
    assert_equal "$(printf '%s' "$b" | sim_json 'json.loads(d["data"]["param"])["input"]["aspect_ratio"]')" 3:2
    # costTime is the generation's own time (the 70% after the queue), not the wait
    assert_equal "$(printf '%s' "$b" | sim_json 'd["data"]["costTime"] == (d["data"]["completeTime"] - d["data"]["createTime"]) * 7 // 10')" true
    url="$(sim_urls_proto kie "" "$id")"
    assert_equal "$url" "$SIM_URL/media/$id/0.png"
    run http "$url"
    assert_output 200
    assert_equal "$(sim_task "$id" | sim_json 'd["media_sha256"][0]')" \
        "$(sha256sum "$BATS_TEST_TMPDIR/body" | cut -d' ' -f1)"
}

@test "kie: its refusals come inside an HTTP 200; a failed task is state fail" {
    sim_start_proto kie --quiet --time-scale 0.01
    u="$SIM_URL/api/v1/jobs/createTask"
    run http -X POST -H 'Authorization: Bearer wrong' -d '{"model":"flux-2","input":{"prompt":"x"}}' "$u"
    assert_output 200
    assert_equal "$(bodyj '[d["code"], d["msg"], d["data"]]')" '[401, "You do not have access permissions", null]'
    run http -X POST -H "$(sim_auth_proto)" -d '{"model":"no/such","input":{"prompt":"x"}}' "$u"
    assert_output 200
    assert_equal "$(bodyj 'd["code"]')" 422
    run http -X POST -H "$(sim_auth_proto)" -d '{"model":"grok-imagine/text-to-image","input":{}}' "$u"
    assert_equal "$(bodyj '[d["code"], d["msg"]]')" '[422, "input.prompt is required"]'
    run http -X POST -H "$(sim_auth_proto)" -d '{"model":"grok-imagine/text-to-image","input":{"prompt":"x","sim_credits":"none"}}' "$u"
    assert_output 200
    assert_equal "$(bodyj 'd["code"]')" 402
    run http -H "$(sim_auth_proto)" "$SIM_URL/api/v1/jobs/recordInfo?taskId=nope"
    assert_output 200
    assert_equal "$(bodyj '[d["code"], d["msg"], d["data"]]')" '[422, "recordInfo is null", null]'
    run http -H "$(sim_auth_proto)" "$SIM_URL/api/v1/jobs/recordInfo"
    assert_equal "$(bodyj 'd["code"]')" 400
    assert_equal "$(sim_figures | sim_json '[d["tasks"], d["responses"]["422"], d["responses"]["401"]]')" '[0, 3, 1]'
    # a gateway fault is a real HTTP status; errors_in_body puts it in the body too
    sim_faults '{"error_502": 1}'
    run http -H "$(sim_auth_proto)" "$SIM_URL/api/v1/jobs/recordInfo?taskId=x"
    assert_output 502
    sim_faults '{"errors_in_body": 1}'
    run http -H "$(sim_auth_proto)" "$SIM_URL/api/v1/jobs/recordInfo?taskId=x"
    assert_output 200
    assert_equal "$(bodyj 'd["code"]')" 502
    sim_faults_reset
    id="$(sim_submit_input kie grok-imagine/text-to-image '{"prompt":"p","sim_duration_ms":10,"sim_outcome":"failed","sim_fail_code":"400","sim_fail_msg":"flagged"}')"
    b="$(sim_wait_done_proto kie "" "$id" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json '[d["data"][k] for k in ("state", "failCode", "failMsg", "resultJson")]')" \
        '["fail", "400", "flagged", ""]'
}

@test "kie: callBackUrl gets {code, msg, data}: 200 on success, 501 with the reason on failure" {
    sim_listen "$BATS_TEST_TMPDIR/cb.out" path
    sim_start_proto kie --quiet --time-scale 0.01
    hook="http://127.0.0.1:$CB_PORT/kie/cb"
    id="$(sim_submit_proto kie "" "{\"model\":\"grok-imagine/text-to-image\",\"callBackUrl\":\"$hook\",\"input\":{\"prompt\":\"p\",\"sim_duration_ms\":100}}" | sim_json 'd["data"]["taskId"]')"
    wait_file "$BATS_TEST_TMPDIR/cb.out"
    run sh -c "cut -d' ' -f2- '$BATS_TEST_TMPDIR/cb.out' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"code\"], d[\"msg\"], d[\"data\"][\"taskId\"], d[\"data\"][\"state\"])'"
    assert_output "200 success $id success"
    : >"$BATS_TEST_TMPDIR/cb.out"
    id2="$(sim_submit_proto kie "" "{\"model\":\"grok-imagine/text-to-image\",\"callBackUrl\":\"$hook\",\"input\":{\"prompt\":\"q\",\"sim_duration_ms\":10,\"sim_outcome\":\"failed\",\"sim_fail_msg\":\"boom\"}}" | sim_json 'd["data"]["taskId"]')"
    wait_file "$BATS_TEST_TMPDIR/cb.out"
    run sh -c "cut -d' ' -f2- '$BATS_TEST_TMPDIR/cb.out' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"code\"], d[\"msg\"], d[\"data\"][\"taskId\"], d[\"data\"][\"state\"])'"
    assert_output "501 boom $id2 fail"
}

@test "kie: malformed answers never hold a usable taskId" {
    sim_start_proto kie --quiet
    malformed_submits data.taskId '{"model":"flux-2","input":{"prompt":"p","mode":"pro-text-to-image"}}' \
        "$SIM_URL/api/v1/jobs/createTask"
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
}

# ---- replicate --------------------------------------------------------------------------------

@test "replicate: submit 201, starting -> processing -> succeeded, media sha256 matches" {
    sim_start_proto replicate --quiet --time-scale 0.01
    run http -X POST -H "$(sim_auth_proto)" -H 'Content-Type: application/json' \
        -d '{"input":{"prompt":"a red fox","sim_duration_ms":1000000}}' \
        "$SIM_URL/v1/models/test/image/predictions"
    assert_output 201
    id="$(bodyj 'd["id"]')"
    # polled at once: the queue phases last the first 30% (3 s; wide for a loaded machine)
    seen="$(states_seen "$SIM_URL/v1/predictions/$id" "Bearer $GENFS_SIM_KEY")"
    assert_equal "$seen" "starting processing succeeded"
    [[ "$id" =~ ^[a-z2-7]{26}$ ]]
    assert_equal "$(bodyj 'd["status"] + " " + d["model"] + " " + d["input"]["prompt"]')" \
        "starting test/image a red fox"
    assert_equal "$(bodyj 'd["urls"]["get"]')" "$SIM_URL/v1/predictions/$id"
    assert_equal "$(bodyj '[d["output"], d["error"], d["started_at"], d["completed_at"]]')" \
        "[null, null, null, null]"
    [[ "$(bodyj 'd["created_at"]')" =~ ^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-9:]{8}\.[0-9]{6}Z$ ]]
    b="$(sim_status_proto replicate "" "$id")"
    url="$(printf '%s' "$b" | sim_json 'd["output"]')"
    assert_equal "$url" "$SIM_URL/media/$id/0.png"
    [ "$(printf '%s' "$b" | sim_json 'd["completed_at"] is not None and d["metrics"]["predict_time"] > 0')" = true ]
    run http "$url"
    assert_output 200
    got="$(sha256sum "$BATS_TEST_TMPDIR/body" | cut -d' ' -f1)"
    t="$(sim_task "$id")"
    assert_equal "$(printf '%s' "$t" | sim_json 'd["media_sha256"][0]')" "$got"
    assert_equal "$(printf '%s' "$t" | sim_json 'd["final_state"]')" success
    f="$(sim_figures)"
    assert_equal "$(printf '%s' "$f" | sim_json 'd["requests"]["submit"]')" 1
    [ "$(printf '%s' "$f" | sim_json 'd["requests"]["status"]')" -ge 3 ]
    assert_equal "$(printf '%s' "$f" | sim_json 'd["requests"]["media"]')" 1
    assert_equal "$(printf '%s' "$f" | sim_json 'd["protocol"]')" replicate
}

@test "replicate: several outputs are an array; audio and video models" {
    sim_start_proto replicate --quiet --time-scale 0.01
    id="$(sim_submit_input replicate test/image '{"prompt":"p","sim_duration_ms":10,"sim_outputs":3}')"
    sim_wait_done_proto replicate "" "$id" 10 >/dev/null
    run sim_urls_proto replicate "" "$id"
    assert_equal "${#lines[@]}" 3
    assert_equal "${lines[2]}" "$SIM_URL/media/$id/2.png"
    a="$(sim_submit_input replicate test/audio '{"prompt":"la","sim_duration_ms":10}')"
    v="$(sim_submit_input replicate test/video '{"prompt":"run","sim_duration_ms":10}')"
    sim_wait_done_proto replicate "" "$a" 10 >/dev/null
    sim_wait_done_proto replicate "" "$v" 10 >/dev/null
    assert_equal "$(sim_urls_proto replicate "" "$a")" "$SIM_URL/media/$a/0.wav"
    assert_equal "$(sim_urls_proto replicate "" "$v")" "$SIM_URL/media/$v/0.gif"
    run http "$SIM_URL/media/$v/0.gif"
    assert_output 200
    run grep -i '^content-type: image/gif' "$BATS_TEST_TMPDIR/headers"
    assert_success
}

@test "replicate: a failed prediction carries sim_fail_msg; canceled is an outcome too" {
    sim_start_proto replicate --quiet --time-scale 0.01
    id="$(sim_submit_input replicate test/image '{"prompt":"p","sim_duration_ms":10,"sim_outcome":"failed","sim_fail_msg":"NSFW content detected"}')"
    b="$(sim_wait_done_proto replicate "" "$id" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json '[d["status"], d["error"], d["output"]]')" \
        '["failed", "NSFW content detected", null]'
    run http "$SIM_URL/media/$id/0.png"
    assert_output 404
    assert_equal "$(sim_task "$id" | sim_json 'd["final_state"] + " " + d["fail_msg"]')" \
        "failed NSFW content detected"
    c="$(sim_submit_input replicate test/image '{"prompt":"p","sim_duration_ms":10,"sim_outcome":"canceled"}')"
    b="$(sim_wait_done_proto replicate "" "$c" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json '[d["status"], d["error"]]')" '["canceled", null]'
    assert_equal "$(sim_task "$c" | sim_json 'd["final_state"]')" canceled
}

@test "replicate: 401 wrong key or scheme, 404 unknown model/prediction, 422, 402" {
    sim_start_proto replicate --quiet
    u="$SIM_URL/v1/models/test/image/predictions"
    run http -X POST -H 'Authorization: Bearer wrong' -d '{"input":{"prompt":"x"}}' "$u"
    assert_output 401
    assert_equal "$(bodyj '[d["title"], d["status"]]')" '["Unauthenticated", 401]'
    run http -X POST -H "Authorization: Key $GENFS_SIM_KEY" -d '{"input":{"prompt":"x"}}' "$u"
    assert_output 401
    run http -X POST -d '{"input":{"prompt":"x"}}' "$u"
    assert_output 401
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"x"}}' \
        "$SIM_URL/v1/models/no/such/predictions"
    assert_output 404
    assert_equal "$(bodyj 'd["status"]')" 404
    run http -H "$(sim_auth_proto)" "$SIM_URL/v1/predictions/nosuchprediction"
    assert_output 404
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{}}' "$u"
    assert_output 422
    assert_equal "$(bodyj 'd["title"] + " | " + d["detail"]')" \
        "Input validation failed | - input.prompt: required, must be a non-empty string"
    assert_equal "$(bodyj 'd["invalid_fields"][0]["field"]')" input.prompt
    run grep -i '^content-type: application/problem+json' "$BATS_TEST_TMPDIR/headers"
    assert_success
    run http -X POST -H "$(sim_auth_proto)" -d '{"prompt":"x"}' "$u"
    assert_output 422
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"x"},"webhook":"file:///x"}' "$u"
    assert_output 422
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"x","sim_credits":"none"}}' "$u"
    assert_output 402
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
    run http -X POST -H "$(sim_auth_proto)" "$SIM_URL/v1/predictions/nosuchprediction/cancel"
    assert_output 404
}

@test "replicate: community models by version, deployments, official models by name" {
    cat >"$BATS_TEST_TMPDIR/profile.json" <<'EOF'
{"models": {"acme/house-style": {"kind": "image", "median_ms": 1000, "sigma": 0,
 "min_ms": 10, "max_ms": 5000}}}
EOF
    sim_start_proto replicate --quiet --time-scale 0.01 --profile "$BATS_TEST_TMPDIR/profile.json"
    id="$(sim_submit_input replicate test/audio '{"prompt":"x"}')"
    version="$(sim_status_proto replicate "" "$id" | sim_json 'd["version"]')"
    [[ "$version" =~ ^[0-9a-f]{64}$ ]]
    run http -X POST -H "$(sim_auth_proto)" -d "{\"version\":\"$version\",\"input\":{\"prompt\":\"by version\"}}" \
        "$SIM_URL/v1/predictions"
    assert_output 201
    assert_equal "$(bodyj '[d["model"], d["version"], d["status"]]')" "[\"test/audio\", \"$version\", \"starting\"]"
    run http -X POST -H "$(sim_auth_proto)" -d "{\"version\":\"test/audio:$version\",\"input\":{\"prompt\":\"x\"}}" \
        "$SIM_URL/v1/predictions"
    assert_output 201
    run http -X POST -H "$(sim_auth_proto)" -d '{"version":"5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa","input":{"prompt":"x"}}' \
        "$SIM_URL/v1/predictions"
    assert_output 422
    assert_equal "$(bodyj 'd["title"] + " | " + d["detail"]')" \
        "Invalid version or not permitted | The specified version does not exist (or perhaps you don't have permission to use it?)"
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"deployed"}}' \
        "$SIM_URL/v1/deployments/acme/house-style/predictions"
    assert_output 201
    d="$(bodyj 'd["id"]')"
    b="$(sim_wait_done_proto replicate "" "$d" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json 'd["status"] + " " + d["output"]')" \
        "succeeded $SIM_URL/media/$d/0.png"
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"x"}}' \
        "$SIM_URL/v1/deployments/acme/none/predictions"
    assert_output 404
    assert_equal "$(bodyj 'd["detail"]')" "Deployment not found: acme/none"
}

@test "replicate: output shapes: demucs stems with nulls, nested arrays, data: URIs, text" {
    sim_start_proto replicate --quiet --time-scale 0.01
    dm="$(sim_submit_input replicate test/demucs '{"prompt":"a song","sim_duration_ms":10}')"
    ne="$(sim_submit_input replicate test/nested '{"prompt":"grid","sim_duration_ms":10}')"
    du="$(sim_submit_input replicate test/datauri '{"prompt":"inline","sim_duration_ms":10}')"
    tk="$(sim_submit_input replicate test/text '{"prompt":"say","sim_duration_ms":10}')"
    ts="$(sim_submit_input replicate test/text-string '{"prompt":"say","sim_duration_ms":10}')"
    for i in "$dm" "$ne" "$du" "$tk" "$ts"; do sim_wait_done_proto replicate "" "$i" 10 >/dev/null; done
    assert_equal "$(sim_status_proto replicate "" "$dm" | sim_json '{k: (v and v.rsplit("/", 1)[1]) for k, v in d["output"].items()}')" \
        '{"vocals": "0.wav", "bass": "1.wav", "drums": "2.wav", "guitar": null, "piano": null, "other": "3.wav"}'
    run sim_urls_proto replicate "" "$dm"
    assert_equal "${#lines[@]}" 4
    run http "$SIM_URL/media/$dm/3.wav"
    assert_output 200
    assert_equal "$(sim_status_proto replicate "" "$ne" | sim_json '[len(x) for x in d["output"]]')" "[2, 1]"
    # the data: URI holds the very bytes the media URL would serve
    sim_status_proto replicate "" "$du" | sim_json 'd["output"]' >"$BATS_TEST_TMPDIR/uri"
    run python3 -c '
import base64, sys
u = open(sys.argv[1]).read().strip()
head, b64 = u.split(",", 1)
open(sys.argv[2], "wb").write(base64.b64decode(b64))
print(head)' "$BATS_TEST_TMPDIR/uri" "$BATS_TEST_TMPDIR/inline.png"
    assert_output "data:image/png;base64"
    assert_equal "$(sha256sum <"$BATS_TEST_TMPDIR/inline.png" | cut -d' ' -f1)" \
        "$(sim_task "$du" | sim_json 'd["media_sha256"][0]')"
    # a language model's tokens join to its text; the plain-string model gives one string
    tokens="$(sim_status_proto replicate "" "$tk" | sim_json '"".join(d["output"])')"
    [ "$(sim_status_proto replicate "" "$tk" | sim_json 'len(d["output"]) > 10 and all(t.startswith(" ") for t in d["output"][1:])')" = true ]
    curl -sS -o "$BATS_TEST_TMPDIR/text.txt" "$SIM_URL/media/$tk/0.txt"
    assert_equal "$tokens" "$(cat "$BATS_TEST_TMPDIR/text.txt")"
    assert_equal "$(sim_status_proto replicate "" "$ts" | sim_json 'type(d["output"]).__name__')" str
}

@test "replicate: cancel, the canceled and aborted models, logs over 64 KiB in the webhook" {
    sim_listen "$BATS_TEST_TMPDIR/cb.out" path
    sim_start_proto replicate --quiet --time-scale 0.01
    hook="http://127.0.0.1:$CB_PORT/hook"
    id="$(sim_submit_proto replicate test/image "{\"input\":{\"prompt\":\"stop me\",\"sim_duration_ms\":1000000},\"webhook\":\"$hook\"}" | sim_json 'd["id"]')"
    run http -X POST -H "$(sim_auth_proto)" "$SIM_URL/v1/predictions/$id/cancel"
    assert_output 200
    assert_equal "$(bodyj '[d["status"], d["error"], d["output"], d["completed_at"] is not None]')" \
        '["canceled", null, null, true]'
    # the webhook comes at once, not when the prediction would have ended
    wait_file "$BATS_TEST_TMPDIR/cb.out"
    assert_equal "$(cut -d' ' -f2- "$BATS_TEST_TMPDIR/cb.out" | sim_json 'd["id"] + " " + d["status"]')" "$id canceled"
    assert_equal "$(sim_task "$id" | sim_json 'd["final_state"]')" canceled
    # a second cancel answers the prediction as it stands
    run http -X POST -H "$(sim_auth_proto)" "$SIM_URL/v1/predictions/$id/cancel"
    assert_output 200
    assert_equal "$(bodyj 'd["status"]')" canceled
    assert_equal "$(sim_figures | sim_json 'd["requests"]["cancel"]')" 2

    c="$(sim_submit_input replicate test/canceled '{"prompt":"p","sim_duration_ms":10}')"
    a="$(sim_submit_input replicate test/aborted '{"prompt":"p","sim_duration_ms":10}')"
    assert_equal "$(sim_wait_done_proto replicate "" "$c" 10 | sim_json '[d["status"], d["error"]]')" \
        '["canceled", null]'
    b="$(sim_wait_done_proto replicate "" "$a" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json '[d["status"], d["started_at"], len(d["error"]) > 0]')" \
        '["aborted", null, true]'

    : >"$BATS_TEST_TMPDIR/cb.out"
    l="$(sim_submit_proto replicate test/longlogs "{\"input\":{\"prompt\":\"talk\",\"sim_duration_ms\":10},\"webhook\":\"$hook\"}" | sim_json 'd["id"]')"
    wait_file "$BATS_TEST_TMPDIR/cb.out"
    [ "$(cut -d' ' -f2- "$BATS_TEST_TMPDIR/cb.out" | sim_json 'len(d["logs"])')" -gt 65536 ]
    assert_equal "$(cut -d' ' -f2- "$BATS_TEST_TMPDIR/cb.out" | sim_json 'd["id"] + " " + d["status"]')" "$l succeeded"
}

@test "replicate: burst_429 with Retry-After, 503, reset, errors_in_body ignored" {
    sim_start_proto replicate --quiet --fault burst_retry_after=3
    u="$SIM_URL/v1/models/test/image/predictions"
    sim_faults '{"burst_429": 2}'
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"p"}}' "$u"
    assert_output 429
    run grep -i '^retry-after: 3' "$BATS_TEST_TMPDIR/headers"
    assert_success
    assert_equal "$(bodyj 'd["status"]')" 429
    run http -H "$(sim_auth_proto)" "$SIM_URL/v1/predictions/x"
    assert_output 429
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"p"}}' "$u"
    assert_output 201
    sim_faults '{"error_503": 1, "errors_in_body": 1}'
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"p"}}' "$u"
    assert_output 503
    run grep -i '^retry-after: 1' "$BATS_TEST_TMPDIR/headers"
    assert_success
    sim_faults '{"error_503": 0, "reset_rate": 1}'
    run curl -sS --max-time 10 -H "$(sim_auth_proto)" "$SIM_URL/v1/predictions/x"
    assert_failure 52
    f="$(sim_figures)"
    assert_equal "$(printf '%s' "$f" | sim_json 'd["faults_injected"]["burst_429"]')" 2
    assert_equal "$(printf '%s' "$f" | sim_json 'd["responses"]["429"]')" 2
    assert_equal "$(printf '%s' "$f" | sim_json 'd["tasks"]')" 1
}

@test "replicate: malformed answers never hold a usable id and make no task" {
    sim_start_proto replicate --quiet
    malformed_submits id '{"input":{"prompt":"p"}}' "$SIM_URL/v1/models/test/image/predictions"
    [ "$(stat -c %s "$BATS_TEST_TMPDIR/body")" -ge 5000000 ]
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
}

@test "replicate: the webhook gets the prediction when it completes (filter honoured)" {
    sim_listen "$BATS_TEST_TMPDIR/cb.out" path
    sim_start_proto replicate --quiet --time-scale 0.01
    hook="http://127.0.0.1:$CB_PORT/hook/tok"
    id="$(sim_submit_proto replicate test/image "{\"input\":{\"prompt\":\"p\",\"sim_duration_ms\":200},\"webhook\":\"$hook\",\"webhook_events_filter\":[\"completed\"]}" | sim_json 'd["id"]')"
    wait_file "$BATS_TEST_TMPDIR/cb.out"
    run cut -d' ' -f1 "$BATS_TEST_TMPDIR/cb.out"
    assert_output /hook/tok
    run sh -c "cut -d' ' -f2- '$BATS_TEST_TMPDIR/cb.out' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"id\"], d[\"status\"], d[\"output\"])'"
    assert_output "$id succeeded $SIM_URL/media/$id/0.png"
    assert_equal "$(sim_task "$id" | sim_json 'd["callback_url"]')" "$hook"
    assert_equal "$(sim_figures | sim_json 'd["requests"]["callback_sent"]')" 1
    # a filter without "completed": no webhook at all
    id2="$(sim_submit_proto replicate test/image "{\"input\":{\"prompt\":\"q\",\"sim_duration_ms\":10},\"webhook\":\"$hook\",\"webhook_events_filter\":[\"start\"]}" | sim_json 'd["id"]')"
    sim_wait_done_proto replicate "" "$id2" 10 >/dev/null
    sleep 0.3
    assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/cb.out")" 1
}

@test "replicate: --profile model with slashes; duplicates counted" {
    cat >"$BATS_TEST_TMPDIR/profile.json" <<'EOF'
{"models": {"black-forest-labs/flux-schnell": {"kind": "image", "median_ms": 1000, "sigma": 0,
 "min_ms": 10, "max_ms": 5000}}}
EOF
    sim_start_proto replicate --quiet --time-scale 0.01 --profile "$BATS_TEST_TMPDIR/profile.json"
    id="$(sim_submit_input replicate black-forest-labs/flux-schnell '{"prompt":"same","seed":1}')"
    sim_submit_input replicate black-forest-labs/flux-schnell '{"seed":1,"prompt":"same"}' >/dev/null
    b="$(sim_wait_done_proto replicate "" "$id" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json 'd["model"] + " " + d["status"]')" \
        "black-forest-labs/flux-schnell succeeded"
    assert_equal "$(sim_task "$id" | sim_json 'd["complete_ms"] - d["submit_ms"]')" 10
    assert_equal "$(sim_figures | sim_json 'd["duplicate_submissions"]')" 1
}

# ---- fal --------------------------------------------------------------------------------------

@test "fal: submit, IN_QUEUE -> IN_PROGRESS -> COMPLETED, 400 before, images match sha256" {
    sim_start_proto fal --quiet --time-scale 0.01
    run http -X POST -H "$(sim_auth_proto)" -H 'Content-Type: application/json' \
        -d '{"prompt":"a red fox","sim_duration_ms":1000000,"sim_outputs":2}' \
        "$SIM_URL/fal-ai/test-image"
    assert_output 200
    cp "$BATS_TEST_TMPDIR/body" "$BATS_TEST_TMPDIR/submit"
    id="$(bodyj 'd["request_id"]')"
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$id"
    assert_output 400
    assert_equal "$(bodyj 'd["detail"]')" "Request is still in progress"
    seen="$(states_seen "$SIM_URL/fal-ai/test-image/requests/$id/status" "Key $GENFS_SIM_KEY")"
    assert_equal "$seen" "IN_QUEUE IN_PROGRESS COMPLETED"
    cp "$BATS_TEST_TMPDIR/submit" "$BATS_TEST_TMPDIR/body"
    [[ "$id" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]
    assert_equal "$(bodyj 'd["response_url"]')" "$SIM_URL/fal-ai/test-image/requests/$id"
    assert_equal "$(bodyj 'd["status_url"]')" "$SIM_URL/fal-ai/test-image/requests/$id/status"
    assert_equal "$(bodyj 'd["cancel_url"]')" "$SIM_URL/fal-ai/test-image/requests/$id/cancel"
    assert_equal "$(bodyj 'd["queue_position"]')" 0
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$id"
    assert_output 200
    assert_equal "$(bodyj '[i["url"] for i in d["images"]]')" \
        "[\"$SIM_URL/media/$id/0.png\", \"$SIM_URL/media/$id/1.png\"]"
    assert_equal "$(bodyj '[d["images"][0][k] for k in ("content_type","width","height")] + [d["prompt"]]')" \
        '["image/png", 256, 256, "a red fox"]'
    run http "$SIM_URL/media/$id/1.png"
    assert_output 200
    got="$(sha256sum "$BATS_TEST_TMPDIR/body" | cut -d' ' -f1)"
    assert_equal "$(sim_task "$id" | sim_json 'd["media_sha256"][1]')" "$got"
    f="$(sim_figures)"
    assert_equal "$(printf '%s' "$f" | sim_json 'd["requests"]["result"]')" 2
    assert_equal "$(printf '%s' "$f" | sim_json 'd["requests"]["total"] == sum(d["requests"][k] for k in ("submit","status","result","media","other"))')" true
    assert_equal "$(sim_task "$id" | sim_json 'd["result_requests"]')" 2
}

@test "fal: video and audio results with file_size; several as videos/audios" {
    sim_start_proto fal --quiet --time-scale 0.01
    v="$(sim_submit_input fal fal-ai/test/video '{"prompt":"run","sim_duration_ms":10}')"
    a="$(sim_submit_input fal fal-ai/test/audio '{"prompt":"la","sim_duration_ms":10,"sim_outputs":2}')"
    sim_wait_done_proto fal fal-ai/test/video "$v" 10 >/dev/null
    sim_wait_done_proto fal fal-ai/test/audio "$a" 10 >/dev/null
    r="$(sim_result_proto fal-ai/test/video "$v")"
    assert_equal "$(printf '%s' "$r" | sim_json 'd["video"]["url"] + " " + d["video"]["content_type"]')" \
        "$SIM_URL/media/$v/0.gif image/gif"
    size="$(printf '%s' "$r" | sim_json 'd["video"]["file_size"]')"
    run curl -sS -o /dev/null -w '%{size_download}' "$SIM_URL/media/$v/0.gif"
    assert_output "$size"
    r="$(sim_result_proto fal-ai/test/audio "$a")"
    assert_equal "$(printf '%s' "$r" | sim_json '[x["url"] for x in d["audios"]]')" \
        "[\"$SIM_URL/media/$a/0.wav\", \"$SIM_URL/media/$a/1.wav\"]"
    assert_equal "$(printf '%s' "$r" | sim_json 'd["audio"]["content_type"]')" audio/wav
    run sim_urls_proto fal fal-ai/test/audio "$a"
    assert_equal "${#lines[@]}" 2
}

@test "fal: a failed request is COMPLETED with error; model errors 422 {detail: [...]}, request errors their status" {
    sim_start_proto fal --quiet --time-scale 0.01
    id="$(sim_submit_input fal fal-ai/test-image '{"prompt":"p","sim_duration_ms":10,"sim_outcome":"failed","sim_fail_msg":"content policy","sim_fail_code":"content_policy_violation"}')"
    b="$(sim_wait_done_proto fal fal-ai/test-image "$id" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json '[d["status"], d["error"], d["error_type"]]')" \
        '["COMPLETED", "content policy", "content_policy_violation"]'
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$id"
    assert_output 422
    assert_equal "$(bodyj '[d["detail"], d["error_type"]]')" \
        '["content policy", "content_policy_violation"]'
    run grep -i '^x-fal-error-type: content_policy_violation' "$BATS_TEST_TMPDIR/headers"
    assert_success
    run http "$SIM_URL/media/$id/0.png"
    assert_output 404
    # a model (validation) error: detail is an array of {loc, msg, type}
    v="$(sim_submit_input fal fal-ai/test-image '{"prompt":"p","sim_duration_ms":10,"sim_outcome":"failed","sim_fail_loc":"prompt","sim_fail_code":"value_error.any_str.max_length","sim_fail_msg":"ensure this value has at most 2500 characters"}')"
    sim_wait_done_proto fal fal-ai/test-image "$v" 10 >/dev/null
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$v"
    assert_output 422
    run body
    assert_output '{"detail":[{"loc":["body","prompt"],"msg":"ensure this value has at most 2500 characters","type":"value_error.any_str.max_length","url":"https://docs.fal.ai/errors/#value_error.any_str.max_length","input":"p"}]}'
    run grep -ci '^x-fal-error-type' "$BATS_TEST_TMPDIR/headers"
    assert_output 0
    # a request error: its typical status, error_type in the body and the header
    r="$(sim_submit_input fal fal-ai/test-image '{"prompt":"p","sim_duration_ms":10,"sim_outcome":"failed","sim_fail_code":"request_timeout","sim_fail_msg":"Request timed out"}')"
    sim_wait_done_proto fal fal-ai/test-image "$r" 10 >/dev/null
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$r"
    assert_output 504
    assert_equal "$(bodyj '[d["detail"], d["error_type"]]')" '["Request timed out", "request_timeout"]'
    run grep -i '^x-fal-error-type: request_timeout' "$BATS_TEST_TMPDIR/headers"
    assert_success
}

@test "fal: result_5xx: COMPLETED, then the response URL answers 5xx N times" {
    sim_start_proto fal --quiet --time-scale 0.01
    id="$(sim_submit_input fal fal-ai/test-image '{"prompt":"p","sim_duration_ms":10}')"
    sim_wait_done_proto fal fal-ai/test-image "$id" 10 >/dev/null
    sim_faults '{"result_5xx": 2, "result_5xx_status": 503}'
    # the status is not touched by it
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$id/status"
    assert_output 200
    codes=""
    for i in 1 2 3; do
        codes="$codes $(http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$id")"
    done
    assert_equal "$codes" " 503 503 200"
    assert_equal "$(sim_figures | sim_json 'd["faults_injected"]["result_5xx"]')" 2
    assert_equal "$(sim_task "$id" | sim_json 'd["result_requests"]')" 3
}

@test "fal: PUT cancel_url cancels a queued request; an ended one is ALREADY_COMPLETED" {
    sim_listen "$BATS_TEST_TMPDIR/cb.out" path
    sim_start_proto fal --quiet --time-scale 0.01
    id="$(sim_submit_proto fal fal-ai/flux/dev '{"prompt":"p","sim_duration_ms":1000000}' "http://127.0.0.1:$CB_PORT/h" | sim_json 'd["request_id"]')"
    run http -X PUT -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/flux/requests/$id/cancel"
    assert_output 202
    assert_equal "$(bodyj 'd["status"]')" CANCELLATION_REQUESTED
    b="$(sim_status_proto fal fal-ai/flux/dev "$id")"
    assert_equal "$(printf '%s' "$b" | sim_json '[d["status"], d["error_type"]]')" '["COMPLETED", "request_cancelled"]'
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/flux/requests/$id"
    assert_output 400
    wait_file "$BATS_TEST_TMPDIR/cb.out"
    assert_equal "$(cut -d' ' -f2- "$BATS_TEST_TMPDIR/cb.out" | sim_json 'd["status"]')" ERROR
    run http -X PUT -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/flux/requests/$id/cancel"
    assert_output 400
    assert_equal "$(bodyj 'd["status"]')" ALREADY_COMPLETED
    run http -X PUT -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/flux/requests/nope/cancel"
    assert_output 404
    assert_equal "$(sim_task "$id" | sim_json 'd["final_state"]')" canceled
}

@test "fal: 401 Bearer scheme or wrong key, 404 unknown model/request, 422, 402" {
    sim_start_proto fal --quiet
    run http -X POST -H "Authorization: Bearer $GENFS_SIM_KEY" -d '{"prompt":"x"}' \
        "$SIM_URL/fal-ai/test-image"
    assert_output 401
    bodyj 'd["detail"]' >/dev/null
    run http -X POST -H 'Authorization: Key wrong' -d '{"prompt":"x"}' "$SIM_URL/fal-ai/test-image"
    assert_output 401
    run http -X POST -H "$(sim_auth_proto)" -d '{"prompt":"x"}' "$SIM_URL/fal-ai/no-such"
    assert_output 404
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/nope/status"
    assert_output 404
    id="$(sim_submit_input fal fal-ai/test-image '{"prompt":"x"}')"
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test/requests/$id/status"
    assert_output 404
    assert_equal "$(bodyj 'd["detail"]')" "Request not found"
    run http -X POST -H "$(sim_auth_proto)" -d '{"input":{"prompt":"x"}}' \
        "$SIM_URL/fal-ai/test-image"
    assert_output 422
    assert_equal "$(bodyj 'd["detail"]')" "prompt: required, must be a non-empty string"
    run http -X POST -H "$(sim_auth_proto)" -d 'nope' "$SIM_URL/fal-ai/test-image"
    assert_output 422
    run http -X POST -H "$(sim_auth_proto)" -d '{"prompt":"x"}' \
        "$SIM_URL/fal-ai/test-image?fal_webhook=file:///etc/passwd"
    assert_output 422
    run http -X POST -H "$(sim_auth_proto)" -d '{"prompt":"x","sim_credits":"none"}' \
        "$SIM_URL/fal-ai/test-image"
    assert_output 402
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 1
}

@test "fal: burst_429 with Retry-After on submit, status and result; rate_limit" {
    sim_start_proto fal --quiet --fault burst_retry_after=2
    id="$(sim_submit_input fal fal-ai/test-image '{"prompt":"x"}')"
    sim_faults '{"burst_429": 3}'
    run http -X POST -H "$(sim_auth_proto)" -d '{"prompt":"p"}' "$SIM_URL/fal-ai/test-image"
    assert_output 429
    run grep -i '^retry-after: 2' "$BATS_TEST_TMPDIR/headers"
    assert_success
    bodyj 'd["detail"]' >/dev/null
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$id/status"
    assert_output 429
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$id"
    assert_output 429
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$id/status"
    assert_output 200
    sim_faults '{"rate_limit": 2}'
    codes=""
    for i in 1 2 3 4 5; do
        codes="$codes $(http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/test-image/requests/$id/status")"
    done
    [[ "$codes" == *429* ]]
}

@test "fal: malformed answers never hold a usable request_id; slow answers are late" {
    sim_start_proto fal --quiet
    malformed_submits request_id '{"prompt":"p"}' "$SIM_URL/fal-ai/test-image"
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
    sim_faults '{"malformed_rate": 0, "slow_rate": 1, "slow_ms": 1200}'
    start=$(date +%s%N)
    run http -X POST -H "$(sim_auth_proto)" -d '{"prompt":"p"}' "$SIM_URL/fal-ai/test-image"
    assert_output 200
    [ $((($(date +%s%N) - start) / 1000000)) -ge 1100 ]
}

@test "fal: with fal_webhook the submit answers the two ids; the webhook {request_id, gateway_request_id, status, payload, error}" {
    sim_listen "$BATS_TEST_TMPDIR/cb.out" path
    sim_start_proto fal --quiet --time-scale 0.01
    hook="http://127.0.0.1:$CB_PORT/fal/hook?t=1"
    answer="$(sim_submit_proto fal fal-ai/test-image '{"prompt":"p","sim_duration_ms":200}' "$hook")"
    id="$(printf '%s' "$answer" | sim_json 'd["request_id"]')"
    assert_equal "$(printf '%s' "$answer" | sim_json 'sorted(d)')" '["gateway_request_id", "request_id"]'
    wait_file "$BATS_TEST_TMPDIR/cb.out"
    run cut -d' ' -f1 "$BATS_TEST_TMPDIR/cb.out"
    assert_output "/fal/hook?t=1"
    run sh -c "cut -d' ' -f2- '$BATS_TEST_TMPDIR/cb.out' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"request_id\"], d[\"gateway_request_id\"], d[\"status\"], d[\"payload\"][\"images\"][0][\"url\"], d[\"error\"])'"
    assert_output "$id $id OK $SIM_URL/media/$id/0.png None"
    : >"$BATS_TEST_TMPDIR/cb.out"
    id2="$(sim_submit_proto fal fal-ai/test-image '{"prompt":"q","sim_duration_ms":10,"sim_outcome":"failed","sim_fail_msg":"boom"}' "$hook" | sim_json 'd["request_id"]')"
    wait_file "$BATS_TEST_TMPDIR/cb.out"
    run sh -c "cut -d' ' -f2- '$BATS_TEST_TMPDIR/cb.out' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"request_id\"], d[\"status\"], d[\"payload\"][\"detail\"], d[\"error\"])'"
    assert_output "$id2 ERROR boom Invalid status code: 422"
    assert_equal "$(sim_figures | sim_json 'd["requests"]["callback_sent"]')" 2
}

@test "fal: fal-ai/flux/dev polls under its app id fal-ai/flux; the full path is refused" {
    cat >"$BATS_TEST_TMPDIR/profile.json" <<'EOF'
{"models": {"fal-ai/flux/dev": {"kind": "image", "median_ms": 1000, "sigma": 0,
 "min_ms": 10, "max_ms": 5000}}}
EOF
    sim_start_proto fal --quiet --time-scale 0.01 --profile "$BATS_TEST_TMPDIR/profile.json"
    run http -X POST -H "$(sim_auth_proto)" -d '{"prompt":"p","seed":42}' "$SIM_URL/fal-ai/flux/dev"
    assert_output 200
    id="$(bodyj 'd["request_id"]')"
    assert_equal "$(bodyj '[d["status_url"], d["response_url"], d["cancel_url"]]')" \
        "[\"$SIM_URL/fal-ai/flux/requests/$id/status\", \"$SIM_URL/fal-ai/flux/requests/$id\", \"$SIM_URL/fal-ai/flux/requests/$id/cancel\"]"
    sim_wait_done_proto fal fal-ai/flux/dev "$id" 10 >/dev/null
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/flux/dev/requests/$id/status"
    assert_output 404
    assert_equal "$(bodyj 'd["detail"]')" "Not Found"
    run http -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/flux/dev/requests/$id"
    assert_output 404
    r="$(sim_result_proto fal-ai/flux/dev "$id")"
    assert_equal "$(printf '%s' "$r" | sim_json '[d["seed"], d["images"][0]["url"]]')" \
        "[42, \"$SIM_URL/media/$id/0.png\"]"
    assert_equal "$(sim_task "$id" | sim_json 'd["model"] + " " + d["state"]')" \
        "fal-ai/flux/dev success"
}

@test "same seed: same fal request ids and media across runs" {
    sim_start_proto fal --quiet --time-scale 0.01 --seed 9
    a="$(sim_submit_input fal fal-ai/test-image '{"prompt":"lighthouse","sim_duration_ms":10}')"
    sim_wait_done_proto fal fal-ai/test-image "$a" 10 >/dev/null
    sha="$(sim_task "$a" | sim_json 'd["media_sha256"][0]')"
    sim_stop
    sim_start_proto fal --quiet --time-scale 0.01 --seed 9
    b="$(sim_submit_input fal fal-ai/test-image '{"prompt":"lighthouse","sim_duration_ms":10}')"
    assert_equal "$b" "$a"
    sim_wait_done_proto fal fal-ai/test-image "$b" 10 >/dev/null
    assert_equal "$(sim_task "$b" | sim_json 'd["media_sha256"][0]')" "$sha"
}

# ---- input files, logs and progress (issue 19) ----

# The bytes of a file, as sha256.
sha_of() {
    sha256sum "$1" | cut -d' ' -f1
}

@test "replicate: POST /v1/files (multipart content) keeps the bytes; urls.get, /files/ and /_sim/uploads give them back" {
    sim_start_proto replicate
    head -c 300000 /dev/urandom >"$BATS_TEST_TMPDIR/in.png"
    run http -X POST -H "$(sim_auth_proto)" -F "content=@$BATS_TEST_TMPDIR/in.png;type=image/png" \
        "$SIM_URL/v1/files"
    assert_output 201
    id="$(bodyj 'd["id"]')"
    assert_equal "$(bodyj 'd["urls"]["get"]')" "$SIM_URL/v1/files/$id"
    assert_equal "$(bodyj '[d["name"], d["content_type"], d["size"]]')" '["in.png", "image/png", 300000]'
    assert_equal "$(bodyj 'd["checksums"]["sha256"]')" "$(sha_of "$BATS_TEST_TMPDIR/in.png")"
    # urls.get is the file object, behind the key
    run http -H "$(sim_auth_proto)" "$SIM_URL/v1/files/$id"
    assert_output 200
    assert_equal "$(bodyj 'd["id"]')" "$id"
    run http "$SIM_URL/v1/files/$id"
    assert_output 401
    curl -sS -o "$BATS_TEST_TMPDIR/back" "$SIM_URL/_sim/uploads/$id"
    cmp "$BATS_TEST_TMPDIR/in.png" "$BATS_TEST_TMPDIR/back"
    curl -sS -o "$BATS_TEST_TMPDIR/cdn" "$SIM_URL/files/$id/in.png"
    cmp "$BATS_TEST_TMPDIR/in.png" "$BATS_TEST_TMPDIR/cdn"
    assert_equal "$(sim_curl "$SIM_URL/_sim/uploads" | sim_json '[len(d), d[0]["complete"]]')" '[1, true]'
    # the POST, two GETs of urls.get and the /files/ GET; /_sim/ requests are not counted
    assert_equal "$(sim_figures | sim_json '[d["uploads"], d["requests"]["upload"]]')" '[1, 4]'
    # a body without the part "content", or without the key
    run http -X POST -H "$(sim_auth_proto)" -F "file=@$BATS_TEST_TMPDIR/in.png" "$SIM_URL/v1/files"
    assert_output 422
    run http -X POST -F "content=@$BATS_TEST_TMPDIR/in.png" "$SIM_URL/v1/files"
    assert_output 401
}

@test "fal: initiate gives upload_url and file_url; the PUT without a key stores the bytes" {
    sim_start_proto fal
    printf 'GIF89a\0\1\2 bytes' >"$BATS_TEST_TMPDIR/in.gif"
    run http -X POST -H "$(sim_auth_proto)" -H 'Content-Type: application/json' \
        --data '{"content_type": "image/gif", "file_name": "in.gif"}' \
        "$SIM_URL/storage/upload/initiate?storage_type=fal-cdn-v3"
    assert_output 200
    put="$(bodyj 'd["upload_url"]')"
    file="$(bodyj 'd["file_url"]')"
    id="$(printf '%s' "$file" | cut -d/ -f5)"
    # not there until the PUT
    run http "$file"
    assert_output 404
    # a presigned URL takes no key
    run http -X PUT -H "$(sim_auth_proto)" -H 'Content-Type: image/gif' \
        --data-binary "@$BATS_TEST_TMPDIR/in.gif" "$put"
    assert_output 400
    run http -X PUT -H 'Content-Type: image/gif' --data-binary "@$BATS_TEST_TMPDIR/in.gif" "$put"
    assert_output 200
    curl -sS -D "$BATS_TEST_TMPDIR/h" -o "$BATS_TEST_TMPDIR/back" "$file"
    cmp "$BATS_TEST_TMPDIR/in.gif" "$BATS_TEST_TMPDIR/back"
    grep -qi '^content-type: image/gif' "$BATS_TEST_TMPDIR/h"
    assert_equal "$(sim_curl "$SIM_URL/_sim/uploads" | sim_json 'd[0]["sha256"]')" "$(sha_of "$BATS_TEST_TMPDIR/in.gif")"
    run http -X POST -H "$(sim_auth_proto)" --data '{}' "$SIM_URL/storage/upload/initiate"
    assert_output 422
}

@test "kie: POST /api/file-stream-upload answers {success, code, msg, data.downloadUrl}; the URL serves the bytes" {
    sim_start_proto kie
    printf 'RIFF....WAVE' >"$BATS_TEST_TMPDIR/in.wav"
    run http -X POST -H "$(sim_auth_proto)" -F "file=@$BATS_TEST_TMPDIR/in.wav;type=audio/wav" \
        -F uploadPath=genfs -F fileName=voice.wav "$SIM_URL/api/file-stream-upload"
    assert_output 200
    assert_equal "$(bodyj '[d["success"], d["code"], d["data"]["fileName"], d["data"]["fileSize"]]')" \
        '[true, 200, "voice.wav", 12]'
    curl -sS -o "$BATS_TEST_TMPDIR/back" "$(bodyj 'd["data"]["downloadUrl"]')"
    cmp "$BATS_TEST_TMPDIR/in.wav" "$BATS_TEST_TMPDIR/back"
}

@test "replicate: logs carry tqdm progress while processing; fal: logs with ?logs=1 only, queue_position while queued" {
    sim_start_proto replicate --time-scale 1
    id="$(sim_submit_input replicate test/image '{"prompt":"p","sim_duration_ms":4000}')"
    sleep 2.5
    logs="$(sim_status_proto replicate test/image "$id" | sim_json 'd["logs"]')"
    [[ "$logs" == "Using seed: "* ]]
    # the last tqdm line is between 0% and 100%
    pct="$(printf '%s\n' "$logs" | grep -E '^ *[0-9]+%\|' | tail -1 | sed -E 's/^ *([0-9]+)%.*/\1/')"
    [ "$pct" -gt 0 ] && [ "$pct" -lt 100 ]
    done="$(sim_wait_done_proto replicate test/image "$id")"
    printf '%s' "$done" | sim_json 'd["logs"]' | grep -q '^100%|'
    sim_stop

    sim_start_proto fal --time-scale 1
    id="$(sim_submit_input fal fal-ai/flux/dev '{"prompt":"p","sim_duration_ms":4000}')"
    q="$(sim_curl -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/flux/requests/$id/status?logs=1")"
    assert_equal "$(printf '%s' "$q" | sim_json '[d["status"], d["queue_position"]]')" '["IN_QUEUE", 1]'
    sleep 2.5
    assert_equal "$(sim_status_proto fal fal-ai/flux/dev "$id" | sim_json 'd["logs"]')" null
    l="$(sim_curl -H "$(sim_auth_proto)" "$SIM_URL/fal-ai/flux/requests/$id/status?logs=1")"
    assert_equal "$(printf '%s' "$l" | sim_json 'd["status"]')" IN_PROGRESS
    printf '%s' "$l" | sim_json 'd["logs"][0]["message"]' | grep -q 'Running the model'
}
