//! The reviewer's error type.
//!
//! [`Error`] holds the few errors any command can meet (usage, I/O, a path
//! that exists) and one variant per module for the rest, each defined beside
//! the code that raises it (`rustls`'s `Error::InvalidMessage(InvalidMessage)`
//! is the pattern): [`crate::verify::VerifyError`], [`crate::open::OpenError`],
//! [`crate::archive::ArchiveError`], [`crate::fetch::FetchError`], and so on.
//! The nested errors print their own message (`#[error(transparent)]`).
//!
//! Every message is one line that says what went wrong and what to do
//! next. Messages about decryption are coarse on purpose (no oracle), and
//! none of them quotes the content of a testimony or an attachment name:
//! those are hostile input, and error lines end up on terminals and in
//! support requests.

use std::io;
use std::path::PathBuf;

/// Everything that can make a reviewer command fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line could not be parsed (or asked for help/version).
    #[error("{0}")]
    Usage(#[source] clap::Error),

    /// A file or directory could not be read, written or created.
    #[error("{}", io_message(action, path, source))]
    Io {
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },

    /// An output path already exists; the reviewer never overwrites.
    #[error("{path} already exists: refusing to overwrite it; choose another path or move it away")]
    AlreadyExists {
        /// The path that exists.
        path: PathBuf,
    },

    /// A reviewer identity or its passphrase: [`crate::identity::IdentityError`].
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),

    /// A batch that does not verify (structure, signature, hashes, chain): [`crate::verify::VerifyError`].
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),

    /// The chain state directory: [`crate::state::StateError`].
    #[error(transparent)]
    State(#[from] crate::state::StateError),

    /// Decrypting a batch into the archive, or retrying a quarantined submission: [`crate::open::OpenError`].
    #[error(transparent)]
    Open(#[from] crate::open::OpenError),

    /// Retiring a key epoch: [`crate::retire::RetireError`].
    #[error(transparent)]
    Retire(#[from] crate::retire::RetireError),

    /// Talking to the relay (fetch, ack, push): [`crate::fetch::FetchError`].
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),

    /// The thread index: [`crate::threads::ThreadError`].
    #[error(transparent)]
    Thread(#[from] crate::threads::ThreadError),

    /// Writing a reply: [`crate::reply::ReplyError`].
    #[error(transparent)]
    Reply(#[from] crate::reply::ReplyError),

    /// A reply-signing key could not be made, read or used.
    #[error(transparent)]
    Signing(#[from] crate::signing::SigningError),

    /// ODK encrypted forms: [`crate::odk::OdkError`].
    #[error(transparent)]
    Odk(#[from] crate::odk::OdkError),

    /// The archive and its workbench: [`crate::archive::ArchiveError`].
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),

    /// An onion client key: [`crate::onion::OnionAuthError`].
    #[error(transparent)]
    OnionAuth(#[from] crate::onion::OnionAuthError),
}

impl Error {
    /// A second line worth printing under the message, when there is one.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Verify(crate::verify::VerifyError::NotFirst { .. })
            | Self::Verify(crate::verify::VerifyError::Gap { .. })
            | Self::Verify(crate::verify::VerifyError::Replay { .. }) => Some(
                "each archive keeps the chain of the batches it holds in its .state folder; open a relay's batches into one archive, in order",
            ),
            Self::Verify(crate::verify::VerifyError::BadSignature { .. }) => Some(
                "pin the key once, from a trusted channel: compare it with the operator in person",
            ),
            Self::Identity(crate::identity::IdentityError::WeakPassphrase { .. }) => Some(
                "six random words are about 77 bits: nobody guesses them, and they are easier to type and remember than a short password full of symbols",
            ),
            Self::Open(crate::open::OpenError::WrongIdentity { .. }) => Some(
                "pass --identity once for each key epoch you hold; an epoch whose identities were all retired can never be opened again",
            ),
            Self::Thread(crate::threads::ThreadError::ThreadConflict { .. }) => Some(
                "a thread's source recipient is derived from the source's codename and never changes",
            ),
            Self::Thread(crate::threads::ThreadError::UnknownThread { .. })
            | Self::Thread(crate::threads::ThreadError::ThreadNotInBatches { .. }) => {
                Some("`reviewer open` records the threads of every batch it opens in the archive")
            }
            Self::Archive(crate::archive::ArchiveError::SubmissionConflict { .. })
            | Self::Archive(crate::archive::ArchiveError::BatchConflict { .. }) => Some(
                "nothing in the archive changed; `reviewer verify-archive DIR` re-checks what it holds",
            ),
            Self::Retire(crate::retire::RetireError::NotAnIdentityFile { .. })
            | Self::Retire(crate::retire::RetireError::RetireNotConfirmed { .. })
            | Self::Retire(crate::retire::RetireError::NoTerminalToConfirm { .. }) => Some(
                "retire an epoch only after the relay seals to a newer one and every batch of it is opened and acknowledged",
            ),
            _ => None,
        }
    }

    /// Names the archive in a replay refusal (the chain state it was
    /// checked against is that archive's).
    pub(crate) fn in_archive(self, dir: &std::path::Path) -> Self {
        match self {
            Self::Verify(crate::verify::VerifyError::Replay {
                path,
                sequence,
                last,
                archive: None,
            }) => Self::Verify(crate::verify::VerifyError::Replay {
                path,
                sequence,
                last,
                archive: Some(dir.into()),
            }),
            e => e,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The line for an I/O error, with what to do for the common causes.
fn io_message(action: &str, path: &std::path::Path, source: &io::Error) -> String {
    let shown = path.display();
    match source.kind() {
        io::ErrorKind::NotFound => {
            // A shell leaves a glob that matches nothing as it is.
            let glob = path.to_string_lossy().contains('*');
            format!(
                "could not {action} {shown}: it does not exist{}",
                if glob {
                    " (no file matches the pattern: run the step that makes those files first, e.g. `reviewer fetch` for batches, `reviewer open` for receipts)"
                } else {
                    ": check the path"
                }
            )
        }
        io::ErrorKind::PermissionDenied => {
            format!("could not {action} {shown}: permission denied: check who owns it and its mode")
        }
        _ => format!("could not {action} {shown}: {source}"),
    }
}

/// A list of paths for a one-line message.
pub(crate) fn paths(list: &[PathBuf]) -> String {
    let shown: Vec<String> = list.iter().map(|p| p.display().to_string()).collect();
    if shown.is_empty() {
        "no identity".into()
    } else {
        shown.join(", ")
    }
}

/// Makes a message safe to print on one terminal line: control characters
/// (including newlines and escape sequences) and bidirectional overrides
/// become `\u{..}` escapes. Error messages can quote file names and relay
/// answers, which are not trusted.
pub(crate) fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || format::is_deceptive(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn printable_keeps_one_line() {
        assert_eq!(printable("a\nb\x1b[31m"), "a\\u{000a}b\\u{001b}[31m");
        assert_eq!(printable("évil\u{202e}"), "évil\\u{202e}");
    }

    #[test]
    fn messages_are_one_line() {
        let e = Error::Fetch(crate::fetch::FetchError::TokenRefused { path: "tok".into() });
        assert_eq!(
            e.to_string(),
            "the relay refused the token in tok (401): check the token file"
        );
        assert!(!e.to_string().contains('\n'));
    }
}
