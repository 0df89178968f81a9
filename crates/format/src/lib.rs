//! The formats the relay and the reviewer must agree on.
//!
//! This crate holds the grammar of everything that crosses the boundary
//! between the relay (online, holds no reviewer key) and the reviewer
//! (offline, holds the keys): the plaintext layout of one sealed submission,
//! the signed batch manifest, the receipt a reviewer sends back, and the
//! padding rule. It does no I/O and no networking; the full specification,
//! precise enough to reimplement, is `docs/format.md` at the repository root.
//!
//! Each structure has a `read`/`write` (or `from_json`/`to_json`) pair so
//! both sides share one parser, and parsing is strict: unknown fields,
//! unknown versions and malformed values are errors, never defaults.
//!
//! ```
//! use format::{padme, padded_plaintext_len};
//!
//! // PADMÉ rounds a length up so that it leaks O(log log n) bits.
//! assert_eq!(padme(1_000_000), 1_015_808);
//! // A sealed submission is never smaller than the floor.
//! assert_eq!(padded_plaintext_len(700), format::MIN_PADDED_PLAINTEXT);
//! ```
#![forbid(unsafe_code)]

mod day;
mod error;
mod ids;
mod manifest;
mod name;
mod pad;
mod receipt;
mod reply;
mod testimony;

pub use day::Day;
pub use error::Error;
pub use ids::{BatchId, Digest, ReplyId, SubmissionId, ThreadId};
pub use manifest::{
    MANIFEST_FORMAT, MAX_MANIFEST_BYTES, MAX_MANIFEST_ENTRIES, MAX_SIGNATURE_BYTES, Manifest,
    ManifestEntry, ThreadEntry, batch_member_for, is_x25519_recipient, parse_batch_member,
};
pub use name::{
    MAX_DISK_NAME_BYTES, MAX_NAME_BYTES, disk_name, fold_key, is_deceptive, sanitize_file_name,
    unique_names,
};
pub use pad::{
    MIN_PADDED_PLAINTEXT, TAR_BLOCK, padded_plaintext_len, padme, tar_entry_len, unpadded_tar_len,
};
pub use receipt::{AckRequest, AckResponse, BatchListing, BatchSummary, RECEIPT_FORMAT, Receipt};
pub use reply::{
    BundledReply, MAX_BUNDLE_BYTES, MAX_BUNDLE_REPLIES, MAX_REPLY_CIPHERTEXT_BYTES,
    MAX_REPLY_JSON_BYTES, MAX_REPLY_SIGNATURE_BYTES, MAX_REPLY_TEXT_CHARS, MAX_SIGNED_BUNDLE_BYTES,
    REPLY_BUNDLE_FORMAT, REPLY_FORMAT, ReplyBundle, ReplyImport, ReplyMessage,
    SIGNED_REPLY_BUNDLE_FORMAT, SignedReplyBundle,
};
pub use testimony::{
    Attachment, FieldLabel, MAX_TESTIMONY_JSON_BYTES, PADDING_ENTRY, TESTIMONY_ENTRY,
    TESTIMONY_FORMAT, Testimony, attachment_entry_path, parse_attachment_entry_path,
    zeroize_answers,
};

/// Name of the manifest member inside a batch tar.
pub const BATCH_MANIFEST: &str = "manifest.json";
/// Name of the detached minisign signature of the manifest inside a batch tar.
pub const BATCH_SIGNATURE: &str = "manifest.sig";
/// Directory holding the sealed submissions inside a batch tar.
pub const BATCH_SUBMISSIONS_DIR: &str = "submissions";

/// Parses `bytes` as JSON of a `T`, refusing more than `max` bytes first
/// (every `from_json` of this crate goes through here).
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<T, Error> {
    if bytes.len() > max {
        return Err(Error::TooLarge {
            what,
            size: bytes.len(),
            max,
        });
    }
    serde_json::from_slice(bytes).map_err(|source| Error::Json { what, source })
}

/// Pretty JSON with a trailing newline, as the crate's files are written.
/// Serialising its own types (strings, integers, maps with string keys)
/// into a `Vec` cannot fail.
pub(crate) fn pretty_json(value: &impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    if serde_json::to_writer_pretty(&mut out, value).is_ok() {
        out.push(b'\n');
    }
    out
}
