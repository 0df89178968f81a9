//! The thread index: which submissions came from the same source, and the
//! source's recipient to reply to.
//!
//! A source who took a codename has a follow-up **thread**: the relay puts
//! its id on each of the source's submissions in a batch manifest and lists,
//! once per thread, the source's age recipient (derived by the relay from
//! the codename). `reviewer open` records both in `threads.json` in the
//! state directory, next to the chain state, so that a reviewer can see a
//! source's submissions across batches (`reviewer threads`) and reply later
//! without the batch files (`reviewer reply`).
//!
//! Only a batch whose signature and chain verified (a
//! [`VerifiedBatch`]) is recorded: a recipient never comes from an
//! unverified manifest. A thread's recipient is derived from the codename
//! and never changes, so a later batch that gives a known thread another
//! recipient (or moves a submission to another thread) is refused whole:
//! replying to it would hand the source's replies to someone else.
//!
//! The file says which submissions came from one source: it is as
//! sensitive as the opened cases and lives, like them, on the offline
//! machine (`0600`, replaced atomically).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use format::{Day, Manifest, SubmissionId, ThreadId, is_x25519_recipient};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::fsutil::{exists_no_follow, read_small, replace_file};
use crate::state::StateStore;
use crate::verify::VerifiedBatch;

/// The `format` value of the thread index.
pub const THREADS_FORMAT: &str = "relay-reviewer-threads/1";
/// The thread index's file name in the state directory.
pub const THREADS_FILE: &str = "threads.json";
/// The largest thread index read (about a million submissions).
const MAX_THREADS_FILE: u64 = 256 * 1024 * 1024;

/// One submission of a thread, as the signed manifest of its batch said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadSubmission {
    /// The submission (its folder in the output directory of `open`).
    pub id: SubmissionId,
    /// The sequence number of the batch that held it.
    pub batch_sequence: u64,
    /// UTC day the relay received it.
    pub received_day: Day,
    /// The pinned relay key the batch verified with.
    pub relay_key: String,
}

/// One follow-up thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thread {
    /// The thread's id (what `reviewer reply --thread` takes).
    pub id: ThreadId,
    /// The source's age X25519 recipient (`age1…`), from a verified batch.
    pub recipient: String,
    /// Its submissions, in the order they were opened.
    pub submissions: Vec<ThreadSubmission>,
}

impl Thread {
    /// The sequence numbers of the batches holding its submissions,
    /// ascending, each once.
    pub fn batches(&self) -> Vec<u64> {
        let set: BTreeSet<u64> = self.submissions.iter().map(|s| s.batch_sequence).collect();
        set.into_iter().collect()
    }

    /// One line: `thread <id>: 3 submissions in batches 1, 4`.
    pub fn summary(&self) -> String {
        let n = self.submissions.len();
        let batches: Vec<String> = self.batches().iter().map(u64::to_string).collect();
        format!(
            "thread {}: {n} submission{} in batch{} {}",
            self.id,
            if n == 1 { "" } else { "s" },
            if batches.len() == 1 { "" } else { "es" },
            batches.join(", ")
        )
    }
}

/// The file as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexFile {
    format: String,
    threads: Vec<Thread>,
}

/// Every thread recorded from the batches opened so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadIndex {
    threads: BTreeMap<ThreadId, Thread>,
}

/// The thread index file of a state directory.
pub fn index_path(store: &StateStore) -> PathBuf {
    store.dir().join(THREADS_FILE)
}

impl ThreadIndex {
    /// The index in `store`; empty if there is none yet.
    pub fn load(store: &StateStore) -> Result<Self, Error> {
        let path = index_path(store);
        if !exists_no_follow(&path)? {
            return Ok(Self::default());
        }
        let bytes = read_small(&path, MAX_THREADS_FILE)?;
        Self::from_json(&bytes)
            .map_err(|reason| Error::Thread(ThreadError::BadThreadIndex { path, reason }))
    }

    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let file: IndexFile = serde_json::from_slice(bytes)
            .map_err(|e| format!("it is not a thread index file: {e}"))?;
        if file.format != THREADS_FORMAT {
            return Err("unknown format version".into());
        }
        let mut threads = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for t in file.threads {
            if !is_x25519_recipient(&t.recipient) {
                return Err(format!("thread {} has no valid age1… recipient", t.id));
            }
            if t.submissions.is_empty() {
                return Err(format!("thread {} lists no submission", t.id));
            }
            for s in &t.submissions {
                if !seen.insert(s.id) {
                    return Err(format!("submission {} is listed twice", s.id));
                }
                if s.batch_sequence == 0
                    || s.relay_key.is_empty()
                    || !s.relay_key.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(format!(
                        "submission {} has an invalid batch or relay key",
                        s.id
                    ));
                }
            }
            let id = t.id;
            if threads.insert(id, t).is_some() {
                return Err(format!("thread {id} is listed twice"));
            }
        }
        Ok(Self { threads })
    }

    fn to_json(&self) -> Vec<u8> {
        let file = IndexFile {
            format: THREADS_FORMAT.into(),
            threads: self.threads.values().cloned().collect(),
        };
        // Serialising strings and integers into a Vec cannot fail.
        let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Makes sure the archive's state directory has a thread index: when
    /// `threads.json` is missing from an archive that holds batches (an
    /// archive made before the index moved in, or a `.state` deleted by
    /// mistake), it is rebuilt from the custody copies of the batches'
    /// signed manifests, each checked against the SHA-256 the archive
    /// recorded and verified with the relay key it was opened with, and
    /// saved. Returns whether it rebuilt one.
    pub fn ensure(archive: &crate::archive::Archive, store: &StateStore) -> Result<bool, Error> {
        if exists_no_follow(&index_path(store))? || archive.batches().is_empty() {
            return Ok(false);
        }
        let mut index = Self::default();
        for b in archive.batches() {
            let dir = crate::archive::custody_batch_dir(
                archive.root(),
                &b.relay_key,
                b.sequence,
                &b.batch_id,
            );
            let bad = |reason: String| {
                Error::Thread(ThreadError::CannotRebuild {
                    dir: dir.clone(),
                    reason,
                })
            };
            let manifest = read_small(
                &dir.join(format::BATCH_MANIFEST),
                format::MAX_MANIFEST_BYTES as u64,
            )?;
            let sig = read_small(
                &dir.join(format::BATCH_SIGNATURE),
                format::MAX_SIGNATURE_BYTES as u64,
            )?;
            if format::Digest::of(&manifest) != b.manifest_sha256 {
                return Err(bad("its manifest.json is not the one archived".into()));
            }
            let key = crate::verify::PinnedKey::from_arg(&b.relay_key)?;
            let m = crate::verify::check_signed_manifest(&key, &manifest, &sig)
                .map_err(|_| bad("its signature does not verify".into()))?;
            index.record_manifest(&m, &dir, &b.relay_key)?;
        }
        index.save(store)?;
        Ok(true)
    }

    /// Writes the index into `store` (atomically replaced, `0600`).
    pub(crate) fn save(&self, store: &StateStore) -> Result<(), Error> {
        replace_file(store.dir(), &index_path(store), &self.to_json())
    }

    /// The thread with this id, if known.
    pub fn get(&self, id: &ThreadId) -> Option<&Thread> {
        self.threads.get(id)
    }

    /// Every thread, in id order.
    pub fn threads(&self) -> impl Iterator<Item = &Thread> {
        self.threads.values()
    }

    /// Whether no thread is known.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Records the threads of a verified batch and returns the ids it
    /// names, in manifest order. Refuses, changing nothing, a batch that
    /// contradicts the index. Recording a batch twice changes nothing.
    pub(crate) fn record(&mut self, batch: &VerifiedBatch) -> Result<Vec<ThreadId>, Error> {
        self.record_manifest(batch.manifest(), batch.path(), batch.relay_key())
    }

    fn record_manifest(
        &mut self,
        m: &Manifest,
        path: &Path,
        relay_key: &str,
    ) -> Result<Vec<ThreadId>, Error> {
        let conflict = |thread: ThreadId, reason: String| {
            Error::Thread(ThreadError::ThreadConflict {
                path: path.into(),
                sequence: m.sequence,
                thread,
                reason,
            })
        };
        // Check everything first, so that a refused batch changes nothing.
        for t in &m.threads {
            if let Some(known) = self.threads.get(&t.id)
                && known.recipient != t.recipient
            {
                return Err(conflict(
                    t.id,
                    format!(
                        "it gives the thread another source recipient ({} instead of {}, recorded from batch {})",
                        t.recipient,
                        known.recipient,
                        known.submissions.first().map_or(0, |s| s.batch_sequence)
                    ),
                ));
            }
        }
        let owner: HashMap<SubmissionId, ThreadId> = self
            .threads
            .values()
            .flat_map(|t| t.submissions.iter().map(|s| (s.id, t.id)))
            .collect();
        for e in &m.submissions {
            if let Some(thread) = e.thread
                && let Some(earlier) = owner.get(&e.id)
                && *earlier != thread
            {
                return Err(conflict(
                    thread,
                    format!(
                        "it puts submission {} in this thread, an earlier batch put it in thread {earlier}",
                        e.id
                    ),
                ));
            }
        }

        let recipients: HashMap<ThreadId, &str> = m
            .threads
            .iter()
            .map(|t| (t.id, t.recipient.as_str()))
            .collect();
        let mut named = Vec::new();
        for e in &m.submissions {
            let Some(thread) = e.thread else { continue };
            // Manifest::from_json guarantees that `threads` lists every
            // thread an entry names; a missing one is skipped, not trusted.
            let Some(recipient) = recipients.get(&thread) else {
                continue;
            };
            let t = self.threads.entry(thread).or_insert_with(|| Thread {
                id: thread,
                recipient: (*recipient).to_owned(),
                submissions: Vec::new(),
            });
            if !t.submissions.iter().any(|s| s.id == e.id) {
                t.submissions.push(ThreadSubmission {
                    id: e.id,
                    batch_sequence: m.sequence,
                    received_day: e.received_day,
                    relay_key: relay_key.to_owned(),
                });
            }
            if !named.contains(&thread) {
                named.push(thread);
            }
        }
        Ok(named)
    }
}

/// Checks that these verified batches, recorded in order, agree with the
/// index in `store` and with each other; writes nothing. `reviewer open`
/// runs it before unlocking identities, so a contradicting batch is refused
/// before any batch is opened.
pub fn check_batches(store: &StateStore, batches: &[VerifiedBatch]) -> Result<(), Error> {
    if batches.iter().all(|b| b.manifest().threads.is_empty()) {
        return Ok(());
    }
    let mut index = ThreadIndex::load(store)?;
    for b in batches {
        index.record(b)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ errors

/// What can go wrong with the thread index (nested in [`crate::Error::Thread`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThreadError {
    /// A verified batch contradicts what earlier verified batches said
    /// about a follow-up thread (another source recipient, or a submission
    /// moved between threads).
    #[error(
        "batch {sequence} ({path}) contradicts earlier batches about thread {thread}: {reason}; this is a relay bug or an attack; nothing was written; do not reply to this thread and tell the relay operator"
    )]
    ThreadConflict {
        /// The batch file.
        path: std::path::PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The thread.
        thread: format::ThreadId,
        /// What it contradicts.
        reason: String,
    },

    /// The thread index file is unreadable or broken.
    #[error(
        "the thread index {path} is unusable ({reason}): delete it, and the next command rebuilds it from the archive's signed manifests"
    )]
    BadThreadIndex {
        /// The thread index file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A missing thread index could not be rebuilt from the archive.
    #[error(
        "the thread index cannot be rebuilt from the custody copy in {dir} ({reason}): run `reviewer verify-archive` on the archive to see what is damaged"
    )]
    CannotRebuild {
        /// The custody directory of the batch.
        dir: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The thread index does not know the thread a reply is for.
    #[error(
        "thread {thread} is not in the thread index {index}: check the id with `reviewer threads`, open the batch that names it first, or pass --batch-dir DIR --relay-key PUB"
    )]
    UnknownThread {
        /// The thread asked for.
        thread: format::ThreadId,
        /// The thread index file.
        index: std::path::PathBuf,
    },

    /// No verified batch in the directory names the thread.
    #[error(
        "no batch in {dir} names thread {thread} ({checked} batches verified): check the thread id, or fetch the batch that names it into {dir}"
    )]
    ThreadNotInBatches {
        /// The thread asked for.
        thread: format::ThreadId,
        /// The batch directory.
        dir: std::path::PathBuf,
        /// How many batches were verified.
        checked: usize,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use format::{BatchId, Digest, MANIFEST_FORMAT, ManifestEntry, ThreadEntry};

    const R1: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    const R2: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

    fn t(n: u8) -> ThreadId {
        ThreadId::from_bytes([n; 16])
    }

    fn s(n: u8) -> SubmissionId {
        SubmissionId::from_bytes([n; 16])
    }

    fn manifest(sequence: u64, subs: &[(u8, Option<(u8, &str)>)]) -> Manifest {
        let mut threads: BTreeMap<ThreadId, String> = BTreeMap::new();
        let submissions = subs
            .iter()
            .map(|(id, thread)| {
                if let Some((n, r)) = thread {
                    threads.insert(t(*n), (*r).to_owned());
                }
                ManifestEntry {
                    id: s(*id),
                    received_day: "2026-11-27".parse().unwrap(),
                    epoch: 1,
                    size: 1,
                    sha256: Digest::of(b"x"),
                    thread: thread.map(|(n, _)| t(n)),
                }
            })
            .collect();
        Manifest {
            format: MANIFEST_FORMAT.into(),
            relay_key: "RWkey".into(),
            batch_id: BatchId::from_bytes([sequence as u8; 16]),
            sequence,
            previous_manifest_sha256: (sequence > 1).then(|| Digest::of(b"p")),
            created_day: "2026-11-28".parse().unwrap(),
            submissions,
            threads: threads
                .into_iter()
                .map(|(id, recipient)| ThreadEntry { id, recipient })
                .collect(),
            demo: false,
        }
    }

    fn record(index: &mut ThreadIndex, m: &Manifest) -> Result<Vec<ThreadId>, Error> {
        index.record_manifest(m, Path::new("b.tar"), "RWkey")
    }

    #[test]
    fn groups_across_batches_and_is_idempotent() {
        let mut index = ThreadIndex::default();
        let m1 = manifest(1, &[(1, Some((7, R1))), (2, None), (3, Some((8, R2)))]);
        assert_eq!(record(&mut index, &m1).unwrap(), vec![t(7), t(8)]);
        let m4 = manifest(4, &[(4, Some((7, R1)))]);
        assert_eq!(record(&mut index, &m4).unwrap(), vec![t(7)]);
        let again = index.clone();
        record(&mut index, &m4).unwrap();
        assert_eq!(index, again);

        let th = index.get(&t(7)).unwrap();
        assert_eq!(th.recipient, R1);
        let ids: Vec<_> = th
            .submissions
            .iter()
            .map(|x| (x.id, x.batch_sequence))
            .collect();
        assert_eq!(ids, vec![(s(1), 1), (s(4), 4)]);
        assert_eq!(
            th.summary(),
            format!("thread {}: 2 submissions in batches 1, 4", t(7))
        );
        assert_eq!(
            index.get(&t(8)).unwrap().summary(),
            format!("thread {}: 1 submission in batch 1", t(8))
        );
        assert!(index.get(&t(9)).is_none());

        let back = ThreadIndex::from_json(&index.to_json()).unwrap();
        assert_eq!(back, index);
    }

    #[test]
    fn contradictions_are_refused_and_change_nothing() {
        let mut index = ThreadIndex::default();
        record(&mut index, &manifest(1, &[(1, Some((7, R1)))])).unwrap();
        let before = index.clone();

        let other_recipient = manifest(2, &[(5, None), (2, Some((7, R2)))]);
        let e = record(&mut index, &other_recipient).unwrap_err();
        assert!(
            matches!(&e, Error::Thread(ThreadError::ThreadConflict { thread, sequence: 2, reason, .. })
                if *thread == t(7) && reason.contains("another source recipient")),
            "{e}"
        );
        assert_eq!(index, before);

        let moved = manifest(2, &[(9, Some((8, R2))), (1, Some((8, R2)))]);
        let e = record(&mut index, &moved).unwrap_err();
        assert!(
            matches!(&e, Error::Thread(ThreadError::ThreadConflict { reason, .. }) if reason.contains("an earlier batch put it in thread")),
            "{e}"
        );
        assert_eq!(index, before);
    }

    #[test]
    fn refuses_broken_files() {
        let mut index = ThreadIndex::default();
        record(
            &mut index,
            &manifest(1, &[(1, Some((7, R1))), (2, Some((8, R2)))]),
        )
        .unwrap();
        let json = String::from_utf8(index.to_json()).unwrap();
        assert!(ThreadIndex::from_json(json.as_bytes()).is_ok());
        for (from, to) in [
            (THREADS_FORMAT, "relay-reviewer-threads/9"),
            (R1, "age1short"),
            (&s(2).to_string(), &s(1).to_string()),
            (&t(8).to_string(), &t(7).to_string()),
            ("\"batch_sequence\": 1", "\"batch_sequence\": 0"),
            ("\"format\"", "\"extra\": 1, \"format\""),
        ] {
            let bad = json.replace(from, to);
            assert_ne!(bad, json);
            assert!(ThreadIndex::from_json(bad.as_bytes()).is_err(), "{to}");
        }
        assert!(ThreadIndex::from_json(b"{}").is_err());
    }

    #[test]
    fn load_and_save_in_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("state"));
        assert!(ThreadIndex::load(&store).unwrap().is_empty());
        let mut index = ThreadIndex::default();
        record(&mut index, &manifest(1, &[(1, Some((7, R1)))])).unwrap();
        index.save(&store).unwrap();
        assert_eq!(ThreadIndex::load(&store).unwrap(), index);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(index_path(&store))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(index_path(&store), b"not json").unwrap();
        assert!(matches!(
            ThreadIndex::load(&store),
            Err(Error::Thread(ThreadError::BadThreadIndex { .. }))
        ));
    }
}
