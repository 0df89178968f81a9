//! Module boundaries the code must keep (`docs/design.md`, "Parts and
//! boundaries"): only `store/` talks to sled, and only `seal.rs` to age,
//! so each engine can be read, tested and swapped alone. A rule kept by a
//! test rather than a comment.

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

/// Docs and comments name decisions and docs/ sections, never a ticket's
/// number or a design document outside the repository: a new maintainer
/// has neither.
#[test]
fn docs_and_comments_cite_no_ticket_and_no_outside_design_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    collect_all(&root, &mut files);
    let mut found = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // binary files
        };
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        for (n, line) in text.lines().enumerate() {
            // In Rust, only the comment part of a line.
            let checked = if rel.ends_with(".rs") {
                line.find("//").map_or("", |i| &line[i..])
            } else {
                line
            };
            if let Some(why) = ticket_reference(checked) {
                found.push(format!("{rel}:{}: {why}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "name the decision or link the docs/ section instead:\n{}",
        found.join("\n")
    );
    // The check itself finds what it is for.
    assert!(ticket_reference(&format!("see {} 7", "issue")).is_some());
    assert!(ticket_reference(&format!("({} #13)", "Issue")).is_some());
    assert!(ticket_reference(&format!("see {}.md", "DESIGN")).is_some());
    assert!(ticket_reference("docs/design.md, the issue of trust").is_none());
}

fn collect_all(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if matches!(
            name.as_str(),
            "target" | "node_modules" | ".git" | "corpus" | "artifacts" | "CHANGELOG.md"
        ) {
            continue;
        }
        if path.is_dir() {
            collect_all(&path, out)
        } else {
            out.push(path)
        }
    }
}

/// The outside design document's name (in capitals: docs/design.md is ours),
/// or "issue" followed (after spaces or `#`) by a digit, in any case.
fn ticket_reference(text: &str) -> Option<&'static str> {
    if text.contains(concat!("DESIGN", ".md")) {
        return Some("an outside design document");
    }
    let lower = text.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("issue") {
        rest = &rest[i + 5..];
        if rest
            .trim_start_matches([' ', '#'])
            .starts_with(|c: char| c.is_ascii_digit())
        {
            return Some("a ticket number");
        }
    }
    None
}

/// THIRD-PARTY.md lists every crate compiled into the two binaries, with
/// its licence and the licence files it ships, and the EFF word list's
/// attribution: it is regenerated from Cargo.lock, so a dependency change
/// that does not update it fails here.
#[test]
fn third_party_notices_are_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = std::process::Command::new("python3")
        .arg(root.join("scripts/third-party"))
        .arg("--check")
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(root.join("THIRD-PARTY.md")).unwrap();
    assert!(
        text.contains("CC BY 3.0 US"),
        "the EFF word list's attribution"
    );
    assert!(
        std::fs::read_to_string(root.join("LICENSE"))
            .unwrap()
            .starts_with("GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3, 19 November 2007")
    );
}
