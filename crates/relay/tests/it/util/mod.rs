//! Shared harness for the tests that run the `relay` binary.
#![allow(unreachable_pub, clippy::unwrap_used)] // `pub` for the modules of this test binary; a panic is a failed test

pub mod raw;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// Runs `relay ARGS` to completion.
pub fn relay(args: &[&str]) -> Output {
    Command::new(RELAY).args(args).output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A relay process; killed (SIGKILL) when dropped. Keeps every line it
/// wrote to stderr.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// `relay demo --data DATA --listen 127.0.0.1:PORT` (`relay serve` once
    /// DATA has a config), waiting for it to listen.
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// The same with extra environment variables.
    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Self {
        // `relay demo` sets a demo up on first run; a directory with its
        // config runs as `relay serve` would run it.
        let command = if data.join("relay.toml").exists() {
            "serve"
        } else {
            "demo"
        };
        Self::run(&[command, "--data", data.to_str().unwrap()], env)
    }

    /// `relay ARGS --listen 127.0.0.1:PORT`, waiting for "relay ready".
    pub fn run(args: &[&str], env: &[(&str, &str)]) -> Self {
        let addr = free_port();
        let mut cmd = Command::new(RELAY);
        cmd.args(args)
            .args(["--listen", &addr.to_string()])
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains("relay ready") => {
                    return Served { child, addr, log };
                }
                Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("relay did not start:\n{}", log.lock().unwrap().join("\n"));
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Everything the relay logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, wait for a graceful exit, and return the full log.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(200));
                return self.log();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("relay did not stop on SIGTERM");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS client that trusts only the relay's demo certificate.
pub fn client_builder(data: &Path) -> reqwest::blocking::ClientBuilder {
    let pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    reqwest::blocking::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .timeout(Duration::from_secs(60))
}

pub fn client(data: &Path) -> reqwest::blocking::Client {
    client_builder(data).build().unwrap()
}

/// Posts a minimal text-only submission; returns the status.
pub fn submit(data: &Path, url: &str, text: &str) -> u16 {
    let form = reqwest::blocking::multipart::Form::new()
        .text("category", "other")
        .text("text", text.to_owned());
    client(data)
        .post(format!("{url}/en/submit"))
        .multipart(form)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// `relay status` output (the relay must be stopped).
pub fn status_line(data: &Path) -> String {
    let o = relay(&["status", "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// Creates a demo data directory (as a first `relay serve` would) and
/// applies `edit` to its config text.
pub fn demo_data(root: &Path, edit: impl FnOnce(String) -> String) -> std::path::PathBuf {
    let data = root.join("relay-data");
    let config = relay::demo::init(&data, "127.0.0.1:8443".parse().unwrap()).unwrap();
    let text = edit(std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, text).unwrap();
    data
}

/// The spool files that hold bytes. Once every upload is answered, none
/// should: a refused or cut-off upload leaves nothing. (Large ciphertexts
/// are written into lanes, segments of the store; what an aborted one
/// leaves there shows as a torn tail to `relay check`: [`torn_tails`].)
pub fn busy_pool_files(data: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in [data.join("tmp")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.metadata().map(|m| m.len() > 0).unwrap_or(true) {
                out.push(e.path());
            }
        }
    }
    out
}

/// `bundle` signed as `reviewer reply` signs it, with `key_file` (an
/// unencrypted minisign secret key, e.g. the demo's
/// `demo-reply-signing.key`) and the trusted comment `comment` (the right
/// one is [`format::SIGNED_REPLY_BUNDLE_FORMAT`]).
#[allow(dead_code)]
pub fn sign_bundle_with(key_file: &Path, bundle: &[u8], comment: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(key_file).unwrap();
    let sk = minisign::SecretKeyBox::from_string(&text)
        .unwrap()
        .into_unencrypted_secret_key()
        .unwrap();
    let sig = minisign::sign(None, &sk, std::io::Cursor::new(bundle), Some(comment), None).unwrap();
    format::SignedReplyBundle::new(bundle, sig.to_string()).to_json()
}

/// `bundle` signed with the demo reviewer's reply-signing key in `data`,
/// which the demo config pins.
#[allow(dead_code)]
pub fn signed_bundle(data: &Path, bundle: &format::ReplyBundle) -> Vec<u8> {
    sign_bundle_with(
        &data.join(relay::demo::DEMO_REPLY_SIGNING_FILE),
        &bundle.to_json(),
        format::SIGNED_REPLY_BUNDLE_FORMAT,
    )
}

/// The torn tails `relay check` finds (the relay must be stopped): bytes
/// past a segment's committed length. After a clean stop there are none,
/// so an aborted large upload that left its bytes in a lane shows here.
#[allow(dead_code)]
pub fn torn_tails(data: &Path) -> Vec<String> {
    let o = relay(&["check", "--data", data.to_str().unwrap()]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("torn tail"))
        .map(str::to_owned)
        .collect()
}

/// Waits (up to 5 s) until no pool file holds bytes.
pub fn settle_pools(data: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let busy = busy_pool_files(data);
        if busy.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("pool files still hold bytes: {busy:?}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The demo reviewer identity a demo data directory holds
/// ([`relay::demo::DEMO_IDENTITY_FILE`], a plain age identity file).
pub fn demo_identity(data: &Path) -> age::x25519::Identity {
    testkit::identity_file(&data.join(relay::demo::DEMO_IDENTITY_FILE))
}

/// Every stored submission's id and ciphertext (the relay must be stopped).
pub fn stored_ciphertexts(data: &Path) -> Vec<(format::SubmissionId, Vec<u8>)> {
    use std::io::Read as _;
    let store = relay::store::Store::open(&data.join("store"), 1 << 20).unwrap();
    let mut out = Vec::new();
    for (id, _) in store.submissions().unwrap() {
        let mut bytes = Vec::new();
        store
            .ciphertext(&id)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        out.push((id, bytes));
    }
    out
}

/// One readable mapping of a process, as `/proc/PID/maps` lists it.
#[derive(Debug, Clone)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub path: String,
}

/// Where in process `pid`'s memory each of `needles` occurs: `(needle
/// index, region, offset)`. Reads `/proc/PID/mem` region by region (the
/// caller must be allowed to trace `pid`: its parent, or root). Regions the
/// kernel will not read (`[vvar]`, guard pages) are skipped.
pub fn find_in_memory(pid: u32, needles: &[Vec<u8>]) -> Vec<(usize, Region, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let finders: Vec<_> = needles.iter().map(memchr::memmem::Finder::new).collect();
    let mut found = Vec::new();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = parts.nth(3).unwrap_or("").to_owned();
        if !perms.starts_with('r') || path == "[vvar]" || path == "[vsyscall]" {
            continue;
        }
        let (s, e) = range.split_once('-').unwrap();
        let region = Region {
            start: u64::from_str_radix(s, 16).unwrap(),
            end: u64::from_str_radix(e, 16).unwrap(),
            perms: perms.to_owned(),
            path,
        };
        let mut buf = vec![0u8; (region.end - region.start) as usize];
        if mem.seek(SeekFrom::Start(region.start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        for (i, f) in finders.iter().enumerate() {
            for at in f.find_iter(&buf) {
                found.push((i, region.clone(), at as u64));
            }
        }
    }
    found
}
