//! `relay check`: the index against the segments, changing nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use format::{Digest, SubmissionId};
use sha2::Digest as _;

use super::segments::{self, CompactionRecord, SegmentReader};
use super::{
    BATCH, BatchRecord, COMPACTION, IO_BUFFER, META, Store, SubmissionMeta, decode, id_from_key,
    io_err, lock, migrate, store_err,
};
use crate::Error;

/// What `relay check` found ([`Store::check`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Submissions in the index.
    pub submissions: u64,
    /// Their ciphertext bytes, as the index records them.
    pub ciphertext_bytes: u64,
    /// Batches not yet acknowledged.
    pub unacked_batches: u64,
    /// Segment files the index records.
    pub segments: u64,
    /// What is wrong, one line each, naming the submission, batch, segment
    /// or file.
    pub problems: Vec<String>,
    /// What the next start-up will do (a crash interrupted something): cut
    /// a torn tail, undo a compaction, delete an unrecorded segment file,
    /// finish a migration. Not problems.
    pub repairs: Vec<String>,
}

impl Store {
    /// Compares the index with the segments, changing nothing:
    /// - each segment the index records has its file, at least as long as
    ///   its committed length (shorter: *truncated segment data*; longer:
    ///   a torn tail start-up cuts off);
    /// - each indexed submission lies inside its segment's committed
    ///   length (else *an index entry past the end*), overlaps no other,
    ///   and its bytes have the recorded SHA-256 (else *corrupt bytes*)
    ///   and an age header `header_ok` accepts;
    /// - each segment's indexed bytes plus its acknowledged (dead) bytes
    ///   add up to its committed length (else *unindexed bytes*);
    /// - no compaction was left half done and no segment file lacks a
    ///   record (*a broken compaction*, which start-up undoes or finishes);
    /// - every unacknowledged batch has its manifest and signature, and the
    ///   manifest matches its hash and the index.
    ///
    /// Reads every ciphertext once. Fails only if the index itself cannot
    /// be read; everything else is a line in the report.
    pub fn check(
        &self,
        header_ok: impl Fn(&mut dyn Read) -> Result<(), Error>,
    ) -> Result<CheckReport, Error> {
        let inner = &self.inner;
        let db = &inner.db;
        let mut r = CheckReport::default();
        let records = lock(&inner.table).records.clone();
        r.segments = records.len() as u64;

        // Compaction and unrecorded files.
        let mut compaction_target = None;
        if let Some(v) = db
            .get([COMPACTION])
            .map_err(store_err("read the compaction record"))?
        {
            match decode::<CompactionRecord>("compaction record", &v) {
                Ok(c) => {
                    compaction_target = Some(c.to);
                    r.repairs.push(format!(
                        "a compaction of segment {} into segment {} was interrupted (a broken compaction); start-up will undo it",
                        c.from, c.to
                    ));
                }
                Err(e) => r.problems.push(format!("index: {e}")),
            }
        }
        match segments::list_dir(&inner.segments_dir) {
            Ok((numbers, other)) => {
                for n in numbers {
                    if !records.contains_key(&n) && Some(n) != compaction_target {
                        r.repairs.push(format!(
                            "file segments/{}: no record names it (left by a compaction or a commit round a crash interrupted); start-up will delete it",
                            segments::file_name(n)
                        ));
                    }
                }
                for name in other {
                    r.problems
                        .push(format!("file segments/{name}: not a segment file"));
                }
            }
            // A store of the old layout has none yet.
            Err(e) if e.kind() == io::ErrorKind::NotFound && records.is_empty() => {}
            Err(e) => r
                .problems
                .push(format!("directory segments/: cannot list it: {e}")),
        }

        // Segment files against their records.
        let mut readable: BTreeMap<u32, (Arc<File>, u64)> = BTreeMap::new();
        for (n, record) in &records {
            let name = segments::file_name(*n);
            let Some(file) = inner.segment_file(*n) else {
                r.problems.push(format!(
                    "segment {name}: its file is missing; every submission in it is lost"
                ));
                continue;
            };
            let len = match file.metadata() {
                Ok(m) => m.len(),
                Err(e) => {
                    r.problems
                        .push(format!("segment {name}: cannot measure it: {e}"));
                    continue;
                }
            };
            if len < record.len {
                r.problems.push(format!(
                    "segment {name}: truncated segment data: the file is {len} bytes, the index records {}",
                    record.len
                ));
            } else if len > record.len {
                r.repairs.push(format!(
                    "segment {name}: {} unindexed bytes at its end (a torn tail); start-up will cut them off",
                    len - record.len
                ));
            }
            if record.dead > record.len {
                r.problems.push(format!(
                    "segment {name}: records {} dead bytes in {} committed",
                    record.dead, record.len
                ));
            }
            readable.insert(*n, (file, len));
        }

        let mut purged_batches = BTreeSet::new();
        let mut batches = BTreeMap::new();
        for item in db.scan_prefix([BATCH]) {
            let (k, v) = item.map_err(store_err("scan batches"))?;
            match decode::<BatchRecord>("batch record", &v) {
                Ok(b) => {
                    if b.acked {
                        purged_batches.insert(b.sequence);
                    }
                    batches.insert(b.sequence, b);
                }
                Err(e) => r.problems.push(format!("index: batch key {k:?}: {e}")),
            }
        }

        // Every index entry.
        let legacy_files = migrate::leftovers(inner);
        let mut indexed: HashMap<SubmissionId, SubmissionMeta> = HashMap::new();
        let mut unreadable = BTreeSet::new();
        let mut extents: BTreeMap<u32, Vec<(u64, u64, SubmissionId)>> = BTreeMap::new();
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
            if let Some(seq) = meta.batch {
                if !batches.contains_key(&seq) {
                    r.problems.push(format!(
                        "submission {id}: recorded in batch sequence {seq}, which the index does not have"
                    ));
                } else if purged_batches.contains(&seq) {
                    r.problems.push(format!(
                        "submission {id}: its batch (sequence {seq}) was acknowledged, but it is still indexed"
                    ));
                }
            }
            let Some(at) = meta.at else {
                if legacy_files.iter().any(|(_, f)| *f == Some(id)) {
                    r.repairs.push(format!(
                        "submission {id}: still in the old layout's objects/; start-up will move it into a segment"
                    ));
                } else {
                    r.problems.push(format!(
                        "submission {id}: its index entry names no segment and its ciphertext is missing"
                    ));
                }
                indexed.insert(id, meta);
                continue;
            };
            let name = segments::file_name(at.segment);
            let Some(record) = records.get(&at.segment) else {
                r.problems.push(format!(
                    "submission {id}: its segment {name} has no record in the index"
                ));
                indexed.insert(id, meta);
                continue;
            };
            let end = at.offset.saturating_add(meta.size);
            extents
                .entry(at.segment)
                .or_default()
                .push((at.offset, end, id));
            if end > record.len {
                r.problems.push(format!(
                    "submission {id}: an index entry past the end of segment {name} (bytes {}..{end}, committed {})",
                    at.offset, record.len
                ));
            } else if let Some((file, len)) = readable.get(&at.segment) {
                if end > *len {
                    r.problems.push(format!(
                        "submission {id}: its bytes lie past the end of the file {name} (truncated segment data)"
                    ));
                } else {
                    for problem in check_ciphertext(file, at.offset, &meta, &header_ok) {
                        r.problems.push(format!("submission {id}: {problem}"));
                    }
                }
            }
            indexed.insert(id, meta);
        }

        // Overlaps, and bytes no entry accounts for.
        for (n, record) in &records {
            let name = segments::file_name(*n);
            let mut spans = extents.remove(n).unwrap_or_default();
            spans.sort_unstable();
            let mut live = 0u64;
            let mut reach = 0u64;
            let mut previous: Option<SubmissionId> = None;
            for (start, end, id) in spans {
                if start < reach
                    && let Some(other) = previous
                {
                    r.problems.push(format!(
                        "segment {name}: submissions {other} and {id} overlap"
                    ));
                }
                live = live.saturating_add(end - start);
                reach = reach.max(end);
                previous = Some(id);
            }
            let accounted = live.saturating_add(record.dead);
            if accounted < record.len {
                r.problems.push(format!(
                    "segment {name}: {} unindexed bytes: neither a submission's nor counted as acknowledged",
                    record.len - accounted
                ));
            } else if accounted > record.len {
                r.problems.push(format!(
                    "segment {name}: its entries and dead bytes add up to {accounted}, more than its {} committed bytes",
                    record.len
                ));
            }
        }

        for (path, id) in &legacy_files {
            let known = id.is_some_and(|id| indexed.contains_key(&id) || unreadable.contains(&id));
            if !known && path.starts_with("pending/") {
                r.repairs.push(format!(
                    "file {path}: an upload that never completed; start-up will delete it"
                ));
            } else if !known {
                r.problems.push(format!(
                    "file {path}: left by the old layout and no index entry names it (an orphan); move it out of the store"
                ));
            }
        }

        let mut in_batch: HashMap<u64, u64> = HashMap::new();
        for meta in indexed.values() {
            if let Some(seq) = meta.batch {
                *in_batch.entry(seq).or_default() += 1;
            }
        }
        for (seq, record) in &batches {
            if record.acked {
                continue;
            }
            let held = in_batch.get(seq).copied().unwrap_or(0);
            let b = format!("batch {} (sequence {seq})", record.batch_id);
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

/// What is wrong with one ciphertext's bytes, if anything.
fn check_ciphertext(
    file: &Arc<File>,
    offset: u64,
    meta: &SubmissionMeta,
    header_ok: &dyn Fn(&mut dyn Read) -> Result<(), Error>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let open = || {
        io::BufReader::with_capacity(
            IO_BUFFER,
            SegmentReader::new(file.clone(), offset, meta.size),
        )
    };
    let mut hasher = sha2::Sha256::new();
    match io::copy(&mut open(), &mut hasher) {
        Ok(size) if size == meta.size => {
            if Digest::from_hasher(hasher) != meta.sha256 {
                problems.push(
                    "corrupt bytes: its ciphertext's SHA-256 does not match the index (changed or damaged)"
                        .into(),
                );
            }
        }
        Ok(size) => problems.push(format!(
            "only {size} of its {} bytes could be read",
            meta.size
        )),
        Err(e) => return vec![io_err("read a segment")(e).to_string()],
    }
    let header = header_ok(&mut open()).map_err(|e| {
        std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
    });
    if let Err(e) = header {
        problems.push(format!("its age header does not parse: {e}"));
    }
    problems
}
