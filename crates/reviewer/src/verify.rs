//! Verifying batches: structure, signature, contents and chain.
//!
//! `docs/format.md`, "What a reviewer checks, in order":
//! 1. Members are exactly `manifest.json`, `manifest.sig`, then
//!    `submissions/<id>.age` in the manifest's order; sizes within limits.
//! 2. The signature verifies with the **pinned** relay key (not the one in
//!    the manifest), and the manifest's `relay_key` equals the pinned key.
//! 3. Each `.age` member's length and SHA-256 equal the manifest entry.
//! 4. Chain: `sequence` is one more than the last accepted batch and
//!    `previous_manifest_sha256` equals that batch's manifest hash; with no
//!    history only sequence 1 is accepted unless the reviewer says where to
//!    start.
//!
//! "Any failure refuses the whole batch and nothing from it is written."
//! Verification writes nothing at all; only [`crate::open`] advances the
//! chain state, after the batch is safely on disk.
//!
//! Parse, don't validate: the only ways to get a [`VerifiedBatch`] are
//! [`verify_batches`] and [`verify_chain`] (which takes [`SignedBatch`]es,
//! steps 1–3 done), and only a `VerifiedBatch` can be opened.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use format::{
    BATCH_MANIFEST, BATCH_SIGNATURE, BatchId, Digest, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES,
    Manifest, batch_member_for, parse_batch_member,
};

use crate::Error;
use crate::fsutil::{HashingReader, read_small};
use crate::state::{ChainAnchor, ChainState};
use crate::ustar::{self, TarError};

/// Key files are tiny.
const MAX_KEY_FILE: u64 = 4096;
/// Read buffer for batch files.
const BUFFER: usize = 256 * 1024;

/// The relay's minisign public key, pinned by the reviewer.
#[derive(Debug, Clone)]
pub struct PinnedKey {
    base64: String,
    key: minisign_verify::PublicKey,
}

impl PinnedKey {
    /// A key from its base64 form (`RW…`, as `relay pubkey` prints it).
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        minisign_verify::PublicKey::from_base64(s)
            .map(|key| Self {
                base64: s.to_owned(),
                key,
            })
            .map_err(|_| {
                Error::Verify(VerifyError::BadRelayKey {
                    input: s.chars().take(100).collect(),
                    reason: "not the base64 of a minisign Ed25519 public key".into(),
                })
            })
    }

    /// A key given on the command line: the base64 key itself, or a file
    /// holding it (a minisign `.pub` file with its `untrusted comment:`
    /// line, or the bare key line).
    pub fn from_arg(arg: &str) -> Result<Self, Error> {
        if let Ok(key) = Self::from_base64(arg) {
            return Ok(key);
        }
        let path = Path::new(arg);
        if !path.is_file() {
            return Err(Error::Verify(VerifyError::BadRelayKey {
                input: arg.chars().take(100).collect(),
                reason: "neither a key nor an existing file".into(),
            }));
        }
        let bytes = read_small(path, MAX_KEY_FILE)?;
        let bad = |reason: &str| {
            Error::Verify(VerifyError::BadRelayKey {
                input: arg.chars().take(100).collect(),
                reason: reason.into(),
            })
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("the file is not text"))?;
        let mut keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("untrusted comment:"));
        match (keys.next(), keys.next()) {
            (Some(line), None) => Self::from_base64(line),
            (None, _) => Err(bad("the file holds no key line")),
            (Some(_), Some(_)) => Err(bad("the file holds more than one key line")),
        }
    }

    /// The key in base64, as pinned.
    pub fn as_base64(&self) -> &str {
        &self.base64
    }
}

/// A batch whose structure, signature, contents and place in the chain
/// have all been checked. Only [`verify_batches`] and [`verify_chain`]
/// (from [`SignedBatch`]es) make one.
#[derive(Debug)]
pub struct VerifiedBatch {
    path: PathBuf,
    manifest: Manifest,
    manifest_sha256: Digest,
    relay_key: String,
    prior: Option<ChainState>,
}

impl VerifiedBatch {
    /// The batch file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The signed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the exact `manifest.json` bytes (the manifest hash).
    pub fn manifest_sha256(&self) -> Digest {
        self.manifest_sha256
    }

    /// The batch's sequence number.
    pub fn sequence(&self) -> u64 {
        self.manifest.sequence
    }

    /// The batch's id.
    pub fn batch_id(&self) -> BatchId {
        self.manifest.batch_id
    }

    /// The pinned relay key it verified against.
    pub fn relay_key(&self) -> &str {
        &self.relay_key
    }

    /// The chain state once this batch is accepted.
    pub fn chain_state(&self) -> ChainState {
        ChainState {
            sequence: self.manifest.sequence,
            batch_id: self.manifest.batch_id,
            manifest_sha256: self.manifest_sha256,
        }
    }

    /// The chain state the store must hold before this batch is accepted.
    pub(crate) fn prior(&self) -> Option<&ChainState> {
        self.prior.as_ref()
    }
}

/// A batch whose structure, signature (with the pinned key) and contents
/// are checked, but not its place in the chain: what [`verify_signed`]
/// returns. Its manifest can be trusted to come from the relay (e.g. for a
/// thread's source recipient), but it cannot be opened: only a
/// [`VerifiedBatch`] ([`verify_chain`] makes one) can.
#[derive(Debug)]
pub struct SignedBatch {
    path: PathBuf,
    manifest: Manifest,
    manifest_sha256: Digest,
    relay_key: String,
}

impl SignedBatch {
    /// The batch file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pinned relay key its signature verified with.
    pub fn relay_key(&self) -> &str {
        &self.relay_key
    }

    /// The batch's sequence number.
    pub fn sequence(&self) -> u64 {
        self.manifest.sequence
    }

    /// The signed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the exact `manifest.json` bytes (the manifest hash).
    pub fn manifest_sha256(&self) -> Digest {
        self.manifest_sha256
    }
}

/// Checks one batch's structure, signature with the pinned key and
/// contents (steps 1–3 of "What a reviewer checks"), but not its place in
/// the chain: for batches already opened, whose manifests a reviewer reads
/// again (`reviewer reply --batch-dir`), and for `reviewer open`, which sets
/// aside the batches its archive already holds before [`verify_chain`].
pub fn verify_signed(path: &Path, key: &PinnedKey) -> Result<SignedBatch, Error> {
    authenticate(path, key)
}

/// Verifies one batch against the pinned key and the chain anchor.
pub fn verify_batch(
    path: &Path,
    key: &PinnedKey,
    anchor: &ChainAnchor,
) -> Result<VerifiedBatch, Error> {
    let mut batches = verify_batches(&[path], key, anchor)?;
    batches.pop().ok_or_else(|| {
        Error::Verify(VerifyError::MalformedBatch {
            path: path.into(),
            reason: "no batch".into(),
        })
    })
}

/// Verifies batches against the pinned key and the chain anchor, and
/// returns them in sequence order. The batches must form one unbroken
/// chain starting where `anchor` says; any failure refuses them all.
pub fn verify_batches<P: AsRef<Path>>(
    paths: &[P],
    key: &PinnedKey,
    anchor: &ChainAnchor,
) -> Result<Vec<VerifiedBatch>, Error> {
    let batches = paths
        .iter()
        .map(|p| authenticate(p.as_ref(), key))
        .collect::<Result<Vec<_>, _>>()?;
    verify_chain(batches, anchor)
}

/// Step 4 for batches whose steps 1–3 passed ([`verify_signed`], all with
/// the same pinned key): they must form one unbroken chain starting where
/// `anchor` says. Returns them in sequence order; any failure refuses them
/// all. `reviewer open` authenticates first so that it can set aside the
/// batches already in its archive before the chain is checked.
pub fn verify_chain(
    mut batches: Vec<SignedBatch>,
    anchor: &ChainAnchor,
) -> Result<Vec<VerifiedBatch>, Error> {
    batches.sort_by_key(|b| b.manifest.sequence);
    for pair in batches.windows(2) {
        if pair[0].relay_key != pair[1].relay_key {
            return Err(Error::Verify(VerifyError::InvalidManifest {
                path: pair[1].path.clone(),
                reason: "it was verified with another relay key than the batches given with it"
                    .into(),
            }));
        }
        if pair[0].manifest.sequence == pair[1].manifest.sequence {
            return Err(Error::Verify(VerifyError::DuplicateSequence {
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
                sequence: pair[0].manifest.sequence,
            }));
        }
    }

    let mut out: Vec<VerifiedBatch> = Vec::with_capacity(batches.len());
    for b in batches {
        let seq = b.manifest.sequence;
        let prev = b.manifest.previous_manifest_sha256;
        let prior = match out.last() {
            Some(last) => {
                check_follows(&b, &last.chain_state())?;
                Some(last.chain_state())
            }
            None => {
                match anchor {
                    ChainAnchor::Genesis if seq != 1 => {
                        return Err(Error::Verify(VerifyError::NotFirst {
                            path: b.path,
                            sequence: seq,
                        }));
                    }
                    ChainAnchor::Genesis => {
                        // Manifest::from_json already refuses a previous
                        // hash on sequence 1; checked again here because
                        // the chain's root must be exactly that.
                        if prev.is_some() {
                            return Err(Error::Verify(VerifyError::ChainBroken {
                                path: b.path,
                                sequence: seq,
                            }));
                        }
                    }
                    ChainAnchor::StartAt(n) if seq != *n => {
                        return Err(Error::Verify(VerifyError::StartAtMismatch {
                            path: b.path,
                            sequence: seq,
                            start_at: *n,
                        }));
                    }
                    ChainAnchor::StartAt(_) => {}
                    ChainAnchor::After(last) => {
                        if seq <= last.sequence {
                            return Err(Error::Verify(VerifyError::Replay {
                                path: b.path,
                                sequence: seq,
                                last: last.sequence,
                                archive: None,
                            }));
                        }
                        check_follows(&b, last)?;
                    }
                }
                anchor.prior()
            }
        };
        out.push(VerifiedBatch {
            path: b.path,
            manifest: b.manifest,
            manifest_sha256: b.manifest_sha256,
            relay_key: b.relay_key,
            prior,
        });
    }
    Ok(out)
}

/// `b` must be the batch right after `last`.
fn check_follows(b: &SignedBatch, last: &ChainState) -> Result<(), Error> {
    let seq = b.manifest.sequence;
    let expected = last.sequence.saturating_add(1);
    if seq != expected {
        return Err(Error::Verify(VerifyError::Gap {
            path: b.path.clone(),
            sequence: seq,
            expected,
        }));
    }
    if b.manifest.previous_manifest_sha256 != Some(last.manifest_sha256) {
        return Err(Error::Verify(VerifyError::ChainBroken {
            path: b.path.clone(),
            sequence: seq,
        }));
    }
    Ok(())
}

/// Quotes an untrusted member name for an error message, shortened.
fn quote(name: &str) -> String {
    let short: String = name.chars().take(80).collect();
    format!("{short:?}")
}

/// Maps a tar error while reading a batch.
fn tar_error(path: &Path, e: TarError) -> Error {
    match e {
        TarError::Io(e) => Error::io("read", path, e),
        TarError::Truncated => Error::Verify(VerifyError::MalformedBatch {
            path: path.into(),
            reason: "the file is truncated".into(),
        }),
        other => Error::Verify(VerifyError::MalformedBatch {
            path: path.into(),
            reason: other.to_string(),
        }),
    }
}

/// Reads a whole (size-checked) member into memory.
fn read_member<R: Read>(
    tar: &mut ustar::Reader<R>,
    size: u64,
    path: &Path,
) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    tar.data()
        .read_to_end(&mut buf)
        .map_err(|e| tar_error(path, TarError::from(e)))?;
    Ok(buf)
}

/// Opens a batch file for reading.
pub(crate) fn open_batch_file(path: &Path) -> Result<ustar::Reader<BufReader<File>>, Error> {
    let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
    Ok(ustar::Reader::new(BufReader::with_capacity(BUFFER, file)))
}

/// Steps 1–3 for one batch file.
fn authenticate(path: &Path, key: &PinnedKey) -> Result<SignedBatch, Error> {
    let (manifest, manifest_sha256) = read_batch(path, &|manifest_bytes, sig_bytes| {
        check_signed_manifest(key, manifest_bytes, sig_bytes).map_err(|e| match e {
            SignatureProblem::BadSignature => {
                Error::Verify(VerifyError::BadSignature { path: path.into() })
            }
            SignatureProblem::Invalid(reason) => Error::Verify(VerifyError::InvalidManifest {
                path: path.into(),
                reason,
            }),
        })
    })?;
    Ok(SignedBatch {
        path: path.into(),
        manifest_sha256,
        manifest,
        relay_key: key.base64.clone(),
    })
}

/// Steps 1 and 3 without the key: the file is a whole batch, every
/// ciphertext its manifest lists is there with its size and SHA-256, and
/// nothing else is. `reviewer fetch` (which holds no relay key) uses it to
/// tell a complete download from a cut-off or damaged one. Says nothing
/// about who made the batch.
pub(crate) fn check_complete_unverified(path: &Path) -> Result<Manifest, Error> {
    read_batch(path, &|manifest_bytes, _| {
        Manifest::from_json(manifest_bytes).map_err(|e| {
            Error::Verify(VerifyError::InvalidManifest {
                path: path.into(),
                reason: e.to_string(),
            })
        })
    })
    .map(|(m, _)| m)
}

/// What [`read_batch`] asks of a manifest and its signature (their bytes).
type ManifestCheck<'a> = dyn Fn(&[u8], &[u8]) -> Result<Manifest, Error> + 'a;

/// Reads a batch file member by member: the manifest and signature (given
/// to `check`, which returns the manifest it accepts), then every
/// submission in manifest order against its entry. Returns the manifest
/// and the SHA-256 of its bytes.
fn read_batch(path: &Path, check: &ManifestCheck<'_>) -> Result<(Manifest, Digest), Error> {
    let malformed = |reason: String| {
        Error::Verify(VerifyError::MalformedBatch {
            path: path.into(),
            reason,
        })
    };
    let mut tar = open_batch_file(path)?;
    let next = |tar: &mut ustar::Reader<_>| tar.next_entry().map_err(|e| tar_error(path, e));

    // manifest.json, then manifest.sig, each within its size limit.
    let mut expect = |name: &str, ordinal: &str, missing: String, max: usize| {
        let head = next(&mut tar)?.ok_or_else(|| malformed(missing))?;
        if head.path != name {
            return Err(malformed(format!(
                "the {ordinal} member is {}, not {name}",
                quote(&head.path)
            )));
        }
        if head.size > max as u64 {
            return Err(malformed(format!("{name} is larger than {max} bytes")));
        }
        read_member(&mut tar, head.size, path)
    };
    let manifest_bytes = expect(
        BATCH_MANIFEST,
        "first",
        "it holds no members".into(),
        MAX_MANIFEST_BYTES,
    )?;
    let sig_bytes = expect(
        BATCH_SIGNATURE,
        "second",
        format!("{BATCH_SIGNATURE} is missing"),
        MAX_SIGNATURE_BYTES,
    )?;

    let manifest = check(&manifest_bytes, &sig_bytes)?;

    // The submissions, in manifest order, each matching its entry.
    for entry in &manifest.submissions {
        let expected = batch_member_for(&entry.id);
        let Some(head) = next(&mut tar)? else {
            return Err(malformed(format!(
                "it ends before {expected}, which the manifest lists (a submission is missing)"
            )));
        };
        if head.path != expected {
            return Err(malformed(unexpected_member(
                &head.path,
                &manifest,
                Some(&expected),
            )));
        }
        if head.size != entry.size {
            return Err(Error::Verify(VerifyError::SubmissionMismatch {
                path: path.into(),
                id: entry.id,
                what: "size",
            }));
        }
        let (digest, len) = HashingReader::new(tar.data())
            .finish()
            .map_err(|e| tar_error(path, TarError::from(e)))?;
        if len != entry.size || digest != entry.sha256 {
            return Err(Error::Verify(VerifyError::SubmissionMismatch {
                path: path.into(),
                id: entry.id,
                what: "SHA-256",
            }));
        }
    }
    if let Some(head) = next(&mut tar)? {
        return Err(malformed(unexpected_member(&head.path, &manifest, None)));
    }

    Ok((manifest, Digest::of(&manifest_bytes)))
}

/// Why a signed manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignatureProblem {
    /// The signature does not verify with the key (or is not one).
    BadSignature,
    /// The signature verifies but the manifest breaks a rule.
    Invalid(String),
}

/// Step 2 on bytes: `manifest.sig` verifies over the exact `manifest.json`
/// bytes with `key`, before the manifest is even parsed; then the manifest
/// parses, names `key` as its relay key, and the trusted comment names its
/// batch id and sequence. Shared by batch files and the archive's custody
/// copies (`reviewer verify-archive`).
pub(crate) fn check_signed_manifest(
    key: &PinnedKey,
    manifest_bytes: &[u8],
    sig_bytes: &[u8],
) -> Result<Manifest, SignatureProblem> {
    let sig_text = std::str::from_utf8(sig_bytes).map_err(|_| SignatureProblem::BadSignature)?;
    let signature =
        minisign_verify::Signature::decode(sig_text).map_err(|_| SignatureProblem::BadSignature)?;
    key.key
        .verify(manifest_bytes, &signature, false)
        .map_err(|_| SignatureProblem::BadSignature)?;

    let manifest = Manifest::from_json(manifest_bytes)
        .map_err(|e| SignatureProblem::Invalid(e.to_string()))?;
    if manifest.relay_key != key.base64 {
        return Err(SignatureProblem::Invalid(
            "its relay_key is not the pinned relay key".into(),
        ));
    }
    // Spec: "The trusted comment is `relay-batch <batch_id> sequence <n>`."
    let comment = format!(
        "relay-batch {} sequence {}",
        manifest.batch_id, manifest.sequence
    );
    if signature.trusted_comment() != comment {
        return Err(SignatureProblem::Invalid(
            "the signature's trusted comment does not name this batch and sequence".into(),
        ));
    }
    Ok(manifest)
}

/// Explains a member that is not the one expected next.
fn unexpected_member(found: &str, manifest: &Manifest, expected: Option<&str>) -> String {
    if found == BATCH_MANIFEST || found == BATCH_SIGNATURE {
        return format!("{found} appears twice");
    }
    match parse_batch_member(found) {
        Some(id) if manifest.submissions.iter().any(|e| e.id == id) => match expected {
            Some(expected) => format!(
                "members are out of order: {} is where {expected} belongs",
                quote(found)
            ),
            None => format!("{} appears twice", quote(found)),
        },
        Some(_) => format!(
            "member {} is not listed in the manifest (an extra submission)",
            quote(found)
        ),
        None => format!("unexpected member {}", quote(found)),
    }
}

// ------------------------------------------------------------------ errors

/// What can go wrong with a batch that does not verify (structure, signature, hashes, chain) (nested in [`crate::Error::Verify`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
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
        path: std::path::PathBuf,
        /// The rule that was broken.
        reason: String,
    },

    /// The manifest signature does not verify with the pinned relay key.
    #[error(
        "batch {path} is not signed by the pinned relay key (or its signature is damaged): check --relay-key (`relay pubkey` prints it) or do not trust this batch"
    )]
    BadSignature {
        /// The batch file.
        path: std::path::PathBuf,
    },

    /// The signed manifest breaks a rule (or names another relay key).
    #[error(
        "the signed manifest of {path} is invalid ({reason}): do not trust this batch and tell the relay operator"
    )]
    InvalidManifest {
        /// The batch file.
        path: std::path::PathBuf,
        /// The rule that was broken.
        reason: String,
    },

    /// A sealed submission's size or SHA-256 differs from the signed manifest.
    #[error(
        "submission {id} in {path} does not match the signed manifest ({what} differs): the batch was altered or damaged; fetch it again"
    )]
    SubmissionMismatch {
        /// The batch file.
        path: std::path::PathBuf,
        /// The submission.
        id: format::SubmissionId,
        /// `"size"` or `"SHA-256"`.
        what: &'static str,
    },

    /// The batch comes before the last one accepted, and is not the one
    /// accepted at its place (a replay, an old copy, or a batch opened
    /// into another archive).
    #[error(
        "batch {sequence} ({path}) is not in {}, which already accepted batch {last} of this relay: it is a replay or an old copy, or it was opened into another archive; open only newer batches into this one",
        .archive.as_ref().map_or_else(|| "the archive".to_owned(), |a| format!("the archive {}", a.display()))
    )]
    Replay {
        /// The batch file.
        path: std::path::PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The last sequence number accepted from this relay.
        last: u64,
        /// The archive whose chain accepted `last` (when known).
        archive: Option<std::path::PathBuf>,
    },

    /// One or more batches between the last accepted one and this one are missing.
    #[error("batch {sequence} ({path}) was given but batch {expected} comes next: batches {expected} to {last_missing} are missing; fetch and open them first", last_missing = .sequence.saturating_sub(1))]
    Gap {
        /// The batch file.
        path: std::path::PathBuf,
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
        path: std::path::PathBuf,
        /// Its sequence number.
        sequence: u64,
    },

    /// No history with this relay, and the batch is not its first.
    #[error(
        "batch {sequence} ({path}) is not the relay's first batch and the chain state records no earlier batch from this relay: open batch 1 first, or pass --start-at {sequence} if you deliberately start at this batch"
    )]
    NotFirst {
        /// The batch file.
        path: std::path::PathBuf,
        /// Its sequence number.
        sequence: u64,
    },

    /// `--start-at N` was given but the first batch has another sequence.
    #[error(
        "--start-at {start_at} was given but the first batch given ({path}) is batch {sequence}: pass the batch numbered {start_at} (and the ones after it)"
    )]
    StartAtMismatch {
        /// The batch file.
        path: std::path::PathBuf,
        /// Its sequence number.
        sequence: u64,
        /// The `--start-at` value.
        start_at: u64,
    },

    /// Two batch files hold the same sequence number.
    #[error(
        "{first} and {second} both hold batch {sequence}: pass each batch once (if they differ, the relay's history forked: do not trust it)"
    )]
    DuplicateSequence {
        /// One batch file.
        first: std::path::PathBuf,
        /// The other.
        second: std::path::PathBuf,
        /// The sequence number they share.
        sequence: u64,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pinned_key_forms() {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let b64 = kp.pk.to_base64();
        let k = PinnedKey::from_arg(&format!("  {b64}\n")).unwrap();
        assert_eq!(k.as_base64(), b64);

        let dir = tempfile::tempdir().unwrap();
        let pub_file = dir.path().join("relay.pub");
        std::fs::write(&pub_file, kp.pk.to_box().unwrap().to_string()).unwrap();
        let k = PinnedKey::from_arg(pub_file.to_str().unwrap()).unwrap();
        assert_eq!(k.as_base64(), b64);

        let bare = dir.path().join("bare");
        std::fs::write(&bare, format!("{b64}\n")).unwrap();
        assert_eq!(
            PinnedKey::from_arg(bare.to_str().unwrap())
                .unwrap()
                .as_base64(),
            b64
        );

        let two = dir.path().join("two");
        std::fs::write(&two, format!("{b64}\n{b64}\n")).unwrap();
        assert!(PinnedKey::from_arg(two.to_str().unwrap()).is_err());
        assert!(PinnedKey::from_arg("RWnotakey").is_err());
        assert!(PinnedKey::from_arg("/nonexistent/key").is_err());
    }

    #[test]
    fn explains_unexpected_members() {
        let id = format::SubmissionId::from_bytes([1; 16]);
        let other = format::SubmissionId::from_bytes([2; 16]);
        let m = Manifest {
            format: format::MANIFEST_FORMAT.into(),
            relay_key: "RW".into(),
            batch_id: BatchId::from_bytes([0; 16]),
            sequence: 1,
            previous_manifest_sha256: None,
            created_day: "2026-11-28".parse().unwrap(),
            submissions: vec![format::ManifestEntry {
                id,
                received_day: "2026-11-28".parse().unwrap(),
                epoch: 1,
                size: 1,
                sha256: Digest::of(b"x"),
                thread: None,
            }],
            threads: Vec::new(),
            demo: false,
        };
        let listed = batch_member_for(&id);
        assert!(unexpected_member(&listed, &m, Some("x")).contains("out of order"));
        assert!(unexpected_member(&listed, &m, None).contains("twice"));
        assert!(unexpected_member(&batch_member_for(&other), &m, None).contains("not listed"));
        assert!(unexpected_member("manifest.sig", &m, None).contains("twice"));
        assert!(unexpected_member("../etc\n", &m, None).contains("\\n"));
    }
}
