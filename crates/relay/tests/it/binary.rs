//! The `relay` binary as an operator runs it: demo first run, refusals,
//! offline export and ack, and a kill -9 in the middle of an upload.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a failed test

use crate::util;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use util::{Served, client, relay, status_line, stderr, submit};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_run_creates_a_private_demo_setup_and_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("relay-data");
    let served = Served::start(&data);
    assert_eq!(mode(&data), 0o700);
    for secret in [
        "relay.toml",
        "signing.key",
        "demo-reviewer.key",
        "demo-api.token",
        "tls/key.pem",
    ] {
        assert_eq!(mode(&data.join(secret)), 0o600, "{secret}");
    }
    let page = client(&data).get(served.url()).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .unwrap()
            .contains("<form method=\"post\" action=\"/ru/submit\"")
    );
    assert_eq!(submit(&data, &served.url(), "hello"), 200);
    served.kill();

    // `relay pubkey` prints one line: the key reviewers pin.
    let o = relay(&["pubkey", "--data", data.to_str().unwrap()]);
    assert!(o.status.success());
    let key = String::from_utf8(o.stdout).unwrap();
    assert_eq!(key.lines().count(), 1);
    assert!(key.starts_with("RW"), "{key}");
}

#[test]
fn demo_refuses_to_listen_beyond_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let o = relay(&[
        "demo",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "0.0.0.0:18999",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
}

#[test]
fn a_bad_config_is_refused_with_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("relay.toml");
    std::fs::write(
        &config,
        "[tls]\ncert = \"c\"\nkey = \"k\"\n[reviewers]\nrecipients = [\"age1nope\"]\n[api]\ntoken_sha256 = \"00\"\n",
    )
    .unwrap();
    let o = relay(&[
        "serve",
        "--data",
        tmp.path().join("d").to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains(config.to_str().unwrap()), "{e}");
    assert!(e.contains("reviewers.recipients[0]"), "{e}");
    assert!(
        !tmp.path().join("d").exists(),
        "nothing created for a refused config"
    );
}

#[test]
fn offline_export_and_ack() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("relay-data");
    let served = Served::start(&data);
    assert_eq!(submit(&data, &served.url(), "one"), 200);
    assert_eq!(submit(&data, &served.url(), "two"), 200);

    // While the relay runs, the store is locked: a clear refusal.
    let out = tmp.path().join("batch.tar");
    let d = data.to_str().unwrap();
    let o = relay(&["export", "--data", d, "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("in use by another process"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    served.kill();

    let o = relay(&["export", "--data", d, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&out), 0o600);
    // Never overwrites.
    let o = relay(&["export", "--data", d, "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() || stderr(&o).contains("nothing to export"));
    assert!(status_line(&data).contains("submissions: 2 (0 not yet in a batch)"));

    // A receipt for this batch (as `reviewer open` writes it) deletes it.
    let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut manifest_bytes = Vec::new();
    entry.read_to_end(&mut manifest_bytes).unwrap();
    let manifest = format::Manifest::from_json(&manifest_bytes).unwrap();
    let receipt = format::Receipt {
        format: format::RECEIPT_FORMAT.into(),
        relay_key: manifest.relay_key.clone(),
        batch_id: manifest.batch_id,
        sequence: manifest.sequence,
        manifest_sha256: format::Digest::of(b"not the manifest"),
    };
    let receipt_path = tmp.path().join("receipt.json");
    std::fs::write(&receipt_path, receipt.to_json()).unwrap();
    let o = relay(&["ack", "--data", d, receipt_path.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not match"), "{}", stderr(&o));
    assert!(status_line(&data).contains("submissions: 2"));

    let receipt = format::Receipt {
        manifest_sha256: format::Digest::of(&manifest_bytes),
        ..receipt
    };
    std::fs::write(&receipt_path, receipt.to_json()).unwrap();
    let o = relay(&["ack", "--data", d, receipt_path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("deleted 2 submissions"));
    assert!(status_line(&data).contains("submissions: 0"));
}

/// A request body that sends `len` bytes and then stalls until killed.
struct Stalling {
    sent: usize,
    len: usize,
}

impl Read for Stalling {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent >= self.len {
            std::thread::sleep(Duration::from_secs(120));
            return Ok(0);
        }
        let n = buf.len().min(self.len - self.sent);
        buf[..n].fill(b'A');
        self.sent += n;
        Ok(n)
    }
}

#[test]
fn kill_during_upload_leaves_nothing_and_the_relay_serves_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf = tmp.path().join("relay-data");
    let served = Served::start(&data);
    assert_eq!(submit(&data, &served.url(), "kept"), 200);

    // An upload that sends 8 MiB of a file and then stalls.
    let url = served.url();
    let c = client(&data);
    std::thread::spawn(move || {
        let head = "--B\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\nother\r\n\
                    --B\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.bin\"\r\n\r\n";
        let body = std::io::Cursor::new(head.as_bytes().to_vec()).chain(Stalling {
            sent: 0,
            len: 8 << 20,
        });
        let _ = c
            .post(format!("{url}/en/submit"))
            .header("Content-Type", "multipart/form-data; boundary=B")
            .body(reqwest::blocking::Body::new(body))
            .send();
    });
    std::thread::sleep(Duration::from_secs(2));
    served.kill();

    let line = status_line(&data);
    assert!(line.contains("submissions: 1 "), "{line}");

    // The killed upload's spool (bytes under a key that died with the
    // process) is emptied at start-up; no file was created for it.
    let served = Served::start(&data);
    assert_eq!(util::busy_pool_files(&data), Vec::<PathBuf>::new());
    let spools = std::fs::read_dir(data.join("tmp")).unwrap().count();
    assert_eq!(
        spools, 16,
        "the pool of limits.max_concurrent_uploads spool files"
    );
    assert_eq!(submit(&data, &served.url(), "after restart"), 200);
    served.kill();
    assert!(status_line(&data).contains("submissions: 2 "));
}

#[test]
fn offline_reply_import_is_all_or_nothing() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("relay-data");
    let served = Served::start(&data);
    // A submission with a codename makes a thread.
    let form = reqwest::blocking::multipart::Form::new()
        .text("category", "other")
        .text("text", "testimony")
        .text("followup", "yes");
    let res = client(&data)
        .post(format!("{}/en/submit", served.url()))
        .multipart(form)
        .send()
        .unwrap();
    assert!(res.text().unwrap().contains("codename-words"));
    served.stop();
    let batch = root.path().join("batch.tar");
    let o = relay(&[
        "export",
        "--data",
        data.to_str().unwrap(),
        "--out",
        batch.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut manifest = Vec::new();
    for entry in tar::Archive::new(std::fs::File::open(&batch).unwrap())
        .entries()
        .unwrap()
    {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            entry.read_to_end(&mut manifest).unwrap();
        }
    }
    let thread = format::Manifest::from_json(&manifest).unwrap().threads[0].clone();
    let recipient: age::x25519::Recipient = thread.recipient.parse().unwrap();
    let mut sealed = Vec::new();
    {
        use std::io::Write as _;
        let e = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
        let mut w = e.wrap_output(&mut sealed).unwrap();
        w.write_all(b"{}").unwrap();
        w.finish().unwrap();
    }
    let import_bytes = |bytes: &[u8]| {
        let path = root.path().join("bundle.json");
        std::fs::write(&path, bytes).unwrap();
        relay(&[
            "import-replies",
            "--data",
            data.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
    };
    let import = |bundle: &format::ReplyBundle| {
        let path = root.path().join("bundle.json");
        std::fs::write(&path, util::signed_bundle(&data, bundle)).unwrap();
        relay(&[
            "import-replies",
            "--data",
            data.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
    };
    // One reply to an unknown thread refuses the whole bundle.
    let mut mixed = format::ReplyBundle::new();
    mixed.push(thread.id, format::ReplyId::from_bytes([1; 16]), &sealed);
    mixed.push(
        format::ThreadId::from_bytes([9; 16]),
        format::ReplyId::from_bytes([2; 16]),
        &sealed,
    );
    let o = import(&mixed);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is not on this relay"),
        "{}",
        stderr(&o)
    );
    assert!(status_line(&data).contains("replies held: 0"));
    // Unsigned (the old format, or what a token holder could build): refused.
    let mut good = format::ReplyBundle::new();
    good.push(thread.id, format::ReplyId::from_bytes([1; 16]), &sealed);
    let o = import_bytes(&good.to_json());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not signed by a pinned reviewer key")
            && stderr(&o).contains("unsigned"),
        "{}",
        stderr(&o)
    );
    assert!(status_line(&data).contains("replies held: 0"));
    // Malformed: refused with the parser's reason.
    let path = root.path().join("junk.json");
    std::fs::write(&path, b"{\"format\": \"relay-replies/2\"}").unwrap();
    let o = relay(&[
        "import-replies",
        "--data",
        data.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a reply bundle"), "{}", stderr(&o));
    // The good one alone is stored, once.
    let o = import(&good);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("stored 1 new replies"));
    let o = import(&good);
    assert!(String::from_utf8_lossy(&o.stdout).contains("stored 0 new replies (1 already held"));
    assert!(status_line(&data).contains("follow-up threads: 1, replies held: 1"));
}

/// A real (non-demo) config outside its data directory, as in /etc/relay:
/// the demo's certificate and reviewer key (copied to `root/etc`), without
/// `demo = true`.
fn real_config(root: &Path) -> PathBuf {
    let made = root.join("made");
    relay::demo::init(&made, "127.0.0.1:8443".parse().unwrap()).unwrap();
    let etc = root.join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::copy(made.join("tls/cert.pem"), etc.join("cert.pem")).unwrap();
    std::fs::copy(made.join("tls/key.pem"), etc.join("key.pem")).unwrap();
    let text = std::fs::read_to_string(made.join("relay.toml"))
        .unwrap()
        .replace("demo = true\n", "")
        .replace("tls/cert.pem", "cert.pem")
        .replace("tls/key.pem", "key.pem");
    assert!(!text.contains("demo ="));
    let config = etc.join("relay.toml");
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn a_real_relays_data_directory_never_becomes_a_demo() {
    let root = tempfile::tempdir().unwrap();
    let config = real_config(root.path());
    let data = root.path().join("var-lib-relay");
    let d = data.to_str().unwrap();
    let c = config.to_str().unwrap();
    // A real relay takes one submission, then stops.
    let served = Served::run(&["serve", "--data", d, "--config", c], &[]);
    assert_eq!(
        submit(&root.path().join("made"), &served.url(), "real"),
        200
    );
    served.stop();
    let before = testkit::paths(&data);
    assert!(before.contains(&data.join("signing.key")), "{before:?}");

    // Forgetting --config: refused, and nothing is added to the directory.
    let o = relay(&["serve", "--data", d]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("no config") && e.contains("--config") && e.contains("relay demo"),
        "{e}"
    );
    assert_eq!(testkit::paths(&data), before);

    // An explicit demo in it: refused too.
    let o = relay(&["demo", "--data", d]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("refusing to set up a demo") && e.contains("store"),
        "{e}"
    );
    assert_eq!(testkit::paths(&data), before);

    // A demo key left in a real relay's directory stops it from starting.
    std::fs::copy(
        root.path().join("made/demo-reviewer.key"),
        data.join("demo-reviewer.key"),
    )
    .unwrap();
    let o = relay(&[
        "serve",
        "--data",
        d,
        "--config",
        c,
        "--listen",
        &util::free_port().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("demo-reviewer.key") && e.contains("fresh data directory"),
        "{e}"
    );
    assert!(!e.contains("relay ready"), "{e}");
    std::fs::remove_file(data.join("demo-reviewer.key")).unwrap();

    // The real relay's batch is not marked as a demo's; the demo's is.
    let batch = root.path().join("real.tar");
    let o = relay(&[
        "export",
        "--data",
        d,
        "--config",
        c,
        "--out",
        batch.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!manifest_of(&batch).demo);
    assert!(!contains_bytes(
        &std::fs::read(&batch).unwrap(),
        b"\"demo\""
    ));
    let demo = root.path().join("relay-demo");
    let served = Served::start(&demo);
    assert_eq!(submit(&demo, &served.url(), "demo"), 200);
    served.stop();
    let batch = root.path().join("demo.tar");
    let o = relay(&[
        "export",
        "--data",
        demo.to_str().unwrap(),
        "--out",
        batch.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(manifest_of(&batch).demo);
}

fn manifest_of(batch: &Path) -> format::Manifest {
    let mut archive = tar::Archive::new(std::fs::File::open(batch).unwrap());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).unwrap();
    format::Manifest::from_json(&bytes).unwrap()
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn offline_commands_on_a_missing_directory_say_so_and_create_nothing() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("missing");
    let m = missing.to_str().unwrap();
    let receipt = root.path().join("receipt.json");
    std::fs::write(&receipt, "{}").unwrap();
    let out = root.path().join("batch.tar");
    for args in [
        vec!["status", "--data", m],
        vec!["check", "--data", m],
        vec!["export", "--data", m, "--out", out.to_str().unwrap()],
        vec!["ack", "--data", m, receipt.to_str().unwrap()],
        vec!["import-replies", "--data", m, receipt.to_str().unwrap()],
        vec!["pubkey", "--data", m],
    ] {
        let o = relay(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains(&format!("no relay data at {m}")),
            "{args:?}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(!missing.exists(), "{args:?} created {m}");
        assert!(!out.exists());
    }
}

#[test]
fn status_works_while_the_relay_runs_and_shows_counts_only() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("relay-data");
    let served = Served::start(&data);
    assert_eq!(submit(&data, &served.url(), "one"), 200);
    assert_eq!(submit(&data, &served.url(), "two"), 200);
    let running = status_line(&data);
    assert!(
        running.starts_with("submissions: 2 (2 not yet in a batch)"),
        "{running}"
    );
    // Nothing time-like in it: no clock time, no date.
    let b = running.as_bytes();
    let d = |i: usize| b[i].is_ascii_digit();
    assert!(
        !(0..b.len().saturating_sub(4)).any(|i| d(i) && d(i + 1) && b[i + 2] == b':' && d(i + 3)),
        "{running}"
    );
    assert!(
        !(0..b.len().saturating_sub(9))
            .any(|i| (0..4).all(|k| d(i + k)) && b[i + 4] == b'-' && d(i + 5)),
        "{running}"
    );
    // The socket is the relay user's only.
    let socket = data.join("status.sock");
    assert_eq!(mode(&socket), 0o600);
    served.stop();
    // It is removed at shutdown, and the stopped store says the same.
    assert!(!socket.exists());
    assert_eq!(status_line(&data), running);
}

#[test]
fn ready_is_logged_once_every_listener_serves_and_errors_are_said_once() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("relay-data");
    let served = Served::start(&data);
    let log = served.log();
    assert_eq!(log.matches("relay ready").count(), 1, "{log}");
    let listening = log.find("relay listening (HTTPS)").unwrap();
    assert!(listening < log.find("relay ready").unwrap(), "{log}");

    // A second relay on the same port: the cause once, and no "ready".
    let other = root.path().join("other");
    let o = relay(&[
        "demo",
        "--data",
        other.to_str().unwrap(),
        "--listen",
        served.url().trim_start_matches("https://"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert_eq!(e.matches("in use").count(), 1, "{e}");
    assert!(!e.contains("relay ready"), "{e}");
    served.stop();

    // A missing certificate names the config key, before anything is
    // opened: no store appears.
    let config = real_config(root.path());
    std::fs::remove_file(root.path().join("etc/cert.pem")).unwrap();
    let fresh = root.path().join("fresh");
    let o = relay(&[
        "serve",
        "--data",
        fresh.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &util::free_port().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("`tls.cert`") && e.contains("no such file") && !e.contains("relay ready"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(!fresh.join("store").exists());
}
