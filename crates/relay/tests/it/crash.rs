//! Crash safety: the `relay` binary under a steady load of submissions,
//! killed with SIGKILL at random moments, again and again.
//!
//! A few client threads post submissions to `/en/submit` without pause,
//! text only or with one random attachment (one in eight large enough to
//! be written into a lane), each with a unique canary in its text. Every one that got `200` (the relay answers it only
//! once the submission is durable) is recorded with its attachment bytes.
//! The relay is killed at a random moment 50 ms to 1.5 s after it began
//! serving, so kills land during uploads, seals and commit rounds; every
//! fourth cycle it is also killed while it is still starting (during its
//! start-up recovery). After each restart:
//! - it must serve (`GET /` answers 200) within [`MAX_RESTART`];
//! - no spool file holds bytes: start-up emptied what the kill
//!   left, before any new upload was allowed in (torn segment tails are cut
//!   off then too; how many bytes is counted, and how many of sled's
//!   snapshot files a kill during start-up left unfinished were removed).
//!
//! Every [`VERIFY_EVERY`] cycles, and at the end, the relay is stopped and
//! everything it holds is exported (`relay export`). Each batch is opened
//! as a reviewer would, with the demo reviewer identity and the `age` and
//! `tar` crates directly: every stored submission must match its manifest
//! entry, decrypt, and be a complete tar (`testimony.json` first, then the
//! attachments it lists with their exact sizes and SHA-256, then padding),
//! so no half-written submission is visible. Every acknowledged canary must
//! be present exactly once, with the exact attachment bytes sent.
//! Submissions in flight at a kill may or may not be kept (a complete one
//! whose client lost the connection is allowed to be kept); each is at most
//! once. And `relay check` finds nothing wrong: no unindexed bytes, no
//! entry past a segment's end, no half-done compaction.
//!
//! Every other exported batch is then acknowledged with `relay ack`, which
//! compacts the segments it made mostly dead; its first run is SIGKILLed at
//! a random moment (often during the compaction), and the second must
//! repair and finish what the first left.
//!
//! The test prints cycles run, acknowledgements checked and restart times.
//!
//! One kill that loop landed only by chance (inside sled's snapshot write,
//! while the relay starts) is made on purpose, with every other change a
//! start makes to sled's files, by strace's fault injection:
//! `a_kill_at_any_change_a_start_makes_to_the_store_does_not_stop_the_next`.
//!
//! Default: [`DEFAULT_CYCLES`] cycles (well under 90 s on 2 cores, debug
//! build). Bench mode, e.g. 200 cycles:
//! ```text
//! CRASH_CYCLES=200 cargo test -p relay --test it crash:: -- --nocapture
//! ```
//! The random choices come from one seed, printed at the start; set
//! `CRASH_SEED=<n>` to replay the same kill schedule (timing still varies).

#![allow(clippy::unwrap_used)] // test harness: a panic is a failed test

use crate::util;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use util::{RELAY, Served, client_builder, demo_data, free_port, relay, status_line, stderr};

/// Kill cycles in the default run.
const DEFAULT_CYCLES: usize = 20;
/// Export and verify every this many cycles (and after the last one).
const VERIFY_EVERY: usize = 10;
/// Concurrent client threads.
const CLIENTS: usize = 3;
/// How long after the relay began serving it is killed: a random time in
/// this range (milliseconds).
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 50..=1500;
/// Longest acceptable time from spawning the relay to its first answer.
const MAX_RESTART: Duration = Duration::from_secs(30);
/// Largest random attachment, mostly.
const MAX_ATTACHMENT: usize = 48 * 1024;
/// One attachment in this many is large: its ciphertext passes
/// `store::INLINE_BYTES` and is written into a lane as it is sealed, so
/// kills land on lanes too.
const LARGE_EVERY: u32 = 8;
/// A large attachment's size range.
const LARGE_ATTACHMENT: std::ops::RangeInclusive<usize> = 300 * 1024..=700 * 1024;
/// Whole-run bound (the bench mode scales it).
const SECONDS_PER_CYCLE_BOUND: u64 = 20;

/// One submission a client sent.
struct Sent {
    canary: String,
    attachment: Option<Vec<u8>>,
}

/// What the client threads and the killer share.
#[derive(Default)]
struct Shared {
    /// The running relay's URL; `None` while it is down or being checked.
    url: Mutex<Option<String>>,
    stop: AtomicBool,
    /// Submissions that got 200.
    acked: Mutex<Vec<Sent>>,
    /// Canaries of submissions that got anything else (mostly: the
    /// connection died in the kill). They may or may not be stored.
    unacked: Mutex<Vec<String>>,
    /// Responses other than 200, by status (no response: 0).
    refused: Mutex<BTreeMap<u16, u64>>,
    sent: AtomicU64,
}

/// Stops the client threads however the test ends.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

fn client_loop(shared: &Shared, data: &Path, thread: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ (thread as u64 + 1).wrapping_mul(0x9E37_79B9));
    let client = client_builder(data)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(url) = shared.url.lock().unwrap().clone() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        n += 1;
        let canary = format!("canary-{seed:x}-{thread}-{n}-{:08x}", rng.next_u32());
        let attachment = rng.gen_bool(0.5).then(|| {
            let size = if rng.gen_ratio(1, LARGE_EVERY) {
                rng.gen_range(LARGE_ATTACHMENT)
            } else {
                rng.gen_range(1..=MAX_ATTACHMENT)
            };
            let mut bytes = vec![0u8; size];
            rng.fill_bytes(&mut bytes);
            bytes
        });
        let mut form = reqwest::blocking::multipart::Form::new()
            .text("category", "other")
            .text("text", format!("crash test {canary} end"));
        if let Some(bytes) = &attachment {
            form = form.part(
                "files",
                reqwest::blocking::multipart::Part::bytes(bytes.clone())
                    .file_name("evidence.bin")
                    .mime_str("application/octet-stream")
                    .unwrap(),
            );
        }
        shared.sent.fetch_add(1, Ordering::SeqCst);
        let status = client
            .post(format!("{url}/en/submit"))
            .multipart(form)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == 200 {
            // The status line is the acknowledgement: the relay sends it
            // only after the submission is durable.
            shared
                .acked
                .lock()
                .unwrap()
                .push(Sent { canary, attachment });
        } else {
            shared.unacked.lock().unwrap().push(canary);
            *shared.refused.lock().unwrap().entry(status).or_default() += 1;
            if status == 0 {
                // Connection refused or reset: the relay is down.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Starts the relay and waits until it answers `GET /`; returns it with
/// the time from spawn to first answer. Fails beyond [`MAX_RESTART`].
fn start(data: &Path) -> (Served, Duration) {
    let t0 = Instant::now();
    let served = Served::start(data);
    let client = client_builder(data)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    loop {
        if let Ok(r) = client.get(served.url()).send()
            && r.status() == 200
        {
            break;
        }
        assert!(
            t0.elapsed() < MAX_RESTART,
            "the relay did not serve within {MAX_RESTART:?}:\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    assert!(
        took <= MAX_RESTART,
        "restart took {took:?} (> {MAX_RESTART:?})"
    );
    (served, took)
}

/// What the relay's start-up recovery reported: torn tail bytes cut off
/// (a kill during a commit round, after its append and before its index
/// entry) and segment files removed (a kill during a compaction, or while
/// a round made a new segment).
fn recovered(served: &Served) -> (u64, u64, u64) {
    let log = served.log();
    // sled's snapshot, when a kill during start-up cut it short.
    let snapshots = u64::from(log.contains("removed an index snapshot a kill left unfinished"));
    let Some(line) = log
        .lines()
        .find(|l| l.contains("recovered from an interrupted commit round or compaction"))
    else {
        return (0, 0, snapshots);
    };
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(0)
    };
    (
        field("torn_tail_bytes"),
        field("segment_files_removed"),
        snapshots,
    )
}

/// Spawns the relay and SIGKILLs it after `after`, whatever it is doing
/// (typically opening the store and rolling back what the last kill cut).
fn kill_during_start_up(data: &Path, after: Duration) {
    let mut child = Command::new(RELAY)
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            &free_port().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// One stored submission, opened.
struct Opened {
    canary: String,
    /// The attachment's bytes, if it had one.
    attachment: Option<Vec<u8>>,
}

/// Decrypts one sealed submission and checks it is a complete tar:
/// `testimony.json` first, the attachments it lists with their exact sizes
/// and hashes, then the padding entry, then nothing.
fn open_submission(
    identity: &age::x25519::Identity,
    ciphertext: &[u8],
    what: &str,
) -> Result<Opened, String> {
    let plain = testkit::decrypt(identity, ciphertext).map_err(|e| format!("{what}: {e}"))?;
    let mut archive = tar::Archive::new(&plain[..]);
    let mut entries = archive.entries().map_err(|e| format!("{what}: tar: {e}"))?;
    let mut next = |expect: &str| -> Result<(String, Vec<u8>), String> {
        let mut entry = entries
            .next()
            .ok_or_else(|| format!("{what}: tar ends before {expect}"))?
            .map_err(|e| format!("{what}: tar entry ({expect}): {e}"))?;
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{what}: tar entry {path}: {e}"))?;
        if bytes.len() as u64 != entry.header().size().unwrap() {
            return Err(format!("{what}: tar entry {path} is short"));
        }
        Ok((path, bytes))
    };
    let (path, json) = next("testimony.json")?;
    if path != format::TESTIMONY_ENTRY {
        return Err(format!("{what}: first entry is {path}, not testimony.json"));
    }
    let testimony =
        format::Testimony::from_json(&json).map_err(|e| format!("{what}: testimony: {e}"))?;
    if testimony.fields.get("category").map(String::as_str) != Some("other") {
        return Err(format!("{what}: category is not `other`"));
    }
    let canary = testimony
        .text
        .split_whitespace()
        .find(|w| w.starts_with("canary-"))
        .ok_or_else(|| format!("{what}: no canary in the text"))?
        .to_owned();
    if testimony.text != format!("crash test {canary} end") {
        return Err(format!("{what}: the text of {canary} is altered"));
    }
    let mut attachments = Vec::new();
    for a in &testimony.attachments {
        let (path, bytes) = next("an attachment")?;
        if path != format::attachment_entry_path(&a.name)
            || bytes.len() as u64 != a.size
            || format::Digest::of(&bytes) != a.sha256
        {
            return Err(format!(
                "{what}: attachment {path} of {canary} does not match testimony.json"
            ));
        }
        attachments.push(bytes);
    }
    let (path, padding) = next("padding")?;
    if path != format::PADDING_ENTRY || padding.iter().any(|b| *b != 0) {
        return Err(format!("{what}: {path} where the padding should be"));
    }
    if let Some(extra) = entries.next() {
        return Err(format!(
            "{what}: an entry after the padding: {:?}",
            extra.map(|e| e.path().unwrap().into_owned())
        ));
    }
    if attachments.len() > 1 {
        return Err(format!("{what}: {canary} has more than one attachment"));
    }
    Ok(Opened {
        canary,
        attachment: attachments.pop(),
    })
}

/// Opens one batch tar: manifest first, then the signature, then exactly
/// the submissions the manifest lists, each matching its size and hash.
fn open_batch(identity: &age::x25519::Identity, path: &Path) -> (Vec<Opened>, format::Receipt) {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        members.push((name, bytes));
    }
    assert_eq!(members[0].0, format::BATCH_MANIFEST);
    assert_eq!(members[1].0, format::BATCH_SIGNATURE);
    let manifest = format::Manifest::from_json(&members[0].1).unwrap();
    assert_eq!(
        manifest.submissions.len(),
        members.len() - 2,
        "the batch holds exactly what its manifest lists"
    );
    let mut opened = Vec::new();
    for (entry, (name, ciphertext)) in manifest.submissions.iter().zip(&members[2..]) {
        assert_eq!(*name, format::batch_member_for(&entry.id));
        assert_eq!(ciphertext.len() as u64, entry.size, "{name}: size");
        assert_eq!(format::Digest::of(ciphertext), entry.sha256, "{name}: hash");
        match open_submission(identity, ciphertext, name) {
            Ok(o) => opened.push(o),
            Err(e) => panic!("a half-written or damaged submission is visible: {e}"),
        }
    }
    let receipt = format::Receipt {
        format: format::RECEIPT_FORMAT.into(),
        relay_key: manifest.relay_key.clone(),
        batch_id: manifest.batch_id,
        sequence: manifest.sequence,
        manifest_sha256: format::Digest::of(&members[0].1),
    };
    (opened, receipt)
}

/// Everything found in the batches exported so far.
#[derive(Default)]
struct Found {
    /// Canary → its stored attachment (if any), once per time it was found.
    by_canary: BTreeMap<String, Vec<Option<Vec<u8>>>>,
    batches: usize,
    submissions: usize,
    /// Of those, deleted by an acknowledgement.
    deleted: usize,
    /// `relay ack` runs killed before they finished (ack and compaction).
    ack_kills: usize,
    /// Of the runs after them, those whose start-up repaired a compaction.
    compactions_repaired: usize,
}

/// With the relay stopped: exports every submission not yet in a batch
/// (as many batches as it takes) and opens each batch.
fn export_all(data: &Path, out_dir: &Path, identity: &age::x25519::Identity, found: &mut Found) {
    for _ in 0..1000 {
        let out = out_dir.join(format!("batch-{}.tar", found.batches + 1));
        let o = relay(&[
            "export",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "export failed: {}", stderr(&o));
        if stderr(&o).contains("nothing to export") {
            return;
        }
        assert!(out.exists(), "export wrote nothing: {}", stderr(&o));
        found.batches += 1;
        let (opened, receipt) = open_batch(identity, &out);
        // Verified; only its contents matter from here on.
        std::fs::remove_file(&out).unwrap();
        if found.batches % 2 == 1 {
            // A reviewer acknowledges it: its submissions leave the index
            // and `relay ack` compacts their bytes away. The first attempt
            // is killed at a random moment (often during the compaction);
            // the second must finish what it left.
            let path = out_dir.join("receipt.json");
            std::fs::write(&path, receipt.to_json()).unwrap();
            let args = [
                "ack",
                "--data",
                data.to_str().unwrap(),
                path.to_str().unwrap(),
            ];
            let mut first = Command::new(RELAY)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..150)));
            if first.try_wait().unwrap().is_none() {
                found.ack_kills += 1;
            }
            let _ = first.kill();
            first.wait().unwrap();
            let o = relay(&args);
            assert!(o.status.success(), "ack failed: {}", stderr(&o));
            let log = stderr(&o);
            if log.contains("undid a compaction")
                || log.contains("recovered from an interrupted commit round or compaction")
            {
                found.compactions_repaired += 1;
            }
            found.deleted += opened.len();
            // The offline ack compacts at once: nothing dead is left.
            let status = status_line(data);
            assert!(
                status.contains(" 0 of them acknowledged and awaiting compaction"),
                "{status}"
            );
        }
        for s in opened {
            found.submissions += 1;
            found
                .by_canary
                .entry(s.canary)
                .or_default()
                .push(s.attachment);
        }
    }
    panic!("export never ran out of submissions");
}

/// Checks every acknowledged submission is stored exactly once with the
/// bytes sent, nothing is stored twice, and `relay check` finds nothing
/// wrong. Returns how many acks were checked.
fn verify(data: &Path, found: &Found, acked: &[Sent]) -> usize {
    for s in acked {
        let copies = found.by_canary.get(&s.canary).map_or(0, Vec::len);
        assert_eq!(
            copies, 1,
            "acknowledged submission {} is stored {copies} times",
            s.canary
        );
        assert_eq!(
            found.by_canary[&s.canary][0], s.attachment,
            "acknowledged submission {}: attachment bytes differ",
            s.canary
        );
    }
    for (canary, copies) in &found.by_canary {
        assert_eq!(copies.len(), 1, "{canary} is stored {} times", copies.len());
    }
    // The store holds every submission ever exported but those a reviewer
    // acknowledged.
    let status = status_line(data);
    let held: Option<usize> = status
        .strip_prefix("submissions: ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    assert_eq!(
        held,
        Some(found.submissions - found.deleted),
        "`relay status` says {status:?}; exported {}, acknowledged {}",
        found.submissions,
        found.deleted
    );
    let o = relay(&["check", "--data", data.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "relay check: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    acked.len()
}

#[test]
fn acknowledged_submissions_survive_sigkill_at_random_moments() {
    let cycles: usize = std::env::var("CRASH_CYCLES")
        .ok()
        .map(|v| v.parse().expect("CRASH_CYCLES is a number"))
        .unwrap_or(DEFAULT_CYCLES);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("CRASH_SEED is a number"))
        .unwrap_or_else(|| rand::thread_rng().next_u64());
    println!("crash test: {cycles} cycles, {CLIENTS} clients, CRASH_SEED={seed}");
    let began = Instant::now();
    let run_bound = Duration::from_secs(60 + SECONDS_PER_CYCLE_BOUND * cycles as u64);
    let mut rng = StdRng::seed_from_u64(seed);

    let root = tempfile::tempdir().unwrap();
    let data: PathBuf = demo_data(root.path(), |c| c);
    let batches = root.path().join("batches");
    std::fs::create_dir(&batches).unwrap();
    let identity = util::demo_identity(&data);

    let shared = Arc::new(Shared::default());
    let _stop = StopOnDrop(shared.clone());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|thread| {
            let shared = shared.clone();
            let data = data.clone();
            std::thread::spawn(move || client_loop(&shared, &data, thread, seed))
        })
        .collect();

    let (mut served, first) = start(&data);
    let mut restarts: Vec<Duration> = Vec::new();
    let mut found = Found::default();
    let mut start_up_kills = 0;
    let (mut rolled_forward, mut removed, mut snapshots) = (0, 0, 0);
    *shared.url.lock().unwrap() = Some(served.url());
    println!("first start: {first:?}");

    for cycle in 1..=cycles {
        assert!(
            began.elapsed() < run_bound,
            "the run exceeded {run_bound:?} after {} cycles",
            cycle - 1
        );
        std::thread::sleep(Duration::from_millis(rng.gen_range(KILL_AFTER_MS)));
        served.kill();
        *shared.url.lock().unwrap() = None;
        if cycle % 4 == 0 {
            kill_during_start_up(&data, Duration::from_millis(rng.gen_range(0..=150)));
            start_up_kills += 1;
        }

        // Nobody has the new URL yet: whatever a pool file holds now was
        // left by the kill and not emptied by start-up.
        let (next, took) = start(&data);
        served = next;
        restarts.push(took);
        let (forward, back, snapshot) = recovered(&served);
        rolled_forward += forward;
        removed += back;
        snapshots += snapshot;
        let left = util::busy_pool_files(&data);
        assert!(
            left.is_empty(),
            "cycle {cycle}: start-up left bytes in pool files {left:?}"
        );

        if cycle == cycles {
            break;
        }
        if cycle % VERIFY_EVERY == 0 {
            served.stop();
            let acked = shared.acked.lock().unwrap();
            export_all(&data, &batches, &identity, &mut found);
            let checked = verify(&data, &found, &acked);
            drop(acked);
            println!(
                "cycle {cycle}: {checked} acks verified, {} submissions stored in {} batches",
                found.submissions, found.batches
            );
            let (next, took) = start(&data);
            served = next;
            restarts.push(took);
        }
        *shared.url.lock().unwrap() = Some(served.url());
    }
    shared.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    // Clients joined: every ack is recorded now.
    served.stop();
    let acked = shared.acked.lock().unwrap();
    export_all(&data, &batches, &identity, &mut found);
    let acks_checked = verify(&data, &found, &acked);

    let unacked = shared.unacked.lock().unwrap();
    let kept = unacked
        .iter()
        .filter(|c| found.by_canary.contains_key(*c))
        .count();
    // Nothing stored that nobody sent.
    let sent: std::collections::HashSet<&str> = acked
        .iter()
        .map(|s| s.canary.as_str())
        .chain(unacked.iter().map(String::as_str))
        .collect();
    for canary in found.by_canary.keys() {
        assert!(sent.contains(canary.as_str()), "{canary} was never sent");
    }
    let max = restarts.iter().max().copied().unwrap_or_default();
    let mean = restarts.iter().sum::<Duration>() / restarts.len().max(1) as u32;
    println!(
        "crash test: {cycles} kill cycles ({start_up_kills} more kills during start-up), \
         {} submissions sent, {acks_checked} acks verified present exactly once with their bytes, \
         {} unacknowledged ({kept} of them kept, complete), refused by status {:?}, \
         {} stored in {} batches ({} deleted by acknowledgements, so compacted; {} `relay ack` \
         runs killed, after which {} starts repaired a compaction); start-up \
         recovery cut {rolled_forward} torn tail bytes, removed {removed} segment files and \
         {snapshots} unfinished index snapshots; restarts: {}, mean {mean:?}, max {max:?}; run {:?}",
        shared.sent.load(Ordering::SeqCst),
        unacked.len(),
        shared.refused.lock().unwrap(),
        found.submissions,
        found.batches,
        found.deleted,
        found.ack_kills,
        found.compactions_repaired,
        restarts.len(),
        began.elapsed(),
    );
    assert!(acks_checked > 0, "no submission was ever acknowledged");
}

/// The system calls that change files, as strace names them.
const MUTATING: &[&str] = &[
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "fsync",
    "fdatasync",
    "ftruncate",
    "fallocate",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "openat",
];

/// How `relay serve` under strace ended.
#[derive(Debug, PartialEq)]
enum Traced {
    /// Killed by the injected SIGKILL.
    Killed,
    /// It got to "relay ready" first (and was then killed by the test).
    Ready,
}

/// `relay serve --data DATA` under `strace -f` with `strace_args`, its
/// stderr read until "relay ready" or its end; bounded in time.
fn serve_traced(data: &Path, strace_args: &[&str]) -> Traced {
    use std::io::BufRead;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut traced = Command::new("strace")
        .args(["-f", "-qq"])
        .args(strace_args)
        .arg(RELAY)
        .args(["serve", "--data", data.to_str().unwrap()])
        .args(["--listen", &free_port().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so that the relay can be killed with it.
        .process_group(0)
        .spawn()
        .expect("strace (scripts/test installs it)");
    let group = format!("-{}", traced.id());
    let err = traced.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if line.contains("relay ready") {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = traced.try_wait().unwrap() {
            // strace dies of the signal its tracee died of.
            assert_eq!(
                status.signal(),
                Some(9),
                "strace or the relay ended without the injected SIGKILL: {status}"
            );
            return Traced::Killed;
        }
        if rx.try_recv().is_ok() {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = traced.wait();
            return Traced::Ready;
        }
        assert!(
            Instant::now() < deadline,
            "the relay under strace neither died nor served"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// From a `strace -ff -y -o DIR/t` trace (one file per thread in `dir`):
/// each (system call, path under `under`) that changes a file, with the
/// most times one thread made it. (An `openat` counts only when it may
/// create.)
fn file_changes(dir: &Path, under: &str) -> BTreeMap<(String, String), u32> {
    let mut most = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mut counts: BTreeMap<(String, String), u32> = BTreeMap::new();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let Some((name, args)) = line.split_once('(') else {
                continue;
            };
            if !MUTATING.contains(&name) || (name == "openat" && !args.contains("O_CREAT")) {
                continue;
            }
            // A path argument, quoted, or a descriptor's path, as -y shows it.
            let quoted = args.split('"').nth(1);
            let described = args
                .split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map(|(p, _)| p);
            let file =
                if name.starts_with("rename") || name.starts_with("unlink") || name == "openat" {
                    quoted
                } else {
                    described
                };
            if let Some(file) = file.filter(|f| f.starts_with(under)) {
                *counts
                    .entry((name.to_owned(), file.to_owned()))
                    .or_default() += 1;
            }
        }
        for (k, n) in counts {
            let e = most.entry(k).or_insert(0);
            *e = (*e).max(n);
        }
    }
    most
}

/// Copies the data directory `from` to `to`, replacing it.
fn copy_data(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    let copied = Command::new("cp")
        .args(["-a", from.to_str().unwrap(), to.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
}

/// Every change a start makes to the store's files (sled's in
/// `store/index/`, the segments), killed in turn: the relay is SIGKILLed
/// (strace's fault injection) on entry to the n-th call of each kind on each file, for every n a start makes; then it
/// must start, keep what it held and store a new submission. Two starts:
/// the very first one (sled writes its settings file, `conf`, in two
/// writes), and one after submissions (sled writes its snapshot,
/// `snap.<lsn>.generating`, then renames it; the first start also makes
/// the segments).
///
/// Two of those kills left a store that no start could open again
/// ("cannot open the index: Read corrupted data at file offset None"): the
/// first write of the snapshot (CI's crash loop hit it by chance,
/// 2026-12-07) and the second write of the settings (found by strace).
#[test]
fn a_kill_at_any_change_a_start_makes_to_the_store_does_not_stop_the_next() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    let fresh = demo_data(&root, |c| c);
    assert!(
        !fresh.join("store").exists(),
        "the store is made by the first start"
    );
    let used = root.join("used");
    copy_data(&fresh, &used);
    let served = Served::start(&used);
    for n in 0..3 {
        assert_eq!(
            util::submit(&used, &served.url(), &format!("kept {n}")),
            200
        );
    }
    served.stop();

    let run = root.join("run");
    let store = format!("{}/store/", run.display());
    let mut report = Vec::new();
    for (template, held, must_kill) in [
        (&fresh, 0, ("write", "conf", 2)),
        (&used, 3, ("write", ".generating", 1)),
    ] {
        copy_data(template, &run);
        let trace = root.join("trace");
        std::fs::create_dir(&trace).unwrap();
        let traced = serve_traced(
            &run,
            &[
                "-ff",
                "-y",
                "-o",
                trace.join("t").to_str().unwrap(),
                "-e",
                &format!("trace={}", MUTATING.join(",")),
            ],
        );
        assert_eq!(traced, Traced::Ready);
        let changes = file_changes(&trace, &store);
        std::fs::remove_dir_all(&trace).unwrap();
        let mut killed = Vec::new();
        for ((call, file), times) in &changes {
            for n in 1..=*times {
                copy_data(template, &run);
                let inject = format!("inject={call}:signal=KILL:when={n}");
                let how = serve_traced(
                    &run,
                    &[
                        "-o",
                        "/dev/null",
                        "-P",
                        file,
                        "-e",
                        &format!("trace={call}"),
                        "-e",
                        &inject,
                    ],
                );
                let short = file.strip_prefix(&store).unwrap();
                let point = format!("{call} #{n} of {short}");
                println!("killing at {point}");
                if how == Traced::Ready {
                    // Made by another thread than the one counted: the
                    // kill did not land. Said, not hidden.
                    report.push(format!("not reached: {point}"));
                    continue;
                }
                let (served, _) = start(&run);
                assert_eq!(
                    util::submit(&run, &served.url(), "after the kill"),
                    200,
                    "after a kill at {point}"
                );
                served.stop();
                assert_eq!(
                    util::stored_ciphertexts(&run).len(),
                    held + 1,
                    "after a kill at {point}"
                );
                killed.push((call.clone(), short.to_owned(), n));
                report.push(format!("killed at {point}: next start served"));
            }
        }
        let (call, file, n) = must_kill;
        assert!(
            killed
                .iter()
                .any(|(c, f, k)| c == call && f.ends_with(file) && *k == n),
            "the sweep never killed at {call} #{n} of {file}: {report:#?}"
        );
    }
    println!(
        "store kill sweep, {} points:\n{}",
        report.len(),
        report.join("\n")
    );
}
