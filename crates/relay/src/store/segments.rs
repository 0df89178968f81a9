//! Segment files: where ciphertexts live, how they are read, and how dead
//! bytes are compacted away.
//!
//! A segment is a plain file of ciphertexts back to back, with no framing:
//! the index says where each one starts and how long it is. Its sled
//! record holds its *committed length*, the length up to which every byte
//! was durable when a round indexed it; anything past that is a torn tail.
//!
//! # Compaction, crash-safely
//! 1. record `C` = {from, to} durably;
//! 2. create segment `to`, copy every live ciphertext of `from` into it (in
//!    index order, which is random), `fdatasync` it and its directory;
//! 3. in one sled batch: point each moved entry at `to`, add `to`'s record,
//!    remove `from`'s record and `C`; flush;
//! 4. delete `from`'s file.
//!
//! A crash before 3 leaves `C`: start-up deletes `to`'s file and `C`, and
//! `from` is as it was. A crash after 3 leaves `from`'s file with no
//! record: start-up deletes it. Either way every entry points at durable
//! bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use format::{Day, SubmissionId};
use serde::{Deserialize, Serialize};

use super::{
    COMPACTION, IO_BUFFER, Inner, META, SEGMENT, Store, SubmissionMeta, decode, encode, fsync_dir,
    id_from_key, io_err, key, lock, store_err,
};
use crate::Error;

/// A segment's sled record.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(super) struct SegmentRecord {
    /// The UTC day it was created.
    pub(super) created_day: Day,
    /// Bytes committed: every indexed ciphertext lies below this.
    pub(super) len: u64,
    /// Of those, bytes of acknowledged submissions (no entry points there).
    pub(super) dead: u64,
    /// A lane (`lanes.rs`): written by one large ciphertext's writer at a
    /// time, never by a round's appends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) lane: bool,
}

impl SegmentRecord {
    /// An empty segment (`lane`: an empty lane) made today.
    pub(super) fn new(lane: bool) -> Self {
        Self {
            created_day: Day::today(),
            len: 0,
            dead: 0,
            lane,
        }
    }

    fn live(&self) -> u64 {
        self.len.saturating_sub(self.dead)
    }
}

/// A compaction in progress (`C`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(super) struct CompactionRecord {
    pub(super) from: u32,
    pub(super) to: u32,
}

/// The segments, as the index records them.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) records: BTreeMap<u32, SegmentRecord>,
}

impl Table {
    /// The segment a round appends to: the highest-numbered one that is
    /// not a lane.
    pub(super) fn active(&self) -> Option<u32> {
        self.records
            .iter()
            .rev()
            .find(|(_, r)| !r.lane)
            .map(|(n, _)| *n)
    }

    /// The next unused segment number.
    pub(super) fn next_number(&self) -> u32 {
        self.records
            .keys()
            .next_back()
            .map_or(1, |n| n.saturating_add(1))
    }
}

pub(super) fn file_name(n: u32) -> String {
    format!("{n:08}.seg")
}

/// The number in a segment file's name.
pub(super) fn parse_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

pub(super) fn record_key(n: u32) -> Vec<u8> {
    key(SEGMENT, &n.to_be_bytes())
}

/// Opens a segment file for reading and appending.
pub(super) fn open_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Creates a new, empty segment file and makes its name durable.
pub(super) fn create_file(dir: &Path, n: u32) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(file_name(n)))
        .map_err(io_err("create a segment file"))?;
    fsync_dir(dir).map_err(io_err("sync the segments directory"))?;
    Ok(file)
}

/// Writes all of `data` at `offset`.
pub(super) fn write_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(data, offset)
}

/// Copies `len` bytes from `from` at `from_offset` to `to` at `to_offset`.
pub(super) fn copy_range(
    from: &File,
    from_offset: u64,
    to: &File,
    to_offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; IO_BUFFER * 4];
    let mut done = 0u64;
    while done < len {
        let n = usize::try_from((len - done).min(buf.len() as u64)).unwrap_or(buf.len());
        from.read_exact_at(&mut buf[..n], from_offset + done)?;
        to.write_all_at(&buf[..n], to_offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Reads one ciphertext out of a segment.
pub(super) struct SegmentReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl SegmentReader {
    pub(super) fn new(file: Arc<File>, offset: u64, len: u64) -> Self {
        Self {
            file,
            pos: offset,
            end: offset.saturating_add(len),
        }
    }
}

impl Read for SegmentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the segment ends before this ciphertext does",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Inner {
    pub(super) fn segment_path(&self, n: u32) -> PathBuf {
        self.segments_dir.join(file_name(n))
    }

    pub(super) fn segment_file(&self, n: u32) -> Option<Arc<File>> {
        self.files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&n)
            .cloned()
    }

    pub(super) fn add_file(&self, n: u32, file: File) -> Arc<File> {
        let file = Arc::new(file);
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(n, file.clone());
        file
    }

    /// The segment the next `size` bytes go to and its record as this
    /// round has extended it so far (`lengths`): the active one, or a new
    /// one if it would pass `segment_bytes` (an empty segment takes any
    /// size). A new segment is created and entered in `table` at once.
    /// Should the round fail, the next one appends to it and indexes its
    /// record; should the relay stop first, start-up deletes the file,
    /// which no entry points into.
    pub(super) fn room(
        &self,
        table: &mut Table,
        lengths: &BTreeMap<u32, SegmentRecord>,
        size: u64,
    ) -> Result<(u32, SegmentRecord), Error> {
        let current = table.active().and_then(|n| {
            lengths
                .get(&n)
                .or_else(|| table.records.get(&n))
                .map(|r| (n, *r))
        });
        if let Some((n, r)) = current
            && (r.len == 0 || r.len.saturating_add(size) <= self.options.segment_bytes)
        {
            return Ok((n, r));
        }
        let n = table.next_number();
        let file = create_file(&self.segments_dir, n)?;
        self.add_file(n, file);
        let record = SegmentRecord::new(false);
        table.records.insert(n, record);
        Ok((n, record))
    }

    fn remove_file_handle(&self, n: u32) {
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&n);
    }

    /// Compacts what needs it now: a segment with nothing live is removed
    /// (a lane emptied); one whose live bytes fell below two thirds of it
    /// is rewritten (at most one per call, so a round is not held up
    /// long); with `all`, every segment holding dead bytes is rewritten
    /// (the periodic cycle). A lane being written is left for later.
    pub(super) fn compact(&self, all: bool) -> Result<(), Error> {
        let mut table = lock(&self.table);
        let candidates: Vec<(u32, SegmentRecord)> =
            table.records.iter().map(|(n, r)| (*n, *r)).collect();
        let active = table.active();
        let mut rewritten = 0;
        for (n, record) in candidates {
            if record.dead == 0 {
                continue;
            }
            let below = record.live().saturating_mul(3) < record.len.saturating_mul(2);
            let empty = record.live() == 0 && Some(n) != active;
            let wanted = empty || all || (below && rewritten == 0);
            if !wanted {
                continue;
            }
            // A lane still in the pool is borrowed for the while, so that
            // no writer appends to it meanwhile; a full lane is no longer
            // lent, but its last writer may not have given it back yet.
            let pooled = record.lane && record.len < self.options.segment_bytes;
            if pooled {
                if self.lanes.take_if_free(n).is_none() {
                    continue;
                }
            } else if record.lane && self.lanes.is_out(n) {
                continue;
            }
            let result = if empty {
                if pooled {
                    self.reset_lane(&mut table, n)
                } else {
                    self.remove_segment(&mut table, n)
                }
            } else {
                rewritten += 1;
                self.rewrite_segment(&mut table, n, pooled)
            };
            if pooled {
                let len = table.records.get(&n).map_or(record.len, |r| r.len);
                self.lanes.give_back(n, Some(len));
            }
            result?;
        }
        Ok(())
    }

    /// Empties lane `n`, which holds nothing live: its record first, then
    /// its file. A crash in between leaves a torn tail start-up cuts.
    fn reset_lane(&self, table: &mut Table, n: u32) -> Result<(), Error> {
        let Some(old) = table.records.get(&n).copied() else {
            return Ok(());
        };
        let record = SegmentRecord {
            len: 0,
            dead: 0,
            ..old
        };
        self.db
            .insert(record_key(n), encode(&record))
            .map_err(store_err("empty a lane"))?;
        self.db.flush().map_err(store_err("flush the index"))?;
        table.records.insert(n, record);
        if let Some(file) = self.segment_file(n) {
            file.set_len(0).map_err(io_err("empty a lane"))?;
        }
        Ok(())
    }

    /// Removes a segment nothing points into.
    fn remove_segment(&self, table: &mut Table, n: u32) -> Result<(), Error> {
        self.db
            .remove(record_key(n))
            .map_err(store_err("remove a segment's record"))?;
        self.db.flush().map_err(store_err("flush the index"))?;
        table.records.remove(&n);
        self.remove_file_handle(n);
        match std::fs::remove_file(self.segment_path(n)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("delete an empty segment")(e)),
        }
        fsync_dir(&self.segments_dir).map_err(io_err("sync the segments directory"))
    }

    /// Rewrites segment `from`'s live ciphertexts into a new segment
    /// (module notes, "Compaction"); `lane`: `from` is a lane in the pool,
    /// which is emptied rather than deleted.
    fn rewrite_segment(&self, table: &mut Table, from: u32, lane: bool) -> Result<(), Error> {
        let to = table.next_number();
        let source = self
            .segment_file(from)
            .ok_or_else(|| Error::Corrupt(format!("segment {from} has no open file")))?;
        // 1.
        self.db
            .insert([COMPACTION], encode(&CompactionRecord { from, to }))
            .map_err(store_err("record a compaction"))?;
        self.db.flush().map_err(store_err("flush the index"))?;
        // 2.
        let target = create_file(&self.segments_dir, to)?;
        let mut moved: Vec<(SubmissionId, SubmissionMeta)> = Vec::new();
        let mut len = 0u64;
        for item in self.db.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let mut meta: SubmissionMeta = decode("submission metadata", &v)?;
            let Some(at) = meta.at.filter(|at| at.segment == from) else {
                continue;
            };
            copy_range(&source, at.offset, &target, len, meta.size)
                .map_err(io_err("copy a ciphertext into a new segment"))?;
            meta.at = Some(super::Location {
                segment: to,
                offset: len,
            });
            len += meta.size;
            moved.push((id_from_key(&k)?, meta));
        }
        target
            .sync_data()
            .map_err(io_err("sync a compacted segment"))?;
        // 3.
        let record = SegmentRecord {
            len,
            ..SegmentRecord::new(false)
        };
        let mut batch = sled::Batch::default();
        for (id, meta) in &moved {
            batch.insert(key(META, id.as_bytes()), encode(meta));
        }
        batch.insert(record_key(to), encode(&record));
        batch.remove(&[COMPACTION][..]);
        if lane {
            // A lane stays, emptied: its record in the same batch, its file
            // cut once the switch is durable (a crash in between leaves a
            // torn tail, which start-up cuts).
            let emptied = SegmentRecord {
                len: 0,
                dead: 0,
                ..table
                    .records
                    .get(&from)
                    .copied()
                    .unwrap_or(SegmentRecord::new(true))
            };
            batch.insert(record_key(from), encode(&emptied));
            self.db
                .apply_batch(batch)
                .map_err(store_err("switch to a compacted segment"))?;
            self.db.flush().map_err(store_err("flush the index"))?;
            table.records.insert(from, emptied);
            table.records.insert(to, record);
            self.add_file(to, target);
            return source.set_len(0).map_err(io_err("empty a lane"));
        }
        batch.remove(record_key(from));
        self.db
            .apply_batch(batch)
            .map_err(store_err("switch to a compacted segment"))?;
        self.db.flush().map_err(store_err("flush the index"))?;
        table.records.remove(&from);
        table.records.insert(to, record);
        self.add_file(to, target);
        self.remove_file_handle(from);
        // 4.
        std::fs::remove_file(self.segment_path(from))
            .map_err(io_err("delete a compacted segment"))?;
        fsync_dir(&self.segments_dir).map_err(io_err("sync the segments directory"))?;
        Ok(())
    }
}

impl Store {
    /// A reader over one submission's ciphertext.
    pub fn ciphertext(&self, id: &SubmissionId) -> Result<impl Read + use<>, Error> {
        // A compaction may move it between reading its entry and opening
        // its segment: then read the entry again.
        for _ in 0..3 {
            let meta = self
                .inner
                .meta(id)?
                .ok_or_else(|| Error::Corrupt(format!("no submission {id}")))?;
            let at = meta.at.ok_or_else(|| {
                Error::Corrupt(format!(
                    "submission {id} has no segment (a store not yet migrated: start the relay once)"
                ))
            })?;
            if let Some(file) = self.inner.segment_file(at.segment) {
                return Ok(io::BufReader::with_capacity(
                    IO_BUFFER,
                    SegmentReader::new(file, at.offset, meta.size),
                ));
            }
        }
        Err(Error::Corrupt(format!(
            "the ciphertext of submission {id} is missing (its segment is gone)"
        )))
    }

    /// Runs the compaction a round would run now (`all`: the periodic
    /// cycle). For `relay` commands and tests; the commit thread calls it
    /// itself.
    pub fn compact_now(&self, all: bool) -> Result<(), Error> {
        self.inner.compact(all)
    }
}

/// Segment numbers of the files in `dir`, and the names that are not
/// segment files.
pub(super) fn list_dir(dir: &Path) -> io::Result<(BTreeSet<u32>, Vec<String>)> {
    let mut numbers = BTreeSet::new();
    let mut other = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match parse_name(&name) {
            Some(n) if entry.file_type().is_ok_and(|t| t.is_file()) => {
                numbers.insert(n);
            }
            _ => other.push(name),
        }
    }
    Ok((numbers, other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_others() {
        assert_eq!(file_name(7), "00000007.seg");
        assert_eq!(parse_name("00000007.seg"), Some(7));
        for bad in [
            "7.seg",
            "0000000a.seg",
            "00000007.age",
            "../00000007.seg",
            "",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
