//! The `reviewer` binary: exit codes, stdout lines, and one-line error
//! messages on stderr.
#![allow(clippy::unwrap_used)]

use crate::util;

use std::ffi::OsStr;
use std::process::Output;

use util::{Env, Relay, bin, good_submission, open_cmd, reviewer};

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The error line, checked to be one `reviewer: …` line plus at most a
/// `hint:` line.
fn error_line(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty() && lines.len() <= 2, "{err:?}");
    assert!(lines[0].starts_with("reviewer: "), "{err:?}");
    if let Some(hint) = lines.get(1) {
        assert!(hint.starts_with("hint: "), "{err:?}");
    }
    lines[0].to_owned()
}

#[test]
fn verify_and_open_print_one_line_per_batch() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s, _) = good_submission("x", &[], &[&r.recipient]);
    let batch = relay.batch(&[s]);
    let id = batch.manifest().batch_id;
    let p = batch.write(&env.path("b1.tar"));

    let o = bin(&[&"verify", &p, &"--relay-key", &relay.key]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("OK batch 1 {id}: 1 submissions\n"));

    let o = open_cmd(&env, &relay, &r.key_file, &[&p]).output();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(&format!("opened batch 1 {id}: 1 submissions into ")),
        "{out}"
    );
    assert!(out.contains(&format!("batch-000001-{id}.json")), "{out}");
}

#[test]
fn tampered_batch_fails_with_one_line() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s, _) = good_submission("x", &[], &[&r.recipient]);
    let mut batch = relay.batch(&[s]);
    batch.members[0].1[20] ^= 1;
    let p = batch.write(&env.path("b1.tar"));
    let o = bin(&[&"verify", &p, &"--relay-key", &relay.key]);
    let line = error_line(&o);
    assert_eq!(
        line,
        format!(
            "reviewer: batch {} is not signed by the pinned relay key (or its signature is damaged): check --relay-key (`relay pubkey` prints it) or do not trust this batch",
            p.display()
        )
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn hostile_plaintext_is_quarantined_with_one_note_line() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let json = util::testimony("t", &[("a.txt", b"hi")]).to_json().to_vec();
    let mut link = util::Entry::file("files/a.txt", Vec::new());
    link.kind = tar::EntryType::Symlink;
    link.link = Some("/etc/passwd");
    let plaintext = util::tar_of(&[
        util::Entry::file("testimony.json", json),
        link,
        util::Entry::file("padding", vec![0u8; 4096]),
    ]);
    let bad = util::sealed(&plaintext, &[&r.recipient]);
    let p = relay
        .batch(std::slice::from_ref(&bad))
        .write(&env.path("b1.tar"));
    let o = open_cmd(&env, &relay, &r.key_file, &[&p]).output();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("quarantined"))
        .collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0].starts_with(&format!(
            "reviewer: note: submission {} is quarantined (an entry is not a regular file",
            bad.id
        )),
        "{}",
        notes[0]
    );
    assert!(!env.out.join(bad.id.to_string()).exists());
    assert!(env.state.exists(), "the batch was accepted");
}

#[test]
fn keygen_prints_the_recipient_and_refuses_to_overwrite() {
    let env = Env::new();
    let key = env.path("k.txt");
    let o = bin(&[&"keygen", &"--out", &key, &"--no-passphrase"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    assert!(out.starts_with("age1"));
    assert!(stderr(&o).contains("[reviewers] recipients"));
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.contains(&format!("# public key: {}", out.trim())));

    let o = bin(&[&"keygen", &"--out", &key, &"--no-passphrase"]);
    let line = error_line(&o);
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
}

#[test]
fn keygen_without_a_terminal_says_to_use_passphrase_file() {
    // With a controlling terminal (a developer running the tests by hand)
    // the passphrase would be asked on it: only the no-terminal case (CI)
    // can be checked without a human.
    if std::fs::File::open("/dev/tty").is_ok() {
        return;
    }
    let env = Env::new();
    let key = env.path("k.age");
    let o = bin(&[&"keygen", &"--out", &key]);
    let line = error_line(&o);
    assert_eq!(
        line,
        "reviewer: no terminal to ask for the passphrase: use --passphrase-file FILE"
    );
    assert!(!key.exists());
}

#[test]
fn empty_passphrase_is_refused() {
    let env = Env::new();
    let key = env.path("k.age");
    let pass = env.path("pass");
    std::fs::write(&pass, "\n").unwrap();
    let o = bin(&[&"keygen", &"--out", &key, &"--passphrase-file", &pass]);
    let line = error_line(&o);
    assert!(line.contains("passphrase is empty"), "{line}");
    assert!(!key.exists());
}

#[test]
fn weak_passphrases_are_refused_unless_allowed() {
    let env = Env::new();
    let pass = env.path("pass");
    for (weak, why) in [
        ("a", "it is 1 character long"),
        ("Almaty2026!!", "a single word"),
        ("correct horse battery staple", "most common passwords"),
        ("1qaz2wsx3edc", "most common passwords"),
    ] {
        std::fs::write(&pass, format!("{weak}\n")).unwrap();
        for reply_signing in [false, true] {
            let key = env.path("k.age");
            let mut args: Vec<&dyn AsRef<OsStr>> =
                vec![&"keygen", &"--out", &key, &"--passphrase-file", &pass];
            if reply_signing {
                args.push(&"--reply-signing");
            }
            let o = bin(&args);
            assert_eq!(o.status.code(), Some(1), "{weak:?}");
            let err = stderr(&o);
            let line = error_line(&o);
            assert!(
                line.contains("the passphrase is too weak"),
                "{weak:?}: {line}"
            );
            assert!(line.contains(why), "{weak:?}: {line}");
            assert!(line.contains("six words chosen at random"), "{line}");
            assert!(line.contains("--allow-weak-passphrase"), "{line}");
            assert!(err.contains("\nhint: "), "{err}");
            if weak.len() > 1 {
                assert!(!err.contains(weak), "the passphrase is echoed: {err}");
            }
            assert!(!key.exists(), "{weak:?}");
            assert!(!env.path("k.age.pub").exists(), "{weak:?}");
        }
    }

    // Allowed on purpose: written, and said so.
    std::fs::write(&pass, "a\n").unwrap();
    let key = env.path("weak.age");
    let o = bin(&[
        &"keygen",
        &"--out",
        &key,
        &"--passphrase-file",
        &pass,
        &"--allow-weak-passphrase",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("age1"));
    assert!(
        stderr(&o).contains("--allow-weak-passphrase"),
        "{}",
        stderr(&o)
    );
    assert!(
        std::fs::read(&key)
            .unwrap()
            .starts_with(b"age-encryption.org/v1\n")
    );

    // Six random words pass without the flag.
    std::fs::write(&pass, "cement tulip grudge ransack omen fiddle\n").unwrap();
    let key = env.path("strong.age");
    let o = bin(&[&"keygen", &"--out", &key, &"--passphrase-file", &pass]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(key.is_file());
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let o = bin(&[&"--help"]);
    assert_eq!(o.status.code(), Some(0));
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
    ] {
        assert!(stdout(&o).contains(cmd), "{cmd} missing from help");
    }
    let o = bin(&[&"verify", &"--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let o = bin(&[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn error_messages_escape_control_characters() {
    let env = Env::new();
    let relay = Relay::new();
    // A batch file name with an escape sequence in it.
    let p = env.path("evil\x1b[2J.tar");
    std::fs::write(&p, b"not a tar").unwrap();
    let o = bin(&[&"verify", &p, &"--relay-key", &relay.key]);
    let line = error_line(&o);
    assert!(!line.contains('\x1b'), "{line:?}");
    assert!(line.contains("\\u{001b}"), "{line:?}");
}

#[test]
fn retire_epoch_without_a_terminal_needs_yes() {
    // With a controlling terminal the confirmation would be asked on it:
    // only the no-terminal case (CI) can be checked without a human.
    if std::fs::File::open("/dev/tty").is_ok() {
        return;
    }
    let env = Env::new();
    let r = reviewer(env.dir.path(), "epoch-1.key");
    let before = std::fs::read(&r.key_file).unwrap();
    let o = bin(&[
        &"retire-epoch",
        &"--identity",
        &r.key_file,
        &"--epoch",
        &"1",
    ]);
    let line = error_line(&o);
    assert_eq!(
        line,
        "reviewer: no terminal to confirm retiring epoch 1 on: nothing was destroyed; run the command on a terminal, or pass --yes if you are sure"
    );
    assert_eq!(std::fs::read(&r.key_file).unwrap(), before);
    assert!(stdout(&o).is_empty());
}

#[test]
fn retire_epoch_with_yes_destroys_the_identity_and_says_so() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "epoch-1.key");
    let len = std::fs::metadata(&r.key_file).unwrap().len();
    let o = bin(&[
        &"retire-epoch",
        &"--identity",
        &r.key_file,
        &"--epoch",
        &"1",
        &"--yes",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!r.key_file.exists());
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[0],
        format!(
            "retired epoch 1: overwrote {} ({len} bytes) with zeros, flushed it to disk and deleted it; it held {}",
            r.key_file.display(),
            r.recipient
        )
    );
    assert!(
        lines[1].contains("backups") && lines[1].contains("copy"),
        "{out}"
    );
    assert!(lines[2].contains("can never be opened again"), "{out}");

    // Gone means gone: a second time is an error, not a success.
    let o = bin(&[
        &"retire-epoch",
        &"--identity",
        &r.key_file,
        &"--epoch",
        &"1",
        &"--yes",
    ]);
    error_line(&o);
}

#[test]
fn retire_epoch_refuses_a_file_that_is_not_an_identity() {
    let env = Env::new();
    let notes = env.path("notes.txt");
    std::fs::write(&notes, "not a key\n").unwrap();
    let o = bin(&[
        &"retire-epoch",
        &"--identity",
        &notes,
        &"--epoch",
        &"2",
        &"--yes",
    ]);
    let line = error_line(&o);
    assert!(
        line.starts_with(&format!(
            "reviewer: {} is not an age identity file (",
            notes.display()
        )),
        "{line}"
    );
    assert!(line.contains("nothing was destroyed"), "{line}");
    assert!(
        stderr(&o).contains("\nhint: retire an epoch only after"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "not a key\n");

    // Epoch 0 does not exist.
    let r = reviewer(env.dir.path(), "k");
    let o = bin(&[
        &"retire-epoch",
        &"--identity",
        &r.key_file,
        &"--epoch",
        &"0",
        &"--yes",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(r.key_file.exists());
}

#[test]
fn wrong_epoch_fails_with_one_line_naming_the_epoch() {
    let env = Env::new();
    let old = reviewer(env.dir.path(), "epoch-1.key");
    let new = reviewer(env.dir.path(), "epoch-2.key");
    let mut relay = Relay::new();
    let (s, _) = good_submission("x", &[], &[&old.recipient]);
    let p = relay
        .batch(std::slice::from_ref(&s))
        .write(&env.path("b1.tar"));
    let o = open_cmd(&env, &relay, &new.key_file, &[&p]).output();
    let line = error_line(&o);
    assert!(
        line.starts_with(&format!(
            "reviewer: this key ({}) is not a recipient of submission {} (is it your reviewer key for epoch 1?)",
            new.key_file.display(),
            s.id
        )),
        "{line}"
    );
    assert!(stderr(&o).contains("\nhint: pass --identity once for each key epoch"));
    util::assert_empty(&env.out);
}

#[test]
fn the_archive_owns_its_state_and_state_is_refused_with_what_to_do() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s, _) = good_submission("x", &[], &[&r.recipient]);
    let p = relay.batch(&[s]).write(&env.path("b1.tar"));

    // A folder a file manager has touched counts as empty.
    std::fs::create_dir_all(&env.out).unwrap();
    std::fs::write(env.out.join(".DS_Store"), b"\0\0\0\x01Bud1").unwrap();
    let o = open_cmd(&env, &relay, &r.key_file, &[&p]).output();
    assert!(o.status.success(), "{}", stderr(&o));
    // The chain state is inside the archive, and nowhere else.
    let state: Vec<_> = testkit::files(&env.out.join(".state"));
    assert_eq!(state.len(), 1, "{state:?}");
    assert!(
        state[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("chain-")
    );

    for args in [
        vec!["verify", "B", "--relay-key", "K", "--state", "/tmp/s"],
        vec![
            "open",
            "B",
            "--relay-key",
            "K",
            "--identity",
            "I",
            "--out",
            "O",
            "--state",
            "/tmp/s",
        ],
        vec!["threads", "O", "--state", "/tmp/s"],
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| match *a {
                "B" => p.display().to_string(),
                "K" => relay.key.clone(),
                "I" => r.key_file.display().to_string(),
                "O" => env.out.display().to_string(),
                other => other.to_owned(),
            })
            .collect();
        let o = testkit::ReviewerCmd::new(&args).output();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let line = error_line(&o);
        assert!(
            line.starts_with("reviewer: --state is gone: each archive keeps its own chain state")
                && line.contains("drop --state"),
            "{line}"
        );
    }
    assert!(!std::path::Path::new("/tmp/s").exists());
}
