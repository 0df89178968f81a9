//! Opening verified batches: decrypting submissions into folders.
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
//! Everything is written first into a staging directory inside the output
//! directory (`DIR/.staging-<batch id>/`), streamed (memory stays bounded
//! whatever the attachment sizes), while the ciphertext is hashed again:
//! the batch file may have changed since it was verified. Only when every
//! submission of the batch succeeded are the submission folders renamed
//! into `DIR`, then the receipt, then the batch's follow-up threads are
//! recorded in the thread index ([`crate::threads`]), then the chain state
//! advanced. On any failure the staging directory is removed and nothing
//! stays behind. A batch that contradicts the thread index (a known thread
//! with another source recipient) is refused before anything is decrypted.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use format::{
    BATCH_MANIFEST, BATCH_SIGNATURE, BatchId, Digest, MAX_SIGNATURE_BYTES,
    MAX_TESTIMONY_JSON_BYTES, ManifestEntry, PADDING_ENTRY, RECEIPT_FORMAT, Receipt, SubmissionId,
    TESTIMONY_ENTRY, Testimony, ThreadId, batch_member_for, parse_attachment_entry_path,
};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::Error;
use crate::fsutil::{
    HashingReader, create_private_dir, create_private_file, ensure_dir, exists_no_follow, sync_dir,
};
use crate::identity::{DecryptFailure, Identity, decrypt_any};
use crate::state::StateStore;
use crate::text;
use crate::threads::ThreadIndex;
use crate::ustar::{self, TarError};
use crate::verify::{VerifiedBatch, open_batch_file};

/// Size of the copy buffer for attachments and padding.
const CHUNK: usize = 64 * 1024;
/// Name of the receipts directory inside the output directory.
pub const RECEIPTS_DIR: &str = "receipts";

/// What opening one batch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedBatch {
    /// The batch's sequence number.
    pub sequence: u64,
    /// The batch's id.
    pub batch_id: BatchId,
    /// How many submissions were written.
    pub submissions: usize,
    /// The receipt file (send it with `reviewer ack`).
    pub receipt: PathBuf,
    /// The submissions that belong to a follow-up thread, with it, in
    /// manifest order (recorded in the thread index).
    pub threads: Vec<(SubmissionId, ThreadId)>,
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

/// Decrypts every submission of a verified batch into `out`, writes its
/// receipt, records its follow-up threads in the thread index in `store`
/// and advances the chain state there.
///
/// `identities` are the reviewer's unlocked identities, one per key epoch
/// they hold; each submission is opened with whichever matches.
///
/// All or nothing: on any error (including a submission that none of the
/// identities opens, e.g. one of a retired epoch, or a thread that
/// contradicts the thread index) nothing from the batch stays in `out` and
/// the chain state and thread index are unchanged.
pub fn open_batch(
    batch: VerifiedBatch,
    identities: &[Identity],
    out: &Path,
    store: &StateStore,
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
    let receipt = receipt_path(out, manifest.sequence, &manifest.batch_id);
    ensure_dir(out)?;
    // Never overwrite: refuse before decrypting anything.
    for entry in &manifest.submissions {
        let target = out.join(entry.id.to_string());
        if exists_no_follow(&target)? {
            return Err(Error::AlreadyExists { path: target });
        }
    }
    if exists_no_follow(&receipt)? {
        return Err(Error::AlreadyExists { path: receipt });
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

    decrypt_all(&batch, identities, &staging.dir)?;

    // The receipt, staged too, so that the commit below is renames only.
    let staged_receipt = staging.dir.join("receipt.json");
    let r = Receipt {
        format: RECEIPT_FORMAT.into(),
        relay_key: batch.relay_key().into(),
        batch_id: manifest.batch_id,
        sequence: manifest.sequence,
        manifest_sha256: batch.manifest_sha256(),
    };
    write_file(&staged_receipt, &r.to_json())?;
    sync_dir(&staging.dir)?;

    // Commit: submission folders, then the receipt.
    for entry in &manifest.submissions {
        let from = staging.dir.join(entry.id.to_string());
        let to = out.join(entry.id.to_string());
        rename_new(&from, &to)?;
        staging.committed.push(to);
    }
    sync_dir(out)?;
    let receipts_dir = out.join(RECEIPTS_DIR);
    ensure_dir(&receipts_dir)?;
    rename_new(&staged_receipt, &receipt)?;
    staging.committed.push(receipt.clone());
    sync_dir(&receipts_dir)?;

    // Record its threads (read again: the index must be the one the batch
    // is accepted against), then accept the batch. If accepting fails, the
    // index is put back: a batch not accepted leaves no trace in it.
    let restore = if named.is_empty() {
        None
    } else {
        let before = ThreadIndex::load(store)?;
        let mut after = before.clone();
        after.record(&batch)?;
        after.save(store)?;
        Some(before)
    };
    if let Err(e) = store.advance(batch.relay_key(), batch.prior(), &batch.chain_state()) {
        if let Some(before) = restore {
            // Best effort: recording the batch again later changes nothing.
            let _ = before.save(store);
        }
        return Err(e);
    }
    staging.done = true;
    fs::remove_dir(&staging.dir).map_err(|e| Error::io("remove", &staging.dir, e))?;

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
    })
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

/// Creates `path` (`0600`, new), writes `bytes` and flushes it to disk.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = create_private_file(path)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("write", path, e))
}

/// Re-reads the batch file and decrypts each submission into `staging`.
fn decrypt_all(
    batch: &VerifiedBatch,
    identities: &[Identity],
    staging: &Path,
) -> Result<(), Error> {
    let path = batch.path();
    let changed = || Error::ChangedSinceVerify { path: path.into() };
    let mut tar = open_batch_file(path)?;

    // The manifest must be byte for byte the one verified.
    let head = tar
        .next_entry()
        .map_err(|_| changed())?
        .ok_or_else(changed)?;
    if head.path != BATCH_MANIFEST {
        return Err(changed());
    }
    let (digest, _) = HashingReader::new(tar.data())
        .finish()
        .map_err(|_| changed())?;
    if digest != batch.manifest_sha256() {
        return Err(changed());
    }
    let head = tar
        .next_entry()
        .map_err(|_| changed())?
        .ok_or_else(changed)?;
    if head.path != BATCH_SIGNATURE || head.size > MAX_SIGNATURE_BYTES as u64 {
        return Err(changed());
    }

    for entry in &batch.manifest().submissions {
        let head = tar
            .next_entry()
            .map_err(|_| changed())?
            .ok_or_else(changed)?;
        if head.path != batch_member_for(&entry.id) || head.size != entry.size {
            return Err(changed());
        }
        open_submission(tar.data(), entry, identities, staging, path)?;
    }
    match tar.next_entry() {
        Ok(None) => Ok(()),
        _ => Err(changed()),
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
) -> Result<(), Error> {
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
) -> Result<(), Error> {
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
    let files = dest.join("files");
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
        file.sync_all()
            .map_err(|e| Error::io("write", &target, e))?;
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
    if !testimony.attachments.is_empty() {
        sync_dir(&files)?;
    }
    sync_dir(dest)
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
