//! The reviewer's workbench on an archive: `open` imports each submission
//! once (across batches and relays) with its origin and custody copies;
//! `list`, `show`, `tag`, `status` triage it; `export` and `report` turn it
//! into files; `verify-archive` re-checks the chain of custody and catches
//! tampering.
#![allow(clippy::unwrap_used)]

use crate::util;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use format::{FieldLabel, ManifestEntry, SubmissionId, ThreadId};
use reviewer::Error;
use reviewer::archive::{Archive, custody_batch_dir, custody_ciphertext, relay_fingerprint};
use reviewer::state::StateStore;
use reviewer::workbench::{ScrubOutcome, Status};
use util::{
    Batch, Env, Relay, Reviewer, Sealed, bin, good_submission, open, open_cmd, reviewer, run, tree,
};

// ------------------------------------------------------------------ helpers

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Opens `batch` into `env`'s archive through the library, against a chain
/// state of its own in `state` starting at `start_at`: what the command
/// line can no longer do (each archive has one chain), to make an archive
/// with a fork or a gap for `verify-archive` to find.
fn open_off_chain(
    env: &Env,
    state: &Path,
    relay: &Relay,
    r: &Reviewer,
    batch: &Path,
    start_at: u64,
) {
    let key = reviewer::verify::PinnedKey::from_base64(&relay.key).unwrap();
    let verified = reviewer::verify::verify_batch(
        batch,
        &key,
        &reviewer::state::ChainAnchor::StartAt(start_at),
    )
    .unwrap();
    let identity = reviewer::identity::Identity::load(
        &r.key_file,
        &reviewer::identity::PassphraseSource::Terminal,
    )
    .unwrap();
    reviewer::open::open_batch(
        verified,
        &[identity],
        &util::scrubber(),
        &env.out,
        &StateStore::new(state),
    )
    .unwrap();
}

fn open_bin(env: &Env, relay: &Relay, r: &Reviewer, batches: &[&Path]) -> Output {
    open_cmd(env, relay, &r.key_file, batches).output()
}

fn state_seq(state: &Path, relay: &Relay) -> Option<u64> {
    StateStore::new(state)
        .load(&relay.key)
        .unwrap()
        .map(|s| s.sequence)
}

/// A sealed submission with these answers (key → (value, English answer
/// label)), text and attachments.
fn submission(
    r: &Reviewer,
    fields: &[(&str, &str, Option<&str>)],
    text: &str,
    files: &[(&str, &[u8])],
) -> Sealed {
    let mut t = util::testimony(text, files);
    t.fields = fields
        .iter()
        .map(|(k, v, _)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    t.labels = fields
        .iter()
        .map(|(k, _, label)| {
            (
                (*k).to_owned(),
                FieldLabel {
                    question: format!("Question {k}"),
                    answer: label.map(str::to_owned),
                },
            )
        })
        .collect();
    let json = t.to_json().to_vec();
    util::sealed(&util::plaintext(&json, files), &[&r.recipient])
}

/// The relay's next batch, with each submission received on its own day.
fn batch_on_days(relay: &mut Relay, subs: &[(&Sealed, &str)]) -> Batch {
    let sealed: Vec<Sealed> = subs.iter().map(|(s, _)| (*s).clone()).collect();
    let draft = relay.batch_at(relay.sequence + 1, relay.previous, &sealed);
    let mut m = draft.manifest();
    for (e, (_, day)) in m.submissions.iter_mut().zip(subs) {
        e.received_day = day.parse().unwrap();
    }
    let b = relay.sign(m.to_json(), &m, &sealed);
    relay.sequence += 1;
    relay.previous = Some(b.manifest_sha256());
    b
}

/// Copies a directory tree (an archive, to tamper with a copy).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn flip_byte(path: &Path, at_from_end: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    bytes[n - at_from_end] ^= 1;
    std::fs::write(path, bytes).unwrap();
}

// ----------------------------------------------------------------- imports

#[test]
fn the_same_batch_twice_adds_nothing_and_says_so() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[("a.txt", b"alpha")], &[&r.recipient]);
    let p1 = relay
        .batch(std::slice::from_ref(&s1))
        .write(&env.path("b1.tar"));
    let o = open_bin(&env, &relay, &r, &[&p1]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out_before = tree(&env.out);
    let state_before = tree(&env.state);

    // Again: a clear no-op, exit 0, nothing written, no key needed.
    let nowhere = PathBuf::from("/nonexistent/identity.key");
    let o = open_cmd(&env, &relay, &nowhere, &[&p1]).output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "batch 1 of relay {} is already in the archive: nothing to do\n",
            relay_fingerprint(&relay.key)
        )
    );
    assert_eq!(tree(&env.out), out_before);
    assert_eq!(tree(&env.state), state_before);

    // With a new batch in the same command: the old one is skipped, the
    // new one opened, each submission archived once.
    let (s2, _) = good_submission("two", &[], &[&r.recipient]);
    let p2 = relay
        .batch(std::slice::from_ref(&s2))
        .write(&env.path("b2.tar"));
    let o = open_bin(&env, &relay, &r, &[&p2, &p1]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("batch 1 of relay") && lines[0].ends_with("nothing to do"),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("opened batch 2 "), "{lines:?}");
    let archive = Archive::open(&env.out).unwrap();
    let ids: Vec<SubmissionId> = archive.submissions().map(|s| s.id).collect();
    let mut want = vec![s1.id, s2.id];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(archive.batches().len(), 2);
    assert_eq!(state_seq(&env.state, &relay), Some(2));
    assert_eq!(
        std::fs::read_dir(env.out.join("receipts")).unwrap().count(),
        2
    );
}

#[test]
fn a_chain_state_behind_the_archive_catches_up() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[], &[&r.recipient]);
    let p1 = relay.batch(&[s1]).write(&env.path("b1.tar"));
    let (s2, _) = good_submission("two", &[], &[&r.recipient]);
    let p2 = relay.batch(&[s2]).write(&env.path("b2.tar"));
    open(&env, &relay, &r, &[&p1]).unwrap();

    // The archive's state deleted (or a crash after the index was
    // written): batch 1 is archived, so it is not opened again, and the
    // state is derived from the archive, so batch 2 opens.
    std::fs::remove_dir_all(&env.state).unwrap();
    let o = util::open_cmd(&env, &relay, &r.key_file, &[&p1]).output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).ends_with("nothing to do\n"), "{}", stdout(&o));
    assert_eq!(state_seq(&env.state, &relay), Some(1));
    std::fs::remove_dir_all(&env.state).unwrap();
    reviewer::run(util::open_cmd(&env, &relay, &r.key_file, &[&p2]).argv()).unwrap();
    assert_eq!(state_seq(&env.state, &relay), Some(2));
    // A batch behind the state stays a plain no-op.
    let o = util::open_cmd(&env, &relay, &r.key_file, &[&p1]).output();
    assert!(stdout(&o).ends_with("nothing to do\n"), "{}", stdout(&o));
    assert_eq!(state_seq(&env.state, &relay), Some(2));
}

#[test]
fn two_relays_keep_their_origins_and_chains() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut a = Relay::new();
    let mut b = Relay::new();
    let (s1, _) = good_submission("a1", &[("photo.txt", b"p")], &[&r.recipient]);
    let (s2, _) = good_submission("a2", &[], &[&r.recipient]);
    let (s3, _) = good_submission("b1", &[], &[&r.recipient]);
    let a1 = a.batch(std::slice::from_ref(&s1));
    let a2 = a.batch(std::slice::from_ref(&s2));
    let b1 = b.batch(std::slice::from_ref(&s3));
    let pa1 = a1.write(&env.path("a1.tar"));
    let pa2 = a2.write(&env.path("a2.tar"));
    let pb1 = b1.write(&env.path("b1.tar"));
    open(&env, &a, &r, &[&pa1, &pa2]).unwrap();
    open(&env, &b, &r, &[&pb1]).unwrap();

    // One chain per relay.
    assert_eq!(state_seq(&env.state, &a), Some(2));
    assert_eq!(state_seq(&env.state, &b), Some(1));

    // Each submission once, with its origin.
    let archive = Archive::open(&env.out).unwrap();
    assert_eq!(archive.len(), 3);
    for (sealed, relay, batch, seq) in [(&s1, &a, &a1, 1), (&s2, &a, &a2, 2), (&s3, &b, &b1, 1)] {
        let s = archive.submission(&sealed.id).unwrap();
        let m = batch.manifest();
        let entry: &ManifestEntry = m.submissions.iter().find(|e| e.id == sealed.id).unwrap();
        assert_eq!(s.origin.relay_key, relay.key);
        assert_eq!(s.origin.batch_sequence, seq);
        assert_eq!(s.origin.batch_id, m.batch_id);
        assert_eq!(s.origin.manifest_sha256, batch.manifest_sha256());
        assert_eq!(s.origin.ciphertext_sha256, entry.sha256);
        assert_eq!(s.origin.epoch, 1);
        assert!(s.also_received.is_empty());
        // Custody: the ciphertext and the manifest, verbatim.
        assert_eq!(
            std::fs::read(custody_ciphertext(&env.out, &relay.key, &sealed.id)).unwrap(),
            sealed.ciphertext
        );
        let dir = custody_batch_dir(&env.out, &relay.key, seq, &m.batch_id);
        assert_eq!(
            std::fs::read(dir.join("manifest.json")).unwrap(),
            batch.manifest_json
        );
        assert_eq!(
            std::fs::read(dir.join("manifest.sig")).unwrap(),
            batch.members[1].1
        );
    }
    assert_ne!(relay_fingerprint(&a.key), relay_fingerprint(&b.key));
    let records = archive.records().unwrap();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.status == Status::New && r.tags.is_empty())
    );
    // The attachment: original path, untouched, and a scrub verdict.
    let rec = records.iter().find(|x| x.id == s1.id).unwrap();
    let att = &rec.attachments[0];
    assert_eq!(
        att.original,
        Path::new(&s1.id.to_string()).join("files/01-photo.txt")
    );
    assert_eq!(std::fs::read(env.out.join(&att.original)).unwrap(), b"p");
    // Plain text: its copy for sharing is the file as sent.
    assert_eq!(att.metadata.scrub, ScrubOutcome::Scrubbed);
    assert_eq!(
        std::fs::read(env.out.join(att.scrubbed.as_ref().unwrap())).unwrap(),
        b"p"
    );

    // Relay B carries A's submission 1 again, byte for byte, with a new
    // one: nothing is duplicated, the new one is added, and B's custody
    // keeps the ciphertext it carried.
    let (s4, _) = good_submission("b2", &[], &[&r.recipient]);
    let b2 = b.batch(&[s1.clone(), s4.clone()]);
    let pb2 = b2.write(&env.path("b2.tar"));
    let folder_before = tree(&env.out.join(s1.id.to_string()));
    let o = open_bin(&env, &b, &r, &[&pb2]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "submission {} is already in the archive (from relay {} batch 1, same ciphertext): nothing added",
            s1.id,
            relay_fingerprint(&a.key)
        )),
        "{}",
        stdout(&o)
    );
    assert_eq!(tree(&env.out.join(s1.id.to_string())), folder_before);
    let archive = Archive::open(&env.out).unwrap();
    assert_eq!(archive.len(), 4);
    let s = archive.submission(&s1.id).unwrap();
    assert_eq!(s.origin.relay_key, a.key);
    assert_eq!(s.also_received.len(), 1);
    assert_eq!(s.also_received[0].relay_key, b.key);
    assert_eq!(s.also_received[0].batch_sequence, 2);
    assert!(archive.submission(&s4.id).is_some());
    assert!(custody_ciphertext(&env.out, &b.key, &s1.id).is_file());
    assert_eq!(state_seq(&env.state, &b), Some(2));
    // And the archive checks out.
    let report = reviewer::audit::verify_archive(&env.out, &[]).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        (report.batches, report.relays, report.submissions),
        (4, 2, 4)
    );
}

#[test]
fn open_keeps_originals_and_writes_scrubbed_copies() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scrub");
    let jpeg = std::fs::read(fixtures.join("photo.jpg")).unwrap();
    let pdf = std::fs::read(fixtures.join("document.pdf")).unwrap();
    let files: [(&str, &[u8]); 3] = [
        ("photo.jpg", &jpeg),
        ("statement.pdf", &pdf),
        ("notes.txt", b"plain notes"),
    ];
    let (s, _) = good_submission("with files", &files, &[&r.recipient]);
    let p = relay
        .batch(std::slice::from_ref(&s))
        .write(&env.path("b1.tar"));
    let o = open_bin(&env, &relay, &r, &[&p]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "reviewer: note: submission {}: 2 attachments flagged",
            s.id
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));

    let dir = env.out.join(s.id.to_string());
    let archive = Archive::open(&env.out).unwrap();
    let rec = archive.record(&s.id).unwrap();
    for (i, ((name, bytes), a)) in files.iter().zip(&rec.attachments).enumerate() {
        assert_eq!(a.name, *name);
        // Originals byte for byte, under their place and name.
        let written = format::disk_name(i, files.len(), name);
        assert_eq!(
            std::fs::read(dir.join("files").join(&written)).unwrap(),
            *bytes
        );
        assert_eq!(
            a.original,
            Path::new(&s.id.to_string()).join("files").join(&written)
        );
    }
    let [photo, statement, notes] = &rec.attachments[..] else {
        panic!("three attachments");
    };
    use reviewer::workbench::{FileKind, Finding};
    assert_eq!(photo.metadata.kind, FileKind::Jpeg);
    assert!(
        photo
            .metadata
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Gps { .. }))
    );
    assert_eq!(photo.metadata.scrub, ScrubOutcome::Scrubbed);
    let copy = env.out.join(photo.scrubbed.as_ref().unwrap());
    assert_eq!(copy, dir.join("shared/01-photo.jpg"));
    let copy_bytes = std::fs::read(&copy).unwrap();
    assert_ne!(copy_bytes, jpeg);
    assert!(!copy_bytes.windows(13).any(|w| w == b"Jane Reporter"));
    assert_eq!(statement.metadata.kind, FileKind::Pdf);
    assert!(
        statement
            .metadata
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Author { value } if value.contains("Reporter")))
    );
    // Plain text: not flagged, shared as sent.
    assert_eq!(notes.metadata.kind, FileKind::Text);
    assert_eq!(notes.metadata.scrub, ScrubOutcome::Scrubbed);
    assert!(notes.metadata.findings.is_empty());
    assert!(!reviewer::archive::is_flagged(notes));
    assert_eq!(
        std::fs::read(dir.join("shared/03-notes.txt")).unwrap(),
        b"plain notes"
    );

    // `show` says what was found and what not to share.
    let o = bin(&[&"show", &env.out, &s.id.to_string()]);
    let shown = stdout(&o);
    assert!(
        shown.contains("FLAG: GPS position in the original: 43.23895, 76.88971"),
        "{shown}"
    );
    assert!(
        shown.contains("FLAG: author name in the original: Jane Reporter"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "scrubbed copy for sharing: {}/shared/01-photo.jpg",
            s.id
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "copy for sharing (plain text, nothing to remove: the file as sent): {}/shared/03-notes.txt",
            s.id
        )),
        "{shown}"
    );
    // And the archive verifies, originals included.
    let report = reviewer::audit::verify_archive(&env.out, &[]).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.attachments, 3);
}

#[test]
fn plain_text_is_not_flagged_and_flags_say_why() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scrub");
    let heic = std::fs::read(fixtures.join("photo.heic")).unwrap();
    // Plain text in three forms: UTF-8 Kazakh, Markdown, and a CSV in
    // Windows-1251 (as Excel on a Russian Windows saves it).
    let txt = "Біз ауруханада болдық.\r\nЕкінші жол.\n"
        .as_bytes()
        .to_vec();
    let md = b"# Notes\n\n- *first*\n- second\n".to_vec();
    let csv: Vec<u8> = b"name;place\r\n\xc8\xe2\xe0\xed;\xc0\xeb\xec\xe0\xf2\xfb\r\n".to_vec();
    let texts: [(&str, &[u8]); 3] = [("notes.txt", &txt), ("README.md", &md), ("table.csv", &csv)];
    let (plain, _) = good_submission("notes", &texts, &[&r.recipient]);
    // Still flagged: a HEIC (cannot be scrubbed), bytes that are no known
    // type, and bytes that are not text whatever their name says.
    let blob: Vec<u8> = (0u8..=255).cycle().take(4096).collect();
    let fake: &[u8] = b"looks like text\0\0\0\x01\x02 but is not";
    let flagged: [(&str, &[u8]); 3] = [
        ("iphone.heic", &heic),
        ("blob.bin", &blob),
        ("fake.txt", fake),
    ];
    let (other, _) = good_submission("other files", &flagged, &[&r.recipient]);
    let p = relay
        .batch(&[plain.clone(), other.clone()])
        .write(&env.path("b1.tar"));
    let o = open_bin(&env, &relay, &r, &[&p]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The note names only the submission with flagged files.
    let err = stderr(&o);
    assert!(!err.contains(&plain.id.to_string()), "{err}");
    assert!(
        err.contains(&format!("submission {}: 3 attachments flagged", other.id)),
        "{err}"
    );

    // list: FILES 3 (none flagged) and 3!3; in JSON, flagged 0 and 3.
    let files_of = |search: &str| {
        let o = bin(&[&"list", &env.out, &"--search", &search]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains("FILES"), "{out}");
        // ID, RECEIVED, STATUS, CATEGORY, REGION are 12, 10, 9, 18 and 18
        // characters wide, each followed by two spaces.
        let files: String = lines[1].chars().skip(77).take(5).collect();
        (files.trim().to_owned(), out)
    };
    let (files, out) = files_of("notes");
    assert_eq!(files, "3", "{out}");
    assert!(!out.contains("k of n attachments flagged"), "{out}");
    let (files, out) = files_of("other files");
    assert_eq!(files, "3!3", "{out}");
    let o = bin(&[&"list", &env.out, &"--format", &"json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let flagged = |s: &Sealed| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == s.id.to_string())
            .unwrap()["flagged"]
            .clone()
    };
    assert_eq!(flagged(&plain), 0);
    assert_eq!(flagged(&other), 3);

    // show: no FLAG line for the text files; each is shared as sent.
    let o = bin(&[&"show", &env.out, &plain.id.to_string()]);
    let shown = stdout(&o);
    assert!(!shown.contains("FLAG"), "{shown}");
    for (i, (name, bytes)) in texts.iter().enumerate() {
        let disk = format::disk_name(i, texts.len(), name);
        assert!(
            shown.contains(&format!(
                "copy for sharing (plain text, nothing to remove: the file as sent): {}/shared/{disk}",
                plain.id
            )),
            "{shown}"
        );
        let dir = env.out.join(plain.id.to_string());
        assert_eq!(
            std::fs::read(dir.join("shared").join(&disk)).unwrap(),
            *bytes
        );
    }
    assert_eq!(shown.matches("kind: plain text").count(), 3, "{shown}");

    // show: every flag says why.
    let o = bin(&[&"show", &env.out, &other.id.to_string()]);
    let shown = stdout(&o);
    assert!(
        shown.contains("FLAG: no scrubbed copy: this type cannot be scrubbed (no maintained crate rewrites HEIC"),
        "{shown}"
    );
    assert!(
        shown.contains("FLAG: GPS position in the original"),
        "{shown}"
    );
    assert_eq!(
        shown
            .matches("FLAG: no scrubbed copy: this type cannot be scrubbed (type not recognised")
            .count(),
        2,
        "{shown}"
    );
    let dir = env.out.join(other.id.to_string());
    assert!(!dir.join("shared").exists());

    // The report: the text files are shared copies, not flagged; the rest
    // are flagged with their reason.
    let site = env.path("site");
    let o = bin(&[&"report", &env.out, &"--out", &site]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = |s: &Sealed| {
        let src = std::fs::read_to_string(site.join("submissions").join(format!("{}.html", s.id)))
            .unwrap();
        testkit::html::parse(&src).unwrap()
    };
    let page_plain = page(&plain);
    for i in 1..=3 {
        let panel = page_plain.by_id(&format!("file-{i}")).unwrap();
        assert!(!panel.has_class("flagged"), "{}", panel.text());
        assert!(panel.text().contains("plain text"), "{}", panel.text());
    }
    let page_other = page(&other);
    for (i, why) in [
        (
            1,
            "no scrubbed copy: this type cannot be scrubbed (no maintained crate",
        ),
        (
            1,
            "the original carries GPS coordinates: 43.238949, 76.889709",
        ),
        (
            2,
            "no scrubbed copy: this type cannot be scrubbed (type not recognised",
        ),
        (
            3,
            "no scrubbed copy: this type cannot be scrubbed (type not recognised",
        ),
    ] {
        let panel = page_other.by_id(&format!("file-{i}")).unwrap();
        assert!(panel.has_class("flagged"));
        let flags: Vec<String> = panel
            .all()
            .into_iter()
            .filter(|e| e.name == "li" && e.has_class("flag"))
            .map(|e| e.text())
            .collect();
        assert!(flags.iter().any(|f| f.contains(why)), "{flags:?}");
    }
}

#[test]
fn the_same_id_with_another_ciphertext_is_refused() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut a = Relay::new();
    let mut b = Relay::new();
    let (s1, _) = good_submission("original", &[], &[&r.recipient]);
    let pa1 = a
        .batch(std::slice::from_ref(&s1))
        .write(&env.path("a1.tar"));
    open(&env, &a, &r, &[&pa1]).unwrap();
    let out_before = tree(&env.out);

    // Another relay, the same id, other content.
    let (mut forged, _) = good_submission("forged", &[], &[&r.recipient]);
    forged.id = s1.id;
    let (s2, _) = good_submission("innocent", &[], &[&r.recipient]);
    let pb1 = b.batch(&[s2, forged]).write(&env.path("b1.tar"));
    let e = open(&env, &b, &r, &[&pb1]).unwrap_err();
    assert!(
        matches!(&e, Error::Archive(reviewer::archive::ArchiveError::SubmissionConflict { id, archived_sequence: 1, .. }) if *id == s1.id),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("another ciphertext") && msg.contains("nothing from the batch was written"),
        "{msg}"
    );
    assert_eq!(tree(&env.out), out_before);
    assert_eq!(state_seq(&env.state, &b), None);

    // The same relay, a later batch, the same id with other content.
    let (mut again, _) = good_submission("forged again", &[], &[&r.recipient]);
    again.id = s1.id;
    let pa2 = a.batch(&[again]).write(&env.path("a2.tar"));
    let e = open(&env, &a, &r, &[&pa2]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Archive(reviewer::archive::ArchiveError::SubmissionConflict { .. })
        ),
        "{e}"
    );
    assert_eq!(tree(&env.out), out_before);
    assert_eq!(state_seq(&env.state, &a), Some(1));
}

// ------------------------------------------------------------------ triage

/// An archive of five submissions with varied answers, days and threads:
/// (env, ids by letter, thread id).
struct Triaged {
    env: Env,
    ids: BTreeMap<char, SubmissionId>,
    thread: ThreadId,
}

impl Triaged {
    fn id(&self, c: char) -> String {
        self.ids[&c].to_string()
    }

    /// The ids `reviewer list DIR ARGS… --format json` prints, as letters.
    fn list(&self, args: &[&str]) -> String {
        let mut all: Vec<&dyn AsRef<OsStr>> = vec![&"list", &self.env.out];
        for a in args {
            all.push(a);
        }
        all.extend([&"--format" as &dyn AsRef<OsStr>, &"json"]);
        let o = bin(&all);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut letters: Vec<char> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let id = s["id"].as_str().unwrap();
                *self
                    .ids
                    .iter()
                    .find(|(_, v)| v.to_string() == id)
                    .unwrap()
                    .0
            })
            .collect();
        letters.sort();
        letters.into_iter().collect()
    }
}

fn triaged() -> Triaged {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let src = util::source();
    let thread = util::new_thread_id();
    let a = submission(
        &r,
        &[
            ("category", "health", Some("Health care")),
            ("region", "aktobe", Some("Aktobe Region")),
        ],
        "Doctors were ARRESTED at the clinic",
        &[("scan.txt", b"scan")],
    );
    let b = submission(
        &r,
        &[
            ("category", "speech", Some("Speech")),
            ("region", "aktobe", Some("Aktobe Region")),
        ],
        "a post about the mayor",
        &[],
    );
    let c = submission(
        &r,
        &[
            (
                "category",
                "health",
                Some("Health care and medical workers"),
            ),
            ("region", "almaty", Some("Almaty")),
        ],
        "Хирург уволен",
        &[],
    );
    let d = submission(
        &r,
        &[
            ("category", "speech", Some("Speech")),
            ("region", "almaty", Some("Almaty")),
        ],
        "nothing more",
        &[],
    )
    .in_thread(thread, &src.recipient);
    let e = submission(&r, &[("category", "other", None)], "follow-up", &[])
        .in_thread(thread, &src.recipient);
    let p1 = batch_on_days(
        &mut relay,
        &[(&a, "2026-11-01"), (&b, "2026-11-10"), (&c, "2026-11-20")],
    )
    .write(&env.path("b1.tar"));
    let p2 = batch_on_days(&mut relay, &[(&d, "2026-11-30"), (&e, "2026-12-05")])
        .write(&env.path("b2.tar"));
    open(&env, &relay, &r, &[&p1, &p2]).unwrap();
    let ids = [
        ('a', a.id),
        ('b', b.id),
        ('c', c.id),
        ('d', d.id),
        ('e', e.id),
    ]
    .into_iter()
    .collect();
    let t = Triaged { env, ids, thread };
    let dir = &t.env.out;
    for (who, status) in [('a', "reviewing"), ('c', "verified"), ('d', "discarded")] {
        run(&[&"status", dir, &t.id(who), &status]).unwrap();
    }
    run(&[&"tag", dir, &t.id('a'), &"urgent", &"medical"]).unwrap();
    run(&[&"tag", dir, &t.id('c'), &"medical"]).unwrap();
    run(&[&"tag", dir, &t.id('e'), &"urgent"]).unwrap();
    t
}

#[test]
fn list_filters_select_exactly_what_they_should() {
    let t = triaged();
    let thread = t.thread.to_string();
    let cases: &[(&[&str], &str)] = &[
        (&[], "abcde"),
        (&["--category", "health"], "ac"),
        (&["--category", "Health care"], ""),
        (&["--region", "aktobe"], "ab"),
        (&["--status", "new"], "be"),
        (&["--status", "verified"], "c"),
        (&["--status", "published"], ""),
        (&["--tag", "urgent"], "ae"),
        (&["--tag", "urgent", "--tag", "medical"], "a"),
        (&["--tag", "nobody-uses-this"], ""),
        (&["--from", "2026-11-10"], "bcde"),
        (&["--to", "2026-11-10"], "ab"),
        (&["--from", "2026-11-10", "--to", "2026-11-20"], "bc"),
        (&["--search", "arrested"], "a"),
        (&["--search", "ХИРУРГ"], "c"),
        (&["--search", "medical workers"], "c"),
        (&["--search", "aktobe"], "ab"),
        (&["--thread", &thread], "de"),
        (&["--thread", &thread[..8]], "de"),
        (
            &[
                "--category",
                "health",
                "--tag",
                "medical",
                "--status",
                "verified",
            ],
            "c",
        ),
        (&["--region", "almaty", "--from", "2026-11-25"], "d"),
        (
            &[
                "--category",
                "speech",
                "--search",
                "mayor",
                "--to",
                "2026-11-01",
            ],
            "",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(t.list(args), *want, "{args:?}");
    }

    // The table: one line per submission, the ids' first 12 digits.
    let o = bin(&[&"list", &t.env.out, &"--status", &"new"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.contains(&t.id('b')[..12]), "{out}");
    assert!(out.ends_with("2 of 5 submissions\n"), "{out}");
    let o = bin(&[&"list", &t.env.out, &"--region", &"nowhere"]);
    assert_eq!(stdout(&o), "no submission matches (5 in the archive)\n");
}

#[test]
fn triage_round_trips_and_stays_out_of_the_index() {
    let t = triaged();
    let dir = &t.env.out;
    let index_before = std::fs::read(dir.join("archive.json")).unwrap();

    let records = Archive::open(dir).unwrap().records().unwrap();
    let get = |c: char| records.iter().find(|r| r.id == t.ids[&c]).unwrap();
    assert_eq!(get('a').status, Status::Reviewing);
    assert_eq!(get('c').status, Status::Verified);
    assert_eq!(get('b').status, Status::New);
    let tags = |c: char| get(c).tags.iter().cloned().collect::<Vec<_>>().join(" ");
    assert_eq!(tags('a'), "medical urgent");
    assert_eq!(tags('e'), "urgent");

    // Removing, and setting back to new, round-trip too.
    run(&[&"tag", dir, &t.id('a'), &"urgent", &"--remove"]).unwrap();
    run(&[&"status", dir, &t.id('a'), &"new"]).unwrap();
    let again = Archive::open(dir).unwrap();
    let a = again.record(&t.ids[&'a']).unwrap();
    assert_eq!(a.status, Status::New);
    assert_eq!(a.tags.iter().collect::<Vec<_>>(), ["medical"]);
    // The index (the chain of custody) is never rewritten by triage.
    assert_eq!(
        std::fs::read(dir.join("archive.json")).unwrap(),
        index_before
    );
    #[cfg(unix)]
    assert_eq!(util::mode(&dir.join("triage.json")), 0o600);
    let triage = std::fs::read_to_string(dir.join("triage.json")).unwrap();
    assert!(triage.contains("relay-archive-triage/1"), "{triage}");
    assert!(
        !triage.contains("Хирург"),
        "content leaked into triage.json"
    );
}

#[test]
fn ids_may_be_unique_prefixes() {
    let t = triaged();
    let dir = &t.env.out;
    let full = t.id('c');
    // The harness's ids share their last 16 digits and their first 10:
    // digits 0..16 are unique.
    let prefix = &full[..16];
    let o = bin(&[&"show", dir, &prefix]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = stdout(&o);
    assert!(
        shown.starts_with(&format!(
            "Submission {full}\nStatus: verified\nTags: medical\n"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("Question category: Health care and medical workers (health)  [category]"),
        "{shown}"
    );
    assert!(shown.contains("Text:\nХирург уволен\n"), "{shown}");
    assert!(shown.contains("Chain of custody:\n"), "{shown}");

    run(&[&"status", dir, &full.to_uppercase(), &"published"]).unwrap();
    assert_eq!(
        Archive::open(dir)
            .unwrap()
            .record(&t.ids[&'c'])
            .unwrap()
            .status,
        Status::Published
    );
    let e = run(&[&"status", dir, &&full[..6], &"new"]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Archive(reviewer::archive::ArchiveError::AmbiguousSubmission { matches: 5, .. })
        ),
        "{e}"
    );
    let e = run(&[&"show", dir, &&full[..5]]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Archive(reviewer::archive::ArchiveError::BadSubmissionId { .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("at least 6"), "{e}");
    let e = run(&[&"show", dir, &"ffffffffffff"]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Archive(reviewer::archive::ArchiveError::UnknownSubmission { .. })
        ),
        "{e}"
    );
    let e = run(&[&"show", dir, &"not-hex!"]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Archive(reviewer::archive::ArchiveError::BadSubmissionId { .. })
        ),
        "{e}"
    );
}

#[test]
fn bad_status_and_tags_are_refused_and_change_nothing() {
    let t = triaged();
    let dir = &t.env.out;
    let before = std::fs::read(dir.join("triage.json")).unwrap();
    let id = t.id('b');
    let e = run(&[&"status", dir, &id, &"done"]).unwrap_err();
    assert!(matches!(e, Error::Usage(_)), "{e}");
    assert!(e.to_string().contains("reviewing"), "{e}");
    for bad in ["Urgent", "two words", "a_b", "é", "a.b", &"x".repeat(41)] {
        let e = run(&[&"tag", dir, &id, &"fine", &bad]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Archive(reviewer::archive::ArchiveError::BadTag { .. })
            ),
            "{bad}: {e}"
        );
    }
    let e = run(&[&"list", dir, &"--tag", &"Bad"]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Archive(reviewer::archive::ArchiveError::BadTag { .. })
        ),
        "{e}"
    );
    assert_eq!(std::fs::read(dir.join("triage.json")).unwrap(), before);
    // A directory that is no archive.
    let e = run(&[&"list", &t.env.path("nowhere")]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Archive(reviewer::archive::ArchiveError::NotAnArchive { .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("reviewer open"), "{e}");
}

// ------------------------------------------------------------------ export

#[test]
fn exports_hold_the_answers_escaped_and_no_text_unless_asked() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let text = "TEXT-CANARY the testimony";
    let hostile = submission(
        &r,
        &[
            ("category", "health", Some("Health care")),
            ("region", "=HYPERLINK(\"http://evil.example\",\"x\")", None),
            ("extra", "@SUM(1)", None),
        ],
        text,
        &[("a.txt", b"a"), ("b.txt", b"b")],
    );
    let plain = submission(
        &r,
        &[("category", "speech", Some("Speech"))],
        "-rm -rf",
        &[],
    );
    let batch = batch_on_days(
        &mut relay,
        &[(&hostile, "2026-11-02"), (&plain, "2026-11-03")],
    );
    let p = batch.write(&env.path("b1.tar"));
    open(&env, &relay, &r, &[&p]).unwrap();
    run(&[
        &"tag",
        &env.out,
        &hostile.id.to_string(),
        &"urgent",
        &"medical",
    ])
    .unwrap();
    run(&[&"status", &env.out, &plain.id.to_string(), &"verified"]).unwrap();

    // CSV, no text.
    let csv_path = env.path("answers.csv");
    run(&[
        &"export",
        &env.out,
        &"--format",
        &"csv",
        &"--out",
        &csv_path,
    ])
    .unwrap();
    #[cfg(unix)]
    assert_eq!(util::mode(&csv_path), 0o600);
    let bytes = std::fs::read(&csv_path).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("CANARY"));
    let mut rd = csv::Reader::from_reader(&bytes[..]);
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "id",
            "received_day",
            "relay",
            "batch_sequence",
            "thread",
            "status",
            "tags",
            "language",
            "category",
            "category_label",
            "extra",
            "extra_label",
            "region",
            "region_label",
            "attachments",
        ]
    );
    let rows: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    let fp = relay_fingerprint(&relay.key);
    let h = rows
        .iter()
        .find(|r| r[0] == hostile.id.to_string())
        .unwrap();
    assert_eq!(
        h,
        &[
            hostile.id.to_string(),
            "2026-11-02".into(),
            fp.clone(),
            "1".into(),
            String::new(),
            "new".into(),
            "medical urgent".into(),
            "ru".into(),
            "health".into(),
            "Health care".into(),
            "'@SUM(1)".into(),
            String::new(),
            "'=HYPERLINK(\"http://evil.example\",\"x\")".into(),
            String::new(),
            "2".into(),
        ]
    );
    let p_row = rows.iter().find(|r| r[0] == plain.id.to_string()).unwrap();
    assert_eq!(p_row[5], "verified");
    assert_eq!(&p_row[8..15], ["speech", "Speech", "", "", "", "", "0"]);

    // CSV with text: the last column, escaped like every cell.
    let with = env.path("with-text.csv");
    run(&[
        &"export",
        &env.out,
        &"--format",
        &"csv",
        &"--with-text",
        &"--out",
        &with,
    ])
    .unwrap();
    let mut rd = csv::Reader::from_path(&with).unwrap();
    assert_eq!(rd.headers().unwrap().iter().next_back(), Some("text"));
    let texts: Vec<String> = rd.records().map(|r| r.unwrap()[15].to_owned()).collect();
    assert!(texts.contains(&text.to_owned()), "{texts:?}");
    assert!(texts.contains(&"'-rm -rf".to_owned()), "{texts:?}");

    // JSON: exact values, typed.
    let json_path = env.path("answers.json");
    run(&[
        &"export",
        &env.out,
        &"--format",
        &"json",
        &"--out",
        &json_path,
    ])
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(v["format"], "relay-export/1");
    assert_eq!(v["columns"].as_array().unwrap().len(), 15);
    let subs = v["submissions"].as_array().unwrap();
    let h = subs
        .iter()
        .find(|s| s["id"] == hostile.id.to_string())
        .unwrap();
    assert_eq!(h["region"], "=HYPERLINK(\"http://evil.example\",\"x\")");
    assert_eq!(h["extra"], "@SUM(1)");
    assert_eq!(h["category_label"], "Health care");
    assert_eq!(h["region_label"], serde_json::Value::Null);
    assert_eq!(h["batch_sequence"], 1);
    assert_eq!(h["attachments"], 2);
    assert_eq!(h["tags"], serde_json::json!(["medical", "urgent"]));
    assert_eq!(h["relay"], fp);
    assert_eq!(h["thread"], serde_json::Value::Null);
    assert!(h.get("text").is_none());
    let p = subs
        .iter()
        .find(|s| s["id"] == plain.id.to_string())
        .unwrap();
    assert_eq!(p["region"], serde_json::Value::Null);
    let json_text = std::fs::read_to_string(&json_path).unwrap();
    assert!(!json_text.contains("CANARY"));

    // Filters apply; an existing output is never overwritten.
    let o = bin(&[
        &"export",
        &env.out,
        &"--format",
        &"json",
        &"--with-text",
        &"--status",
        &"verified",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["submissions"].as_array().unwrap().len(), 1);
    assert_eq!(v["submissions"][0]["text"], "-rm -rf");
    let e = run(&[
        &"export",
        &env.out,
        &"--format",
        &"csv",
        &"--out",
        &csv_path,
    ])
    .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
}

#[test]
fn excel_csv_starts_with_a_bom_and_round_trips_kazakh() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let place = "Қазақстан, Өскемен";
    let text = "Біз ауруханада болдық.\nЕкінші жол: «дәрігерлер»; \"тырнақша\"";
    let s = submission(
        &r,
        &[
            ("category", "health", Some("Денсаулық сақтау")),
            ("region", place, None),
        ],
        text,
        &[],
    );
    let p = batch_on_days(&mut relay, &[(&s, "2026-11-02")]).write(&env.path("b1.tar"));
    open(&env, &relay, &r, &[&p]).unwrap();

    // The plain export has no mark (scripts read it as it is).
    let plain = env.path("plain.csv");
    let o = bin(&[&"export", &env.out, &"--format", &"csv", &"--out", &plain]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = std::fs::read(&plain).unwrap();
    assert!(!plain.starts_with(b"\xEF\xBB\xBF"));
    assert!(!plain.contains(&b'\r'));

    for (delimiter, byte) in [(None, b','), (Some("semicolon"), b';')] {
        let path = env.path(&format!("excel-{byte}.csv"));
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![
            &"export",
            &env.out,
            &"--format",
            &"csv",
            &"--excel",
            &"--with-text",
            &"--out",
            &path,
        ];
        if let Some(d) = &delimiter {
            args.push(&"--delimiter");
            args.push(d);
        }
        let o = bin(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "no byte-order mark");
        let body = &bytes[3..];
        // Every record ends with CRLF (the text's own line break is inside
        // its quoted cell, as the source wrote it).
        assert!(body.ends_with(b"\r\n"));
        let rd_bytes = body.to_vec();
        let mut rd = csv::ReaderBuilder::new()
            .delimiter(byte)
            .from_reader(&rd_bytes[..]);
        let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header[0], "id", "the mark is not part of the first name");
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(&row[col("id")], s.id.to_string());
        assert_eq!(&row[col("region")], place);
        assert_eq!(&row[col("category_label")], "Денсаулық сақтау");
        assert_eq!(&row[col("text")], text);
        // Two records (header and row), each ended by CRLF: no bare LF
        // but the one inside the text.
        let lf = body.iter().filter(|b| **b == b'\n').count();
        let crlf = body.windows(2).filter(|w| w == b"\r\n").count();
        assert_eq!((lf, crlf), (3, 2), "{}", String::from_utf8_lossy(body));
    }

    // They shape a CSV: with JSON they are a usage error, and nothing is
    // written.
    let json = env.path("x.json");
    let o = bin(&[
        &"export",
        &env.out,
        &"--format",
        &"json",
        &"--excel",
        &"--out",
        &json,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--format csv"), "{}", stderr(&o));
    assert!(!json.exists());
}

// ---------------------------------------------------------- verify-archive

/// An archive of two batches from one relay, with an attachment.
struct Audited {
    env: Env,
    relay: Relay,
    s1: Sealed,
    batch1: Batch,
}

fn audited() -> Audited {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission(
        "one",
        &[("evidence.txt", b"original bytes")],
        &[&r.recipient],
    );
    let (s2, _) = good_submission("two", &[], &[&r.recipient]);
    let batch1 = relay.batch(std::slice::from_ref(&s1));
    let p1 = batch1.write(&env.path("b1.tar"));
    let p2 = relay.batch(&[s2]).write(&env.path("b2.tar"));
    open(&env, &relay, &r, &[&p1, &p2]).unwrap();
    Audited {
        env,
        relay,
        s1,
        batch1,
    }
}

/// The problems `verify-archive` finds in a copy of the archive after
/// `tamper` changed it.
fn problems_after(a: &Audited, name: &str, tamper: impl FnOnce(&Path)) -> Vec<String> {
    let copy = a.env.path(name);
    copy_tree(&a.env.out, &copy);
    tamper(&copy);
    reviewer::audit::verify_archive(&copy, &[])
        .unwrap()
        .problems
}

#[test]
fn verify_archive_passes_on_a_fresh_archive() {
    let a = audited();
    let key = a.relay.key.clone();
    let o = bin(&[&"verify-archive", &a.env.out, &"--relay-key", &key]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        "checked 2 batches from 1 relay, 2 submissions, 1 original attachment: no problem\n"
    );
    // Without --relay-key: checked with the recorded keys, and it says so.
    let report = reviewer::audit::verify_archive(&a.env.out, &[]).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report.notes[0].contains("pass --relay-key"),
        "{:?}",
        report.notes
    );
    // Another relay's key: every batch is a problem.
    let other = Relay::new();
    let o = bin(&[&"verify-archive", &a.env.out, &"--relay-key", &other.key]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("which is not one of the --relay-key keys"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn verify_archive_catches_a_flipped_ciphertext_byte() {
    let a = audited();
    let id = a.s1.id;
    let key = a.relay.key.clone();
    let p = problems_after(&a, "flipped", |dir| {
        flip_byte(&custody_ciphertext(dir, &key, &id), 100);
    });
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains(&format!(
            "kept ciphertext of submission {id} does not match the signed manifest"
        )),
        "{p:?}"
    );
}

#[test]
fn verify_archive_catches_an_edited_manifest() {
    let a = audited();
    let key = a.relay.key.clone();
    let m = a.batch1.manifest();
    let p = problems_after(&a, "edited-manifest", |dir| {
        let path = custody_batch_dir(dir, &key, 1, &m.batch_id).join("manifest.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("2026-11-27", "2026-11-26")).unwrap();
    });
    assert!(
        p.iter()
            .any(|l| l.contains("batch 1: its manifest.json is not the one archived")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|l| l.contains("manifest.sig does not verify")),
        "{p:?}"
    );
}

#[test]
fn verify_archive_catches_an_edited_original_attachment() {
    let a = audited();
    let id = a.s1.id;
    let p = problems_after(&a, "edited-original", |dir| {
        let path = dir.join(id.to_string()).join("files/01-evidence.txt");
        std::fs::write(path, b"original bytez").unwrap();
    });
    assert_eq!(
        p,
        [format!(
            "submission {id}: the original of attachment 1 of 1 differs from testimony.json (size or SHA-256): it was altered"
        )]
    );
    // An edited testimony.json, too.
    let p = problems_after(&a, "edited-testimony", |dir| {
        let path = dir.join(id.to_string()).join("testimony.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"one\"", "\"ONE\"")).unwrap();
    });
    assert_eq!(
        p,
        [format!(
            "submission {id}: testimony.json was changed after it was decrypted (SHA-256 differs)"
        )]
    );
}

#[test]
fn verify_archive_catches_a_deleted_ciphertext() {
    let a = audited();
    let id = a.s1.id;
    let key = a.relay.key.clone();
    let copy = a.env.path("deleted");
    copy_tree(&a.env.out, &copy);
    std::fs::remove_file(custody_ciphertext(&copy, &key, &id)).unwrap();
    let o = bin(&[&"verify-archive", &copy]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l.starts_with("problem: relay ")
            && l.contains(&format!(
                "the kept ciphertext of submission {id} is missing"
            ))),
        "{out}"
    );
    assert!(out.ends_with(": 1 problem\n"), "{out}");
    assert!(
        stderr(&o).starts_with("reviewer: the archive "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verify_archive_reports_a_fork_as_a_problem_and_a_gap_as_a_note() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[], &[&r.recipient]);
    let p1 = relay.batch(&[s1]).write(&env.path("b1.tar"));
    open(&env, &relay, &r, &[&p1]).unwrap();

    // A batch 2 that does not chain to batch 1 (the relay's history
    // forked), accepted through another chain state.
    let (s2, _) = good_submission("fork", &[], &[&r.recipient]);
    let forked = relay.batch_at(2, Some(format::Digest::of(b"another history")), &[s2]);
    let p2 = forked.write(&env.path("b2.tar"));
    open_off_chain(&env, &env.path("other-state"), &relay, &r, &p2, 2);
    let report = reviewer::audit::verify_archive(&env.out, &[]).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("batch 2: it does not chain to batch 1"),
        "{:?}",
        report.problems
    );

    // A gap (batch 4 opened with --start-at, 3 never opened here): a
    // note, not a problem.
    let env = Env::new();
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[], &[&r.recipient]);
    let p1 = relay.batch(&[s1]).write(&env.path("b1.tar"));
    open(&env, &relay, &r, &[&p1]).unwrap();
    for n in 2..=3 {
        let (s, _) = good_submission(&format!("never opened {n}"), &[], &[&r.recipient]);
        let _ = relay.batch(&[s]);
    }
    let (s4, _) = good_submission("four", &[], &[&r.recipient]);
    let p4 = relay.batch(&[s4]).write(&env.path("b4.tar"));
    open_off_chain(&env, &env.path("gap-state"), &relay, &r, &p4, 4);
    let o = bin(&[&"verify-archive", &env.out]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("note: relay ")
            && stdout(&o).contains("batches 2 to 3 are not in this archive"),
        "{}",
        stdout(&o)
    );
}

// ------------------------------------------------------------------ report

#[test]
fn report_writes_a_site() {
    let t = triaged();
    let site = t.env.path("site");
    let o = bin(&[
        &"report",
        &t.env.out,
        &"--out",
        &site,
        &"--title",
        &"November",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(site.join("index.html").is_file());
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "open {} in a browser",
            site.join("index.html").display()
        )),
        "{out}"
    );
    // Refuses to write into a directory that holds something.
    let o = bin(&[&"report", &t.env.out, &"--out", &site]);
    assert_eq!(o.status.code(), Some(1));
}

/// Every file below `dir` whose bytes are exactly one of `originals`.
fn copies_of(dir: &Path, originals: &[&[u8]]) -> Vec<PathBuf> {
    testkit::files(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            originals.iter().any(|o| bytes == *o)
        })
        .collect()
}

#[test]
fn report_holds_scrubbed_copies_only_unless_with_originals() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scrub");
    // A photo with GPS coordinates and a camera owner's name in its EXIF,
    // and an iPhone photo no build can scrub.
    let jpeg = std::fs::read(fixtures.join("photo.jpg")).unwrap();
    let heic = std::fs::read(fixtures.join("photo.heic")).unwrap();
    let health = submission(
        &r,
        &[("category", "health", Some("Health care"))],
        "the clinic",
        &[("photo.jpg", &jpeg), ("iphone.heic", &heic)],
    );
    let speech = submission(
        &r,
        &[("category", "speech", Some("Speech"))],
        "the mayor",
        &[("poster.jpg", &jpeg)],
    );
    let p = batch_on_days(
        &mut relay,
        &[(&health, "2026-11-02"), (&speech, "2026-11-03")],
    )
    .write(&env.path("b1.tar"));
    open(&env, &relay, &r, &[&p]).unwrap();
    let originals: [&[u8]; 2] = [&jpeg, &heic];

    // By default: scrubbed copies only. No file anywhere in the report is
    // an original, byte for byte.
    let site = env.path("site");
    let o = bin(&[&"report", &env.out, &"--out", &site]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(copies_of(&site, &originals), Vec::<PathBuf>::new());
    let shared = site
        .join("files")
        .join(health.id.to_string())
        .join("shared");
    assert!(shared.join("photo.jpg").is_file());
    assert!(
        !site
            .join("files")
            .join(health.id.to_string())
            .join("original")
            .exists()
    );
    let out = stdout(&o);
    assert!(out.contains("scrubbed copies only"), "{out}");
    assert!(
        out.contains("1 file with no scrubbed copy left out"),
        "{out}"
    );
    // The HEIC is listed, with why, and says how to include it.
    let page =
        std::fs::read_to_string(site.join("submissions").join(format!("{}.html", health.id)))
            .unwrap();
    let page = testkit::html::parse(&page).unwrap();
    let heic_panel = page.by_id("file-2").unwrap();
    let text = heic_panel.text();
    assert!(text.contains("iphone.heic"), "{text}");
    assert!(text.contains("HEIC image"), "{text}");
    assert!(text.contains("cannot be scrubbed"), "{text}");
    assert!(text.contains("Left out of this report"), "{text}");
    assert!(text.contains("--with-originals"), "{text}");
    assert!(heic_panel.elements("a").is_empty());

    // With --with-originals: both originals are in it.
    let full = env.path("full");
    let o = bin(&[&"report", &env.out, &"--out", &full, &"--with-originals"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let copies = copies_of(&full, &originals);
    for original in originals {
        assert!(
            copies.iter().any(|p| std::fs::read(p).unwrap() == original),
            "{copies:?}"
        );
    }
    assert!(stdout(&o).contains("originals included"), "{}", stdout(&o));

    // list's filters: a submission that does not match has no page and no
    // files in the report, and the dashboard says it is a selection.
    for (args, kept, left) in [
        (vec!["--category", "health"], &health, &speech),
        (vec!["--from", "2026-11-03"], &speech, &health),
        (
            vec!["--status", "new", "--to", "2026-11-02"],
            &health,
            &speech,
        ),
    ] {
        let site = env.path(&format!("filtered-{}", args.join("")));
        let mut cmd: Vec<&dyn AsRef<OsStr>> = vec![&"report", &env.out, &"--out", &site];
        for a in &args {
            cmd.push(a);
        }
        let o = bin(&cmd);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let page = |s: &Sealed| site.join("submissions").join(format!("{}.html", s.id));
        assert!(page(kept).is_file(), "{args:?}");
        assert!(!page(left).exists(), "{args:?}");
        assert!(
            !site.join("files").join(left.id.to_string()).exists(),
            "{args:?}"
        );
        let index = std::fs::read_to_string(site.join("index.html")).unwrap();
        assert!(!index.contains(&left.id.to_string()), "{args:?}");
        assert!(index.contains("id=\"filtered\""), "{args:?}");
    }
}

// -------------------------------------------------------------------- help

#[test]
fn every_command_has_examples_in_its_help() {
    for cmd in [
        "keygen",
        "fetch",
        "verify",
        "open",
        "ack",
        "retire-epoch",
        "threads",
        "reply",
        "push",
        "list",
        "show",
        "tag",
        "status",
        "export",
        "report",
        "verify-archive",
    ] {
        let o = bin(&[&cmd, &"--help"]);
        assert!(o.status.success(), "{cmd}");
        let help = stdout(&o);
        assert!(help.contains("\nExamples:\n"), "{cmd}: {help}");
        assert!(help.contains(&format!("reviewer {cmd} ")), "{cmd}: {help}");
    }
    let o = bin(&[&"export", &"--help"]);
    assert!(stdout(&o).contains("leading apostrophe"), "{}", stdout(&o));
}
