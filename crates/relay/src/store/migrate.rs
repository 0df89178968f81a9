//! Migration from the one-file-per-submission layout (before segments):
//!
//! ```text
//! store/pending/<id>.age    ciphertext whose index entry was, or was not yet, durable
//! store/objects/<id>.age    ciphertext of a durable submission
//! ```
//!
//! Run at every start until nothing of that layout is left, in steps that
//! are each durable before the next begins, so a crash anywhere loses
//! nothing and the next start carries on:
//! 1. the old start-up recovery: a file in `pending/` whose entry is
//!    indexed counts as stored (it is migrated from there); any other is an
//!    upload that never completed, and is deleted;
//! 2. an acknowledgement a crash interrupted (the old purge marker `x`)
//!    is finished the new way: its entries are removed from the index;
//! 3. up to `step` files at a time: their bytes are appended to the active
//!    segment and synced, their entries pointed there in one sled batch and
//!    flushed, and only then are the files deleted (a crash in between
//!    leaves files whose entries already point to a segment: deleted at the
//!    next start);
//! 4. `objects/` and `pending/` are removed once empty. A file no entry
//!    names (an orphan the old `relay check` reported) is left in
//!    `objects/` and reported by `relay check`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use format::SubmissionId;

use super::segments::{self, SegmentRecord};
use super::{
    Inner, Location, META, PURGE, SubmissionMeta, decode, encode, fsync_dir, io_err, key, lock,
    store_err,
};
use crate::Error;

/// How many files one durable step migrates.
pub(super) const STEP_FILES: usize = 256;

/// The old layout's directories.
pub(super) fn legacy_dirs(inner: &Inner) -> [PathBuf; 2] {
    [inner.dir.join("objects"), inner.dir.join("pending")]
}

/// Migrates what is left of the old layout, `step_files` files per durable
/// step; `max_steps` bounds it (tests stop it part way, as a crash would).
pub(super) fn migrate(inner: &Inner, step_files: usize, max_steps: usize) -> Result<(), Error> {
    let [objects, pending] = legacy_dirs(inner);
    if !objects.exists() && !pending.exists() {
        return Ok(());
    }
    // 1.
    let mut files: BTreeMap<SubmissionId, PathBuf> = BTreeMap::new();
    for dir in [&objects, &pending] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(io_err("list the old layout's files"))?;
            let path = entry.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".age"))
                .and_then(|n| n.parse::<SubmissionId>().ok());
            match id {
                Some(id) if inner.meta(&id)?.is_some() => {
                    files.insert(id, path);
                }
                _ if dir == &pending => {
                    std::fs::remove_file(&path).map_err(io_err("remove an unfinished upload"))?;
                }
                _ => {}
            }
        }
    }
    // 2.
    let purges: Vec<Vec<u8>> = inner
        .db
        .scan_prefix([PURGE])
        .keys()
        .collect::<Result<Vec<_>, _>>()
        .map_err(store_err("scan purge markers"))?
        .into_iter()
        .map(|k| k.to_vec())
        .collect();
    for marker in purges {
        let sequence = marker
            .get(1..9)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| Error::Corrupt("a purge marker is too short".into()))?;
        let mut batch = sled::Batch::default();
        for item in inner.db.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            if meta.batch == Some(sequence) {
                batch.remove(k);
            }
        }
        batch.remove(marker);
        inner
            .db
            .apply_batch(batch)
            .map_err(store_err("finish an interrupted acknowledgement"))?;
        inner.db.flush().map_err(store_err("flush the index"))?;
    }
    // 3.
    let mut todo: Vec<(SubmissionId, SubmissionMeta, PathBuf)> = Vec::new();
    let mut done: Vec<PathBuf> = Vec::new();
    for (id, path) in files {
        match inner.meta(&id)? {
            Some(meta) if meta.at.is_none() => todo.push((id, meta, path)),
            // Migrated by a start a crash cut short, or acknowledged.
            _ => done.push(path),
        }
    }
    delete_files(&done)?;
    let total = todo.len();
    for (steps, chunk) in todo.chunks(step_files.max(1)).enumerate() {
        if steps == max_steps {
            return Ok(());
        }
        step(inner, chunk)?;
    }
    // 4.
    for dir in [&objects, &pending] {
        let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
        if empty {
            std::fs::remove_dir(dir).map_err(io_err("remove the old layout's directory"))?;
        }
    }
    fsync_dir(&inner.dir).map_err(io_err("sync the store directory"))?;
    if total > 0 {
        tracing::info!(
            submissions = total,
            "moved the store to segment files (the old one-file-per-submission layout is gone)"
        );
    }
    Ok(())
}

/// Migrates one chunk of files durably, then deletes them.
fn step(inner: &Inner, chunk: &[(SubmissionId, SubmissionMeta, PathBuf)]) -> Result<(), Error> {
    let mut table = lock(&inner.table);
    let mut lengths: BTreeMap<u32, SegmentRecord> = BTreeMap::new();
    let mut batch = sled::Batch::default();
    let mut moved = Vec::new();
    for (id, meta, path) in chunk {
        let Ok(source) = File::open(path) else {
            tracing::error!(
                "a stored ciphertext file vanished during migration; run `relay check`"
            );
            continue;
        };
        if source.metadata().map(|m| m.len()).unwrap_or(0) != meta.size {
            // Damaged: left where it is, for `relay check` to name.
            tracing::error!("a stored ciphertext file has the wrong size; run `relay check`");
            continue;
        }
        let (n, mut record) = inner.room(&mut table, &lengths, meta.size)?;
        let target = inner
            .segment_file(n)
            .ok_or_else(|| Error::Corrupt(format!("segment {n} has no open file")))?;
        segments::copy_range(&source, 0, &target, record.len, meta.size)
            .map_err(io_err("copy a ciphertext into a segment"))?;
        let mut meta = meta.clone();
        meta.at = Some(Location {
            segment: n,
            offset: record.len,
        });
        record.len += meta.size;
        lengths.insert(n, record);
        batch.insert(key(META, id.as_bytes()), encode(&meta));
        moved.push(path.clone());
    }
    for n in lengths.keys() {
        if let Some(f) = inner.segment_file(*n) {
            f.sync_data().map_err(io_err("sync a segment"))?;
        }
    }
    for (n, record) in &lengths {
        batch.insert(segments::record_key(*n), encode(record));
    }
    inner
        .db
        .apply_batch(batch)
        .map_err(store_err("index migrated submissions"))?;
    inner.db.flush().map_err(store_err("flush the index"))?;
    for (n, record) in lengths {
        table.records.insert(n, record);
    }
    drop(table);
    delete_files(&moved)
}

fn delete_files(paths: &[PathBuf]) -> Result<(), Error> {
    let mut dirs = std::collections::BTreeSet::new();
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("delete a migrated ciphertext file")(e)),
        }
        if let Some(parent) = path.parent() {
            dirs.insert(parent.to_owned());
        }
    }
    for dir in dirs {
        fsync_dir(&dir).map_err(io_err("sync the old layout's directory"))?;
    }
    Ok(())
}

/// Files the old layout left that no entry names (for `relay check`).
pub(super) fn leftovers(inner: &Inner) -> Vec<(String, Option<SubmissionId>)> {
    let mut out = Vec::new();
    for dir in legacy_dirs(inner) {
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name
                .strip_suffix(".age")
                .and_then(|n| n.parse::<SubmissionId>().ok());
            out.push((format!("{label}/{name}"), id));
        }
    }
    out
}
