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
//! | `L` lookup id (32 bytes) | the thread id a codename leads to |
//! | `T` thread id | [`ThreadRecord`]: the source's age recipient, the day the thread began |
//! | `R` thread id, reply id | a reply's age ciphertext (readable by the source and the reviewers, not the relay) |
//! | `D` thread id, reply id | empty: the source deleted this reply (so importing it again does not bring it back) |
//!
//! Nothing else: no address, no header, no file name, no time finer than a
//! day, no codename. Ids are random; lookup ids come from Argon2id over the
//! codename and a secret salt kept outside the store ([`crate::followup`]). Ciphertext files are `0600`, with access and
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
//! 1. the writer streams the ciphertext into `pending/<id>.age` (on its own
//!    blocking thread, in parallel with other writers; a ciphertext of
//!    1 MiB or more is also flushed there);
//! 2. it queues the id and its index entry for publication;
//! 3. it waits for the next *commit round* of the one flusher thread, which
//!    takes everything queued so far, flushes the file system once
//!    (`syncfs`: every queued ciphertext at once), only then inserts their
//!    index entries, flushes sled once, renames the files into `objects/`,
//!    fsyncs both directories once, and wakes every writer that was
//!    waiting. Concurrent submissions share rounds, so a round's four
//!    flushes serve all of them: the relay acknowledges more durable
//!    submissions per second than the disk does flushes.
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
//! # Room: quota and free space
//! [`Store::admit`] says whether a new submission fits: the ciphertext held
//! (plus what is being written right now) stays under `limits.max_store_bytes`,
//! and the file system keeps `limits.min_free_bytes` free. The total is one
//! atomic counter, computed from the index at start-up, grown as ciphertext is
//! written (a write that would cross the quota fails with
//! [`io::ErrorKind::QuotaExceeded`], so a submission is never half-stored) and
//! shrunk when an unfinished write is dropped or a batch is purged.
//!
//! The free-space reserve matters because of sled: once one of its writes
//! fails (`ENOSPC`), sled 0.34 refuses every later operation until it is
//! reopened. Ciphertext is written and synced *before* its index entry, so a
//! full disk normally fails the ciphertext write, which leaves nothing; the
//! reserve keeps room for the index's own writes, so that the relay goes on
//! serving as soon as space is freed, without a restart.
//!
//! # Checking
//! [`Store::check`] (`relay check`) compares the index with the files and
//! reports every difference; [`Store::open_for_check`] opens a store without
//! the start-up recovery, so checking changes nothing the relay wrote (sled
//! may still rewrite its own log metadata when it opens).
//!
//! # Deletion
//! Neither sled nor an ordinary file system securely erases: deleted
//! ciphertext may stay on the disk until its blocks are reused. Deletion of
//! testimony is cryptographic (reviewers destroy old identities); see
//! `SECURITY.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use format::{BatchId, Day, Digest, ReplyId, ReplyImport, SubmissionId, ThreadId};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::{Error, fsutil};

/// How soon submissions nobody waits for are committed.
const IDLE_COMMIT: std::time::Duration = std::time::Duration::from_millis(500);
/// Ciphertexts at least this large are flushed by their writer; smaller
/// ones by the commit round's one `syncfs`.
const OWN_SYNC_BYTES: u64 = 1024 * 1024;
/// Buffer between the sealer and a ciphertext file.
const WRITE_BUFFER: usize = 64 * 1024;

const META: u8 = b'm';
const BATCH: u8 = b'B';
const MANIFEST: u8 = b'M';
const SIGNATURE: u8 = b'S';
const PURGE: u8 = b'x';
const LOOKUP: u8 = b'L';
const THREAD: u8 = b'T';
const REPLY: u8 = b'R';
const DELETED_REPLY: u8 = b'D';

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
    /// The follow-up thread it belongs to, if its source took a codename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadId>,
}

/// What the store knows about a follow-up thread.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThreadRecord {
    /// The source's age recipient (`age1…`), derived from the codename.
    pub recipient: String,
    /// UTC day the thread began.
    pub created_day: Day,
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
    /// Follow-up threads.
    pub threads: u64,
    /// Replies held for sources.
    pub replies: u64,
}

/// What `relay check` found ([`Store::check`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Submissions in the index.
    pub submissions: u64,
    /// Their ciphertext bytes, as the index records them.
    pub ciphertext_bytes: u64,
    /// Batches not yet acknowledged.
    pub unacked_batches: u64,
    /// What is wrong, one line each, naming the submission, batch or file.
    pub problems: Vec<String>,
    /// What the next start-up will do (a crash interrupted it): roll
    /// pending files forward or back, finish purges. Not problems.
    pub repairs: Vec<String>,
}

/// Room accounting ("Room: quota and free space" above).
struct Space {
    /// Ciphertext bytes held, plus those being written right now.
    used: AtomicU64,
    /// `limits.max_store_bytes` (no limit until [`Store::set_limits`]).
    max: AtomicU64,
    /// `limits.min_free_bytes` (no reserve until [`Store::set_limits`]).
    min_free: AtomicU64,
}

impl Space {
    /// Counts `n` more bytes, unless that would cross the quota.
    fn reserve(&self, n: u64) -> bool {
        let max = self.max.load(Ordering::Acquire);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= max)
            })
            .is_ok()
    }

    /// Stops counting `n` bytes.
    fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

/// What the store's threads share.
struct Inner {
    db: sled::Db,
    objects: PathBuf,
    pending: PathBuf,
    /// Ids whose index entries are inserted, waiting for a commit round.
    to_publish: Mutex<Vec<(SubmissionId, SubmissionMeta)>>,
    space: Space,
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
        let queued = std::mem::take(
            &mut *self
                .to_publish
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if !queued.is_empty() {
            // 1. Every queued ciphertext file reaches the disk, with one
            //    `syncfs` for all of them (group commit: one flush per round,
            //    not one per submission). Only then are their index entries
            //    inserted, so sled's own background flush can never make an
            //    entry durable before its ciphertext.
            let pending =
                File::open(&self.pending).map_err(io_err("open the pending directory"))?;
            rustix::fs::syncfs(&pending)
                .map_err(|e| io_err("sync the store's file system")(e.into()))?;
            let mut batch = sled::Batch::default();
            for (id, meta) in &queued {
                batch.insert(key(META, id.as_bytes()), encode(meta));
            }
            self.db
                .apply_batch(batch)
                .map_err(store_err("index submissions"))?;
        }
        // 2. The index, once for everyone waiting (and for any other change
        //    a caller of `sync` waits for: threads, replies).
        self.db.flush().map_err(store_err("flush the index"))?;
        let ids: Vec<SubmissionId> = queued.into_iter().map(|(id, _)| id).collect();
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
        for d in [
            dir,
            &dir.join("index"),
            &dir.join("objects"),
            &dir.join("pending"),
        ] {
            fsutil::create_private_dir(d)?;
        }
        let store = Self::open_index(dir, cache_bytes)?;
        store.recover()?;
        let held = store.stats()?.ciphertext_bytes;
        store.inner.space.used.store(held, Ordering::Release);
        Ok(store)
    }

    /// Opens an existing store for [`Store::check`]: creates nothing and
    /// runs no recovery, so pending files and interrupted purges stay as a
    /// crash left them. (sled may rewrite its own metadata as it opens.)
    pub fn open_for_check(dir: &Path, cache_bytes: u64) -> Result<Self, Error> {
        let index = dir.join("index");
        if !index.is_dir() {
            return Err(Error::Io {
                action: "find a store (its index/ directory) in",
                path: dir.to_owned(),
                source: io::ErrorKind::NotFound.into(),
            });
        }
        Self::open_index(dir, cache_bytes)
    }

    /// Opens the index and starts the commit thread; nothing else.
    fn open_index(dir: &Path, cache_bytes: u64) -> Result<Self, Error> {
        let db = sled::Config::new()
            .path(dir.join("index"))
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
            objects: dir.join("objects"),
            pending: dir.join("pending"),
            to_publish: Mutex::new(Vec::new()),
            space: Space {
                used: AtomicU64::new(0),
                max: AtomicU64::new(u64::MAX),
                min_free: AtomicU64::new(0),
            },
        });
        Ok(Store {
            flusher: Flusher::start(inner.clone()),
            inner,
        })
    }

    /// Sets the quota (`limits.max_store_bytes`) and the free-space reserve
    /// (`limits.min_free_bytes`; 0 for none) that [`Store::admit`] and
    /// ciphertext writes enforce.
    pub fn set_limits(&self, max_store_bytes: u64, min_free_bytes: u64) {
        let space = &self.inner.space;
        space.max.store(max_store_bytes, Ordering::Release);
        space.min_free.store(min_free_bytes, Ordering::Release);
    }

    /// Ciphertext bytes held, plus those being written right now.
    pub fn held_bytes(&self) -> u64 {
        self.inner.space.used.load(Ordering::Acquire)
    }

    /// Whether a new submission of about `upcoming` bytes of ciphertext
    /// fits: under the quota, and leaving the free-space reserve. Cheap (an
    /// atomic load and one `statvfs`), so the intake calls it as an upload
    /// streams in. Fails with [`Error::StoreFull`].
    pub fn admit(&self, upcoming: u64) -> Result<(), Error> {
        let space = &self.inner.space;
        let used = space.used.load(Ordering::Acquire);
        if used.saturating_add(upcoming) > space.max.load(Ordering::Acquire) {
            return Err(Error::StoreFull(
                "the store holds its quota of ciphertext (limits.max_store_bytes); acknowledge a batch to free it",
            ));
        }
        let min_free = space.min_free.load(Ordering::Acquire);
        if min_free > 0 {
            let available = fsutil::available_bytes(&self.inner.objects)
                .map_err(io_err("measure free disk space"))?;
            if available < min_free.saturating_add(upcoming) {
                return Err(Error::StoreFull(
                    "the disk is nearly full (less than limits.min_free_bytes would be left)",
                ));
            }
        }
        Ok(())
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

    /// Up to `limit` submissions not yet in any batch: those received on
    /// the earliest days first, returned in id order.
    ///
    /// Oldest first, so that a backlog larger than a batch cannot hold a
    /// submission back indefinitely: ids are random, and taking the
    /// lowest ids would let every newer submission with a lower id go
    /// ahead of it. Within a day the order is the (random) id order: the
    /// index records no finer time, by design.
    pub fn unexported(&self, limit: usize) -> Result<Vec<(SubmissionId, SubmissionMeta)>, Error> {
        let mut out = Vec::new();
        for item in self.inner.db.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            if meta.batch.is_none() {
                out.push((id_from_key(&k)?, meta));
            }
        }
        // Stable: ties keep the scan's id order.
        out.sort_by_key(|(_, meta)| meta.received_day);
        out.truncate(limit);
        out.sort_by_key(|(id, _)| *id);
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
        let mut bytes = 0u64;
        for item in db.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            if meta.batch == Some(sequence) {
                ids.push(id_from_key(&k)?);
                bytes = bytes.saturating_add(meta.size);
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
        self.inner.space.release(bytes);
        db.flush().map_err(store_err("flush the index"))?;
        Ok(ids.len() as u64)
    }

    /// Records a new follow-up thread: `lookup` (from the codename) leads
    /// to `thread`, whose source's recipient is `recipient`. Durable after
    /// the next [`Store::sync`]. Refuses to replace an existing lookup id
    /// (two codenames deriving the same 256-bit id does not happen; if it
    /// ever did, the second source must not take over the first's thread).
    pub fn create_thread(
        &self,
        lookup: &[u8; 32],
        thread: ThreadId,
        record: &ThreadRecord,
    ) -> Result<(), Error> {
        let db = &self.inner.db;
        let swapped = db
            .compare_and_swap(
                key(LOOKUP, lookup),
                None as Option<&[u8]>,
                Some(&thread.as_bytes()[..]),
            )
            .map_err(store_err("record a thread"))?;
        if swapped.is_err() {
            return Err(Error::Corrupt(
                "a codename's lookup id is already in use".into(),
            ));
        }
        db.insert(key(THREAD, thread.as_bytes()), encode(record))
            .map_err(store_err("record a thread"))?;
        Ok(())
    }

    /// Forgets a thread that was created for a submission that then failed
    /// (its source never saw the codename).
    pub fn remove_thread(&self, lookup: &[u8; 32], thread: ThreadId) -> Result<(), Error> {
        let db = &self.inner.db;
        db.remove(key(LOOKUP, lookup))
            .map_err(store_err("remove a thread"))?;
        db.remove(key(THREAD, thread.as_bytes()))
            .map_err(store_err("remove a thread"))?;
        Ok(())
    }

    /// The thread a lookup id leads to, if any.
    pub fn thread_for_lookup(&self, lookup: &[u8; 32]) -> Result<Option<ThreadId>, Error> {
        let Some(v) = self
            .inner
            .db
            .get(key(LOOKUP, lookup))
            .map_err(store_err("look up a thread"))?
        else {
            return Ok(None);
        };
        let bytes: [u8; 16] = v[..]
            .try_into()
            .map_err(|_| Error::Corrupt("a thread lookup entry is not 16 bytes".into()))?;
        Ok(Some(ThreadId::from_bytes(bytes)))
    }

    /// A thread's record.
    pub fn thread(&self, id: &ThreadId) -> Result<Option<ThreadRecord>, Error> {
        self.inner
            .db
            .get(key(THREAD, id.as_bytes()))
            .map_err(store_err("read a thread"))?
            .map(|v| decode("thread record", &v))
            .transpose()
    }

    /// Stores reviewers' replies, all or none: if any names a thread the
    /// store does not hold, nothing is stored and the error names it.
    /// A reply already held, or deleted by its source, is not stored again.
    /// Durable when this returns (it flushes the index).
    pub fn import_replies(
        &self,
        replies: &[(ThreadId, ReplyId, Vec<u8>)],
    ) -> Result<ReplyImport, Error> {
        let db = &self.inner.db;
        for (thread, _, _) in replies {
            if self.thread(thread)?.is_none() {
                return Err(Error::BadReplies(format!(
                    "thread {thread} is not on this relay (check the batch it came from)"
                )));
            }
        }
        let mut outcome = ReplyImport {
            stored: 0,
            already_held: 0,
            deleted_by_source: 0,
        };
        let mut batch = sled::Batch::default();
        for (thread, id, ciphertext) in replies {
            let mut k = thread.as_bytes().to_vec();
            k.extend_from_slice(id.as_bytes());
            if db
                .contains_key(key(DELETED_REPLY, &k))
                .map_err(store_err("import replies"))?
            {
                outcome.deleted_by_source += 1;
            } else if db
                .contains_key(key(REPLY, &k))
                .map_err(store_err("import replies"))?
            {
                outcome.already_held += 1;
            } else {
                batch.insert(key(REPLY, &k), &ciphertext[..]);
                outcome.stored += 1;
            }
        }
        db.apply_batch(batch).map_err(store_err("import replies"))?;
        db.flush().map_err(store_err("flush the index"))?;
        Ok(outcome)
    }

    /// A thread's replies (id, age ciphertext), in id order.
    pub fn replies(&self, thread: &ThreadId) -> Result<Vec<(ReplyId, Vec<u8>)>, Error> {
        let mut out = Vec::new();
        for item in self.inner.db.scan_prefix(key(REPLY, thread.as_bytes())) {
            let (k, v) = item.map_err(store_err("read replies"))?;
            let bytes: [u8; 16] = k
                .get(17..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::Corrupt("a reply key has the wrong length".into()))?;
            out.push((ReplyId::from_bytes(bytes), v.to_vec()));
        }
        Ok(out)
    }

    /// Deletes a reply for good (the source read it) and remembers its id
    /// so that importing it again does not bring it back. Returns whether
    /// it was there. Durable after the next [`Store::sync`].
    ///
    /// Like every deletion here, this does not erase the disk blocks that
    /// held the ciphertext (see the module notes): what may linger is
    /// ciphertext only the source's identity and the reviewers' can open.
    pub fn delete_reply(&self, thread: &ThreadId, id: &ReplyId) -> Result<bool, Error> {
        let mut k = thread.as_bytes().to_vec();
        k.extend_from_slice(id.as_bytes());
        let db = &self.inner.db;
        let removed = db
            .remove(key(REPLY, &k))
            .map_err(store_err("delete a reply"))?;
        if removed.is_some() {
            db.insert(key(DELETED_REPLY, &k), &[][..])
                .map_err(store_err("delete a reply"))?;
        }
        Ok(removed.is_some())
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
        s.threads = self.inner.db.scan_prefix([THREAD]).count() as u64;
        s.replies = self.inner.db.scan_prefix([REPLY]).count() as u64;
        s.pending = std::fs::read_dir(&self.inner.pending)
            .map_err(io_err("list pending files"))?
            .count() as u64;
        Ok(s)
    }

    /// Compares the index with the files, changing nothing: every indexed
    /// submission has its ciphertext file, of the recorded size and
    /// SHA-256, whose age header `header_ok` accepts; no file in `objects/`
    /// lacks an index entry; every unacknowledged batch has its manifest and
    /// signature, and the manifest matches its hash and the index. What
    /// start-up would repair after a crash is listed apart.
    ///
    /// Reads every ciphertext once. Fails only if the index itself cannot
    /// be read; everything else is a line in the report.
    pub fn check(
        &self,
        header_ok: impl Fn(&mut dyn Read) -> Result<(), Error>,
    ) -> Result<CheckReport, Error> {
        let db = &self.inner.db;
        let mut r = CheckReport::default();

        let mut purging = BTreeSet::new();
        for item in db.scan_prefix([PURGE]) {
            let (k, _) = item.map_err(store_err("scan purge markers"))?;
            match k.get(1..9).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
                Some(seq) => {
                    let seq = u64::from_be_bytes(seq);
                    purging.insert(seq);
                    r.repairs.push(format!(
                        "batch sequence {seq}: its acknowledgement was interrupted; start-up will finish deleting its submissions"
                    ));
                }
                None => r.problems.push("index: a purge marker is malformed".into()),
            }
        }

        let mut batches = BTreeMap::new();
        for item in db.scan_prefix([BATCH]) {
            let (k, v) = item.map_err(store_err("scan batches"))?;
            match decode::<BatchRecord>("batch record", &v) {
                Ok(b) => {
                    batches.insert(b.sequence, b);
                }
                Err(e) => r.problems.push(format!("index: batch key {k:?}: {e}")),
            }
        }

        // Every readable index entry, and the ids of unreadable ones (whose
        // files are then not orphans).
        let mut indexed: HashMap<SubmissionId, SubmissionMeta> = HashMap::new();
        let mut unreadable = BTreeSet::new();
        for item in db.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let Ok(id) = id_from_key(&k) else {
                r.problems
                    .push(format!("index: a submission key is malformed: {k:?}"));
                continue;
            };
            let meta: SubmissionMeta = match decode("submission metadata", &v) {
                Ok(m) => m,
                Err(e) => {
                    r.problems.push(format!("submission {id}: {e}"));
                    unreadable.insert(id);
                    continue;
                }
            };
            r.submissions += 1;
            r.ciphertext_bytes = r.ciphertext_bytes.saturating_add(meta.size);
            if let Some(thread) = meta.thread
                && !matches!(self.thread(&thread), Ok(Some(_)))
            {
                r.problems.push(format!(
                    "submission {id}: its follow-up thread {thread} has no readable record"
                ));
            }
            let purged = meta.batch.is_some_and(|seq| purging.contains(&seq));
            if let Some(seq) = meta.batch
                && !batches.contains_key(&seq)
            {
                r.problems.push(format!(
                    "submission {id}: recorded in batch sequence {seq}, which the index does not have"
                ));
            }
            let name = file_name(&id);
            let object = self.inner.objects.join(&name);
            let pending = self.inner.pending.join(&name);
            let path = if object.is_file() {
                if pending.exists() {
                    r.problems.push(format!(
                        "submission {id}: a second copy of its ciphertext is in pending/"
                    ));
                }
                object
            } else if pending.is_file() {
                r.repairs.push(format!(
                    "submission {id}: its ciphertext is still in pending/; start-up will move it into objects/"
                ));
                pending
            } else {
                // Unless the interrupted acknowledgement deleted it already.
                if !purged {
                    r.problems.push(format!(
                        "submission {id}: its ciphertext file objects/{name} is missing"
                    ));
                }
                indexed.insert(id, meta);
                continue;
            };
            for problem in check_ciphertext(&path, &meta, &header_ok) {
                r.problems.push(format!("submission {id}: {problem}"));
            }
            indexed.insert(id, meta);
        }

        for (dir, label) in [
            (&self.inner.objects, "objects"),
            (&self.inner.pending, "pending"),
        ] {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) => {
                    r.problems
                        .push(format!("directory {label}/: cannot list it: {e}"));
                    continue;
                }
            };
            for entry in entries {
                let entry = entry.map_err(io_err("list ciphertext files"))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let id = name
                    .strip_suffix(".age")
                    .and_then(|n| n.parse::<SubmissionId>().ok());
                let regular = entry.file_type().is_ok_and(|t| t.is_file());
                match (id, regular, label) {
                    (Some(id), true, _)
                        if indexed.contains_key(&id) || unreadable.contains(&id) => {}
                    (Some(id), true, "objects") => r.problems.push(format!(
                        "submission {id}: ciphertext file objects/{name} has no index entry (an orphan)"
                    )),
                    // Start-up removes every other file in pending/.
                    (_, true, "pending") => r.repairs.push(format!(
                        "file pending/{name}: an upload that never completed; start-up will delete it"
                    )),
                    _ => r.problems.push(format!(
                        "file {label}/{name}: not a submission's ciphertext file"
                    )),
                }
            }
        }

        let mut in_batch: HashMap<u64, u64> = HashMap::new();
        for meta in indexed.values() {
            if let Some(seq) = meta.batch {
                *in_batch.entry(seq).or_default() += 1;
            }
        }
        for (seq, record) in &batches {
            let held = in_batch.get(seq).copied().unwrap_or(0);
            let b = format!("batch {} (sequence {seq})", record.batch_id);
            if record.acked {
                if held > 0 && !purging.contains(seq) {
                    r.problems.push(format!(
                        "{b}: acknowledged, but {held} of its submissions are still held"
                    ));
                }
                continue;
            }
            r.unacked_batches += 1;
            if held != record.submissions {
                r.problems.push(format!(
                    "{b}: records {} submissions, the index holds {held}",
                    record.submissions
                ));
            }
            let Some(docs) = self.batch_documents(*seq)? else {
                r.problems.push(format!(
                    "{b}: not acknowledged, but its manifest or signature is missing"
                ));
                continue;
            };
            if Digest::of(&docs.manifest) != record.manifest_sha256 {
                r.problems.push(format!(
                    "{b}: its manifest does not match its recorded SHA-256"
                ));
                continue;
            }
            match format::Manifest::from_json(&docs.manifest) {
                Ok(manifest) => {
                    for entry in &manifest.submissions {
                        let matches = indexed.get(&entry.id).is_some_and(|m| {
                            m.batch == Some(*seq)
                                && m.size == entry.size
                                && m.sha256 == entry.sha256
                        });
                        if !matches {
                            r.problems.push(format!(
                                "{b}: lists submission {}, which the index does not hold as recorded",
                                entry.id
                            ));
                        }
                    }
                }
                Err(e) => r
                    .problems
                    .push(format!("{b}: its manifest does not parse: {e}")),
            }
        }
        Ok(r)
    }
}

/// What is wrong with one ciphertext file, if anything.
fn check_ciphertext(
    path: &Path,
    meta: &SubmissionMeta,
    header_ok: &dyn Fn(&mut dyn Read) -> Result<(), Error>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let open = || File::open(path).map(|f| BufReader::with_capacity(WRITE_BUFFER, f));
    let mut hasher = sha2::Sha256::new();
    let size = match open().and_then(|mut f| io::copy(&mut f, &mut hasher)) {
        Ok(size) => size,
        Err(e) => return vec![format!("cannot read its ciphertext file: {e}")],
    };
    if size != meta.size {
        problems.push(format!(
            "its ciphertext file is {size} bytes, the index records {}",
            meta.size
        ));
    } else if Digest::from_hasher(hasher) != meta.sha256 {
        problems
            .push("its ciphertext's SHA-256 does not match the index (changed or damaged)".into());
    }
    let header = open().map_err(|e| e.to_string()).and_then(|mut f| {
        header_ok(&mut f).map_err(|e| {
            std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
        })
    });
    if let Err(e) = header {
        problems.push(format!("its age header does not parse: {e}"));
    }
    problems
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
        thread: Option<ThreadId>,
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
        // A large ciphertext flushes itself, here, in parallel with other
        // uploads, so that a commit round never waits for its data; small
        // ones are flushed together by the round's `syncfs`.
        if self.size >= OWN_SYNC_BYTES {
            file.sync_data().map_err(io_err("sync a ciphertext file"))?;
        }
        drop(file);
        let meta = SubmissionMeta {
            received_day,
            size: self.size,
            sha256: Digest::from_hasher(std::mem::take(&mut self.hasher)),
            epoch,
            key_set,
            batch: None,
            thread,
        };
        // Indexed by the next commit round, once its ciphertext is durable.
        self.inner
            .to_publish
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((self.id, meta.clone()));
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
        // Counted before it is written, so concurrent writers cannot pass
        // the quota together; `size` is what this submission has counted.
        let wanted = data.len() as u64;
        let space = &self.inner.space;
        if !space.reserve(wanted) {
            return Err(io::Error::new(
                io::ErrorKind::QuotaExceeded,
                "the store holds its quota of ciphertext (limits.max_store_bytes)",
            ));
        }
        let n = match file.write(data) {
            Ok(n) => n,
            Err(e) => {
                space.release(wanted);
                return Err(e);
            }
        };
        space.release(wanted - n as u64);
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
            self.inner.space.release(self.size);
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
        p.finish(day(), epoch, "ks".into(), None).unwrap()
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
        // Not in the index before its commit round (its ciphertext may not
        // be durable yet), readable after it.
        assert!(store.meta(&id(1)).unwrap().is_none());
        assert!(store.ciphertext(&id(1)).is_err());
        assert_eq!(files(&dir.path().join("pending")), 1);
        store.sync_blocking().unwrap();
        assert_eq!(files(&dir.path().join("pending")), 0);
        assert_eq!(files(&dir.path().join("objects")), 1);
        assert_eq!(read(&store, 1), data);
    }

    #[test]
    fn batches_take_the_oldest_days_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), 1 << 20).unwrap();
        let put_on = |n: u8, day: &str| {
            let mut w = store.begin(id(n)).unwrap();
            w.write_all(b"ct").unwrap();
            w.finish(day.parse().unwrap(), 1, "k".into(), None).unwrap();
        };
        // High ids on the older days, low ids on the newest one.
        put_on(200, "2026-11-01");
        put_on(100, "2026-11-02");
        put_on(150, "2026-11-02");
        for n in 1..=5 {
            put_on(n, "2026-11-03");
        }
        store.sync_blocking().unwrap();
        let ids = |v: Vec<(SubmissionId, SubmissionMeta)>| {
            v.into_iter().map(|(i, _)| i).collect::<Vec<_>>()
        };
        assert_eq!(ids(store.unexported(1).unwrap()), [id(200)]);
        assert_eq!(
            ids(store.unexported(3).unwrap()),
            [id(100), id(150), id(200)]
        );
        assert_eq!(
            ids(store.unexported(5).unwrap()),
            [id(1), id(2), id(100), id(150), id(200)]
        );
        assert_eq!(store.unexported(100).unwrap().len(), 8);
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
            for (id, meta) in store.inner.to_publish.lock().unwrap().drain(..) {
                store
                    .inner
                    .db
                    .insert(key(META, id.as_bytes()), encode(&meta))
                    .unwrap();
            }
            store.inner.db.flush().unwrap();
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

    #[test]
    fn the_quota_counts_what_is_held_and_being_written() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            store.set_limits(50_000, 0);
            put(&store, 1, &[1; 20_000]);
            store.sync_blocking().unwrap();
            assert_eq!(store.held_bytes(), 20_000);
            store.admit(30_000).unwrap();
            assert!(matches!(store.admit(30_001), Err(Error::StoreFull(_))));

            // A write that would cross the quota fails, and the unfinished
            // submission gives back what it had counted and leaves nothing.
            let mut p = store.begin(id(2)).unwrap();
            p.write_all(&[2; 25_000]).unwrap();
            assert_eq!(store.held_bytes(), 45_000);
            let e = p.write_all(&[2; 10_000]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::QuotaExceeded);
            drop(p);
            assert_eq!(store.held_bytes(), 20_000);
            assert_eq!(files(&dir.path().join("pending")), 0);
            put(&store, 3, &[3; 30_000]);
            store.sync_blocking().unwrap();
            assert!(store.admit(1).is_err());

            // Acknowledging a batch frees its bytes at once.
            let r = record(1, b"m", 1);
            store.record_batch(&r, b"m", b"s", &[id(1)]).unwrap();
            store.ack(&r.batch_id, &r.manifest_sha256).unwrap();
            assert_eq!(store.held_bytes(), 30_000);
            store.admit(20_000).unwrap();
        }
        // Reopened, the total comes from the index.
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.held_bytes(), 30_000);
    }

    #[test]
    fn the_free_space_reserve_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        store.set_limits(u64::MAX, 1);
        store.admit(0).unwrap();
        // No file system has an exabyte free.
        store.set_limits(u64::MAX, 1 << 60);
        assert!(matches!(store.admit(0), Err(Error::StoreFull(_))));
    }

    /// A stand-in for `seal::check_header`: the file starts with "age".
    fn starts_with_age(r: &mut dyn Read) -> Result<(), Error> {
        let mut magic = [0u8; 3];
        r.read_exact(&mut magic).map_err(io_err("read a header"))?;
        if &magic == b"age" {
            Ok(())
        } else {
            Err(Error::Corrupt("not age".into()))
        }
    }

    #[test]
    fn check_reports_each_problem_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            let mut metas = Vec::new();
            for n in 1..=5 {
                metas.push(put(&store, n, format!("age ciphertext {n}").as_bytes()));
            }
            store.sync_blocking().unwrap();
            let meta = &metas[4];
            let manifest = format::Manifest {
                format: format::MANIFEST_FORMAT.into(),
                relay_key: "key".into(),
                batch_id: BatchId::from_bytes([1; 16]),
                sequence: 1,
                previous_manifest_sha256: None,
                created_day: day(),
                submissions: vec![format::ManifestEntry {
                    id: id(5),
                    received_day: day(),
                    epoch: 1,
                    size: meta.size,
                    sha256: meta.sha256,
                    thread: None,
                }],
                threads: Vec::new(),
            }
            .to_json();
            let r = record(1, &manifest, 1);
            store.record_batch(&r, &manifest, b"s", &[id(5)]).unwrap();
            store.sync_blocking().unwrap();
        }
        let check = || {
            // sled's thread pool may hold the index's lock file for a moment
            // after the previous handle is dropped: retry briefly.
            let mut tries = 0;
            let store = loop {
                match Store::open_for_check(dir.path(), 1 << 20) {
                    Err(Error::StoreLocked(_)) if tries < 100 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    other => break other.unwrap(),
                }
            };
            store.check(starts_with_age).unwrap()
        };
        let healthy = check();
        assert_eq!(healthy.problems, Vec::<String>::new());
        assert_eq!((healthy.submissions, healthy.unacked_batches), (5, 1));

        let object = |n: u8| objects.join(file_name(&id(n)));
        std::fs::remove_file(object(1)).unwrap();
        std::fs::write(object(2), b"age cipher").unwrap(); // truncated
        std::fs::write(object(3), b"age_ciphertext 3").unwrap(); // bit flip
        std::fs::write(object(4), b"xge ciphertext 4").unwrap(); // header
        std::fs::write(object(9), b"age orphan").unwrap();
        std::fs::write(dir.path().join("pending").join(file_name(&id(8))), b"half").unwrap();
        let report = check();
        let want = [
            (1, "is missing"),
            (2, "is 10 bytes, the index records 16"),
            (3, "SHA-256 does not match"),
            (4, "SHA-256 does not match"),
            (
                4,
                "age header does not parse: store is inconsistent: not age",
            ),
            (9, "has no index entry (an orphan)"),
        ];
        assert_eq!(report.problems.len(), want.len(), "{:#?}", report.problems);
        for (n, what) in want {
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.starts_with(&format!("submission {}: ", id(n))) && p.contains(what)),
                "{n}: {what:?} not in {:#?}",
                report.problems
            );
        }
        assert_eq!(report.repairs.len(), 1, "{:#?}", report.repairs);
        assert!(report.repairs[0].contains("start-up will delete it"));
        // Nothing was repaired: the unfinished upload is still there.
        assert_eq!(files(&dir.path().join("pending")), 1);
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
