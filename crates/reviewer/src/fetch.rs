//! Talking to the relay's reviewer API: pulling batches, acknowledging them,
//! pushing reply bundles.
//!
//! `docs/format.md`, "Reviewer API". This side runs online and holds no
//! reviewer key: it only moves ciphertext, receipts and reply bundles
//! (whose replies are age files the relay cannot read). Everything the
//! relay answers is untrusted here too: sizes are capped, the listing is
//! parsed strictly, and a downloaded batch is only named after its
//! (unverified) manifest; `reviewer verify` decides whether to trust it.
//!
//! The API token goes only over TLS, or over plain http to a loopback or
//! `.onion` address; redirects are never followed (they could carry the
//! token elsewhere).
//!
//! These functions block. Do not call them on an async runtime's thread
//! (use `spawn_blocking`); [`crate::run`] already moves them to a thread of
//! their own.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use format::{AckRequest, AckResponse, BatchId, BatchListing, Receipt, ReplyImport};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::Error;
use crate::fsutil::{HashingReader, ensure_dir, exists_no_follow, read_small, sync_dir};
use crate::reply::CheckedBundle;
use crate::verify::{VerifyError, check_complete_unverified};

/// Largest batch download accepted (64 GiB). A batch holds at most 65,536
/// submissions; anything larger than this is not a batch worth a disk.
pub const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// Largest JSON answer accepted (the batch listing, an ack answer).
const MAX_JSON_BYTES: u64 = 4 * 1024 * 1024;
/// Most batches a listing may hold.
const MAX_LISTED: usize = 100_000;
/// Most `GET /api/v1/batches/next` calls in one fetch.
const MAX_NEXT: usize = 10_000;
/// Token files are small.
const MAX_TOKEN_FILE: u64 = 64 * 1024;
/// PEM files are small.
const MAX_PEM_FILE: u64 = 1024 * 1024;
/// Download copy buffer.
const CHUNK: usize = 256 * 1024;

/// A client for one relay's reviewer API.
pub struct RelayClient {
    base: String,
    client: Client,
    token: SecretString,
    token_file: PathBuf,
    tls_cert: Option<PathBuf>,
}

impl fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayClient")
            .field("base", &self.base)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// A batch saved by [`fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBatch {
    /// Where it was saved.
    pub path: PathBuf,
    /// Its sequence number (from its manifest, not yet verified).
    pub sequence: u64,
    /// Its id (likewise).
    pub batch_id: BatchId,
    /// How many submissions its manifest lists.
    pub submissions: usize,
    /// Whether it replaced a damaged or cut-off copy of itself.
    pub replaced: bool,
}

/// What the relay said to an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The batch's sequence number (from the receipt).
    pub sequence: u64,
    /// The batch's id.
    pub batch_id: BatchId,
    /// How many submissions the relay deleted now.
    pub deleted: u64,
}

/// The file name of a saved batch.
pub fn batch_file_name(sequence: u64, batch_id: &BatchId) -> String {
    format!("batch-{sequence:06}-{batch_id}.tar")
}

impl RelayClient {
    /// A client for the relay at `relay` (its base URL), authenticating
    /// with the token on the first line of `token_file`, trusting only the
    /// certificate in `tls_cert` if given (for self-signed relays), else
    /// the platform's roots.
    ///
    /// `proxy` is a SOCKS5 proxy that resolves names itself (`socks5h://`,
    /// Tor's SOCKS port): required for a `.onion` relay, so that its name
    /// never reaches this computer's DNS resolver. Without it no proxy is
    /// used: `HTTPS_PROXY`, `ALL_PROXY` and the like are ignored, so what
    /// the command line says is what happens.
    pub fn new(
        relay: &str,
        token_file: &Path,
        tls_cert: Option<&Path>,
        proxy: Option<&str>,
    ) -> Result<Self, Error> {
        let (base, onion) = parse_base(relay)?;
        let proxy = proxy.map(parse_proxy).transpose()?;
        if onion && proxy.is_none() {
            return Err(Error::Fetch(FetchError::OnionNeedsProxy { url: base }));
        }
        let token = read_token(token_file)?;
        let mut builder = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            // Through Tor a circuit takes a while to build; 60 s covers it.
            .connect_timeout(Duration::from_secs(60))
            // In the blocking client this bounds the wait for the answer's
            // head and each read of its body, not the whole download.
            .timeout(Duration::from_secs(300));
        builder = match proxy {
            Some(p) => builder.proxy(p),
            None => builder.no_proxy(),
        };
        if let Some(pem_path) = tls_cert {
            let pem = read_small(pem_path, MAX_PEM_FILE)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Fetch(FetchError::TlsCert {
                    path: pem_path.into(),
                    reason: e.to_string(),
                })
            })?;
            if certs.is_empty() {
                return Err(Error::Fetch(FetchError::TlsCert {
                    path: pem_path.into(),
                    reason: "it holds no CERTIFICATE block".into(),
                }));
            }
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            .build()
            .map_err(|e| http_error(&base, e, tls_cert))?;
        Ok(Self {
            base,
            client,
            token,
            token_file: token_file.into(),
            tls_cert: tls_cert.map(Path::to_path_buf),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends an authenticated request; a 401 becomes [`FetchError::TokenRefused`].
    fn send(&self, request: RequestBuilder, url: &str) -> Result<Response, Error> {
        let response = request
            .bearer_auth(self.token.expose_secret())
            .send()
            .map_err(|e| http_error(url, e, self.tls_cert.as_deref()))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(Error::Fetch(FetchError::TokenRefused {
                path: self.token_file.clone(),
            }));
        }
        Ok(response)
    }

    fn get(&self, path: &str) -> Result<(Response, String), Error> {
        let url = self.url(path);
        let response = self.send(self.client.get(&url), &url)?;
        Ok((response, url))
    }
}

/// Which batches [`fetch`] downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// Every batch the relay holds that `out` does not hold whole, then
    /// new batches until there are none.
    New,
    /// This one only (its sequence number or id, as the listing gives
    /// them), even if `out` holds a copy, unless that copy is whole.
    One(String),
}

/// Whether `path` holds batch `id`/`sequence` whole: every ciphertext its
/// manifest lists, with its size and hash ([`check_complete_unverified`]).
/// A cut-off download or a damaged copy is not whole.
fn holds_whole(path: &Path, id: &BatchId, sequence: u64) -> Result<bool, Error> {
    if !exists_no_follow(path)? {
        return Ok(false);
    }
    Ok(check_complete_unverified(path).is_ok_and(|m| m.batch_id == *id && m.sequence == sequence))
}

/// Downloads batches into `out` ([`Which`]). A copy in `out` that is not
/// whole (a download cut off, a damaged disk) is downloaded again and
/// replaced. `on_saved` is called after each batch is safely on disk.
pub fn fetch(
    client: &RelayClient,
    out: &Path,
    which: &Which,
    mut on_saved: impl FnMut(&FetchedBatch),
) -> Result<Vec<FetchedBatch>, Error> {
    ensure_dir(out)?;
    let mut saved = Vec::new();

    let what = "GET /api/v1/batches";
    let (response, url) = client.get("/api/v1/batches")?;
    expect_status(&response, StatusCode::OK, what)?;
    let body = read_json_body(response, &url, what)?;
    let listing: BatchListing = serde_json::from_slice(&body).map_err(|e| {
        Error::Fetch(FetchError::BadResponse {
            what: what.into(),
            reason: e.to_string(),
        })
    })?;
    if listing.batches.len() > MAX_LISTED {
        return Err(Error::Fetch(FetchError::BadResponse {
            what: what.into(),
            reason: "it lists too many batches".into(),
        }));
    }
    let wanted: Vec<_> = match which {
        Which::New => listing.batches.iter().collect(),
        Which::One(given) => {
            let g = given.trim().to_ascii_lowercase();
            let found: Vec<_> = listing
                .batches
                .iter()
                .filter(|b| {
                    g.parse::<u64>().is_ok_and(|n| n == b.sequence) || b.batch_id.to_string() == g
                })
                .collect();
            if found.is_empty() {
                return Err(Error::Fetch(FetchError::NoSuchBatch {
                    given: given.clone(),
                    listed: listing.batches.len(),
                }));
            }
            found
        }
    };

    for listed in wanted {
        let name = out.join(batch_file_name(listed.sequence, &listed.batch_id));
        if holds_whole(&name, &listed.batch_id, listed.sequence)? {
            continue;
        }
        let replace = exists_no_follow(&name)?;
        let path = format!("/api/v1/batches/{}", listed.batch_id);
        let what = format!("GET {path}");
        let (response, url) = client.get(&path)?;
        if response.status() == StatusCode::NOT_FOUND {
            // Acknowledged by another reviewer since the listing: gone.
            continue;
        }
        expect_status(&response, StatusCode::OK, &what)?;
        let fetched = save_batch(
            response,
            out,
            &url,
            &what,
            Some((listed.batch_id, listed.sequence)),
            replace,
        )?;
        if let Some(f) = fetched {
            on_saved(&f);
            saved.push(f);
        }
    }
    if matches!(which, Which::One(_)) {
        return Ok(saved);
    }

    let what = "GET /api/v1/batches/next";
    for _ in 0..MAX_NEXT {
        let (response, url) = client.get("/api/v1/batches/next")?;
        match response.status() {
            StatusCode::NO_CONTENT => break,
            StatusCode::OK => {
                if let Some(f) = save_batch(response, out, &url, what, None, false)? {
                    on_saved(&f);
                    saved.push(f);
                }
            }
            other => {
                return Err(Error::Fetch(FetchError::UnexpectedStatus {
                    what: what.into(),
                    status: other.as_u16(),
                }));
            }
        }
    }
    Ok(saved)
}

/// Streams a batch to a temporary file in `out`, checks that it is whole,
/// names it after its manifest and moves it into place. `None` if an
/// identical copy was there. With `replace`, a copy of it that is not whole
/// is replaced (atomically: a rename over it).
fn save_batch(
    mut response: Response,
    out: &Path,
    url: &str,
    what: &str,
    expected: Option<(BatchId, u64)>,
    replace: bool,
) -> Result<Option<FetchedBatch>, Error> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BATCH_BYTES)
    {
        return Err(Error::Fetch(FetchError::ResponseTooLarge {
            what: what.into(),
            max: MAX_BATCH_BYTES,
        }));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".download-")
        .suffix(".part")
        .tempfile_in(out)
        .map_err(|e| Error::io("create a temporary file in", out, e))?;
    let tmp_path = tmp.path().to_path_buf();
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("download", url, e)),
        };
        total += n as u64;
        if total > MAX_BATCH_BYTES {
            return Err(Error::Fetch(FetchError::ResponseTooLarge {
                what: what.into(),
                max: MAX_BATCH_BYTES,
            }));
        }
        tmp.write_all(&buf[..n])
            .map_err(|e| Error::io("write", &tmp_path, e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io("write", &tmp_path, e))?;

    let bad = |reason: String| {
        Error::Fetch(FetchError::BadResponse {
            what: what.into(),
            reason,
        })
    };
    // Whole: a download cut off (or a relay sending less than its
    // manifest lists) is never saved under a batch's name.
    let manifest = check_complete_unverified(&tmp_path).map_err(|e| {
        bad(format!(
            "not a whole batch ({}); nothing was saved: run `reviewer fetch` again",
            match e {
                Error::Verify(VerifyError::MalformedBatch { reason, .. })
                | Error::Verify(VerifyError::InvalidManifest { reason, .. }) => reason,
                other => other.to_string(),
            }
        ))
    })?;
    if let Some((id, seq)) = expected
        && (manifest.batch_id != id || manifest.sequence != seq)
    {
        return Err(bad(format!(
            "asked for batch {seq} ({id}), got batch {} ({})",
            manifest.sequence, manifest.batch_id
        )));
    }
    let fetched = FetchedBatch {
        path: out.join(batch_file_name(manifest.sequence, &manifest.batch_id)),
        sequence: manifest.sequence,
        batch_id: manifest.batch_id,
        submissions: manifest.submissions.len(),
        replaced: replace,
    };
    if replace {
        // The copy there was checked and is not whole: this one is.
        tmp.persist(&fetched.path)
            .map_err(|e| Error::io("save", &fetched.path, e.error))?;
        sync_dir(out)?;
        return Ok(Some(fetched));
    }
    match tmp.persist_noclobber(&fetched.path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
            // "A batch, once made, is immutable": the same bytes are fine,
            // different bytes under the same name are not.
            if file_digest(&e.file.path().to_path_buf())? == file_digest(&fetched.path)? {
                return Ok(None);
            }
            return Err(bad(format!(
                "its bytes differ from the copy already in {}: do not trust this relay until you know why",
                fetched.path.display()
            )));
        }
        Err(e) => return Err(Error::io("save", &fetched.path, e.error)),
    }
    sync_dir(out)?;
    Ok(Some(fetched))
}

fn file_digest(path: &PathBuf) -> Result<format::Digest, Error> {
    let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
    HashingReader::new(io::BufReader::new(file))
        .finish()
        .map(|(d, _)| d)
        .map_err(|e| Error::io("read", path, e))
}

/// Sends the receipt's manifest hash to the relay, which then deletes the
/// batch's submissions.
pub fn ack(client: &RelayClient, receipt: &Path) -> Result<Acked, Error> {
    let bytes = read_small(receipt, 64 * 1024)?;
    let r = Receipt::from_json(&bytes).map_err(|e| {
        Error::Fetch(FetchError::BadReceipt {
            path: receipt.into(),
            reason: e.to_string(),
        })
    })?;
    let path = format!("/api/v1/batches/{}/ack", r.batch_id);
    let what = format!("POST {path}");
    let url = client.url(&path);
    let body = AckRequest {
        manifest_sha256: r.manifest_sha256,
    };
    let response = client.send(client.client.post(&url).json(&body), &url)?;
    match response.status() {
        StatusCode::OK => {
            let body = read_json_body(response, &url, &what)?;
            let answer: AckResponse = serde_json::from_slice(&body).map_err(|e| {
                Error::Fetch(FetchError::BadResponse {
                    what: what.clone(),
                    reason: e.to_string(),
                })
            })?;
            Ok(Acked {
                sequence: r.sequence,
                batch_id: r.batch_id,
                deleted: answer.deleted,
            })
        }
        StatusCode::CONFLICT => Err(Error::Fetch(FetchError::AckConflict {
            batch_id: r.batch_id,
        })),
        StatusCode::NOT_FOUND => Err(Error::Fetch(FetchError::AckUnknown {
            batch_id: r.batch_id,
        })),
        other => Err(Error::Fetch(FetchError::UnexpectedStatus {
            what,
            status: other.as_u16(),
        })),
    }
}

/// Uploads a checked reply bundle (`POST /api/v1/replies`, its exact
/// bytes as JSON) and returns what the relay did with it. The relay takes a
/// bundle whole or not at all, and importing one twice is safe, so a failed
/// push can simply be repeated.
pub fn push(client: &RelayClient, bundle: CheckedBundle) -> Result<ReplyImport, Error> {
    let what = "POST /api/v1/replies";
    let url = client.url("/api/v1/replies");
    let (path, body) = bundle.into_parts();
    let request = client
        .client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    let response = client.send(request, &url)?;
    match response.status() {
        StatusCode::OK => {
            let body = read_json_body(response, &url, what)?;
            serde_json::from_slice(&body).map_err(|e| {
                Error::Fetch(FetchError::BadResponse {
                    what: what.into(),
                    reason: e.to_string(),
                })
            })
        }
        StatusCode::BAD_REQUEST => Err(Error::Fetch(FetchError::BundleMalformed {
            path,
            reason: plain_reason(response),
        })),
        StatusCode::UNPROCESSABLE_ENTITY => Err(Error::Fetch(FetchError::BundleRefused {
            path,
            reason: plain_reason(response),
        })),
        StatusCode::PAYLOAD_TOO_LARGE => Err(Error::Fetch(FetchError::BundleTooLarge { path })),
        other => Err(Error::Fetch(FetchError::UnexpectedStatus {
            what: what.into(),
            status: other.as_u16(),
        })),
    }
}

/// The relay's plain-text reason for refusing a request: the first line of
/// its answer, shortened (the error line escapes control characters).
fn plain_reason(response: Response) -> String {
    const MAX: u64 = 1024;
    let mut body = Vec::new();
    let _ = response.take(MAX).read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body);
    let line: String = text
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .take(200)
        .collect();
    if line.is_empty() {
        "no reason given".into()
    } else {
        line
    }
}

fn expect_status(response: &Response, want: StatusCode, what: &str) -> Result<(), Error> {
    if response.status() == want {
        Ok(())
    } else {
        Err(Error::Fetch(FetchError::UnexpectedStatus {
            what: what.into(),
            status: response.status().as_u16(),
        }))
    }
}

/// Reads a small JSON body, refusing anything larger than the cap.
fn read_json_body(response: Response, url: &str, what: &str) -> Result<Vec<u8>, Error> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_JSON_BYTES)
    {
        return Err(Error::Fetch(FetchError::ResponseTooLarge {
            what: what.into(),
            max: MAX_JSON_BYTES,
        }));
    }
    let mut body = Vec::new();
    response
        .take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::io("download", url, e))?;
    if body.len() as u64 > MAX_JSON_BYTES {
        return Err(Error::Fetch(FetchError::ResponseTooLarge {
            what: what.into(),
            max: MAX_JSON_BYTES,
        }));
    }
    Ok(body)
}

/// An HTTP client error with its innermost cause spelled out; a refused
/// certificate becomes [`FetchError::Certificate`], naming what to do.
fn http_error(url: &str, e: reqwest::Error, tls_cert: Option<&Path>) -> Error {
    let mut detail = e.to_string();
    let mut tls = None;
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = s.to_string();
        // rustls's error travels inside io::Errors (two, nested), whose
        // `source()` skips what they wrap: unwrap them by hand.
        let mut candidate: &(dyn std::error::Error + 'static) = s;
        while let Some(inner) = candidate
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            candidate = inner;
        }
        if let Some(r) = candidate.downcast_ref::<rustls::Error>() {
            tls = Some(r.clone());
        }
        source = s.source();
    }
    if let Some(rustls::Error::InvalidCertificate(problem)) = tls {
        return Error::Fetch(FetchError::Certificate {
            url: url.into(),
            next: certificate_advice(&problem, tls_cert),
        });
    }
    Error::Fetch(FetchError::Http {
        url: url.into(),
        detail,
        source: e,
    })
}

/// What to do about a certificate rustls refused.
fn certificate_advice(problem: &rustls::CertificateError, tls_cert: Option<&Path>) -> String {
    use rustls::CertificateError as C;
    // webpki's "a CA certificate used as a server's" has no variant of its
    // own in rustls: it arrives as `Other`, named in its text.
    let ca_as_end_entity =
        matches!(problem, C::Other(other) if other.to_string().contains("CaUsedAsEndEntity"));
    match (problem, tls_cert) {
        _ if ca_as_end_entity => "it is a CA certificate (basicConstraints CA:TRUE, which `openssl req -x509` makes by default), and TLS clients refuse that as a server's certificate: the operator makes a new one with `-addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:NAME` (README, \"Certificates\"), or uses Let's Encrypt".to_owned(),
        (C::NotValidForName | C::NotValidForNameContext { .. }, _) => "it is not issued for the name in --relay: use the address the certificate names, or ask the operator for a certificate whose subjectAltName includes it".to_owned(),
        (C::Expired | C::ExpiredContext { .. }, _) => "it has expired: the operator renews it (certbot renew); if it is new, check this computer's clock".to_owned(),
        (C::NotValidYet | C::NotValidYetContext { .. }, _) => "it is not valid yet: check this computer's clock".to_owned(),
        (_, Some(pinned)) => format!(
            "it is not the certificate in --tls-cert {}: get the relay's current certificate from the operator (they may have replaced it) and pass that file",
            pinned.display()
        ),
        (_, None) => "no authority this computer trusts issued it (a demo relay's, or any self-signed one): pass --tls-cert FILE with the relay's certificate (the demo's is relay-data/tls/cert.pem)".to_owned(),
    }
}

/// Checks the relay's base URL and returns it without a trailing slash,
/// and whether its host is a `.onion` name.
fn parse_base(relay: &str) -> Result<(String, bool), Error> {
    let bad = |reason| {
        Error::Fetch(FetchError::BadRelayUrl {
            url: relay.chars().take(200).collect(),
            reason,
        })
    };
    let url = reqwest::Url::parse(relay).map_err(|_| bad("not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it holds credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a query or fragment"));
    }
    let host = url.host_str().ok_or_else(|| bad("it has no host"))?;
    match url.scheme() {
        "https" => {}
        "http" if loopback_or_onion(host) => {}
        "http" => {
            return Err(Error::Fetch(FetchError::InsecureRelayUrl {
                url: url.to_string(),
            }));
        }
        _ => {
            return Err(bad(
                "only https:// (or http:// to localhost or .onion) is allowed",
            ));
        }
    }
    Ok((
        url.as_str().trim_end_matches('/').to_owned(),
        onion_host(host),
    ))
}

/// Checks `--proxy`: `socks5h://HOST:PORT`, nothing else. Plain
/// `socks5://` is refused because the client would resolve names itself: a
/// `.onion` name cannot be resolved that way, and any other name would go
/// to this computer's DNS resolver, outside Tor.
fn parse_proxy(proxy: &str) -> Result<reqwest::Proxy, Error> {
    let bad = |reason| {
        Error::Fetch(FetchError::BadProxy {
            proxy: proxy.chars().take(200).collect(),
            reason,
        })
    };
    let url = reqwest::Url::parse(proxy).map_err(|_| bad("not a URL"))?;
    match url.scheme() {
        "socks5h" => {}
        "socks5" => {
            return Err(bad(
                "socks5:// would resolve names on this computer, leaking them to its DNS server and failing for .onion",
            ));
        }
        _ => return Err(bad("only socks5h:// is supported")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it holds credentials"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a path, query or fragment"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if url.port().is_none() {
        return Err(bad("it has no port"));
    }
    reqwest::Proxy::all(url.as_str()).map_err(|_| bad("the HTTP client refuses it"))
}

/// Plain http is tolerable only where the network cannot see the token:
/// this machine, or a Tor onion service (end-to-end encrypted by Tor).
fn loopback_or_onion(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost") || onion_host(bare),
    }
}

/// Whether `host` is a Tor onion name (any case).
fn onion_host(host: &str) -> bool {
    host.to_ascii_lowercase().ends_with(".onion")
}

/// The token on the first line of the token file, trimmed.
fn read_token(path: &Path) -> Result<SecretString, Error> {
    let bytes = Zeroizing::new(read_small(path, MAX_TOKEN_FILE)?);
    let bad = |reason| {
        Error::Fetch(FetchError::TokenFile {
            path: path.into(),
            reason,
        })
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("it is not text"))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(bad("its first line is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("the token holds characters no token has"));
    }
    Ok(SecretString::from(token))
}

// ------------------------------------------------------------------ errors

/// What can go wrong with talking to the relay (fetch, ack, push) (nested in [`crate::Error::Fetch`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The token file is unusable.
    #[error("the token file {path} is unusable ({reason}): put the API token on its first line")]
    TokenFile {
        /// The token file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// `--relay` is not a usable URL.
    #[error(
        "--relay {url:?} is not usable ({reason}): pass the relay's base URL, e.g. https://relay.example.org"
    )]
    BadRelayUrl {
        /// What was given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// `--relay` is plain http to a host that is neither loopback nor onion.
    #[error(
        "refusing to send the API token over plain http to {url}: use https:// (plain http is only allowed to localhost and .onion addresses)"
    )]
    InsecureRelayUrl {
        /// The URL.
        url: String,
    },

    /// `--relay` is a `.onion` address and no `--proxy` was given.
    #[error(
        "{url} is an onion address: pass --proxy socks5h://127.0.0.1:9050 (the Tor daemon's SOCKS port; 9150 for Tor Browser's), so that Tor resolves and reaches it"
    )]
    OnionNeedsProxy {
        /// The relay's base URL.
        url: String,
    },

    /// `--proxy` is not a usable SOCKS proxy URL.
    #[error(
        "--proxy {proxy:?} is not usable ({reason}): pass Tor's SOCKS port as socks5h://127.0.0.1:9050"
    )]
    BadProxy {
        /// What was given.
        proxy: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// `--tls-cert` is not a usable PEM certificate.
    #[error("--tls-cert {path} is not usable ({reason}): pass the relay's certificate in PEM form")]
    TlsCert {
        /// The certificate file.
        path: std::path::PathBuf,
        /// Why it was refused.
        reason: String,
    },

    /// The relay could not be reached or the connection failed.
    #[error(
        "could not talk to the relay at {url} ({detail}): check the address, the network and --tls-cert"
    )]
    Http {
        /// The URL requested.
        url: String,
        /// The innermost cause.
        detail: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// The relay's TLS certificate was refused.
    #[error("the relay at {url} sent a certificate this reviewer refuses: {next}")]
    Certificate {
        /// The URL requested.
        url: String,
        /// Why, and what to do.
        next: String,
    },

    /// The relay answered 401.
    #[error("the relay refused the token in {path} (401): check the token file")]
    TokenRefused {
        /// The token file.
        path: std::path::PathBuf,
    },

    /// The relay answered with a status this command does not expect.
    #[error(
        "the relay answered {status} to {what}: check the relay's address and version, or try again later"
    )]
    UnexpectedStatus {
        /// The request.
        what: String,
        /// The HTTP status code.
        status: u16,
    },

    /// The relay's answer is malformed.
    #[error(
        "the relay sent a malformed answer to {what} ({reason}): do not trust it; tell the relay operator"
    )]
    BadResponse {
        /// The request.
        what: String,
        /// What is wrong with the answer.
        reason: String,
    },

    /// The relay's answer is larger than any legitimate one.
    #[error(
        "the relay's answer to {what} is larger than {max} bytes: refusing it; tell the relay operator"
    )]
    ResponseTooLarge {
        /// The request.
        what: String,
        /// The limit.
        max: u64,
    },

    /// The relay holds a different batch under the acknowledged id.
    #[error(
        "the relay holds a different batch under {batch_id} (manifest hash mismatch): do not trust this relay's batches until you know why"
    )]
    AckConflict {
        /// The batch id.
        batch_id: format::BatchId,
    },

    /// The relay does not know the acknowledged batch.
    #[error(
        "the relay does not know batch {batch_id} (already purged?): nothing to do if you acknowledged it before"
    )]
    AckUnknown {
        /// The batch id.
        batch_id: format::BatchId,
    },

    /// `fetch --batch` names a batch the relay does not list.
    #[error(
        "the relay lists no unacknowledged batch {given} ({listed} listed): check the number or id (the file name batch-<sequence>-<id>.tar has both); an acknowledged batch is gone from the relay"
    )]
    NoSuchBatch {
        /// What was given.
        given: String,
        /// How many batches the relay listed.
        listed: usize,
    },

    /// Some receipts of an `ack` were not acknowledged (each said why).
    #[error(
        "{failed} of {total} receipts were not acknowledged (the lines above say why); the others were: fix those and run the same command again, acknowledging twice is safe"
    )]
    SomeAcksFailed {
        /// How many failed.
        failed: usize,
        /// How many were given.
        total: usize,
    },

    /// The receipt file is unusable.
    #[error("{path} is not a receipt written by `reviewer open` ({reason})")]
    BadReceipt {
        /// The receipt file.
        path: std::path::PathBuf,
        /// Why it was refused.
        reason: String,
    },

    /// The relay answered 400 to a reply bundle.
    #[error(
        "the relay refused {path} as malformed (400: {reason}): nothing of it was stored; check that the relay runs the same version as this reviewer"
    )]
    BundleMalformed {
        /// The bundle file.
        path: std::path::PathBuf,
        /// The relay's reason, shortened.
        reason: String,
    },

    /// The relay answered 422 to a reply bundle.
    #[error(
        "the relay refused {path} (422: {reason}): nothing of it was stored; check that each reply's thread comes from this relay's batches"
    )]
    BundleRefused {
        /// The bundle file.
        path: std::path::PathBuf,
        /// The relay's reason, shortened.
        reason: String,
    },

    /// The relay answered 413 to a reply bundle.
    #[error(
        "the relay refused {path} as too large (413): nothing of it was stored; push fewer or shorter replies per bundle"
    )]
    BundleTooLarge {
        /// The bundle file.
        path: std::path::PathBuf,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let base = |u: &str| parse_base(u).unwrap();
        assert_eq!(
            base("https://relay.example.org/"),
            ("https://relay.example.org".into(), false)
        );
        assert_eq!(
            base("https://relay.example.org/prefix/"),
            ("https://relay.example.org/prefix".into(), false)
        );
        assert_eq!(
            base("http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080".into(), false)
        );
        assert!(parse_base("http://[::1]:8080").is_ok());
        assert!(parse_base("http://localhost:1").is_ok());
        assert_eq!(
            base("http://abcdef.onion"),
            ("http://abcdef.onion".into(), true)
        );
        assert_eq!(
            base("https://ABCDEF.Onion/"),
            ("https://abcdef.onion".into(), true)
        );
        assert!(matches!(
            parse_base("http://relay.example.org"),
            Err(Error::Fetch(FetchError::InsecureRelayUrl { .. }))
        ));
        assert!(matches!(
            parse_base("http://10.0.0.1"),
            Err(Error::Fetch(FetchError::InsecureRelayUrl { .. }))
        ));
        for bad in [
            "relay.example.org",
            "ftp://relay.example.org",
            "https://user:pw@relay.example.org",
            "https://relay.example.org/?x=1",
        ] {
            assert!(
                matches!(
                    parse_base(bad),
                    Err(Error::Fetch(FetchError::BadRelayUrl { .. }))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn proxies() {
        assert!(parse_proxy("socks5h://127.0.0.1:9050").is_ok());
        assert!(parse_proxy("socks5h://[::1]:9150/").is_ok());
        for (bad, why) in [
            ("socks5://127.0.0.1:9050", "resolve names on this computer"),
            ("http://127.0.0.1:8118", "only socks5h"),
            ("socks4a://127.0.0.1:9050", "only socks5h"),
            ("socks5h://127.0.0.1", "no port"),
            ("socks5h://u:p@127.0.0.1:9050", "credentials"),
            ("socks5h://127.0.0.1:9050/x", "path"),
            ("127.0.0.1:9050", "not a URL"),
        ] {
            match parse_proxy(bad) {
                Err(Error::Fetch(e @ FetchError::BadProxy { .. })) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(why) && e.contains("socks5h://127.0.0.1:9050"),
                        "{bad}: {e}"
                    );
                }
                Err(e) => panic!("{bad}: {e}"),
                Ok(_) => panic!("{bad} was accepted"),
            }
        }
    }

    #[test]
    fn an_onion_relay_needs_a_proxy() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, b"t\n").unwrap();
        let onion = format!("http://{}.onion", "a".repeat(56));
        let e = RelayClient::new(&onion, &token, None, None).unwrap_err();
        assert!(
            matches!(e, Error::Fetch(FetchError::OnionNeedsProxy { .. })),
            "{e}"
        );
        assert!(
            e.to_string().contains("--proxy socks5h://127.0.0.1:9050"),
            "{e}"
        );
        assert!(RelayClient::new(&onion, &token, None, Some("socks5h://127.0.0.1:9050")).is_ok());
    }

    #[test]
    fn tokens() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, b"  abc-DEF_123 \nignored\n").unwrap();
        assert_eq!(read_token(&f).unwrap().expose_secret(), "abc-DEF_123");
        std::fs::write(&f, b"\n").unwrap();
        assert!(matches!(
            read_token(&f),
            Err(Error::Fetch(FetchError::TokenFile { .. }))
        ));
        std::fs::write(&f, b"a b\n").unwrap();
        assert!(matches!(
            read_token(&f),
            Err(Error::Fetch(FetchError::TokenFile { .. }))
        ));
    }

    #[test]
    fn debug_hides_token() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, b"supersecret\n").unwrap();
        let c = RelayClient::new("http://127.0.0.1:1", &f, None, None).unwrap();
        assert!(!format!("{c:?}").contains("supersecret"));
    }
}
