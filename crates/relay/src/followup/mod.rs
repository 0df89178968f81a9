//! Source follow-up: codenames, their derivation, and in-memory sessions.
//!
//! After submitting, a source may take a **codename**: 8 words drawn at
//! random from the EFF large word list (7,776 words, so 8 × 12.9 ≈ 103
//! bits). The relay shows it once and never stores it. From a codename,
//! Argon2id with a relay-wide secret salt (`followup.salt` in the data
//! directory, created on first start, 0600) derives 64 bytes:
//!
//! - bytes 0..32: the **lookup id**, the store's key for the source's
//!   thread;
//! - bytes 32..64: an **X25519 secret**, the source's age identity, whose
//!   public recipient the store keeps so that reviewers can reply.
//!
//! The store therefore holds only: lookup id → thread id, the recipient, and
//! reply ciphertexts. The codename and the identity exist only in RAM, for
//! one request or one session ([`sessions`]), in zeroizing types.
//!
//! A seized relay gives an attacker the salt and the lookup ids; a codename
//! is then guessable only by 2^103 Argon2id runs. A seized relay without
//! the salt file (say, a backup of the store alone) gives nothing at all.
//! Someone who learns a codename can read that source's replies and add to
//! their thread, but cannot learn who the source is: the relay never knew.

pub mod sessions;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use format::{ReplyBundle, ReplyId, ReplyImport, ReplyMessage, SignedReplyBundle, ThreadId};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::FollowupSettings;
use crate::store::Store;
use crate::{Error, fsutil};

/// The EFF large word list, as published (dice roll, tab, word).
const WORDLIST: &str = include_str!("eff_large_wordlist.txt");
/// Words in a codename.
pub const CODENAME_WORDS: usize = 8;
/// Words in the list.
pub const WORDLIST_LEN: usize = 7776;
/// The salt file in the data directory.
pub const SALT_FILE: &str = "followup.salt";
/// Bytes derived from a codename: lookup id, then X25519 secret.
const DERIVED_BYTES: usize = 64;

/// A `Debug` that shows only the type's name: these types hold secrets.
macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), "([redacted])"))
            }
        }
    )*};
}
pub(crate) use redacted_debug;

redacted_debug!(Codename, Salt, SourceSecret, Derived);

/// The word list's words, in list order. Checked by a test to be the 7,776
/// distinct words of EFF's published file.
pub fn words() -> impl Iterator<Item = &'static str> {
    WORDLIST
        .lines()
        .filter_map(|line| line.split_once('\t').map(|(_, w)| w))
}

fn word_index() -> &'static std::collections::HashMap<&'static str, u16> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, u16>> =
        std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        words()
            .enumerate()
            .map(|(i, w)| (w, u16::try_from(i).unwrap_or(u16::MAX)))
            .collect()
    })
}

fn word_at(i: usize) -> &'static str {
    static LIST: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| words().collect())
        .get(i)
        .copied()
        .unwrap_or("")
}

/// A codename: 8 list words separated by single spaces, lowercase. Zeroized
/// on drop; no `Debug` or `Clone`.
pub struct Codename(Zeroizing<String>);

/// Why text is not a codename. Says nothing about any stored thread: it is
/// only about the shape of what was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodenameError {
    /// Not exactly [`CODENAME_WORDS`] words.
    WordCount,
    /// A word that is not in the list (a typo): the first such, counted
    /// from 1 in the order typed.
    UnknownWord(usize),
}

impl Codename {
    /// Draws a new codename from the OS random source.
    pub fn generate() -> Self {
        use rand::Rng as _;
        let mut rng = rand::rngs::OsRng;
        let mut s = Zeroizing::new(String::with_capacity(80));
        for i in 0..CODENAME_WORDS {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(word_at(rng.gen_range(0..WORDLIST_LEN)));
        }
        Codename(s)
    }

    /// Reads what a source typed: any case; words separated by white space
    /// (line breaks included), commas, semicolons, full stops, slashes,
    /// dashes or hyphens; numbering such as `1.`, `2)`, `(3)` or `4:`
    /// ignored. A hyphen separates only where the token is not itself a
    /// list word (`t-shirt`, `yo-yo`, `drop-down` and `felt-tip` are).
    pub fn parse(typed: &str) -> Result<Self, CodenameError> {
        let lower = Zeroizing::new(typed.to_lowercase());
        let separator = |c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    ',' | ';'
                        | '.'
                        | '/'
                        | '|'
                        | '('
                        | ')'
                        | ':'
                        | '·'
                        | '–'
                        | '—'
                        | '«'
                        | '»'
                        | '"'
                )
        };
        // Slices of `lower`: no copy of a word is made until `out`.
        let mut words: Vec<&str> = Vec::with_capacity(CODENAME_WORDS + 1);
        for token in lower.split(separator) {
            // Numbering ("1", "12") and digits stuck to a word: no list
            // word has a digit.
            let token = token.trim_matches(|c: char| c.is_ascii_digit());
            if token.is_empty() {
                continue;
            }
            if token.contains('-') && !word_index().contains_key(token) {
                words.extend(token.split('-').filter(|p| !p.is_empty()));
            } else {
                words.push(token);
            }
            if words.len() > CODENAME_WORDS {
                break;
            }
        }
        if words.len() != CODENAME_WORDS {
            return Err(CodenameError::WordCount);
        }
        if let Some(i) = words.iter().position(|w| !word_index().contains_key(*w)) {
            return Err(CodenameError::UnknownWord(i + 1));
        }
        let mut out = Zeroizing::new(String::with_capacity(lower.len() + CODENAME_WORDS));
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(w);
        }
        Ok(Codename(out))
    }

    /// A second copy (both zeroized on drop): one is derived from on a
    /// blocking thread while the other waits to be shown.
    pub fn duplicate(&self) -> Self {
        Codename(self.0.clone())
    }

    /// The codename as shown to the source.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The words, for display one by one.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ')
    }
}

/// The relay-wide secret salt. No `Debug` or `Clone`; zeroized on drop.
pub struct Salt(Zeroizing<[u8; 32]>);

impl Salt {
    /// A salt from its bytes (tests, vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Salt(Zeroizing::new(bytes))
    }

    /// Loads `followup.salt` from the data directory, creating it (0600,
    /// 32 random bytes, hex) on first use. Returns whether it was created.
    pub fn load_or_create(data_dir: &Path) -> Result<(Self, bool), Error> {
        let path = data_dir.join(SALT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let text = std::str::from_utf8(&bytes).unwrap_or("").trim();
                let mut salt = Zeroizing::new([0u8; 32]);
                if text.len() != 64 || hex::decode_to_slice(text, &mut *salt).is_err() {
                    return Err(Error::Config {
                        path,
                        problem: "the follow-up salt file is damaged (expected 64 hex digits); \
                                  restore it from a backup: without it no codename is recognised"
                            .into(),
                    });
                }
                Ok((Salt(salt), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let salt = Zeroizing::new(crate::keys::random_bytes::<32>());
                let mut text = Zeroizing::new(hex::encode(*salt).into_bytes());
                text.push(b'\n');
                fsutil::write_new(&path, &text, 0o600)?;
                Ok((Salt(salt), true))
            }
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }
}

/// The store key of a source's thread, derived from the codename.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LookupId(pub [u8; 32]);

impl std::fmt::Display for LookupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for LookupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupId(..)")
    }
}

/// A source's X25519 secret. No `Debug` or `Clone`; zeroized on drop.
pub struct SourceSecret(Zeroizing<[u8; 32]>);

impl SourceSecret {
    /// The public recipient (`age1…`) the store keeps.
    pub fn recipient(&self) -> Result<String, Error> {
        crate::seal::x25519_recipient(&self.0)
    }

    /// Decrypts an age file sealed to this source (at most `limit`
    /// plaintext bytes; more is an error).
    pub fn open(&self, ciphertext: &[u8], limit: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
        crate::seal::open_with_x25519(ciphertext, &self.0, limit)
    }

    /// A copy for a session (the secret stays zeroizing in both places).
    pub fn duplicate(&self) -> Self {
        SourceSecret(Zeroizing::new(*self.0))
    }
}

/// What a codename derives.
pub struct Derived {
    /// The thread's store key.
    pub lookup: LookupId,
    /// The source's identity.
    pub secret: SourceSecret,
}

/// Argon2id with the configured parameters.
#[derive(Clone, Debug)]
pub struct Kdf {
    params: argon2::Params,
}

impl Kdf {
    /// From the config (ranges already checked by the config loader).
    pub fn new(settings: &FollowupSettings) -> Result<Self, Error> {
        Self::with_params(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
        )
    }

    /// From raw parameters: memory in KiB, passes, lanes.
    pub fn with_params(m_kib: u32, t: u32, p: u32) -> Result<Self, Error> {
        let params = argon2::Params::new(m_kib, t, p, Some(DERIVED_BYTES))
            .map_err(|e| Error::Followup(format!("bad Argon2 parameters: {e}")))?;
        Ok(Self { params })
    }

    /// Derives the lookup id and identity of `codename`. Takes about a
    /// quarter of a second and `argon2_memory_kib` of RAM with the default
    /// parameters: call it on a blocking thread, under the semaphore.
    pub fn derive(&self, codename: &Codename, salt: &Salt) -> Result<Derived, Error> {
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            self.params.clone(),
        );
        let mut out = Zeroizing::new([0u8; DERIVED_BYTES]);
        argon
            .hash_password_into(codename.as_str().as_bytes(), &salt.0[..], &mut out[..])
            .map_err(|e| Error::Followup(format!("derive from a codename: {e}")))?;
        let mut lookup = [0u8; 32];
        lookup.copy_from_slice(&out[..32]);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&out[32..]);
        Ok(Derived {
            lookup: LookupId(lookup),
            secret: SourceSecret(secret),
        })
    }
}

/// The follow-up machinery the web handlers share.
pub struct Followup {
    salt: Arc<Salt>,
    kdf: Kdf,
    derivations: Arc<Semaphore>,
    /// The in-memory sessions.
    pub sessions: Sessions,
}

pub use sessions::Sessions;

impl std::fmt::Debug for Followup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Followup")
            .field("kdf", &self.kdf)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

/// Why a derivation did not run.
#[derive(Debug)]
pub enum DeriveError {
    /// Every derivation slot is taken (503, "try later").
    Busy,
    /// It failed.
    Failed(Error),
}

impl Followup {
    /// From the config and the data directory's salt.
    pub fn new(settings: &FollowupSettings, salt: Salt) -> Result<Self, Error> {
        Ok(Self {
            salt: Arc::new(salt),
            kdf: Kdf::new(settings)?,
            derivations: Arc::new(Semaphore::new(settings.max_concurrent_derivations)),
            sessions: Sessions::new(
                Duration::from_secs(settings.session_idle_minutes.saturating_mul(60)),
                settings.max_sessions,
            ),
        })
    }

    /// Derives from `codename` on a blocking thread, under the semaphore.
    /// With `wait: None` a full semaphore is [`DeriveError::Busy`] at once
    /// (log-ins); with `Some(d)` it waits up to `d` (a submission that asked
    /// for a codename: the testimony itself is never refused for this).
    pub async fn derive(
        &self,
        codename: Codename,
        wait: Option<Duration>,
    ) -> Result<Derived, DeriveError> {
        let permit = match wait {
            None => self.derivations.clone().try_acquire_owned().ok(),
            Some(d) => tokio::time::timeout(d, self.derivations.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
        }
        .ok_or(DeriveError::Busy)?;
        let salt = self.salt.clone();
        let kdf = self.kdf.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            kdf.derive(&codename, &salt)
        })
        .await
        .map_err(|_| DeriveError::Failed(Error::Followup("the derivation task stopped".into())))?
        .map_err(DeriveError::Failed)
    }

    /// Derivations running right now (for tests and status).
    pub fn derivations_running(&self, max: usize) -> usize {
        max - self.derivations.available_permits()
    }
}

/// Parses a reply-signing public key as the config pins it (minisign
/// base64, `RW…`).
pub fn reply_signing_key(base64: &str) -> Result<minisign::PublicKey, String> {
    minisign::PublicKey::from_base64(base64.trim())
        .map_err(|e| format!("not a minisign public key ({e})"))
}

/// Checks that `signed` carries a signature, by one of `pinned` (minisign
/// base64), over its bundle bytes with the trusted comment
/// [`format::SIGNED_REPLY_BUNDLE_FORMAT`], and returns those bytes. Fails
/// with [`Error::UnsignedReplies`] otherwise.
fn verified_bundle(signed: &SignedReplyBundle, pinned: &[String]) -> Result<Vec<u8>, Error> {
    let refuse = |why: String| Error::UnsignedReplies(why);
    if pinned.is_empty() {
        return Err(refuse(
            "this relay pins no reply-signing key; add the reviewers' keys to [reviewers] reply_signing_keys (`reviewer keygen --reply-signing` prints one)".into(),
        ));
    }
    let bytes = signed
        .bundle_bytes()
        .map_err(|e| Error::MalformedReplies(e.to_string()))?;
    let signature = minisign::SignatureBox::from_string(&signed.signature).map_err(|e| {
        Error::MalformedReplies(format!("its signature is not a minisign signature: {e}"))
    })?;
    for key in pinned {
        let Ok(pk) = reply_signing_key(key) else {
            continue;
        };
        if pk.keynum() != signature.keynum() {
            continue;
        }
        minisign::verify(
            &pk,
            &signature,
            std::io::Cursor::new(&bytes[..]),
            true,
            false,
            false,
        )
        .map_err(|e| refuse(format!("the signature does not verify ({e})")))?;
        // Verified with the signature over it: the comment is the signer's.
        let comment = signature
            .trusted_comment()
            .map_err(|e| refuse(format!("its trusted comment cannot be read ({e})")))?;
        if comment != format::SIGNED_REPLY_BUNDLE_FORMAT {
            return Err(refuse(format!(
                "the signature was made for {comment:?}, not for a reply bundle ({})",
                format::SIGNED_REPLY_BUNDLE_FORMAT
            )));
        }
        return Ok(bytes);
    }
    Err(refuse(
        "it is signed by a key that is not in [reviewers] reply_signing_keys".into(),
    ))
}

/// Imports a signed reply bundle (the API's `POST /api/v1/replies` and
/// `relay import-replies`): all or nothing. A malformed bundle is
/// [`Error::MalformedReplies`]; an unsigned one, or one whose signature
/// does not verify with a key in `pinned` (`[reviewers]
/// reply_signing_keys`), is [`Error::UnsignedReplies`]; a reply that is not
/// an age file or names a thread this relay does not hold is
/// [`Error::BadReplies`].
pub fn import_replies(
    store: &Store,
    bytes: &[u8],
    pinned: &[String],
) -> Result<ReplyImport, Error> {
    let signed = SignedReplyBundle::from_json(bytes).map_err(|e| {
        if bytes_are_unsigned_bundle(bytes) {
            Error::UnsignedReplies(e.to_string())
        } else {
            Error::MalformedReplies(e.to_string())
        }
    })?;
    let inner = verified_bundle(&signed, pinned)?;
    let bundle =
        ReplyBundle::from_json(&inner).map_err(|e| Error::MalformedReplies(e.to_string()))?;
    let mut replies = Vec::with_capacity(bundle.replies.len());
    for r in &bundle.replies {
        let ciphertext = r
            .ciphertext()
            .map_err(|e| Error::MalformedReplies(e.to_string()))?;
        if crate::seal::check_header(&mut &ciphertext[..]).is_err() {
            return Err(Error::BadReplies(format!(
                "reply {} is not an age file",
                r.id
            )));
        }
        replies.push((r.thread, r.id, ciphertext));
    }
    store.import_replies(&replies)
}

/// Whether `bytes` is an old, unsigned `relay-replies/1` bundle.
fn bytes_are_unsigned_bundle(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        format: String,
    }
    serde_json::from_slice::<Probe>(bytes).is_ok_and(|p| p.format == format::REPLY_BUNDLE_FORMAT)
}

/// A reply as the source sees it.
pub enum ShownReply {
    /// Decrypted and well formed.
    Read {
        /// Its id (for deleting it).
        id: ReplyId,
        /// Its message (zeroized on drop).
        message: ReplyMessage,
    },
    /// Stored but not readable with this identity, or malformed: shown as
    /// such so the source knows something is there.
    Unreadable {
        /// Its id.
        id: ReplyId,
    },
}

redacted_debug!(ShownReply);

/// Decrypts one reply's age file with the source's identity.
pub fn open_reply(ciphertext: &[u8], secret: &SourceSecret) -> Result<ReplyMessage, Error> {
    let plain = secret.open(ciphertext, format::MAX_REPLY_JSON_BYTES)?;
    ReplyMessage::from_json(&plain).map_err(|e| Error::Followup(format!("open a reply: {e}")))
}

/// A thread's replies, decrypted for this request only.
pub fn thread_replies(
    store: &Store,
    thread: &ThreadId,
    secret: &SourceSecret,
) -> Result<Vec<ShownReply>, Error> {
    Ok(store
        .replies(thread)?
        .into_iter()
        .map(|(id, ciphertext)| match open_reply(&ciphertext, secret) {
            Ok(message) => ShownReply::Read { id, message },
            Err(_) => ShownReply::Unreadable { id },
        })
        .collect())
}

/// A new thread's random id (never derived from the codename, so a reviewer
/// who sees thread ids learns nothing about codenames).
pub fn new_thread_id() -> ThreadId {
    ThreadId::from_bytes(crate::keys::random_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn the_word_list_is_effs() {
        // SHA-256 of https://www.eff.org/files/2016/07/18/eff_large_wordlist.txt
        assert_eq!(
            hex::encode(sha2::Sha256::digest(WORDLIST.as_bytes())),
            "addd35536511597a02fa0a9ff1e5284677b8883b83e986e43f15a3db996b903e"
        );
        let words: Vec<_> = words().collect();
        assert_eq!(words.len(), WORDLIST_LEN);
        assert_eq!(word_index().len(), WORDLIST_LEN, "words are distinct");
        assert!(words.iter().all(|w| !w.contains(char::is_whitespace)));
    }

    #[test]
    fn generated_codenames_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let c = Codename::generate();
            assert_eq!(c.words().count(), CODENAME_WORDS);
            let typed = c.as_str().to_uppercase().replace(' ', " \n\t ");
            assert_eq!(Codename::parse(&typed).unwrap().as_str(), c.as_str());
            assert!(seen.insert(c.as_str().to_owned()));
        }
    }

    #[test]
    fn parse_refuses_wrong_shapes() {
        let eight = "abacus abdomen abdominal abide abiding ability ablaze able";
        assert!(Codename::parse(eight).is_ok());
        assert_eq!(
            Codename::parse("abacus abdomen").err(),
            Some(CodenameError::WordCount)
        );
        assert_eq!(
            Codename::parse(&format!("{eight} able")).err(),
            Some(CodenameError::WordCount)
        );
        assert_eq!(
            Codename::parse(&eight.replace("ablaze", "ablase")).err(),
            Some(CodenameError::UnknownWord(7))
        );
        assert_eq!(
            Codename::parse(&eight.replace("abacus", "abacuss")).err(),
            Some(CodenameError::UnknownWord(1))
        );
        assert_eq!(Codename::parse("").err(), Some(CodenameError::WordCount));
    }

    #[test]
    fn parse_takes_the_separators_and_numbering_people_type() {
        let eight = "abacus abdomen abdominal abide abiding ability ablaze able";
        for typed in [
            "abacus, abdomen, abdominal, abide, abiding, ability, ablaze, able",
            "abacus-abdomen-abdominal-abide-abiding-ability-ablaze-able",
            "1. abacus 2. abdomen 3. abdominal 4. abide\n5. abiding 6. ability 7. ablaze 8. able",
            "1) Abacus\n2) Abdomen\n3) Abdominal\n4) Abide\n5) Abiding\n6) Ability\n7) Ablaze\n8) Able\n",
            "(1) abacus (2) abdomen (3) abdominal (4) abide (5) abiding (6) ability (7) ablaze (8) able",
            "abacus;abdomen;abdominal;abide / abiding — ability – ablaze. able.",
            "1:abacus 2:abdomen 3:abdominal 4:abide 5:abiding 6:ability 7:ablaze 8:able",
        ] {
            assert_eq!(Codename::parse(typed).unwrap().as_str(), eight, "{typed:?}");
        }
        // Words that have a hyphen of their own stay whole.
        let hyphenated = "t-shirt yo-yo drop-down felt-tip abacus abdomen abide able";
        assert_eq!(Codename::parse(hyphenated).unwrap().as_str(), hyphenated);
        assert_eq!(
            Codename::parse("t-shirt, yo-yo, drop-down, felt-tip, abacus, abdomen, abide, able")
                .unwrap()
                .as_str(),
            hyphenated
        );
        // Numbering is not a word: still eight.
        assert_eq!(
            Codename::parse("1. abacus 2. abdomen").err(),
            Some(CodenameError::WordCount)
        );
    }

    #[test]
    fn derivation_depends_on_codename_and_salt() {
        let kdf = Kdf::with_params(8 * 1024, 1, 1).unwrap();
        let c =
            Codename::parse("abacus abdomen abdominal abide abiding ability ablaze able").unwrap();
        let d = Codename::parse("abacus abdomen abdominal abide abiding ability ablaze abnormal")
            .unwrap();
        let a = kdf.derive(&c, &Salt::from_bytes([1; 32])).unwrap();
        let again = kdf.derive(&c, &Salt::from_bytes([1; 32])).unwrap();
        let other_salt = kdf.derive(&c, &Salt::from_bytes([2; 32])).unwrap();
        let other_name = kdf.derive(&d, &Salt::from_bytes([1; 32])).unwrap();
        assert_eq!(a.lookup, again.lookup);
        assert_eq!(
            a.secret.recipient().unwrap(),
            again.secret.recipient().unwrap()
        );
        assert!(a.lookup != other_salt.lookup && a.lookup != other_name.lookup);
        assert_ne!(
            a.secret.recipient().unwrap(),
            other_name.secret.recipient().unwrap()
        );
        assert!(a.secret.recipient().unwrap().starts_with("age1"));
    }

    /// Submissions have priority over log-ins for derivation slots: a
    /// submission that waits is handed the next slot that frees (tokio's
    /// semaphore gives released permits to waiters first), and a log-in,
    /// which never waits, cannot take it. With one slot: a log-in holds
    /// it, a submission queues, and when the slot frees, a log-in that
    /// tries at that moment gets "busy" and the submission derives.
    #[tokio::test]
    async fn a_waiting_submission_takes_the_next_slot_before_any_log_in() {
        let settings = FollowupSettings {
            argon2_memory_kib: 8 * 1024,
            argon2_iterations: 1,
            max_concurrent_derivations: 1,
            ..FollowupSettings::default()
        };
        let f = std::sync::Arc::new(Followup::new(&settings, Salt::from_bytes([3; 32])).unwrap());
        let held = f.derivations.clone().try_acquire_owned().unwrap();
        assert!(matches!(
            f.derive(Codename::generate(), None).await,
            Err(DeriveError::Busy)
        ));
        let waiting = {
            let f = f.clone();
            tokio::spawn(async move {
                f.derive(Codename::generate(), Some(Duration::from_secs(30)))
                    .await
                    .is_ok()
            })
        };
        // Let the submission run until it queues on the semaphore.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(held);
        // The slot went to the queued submission, not to this log-in.
        assert!(matches!(
            f.derive(Codename::generate(), None).await,
            Err(DeriveError::Busy)
        ));
        assert!(waiting.await.unwrap(), "the submission derived");
    }
}
