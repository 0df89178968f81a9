//! The operator's configuration file (`relay.toml`).
//!
//! Parsing is strict: an unknown key is an error (a typo must not silently
//! fall back to a default), and every semantic check names the key. Paths
//! are relative to the directory of the config file. `deploy/relay.toml`
//! is a commented example; a test loads it through [`Config::load`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use format::Digest;
use serde::Deserialize;

use crate::Error;

/// Where the relay listens by default (HTTPS, loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// The questionnaire's categories until the operator configures their own:
/// the first users' topics.
pub const DEFAULT_CATEGORIES: &[&str] = &[
    "Health care and medical workers",
    "Prosecution for speech or posts",
    "Political prisoners and detention conditions",
    "Access to education",
    "Other",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    demo: bool,
    listen: Option<String>,
    tls: RawTls,
    reviewers: RawReviewers,
    api: RawApi,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    form: Form,
    #[serde(default)]
    store: StoreSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReviewers {
    recipients: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    token_sha256: String,
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
    /// Most submissions in one batch (default 1,000).
    pub max_batch_submissions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_submission_bytes: 512 * 1024 * 1024,
            max_files: 20,
            max_text_chars: 100_000,
            max_concurrent_uploads: 16,
            max_batch_submissions: 1_000,
        }
    }
}

/// The questionnaire.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Form {
    /// Version recorded in every testimony; bump it when the questions
    /// change so reviewers know which form a source saw.
    pub version: u32,
    /// The categories a source chooses from.
    pub categories: Vec<String>,
}

impl Default for Form {
    fn default() -> Self {
        Self {
            version: 1,
            categories: DEFAULT_CATEGORIES.iter().map(|s| (*s).to_owned()).collect(),
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
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self { cache_mib: 16 }
    }
}

/// A loaded and checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Demo mode: loopback only, loud warnings.
    pub demo: bool,
    /// HTTPS listen address.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub tls_cert: PathBuf,
    /// PEM private key.
    pub tls_key: PathBuf,
    /// Reviewer recipients (`age1…`), already checked to parse.
    pub recipients: Vec<String>,
    /// SHA-256 of the reviewer API token.
    pub api_token_sha256: Digest,
    /// Limits.
    pub limits: Limits,
    /// Questionnaire.
    pub form: Form,
    /// Store tuning.
    pub store: StoreSettings,
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_owned(),
            problem: format!("cannot read it: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Checks config text as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let bad = |problem: String| Error::Config {
            path: path.to_owned(),
            problem,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));

        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            bad(format!(
                "key `listen`: {listen_text:?} is not an IP address and port, like \"127.0.0.1:8443\""
            ))
        })?;
        if raw.demo && !listen.ip().is_loopback() {
            return Err(bad(format!(
                "key `listen`: demo mode only listens on loopback, not {listen}"
            )));
        }

        if raw.reviewers.recipients.is_empty() {
            return Err(bad(
                "key `reviewers.recipients`: at least one reviewer recipient (age1…) is required"
                    .into(),
            ));
        }
        for (i, r) in raw.reviewers.recipients.iter().enumerate() {
            crate::seal::Recipients::parse(std::slice::from_ref(r))
                .map_err(|e| bad(format!("key `reviewers.recipients[{i}]`: {e}")))?;
        }

        let api_token_sha256: Digest = raw.api.token_sha256.trim().parse().map_err(|_| {
            bad("key `api.token_sha256`: expected 64 lowercase hex digits (`relay token` prints the line)".into())
        })?;

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
            "limits.max_batch_submissions",
            l.max_batch_submissions as u64,
            1,
            50_000,
        )?;
        check_range(&bad, "store.cache_mib", raw.store.cache_mib, 1, 65_536)?;

        if raw.form.categories.is_empty() {
            return Err(bad(
                "key `form.categories`: at least one category is required".into(),
            ));
        }
        if let Some(c) = raw
            .form
            .categories
            .iter()
            .find(|c| c.trim().is_empty() || c.chars().count() > 200)
        {
            return Err(bad(format!(
                "key `form.categories`: {c:?} must be 1 to 200 characters"
            )));
        }

        Ok(Config {
            path: path.to_owned(),
            demo: raw.demo,
            listen,
            tls_cert: base.join(raw.tls.cert),
            tls_key: base.join(raw.tls.key),
            recipients: raw.reviewers.recipients,
            api_token_sha256,
            limits: raw.limits,
            form: raw.form,
            store: raw.store,
        })
    }
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
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.tls_cert, Path::new("/etc/relay/c.pem"));
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.limits.max_submission_bytes, 512 * 1024 * 1024);
        assert_eq!(c.form.categories.len(), DEFAULT_CATEGORIES.len());
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

    #[test]
    fn non_loopback_is_fine_outside_demo() {
        let c = Config::parse(
            Path::new("relay.toml"),
            &format!("listen = \"0.0.0.0:443\"\n{}", minimal()),
        )
        .unwrap();
        assert!(!c.listen.ip().is_loopback());
    }
}
