//! The operator's configuration file (`relay.toml`).
//!
//! Parsing is strict: an unknown key is an error (a typo must not silently
//! fall back to a default), and every semantic check names the key. Paths
//! are relative to the directory of the config file. `deploy/relay.example.toml`
//! is a commented example; a test loads it through [`Config::load`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use format::Digest;
use serde::Deserialize;

use crate::Error;
use crate::form::Form;

/// Where the relay listens by default (HTTPS, loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    demo: bool,
    listen: Option<String>,
    onion_listen: Option<String>,
    onion_address: Option<String>,
    source_url: Option<String>,
    tls: Option<RawTls>,
    reviewers: RawReviewers,
    api: RawApi,
    #[serde(default)]
    limits: Limits,
    form: Option<Form>,
    #[serde(default)]
    store: StoreSettings,
    #[serde(default)]
    followup: FollowupSettings,
    #[serde(default)]
    openrosa: RawOpenRosa,
}

/// `[openrosa]`: field apps.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOpenRosa {
    /// The NGO's RSA public key for ODK encrypted forms: base64 of its DER
    /// SubjectPublicKeyInfo, as ODK's `base64RsaPublicKey` takes it.
    odk_public_key: Option<String>,
    /// A secret path segment: the endpoints answer only under
    /// `/openrosa/k/<token>/`.
    path_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
    min_version: Option<String>,
}

/// The oldest TLS version the HTTPS listener accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3, for old clients.
    V1_2,
    /// TLS 1.3 only (the default).
    #[default]
    V1_3,
}

/// `[reviewers]`: either the short form (`recipients`, one key epoch) or
/// key epochs (`current_epoch` and `[[reviewers.epoch]]` tables).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReviewers {
    recipients: Option<Vec<String>>,
    /// The reviewers' reply-signing public keys (minisign, `RW…`).
    #[serde(default)]
    reply_signing_keys: Vec<String>,
    // Signed, so that a negative value gets our message naming the key.
    current_epoch: Option<i64>,
    epoch: Option<Vec<RawEpoch>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEpoch {
    id: i64,
    recipients: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    token_sha256: String,
    listen: Option<String>,
}

/// Bounds on what one source can send and what the relay does at once.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most bytes of attachments in one submission (default 512 MiB).
    pub max_submission_bytes: u64,
    /// Most attachments in one submission (default 20).
    pub max_files: usize,
    /// Most characters of testimony text (default 100,000).
    pub max_text_chars: usize,
    /// Uploads processed at once; more get "busy, try later" (default 16).
    pub max_concurrent_uploads: usize,
    /// Connections open at once, over both listeners; more are closed as
    /// soon as they are accepted (default 1,024).
    pub max_connections: usize,
    /// Longest pause in an upload's body, in seconds, before the upload is
    /// cut (default 30).
    pub body_idle_seconds: u64,
    /// Slowest average upload rate, in bytes per second, that keeps an
    /// upload going: one that falls `body_idle_seconds` behind it is cut
    /// (default 1,024; 0 keeps only the pause limit).
    pub min_body_bytes_per_second: u64,
    /// Most submissions in one batch (default 1,000). A larger backlog is
    /// exported oldest day first ([`crate::store::Store::unexported`]).
    pub max_batch_submissions: usize,
    /// Most bytes of ciphertext the store holds (default 20 GiB). Beyond
    /// it, new submissions get "busy, try later" (503) until reviewers
    /// acknowledge a batch.
    pub max_store_bytes: u64,
    /// Free disk space the relay keeps in reserve on its data directory's
    /// file system (default 256 MiB; 0 turns the check off). New
    /// submissions get "busy, try later" rather than eat into it, so the
    /// index always has room to record what was acknowledged.
    pub min_free_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_submission_bytes: 512 * 1024 * 1024,
            max_files: 20,
            max_text_chars: 100_000,
            max_concurrent_uploads: 16,
            max_connections: 1024,
            body_idle_seconds: 30,
            min_body_bytes_per_second: 1024,
            max_batch_submissions: 1_000,
            max_store_bytes: 20 << 30,
            min_free_bytes: 256 << 20,
        }
    }
}

/// Store tuning.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// sled's page cache in MiB (default 16). sled's own default (1 GiB)
    /// would defeat the relay's memory bound.
    pub cache_mib: u64,
    /// How often a commit round runs, in milliseconds (default 10; 0:
    /// whenever a submission waits). Each round commits what arrived since
    /// the last and sets every store file's times to now, whether or not
    /// anything arrived, so that file times never date a submission. A
    /// source waits for the next round before "stored": half an interval on
    /// average, a whole one at most; with 64 clients waiting at once, the
    /// relay answers at most 64 per interval. Hiding does not depend on the
    /// length (every round looks alike on disk); an idle relay spends about
    /// 2% of a core on 100 rounds a second (`docs/decisions.md`). With 0,
    /// rounds run at once, and a relay seized less than a second after a
    /// submission shows its time on the store's files.
    pub commit_interval_ms: u64,
    /// How often, in minutes, every segment holding acknowledged
    /// ciphertext is rewritten without it (default 60). Segments that are
    /// mostly acknowledged are rewritten at once; this bounds how long any
    /// acknowledged ciphertext stays on disk.
    pub compact_interval_minutes: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            cache_mib: 16,
            commit_interval_ms: 10,
            compact_interval_minutes: 60,
        }
    }
}

impl StoreSettings {
    /// The store's options, with `uploads` uploads at once.
    pub fn options(&self, uploads: usize) -> crate::store::Options {
        crate::store::Options {
            cache_bytes: self.cache_mib << 20,
            commit_interval: std::time::Duration::from_millis(self.commit_interval_ms),
            compact_interval: std::time::Duration::from_secs(self.compact_interval_minutes * 60),
            // Large ciphertexts wait in these until their round; an upload
            // whose client went away may still hold one while a new upload
            // runs, hence twice as many.
            lanes: uploads.saturating_mul(2).max(2),
            segment_bytes: crate::store::SEGMENT_BYTES,
        }
    }
}

/// `[followup]`: codenames, replies and follow-up testimony.
///
/// A codename is turned into a lookup id and an age identity with Argon2id
/// (`argon2_*`, RFC 9106 names). Each derivation holds
/// `argon2_memory_kib` of RAM for about a quarter of a second on one core,
/// so at most `max_concurrent_derivations` run at once: a flood of log-ins
/// costs at most their product in memory, and log-ins beyond it get "busy,
/// try later" (503). Changing the Argon2 parameters (or losing the
/// `followup.salt` file) makes every existing codename unrecognisable.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FollowupSettings {
    /// Offer codenames on the form and serve `/followup` (default true).
    pub enabled: bool,
    /// Argon2id memory per derivation in KiB (default 65,536 = 64 MiB).
    pub argon2_memory_kib: u32,
    /// Argon2id passes (default 3).
    pub argon2_iterations: u32,
    /// Argon2id lanes (default 1; the relay computes them on one thread).
    pub argon2_parallelism: u32,
    /// Derivations running at once; more log-ins get 503 (default 2).
    pub max_concurrent_derivations: usize,
    /// A follow-up session ends after this many idle minutes (default 30).
    pub session_idle_minutes: u64,
    /// Most follow-up sessions held at once (default 1,000), at most one
    /// per thread; when full, the least recently used one ends.
    pub max_sessions: usize,
}

impl Default for FollowupSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            argon2_memory_kib: 64 * 1024,
            argon2_iterations: 3,
            argon2_parallelism: 1,
            max_concurrent_derivations: 2,
            session_idle_minutes: 30,
            max_sessions: 1_000,
        }
    }
}

/// A loaded and checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Demo mode: loopback only, loud warnings.
    pub demo: bool,
    /// HTTPS listen address; `None` for an onion-only relay.
    pub listen: Option<SocketAddr>,
    /// Plain-HTTP listener for the local Tor daemon's `HiddenServicePort`;
    /// always a loopback address.
    pub onion_listen: Option<SocketAddr>,
    /// The relay's onion address (`….onion`), announced on HTTPS responses
    /// with `Onion-Location`.
    pub onion_address: Option<String>,
    /// Where this relay's source code can be downloaded (`source_url`),
    /// shown as text on `/{lang}/source` (AGPL-3.0 §13). `None`: the page
    /// says to ask the operator.
    pub source_url: Option<String>,
    /// PEM certificate chain (required with `listen`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (required with `listen`).
    pub tls_key: Option<PathBuf>,
    /// Oldest TLS version accepted.
    pub tls_min_version: TlsVersion,
    /// The current reviewer key epoch: new submissions are sealed to it
    /// alone (1 with the short form `[reviewers] recipients`).
    pub epoch: u32,
    /// The current epoch's reviewer recipients (`age1…`), already checked
    /// to parse. Older epochs' recipients are never sealed to.
    pub recipients: Vec<String>,
    /// The reviewers' reply-signing public keys (`[reviewers]
    /// reply_signing_keys`, minisign base64, already checked to parse): a
    /// reply bundle is stored only if one of them signed it. Empty: every
    /// bundle is refused.
    pub reply_signing_keys: Vec<String>,
    /// SHA-256 of the reviewer API token.
    pub api_token_sha256: Digest,
    /// `[api] listen`: a loopback plain-HTTP listener that alone serves
    /// `/api/v1`, for a second, client-authorised onion service
    /// (`deploy/torrc-api`). `None`: the API is served on `listen` and
    /// `onion_listen` with the public pages.
    pub api_listen: Option<SocketAddr>,
    /// Limits.
    pub limits: Limits,
    /// Questionnaire.
    pub form: Form,
    /// Store tuning.
    pub store: StoreSettings,
    /// Codenames and follow-up.
    pub followup: FollowupSettings,
    /// `[openrosa] odk_public_key`: with it, the XForm asks ODK apps to
    /// encrypt each submission on the phone to this RSA key (ODK encrypted
    /// forms); the relay then seals what they send as it is.
    pub odk_public_key: Option<String>,
    /// `[openrosa] path_token`: with it, the OpenRosa endpoints answer only
    /// under `/openrosa/k/<token>/` (the server URL given to trusted
    /// monitors), and 404 elsewhere.
    pub openrosa_path_token: Option<String>,
}

/// A TOML error in words an operator can act on. TOML has no bare words:
/// `demo = no` is a syntax error that the parser reports as a malformed
/// number ("invalid float, expected 'nan'"), so a bare word where a value
/// belongs is named for what it most likely is, a yes/no setting.
fn toml_problem(text: &str, e: &toml::de::Error) -> String {
    if let Some(span) = e.span()
        && let Some(before) = text.get(..span.start)
    {
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |i| line_start + i);
        let line = &text[line_start..line_end];
        if let Some((key, value)) = line.split_once('=') {
            let word = value
                .trim_start()
                .split(|c: char| c.is_whitespace() || c == '#')
                .next()
                .unwrap_or("");
            if !word.is_empty()
                && word.chars().all(|c| c.is_ascii_alphabetic())
                && !matches!(word, "true" | "false" | "inf" | "nan")
            {
                let table = before[..line_start]
                    .lines()
                    .filter_map(|l| {
                        let l = l.trim();
                        l.strip_prefix('[')
                            .and_then(|l| l.strip_suffix(']'))
                            .map(|t| t.trim_matches(['[', ']']).trim().to_owned())
                    })
                    .next_back();
                let key = match table {
                    Some(t) => format!("{t}.{}", key.trim()),
                    None => key.trim().to_owned(),
                };
                let line_no = before.matches('\n').count() + 1;
                return format!(
                    "line {line_no}, key `{key}`: `{word}` is not a value: a yes/no setting expects true or false (lower case, no quotes); text goes in double quotes"
                );
            }
        }
    }
    e.to_string()
        .replace("expected a boolean", "expected true or false")
}

/// Whether `host` is a v3 onion address: 56 characters a-z and 2-7, then
/// `.onion`.
fn is_v3_onion(host: &str) -> bool {
    let name = host.strip_suffix(".onion").unwrap_or("");
    name.len() == 56
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_owned(),
            problem: if e.kind() == std::io::ErrorKind::NotFound {
                // The packaged relay's first start: say where the example is.
                "there is no such file: write it from the example, /usr/share/submission-relay/relay.example.toml (deploy/relay.example.toml in the source), or give another path with --config".to_owned()
            } else {
                format!("cannot read it: {e}")
            },
        })?;
        Self::parse(path, &text)
    }

    /// Checks config text as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let bad = |problem: String| Error::Config {
            path: path.to_owned(),
            problem,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| bad(toml_problem(text, &e)))?;
        let base = path.parent().unwrap_or(Path::new("."));

        let address = |key: &str, text: &str| -> Result<SocketAddr, Error> {
            text.parse().map_err(|_| {
                bad(format!(
                    "key `{key}`: {text:?} is not an IP address and port, like \"127.0.0.1:8443\""
                ))
            })
        };
        let onion_listen = raw
            .onion_listen
            .as_deref()
            .map(|t| address("onion_listen", t))
            .transpose()?;
        if let Some(addr) = onion_listen
            && !addr.ip().is_loopback()
        {
            return Err(bad(format!(
                "key `onion_listen`: the plain-HTTP listener is only for the local Tor daemon and must be a loopback address (127.0.0.1 or [::1]), not {addr}"
            )));
        }
        // With neither listener configured, HTTPS on the default address;
        // with only the onion listener, no HTTPS at all.
        let listen = match (raw.listen.as_deref(), onion_listen) {
            (Some(t), _) => Some(address("listen", t)?),
            (None, None) => Some(address("listen", DEFAULT_LISTEN)?),
            (None, Some(_)) => None,
        };
        if let Some(addr) = listen
            && raw.demo
            && !addr.ip().is_loopback()
        {
            return Err(bad(format!(
                "key `listen`: demo mode only listens on loopback, not {addr}"
            )));
        }
        if listen.is_some() && raw.tls.is_none() {
            return Err(bad(
                "key `tls`: the HTTPS listener (`listen`) needs a [tls] section with `cert` and `key`"
                    .into(),
            ));
        }
        let tls_min_version = match raw.tls.as_ref().and_then(|t| t.min_version.as_deref()) {
            None | Some("1.3") => TlsVersion::V1_3,
            Some("1.2") => TlsVersion::V1_2,
            Some(other) => {
                return Err(bad(format!(
                    "key `tls.min_version`: must be \"1.3\" or \"1.2\", found {other:?}"
                )));
            }
        };
        let onion_address = raw.onion_address.map(|a| a.trim().to_owned());
        if let Some(a) = &onion_address
            && !is_v3_onion(a)
        {
            return Err(bad(format!(
                "key `onion_address`: {a:?} is not a v3 onion address (56 characters a-z, 2-7, then .onion)"
            )));
        }

        let source_url = match raw.source_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                let onion_http = u
                    .strip_prefix("http://")
                    .and_then(|rest| rest.split('/').next())
                    .is_some_and(is_v3_onion);
                if !(u.starts_with("https://") || onion_http)
                    || u.len() > 512
                    || u.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(bad(format!(
                        "key `source_url`: {u:?} is not an https:// address (or http:// on a .onion) of at most 512 characters without spaces"
                    )));
                }
                Some(u.to_owned())
            }
        };

        let mut reply_signing_keys = Vec::new();
        for (i, k) in raw.reviewers.reply_signing_keys.iter().enumerate() {
            let k = k.trim();
            crate::followup::reply_signing_key(k).map_err(|e| {
                bad(format!(
                    "key `reviewers.reply_signing_keys` entry {}: {e}; give the RW… line `reviewer keygen --reply-signing` printed (the second line of its .pub file)",
                    i + 1
                ))
            })?;
            if reply_signing_keys.iter().any(|o: &String| o == k) {
                return Err(bad(format!(
                    "key `reviewers.reply_signing_keys` entry {}: listed twice",
                    i + 1
                )));
            }
            reply_signing_keys.push(k.to_owned());
        }
        let (epoch, recipients) = reviewer_epochs(raw.reviewers).map_err(bad)?;

        let api_token_sha256: Digest = raw.api.token_sha256.trim().parse().map_err(|_| {
            bad("key `api.token_sha256`: expected 64 lowercase hex digits (`relay token` prints the line)".into())
        })?;
        let api_listen = raw
            .api
            .listen
            .as_deref()
            .map(|t| address("api.listen", t))
            .transpose()?;
        if let Some(addr) = api_listen {
            if !addr.ip().is_loopback() {
                return Err(bad(format!(
                    "key `api.listen`: the API listener is plain HTTP for the local Tor daemon and must be a loopback address (127.0.0.1 or [::1]), not {addr}"
                )));
            }
            if Some(addr) == listen || Some(addr) == onion_listen {
                return Err(bad(format!(
                    "key `api.listen`: {addr} is already `listen` or `onion_listen`; give the API its own port (e.g. 127.0.0.1:8082)"
                )));
            }
        }

        let l = &raw.limits;
        check_range(
            &bad,
            "limits.max_submission_bytes",
            l.max_submission_bytes,
            1,
            1 << 40,
        )?;
        check_range(&bad, "limits.max_files", l.max_files as u64, 0, 1000)?;
        check_range(
            &bad,
            "limits.max_text_chars",
            l.max_text_chars as u64,
            1,
            1_000_000,
        )?;
        check_range(
            &bad,
            "limits.max_concurrent_uploads",
            l.max_concurrent_uploads as u64,
            1,
            4096,
        )?;
        check_range(
            &bad,
            "limits.max_connections",
            l.max_connections as u64,
            16,
            1_000_000,
        )?;
        check_range(
            &bad,
            "limits.body_idle_seconds",
            l.body_idle_seconds,
            1,
            3600,
        )?;
        check_range(
            &bad,
            "limits.min_body_bytes_per_second",
            l.min_body_bytes_per_second,
            0,
            1 << 30,
        )?;
        check_range(
            &bad,
            "limits.max_batch_submissions",
            l.max_batch_submissions as u64,
            1,
            50_000,
        )?;
        check_range(
            &bad,
            "limits.max_store_bytes",
            l.max_store_bytes,
            1 << 20,
            1 << 50,
        )?;
        check_range(&bad, "limits.min_free_bytes", l.min_free_bytes, 0, 1 << 40)?;
        check_range(&bad, "store.cache_mib", raw.store.cache_mib, 1, 65_536)?;
        check_range(
            &bad,
            "store.commit_interval_ms",
            raw.store.commit_interval_ms,
            0,
            10_000,
        )?;
        check_range(
            &bad,
            "store.compact_interval_minutes",
            raw.store.compact_interval_minutes,
            1,
            7 * 24 * 60,
        )?;
        let f = &raw.followup;
        // Argon2's own floor is 8 KiB per lane; below 8 MiB a codename would
        // be cheap to guess from a seized disk.
        check_range(
            &bad,
            "followup.argon2_memory_kib",
            u64::from(f.argon2_memory_kib),
            8 * 1024,
            4 * 1024 * 1024,
        )?;
        check_range(
            &bad,
            "followup.argon2_iterations",
            u64::from(f.argon2_iterations),
            1,
            100,
        )?;
        check_range(
            &bad,
            "followup.argon2_parallelism",
            u64::from(f.argon2_parallelism),
            1,
            16,
        )?;
        check_range(
            &bad,
            "followup.max_concurrent_derivations",
            f.max_concurrent_derivations as u64,
            1,
            256,
        )?;
        check_range(
            &bad,
            "followup.session_idle_minutes",
            f.session_idle_minutes,
            1,
            24 * 60,
        )?;
        check_range(
            &bad,
            "followup.max_sessions",
            f.max_sessions as u64,
            1,
            // The table is allocated at its full size at start (about
            // 150 bytes a session), so that it never reallocates.
            100_000,
        )?;

        let form = match raw.form {
            Some(form) => {
                form.check("form").map_err(bad)?;
                form
            }
            None => Form::default_form()
                .map_err(|e| bad(format!("the built-in questionnaire is broken: {e}")))?,
        };

        let openrosa_path_token = match raw.openrosa.path_token {
            None => None,
            Some(t)
                if t.len() >= 22
                    && t.len() <= 128
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Some(t)
            }
            Some(_) => {
                return Err(bad("key `openrosa.path_token`: must be 22 to 128 characters of A-Z, a-z, 0-9, - and _ (make one with `openssl rand -base64 24 | tr '+/' '-_'`)".into()));
            }
        };
        let odk_public_key = match raw.openrosa.odk_public_key {
            None => None,
            Some(k) => {
                use base64::Engine as _;
                let k: String = k.split_whitespace().collect();
                let der = base64::engine::general_purpose::STANDARD
                    .decode(&k)
                    .map_err(|_| bad("key `openrosa.odk_public_key`: not base64 (give the base64 of the key's DER SubjectPublicKeyInfo: `openssl rsa -in odk.pem -pubout -outform DER | base64 -w0`)".into()))?;
                aws_lc_rs::rsa::PublicEncryptingKey::from_der(&der).map_err(|_| {
                    bad("key `openrosa.odk_public_key`: not an RSA public key (SubjectPublicKeyInfo, DER, base64): make it with `openssl rsa -in odk.pem -pubout -outform DER | base64 -w0`".into())
                })?;
                Some(k)
            }
        };

        Ok(Config {
            path: path.to_owned(),
            demo: raw.demo,
            listen,
            onion_listen,
            onion_address,
            source_url,
            tls_cert: raw.tls.as_ref().map(|t| base.join(&t.cert)),
            tls_key: raw.tls.as_ref().map(|t| base.join(&t.key)),
            tls_min_version,
            epoch,
            recipients,
            reply_signing_keys,
            api_token_sha256,
            api_listen,
            limits: raw.limits,
            form,
            store: raw.store,
            followup: raw.followup,
            odk_public_key,
            openrosa_path_token,
        })
    }
}

/// Checks `[reviewers]` and returns the current epoch and its recipients.
///
/// Rules (each error names its key):
/// - the short form `recipients = [...]` is epoch 1, and excludes
///   `current_epoch` and `[[reviewers.epoch]]`;
/// - epoch ids are 1 or more and unique, and every epoch has at least one
///   valid recipient, listed once;
/// - no recipient is in two epochs: retiring an epoch destroys its
///   identities, which must not open a newer epoch too (and a reviewer
///   keeping a key for the newer epoch could not retire the older one);
/// - `current_epoch` is the newest epoch: sealing to an older one, whose
///   identities may already be retired, would make new testimony unreadable.
///
/// Older epochs are kept only for the operator's information (the relay
/// never seals to them); an operator may delete an epoch's table once every
/// batch holding its submissions is acknowledged.
fn reviewer_epochs(raw: RawReviewers) -> Result<(u32, Vec<String>), String> {
    const NEED_ONE: &str = "at least one reviewer recipient (age1…) is required";
    let mut epochs: Vec<(String, i64, Vec<String>)> =
        match (raw.recipients, raw.current_epoch, raw.epoch) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(
                    "key `reviewers`: use either `recipients` (a single key epoch) or \
                 `current_epoch` with [[reviewers.epoch]] tables, not both"
                        .into(),
                );
            }
            (Some(recipients), None, None) => vec![("reviewers".to_owned(), 1, recipients)],
            (None, None, None) => {
                return Err(format!("key `reviewers.recipients`: {NEED_ONE}"));
            }
            (None, None, Some(_)) => {
                return Err(
                    "key `reviewers.current_epoch`: required with [[reviewers.epoch]] \
                 tables: the id of the epoch new submissions are sealed to"
                        .into(),
                );
            }
            (None, Some(_), None) => {
                return Err(
                    "key `reviewers.epoch`: `current_epoch` needs [[reviewers.epoch]] \
                 tables, each with an `id` and its `recipients`"
                        .into(),
                );
            }
            (None, Some(_), Some(tables)) => tables
                .into_iter()
                .enumerate()
                .map(|(i, t)| (format!("reviewers.epoch[{i}]"), t.id, t.recipients))
                .collect(),
        };
    if epochs.is_empty() {
        return Err(
            "key `reviewers.epoch`: at least one [[reviewers.epoch]] table is required".into(),
        );
    }

    // Canonical recipient -> the epoch id that lists it.
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut ids: Vec<u32> = Vec::with_capacity(epochs.len());
    for (key, id, recipients) in &epochs {
        let id = u32::try_from(*id)
            .ok()
            .filter(|id| *id >= 1)
            .ok_or_else(|| {
                format!(
                    "key `{key}.id`: epoch ids are whole numbers from 1 to {}, found {id}",
                    u32::MAX
                )
            })?;
        if ids.contains(&id) {
            return Err(format!("key `{key}.id`: epoch {id} is defined twice"));
        }
        ids.push(id);
        // The short form's key is `reviewers.recipients`, as before.
        let key = format!("{key}.recipients");
        if recipients.is_empty() {
            return Err(format!("key `{key}`: {NEED_ONE}"));
        }
        for (i, r) in recipients.iter().enumerate() {
            let canonical = crate::seal::canonical_recipient(r)
                .map_err(|e| format!("key `{key}[{i}]`: {e}"))?;
            match seen.insert(canonical, id) {
                None => {}
                Some(other) if other == id => {
                    return Err(format!("key `{key}[{i}]`: this recipient is listed twice"));
                }
                Some(other) => {
                    return Err(format!(
                        "key `{key}[{i}]`: this recipient is also in epoch {other}; each epoch \
                         needs new reviewer keys (`reviewer keygen`), or retiring one epoch \
                         would retire the other too"
                    ));
                }
            }
        }
    }

    let (current, newest) = match raw.current_epoch {
        None => (1, 1),
        Some(c) => (c, ids.iter().copied().max().unwrap_or(1)),
    };
    let Some(index) = ids.iter().position(|id| i64::from(*id) == current) else {
        return Err(format!(
            "key `reviewers.current_epoch`: there is no [[reviewers.epoch]] table with id = {current}"
        ));
    };
    if i64::from(newest) != current {
        return Err(format!(
            "key `reviewers.current_epoch`: must be the newest epoch ({newest}), found {current}: \
             an older epoch's identities may already be retired, and testimony sealed to them \
             could never be read"
        ));
    }
    Ok((ids[index], epochs.swap_remove(index).2))
}

fn check_range(
    bad: &dyn Fn(String) -> Error,
    key: &str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), Error> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(bad(format!(
            "key `{key}`: must be between {min} and {max}, found {value}"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RECIPIENT: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

    fn minimal() -> String {
        format!(
            "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[reviewers]\nrecipients = [\"{RECIPIENT}\"]\n[api]\ntoken_sha256 = \"{}\"\n",
            Digest::of(b"t")
        )
    }

    fn err(text: &str) -> String {
        Config::parse(Path::new("/etc/relay/relay.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let c = Config::parse(Path::new("/etc/relay/relay.toml"), &minimal()).unwrap();
        assert_eq!(c.listen, Some(DEFAULT_LISTEN.parse().unwrap()));
        assert_eq!(c.tls_cert.as_deref(), Some(Path::new("/etc/relay/c.pem")));
        assert_eq!(c.tls_min_version, TlsVersion::V1_3);
        assert_eq!(c.onion_listen, None);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.limits.max_submission_bytes, 512 * 1024 * 1024);
        assert_eq!(c.form.category.len(), 5);
        assert!(!c.demo);
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = err(&minimal().replace(RECIPIENT, "age1bogus"));
        assert!(e.contains("/etc/relay/relay.toml"), "{e}");
        assert!(e.contains("reviewers.recipients[0]"), "{e}");

        let e = err(&format!("{}[limits]\nmax_files = 5000\n", minimal()));
        assert!(e.contains("limits.max_files") && e.contains("5000"), "{e}");

        let e = err(&format!("{}[limits]\nmax_filez = 5\n", minimal()));
        assert!(e.contains("max_filez"), "{e}");

        for (line, key) in [
            ("max_connections = 3", "limits.max_connections"),
            ("body_idle_seconds = 0", "limits.body_idle_seconds"),
            ("body_idle_seconds = 86400", "limits.body_idle_seconds"),
            (
                "min_body_bytes_per_second = 2000000000",
                "limits.min_body_bytes_per_second",
            ),
        ] {
            let e = err(&format!("{}[limits]\n{line}\n", minimal()));
            assert!(e.contains(key) && e.contains("must be between"), "{e}");
        }

        let e = err(&format!(
            "{}[openrosa]\npath_token = \"short\"\n",
            minimal()
        ));
        assert!(
            e.contains("openrosa.path_token") && e.contains("22 to 128"),
            "{e}"
        );
        for bad in ["not base64!", "aGVsbG8="] {
            let e = err(&format!(
                "{}[openrosa]\nodk_public_key = \"{bad}\"\n",
                minimal()
            ));
            assert!(
                e.contains("openrosa.odk_public_key") && e.contains("openssl"),
                "{e}"
            );
        }
        let e = err(&format!("{}[limits]\nmax_store_bytes = 1000\n", minimal()));
        assert!(
            e.contains("limits.max_store_bytes") && e.contains("found 1000"),
            "{e}"
        );
        let e = err(&format!("{}[limits]\nmin_free_bytes = -1\n", minimal()));
        assert!(e.contains("min_free_bytes"), "{e}");

        let e = err(&minimal().replace("token_sha256 = \"", "token_sha256 = \"zz"));
        assert!(e.contains("api.token_sha256"), "{e}");

        let e = err(&format!(
            "listen = \"0.0.0.0:443\"\ndemo = true\n{}",
            minimal()
        ));
        assert!(e.contains("loopback"), "{e}");

        let e = err(&format!("listen = \"localhost\"\n{}", minimal()));
        assert!(e.contains("`listen`"), "{e}");

        let e = err(&minimal().replace(&format!("\"{RECIPIENT}\""), ""));
        assert!(e.contains("at least one reviewer"), "{e}");
    }

    /// `minimal()` with its `[reviewers]` section replaced by `reviewers`.
    fn with_reviewers(reviewers: &str) -> String {
        minimal().replace(
            &format!("[reviewers]\nrecipients = [\"{RECIPIENT}\"]\n"),
            reviewers,
        )
    }

    fn new_recipient() -> String {
        crate::seal::generate_identity("2026-11-28".parse().unwrap(), "test").1
    }

    #[test]
    fn short_form_is_epoch_1() {
        let c = Config::parse(Path::new("relay.toml"), &minimal()).unwrap();
        assert_eq!(c.epoch, 1);
        assert_eq!(c.recipients, [RECIPIENT]);
    }

    #[test]
    fn epochs_seal_to_the_current_one_only() {
        let (a, b, c) = (new_recipient(), new_recipient(), new_recipient());
        let text = with_reviewers(&format!(
            "[reviewers]\ncurrent_epoch = 2\n\
             [[reviewers.epoch]]\nid = 1\nrecipients = [\"{a}\"]\n\
             [[reviewers.epoch]]\nid = 2\nrecipients = [\"{b}\", \"{c}\"]\n"
        ));
        let config = Config::parse(Path::new("relay.toml"), &text).unwrap();
        assert_eq!(config.epoch, 2);
        assert_eq!(config.recipients, [b.clone(), c.clone()]);

        // Order in the file does not matter; a lone epoch may be any id.
        let text = with_reviewers(&format!(
            "[reviewers]\ncurrent_epoch = 7\n\
             [[reviewers.epoch]]\nid = 7\nrecipients = [\"{b}\"]\n\
             [[reviewers.epoch]]\nid = 3\nrecipients = [\"{a}\"]\n"
        ));
        let config = Config::parse(Path::new("relay.toml"), &text).unwrap();
        assert_eq!((config.epoch, config.recipients), (7, vec![b]));
    }

    #[test]
    fn epoch_refusals_name_the_key() {
        let (a, b) = (new_recipient(), new_recipient());
        let epoch = |id: &str, recipients: &str| {
            format!("[[reviewers.epoch]]\nid = {id}\nrecipients = [{recipients}]\n")
        };
        let q = |r: &str| format!("\"{r}\"");
        let cases: Vec<(String, &[&str])> = vec![
            // Both forms at once.
            (
                format!(
                    "[reviewers]\nrecipients = [{}]\ncurrent_epoch = 1\n{}",
                    q(&a),
                    epoch("1", &q(&b))
                ),
                &["`reviewers`", "not both"],
            ),
            (
                format!(
                    "[reviewers]\nrecipients = [{}]\n{}",
                    q(&a),
                    epoch("1", &q(&b))
                ),
                &["`reviewers`", "not both"],
            ),
            // Neither.
            (
                "[reviewers]\n".into(),
                &["`reviewers.recipients`", "at least one reviewer"],
            ),
            // Half of the long form.
            (
                format!("[reviewers]\n{}", epoch("1", &q(&a))),
                &["`reviewers.current_epoch`", "required"],
            ),
            (
                "[reviewers]\ncurrent_epoch = 1\n".into(),
                &["`reviewers.epoch`"],
            ),
            (
                "[reviewers]\ncurrent_epoch = 1\nepoch = []\n".into(),
                &["`reviewers.epoch`", "at least one"],
            ),
            // Ids.
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 1\n{}{}",
                    epoch("1", &q(&a)),
                    epoch("0", &q(&b))
                ),
                &["`reviewers.epoch[1].id`", "found 0"],
            ),
            (
                format!("[reviewers]\ncurrent_epoch = 1\n{}", epoch("-3", &q(&a))),
                &["`reviewers.epoch[0].id`", "found -3"],
            ),
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 1\n{}",
                    epoch("4294967296", &q(&a))
                ),
                &["`reviewers.epoch[0].id`"],
            ),
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 2\n{}{}",
                    epoch("2", &q(&a)),
                    epoch("2", &q(&b))
                ),
                &["`reviewers.epoch[1].id`", "epoch 2 is defined twice"],
            ),
            // The current epoch must exist, and be the newest.
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 3\n{}{}",
                    epoch("1", &q(&a)),
                    epoch("2", &q(&b))
                ),
                &["`reviewers.current_epoch`", "id = 3"],
            ),
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 1\n{}{}",
                    epoch("1", &q(&a)),
                    epoch("2", &q(&b))
                ),
                &["`reviewers.current_epoch`", "newest epoch (2)"],
            ),
            // Recipients.
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 2\n{}{}",
                    epoch("1", &q(&a)),
                    epoch("2", "")
                ),
                &["`reviewers.epoch[1].recipients`", "at least one reviewer"],
            ),
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 2\n{}{}",
                    epoch("1", ""),
                    epoch("2", &q(&b))
                ),
                &["`reviewers.epoch[0].recipients`", "at least one reviewer"],
            ),
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 2\n{}{}",
                    epoch("1", &q(&a)),
                    epoch("2", &format!("{}, \"age1bogus\"", q(&b)))
                ),
                &["`reviewers.epoch[1].recipients[1]`", "age1bogus"],
            ),
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 1\n{}",
                    epoch("1", &format!("{}, \" {a}\"", q(&a)))
                ),
                &["`reviewers.epoch[0].recipients[1]`", "listed twice"],
            ),
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 2\n{}{}",
                    epoch("1", &q(&a)),
                    epoch("2", &format!("{}, {}", q(&b), q(&a)))
                ),
                &["`reviewers.epoch[1].recipients[1]`", "also in epoch 1"],
            ),
            (
                format!("[reviewers]\nrecipients = [{}, {}]\n", q(&a), q(&a)),
                &["`reviewers.recipients[1]`", "listed twice"],
            ),
            // Unknown keys in an epoch table.
            (
                format!(
                    "[reviewers]\ncurrent_epoch = 1\n{}retired = true\n",
                    epoch("1", &q(&a))
                ),
                &["retired"],
            ),
        ];
        for (reviewers, wanted) in cases {
            let e = err(&with_reviewers(&reviewers));
            assert!(e.contains("/etc/relay/relay.toml"), "{e}");
            for w in wanted {
                assert!(e.contains(w), "{w:?} not in {e:?}\nfor {reviewers}");
            }
        }
    }

    #[test]
    fn a_yes_no_setting_written_as_a_word_is_named_with_true_or_false() {
        for (text, key, word) in [
            (format!("demo = no\n{}", minimal()), "`demo`", "`no`"),
            (
                format!("{}\n[followup]\nenabled = Yes # try", minimal()),
                "`followup.enabled`",
                "`Yes`",
            ),
            (
                format!("{}[followup]\nenabled = off\n", minimal()),
                "`followup.enabled`",
                "`off`",
            ),
        ] {
            let e = err(&text);
            assert!(
                e.contains(key) && e.contains(word) && e.contains("expects true or false"),
                "{e}"
            );
            assert!(!e.contains("nan") && !e.contains("float"), "{e}");
        }
        // A quoted word parses as TOML, and serde says what it expected.
        let e = err(&format!("demo = \"yes\"\n{}", minimal()));
        assert!(e.contains("expected true or false"), "{e}");
        // Other syntax errors keep the parser's own words.
        let e = err(&format!("listen = 127.0.0.1:8443\n{}", minimal()));
        assert!(!e.contains("true or false"), "{e}");
    }

    #[test]
    fn non_loopback_is_fine_outside_demo() {
        let c = Config::parse(
            Path::new("relay.toml"),
            &format!("listen = \"0.0.0.0:443\"\n{}", minimal()),
        )
        .unwrap();
        assert!(!c.listen.unwrap().ip().is_loopback());
    }

    #[test]
    fn the_api_listener_is_loopback_only_and_its_own_port() {
        let with = |line: &str| format!("onion_listen = \"127.0.0.1:8081\"\n{}{line}\n", minimal());
        let c = Config::parse(Path::new("relay.toml"), &minimal()).unwrap();
        assert_eq!(c.api_listen, None);
        let c = Config::parse(
            Path::new("relay.toml"),
            &with("listen = \"127.0.0.1:8082\""),
        )
        .unwrap();
        assert_eq!(c.api_listen, Some("127.0.0.1:8082".parse().unwrap()));
        for public in ["0.0.0.0:8082", "192.168.1.5:8082", "[::]:8082"] {
            let e = err(&with(&format!("listen = \"{public}\"")));
            assert!(e.contains("`api.listen`") && e.contains("loopback"), "{e}");
        }
        let e = err(&with("listen = \"127.0.0.1:8081\""));
        assert!(e.contains("`api.listen`") && e.contains("own port"), "{e}");
        let e = err(&with("listen = \"localhost\""));
        assert!(e.contains("`api.listen`"), "{e}");
    }

    #[test]
    fn onion_listener_is_loopback_only() {
        let e = err(&format!("onion_listen = \"0.0.0.0:8081\"\n{}", minimal()));
        assert!(
            e.contains("`onion_listen`") && e.contains("loopback"),
            "{e}"
        );
        let e = err(&format!(
            "onion_listen = \"192.168.1.5:8081\"\n{}",
            minimal()
        ));
        assert!(e.contains("loopback"), "{e}");
        let c = Config::parse(
            Path::new("relay.toml"),
            &format!("onion_listen = \"127.0.0.1:8081\"\n{}", minimal()),
        )
        .unwrap();
        assert_eq!(c.onion_listen, Some("127.0.0.1:8081".parse().unwrap()));
        // Only the onion listener: no HTTPS, and no [tls] needed.
        assert_eq!(c.listen, None);
        let no_tls = minimal().replace("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n", "");
        let c = Config::parse(
            Path::new("relay.toml"),
            &format!("onion_listen = \"[::1]:8081\"\n{no_tls}"),
        )
        .unwrap();
        assert_eq!(c.tls_cert, None);
        let e = err(&no_tls);
        assert!(e.contains("`tls`"), "{e}");
    }

    #[test]
    fn tls_version_and_onion_address_are_checked() {
        let c = Config::parse(
            Path::new("relay.toml"),
            &minimal().replace("key = \"k.pem\"", "key = \"k.pem\"\nmin_version = \"1.2\""),
        )
        .unwrap();
        assert_eq!(c.tls_min_version, TlsVersion::V1_2);
        let e =
            err(&minimal().replace("key = \"k.pem\"", "key = \"k.pem\"\nmin_version = \"1.1\""));
        assert!(e.contains("tls.min_version"), "{e}");
        let onion = format!("{}.onion", "a".repeat(56));
        let c = Config::parse(
            Path::new("relay.toml"),
            &format!("onion_address = \"{onion}\"\n{}", minimal()),
        )
        .unwrap();
        assert_eq!(c.onion_address.as_deref(), Some(onion.as_str()));
        for bad in [
            "example.com",
            "abc.onion",
            &format!("{}.onion", "A".repeat(56)),
        ] {
            let e = err(&format!("onion_address = \"{bad}\"\n{}", minimal()));
            assert!(e.contains("onion_address"), "{e}");
        }
    }

    #[test]
    fn a_missing_config_file_names_the_example_and_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let e = Config::load(&dir.path().join("relay.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("relay.toml")
                && e.contains("/usr/share/submission-relay/relay.example.toml")
                && e.contains("--config"),
            "{e}"
        );
        // Another I/O error keeps its own words.
        let e = Config::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("cannot read it"), "{e}");
    }

    #[test]
    fn source_url_must_be_https_or_an_onion() {
        let parse = |u: &str| {
            Config::parse(
                Path::new("relay.toml"),
                &format!("source_url = \"{u}\"\n{}", minimal()),
            )
        };
        assert_eq!(
            parse("https://ngo.example.org/src.tar.gz")
                .unwrap()
                .source_url
                .as_deref(),
            Some("https://ngo.example.org/src.tar.gz")
        );
        let onion = format!("http://{}.onion/src.tar.gz", "a".repeat(56));
        assert_eq!(
            parse(&onion).unwrap().source_url.as_deref(),
            Some(onion.as_str())
        );
        assert_eq!(parse("").unwrap().source_url, None);
        assert_eq!(
            Config::parse(Path::new("relay.toml"), &minimal())
                .unwrap()
                .source_url,
            None
        );
        let long = format!("https://example.org/{}", "a".repeat(600));
        for bad in [
            "http://ngo.example.org/src",
            "http://x.onion.example.org/",
            "ftp://x",
            "javascript:alert(1)",
            "https://a b",
            &long,
        ] {
            let e = parse(bad).map(|_| ()).unwrap_err().to_string();
            assert!(
                e.contains("source_url") && e.contains("https://"),
                "{bad}: {e}"
            );
        }
    }
}
