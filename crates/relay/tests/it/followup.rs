//! Source follow-up through the relay's router, in process: codename on the
//! success page, log-in, replies (import, show, delete), follow-up
//! testimony in the same thread, sessions (cookie, expiry, log-out), the
//! log-in semaphore, cross-site refusal, and the derivation vectors.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::util;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use format::{Manifest, ReplyBundle, ReplyId, ReplyMessage, ThreadId};
use relay::followup::{Codename, Kdf, Salt};
use relay::web::{AppState, Listener};
use testkit::{codename_of, contains, login_form};
use tower::ServiceExt as _;
use zeroize::Zeroizing;

const BOUNDARY: &str = "XyZfollowupBoundary";

struct Relay {
    _root: tempfile::TempDir,
    data: PathBuf,
    state: Arc<AppState>,
    token: String,
    reviewer: age::x25519::Identity,
}

/// Cheap Argon2 parameters for tests that are not about its cost.
const CHEAP: &str = "argon2_memory_kib = 8192\nargon2_iterations = 1";

/// A demo relay with this `[followup]` table.
fn relay_with(followup: &str) -> Relay {
    let root = tempfile::tempdir().unwrap();
    let data = util::demo_data(root.path(), |t| format!("{t}\n[followup]\n{followup}\n"));
    let config = relay::config::Config::load(&data.join("relay.toml")).unwrap();
    let state = relay::server::open(&data, config).unwrap();
    let token = std::fs::read_to_string(data.join(relay::demo::DEMO_TOKEN_FILE))
        .unwrap()
        .trim()
        .to_owned();
    let reviewer = util::demo_identity(&data);
    Relay {
        _root: root,
        data,
        state,
        token,
        reviewer,
    }
}

fn relay() -> Relay {
    relay_with(CHEAP)
}

async fn send(r: &Relay, req: Request<Body>) -> Response<Body> {
    relay::web::app(r.state.clone(), Listener::Https)
        .oneshot(req)
        .await
        .unwrap()
}

async fn body_text(res: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 64 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
    }
    if let Some((name, content)) = file {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{BOUNDARY}--\r\n").unwrap();
    body
}

fn post_multipart(path: &str, body: Vec<u8>, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::post(path).header(
        header::CONTENT_TYPE,
        format!("multipart/form-data; boundary={BOUNDARY}"),
    );
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body)).unwrap()
}

fn post_form(path: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

/// Submits the form; returns the codename shown, if any.
async fn submit(r: &Relay, text: &str, followup: bool) -> Option<String> {
    let mut fields = vec![("category", "other"), ("text", text)];
    if followup {
        fields.push(("followup", "yes"));
    }
    let res = send(
        r,
        post_multipart("/en/submit", multipart(&fields, None), None),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let page = body_text(res).await;
    assert!(page.contains("Received and stored safely"), "{page}");
    page.contains("class=\"codename-words\"")
        .then(|| codename_of(&page))
}

/// A router with one route, `/test-panic`, whose handler panics (only
/// these tests have it: `relay::web::app_with`).
fn panicking_route() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route(
        "/test-panic",
        axum::routing::get(|| async {
            #[allow(clippy::panic)]
            if true {
                panic!("a handler bug");
            }
            "unreachable"
        }),
    )
}

/// The `Cookie` header value for the session a response set.
fn session_cookie(res: &Response<Body>) -> String {
    res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Logs in; returns the `Cookie` header value.
async fn login(r: &Relay, codename: &str) -> String {
    let res = send(
        r,
        post_form("/followup/en/login", &login_form(codename), None),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/followup/en/");
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/followup"] {
        assert!(set.contains(attr), "{set}");
    }
    session_cookie(&res)
}

/// The source's recipient, derived here independently of the relay's
/// handlers (same salt file, same parameters).
fn recipient_of(r: &Relay, codename: &str) -> String {
    let (salt, created) = Salt::load_or_create(&r.data).unwrap();
    assert!(!created);
    let kdf = Kdf::with_params(8192, 1, 1).unwrap();
    let d = kdf
        .derive(&Codename::parse(codename).unwrap(), &salt)
        .unwrap();
    d.secret.recipient().unwrap()
}

fn encrypt(text: &str, recipients: &[String]) -> Vec<u8> {
    let message = ReplyMessage::new("2026-11-28".parse().unwrap(), Zeroizing::new(text.into()));
    let recipients: Vec<age::x25519::Recipient> =
        recipients.iter().map(|r| r.parse().unwrap()).collect();
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .unwrap();
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out).unwrap();
    w.write_all(&message.to_json()).unwrap();
    w.finish().unwrap();
    out
}

/// Posts `bundle`, signed with the demo reviewer's reply-signing key.
async fn push(r: &Relay, bundle: &ReplyBundle, token: Option<&str>) -> (StatusCode, String) {
    push_bytes(r, util::signed_bundle(&r.data, bundle), token).await
}

async fn push_bytes(r: &Relay, bytes: Vec<u8>, token: Option<&str>) -> (StatusCode, String) {
    let mut b = Request::post("/api/v1/replies").header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = send(r, b.body(Body::from(bytes)).unwrap()).await;
    let status = res.status();
    (status, body_text(res).await)
}

/// What the holder of the API token (or of the online machine) can build
/// without a reviewer's reply-signing key: each is refused with 403 and
/// nothing is stored.
async fn assert_forged_replies_are_refused(r: &Relay, bundle: &ReplyBundle) {
    let held = r.state.store().stats().unwrap().replies;
    let token = Some(r.token.as_str());
    let refused = |what: &str, (status, body): (StatusCode, String), says: &str| {
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
        assert!(body.contains(says), "{what}: {body}");
    };
    // Unsigned, as before signatures (built from a batch's public thread
    // recipient with stock `age -r`: no reviewer secret at all).
    let unsigned = push_bytes(r, bundle.to_json(), token).await;
    refused("unsigned", unsigned, "unsigned");
    // Signed by a key the relay does not pin.
    let other = r.data.join("other-signing.key");
    let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    std::fs::write(&other, kp.sk.to_box(None).unwrap().to_string()).unwrap();
    let inner = bundle.to_json();
    let stranger = util::sign_bundle_with(&other, &inner, format::SIGNED_REPLY_BUNDLE_FORMAT);
    refused(
        "other key",
        push_bytes(r, stranger, token).await,
        "not in [reviewers]",
    );
    // The pinned key's signature over something else (another purpose).
    let key = r.data.join(relay::demo::DEMO_REPLY_SIGNING_FILE);
    let elsewhere = util::sign_bundle_with(&key, &inner, "timestamp:1764000000");
    refused(
        "other comment",
        push_bytes(r, elsewhere, token).await,
        "not for a reply bundle",
    );
    // A signed bundle with its replies swapped afterwards.
    let good: format::SignedReplyBundle =
        serde_json::from_slice(&util::signed_bundle(&r.data, bundle)).unwrap();
    let mut swapped = bundle.clone();
    swapped.replies[0].age = base64_of(b"age-encryption.org/v1\n-> X25519 forged\n");
    let tampered = format::SignedReplyBundle {
        bundle: format::SignedReplyBundle::new(&swapped.to_json(), String::new()).bundle,
        ..good
    };
    refused(
        "tampered",
        push_bytes(r, tampered.to_json(), token).await,
        "does not verify",
    );
    assert_eq!(r.state.store().stats().unwrap().replies, held);
}

fn base64_of(bytes: &[u8]) -> String {
    let mut b = ReplyBundle::new();
    b.push(
        ThreadId::from_bytes([0; 16]),
        ReplyId::from_bytes([0; 16]),
        bytes,
    );
    b.replies.remove(0).age
}

fn export(r: &Relay) -> Manifest {
    let lock = relay::export::BatchLock::default();
    let record = relay::export::create_batch(&lock, r.state.store(), r.state.signer(), 1000, false)
        .unwrap()
        .unwrap();
    let docs = r
        .state
        .store()
        .batch_documents(record.sequence)
        .unwrap()
        .unwrap();
    Manifest::from_json(&docs.manifest).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_follow_up_loop_through_the_router() {
    let r = relay();

    // The form offers a codename, checked by default.
    let form = body_text(send(&r, get("/en/", None)).await).await;
    assert!(form.contains("name=\"followup\" type=\"checkbox\" value=\"yes\""));
    assert!(form.contains("value=\"yes\" aria-describedby=\"followup-help\" checked"));
    assert!(
        form.contains("href=\"/followup/en/\""),
        "linked from the page"
    );

    // `/followup` sends the browser to its language, like `/`.
    let res = send(
        &r,
        Request::get("/followup")
            .header(header::ACCEPT_LANGUAGE, "kk-KZ,kk;q=0.9")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/followup/kk/");

    // Without asking, no codename and no thread.
    assert_eq!(submit(&r, "no codename please", false).await, None);
    assert_eq!(r.state.store().stats().unwrap().threads, 0);
    // Asking gives one, shown once; the store gets a thread.
    let codename = submit(&r, "first testimony", true).await.unwrap();
    assert_eq!(r.state.store().stats().unwrap().threads, 1);

    // The batch names the thread and the source's recipient.
    let manifest = export(&r);
    assert_eq!(manifest.submissions.len(), 2);
    assert_eq!(manifest.threads.len(), 1);
    let thread = manifest.threads[0].id;
    assert_eq!(manifest.threads[0].recipient, recipient_of(&r, &codename));
    assert_eq!(
        manifest
            .submissions
            .iter()
            .filter(|e| e.thread == Some(thread))
            .count(),
        1
    );

    // A reply, readable by the source and the reviewers, not by the relay.
    let reply_text = "We read it. <script>alert(1)</script> Please tell us the month.";
    let mut bundle = ReplyBundle::new();
    let reply_id = ReplyId::from_bytes([7; 16]);
    bundle.push(
        thread,
        reply_id,
        &encrypt(
            reply_text,
            &[
                manifest.threads[0].recipient.clone(),
                r.reviewer.to_public().to_string(),
            ],
        ),
    );
    assert_eq!(push(&r, &bundle, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        push(&r, &bundle, Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_forged_replies_are_refused(&r, &bundle).await;
    let (status, body) = push(&r, &bundle, Some(&r.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"stored\":1"), "{body}");
    let (status, body) = push(&r, &bundle, Some(&r.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"already_held\":1"), "{body}");
    // A reply to an unknown thread refuses the whole bundle.
    let mut unknown = bundle.clone();
    unknown.push(
        ThreadId::from_bytes([1; 16]),
        ReplyId::from_bytes([8; 16]),
        b"x",
    );
    let (status, body) = push(&r, &unknown, Some(&r.token)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let mut not_age = ReplyBundle::new();
    not_age.push(thread, ReplyId::from_bytes([9; 16]), b"plain text, not age");
    let (status, body) = push(&r, &not_age, Some(&r.token)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("not an age file"), "{body}");
    assert_eq!(r.state.store().stats().unwrap().replies, 1);
    let malformed = Request::post("/api/v1/replies")
        .header(header::AUTHORIZATION, format!("Bearer {}", r.token))
        .body(Body::from("{\"format\":\"relay-replies/2\"}"))
        .unwrap();
    assert_eq!(send(&r, malformed).await.status(), StatusCode::BAD_REQUEST);

    // Wrong codenames: a typo, a wrong length, a valid but unknown one.
    for (typed, status, says) in [
        (
            codename.replacen(' ', "x ", 1),
            StatusCode::BAD_REQUEST,
            "not in the codename word list",
        ),
        (
            "abacus abdomen".to_owned(),
            StatusCode::BAD_REQUEST,
            "exactly eight words",
        ),
        (
            Codename::generate().as_str().to_owned(),
            StatusCode::FORBIDDEN,
            "Codename not recognised",
        ),
    ] {
        let res = send(
            &r,
            post_form("/followup/en/login", &login_form(&typed), None),
        )
        .await;
        assert_eq!(res.status(), status, "{typed}");
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        assert!(body_text(res).await.contains(says));
    }

    // The right codename, typed loosely, opens the thread and shows the
    // reply, escaped.
    let cookie = login(&r, &format!("  {}\n", codename.to_uppercase())).await;
    let page = body_text(send(&r, get("/followup/en/", Some(&cookie))).await).await;
    assert!(
        page.contains("We read it. &#60;script&#62;alert(1)&#60;/script&#62;")
            || page.contains("We read it. &lt;script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>"));
    assert!(page.contains(&format!("/followup/en/replies/{reply_id}/delete")));

    // A cross-site POST is refused, whatever the cookie.
    let mut cross = post_form(
        &format!("/followup/en/replies/{reply_id}/delete"),
        "",
        Some(&cookie),
    );
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&r, cross).await.status(), StatusCode::FORBIDDEN);
    let mut foreign = post_form("/followup/en/logout", "", Some(&cookie));
    foreign
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    foreign
        .headers_mut()
        .insert(header::HOST, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(send(&r, foreign).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.state.store().stats().unwrap().replies, 1);

    // Follow-up testimony with a file joins the thread.
    let res = send(
        &r,
        post_multipart(
            "/followup/en/submit",
            multipart(
                &[("text", "more: it was in March")],
                Some(("scan.pdf", b"%PDF-1.4 evidence")),
            ),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/followup/en/?done=added");
    // Without a session, nothing is stored.
    let res = send(
        &r,
        post_multipart(
            "/followup/en/submit",
            multipart(&[("text", "no session")], None),
            None,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A refused addition keeps the text on the page.
    let res = send(
        &r,
        post_multipart(
            "/followup/en/submit",
            multipart(&[("text", "keep this text"), ("category", "other")], None),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(res).await.contains(">keep this text</textarea>"));
    let next = export(&r);
    assert_eq!(next.submissions.len(), 1);
    assert_eq!(next.submissions[0].thread, Some(thread));
    assert_eq!(next.threads, manifest.threads);
    // Sealed for the reviewers: the file is in it.
    let mut sealed = Vec::new();
    r.state
        .store()
        .ciphertext(&next.submissions[0].id)
        .unwrap()
        .read_to_end(&mut sealed)
        .unwrap();
    let plain = testkit::decrypt(&r.reviewer, &sealed).unwrap();
    assert!(contains(&plain, b"%PDF-1.4 evidence"));
    assert!(contains(&plain, b"more: it was in March"));
    assert!(contains(&plain, b"\"kind\": \"followup\""));

    // Deleting the reply removes it for good: importing it again does not
    // bring it back.
    let res = send(
        &r,
        post_form(
            &format!("/followup/en/replies/{reply_id}/delete"),
            "",
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.state.store().stats().unwrap().replies, 0);
    let (status, body) = push(&r, &bundle, Some(&r.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"deleted_by_source\":1"), "{body}");
    let page = body_text(send(&r, get("/followup/en/?done=deleted", Some(&cookie))).await).await;
    assert!(!page.contains("We read it"));
    assert!(page.contains("The reply was deleted."));

    // Log-out ends the session and clears the cookie.
    let res = send(&r, post_form("/followup/en/logout", "", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let page = body_text(send(&r, get("/followup/en/", Some(&cookie))).await).await;
    assert!(page.contains("enter your codename again"), "{page}");
    assert_eq!(r.state.followup.as_ref().unwrap().sessions.len(), 0);

    // Nothing the source typed, and no codename, is on disk.
    drop(r.state.clone());
    for f in testkit::files(&r.data) {
        let bytes = std::fs::read(&f).unwrap();
        for canary in [
            codename.as_bytes(),
            b"first testimony".as_slice(),
            b"it was in March",
            b"Please tell us the month",
        ] {
            assert!(!contains(&bytes, canary), "{} holds a canary", f.display());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_expires() {
    let r = relay_with(&format!("{CHEAP}\nsession_idle_minutes = 30"));
    let codename = submit(&r, "testimony", true).await.unwrap();
    let cookie = login(&r, &codename).await;
    let page = body_text(send(&r, get("/followup/en/", Some(&cookie))).await).await;
    assert!(page.contains("Log out"));
    // Used at 29 minutes: still alive.
    tokio::time::advance(std::time::Duration::from_secs(29 * 60)).await;
    let page = body_text(send(&r, get("/followup/en/", Some(&cookie))).await).await;
    assert!(page.contains("Log out"));
    // Then 30 idle minutes: gone, and the cookie is cleared.
    tokio::time::advance(std::time::Duration::from_secs(30 * 60)).await;
    let res = send(&r, get("/followup/en/", Some(&cookie))).await;
    assert!(
        res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let page = body_text(res).await;
    assert!(page.contains("enter your codename again"), "{page}");
    assert!(!page.contains("Log out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_ins_beyond_the_derivation_limit_get_503() {
    // One derivation at a time, each slow (256 MiB, 4 passes).
    let r = relay_with(
        "max_concurrent_derivations = 1\nargon2_memory_kib = 262144\nargon2_iterations = 4",
    );
    assert_eq!(r.state.config().followup.argon2_memory_kib, 262_144);
    let f = r.state.followup.as_ref().unwrap();
    let running = f.derive(Codename::generate(), None);
    let flood = async {
        // Give the first derivation a moment to take the only slot.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let res = send(
                &r,
                post_form(
                    "/followup/en/login",
                    &login_form(Codename::generate().as_str()),
                    None,
                ),
            )
            .await;
            statuses.push((
                res.status(),
                res.headers().get(header::RETRY_AFTER).cloned(),
            ));
        }
        statuses
    };
    let (first, statuses) = tokio::join!(running, flood);
    assert!(first.is_ok());
    for (status, retry) in &statuses {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry.is_some());
    }
    // With the slot free again, a log-in is answered (not recognised).
    let res = send(
        &r,
        post_form(
            "/followup/en/login",
            &login_form(Codename::generate().as_str()),
            None,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// `tests/vectors/followup-derivation.json`: fixed codename, salt and
/// parameters give fixed lookup id and recipient. The lookup ids were
/// checked against an independent Argon2id (Python argon2-cffi).
#[test]
fn derivation_vectors_and_the_stock_age_cli() {
    #[derive(serde::Deserialize)]
    struct Vector {
        codename: String,
        salt: String,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        lookup: String,
        recipient: String,
    }
    let text = include_str!("../vectors/followup-derivation.json");
    let vectors: Vec<Vector> = serde_json::from_str(text).unwrap();
    assert!(vectors.len() >= 2);
    for v in &vectors {
        let mut salt = [0u8; 32];
        hex::decode_to_slice(&v.salt, &mut salt).unwrap();
        let kdf = Kdf::with_params(v.memory_kib, v.iterations, v.parallelism).unwrap();
        let d = kdf
            .derive(
                &Codename::parse(&v.codename).unwrap(),
                &Salt::from_bytes(salt),
            )
            .unwrap();
        assert_eq!(d.lookup.to_string(), v.lookup, "{}", v.codename);
        assert_eq!(d.secret.recipient().unwrap(), v.recipient, "{}", v.codename);

        // The stock age CLI encrypts to the recipient; the derived identity
        // opens it.
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"a reply for the source").unwrap();
        let out = std::process::Command::new("age")
            .args(["-r", &v.recipient, "-o"])
            .arg(dir.path().join("reply.age"))
            .arg(&plain)
            .output()
            .expect("the stock `age` CLI (scripts/test installs it)");
        assert!(out.status.success(), "{out:?}");
        let sealed = std::fs::read(dir.path().join("reply.age")).unwrap();
        let got = d.secret.open(&sealed, 1024).unwrap();
        assert_eq!(&got[..], b"a reply for the source");
    }
}

/// A handler that panics gets the translated 500 page with every security
/// header a normal page has (the catch-panic layer sits inside the header
/// layer). The panicking route exists only in this test's router.
#[tokio::test]
async fn a_panic_answers_500_with_every_security_header() {
    let r = relay();
    let extra = panicking_route();
    let normal = send(&r, Request::get("/en/").body(Body::empty()).unwrap()).await;
    let res = relay::web::app_with(r.state.clone(), Listener::Https, extra)
        .oneshot(Request::get("/test-panic").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    for name in [
        header::CONTENT_SECURITY_POLICY,
        header::CACHE_CONTROL,
        header::STRICT_TRANSPORT_SECURITY,
        header::X_FRAME_OPTIONS,
        header::X_CONTENT_TYPE_OPTIONS,
        header::REFERRER_POLICY,
    ] {
        assert_eq!(
            res.headers().get(&name),
            normal.headers().get(&name),
            "{name} on the panic page"
        );
        assert!(res.headers().contains_key(&name), "{name}");
    }
    let body = body_text(res).await;
    assert!(!body.contains("a handler bug"), "{body}");
}

/// Reloads and history: a GET on a form-result address shows a short
/// translated page (not a blank 405), `/followup/` redirects like
/// `/followup`, and `/favicon.ico` is an empty answer, not a 404 page.
#[tokio::test]
async fn form_result_addresses_opened_again_say_what_happened() {
    let r = relay();
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    for (path, says) in [
        ("/kk/submit", "Бұл бетті қайта ашу мүмкін емес"),
        ("/ru/submit", "Эту страницу нельзя открыть снова"),
        ("/followup/en/login", "This page cannot be opened again"),
        ("/followup/ru/logout", "Эту страницу нельзя открыть снова"),
        ("/followup/kk/submit", "Бұл бетті қайта ашу мүмкін емес"),
        (
            "/followup/en/replies/00000000000000000000000000000000/delete",
            "This page cannot be opened again",
        ),
    ] {
        let res = send(&r, get(path)).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(res.headers()[header::ALLOW], "POST", "{path}");
        assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let body = body_text(res).await;
        assert!(body.contains(says), "{path}: {body}");
    }
    assert_eq!(r.state.store().stats().unwrap().submissions, 0);

    let res = send(&r, get("/followup/")).await;
    let plain = send(&r, get("/followup")).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(
        res.headers()[header::LOCATION],
        plain.headers()[header::LOCATION]
    );

    let res = send(&r, get("/favicon.ico")).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    assert!(body_text(res).await.is_empty());
}

/// Demo mode says so on every page, in the page's language; a relay that
/// is not a demo shows no banner.
#[tokio::test]
async fn a_demo_relay_says_so_on_every_page() {
    let r = relay();
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    for (path, says) in [
        ("/en/", "Test relay: not safe for real testimony"),
        ("/ru/", "Тестовый сервер: не для настоящих показаний"),
        ("/kk/", "Сынақ сервері: шынайы айғақтар үшін қауіпсіз емес"),
        ("/followup/en/", "Test relay: not safe for real testimony"),
        ("/followup/ru/", "Тестовый сервер"),
        ("/no/such/page", "<p class=\"demo-banner\" role=\"alert\">"),
        ("/kk/submit", "Сынақ сервері"),
    ] {
        let body = body_text(send(&r, get(path)).await).await;
        assert!(body.contains(says), "{path}: {body}");
    }
    let extra = panicking_route();
    let res = relay::web::app_with(r.state.clone(), Listener::Https, extra)
        .oneshot(get("/test-panic"))
        .await
        .unwrap();
    assert!(body_text(res).await.contains("not safe for real testimony"));

    let root = tempfile::tempdir().unwrap();
    let data = util::demo_data(root.path(), |t| t.replace("demo = true", "demo = false"));
    let config = relay::config::Config::load(&data.join("relay.toml")).unwrap();
    assert!(!config.demo);
    let state = relay::server::open(&data, config).unwrap();
    let res = relay::web::app(state, Listener::Https)
        .oneshot(get("/en/"))
        .await
        .unwrap();
    let body = body_text(res).await;
    assert!(body.contains("<form"), "{body}");
    assert!(!body.contains("demo-banner"), "{body}");
}

/// Follow-up POSTs from the header sets real browsers send:
/// Safari before 16.4 sends no `Sec-Fetch-Site`, and every browser sends
/// `Origin: null` from a page under `no-referrer`. Cross-site POSTs stay
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_posts_work_from_old_and_privacy_minded_browsers() {
    let r = relay();
    let codename = submit(&r, "testimony for the header sets", true)
        .await
        .unwrap();
    // The pages holding the follow-up forms send same-origin referrers, so
    // their POSTs carry a real Origin; the rest of the site sends none.
    let page = send(&r, get("/followup/en/", None)).await;
    assert_eq!(page.headers()[header::REFERRER_POLICY], "same-origin");
    let body = body_text(page).await;
    assert!(
        body.contains(r#"<meta name="referrer" content="same-origin">"#),
        "{body}"
    );
    let form = send(&r, get("/en/", None)).await;
    assert_eq!(form.headers()[header::REFERRER_POLICY], "no-referrer");

    const HOST: &str = "127.0.0.1:8443";
    const ORIGIN: &str = "https://127.0.0.1:8443";
    let with = |mut req: Request<Body>, site: Option<&str>, origin: Option<&str>| {
        let h = req.headers_mut();
        h.insert(header::HOST, HOST.parse().unwrap());
        if let Some(s) = site {
            h.insert("sec-fetch-site", s.parse().unwrap());
        }
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        req
    };
    let login_body = login_form(&codename);
    let log_in = |site, origin| {
        with(
            post_form("/followup/en/login", &login_body, None),
            site,
            origin,
        )
    };
    for (browser, site, origin) in [
        ("Safari 15 (no Sec-Fetch-Site)", None, Some(ORIGIN)),
        ("Safari 17", Some("same-origin"), Some(ORIGIN)),
        (
            "Tor Browser 14 (Firefox ESR)",
            Some("same-origin"),
            Some(ORIGIN),
        ),
        ("Firefox", Some("same-origin"), Some(ORIGIN)),
        ("Chromium", Some("same-origin"), Some(ORIGIN)),
        ("neither header", None, None),
    ] {
        let res = send(&r, log_in(site, origin)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{browser}: log-in");
        let cookie = session_cookie(&res);
        let out = with(
            post_form("/followup/en/logout", "", Some(&cookie)),
            site,
            origin,
        );
        assert_eq!(
            send(&r, out).await.status(),
            StatusCode::OK,
            "{browser}: log-out"
        );
    }

    // `Origin: null` (a page cached from before, or served under
    // no-referrer): accepted with a live session cookie...
    let cookie = login(&r, &codename).await;
    let out = with(
        post_form("/followup/en/logout", "", Some(&cookie)),
        None,
        Some("null"),
    );
    assert_eq!(send(&r, out).await.status(), StatusCode::OK);
    // ...never for a log-in, nor without a session: a sandboxed frame on
    // another site sends the same header.
    assert_eq!(
        send(&r, log_in(None, Some("null"))).await.status(),
        StatusCode::FORBIDDEN
    );
    let out = with(
        post_form("/followup/en/logout", "", None),
        None,
        Some("null"),
    );
    assert_eq!(send(&r, out).await.status(), StatusCode::FORBIDDEN);
    // Cross-site, by either header.
    assert_eq!(
        send(&r, log_in(Some("cross-site"), Some("https://evil.example")))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&r, log_in(None, Some("https://evil.example")))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

/// The codename box: words shown numbered; a log-in accepts
/// commas, hyphens, line breaks and numbering; a typo is named by its
/// place and what was typed is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_codename_box_forgives_separators_and_names_the_mistyped_word() {
    let r = relay();
    let res = send(
        &r,
        post_multipart(
            "/en/submit",
            multipart(
                &[("category", "other"), ("text", "t"), ("followup", "yes")],
                None,
            ),
            None,
        ),
    )
    .await;
    let page = body_text(res).await;
    assert!(page.contains("<ol class=\"codename-words\""), "{page}");
    assert_eq!(page.matches("<li><span>").count(), 8, "{page}");
    let codename = codename_of(&page);
    let words: Vec<&str> = codename.split(' ').collect();

    let numbered: String = words
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{}. {w}\n", i + 1))
        .collect();
    for typed in [words.join(", "), words.join("-"), numbered] {
        let res = send(
            &r,
            post_form("/followup/en/login", &login_form(&typed), None),
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{typed:?}");
    }

    let mut typo = words.clone();
    let wrong = format!("{}q", typo[2]);
    typo[2] = &wrong;
    let typed = typo.join(" ");
    let res = send(
        &r,
        post_form("/followup/ru/login", &login_form(&typed), None),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = body_text(res).await;
    assert!(page.contains("Слова номер 3 нет в списке"), "{page}");
    assert!(page.contains(&format!(">{typed}</textarea>")), "{page}");
}

/// A reload of the success page ("Resend?") stores nothing a second time
/// and draws no second codename; a form without a token, or with one the
/// relay never saw, is stored as usual; the token is stored nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_a_stored_form_stores_nothing_twice() {
    let r = relay();
    let form = body_text(send(&r, get("/en/", None)).await).await;
    let start = form.find("name=\"once\" value=\"").unwrap() + "name=\"once\" value=\"".len();
    let token = form[start..start + 22].to_owned();
    let body = |token: &str| {
        multipart(
            &[
                ("once", token),
                ("category", "other"),
                ("text", "a testimony sent once"),
                ("followup", "yes"),
            ],
            None,
        )
    };
    let first = body_text(send(&r, post_multipart("/en/submit", body(&token), None)).await).await;
    assert!(first.contains("codename-words"), "{first}");
    let again = send(&r, post_multipart("/en/submit", body(&token), None)).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again = body_text(again).await;
    assert!(again.contains("Already received"), "{again}");
    assert!(!again.contains("codename-words"), "{again}");
    r.state.store().sync().await.unwrap();
    let stats = r.state.store().stats().unwrap();
    assert_eq!((stats.submissions, stats.threads), (1, 1));

    // Never seen, or none at all: stored.
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA";
    let res = body_text(send(&r, post_multipart("/en/submit", body(unknown), None)).await).await;
    assert!(res.contains("Received and stored safely"), "{res}");
    let none = multipart(&[("category", "other"), ("text", "no token")], None);
    let res = body_text(send(&r, post_multipart("/en/submit", none, None)).await).await;
    assert!(res.contains("Received and stored safely"), "{res}");
    assert_eq!(r.state.store().stats().unwrap().submissions, 3);

    // The token is in no sealed testimony and no file.
    for (id, _) in r.state.store().submissions().unwrap() {
        let mut sealed = Vec::new();
        r.state
            .store()
            .ciphertext(&id)
            .unwrap()
            .read_to_end(&mut sealed)
            .unwrap();
        let plain = testkit::decrypt(&r.reviewer, &sealed).unwrap();
        assert!(!contains(&plain, token.as_bytes()), "{id}");
    }
    for p in testkit::files(&r.data) {
        let bytes = std::fs::read(&p).unwrap();
        assert!(!contains(&bytes, token.as_bytes()), "{}", p.display());
    }
}
