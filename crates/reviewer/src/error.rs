//! The one error type of the reviewer.
//!
//! Every message is one line that says what went wrong and what to do
//! next. Messages about decryption are coarse on purpose (no oracle), and
//! none of them quotes the content of a testimony or an attachment name:
//! those are hostile input, and error lines end up on terminals and in
//! support requests.

use std::io;
use std::path::PathBuf;

use format::{BatchId, SubmissionId, ThreadId};

/// Everything that can make a reviewer command fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line could not be parsed (or asked for help/version).
    #[error("{0}")]
    Usage(#[source] clap::Error),

    /// A file or directory could not be read, written or created.
    #[error("could not {action} {path}: {source}")]
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

    /// A passphrase was needed but there is no terminal to ask on.
    #[error("no terminal to ask for the passphrase: use --passphrase-file FILE")]
    NoTerminal {
        /// Why the terminal could not be used.
        #[source]
        source: io::Error,
    },

    /// The passphrase given is empty.
    #[error("the passphrase is empty: choose a non-empty passphrase")]
    EmptyPassphrase,

    /// The passphrase was typed twice, differently.
    #[error("the two passphrases differ: run the command again")]
    PassphraseMismatch,

    /// The passphrase file is unusable.
    #[error(
        "the passphrase file {path} is unusable ({reason}): put the passphrase on its first line"
    )]
    PassphraseFile {
        /// The passphrase file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The passphrase does not unlock the identity file.
    #[error("wrong passphrase for {path}: try again (check --passphrase-file if you used it)")]
    WrongPassphrase {
        /// The identity file.
        path: PathBuf,
    },

    /// The identity file is not one the reviewer can use.
    #[error(
        "{path} is not a usable age identity file ({reason}): pass the file `reviewer keygen` wrote"
    )]
    BadIdentity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
    },

    /// `--relay-key` is neither a minisign public key nor a file holding one.
    #[error(
        "--relay-key {input:?} is not a minisign public key ({reason}): pass the RW… key `relay pubkey` prints, or a file holding it"
    )]
    BadRelayKey {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },

    /// A batch file does not have the structure `docs/format.md` requires.
    #[error(
        "{path} is not a well-formed batch ({reason}): do not trust it; fetch it again from the relay"
    )]
    MalformedBatch {
        /// The batch file.
        path: PathBuf,
        /// The rule that was broken.
        reason: String,
    },

    /// The manifest signature does not verify with the pinned relay key.
    #[error(
        "batch {path} is not signed by the pinned relay key (or its signature is damaged): check --relay-key (`relay pubkey` prints it) or do not trust this batch"
    )]
    BadSignature {
        /// The batch file.
        path: PathBuf,
    },

    /// The signed manifest breaks a rule (or names another relay key).
    #[error(
        "the signed manifest of {path} is invalid ({reason}): do not trust this batch and tell the relay operator"
    )]
    InvalidManifest {
        /// The batch file.
        path: PathBuf,
        /// The rule that was broken.
        reason: String,
    },

    /// A sealed submission's size or SHA-256 differs from the signed manifest.
    #[error(
        "submission {id} in {path} does not match the signed manifest ({what} differs): the batch was altered or damaged; fetch it again"
    )]
    SubmissionMismatch {
        /// The batch file.
        path: PathBuf,
        /// The submission.
        id: SubmissionId,
        /// `"size"` or `"SHA-256"`.
        what: &'static str,
    },

    /// The batch was accepted before (a replay or an old copy).
    #[error(
        "batch {sequence} ({path}) was already accepted (last accepted: batch {last}): it is a replay or an old copy; open only newer batches"
    )]
    Replay {
        /// The batch file.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The last sequence number accepted from this relay.
        last: u64,
    },

    /// One or more batches between the last accepted one and this one are missing.
    #[error("batch {sequence} ({path}) was given but batch {expected} comes next: batches {expected} to {last_missing} are missing; fetch and open them first", last_missing = .sequence.saturating_sub(1))]
    Gap {
        /// The batch file.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The sequence number that should come next.
        expected: u64,
    },

    /// The batch does not chain to the previous one (hash mismatch).
    #[error(
        "batch {sequence} ({path}) does not chain to the batch before it (previous manifest hash differs): the relay's history was altered or forked; do not trust it and contact the relay operator"
    )]
    ChainBroken {
        /// The batch file.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
    },

    /// No history with this relay, and the batch is not its first.
    #[error(
        "batch {sequence} ({path}) is not the relay's first batch and the chain state records no earlier batch from this relay: open batch 1 first, or pass --start-at {sequence} if you deliberately start at this batch"
    )]
    NotFirst {
        /// The batch file.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
    },

    /// `--start-at N` was given but the first batch has another sequence.
    #[error(
        "--start-at {start_at} was given but the first batch given ({path}) is batch {sequence}: pass the batch numbered {start_at} (and the ones after it)"
    )]
    StartAtMismatch {
        /// The batch file.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The `--start-at` value.
        start_at: u64,
    },

    /// `--start-at` was given although a chain state exists.
    #[error(
        "--start-at is only for a first contact with a relay, but {state} already records batch {last}: drop --start-at (or move the state file away to restart the chain deliberately)"
    )]
    StartAtWithState {
        /// The chain state file.
        state: PathBuf,
        /// The last sequence number it records.
        last: u64,
    },

    /// Two batch files hold the same sequence number.
    #[error(
        "{first} and {second} both hold batch {sequence}: pass each batch once (if they differ, the relay's history forked: do not trust it)"
    )]
    DuplicateSequence {
        /// One batch file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
        /// The sequence number they share.
        sequence: u64,
    },

    /// The chain state file is unreadable or for another relay key.
    #[error(
        "the chain state file {path} is unusable ({reason}): restore it from a backup, or move it away and restart the chain with --start-at"
    )]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The chain state changed while the command ran.
    #[error(
        "the chain state {path} is not what this batch was verified against (another `reviewer open` ran, or a batch before it was not opened): run the command again"
    )]
    StateChanged {
        /// The state file.
        path: PathBuf,
    },

    /// No state directory could be determined.
    #[error("no directory for the chain state: pass --state DIR or set REVIEWER_STATE_DIR")]
    NoStateDir,

    /// None of the identities given can decrypt a submission.
    #[error(
        "submission {id} was sealed to epoch {epoch}; none of the given identities can open it (retired or not given): the batch was refused and nothing from it was written; given: {}",
        paths(.identities)
    )]
    WrongIdentity {
        /// The submission.
        id: SubmissionId,
        /// The key epoch the manifest says it was sealed to.
        epoch: u32,
        /// The identity files given.
        identities: Vec<PathBuf>,
    },

    /// `--passphrase-file` was given a number of times that matches
    /// neither one for all identities nor one per identity.
    #[error(
        "--passphrase-file was given {files} times for {identities} identities: give it once (one passphrase for every identity) or once per --identity, in the same order"
    )]
    PassphraseFiles {
        /// How many `--identity` options.
        identities: usize,
        /// How many `--passphrase-file` options.
        files: usize,
    },

    /// `retire-epoch` was pointed at something that is not an identity file.
    #[error(
        "{path} is not an age identity file ({reason}): nothing was destroyed; pass the identity file of the epoch to retire"
    )]
    NotAnIdentityFile {
        /// The file.
        path: PathBuf,
        /// Why it was refused (never its content).
        reason: &'static str,
    },

    /// The user did not type the epoch number to confirm `retire-epoch`.
    #[error(
        "the confirmation did not match epoch {epoch}: nothing was destroyed; run the command again and type {epoch} to confirm"
    )]
    RetireNotConfirmed {
        /// The epoch to retire.
        epoch: u32,
    },

    /// `retire-epoch` needs a confirmation and there is no terminal.
    #[error(
        "no terminal to confirm retiring epoch {epoch} on: nothing was destroyed; run the command on a terminal, or pass --yes if you are sure"
    )]
    NoTerminalToConfirm {
        /// The epoch to retire.
        epoch: u32,
        /// Why the terminal could not be used.
        #[source]
        source: io::Error,
    },

    /// A submission could not be decrypted although an identity matched.
    #[error(
        "submission {id} could not be decrypted (damaged or invalid age file): the batch was refused and nothing from it was written; keep the batch file and tell the relay operator"
    )]
    Undecryptable {
        /// The submission.
        id: SubmissionId,
    },

    /// A submission's plaintext breaks the format (possibly on purpose).
    #[error(
        "submission {id} has a malformed or hostile plaintext ({reason}): the batch was refused and nothing from it was written; keep the batch file for inspection"
    )]
    HostileSubmission {
        /// The submission.
        id: SubmissionId,
        /// The rule that was broken (never the offending content).
        reason: &'static str,
    },

    /// The scrubbing helper (the `reviewer` binary itself, run as a child
    /// with limits) cannot be used.
    #[error(
        "cannot run the scrubbing helper {path}: {reason}; reinstall reviewer (or pass --scrub-helper FILE with the reviewer binary)"
    )]
    ScrubHelper {
        /// The program tried.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// `retry` named a submission that is not quarantined.
    #[error(
        "submission {id} is not quarantined in {dir}: `reviewer list {dir} --quarantined` lists those that are"
    )]
    NotQuarantined {
        /// The submission.
        id: SubmissionId,
        /// The archive directory.
        dir: PathBuf,
    },

    /// `retry` could not open a quarantined submission this time either.
    #[error(
        "submission {id} is still quarantined ({reason}): its ciphertext stays in custody; try again with a newer reviewer or higher limits (--scrub-memory)"
    )]
    StillQuarantined {
        /// The submission.
        id: SubmissionId,
        /// Why it failed again.
        reason: String,
    },

    /// The batch file changed between verification and decryption.
    #[error(
        "{path} changed while it was being opened: nothing from it was written; fetch it again and re-run open"
    )]
    ChangedSinceVerify {
        /// The batch file.
        path: PathBuf,
    },

    /// A staging directory from an interrupted `open` is in the way.
    #[error(
        "{path} is left over from an interrupted open and may hold decrypted testimony: inspect it, delete it, then run open again"
    )]
    StagingExists {
        /// The staging directory.
        path: PathBuf,
    },

    /// The token file is unusable.
    #[error("the token file {path} is unusable ({reason}): put the API token on its first line")]
    TokenFile {
        /// The token file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// `--relay` is not a usable URL.
    #[error(
        "--relay {url:?} is not usable ({reason}): pass the relay's base URL, e.g. https://relay.example.org"
    )]
    BadRelayUrl {
        /// What was given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// `--relay` is plain http to a host that is neither loopback nor onion.
    #[error(
        "refusing to send the API token over plain http to {url}: use https:// (plain http is only allowed to localhost and .onion addresses)"
    )]
    InsecureRelayUrl {
        /// The URL.
        url: String,
    },

    /// `--tls-cert` is not a usable PEM certificate.
    #[error("--tls-cert {path} is not usable ({reason}): pass the relay's certificate in PEM form")]
    TlsCert {
        /// The certificate file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },

    /// The relay could not be reached or the connection failed.
    #[error(
        "could not talk to the relay at {url} ({detail}): check the address, the network and --tls-cert"
    )]
    Http {
        /// The URL requested.
        url: String,
        /// The innermost cause.
        detail: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// The relay answered 401.
    #[error("the relay refused the token in {path} (401): check the token file")]
    TokenRefused {
        /// The token file.
        path: PathBuf,
    },

    /// The relay answered with a status this command does not expect.
    #[error(
        "the relay answered {status} to {what}: check the relay's address and version, or try again later"
    )]
    UnexpectedStatus {
        /// The request.
        what: String,
        /// The HTTP status code.
        status: u16,
    },

    /// The relay's answer is malformed.
    #[error(
        "the relay sent a malformed answer to {what} ({reason}): do not trust it; tell the relay operator"
    )]
    BadResponse {
        /// The request.
        what: String,
        /// What is wrong with the answer.
        reason: String,
    },

    /// The relay's answer is larger than any legitimate one.
    #[error(
        "the relay's answer to {what} is larger than {max} bytes: refusing it; tell the relay operator"
    )]
    ResponseTooLarge {
        /// The request.
        what: String,
        /// The limit.
        max: u64,
    },

    /// The relay holds a different batch under the acknowledged id.
    #[error(
        "the relay holds a different batch under {batch_id} (manifest hash mismatch): do not trust this relay's batches until you know why"
    )]
    AckConflict {
        /// The batch id.
        batch_id: BatchId,
    },

    /// The relay does not know the acknowledged batch.
    #[error(
        "the relay does not know batch {batch_id} (already purged?): nothing to do if you acknowledged it before"
    )]
    AckUnknown {
        /// The batch id.
        batch_id: BatchId,
    },

    /// The receipt file is unusable.
    #[error("{path} is not a receipt written by `reviewer open` ({reason})")]
    BadReceipt {
        /// The receipt file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },

    /// A verified batch contradicts what earlier verified batches said
    /// about a follow-up thread (another source recipient, or a submission
    /// moved between threads).
    #[error(
        "batch {sequence} ({path}) contradicts earlier batches about thread {thread}: {reason}; this is a relay bug or an attack; nothing was written; do not reply to this thread and tell the relay operator"
    )]
    ThreadConflict {
        /// The batch file.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The thread.
        thread: ThreadId,
        /// What it contradicts.
        reason: String,
    },

    /// The thread index file is unreadable or broken.
    #[error(
        "the thread index {path} is unusable ({reason}): restore it from a backup, or move it away (replies can still be written with --batch-dir)"
    )]
    BadThreadIndex {
        /// The thread index file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The thread index does not know the thread a reply is for.
    #[error(
        "thread {thread} is not in the thread index {index}: check the id with `reviewer threads`, open the batch that names it first, or pass --batch-dir DIR --relay-key PUB"
    )]
    UnknownThread {
        /// The thread asked for.
        thread: ThreadId,
        /// The thread index file.
        index: PathBuf,
    },

    /// No verified batch in the directory names the thread.
    #[error(
        "no batch in {dir} names thread {thread} ({checked} batches verified): check the thread id, or fetch the batch that names it into {dir}"
    )]
    ThreadNotInBatches {
        /// The thread asked for.
        thread: ThreadId,
        /// The batch directory.
        dir: PathBuf,
        /// How many batches were verified.
        checked: usize,
    },

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
        path: PathBuf,
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
        thread: ThreadId,
    },

    /// The reply message cannot be sent.
    #[error(
        "the message {path} cannot be sent as a reply ({reason}): write plain UTF-8 text, not empty and at most {max} characters",
        max = format::MAX_REPLY_TEXT_CHARS
    )]
    BadReplyMessage {
        /// The message file (`-` for standard input).
        path: PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
    },

    /// A file given to `push` is not a reply bundle.
    #[error(
        "{path} is not a reply bundle `reviewer reply` writes ({reason}): nothing was sent; write the reply again with `reviewer reply`"
    )]
    BadBundle {
        /// The bundle file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },

    /// The relay answered 400 to a reply bundle.
    #[error(
        "the relay refused {path} as malformed (400: {reason}): nothing of it was stored; check that the relay runs the same version as this reviewer"
    )]
    BundleMalformed {
        /// The bundle file.
        path: PathBuf,
        /// The relay's reason, shortened.
        reason: String,
    },

    /// The relay answered 422 to a reply bundle.
    #[error(
        "the relay refused {path} (422: {reason}): nothing of it was stored; check that each reply's thread comes from this relay's batches"
    )]
    BundleRefused {
        /// The bundle file.
        path: PathBuf,
        /// The relay's reason, shortened.
        reason: String,
    },

    /// The relay answered 413 to a reply bundle.
    #[error(
        "the relay refused {path} as too large (413): nothing of it was stored; push fewer or shorter replies per bundle"
    )]
    BundleTooLarge {
        /// The bundle file.
        path: PathBuf,
    },

    /// A directory given to a workbench command holds no archive.
    #[error(
        "{dir} is not a reviewer archive (it has no archive.json): pass the directory `reviewer open … --out DIR` opened batches into"
    )]
    NotAnArchive {
        /// The directory.
        dir: PathBuf,
    },

    /// The archive index or triage file is unreadable or broken.
    #[error(
        "the archive file {path} is unusable ({reason}): restore it from a backup of the archive (the submission folders and .custody are intact unless `reviewer verify-archive` says otherwise)"
    )]
    BadArchive {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A batch names an id or sequence the archive holds with another
    /// manifest: the relay's history forked.
    #[error(
        "batch {sequence} of relay {relay} ({path}) is not the batch {archived_sequence} already in the archive under the same id or sequence: the relay's history forked (a relay bug or an attack); nothing was written; do not trust this batch and tell the relay operator"
    )]
    BatchConflict {
        /// The batch file.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The relay's fingerprint.
        relay: String,
        /// The sequence number of the archived batch it collides with.
        archived_sequence: u64,
    },

    /// The batch is already in the archive (`reviewer open` reports it as
    /// nothing to do; the library refuses to open it twice).
    #[error("batch {sequence} of relay {relay} is already in the archive {dir}: nothing to do")]
    AlreadyArchived {
        /// Its sequence number.
        sequence: u64,
        /// The relay's fingerprint.
        relay: String,
        /// The archive directory.
        dir: PathBuf,
    },

    /// A submission id the archive holds arrives with another ciphertext.
    #[error(
        "submission {id} in batch {sequence} ({path}) has another ciphertext than the one archived from relay {archived_relay} batch {archived_sequence}: the same id with different content is a relay bug or an attack; nothing from the batch was written; keep both batch files and tell the relay operators"
    )]
    SubmissionConflict {
        /// The submission.
        id: SubmissionId,
        /// The batch file.
        path: PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The fingerprint of the relay it was archived from.
        archived_relay: String,
        /// The batch it was archived from.
        archived_sequence: u64,
    },

    /// A submission id on the command line is malformed.
    #[error("{given:?} is not a submission id ({reason}): `reviewer list DIR` shows the ids")]
    BadSubmissionId {
        /// What was given (shortened).
        given: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// No archived submission has this id (or prefix).
    #[error(
        "no submission in the archive {dir} has an id starting with {given}: `reviewer list {dir}` shows the ids"
    )]
    UnknownSubmission {
        /// The id or prefix given.
        given: String,
        /// The archive directory.
        dir: PathBuf,
    },

    /// An id prefix matches several submissions.
    #[error("{given} is the start of {matches} submission ids: give more of its digits")]
    AmbiguousSubmission {
        /// The prefix given.
        given: String,
        /// How many ids start with it.
        matches: usize,
    },

    /// An archived submission's folder is missing or damaged.
    #[error(
        "submission {id} in the archive is damaged ({path}: {reason}): run `reviewer verify-archive` on the archive and restore the folder from a backup"
    )]
    DamagedSubmission {
        /// The submission.
        id: SubmissionId,
        /// The file that could not be used.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// A tag given on the command line is not allowed.
    #[error("{tag:?} is not a valid tag ({reason}), e.g. medical-workers or aktobe-2026")]
    BadTag {
        /// The tag given (shortened).
        tag: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// `verify-archive` found problems (listed on standard output).
    #[error(
        "the archive {dir} failed {problems} check{s} (listed above): restore the named files from a backup, or re-open the original batch files into a new archive; do not publish from a damaged archive", s = if *.problems == 1 { "" } else { "s" }
    )]
    ArchiveProblems {
        /// The archive directory.
        dir: PathBuf,
        /// How many problems were found.
        problems: usize,
    },
}

impl Error {
    /// A second line worth printing under the message, when there is one.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::NotFirst { .. } | Self::Gap { .. } | Self::Replay { .. } => Some(
                "the chain state lives in --state DIR, $REVIEWER_STATE_DIR, or $XDG_STATE_HOME/relay-reviewer",
            ),
            Self::BadSignature { .. } => Some(
                "pin the key once, from a trusted channel: compare it with the operator in person",
            ),
            Self::WrongIdentity { .. } => Some(
                "pass --identity once for each key epoch you hold; an epoch whose identities were all retired can never be opened again",
            ),
            Self::ThreadConflict { .. } => Some(
                "a thread's source recipient is derived from the source's codename and never changes",
            ),
            Self::UnknownThread { .. } | Self::ThreadNotInBatches { .. } => Some(
                "`reviewer open` records the threads of every batch it opens in the state directory",
            ),
            Self::SubmissionConflict { .. } | Self::BatchConflict { .. } => Some(
                "nothing in the archive changed; `reviewer verify-archive DIR` re-checks what it holds",
            ),
            Self::NotAnIdentityFile { .. }
            | Self::RetireNotConfirmed { .. }
            | Self::NoTerminalToConfirm { .. } => Some(
                "retire an epoch only after the relay seals to a newer one and every batch of it is opened and acknowledged",
            ),
            _ => None,
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

/// A list of paths for a one-line message.
fn paths(list: &[PathBuf]) -> String {
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
        let e = Error::TokenRefused { path: "tok".into() };
        assert_eq!(
            e.to_string(),
            "the relay refused the token in tok (401): check the token file"
        );
        assert!(!e.to_string().contains('\n'));
    }
}
