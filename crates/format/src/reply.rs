//! Replies from reviewers to a source: the message inside the age file, and
//! the bundle that carries age files from the offline reviewer to the relay.
//!
//! A reply is an age file encrypted by the reviewer, offline, to the
//! source's recipient (from the batch's `threads`) and to the reviewers'
//! recipients (so the NGO keeps a readable copy). The relay cannot read it:
//! it stores the file under its thread and decrypts it only for a source who
//! enters the codename. Its plaintext is a [`ReplyMessage`].

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Day, Error, ReplyId, ThreadId};

/// The `format` value of a reply's plaintext.
pub const REPLY_FORMAT: &str = "relay-reply/1";
/// The `format` value of a reply bundle.
pub const REPLY_BUNDLE_FORMAT: &str = "relay-replies/1";
/// Longest reply text, in characters.
pub const MAX_REPLY_TEXT_CHARS: usize = 10_000;
/// Largest reply plaintext (`reply.json`) a reader accepts.
pub const MAX_REPLY_JSON_BYTES: usize = 64 * 1024;
/// Largest age file of one reply.
pub const MAX_REPLY_CIPHERTEXT_BYTES: usize = 96 * 1024;
/// Most replies one bundle may carry.
pub const MAX_BUNDLE_REPLIES: usize = 200;
/// Largest bundle a reader accepts: 200 replies of the largest size,
/// base64-encoded (128 KiB each), plus framing. The relay holds a bundle in
/// memory while importing it, so this stays small.
pub const MAX_BUNDLE_BYTES: usize = 27 * 1024 * 1024;
/// The `format` value of a signed reply bundle, and the trusted comment
/// its minisign signature must carry (so that a signature made by the same
/// key for anything else is never taken for one over replies).
pub const SIGNED_REPLY_BUNDLE_FORMAT: &str = "relay-replies/2";
/// Largest minisign signature file a reader accepts.
pub const MAX_REPLY_SIGNATURE_BYTES: usize = 4096;
/// Largest signed bundle a reader accepts: the largest bundle in base64,
/// the largest signature (escaped in JSON, at most doubled), and framing.
pub const MAX_SIGNED_BUNDLE_BYTES: usize =
    MAX_BUNDLE_BYTES.div_ceil(3) * 4 + 2 * MAX_REPLY_SIGNATURE_BYTES + 1024;

/// A reply's plaintext, as JSON inside its age file.
///
/// The text is zeroized when the message is dropped.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyMessage {
    /// Always [`REPLY_FORMAT`].
    pub format: String,
    /// UTC day the reviewer wrote it (shown to the source).
    pub written_day: Day,
    /// The message, plain text (never HTML), at most
    /// [`MAX_REPLY_TEXT_CHARS`] characters.
    pub text: Zeroizing<String>,
}

impl std::fmt::Debug for ReplyMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyMessage")
            .field("written_day", &self.written_day)
            .field("text", &"[redacted]")
            .finish()
    }
}

impl ReplyMessage {
    /// A message written on `written_day`.
    pub fn new(written_day: Day, text: Zeroizing<String>) -> Self {
        Self {
            format: REPLY_FORMAT.into(),
            written_day,
            text,
        }
    }

    /// The plaintext bytes (compact JSON), zeroized on drop.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64 + self.text.len()));
        // Serialising strings into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, self);
        out
    }

    /// Parses and checks a reply's plaintext.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "reply";
        let m: ReplyMessage = crate::read_json(WHAT, bytes, MAX_REPLY_JSON_BYTES)?;
        if m.format != REPLY_FORMAT {
            return Err(Error::UnsupportedFormat {
                what: WHAT,
                found: m.format.clone(),
                expected: REPLY_FORMAT,
            });
        }
        m.check()?;
        Ok(m)
    }

    /// Checks the text's rules (also before writing a reply).
    pub fn check(&self) -> Result<(), Error> {
        const WHAT: &str = "reply";
        if self.text.trim().is_empty() {
            return Err(Error::invalid(WHAT, "the text is empty"));
        }
        if self.text.chars().count() > MAX_REPLY_TEXT_CHARS {
            return Err(Error::invalid(
                WHAT,
                format!("the text is longer than {MAX_REPLY_TEXT_CHARS} characters"),
            ));
        }
        Ok(())
    }
}

/// One reply in a bundle.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundledReply {
    /// The thread it answers.
    pub thread: ThreadId,
    /// Its id, chosen at random by the reviewer who wrote it.
    pub id: ReplyId,
    /// The age file, standard base64 with padding.
    pub age: String,
}

impl BundledReply {
    /// The age file's bytes.
    pub fn ciphertext(&self) -> Result<Vec<u8>, Error> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.age)
            .map_err(|e| {
                Error::invalid(
                    "reply bundle",
                    format!("reply {}: bad base64: {e}", self.id),
                )
            })
    }
}

/// A reply bundle: what `reviewer reply` writes, `reviewer push` uploads
/// (`POST /api/v1/replies`) and `relay import-replies` reads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplyBundle {
    /// Always [`REPLY_BUNDLE_FORMAT`].
    pub format: String,
    /// The replies, each id at most once.
    pub replies: Vec<BundledReply>,
}

impl ReplyBundle {
    /// An empty bundle.
    pub fn new() -> Self {
        Self {
            format: REPLY_BUNDLE_FORMAT.into(),
            replies: Vec::new(),
        }
    }

    /// Adds one reply's age file.
    pub fn push(&mut self, thread: ThreadId, id: ReplyId, ciphertext: &[u8]) {
        self.replies.push(BundledReply {
            thread,
            id,
            age: base64::engine::general_purpose::STANDARD.encode(ciphertext),
        });
    }

    /// The bundle's bytes (pretty JSON, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        crate::pretty_json(self)
    }

    /// Parses a bundle and checks its rules: known format, at most
    /// [`MAX_BUNDLE_REPLIES`] replies, each id once, each age file valid
    /// base64, non-empty and at most [`MAX_REPLY_CIPHERTEXT_BYTES`]. (That
    /// each is an age file is for the relay to check; it cannot read them.)
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "reply bundle";
        let b: ReplyBundle = crate::read_json(WHAT, bytes, MAX_BUNDLE_BYTES)?;
        if b.format != REPLY_BUNDLE_FORMAT {
            return Err(Error::UnsupportedFormat {
                what: WHAT,
                found: b.format.clone(),
                expected: REPLY_BUNDLE_FORMAT,
            });
        }
        if b.replies.len() > MAX_BUNDLE_REPLIES {
            return Err(Error::invalid(
                WHAT,
                format!("more than {MAX_BUNDLE_REPLIES} replies"),
            ));
        }
        let mut ids = std::collections::HashSet::with_capacity(b.replies.len());
        for r in &b.replies {
            if !ids.insert(r.id) {
                return Err(Error::invalid(
                    WHAT,
                    format!("reply {} is listed twice", r.id),
                ));
            }
            // base64 is 4 characters per 3 bytes: refuse before decoding.
            if r.age.len() > MAX_REPLY_CIPHERTEXT_BYTES.div_ceil(3) * 4 {
                return Err(Error::invalid(
                    WHAT,
                    format!(
                        "reply {} is larger than {MAX_REPLY_CIPHERTEXT_BYTES} bytes",
                        r.id
                    ),
                ));
            }
            let len = r.ciphertext()?.len();
            if len == 0 || len > MAX_REPLY_CIPHERTEXT_BYTES {
                return Err(Error::invalid(
                    WHAT,
                    format!(
                        "reply {} is empty or larger than {MAX_REPLY_CIPHERTEXT_BYTES} bytes",
                        r.id
                    ),
                ));
            }
        }
        Ok(b)
    }
}

/// A reply bundle signed by a reviewer's reply-signing key (minisign,
/// Ed25519): what `reviewer reply` writes, `reviewer push` uploads and the
/// relay imports. The relay stores its replies only if the signature
/// verifies with a key its config pins (`[replies] signing_keys`), so the
/// holder of the relay's API token cannot put words in the NGO's mouth.
///
/// `bundle` is standard base64 of a [`ReplyBundle`]'s exact bytes; the
/// signature is over those bytes, so no canonical form of JSON is needed.
/// The stock tool checks it: decode `bundle` to a file and run
/// `minisign -V -m FILE -x SIG -p reply-signing.pub`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignedReplyBundle {
    /// Always [`SIGNED_REPLY_BUNDLE_FORMAT`].
    pub format: String,
    /// The signed [`ReplyBundle`] bytes, standard base64 with padding.
    pub bundle: String,
    /// The minisign signature file (text) over those bytes, whose trusted
    /// comment is [`SIGNED_REPLY_BUNDLE_FORMAT`].
    pub signature: String,
}

impl SignedReplyBundle {
    /// Wraps a bundle's exact bytes and the signature over them.
    pub fn new(bundle_bytes: &[u8], signature: String) -> Self {
        Self {
            format: SIGNED_REPLY_BUNDLE_FORMAT.into(),
            bundle: base64::engine::general_purpose::STANDARD.encode(bundle_bytes),
            signature,
        }
    }

    /// The signed bundle's bytes (pretty JSON, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        crate::pretty_json(self)
    }

    /// Parses a signed bundle: known format, sizes within bounds. An
    /// unsigned `relay-replies/1` bundle is refused with a reason that says
    /// so. The signature is *not* checked here (that needs the pinned keys:
    /// the relay's `followup::import_replies`); [`Self::bundle_bytes`] gives
    /// what it covers.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "signed reply bundle";
        #[derive(Deserialize)]
        struct Probe {
            format: String,
        }
        let probe: Probe = crate::read_json(WHAT, bytes, MAX_SIGNED_BUNDLE_BYTES)?;
        if probe.format == REPLY_BUNDLE_FORMAT {
            return Err(Error::invalid(
                WHAT,
                "it is an unsigned relay-replies/1 bundle; write it again with `reviewer reply --signing-key`",
            ));
        }
        if probe.format != SIGNED_REPLY_BUNDLE_FORMAT {
            return Err(Error::UnsupportedFormat {
                what: WHAT,
                found: probe.format,
                expected: SIGNED_REPLY_BUNDLE_FORMAT,
            });
        }
        let s: SignedReplyBundle = crate::read_json(WHAT, bytes, MAX_SIGNED_BUNDLE_BYTES)?;
        if s.signature.len() > MAX_REPLY_SIGNATURE_BYTES {
            return Err(Error::invalid(
                WHAT,
                format!("its signature is longer than {MAX_REPLY_SIGNATURE_BYTES} bytes"),
            ));
        }
        if s.bundle.len() > MAX_BUNDLE_BYTES.div_ceil(3) * 4 {
            return Err(Error::invalid(
                WHAT,
                format!("its bundle is larger than {MAX_BUNDLE_BYTES} bytes"),
            ));
        }
        s.bundle_bytes()?;
        Ok(s)
    }

    /// The bytes the signature covers.
    pub fn bundle_bytes(&self) -> Result<Vec<u8>, Error> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.bundle)
            .map_err(|e| Error::invalid("signed reply bundle", format!("bad base64: {e}")))
    }

    /// The signed bundle, parsed and checked ([`ReplyBundle::from_json`]).
    /// Only meaningful once the signature over [`Self::bundle_bytes`] has
    /// been verified.
    pub fn bundle(&self) -> Result<ReplyBundle, Error> {
        ReplyBundle::from_json(&self.bundle_bytes()?)
    }
}

impl Default for ReplyBundle {
    fn default() -> Self {
        Self::new()
    }
}

/// What the relay did with a bundle (`POST /api/v1/replies` answers this;
/// `relay import-replies` prints it). A bundle is taken whole or not at
/// all: if any reply names an unknown thread or is not an age file, nothing
/// is stored and the request fails.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplyImport {
    /// Replies newly stored.
    pub stored: usize,
    /// Replies the relay already held (same id): importing twice is safe.
    pub already_held: usize,
    /// Replies the source has already read and deleted: not stored again.
    pub deleted_by_source: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u8) -> ThreadId {
        ThreadId::from_bytes([n; 16])
    }

    fn r(n: u8) -> ReplyId {
        ReplyId::from_bytes([n; 16])
    }

    #[test]
    fn bundle_round_trip_and_rules() {
        let mut b = ReplyBundle::new();
        b.push(t(1), r(1), b"age-encryption.org/v1\n...");
        b.push(t(2), r(2), &[7u8; 1000]);
        let back = ReplyBundle::from_json(&b.to_json()).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.replies[1].ciphertext().unwrap(), vec![7u8; 1000]);

        let refused = |b: &ReplyBundle| {
            ReplyBundle::from_json(&b.to_json())
                .unwrap_err()
                .to_string()
        };
        let mut twice = b.clone();
        twice.push(t(3), r(1), b"x");
        assert!(refused(&twice).contains("twice"), "{}", refused(&twice));
        let mut empty = ReplyBundle::new();
        empty.push(t(1), r(1), b"");
        assert!(refused(&empty).contains("empty"));
        let mut big = ReplyBundle::new();
        big.push(t(1), r(1), &vec![0u8; MAX_REPLY_CIPHERTEXT_BYTES + 1]);
        assert!(refused(&big).contains("larger"));
        let mut not64 = b.clone();
        not64.replies[0].age = "%%%".into();
        assert!(refused(&not64).contains("base64"));
        let mut version = b;
        version.format = "relay-replies/9".into();
        assert!(refused(&version).contains("unsupported"));
        assert!(ReplyBundle::from_json(b"{\"format\":\"relay-replies/1\"}").is_err());
    }

    #[test]
    fn signed_bundles_parse_and_unsigned_ones_are_named() {
        let mut b = ReplyBundle::new();
        b.push(t(1), r(1), b"age-encryption.org/v1\n...");
        let inner = b.to_json();
        let s = SignedReplyBundle::new(&inner, "untrusted comment: x\nRW...\n".into());
        let back = SignedReplyBundle::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.bundle_bytes().unwrap(), inner);
        assert_eq!(back.bundle().unwrap(), b);

        let unsigned = SignedReplyBundle::from_json(&inner)
            .unwrap_err()
            .to_string();
        assert!(
            unsigned.contains("unsigned") && unsigned.contains("--signing-key"),
            "{unsigned}"
        );
        let mut other = s.clone();
        other.format = "relay-replies/9".into();
        assert!(SignedReplyBundle::from_json(&other.to_json()).is_err());
        let mut long = s.clone();
        long.signature = "x".repeat(MAX_REPLY_SIGNATURE_BYTES + 1);
        assert!(SignedReplyBundle::from_json(&long.to_json()).is_err());
        let mut not64 = s;
        not64.bundle = "%%".into();
        assert!(SignedReplyBundle::from_json(&not64.to_json()).is_err());
        assert!(SignedReplyBundle::from_json(b"{\"format\":\"relay-replies/2\"}").is_err());
    }

    #[test]
    fn message_round_trip_and_rules() {
        let day: Day = "2026-11-28".parse().unwrap();
        let m = ReplyMessage::new(day, Zeroizing::new("We read it. <b>Thank you</b>".into()));
        let back = ReplyMessage::from_json(&m.to_json()).unwrap();
        assert_eq!(back.text.as_str(), m.text.as_str());
        assert_eq!(back.written_day, day);
        assert!(!format!("{back:?}").contains("Thank"));

        let empty = ReplyMessage::new(day, Zeroizing::new(" \n".into()));
        assert!(ReplyMessage::from_json(&empty.to_json()).is_err());
        let long = ReplyMessage::new(day, Zeroizing::new("я".repeat(MAX_REPLY_TEXT_CHARS + 1)));
        assert!(ReplyMessage::from_json(&long.to_json()).is_err());
        let exact = ReplyMessage::new(day, Zeroizing::new("я".repeat(MAX_REPLY_TEXT_CHARS)));
        assert!(ReplyMessage::from_json(&exact.to_json()).is_ok());
        assert!(ReplyMessage::from_json(b"{\"format\":\"relay-reply/1\",\"written_day\":\"2026-11-28\",\"text\":\"x\",\"extra\":1}").is_err());
    }
}
