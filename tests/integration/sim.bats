#!/usr/bin/env bats
# genfs-sim driven with curl: its default protocol (APIXO's task API), media, faults, callbacks and
# /_sim/ figures. The other protocols: sim_protocols.bats.
# Run: BUILD_DIR=build bats tests/integration/sim.bats

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

auth() {
    printf 'Authorization: Bearer %s' "$GENFS_SIM_KEY"
}

body() {
    cat "$BATS_TEST_TMPDIR/body"
}

bodyj() {
    sim_json "$1" <"$BATS_TEST_TMPDIR/body"
}

# Submits and prints the task id.
submit_id() {
    sim_submit "$1" "$2" | sim_json 'd["data"]["taskId"]'
}

@test "starts on a free port, writes the port file, prints the URL, stops on SIGTERM with 0" {
    sim_start --quiet
    [[ "$SIM_PORT" =~ ^[0-9]+$ ]]
    run grep -c "genfs-sim listening on http://127.0.0.1:$SIM_PORT" "$SIM_LOG"
    assert_output 1
    sim_stop
    assert_equal "$SIM_EXIT_STATUS" 0
}

@test "--help exits 0; a bad option or fault exits 2 with one line" {
    bin="$(sim_bin)"
    run "$bin" --help
    assert_success
    assert_output --partial "--time-scale"
    run "$bin" --bogus
    assert_equal "$status" 2
    assert_output --partial "unknown option"
    run "$bin" --fault nope=1
    assert_equal "$status" 2
    assert_output --partial 'unknown fault "nope"'
}

@test "wrong or missing key: 401" {
    sim_start --quiet
    run http -X POST -H 'Authorization: Bearer wrong' -d '{"input":{"prompt":"x"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_output 401
    run body
    assert_output --partial '"code":401'
    run http -X POST -d '{"input":{"prompt":"x"}}' "$SIM_URL/generateTask/test-image"
    assert_output 401
}

@test "--key-file sets the key" {
    printf 'filekey\n' >"$BATS_TEST_TMPDIR/key"
    sim_start --quiet --key-file "$BATS_TEST_TMPDIR/key"
    run http -X POST -H 'Authorization: Bearer filekey' -d '{"input":{"prompt":"x"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_output 200
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"x"}}' "$SIM_URL/generateTask/test-image"
    assert_output 401
}

@test "no key configured: any non-empty bearer token passes" {
    SIM_NO_KEY=1 sim_start --quiet
    run http -X POST -H 'Authorization: Bearer anything' -d '{"input":{"prompt":"x"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_output 200
    run http -X POST -H 'Authorization: Bearer ' -d '{"input":{"prompt":"x"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_output 401
}

@test "unknown model, unknown task, unknown path: 404" {
    sim_start --quiet
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"x"}}' "$SIM_URL/generateTask/no-such"
    assert_output 404
    assert_equal "$(body | sim_json 'd["message"] + " | " + d["data"]["error"]')" \
        "Not found | Model not found: no-such"
    run http -H "$(auth)" "$SIM_URL/statusTask/test-image?taskId=task_00000000000000000000"
    assert_output 404
    assert_equal "$(body | sim_json 'd["data"]["error"]')" "Task not found: task_00000000000000000000"
    id="$(submit_id test-image '{"input":{"prompt":"x"}}')"
    run http -H "$(auth)" "$SIM_URL/statusTask/test-audio?taskId=$id"
    assert_output 404
    run http -H "$(auth)" "$SIM_URL/statusTask/test-image"
    assert_output 400
    assert_equal "$(body | sim_json 'd["data"]["error"]')" "Missing required parameter: taskId"
    run http "$SIM_URL/nothing/here"
    assert_output 404
    run http -H "$(auth)" "$SIM_URL/generateTask/test-image/$id"
    assert_output 405
}

@test "invalid input: 400 {code, message, data.error} saying which field" {
    sim_start --quiet
    run http -X POST -H "$(auth)" -d '{"input":{}}' "$SIM_URL/generateTask/test-image"
    assert_output 400
    run body
    assert_output '{"code":400,"message":"Invalid request","data":{"error":"Missing required field: input.prompt"}}'
    run http -X POST -H "$(auth)" -d 'this is not json' "$SIM_URL/generateTask/test-image"
    assert_output 400
    run http -X POST -H "$(auth)" -d '{"request_type":"callback","input":{"prompt":"p"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_output 400
    assert_equal "$(body | sim_json 'd["data"]["error"]')" "Missing required field: callback_url"
    run http -X POST -H "$(auth)" -d '{"provider":"cheap","input":{"prompt":"p"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_output 400
    run body
    assert_output --partial 'provider'
    run sim_figures
    assert_equal "$(printf '%s' "$output" | sim_json 'd["tasks"]')" 0
}

@test "flux-2 wants input.mode as APIXO's does; the provider routing field is recorded" {
    sim_start --quiet
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p"}}' "$SIM_URL/generateTask/flux-2"
    assert_output 400
    assert_equal "$(body | sim_json 'd["data"]["error"]')" "Missing required field: input.mode"
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p","mode":"watercolour"}}' \
        "$SIM_URL/generateTask/flux-2"
    assert_output 400
    assert_equal "$(body | sim_json 'd["data"]["error"]')" "Invalid value for input.mode"
    run http -X POST -H "$(auth)" -d '{"provider":"official","input":{"prompt":"p","mode":"pro-text-to-image"}}' \
        "$SIM_URL/generateTask/flux-2"
    assert_output 200
    id="$(bodyj 'd["data"]["taskId"]')"
    assert_equal "$(sim_task "$id" | sim_json '[d["provider"], d["input"]["mode"]]')" \
        '["official", "pro-text-to-image"]'
    a="$(submit_id test-image '{"input":{"prompt":"no route"}}')"
    assert_equal "$(sim_task "$a" | sim_json 'd["provider"]')" null
}

@test "sim_credits none: 402; sim_reject 403 and 503; no task" {
    sim_start --quiet
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p","sim_credits":"none"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_output 402
    assert_equal "$(bodyj 'd["code"]')" 402
    for code in 403 503; do
        run http -X POST -H "$(auth)" -d "{\"input\":{\"prompt\":\"p\",\"sim_reject\":$code}}" \
            "$SIM_URL/generateTask/test-image"
        assert_output "$code"
        assert_equal "$(bodyj 'd["code"] == int(d["code"]) and len(d["data"]["error"]) > 0')" true
    done
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
}

@test "burst_429: the next N API requests get 429 with Retry-After" {
    sim_start --quiet --fault burst_retry_after=3
    sim_faults '{"burst_429": 2}'
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p"}}' "$SIM_URL/generateTask/test-image"
    assert_output 429
    run grep -i '^retry-after: 3' "$BATS_TEST_TMPDIR/headers"
    assert_success
    run http -H "$(auth)" "$SIM_URL/statusTask/test-image?taskId=task_1"
    assert_output 429
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p"}}' "$SIM_URL/generateTask/test-image"
    assert_output 200
    f="$(sim_figures)"
    assert_equal "$(printf '%s' "$f" | sim_json 'd["faults_injected"]["burst_429"]')" 2
    assert_equal "$(printf '%s' "$f" | sim_json 'd["responses"]["429"]')" 2
    assert_equal "$(printf '%s' "$f" | sim_json 'd["tasks"]')" 1
}

@test "rate_limit: over N requests per second get 429" {
    sim_start --quiet --fault rate_limit=3
    # Windows are whole seconds: 12 requests at once, so a loaded machine cannot spread
    # them thinner than 3 a second (a few rounds, in case one straddles a boundary).
    codes=""
    for round in 1 2 3 4 5; do
        pids=()
        for i in $(seq 1 12); do
            curl -s -o /dev/null --max-time 30 -w '%{http_code}\n' -H "$(auth)" \
                "$SIM_URL/statusTask/test-image?taskId=task_x" >"$BATS_TEST_TMPDIR/code.$i" &
            pids+=($!)
        done
        wait "${pids[@]}" || true
        codes="$codes $(cat "$BATS_TEST_TMPDIR"/code.* | tr '\n' ' ')"
        [[ "$codes" == *429* ]] && break
    done
    [[ "$codes" == *429* ]] || fail "no 429 in: $codes"
    [ "$(sim_figures | sim_json 'd["faults_injected"]["rate_limit"]')" -ge 1 ]
}

@test "error_503 carries Retry-After; error_500 creates no task" {
    sim_start --quiet
    sim_faults '{"error_503": 1}'
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p"}}' "$SIM_URL/generateTask/test-image"
    assert_output 503
    run grep -i '^retry-after: 1' "$BATS_TEST_TMPDIR/headers"
    assert_success
    sim_faults '{"error_503": 0, "error_500": 1}'
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p"}}' "$SIM_URL/generateTask/test-image"
    assert_output 500
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
}

@test "malformed_rate: 200 answers that never hold a usable taskId, and no task" {
    sim_start --quiet
    sim_faults '{"malformed_rate": 1}'
    for i in 1 2 3 4 5 6 7; do
        run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p"}}' \
            "$SIM_URL/generateTask/test-image"
        assert_output 200
        run python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
ok = isinstance(d, dict) and d.get("code") == 200 and isinstance(d.get("data"), dict) \
    and isinstance(d["data"].get("taskId"), str) and d["data"]["taskId"] != ""
sys.exit(1 if ok else 0)' "$BATS_TEST_TMPDIR/body"
        assert_success
    done
    size="$(stat -c %s "$BATS_TEST_TMPDIR/body")"
    [ "$size" -ge 5000000 ] # the 7th kind is the huge body
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 0
}

@test "errors_in_body: errors answer HTTP 200 with the code in the body" {
    sim_start --quiet --fault errors_in_body=1
    run http -X POST -H 'Authorization: Bearer wrong' -d '{"input":{"prompt":"p"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_output 200
    run body
    assert_output --partial '"code":401'
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p"}}' "$SIM_URL/generateTask/nope"
    assert_output 200
    run body
    assert_output --partial '"code":404'
}

@test "a task goes through its states to success; media download matches sha256, real PNG" {
    sim_start --quiet --time-scale 0.01
    id="$(submit_id test-image '{"request_type":"async","input":{"prompt":"a red fox","sim_duration_ms":300000}}')"
    # polled at once: pending lasts the first 30% (0.9 s; wide for a loaded machine)
    run python3 - "$SIM_URL/statusTask/test-image?taskId=$id" "Bearer $GENFS_SIM_KEY" <<'EOF'
import json, sys, time, urllib.request
seen = []
for _ in range(500):
    req = urllib.request.Request(sys.argv[1], headers={"Authorization": sys.argv[2]})
    s = json.load(urllib.request.urlopen(req, timeout=10))["data"]["state"]
    if not seen or seen[-1] != s:
        seen.append(s)
    if s in ("success", "failed"):
        break
    time.sleep(0.04)
print(" ".join(seen))
EOF
    assert_output "pending processing success"
    [[ "$id" =~ ^task_[a-z0-9]{20}$ ]]
    # a running task shows only its id, state and createTime, as APIXO's does
    long="$(submit_id test-image '{"input":{"prompt":"slow","sim_duration_ms":100000000}}')"
    assert_equal "$(sim_status test-image "$long" | sim_json '[d["data"]["state"], sorted(d["data"])]')" \
        '["pending", ["createTime", "state", "taskId"]]'
    done_body="$(sim_wait_done test-image "$id" 20)"
    assert_equal "$(printf '%s' "$done_body" | sim_json 'd["data"]["state"]')" success
    assert_equal "$(printf '%s' "$done_body" | sim_json 'd["data"]["costTime"] == d["data"]["completeTime"] - d["data"]["createTime"]')" true
    url="$(printf '%s' "$done_body" | sim_json 'json.loads(d["data"]["resultJson"])["resultUrls"][0]')"
    assert_equal "$url" "$SIM_URL/media/$id/0.png"
    run http "$url"
    assert_output 200
    run grep -i '^content-type: image/png' "$BATS_TEST_TMPDIR/headers"
    assert_success
    got="$(sha256sum "$BATS_TEST_TMPDIR/body" | cut -d' ' -f1)"
    t="$(sim_task "$id")"
    assert_equal "$(printf '%s' "$t" | sim_json 'd["media_sha256"][0]')" "$got"
    assert_equal "$(printf '%s' "$t" | sim_json 'd["final_state"]')" success
    assert_equal "$(printf '%s' "$t" | sim_json 'd["complete_ms"] - d["submit_ms"]')" 3000
    run python3 -c '
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n"
i, idat, w, h = 8, b"", 0, 0
while i < len(d):
    n, = struct.unpack(">I", d[i:i+4]); t = d[i+4:i+8]; c = d[i+8:i+8+n]
    assert zlib.crc32(t + c) == struct.unpack(">I", d[i+8+n:i+12+n])[0]
    if t == b"IHDR": w, h = struct.unpack(">II", c[:8])
    if t == b"IDAT": idat += c
    i += 12 + n
raw = zlib.decompress(idat)
assert len(raw) == h * (1 + 3 * w), (len(raw), w, h)
print(w, h)' "$BATS_TEST_TMPDIR/body"
    assert_success
    assert_output "256 256"
    if command -v file >/dev/null; then
        run file "$BATS_TEST_TMPDIR/body"
        assert_output --partial "PNG image data, 256 x 256"
    fi
}

@test "audio gives a WAV and video an animated GIF" {
    sim_start --quiet --time-scale 0.01
    a="$(submit_id test-audio '{"input":{"prompt":"la","sim_duration_ms":100}}')"
    v="$(submit_id test-video '{"input":{"prompt":"run","sim_duration_ms":100}}')"
    sim_wait_done test-audio "$a" 10 >/dev/null
    sim_wait_done test-video "$v" 10 >/dev/null
    run http "$SIM_URL/media/$a/0.wav"
    assert_output 200
    run grep -i '^content-type: audio/wav' "$BATS_TEST_TMPDIR/headers"
    assert_success
    run python3 -c '
import sys, wave
w = wave.open(sys.argv[1])
print(w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())' \
        "$BATS_TEST_TMPDIR/body"
    assert_output "1 2 22050 44100"
    if command -v file >/dev/null; then
        run file "$BATS_TEST_TMPDIR/body"
        assert_output --partial "WAVE audio"
    fi
    run http "$SIM_URL/media/$v/0.gif"
    assert_output 200
    run grep -i '^content-type: image/gif' "$BATS_TEST_TMPDIR/headers"
    assert_success
    run python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
assert d[:6] == b"GIF89a" and b"NETSCAPE2.0" in d and d[-1:] == b";"
print(d.count(b"\x21\xf9\x04"))' "$BATS_TEST_TMPDIR/body"
    assert_success
    assert_output 8
    if command -v file >/dev/null; then
        run file "$BATS_TEST_TMPDIR/body"
        assert_output --partial "GIF image data, version 89a"
    fi
}

@test "a failed task shows failCode and failMsg; its media is 404" {
    sim_start --quiet --time-scale 0.01
    id="$(submit_id test-image '{"input":{"prompt":"p","sim_duration_ms":100,"sim_outcome":"failed","sim_fail_code":"451","sim_fail_msg":"blocked by policy"}}')"
    b="$(sim_wait_done test-image "$id" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json 'd["data"]["state"]')" failed
    assert_equal "$(printf '%s' "$b" | sim_json 'd["data"]["failCode"]')" 451
    assert_equal "$(printf '%s' "$b" | sim_json 'd["data"]["failMsg"]')" "blocked by policy"
    assert_equal "$(printf '%s' "$b" | sim_json '"resultJson" in d["data"]')" false
    run http "$SIM_URL/media/$id/0.png"
    assert_output 404
}

@test "fail_rate=1 fails every new task with APIXO's failure words" {
    sim_start --quiet --time-scale 0.01 --fault fail_rate=1
    for i in 1 2 3 4 5 6; do
        id="$(submit_id test-image "{\"input\":{\"prompt\":\"p$i\",\"sim_duration_ms\":10}}")"
        b="$(sim_wait_done test-image "$id" 10)"
        assert_equal "$(printf '%s' "$b" | sim_json 'd["data"]["state"]')" failed
        printf '%s' "$b" | sim_json 'd["data"]["failCode"]' >>"$BATS_TEST_TMPDIR/codes"
    done
    run sort -u "$BATS_TEST_TMPDIR/codes"
    # words such as CONTENT_VIOLATION, more than one kind over six tasks
    assert_equal "$(grep -cvE '^[A-Z_]+$' "$BATS_TEST_TMPDIR/codes")" 0
    [ "${#lines[@]}" -ge 2 ]
}

@test "a duplicate submission (same model and input, any key order) is counted" {
    sim_start --quiet
    submit_id test-image '{"input":{"prompt":"same","seed":1}}' >/dev/null
    submit_id test-image '{"input":{"seed":1, "prompt":"same"}}' >/dev/null
    submit_id test-image '{"input":{"prompt":"other"}}' >/dev/null
    submit_id test-audio '{"input":{"prompt":"same","seed":1}}' >/dev/null
    f="$(sim_figures)"
    assert_equal "$(printf '%s' "$f" | sim_json 'd["duplicate_submissions"]')" 1
    assert_equal "$(printf '%s' "$f" | sim_json 'd["tasks"]')" 4
}

@test "callback delivered to the callback_url; lost_callback_rate=1 drops it" {
    sim_listen "$BATS_TEST_TMPDIR/cb.out"
    sim_start --quiet --time-scale 0.01
    id="$(submit_id test-image "{\"request_type\":\"callback\",\"callback_url\":\"http://127.0.0.1:$CB_PORT/hook/tok\",\"input\":{\"prompt\":\"p\",\"sim_duration_ms\":200}}")"
    for i in $(seq 1 100); do
        [ -s "$BATS_TEST_TMPDIR/cb.out" ] && break
        sleep 0.1
    done
    run sim_json 'd["data"]["taskId"] + " " + d["data"]["state"] + " " + d["message"]' <"$BATS_TEST_TMPDIR/cb.out"
    assert_output "$id success success"
    assert_equal "$(sim_figures | sim_json 'd["requests"]["callback_sent"]')" 1

    sim_faults '{"lost_callback_rate": 1}'
    : >"$BATS_TEST_TMPDIR/cb.out"
    id2="$(submit_id test-image "{\"request_type\":\"callback\",\"callback_url\":\"http://127.0.0.1:$CB_PORT/hook/tok\",\"input\":{\"prompt\":\"q\",\"sim_duration_ms\":100}}")"
    for i in $(seq 1 50); do
        [ "$(sim_figures | sim_json 'd["requests"]["callback_lost"]')" = 1 ] && break
        sleep 0.1
    done
    sleep 0.3
    assert_equal "$(sim_figures | sim_json 'd["requests"]["callback_lost"]')" 1
    [ ! -s "$BATS_TEST_TMPDIR/cb.out" ]
    # the task itself still completes
    b="$(sim_wait_done test-image "$id2" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json 'd["data"]["state"]')" success
}

@test "a failed callback delivery is retried up to 3 times, then counted failed" {
    sim_listen "$BATS_TEST_TMPDIR/cb.out" code 3
    sim_start --quiet --time-scale 0.01
    hook="http://127.0.0.1:$CB_PORT/hook"
    id="$(submit_id test-image "{\"request_type\":\"callback\",\"callback_url\":\"$hook\",\"input\":{\"prompt\":\"p\",\"sim_duration_ms\":10}}")"
    for i in $(seq 1 150); do
        [ "$(wc -l <"$BATS_TEST_TMPDIR/cb.out" 2>/dev/null || echo 0)" -ge 4 ] && break
        sleep 0.1
    done
    # three refusals, then the fourth attempt is taken; the same body each time
    run cut -d' ' -f1 "$BATS_TEST_TMPDIR/cb.out"
    assert_output "$(printf '500\n500\n500\n200')"
    assert_equal "$(cut -d' ' -f2- "$BATS_TEST_TMPDIR/cb.out" | sort -u | wc -l)" 1
    assert_equal "$(sim_figures | sim_json '[d["requests"]["callback_sent"], d["requests"]["callback_failed"]]')" "[1, 0]"
    kill "$CB_PID"
    wait "$CB_PID" 2>/dev/null || true
    CB_PID=
    sim_stop

    sim_listen "$BATS_TEST_TMPDIR/cb2.out" code 100
    sim_start --quiet --time-scale 0.01
    hook="http://127.0.0.1:$CB_PORT/hook"
    submit_id test-image "{\"request_type\":\"callback\",\"callback_url\":\"$hook\",\"input\":{\"prompt\":\"q\",\"sim_duration_ms\":10}}" >/dev/null
    for i in $(seq 1 150); do
        [ "$(sim_figures | sim_json 'd["requests"]["callback_failed"]')" = 1 ] && break
        sleep 0.1
    done
    assert_equal "$(sim_figures | sim_json 'd["requests"]["callback_failed"]')" 1
    sleep 1.5
    assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/cb2.out")" 4
}

@test "reset_rate=1: the connection closes without an answer" {
    sim_start --quiet
    sim_faults '{"reset_rate": 1}'
    for i in 1 2 3 4 5 6; do
        run curl -sS --max-time 10 -X POST -H "$(auth)" -d "{\"input\":{\"prompt\":\"p$i\"}}" \
            "$SIM_URL/generateTask/test-image"
        assert_failure 52 # empty reply from server
    done
    sim_faults_reset
    f="$(sim_figures)"
    assert_equal "$(printf '%s' "$f" | sim_json 'd["faults_injected"]["reset_rate"]')" 6
    # some resets came after the task was created: those tasks exist
    assert_equal "$(printf '%s' "$f" | sim_json 'd["tasks"] == d["tasks_created_then_reset"]')" true
}

@test "slow_rate: the answer is late but the task exists at once" {
    sim_start --quiet
    sim_faults '{"slow_rate": 1, "slow_ms": 1500}'
    start=$(date +%s%N)
    run http -X POST -H "$(auth)" -d '{"input":{"prompt":"p"}}' "$SIM_URL/generateTask/test-image"
    assert_output 200
    elapsed=$((($(date +%s%N) - start) / 1000000))
    [ "$elapsed" -ge 1400 ]
    run curl -sS --max-time 1 -X POST -H "$(auth)" -d '{"input":{"prompt":"q"}}' \
        "$SIM_URL/generateTask/test-image"
    assert_failure 28 # timed out waiting...
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 2 # ...but the task was made
}

@test "media_ttl_ms gives 410 after expiry; media_redirect gives 302; media_error_rate 500" {
    sim_start --quiet --time-scale 0.01
    id="$(submit_id test-image '{"input":{"prompt":"p","sim_duration_ms":10}}')"
    sim_wait_done test-image "$id" 10 >/dev/null
    sim_faults '{"media_ttl_ms": 300}'
    sleep 0.5
    run http "$SIM_URL/media/$id/0.png"
    assert_output 410
    sim_faults '{"media_ttl_ms": 0, "media_redirect": "file:///etc/passwd"}'
    run http "$SIM_URL/media/$id/0.png"
    assert_output 302
    run grep -i '^location: file:///etc/passwd' "$BATS_TEST_TMPDIR/headers"
    assert_success
    sim_faults '{"media_redirect": "", "media_error_rate": 1}'
    run http "$SIM_URL/media/$id/0.png"
    assert_output 500
    sim_faults_reset
    run http "$SIM_URL/media/$id/0.png"
    assert_output 200
}

@test "same seed and prompt: same task ids and media across two runs; another seed differs" {
    sim_start --quiet --time-scale 0.01 --seed 77
    id1="$(submit_id test-image '{"input":{"prompt":"lighthouse","sim_duration_ms":10}}')"
    sim_wait_done test-image "$id1" 10 >/dev/null
    sha1="$(sim_task "$id1" | sim_json 'd["media_sha256"][0]')"
    sim_stop
    sim_start --quiet --time-scale 0.01 --seed 77
    id2="$(submit_id test-image '{"input":{"prompt":"lighthouse","sim_duration_ms":10}}')"
    sim_wait_done test-image "$id2" 10 >/dev/null
    assert_equal "$id2" "$id1"
    run http "$SIM_URL/media/$id2/0.png"
    assert_equal "$(sha256sum "$BATS_TEST_TMPDIR/body" | cut -d' ' -f1)" "$sha1"
    sim_stop
    sim_start --quiet --time-scale 0.01 --seed 78
    id3="$(submit_id test-image '{"input":{"prompt":"lighthouse","sim_duration_ms":10}}')"
    [ "$id3" != "$id1" ]
    sim_wait_done test-image "$id3" 10 >/dev/null
    [ "$(sim_task "$id3" | sim_json 'd["media_sha256"][0]')" != "$sha1" ]
}

@test "drawn durations are reproducible for a seed and follow the time scale" {
    sim_start --quiet --time-scale 0.001 --seed 5
    for i in 1 2 3 4 5; do submit_id nano-banana "{\"input\":{\"prompt\":\"p$i\"}}" >/dev/null; done
    d1="$(sim_tasks | sim_json '[t["complete_ms"] - t["submit_ms"] for t in d]')"
    sim_stop
    sim_start --quiet --time-scale 0.001 --seed 5
    for i in 1 2 3 4 5; do submit_id nano-banana "{\"input\":{\"prompt\":\"p$i\"}}" >/dev/null; done
    d2="$(sim_tasks | sim_json '[t["complete_ms"] - t["submit_ms"] for t in d]')"
    assert_equal "$d2" "$d1"
    # nano-banana is 3..30 s, so 3..30 ms at 0.001
    run python3 -c 'import json,sys; v=json.loads(sys.argv[1]); assert all(3 <= x <= 30 for x in v), v' "$d1"
    assert_success
}

@test "sim_outputs and sim_media_bytes: several URLs, big media streamed with small memory" {
    sim_start --quiet --time-scale 0.01
    id="$(submit_id test-image '{"input":{"prompt":"big","sim_duration_ms":10,"sim_outputs":3,"sim_media_bytes":200000000}}')"
    b="$(sim_wait_done test-image "$id" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json 'len(json.loads(d["data"]["resultJson"])["resultUrls"])')" 3
    run curl -sS --max-time 60 -o /dev/null -w '%{http_code} %{size_download}' "$SIM_URL/media/$id/2.png"
    assert_output --regexp '^200 19[89][0-9]{6}$'
    rss="$(awk '/VmHWM/ {print $2}' "/proc/$SIM_PID/status")"
    [ "$rss" -lt 100000 ] # peak resident set under 100 MB while serving 200 MB
}

@test "fault control: GET lists switches, POST merges, bad names 400, reset clears" {
    sim_start --quiet --fault error_502=0.25
    run sim_curl "$SIM_URL/_sim/faults"
    assert_equal "$(printf '%s' "$output" | sim_json 'd["error_502"]')" 0.25
    assert_equal "$(printf '%s' "$output" | sim_json 'd["slow_ms"]')" 10000
    run sim_faults '{"error_504": 0.5}'
    assert_success
    assert_equal "$(printf '%s' "$output" | sim_json 'd["error_504"]')" 0.5
    assert_equal "$(printf '%s' "$output" | sim_json 'd["error_502"]')" 0.25
    run http -X POST -d '{"no_such_fault": 1}' "$SIM_URL/_sim/faults"
    assert_output 400
    run body
    assert_output --partial no_such_fault
    run http -X POST -d '{"error_500": 2}' "$SIM_URL/_sim/faults"
    assert_output 400
    run sim_faults_reset
    assert_equal "$(printf '%s' "$output" | sim_json 'd["error_502"] + d["error_504"]')" 0
}

@test "figures count requests by kind and /_sim/reset forgets everything" {
    sim_start --quiet --time-scale 0.01
    id="$(submit_id test-image '{"input":{"prompt":"p","sim_duration_ms":10}}')"
    sim_wait_done test-image "$id" 10 >/dev/null
    sim_status test-image "$id" >/dev/null
    http "$SIM_URL/media/$id/0.png" >/dev/null
    http "$SIM_URL/bogus" >/dev/null
    f="$(sim_figures)"
    assert_equal "$(printf '%s' "$f" | sim_json 'd["requests"]["submit"]')" 1
    [ "$(printf '%s' "$f" | sim_json 'd["requests"]["status"]')" -ge 2 ]
    assert_equal "$(printf '%s' "$f" | sim_json 'd["requests"]["media"]')" 1
    assert_equal "$(printf '%s' "$f" | sim_json 'd["requests"]["other"]')" 1
    assert_equal "$(printf '%s' "$f" | sim_json 'd["requests"]["total"] == sum(d["requests"][k] for k in ("submit","status","media","other"))')" true
    t="$(sim_task "$id")"
    assert_equal "$(printf '%s' "$t" | sim_json 'd["media_requests"]')" 1
    [ "$(printf '%s' "$t" | sim_json 'd["status_requests"]')" -ge 2 ]
    sim_reset >/dev/null
    f="$(sim_figures)"
    assert_equal "$(printf '%s' "$f" | sim_json 'd["tasks"]')" 0
    assert_equal "$(printf '%s' "$f" | sim_json 'd["requests"]["total"]')" 0
    run http "$SIM_URL/_sim/tasks/$id"
    assert_output 404
}

@test "--profile adds a model whose name has slashes" {
    cat >"$BATS_TEST_TMPDIR/profile.json" <<'EOF'
{"models": {"fal-ai/flux/dev": {"kind": "image", "median_ms": 1000, "sigma": 0,
 "min_ms": 10, "max_ms": 5000}}}
EOF
    sim_start --quiet --time-scale 0.01 --profile "$BATS_TEST_TMPDIR/profile.json"
    id="$(submit_id fal-ai/flux/dev '{"input":{"prompt":"p"}}')"
    b="$(sim_wait_done fal-ai/flux/dev "$id" 10)"
    assert_equal "$(printf '%s' "$b" | sim_json 'd["data"]["state"]')" success
    assert_equal "$(sim_task "$id" | sim_json 'd["model"]')" fal-ai/flux/dev
    assert_equal "$(sim_task "$id" | sim_json 'd["complete_ms"] - d["submit_ms"]')" 10
}

@test "many tasks: 2000 submits and status polls stay fast and distinct" {
    sim_start --quiet
    python3 - "$SIM_URL" "$GENFS_SIM_KEY" <<'EOF'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
h = {"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"}
ids = set()
for i in range(2000):
    c.request("POST", "/generateTask/nano-banana", json.dumps({"input": {"prompt": "p%d" % i}}), h)
    ids.add(json.loads(c.getresponse().read())["data"]["taskId"])
assert len(ids) == 2000
for t in list(ids)[:500]:
    c.request("GET", "/statusTask/nano-banana?taskId=" + t, headers=h)
    d = json.loads(c.getresponse().read())
    assert d["code"] == 200 and d["data"]["taskId"] == t
EOF
    assert_equal "$(sim_figures | sim_json 'd["tasks"]')" 2000
}
