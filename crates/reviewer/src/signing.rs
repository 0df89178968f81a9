//! Reply-signing keys: the reviewers' Ed25519 keys (minisign format) that
//! sign every reply bundle, so that the relay stores only replies the
//! reviewers wrote. The relay's config pins their public halves
//! (`[reviewers] reply_signing_keys`); the API token alone can then no
//! longer put words in the NGO's mouth.
//!
//! The key files are the stock minisign ones: `minisign -G` could have
//! written them, and `minisign -V -p FILE.pub` checks a bundle's signature
//! (docs/format.md, "Signed reply bundle"). The secret key is encrypted
//! with the passphrase by minisign's own scrypt construction unless
//! `--no-passphrase` is given.
//!
//! The minisign crate keeps the unlocked secret key in a type that does not
//! zeroize itself; it lives only as long as one `reviewer reply`, on the
//! offline machine.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret as _;
use base64::Engine as _;
use format::SIGNED_REPLY_BUNDLE_FORMAT;
use zeroize::Zeroizing;

use crate::Error;
use crate::fsutil::{create_private_file, exists_no_follow, read_small, sync_dir};
use crate::identity::{PassphraseSource, Protection};

/// Key files are small.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// What can go wrong with a reply-signing key (nested in
/// [`crate::Error::Signing`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// The file is not a minisign secret key.
    #[error(
        "{path} is not a reply-signing key ({reason}): pass the file `reviewer keygen --reply-signing` wrote, not its .pub"
    )]
    NotAKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The passphrase does not unlock the key.
    #[error(
        "the passphrase does not unlock {path}: type it again (it is the one given to `reviewer keygen --reply-signing`)"
    )]
    WrongPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// Making or using the key failed inside minisign.
    #[error("cannot {action} the reply-signing key {path}: {reason}")]
    Failed {
        /// What was being done.
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// minisign's message.
        reason: String,
    },
}

/// The public-key file written next to a new key.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Makes a new reply-signing key: the secret key in `out` (created `0600`,
/// never overwriting), its public key in `out.pub`. Returns the public
/// key's base64 (`RW…`), the line the relay's config pins.
pub fn generate(out: &Path, protection: &Protection) -> Result<String, Error> {
    let public_path = public_key_path(out);
    for p in [out, public_path.as_path()] {
        if exists_no_follow(p)? {
            return Err(Error::AlreadyExists { path: p.into() });
        }
    }
    let failed = |action, e: minisign::PError| {
        Error::Signing(SigningError::Failed {
            action,
            path: out.into(),
            reason: e.to_string(),
        })
    };
    let kp = match protection {
        Protection::Passphrase(source) | Protection::PassphraseAsGiven(source) => {
            let check = matches!(protection, Protection::Passphrase(_));
            let pass = crate::identity::new_passphrase(source, check, out)?;
            minisign::KeyPair::generate_encrypted_keypair(Some(pass.expose_secret().to_owned()))
                .map_err(|e| failed("make", e))?
        }
        Protection::None => {
            minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| failed("make", e))?
        }
    };
    let secret = kp
        .sk
        .to_box(Some(
            "relay reply-signing key (a reviewer's); keep it offline",
        ))
        .map_err(|e| failed("encode", e))?;
    let secret = Zeroizing::new(secret.to_string());
    let public = kp.pk.to_box().map_err(|e| failed("encode", e))?.to_string();
    write_file(out, secret.as_bytes())?;
    if let Err(e) = write_file(&public_path, public.as_bytes()) {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(kp.pk.to_base64())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = create_private_file(path)?;
    if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(Error::io("write", path, e));
    }
    Ok(())
}

/// An unlocked reply-signing key. Not `Clone`; `Debug` shows only the
/// public half.
pub struct ReplySigner {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
}

impl std::fmt::Debug for ReplySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplySigner")
            .field("public", &self.public.to_base64())
            .finish_non_exhaustive()
    }
}

impl ReplySigner {
    /// Reads the key at `path`, asking for its passphrase (from `source`)
    /// if it is encrypted.
    pub fn load(path: &Path, source: &PassphraseSource) -> Result<Self, Error> {
        let not_a_key = |reason: String| {
            Error::Signing(SigningError::NotAKey {
                path: path.into(),
                reason,
            })
        };
        let bytes = Zeroizing::new(read_small(path, MAX_KEY_FILE)?);
        let text = std::str::from_utf8(&bytes).map_err(|_| not_a_key("not text".into()))?;
        let encoded = text
            .lines()
            .nth(1)
            .ok_or_else(|| not_a_key("no key line".into()))?;
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| not_a_key("its key line is not base64".into()))?,
        );
        let probe = minisign::SecretKey::from_bytes(&raw)
            .map_err(|e| not_a_key(format!("not a minisign secret key: {e}")))?;
        let sk_box = minisign::SecretKeyBox::from_string(text)
            .map_err(|e| not_a_key(format!("not a minisign secret key: {e}")))?;
        let secret = if probe.is_encrypted() {
            let pass = crate::identity::existing_passphrase(source, path)?;
            sk_box
                .into_secret_key(Some(pass.expose_secret().to_owned()))
                .map_err(|_| Error::Signing(SigningError::WrongPassphrase { path: path.into() }))?
        } else {
            sk_box
                .into_unencrypted_secret_key()
                .map_err(|e| not_a_key(e.to_string()))?
        };
        let public =
            minisign::PublicKey::from_secret_key(&secret).map_err(|e| not_a_key(e.to_string()))?;
        Ok(Self { secret, public })
    }

    /// The public key's base64 (`RW…`), as the relay pins it.
    pub fn public_base64(&self) -> String {
        self.public.to_base64()
    }

    /// A minisign signature file (text) over a reply bundle's bytes, with
    /// the trusted comment [`SIGNED_REPLY_BUNDLE_FORMAT`].
    pub fn sign_bundle(&self, bundle: &[u8]) -> Result<String, Error> {
        minisign::sign(
            Some(&self.public),
            &self.secret,
            std::io::Cursor::new(bundle),
            Some(SIGNED_REPLY_BUNDLE_FORMAT),
            Some("reply bundle, signed by a reviewer's reply-signing key"),
        )
        .map(|b| b.to_string())
        .map_err(|e| {
            Error::Signing(SigningError::Failed {
                action: "sign with",
                path: PathBuf::new(),
                reason: e.to_string(),
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_and_without_a_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "correct horse\n").unwrap();
        let key = dir.path().join("sign.key");
        let public = generate(
            &key,
            &Protection::Passphrase(PassphraseSource::File(pass.clone())),
        )
        .unwrap();
        let pub_file = std::fs::read_to_string(public_key_path(&key)).unwrap();
        assert_eq!(pub_file.lines().nth(1), Some(public.as_str()));
        let signer = ReplySigner::load(&key, &PassphraseSource::File(pass.clone())).unwrap();
        assert_eq!(signer.public_base64(), public);
        let sig = signer.sign_bundle(b"bundle").unwrap();
        let boxed = minisign::SignatureBox::from_string(&sig).unwrap();
        assert_eq!(boxed.trusted_comment().unwrap(), SIGNED_REPLY_BUNDLE_FORMAT);
        let pk = minisign::PublicKey::from_base64(&public).unwrap();
        minisign::verify(
            &pk,
            &boxed,
            std::io::Cursor::new(b"bundle"),
            true,
            false,
            false,
        )
        .unwrap();
        assert!(
            minisign::verify(
                &pk,
                &boxed,
                std::io::Cursor::new(b"bundlE"),
                true,
                false,
                false
            )
            .is_err()
        );

        std::fs::write(&pass, "wrong\n").unwrap();
        assert!(matches!(
            ReplySigner::load(&key, &PassphraseSource::File(pass)),
            Err(Error::Signing(SigningError::WrongPassphrase { .. }))
        ));
        assert!(matches!(
            generate(&key, &Protection::None),
            Err(Error::AlreadyExists { .. })
        ));
        let plain = dir.path().join("plain.key");
        generate(&plain, &Protection::None).unwrap();
        ReplySigner::load(&plain, &PassphraseSource::Terminal).unwrap();
        assert!(matches!(
            ReplySigner::load(&public_key_path(&plain), &PassphraseSource::Terminal),
            Err(Error::Signing(SigningError::NotAKey { .. }))
        ));
    }
}
