//! Lanes: segments that large ciphertexts are written into while they are
//! sealed, so that their round has nothing left to copy.
//!
//! A ciphertext larger than [`INLINE_BYTES`](super::INLINE_BYTES) used to
//! wait in a scratch file and be copied into the active segment by its
//! round: every large upload was written twice, and the copies ran one
//! after another on the commit thread (1 GiB ingest fell from 253 to
//! 143 MiB/s). Now the pool of files made at start *are* segments, marked
//! `lane` in their record. A writer that spills borrows a free lane (a
//! random one), appends in place from the lane's committed length on, and
//! queues itself; its round only `fdatasync`s the lane and indexes the
//! entry with the lane's new committed length, as for any segment. One
//! writer per lane at a time, so entries never interleave.
//!
//! - **Abort** (the upload failed or was refused): the loan cuts the lane
//!   back to where it started, which also drops the dirty pages.
//! - **Crash**: what a writer appended lies past the committed length, a
//!   torn tail that start-up cuts off like any other.
//! - **Full**: a lane whose committed length reaches `segment_bytes` is not
//!   lent again; its round makes a new lane to replace it (a file born
//!   then, as when the active segment fills). The full one is compacted
//!   and removed like any segment.
//! - **Compaction** borrows a lane like a writer (so it never touches one
//!   being written), copies its live ciphertexts into a new segment, and
//!   resets the lane to empty (its record to length 0, then its file),
//!   rather than deleting it: the pool keeps its files.
//!
//! Cost: offsets within a lane give the order of the large ciphertexts
//! written through it across rounds, as offsets in the active segment do
//! for the small ones (SECURITY.md).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rand::Rng as _;

use super::segments::{self, SegmentRecord, Table};
use super::{Inner, encode, lock, store_err};
use crate::Error;

/// Which lanes are free, and their committed lengths.
#[derive(Debug, Default)]
struct State {
    /// Free lanes and the committed length of each.
    free: Vec<(u32, u64)>,
    /// Lanes lent out (to a writer or to compaction).
    out: BTreeSet<u32>,
}

/// The pool of lanes (`Inner::lanes`).
#[derive(Debug, Default)]
pub(super) struct Lanes {
    state: Mutex<State>,
    returned: Condvar,
}

impl Lanes {
    /// Makes `n` (committed to `len`) available.
    pub(super) fn add(&self, n: u32, len: u64) {
        let mut s = lock(&self.state);
        s.out.remove(&n);
        s.free.push((n, len));
        drop(s);
        self.returned.notify_one();
    }

    /// Lends out a random free lane, waiting up to `wait` for one.
    fn take(&self, wait: Duration) -> Option<(u32, u64)> {
        let deadline = Instant::now() + wait;
        let mut s = lock(&self.state);
        loop {
            if !s.free.is_empty() {
                let i = rand::rngs::OsRng.gen_range(0..s.free.len());
                let (n, len) = s.free.swap_remove(i);
                s.out.insert(n);
                return Some((n, len));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            s = self
                .returned
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Lends out lane `n` if it is free (for compaction).
    pub(super) fn take_if_free(&self, n: u32) -> Option<u64> {
        let mut s = lock(&self.state);
        let i = s.free.iter().position(|(m, _)| *m == n)?;
        let (_, len) = s.free.swap_remove(i);
        s.out.insert(n);
        Some(len)
    }

    /// Takes `n` back after a loan; `Some(len)`: free again, committed to
    /// `len`; `None`: retired (full), not lent again.
    pub(super) fn give_back(&self, n: u32, len: Option<u64>) {
        let mut s = lock(&self.state);
        s.out.remove(&n);
        if let Some(len) = len {
            s.free.push((n, len));
        }
        drop(s);
        self.returned.notify_one();
    }

    /// How many lanes are free now (tests).
    #[cfg(test)]
    pub(super) fn available(&self) -> usize {
        lock(&self.state).free.len()
    }

    /// Whether lane `n` is lent out.
    pub(super) fn is_out(&self, n: u32) -> bool {
        lock(&self.state).out.contains(&n)
    }
}

/// A lane lent to one writer, from its spill until its round is over.
pub(super) struct Loan {
    inner: Arc<Inner>,
    pub(super) n: u32,
    pub(super) file: Arc<File>,
    /// The lane's committed length when lent: where this ciphertext starts.
    pub(super) start: u64,
    /// Set by the round that indexed it: the lane's new committed length.
    pub(super) committed: Option<u64>,
}

impl Loan {
    /// Borrows a free lane, waiting up to `wait` for one.
    pub(super) fn take(inner: &Arc<Inner>, wait: Duration) -> io::Result<Self> {
        let (n, start) = inner.lanes.take(wait).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::ResourceBusy,
                "every lane is in use (too many large submissions at once)",
            )
        })?;
        let Some(file) = inner.segment_file(n) else {
            inner.lanes.give_back(n, Some(start));
            return Err(io::Error::other(format!("lane {n} has no open file")));
        };
        Ok(Self {
            inner: inner.clone(),
            n,
            file,
            start,
            committed: None,
        })
    }

    /// A writer appending at the lane's committed length.
    pub(super) fn writer(&self) -> LaneWriter {
        LaneWriter {
            file: self.file.clone(),
            pos: self.start,
        }
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        match self.committed {
            Some(len) => {
                let full = len >= self.inner.options.segment_bytes;
                self.inner.lanes.give_back(self.n, (!full).then_some(len));
            }
            None => {
                // Not stored: cut the lane back, so that the next writer
                // starts where the index says it ends. Should this fail,
                // the bytes lie past the committed length, where the next
                // writer overwrites them and start-up cuts them off.
                let _ = self.file.set_len(self.start);
                self.inner.lanes.give_back(self.n, Some(self.start));
            }
        }
    }
}

/// Appends to a lane at its own position (`pwrite`), so that a lane's file
/// offset is nobody's state.
pub(super) struct LaneWriter {
    file: Arc<File>,
    pos: u64,
}

impl Write for LaneWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(data, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Inner {
    /// Makes `count` new, empty lanes and lends them out from now on: the
    /// files first, then their records in one batch (a crash in between
    /// leaves files no record names, which start-up deletes).
    pub(super) fn add_lanes(&self, table: &mut Table, count: usize) -> Result<(), Error> {
        let mut made = Vec::with_capacity(count);
        let mut batch = sled::Batch::default();
        let first = table.next_number();
        for i in 0..count {
            let n = first.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
            made.push((n, segments::create_file(&self.segments_dir, n)?));
            batch.insert(segments::record_key(n), encode(&SegmentRecord::new(true)));
        }
        self.db
            .apply_batch(batch)
            .map_err(store_err("record new lanes"))?;
        self.db.flush().map_err(store_err("flush the index"))?;
        for (n, file) in made {
            table.records.insert(n, SegmentRecord::new(true));
            self.add_file(n, file);
            self.lanes.add(n, 0);
        }
        Ok(())
    }

    /// At start: lends out every lane that is not full, and makes new ones
    /// until `options.lanes` are.
    pub(super) fn ensure_lanes(&self) -> Result<(), Error> {
        let mut table = lock(&self.table);
        let mut usable = 0;
        for (n, r) in &table.records {
            if r.lane && r.len < self.options.segment_bytes {
                self.lanes.add(*n, r.len);
                usable += 1;
            }
        }
        let missing = self.options.lanes.saturating_sub(usable);
        if missing > 0 {
            self.add_lanes(&mut table, missing)?;
        }
        Ok(())
    }
}
