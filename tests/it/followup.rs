//! Source follow-up end to end, over real TLS: a source submits and takes a
//! codename → the reviewer fetches and opens the batch, writes a reply
//! offline and pushes it → the source enters the codename, reads the reply
//! and adds testimony with a file → the next batch holds it in the same
//! thread, and the reviewer's thread index groups both across batches.
//! Then the relay's files hold no codename and no plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use e2e::{TestRelay, arg, manifest, reviewer, run};
use reqwest::blocking::multipart::{Form, Part};
use testkit::{codename_of, contains, log_in};

const CANARY_TEXT: &str = "first-testimony-canary-5521";
const CANARY_REPLY: &str = "reply-canary-9137: please tell us the month";
const CANARY_FOLLOWUP: &str = "followup-canary-2290: it was in March";
const CANARY_FILE: &[u8] = b"followup-file-canary-7743";

fn client(relay: &TestRelay) -> reqwest::blocking::Client {
    let pem = std::fs::read(relay.cert()).unwrap();
    let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap();
    reqwest::blocking::Client::builder()
        .tls_certs_only(certs)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn open(relay: &TestRelay, batch: &Path, out: &Path) {
    run(&relay.open_cmd(&[batch]).out(out)).unwrap();
}

#[test]
fn codename_reply_and_follow_up_end_to_end() {
    let relay = TestRelay::start();
    let http = client(&relay);
    let root = relay.root.path().to_owned();

    // 1. The source submits and asks for a codename (the form's default).
    let form = Form::new()
        .text("category", "other")
        .text("text", CANARY_TEXT)
        .text("followup", "yes");
    let res = http
        .post(format!("{}/en/submit", relay.url))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let codename = codename_of(&res.text().unwrap());

    // 2. The reviewer fetches and opens the batch: the submission is in a
    //    thread, whose source recipient lands in the thread index.
    let batch1 = relay.next_batch().unwrap();
    let m1 = manifest(&batch1);
    assert_eq!(m1.threads.len(), 1);
    let thread = m1.threads[0].id;
    assert_eq!(m1.submissions[0].thread, Some(thread));
    let cases = root.join("cases");
    let state = cases.join(".state");
    open(&relay, &batch1, &cases);
    let index = std::fs::read_to_string(state.join("threads.json")).unwrap();
    assert!(index.contains(&thread.to_string()), "{index}");
    assert!(index.contains(&m1.threads[0].recipient));

    // 3. A reply, written offline, encrypted to the source and the reviewer.
    let message = root.join("answer.txt");
    std::fs::write(&message, CANARY_REPLY).unwrap();
    let reviewer_recipient = std::fs::read_to_string(relay.identity())
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    let bundle = root.join("reply-1.json");
    reviewer(&[
        "reply".to_owned(),
        arg(&cases),
        "--signing-key".into(),
        arg(&relay.reply_signing_key()),
        "--thread".into(),
        thread.to_string(),
        "--message".into(),
        arg(&message),
        "--out".into(),
        arg(&bundle),
        "-r".into(),
        reviewer_recipient,
    ])
    .unwrap();
    std::fs::remove_file(&message).unwrap();
    // The signature verifies with the stock minisign CLI and the pinned
    // public key, over the bundle bytes, with the reply-bundle comment.
    let signed = format::SignedReplyBundle::from_json(&std::fs::read(&bundle).unwrap()).unwrap();
    let (inner, sig) = (root.join("inner.json"), root.join("inner.json.minisig"));
    std::fs::write(&inner, signed.bundle_bytes().unwrap()).unwrap();
    std::fs::write(&sig, &signed.signature).unwrap();
    let pinned = format!("{}.pub", relay.reply_signing_key().display());
    let out = std::process::Command::new("minisign")
        .args(["-V", "-p", &pinned, "-m"])
        .arg(&inner)
        .arg("-x")
        .arg(&sig)
        .output()
        .expect("the stock `minisign` CLI (scripts/test installs it)");
    assert!(out.status.success(), "{out:?}");
    assert!(
        contains(
            &out.stdout,
            format!("Trusted comment: {}", format::SIGNED_REPLY_BUNDLE_FORMAT).as_bytes()
        ),
        "{out:?}"
    );
    // The NGO's copy opens with the stock age CLI and the reviewer's key.
    let parsed = signed.bundle().unwrap();
    let sealed = root.join("reply.age");
    std::fs::write(&sealed, parsed.replies[0].ciphertext().unwrap()).unwrap();
    let out = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(relay.identity())
        .arg(&sealed)
        .output()
        .expect("the stock `age` CLI (scripts/test installs it)");
    assert!(out.status.success(), "{out:?}");
    assert!(contains(&out.stdout, CANARY_REPLY.as_bytes()));
    std::fs::remove_file(&sealed).unwrap();

    // 4. Pushed to the relay over the API.
    reviewer(&[
        "push".to_owned(),
        arg(&bundle),
        "--relay".into(),
        relay.url.clone(),
        "--token-file".into(),
        arg(&relay.token_file()),
        "--tls-cert".into(),
        arg(&relay.cert()),
    ])
    .unwrap();
    assert_eq!(relay.stats().replies, 1);

    // 5. The source comes back with the codename and reads the reply.
    let login = log_in(&http, &relay.url, &codename);
    assert_eq!(login.status, 303);
    let cookie = login.cookie.unwrap();
    let page = http
        .get(format!("{}/followup/en/", relay.url))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains(CANARY_REPLY), "{page}");

    // 6. … and adds testimony with a file.
    let form = Form::new().text("text", CANARY_FOLLOWUP).part(
        "files",
        Part::bytes(CANARY_FILE.to_vec())
            .file_name("photo.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let res = http
        .post(format!("{}/followup/en/submit", relay.url))
        .header("cookie", &cookie)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(res.status(), 303);

    // 7. The next batch holds it, in the same thread; the reviewer opens it
    //    and the thread index groups both submissions across batches.
    let batch2 = relay.next_batch().unwrap();
    let m2 = manifest(&batch2);
    assert_eq!(m2.submissions.len(), 1);
    assert_eq!(m2.submissions[0].thread, Some(thread));
    assert_eq!(m2.threads, m1.threads);
    open(&relay, &batch2, &cases);
    let folder = cases.join(m2.submissions[0].id.to_string());
    let text = std::fs::read_to_string(folder.join("testimony.txt")).unwrap();
    assert!(text.contains(CANARY_FOLLOWUP), "{text}");
    assert!(text.contains(&format!("Thread: {thread}")), "{text}");
    let attached: Vec<_> = testkit::files(&folder)
        .into_iter()
        .filter(|f| std::fs::read(f).unwrap() == CANARY_FILE)
        .collect();
    assert_eq!(attached.len(), 1, "the file arrived once");
    let index = std::fs::read_to_string(state.join("threads.json")).unwrap();
    for e in m1.submissions.iter().chain(&m2.submissions) {
        assert!(index.contains(&e.id.to_string()), "{index}");
    }

    // 8. Log out. Then nothing the source or the reviewer wrote, and no
    //    codename, is in the relay's files.
    let res = http
        .post(format!("{}/followup/en/logout", relay.url))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    for f in testkit::files(&relay.data) {
        let bytes = std::fs::read(&f).unwrap();
        for canary in [
            codename.as_bytes(),
            CANARY_TEXT.as_bytes(),
            CANARY_REPLY.as_bytes(),
            CANARY_FOLLOWUP.as_bytes(),
            CANARY_FILE,
        ] {
            assert!(!contains(&bytes, canary), "{} holds a canary", f.display());
        }
    }
}

/// A source's codename, from one submission that asks for one.
fn submit_for_codename(relay: &TestRelay, http: &reqwest::blocking::Client, text: &str) -> String {
    let form = Form::new()
        .text("category", "other")
        .text("text", text.to_owned())
        .text("followup", "yes");
    let res = http
        .post(format!("{}/en/submit", relay.url))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    codename_of(&res.text().unwrap())
}

/// A flood of log-ins with a valid codename (one junk submission gives
/// one) from more clients than there are derivation slots. A real
/// source's log-in still succeeds at the first try, every time, and a new
/// submission still gets its codename. Before sessions were renewed by the
/// codename's keyed hash, every flooded log-in ran Argon2id and the real
/// source got "busy" almost every time.
#[test]
fn a_flood_of_valid_log_ins_costs_no_source_a_log_in_or_a_codename() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    const FLOODERS: usize = 8;
    let relay = TestRelay::start();
    let http = client(&relay);
    let flood_codename = submit_for_codename(&relay, &http, "junk");
    let source_codename = submit_for_codename(&relay, &http, "real testimony");

    let stop = AtomicBool::new(false);
    let (sent, renewed, busy) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    let (source_logins, submission) = std::thread::scope(|s| {
        for _ in 0..FLOODERS {
            let http = client(&relay);
            let (stop, sent, renewed, busy) = (&stop, &sent, &renewed, &busy);
            let (relay, codename) = (&relay, &flood_codename);
            s.spawn(move || {
                // Bounded in time whatever happens to the main thread.
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    let status = log_in(&http, &relay.url, codename).status;
                    sent.fetch_add(1, Ordering::Relaxed);
                    match status {
                        303 => renewed.fetch_add(1, Ordering::Relaxed),
                        503 => busy.fetch_add(1, Ordering::Relaxed),
                        other => panic!("a flooded log-in got {other}"),
                    };
                }
            });
        }
        std::thread::sleep(Duration::from_secs(1));
        // The real source logs in five times, a second apart: each time at
        // the first try, and within a derivation's time plus the flood's
        // queueing (seconds, not "try later").
        let mut logins = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let login = log_in(&http, &relay.url, &source_codename);
            logins.push((login.status, t.elapsed()));
            // Log out again, so that the next log-in derives afresh.
            if let Some(cookie) = login.cookie {
                let res = http
                    .post(format!("{}/followup/en/logout", relay.url))
                    .header("cookie", cookie)
                    .send()
                    .unwrap();
                assert_eq!(res.status(), 200);
            }
            std::thread::sleep(Duration::from_millis(700));
        }
        // A new submission during the flood still gets its codename.
        let t = Instant::now();
        let codename = submit_for_codename(&relay, &http, "more testimony");
        let submission = (codename, t.elapsed());
        stop.store(true, Ordering::Relaxed);
        (logins, submission)
    });
    let flood_secs = started.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "flood: {sent} log-ins from {FLOODERS} clients in {flood_secs:.1} s ({:.0}/s), {} renewed, {} busy; source log-ins {source_logins:?}; submission's codename in {:?}",
        sent as f64 / flood_secs,
        renewed.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed),
        submission.1,
    );
    for (status, took) in &source_logins {
        assert_eq!(
            *status, 303,
            "the source's log-in was refused during the flood"
        );
        assert!(*took < Duration::from_secs(10), "{took:?}");
    }
    assert_eq!(submission.0.split(' ').count(), 8);
    assert!(submission.1 < Duration::from_secs(20), "{:?}", submission.1);
    assert!(sent > 10 * FLOODERS as u64, "the flood ran: {sent}");
}
