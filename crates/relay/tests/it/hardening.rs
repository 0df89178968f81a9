//! The relay's anonymity promises, tested against the real binary: nothing
//! identifying in what it stores or logs, no time finer than a day, the
//! onion listener loopback-only, TLS 1.3 by default, certificate reload
//! without restart, no core dumps.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::util;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testkit::{codename_of, contains, files, log_in};
use util::{Served, client, client_builder, demo_data, relay, stderr};

#[test]
fn seizure_finds_no_identifying_data_or_fine_times() {
    let root = tempfile::tempdir().unwrap();
    // A questionnaire without a region list, so the region is free text and
    // can carry a canary like the testimony does.
    let data = demo_data(root.path(), |t| {
        format!(
            "{t}\n[form]\ndefault_language = \"en\"\n[[form.category]]\nkey = \"other\"\nen = \"Other\"\n"
        )
    });
    let tmp = root.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // Maximum verbosity the operator could ask for, for the relay and (it
    // must be ignored) for every dependency.
    let served = Served::start_with(
        &data,
        &[
            ("RELAY_LOG", "trace"),
            ("RUST_LOG", "trace"),
            ("TMPDIR", tmp.to_str().unwrap()),
        ],
    );
    let source_ip: IpAddr = "127.0.0.3".parse().unwrap();
    let ua = "CanaryBrowser/7.7 UA-CANARY-e41f";
    let source = client_builder(&data)
        .local_address(source_ip)
        .user_agent(ua)
        .build()
        .unwrap();

    let text = "TEXT-CANARY-90ab testimony";
    let file_name = "FILENAME-CANARY-77c1.pdf";
    let region = "REGION-CANARY-3d3d";
    let form = || {
        reqwest::blocking::multipart::Form::new()
            .text("category", "other")
            .text("text", text)
            .text("region", region)
            .text("events_month", "03")
            .text("events_year", "2025")
            .part(
                "files",
                reqwest::blocking::multipart::Part::bytes(b"FILE-CONTENT-CANARY-5e5e".to_vec())
                    .file_name(file_name),
            )
    };
    let url = served.url();
    let ok = source
        .post(format!("{url}/en/submit"))
        .header("X-Forwarded-For", "HEADER-CANARY-1f1f")
        .multipart(form())
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    // A refused one too: error paths must not log what was sent either.
    let refused = source
        .post(format!("{url}/en/submit"))
        .multipart(form().text("unexpected", "x"))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);
    let junk = source
        .post(format!("{url}/en/submit"))
        .header("Content-Type", "multipart/form-data; boundary=B")
        .body(format!(
            "--B\r\nContent-Disposition: form-data; name=\"{file_name}\"\r\n\r\n"
        ))
        .send()
        .unwrap();
    assert!(junk.status().is_client_error());

    // The same through the OpenRosa endpoint a field app uses: the form
    // list with Collect's deviceID, a stored instance (with a device field
    // in meta) and a refused one, with the same canaries.
    let list = source
        .get(format!(
            "{url}/openrosa/formList?deviceID=DEVICEID-CANARY-0b0b"
        ))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let version = list
        .split("<version>")
        .nth(1)
        .and_then(|v| v.split("</version>").next())
        .unwrap()
        .to_owned();
    let instance = |version: &str| {
        format!(
            "<data id=\"relay-testimony\" version=\"{version}\"><category>other</category>\
             <region>{region}</region><text>{text}</text><document>{file_name}</document>\
             <meta><instanceID>uuid:INSTANCE-CANARY-2c2c</instanceID><deviceID>DEVICEID-CANARY-0b0b</deviceID></meta></data>"
        )
    };
    let openrosa = |xml: String| {
        reqwest::blocking::multipart::Form::new()
            .part(
                "xml_submission_file",
                reqwest::blocking::multipart::Part::text(xml)
                    .file_name("submission.xml")
                    .mime_str("text/xml")
                    .unwrap(),
            )
            .part(
                file_name,
                reqwest::blocking::multipart::Part::bytes(b"FILE-CONTENT-CANARY-5e5e".to_vec())
                    .file_name(file_name),
            )
    };
    let ok = source
        .post(format!("{url}/openrosa/submission"))
        .header("X-Forwarded-For", "HEADER-CANARY-1f1f")
        .multipart(openrosa(instance(&version)))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 201);
    let refused = source
        .post(format!("{url}/openrosa/submission"))
        .multipart(openrosa(instance("1-00000000")))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);

    // Export and ack through the API, from the same address.
    let token = std::fs::read_to_string(data.join("demo-api.token")).unwrap();
    let token = token.trim();
    let batch = source
        .get(format!("{url}/api/v1/batches/next"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let mut archive = tar::Archive::new(&batch[..]);
    let mut manifest = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        assert_eq!(entry.header().mtime().unwrap(), 0, "batch member mtime");
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            std::io::Read::read_to_end(&mut entry, &mut manifest).unwrap();
        }
    }
    // Stored before the ack: check what a seizure at this moment finds.
    let stored_now = scan_stored(&data, &tmp);
    let m = format::Manifest::from_json(&manifest).unwrap();
    let ack = source
        .post(format!("{url}/api/v1/batches/{}/ack", m.batch_id))
        .bearer_auth(token)
        .body(format!(
            "{{\"manifest_sha256\": \"{}\"}}",
            format::Digest::of(&manifest)
        ))
        .send()
        .unwrap();
    assert_eq!(ack.status(), 200);
    let log = served.stop();
    let stored_after = scan_stored(&data, &tmp);

    let canaries: [&[u8]; 11] = [
        b"DEVICEID-CANARY",
        b"INSTANCE-CANARY",
        b"127.0.0.3",
        ua.as_bytes(),
        b"UA-CANARY",
        b"TEXT-CANARY",
        b"FILENAME-CANARY",
        b"REGION-CANARY",
        b"FILE-CONTENT-CANARY",
        b"HEADER-CANARY",
        b"CanaryBrowser",
    ];
    for c in canaries {
        let c_str = String::from_utf8_lossy(c);
        assert!(!contains(log.as_bytes(), c), "log holds {c_str}:\n{log}");
        for (path, bytes) in stored_now.iter().chain(&stored_after) {
            assert!(!contains(bytes, c), "{} holds {c_str}", path.display());
        }
    }
    // The logs carried something (the test would be empty otherwise), but
    // no time: neither ours (no timestamps) nor a dependency's.
    assert!(log.contains("relay listening"), "{log}");
    assert_no_fine_time(log.as_bytes(), "the log");
    for (path, bytes) in stored_now.iter().chain(&stored_after) {
        assert_no_fine_time(bytes, &path.display().to_string());
    }
}

/// Reads every stored file (data dir and temp dir). (What their times say
/// is the `seizure` module's subject.)
fn scan_stored(data: &Path, tmp: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for path in files(data).into_iter().chain(files(tmp)) {
        if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    assert!(!out.is_empty());
    out
}

/// Fails if `bytes` holds a clock time of today (ISO `YYYY-MM-DDT`, `HH:MM:SS`
/// near now) or the current Unix time in seconds or milliseconds.
fn assert_no_fine_time(bytes: &[u8], what: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let day = format::Day::today().to_string();
    // Unix seconds within the last ~3 hours share their first 6 digits.
    for probe in [
        format!("{day}T"),
        format!("{day} "),
        (now / 10_000).to_string(),
        ((now - 10_000) / 10_000).to_string(),
    ] {
        assert!(
            !contains(bytes, probe.as_bytes()),
            "{what} holds a time ({probe})"
        );
    }
}

#[test]
fn core_dumps_are_off_while_serving() {
    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| t);
    let served = Served::start(&data);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", served.child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
    served.kill();
}

/// Set in the child that [`hardening_makes_the_process_non_dumpable`]
/// runs itself in.
const HARDEN_HERE: &str = "RELAY_TEST_HARDEN_THIS_PROCESS";

/// `harden` changes the whole process for good: non-dumpable, and a core
/// size limit of 0 that no process can raise again and every child
/// inherits. In the process the other tests share, a relay they start
/// afterwards would then have no core dumps whatever it did itself (and
/// `core_dumps_are_off_while_serving` would check nothing). So the test
/// runs in a child: this test binary again, running this test alone.
#[test]
fn hardening_makes_the_process_non_dumpable() {
    if std::env::var_os(HARDEN_HERE).is_some() {
        relay::process::harden().unwrap();
        assert!(relay::process::is_hardened());
        return;
    }
    // The test's name as the harness knows it: its module path past the
    // crate's name.
    let name = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::hardening_makes_the_process_non_dumpable"),
        None => "hardening_makes_the_process_non_dumpable".to_owned(),
    };
    let o = Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--test-threads=1"])
        .env(HARDEN_HERE, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
}

#[test]
fn onion_listener_serves_plain_http_on_loopback_and_https_points_to_it() {
    let root = tempfile::tempdir().unwrap();
    let onion_port = util::free_port();
    let onion = format!("{}.onion", "q".repeat(56));
    let data = demo_data(root.path(), |t| {
        format!("onion_listen = \"{onion_port}\"\nonion_address = \"{onion}\"\n{t}")
    });
    let served = Served::start(&data);
    let plain = reqwest::blocking::get(format!("http://{onion_port}/")).unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("strict-transport-security").is_none());
    assert!(plain.headers().get("onion-location").is_none());
    assert!(plain.headers().get("content-security-policy").is_some());
    let https = client(&data)
        .get(format!("{}/en/?x=1", served.url()))
        .send()
        .unwrap();
    assert!(https.headers().get("strict-transport-security").is_some());
    assert_eq!(
        https.headers().get("onion-location").unwrap(),
        &format!("http://{onion}/en/?x=1")
    );
    served.kill();
}

#[test]
fn onion_listener_beyond_loopback_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| {
        format!("onion_listen = \"0.0.0.0:18081\"\n{t}")
    });
    let o = relay(&["serve", "--data", data.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("onion_listen") && e.contains("loopback"), "{e}");
}

/// `[api] listen`: the reviewer API answers only on its own listener
/// (behind the client-authorised onion service of `deploy/torrc-api`), and
/// that listener serves nothing else.
#[test]
fn the_api_listener_alone_serves_the_api_and_nothing_else() {
    let root = tempfile::tempdir().unwrap();
    let onion_port = util::free_port();
    let api_port = util::free_port();
    let data = demo_data(root.path(), |t| {
        let with_api = t.replace("[api]\n", &format!("[api]\nlisten = \"{api_port}\"\n"));
        assert_ne!(with_api, t, "the demo config has an [api] table");
        format!("onion_listen = \"{onion_port}\"\n{with_api}")
    });
    let token = std::fs::read_to_string(data.join(relay::demo::DEMO_TOKEN_FILE)).unwrap();
    let served = Served::start(&data);
    let plain = reqwest::blocking::Client::new();
    let batches = |c: &reqwest::blocking::Client, base: &str| {
        c.get(format!("{base}/api/v1/batches"))
            .bearer_auth(token.trim())
            .send()
            .unwrap()
    };

    let api = format!("http://{api_port}");
    let listed = batches(&plain, &api);
    assert_eq!(listed.status(), 200);
    assert!(listed.headers().get("strict-transport-security").is_none());
    assert!(listed.headers().get("content-security-policy").is_some());
    let anonymous = plain.get(format!("{api}/api/v1/batches")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    for page in [
        "/",
        "/en/",
        "/en/source",
        "/followup/en/",
        "/openrosa/formList",
        "/static/style.css",
    ] {
        let r = plain.get(format!("{api}{page}")).send().unwrap();
        assert_eq!(r.status(), 404, "{page} on the API listener");
    }

    let https = client(&data);
    for (c, base) in [
        (&https, served.url()),
        (&plain, format!("http://{onion_port}")),
    ] {
        assert_eq!(
            c.get(format!("{base}/en/")).send().unwrap().status(),
            200,
            "{base}"
        );
        assert_eq!(batches(c, &base).status(), 404, "/api/v1 on {base}");
    }
    assert!(
        served.log().contains("reviewer API listening"),
        "{}",
        served.log()
    );
    served.kill();
}

#[test]
fn tls_1_2_is_refused_by_default() {
    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| t);
    let served = Served::start(&data);
    let old = client_builder(&data)
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(old.get(served.url()).send().is_err());
    assert!(
        client(&data)
            .get(served.url())
            .send()
            .unwrap()
            .status()
            .is_success()
    );
    served.kill();
}

/// No TLS session resumption: a ticket or session id from one
/// visit would link it to the next. The client keeps whatever the relay
/// hands out (rustls's default client cache) and reconnects; every
/// connection must be a full handshake, also with TLS 1.2 allowed.
#[test]
fn a_returning_visitor_gets_no_resumed_session() {
    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| {
        t.replace("[tls]\n", "[tls]\nmin_version = \"1.2\"\n")
    });
    let served = Served::start(&data);
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let mut tls = util::raw::Tls::new(&data, served.addr);
        let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(root_store(&data))
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tls.config = std::sync::Arc::new(config);
        let mut kinds = Vec::new();
        for _ in 0..3 {
            let mut s = tls.connect();
            kinds.push(s.conn.handshake_kind());
            // A ticket comes after the handshake: read a whole response so
            // the client has taken in anything the relay sent.
            util::raw::send(
                &mut s,
                b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            let _ = util::raw::read_to_close(&mut s);
        }
        assert_eq!(
            kinds,
            vec![Some(rustls::HandshakeKind::Full); 3],
            "{versions:?}"
        );
    }
    served.kill();
}

fn root_store(data: &Path) -> rustls::RootCertStore {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(data.join("tls/cert.pem")).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// The DER certificate the relay presents.
fn served_cert(data: &Path, url: &str) -> Vec<u8> {
    // Trust any certificate here: this looks at which one is served.
    let c = reqwest::blocking::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .unwrap();
    let _ = data;
    let res = c.get(url).send().unwrap();
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec()
}

#[test]
fn sighup_reloads_the_certificate_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| t);
    let served = Served::start(&data);
    let before = served_cert(&data, &served.url());
    let new = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(data.join("tls/cert.pem"), new.cert.pem()).unwrap();
    std::fs::write(data.join("tls/key.pem"), new.signing_key.serialize_pem()).unwrap();
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = before.clone();
    while after == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = served_cert(&data, &served.url());
    }
    assert_eq!(after, new.cert.der().to_vec());
    assert!(served.log().contains("reloaded the TLS certificate"));
    served.kill();
}

/// The follow-up loop against the real binary at the highest log level:
/// afterwards the data dir, the temp dir and every log line hold no
/// codename, no reply plaintext and no follow-up plaintext.
#[test]
fn follow_up_leaves_no_codename_or_plaintext_in_files_or_logs() {
    use std::io::{Read as _, Write as _};

    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| t);
    let tmp = root.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let served = Served::start_with(
        &data,
        &[
            ("RELAY_LOG", "trace"),
            ("RUST_LOG", "trace"),
            ("TMPDIR", tmp.to_str().unwrap()),
        ],
    );
    let url = served.url();
    let http = client_builder(&data)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = reqwest::blocking::multipart::Form::new()
        .text("category", "other")
        .text("text", "FIRST-TEXT-CANARY-a1a1")
        .text("followup", "yes");
    let page = http
        .post(format!("{url}/en/submit"))
        .multipart(form)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let codename = codename_of(&page);

    // The thread and the source's recipient, from a batch.
    let token = std::fs::read_to_string(data.join("demo-api.token")).unwrap();
    let token = token.trim();
    let batch = http
        .get(format!("{url}/api/v1/batches/next"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let mut manifest = Vec::new();
    for entry in tar::Archive::new(&batch[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            entry.read_to_end(&mut manifest).unwrap();
        }
    }
    let m = format::Manifest::from_json(&manifest).unwrap();
    let thread = &m.threads[0];

    // A reply, as a reviewer would encrypt it.
    let message = format::ReplyMessage::new(
        format::Day::today(),
        zeroize::Zeroizing::new("REPLY-CANARY-b2b2 thank you".into()),
    );
    let recipient: age::x25519::Recipient = thread.recipient.parse().unwrap();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let mut sealed = Vec::new();
    let mut w = encryptor.wrap_output(&mut sealed).unwrap();
    w.write_all(&message.to_json()).unwrap();
    w.finish().unwrap();
    let mut bundle = format::ReplyBundle::new();
    bundle.push(thread.id, format::ReplyId::from_bytes([3; 16]), &sealed);
    let pushed = http
        .post(format!("{url}/api/v1/replies"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(util::signed_bundle(&data, &bundle))
        .send()
        .unwrap();
    assert_eq!(pushed.status(), 200);

    // Log in (once with a wrong codename too), read, add, delete, log out.
    let wrong = log_in(
        &http,
        &url,
        "abacus abdomen abdominal abide abiding ability ablaze able",
    );
    assert_eq!(wrong.status, 403);
    let login = log_in(&http, &url, &codename);
    assert_eq!(login.status, 303);
    let cookie = login.cookie.unwrap();
    let thread_page = http
        .get(format!("{url}/followup/en/"))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(thread_page.contains("REPLY-CANARY-b2b2"));
    let added = http
        .post(format!("{url}/followup/en/submit"))
        .header("cookie", &cookie)
        .multipart(
            reqwest::blocking::multipart::Form::new()
                .text("text", "FOLLOWUP-CANARY-c3c3")
                .part(
                    "files",
                    reqwest::blocking::multipart::Part::bytes(
                        b"FOLLOWUP-FILE-CANARY-d4d4".to_vec(),
                    )
                    .file_name("FOLLOWUP-NAME-CANARY-e5e5.txt"),
                ),
        )
        .send()
        .unwrap();
    assert_eq!(added.status(), 303);
    let deleted = http
        .post(format!(
            "{url}/followup/en/replies/{}/delete",
            format::ReplyId::from_bytes([3; 16])
        ))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(deleted.status(), 303);
    let out = http
        .post(format!("{url}/followup/en/logout"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(out.status(), 200);

    let log = served.stop();
    let stored = scan_stored(&data, &tmp);
    let session_token = cookie.split_once('=').unwrap().1.to_owned();
    let canaries: Vec<&[u8]> = vec![
        codename.as_bytes(),
        session_token.as_bytes(),
        b"FIRST-TEXT-CANARY",
        b"REPLY-CANARY",
        b"FOLLOWUP-CANARY",
        b"FOLLOWUP-FILE-CANARY",
        b"FOLLOWUP-NAME-CANARY",
    ];
    // Any two consecutive codename words count as a leak too. (Single
    // words do not: a list word like "created" may be part of a log line.)
    let words: Vec<&str> = codename.split(' ').collect();
    let pairs: Vec<String> = words.windows(2).map(|w| w.join(" ")).collect();
    for c in canaries
        .iter()
        .copied()
        .chain(pairs.iter().map(|p| p.as_bytes()))
    {
        let c_str = String::from_utf8_lossy(c);
        assert!(!contains(log.as_bytes(), c), "log holds {c_str}:\n{log}");
    }
    for c in &canaries {
        let c_str = String::from_utf8_lossy(c);
        for (path, bytes) in &stored {
            assert!(!contains(bytes, c), "{} holds {c_str}", path.display());
        }
    }
    assert!(log.contains("relay listening"), "{log}");
    assert_no_fine_time(log.as_bytes(), "the log");
}
