//! Retiring a key epoch: destroying an identity file for good.
//!
//! The relay cannot securely erase what it stored: sled and the file system
//! keep deleted ciphertext until its blocks are reused, and backups or a
//! seized disk keep it for ever. Deletion is therefore cryptographic: each
//! submission is sealed to the reviewer key set of one *epoch*, and once a
//! batch of an old epoch is safely opened and acknowledged, the reviewers
//! destroy that epoch's identities here, offline. From then on every copy
//! of that epoch's ciphertext, wherever it lingers, is unreadable.
//!
//! Destroying means: check the file really is an age identity file (plain
//! or passphrase-protected, so a mistyped path does not destroy some other
//! file), ask the reviewer to type the epoch number (unless told `--yes`),
//! overwrite the file's bytes with zeros and flush them to disk, delete it,
//! and flush the directory. Overwriting in place is best effort: copy-on-write
//! file systems and flash storage may keep the old blocks, which is why
//! identity files belong on an encrypted volume (`SECURITY.md`).

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::Error;
use crate::error::printable;
use crate::fsutil::{read_small, sync_dir};
use crate::identity::{IdentityFileKind, MAX_IDENTITY_FILE, inspect_identity_file};

/// Asks the question given and returns what the reviewer answered.
pub type Ask<'a> = Box<dyn FnOnce(&str) -> io::Result<String> + 'a>;

/// How a retirement is confirmed.
pub enum Confirmation<'a> {
    /// Confirmed in advance (`--yes`).
    Given,
    /// Ask on the terminal (`/dev/tty`): the reviewer must type the epoch
    /// number. With no terminal, the retirement is refused.
    Terminal,
    /// Ask this function: it gets the question and returns what the
    /// reviewer answered (for other front ends, and tests).
    Answer(Ask<'a>),
}

impl fmt::Debug for Confirmation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Given => "Given",
            Self::Terminal => "Terminal",
            Self::Answer(_) => "Answer",
        })
    }
}

/// What [`retire_epoch`] destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    /// The epoch retired.
    pub epoch: u32,
    /// The identity file, now gone.
    pub path: PathBuf,
    /// How many bytes were overwritten with zeros.
    pub bytes: u64,
    /// Whether the file was passphrase-protected.
    pub passphrase_protected: bool,
    /// The public keys (`age1…`) it held, when the file was plain.
    pub recipients: Vec<String>,
    /// Other names (hard links) of the same file: they now hold zeros.
    pub other_links: u64,
}

/// Destroys the identity file at `path`, the reviewer's identity of key
/// epoch `epoch`, once `confirmation` agrees.
///
/// Refuses, destroying nothing, if `path` is not a regular file holding an
/// age identity (plain or passphrase-protected), or if the confirmation is
/// not the epoch number.
pub fn retire_epoch(
    path: &Path,
    epoch: u32,
    confirmation: Confirmation<'_>,
) -> Result<Retired, Error> {
    let refuse = |reason| {
        Error::Retire(RetireError::NotAnIdentityFile {
            path: path.into(),
            reason,
        })
    };
    let before = fs::symlink_metadata(path).map_err(|e| Error::io("inspect", path, e))?;
    if !before.file_type().is_file() {
        return Err(refuse(
            "not a regular file but a symbolic link, directory or device; pass the file itself",
        ));
    }
    if before.len() > MAX_IDENTITY_FILE {
        return Err(refuse("larger than any identity file"));
    }
    let kind = {
        let bytes = Zeroizing::new(read_small(path, MAX_IDENTITY_FILE)?);
        inspect_identity_file(&bytes).map_err(refuse)?
    };
    let (passphrase_protected, recipients) = match kind {
        IdentityFileKind::Passphrase => (true, Vec::new()),
        IdentityFileKind::Plain(r) => (false, r),
    };

    let what = if recipients.is_empty() {
        String::new()
    } else {
        format!(", public key {}", recipients.join(", "))
    };
    let question = format!(
        "This destroys {} (an identity of key epoch {epoch}{what}).\n\
         Nothing sealed to epoch {epoch} can be opened with it afterwards, ever.\n\
         Retire an epoch only once the relay seals to a newer one and every batch of epoch {epoch} is opened and acknowledged.\n\
         Type the epoch number ({epoch}) to destroy it: ",
        printable(&path.display().to_string())
    );
    let answer =
        match confirmation {
            Confirmation::Given => None,
            Confirmation::Terminal => Some(ask_terminal(&question).map_err(|source| {
                Error::Retire(RetireError::NoTerminalToConfirm { epoch, source })
            })?),
            Confirmation::Answer(ask) => Some(ask(&question).map_err(|source| {
                Error::Retire(RetireError::NoTerminalToConfirm { epoch, source })
            })?),
        };
    if let Some(answer) = answer
        && answer.trim() != epoch.to_string()
    {
        return Err(Error::Retire(RetireError::RetireNotConfirmed { epoch }));
    }

    let bytes = overwrite_with_zeros(path, &before)?;
    fs::remove_file(path).map_err(|e| Error::io("delete", path, e))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent)?;
    Ok(Retired {
        epoch,
        path: path.into(),
        bytes,
        passphrase_protected,
        recipients,
        other_links: links(&before).saturating_sub(1),
    })
}

/// Overwrites every byte of the file with zeros, in place, and flushes it
/// to disk. Refuses if the file is no longer the one inspected (replaced
/// while the reviewer was confirming).
fn overwrite_with_zeros(path: &Path, inspected: &fs::Metadata) -> Result<u64, Error> {
    // No truncate: the same blocks are rewritten (on file systems that
    // write in place).
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    let now = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
    if !same_file(inspected, &now) {
        return Err(Error::Retire(RetireError::NotAnIdentityFile {
            path: path.into(),
            reason: "it was replaced while waiting for the confirmation",
        }));
    }
    let len = now.len();
    io::copy(&mut io::Read::take(io::repeat(0), len), &mut file)
        .and_then(|_| file.flush())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("overwrite", path, e))?;
    Ok(len)
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino() && b.file_type().is_file()
}

#[cfg(not(unix))]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.len() == b.len() && b.file_type().is_file()
}

#[cfg(unix)]
fn links(m: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.nlink()
}

#[cfg(not(unix))]
fn links(_: &fs::Metadata) -> u64 {
    1
}

/// Asks on the controlling terminal (never stdin, which may be a pipe) and
/// returns the line typed.
fn ask_terminal(question: &str) -> io::Result<String> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let mut out = &tty;
    out.write_all(question.as_bytes())?;
    out.flush()?;
    let mut line = String::new();
    io::BufReader::new(&tty).read_line(&mut line)?;
    Ok(line)
}

// ------------------------------------------------------------------ errors

/// What can go wrong with retiring a key epoch (nested in [`crate::Error::Retire`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetireError {
    /// `retire-epoch` was pointed at something that is not an identity file.
    #[error(
        "{path} is not an age identity file ({reason}): nothing was destroyed; pass the identity file of the epoch to retire"
    )]
    NotAnIdentityFile {
        /// The file.
        path: std::path::PathBuf,
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
        source: std::io::Error,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::{Protection, generate};

    fn answer(text: &'static str) -> Confirmation<'static> {
        Confirmation::Answer(Box::new(move |_| Ok(text.to_owned())))
    }

    #[test]
    fn destroys_only_after_the_epoch_number_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("epoch-3.key");
        let recipient = generate(&key, &Protection::None).unwrap();
        let original = fs::read(&key).unwrap();

        for wrong in ["", "2", "yes", "33", "3 please"] {
            let e = retire_epoch(&key, 3, answer(wrong)).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Retire(RetireError::RetireNotConfirmed { epoch: 3 })
                ),
                "{e}"
            );
            assert_eq!(fs::read(&key).unwrap(), original, "{wrong:?}");
        }
        let e = retire_epoch(
            &key,
            3,
            Confirmation::Answer(Box::new(|_| Err(io::ErrorKind::NotFound.into()))),
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::Retire(RetireError::NoTerminalToConfirm { .. })),
            "{e}"
        );
        assert_eq!(fs::read(&key).unwrap(), original);

        let mut asked = String::new();
        let done = retire_epoch(
            &key,
            3,
            Confirmation::Answer(Box::new(|q| {
                asked = q.to_owned();
                Ok(" 3\n".into())
            })),
        )
        .unwrap();
        assert!(
            asked.contains("key epoch 3") && asked.contains(&recipient),
            "{asked}"
        );
        assert!(!key.exists());
        assert_eq!(done.bytes, original.len() as u64);
        assert_eq!(done.recipients, [recipient]);
        assert!(!done.passphrase_protected);
        assert_eq!(done.other_links, 0);
    }

    #[cfg(unix)]
    #[test]
    fn the_bytes_are_zeroed_before_the_name_goes() {
        // A hard link keeps the inode reachable: it shows what the
        // overwrite left in the file's blocks.
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        generate(&key, &Protection::None).unwrap();
        let len = fs::metadata(&key).unwrap().len();
        let witness = dir.path().join("witness");
        fs::hard_link(&key, &witness).unwrap();
        let done = retire_epoch(&key, 1, Confirmation::Given).unwrap();
        assert_eq!(done.other_links, 1);
        assert!(!key.exists());
        let left = fs::read(&witness).unwrap();
        assert_eq!(left.len() as u64, len);
        assert!(left.iter().all(|b| *b == 0));
    }

    #[test]
    fn passphrase_protected_identities_are_destroyed_without_the_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        fs::write(&pass, "forgotten\n").unwrap();
        let key = dir.path().join("k.age");
        generate(
            &key,
            &Protection::PassphraseAsGiven(crate::identity::PassphraseSource::File(pass)),
        )
        .unwrap();
        let done = retire_epoch(&key, 2, answer("2")).unwrap();
        assert!(done.passphrase_protected);
        assert!(done.recipients.is_empty());
        assert!(!key.exists());
    }

    #[test]
    fn refuses_anything_but_an_identity_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("notes.txt");
        for content in [&b"my thesis\n"[..], b"", b"\x00\x01binary"] {
            fs::write(&f, content).unwrap();
            let e = retire_epoch(&f, 1, Confirmation::Given).unwrap_err();
            assert!(
                matches!(e, Error::Retire(RetireError::NotAnIdentityFile { .. })),
                "{e}"
            );
            assert_eq!(fs::read(&f).unwrap(), content);
        }
        let e = retire_epoch(dir.path(), 1, Confirmation::Given).unwrap_err();
        assert!(
            matches!(e, Error::Retire(RetireError::NotAnIdentityFile { .. })),
            "{e}"
        );
        let e = retire_epoch(&dir.path().join("missing"), 1, Confirmation::Given).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_symlink_and_leaves_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        generate(&key, &Protection::None).unwrap();
        let before = fs::read(&key).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        let e = retire_epoch(&link, 1, Confirmation::Given).unwrap_err();
        assert!(
            matches!(e, Error::Retire(RetireError::NotAnIdentityFile { .. })),
            "{e}"
        );
        assert_eq!(fs::read(&key).unwrap(), before);
        assert!(link.exists());
    }
}
