//! The reviewer: the offline side of the secure submission relay.
//!
//! A reviewer pulls signed batches of sealed submissions from the relay
//! (online, holding no key), carries them to an offline machine, and there
//! verifies and decrypts them:
//!
//! - [`verify`] checks a batch exactly as `docs/format.md` ("What a reviewer
//!   checks, in order") says: member structure, the minisign signature with
//!   the **pinned** relay key, every ciphertext's size and SHA-256, and the
//!   hash chain against the last batch accepted ([`state`]). It writes
//!   nothing.
//! - [`open`] decrypts a [`verify::VerifiedBatch`] (the only kind that can
//!   be opened) with the reviewer's unlocked [`identity::Identity`]s (one per
//!   key epoch they hold), treats each plaintext as hostile, writes one
//!   folder per submission into the reviewer's [`archive`] (with the
//!   custody copies and a scrubbed copy of each attachment), a receipt,
//!   and only then advances the chain state. All or nothing per batch.
//! - [`archive`] is the reviewer's archive (one per laptop): each
//!   submission once, across batches and relays, with its origin, its
//!   attachments' metadata verdicts and its triage state; [`triage`]
//!   selects from it (`list`), [`export`] writes its answers as CSV or
//!   JSON, and [`audit`] re-checks its chain of custody
//!   (`verify-archive`). The walkthrough is `docs/workbench.md`.
//! - [`retire`] destroys the identity of an old key epoch once its batches
//!   are opened and acknowledged, so every lingering copy of that epoch's
//!   ciphertext (on the relay's disk, in backups) becomes unreadable.
//! - [`fetch`] downloads batches and sends receipts back (`ack`) so the
//!   relay deletes what the reviewer holds; it also uploads reply bundles
//!   (`push`).
//! - [`threads`] is the thread index `open` fills: which submissions came
//!   from the same source (a follow-up thread), across batches, and the
//!   source's recipient, taken only from verified batches.
//! - [`reply`] writes a reply to a source, offline: an age file encrypted to
//!   the source's recipient and to the reviewers, in a bundle for `push`;
//!   [`replies`] keeps the NGO's record of each one in the archive.
//! - [`state`] is the chain state: the last batch of each relay the archive
//!   accepted, kept in the archive's `.state/` with the thread index.
//!
//! The formats are specified in `docs/format.md` at the repository root and
//! shared with the relay through the `format` crate.
//!
//! The command line is [`cli`]; [`run`] runs it in-process:
//!
//! ```no_run
//! # fn main() -> Result<(), reviewer::Error> {
//! reviewer::run([
//!     "reviewer", "open", "batch-000001-….tar",
//!     "--identity", "epoch-1.key",
//!     "--identity", "epoch-2.key",
//!     "--relay-key", "RW…",
//!     "--out", "opened",
//! ])?;
//! # Ok(())
//! # }
//! ```
//!
//! or, as a library:
//!
//! ```no_run
//! use std::path::Path;
//! use reviewer::{identity::{Identity, PassphraseSource}, open, state::StateStore, verify};
//!
//! # fn main() -> Result<(), reviewer::Error> {
//! let key = verify::PinnedKey::from_arg("relay.pub")?;
//! // The chain state and thread index belong to the archive they describe.
//! let archive = Path::new("cases");
//! let store = StateStore::for_archive(archive);
//! let anchor = store.anchor(key.as_base64(), None)?;
//! let batches = verify::verify_batches(&[Path::new("batch.tar")], &key, &anchor)?;
//! let identities = [Identity::load(Path::new("reviewer.key"), &PassphraseSource::Terminal)?];
//! // Attachments are scrubbed by this binary run as a child with limits.
//! let scrubber = reviewer::sandbox::Scrubber::current_exe(Default::default())?;
//! for batch in batches {
//!     let opened = open::open_batch(batch, &identities, &scrubber, archive, &store)?;
//!     println!("receipt: {}", opened.receipt.display());
//!     for (id, reason) in &opened.quarantined {
//!         println!("quarantined {id}: {reason}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod archive;
pub mod audit;
pub mod cli;
mod error;
pub mod export;
pub mod fetch;
mod fsutil;
pub mod identity;
pub mod odk;
pub mod onion;
pub mod open;
pub mod passphrase;
pub mod replies;
pub mod reply;
pub mod report;
pub mod retire;
pub mod sandbox;
pub mod scrub;
pub mod signing;
pub mod state;
mod text;
pub mod threads;
pub mod triage;
mod ustar;
pub mod verify;
pub mod workbench;

/// Entry points for the fuzz targets in `fuzz/` (built with `--cfg fuzzing`
/// only; not part of the API).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use std::io::Read as _;

    /// Reads every entry of `data` with the strict tar reader, data
    /// included; returns how many entries it accepted.
    pub fn read_all(data: &[u8]) -> Result<usize, String> {
        let mut tar = crate::ustar::Reader::new(data);
        let mut n = 0;
        let mut sink = [0u8; 4096];
        while let Some(header) = tar.next_entry().map_err(|e| e.to_string())? {
            let mut entry = tar.data();
            let mut read = 0u64;
            loop {
                match entry.read(&mut sink) {
                    Ok(0) => break,
                    Ok(k) => read += k as u64,
                    Err(e) => return Err(e.to_string()),
                }
            }
            assert!(read <= header.size, "read past the declared size");
            n += 1;
        }
        Ok(n)
    }
}

pub use cli::run;
pub use error::Error;
