//! `reviewer onion-auth`: a client key for the reviewer API's own onion
//! service (`[api] listen` and `deploy/torrc-api` on the relay).
//!
//! Tor's client authorisation (rend-spec-v3, "Client authorization";
//! tor(1), CLIENT AUTHORIZATION) encrypts the service's descriptor to a
//! list of X25519 public keys: without one of the private keys, a Tor
//! client cannot even learn the service's introduction points, so the API
//! cannot be reached, probed or flooded by anyone who has only the address
//! and a stolen token. The two files are tor's own formats:
//!
//! - `NAME.auth_private`, for the reviewer's tor (`ClientOnionAuthDir`):
//!   `<56-character address>:descriptor:x25519:<base32 private key>`;
//! - `NAME.auth`, for the relay host's tor (`authorized_clients/` in the
//!   service's directory): `descriptor:x25519:<base32 public key>`.
//!
//! Base32 is RFC 4648's alphabet without padding (52 characters for 32
//! bytes), as tor writes and reads it. The key pair is X25519 from
//! `x25519-dalek` (the implementation `age` uses here); the test suite
//! derives the public key again with Python's `cryptography` and has tor
//! load both files (`tests/it/onion.rs`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha3::Digest as _;
use zeroize::Zeroizing;

use crate::Error;
use crate::fsutil::create_private_file;

/// The suffix tor requires of a client's key files in `ClientOnionAuthDir`
/// (others are ignored).
pub const PRIVATE_SUFFIX: &str = ".auth_private";

/// What [`new_client_key`] wrote.
#[derive(Debug)]
pub struct ClientKey {
    /// The private key file, for the reviewer's tor.
    pub private_file: PathBuf,
    /// The public key file, for the relay's `authorized_clients/`.
    pub public_file: PathBuf,
    /// The public file's line: `descriptor:x25519:<base32>`.
    pub public_line: String,
}

/// Makes a new client key pair for the onion service at `onion` and writes
/// `out` (which must end in `.auth_private`, mode 0600, never overwritten)
/// and the public `.auth` file beside it.
pub fn new_client_key(onion: &str, out: &Path) -> Result<ClientKey, Error> {
    let address = service_address(onion)?;
    let public_file = public_path(out)?;
    if crate::fsutil::exists_no_follow(&public_file)? {
        return Err(Error::AlreadyExists { path: public_file });
    }
    let secret = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public = x25519_dalek::PublicKey::from(&secret);
    let secret_bytes = Zeroizing::new(secret.to_bytes());
    let secret_b32 = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&secret_bytes[..]));
    let public_line = format!(
        "descriptor:x25519:{}",
        data_encoding::BASE32_NOPAD.encode(public.as_bytes())
    );
    let mut private_line = Zeroizing::new(String::with_capacity(128));
    private_line.push_str(&address);
    private_line.push_str(":descriptor:x25519:");
    private_line.push_str(&secret_b32);
    private_line.push('\n');

    let mut f = create_private_file(out)?;
    f.write_all(private_line.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("write", out, e))?;
    let mut p = match create_private_file(&public_file) {
        Ok(p) => p,
        Err(e) => {
            // Nothing half-made: without its public half the key is useless.
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    p.write_all(format!("{public_line}\n").as_bytes())
        .and_then(|()| p.sync_all())
        .map_err(|e| Error::io("write", &public_file, e))?;
    Ok(ClientKey {
        private_file: out.to_owned(),
        public_file,
        public_line,
    })
}

/// `NAME.auth_private` -> `NAME.auth`, refusing any other name.
fn public_path(out: &Path) -> Result<PathBuf, Error> {
    let bad = || {
        Error::OnionAuth(OnionAuthError::BadOutName {
            path: out.to_owned(),
        })
    };
    let name = out.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?;
    let stem = name.strip_suffix(PRIVATE_SUFFIX).ok_or_else(bad)?;
    if stem.is_empty()
        || stem.len() > 64
        || !stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad());
    }
    Ok(out.with_file_name(format!("{stem}.auth")))
}

/// Checks a v3 onion address (with or without `.onion`, any case) and
/// returns its 56 lowercase characters: base32 of the service's ed25519
/// key, a two-byte checksum and version 3 (rend-spec-v3, "Encoding onion
/// addresses"). A mistyped address fails the checksum here, not later in
/// a tor log nobody reads.
pub fn service_address(onion: &str) -> Result<String, Error> {
    let bad = |reason| {
        Error::OnionAuth(OnionAuthError::BadAddress {
            address: onion.chars().take(100).collect(),
            reason,
        })
    };
    let lower = onion.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("http://").unwrap_or(&lower);
    let lower = lower.trim_end_matches('/');
    let name = lower.strip_suffix(".onion").unwrap_or(lower);
    if name.len() != 56 {
        return Err(bad("a v3 address has 56 characters before .onion"));
    }
    let decoded = data_encoding::BASE32_NOPAD
        .decode(name.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad("only the letters a-z and digits 2-7 appear in one"))?;
    let (key, rest) = decoded.split_at(32);
    let (checksum, version) = rest.split_at(2);
    if version != [3] {
        return Err(bad(
            "it does not end as a version 3 address does: a character was mistyped",
        ));
    }
    let mut h = sha3::Sha3_256::new();
    h.update(b".onion checksum");
    h.update(key);
    h.update([3u8]);
    if h.finalize()[..2] != *checksum {
        return Err(bad("its checksum is wrong: a character was mistyped"));
    }
    Ok(name.to_owned())
}

/// What can go wrong making an onion client key (nested in [`crate::Error::OnionAuth`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnionAuthError {
    /// `--onion` is not a v3 onion address.
    #[error(
        "--onion {address:?} is not a v3 onion address ({reason}): copy the API service's hostname file from the relay host (/var/lib/tor/relay-api/hostname)"
    )]
    BadAddress {
        /// What was given.
        address: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `--out` does not name a `NAME.auth_private` file.
    #[error(
        "--out {path} must be a file named NAME.auth_private (NAME: letters, digits, - and _), which is the only name tor reads in ClientOnionAuthDir"
    )]
    BadOutName {
        /// What was given.
        path: PathBuf,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The Tor Project's own address (its checksum is valid).
    const TOR_PROJECT: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

    #[test]
    fn addresses_are_checked_with_their_checksum() {
        let name = &TOR_PROJECT[..56];
        for given in [
            TOR_PROJECT.to_owned(),
            name.to_owned(),
            TOR_PROJECT.to_ascii_uppercase(),
            format!("http://{TOR_PROJECT}/"),
        ] {
            assert_eq!(service_address(&given).unwrap(), name, "{given}");
        }
        // One character changed: the checksum catches it, or (in the last
        // character, which holds the version) the version does.
        let typo = TOR_PROJECT.replacen("2gzy", "2gzz", 1);
        let e = service_address(&typo).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let last = TOR_PROJECT.replacen("53wid.onion", "53wie.onion", 1);
        let e = service_address(&last).unwrap_err().to_string();
        assert!(e.contains("mistyped"), "{e}");
        for (bad, why) in [
            ("abc.onion", "56 characters"),
            (&format!("{}.onion", "1".repeat(56)) as &str, "letters a-z"),
            (&format!("{}.onion", "a".repeat(56)), "version 3"),
        ] {
            let e = service_address(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("hostname"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_files_are_tors_formats_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("alice.auth_private");
        let k = new_client_key(TOR_PROJECT, &out).unwrap();
        let private = std::fs::read_to_string(&out).unwrap();
        let (addr, key) = private
            .trim_end()
            .split_once(":descriptor:x25519:")
            .unwrap();
        assert_eq!(addr, &TOR_PROJECT[..56]);
        assert_eq!(key.len(), 52);
        let secret: [u8; 32] = data_encoding::BASE32_NOPAD
            .decode(key.as_bytes())
            .unwrap()
            .try_into()
            .unwrap();
        let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
        assert_eq!(
            k.public_line,
            format!(
                "descriptor:x25519:{}",
                data_encoding::BASE32_NOPAD.encode(public.as_bytes())
            )
        );
        assert_eq!(k.public_file, dir.path().join("alice.auth"));
        assert_eq!(
            std::fs::read_to_string(&k.public_file).unwrap(),
            format!("{}\n", k.public_line)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Again: refused, and the first key is untouched.
        let e = new_client_key(TOR_PROJECT, &out).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), private);
        // A public file in the way: refused before anything is written.
        let bob = dir.path().join("bob.auth_private");
        std::fs::write(dir.path().join("bob.auth"), "x").unwrap();
        assert!(new_client_key(TOR_PROJECT, &bob).is_err());
        assert!(!bob.exists());
    }

    #[test]
    fn the_out_file_must_be_named_for_tor() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "alice.auth",
            "alice",
            ".auth_private",
            "a b.auth_private",
            "../x.txt",
        ] {
            let e = new_client_key(TOR_PROJECT, &dir.path().join(name)).unwrap_err();
            assert!(
                matches!(e, Error::OnionAuth(OnionAuthError::BadOutName { .. })),
                "{name}: {e}"
            );
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
