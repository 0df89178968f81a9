//! One hostile submission never stops a batch.
//!
//! A table of hostile submissions, each sealed between two good ones, each
//! opened by the `reviewer` binary as a small laptop would run it: under
//! `prlimit --as=2GiB` (2 GiB of address space for `reviewer` and, inherited,
//! every scrubbing child) and a time limit. Every case must end the same
//! way: exit 0, both good submissions in the archive byte for byte, the
//! hostile one quarantined or flagged as the table says, a receipt, and no
//! staging left. A table of outcome, peak memory and time is printed (run
//! with `--nocapture` to see it).
#![allow(clippy::unwrap_used)]

use crate::util;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use format::{MAX_TESTIMONY_JSON_BYTES, disk_name, fold_key};
use reviewer::archive::Archive;
use reviewer::workbench::ScrubOutcome;
use util::{Env, Relay, Sealed, good_submission, hostile, reviewer};

/// How the hostile submission must come out.
enum Expect {
    /// Opened; its attachment at this place flagged with no scrubbed copy,
    /// the reason containing this text ("" for any reason).
    OpenedFlagged(usize, &'static str),
    /// Opened (a scrub verdict either way: the file was harmless to the
    /// scrubber, or it said why not).
    Opened,
    /// Opened, and every name written differs from every other after case
    /// folding and normalization.
    OpenedDistinctNames(usize),
    /// Quarantined, the reason containing this text.
    Quarantined(&'static str),
}

struct Case {
    name: &'static str,
    files: Vec<(String, Vec<u8>)>,
    text: String,
    expect: Expect,
}

fn case(name: &'static str, files: Vec<(&str, Vec<u8>)>, expect: Expect) -> Case {
    Case {
        name,
        files: files.into_iter().map(|(n, d)| (n.to_owned(), d)).collect(),
        text: "hostile".into(),
        expect,
    }
}

fn cases() -> Vec<Case> {
    let many: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| (format!("note-{i:04}.txt"), format!("note {i}").into_bytes()))
        .collect();
    // A testimony.json within a few bytes of its limit.
    let base = util::testimony("", &[]).to_json().len();
    let big_text = "ж".repeat((MAX_TESTIMONY_JSON_BYTES - base - 64) / 2);
    vec![
        case(
            "pdf bomb (60 object streams x 60 MiB)",
            vec![("report.pdf", hostile::pdf_bomb_object_streams(60, 60))],
            Expect::OpenedFlagged(0, "expand to more than"),
        ),
        case(
            "pdf nested 1,000,000 deep",
            vec![("nested.pdf", hostile::pdf_deeply_nested(1_000_000))],
            Expect::OpenedFlagged(0, ""),
        ),
        case(
            "jpeg 65500x65500",
            vec![("huge.jpg", hostile::jpeg_huge_dimensions())],
            Expect::Opened,
        ),
        case(
            "jpeg 1,000,000 segments",
            vec![("many.jpg", hostile::jpeg_million_segments())],
            Expect::Opened,
        ),
        case(
            "png (2^31-1)^2",
            vec![("huge.png", hostile::png_huge_dimensions())],
            Expect::Opened,
        ),
        case(
            "png 1,000,000 chunks",
            vec![("many.png", hostile::png_million_chunks())],
            Expect::Opened,
        ),
        case(
            "zip renamed .pdf",
            vec![("statement.pdf", hostile::zip_named_pdf())],
            Expect::OpenedFlagged(0, "not recognised"),
        ),
        case(
            "tar renamed .pdf",
            vec![("statement.pdf", hostile::tar_named_pdf())],
            Expect::OpenedFlagged(0, "not recognised"),
        ),
        case(
            "names one on APFS/NTFS (σ/ς, NFC/NFD, ß/SS)",
            vec![
                ("σ.txt", b"sigma".to_vec()),
                ("ς.txt", b"final sigma".to_vec()),
                ("caf\u{e9}.txt", b"nfc".to_vec()),
                ("cafe\u{301}.txt", b"nfd".to_vec()),
                ("straße.txt", b"eszett".to_vec()),
                ("STRASSE.txt", b"capitals".to_vec()),
            ],
            Expect::OpenedDistinctNames(6),
        ),
        case(
            "names equal but for case",
            vec![("Photo.JPG", b"a".to_vec()), ("photo.jpg", b"b".to_vec())],
            Expect::Quarantined("duplicate attachment names"),
        ),
        Case {
            name: "1,000 attachments",
            files: many,
            text: "many".into(),
            expect: Expect::OpenedDistinctNames(1000),
        },
        Case {
            name: "testimony.json at its 4 MiB limit",
            files: Vec::new(),
            text: big_text,
            expect: Expect::Opened,
        },
        case(
            "the same file twice, two names",
            vec![("a.txt", b"same".to_vec()), ("a (2).txt", b"same".to_vec())],
            Expect::OpenedDistinctNames(2),
        ),
        case(
            "the same name twice",
            vec![("a.txt", b"same".to_vec()), ("a.txt", b"same".to_vec())],
            Expect::Quarantined("duplicate attachment names"),
        ),
    ]
}

/// Runs `reviewer open` as a separate process under 2 GiB of address space
/// and 300 s; returns (exit success, stderr, peak RSS in KiB of it and its
/// children, seconds).
fn open_limited(env: &Env, relay: &Relay, key: &Path, batch: &Path) -> (bool, String, u64, f64) {
    let rss_file = env.path("rss");
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .args(["prlimit", "--as=2147483648", "timeout", "300"])
        .arg(testkit::reviewer_bin())
        .args(util::open_cmd(env, relay, key, &[batch]).get_args())
        .output()
        .expect("/usr/bin/time, prlimit and timeout (packages time, util-linux, coreutils)");
    let secs = start.elapsed().as_secs_f64();
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        rss,
        secs,
    )
}

fn check_good(env: &Env, archive: &Archive, s: &Sealed, json: &[u8], what: &str) {
    assert!(
        archive.submission(&s.id).is_some(),
        "{what}: good one missing"
    );
    assert_eq!(
        std::fs::read(env.out.join(s.id.to_string()).join("testimony.json")).unwrap(),
        json,
        "{what}"
    );
}

#[test]
fn one_hostile_submission_never_stops_a_batch() {
    let mut table = vec![format!(
        "{:<46} {:<34} {:>9} {:>7}",
        "case", "outcome", "peak MiB", "seconds"
    )];
    for c in cases() {
        let env = Env::new();
        let r = reviewer(env.dir.path(), "reviewer.key");
        let mut relay = Relay::new();
        let (good1, json1) = good_submission("before", &[("ok.txt", b"ok")], &[&r.recipient]);
        let (good2, json2) = good_submission("after", &[], &[&r.recipient]);
        let files: Vec<(&str, &[u8])> = c
            .files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let json = util::testimony(&c.text, &files).to_json().to_vec();
        let bad = util::sealed(&util::plaintext(&json, &files), &[&r.recipient]);
        let batch = relay.batch(&[good1.clone(), bad.clone(), good2.clone()]);
        let path = batch.write(&env.path("b.tar"));

        let (ok, stderr, rss, secs) = open_limited(&env, &relay, &r.key_file, &path);
        assert!(ok, "{}: open failed: {stderr}", c.name);
        let archive = Archive::open(&env.out).unwrap();
        check_good(&env, &archive, &good1, &json1, c.name);
        check_good(&env, &archive, &good2, &json2, c.name);
        let receipt = env
            .out
            .join("receipts")
            .join(format!("batch-000001-{}.json", batch.manifest().batch_id));
        assert!(receipt.is_file(), "{}: no receipt", c.name);
        let leftovers: Vec<String> = std::fs::read_dir(&env.out)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".staging"))
            .collect();
        assert!(leftovers.is_empty(), "{}: {leftovers:?}", c.name);

        let outcome = match c.expect {
            Expect::Quarantined(reason) => {
                let q = archive
                    .quarantined_submission(&bad.id)
                    .unwrap_or_else(|| panic!("{}: not quarantined", c.name));
                assert!(q.reason.contains(reason), "{}: {}", c.name, q.reason);
                assert!(!env.out.join(bad.id.to_string()).exists(), "{}", c.name);
                format!("quarantined ({reason})")
            }
            Expect::Opened | Expect::OpenedFlagged(..) | Expect::OpenedDistinctNames(_) => {
                let s = archive
                    .submission(&bad.id)
                    .unwrap_or_else(|| panic!("{}: not opened", c.name));
                let dir = env.out.join(bad.id.to_string());
                // Every original kept, byte for byte, where the index says.
                for (a, (_, data)) in s.attachments.iter().zip(&c.files) {
                    assert_eq!(&std::fs::read(env.out.join(&a.original)).unwrap(), data);
                }
                match c.expect {
                    Expect::OpenedFlagged(i, reason) => {
                        let a = &s.attachments[i];
                        assert!(a.scrubbed.is_none(), "{}: scrubbed", c.name);
                        let why = match &a.metadata.scrub {
                            ScrubOutcome::Failed { reason } => reason.clone(),
                            ScrubOutcome::Unsupported { reason } => reason.clone(),
                            ScrubOutcome::Scrubbed => panic!("{}: scrubbed", c.name),
                        };
                        assert!(why.contains(reason), "{}: {why}", c.name);
                        assert!(reviewer::archive::is_flagged(a));
                        format!(
                            "opened, flagged: {}",
                            why.chars().take(60).collect::<String>()
                        )
                    }
                    Expect::OpenedDistinctNames(n) => {
                        let written: Vec<String> = std::fs::read_dir(dir.join("files"))
                            .unwrap()
                            .map(|e| e.unwrap().file_name().into_string().unwrap())
                            .collect();
                        assert_eq!(written.len(), n, "{}", c.name);
                        let keys: HashSet<String> = written.iter().map(|w| fold_key(w)).collect();
                        assert_eq!(keys.len(), n, "{}: names fold together", c.name);
                        for (i, (name, _)) in c.files.iter().enumerate() {
                            assert!(written.contains(&disk_name(i, n, name)), "{name}");
                        }
                        format!("opened, {n} names distinct")
                    }
                    _ => "opened".into(),
                }
            }
        };
        table.push(format!(
            "{:<46} {:<34} {:>9.0} {:>7.1}",
            c.name,
            outcome.chars().take(34).collect::<String>(),
            rss as f64 / 1024.0,
            secs
        ));
    }
    eprintln!("{}", table.join("\n"));
}

/// A submission quarantined by one build opens with `reviewer retry` once
/// what stopped it is gone: here, its custody ciphertext is checked against
/// the signed hash first (a changed one is refused), and a retry of one
/// still hostile keeps it quarantined with the reason.
#[test]
fn retry_checks_custody_and_keeps_what_still_fails() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (good, _) = good_submission("fine", &[], &[&r.recipient]);
    let files: Vec<(&str, &[u8])> = vec![("a.txt", b"x"), ("A.TXT", b"y")];
    let json = util::testimony("t", &files).to_json().to_vec();
    let bad = util::sealed(&util::plaintext(&json, &files), &[&r.recipient]);
    let path = relay
        .batch(&[good.clone(), bad.clone()])
        .write(&env.path("b.tar"));
    let (ok, stderr, _, _) = open_limited(&env, &relay, &r.key_file, &path);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("quarantined"), "{stderr}");
    let id = bad.id.to_string();
    let retry = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"retry",
            &id,
            &"--identity",
            &r.key_file,
            &"--out",
            &env.out,
        ];
        for e in extra {
            args.push(e);
        }
        util::run(&args)
    };
    // Still hostile: stays quarantined, says why.
    let e = retry(&[]).unwrap_err();
    assert!(
        matches!(&e, reviewer::Error::Open(reviewer::open::OpenError::StillQuarantined { reason, .. }) if reason.contains("duplicate")),
        "{e}"
    );
    let archive = Archive::open(&env.out).unwrap();
    assert!(archive.quarantined_submission(&bad.id).is_some());
    assert!(!env.out.join(&id).exists());
    // An altered custody copy is refused before anything is decrypted.
    let kept = reviewer::archive::custody_ciphertext(&env.out, &relay.key, &bad.id);
    let mut bytes = std::fs::read(&kept).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    std::fs::write(&kept, &bytes).unwrap();
    let e = retry(&[]).unwrap_err();
    assert!(
        matches!(
            &e,
            reviewer::Error::Archive(reviewer::archive::ArchiveError::DamagedSubmission { .. })
        ),
        "{e}"
    );
    // A good submission is not quarantined: retry says so.
    let good_id = good.id.to_string();
    let e = util::run(&[
        &"retry",
        &good_id,
        &"--identity",
        &r.key_file,
        &"--out",
        &env.out,
    ])
    .unwrap_err();
    assert!(
        matches!(
            e,
            reviewer::Error::Open(reviewer::open::OpenError::NotQuarantined { .. })
        ),
        "{e}"
    );
}

/// `list`, `show` and `verify-archive` show a quarantined submission.
#[test]
fn quarantined_submissions_are_listed_shown_and_audited() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (good, _) = good_submission("fine", &[], &[&r.recipient]);
    let files: Vec<(&str, &[u8])> = vec![("a.txt", b"x"), ("a.txt", b"x")];
    let json = util::testimony("t", &files).to_json().to_vec();
    let bad = util::sealed(&util::plaintext(&json, &files), &[&r.recipient]);
    let path = relay.batch(&[good, bad.clone()]).write(&env.path("b.tar"));
    let (ok, stderr, _, _) = open_limited(&env, &relay, &r.key_file, &path);
    assert!(ok, "{stderr}");
    let bin = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let o = util::bin(args);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let id = bad.id.to_string();
    let (ok, list) = bin(&[&"list", &env.out]);
    assert!(
        ok && list.contains("1 quarantined") && list.contains(&id[..12]),
        "{list}"
    );
    let (ok, only) = bin(&[&"list", &env.out, &"--quarantined"]);
    assert!(ok && only.contains("duplicate attachment names"), "{only}");
    let (ok, show) = bin(&[&"show", &env.out, &id]);
    assert!(
        ok && show.contains("QUARANTINED") && show.contains("reviewer retry"),
        "{show}"
    );
    let (ok, audit) = bin(&[&"verify-archive", &env.out, &"--relay-key", &relay.key]);
    assert!(ok && audit.contains("quarantined"), "{audit}");
    // An altered custody ciphertext of a quarantined one is a problem.
    let kept = reviewer::archive::custody_ciphertext(&env.out, &relay.key, &bad.id);
    std::fs::write(&kept, b"altered").unwrap();
    let (ok, audit) = bin(&[&"verify-archive", &env.out, &"--relay-key", &relay.key]);
    assert!(!ok, "{audit}");
}

/// A file under the PDF budget that still needs more memory than the
/// child may have: the child is stopped by its address-space limit, the
/// file is flagged with that reason, and the batch opens.
#[test]
fn a_child_over_its_memory_limit_flags_the_file() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let bomb = hostile::pdf_bomb_small();
    let (s, _) = good_submission("pdf", &[("small-bomb.pdf", &bomb)], &[&r.recipient]);
    let path = relay
        .batch(std::slice::from_ref(&s))
        .write(&env.path("b.tar"));
    let cmd = util::open_cmd(&env, &relay, &r.key_file, &[&path]);
    reviewer::run(cmd.args(["--scrub-memory", "96"]).argv()).unwrap();
    let archive = Archive::open(&env.out).unwrap();
    let a = &archive.submission(&s.id).unwrap().attachments[0];
    assert!(a.scrubbed.is_none());
    match &a.metadata.scrub {
        ScrubOutcome::Failed { reason } => {
            assert!(reason.contains("out of memory (limit 96 MiB"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(env.out.join(&a.original)).unwrap(), bomb);
}
