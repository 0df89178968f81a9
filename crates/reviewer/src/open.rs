//! Opening verified batches: decrypting submissions into the archive.
//!
//! A submission's plaintext is hostile input: whoever knows the reviewers'
//! public keys can seal one, and a compromised relay can seal anything. It
//! is read as `docs/format.md`, "Sealed submission", requires and nothing
//! else:
//!
//! 1. `testimony.json` (at most 4 MiB), parsed strictly;
//! 2. `files/<name>` for each attachment, exactly as `testimony.json` lists
//!    them, in that order, each with the listed size and SHA-256;
//! 3. `padding`, all zeros;
//! 4. the end of the archive (then only zeros to the end of the stream).
//!
//! Only regular-file entries exist; a link, directory, device, extension
//! header, unlisted or repeated name refuses the whole batch.
//!
//! The output directory is the reviewer's archive ([`crate::archive`]).
//! Everything is written first into a staging directory inside it
//! (`DIR/.staging-<batch id>/`), streamed (memory stays bounded whatever the
//! attachment sizes), while the ciphertext is hashed again (the batch file
//! may have changed since it was verified) and copied verbatim for the
//! chain of custody, with the batch's `manifest.json` and `manifest.sig`.
//! Each attachment gets a scrubbed copy for sharing ([`crate::scrub`]);
//! the original is never touched. Only when every submission of the batch
//! succeeded are the submission folders and custody copies renamed into
//! place, then the receipt, then the archive index is written, then the
//! batch's follow-up threads are recorded in the thread index
//! ([`crate::threads`]), then the chain state advanced. On any failure the
//! staging directory is removed and nothing stays behind. A batch that
//! contradicts the thread index (a known thread with another source
//! recipient) or the archive (a submission id it holds with another
//! ciphertext) is refused before anything is decrypted.
//!
//! A submission the archive already holds with the same ciphertext (the
//! same id in another relay's batch) is not decrypted again: the batch is
//! recorded as another origin of it, and its ciphertext kept in that
//! relay's custody directory.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use format::{
    BATCH_MANIFEST, BATCH_SIGNATURE, BatchId, Day, Digest, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES,
    MAX_TESTIMONY_JSON_BYTES, ManifestEntry, PADDING_ENTRY, RECEIPT_FORMAT, Receipt, SubmissionId,
    TESTIMONY_ENTRY, Testimony, ThreadId, batch_member_for, parse_attachment_entry_path,
};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::Error;
use crate::archive::{
    Archive, ArchivedBatch, ArchivedSubmission, FILES_DIR, Known, SHARED_DIR, attachment_path,
    custody_batch_dir, custody_ciphertext, is_flagged,
};
use crate::fsutil::{
    HashingReader, create_private_dir, create_private_file, ensure_dir, exists_no_follow, sync_dir,
    sync_tree,
};
use crate::identity::{DecryptFailure, Identity, decrypt_any};
use crate::state::StateStore;
use crate::text;
use crate::threads::ThreadIndex;
use crate::ustar::{self, TarError};
use crate::verify::{VerifiedBatch, open_batch_file};
use crate::workbench::{AttachmentRecord, FileKind, MetadataReport, Origin, ScrubOutcome};

/// Size of the copy buffer for attachments and padding.
const CHUNK: usize = 64 * 1024;
/// Name of the receipts directory inside the output directory.
pub const RECEIPTS_DIR: &str = "receipts";
/// The staged custody copies, inside the staging directory.
const STAGED_CUSTODY: &str = "custody";

/// What opening one batch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedBatch {
    /// The batch's sequence number.
    pub sequence: u64,
    /// The batch's id.
    pub batch_id: BatchId,
    /// How many submissions the batch holds.
    pub submissions: usize,
    /// The receipt file (send it with `reviewer ack`).
    pub receipt: PathBuf,
    /// The submissions that belong to a follow-up thread, with it, in
    /// manifest order (recorded in the thread index).
    pub threads: Vec<(SubmissionId, ThreadId)>,
    /// The submissions added to the archive, in manifest order.
    pub added: Vec<SubmissionId>,
    /// The submissions the archive already held with the same ciphertext
    /// (from another batch or relay), with the batch they were archived
    /// from: nothing was added for them.
    pub already_archived: Vec<(SubmissionId, Origin)>,
    /// The added submissions with attachments worth a look before sharing
    /// (identifying metadata in the original, or no scrubbed copy), with
    /// how many.
    pub flagged: Vec<(SubmissionId, usize)>,
}

/// The receipt path for a batch inside the output directory.
pub fn receipt_path(out: &Path, sequence: u64, batch_id: &BatchId) -> PathBuf {
    out.join(RECEIPTS_DIR)
        .join(format!("batch-{sequence:06}-{batch_id}.json"))
}

/// Removes a staging directory (and anything committed from it) unless
/// the batch completed.
#[derive(Debug)]
struct Staging {
    dir: PathBuf,
    committed: Vec<PathBuf>,
    done: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Best effort: a failure here leaves files the next `open` will
        // report (StagingExists / AlreadyExists), never silently reuses.
        for path in &self.committed {
            if path.is_dir() {
                let _ = fs::remove_dir_all(path);
            } else {
                let _ = fs::remove_file(path);
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Decrypts every submission of a verified batch into the archive `out`,
/// writes its receipt, records its follow-up threads in the thread index
/// in `store` and advances the chain state there.
///
/// `identities` are the reviewer's unlocked identities, one per key epoch
/// they hold; each submission is opened with whichever matches.
///
/// All or nothing: on any error (including a submission that none of the
/// identities opens, e.g. one of a retired epoch, or a thread that
/// contradicts the thread index) nothing from the batch stays in `out` and
/// the chain state and thread index are unchanged. A batch the archive
/// already holds is refused with [`Error::AlreadyArchived`].
pub fn open_batch(
    batch: VerifiedBatch,
    identities: &[Identity],
    out: &Path,
    store: &StateStore,
) -> Result<OpenedBatch, Error> {
    open_batch_with_progress(batch, identities, out, store, &mut |_| {})
}

/// [`open_batch`], calling `progress` with the number of ciphertext bytes
/// read each time a chunk has been processed (for a progress bar).
pub fn open_batch_with_progress(
    batch: VerifiedBatch,
    identities: &[Identity],
    out: &Path,
    store: &StateStore,
    progress: &mut dyn FnMut(u64),
) -> Result<OpenedBatch, Error> {
    // The batch was verified against a chain state; it must still hold.
    store.check(batch.relay_key(), batch.prior())?;
    // Its threads must agree with the batches opened before it. (A batch
    // without threads never reads the index, so a damaged index cannot
    // stop one from opening.)
    let named = if batch.manifest().threads.is_empty() {
        Vec::new()
    } else {
        ThreadIndex::load(store)?.record(&batch)?
    };

    let manifest = batch.manifest();
    let relay_key = batch.relay_key();
    let mut archive = Archive::load(out)?;
    // Not archived yet, no fork, no id with another ciphertext.
    archive.check_new(std::slice::from_ref(&batch))?;
    let origin_of = |entry: &ManifestEntry| Origin {
        relay_key: relay_key.to_owned(),
        batch_sequence: manifest.sequence,
        batch_id: manifest.batch_id,
        manifest_sha256: batch.manifest_sha256(),
        ciphertext_sha256: entry.sha256,
        epoch: entry.epoch,
    };
    // Submissions archived before (same ciphertext: check_new made sure).
    let known: HashSet<SubmissionId> = manifest
        .submissions
        .iter()
        .filter(|e| archive.submission(&e.id).is_some())
        .map(|e| e.id)
        .collect();

    let receipt = receipt_path(out, manifest.sequence, &manifest.batch_id);
    let custody_dir = custody_batch_dir(out, relay_key, manifest.sequence, &manifest.batch_id);
    ensure_dir(out)?;
    // Never overwrite: refuse before decrypting anything.
    for entry in manifest
        .submissions
        .iter()
        .filter(|e| !known.contains(&e.id))
    {
        let target = out.join(entry.id.to_string());
        if exists_no_follow(&target)? {
            return Err(Error::AlreadyExists { path: target });
        }
    }
    for path in [&receipt, &custody_dir] {
        if exists_no_follow(path)? {
            return Err(Error::AlreadyExists { path: path.clone() });
        }
    }

    let staging_dir = out.join(format!(".staging-{}", manifest.batch_id));
    create_private_dir(&staging_dir).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::StagingExists {
                path: staging_dir.clone(),
            }
        } else {
            Error::io("create directory", &staging_dir, e)
        }
    })?;
    let mut staging = Staging {
        dir: staging_dir,
        committed: Vec::new(),
        done: false,
    };

    let unpacked = decrypt_all(&batch, identities, &staging.dir, out, &known, progress)?;

    // Scrubbed copies, from originals whose ciphertext is now known to be
    // the signed one.
    let mut added = Vec::new();
    let mut flagged = Vec::new();
    for (entry, u) in manifest
        .submissions
        .iter()
        .zip(unpacked)
        .filter_map(|(e, u)| u.map(|u| (e, u)))
    {
        let attachments = scrub_all(&staging.dir.join(entry.id.to_string()), &entry.id, &u)?;
        let n = attachments.iter().filter(|a| is_flagged(a)).count();
        if n > 0 {
            flagged.push((entry.id, n));
        }
        added.push(ArchivedSubmission {
            id: entry.id,
            origin: origin_of(entry),
            also_received: Vec::new(),
            thread: entry.thread,
            received_day: entry.received_day,
            testimony_sha256: u.testimony_sha256,
            attachments,
        });
    }

    // The receipt, staged too, so that the commit below is renames only.
    let staged_receipt = staging.dir.join("receipt.json");
    let r = Receipt {
        format: RECEIPT_FORMAT.into(),
        relay_key: relay_key.into(),
        batch_id: manifest.batch_id,
        sequence: manifest.sequence,
        manifest_sha256: batch.manifest_sha256(),
    };
    write_file(&staged_receipt, &r.to_json())?;
    // Everything staged reaches the disk before anything moves into place.
    sync_tree(&staging.dir)?;

    // Commit: submission folders, custody copies, then the receipt.
    for s in &added {
        let from = staging.dir.join(s.id.to_string());
        let to = out.join(s.id.to_string());
        rename_new(&from, &to)?;
        staging.committed.push(to);
    }
    sync_dir(out)?;
    let staged_custody = staging.dir.join(STAGED_CUSTODY);
    if let Some(parent) = custody_dir.parent() {
        ensure_dir(parent)?;
        rename_new(&staged_custody.join("batch"), &custody_dir)?;
        staging.committed.push(custody_dir.clone());
        sync_dir(parent)?;
    }
    let mut ciphertext_dirs = Vec::new();
    for entry in &manifest.submissions {
        let staged = staged_custody.join(format!("{}.age", entry.id));
        if !exists_no_follow(&staged)? {
            // Already kept from an earlier batch of this relay.
            continue;
        }
        let to = custody_ciphertext(out, relay_key, &entry.id);
        if let Some(parent) = to.parent() {
            ensure_dir(parent)?;
            if !ciphertext_dirs.contains(&parent.to_path_buf()) {
                ciphertext_dirs.push(parent.to_path_buf());
            }
        }
        rename_new(&staged, &to)?;
        staging.committed.push(to);
    }
    for dir in &ciphertext_dirs {
        sync_dir(dir)?;
    }
    let receipts_dir = out.join(RECEIPTS_DIR);
    ensure_dir(&receipts_dir)?;
    rename_new(&staged_receipt, &receipt)?;
    staging.committed.push(receipt.clone());
    sync_dir(&receipts_dir)?;

    // The archive index, then the threads, then the chain. If accepting
    // fails, the index and the threads are put back: a batch not accepted
    // leaves no trace.
    let archive_before = archive.clone();
    let added_ids: Vec<SubmissionId> = added.iter().map(|s| s.id).collect();
    let mut already_archived = Vec::new();
    for entry in manifest
        .submissions
        .iter()
        .filter(|e| known.contains(&e.id))
    {
        if let Some(s) = archive.submission(&entry.id) {
            already_archived.push((entry.id, s.origin.clone()));
        }
        archive.add_origin(&entry.id, origin_of(entry));
    }
    for s in added {
        archive.add_submission(s);
    }
    archive.add_batch(ArchivedBatch {
        relay_key: relay_key.to_owned(),
        sequence: manifest.sequence,
        batch_id: manifest.batch_id,
        manifest_sha256: batch.manifest_sha256(),
        created_day: manifest.created_day,
        imported_day: Day::today(),
        submissions: manifest.submissions.len() as u64,
    });
    let restore_archive = |e: Error| {
        // Best effort: the folders go with the staging guard.
        let _ = if archive_before.batches().is_empty() {
            fs::remove_file(out.join(crate::archive::ARCHIVE_FILE)).map_err(|_| ())
        } else {
            archive_before.save().map_err(|_| ())
        };
        e
    };
    archive.save()?;
    let restore_threads = if named.is_empty() {
        None
    } else {
        let before = ThreadIndex::load(store).map_err(restore_archive)?;
        let mut after = before.clone();
        after.record(&batch).map_err(restore_archive)?;
        after.save(store).map_err(restore_archive)?;
        Some(before)
    };
    if let Err(e) = store.advance(batch.relay_key(), batch.prior(), &batch.chain_state()) {
        if let Some(before) = restore_threads {
            // Best effort: recording the batch again later changes nothing.
            let _ = before.save(store);
        }
        return Err(restore_archive(e));
    }
    staging.done = true;
    fs::remove_dir_all(&staging.dir).map_err(|e| Error::io("remove", &staging.dir, e))?;

    Ok(OpenedBatch {
        sequence: manifest.sequence,
        batch_id: manifest.batch_id,
        submissions: manifest.submissions.len(),
        receipt,
        threads: manifest
            .submissions
            .iter()
            .filter_map(|e| e.thread.map(|t| (e.id, t)))
            .collect(),
        added: added_ids,
        already_archived,
        flagged,
    })
}

/// Accepts a verified batch that the archive in `out` already holds, byte
/// for byte, without decrypting anything: records its threads and advances
/// the chain state to it. For a chain state that fell behind its archive
/// (a crash between writing the index and the state, or a new state
/// directory). Returns `false`, changing nothing, if the archive does not
/// hold this batch.
pub fn catch_up(batch: VerifiedBatch, out: &Path, store: &StateStore) -> Result<bool, Error> {
    store.check(batch.relay_key(), batch.prior())?;
    let archive = Archive::load(out)?;
    let m = batch.manifest();
    match archive.classify_verified(&batch)? {
        Known::Archived => {}
        Known::New => return Ok(false),
    }
    if !m.threads.is_empty() {
        let mut index = ThreadIndex::load(store)?;
        index.record(&batch)?;
        index.save(store)?;
    }
    store.advance(batch.relay_key(), batch.prior(), &batch.chain_state())?;
    Ok(true)
}

/// Renames `from` to `to` unless something is at `to`.
fn rename_new(from: &Path, to: &Path) -> Result<(), Error> {
    // A rename would replace an empty directory or a symlink at `to`;
    // check right before (the output directory is the reviewer's own).
    if exists_no_follow(to)? {
        return Err(Error::AlreadyExists { path: to.into() });
    }
    fs::rename(from, to).map_err(|e| Error::io("move into place", to, e))
}

/// Creates `path` (`0600`, new) and writes `bytes`. Staged files are
/// flushed to disk all together before the commit ([`sync_tree`]).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = create_private_file(path)?;
    f.write_all(bytes).map_err(|e| Error::io("write", path, e))
}

/// What decrypting one submission left in the staging directory.
struct Unpacked {
    testimony_sha256: Digest,
    /// Name, size and SHA-256 of each attachment, in order.
    attachments: Vec<(String, u64, Digest)>,
}

/// Passes ciphertext through, copying it verbatim into a custody file and
/// reporting progress. A failed write is kept for later, so that reading
/// (and hashing) goes on and the error names the custody file.
struct Custody<'a, R> {
    inner: R,
    copy: Option<(File, PathBuf)>,
    write_error: Option<io::Error>,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Custody<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some((file, _)) = &mut self.copy
                && self.write_error.is_none()
                && let Err(e) = file.write_all(&buf[..n])
            {
                self.write_error = Some(e);
            }
            (self.progress)(n as u64);
        }
        Ok(n)
    }
}

impl<R> Custody<'_, R> {
    /// Reports a write of the custody copy that failed. (Staged files are
    /// flushed to disk all together before the commit.)
    fn finish(self) -> Result<(), Error> {
        if let Some((_, path)) = self.copy
            && let Some(e) = self.write_error
        {
            return Err(Error::io("write", path, e));
        }
        Ok(())
    }
}

/// Re-reads the batch file: keeps its manifest, signature and every
/// ciphertext verbatim in `staging/custody/`, and decrypts each submission
/// not in `known` into `staging/<id>/`. Returns what each entry unpacked,
/// in manifest order (`None` for a known one).
fn decrypt_all(
    batch: &VerifiedBatch,
    identities: &[Identity],
    staging: &Path,
    out: &Path,
    known: &HashSet<SubmissionId>,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Option<Unpacked>>, Error> {
    let path = batch.path();
    let changed = || Error::ChangedSinceVerify { path: path.into() };
    let mut tar = open_batch_file(path)?;

    // The manifest must be byte for byte the one verified.
    let head = tar
        .next_entry()
        .map_err(|_| changed())?
        .ok_or_else(changed)?;
    if head.path != BATCH_MANIFEST || head.size > MAX_MANIFEST_BYTES as u64 {
        return Err(changed());
    }
    let mut manifest_bytes = Vec::new();
    tar.data()
        .read_to_end(&mut manifest_bytes)
        .map_err(|_| changed())?;
    if Digest::of(&manifest_bytes) != batch.manifest_sha256() {
        return Err(changed());
    }
    let head = tar
        .next_entry()
        .map_err(|_| changed())?
        .ok_or_else(changed)?;
    if head.path != BATCH_SIGNATURE || head.size > MAX_SIGNATURE_BYTES as u64 {
        return Err(changed());
    }
    let mut sig_bytes = Vec::new();
    tar.data()
        .read_to_end(&mut sig_bytes)
        .map_err(|_| changed())?;
    // Kept verbatim: `reviewer verify-archive` checks the signature again.
    let custody = staging.join(STAGED_CUSTODY);
    create_private_dir(&custody).map_err(|e| Error::io("create directory", &custody, e))?;
    let custody_batch = custody.join("batch");
    create_private_dir(&custody_batch)
        .map_err(|e| Error::io("create directory", &custody_batch, e))?;
    write_file(&custody_batch.join(BATCH_MANIFEST), &manifest_bytes)?;
    write_file(&custody_batch.join(BATCH_SIGNATURE), &sig_bytes)?;

    let mut unpacked = Vec::with_capacity(batch.manifest().submissions.len());
    for entry in &batch.manifest().submissions {
        let head = tar
            .next_entry()
            .map_err(|_| changed())?
            .ok_or_else(changed)?;
        if head.path != batch_member_for(&entry.id) || head.size != entry.size {
            return Err(changed());
        }
        // This relay's custody copy, unless an earlier batch of the same
        // relay already left it (the same id and ciphertext again).
        let copy = if exists_no_follow(&custody_ciphertext(out, batch.relay_key(), &entry.id))? {
            None
        } else {
            let p = custody.join(format!("{}.age", entry.id));
            Some((create_private_file(&p)?, p))
        };
        let mut reader = Custody {
            inner: tar.data(),
            copy,
            write_error: None,
            progress: &mut *progress,
        };
        let result = if known.contains(&entry.id) {
            check_ciphertext(&mut reader, entry, path).map(|()| None)
        } else {
            open_submission(&mut reader, entry, identities, staging, path).map(Some)
        };
        let written = reader.finish();
        let u = result?;
        written?;
        unpacked.push(u);
    }
    match tar.next_entry() {
        Ok(None) => Ok(unpacked),
        _ => Err(changed()),
    }
}

/// Reads a ciphertext without decrypting it, refusing it unless it is the
/// one the manifest signed.
fn check_ciphertext<R: Read>(
    ciphertext: R,
    entry: &ManifestEntry,
    batch_path: &Path,
) -> Result<(), Error> {
    match HashingReader::new(ciphertext).finish() {
        Ok((digest, len)) if digest == entry.sha256 && len == entry.size => Ok(()),
        Err(e) if e.kind() != io::ErrorKind::UnexpectedEof => Err(Error::io("read", batch_path, e)),
        _ => Err(Error::ChangedSinceVerify {
            path: batch_path.into(),
        }),
    }
}

/// Decrypts one `.age` member into `staging/<id>/`, hashing the ciphertext
/// on the way and refusing it if it is not the one the manifest signed.
fn open_submission<R: Read>(
    ciphertext: R,
    entry: &ManifestEntry,
    identities: &[Identity],
    staging: &Path,
    batch_path: &Path,
) -> Result<Unpacked, Error> {
    let mut hashing = HashingReader::new(ciphertext);
    let unpacked = unpack(
        &mut hashing,
        entry,
        identities,
        &staging.join(entry.id.to_string()),
    );

    // Whatever happened while decrypting, first make sure the ciphertext
    // was the signed one: a changed file explains any failure above.
    let failure = hashing.failure();
    let drained = hashing.finish();
    let kind = failure.or_else(|| drained.as_ref().err().map(io::Error::kind));
    match (kind, drained) {
        (Some(io::ErrorKind::UnexpectedEof), _) => {
            return Err(Error::ChangedSinceVerify {
                path: batch_path.into(),
            });
        }
        (Some(kind), _) => return Err(Error::io("read", batch_path, kind.into())),
        (None, Ok((digest, len))) if digest == entry.sha256 && len == entry.size => {}
        (None, _) => {
            return Err(Error::ChangedSinceVerify {
                path: batch_path.into(),
            });
        }
    }
    unpacked
}

/// Writes a scrubbed copy of each attachment of a decrypted submission
/// (`dest` is its staged folder) into `dest/shared/`, and returns the
/// attachments as the archive records them. The originals are only read.
fn scrub_all(dest: &Path, id: &SubmissionId, u: &Unpacked) -> Result<Vec<AttachmentRecord>, Error> {
    if u.attachments.is_empty() {
        return Ok(Vec::new());
    }
    let shared = dest.join(SHARED_DIR);
    create_private_dir(&shared).map_err(|e| Error::io("create directory", &shared, e))?;
    let mut out = Vec::with_capacity(u.attachments.len());
    let hostile = |reason| Error::HostileSubmission { id: *id, reason };
    for (name, size, sha256) in &u.attachments {
        let original = child(&dest.join(FILES_DIR), name)
            .ok_or_else(|| hostile("an attachment name is unsafe"))?;
        let copy = child(&shared, name).ok_or_else(|| hostile("an attachment name is unsafe"))?;
        let metadata = match scrubber::scrub(&original, &copy) {
            Ok(report) => report,
            // A file the scrubber chokes on must not keep the testimony
            // out of the archive: it is flagged, with no copy.
            Err(_) => MetadataReport {
                kind: scrubber::sniff_file(&original),
                findings: Vec::new(),
                scrub: ScrubOutcome::Failed {
                    reason: "the scrubber stopped with an error; no copy was made".into(),
                },
            },
        };
        let scrubbed = matches!(metadata.scrub, ScrubOutcome::Scrubbed) && copy.is_file();
        if !scrubbed && exists_no_follow(&copy)? {
            fs::remove_file(&copy).map_err(|e| Error::io("remove", &copy, e))?;
        }
        let metadata = if !scrubbed && matches!(metadata.scrub, ScrubOutcome::Scrubbed) {
            MetadataReport {
                scrub: ScrubOutcome::Failed {
                    reason: "the scrubber wrote no copy".into(),
                },
                ..metadata
            }
        } else {
            metadata
        };
        out.push(AttachmentRecord {
            name: name.clone(),
            size: *size,
            sha256: *sha256,
            original: attachment_path(id, FILES_DIR, name),
            scrubbed: scrubbed.then(|| attachment_path(id, SHARED_DIR, name)),
            metadata,
        });
    }
    if out.iter().all(|a| a.scrubbed.is_none()) {
        fs::remove_dir(&shared).map_err(|e| Error::io("remove", &shared, e))?;
    }
    Ok(out)
}

/// The one place that calls the metadata scrubber ([`crate::scrub`]).
mod scrubber {
    use super::*;

    /// Writes a scrubbed copy of `original` to `copy` and says what the
    /// original carries.
    pub(super) fn scrub(original: &Path, copy: &Path) -> Result<MetadataReport, Error> {
        crate::scrub::scrub_file(original, copy)
    }

    /// The kind of a file from its first bytes.
    pub(super) fn sniff_file(path: &Path) -> FileKind {
        let mut head = Vec::with_capacity(512);
        match File::open(path).and_then(|f| f.take(512).read_to_end(&mut head)) {
            Ok(_) => crate::scrub::sniff(&head),
            Err(_) => FileKind::Other,
        }
    }
}

/// Why reading the plaintext failed.
fn plaintext_error(id: SubmissionId, e: TarError) -> Error {
    let hostile = |reason| Error::HostileSubmission { id, reason };
    match e {
        // The age stream itself failed (a damaged chunk, or a cut that
        // the final-chunk flag reveals).
        TarError::Io(_) => Error::Undecryptable { id },
        TarError::Truncated => hostile("the plaintext archive is truncated"),
        TarError::Checksum => hostile("a tar header checksum is wrong"),
        TarError::NotUstar => hostile("a tar header is not a ustar header"),
        TarError::NotRegular => {
            hostile("an entry is not a regular file (link, directory, device or extension header)")
        }
        TarError::BadPath => hostile("an entry path is not UTF-8"),
        TarError::BadSize => hostile("a tar header has a malformed size"),
        TarError::TrailingData => hostile("data follows the end of the plaintext archive"),
    }
}

/// Decrypts and unpacks one submission into `dest` (which must not exist).
fn unpack<R: Read>(
    ciphertext: R,
    entry: &ManifestEntry,
    identities: &[Identity],
    dest: &Path,
) -> Result<Unpacked, Error> {
    let id = entry.id;
    let plaintext = decrypt_any(identities, BufReader::with_capacity(CHUNK, ciphertext)).map_err(
        |f| match f {
            // The signed manifest says which epoch sealed it: a retired
            // (or forgotten) epoch is the likely reason.
            DecryptFailure::NoMatchingKey => Error::WrongIdentity {
                id,
                epoch: entry.epoch,
                identities: identities.iter().map(|i| i.path().to_owned()).collect(),
            },
            DecryptFailure::Invalid => Error::Undecryptable { id },
        },
    )?;
    let hostile = |reason| Error::HostileSubmission { id, reason };
    let mut tar = ustar::Reader::new(plaintext);
    let next = |tar: &mut ustar::Reader<_>| tar.next_entry().map_err(|e| plaintext_error(id, e));

    create_private_dir(dest).map_err(|e| Error::io("create directory", dest, e))?;

    // 1. testimony.json
    let head = next(&mut tar)?.ok_or_else(|| hostile("the plaintext archive is empty"))?;
    if head.path != TESTIMONY_ENTRY {
        return Err(hostile("the first entry is not testimony.json"));
    }
    let size = usize::try_from(head.size)
        .ok()
        .filter(|s| *s <= MAX_TESTIMONY_JSON_BYTES)
        .ok_or_else(|| hostile("testimony.json is larger than 4 MiB"))?;
    let mut json = Zeroizing::new(vec![0u8; size]);
    read_plaintext(&mut tar.data(), &mut json, id)?;
    let testimony = Testimony::from_json(&json).map_err(|e| {
        hostile(match e {
            format::Error::UnsupportedFormat { .. } => {
                "testimony.json has a format version this build does not read"
            }
            format::Error::Invalid { .. } => {
                "testimony.json lists unsanitised or duplicate attachment names"
            }
            _ => "testimony.json is not valid (syntax, or a missing or unknown field)",
        })
    })?;
    write_file(&dest.join(TESTIMONY_ENTRY), &json)?;

    // 2. files/<name>, exactly as listed.
    let files = dest.join(FILES_DIR);
    if !testimony.attachments.is_empty() {
        create_private_dir(&files).map_err(|e| Error::io("create directory", &files, e))?;
    }
    for listed in &testimony.attachments {
        let head = next(&mut tar)?
            .ok_or_else(|| hostile("an attachment listed in testimony.json is missing"))?;
        if head.path == PADDING_ENTRY {
            return Err(hostile("an attachment listed in testimony.json is missing"));
        }
        let name = parse_attachment_entry_path(&head.path)
            .ok_or_else(|| hostile("an entry is not files/<name> with a safe name"))?;
        if name != listed.name {
            return Err(hostile(
                "an attachment entry is not the next one testimony.json lists",
            ));
        }
        if head.size != listed.size {
            return Err(hostile("an attachment's size differs from testimony.json"));
        }
        let target = child(&files, name).ok_or_else(|| hostile("an attachment name is unsafe"))?;
        let mut file = create_private_file(&target).map_err(|e| match e {
            Error::AlreadyExists { .. } => {
                hostile("two attachment names collide on this file system")
            }
            other => other,
        })?;
        let digest = copy_plaintext(&mut tar.data(), &mut file, &target, id)?;
        if digest != listed.sha256 {
            return Err(hostile(
                "an attachment's SHA-256 differs from testimony.json",
            ));
        }
    }

    // 3. padding: zeros only.
    let head = next(&mut tar)?.ok_or_else(|| hostile("the padding entry is missing"))?;
    if head.path != PADDING_ENTRY {
        return Err(hostile(
            "an entry is not listed in testimony.json (or the padding entry is missing)",
        ));
    }
    check_zeros(&mut tar.data(), id)?;

    // 4. The end; reading the rest of the stream also authenticates the
    // last age chunk.
    if next(&mut tar)?.is_some() {
        return Err(hostile("an entry follows the padding"));
    }

    let txt = text::render(&id, entry.epoch, entry.thread.as_ref(), &testimony);
    write_file(&dest.join("testimony.txt"), txt.as_bytes())?;
    Ok(Unpacked {
        testimony_sha256: Digest::of(&json),
        attachments: testimony
            .attachments
            .iter()
            .map(|a| (a.name.clone(), a.size, a.sha256))
            .collect(),
    })
}

/// `dir/name` if `name` is exactly one normal path component (defence in
/// depth: `parse_attachment_entry_path` already guarantees it).
fn child(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(c)), None) if c == name => Some(dir.join(c)),
        _ => None,
    }
}

/// Maps an error reading plaintext entry data.
fn read_error(id: SubmissionId, e: io::Error) -> Error {
    plaintext_error(id, TarError::from(e))
}

/// Fills `buf` from entry data (whose length the header fixed).
fn read_plaintext<R: Read>(data: &mut R, buf: &mut [u8], id: SubmissionId) -> Result<(), Error> {
    data.read_exact(buf).map_err(|e| read_error(id, e))
}

/// Streams entry data into `out`, returning its SHA-256.
fn copy_plaintext<R: Read>(
    data: &mut R,
    out: &mut File,
    out_path: &Path,
    id: SubmissionId,
) -> Result<Digest, Error> {
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut hasher = Sha256::new();
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(id, e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| Error::io("write", out_path, e))?;
    }
    Ok(Digest::from_hasher(hasher))
}

/// Reads entry data, refusing anything but zeros.
fn check_zeros<R: Read>(data: &mut R, id: SubmissionId) -> Result<(), Error> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(id, e)),
        };
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(Error::HostileSubmission {
                id,
                reason: "the padding is not all zeros",
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn child_accepts_only_one_component() {
        let d = Path::new("/out/files");
        assert_eq!(child(d, "a.jpg"), Some(PathBuf::from("/out/files/a.jpg")));
        for bad in ["", ".", "..", "../x", "a/b", "/etc/passwd", "./a"] {
            assert_eq!(child(d, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn zeros_and_exact_reads() {
        let id = SubmissionId::from_bytes([0; 16]);
        assert!(check_zeros(&mut &[0u8; 100_000][..], id).is_ok());
        let mut data = vec![0u8; 100_000];
        data[99_999] = 1;
        assert!(matches!(
            check_zeros(&mut &data[..], id),
            Err(Error::HostileSubmission { .. })
        ));
        let mut buf = [0u8; 3];
        assert!(read_plaintext(&mut &b"abc"[..], &mut buf, id).is_ok());
        assert!(read_plaintext(&mut &b"ab"[..], &mut buf, id).is_err());
    }

    #[test]
    fn receipt_paths() {
        let id = BatchId::from_bytes([0xab; 16]);
        assert_eq!(
            receipt_path(Path::new("/o"), 7, &id),
            PathBuf::from(format!("/o/receipts/batch-000007-{id}.json"))
        );
    }
}
