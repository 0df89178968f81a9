//! No plaintext left in the relay's memory. Against the binary:
//! a submission with a file, a refused submission with a file, a log-in, a
//! mistyped log-in and a follow-up, each carrying its own canary (Kazakh
//! file names among them), from a client with a canary user agent. Once
//! the connections are closed and a few seconds have passed, the relay's
//! whole readable memory (`/proc/PID/mem`, as root on the host would read
//! it) holds none of the canaries.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::util;

use std::time::Duration;

use reqwest::blocking::multipart::{Form, Part};
use testkit::{codename_of, log_in};
use util::{Served, client_builder, demo_data, find_in_memory};

/// Percent-encoded, as reqwest (and some browsers) send a non-ASCII file
/// name in `filename*=`.
fn percent(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn the_relays_memory_holds_no_plaintext_a_few_seconds_after_requests() {
    let r: u32 = rand::random::<u32>() | 1 << 31;
    let text = format!("mem-canary-text-{r}");
    let file_name = format!("айғақ-{r}.pdf");
    let file_body = format!("mem-canary-file-{r}");
    let refused_text = format!("mem-canary-refused-{r}");
    let refused_name = format!("куәлік-{r}.jpg");
    let refused_body = format!("mem-canary-refused-file-{r}");
    let followup_text = format!("mem-canary-followup-{r}");
    let typo = format!("memtypo{r}");
    let agent = format!("MemCanaryAgent/{r}");

    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| t);
    let served = Served::start(&data);
    let url = served.url();
    let codename;
    {
        let http = client_builder(&data)
            .user_agent(agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let file = |name: &str, body: &str| {
            // Padded so that the body spans more than one read.
            let mut bytes = body.as_bytes().to_vec();
            bytes.extend(std::iter::repeat_n(b'.', 100_000));
            Part::bytes(bytes)
                .file_name(name.to_owned())
                .mime_str("application/pdf")
                .unwrap()
        };
        // 1. Stored, with a codename.
        let form = Form::new()
            .text("category", "other")
            .text("text", text.clone())
            .text("followup", "yes")
            .part("files", file(&file_name, &file_body));
        let res = http
            .post(format!("{url}/kk/submit"))
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        codename = codename_of(&res.text().unwrap());
        // 2. Refused (no category): the form comes back with the text.
        let form = Form::new()
            .text("text", refused_text.clone())
            .part("files", file(&refused_name, &refused_body));
        let res = http
            .post(format!("{url}/kk/submit"))
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(res.status(), 400);
        assert!(res.text().unwrap().contains(&refused_text));
        // 3. A mistyped log-in (given back in the box), then the log-in.
        let mut words: Vec<&str> = codename.split(' ').collect();
        words[2] = &typo;
        let mistyped = log_in(&http, &url, &words.join(" "));
        assert_eq!(mistyped.status, 400);
        assert!(mistyped.page.contains(&typo));
        let login = log_in(&http, &url, &codename);
        assert_eq!(login.status, 303);
        let cookie = login.cookie.unwrap();
        // 4. A follow-up in the thread.
        let form = Form::new().text("text", followup_text.clone());
        let res = http
            .post(format!("{url}/followup/en/submit"))
            .header("cookie", &cookie)
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(res.status(), 303);
        let page = http
            .get(format!("{url}/followup/en/"))
            .header("cookie", &cookie)
            .send()
            .unwrap();
        assert_eq!(page.status(), 200);
        // The client goes: its connections close.
    }
    std::thread::sleep(Duration::from_secs(3));

    let canaries: Vec<(&str, Vec<u8>)> = vec![
        ("submission text", text.clone().into_bytes()),
        ("file name", file_name.clone().into_bytes()),
        (
            "file name, percent-encoded",
            percent(&file_name).into_bytes(),
        ),
        ("file content", file_body.clone().into_bytes()),
        ("refused text", refused_text.clone().into_bytes()),
        ("refused file name", refused_name.clone().into_bytes()),
        (
            "refused file name, percent-encoded",
            percent(&refused_name).into_bytes(),
        ),
        ("refused file content", refused_body.clone().into_bytes()),
        ("codename", codename.clone().into_bytes()),
        (
            "codename, form-encoded",
            codename.replace(' ', "+").into_bytes(),
        ),
        ("mistyped codename word", typo.clone().into_bytes()),
        ("follow-up text", followup_text.clone().into_bytes()),
        ("user agent", agent.clone().into_bytes()),
    ];
    let needles: Vec<Vec<u8>> = canaries.iter().map(|(_, n)| n.clone()).collect();
    let found = find_in_memory(served.child.id(), &needles);
    let report: Vec<String> = found
        .iter()
        .map(|(i, region, at)| {
            format!(
                "{} at {:#x} in {:x}-{:x} {} {}",
                canaries[*i].0,
                region.start + at,
                region.start,
                region.end,
                region.perms,
                if region.path.is_empty() {
                    "[anon]"
                } else {
                    &region.path
                }
            )
        })
        .collect();
    eprintln!(
        "memory scan: {} hit(s)\n{}",
        report.len(),
        report.join("\n")
    );
    // The scan can find what it looks for: the relay's own name is there.
    assert!(
        !find_in_memory(served.child.id(), &[b"relay listening (HTTPS)".to_vec()]).is_empty(),
        "the scan reads the relay's memory"
    );
    assert!(
        report.is_empty(),
        "plaintext left in the relay's memory:\n{}",
        report.join("\n")
    );
}
