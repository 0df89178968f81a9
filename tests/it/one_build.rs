//! The README's sequence builds the dependency tree once: the relay alone
//! (`cargo run --release -p relay -- demo`), then the reviewer with it
//! (`cargo build --release -p reviewer -p relay`). Cargo compiles a
//! dependency again for every new feature set, so each (package, features)
//! pair that the relay alone (or the reviewer alone) builds must also be
//! what the two together build. `crates/workspace-hack` asks for the union;
//! this test names what to add there when a dependency change breaks it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// `cargo tree` for `packages`: one line per compiled package, "name
/// version (path) feature,feature", without dev-dependencies (a release
/// build of the binaries does not build them).
fn units(packages: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root).args([
        "tree",
        "--locked",
        "--offline",
        "--edges",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p} [{f}]",
    ]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = cmd.output().expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .map(|l| l.replace(" (*)", "").replace(" (proc-macro)", ""))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn rebuilt(alone: &[&str]) -> Vec<String> {
    let together = units(&["relay", "reviewer"]);
    units(alone).difference(&together).cloned().collect()
}

#[test]
fn building_the_reviewer_after_the_relay_rebuilds_no_dependency() {
    let extra = rebuilt(&["relay"]);
    assert!(
        extra.is_empty(),
        "built with other features once the reviewer joins (add the union to \
         crates/workspace-hack/Cargo.toml):\n{}",
        extra.join("\n")
    );
}

#[test]
fn building_the_relay_after_the_reviewer_rebuilds_no_dependency() {
    let extra = rebuilt(&["reviewer"]);
    assert!(
        extra.is_empty(),
        "built with other features once the relay joins (add the union to \
         crates/workspace-hack/Cargo.toml):\n{}",
        extra.join("\n")
    );
}
