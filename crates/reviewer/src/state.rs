//! The chain state: the last batch accepted from each relay.
//!
//! `docs/format.md`, "What a reviewer checks", step 4: "against the last
//! batch accepted from this relay, `sequence` is exactly one more and
//! `previous_manifest_sha256` equals that batch's manifest hash. With no
//! history, only sequence 1 is accepted unless the reviewer explicitly says
//! where to start."
//!
//! The state belongs to the archive it describes: it lives in the
//! archive's `.state/` directory ([`StateStore::for_archive`]), next to the
//! thread index. A state kept apart from its archive (it used to be in
//! `~/.local/state`) let a batch opened into the wrong folder count as
//! accepted for the real archive, which then refused it as a replay.
//!
//! The state of one relay is a small JSON file, named after the relay's
//! public key (`chain-<16 hex>.json`, the start of the SHA-256 of the
//! pinned key as written). Only a successful `reviewer open` advances it,
//! by an atomic replace (temp file, fsync, rename, fsync of the directory),
//! and only if it still holds the state the batch was verified against.
//! Everything in it can be derived again from the archive's index (the
//! last archived batch of each relay), which is what happens when it is
//! missing: an archive made before the state moved in, or a `.state`
//! deleted by mistake.

use std::io::Write;
use std::path::{Path, PathBuf};

use format::{BatchId, Digest};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::fsutil::{ensure_dir, exists_no_follow, read_small, sync_dir};

/// The `format` value of a state file.
pub const STATE_FORMAT: &str = "relay-reviewer-chain/1";
/// State files are tiny; anything larger is not one.
const MAX_STATE_FILE: u64 = 64 * 1024;
/// The state directory's name inside an archive.
pub const STATE_DIR: &str = ".state";

/// The last batch accepted from one relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// Its sequence number.
    pub sequence: u64,
    /// Its id.
    pub batch_id: BatchId,
    /// The SHA-256 of its exact `manifest.json` bytes.
    pub manifest_sha256: Digest,
}

/// Where a chain of batches must start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainAnchor {
    /// No history: the first batch must be sequence 1.
    Genesis,
    /// No history, and the reviewer said to start at this sequence (any
    /// previous hash is accepted for that first batch).
    StartAt(u64),
    /// The next batch must follow this one.
    After(ChainState),
}

impl ChainAnchor {
    /// The state the store holds when this anchor applies.
    pub(crate) fn prior(&self) -> Option<ChainState> {
        match self {
            Self::After(s) => Some(s.clone()),
            Self::Genesis | Self::StartAt(_) => None,
        }
    }
}

/// The file as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    relay_key: String,
    sequence: u64,
    batch_id: BatchId,
    manifest_sha256: Digest,
}

/// The directory holding one chain state file per relay key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// A store in `dir` (created, `0700`, when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store of the archive in `root`: `root/.state`.
    pub fn for_archive(root: &Path) -> Self {
        Self::new(root.join(STATE_DIR))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file for a relay key.
    pub fn file_for(&self, relay_key: &str) -> PathBuf {
        let digest = Digest::of(relay_key.as_bytes()).to_string();
        let short = digest.get(..16).unwrap_or(&digest);
        self.dir.join(format!("chain-{short}.json"))
    }

    /// The last batch accepted from the relay with this key, if any.
    pub fn load(&self, relay_key: &str) -> Result<Option<ChainState>, Error> {
        let path = self.file_for(relay_key);
        if !exists_no_follow(&path)? {
            return Ok(None);
        }
        let bad = |reason: &str| {
            Error::State(StateError::BadState {
                path: path.clone(),
                reason: reason.into(),
            })
        };
        let bytes = read_small(&path, MAX_STATE_FILE)?;
        let file: StateFile =
            serde_json::from_slice(&bytes).map_err(|_| bad("it is not a chain state file"))?;
        if file.format != STATE_FORMAT {
            return Err(bad("unknown format version"));
        }
        if file.relay_key != relay_key {
            return Err(bad("it records another relay key"));
        }
        if file.sequence == 0 {
            return Err(bad("it records sequence 0"));
        }
        Ok(Some(ChainState {
            sequence: file.sequence,
            batch_id: file.batch_id,
            manifest_sha256: file.manifest_sha256,
        }))
    }

    /// Where the next batch from this relay must start, given the stored
    /// state and an optional `--start-at`.
    pub fn anchor(&self, relay_key: &str, start_at: Option<u64>) -> Result<ChainAnchor, Error> {
        match (self.load(relay_key)?, start_at) {
            (Some(last), Some(_)) => Err(Error::State(StateError::StartAtWithState {
                state: self.file_for(relay_key),
                last: last.sequence,
            })),
            (Some(last), None) => Ok(ChainAnchor::After(last)),
            (None, Some(n)) => Ok(ChainAnchor::StartAt(n)),
            (None, None) => Ok(ChainAnchor::Genesis),
        }
    }

    /// Records `tip` (the archive's last batch of this relay) when the
    /// store has no state for the relay: the state is derived from the
    /// archive it belongs to. Returns whether it wrote one.
    pub(crate) fn seed(&self, relay_key: &str, tip: Option<ChainState>) -> Result<bool, Error> {
        match (self.load(relay_key)?, tip) {
            (None, Some(tip)) => {
                self.advance(relay_key, None, &tip)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Fails unless the store holds exactly `expected` for this relay.
    pub(crate) fn check(
        &self,
        relay_key: &str,
        expected: Option<&ChainState>,
    ) -> Result<(), Error> {
        if self.load(relay_key)?.as_ref() == expected {
            Ok(())
        } else {
            Err(Error::State(StateError::StateChanged {
                path: self.file_for(relay_key),
            }))
        }
    }

    /// Records `next` as the last accepted batch, if the store still holds
    /// `expected` (compare and swap; one reviewer runs one command at a
    /// time, this catches the mistakes).
    pub(crate) fn advance(
        &self,
        relay_key: &str,
        expected: Option<&ChainState>,
        next: &ChainState,
    ) -> Result<(), Error> {
        self.check(relay_key, expected)?;
        ensure_dir(&self.dir)?;
        let path = self.file_for(relay_key);
        let file = StateFile {
            format: STATE_FORMAT.into(),
            relay_key: relay_key.into(),
            sequence: next.sequence,
            batch_id: next.batch_id,
            manifest_sha256: next.manifest_sha256,
        };
        let mut json = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::io("write", &path, std::io::Error::other(e.to_string())))?;
        json.push(b'\n');
        let mut tmp = tempfile::Builder::new()
            .prefix(".chain-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(|e| Error::io("create a temporary file in", &self.dir, e))?;
        tmp.write_all(&json)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| Error::io("write", tmp.path().to_path_buf(), e))?;
        tmp.persist(&path)
            .map_err(|e| Error::io("replace", &path, e.error))?;
        sync_dir(&self.dir)
    }
}

// ------------------------------------------------------------------ errors

/// What can go wrong with the chain state directory (nested in [`crate::Error::State`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// `--start-at` was given although a chain state exists.
    #[error(
        "--start-at is only for a relay this archive holds no batch of, but {state} already records batch {last}: drop --start-at (to start a new chain deliberately, open into a new archive)"
    )]
    StartAtWithState {
        /// The chain state file.
        state: std::path::PathBuf,
        /// The last sequence number it records.
        last: u64,
    },

    /// The chain state file is unreadable or for another relay key.
    #[error(
        "the chain state file {path} is unusable ({reason}): delete it, and the next `reviewer open` derives it again from the archive"
    )]
    BadState {
        /// The state file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The chain state changed while the command ran.
    #[error(
        "the chain state {path} is not what this batch was verified against (another `reviewer open` ran, or a batch before it was not opened): run the command again"
    )]
    StateChanged {
        /// The state file.
        path: std::path::PathBuf,
    },

    /// `--state` was given: the state lives in the archive now.
    #[error(
        "--state is gone: each archive keeps its own chain state and thread index in its .state folder; drop --state{}",
        if *.verify { " (to check batches against an archive, pass --archive DIR)" } else { "" }
    )]
    StateOptionGone {
        /// Whether the command was `verify`.
        verify: bool,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state(seq: u64) -> ChainState {
        ChainState {
            sequence: seq,
            batch_id: BatchId::from_bytes([seq as u8; 16]),
            manifest_sha256: Digest::of(&seq.to_le_bytes()),
        }
    }

    #[test]
    fn advance_is_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("state"));
        assert_eq!(store.load("RWkey").unwrap(), None);
        assert_eq!(store.anchor("RWkey", None).unwrap(), ChainAnchor::Genesis);
        assert_eq!(
            store.anchor("RWkey", Some(4)).unwrap(),
            ChainAnchor::StartAt(4)
        );

        store.advance("RWkey", None, &state(1)).unwrap();
        assert_eq!(store.load("RWkey").unwrap(), Some(state(1)));
        // Stale expectation: refused, unchanged.
        assert!(matches!(
            store.advance("RWkey", None, &state(2)),
            Err(Error::State(StateError::StateChanged { .. }))
        ));
        store.advance("RWkey", Some(&state(1)), &state(2)).unwrap();
        assert_eq!(
            store.anchor("RWkey", None).unwrap(),
            ChainAnchor::After(state(2))
        );
        assert!(matches!(
            store.anchor("RWkey", Some(3)),
            Err(Error::State(StateError::StartAtWithState { last: 2, .. }))
        ));
        // Another relay's key has its own chain.
        assert_eq!(store.load("RWother").unwrap(), None);
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn refuses_foreign_or_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        store.advance("RWkey", None, &state(1)).unwrap();
        let path = store.file_for("RWkey");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("RWkey", "RWevil")).unwrap();
        assert!(matches!(
            store.load("RWkey"),
            Err(Error::State(StateError::BadState { .. }))
        ));
        std::fs::write(&path, b"{}").unwrap();
        assert!(matches!(
            store.load("RWkey"),
            Err(Error::State(StateError::BadState { .. }))
        ));
    }

    proptest! {
        #[test]
        fn round_trip(seq in 1u64.., id in any::<[u8; 16]>(), h in any::<[u8; 32]>()) {
            let dir = tempfile::tempdir().unwrap();
            let store = StateStore::new(dir.path());
            let s = ChainState {
                sequence: seq,
                batch_id: BatchId::from_bytes(id),
                manifest_sha256: Digest::from_bytes(h),
            };
            store.advance("RWk", None, &s).unwrap();
            prop_assert_eq!(store.load("RWk").unwrap(), Some(s));
        }
    }
}
