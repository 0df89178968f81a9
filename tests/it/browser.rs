//! The real browser test: Debian's headless Chromium, with JavaScript off
//! as in Tor Browser at "Safest", on a phone-sized window, fills every field
//! of the Kazakh form, attaches two files and submits over real TLS; then
//! the batch is pulled and opened with the reviewer CLI and the answers, the
//! language and the file bytes are checked. The browser side is
//! `tests/browser/drive.mjs` (playwright-core + axe-core, installed by
//! `scripts/test`); it also checks the pages with axe-core and at 320 px.
//! Screenshots land in `target/browser-artifacts/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{TestRelay, arg, manifest, random_with_canary, run, workspace_root};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Upper bound for the whole browser run; Playwright's own timeouts (30 s
/// an action) normally end a stuck run long before.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(300);

/// Answers chosen in the browser: option values, which are the stable keys
/// the sealed testimony records.
const CATEGORY: &str = "prisoners";
const REGION: &str = "almaty-city";
const MONTH: &str = "03";

#[test]
fn kazakh_form_without_javascript_reaches_the_reviewer() {
    let root = workspace_root();
    let browser_dir = root.join("tests/browser");
    assert!(
        browser_dir
            .join("node_modules/playwright-core/package.json")
            .exists()
            && browser_dir
                .join("node_modules/axe-core/package.json")
                .exists(),
        "tests/browser/node_modules is missing: run scripts/test, which installs them \
         (npm ci --prefix tests/browser)"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/test, which installs Debian's chromium (apt-get)"
    );

    let relay = TestRelay::start();
    let artifacts = root.join("target/browser-artifacts");
    // Only this run's screenshots: a stale one must not pass for a new one.
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();

    // Two files as a source would attach them: a binary one with a canary,
    // and a text one with a Kazakh name.
    let uploads = relay.root.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let photo = random_with_canary(300 * 1024, b"CANARY-browser-file-3e8a41");
    let note = "Дәрігер хаты: ауруханада дәрі жоқ.\n".as_bytes().to_vec();
    let files = [("photo-1.jpg", &photo), ("дәрігер-хаты.txt", &note)];
    for (name, data) in &files {
        std::fs::write(uploads.join(name), data).unwrap();
    }
    let canary = format!("CANARY-browser-text-{:08x}", rand::random::<u32>());
    let text = format!("Оны түнде алып кетті. Бізге ештеңе айтпады. {canary}");

    let mut cmd = Command::new("node");
    cmd.arg(browser_dir.join("drive.mjs"))
        .args(["--url", &relay.url])
        .args(["--ca", &arg(&relay.cert())])
        .args(["--out", &arg(&artifacts)])
        .args(["--lang", "kk"])
        .args(["--category", CATEGORY])
        .args(["--region", REGION])
        .args(["--month", MONTH])
        .args(["--text", &text]);
    for (name, _) in &files {
        cmd.args(["--file", &arg(&uploads.join(name))]);
    }
    let started = Instant::now();
    let (ok, summary) = run_with_timeout(cmd, DRIVER_TIMEOUT);
    eprintln!(
        "browser run took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        artifacts.display()
    );
    assert!(
        ok,
        "the browser checks failed (details above on stderr); summary:\n{summary}"
    );
    let summary: serde_json::Value = serde_json::from_str(&summary)
        .unwrap_or_else(|e| panic!("drive.mjs printed no JSON summary ({e}):\n{summary}"));
    let events_month = summary["submitted"]["events_month"]
        .as_str()
        .expect("summary.submitted.events_month")
        .to_owned();
    assert!(
        events_month.len() == 7 && events_month.ends_with(&format!("-{MONTH}")),
        "{events_month}"
    );
    // The success page was reloaded (and the batch below holds nothing
    // twice), and a mistyped codename was kept in the box.
    assert!(
        ["POST", "GET"].contains(&summary["reload"]["method"].as_str().unwrap_or("")),
        "{summary}"
    );
    assert_eq!(summary["mistyped"]["status"], 400, "{summary}");
    assert_eq!(summary["mistyped"]["kept"], true, "{summary}");
    for shot in ["kk-form-filled-360.png", "kk-received-360.png"] {
        let png = std::fs::read(artifacts.join(shot)).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{shot} is no PNG");
    }

    // The reviewer's side: exactly what the browser sent, sealed, and the
    // follow-up it added with the codename, in the same thread.
    let batch = relay
        .next_batch()
        .expect("the browser's submissions in a batch");
    let m = manifest(&batch);
    assert_eq!(m.submissions.len(), 2, "the testimony and its follow-up");
    assert_eq!(m.threads.len(), 1);
    assert!(
        m.submissions
            .iter()
            .all(|e| e.thread == Some(m.threads[0].id))
    );
    let opened = relay.root.path().join("opened");
    let open = relay.open_cmd(&[&batch]).out(&opened);
    run(&open).unwrap();
    let read = |e: &format::ManifestEntry| -> serde_json::Value {
        let json =
            std::fs::read_to_string(opened.join(e.id.to_string()).join("testimony.json")).unwrap();
        serde_json::from_str(&json).unwrap()
    };
    let (first, follow): (Vec<_>, Vec<_>) = m
        .submissions
        .iter()
        .partition(|e| read(e)["fields"]["kind"] != "followup");
    assert_eq!((first.len(), follow.len()), (1, 1));
    let later = read(follow[0]);
    assert_eq!(later["text"], "Follow-up from the browser test.", "{later}");
    assert_eq!(later["language"], "kk", "{later}");
    assert_eq!(
        summary["followup"]["cookie"]["sameSite"], "Strict",
        "{summary}"
    );
    let sub = opened.join(first[0].id.to_string());
    let json = std::fs::read_to_string(sub.join("testimony.json")).unwrap();
    let testimony: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(testimony["language"], "kk", "{json}");
    assert_eq!(testimony["fields"]["category"], CATEGORY, "{json}");
    assert_eq!(testimony["fields"]["region"], REGION, "{json}");
    assert_eq!(testimony["fields"]["events_month"], events_month, "{json}");
    // The browser may turn the textarea's line breaks into CRLF; there are none.
    assert_eq!(testimony["text"], text, "{json}");
    for (i, (name, data)) in files.iter().enumerate() {
        // Written under its place and name (`01-photo-1.jpg`).
        let name = format::disk_name(i, files.len(), name);
        let got = std::fs::read(sub.join("files").join(&name))
            .unwrap_or_else(|e| panic!("files/{name} in the opened submission: {e}"));
        assert!(got == **data, "files/{name} differs from what was attached");
    }
    // Every screenshot the summary names was written.
    for shot in summary["screenshots"].as_array().unwrap() {
        assert!(Path::new(shot.as_str().unwrap()).exists(), "{shot}");
    }
    // Nothing was submitted besides these two (the refused ones were not
    // stored).
    assert_eq!(relay.next_batch(), None);
}

/// Runs `cmd`, its stderr shown as it comes, and returns whether it exited 0
/// and its stdout; kills it after `limit`.
fn run_with_timeout(mut cmd: Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node (Node.js 20 or newer must be installed)");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).unwrap();
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("drive.mjs ran longer than {limit:?} and was stopped");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status.success(), reader.join().unwrap())
}
