//! The store: ciphertext and the minimum metadata.
//!
//! This is the only module that imports `sled`, so the engine can be read,
//! tested and swapped alone (an object store would go behind this same
//! boundary if ciphertext ever outgrew a disk).
//!
//! # Layout
//! ```text
//! store/index/              sled: metadata, batches, markers (small values only)
//! store/pending/<id>.age    ciphertext being written, or waiting for its index entry to be durable
//! store/objects/<id>.age    ciphertext of a durable submission (0600)
//! ```
//! sled keys, prefixed by one byte:
//!
//! | key | value |
//! |---|---|
//! | `m` id | [`SubmissionMeta`]: received day, size, SHA-256, key epoch, key set, batch |
//! | `B` sequence(u64 BE) | [`BatchRecord`] |
//! | `M` sequence | the batch's `manifest.json` bytes (until acknowledged) |
//! | `S` sequence | the batch's `manifest.sig` bytes (until acknowledged) |
//! | `x` sequence | purge in progress for an acknowledged batch |
//!
//! Nothing else: no address, no header, no file name, no time finer than a
//! day. Ids are random. Ciphertext files are `0600`, with access and
//! modification times set to the received day's midnight (UTC). Their
//! change and birth times are the kernel's and stay exact: a known
//! limitation of one file per submission (`SECURITY.md`, `docs/decisions.md`).
//!
//! # Why ciphertext is in files, not in sled
//! DESIGN.md asked for ciphertext in sled as ≤64 KiB chunks, with files as
//! the fallback if the memory bound could not hold. Measured here (sled
//! 0.34.7, `cache_capacity` 16 MiB, release build): one 256 MiB ciphertext
//! stored as 64 KiB values raised RSS to 269 MB (16 KiB values: 115 MB;
//! 4 KiB values: 34 MB but 455 MB on disk), and flushing did not release
//! it; 512 MiB of 17 KB values (small submissions) left 118 MB resident and
//! took 716 MB on disk. sled keeps freshly written values resident whatever
//! the cache size, so the relay's memory would grow with what it stores.
//! Files keep memory per upload at one buffer and disk use at the
//! ciphertext size (plus block rounding); sled keeps only the index.
//!
//! # Durability and group commit
//! A source is told "stored" only once both the ciphertext and its index
//! entry are on disk:
//! 1. the writer streams the ciphertext into `pending/<id>.age` and fsyncs
//!    it (on its own blocking thread, in parallel with other writers);
//! 2. it inserts the index entry and queues the id for publication;
//! 3. it waits for the next *commit round* of the one flusher thread, which
//!    takes every id queued so far, flushes sled once, renames those files
//!    into `objects/`, fsyncs both directories once, and wakes every writer
//!    that was waiting. Concurrent submissions share rounds.
//!
//! (sled's `flush_async` deadlocks with 8+ concurrent callers, upstream
//! sled#1308, so it is not used.)
//!
//! # Crash safety
//! At start-up, every file in `pending/` is either rolled forward (its index
//! entry is durable: rename it into `objects/`) or removed (no index entry:
//! the upload never completed). An acknowledgement first records a durable
//! purge marker, then deletes files, then index entries; start-up finishes
//! any purge a crash interrupted. So a crash leaves neither a visible half
//! submission nor an orphaned ciphertext.
//!
//! # Deletion
//! Neither sled nor an ordinary file system securely erases: deleted
//! ciphertext may stay on the disk until its blocks are reused. Deletion of
//! testimony is cryptographic (reviewers destroy old identities); see
//! `SECURITY.md`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use format::{BatchId, Day, Digest, SubmissionId};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::{Error, fsutil};

/// How soon submissions nobody waits for are committed.
const IDLE_COMMIT: std::time::Duration = std::time::Duration::from_millis(500);
/// Buffer between the sealer and a ciphertext file.
const WRITE_BUFFER: usize = 64 * 1024;

const META: u8 = b'm';
const BATCH: u8 = b'B';
const MANIFEST: u8 = b'M';
const SIGNATURE: u8 = b'S';
const PURGE: u8 = b'x';

/// What the store knows about one submission.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubmissionMeta {
    /// UTC day it was received.
    pub received_day: Day,
    /// Length of the age ciphertext (a function of the padded size).
    pub size: u64,
    /// SHA-256 of the ciphertext.
    pub sha256: Digest,
    /// The reviewer key epoch it was sealed to. Records written before
    /// epochs existed had only one key set, which is epoch 1.
    #[serde(default = "first_epoch")]
    pub epoch: u32,
    /// Which reviewer key set sealed it (a fingerprint of the recipients).
    pub key_set: String,
    /// Sequence number of the batch it was exported in, if any.
    pub batch: Option<u64>,
}

fn first_epoch() -> u32 {
    1
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
    /// Files in `pending/`: uploads being written right now.
    pub pending: u64,
}

/// What the store's threads share.
struct Inner {
    db: sled::Db,
    objects: PathBuf,
    pending: PathBuf,
    /// Ids whose index entries are inserted, waiting for a commit round.
    to_publish: Mutex<Vec<SubmissionId>>,
}

/// Handle to the store. Operations are synchronous (call them from a
/// blocking thread in async code), except [`Store::sync`], the async group
/// commit.
pub struct Store {
    inner: Arc<Inner>,
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

fn io_err(action: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::Store {
        action,
        source: Box::new(e),
    }
}

fn key(prefix: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(prefix);
    k.extend_from_slice(id);
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

fn file_name(id: &SubmissionId) -> String {
    format!("{id}.age")
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Inner {
    /// One commit round: makes every queued submission durable and visible.
    fn commit_round(&self) -> Result<(), Error> {
        // Take the queue *before* flushing: every id in it had its index
        // entry inserted before it was queued, so this flush covers it.
        let ids = std::mem::take(
            &mut *self
                .to_publish
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        self.db.flush().map_err(store_err("flush the index"))?;
        for id in &ids {
            let name = file_name(id);
            std::fs::rename(self.pending.join(&name), self.objects.join(&name))
                .map_err(io_err("publish a ciphertext file"))?;
        }
        if !ids.is_empty() {
            fsync_dir(&self.objects).map_err(io_err("sync the objects directory"))?;
            fsync_dir(&self.pending).map_err(io_err("sync the pending directory"))?;
        }
        Ok(())
    }

    fn object_path(&self, id: &SubmissionId) -> PathBuf {
        self.objects.join(file_name(id))
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`, finishing or undoing whatever
    /// a crash interrupted.
    ///
    /// Fails with [`Error::StoreLocked`] if another process (a running
    /// relay) has it open.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, Error> {
        let index = dir.join("index");
        let objects = dir.join("objects");
        let pending = dir.join("pending");
        for d in [dir, &index, &objects, &pending] {
            fsutil::create_private_dir(d)?;
        }
        let db = sled::Config::new()
            .path(&index)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io)
                    if io.kind() == io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    Error::StoreLocked(dir.to_owned())
                }
                other => Error::Store {
                    action: "open the index",
                    source: Box::new(other),
                },
            })?;
        let inner = Arc::new(Inner {
            db,
            objects,
            pending,
            to_publish: Mutex::new(Vec::new()),
        });
        let store = Store {
            flusher: Flusher::start(inner.clone()),
            inner,
        };
        store.recover()?;
        Ok(store)
    }

    /// Rolls pending files forward or back, and finishes interrupted purges.
    fn recover(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let mut rolled_forward = 0u64;
        let mut removed = 0u64;
        let entries = std::fs::read_dir(&inner.pending).map_err(io_err("list pending files"))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list pending files"))?;
            let path = entry.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".age"))
                .and_then(|n| n.parse::<SubmissionId>().ok());
            match id {
                Some(id) if self.meta(&id)?.is_some() => {
                    std::fs::rename(&path, inner.object_path(&id))
                        .map_err(io_err("publish a ciphertext file"))?;
                    rolled_forward += 1;
                }
                _ => {
                    std::fs::remove_file(&path).map_err(io_err("remove an unfinished upload"))?;
                    removed += 1;
                }
            }
        }
        if rolled_forward + removed > 0 {
            fsync_dir(&inner.objects).map_err(io_err("sync the objects directory"))?;
            fsync_dir(&inner.pending).map_err(io_err("sync the pending directory"))?;
            tracing::info!(
                rolled_forward,
                removed,
                "recovered submissions a crash interrupted"
            );
        }
        let purges: Vec<u64> = inner
            .db
            .scan_prefix([PURGE])
            .map(|item| {
                let (k, _) = item.map_err(store_err("scan purge markers"))?;
                let bytes: [u8; 8] = k
                    .get(1..9)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| Error::Corrupt("a purge marker is too short".into()))?;
                Ok(u64::from_be_bytes(bytes))
            })
            .collect::<Result<_, Error>>()?;
        for sequence in purges {
            self.finish_purge(sequence)?;
        }
        Ok(())
    }

    /// Starts writing a new submission under a fresh id.
    pub fn begin(&self, id: SubmissionId) -> Result<PendingSubmission, Error> {
        if self.meta(&id)?.is_some() {
            // 128 random bits never collide in practice; refuse rather than
            // overwrite if they ever do.
            return Err(Error::Corrupt("submission id already in use".into()));
        }
        let path = self.inner.pending.join(file_name(&id));
        let file = fsutil::create_new(&path, 0o600)?;
        Ok(PendingSubmission {
            inner: self.inner.clone(),
            id,
            path,
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            hasher: sha2::Sha256::new(),
            size: 0,
            done: false,
        })
    }

    /// Waits until everything written so far is durable and visible.
    /// Concurrent callers share one commit round (group commit).
    pub async fn sync(&self) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.flusher.request(tx)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Store {
                action: "commit",
                source: e.into(),
            }),
            Err(_) => Err(Error::Store {
                action: "commit",
                source: "the flusher stopped".into(),
            }),
        }
    }

    /// Commits now, on this thread (for the offline commands).
    pub fn sync_blocking(&self) -> Result<(), Error> {
        self.inner.commit_round()
    }

    /// The metadata of one submission.
    pub fn meta(&self, id: &SubmissionId) -> Result<Option<SubmissionMeta>, Error> {
        self.inner
            .db
            .get(key(META, id.as_bytes()))
            .map_err(store_err("read metadata"))?
            .map(|v| decode("submission metadata", &v))
            .transpose()
    }

    /// Up to `limit` submissions not yet in any batch, in id order.
    pub fn unexported(&self, limit: usize) -> Result<Vec<(SubmissionId, SubmissionMeta)>, Error> {
        let mut out = Vec::new();
        for item in self.inner.db.scan_prefix([META]) {
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
        self.inner
            .db
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
        self.inner
            .db
            .apply_batch(batch)
            .map_err(store_err("record a batch"))
    }

    /// Batches not yet acknowledged, oldest first.
    pub fn unacked_batches(&self) -> Result<Vec<BatchRecord>, Error> {
        let mut out = Vec::new();
        for item in self.inner.db.scan_prefix([BATCH]) {
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
        for item in self.inner.db.scan_prefix([BATCH]).rev() {
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
        let db = &self.inner.db;
        let manifest = db
            .get(key(MANIFEST, &seq))
            .map_err(store_err("read a manifest"))?;
        let sig = db
            .get(key(SIGNATURE, &seq))
            .map_err(store_err("read a signature"))?;
        Ok(manifest.zip(sig).map(|(m, s)| BatchDocuments {
            manifest: m.to_vec(),
            signature: s.to_vec(),
        }))
    }

    /// A reader over one submission's ciphertext.
    pub fn ciphertext(&self, id: &SubmissionId) -> Result<impl Read + use<>, Error> {
        if self.meta(id)?.is_none() {
            return Err(Error::Corrupt(format!("no submission {id}")));
        }
        // A submission whose commit round is under way may still be in
        // pending/; try objects/ again in case it moved in between.
        let name = file_name(id);
        let candidates = [
            self.inner.objects.join(&name),
            self.inner.pending.join(&name),
            self.inner.objects.join(&name),
        ];
        for path in &candidates {
            match File::open(path) {
                Ok(f) => return Ok(BufReader::with_capacity(WRITE_BUFFER, f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("open a ciphertext file")(e)),
            }
        }
        Err(Error::Corrupt(format!(
            "the ciphertext of submission {id} is missing"
        )))
    }

    /// Deletes the submissions of batch `id` if `manifest_sha256` is its
    /// manifest hash. Durable when this returns.
    pub fn ack(&self, id: &BatchId, manifest_sha256: &Digest) -> Result<AckOutcome, Error> {
        let record = self.batch(id)?.ok_or(Error::UnknownBatch(*id))?;
        if record.manifest_sha256 != *manifest_sha256 {
            return Err(Error::AckMismatch(*id));
        }
        if record.acked {
            return Ok(AckOutcome::AlreadyAcked);
        }
        // 1. Durably mark the batch acknowledged and the purge started.
        let seq = record.sequence.to_be_bytes();
        let mut batch = sled::Batch::default();
        batch.remove(key(MANIFEST, &seq));
        batch.remove(key(SIGNATURE, &seq));
        batch.insert(key(PURGE, &seq), &[]);
        let acked = BatchRecord {
            acked: true,
            ..record
        };
        batch.insert(key(BATCH, &seq), encode(&acked));
        let db = &self.inner.db;
        db.apply_batch(batch)
            .map_err(store_err("mark a batch acknowledged"))?;
        db.flush().map_err(store_err("flush the index"))?;
        // 2, 3. Delete files, then index entries (finish_purge).
        self.finish_purge(acked.sequence).map(AckOutcome::Deleted)
    }

    /// Deletes every submission of batch `sequence`, then its purge marker.
    /// Safe to repeat: start-up calls it for purges a crash interrupted.
    fn finish_purge(&self, sequence: u64) -> Result<u64, Error> {
        let db = &self.inner.db;
        let mut ids = Vec::new();
        for item in db.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            if meta.batch == Some(sequence) {
                ids.push(id_from_key(&k)?);
            }
        }
        for id in &ids {
            for dir in [&self.inner.objects, &self.inner.pending] {
                match std::fs::remove_file(dir.join(file_name(id))) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("delete a ciphertext file")(e)),
                }
            }
        }
        fsync_dir(&self.inner.objects).map_err(io_err("sync the objects directory"))?;
        let mut batch = sled::Batch::default();
        for id in &ids {
            batch.remove(key(META, id.as_bytes()));
        }
        batch.remove(key(PURGE, &sequence.to_be_bytes()));
        db.apply_batch(batch)
            .map_err(store_err("delete acknowledged submissions"))?;
        db.flush().map_err(store_err("flush the index"))?;
        Ok(ids.len() as u64)
    }

    /// Counts of what is held.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut s = Stats::default();
        for item in self.inner.db.scan_prefix([META]) {
            let (_, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            s.submissions += 1;
            s.ciphertext_bytes += meta.size;
            if meta.batch.is_none() {
                s.unexported += 1;
            }
        }
        s.pending = std::fs::read_dir(&self.inner.pending)
            .map_err(io_err("list pending files"))?
            .count() as u64;
        Ok(s)
    }
}

/// A submission being written. It becomes visible only through
/// [`PendingSubmission::finish`] and the next commit round; dropped
/// unfinished, it deletes its file.
pub struct PendingSubmission {
    inner: Arc<Inner>,
    id: SubmissionId,
    path: PathBuf,
    file: Option<BufWriter<File>>,
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
    /// Makes the ciphertext durable, inserts its index entry and queues it
    /// for the next commit round. Returns its metadata. Not durable nor
    /// visible to a restarted relay until [`Store::sync`] returns.
    pub fn finish(
        mut self,
        received_day: Day,
        epoch: u32,
        key_set: String,
    ) -> Result<SubmissionMeta, Error> {
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::Corrupt("submission finished twice".into()))?;
        let file = file
            .into_inner()
            .map_err(|e| io_err("write a ciphertext file")(e.into_error()))?;
        // The file's access and modification times say only the day.
        // (Its change and birth times are set by the kernel and stay exact;
        // see SECURITY.md.)
        let midnight = u64::try_from(received_day.unix_midnight())
            .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
            .unwrap_or(std::time::UNIX_EPOCH);
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(midnight)
                .set_modified(midnight),
        )
        .map_err(io_err("set a ciphertext file's times"))?;
        file.sync_all().map_err(io_err("sync a ciphertext file"))?;
        drop(file);
        let meta = SubmissionMeta {
            received_day,
            size: self.size,
            sha256: Digest::from_hasher(std::mem::take(&mut self.hasher)),
            epoch,
            key_set,
            batch: None,
        };
        self.inner
            .db
            .insert(key(META, self.id.as_bytes()), encode(&meta))
            .map_err(store_err("index a submission"))?;
        self.inner
            .to_publish
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(self.id);
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
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("submission already finished"))?;
        let n = file.write(data)?;
        self.hasher.update(&data[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PendingSubmission {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: whatever is left is removed at the next start-up.
            self.file.take();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The group-commit flusher: one thread, one commit round per batch of
/// waiters.
struct Flusher {
    tx: Option<mpsc::Sender<FlushWaiter>>,
    thread: Option<JoinHandle<()>>,
}

type FlushWaiter = tokio::sync::oneshot::Sender<Result<(), String>>;

impl Flusher {
    fn start(inner: Arc<Inner>) -> Self {
        let (tx, rx) = mpsc::channel::<FlushWaiter>();
        let thread = std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || {
                // Each round: wait for the first waiter, take everyone who
                // is waiting by then, commit once, wake them all. A waiter
                // registers only after its index entry was inserted and its
                // id queued, so the round that answers it covers it.
                //
                // Ids can also be queued with nobody waiting: a client that
                // disconnects after its upload was received cancels its
                // handler while the sealing worker finishes. Those are
                // complete testimonies; the timer commits them promptly.
                loop {
                    let first = match rx.recv_timeout(IDLE_COMMIT) {
                        Ok(w) => Some(w),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    let queued = !inner
                        .to_publish
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .is_empty();
                    if first.is_none() && !queued {
                        continue;
                    }
                    let mut waiters: Vec<FlushWaiter> = first.into_iter().collect();
                    waiters.extend(rx.try_iter());
                    let result = inner.commit_round().map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "commit round failed");
                    }
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
            action: "commit",
            source: "the commit thread is not running".into(),
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
        // its handle on the index is gone before anyone reopens it.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SubmissionId {
        SubmissionId::from_bytes([n; 16])
    }

    fn day() -> Day {
        "2026-11-28".parse().unwrap()
    }

    fn put(store: &Store, n: u8, bytes: &[u8]) -> SubmissionMeta {
        put_in(store, n, bytes, 1)
    }

    fn put_in(store: &Store, n: u8, bytes: &[u8], epoch: u32) -> SubmissionMeta {
        let mut p = store.begin(id(n)).unwrap();
        p.write_all(bytes).unwrap();
        p.finish(day(), epoch, "ks".into()).unwrap()
    }

    fn read(store: &Store, n: u8) -> Vec<u8> {
        let mut back = Vec::new();
        store
            .ciphertext(&id(n))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn round_trip_and_publication() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let data: Vec<u8> = (0..200_017u32).map(|i| i as u8).collect();
        let meta = put(&store, 1, &data);
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(meta.sha256, Digest::of(&data));
        // Readable before the commit round (from pending/) and after it.
        assert_eq!(read(&store, 1), data);
        assert_eq!(files(&dir.path().join("pending")), 1);
        store.sync_blocking().unwrap();
        assert_eq!(files(&dir.path().join("pending")), 0);
        assert_eq!(files(&dir.path().join("objects")), 1);
        assert_eq!(read(&store, 1), data);
    }

    #[test]
    fn the_key_epoch_is_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(put_in(&store, 1, b"old", 1).epoch, 1);
            assert_eq!(put_in(&store, 2, b"new", 7).epoch, 7);
            store.sync_blocking().unwrap();
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.meta(&id(1)).unwrap().unwrap().epoch, 1);
        assert_eq!(store.meta(&id(2)).unwrap().unwrap().epoch, 7);
        let epochs: Vec<u32> = store
            .unexported(10)
            .unwrap()
            .into_iter()
            .map(|(_, m)| m.epoch)
            .collect();
        assert_eq!(epochs, [1, 7]);
    }

    #[test]
    fn records_from_before_epochs_are_epoch_1() {
        let old = format!(
            r#"{{"received_day":"2026-11-28","size":3,"sha256":"{}","key_set":"ks","batch":null}}"#,
            Digest::of(b"x")
        );
        let meta: SubmissionMeta = decode("submission metadata", old.as_bytes()).unwrap();
        assert_eq!(meta.epoch, 1);
        assert!(
            decode::<SubmissionMeta>("m", old.replace("\"ks\"", "\"ks\",\"epoch\":2").as_bytes())
                .is_ok_and(|m| m.epoch == 2)
        );
    }

    #[test]
    fn stored_files_carry_only_the_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        put(&store, 3, b"x");
        store.sync_blocking().unwrap();
        let meta = std::fs::metadata(store.inner.object_path(&id(3))).unwrap();
        let since_epoch =
            |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let midnight = u64::try_from(day().unix_midnight()).unwrap();
        assert_eq!(since_epoch(meta.modified().unwrap()), midnight);
        assert_eq!(since_epoch(meta.accessed().unwrap()), midnight);
    }

    #[test]
    fn unfinished_submission_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let mut p = store.begin(id(2)).unwrap();
        p.write_all(&[7u8; 100_000]).unwrap();
        drop(p);
        assert_eq!(store.stats().unwrap(), Stats::default());
        assert_eq!(files(&dir.path().join("pending")), 0);
    }

    #[test]
    fn start_up_rolls_committed_files_forward_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            // Indexed and flushed, but the crash came before the rename.
            put(&store, 1, b"indexed");
            store.inner.db.flush().unwrap();
            store.inner.to_publish.lock().unwrap().clear();
            // Written but never indexed: an upload cut off by the crash.
            let mut p = store.begin(id(2)).unwrap();
            p.write_all(b"half").unwrap();
            p.done = true;
            drop(p);
            assert_eq!(store.stats().unwrap().pending, 2);
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let stats = store.stats().unwrap();
        assert_eq!(stats.pending, 0);
        assert_eq!(stats.submissions, 1);
        assert_eq!(read(&store, 1), b"indexed");
        assert_eq!(files(&dir.path().join("objects")), 1);
    }

    #[test]
    fn missing_ciphertext_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        put(&store, 4, b"gone");
        store.sync_blocking().unwrap();
        std::fs::remove_file(store.inner.object_path(&id(4))).unwrap();
        assert!(matches!(store.ciphertext(&id(4)), Err(Error::Corrupt(_))));
    }

    fn record(n: u8, manifest: &[u8], count: u64) -> BatchRecord {
        BatchRecord {
            batch_id: BatchId::from_bytes([n; 16]),
            sequence: u64::from(n),
            manifest_sha256: Digest::of(manifest),
            submissions: count,
            acked: false,
        }
    }

    #[test]
    fn ack_needs_the_right_hash_and_deletes_only_that_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        put(&store, 1, b"one");
        put(&store, 2, b"two");
        store.sync_blocking().unwrap();
        let record = record(1, b"manifest", 1);
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
        assert!(!store.inner.object_path(&id(1)).exists());
        assert_eq!(read(&store, 2), b"two");
        assert!(store.batch_documents(1).unwrap().is_none());
        assert!(store.unacked_batches().unwrap().is_empty());
        assert_eq!(
            store
                .ack(&record.batch_id, &record.manifest_sha256)
                .unwrap(),
            AckOutcome::AlreadyAcked
        );
    }

    #[test]
    fn an_interrupted_purge_finishes_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            put(&store, 1, b"one");
            put(&store, 2, b"two");
            store.sync_blocking().unwrap();
            let r = record(1, b"m", 2);
            store.record_batch(&r, b"m", b"s", &[id(1), id(2)]).unwrap();
            // The crash: marker durable, one file deleted, index untouched.
            store
                .inner
                .db
                .insert(key(PURGE, &1u64.to_be_bytes()), &[])
                .unwrap();
            std::fs::remove_file(store.inner.object_path(&id(1))).unwrap();
            store.inner.db.flush().unwrap();
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.stats().unwrap().submissions, 0);
        assert_eq!(files(&dir.path().join("objects")), 0);
        assert_eq!(store.inner.db.scan_prefix([PURGE]).count(), 0);
    }

    #[test]
    fn submissions_nobody_waits_for_are_committed_anyway() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        put(&store, 5, b"its client went away");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while files(&dir.path().join("pending")) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(files(&dir.path().join("pending")), 0);
        assert_eq!(files(&dir.path().join("objects")), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_syncs_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
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
        assert_eq!(store.stats().unwrap().pending, 0);
        assert_eq!(files(&dir.path().join("objects")), 32);
    }
}
