#!/usr/bin/env python3
"""Log-in flood against a relay's follow-up page (benchmark scenario "login").

    login.py --port P --cert CERT.pem --seconds S --workers W --words WORDLIST

W threads each POST /followup/en/login with a fresh random 8-word codename
(valid words, so every request costs the relay one Argon2id derivation,
unless every derivation slot is taken) over their own TLS keep-alive
connection, for S seconds. Prints JSON: the answers by status (403 = the
derivation ran and found no thread, 503 = turned away at the semaphore),
derivations per second, and the elapsed time. Load goes to 127.0.0.1 only;
the loop is bounded by S.
"""

import argparse
import collections
import http.client
import json
import random
import ssl
import threading
import time


def words(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2:
                out.append(parts[1])
    return out


def worker(args, ctx, vocab, deadline, counts, lock):
    rng = random.SystemRandom()
    conn = None
    while time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPSConnection("127.0.0.1", args.port, context=ctx, timeout=60)
        codename = "+".join(rng.choice(vocab) for _ in range(8))
        try:
            conn.request(
                "POST",
                "/followup/en/login",
                body=f"codename={codename}",
                headers={"Content-Type": "application/x-www-form-urlencoded", "Host": "localhost"},
            )
            res = conn.getresponse()
            res.read()
            status = res.status
        except (OSError, http.client.HTTPException):
            status = "error"
            conn.close()
            conn = None
        with lock:
            counts[status] += 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--words", required=True)
    args = p.parse_args()
    ctx = ssl.create_default_context(cafile=args.cert)
    ctx.check_hostname = False
    vocab = words(args.words)
    counts = collections.Counter()
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + args.seconds
    threads = [
        threading.Thread(target=worker, args=(args, ctx, vocab, deadline, counts, lock))
        for _ in range(args.workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    derived = counts.get(403, 0)
    print(
        json.dumps(
            {
                "seconds": round(elapsed, 3),
                "statuses": {str(k): v for k, v in sorted(counts.items(), key=str)},
                "derivations_per_second": round(derived / elapsed, 2),
                "refused_per_second": round(counts.get(503, 0) / elapsed, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
