#!/usr/bin/env python3
"""Times a server's cold start: from exec until its HTTPS port answers an
HTTP request. Used by scripts/bench/run (scenario "store").

    coldstart.py --port P --cert CERT.pem --log FILE -- COMMAND...

Starts COMMAND, polls https://127.0.0.1:P/ (TLS verified against CERT.pem)
every 5 ms until a response's status line arrives, prints
{"seconds": …} as JSON, then stops the server with SIGTERM and waits for
it. Gives up (exit 1) after --timeout seconds or if the server exits.
"""

import argparse
import json
import signal
import socket
import ssl
import subprocess
import sys
import time


def answers(ctx: ssl.SSLContext, port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return tls.recv(16).startswith(b"HTTP/")
    except (OSError, ssl.SSLError):
        return False


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    ctx = ssl.create_default_context(cafile=a.cert)
    ctx.check_hostname = False  # the self-signed demo certificate; the CA pin suffices
    with open(a.log, "ab") as log:
        start = time.monotonic()
        server = subprocess.Popen(cmd, stdout=log, stderr=log)
        try:
            while True:
                if answers(ctx, a.port):
                    elapsed = time.monotonic() - start
                    break
                if server.poll() is not None:
                    print(f"coldstart: server exited with {server.returncode}", file=sys.stderr)
                    return 1
                if time.monotonic() - start > a.timeout:
                    print("coldstart: no answer before the timeout", file=sys.stderr)
                    return 1
                time.sleep(0.005)
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
    print(json.dumps({"seconds": round(elapsed, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
