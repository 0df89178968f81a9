//! A relay seized while it runs: what its disk says about when
//! anyone submitted. Against the `relay` binary, as a VPS provider's
//! snapshot would find it, with disk encryption unlocked.
//!
//! After a warm-up, N submissions (half with an attachment large enough to
//! be spooled and to be written into a lane; a third of them through the
//! OpenRosa endpoint field apps use) are made, and
//! then, under the data directory and the relay's temp directory:
//! - no file or directory was born in the window (`statx` birth time);
//! - the set of paths and their inode numbers are the same before and after;
//! - no modification or change time falls in the window or within a second
//!   after the last submission (the cover rounds have moved every time the
//!   submissions touched past it; files nothing touched keep their setup
//!   times, from before the window).
//!
//! And with `strace` attached: the file-creating, renaming and unlinking
//! system calls made while N submissions arrive are no more than in an
//! idle window of the same length, whatever N.

#![allow(clippy::unwrap_used)] // test harness: a panic is a failed test

use crate::util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::multipart::{Form, Part};
use util::{Served, client, demo_data};

/// The commit interval these tests run the relay with (the default).
const INTERVAL_MS: u64 = 10;
/// How often the relay's full cover touches every directory (`commit.rs`,
/// `FULL_COVER_EVERY`).
const FULL_COVER_MS: u64 = 1000;
/// Attachment size: spooled, and its ciphertext is written into a lane.
const ATTACHMENT: usize = 300 << 10;

fn config(text: String) -> String {
    format!("{text}\n[store]\ncommit_interval_ms = {INTERVAL_MS}\n")
}

/// Every third submission comes through the OpenRosa endpoint a field app
/// uses (its instance and attachment), the rest through the web form.
fn submit(data: &Path, url: &str, n: usize, attachment: bool) {
    if n % 3 == 2 {
        return submit_openrosa(data, url, n, attachment);
    }
    let mut form = Form::new()
        .text("category", "other")
        .text("text", format!("testimony number {n}"));
    if attachment {
        form = form.part(
            "files",
            Part::bytes(vec![n as u8; ATTACHMENT]).file_name(format!("evidence-{n}.bin")),
        );
    }
    let answer = client(data)
        .post(format!("{url}/en/submit"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
}

fn submit_openrosa(data: &Path, url: &str, n: usize, attachment: bool) {
    let list = client(data)
        .get(format!("{url}/openrosa/formList"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let version = list
        .split("<version>")
        .nth(1)
        .and_then(|v| v.split("</version>").next())
        .unwrap()
        .to_owned();
    let file = format!("evidence-{n}.bin");
    let xml = format!(
        "<data id=\"relay-testimony\" version=\"{version}\"><category>other</category>\
         <text>testimony number {n}</text><document>{}</document>\
         <meta><instanceID>uuid:seizure-{n}</instanceID></meta></data>",
        if attachment { file.as_str() } else { "" }
    );
    let mut form = Form::new().part(
        "xml_submission_file",
        Part::text(xml)
            .file_name("submission.xml")
            .mime_str("text/xml")
            .unwrap(),
    );
    if attachment {
        form = form.part(
            file.clone(),
            Part::bytes(vec![n as u8; ATTACHMENT]).file_name(file),
        );
    }
    let answer = client(data)
        .post(format!("{url}/openrosa/submission"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 201);
}

/// What a seizure reads of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    inode: u64,
    /// Birth, modification and change times, ns since the epoch.
    birth: Option<i128>,
    modified: i128,
    changed: i128,
}

fn ns(t: rustix::fs::StatxTimestamp) -> i128 {
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

fn look(path: &Path) -> Seen {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    let s = statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
    .unwrap();
    let has_birth = StatxFlags::from_bits_retain(s.stx_mask).contains(StatxFlags::BTIME);
    Seen {
        inode: s.stx_ino,
        birth: has_birth.then(|| ns(s.stx_btime)),
        modified: ns(s.stx_mtime),
        changed: ns(s.stx_ctime),
    }
}

/// Every path under each of `roots` (and the roots), as a seizure sees it.
fn seize(roots: &[&Path]) -> BTreeMap<PathBuf, Seen> {
    let mut out = BTreeMap::new();
    for r in roots {
        out.insert(r.to_path_buf(), look(r));
        for path in testkit::paths(r) {
            let seen = look(&path);
            out.insert(path, seen);
        }
    }
    out
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

#[test]
fn a_relay_seized_while_running_cannot_date_a_submission() {
    let started = Instant::now();
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = demo_data(root.path(), config);
    let tmp = root.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let served = Served::start_with(&data, &[("TMPDIR", tmp.to_str().unwrap())]);
    let url = served.url();
    // Warm-up: the first submissions, then a quiet moment.
    submit(&data, &url, 0, true);
    submit(&data, &url, 1, false);
    std::thread::sleep(Duration::from_millis(2 * INTERVAL_MS));

    let before = seize(&[&data, &tmp]);
    let window_start = now_ns();
    const N: usize = 20;
    for n in 0..N {
        submit(&data, &url, 100 + n, n % 2 == 0);
    }
    let last = now_ns();
    // Long enough for the cover to pass the last submission by more than
    // a second: files are covered every round, directories by the full
    // cover once a second, so the last full cover before the look may be
    // up to a second old. (1.5 s here failed about half the time, whenever
    // the last full cover fell between 0.5 and 1 s after the submission.)
    std::thread::sleep(Duration::from_millis(INTERVAL_MS + FULL_COVER_MS + 1500));
    let after = seize(&[&data, &tmp]);
    let log = served.stop();
    assert!(!log.contains("commit round failed"), "{log}");

    let paths = |m: &BTreeMap<PathBuf, Seen>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(paths(&after), paths(&before), "files came or went");
    let mut problems = Vec::new();
    for (path, seen) in &after {
        let was = &before[path];
        if seen.inode != was.inode {
            problems.push(format!("{}: a new inode", path.display()));
        }
        if let Some(birth) = seen.birth
            && birth >= window_start
        {
            problems.push(format!("{}: born in the window", path.display()));
        }
        for (what, t) in [("modified", seen.modified), ("changed", seen.changed)] {
            if t >= window_start && t < last + 1_000_000_000 {
                problems.push(format!(
                    "{}: {what} {} ms from the last submission",
                    path.display(),
                    (t - last) / 1_000_000
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        after.values().any(|s| s.birth.is_some()),
        "the file system records no birth times: the check above saw none"
    );
    eprintln!(
        "seizure: {} paths after {N} submissions ({} with a {} KiB attachment): none born, \
         no new inode, no time within 1 s of the last submission; {:.1} s",
        after.len(),
        N / 2,
        ATTACHMENT >> 10,
        started.elapsed().as_secs_f64()
    );
}

/// System calls that create, rename, link or remove a name.
const NAMING_CALLS: &str = "creat,open,openat,openat2,rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,unlinkat,mkdir,mkdirat,rmdir";

/// Attaches strace to `pid` for `window` while `during` runs, and returns
/// how many of the traced calls it saw in all (each round opens files to
/// cover them: so strace is known to be attached), and those that created,
/// renamed or removed a name (an `open` only with `O_CREAT` or `O_TMPFILE`).
fn naming_calls(pid: u32, window: Duration, during: impl FnOnce()) -> (usize, Vec<String>) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-e", &format!("trace={NAMING_CALLS}"), "-o"])
        .arg(out.path())
        .args(["-p", &pid.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (scripts/test installs it)");
    // strace needs a moment to attach to every thread.
    std::thread::sleep(Duration::from_millis(500));
    let began = Instant::now();
    during();
    let spent = began.elapsed();
    if spent < window {
        std::thread::sleep(window - spent);
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(strace.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    strace.wait().unwrap();
    let text = std::fs::read_to_string(out.path()).unwrap();
    let naming = text
        .lines()
        .filter(|l| {
            let open = l.contains("open(") || l.contains("openat(") || l.contains("openat2(");
            !open || l.contains("O_CREAT") || l.contains("O_TMPFILE")
        })
        .filter(|l| !l.contains("resumed>") || l.contains('='))
        .map(str::to_owned)
        .collect();
    (text.lines().count(), naming)
}

#[test]
fn no_file_is_created_renamed_or_removed_per_submission() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = demo_data(root.path(), config);
    let served = Served::start(&data);
    let url = served.url();
    submit(&data, &url, 0, true);
    std::thread::sleep(Duration::from_millis(2 * INTERVAL_MS));
    let pid = served.child.id();
    let window = Duration::from_secs(4);

    let (traced, idle) = naming_calls(pid, window, || {});
    assert!(traced > 0, "strace saw nothing: not attached?");
    let mut counts = Vec::new();
    for n in [8, 24] {
        let (traced, calls) = naming_calls(pid, window, || {
            for i in 0..n {
                submit(&data, &url, 1000 * n + i, i % 2 == 0);
            }
        });
        assert!(traced > 0, "strace saw nothing: not attached?");
        counts.push((n, calls));
    }
    served.stop();
    for (n, calls) in &counts {
        // At most two more than idle: a round may, rarely, begin a new
        // segment or sled its snapshot file; none of that is per
        // submission.
        assert!(
            calls.len() <= idle.len() + 2,
            "{n} submissions made {} naming calls, an idle window {}:\n{}",
            calls.len(),
            idle.len(),
            calls.join("\n")
        );
    }
    eprintln!(
        "naming system calls in {window:?}: idle {}, with 8 submissions {}, with 24 submissions {}",
        idle.len(),
        counts[0].1.len(),
        counts[1].1.len()
    );
}
