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
//! header, unlisted or repeated name breaks the format.
//!
//! # One submission never stops a batch
//!
//! What one source sent is isolated from the rest of the batch:
//!
//! - A plaintext that breaks the format is **quarantined**
//!   ([`crate::archive::QuarantinedSubmission`]): its ciphertext (checked
//!   against the signed manifest) stays in custody, the index records the
//!   reason, nothing of its content is written, and the rest of the batch
//!   opens. `reviewer retry` ([`retry`]) tries it again later.
//! - Attachments are scrubbed in child processes with memory, CPU, time
//!   and output limits ([`crate::sandbox`]). A file that trips a limit or
//!   crashes a parser gets no scrubbed copy and is flagged with the reason;
//!   its original is kept.
//! - Attachments are written under names that cannot collide on any file
//!   system (`format::disk_name`: `01-photo.jpg`), so two names that one
//!   laptop treats as one are no longer a failure at all.
//!
//! What still refuses the whole batch is what no source can cause: the
//! batch's signature, chain, manifest or a ciphertext's hash (checked
//! again here, since the file may have changed since it was verified), a
//! submission that none of the given identities can decrypt (the relay
//! sealed it: a key or epoch mistake, and no receipt may acknowledge what
//! no identity opened), and the reviewer's own disk failing.
//!
//! # Stages
//!
//! [`open_batch`] runs four stages, each consuming what the one before
//! produced, so that none can be skipped or run out of order:
//!
//! 1. **preflight** (`Plan`): the chain state still holds, the threads
//!    agree with the thread index, the archive does not hold the batch or
//!    another ciphertext for one of its ids, nothing is in the way; a
//!    staging directory left by an interrupted open of this batch is rolled
//!    back.
//! 2. **stage** (`Staged`): everything is written into
//!    `DIR/.staging-<batch id>/`, streamed (memory stays bounded whatever
//!    the attachment sizes): each ciphertext copied verbatim for the chain
//!    of custody and hashed again, each submission decrypted and unpacked
//!    or quarantined, every attachment scrubbed, the receipt; then flushed
//!    to disk.
//! 3. **commit files** (`Committed`): a journal of the moves is written
//!    and flushed, then submission folders, custody copies and the receipt
//!    are renamed into place.
//! 4. **commit indexes**: the archive index, then the thread index, then
//!    the chain state.
//!
//! An interrupted open (a kill, a crash, a power cut) blocks nothing: the
//! next `open` of the batch finds its staging directory and undoes what
//! the journal says was moved (a move is undone only where its source is
//! gone and its target is there, which is exactly a rename that happened),
//! then starts again. If the interruption came after the archive index was
//! written, the batch is archived and `open` only catches the chain state
//! up ([`catch_up`]), removing the staging directory. Decrypted staging is
//! never left for a person to find.
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
    TESTIMONY_ENTRY, Testimony, ThreadId, batch_member_for, disk_name, parse_attachment_entry_path,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::Error;
use crate::archive::{
    Archive, ArchivedBatch, ArchivedSubmission, FILES_DIR, Known, QuarantinedSubmission,
    SHARED_DIR, attachment_path, custody_batch_dir, custody_ciphertext, is_flagged,
};
use crate::fsutil::{
    HashingReader, create_private_dir, create_private_file, ensure_dir, exists_no_follow,
    read_small, sync_dir, sync_tree,
};
use crate::identity::{DecryptFailure, Identity, decrypt_any};
use crate::sandbox::{ScrubJob, Scrubber};
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
/// The journal of moves, inside the staging directory.
const JOURNAL: &str = "commit.json";
/// Ciphertexts up to this size are read into memory and decrypted by a
/// pool of workers; larger ones are streamed.
const SMALL_CIPHERTEXT: u64 = 1024 * 1024;
/// The most decrypting workers (the work is X25519, ChaCha20 and small
/// file writes; past a few cores the disk is the limit).
const MAX_DECRYPT_WORKERS: usize = 8;
/// The most a journal may hold (a batch of 100,000 submissions).
const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

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
    /// The submissions quarantined, with the reason, in manifest order.
    pub quarantined: Vec<(SubmissionId, String)>,
    /// Whether a staging directory left by an interrupted open of this
    /// batch was rolled back first.
    pub recovered: bool,
    /// Whether a demo relay made the batch (its manifest says so): nothing
    /// in it is protected, and it belongs in no real archive.
    pub demo: bool,
}

/// The receipt path for a batch inside the output directory.
pub fn receipt_path(out: &Path, sequence: u64, batch_id: &BatchId) -> PathBuf {
    out.join(RECEIPTS_DIR)
        .join(format!("batch-{sequence:06}-{batch_id}.json"))
}

/// The staging directory of a batch inside the archive.
pub fn staging_path(out: &Path, batch_id: &BatchId) -> PathBuf {
    out.join(format!(".staging-{batch_id}"))
}

/// One planned move of the commit, relative to the staging directory and
/// to the archive.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    from: PathBuf,
    to: PathBuf,
}

/// `commit.json`: the moves of a commit, written before the first one.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Journal {
    moves: Vec<Move>,
}

/// A relative path of plain components only (a journal is the reviewer's
/// own file, but it is read back from disk).
fn is_plain_relative(p: &Path) -> bool {
    p.components().count() > 0 && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Rolls back a staging directory an interrupted open left at `dir`
/// (inside the archive `out`): every move the journal lists whose source is
/// gone and whose target is there is undone (the target removed), then the
/// directory goes. Returns whether there was one.
///
/// A directory of that name that is not a plain directory (a symlink, a
/// file) is not ours to remove: [`OpenError::StagingExists`].
pub(crate) fn roll_back(out: &Path, dir: &Path) -> Result<bool, Error> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("inspect", dir, e)),
    };
    if !meta.is_dir() {
        return Err(Error::Open(OpenError::StagingExists { path: dir.into() }));
    }
    let journal = dir.join(JOURNAL);
    if exists_no_follow(&journal)? {
        // A journal cut short by the crash was never complete, and no move
        // starts before it is flushed: then nothing was moved.
        let bytes = read_small(&journal, MAX_JOURNAL_BYTES)?;
        if let Ok(j) = serde_json::from_slice::<Journal>(&bytes) {
            for m in j.moves.iter().rev() {
                if !is_plain_relative(&m.from) || !is_plain_relative(&m.to) {
                    continue;
                }
                let (from, to) = (dir.join(&m.from), out.join(&m.to));
                if !exists_no_follow(&from)? && exists_no_follow(&to)? {
                    remove_any(&to)?;
                }
            }
        }
    }
    fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
    sync_dir(out)?;
    Ok(true)
}

/// Removes a file, or a directory with everything in it (never following
/// a symlink).
fn remove_any(path: &Path) -> Result<(), Error> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io("inspect", path, e))?;
    let r = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    r.map_err(|e| Error::io("remove", path, e))
}

/// Removes a staging directory (and anything committed from it) unless
/// the batch completed: the error path of one `open` run. (A crash skips
/// this; [`roll_back`] on the next run does the same from the journal.)
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
        // Best effort: what stays is rolled back by the next `open`.
        for path in self.committed.iter().rev() {
            let _ = remove_any(path);
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
/// `scrubber` runs the metadata scrubber in child processes.
///
/// A submission whose plaintext breaks the format is quarantined and the
/// rest opens ([`OpenedBatch::quarantined`]). Otherwise all or nothing: on
/// any batch-level error (a submission that none of the identities opens,
/// e.g. one of a retired epoch, a thread that contradicts the thread index,
/// a ciphertext changed since verification) nothing from the batch stays in
/// `out` and the chain state and thread index are unchanged. A batch the
/// archive already holds is refused with [`ArchiveError::AlreadyArchived`](crate::archive::ArchiveError::AlreadyArchived).
pub fn open_batch(
    batch: VerifiedBatch,
    identities: &[Identity],
    scrubber: &Scrubber,
    out: &Path,
    store: &StateStore,
) -> Result<OpenedBatch, Error> {
    open_batch_with_progress(batch, identities, scrubber, out, store, &mut |_| {})
}

/// [`open_batch`], calling `progress` with the number of ciphertext bytes
/// read each time a chunk has been processed (for a progress bar).
pub fn open_batch_with_progress(
    batch: VerifiedBatch,
    identities: &[Identity],
    scrubber: &Scrubber,
    out: &Path,
    store: &StateStore,
    progress: &mut dyn FnMut(u64),
) -> Result<OpenedBatch, Error> {
    let from_demo = batch.manifest().demo;
    let plan = preflight(batch, out, store)?;
    let staged = stage(plan, identities, scrubber, progress).map_err(|e| match e {
        // Production identities cannot open a demo relay's batch: say so,
        // rather than only blame the key epochs.
        Error::Open(OpenError::WrongIdentity {
            id,
            epoch,
            identities,
            ..
        }) => Error::Open(OpenError::WrongIdentity {
            id,
            epoch,
            identities,
            demo: from_demo,
        }),
        e => e,
    })?;
    let committed = commit_files(staged)?;
    commit_indexes(committed, store)
}

/// Stage 1: what opening a batch will do, checked before anything is
/// decrypted.
#[derive(Debug)]
struct Plan {
    batch: VerifiedBatch,
    out: PathBuf,
    archive: Archive,
    /// Submissions the archive holds already (same ciphertext:
    /// `check_new` made sure), opened or quarantined.
    known: HashSet<SubmissionId>,
    /// Whether the batch names threads (the thread index is recorded).
    has_threads: bool,
    receipt: PathBuf,
    custody_dir: PathBuf,
    staging: Staging,
    recovered: bool,
}

fn preflight(batch: VerifiedBatch, out: &Path, store: &StateStore) -> Result<Plan, Error> {
    // The batch was verified against a chain state; it must still hold.
    store.check(batch.relay_key(), batch.prior())?;
    // Its threads must agree with the batches opened before it. (A batch
    // without threads never reads the index, so a damaged index cannot
    // stop one from opening.)
    let has_threads = !batch.manifest().threads.is_empty();
    if has_threads {
        ThreadIndex::load(store)?.record(&batch)?;
    }
    let archive = Archive::load(out)?;
    // Not archived yet, no fork, no id with another ciphertext.
    archive.check_new(std::slice::from_ref(&batch))?;
    let manifest = batch.manifest();
    let known: HashSet<SubmissionId> = manifest
        .submissions
        .iter()
        .filter(|e| archive.holds(&e.id))
        .map(|e| e.id)
        .collect();

    ensure_dir(out)?;
    // An interrupted open of this batch: undo it, then start again.
    let staging_dir = staging_path(out, &manifest.batch_id);
    let recovered = roll_back(out, &staging_dir)?;

    let receipt = receipt_path(out, manifest.sequence, &manifest.batch_id);
    let custody_dir = custody_batch_dir(
        out,
        batch.relay_key(),
        manifest.sequence,
        &manifest.batch_id,
    );
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
    create_private_dir(&staging_dir).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::Open(OpenError::StagingExists {
                path: staging_dir.clone(),
            })
        } else {
            Error::io("create directory", &staging_dir, e)
        }
    })?;
    Ok(Plan {
        out: out.into(),
        archive,
        known,
        has_threads,
        receipt,
        custody_dir,
        staging: Staging {
            dir: staging_dir,
            committed: Vec::new(),
            done: false,
        },
        recovered,
        batch,
    })
}

/// What one manifest entry came to in staging.
#[derive(Debug)]
enum Outcome {
    /// Already in the archive: only its ciphertext was checked.
    Known,
    /// Decrypted into `staging/<id>/`, attachments scrubbed.
    Added(ArchivedSubmission),
    /// Its plaintext broke the format: nothing of it staged.
    Quarantined(QuarantinedSubmission),
}

/// Stage 2: everything the batch adds, staged and flushed.
#[derive(Debug)]
struct Staged {
    plan: Plan,
    outcomes: Vec<Outcome>,
    staged_receipt: PathBuf,
}

/// The origin of a manifest entry of this batch.
fn origin_of(batch: &VerifiedBatch, entry: &ManifestEntry) -> Origin {
    let m = batch.manifest();
    Origin {
        relay_key: batch.relay_key().to_owned(),
        batch_sequence: m.sequence,
        batch_id: m.batch_id,
        manifest_sha256: batch.manifest_sha256(),
        ciphertext_sha256: entry.sha256,
        epoch: entry.epoch,
    }
}

fn stage(
    plan: Plan,
    identities: &[Identity],
    scrubber: &Scrubber,
    progress: &mut dyn FnMut(u64),
) -> Result<Staged, Error> {
    let batch = &plan.batch;
    let staging = &plan.staging.dir;
    let unpacked = decrypt_all(batch, identities, staging, &plan.out, &plan.known, progress)?;

    // Scrubbed copies, from originals whose ciphertext is now known to be
    // the signed one, all attachments of the batch at once in children.
    let mut jobs = Vec::new();
    for (entry, u) in batch.manifest().submissions.iter().zip(&unpacked) {
        if let Unpack::Opened(u) = u {
            jobs.extend(scrub_jobs(&staging.join(entry.id.to_string()), u)?);
        }
    }
    let mut reports = scrubber.scrub_all(&jobs).into_iter();

    let today = Day::today();
    let mut outcomes = Vec::with_capacity(unpacked.len());
    for (entry, u) in batch.manifest().submissions.iter().zip(unpacked) {
        outcomes.push(match u {
            Unpack::Known => Outcome::Known,
            Unpack::Quarantined(reason) => Outcome::Quarantined(QuarantinedSubmission {
                id: entry.id,
                origin: origin_of(batch, entry),
                thread: entry.thread,
                received_day: entry.received_day,
                reason,
                tried_day: today,
            }),
            Unpack::Opened(u) => {
                let dest = staging.join(entry.id.to_string());
                let attachments = records(&dest, &entry.id, &u, &mut reports)?;
                Outcome::Added(ArchivedSubmission {
                    id: entry.id,
                    origin: origin_of(batch, entry),
                    also_received: Vec::new(),
                    thread: entry.thread,
                    received_day: entry.received_day,
                    testimony_sha256: u.testimony_sha256,
                    attachments,
                })
            }
        });
    }

    // The receipt, staged too, so that the commit is renames only. It is
    // written for a batch with quarantined submissions as well: their
    // ciphertext is in custody here, so the relay may delete it.
    let manifest = batch.manifest();
    let staged_receipt = staging.join("receipt.json");
    let r = Receipt {
        format: RECEIPT_FORMAT.into(),
        relay_key: batch.relay_key().into(),
        batch_id: manifest.batch_id,
        sequence: manifest.sequence,
        manifest_sha256: batch.manifest_sha256(),
    };
    write_file(&staged_receipt, &r.to_json())?;
    // Everything staged reaches the disk before anything moves into place.
    sync_tree(staging)?;
    Ok(Staged {
        plan,
        outcomes,
        staged_receipt,
    })
}

/// Stage 3: the files in place.
#[derive(Debug)]
struct Committed {
    plan: Plan,
    outcomes: Vec<Outcome>,
}

fn commit_files(staged: Staged) -> Result<Committed, Error> {
    let Staged {
        mut plan,
        outcomes,
        staged_receipt,
    } = staged;
    let out = plan.out.clone();
    let staging = plan.staging.dir.clone();
    let relay_key = plan.batch.relay_key().to_owned();
    let rel = |p: &Path, base: &Path| p.strip_prefix(base).map(Path::to_path_buf);

    // Every move, in order: submission folders, the custody batch
    // directory, custody ciphertexts, the receipt.
    let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    for o in &outcomes {
        if let Outcome::Added(s) = o {
            moves.push((staging.join(s.id.to_string()), out.join(s.id.to_string())));
        }
    }
    let staged_custody = staging.join(STAGED_CUSTODY);
    moves.push((staged_custody.join("batch"), plan.custody_dir.clone()));
    for entry in &plan.batch.manifest().submissions {
        let from = staged_custody.join(format!("{}.age", entry.id));
        // Absent: already kept from an earlier batch of this relay.
        if exists_no_follow(&from)? {
            moves.push((from, custody_ciphertext(&out, &relay_key, &entry.id)));
        }
    }
    moves.push((staged_receipt, plan.receipt.clone()));

    // The journal first, flushed: a crash from here on is rolled back by
    // the next open from it.
    let journal = Journal {
        moves: moves
            .iter()
            .filter_map(|(f, t)| {
                Some(Move {
                    from: rel(f, &staging).ok()?,
                    to: rel(t, &out).ok()?,
                })
            })
            .collect(),
    };
    let journal_path = staging.join(JOURNAL);
    let bytes = serde_json::to_vec(&journal).unwrap_or_default();
    let mut f = create_private_file(&journal_path)?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("write", &journal_path, e))?;
    drop(f);
    sync_dir(&staging)?;

    // A handful of parents (the archive, the custody directories, the
    // receipts): each made and flushed once, not once per move.
    let mut parents: Vec<PathBuf> = Vec::new();
    for (from, to) in &moves {
        if let Some(parent) = to.parent()
            && !parents.iter().any(|p| p == parent)
        {
            ensure_dir(parent)?;
            parents.push(parent.to_path_buf());
        }
        rename_new(from, to)?;
        plan.staging.committed.push(to.clone());
    }
    for dir in &parents {
        sync_dir(dir)?;
    }
    Ok(Committed { plan, outcomes })
}

/// Stage 4: the archive index, then the threads, then the chain. If
/// accepting fails, the index and the threads are put back: a batch not
/// accepted leaves no trace.
fn commit_indexes(committed: Committed, store: &StateStore) -> Result<OpenedBatch, Error> {
    let Committed { mut plan, outcomes } = committed;
    let store_batch = &plan.batch;
    let manifest = store_batch.manifest();
    let out = plan.out.clone();
    let archive_before = plan.archive.clone();
    let mut archive = plan.archive.clone();
    let mut added = Vec::new();
    let mut flagged = Vec::new();
    let mut quarantined = Vec::new();
    let mut already_archived = Vec::new();
    for (entry, o) in manifest.submissions.iter().zip(outcomes) {
        match o {
            Outcome::Known => {
                if let Some(s) = archive.submission(&entry.id) {
                    already_archived.push((entry.id, s.origin.clone()));
                } else if let Some(q) = archive.quarantined_submission(&entry.id) {
                    already_archived.push((entry.id, q.origin.clone()));
                }
                archive.add_origin(&entry.id, origin_of(store_batch, entry));
            }
            Outcome::Added(s) => {
                let n = s.attachments.iter().filter(|a| is_flagged(a)).count();
                if n > 0 {
                    flagged.push((s.id, n));
                }
                added.push(s.id);
                archive.add_submission(s);
            }
            Outcome::Quarantined(q) => {
                quarantined.push((q.id, q.reason.clone()));
                archive.add_quarantined(q);
            }
        }
    }
    archive.add_batch(ArchivedBatch {
        relay_key: store_batch.relay_key().to_owned(),
        sequence: manifest.sequence,
        batch_id: manifest.batch_id,
        manifest_sha256: store_batch.manifest_sha256(),
        created_day: manifest.created_day,
        imported_day: Day::today(),
        submissions: manifest.submissions.len() as u64,
    });
    let restore_archive = |e: Error| {
        // Best effort: the folders go with the staging guard.
        let _ = if archive_before.batches().is_empty() && archive_before.is_empty() {
            fs::remove_file(out.join(crate::archive::ARCHIVE_FILE)).map_err(|_| ())
        } else {
            archive_before.save().map_err(|_| ())
        };
        e
    };
    archive.save()?;
    let restore_threads = if plan.has_threads {
        let before = ThreadIndex::load(store).map_err(restore_archive)?;
        let mut after = before.clone();
        after.record(store_batch).map_err(restore_archive)?;
        after.save(store).map_err(restore_archive)?;
        Some(before)
    } else {
        None
    };
    if let Err(e) = store.advance(
        store_batch.relay_key(),
        store_batch.prior(),
        &store_batch.chain_state(),
    ) {
        if let Some(before) = restore_threads {
            // Best effort: recording the batch again later changes nothing.
            let _ = before.save(store);
        }
        return Err(restore_archive(e));
    }
    plan.staging.done = true;
    fs::remove_dir_all(&plan.staging.dir).map_err(|e| Error::io("remove", &plan.staging.dir, e))?;

    Ok(OpenedBatch {
        sequence: manifest.sequence,
        batch_id: manifest.batch_id,
        submissions: manifest.submissions.len(),
        receipt: plan.receipt.clone(),
        threads: manifest
            .submissions
            .iter()
            .filter_map(|e| e.thread.map(|t| (e.id, t)))
            .collect(),
        added,
        already_archived,
        flagged,
        quarantined,
        recovered: plan.recovered,
        demo: manifest.demo,
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

/// Removes the staging directory of a batch the archive index already
/// holds: an open interrupted after its index was written left it, and
/// everything in it was committed (nothing is rolled back). Returns whether
/// there was one.
pub fn clear_archived_staging(out: &Path, batch_id: &BatchId) -> Result<bool, Error> {
    let dir = staging_path(out, batch_id);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
            sync_dir(out)?;
            Ok(true)
        }
        Ok(_) => Err(Error::Open(OpenError::StagingExists { path: dir })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("inspect", &dir, e)),
    }
}

// ------------------------------------------------------------ open_batches

/// Called as `open_batches` goes, so that a CLI can print each batch as it
/// opens (and a batch that fails later does not hide those before it).
pub trait OpenProgress {
    /// Before the first decryption: the ciphertext bytes to read in all.
    fn start(&mut self, _total: u64) {}
    /// Ciphertext bytes read since the last call.
    fn advance(&mut self, _bytes: u64) {}
    /// A batch the archive already held (nothing decrypted); `caught_up`
    /// when the chain state now records it.
    fn already_archived(&mut self, _sequence: u64, _relay: &str, _caught_up: bool) {}
    /// A batch opened into the archive.
    fn opened(&mut self, _batch: &OpenedBatch) {}
}

/// What [`open_batches`] did, batch by batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Batches the archive already held: sequence, relay fingerprint, and
    /// whether the chain state caught up with the archive.
    pub already_archived: Vec<(u64, String, bool)>,
    /// The batches opened, in chain order.
    pub opened: Vec<OpenedBatch>,
}

/// Verifies and opens batch files into the archive `out`, as `reviewer
/// open` does:
///
/// 1. every file's signature against the pinned `key`;
/// 2. those the archive already holds are set aside (a leftover staging
///    directory of theirs removed, the chain state caught up with the
///    archive if it fell behind): opening one again is harmless;
/// 3. the rest: their chain from the state in `store` (`start_at` for a
///    relay with no history), their threads against the thread index,
///    their submissions against the archive, all before anything is
///    decrypted;
/// 4. `unlock` is called (once) for the identities, then each batch is
///    opened in chain order ([`open_batch`]).
///
/// A batch that fails stops the run with its error; the batches opened
/// before it stay opened (each is all or nothing, and `progress` has
/// reported them).
#[allow(clippy::too_many_arguments)]
pub fn open_batches(
    paths: &[PathBuf],
    key: &crate::verify::PinnedKey,
    store: &StateStore,
    start_at: Option<u64>,
    out: &Path,
    unlock: &mut dyn FnMut() -> Result<Vec<Identity>, Error>,
    scrubber: &Scrubber,
    progress: &mut dyn OpenProgress,
) -> Result<OpenReport, Error> {
    use crate::verify;
    let archive = Archive::load_for_open(out)?;
    // The archive's state is derived from the archive where it is missing
    // (an archive made before the state moved in, or `.state` deleted).
    store.seed(key.as_base64(), archive.tip(key.as_base64()))?;
    let mut report = OpenReport::default();
    let mut known = Vec::new();
    let mut fresh = Vec::new();
    for path in paths {
        let b = verify::verify_signed(path, key)?;
        match archive.classify(&b)? {
            Known::Archived => known.push(b),
            Known::New => fresh.push(b),
        }
    }
    // Only batches with threads read the thread index (a batch without
    // them never does, so a damaged index cannot stop it).
    if known
        .iter()
        .chain(&fresh)
        .any(|b| !b.manifest().threads.is_empty())
    {
        crate::threads::ThreadIndex::ensure(&archive, store)?;
    }
    known.sort_by_key(verify::SignedBatch::sequence);
    for b in known {
        let (sequence, relay) = (
            b.sequence(),
            crate::archive::relay_fingerprint(b.relay_key()),
        );
        clear_archived_staging(out, &b.manifest().batch_id)?;
        // A chain state that fell behind the archive (a crash between the
        // two, or a new state directory) catches up with it.
        let anchor = store.anchor(key.as_base64(), None)?;
        let caught_up = match verify::verify_chain(vec![b], &anchor) {
            Ok(mut v) => match v.pop() {
                Some(v) => catch_up(v, out, store)?,
                None => false,
            },
            Err(_) => false,
        };
        progress.already_archived(sequence, &relay, caught_up);
        report.already_archived.push((sequence, relay, caught_up));
    }
    if fresh.is_empty() {
        return Ok(report);
    }
    let anchor = store.anchor(key.as_base64(), start_at)?;
    let verified = verify::verify_chain(fresh, &anchor).map_err(|e| e.in_archive(out))?;
    crate::threads::check_batches(store, &verified)?;
    archive.check_new(&verified)?;
    let identities = unlock()?;
    let total: u64 = verified
        .iter()
        .flat_map(|b| &b.manifest().submissions)
        .map(|e| e.size)
        .sum();
    progress.start(total);
    for batch in verified {
        let opened =
            open_batch_with_progress(batch, &identities, scrubber, out, store, &mut |n| {
                progress.advance(n)
            })?;
        progress.opened(&opened);
        report.opened.push(opened);
    }
    Ok(report)
}

// ------------------------------------------------------------------- retry

/// What a successful [`retry`] added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    /// The submission, now in the archive.
    pub id: SubmissionId,
    /// How many of its attachments are flagged.
    pub flagged: usize,
}

/// Opens a quarantined submission again from its custody ciphertext (after
/// checking it against the SHA-256 the signed manifest gave): with a newer
/// reviewer, or higher scrubbing limits. On success it moves into the
/// archive; otherwise it stays quarantined with the new reason
/// ([`OpenError::StillQuarantined`]).
pub fn retry(
    out: &Path,
    id: &SubmissionId,
    identities: &[Identity],
    scrubber: &Scrubber,
) -> Result<Retried, Error> {
    let mut archive = Archive::open(out)?;
    let q = archive.quarantined_submission(id).cloned().ok_or_else(|| {
        Error::Open(OpenError::NotQuarantined {
            id: *id,
            dir: out.into(),
        })
    })?;
    let ciphertext = custody_ciphertext(out, &q.origin.relay_key, id);
    let damaged = |reason: String| {
        Error::Archive(crate::archive::ArchiveError::DamagedSubmission {
            id: *id,
            path: ciphertext.clone(),
            reason,
        })
    };
    // A folder of this id can only be left by an interrupted retry (the
    // index still says quarantined): it goes.
    let target = out.join(id.to_string());
    if exists_no_follow(&target)? {
        remove_any(&target)?;
    }
    let staging_dir = out.join(format!(".staging-retry-{id}"));
    roll_back(out, &staging_dir)?;
    create_private_dir(&staging_dir).map_err(|e| Error::io("create directory", &staging_dir, e))?;
    let mut staging = Staging {
        dir: staging_dir,
        committed: Vec::new(),
        done: false,
    };
    let file = File::open(&ciphertext).map_err(|e| damaged(format!("cannot read it: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| damaged(format!("cannot read it: {e}")))?
        .len();
    let entry = ManifestEntry {
        id: *id,
        received_day: q.received_day,
        epoch: q.origin.epoch,
        size,
        sha256: q.origin.ciphertext_sha256,
        thread: q.thread,
    };
    let unpack = open_submission(file, &entry, identities, &staging.dir, &ciphertext).map_err(
        |e| match e {
            Error::Open(OpenError::ChangedSinceVerify { .. }) => {
                damaged("it is not the ciphertext the signed manifest lists".into())
            }
            other => other,
        },
    )?;
    let u = match unpack {
        Unpack::Opened(u) => u,
        Unpack::Known => return Err(damaged("unexpected state".into())),
        Unpack::Quarantined(reason) => {
            archive.add_quarantined(QuarantinedSubmission {
                reason: reason.clone(),
                tried_day: Day::today(),
                ..q
            });
            archive.save()?;
            return Err(Error::Open(OpenError::StillQuarantined { id: *id, reason }));
        }
    };
    let dest = staging.dir.join(id.to_string());
    let jobs = scrub_jobs(&dest, &u)?;
    let mut reports = scrubber.scrub_all(&jobs).into_iter();
    let attachments = records(&dest, id, &u, &mut reports)?;
    sync_tree(&staging.dir)?;
    let flagged = attachments.iter().filter(|a| is_flagged(a)).count();
    rename_new(&dest, &target)?;
    staging.committed.push(target.clone());
    sync_dir(out)?;
    archive.release(ArchivedSubmission {
        id: *id,
        origin: q.origin,
        also_received: Vec::new(),
        thread: q.thread,
        received_day: q.received_day,
        testimony_sha256: u.testimony_sha256,
        attachments,
    });
    archive.save()?;
    staging.done = true;
    fs::remove_dir_all(&staging.dir).map_err(|e| Error::io("remove", &staging.dir, e))?;
    Ok(Retried { id: *id, flagged })
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
#[derive(Debug)]
struct Unpacked {
    testimony_sha256: Digest,
    /// Each attachment, in order.
    attachments: Vec<Unpacked1>,
}

/// One attachment as unpacked.
#[derive(Debug)]
struct Unpacked1 {
    /// The source's name (sanitised), as `testimony.json` lists it.
    name: String,
    /// The name it was written under (`format::disk_name`).
    disk: String,
    size: u64,
    sha256: Digest,
}

/// What became of one manifest entry while decrypting.
#[derive(Debug)]
enum Unpack {
    /// Already archived: its ciphertext was checked, nothing decrypted.
    Known,
    /// Decrypted into `staging/<id>/`.
    Opened(Unpacked),
    /// The plaintext broke the format: nothing of it kept, and why.
    Quarantined(String),
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
/// in manifest order.
fn decrypt_all(
    batch: &VerifiedBatch,
    identities: &[Identity],
    staging: &Path,
    out: &Path,
    known: &HashSet<SubmissionId>,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Unpack>, Error> {
    let path = batch.path();
    let changed = || Error::Open(OpenError::ChangedSinceVerify { path: path.into() });
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

    // Small ciphertexts (most of a batch: text and a photo or two) are read
    // into memory here, in order, copied to custody and handed to a pool of
    // workers that hash, decrypt and unpack them in parallel, each into its
    // own folder; large ones are streamed here, one at a time, as before.
    // Memory: at most `2 × workers` small ciphertexts wait in the queue.
    let workers = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, MAX_DECRYPT_WORKERS);
    let entries = &batch.manifest().submissions;
    let mut unpacked: Vec<Option<Result<Unpack, Error>>> = Vec::new();
    unpacked.resize_with(entries.len(), || None);
    let results = std::sync::Mutex::new(unpacked);
    // A job: the entry's place, its ciphertext, and where its custody copy
    // goes (none if an earlier batch of this relay kept it).
    type Job = (usize, Vec<u8>, Option<PathBuf>);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(2 * workers);
    let rx = std::sync::Mutex::new(rx);
    let read_result = std::thread::scope(|scope| -> Result<(), Error> {
        // Owned here: when reading ends (or fails), the queue closes and
        // the workers stop after what is queued.
        let tx = tx;
        for _ in 0..workers {
            let (rx, results) = (&rx, &results);
            scope.spawn(move || {
                loop {
                    // The lock is held only to take the next job.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((i, ciphertext, copy)) = job else {
                        break;
                    };
                    // The custody copy first: it is kept whatever the
                    // content turns out to be.
                    let kept = copy.map_or(Ok(()), |p| write_file(&p, &ciphertext));
                    let r = kept.and_then(|()| {
                        open_submission(&ciphertext[..], &entries[i], identities, staging, path)
                    });
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
        for (i, entry) in entries.iter().enumerate() {
            let head = tar
                .next_entry()
                .map_err(|_| changed())?
                .ok_or_else(changed)?;
            if head.path != batch_member_for(&entry.id) || head.size != entry.size {
                return Err(changed());
            }
            // This relay's custody copy, unless an earlier batch of the same
            // relay already left it (the same id and ciphertext again).
            let copy_path =
                if exists_no_follow(&custody_ciphertext(out, batch.relay_key(), &entry.id))? {
                    None
                } else {
                    Some(custody.join(format!("{}.age", entry.id)))
                };
            let parallel = !known.contains(&entry.id) && entry.size <= SMALL_CIPHERTEXT;
            if parallel {
                // Read here in order; copied to custody by the worker.
                let mut ciphertext = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
                let read = tar.data().read_to_end(&mut ciphertext);
                match read {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(changed()),
                    Err(e) => return Err(Error::io("read", path, e)),
                }
                progress(ciphertext.len() as u64);
                // A worker that stopped (it cannot, but then) drops the job:
                // the missing result below refuses the batch.
                let _ = tx.send((i, ciphertext, copy_path));
                continue;
            }
            let copy = match copy_path {
                Some(p) => Some((create_private_file(&p)?, p)),
                None => None,
            };
            let mut reader = Custody {
                inner: tar.data(),
                copy,
                write_error: None,
                progress: &mut *progress,
            };
            let result = if known.contains(&entry.id) {
                check_ciphertext(&mut reader, entry, path).map(|()| Unpack::Known)
            } else {
                open_submission(&mut reader, entry, identities, staging, path)
            };
            let written = reader.finish();
            let u = result?;
            written?;
            if let Ok(mut all) = results.lock() {
                all[i] = Some(Ok(u));
            }
        }
        drop(tx);
        Ok(())
    });
    read_result?;
    match tar.next_entry() {
        Ok(None) => {}
        _ => return Err(changed()),
    }
    // In manifest order: the first error wins.
    let all = results.into_inner().unwrap_or_else(|p| p.into_inner());
    all.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(changed())))
        .collect()
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
        _ => Err(Error::Open(OpenError::ChangedSinceVerify {
            path: batch_path.into(),
        })),
    }
}

/// Decrypts one `.age` member into `staging/<id>/`, hashing the ciphertext
/// on the way and refusing it if it is not the one the manifest signed.
/// A plaintext that breaks the format is quarantined: its staged folder is
/// removed and the reason returned.
fn open_submission<R: Read>(
    ciphertext: R,
    entry: &ManifestEntry,
    identities: &[Identity],
    staging: &Path,
    batch_path: &Path,
) -> Result<Unpack, Error> {
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
            return Err(Error::Open(OpenError::ChangedSinceVerify {
                path: batch_path.into(),
            }));
        }
        (Some(kind), _) => return Err(Error::io("read", batch_path, kind.into())),
        (None, Ok((digest, len))) if digest == entry.sha256 && len == entry.size => {}
        (None, _) => {
            return Err(Error::Open(OpenError::ChangedSinceVerify {
                path: batch_path.into(),
            }));
        }
    }
    quarantine_hostile(unpacked, &staging.join(entry.id.to_string()))
}

/// Turns a plaintext that breaks the format into a quarantine (removing
/// whatever of it was staged in `dest`); every other error stays one.
fn quarantine_hostile(unpacked: Result<Unpacked, Error>, dest: &Path) -> Result<Unpack, Error> {
    match unpacked {
        Ok(u) => Ok(Unpack::Opened(u)),
        Err(Error::Open(OpenError::HostileSubmission { reason, .. })) => {
            if exists_no_follow(dest)? {
                remove_any(dest)?;
            }
            Ok(Unpack::Quarantined(reason.to_owned()))
        }
        Err(e) => Err(e),
    }
}

/// The scrubbing jobs for a decrypted submission (`dest` is its staged
/// folder): each original into `dest/shared/`, which this creates.
fn scrub_jobs(dest: &Path, u: &Unpacked) -> Result<Vec<ScrubJob>, Error> {
    if u.attachments.is_empty() {
        return Ok(Vec::new());
    }
    let shared = dest.join(SHARED_DIR);
    create_private_dir(&shared).map_err(|e| Error::io("create directory", &shared, e))?;
    let files = dest.join(FILES_DIR);
    Ok(u.attachments
        .iter()
        .map(|a| ScrubJob {
            original: files.join(&a.disk),
            copy: shared.join(&a.disk),
        })
        .collect())
}

/// The attachments of a decrypted submission as the archive records them,
/// taking their scrub reports (in order) from `reports`. Removes `shared/`
/// if no copy was made.
fn records(
    dest: &Path,
    id: &SubmissionId,
    u: &Unpacked,
    reports: &mut impl Iterator<Item = MetadataReport>,
) -> Result<Vec<AttachmentRecord>, Error> {
    let mut out = Vec::with_capacity(u.attachments.len());
    let shared = dest.join(SHARED_DIR);
    for a in &u.attachments {
        let copy = shared.join(&a.disk);
        let metadata = reports.next().unwrap_or_else(|| MetadataReport {
            kind: FileKind::Other,
            findings: Vec::new(),
            scrub: ScrubOutcome::Failed {
                reason: "the scrubber did not run".into(),
            },
        });
        let scrubbed = matches!(metadata.scrub, ScrubOutcome::Scrubbed)
            && fs::symlink_metadata(&copy).is_ok_and(|m| m.is_file());
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
            name: a.name.clone(),
            size: a.size,
            sha256: a.sha256,
            original: attachment_path(id, FILES_DIR, &a.disk),
            scrubbed: scrubbed.then(|| attachment_path(id, SHARED_DIR, &a.disk)),
            metadata,
        });
    }
    if exists_no_follow(&shared)? && out.iter().all(|a| a.scrubbed.is_none()) {
        fs::remove_dir(&shared).map_err(|e| Error::io("remove", &shared, e))?;
    }
    Ok(out)
}

/// Why reading the plaintext failed.
fn plaintext_error(id: SubmissionId, e: TarError) -> Error {
    let hostile = |reason| Error::Open(OpenError::HostileSubmission { id, reason });
    match e {
        // The age stream itself failed (a damaged chunk, or a cut that
        // the final-chunk flag reveals).
        TarError::Io(_) => Error::Open(OpenError::Undecryptable { id }),
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
            DecryptFailure::NoMatchingKey => Error::Open(OpenError::WrongIdentity {
                id,
                epoch: entry.epoch,
                identities: identities.iter().map(|i| i.path().to_owned()).collect(),
                demo: false,
            }),
            DecryptFailure::Invalid => Error::Open(OpenError::Undecryptable { id }),
        },
    )?;
    let hostile = |reason| Error::Open(OpenError::HostileSubmission { id, reason });
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
    let count = testimony.attachments.len();
    let mut attachments = Vec::with_capacity(count);
    for (index, listed) in testimony.attachments.iter().enumerate() {
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
        // Written under its place and its name, so that no two collide on
        // any file system (the source's name stays in testimony.json).
        let disk = disk_name(index, count, name);
        let target = child(&files, &disk).ok_or_else(|| hostile("an attachment name is unsafe"))?;
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
        attachments.push(Unpacked1 {
            name: listed.name.clone(),
            disk,
            size: listed.size,
            sha256: listed.sha256,
        });
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
        attachments,
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
            return Err(Error::Open(OpenError::HostileSubmission {
                id,
                reason: "the padding is not all zeros",
            }));
        }
    }
}

// ------------------------------------------------------------------ errors

/// What can go wrong with decrypting a batch into the archive, or retrying a quarantined submission (nested in [`crate::Error::Open`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// None of the identities given can decrypt a submission.
    #[error(
        "{} not a recipient of submission {id} (is {} your reviewer key for epoch {epoch}?): the batch was refused and nothing from it was written{}",
        if .identities.len() == 1 { format!("this key ({}) is", crate::error::paths(.identities)) } else { format!("none of these keys ({}) is", crate::error::paths(.identities)) },
        if .identities.len() == 1 { "it" } else { "one of them" },
        if *.demo { "; this batch comes from a demo relay: it is sealed to the demo reviewer key in that relay's data directory (demo-reviewer.key), not to real reviewer keys, and protects nothing: keep demo batches out of a real archive" } else { "" }
    )]
    WrongIdentity {
        /// The submission.
        id: format::SubmissionId,
        /// The key epoch the manifest says it was sealed to.
        epoch: u32,
        /// The identity files given.
        identities: Vec<std::path::PathBuf>,
        /// Whether a demo relay made the batch (its manifest says so).
        demo: bool,
    },

    /// A submission could not be decrypted although an identity matched.
    #[error(
        "submission {id} could not be decrypted (damaged or invalid age file): the batch was refused and nothing from it was written; keep the batch file and tell the relay operator"
    )]
    Undecryptable {
        /// The submission.
        id: format::SubmissionId,
    },

    /// A submission's plaintext breaks the format (possibly on purpose).
    #[error(
        "submission {id} has a malformed or hostile plaintext ({reason}): the batch was refused and nothing from it was written; keep the batch file for inspection"
    )]
    HostileSubmission {
        /// The submission.
        id: format::SubmissionId,
        /// The rule that was broken (never the offending content).
        reason: &'static str,
    },

    /// The scrubbing helper (the `reviewer` binary itself, run as a child
    /// with limits) cannot be used.
    #[error(
        "cannot run the scrubbing helper {path}: {reason}; reinstall reviewer (or pass --scrub-helper FILE with the reviewer binary)"
    )]
    ScrubHelper {
        /// The program tried.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// `retry` named a submission that is not quarantined.
    #[error(
        "submission {id} is not quarantined in {dir}: `reviewer list {dir} --quarantined` lists those that are"
    )]
    NotQuarantined {
        /// The submission.
        id: format::SubmissionId,
        /// The archive directory.
        dir: std::path::PathBuf,
    },

    /// `retry` could not open a quarantined submission this time either.
    #[error(
        "submission {id} is still quarantined ({reason}): its ciphertext stays in custody; try again with a newer reviewer or higher limits (--scrub-memory)"
    )]
    StillQuarantined {
        /// The submission.
        id: format::SubmissionId,
        /// Why it failed again.
        reason: String,
    },

    /// The batch file changed between verification and decryption.
    #[error(
        "{path} changed while it was being opened: nothing from it was written; fetch it again and re-run open"
    )]
    ChangedSinceVerify {
        /// The batch file.
        path: std::path::PathBuf,
    },

    /// A staging directory from an interrupted `open` is in the way.
    #[error(
        "{path} is left over from an interrupted open and may hold decrypted testimony: inspect it, delete it, then run open again"
    )]
    StagingExists {
        /// The staging directory.
        path: std::path::PathBuf,
    },
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
            Err(Error::Open(OpenError::HostileSubmission { .. }))
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
