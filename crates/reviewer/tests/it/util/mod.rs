//! Shared harness for the reviewer's integration tests.
//!
//! It builds everything a reviewer receives by itself, following
//! `docs/format.md`: a relay signing key (minisign), reviewer identities
//! (age), sealed submissions (padded ustar plaintext in an age file) and
//! batch tars, so tests can make them well-formed or break exactly one rule.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use format::{
    Attachment, BatchId, Day, Digest, MANIFEST_FORMAT, Manifest, ManifestEntry, SubmissionId,
    TESTIMONY_FORMAT, Testimony, ThreadEntry, ThreadId, batch_member_for, padded_plaintext_len,
    unpadded_tar_len,
};
use testkit::{ReviewerCmd, reviewer_bin};

/// Distinct ids within one test process.
static COUNTER: AtomicU64 = AtomicU64::new(1);

fn next_bytes() -> [u8; 16] {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[8..].copy_from_slice(&std::process::id().to_be_bytes().repeat(2));
    b
}

pub(crate) fn new_submission_id() -> SubmissionId {
    SubmissionId::from_bytes(next_bytes())
}

pub(crate) fn new_batch_id() -> BatchId {
    BatchId::from_bytes(next_bytes())
}

pub(crate) fn new_thread_id() -> ThreadId {
    ThreadId::from_bytes(next_bytes())
}

pub(crate) fn day() -> Day {
    "2026-11-27".parse().unwrap()
}

pub(crate) mod hostile;

/// Runs the reviewer in-process with string-ish arguments (the reviewer
/// binary as the scrubbing helper: [`ReviewerCmd::argv`]).
pub(crate) fn run(args: &[&dyn AsRef<OsStr>]) -> Result<(), reviewer::Error> {
    reviewer::run(ReviewerCmd::new(args).argv())
}

/// Runs the reviewer binary (no terminal, no inherited state directory).
pub(crate) fn bin(args: &[&dyn AsRef<OsStr>]) -> Output {
    ReviewerCmd::new(args).output()
}

/// `reviewer open BATCHES… --relay-key KEY --identity FILE --out OUT`,
/// with `env`'s archive.
pub(crate) fn open_cmd(
    env: &Env,
    relay: &Relay,
    identity: &Path,
    batches: &[&Path],
) -> ReviewerCmd {
    ReviewerCmd::open(batches)
        .relay_key(&relay.key)
        .identity(identity)
        .out(&env.out)
}

/// [`open_cmd`] with `r`'s identity, in-process.
pub(crate) fn open(
    env: &Env,
    relay: &Relay,
    r: &Reviewer,
    batches: &[&Path],
) -> Result<(), reviewer::Error> {
    reviewer::run(open_cmd(env, relay, &r.key_file, batches).argv())
}

/// The scrubber as the library takes it, with the reviewer binary.
pub(crate) fn scrubber() -> reviewer::sandbox::Scrubber {
    reviewer::sandbox::Scrubber::new(reviewer_bin().to_owned(), Default::default()).unwrap()
}

// ---------------------------------------------------------------- reviewers

/// A reviewer identity written as a plain identity file.
pub(crate) struct Reviewer {
    pub(crate) identity: age::x25519::Identity,
    pub(crate) recipient: age::x25519::Recipient,
    pub(crate) key_file: PathBuf,
}

pub(crate) fn reviewer(dir: &Path, name: &str) -> Reviewer {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let key_file = dir.join(name);
    std::fs::write(
        &key_file,
        format!(
            "# created: 2026-11-28\n# public key: {recipient}\n{}\n",
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    Reviewer {
        identity,
        recipient,
        key_file,
    }
}

// ----------------------------------------------------------------- sources

/// A source who took a codename: the age identity the relay derives from
/// it (the source's side of a thread) and its public recipient.
pub(crate) struct Source {
    pub(crate) identity: age::x25519::Identity,
    pub(crate) recipient: String,
}

pub(crate) fn source() -> Source {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    Source {
        identity,
        recipient,
    }
}

// -------------------------------------------------------------- plaintexts

/// One entry of a hand-made plaintext tar.
pub(crate) struct Entry {
    pub(crate) path: Vec<u8>,
    pub(crate) kind: tar::EntryType,
    pub(crate) data: Vec<u8>,
    pub(crate) link: Option<&'static str>,
    /// Size written in the header (defaults to the data length).
    pub(crate) header_size: Option<u64>,
}

impl Entry {
    pub(crate) fn file(path: &str, data: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            data: data.into(),
            link: None,
            header_size: None,
        }
    }
}

/// Writes one ustar header + data, with the path bytes put in place by
/// hand (the tar crate refuses `..` and absolute paths, which hostile
/// tests need).
pub(crate) fn append(out: &mut Vec<u8>, e: &Entry) {
    let mut h = tar::Header::new_ustar();
    {
        let u = h.as_ustar_mut().unwrap();
        if e.path.len() <= 100 {
            u.name[..e.path.len()].copy_from_slice(&e.path);
        } else {
            // Split at the last '/' that leaves a name of at most 100 bytes.
            let split = e.path.iter().rposition(|b| *b == b'/').unwrap();
            u.prefix[..split].copy_from_slice(&e.path[..split]);
            let name = &e.path[split + 1..];
            u.name[..name.len()].copy_from_slice(name);
        }
    }
    h.set_size(e.header_size.unwrap_or(e.data.len() as u64));
    h.set_mode(0o600);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(e.kind);
    if let Some(link) = e.link {
        h.set_link_name_literal(link).unwrap();
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&e.data);
    let rem = e.data.len() % 512;
    if rem != 0 {
        out.extend(std::iter::repeat_n(0u8, 512 - rem));
    }
}

/// A tar of these entries, ended by two zero blocks.
pub(crate) fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        append(&mut out, e);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A testimony listing these attachments.
pub(crate) fn testimony(text: &str, files: &[(&str, &[u8])]) -> Testimony {
    Testimony {
        format: TESTIMONY_FORMAT.into(),
        form_version: 1,
        language: "ru".into(),
        received_day: day(),
        fields: BTreeMap::from([
            (
                "category".to_owned(),
                "Prosecution for speech or posts".to_owned(),
            ),
            ("region".to_owned(), "Aktobe".to_owned()),
        ]),
        labels: Default::default(),
        text: text.into(),
        attachments: files
            .iter()
            .map(|(name, data)| Attachment {
                name: (*name).into(),
                size: data.len() as u64,
                sha256: Digest::of(data),
            })
            .collect(),
    }
}

/// The padded plaintext of a well-formed submission, exactly as
/// `docs/format.md` lays it out.
pub(crate) fn plaintext(json: &[u8], files: &[(&str, &[u8])]) -> Vec<u8> {
    let sizes: Vec<u64> = files.iter().map(|(_, d)| d.len() as u64).collect();
    let unpadded = unpadded_tar_len(json.len() as u64, &sizes);
    let padded = padded_plaintext_len(unpadded);
    let mut entries = vec![Entry::file("testimony.json", json)];
    for (name, data) in files {
        entries.push(Entry::file(&format!("files/{name}"), *data));
    }
    entries.push(Entry::file(
        "padding",
        vec![0u8; usize::try_from(padded - unpadded).unwrap()],
    ));
    let out = tar_of(&entries);
    assert_eq!(out.len() as u64, padded, "harness padding is off");
    out
}

/// Encrypts to the given recipients (a standard binary age file).
pub(crate) fn seal(plaintext: &[u8], recipients: &[&age::x25519::Recipient]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w =
        age::Encryptor::with_recipients(recipients.iter().map(|r| *r as &dyn age::Recipient))
            .unwrap()
            .wrap_output(&mut out)
            .unwrap();
    w.write_all(plaintext).unwrap();
    w.finish().unwrap();
    out
}

/// A sealed submission ready for a batch.
#[derive(Clone)]
pub(crate) struct Sealed {
    pub(crate) id: SubmissionId,
    /// The key epoch the manifest names (1 unless a test says otherwise).
    pub(crate) epoch: u32,
    pub(crate) ciphertext: Vec<u8>,
    /// The follow-up thread and the source recipient the manifest names
    /// for it (none unless a test says otherwise).
    pub(crate) thread: Option<(ThreadId, String)>,
}

impl Sealed {
    /// The same submission, named in the manifest as sealed to `epoch`.
    pub(crate) fn in_epoch(mut self, epoch: u32) -> Self {
        self.epoch = epoch;
        self
    }

    /// The same submission, named in the manifest as part of `thread`,
    /// whose source has `recipient`.
    pub(crate) fn in_thread(mut self, thread: ThreadId, recipient: &str) -> Self {
        self.thread = Some((thread, recipient.to_owned()));
        self
    }
}

pub(crate) fn sealed(plaintext: &[u8], recipients: &[&age::x25519::Recipient]) -> Sealed {
    Sealed {
        id: new_submission_id(),
        epoch: 1,
        ciphertext: seal(plaintext, recipients),
        thread: None,
    }
}

/// A well-formed submission with these attachments, sealed.
pub(crate) fn good_submission(
    text: &str,
    files: &[(&str, &[u8])],
    recipients: &[&age::x25519::Recipient],
) -> (Sealed, Vec<u8>) {
    let json = testimony(text, files).to_json().to_vec();
    (sealed(&plaintext(&json, files), recipients), json)
}

// ------------------------------------------------------------------ relays

/// A relay's signing key and its chain position.
pub(crate) struct Relay {
    pub(crate) kp: minisign::KeyPair,
    pub(crate) key: String,
    pub(crate) sequence: u64,
    pub(crate) previous: Option<Digest>,
}

impl Relay {
    pub(crate) fn new() -> Self {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let key = kp.pk.to_base64();
        Self {
            kp,
            key,
            sequence: 0,
            previous: None,
        }
    }

    /// The next batch of this relay's chain.
    pub(crate) fn batch(&mut self, subs: &[Sealed]) -> Batch {
        let b = self.batch_at(self.sequence + 1, self.previous, subs);
        self.sequence += 1;
        self.previous = Some(b.manifest_sha256());
        b
    }

    /// A batch with an explicit place in the chain (does not move it).
    pub(crate) fn batch_at(
        &self,
        sequence: u64,
        previous: Option<Digest>,
        subs: &[Sealed],
    ) -> Batch {
        // Each thread once, in id order, as the manifest rules say (the
        // last recipient given for a thread wins).
        let threads: BTreeMap<ThreadId, String> =
            subs.iter().filter_map(|s| s.thread.clone()).collect();
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            relay_key: self.key.clone(),
            batch_id: new_batch_id(),
            sequence,
            previous_manifest_sha256: previous,
            created_day: "2026-11-28".parse().unwrap(),
            submissions: subs
                .iter()
                .map(|s| ManifestEntry {
                    id: s.id,
                    received_day: day(),
                    epoch: s.epoch,
                    size: s.ciphertext.len() as u64,
                    sha256: Digest::of(&s.ciphertext),
                    thread: s.thread.as_ref().map(|(t, _)| *t),
                })
                .collect(),
            threads: threads
                .into_iter()
                .map(|(id, recipient)| ThreadEntry { id, recipient })
                .collect(),
            demo: false,
        };
        self.sign(manifest.to_json(), &manifest, subs)
    }

    /// Signs these manifest bytes and lays out the members.
    pub(crate) fn sign(
        &self,
        manifest_json: Vec<u8>,
        manifest: &Manifest,
        subs: &[Sealed],
    ) -> Batch {
        let comment = format!(
            "relay-batch {} sequence {}",
            manifest.batch_id, manifest.sequence
        );
        let sig = minisign::sign(
            Some(&self.kp.pk),
            &self.kp.sk,
            Cursor::new(&manifest_json),
            Some(&comment),
            None,
        )
        .unwrap()
        .to_string();
        let mut members = vec![
            ("manifest.json".to_owned(), manifest_json.clone()),
            ("manifest.sig".to_owned(), sig.into_bytes()),
        ];
        for s in subs {
            members.push((batch_member_for(&s.id), s.ciphertext.clone()));
        }
        Batch {
            manifest_json,
            members,
        }
    }
}

/// A batch: its members in tar order.
#[derive(Clone)]
pub(crate) struct Batch {
    pub(crate) manifest_json: Vec<u8>,
    pub(crate) members: Vec<(String, Vec<u8>)>,
}

impl Batch {
    pub(crate) fn manifest_sha256(&self) -> Digest {
        Digest::of(&self.manifest_json)
    }

    pub(crate) fn manifest(&self) -> Manifest {
        Manifest::from_json(&self.manifest_json).unwrap()
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let entries: Vec<Entry> = self
            .members
            .iter()
            .map(|(name, data)| {
                let mut e = Entry::file(name, data.clone());
                e.path = name.as_bytes().to_vec();
                e
            })
            .collect();
        tar_of(&entries)
    }

    pub(crate) fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.bytes()).unwrap();
        path.to_path_buf()
    }
}

// -------------------------------------------------------------- workspace

/// A temporary workspace: `out/` and `state/` are not created up front.
pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) out: PathBuf,
    pub(crate) state: PathBuf,
}

impl Env {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // The chain state and thread index live in the archive.
        let state = out.join(".state");
        Self { dir, out, state }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Every file under `dir` (relative path → bytes), symlinks included as
/// their target; an absent directory is empty.
pub(crate) fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for p in testkit::paths(dir) {
        let rel = p.strip_prefix(dir).unwrap().to_path_buf();
        let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
        if ft.is_dir() {
            out.insert(rel.join(""), Vec::new());
        } else if ft.is_symlink() {
            out.insert(
                rel,
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            );
        } else {
            out.insert(rel, std::fs::read(&p).unwrap());
        }
    }
    out
}

/// Asserts that `dir` is absent or empty.
pub(crate) fn assert_empty(dir: &Path) {
    let t = tree(dir);
    assert!(
        t.is_empty(),
        "{} is not empty: {:?}",
        dir.display(),
        t.keys().collect::<Vec<_>>()
    );
}

#[cfg(unix)]
pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ------------------------------------------------------------- HTTP server

/// A request the test server received.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A canned answer.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub(crate) fn json(body: &str) -> Self {
        let mut r = Self::new(200, body.as_bytes());
        r.headers
            .push(("Content-Type".into(), "application/json".into()));
        r
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1: one request per connection,
/// answered by `handler`. The thread lives until the test process ends.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) requests: Arc<Mutex<Vec<Request>>>,
}

pub(crate) fn serve(handler: impl Fn(&Request) -> Reply + Send + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            answer(&mut stream, &handler, &seen);
        }
    });
    Server { url, requests }
}

/// The same server over TLS with a fresh self-signed certificate for
/// `localhost` and `127.0.0.1`; returns the server and the certificate PEM.
pub(crate) fn serve_tls(handler: impl Fn(&Request) -> Reply + Send + 'static) -> (Server, String) {
    serve_tls_with(false, handler)
}

/// [`serve_tls`] with a certificate marked as a CA's (basicConstraints
/// CA:TRUE, as a plain `openssl req -x509` makes it) when `ca`.
pub(crate) fn serve_tls_with(
    ca: bool,
    handler: impl Fn(&Request) -> Reply + Send + 'static,
) -> (Server, String) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let signing_key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&signing_key).unwrap();
    let ck = rcgen::CertifiedKey { cert, signing_key };
    let pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, stream);
            answer(&mut tls, &handler, &seen);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (Server { url, requests }, pem)
}

/// Reads one request, answers it, records it.
fn answer<S: Read + Write>(
    stream: &mut S,
    handler: &impl Fn(&Request) -> Reply,
    seen: &Mutex<Vec<Request>>,
) {
    let Some(req) = read_request(stream) else {
        return;
    };
    let reply = handler(&req);
    seen.lock().unwrap().push(req);
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    if reply.status != 204 {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.flush();
}

fn read_request<S: Read>(stream: &mut S) -> Option<Request> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}
