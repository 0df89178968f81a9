//! Demo mode: a relay that works on first run with nothing configured.
//!
//! On first run in an empty data directory, `relay demo` creates a `relay.toml`
//! with everything a trial needs: a self-signed certificate for localhost, a
//! reviewer identity and an API token, all inside the data directory.
//! Because the reviewer's private key then sits next to the ciphertext,
//! demo mode protects nothing: it is for trying the software, and it
//! refuses to listen anywhere but loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use format::Day;

use crate::{Error, fsutil, keys};

/// Name of the config file inside the data directory.
pub const CONFIG_FILE: &str = "relay.toml";
/// Demo reviewer identity (plain age identity file).
pub const DEMO_IDENTITY_FILE: &str = "demo-reviewer.key";
/// Demo reviewer API token.
pub const DEMO_TOKEN_FILE: &str = "demo-api.token";
/// Demo reviewer reply-signing key (minisign secret key, unencrypted), as
/// `reviewer keygen --reply-signing --no-passphrase` would write it; its
/// public key is pinned in the demo config.
pub const DEMO_REPLY_SIGNING_FILE: &str = "demo-reply-signing.key";

/// Creates a demo configuration in `data_dir` listening on `listen`.
/// Returns the config file's path.
pub fn init(data_dir: &Path, listen: SocketAddr) -> Result<PathBuf, Error> {
    if !listen.ip().is_loopback() {
        return Err(Error::NotLoopback(listen, "demo mode"));
    }
    fsutil::create_private_dir(data_dir)?;
    let tls_dir = data_dir.join("tls");
    fsutil::create_private_dir(&tls_dir)?;

    let cert = rcgen::generate_simple_self_signed(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(|e| Error::Tls(format!("cannot generate a demo certificate: {e}")))?;
    fsutil::write_new(&tls_dir.join("cert.pem"), cert.cert.pem().as_bytes(), 0o644)?;
    let key_pem = zeroize::Zeroizing::new(cert.signing_key.serialize_pem());
    fsutil::write_new(&tls_dir.join("key.pem"), key_pem.as_bytes(), 0o600)?;

    let (identity, recipient) = crate::seal::generate_identity(
        Day::today(),
        "DEMO reviewer identity, created by `relay demo`. Never use it for real testimony.",
    );
    fsutil::write_new(
        &data_dir.join(DEMO_IDENTITY_FILE),
        identity.as_bytes(),
        0o600,
    )?;

    let (token, token_hash) = keys::new_api_token();
    let mut token_line = zeroize::Zeroizing::new(token.as_bytes().to_vec());
    token_line.push(b'\n');
    fsutil::write_new(&data_dir.join(DEMO_TOKEN_FILE), &token_line, 0o600)?;

    keys::SigningKey::load_or_create(data_dir)?;
    let reply_key = demo_reply_signing_key(data_dir)?;

    let config = format!(
        "# Demo configuration, written by `relay demo` on first run.\n\
         # DEMO: the reviewer private key ({DEMO_IDENTITY_FILE}) is in this directory,\n\
         # so this relay protects nothing. Never use it for real testimony.\n\
         # See deploy/relay.example.toml for a real configuration.\n\
         demo = true\n\
         listen = \"{listen}\"\n\
         \n\
         [tls]\n\
         cert = \"tls/cert.pem\"\n\
         key = \"tls/key.pem\"\n\
         \n\
         [reviewers]\n\
         recipients = [\"{recipient}\"]\n\
         # DEMO: its secret half is {DEMO_REPLY_SIGNING_FILE}, in this directory.\n\
         reply_signing_keys = [\"{reply_key}\"]\n\
         \n\
         [api]\n\
         token_sha256 = \"{token_hash}\"\n"
    );
    let path = data_dir.join(CONFIG_FILE);
    // Written last: a directory without it is an unfinished init.
    fsutil::write_new(&path, config.as_bytes(), 0o600)?;
    Ok(path)
}

/// Writes the demo reviewer's reply-signing key (and its `.pub`), returns
/// the public key's base64 for the config.
fn demo_reply_signing_key(data_dir: &Path) -> Result<String, Error> {
    let bad = |problem: String| Error::SigningKey {
        path: data_dir.join(DEMO_REPLY_SIGNING_FILE),
        problem,
    };
    let kp = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| bad(format!("cannot generate: {e}")))?;
    let secret = kp
        .sk
        .to_box(Some(
            "DEMO reviewer reply-signing key, created by `relay demo`",
        ))
        .map_err(|e| bad(format!("cannot encode: {e}")))?;
    let secret = zeroize::Zeroizing::new(secret.to_string());
    fsutil::write_new(
        &data_dir.join(DEMO_REPLY_SIGNING_FILE),
        secret.as_bytes(),
        0o600,
    )?;
    let public = kp
        .pk
        .to_box()
        .map_err(|e| bad(format!("cannot encode the public key: {e}")))?;
    fsutil::write_new(
        &data_dir.join(format!("{DEMO_REPLY_SIGNING_FILE}.pub")),
        public.to_string().as_bytes(),
        0o644,
    )?;
    Ok(kp.pk.to_base64())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn demo_init_writes_a_loadable_private_setup() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("relay-data");
        let path = init(&data, "127.0.0.1:8443".parse().unwrap()).unwrap();
        let config = crate::config::Config::load(&path).unwrap();
        assert!(config.demo);
        assert!(config.listen.is_some_and(|a| a.ip().is_loopback()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for secret in [
            DEMO_IDENTITY_FILE,
            DEMO_TOKEN_FILE,
            "tls/key.pem",
            "signing.key",
            CONFIG_FILE,
        ] {
            assert_eq!(mode(&data.join(secret)), 0o600, "{secret}");
        }
        let token = std::fs::read_to_string(data.join(DEMO_TOKEN_FILE)).unwrap();
        assert!(keys::token_matches(
            token.trim().as_bytes(),
            &config.api_token_sha256
        ));
        // A second init refuses to overwrite anything.
        assert!(init(&data, "127.0.0.1:8443".parse().unwrap()).is_err());
    }

    #[test]
    fn demo_refuses_public_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let e = init(dir.path(), "0.0.0.0:8443".parse().unwrap()).unwrap_err();
        assert!(matches!(e, Error::NotLoopback(..)));
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
