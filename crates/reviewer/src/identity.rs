//! Reviewer identities: creating them, unlocking them, decrypting with them.
//!
//! This is the only module that uses `age`, so the cryptography of the
//! reviewer can be read (and swapped) in one place: it also parses
//! recipients and encrypts replies ([`Recipient`]).
//!
//! An identity file is the standard age identity file (`AGE-SECRET-KEY-1…`
//! with `#` comment lines), by default itself encrypted with an age
//! passphrase (scrypt), exactly as `age -p` would write it: the stock
//! `age -d -i FILE` asks for the passphrase and decrypts submissions with
//! it. Unlocking costs about a second and 256 MiB of memory on purpose, so
//! a command unlocks once and reuses the [`Identity`] for every submission.

use std::fmt;
use std::fs;
use std::io::{self, BufRead as _, Read, Write};
use std::iter;
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use format::Day;
use zeroize::Zeroizing;

use crate::Error;
use crate::fsutil::{create_private_file, exists_no_follow, read_small, sync_dir};

/// The header line of a binary age file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// The first line of an armored age file.
const ARMOR_MAGIC: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
/// Identity files are small; anything larger is not one.
pub(crate) const MAX_IDENTITY_FILE: u64 = 1024 * 1024;
/// Passphrase files are small.
const MAX_PASSPHRASE_FILE: u64 = 64 * 1024;

/// Where a passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// The first line of this file (its line ending removed).
    File(PathBuf),
    /// Asked on the terminal (`/dev/tty`), not echoed.
    Terminal,
}

/// How `keygen` protects a new identity file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// Encrypted with an age passphrase (the default); a weak one
    /// ([`crate::passphrase::weakness`]) is refused.
    Passphrase(PassphraseSource),
    /// Encrypted with the passphrase given, however weak
    /// (`--allow-weak-passphrase`).
    PassphraseAsGiven(PassphraseSource),
    /// Written in the clear (for scripts and tests; keep it offline).
    None,
}

/// An unlocked reviewer identity: the age X25519 keys of one identity file.
///
/// It has no `Clone`, its `Debug` shows only the file name, and the keys
/// are zeroized when it is dropped (age's `x25519::Identity` does that).
pub struct Identity {
    path: PathBuf,
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("path", &self.path)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Why a submission could not be decrypted. Coarse on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecryptFailure {
    /// No key of the identity matches any recipient stanza.
    NoMatchingKey,
    /// Anything else: not an age file, damaged header, wrong MAC.
    Invalid,
}

/// A decrypting reader over one age file. Reading it to the end checks the
/// last chunk's authentication; an error means the ciphertext is damaged.
pub(crate) struct Plaintext<R: Read>(age::stream::StreamReader<R>);

impl<R: Read> fmt::Debug for Plaintext<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plaintext")
    }
}

impl<R: Read> Read for Plaintext<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Identity {
    /// Loads an identity file, unlocking it if it is passphrase-protected.
    ///
    /// The passphrase is asked (or read from its file) only if the file is
    /// encrypted.
    pub fn load(path: &Path, passphrase: &PassphraseSource) -> Result<Self, Error> {
        let bytes = Zeroizing::new(read_small(path, MAX_IDENTITY_FILE)?);
        let bad = |reason: &str| {
            Error::Identity(IdentityError::BadIdentity {
                path: path.into(),
                reason: reason.into(),
            })
        };
        if bytes.starts_with(ARMOR_MAGIC) {
            return Err(bad(
                "armored age files are not supported; encrypt the identity without --armor",
            ));
        }
        let keys = if bytes.starts_with(AGE_MAGIC) {
            let decryptor = age::Decryptor::new(&bytes[..])
                .map_err(|_| bad("its encrypted header is damaged"))?;
            if !decryptor.is_scrypt() {
                return Err(bad("it is encrypted to a key, not with a passphrase"));
            }
            let pass = match passphrase {
                PassphraseSource::File(f) => read_passphrase_file(f)?,
                PassphraseSource::Terminal => {
                    prompt(&format!("Passphrase for {}: ", path.display()))?
                }
            };
            let unlock = age::scrypt::Identity::new(pass);
            let mut reader = decryptor
                .decrypt(iter::once(&unlock as &dyn age::Identity))
                .map_err(|e| match e {
                    age::DecryptError::ExcessiveWork { .. } => {
                        bad("its passphrase protection needs more work than this machine allows")
                    }
                    age::DecryptError::DecryptionFailed
                    | age::DecryptError::KeyDecryptionFailed
                    | age::DecryptError::NoMatchingKeys => {
                        Error::Identity(IdentityError::WrongPassphrase { path: path.into() })
                    }
                    _ => bad("its encryption is damaged"),
                })?;
            let mut inner = Zeroizing::new(Vec::with_capacity(4096));
            (&mut reader)
                .take(MAX_IDENTITY_FILE)
                .read_to_end(&mut inner)
                .map_err(|_| bad("its encryption is damaged"))?;
            parse_identities(&inner).map_err(bad)?
        } else {
            parse_identities(&bytes).map_err(bad)?
        };
        Ok(Self {
            path: path.into(),
            keys,
        })
    }

    /// The file this identity was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Starts decrypting one age file with whichever key of `identities` (one
/// per key epoch the reviewer holds) matches a recipient stanza.
///
/// The header is read once and every key is tried against it, so the
/// ciphertext is read only once whatever the number of identities.
pub(crate) fn decrypt_any<R: Read>(
    identities: &[Identity],
    ciphertext: R,
) -> Result<Plaintext<std::io::BufReader<R>>, DecryptFailure> {
    // Buffered: age then parses the header line by line. Unbuffered, it
    // parses the header again after every few bytes it reads, which was a
    // fifth of `reviewer open`'s time on small submissions.
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(ciphertext))
        .map_err(|_| DecryptFailure::Invalid)?;
    if decryptor.is_scrypt() {
        // Submissions are sealed to X25519 recipients, never to a passphrase.
        return Err(DecryptFailure::Invalid);
    }
    decryptor
        .decrypt(
            identities
                .iter()
                .flat_map(|i| i.keys.iter())
                .map(|k| &**k as &dyn age::Identity),
        )
        .map(Plaintext)
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => DecryptFailure::NoMatchingKey,
            _ => DecryptFailure::Invalid,
        })
}

/// An age X25519 recipient (`age1…`): a source's, to reply to, or a
/// reviewer's, so the NGO keeps a readable copy of a reply. Public, not
/// secret.
#[derive(Clone)]
pub struct Recipient {
    text: String,
    key: age::x25519::Recipient,
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Recipient").field(&self.text).finish()
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Recipient {}

impl Recipient {
    /// Parses `age1…` (surrounding white space ignored). The reason, when
    /// it is not one, never quotes the input.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let s = s.trim();
        if !s.starts_with("age1") {
            return Err("it does not start with age1 (only age X25519 recipients are supported)");
        }
        // age's parser checks the bech32 checksum and the key length.
        let key: age::x25519::Recipient = s
            .parse()
            .map_err(|_| "its bech32 encoding or length is wrong")?;
        Ok(Self {
            text: key.to_string(),
            key,
        })
    }

    /// The recipient as written (`age1…`).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Encrypts `plaintext` into one binary age file with one X25519 stanza
/// per recipient (any of their identities decrypts it, with this tool or
/// the stock `age` CLI).
///
/// age's stream writer keeps up to a 64 KiB chunk of plaintext in a buffer
/// it does not zeroize; the callers' own copies are zeroized.
pub(crate) fn encrypt_to(recipients: &[&Recipient], plaintext: &[u8]) -> io::Result<Vec<u8>> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| &r.key as &dyn age::Recipient))
            .map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = Vec::with_capacity(plaintext.len() + 256 + 128 * recipients.len());
    let mut w = encryptor.wrap_output(&mut out)?;
    w.write_all(plaintext)?;
    w.finish()?;
    Ok(out)
}

/// What an identity file holds, found without unlocking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdentityFileKind {
    /// A plain identity file; the recipients (`age1…`) of its X25519 keys.
    Plain(Vec<String>),
    /// An identity file encrypted with an age passphrase (scrypt).
    Passphrase,
}

/// Checks that `bytes` are an age identity file, plain or passphrase
/// protected, without asking for the passphrase. The reason, when it is
/// not, never quotes the content.
pub(crate) fn inspect_identity_file(bytes: &[u8]) -> Result<IdentityFileKind, &'static str> {
    if bytes.starts_with(ARMOR_MAGIC) {
        return Err("an armored age file, which `reviewer keygen` never writes");
    }
    if bytes.starts_with(AGE_MAGIC) {
        let decryptor = age::Decryptor::new(bytes).map_err(|_| "a damaged age file")?;
        return if decryptor.is_scrypt() {
            Ok(IdentityFileKind::Passphrase)
        } else {
            Err("an age file encrypted to a key, not a passphrase-protected identity")
        };
    }
    parse_identities(bytes)?;
    // age's parser accepted every line; collect the public keys to show.
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text")?;
    let recipients = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.parse::<age::x25519::Identity>().ok())
        .map(|k| k.to_public().to_string())
        .collect();
    Ok(IdentityFileKind::Plain(recipients))
}

/// Parses the text of an identity file.
fn parse_identities(
    text: &[u8],
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, &'static str> {
    // age's own parser; its errors name a line number, never the content.
    let file = age::IdentityFile::from_buffer(text)
        .map_err(|_| "a line is neither a comment nor an AGE-SECRET-KEY-1 key")?;
    let keys = file
        .into_identities()
        .map_err(|_| "it holds an identity this build cannot use")?;
    if keys.is_empty() {
        return Err("it holds no AGE-SECRET-KEY-1 line");
    }
    Ok(keys)
}

/// Creates a new identity file at `out` and returns its recipient (`age1…`).
///
/// The file is created `0600` with `create_new`: an existing file is never
/// overwritten. Its text is the standard identity file with a `created`
/// day (never a finer time).
pub fn generate(out: &Path, protection: &Protection) -> Result<String, Error> {
    // Fail before asking for a passphrase; create_new below closes the race.
    if exists_no_follow(out)? {
        return Err(Error::AlreadyExists { path: out.into() });
    }
    let passphrase = match protection {
        Protection::Passphrase(source) => Some(new_passphrase(source, true, out)?),
        Protection::PassphraseAsGiven(source) => Some(new_passphrase(source, false, out)?),
        Protection::None => None,
    };

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = Zeroizing::new(format!(
        "# created: {}\n# public key: {}\n{}\n",
        Day::today(),
        recipient,
        identity.to_string().expose_secret()
    ));

    let mut file = create_private_file(out)?;
    let written = (|| -> io::Result<()> {
        match passphrase {
            Some(pass) => {
                let mut w = age::Encryptor::with_user_passphrase(pass).wrap_output(&mut file)?;
                w.write_all(text.as_bytes())?;
                w.finish()?;
            }
            None => file.write_all(text.as_bytes())?,
        }
        file.sync_all()
    })();
    if let Err(e) = written {
        drop(file);
        // Remove the incomplete file we created; never leave half a key.
        let _ = fs::remove_file(out);
        return Err(Error::io("write", out, e));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(recipient)
}

/// A passphrase for a new identity or signing key: from a file, or typed
/// twice. With `check_strength` a weak one ([`crate::passphrase`]) is
/// refused (on the terminal, before it is asked again).
pub(crate) fn new_passphrase(
    source: &PassphraseSource,
    check_strength: bool,
    out: &Path,
) -> Result<SecretString, Error> {
    let strong_enough = |pass: &SecretString| {
        let weakness = check_strength
            .then(|| crate::passphrase::weakness(pass.expose_secret()))
            .flatten();
        match weakness {
            Some(weakness) => Err(Error::Identity(IdentityError::WeakPassphrase { weakness })),
            None => Ok(()),
        }
    };
    let pass = match source {
        PassphraseSource::File(f) => read_passphrase_file(f)?,
        PassphraseSource::Terminal => {
            let first = prompt(&format!("New passphrase for {}: ", out.display()))?;
            if first.expose_secret().is_empty() {
                return Err(Error::Identity(IdentityError::EmptyPassphrase));
            }
            strong_enough(&first)?;
            let second = prompt("Repeat the passphrase: ")?;
            if first.expose_secret() != second.expose_secret() {
                return Err(Error::Identity(IdentityError::PassphraseMismatch));
            }
            first
        }
    };
    if pass.expose_secret().is_empty() {
        return Err(Error::Identity(IdentityError::EmptyPassphrase));
    }
    strong_enough(&pass)?;
    Ok(pass)
}

/// The passphrase of an existing key file: from a file, or typed once.
pub(crate) fn existing_passphrase(
    source: &PassphraseSource,
    key: &Path,
) -> Result<SecretString, Error> {
    let pass = match source {
        PassphraseSource::File(f) => read_passphrase_file(f)?,
        PassphraseSource::Terminal => prompt(&format!("Passphrase for {}: ", key.display()))?,
    };
    if pass.expose_secret().is_empty() {
        return Err(Error::Identity(IdentityError::EmptyPassphrase));
    }
    Ok(pass)
}

/// The first line of a passphrase file, without its line ending.
fn read_passphrase_file(path: &Path) -> Result<SecretString, Error> {
    let bytes = Zeroizing::new(read_small(path, MAX_PASSPHRASE_FILE)?);
    let mut line = Zeroizing::new(String::new());
    (&bytes[..]).read_line(&mut line).map_err(|_| {
        Error::Identity(IdentityError::PassphraseFile {
            path: path.into(),
            reason: "it is not UTF-8 text",
        })
    })?;
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    if line.is_empty() {
        return Err(Error::Identity(IdentityError::EmptyPassphrase));
    }
    Ok(SecretString::from(line.as_str()))
}

/// Asks on the terminal without echo.
fn prompt(message: &str) -> Result<SecretString, Error> {
    rpassword::prompt_password(message)
        .map(|p| {
            let p = Zeroizing::new(p);
            SecretString::from(p.as_str())
        })
        .map_err(|source| Error::Identity(IdentityError::NoTerminal { source }))
}

// ------------------------------------------------------------------ errors

/// What can go wrong with a reviewer identity or its passphrase (nested in [`crate::Error::Identity`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A passphrase was needed but there is no terminal to ask on.
    #[error("no terminal to ask for the passphrase: use --passphrase-file FILE")]
    NoTerminal {
        /// Why the terminal could not be used.
        #[source]
        source: std::io::Error,
    },

    /// The passphrase given is empty.
    #[error("the passphrase is empty: choose a non-empty passphrase")]
    EmptyPassphrase,

    /// A new passphrase is too easy to guess (and
    /// `--allow-weak-passphrase` was not given).
    #[error(
        "the passphrase is too weak ({weakness}): choose {}, or keep this one with --allow-weak-passphrase",
        crate::passphrase::SUGGESTION
    )]
    WeakPassphrase {
        /// Why.
        weakness: crate::passphrase::Weakness,
    },

    /// The passphrase was typed twice, differently.
    #[error("the two passphrases differ: run the command again")]
    PassphraseMismatch,

    /// The passphrase file is unusable.
    #[error(
        "the passphrase file {path} is unusable ({reason}): put the passphrase on its first line"
    )]
    PassphraseFile {
        /// The passphrase file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The passphrase does not unlock the identity file.
    #[error("wrong passphrase for {path}: try again (check --passphrase-file if you used it)")]
    WrongPassphrase {
        /// The identity file.
        path: std::path::PathBuf,
    },

    /// The identity file is not one the reviewer can use.
    #[error(
        "{path} is not a usable age identity file ({reason}): pass the file `reviewer keygen` wrote"
    )]
    BadIdentity {
        /// The identity file.
        path: std::path::PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_identity_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.txt");
        let recipient = generate(&key, &Protection::None).unwrap();
        assert!(recipient.starts_with("age1"));
        let text = fs::read_to_string(&key).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("# created: "));
        assert_eq!(lines[0].len(), "# created: 2026-11-28".len());
        assert_eq!(lines[1], format!("# public key: {recipient}"));
        assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));

        let id = Identity::load(&key, &PassphraseSource::Terminal).unwrap();
        // Encrypt to the recipient and decrypt with the loaded identity.
        let r: age::x25519::Recipient = recipient.parse().unwrap();
        let mut ct = Vec::new();
        let mut w = age::Encryptor::with_recipients(iter::once(&r as &dyn age::Recipient))
            .unwrap()
            .wrap_output(&mut ct)
            .unwrap();
        w.write_all(b"hello").unwrap();
        w.finish().unwrap();
        let mut pt = Vec::new();
        decrypt_any(std::slice::from_ref(&id), &ct[..])
            .unwrap()
            .read_to_end(&mut pt)
            .unwrap();
        assert_eq!(pt, b"hello");

        // Another identity does not match.
        let other = dir.path().join("other.txt");
        generate(&other, &Protection::None).unwrap();
        let other = Identity::load(&other, &PassphraseSource::Terminal).unwrap();
        let other = std::slice::from_ref(&other);
        assert_eq!(
            decrypt_any(other, &ct[..]).err(),
            Some(DecryptFailure::NoMatchingKey)
        );
        assert_eq!(
            decrypt_any(other, &b"not age"[..]).err(),
            Some(DecryptFailure::Invalid)
        );
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.txt");
        fs::write(&key, b"precious").unwrap();
        assert!(matches!(
            generate(&key, &Protection::None),
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(fs::read(&key).unwrap(), b"precious");
    }

    #[test]
    fn debug_shows_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.txt");
        generate(&key, &Protection::None).unwrap();
        let id = Identity::load(&key, &PassphraseSource::Terminal).unwrap();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains("AGE-SECRET-KEY"));
        assert!(dbg.contains("keys: 1"));
    }

    #[test]
    fn refuses_non_identity_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        for content in [&b""[..], b"# only a comment\n", b"hello\n", ARMOR_MAGIC] {
            fs::write(&f, content).unwrap();
            assert!(
                matches!(
                    Identity::load(&f, &PassphraseSource::Terminal),
                    Err(Error::Identity(IdentityError::BadIdentity { .. }))
                ),
                "{content:?}"
            );
        }
    }

    #[test]
    fn decrypt_any_tries_every_identity() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (dir.path().join("1"), dir.path().join("2"));
        generate(&k1, &Protection::None).unwrap();
        let r2: age::x25519::Recipient = generate(&k2, &Protection::None).unwrap().parse().unwrap();
        let load = |p: &Path| Identity::load(p, &PassphraseSource::Terminal).unwrap();
        let mut ct = Vec::new();
        let mut w = age::Encryptor::with_recipients(iter::once(&r2 as &dyn age::Recipient))
            .unwrap()
            .wrap_output(&mut ct)
            .unwrap();
        w.write_all(b"epoch 2").unwrap();
        w.finish().unwrap();
        let both = [load(&k1), load(&k2)];
        let mut pt = Vec::new();
        decrypt_any(&both, &ct[..])
            .unwrap()
            .read_to_end(&mut pt)
            .unwrap();
        assert_eq!(pt, b"epoch 2");
        assert_eq!(
            decrypt_any(&both[..1], &ct[..]).err(),
            Some(DecryptFailure::NoMatchingKey)
        );
        assert_eq!(
            decrypt_any(&[], &ct[..]).err(),
            Some(DecryptFailure::NoMatchingKey)
        );
    }

    #[test]
    fn inspects_identity_files_without_unlocking_them() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let recipient = generate(&plain, &Protection::None).unwrap();
        assert_eq!(
            inspect_identity_file(&fs::read(&plain).unwrap()),
            Ok(IdentityFileKind::Plain(vec![recipient]))
        );
        let pass = dir.path().join("pass");
        fs::write(&pass, "p\n").unwrap();
        let locked = dir.path().join("locked");
        generate(
            &locked,
            &Protection::PassphraseAsGiven(PassphraseSource::File(pass)),
        )
        .unwrap();
        assert_eq!(
            inspect_identity_file(&fs::read(&locked).unwrap()),
            Ok(IdentityFileKind::Passphrase)
        );
        // An age file encrypted to a key (a submission, say) is not one.
        let r: age::x25519::Recipient = age::x25519::Identity::generate().to_public();
        let mut ct = Vec::new();
        let mut w = age::Encryptor::with_recipients(iter::once(&r as &dyn age::Recipient))
            .unwrap()
            .wrap_output(&mut ct)
            .unwrap();
        w.write_all(b"x").unwrap();
        w.finish().unwrap();
        for bad in [
            &ct[..],
            b"",
            b"# only a comment\n",
            b"hello\n",
            ARMOR_MAGIC,
            b"age-encryption.org/v1\n-> garbage",
            b"\xff\xfe",
        ] {
            assert!(inspect_identity_file(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passphrase_file_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p");
        fs::write(&f, b"correct horse \r\nsecond line").unwrap();
        assert_eq!(
            read_passphrase_file(&f).unwrap().expose_secret(),
            "correct horse "
        );
        fs::write(&f, b"\n").unwrap();
        assert!(matches!(
            read_passphrase_file(&f),
            Err(Error::Identity(IdentityError::EmptyPassphrase))
        ));
    }
}
