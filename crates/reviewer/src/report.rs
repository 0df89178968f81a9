//! `reviewer report`: the archive as a static, self-contained HTML site.
//!
//! Opening `OUT/index.html` in a browser is the reviewer's dashboard: counts,
//! charts (submissions per ISO week, by category, by region, by status) as
//! inline SVG, and a table of every submission. Each submission has a page
//! with its chain of custody, answers, text and attachments (images inline,
//! from the scrubbed copy when there is one), and each follow-up thread a
//! page listing its submissions in received order.
//!
//! The report works from a USB stick on an offline laptop: attachments are
//! copied in, every link is relative, and there is no JavaScript and no
//! external resource of any kind.
//!
//! A report travels further than the archive, so by default it holds the
//! scrubbed copies only (`files/<id>/shared/`): an untouched original, which
//! can carry GPS coordinates or a name, is never copied in. A file with no
//! scrubbed copy is listed with its type and why it is flagged, and the page
//! says it is left out and how to include it. With
//! [`ReportOptions::with_originals`] the originals are copied too
//! (`files/<id>/original/`), and shown inline where there is no scrubbed
//! copy. Either way every original is read and checked against the SHA-256
//! its testimony lists. Every page carries a strict Content-Security-Policy
//! (`default-src 'none'; img-src 'self'; style-src 'self'`), so even a
//! mistake in escaping could not load or run anything.
//!
//! Everything a submission holds is hostile. Templates (askama, in
//! `templates/report/`) escape every value, in text and in attributes
//! alike; none is marked safe. Control and deceptive (bidirectional,
//! zero-width) characters are shown as `\u{..}`, and elements holding
//! untrusted text are `dir="auto"` so they cannot reorder what follows.
//! Attachment names are sanitised again, percent-encoded in links, and an
//! attachment whose extension would make a browser render it as a
//! document (`.html`, `.svg`, `.xml`, no extension, ...) is copied with a
//! harmless one (`.txt`, or the extension of its detected image or PDF
//! type), so clicking it cannot run a script from the report's folder.
//!
//! Files are created `0600` and directories `0700`; the output directory
//! must not exist or be empty, and is left as it was if the report fails.
//!
//! ```no_run
//! use std::path::Path;
//! use reviewer::report::{ReportOptions, write_report};
//!
//! # fn main() -> Result<(), reviewer::Error> {
//! # let records: Vec<reviewer::workbench::Record> = Vec::new();
//! let options = ReportOptions {
//!     title: "Testimonies".into(),
//!     include_discarded: false,
//!     with_originals: false,
//!     filtered_from: None,
//!     generated_day: format::Day::today(),
//!     quarantined: Vec::new(),
//! };
//! let summary = write_report(&records, Path::new("archive"), Path::new("report"), &options, &mut |_, _| {})?;
//! println!("{} pages", summary.pages);
//! # Ok(())
//! # }
//! ```

mod chart;
mod pages;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};

use askama::Template;
use format::{Day, SubmissionId, ThreadId};
use zeroize::{Zeroize as _, Zeroizing};

use crate::Error;
use crate::fsutil::{HashingReader, create_private_dir, create_private_file};
use crate::workbench::{AttachmentRecord, FileKind, Record, ScrubOutcome, Status};

/// The stylesheet every page links (`style.css`).
const STYLE: &str = include_str!("../templates/report/style.css");

/// What a report was asked to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportOptions {
    /// The dashboard's title (the NGO's or the project's name).
    pub title: String,
    /// Whether submissions with [`Status::Discarded`] are in the report.
    pub include_discarded: bool,
    /// Whether the untouched originals are copied in too. Without it the
    /// report holds scrubbed copies only, and a file with no scrubbed copy
    /// is listed but left out.
    pub with_originals: bool,
    /// When the records are a selection (filters given): how many
    /// submissions the archive holds, for the dashboard to say so.
    pub filtered_from: Option<usize>,
    /// The day the report says it was generated on.
    pub generated_day: Day,
    /// The archive's quarantined submissions (listed on the dashboard
    /// with their reason; they have no content to show).
    pub quarantined: Vec<crate::archive::QuarantinedSubmission>,
}

/// What a report holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportSummary {
    /// HTML pages written (the index, one per submission, one per thread).
    pub pages: usize,
    /// Submissions in the report.
    pub submissions: usize,
    /// Thread pages written.
    pub threads: usize,
    /// Attachment files copied in (scrubbed copies, and originals with
    /// [`ReportOptions::with_originals`]).
    pub files_copied: usize,
    /// Attachments with no scrubbed copy whose original was left out (only
    /// without [`ReportOptions::with_originals`]).
    pub left_out: usize,
    /// Attachments flagged: identifying metadata in the original, no
    /// scrubbed copy, or an original that no longer matches its SHA-256.
    pub flagged_files: usize,
}

/// Writes a static HTML site into `out` (created; must not exist or be
/// empty — refused otherwise with [`Error::AlreadyExists`]), from `records`
/// (the archive's submissions) whose attachment paths are relative to
/// `archive_root`.
///
/// `progress` is called after each page with (done, total) so the CLI can
/// drive a progress bar.
///
/// On error, whatever was written into `out` is removed again (and `out`
/// itself, if this call created it).
pub fn write_report(
    records: &[Record],
    archive_root: &Path,
    out: &Path,
    options: &ReportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ReportSummary, Error> {
    let created = prepare_out(out)?;
    let mut guard = OutGuard {
        out,
        created,
        done: false,
    };
    let summary = Builder {
        archive_root,
        out,
        options,
    }
    .build(records, progress)?;
    guard.done = true;
    Ok(summary)
}

/// Checks that `out` does not exist (then creates it `0700`) or is an empty
/// directory. Returns whether it was created.
fn prepare_out(out: &Path) -> Result<bool, Error> {
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir(out).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Error::AlreadyExists { path: out.into() }
                } else {
                    Error::io("create directory", out, e)
                }
            })?;
            Ok(true)
        }
        Err(e) => Err(Error::io("inspect", out, e)),
        // A symlink is refused too: the report goes where it was asked.
        Ok(m) if m.is_dir() => {
            let mut entries = fs::read_dir(out).map_err(|e| Error::io("read", out, e))?;
            if entries.next().is_some() {
                Err(Error::AlreadyExists { path: out.into() })
            } else {
                Ok(false)
            }
        }
        Ok(_) => Err(Error::AlreadyExists { path: out.into() }),
    }
}

/// The top-level entries a report writes into its directory.
const REPORT_ENTRIES: [&str; 5] = ["style.css", "index.html", "submissions", "threads", "files"];

/// Removes a report that did not complete: decrypted testimony should not
/// linger in a half-written folder the reviewer may not notice.
#[derive(Debug)]
struct OutGuard<'a> {
    out: &'a Path,
    created: bool,
    done: bool,
}

impl Drop for OutGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Best effort. The directory was empty (or absent) when the report
        // started, so only the report's own entries are removed.
        if self.created {
            let _ = fs::remove_dir_all(self.out);
            return;
        }
        for name in REPORT_ENTRIES {
            let path = self.out.join(name);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    let _ = fs::remove_dir_all(&path);
                }
                Ok(_) => {
                    let _ = fs::remove_file(&path);
                }
                Err(_) => {}
            }
        }
    }
}

/// Untrusted text as the report shows it: control characters and
/// deceptive ones ([`format::is_deceptive`]: bidirectional overrides,
/// zero-width characters) become `\u{..}`. Multi-line text keeps `\n` and
/// `\t` (and `\r\n` becomes `\n`). It formats on the fly (no copy of the
/// testimony), and askama then escapes what it writes.
#[derive(Clone, Copy)]
struct Shown<'a> {
    text: &'a str,
    multiline: bool,
}

impl<'a> Shown<'a> {
    /// One-line text (answers, names, labels, tags).
    fn line(text: &'a str) -> Self {
        Self {
            text,
            multiline: false,
        }
    }

    /// Multi-line text (the testimony).
    fn multiline(text: &'a str) -> Self {
        Self {
            text,
            multiline: true,
        }
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut start = 0;
        let mut chars = self.text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let keep = if self.multiline && c == '\r' {
                // `\r\n` becomes `\n`; a lone `\r` is escaped below.
                if chars.peek().map(|p| p.1) == Some('\n') {
                    f.write_str(&self.text[start..i])?;
                    start = i + 1;
                    continue;
                }
                false
            } else {
                (self.multiline && (c == '\n' || c == '\t'))
                    || !(c.is_control() || format::is_deceptive(c))
            };
            if !keep {
                f.write_str(&self.text[start..i])?;
                write!(f, "\\u{{{:04x}}}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        f.write_str(&self.text[start..])
    }
}

/// How a page is written: rendered into a fixed, zeroized buffer that is
/// flushed to the file when full, so the testimony in a page is never in a
/// growing (reallocated, unzeroized) string.
struct PageWriter {
    file: File,
    buf: Zeroizing<Vec<u8>>,
    error: Option<io::Error>,
}

/// Size of a page writer's buffer.
const PAGE_BUFFER: usize = 64 * 1024;

impl PageWriter {
    fn new(file: File) -> Self {
        Self {
            file,
            buf: Zeroizing::new(Vec::with_capacity(PAGE_BUFFER)),
            error: None,
        }
    }

    fn flush_buf(&mut self) -> fmt::Result {
        if let Err(e) = self.file.write_all(&self.buf) {
            self.error = Some(e);
            return Err(fmt::Error);
        }
        // Zeroes the contents (and spare capacity) and empties the buffer;
        // the capacity stays, so the buffer never reallocates.
        self.buf.zeroize();
        Ok(())
    }

    /// Flushes what is left; the first I/O error if any write failed.
    fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.flush_buf().is_err() {
            return Err(self
                .error
                .take()
                .unwrap_or_else(|| io::Error::other("write failed")));
        }
        Ok(())
    }
}

impl fmt::Write for PageWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        if self.buf.len() + bytes.len() > self.buf.capacity() {
            self.flush_buf()?;
        }
        if bytes.len() > self.buf.capacity() {
            // Larger than the whole buffer: straight to the file.
            return self.file.write_all(bytes).map_err(|e| {
                self.error = Some(e);
                fmt::Error
            });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
}

/// Renders `page` into a new private file at `path`.
fn write_page(path: &Path, page: &impl Template) -> Result<(), Error> {
    let file = create_private_file(path)?;
    let mut w = PageWriter::new(file);
    let rendered = page.render_into(&mut w);
    if let Some(e) = w.error.take() {
        return Err(Error::io("write", path, e));
    }
    if let Err(e) = rendered {
        // Only the writer can fail (no template calls a fallible filter);
        // keep the cause all the same.
        return Err(Error::io("render", path, io::Error::other(e.to_string())));
    }
    w.finish().map_err(|e| Error::io("write", path, e))
}

/// Writes a small static file.
fn write_static(path: &Path, content: &str) -> Result<(), Error> {
    let mut f = create_private_file(path)?;
    f.write_all(content.as_bytes())
        .map_err(|e| Error::io("write", path, e))
}

/// Creates a report directory `0700`.
fn make_dir(path: &Path) -> Result<(), Error> {
    create_private_dir(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::AlreadyExists { path: path.into() }
        } else {
            Error::io("create directory", path, e)
        }
    })
}

/// Extensions a browser treats as inert when the file is opened from disk:
/// shown as an image, media or PDF, or handed to another program. Any other
/// extension (`.html`, `.svg`, `.xml`, `.xhtml`, none at all, which some
/// browsers sniff) could make the browser render the file as a document and
/// run its scripts from the report's folder.
const INERT_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "gif", "heic", "heif", "tif", "tiff", "bmp", "pdf", "txt", "csv",
    "doc", "docx", "odt", "ods", "odp", "xls", "xlsx", "ppt", "pptx", "rtf", "mp3", "mp4", "m4a",
    "m4v", "mov", "avi", "mkv", "ogg", "oga", "ogv", "opus", "wav", "webm", "flac", "aac", "amr",
    "3gp", "zip", "7z", "rar", "gz", "tar",
];

/// The name an attachment is copied under: sanitised again (it is hostile
/// input, whatever the archive says), with an inert extension.
fn safe_name(name: &str, kind: FileKind) -> String {
    let name = format::sanitize_file_name(name);
    let inert = name.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && INERT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
    });
    let name = if inert {
        name
    } else {
        let ext = match kind {
            FileKind::Jpeg => "jpg",
            FileKind::Png => "png",
            FileKind::Webp => "webp",
            FileKind::Heic => "heic",
            FileKind::Pdf => "pdf",
            FileKind::Text | FileKind::Other => "txt",
        };
        // Sanitising again cuts an over-long name, keeping the extension.
        format::sanitize_file_name(&format!("{name}.{ext}"))
    };
    if is_one_component(&name) {
        name
    } else {
        // Not reachable with the sanitiser's rules; kept as the last line
        // of defence against a name that would leave its directory.
        "attachment.txt".into()
    }
}

/// Whether `name` is exactly one ordinary path component on every system
/// the reviewer runs on.
fn is_one_component(name: &str) -> bool {
    if name.is_empty() || name.contains(['/', '\\', '\0']) {
        return false;
    }
    let mut c = Path::new(name).components();
    matches!((c.next(), c.next()), (Some(Component::Normal(n)), None) if n == name)
}

/// The names a submission's attachments are copied under: safe and unique
/// (case-insensitively: macOS file systems are).
fn stored_names(attachments: &[AttachmentRecord]) -> Vec<String> {
    let names = format::unique_names(
        attachments
            .iter()
            .map(|a| safe_name(&a.name, a.metadata.kind)),
    );
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            if is_one_component(&n) {
                n
            } else {
                format!("attachment-{}.txt", i + 1)
            }
        })
        .collect()
}

/// Percent-encodes one path segment for an `href`/`src`: everything but
/// RFC 3986 unreserved characters, so no name can carry a scheme, a query,
/// a fragment or a separator.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An archive-relative path, joined to the archive root, if it stays
/// inside it.
fn in_archive(root: &Path, rel: &Path) -> Option<PathBuf> {
    let inside = !rel.as_os_str().is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    inside.then(|| root.join(rel))
}

/// What copying one attachment found.
#[derive(Debug)]
struct Copied {
    /// The name it was copied under.
    stored: String,
    /// Whether the original was copied (only with `--with-originals`).
    original: bool,
    /// Whether a scrubbed copy was copied.
    shared: bool,
    /// Whether the original still matches the size and SHA-256 its
    /// testimony lists.
    intact: bool,
}

/// Reads the file at `rel` (archive-relative) and returns its SHA-256 and
/// length; with a `dest`, copies it there too. Errors name `record_dir`
/// rather than the file, so that no attachment name ends up in an error
/// line.
fn read_file(
    archive_root: &Path,
    record_dir: &Path,
    rel: &Path,
    dest: Option<(&Path, &Path)>,
) -> Result<(format::Digest, u64), Error> {
    let read_err = |e: io::Error| Error::io("read an attachment in", record_dir, e);
    let src = in_archive(archive_root, rel).ok_or_else(|| {
        read_err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an attachment path leaves the archive",
        ))
    })?;
    // The archive's own files only: a symlink or a device there is not
    // something `reviewer open` wrote.
    let meta = fs::symlink_metadata(&src).map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an attachment is not a regular file",
        )));
    }
    let file = File::open(&src).map_err(read_err)?;
    let mut reader = HashingReader::new(file);
    let Some((dest, dest_dir)) = dest else {
        io::copy(&mut reader, &mut io::sink()).map_err(read_err)?;
        return reader.finish().map_err(read_err);
    };
    let mut out = create_private_file(dest).map_err(|e| match e {
        Error::AlreadyExists { .. } => Error::AlreadyExists {
            path: dest_dir.into(),
        },
        Error::Io { action, source, .. } => Error::io(action, dest_dir, source),
        other => other,
    })?;
    if let Err(e) = io::copy(&mut reader, &mut out) {
        return Err(if reader.failure().is_some() {
            read_err(e)
        } else {
            Error::io("write an attachment copy into", dest_dir, e)
        });
    }
    reader.finish().map_err(read_err)
}

/// Everything one `write_report` call shares.
struct Builder<'a> {
    archive_root: &'a Path,
    out: &'a Path,
    options: &'a ReportOptions,
}

impl Builder<'_> {
    fn build(
        &self,
        records: &[Record],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ReportSummary, Error> {
        let mut included: Vec<&Record> = records
            .iter()
            .filter(|r| self.options.include_discarded || r.status != Status::Discarded)
            .collect();
        // Newest first on the dashboard; ties by id, so the order is stable.
        included.sort_by(|a, b| b.received_day.cmp(&a.received_day).then(a.id.cmp(&b.id)));
        let mut seen = BTreeSet::new();
        if let Some(dup) = included.iter().find(|r| !seen.insert(r.id)) {
            return Err(Error::io(
                "write",
                self.out
                    .join("submissions")
                    .join(format!("{}.html", dup.id)),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "two archived records have this submission id; run `reviewer verify-archive`",
                ),
            ));
        }
        let excluded = records.len() - included.len();

        let mut threads: BTreeMap<ThreadId, Vec<&Record>> = BTreeMap::new();
        for r in &included {
            if let Some(t) = r.thread {
                threads.entry(t).or_default().push(r);
            }
        }
        for members in threads.values_mut() {
            members.sort_by(|a, b| a.received_day.cmp(&b.received_day).then(a.id.cmp(&b.id)));
        }

        let total = (1 + included.len() + threads.len()) as u64;
        let mut done = 0u64;
        let mut summary = ReportSummary {
            submissions: included.len(),
            threads: threads.len(),
            ..ReportSummary::default()
        };

        write_static(&self.out.join("style.css"), STYLE)?;
        for dir in ["submissions", "threads", "files"] {
            make_dir(&self.out.join(dir))?;
        }

        let head = |page: String, root: &'static str| pages::Head {
            site: Shown::line(&self.options.title),
            generated: self.options.generated_day.to_string(),
            root,
            page,
        };

        let mut flagged: BTreeMap<SubmissionId, bool> = BTreeMap::new();
        for r in &included {
            let copied = self.copy_attachments(r, &mut summary)?;
            let page = pages::submission(r, &copied, head(format!("Submission {}", r.id), "../"));
            summary.flagged_files += page.files.iter().filter(|f| f.flagged).count();
            flagged.insert(r.id, page.files.iter().any(|f| f.flagged));
            write_page(
                &self.out.join("submissions").join(format!("{}.html", r.id)),
                &page,
            )?;
            done += 1;
            progress(done, total);
        }

        // What the NGO told each source (the archive's record of replies).
        let replies = crate::replies::Replies::load(self.archive_root)?;
        for (thread, members) in &threads {
            let page = pages::thread(
                thread,
                members,
                &flagged,
                &replies.of_thread(thread),
                head(format!("Thread {thread}"), "../"),
            );
            write_page(
                &self.out.join("threads").join(format!("{thread}.html")),
                &page,
            )?;
            done += 1;
            progress(done, total);
        }

        let index = pages::index(
            &included,
            &flagged,
            &summary,
            excluded,
            self.options,
            head("Dashboard".into(), ""),
        );
        write_page(&self.out.join("index.html"), &index)?;
        done += 1;
        progress(done, total);

        summary.pages = usize::try_from(done).unwrap_or(usize::MAX);
        Ok(summary)
    }

    /// Copies a submission's scrubbed copies into `files/<id>/shared/`,
    /// and with `with_originals` its originals into `files/<id>/original/`.
    /// Every original is read, to check it against its SHA-256.
    fn copy_attachments(
        &self,
        r: &Record,
        summary: &mut ReportSummary,
    ) -> Result<Vec<Copied>, Error> {
        if r.attachments.is_empty() {
            return Ok(Vec::new());
        }
        let record_dir = self.archive_root.join(&r.dir);
        let base = self.out.join("files").join(r.id.to_string());
        let original_dir = base.join("original");
        let shared_dir = base.join("shared");
        let (mut base_made, mut original_made, mut shared_made) = (false, false, false);
        let make = |dir: &Path, made: &mut bool, base_made: &mut bool| -> Result<(), Error> {
            if !*base_made {
                make_dir(&base)?;
                *base_made = true;
            }
            if !*made {
                make_dir(dir)?;
                *made = true;
            }
            Ok(())
        };

        let names = stored_names(&r.attachments);
        let mut out = Vec::with_capacity(names.len());
        for (a, stored) in r.attachments.iter().zip(names) {
            let original = self.options.with_originals;
            let dest = if original {
                make(&original_dir, &mut original_made, &mut base_made)?;
                Some(original_dir.join(&stored))
            } else {
                None
            };
            let (digest, len) = read_file(
                self.archive_root,
                &record_dir,
                &a.original,
                dest.as_deref().map(|d| (d, original_dir.as_path())),
            )?;
            if original {
                summary.files_copied += 1;
            }
            let mut shared = false;
            if let (ScrubOutcome::Scrubbed, Some(copy)) = (&a.metadata.scrub, &a.scrubbed) {
                make(&shared_dir, &mut shared_made, &mut base_made)?;
                read_file(
                    self.archive_root,
                    &record_dir,
                    copy,
                    Some((&shared_dir.join(&stored), &shared_dir)),
                )?;
                summary.files_copied += 1;
                shared = true;
            }
            if !shared && !original {
                summary.left_out += 1;
            }
            out.push(Copied {
                stored,
                original,
                shared,
                intact: digest == a.sha256 && len == a.size,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn shown_escapes_controls_and_deceptive_characters() {
        let s = "a\u{1b}[31mb\u{202e}c\0d\re\r\nf\tg";
        assert_eq!(
            Shown::line(s).to_string(),
            "a\\u{001b}[31mb\\u{202e}c\\u{0000}d\\u{000d}e\\u{000d}\\u{000a}f\\u{0009}g"
        );
        assert_eq!(
            Shown::multiline(s).to_string(),
            "a\\u{001b}[31mb\\u{202e}c\\u{0000}d\\u{000d}e\nf\tg"
        );
        assert_eq!(Shown::line("Қазақ тілі").to_string(), "Қазақ тілі");
    }

    #[test]
    fn names_are_inert_and_stay_inside() {
        let cases = [
            ("photo.JPG", FileKind::Jpeg, "photo.JPG"),
            ("photo", FileKind::Jpeg, "photo.jpg"),
            ("page.html", FileKind::Other, "page.html.txt"),
            ("drawing.svg", FileKind::Png, "drawing.svg.png"),
            ("report.pdf", FileKind::Pdf, "report.pdf"),
            ("../../etc/passwd", FileKind::Other, "passwd.txt"),
            (
                "javascript:alert(1)",
                FileKind::Other,
                "javascript_alert(1).txt",
            ),
            (
                "\"><img src=x onerror=alert(1)>.jpg",
                FileKind::Jpeg,
                "___img src=x onerror=alert(1)_.jpg",
            ),
            ("..", FileKind::Other, "attachment.txt"),
            (".jpg", FileKind::Jpeg, "jpg.jpg"),
        ];
        for (raw, kind, want) in cases {
            let got = safe_name(raw, kind);
            assert_eq!(got, want, "{raw:?}");
            assert!(is_one_component(&got));
        }
        assert!(!is_one_component(".."));
        assert!(!is_one_component("a/b"));
        assert!(!is_one_component("a\\b"));
        assert!(!is_one_component("/"));
        assert!(!is_one_component(""));
        // A long name keeps the harmless extension.
        let long = format!("{}.html", "x".repeat(200));
        let got = safe_name(&long, FileKind::Other);
        assert!(
            got.ends_with(".txt") && got.len() <= format::MAX_NAME_BYTES,
            "{got}"
        );
    }

    #[test]
    fn encoded_segments_carry_no_syntax() {
        assert_eq!(encode_segment("a b.jpg"), "a%20b.jpg");
        assert_eq!(
            encode_segment("javascript:alert(1)"),
            "javascript%3Aalert%281%29"
        );
        assert_eq!(
            encode_segment("\"'<>&?#/\\%"),
            "%22%27%3C%3E%26%3F%23%2F%5C%25"
        );
        assert_eq!(encode_segment("фото"), "%D1%84%D0%BE%D1%82%D0%BE");
    }

    #[test]
    fn archive_paths_stay_inside() {
        let root = Path::new("/archive");
        assert_eq!(
            in_archive(root, Path::new("abc/files/x.jpg")),
            Some(PathBuf::from("/archive/abc/files/x.jpg"))
        );
        assert_eq!(in_archive(root, Path::new("../x")), None);
        assert_eq!(in_archive(root, Path::new("a/../../x")), None);
        assert_eq!(in_archive(root, Path::new("/etc/passwd")), None);
        assert_eq!(in_archive(root, Path::new("")), None);
    }

    #[test]
    fn page_writer_flushes_across_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut w = PageWriter::new(create_private_file(&path).unwrap());
        let mut want = String::new();
        for i in 0..20_000 {
            let s = format!("{i},");
            want.push_str(&s);
            w.write_str(&s).unwrap();
        }
        let big = "y".repeat(PAGE_BUFFER + 10);
        want.push_str(&big);
        w.write_str(&big).unwrap();
        let cap = w.buf.capacity();
        w.write_str("end").unwrap();
        want.push_str("end");
        assert_eq!(w.buf.capacity(), cap, "the buffer never grows");
        w.finish().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), want);
    }

    #[test]
    fn unique_stored_names_ignore_case() {
        let a = |name: &str| AttachmentRecord {
            name: name.into(),
            size: 0,
            sha256: format::Digest::of(b""),
            original: PathBuf::from("x"),
            scrubbed: None,
            metadata: crate::workbench::MetadataReport {
                kind: FileKind::Other,
                findings: Vec::new(),
                scrub: ScrubOutcome::Unsupported { reason: "r".into() },
            },
        };
        let names = stored_names(&[a("Notes.txt"), a("notes.txt"), a("a.html"), a("a.html.txt")]);
        let lower: BTreeSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
        assert_eq!(lower.len(), 4, "{names:?}");
        assert_eq!(names[0], "Notes.txt");
    }
}
