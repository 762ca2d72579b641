#!/usr/bin/env python3
"""A malicious provider for the security tests: just enough of APIXO's task API (genfs's default
provider: POST /generateTask/MODEL, GET /statusTask/MODEL?taskId=ID, answers
{"code", "message", "data"}) to get tasks submitted, then answers that attack the client.

  evil_provider.py --port-file FILE [--side-port-file FILE] [--key KEY]

Listens on 127.0.0.1 (a free port, written to --port-file) and on a second "side" port (written
to --side-port-file): a stand-in for another service on the machine, which only records what
reaches it.

Each task's behaviour is chosen by the prompt written to MODEL/new: "MODE" or "MODE rest...".
  ok               status: success with one result URL on this server (/media/ID/0.png, 4 KiB)
  huge_valid       status: a valid 200 answer, state processing, holding a 12 MiB string field
  huge_body        status: a 40 MiB body (over any sane limit), streamed
  many_items       status: a valid 15 MiB answer whose extra field is an array of ~7.5 M zeros
  deep             status: 200 with data nested 500,000 arrays deep
  deep_result      status: success, resultJson a string holding 200,000 nested arrays
  slowloris        status: headers, Content-Length 100000, then one byte per second
  big_length       status: Content-Length 10^15, 60 bytes of JSON, then silence
  file_url         status: success, the only result URL file:///etc/passwd
  side_url         status: success, result URL on the side port (another local service)
  same_origin_url  status: success, result URL on this server's own port (/media/ID/0.png)
  api_redirect     status: 302 to the side port (a client must not follow it with the key)
  many_urls        status: success with 10,000 result URLs (under genfs's 1 MiB answer cap)
  media_big_length media: Content-Length 10^13, a few bytes, then the connection closes
  media_endless    media: a chunked body that never ends (64 KiB chunks, as fast as read)
  media_trickle    media: Content-Length 1000000, then one byte every 2 s, forever
  echo_key         status: failed, failMsg repeating the Authorization header it received
  echo_key_submit  submit: 401 whose data.error repeats the Authorization header
  bad_id:VALUE     submit: taskId VALUE (URL-escaped: %2F for /, ...) instead of a good one
Any other prompt behaves like ok.

Test-only endpoints (no key): GET /_evil/requests (every request to the main port: method,
path, authorization), GET /_evil/side (every request to the side port), GET /_evil/stats
(counts by kind: submit, status, media).
"""
import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
TASKS = {}  # id -> mode
REQUESTS = []
SIDE = []
COUNTS = {"submit": 0, "status": 0, "media": 0, "other": 0}
STATE = {"n": 0, "port": 0, "side": 0, "key": None}


def write_port(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, path)


class Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("evil: " + (fmt % args) + "\n")

    def send_body(self, code, body, ctype="application/json", headers=None):
        if isinstance(body, str):
            body = body.encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_json(self, code, obj, headers=None):
        self.send_body(code, json.dumps(obj), headers=headers)


class Side(Base):
    """Another service on the machine: records, answers 200 with a few bytes."""

    def handle_any(self):
        with LOCK:
            SIDE.append({"method": self.command, "path": self.path,
                         "authorization": self.headers.get("Authorization")})
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.send_body(200, b"side service secret: do not serve me\n", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


_CACHE = {}


def cached(what):
    """The big constant tails of the attack bodies, built once."""
    with LOCK:
        if what not in _CACHE:
            if what == "pad":
                _CACHE[what] = b', "pad": "' + b"x" * (12 * 1024 * 1024) + b'"}}'
            elif what == "items":
                _CACHE[what] = b', "junk": [' + b",".join([b"0"] * 7_500_000) + b"]}}"
            elif what == "deep":
                _CACHE[what] = b"[" * 500_000 + b"]" * 500_000 + b"}}"
        return _CACHE[what]


def status_data(tid, state, result=None, fail_code=None, fail_msg=None):
    """The data of an APIXO status answer: only the fields that apply to the state."""
    now = int(time.time() * 1000)
    d = {"taskId": tid, "state": state, "createTime": now - 1000}
    if result is not None:
        d["resultJson"] = result
    if fail_code is not None:
        d["failCode"], d["failMsg"] = fail_code, fail_msg
    if state in ("success", "failed"):
        d["costTime"], d["completeTime"] = 1000, now
    return d


def envelope(data):
    return {"code": 200, "message": "success", "data": data}


def refusal(code, message, error):
    return {"code": code, "message": message, "data": {"error": error}}


def success(tid, urls):
    return envelope(status_data(tid, "success", json.dumps({"resultUrls": urls})))


class Evil(Base):
    def record(self, kind):
        with LOCK:
            COUNTS[kind] = COUNTS.get(kind, 0) + 1
            REQUESTS.append({"method": self.command, "path": self.path,
                             "authorization": self.headers.get("Authorization")})

    def own(self, path):
        return f"http://127.0.0.1:{STATE['port']}{path}"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        path = urllib.parse.urlsplit(self.path).path
        if not path.startswith("/generateTask/"):
            self.record("other")
            return self.send_json(404, refusal(404, "Not found", "Resource not found"))
        self.record("submit")
        auth = self.headers.get("Authorization") or ""
        try:
            prompt = json.loads(raw)["input"]["prompt"]
        except Exception:
            return self.send_json(400, refusal(400, "Invalid request",
                                               "Missing required field: input.prompt"))
        mode = prompt.split()[0] if prompt.split() else "ok"
        if mode == "echo_key_submit":
            return self.send_json(401, refusal(401, "Unauthorized",
                                               f"invalid credentials: {auth}"))
        with LOCK:
            STATE["n"] += 1
            tid = "ev%06d" % STATE["n"]
        if mode.startswith("bad_id:"):
            tid = urllib.parse.unquote(mode[len("bad_id:"):])
        with LOCK:
            TASKS[tid] = mode
        self.send_json(200, envelope({"taskId": tid}))

    def do_GET(self):
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        if path == "/_evil/requests":
            with LOCK:
                return self.send_json(200, REQUESTS)
        if path == "/_evil/side":
            with LOCK:
                return self.send_json(200, SIDE)
        if path == "/_evil/stats":
            with LOCK:
                return self.send_json(200, COUNTS)
        if path.startswith("/media/"):
            self.record("media")
            return self.media(path)
        if path.startswith("/statusTask/"):
            self.record("status")
            tid = urllib.parse.parse_qs(split.query).get("taskId", [""])[0]
            with LOCK:
                mode = TASKS.get(tid)
            if mode is None:
                return self.send_json(404, refusal(404, "Not found", f"Task not found: {tid}"))
            return self.status(tid, mode)
        self.record("other")
        self.send_json(404, refusal(404, "Not found", "Resource not found"))

    # ---- status answers ----
    def status(self, tid, mode):
        if mode == "huge_valid":
            head = json.dumps(envelope(status_data(tid, "processing")))[:-2]
            return self.send_body(200, head.encode() + cached("pad"))
        if mode == "huge_body":
            return self.stream(b'{"code":200,"message":"success","data":{"pad":"',
                               40 * 1024 * 1024, b"x")
        if mode == "many_items":
            head = json.dumps(envelope(status_data(tid, "processing")))[:-2]
            return self.send_body(200, head.encode() + cached("items"))
        if mode == "deep":
            body = ('{"code":200,"message":"success","data":{"taskId":"%s","state":"processing",'
                    '"junk":' % tid).encode() + cached("deep")
            return self.send_body(200, body)
        if mode == "deep_result":
            depth = 200_000
            inner = '{"resultUrls":' + "[" * depth + '"%s"' % self.own("/media/%s/0.png" % tid) \
                + "]" * depth + "}"
            return self.send_json(200, envelope(status_data(tid, "success", inner)))
        if mode == "slowloris":
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(100000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(1)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
            self.close_connection = True
            return
        if mode == "big_length":
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(10 ** 15))
                self.end_headers()
                self.wfile.write(b'{"code":200,"message":"success","data":{"state":"processing",')
                self.wfile.flush()
                time.sleep(120)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
            self.close_connection = True
            return
        if mode == "file_url":
            return self.send_json(200, success(tid, ["file:///etc/passwd"]))
        if mode == "side_url":
            return self.send_json(200, success(
                tid, [f"http://127.0.0.1:{STATE['side']}/internal/{tid}/0.png"]))
        if mode == "api_redirect":
            return self.send_body(302, b"", headers={
                "Location": f"http://127.0.0.1:{STATE['side']}/stolen/{tid}"})
        if mode == "many_urls":
            urls = [self.own("/media/%s/%d.png" % (tid, i)) for i in range(10_000)]
            return self.send_json(200, success(tid, urls))
        if mode == "echo_key":
            auth = self.headers.get("Authorization") or ""
            d = status_data(tid, "failed", None, "UNAUTHORIZED", f"your key {auth} was refused")
            return self.send_json(200, envelope(d))
        # ok, same_origin_url, media_* and anything else: success with a URL here.
        return self.send_json(200, success(tid, [self.own("/media/%s/0.png" % tid)]))

    def stream(self, head, n, fill):
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(head) + n + 4))
            self.end_headers()
            self.wfile.write(head)
            chunk = fill * 65536
            left = n
            while left > 0:
                k = min(left, len(chunk))
                self.wfile.write(chunk[:k])
                left -= k
            self.wfile.write(b'"}}\n')
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    # ---- media ----
    def media(self, path):
        parts = path.split("/")
        tid = parts[2] if len(parts) > 2 else ""
        with LOCK:
            mode = TASKS.get(tid, "ok")
        try:
            if mode == "media_big_length":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(10 ** 13))
                self.end_headers()
                self.wfile.write(b"\x89PNG\r\n\x1a\n")
                self.wfile.flush()
                self.close_connection = True
                return
            if mode == "media_endless":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"\0" * 65536
                frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
                while True:
                    self.wfile.write(frame)
            if mode == "media_trickle":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                while True:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(2)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
            return
        body = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16
        self.send_body(200, body, "image/png")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--side-port-file")
    a = ap.parse_args()
    side = Server(("127.0.0.1", 0), Side)
    main_srv = Server(("127.0.0.1", 0), Evil)
    STATE["port"] = main_srv.server_address[1]
    STATE["side"] = side.server_address[1]
    threading.Thread(target=side.serve_forever, daemon=True).start()
    if a.side_port_file:
        write_port(a.side_port_file, STATE["side"])
    write_port(a.port_file, STATE["port"])
    sys.stderr.write(f"evil provider on {STATE['port']}, side service on {STATE['side']}\n")
    try:
        main_srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
