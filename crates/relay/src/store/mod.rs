//! The store: ciphertext and the minimum metadata, laid out so that nothing
//! on disk dates a submission.
//!
//! This is the only module that imports `sled` (a test keeps it so:
//! `tests/it/boundaries.rs`), so the engine can be read, tested and swapped
//! alone (an object store would go behind this same boundary if ciphertext
//! ever outgrew a disk).
//!
//! # Layout
//! ```text
//! store/index/                sled: the index (small values only)
//! store/segments/NNNNNNNN.seg ciphertexts, appended back to back (0600);
//!                             a few of them are lanes, where large
//!                             ciphertexts are written as they are sealed
//! ```
//! sled keys, prefixed by one byte:
//!
//! | key | value |
//! |---|---|
//! | `m` id | [`SubmissionMeta`]: received day, size, SHA-256, key epoch, key set, batch, thread, where its bytes are |
//! | `G` segment (u32 BE) | the segment's record: the day it was created, its committed length, its dead bytes |
//! | `C` | a compaction in progress: from which segment into which |
//! | `B` sequence(u64 BE) | [`BatchRecord`] |
//! | `M` sequence | the batch's `manifest.json` bytes (until acknowledged) |
//! | `S` sequence | the batch's `manifest.sig` bytes (until acknowledged) |
//! | `L` lookup id (32 bytes) | the thread id a codename leads to |
//! | `T` thread id | [`ThreadRecord`]: the source's age recipient, the day the thread began |
//! | `R` thread id, reply id | a reply's age ciphertext (readable by the source and the reviewers, not the relay) |
//! | `D` thread id, reply id | empty: the source deleted this reply (so importing it again does not bring it back) |
//!
//! Nothing else: no address, no header, no file name, no time finer than a
//! day, no codename. Ids are random; lookup ids come from Argon2id over the
//! codename and a secret salt kept outside the store ([`crate::followup`]).
//!
//! # Why segments
//! The first layout gave every submission its own file. Seized while it
//! ran, that relay dated each submission to the millisecond: a file's birth
//! and change times are the kernel's, inode numbers give the order of
//! arrival, directory times give the latest one, and ext4 keeps the times
//! of freed inodes until they are reused. Now nothing is created, renamed
//! or unlinked per submission:
//! - ciphertexts are appended to a few long-lived segment files (a new one
//!   at first start, when the active one passes [`SEGMENT_BYTES`], or when
//!   compaction rewrites one: `segments.rs`);
//! - a ciphertext of up to [`INLINE_BYTES`] waits for its commit round in
//!   memory; a larger one is written straight into a *lane*, one of a
//!   fixed pool of segments made at start that one writer at a time
//!   appends to (`lanes.rs`); attachments being uploaded
//!   wait in the same kind of pool (`crate::spool`, the spool directory);
//! - commit rounds run on a fixed cadence (`store.commit_interval_ms`,
//!   default 10 ms), whether or not anything arrived, and each round sets the
//!   times of every file and directory of the store and the spool to now
//!   (`commit.rs`, "cover"). A seizure then reads, on every file, the time
//!   of the last round: "the relay was running". Within a round, entries are
//!   appended in random order.
//!
//! What remains (SECURITY.md): the order of arrival *across* rounds (byte
//! offsets within a segment), the day a segment was created, sled's own
//! snapshot file (renewed every million index operations), and the ext4
//! journal's recent metadata.
//!
//! # Why ciphertext is not in sled
//! The store's first contract put ciphertext in sled as ≤64 KiB chunks,
//! with files as the fallback if the memory bound could not hold (the
//! contract now: `docs/design.md`, "The store"; the change:
//! `docs/decisions.md`). Measured here (sled 0.34.7, `cache_capacity`
//! 16 MiB, release build): one 256 MiB ciphertext stored as 64 KiB
//! values raised RSS to 269 MB (16 KiB values: 115 MB;
//! 4 KiB values: 34 MB but 455 MB on disk), and flushing did not release
//! it; 512 MiB of 17 KB values (small submissions) left 118 MB resident and
//! took 716 MB on disk. sled keeps freshly written values resident whatever
//! the cache size, so the relay's memory would grow with what it stores.
//! Segment files keep memory per upload at one buffer and disk use near the
//! ciphertext size; sled keeps only the index.
//!
//! # Durability and group commit
//! A source is told "stored" only once both the ciphertext and its index
//! entry are durable. Each commit round (`commit.rs`) takes every finished
//! ciphertext, appends the small ones to the active segment in random
//! order (the large ones are in their lanes already), `fdatasync`s the
//! segments it wrote, only then inserts their index entries together with
//! the segments' new committed lengths, flushes sled once, and wakes
//! every writer that was waiting. An index entry therefore never points at
//! bytes that were not durable, and the bytes past a segment's committed
//! length are a torn tail, cut off at the next start (`open.rs`).
//!
//! (sled's `flush_async` deadlocks with 8+ concurrent callers, upstream
//! sled#1308, so it is not used; sled's own periodic flush is off, so that
//! the index is written only by the rounds.)
//!
//! # Deletion and compaction
//! An acknowledgement removes the batch's index entries at once, in one
//! atomic sled batch, and counts their bytes as dead in their segments. A
//! segment whose live bytes fall below two thirds of it is rewritten into
//! a new segment, crash-safely, by the next round; one with nothing live is
//! removed; and every `store.compact_interval_minutes` every segment
//! holding any dead bytes is rewritten, so acknowledged ciphertext stays on
//! disk at most one compaction cycle (`segments.rs`). This is not secure
//! erasure: freed blocks keep their bytes until reused. Deletion of
//! testimony is cryptographic (reviewers destroy old identities); see
//! `SECURITY.md`.
//!
//! # Room: quota and free space
//! [`Store::admit`] says whether a new submission fits: the ciphertext held
//! (plus what is being written right now) stays under `limits.max_store_bytes`,
//! and the file system keeps `limits.min_free_bytes` free. The total is one
//! atomic counter, computed from the segment records at start-up, grown as
//! ciphertext is written (a write that would cross the quota fails with
//! [`io::ErrorKind::QuotaExceeded`], so a submission is never half-stored) and
//! shrunk when an unfinished write is dropped or a batch is acknowledged.
//!
//! The free-space reserve matters because of sled: once one of its writes
//! fails (`ENOSPC`), sled 0.34 refuses every later operation until it is
//! reopened. Ciphertext is appended and synced *before* its index entry, so
//! a full disk normally fails the segment write, which leaves nothing
//! indexed; the reserve keeps room for the index's own writes, so that the
//! relay goes on serving as soon as space is freed, without a restart.
//!
//! # Checking
//! [`Store::check`] (`relay check`, `check.rs`) compares the index with the
//! segments and reports every difference; [`Store::open_for_check`] opens a
//! store without the start-up recovery, so checking changes nothing the
//! relay wrote (sled may still rewrite its own log metadata when it opens).
//!
//! # Migration
//! A store written by the one-file-per-submission layout (`objects/`,
//! `pending/`) is migrated on its first start (`migrate.rs`): every
//! ciphertext is appended to a segment and its index entry pointed there,
//! in durable steps, before its file is deleted, so a crash at any point
//! loses nothing and the next start carries on.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use format::{BatchId, Day, Digest, ThreadId};
use serde::{Deserialize, Serialize};

use crate::{Error, fsutil};

mod batches;
mod check;
mod commit;
mod lanes;
mod migrate;
mod open;
mod segments;
mod threads;

pub use check::CheckReport;
pub use commit::PendingSubmission;

/// A segment takes no more appends once it is this long (by default;
/// [`Options::segment_bytes`]); the next round starts a new one. (A
/// ciphertext larger than this gets a segment to itself.)
pub const SEGMENT_BYTES: u64 = 256 << 20;
/// Ciphertexts up to this size wait for their commit round in memory;
/// larger ones are written into a lane.
pub const INLINE_BYTES: u64 = 256 << 10;
/// Most bytes of ciphertext waiting in memory at once; past it, even small
/// ones go to lanes.
const INLINE_BUDGET: u64 = 32 << 20;
/// Buffer between the sealer and a lane, and for copies.
const IO_BUFFER: usize = 64 * 1024;

const META: u8 = b'm';
const SEGMENT: u8 = b'G';
const COMPACTION: u8 = b'C';
const BATCH: u8 = b'B';
const MANIFEST: u8 = b'M';
const SIGNATURE: u8 = b'S';
/// The old layout's purge marker (an acknowledgement a crash interrupted);
/// only migration reads it.
const PURGE: u8 = b'x';
const LOOKUP: u8 = b'L';
const THREAD: u8 = b'T';
const REPLY: u8 = b'R';
const DELETED_REPLY: u8 = b'D';

/// How the store runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// sled's page cache in bytes.
    pub cache_bytes: u64,
    /// How often a commit round runs (`store.commit_interval_ms`). Zero:
    /// a round runs as soon as someone waits for one (lowest latency, but
    /// file times then give the time of the latest round with a
    /// submission, until the next idle round a second later covers it).
    pub commit_interval: Duration,
    /// How often every segment holding dead bytes is compacted
    /// (`store.compact_interval_minutes`).
    pub compact_interval: Duration,
    /// How many lanes to keep (twice the concurrent uploads: a finished
    /// writer holds its lane until its round).
    pub lanes: usize,
    /// When a segment takes no more appends ([`SEGMENT_BYTES`]; smaller
    /// in tests).
    pub segment_bytes: u64,
}

impl Options {
    /// The defaults, with a page cache of `cache_bytes`.
    pub fn new(cache_bytes: u64) -> Self {
        Self {
            cache_bytes,
            commit_interval: Duration::from_millis(10),
            compact_interval: Duration::from_secs(60 * 60),
            lanes: 32,
            segment_bytes: SEGMENT_BYTES,
        }
    }
}

/// Where a submission's ciphertext is.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// The segment's number.
    pub segment: u32,
    /// Its first byte's offset in the segment.
    pub offset: u64,
}

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
    /// Where its ciphertext is. `None` only in a store of the old layout
    /// not yet migrated (its ciphertext is then `objects/<id>.age`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Location>,
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
    /// Finished submissions waiting for the next commit round.
    pub pending: u64,
    /// Follow-up threads.
    pub threads: u64,
    /// Replies held for sources.
    pub replies: u64,
    /// Segment files, lanes included.
    pub segments: u64,
    /// Of those, lanes.
    pub lanes: u64,
    /// Their committed bytes, live and dead.
    pub segment_bytes: u64,
    /// Of those, bytes of acknowledged submissions awaiting compaction.
    pub dead_bytes: u64,
}

/// Room accounting ("Room: quota and free space" above).
struct Space {
    /// Ciphertext bytes held, plus those being written right now.
    used: AtomicU64,
    /// `limits.max_store_bytes` (no limit until [`Store::set_limits`]).
    max: AtomicU64,
    /// `limits.min_free_bytes` (no reserve until [`Store::set_limits`]).
    min_free: AtomicU64,
    /// Bytes of finished ciphertexts waiting in memory ([`INLINE_BUDGET`]).
    inline: AtomicU64,
}

impl Space {
    fn new() -> Self {
        Self {
            used: AtomicU64::new(0),
            max: AtomicU64::new(u64::MAX),
            min_free: AtomicU64::new(0),
            inline: AtomicU64::new(0),
        }
    }

    /// Counts `n` more bytes against `limit`, unless that would cross it.
    fn reserve(counter: &AtomicU64, n: u64, limit: u64) -> bool {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    /// Stops counting `n` bytes.
    fn release(counter: &AtomicU64, n: u64) {
        let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            Some(used.saturating_sub(n))
        });
    }
}

/// What the store's threads share.
struct Inner {
    db: sled::Db,
    /// The store's directory.
    dir: PathBuf,
    /// `dir/segments`.
    segments_dir: PathBuf,
    /// The segment table. Held by whoever changes where bytes are or
    /// whether they are live (commit rounds, acknowledgements, batch
    /// records, compaction), so that those never interleave.
    table: Mutex<segments::Table>,
    /// Open segment files, for readers (who must not wait for a round).
    files: RwLock<std::collections::BTreeMap<u32, Arc<File>>>,
    /// Finished submissions waiting for a commit round.
    to_publish: Mutex<Vec<commit::Queued>>,
    /// Submissions a failed round dropped, with why, until their writer
    /// asks ([`Store::commit`]): a round can take a submission before its
    /// writer starts waiting, and the next round, which answers the
    /// writer, may well succeed.
    lost: Mutex<std::collections::HashMap<format::SubmissionId, commit::RoundFailure>>,
    /// Test hook: the next this many rounds fail as a full disk would.
    #[cfg(test)]
    fail_rounds: std::sync::atomic::AtomicU32,
    /// The lanes that are free.
    lanes: lanes::Lanes,
    /// Directories and files the cover touches each round, besides the
    /// store's own (the spool's), set by [`Store::cover_also`].
    also_cover: Mutex<Vec<PathBuf>>,
    /// What the cover keeps open between full walks.
    cover: Mutex<commit::Cover>,
    space: Space,
    options: Options,
}

/// Handle to the store. Operations are synchronous (call them from a
/// blocking thread in async code), except [`Store::sync`], the async group
/// commit.
pub struct Store {
    inner: Arc<Inner>,
    flusher: commit::Flusher,
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

fn id_from_key(k: &[u8]) -> Result<format::SubmissionId, Error> {
    let bytes: [u8; 16] = k
        .get(1..17)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| Error::Corrupt("a store key is too short".into()))?;
    Ok(format::SubmissionId::from_bytes(bytes))
}

fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, v: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(v).map_err(|e| Error::Corrupt(format!("unreadable {what}: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own record types serialise infallibly (strings and integers).
    serde_json::to_vec(v).unwrap_or_default()
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these leaves plain data behind (no
    // half-applied invariant: every change is applied to sled first).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Store {
    /// Sets the quota (`limits.max_store_bytes`) and the free-space reserve
    /// (`limits.min_free_bytes`; 0 for none) that [`Store::admit`] and
    /// ciphertext writes enforce.
    pub fn set_limits(&self, max_store_bytes: u64, min_free_bytes: u64) {
        let space = &self.inner.space;
        space.max.store(max_store_bytes, Ordering::Release);
        space.min_free.store(min_free_bytes, Ordering::Release);
    }

    /// Also covers these paths (files or directories, not recursively)
    /// in each round: the spool directory and its pool.
    pub fn cover_also(&self, paths: Vec<PathBuf>) {
        *lock(&self.inner.also_cover) = paths;
        // Covered (and held) from the next round on.
        lock(&self.inner.cover).last_full = None;
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
            let available = fsutil::available_bytes(&self.inner.dir)
                .map_err(io_err("measure free disk space"))?;
            if available < min_free.saturating_add(upcoming) {
                return Err(Error::StoreFull(
                    "the disk is nearly full (less than limits.min_free_bytes would be left)",
                ));
            }
        }
        Ok(())
    }

    /// The metadata of one submission.
    pub fn meta(&self, id: &format::SubmissionId) -> Result<Option<SubmissionMeta>, Error> {
        self.inner.meta(id)
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
        s.pending = lock(&self.inner.to_publish).len() as u64;
        let table = lock(&self.inner.table);
        for record in table.records.values() {
            s.segments += 1;
            s.lanes += u64::from(record.lane);
            s.segment_bytes += record.len;
            s.dead_bytes += record.dead;
        }
        Ok(s)
    }
}

impl Inner {
    fn meta(&self, id: &format::SubmissionId) -> Result<Option<SubmissionMeta>, Error> {
        self.db
            .get(key(META, id.as_bytes()))
            .map_err(store_err("read metadata"))?
            .map(|v| decode("submission metadata", &v))
            .transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
