//! The store: ciphertext and the minimum metadata, in sled.
//!
//! This is the only module that imports `sled`, so the engine can be read,
//! tested and swapped alone (an object store would go behind this same
//! boundary if ciphertext ever outgrew a disk).
//!
//! # What is stored
//! One sled tree, keys prefixed by one byte:
//!
//! | key | value |
//! |---|---|
//! | `p` id | empty: a submission is being written (crash garbage if seen at start-up) |
//! | `c` id chunk-index(u32 BE) | ≤ 64 KiB of the submission's age ciphertext |
//! | `m` id | [`SubmissionMeta`]: received day, size, SHA-256, chunk count, key set, batch |
//! | `B` sequence(u64 BE) | [`BatchRecord`] |
//! | `M` sequence | the batch's `manifest.json` bytes (until acknowledged) |
//! | `S` sequence | the batch's `manifest.sig` bytes (until acknowledged) |
//!
//! Nothing else: no address, no header, no file name, no time finer than a
//! day. Ids are random.
//!
//! # Why chunks
//! sled 0.34 handles large values badly (a 200 MiB value as 1 MiB values
//! took 568 MiB on disk and ~200 MB of RSS; 64 KiB values took 279 MiB), so
//! ciphertext is stored as 64 KiB chunks and streamed in and out.
//!
//! # Durability and group commit
//! A source is told "stored" only after the ciphertext is flushed. Writers
//! apply their writes, then register with one flusher thread and wait; the
//! thread takes every writer waiting at that moment, calls `flush` once on
//! a blocking thread, and wakes them all. Concurrent submissions therefore
//! share flushes. (sled's `flush_async` deadlocks with 8+ concurrent callers,
//! upstream sled#1308, so it is not used.)
//!
//! # Crash safety
//! A submission becomes visible atomically: its chunks are written under a
//! `p` (pending) marker, and one atomic sled batch removes the marker and
//! inserts the metadata. sled recovers a prefix of its log, so after a
//! crash either the metadata exists (and all chunks before it), or the
//! marker does and [`Store::open`] deletes the marker and its chunks.
//!
//! # Deletion
//! sled cannot securely erase: removed values stay in its files until the
//! space is reused. Deletion of testimony is cryptographic (reviewers
//! destroy old identities); see `SECURITY.md`.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use format::{BatchId, Day, Digest, SubmissionId};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::Error;

/// Size of one ciphertext chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;

const PENDING: u8 = b'p';
const CHUNK: u8 = b'c';
const META: u8 = b'm';
const BATCH: u8 = b'B';
const MANIFEST: u8 = b'M';
const SIGNATURE: u8 = b'S';

/// What the store knows about one submission.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubmissionMeta {
    /// UTC day it was received.
    pub received_day: Day,
    /// Length of the age ciphertext (a fixed function of the padded size).
    pub size: u64,
    /// SHA-256 of the ciphertext.
    pub sha256: Digest,
    /// Number of chunks.
    pub chunks: u32,
    /// Which reviewer key set sealed it (a fingerprint of the recipients).
    pub key_set: String,
    /// Sequence number of the batch it was exported in, if any.
    pub batch: Option<u64>,
}

/// A batch the relay made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchRecord {
    /// Its id.
    pub batch_id: BatchId,
    /// Its sequence number.
    pub sequence: u64,
    /// SHA-256 of its manifest.
    pub manifest_sha256: Digest,
    /// How many submissions it holds.
    pub submissions: u64,
    /// Whether a reviewer acknowledged it (its submissions are deleted).
    pub acked: bool,
}

/// The signed documents of a batch, as stored until it is acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchDocuments {
    /// The exact bytes of `manifest.json`.
    pub manifest: Vec<u8>,
    /// The exact bytes of `manifest.sig`.
    pub signature: Vec<u8>,
}

/// What an acknowledgement did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// The batch's submissions were deleted now; this many.
    Deleted(u64),
    /// The batch had been acknowledged before; nothing to do.
    AlreadyAcked,
}

/// Counts for status output and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Submissions held.
    pub submissions: u64,
    /// Of those, not yet in any batch.
    pub unexported: u64,
    /// Ciphertext bytes held.
    pub ciphertext_bytes: u64,
    /// Submissions being written right now (or crash garbage).
    pub pending: u64,
}

/// Handle to the store. Cheap operations are synchronous; call them from a
/// blocking thread in async code. [`Store::sync`] is the async group commit.
pub struct Store {
    tree: sled::Db,
    flusher: Flusher,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn store_err(action: &'static str) -> impl FnOnce(sled::Error) -> Error {
    move |e| Error::Store {
        action,
        source: Box::new(e),
    }
}

fn key(prefix: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len() + 4);
    k.push(prefix);
    k.extend_from_slice(id);
    k
}

fn chunk_key(id: &SubmissionId, index: u32) -> Vec<u8> {
    let mut k = key(CHUNK, id.as_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn id_from_key(k: &[u8]) -> Result<SubmissionId, Error> {
    let bytes: [u8; 16] = k
        .get(1..17)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| Error::Corrupt("a store key is too short".into()))?;
    Ok(SubmissionId::from_bytes(bytes))
}

fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, v: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(v).map_err(|e| Error::Corrupt(format!("unreadable {what}: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own record types serialise infallibly (strings and integers).
    serde_json::to_vec(v).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the store in `dir`, removing whatever an
    /// interrupted upload left behind.
    ///
    /// Fails with [`Error::StoreLocked`] if another process (a running
    /// relay) has it open.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, Error> {
        crate::fsutil::create_private_dir(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io) if io.kind() == io::ErrorKind::WouldBlock => {
                    Error::StoreLocked(dir.to_owned())
                }
                sled::Error::Io(ref io) if io.to_string().contains("lock") => {
                    Error::StoreLocked(dir.to_owned())
                }
                other => Error::Store {
                    action: "open the store",
                    source: Box::new(other),
                },
            })?;
        let store = Store {
            flusher: Flusher::start(db.clone()),
            tree: db,
        };
        store.remove_interrupted()?;
        Ok(store)
    }

    /// Deletes the chunks of submissions whose writing never finished.
    fn remove_interrupted(&self) -> Result<(), Error> {
        let mut removed = 0u64;
        for item in self.tree.scan_prefix([PENDING]) {
            let (k, _) = item.map_err(store_err("scan pending submissions"))?;
            let id = id_from_key(&k)?;
            self.remove_chunks(&id)?;
            self.tree
                .remove(&k)
                .map_err(store_err("remove a pending marker"))?;
            removed += 1;
        }
        if removed > 0 {
            self.tree
                .flush()
                .map_err(store_err("flush after clean-up"))?;
            tracing::info!(
                removed,
                "removed submissions interrupted before they were stored"
            );
        }
        Ok(())
    }

    fn remove_chunks(&self, id: &SubmissionId) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        for item in self.tree.scan_prefix(key(CHUNK, id.as_bytes())) {
            let (k, _) = item.map_err(store_err("scan chunks"))?;
            batch.remove(k);
        }
        self.tree
            .apply_batch(batch)
            .map_err(store_err("remove chunks"))
    }

    /// Starts writing a new submission under a fresh id.
    pub fn begin(&self, id: SubmissionId) -> Result<PendingSubmission, Error> {
        let marker = key(PENDING, id.as_bytes());
        let meta = key(META, id.as_bytes());
        if self
            .tree
            .contains_key(&meta)
            .map_err(store_err("check an id"))?
        {
            // 128 random bits never collide in practice; refuse rather than
            // overwrite if they ever do.
            return Err(Error::Corrupt("submission id already in use".into()));
        }
        self.tree
            .insert(&marker, &[])
            .map_err(store_err("mark a pending submission"))?;
        Ok(PendingSubmission {
            tree: self.tree.clone(),
            id,
            buf: Vec::with_capacity(CHUNK_BYTES),
            index: 0,
            hasher: sha2::Sha256::new(),
            size: 0,
            done: false,
        })
    }

    /// Waits until everything written so far is durable on disk. Concurrent
    /// callers share one flush (group commit).
    pub async fn sync(&self) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.flusher.request(tx)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Store {
                action: "flush",
                source: e.into(),
            }),
            Err(_) => Err(Error::Store {
                action: "flush",
                source: "the flusher stopped".into(),
            }),
        }
    }

    /// Flushes now, on this thread (for the offline commands).
    pub fn sync_blocking(&self) -> Result<(), Error> {
        self.tree.flush().map(|_| ()).map_err(store_err("flush"))
    }

    /// The metadata of one submission.
    pub fn meta(&self, id: &SubmissionId) -> Result<Option<SubmissionMeta>, Error> {
        self.tree
            .get(key(META, id.as_bytes()))
            .map_err(store_err("read metadata"))?
            .map(|v| decode("submission metadata", &v))
            .transpose()
    }

    /// Up to `limit` submissions not yet in any batch, in id order.
    pub fn unexported(&self, limit: usize) -> Result<Vec<(SubmissionId, SubmissionMeta)>, Error> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([META]) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            if meta.batch.is_none() {
                out.push((id_from_key(&k)?, meta));
            }
        }
        Ok(out)
    }

    /// The most recent batch, if any.
    pub fn last_batch(&self) -> Result<Option<BatchRecord>, Error> {
        self.tree
            .scan_prefix([BATCH])
            .next_back()
            .transpose()
            .map_err(store_err("read the last batch"))?
            .map(|(_, v)| decode("batch record", &v))
            .transpose()
    }

    /// Records a new batch and marks its submissions exported, atomically.
    pub fn record_batch(
        &self,
        record: &BatchRecord,
        manifest: &[u8],
        signature: &[u8],
        ids: &[SubmissionId],
    ) -> Result<(), Error> {
        let seq = record.sequence.to_be_bytes();
        let mut batch = sled::Batch::default();
        batch.insert(key(BATCH, &seq), encode(record));
        batch.insert(key(MANIFEST, &seq), manifest);
        batch.insert(key(SIGNATURE, &seq), signature);
        for id in ids {
            let mut meta = self
                .meta(id)?
                .ok_or_else(|| Error::Corrupt(format!("batch lists unknown submission {id}")))?;
            meta.batch = Some(record.sequence);
            batch.insert(key(META, id.as_bytes()), encode(&meta));
        }
        self.tree
            .apply_batch(batch)
            .map_err(store_err("record a batch"))
    }

    /// Batches not yet acknowledged, oldest first.
    pub fn unacked_batches(&self) -> Result<Vec<BatchRecord>, Error> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([BATCH]) {
            let (_, v) = item.map_err(store_err("scan batches"))?;
            let record: BatchRecord = decode("batch record", &v)?;
            if !record.acked {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Finds a batch by id.
    pub fn batch(&self, id: &BatchId) -> Result<Option<BatchRecord>, Error> {
        for item in self.tree.scan_prefix([BATCH]).rev() {
            let (_, v) = item.map_err(store_err("scan batches"))?;
            let record: BatchRecord = decode("batch record", &v)?;
            if record.batch_id == *id {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// The manifest and signature bytes of an unacknowledged batch.
    pub fn batch_documents(&self, sequence: u64) -> Result<Option<BatchDocuments>, Error> {
        let seq = sequence.to_be_bytes();
        let manifest = self
            .tree
            .get(key(MANIFEST, &seq))
            .map_err(store_err("read a manifest"))?;
        let sig = self
            .tree
            .get(key(SIGNATURE, &seq))
            .map_err(store_err("read a signature"))?;
        Ok(manifest.zip(sig).map(|(m, s)| BatchDocuments {
            manifest: m.to_vec(),
            signature: s.to_vec(),
        }))
    }

    /// A reader over one submission's ciphertext.
    pub fn ciphertext(&self, id: &SubmissionId) -> Result<CiphertextReader, Error> {
        let meta = self
            .meta(id)?
            .ok_or_else(|| Error::Corrupt(format!("no submission {id}")))?;
        Ok(CiphertextReader {
            iter: self.tree.scan_prefix(key(CHUNK, id.as_bytes())),
            current: sled::IVec::default(),
            pos: 0,
            remaining_chunks: meta.chunks,
        })
    }

    /// Deletes the submissions of batch `id` if `manifest_sha256` is its
    /// manifest hash. The caller must make it durable ([`Store::sync`]).
    pub fn ack(&self, id: &BatchId, manifest_sha256: &Digest) -> Result<AckOutcome, Error> {
        let record = self.batch(id)?.ok_or(Error::UnknownBatch(*id))?;
        if record.manifest_sha256 != *manifest_sha256 {
            return Err(Error::AckMismatch(*id));
        }
        if record.acked {
            return Ok(AckOutcome::AlreadyAcked);
        }
        let seq = record.sequence.to_be_bytes();
        let mut batch = sled::Batch::default();
        let mut deleted = 0u64;
        for item in self.tree.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            if meta.batch != Some(record.sequence) {
                continue;
            }
            let sid = id_from_key(&k)?;
            for chunk in self.tree.scan_prefix(key(CHUNK, sid.as_bytes())) {
                let (ck, _) = chunk.map_err(store_err("scan chunks"))?;
                batch.remove(ck);
            }
            batch.remove(k);
            deleted += 1;
        }
        batch.remove(key(MANIFEST, &seq));
        batch.remove(key(SIGNATURE, &seq));
        let acked = BatchRecord {
            acked: true,
            ..record
        };
        batch.insert(key(BATCH, &seq), encode(&acked));
        self.tree
            .apply_batch(batch)
            .map_err(store_err("delete acknowledged submissions"))?;
        Ok(AckOutcome::Deleted(deleted))
    }

    /// Counts of what is held.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut s = Stats::default();
        for item in self.tree.scan_prefix([META]) {
            let (_, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            s.submissions += 1;
            s.ciphertext_bytes += meta.size;
            if meta.batch.is_none() {
                s.unexported += 1;
            }
        }
        s.pending = self.tree.scan_prefix([PENDING]).count() as u64;
        Ok(s)
    }
}

/// A submission being written. Its chunks become visible only through
/// [`PendingSubmission::finish`]; dropped unfinished, it deletes them.
pub struct PendingSubmission {
    tree: sled::Db,
    id: SubmissionId,
    buf: Vec<u8>,
    index: u32,
    hasher: sha2::Sha256,
    size: u64,
    done: bool,
}

impl std::fmt::Debug for PendingSubmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSubmission")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl PendingSubmission {
    fn write_chunk(&mut self, upto: usize) -> io::Result<()> {
        let chunk = &self.buf[..upto];
        self.tree
            .insert(chunk_key(&self.id, self.index), chunk)
            .map_err(io::Error::other)?;
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| io::Error::other("submission too large for the store"))?;
        self.buf.drain(..upto);
        Ok(())
    }

    /// Stores the last chunk and publishes the submission atomically.
    /// Returns its metadata. Not durable until [`Store::sync`].
    pub fn finish(mut self, received_day: Day, key_set: String) -> Result<SubmissionMeta, Error> {
        if !self.buf.is_empty() {
            let n = self.buf.len();
            self.write_chunk(n).map_err(|e| Error::Store {
                action: "write a chunk",
                source: Box::new(e),
            })?;
        }
        let meta = SubmissionMeta {
            received_day,
            size: self.size,
            sha256: Digest::from_hasher(std::mem::take(&mut self.hasher)),
            chunks: self.index,
            key_set,
            batch: None,
        };
        let mut batch = sled::Batch::default();
        batch.remove(key(PENDING, self.id.as_bytes()));
        batch.insert(key(META, self.id.as_bytes()), encode(&meta));
        self.tree
            .apply_batch(batch)
            .map_err(store_err("publish a submission"))?;
        self.done = true;
        Ok(meta)
    }

    /// The id being written.
    pub fn id(&self) -> SubmissionId {
        self.id
    }
}

impl Write for PendingSubmission {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        while self.buf.len() >= CHUNK_BYTES {
            self.write_chunk(CHUNK_BYTES)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PendingSubmission {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Best effort: whatever is left is removed at the next start-up.
        let mut batch = sled::Batch::default();
        for (k, _) in self
            .tree
            .scan_prefix(key(CHUNK, self.id.as_bytes()))
            .flatten()
        {
            batch.remove(k);
        }
        batch.remove(key(PENDING, self.id.as_bytes()));
        let _ = self.tree.apply_batch(batch);
    }
}

/// Reads a submission's ciphertext chunk by chunk.
pub struct CiphertextReader {
    iter: sled::Iter,
    current: sled::IVec,
    pos: usize,
    remaining_chunks: u32,
}

impl std::fmt::Debug for CiphertextReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiphertextReader").finish_non_exhaustive()
    }
}

impl Read for CiphertextReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.iter.next() {
                Some(item) => {
                    let (_, v) = item.map_err(io::Error::other)?;
                    self.remaining_chunks = self
                        .remaining_chunks
                        .checked_sub(1)
                        .ok_or_else(|| io::Error::other("store holds more chunks than recorded"))?;
                    self.current = v;
                    self.pos = 0;
                }
                None if self.remaining_chunks == 0 => return Ok(0),
                None => {
                    return Err(io::Error::other("store is missing chunks of a submission"));
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The group-commit flusher: one thread, one flush per round of waiters.
struct Flusher {
    tx: Option<mpsc::Sender<FlushWaiter>>,
    thread: Option<JoinHandle<()>>,
}

type FlushWaiter = tokio::sync::oneshot::Sender<Result<(), String>>;

impl Flusher {
    fn start(db: sled::Db) -> Self {
        let (tx, rx) = mpsc::channel::<FlushWaiter>();
        let thread = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || {
                // Each round: block for the first waiter, take everyone who
                // is waiting by then, flush once, wake them all. A waiter
                // registers only after its writes were applied, so the
                // flush that answers it covers them.
                while let Ok(first) = rx.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(rx.try_iter());
                    let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
            })
            .ok();
        Flusher {
            tx: Some(tx),
            thread,
        }
    }

    fn request(&self, waiter: FlushWaiter) -> Result<(), Error> {
        let stopped = || Error::Store {
            action: "flush",
            source: "the flusher is not running".into(),
        };
        if self.thread.is_none() {
            return Err(stopped());
        }
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(waiter)
            .map_err(|_| stopped())
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; joining it makes sure
        // its handle on the database is gone before anyone reopens it.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(n: u8) -> SubmissionId {
        SubmissionId::from_bytes([n; 16])
    }

    fn day() -> Day {
        "2026-11-28".parse().unwrap()
    }

    fn put(store: &Store, n: u8, bytes: &[u8]) -> SubmissionMeta {
        let mut p = store.begin(id(n)).unwrap();
        p.write_all(bytes).unwrap();
        p.finish(day(), "ks".into()).unwrap()
    }

    #[test]
    fn round_trip_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let data: Vec<u8> = (0..(3 * CHUNK_BYTES + 17)).map(|i| i as u8).collect();
        let meta = put(&store, 1, &data);
        assert_eq!(meta.chunks, 4);
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(meta.sha256, Digest::of(&data));
        let mut back = Vec::new();
        store
            .ciphertext(&id(1))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn unfinished_submission_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let mut p = store.begin(id(2)).unwrap();
        p.write_all(&vec![7u8; 2 * CHUNK_BYTES]).unwrap();
        drop(p);
        assert_eq!(store.stats().unwrap(), Stats::default());
        assert_eq!(store.tree.len(), 0);
    }

    #[test]
    fn interrupted_write_is_removed_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            put(&store, 9, b"kept");
            let mut p = store.begin(id(3)).unwrap();
            p.write_all(&vec![1u8; 3 * CHUNK_BYTES]).unwrap();
            // Simulate a crash: the pending writer never finishes nor cleans.
            p.done = true;
            drop(p);
            store.sync_blocking().unwrap();
            assert_eq!(store.stats().unwrap().pending, 1);
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let stats = store.stats().unwrap();
        assert_eq!(stats.pending, 0);
        assert_eq!(stats.submissions, 1);
        // Only the kept submission's chunk and metadata remain.
        assert_eq!(store.tree.scan_prefix([CHUNK]).count(), 1);
    }

    #[test]
    fn missing_chunk_is_an_error_not_a_short_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        put(&store, 4, &vec![5u8; 2 * CHUNK_BYTES]);
        store.tree.remove(chunk_key(&id(4), 1)).unwrap();
        let mut out = Vec::new();
        assert!(
            store
                .ciphertext(&id(4))
                .unwrap()
                .read_to_end(&mut out)
                .is_err()
        );
    }

    #[test]
    fn ack_needs_the_right_hash_and_deletes_only_that_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        put(&store, 1, b"one");
        put(&store, 2, b"two");
        let record = BatchRecord {
            batch_id: BatchId::from_bytes([1; 16]),
            sequence: 1,
            manifest_sha256: Digest::of(b"manifest"),
            submissions: 1,
            acked: false,
        };
        store
            .record_batch(&record, b"manifest", b"sig", &[id(1)])
            .unwrap();
        assert_eq!(store.unexported(10).unwrap().len(), 1);

        let wrong = store.ack(&record.batch_id, &Digest::of(b"other"));
        assert!(matches!(wrong, Err(Error::AckMismatch(_))));
        assert_eq!(store.stats().unwrap().submissions, 2);

        let unknown = store.ack(&BatchId::from_bytes([9; 16]), &record.manifest_sha256);
        assert!(matches!(unknown, Err(Error::UnknownBatch(_))));

        let done = store
            .ack(&record.batch_id, &record.manifest_sha256)
            .unwrap();
        assert_eq!(done, AckOutcome::Deleted(1));
        assert!(store.meta(&id(1)).unwrap().is_none());
        assert!(store.meta(&id(2)).unwrap().is_some());
        assert_eq!(
            store.tree.scan_prefix(key(CHUNK, id(1).as_bytes())).count(),
            0
        );
        assert!(store.batch_documents(1).unwrap().is_none());
        assert!(store.unacked_batches().unwrap().is_empty());
        assert_eq!(
            store
                .ack(&record.batch_id, &record.manifest_sha256)
                .unwrap(),
            AckOutcome::AlreadyAcked
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_syncs_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
        let mut tasks = Vec::new();
        for n in 0..32u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let s2 = store.clone();
                tokio::task::spawn_blocking(move || put(&s2, n, &[n; 100]))
                    .await
                    .unwrap();
                store.sync().await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(store.stats().unwrap().submissions, 32);
    }
}
