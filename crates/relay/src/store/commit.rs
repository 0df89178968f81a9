//! Commit rounds: how finished ciphertexts become durable and indexed, and
//! the cover that makes every round look alike on disk.
//!
//! A writer ([`PendingSubmission`]) holds its ciphertext in memory up to
//! [`INLINE_BYTES`](super::INLINE_BYTES), or writes it into a lane it
//! borrowed (`lanes.rs`); finished, it queues itself. The one commit thread
//! runs a round every `commit_interval` (or, with an interval of zero, as
//! soon as someone waits): it takes the queue, appends every in-memory
//! ciphertext to the active segment in random order, `fdatasync`s the
//! segments and lanes written, indexes the entries with their segments' new
//! committed lengths in one sled batch, flushes sled, wakes
//! the waiters, and then sets the times of every file and directory in the
//! store (and of the spool) to now. Rounds with nothing to commit do the
//! last step too, so a file's times say when the last round ran, which
//! they do every interval whether or not anyone submitted.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use format::{Day, Digest, SubmissionId, ThreadId};
use rand::seq::SliceRandom;
use sha2::Digest as _;

use super::lanes::{LaneWriter, Loan};
use super::segments::{self, SegmentRecord};

use super::{
    INLINE_BUDGET, INLINE_BYTES, IO_BUFFER, Inner, Location, META, Space, Store, SubmissionMeta,
    encode, io_err, key, lock, store_err,
};
use crate::Error;

/// How long a writer waits for a free lane before giving up.
const LANE_WAIT: Duration = Duration::from_secs(30);
/// With `commit_interval` zero: how often an idle round still runs.
const IDLE_ROUND: Duration = Duration::from_secs(1);
/// How often a round covers every file and directory, not only those a
/// round may change.
const FULL_COVER_EVERY: Duration = Duration::from_secs(1);

/// Handles the cover rounds keep open (`Inner::cover`).
#[derive(Default)]
pub(super) struct Cover {
    handles: Vec<File>,
    pub(super) last_full: Option<Instant>,
}

/// Where a finished ciphertext waits.
enum Body {
    Inline(Vec<u8>),
    /// Written into this lane already, from its `start`.
    Lane(Loan),
}

/// A finished submission waiting for its round.
pub(super) struct Queued {
    id: SubmissionId,
    meta: SubmissionMeta,
    body: Body,
    inner: Arc<Inner>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        // Committed or failed, its bytes no longer wait in memory. (Its
        // lane goes back to the pool as the body drops: cut back to where
        // it was unless the round committed it.)
        if let Body::Inline(v) = &self.body {
            Space::release(&self.inner.space.inline, v.len() as u64);
        }
    }
}

/// A submission being written. It becomes visible only through
/// [`PendingSubmission::finish`] and the next commit round; dropped
/// unfinished, it leaves nothing.
pub struct PendingSubmission {
    inner: Arc<Inner>,
    id: SubmissionId,
    /// In memory until it passes `INLINE_BYTES`, then in a lane.
    inline: Vec<u8>,
    lane: Option<(BufWriter<LaneWriter>, Loan)>,
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

impl Store {
    /// Starts writing a new submission under a fresh id.
    pub fn begin(&self, id: SubmissionId) -> Result<PendingSubmission, Error> {
        if self.inner.meta(&id)?.is_some() {
            // 128 random bits never collide in practice; refuse rather than
            // overwrite if they ever do.
            return Err(Error::Corrupt("submission id already in use".into()));
        }
        Ok(PendingSubmission {
            inner: self.inner.clone(),
            id,
            inline: Vec::new(),
            lane: None,
            hasher: sha2::Sha256::new(),
            size: 0,
            done: false,
        })
    }

    /// Waits until everything written so far is durable and visible: until
    /// the end of the next commit round. Concurrent callers share it.
    pub async fn sync(&self) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.flusher.request(tx)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failure)) => Err(failure.into_error()),
            Err(_) => Err(Error::Store {
                action: "commit",
                source: "the commit thread stopped".into(),
            }),
        }
    }

    /// Waits until the submission `id`, finished before this call, is
    /// durable: [`Store::sync`], and then also fails if the round that
    /// took it failed before this caller started waiting.
    pub async fn commit(&self, id: SubmissionId) -> Result<(), Error> {
        let synced = self.sync().await;
        match lock(&self.inner.lost).remove(&id) {
            Some(failure) => Err(failure.into_error()),
            None => synced,
        }
    }

    /// Commits now, on this thread (for the offline commands and tests).
    pub fn sync_blocking(&self) -> Result<(), Error> {
        self.inner.commit_round()
    }
}

impl PendingSubmission {
    /// Queues the finished ciphertext for the next commit round and
    /// returns its metadata. Not durable nor visible to a restarted relay
    /// until [`Store::sync`] returns.
    pub fn finish(
        mut self,
        received_day: Day,
        epoch: u32,
        key_set: String,
        thread: Option<ThreadId>,
    ) -> Result<SubmissionMeta, Error> {
        let body = match self.lane.take() {
            Some((writer, loan)) => {
                writer
                    .into_inner()
                    .map_err(|e| io_err("write to a lane")(e.into_error()))?;
                Body::Lane(loan)
            }
            None => {
                let bytes = std::mem::take(&mut self.inline);
                // Counted against the in-memory budget by `write`.
                Body::Inline(bytes)
            }
        };
        let meta = SubmissionMeta {
            received_day,
            size: self.size,
            sha256: Digest::from_hasher(std::mem::take(&mut self.hasher)),
            epoch,
            key_set,
            batch: None,
            thread,
            at: None,
        };
        lock(&self.inner.to_publish).push(Queued {
            id: self.id,
            meta: meta.clone(),
            body,
            inner: self.inner.clone(),
        });
        self.done = true;
        Ok(meta)
    }

    /// The id being written.
    pub fn id(&self) -> SubmissionId {
        self.id
    }

    /// Keeps `data` in memory if it and the budget allow, else writes it
    /// to the lane.
    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        let wanted = data.len() as u64;
        if self.lane.is_none() {
            let fits = self.size + wanted <= INLINE_BYTES
                && Space::reserve(&self.inner.space.inline, wanted, INLINE_BUDGET);
            if fits {
                self.inline.extend_from_slice(data);
                return Ok(());
            }
            self.spill()?;
        }
        match self.lane.as_mut() {
            Some((w, _)) => w.write_all(data),
            None => Err(io::Error::other("no lane")),
        }
    }

    /// Moves what is in memory to a lane, and writes there from now on.
    fn spill(&mut self) -> io::Result<()> {
        let loan = Loan::take(&self.inner, LANE_WAIT)?;
        let mut writer = BufWriter::with_capacity(IO_BUFFER, loan.writer());
        // Should this fail, the loan cuts the lane back as it drops.
        writer.write_all(&self.inline)?;
        Space::release(&self.inner.space.inline, self.inline.len() as u64);
        self.inline = Vec::new();
        self.lane = Some((writer, loan));
        Ok(())
    }
}

impl Write for PendingSubmission {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.done {
            return Err(io::Error::other("submission already finished"));
        }
        // Counted before it is written, so concurrent writers cannot pass
        // the quota together; `size` is what this submission has counted.
        let wanted = data.len() as u64;
        let inner = self.inner.clone();
        let space = &inner.space;
        if !Space::reserve(&space.used, wanted, space.max.load(Ordering::Acquire)) {
            return Err(io::Error::new(
                io::ErrorKind::QuotaExceeded,
                "the store holds its quota of ciphertext (limits.max_store_bytes)",
            ));
        }
        if let Err(e) = self.put(data) {
            Space::release(&space.used, wanted);
            return Err(e);
        }
        self.hasher.update(data);
        self.size += wanted;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.lane.as_mut() {
            Some((w, _)) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PendingSubmission {
    fn drop(&mut self) {
        if !self.done {
            // Unfinished: give back what it counted. Its lane, if any, is
            // cut back and goes back to the pool as it drops.
            Space::release(&self.inner.space.used, self.size);
            Space::release(&self.inner.space.inline, self.inline.len() as u64);
            self.inline.clear();
        }
    }
}

/// Why a round failed, as its waiters hear it.
#[derive(Clone, Debug)]
pub(super) struct RoundFailure {
    pub(super) message: String,
    /// The operating system's error kind, if one caused it (so that a
    /// full disk is still recognised as one: [`Error::is_out_of_space`]).
    pub(super) kind: Option<io::ErrorKind>,
}

impl RoundFailure {
    fn into_error(self) -> Error {
        Error::Store {
            action: "commit",
            source: match self.kind {
                Some(kind) => Box::new(io::Error::new(kind, self.message)),
                None => self.message.into(),
            },
        }
    }

    fn of(e: &Error) -> Self {
        let mut kind = None;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<io::Error>() {
                kind = Some(io.kind());
                break;
            }
            source = err.source();
        }
        Self {
            message: e.to_string(),
            kind,
        }
    }
}

impl Inner {
    /// One commit round: makes every queued submission durable and
    /// visible, then covers the store's times.
    pub(super) fn commit_round(&self) -> Result<(), Error> {
        let mut queued = std::mem::take(&mut *lock(&self.to_publish));
        #[cfg(test)]
        if !queued.is_empty()
            && self
                .fail_rounds
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
        {
            let e = Error::Store {
                action: "append to a segment",
                source: Box::new(io::Error::from(io::ErrorKind::StorageFull)),
            };
            self.dropped(&queued, &e);
            for q in &queued {
                Space::release(&self.space.used, q.meta.size);
            }
            return Err(e);
        }
        let result = if queued.is_empty() {
            // Anything else a caller of `sync` waits for: threads, replies.
            self.db
                .flush()
                .map(drop)
                .map_err(store_err("flush the index"))
        } else {
            // Random order within the round: byte offsets then give the
            // order of arrival only across rounds.
            queued.shuffle(&mut rand::rngs::OsRng);
            self.append_and_index(&mut queued)
        };
        if let Err(e) = &result {
            // Not stored: their writers hear the error, from this round or
            // through `lost`. What they had counted is given back.
            self.dropped(&queued, e);
            for q in &queued {
                Space::release(&self.space.used, q.meta.size);
            }
        }
        drop(queued);
        self.cover();
        result
    }

    /// Records the submissions a failed round dropped, for
    /// [`Store::commit`]. Bounded: a writer that never asks (its request
    /// was cancelled) leaves an entry, and past the bound the oldest
    /// answers are the ones least likely to be asked for.
    fn dropped(&self, queued: &[Queued], e: &Error) {
        const MAX_LOST: usize = 4096;
        let failure = RoundFailure::of(e);
        let mut lost = lock(&self.lost);
        if lost.len() + queued.len() > MAX_LOST {
            lost.clear();
        }
        for q in queued {
            lost.insert(q.id, failure.clone());
        }
    }

    fn append_and_index(&self, queued: &mut [Queued]) -> Result<(), Error> {
        let mut table = lock(&self.table);
        // The lengths as this round extends them; the table changes only
        // once the index says so.
        let mut lengths: std::collections::BTreeMap<u32, SegmentRecord> = Default::default();
        let result = (|| -> Result<(), Error> {
            for q in queued.iter_mut() {
                let (n, mut record, offset) = match &q.body {
                    Body::Inline(bytes) => {
                        let (n, record) = self.room(&mut table, &lengths, q.meta.size)?;
                        let file = self.segment_file(n).ok_or_else(|| {
                            Error::Corrupt(format!("segment {n} has no open file"))
                        })?;
                        segments::write_at(&file, bytes, record.len)
                            .map_err(io_err("append to a segment"))?;
                        (n, record, record.len)
                    }
                    Body::Lane(loan) => {
                        // Written already; one writer per lane, so it ends
                        // where this ciphertext starts.
                        let record = lengths
                            .get(&loan.n)
                            .or_else(|| table.records.get(&loan.n))
                            .copied()
                            .filter(|r| r.lane && r.len == loan.start)
                            .ok_or_else(|| {
                                Error::Corrupt(format!(
                                    "lane {} is not where its writer started",
                                    loan.n
                                ))
                            })?;
                        (loan.n, record, loan.start)
                    }
                };
                q.meta.at = Some(Location { segment: n, offset });
                record.len += q.meta.size;
                lengths.insert(n, record);
            }
            for n in lengths.keys() {
                if let Some(file) = self.segment_file(*n) {
                    file.sync_data().map_err(io_err("sync a segment"))?;
                }
            }
            let mut batch = sled::Batch::default();
            for q in queued.iter() {
                batch.insert(key(META, q.id.as_bytes()), encode(&q.meta));
            }
            for (n, record) in &lengths {
                batch.insert(segments::record_key(*n), encode(record));
            }
            self.db
                .apply_batch(batch)
                .map_err(store_err("index submissions"))?;
            self.db.flush().map_err(store_err("flush the index"))?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                for q in queued.iter_mut() {
                    if let Body::Lane(loan) = &mut q.body {
                        loan.committed = lengths.get(&loan.n).map(|r| r.len);
                    }
                }
                let full: Vec<u32> = lengths
                    .iter()
                    .filter(|(_, r)| r.lane && r.len >= self.options.segment_bytes)
                    .map(|(n, _)| *n)
                    .collect();
                for (n, record) in lengths {
                    table.records.insert(n, record);
                }
                for _ in full {
                    // Its writer does not give it back; a new lane takes
                    // its place. Should that fail, the pool is one short
                    // until the next start.
                    if let Err(e) = self.add_lanes(&mut table, 1) {
                        tracing::error!(error = %e, "could not replace a full lane");
                    }
                }
                Ok(())
            }
            Err(e) => {
                // Whatever was appended lies past the committed length: the
                // next round writes over it, and a start-up cuts it off.
                // Put the lengths back on disk too, best effort. (Lanes are
                // cut back by their loans as they drop.)
                for n in lengths.keys() {
                    if let (Some(file), Some(r)) = (self.segment_file(*n), table.records.get(n)) {
                        let _ = file.set_len(r.len);
                    }
                }
                Err(e)
            }
        }
    }

    /// Sets the access and modification times of what a round may have
    /// changed to now: every segment (lanes too), spool file and the
    /// index's files, through handles held open (one `futimens` each); and
    /// at most once a second, of every file and directory of the store and
    /// the spool, found afresh (which also renews the handles). Best
    /// effort: a file that vanished meanwhile is skipped.
    ///
    /// Directories change only when a segment is made or removed, never
    /// per submission, so once a second is enough for them; files a
    /// submission changes are covered every round.
    pub(super) fn cover(&self) {
        let now = SystemTime::now();
        let times = std::fs::FileTimes::new()
            .set_accessed(now)
            .set_modified(now);
        let mut cover = lock(&self.cover);
        if cover
            .last_full
            .is_none_or(|t| t.elapsed() >= FULL_COVER_EVERY)
        {
            cover.handles = self.cover_walk(times);
            cover.last_full = Some(Instant::now());
        } else {
            for f in &cover.handles {
                let _ = f.set_times(times);
            }
        }
        drop(cover);
        let segments: Vec<Arc<File>> = self
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for f in segments {
            let _ = f.set_times(times);
        }
    }

    /// Touches every file and directory of the store and the extra paths,
    /// and returns handles to the files (not the segments, which have
    /// their own) for the rounds until the next walk.
    fn cover_walk(&self, times: std::fs::FileTimes) -> Vec<File> {
        let mut handles = Vec::new();
        let mut seen = BTreeSet::new();
        let mut touch = |path: &Path, keep: bool| {
            if seen.insert(path.to_owned())
                && let Ok(f) = File::open(path)
            {
                let _ = f.set_times(times);
                if keep {
                    handles.push(f);
                }
            }
        };
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(path);
                    } else {
                        let segment = path.starts_with(&self.segments_dir);
                        touch(&path, !segment);
                    }
                }
            }
            touch(&dir, false);
        }
        for path in lock(&self.also_cover).iter() {
            touch(path, path.is_file());
        }
        handles
    }
}

/// The commit thread.
pub(super) struct Flusher {
    tx: Option<mpsc::Sender<FlushWaiter>>,
    thread: Option<JoinHandle<()>>,
}

type FlushWaiter = tokio::sync::oneshot::Sender<Result<(), RoundFailure>>;

impl Flusher {
    pub(super) fn start(inner: Arc<Inner>) -> Self {
        let (tx, rx) = mpsc::channel::<FlushWaiter>();
        let thread = std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || commit_loop(&inner, &rx))
            .ok();
        Flusher {
            tx: Some(tx),
            thread,
        }
    }

    /// No commit thread: [`Store::sync`] fails.
    pub(super) fn none() -> Self {
        Flusher {
            tx: None,
            thread: None,
        }
    }

    pub(super) fn request(&self, waiter: FlushWaiter) -> Result<(), Error> {
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

/// Each round: wait for the next tick (or, with no interval, for the first
/// waiter), take everyone who is waiting by then, commit once, wake them
/// all. A waiter registers only after its submission was queued, so the
/// round that answers it covers it. Submissions queued with nobody waiting
/// (a client that went away after its upload was received) are committed
/// by the same rounds.
fn commit_loop(inner: &Inner, rx: &mpsc::Receiver<FlushWaiter>) {
    let interval = inner.options.commit_interval;
    let mut next_tick = Instant::now() + interval;
    let mut next_cycle = Instant::now() + inner.options.compact_interval;
    let mut waiters: Vec<FlushWaiter> = Vec::new();
    loop {
        let wait = if interval.is_zero() {
            IDLE_ROUND
        } else {
            next_tick.saturating_duration_since(Instant::now())
        };
        match rx.recv_timeout(wait) {
            Ok(w) => {
                waiters.push(w);
                if !interval.is_zero() {
                    // Keep the cadence: wait for the tick.
                    continue;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The store is closing: commit what is queued, answer
                // whoever still waits.
                let result = inner.commit_round().map_err(|e| RoundFailure::of(&e));
                for w in waiters.drain(..) {
                    let _ = w.send(result.clone());
                }
                break;
            }
        }
        if !interval.is_zero() {
            if Instant::now() < next_tick {
                continue;
            }
            // Ticks stay on their grid, even after a slow round.
            while next_tick <= Instant::now() {
                next_tick += interval;
            }
        }
        waiters.extend(rx.try_iter());
        let result = inner.commit_round().map_err(|e| RoundFailure::of(&e));
        if let Err(e) = &result {
            tracing::error!(error = %e.message, "commit round failed");
        }
        for w in waiters.drain(..) {
            let _ = w.send(result.clone());
        }
        let all = Instant::now() >= next_cycle;
        if all {
            next_cycle = Instant::now() + inner.options.compact_interval;
        }
        if let Err(e) = inner.compact(all) {
            tracing::error!(error = %e, "compaction failed; it is retried after the next round");
        }
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
