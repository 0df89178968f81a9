"""Reference B for the small-submission benchmark: the form handler a
developer would write with Flask, served by gunicorn (4 sync workers) over
plain HTTP. It parses the same multipart form as the relay and stores the
text durably (write, fsync) before answering, so its acks are as durable as
the relay's (but nothing is encrypted, padded or indexed).

Run by scripts/bench/run:
    BENCH_FLASK_DIR=DIR gunicorn --workers 4 --bind 127.0.0.1:PORT \
        --chdir scripts/bench flask_app:app
"""

import os
import uuid

from flask import Flask, request

app = Flask(__name__)
STORE = os.environ["BENCH_FLASK_DIR"]


@app.post("/<lang>/submit")
def submit(lang):
    text = request.form.get("text", "")
    category = request.form.get("category", "")
    if not text or not category:
        return "incomplete", 400
    path = os.path.join(STORE, uuid.uuid4().hex)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, category.encode() + b"\n" + text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return "stored", 200
