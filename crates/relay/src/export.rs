//! Batches: signed, hash-chained tar files of sealed submissions.
//!
//! Format: `docs/format.md`, "Batch". A batch is made once, recorded in
//! the store with its manifest and signature, and then written out as often
//! as needed (API download, `relay export`) with identical bytes until a
//! reviewer acknowledges it.

use std::io::{self, Read, Write};
use std::sync::Mutex;

use format::{
    BATCH_MANIFEST, BATCH_SIGNATURE, BatchId, Day, Digest, MANIFEST_FORMAT, Manifest,
    ManifestEntry, ThreadEntry,
};

use crate::Error;
use crate::keys::{SigningKey, random_bytes};
use crate::store::{BatchDocuments, BatchRecord, Store};

/// Serialises batch creation: sequence numbers and the hash chain need one
/// writer at a time. Held only on blocking threads.
#[derive(Debug, Default)]
pub struct BatchLock(Mutex<()>);

/// Makes a new batch of up to `max` submissions not yet exported, signs its
/// manifest and records it. `None` when there is nothing new.
///
/// The record is not durable until the caller syncs the store; sync before
/// handing the batch out, or a crash could reuse its sequence number.
pub fn create_batch(
    lock: &BatchLock,
    store: &Store,
    signer: &SigningKey,
    max: usize,
    demo: bool,
) -> Result<Option<BatchRecord>, Error> {
    let _guard = lock
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let pending = store.unexported(max)?;
    if pending.is_empty() {
        return Ok(None);
    }
    let last = store.last_batch()?;
    let sequence = last.as_ref().map_or(1, |b| b.sequence + 1);
    let batch_id = BatchId::from_bytes(random_bytes());
    // The threads the submissions belong to, each once, in id order, with
    // the source's recipient so reviewers can reply offline.
    let mut threads = Vec::new();
    for thread in pending
        .iter()
        .filter_map(|(_, meta)| meta.thread)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let record = store.thread(&thread)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "a submission names follow-up thread {thread}, which has no record"
            ))
        })?;
        threads.push(ThreadEntry {
            id: thread,
            recipient: record.recipient,
        });
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        relay_key: signer.public_base64(),
        batch_id,
        sequence,
        previous_manifest_sha256: last.map(|b| b.manifest_sha256),
        created_day: Day::today(),
        submissions: pending
            .iter()
            .map(|(id, meta)| ManifestEntry {
                id: *id,
                received_day: meta.received_day,
                epoch: meta.epoch,
                size: meta.size,
                sha256: meta.sha256,
                thread: meta.thread,
            })
            .collect(),
        threads,
        demo,
    };
    let bytes = manifest.to_json();
    let signature = signer.sign(
        &bytes,
        &format!("relay-batch {batch_id} sequence {sequence}"),
    )?;
    let record = BatchRecord {
        batch_id,
        sequence,
        manifest_sha256: Digest::of(&bytes),
        submissions: manifest.submissions.len() as u64,
        acked: false,
    };
    let ids: Vec<_> = pending.iter().map(|(id, _)| *id).collect();
    store.record_batch(&record, &bytes, signature.as_bytes(), &ids)?;
    Ok(Some(record))
}

/// A batch member's tar header: mode 0644.
fn member_header(path: &str, size: u64) -> io::Result<tar::Header> {
    crate::archive::header(path, size, 0o644)
}

/// Writes the tar of an unacknowledged batch to `out`.
pub fn write_batch<W: Write>(store: &Store, record: &BatchRecord, out: W) -> Result<W, Error> {
    let io_err = |e: io::Error| Error::Store {
        action: "write a batch",
        source: Box::new(e),
    };
    let BatchDocuments {
        manifest: manifest_bytes,
        signature,
    } = store
        .batch_documents(record.sequence)?
        .ok_or(Error::UnknownBatch(record.batch_id))?;
    let manifest = Manifest::from_json(&manifest_bytes).map_err(|e| {
        Error::Corrupt(format!("stored manifest of batch {}: {e}", record.batch_id))
    })?;

    let mut tar = tar::Builder::new(out);
    tar.append(
        &member_header(BATCH_MANIFEST, manifest_bytes.len() as u64).map_err(io_err)?,
        &manifest_bytes[..],
    )
    .map_err(io_err)?;
    tar.append(
        &member_header(BATCH_SIGNATURE, signature.len() as u64).map_err(io_err)?,
        &signature[..],
    )
    .map_err(io_err)?;
    for entry in &manifest.submissions {
        let header =
            member_header(&format::batch_member_for(&entry.id), entry.size).map_err(io_err)?;
        let mut reader = Exact {
            inner: store.ciphertext(&entry.id)?,
            left: entry.size,
        };
        tar.append(&header, &mut reader).map_err(io_err)?;
        if reader.left != 0 {
            return Err(Error::Corrupt(format!(
                "submission {} is shorter than recorded",
                entry.id
            )));
        }
    }
    tar.into_inner().map_err(io_err)
}

/// Reads at most `left` bytes; the caller checks that all were there.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The exact length of a batch's tar, for `Content-Length`.
pub fn batch_len(store: &Store, sequence: u64) -> Result<u64, Error> {
    let BatchDocuments {
        manifest: manifest_bytes,
        signature,
    } = store
        .batch_documents(sequence)?
        .ok_or_else(|| Error::Corrupt(format!("batch {sequence} has no stored manifest")))?;
    let manifest = Manifest::from_json(&manifest_bytes)
        .map_err(|e| Error::Corrupt(format!("stored manifest of batch {sequence}: {e}")))?;
    let members: u64 = manifest
        .submissions
        .iter()
        .map(|e| format::tar_entry_len(e.size))
        .sum();
    Ok(format::tar_entry_len(manifest_bytes.len() as u64)
        + format::tar_entry_len(signature.len() as u64)
        + members
        + 2 * format::TAR_BLOCK)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use format::SubmissionId;

    fn put(store: &Store, n: u8, epoch: u32) {
        let mut p = store.begin(SubmissionId::from_bytes([n; 16])).unwrap();
        p.write_all(&[n; 100]).unwrap();
        p.finish("2026-11-28".parse().unwrap(), epoch, "ks".into(), None)
            .unwrap();
    }

    #[test]
    fn manifest_entries_name_each_submissions_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), 1 << 20).unwrap();
        let (signer, _) = SigningKey::load_or_create(dir.path()).unwrap();
        // Sealed before and after a rotation: one batch holds both epochs.
        put(&store, 1, 1);
        put(&store, 2, 2);
        store.sync_blocking().unwrap();
        let record = create_batch(&BatchLock::default(), &store, &signer, 10, false)
            .unwrap()
            .unwrap();

        let tar = write_batch(&store, &record, Vec::new()).unwrap();
        assert_eq!(
            tar.len() as u64,
            batch_len(&store, record.sequence).unwrap()
        );
        let mut archive = tar::Archive::new(&tar[..]);
        let mut first = archive.entries().unwrap().next().unwrap().unwrap();
        let mut json = Vec::new();
        first.read_to_end(&mut json).unwrap();
        let manifest = Manifest::from_json(&json).unwrap();
        let epochs: Vec<(SubmissionId, u32)> = manifest
            .submissions
            .iter()
            .map(|e| (e.id, e.epoch))
            .collect();
        assert_eq!(
            epochs,
            [
                (SubmissionId::from_bytes([1; 16]), 1),
                (SubmissionId::from_bytes([2; 16]), 2)
            ]
        );
        assert!(String::from_utf8(json).unwrap().contains("\"epoch\": 2"));
    }
}
