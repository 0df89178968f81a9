//! End to end: a source submits over real TLS, the relay seals into sled,
//! a reviewer fetches, verifies and opens the batch, and acknowledges it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use e2e::{
    TestRelay, arg, files_containing, random_with_canary, reviewer, run, tar_members, write_tar,
};
use testkit::ReviewerCmd;

/// A tar's members with their bytes.
type Members = Vec<(String, Vec<u8>)>;

const CATEGORY: &str = "prisoners";

/// Opens every batch in `batches` (in order) into the archive `out`.
fn open(relay: &TestRelay, batches: &[&Path], out: &Path) -> Result<(), reviewer::Error> {
    run(&relay.open_cmd(batches).out(out))
}

/// `reviewer verify BATCH --archive ARCHIVE`: against what the archive holds.
fn verify(relay: &TestRelay, batch: &Path, archive: &Path) -> Result<(), reviewer::Error> {
    reviewer(&[
        "verify".to_owned(),
        arg(batch),
        "--relay-key".into(),
        relay.pubkey(),
        "--archive".into(),
        arg(archive),
    ])
}

/// The single submission directory `open` wrote into `out`.
fn submission_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().len() == 32)
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn submit_fetch_verify_open_ack_over_tls() {
    let relay = TestRelay::start();
    let text_canary = "CANARY-testimony-5f1c0e";
    let file_canary = b"CANARY-attachment-9b2d77";
    let big = random_with_canary(50 * 1024 * 1024, file_canary);
    let small = b"a small note".to_vec();
    let evil = b"contents of a file with a hostile name".to_vec();

    let (status, body) = relay.submit(
        CATEGORY,
        &format!("They took him at night. {text_canary}"),
        &[
            ("../../evil", &evil),
            ("video.bin", &big),
            ("note.txt", &small),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Received and stored safely"), "{body}");
    assert_eq!(relay.stats().submissions, 1);

    // Seizure: nothing under the data dir (store, spool, keys) holds plaintext.
    for needle in [
        text_canary.as_bytes(),
        file_canary,
        b"They took him",
        &big[1000..1064],
    ] {
        let hits = files_containing(&relay.data, needle);
        assert!(hits.is_empty(), "plaintext found in {hits:?}");
    }

    // Reviewer, online: fetch with the relay's self-signed certificate pinned.
    let work = relay.root.path().join("reviewer");
    let batches = work.join("batches");
    reviewer(&[
        "fetch".to_owned(),
        "--relay".into(),
        relay.url.clone(),
        "--token-file".into(),
        arg(&relay.token_file()),
        "--tls-cert".into(),
        arg(&relay.cert()),
        "--out".into(),
        arg(&batches),
    ])
    .unwrap();
    let fetched = testkit::files(&batches);
    assert_eq!(fetched.len(), 1, "{fetched:?}");

    // Offline: verify, then open.
    let out = work.join("opened");
    verify(&relay, &fetched[0], &out).unwrap();
    open(&relay, &[&fetched[0]], &out).unwrap();

    let sub = submission_dir(&out);
    let testimony = std::fs::read_to_string(sub.join("testimony.json")).unwrap();
    assert!(testimony.contains(text_canary));
    assert!(testimony.contains(CATEGORY));
    assert!(
        std::fs::read_to_string(sub.join("testimony.txt"))
            .unwrap()
            .contains(text_canary)
    );
    // Each under its place and name (`format::disk_name`).
    assert_eq!(std::fs::read(sub.join("files/02-video.bin")).unwrap(), big);
    assert_eq!(std::fs::read(sub.join("files/03-note.txt")).unwrap(), small);
    // The hostile name was reduced to its last component, inside the folder.
    assert_eq!(std::fs::read(sub.join("files/01-evil")).unwrap(), evil);
    let outside: Vec<_> = testkit::files(relay.root.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("evil"))
        })
        .collect();
    assert_eq!(outside, [sub.join("files/01-evil")]);

    // The stock age CLI decrypts the stored submission and stock tar unpacks it.
    let members = tar_members(&fetched[0]);
    let age_file = work.join("sub.age");
    std::fs::write(&age_file, &members[2].1).unwrap();
    let stock = work.join("stock");
    std::fs::create_dir_all(&stock).unwrap();
    let status = Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; age -d -i \"$1\" \"$2\" | tar -x -C \"$3\"")
        .arg("bash")
        .arg(relay.identity())
        .arg(&age_file)
        .arg(&stock)
        .status()
        .expect("run sh (the stock `age` CLI must be installed: scripts/test installs it)");
    assert!(
        status.success(),
        "age -d | tar -x failed: install the Debian package `age`"
    );
    assert_eq!(std::fs::read(stock.join("files/video.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read(stock.join("testimony.json")).unwrap(),
        std::fs::read(sub.join("testimony.json")).unwrap()
    );

    // Ack: the relay deletes the submission, and only then.
    assert_eq!(relay.stats().submissions, 1);
    let receipts = testkit::files(&out.join("receipts"));
    assert_eq!(receipts.len(), 1);
    reviewer(&[
        "ack".to_owned(),
        arg(&receipts[0]),
        "--relay".into(),
        relay.url.clone(),
        "--token-file".into(),
        arg(&relay.token_file()),
        "--tls-cert".into(),
        arg(&relay.cert()),
    ])
    .unwrap();
    assert_eq!(relay.stats().submissions, 0);
    assert_eq!(relay.stats().ciphertext_bytes, 0);
}

#[test]
fn every_configured_reviewer_can_open() {
    // Two extra reviewers beside the demo one: each decrypts on their own.
    let extra: Vec<(String, String)> = (0..2)
        .map(|_| {
            let (text, recipient) = relay::seal::generate_identity(format::Day::today(), "test");
            (text.to_string(), recipient)
        })
        .collect();
    let recipients: Vec<String> = extra.iter().map(|(_, r)| format!("\"{r}\"")).collect();
    let relay = TestRelay::start_with(|t| {
        t.replace(
            "recipients = [",
            &format!("recipients = [{}, ", recipients.join(", ")),
        )
    });
    assert_eq!(relay.state().recipients().len(), 3);
    let (status, _) = relay.submit(CATEGORY, "three reviewers", &[]);
    assert_eq!(status, 200);
    let batch = relay.next_batch().unwrap();
    for (n, (identity, _)) in extra.iter().enumerate() {
        let id_file = relay.root.path().join(format!("reviewer{n}.key"));
        std::fs::write(&id_file, identity).unwrap();
        let out = relay.root.path().join(format!("out{n}"));
        let open = ReviewerCmd::open([&batch])
            .identity(&id_file)
            .relay_key(relay.pubkey())
            .out(&out);
        run(&open).unwrap();
        let t = std::fs::read_to_string(submission_dir(&out).join("testimony.json")).unwrap();
        assert!(t.contains("three reviewers"));
    }
}

#[test]
fn api_refuses_missing_and_wrong_tokens() {
    let relay = TestRelay::start();
    assert_eq!(relay.submit(CATEGORY, "kept", &[]).0, 200);
    let client = relay.client();
    let get = |path: &str, token: Option<&str>| {
        let mut req = client.get(format!("{}{path}", relay.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap().status().as_u16()
    };
    let wrong = "x".repeat(43);
    for path in ["/api/v1/batches", "/api/v1/batches/next"] {
        assert_eq!(get(path, None), 401, "{path}");
        assert_eq!(get(path, Some(&wrong)), 401, "{path}");
        assert_eq!(get(path, Some("")), 401, "{path}");
    }
    // A token in another header form does not count either.
    let status = client
        .get(format!("{}/api/v1/batches/next", relay.url))
        .header("Authorization", relay.token())
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 401);
    // Nothing was exported.
    assert_eq!(relay.stats().unexported, 1);
    assert!(relay.state().store().unacked_batches().unwrap().is_empty());

    // With the token: a batch; then an ack with a wrong token deletes nothing.
    let batch = relay.next_batch().unwrap();
    let members = tar_members(&batch);
    let manifest = format::Manifest::from_json(&members[0].1).unwrap();
    let ack_url = format!("{}/api/v1/batches/{}/ack", relay.url, manifest.batch_id);
    let body = serde_json_body(&format::Digest::of(&members[0].1));
    for token in [None, Some(wrong.as_str())] {
        let mut req = client.post(&ack_url).body(body.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().unwrap().status(), 401);
    }
    assert_eq!(relay.stats().submissions, 1);
    // A right token with the wrong manifest hash: 409, nothing deleted.
    let res = client
        .post(&ack_url)
        .bearer_auth(relay.token())
        .body(serde_json_body(&format::Digest::of(b"another manifest")))
        .send()
        .unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(relay.stats().submissions, 1);
    // And the right one deletes.
    let res = client
        .post(&ack_url)
        .bearer_auth(relay.token())
        .body(body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(relay.stats().submissions, 0);
}

fn serde_json_body(digest: &format::Digest) -> String {
    format!("{{\"manifest_sha256\": \"{digest}\"}}")
}

#[test]
fn batches_can_be_downloaded_again_identically_until_acked() {
    let relay = TestRelay::start();
    assert_eq!(relay.submit(CATEGORY, "one", &[]).0, 200);
    let first = relay.next_batch().unwrap();
    assert!(
        relay.next_batch().is_none(),
        "no new submissions, no new batch"
    );
    let manifest = format::Manifest::from_json(&tar_members(&first)[0].1).unwrap();
    let again = relay
        .client()
        .get(format!(
            "{}/api/v1/batches/{}",
            relay.url, manifest.batch_id
        ))
        .bearer_auth(relay.token())
        .send()
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.bytes().unwrap().to_vec(),
        std::fs::read(&first).unwrap()
    );
}

#[test]
fn refused_submissions_store_nothing() {
    let relay = TestRelay::start_with(|t| {
        format!(
            "{t}\n[limits]\nmax_submission_bytes = 1048576\nmax_files = 2\nmax_text_chars = 1000\n"
        )
    });
    let two_mib = vec![1u8; 2 * 1024 * 1024];
    let cases: Vec<(u16, (u16, String))> = vec![
        (
            413,
            relay.submit(CATEGORY, "too big", &[("big.bin", &two_mib)]),
        ),
        (
            413,
            relay.submit(
                CATEGORY,
                "too many",
                &[("a", b"1"), ("b", b"2"), ("c", b"3")],
            ),
        ),
        (413, relay.submit(CATEGORY, &"x".repeat(1001), &[])),
        (400, relay.submit("Not a category", "text", &[])),
        (400, relay.submit(CATEGORY, "   ", &[])),
    ];
    for (want, (got, body)) in &cases {
        assert_eq!(got, want, "{body}");
        assert!(body.contains("was not sent"), "{body}");
    }
    // What the source typed comes back in the form, so nothing is lost.
    assert!(cases[3].1.1.contains(">text</textarea>"));

    // Not a multipart body at all, and a truncated multipart body.
    let client = relay.client();
    let res = client
        .post(format!("{}/en/submit", relay.url))
        .header("Content-Type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhalf")
        .send()
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = client
        .post(format!("{}/en/submit", relay.url))
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());

    let stats = relay.stats();
    assert_eq!(
        (stats.submissions, stats.pending, stats.segment_bytes),
        (0, 0, 0),
        "{stats:?}"
    );
    // The spool files (a fixed pool) hold nothing.
    let spools = testkit::files(&relay.data.join("tmp"));
    assert!(!spools.is_empty());
    for spool in spools {
        assert_eq!(
            std::fs::metadata(&spool).unwrap().len(),
            0,
            "{}",
            spool.display()
        );
    }
    // And the relay still takes a good submission.
    assert_eq!(relay.submit(CATEGORY, "fine", &[("a", b"1")]).0, 200);
    assert_eq!(relay.stats().submissions, 1);
}

#[test]
fn tampered_batches_are_refused_and_nothing_is_written() {
    let relay = TestRelay::start();
    assert_eq!(relay.submit(CATEGORY, "first", &[("a.txt", b"aaa")]).0, 200);
    assert_eq!(relay.submit(CATEGORY, "second", &[]).0, 200);
    let batch = relay.next_batch().unwrap();
    let members = tar_members(&batch);
    assert_eq!(members.len(), 4);
    let work = relay.root.path().join("tamper");
    std::fs::create_dir_all(&work).unwrap();

    let mut variants: Vec<(String, Members)> = Vec::new();
    for i in 0..members.len() {
        let mut m = members.clone();
        let at = m[i].1.len() / 2;
        m[i].1[at] ^= 0x01;
        variants.push((format!("flipped byte in {}", members[i].0), m));
    }
    let mut dropped = members.clone();
    dropped.remove(3);
    variants.push(("dropped submission".into(), dropped));
    let mut extra = members.clone();
    let mut fake = members[3].clone();
    fake.0 = format!("submissions/{}.age", "ab".repeat(16));
    extra.push(fake);
    variants.push(("extra submission".into(), extra));
    let mut reordered = members.clone();
    reordered.swap(0, 1);
    variants.push(("reordered members".into(), reordered));

    for (what, m) in &variants {
        let path = work.join("bad.tar");
        write_tar(&path, m);
        let out = work.join("out");
        assert!(
            verify(&relay, &path, &out).is_err(),
            "verify accepted: {what}"
        );
        assert!(
            open(&relay, &[&path], &out).is_err(),
            "open accepted: {what}"
        );
        assert!(
            testkit::files(&out).is_empty(),
            "{what}: wrote {:?}",
            testkit::files(&out)
        );
    }

    // A truncated download.
    let bytes = std::fs::read(&batch).unwrap();
    let cut = work.join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() - 2000]).unwrap();
    assert!(verify(&relay, &cut, &work.join("s")).is_err());

    // A batch signed by another relay's key.
    let other = TestRelay::start();
    assert!(
        reviewer(&[
            "verify".to_owned(),
            arg(&batch),
            "--relay-key".into(),
            other.pubkey(),
            "--archive".into(),
            arg(&work.join("s2")),
        ])
        .is_err()
    );

    // The untouched batch still opens.
    let out = work.join("good");
    open(&relay, &[&batch], &out).unwrap();
    assert_eq!(
        testkit::files(&out)
            .iter()
            .filter(|p| p.ends_with("testimony.json"))
            .count(),
        2
    );
}

#[test]
fn chain_refuses_replayed_and_skipped_batches() {
    let relay = TestRelay::start();
    let mut batches = Vec::new();
    for n in 0..3 {
        assert_eq!(relay.submit(CATEGORY, &format!("batch {n}"), &[]).0, 200);
        batches.push(relay.next_batch().unwrap());
    }
    let out = relay.root.path().join("out");
    open(&relay, &[&batches[0]], &out).unwrap();
    // Skipping batch 2 is refused, and writes nothing.
    let before = testkit::files(&out);
    assert!(open(&relay, &[&batches[2]], &out).is_err());
    // Replaying batch 1 into the archive that holds it: a harmless no-op.
    open(&relay, &[&batches[0]], &out).unwrap();
    assert!(verify(&relay, &batches[0], &out).is_ok());
    assert_eq!(testkit::files(&out), before);
    // Another archive has a chain of its own: batch 1 opens there (the
    // reviewer's choice), and the first archive is not affected by it.
    let other = relay.root.path().join("other");
    open(&relay, &[&batches[0]], &other).unwrap();
    assert_eq!(testkit::files(&out), before);
    // In order, both open.
    open(&relay, &[&batches[2], &batches[1]], &out).unwrap();
    assert_eq!(testkit::files(&out.join("receipts")).len(), 3);
}

#[test]
fn submissions_survive_a_restart_and_acks_wait_for_durability() {
    let mut relay = TestRelay::start();
    assert_eq!(
        relay
            .submit(CATEGORY, "before restart", &[("f", b"data")])
            .0,
        200
    );
    relay.restart();
    assert_eq!(relay.stats().submissions, 1);
    let batch = relay.next_batch().unwrap();
    let out = relay.root.path().join("out");
    open(&relay, &[&batch], &out).unwrap();
    assert!(
        std::fs::read_to_string(submission_dir(&out).join("testimony.json"))
            .unwrap()
            .contains("before restart")
    );
}

#[test]
fn stock_tools_are_installed() {
    // The stock tools the README names are present (scripts/test installs
    // them); fail loudly rather than skip.
    for tool in ["age", "minisign"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "`{tool}` is not installed: run scripts/test, which installs it"
        );
    }
}

#[test]
fn stock_minisign_verifies_a_batch() {
    let relay = TestRelay::start();
    assert_eq!(relay.submit(CATEGORY, "signed", &[]).0, 200);
    let batch = relay.next_batch().unwrap();
    let dir = relay.root.path().join("x");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in tar_members(&batch).iter().take(2) {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let verify = |key: &str| {
        Command::new("minisign")
            .args(["-V", "-P", key, "-m"])
            .arg(dir.join("manifest.json"))
            .arg("-x")
            .arg(dir.join("manifest.sig"))
            .output()
            .expect("the stock `minisign` CLI must be installed: scripts/test installs it")
    };
    let ok = verify(&relay.pubkey());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    manifest[20] ^= 1;
    std::fs::write(dir.join("manifest.json"), manifest).unwrap();
    assert!(!verify(&relay.pubkey()).status.success());
}

#[test]
fn pages_need_no_javascript_cookies_or_other_sites() {
    let relay = TestRelay::start();
    let client = relay.client();
    let form = client.get(format!("{}/", relay.url)).send().unwrap();
    let received = client
        .post(format!("{}/en/submit", relay.url))
        .multipart(
            reqwest::blocking::multipart::Form::new()
                .text("category", CATEGORY)
                .text("text", "headers"),
        )
        .send()
        .unwrap();
    let missing = client
        .get(format!("{}/no-such-page", relay.url))
        .send()
        .unwrap();
    for (what, res, status) in [
        ("form", form, 200),
        ("received", received, 200),
        ("404", missing, 404),
    ] {
        assert_eq!(res.status().as_u16(), status, "{what}");
        let h = res.headers().clone();
        let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
        let csp = get("content-security-policy").unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
        assert!(!csp.contains("script-src"), "{what}: {csp}");
        assert!(csp.contains("form-action 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(
            get("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{what}"
        );
        assert_eq!(get("x-frame-options").as_deref(), Some("DENY"), "{what}");
        assert_eq!(get("cache-control").as_deref(), Some("no-store"), "{what}");
        assert_eq!(
            get("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{what}"
        );
        assert!(get("strict-transport-security").is_some(), "{what}");
        assert!(get("set-cookie").is_none(), "{what}: sets a cookie");
        assert!(get("server").is_none(), "{what}: names the server");
        let body = res.text().unwrap().to_lowercase();
        assert!(!body.contains("<script"), "{what}: has a script");
        assert!(
            !body.contains("onclick=") && !body.contains("onload="),
            "{what}: inline handler"
        );
        for external in ["http://", "https://", "//"] {
            let attrs = ["src=\"", "href=\""];
            for a in attrs {
                assert!(
                    !body.contains(&format!("{a}{external}")),
                    "{what}: links to another site"
                );
            }
        }
    }
}

#[test]
fn every_page_links_to_a_source_code_page_that_shows_the_address_as_text() {
    use relay::web::i18n::Lang;
    let url = "https://ngo.example.org/relay/submission-relay.tar.gz";
    let relay = TestRelay::start_with(|t| format!("source_url = \"{url}\"\n{t}"));
    for lang in Lang::ALL {
        let code = lang.code();
        let link = format!(
            "<a href=\"/{code}/source\">{}</a>",
            msg(lang, "footer-source")
        );
        for page in [format!("/{code}/"), format!("/followup/{code}/")] {
            let (_, body) = relay.get(&page);
            assert!(
                body.contains(&link),
                "{page} has no footer link to the source page"
            );
        }
        let (status, body) = relay.get(&format!("/{code}/source"));
        assert_eq!(status, 200, "{code}");
        assert!(
            body.contains(&msg(lang, "source-licence")),
            "{code}: no licence"
        );
        assert!(
            body.contains(&format!("submission-relay {}", env!("CARGO_PKG_VERSION"))),
            "{code}: no version"
        );
        assert!(
            body.contains(&format!("<code class=\"source-url\">{url}</code>")),
            "{code}: no address"
        );
        assert!(
            body.contains(&msg(lang, "source-offsite")),
            "{code}: the page does not say the address is elsewhere"
        );
        assert!(
            !body.contains(&format!("href=\"{url}")),
            "{code}: the address is a link off the site"
        );
        assert!(!body.contains(&msg(lang, "source-ask")), "{code}");
    }
    // Without `source_url`, the page says to ask the people who run it.
    let plain = TestRelay::start();
    let (status, body) = plain.get("/ru/source");
    assert_eq!(status, 200);
    assert!(
        body.contains(&msg(Lang::Ru, "source-ask")) && !body.contains("source-url"),
        "{body}"
    );
    assert_eq!(plain.get("/xx/source").0, 404);
}

#[test]
fn every_route_and_status_sends_the_security_headers() {
    let relay = TestRelay::start_with(|t| format!("{t}\n[limits]\nmax_submission_bytes = 1024\n"));
    let client = relay.client();
    let url = |p: &str| format!("{}{p}", relay.url);
    let token = relay.token();
    let mut responses: Vec<(&str, reqwest::blocking::Response)> = vec![
        ("GET /", client.get(url("/")).send().unwrap()),
        (
            "GET /static/style.css",
            client.get(url("/static/style.css")).send().unwrap(),
        ),
        ("GET 404", client.get(url("/nothing")).send().unwrap()),
        (
            "POST /en/submit 400",
            client
                .post(url("/en/submit"))
                .multipart(reqwest::blocking::multipart::Form::new().text("category", "nope"))
                .send()
                .unwrap(),
        ),
        (
            "POST /en/submit 413",
            client
                .post(url("/en/submit"))
                .multipart(
                    reqwest::blocking::multipart::Form::new()
                        .text("category", CATEGORY)
                        .part(
                            "files",
                            reqwest::blocking::multipart::Part::bytes(vec![0u8; 4096])
                                .file_name("f"),
                        ),
                )
                .send()
                .unwrap(),
        ),
        (
            "API 401",
            client.get(url("/api/v1/batches")).send().unwrap(),
        ),
        (
            "API list",
            client
                .get(url("/api/v1/batches"))
                .bearer_auth(&token)
                .send()
                .unwrap(),
        ),
        (
            "API next 204",
            client
                .get(url("/api/v1/batches/next"))
                .bearer_auth(&token)
                .send()
                .unwrap(),
        ),
        (
            "API 404",
            client
                .get(url(&format!("/api/v1/batches/{}", "ab".repeat(16))))
                .bearer_auth(&token)
                .send()
                .unwrap(),
        ),
        (
            "API ack 404",
            client
                .post(url(&format!("/api/v1/batches/{}/ack", "ab".repeat(16))))
                .bearer_auth(&token)
                .body(serde_json_body(&format::Digest::of(b"x")))
                .send()
                .unwrap(),
        ),
        (
            "API ack 400",
            client
                .post(url(&format!("/api/v1/batches/{}/ack", "ab".repeat(16))))
                .bearer_auth(&token)
                .body("not json")
                .send()
                .unwrap(),
        ),
    ];
    assert_eq!(relay.submit(CATEGORY, "for a batch", &[]).0, 200);
    responses.push((
        "API next 200",
        client
            .get(url("/api/v1/batches/next"))
            .bearer_auth(&token)
            .send()
            .unwrap(),
    ));
    let expected = [200, 200, 404, 400, 413, 401, 200, 204, 404, 404, 400, 200];
    for ((what, res), status) in responses.iter().zip(expected) {
        assert_eq!(res.status().as_u16(), status, "{what}");
        let h = res.headers();
        let csp = h
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap());
        assert!(
            csp.is_some_and(|c| c.starts_with("default-src 'none'")),
            "{what}: {csp:?}"
        );
        for (name, value) in [
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("cache-control", "no-store"),
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "same-origin"),
        ] {
            assert_eq!(
                h.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{what}: {name}"
            );
        }
        assert!(h.get("strict-transport-security").is_some(), "{what}");
        for absent in ["server", "etag", "set-cookie", "x-powered-by"] {
            assert!(h.get(absent).is_none(), "{what}: has {absent}");
        }
    }
}

/// A message in a language, as the relay renders it.
fn msg(lang: relay::web::i18n::Lang, key: &str) -> String {
    relay::web::i18n::Tr { lang }.t(key)
}

/// Posts a form with text fields (and no files) to `/{lang}/submit`.
fn post_form(relay: &TestRelay, lang: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let mut form = reqwest::blocking::multipart::Form::new();
    for (k, v) in fields {
        form = form.text((*k).to_owned(), (*v).to_owned());
    }
    let res = relay
        .client()
        .post(format!("{}/{lang}/submit", relay.url))
        .multipart(form)
        .send()
        .unwrap();
    (res.status().as_u16(), res.text().unwrap())
}

#[test]
fn languages_are_chosen_by_url_and_accept_language_without_cookies() {
    use relay::web::i18n::Lang;
    let relay = TestRelay::start();
    let pem = std::fs::read(relay.cert()).unwrap();
    let no_redirect = reqwest::blocking::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (accept, want) in [
        (Some("kk-KZ,kk;q=0.9,ru;q=0.8"), "/kk/"),
        (Some("en-GB,en;q=0.9"), "/en/"),
        (Some("de-DE"), "/ru/"),
        (None, "/ru/"),
    ] {
        let mut req = no_redirect.get(format!("{}/", relay.url));
        if let Some(a) = accept {
            req = req.header("Accept-Language", a);
        }
        let res = req.send().unwrap();
        assert_eq!(res.status(), 303, "{accept:?}");
        assert_eq!(res.headers()["location"], want, "{accept:?}");
        assert!(res.headers().get("set-cookie").is_none());
    }
    for lang in Lang::ALL {
        let code = lang.code();
        let page = relay
            .client()
            .get(format!("{}/{code}/", relay.url))
            .send()
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers().get("set-cookie").is_none());
        let body = page.text().unwrap();
        assert!(body.contains(&format!("<html lang=\"{code}\">")), "{code}");
        assert!(
            body.contains(&format!("action=\"/{code}/submit\"")),
            "{code}"
        );
        assert!(body.contains(&msg(lang, "submit-button")), "{code}");
        assert!(
            body.contains(&msg(lang, "safety-tor")),
            "{code}: safety advice"
        );
        for other in Lang::ALL.iter().filter(|l| **l != lang) {
            let link = format!("href=\"/{}/\" hreflang=\"{}\"", other.code(), other.code());
            assert!(body.contains(&link), "{code} links to {}", other.code());
        }
    }
    assert_ne!(
        msg(Lang::Kk, "submit-button"),
        msg(Lang::Ru, "submit-button")
    );
    let unknown = relay
        .client()
        .get(format!("{}/de/", relay.url))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[test]
fn a_kazakh_submission_records_its_language_and_labelled_answers() {
    use relay::web::i18n::Lang;
    let relay = TestRelay::start();
    let (status, body) = post_form(
        &relay,
        "kk",
        &[
            ("category", "health"),
            ("text", "Ауруханада дәрі жоқ."),
            ("region", "aktobe"),
            ("events_month", "03"),
            ("events_year", "2025"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<html lang=\"kk\">"));
    assert!(body.contains(&msg(Lang::Kk, "received-title")), "{body}");

    let batch = relay.next_batch().unwrap();
    let out = relay.root.path().join("out");
    open(&relay, &[&batch], &out).unwrap();
    let sub = submission_dir(&out);
    let json = std::fs::read(sub.join("testimony.json")).unwrap();
    let t = format::Testimony::from_json(&json).unwrap();
    assert_eq!(t.language, "kk");
    assert_eq!(t.fields["category"], "health");
    assert_eq!(t.fields["region"], "aktobe");
    assert_eq!(t.fields["events_month"], "2025-03");
    assert_eq!(t.text, "Ауруханада дәрі жоқ.");
    assert_eq!(
        t.labels["category"].answer.as_deref(),
        Some("Health care and medical workers")
    );
    let txt = std::fs::read_to_string(sub.join("testimony.txt")).unwrap();
    assert!(
        txt.contains("What is it about?: Health care and medical workers (health)"),
        "{txt}"
    );
}

#[test]
fn refusals_are_explained_in_the_pages_language_next_to_the_field() {
    use relay::web::i18n::Lang;
    let relay = TestRelay::start();
    let (status, body) = post_form(&relay, "kk", &[("text", "мәтін сақталады")]);
    assert_eq!(status, 400);
    assert!(body.contains("<html lang=\"kk\">"));
    assert!(
        body.contains(&msg(Lang::Kk, "error-summary-title")),
        "{body}"
    );
    // Summarised at the top with a link to the field, and next to it.
    let error = msg(Lang::Kk, "error-category");
    assert!(
        body.contains(&format!("<a href=\"#category\">{error}</a>")),
        "{body}"
    );
    assert!(
        body.contains(&format!("id=\"category-error\">{error}</p>")),
        "{body}"
    );
    assert!(body.contains("aria-invalid=\"true\""));
    // Nothing typed is lost.
    assert!(body.contains(">мәтін сақталады</textarea>"));

    let (status, body) = post_form(
        &relay,
        "ru",
        &[("category", "other"), ("text", "x"), ("region", "atlantis")],
    );
    assert_eq!(status, 400);
    assert!(body.contains(&msg(Lang::Ru, "error-region")), "{body}");
    let (status, body) = post_form(
        &relay,
        "ru",
        &[("category", "other"), ("text", "x"), ("events_month", "05")],
    );
    assert_eq!(status, 400);
    assert!(
        body.contains(&msg(Lang::Ru, "error-month-needs-year")),
        "{body}"
    );
    assert_eq!(relay.stats().submissions, 0);
}

#[test]
fn operator_questions_are_asked_and_required() {
    let relay = TestRelay::start_with(|t| {
        format!(
            "{t}\n[form]\ndefault_language = \"en\"\n\
             [[form.category]]\nkey = \"arrests\"\nen = \"Arrests\"\nru = \"Аресты\"\n\
             [[form.question]]\nkey = \"detained\"\nkind = \"choice\"\nrequired = true\n\
             label = {{ en = \"Was anyone detained?\", kk = \"Біреу ұсталды ма?\" }}\n\
             [[form.question.option]]\nkey = \"yes\"\nen = \"Yes\"\nkk = \"Иә\"\n\
             [[form.question.option]]\nkey = \"no\"\nen = \"No\"\n\
             [[form.question]]\nkey = \"court\"\nkind = \"month\"\nlabel = {{ en = \"Court date\" }}\n"
        )
    });
    let page = relay
        .client()
        .get(format!("{}/kk/", relay.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("Біреу ұсталды ма?") && page.contains("value=\"yes\""),
        "{page}"
    );
    assert!(
        page.contains("Arrests"),
        "a missing kk label falls back to English"
    );
    assert!(page.contains("name=\"court_month\""));

    let (status, body) = post_form(&relay, "en", &[("category", "arrests"), ("text", "t")]);
    assert_eq!(status, 400);
    assert!(
        body.contains("<a href=\"#detained\">Please answer this question.</a>"),
        "{body}"
    );
    let (status, _) = post_form(
        &relay,
        "en",
        &[
            ("category", "arrests"),
            ("text", "t"),
            ("detained", "maybe"),
        ],
    );
    assert_eq!(status, 400);
    let (status, body) = post_form(
        &relay,
        "en",
        &[
            ("category", "arrests"),
            ("text", "t"),
            ("detained", "yes"),
            ("court_month", "11"),
            ("court_year", "2025"),
        ],
    );
    assert_eq!(status, 200, "{body}");

    let batch = relay.next_batch().unwrap();
    let out = relay.root.path().join("out");
    open(&relay, &[&batch], &out).unwrap();
    let t = format::Testimony::from_json(
        &std::fs::read(submission_dir(&out).join("testimony.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(t.fields["detained"], "yes");
    assert_eq!(t.fields["court"], "2025-11");
    assert_eq!(t.labels["detained"].question, "Was anyone detained?");
    assert_eq!(t.labels["detained"].answer.as_deref(), Some("Yes"));
}

#[test]
fn a_demo_relays_batch_says_so_to_production_keys() {
    // The test relays are demo setups: their batches are marked.
    let relay = TestRelay::start();
    let (status, _) = relay.submit(CATEGORY, "sealed to the demo key", &[]);
    assert_eq!(status, 200);
    let batch = relay.next_batch().unwrap();
    assert!(e2e::manifest(&batch).demo);
    // A real reviewer's key is not among its recipients: the refusal says
    // why, and nothing is written.
    let (identity, _) = relay::seal::generate_identity(format::Day::today(), "production");
    let id_file = relay.root.path().join("production.key");
    std::fs::write(&id_file, &identity).unwrap();
    let out = relay.root.path().join("cases");
    let open = ReviewerCmd::open([&batch])
        .identity(&id_file)
        .relay_key(relay.pubkey())
        .out(&out);
    let e = run(&open).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("comes from a demo relay") && text.contains("demo-reviewer.key"),
        "{text}"
    );
    assert!(
        testkit::files(&out)
            .iter()
            .all(|p| !p.ends_with("testimony.json"))
    );
}

/// The recipients line of a relay's config (the demo reviewer's key).
fn recipients_line(relay: &TestRelay) -> String {
    std::fs::read_to_string(relay.data.join("relay.toml"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("recipients = ["))
        .unwrap()
        .to_owned()
}

#[test]
fn two_relays_merge_into_one_archive() {
    // Two relays (their own store, signing key and chain), sealing to the
    // same reviewer key, as docs/scaling.md describes.
    let a = TestRelay::start();
    let line = recipients_line(&a);
    let b = TestRelay::start_with(|t| {
        let own = t
            .lines()
            .find(|l| l.starts_with("recipients = ["))
            .unwrap()
            .to_owned();
        t.replace(&own, &line)
    });
    assert_ne!(a.pubkey(), b.pubkey());
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("cases");
    let open_one = |relay: &TestRelay, batch: &Path| {
        run(&ReviewerCmd::open([batch])
            .identity(a.identity())
            .relay_key(relay.pubkey())
            .out(&out))
    };
    let mut batches = Vec::new();
    for round in 0..2 {
        for (relay, name) in [(&a, "relay A"), (&b, "relay B")] {
            let (status, _) = relay.submit(CATEGORY, &format!("{name}, round {round}"), &[]);
            assert_eq!(status, 200);
            let batch = relay.next_batch().unwrap();
            open_one(relay, &batch).unwrap();
            batches.push((relay, batch));
        }
    }
    // One archive holds all four, each once.
    let texts: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().len() == 32)
        .map(|d| std::fs::read_to_string(d.join("testimony.json")).unwrap())
        .collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    for name in [
        "relay A, round 0",
        "relay A, round 1",
        "relay B, round 0",
        "relay B, round 1",
    ] {
        assert_eq!(
            texts.iter().filter(|t| t.contains(name)).count(),
            1,
            "{name}"
        );
    }
    // Each relay's chain is its own: an old batch of either is known and
    // adds nothing, and a batch checked against the other relay's key is
    // refused.
    let count = || {
        std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().len() == 32)
            .count()
    };
    let (relay, first_a) = &batches[0];
    open_one(relay, first_a).unwrap();
    assert_eq!(count(), 4);
    let (_, first_b) = &batches[1];
    assert!(open_one(&a, first_b).is_err());
    assert_eq!(count(), 4);
    // The archive holds up as a whole.
    reviewer(&["verify-archive".to_owned(), arg(&out)]).unwrap();
}

/// The reviewer binary's exit code, standard output and standard error.
fn reviewer_bin(args: &[String]) -> (i32, String, String) {
    let o = ReviewerCmd::new(args).output();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

#[test]
fn globs_work_a_cut_off_batch_is_fetched_again_and_ack_takes_many_receipts() {
    let relay = TestRelay::start();
    let work = relay.root.path().join("reviewer");
    let batches = work.join("batches");
    let cases = work.join("cases");
    let online = |cmd: &str, rest: &[String]| {
        let mut args = vec![cmd.to_owned()];
        args.extend(rest.iter().cloned());
        args.extend([
            "--relay".into(),
            relay.url.clone(),
            "--token-file".into(),
            arg(&relay.token_file()),
            "--tls-cert".into(),
            arg(&relay.cert()),
        ]);
        reviewer_bin(&args)
    };
    let fetch = |extra: &[&str]| {
        let mut rest = vec!["--out".to_owned(), arg(&batches)];
        rest.extend(extra.iter().map(|s| (*s).to_owned()));
        online("fetch", &rest)
    };
    for n in 1..=2 {
        assert_eq!(relay.submit(CATEGORY, &format!("batch {n}"), &[]).0, 200);
        let (code, out, err) = fetch(&[]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("saved "), "{out}");
    }
    let files = testkit::files(&batches);
    assert_eq!(files.len(), 2, "{files:?}");
    let (b1, b2) = (files[0].clone(), files[1].clone());
    let whole_2 = std::fs::read(&b2).unwrap();

    // A download cut off: the next fetch replaces it, byte for byte.
    std::fs::write(&b2, &whole_2[..whole_2.len() / 2]).unwrap();
    let (code, out, err) = fetch(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("replaced a cut-off or damaged copy with "),
        "{out}"
    );
    assert_eq!(std::fs::read(&b2).unwrap(), whole_2);
    // One batch by its number: whole, nothing to do; damaged, replaced.
    let (code, out, _) = fetch(&["--batch", "1"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("batch 1 is already in ") && out.contains("whole: nothing to do"),
        "{out}"
    );
    let whole_1 = std::fs::read(&b1).unwrap();
    let mut damaged = whole_1.clone();
    let n = damaged.len();
    damaged[n - 2000] ^= 0x40;
    std::fs::write(&b1, &damaged).unwrap();
    let (code, out, err) = fetch(&["--batch", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("replaced a cut-off or damaged copy with "),
        "{out}"
    );
    assert_eq!(std::fs::read(&b1).unwrap(), whole_1);
    let (code, _, err) = fetch(&["--batch", "9"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the relay lists no unacknowledged batch 9"),
        "{err}"
    );

    // `open --out` into a folder of other things is refused, writing nothing.
    let documents = work.join("Documents");
    std::fs::create_dir_all(&documents).unwrap();
    std::fs::write(documents.join("letter.odt"), b"personal").unwrap();
    let open_into = |dir: &Path| {
        let mut args = vec!["open".to_owned(), arg(&b1), arg(&b2)];
        args.extend([
            "--identity".into(),
            arg(&relay.identity()),
            "--relay-key".into(),
            relay.pubkey(),
            "--out".into(),
            arg(dir),
        ]);
        reviewer_bin(&args)
    };
    let (code, _, err) = open_into(&documents);
    assert_eq!(code, 1);
    assert!(
        err.contains("is not empty and is not a reviewer archive"),
        "{err}"
    );
    assert_eq!(testkit::files(&documents), [documents.join("letter.odt")]);

    // verify, open, verify: what the archive holds is said and skipped.
    let verify = || {
        reviewer_bin(&[
            "verify".into(),
            arg(&b1),
            arg(&b2),
            "--relay-key".into(),
            relay.pubkey(),
            "--archive".into(),
            arg(&cases),
        ])
    };
    let (code, out, err) = verify();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("OK batch ").count(), 2, "{out}");
    let (code, _, err) = open_into(&cases);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = verify();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("is already in the archive").count(), 2, "{out}");

    // ack takes every receipt; one that is not a receipt is named, the
    // others are acknowledged, and the exit code says something failed.
    let mut receipts: Vec<String> = testkit::files(&cases.join("receipts"))
        .iter()
        .map(|p| arg(p))
        .collect();
    assert_eq!(receipts.len(), 2);
    let bogus = work.join("not-a-receipt.json");
    std::fs::write(&bogus, b"{}").unwrap();
    let mut with_bogus = receipts.clone();
    with_bogus.insert(1, arg(&bogus));
    assert_eq!(relay.stats().submissions, 2);
    let (code, out, err) = online("ack", &with_bogus);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.matches("relay deleted 1 submissions of batch").count(),
        2,
        "{out}"
    );
    assert!(
        err.contains("not-a-receipt.json: ")
            && err.contains("1 of 3 receipts were not acknowledged"),
        "{err}"
    );
    assert_eq!(relay.stats().submissions, 0);
    // Again: already done, said so, exit 0.
    receipts.reverse();
    let (code, out, err) = online("ack", &receipts);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.matches("was already acknowledged: nothing to do")
            .count(),
        2,
        "{out}"
    );
}
