#!/usr/bin/env python3
"""Turns the raw results of scripts/bench/run into docs/benchmarks.md.

Input: JSON lines, one per measurement of one round
({"scenario", "subject", "metric", "round", "value"}), the commands the run
used and its notes (checks, facts). Output: the machine, the date, and per
scenario a table of relay figure, reference figure, ratio, target and
pass/fail (medians of the rounds), the commands, and the raw rounds.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
from collections import defaultdict

# One row per figure: the relay's (subject, metric), the reference's (or
# None), and the target. A target applies to the ratio (relay ÷ reference)
# or to the relay's own value; None means "reported, no target".
ROWS = {
    "small": [
        dict(what="Durable small submissions/s ÷ the bound", unit="req/s",
             relay=("relay", "rps"), ref=("bound", "rps"), target=("ratio", ">=", 0.7)),
        dict(what="Durable 4 KiB submissions/s vs Flask + gunicorn + gpg (C)", unit="req/s",
             relay=("relay", "rps"), ref=("gpg", "rps"), target=("ratio", ">=", 10.0)),
        dict(what="Durable 4 KiB submissions/s vs nginx (A; informational)", unit="req/s",
             relay=("relay", "rps"), ref=("nginx", "rps"), target=None),
        dict(what="Durable 4 KiB submissions/s vs Flask + gunicorn (B; informational)", unit="req/s",
             relay=("relay", "rps"), ref=("flask", "rps"), target=None),
        dict(what="Latency p99 at 64 connections (reference: nginx)", unit="ms",
             relay=("relay", "p99_ms"), ref=("nginx", "p99_ms"), target=("value", "<=", 150.0)),
        dict(what="Latency p99 (reference: Flask + gpg)", unit="ms",
             relay=("relay", "p99_ms"), ref=("gpg", "p99_ms"), target=None),
        dict(what="Latency p99 (reference: Flask)", unit="ms",
             relay=("relay", "p99_ms"), ref=("flask", "p99_ms"), target=None),
        dict(what="Latency p50 (reference: nginx)", unit="ms",
             relay=("relay", "p50_ms"), ref=("nginx", "p50_ms"), target=None),
        dict(what="Durable acks/s ÷ one-fsync-per-write rate (fio)", unit="/s",
             relay=("relay", "rps"), ref=("fio", "iops"), target=("ratio", ">", 1.0)),
        dict(what="Flushes per acknowledgement (separate window)", unit="",
             relay=("relay", "flushes_per_ack"), ref=None, target=("value", "<=", 0.25)),
        dict(what="Full TLS handshakes/s, no resumption (openssl s_time -new; informational)",
             unit="/s", relay=("relay", "handshakes_s"), ref=None, target=None),
        dict(what="Relay answers other than 200 (incl. socket errors)", unit="",
             relay=("relay", "not_ok"), ref=None, target=("value", "==", 0)),
    ],
    "large": [
        dict(what="Peak RSS, one upload of LARGE", unit="MiB",
             relay=("relay", "rss1_mib"), ref=None, target=("value", "<=", 64.0)),
        dict(what="Peak RSS, CONC concurrent uploads", unit="MiB",
             relay=("relay", "rss8_mib"), ref=None, target=("value", "<=", 128.0)),
        dict(what="Ingest of LARGE vs `age -r ×3` on the same file", unit="MiB/s",
             relay=("relay", "ingest1_mibs"), ref=("age", "ingest1_mibs"), target=("ratio", ">=", 0.3)),
        dict(what="Ingest of LARGE over HTTP/2 (curl's default; informational)", unit="MiB/s",
             relay=("relay", "ingest1_h2_mibs"), ref=("age", "ingest1_mibs"), target=None),
        dict(what="Aggregate ingest, CONC concurrent uploads", unit="MiB/s",
             relay=("relay", "ingest8_mibs"), ref=None, target=None),
    ],
    "reviewer": [
        dict(what="`reviewer open` MiB/s vs `age -d` (same total size)", unit="MiB/s",
             relay=("reviewer", "open_mibs"), ref=("age", "open_mibs"), target=("ratio", ">=", 0.5)),
        dict(what="`reviewer open` submissions/s", unit="/s",
             relay=("reviewer", "open_subs"), ref=None, target=None),
        dict(what="`reviewer open` submissions/s vs the reviewer before (BENCH_REVIEWER_BEFORE)",
             unit="/s", relay=("reviewer", "open_subs"), ref=("before", "open_subs"),
             target=("ratio", ">=", 2.0)),
        dict(what="Peak RSS of the reviewer before (children included)", unit="MiB",
             relay=("before", "rss_mib"), ref=None, target=None),
        dict(what="Peak RSS, scrubbing children included (reference: `age -d`)", unit="MiB",
             relay=("reviewer", "rss_mib"), ref=("age", "rss_mib"), target=None),
    ],
    "store": [
        dict(what="Cold start, COUNT stored (reference: empty store)", unit="s",
             relay=("data", "coldstart_s"), ref=("empty", "coldstart_s"), target=("value", "<", 1.0)),
        dict(what="Cold start after acknowledging half", unit="s",
             relay=("half", "coldstart_s"), ref=None, target=("value", "<", 1.0)),
        dict(what="Disk ÷ ciphertext after COUNT submits", unit="×",
             relay=("relay", "disk_ratio_full"), ref=None, target=("value", "<=", 1.5)),
        dict(what="Disk ÷ ciphertext after exporting and acking half", unit="×",
             relay=("relay", "disk_ratio_half"), ref=None, target=("value", "<=", 1.5)),
        dict(what="… the same after a restart", unit="×",
             relay=("relay", "disk_ratio_half_restart"), ref=None, target=("value", "<=", 1.5)),
    ],
    "login": [
        dict(what="Codename log-ins answered (each one Argon2id derivation) per second", unit="/s",
             relay=("relay", "derivations_s"), ref=None, target=None),
        dict(what="Log-ins turned away at the semaphore (503) per second", unit="/s",
             relay=("relay", "refused_s"), ref=None, target=None),
        dict(what="Peak RSS of the relay during the flood", unit="MiB",
             relay=("relay", "rss_mib"), ref=None, target=("value", "<=", 192)),
    ],
}

TITLES = {
    "small": "1. Small durable submissions",
    "large": "2. Large uploads",
    "reviewer": "3. Reviewer throughput",
    "store": "4. Store",
    "login": "5. Log-in cost (Argon2id derivations)",
    "micro": "Micro-benchmarks (`cargo bench`, criterion)",
}

INTRO = {
    "login": "8 clients each POST `/followup/en/login` with a fresh random 8-word codename over "
    "their own TLS keep-alive connection for {secs}. Every answered log-in costs one Argon2id "
    "derivation with the default parameters (64 MiB, 3 passes, 1 lane) and finds no thread (403); "
    "at most `max_concurrent_derivations` (2) run at once and the rest are turned away at once "
    "(503). The memory target is the relay's idle size plus 2 × 64 MiB: what the semaphore "
    "promises to bound.",
    "small": "HTTPS keep-alive (TLS 1.3), `wrk` with 2 threads and 64 connections for {secs}, "
    "each request a multipart form with 4 KiB of text (`category=other`). The relay seals to 3 "
    "age recipients and answers 200 only once the ciphertext is durable. The targets measure it "
    "against its bound and against what SecureDrop runs. **The bound**, per round: "
    "1 / (1/nginx_rps + seal_us/10⁶ / cores), what this machine could do if a submission cost "
    "only reference A's TLS and HTTP work plus the seal's CPU time (criterion's `seal/4 KiB "
    "text, 3 recipients`) spread over every core. Reference C, SecureDrop-like: Flask + "
    "gunicorn (4 sync workers, plain HTTP) piping each submission to the gpg CLI "
    "(`gpg --batch --yes --trust-model always --encrypt -r FPR1 -r FPR2 -r FPR3 --output "
    "FILE`; three throwaway ed25519/cv25519 keys made at run time), fsyncing the file before "
    "answering. Informational: reference A, nginx terminating TLS with the same certificate "
    "and proxying the buffered body to a local upstream that answers 204 (no storage at "
    "all); reference B, the same Flask + gunicorn writing the text with fsync, unencrypted. "
    "fio measures the file system's one-fsync-per-write rate; durable acks above it show group "
    "commit. Flushes per acknowledgement: the relay's fsync, fdatasync, syncfs and "
    "sync_file_range calls (every thread) in a separate window of 200 submissions on a fresh "
    "relay, over the submissions it stored, counted by perf's syscall tracepoints (`perf stat "
    "-e syscalls:sys_enter_*`, in the kernel, without stopping the relay; the notes say which "
    "counter ran). `strace -f -c`, used where perf's tracepoints are not available, stops every "
    "thread at each traced call: the relay slows down, fewer submissions share a round, and the "
    "count per submission rises (0.27 with strace on the commit before lanes). Data "
    "directories of finished rounds are set aside and deleted only when the run ends: on this "
    "ext4 without a journal, allocating an inode checks every inode freed in the last ~30 s, "
    "and deleting a round's files just before the next round halved its rate.",
    "large": "Each measurement starts a fresh relay, so its VmHWM (peak resident set) is that "
    "scenario's. The ingest rate is the file's size over curl's total time (TLS, multipart, "
    "spool, seal, fsync, ack). The reference encrypts the same file with the `age` CLI to the "
    "same 3 recipients. Uploads use HTTP/1.1 over TLS, as an onion service's visitors reach "
    "the relay: curl 7.88's HTTP/2 upload is bound by the round trip of each flow-control "
    "window (the relay's window is adaptive and starts at 64 KiB, so that requests waiting "
    "for an upload slot pin little memory), and it spins a core while it waits, so over "
    "HTTP/2 it measures curl. That figure is listed too; `docs/decisions.md` has Chromium's.",
    "reviewer": "A batch made by the relay from {count} form submissions, opened by `reviewer "
    "open` (verify signature and hashes, decrypt, check each tar, write folders and a receipt) "
    "with an unencrypted identity; the reference decrypts one age file of the same total "
    "ciphertext size with `age -d` (to a file). Time and peak RSS from `/usr/bin/time`.",
    "store": "{count} submissions of 4 KiB text, then the relay's cold start (exec until its "
    "HTTPS port answers a request) and the store's disk use (`du` of `DATA/store`, allocated "
    "blocks) over the ciphertext bytes `relay status` counts.",
    "micro": "Median time per iteration from criterion (`target/criterion`).",
}


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def first_line(text):
    return text.splitlines()[0].strip() if text else "?"


def machine(fs_path, relay):
    facts = {}
    lscpu = sh("lscpu")
    m = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    facts["CPU"] = m.group(1) if m else platform.processor() or "?"
    facts["Cores (online)"] = str(os.cpu_count())
    with open("/proc/meminfo") as f:
        kb = int(re.search(r"MemTotal:\s*(\d+)", f.read()).group(1))
    facts["Memory"] = f"{kb / 1048576:.1f} GiB"
    facts["Kernel"] = platform.release()
    df = sh("df", "-T", fs_path).splitlines()
    if len(df) > 1:
        dev, fstype = df[1].split()[:2]
        facts["File system of the data directories"] = f"{fstype} on {dev}"
    facts["OS"] = first_line(sh("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"))
    facts["rustc"] = first_line(sh("rustc", "--version"))
    facts["relay"] = first_line(sh(relay, "--version"))
    commit = sh("git", "rev-parse", "--short", "HEAD")
    dirty = sh("git", "status", "--porcelain", "--untracked-files=no")
    facts["Source"] = os.environ.get("BENCH_SOURCE") or (
        f"{commit}{' (with uncommitted changes)' if dirty else ''}" if commit else "?")
    tools = []
    for name, cmd in [
        ("nginx", ["nginx", "-v"]), ("gunicorn", ["/usr/bin/python3", "-m", "gunicorn", "--version"]),
        ("Flask", ["/usr/bin/python3", "-c", "import importlib.metadata as m; print(m.version('flask'))"]),
        ("gpg", ["gpg", "--version"]), ("strace", ["strace", "-V"]),
        ("age", ["age", "--version"]), ("wrk", ["wrk", "-v"]), ("fio", ["fio", "--version"]),
        ("curl", ["curl", "--version"]),
    ]:
        if shutil.which(cmd[0]) or os.path.exists(cmd[0]):
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
                out = first_line((p.stdout or "") + (p.stderr or ""))
            except (OSError, subprocess.SubprocessError):
                out = "?"
            out = re.sub(r"^nginx version: ", "", out)
            out = re.sub(r" Copyright.*$", "", out)
            out = re.sub(r"^curl (\S+).*", r"\1", out)
            out = re.sub(r"^.*\(version (\S+)\)$", r"\1", out)
            tools.append(f"{name} {out}" if not out.lower().startswith(name.lower()) else out)
    facts["Tools"] = "; ".join(tools)
    return facts


def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if v == int(v):
        return str(int(v))
    return f"{v:.3g}"


def check(target, ratio, value):
    if target is None:
        return "–", None
    on, op, x = target
    v = ratio if on == "ratio" else value
    if v is None:
        return f"{'ratio ' if on == 'ratio' else ''}{op} {x:g}", None
    ok = {">=": v >= x, ">": v > x, "<=": v <= x, "<": v < x, "==": v == x}[op]
    label = f"{op} {x:g}×" if on == "ratio" else f"{op} {x:g}"
    return label.replace(">=", "≥").replace("<=", "≤"), ok


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--results", required=True)
    a.add_argument("--commands", required=True)
    a.add_argument("--notes", required=True)
    a.add_argument("--fs-path", required=True)
    a.add_argument("--rounds", type=int, required=True)
    a.add_argument("--quick", default="0")
    a.add_argument("--seconds", type=float, default=0)
    a.add_argument("--relay", default="relay")
    a.add_argument("--scenarios", default="")
    a.add_argument("--load-start", default="")
    a.add_argument("--out", required=True)
    args = a.parse_args()

    results = [json.loads(l) for l in open(args.results) if l.strip()]
    commands = defaultdict(list)
    for l in open(args.commands):
        if l.strip():
            c = json.loads(l)
            commands[c["scenario"]].append(c["command"])
    notes = defaultdict(list)
    for l in open(args.notes):
        if l.strip():
            n = json.loads(l)
            notes[n["scenario"]].append(n["text"])

    # values[scenario][(subject, metric)][round] = value
    values = defaultdict(lambda: defaultdict(dict))
    micro = []
    for r in results:
        if r["scenario"] == "micro":
            micro.append(r)
            continue
        values[r["scenario"]][(r["subject"], r["metric"])][r["round"]] = r["value"]

    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    quick = args.quick == "1"
    lines = []
    w = lines.append
    w("# Benchmarks")
    w("")
    w("Written by `scripts/bench/run`; do not edit by hand. Ratios are relay ÷ "
      "reference, measured in the same run: each round runs the relay and its references one "
      "after the other, in an order that rotates between rounds, and the tables give the "
      "median of the rounds (the ratio is the median of the per-round ratios). Load goes to "
      "127.0.0.1 only, so load generator and server share the machine's cores.")
    w("")
    if quick:
        w("> **Smoke run (`BENCH_QUICK=1`)**: short durations and small data; these numbers "
          "only show that the suite works. Run `scripts/bench/run` for real figures.")
        w("")
    facts = machine(args.fs_path, args.relay)
    with open("/proc/loadavg") as f:
        load_end = " ".join(f.read().split()[:3])
    facts["Load average (1, 5, 15 min)"] = (
        f"{args.load_start} at the start, {load_end} at the end of the run "
        f"({os.cpu_count()} cores: above that, other work shared the machine)")
    w(f"Run on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d} ({args.rounds} rounds, "
      f"{args.seconds / 60:.0f} minutes, scenarios: {args.scenarios}):")
    w("")
    w("| machine | |")
    w("|---|---|")
    for k, v in facts.items():
        w(f"| {k} | {v} |")
    w("")
    w("Reproduce: `scripts/bench/run` (all), `scripts/bench/run small large reviewer store micro` "
      "(a subset), `BENCH_ROUNDS=5`, `BENCH_QUICK=1` (smoke run), `BENCH_BIN_DIR=DIR` (binaries "
      "built elsewhere, e.g. a before/after pair from one checkout).")
    w("")

    summary = []
    count_store = values["store"].get(("relay", "submissions"), {}).get(1)
    count_rev = values["reviewer"].get(("batch", "submissions"), {}).get(1)
    for scenario in ["small", "large", "reviewer", "store", "login"]:
        v = values.get(scenario)
        w(f"## {TITLES[scenario]}")
        w("")
        if not v:
            w("Not run in this run.")
            w("")
            continue
        count = count_store if scenario == "store" else count_rev
        w(INTRO[scenario].format(secs="the set duration",
                                 count=f"{int(count):,}" if count else "?"))
        w("")
        w("| figure | relay | reference | ratio | target | result |")
        w("|---|---:|---:|---:|---|---|")
        for row in ROWS[scenario]:
            what = row["what"].replace("COUNT", f"{int(count_store):,}" if count_store else "N")
            rel = v.get(row["relay"], {})
            if not rel:
                continue
            ref = v.get(row["ref"], {}) if row["ref"] else {}
            ratios = [rel[k] / ref[k] for k in rel if k in ref and ref[k] and rel[k] is not None]
            rv, fv, ratio = med(rel.values()), med(ref.values()) if ref else None, med(ratios)
            label, ok = check(row["target"], ratio, rv)
            result = "–" if ok is None else ("**pass**" if ok else "**FAIL**")
            unit = f" {row['unit']}" if row["unit"] else ""
            w(f"| {what} | {fmt(rv)}{unit} | {fmt(fv)}{unit if fv is not None else ''} | "
              f"{'–' if ratio is None else f'{ratio:.2f}×'} | {label} | {result} |")
            if ok is not None:
                summary.append((TITLES[scenario], what, ok, ratio if row["target"][0] == "ratio" else rv,
                                label))
        w("")
        for n in notes.get(scenario, []):
            w(f"- {n}")
        if notes.get(scenario):
            w("")
        w("Commands:")
        w("")
        w("```sh")
        for c in commands.get(scenario, []):
            w(c)
        w("```")
        w("")
        w("<details><summary>Raw rounds</summary>")
        w("")
        w("| figure | subject | " + " | ".join(f"round {i}" for i in range(1, args.rounds + 1)) + " |")
        w("|---|---|" + "---:|" * args.rounds)
        seen = set()
        for (subject, metric), rounds in sorted(v.items()):
            if (subject, metric) in seen:
                continue
            seen.add((subject, metric))
            cells = [fmt(rounds.get(i)) for i in range(1, args.rounds + 1)]
            w(f"| {metric} | {subject} | " + " | ".join(cells) + " |")
        w("")
        w("</details>")
        w("")

    w(f"## {TITLES['micro']}")
    w("")
    if micro:
        w(INTRO["micro"])
        w("")
        w("| benchmark | median time | throughput |")
        w("|---|---:|---:|")
        for m in micro:
            ns = m["value"]
            t = f"{ns / 1e6:.3f} ms" if ns >= 1e6 else f"{ns / 1e3:.3f} µs" if ns >= 1e3 else f"{ns:.2f} ns"
            tp = "–"
            if m.get("bytes"):
                tp = f"{m['bytes'] / (ns / 1e9) / 1048576:,.1f} MiB/s"
            elif m.get("elements"):
                tp = f"{m['elements'] / (ns / 1e9) / 1e6:,.1f} M/s"
            w(f"| `{m['subject']}` | {t} | {tp} |")
        w("")
        w("```sh")
        for c in commands.get("micro", []):
            w(c)
        w("```")
    else:
        w("Not run in this run.")
    w("")

    if summary:
        fails = [s for s in summary if not s[2]]
        w("## Summary")
        w("")
        w(f"{len(summary) - len(fails)} of {len(summary)} targets met.")
        if fails:
            w("")
            w("Missed:")
            w("")
            for title, what, _, v, label in fails:
                shown = f"{v:.2f}×" if label.endswith("×") else fmt(v)
                w(f"- {title}: {what}: {shown} (target {label})")
        w("")

    text = "\n".join(lines).rstrip() + "\n"
    # The scenario sizes differ in quick mode; name them from the commands.
    large = re.search(r"head -c (\d+)M /dev/urandom > big\.bin; head -c (\d+)M", "\n".join(commands.get("large", [])))
    if large:
        big, part = int(large.group(1)), int(large.group(2))
        text = text.replace("one upload of LARGE", f"one upload of {big / 1024:g} GiB" if big >= 1024 else f"one upload of {big} MiB")
        text = text.replace("Ingest of LARGE", f"Ingest of {big / 1024:g} GiB" if big >= 1024 else f"Ingest of {big} MiB")
        conc = re.search(r"(\d+) × the same curl", "\n".join(commands.get("large", [])))
        n = conc.group(1) if conc else "8"
        text = text.replace("CONC concurrent uploads", f"{n} concurrent uploads of {part} MiB")
    small = re.search(r"-d(\d+)s", "\n".join(commands.get("small", [])))
    if small:
        text = text.replace("the set duration", f"{small.group(1)} s")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
