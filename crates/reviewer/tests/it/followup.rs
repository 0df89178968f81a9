//! Source follow-up on the reviewer's side: `open` records threads across
//! batches and refuses a batch that contradicts them, `threads` lists them,
//! `reply` writes a bundle only the source and the reviewers can read, and
//! `push` uploads bundles (against a tiny in-test HTTP server).
#![allow(clippy::unwrap_used)]

use crate::util;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use format::{ReplyBundle, ReplyId, ReplyMessage, ThreadId};
use reviewer::Error;
use reviewer::state::StateStore;
use reviewer::threads::ThreadIndex;
use testkit::decrypt;
use util::{
    Env, Relay, Reply, Reviewer, Source, bin, good_submission, new_thread_id, open, open_cmd,
    reviewer, run, serve, source, tree,
};

const TOKEN: &str = "tok_f0llow-up-secret";
const MESSAGE: &str = "Мы получили ваше сообщение. Thank you: can you say which day it was?\n";

// ------------------------------------------------------------------ helpers

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn testimony_txt(env: &Env, id: &format::SubmissionId) -> String {
    std::fs::read_to_string(env.out.join(id.to_string()).join("testimony.txt")).unwrap()
}

fn state_seq(env: &Env, relay: &Relay) -> Option<u64> {
    StateStore::new(&env.state)
        .load(&relay.key)
        .unwrap()
        .map(|s| s.sequence)
}

/// A relay and reviewer with batch 1 opened: one submission in a thread of
/// `src`. Returns the relay, the reviewer and the thread.
fn opened_thread(env: &Env, src: &Source) -> (Relay, Reviewer, ThreadId) {
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let thread = new_thread_id();
    let (s, _) = good_submission("first", &[], &[&r.recipient]);
    let p = relay
        .batch(&[s.in_thread(thread, &src.recipient)])
        .write(&env.path("b1.tar"));
    open(env, &relay, &r, &[&p]).unwrap();
    (relay, r, thread)
}

fn message_file(env: &Env, text: &str) -> PathBuf {
    let p = env.path("message.txt");
    std::fs::write(&p, text).unwrap();
    p
}

/// `reviewer reply` in-process, the source's recipient from the index.
fn reply(
    env: &Env,
    thread: &dyn AsRef<OsStr>,
    message: &Path,
    out: &Path,
    extra: &[&dyn AsRef<OsStr>],
) -> Result<(), Error> {
    let key = signing_key(env);
    let mut args: Vec<&dyn AsRef<OsStr>> = vec![
        &"reply",
        &env.out,
        &"--signing-key",
        &key,
        &"--thread",
        thread,
        &"--message",
        &message,
        &"--out",
        &out,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// The test's reply-signing key (unencrypted), made on first use.
fn signing_key(env: &Env) -> PathBuf {
    let p = env.path("reply-signing.key");
    if !p.exists() {
        reviewer::signing::generate(&p, &reviewer::identity::Protection::None).unwrap();
    }
    p
}

/// `inner` (a relay-replies/1 bundle's bytes), signed with [`signing_key`].
fn signed(env: &Env, inner: &[u8]) -> Vec<u8> {
    let signer = reviewer::signing::ReplySigner::load(
        &signing_key(env),
        &reviewer::identity::PassphraseSource::Terminal,
    )
    .unwrap();
    format::SignedReplyBundle::new(inner, signer.sign_bundle(inner).unwrap()).to_json()
}

/// The one reply of a bundle file, whose signature verifies with the
/// test's key (checked with minisign-verify, not the crate that signed).
fn only_reply(path: &Path) -> (ThreadId, ReplyId, Vec<u8>) {
    let signed = format::SignedReplyBundle::from_json(&std::fs::read(path).unwrap()).unwrap();
    let public = std::fs::read_to_string(reviewer::signing::public_key_path(
        &path.parent().unwrap().join("reply-signing.key"),
    ))
    .unwrap();
    let pk = minisign_verify::PublicKey::decode(&public).unwrap();
    let sig = minisign_verify::Signature::decode(&signed.signature).unwrap();
    pk.verify(&signed.bundle_bytes().unwrap(), &sig, false)
        .unwrap();
    assert_eq!(sig.trusted_comment(), format::SIGNED_REPLY_BUNDLE_FORMAT);
    let bundle = signed.bundle().unwrap();
    assert_eq!(bundle.replies.len(), 1);
    let r = &bundle.replies[0];
    (r.thread, r.id, r.ciphertext().unwrap())
}

// ------------------------------------------------------------ open, threads

#[test]
fn open_groups_a_sources_submissions_across_batches() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let (src1, src2) = (source(), source());
    let (t1, t2) = (new_thread_id(), new_thread_id());
    let mut relay = Relay::new();
    let (a, _) = good_submission("a", &[], &[&r.recipient]);
    let (b, _) = good_submission("b, no codename", &[], &[&r.recipient]);
    let (c, _) = good_submission("c", &[], &[&r.recipient]);
    let (d, _) = good_submission("d, follow-up", &[("more.txt", b"more")], &[&r.recipient]);
    let a = a.in_thread(t1, &src1.recipient);
    let c = c.in_thread(t2, &src2.recipient);
    let d = d.in_thread(t1, &src1.recipient);
    let p1 = relay
        .batch(&[a.clone(), b.clone(), c.clone()])
        .write(&env.path("b1.tar"));
    let p2 = relay
        .batch(std::slice::from_ref(&d))
        .write(&env.path("b2.tar"));

    open(&env, &relay, &r, &[&p1]).unwrap();
    // The second batch through the binary, to see what it prints.
    let o = open_cmd(&env, &relay, &r.key_file, &[&p2]).output();
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("opened batch 2 "), "{out}");
    assert_eq!(lines[1], format!("  submission {}: thread {t1}", d.id));
    assert_eq!(
        lines[2],
        format!("thread {t1}: 2 submissions in batches 1, 2")
    );

    // The thread id sits with the submission's other metadata.
    assert!(testimony_txt(&env, &a.id).contains(&format!("\nThread: {t1}\n")));
    assert!(testimony_txt(&env, &c.id).contains(&format!("\nThread: {t2}\n")));
    assert!(testimony_txt(&env, &d.id).contains(&format!("\nThread: {t1}\n")));
    assert!(!testimony_txt(&env, &b.id).contains("Thread:"));

    // The index, as the library reads it.
    let index = ThreadIndex::load(&StateStore::new(&env.state)).unwrap();
    let th = index.get(&t1).unwrap();
    assert_eq!(th.recipient, src1.recipient);
    let subs: Vec<_> = th
        .submissions
        .iter()
        .map(|s| (s.id, s.batch_sequence, s.relay_key.as_str()))
        .collect();
    assert_eq!(
        subs,
        vec![(a.id, 1, relay.key.as_str()), (d.id, 2, relay.key.as_str())]
    );
    assert_eq!(index.get(&t2).unwrap().recipient, src2.recipient);
    assert_eq!(index.threads().count(), 2);
    #[cfg(unix)]
    assert_eq!(util::mode(&env.state.join("threads.json")), 0o600);

    // `reviewer threads`: each thread with its submissions across batches.
    let out = stdout(&bin(&[&"threads", &env.out]));
    let day = util::day();
    let sub_line = |id: &format::SubmissionId, seq| {
        format!(
            "  submission {id}  batch {seq}  received {day}  relay {}",
            relay.key
        )
    };
    let mut expected = vec![
        (
            t1,
            vec![
                format!(
                    "thread {t1}: 2 submissions in batches 1, 2; source recipient {}",
                    src1.recipient
                ),
                sub_line(&a.id, 1),
                sub_line(&d.id, 2),
            ],
        ),
        (
            t2,
            vec![
                format!(
                    "thread {t2}: 1 submission in batch 1; source recipient {}",
                    src2.recipient
                ),
                sub_line(&c.id, 1),
            ],
        ),
    ];
    expected.sort_by_key(|(t, _)| *t);
    let expected: Vec<String> = expected.into_iter().flat_map(|(_, l)| l).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
}

#[test]
fn threads_with_no_index_says_so() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (s1, _) = good_submission("no thread", &[], &[&r.recipient]);
    let p1 = relay.batch(&[s1]).write(&env.path("b1.tar"));
    util::open(&env, &relay, &r, &[&p1]).unwrap();
    let out = stdout(&bin(&[&"threads", &env.out]));
    assert!(out.starts_with("no threads in the archive "), "{out}");
    // Not an archive: the error says what to pass.
    let o = bin(&[&"threads", &env.path("nowhere")]);
    assert!(!o.status.success());
}

#[test]
fn a_known_thread_with_another_recipient_is_refused() {
    let env = Env::new();
    let src = source();
    let (mut relay, r, thread) = opened_thread(&env, &src);
    let index_before = std::fs::read(env.state.join("threads.json")).unwrap();
    let out_before = tree(&env.out);

    let impostor = source();
    let (e1, _) = good_submission("unrelated", &[], &[&r.recipient]);
    let (e2, _) = good_submission("follow-up", &[], &[&r.recipient]);
    let p2 = relay
        .batch(&[e1, e2.in_thread(thread, &impostor.recipient)])
        .write(&env.path("b2.tar"));
    let e = open(&env, &relay, &r, &[&p2]).unwrap_err();
    assert!(
        matches!(&e, Error::Thread(reviewer::threads::ThreadError::ThreadConflict { thread: t, sequence: 2, .. }) if *t == thread),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("another source recipient"), "{msg}");
    assert!(
        msg.contains(&impostor.recipient) && msg.contains(&src.recipient),
        "{msg}"
    );
    assert!(msg.contains("nothing was written"), "{msg}");
    // Nothing of batch 2: no folder, no receipt, chain and index unchanged.
    assert_eq!(tree(&env.out), out_before);
    assert_eq!(state_seq(&env, &relay), Some(1));
    assert_eq!(
        std::fs::read(env.state.join("threads.json")).unwrap(),
        index_before
    );
}

#[test]
fn a_contradiction_between_batches_of_one_open_refuses_them_all() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let (src, impostor) = (source(), source());
    let thread = new_thread_id();
    let mut relay = Relay::new();
    let (a, _) = good_submission("a", &[], &[&r.recipient]);
    let (b, _) = good_submission("b", &[], &[&r.recipient]);
    let p1 = relay
        .batch(&[a.in_thread(thread, &src.recipient)])
        .write(&env.path("b1.tar"));
    let p2 = relay
        .batch(&[b.in_thread(thread, &impostor.recipient)])
        .write(&env.path("b2.tar"));
    let e = open(&env, &relay, &r, &[&p1, &p2]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Thread(reviewer::threads::ThreadError::ThreadConflict { sequence: 2, .. })
        ),
        "{e}"
    );
    // Refused before the first batch was opened.
    util::assert_empty(&env.out);
    assert_eq!(state_seq(&env, &relay), None);
    assert!(!env.state.join("threads.json").exists());
}

// -------------------------------------------------------------------- reply

#[test]
fn reply_is_readable_by_the_source_and_the_reviewers_only() {
    let env = Env::new();
    let src = source();
    let (_relay, r, thread) = opened_thread(&env, &src);
    let colleague = reviewer(env.dir.path(), "colleague.key");
    let stranger = reviewer(env.dir.path(), "stranger.key");
    let message = message_file(&env, MESSAGE);
    let bundle = env.path("reply.json");

    let o = bin(&[
        &"reply",
        &env.out,
        &"--signing-key",
        &signing_key(&env),
        &"--thread",
        &thread.to_string(),
        &"--message",
        &message,
        &"--out",
        &bundle,
        &"-r",
        &r.recipient.to_string(),
        &"--recipient",
        &colleague.recipient.to_string(),
    ]);
    let out = stdout(&o);
    let (t, id, ciphertext) = only_reply(&bundle);
    assert_eq!(t, thread);
    assert_eq!(
        out,
        format!(
            "wrote reply {id} to thread {thread} into {} (encrypted to the source and 2 reviewer recipients)\n",
            bundle.display()
        )
    );
    #[cfg(unix)]
    assert_eq!(util::mode(&bundle), 0o600);
    assert!(ciphertext.starts_with(b"age-encryption.org/v1\n"));

    // The source and each reviewer read the same message; nobody else.
    for identity in [&src.identity, &r.identity, &colleague.identity] {
        let plain = decrypt(identity, &ciphertext).unwrap();
        let m = ReplyMessage::from_json(&plain).unwrap();
        assert_eq!(m.text.as_str(), MESSAGE);
        assert_eq!(m.written_day, format::Day::today());
    }
    assert!(decrypt(&stranger.identity, &ciphertext).is_err());

    // The plaintext is nowhere but in the message file the reviewer wrote
    // and the archive's record of sent replies (private, like testimony).
    let needle = "Thank you: can you say";
    let record = Path::new("out").join("replies.json");
    for (path, bytes) in tree(env.dir.path()) {
        if path == record {
            assert!(testkit::contains(&bytes, needle.as_bytes()));
        } else if path != Path::new("message.txt") {
            assert!(
                !testkit::contains(&bytes, needle.as_bytes()),
                "the message leaked into {}",
                path.display()
            );
        }
    }
    #[cfg(unix)]
    assert_eq!(util::mode(&env.out.join("replies.json")), 0o600);
}

#[test]
fn a_sent_reply_is_in_the_archive_thread_show_and_replies() {
    let env = Env::new();
    let src = source();
    let (_relay, r, thread) = opened_thread(&env, &src);
    let message = message_file(&env, MESSAGE);
    // An id prefix, as `list --thread` takes.
    let prefix = &thread.to_string()[..8];
    let o = bin(&[
        &"reply",
        &env.out,
        &"--signing-key",
        &signing_key(&env),
        &"--thread",
        &prefix,
        &"--message",
        &message,
        &"--out",
        &env.path("reply.json"),
        &"-r",
        &r.recipient.to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).contains(&format!("to thread {thread} ")),
        "{}",
        stdout(&o)
    );

    // `replies`: the text, under its thread, with the day written.
    let out = stdout(&bin(&[&"replies", &env.out, &"--thread", &prefix]));
    assert!(
        out.starts_with(&format!("thread {thread}:\n  reply ")),
        "{out}"
    );
    assert!(
        out.contains(&format!(", written {}:\n", format::Day::today())),
        "{out}"
    );
    assert!(
        out.contains("    Мы получили ваше сообщение. Thank you"),
        "{out}"
    );
    // `threads` counts it; `show` of the thread's submission lists it.
    let out = stdout(&bin(&[&"threads", &env.out]));
    assert!(out.contains("; 1 reply sent; source recipient"), "{out}");
    let index = reviewer::archive::Archive::open(&env.out).unwrap();
    let sub = index.submissions().next().unwrap().id;
    let out = stdout(&bin(&[&"show", &env.out, &sub.to_string()]));
    assert!(out.contains("Replies sent in this thread (1):"), "{out}");
    assert!(out.contains("can you say which day it was?"), "{out}");
    // The report's thread page shows it.
    let site = env.path("site");
    let o = bin(&[&"report", &env.out, &"--out", &site]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page =
        std::fs::read_to_string(site.join("threads").join(format!("{thread}.html"))).unwrap();
    let section = &page[page.find("Replies sent to this source").unwrap()..];
    assert!(
        section.contains("Мы получили ваше сообщение. Thank you: can you say which day it was?"),
        "{section}"
    );
    // Another thread has none.
    let other = reviewer::run(
        testkit::ReviewerCmd::new(["replies"])
            .arg(&env.out)
            .arg("--thread")
            .arg("ffffff")
            .argv(),
    );
    assert!(other.is_err());
}

#[test]
fn reply_reads_reviewers_from_a_recipients_file() {
    let env = Env::new();
    let src = source();
    let (_relay, r, thread) = opened_thread(&env, &src);
    let colleague = reviewer(env.dir.path(), "colleague.key");
    let list = env.path("reviewers.txt");
    std::fs::write(
        &list,
        format!(
            "# NGO reviewers\n\n{}\n  # colleague\n{}\n",
            r.recipient, colleague.recipient
        ),
    )
    .unwrap();
    let bundle = env.path("reply.json");
    let message = message_file(&env, MESSAGE);
    reply(
        &env,
        &thread.to_string(),
        &message,
        &bundle,
        &[&"--recipients-file", &list],
    )
    .unwrap();
    let (_, _, ciphertext) = only_reply(&bundle);
    for identity in [&src.identity, &r.identity, &colleague.identity] {
        assert!(decrypt(identity, &ciphertext).is_ok());
    }

    // A line that is not a recipient: refused, naming the line.
    std::fs::write(&list, format!("{}\nAGE-SECRET-KEY-1QQQ\n", r.recipient)).unwrap();
    let other = env.path("reply2.json");
    let e = reply(
        &env,
        &thread.to_string(),
        &message,
        &other,
        &[&"--recipients-file", &list],
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Reply(reviewer::reply::ReplyError::BadRecipientsFile { line: 2, .. })
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("SECRET"), "{e}");
    assert!(!other.exists());
}

#[test]
fn reply_to_an_unknown_thread_writes_nothing() {
    let env = Env::new();
    let src = source();
    let (_relay, r, _thread) = opened_thread(&env, &src);
    let unknown = new_thread_id();
    let bundle = env.path("reply.json");
    let message = message_file(&env, MESSAGE);
    let e = reply(
        &env,
        &unknown.to_string(),
        &message,
        &bundle,
        &[&"-r", &r.recipient.to_string()],
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Archive(reviewer::archive::ArchiveError::UnknownThread { given, .. }) if *given == unknown.to_string()),
        "{e}"
    );
    assert!(e.to_string().contains("`reviewer threads "), "{e}");
    assert!(!bundle.exists());

    // Not a thread id at all: refused, saying what an id looks like.
    let e = reply(
        &env,
        &"xyz",
        &message,
        &bundle,
        &[&"-r", &r.recipient.to_string()],
    )
    .unwrap_err();
    assert!(e.to_string().contains("32 hexadecimal digits"), "{e}");
    assert!(!bundle.exists());
}

#[test]
fn reply_without_a_reviewer_recipient_is_refused() {
    let env = Env::new();
    let src = source();
    let (_relay, _r, thread) = opened_thread(&env, &src);
    let bundle = env.path("reply.json");
    let message = message_file(&env, MESSAGE);
    let e = reply(&env, &thread.to_string(), &message, &bundle, &[]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Reply(reviewer::reply::ReplyError::NoReviewerRecipient)
        ),
        "{e}"
    );
    assert!(e.to_string().contains("readable copy"), "{e}");
    // The source's own recipient is no copy for the NGO.
    let e = reply(
        &env,
        &thread.to_string(),
        &message,
        &bundle,
        &[&"-r", &src.recipient],
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Reply(reviewer::reply::ReplyError::NoReviewerRecipient)
        ),
        "{e}"
    );
    // Not a recipient.
    let e = reply(
        &env,
        &thread.to_string(),
        &message,
        &bundle,
        &[&"-r", &"age1notakey"],
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Reply(reviewer::reply::ReplyError::BadRecipient { .. })
        ),
        "{e}"
    );
    assert!(!bundle.exists());
}

#[test]
fn reply_with_an_empty_or_overlong_message_is_refused() {
    let env = Env::new();
    let src = source();
    let (_relay, r, thread) = opened_thread(&env, &src);
    let bundle = env.path("reply.json");
    let max = format::MAX_REPLY_TEXT_CHARS;
    for (text, reason) in [
        ("".to_owned(), "empty".to_owned()),
        ("  \n\n".to_owned(), "empty".to_owned()),
        ("x".repeat(max + 1), format!("longer than {max} characters")),
    ] {
        let message = message_file(&env, &text);
        let e = reply(
            &env,
            &thread.to_string(),
            &message,
            &bundle,
            &[&"-r", &r.recipient.to_string()],
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Reply(reviewer::reply::ReplyError::BadReplyMessage { reason: got, .. }) if got.contains(&reason)),
            "{reason}: {e}"
        );
        assert!(!bundle.exists());
    }
}

#[test]
fn reply_never_overwrites_the_output() {
    let env = Env::new();
    let src = source();
    let (_relay, r, thread) = opened_thread(&env, &src);
    let bundle = env.path("reply.json");
    std::fs::write(&bundle, b"an earlier reply").unwrap();
    let message = message_file(&env, MESSAGE);
    let e = reply(
        &env,
        &thread.to_string(),
        &message,
        &bundle,
        &[&"-r", &r.recipient.to_string()],
    )
    .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert!(e.to_string().contains("refusing to overwrite"), "{e}");
    assert_eq!(std::fs::read(&bundle).unwrap(), b"an earlier reply");
}

#[test]
fn reply_from_batch_files_trusts_only_verified_batches() {
    let env = Env::new();
    let r = reviewer(env.dir.path(), "reviewer.key");
    let src = source();
    let thread = new_thread_id();
    let mut relay = Relay::new();
    let dir = env.path("batches");
    std::fs::create_dir(&dir).unwrap();
    let (a, _) = good_submission("a", &[], &[&r.recipient]);
    let (b, _) = good_submission("b", &[], &[&r.recipient]);
    relay
        .batch(&[a.in_thread(thread, &src.recipient)])
        .write(&dir.join("batch-000001.tar"));
    // The archive the reply is recorded in holds nothing of this relay.
    let mut elsewhere = Relay::new();
    let (c, _) = good_submission("elsewhere", &[], &[&r.recipient]);
    let pc = elsewhere.batch(&[c]).write(&env.path("elsewhere.tar"));
    util::open(&env, &elsewhere, &r, &[&pc]).unwrap();
    relay.batch(&[b]).write(&dir.join("batch-000002.tar"));
    let message = message_file(&env, MESSAGE);
    let from_batches = |out: &Path, key: &str| {
        run(&[
            &"reply",
            &env.out,
            &"--signing-key",
            &signing_key(&env),
            &"--thread",
            &thread.to_string(),
            &"--message",
            &message,
            &"--out",
            &out,
            &"-r",
            &r.recipient.to_string(),
            &"--batch-dir",
            &dir,
            &"--relay-key",
            &key,
        ])
    };

    // No `open` ran: the recipient comes from the verified batch files.
    let bundle = env.path("reply.json");
    from_batches(&bundle, &relay.key).unwrap();
    let (t, _, ciphertext) = only_reply(&bundle);
    assert_eq!(t, thread);
    assert!(decrypt(&src.identity, &ciphertext).is_ok());
    assert!(decrypt(&r.identity, &ciphertext).is_ok());

    // Another relay key: the batches do not verify, no reply.
    let out = env.path("reply2.json");
    let e = from_batches(&out, &Relay::new().key).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::BadSignature { .. })
        ),
        "{e}"
    );
    assert!(!out.exists());

    // A forged batch naming the thread with someone else's recipient.
    let forger = Relay {
        key: relay.key.clone(),
        ..Relay::new()
    };
    let impostor = source();
    let (c, _) = good_submission("c", &[], &[&r.recipient]);
    forger
        .batch_at(3, None, &[c.in_thread(thread, &impostor.recipient)])
        .write(&dir.join("batch-000003.tar"));
    let e = from_batches(&out, &relay.key).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Verify(reviewer::verify::VerifyError::BadSignature { .. })
        ),
        "{e}"
    );
    assert!(!out.exists());
    std::fs::remove_file(dir.join("batch-000003.tar")).unwrap();

    // A thread no batch names.
    let e = run(&[
        &"reply",
        &env.out,
        &"--signing-key",
        &signing_key(&env),
        &"--thread",
        &new_thread_id().to_string(),
        &"--message",
        &message,
        &"--out",
        &out,
        &"-r",
        &r.recipient.to_string(),
        &"--batch-dir",
        &dir,
        &"--relay-key",
        &relay.key,
    ])
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Thread(reviewer::threads::ThreadError::ThreadNotInBatches { checked: 2, .. })
        ),
        "{e}"
    );
    assert!(!out.exists());

    // --batch-dir needs --relay-key.
    let e = run(&[
        &"reply",
        &env.out,
        &"--signing-key",
        &signing_key(&env),
        &"--thread",
        &thread.to_string(),
        &"--message",
        &message,
        &"--out",
        &out,
        &"-r",
        &r.recipient.to_string(),
        &"--batch-dir",
        &dir,
    ])
    .unwrap_err();
    assert!(matches!(e, Error::Usage(_)), "{e}");
}

// --------------------------------------------------------------------- push

fn token_file(env: &Env) -> PathBuf {
    let p = env.path("token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    p
}

/// A well-formed bundle file of `n` replies (the ciphertext is not a real
/// age file: the reviewer cannot tell, only the relay checks that).
fn bundle_file(env: &Env, name: &str, n: u8) -> PathBuf {
    let mut b = ReplyBundle::new();
    for i in 0..n {
        b.push(
            new_thread_id(),
            ReplyId::from_bytes([i + 1; 16]),
            b"age-encryption.org/v1\n-> X25519 stanza\n",
        );
    }
    let p = env.path(name);
    std::fs::write(&p, signed(env, &b.to_json())).unwrap();
    p
}

fn push(bundles: &[&Path], url: &str, token: &Path) -> Result<(), Error> {
    let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"push"];
    for b in bundles {
        args.push(b);
    }
    args.extend([
        &"--relay" as &dyn AsRef<OsStr>,
        &url,
        &"--token-file",
        &token,
    ]);
    run(&args)
}

#[test]
fn push_sends_each_bundle_with_the_token_and_prints_the_counts() {
    let env = Env::new();
    let token = token_file(&env);
    let b1 = bundle_file(&env, "one.json", 1);
    let b2 = bundle_file(&env, "two.json", 2);
    let server = serve(|req| {
        if req.method == "POST" && req.path == "/api/v1/replies" {
            Reply::json(r#"{"stored": 1, "already_held": 1, "deleted_by_source": 0}"#)
        } else {
            Reply::new(404, Vec::new())
        }
    });
    let o = bin(&[
        &"push",
        &b1,
        &b2,
        &"--relay",
        &server.url,
        &"--token-file",
        &token,
    ]);
    let out = stdout(&o);
    assert_eq!(
        out,
        format!(
            "pushed {} (1 reply): 1 stored, 1 already held, 0 deleted by the source\n\
             pushed {} (2 replies): 1 stored, 1 already held, 0 deleted by the source\n",
            b1.display(),
            b2.display()
        )
    );
    let reqs = server.requests.lock().unwrap();
    assert_eq!(reqs.len(), 2);
    for (req, file) in reqs.iter().zip([&b1, &b2]) {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/api/v1/replies");
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.body, std::fs::read(file).unwrap());
    }
}

#[test]
fn push_explains_what_the_relay_refused() {
    let env = Env::new();
    let token = token_file(&env);
    let b = bundle_file(&env, "reply.json", 1);

    let server = serve(|_| Reply::new(401, Vec::new()));
    let e = push(&[&b], &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::TokenRefused { .. })
        ),
        "{e}"
    );

    let server = serve(|_| {
        Reply::new(
            422,
            "reply 0101… names a thread this relay does not know\nmore detail",
        )
    });
    let e = push(&[&b], &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::BundleRefused { .. })
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "the relay refused {} (422: reply 0101… names a thread this relay does not know): nothing of it was stored; check that each reply's thread comes from this relay's batches",
            b.display()
        )
    );

    let server = serve(|_| Reply::new(400, "not a reply bundle"));
    let e = push(&[&b], &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::BundleMalformed { .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("(400: not a reply bundle)"), "{e}");

    let server = serve(|_| Reply::new(413, Vec::new()));
    let e = push(&[&b], &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::BundleTooLarge { .. })
        ),
        "{e}"
    );

    let server = serve(|_| Reply::json(r#"{"stored": "all"}"#));
    let e = push(&[&b], &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::BadResponse { .. })
        ),
        "{e}"
    );

    let server = serve(|_| Reply::new(500, Vec::new()));
    let e = push(&[&b], &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::UnexpectedStatus { status: 500, .. })
        ),
        "{e}"
    );
}

#[test]
fn push_refuses_a_malformed_bundle_before_any_request() {
    let env = Env::new();
    let token = token_file(&env);
    let good = bundle_file(&env, "good.json", 1);
    let server =
        serve(|_| Reply::json(r#"{"stored": 1, "already_held": 0, "deleted_by_source": 0}"#));

    let not_base64 = env.path("bad.json");
    let mut b = ReplyBundle::new();
    b.push(new_thread_id(), ReplyId::from_bytes([1; 16]), b"x");
    b.replies[0].age = "%%%".into();
    std::fs::write(&not_base64, signed(&env, &b.to_json())).unwrap();
    let empty = env.path("empty.json");
    std::fs::write(&empty, signed(&env, &ReplyBundle::new().to_json())).unwrap();
    let unsigned = env.path("unsigned.json");
    let mut b = ReplyBundle::new();
    b.push(new_thread_id(), ReplyId::from_bytes([1; 16]), b"x");
    std::fs::write(&unsigned, b.to_json()).unwrap();
    let other = env.path("other.json");
    std::fs::write(&other, b"{\"batches\": []}").unwrap();

    for bad in [&not_base64, &empty, &other, &unsigned] {
        // The good bundle comes first: it is not sent either.
        let e = push(&[&good, bad], &server.url, &token).unwrap_err();
        assert!(
            matches!(&e, Error::Reply(reviewer::reply::ReplyError::BadBundle { path, .. }) if path == bad),
            "{}: {e}",
            bad.display()
        );
        assert!(e.to_string().contains("nothing was sent"), "{e}");
    }
    assert!(server.requests.lock().unwrap().is_empty());
}

#[test]
fn help_shows_examples_for_the_follow_up_commands() {
    let out = stdout(&bin(&[&"--help"]));
    for cmd in ["threads", "reply", "push"] {
        assert!(out.contains(cmd), "{cmd} missing from help: {out}");
    }
    let out = stdout(&bin(&[&"reply", &"--help"]));
    assert!(out.contains("Examples:"), "{out}");
    assert!(out.contains("reviewer reply ~/cases --thread"), "{out}");
    assert!(out.contains("--recipients-file"), "{out}");
    let out = stdout(&bin(&[&"push", &"--help"]));
    assert!(out.contains("reviewer push reply-1.json"), "{out}");
    assert!(out.contains("relay import-replies"), "{out}");
    let out = stdout(&bin(&[&"threads", &"--help"]));
    assert!(out.contains("Examples:"), "{out}");
}

#[test]
fn a_deleted_thread_index_is_rebuilt_from_the_archives_signed_manifests() {
    let env = Env::new();
    let src = source();
    let (_relay, _r, thread) = opened_thread(&env, &src);
    let index = env.state.join("threads.json");
    let before = std::fs::read(&index).unwrap();
    std::fs::remove_dir_all(&env.state).unwrap();
    let out = stdout(&bin(&[&"threads", &env.out]));
    assert!(
        out.starts_with(&format!("thread {thread}: 1 submission")),
        "{out}"
    );
    assert_eq!(std::fs::read(&index).unwrap(), before);

    // A custody manifest edited since: the rebuild refuses, naming it.
    std::fs::remove_file(&index).unwrap();
    let custody = testkit::files(&env.out.join(".custody"));
    let manifest = custody
        .iter()
        .find(|p| p.ends_with("manifest.json"))
        .unwrap();
    let mut bytes = std::fs::read(manifest).unwrap();
    bytes.push(b' ');
    std::fs::write(manifest, bytes).unwrap();
    let o = bin(&[&"threads", &env.out]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("cannot be rebuilt") && err.contains("reviewer verify-archive"),
        "{err}"
    );
    assert!(!index.exists());
}
