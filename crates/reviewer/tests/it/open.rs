//! `reviewer open`: decrypted bytes are exact and private; a hostile
//! plaintext is quarantined and the rest of its batch opens; wrong keys and
//! wrong passphrases refuse the batch and leave nothing behind; the chain
//! state advances only after a successful open.
#![allow(clippy::unwrap_used)]

use crate::util;

use std::ffi::OsStr;
use std::path::Path;

use format::{Digest, Receipt, SubmissionId};
use reviewer::Error;
use reviewer::identity::{Identity, PassphraseSource, Protection};
use reviewer::state::{ChainAnchor, StateStore};
use util::{Entry, Env, Relay, assert_empty, good_submission, open, open_cmd, reviewer, run, tree};

fn open_with(
    env: &Env,
    relay: &Relay,
    identity: &Path,
    batches: &[&Path],
    extra: &[&dyn AsRef<OsStr>],
) -> Result<(), Error> {
    reviewer::run(open_cmd(env, relay, identity, batches).args(extra).argv())
}

fn state_seq(env: &Env, relay: &Relay) -> Option<u64> {
    StateStore::new(&env.state)
        .load(&relay.key)
        .unwrap()
        .map(|s| s.sequence)
}

/// Pseudo-random bytes (a simple LCG; content only needs to differ).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

#[test]
fn open_writes_exact_bytes_into_private_files() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let other = reviewer(env.dir.path(), "other.key");
    let mut relay = Relay::new();

    let photo = noise(3 * 1024 * 1024 + 17, 1);
    let pdf = b"%PDF-1.7 protocol".to_vec();
    let long_name = format!("{}.bin", "x".repeat(96));
    let files: Vec<(&str, &[u8])> = vec![
        ("photo.jpg", &photo),
        ("Протокол допроса.pdf", &pdf),
        ("empty.txt", b""),
        (&long_name, b"long"),
    ];
    let text = "Врачей не хватает.\n\x1b[2Jescape";
    let (s1, json1) = good_submission(text, &files, &[&r.recipient]);
    // Sealed to two reviewers: either can open it.
    let (s2, json2) = good_submission("only text", &[], &[&other.recipient, &r.recipient]);
    let batch = relay.batch(&[s1.clone(), s2.clone()]);
    let path = batch.write(&env.path("b1.tar"));

    open(&env, &relay, &r, &[&path]).unwrap();

    let d1 = env.out.join(s1.id.to_string());
    assert_eq!(std::fs::read(d1.join("testimony.json")).unwrap(), json1);
    // Written under their place and their name (`01-photo.jpg`).
    for (i, (name, data)) in files.iter().enumerate() {
        let written = format::disk_name(i, files.len(), name);
        assert_eq!(
            &std::fs::read(d1.join("files").join(&written)).unwrap(),
            data,
            "{name}"
        );
    }
    let txt = std::fs::read_to_string(d1.join("testimony.txt")).unwrap();
    assert!(txt.contains("region: Aktobe"));
    assert!(txt.contains("Врачей не хватает.\n"));
    assert!(txt.contains("\\u{001b}[2Jescape"), "{txt}");
    assert!(!txt.contains('\x1b'));
    assert!(txt.contains(&format!(
        "01-photo.jpg  [photo.jpg]  {} bytes  sha256 {}",
        photo.len(),
        Digest::of(&photo)
    )));

    let d2 = env.out.join(s2.id.to_string());
    assert_eq!(std::fs::read(d2.join("testimony.json")).unwrap(), json2);
    assert!(!d2.join("files").exists());

    // Exactly the submission folders, the receipts and the archive's index
    // and custody copies; no staging left.
    let mut names: Vec<String> = std::fs::read_dir(&env.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want = vec![
        s1.id.to_string(),
        s2.id.to_string(),
        "receipts".to_owned(),
        "archive.json".to_owned(),
        ".custody".to_owned(),
        ".state".to_owned(),
    ];
    want.sort();
    assert_eq!(names, want);

    let m = batch.manifest();
    let receipt_path = env
        .out
        .join("receipts")
        .join(format!("batch-000001-{}.json", m.batch_id));
    let receipt = Receipt::from_json(&std::fs::read(&receipt_path).unwrap()).unwrap();
    assert_eq!(receipt.batch_id, m.batch_id);
    assert_eq!(receipt.sequence, 1);
    assert_eq!(receipt.relay_key, relay.key);
    assert_eq!(receipt.manifest_sha256, batch.manifest_sha256());
    assert_eq!(state_seq(&env, &relay), Some(1));

    #[cfg(unix)]
    {
        use util::mode;
        for (p, _) in tree(&env.out) {
            let full = env.out.join(&p);
            let want = if full.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(&full), want, "{}", p.display());
        }
    }
}

#[test]
fn wrong_identity_writes_nothing() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let other = reviewer(env.dir.path(), "other.key");
    let mut relay = Relay::new();
    // The first submission is ours, the second sealed to someone else:
    // the first must not stay behind either.
    let (s1, _) = good_submission("mine", &[("a.txt", b"a")], &[&r.recipient]);
    let (s2, _) = good_submission("theirs", &[], &[&other.recipient]);
    let path = relay.batch(&[s1, s2.clone()]).write(&env.path("b1.tar"));

    let e = open(&env, &relay, &r, &[&path]).unwrap_err();
    assert!(
        matches!(&e, Error::Open(reviewer::open::OpenError::WrongIdentity { id, epoch: 1, .. }) if *id == s2.id),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "this key ({}) is not a recipient of submission {} (is it your reviewer key for epoch 1?): the batch was refused and nothing from it was written",
            r.key_file.display(),
            s2.id,
        )
    );
    assert_empty(&env.out);
    assert_eq!(state_seq(&env, &relay), None);
}

#[test]
fn one_identity_per_epoch_opens_a_batch_of_both_epochs() {
    let env = Env::new();
    let old = reviewer(env.dir.path(), "epoch-1.key");
    let new = reviewer(env.dir.path(), "epoch-2.key");
    let mut relay = Relay::new();
    // A batch made just after a rotation holds both epochs.
    let (s1, json1) = good_submission("before", &[], &[&old.recipient]);
    let (s2, json2) = good_submission("after", &[("a.txt", b"a")], &[&new.recipient]);
    let s2 = s2.in_epoch(2);
    let path = relay
        .batch(&[s1.clone(), s2.clone()])
        .write(&env.path("b1.tar"));

    // Either identity alone fails on the other epoch's submission, and the
    // error names that epoch.
    let e = open(&env, &relay, &old, &[&path]).unwrap_err();
    assert!(
        matches!(&e, Error::Open(reviewer::open::OpenError::WrongIdentity { id, epoch: 2, .. }) if *id == s2.id),
        "{e}"
    );
    assert!(
        e.to_string().contains("your reviewer key for epoch 2?"),
        "{e}"
    );
    let e = open(&env, &relay, &new, &[&path]).unwrap_err();
    assert!(
        matches!(&e, Error::Open(reviewer::open::OpenError::WrongIdentity { id, epoch: 1, .. }) if *id == s1.id),
        "{e}"
    );
    assert!(e.to_string().contains(&new.key_file.display().to_string()));
    assert_empty(&env.out);
    assert_eq!(state_seq(&env, &relay), None);

    // Both, in either order: everything opens.
    open_with(
        &env,
        &relay,
        &new.key_file,
        &[&path],
        &[&"--identity", &old.key_file],
    )
    .unwrap();
    let d1 = env.out.join(s1.id.to_string());
    let d2 = env.out.join(s2.id.to_string());
    assert_eq!(std::fs::read(d1.join("testimony.json")).unwrap(), json1);
    assert_eq!(std::fs::read(d2.join("testimony.json")).unwrap(), json2);
    // testimony.txt says which epoch sealed each (from the signed manifest).
    let txt = |d: &Path| std::fs::read_to_string(d.join("testimony.txt")).unwrap();
    assert!(txt(&d1).contains("\nKey epoch: 1\n"), "{}", txt(&d1));
    assert!(txt(&d2).contains("\nKey epoch: 2\n"), "{}", txt(&d2));
    assert_eq!(state_seq(&env, &relay), Some(1));
}

#[test]
fn passphrase_files_pair_with_identities() {
    let env = Env::new();
    let locked = |name: &str, pass: &str| {
        let pass_file = env.path(&format!("{name}.pass"));
        std::fs::write(&pass_file, format!("{pass}\n")).unwrap();
        let key = env.path(name);
        let recipient: age::x25519::Recipient = reviewer::identity::generate(
            &key,
            &Protection::Passphrase(PassphraseSource::File(pass_file.clone())),
        )
        .unwrap()
        .parse()
        .unwrap();
        (key, pass_file, recipient)
    };
    let (k1, p1, r1) = locked("one.age", "first passphrase");
    let (k2, p2, r2) = locked("two.age", "second passphrase");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[], &[&r1]);
    let (s2, _) = good_submission("two", &[], &[&r2]);
    let path = relay
        .batch(&[s1, s2.in_epoch(2)])
        .write(&env.path("b1.tar"));

    // Two identities, three passphrase files: refused before unlocking.
    let e = open_with(
        &env,
        &relay,
        &k1,
        &[&path],
        &[
            &"--identity",
            &k2,
            &"--passphrase-file",
            &p1,
            &"--passphrase-file",
            &p2,
            &"--passphrase-file",
            &p2,
        ],
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Identity(reviewer::identity::IdentityError::PassphraseFiles {
                identities: 2,
                files: 3
            })
        ),
        "{e}"
    );
    // One passphrase for both: the second identity does not unlock.
    let e = open_with(
        &env,
        &relay,
        &k1,
        &[&path],
        &[&"--identity", &k2, &"--passphrase-file", &p1],
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Identity(reviewer::identity::IdentityError::WrongPassphrase { path }) if *path == k2),
        "{e}"
    );
    assert_empty(&env.out);
    // One per identity, in order: opens.
    open_with(
        &env,
        &relay,
        &k1,
        &[&path],
        &[
            &"--identity",
            &k2,
            &"--passphrase-file",
            &p1,
            &"--passphrase-file",
            &p2,
        ],
    )
    .unwrap();
    assert_eq!(state_seq(&env, &relay), Some(1));
}

/// One hostile plaintext case: its entries and the reason expected.
struct Case {
    name: &'static str,
    plaintext: Vec<u8>,
    reason: &'static str,
}

fn zeros(n: usize) -> Vec<u8> {
    vec![0u8; n]
}

fn with(mut e: Entry, f: impl FnOnce(&mut Entry)) -> Entry {
    f(&mut e);
    e
}

fn hostile_cases() -> Vec<Case> {
    let listed = util::testimony("t", &[("a.txt", b"hello")])
        .to_json()
        .to_vec();
    let two = util::testimony("t", &[("a.txt", b"hello"), ("b.txt", b"world")])
        .to_json()
        .to_vec();
    let none = util::testimony("t", &[]).to_json().to_vec();
    let t = || Entry::file("testimony.json", listed.clone());
    let a = || Entry::file("files/a.txt", b"hello".to_vec());
    let pad = || Entry::file("padding", zeros(8192));
    let tar = util::tar_of;
    let mut cases = vec![
        Case {
            name: "symlink",
            plaintext: tar(&[
                t(),
                with(Entry::file("files/a.txt", Vec::new()), |e| {
                    e.kind = tar::EntryType::Symlink;
                    e.link = Some("/etc/passwd");
                }),
                pad(),
            ]),
            reason: "not a regular file",
        },
        Case {
            name: "hardlink",
            plaintext: tar(&[
                t(),
                with(Entry::file("files/a.txt", Vec::new()), |e| {
                    e.kind = tar::EntryType::Link;
                    e.link = Some("../../../../etc/passwd");
                }),
                pad(),
            ]),
            reason: "not a regular file",
        },
        Case {
            name: "directory",
            plaintext: tar(&[
                t(),
                with(Entry::file("files/", Vec::new()), |e| {
                    e.kind = tar::EntryType::Directory
                }),
                a(),
                pad(),
            ]),
            reason: "not a regular file",
        },
        Case {
            name: "device",
            plaintext: tar(&[
                t(),
                with(Entry::file("files/a.txt", Vec::new()), |e| {
                    e.kind = tar::EntryType::Char
                }),
                pad(),
            ]),
            reason: "not a regular file",
        },
        Case {
            name: "pax header",
            plaintext: tar(&[
                t(),
                with(
                    Entry::file("PaxHeaders/a.txt", b"30 path=../../../tmp/x\n".to_vec()),
                    |e| e.kind = tar::EntryType::XHeader,
                ),
                a(),
                pad(),
            ]),
            reason: "not a regular file",
        },
        Case {
            name: "gnu long name",
            plaintext: tar(&[
                t(),
                with(Entry::file("././@LongLink", b"../../x\0".to_vec()), |e| {
                    e.kind = tar::EntryType::GNULongName
                }),
                a(),
                pad(),
            ]),
            reason: "not a regular file",
        },
        Case {
            name: "dot-dot entry",
            plaintext: tar(&[t(), Entry::file("../x", b"hello".to_vec()), pad()]),
            reason: "safe name",
        },
        Case {
            name: "dot-dot inside files",
            plaintext: tar(&[t(), Entry::file("files/../../x", b"hello".to_vec()), pad()]),
            reason: "safe name",
        },
        Case {
            name: "absolute path",
            plaintext: tar(&[t(), Entry::file("/tmp/x", b"hello".to_vec()), pad()]),
            reason: "safe name",
        },
        Case {
            name: "nested path",
            plaintext: tar(&[t(), Entry::file("files/a/a.txt", b"hello".to_vec()), pad()]),
            reason: "safe name",
        },
        Case {
            name: "unlisted file",
            plaintext: tar(&[
                Entry::file("testimony.json", none.clone()),
                Entry::file("files/extra.txt", b"surprise".to_vec()),
                pad(),
            ]),
            reason: "not listed in testimony.json",
        },
        Case {
            name: "duplicate attachment",
            plaintext: tar(&[t(), a(), a(), pad()]),
            reason: "not listed in testimony.json",
        },
        Case {
            name: "attachments out of order",
            plaintext: tar(&[
                Entry::file("testimony.json", two.clone()),
                Entry::file("files/b.txt", b"world".to_vec()),
                Entry::file("files/a.txt", b"hello".to_vec()),
                pad(),
            ]),
            reason: "not the next one",
        },
        Case {
            name: "size mismatch",
            plaintext: tar(&[t(), Entry::file("files/a.txt", b"hello!".to_vec()), pad()]),
            reason: "size differs",
        },
        Case {
            name: "hash mismatch",
            plaintext: tar(&[t(), Entry::file("files/a.txt", b"jello".to_vec()), pad()]),
            reason: "SHA-256 differs",
        },
        Case {
            name: "missing attachment",
            plaintext: tar(&[t(), pad()]),
            reason: "missing",
        },
        Case {
            name: "nonzero padding",
            plaintext: tar(&[t(), a(), with(pad(), |e| e.data[4000] = 1)]),
            reason: "padding is not all zeros",
        },
        Case {
            name: "missing padding",
            plaintext: tar(&[t(), a()]),
            reason: "padding entry is missing",
        },
        Case {
            name: "entry after padding",
            plaintext: tar(&[
                t(),
                a(),
                pad(),
                Entry::file("files/b.txt", b"late".to_vec()),
            ]),
            reason: "follows the padding",
        },
        Case {
            name: "testimony not first",
            plaintext: tar(&[a(), t(), pad()]),
            reason: "first entry is not testimony.json",
        },
        Case {
            name: "empty archive",
            plaintext: tar(&[]),
            reason: "empty",
        },
        Case {
            name: "oversize testimony",
            plaintext: tar(&[with(t(), |e| e.header_size = Some(4 * 1024 * 1024 + 1))]),
            reason: "larger than 4 MiB",
        },
        Case {
            name: "invalid json",
            plaintext: tar(&[Entry::file("testimony.json", b"{not json".to_vec()), pad()]),
            reason: "testimony.json is not valid",
        },
        Case {
            name: "unknown field",
            plaintext: tar(&[
                Entry::file(
                    "testimony.json",
                    String::from_utf8(none.clone())
                        .unwrap()
                        .replacen('{', "{\"ip\": \"1.2.3.4\",", 1)
                        .into_bytes(),
                ),
                pad(),
            ]),
            reason: "testimony.json is not valid",
        },
        Case {
            name: "unsanitised listed name",
            plaintext: {
                let mut t = util::testimony("t", &[("a.txt", b"hello")]);
                t.attachments[0].name = ".bashrc".into();
                tar(&[Entry::file("testimony.json", t.to_json().to_vec()), pad()])
            },
            reason: "unsanitised or duplicate",
        },
        Case {
            name: "non-utf8 path",
            plaintext: tar(&[
                t(),
                with(a(), |e| e.path = b"files/\xff.txt".to_vec()),
                pad(),
            ]),
            reason: "not UTF-8",
        },
    ];
    // Truncated: a good plaintext cut in the middle (sealed as is).
    let good = tar(&[t(), a(), pad()]);
    cases.push(Case {
        name: "truncated",
        plaintext: good[..good.len() / 2].to_vec(),
        reason: "truncated",
    });
    // Data after the end-of-archive marker.
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"#!/bin/sh\n");
    cases.push(Case {
        name: "trailing data",
        plaintext: trailing,
        reason: "data follows the end",
    });
    // A good control case, to show the harness itself is fine.
    cases.push(Case {
        name: "control",
        plaintext: good,
        reason: "",
    });
    cases
}

#[test]
fn hostile_plaintexts_are_quarantined_and_the_rest_opens() {
    for case in hostile_cases() {
        let env = Env::new();
        let r = reviewer(env.dir.path(), "reviewer.key");
        let mut relay = Relay::new();
        // Between two good submissions: both must come out right.
        let (good1, _) = good_submission("fine", &[("ok.txt", b"ok")], &[&r.recipient]);
        let (good2, _) = good_submission("also fine", &[], &[&r.recipient]);
        let bad = util::sealed(&case.plaintext, &[&r.recipient]);
        let batch = relay.batch(&[good1.clone(), bad.clone(), good2.clone()]);
        let path = batch.write(&env.path("b.tar"));

        open(&env, &relay, &r, &[&path]).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(state_seq(&env, &relay), Some(1), "{}", case.name);
        let archive = reviewer::archive::Archive::open(&env.out).unwrap();
        for good in [&good1, &good2] {
            assert!(archive.submission(&good.id).is_some(), "{}", case.name);
            assert!(
                env.out
                    .join(good.id.to_string())
                    .join("testimony.json")
                    .is_file()
            );
        }
        let receipt = env
            .out
            .join("receipts")
            .join(format!("batch-000001-{}.json", batch.manifest().batch_id));
        assert!(receipt.is_file(), "{}: no receipt", case.name);
        let bad_dir = env.out.join(bad.id.to_string());
        if case.reason.is_empty() {
            assert!(archive.submission(&bad.id).is_some(), "control");
            continue;
        }
        let q = archive
            .quarantined_submission(&bad.id)
            .unwrap_or_else(|| panic!("{}: not quarantined", case.name));
        assert!(
            q.reason.contains(case.reason),
            "{}: {}",
            case.name,
            q.reason
        );
        // Nothing of its content; its ciphertext in custody, verbatim.
        assert!(!bad_dir.exists(), "{}", case.name);
        let kept = reviewer::archive::custody_ciphertext(&env.out, &relay.key, &bad.id);
        assert_eq!(
            std::fs::read(kept).unwrap(),
            bad.ciphertext,
            "{}",
            case.name
        );
        // No staging left.
        let stray: Vec<_> = std::fs::read_dir(&env.out)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".staging"))
            .collect();
        assert!(stray.is_empty(), "{}", case.name);
    }
}

#[test]
fn passphrase_identity_round_trip_and_wrong_passphrase() {
    let env = Env::new();
    let key = env.path("reviewer.age");
    let pass = env.path("pass");
    std::fs::write(&pass, "violet lantern orbit mosaic\n").unwrap();
    let recipient = reviewer::identity::generate(
        &key,
        &Protection::Passphrase(PassphraseSource::File(pass.clone())),
    )
    .unwrap();
    let bytes = std::fs::read(&key).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(!String::from_utf8_lossy(&bytes).contains("AGE-SECRET-KEY"));
    #[cfg(unix)]
    assert_eq!(util::mode(&key), 0o600);

    // Refuses to overwrite, with a clear error, leaving the key intact.
    let e = run(&[&"keygen", &"--out", &key, &"--no-passphrase"]).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert!(e.to_string().contains("already exists"));
    assert_eq!(std::fs::read(&key).unwrap(), bytes);

    let recipient: age::x25519::Recipient = recipient.parse().unwrap();
    let mut relay = Relay::new();
    let (s1, json) = good_submission("secret", &[("a.txt", b"a")], &[&recipient]);
    let p1 = relay
        .batch(std::slice::from_ref(&s1))
        .write(&env.path("b1.tar"));

    // Wrong passphrase: refused, nothing written.
    let wrong = env.path("wrong");
    std::fs::write(&wrong, "incorrect horse\n").unwrap();
    let e = open_with(&env, &relay, &key, &[&p1], &[&"--passphrase-file", &wrong]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Identity(reviewer::identity::IdentityError::WrongPassphrase { .. })
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("wrong passphrase for {}", key.display()))
    );
    assert_empty(&env.out);
    assert_eq!(state_seq(&env, &relay), None);

    // Right passphrase: opens.
    open_with(&env, &relay, &key, &[&p1], &[&"--passphrase-file", &pass]).unwrap();
    assert_eq!(
        std::fs::read(env.out.join(s1.id.to_string()).join("testimony.json")).unwrap(),
        json
    );

    // The identity inside is a standard identity file with a day, not a time.
    let id = Identity::load(&key, &PassphraseSource::File(pass)).unwrap();
    assert_eq!(id.path(), key);
}

#[test]
fn plain_keygen_round_trips_through_open() {
    let env = Env::new();
    let key = env.path("plain.key");
    run(&[&"keygen", &"--out", &key, &"--no-passphrase"]).unwrap();
    let text = std::fs::read_to_string(&key).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap();
    let created = text
        .lines()
        .find_map(|l| l.strip_prefix("# created: "))
        .unwrap();
    assert!(created.parse::<format::Day>().is_ok(), "{created}");
    #[cfg(unix)]
    assert_eq!(util::mode(&key), 0o600);

    let recipient: age::x25519::Recipient = recipient.parse().unwrap();
    let mut relay = Relay::new();
    let (s, _) = good_submission("x", &[], &[&recipient]);
    let p = relay.batch(&[s]).write(&env.path("b.tar"));
    open_with(&env, &relay, &key, &[&p], &[]).unwrap();
}

#[test]
fn state_advances_only_after_a_successful_open() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let other = reviewer(env.dir.path(), "other.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[], &[&r.recipient]);
    let p1 = relay.batch(&[s1]).write(&env.path("b1.tar"));
    let (s2, _) = good_submission("two", &[], &[&r.recipient]);
    let p2 = relay.batch(&[s2]).write(&env.path("b2.tar"));

    // verify never writes.
    run(&[&"verify", &p1, &"--relay-key", &relay.key]).unwrap();
    assert!(!env.state.exists());

    open(&env, &relay, &r, &[&p1]).unwrap();
    assert_eq!(state_seq(&env, &relay), Some(1));

    // A failed open of batch 2 (wrong identity) leaves the state at 1.
    let e = open_with(&env, &relay, &other.key_file, &[&p2], &[]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Open(reviewer::open::OpenError::WrongIdentity { .. })
        ),
        "{e}"
    );
    assert_eq!(state_seq(&env, &relay), Some(1));

    open(&env, &relay, &r, &[&p2]).unwrap();
    let state = StateStore::new(&env.state)
        .load(&relay.key)
        .unwrap()
        .unwrap();
    assert_eq!(state.sequence, 2);
    assert_eq!(state.manifest_sha256, relay.previous.unwrap());
}

#[test]
fn several_batches_in_one_command() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let mut paths = Vec::new();
    for n in 1..=3 {
        let (s, _) = good_submission(&format!("n{n}"), &[], &[&r.recipient]);
        paths.push(relay.batch(&[s]).write(&env.path(&format!("b{n}.tar"))));
    }
    // Given out of order: opened in sequence order.
    open(&env, &relay, &r, &[&paths[2], &paths[0], &paths[1]]).unwrap();
    assert_eq!(state_seq(&env, &relay), Some(3));
    assert_eq!(
        std::fs::read_dir(env.out.join("receipts")).unwrap().count(),
        3
    );
}

#[test]
fn a_failing_batch_does_not_undo_the_batches_before_it() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let other = reviewer(env.dir.path(), "other.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[], &[&r.recipient]);
    let p1 = relay
        .batch(std::slice::from_ref(&s1))
        .write(&env.path("b1.tar"));
    let (s2, _) = good_submission("two", &[], &[&other.recipient]);
    let p2 = relay
        .batch(std::slice::from_ref(&s2))
        .write(&env.path("b2.tar"));
    let e = open(&env, &relay, &r, &[&p1, &p2]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Open(reviewer::open::OpenError::WrongIdentity { .. })
        ),
        "{e}"
    );
    assert_eq!(state_seq(&env, &relay), Some(1));
    assert!(env.out.join(s1.id.to_string()).is_dir());
    assert!(!env.out.join(s2.id.to_string()).exists());
    assert_eq!(
        std::fs::read_dir(env.out.join("receipts")).unwrap().count(),
        1
    );
}

#[test]
fn existing_submission_folder_is_never_overwritten() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[], &[&r.recipient]);
    let (s2, _) = good_submission("two", &[], &[&r.recipient]);
    let (s0, _) = good_submission("zero", &[], &[&r.recipient]);
    let p0 = relay.batch(&[s0]).write(&env.path("b0.tar"));
    open(&env, &relay, &r, &[&p0]).unwrap();
    let p1 = relay.batch(&[s1, s2.clone()]).write(&env.path("b1.tar"));
    let existing = env.out.join(s2.id.to_string());
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("testimony.json"), b"earlier work").unwrap();
    let before = tree(&env.out);

    let e = open(&env, &relay, &r, &[&p1]).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(tree(&env.out), before);
    assert_eq!(state_seq(&env, &relay), Some(1));
}

#[test]
fn leftover_staging_directory_is_rolled_back() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[], &[&r.recipient]);
    let batch = relay.batch(std::slice::from_ref(&s1));
    let p1 = batch.write(&env.path("b1.tar"));
    let staging = env
        .out
        .join(format!(".staging-{}", batch.manifest().batch_id));
    // What an open killed while staging leaves: decrypted testimony.
    std::fs::create_dir_all(staging.join(s1.id.to_string())).unwrap();
    std::fs::write(staging.join(s1.id.to_string()).join("testimony.json"), b"x").unwrap();
    open(&env, &relay, &r, &[&p1]).unwrap();
    assert!(!staging.exists(), "the leftover staging stayed");
    assert_eq!(state_seq(&env, &relay), Some(1));
    assert!(
        env.out
            .join(s1.id.to_string())
            .join("testimony.json")
            .is_file()
    );
}

#[cfg(unix)]
#[test]
fn a_staging_symlink_is_not_followed_or_removed() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[], &[&r.recipient]);
    let batch = relay.batch(&[s1]);
    let p1 = batch.write(&env.path("b1.tar"));
    std::fs::create_dir_all(&env.out).unwrap();
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("keep"), b"keep").unwrap();
    let staging = env
        .out
        .join(format!(".staging-{}", batch.manifest().batch_id));
    std::os::unix::fs::symlink(&elsewhere, &staging).unwrap();
    let e = open(&env, &relay, &r, &[&p1]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Open(reviewer::open::OpenError::StagingExists { .. })
        ),
        "{e}"
    );
    assert!(elsewhere.join("keep").is_file());
    assert_eq!(state_seq(&env, &relay), None);
}

#[test]
fn batch_changed_after_verification_is_refused() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("one", &[("a.txt", b"abc")], &[&r.recipient]);
    let batch = relay.batch(&[s1]);
    let path = batch.write(&env.path("b1.tar"));

    let key = reviewer::verify::PinnedKey::from_base64(&relay.key).unwrap();
    let store = StateStore::new(&env.state);
    let verified = reviewer::verify::verify_batch(&path, &key, &ChainAnchor::Genesis).unwrap();
    assert_eq!(verified.sequence(), 1);
    assert_eq!(verified.manifest_sha256(), batch.manifest_sha256());

    // Swap the file for one with a flipped ciphertext byte after verify.
    let mut tampered = batch.clone();
    let n = tampered.members[2].1.len();
    tampered.members[2].1[n - 100] ^= 1;
    tampered.write(&path);

    let identity = Identity::load(&r.key_file, &PassphraseSource::Terminal).unwrap();
    let e = reviewer::open::open_batch(verified, &[identity], &util::scrubber(), &env.out, &store)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Open(reviewer::open::OpenError::ChangedSinceVerify { .. })
        ),
        "{e}"
    );
    assert_empty(&env.out);
    assert_eq!(state_seq(&env, &relay), None);
}

#[test]
fn library_flow_matches_the_cli() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, json) = good_submission("one", &[], &[&r.recipient]);
    let p1 = relay
        .batch(std::slice::from_ref(&s1))
        .write(&env.path("b1.tar"));

    let key = reviewer::verify::PinnedKey::from_arg(&relay.key).unwrap();
    let store = StateStore::new(&env.state);
    let anchor = store.anchor(key.as_base64(), None).unwrap();
    let batches = reviewer::verify::verify_batches(&[&p1], &key, &anchor).unwrap();
    let identities = [Identity::load(&r.key_file, &PassphraseSource::Terminal).unwrap()];
    for b in batches {
        let opened =
            reviewer::open::open_batch(b, &identities, &util::scrubber(), &env.out, &store)
                .unwrap();
        assert_eq!(opened.sequence, 1);
        assert_eq!(opened.submissions, 1);
        assert!(opened.receipt.is_file());
    }
    let id: SubmissionId = s1.id;
    assert_eq!(
        std::fs::read(env.out.join(id.to_string()).join("testimony.json")).unwrap(),
        json
    );
}
