//! The report's pages: what each template is given.
//!
//! Everything taken from a submission reaches a template as [`Shown`]
//! (control and deceptive characters made visible) and is escaped there by
//! askama, in text and attributes alike; links are built here from hex ids
//! and percent-encoded names only.

use std::collections::BTreeMap;

use askama::Template;
use format::{SubmissionId, ThreadId};

use super::chart::{self, HBarChart, WeekChart};
use super::{Copied, ReportSummary, Shown, encode_segment};
use crate::workbench::{FileKind, Finding, Record, ScrubOutcome, Status};

/// What a category or region is shown as when the source did not answer.
pub(super) const NOT_SAID: &str = "not said";

/// How many characters of a testimony a thread page quotes.
const EXCERPT_CHARS: usize = 240;

/// What every page shares.
pub(super) struct Head<'a> {
    /// The report's title.
    pub(super) site: Shown<'a>,
    /// The day it was generated.
    pub(super) generated: String,
    /// The way back to the report's root from this page (`""` or `"../"`).
    pub(super) root: &'static str,
    /// This page's title (from fixed words and hex ids only).
    pub(super) page: String,
}

/// The answer a chart counts a submission under: its English label, else
/// the raw answer, else [`NOT_SAID`].
pub(super) fn answer_or_not_said<'a>(r: &'a Record, key: &str) -> &'a str {
    r.answer_label(key)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(NOT_SAID)
}

/// The first eight hex digits of an id, for tables.
fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// The dashboard's counts.
pub(super) struct Counts {
    pub(super) submissions: usize,
    pub(super) threads: usize,
    pub(super) attachments: usize,
    pub(super) flagged: usize,
}

/// One row of the dashboard's table of submissions.
pub(super) struct Row<'a> {
    pub(super) id: String,
    pub(super) short: String,
    pub(super) received: String,
    pub(super) category: Shown<'a>,
    pub(super) region: Shown<'a>,
    pub(super) status: &'static str,
    pub(super) tags: Vec<Shown<'a>>,
    pub(super) thread: Option<(String, String)>,
    pub(super) files: usize,
    pub(super) flagged: bool,
}

/// `index.html`.
#[derive(Template)]
#[template(path = "report/index.html")]
pub(super) struct IndexPage<'a> {
    pub(super) head: Head<'a>,
    pub(super) counts: Counts,
    pub(super) include_discarded: bool,
    pub(super) excluded: usize,
    /// Whether the originals are in the report (`--with-originals`).
    pub(super) with_originals: bool,
    /// Files with no scrubbed copy, left out.
    pub(super) left_out: usize,
    /// How many submissions the archive holds, when filters selected some.
    pub(super) filtered_from: Option<usize>,
    pub(super) weeks: WeekChart,
    pub(super) charts: Vec<HBarChart<'a>>,
    pub(super) rows: Vec<Row<'a>>,
    /// Quarantined submissions: id, short id, received day, reason.
    pub(super) quarantined: Vec<(String, String, String, Shown<'a>)>,
}

/// Builds the dashboard from the submissions in the report (newest first).
pub(super) fn index<'a>(
    included: &[&'a Record],
    flagged: &BTreeMap<SubmissionId, bool>,
    summary: &ReportSummary,
    excluded: usize,
    options: &'a super::ReportOptions,
    head: Head<'a>,
) -> IndexPage<'a> {
    let include_discarded = options.include_discarded;
    let statuses: Vec<(&'a str, usize)> = Status::ALL
        .into_iter()
        .filter(|s| include_discarded || *s != Status::Discarded)
        .map(|s| {
            (
                s.as_str(),
                included.iter().filter(|r| r.status == s).count(),
            )
        })
        .collect();
    let charts = vec![
        chart::hbars(
            "category",
            "By category",
            "Category",
            chart::tally(included.iter().map(|r| answer_or_not_said(r, "category"))),
        ),
        chart::hbars(
            "region",
            "By region",
            "Region",
            chart::tally(included.iter().map(|r| answer_or_not_said(r, "region"))),
        ),
        chart::hbars("status", "By status", "Status", statuses),
    ];
    let rows = included
        .iter()
        .map(|r| {
            let id = r.id.to_string();
            Row {
                short: short(&id),
                id,
                received: r.received_day.to_string(),
                category: Shown::line(answer_or_not_said(r, "category")),
                region: Shown::line(answer_or_not_said(r, "region")),
                status: r.status.as_str(),
                tags: r.tags.iter().map(|t| Shown::line(t)).collect(),
                thread: r.thread.map(|t| {
                    let t = t.to_string();
                    (short(&t), t)
                }),
                files: r.attachments.len(),
                flagged: flagged.get(&r.id).copied().unwrap_or(false),
            }
        })
        .collect();
    IndexPage {
        head,
        counts: Counts {
            submissions: summary.submissions,
            threads: summary.threads,
            attachments: included.iter().map(|r| r.attachments.len()).sum(),
            flagged: summary.flagged_files,
        },
        include_discarded,
        excluded,
        with_originals: options.with_originals,
        left_out: summary.left_out,
        filtered_from: options.filtered_from,
        weeks: chart::weeks(included.iter().map(|r| r.received_day)),
        charts,
        rows,
        quarantined: options
            .quarantined
            .iter()
            .map(|q| {
                let id = q.id.to_string();
                (
                    short(&id),
                    id,
                    q.received_day.to_string(),
                    Shown::line(&q.reason),
                )
            })
            .collect(),
    }
}

/// One answer on a submission's page.
pub(super) struct Answer<'a> {
    /// The English question (or the key, for forms without labels).
    pub(super) question: Shown<'a>,
    /// The English answer label (or the raw answer).
    pub(super) answer: Shown<'a>,
    /// The stable key and raw answer, as filters and exports use them.
    pub(super) key: Shown<'a>,
    pub(super) raw: Shown<'a>,
    /// Whether the label differs from the raw answer (then both are shown).
    pub(super) labelled: bool,
}

/// One attachment on a submission's page.
pub(super) struct FileView<'a> {
    /// `file-1`, `file-2`, ...: the anchor of its panel.
    pub(super) anchor: String,
    /// The name the source gave (sanitised by the relay).
    pub(super) name: Shown<'a>,
    /// The name it was copied under, when it differs.
    pub(super) stored: Option<String>,
    pub(super) size: u64,
    pub(super) sha256: String,
    pub(super) kind: &'static str,
    /// The original's copy (only with `--with-originals`).
    pub(super) original_href: Option<String>,
    pub(super) shared_href: Option<String>,
    /// What the link to the copy for sharing says.
    pub(super) shared_label: &'static str,
    /// Neither copied nor linked: no scrubbed copy, and the originals were
    /// not asked for.
    pub(super) left_out: bool,
    /// Shown inline (images only): the scrubbed copy, else the original.
    pub(super) image: Option<String>,
    /// The inline image is the original, with its metadata.
    pub(super) image_is_original: bool,
    /// What the original carries, one line each.
    pub(super) findings: Vec<String>,
    /// What the scrubber did.
    pub(super) scrub: String,
    /// Warnings, one line each (empty: nothing to flag).
    pub(super) flags: Vec<String>,
    pub(super) flagged: bool,
}

/// Origin of a submission: its chain of custody.
pub(super) struct Custody<'a> {
    pub(super) relay_key: Shown<'a>,
    pub(super) batch_sequence: u64,
    pub(super) batch_id: String,
    pub(super) manifest_sha256: String,
    pub(super) ciphertext_sha256: String,
    pub(super) epoch: u32,
}

/// `submissions/<id>.html`.
#[derive(Template)]
#[template(path = "report/submission.html")]
pub(super) struct SubmissionPage<'a> {
    pub(super) head: Head<'a>,
    pub(super) id: String,
    pub(super) received: String,
    pub(super) language: Shown<'a>,
    pub(super) form_version: u32,
    pub(super) status: &'static str,
    pub(super) tags: Vec<Shown<'a>>,
    pub(super) thread: Option<String>,
    pub(super) custody: Custody<'a>,
    pub(super) answers: Vec<Answer<'a>>,
    pub(super) text: Shown<'a>,
    pub(super) files: Vec<FileView<'a>>,
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Jpeg => "JPEG image",
        FileKind::Png => "PNG image",
        FileKind::Webp => "WebP image",
        FileKind::Heic => "HEIC image",
        FileKind::Pdf => "PDF document",
        FileKind::Text => "plain text",
        FileKind::Other => "other file",
    }
}

/// One line describing a finding.
fn describe(f: &Finding) -> String {
    match f {
        Finding::Gps {
            latitude,
            longitude,
        } => match (latitude, longitude) {
            (Some(la), Some(lo)) if la.is_finite() && lo.is_finite() => {
                format!("GPS coordinates: {la:.6}, {lo:.6}")
            }
            _ => "GPS coordinates (present, not readable)".into(),
        },
        Finding::Author { value } => format!("Author: {}", Shown::line(value)),
        Finding::Device { field, value } => {
            format!("Device {}: {}", Shown::line(field), Shown::line(value))
        }
        Finding::Other { field, value } => {
            format!("{}: {}", Shown::line(field), Shown::line(value))
        }
    }
}

/// The flag an identifying finding raises: what it is, and its value.
fn flag_for(f: &Finding) -> String {
    match f {
        Finding::Gps {
            latitude: Some(la),
            longitude: Some(lo),
        } if la.is_finite() && lo.is_finite() => {
            format!("the original carries GPS coordinates: {la:.6}, {lo:.6}")
        }
        Finding::Gps { .. } => "the original carries GPS coordinates (not readable)".to_owned(),
        Finding::Author { value } => format!("the original names a person: {}", Shown::line(value)),
        Finding::Device { field, value } => format!(
            "the original identifies a device ({}): {}",
            Shown::line(field),
            Shown::line(value)
        ),
        Finding::Other { field, value } => {
            format!("{}: {}", Shown::line(field), Shown::line(value))
        }
    }
}

/// Builds a submission's page; `copied` is what copying its attachments
/// found, in the same order.
pub(super) fn submission<'a>(
    r: &'a Record,
    copied: &[Copied],
    head: Head<'a>,
) -> SubmissionPage<'a> {
    let id = r.id.to_string();
    let files = r
        .attachments
        .iter()
        .zip(copied)
        .enumerate()
        .map(|(i, (a, c))| {
            let enc = encode_segment(&c.stored);
            let original_href = c.original.then(|| format!("../files/{id}/original/{enc}"));
            let shared_href = c.shared.then(|| format!("../files/{id}/shared/{enc}"));
            let md = &a.metadata;
            let image = md
                .kind
                .is_image()
                .then(|| shared_href.clone().or_else(|| original_href.clone()))
                .flatten();
            // One flag per reason to stop: each identifying finding, with
            // what it is, and a missing scrubbed copy, with why.
            let mut flags: Vec<String> = md
                .findings
                .iter()
                .filter(|f| crate::archive::is_identifying(f))
                .map(flag_for)
                .collect();
            let scrub = match &md.scrub {
                ScrubOutcome::Scrubbed if c.shared && md.kind == FileKind::Text => {
                    "plain text: no metadata to remove; the copy under “shared” is the file as sent (read it before sharing)".to_owned()
                }
                ScrubOutcome::Scrubbed if c.shared => {
                    "metadata removed: share the copy under “shared”, never the original".to_owned()
                }
                ScrubOutcome::Scrubbed => {
                    flags.push(
                        "no scrubbed copy: the archive names none, though it was recorded as scrubbed; share nothing from this file"
                            .to_owned(),
                    );
                    "no scrubbed copy in the archive".to_owned()
                }
                ScrubOutcome::Unsupported { reason } => {
                    flags.push(format!(
                        "no scrubbed copy: this type cannot be scrubbed ({})",
                        Shown::line(reason)
                    ));
                    "not scrubbed (type not supported): share nothing from this file".to_owned()
                }
                ScrubOutcome::Failed { reason } => {
                    flags.push(format!(
                        "no scrubbed copy: scrubbing failed, a damaged or hostile file ({})",
                        Shown::line(reason)
                    ));
                    "scrubbing failed: share nothing from this file".to_owned()
                }
            };
            if !c.intact {
                flags.push(
                    "the original no longer matches the size and SHA-256 its testimony lists: it changed after import"
                        .to_owned(),
                );
            }
            FileView {
                anchor: format!("file-{}", i + 1),
                name: Shown::line(&a.name),
                stored: (c.stored != a.name).then(|| c.stored.clone()),
                size: a.size,
                sha256: a.sha256.to_string(),
                kind: kind_name(md.kind),
                image_is_original: image.is_some() && shared_href.is_none(),
                image,
                left_out: original_href.is_none() && shared_href.is_none(),
                shared_label: if md.kind == FileKind::Text {
                    "Copy for sharing (plain text, as sent)"
                } else {
                    "Scrubbed copy (for sharing)"
                },
                original_href,
                shared_href,
                findings: md.findings.iter().map(describe).collect(),
                scrub,
                flagged: !flags.is_empty(),
                flags,
            }
        })
        .collect();
    let answers = r
        .fields
        .iter()
        .map(|(key, raw)| {
            let label = r.labels.get(key);
            let answer = label.and_then(|l| l.answer.as_deref()).unwrap_or(raw);
            Answer {
                question: Shown::line(label.map_or(key.as_str(), |l| l.question.as_str())),
                answer: Shown::line(answer),
                key: Shown::line(key),
                raw: Shown::line(raw),
                labelled: answer != raw,
            }
        })
        .collect();
    SubmissionPage {
        head,
        received: r.received_day.to_string(),
        language: Shown::line(&r.language),
        form_version: r.form_version,
        status: r.status.as_str(),
        tags: r.tags.iter().map(|t| Shown::line(t)).collect(),
        thread: r.thread.map(|t| t.to_string()),
        custody: Custody {
            relay_key: Shown::line(&r.origin.relay_key),
            batch_sequence: r.origin.batch_sequence,
            batch_id: r.origin.batch_id.to_string(),
            manifest_sha256: r.origin.manifest_sha256.to_string(),
            ciphertext_sha256: r.origin.ciphertext_sha256.to_string(),
            epoch: r.origin.epoch,
        },
        answers,
        text: Shown::multiline(&r.text),
        files,
        id,
    }
}

/// One submission on a thread's page.
pub(super) struct ThreadItem<'a> {
    pub(super) id: String,
    pub(super) short: String,
    pub(super) received: String,
    pub(super) category: Shown<'a>,
    pub(super) status: &'static str,
    pub(super) excerpt: Shown<'a>,
    pub(super) cut: bool,
    pub(super) files: usize,
    pub(super) flagged: bool,
}

/// One reply sent to the thread's source, on its page.
pub(super) struct ReplyItem<'a> {
    pub(super) id: String,
    pub(super) written: String,
    pub(super) text: Shown<'a>,
}

/// `threads/<id>.html`.
#[derive(Template)]
#[template(path = "report/thread.html")]
pub(super) struct ThreadPage<'a> {
    pub(super) head: Head<'a>,
    pub(super) thread: String,
    pub(super) items: Vec<ThreadItem<'a>>,
    pub(super) replies: Vec<ReplyItem<'a>>,
}

/// Builds a thread's page from its submissions, in received order.
pub(super) fn thread<'a>(
    thread: &ThreadId,
    members: &[&'a Record],
    flagged: &BTreeMap<SubmissionId, bool>,
    sent: &[&'a crate::replies::SentReply],
    head: Head<'a>,
) -> ThreadPage<'a> {
    let replies = sent
        .iter()
        .map(|r| ReplyItem {
            id: r.id.to_string(),
            written: r.written_day.to_string(),
            text: Shown::multiline(r.text.as_str()),
        })
        .collect();
    let items = members
        .iter()
        .map(|r| {
            let id = r.id.to_string();
            let (excerpt, cut) = match r.text.char_indices().nth(EXCERPT_CHARS) {
                Some((i, _)) => (&r.text[..i], true),
                None => (r.text.as_str(), false),
            };
            ThreadItem {
                short: short(&id),
                id,
                received: r.received_day.to_string(),
                category: Shown::line(answer_or_not_said(r, "category")),
                status: r.status.as_str(),
                excerpt: Shown::multiline(excerpt),
                cut,
                files: r.attachments.len(),
                flagged: flagged.get(&r.id).copied().unwrap_or(false),
            }
        })
        .collect();
    ThreadPage {
        head,
        thread: thread.to_string(),
        items,
        replies,
    }
}
