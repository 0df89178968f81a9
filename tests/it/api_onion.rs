//! The reviewer API's own, client-authorised onion service (`[api] listen`,
//! `deploy/torrc-api`, `reviewer onion-auth`, `reviewer fetch --proxy`),
//! with the real tor and an independent X25519:
//!
//! - tor (with `DisableNetwork 1`: nothing here reaches the Tor network)
//!   runs deploy/torrc-api, makes the service's address, and loads the two
//!   key files `reviewer onion-auth` writes for it, the service's and the
//!   client's, without a warning (a damaged key gets one: the check can
//!   fail);
//! - Python's `cryptography` derives the public key from the private one
//!   and gets the line the reviewer printed;
//! - the reviewer fetches a batch from a relay whose API is on its own
//!   listener, through a SOCKS5 proxy that receives the onion name
//!   unresolved (standing in for tor's SOCKS port, which cannot reach an
//!   onion service without the network).
//!
//! What cannot be tested here: a connection through the Tor network to
//! the service, with and without a key (no network).

#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{TestRelay, workspace_root};
use testkit::ReviewerCmd;

/// Runs tor on `torrc` until it has loaded its keys and started
/// bootstrapping (it cannot go further without the network), and returns
/// what it logged.
fn tor_log(torrc: &Path) -> String {
    let mut child = Command::new("tor")
        .args(["--defaults-torrc", "/dev/null", "-f"])
        .arg(torrc)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tor is not installed: scripts/test installs it (apt-get install tor)");
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        log.push_str(&line);
        log.push('\n');
        if line.contains("Bootstrapped 0%") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("Bootstrapped 0%"), "tor did not start:\n{log}");
    log
}

fn private_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn tor_loads_the_keys_reviewer_onion_auth_writes_and_fetch_goes_through_socks() {
    let work = tempfile::tempdir().unwrap();
    let (hs, data, client) = (
        work.path().join("hs"),
        work.path().join("data"),
        work.path().join("onion-auth"),
    );
    for d in [&hs, &data, &client] {
        private_dir(d);
    }
    let api = std::fs::read_to_string(workspace_root().join("deploy/torrc-api")).unwrap();
    let service = api.replace(
        "HiddenServiceDir /var/lib/tor/relay-api/",
        &format!("HiddenServiceDir {}/", hs.display()),
    );
    assert_ne!(
        service, api,
        "deploy/torrc-api has no HiddenServiceDir line"
    );
    let torrc = work.path().join("torrc");
    let write_torrc = |extra: &str| {
        std::fs::write(
            &torrc,
            format!(
                "{service}\nDataDirectory {}\nDisableNetwork 1\nSocksPort 0\nLog info stdout\n{extra}",
                data.display()
            ),
        )
        .unwrap();
    };

    // 1. tor makes the service's address.
    write_torrc("");
    tor_log(&torrc);
    let hostname = std::fs::read_to_string(hs.join("hostname")).unwrap();
    let onion = hostname.trim().to_owned();
    assert!(onion.ends_with(".onion") && onion.len() == 62, "{onion}");

    // 2. A key for it, and a damaged one (the control).
    let key = client.join("alice.auth_private");
    let out = ReviewerCmd::new(["onion-auth", "--onion", &onion, "--out"])
        .arg(&key)
        .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let public_line = printed.trim();
    assert!(public_line.starts_with("descriptor:x25519:"), "{printed}");
    let public_file = client.join("alice.auth");
    assert_eq!(
        std::fs::read_to_string(&public_file).unwrap().trim(),
        public_line
    );
    let authorized = hs.join("authorized_clients");
    private_dir(&authorized);
    std::fs::copy(&public_file, authorized.join("alice.auth")).unwrap();
    std::fs::remove_file(&public_file).unwrap(); // only *.auth_private in the client dir
    let private = std::fs::read_to_string(&key).unwrap();
    let damaged = private.replacen(":descriptor:x25519:", ":descriptor:x25519:A", 1);
    std::fs::write(client.join("bob.auth_private"), damaged).unwrap();
    std::fs::write(authorized.join("bob.auth"), format!("{public_line}A\n")).unwrap();

    // 3. tor loads both of alice's files, and warns about bob's.
    write_torrc(&format!("ClientOnionAuthDir {}\n", client.display()));
    let log = tor_log(&torrc);
    for loaded in [
        "Loaded a client authorization key file alice.auth_private.",
        "Loaded a client authorization key file alice.auth.",
    ] {
        assert!(log.contains(loaded), "tor did not say {loaded:?}:\n{log}");
    }
    // (tor reads the client directory twice: checking the config, then
    // using it.)
    let warnings: std::collections::BTreeSet<&str> = log
        .lines()
        .filter(|l| l.contains("[warn]") && l.contains("Client authorization"))
        .filter_map(|l| l.split_once("[warn] ").map(|(_, w)| w))
        .collect();
    assert_eq!(
        warnings.len(),
        2,
        "bob's two damaged keys, nothing else:\n{log}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("private key")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("public key")),
        "{warnings:?}"
    );

    // 4. Python's X25519 derives the same public key from the private one.
    let secret = private.trim().rsplit(':').next().unwrap();
    let derived = Command::new("python3")
        .args([
            "-c",
            "import sys, base64\n\
             from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey\n\
             from cryptography.hazmat.primitives import serialization as s\n\
             raw = base64.b32decode(sys.argv[1] + '====')\n\
             pub = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)\n\
             print('descriptor:x25519:' + base64.b32encode(pub).decode().rstrip('='))\n",
            secret,
        ])
        .output()
        .expect("python3 with cryptography (scripts/test installs it)");
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    assert_eq!(
        String::from_utf8(derived.stdout).unwrap().trim(),
        public_line
    );

    // 5. A relay with its API on its own listener; fetch by onion name.
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let relay = TestRelay::start_with(|t| {
        t.replace("[api]\n", &format!("[api]\nlisten = \"{api_port}\"\n"))
    });
    let (status, _) = relay.submit("other", "testimony through the API onion", &[]);
    assert_eq!(status, 200);
    let proxy = testkit::socks_proxy(api_port);
    let batches = work.path().join("batches");
    let relay_url = format!("http://{onion}");
    let out = ReviewerCmd::new(["fetch", "--relay", &relay_url, "--proxy", &proxy.url])
        .arg("--token-file")
        .arg(relay.token_file())
        .arg("--out")
        .arg(&batches)
        .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&batches).unwrap().count(), 1);
    let asked = proxy.asked.lock().unwrap().clone();
    assert!(
        !asked.is_empty() && asked.iter().all(|(h, p)| *h == onion && *p == 80),
        "{asked:?}"
    );
    // The public listener no longer answers the API.
    assert_eq!(relay.api_get("/api/v1/batches").status(), 404);
}
