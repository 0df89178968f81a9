//! Reviewer key epochs end to end: the relay seals to the current epoch
//! only, batches name each submission's epoch, a reviewer opens each epoch
//! with its own identity, and once epoch 1 is retired its ciphertext can no
//! longer be opened by anyone holding what is left, while epoch 2's still
//! opens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use e2e::{TestRelay, arg, manifest, reviewer, run, with_epochs};
use format::Day;
use testkit::ReviewerCmd;

/// `reviewer open` with these batches and identities.
fn open(
    relay: &TestRelay,
    batches: &[&Path],
    identities: &[&Path],
    out: &Path,
    extra: &[&str],
) -> Result<(), reviewer::Error> {
    let mut open = ReviewerCmd::open(batches);
    for i in identities {
        open = open.identity(i);
    }
    let open = open.relay_key(relay.pubkey()).out(out).args(extra);
    run(&open)
}

/// The submission folders `open` wrote into `out`.
fn submission_dirs(out: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().len() == 32)
        .collect();
    dirs.sort();
    dirs
}

/// The one submission in `out` whose testimony holds `canary`.
fn opened_with(out: &Path, canary: &str) -> PathBuf {
    let hits: Vec<PathBuf> = submission_dirs(out)
        .into_iter()
        .filter(|d| {
            std::fs::read_to_string(d.join("testimony.json"))
                .unwrap()
                .contains(canary)
        })
        .collect();
    assert_eq!(hits.len(), 1, "{canary} in {hits:?}");
    hits[0].clone()
}

/// The `age1…` recipient of the demo config's short `[reviewers]` form.
fn demo_recipient(config: &str) -> String {
    let line = config
        .lines()
        .find(|l| l.starts_with("recipients = [\"age1"))
        .unwrap();
    line.trim_start_matches("recipients = [\"")
        .trim_end_matches("\"]")
        .to_owned()
}

#[test]
fn a_retired_epoch_stays_sealed_and_the_current_one_opens() {
    // Epoch 1 is the demo reviewer's key, in the long form of the config.
    let mut recipient_1 = String::new();
    let mut relay = TestRelay::start_with(|text| {
        recipient_1 = demo_recipient(&text);
        with_epochs(&text, &[(1, &[recipient_1.as_str()])], 1)
    });
    assert_eq!(relay.state().recipients().len(), 1);

    // The reviewer's offline machine holds the only copy of each identity.
    let work = relay.root.path().join("reviewer");
    std::fs::create_dir_all(&work).unwrap();
    let identity_1 = work.join("epoch-1.key");
    std::fs::rename(relay.identity(), &identity_1).unwrap();

    let canary_1 = "CANARY-epoch-one-4be1";
    let (status, body) = relay.submit("other", &format!("Before the rotation. {canary_1}"), &[]);
    assert_eq!(status, 200, "{body}");
    let stored = relay.state().store().unexported(10).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1.epoch, 1);
    let batch_1 = relay.next_batch().unwrap();

    // Rotation: a new identity for epoch 2, the config names both epochs
    // and seals to 2, the relay restarts.
    let identity_2 = work.join("epoch-2.key");
    let (key_2, recipient_2) =
        relay::seal::generate_identity(Day::today(), "reviewer identity, key epoch 2");
    std::fs::write(&identity_2, key_2.as_bytes()).unwrap();
    let config_path = relay.data.join("relay.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let rotated = with_epochs(
        &config,
        &[(1, &[recipient_1.as_str()]), (2, &[recipient_2.as_str()])],
        2,
    );
    std::fs::write(&config_path, rotated).unwrap();
    relay.restart();

    let canary_2 = "CANARY-epoch-two-91d0";
    let (status, body) = relay.submit("other", &format!("After the rotation. {canary_2}"), &[]);
    assert_eq!(status, 200, "{body}");
    let stored = relay.state().store().unexported(10).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1.epoch, 2);
    let batch_2 = relay.next_batch().unwrap();

    // Each manifest names its submissions' epoch.
    let epochs =
        |b: &Path| -> Vec<u32> { manifest(b).submissions.iter().map(|e| e.epoch).collect() };
    assert_eq!(epochs(&batch_1), [1]);
    assert_eq!(epochs(&batch_2), [2]);

    // Opened with each epoch's identity.
    let out = work.join("opened");
    open(&relay, &[&batch_1], &[&identity_1], &out, &[]).unwrap();
    // The relay sealed epoch 2's submission to epoch 2 only: the old
    // identity cannot open it, and the refusal writes nothing.
    let before = testkit::files(&out);
    let e = open(&relay, &[&batch_2], &[&identity_1], &out, &[]).unwrap_err();
    assert!(
        matches!(
            e,
            reviewer::Error::Open(reviewer::open::OpenError::WrongIdentity { epoch: 2, .. })
        ),
        "{e}"
    );
    assert_eq!(testkit::files(&out), before);
    open(&relay, &[&batch_2], &[&identity_2], &out, &[]).unwrap();
    let txt = |d: &Path| std::fs::read_to_string(d.join("testimony.txt")).unwrap();
    let sub_1 = opened_with(&out, canary_1);
    let sub_2 = opened_with(&out, canary_2);
    assert!(txt(&sub_1).contains("\nKey epoch: 1\n"), "{}", txt(&sub_1));
    assert!(txt(&sub_2).contains("\nKey epoch: 2\n"), "{}", txt(&sub_2));

    // Both batches at once, with both identities, also works (a reviewer
    // catching up across a rotation).
    let both_out = work.join("opened-both");
    open(
        &relay,
        &[&batch_1, &batch_2],
        &[&identity_2, &identity_1],
        &both_out,
        &[],
    )
    .unwrap();
    assert_eq!(submission_dirs(&both_out).len(), 2);

    // Epoch 1's batch is safely opened (and would now be acknowledged):
    // retire epoch 1.
    reviewer(&[
        "retire-epoch",
        "--identity",
        &arg(&identity_1),
        "--epoch",
        "1",
        "--yes",
    ])
    .unwrap();
    assert!(!identity_1.exists());
    assert!(identity_2.exists());

    // A copy of batch 1 (a backup, a seized disk) can no longer be opened
    // with what is left, and the attempt writes nothing.
    let copy_1 = work.join("copy-of-batch-1.tar");
    std::fs::copy(&batch_1, &copy_1).unwrap();
    let fresh_out = work.join("opened-after");
    let e = open(&relay, &[&copy_1], &[&identity_2], &fresh_out, &[]).unwrap_err();
    assert!(
        matches!(
            e,
            reviewer::Error::Open(reviewer::open::OpenError::WrongIdentity { epoch: 1, .. })
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("is not a recipient of submission")
            && e.to_string().contains("your reviewer key for epoch 1?"),
        "{e}"
    );
    assert!(
        testkit::files(&fresh_out).is_empty(),
        "{:?}",
        testkit::files(&fresh_out)
    );
    // The retired identity file itself is gone, not merely renamed.
    let e = open(&relay, &[&copy_1], &[&identity_1], &fresh_out, &[]).unwrap_err();
    assert!(matches!(e, reviewer::Error::Io { .. }), "{e}");

    // Epoch 2's submission still opens with identity 2.
    let out_2 = work.join("opened-epoch-2");
    open(
        &relay,
        &[&batch_2],
        &[&identity_2],
        &out_2,
        &["--start-at", "2"],
    )
    .unwrap();
    let sub = opened_with(&out_2, canary_2);
    assert!(txt(&sub).contains("\nKey epoch: 2\n"));
}
