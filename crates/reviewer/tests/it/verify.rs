//! `reviewer verify` (and `open`, which verifies first): every way a batch
//! can be broken is refused with its reason, and nothing is written.
#![allow(clippy::unwrap_used)]

use crate::util;

use std::path::Path;

use reviewer::Error;
use util::{Batch, Env, Relay, Reviewer, assert_empty, good_submission, open, reviewer, run};

/// A relay with two good submissions sealed to one reviewer.
fn setup(env: &Env) -> (Relay, Reviewer, Batch) {
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (a, _) = good_submission("first", &[("a.txt", b"aaa")], &[&r.recipient]);
    let (b, _) = good_submission("second", &[], &[&r.recipient]);
    let batch = relay.batch(&[a, b]);
    (relay, r, batch)
}

fn verify(env: &Env, relay: &Relay, batches: &[&Path]) -> Result<(), Error> {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"verify"];
    for b in batches {
        args.push(b);
    }
    args.extend([
        &"--relay-key" as &dyn AsRef<std::ffi::OsStr>,
        &relay.key,
        &"--archive",
        &env.out,
    ]);
    run(&args)
}

/// Both `verify` and `open` refuse the batch with an error `check` accepts,
/// and neither writes anything.
fn refused(env: &Env, relay: &Relay, r: &Reviewer, path: &Path, check: impl Fn(&Error) -> bool) {
    let state_before = util::tree(&env.state);
    let e = verify(env, relay, &[path]).unwrap_err();
    assert!(check(&e), "verify: unexpected error: {e}");
    let e = open(env, relay, r, &[path]).unwrap_err();
    assert!(check(&e), "open: unexpected error: {e}");
    assert!(!e.to_string().contains('\n'), "multi-line message: {e}");
    assert_empty(&env.out);
    assert_eq!(util::tree(&env.state), state_before, "state changed");
}

#[test]
fn good_batch_verifies_and_verify_writes_nothing() {
    let env = Env::new();
    let (relay, _r, batch) = setup(&env);
    let path = batch.write(&env.path("b1.tar"));
    verify(&env, &relay, &[&path]).unwrap();
    // Verifying does not advance the chain: the same batch verifies again,
    // and no state directory was even created.
    verify(&env, &relay, &[&path]).unwrap();
    assert!(!env.state.exists());
}

#[test]
fn flipped_byte_in_manifest_json() {
    let env = Env::new();
    let (relay, r, mut batch) = setup(&env);
    let m = &mut batch.members[0].1;
    let i = m.len() / 2;
    m[i] ^= 0x01;
    let path = batch.write(&env.path("b.tar"));
    refused(&env, &relay, &r, &path, |e| {
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::BadSignature { .. })
        ) && e.to_string().contains("not signed by the pinned relay key")
    });
}

#[test]
fn flipped_byte_in_manifest_sig() {
    let env = Env::new();
    let (relay, r, batch) = setup(&env);
    let sig = String::from_utf8(batch.members[1].1.clone()).unwrap();
    // The signature line, the trusted comment and the global signature
    // (the untrusted comment on line 1 is not signed, by minisign's design).
    let mut offset = 0;
    let mut positions = Vec::new();
    for (n, line) in sig.split('\n').enumerate() {
        if (1..=3).contains(&n) {
            positions.push(offset + line.len() / 2);
        }
        offset += line.len() + 1;
    }
    assert_eq!(positions.len(), 3);
    for pos in positions {
        let mut b = batch.clone();
        b.members[1].1[pos] ^= 0x01;
        let path = b.write(&env.path("b.tar"));
        refused(&env, &relay, &r, &path, |e| {
            matches!(
                e,
                Error::Verify(reviewer::verify::VerifyError::BadSignature { .. })
            )
        });
    }
}

#[test]
fn flipped_byte_in_each_age_member() {
    let env = Env::new();
    let (relay, r, batch) = setup(&env);
    let manifest = batch.manifest();
    for (k, entry) in manifest.submissions.iter().enumerate() {
        for pos in [0usize, 100, entry.size as usize - 1] {
            let mut b = batch.clone();
            b.members[2 + k].1[pos] ^= 0x80;
            let path = b.write(&env.path("b.tar"));
            refused(
                &env,
                &relay,
                &r,
                &path,
                |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::SubmissionMismatch { id, what: "SHA-256", .. }) if *id == entry.id),
            );
        }
    }
}

#[test]
fn dropped_submission() {
    let env = Env::new();
    let (relay, r, mut batch) = setup(&env);
    batch.members.remove(3);
    let path = batch.write(&env.path("b.tar"));
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::MalformedBatch { reason, .. }) if reason.contains("missing")),
    );
}

#[test]
fn extra_submission() {
    let env = Env::new();
    let (relay, r, batch) = setup(&env);
    let (extra, _) = good_submission("smuggled", &[], &[&r.recipient]);
    let mut b = batch.clone();
    b.members
        .push((format::batch_member_for(&extra.id), extra.ciphertext));
    let path = b.write(&env.path("b.tar"));
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::MalformedBatch { reason, .. }) if reason.contains("not listed in the manifest")),
    );

    // An extra member of another kind.
    let mut b = batch.clone();
    b.members.push(("notes.txt".into(), b"hi".to_vec()));
    let path = b.write(&env.path("b.tar"));
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::MalformedBatch { reason, .. }) if reason.contains("unexpected member")),
    );
}

#[test]
fn repeated_member() {
    let env = Env::new();
    let (relay, r, mut batch) = setup(&env);
    let dup = batch.members[2].clone();
    batch.members.push(dup);
    let path = batch.write(&env.path("b.tar"));
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::MalformedBatch { reason, .. }) if reason.contains("twice")),
    );
}

#[test]
fn reordered_members() {
    let env = Env::new();
    let (relay, r, batch) = setup(&env);
    let mut b = batch.clone();
    b.members.swap(2, 3);
    let path = b.write(&env.path("b.tar"));
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::MalformedBatch { reason, .. }) if reason.contains("out of order")),
    );

    let mut b = batch.clone();
    b.members.swap(0, 1);
    let path = b.write(&env.path("b.tar"));
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::MalformedBatch { reason, .. }) if reason.contains("first member")),
    );
}

#[test]
fn wrong_signing_key() {
    let env = Env::new();
    let (relay, r, _) = setup(&env);
    // A batch made by another relay, presented to a reviewer who pinned
    // `relay`: its manifest honestly names the other key.
    let mut other = Relay::new();
    let (s, _) = good_submission("x", &[], &[&r.recipient]);
    let batch = other.batch(std::slice::from_ref(&s));
    let path = batch.write(&env.path("b.tar"));
    refused(&env, &relay, &r, &path, |e| {
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::BadSignature { .. })
        )
    });

    // A forger who copies the pinned key into the manifest and signs with
    // their own key.
    let mut forged = batch.manifest();
    forged.relay_key = relay.key.clone();
    let b = other.sign(forged.to_json(), &forged, &[s]);
    let path = b.write(&env.path("b.tar"));
    refused(&env, &relay, &r, &path, |e| {
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::BadSignature { .. })
        )
    });
}

#[test]
fn manifest_naming_another_key_or_batch() {
    let env = Env::new();
    let (relay, r, batch) = setup(&env);
    let subs: Vec<util::Sealed> = Vec::new();

    // Signed by the pinned key, but the manifest names another relay key.
    let mut m = batch.manifest();
    m.relay_key = Relay::new().key;
    m.submissions.clear();
    let b = relay.sign(m.to_json(), &m, &subs);
    let path = b.write(&env.path("b.tar"));
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::InvalidManifest { reason, .. }) if reason.contains("relay_key")),
    );

    // A signature whose trusted comment names another batch.
    let mut m = batch.manifest();
    m.submissions.clear();
    let mut other = m.clone();
    other.sequence = 7;
    other.previous_manifest_sha256 = Some(format::Digest::of(b"x"));
    let good = relay.sign(m.to_json(), &m, &subs);
    let wrong_comment = relay.sign(m.to_json(), &other, &subs);
    let mut b = good.clone();
    b.members[1] = wrong_comment.members[1].clone();
    let path = b.write(&env.path("b.tar"));
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::InvalidManifest { reason, .. }) if reason.contains("trusted comment")),
    );
}

#[test]
fn truncated_batch_file() {
    let env = Env::new();
    let (relay, r, batch) = setup(&env);
    let bytes = batch.bytes();
    let cuts = [
        0,
        100,
        512,
        600,
        1024 + 512 + 10,
        bytes.len() / 2,
        bytes.len() - 1024 - 1,
        bytes.len() - 1024,
        bytes.len() - 512,
        bytes.len() - 1,
    ];
    for cut in cuts {
        let path = env.path("b.tar");
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = verify(&env, &relay, &[&path]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Verify(reviewer::verify::VerifyError::MalformedBatch { .. })
                    | Error::Verify(reviewer::verify::VerifyError::BadSignature { .. })
            ),
            "cut at {cut}: {e}"
        );
    }
    // One cut in the middle of a submission, through both commands.
    let path = env.path("b.tar");
    std::fs::write(&path, &bytes[..bytes.len() - 1500]).unwrap();
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::MalformedBatch { reason, .. }) if reason.contains("truncated")),
    );
}

#[test]
fn oversize_manifest_and_signature_are_refused_before_reading() {
    let env = Env::new();
    let (relay, r, batch) = setup(&env);
    for (index, size) in [(0usize, 16 * 1024 * 1024 + 1), (1, 4097)] {
        let mut entries: Vec<util::Entry> = batch
            .members
            .iter()
            .map(|(n, d)| util::Entry::file(n, d.clone()))
            .collect();
        entries[index].header_size = Some(size);
        let mut bytes = Vec::new();
        for e in &entries[..=index] {
            util::append(&mut bytes, e);
        }
        let path = env.path("b.tar");
        std::fs::write(&path, bytes).unwrap();
        refused(
            &env,
            &relay,
            &r,
            &path,
            |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::MalformedBatch { reason, .. }) if reason.contains("larger than")),
        );
    }
}

#[test]
fn non_regular_member() {
    let env = Env::new();
    let (relay, r, batch) = setup(&env);
    let mut entries: Vec<util::Entry> = batch
        .members
        .iter()
        .map(|(n, d)| util::Entry::file(n, d.clone()))
        .collect();
    let mut link = util::Entry::file(&batch.members[2].0, Vec::new());
    link.kind = tar::EntryType::Symlink;
    link.link = Some("/etc/passwd");
    entries[2] = link;
    let path = env.path("b.tar");
    std::fs::write(&path, util::tar_of(&entries)).unwrap();
    refused(
        &env,
        &relay,
        &r,
        &path,
        |e| matches!(e, Error::Verify(reviewer::verify::VerifyError::MalformedBatch { reason, .. }) if reason.contains("not a regular file")),
    );
}

#[test]
fn replayed_batch() {
    let env = Env::new();
    let (mut relay, r, batch) = setup(&env);
    let path = batch.write(&env.path("b1.tar"));
    open(&env, &relay, &r, &[&path]).unwrap();
    let (s2, _) = good_submission("two", &[], &[&r.recipient]);
    let p2 = relay.batch(&[s2]).write(&env.path("b2.tar"));
    open(&env, &relay, &r, &[&p2]).unwrap();
    let out_before = util::tree(&env.out);

    // What the archive holds: said and skipped, exit 0 (a glob of every
    // batch ever fetched always works).
    let o = util::bin(&[
        &"verify",
        &path,
        &p2,
        &"--relay-key",
        &relay.key,
        &"--archive",
        &env.out,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("batch 1 of relay ") && out.contains("is already in the archive"),
        "{out}"
    );
    assert!(out.contains("batch 2 of relay "), "{out}");

    // A batch 1 the archive does not hold (another copy with other bytes
    // under the same place would be a fork; a batch deleted from the
    // archive looks like this): a replay, naming the archive.
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.out.join("archive.json")).unwrap()).unwrap();
    index["batches"].as_array_mut().unwrap().remove(0);
    std::fs::write(env.out.join("archive.json"), index.to_string()).unwrap();
    let out_before_replay = util::tree(&env.out);
    let e = verify(&env, &relay, &[&path]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::Replay {
                sequence: 1,
                last: 2,
                ..
            })
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains(&format!(
            "is not in the archive {}, which already accepted batch 2",
            env.out.display()
        )),
        "{e}"
    );
    let e = open(&env, &relay, &r, &[&path]).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("the archive {}", env.out.display())),
        "{e}"
    );
    assert_eq!(util::tree(&env.out), out_before_replay);

    // Another archive has a chain of its own: batch 1 opens there, and
    // the first archive does not change.
    let elsewhere = Env::new();
    open(&elsewhere, &relay, &r, &[&path]).unwrap();
    assert_ne!(util::tree(&env.out), out_before);
    assert_eq!(util::tree(&env.out), out_before_replay);
}

#[test]
fn skipped_batch_is_a_gap() {
    let env = Env::new();
    let (mut relay, r, b1) = setup(&env);
    let p1 = b1.write(&env.path("b1.tar"));
    let (s2, _) = good_submission("two", &[], &[&r.recipient]);
    let _b2 = relay.batch(&[s2]);
    let (s3, _) = good_submission("three", &[], &[&r.recipient]);
    let p3 = relay.batch(&[s3]).write(&env.path("b3.tar"));

    // Among the given batches.
    let e = verify(&env, &relay, &[&p1, &p3]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::Gap {
                sequence: 3,
                expected: 2,
                ..
            })
        ),
        "{e}"
    );

    // Against the state.
    open(&env, &relay, &r, &[&p1]).unwrap();
    let out_before = util::tree(&env.out);
    let state_before = util::tree(&env.state);
    let e = verify(&env, &relay, &[&p3]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::Gap {
                sequence: 3,
                expected: 2,
                ..
            })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("batches 2 to 2 are missing"), "{e}");
    let e = open(&env, &relay, &r, &[&p3]).unwrap_err();
    assert!(
        matches!(e, Error::Verify(reviewer::verify::VerifyError::Gap { .. })),
        "{e}"
    );
    assert_eq!(util::tree(&env.out), out_before);
    assert_eq!(util::tree(&env.state), state_before);
}

#[test]
fn broken_chain() {
    let env = Env::new();
    let (relay, r, b1) = setup(&env);
    let p1 = b1.write(&env.path("b1.tar"));
    // A correctly signed batch 2 that does not point at batch 1.
    let (s2, _) = good_submission("two", &[], &[&r.recipient]);
    let fork = relay.batch_at(2, Some(format::Digest::of(b"another history")), &[s2]);
    let p2 = fork.write(&env.path("b2.tar"));
    let e = verify(&env, &relay, &[&p1, &p2]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::ChainBroken { sequence: 2, .. })
        ),
        "{e}"
    );

    open(&env, &relay, &r, &[&p1]).unwrap();
    let e = verify(&env, &relay, &[&p2]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::ChainBroken { sequence: 2, .. })
        ),
        "{e}"
    );
}

#[test]
fn first_batch_needs_start_at() {
    let env = Env::new();
    let (relay, r, _) = setup(&env);
    let (s, _) = good_submission("x", &[], &[&r.recipient]);
    let b5 = relay.batch_at(5, Some(format::Digest::of(b"lost")), &[s]);
    let p5 = b5.write(&env.path("b5.tar"));
    let e = verify(&env, &relay, &[&p5]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::NotFirst { sequence: 5, .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("--start-at 5"));

    let start = |n: &str| {
        run(&[
            &"verify",
            &p5,
            &"--relay-key",
            &relay.key,
            &"--start-at",
            &n,
        ])
    };
    start("5").unwrap();
    assert!(matches!(
        start("4"),
        Err(Error::Verify(
            reviewer::verify::VerifyError::StartAtMismatch { .. }
        ))
    ));
}

#[test]
fn same_batch_twice() {
    let env = Env::new();
    let (relay, _r, batch) = setup(&env);
    let a = batch.write(&env.path("a.tar"));
    let b = batch.write(&env.path("b.tar"));
    let e = verify(&env, &relay, &[&a, &b]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::DuplicateSequence { sequence: 1, .. })
        ),
        "{e}"
    );
}

#[test]
fn relay_key_from_a_pub_file() {
    let env = Env::new();
    let (relay, _r, batch) = setup(&env);
    let path = batch.write(&env.path("b.tar"));
    let pub_file = env.path("relay.pub");
    std::fs::write(&pub_file, relay.kp.pk.to_box().unwrap().to_string()).unwrap();
    run(&[&"verify", &path, &"--relay-key", &pub_file]).unwrap();
}

#[test]
fn batches_in_any_order_on_the_command_line() {
    let env = Env::new();
    let (mut relay, r, b1) = setup(&env);
    let p1 = b1.write(&env.path("b1.tar"));
    let (s2, _) = good_submission("two", &[], &[&r.recipient]);
    let p2 = relay.batch(&[s2]).write(&env.path("b2.tar"));
    verify(&env, &relay, &[&p2, &p1]).unwrap();
}
