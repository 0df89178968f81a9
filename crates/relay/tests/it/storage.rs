//! Storage limits and checks, with the real binary: the storage quota, a
//! genuinely full file system (a small tmpfs the test mounts), and
//! `relay check`.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a failed test

use crate::util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use reqwest::blocking::multipart::{Form, Part};
use util::{
    Served, client, demo_data, demo_identity, relay, settle_pools, status_line, stderr,
    stored_ciphertexts,
};

/// What a submission got back.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    /// The "busy, try later" page.
    fn assert_busy(&self, served: &Served) {
        assert_eq!(self.status, 503, "{self:?}\nrelay log:\n{}", served.log());
        assert!(self.retry_after.is_some(), "503 without Retry-After");
        assert!(self.body.contains("Nothing was stored"), "{}", self.body);
    }
}

/// Posts a submission with `text` and, if `attachment` is not 0, one file
/// of that many bytes.
fn send(data: &Path, url: &str, text: &str, attachment: usize) -> Answer {
    let mut form = Form::new()
        .text("category", "other")
        .text("text", text.to_owned());
    if attachment > 0 {
        let bytes: Vec<u8> = (0..attachment).map(|i| (i * 7 % 251) as u8).collect();
        form = form.part("files", Part::bytes(bytes).file_name("evidence.bin"));
    }
    let res = client(data)
        .post(format!("{url}/en/submit"))
        .multipart(form)
        .send()
        .unwrap();
    Answer {
        status: res.status().as_u16(),
        retry_after: res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: res.text().unwrap(),
    }
}

/// The reasons the relay reported for refusing submissions: one per
/// refusal, from the counts it writes at shutdown (never a line per
/// refusal, which would date the request).
fn refusals(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in log
        .lines()
        .filter(|l| l.contains("submissions refused since the last report"))
    {
        let count: usize = l
            .split_once("count=")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let reason = l.split_once("reason=").map_or(l, |(_, r)| r);
        out.extend(std::iter::repeat_n(reason.to_owned(), count));
    }
    out
}

/// No line of the log while the relay ran says anything about one
/// submission (as the relay wrote before: "submission refused", "submission
/// failed", "no codename for a submission"): refusals are counted and
/// written only at shutdown.
fn assert_no_line_per_submission(log: &str) {
    for l in log.lines() {
        assert!(
            !(l.contains("submission refused")
                || l.contains("submission failed")
                || l.contains("no codename for")
                || l.contains("since the last report")),
            "a line per submission: {l}"
        );
    }
}

fn store(data: &Path) -> PathBuf {
    data.join("store")
}

/// Nothing half-stored: no upload in progress has left bytes in a spool
/// file. (How many are stored, and that no lane keeps bytes past its
/// committed length, is checked once the relay stops.)
fn assert_nothing_half_stored(data: &Path) {
    settle_pools(data).unwrap();
}

/// `relay check --data DATA`.
fn check(data: &Path) -> Output {
    relay(&["check", "--data", data.to_str().unwrap()])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn assert_check_passes(data: &Path) -> String {
    let out = assert_check_passes_with_notes(data);
    // Checked after clean stops: an upload refused or cut off left nothing
    // past a lane's committed length either.
    assert!(!out.contains("torn tail"), "{out}");
    out
}

/// [`assert_check_passes`], where the test made a torn tail itself.
fn assert_check_passes_with_notes(data: &Path) -> String {
    let o = check(data);
    assert!(
        o.status.success(),
        "relay check failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(!stdout(&o).contains("problem:"), "{}", stdout(&o));
    stdout(&o)
}

/// Replaces the value of `key` in the data directory's config (appending
/// a [limits] section the first time).
fn set_limit(data: &Path, key: &str, value: u64) {
    let path = data.join("relay.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !text.contains("[limits]") {
        text.push_str("\n[limits]\n");
    }
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{key} = ")))
        .map(str::to_owned)
        .collect();
    let at = lines.iter().position(|l| l == "[limits]").unwrap() + 1;
    lines.insert(at, format!("{key} = {value}"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

// --- the quota -----------------------------------------------------------------

#[test]
fn over_the_quota_sources_are_told_busy_and_intake_resumes_after_an_ack() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_data(tmp.path(), |t| t);
    set_limit(&data, "max_store_bytes", 1 << 20);
    let served = Served::start(&data);
    let url = served.url();

    // Two 400 KiB attachments fit in 1 MiB of ciphertext; a third does not,
    // and is refused while it streams in.
    assert_eq!(send(&data, &url, "first", 400 << 10).status, 200);
    assert_eq!(send(&data, &url, "second", 400 << 10).status, 200);
    send(&data, &url, "third, too big", 400 << 10).assert_busy(&served);
    assert_nothing_half_stored(&data);
    // The quota is in bytes: a short text-only testimony still fits, until
    // it too does not.
    assert_eq!(send(&data, &url, "short", 0).status, 200);
    let mut shorts = 1;
    loop {
        let a = send(&data, &url, &format!("short {shorts}"), 0);
        if a.status == 503 {
            a.assert_busy(&served);
            break;
        }
        assert_eq!(a.status, 200, "{a:?}");
        shorts += 1;
        assert!(shorts < 100, "the quota never applied");
    }
    let held = 2 + shorts;
    assert_nothing_half_stored(&data);

    // A reviewer pulls and acknowledges everything through the API; the
    // running relay takes submissions again at once.
    let token = std::fs::read_to_string(data.join("demo-api.token")).unwrap();
    let api = client(&data);
    let batch = api
        .get(format!("{url}/api/v1/batches/next"))
        .bearer_auth(token.trim())
        .send()
        .unwrap();
    assert_eq!(batch.status(), 200);
    let tar = batch.bytes().unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut manifest_bytes = Vec::new();
    archive
        .entries()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .read_to_end(&mut manifest_bytes)
        .unwrap();
    let manifest = format::Manifest::from_json(&manifest_bytes).unwrap();
    assert_eq!(manifest.submissions.len(), held);
    let ack = api
        .post(format!("{url}/api/v1/batches/{}/ack", manifest.batch_id))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({
            "manifest_sha256": format::Digest::of(&manifest_bytes).to_string()
        }))
        .send()
        .unwrap();
    assert_eq!(ack.status(), 200);
    assert_eq!(send(&data, &url, "third, again", 400 << 10).status, 200);
    assert_no_line_per_submission(&served.log());
    let log = served.stop();
    let why = refusals(&log);
    assert_eq!(why.len(), 2, "{log}");
    assert!(why.iter().all(|w| w.contains("quota")), "{why:#?}");
    eprintln!("quota refusals logged: {why:#?}");

    assert!(status_line(&data).contains("submissions: 1 "));
    assert_check_passes(&data);
    eprintln!(
        "quota: {held} submissions filled 1 MiB; resumed after the ack; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// --- a full file system ----------------------------------------------------------

/// A tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a `size` tmpfs on `dir`, or says why it cannot.
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if o.status.success() {
            Ok(Tmpfs(dir.to_owned()))
        } else {
            Err(format!(
                "mount -t tmpfs failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    }

    fn available(&self) -> u64 {
        let o = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Writes a filler file until at most `leave` bytes are left free (0:
    /// until the file system refuses every byte).
    fn fill(&self, leave: u64) -> Filler {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        if leave > 0 {
            let mut left = self.available().saturating_sub(leave);
            let chunk = vec![0xAAu8; 1 << 20];
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n]).unwrap();
                left -= n as u64;
            }
        } else {
            for size in [1 << 20, 4096, 1] {
                let chunk = vec![0xAAu8; size];
                while f.write_all(&chunk).is_ok() {}
            }
            assert_eq!(self.available(), 0, "the filler did not fill the disk");
        }
        f.sync_all().ok();
        Filler(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// The filler file; removed when dropped.
struct Filler(PathBuf);

impl Drop for Filler {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).unwrap();
    }
}

/// Decrypts every stored ciphertext and returns its testimony text, with
/// how many attachment bytes it carries.
fn decrypt_all(data: &Path) -> BTreeMap<String, u64> {
    let identity = demo_identity(data);
    let mut out = BTreeMap::new();
    for (_, ciphertext) in stored_ciphertexts(data) {
        // Decrypted to the end: the age stream is complete.
        let plain = testkit::decrypt(&identity, &ciphertext).unwrap();
        let mut archive = tar::Archive::new(&plain[..]);
        let mut entries = archive.entries().unwrap();
        let mut first = entries.next().unwrap().unwrap();
        assert_eq!(first.path().unwrap().to_str(), Some("testimony.json"));
        let mut json = Vec::new();
        first.read_to_end(&mut json).unwrap();
        drop(first);
        let testimony = format::Testimony::from_json(&json).unwrap();
        // Read to the end: the tar (and so the age stream) is complete.
        for e in entries {
            std::io::copy(&mut e.unwrap(), &mut std::io::sink()).unwrap();
        }
        let bytes = testimony.attachments.iter().map(|a| a.size).sum();
        out.insert(testimony.text.clone(), bytes);
    }
    out
}

#[test]
fn a_full_disk_fails_submissions_cleanly_and_the_relay_recovers_without_a_restart() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let disk = match Tmpfs::mount(&tmp.path().join("disk"), "24m") {
        Ok(disk) => disk,
        Err(why) => {
            // The one skip the suite allows: mounting needs root.
            eprintln!("SKIPPED a_full_disk_fails_submissions_cleanly: {why}");
            return;
        }
    };
    let data = demo_data(&disk.0, |t| t);
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut ok = |data: &Path, url: &str, text: &str, attachment: usize| {
        let a = send(data, url, text, attachment);
        assert_eq!(a.status, 200, "{text}: {a:?}");
        acked.insert(text.to_owned(), attachment as u64);
    };

    // 1. No reserve: the relay's own writes hit ENOSPC.
    set_limit(&data, "min_free_bytes", 0);
    let served = Served::start(&data);
    let url = served.url();
    ok(&data, &url, "before the disk filled", 256 << 10);
    let filler = disk.fill(0);
    send(&data, &url, "while the disk was full", 0).assert_busy(&served);
    send(&data, &url, "with a file, disk full", 1 << 20).assert_busy(&served);
    assert_nothing_half_stored(&data);
    drop(filler);
    ok(&data, &url, "after space returned", 0);
    // Room for part of an upload only: it fails as it is spooled.
    let filler = disk.fill(2 << 20);
    send(&data, &url, "bigger than the space left", 6 << 20).assert_busy(&served);
    assert_nothing_half_stored(&data);
    drop(filler);
    ok(&data, &url, "after the big one failed", 1 << 20);
    assert_no_line_per_submission(&served.log());
    let log = served.stop();
    let why = refusals(&log);
    assert_eq!(why.len(), 3, "the operator is told why:\n{log}");
    assert!(
        why.iter().all(|w| w.contains("No space left on device")),
        "{why:#?}"
    );
    eprintln!("full-disk refusals logged: {why:#?}");

    // 2. With a reserve, the relay refuses before the disk is full.
    set_limit(&data, "min_free_bytes", 8 << 20);
    let served = Served::start(&data);
    let url = served.url();
    let filler = disk.fill(6 << 20);
    let free = disk.available();
    send(&data, &url, "inside the reserve", 0).assert_busy(&served);
    assert_eq!(disk.available(), free, "nothing was written");
    drop(filler);
    ok(&data, &url, "reserve freed", 512 << 10);
    let log = served.stop();
    let why = refusals(&log);
    assert_eq!(why.len(), 1, "{log}");
    assert!(why[0].contains("limits.min_free_bytes"), "{why:#?}");

    // 3. After a restart, every acknowledged submission is there and opens.
    let served = Served::start(&data);
    ok(&data, &served.url(), "after the restart", 0);
    served.stop();
    let line = status_line(&data);
    assert!(
        line.contains(&format!("submissions: {} ", acked.len())),
        "{line}"
    );
    assert_eq!(decrypt_all(&data), acked);
    assert_nothing_half_stored(&data);
    assert_check_passes(&data);
    eprintln!(
        "full disk: {} acknowledged submissions decrypted after 3 runs; {:.1} s",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
}

// --- relay check ------------------------------------------------------------------

/// Every segment file and the index's files, with their bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["segments", "index"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Runs `relay check`, expecting failure with a problem line containing
/// `what` (and `about`).
fn assert_problem(data: &Path, about: &str, what: &str) {
    let o = check(data);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(
        out.lines()
            .any(|l| l.starts_with("problem: ") && l.contains(about) && l.contains(what)),
        "no problem line about {about:?} saying {what:?}:\n{out}"
    );
    assert!(stderr(&o).contains("problem(s)"), "{}", stderr(&o));
}

#[test]
fn relay_check_passes_a_healthy_store_and_reports_each_kind_of_damage() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_data(tmp.path(), |t| t);
    let d = data.to_str().unwrap();
    let served = Served::start(&data);
    for n in 0..3 {
        assert_eq!(
            send(&data, &served.url(), &format!("one of {n}"), n << 10).status,
            200
        );
    }
    // The store is locked while the relay runs: a clear refusal.
    let o = check(&data);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("in use by another process"),
        "{}",
        stderr(&o)
    );
    served.stop();
    // A batch, then more submissions, so the manifest is checked too.
    let out = tmp.path().join("batch.tar");
    let o = relay(&["export", "--data", d, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let served = Served::start(&data);
    assert_eq!(send(&data, &served.url(), "later", 0).status, 200);
    served.stop();

    let healthy = assert_check_passes(&data);
    assert!(
        healthy.contains("checked 4 submissions") && healthy.contains("1 unacknowledged batches"),
        "{healthy}"
    );
    let before = snapshot(&store(&data));
    // The active segment: the only one with bytes (the lanes, which hold
    // large ciphertexts only, are empty).
    let segments: Vec<PathBuf> = before
        .iter()
        .filter(|(p, bytes)| p.extension().is_some_and(|e| e == "seg") && !bytes.is_empty())
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    let segment = &segments[0];
    let bytes = &before[segment];
    let restore = || std::fs::write(segment, bytes).unwrap();

    // Truncated segment data.
    std::fs::write(segment, &bytes[..bytes.len() / 2]).unwrap();
    assert_problem(&data, "segment", "truncated segment data");
    restore();

    // One bit flipped near the end (a payload) and at the start (an age
    // header): corrupt bytes.
    let mut flipped = bytes.clone();
    let end = flipped.len() - 100;
    flipped[end] ^= 0x10;
    std::fs::write(segment, &flipped).unwrap();
    assert_problem(&data, "submission ", "corrupt bytes");
    let mut flipped = bytes.clone();
    flipped[3] ^= 0x01;
    std::fs::write(segment, &flipped).unwrap();
    assert_problem(&data, "submission ", "age header does not parse");
    restore();

    // A torn tail (a round that appended but never indexed): start-up cuts
    // it off, so it is a note, and the check leaves it there.
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"appended, never indexed");
    std::fs::write(segment, &longer).unwrap();
    let out = assert_check_passes_with_notes(&data);
    assert!(
        out.contains("note: segment") && out.contains("torn tail"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(segment).unwrap(),
        longer,
        "relay check must not repair"
    );
    restore();

    // A segment file no record names (left by an interrupted compaction).
    let stray = store(&data).join("segments").join("00000099.seg");
    std::fs::write(&stray, b"left by a compaction").unwrap();
    let out = assert_check_passes(&data);
    assert!(out.contains("note: file segments/00000099.seg"), "{out}");
    assert!(stray.exists(), "relay check must not recover anything");
    std::fs::remove_file(&stray).unwrap();

    // Checking changed nothing.
    assert_check_passes(&data);
    assert_eq!(
        snapshot(&store(&data)).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert_eq!(std::fs::read(segment).unwrap(), *bytes);
    eprintln!(
        "relay check: healthy store passed; truncated, bit-flipped (payload and header) segment reported; torn tail and stray segment noted; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
