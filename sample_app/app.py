"""kubia: the walkthrough's sample app, in Python (the book's app.js, line for line).

Answers every HTTP request on port 8080 with `You've hit <hostname>` and logs
`Received request from <client ip>`. Runs the same under miniorch and a real Docker:
only the standard library. Exits cleanly (status 0) on SIGTERM, as a well-behaved
container should, so `kubectl delete pod` does not wait out the grace period.
"""

import http.server
import os
import signal
import socket
import sys
import threading

PORT = 8080


class Handler(http.server.BaseHTTPRequestHandler):
    # One line per request on stdout, exactly the seed's wording; no default access log.
    def do_GET(self) -> None:
        print(f"Received request from {self.client_address[0]}", flush=True)
        body = f"You've hit {socket.gethostname()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET
    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    # miniorch's plain (no-isolation) mode has no network namespace per pod: it hands
    # each pod a loopback address to bind so replicas do not fight over the port.
    # Everywhere else (Docker, Kubernetes, miniorch sandboxes) it is unset: all addresses.
    host = os.environ.get("MINIORCH_POD_IP", "")
    server = http.server.ThreadingHTTPServer((host, PORT), Handler)
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        print("Kubia server shutting down", flush=True)
        # shutdown() waits for serve_forever(), so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Kubia server starting on port {PORT}...", flush=True)
    server.serve_forever()
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
