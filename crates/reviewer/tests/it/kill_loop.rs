//! An interrupted `reviewer open` blocks nothing: `kill -9` at a random
//! moment (while decrypting, scrubbing, committing files or indexes), then
//! again at a random moment of the next run, and the run after that opens
//! the batch completely, with no staging left for a person to find.
//!
//! The loop is bounded: at most `CYCLES` cycles and `BUDGET` of wall time.
//! It prints how many cycles ran, how many kills landed, and how many runs
//! found something to roll back.
#![allow(clippy::unwrap_used)]

use crate::util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reviewer::archive::Archive;
use util::{Env, Relay, Sealed, good_submission, reviewer};

const CYCLES: usize = 25;
const BUDGET: Duration = Duration::from_secs(120);
const PHOTO: &[u8] = include_bytes!("../fixtures/scrub/photo.jpg");

/// A small deterministic generator (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn open_cmd(env: &Env, relay: &Relay, key: &Path, batch: &Path) -> Command {
    let mut c = util::open_cmd(env, relay, key, &[batch]).command();
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// Starts an open and kills it (SIGKILL) after `after`; returns whether it
/// was still running then.
fn open_and_kill(env: &Env, relay: &Relay, key: &Path, batch: &Path, after: Duration) -> bool {
    let mut child = open_cmd(env, relay, key, batch).spawn().unwrap();
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

fn staging_left(out: &Path) -> Vec<String> {
    std::fs::read_dir(out)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".staging"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_9_at_any_moment_then_open_completes() {
    let work = Env::new();
    let r = reviewer(work.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    // Enough to take a while: many submissions, a photo in some (a
    // scrubbing child each), notes in others.
    let mut subs: Vec<(Sealed, Vec<u8>)> = Vec::new();
    for i in 0..120 {
        let note = format!("note {i}").into_bytes();
        let files: Vec<(&str, &[u8])> = if i % 4 == 0 {
            vec![("photo.jpg", PHOTO), ("note.txt", &note)]
        } else {
            vec![("note.txt", &note)]
        };
        subs.push(good_submission(
            &format!("testimony {i}"),
            &files,
            &[&r.recipient],
        ));
    }
    let sealed: Vec<Sealed> = subs.iter().map(|(s, _)| s.clone()).collect();
    let batch = relay.batch(&sealed);
    let path = batch.write(&work.path("b.tar"));

    // How long an uninterrupted open takes: the kills fall within it.
    let timing = Env::new();
    let start = Instant::now();
    let o = open_cmd(&timing, &relay, &r.key_file, &path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let full = start.elapsed();
    let span = u64::try_from(full.as_micros()).unwrap().max(1000);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let (mut cycles, mut kills, mut recovered) = (0usize, 0usize, 0usize);
    let began = Instant::now();
    while cycles < CYCLES && began.elapsed() < BUDGET {
        cycles += 1;
        let env = Env::new();
        // A kill somewhere in a whole run, then one early in the next run
        // (during its roll-back or its restaging).
        for _ in 0..2 {
            let at = Duration::from_micros(rng.below(span * 11 / 10));
            if open_and_kill(&env, &relay, &r.key_file, &path, at) {
                kills += 1;
            }
        }
        let o = open_cmd(&env, &relay, &r.key_file, &path).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success(),
            "cycle {cycles} (seed {seed}): open after kills failed: {stderr}"
        );
        if stderr.contains("rolled back") {
            recovered += 1;
        }
        // Everything there, exactly once; nothing left over.
        let archive = Archive::open(&env.out).unwrap();
        assert_eq!(archive.len(), subs.len(), "cycle {cycles} (seed {seed})");
        for (s, json) in &subs {
            assert_eq!(
                &std::fs::read(env.out.join(s.id.to_string()).join("testimony.json")).unwrap(),
                json
            );
        }
        assert!(
            staging_left(&env.out).is_empty(),
            "cycle {cycles} (seed {seed})"
        );
        let receipt = env
            .out
            .join("receipts")
            .join(format!("batch-000001-{}.json", batch.manifest().batch_id));
        assert!(receipt.is_file(), "cycle {cycles}");
        let state = reviewer::state::StateStore::new(&env.state)
            .load(&relay.key)
            .unwrap()
            .map(|s| s.sequence);
        assert_eq!(state, Some(1), "cycle {cycles} (seed {seed})");
        // No folder that the index does not hold.
        for e in std::fs::read_dir(&env.out).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if let Ok(id) = name.parse::<format::SubmissionId>() {
                assert!(archive.submission(&id).is_some(), "stray folder {name}");
            }
        }
    }
    eprintln!(
        "kill loop: {cycles} cycles, {kills} kills landed while open ran, {recovered} runs rolled back a staging directory; an uninterrupted open took {:.0} ms (seed {seed})",
        full.as_secs_f64() * 1000.0
    );
    assert!(cycles >= 10, "too few cycles in the time budget: {cycles}");
    assert!(
        kills > 0 && recovered > 0,
        "no kill landed: the test tested nothing"
    );
}
