//! Replying to a source, offline: `reviewer reply` writes a reply bundle
//! that `reviewer push` ([`crate::fetch::push`]) uploads, or that an
//! operator imports with `relay import-replies`.
//!
//! `docs/format.md`, "Replies": a reply is one age file whose plaintext is
//! a `relay-reply/1` message ([`ReplyMessage`]), encrypted to the source's
//! recipient **and** to reviewers' recipients, so that the NGO keeps a copy
//! it can read. The relay cannot read it; it decrypts it only for a source
//! who enters the codename.
//!
//! The source's recipient is taken only from batches whose signature
//! verified with the pinned relay key: from the thread index that
//! `reviewer open` fills from verified batches ([`source_from_index`]), or
//! from batch files verified here ([`source_from_batches`]). An unverified
//! manifest could name anyone's key.
//!
//! The message's plaintext exists only in memory (zeroized when dropped);
//! the only file written is the bundle, which holds ciphertext.

use std::fs;
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};

use format::{
    Day, MAX_REPLY_CIPHERTEXT_BYTES, MAX_REPLY_JSON_BYTES, MAX_REPLY_TEXT_CHARS,
    MAX_SIGNED_BUNDLE_BYTES, ReplyBundle, ReplyId, ReplyMessage, SignedReplyBundle, ThreadId,
};
use zeroize::{Zeroize as _, Zeroizing};

use crate::Error;
use crate::fsutil::{create_private_file, exists_no_follow, read_small, sync_dir};
use crate::identity::{Recipient, encrypt_to};
use crate::signing::ReplySigner;
use crate::state::StateStore;
use crate::threads::{ThreadIndex, index_path};
use crate::verify::{PinnedKey, verify_signed};

/// The most bytes a message file may hold: the longest text in the widest
/// UTF-8 characters, plus a little.
const MAX_MESSAGE_BYTES: usize = 4 * MAX_REPLY_TEXT_CHARS + 1024;
/// Recipients files are small.
const MAX_RECIPIENTS_FILE: u64 = 1024 * 1024;

/// A source's recipient for one thread, taken from a verified batch (only
/// [`source_from_index`] and [`source_from_batches`] make one).
#[derive(Debug, Clone)]
pub struct SourceRecipient {
    thread: ThreadId,
    recipient: Recipient,
}

impl SourceRecipient {
    /// The thread.
    pub fn thread(&self) -> ThreadId {
        self.thread
    }

    /// The source's recipient.
    pub fn recipient(&self) -> &Recipient {
        &self.recipient
    }

    fn new(thread: ThreadId, recipient: &str) -> Result<Self, Error> {
        Recipient::parse(recipient)
            .map(|recipient| Self { thread, recipient })
            .map_err(|_| Error::Reply(ReplyError::BadSourceRecipient { thread }))
    }
}

/// The source's recipient for `thread` from the thread index in `store`.
pub fn source_from_index(store: &StateStore, thread: ThreadId) -> Result<SourceRecipient, Error> {
    let index = ThreadIndex::load(store)?;
    let t = index.get(&thread).ok_or_else(|| {
        Error::Thread(crate::threads::ThreadError::UnknownThread {
            thread,
            index: index_path(store),
        })
    })?;
    SourceRecipient::new(thread, &t.recipient)
}

/// The source's recipient for `thread` from the batch files (`*.tar`) in
/// `dir`, each verified (structure, signature with the pinned key, hashes)
/// as `reviewer verify` does, but not against the chain state: they may be
/// batches opened long ago. Any batch that fails verification, or two that
/// disagree about the thread's recipient, refuse the reply.
pub fn source_from_batches(
    dir: &Path,
    key: &PinnedKey,
    thread: ThreadId,
) -> Result<SourceRecipient, Error> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let path = entry.path();
        let is_tar = path.extension().is_some_and(|x| x == "tar");
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if is_tar && !hidden {
            paths.push(path);
        }
    }
    paths.sort();
    // (recipient, batch sequence) of the first batch that named the thread.
    let mut found: Option<(String, u64)> = None;
    for path in &paths {
        let batch = verify_signed(path, key)?;
        let m = batch.manifest();
        let Some(t) = m.threads.iter().find(|t| t.id == thread) else {
            continue;
        };
        match &found {
            None => found = Some((t.recipient.clone(), m.sequence)),
            Some((known, seq)) if *known != t.recipient => {
                return Err(Error::Thread(crate::threads::ThreadError::ThreadConflict {
                    path: path.clone(),
                    sequence: m.sequence,
                    thread,
                    reason: format!(
                        "it gives the thread another source recipient ({} instead of {known}, from batch {seq})",
                        t.recipient
                    ),
                }));
            }
            Some(_) => {}
        }
    }
    match found {
        Some((recipient, _)) => SourceRecipient::new(thread, &recipient),
        None => Err(Error::Thread(
            crate::threads::ThreadError::ThreadNotInBatches {
                thread,
                dir: dir.into(),
                checked: paths.len(),
            },
        )),
    }
}

/// The reviewers' recipients: each `-r` value, then each recipients file's
/// lines, each once. At least one is required.
pub fn reviewer_recipients(
    given: &[String],
    files: &[PathBuf],
    source: &SourceRecipient,
) -> Result<Vec<Recipient>, Error> {
    let mut all = Vec::new();
    for r in given {
        all.push(Recipient::parse(r).map_err(|reason| {
            Error::Reply(ReplyError::BadRecipient {
                input: r.chars().take(100).collect(),
                reason,
            })
        })?);
    }
    for f in files {
        all.extend(read_recipients_file(f)?);
    }
    let mut out: Vec<Recipient> = Vec::with_capacity(all.len());
    for r in all {
        // The source's own key is no copy for the NGO.
        if r != source.recipient && !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err(Error::Reply(ReplyError::NoReviewerRecipient));
    }
    Ok(out)
}

/// Reads an age recipients file: one `age1…` recipient per line; lines
/// starting with `#` and blank lines are ignored.
pub fn read_recipients_file(path: &Path) -> Result<Vec<Recipient>, Error> {
    let bytes = read_small(path, MAX_RECIPIENTS_FILE)?;
    let bad = |line, reason| {
        Error::Reply(ReplyError::BadRecipientsFile {
            path: path.into(),
            line,
            reason,
        })
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad(0, "it is not UTF-8 text"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(Recipient::parse(line).map_err(|reason| bad(i + 1, reason))?);
    }
    if out.is_empty() {
        return Err(bad(0, "it holds no recipient"));
    }
    Ok(out)
}

/// Reads the reply's text from `path` (`-` for standard input) and makes
/// the message, written on `day`. Refuses text that is not UTF-8, empty,
/// or longer than the format allows. The bytes read are zeroized.
pub fn load_message(path: &Path, day: Day) -> Result<ReplyMessage, Error> {
    let bad = |reason: String| {
        Error::Reply(ReplyError::BadReplyMessage {
            path: path.into(),
            reason,
        })
    };
    // Sized up front so that reading never reallocates (which would leave
    // copies of the text in freed memory).
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_MESSAGE_BYTES + 2));
    let limit = MAX_MESSAGE_BYTES as u64 + 1;
    let read = if path == Path::new("-") {
        io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|e| Error::io("read", path, e))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(bad(format!(
            "the text is longer than {MAX_REPLY_TEXT_CHARS} characters"
        )));
    }
    let text = match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Zeroizing::new(text),
        Err(e) => {
            e.into_bytes().zeroize();
            return Err(bad("it is not UTF-8 text".into()));
        }
    };
    let message = ReplyMessage::new(day, text);
    message.check().map_err(|e| {
        bad(match e {
            format::Error::Invalid { rule, .. } => rule,
            other => other.to_string(),
        })
    })?;
    // What the source's side will parse: check it parses here first.
    let json = message.to_json();
    if json.len() > MAX_REPLY_JSON_BYTES {
        return Err(bad(format!(
            "it is larger than {MAX_REPLY_JSON_BYTES} bytes once encoded"
        )));
    }
    ReplyMessage::from_json(&json).map_err(|e| bad(e.to_string()))?;
    Ok(message)
}

/// A fresh random reply id, from the operating system's random source.
/// (The one place randomness enters a reply; [`write_reply`] takes the id
/// as an argument, so tests can fix it.)
pub fn random_reply_id() -> ReplyId {
    use rand::RngCore as _;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    ReplyId::from_bytes(bytes)
}

/// What [`write_reply`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReply {
    /// The reply's id.
    pub id: ReplyId,
    /// The thread it answers.
    pub thread: ThreadId,
    /// The bundle file.
    pub path: PathBuf,
    /// How many reviewer recipients can read it (besides the source).
    pub reviewers: usize,
}

/// Encrypts `message` to the source and the reviewers and writes a
/// one-reply bundle, signed with `signer`, to `out` (created `0600`; an
/// existing file is never overwritten).
pub fn write_reply(
    source: &SourceRecipient,
    reviewers: &[Recipient],
    message: &ReplyMessage,
    id: ReplyId,
    signer: &ReplySigner,
    out: &Path,
) -> Result<WrittenReply, Error> {
    if reviewers.is_empty() {
        return Err(Error::Reply(ReplyError::NoReviewerRecipient));
    }
    // Fail before encrypting; create_new below closes the race.
    if exists_no_follow(out)? {
        return Err(Error::AlreadyExists { path: out.into() });
    }
    let mut recipients = vec![&source.recipient];
    recipients.extend(reviewers);
    let plaintext = message.to_json();
    let ciphertext = encrypt_to(&recipients, &plaintext)
        .map_err(|e| Error::io("encrypt the reply for", out, e))?;
    drop(plaintext);
    if ciphertext.len() > MAX_REPLY_CIPHERTEXT_BYTES {
        return Err(Error::Reply(ReplyError::BadReplyMessage {
            path: out.into(),
            reason: format!(
                "encrypted to {} recipients it is larger than {MAX_REPLY_CIPHERTEXT_BYTES} bytes; give fewer recipients",
                recipients.len()
            ),
        }));
    }
    let mut bundle = ReplyBundle::new();
    bundle.push(source.thread, id, &ciphertext);
    let inner = bundle.to_json();
    let signature = signer.sign_bundle(&inner)?;
    let json = SignedReplyBundle::new(&inner, signature).to_json();
    // What `reviewer push` and the relay will read: check it here.
    SignedReplyBundle::from_json(&json)
        .and_then(|s| s.bundle())
        .map_err(|e| {
            Error::Reply(ReplyError::BadBundle {
                path: out.into(),
                reason: e.to_string(),
            })
        })?;

    let mut file = create_private_file(out)?;
    if let Err(e) = file.write_all(&json).and_then(|()| file.sync_all()) {
        drop(file);
        // Never leave half a bundle behind.
        let _ = fs::remove_file(out);
        return Err(Error::io("write", out, e));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(WrittenReply {
        id,
        thread: source.thread,
        path: out.into(),
        reviewers: reviewers.len(),
    })
}

/// A reply bundle read from a file and checked ([`ReplyBundle::from_json`]):
/// the only thing [`crate::fetch::push`] sends.
pub struct CheckedBundle {
    path: PathBuf,
    bytes: Vec<u8>,
    bundle: ReplyBundle,
}

impl std::fmt::Debug for CheckedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the ciphertext: up to hundreds of MiB of base64.
        f.debug_struct("CheckedBundle")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .field("replies", &self.bundle.replies.len())
            .finish()
    }
}

impl CheckedBundle {
    /// Reads and checks the bundle at `path`; nothing is sent.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let bytes = read_small(path, MAX_SIGNED_BUNDLE_BYTES as u64)?;
        let bad = |reason: String| {
            Error::Reply(ReplyError::BadBundle {
                path: path.into(),
                reason,
            })
        };
        // The signature is the relay's to check (it pins the keys); the
        // shape of what it covers is checked here.
        let bundle = SignedReplyBundle::from_json(&bytes)
            .and_then(|s| s.bundle())
            .map_err(|e| bad(e.to_string()))?;
        if bundle.replies.is_empty() {
            return Err(bad("it holds no reply".into()));
        }
        Ok(Self {
            path: path.into(),
            bytes,
            bundle,
        })
    }

    /// The bundle file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed bundle.
    pub fn bundle(&self) -> &ReplyBundle {
        &self.bundle
    }

    /// The file's path and exact bytes (what is sent).
    pub(crate) fn into_parts(self) -> (PathBuf, Vec<u8>) {
        (self.path, self.bytes)
    }
}

// ------------------------------------------------------------------ errors

/// What can go wrong with writing a reply (nested in [`crate::Error::Reply`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A reply needs at least one reviewer recipient.
    #[error(
        "no reviewer recipient given: pass -r age1… (your own recipient, as `reviewer keygen` printed it) or --recipients-file FILE, so the NGO keeps a readable copy of the reply"
    )]
    NoReviewerRecipient,

    /// A recipient given on the command line is not an age X25519 recipient.
    #[error(
        "-r {input:?} is not an age X25519 recipient ({reason}): pass the age1… line `reviewer keygen` printed"
    )]
    BadRecipient {
        /// What was given (shortened).
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A line of a recipients file is not an age X25519 recipient.
    #[error(
        "{path} line {line} is not an age X25519 recipient ({reason}): a recipients file holds one age1… recipient per line, with # comments and blank lines"
    )]
    BadRecipientsFile {
        /// The recipients file.
        path: std::path::PathBuf,
        /// The line number (from 1; 0 for the file as a whole).
        line: usize,
        /// Why it was refused (never the line's content).
        reason: &'static str,
    },

    /// A thread's source recipient cannot be used (a relay bug).
    #[error(
        "the source recipient of thread {thread} is not a usable age X25519 recipient: no reply can be encrypted to it; tell the relay operator"
    )]
    BadSourceRecipient {
        /// The thread.
        thread: format::ThreadId,
    },

    /// The reply message cannot be sent.
    #[error(
        "the message {path} cannot be sent as a reply ({reason}): write plain UTF-8 text, not empty and at most {max} characters",
        max = format::MAX_REPLY_TEXT_CHARS
    )]
    BadReplyMessage {
        /// The message file (`-` for standard input).
        path: std::path::PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
    },

    /// A file given to `push` is not a reply bundle.
    #[error(
        "{path} is not a reply bundle `reviewer reply` writes ({reason}): nothing was sent; write the reply again with `reviewer reply`"
    )]
    BadBundle {
        /// The bundle file.
        path: std::path::PathBuf,
        /// Why it was refused.
        reason: String,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn recipient() -> String {
        age::x25519::Identity::generate().to_public().to_string()
    }

    #[test]
    fn recipients_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("reviewers.txt");
        let (a, b) = (recipient(), recipient());
        std::fs::write(&f, format!("# the NGO\n\n  {a}  \n# second\n{b}\r\n")).unwrap();
        let got: Vec<String> = read_recipients_file(&f)
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(got, vec![a.clone(), b]);

        std::fs::write(&f, format!("{a}\nage1notarecipient\n")).unwrap();
        let e = read_recipients_file(&f).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Reply(ReplyError::BadRecipientsFile { line: 2, .. })
            ),
            "{e}"
        );
        assert!(!e.to_string().contains("notarecipient"), "{e}");
        std::fs::write(&f, "ssh-ed25519 AAAA… me\n").unwrap();
        let e = read_recipients_file(&f).unwrap_err();
        assert!(e.to_string().contains("only age X25519"), "{e}");
        std::fs::write(&f, "# nothing\n\n").unwrap();
        assert!(matches!(
            read_recipients_file(&f),
            Err(Error::Reply(ReplyError::BadRecipientsFile { line: 0, .. }))
        ));
    }

    #[test]
    fn reviewer_recipients_are_deduplicated_and_exclude_the_source() {
        let source = SourceRecipient::new(ThreadId::from_bytes([1; 16]), &recipient()).unwrap();
        let a = recipient();
        let got = reviewer_recipients(&[a.clone(), a.clone()], &[], &source).unwrap();
        assert_eq!(got.len(), 1);
        let only_source = [source.recipient().to_string()];
        assert!(matches!(
            reviewer_recipients(&only_source, &[], &source),
            Err(Error::Reply(ReplyError::NoReviewerRecipient))
        ));
        assert!(matches!(
            reviewer_recipients(&[], &[], &source),
            Err(Error::Reply(ReplyError::NoReviewerRecipient))
        ));
        assert!(matches!(
            reviewer_recipients(&["AGE-SECRET-KEY-1XYZ".into()], &[], &source),
            Err(Error::Reply(ReplyError::BadRecipient { .. }))
        ));
    }

    #[test]
    fn messages_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.txt");
        let day: Day = "2026-11-28".parse().unwrap();
        std::fs::write(&f, "Спасибо. We read it.\n").unwrap();
        let m = load_message(&f, day).unwrap();
        assert_eq!(m.text.as_str(), "Спасибо. We read it.\n");
        assert_eq!(m.written_day, day);
        for (content, reason) in [
            (b" \n\t".to_vec(), "empty"),
            (b"\xff\xfe".to_vec(), "UTF-8"),
            ("я".repeat(MAX_REPLY_TEXT_CHARS + 1).into_bytes(), "longer"),
            (vec![b'a'; MAX_MESSAGE_BYTES + 1], "longer"),
        ] {
            std::fs::write(&f, &content).unwrap();
            let e = load_message(&f, day).unwrap_err();
            assert!(
                matches!(&e, Error::Reply(ReplyError::BadReplyMessage { reason: r, .. }) if r.contains(reason)),
                "{reason}: {e}"
            );
        }
        std::fs::write(&f, "я".repeat(MAX_REPLY_TEXT_CHARS)).unwrap();
        assert!(load_message(&f, day).is_ok());
    }

    #[test]
    fn reply_ids_differ() {
        assert_ne!(random_reply_id(), random_reply_id());
    }
}
