//! Shared harness for the end-to-end tests: a real relay on 127.0.0.1 over
//! real TLS (demo setup in a temp dir), a browser-like HTTPS client that
//! pins the relay's certificate, and helpers to run the reviewer CLI and to
//! look through the relay's files.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use relay::config::Config;
use relay::server::{self, Running};
use relay::web::AppState;
use reqwest::blocking::multipart::{Form, Part};
use testkit::ReviewerCmd;

/// A relay running in this process, on its own runtime.
pub struct TestRelay {
    /// Temp dir holding the data dir and anything else the test writes.
    pub root: tempfile::TempDir,
    /// The relay's data directory.
    pub data: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The address.
    pub addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
    state: Option<Arc<AppState>>,
}

impl TestRelay {
    /// A demo relay, with `edit` applied to its config text first.
    pub fn start_with(edit: impl FnOnce(String) -> String) -> Self {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("relay-data");
        let config_path = relay::demo::init(&data, "127.0.0.1:0".parse().unwrap()).unwrap();
        let text = std::fs::read_to_string(&config_path).unwrap();
        std::fs::write(&config_path, edit(text)).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut relay = TestRelay {
            root,
            data,
            url: String::new(),
            addr: "127.0.0.1:0".parse().unwrap(),
            runtime,
            running: None,
            state: None,
        };
        relay.boot("127.0.0.1:0".parse().unwrap());
        relay
    }

    /// A demo relay with the default config.
    pub fn start() -> Self {
        Self::start_with(|t| t)
    }

    fn boot(&mut self, listen: SocketAddr) {
        let config = Config::load(&self.data.join("relay.toml")).unwrap();
        // `[api] listen`, when the test's config sets one (a free port).
        let api = config.api_listen;
        let state = server::open(&self.data, config).unwrap();
        let listen = server::Listen {
            https: Some(listen),
            api,
            ..server::Listen::default()
        };
        let running = self
            .runtime
            .block_on(server::start(state.clone(), listen))
            .unwrap();
        let addr = running.https_addr.unwrap();
        self.addr = addr;
        self.url = format!("https://{addr}");
        self.running = Some(running);
        self.state = Some(state);
    }

    /// Stops the relay gracefully and starts it again on the same data
    /// directory and port.
    pub fn restart(&mut self) {
        self.stop();
        let addr = self.addr;
        self.boot(addr);
    }

    /// Stops the relay and releases its store.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown()).unwrap();
        }
        self.state = None;
    }

    /// The relay's shared state (store access for assertions).
    pub fn state(&self) -> &AppState {
        self.state.as_ref().unwrap()
    }

    /// The store's counts.
    pub fn stats(&self) -> relay::store::Stats {
        self.state().store().stats().unwrap()
    }

    /// Path of the demo TLS certificate, to pin.
    pub fn cert(&self) -> PathBuf {
        self.data.join("tls/cert.pem")
    }

    /// Path of the demo reviewer identity.
    pub fn identity(&self) -> PathBuf {
        self.data.join(relay::demo::DEMO_IDENTITY_FILE)
    }

    /// `reviewer open BATCHES… --identity DEMO --relay-key KEY`, with the
    /// demo reviewer identity and this relay's key; add `--state` and
    /// `--out`.
    pub fn open_cmd(&self, batches: &[&Path]) -> ReviewerCmd {
        ReviewerCmd::open(batches)
            .identity(self.identity())
            .relay_key(self.pubkey())
    }

    /// Path of the demo reviewer's reply-signing key (the demo config pins
    /// its public half).
    pub fn reply_signing_key(&self) -> PathBuf {
        self.data.join(relay::demo::DEMO_REPLY_SIGNING_FILE)
    }

    /// Path of the demo API token file.
    pub fn token_file(&self) -> PathBuf {
        self.data.join(relay::demo::DEMO_TOKEN_FILE)
    }

    /// The API token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.token_file())
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The relay's signing public key, as `relay pubkey` prints it.
    pub fn pubkey(&self) -> String {
        self.state().signer().public_base64()
    }

    /// An HTTPS client that trusts only this relay's certificate.
    pub fn client(&self) -> reqwest::blocking::Client {
        let pem = std::fs::read(self.cert()).unwrap();
        let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap();
        reqwest::blocking::Client::builder()
            .tls_certs_only(certs)
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .unwrap()
    }

    /// GETs `path` on the relay: the status and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let res = self
            .client()
            .get(format!("{}{path}", self.url))
            .send()
            .unwrap();
        (res.status().as_u16(), res.text().unwrap())
    }

    /// Posts the form like a browser would.
    pub fn submit(&self, category: &str, text: &str, files: &[(&str, &[u8])]) -> (u16, String) {
        let mut form = Form::new()
            .text("category", category.to_owned())
            .text("text", text.to_owned());
        for (name, data) in files {
            form = form.part(
                "files",
                Part::bytes(data.to_vec())
                    .file_name((*name).to_owned())
                    .mime_str("application/octet-stream")
                    .unwrap(),
            );
        }
        let res = self
            .client()
            .post(format!("{}/en/submit", self.url))
            .multipart(form)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        (status, res.text().unwrap())
    }

    /// `GET path` on the HTTPS listener with the API token.
    pub fn api_get(&self, path: &str) -> reqwest::blocking::Response {
        self.client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(self.token())
            .send()
            .unwrap()
    }

    /// A new batch through the API, saved under the root; `None` on 204.
    pub fn next_batch(&self) -> Option<PathBuf> {
        let res = self.api_get("/api/v1/batches/next");
        if res.status() == reqwest::StatusCode::NO_CONTENT {
            return None;
        }
        assert_eq!(res.status(), reqwest::StatusCode::OK);
        let bytes = res.bytes().unwrap();
        let dir = self.root.path().join("pulled");
        std::fs::create_dir_all(&dir).unwrap();
        let n = std::fs::read_dir(&dir).unwrap().count();
        let path = dir.join(format!("batch-{n}.tar"));
        std::fs::write(&path, &bytes).unwrap();
        Some(path)
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the reviewer CLI in-process (with the reviewer binary as the
/// scrubbing child `open` starts: [`ReviewerCmd::argv`]).
pub fn reviewer<S: AsRef<str>>(args: &[S]) -> Result<(), reviewer::Error> {
    run(&ReviewerCmd::new(args.iter().map(|a| a.as_ref())))
}

/// Runs a reviewer command in-process.
pub fn run(cmd: &ReviewerCmd) -> Result<(), reviewer::Error> {
    reviewer::run(cmd.argv())
}

/// Path as a string argument.
pub fn arg(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Random bytes with `canary` written at a few places.
pub fn random_with_canary(len: usize, canary: &[u8]) -> Vec<u8> {
    use rand::RngCore as _;
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    for at in [0, len / 2, len - canary.len()] {
        data[at..at + canary.len()].copy_from_slice(canary);
    }
    data
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    testkit::files(dir)
        .into_iter()
        .filter(|path| std::fs::read(path).is_ok_and(|bytes| testkit::contains(&bytes, needle)))
        .collect()
}

/// The members of a tar file, in order, with their bytes.
pub fn tar_members(path: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(file);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

/// Writes members as a tar, the way the relay lays out a batch.
pub fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut builder = tar::Builder::new(file);
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        builder.append(&h, &data[..]).unwrap();
    }
    builder.into_inner().unwrap();
}

/// The parsed `manifest.json` of a batch file.
pub fn manifest(batch: &Path) -> format::Manifest {
    let members = tar_members(batch);
    let (name, json) = &members[0];
    assert_eq!(name, format::BATCH_MANIFEST);
    format::Manifest::from_json(json).unwrap()
}

/// Config text with its `[reviewers]` section replaced by key epochs
/// (`(id, recipients)`), sealing to `current`.
pub fn with_epochs(config: &str, epochs: &[(u32, &[&str])], current: u32) -> String {
    let start = config.find("[reviewers]\n").unwrap();
    let end = start + config[start..].find("\n[api]").unwrap();
    let mut section = format!("[reviewers]\ncurrent_epoch = {current}\n");
    for (id, recipients) in epochs {
        let quoted: Vec<String> = recipients.iter().map(|r| format!("\"{r}\"")).collect();
        section.push_str(&format!(
            "\n[[reviewers.epoch]]\nid = {id}\nrecipients = [{}]\n",
            quoted.join(", ")
        ));
    }
    format!("{}{section}{}", &config[..start], &config[end..])
}

/// The workspace's root directory (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Opens `batch` with the demo reviewer identity into the archive `out`
/// and returns the folder of the one submission it holds.
pub fn open_single(relay: &TestRelay, batch: &Path, out: &Path) -> PathBuf {
    run(&relay.open_cmd(&[batch]).out(out)).unwrap();
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().len() == 32)
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "expected one submission in the batch: {dirs:?}"
    );
    dirs[0].clone()
}
