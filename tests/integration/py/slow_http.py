#!/usr/bin/env python3
"""slow_http.py DIR PORT_FILE SECONDS: serve DIR on 127.0.0.1 (a free port, written to
PORT_FILE), each file's body spread over SECONDS, so a download of it takes that long.

Headers (Content-Type from the extension, Content-Length) go out at once; the body follows
in 20 pieces. Every request is logged to stderr ("GET /name")."""
import http.server
import mimetypes
import os
import sys
import time

root, port_file, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])


class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = os.path.join(root, os.path.basename(self.path.split("?")[0]))
        sys.stderr.write("GET /%s\n" % os.path.basename(path))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", mimetypes.guess_type(path)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        step = len(data) // 20 + 1
        for i in range(0, len(data), step):
            time.sleep(seconds / 20)
            self.wfile.write(data[i : i + step])
            self.wfile.flush()

    def log_message(self, fmt, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
