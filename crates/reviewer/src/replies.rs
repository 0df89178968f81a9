//! The replies sent to sources, kept in the archive (`replies.json`).
//!
//! `reviewer reply` writes a bundle that goes to the relay; the NGO's own
//! record of what it told a source stays here, in the source's thread, on
//! the offline laptop where it was written: `reviewer replies` reads them,
//! `reviewer show` and `reviewer threads` list them with their thread, and
//! the report shows them on the thread's page. The relay's copy is
//! encrypted to the source and the reviewers and is deleted once the
//! source reads it; this one is the archive's.
//!
//! The file holds the replies' plain text: it is as sensitive as the
//! testimonies beside it (`0600`, replaced atomically, never outside the
//! archive).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use format::{Day, ReplyId, ThreadId};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;
use crate::fsutil::{exists_no_follow, read_small, replace_file};

/// The `format` value of the replies file.
pub const REPLIES_FORMAT: &str = "relay-archive-replies/1";
/// The replies file's name in the archive.
pub const REPLIES_FILE: &str = "replies.json";
/// The largest replies file read (tens of thousands of long replies).
const MAX_REPLIES_FILE: u64 = 256 * 1024 * 1024;

/// One reply sent to a source.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentReply {
    /// The reply's id (the one in the bundle).
    pub id: ReplyId,
    /// The thread it answers.
    pub thread: ThreadId,
    /// The UTC day it was written (what the source sees).
    pub written_day: Day,
    /// Its text, as the source reads it.
    pub text: Zeroizing<String>,
}

impl fmt::Debug for SentReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentReply")
            .field("id", &self.id)
            .field("thread", &self.thread)
            .field("written_day", &self.written_day)
            .field("text", &"[redacted]")
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepliesFile {
    format: String,
    replies: Vec<SentReply>,
}

/// Every reply recorded in one archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replies {
    replies: BTreeMap<ReplyId, SentReply>,
}

/// The replies file of the archive in `root`.
pub fn replies_path(root: &Path) -> PathBuf {
    root.join(REPLIES_FILE)
}

impl Replies {
    /// The replies recorded in the archive in `root`; none if it has no
    /// replies file yet.
    pub fn load(root: &Path) -> Result<Self, Error> {
        let path = replies_path(root);
        if !exists_no_follow(&path)? {
            return Ok(Self::default());
        }
        let bytes = read_small(&path, MAX_REPLIES_FILE)?;
        let bad = |reason: String| {
            Error::Archive(crate::archive::ArchiveError::BadReplies {
                path: path.clone(),
                reason,
            })
        };
        let file: RepliesFile = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("it is not a replies file: {e}")))?;
        if file.format != REPLIES_FORMAT {
            return Err(bad("unknown format version".into()));
        }
        let mut replies = BTreeMap::new();
        for r in file.replies {
            let id = r.id;
            if replies.insert(id, r).is_some() {
                return Err(bad(format!("reply {id} is listed twice")));
            }
        }
        Ok(Self { replies })
    }

    /// Records a reply (a reply already recorded is left as it is).
    pub(crate) fn record(&mut self, reply: SentReply) {
        self.replies.entry(reply.id).or_insert(reply);
    }

    /// Writes the file into the archive in `root` (atomically, `0600`).
    pub(crate) fn save(&self, root: &Path) -> Result<(), Error> {
        let file = RepliesFile {
            format: REPLIES_FORMAT.into(),
            replies: self.replies.values().cloned().collect(),
        };
        // Serialising strings into a Vec cannot fail. The buffer holds the
        // replies' text: zeroized once written.
        let mut json = Zeroizing::new(serde_json::to_vec_pretty(&file).unwrap_or_default());
        json.push(b'\n');
        replace_file(root, &replies_path(root), &json)
    }

    /// The replies to `thread`, oldest first (by day, then id).
    pub fn of_thread(&self, thread: &ThreadId) -> Vec<&SentReply> {
        let mut out: Vec<&SentReply> = self
            .replies
            .values()
            .filter(|r| r.thread == *thread)
            .collect();
        out.sort_by_key(|r| (r.written_day, r.id));
        out
    }

    /// Every reply, by thread then oldest first.
    pub fn all(&self) -> Vec<&SentReply> {
        let mut out: Vec<&SentReply> = self.replies.values().collect();
        out.sort_by_key(|r| (r.thread, r.written_day, r.id));
        out
    }

    /// Whether none is recorded.
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }
}

impl SentReply {
    /// The reply as `show` and `replies` print it: a heading line, then
    /// the text indented by four spaces, each line made printable (control
    /// characters and bidirectional overrides escaped: the text was typed
    /// by a reviewer, but may quote a source).
    pub fn render(&self) -> String {
        let mut out = format!("  reply {}, written {}:\n", self.id, self.written_day);
        for line in self.text.lines() {
            out.push_str("    ");
            out.push_str(&crate::error::printable(line));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reply(id: u8, thread: u8, day: &str, text: &str) -> SentReply {
        SentReply {
            id: ReplyId::from_bytes([id; 16]),
            thread: ThreadId::from_bytes([thread; 16]),
            written_day: day.parse().unwrap(),
            text: Zeroizing::new(text.into()),
        }
    }

    #[test]
    fn round_trip_and_order() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Replies::load(dir.path()).unwrap().is_empty());
        let mut r = Replies::default();
        r.record(reply(2, 1, "2026-11-03", "Рахмет, біз хабарластық."));
        r.record(reply(1, 1, "2026-11-05", "second"));
        r.record(reply(3, 2, "2026-11-01", "other thread"));
        // Recording an id again keeps the first.
        r.record(reply(2, 1, "2026-11-03", "changed"));
        r.save(dir.path()).unwrap();
        let back = Replies::load(dir.path()).unwrap();
        assert_eq!(back, r);
        let t1: Vec<&str> = back
            .of_thread(&ThreadId::from_bytes([1; 16]))
            .iter()
            .map(|r| r.text.as_str())
            .collect();
        assert_eq!(t1, ["Рахмет, біз хабарластық.", "second"]);
        assert_eq!(back.all().len(), 3);
    }

    #[test]
    fn refuses_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            replies_path(dir.path()),
            b"{\"format\":\"x\",\"replies\":[]}",
        )
        .unwrap();
        assert!(matches!(
            Replies::load(dir.path()),
            Err(Error::Archive(
                crate::archive::ArchiveError::BadReplies { .. }
            ))
        ));
        let r = reply(1, 1, "2026-11-03", "a");
        let json = serde_json::to_string(&RepliesFile {
            format: REPLIES_FORMAT.into(),
            replies: vec![r.clone(), r],
        })
        .unwrap();
        std::fs::write(replies_path(dir.path()), json).unwrap();
        assert!(Replies::load(dir.path()).is_err());
    }
}
