//! The README's walkthrough ("Try it: submit, pull, open, acknowledge"),
//! run as written: its two shell blocks are read out of README.md and run
//! with bash against a demo relay, the setup once and the round twice in a
//! row, so that the second round meets everything the first one left (an
//! archived batch, an acknowledged receipt) in its globs.
//!
//! Only the README's own text runs, with two changes a test needs: the
//! `cargo build` line is left out (the test has the binaries already, on
//! PATH), and the demo's port is the one this test's relay listens on.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{RELAY, Served};

/// The README's shell blocks under `heading`, in order.
fn blocks_under(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```").unwrap();
        blocks.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    blocks
}

struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

fn bash(script: &str, cwd: &Path, home: &Path, bin: &Path) -> Run {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(cwd)
        .env("HOME", home)
        .env("PATH", path)
        .env_remove("REVIEWER_STATE_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        code: o.status.code(),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn submission_dirs(archive: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(archive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().len() == 32)
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn the_readme_walkthrough_runs_twice_in_a_row() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let blocks = blocks_under(&readme, "## Try it: submit, pull, open, acknowledge");
    assert_eq!(
        blocks.len(),
        2,
        "a setup block and a round block: {blocks:?}"
    );

    let root = tempfile::tempdir().unwrap();
    // The "repository": where the demo relay was started (`./relay-data`).
    let repo = root.path().join("repo");
    let home = root.path().join("home");
    let bin = root.path().join("bin");
    for d in [&repo, &home, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::os::unix::fs::symlink(RELAY, bin.join("relay")).unwrap();
    std::os::unix::fs::symlink(testkit::reviewer_bin(), bin.join("reviewer")).unwrap();
    let served = Served::start(&repo.join("relay-data"));
    let port = |s: &str| s.replace("127.0.0.1:8443", &served.addr.to_string());
    let setup: String = port(&blocks[0])
        .lines()
        .filter(|l| !l.trim_start().starts_with("cargo "))
        .map(|l| format!("{l}\n"))
        .collect();
    let round = port(&blocks[1]);
    let script = format!("{setup}\n{round}");

    let first = bash(&script, &repo, &home, &bin);
    assert_eq!(
        first.code,
        Some(0),
        "round 1:\n{}\n{}",
        first.out,
        first.err
    );
    assert!(first.out.contains("saved "), "{}", first.out);
    assert!(first.out.contains("OK batch 1 "), "{}", first.out);
    assert!(first.out.contains("opened batch 1 "), "{}", first.out);
    // --form-string kept the text whole, the ';' included.
    assert!(first.out.contains("What I saw; and when"), "{}", first.out);
    assert!(
        first.out.contains("relay deleted 1 submissions of batch 1"),
        "{}",
        first.out
    );

    let second = bash(&script, &repo, &home, &bin);
    assert_eq!(
        second.code,
        Some(0),
        "round 2:\n{}\n{}",
        second.out,
        second.err
    );
    // verify and open: batch 1 said and skipped, batch 2 checked and opened.
    assert_eq!(
        second.out.matches("batch 1 of relay ").count(),
        2,
        "{}",
        second.out
    );
    assert!(second.out.contains("OK batch 2 "), "{}", second.out);
    assert!(second.out.contains("opened batch 2 "), "{}", second.out);
    assert!(
        second
            .out
            .contains("batch 1 was already acknowledged: nothing to do")
            && second
                .out
                .contains("relay deleted 1 submissions of batch 2"),
        "{}",
        second.out
    );

    let archive = home.join("relay-walkthrough/cases");
    assert_eq!(submission_dirs(&archive).len(), 2);
    // Nothing of it landed in the repository: only the demo's data is there.
    let names: Vec<_> = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["relay-data"],
        "the walkthrough wrote into the repository"
    );
    served.kill();
}

/// Every error a reviewer can meet in the walkthrough, by a typical
/// mistake at each step: one line (`reviewer: …`, and at most a `hint:`
/// line under it) that names the next step, and exit code 1.
#[test]
fn every_walkthrough_mistake_gets_one_line_naming_the_next_step() {
    let root = tempfile::tempdir().unwrap();
    let w = root.path();
    let demo = w.join("relay-data");
    let served = Served::start(&demo);
    let url = served.url();
    let d = |name: &str| demo.join(name).display().to_string();
    let reviewer = testkit::reviewer_bin();
    let run = |args: &[String]| {
        Command::new(reviewer)
            .args(args)
            .current_dir(w)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>();
    let key = String::from_utf8(
        Command::new(RELAY)
            .args(["pubkey", "--data", &d("")])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let online = |cmd: &str, token: &str, cert: Option<&str>, rest: &[&str]| {
        let mut a = s(&[cmd, "--relay", &url, "--token-file", token]);
        if let Some(c) = cert {
            a.extend(s(&["--tls-cert", c]));
        }
        a.extend(s(rest));
        a
    };
    let cert = d("tls/cert.pem");
    let token = d("demo-api.token");
    assert_eq!(crate::util::submit(&demo, &url, "a; b"), 200);
    std::fs::write(w.join("wrong.token"), "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::create_dir_all(w.join("Documents")).unwrap();
    std::fs::write(w.join("Documents/letter.odt"), b"personal").unwrap();

    // Before any batch is fetched: the globs match nothing.
    let mut cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "verify before fetch (the glob is left as it is)",
            s(&[
                "verify",
                "batches/*.tar",
                "--relay-key",
                &key,
                "--archive",
                "cases",
            ]),
            "run the step that makes those files first",
        ),
        (
            "fetch with a token file that is not there",
            online("fetch", "nope.token", Some(&cert), &["--out", "batches"]),
            "check the path",
        ),
        (
            "fetch with the wrong token",
            online("fetch", "wrong.token", Some(&cert), &["--out", "batches"]),
            "check the token file",
        ),
        (
            "fetch without the demo's certificate",
            online("fetch", &token, None, &["--out", "batches"]),
            "pass --tls-cert FILE",
        ),
        (
            "fetch from a port nothing listens on",
            s(&[
                "fetch",
                "--relay",
                "https://127.0.0.1:9",
                "--token-file",
                &token,
                "--tls-cert",
                &cert,
                "--out",
                "batches",
            ]),
            "check the address, the network and --tls-cert",
        ),
        (
            "fetch over plain http to a remote host",
            s(&[
                "fetch",
                "--relay",
                "http://relay.example.org",
                "--token-file",
                &token,
                "--out",
                "batches",
            ]),
            "use https://",
        ),
        (
            "ack before open (the glob is left as it is)",
            online("ack", &token, Some(&cert), &["cases/receipts/*.json"]),
            "run the step that makes those files first",
        ),
    ];
    let check = |cases: &mut Vec<(&str, Vec<String>, &str)>| {
        for (what, args, next) in cases.drain(..) {
            let o = run(&args);
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            let lines: Vec<&str> = err.lines().collect();
            assert_eq!(o.status.code(), Some(1), "{what}: {err}");
            assert!(
                lines.first().is_some_and(|l| l.starts_with("reviewer: "))
                    && (lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: "))),
                "{what}: not one line: {err}"
            );
            assert!(err.contains(next), "{what}: no next step ({next:?}): {err}");
        }
    };
    check(&mut cases);

    // With a batch fetched.
    let o = run(&online("fetch", &token, Some(&cert), &["--out", "batches"]));
    assert!(o.status.success());
    let batch = std::fs::read_dir(w.join("batches"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .display()
        .to_string();
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(w.join("cut.tar"), &bytes[..bytes.len() - 3000]).unwrap();
    let other_key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    let production = w.join("production.key");
    std::fs::write(
        &production,
        relay::seal::generate_identity(format::Day::today(), "production").0,
    )
    .unwrap();
    let open = |identity: &str, out: &str| {
        s(&[
            "open",
            &batch,
            "--identity",
            identity,
            "--relay-key",
            &key,
            "--out",
            out,
        ])
    };
    let mut cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "a relay key that is not one",
            s(&["verify", &batch, "--relay-key", "RWnotakey"]),
            "pass the RW… key `relay pubkey` prints",
        ),
        (
            "another relay's key",
            s(&["verify", &batch, "--relay-key", other_key]),
            "check --relay-key",
        ),
        (
            "a batch file cut off",
            s(&["verify", "cut.tar", "--relay-key", &key]),
            "fetch it again from the relay",
        ),
        (
            "open with an identity file that is not there",
            open("nope.key", "cases"),
            "check the path",
        ),
        (
            "open with a file that is not an identity",
            open(&d("signing.key"), "cases"),
            "pass the file `reviewer keygen` wrote",
        ),
        (
            "open with a key the batch is not sealed to",
            open(&production.display().to_string(), "cases"),
            "is it your reviewer key for epoch",
        ),
        (
            "open into a folder of personal files",
            open(&d("demo-reviewer.key"), "Documents"),
            "pass a new or empty folder",
        ),
        (
            "list before any open",
            s(&["list", "cases"]),
            "pass the directory `reviewer open … --out DIR` opened batches into",
        ),
        (
            "an old --state flag",
            s(&["verify", &batch, "--relay-key", &key, "--state", "state"]),
            "drop --state",
        ),
    ];
    check(&mut cases);

    // Opened; then the receipt step.
    let o = run(&open(&d("demo-reviewer.key"), "cases"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(w.join("not-a-receipt.json"), b"{}").unwrap();
    let mut cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "ack of a file that is not a receipt",
            online("ack", &token, Some(&cert), &["not-a-receipt.json"]),
            "is not a receipt written by `reviewer open`",
        ),
        (
            "show of an id no submission has",
            s(&["show", "cases", "ffffffff"]),
            "`reviewer list cases` shows the ids",
        ),
        (
            "replies of a thread the archive does not know",
            s(&["replies", "cases", "--thread", "ffffffff"]),
            "`reviewer threads cases` lists them",
        ),
    ];
    check(&mut cases);
    served.kill();
}
