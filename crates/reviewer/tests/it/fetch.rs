//! `reviewer fetch` and `reviewer ack` against a tiny in-test HTTP server
//! (plain http on 127.0.0.1; the TLS flow is covered end to end).
#![allow(clippy::unwrap_used)]

use crate::util;

use std::sync::{Arc, Mutex};

use reviewer::Error;
use util::{Batch, Env, Relay, Reply, good_submission, open, reviewer, run, serve};

const TOKEN: &str = "tok_3n8N-secret";

fn token_file(env: &Env) -> std::path::PathBuf {
    let p = env.path("token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    p
}

/// Two batches of one relay.
fn two_batches(env: &Env) -> (Batch, Batch) {
    let r = reviewer(env.dir.path(), "reviewer.key");
    let mut relay = Relay::new();
    let (a, _) = good_submission("a", &[], &[&r.recipient]);
    let (b, _) = good_submission("b", &[("x.bin", &[7u8; 40_000])], &[&r.recipient]);
    let (c, _) = good_submission("c", &[], &[&r.recipient]);
    (relay.batch(&[a]), relay.batch(&[b, c]))
}

fn listing(batches: &[&Batch]) -> String {
    let items: Vec<String> = batches
        .iter()
        .map(|b| {
            let m = b.manifest();
            format!(
                r#"{{"batch_id": "{}", "sequence": {}, "submissions": {}}}"#,
                m.batch_id,
                m.sequence,
                m.submissions.len()
            )
        })
        .collect();
    format!(r#"{{"batches": [{}]}}"#, items.join(", "))
}

fn fetch(env: &Env, url: &str, token: &std::path::Path) -> Result<(), Error> {
    run(&[
        &"fetch",
        &"--relay",
        &url,
        &"--token-file",
        &token,
        &"--out",
        &env.out,
    ])
}

#[test]
fn fetch_saves_listed_and_new_batches() {
    let env = Env::new();
    let (b1, b2) = two_batches(&env);
    let (m1, m2) = (b1.manifest(), b2.manifest());
    let (bytes1, bytes2) = (b1.bytes(), b2.bytes());
    let list = listing(&[&b1]);
    let next_served = Arc::new(Mutex::new(false));
    let id1 = m1.batch_id.to_string();
    let server = serve(move |req| match req.path.as_str() {
        "/api/v1/batches" => Reply::json(&list),
        "/api/v1/batches/next" => {
            let mut served = next_served.lock().unwrap();
            if *served {
                Reply::new(204, Vec::new())
            } else {
                *served = true;
                Reply::new(200, bytes2.clone())
            }
        }
        p if p == format!("/api/v1/batches/{id1}") => Reply::new(200, bytes1.clone()),
        _ => Reply::new(404, Vec::new()),
    });
    let token = token_file(&env);
    fetch(&env, &server.url, &token).unwrap();

    let f1 = env.out.join(format!("batch-000001-{}.tar", m1.batch_id));
    let f2 = env.out.join(format!("batch-000002-{}.tar", m2.batch_id));
    assert_eq!(std::fs::read(&f1).unwrap(), b1.bytes());
    assert_eq!(std::fs::read(&f2).unwrap(), b2.bytes());
    // Only the two batches: no temporary files left.
    assert_eq!(std::fs::read_dir(&env.out).unwrap().count(), 2);

    {
        let reqs = server.requests.lock().unwrap();
        let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/api/v1/batches".to_owned(),
                format!("/api/v1/batches/{}", m1.batch_id),
                "/api/v1/batches/next".to_owned(),
                "/api/v1/batches/next".to_owned(),
            ]
        );
        for r in reqs.iter() {
            assert_eq!(r.method, "GET");
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {TOKEN}").as_str())
            );
            assert_eq!(r.header("user-agent"), None);
        }
    }

    // Again: the listed batch is already there, nothing new.
    fetch(&env, &server.url, &token).unwrap();
    let reqs = server.requests.lock().unwrap();
    assert_eq!(reqs.len(), 6, "the listed batch was downloaded again");
    assert_eq!(std::fs::read_dir(&env.out).unwrap().count(), 2);
}

#[test]
fn fetch_with_a_refused_token_says_so() {
    let env = Env::new();
    let server = serve(|_| Reply::new(401, Vec::new()));
    let token = token_file(&env);
    let e = fetch(&env, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::TokenRefused { .. })
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "the relay refused the token in {} (401): check the token file",
            token.display()
        )
    );
    assert_eq!(std::fs::read_dir(&env.out).unwrap().count(), 0);
}

#[test]
fn fetch_refuses_a_batch_other_than_the_one_asked_for() {
    let env = Env::new();
    let (b1, b2) = two_batches(&env);
    let list = listing(&[&b1]);
    let bytes2 = b2.bytes();
    let server = serve(move |req| match req.path.as_str() {
        "/api/v1/batches" => Reply::json(&list),
        _ => Reply::new(200, bytes2.clone()),
    });
    let token = token_file(&env);
    let e = fetch(&env, &server.url, &token).unwrap_err();
    assert!(
        matches!(&e, Error::Fetch(reviewer::fetch::FetchError::BadResponse { reason, .. }) if reason.contains("asked for batch 1")),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(&env.out).unwrap().count(), 0);
}

#[test]
fn fetch_refuses_garbage_and_oversize_answers() {
    let env = Env::new();
    let token = token_file(&env);

    // Not a batch at all.
    let server = serve(|req| match req.path.as_str() {
        "/api/v1/batches" => Reply::json(r#"{"batches": []}"#),
        _ => Reply::new(200, b"<html>hello</html>".to_vec()),
    });
    let e = fetch(&env, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::BadResponse { .. })
        ),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(&env.out).unwrap().count(), 0);

    // A listing with an unknown field.
    let server = serve(|_| Reply::json(r#"{"batches": [], "extra": 1}"#));
    let e = fetch(&env, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::BadResponse { .. })
        ),
        "{e}"
    );

    // A listing far larger than any real one.
    let big = format!(
        r#"{{"batches": [], "pad": "{}"}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let server = serve(move |_| Reply::json(&big));
    let e = fetch(&env, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::ResponseTooLarge { .. })
        ),
        "{e}"
    );

    // An unexpected status.
    let server = serve(|_| Reply::new(500, Vec::new()));
    let e = fetch(&env, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::UnexpectedStatus { status: 500, .. })
        ),
        "{e}"
    );
}

#[test]
fn fetch_refuses_plain_http_to_remote_hosts() {
    let env = Env::new();
    let token = token_file(&env);
    let e = fetch(&env, "http://relay.example.org", &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::InsecureRelayUrl { .. })
        ),
        "{e}"
    );
}

/// A `.onion` relay is reached through `--proxy`, and its name reaches the
/// proxy unresolved (SOCKS5 ATYP 3, as Tor needs it): nothing asks this
/// computer's DNS resolver.
#[test]
fn fetch_reaches_an_onion_relay_through_the_socks_proxy_by_name() {
    let env = Env::new();
    let (b1, _) = two_batches(&env);
    let list = listing(&[&b1]);
    let id1 = b1.manifest().batch_id.to_string();
    let bytes1 = b1.bytes();
    let server = serve(move |req| match req.path.as_str() {
        "/api/v1/batches" => Reply::json(&list),
        "/api/v1/batches/next" => Reply::new(204, Vec::new()),
        p if p == format!("/api/v1/batches/{id1}") => Reply::new(200, bytes1.clone()),
        _ => Reply::new(404, Vec::new()),
    });
    let target = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = testkit::socks_proxy(target);
    let token = token_file(&env);
    let onion = format!("{}.onion", "r".repeat(56));
    let relay = format!("http://{onion}");
    let with_proxy = |p: &str| {
        run(&[
            &"fetch",
            &"--relay",
            &relay,
            &"--proxy",
            &p,
            &"--token-file",
            &token,
            &"--out",
            &env.out,
        ])
    };
    with_proxy(&proxy.url).unwrap();
    let saved = env
        .out
        .join(format!("batch-000001-{}.tar", b1.manifest().batch_id));
    assert_eq!(std::fs::read(&saved).unwrap(), b1.bytes());
    let asked = proxy.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(
        asked.iter().all(|(h, p)| *h == onion && *p == 80),
        "{asked:?}"
    );
    // What the relay saw: the onion name as Host, the token, no user agent.
    for r in server.requests.lock().unwrap().iter() {
        assert_eq!(r.header("host"), Some(onion.as_str()));
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(r.header("user-agent"), None);
    }

    // Without --proxy: refused before anything is sent.
    let before = server.requests.lock().unwrap().len();
    let e = fetch(&env, &relay, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::OnionNeedsProxy { .. })
        ),
        "{e}"
    );
    // socks5:// would resolve the name here: refused too.
    let local_dns = proxy.url.replace("socks5h://", "socks5://");
    let e = with_proxy(&local_dns).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::BadProxy { .. })
        ),
        "{e}"
    );
    assert_eq!(server.requests.lock().unwrap().len(), before);
    assert_eq!(proxy.asked.lock().unwrap().len(), 3);
}

/// No proxy but `--proxy`: the proxy variables of the environment are
/// ignored (they could send the token's connection, or a relay's name,
/// somewhere the command line never said).
#[test]
fn fetch_ignores_the_environments_proxy_variables() {
    let env = Env::new();
    let server = serve(|req| match req.path.as_str() {
        "/api/v1/batches" => Reply::json(r#"{"batches": []}"#),
        "/api/v1/batches/next" => Reply::new(204, Vec::new()),
        _ => Reply::new(404, Vec::new()),
    });
    let target = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = testkit::socks_proxy(target);
    let token = token_file(&env);
    let mut cmd = testkit::ReviewerCmd::new(["fetch", "--relay", &server.url, "--token-file"])
        .arg(&token)
        .arg("--out")
        .arg(&env.out)
        .command();
    for var in [
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
    ] {
        cmd.env(var, &proxy.url);
    }
    cmd.env_remove("NO_PROXY").env_remove("no_proxy");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no new batches"));
    assert_eq!(server.requests.lock().unwrap().len(), 2);
    assert!(
        proxy.asked.lock().unwrap().is_empty(),
        "{:?}",
        proxy.asked.lock().unwrap()
    );
}

/// Opens `b1` so that a receipt exists, and returns the receipt path.
fn receipt_for(env: &Env) -> (std::path::PathBuf, format::Receipt) {
    let r = reviewer(env.dir.path(), "rev.key");
    let mut relay = Relay::new();
    let (s, _) = good_submission("a", &[], &[&r.recipient]);
    let p = relay.batch(&[s]).write(&env.path("b1.tar"));
    open(env, &relay, &r, &[&p]).unwrap();
    let dir = env.out.join("receipts");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let receipt = format::Receipt::from_json(&std::fs::read(&path).unwrap()).unwrap();
    (path, receipt)
}

fn ack(receipt: &std::path::Path, url: &str, token: &std::path::Path) -> Result<(), Error> {
    run(&[&"ack", &receipt, &"--relay", &url, &"--token-file", &token])
}

#[test]
fn ack_sends_the_manifest_hash() {
    let env = Env::new();
    let token = token_file(&env);
    let (path, receipt) = receipt_for(&env);
    let server = serve(|_| Reply::json(r#"{"deleted": 3}"#));
    ack(&path, &server.url, &token).unwrap();
    {
        let reqs = server.requests.lock().unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(
            reqs[0].path,
            format!("/api/v1/batches/{}/ack", receipt.batch_id)
        );
        assert_eq!(
            reqs[0].header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let body: format::AckRequest = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!(body.manifest_sha256, receipt.manifest_sha256);
    }

    // The library answer carries the count the relay reported.
    let client = reviewer::fetch::RelayClient::new(&server.url, &token, None, None).unwrap();
    let acked = reviewer::fetch::ack(&client, &path).unwrap();
    assert_eq!(acked.deleted, 3);
    assert_eq!(acked.sequence, 1);
}

#[test]
fn ack_explains_conflict_unknown_and_refused() {
    let env = Env::new();
    let token = token_file(&env);
    let (path, receipt) = receipt_for(&env);

    let server = serve(|_| Reply::new(409, Vec::new()));
    let e = ack(&path, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::AckConflict { .. })
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains(
            "manifest hash mismatch): do not trust this relay's batches until you know why"
        )
    );

    let server = serve(|_| Reply::new(404, Vec::new()));
    let e = ack(&path, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::AckUnknown { .. })
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with(&format!(
        "the relay does not know batch {} (already purged?)",
        receipt.batch_id
    )));

    let server = serve(|_| Reply::new(401, Vec::new()));
    let e = ack(&path, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::TokenRefused { .. })
        ),
        "{e}"
    );

    let server = serve(|_| Reply::json(r#"{"deleted": "many"}"#));
    let e = ack(&path, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::BadResponse { .. })
        ),
        "{e}"
    );
}

#[test]
fn ack_refuses_a_file_that_is_not_a_receipt() {
    let env = Env::new();
    let token = token_file(&env);
    let bogus = env.path("bogus.json");
    std::fs::write(&bogus, b"{}").unwrap();
    let server = serve(|_| Reply::json(r#"{"deleted": 1}"#));
    let e = ack(&bogus, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::BadReceipt { .. })
        ),
        "{e}"
    );
    assert!(server.requests.lock().unwrap().is_empty());
}

#[test]
fn unreachable_relay_is_a_clear_error() {
    let env = Env::new();
    let token = token_file(&env);
    // Bind and drop: nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = fetch(&env, &format!("http://127.0.0.1:{port}"), &token).unwrap_err();
    assert!(
        matches!(e, Error::Fetch(reviewer::fetch::FetchError::Http { .. })),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("could not talk to the relay at"),
        "{e}"
    );
}

#[test]
fn tls_with_the_pinned_certificate() {
    let env = Env::new();
    let token = token_file(&env);
    let (server, pem) = util::serve_tls(|req| match req.path.as_str() {
        "/api/v1/batches" => Reply::json(r#"{"batches": []}"#),
        _ => Reply::new(204, Vec::new()),
    });
    let cert = env.path("relay.pem");
    std::fs::write(&cert, &pem).unwrap();

    run(&[
        &"fetch",
        &"--relay",
        &server.url,
        &"--token-file",
        &token,
        &"--out",
        &env.out,
        &"--tls-cert",
        &cert,
    ])
    .unwrap();
    assert_eq!(server.requests.lock().unwrap().len(), 2);

    // Without the pin, the self-signed certificate is not trusted, and
    // the error says to pass it.
    let e = fetch(&env, &server.url, &token).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::Certificate { .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("pass --tls-cert FILE"), "{e}");
    assert!(!e.to_string().contains("Context"), "{e}");

    // Pinning another certificate does not trust this one either.
    let (_, other_pem) = util::serve_tls(|_| Reply::new(204, Vec::new()));
    let other = env.path("other.pem");
    std::fs::write(&other, other_pem).unwrap();
    let e = run(&[
        &"fetch",
        &"--relay",
        &server.url,
        &"--token-file",
        &token,
        &"--out",
        &env.out,
        &"--tls-cert",
        &other,
    ])
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Fetch(reviewer::fetch::FetchError::Certificate { .. })
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains(&format!(
            "not the certificate in --tls-cert {}",
            other.display()
        )),
        "{e}"
    );
    // Neither failed attempt got a request through.
    assert_eq!(server.requests.lock().unwrap().len(), 2);

    // A file without a certificate.
    let junk = env.path("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let e = run(&[
        &"fetch",
        &"--relay",
        &server.url,
        &"--token-file",
        &token,
        &"--out",
        &env.out,
        &"--tls-cert",
        &junk,
    ])
    .unwrap_err();
    assert!(
        matches!(e, Error::Fetch(reviewer::fetch::FetchError::TlsCert { .. })),
        "{e}"
    );
}

#[test]
fn a_ca_certificate_as_the_relays_says_what_to_change() {
    // What a plain `openssl req -x509` makes: curl accepts it as pinned,
    // rustls (webpki) refuses a CA certificate as a server's.
    let env = Env::new();
    let token = token_file(&env);
    let (server, pem) = util::serve_tls_with(true, |_| Reply::json(r#"{"batches": []}"#));
    let cert = env.path("relay.pem");
    std::fs::write(&cert, &pem).unwrap();
    let e = run(&[
        &"fetch",
        &"--relay",
        &server.url,
        &"--token-file",
        &token,
        &"--out",
        &env.out,
        &"--tls-cert",
        &cert,
    ])
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("CA certificate") && text.contains("basicConstraints=critical,CA:FALSE"),
        "{text}"
    );
    assert!(server.requests.lock().unwrap().is_empty());
}

#[test]
fn run_works_from_inside_an_async_runtime() {
    // End-to-end tests drive the relay with tokio and call `reviewer::run`
    // from async code; the blocking HTTP client must not mind.
    let env = Env::new();
    let token = token_file(&env);
    let server = serve(|req| match req.path.as_str() {
        "/api/v1/batches" => Reply::json(r#"{"batches": []}"#),
        _ => Reply::new(204, Vec::new()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { fetch(&env, &server.url, &token) })
        .unwrap();
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}
