"""A one-file HTTP server for drill's Docker tests: GET /health -> 200 "ok <hostname>".

Runs on the standard library alone so it needs nothing but the base image's python3.
"""

import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"ok {socket.gethostname()}\n".encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # healthchecks would flood the log
        pass


if __name__ == "__main__":
    # PID 1 gets no default SIGTERM handler; without this `docker stop` waits out its timeout.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
