"""References B and C for the small-submission benchmark: the form handler
a developer would write with Flask, served by gunicorn (4 sync workers) over
plain HTTP. It parses the same multipart form as the relay and stores the
text durably (write, fsync) before answering, so its acks are as durable as
the relay's.

B (default): the text is written as it came: nothing is encrypted, padded
or indexed.

C (BENCH_FLASK_GPG set to the recipients' fingerprints, separated by
spaces): SecureDrop-like. Each submission is piped to the gpg CLI, encrypted
to every recipient, as SecureDrop's store did through python-gnupg before
it moved to Sequoia (`gpg --batch --yes --trust-model always --encrypt -r
FPR1 -r FPR2 -r FPR3 --output FILE`); the ciphertext file is then fsynced
before the answer. GNUPGHOME names the keyring holding the public keys.

Run by scripts/bench/run:
    BENCH_FLASK_DIR=DIR gunicorn --workers 4 --bind 127.0.0.1:PORT \
        --chdir scripts/bench flask_app:app
    BENCH_FLASK_DIR=DIR BENCH_FLASK_GPG='FPR1 FPR2 FPR3' GNUPGHOME=DIR \
        gunicorn (same)
"""

import os
import subprocess
import uuid

from flask import Flask, request

app = Flask(__name__)
STORE = os.environ["BENCH_FLASK_DIR"]
GPG_RECIPIENTS = os.environ.get("BENCH_FLASK_GPG", "").split()
GPG = ["gpg", "--batch", "--yes", "--trust-model", "always", "--encrypt"]
for fpr in GPG_RECIPIENTS:
    GPG += ["-r", fpr]


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@app.post("/<lang>/submit")
def submit(lang):
    text = request.form.get("text", "")
    category = request.form.get("category", "")
    if not text or not category:
        return "incomplete", 400
    path = os.path.join(STORE, uuid.uuid4().hex)
    plaintext = category.encode() + b"\n" + text.encode()
    if GPG_RECIPIENTS:
        done = subprocess.run(GPG + ["--output", path + ".gpg"], input=plaintext,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if done.returncode != 0:
            return "gpg failed: " + done.stderr.decode(errors="replace"), 500
        fsync_file(path + ".gpg")
        return "stored", 200
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, plaintext)
        os.fsync(fd)
    finally:
        os.close(fd)
    return "stored", 200
