//! The workbench on an archive: `list`, `show`, `tag`, `status`, `export`,
//! `report` and `verify-archive`.

use super::*;

pub(super) const LIST_EXAMPLES: &str = "\
Examples:
  reviewer list ~/cases
  reviewer list ~/cases --status new --category health
  reviewer list ~/cases --region aktobe --from 2026-11-01 --to 2026-11-30
  reviewer list ~/cases --tag urgent --tag medical-workers --search \"arrested\"
  reviewer list ~/cases --thread 3f0c1a --format json

Filters combine: a submission is listed if it passes every filter given.
Categories and regions are the answer keys (`reviewer show` prints them).";

pub(super) const SHOW_EXAMPLES: &str = "\
Examples:
  # A unique start of the id is enough (at least 6 hex digits)
  reviewer show ~/cases 3f0c1a2b";

pub(super) const TAG_EXAMPLES: &str = "\
Examples:
  reviewer tag ~/cases 3f0c1a2b urgent medical-workers
  reviewer tag ~/cases 3f0c1a2b urgent --remove

Tags are 1 to 40 characters: lowercase letters a-z, digits and -, starting
with a letter or digit.";

pub(super) const STATUS_EXAMPLES: &str = "\
Examples:
  reviewer status ~/cases 3f0c1a2b reviewing
  reviewer status ~/cases 3f0c1a2b discarded

Every submission starts as new. Status and tags are kept in the archive's
triage.json, never in the submission.";

pub(super) const EXPORT_EXAMPLES: &str = "\
Examples:
  # Answers only, for a spreadsheet
  reviewer export ~/cases --format csv --out answers.csv

  # For Excel (opens with a double click, Cyrillic intact)
  reviewer export ~/cases --format csv --excel --out answers.csv

  # For Excel set to Russian or Kazakh (it splits cells on ;)
  reviewer export ~/cases --format csv --excel --delimiter semicolon --out answers.csv

  # For analysis tools, with the text, verified submissions only
  reviewer export ~/cases --format json --with-text --status verified --out verified.json

One row per submission: id, received_day, relay, batch_sequence, thread,
status, tags, language, then <key> and <key>_label for every questionnaire
key, then attachments (a count; files are never exported) and, with
--with-text only, text. CSV cells that start with =, +, -, @, a tab or a
carriage return get a leading apostrophe (') so that spreadsheets show them
as text instead of running them as formulas.";

pub(super) const REPORT_EXAMPLES: &str = "\
Examples:
  reviewer report ~/cases --out ~/report-2026-11
  reviewer report ~/cases --out /media/usb/report --title \"Kazakhstan, November\" --include-discarded

  # Verified health cases of November only (list's filters work here)
  reviewer report ~/cases --out ~/health --status verified --category health --from 2026-11-01 --to 2026-11-30

  # For the reviewers' own use: the untouched originals too
  reviewer report ~/cases --out ~/full-report --with-originals

Open SITE/index.html in a browser: it needs no network and no JavaScript.
Files are the scrubbed copies only: a file with no scrubbed copy is listed
but left out, unless --with-originals. The site holds the testimonies:
keep it as safe as the archive.";

pub(super) const VERIFY_ARCHIVE_EXAMPLES: &str = "\
Examples:
  reviewer verify-archive ~/cases --relay-key relay.pub
  reviewer verify-archive ~/cases --relay-key relay-a.pub --relay-key relay-b.pub

Prints one line per problem and exits 1 if there is any. Batches missing
between two archived ones are noted (note: lines), not counted as problems.";

#[derive(Debug, Args)]
pub(super) struct FilterArgs {
    /// Only this category (the answer's key, e.g. health).
    #[arg(long, value_name = "KEY")]
    category: Option<String>,
    /// Only this region (the answer's key, e.g. aktobe).
    #[arg(long, value_name = "KEY")]
    region: Option<String>,
    /// Only this status.
    #[arg(long, value_enum, value_name = "STATUS")]
    status: Option<StatusArg>,
    /// Only submissions with this tag (repeat: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only submissions received on or after this day (YYYY-MM-DD).
    #[arg(long, value_name = "DAY")]
    from: Option<Day>,
    /// Only submissions received on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DAY")]
    to: Option<Day>,
    /// Only submissions whose text or answers contain this (any case).
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// Only this follow-up thread (its id, or at least 6 of its first digits).
    #[arg(long, value_name = "ID")]
    thread: Option<String>,
}

impl FilterArgs {
    fn to_filter(&self, archive: &Archive) -> Result<Filter, Error> {
        let filter = Filter {
            category: self.category.clone(),
            region: self.region.clone(),
            status: self.status.map(Status::from),
            tags: self.tags.clone(),
            from: self.from,
            to: self.to,
            search: self.search.clone(),
            thread: self
                .thread
                .as_deref()
                .map(|t| triage::resolve_thread(archive, t))
                .transpose()?,
        };
        filter.check()?;
        Ok(filter)
    }
}

/// A triage status on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum StatusArg {
    New,
    Reviewing,
    Verified,
    Published,
    Discarded,
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::New => Status::New,
            StatusArg::Reviewing => Status::Reviewing,
            StatusArg::Verified => Status::Verified,
            StatusArg::Published => Status::Published,
            StatusArg::Discarded => Status::Discarded,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ListFormat {
    /// One line per submission.
    Table,
    /// A JSON array (everything but the text).
    Json,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// The archive (the --out of `reviewer open`).
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    #[command(flatten)]
    filter: FilterArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
    /// List only the quarantined submissions (content that could not be
    /// opened; its ciphertext is in custody), with the reason.
    #[arg(long)]
    quarantined: bool,
}

#[derive(Debug, Args)]
pub(super) struct ShowArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// The submission: its id or a unique start of it (6+ hex digits).
    #[arg(value_name = "ID")]
    id: String,
}

#[derive(Debug, Args)]
pub(super) struct TagArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// The submission: its id or a unique start of it (6+ hex digits).
    #[arg(value_name = "ID")]
    id: String,
    /// Tags: lowercase a-z, digits and -, at most 40 characters.
    #[arg(value_name = "TAG", required = true)]
    tags: Vec<String>,
    /// Remove these tags instead of adding them.
    #[arg(long)]
    remove: bool,
}

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// The submission: its id or a unique start of it (6+ hex digits).
    #[arg(value_name = "ID")]
    id: String,
    /// The new status.
    #[arg(value_enum, value_name = "STATUS")]
    status: StatusArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ExportFormatArg {
    /// Comma-separated values, spreadsheet-safe (formula cells get a leading ').
    Csv,
    /// A JSON document: {"format", "columns", "submissions": [...]}.
    Json,
}

/// The character between CSV cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum DelimiterArg {
    /// `,` (RFC 4180; Excel with English settings).
    Comma,
    /// `;` (Excel where the decimal separator is a comma: Russian, Kazakh).
    Semicolon,
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    format: ExportFormatArg,
    /// CSV for Excel: a UTF-8 byte-order mark first (so Excel reads
    /// Cyrillic right when the file is double-clicked) and CRLF line ends.
    #[arg(long)]
    excel: bool,
    /// The character between CSV cells.
    #[arg(long, value_enum, value_name = "CHAR")]
    delimiter: Option<DelimiterArg>,
    /// Include the testimony text (left out by default: exports travel).
    #[arg(long)]
    with_text: bool,
    /// Write to this file (created 0600, never overwritten) instead of
    /// standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// The directory to write the site into (must not exist, or be empty).
    #[arg(long, value_name = "SITE")]
    out: PathBuf,
    /// The dashboard's title.
    #[arg(long, value_name = "TITLE", default_value = "Testimonies")]
    title: String,
    /// Include discarded submissions (`--status discarded` does too).
    #[arg(long)]
    include_discarded: bool,
    /// Copy the untouched originals in too (they can carry GPS
    /// coordinates, names and device serials). Without it the report holds
    /// scrubbed copies only, and lists a file with none as left out.
    #[arg(long)]
    with_originals: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(super) struct VerifyArchiveArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// A relay public key (RW…, or a file holding it) the batches must be
    /// signed with; repeat for several relays. Without it, signatures are
    /// checked with the keys the archive records.
    #[arg(long, value_name = "PUB")]
    relay_key: Vec<String>,
}

/// One line per quarantined submission (table format).
pub(super) fn quarantine_lines(archive: &Archive, dir: &Path) {
    let n = archive.quarantined().count();
    if n == 0 {
        return;
    }
    out_line(&format!(
        "{n} quarantined (content not opened, ciphertext kept; `reviewer retry ID --out {}`):",
        dir.display()
    ));
    for q in archive.quarantined() {
        let id = q.id.to_string();
        out_line(&format!(
            "{:<12}  {:<10}  quarantined  {}",
            id.get(..12).unwrap_or(&id),
            q.received_day,
            text::clean(&q.reason)
        ));
    }
}

pub(super) fn list_cmd(a: ListArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    if a.quarantined {
        match a.format {
            ListFormat::Json => {
                let all: Vec<&archive::QuarantinedSubmission> = archive.quarantined().collect();
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &all)
                    .map_err(|e| Error::io("write", "standard output", std::io::Error::other(e)))?;
                let _ = writeln!(out);
            }
            ListFormat::Table if archive.quarantined().next().is_none() => {
                out_line("no submission is quarantined");
            }
            ListFormat::Table => quarantine_lines(&archive, &a.archive),
        }
        return Ok(());
    }
    let filter = a.filter.to_filter(&archive)?;
    let records = archive.records()?;
    let selected: Vec<&Record> = records.iter().filter(|r| filter.matches(r)).collect();
    match a.format {
        ListFormat::Json => {
            let summaries: Vec<Summary<'_>> = selected.iter().map(|r| Summary::of(r)).collect();
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &summaries)
                .map_err(|e| Error::io("write", "standard output", std::io::Error::other(e)))?;
            let _ = writeln!(out);
        }
        ListFormat::Table => {
            if selected.is_empty() {
                out_line(&format!(
                    "no submission matches ({} in the archive)",
                    records.len()
                ));
                quarantine_lines(&archive, &a.archive);
                return Ok(());
            }
            out_line(&format!(
                "{:<12}  {:<10}  {:<9}  {:<18}  {:<18}  {:<5}  TAGS",
                "ID", "RECEIVED", "STATUS", "CATEGORY", "REGION", "FILES"
            ));
            for r in &selected {
                let flagged = r
                    .attachments
                    .iter()
                    .filter(|x| archive::is_flagged(x))
                    .count();
                let files = if flagged > 0 {
                    format!("{}!{flagged}", r.attachments.len())
                } else {
                    r.attachments.len().to_string()
                };
                let tags: Vec<&str> = r.tags.iter().map(String::as_str).collect();
                let id = r.id.to_string();
                out_line(
                    format!(
                        "{:<12}  {:<10}  {:<9}  {}  {}  {:<5}  {}",
                        id.get(..12).unwrap_or(&id),
                        r.received_day.to_string(),
                        r.status.as_str(),
                        cell(r.fields.get("category").map(String::as_str), 18),
                        cell(r.fields.get("region").map(String::as_str), 18),
                        files,
                        tags.join(",")
                    )
                    .trim_end(),
                );
            }
            out_line(&format!(
                "{} of {} submissions{}",
                selected.len(),
                records.len(),
                if selected
                    .iter()
                    .any(|r| r.attachments.iter().any(archive::is_flagged))
                {
                    " (FILES n!k: k of n attachments flagged; `reviewer show DIR ID`)"
                } else {
                    ""
                }
            ));
            quarantine_lines(&archive, &a.archive);
        }
    }
    Ok(())
}

/// A table cell: escaped, cut to `width` characters, padded.
pub(super) fn cell(value: Option<&str>, width: usize) -> String {
    let clean = text::clean(value.unwrap_or("-"));
    let mut out: String = clean.chars().take(width).collect();
    if clean.chars().count() > width {
        out.pop();
        out.push('…');
    }
    let n = out.chars().count();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(n)));
    out
}

pub(super) fn show_cmd(a: ShowArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    let id = archive.resolve(&a.id)?;
    if let Some(q) = archive.quarantined_submission(&id) {
        out_line(&format!("Submission {id}: QUARANTINED"));
        out_line(&format!("Received: {}", q.received_day));
        out_line(&format!("Key epoch: {}", q.origin.epoch));
        if let Some(t) = q.thread {
            out_line(&format!("Thread: {t}"));
        }
        out_line(&format!("Reason: {}", text::clean(&q.reason)));
        out_line(&format!("Last tried: {}", q.tried_day));
        out_line(&format!(
            "From: relay {} batch {} ({})",
            relay_fingerprint(&q.origin.relay_key),
            q.origin.batch_sequence,
            q.origin.batch_id
        ));
        out_line(&format!(
            "Ciphertext (in custody): {} sha256 {}",
            archive::custody_ciphertext(&a.archive, &q.origin.relay_key, &id).display(),
            q.origin.ciphertext_sha256
        ));
        out_line(&format!(
            "Nothing of its content was written. Try again: reviewer retry {id} --identity KEY --out {}",
            a.archive.display()
        ));
        return Ok(());
    }
    let record = archive.record(&id)?;
    let mates: Vec<format::SubmissionId> = match record.thread {
        Some(t) => archive
            .submissions()
            .filter(|s| s.thread == Some(t) && s.id != id)
            .map(|s| s.id)
            .collect(),
        None => Vec::new(),
    };
    let also = archive
        .submission(&id)
        .map(|s| s.also_received.clone())
        .unwrap_or_default();
    let shown = text::render_record(&record, &mates, &also);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(shown.as_bytes());
    if let Some(t) = record.thread {
        let replies = crate::replies::Replies::load(archive.root())?;
        let sent = replies.of_thread(&t);
        if !sent.is_empty() {
            let _ = writeln!(out, "\nReplies sent in this thread ({}):", sent.len());
            for r in sent {
                let _ = out.write_all(r.render().as_bytes());
            }
        }
    }
    Ok(())
}

pub(super) fn tag_cmd(a: TagArgs) -> Result<(), Error> {
    for t in &a.tags {
        archive::check_tag(t).map_err(|reason| {
            Error::Archive(crate::archive::ArchiveError::BadTag {
                tag: t.chars().take(50).collect(),
                reason,
            })
        })?;
    }
    let archive = Archive::open(&a.archive)?;
    let id = archive.resolve(&a.id)?;
    let mut triage = Triage::load(archive.root())?;
    let changed = if a.remove {
        triage.remove_tags(id, &a.tags)
    } else {
        triage.add_tags(id, &a.tags)
    };
    triage.save(archive.root())?;
    let now: Vec<String> = triage.get(&id).tags.into_iter().collect();
    out_line(&format!(
        "submission {id}: {} {}; tags now: {}",
        if a.remove { "removed" } else { "added" },
        if changed.is_empty() {
            "nothing (unchanged)".to_owned()
        } else {
            changed.join(", ")
        },
        if now.is_empty() {
            "none".to_owned()
        } else {
            now.join(", ")
        }
    ));
    Ok(())
}

pub(super) fn status_cmd(a: StatusArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    let id = archive.resolve(&a.id)?;
    let mut triage = Triage::load(archive.root())?;
    let before = triage.get(&id).status;
    let status = Status::from(a.status);
    triage.set_status(id, status);
    triage.save(archive.root())?;
    out_line(&format!("submission {id}: status {status} (was {before})"));
    Ok(())
}

/// A usage error of `reviewer SUB` that the parser cannot see (a value
/// that rules out another option), printed as clap prints its own.
fn usage_error(sub: &str, message: &str) -> Error {
    use clap::CommandFactory as _;
    let mut cli = Cli::command();
    cli.build();
    let kind = clap::error::ErrorKind::ArgumentConflict;
    Error::Usage(match cli.find_subcommand_mut(sub) {
        Some(cmd) => cmd.error(kind, message),
        None => cli.error(kind, message),
    })
}

pub(super) fn export_cmd(a: ExportArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    let filter = a.filter.to_filter(&archive)?;
    let mut records = archive.records()?;
    records.retain(|r| filter.matches(r));
    let format = match a.format {
        ExportFormatArg::Csv => ExportFormat::Csv(export::CsvStyle {
            excel: a.excel,
            delimiter: match a.delimiter {
                None | Some(DelimiterArg::Comma) => export::Delimiter::Comma,
                Some(DelimiterArg::Semicolon) => export::Delimiter::Semicolon,
            },
        }),
        ExportFormatArg::Json if a.excel || a.delimiter.is_some() => {
            return Err(usage_error(
                "export",
                "--excel and --delimiter shape a CSV export: use them with --format csv",
            ));
        }
        ExportFormatArg::Json => ExportFormat::Json,
    };
    match &a.out {
        None => {
            let mut out = std::io::stdout().lock();
            export::export(&records, format, a.with_text, &mut out)
                .map_err(|e| Error::io("write", "standard output", e))?;
        }
        Some(path) => {
            let file = crate::fsutil::create_private_file(path)?;
            let mut w = std::io::BufWriter::new(file);
            let written = export::export(&records, format, a.with_text, &mut w)
                .and_then(|()| w.flush())
                .and_then(|()| w.get_ref().sync_all());
            if let Err(e) = written {
                // Never leave half an export behind.
                drop(w);
                let _ = std::fs::remove_file(path);
                return Err(Error::io("write", path, e));
            }
            let _ = writeln!(
                std::io::stderr().lock(),
                "reviewer: wrote {} submission{} to {}{}",
                records.len(),
                if records.len() == 1 { "" } else { "s" },
                printable(&path.display().to_string()),
                if a.with_text {
                    " (with the testimony text: keep it as safe as the archive)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

pub(super) fn report_cmd(a: ReportArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    let filter = a.filter.to_filter(&archive)?;
    let mut records = archive.records()?;
    let archived = records.len();
    let filtered = filter != Filter::default();
    records.retain(|r| filter.matches(r));
    let options = crate::report::ReportOptions {
        title: a.title,
        // Asking for discarded ones by status is asking to see them.
        include_discarded: a.include_discarded || filter.status == Some(Status::Discarded),
        with_originals: a.with_originals,
        filtered_from: filtered.then_some(archived),
        generated_day: Day::today(),
        // They have no answers or text to match: only an unfiltered report
        // lists them.
        quarantined: if filtered {
            Vec::new()
        } else {
            archive.quarantined().cloned().collect()
        },
    };
    let bar = progress_bar(records.len() as u64, "writing the report", false);
    let written = write_site(
        &records,
        archive.root(),
        &a.out,
        &options,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    let summary = written?;
    out_line(&format!(
        "wrote the report into {}: {} pages, {} submissions, {} threads, {} files copied ({}), {} flagged",
        a.out.display(),
        summary.pages,
        summary.submissions,
        summary.threads,
        summary.files_copied,
        if a.with_originals {
            "originals included"
        } else {
            "scrubbed copies only"
        },
        summary.flagged_files
    ));
    if summary.left_out > 0 {
        out_line(&format!(
            "{} file{} with no scrubbed copy left out (listed on its submission's page); --with-originals includes the originals",
            summary.left_out,
            if summary.left_out == 1 { "" } else { "s" }
        ));
    }
    out_line(&format!(
        "open {} in a browser (it needs no network); the site holds the testimonies: keep it as safe as the archive",
        a.out.join("index.html").display()
    ));
    Ok(())
}

/// The one place that calls the report writer ([`crate::report`]).
pub(super) fn write_site(
    records: &[Record],
    archive_root: &Path,
    out: &Path,
    options: &crate::report::ReportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<crate::report::ReportSummary, Error> {
    crate::report::write_report(records, archive_root, out, options, progress)
}

pub(super) fn verify_archive_cmd(a: VerifyArchiveArgs) -> Result<(), Error> {
    let pinned = a
        .relay_key
        .iter()
        .map(|k| PinnedKey::from_arg(k))
        .collect::<Result<Vec<_>, Error>>()?;
    let report = audit::verify_archive(&a.archive, &pinned)?;
    for p in &report.problems {
        out_line(&format!("problem: {p}"));
    }
    for n in &report.notes {
        out_line(&format!("note: {n}"));
    }
    out_line(&format!(
        "checked {} batch{} from {} relay{}, {} submission{}, {} original attachment{}: {}",
        report.batches,
        if report.batches == 1 { "" } else { "es" },
        report.relays,
        if report.relays == 1 { "" } else { "s" },
        report.submissions,
        if report.submissions == 1 { "" } else { "s" },
        report.attachments,
        if report.attachments == 1 { "" } else { "s" },
        match report.problems.len() {
            0 => "no problem".to_owned(),
            1 => "1 problem".to_owned(),
            n => format!("{n} problems"),
        }
    ));
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Archive(
            crate::archive::ArchiveError::ArchiveProblems {
                dir: a.archive,
                problems: report.problems.len(),
            },
        ))
    }
}
