//! Metadata in attachments: what an original carries that could identify a
//! source (GPS coordinates, names, device serials), and a scrubbed copy for
//! sharing.
//!
//! [`scrub_file`] never touches the original. It reads it (at most
//! [`MAX_SCRUB_SIZE`] bytes, into memory), lists its [`Finding`]s, and for
//! the types it can rewrite writes a copy without the metadata:
//!
//! | kind | what the copy keeps | what goes |
//! | --- | --- | --- |
//! | JPEG | the frame, tables and scans; a JFIF APP0 without its thumbnail; an Adobe APP14 rebuilt from its colour-transform byte | every other APPn (EXIF, XMP, ICC, IPTC, MPF, vendor data), every COM, in the header and between progressive scans; anything after EOI (appended pictures) |
//! | PNG | the critical chunks and the colour, transparency, physical-size and animation chunks | `eXIf`, `tEXt`, `zTXt`, `iTXt`, `tIME` and every chunk not on that list |
//! | WebP | `VP8X` (with its EXIF and XMP flags cleared), `VP8 `, `VP8L`, `ALPH`, `ANIM`, `ANMF`, `ICCP` | `EXIF`, `XMP ` and unknown chunks |
//! | PDF | the document, rewritten by lopdf | the trailer's `/Info`, every `/Metadata` stream (catalog, pages, images, fonts) and `/PieceInfo`, then every object nothing refers to (older revisions' `/Info` included) |
//! | plain text (`.txt`, `.text`, `.md`, `.markdown`, `.csv`, `.tsv` whose content is text) | every byte: the copy is the file as sent ([`copy_plain_text`]) | nothing: text has no metadata container |
//! | HEIC, other | nothing: [`ScrubOutcome::Unsupported`] | |
//!
//! Allow-lists, not deny-lists: a chunk or segment this module does not
//! know is dropped, because unknown vendor data is where metadata hides.
//!
//! Every copy is checked after it is written, by reading it back with a
//! different parser than the one that wrote it: kamadak-exif must find no
//! EXIF in an image, a marker/chunk walk of this module's own (not
//! img-parts) must find only what the table above keeps, and no XMP packet
//! may remain; a PDF must load in lopdf's strict mode with no `/Info`, no
//! `/Metadata` and the same page count. A copy that fails is deleted and the
//! outcome is [`ScrubOutcome::Failed`].
//!
//! Memory: the original, the copy and the parsers' working copies are in
//! memory at once, at worst about four times the file's size (so about
//! 1 GiB for a file at the 256 MiB limit). Files above the limit are not
//! read whole: their EXIF is still read (streamed) from JPEG and HEIC, and
//! the outcome is [`ScrubOutcome::Failed`] ("too large to scrub here").
//!
//! Not scrubbed, and not detected either: pictures embedded inside a PDF
//! keep their own EXIF; PDF annotations keep their author (`/T`); the
//! PDF's `/ID` stays. The report says "scrubbed", not "anonymous": a
//! person still looks at what is shared.

use std::fs::{self, File};
use std::io::{self, BufReader, Cursor, Read, Seek, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use exif::{Context, In, Tag, Value};
use img_parts::Bytes;
use img_parts::jpeg::{Jpeg, JpegSegment, markers};
use img_parts::png::Png;
use img_parts::riff::{RiffChunk, RiffContent};
use img_parts::webp::WebP;
use lopdf::{Document, LoadOptions, Object};

use crate::Error;
use crate::fsutil;
use crate::workbench::{FileKind, Finding, MetadataReport, ScrubOutcome};

/// The largest file [`scrub_file`] reads into memory to rewrite.
pub const MAX_SCRUB_SIZE: u64 = 256 * 1024 * 1024;

/// Values in findings are cut to this many characters.
const MAX_VALUE_CHARS: usize = 200;

/// At most this many findings are listed per file (a crafted file could
/// carry millions of comments); past it, one more says there is more.
const MAX_FINDINGS: usize = 64;

/// At most this many XMP streams of a PDF are searched.
const MAX_PDF_XMP_STREAMS: usize = 16;

/// How many leading bytes [`scrub_file`] hands to [`sniff`].
const SNIFF_LEN: usize = 64;

/// The most a single PDF stream may decompress to while loading (lopdf's
/// own bound against decompression bombs; its default is 256 MiB).
const PDF_STREAM_LIMIT: usize = 64 * 1024 * 1024;

/// The most all Flate streams of one PDF may decompress to, together.
///
/// lopdf bounds each stream (`PDF_STREAM_LIMIT`, 64 MiB) but not their sum: a
/// 3.6 MB file of sixty object streams of 60 MiB each loads as 3.6 GiB of
/// objects. `pdf_inflate_budget` counts every stream before lopdf sees
/// the file; a quarter of the scrubbing child's default address space
/// (`crate::sandbox`) leaves room for lopdf's object tree over it.
pub const PDF_TOTAL_INFLATE_LIMIT: u64 = 256 * 1024 * 1024;

/// The most a compressed XMP stream in a PDF may decompress to when it is
/// searched for names and coordinates.
const XMP_LIMIT: usize = 1024 * 1024;

const HEIC_REASON: &str =
    "no maintained crate rewrites HEIC here; share a screenshot or convert it first";
pub(crate) const OTHER_REASON: &str = "type not recognised: shared as is only after a manual check";
const TOO_LARGE_REASON: &str = "too large to scrub here";
const PANIC_REASON: &str = "the file crashed a parser (damaged or hostile): no copy was made";

/// The kind of a file from its first bytes (magic numbers), never its name.
///
/// Sixteen bytes are enough for every kind; a HEIF `ftyp` box's
/// compatible brands are read as far as `head` goes.
pub fn sniff(head: &[u8]) -> FileKind {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        FileKind::Jpeg
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        FileKind::Png
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        FileKind::Webp
    } else if head.starts_with(b"%PDF-") {
        FileKind::Pdf
    } else if is_heif(head) {
        FileKind::Heic
    } else {
        FileKind::Other
    }
}

/// An ISO BMFF file whose `ftyp` box names a HEIF brand (HEIC, HEIF image
/// or sequence, AVIF), as major or compatible brand. MP4 and QuickTime
/// files have an `ftyp` box too, with other brands.
fn is_heif(head: &[u8]) -> bool {
    const BRANDS: [&[u8; 4]; 12] = [
        b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
        b"avif", b"avis",
    ];
    if head.len() < 12 || &head[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let end = size.clamp(12, head.len());
    let major = &head[8..12];
    // Compatible brands follow the major brand and a 4-byte minor version.
    let compatible = head.get(16..end).unwrap_or_default().chunks_exact(4);
    std::iter::once(major)
        .chain(compatible)
        .any(|brand| BRANDS.iter().any(|b| &b[..] == brand))
}

/// The extensions of names that [`copy_plain_text`] treats as plain text
/// when the content is text too. JSON is not among them: a `.json`
/// attachment is almost always an app's export (a chat history, a location
/// log), full of user ids, phone numbers and coordinates nobody reads, so
/// it stays flagged for a person to look at.
pub const TEXT_EXTENSIONS: [&str; 6] = ["txt", "text", "md", "markdown", "csv", "tsv"];

/// Whether the name of `path` has one of the [`TEXT_EXTENSIONS`] (any
/// case).
pub fn has_text_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| TEXT_EXTENSIONS.iter().any(|t| e.eq_ignore_ascii_case(t)))
}

/// A byte that plain text holds, in UTF-8 or any 8-bit code page
/// (Windows-1251, KOI8-R…): anything but the C0 control characters other
/// than tab, line feed, form feed and carriage return, and DEL.
fn text_byte(b: u8) -> bool {
    (b >= 0x20 || matches!(b, b'\t' | b'\n' | 0x0c | b'\r')) && b != 0x7f
}

/// Reads a file as plain text, chunk by chunk: UTF-16 when it starts with
/// a UTF-16 byte-order mark (as Windows Notepad's "Unicode" writes), else
/// bytes ([`text_byte`]).
#[derive(Debug)]
enum TextCheck {
    /// Fewer than two bytes seen.
    Start(Vec<u8>),
    /// UTF-8 or an 8-bit code page.
    Bytes,
    /// UTF-16; a byte of a unit split between two chunks waits in `carry`.
    Utf16 { big_endian: bool, carry: Option<u8> },
}

impl TextCheck {
    /// Whether `data`, the next chunk, can still be plain text.
    fn feed(&mut self, mut data: &[u8]) -> bool {
        if let TextCheck::Start(head) = self {
            let take = (2 - head.len()).min(data.len());
            head.extend_from_slice(&data[..take]);
            data = &data[take..];
            if head.len() < 2 {
                return true;
            }
            *self = match [head[0], head[1]] {
                [0xFF, 0xFE] => TextCheck::Utf16 {
                    big_endian: false,
                    carry: None,
                },
                [0xFE, 0xFF] => TextCheck::Utf16 {
                    big_endian: true,
                    carry: None,
                },
                pair if pair.iter().all(|&b| text_byte(b)) => TextCheck::Bytes,
                _ => return false,
            };
        }
        match self {
            TextCheck::Start(_) => true,
            TextCheck::Bytes => data.iter().all(|&b| text_byte(b)),
            TextCheck::Utf16 { big_endian, carry } => {
                let unit_ok = |pair: [u8; 2]| {
                    let unit = if *big_endian {
                        u16::from_be_bytes(pair)
                    } else {
                        u16::from_le_bytes(pair)
                    };
                    u8::try_from(unit).map_or(true, text_byte)
                };
                if let (Some(first), Some((&second, rest))) = (*carry, data.split_first()) {
                    if !unit_ok([first, second]) {
                        return false;
                    }
                    *carry = None;
                    data = rest;
                }
                let units = data.chunks_exact(2);
                let tail = units.remainder().first().copied();
                let ok = units.into_iter().all(|u| unit_ok([u[0], u[1]]));
                if tail.is_some() {
                    *carry = tail;
                }
                ok
            }
        }
    }

    /// Whether the whole file was plain text.
    fn finish(self) -> bool {
        match self {
            TextCheck::Start(head) => head.iter().all(|&b| text_byte(b)),
            TextCheck::Bytes => true,
            TextCheck::Utf16 { carry, .. } => carry.is_none(),
        }
    }
}

/// Copies `original` to `copy` (created new, `0600`; never overwritten)
/// byte for byte if it is plain text, and returns its report: kind
/// [`FileKind::Text`], no finding, [`ScrubOutcome::Scrubbed`]. Returns
/// `None`, and leaves no copy, when the content is not text.
///
/// Plain text has no metadata container: no EXIF, no document
/// information, nothing a viewer hides. What it says is all it holds, and
/// a person reads it before sharing, as with every file. So the copy for
/// sharing is the file itself, and nothing is flagged. The check is a loop
/// over bytes, with no parser, so it needs no scrubbing child.
///
/// Callers check the name first ([`has_text_name`]): a `.html`, `.svg` or
/// `.rtf` file is text too, but holds markup that a viewer hides (a
/// `<meta name="author">`, an RTF `\info` group).
pub fn copy_plain_text(original: &Path, copy: &Path) -> Result<Option<MetadataReport>, Error> {
    let read_err = |e| Error::io("read", original, e);
    let mut src = File::open(original).map_err(read_err)?;
    let mut out = fsutil::create_private_file(copy)?;
    let mut check = TextCheck::Start(Vec::with_capacity(2));
    let mut buf = zeroize::Zeroizing::new(vec![0u8; 64 * 1024]);
    let copied = (|| -> Result<bool, Error> {
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            if !check.feed(&buf[..n]) {
                return Ok(false);
            }
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write", copy, e))?;
        }
        if !check.finish() {
            return Ok(false);
        }
        out.sync_all().map_err(|e| Error::io("write", copy, e))?;
        Ok(true)
    })();
    drop(out);
    match copied {
        Ok(true) => Ok(Some(MetadataReport {
            kind: FileKind::Text,
            findings: Vec::new(),
            scrub: ScrubOutcome::Scrubbed,
        })),
        Ok(false) => {
            fs::remove_file(copy).map_err(|e| Error::io("remove", copy, e))?;
            Ok(None)
        }
        Err(e) => {
            // Best effort: the first error is the one to report.
            let _ = fs::remove_file(copy);
            Err(e)
        }
    }
}

/// Inspects `original` (read-only, never modified) and, where the type is supported, writes a
/// metadata-free copy to `scrubbed_out` (created new with mode 0600 on unix, never overwriting: error if it
/// exists). Returns what was found in the original and what was done. Errors only for I/O on the
/// output path; a damaged or hostile input is a `ScrubOutcome::Failed { reason }`, never a panic.
///
/// Reading the original can fail too (it is an I/O error, not a verdict on
/// its content): that is [`Error::Io`] with the original's path.
pub fn scrub_file(original: &Path, scrubbed_out: &Path) -> Result<MetadataReport, Error> {
    // Refuse before any work, whatever the type: an existing output is a
    // caller's mistake worth stopping on, not only when a copy is due.
    if fsutil::exists_no_follow(scrubbed_out)? {
        return Err(Error::AlreadyExists {
            path: scrubbed_out.into(),
        });
    }
    let read_err = |e| Error::io("read", original, e);
    let mut file = File::open(original).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    // Kinds that get no copy (videos, archives, HEIC…) are never read whole:
    // their EXIF, if any, is read as a stream, so a 1 GiB video costs a
    // buffer, not a gigabyte.
    let mut head = Vec::with_capacity(SNIFF_LEN);
    (&mut file)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    file.rewind().map_err(read_err)?;
    if sniff(&head) == FileKind::Other
        && has_text_name(original)
        && let Some(report) = copy_plain_text(original, scrubbed_out)?
    {
        return Ok(report);
    }
    if len > MAX_SCRUB_SIZE || matches!(sniff(&head), FileKind::Heic | FileKind::Other) {
        return too_large(file).map_err(read_err);
    }
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    (&mut file)
        .take(MAX_SCRUB_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() as u64 > MAX_SCRUB_SIZE {
        // It grew while we read it.
        drop(data);
        file.rewind().map_err(read_err)?;
        return too_large(file).map_err(read_err);
    }
    drop(file);
    let data = Bytes::from(data);
    let kind = sniff(&data[..data.len().min(SNIFF_LEN)]);

    if kind == FileKind::Pdf
        && let Err(reason) = pdf_inflate_budget(&data, PDF_TOTAL_INFLATE_LIMIT)
    {
        // Not parsed at all: neither the findings nor the copy.
        return Ok(MetadataReport {
            kind,
            findings: vec![Finding::Other {
                field: "unreadable".into(),
                value: reason.clone(),
            }],
            scrub: ScrubOutcome::Failed { reason },
        });
    }
    let findings = guarded(|| findings(kind, &data)).unwrap_or_else(|| {
        vec![Finding::Other {
            field: "unreadable".into(),
            value: "the metadata could not be read: the file crashed a parser".into(),
        }]
    });
    let copy = match kind {
        FileKind::Heic => Err(ScrubOutcome::Unsupported {
            reason: HEIC_REASON.into(),
        }),
        // `sniff` never says Text: only `copy_plain_text` does.
        FileKind::Text | FileKind::Other => Err(ScrubOutcome::Unsupported {
            reason: OTHER_REASON.into(),
        }),
        FileKind::Jpeg | FileKind::Png | FileKind::Webp | FileKind::Pdf => {
            guarded(|| scrub_bytes(kind, data))
                .unwrap_or_else(|| Err(PANIC_REASON.into()))
                .map_err(|reason| ScrubOutcome::Failed { reason })
        }
    };
    let scrub = match copy {
        Err(outcome) => outcome,
        Ok(copy) => write_and_verify(kind, copy, scrubbed_out)?,
    };
    Ok(MetadataReport {
        kind,
        findings,
        scrub,
    })
}

/// A scrubbed copy in memory, and what its check needs to know.
struct Copy {
    bytes: Vec<u8>,
    /// Pages of the original PDF (0 for images).
    pages: usize,
}

/// Writes `copy` to a new private file, reads it back and checks it; a
/// copy that fails the check is deleted.
fn write_and_verify(kind: FileKind, copy: Copy, out: &Path) -> Result<ScrubOutcome, Error> {
    let Copy { bytes, pages } = copy;
    let mut file = fsutil::create_private_file(out)?;
    if let Err(e) = file.write_all(&bytes).and_then(|()| file.sync_all()) {
        drop(file);
        // Best effort: the write error is the one to report.
        let _ = fs::remove_file(out);
        return Err(Error::io("write", out, e));
    }
    drop(file);
    drop(bytes);
    let written = fs::read(out).map_err(|e| Error::io("read back", out, e))?;
    let verdict = guarded(|| verify(kind, &written, pages)).unwrap_or_else(|| {
        Err("the check of the copy crashed a parser: the copy was deleted".into())
    });
    match verdict {
        Ok(()) => Ok(ScrubOutcome::Scrubbed),
        Err(reason) => {
            fs::remove_file(out).map_err(|e| Error::io("remove", out, e))?;
            Ok(ScrubOutcome::Failed { reason })
        }
    }
}

/// The verdict on a file above [`MAX_SCRUB_SIZE`], without reading it
/// whole: EXIF streamed from JPEG and HEIC (whose EXIF readers hold one
/// segment or a bounded item at a time), nothing else.
/// The report of a file that is not read whole: too large to scrub here, or
/// of a kind that gets no copy. EXIF is read as a stream.
fn too_large(file: File) -> io::Result<MetadataReport> {
    let mut reader = BufReader::new(file);
    let mut head = Vec::with_capacity(SNIFF_LEN);
    (&mut reader)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    let kind = sniff(&head);
    let mut findings = Vec::new();
    if matches!(kind, FileKind::Jpeg | FileKind::Heic | FileKind::Other) {
        reader.rewind()?;
        if let Some(exif) = guarded(move || read_exif(&mut reader)).flatten() {
            exif_findings(&exif, &mut findings);
        }
    }
    let scrub = match kind {
        FileKind::Heic => ScrubOutcome::Unsupported {
            reason: HEIC_REASON.into(),
        },
        FileKind::Text | FileKind::Other => ScrubOutcome::Unsupported {
            reason: OTHER_REASON.into(),
        },
        _ => ScrubOutcome::Failed {
            reason: TOO_LARGE_REASON.into(),
        },
    };
    Ok(MetadataReport {
        kind,
        findings,
        scrub,
    })
}

/// Runs a parser over hostile bytes, turning a panic into `None`.
///
/// The parsers (img-parts, kamadak-exif, lopdf) are meant not to panic on
/// any input, and this module validates what it can before calling them;
/// but they are large, and one panic on a crafted attachment would abort a
/// whole `reviewer open`. Nothing they touch outlives the call (the input
/// is shared read-only, their results are dropped), so unwinding out of
/// them cannot leave broken state behind, hence `AssertUnwindSafe`. The
/// default panic hook still prints the panic on standard error. This does
/// nothing in a build with `panic = "abort"`, which this workspace does not
/// use.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    panic::catch_unwind(AssertUnwindSafe(f)).ok()
}

// ---------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------

/// Everything identifying in an original, in a stable order: GPS, then
/// names, devices and the rest as met.
fn findings(kind: FileKind, data: &Bytes) -> Vec<Finding> {
    let mut found = Vec::new();
    match kind {
        FileKind::Jpeg => jpeg_findings(data, &mut found),
        FileKind::Png => {
            container_exif_findings(data, &mut found);
            png_findings(data, &mut found);
        }
        FileKind::Webp => {
            container_exif_findings(data, &mut found);
            for (id, body) in walk_webp(data).chunks {
                match &id {
                    b"XMP " => xmp_findings(body, &mut found),
                    // Some writers keep JPEG's "Exif\0\0" in front of the
                    // TIFF data, which kamadak-exif's WebP reader does not
                    // expect.
                    b"EXIF" if body.starts_with(b"Exif\0\0") => {
                        let raw = exif::Reader::new()
                            .continue_on_error(true)
                            .read_raw(body[6..].to_vec());
                        let exif = raw.or_else(|e| e.distill_partial_result(|_| ()));
                        if let Ok(exif) = exif {
                            exif_findings(&exif, &mut found);
                        }
                    }
                    _ => {}
                }
            }
        }
        // kamadak-exif reads HEIF containers, and TIFF (raw camera files
        // among them), which sniff calls Other.
        FileKind::Heic | FileKind::Other => container_exif_findings(data, &mut found),
        FileKind::Pdf => pdf_findings(data, &mut found),
        FileKind::Text => {}
    }
    // GPS first: it is what the report flags loudest.
    found.sort_by_key(|f| !matches!(f, Finding::Gps { .. }));
    if found.len() > MAX_FINDINGS {
        found.truncate(MAX_FINDINGS);
        found.push(other(
            "more",
            "more metadata than listed here: open the original with a metadata viewer",
        ));
    }
    found
}

/// Adds `finding` unless an equal one is there, up to one past
/// [`MAX_FINDINGS`] (which tells [`findings`] to say there is more).
fn push(found: &mut Vec<Finding>, finding: Finding) {
    if found.len() <= MAX_FINDINGS && !found.contains(&finding) {
        found.push(finding);
    }
}

fn other(field: &str, value: impl Into<String>) -> Finding {
    Finding::Other {
        field: field.into(),
        value: value.into(),
    }
}

/// Makes a value from the file safe to show: no control characters (so no
/// newlines or terminal escapes), no invisible direction overrides, trimmed,
/// at most [`MAX_VALUE_CHARS`] characters.
fn clean_value(raw: &str) -> String {
    let kept: String = raw
        .chars()
        .filter(|&c| !c.is_control() && !format::is_deceptive(c))
        .collect();
    let trimmed = kept.trim();
    if trimmed.chars().count() <= MAX_VALUE_CHARS {
        trimmed.to_owned()
    } else {
        let mut cut: String = trimmed.chars().take(MAX_VALUE_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// `needle` (not empty) occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn read_exif<R: io::BufRead + Seek>(reader: &mut R) -> Option<exif::Exif> {
    match exif::Reader::new()
        .continue_on_error(true)
        .read_from_container(reader)
    {
        Ok(exif) => Some(exif),
        Err(e) => e.distill_partial_result(|_| ()).ok(),
    }
}

/// EXIF as kamadak-exif finds it in a JPEG, PNG, WebP, HEIF or TIFF file.
fn container_exif_findings(data: &[u8], found: &mut Vec<Finding>) {
    if let Some(exif) = read_exif(&mut Cursor::new(data)) {
        exif_findings(&exif, found);
    }
}

/// Windows' XPAuthor (UTF-16LE bytes), which kamadak-exif does not name.
const XP_AUTHOR: Tag = Tag(Context::Tiff, 0x9C9D);

fn exif_findings(exif: &exif::Exif, found: &mut Vec<Finding>) {
    if let Some(gps) = exif_gps(exif) {
        push(found, gps);
    }
    for field in exif.fields() {
        let finding = |make: fn(String) -> Finding| exif_text(&field.value).map(make);
        let finding = match field.tag {
            Tag::Artist | Tag::Copyright => finding(|value| Finding::Author { value }),
            XP_AUTHOR => utf16le(&field.value).map(|value| Finding::Author { value }),
            Tag::Make => finding(|v| device("make", v)),
            Tag::Model => finding(|v| device("model", v)),
            Tag::BodySerialNumber => finding(|v| device("serial", v)),
            Tag::LensSerialNumber => finding(|v| device("lens_serial", v)),
            Tag::CameraOwnerName => finding(|v| device("owner", v)),
            Tag::Software => finding(|v| other("software", v)),
            _ => None,
        };
        if let Some(finding) = finding {
            push(found, finding);
        }
    }
}

fn device(field: &str, value: String) -> Finding {
    Finding::Device {
        field: field.into(),
        value,
    }
}

/// A text field's value, cleaned; `None` when blank.
fn exif_text(value: &Value) -> Option<String> {
    let raw = match value {
        Value::Ascii(parts) => parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
            .join("; "),
        Value::Undefined(bytes, _) | Value::Byte(bytes) => String::from_utf8_lossy(bytes).into(),
        _ => return None,
    };
    Some(clean_value(
        raw.trim_matches(|c: char| c == ';' || c.is_whitespace()),
    ))
    .filter(|v| !v.is_empty())
}

fn utf16le(value: &Value) -> Option<String> {
    let (Value::Byte(bytes) | Value::Undefined(bytes, _)) = value else {
        return None;
    };
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(clean_value(&String::from_utf16_lossy(&units))).filter(|v| !v.is_empty())
}

/// GPS coordinates when the GPS IFD holds any tag beyond its version;
/// `None` coordinates when they cannot be read.
fn exif_gps(exif: &exif::Exif) -> Option<Finding> {
    let any = exif
        .fields()
        .any(|f| f.tag.context() == Context::Gps && f.tag != Tag::GPSVersionID);
    if !any {
        return None;
    }
    Some(Finding::Gps {
        latitude: coordinate(
            exif,
            Tag::GPSLatitude,
            Tag::GPSLatitudeRef,
            b'N',
            b'S',
            90.0,
        ),
        longitude: coordinate(
            exif,
            Tag::GPSLongitude,
            Tag::GPSLongitudeRef,
            b'E',
            b'W',
            180.0,
        ),
    })
}

/// One coordinate in decimal degrees, from degrees, minutes and seconds
/// (as rationals) and a hemisphere letter. Without the letter the sign is
/// unknown, so the coordinate is unreadable.
fn coordinate(
    exif: &exif::Exif,
    tag: Tag,
    reference: Tag,
    positive: u8,
    negative: u8,
    max: f64,
) -> Option<f64> {
    let Value::Rational(parts) = &exif.get_field(tag, In::PRIMARY)?.value else {
        return None;
    };
    let sign = match &exif.get_field(reference, In::PRIMARY)?.value {
        Value::Ascii(v) => match v.first().and_then(|s| s.first()) {
            Some(&c) if c == positive => 1.0,
            Some(&c) if c == negative => -1.0,
            _ => return None,
        },
        _ => return None,
    };
    dms_to_degrees(parts.iter().map(|r| (r.num, r.denom)))
        .filter(|d| *d <= max)
        .map(|d| sign * d)
}

/// Degrees from up to three (numerator, denominator) parts: degrees,
/// minutes, seconds.
fn dms_to_degrees(parts: impl ExactSizeIterator<Item = (u32, u32)>) -> Option<f64> {
    if parts.len() == 0 || parts.len() > 3 {
        return None;
    }
    let mut degrees = 0.0;
    for ((num, denom), scale) in parts.zip([1.0, 60.0, 3600.0]) {
        if denom == 0 {
            return None;
        }
        degrees += f64::from(num) / f64::from(denom) / scale;
    }
    Some(degrees).filter(|d| d.is_finite())
}

/// An XMP packet, searched (not parsed) for what matters most.
fn xmp_findings(packet: &[u8], found: &mut Vec<Finding>) {
    let mut notes = vec!["XMP packet present"];
    if contains(packet, b"dc:creator") || contains(packet, b"tiff:Artist") {
        notes.push("it names a creator (dc:creator)");
    }
    let gps = contains(packet, b"GPSLatitude") || contains(packet, b"GPSLongitude");
    if gps {
        notes.push("it holds GPS coordinates (exif:GPS…)");
    }
    push(found, other("xmp", notes.join("; ")));
    if gps && !found.iter().any(|f| matches!(f, Finding::Gps { .. })) {
        push(
            found,
            Finding::Gps {
                latitude: None,
                longitude: None,
            },
        );
    }
}

const XMP_JPEG_ID: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const XMP_EXTENSION_ID: &[u8] = b"http://ns.adobe.com/xmp/extension/\0";

fn jpeg_findings(data: &[u8], found: &mut Vec<Finding>) {
    container_exif_findings(data, found);
    let walk = walk_jpeg(data);
    for part in &walk.parts {
        match part.marker {
            markers::APP1
                if part.contents.starts_with(XMP_JPEG_ID)
                    || part.contents.starts_with(XMP_EXTENSION_ID) =>
            {
                xmp_findings(part.contents, found);
            }
            markers::APP13 => push(found, other("iptc", "IPTC/Photoshop block present")),
            markers::COM => {
                let text = clean_value(&String::from_utf8_lossy(part.contents));
                if !text.is_empty() {
                    push(found, other("comment", text));
                }
            }
            _ => {}
        }
    }
    if let Some(end) = walk.end {
        let trailer = &data[end..];
        // Padding is common and harmless; anything else is worth a look.
        if trailer.iter().any(|&b| b != 0 && !b.is_ascii_whitespace()) {
            push(
                found,
                other(
                    "trailing_data",
                    format!(
                        "{} bytes after the end of the image (often another picture, with its own metadata)",
                        trailer.len()
                    ),
                ),
            );
            // Phones append a second JPEG (depth map, preview): read its EXIF too.
            if trailer.starts_with(&[0xFF, 0xD8, 0xFF]) {
                container_exif_findings(trailer, found);
            }
        }
    }
}

fn png_findings(data: &[u8], found: &mut Vec<Finding>) {
    // As far as the file reads: a truncated PNG still shows its text.
    for (kind, body) in walk_png(data).chunks {
        let text = match &kind {
            b"tEXt" => png_text(body, false),
            b"zTXt" => png_text(body, true),
            b"iTXt" => png_itxt(body),
            _ => None,
        };
        let Some((keyword, value)) = text else {
            continue;
        };
        let value = value
            .map(|v| clean_value(&v))
            .unwrap_or_else(|| "(compressed: open the original to read it)".into());
        let keyword = clean_value(&keyword);
        match keyword.as_str() {
            "XML:com.adobe.xmp" => match xmp_packet(&kind, body) {
                Some(packet) => xmp_findings(packet, found),
                None => push(found, other("xmp", "XMP packet present (compressed)")),
            },
            "Author" | "Copyright" if !value.is_empty() => push(found, Finding::Author { value }),
            "Software" if !value.is_empty() => push(found, other("software", value)),
            _ => push(
                found,
                other("text", clean_value(&format!("{keyword}: {value}"))),
            ),
        }
    }
}

/// The packet of an XMP text chunk (`iTXt` as the XMP spec says, or
/// `tEXt` as some tools write), unless it is compressed.
fn xmp_packet<'a>(kind: &[u8; 4], body: &'a [u8]) -> Option<&'a [u8]> {
    match kind {
        b"iTXt" => png_itxt_raw(body),
        b"tEXt" => body
            .iter()
            .position(|&b| b == 0)
            .map(|nul| &body[nul + 1..]),
        _ => None,
    }
}

/// A `tEXt` or `zTXt` chunk's keyword and (uncompressed) text, both Latin-1.
fn png_text(body: &[u8], compressed: bool) -> Option<(String, Option<String>)> {
    let nul = body.iter().position(|&b| b == 0)?;
    let latin1 = |b: &[u8]| b.iter().map(|&c| char::from(c)).collect::<String>();
    let value = (!compressed).then(|| latin1(&body[nul + 1..]));
    Some((latin1(&body[..nul]), value))
}

/// An `iTXt` chunk's keyword and text (UTF-8), `None` text when compressed.
fn png_itxt(body: &[u8]) -> Option<(String, Option<String>)> {
    let nul = body.iter().position(|&b| b == 0)?;
    let keyword = String::from_utf8_lossy(&body[..nul]).into_owned();
    let text = png_itxt_raw(body).map(|t| String::from_utf8_lossy(t).into_owned());
    Some((keyword, text))
}

/// The text bytes of an uncompressed `iTXt` chunk.
fn png_itxt_raw(body: &[u8]) -> Option<&[u8]> {
    // keyword \0 flag method language \0 translated keyword \0 text
    let nul = body.iter().position(|&b| b == 0)?;
    let rest = body.get(nul + 1..)?;
    let (&flag, rest) = rest.split_first()?;
    if flag != 0 {
        return None;
    }
    let rest = rest.get(1..)?;
    let lang_end = rest.iter().position(|&b| b == 0)?;
    let rest = &rest[lang_end + 1..];
    let tr_end = rest.iter().position(|&b| b == 0)?;
    Some(&rest[tr_end + 1..])
}

fn load_pdf(data: &[u8], strict: bool) -> Result<Document, lopdf::Error> {
    Document::load_mem_with_options(
        data,
        LoadOptions {
            strict,
            max_decompressed_size: Some(PDF_STREAM_LIMIT),
            ..LoadOptions::default()
        },
    )
}

fn pdf_findings(data: &[u8], found: &mut Vec<Finding>) {
    let Ok(doc) = load_pdf(data, false) else {
        return;
    };
    let info = doc
        .trailer
        .get(b"Info")
        .and_then(|o| doc.dereference(o))
        .and_then(|(_, o)| o.as_dict());
    if let Ok(info) = info {
        let text = |key: &[u8]| {
            let obj = info.get(key).and_then(|o| doc.dereference(o)).ok()?.1;
            let raw = lopdf::decode_text_string(obj)
                .ok()
                .or_else(|| obj.as_str().ok().map(|s| String::from_utf8_lossy(s).into()))?;
            Some(clean_value(&raw)).filter(|v| !v.is_empty())
        };
        if let Some(value) = text(b"Author") {
            push(found, Finding::Author { value });
        }
        if let Some(value) = text(b"Creator") {
            push(found, other("creator", value));
        }
        if let Some(value) = text(b"Producer") {
            push(found, other("producer", value));
        }
    }
    let xmp_streams = doc.objects.values().filter_map(|object| match object {
        Object::Stream(stream) if stream.dict.has_type(b"Metadata") => Some(stream),
        _ => None,
    });
    for stream in xmp_streams.take(MAX_PDF_XMP_STREAMS) {
        if !stream.dict.has(b"Filter") {
            xmp_findings(&stream.content, found);
        } else if let Ok(packet) = stream.decompressed_content_with_limit(XMP_LIMIT) {
            xmp_findings(&packet, found);
        } else {
            push(found, other("xmp", "XMP packet present (compressed)"));
        }
    }
    // Photos inside a PDF keep their own metadata: the scrubbed copy
    // removes the document's, not theirs. Say so, so the reviewer checks
    // them (or shares a rendering) before publishing.
    let images = doc
        .objects
        .values()
        .filter(|object| match object {
            Object::Stream(stream) => stream
                .dict
                .get(b"Subtype")
                .and_then(Object::as_name)
                .is_ok_and(|n| n == b"Image"),
            _ => false,
        })
        .count();
    if images > 0 {
        push(
            found,
            other(
                "embedded_images",
                format!(
                    "{images} image(s) inside the PDF; their own metadata (EXIF, GPS) is not read and is kept in the scrubbed copy"
                ),
            ),
        );
    }
}

// ---------------------------------------------------------------------------
// Scrubbing
// ---------------------------------------------------------------------------

/// The metadata-free bytes of a JPEG, PNG, WebP or PDF, or why not.
fn scrub_bytes(kind: FileKind, data: Bytes) -> Result<Copy, String> {
    let image = |bytes| Copy { bytes, pages: 0 };
    match kind {
        FileKind::Jpeg => scrub_jpeg(data).map(image),
        FileKind::Png => scrub_png(data).map(image),
        FileKind::Webp => scrub_webp(data).map(image),
        FileKind::Pdf => scrub_pdf(&data),
        FileKind::Heic | FileKind::Text | FileKind::Other => {
            Err("not a type this scrubber rewrites".into())
        }
    }
}

/// Tables and frame headers: image data, never metadata.
fn is_table_or_frame(marker: u8) -> bool {
    matches!(
        marker,
        markers::DQT
            | markers::DHT
            | markers::DAC
            | markers::DRI
            | markers::DNL
            | markers::SOF0..=markers::SOF3
            | markers::SOF5..=markers::SOF7
            | markers::SOF9..=markers::SOF11
            | markers::SOF13..=markers::SOF15
    )
}

/// A JFIF APP0 with its thumbnail (a small copy of the picture, possibly
/// before cropping) removed: identifier, version, units, density, 0×0.
fn canonical_jfif(contents: &[u8]) -> Option<Bytes> {
    if contents.len() < 14 || !contents.starts_with(b"JFIF\0") {
        return None;
    }
    let mut out = contents[..12].to_vec();
    out.extend_from_slice(&[0, 0]);
    Some(out.into())
}

/// An Adobe APP14 rebuilt from its colour-transform byte alone. It is kept
/// (unlike every other APPn) because decoders need the transform to show a
/// CMYK or non-YCbCr JPEG in the right colours; a fixed 12-byte layout
/// leaves no room for anything else.
fn canonical_adobe(contents: &[u8]) -> Option<Bytes> {
    if contents.len() != 12 || !contents.starts_with(b"Adobe") {
        return None;
    }
    let mut out = b"Adobe\x00\x64\x00\x00\x00\x00".to_vec();
    out.push(contents[11]);
    Some(out.into())
}

fn scrub_jpeg(data: Bytes) -> Result<Vec<u8>, String> {
    let mut jpeg = Jpeg::from_bytes(data).map_err(|e| format!("not a readable JPEG ({e})"))?;
    let mut kept = Vec::with_capacity(jpeg.segments().len());
    let mut jfif_seen = false;
    for segment in jpeg.segments() {
        let marker = segment.marker();
        let contents = segment.contents();
        if marker == markers::SOS {
            // img-parts keeps everything after the first scan header as
            // "entropy": the scan, later scans of a progressive JPEG with
            // their tables (and any COM/APPn between them), EOI, and
            // whatever follows EOI. Clean it with the same rules.
            let encoded = segment.clone().encoder().bytes();
            let entropy = encoded.get(segment.len()..).unwrap_or_default();
            let clean = clean_scans(entropy)?;
            kept.push(JpegSegment::new_with_entropy(
                markers::SOS,
                contents.clone(),
                clean.into(),
            ));
        } else if marker == markers::APP0 && !jfif_seen {
            if let Some(jfif) = canonical_jfif(contents) {
                jfif_seen = true;
                kept.push(JpegSegment::new_with_contents(marker, jfif));
            }
        } else if marker == markers::APP14 {
            if let Some(adobe) = canonical_adobe(contents) {
                kept.push(JpegSegment::new_with_contents(marker, adobe));
            }
        } else if is_table_or_frame(marker) {
            kept.push(segment.clone());
        }
        // Everything else (APP1–APP13, APP15, COM, JPGn, …) is dropped.
    }
    if !kept.iter().any(JpegSegment::has_entropy) {
        return Err("no image data (the JPEG has no scan)".into());
    }
    *jpeg.segments_mut() = kept;
    Ok(jpeg.encoder().bytes().to_vec())
}

/// The bytes after the first scan header with every marker segment that is
/// not a table, frame or scan header removed, cut right after EOI (so
/// appended pictures and data go too). A scan without EOI is a truncated
/// file: refused.
fn clean_scans(e: &[u8]) -> Result<Vec<u8>, String> {
    const TRUNCATED: &str = "truncated JPEG (no end-of-image marker)";
    let mut out = Vec::with_capacity(e.len());
    let mut start = 0;
    let mut i = 0;
    loop {
        let p = i + e
            .get(i..)
            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
            .ok_or(TRUNCATED)?;
        let mut q = p + 1;
        while e.get(q) == Some(&0xFF) {
            q += 1;
        }
        let marker = *e.get(q).ok_or(TRUNCATED)?;
        match marker {
            // A stuffed 0xFF in entropy-coded data, or a restart marker.
            0x00 | markers::RST0..=markers::RST7 => i = q + 1,
            markers::EOI => {
                out.extend_from_slice(&e[start..=q]);
                return Ok(out);
            }
            markers::SOI | 0x01 => {
                return Err("damaged JPEG (unexpected marker in image data)".into());
            }
            _ => {
                let len = e.get(q + 1..q + 3).ok_or(TRUNCATED)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len < 2 {
                    return Err("damaged JPEG (bad segment length)".into());
                }
                let end = q + 1 + len;
                if end > e.len() {
                    return Err(TRUNCATED.into());
                }
                if !(is_table_or_frame(marker) || marker == markers::SOS) {
                    out.extend_from_slice(&e[start..p]);
                    start = end;
                }
                i = end;
            }
        }
    }
}

/// PNG chunks that carry pixels, colour, transparency, physical size or
/// animation, and never text or times.
const PNG_KEEP: [&[u8; 4]; 19] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB",
    b"cICP", b"mDCV", b"cLLI", b"bKGD", b"hIST", b"pHYs", b"acTL", b"fcTL", b"fdAT",
];

fn png_keeps(kind: &[u8; 4]) -> bool {
    PNG_KEEP.contains(&kind)
}

fn scrub_png(data: Bytes) -> Result<Vec<u8>, String> {
    let mut png = Png::from_bytes(data).map_err(|e| format!("not a readable PNG ({e})"))?;
    let kinds: Vec<[u8; 4]> = png.chunks().iter().map(|c| c.kind()).collect();
    if kinds.first() != Some(b"IHDR") || kinds.last() != Some(b"IEND") {
        return Err("truncated or damaged PNG (IHDR or IEND missing)".into());
    }
    if !kinds.contains(b"IDAT") {
        return Err("damaged PNG (no image data)".into());
    }
    // A critical chunk (upper-case first letter) this list does not know
    // makes every decoder refuse the file: it is not a PNG we can vouch for.
    if kinds
        .iter()
        .any(|k| k[0].is_ascii_uppercase() && !png_keeps(k))
    {
        return Err("PNG with an unknown critical chunk: not rewritten".into());
    }
    png.chunks_mut().retain(|c| png_keeps(&c.kind()));
    Ok(png.encoder().bytes().to_vec())
}

/// WebP chunks that carry the picture, its alpha, animation or colour
/// profile.
const WEBP_KEEP: [&[u8; 4]; 7] = [
    b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP",
];

/// VP8X flag bits (first byte) that announce EXIF and XMP chunks.
const VP8X_EXIF: u8 = 0x08;
const VP8X_XMP: u8 = 0x04;

fn scrub_webp(data: Bytes) -> Result<Vec<u8>, String> {
    let mut webp = WebP::from_bytes(data).map_err(|e| format!("not a readable WebP ({e})"))?;
    let chunks = webp.chunks_mut();
    if !chunks
        .iter()
        .any(|c| matches!(&c.id(), b"VP8 " | b"VP8L" | b"ANMF"))
    {
        return Err("damaged WebP (no image data)".into());
    }
    chunks.retain(|c| WEBP_KEEP.contains(&&c.id()));
    for chunk in chunks.iter_mut() {
        if &chunk.id() != b"VP8X" {
            continue;
        }
        let Some(data) = chunk.content().data() else {
            return Err("damaged WebP (bad VP8X chunk)".into());
        };
        if data.len() < 10 {
            return Err("damaged WebP (short VP8X chunk)".into());
        }
        // The flags must not announce chunks that are gone.
        let mut flags = data.to_vec();
        flags[0] &= !(VP8X_EXIF | VP8X_XMP);
        *chunk = RiffChunk::new(*b"VP8X", RiffContent::Data(flags.into()));
    }
    Ok(webp.encoder().bytes().to_vec())
}

/// Refuses a PDF whose Flate streams decompress to more than `budget`
/// bytes in all, counted without keeping any of it (each stream is
/// inflated into a sink, and no further than the budget left).
///
/// Every `stream` keyword is tried as the start of a zlib stream (ISO
/// 32000-1 §7.3.8: `stream` then an end of line, then the data), whatever
/// its dictionary says, so that a dictionary written to mislead (escaped
/// names, indirect `/Filter`) cannot hide one. A stream that is not zlib
/// fails at its first bytes and counts nothing. Other filters (LZW,
/// RunLength) are left to the child's address-space limit.
pub(crate) fn pdf_inflate_budget(data: &[u8], budget: u64) -> Result<u64, String> {
    const KEYWORD: &[u8] = b"stream";
    let mut total = 0u64;
    let mut pos = 0;
    while let Some(i) = data[pos..]
        .windows(KEYWORD.len())
        .position(|w| w == KEYWORD)
    {
        let at = pos + i;
        pos = at + KEYWORD.len();
        if at >= 3 && &data[at - 3..at] == b"end" {
            continue;
        }
        let mut start = pos;
        if data.get(start) == Some(&b'\r') {
            start += 1;
        }
        if data.get(start) == Some(&b'\n') {
            start += 1;
        }
        let left = budget - total;
        let mut decoder = flate2::read::ZlibDecoder::new(&data[start..]);
        let mut counted = (&mut decoder).take(left + 1);
        // A damaged stream counts what it gave before the damage: what
        // was taken from the limit, error or not.
        let _ = io::copy(&mut counted, &mut io::sink());
        let n = left + 1 - counted.limit();
        total = total.saturating_add(n);
        if total > budget {
            return Err(format!(
                "its compressed streams expand to more than {} MiB (a decompression bomb, or a very large PDF): not parsed",
                budget / (1024 * 1024)
            ));
        }
    }
    Ok(total)
}

fn scrub_pdf(data: &[u8]) -> Result<Copy, String> {
    let mut doc = load_pdf(data, false).map_err(|e| format!("not a readable PDF ({e})"))?;
    if doc.trailer.has(b"Encrypt") {
        return Err(
            "encrypted PDF: it cannot be rewritten here; print it to a new PDF on the offline machine instead"
                .into(),
        );
    }
    // lopdf rebuilds an unreadable cross-reference table by scanning for
    // objects; the result "may miss objects or take them from an older
    // revision". A copy that silently differs from the original is worse
    // than none.
    if doc.xref_recovery == Some(lopdf::xref::XrefRecovery::Reconstructed) {
        return Err("damaged PDF (its cross-reference table is unreadable): not rewritten".into());
    }
    let pages = doc.get_pages().len();
    if pages == 0 {
        return Err("damaged PDF (no pages found)".into());
    }
    doc.trailer.remove(b"Info");
    for object in doc.objects.values_mut() {
        let dict = match object {
            Object::Dictionary(dict) => dict,
            Object::Stream(stream) => &mut stream.dict,
            _ => continue,
        };
        // XMP streams hang off the catalog, pages, images and fonts;
        // PieceInfo holds an application's private data.
        dict.remove(b"Metadata");
        dict.remove(b"PieceInfo");
    }
    // The old /Info, the XMP streams and objects of earlier revisions are
    // now unreferenced: drop them so they are not written.
    doc.prune_objects();
    let mut bytes = Vec::with_capacity(data.len());
    doc.save_to(&mut bytes)
        .map_err(|e| format!("the PDF could not be rewritten ({e})"))?;
    Ok(Copy { bytes, pages })
}

// ---------------------------------------------------------------------------
// Checking a copy
// ---------------------------------------------------------------------------

/// Checks a written copy with parsers other than the one that wrote it.
fn verify(kind: FileKind, data: &[u8], pages: usize) -> Result<(), String> {
    match kind {
        FileKind::Jpeg => verify_jpeg(data)?,
        FileKind::Png => verify_png(data)?,
        FileKind::Webp => verify_webp(data)?,
        FileKind::Pdf => return verify_pdf(data, pages),
        FileKind::Heic | FileKind::Text | FileKind::Other => {
            return Err("no copy is made of this type".into());
        }
    }
    no_exif(data)?;
    if contains(data, b"<x:xmpmeta") || contains(data, b"<?xpacket") {
        return Err("an XMP packet is still in the copy".into());
    }
    Ok(())
}

/// kamadak-exif finds no EXIF (and can read the container).
fn no_exif(data: &[u8]) -> Result<(), String> {
    match exif::Reader::new().read_from_container(&mut Cursor::new(data)) {
        Err(exif::Error::NotFound(_)) => Ok(()),
        Ok(_) | Err(exif::Error::PartialResult(_)) => Err("EXIF is still in the copy".into()),
        Err(e) => Err(format!("the copy could not be checked for EXIF ({e})")),
    }
}

fn verify_jpeg(data: &[u8]) -> Result<(), String> {
    let walk = walk_jpeg(data);
    if let Some(error) = walk.error {
        return Err(format!("the copy is not a sound JPEG ({error})"));
    }
    if walk.end != Some(data.len()) {
        return Err("the copy has data after its end-of-image marker".into());
    }
    if !walk.parts.iter().any(|p| p.marker == markers::SOS) {
        return Err("the copy has no image data".into());
    }
    for part in &walk.parts {
        let ok = match part.marker {
            markers::APP0 => part.contents.len() == 14 && part.contents.starts_with(b"JFIF\0"),
            markers::APP14 => part.contents.len() == 12 && part.contents.starts_with(b"Adobe"),
            markers::SOS => true,
            m => is_table_or_frame(m),
        };
        if !ok {
            return Err(format!("marker {:#04x} is still in the copy", part.marker));
        }
    }
    Ok(())
}

fn verify_png(data: &[u8]) -> Result<(), String> {
    let walk = walk_png(data)
        .complete()
        .map_err(|e| format!("the copy is not a sound PNG ({e})"))?;
    if walk.trailing != 0 {
        return Err("the copy has data after IEND".into());
    }
    if walk.chunks.first().map(|c| &c.0) != Some(b"IHDR") {
        return Err("the copy does not start with IHDR".into());
    }
    match walk.chunks.iter().find(|(kind, _)| !png_keeps(kind)) {
        Some((kind, _)) => Err(format!(
            "chunk {} is still in the copy",
            String::from_utf8_lossy(kind)
        )),
        None => Ok(()),
    }
}

fn verify_webp(data: &[u8]) -> Result<(), String> {
    let walk = walk_webp(data)
        .complete()
        .map_err(|e| format!("the copy is not a sound WebP ({e})"))?;
    if walk.trailing != 0 {
        return Err("the copy has data after its RIFF chunk".into());
    }
    for (id, body) in &walk.chunks {
        if !WEBP_KEEP.contains(&id) {
            return Err(format!(
                "chunk {} is still in the copy",
                String::from_utf8_lossy(id)
            ));
        }
        if id == b"VP8X" && body.first().is_none_or(|f| f & (VP8X_EXIF | VP8X_XMP) != 0) {
            return Err("the copy's VP8X flags still announce EXIF or XMP".into());
        }
    }
    Ok(())
}

fn verify_pdf(data: &[u8], pages: usize) -> Result<(), String> {
    // Strict: the copy was written by lopdf and must read back without
    // any of the repairs lenient loading would make.
    let doc = load_pdf(data, true).map_err(|e| format!("the copy does not load as a PDF ({e})"))?;
    if doc.trailer.has(b"Info") {
        return Err("the copy still has an /Info dictionary".into());
    }
    for object in doc.objects.values() {
        let dict = match object {
            Object::Dictionary(dict) => dict,
            Object::Stream(stream) => &stream.dict,
            _ => continue,
        };
        if dict.has(b"Metadata") || dict.has_type(b"Metadata") || dict.has(b"PieceInfo") {
            return Err("the copy still has a /Metadata stream".into());
        }
        if dict.has(b"Author") || dict.has(b"Producer") {
            return Err("the copy still has document information (/Author, /Producer)".into());
        }
    }
    if doc.get_pages().len() != pages {
        return Err("the copy does not have the original's pages".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Container walks of our own, for findings and checks (independent of
// img-parts, which writes the copies)
// ---------------------------------------------------------------------------

/// One marker segment of a JPEG.
struct JpegPart<'a> {
    marker: u8,
    contents: &'a [u8],
}

/// The marker segments of a JPEG, scans included, as far as they read.
struct JpegWalk<'a> {
    parts: Vec<JpegPart<'a>>,
    /// Just past EOI, when it was reached.
    end: Option<usize>,
    /// Why the walk stopped before EOI.
    error: Option<&'static str>,
}

fn walk_jpeg(data: &[u8]) -> JpegWalk<'_> {
    let mut walk = JpegWalk {
        parts: Vec::new(),
        end: None,
        error: None,
    };
    if !data.starts_with(&[0xFF, markers::SOI]) {
        walk.error = Some("no start-of-image marker");
        return walk;
    }
    let mut i = 2;
    loop {
        let Some(offset) = data[i..].iter().position(|&b| b == 0xFF) else {
            walk.error = Some("no end-of-image marker");
            return walk;
        };
        let p = i + offset;
        let mut q = p + 1;
        while data.get(q) == Some(&0xFF) {
            q += 1;
        }
        let Some(&marker) = data.get(q) else {
            walk.error = Some("no end-of-image marker");
            return walk;
        };
        match marker {
            0x00 | 0x01 | markers::RST0..=markers::RST7 => {
                i = q + 1;
                continue;
            }
            markers::EOI => {
                walk.end = Some(q + 1);
                return walk;
            }
            markers::SOI => {
                walk.error = Some("unexpected start-of-image marker");
                return walk;
            }
            _ => {}
        }
        let Some(len) = data.get(q + 1..q + 3) else {
            walk.error = Some("truncated segment");
            return walk;
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let Some(contents) = len.checked_sub(2).and_then(|n| data.get(q + 3..q + 3 + n)) else {
            walk.error = Some("truncated segment");
            return walk;
        };
        walk.parts.push(JpegPart { marker, contents });
        i = q + 1 + len;
    }
}

/// Chunks of a PNG or WebP file, in order, as far as they read.
struct ChunkWalk<'a> {
    chunks: Vec<([u8; 4], &'a [u8])>,
    /// Bytes after the end (IEND, or the RIFF chunk).
    trailing: usize,
    /// Why the walk stopped before the end.
    error: Option<&'static str>,
}

impl<'a> ChunkWalk<'a> {
    fn failed(chunks: Vec<([u8; 4], &'a [u8])>, error: &'static str) -> Self {
        ChunkWalk {
            chunks,
            trailing: 0,
            error: Some(error),
        }
    }

    /// The chunks, if the walk reached the end.
    fn complete(self) -> Result<Self, &'static str> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

fn walk_png(data: &[u8]) -> ChunkWalk<'_> {
    let mut chunks = Vec::new();
    let Some(mut rest) = data.strip_prefix(b"\x89PNG\r\n\x1a\n") else {
        return ChunkWalk::failed(chunks, "no PNG signature");
    };
    loop {
        let Some(header) = rest.get(..8) else {
            return ChunkWalk::failed(chunks, "truncated before IEND");
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = [header[4], header[5], header[6], header[7]];
        // Length, type, body, then a 4-byte CRC.
        let Some(end) = len.checked_add(12).filter(|&end| end <= rest.len()) else {
            return ChunkWalk::failed(chunks, "truncated chunk");
        };
        chunks.push((kind, &rest[8..end - 4]));
        rest = &rest[end..];
        if &kind == b"IEND" {
            return ChunkWalk {
                chunks,
                trailing: rest.len(),
                error: None,
            };
        }
    }
}

fn walk_webp(data: &[u8]) -> ChunkWalk<'_> {
    let mut chunks = Vec::new();
    if data.len() < 12 || &data[..4] != b"RIFF" || &data[8..12] != b"WEBP" {
        return ChunkWalk::failed(chunks, "no RIFF/WEBP header");
    }
    let size = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
    let (end, mut error) = match size.checked_add(8).filter(|&e| e <= data.len()) {
        Some(end) => (end, None),
        // Read what is there (for findings); the walk still fails.
        None => (data.len(), Some("truncated RIFF")),
    };
    let mut rest = data.get(12..end).unwrap_or_default();
    while !rest.is_empty() {
        let Some(header) = rest.get(..8) else {
            return ChunkWalk::failed(chunks, "truncated chunk header");
        };
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let id = [header[0], header[1], header[2], header[3]];
        let Some(body_end) = len.checked_add(8).filter(|&e| e <= rest.len()) else {
            return ChunkWalk::failed(chunks, "truncated chunk");
        };
        chunks.push((id, &rest[8..body_end]));
        // Odd sizes are padded to even.
        rest = rest.get(body_end + len % 2..).unwrap_or_default();
    }
    if end < 12 {
        error = Some("RIFF size too small");
    }
    ChunkWalk {
        chunks,
        trailing: data.len() - end,
        error,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_checks_hold_across_chunks() {
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("Қазақ тілі\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        for (bytes, text) in [
            (&b"plain"[..], true),
            ("Қазақ тілі".as_bytes(), true),
            (&utf16[..], true),
            (&utf16[..utf16.len() - 1], false),
            (b"a\0b", false),
            (b"\x01", false),
            (b"", true),
        ] {
            // Every split into chunks of 1, 2, 3 and 7 bytes agrees.
            for size in [1, 2, 3, 7, 4096] {
                let mut check = TextCheck::Start(Vec::new());
                let fed = bytes.chunks(size).all(|c| check.feed(c));
                assert_eq!(fed && check.finish(), text, "{bytes:?} in chunks of {size}");
            }
        }
    }

    #[test]
    fn text_names_are_the_listed_extensions() {
        for (name, text) in [
            ("a.txt", true),
            ("a.Md", true),
            ("01-notes.CSV", true),
            ("a.tsv", true),
            ("a.json", false),
            ("a.html", false),
            ("txt", false),
            ("a.txt.exe", false),
        ] {
            assert_eq!(has_text_name(Path::new(name)), text, "{name}");
        }
    }

    #[test]
    fn sniff_reads_magic_numbers_only() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF"), FileKind::Jpeg);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), FileKind::Png);
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 "), FileKind::Webp);
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), FileKind::Other);
        assert_eq!(sniff(b"%PDF-1.7\n"), FileKind::Pdf);
        assert_eq!(sniff(b"\0\0\0\x1cftypheic\0\0\0\0mif1heic"), FileKind::Heic);
        // Generic HEIF major brand, HEIC only among the compatible ones.
        assert_eq!(sniff(b"\0\0\0\x18ftypmif1\0\0\0\0heic"), FileKind::Heic);
        assert_eq!(sniff(b"\0\0\0\x14ftypavif\0\0\0\0"), FileKind::Heic);
        // MP4 and QuickTime: ftyp, but not HEIF.
        assert_eq!(
            sniff(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2"),
            FileKind::Other
        );
        assert_eq!(sniff(b"\0\0\0\x14ftypqt  \0\0\0\0"), FileKind::Other);
        // The name would say .jpg; the bytes say text.
        assert_eq!(sniff(b"just some text"), FileKind::Other);
        assert_eq!(sniff(b""), FileKind::Other);
        assert_eq!(sniff(b"\xFF\xD8"), FileKind::Other);
        assert_eq!(sniff(b" %PDF-1.7"), FileKind::Other);
    }

    #[test]
    fn clean_value_strips_controls_and_cuts() {
        assert_eq!(
            clean_value("  Jane\u{1b}[31m\nReporter\u{202e} "),
            "Jane[31mReporter"
        );
        let long = "a".repeat(500);
        let cut = clean_value(&long);
        assert_eq!(cut.chars().count(), MAX_VALUE_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn degrees_minutes_seconds() {
        let d = dms_to_degrees([(43, 1), (14, 1), (202_164, 10_000)].into_iter()).unwrap();
        assert!((d - 43.238_949).abs() < 1e-6, "{d}");
        assert_eq!(dms_to_degrees([(51, 1)].into_iter()), Some(51.0));
        assert_eq!(dms_to_degrees([(1, 0)].into_iter()), None);
        assert_eq!(dms_to_degrees(std::iter::empty::<(u32, u32)>()), None);
        assert_eq!(dms_to_degrees([(1, 1); 4].into_iter()), None);
    }

    #[test]
    fn scans_lose_comments_and_trailers() {
        // scan data with a stuffed FF00 and a restart marker, a COM, a DHT
        // (kept), EOI, then an appended picture.
        let mut scans = vec![0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56];
        scans.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x05, b'J', b'a', b'n']);
        scans.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x03, 0x00, 0x78]);
        scans.extend_from_slice(&[0xFF, 0xD9]);
        let kept_len = scans.len() - 7;
        scans.extend_from_slice(b"\xFF\xD8\xFF\xE1\x00\x04hi\xFF\xD9");
        let clean = clean_scans(&scans).unwrap();
        assert_eq!(clean.len(), kept_len);
        assert!(!contains(&clean, b"Jan"));
        assert!(clean.ends_with(&[0xFF, 0xD9]));
        assert!(contains(&clean, &[0xFF, 0xC4, 0x00, 0x03]));
    }

    #[test]
    fn scans_without_eoi_are_refused() {
        assert!(clean_scans(&[0x12, 0x34, 0xFF, 0x00]).is_err());
        assert!(clean_scans(&[0x12, 0xFF]).is_err());
        assert!(clean_scans(&[0xFF, 0xFE, 0x00, 0x09, 1]).is_err());
        assert!(clean_scans(&[0xFF, 0xFE, 0x00, 0x01, 0xFF, 0xD9]).is_err());
    }

    #[test]
    fn jpeg_walk_survives_garbage() {
        for data in [
            &b""[..],
            b"\xFF\xD8",
            b"\xFF\xD8\xFF",
            b"\xFF\xD8\xFF\xE1",
            b"\xFF\xD8\xFF\xE1\x00\x00",
            b"\xFF\xD8\xFF\xE1\xFF\xFF\x00",
            b"\xFF\xD8\xFF\xD8",
        ] {
            let walk = walk_jpeg(data);
            assert!(walk.error.is_some() && walk.end.is_none());
        }
        let walk = walk_jpeg(b"\xFF\xD8\xFF\xFE\x00\x04hi\xFF\xD9xx");
        assert_eq!(walk.end, Some(10));
        assert_eq!(walk.parts.len(), 1);
        assert_eq!(walk.parts[0].contents, b"hi");
    }

    #[test]
    fn chunk_walks_survive_garbage() {
        assert!(
            walk_png(b"\x89PNG\r\n\x1a\n\xFF\xFF\xFF\xFFIHDR")
                .error
                .is_some()
        );
        assert!(walk_png(b"\x89PNG\r\n\x1a\n").error.is_some());
        assert!(walk_webp(b"RIFF\xFF\xFF\xFF\xFFWEBP").error.is_some());
        assert!(walk_webp(b"RIFF\x00\0\0\0WEBP").error.is_some());
        assert!(
            walk_webp(b"RIFF\x0c\0\0\0WEBPVP8 \xFF\xFF\xFF\x7F")
                .error
                .is_some()
        );
        // A cut PNG still yields the chunks before the cut.
        let cut = walk_png(b"\x89PNG\r\n\x1a\n\0\0\0\x01tEXtA\0\0\0\0\0\0\0\x10IDAT");
        assert_eq!(cut.chunks, vec![(*b"tEXt", &b"A"[..])]);
        assert!(cut.error.is_some());
        let ok = walk_webp(b"RIFF\x0e\0\0\0WEBPALPH\x01\0\0\0\x07\0")
            .complete()
            .unwrap();
        assert_eq!(ok.chunks, vec![(*b"ALPH", &[7u8][..])]);
        assert_eq!(ok.trailing, 0);
    }

    const PHOTO: &[u8] = include_bytes!("../tests/fixtures/scrub/photo.jpg");
    const PDF: &[u8] = include_bytes!("../tests/fixtures/scrub/document.pdf");

    /// A copy that still carries metadata (here: the original itself, as
    /// if the scrubber had done nothing) is caught by the check and
    /// deleted.
    #[test]
    fn a_copy_that_fails_the_check_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, bytes, pages) in [(FileKind::Jpeg, PHOTO, 0), (FileKind::Pdf, PDF, 1)] {
            let out = dir.path().join(format!("{kind:?}"));
            let copy = Copy {
                bytes: bytes.to_vec(),
                pages,
            };
            let outcome = write_and_verify(kind, copy, &out).unwrap();
            assert!(
                matches!(outcome, ScrubOutcome::Failed { .. }),
                "{outcome:?}"
            );
            assert!(!out.exists());
        }
    }

    #[test]
    fn checks_name_what_is_left() {
        let mut photo = scrub_jpeg(Bytes::from_static(PHOTO)).unwrap();
        verify(FileKind::Jpeg, &photo, 0).unwrap();
        // A COM slipped back in after SOI.
        photo.splice(2..2, *b"\xFF\xFE\x00\x04hi");
        assert!(verify_jpeg(&photo).unwrap_err().contains("0xfe"));
        assert!(verify(FileKind::Jpeg, PHOTO, 0).is_err());

        let clean = scrub_pdf(PDF).unwrap();
        verify_pdf(&clean.bytes, 1).unwrap();
        assert!(verify_pdf(&clean.bytes, 2).unwrap_err().contains("pages"));
        assert!(verify_pdf(PDF, 1).unwrap_err().contains("/Info"));

        let webp = b"RIFF\x1e\0\0\0WEBPVP8X\x0a\0\0\0\x08\0\0\0\0\0\0\0\0\0VP8 \0\0\0\0";
        assert!(verify_webp(webp).unwrap_err().contains("VP8X"));
    }

    #[test]
    fn guarded_turns_a_panic_into_none() {
        assert_eq!(guarded(|| 5), Some(5));
        // (The default hook prints this panic; swapping the hook would
        // hide other tests' panics running at the same time.)
        let r: Option<()> = guarded(|| panic!("expected: a parser bug"));
        assert_eq!(r, None);
    }
}
