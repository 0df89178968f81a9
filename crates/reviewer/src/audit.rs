//! `reviewer verify-archive`: re-checks an archive's chain of custody, long
//! after the batch files are gone.
//!
//! For every batch in the archive index:
//!
//! 1. the kept `manifest.json` has the SHA-256 the index recorded, and the
//!    kept `manifest.sig` verifies over it with the relay key recorded
//!    (which must be one of the `--relay-key` values, when given), naming
//!    the same batch id and sequence;
//! 2. the batches of one relay form an unbroken hash chain where they
//!    follow each other (sequence + 1 and `previous_manifest_sha256`);
//! 3. every ciphertext the manifest lists is kept in that relay's custody
//!    directory with the manifest's size and SHA-256, and is in the index.
//!
//! For every archived submission: its origin is a kept manifest that lists
//! it with the recorded ciphertext hash; `testimony.json` has the SHA-256
//! it had when it was decrypted and parses; and every original attachment
//! has the size and SHA-256 `testimony.json` lists (originals untouched).
//!
//! **Gaps.** Sequence numbers missing between two archived batches of a
//! relay are reported as `note:` lines, not as problems: batches opened
//! into another archive (or before this one existed, or skipped with
//! `--start-at`) look exactly like that. A batch removed from the archive
//! on purpose leaves the same trace, so read the notes: the relay signs
//! every batch, and the chain state and receipts of the laptop that opened
//! the missing sequence numbers account for them.
//!
//! What this cannot show: that `testimony.json` and the attachments are
//! what the ciphertext holds. That needs the identity; decrypt the kept
//! ciphertext with the stock tools to compare
//! (`age -d -i key .custody/<relay>/submissions/<id>.age | tar -x`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::Path;

use format::{
    BATCH_MANIFEST, BATCH_SIGNATURE, Digest, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES,
    MAX_TESTIMONY_JSON_BYTES, Manifest, SubmissionId, TESTIMONY_ENTRY, Testimony,
};
use zeroize::Zeroizing;

use crate::Error;
use crate::archive::{
    Archive, ArchivedBatch, custody_batch_dir, custody_ciphertext, relay_fingerprint,
};
use crate::fsutil::{HashingReader, exists_no_follow, read_small};
use crate::verify::{PinnedKey, SignatureProblem, check_signed_manifest};
use crate::workbench::Origin;

/// What `verify-archive` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// One line per problem (tampering, damage, a missing file).
    pub problems: Vec<String>,
    /// Things worth knowing that are not problems (gaps in a chain, keys
    /// not pinned, folders outside the index).
    pub notes: Vec<String>,
    /// How many batches were checked.
    pub batches: usize,
    /// From how many relays.
    pub relays: usize,
    /// How many submissions were checked.
    pub submissions: usize,
    /// How many original attachments were hashed.
    pub attachments: usize,
}

/// Checks the archive in `root`. `pinned` are the `--relay-key` values:
/// when any is given, every batch must be signed by one of them. Fails
/// only when the archive index itself is missing or unusable; everything
/// else is a line of the report.
pub fn verify_archive(root: &Path, pinned: &[PinnedKey]) -> Result<AuditReport, Error> {
    let archive = Archive::open(root)?;
    let mut report = AuditReport::default();
    if pinned.is_empty() {
        report.notes.push(
            "signatures were checked with the relay keys recorded in the archive: pass --relay-key to check them against the keys you pinned".into(),
        );
    }

    // Batches, per relay, in sequence order (the index keeps that order).
    let mut by_relay: BTreeMap<&str, Vec<&ArchivedBatch>> = BTreeMap::new();
    for b in archive.batches() {
        by_relay.entry(b.relay_key.as_str()).or_default().push(b);
    }
    report.relays = by_relay.len();
    // (relay key, sequence) → the manifest as kept, when it verified.
    let mut manifests: BTreeMap<(&str, u64), Manifest> = BTreeMap::new();
    let indexed: BTreeSet<SubmissionId> = archive
        .submissions()
        .map(|s| s.id)
        .chain(archive.quarantined().map(|q| q.id))
        .collect();

    for (relay_key, batches) in &by_relay {
        let fp = relay_fingerprint(relay_key);
        let key = match PinnedKey::from_base64(relay_key) {
            Ok(k) => Some(k),
            Err(_) => {
                report.problems.push(format!(
                    "relay {fp}: the relay key the archive records is not a minisign public key"
                ));
                None
            }
        };
        if !pinned.is_empty() && !pinned.iter().any(|k| k.as_base64() == *relay_key) {
            report.problems.push(format!(
                "relay {fp}: its batches are signed by {relay_key}, which is not one of the --relay-key keys"
            ));
        }
        for b in batches {
            report.batches += 1;
            let what = format!("relay {fp} batch {}", b.sequence);
            let Some(m) = check_batch(root, b, key.as_ref(), &what, &mut report) else {
                continue;
            };
            for e in &m.submissions {
                report_ciphertext(root, relay_key, e.id, e.size, e.sha256, &what, &mut report);
                if !indexed.contains(&e.id) {
                    report.problems.push(format!(
                        "{what}: it lists submission {}, which is not in the archive index",
                        e.id
                    ));
                }
            }
            manifests.insert((relay_key, b.sequence), m);
        }
        check_chain(&fp, batches, &mut report);
    }
    check_links(&manifests, &archive, &mut report);

    for s in archive.submissions() {
        report.submissions += 1;
        let what = format!("submission {}", s.id);
        for o in std::iter::once(&s.origin).chain(&s.also_received) {
            check_origin(&archive, &manifests, &s.id, o, &what, &mut report);
        }
        check_content(root, s, &what, &mut report);
    }

    // Quarantined: only the ciphertext is held (checked above with its
    // batch); its origin must agree with the signed manifest too.
    for q in archive.quarantined() {
        let what = format!("submission {} (quarantined)", q.id);
        check_origin(&archive, &manifests, &q.id, &q.origin, &what, &mut report);
        report.notes.push(format!(
            "submission {} is quarantined ({}): its ciphertext is in custody, its content was not opened; `reviewer retry` tries again",
            q.id,
            crate::text::clean(&q.reason)
        ));
    }

    notes_on_strays(root, &archive, &mut report);
    Ok(report)
}

/// Step 1 for one batch; the manifest if its signature verified.
fn check_batch(
    root: &Path,
    b: &ArchivedBatch,
    key: Option<&PinnedKey>,
    what: &str,
    report: &mut AuditReport,
) -> Option<Manifest> {
    let dir = custody_batch_dir(root, &b.relay_key, b.sequence, &b.batch_id);
    let read = |name: &str, max: usize, report: &mut AuditReport| {
        let path = dir.join(name);
        match read_kept(&path, max as u64) {
            Ok(bytes) => Some(bytes),
            Err(reason) => {
                report
                    .problems
                    .push(format!("{what}: its {name} {reason} ({})", path.display()));
                None
            }
        }
    };
    let manifest = read(BATCH_MANIFEST, MAX_MANIFEST_BYTES, report);
    let sig = read(BATCH_SIGNATURE, MAX_SIGNATURE_BYTES, report);
    let (manifest, sig) = (manifest?, sig?);
    if Digest::of(&manifest) != b.manifest_sha256 {
        report.problems.push(format!(
            "{what}: its manifest.json is not the one archived (SHA-256 differs): it was edited or replaced"
        ));
    }
    let key = key?;
    match check_signed_manifest(key, &manifest, &sig) {
        Ok(m) if m.batch_id == b.batch_id && m.sequence == b.sequence => Some(m),
        Ok(_) => {
            report.problems.push(format!(
                "{what}: its signed manifest names another batch id or sequence than the archive index"
            ));
            None
        }
        Err(SignatureProblem::BadSignature) => {
            report.problems.push(format!(
                "{what}: manifest.sig does not verify over manifest.json with the relay's key: the manifest or the signature was altered"
            ));
            None
        }
        Err(SignatureProblem::Invalid(reason)) => {
            report
                .problems
                .push(format!("{what}: its signed manifest is invalid ({reason})"));
            None
        }
    }
}

/// Reads a kept file, saying why not in words for a report line.
fn read_kept(path: &Path, max: u64) -> Result<Vec<u8>, &'static str> {
    match exists_no_follow(path) {
        Ok(true) => read_small(path, max).map_err(|_| "cannot be read"),
        Ok(false) => Err("is missing"),
        Err(_) => Err("cannot be read"),
    }
}

/// Step 3 for one manifest entry.
fn report_ciphertext(
    root: &Path,
    relay_key: &str,
    id: SubmissionId,
    size: u64,
    sha256: Digest,
    what: &str,
    report: &mut AuditReport,
) {
    let path = custody_ciphertext(root, relay_key, &id);
    match hash_file(&path) {
        Ok(Some((digest, len))) if digest == sha256 && len == size => {}
        Ok(Some(_)) => report.problems.push(format!(
            "{what}: the kept ciphertext of submission {id} does not match the signed manifest (SHA-256 or size differs): it was altered or damaged ({})",
            path.display()
        )),
        Ok(None) => report.problems.push(format!(
            "{what}: the kept ciphertext of submission {id} is missing ({})",
            path.display()
        )),
        Err(e) => report.problems.push(format!(
            "{what}: the kept ciphertext of submission {id} cannot be read ({e})"
        )),
    }
}

/// SHA-256 and length of a file; `None` if it does not exist.
fn hash_file(path: &Path) -> io::Result<Option<(Digest, u64)>> {
    match File::open(path) {
        Ok(f) => HashingReader::new(io::BufReader::with_capacity(256 * 1024, f))
            .finish()
            .map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Step 2: adjacent batches of one relay chain; gaps are notes.
fn check_chain(fp: &str, batches: &[&ArchivedBatch], report: &mut AuditReport) {
    if let Some(first) = batches.first()
        && first.sequence > 1
    {
        report.notes.push(format!(
            "relay {fp}: the archive starts at batch {} (batches before it were opened elsewhere, or skipped with --start-at)",
            first.sequence
        ));
    }
    for pair in batches.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.sequence != a.sequence + 1 {
            report.notes.push(format!(
                "relay {fp}: batches {} to {} are not in this archive (never opened into it, or removed): the chain cannot be checked across the gap",
                a.sequence + 1,
                b.sequence - 1
            ));
        }
    }
}

/// The chain links, checked on the kept manifests themselves (the index
/// could be edited too).
fn check_links(
    manifests: &BTreeMap<(&str, u64), Manifest>,
    archive: &Archive,
    report: &mut AuditReport,
) {
    for b in archive.batches() {
        let Some(m) = manifests.get(&(b.relay_key.as_str(), b.sequence)) else {
            continue;
        };
        let Some(prev) = archive
            .batches()
            .iter()
            .find(|p| p.relay_key == b.relay_key && p.sequence + 1 == b.sequence)
        else {
            continue;
        };
        if m.previous_manifest_sha256 != Some(prev.manifest_sha256) {
            report.problems.push(format!(
                "relay {} batch {}: it does not chain to batch {} (previous manifest hash differs): a batch was replaced or the relay's history forked",
                relay_fingerprint(&b.relay_key),
                b.sequence,
                prev.sequence
            ));
        }
    }
}

/// A submission's origin must be a kept, verified manifest listing it
/// with the recorded ciphertext hash.
fn check_origin(
    archive: &Archive,
    manifests: &BTreeMap<(&str, u64), Manifest>,
    id: &SubmissionId,
    o: &Origin,
    what: &str,
    report: &mut AuditReport,
) {
    let fp = relay_fingerprint(&o.relay_key);
    let Some(b) = archive.batch(&o.relay_key, &o.batch_id) else {
        report.problems.push(format!(
            "{what}: it came from relay {fp} batch {}, which is not in the archive index",
            o.batch_sequence
        ));
        return;
    };
    if b.sequence != o.batch_sequence || b.manifest_sha256 != o.manifest_sha256 {
        report.problems.push(format!(
            "{what}: its origin (relay {fp} batch {}) disagrees with the archived batch",
            o.batch_sequence
        ));
        return;
    }
    // A manifest that did not verify is reported already.
    let Some(m) = manifests.get(&(o.relay_key.as_str(), b.sequence)) else {
        return;
    };
    match m.submissions.iter().find(|e| e.id == *id) {
        Some(e) if e.sha256 == o.ciphertext_sha256 && e.epoch == o.epoch => {}
        Some(_) => report.problems.push(format!(
            "{what}: the archive records another ciphertext hash or epoch than the signed manifest of relay {fp} batch {}",
            b.sequence
        )),
        None => report.problems.push(format!(
            "{what}: the signed manifest of relay {fp} batch {} does not list it",
            b.sequence
        )),
    }
}

/// `testimony.json` as decrypted, and the originals as it lists them.
fn check_content(
    root: &Path,
    s: &crate::archive::ArchivedSubmission,
    what: &str,
    report: &mut AuditReport,
) {
    let dir = root.join(s.id.to_string());
    let path = dir.join(TESTIMONY_ENTRY);
    let json = match read_kept(&path, MAX_TESTIMONY_JSON_BYTES as u64) {
        Ok(b) => Zeroizing::new(b),
        Err(reason) => {
            report
                .problems
                .push(format!("{what}: its testimony.json {reason}"));
            return;
        }
    };
    if Digest::of(&json) != s.testimony_sha256 {
        report.problems.push(format!(
            "{what}: testimony.json was changed after it was decrypted (SHA-256 differs)"
        ));
    }
    let listed = match Testimony::from_json(&json) {
        Ok(t) => t
            .attachments
            .iter()
            .map(|a| (a.name.clone(), a.size, a.sha256))
            .collect::<Vec<_>>(),
        Err(_) => {
            report
                .problems
                .push(format!("{what}: its testimony.json does not parse"));
            return;
        }
    };
    let indexed: Vec<_> = s
        .attachments
        .iter()
        .map(|a| (a.name.clone(), a.size, a.sha256))
        .collect();
    if listed != indexed {
        report.problems.push(format!(
            "{what}: the archive index lists other attachments than its testimony.json"
        ));
    }
    let n = listed.len();
    for (i, (name, size, sha256)) in listed.iter().enumerate() {
        report.attachments += 1;
        // Names are what a source chose: the line says which attachment by
        // its position; `reviewer show` names it.
        let which = format!("attachment {} of {n}", i + 1);
        // Where `open` wrote it (the index says; older archives used the
        // source's name).
        let original = s
            .attachments
            .get(i)
            .map(|a| root.join(&a.original))
            .unwrap_or_else(|| dir.join(crate::archive::FILES_DIR).join(name));
        match hash_file(&original) {
            Ok(Some((d, len))) if d == *sha256 && len == *size => {}
            Ok(Some(_)) => report.problems.push(format!(
                "{what}: the original of {which} differs from testimony.json (size or SHA-256): it was altered"
            )),
            Ok(None) => report
                .problems
                .push(format!("{what}: the original of {which} is missing")),
            Err(e) => report
                .problems
                .push(format!("{what}: the original of {which} cannot be read ({e})")),
        }
    }
    for (i, a) in s.attachments.iter().enumerate() {
        if let Some(p) = &a.scrubbed
            && !root.join(p).is_file()
        {
            report.notes.push(format!(
                "{what}: the scrubbed copy of attachment {} of {n} is missing (the original is what counts; share nothing until you scrub it again)",
                i + 1
            ));
        }
    }
}

/// Folders and leftovers the index does not account for.
fn notes_on_strays(root: &Path, archive: &Archive, report: &mut AuditReport) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        if let Ok(id) = name.parse::<SubmissionId>()
            && archive.submission(&id).is_none()
        {
            report.notes.push(format!(
                "folder {name} is not in the archive index (opened before the archive existed, or copied in): it cannot be checked"
            ));
        } else if name.starts_with(".staging-") {
            report.notes.push(format!(
                "{name} is left over from an interrupted open and may hold decrypted testimony: the next `reviewer open` of that batch rolls it back (or delete it)"
            ));
        }
    }
}
