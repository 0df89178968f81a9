use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use format::{BatchId, Day, Digest, SubmissionId};

use super::segments::{self, CompactionRecord};
use super::*;

fn id(n: u8) -> SubmissionId {
    SubmissionId::from_bytes([n; 16])
}

fn day() -> Day {
    "2026-11-28".parse().unwrap()
}

/// Options for tests: rounds only when asked (an interval far away), small
/// segments.
fn options() -> Options {
    Options {
        commit_interval: Duration::from_secs(3600),
        segment_bytes: 64 << 10,
        lanes: 4,
        ..Options::new(1 << 20)
    }
}

fn open(dir: &Path) -> Store {
    // sled's thread pool may hold the index's lock file for a moment after
    // the previous handle is dropped: retry briefly.
    for _ in 0..100 {
        match Store::open_with(dir, options()) {
            Err(Error::StoreLocked(_)) => std::thread::sleep(Duration::from_millis(10)),
            other => return other.unwrap(),
        }
    }
    panic!("the store stayed locked");
}

fn open_for_check(dir: &Path) -> Store {
    for _ in 0..100 {
        match Store::open_for_check(dir, 1 << 20) {
            Err(Error::StoreLocked(_)) => std::thread::sleep(Duration::from_millis(10)),
            other => return other.unwrap(),
        }
    }
    panic!("the store stayed locked");
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

/// Every file and directory under `dir`, with its inode number.
fn inodes(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, u64> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dirs.push(e.path());
            }
            out.insert(e.path(), meta.ino());
        }
    }
    out
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[test]
fn round_trip_small_and_large_without_a_file_per_submission() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        Options {
            segment_bytes: 16 << 20,
            ..options()
        },
    )
    .unwrap();
    // Warm up: the first round of a store creates nothing either, but the
    // sled log may.
    put(&store, 200, b"warm-up");
    store.sync_blocking().unwrap();
    let before = inodes(dir.path());

    let small = bytes(10_007, 1);
    let large = bytes(INLINE_BYTES as usize + 100_003, 2);
    assert_eq!(put(&store, 1, &small).sha256, Digest::of(&small));
    let meta = put(&store, 2, &large);
    assert_eq!(meta.size, large.len() as u64);
    // Not in the index before its commit round (its ciphertext may not be
    // durable yet), readable after it.
    assert!(store.meta(&id(1)).unwrap().is_none());
    assert!(store.ciphertext(&id(1)).is_err());
    assert_eq!(store.stats().unwrap().pending, 2);
    store.sync_blocking().unwrap();
    assert_eq!(read(&store, 1), small);
    assert_eq!(read(&store, 2), large);
    // The large one was written into a lane, which went back to the pool.
    assert_eq!(store.inner.lanes.available(), 4);
    // No file or directory came or went (a new segment would: this one
    // has room), and none was replaced.
    assert_eq!(inodes(dir.path()), before);
}

#[test]
fn within_a_round_entries_are_appended_in_random_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 0..40 {
        put(&store, n, &[n; 100]);
    }
    store.sync_blocking().unwrap();
    let offsets: Vec<u64> = (0..40)
        .map(|n| store.meta(&id(n)).unwrap().unwrap().at.unwrap().offset)
        .collect();
    let mut sorted = offsets.clone();
    sorted.sort_unstable();
    // In arrival order the offsets would be sorted; 40! orders make the
    // chance of that by accident nil.
    assert_ne!(offsets, sorted);
    for n in 0..40 {
        assert_eq!(read(&store, n), [n; 100]);
    }
}

#[test]
fn a_full_segment_makes_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 0..5 {
        put(&store, n, &bytes(30_000, n));
        store.sync_blocking().unwrap();
    }
    let stats = store.stats().unwrap();
    // 64 KiB segments hold two of these each.
    assert_eq!(stats.segments - stats.lanes, 3);
    assert_eq!(stats.segment_bytes, 150_000);
    for n in 0..5 {
        assert_eq!(read(&store, n), bytes(30_000, n));
    }
    // A ciphertext larger than a segment gets one of its own.
    put(&store, 9, &bytes(100_000, 9));
    store.sync_blocking().unwrap();
    assert_eq!(read(&store, 9), bytes(100_000, 9));
}

#[test]
fn batches_take_the_oldest_days_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s"));
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
    let ids =
        |v: Vec<(SubmissionId, SubmissionMeta)>| v.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
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
        let store = open(dir.path());
        assert_eq!(put_in(&store, 1, b"old", 1).epoch, 1);
        assert_eq!(put_in(&store, 2, b"new", 7).epoch, 7);
        store.sync_blocking().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.meta(&id(1)).unwrap().unwrap().epoch, 1);
    assert_eq!(store.meta(&id(2)).unwrap().unwrap().epoch, 7);
    assert_eq!(read(&store, 2), b"new");
}

#[test]
fn records_from_before_epochs_and_segments_still_parse() {
    let old = format!(
        r#"{{"received_day":"2026-11-28","size":3,"sha256":"{}","key_set":"ks","batch":null}}"#,
        Digest::of(b"x")
    );
    let meta: SubmissionMeta = decode("submission metadata", old.as_bytes()).unwrap();
    assert_eq!((meta.epoch, meta.at), (1, None));
    assert!(
        decode::<SubmissionMeta>("m", old.replace("\"ks\"", "\"ks\",\"epoch\":2").as_bytes())
            .is_ok_and(|m| m.epoch == 2)
    );
}

#[test]
fn unfinished_submissions_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut small = store.begin(id(2)).unwrap();
    small.write_all(&[7u8; 1000]).unwrap();
    let mut large = store.begin(id(3)).unwrap();
    large
        .write_all(&vec![7u8; INLINE_BYTES as usize + 1])
        .unwrap();
    assert_eq!(store.inner.lanes.available(), 3);
    drop((small, large));
    assert_eq!(store.held_bytes(), 0);
    assert_eq!(store.inner.lanes.available(), 4);
    store.sync_blocking().unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.submissions, stats.segment_bytes), (0, 0));
}

/// The lanes' numbers, with their committed lengths.
fn lanes(store: &Store) -> Vec<(u32, u64)> {
    lock(&store.inner.table)
        .records
        .iter()
        .filter(|(_, r)| r.lane)
        .map(|(n, r)| (*n, r.len))
        .collect()
}

fn file_len(store: &Store, n: u32) -> u64 {
    std::fs::metadata(store.inner.segment_path(n))
        .unwrap()
        .len()
}

fn lane_options() -> Options {
    Options {
        segment_bytes: 2 << 20,
        lanes: 2,
        ..options()
    }
}

/// A store with a single lane.
fn one_lane(dir: &Path) -> Store {
    Store::open_with(
        dir,
        Options {
            lanes: 1,
            ..lane_options()
        },
    )
    .unwrap()
}

/// Records batch `seq` (manifest `m`) of `ids` and acknowledges it.
fn ack_batch(store: &Store, seq: u8, m: &[u8], ids: &[SubmissionId]) {
    let r = record(seq, m, ids.len() as u64);
    store.record_batch(&r, m, b"s", ids).unwrap();
    store.ack(&r.batch_id, &r.manifest_sha256).unwrap();
}

/// `check` finds neither a problem nor anything to repair.
fn assert_clean(store: &Store) {
    let report = store.check(starts_with_anything).unwrap();
    assert!(
        report.problems.is_empty() && report.repairs.is_empty(),
        "{report:?}"
    );
}

#[test]
fn large_ciphertexts_are_written_in_place_into_a_lane_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), lane_options()).unwrap();
    let active = lock(&store.inner.table).active().unwrap();
    let small = bytes(1_000, 1);
    let large = bytes(INLINE_BYTES as usize + 50_001, 2);
    put(&store, 1, &small);
    let mut p = store.begin(id(2)).unwrap();
    p.write_all(&large).unwrap();
    // Before its round, the bytes are in a lane already (past its
    // committed length, so a crash now leaves a torn tail).
    let lent: Vec<(u32, u64)> = lanes(&store)
        .into_iter()
        .filter(|(n, _)| file_len(&store, *n) > 0)
        .collect();
    assert_eq!(lent.len(), 1, "{:?}", lanes(&store));
    assert_eq!(store.inner.lanes.available(), 1);
    p.finish(day(), 1, "ks".into(), None).unwrap();
    store.sync_blocking().unwrap();

    let at = store.meta(&id(2)).unwrap().unwrap().at.unwrap();
    assert_eq!(
        at,
        Location {
            segment: lent[0].0,
            offset: 0
        }
    );
    // The round copied nothing: the active segment holds only the small one.
    assert_eq!(file_len(&store, active), small.len() as u64);
    assert_eq!(read(&store, 2), large);
    assert_eq!(store.inner.lanes.available(), 2);
    // The next large one through that lane starts where this one ends.
    assert_clean(&store);
}

#[test]
fn an_aborted_large_upload_cuts_its_lane_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = one_lane(dir.path());
    let first = bytes(INLINE_BYTES as usize + 10, 1);
    put(&store, 1, &first);
    store.sync_blocking().unwrap();
    let (lane, committed) = lanes(&store)[0];
    assert_eq!(committed, first.len() as u64);
    let mut p = store.begin(id(2)).unwrap();
    p.write_all(&bytes(INLINE_BYTES as usize + 99_999, 2))
        .unwrap();
    p.flush().unwrap();
    assert!(file_len(&store, lane) > committed);
    drop(p);
    assert_eq!(file_len(&store, lane), committed);
    assert_eq!(store.held_bytes(), committed);
    // The lane is free again, and the next writer appends after `first`.
    let second = bytes(INLINE_BYTES as usize + 7, 3);
    put(&store, 3, &second);
    store.sync_blocking().unwrap();
    assert_eq!(read(&store, 1), first);
    assert_eq!(read(&store, 3), second);
    assert_eq!(
        store.meta(&id(3)).unwrap().unwrap().at.unwrap().offset,
        committed
    );
}

#[test]
fn a_full_lane_is_replaced_and_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        Options {
            segment_bytes: 600 << 10,
            lanes: 1,
            ..options()
        },
    )
    .unwrap();
    let big = |seed| bytes(INLINE_BYTES as usize + 100_000, seed);
    put(&store, 1, &big(1));
    store.sync_blocking().unwrap();
    put(&store, 2, &big(2));
    store.sync_blocking().unwrap();
    // Past 600 KiB: retired, and a new lane took its place, so a third
    // large upload does not wait for a lane that never comes back.
    let all = lanes(&store);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(store.inner.lanes.available(), 1);
    put(&store, 3, &big(3));
    store.sync_blocking().unwrap();
    let full = all[0].0;
    assert_eq!(
        store.meta(&id(3)).unwrap().unwrap().at.unwrap().segment,
        all[1].0
    );
    // Acknowledged, the full lane is removed like any segment.
    ack_batch(&store, 1, b"m", &[id(1), id(2)]);
    store.compact_now(false).unwrap();
    assert!(!store.inner.segment_path(full).exists());
    assert_eq!(read(&store, 3), big(3));
    assert_clean(&store);
}

#[test]
fn compaction_empties_a_lane_in_place_and_keeps_what_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = one_lane(dir.path());
    let (lane, _) = lanes(&store)[0];
    let ino = |store: &Store| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(store.inner.segment_path(lane))
            .unwrap()
            .ino()
    };
    let before = ino(&store);
    let a = bytes(INLINE_BYTES as usize + 300_000, 1);
    let b = bytes(INLINE_BYTES as usize + 1, 2);
    put(&store, 1, &a);
    store.sync_blocking().unwrap();
    put(&store, 2, &b);
    store.sync_blocking().unwrap();
    // Most of the lane dead: its live ciphertext moves to a new segment
    // and the lane is emptied, the same file.
    ack_batch(&store, 1, b"m", &[id(1)]);
    store.compact_now(false).unwrap();
    assert_eq!(lanes(&store), vec![(lane, 0)]);
    assert_eq!((file_len(&store, lane), ino(&store)), (0, before));
    assert_eq!(read(&store, 2), b);
    assert_ne!(
        store.meta(&id(2)).unwrap().unwrap().at.unwrap().segment,
        lane
    );
    // Used again from its start.
    put(&store, 3, &a);
    store.sync_blocking().unwrap();
    assert_eq!(
        store.meta(&id(3)).unwrap().unwrap().at.unwrap(),
        Location {
            segment: lane,
            offset: 0
        }
    );
    // Nothing live at all: emptied without a copy.
    ack_batch(&store, 2, b"m2", &[id(3)]);
    store.compact_now(false).unwrap();
    assert_eq!(lanes(&store), vec![(lane, 0)]);
    assert_clean(&store);
}

#[test]
fn compaction_leaves_a_lane_that_is_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = one_lane(dir.path());
    put(&store, 1, &bytes(INLINE_BYTES as usize + 1, 1));
    store.sync_blocking().unwrap();
    ack_batch(&store, 1, b"m", &[id(1)]);
    let mut p = store.begin(id(2)).unwrap();
    let second = bytes(INLINE_BYTES as usize + 5, 2);
    p.write_all(&second).unwrap();
    store.compact_now(true).unwrap();
    assert_eq!(
        store.stats().unwrap().dead_bytes,
        INLINE_BYTES + 1,
        "left for later"
    );
    p.finish(day(), 1, "ks".into(), None).unwrap();
    store.sync_blocking().unwrap();
    assert_eq!(read(&store, 2), second);
    store.compact_now(true).unwrap();
    assert_eq!(store.stats().unwrap().dead_bytes, 0);
    assert_eq!(read(&store, 2), second);
}

#[test]
fn a_store_with_scratch_files_from_before_lanes_opens_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    for i in 0..3 {
        std::fs::write(scratch.join(format!("scratch-{i:02}")), b"old").unwrap();
    }
    let store = open(dir.path());
    assert!(!scratch.exists());
    assert_eq!(lanes(&store).len(), 4);
}

#[test]
fn a_torn_tail_is_cut_off_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        put(&store, 1, b"committed");
        store.sync_blocking().unwrap();
        // A round that appended but crashed before indexing.
        let n = lock(&store.inner.table).active().unwrap();
        let file = store.inner.segment_file(n).unwrap();
        segments::write_at(&file, b"torn bytes nobody indexed", 9).unwrap();
        let report = store.check(starts_with_anything).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(
            report
                .repairs
                .iter()
                .any(|r| r.contains("25 unindexed bytes at its end")),
            "{:?}",
            report.repairs
        );
    }
    let store = open(dir.path());
    let n = lock(&store.inner.table).active().unwrap();
    assert_eq!(
        std::fs::metadata(store.inner.segment_path(n))
            .unwrap()
            .len(),
        9
    );
    assert_eq!(read(&store, 1), b"committed");
    // The next append goes where the tail was.
    put(&store, 2, b"next");
    store.sync_blocking().unwrap();
    assert_eq!(read(&store, 2), b"next");
    assert!(
        store
            .check(starts_with_anything)
            .unwrap()
            .problems
            .is_empty()
    );
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
fn ack_needs_the_right_hash_removes_entries_at_once_and_compaction_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    put(&store, 1, &bytes(20_000, 1));
    put(&store, 2, &bytes(10_000, 2));
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
    assert!(store.ciphertext(&id(1)).is_err());
    let stats = store.stats().unwrap();
    assert_eq!((stats.segment_bytes, stats.dead_bytes), (30_000, 20_000));
    assert_eq!(store.held_bytes(), 10_000);
    assert!(store.batch_documents(1).unwrap().is_none());
    assert!(store.unacked_batches().unwrap().is_empty());
    assert_eq!(
        store
            .ack(&record.batch_id, &record.manifest_sha256)
            .unwrap(),
        AckOutcome::AlreadyAcked
    );

    // Two thirds dead: the next compaction rewrites the segment.
    let old: Vec<u32> = lock(&store.inner.table)
        .records
        .iter()
        .filter(|(_, r)| !r.lane)
        .map(|(n, _)| *n)
        .collect();
    store.compact_now(false).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.segment_bytes, stats.dead_bytes), (10_000, 0));
    for n in old {
        assert!(!store.inner.segment_path(n).exists());
    }
    assert_eq!(read(&store, 2), bytes(10_000, 2));
    assert!(
        store
            .check(starts_with_anything)
            .unwrap()
            .problems
            .is_empty()
    );
}

#[test]
fn the_compaction_cycle_removes_every_dead_byte_and_empty_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 0..4 {
        put(&store, n, &bytes(30_000, n));
        store.sync_blocking().unwrap();
    }
    // Segments: [0, 1], [2, 3] (the active one). Acknowledge 0 and 2:
    // half of each is dead, which a prompt compaction rewrites one at a
    // time and the cycle all at once.
    let r = record(1, b"m", 2);
    store.record_batch(&r, b"m", b"s", &[id(0), id(2)]).unwrap();
    store.ack(&r.batch_id, &r.manifest_sha256).unwrap();
    store.compact_now(false).unwrap();
    assert_eq!(store.stats().unwrap().dead_bytes, 30_000, "one at a time");
    store.compact_now(true).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.dead_bytes, 0);
    assert_eq!(stats.segment_bytes, 60_000);
    assert_eq!(read(&store, 1), bytes(30_000, 1));
    assert_eq!(read(&store, 3), bytes(30_000, 3));
    // Everything acknowledged: no segment keeps dead bytes.
    let r = record(2, b"m2", 2);
    store
        .record_batch(&r, b"m2", b"s", &[id(1), id(3)])
        .unwrap();
    store.ack(&r.batch_id, &r.manifest_sha256).unwrap();
    store.compact_now(false).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.segment_bytes, stats.dead_bytes), (0, 0));
    assert_eq!(
        stats.segments - stats.lanes,
        1,
        "the active segment stays, empty"
    );
    assert!(
        store
            .check(starts_with_anything)
            .unwrap()
            .problems
            .is_empty()
    );
}

/// Stops a compaction after its step `stop` (1: marker; 2: copy), as a
/// crash would, by doing those steps by hand.
fn crash_during_compaction(dir: &Path, stop: u8) {
    let store = open(dir);
    put(&store, 1, &bytes(20_000, 1));
    put(&store, 2, &bytes(20_000, 2));
    store.sync_blocking().unwrap();
    let (from, to) = {
        let table = lock(&store.inner.table);
        (table.active().unwrap(), table.next_number())
    };
    store
        .inner
        .db
        .insert([COMPACTION], encode(&CompactionRecord { from, to }))
        .unwrap();
    if stop >= 2 {
        let f = segments::create_file(&store.inner.segments_dir, to).unwrap();
        segments::write_at(&f, &bytes(20_000, 2), 0).unwrap();
    }
    store.inner.db.flush().unwrap();
}

#[test]
fn an_interrupted_compaction_is_undone_at_start_up() {
    for stop in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        crash_during_compaction(dir.path(), stop);
        {
            let store = open_for_check(dir.path());
            let report = store.check(starts_with_anything).unwrap();
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            assert!(
                report
                    .repairs
                    .iter()
                    .any(|r| r.contains("broken compaction")),
                "{:?}",
                report.repairs
            );
        }
        let store = open(dir.path());
        assert!(store.inner.db.get([COMPACTION]).unwrap().is_none());
        assert_eq!(read(&store, 1), bytes(20_000, 1));
        assert_eq!(read(&store, 2), bytes(20_000, 2));
        let report = store.check(starts_with_anything).unwrap();
        assert!(report.problems.is_empty() && report.repairs.is_empty());
        let stats = store.stats().unwrap();
        assert_eq!((stats.segments, stats.lanes), (5, 4));
    }
}

#[test]
fn a_compacted_segment_left_behind_is_deleted_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let leftover;
    {
        let store = open(dir.path());
        put(&store, 1, &bytes(20_000, 1));
        put(&store, 2, &bytes(20_000, 2));
        store.sync_blocking().unwrap();
        let from = lock(&store.inner.table).active().unwrap();
        leftover = store.inner.segment_path(from);
        // Keep a copy of the file the compaction is about to delete, and
        // put it back afterwards: a crash between steps 3 and 4.
        let copy = std::fs::read(&leftover).unwrap();
        let r = record(1, b"m", 1);
        store.record_batch(&r, b"m", b"s", &[id(1)]).unwrap();
        store.ack(&r.batch_id, &r.manifest_sha256).unwrap();
        store.compact_now(false).unwrap();
        assert!(!leftover.exists());
        std::fs::write(&leftover, copy).unwrap();
    }
    let store = open(dir.path());
    assert!(!leftover.exists());
    assert_eq!(read(&store, 2), bytes(20_000, 2));
    assert!(
        store
            .check(starts_with_anything)
            .unwrap()
            .problems
            .is_empty()
    );
}

#[test]
fn submissions_nobody_waits_for_are_committed_on_the_cadence() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        Options {
            commit_interval: Duration::from_millis(50),
            ..options()
        },
    )
    .unwrap();
    put(&store, 5, b"its client went away");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.meta(&id(5)).unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(read(&store, 5), b"its client went away");
}

/// Every file (and, with `dirs`, every directory) under `dir` has a
/// modification time no earlier than `start`.
fn assert_covered_since(dir: &Path, start: std::time::SystemTime, dirs: bool) {
    for path in inodes(dir).keys() {
        if path.is_dir() && !dirs {
            continue;
        }
        let modified = std::fs::metadata(path).unwrap().modified().unwrap();
        assert!(
            modified + Duration::from_millis(5) >= start,
            "{} was not covered",
            path.display()
        );
    }
}

#[test]
fn every_round_sets_every_store_file_s_times_to_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    put(&store, 1, b"x");
    store.sync_blocking().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    // An idle round: nothing to commit, the times move all the same.
    let start = std::time::SystemTime::now();
    store.sync_blocking().unwrap();
    assert_covered_since(dir.path(), start, true);
}

#[test]
fn rounds_between_full_covers_cover_every_file_a_round_may_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.sync_blocking().unwrap(); // a full cover: handles taken
    std::thread::sleep(Duration::from_millis(30));
    // A busy round within the second: segment, index and lane files.
    put(&store, 1, &bytes(INLINE_BYTES as usize + 1, 1));
    std::thread::sleep(Duration::from_millis(30));
    let start = std::time::SystemTime::now();
    store.sync_blocking().unwrap();
    assert_covered_since(dir.path(), start, false);
}

#[test]
fn the_quota_counts_what_is_held_and_being_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
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
    // Reopened, the total comes from the segment records.
    let store = open(dir.path());
    assert_eq!(store.held_bytes(), 30_000);
}

#[test]
fn the_free_space_reserve_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.set_limits(u64::MAX, 1);
    store.admit(0).unwrap();
    // No file system has an exabyte free.
    store.set_limits(u64::MAX, 1 << 60);
    assert!(matches!(store.admit(0), Err(Error::StoreFull(_))));
}

/// A stand-in for `seal::check_header` that accepts anything.
fn starts_with_anything(_: &mut dyn Read) -> Result<(), Error> {
    Ok(())
}

/// A stand-in for `seal::check_header`: the bytes start with "age".
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
fn check_reports_each_kind_of_damage_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let segment;
    {
        let store = open(dir.path());
        let mut metas = Vec::new();
        for n in 1..=5 {
            metas.push(put(&store, n, format!("age ciphertext {n}").as_bytes()));
        }
        store.sync_blocking().unwrap();
        segment = store
            .inner
            .segment_path(lock(&store.inner.table).active().unwrap());
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
            demo: false,
        }
        .to_json();
        let r = record(1, &manifest, 1);
        store.record_batch(&r, &manifest, b"s", &[id(5)]).unwrap();
        store.sync_blocking().unwrap();
    }
    let check = || open_for_check(dir.path()).check(starts_with_age).unwrap();
    let healthy = check();
    assert_eq!(healthy.problems, Vec::<String>::new());
    assert_eq!((healthy.submissions, healthy.unacked_batches), (5, 1));

    let store = open_for_check(dir.path());
    let at = |n: u8| store.meta(&id(n)).unwrap().unwrap().at.unwrap();
    let (a1, a3, a4) = (at(1), at(3), at(4));
    drop(store);
    let mut seg = std::fs::read(&segment).unwrap();
    // Corrupt bytes in 3; a broken header in 4.
    seg[a3.offset as usize + 3] ^= 1;
    seg[a4.offset as usize] = b'x';
    std::fs::write(&segment, &seg).unwrap();
    // An index entry past the end (1), and bytes no entry accounts for (2
    // forgotten), by editing the index as damage would.
    {
        let store = open_for_check(dir.path());
        let mut m1 = store.meta(&id(1)).unwrap().unwrap();
        m1.at = Some(Location {
            segment: a1.segment,
            offset: 1_000_000,
        });
        store
            .inner
            .db
            .insert(key(META, id(1).as_bytes()), encode(&m1))
            .unwrap();
        store.inner.db.remove(key(META, id(2).as_bytes())).unwrap();
        store.inner.db.flush().unwrap();
    }
    let report = check();
    let want = [
        (Some(1), "an index entry past the end"),
        (Some(3), "corrupt bytes"),
        (Some(4), "corrupt bytes"),
        (Some(4), "age header does not parse"),
        (None, "unindexed bytes"),
    ];
    assert_eq!(report.problems.len(), want.len(), "{:#?}", report.problems);
    for (n, what) in want {
        let prefix = n.map(|n| format!("submission {}: ", id(n)));
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains(what) && prefix.as_ref().is_none_or(|pre| p.starts_with(pre))),
            "{n:?}: {what:?} not in {:#?}",
            report.problems
        );
    }
    // Truncated segment data.
    std::fs::write(&segment, &seg[..a4.offset as usize]).unwrap();
    let report = check();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("truncated segment data")),
        "{:#?}",
        report.problems
    );
    // Nothing was repaired by checking.
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        a4.offset,
        "check changed the segment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_syncs_share_rounds_and_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open_with(
            dir.path(),
            Options {
                commit_interval: Duration::from_millis(100),
                ..options()
            },
        )
        .unwrap(),
    );
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
}

/// The fixture: a store written by the one-file-per-submission layout
/// (commit 8356946's relay, demo mode: 9 submissions, 6 of them in batch 1,
/// 3 with follow-up threads), then given what a crash leaves: one indexed
/// ciphertext still in `pending/`, and an unfinished upload there.
fn legacy_store(into: &Path) -> std::collections::BTreeMap<SubmissionId, Vec<u8>> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/legacy-store-v1.tar.gz");
    let out = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut files = std::collections::BTreeMap::new();
    for sub in ["objects", "pending"] {
        for e in std::fs::read_dir(into.join("store").join(sub)).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let id: SubmissionId = name.strip_suffix(".age").unwrap().parse().unwrap();
            files.insert(id, std::fs::read(&path).unwrap());
        }
    }
    files
}

fn assert_migrated(store: &Store, files: &std::collections::BTreeMap<SubmissionId, Vec<u8>>) {
    let stats = store.stats().unwrap();
    assert_eq!((stats.submissions, stats.unexported), (9, 3));
    assert_eq!(stats.threads, 3);
    let mut seen = 0;
    for (id, bytes) in files {
        let Some(meta) = store.meta(id).unwrap() else {
            // The unfinished upload: never indexed, gone.
            assert_eq!(bytes, b"half\n");
            continue;
        };
        let mut back = Vec::new();
        store
            .ciphertext(id)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(&back, bytes);
        assert_eq!(Digest::of(&back), meta.sha256);
        seen += 1;
    }
    assert_eq!(seen, 9);
    assert_eq!(store.unacked_batches().unwrap().len(), 1);
    let report = store.check(starts_with_age).unwrap();
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(report.repairs.is_empty(), "{:#?}", report.repairs);
}

#[test]
fn a_store_of_the_old_layout_is_migrated_without_losing_a_submission() {
    let dir = tempfile::tempdir().unwrap();
    let files = legacy_store(dir.path());
    assert_eq!(files.len(), 10);
    let store = open(&dir.path().join("store"));
    assert_migrated(&store, &files);
    assert!(!dir.path().join("store/objects").exists());
    assert!(!dir.path().join("store/pending").exists());
    drop(store);
    // And again: nothing left to do, nothing changes.
    let store = open(&dir.path().join("store"));
    assert_migrated(&store, &files);
}

#[test]
fn a_migration_cut_short_carries_on_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let files = legacy_store(dir.path());
    let path = dir.path().join("store");
    {
        // Before: `relay check` says what start-up will do.
        let store = open_for_check(&path);
        let report = store.check(starts_with_age).unwrap();
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        assert!(report.repairs.iter().any(|r| r.contains("old layout")));
    }
    for _ in 0..3 {
        // Two files per step, one step per start: a crash after each.
        let store = Store::open_migrating(&path, options(), 2, 1).unwrap();
        drop(store);
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        let store = open_for_check(&path);
        let left = std::fs::read_dir(path.join("objects")).unwrap().count()
            + std::fs::read_dir(path.join("pending"))
                .map(|d| d.count())
                .unwrap_or(0);
        assert_eq!(left, 9 - 6, "three steps of two files each");
        drop(store);
    }
    let store = open(&path);
    assert_migrated(&store, &files);
}

#[test]
fn an_acknowledgement_the_old_layout_left_half_done_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let files = legacy_store(dir.path());
    let path = dir.path().join("store");
    {
        // The old layout's crash: the purge marker of batch 1 is durable,
        // one of its files is already deleted.
        let db = sled::Config::new().path(path.join("index")).open().unwrap();
        db.insert(key(PURGE, &1u64.to_be_bytes()), &[]).unwrap();
        db.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let store = open(&path);
    let stats = store.stats().unwrap();
    assert_eq!((stats.submissions, stats.unexported), (3, 3));
    for (id, bytes) in &files {
        if store.meta(id).unwrap().is_some() {
            let mut back = Vec::new();
            store
                .ciphertext(id)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(&back, bytes);
        }
    }
    assert!(store.inner.db.scan_prefix([PURGE]).next().is_none());
    assert!(!path.join("objects").exists());
}

/// A round can take a finished submission before its writer starts to
/// wait; if that round fails, the next round (which answers the writer)
/// may succeed. The writer must still hear that its submission was not
/// stored: before `Store::commit`, `sync` answered Ok and the source was
/// told "stored safely" for a submission that was gone (seen with a full
/// disk and a round every 10 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_dropped_by_a_round_before_its_writer_waits_is_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        Options {
            commit_interval: Duration::from_millis(20),
            ..options()
        },
    )
    .unwrap();
    store
        .inner
        .fail_rounds
        .store(1, std::sync::atomic::Ordering::SeqCst);
    put(&store, 1, &[1; 100]);
    // The round that takes it runs (and fails) before anyone waits.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.stats().unwrap().pending > 0 {
        assert!(std::time::Instant::now() < deadline, "no round ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The generic sync is answered by the next round, which succeeds.
    put(&store, 2, &[2; 100]);
    let e = store.commit(id(1)).await.unwrap_err();
    assert!(e.is_out_of_space(), "{e}");
    // The other submission, in the good round, is stored.
    store.commit(id(2)).await.unwrap();
    assert_eq!(store.stats().unwrap().submissions, 1);
    assert!(store.meta(&id(1)).unwrap().is_none());
    assert_eq!(store.stats().unwrap().ciphertext_bytes, 100);
}

/// The index's snapshot files (`index/snap.*`), sorted.
fn snapshots(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snap."))
        .collect();
    names.sort();
    names
}

/// sled 0.34.7 writes its snapshot only while it opens, into
/// `snap.<lsn>.generating`, which it renames when whole; and it reads the
/// name that sorts last, `.generating` or not. A relay killed in between
/// left an index that never opened again ("Read corrupted data at file
/// offset None": CI, the crash test). Each prefix a kill can leave, from
/// the empty file to the whole one not yet renamed, must open with every
/// submission.
#[test]
fn a_snapshot_a_kill_left_half_written_does_not_stop_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for n in 1..=20 {
            put(&store, n, &bytes(300, n));
        }
        store.sync_blocking().unwrap();
    }
    // Opening again writes a snapshot that covers the log so far.
    drop(open(dir.path()));
    let snaps = snapshots(dir.path());
    let [snap] = snaps.as_slice() else {
        panic!("expected one snapshot file, found {snaps:?}");
    };
    let whole = std::fs::read(dir.path().join("index").join(snap)).unwrap();
    let lsn = u64::from_str_radix(snap.trim_start_matches("snap."), 16).unwrap();
    for cut in [0, 5, 12, whole.len() / 2, whole.len() - 1, whole.len()] {
        // The next snapshot's name (a later log position), as a kill
        // during sled's write_snapshot leaves it.
        let left = dir
            .path()
            .join("index")
            .join(format!("snap.{:016X}.generating", lsn + 1));
        std::fs::write(&left, &whole[..cut]).unwrap();
        let store = open(dir.path());
        for n in 1..=20 {
            assert_eq!(read(&store, n), bytes(300, n), "cut at {cut}");
        }
        assert!(
            !left.exists(),
            "cut at {cut}: the half-written snapshot stayed"
        );
        drop(store);
    }
}

/// While a store is open (a running relay), a second opener deletes
/// nothing of its index, not even an unfinished snapshot: it is told the
/// store is locked, as sled would tell it.
#[test]
fn an_open_store_s_index_is_left_alone_by_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    put(&store, 1, b"held");
    store.sync_blocking().unwrap();
    let left = dir
        .path()
        .join("index")
        .join("snap.00000000000FFFFF.generating");
    std::fs::write(&left, b"a running opener's snapshot").unwrap();
    for second in [
        Store::open_with(dir.path(), options()).err(),
        Store::open_for_check(dir.path(), 1 << 20).err(),
    ] {
        assert!(matches!(second, Some(Error::StoreLocked(_))), "{second:?}");
        assert!(
            left.exists(),
            "a second opener deleted a file of the open index"
        );
    }
    drop(store);
    let store = open(dir.path());
    assert!(!left.exists());
    assert_eq!(read(&store, 1), b"held");
}

/// sled 0.34.7 writes its settings file (`index/conf`) once, at the very
/// first start, before it creates anything else of the index, in two
/// writes: the settings, then their checksum. A relay killed between the
/// two (strace showed it: `relay demo` on a new directory, killed at the
/// second write) left an index that never opened ("Read corrupted data").
/// Nothing was stored yet, so the first start must be able to happen again.
#[test]
fn a_settings_file_a_kill_cut_at_the_first_start_is_written_again() {
    let made = tempfile::tempdir().unwrap();
    drop(open(made.path()));
    let conf = std::fs::read(made.path().join("index/conf")).unwrap();
    assert!(conf.len() > 12);

    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    std::fs::create_dir_all(index.join("blobs")).unwrap();
    // Every cut a kill can leave: empty, settings without their checksum,
    // part of the checksum.
    for cut in [0, conf.len() - 4, conf.len() - 1] {
        std::fs::write(index.join("conf"), &conf[..cut]).unwrap();
        let store = open(dir.path());
        put(&store, 1, b"after the first start");
        store.sync_blocking().unwrap();
        drop(store);
        let store = open(dir.path());
        assert_eq!(read(&store, 1), b"after the first start", "cut at {cut}");
        drop(store);
        assert_eq!(
            std::fs::read(index.join("conf")).unwrap(),
            conf,
            "cut at {cut}"
        );
        std::fs::remove_dir_all(&index).unwrap();
        std::fs::create_dir_all(index.join("blobs")).unwrap();
    }

    // Once the index exists, a damaged settings file is not a kill's: it
    // is left for sled (and a person) to judge, never rewritten.
    drop(open(dir.path()));
    let mut damaged = conf.clone();
    damaged[2] ^= 0x40;
    std::fs::write(index.join("conf"), &damaged).unwrap();
    let _ = Store::open_with(dir.path(), options());
    assert_eq!(std::fs::read(index.join("conf")).unwrap(), damaged);
}
