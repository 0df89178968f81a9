//! The reviewer workbench's shared model: what one archived submission looks
//! like to triage (`list`, `show`, `tag`, `status`), to the report
//! ([`crate::report`]), to the exports, and what the metadata scrubber
//! ([`crate::scrub`]) says about each attachment.
//!
//! These types are the contract between the archive (which reads and
//! writes them), the scrubber (which fills [`MetadataReport`]) and the
//! report (which only reads). They hold plaintext testimony: the text and
//! answers are zeroized when a [`Record`] is dropped, and they have no
//! `Debug` that prints content.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use format::{BatchId, Day, Digest, FieldLabel, SubmissionId, ThreadId};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// Where a submission is in the NGO's work. Stored in the archive, never in
/// the submission itself; every submission starts as [`Status::New`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not looked at yet.
    #[default]
    New,
    /// Someone is reading or checking it.
    Reviewing,
    /// Checked and found credible.
    Verified,
    /// Used in a publication.
    Published,
    /// Set aside (spam, duplicate, not credible).
    Discarded,
}

impl Status {
    /// Every status, in workflow order.
    pub const ALL: [Status; 5] = [
        Status::New,
        Status::Reviewing,
        Status::Verified,
        Status::Published,
        Status::Discarded,
    ];

    /// The word used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Reviewing => "reviewing",
            Status::Verified => "verified",
            Status::Published => "published",
            Status::Discarded => "discarded",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}: use one of new, reviewing, verified, published, discarded"
                )
            })
    }
}

/// What kind of file an attachment is, from its first bytes, never from
/// its name alone (the source chose it): only [`FileKind::Text`] needs both
/// the name and the content to agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// JPEG image.
    Jpeg,
    /// PNG image.
    Png,
    /// WebP image.
    Webp,
    /// HEIC/HEIF image (iPhone photos).
    Heic,
    /// PDF document.
    Pdf,
    /// Plain text: a name of [`crate::scrub::TEXT_EXTENSIONS`] and content
    /// that is text ([`crate::scrub::copy_plain_text`]). Its copy for
    /// sharing is the file as sent: text has no metadata container.
    Text,
    /// Anything else.
    Other,
}

impl FileKind {
    /// Whether a browser shows it inline as an image (the report does).
    pub fn is_image(self) -> bool {
        matches!(self, FileKind::Jpeg | FileKind::Png | FileKind::Webp)
    }
}

/// Something in an attachment's original that could identify a person or
/// a device. Values are kept short; they are shown to reviewers only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// GPS coordinates (EXIF GPS IFD or XMP), in decimal degrees when they
    /// could be read.
    Gps {
        /// Latitude, if readable.
        latitude: Option<f64>,
        /// Longitude, if readable.
        longitude: Option<f64>,
    },
    /// An author, artist, creator or owner name (EXIF Artist/Copyright,
    /// XMP dc:creator, PDF /Author).
    Author {
        /// The name as found.
        value: String,
    },
    /// A device make, model or serial number (EXIF Make/Model,
    /// BodySerialNumber, LensSerialNumber).
    Device {
        /// Which field (e.g. "serial", "model").
        field: String,
        /// The value as found.
        value: String,
    },
    /// Other identifying metadata worth a look (software with a user name,
    /// XMP/IPTC blocks present, PDF producer, comments).
    Other {
        /// What it is.
        field: String,
        /// The value as found, shortened.
        value: String,
    },
}

/// What the scrubber did with one attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ScrubOutcome {
    /// A scrubbed copy was written (metadata removed).
    Scrubbed,
    /// The type cannot be scrubbed by this build (the report flags it).
    Unsupported {
        /// Why, for the reviewer.
        reason: String,
    },
    /// The type is supported but the file could not be parsed or rewritten
    /// (damaged, hostile): no copy; the report flags it.
    Failed {
        /// Why, for the reviewer.
        reason: String,
    },
}

/// The metadata verdict on one attachment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetadataReport {
    /// The file's kind, from its content.
    pub kind: FileKind,
    /// What the original carries that could identify someone.
    pub findings: Vec<Finding>,
    /// Whether a scrubbed copy exists.
    pub scrub: ScrubOutcome,
}

/// One attachment of an archived submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    /// Its (sanitised) name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of the original, as `testimony.json` lists it.
    pub sha256: Digest,
    /// The untouched original, relative to the archive root.
    pub original: PathBuf,
    /// The scrubbed copy for sharing, relative to the archive root (only
    /// when `metadata.scrub` is [`ScrubOutcome::Scrubbed`]).
    pub scrubbed: Option<PathBuf>,
    /// What the scrubber found and did.
    pub metadata: MetadataReport,
}

/// Where an archived submission came from: its chain of custody.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The relay's minisign public key (base64), as pinned.
    pub relay_key: String,
    /// The batch's sequence number on that relay.
    pub batch_sequence: u64,
    /// The batch's id.
    pub batch_id: BatchId,
    /// SHA-256 of the batch's `manifest.json`.
    pub manifest_sha256: Digest,
    /// SHA-256 of the submission's ciphertext (the manifest entry).
    pub ciphertext_sha256: Digest,
    /// The reviewer key epoch it was sealed to.
    pub epoch: u32,
}

/// One archived submission, as the workbench sees it.
#[derive(PartialEq)]
pub struct Record {
    /// The submission's id (unique across relays and batches in one
    /// archive).
    pub id: SubmissionId,
    /// Chain of custody.
    pub origin: Origin,
    /// The follow-up thread, if the source took a codename.
    pub thread: Option<ThreadId>,
    /// UTC day the relay received it.
    pub received_day: Day,
    /// The form's language (`en`, `ru`, `kk`).
    pub language: String,
    /// Questionnaire version.
    pub form_version: u32,
    /// Answers by stable key (`category`, `region`, `events_month`, …).
    pub fields: BTreeMap<String, String>,
    /// English wording of each answered question and chosen answer.
    pub labels: BTreeMap<String, FieldLabel>,
    /// The testimony text.
    pub text: String,
    /// The attachments, in `testimony.json` order.
    pub attachments: Vec<AttachmentRecord>,
    /// Triage status.
    pub status: Status,
    /// Triage tags (lowercase, no spaces).
    pub tags: BTreeSet<String>,
    /// The submission's folder, relative to the archive root.
    pub dir: PathBuf,
}

impl Record {
    /// The English label of a field's answer, or the raw answer.
    pub fn answer_label(&self, key: &str) -> Option<&str> {
        let value = self.fields.get(key)?;
        Some(
            self.labels
                .get(key)
                .and_then(|l| l.answer.as_deref())
                .unwrap_or(value),
        )
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id)
            .field("received_day", &self.received_day)
            .field("status", &self.status)
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.text.zeroize();
        format::zeroize_answers(&mut self.fields, &mut self.labels);
    }
}
