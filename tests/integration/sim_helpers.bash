# Helpers to run genfs-sim from bats tests (sim.bats and the genfs tests). The sim speaks APIXO
# unless started with --protocol (sim_start_proto).
#
#   sim_start [ARGS...]   start $BUILD_DIR/genfs-sim on a free loopback port; exports SIM_PID,
#                         SIM_PORT, SIM_URL, SIM_LOG and the test key (GENFS_SIM_KEY and
#                         GENFS_API_KEY, made at run time unless already set; the sim reads
#                         GENFS_SIM_KEY). SIM_NO_KEY=1: start it without a key.
#   sim_stop              SIGTERM, wait up to 5 s, then SIGKILL; sets SIM_EXIT_STATUS
#   sim_faults JSON       merge fault switches (POST /_sim/faults); prints the switches now set
#   sim_faults_reset      all fault switches off
#   sim_figures           GET /_sim/figures
#   sim_task ID           GET /_sim/tasks/ID (true completion time, media sha256, ...)
#   sim_tasks             GET /_sim/tasks
#   sim_reset             forget all tasks and zero the figures
#   sim_submit MODEL JSON POST /generateTask/MODEL with the key (APIXO); prints the answer body
#   sim_status MODEL ID   GET /statusTask/MODEL?taskId=ID with the key; prints the answer body
#   sim_wait_done MODEL ID [SECONDS]  poll until success/failed; prints the last answer
#   sim_json EXPR         reads JSON on stdin, prints EXPR evaluated in Python with the
#                         document as d (strings raw, anything else as JSON)
#   sim_listen OUT [FORMAT] [FAILS]
#                         a POST sink on a free loopback port (callbacks): each body appended to
#                         OUT as one line, after the request's path (FORMAT path) or the status it
#                         got (FORMAT code); 500 to the first FAILS requests, then 200. Exports
#                         CB_PORT and CB_PID (the caller kills it)
#
# BUILD_DIR defaults to "build" under the repository root (found from this file's place); a
# relative BUILD_DIR is taken from the repository root. SIM_BIN overrides the binary.

SIM_HELPERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SIM_REPO_ROOT="$(cd "$SIM_HELPERS_DIR/../.." && pwd)"

sim_bin() {
    if [ -n "${SIM_BIN:-}" ]; then
        printf '%s\n' "$SIM_BIN"
        return 0
    fi
    local dir="${BUILD_DIR:-build}"
    case "$dir" in
    /*) ;;
    *) dir="$SIM_REPO_ROOT/$dir" ;;
    esac
    # The meson target lives in sim/; the top level may also put one at the build root.
    local b
    for b in "$dir/genfs-sim" "$dir/sim/genfs-sim"; do
        if [ -x "$b" ]; then
            printf '%s\n' "$b"
            return 0
        fi
    done
    echo "sim_bin: no genfs-sim in $dir (build it: meson compile -C $dir genfs-sim)" >&2
    return 1
}

sim_key_init() {
    if [ -z "${GENFS_SIM_KEY:-}" ]; then
        GENFS_SIM_KEY="sk-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    fi
    export GENFS_SIM_KEY
    export GENFS_API_KEY="$GENFS_SIM_KEY"
}

sim_start() {
    local bin dir pf i
    bin="$(sim_bin)" || return 1
    sim_key_init
    dir="${BATS_TEST_TMPDIR:-}"
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        dir="$(mktemp -d "${TMPDIR:-/tmp}/genfs-sim.XXXXXX")"
    fi
    pf="$dir/sim-port.$$.$RANDOM"
    rm -f "$pf"
    SIM_LOG="$dir/sim.log"
    # fd 3 closed: bats waits for whoever holds it, and the sim outlives this function.
    # SIM_NO_KEY=1 starts it with no key at all (then any Bearer token is accepted).
    if [ -n "${SIM_NO_KEY:-}" ]; then
        env -u GENFS_SIM_KEY "$bin" --listen 127.0.0.1:0 --port-file "$pf" "$@" \
            >>"$SIM_LOG" 2>&1 3>&- &
    else
        "$bin" --listen 127.0.0.1:0 --port-file "$pf" "$@" >>"$SIM_LOG" 2>&1 3>&- &
    fi
    SIM_PID=$!
    export SIM_PID SIM_LOG
    for i in $(seq 1 200); do
        if [ -s "$pf" ]; then
            SIM_PORT="$(cat "$pf")"
            SIM_URL="http://127.0.0.1:$SIM_PORT"
            export SIM_PORT SIM_URL
            return 0
        fi
        if ! kill -0 "$SIM_PID" 2>/dev/null; then
            echo "sim_start: genfs-sim exited at start; log:" >&2
            cat "$SIM_LOG" >&2
            wait "$SIM_PID" 2>/dev/null
            SIM_PID=
            return 1
        fi
        sleep 0.05
    done
    echo "sim_start: no port after 10 s; log:" >&2
    cat "$SIM_LOG" >&2
    sim_stop
    return 1
}

sim_stop() {
    SIM_EXIT_STATUS=
    [ -n "${SIM_PID:-}" ] || return 0
    local i
    kill -TERM "$SIM_PID" 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 "$SIM_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SIM_PID" 2>/dev/null; then
        echo "sim_stop: genfs-sim $SIM_PID ignored SIGTERM for 5 s, killing" >&2
        kill -KILL "$SIM_PID" 2>/dev/null
    fi
    wait "$SIM_PID" 2>/dev/null
    SIM_EXIT_STATUS=$?
    SIM_PID=
    return 0
}

sim_curl() {
    curl -sS --max-time "${SIM_CURL_TIMEOUT:-30}" "$@"
}

sim_faults() {
    sim_curl -f -X POST -H 'Content-Type: application/json' --data-binary "$1" \
        "$SIM_URL/_sim/faults"
}

sim_faults_reset() {
    sim_curl -f -X POST "$SIM_URL/_sim/faults/reset"
}

sim_figures() {
    sim_curl -f "$SIM_URL/_sim/figures"
}

sim_task() {
    sim_curl -f "$SIM_URL/_sim/tasks/$1"
}

sim_tasks() {
    sim_curl -f "$SIM_URL/_sim/tasks"
}

sim_reset() {
    sim_curl -f -X POST "$SIM_URL/_sim/reset"
}

sim_submit() {
    sim_curl -X POST -H "Authorization: Bearer $GENFS_SIM_KEY" \
        -H 'Content-Type: application/json' --data-binary "$2" "$SIM_URL/generateTask/$1"
}

sim_status() {
    sim_curl -H "Authorization: Bearer $GENFS_SIM_KEY" "$SIM_URL/statusTask/$1?taskId=$2"
}

sim_wait_done() {
    local model="$1" id="$2" secs="${3:-30}" body state i
    for i in $(seq 1 $((secs * 10))); do
        body="$(sim_status "$model" "$id")"
        state="$(printf '%s' "$body" | sim_json 'd["data"]["state"]' 2>/dev/null)"
        if [ "$state" = success ] || [ "$state" = failed ]; then
            printf '%s\n' "$body"
            return 0
        fi
        sleep 0.1
    done
    echo "sim_wait_done: $model/$id not done after $secs s: $body" >&2
    return 1
}

sim_json() {
    python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d, "json": json})
print(v if isinstance(v, str) else json.dumps(v))
' "$1"
}

# ---- every wire protocol (genfs-sim --protocol apixo|kie|replicate|fal) ---------------------
#
#   sim_start_proto PROTOCOL [ARGS...]   sim_start --protocol PROTOCOL ARGS; exports SIM_PROTOCOL
#   sim_auth_proto [PROTOCOL]            prints the Authorization header line for the protocol
#                                        ("Authorization: Bearer KEY"; fal "Authorization: Key KEY")
#   sim_submit_proto PROTOCOL MODEL JSON [WEBHOOK]
#                                        POSTs JSON as the whole body to the protocol's submit URL
#                                        (APIXO {"input":...,...}, kie {"model":...,"input":...}
#                                        to createTask whatever MODEL, replicate {"input":...},
#                                        fal the input itself; WEBHOOK becomes ?fal_webhook= for
#                                        fal); prints the answer body
#   sim_submit_input PROTOCOL MODEL INPUT_JSON
#                                        wraps INPUT_JSON as the protocol wants, submits, prints
#                                        the task id (data.taskId / id / request_id)
#   sim_status_proto PROTOCOL MODEL ID   the status answer body (kie and replicate ignore MODEL;
#                                        fal polls the model's app id)
#   sim_result_proto MODEL ID            fal: GET the response_url (the result object)
#   sim_fal_app MODEL                    fal's app id of an endpoint id (fal-ai/flux/dev ->
#                                        fal-ai/flux)
#   sim_state_proto PROTOCOL             reads a status answer on stdin, prints the state word
#                                        (APIXO/kie data.state, replicate/fal status)
#   sim_wait_done_proto PROTOCOL MODEL ID [SECONDS]
#                                        polls until the task ended; prints the last status body
#   sim_urls_proto PROTOCOL MODEL ID     the result URLs of an ended task, one per line
#
# PROTOCOL may be left empty ("") to mean $SIM_PROTOCOL (default apixo).

sim_start_proto() {
    SIM_PROTOCOL="${1:-apixo}"
    export SIM_PROTOCOL
    shift
    sim_start --protocol "$SIM_PROTOCOL" "$@"
}

sim_proto_of() {
    printf '%s\n' "${1:-${SIM_PROTOCOL:-apixo}}"
}

sim_auth_proto() {
    if [ "$(sim_proto_of "${1:-}")" = fal ]; then
        printf 'Authorization: Key %s\n' "$GENFS_SIM_KEY"
    else
        printf 'Authorization: Bearer %s\n' "$GENFS_SIM_KEY"
    fi
}

sim_fal_app() {
    case "$1" in
    workflows/* | comfy/*) printf '%s\n' "$1" | cut -d/ -f1-3 ;;
    *) printf '%s\n' "$1" | cut -d/ -f1-2 ;;
    esac
}

sim_submit_proto() {
    local p model="$2" body="$3" hook="${4:-}" url
    p="$(sim_proto_of "$1")"
    case "$p" in
    kie) url="$SIM_URL/api/v1/jobs/createTask" ;;
    replicate) url="$SIM_URL/v1/models/$model/predictions" ;;
    fal)
        url="$SIM_URL/$model"
        if [ -n "$hook" ]; then
            url="$url?fal_webhook=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$hook")"
        fi
        ;;
    *) url="$SIM_URL/generateTask/$model" ;;
    esac
    sim_curl -X POST -H "$(sim_auth_proto "$p")" -H 'Content-Type: application/json' \
        --data-binary "$body" "$url"
}

sim_submit_input() {
    local p body
    p="$(sim_proto_of "$1")"
    case "$p" in
    fal) body="$3" ;;
    kie) body="{\"model\": \"$2\", \"input\": $3}" ;;
    *) body="{\"input\": $3}" ;;
    esac
    case "$p" in
    replicate) sim_submit_proto "$p" "$2" "$body" | sim_json 'd["id"]' ;;
    fal) sim_submit_proto "$p" "$2" "$body" | sim_json 'd["request_id"]' ;;
    *) sim_submit_proto "$p" "$2" "$body" | sim_json 'd["data"]["taskId"]' ;;
    esac
}

sim_status_proto() {
    local p
    p="$(sim_proto_of "$1")"
    case "$p" in
    kie) sim_curl -H "$(sim_auth_proto "$p")" "$SIM_URL/api/v1/jobs/recordInfo?taskId=$3" ;;
    replicate) sim_curl -H "$(sim_auth_proto "$p")" "$SIM_URL/v1/predictions/$3" ;;
    fal) sim_curl -H "$(sim_auth_proto "$p")" "$SIM_URL/$(sim_fal_app "$2")/requests/$3/status" ;;
    *) sim_curl -H "$(sim_auth_proto "$p")" "$SIM_URL/statusTask/$2?taskId=$3" ;;
    esac
}

sim_result_proto() {
    sim_curl -H "$(sim_auth_proto fal)" "$SIM_URL/$(sim_fal_app "$1")/requests/$2"
}

sim_state_proto() {
    case "$(sim_proto_of "${1:-}")" in
    replicate | fal) sim_json 'd["status"]' ;;
    *) sim_json 'd["data"]["state"]' ;;
    esac
}

sim_wait_done_proto() {
    local p model="$2" id="$3" secs="${4:-30}" body state i
    p="$(sim_proto_of "$1")"
    for i in $(seq 1 $((secs * 10))); do
        body="$(sim_status_proto "$p" "$model" "$id")"
        state="$(printf '%s' "$body" | sim_state_proto "$p" 2>/dev/null)"
        case "$state" in
        success | failed | fail | succeeded | canceled | aborted | COMPLETED)
            printf '%s\n' "$body"
            return 0
            ;;
        esac
        sleep 0.1
    done
    echo "sim_wait_done_proto: $p $model/$id not done after $secs s: $body" >&2
    return 1
}

sim_urls_proto() {
    local p
    p="$(sim_proto_of "$1")"
    case "$p" in
    replicate)
        # output may be a URL, an array (nested too) or an object of named URLs (some null).
        sim_status_proto "$p" "$2" "$3" | sim_json '"\n".join((lambda f: f(f, d["output"]))(
            lambda f, o: [o] if isinstance(o, str) else
            sum((f(f, x) for x in (o.values() if isinstance(o, dict) else o or [])), [])))'
        ;;
    fal)
        sim_result_proto "$2" "$3" | sim_json '"\n".join(
            [f["url"] for f in d.get("images", [])]
            + [f["url"] for f in d.get("videos", d.get("audios", []))]
            + ([d[k]["url"] for k in ("video", "audio") if k in d]
               if not ("videos" in d or "audios" in d) else []))'
        ;;
    *)
        sim_status_proto "$p" "$2" "$3" |
            sim_json '"\n".join(json.loads(d["data"].get("resultJson") or "{}").get("resultUrls", []))'
        ;;
    esac
}

sim_listen() {
    local out="$1" format="${2:-}" fails="${3:-0}" pf="$BATS_TEST_TMPDIR/cb.port" i
    rm -f "$pf"
    python3 -c '
import http.server, os, sys
out, pf, format, left = sys.argv[1], sys.argv[2], sys.argv[3], [int(sys.argv[4])]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        b = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        code = 500 if left[0] > 0 else 200
        left[0] -= 1
        head = {"path": self.path, "code": str(code)}.get(format)
        line = (head.encode() + b" " if head else b"") + b + b"\n"
        # One write of the whole line, so a reader never sees half a long body.
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, line)
        os.close(fd)
        self.send_response(code)
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(pf + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(pf + ".tmp", pf)
s.serve_forever()
' "$out" "$pf" "$format" "$fails" 3>&- &
    CB_PID=$!
    for i in $(seq 1 100); do
        [ -s "$pf" ] && break
        sleep 0.05
    done
    CB_PORT="$(cat "$pf")"
}
