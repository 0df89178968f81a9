//! The relay's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;

use format::BatchId;

/// Boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in the relay library.
///
/// Messages say what failed and, where there is one, what to do. They never
/// include anything a source sent (text, file names) or anything about a
/// source's connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is missing, unreadable or invalid.
    #[error("config {}: {problem}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        problem: String,
    },
    /// A file or directory in the data directory could not be used.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What the relay was doing ("create", "read", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: cannot {action}: {source}")]
    Store {
        /// What the relay was doing.
        action: &'static str,
        /// The engine's error.
        #[source]
        source: BoxError,
    },
    /// Another process holds the store open.
    #[error(
        "the store at {} is in use by another process (is the relay running? stop it, or use the reviewer API instead)",
        .0.display()
    )]
    StoreLocked(PathBuf),
    /// The store's contents break an invariant.
    #[error("store is inconsistent: {0} (stop the relay and run `relay check`)")]
    Corrupt(String),
    /// The store cannot take more now: its quota (`limits.max_store_bytes`)
    /// is reached, or the disk is (nearly) full (`limits.min_free_bytes`).
    /// Sources are told "busy, try later"; nothing was stored.
    #[error("no room for a new submission: {0}")]
    StoreFull(&'static str),
    /// `relay check` found problems (each printed on its own line).
    #[error(
        "the store check found {0} problem(s), listed above; README, \"Storage limits and checks\", says what to do"
    )]
    CheckFailed(u64),
    /// Sealing a submission failed.
    #[error("sealing failed while trying to {stage}: {source}")]
    Seal {
        /// Which step failed.
        stage: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A reviewer recipient in the config is not an age X25519 recipient.
    #[error("not an age X25519 recipient (expected `age1…`, as `reviewer keygen` prints): {0:?}")]
    BadRecipient(String),
    /// The relay's signing key could not be loaded or used.
    #[error("signing key {}: {problem}", path.display())]
    SigningKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(String),
    /// A listener would expose a loopback-only service to the network.
    #[error(
        "refusing to listen on {0}: {1} may only listen on a loopback address (127.0.0.1 or [::1])"
    )]
    NotLoopback(SocketAddr, &'static str),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// There is no batch with this id.
    #[error("no batch {0} on this relay")]
    UnknownBatch(BatchId),
    /// An acknowledgement named the wrong manifest hash.
    #[error("the manifest hash does not match batch {0}: nothing was deleted")]
    AckMismatch(BatchId),
    /// A receipt was made for another relay.
    #[error("the receipt is for relay key {0}, not this relay's key: nothing was deleted")]
    WrongRelay(String),
    /// The process could not be hardened (core dumps, dumpable flag).
    #[error("process hardening failed: {0}")]
    Hardening(String),
    /// A file that must not be overwritten already exists.
    #[error("{} already exists: refusing to overwrite it", .0.display())]
    Exists(PathBuf),
    /// Codename derivation or a follow-up step failed (holds no codename,
    /// no identity, no text).
    #[error("follow-up: {0}")]
    Followup(String),
    /// A reply bundle was refused; nothing of it was stored.
    #[error("reply bundle refused, nothing stored: {0}")]
    BadReplies(String),
    /// A reply bundle could not be parsed; nothing of it was stored.
    #[error("not a reply bundle, nothing stored: {0}")]
    MalformedReplies(String),
    /// A reply bundle is not signed by a reviewer key this relay pins
    /// (`[reviewers] reply_signing_keys`); nothing of it was stored.
    #[error("reply bundle not signed by a pinned reviewer key, nothing stored: {0}")]
    UnsignedReplies(String),
    /// An offline command was pointed at a directory without a relay store.
    #[error(
        "no relay data at {}: nothing was created; pass the relay's data directory with --data DIR (the unit's is /var/lib/relay)",
        .0.display()
    )]
    NoRelayData(PathBuf),
    /// No config file was given and none was found where one is looked for.
    #[error(
        "no config: neither {} nor {} exists; pass --config FILE, or run `relay demo` to try the relay on a demo setup",
        .in_data.display(),
        .system.display()
    )]
    NoConfig {
        /// The data directory's `relay.toml`.
        in_data: PathBuf,
        /// The system-wide config.
        system: PathBuf,
    },
    /// `relay demo` was pointed at a directory that a real relay uses.
    #[error(
        "refusing to set up a demo in {}: it {why}, and a demo would put its reviewer key next to that relay's data; run `relay demo --data NEW_DIR` with a directory of its own",
        .dir.display()
    )]
    NotForDemo {
        /// The data directory.
        dir: PathBuf,
        /// What it holds.
        why: &'static str,
    },
    /// A real (non-demo) relay found a demo reviewer key in its data
    /// directory: what it would store could be read with that key.
    #[error(
        "refusing to start: {} is a demo reviewer key, so this data directory was used by a demo and anything sealed to that key can be read from this disk; give the real relay a fresh data directory (README, \"Deploying\"), or delete the demo's data directory",
        .0.display()
    )]
    DemoKeyPresent(PathBuf),
    /// The running relay's status socket did not answer.
    #[error(
        "the relay holds the store at {} but its status socket {} did not answer ({reason}): is the relay still starting? try again, or see its log",
        .store.display(),
        .socket.display()
    )]
    StatusSocket {
        /// The store directory.
        store: PathBuf,
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// Whether this failure means "no room": [`Error::StoreFull`], or an
    /// operating-system error anywhere in its chain saying the disk is full
    /// or a disk quota is exceeded (`ENOSPC`, `EDQUOT`).
    pub fn is_out_of_space(&self) -> bool {
        if matches!(self, Error::StoreFull(_)) {
            return true;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            {
                return true;
            }
            source = e.source();
        }
        false
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
