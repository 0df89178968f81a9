//! Opening the store, and the recovery a crash may call for.
//!
//! Start-up, in order:
//! 0. what a kill left of sled's own files that sled would refuse (its
//!    settings cut at the first start, a snapshot not finished) is
//!    deleted, before sled opens the index (`remove_what_a_kill_left`);
//! 1. an interrupted compaction (`C`) is undone: its target file deleted;
//! 2. every segment file with no record is deleted (an interrupted
//!    compaction's source, or a new segment nothing was indexed into);
//! 3. every segment longer than its committed length has the torn tail
//!    cut off (bytes a round appended but never indexed);
//! 4. a store of the old layout is migrated (`migrate.rs`);
//! 5. the first segment and the lanes are made if missing (`lanes.rs`).
//!
//! Steps 1–3 read only the segment records and the file lengths, so
//! recovery takes time in the number of segments, not of submissions.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use super::segments::{self, CompactionRecord, SegmentRecord, Table};
use super::{
    COMPACTION, Inner, Options, SEGMENT, Space, Store, commit, decode, fsync_dir, io_err, lock,
    store_err,
};
use crate::{Error, fsutil};

impl Store {
    /// Opens (or creates) the store in `dir` with the default options,
    /// finishing or undoing whatever a crash interrupted.
    ///
    /// Fails with [`Error::StoreLocked`] if another process (a running
    /// relay) has it open.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, Error> {
        Self::open_with(dir, Options::new(cache_bytes))
    }

    /// [`Store::open`] with `options`.
    pub fn open_with(dir: &Path, options: Options) -> Result<Self, Error> {
        Self::open_migrating(dir, options, super::migrate::STEP_FILES, usize::MAX)
    }

    /// [`Store::open_with`], migrating an old layout `step_files` files at
    /// a time for at most `max_steps` steps (tests stop it part way).
    pub(super) fn open_migrating(
        dir: &Path,
        options: Options,
        step_files: usize,
        max_steps: usize,
    ) -> Result<Self, Error> {
        for d in [dir, &dir.join("index"), &dir.join("segments")] {
            fsutil::create_private_dir(d)?;
        }
        let store = Self::open_index(dir, options, true)?;
        store.recover()?;
        super::migrate::migrate(&store.inner, step_files, max_steps)?;
        let table = lock(&store.inner.table);
        let held: u64 = table
            .records
            .values()
            .map(|r| r.len.saturating_sub(r.dead))
            .sum();
        drop(table);
        store.inner.space.used.store(held, Ordering::Release);
        // The first segment and the lanes exist from the first start on, so
        // that no submission creates a file.
        store.inner.ensure_segment()?;
        store.inner.ensure_lanes()?;
        remove_scratch_pool(dir)?;
        Ok(store)
    }

    /// Opens an existing store for [`Store::check`]: creates nothing and
    /// runs no recovery, so torn tails and interrupted compactions stay as
    /// a crash left them. (sled may rewrite its own metadata as it opens,
    /// and what a kill left of sled's own files that sled would refuse is
    /// deleted first, as at every start: see `remove_what_a_kill_left`.)
    pub fn open_for_check(dir: &Path, cache_bytes: u64) -> Result<Self, Error> {
        let index = dir.join("index");
        if !index.is_dir() {
            return Err(Error::Io {
                action: "find a store (its index/ directory) in",
                path: dir.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        Self::open_index(dir, Options::new(cache_bytes), false)
    }

    /// Opens the index, reads the segment table, opens the segment files
    /// and starts the commit thread (`writable`); nothing else.
    fn open_index(dir: &Path, options: Options, writable: bool) -> Result<Self, Error> {
        remove_what_a_kill_left(dir)?;
        let db = sled::Config::new()
            .path(dir.join("index"))
            .cache_capacity(options.cache_bytes)
            // Written only by commit rounds (and the calls that flush
            // themselves), so that its times are the rounds'.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    Error::StoreLocked(dir.to_owned())
                }
                other => Error::Store {
                    action: "open the index",
                    source: Box::new(other),
                },
            })?;
        let mut table = Table::default();
        for item in db.scan_prefix([SEGMENT]) {
            let (k, v) = item.map_err(store_err("read the segment records"))?;
            let n = k
                .get(1..5)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| Error::Corrupt("a segment record's key is malformed".into()))?;
            table
                .records
                .insert(n, decode::<SegmentRecord>("segment record", &v)?);
        }
        let segments_dir = dir.join("segments");
        let mut files = std::collections::BTreeMap::new();
        for n in table.records.keys() {
            // A missing file is reported by `check`; readers then get
            // "missing" for its entries. Start-up does not stop for it.
            if let Ok(f) = segments::open_file(&segments_dir.join(segments::file_name(*n))) {
                files.insert(*n, Arc::new(f));
            }
        }
        let inner = Arc::new(Inner {
            db,
            dir: dir.to_owned(),
            segments_dir,
            table: Mutex::new(table),
            files: RwLock::new(files),
            to_publish: Mutex::new(Vec::new()),
            lost: Mutex::new(std::collections::HashMap::new()),
            #[cfg(test)]
            fail_rounds: std::sync::atomic::AtomicU32::new(0),
            lanes: super::lanes::Lanes::default(),
            also_cover: Mutex::new(Vec::new()),
            cover: Mutex::new(commit::Cover::default()),
            space: Space::new(),
            options,
        });
        // A store opened for checking runs no rounds: they would write.
        let flusher = if writable {
            commit::Flusher::start(inner.clone())
        } else {
            commit::Flusher::none()
        };
        Ok(Store { flusher, inner })
    }

    /// Steps 1–3 of the module notes.
    fn recover(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let table = lock(&inner.table);
        // 1.
        if let Some(v) = inner
            .db
            .get([COMPACTION])
            .map_err(store_err("read the compaction record"))?
        {
            let c: CompactionRecord = decode("compaction record", &v)?;
            if !table.records.contains_key(&c.to) {
                remove_if_there(&inner.segment_path(c.to))?;
            }
            inner
                .db
                .remove([COMPACTION])
                .map_err(store_err("undo a compaction"))?;
            inner.db.flush().map_err(store_err("flush the index"))?;
            tracing::info!("undid a compaction a crash interrupted");
        }
        // 2.
        let (numbers, _) =
            segments::list_dir(&inner.segments_dir).map_err(io_err("list the segments"))?;
        let mut removed = 0u64;
        for n in numbers {
            if !table.records.contains_key(&n) {
                remove_if_there(&inner.segment_path(n))?;
                removed += 1;
            }
        }
        if removed > 0 {
            fsync_dir(&inner.segments_dir).map_err(io_err("sync the segments directory"))?;
        }
        // 3.
        let mut cut = 0u64;
        for (n, record) in &table.records {
            let Some(file) = inner.segment_file(*n) else {
                tracing::error!(
                    segment = n,
                    "a segment file is missing; run `relay check` to see which submissions are lost"
                );
                continue;
            };
            let len = file.metadata().map_err(io_err("measure a segment"))?.len();
            if len > record.len {
                file.set_len(record.len)
                    .map_err(io_err("cut a torn tail off a segment"))?;
                file.sync_all().map_err(io_err("sync a segment"))?;
                cut += len - record.len;
            } else if len < record.len {
                tracing::error!(
                    segment = n,
                    "a segment is shorter than the index records; run `relay check`"
                );
            }
        }
        drop(table);
        if cut > 0 || removed > 0 {
            tracing::info!(
                torn_tail_bytes = cut,
                segment_files_removed = removed,
                "recovered from an interrupted commit round or compaction"
            );
        }
        Ok(())
    }
}

impl Inner {
    /// Makes the first segment if there is none.
    fn ensure_segment(&self) -> Result<(), Error> {
        let mut table = lock(&self.table);
        if table.active().is_some() {
            return Ok(());
        }
        let n = table.next_number();
        let file = segments::create_file(&self.segments_dir, n)?;
        let record = SegmentRecord::new(false);
        self.db
            .insert(segments::record_key(n), super::encode(&record))
            .map_err(store_err("record a segment"))?;
        self.db.flush().map_err(store_err("flush the index"))?;
        table.records.insert(n, record);
        self.add_file(n, file);
        Ok(())
    }
}

/// Deletes what a kill left of sled's own files that sled 0.34.7 (pinned)
/// would refuse to open, before sled opens the index. There are two such files, each found by a kill (a SIGKILL is all
/// it takes: no power cut), and each is never needed.
///
/// - **The settings file** (`index/conf`). sled writes it once, at the
///   very first start and before anything else of the index, in two
///   writes: the settings, then their CRC-32. A kill between them left
///   settings without a checksum, which sled then misreads on every start
///   ("Read corrupted data"). Nothing is stored yet at that point (there
///   is no `index/db`), so the file is deleted and sled writes it again.
///   With `index/db` present, a damaged `conf` is not a kill's, and is left
///   alone.
/// - **An unfinished snapshot** (`index/snap.<lsn>.generating`). sled
///   writes its page-table snapshot only while it opens: into that file,
///   synced, then renamed to `snap.<lsn>`; the snapshot before it is
///   deleted only after the rename. But it reads whichever `snap.` name
///   sorts last, `.generating` included, so a relay killed while starting,
///   before that rename, left an index every later start refused (found
///   by the crash test in CI). The previous snapshot is still there, and
///   sled makes the same one again from it and its log: deleting the file
///   puts the index where a kill just before the write would have left it.
///
/// A sled upgrade must look at this again; the tests
/// `a_settings_file_a_kill_cut_at_the_first_start_is_written_again` and
/// `a_snapshot_a_kill_left_half_written_does_not_stop_the_next_start` say
/// whether it is still needed.
///
/// Nothing is deleted while another process has the index open: sled's
/// own lock on `index/db` is taken first, and its holder is told
/// [`Error::StoreLocked`] as sled would.
fn remove_what_a_kill_left(dir: &Path) -> Result<(), Error> {
    let index = dir.join("index");
    let db = index.join("db");
    let held = match File::open(&db) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return remove_torn_settings(&index);
        }
        Err(e) => return Err(Error::io("open the index", &db)(e)),
    };
    match held.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(Error::StoreLocked(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::io("lock the index", &db)(e));
        }
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(&index).map_err(Error::io("list the index", &index))? {
        let entry = entry.map_err(Error::io("list the index", &index))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path()).map_err(Error::io(
                "remove an unfinished index snapshot",
                &entry.path(),
            ))?;
            removed += 1;
        }
    }
    if removed > 0 {
        fsync_dir(&index).map_err(io_err("sync the index directory"))?;
        tracing::info!(
            files = removed,
            "removed an index snapshot a kill left unfinished"
        );
    }
    // `held` is dropped here, and its lock with it, before sled takes its own.
    drop(held);
    Ok(())
}

/// The settings part of [`remove_what_a_kill_left`], for an index with no
/// `db` yet: deletes `conf` if its last four bytes are not the CRC-32
/// (little-endian) of the rest, as sled checks it. sled itself treats a
/// file of 8 bytes or fewer as absent, so those are left to it.
fn remove_torn_settings(index: &Path) -> Result<(), Error> {
    let conf = index.join("conf");
    let bytes = match std::fs::read(&conf) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read the index settings", &conf)(e)),
    };
    if bytes.len() <= 8 {
        return Ok(());
    }
    let (settings, sum) = bytes.split_at(bytes.len() - 4);
    if sum == crc32fast::hash(settings).to_le_bytes() {
        return Ok(());
    }
    std::fs::remove_file(&conf).map_err(Error::io("remove the torn index settings", &conf))?;
    fsync_dir(index).map_err(io_err("sync the index directory"))?;
    tracing::info!("removed the index settings a kill cut short at the first start");
    Ok(())
}

fn remove_if_there(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove a segment file no record names")(e)),
    }
}

/// Deletes the scratch files of the layout before lanes (`store/scratch/`,
/// made by 1446f14 and before): their inodes are the last this store
/// removes. Anything else found there is left, and the directory with it.
fn remove_scratch_pool(dir: &Path) -> Result<(), Error> {
    let scratch = dir.join("scratch");
    let Ok(entries) = std::fs::read_dir(&scratch) else {
        return Ok(());
    };
    let mut others = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let pooled = name
            .strip_prefix("scratch-")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if pooled {
            std::fs::remove_file(entry.path())
                .map_err(Error::io("remove an old scratch file", &entry.path()))?;
        } else {
            others = true;
        }
    }
    if !others {
        std::fs::remove_dir(&scratch)
            .map_err(Error::io("remove the old scratch directory", &scratch))?;
    }
    fsync_dir(dir).map_err(io_err("sync the store directory"))
}
