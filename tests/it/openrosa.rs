//! Field apps (ODK Collect, Tella, Enketo) through the OpenRosa endpoint,
//! over TLS to an in-process relay, then the reviewer: Collect's request
//! sequence (form list, form, HEAD, POST, chunked, split), the answers it
//! gets, the hostile XML suite, and what is kept (nothing identifying).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;

use e2e::{TestRelay, files_containing, run};
use md5::Digest as _;
use testkit::ReviewerCmd;

/// What Collect 2024 sends as its User-Agent: a phone model and Android.
const USER_AGENT: &str = "org.odk.collect.android/v2024.3.1 Dalvik/2.1.0 (Linux; U; Android 13; SM-A525F-CANARY Build/TP1A.220624.014)";
const BOUNDARY: &str = "----openrosa-test-boundary";

struct Answer {
    status: u16,
    version_header: Option<String>,
    body: String,
}

fn client(relay: &TestRelay) -> reqwest::blocking::Client {
    let pem = std::fs::read(relay.cert()).unwrap();
    let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap();
    reqwest::blocking::Client::builder()
        .tls_certs_only(certs)
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn answer(res: reqwest::blocking::Response) -> Answer {
    Answer {
        status: res.status().as_u16(),
        version_header: res
            .headers()
            .get("x-openrosa-version")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: res.text().unwrap(),
    }
}

/// A multipart body: (part name, file name, content type, bytes).
fn multipart(parts: &[(&str, Option<&str>, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, ctype, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match file {
            Some(f) => {
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n")
            }
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(format!("Content-Type: {ctype}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// POSTs a body to /openrosa/submission, chunked when `chunked`.
fn post(relay: &TestRelay, body: Vec<u8>, chunked: bool) -> Answer {
    try_post(relay, body, chunked).unwrap()
}

/// [`post`], or the error when the relay closed the connection before the
/// client had sent everything (an answer to a body it refuses early).
fn try_post(relay: &TestRelay, body: Vec<u8>, chunked: bool) -> Result<Answer, reqwest::Error> {
    let req = client(relay)
        .post(format!("{}/openrosa/submission", relay.url))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header("x-openrosa-version", "1.0");
    let req = if chunked {
        req.body(reqwest::blocking::Body::new(std::io::Cursor::new(body)))
    } else {
        req.body(body)
    };
    req.send().map(answer)
}

fn instance(version: &str, id: &str, text: &str, extra: &str) -> String {
    format!(
        "<?xml version='1.0' ?><data xmlns:jr=\"http://openrosa.org/javarosa\" xmlns:orx=\"http://openrosa.org/xforms\" id=\"relay-testimony\" version=\"{version}\">\
         <category>prisoners</category><region/><events_month>10</events_month><events_year>2026</events_year>\
         <text>{text}</text><photo_1>photo.jpg</photo_1><photo_2/><photo_3/><video>clip.mp4</video><audio/><document/>\
         <language>kk</language>{extra}<meta><instanceID>{id}</instanceID><deviceID>collect:DEVICE-CANARY</deviceID></meta></data>"
    )
}

fn opened_testimonies(relay: &TestRelay, batch: &std::path::Path) -> Vec<format::Testimony> {
    let out = relay.root.path().join("cases");
    run(&relay.open_cmd(&[batch]).out(&out)).unwrap();
    let mut found = Vec::new();
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path().join("testimony.json");
        if p.is_file() {
            found.push(format::Testimony::from_json(&std::fs::read(p).unwrap()).unwrap());
        }
    }
    found
}

#[test]
fn collects_request_sequence_is_sealed_like_the_form_and_keeps_nothing_identifying() {
    let relay = TestRelay::start();
    let http = client(&relay);

    // 1. The form list (Collect sends deviceID), then the form.
    let list = answer(
        http.get(format!(
            "{}/openrosa/formList?deviceID=collect%3ADEVICE-CANARY",
            relay.url
        ))
        .send()
        .unwrap(),
    );
    assert_eq!(list.status, 200);
    assert_eq!(list.version_header.as_deref(), Some("1.0"));
    let doc = roxmltree::Document::parse(&list.body).unwrap();
    let field = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        doc.root_element().tag_name().namespace(),
        Some("http://openrosa.org/xforms/xformsList")
    );
    assert_eq!(field("formID"), "relay-testimony");
    let version = field("version");
    let url = field("downloadUrl");
    assert!(url.starts_with(&relay.url), "{url}");
    let form = http.get(&url).send().unwrap();
    assert_eq!(form.headers()["x-openrosa-version"], "1.0");
    let xform = form.bytes().unwrap();
    assert_eq!(
        field("hash"),
        format!("md5:{}", hex::encode(md5::Md5::digest(&xform)))
    );

    // 2. HEAD: 204, with the largest body taken.
    let head = http
        .head(format!("{}/openrosa/submission", relay.url))
        .send()
        .unwrap();
    assert_eq!(head.status(), 204);
    assert_eq!(head.headers()["x-openrosa-version"], "1.0");
    let accept: u64 = head.headers()["x-openrosa-accept-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(accept >= 1024 * 1024);

    // 3. The POST, chunked: the instance, its two files, and a part it
    //    does not name.
    let photo = b"\xff\xd8\xff\xe0 a photo, PHOTO-CANARY".to_vec();
    let clip = b"a short clip".to_vec();
    let xml = instance(&version, "uuid:one", "Мені түнде алып кетті", "");
    let body = multipart(&[
        (
            "xml_submission_file",
            Some("submission.xml"),
            "text/xml",
            xml.as_bytes(),
        ),
        ("photo.jpg", Some("photo.jpg"), "image/jpeg", &photo),
        ("clip.mp4", Some("clip.mp4"), "video/mp4", &clip),
        (
            "stray.bin",
            Some("stray.bin"),
            "application/octet-stream",
            b"STRAY-CANARY",
        ),
    ]);
    let stored = post(&relay, body.clone(), true);
    // A captive portal answers 200: success is 201, and only 201.
    assert_eq!(stored.status, 201, "{}", stored.body);
    assert_eq!(stored.version_header.as_deref(), Some("1.0"));
    assert!(
        stored.body.contains("nature=\"submit_success\""),
        "{}",
        stored.body
    );
    assert!(
        stored.body.contains("Алынды"),
        "in the instance's language: {}",
        stored.body
    );
    assert_eq!(relay.stats().submissions, 1);

    // 4. The same last POST again (the app never saw the 201): said, not
    //    stored twice. The same instanceID with other answers: 409.
    let again = post(&relay, body, false);
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(relay.stats().submissions, 1);
    let other = instance(&version, "uuid:one", "other words", "");
    let conflict = post(
        &relay,
        multipart(&[(
            "xml_submission_file",
            Some("submission.xml"),
            "text/xml",
            other.as_bytes(),
        )]),
        false,
    );
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    assert_eq!(relay.stats().submissions, 1);

    // 5. A split submission: two POSTs of one instance, each part sealed.
    let split = instance(&version, "uuid:two", "split in two", "");
    let first = post(
        &relay,
        multipart(&[
            (
                "xml_submission_file",
                Some("submission.xml"),
                "text/xml",
                split.as_bytes(),
            ),
            ("photo.jpg", Some("photo.jpg"), "image/jpeg", &photo),
            ("*isIncomplete*", None, "text/plain", b"yes"),
        ]),
        false,
    );
    assert_eq!(first.status, 201, "{}", first.body);
    let last = post(
        &relay,
        multipart(&[
            (
                "xml_submission_file",
                Some("submission.xml"),
                "text/xml",
                split.as_bytes(),
            ),
            ("clip.mp4", Some("clip.mp4"), "video/mp4", &clip),
        ]),
        false,
    );
    assert_eq!(last.status, 201, "{}", last.body);
    assert_eq!(relay.stats().submissions, 3);

    // 6. Seized now: no plaintext, no device detail, in the data directory.
    for needle in [
        &b"SM-A525F-CANARY"[..],
        b"DEVICE-CANARY",
        b"PHOTO-CANARY",
        "Мені түнде".as_bytes(),
        b"uuid:one",
    ] {
        let hits = files_containing(&relay.data, needle);
        assert!(
            hits.is_empty(),
            "{} found in {hits:?}",
            String::from_utf8_lossy(needle)
        );
    }

    // 7. The reviewer opens them as the form's: same keys, files, and the
    //    instance (without the device field) as one more file.
    let batch = relay.next_batch().unwrap();
    let raw = std::fs::read(&batch).unwrap();
    assert!(
        !testkit::contains(&raw, b"uuid:one"),
        "the instance id is sealed, not in the manifest"
    );
    let ts = opened_testimonies(&relay, &batch);
    assert_eq!(ts.len(), 3);
    let one = ts
        .iter()
        .find(|t| t.text == "Мені түнде алып кетті")
        .unwrap();
    assert_eq!(one.fields["category"], "prisoners");
    assert_eq!(one.fields["events_month"], "2026-10");
    assert_eq!(one.fields["channel"], "openrosa");
    assert_eq!(
        one.fields["openrosa_dropped"], "2",
        "deviceID and the stray part"
    );
    assert_eq!(one.language, "kk");
    let names: Vec<&str> = one.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["openrosa-instance.xml", "photo.jpg", "clip.mp4"]);
    let parts: Vec<&format::Testimony> = ts.iter().filter(|t| t.text == "split in two").collect();
    assert_eq!(parts.len(), 2);
    assert!(
        parts
            .iter()
            .any(|t| t.fields["openrosa_part"] == "incomplete")
    );
    assert!(parts.iter().any(|t| t.fields["openrosa_part"] == "last"));
    let out = relay.root.path().join("cases");
    let mut everything = Vec::new();
    for f in testkit::files(&out) {
        std::fs::File::open(&f)
            .unwrap()
            .read_to_end(&mut everything)
            .unwrap();
    }
    for needle in [&b"SM-A525F-CANARY"[..], b"DEVICE-CANARY", b"STRAY-CANARY"] {
        assert!(
            !testkit::contains(&everything, needle),
            "{} kept",
            String::from_utf8_lossy(needle)
        );
    }
    // `list` shows them like any submission.
    let o = ReviewerCmd::new(["list".as_ref(), out.as_os_str()]).output();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches("prisoners")
            .count(),
        3
    );
}

#[test]
fn hostile_openrosa_posts_get_400_413_and_store_nothing() {
    let relay = TestRelay::start();
    let http = client(&relay);
    let list = http
        .get(format!("{}/openrosa/formList", relay.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let doc = roxmltree::Document::parse(&list).unwrap();
    let version = doc
        .descendants()
        .find(|n| n.has_tag_name("version"))
        .and_then(|n| n.text())
        .unwrap()
        .to_owned();
    let xml_part = |xml: &str| -> Vec<u8> {
        multipart(&[(
            "xml_submission_file",
            Some("submission.xml"),
            "text/xml",
            xml.as_bytes(),
        )])
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "XXE",
            xml_part(&format!(
                "<?xml version=\"1.0\"?><!DOCTYPE data [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><data id=\"relay-testimony\" version=\"{version}\"><category>other</category><text>&x;</text></data>"
            )),
            400,
            "DTD",
        ),
        (
            "billion laughs",
            xml_part(&format!(
                "<?xml version=\"1.0\"?><!DOCTYPE data [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><data id=\"relay-testimony\" version=\"{version}\"><text>&b;</text></data>"
            )),
            400,
            "DTD",
        ),
        (
            "a 100 MB instance",
            xml_part(&format!(
                "<data id=\"relay-testimony\" version=\"{version}\"><text>{}</text></data>",
                "a".repeat(100 * 1024 * 1024)
            )),
            400,
            "too large",
        ),
        (
            "the wrong root",
            xml_part(&format!(
                "<survey id=\"relay-testimony\" version=\"{version}\"/>"
            )),
            400,
            "not for the form",
        ),
        (
            "a wrong form version",
            xml_part(&instance("1-00000000", "uuid:v", "x", "")),
            400,
            "download the form again",
        ),
        (
            "no XML part",
            multipart(&[("photo.jpg", Some("photo.jpg"), "image/jpeg", b"x")]),
            400,
            "xml_submission_file",
        ),
        (
            "5,000 parts",
            {
                let xml = instance(&version, "uuid:parts", "x", "");
                let mut parts: Vec<(&str, Option<&str>, &str, &[u8])> = vec![(
                    "xml_submission_file",
                    Some("s.xml"),
                    "text/xml",
                    xml.as_bytes(),
                )];
                for _ in 0..5_000 {
                    parts.push(("p", Some("p.bin"), "application/octet-stream", b"x"));
                }
                multipart(&parts)
            },
            413,
            "larger than",
        ),
    ];
    for (what, body, status, says) in cases {
        let a = match try_post(&relay, body, false) {
            Ok(a) => a,
            // 100 MB: the relay may answer after the first MiB and close
            // before the client has written the rest. Refused either way.
            Err(e) if what == "a 100 MB instance" && e.is_request() => {
                eprintln!("{what}: the relay closed the connection early ({e})");
                continue;
            }
            Err(e) => panic!("{what}: {e}"),
        };
        assert_eq!(a.status, status, "{what}: {}", a.body);
        assert_eq!(a.version_header.as_deref(), Some("1.0"), "{what}");
        assert!(a.body.contains("<OpenRosaResponse"), "{what}: {}", a.body);
        assert!(a.body.contains(says), "{what}: {}", a.body);
    }
    assert_eq!(relay.stats().submissions, 0);
    assert!(files_containing(&relay.data, b"/etc/passwd").is_empty());
}

/// The served XForm through ODK Validate, the JavaRosa form engine of ODK
/// Collect, as pyxform ships it (scripts/test installs pyxform and Java):
/// the default questionnaire, and one with every kind of extra question and
/// a free-text region.
#[test]
fn the_xform_passes_odk_validate() {
    let extra = "\n[form]\ndefault_language = \"kk\"\n\
        [[form.category]]\nkey = \"health\"\nen = \"Health\"\nru = \"Здоровье\"\nkk = \"Денсаулық\"\n\
        [[form.question]]\nkey = \"court\"\nkind = \"text\"\nrequired = true\nlabel = { en = \"Which court? <&>\", ru = \"Какой суд?\" }\n\
        [[form.question]]\nkey = \"detained\"\nkind = \"choice\"\nlabel = { en = \"Detained?\" }\n\
        [[form.question.option]]\nkey = \"yes\"\nen = \"Yes\"\n\
        [[form.question.option]]\nkey = \"no\"\nen = \"No\"\n\
        [[form.question]]\nkey = \"arrest\"\nkind = \"month\"\nrequired = true\nlabel = { en = \"When arrested?\" }\n";
    // An ODK encrypted form too (a public key only: nothing is decrypted).
    let encrypted = "\n[openrosa]\nodk_public_key = \"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4tApVEyfmLNr/0XZorQ4rJv70gwsJ8NPjjfUfMzphx+z+cJ+POcCZmgLGy9tha7B+796fwnYN7fTR6RoHYLm58T5ijrOVxYVhkO4+9pAO7+ROw9iw9gefURKipRoeEu56meNOpRDByAATp3ZpFPt5sbRBdvwRvruE3BZsalP5/8COaCYgV271Q/oQiAf9LYwl+fPb2oySmmHCJ98vBstsErvm++yv/NpwI6V/+rxFtRJAqnV1NqiKOG+l/U8sOvQOiwzfjE9AwjwZx76/EQ7lRc2eg5YEum288+6aCmF6U/hlYt5Wm2ElxnB5DayoXO8e8xOaYpkBmDCgOT+8/g/IwIDAQAB\"\n";
    for relay in [
        TestRelay::start(),
        TestRelay::start_with(|t| format!("{t}{extra}")),
        TestRelay::start_with(|t| format!("{t}{encrypted}")),
    ] {
        let xform = client(&relay)
            .get(format!("{}/openrosa/forms/relay-testimony.xml", relay.url))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let path = relay.root.path().join("relay-testimony.xml");
        std::fs::write(&path, &xform).unwrap();
        let o = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys\n\
                 from pyxform.validators.odk_validate import check_xform\n\
                 warnings = check_xform(sys.argv[1])\n\
                 print('\\n'.join(warnings))\n\
                 sys.exit(1 if warnings else 0)\n",
            ])
            .arg(&path)
            .output()
            .expect("python3 (scripts/test installs pyxform and Java)");
        assert!(
            o.status.success(),
            "ODK Validate refused the XForm (scripts/test installs pyxform and Java):\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// A real ODK form engine fills the served XForm in headless Chromium with
/// JavaScript on (`tests/browser/odk-engine.mjs`: @getodk/xforms-engine,
/// the engine of ODK Web Forms); its own submission payload is posted to
/// the relay, and the reviewer opens it as any submission.
#[test]
fn a_real_odk_form_engine_fills_the_form_and_the_reviewer_reads_it() {
    let relay = TestRelay::start();
    let browser = e2e::workspace_root().join("tests/browser");
    assert!(
        browser.join("node_modules/@getodk/xforms-engine").is_dir(),
        "tests/browser/node_modules is missing: run scripts/test, which installs them"
    );
    let xform = client(&relay)
        .get(format!("{}/openrosa/forms/relay-testimony.xml", relay.url))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let dir = relay.root.path().join("engine");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("relay-testimony.xml"), &xform).unwrap();
    let photo = b"\xff\xd8\xff\xe0 ENGINE-PHOTO".to_vec();
    std::fs::write(dir.join("photo.jpg"), &photo).unwrap();
    let o = std::process::Command::new("node")
        .arg(browser.join("odk-engine.mjs"))
        .arg("--xform")
        .arg(dir.join("relay-testimony.xml"))
        .args(["--lang", "kk"])
        .args(["--answer", "category=prisoners"])
        .args(["--answer", "events_month=10"])
        .args(["--answer", "events_year=2025"])
        .args(["--answer", "text=Ағамды түнде алып кетті; сот жабық өтті."])
        .arg("--file")
        .arg(format!("photo_1={}", dir.join("photo.jpg").display()))
        .output()
        .expect("run node (Node.js 20 or newer)");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "the engine failed:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let payload: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(payload["status"], "ready", "{payload}");
    assert_eq!(
        payload["requests"].as_array().unwrap().len(),
        1,
        "the page went out: {payload}"
    );
    eprintln!(
        "ODK engine: @getodk/xforms-engine {} in Chromium {}",
        payload["engine"], payload["chromium"]
    );

    // The engine's parts, posted as it would post them.
    let mut parts: Vec<(String, Option<String>, String, Vec<u8>)> = Vec::new();
    for p in payload["parts"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_owned();
        match p.get("b64") {
            Some(b64) => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_str().unwrap())
                    .unwrap();
                let ctype = p["type"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                    .unwrap_or("application/octet-stream");
                parts.push((
                    name,
                    p["fileName"].as_str().map(str::to_owned),
                    ctype.to_owned(),
                    bytes,
                ));
            }
            None => parts.push((
                name,
                None,
                "text/plain".into(),
                p["text"].as_str().unwrap().as_bytes().to_vec(),
            )),
        }
    }
    assert_eq!(parts[0].0, "xml_submission_file", "the instance first");
    let borrowed: Vec<(&str, Option<&str>, &str, &[u8])> = parts
        .iter()
        .map(|(n, f, t, b)| (n.as_str(), f.as_deref(), t.as_str(), b.as_slice()))
        .collect();
    let stored = post(&relay, multipart(&borrowed), false);
    assert_eq!(stored.status, 201, "{}", stored.body);

    let batch = relay.next_batch().unwrap();
    let ts = opened_testimonies(&relay, &batch);
    assert_eq!(ts.len(), 1);
    let t = &ts[0];
    assert_eq!(t.text, "Ағамды түнде алып кетті; сот жабық өтті.");
    assert_eq!(t.fields["category"], "prisoners");
    assert_eq!(t.fields["events_month"], "2025-10");
    assert_eq!(t.fields["channel"], "openrosa");
    assert!(
        !t.fields.contains_key("openrosa_dropped"),
        "the engine sent only what the form asks"
    );
    let names: Vec<&str> = t.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["openrosa-instance.xml", "photo.jpg"]);
    // `show` labels the answers like the web form's.
    let out = relay.root.path().join("cases");
    let id = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.len() == 32)
        .unwrap();
    let o = ReviewerCmd::new(["show".as_ref(), out.as_os_str(), id.as_ref()]).output();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{shown}");
    assert!(
        shown.contains("(prisoners)  [category]") && shown.contains("Sent through"),
        "{shown}"
    );
    // And the report's page of it.
    let site = relay.root.path().join("site");
    let o = ReviewerCmd::new([
        "report".as_ref(),
        out.as_os_str(),
        "--out".as_ref(),
        site.as_os_str(),
    ])
    .output();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page =
        std::fs::read_to_string(site.join("submissions").join(format!("{id}.html"))).unwrap();
    assert!(
        page.contains("Political prisoners") && page.contains("Ағамды түнде алып кетті"),
        "{page}"
    );
}

/// The same quota as `/submit`: a relay that is full answers 503 with
/// Retry-After and an OpenRosaResponse, and stores nothing.
#[test]
fn a_full_relay_answers_503_with_retry_after() {
    let relay = TestRelay::start_with(|t| format!("{t}\n[limits]\nmax_store_bytes = 1048576\n"));
    let http = client(&relay);
    let list = http
        .get(format!("{}/openrosa/formList", relay.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let version = list
        .split("<version>")
        .nth(1)
        .and_then(|v| v.split("</version>").next())
        .unwrap()
        .to_owned();
    let xml = instance(&version, "uuid:full", "too much", "");
    let big = vec![7u8; 2 * 1024 * 1024];
    let res = http
        .post(format!("{}/openrosa/submission", relay.url))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(&[
            (
                "xml_submission_file",
                Some("submission.xml"),
                "text/xml",
                xml.as_bytes(),
            ),
            ("photo.jpg", Some("photo.jpg"), "image/jpeg", &big),
        ]))
        .send()
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-openrosa-version"], "1.0");
    assert_eq!(res.headers()["retry-after"], "120");
    assert!(res.text().unwrap().contains("<OpenRosaResponse"));
    assert_eq!(relay.stats().submissions, 0);
}

/// ODK encrypted forms: with `[openrosa] odk_public_key`, the XForm asks
/// the app to encrypt on the phone; a submission encrypted by an
/// independent implementation of ODK's scheme (tests/odk/encrypt.py, Python
/// `cryptography`) is sealed as it is, and `reviewer open --odk-key`
/// decrypts it to the exact instance and files.
#[test]
fn an_odk_encrypted_submission_is_decrypted_by_the_reviewer_with_the_odk_key() {
    let work = tempfile::tempdir().unwrap();
    let keys = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, base64\n\
             from cryptography.hazmat.primitives.asymmetric import rsa\n\
             from cryptography.hazmat.primitives import serialization as s\n\
             for name in ('odk', 'other'):\n\
             \x20   k = rsa.generate_private_key(public_exponent=65537, key_size=2048)\n\
             \x20   open(sys.argv[1] + '/' + name + '.pem', 'wb').write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))\n\
             \x20   open(sys.argv[1] + '/' + name + '.pub', 'w').write(base64.b64encode(k.public_key().public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo)).decode())\n",
        ])
        .arg(work.path())
        .status()
        .expect("python3 with cryptography (scripts/test installs it)");
    assert!(keys.success());
    let public = std::fs::read_to_string(work.path().join("odk.pub")).unwrap();
    let relay =
        TestRelay::start_with(|t| format!("{t}\n[openrosa]\nodk_public_key = \"{public}\"\n"));
    let http = client(&relay);
    let xform = http
        .get(format!("{}/openrosa/forms/relay-testimony.xml", relay.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        xform.contains(&format!("base64RsaPublicKey=\"{public}\"")),
        "{xform}"
    );
    let list = http
        .get(format!("{}/openrosa/formList", relay.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let version = list
        .split("<version>")
        .nth(1)
        .and_then(|v| v.split("</version>").next())
        .unwrap()
        .to_owned();

    // The phone's side, by the independent encryptor.
    let plain = instance(&version, "uuid:enc-1", "Бізді ұрды. ENCRYPTED-CANARY", "");
    std::fs::write(work.path().join("instance.xml"), &plain).unwrap();
    let photo = b"\xff\xd8\xff\xe0 PHOTO-ENC-CANARY".repeat(100);
    std::fs::write(work.path().join("photo.jpg"), &photo).unwrap();
    let enc = work.path().join("enc");
    let script = e2e::workspace_root().join("tests/odk/encrypt.py");
    let ok = std::process::Command::new("python3")
        .arg(&script)
        .args([public.as_str(), "relay-testimony", &version, "uuid:enc-1"])
        .arg(work.path().join("instance.xml"))
        .arg(&enc)
        .arg(work.path().join("photo.jpg"))
        .status()
        .unwrap();
    assert!(ok.success());
    let read = |n: &str| std::fs::read(enc.join(n)).unwrap();
    let manifest = read("submission.xml");
    let stored = post(
        &relay,
        multipart(&[
            (
                "xml_submission_file",
                Some("submission.xml"),
                "text/xml",
                &manifest,
            ),
            (
                "photo.jpg.enc",
                Some("photo.jpg.enc"),
                "application/octet-stream",
                &read("photo.jpg.enc"),
            ),
            (
                "submission.xml.enc",
                Some("submission.xml.enc"),
                "application/octet-stream",
                &read("submission.xml.enc"),
            ),
        ]),
        false,
    );
    assert_eq!(stored.status, 201, "{}", stored.body);
    assert!(files_containing(&relay.data, b"ENCRYPTED-CANARY").is_empty());

    // Without the key: opened, and told there is something to decrypt.
    let batch = relay.next_batch().unwrap();
    let out = relay.root.path().join("cases");
    let open =
        |extra: &[&std::ffi::OsStr]| relay.open_cmd(&[&batch]).out(&out).args(extra).output();
    let o = open(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("open again with --odk-key FILE"));
    // The wrong key: refused, one line, nothing left half-written.
    let o = open(&[
        "--odk-key".as_ref(),
        work.path().join("other.pem").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("could not be decrypted") && err.contains("--odk-key is the private half"),
        "{err}"
    );
    // The right key.
    let o = open(&[
        "--odk-key".as_ref(),
        work.path().join("odk.pem").as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ODK-encrypted form decrypted into"));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("signature does not match"));
    let odk = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("odk").is_dir())
        .unwrap()
        .join("odk");
    assert_eq!(
        std::fs::read(odk.join("submission.xml")).unwrap(),
        plain.as_bytes()
    );
    assert_eq!(std::fs::read(odk.join("photo.jpg")).unwrap(), photo);
}

/// `[openrosa] path_token`: the endpoints answer only under
/// `/openrosa/k/<token>/` (the URL given to trusted monitors), and the
/// form list points there; elsewhere, or with another token, 404.
#[test]
fn a_path_token_keeps_the_endpoints_to_those_given_the_url() {
    let token = "s3cret-Path-Token_0123456789";
    let relay = TestRelay::start_with(|t| format!("{t}\n[openrosa]\npath_token = \"{token}\"\n"));
    let http = client(&relay);
    let get = |path: &str| answer(http.get(format!("{}{path}", relay.url)).send().unwrap());
    for path in [
        "/openrosa/formList".to_owned(),
        "/openrosa/forms/relay-testimony.xml".to_owned(),
        "/openrosa/k/s3cret-Path-Token_0123456780/formList".to_owned(),
    ] {
        let a = get(&path);
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.version_header.as_deref(), Some("1.0"), "{path}");
    }
    let head = http
        .head(format!("{}/openrosa/submission", relay.url))
        .send()
        .unwrap();
    assert_eq!(head.status(), 404);
    let list = get(&format!("/openrosa/k/{token}/formList"));
    assert_eq!(list.status, 200);
    let url = list
        .body
        .split("<downloadUrl>")
        .nth(1)
        .and_then(|v| v.split("</downloadUrl>").next())
        .unwrap()
        .to_owned();
    assert_eq!(
        url,
        format!("{}/openrosa/k/{token}/forms/relay-testimony.xml", relay.url)
    );
    assert_eq!(answer(http.get(&url).send().unwrap()).status, 200);
    let version = list
        .body
        .split("<version>")
        .nth(1)
        .and_then(|v| v.split("</version>").next())
        .unwrap()
        .to_owned();
    let xml = instance(&version, "uuid:token", "through the token", "");
    let body = multipart(&[(
        "xml_submission_file",
        Some("submission.xml"),
        "text/xml",
        xml.as_bytes(),
    )]);
    let refused = answer(
        http.post(format!("{}/openrosa/submission", relay.url))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body.clone())
            .send()
            .unwrap(),
    );
    assert_eq!(refused.status, 404);
    let stored = answer(
        http.post(format!("{}/openrosa/k/{token}/submission", relay.url))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .unwrap(),
    );
    assert_eq!(stored.status, 201, "{}", stored.body);
    assert_eq!(relay.stats().submissions, 1);
    assert!(
        files_containing(&relay.data, token.as_bytes())
            .iter()
            .all(|p| p.ends_with("relay.toml"))
    );
}
