"""A tiny test app (stdlib only): HTTP on $MINIORCH_POD_IP:$PORT (default 8080).

`/` answers 200 "You've hit <hostname>"; `/ready` answers $READY_STATUS (default 200).
Prints "listening" once bound; on SIGTERM prints "terminating" and exits 0.
"""

import http.server
import os
import signal
import socket
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = int(os.environ.get("READY_STATUS", "200")) if self.path == "/ready" else 200
        body = f"You've hit {socket.gethostname()}\n".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"Received request from {self.client_address[0]}", flush=True)


def main() -> None:
    def term(signum: int, frame: object) -> None:
        print("terminating", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    host = os.environ.get("MINIORCH_POD_IP", "0.0.0.0")
    server = http.server.HTTPServer((host, int(os.environ.get("PORT", "8080"))), Handler)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
