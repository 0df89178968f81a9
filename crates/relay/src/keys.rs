//! The relay's own secrets: its batch signing key and the reviewer API
//! token, and the one place randomness comes from.
//!
//! The relay holds **no** key that can decrypt a submission.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use format::Digest;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::{Error, fsutil};

/// File name of the signing key in the data directory.
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// File name of the signing public key (minisign format) in the data
/// directory, for `minisign -V -p`.
pub const SIGNING_PUB_FILE: &str = "signing.pub";

/// Fresh random bytes from the operating system. Every id, token and key
/// the relay makes itself draws from here (age and minisign draw their own
/// keys from the OS generator too).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// The relay's minisign (Ed25519) batch signing key.
///
/// Not `Clone`, and `Debug` shows only the public half. The minisign crate
/// does not zeroize its key in memory; the key protects the integrity of
/// batches, not the confidentiality of testimony (see `SECURITY.md`).
pub struct SigningKey {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public.to_base64())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads the key from `data_dir`, creating it (0600) if there is none.
    /// Returns whether it was created.
    pub fn load_or_create(data_dir: &Path) -> Result<(Self, bool), Error> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        if path.exists() {
            return Ok((Self::load(data_dir)?, false));
        }
        let kp =
            minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| Error::SigningKey {
                path: path.clone(),
                problem: format!("cannot generate: {e}"),
            })?;
        let secret_box =
            kp.sk
                .to_box(Some("relay batch signing key"))
                .map_err(|e| Error::SigningKey {
                    path: path.clone(),
                    problem: format!("cannot encode: {e}"),
                })?;
        let text = Zeroizing::new(secret_box.to_string());
        fsutil::write_new(&path, text.as_bytes(), 0o600)?;
        let pub_box = kp.pk.to_box().map_err(|e| Error::SigningKey {
            path: path.clone(),
            problem: format!("cannot encode the public key: {e}"),
        })?;
        let pub_path = data_dir.join(SIGNING_PUB_FILE);
        if !pub_path.exists() {
            fsutil::write_new(&pub_path, pub_box.to_string().as_bytes(), 0o644)?;
        }
        Ok((
            Self {
                secret: kp.sk,
                public: kp.pk,
            },
            true,
        ))
    }

    /// Loads the existing key from `data_dir`.
    pub fn load(data_dir: &Path) -> Result<Self, Error> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        let bad = |problem: String| Error::SigningKey {
            path: path.clone(),
            problem,
        };
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
            bad(format!(
                "cannot read it ({e}); start `relay serve` once to create it"
            ))
        })?);
        let secret_box = minisign::SecretKeyBox::from_string(&text)
            .map_err(|e| bad(format!("not a minisign secret key: {e}")))?;
        let secret = secret_box
            .into_unencrypted_secret_key()
            .map_err(|e| bad(format!("cannot use it (must be unencrypted): {e}")))?;
        let public = minisign::PublicKey::from_secret_key(&secret)
            .map_err(|e| bad(format!("cannot derive the public key: {e}")))?;
        Ok(Self { secret, public })
    }

    /// The public key in base64, as reviewers pin it (`relay pubkey`).
    pub fn public_base64(&self) -> String {
        self.public.to_base64()
    }

    /// A minisign signature file (text) over `data`.
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> Result<String, Error> {
        minisign::sign(
            Some(&self.public),
            &self.secret,
            std::io::Cursor::new(data),
            Some(trusted_comment),
            Some("signature from the relay's batch signing key"),
        )
        .map(|b| b.to_string())
        .map_err(|e| Error::SigningKey {
            path: PathBuf::from(SIGNING_KEY_FILE),
            problem: format!("cannot sign: {e}"),
        })
    }
}

/// A new reviewer API token (256 random bits, base64url) and the SHA-256
/// the config stores.
///
/// A plain SHA-256 is enough here, unlike for passwords: the token has 256
/// bits of entropy, so its hash cannot be brute-forced, and a fast hash keeps
/// every API request cheap.
pub fn new_api_token() -> (Zeroizing<String>, Digest) {
    let raw = Zeroizing::new(random_bytes::<32>());
    let token = Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*raw));
    let hash = Digest::of(token.as_bytes());
    (token, hash)
}

/// Whether `presented` is the token whose hash is `expected`, compared in
/// constant time.
pub fn token_matches(presented: &[u8], expected: &Digest) -> bool {
    let got = Digest::of(presented);
    got.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_persists_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, created) = SigningKey::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (k2, created) = SigningKey::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(k1.public_base64(), k2.public_base64());
        let sig = k2.sign(b"manifest", "relay-batch x sequence 1").unwrap();
        let pk = minisign::PublicKey::from_base64(&k1.public_base64()).unwrap();
        let sig_box = minisign::SignatureBox::from_string(&sig).unwrap();
        minisign::verify(
            &pk,
            &sig_box,
            std::io::Cursor::new(b"manifest"),
            true,
            false,
            false,
        )
        .unwrap();
        assert!(
            minisign::verify(
                &pk,
                &sig_box,
                std::io::Cursor::new(b"manifesT"),
                true,
                false,
                false
            )
            .is_err()
        );
        assert!(!format!("{k1:?}").contains("SecretKey"));
    }

    #[test]
    fn token_check() {
        let (token, hash) = new_api_token();
        assert_eq!(token.len(), 43);
        assert!(token_matches(token.as_bytes(), &hash));
        assert!(!token_matches(b"wrong", &hash));
        assert!(!token_matches(b"", &hash));
        let (other, _) = new_api_token();
        assert_ne!(*token, *other);
    }
}
