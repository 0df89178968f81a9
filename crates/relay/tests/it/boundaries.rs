//! Module boundaries the code must keep (issue 13): only `store/` talks to
//! sled, and only `seal.rs` to age, so each engine can be read, tested and
//! swapped alone. A rule kept by a test rather than a comment.

#![allow(clippy::unwrap_used)] // test harness: a panic is a failed test

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Files under `src/` that name the crate `krate` (`krate::` in code),
/// other than those `allowed` says may.
fn offenders(krate: &str, allowed: impl Fn(&Path) -> bool) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let needle = format!("{krate}::");
    let mut out = Vec::new();
    for path in files {
        let relative = path.strip_prefix(&src).unwrap();
        if allowed(relative) {
            continue;
        }
        for (n, line) in std::fs::read_to_string(&path).unwrap().lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let named = code.match_indices(&needle).any(|(i, _)| {
                // `age::` but not `storage::` or `my_age::`.
                i == 0
                    || !code.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && code.as_bytes()[i - 1] != b'_'
            });
            if named {
                out.push(format!("{}:{}: {}", relative.display(), n + 1, line.trim()));
            }
        }
    }
    out
}

#[test]
fn only_the_store_module_talks_to_sled() {
    let found = offenders("sled", |p| p.starts_with("store"));
    assert!(
        found.is_empty(),
        "sled used outside store/:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_seal_module_talks_to_age() {
    let found = offenders("age", |p| p == Path::new("seal.rs"));
    assert!(
        found.is_empty(),
        "age used outside seal.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_what_it_looks_for() {
    // The store does name sled, and seal age: the scan would see a use.
    assert!(!offenders("sled", |p| !p.starts_with("store")).is_empty());
    assert!(!offenders("age", |p| p != Path::new("seal.rs")).is_empty());
}
