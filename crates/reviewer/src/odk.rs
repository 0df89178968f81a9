//! ODK encrypted forms: `reviewer open --odk-key FILE`.
//!
//! With `[openrosa] odk_public_key` in the relay's config, the XForm asks
//! ODK apps to encrypt each submission on the phone to the NGO's RSA key.
//! The relay seals what arrives as it is: the manifest (as the attachment
//! `openrosa-instance.xml`), the encrypted media (`NAME.enc`) and the
//! encrypted instance (`submission.xml.enc`). This module decrypts them, as
//! ODK's "Encrypted forms" specification says (and Collect's
//! `EncryptionUtils` does):
//!
//! - the AES-256 key is `base64EncryptedKey`, RSA-OAEP with SHA-256 and
//!   MGF1-SHA-256;
//! - the IV seed is the MD5 of the instanceID (UTF-8) followed by that
//!   key; before file i (media in manifest order, then the instance, i from
//!   0), byte i mod 16 of the seed is incremented and the seed is the IV;
//! - each file is AES-256-CFB (128-bit segments) of its PKCS#7-padded
//!   plaintext.
//!
//! The element signature (`base64EncryptedElementSignature`) is an MD5
//! encrypted to the same public key: anyone holding that key can make
//! one, so it proves no authorship. It is checked as a test of integrity,
//! and a mismatch is reported, not fatal.
//!
//! The decrypted files go into the submission's folder, `odk/`
//! (`submission.xml` and the media by their names), `0600`. RSA and AES are
//! AWS-LC's (through aws-lc-rs, the library rustls already uses here).
//! Tested against an independent encryptor in Python `cryptography`
//! (tests/odk/encrypt.py).

use std::path::{Path, PathBuf};

use aws_lc_rs::cipher::{AES_256, DecryptingKey, DecryptionContext, UnboundCipherKey};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use md5::Digest as _;
use zeroize::Zeroizing;

use crate::Error;
use crate::fsutil::{create_private_dir, create_private_file, read_small};
use crate::workbench::Record;

/// The attachment the relay seals an OpenRosa instance (or an encrypted
/// submission's manifest) under.
pub const MANIFEST_NAME: &str = "openrosa-instance.xml";
/// The folder the decrypted files go into, in the submission's folder.
pub const DECRYPTED_DIR: &str = "odk";
/// The largest manifest read.
const MAX_MANIFEST: u64 = 1024 * 1024;
/// The largest encrypted file decrypted (in memory): the relay's own
/// limit on a submission is far below it.
const MAX_FILE: u64 = 1 << 30;

/// The NGO's ODK private key (PKCS#8 PEM), unlocked for this command.
/// Not `Clone`; its `Debug` shows nothing of it.
pub struct OdkKey {
    key: OaepPrivateDecryptingKey,
}

impl std::fmt::Debug for OdkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OdkKey([redacted])")
    }
}

/// What went wrong with an ODK encrypted submission (nested in
/// [`Error::Odk`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OdkError {
    /// The key file is not a PKCS#8 RSA private key.
    #[error(
        "{path} is not an RSA private key in PKCS#8 PEM (BEGIN PRIVATE KEY): convert one with `openssl pkcs8 -topk8 -nocrypt -in odk.pem -out odk-pkcs8.pem`"
    )]
    BadKey {
        /// The file.
        path: PathBuf,
    },
    /// A submission could not be decrypted.
    #[error(
        "ODK-encrypted submission {id} could not be decrypted ({reason}): check that --odk-key is the private half of the relay's [openrosa] odk_public_key; the sealed files are kept in the archive"
    )]
    Undecryptable {
        /// The submission.
        id: format::SubmissionId,
        /// Why.
        reason: String,
    },
}

impl OdkKey {
    /// Reads the key from a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`).
    pub fn load(path: &Path) -> Result<Self, Error> {
        use base64::Engine as _;
        let bad = || Error::Odk(OdkError::BadKey { path: path.into() });
        let text = Zeroizing::new(read_small(path, 64 * 1024)?);
        let text = std::str::from_utf8(&text).map_err(|_| bad())?;
        let body: Zeroizing<String> = Zeroizing::new(
            text.lines()
                .skip_while(|l| l.trim() != "-----BEGIN PRIVATE KEY-----")
                .skip(1)
                .take_while(|l| l.trim() != "-----END PRIVATE KEY-----")
                .collect(),
        );
        let der = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|_| bad())?,
        );
        let key = PrivateDecryptingKey::from_pkcs8(&der).map_err(|_| bad())?;
        let key = OaepPrivateDecryptingKey::new(key).map_err(|_| bad())?;
        Ok(Self { key })
    }

    fn unwrap_rsa(&self, b64: &str) -> Result<Zeroizing<Vec<u8>>, String> {
        use base64::Engine as _;
        let ct = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| "a base64 field is not base64".to_owned())?;
        let mut out = Zeroizing::new(vec![0u8; self.key.min_output_size()]);
        let n = self
            .key
            .decrypt(&OAEP_SHA256_MGF1SHA256, &ct, &mut out, None)
            .map_err(|_| "the key does not decrypt with this RSA key".to_owned())?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

/// Whether a submission is an ODK encrypted one (its testimony says so).
pub fn is_encrypted(r: &Record) -> bool {
    r.fields.get("openrosa_encrypted").map(String::as_str) == Some("yes")
}

/// What [`decrypt`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The folder.
    pub dir: PathBuf,
    /// The media files decrypted (besides `submission.xml`).
    pub media: usize,
    /// Whether the element signature matched.
    pub signature_matches: bool,
}

struct Manifest {
    form_id: String,
    version: String,
    key: String,
    instance_id: String,
    media: Vec<String>,
    xml_file: String,
    signature: String,
}

fn manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the manifest is not UTF-8".to_owned())?;
    let doc = roxmltree::Document::parse_with_options(
        text,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: 10_000,
            ..roxmltree::ParsingOptions::default()
        },
    )
    .map_err(|e| format!("the manifest is not XML ({e})"))?;
    let root = doc.root_element();
    let find = |name: &str| {
        root.descendants()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(|t| t.trim().to_owned())
            .ok_or_else(|| format!("the manifest has no {name}"))
    };
    let media = root
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "file")
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect();
    Ok(Manifest {
        form_id: root.attribute("id").unwrap_or_default().to_owned(),
        version: root.attribute("version").unwrap_or_default().to_owned(),
        key: find("base64EncryptedKey")?,
        instance_id: find("instanceID")?,
        media,
        xml_file: find("encryptedXmlFile")?,
        signature: find("base64EncryptedElementSignature")?,
    })
}

/// A name from the manifest as a plain file name, without `.enc`.
fn plain_name(enc: &str) -> Option<String> {
    let name = enc.strip_suffix(".enc")?;
    (format::sanitize_file_name(name) == name && !name.is_empty()).then(|| name.to_owned())
}

/// Decrypts the ODK encrypted submission `r` of the archive in `root` into
/// its folder's `odk/`.
pub fn decrypt(key: &OdkKey, root: &Path, r: &Record) -> Result<Decrypted, Error> {
    let fail = |reason: String| Error::Odk(OdkError::Undecryptable { id: r.id, reason });
    let file_of = |name: &str| {
        r.attachments
            .iter()
            .find(|a| a.name == name)
            .map(|a| root.join(&a.original))
            .ok_or_else(|| fail(format!("{name} is not among its files")))
    };
    let m = manifest(&read_small(&file_of(MANIFEST_NAME)?, MAX_MANIFEST)?).map_err(fail)?;
    let aes = key.unwrap_rsa(&m.key).map_err(fail)?;
    if aes.len() != 32 {
        return Err(fail("the key is not 256 bits".into()));
    }
    // Written into a partial folder, renamed into place when whole: a
    // failure (a wrong key, a damaged file) leaves no `odk/` behind, so the
    // next `open --odk-key` tries again.
    let dir = root.join(&r.dir).join(DECRYPTED_DIR);
    let partial = root.join(&r.dir).join(format!(".{DECRYPTED_DIR}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| Error::io("remove", &partial, e))?;
    }
    create_private_dir(&partial).map_err(|e| Error::io("create directory", &partial, e))?;
    let result = decrypt_into(&m, &aes, seed_of(&m, &aes), &partial, &file_of, &fail);
    match result {
        Ok(()) => {}
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    }
    std::fs::rename(&partial, &dir).map_err(|e| Error::io("rename", &dir, e))?;
    let signed = signed_text(&m, &dir)?;
    let signature_matches = key
        .unwrap_rsa(&m.signature)
        .is_ok_and(|s| s[..] == md5::Md5::digest(signed.as_bytes())[..]);
    Ok(Decrypted {
        dir,
        media: m.media.len(),
        signature_matches,
    })
}

fn seed_of(m: &Manifest, aes: &[u8]) -> [u8; 16] {
    let mut h = md5::Md5::new();
    h.update(m.instance_id.as_bytes());
    h.update(aes);
    h.finalize().into()
}

/// The files in manifest order (media, then the instance) and the names
/// they are written under.
fn names(m: &Manifest) -> Option<Vec<(&str, String)>> {
    let mut out = Vec::new();
    for enc in &m.media {
        out.push((enc.as_str(), plain_name(enc)?));
    }
    out.push((m.xml_file.as_str(), "submission.xml".to_owned()));
    Some(out)
}

/// What the element signature is the MD5 of.
fn signed_text(m: &Manifest, dir: &Path) -> Result<String, Error> {
    let mut signed = format!(
        "{}\n{}\n{}\n{}\n",
        m.form_id, m.version, m.key, m.instance_id
    );
    for (_, name) in names(m).unwrap_or_default() {
        let path = dir.join(&name);
        let bytes = Zeroizing::new(read_small(&path, MAX_FILE)?);
        signed.push_str(&format!(
            "{name}::{}\n",
            hex::encode(md5::Md5::digest(&bytes[..]))
        ));
    }
    Ok(signed)
}

fn decrypt_into(
    m: &Manifest,
    aes: &[u8],
    mut seed: [u8; 16],
    dir: &Path,
    file_of: &dyn Fn(&str) -> Result<PathBuf, Error>,
    fail: &dyn Fn(String) -> Error,
) -> Result<(), Error> {
    let files = names(m).ok_or_else(|| fail("a file name is unusable".into()))?;
    for (i, (enc, name)) in files.iter().enumerate() {
        seed[i % 16] = seed[i % 16].wrapping_add(1);
        let mut buf = Zeroizing::new(read_small(&file_of(enc)?, MAX_FILE)?);
        let cipher = UnboundCipherKey::new(&AES_256, aes)
            .and_then(DecryptingKey::cfb128)
            .map_err(|_| fail("AES failed".into()))?;
        let plain = cipher
            .decrypt(&mut buf, DecryptionContext::Iv128(seed.into()))
            .map_err(|_| fail("AES failed".into()))?;
        // PKCS#7: the last byte says how many padding bytes there are.
        let pad = plain.last().copied().unwrap_or(0) as usize;
        if pad == 0
            || pad > 16
            || pad > plain.len()
            || plain[plain.len() - pad..]
                .iter()
                .any(|b| *b as usize != pad)
        {
            return Err(fail(format!("{name} does not decrypt (bad padding)")));
        }
        let plain = &plain[..plain.len() - pad];
        let path = dir.join(name);
        let mut f = create_private_file(&path)?;
        std::io::Write::write_all(&mut f, plain)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("write", &path, e))?;
    }
    Ok(())
}
