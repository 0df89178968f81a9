//! Selecting archived submissions: the filters of `reviewer list`.
//!
//! Every filter given must hold (AND). Answers are compared by their
//! stable keys (`--category health`, `--region aktobe`), as the relay's
//! questionnaire stores them; `reviewer show` prints both the key and its
//! English label. The text search is a case-insensitive substring search
//! over the testimony's text and its answers (keys' values and the English
//! labels of chosen answers).

use format::{Day, ThreadId};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::Error;
use crate::archive::{Archive, MIN_ID_PREFIX, check_tag, relay_fingerprint};
use crate::workbench::{Record, Status};

/// What `reviewer list` selects. The default selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The `category` answer's key.
    pub category: Option<String>,
    /// The `region` answer's key (or text, for relays without a region list).
    pub region: Option<String>,
    /// The triage status.
    pub status: Option<Status>,
    /// Tags that must all be present.
    pub tags: Vec<String>,
    /// Received on or after this day.
    pub from: Option<Day>,
    /// Received on or before this day.
    pub to: Option<Day>,
    /// A case-insensitive substring of the text or an answer.
    pub search: Option<String>,
    /// The follow-up thread.
    pub thread: Option<ThreadId>,
}

impl Filter {
    /// Checks the tags given (so that a typo is an error, not an empty
    /// list).
    pub fn check(&self) -> Result<(), Error> {
        for t in &self.tags {
            check_tag(t).map_err(|reason| {
                Error::Archive(crate::archive::ArchiveError::BadTag {
                    tag: t.chars().take(50).collect(),
                    reason,
                })
            })?;
        }
        Ok(())
    }

    /// Whether `r` passes every filter given.
    pub fn matches(&self, r: &Record) -> bool {
        let field_is = |key: &str, want: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| r.fields.get(key).is_some_and(|v| v == w))
        };
        field_is("category", &self.category)
            && field_is("region", &self.region)
            && self.status.is_none_or(|s| r.status == s)
            && self.tags.iter().all(|t| r.tags.contains(t))
            && self.from.is_none_or(|d| r.received_day >= d)
            && self.to.is_none_or(|d| r.received_day <= d)
            && self.thread.is_none_or(|t| r.thread == Some(t))
            && self.search.as_ref().is_none_or(|s| contains_text(r, s))
    }
}

/// Case-insensitive substring search over the text and the answers.
fn contains_text(r: &Record, needle: &str) -> bool {
    let needle = Zeroizing::new(needle.to_lowercase());
    if needle.is_empty() {
        return true;
    }
    let hit = |hay: &str| Zeroizing::new(hay.to_lowercase()).contains(needle.as_str());
    hit(&r.text)
        || r.fields.values().any(|v| hit(v))
        || r.labels
            .values()
            .filter_map(|l| l.answer.as_deref())
            .any(hit)
}

/// The thread a `--thread` option names: its full id or a unique prefix
/// of at least 6 hex digits among the archive's threads.
pub fn resolve_thread(archive: &Archive, given: &str) -> Result<ThreadId, Error> {
    let g = given.trim().to_ascii_lowercase();
    let bad = |reason: &'static str| {
        Error::Archive(crate::archive::ArchiveError::BadSubmissionId {
            given: given.chars().take(80).collect(),
            reason,
        })
    };
    if g.len() < MIN_ID_PREFIX || g.len() > 32 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            "a thread id is 32 hexadecimal digits; give at least 6 of them",
        ));
    }
    let mut threads: Vec<ThreadId> = archive
        .submissions()
        .filter_map(|s| s.thread)
        .filter(|t| t.to_string().starts_with(&g))
        .collect();
    threads.sort();
    threads.dedup();
    match threads.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Archive(
            crate::archive::ArchiveError::UnknownThread {
                given: g,
                dir: archive.root().into(),
            },
        )),
        more => Err(Error::Archive(
            crate::archive::ArchiveError::AmbiguousThread {
                given: g,
                matches: more.len(),
            },
        )),
    }
}

/// One line of `reviewer list --format json`: everything but the text.
#[derive(Serialize)]
pub(crate) struct Summary<'a> {
    id: String,
    received_day: Day,
    status: Status,
    tags: Vec<&'a str>,
    thread: Option<String>,
    relay: String,
    batch_sequence: u64,
    language: &'a str,
    fields: &'a std::collections::BTreeMap<String, String>,
    attachments: usize,
    /// Attachments with identifying metadata, or with no scrubbed copy.
    flagged: usize,
}

impl<'a> Summary<'a> {
    /// The summary of a record.
    pub(crate) fn of(r: &'a Record) -> Self {
        Self {
            id: r.id.to_string(),
            received_day: r.received_day,
            status: r.status,
            tags: r.tags.iter().map(String::as_str).collect(),
            thread: r.thread.map(|t| t.to_string()),
            relay: relay_fingerprint(&r.origin.relay_key),
            batch_sequence: r.origin.batch_sequence,
            language: &r.language,
            fields: &r.fields,
            attachments: r.attachments.len(),
            flagged: r
                .attachments
                .iter()
                .filter(|a| crate::archive::is_flagged(a))
                .count(),
        }
    }
}
