//! The metadata scrubber on real files: what it finds in an original, that
//! the original is never changed, and that the copy holds none of it, as
//! seen by parsers other than the scrubber's own (kamadak-exif, a marker
//! and chunk walk written here, lopdf, and poppler's `pdfinfo`).
//!
//! The fixtures in `tests/fixtures/scrub/` were made by `make_fixtures.py`
//! there, which lists every value they carry.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use reviewer::scrub::{MAX_SCRUB_SIZE, scrub_file, sniff};
use reviewer::workbench::{FileKind, Finding, MetadataReport, ScrubOutcome};
use sha2::{Digest as _, Sha256};
use testkit::contains;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scrub")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One scrub of `bytes` in a fresh directory.
struct Run {
    report: MetadataReport,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Run {
    fn copy(&self) -> Vec<u8> {
        assert_eq!(
            self.report.scrub,
            ScrubOutcome::Scrubbed,
            "{:?}",
            self.report
        );
        fs::read(&self.out).unwrap()
    }

    fn assert_no_copy(&self) {
        assert!(
            fs::symlink_metadata(&self.out).is_err(),
            "a copy was left at {}",
            self.out.display()
        );
    }
}

/// Scrubs `bytes` (written as a file named `name`), asserting that the
/// original is byte-identical afterwards.
fn scrub(name: &str, bytes: &[u8]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join(name);
    fs::write(&original, bytes).unwrap();
    let before = Sha256::digest(fs::read(&original).unwrap());
    let out = dir.path().join(format!("scrubbed-{name}"));
    let report = scrub_file(&original, &out).unwrap();
    let after = Sha256::digest(fs::read(&original).unwrap());
    assert_eq!(before, after, "the original {name} changed");
    Run {
        report,
        out,
        _dir: dir,
    }
}

fn assert_absent(copy: &[u8], needles: &[&str]) {
    for needle in needles {
        assert!(
            !contains(copy, needle.as_bytes()),
            "{needle:?} is still in the copy"
        );
    }
}

fn gps(report: &MetadataReport) -> (Option<f64>, Option<f64>) {
    let found: Vec<_> = report
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Gps {
                latitude,
                longitude,
            } => Some((*latitude, *longitude)),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "{:?}", report.findings);
    found[0]
}

fn assert_gps(report: &MetadataReport, lat: f64, lon: f64) {
    let (la, lo) = gps(report);
    let (la, lo) = (la.unwrap(), lo.unwrap());
    assert!((la - lat).abs() < 1e-4, "latitude {la} != {lat}");
    assert!((lo - lon).abs() < 1e-4, "longitude {lo} != {lon}");
}

fn author(value: &str) -> Finding {
    Finding::Author {
        value: value.into(),
    }
}

fn device(field: &str, value: &str) -> Finding {
    Finding::Device {
        field: field.into(),
        value: value.into(),
    }
}

fn other_value<'a>(report: &'a MetadataReport, field: &str) -> &'a str {
    report
        .findings
        .iter()
        .find_map(|f| match f {
            Finding::Other { field: f, value } if f == field => Some(value.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {field} finding in {:?}", report.findings))
}

fn assert_finds(report: &MetadataReport, expected: &[Finding]) {
    for f in expected {
        assert!(
            report.findings.contains(f),
            "{f:?} not in {:?}",
            report.findings
        );
    }
}

/// kamadak-exif finds no EXIF in the copy (and can read its container).
fn assert_no_exif(copy: &[u8]) {
    match exif::Reader::new().read_from_container(&mut Cursor::new(copy)) {
        Err(exif::Error::NotFound(_)) => {}
        Ok(e) => panic!("EXIF in the copy: {} fields", e.fields().len()),
        Err(e) => panic!("kamadak-exif cannot read the copy: {e}"),
    }
}

#[cfg(unix)]
fn assert_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
}

#[cfg(not(unix))]
fn assert_private(_: &Path) {}

// ------------------------------------------------------------ JPEG walk

/// A JPEG's marker segments, scans included, walked by hand: (marker,
/// contents), then what follows EOI.
fn jpeg_segments(data: &[u8]) -> (Vec<(u8, Vec<u8>)>, Vec<u8>) {
    assert_eq!(&data[..2], b"\xFF\xD8", "no SOI");
    let mut out = vec![(0xD8, Vec::new())];
    let mut i = 2;
    loop {
        // Skip entropy-coded data up to a real marker.
        while !(data[i] == 0xFF && data[i + 1] != 0x00 && !(0xD0..=0xD7).contains(&data[i + 1])) {
            i += 1;
        }
        while data[i + 1] == 0xFF {
            i += 1;
        }
        let marker = data[i + 1];
        if marker == 0xD9 {
            out.push((0xD9, Vec::new()));
            return (out, data[i + 2..].to_vec());
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        out.push((marker, data[i + 4..i + 2 + len].to_vec()));
        i += 2 + len;
    }
}

/// The bytes from the first scan header to EOI: the picture itself.
fn first_scan(data: &[u8]) -> &[u8] {
    let sos = data.windows(2).position(|w| w == b"\xFF\xDA").unwrap();
    let eoi = sos
        + data[sos..]
            .windows(2)
            .position(|w| w == b"\xFF\xD9")
            .unwrap();
    &data[sos..eoi + 2]
}

/// Markers a metadata-free JPEG may hold: SOI, JFIF APP0, Adobe APP14,
/// DQT, SOFn, DHT, DRI, SOS, EOI.
fn assert_only_image_markers(segments: &[(u8, Vec<u8>)]) {
    for (marker, contents) in segments {
        match marker {
            0xD8 | 0xD9 | 0xDB | 0xC4 | 0xDD | 0xDA | 0xC0..=0xC3 => {}
            0xE0 => assert!(
                contents.starts_with(b"JFIF\0") && contents.len() == 14,
                "APP0 is not a bare JFIF header: {contents:?}"
            ),
            0xEE => assert_eq!(contents.len(), 12, "APP14 is not a bare Adobe header"),
            m => panic!("marker {m:#04x} left in the copy"),
        }
    }
}

fn markers_of(segments: &[(u8, Vec<u8>)]) -> Vec<u8> {
    segments.iter().map(|(m, _)| *m).collect()
}

#[test]
fn jpeg_loses_exif_gps_xmp_iptc_comment_and_trailer() {
    let original = fixture("photo.jpg");
    let run = scrub("photo.jpg", &original);
    let report = &run.report;
    assert_eq!(report.kind, FileKind::Jpeg);
    assert_gps(report, 43.238_949, 76.889_709);
    assert_finds(
        report,
        &[
            author("Jane Reporter"),
            author("Jane Reporter 2024"),
            device("make", "Canon"),
            device("model", "Canon EOS 5D Mark IV"),
            device("serial", "SN-0123456789"),
            device("lens_serial", "LS-42"),
            device("owner", "J. Reporter"),
            Finding::Other {
                field: "software".into(),
                value: "Adobe Lightroom".into(),
            },
            Finding::Other {
                field: "comment".into(),
                value: "taken by Jane at the square".into(),
            },
            Finding::Other {
                field: "iptc".into(),
                value: "IPTC/Photoshop block present".into(),
            },
            // The appended picture's EXIF is read too.
            device("model", "HIDDEN-TRAILER"),
        ],
    );
    let xmp = other_value(report, "xmp");
    assert!(xmp.contains("dc:creator") && xmp.contains("GPS"), "{xmp}");
    assert!(other_value(report, "trailing_data").contains("bytes after the end"));
    // GPS is listed first: the report flags it loudest.
    assert!(matches!(report.findings[0], Finding::Gps { .. }));

    let copy = run.copy();
    assert_private(&run.out);
    assert_no_exif(&copy);
    let (segments, after_eoi) = jpeg_segments(&copy);
    assert_only_image_markers(&segments);
    assert!(after_eoi.is_empty(), "data after EOI in the copy");
    assert_absent(
        &copy,
        &[
            "Jane",
            "Canon",
            "SN-0123456789",
            "Lightroom",
            "HIDDEN-TRAILER",
            "xpacket",
            "Photoshop",
            "ICC_PROFILE",
            "Exif",
        ],
    );
    // The picture is untouched: same tables, same frame, same scan.
    let (orig_segments, _) = jpeg_segments(&original);
    let image_parts = |s: &[(u8, Vec<u8>)]| -> Vec<(u8, Vec<u8>)> {
        s.iter()
            .filter(|(m, _)| matches!(m, 0xDB | 0xC4 | 0xC0..=0xC3))
            .cloned()
            .collect()
    };
    assert_eq!(image_parts(&segments), image_parts(&orig_segments));
    assert_eq!(first_scan(&copy), first_scan(&original));
    // The Adobe APP14 (colour transform) stays, rebuilt; the JFIF too.
    assert!(markers_of(&segments).contains(&0xEE));
    assert_eq!(markers_of(&segments)[1], 0xE0);
}

#[test]
fn progressive_jpeg_loses_comments_between_scans() {
    let original = fixture("progressive.jpg");
    let (orig_segments, _) = jpeg_segments(&original);
    let orig_markers = markers_of(&orig_segments);
    let first_sos = orig_markers.iter().position(|&m| m == 0xDA).unwrap();
    assert!(
        orig_markers[first_sos..].contains(&0xFE),
        "the fixture has no COM after its first scan"
    );

    let run = scrub("progressive.jpg", &original);
    assert_finds(
        &run.report,
        &[
            author("Jane Reporter"),
            Finding::Other {
                field: "comment".into(),
                value: "between scans by Jane".into(),
            },
        ],
    );
    let copy = run.copy();
    assert_no_exif(&copy);
    let (segments, after_eoi) = jpeg_segments(&copy);
    assert_only_image_markers(&segments);
    assert!(after_eoi.is_empty());
    assert_absent(&copy, &["Jane"]);
    // Every scan survives.
    let scans = |m: &[u8]| m.iter().filter(|&&x| x == 0xDA).count();
    assert_eq!(scans(&markers_of(&segments)), scans(&orig_markers));
    assert!(scans(&orig_markers) > 1);
}

// ------------------------------------------------------------ PNG and WebP

/// A PNG's chunks, walked by hand (CRCs not checked).
fn png_chunks(data: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    assert_eq!(&data[..8], b"\x89PNG\r\n\x1a\n");
    let mut i = 8;
    let mut out = Vec::new();
    while i < data.len() {
        let len = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[i + 4..i + 8].try_into().unwrap();
        out.push((kind, data[i + 8..i + 8 + len].to_vec()));
        i += 12 + len;
    }
    assert_eq!(i, data.len(), "the last chunk overruns the file");
    out
}

#[test]
fn png_loses_exif_text_time_and_private_chunks() {
    let original = fixture("photo.png");
    let run = scrub("photo.png", &original);
    let report = &run.report;
    assert_eq!(report.kind, FileKind::Png);
    assert_gps(report, -33.4489, -70.6693);
    assert_finds(
        report,
        &[
            author("Jane Reporter"),
            device("model", "Pixel 7"),
            Finding::Other {
                field: "software".into(),
                value: "GIMP 2.10".into(),
            },
        ],
    );
    assert!(other_value(report, "xmp").contains("dc:creator"));
    assert!(other_value(report, "text").starts_with("Comment: (compressed"));

    let copy = run.copy();
    assert_private(&run.out);
    assert_no_exif(&copy);
    let chunks = png_chunks(&copy);
    let kinds: Vec<&[u8]> = chunks.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(kinds, [&b"IHDR"[..], b"IDAT", b"IEND"]);
    assert_absent(&copy, &["Jane", "GIMP", "secret-private-chunk", "xpacket"]);
    let idat = |c: &[([u8; 4], Vec<u8>)]| c.iter().find(|(k, _)| k == b"IDAT").cloned();
    assert_eq!(idat(&chunks), idat(&png_chunks(&original)));
}

/// A WebP's top-level chunks, walked by hand; checks the RIFF size.
fn webp_chunks(data: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    assert_eq!(&data[..4], b"RIFF");
    assert_eq!(&data[8..12], b"WEBP");
    let size = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
    assert_eq!(size + 8, data.len(), "RIFF size does not match the file");
    let mut i = 12;
    let mut out = Vec::new();
    while i < data.len() {
        let id: [u8; 4] = data[i..i + 4].try_into().unwrap();
        let len = u32::from_le_bytes(data[i + 4..i + 8].try_into().unwrap()) as usize;
        out.push((id, data[i + 8..i + 8 + len].to_vec()));
        i += 8 + len + len % 2;
    }
    out
}

#[test]
fn webp_loses_exif_and_xmp_and_its_flags() {
    let original = fixture("photo.webp");
    let orig_chunks = webp_chunks(&original);
    assert!(orig_chunks.iter().any(|(id, _)| id == b"EXIF"));
    let run = scrub("photo.webp", &original);
    let report = &run.report;
    assert_eq!(report.kind, FileKind::Webp);
    assert_gps(report, -33.4489, -70.6693);
    assert_finds(
        report,
        &[author("Jane Reporter"), device("serial", "WEBP-SERIAL-77")],
    );
    assert!(other_value(report, "xmp").contains("dc:creator"));

    let copy = run.copy();
    assert_no_exif(&copy);
    let chunks = webp_chunks(&copy);
    for (id, body) in &chunks {
        assert!(
            !matches!(id, b"EXIF" | b"XMP "),
            "{} left in the copy",
            String::from_utf8_lossy(id)
        );
        if id == b"VP8X" {
            assert_eq!(body[0] & 0x0C, 0, "VP8X still announces EXIF/XMP");
            assert_eq!(body[4..], orig_chunks[0].1[4..], "canvas size changed");
        }
    }
    let image = |c: &[([u8; 4], Vec<u8>)]| c.iter().find(|(id, _)| id == b"VP8 ").cloned();
    assert!(image(&chunks).is_some());
    assert_eq!(image(&chunks), image(&orig_chunks));
    assert_absent(&copy, &["Jane", "WEBP-SERIAL", "xpacket"]);
}

// ------------------------------------------------------------ PDF

/// `pdfinfo`'s output for `path`. poppler-utils is an independent PDF
/// parser; scripts/test installs it.
fn pdfinfo(path: &Path) -> String {
    let out = Command::new("pdfinfo")
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("pdfinfo not runnable ({e}): install poppler-utils (scripts/test does)")
        });
    assert!(
        out.status.success(),
        "pdfinfo refused {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_pdf_clean(path: &Path, pages: usize) {
    let info = pdfinfo(path);
    for field in ["Author:", "Creator:", "Producer:", "Title:"] {
        assert!(
            !info.lines().any(|l| l.starts_with(field)),
            "pdfinfo still shows {field}\n{info}"
        );
    }
    assert!(info.contains("Metadata Stream: no"), "{info}");
    assert!(
        info.contains(&format!("Pages:           {pages}")),
        "{info}"
    );

    let doc = lopdf::Document::load(path).unwrap();
    assert!(!doc.trailer.has(b"Info"));
    assert!(!doc.catalog().unwrap().has(b"Metadata"));
    for page in doc.get_pages().values() {
        assert!(!doc.get_dictionary(*page).unwrap().has(b"Metadata"));
    }
    assert_eq!(doc.get_pages().len(), pages);
}

#[test]
fn pdf_loses_info_and_xmp_of_every_revision() {
    let original = fixture("document.pdf");
    let run = scrub("document.pdf", &original);
    let report = &run.report;
    assert_eq!(report.kind, FileKind::Pdf);
    assert_finds(
        report,
        &[
            author("Jane Q. Reporter"),
            Finding::Other {
                field: "producer".into(),
                value: "LibreOffice 7.4".into(),
            },
        ],
    );
    let xmp = other_value(report, "xmp");
    assert!(xmp.contains("dc:creator") && xmp.contains("GPS"), "{xmp}");
    // The XMP holds coordinates it does not parse: flagged, unreadable.
    assert_eq!(gps(report), (None, None));

    let copy = run.copy();
    assert_private(&run.out);
    assert_pdf_clean(&run.out, 1);
    // Nothing of either revision's /Info nor the XMP survives in the bytes.
    assert_absent(
        &copy,
        &[
            "Jane",
            "Page Author",
            "LibreOffice",
            "Writer",
            "xpacket",
            "Notes",
        ],
    );
    // The page's text is still there.
    assert!(contains(&copy, b"Testimony attachment"));
}

#[test]
fn pdf_with_info_inside_an_object_stream() {
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let content = doc.add_object(Stream::new(dictionary! {}, b"BT ET".to_vec()));
    let page = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content,
        "MediaBox" => vec![0.into(), 0.into(), 100.into(), 100.into()],
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let info = doc.add_object(dictionary! {
        "Author" => Object::string_literal("Object Stream Author"),
        "Producer" => Object::string_literal("Secret Producer 1.0"),
    });
    doc.trailer.set("Info", info);
    let mut original = Vec::new();
    doc.save_modern(&mut original).unwrap();
    // The fixture does what it says: the name is compressed away.
    assert!(!contains(&original, b"Object Stream Author"));

    let run = scrub("modern.pdf", &original);
    assert_finds(&run.report, &[author("Object Stream Author")]);
    run.copy();
    assert_pdf_clean(&run.out, 1);
}

#[test]
fn photos_inside_a_pdf_are_flagged() {
    use lopdf::{Document, Object, Stream, dictionary};
    let build = |with_image: bool| {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let content = doc.add_object(Stream::new(dictionary! {}, b"BT ET".to_vec()));
        let mut resources = dictionary! {};
        if with_image {
            // A JPEG photo as an image XObject (its bytes are the fixture,
            // GPS and all).
            let photo = doc.add_object(Stream::new(
                dictionary! {
                    "Type" => "XObject", "Subtype" => "Image", "Width" => 8, "Height" => 8,
                    "ColorSpace" => "DeviceRGB", "BitsPerComponent" => 8, "Filter" => "DCTDecode",
                },
                fixture("photo.jpg"),
            ));
            resources.set("XObject", dictionary! { "Im1" => photo });
        }
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 100.into(), 100.into()],
        });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        bytes
    };
    let flagged = |report: &MetadataReport| {
        report.findings.iter().any(|f| {
            matches!(f, Finding::Other { field, value } if field == "embedded_images" && value.starts_with("1 image"))
        })
    };
    let run = scrub("with-photo.pdf", &build(true));
    assert!(flagged(&run.report), "{:?}", run.report.findings);
    run.copy();
    let run = scrub("text-only.pdf", &build(false));
    assert!(!flagged(&run.report), "{:?}", run.report.findings);
}

// ------------------------------------------------------------ unsupported

#[test]
fn heic_is_flagged_not_scrubbed() {
    let run = scrub("photo.heic", &fixture("photo.heic"));
    let report = &run.report;
    assert_eq!(report.kind, FileKind::Heic);
    match &report.scrub {
        ScrubOutcome::Unsupported { reason } => assert!(reason.contains("HEIC"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Still read: kamadak-exif reads HEIF containers.
    assert_gps(report, 43.238_949, 76.889_709);
    assert_finds(
        report,
        &[device("make", "Apple"), device("model", "iPhone 15")],
    );
    run.assert_no_copy();
}

// ------------------------------------------------------------ plain text

#[test]
fn plain_text_is_copied_as_sent_and_the_rest_is_not() {
    let utf16le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("Өскемен\r\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let utf16be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain("Ақтөбе".encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    let cases: &[(&str, &[u8], bool)] = &[
        ("notes.txt", "Біз ауруханада болдық.\n".as_bytes(), true),
        ("bom.txt", b"\xEF\xBB\xBFwith a UTF-8 mark\r\n", true),
        ("notes.TXT", b"capital extension", true),
        ("readme.md", b"# Title\n\n\ttabbed\x0c", true),
        ("notes.markdown", b"*x*", true),
        ("plain.text", b"", true),
        ("table.csv", b"a;b\r\n\xc8\xe2\xe0\xed;1\r\n", true),
        ("table.tsv", b"a\tb\n", true),
        ("unicode.txt", &utf16le, true),
        ("unicode-be.txt", &utf16be, true),
        // Not text, whatever the name says.
        ("nul.txt", b"text\0more", false),
        ("escape.md", b"red \x1b[31m", false),
        ("del.csv", b"a,\x7f", false),
        ("odd-utf16.txt", &utf16le[..utf16le.len() - 1], false),
        ("utf16-control.txt", b"\xFF\xFE\x01\x00", false),
        // Text, but not a name this treats as plain text: markup and
        // app exports keep their flag.
        ("page.html", b"<meta name=\"author\" content=\"A\">", false),
        ("letter.rtf", b"{\\rtf1{\\info{\\author A}}}", false),
        ("chat.json", b"{\"from\": \"+77012345678\"}", false),
        ("notes", b"no extension", false),
    ];
    for (name, bytes, text) in cases {
        let run = scrub(name, bytes);
        if *text {
            assert_eq!(run.report.kind, FileKind::Text, "{name}");
            assert!(run.report.findings.is_empty(), "{name}");
            assert_eq!(run.copy(), *bytes, "{name}: not the file as sent");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(&run.out).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{name}");
            }
        } else {
            assert_eq!(run.report.kind, FileKind::Other, "{name}");
            assert!(
                matches!(&run.report.scrub, ScrubOutcome::Unsupported { reason } if reason.contains("not recognised")),
                "{name}: {:?}",
                run.report.scrub
            );
            run.assert_no_copy();
        }
    }
}

/// Bytes that look like nothing (a xorshift stream, fixed seed).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn random_bytes_are_other_and_unsupported() {
    let run = scrub("photo.jpg", &noise(4096, 0x5eed));
    assert_eq!(run.report.kind, FileKind::Other);
    assert!(run.report.findings.is_empty());
    assert!(matches!(run.report.scrub, ScrubOutcome::Unsupported { .. }));
    run.assert_no_copy();
}

#[test]
fn sniff_knows_every_fixture() {
    for (name, kind) in [
        ("photo.jpg", FileKind::Jpeg),
        ("progressive.jpg", FileKind::Jpeg),
        ("photo.png", FileKind::Png),
        ("photo.webp", FileKind::Webp),
        ("photo.heic", FileKind::Heic),
        ("document.pdf", FileKind::Pdf),
    ] {
        assert_eq!(sniff(&fixture(name)[..16]), kind, "{name}");
    }
    assert_eq!(sniff(&noise(16, 1)), FileKind::Other);
}

// ------------------------------------------------------------ damaged input

fn assert_failed(run: &Run) -> &str {
    run.assert_no_copy();
    match &run.report.scrub {
        ScrubOutcome::Failed { reason } => reason,
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn truncated_jpegs_fail_without_a_copy() {
    let original = fixture("photo.jpg");
    // Cut inside the EXIF segment (the headers).
    let run = scrub("cut-header.jpg", &original[..100]);
    assert_eq!(run.report.kind, FileKind::Jpeg);
    assert!(assert_failed(&run).contains("JPEG"));

    // Cut inside the picture: headers intact, so what they carry is still
    // reported, but no copy of half a picture.
    let first_eoi = original.windows(2).position(|w| w == b"\xFF\xD9").unwrap();
    let run = scrub("cut-scan.jpg", &original[..first_eoi - 20]);
    assert!(assert_failed(&run).contains("truncated"));
    assert_gps(&run.report, 43.238_949, 76.889_709);
    assert_finds(&run.report, &[device("serial", "SN-0123456789")]);
}

#[test]
fn truncated_png_fails_but_still_shows_its_text() {
    let original = fixture("photo.png");
    let idat = original.windows(4).position(|w| w == b"IDAT").unwrap();
    let run = scrub("cut.png", &original[..idat + 8]);
    assert_eq!(run.report.kind, FileKind::Png);
    assert!(assert_failed(&run).contains("PNG"));
    assert_gps(&run.report, -33.4489, -70.6693);
    assert_finds(&run.report, &[author("Jane Reporter")]);
}

#[test]
fn thousands_of_comments_make_a_short_list() {
    let original = fixture("photo.jpg");
    let mut flooded = original[..20].to_vec(); // SOI + JFIF APP0
    for i in 0..3000 {
        let text = format!("comment {i}");
        flooded.extend_from_slice(&[0xFF, 0xFE]);
        flooded.extend_from_slice(&(text.len() as u16 + 2).to_be_bytes());
        flooded.extend_from_slice(text.as_bytes());
    }
    flooded.extend_from_slice(&original[20..]);
    let run = scrub("flood.jpg", &flooded);
    let findings = &run.report.findings;
    assert!(findings.len() <= 65, "{} findings", findings.len());
    assert!(other_value(&run.report, "more").contains("more metadata"));
    // GPS still leads the list.
    assert!(matches!(findings[0], Finding::Gps { .. }));
    let copy = run.copy();
    assert_absent(&copy, &["comment 1"]);
}

#[test]
fn garbage_pdf_fails_without_a_copy() {
    let mut garbage = b"%PDF-1.7\n".to_vec();
    garbage.extend(noise(8192, 42));
    let run = scrub("garbage.pdf", &garbage);
    assert_eq!(run.report.kind, FileKind::Pdf);
    assert_failed(&run);

    // A real PDF cut in half: the same.
    let original = fixture("document.pdf");
    let run = scrub("half.pdf", &original[..original.len() / 3]);
    assert_failed(&run);
}

/// Cuts and flipped bytes in every fixture: never a panic, never an error
/// (the output path is fresh), never a copy left behind unless it is
/// clean.
#[test]
fn damaged_inputs_never_panic_nor_leave_bad_copies() {
    for name in [
        "photo.jpg",
        "progressive.jpg",
        "photo.png",
        "photo.webp",
        "document.pdf",
    ] {
        let original = fixture(name);
        let step = (original.len() / 25).max(1);
        let mut variants: Vec<Vec<u8>> = (1..original.len())
            .step_by(step)
            .map(|cut| original[..cut].to_vec())
            .collect();
        for (k, pos) in (0..original.len()).step_by(step).enumerate() {
            let mut v = original.clone();
            v[pos] ^= 0x55 + k as u8;
            variants.push(v);
        }
        for v in variants {
            let run = scrub(name, &v);
            match run.report.scrub {
                ScrubOutcome::Scrubbed => {
                    let copy = fs::read(&run.out).unwrap();
                    if run.report.kind != FileKind::Pdf {
                        assert_no_exif(&copy);
                    }
                    assert_absent(&copy, &["Jane", "xpacket"]);
                }
                _ => run.assert_no_copy(),
            }
        }
    }
}

// ------------------------------------------------------------ output path

#[test]
fn an_existing_output_is_an_error_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("photo.jpg", fixture("photo.jpg")),
        ("noise.bin", noise(64, 9)),
    ] {
        let original = dir.path().join(name);
        fs::write(&original, &bytes).unwrap();
        let out = dir.path().join(format!("{name}.out"));
        fs::write(&out, b"keep me").unwrap();
        let err = scrub_file(&original, &out).unwrap_err();
        assert!(
            matches!(err, reviewer::Error::AlreadyExists { .. }),
            "{err}"
        );
        assert_eq!(fs::read(&out).unwrap(), b"keep me");
        assert_eq!(fs::read(&original).unwrap(), bytes);
    }
}

#[cfg(unix)]
#[test]
fn an_output_symlink_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("photo.jpg");
    fs::write(&original, fixture("photo.jpg")).unwrap();
    let target = dir.path().join("target");
    let out = dir.path().join("out.jpg");
    std::os::unix::fs::symlink(&target, &out).unwrap();
    assert!(scrub_file(&original, &out).is_err());
    assert!(!target.exists(), "the scrubber wrote through a symlink");
}

#[test]
fn a_missing_original_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = scrub_file(&dir.path().join("absent"), &dir.path().join("out")).unwrap_err();
    assert!(matches!(err, reviewer::Error::Io { .. }), "{err}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn files_over_the_limit_are_not_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("huge.jpg");
    let file = fs::File::create(&original).unwrap();
    std::io::Write::write_all(&mut &file, &fixture("photo.jpg")).unwrap();
    // Sparse: takes no disk space where the file system allows it.
    file.set_len(MAX_SCRUB_SIZE + 1).unwrap();
    drop(file);
    let out = dir.path().join("out.jpg");
    let report = scrub_file(&original, &out).unwrap();
    assert_eq!(report.kind, FileKind::Jpeg);
    assert_eq!(
        report.scrub,
        ScrubOutcome::Failed {
            reason: "too large to scrub here".into()
        }
    );
    // Its EXIF is still read, streamed.
    assert_gps(&report, 43.238_949, 76.889_709);
    assert!(!out.exists());
}
