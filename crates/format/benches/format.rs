//! Micro-benchmarks of the shared formats: PADMÉ and the batch manifest's
//! JSON, both ways, at 10,000 entries. Run with
//! `cargo bench -p relay-format --bench format`; `scripts/bench/run micro`
//! puts the results in `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use format::{MANIFEST_FORMAT, Manifest};

/// Lengths spread evenly on a log scale from 1 byte to 1 TiB.
fn lengths(n: u32) -> Vec<u64> {
    (0..n)
        .map(|i| 2f64.powf(40.0 * f64::from(i) / f64::from(n - 1)) as u64)
        .collect()
}

fn padding(c: &mut Criterion) {
    let lens = lengths(1000);
    let mut g = c.benchmark_group("padding");
    g.throughput(Throughput::Elements(lens.len() as u64));
    g.bench_function("padme/1000 lengths", |b| {
        b.iter(|| {
            lens.iter()
                .fold(0u64, |acc, &l| acc ^ format::padme(black_box(l)))
        });
    });
    g.bench_function("padded_plaintext_len/1000 submissions", |b| {
        b.iter(|| {
            lens.iter().fold(0u64, |acc, &l| {
                let unpadded = format::unpadded_tar_len(1500, &[black_box(l)]);
                acc ^ format::padded_plaintext_len(unpadded)
            })
        });
    });
    g.finish();
}

/// A manifest of `n` entries, built as JSON text so that the benchmark
/// follows the format's grammar rather than its Rust types.
fn manifest(n: u64) -> Manifest {
    let hex128 = |x: u64| format!("{:016x}{:016x}", x.wrapping_mul(0x9e37_79b9_7f4a_7c15), x);
    let entries: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"{}","received_day":"2026-11-28","epoch":1,"size":{},"sha256":"{}{}"}}"#,
                hex128(i + 1),
                17_000 + i % 4096,
                hex128(i ^ 0x5555),
                hex128(i ^ 0xaaaa),
            )
        })
        .collect();
    let json = format!(
        r#"{{"format":"{MANIFEST_FORMAT}","relay_key":"RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3","batch_id":"{}","sequence":2,"previous_manifest_sha256":"{}{}","created_day":"2026-11-28","submissions":[{}]}}"#,
        hex128(7),
        hex128(8),
        hex128(9),
        entries.join(",")
    );
    match Manifest::from_json(json.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("the benchmark's manifest does not parse: {e}"),
    }
}

fn manifest_json(c: &mut Criterion) {
    let m = manifest(10_000);
    let bytes = m.to_json();
    let mut g = c.benchmark_group("manifest");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(20);
    g.bench_function("to_json/10000 entries", |b| {
        b.iter(|| black_box(&m).to_json())
    });
    g.bench_function("from_json/10000 entries", |b| {
        b.iter(|| Manifest::from_json(black_box(&bytes)).map(|m| m.submissions.len()))
    });
    g.finish();
}

criterion_group!(benches, padding, manifest_json);
criterion_main!(benches);
