//! Opening an age file by hand, with a plain identity file.

use std::io::Read as _;
use std::path::Path;

/// The X25519 identity in a plain (unencrypted) age identity file: its
/// `AGE-SECRET-KEY-1…` line, `#` comment lines aside. That is how a demo
/// relay writes the demo reviewer's key (`relay::demo::DEMO_IDENTITY_FILE`
/// in its data directory) and how `reviewer keygen --no-passphrase` writes
/// one.
pub fn identity_file(path: &Path) -> age::x25519::Identity {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the identity {}: {e}", path.display()));
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap_or_else(|| panic!("{} holds no AGE-SECRET-KEY line", path.display()));
    line.parse()
        .unwrap_or_else(|e| panic!("{}: not an age identity: {e}", path.display()))
}

/// Decrypts a whole age file with `identity`, reading it to the end, which
/// checks the last chunk's tag too: a truncated or damaged ciphertext is an
/// error. The error says at which stage it failed.
pub fn decrypt(identity: &age::x25519::Identity, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
    let decryptor = age::Decryptor::new(ciphertext).map_err(|e| format!("age header: {e}"))?;
    let mut plain = Vec::new();
    decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| format!("decrypt: {e}"))?
        .read_to_end(&mut plain)
        .map_err(|e| format!("decrypt stream (truncated?): {e}"))?;
    Ok(plain)
}
