//! `reviewer report`: the static HTML site, checked page by page.
//!
//! Every page is read with a strict HTML parser (`testkit::html`: every
//! element closed explicitly, attributes double-quoted, `&` only in valid
//! character references, no raw `<`/`>` or control characters in text, and
//! only the nestings an HTML5 parser keeps as written), so the tree the
//! checks look at is the tree a browser builds. Then: no script, no event handler
//! attribute, no external or scheme URL, every link resolves to a file in
//! the report; hostile strings appear only as text; the charts' numbers
//! match counts computed here from the test's own fixture.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use format::{BatchId, Day, Digest, FieldLabel, SubmissionId, ThreadId};
use reviewer::Error;
use reviewer::report::{ReportOptions, ReportSummary, write_report};
use reviewer::workbench::{
    AttachmentRecord, FileKind, Finding, MetadataReport, Origin, Record, ScrubOutcome, Status,
};
use testkit::html::{self, Element};

// ---------------------------------------------------------------------------
// A strict HTML reader (testkit::html): what it refuses.

#[test]
fn the_reader_is_strict() {
    let ok = "<!DOCTYPE html><html><head><title>t</title></head><body><p>a &amp; b &#60;</p><svg><rect x=\"1\"/></svg></body></html>";
    let doc = html::parse(ok).unwrap();
    assert_eq!(doc.elements("p")[0].text(), "a & b <");
    for bad in [
        "<html><head></head><body></body></html>",
        "<!DOCTYPE html><html><head></head><body><p>a & b</p></body></html>",
        "<!DOCTYPE html><html><head></head><body><p>a < b</p></body></html>",
        "<!DOCTYPE html><html><head></head><body><p><div>x</div></p></body></html>",
        "<!DOCTYPE html><html><head></head><body><p>x</body></html>",
        "<!DOCTYPE html><html><head></head><body><img src=x></body></html>",
        "<!DOCTYPE html><html><head></head><body><img src=\"a\" src=\"b\"></body></html>",
        "<!DOCTYPE html><html><head></head><body><table><tr><td>x</td></tr></table></body></html>",
        "<!DOCTYPE html><html><head></head><body><script>x</script></body></html>",
        "<!DOCTYPE html><html><head></head><body><span/></body></html>",
        "<!DOCTYPE html><html><head></head><body>\u{1b}</body></html>",
        "<!DOCTYPE html><html><head></head><body><a href=\"x\"><a href=\"y\">z</a></a></body></html>",
    ] {
        assert!(html::parse(bad).is_err(), "accepted: {bad}");
    }
}

// ---------------------------------------------------------------------------
// The fixture: an archive with hostile content.

const SCRIPT: &str = "<script>alert(1)</script>";
const BREAKOUT: &str = "\"><img src=x onerror=alert(1)>";
const JS_URL: &str = "javascript:alert(1)";

/// What a test knows about one record, independently of the report.
struct Spec {
    n: u8,
    day: &'static str,
    /// Its ISO week, worked out by hand.
    week: &'static str,
    /// `(raw answer, English label)`.
    category: Option<(&'static str, Option<&'static str>)>,
    region: Option<(&'static str, Option<&'static str>)>,
    status: Status,
    thread: Option<u8>,
    tags: &'static [&'static str],
    text: &'static str,
    files: Vec<FileSpec>,
}

struct FileSpec {
    name: &'static str,
    kind: FileKind,
    content: &'static [u8],
    scrubbed: Option<&'static [u8]>,
    findings: Vec<Finding>,
    scrub: ScrubOutcome,
}

const TEXT_1: &str = "First line.\n<script>alert(1)</script>\r\nThird line &amp; <b>not bold</b> \u{202e}gpj.exe \u{1b}[31m\"><img src=x onerror=alert(1)>";

fn specs() -> Vec<Spec> {
    vec![
        Spec {
            n: 1,
            day: "2024-12-23",
            week: "2024-W52",
            category: Some(("health", Some("Medical workers"))),
            region: Some(("almaty", Some("Almaty"))),
            status: Status::New,
            thread: Some(1),
            tags: &["urgent", "<i>x</i>"],
            text: TEXT_1,
            files: vec![
                FileSpec {
                    name: "photo.jpg",
                    kind: FileKind::Jpeg,
                    content: b"\xff\xd8\xff\xe1 original with GPS",
                    scrubbed: Some(b"\xff\xd8\xff\xe0 scrubbed"),
                    findings: vec![Finding::Gps {
                        latitude: Some(43.238949),
                        longitude: Some(76.889709),
                    }],
                    scrub: ScrubOutcome::Scrubbed,
                },
                FileSpec {
                    name: "\"><img src=x onerror=alert(1)>.png",
                    kind: FileKind::Png,
                    content: b"\x89PNG original",
                    scrubbed: Some(b"\x89PNG scrubbed"),
                    findings: vec![],
                    scrub: ScrubOutcome::Scrubbed,
                },
                FileSpec {
                    name: "evil.html",
                    kind: FileKind::Other,
                    content: b"<script>alert(document.cookie)</script>",
                    scrubbed: None,
                    findings: vec![],
                    scrub: ScrubOutcome::Unsupported {
                        reason: format!("{SCRIPT} type not supported"),
                    },
                },
                FileSpec {
                    name: JS_URL,
                    kind: FileKind::Other,
                    content: b"plain",
                    scrubbed: None,
                    findings: vec![Finding::Other {
                        field: "comment".into(),
                        value: BREAKOUT.into(),
                    }],
                    scrub: ScrubOutcome::Failed {
                        reason: "damaged".into(),
                    },
                },
            ],
        },
        Spec {
            n: 2,
            day: "2024-12-30",
            week: "2025-W01",
            category: Some(("prosecution", Some("Prosecution of critics"))),
            region: Some((JS_URL, None)),
            status: Status::Reviewing,
            thread: Some(1),
            tags: &[],
            text: "Second.",
            files: vec![FileSpec {
                name: "a&b 'q'.pdf",
                kind: FileKind::Pdf,
                content: b"%PDF-1.7 author",
                scrubbed: Some(b"%PDF-1.7 clean"),
                findings: vec![Finding::Author {
                    value: SCRIPT.into(),
                }],
                scrub: ScrubOutcome::Scrubbed,
            }],
        },
        Spec {
            n: 3,
            day: "2025-01-05",
            week: "2025-W01",
            category: None,
            region: Some(("aktobe", Some("Aktobe"))),
            status: Status::Verified,
            thread: None,
            tags: &["aktobe"],
            text: "",
            // Metadata worth listing but no reason to stop: not flagged.
            files: vec![FileSpec {
                name: "edited.png",
                kind: FileKind::Png,
                content: b"\x89PNG original with XMP",
                scrubbed: Some(b"\x89PNG clean"),
                findings: vec![Finding::Other {
                    field: "software".into(),
                    value: "GIMP 2.10".into(),
                }],
                scrub: ScrubOutcome::Scrubbed,
            }],
        },
        Spec {
            n: 4,
            day: "2025-01-20",
            week: "2025-W04",
            category: Some(("health", Some("Medical workers"))),
            region: Some(("aktobe", Some("Aktobe"))),
            status: Status::Published,
            thread: Some(2),
            tags: &[],
            text: "Fourth.",
            files: vec![FileSpec {
                name: "broken.jpg",
                kind: FileKind::Jpeg,
                content: b"\xff\xd8 damaged",
                scrubbed: None,
                findings: vec![Finding::Device {
                    field: "serial".into(),
                    value: "SN123".into(),
                }],
                scrub: ScrubOutcome::Failed {
                    reason: "truncated".into(),
                },
            }],
        },
        Spec {
            n: 5,
            day: "2024-12-29",
            week: "2024-W52",
            category: Some(("other", Some(SCRIPT))),
            region: None,
            status: Status::New,
            thread: Some(2),
            tags: &[],
            text: "Fifth.",
            files: vec![],
        },
        Spec {
            n: 6,
            day: "2025-02-10",
            week: "2025-W07",
            category: Some(("spam", Some("Spam"))),
            region: Some(("almaty", Some("Almaty"))),
            status: Status::Discarded,
            thread: Some(1),
            tags: &[],
            text: "Discarded.",
            files: vec![FileSpec {
                name: "spam.jpg",
                kind: FileKind::Jpeg,
                content: b"\xff\xd8 spam",
                scrubbed: Some(b"\xff\xd8 spam clean"),
                findings: vec![],
                scrub: ScrubOutcome::Scrubbed,
            }],
        },
    ]
}

fn sub_id(n: u8) -> SubmissionId {
    let mut b = [0xa0u8; 16];
    b[15] = n;
    SubmissionId::from_bytes(b)
}

fn thread_id(n: u8) -> ThreadId {
    let mut b = [0x7eu8; 16];
    b[15] = n;
    ThreadId::from_bytes(b)
}

fn day(s: &str) -> Day {
    s.parse().unwrap()
}

/// Writes the attachments of `specs` under `root` and builds the records.
fn build(root: &Path, specs: &[Spec]) -> Vec<Record> {
    specs
        .iter()
        .map(|s| {
            let id = sub_id(s.n);
            let dir = PathBuf::from(id.to_string());
            fs::create_dir_all(root.join(&dir).join("files")).unwrap();
            fs::create_dir_all(root.join(&dir).join("shared")).unwrap();
            let attachments = s
                .files
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let original = dir.join("files").join(format!("a{i}"));
                    fs::write(root.join(&original), f.content).unwrap();
                    let scrubbed = f.scrubbed.map(|bytes| {
                        let p = dir.join("shared").join(format!("a{i}"));
                        fs::write(root.join(&p), bytes).unwrap();
                        p
                    });
                    AttachmentRecord {
                        name: f.name.into(),
                        size: f.content.len() as u64,
                        sha256: Digest::of(f.content),
                        original,
                        scrubbed,
                        metadata: MetadataReport {
                            kind: f.kind,
                            findings: f.findings.clone(),
                            scrub: f.scrub.clone(),
                        },
                    }
                })
                .collect();
            let mut fields = BTreeMap::new();
            let mut labels = BTreeMap::new();
            for (key, answer) in [("category", s.category), ("region", s.region)] {
                if let Some((raw, label)) = answer {
                    fields.insert(key.to_owned(), raw.to_owned());
                    labels.insert(
                        key.to_owned(),
                        FieldLabel {
                            question: format!("Which {key}?"),
                            answer: label.map(str::to_owned),
                        },
                    );
                }
            }
            // A hostile key and value, without a label.
            fields.insert(format!("x{BREAKOUT}"), "<b>bold</b>".into());
            Record {
                id,
                origin: Origin {
                    relay_key: "RWQ<relay-key>".into(),
                    batch_sequence: 7,
                    batch_id: BatchId::from_bytes([0xbb; 16]),
                    manifest_sha256: Digest::of(b"manifest"),
                    ciphertext_sha256: Digest::of(&[s.n]),
                    epoch: 2,
                },
                thread: s.thread.map(thread_id),
                received_day: day(s.day),
                language: "ru".into(),
                form_version: 3,
                fields,
                labels,
                text: s.text.into(),
                attachments,
                status: s.status,
                tags: s.tags.iter().map(|t| (*t).to_owned()).collect(),
                dir,
            }
        })
        .collect()
}

/// Options with the originals copied in, so that the tests below see every
/// hostile name and content; [`originals_stay_out_unless_asked`] checks the
/// default.
fn options(include_discarded: bool) -> ReportOptions {
    ReportOptions {
        title: format!("NGO report {SCRIPT}"),
        include_discarded,
        with_originals: true,
        filtered_from: None,
        generated_day: day("2025-03-01"),
        quarantined: Vec::new(),
    }
}

/// A report of the fixture in a fresh temporary directory.
struct Fixture {
    _tmp: tempfile::TempDir,
    out: PathBuf,
    specs: Vec<Spec>,
    summary: ReportSummary,
    progress: Vec<(u64, u64)>,
}

fn report(include_discarded: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let out = tmp.path().join("report");
    let specs = specs();
    let records = build(&archive, &specs);
    let mut progress = Vec::new();
    let summary = write_report(
        &records,
        &archive,
        &out,
        &options(include_discarded),
        &mut |done, total| progress.push((done, total)),
    )
    .unwrap();
    Fixture {
        _tmp: tmp,
        out,
        specs,
        summary,
        progress,
    }
}

impl Fixture {
    fn page(&self, rel: &str) -> Element {
        let src = fs::read_to_string(self.out.join(rel)).unwrap();
        html::parse(&src).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

/// Every file under `dir`, relative to it; `dir` must exist.
fn walk(dir: &Path) -> Vec<PathBuf> {
    assert!(dir.is_dir(), "{} is no directory", dir.display());
    testkit::files(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_owned())
        .collect()
}

/// Resolves a relative URL found in `page` (a path relative to `out`) to
/// the file it names; `None` if it is not a plain relative reference that
/// stays inside the report.
fn resolve(out: &Path, page: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split('#').next().unwrap_or("");
    if path.is_empty() {
        return Some(out.join(page));
    }
    let scheme = path
        .find(':')
        .is_some_and(|c| !path[..c].contains(['/', '?', '#']));
    if scheme || path.starts_with('/') || path.contains('\\') || path.contains('?') {
        return None;
    }
    let decoded = percent_decode(path)?;
    let mut resolved: Vec<String> = page
        .parent()
        .unwrap()
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                resolved.pop()?;
            }
            s => resolved.push(s.to_owned()),
        }
    }
    let p: PathBuf = resolved.iter().collect();
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| out.join(p))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

const CSP: &str = "default-src 'none'; img-src 'self'; style-src 'self'";
const URL_ATTRS: &[&str] = &[
    "href",
    "src",
    "srcset",
    "xlink:href",
    "action",
    "formaction",
    "poster",
    "data",
    "cite",
    "background",
    "longdesc",
    "ping",
    "manifest",
    "codebase",
];
const BANNED_ELEMENTS: &[&str] = &[
    "script",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "base",
    "form",
    "input",
    "button",
    "textarea",
    "select",
    "style",
    "foreignObject",
    "use",
    "image",
    "audio",
    "video",
    "source",
    "track",
    "portal",
    "animate",
    "set",
];

/// The checks every page passes; returns the parsed page.
fn check_page(out: &Path, rel: &Path) -> Element {
    let src = fs::read_to_string(out.join(rel)).unwrap();
    let lower = src.to_lowercase();
    assert!(!lower.contains("<script"), "{rel:?} holds <script");
    assert!(
        !lower.contains("http://") && !lower.contains("https://"),
        "{rel:?} names a URL"
    );
    let doc = html::parse(&src).unwrap_or_else(|e| panic!("{rel:?} does not parse: {e}"));

    let head = doc.elements("head")[0];
    let metas = head.elements("meta");
    assert!(metas.iter().any(|m| m.attr("charset") == Some("utf-8")));
    assert!(
        metas
            .iter()
            .any(|m| m.attr("http-equiv") == Some("Content-Security-Policy")
                && m.attr("content") == Some(CSP)),
        "{rel:?}: no strict CSP"
    );
    assert!(
        metas.iter().any(|m| m.attr("name") == Some("referrer")
            && m.attr("content") == Some("no-referrer"))
    );
    for m in &metas {
        if let Some(h) = m.attr("http-equiv") {
            assert_eq!(h, "Content-Security-Policy", "{rel:?}: other http-equiv");
        }
    }
    let links = doc.elements("link");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].attr("rel"), Some("stylesheet"));

    for el in doc.all() {
        assert!(
            !BANNED_ELEMENTS
                .iter()
                .any(|b| b.eq_ignore_ascii_case(&el.name)),
            "{rel:?}: <{}>",
            el.name
        );
        for (name, value) in &el.attrs {
            let n = name.to_ascii_lowercase();
            assert!(
                !n.starts_with("on"),
                "{rel:?}: event attribute {name}={value:?}"
            );
            assert!(n != "style" && n != "srcdoc", "{rel:?}: {name}");
            if URL_ATTRS.contains(&n.as_str()) {
                let target = resolve(out, rel, value)
                    .unwrap_or_else(|| panic!("{rel:?}: {name}={value:?} is not a relative link"));
                assert!(
                    target.is_file(),
                    "{rel:?}: {name}={value:?} names no file in the report"
                );
                assert!(!value.contains("//"), "{rel:?}: {value:?}");
            }
        }
    }
    doc
}

fn html_pages(out: &Path) -> Vec<PathBuf> {
    walk(out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "html") && !p.starts_with("files"))
        .collect()
}

// ---------------------------------------------------------------------------
// Independent counts.

fn label_of(answer: Option<(&str, Option<&str>)>) -> String {
    match answer {
        Some((_, Some(label))) => label.to_owned(),
        Some((raw, None)) => raw.to_owned(),
        None => "not said".to_owned(),
    }
}

fn count<I: IntoIterator<Item = String>>(items: I) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// A chart's bars as `label -> number`, read from the SVG: the `<title>`
/// (`label: n`), the number written next to the bar (which must agree),
/// and each bar's length, which must be proportional to its number.
fn svg_numbers(doc: &Element, id: &str, horizontal: bool) -> BTreeMap<String, usize> {
    let svg = doc
        .by_id(&format!("chart-{id}"))
        .unwrap_or_else(|| panic!("no chart-{id}"));
    assert_eq!(svg.name, "svg");
    let mut out = BTreeMap::new();
    let mut lengths = Vec::new();
    for g in svg.elements("g").into_iter().filter(|g| g.has_class("bar")) {
        let title = g.elements("title")[0].text();
        let (label, n) = title.rsplit_once(": ").unwrap();
        let n: usize = n.parse().unwrap();
        let rect = g.elements("rect")[0];
        let len: u32 = rect
            .attr(if horizontal { "width" } else { "height" })
            .unwrap()
            .parse()
            .unwrap();
        lengths.push((n, len));
        let written: Vec<&Element> = g
            .elements("text")
            .into_iter()
            .filter(|t| t.has_class("value"))
            .collect();
        if horizontal {
            assert_eq!(written.len(), 1, "{id}: {label} has no number next to it");
        }
        for t in written {
            assert_eq!(t.text(), n.to_string(), "{id}: {label}");
        }
        assert!(
            out.insert(label.to_owned(), n).is_none(),
            "{id}: {label} twice"
        );
    }
    let max = lengths.iter().map(|l| l.0).max().unwrap_or(0);
    let longest = lengths.iter().map(|l| l.1).max().unwrap_or(0);
    for (n, len) in lengths {
        let want = if max == 0 {
            0.0
        } else {
            n as f64 * f64::from(longest) / max as f64
        };
        assert!(
            (f64::from(len) - want).abs() <= 1.0,
            "{id}: a bar of {n} is {len} long, want {want}"
        );
    }
    out
}

/// The accessible table of a chart, as `label -> number` (last column).
fn table_numbers(doc: &Element, id: &str) -> BTreeMap<String, usize> {
    let table = doc.by_id(&format!("data-{id}")).unwrap();
    let tbody = table.elements("tbody")[0];
    let mut out = BTreeMap::new();
    for tr in tbody.elements("tr") {
        let label = tr.elements("th")[0].text();
        let n = tr.elements("td").last().unwrap().text().parse().unwrap();
        assert!(out.insert(label, n).is_none());
    }
    out
}

fn nonzero(m: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    m.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn every_page_parses_is_inert_and_links_inside() {
    let f = report(false);
    let pages = html_pages(&f.out);
    // index + 5 submissions + 2 threads.
    assert_eq!(pages.len(), 8, "{pages:?}");
    for p in &pages {
        check_page(&f.out, p);
    }
    let css = fs::read_to_string(f.out.join("style.css"))
        .unwrap()
        .to_lowercase();
    for banned in ["url(", "@import", "http", "expression(", "@font-face"] {
        assert!(!css.contains(banned), "style.css holds {banned}");
    }
    // No copied attachment is something a browser would render as a page.
    for p in walk(&f.out.join("files")) {
        let ext = p.extension().map(|e| e.to_string_lossy().to_lowercase());
        assert!(
            !matches!(
                ext.as_deref(),
                Some("html" | "htm" | "svg" | "xml" | "xhtml" | "xht" | "shtml") | None
            ),
            "{p:?}"
        );
    }
}

#[test]
fn every_submission_is_in_the_report_and_discarded_ones_are_not() {
    let f = report(false);
    let index = f.page("index.html");
    let rows = index.by_id("submissions").unwrap().elements("tbody")[0].elements("tr");
    let linked: BTreeSet<String> = rows
        .iter()
        .map(|tr| {
            let a = tr.elements("a")[0];
            let href = a.attr("href").unwrap();
            let id = href
                .strip_prefix("submissions/")
                .unwrap()
                .strip_suffix(".html")
                .unwrap();
            assert_eq!(a.attr("title"), Some(id));
            assert!(id.starts_with(&a.text()), "short id is a prefix");
            id.to_owned()
        })
        .collect();
    let want: BTreeSet<String> = f
        .specs
        .iter()
        .filter(|s| s.status != Status::Discarded)
        .map(|s| sub_id(s.n).to_string())
        .collect();
    assert_eq!(linked, want);
    // Each has its page, whose heading names it; together the pages hold
    // every id.
    let mut seen = BTreeSet::new();
    for p in html_pages(&f.out) {
        let text = fs::read_to_string(f.out.join(&p)).unwrap();
        for s in &f.specs {
            if text.contains(&sub_id(s.n).to_string()) {
                seen.insert(sub_id(s.n).to_string());
            }
        }
    }
    assert_eq!(seen, want, "the discarded id appears nowhere");
    for id in &want {
        let page = f.page(&format!("submissions/{id}.html"));
        assert!(page.elements("h1")[0].text().contains(id.as_str()));
    }
    let discarded = sub_id(6).to_string();
    assert!(
        !f.out
            .join("submissions")
            .join(format!("{discarded}.html"))
            .exists()
    );
    assert!(!f.out.join("files").join(&discarded).exists());
    assert!(index.by_id("excluded").unwrap().text().starts_with("1 "));
    assert_eq!(f.summary.submissions, 5);
    assert_eq!(f.summary.threads, 2);
    assert_eq!(f.summary.pages, 8);
}

#[test]
fn discarded_submissions_are_included_on_request() {
    let f = report(true);
    let id = sub_id(6).to_string();
    let page = check_page(&f.out, &PathBuf::from(format!("submissions/{id}.html")));
    assert!(page.text().contains("Discarded."));
    let index = f.page("index.html");
    let table = index.by_id("submissions").unwrap();
    assert!(
        table
            .elements("a")
            .iter()
            .any(|a| a.attr("title") == Some(id.as_str()))
    );
    assert_eq!(svg_numbers(&index, "status", true)["discarded"], 1);
    // Thread 1 now lists it, last (received last).
    let thread = f.page(&format!("threads/{}.html", thread_id(1)));
    let ids: Vec<String> = thread
        .by_id("thread")
        .unwrap()
        .elements("a")
        .iter()
        .map(|a| a.attr("title").unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [sub_id(1), sub_id(2), sub_id(6)].map(|i| i.to_string())
    );
    assert_eq!(f.summary.submissions, 6);
    assert_eq!(f.summary.pages, 9);
}

#[test]
fn charts_match_the_data() {
    for include in [false, true] {
        let f = report(include);
        let included: Vec<&Spec> = f
            .specs
            .iter()
            .filter(|s| include || s.status != Status::Discarded)
            .collect();
        let index = f.page("index.html");

        let categories = count(included.iter().map(|s| label_of(s.category)));
        assert_eq!(svg_numbers(&index, "category", true), categories);
        assert_eq!(table_numbers(&index, "category"), categories);

        let regions = count(included.iter().map(|s| label_of(s.region)));
        assert_eq!(svg_numbers(&index, "region", true), regions);
        assert_eq!(table_numbers(&index, "region"), regions);

        let mut statuses: BTreeMap<String, usize> = Status::ALL
            .iter()
            .filter(|s| include || **s != Status::Discarded)
            .map(|s| (s.to_string(), 0))
            .collect();
        for s in &included {
            *statuses.get_mut(s.status.as_str()).unwrap() += 1;
        }
        assert_eq!(svg_numbers(&index, "status", true), statuses);
        assert_eq!(table_numbers(&index, "status"), statuses);

        let weeks = count(included.iter().map(|s| s.week.to_owned()));
        let svg = svg_numbers(&index, "weeks", false);
        let table = table_numbers(&index, "weeks");
        assert_eq!(nonzero(&svg), weeks);
        assert_eq!(svg, table);
        // Every week from the first to the last is drawn, in order.
        let labels: Vec<String> = index
            .by_id("data-weeks")
            .unwrap()
            .elements("th")
            .iter()
            .filter(|th| th.attr("scope") == Some("row"))
            .map(|th| th.text())
            .collect();
        let want: Vec<&str> = if include {
            vec![
                "2024-W52", "2025-W01", "2025-W02", "2025-W03", "2025-W04", "2025-W05", "2025-W06",
                "2025-W07",
            ]
        } else {
            vec!["2024-W52", "2025-W01", "2025-W02", "2025-W03", "2025-W04"]
        };
        assert_eq!(labels, want);

        // The counts at the top.
        let n = |id: &str| -> usize { index.by_id(id).unwrap().text().parse().unwrap() };
        assert_eq!(n("count-submissions"), included.len());
        assert_eq!(
            n("count-threads"),
            included
                .iter()
                .filter_map(|s| s.thread)
                .collect::<BTreeSet<_>>()
                .len()
        );
        assert_eq!(
            n("count-attachments"),
            included.iter().map(|s| s.files.len()).sum::<usize>()
        );
        // Flagged: GPS, a name or a device in the original, or no
        // scrubbed copy; other findings are listed, not flagged.
        let flagged = included
            .iter()
            .flat_map(|s| &s.files)
            .filter(|f| {
                f.scrub != ScrubOutcome::Scrubbed
                    || f.findings
                        .iter()
                        .any(|x| !matches!(x, Finding::Other { .. }))
            })
            .count();
        assert_eq!(n("count-flagged"), flagged);
        assert_eq!(f.summary.flagged_files, flagged);
    }
}

#[test]
fn hostile_content_appears_only_as_text() {
    let f = report(false);
    for p in html_pages(&f.out) {
        let raw = fs::read_to_string(f.out.join(&p)).unwrap();
        for needle in [
            "<img src=x",
            "<b>bold",
            "<b>not bold",
            "<i>x",
            "\u{202e}",
            "\u{1b}",
        ] {
            assert!(!raw.contains(needle), "{p:?} holds {needle:?} unescaped");
        }
        let doc = html::parse(&raw).unwrap();
        for el in doc.all() {
            for (n, v) in &el.attrs {
                // Links are relative and percent-encoded: no scheme, and
                // no `:` at all.
                if URL_ATTRS.contains(&n.as_str()) {
                    assert!(!v.contains(':'), "{p:?}: {n}={v:?}");
                }
            }
        }
    }

    let id1 = sub_id(1).to_string();
    let page = f.page(&format!("submissions/{id1}.html"));
    // The testimony, exactly, as text: line breaks kept (no <br>), \r\n
    // folded, controls and bidirectional overrides made visible.
    let testimony = page.by_id("testimony").unwrap();
    assert!(
        testimony.child_elements().next().is_none(),
        "markup inside the testimony"
    );
    assert_eq!(
        testimony.text(),
        "First line.\n<script>alert(1)</script>\nThird line &amp; <b>not bold</b> \\u{202e}gpj.exe \\u{001b}[31m\"><img src=x onerror=alert(1)>"
    );
    // The hostile file name: the heading's text and the image's alt.
    let breakout_png = format!("{}.png", BREAKOUT);
    let article = page.by_id("file-2").unwrap();
    assert_eq!(article.elements("h3")[0].text(), breakout_png);
    assert_eq!(
        article.elements("img")[0].attr("alt"),
        Some(breakout_png.as_str())
    );
    // The hostile answer key and value.
    let answers = page.by_id("answers").unwrap().text();
    assert!(answers.contains(&format!("x{BREAKOUT}")));
    assert!(answers.contains("<b>bold</b>"));
    // Tags, relay key, findings and reasons.
    let text = page.text();
    assert!(text.contains("<i>x</i>"));
    assert!(text.contains("RWQ<relay-key>"));
    assert!(text.contains(&format!(
        "no scrubbed copy: this type cannot be scrubbed ({SCRIPT} type not supported)"
    )));
    assert!(text.contains(&format!("comment: {BREAKOUT}")));
    // The title option is escaped too.
    assert!(
        page.elements("title")[0]
            .text()
            .ends_with(&format!("NGO report {SCRIPT}"))
    );

    // The javascript: region is text in the table and a label in the chart.
    let index = f.page("index.html");
    let cells: Vec<String> = index
        .by_id("submissions")
        .unwrap()
        .elements("td")
        .iter()
        .map(|t| t.text())
        .collect();
    assert!(cells.iter().any(|c| c == JS_URL));
    assert_eq!(svg_numbers(&index, "region", true)[JS_URL], 1);
    // A hostile category label is one bar whose SVG label is text.
    assert_eq!(svg_numbers(&index, "category", true)[SCRIPT], 1);

    // The file named `javascript:alert(1)` is linked inertly, and the
    // HTML attachment is stored under a name no browser renders as a page.
    let links: Vec<String> = page
        .elements("a")
        .iter()
        .filter_map(|a| a.attr("href").map(str::to_owned))
        .collect();
    assert!(
        links
            .iter()
            .any(|h| h.ends_with("/original/javascript_alert%281%29.txt")),
        "{links:?}"
    );
    assert!(
        links.iter().any(|h| h.ends_with("/original/evil.html.txt")),
        "{links:?}"
    );
    assert_eq!(
        fs::read(
            f.out
                .join("files")
                .join(&id1)
                .join("original")
                .join("evil.html.txt")
        )
        .unwrap(),
        b"<script>alert(document.cookie)</script>"
    );
}

#[test]
fn images_show_the_scrubbed_copy_and_flags_are_visible() {
    let f = report(false);
    let id1 = sub_id(1).to_string();
    let rel = PathBuf::from(format!("submissions/{id1}.html"));
    let page = check_page(&f.out, &rel);

    // photo.jpg: inline from the scrubbed copy, flagged for GPS.
    let photo = page.by_id("file-1").unwrap();
    assert!(photo.has_class("flagged"));
    let img = photo.elements("img")[0];
    let src = img.attr("src").unwrap();
    assert!(src.contains("/shared/"), "{src}");
    let target = resolve(&f.out, &rel, src).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"\xff\xd8\xff\xe0 scrubbed");
    let flags: Vec<String> = photo
        .all()
        .into_iter()
        .filter(|e| e.name == "li" && e.has_class("flag"))
        .map(|e| e.text())
        .collect();
    assert!(
        flags
            .iter()
            .any(|t| t == "⚑ the original carries GPS coordinates: 43.238949, 76.889709"),
        "{flags:?}"
    );
    assert!(
        photo
            .text()
            .contains("GPS coordinates: 43.238949, 76.889709")
    );
    // Both copies are linked; the original is byte-identical.
    let hrefs: Vec<&str> = photo
        .elements("a")
        .iter()
        .filter_map(|a| a.attr("href"))
        .collect();
    let original = hrefs.iter().find(|h| h.contains("/original/")).unwrap();
    assert_eq!(
        fs::read(resolve(&f.out, &rel, original).unwrap()).unwrap(),
        b"\xff\xd8\xff\xe1 original with GPS"
    );
    assert!(hrefs.iter().any(|h| h.contains("/shared/")));

    // The PNG without findings is not flagged.
    let png = page.by_id("file-2").unwrap();
    assert!(!png.has_class("flagged"));
    assert!(
        png.elements("img")[0]
            .attr("src")
            .unwrap()
            .contains("/shared/")
    );

    // evil.html: not an image, not inline, flagged as unscrubbable.
    let evil = page.by_id("file-3").unwrap();
    assert!(evil.elements("img").is_empty());
    assert!(evil.text().contains("cannot be scrubbed"));

    // The damaged JPEG of submission 4: the original inline, with a warning.
    let id4 = sub_id(4).to_string();
    let page4 = f.page(&format!("submissions/{id4}.html"));
    let broken = page4.by_id("file-1").unwrap();
    let img = broken.elements("img")[0];
    assert!(img.attr("src").unwrap().contains("/original/"));
    assert!(img.has_class("original"));
    assert!(
        broken
            .all()
            .iter()
            .any(|e| e.has_class("warning") && e.text().contains("No scrubbed copy"))
    );
    assert!(broken.text().contains("Device serial: SN123"));

    // The PDF with an author is flagged.
    let page2 = f.page(&format!("submissions/{}.html", sub_id(2)));
    assert!(
        page2
            .by_id("file-1")
            .unwrap()
            .text()
            .contains(&format!("the original names a person: {SCRIPT}"))
    );

    // Other metadata is listed, not flagged.
    let page3 = f.page(&format!("submissions/{}.html", sub_id(3)));
    let edited = page3.by_id("file-1").unwrap();
    assert!(!edited.has_class("flagged"));
    assert!(edited.text().contains("software: GIMP 2.10"));

    // The dashboard marks exactly the submissions with a flagged file.
    let index = f.page("index.html");
    let flagged_rows: BTreeSet<String> = index
        .by_id("submissions")
        .unwrap()
        .elements("tr")
        .into_iter()
        .filter(|tr| tr.elements("a").iter().any(|a| a.has_class("flag")))
        .map(|tr| tr.elements("a")[0].attr("title").unwrap().to_owned())
        .collect();
    assert_eq!(
        flagged_rows,
        [sub_id(1), sub_id(2), sub_id(4)]
            .iter()
            .map(ToString::to_string)
            .collect()
    );

    // Chain of custody on the page.
    let custody = page.by_id("custody").unwrap().text();
    assert!(custody.contains(&BatchId::from_bytes([0xbb; 16]).to_string()));
    assert!(custody.contains(&Digest::of(b"manifest").to_string()));
    assert!(custody.contains(&Digest::of(&[1]).to_string()));
}

#[test]
fn threads_list_their_submissions_in_received_order() {
    let f = report(false);
    let thread = f.page(&format!("threads/{}.html", thread_id(2)));
    let ids: Vec<&str> = thread
        .by_id("thread")
        .unwrap()
        .elements("a")
        .iter()
        .map(|a| a.attr("title").unwrap())
        .collect::<Vec<_>>();
    // Submission 5 (2024-12-29) before 4 (2025-01-20).
    assert_eq!(ids, [sub_id(5).to_string(), sub_id(4).to_string()]);
    // A submission page links its thread.
    let page = f.page(&format!("submissions/{}.html", sub_id(4)));
    let want = format!("../threads/{}.html", thread_id(2));
    assert!(
        page.elements("a")
            .iter()
            .any(|a| a.attr("href") == Some(want.as_str()))
    );
}

#[test]
fn progress_counts_every_page() {
    let f = report(false);
    let total = f.summary.pages as u64;
    let want: Vec<(u64, u64)> = (1..=total).map(|d| (d, total)).collect();
    assert_eq!(f.progress, want);
    // originals: 4 + 1 + 1 + 1 = 7; scrubbed copies: 2 + 1 + 1 = 4.
    assert_eq!(f.summary.files_copied, 11);
    assert_eq!(walk(&f.out.join("files")).len(), 11);
}

#[test]
fn refuses_a_non_empty_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let records = build(&archive, &specs());
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("keep.txt"), b"mine").unwrap();
    let err = write_report(&records, &archive, &out, &options(false), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(walk(&out), [PathBuf::from("keep.txt")]);
    assert_eq!(fs::read(out.join("keep.txt")).unwrap(), b"mine");

    // A file in the way is refused too.
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = write_report(&records, &archive, &file, &options(false), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");

    // An existing empty directory is used.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    write_report(&records, &archive, &empty, &options(false), &mut |_, _| {}).unwrap();
    assert!(empty.join("index.html").is_file());
}

#[test]
fn a_path_leaving_the_archive_fails_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    fs::create_dir(&archive).unwrap();
    fs::write(tmp.path().join("secret"), b"outside").unwrap();
    let mut records = build(&archive, &specs());
    records[0].attachments[0].original = PathBuf::from("../secret");
    let out = tmp.path().join("out");
    let err = write_report(&records, &archive, &out, &options(false), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
    assert!(!out.exists(), "a failed report leaves nothing behind");

    // The same into an existing empty directory: emptied again.
    fs::create_dir(&out).unwrap();
    assert!(write_report(&records, &archive, &out, &options(false), &mut |_, _| {}).is_err());
    assert!(walk(&out).is_empty());
}

#[test]
fn an_altered_original_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let records = build(&archive, &specs());
    // Submission 2's PDF changes after import.
    fs::write(
        archive.join(&records[1].attachments[0].original),
        b"%PDF-1.7 changed",
    )
    .unwrap();
    let out = tmp.path().join("out");
    write_report(&records, &archive, &out, &options(false), &mut |_, _| {}).unwrap();
    let src = fs::read_to_string(out.join(format!("submissions/{}.html", sub_id(2)))).unwrap();
    let page = html::parse(&src).unwrap();
    assert!(
        page.by_id("file-1")
            .unwrap()
            .text()
            .contains("no longer matches")
    );
    let src = fs::read_to_string(out.join(format!("submissions/{}.html", sub_id(4)))).unwrap();
    assert!(!src.contains("no longer matches"));
}

#[cfg(unix)]
#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let f = report(false);
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&f.out), 0o700);
    for p in testkit::paths(&f.out) {
        if p.is_dir() {
            assert_eq!(mode(&p), 0o700, "{p:?}");
        } else {
            assert_eq!(mode(&p), 0o600, "{p:?}");
        }
    }
}

#[test]
fn an_empty_archive_makes_a_valid_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let summary = write_report(&[], tmp.path(), &out, &options(false), &mut |_, _| {}).unwrap();
    assert_eq!(summary.pages, 1);
    let doc = check_page(&out, Path::new("index.html"));
    assert_eq!(doc.by_id("count-submissions").unwrap().text(), "0");
}

#[test]
fn originals_stay_out_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let specs = specs();
    let records = build(&archive, &specs);
    let out = tmp.path().join("out");
    let options = ReportOptions {
        with_originals: false,
        ..options(false)
    };
    let summary = write_report(&records, &archive, &out, &options, &mut |_, _| {}).unwrap();
    // Scrubbed copies only: 2 + 1 + 1 (submission 6 is discarded).
    assert_eq!(summary.files_copied, 4);
    // evil.html, javascript:alert(1), broken.jpg: no scrubbed copy.
    assert_eq!(summary.left_out, 3);
    let files = walk(&out.join("files"));
    assert_eq!(files.len(), 4, "{files:?}");
    for p in &files {
        assert!(p.components().any(|c| c.as_os_str() == "shared"), "{p:?}");
        let bytes = fs::read(out.join("files").join(p)).unwrap();
        for f in specs.iter().flat_map(|s| &s.files) {
            assert_ne!(bytes, f.content, "{p:?} is the original of {}", f.name);
        }
    }
    // Every page still parses and links only what is there.
    for p in html_pages(&out) {
        check_page(&out, &p);
    }
    let page = |id: SubmissionId| {
        let src = fs::read_to_string(out.join(format!("submissions/{id}.html"))).unwrap();
        html::parse(&src).unwrap()
    };
    let page1 = page(sub_id(1));
    // The GPS photo: its scrubbed copy, flagged, no link to the original.
    let photo = page1.by_id("file-1").unwrap();
    assert!(photo.has_class("flagged"));
    assert!(
        photo.elements("img")[0]
            .attr("src")
            .unwrap()
            .contains("/shared/")
    );
    assert!(!photo.text().contains("Left out"));
    // The file with no scrubbed copy: named, typed, why it is flagged, and
    // a line saying it is left out and how to include it.
    let evil = page1.by_id("file-3").unwrap();
    assert!(evil.elements("a").is_empty());
    assert_eq!(evil.elements("h3")[0].text(), "evil.html");
    let text = evil.text();
    assert!(text.contains("other file"), "{text}");
    assert!(text.contains("type not supported"), "{text}");
    assert!(text.contains("Left out of this report"), "{text}");
    assert!(text.contains("--with-originals"), "{text}");
    // The damaged JPEG is not shown inline from its original.
    let broken = page(sub_id(4));
    let broken = broken.by_id("file-1").unwrap();
    assert!(broken.elements("img").is_empty());
    assert!(broken.text().contains("Left out of this report"));
    let index = html::parse(&fs::read_to_string(out.join("index.html")).unwrap()).unwrap();
    let note = index.by_id("files-note").unwrap().text();
    assert!(note.contains("scrubbed copies only"), "{note}");
    assert!(note.contains("3 file(s)"), "{note}");
}
