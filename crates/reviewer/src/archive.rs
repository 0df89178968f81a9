//! The reviewer's archive: one directory per laptop that `reviewer open`
//! fills and every workbench command reads.
//!
//! ```text
//! DIR/
//!   archive.json                  the index (relay-archive/1): batches, submissions, origins
//!   triage.json                   status and tags (relay-archive-triage/1), apart from the content
//!   <id>/testimony.json           decrypted, byte for byte as sealed
//!   <id>/testimony.txt            readable rendering (control characters escaped)
//!   <id>/files/NN-<name>          attachments, untouched originals (NN: their place, from 01)
//!   <id>/shared/NN-<name>         scrubbed copies for sharing (only where scrubbing worked)
//!   receipts/batch-<seq>-<batch id>.json
//!   .custody/<relay>/batches/<seq>-<batch id>/manifest.json, manifest.sig   verbatim
//!   .custody/<relay>/submissions/<id>.age                                   verbatim ciphertext
//! ```
//!
//! `<relay>` is the relay's fingerprint ([`relay_fingerprint`]): the first 16
//! hex digits of the SHA-256 of its pinned public key, as the chain state
//! files are named. The custody copies let `reviewer verify-archive` check,
//! long after the batch files are gone, the chain relay signature → batch
//! manifest hash → ciphertext hash, and the attachments against the
//! testimony.
//!
//! Attachments are written as `format::disk_name` says: their place in
//! `testimony.json` as a prefix, then the name in NFC. Two names a source
//! sent can be one name on a reviewer's laptop (APFS and NTFS ignore case,
//! APFS also normalization); with the prefix, no two written names can.
//! The source's own name stays in `testimony.json` and the index. (Archives
//! opened before this wrote `files/<name>`; both forms are read.)
//!
//! A submission whose ciphertext is the signed one but whose content could
//! not be opened (a plaintext that breaks `docs/format.md`, on purpose or
//! not) is *quarantined*: the index lists it with the reason, its
//! ciphertext stays in custody, and nothing of its content is written.
//! `reviewer retry` opens it again later, with a newer reviewer.
//!
//! Each submission is archived once, whatever the number of batches or
//! relays that carried it: a later batch holding the same id with the same
//! ciphertext adds an origin and nothing else; with another ciphertext it
//! is refused (a relay bug or an attack).
//!
//! Both JSON files are replaced atomically (temporary file, fsync, rename,
//! fsync of the directory) and are `0600`: the index says which submissions
//! came from which source thread, and the triage file what the NGO thinks
//! of each. Triage is kept apart from the index so that tagging never
//! rewrites the chain of custody.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use format::{
    BatchId, Day, Digest, MAX_TESTIMONY_JSON_BYTES, Manifest, SubmissionId, TESTIMONY_ENTRY,
    Testimony, ThreadId, sanitize_file_name,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;
use crate::fsutil::{exists_no_follow, read_small, replace_file};
use crate::verify::{SignedBatch, VerifiedBatch};
use crate::workbench::{AttachmentRecord, Origin, Record, ScrubOutcome, Status};

/// The `format` value of `archive.json`.
pub const ARCHIVE_FORMAT: &str = "relay-archive/1";
/// The index's file name in the archive directory.
pub const ARCHIVE_FILE: &str = "archive.json";
/// The `format` value of `triage.json`.
pub const TRIAGE_FORMAT: &str = "relay-archive-triage/1";
/// The triage file's name in the archive directory.
pub const TRIAGE_FILE: &str = "triage.json";
/// The directory of verbatim manifests, signatures and ciphertexts.
pub const CUSTODY_DIR: &str = ".custody";
/// A submission's attachments (originals), inside its folder.
pub const FILES_DIR: &str = "files";
/// A submission's scrubbed copies, inside its folder.
pub const SHARED_DIR: &str = "shared";
/// The shortest id prefix the triage commands accept.
pub const MIN_ID_PREFIX: usize = 6;
/// The longest tag.
pub const MAX_TAG_CHARS: usize = 40;
/// The largest index or triage file read (a few hundred thousand
/// submissions).
const MAX_INDEX_FILE: u64 = 512 * 1024 * 1024;

/// A relay's short fingerprint: the first 16 hex digits of the SHA-256 of
/// its public key as pinned (`RW…`). Names its custody directory and its
/// chain state file, and stands for the relay in listings and exports.
pub fn relay_fingerprint(relay_key: &str) -> String {
    let digest = Digest::of(relay_key.as_bytes()).to_string();
    digest.get(..16).unwrap_or(&digest).to_owned()
}

/// `DIR/.custody/<relay>`.
pub fn custody_relay_dir(root: &Path, relay_key: &str) -> PathBuf {
    root.join(CUSTODY_DIR).join(relay_fingerprint(relay_key))
}

/// `DIR/.custody/<relay>/batches/<seq>-<batch id>`: where a batch's
/// `manifest.json` and `manifest.sig` are kept verbatim.
pub fn custody_batch_dir(root: &Path, relay_key: &str, sequence: u64, id: &BatchId) -> PathBuf {
    custody_relay_dir(root, relay_key)
        .join("batches")
        .join(format!("{sequence:06}-{id}"))
}

/// `DIR/.custody/<relay>/submissions/<id>.age`: a submission's ciphertext
/// as that relay's batch carried it.
pub fn custody_ciphertext(root: &Path, relay_key: &str, id: &SubmissionId) -> PathBuf {
    custody_relay_dir(root, relay_key)
        .join("submissions")
        .join(format!("{id}.age"))
}

/// One batch in the archive, as its signed manifest says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedBatch {
    /// The relay's public key, as pinned when the batch was opened.
    pub relay_key: String,
    /// Its sequence number on that relay.
    pub sequence: u64,
    /// Its id.
    pub batch_id: BatchId,
    /// SHA-256 of its exact `manifest.json` bytes.
    pub manifest_sha256: Digest,
    /// The day the relay made it.
    pub created_day: Day,
    /// The day it was opened into this archive (UTC).
    pub imported_day: Day,
    /// How many submissions its manifest lists.
    pub submissions: u64,
}

/// One submission in the archive: everything but its content, which is in
/// `DIR/<id>/testimony.json`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedSubmission {
    /// The submission's id (its folder).
    pub id: SubmissionId,
    /// The batch it was archived from.
    pub origin: Origin,
    /// Later batches (of this or another relay) that carried the same
    /// ciphertext again: nothing was added from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_received: Vec<Origin>,
    /// The follow-up thread the manifest names, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadId>,
    /// The day the relay received it (from the signed manifest).
    pub received_day: Day,
    /// SHA-256 of `testimony.json` as decrypted.
    pub testimony_sha256: Digest,
    /// The attachments, in `testimony.json` order.
    pub attachments: Vec<AttachmentRecord>,
}

impl fmt::Debug for ArchivedSubmission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Attachment names can identify a source: never printed.
        f.debug_struct("ArchivedSubmission")
            .field("id", &self.id)
            .field("origin", &self.origin)
            .field("received_day", &self.received_day)
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

/// A submission whose ciphertext is in custody, checked against the signed
/// manifest, but whose content could not be opened: nothing of it is in
/// the archive but this entry and the ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantinedSubmission {
    /// The submission's id.
    pub id: SubmissionId,
    /// The batch it came in (its ciphertext is that relay's custody copy).
    pub origin: Origin,
    /// The follow-up thread the manifest names, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadId>,
    /// The day the relay received it (from the signed manifest).
    pub received_day: Day,
    /// Why it could not be opened: the rule its plaintext broke (never its
    /// content).
    pub reason: String,
    /// The day it was last tried (UTC).
    pub tried_day: Day,
}

/// `archive.json` as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveFile {
    format: String,
    batches: Vec<ArchivedBatch>,
    submissions: Vec<ArchivedSubmission>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    quarantined: Vec<QuarantinedSubmission>,
}

/// The archive index of one archive directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Archive {
    root: PathBuf,
    batches: Vec<ArchivedBatch>,
    submissions: BTreeMap<SubmissionId, ArchivedSubmission>,
    quarantined: BTreeMap<SubmissionId, QuarantinedSubmission>,
}

/// What the archive knows of a batch about to be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// Never opened into this archive.
    New,
    /// Already archived, byte for byte the same manifest.
    Archived,
}

impl Archive {
    /// The archive in `root`; empty if it has no index yet (a new archive,
    /// or a directory of folders opened before the archive existed).
    pub fn load(root: &Path) -> Result<Self, Error> {
        let path = root.join(ARCHIVE_FILE);
        if !exists_no_follow(&path)? {
            return Ok(Self {
                root: root.into(),
                batches: Vec::new(),
                submissions: BTreeMap::new(),
                quarantined: BTreeMap::new(),
            });
        }
        let bytes = read_small(&path, MAX_INDEX_FILE)?;
        Self::from_json(root, &bytes)
            .map_err(|reason| Error::Archive(ArchiveError::BadArchive { path, reason }))
    }

    /// The archive `reviewer open` may write into `root`: an existing
    /// archive, or a folder that does not exist or is empty. Anything else
    /// (`~/Documents`, a typo for the real archive) is refused before
    /// anything is written: testimony mixed with personal files is hard to
    /// separate and easy to leak, and a batch opened there would be held
    /// by the wrong archive. An empty folder may hold what a file manager
    /// puts in every folder (`.DS_Store`, `Thumbs.db`, `desktop.ini`); a
    /// folder with a `.staging-…` directory is one whose first `open` was
    /// interrupted, and is ours.
    pub fn load_for_open(root: &Path) -> Result<Self, Error> {
        if !exists_no_follow(&root.join(ARCHIVE_FILE))? {
            let entries = match std::fs::read_dir(root) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::load(root),
                Err(e) => return Err(Error::io("read directory", root, e)),
            };
            let mut foreign = false;
            for entry in entries {
                let name = entry
                    .map_err(|e| Error::io("read directory", root, e))?
                    .file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".staging-") {
                    foreign = false;
                    break;
                }
                if !matches!(&*name, ".DS_Store" | "Thumbs.db" | "desktop.ini") {
                    foreign = true;
                }
            }
            if foreign {
                return Err(Error::Archive(ArchiveError::NotEmptyNotArchive {
                    dir: root.into(),
                }));
            }
        }
        Self::load(root)
    }

    /// The archive in `root`, which must exist (the triage, export, report
    /// and verify commands).
    pub fn open(root: &Path) -> Result<Self, Error> {
        if !exists_no_follow(&root.join(ARCHIVE_FILE))? {
            return Err(Error::Archive(ArchiveError::NotAnArchive {
                dir: root.into(),
            }));
        }
        Self::load(root)
    }

    fn from_json(root: &Path, bytes: &[u8]) -> Result<Self, String> {
        let file: ArchiveFile = serde_json::from_slice(bytes)
            .map_err(|e| format!("it is not an archive index: {e}"))?;
        if file.format != ARCHIVE_FORMAT {
            return Err(format!("unknown format version {:?}", file.format));
        }
        let mut seen = BTreeSet::new();
        let mut seen_seq = BTreeSet::new();
        for b in &file.batches {
            if b.sequence == 0
                || b.relay_key.is_empty()
                || !b.relay_key.bytes().all(|c| c.is_ascii_graphic())
            {
                return Err(format!(
                    "batch {} has an invalid sequence or relay key",
                    b.batch_id
                ));
            }
            if !seen.insert((b.relay_key.clone(), b.batch_id))
                || !seen_seq.insert((b.relay_key.clone(), b.sequence))
            {
                return Err(format!("batch {} is listed twice", b.batch_id));
            }
        }
        let mut submissions = BTreeMap::new();
        for s in file.submissions {
            check_paths(&s)?;
            let id = s.id;
            if submissions.insert(id, s).is_some() {
                return Err(format!("submission {id} is listed twice"));
            }
        }
        let mut quarantined = BTreeMap::new();
        for q in file.quarantined {
            let id = q.id;
            if submissions.contains_key(&id) || quarantined.insert(id, q).is_some() {
                return Err(format!("submission {id} is listed twice"));
            }
        }
        let mut batches = file.batches;
        batches.sort_by(|a, b| (&a.relay_key, a.sequence).cmp(&(&b.relay_key, b.sequence)));
        Ok(Self {
            root: root.into(),
            batches,
            submissions,
            quarantined,
        })
    }

    fn to_json(&self) -> Vec<u8> {
        let file = ArchiveFile {
            format: ARCHIVE_FORMAT.into(),
            batches: self.batches.clone(),
            submissions: self.submissions.values().cloned().collect(),
            quarantined: self.quarantined.values().cloned().collect(),
        };
        // Strings, integers and floats from our own types: cannot fail
        // (a non-finite GPS coordinate would serialise as null).
        let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Writes the index (atomically replaced, `0600`).
    pub(crate) fn save(&self) -> Result<(), Error> {
        replace_file(&self.root, &self.root.join(ARCHIVE_FILE), &self.to_json())
    }

    /// The archive directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every batch, by relay key then sequence.
    pub fn batches(&self) -> &[ArchivedBatch] {
        &self.batches
    }

    /// Every submission, in id order.
    pub fn submissions(&self) -> impl Iterator<Item = &ArchivedSubmission> {
        self.submissions.values()
    }

    /// How many submissions it holds.
    pub fn len(&self) -> usize {
        self.submissions.len()
    }

    /// Whether it holds no submission.
    pub fn is_empty(&self) -> bool {
        self.submissions.is_empty()
    }

    /// The submission with this id.
    pub fn submission(&self, id: &SubmissionId) -> Option<&ArchivedSubmission> {
        self.submissions.get(id)
    }

    /// Every quarantined submission, in id order.
    pub fn quarantined(&self) -> impl Iterator<Item = &QuarantinedSubmission> {
        self.quarantined.values()
    }

    /// The quarantined submission with this id.
    pub fn quarantined_submission(&self, id: &SubmissionId) -> Option<&QuarantinedSubmission> {
        self.quarantined.get(id)
    }

    /// Whether the archive holds this id, opened or quarantined.
    pub fn holds(&self, id: &SubmissionId) -> bool {
        self.submissions.contains_key(id) || self.quarantined.contains_key(id)
    }

    pub(crate) fn add_quarantined(&mut self, q: QuarantinedSubmission) {
        self.quarantined.insert(q.id, q);
    }

    /// Moves a quarantined submission that opened on a retry into the
    /// archive proper.
    pub(crate) fn release(&mut self, s: ArchivedSubmission) {
        self.quarantined.remove(&s.id);
        self.submissions.insert(s.id, s);
    }

    /// The batch of this relay with this id.
    pub fn batch(&self, relay_key: &str, id: &BatchId) -> Option<&ArchivedBatch> {
        self.batches
            .iter()
            .find(|b| b.relay_key == relay_key && b.batch_id == *id)
    }

    /// The last (highest-sequence) batch of this relay in the archive, as
    /// a chain state: where the relay's chain continues in this archive.
    pub fn tip(&self, relay_key: &str) -> Option<crate::state::ChainState> {
        self.batches
            .iter()
            .filter(|b| b.relay_key == relay_key)
            .max_by_key(|b| b.sequence)
            .map(|b| crate::state::ChainState {
                sequence: b.sequence,
                batch_id: b.batch_id,
                manifest_sha256: b.manifest_sha256,
            })
    }

    /// Whether a batch that verified with the pinned key is already in the
    /// archive. A batch whose id or sequence the archive holds with another
    /// manifest is refused: the relay's history forked.
    pub fn classify(&self, b: &SignedBatch) -> Result<Known, Error> {
        self.classify_manifest(b.relay_key(), b.manifest(), b.manifest_sha256(), b.path())
    }

    /// [`Archive::classify`] for a batch whose chain verified too.
    pub fn classify_verified(&self, b: &VerifiedBatch) -> Result<Known, Error> {
        self.classify_manifest(b.relay_key(), b.manifest(), b.manifest_sha256(), b.path())
    }

    fn classify_manifest(
        &self,
        relay_key: &str,
        m: &Manifest,
        manifest_sha256: Digest,
        path: &Path,
    ) -> Result<Known, Error> {
        let same = self.batches.iter().find(|b| {
            b.relay_key == relay_key && (b.batch_id == m.batch_id || b.sequence == m.sequence)
        });
        match same {
            None => Ok(Known::New),
            Some(b)
                if b.batch_id == m.batch_id
                    && b.sequence == m.sequence
                    && b.manifest_sha256 == manifest_sha256 =>
            {
                Ok(Known::Archived)
            }
            Some(b) => Err(Error::Archive(ArchiveError::BatchConflict {
                path: path.into(),
                sequence: m.sequence,
                relay: relay_fingerprint(relay_key),
                archived_sequence: b.sequence,
            })),
        }
    }

    /// Checks batches about to be opened, in order, against the archive
    /// and each other: none may already be archived or fork a relay's
    /// history, and no submission id may come with another ciphertext than
    /// the one archived (or given earlier in `batches`). Writes nothing.
    pub fn check_new(&self, batches: &[VerifiedBatch]) -> Result<(), Error> {
        let mut seen: HashMap<SubmissionId, (Digest, String, u64)> = HashMap::new();
        for b in batches {
            let m = b.manifest();
            if self.classify_manifest(b.relay_key(), m, b.manifest_sha256(), b.path())?
                == Known::Archived
            {
                return Err(Error::Archive(ArchiveError::AlreadyArchived {
                    sequence: m.sequence,
                    relay: relay_fingerprint(b.relay_key()),
                    dir: self.root.clone(),
                }));
            }
            for e in &m.submissions {
                let earlier = self
                    .submissions
                    .get(&e.id)
                    .map(|s| &s.origin)
                    .or_else(|| self.quarantined.get(&e.id).map(|q| &q.origin))
                    .map(|o| {
                        (
                            o.ciphertext_sha256,
                            relay_fingerprint(&o.relay_key),
                            o.batch_sequence,
                        )
                    })
                    .or_else(|| seen.get(&e.id).cloned());
                match earlier {
                    Some((digest, relay, sequence)) if digest != e.sha256 => {
                        return Err(Error::Archive(ArchiveError::SubmissionConflict {
                            id: e.id,
                            path: b.path().into(),
                            sequence: m.sequence,
                            archived_relay: relay,
                            archived_sequence: sequence,
                        }));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(
                            e.id,
                            (e.sha256, relay_fingerprint(b.relay_key()), m.sequence),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn add_batch(&mut self, b: ArchivedBatch) {
        self.batches.push(b);
        self.batches
            .sort_by(|a, b| (&a.relay_key, a.sequence).cmp(&(&b.relay_key, b.sequence)));
    }

    pub(crate) fn add_submission(&mut self, s: ArchivedSubmission) {
        self.submissions.insert(s.id, s);
    }

    /// Records that another batch carried an archived submission again.
    pub(crate) fn add_origin(&mut self, id: &SubmissionId, origin: Origin) {
        if let Some(s) = self.submissions.get_mut(id)
            && s.origin != origin
            && !s.also_received.contains(&origin)
        {
            s.also_received.push(origin);
        }
    }

    /// The submission a triage command names: its full id or a unique
    /// prefix of at least [`MIN_ID_PREFIX`] hex digits.
    pub fn resolve(&self, given: &str) -> Result<SubmissionId, Error> {
        let g = given.trim().to_ascii_lowercase();
        let bad = |reason: &'static str| {
            Error::Archive(ArchiveError::BadSubmissionId {
                given: given.chars().take(80).collect(),
                reason,
            })
        };
        if g.is_empty() || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("an id is made of hexadecimal digits"));
        }
        if g.len() < MIN_ID_PREFIX {
            return Err(bad("give at least 6 of its hexadecimal digits"));
        }
        if g.len() > 32 {
            return Err(bad("an id has 32 hexadecimal digits"));
        }
        // Quarantined ids resolve too (`show` and `retry` take them).
        let ids = || {
            self.submissions
                .keys()
                .chain(self.quarantined.keys())
                .filter(|id| id.to_string().starts_with(&g))
        };
        let mut hits = ids();
        match (hits.next(), hits.next()) {
            (Some(id), None) => Ok(*id),
            (None, _) => Err(Error::Archive(ArchiveError::UnknownSubmission {
                given: g,
                dir: self.root.clone(),
            })),
            (Some(_), Some(_)) => Err(Error::Archive(ArchiveError::AmbiguousSubmission {
                given: g.clone(),
                matches: ids().count(),
            })),
        }
    }

    /// Every submission as the workbench sees it (content, origin, triage),
    /// in received-day then id order.
    pub fn records(&self) -> Result<Vec<Record>, Error> {
        let triage = Triage::load(&self.root)?;
        let mut out = self
            .submissions
            .values()
            .map(|s| self.record_with(s, &triage))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| (r.received_day, r.id));
        Ok(out)
    }

    /// One submission as the workbench sees it.
    pub fn record(&self, id: &SubmissionId) -> Result<Record, Error> {
        let s = self.submissions.get(id).ok_or_else(|| {
            Error::Archive(ArchiveError::UnknownSubmission {
                given: id.to_string(),
                dir: self.root.clone(),
            })
        })?;
        self.record_with(s, &Triage::load(&self.root)?)
    }

    fn record_with(&self, s: &ArchivedSubmission, triage: &Triage) -> Result<Record, Error> {
        let dir = PathBuf::from(s.id.to_string());
        let path = self.root.join(&dir).join(TESTIMONY_ENTRY);
        let damaged = |reason: String| {
            Error::Archive(ArchiveError::DamagedSubmission {
                id: s.id,
                path: path.clone(),
                reason,
            })
        };
        let bytes = Zeroizing::new(
            read_small(&path, MAX_TESTIMONY_JSON_BYTES as u64)
                .map_err(|e| damaged(format!("cannot read it: {e}")))?,
        );
        let mut t = Testimony::from_json(&bytes).map_err(|e| damaged(e.to_string()))?;
        let entry = triage.get(&s.id);
        Ok(Record {
            id: s.id,
            origin: s.origin.clone(),
            thread: s.thread,
            received_day: s.received_day,
            language: std::mem::take(&mut t.language),
            form_version: t.form_version,
            fields: std::mem::take(&mut t.fields),
            labels: std::mem::take(&mut t.labels),
            text: std::mem::take(&mut t.text),
            attachments: s.attachments.clone(),
            status: entry.status,
            tags: entry.tags,
            dir,
        })
    }
}

/// An attachment's paths must be exactly `<id>/files/<name>` and
/// `<id>/shared/<name>` with a sanitised name: the report copies files by
/// these paths, so an edited index must not point outside the archive.
fn check_paths(s: &ArchivedSubmission) -> Result<(), String> {
    let mut written = BTreeSet::new();
    let n = s.attachments.len();
    for (i, a) in s.attachments.iter().enumerate() {
        let bad = || format!("submission {} has an attachment with an invalid path", s.id);
        if a.name.is_empty() || sanitize_file_name(&a.name) != a.name {
            return Err(bad());
        }
        // Today's form (`NN-<name>`), or the source's name as archives
        // opened before it were written.
        let on_disk = [format::disk_name(i, n, &a.name), a.name.clone()]
            .into_iter()
            .find(|d| a.original == attachment_path(&s.id, FILES_DIR, d))
            .ok_or_else(bad)?;
        if !written.insert(format::fold_key(&on_disk)) {
            return Err(format!("submission {} lists an attachment twice", s.id));
        }
        match (&a.scrubbed, &a.metadata.scrub) {
            (None, _) => {}
            (Some(p), ScrubOutcome::Scrubbed)
                if *p == attachment_path(&s.id, SHARED_DIR, &on_disk) => {}
            (Some(_), _) => return Err(bad()),
        }
    }
    Ok(())
}

/// `<id>/<dir>/<name>`, relative to the archive root.
pub(crate) fn attachment_path(id: &SubmissionId, dir: &str, name: &str) -> PathBuf {
    PathBuf::from(id.to_string()).join(dir).join(name)
}

// ------------------------------------------------------------------ triage

/// One submission's triage state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TriageEntry {
    /// Where it is in the NGO's work.
    pub status: Status,
    /// Its tags.
    pub tags: BTreeSet<String>,
}

/// `triage.json` as stored: one entry per submission whose triage state is
/// not the default (new, no tag).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriageFile {
    format: String,
    submissions: Vec<TriageLine>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriageLine {
    id: SubmissionId,
    status: Status,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    tags: BTreeSet<String>,
}

/// The triage state of an archive: status and tags per submission,
/// defaulting to new and no tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Triage {
    entries: BTreeMap<SubmissionId, TriageEntry>,
}

impl Triage {
    /// The triage file of the archive in `root`; empty if there is none.
    pub fn load(root: &Path) -> Result<Self, Error> {
        let path = root.join(TRIAGE_FILE);
        if !exists_no_follow(&path)? {
            return Ok(Self::default());
        }
        let bytes = read_small(&path, MAX_INDEX_FILE)?;
        Self::from_json(&bytes)
            .map_err(|reason| Error::Archive(ArchiveError::BadArchive { path, reason }))
    }

    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let file: TriageFile =
            serde_json::from_slice(bytes).map_err(|e| format!("it is not a triage file: {e}"))?;
        if file.format != TRIAGE_FORMAT {
            return Err(format!("unknown format version {:?}", file.format));
        }
        let mut entries = BTreeMap::new();
        for line in file.submissions {
            if let Some(bad) = line.tags.iter().find(|t| check_tag(t).is_err()) {
                return Err(format!(
                    "submission {} has an invalid tag {:?}",
                    line.id,
                    bad.chars().take(50).collect::<String>()
                ));
            }
            let entry = TriageEntry {
                status: line.status,
                tags: line.tags,
            };
            if entries.insert(line.id, entry).is_some() {
                return Err(format!("submission {} is listed twice", line.id));
            }
        }
        Ok(Self { entries })
    }

    fn to_json(&self) -> Vec<u8> {
        let file = TriageFile {
            format: TRIAGE_FORMAT.into(),
            submissions: self
                .entries
                .iter()
                .filter(|(_, e)| **e != TriageEntry::default())
                .map(|(id, e)| TriageLine {
                    id: *id,
                    status: e.status,
                    tags: e.tags.clone(),
                })
                .collect(),
        };
        // Ids, words and tags: serialising cannot fail.
        let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Writes the triage file of the archive in `root` (atomically
    /// replaced, `0600`).
    pub fn save(&self, root: &Path) -> Result<(), Error> {
        replace_file(root, &root.join(TRIAGE_FILE), &self.to_json())
    }

    /// A submission's triage state (the default if none was set).
    pub fn get(&self, id: &SubmissionId) -> TriageEntry {
        self.entries.get(id).cloned().unwrap_or_default()
    }

    /// Sets a submission's status.
    pub fn set_status(&mut self, id: SubmissionId, status: Status) {
        self.entries.entry(id).or_default().status = status;
    }

    /// Adds tags (each checked with [`check_tag`]); returns those that
    /// were new.
    pub fn add_tags(&mut self, id: SubmissionId, tags: &[String]) -> Vec<String> {
        let entry = self.entries.entry(id).or_default();
        tags.iter()
            .filter(|t| entry.tags.insert((*t).clone()))
            .cloned()
            .collect()
    }

    /// Removes tags; returns those that were there.
    pub fn remove_tags(&mut self, id: SubmissionId, tags: &[String]) -> Vec<String> {
        let entry = self.entries.entry(id).or_default();
        tags.iter()
            .filter(|t| entry.tags.remove(*t))
            .cloned()
            .collect()
    }
}

/// A tag is 1 to 40 characters of `a-z`, `0-9` and `-`, starting with a
/// letter or digit (so that it never reads as a command-line option or a
/// spreadsheet formula).
pub fn check_tag(tag: &str) -> Result<(), &'static str> {
    if tag.is_empty() {
        return Err("a tag cannot be empty");
    }
    if tag.chars().count() > MAX_TAG_CHARS {
        return Err("a tag has at most 40 characters");
    }
    if !tag
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("a tag uses only lowercase letters a-z, digits and -");
    }
    if tag.starts_with('-') {
        return Err("a tag starts with a letter or a digit");
    }
    Ok(())
}

/// Whether the report, `list` and `show` flag an attachment. Only for a
/// reason worth stopping for: its original carries GPS coordinates, a
/// name or a device identity ([`is_identifying`]), or it has no scrubbed
/// copy (a type that cannot be scrubbed, or scrubbing failed). Other
/// findings (an XMP packet, the software that wrote it) are listed, not
/// flagged; plain text with nothing found is not flagged (its copy for
/// sharing is the file as sent). A flag that is always there is a flag
/// nobody reads.
pub fn is_flagged(a: &AttachmentRecord) -> bool {
    !matches!(a.metadata.scrub, ScrubOutcome::Scrubbed)
        || a.metadata.findings.iter().any(is_identifying)
}

/// Whether a finding identifies someone: GPS coordinates, a person's
/// name, a device's make, model or serial number.
pub fn is_identifying(f: &crate::workbench::Finding) -> bool {
    use crate::workbench::Finding;
    matches!(
        f,
        Finding::Gps { .. } | Finding::Author { .. } | Finding::Device { .. }
    )
}

// ------------------------------------------------------------------ errors

/// What can go wrong with the archive and its workbench (nested in [`crate::Error::Archive`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// A directory given to a workbench command holds no archive.
    #[error(
        "{dir} is not a reviewer archive (it has no archive.json): pass the directory `reviewer open … --out DIR` opened batches into"
    )]
    NotAnArchive {
        /// The directory.
        dir: std::path::PathBuf,
    },

    /// The archive index or triage file is unreadable or broken.
    #[error(
        "the archive file {path} is unusable ({reason}): restore it from a backup of the archive (the submission folders and .custody are intact unless `reviewer verify-archive` says otherwise)"
    )]
    BadArchive {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A batch names an id or sequence the archive holds with another
    /// manifest: the relay's history forked.
    #[error(
        "batch {sequence} of relay {relay} ({path}) is not the batch {archived_sequence} already in the archive under the same id or sequence: the relay's history forked (a relay bug or an attack); nothing was written; do not trust this batch and tell the relay operator"
    )]
    BatchConflict {
        /// The batch file.
        path: std::path::PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The relay's fingerprint.
        relay: String,
        /// The sequence number of the archived batch it collides with.
        archived_sequence: u64,
    },

    /// The archive's replies file is unreadable or broken.
    #[error(
        "the replies file {path} is unusable ({reason}): restore it from the archive's backup; the replies themselves are on the relay until each source reads them"
    )]
    BadReplies {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// `open --out` names a folder with other things in it.
    #[error(
        "{dir} is not empty and is not a reviewer archive (it has no archive.json): testimony would be mixed with what is there; pass a new or empty folder, or the archive you opened batches into before"
    )]
    NotEmptyNotArchive {
        /// The directory.
        dir: std::path::PathBuf,
    },

    /// The batch is already in the archive (`reviewer open` reports it as
    /// nothing to do; the library refuses to open it twice).
    #[error("batch {sequence} of relay {relay} is already in the archive {dir}: nothing to do")]
    AlreadyArchived {
        /// Its sequence number.
        sequence: u64,
        /// The relay's fingerprint.
        relay: String,
        /// The archive directory.
        dir: std::path::PathBuf,
    },

    /// A submission id the archive holds arrives with another ciphertext.
    #[error(
        "submission {id} in batch {sequence} ({path}) has another ciphertext than the one archived from relay {archived_relay} batch {archived_sequence}: the same id with different content is a relay bug or an attack; nothing from the batch was written; keep both batch files and tell the relay operators"
    )]
    SubmissionConflict {
        /// The submission.
        id: format::SubmissionId,
        /// The batch file.
        path: std::path::PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The fingerprint of the relay it was archived from.
        archived_relay: String,
        /// The batch it was archived from.
        archived_sequence: u64,
    },

    /// A submission id on the command line is malformed.
    #[error("{given:?} is not a submission id ({reason}): `reviewer list DIR` shows the ids")]
    BadSubmissionId {
        /// What was given (shortened).
        given: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// No archived submission has this id (or prefix).
    #[error(
        "no submission in the archive {dir} has an id starting with {given}: `reviewer list {dir}` shows the ids"
    )]
    UnknownSubmission {
        /// The id or prefix given.
        given: String,
        /// The archive directory.
        dir: std::path::PathBuf,
    },

    /// An id prefix matches several submissions.
    #[error("{given} is the start of {matches} submission ids: give more of its digits")]
    AmbiguousSubmission {
        /// The prefix given.
        given: String,
        /// How many ids start with it.
        matches: usize,
    },

    /// No follow-up thread of the archive has this id (or prefix).
    #[error(
        "no follow-up thread in the archive {dir} has an id starting with {given}: `reviewer threads {dir}` lists them (a thread is known once a batch naming it is opened)"
    )]
    UnknownThread {
        /// The id or prefix given.
        given: String,
        /// The archive directory.
        dir: std::path::PathBuf,
    },

    /// A thread id prefix matches several threads.
    #[error("{given} is the start of {matches} thread ids: give more of its digits")]
    AmbiguousThread {
        /// The prefix given.
        given: String,
        /// How many ids start with it.
        matches: usize,
    },

    /// An archived submission's folder is missing or damaged.
    #[error(
        "submission {id} in the archive is damaged ({path}: {reason}): run `reviewer verify-archive` on the archive and restore the folder from a backup"
    )]
    DamagedSubmission {
        /// The submission.
        id: format::SubmissionId,
        /// The file that could not be used.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },

    /// A tag given on the command line is not allowed.
    #[error("{tag:?} is not a valid tag ({reason}), e.g. medical-workers or aktobe-2026")]
    BadTag {
        /// The tag given (shortened).
        tag: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// `verify-archive` found problems (listed on standard output).
    #[error(
        "the archive {dir} failed {problems} check{s} (listed above): restore the named files from a backup, or re-open the original batch files into a new archive; do not publish from a damaged archive", s = if *.problems == 1 { "" } else { "s" }
    )]
    ArchiveProblems {
        /// The archive directory.
        dir: std::path::PathBuf,
        /// How many problems were found.
        problems: usize,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::workbench::{FileKind, MetadataReport};

    fn sub(n: u8, attachments: Vec<AttachmentRecord>) -> ArchivedSubmission {
        ArchivedSubmission {
            id: SubmissionId::from_bytes([n; 16]),
            origin: Origin {
                relay_key: "RWkey".into(),
                batch_sequence: 1,
                batch_id: BatchId::from_bytes([9; 16]),
                manifest_sha256: Digest::of(b"m"),
                ciphertext_sha256: Digest::of(&[n]),
                epoch: 1,
            },
            also_received: Vec::new(),
            thread: None,
            received_day: "2026-11-27".parse().unwrap(),
            testimony_sha256: Digest::of(b"t"),
            attachments,
        }
    }

    fn attachment(id: u8, name: &str, scrubbed: bool) -> AttachmentRecord {
        let sid = SubmissionId::from_bytes([id; 16]);
        AttachmentRecord {
            name: name.into(),
            size: 3,
            sha256: Digest::of(b"abc"),
            original: attachment_path(&sid, FILES_DIR, name),
            scrubbed: scrubbed.then(|| attachment_path(&sid, SHARED_DIR, name)),
            metadata: MetadataReport {
                kind: FileKind::Jpeg,
                findings: Vec::new(),
                scrub: if scrubbed {
                    ScrubOutcome::Scrubbed
                } else {
                    ScrubOutcome::Unsupported { reason: "x".into() }
                },
            },
        }
    }

    fn archive(subs: Vec<ArchivedSubmission>) -> Archive {
        Archive {
            root: "/a".into(),
            batches: vec![ArchivedBatch {
                relay_key: "RWkey".into(),
                sequence: 1,
                batch_id: BatchId::from_bytes([9; 16]),
                manifest_sha256: Digest::of(b"m"),
                created_day: "2026-11-28".parse().unwrap(),
                imported_day: "2026-11-29".parse().unwrap(),
                submissions: subs.len() as u64,
            }],
            submissions: subs.into_iter().map(|s| (s.id, s)).collect(),
            quarantined: BTreeMap::new(),
        }
    }

    #[test]
    fn index_round_trips_and_refuses_broken_files() {
        let a = archive(vec![
            sub(1, vec![attachment(1, "photo.jpg", true)]),
            sub(2, vec![attachment(2, "notes.txt", false)]),
        ]);
        let json = String::from_utf8(a.to_json()).unwrap();
        assert_eq!(
            Archive::from_json(Path::new("/a"), json.as_bytes()).unwrap(),
            a
        );
        let id1 = SubmissionId::from_bytes([1; 16]).to_string();
        let id2 = SubmissionId::from_bytes([2; 16]).to_string();
        for (from, to) in [
            (ARCHIVE_FORMAT, "relay-archive/9"),
            (
                format!("{id1}/files/photo.jpg").as_str(),
                "../../etc/passwd",
            ),
            (format!("{id1}/shared/photo.jpg").as_str(), "/tmp/x"),
            (
                format!("\"id\": \"{id2}\"").as_str(),
                &format!("\"id\": \"{id1}\""),
            ),
            ("\"sequence\": 1", "\"sequence\": 0"),
            ("\"format\"", "\"extra\": 1, \"format\""),
        ] {
            let bad = json.replace(from, to);
            assert_ne!(bad, json, "{from}");
            assert!(
                Archive::from_json(Path::new("/a"), bad.as_bytes()).is_err(),
                "{to}"
            );
        }
    }

    #[test]
    fn prefixes_resolve_uniquely() {
        let mut a = archive(vec![sub(0xab, vec![]), sub(0xac, vec![])]);
        let full = SubmissionId::from_bytes([0xab; 16]);
        assert_eq!(a.resolve(&full.to_string()).unwrap(), full);
        assert_eq!(a.resolve("ababab").unwrap(), full);
        assert_eq!(a.resolve("ABABAB").unwrap(), full);
        assert!(matches!(
            a.resolve("ababa"),
            Err(Error::Archive(ArchiveError::BadSubmissionId { .. }))
        ));
        assert!(matches!(
            a.resolve("zzzzzz"),
            Err(Error::Archive(ArchiveError::BadSubmissionId { .. }))
        ));
        assert!(matches!(
            a.resolve("acacad"),
            Err(Error::Archive(ArchiveError::UnknownSubmission { .. }))
        ));
        let mut near = sub(0xab, vec![]);
        let mut bytes = [0xab; 16];
        bytes[15] = 0;
        near.id = SubmissionId::from_bytes(bytes);
        a.add_submission(near);
        assert!(matches!(
            a.resolve("ababab"),
            Err(Error::Archive(ArchiveError::AmbiguousSubmission {
                matches: 2,
                ..
            }))
        ));
    }

    #[test]
    fn tags_are_checked() {
        for ok in ["urgent", "medical-workers", "a", "2026", &"x".repeat(40)] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Urgent",
            "two words",
            "-x",
            "é",
            "a_b",
            &"x".repeat(41),
            "=cmd",
        ] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn triage_round_trips_and_drops_defaults() {
        let id = SubmissionId::from_bytes([1; 16]);
        let other = SubmissionId::from_bytes([2; 16]);
        let mut t = Triage::default();
        t.set_status(id, Status::Verified);
        assert_eq!(t.add_tags(id, &["a".into(), "b".into()]), vec!["a", "b"]);
        assert_eq!(t.add_tags(id, &["b".into()]), Vec::<String>::new());
        assert_eq!(t.remove_tags(id, &["a".into(), "z".into()]), vec!["a"]);
        t.add_tags(other, &["x".into()]);
        t.remove_tags(other, &["x".into()]);
        let back = Triage::from_json(&t.to_json()).unwrap();
        assert_eq!(back.get(&id).status, Status::Verified);
        assert_eq!(back.get(&id).tags, BTreeSet::from(["b".to_owned()]));
        assert_eq!(back.get(&other), TriageEntry::default());
        assert!(
            !String::from_utf8(t.to_json())
                .unwrap()
                .contains(&other.to_string())
        );
        let bad = String::from_utf8(t.to_json())
            .unwrap()
            .replace("\"b\"", "\"B B\"");
        assert!(Triage::from_json(bad.as_bytes()).is_err());
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        let f = relay_fingerprint("RWkey");
        assert_eq!(f.len(), 16);
        assert_eq!(f, relay_fingerprint("RWkey"));
        assert_ne!(f, relay_fingerprint("RWother"));
    }
}
