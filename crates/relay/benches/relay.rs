//! Micro-benchmarks of the relay's hot pieces: sealing a 4 KiB submission
//! to 3 recipients, and the reviewer's verification of a batch
//! the relay exported. Run with `cargo bench -p relay --bench relay`;
//! `scripts/bench/run micro` puts the results in `docs/benchmarks.md`.
//!
//! Only the crates' public APIs are used. Sealing ends in the store, which
//! fsyncs each ciphertext file; the store lives on tmpfs (`/dev/shm`) where
//! there is one, so that the figure is the CPU cost of sealing rather than
//! the disk's (scenario "small" of `scripts/bench/run` measures the disk).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use format::{Day, SubmissionId};
use relay::export::{self, BatchLock};
use relay::keys::SigningKey;
use relay::seal::{self, Recipients, Spool, Spools, Submission};
use relay::store::Store;
use reviewer::state::ChainAnchor;
use reviewer::verify::{self, PinnedKey};

/// Benchmark set-up failed: there is nothing to measure.
fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    panic!("benchmark set-up: {what}: {e}")
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("relay-bench")
            .tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    dir.unwrap_or_else(|e| fail("create a scratch directory", e))
}

fn recipients() -> Recipients {
    let list: Vec<String> = (0..3)
        .map(|_| age::x25519::Identity::generate().to_public().to_string())
        .collect();
    Recipients::parse(&list).unwrap_or_else(|e| fail("parse recipients", e))
}

fn submission(text: &str) -> Submission {
    Submission {
        form_version: 1,
        language: "en".into(),
        fields: BTreeMap::from([("category".to_owned(), "other".to_owned())]),
        labels: BTreeMap::new(),
        text: text.to_owned(),
        received_day: Day::today(),
        thread: None,
    }
}

fn id(n: u64) -> SubmissionId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[8] = 0xbe;
    SubmissionId::from_bytes(bytes)
}

/// Seals `n` 4 KiB submissions into `store`, ids from `first`.
fn spools(dir: &Path) -> Spools {
    Spools::open(&dir.join("tmp"), 2).unwrap_or_else(|e| fail("open the spools", e))
}

fn seal_many(store: &Store, spools: &Spools, recipients: &Recipients, first: u64, n: u64) {
    let text = "x".repeat(4096);
    for i in first..first + n {
        let pending = store
            .begin(id(i))
            .unwrap_or_else(|e| fail("begin a submission", e));
        let spool = Spool::new(spools).unwrap_or_else(|e| fail("create a spool", e));
        let (pending, sealed) = seal::seal(submission(&text), spool, recipients, 1, pending)
            .unwrap_or_else(|e| fail("seal", e));
        pending
            .finish(
                sealed.received_day,
                sealed.epoch,
                sealed.key_set,
                sealed.thread,
            )
            .unwrap_or_else(|e| fail("finish", e));
        // Sealed ciphertexts wait in memory for a commit round; commit now
        // and then, as the relay's rounds would (one sync per 256 here).
        if (i - first) % 256 == 255 {
            store.sync_blocking().unwrap_or_else(|e| fail("commit", e));
        }
    }
}

fn seal_4k(c: &mut Criterion) {
    let recipients = recipients();
    let mut g = c.benchmark_group("seal");
    g.throughput(Throughput::Bytes(4096));
    g.bench_function("4 KiB text, 3 recipients", |b| {
        // A fresh store per sample keeps the scratch space small.
        b.iter_custom(|iters| {
            let dir = scratch();
            let store = Store::open(&dir.path().join("store"), 16 << 20)
                .unwrap_or_else(|e| fail("open the store", e));
            let spools = spools(dir.path());
            let start = Instant::now();
            seal_many(&store, &spools, &recipients, 0, iters);
            let spent = start.elapsed();
            drop(store);
            spent
        });
    });
    g.finish();
}

fn batch_verify(c: &mut Criterion) {
    const SUBMISSIONS: u64 = 1000;
    let dir = scratch();
    let store = Store::open(&dir.path().join("store"), 16 << 20)
        .unwrap_or_else(|e| fail("open the store", e));
    seal_many(&store, &spools(dir.path()), &recipients(), 0, SUBMISSIONS);
    store.sync_blocking().unwrap_or_else(|e| fail("commit", e));
    let (signer, _) =
        SigningKey::load_or_create(dir.path()).unwrap_or_else(|e| fail("signing key", e));
    let record = export::create_batch(&BatchLock::default(), &store, &signer, 1000, false)
        .unwrap_or_else(|e| fail("create a batch", e))
        .unwrap_or_else(|| fail("create a batch", "nothing to export"));
    let path = dir.path().join("batch.tar");
    let file = std::fs::File::create(&path).unwrap_or_else(|e| fail("create the batch file", e));
    export::write_batch(&store, &record, std::io::BufWriter::new(file))
        .unwrap_or_else(|e| fail("write the batch", e));
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| fail("stat the batch", e))
        .len();
    let key = PinnedKey::from_base64(&signer.public_base64())
        .unwrap_or_else(|e| fail("pin the relay key", e));

    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(size));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("verify/1000 submissions of 4 KiB", |b| {
        b.iter(|| {
            verify::verify_batches(&[black_box(&path)], &key, &ChainAnchor::Genesis)
                .map(|v| v.len())
                .unwrap_or_else(|e| fail("verify", e))
        });
    });
    g.finish();
}

criterion_group!(benches, seal_4k, batch_verify);
criterion_main!(benches);
