//! `verify`, `open` and `retry`: from batch files to the archive.

use super::*;

pub(super) const VERIFY_EXAMPLES: &str = "\
Examples:
  # Check batches against the pinned relay key and the archive's chain; writes nothing
  reviewer verify batches/*.tar --relay-key RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3 --archive ~/cases

  # Before the first open (no archive yet): signatures, hashes, and the chain among these files
  reviewer verify batches/*.tar --relay-key relay.pub

Batches the archive already holds are reported as such and skipped.";

pub(super) const OPEN_EXAMPLES: &str = "\
Examples:
  # Verify, decrypt and add to the archive in ~/cases (the passphrase is asked once)
  reviewer open batches/*.tar --identity ~/reviewer.key --relay-key relay.pub --out ~/cases

  # Two relays: open each relay's batches with its own key, into the same archive
  reviewer open relay-a/*.tar --identity ~/reviewer.key --relay-key relay-a.pub --out ~/cases
  reviewer open relay-b/*.tar --identity ~/reviewer.key --relay-key relay-b.pub --out ~/cases

  # During a key rotation: one identity per epoch
  reviewer open batches/*.tar --identity ~/epoch-1.key --identity ~/epoch-2.key \\
    --relay-key relay.pub --out ~/cases

  # Submissions field apps encrypted on the phone (ODK encrypted forms)
  reviewer open batches/*.tar --identity ~/reviewer.key --relay-key relay.pub --out ~/cases \\
    --odk-key ~/odk.pem

  # A small laptop: scrub with at most 512 MiB per child, one at a time
  reviewer open batches/*.tar --identity ~/reviewer.key --relay-key relay.pub --out ~/cases \\
    --scrub-memory 512 --scrub-jobs 1

Opening a batch the archive already holds does nothing and says so. Each
attachment is kept untouched in <id>/files/NN-<name> with a metadata-scrubbed
copy for sharing in <id>/shared/ (when its type can be scrubbed). A
submission whose content breaks the format is quarantined (its ciphertext
kept, the rest of the batch opened): `reviewer list --quarantined` shows
them, `reviewer retry` tries again. An interrupted open is rolled back by
the next one. Send the receipts in ~/cases/receipts/ with `reviewer ack`.";

pub(super) const RETRY_EXAMPLES: &str = "\
Examples:
  # Try a quarantined submission again (a newer reviewer, or more memory)
  reviewer retry 3f9c2a --identity ~/reviewer.key --out ~/cases --scrub-memory 2048";

#[derive(Debug, Args)]
pub(super) struct ChainArgs {
    /// The relay's public key (RW…, as `relay pubkey` prints it) or a file holding it.
    #[arg(long, value_name = "PUB")]
    relay_key: String,
    /// Gone: the chain state lives in the archive (refused with a message).
    #[arg(long, value_name = "DIR", hide = true)]
    state: Option<PathBuf>,
    /// With no history for this relay, accept a first batch with this sequence.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    start_at: Option<u64>,
}

#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    /// Batch files (.tar).
    #[arg(value_name = "BATCH", required = true)]
    batches: Vec<PathBuf>,
    /// The archive the batches are for: checks that they follow the batches
    /// it holds, and skips those it holds already. Without it, the batches
    /// are checked against each other only.
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Debug, Args)]
pub(super) struct OpenArgs {
    /// Batch files (.tar).
    #[arg(value_name = "BATCH", required = true)]
    batches: Vec<PathBuf>,
    /// A reviewer identity file (`reviewer keygen` writes one); repeat it
    /// once per key epoch you hold. Each is unlocked once per command.
    #[arg(long, value_name = "FILE", required = true)]
    identity: Vec<PathBuf>,
    /// The archive to open into: an archive opened into before, or a new or
    /// empty folder (anything else is refused). One folder per submission,
    /// receipts, the chain-of-custody copies, and the archive's chain state
    /// and thread index (.state).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Read the identities' passphrase from the first line of this file:
    /// once for all identities, or once per --identity, in the same order.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Vec<PathBuf>,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    scrub: ScrubArgs,
    /// The NGO's ODK private key (PKCS#8 PEM): decrypts the submissions
    /// field apps encrypted on the phone (ODK encrypted forms) into each
    /// one's odk/ folder, including any archived earlier without it.
    #[arg(long, value_name = "FILE")]
    odk_key: Option<PathBuf>,
}

/// Limits of the scrubbing children (`open`, `retry`).
#[derive(Debug, Args)]
pub(super) struct ScrubArgs {
    /// Memory (address space) of each scrubbing child, in MiB. A file that
    /// needs more is flagged, not scrubbed; its original is kept.
    #[arg(long, value_name = "MIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    scrub_memory: u64,
    /// CPU seconds for each scrubbing child.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    scrub_cpu: u64,
    /// How many files are scrubbed at once (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    scrub_jobs: Option<u64>,
}

impl ScrubArgs {
    fn scrubber(&self, helper: Option<&Path>) -> Result<crate::sandbox::Scrubber, Error> {
        let mut limits = crate::sandbox::ScrubLimits {
            memory: self.scrub_memory * 1024 * 1024,
            cpu_seconds: self.scrub_cpu,
            wall: std::time::Duration::from_secs(self.scrub_cpu.saturating_mul(2).max(10)),
            ..Default::default()
        };
        if let Some(n) = self.scrub_jobs {
            limits.jobs = usize::try_from(n).unwrap_or(1);
        }
        match helper {
            Some(exe) => crate::sandbox::Scrubber::new(exe.to_path_buf(), limits),
            None => crate::sandbox::Scrubber::current_exe(limits),
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct RetryArgs {
    /// The quarantined submission (its id, or at least 6 of its first hex digits).
    #[arg(value_name = "ID")]
    id: String,
    /// A reviewer identity file; repeat it once per key epoch you hold.
    #[arg(long, value_name = "FILE", required = true)]
    identity: Vec<PathBuf>,
    /// The archive.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Read the identities' passphrase from the first line of this file.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Vec<PathBuf>,
    #[command(flatten)]
    scrub: ScrubArgs,
}

/// The pinned key; `--state` is refused (the state is the archive's).
pub(super) fn pinned_key(c: &ChainArgs, verify: bool) -> Result<PinnedKey, Error> {
    if c.state.is_some() {
        return Err(Error::State(crate::state::StateError::StateOptionGone {
            verify,
        }));
    }
    PinnedKey::from_arg(&c.relay_key)
}

pub(super) fn verify_cmd(a: VerifyArgs) -> Result<(), Error> {
    let key = pinned_key(&a.chain, true)?;
    let signed = a
        .batches
        .iter()
        .map(|p| verify::verify_signed(p, &key))
        .collect::<Result<Vec<_>, Error>>()?;
    let mut fresh = Vec::new();
    let anchor = match &a.archive {
        Some(dir) => {
            let archive = Archive::load(dir)?;
            if !exists_no_follow(&dir.join(archive::ARCHIVE_FILE))? {
                note_line(&format!(
                    "{} holds no archive yet: the batches were checked against each other only",
                    dir.display()
                ));
            }
            let mut known = Vec::new();
            for b in signed {
                match archive.classify(&b)? {
                    archive::Known::Archived => known.push(b),
                    archive::Known::New => fresh.push(b),
                }
            }
            known.sort_by_key(verify::SignedBatch::sequence);
            for b in &known {
                out_line(&format!(
                    "batch {} of relay {} is already in the archive {}: nothing to do",
                    b.sequence(),
                    relay_fingerprint(b.relay_key()),
                    dir.display()
                ));
            }
            let store = StateStore::for_archive(dir);
            match (store.load(key.as_base64())?, archive.tip(key.as_base64())) {
                (None, Some(tip)) if a.chain.start_at.is_none() => {
                    crate::state::ChainAnchor::After(tip)
                }
                _ => store.anchor(key.as_base64(), a.chain.start_at)?,
            }
        }
        None => {
            fresh = signed;
            match (
                a.chain.start_at,
                fresh.iter().map(verify::SignedBatch::sequence).min(),
            ) {
                (Some(n), _) => crate::state::ChainAnchor::StartAt(n),
                (None, Some(1) | None) => crate::state::ChainAnchor::Genesis,
                (None, Some(first)) => {
                    note_line(&format!(
                        "checked from batch {first} on, against each other only: pass --archive DIR to check that they follow the batches it holds"
                    ));
                    crate::state::ChainAnchor::StartAt(first)
                }
            }
        }
    };
    if fresh.is_empty() {
        return Ok(());
    }
    let verified = verify::verify_chain(fresh, &anchor).map_err(|e| match &a.archive {
        Some(dir) => e.in_archive(dir),
        None => e,
    })?;
    for b in &verified {
        out_line(&format!(
            "OK batch {} {}: {} submissions",
            b.sequence(),
            b.batch_id(),
            b.manifest().submissions.len()
        ));
    }
    Ok(())
}

/// The identities of `--identity`, each with its passphrase source.
pub(super) fn unlock_identities(
    paths: &[PathBuf],
    files: &[PathBuf],
) -> Result<Vec<Identity>, Error> {
    let passphrases: Vec<PassphraseSource> = match files.len() {
        0 => vec![PassphraseSource::Terminal; paths.len()],
        1 => vec![PassphraseSource::File(files[0].clone()); paths.len()],
        n if n == paths.len() => files.iter().cloned().map(PassphraseSource::File).collect(),
        n => {
            return Err(Error::Identity(
                crate::identity::IdentityError::PassphraseFiles {
                    identities: paths.len(),
                    files: n,
                },
            ));
        }
    };
    // Unlocked once each, then used for every submission of every batch.
    paths
        .iter()
        .zip(&passphrases)
        .map(|(path, pass)| Identity::load(path, pass))
        .collect()
}

/// Prints what `open` does as it goes.
pub(super) struct OpenPrinter<'a> {
    out: &'a Path,
    bar: ProgressBar,
    touched: Vec<ThreadId>,
}

impl open::OpenProgress for OpenPrinter<'_> {
    fn start(&mut self, total: u64) {
        self.bar = progress_bar(total, "opening", true);
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn already_archived(&mut self, sequence: u64, relay: &str, caught_up: bool) {
        out_line(&format!(
            "batch {sequence} of relay {relay} is already in the archive: nothing to do{}",
            if caught_up {
                " (the chain state now records it)"
            } else {
                ""
            }
        ));
    }

    fn opened(&mut self, opened: &open::OpenedBatch) {
        let out = self.out;
        self.bar.suspend(|| {
            if opened.recovered {
                note_line(&format!(
                    "batch {}: an interrupted open of it was rolled back first",
                    opened.sequence
                ));
            }
            if opened.demo {
                note_line(&format!(
                    "batch {} comes from a DEMO relay: its key sits on the relay's disk, so nothing in it is protected; keep real testimony away from it",
                    opened.sequence
                ));
            }
            out_line(&format!(
                "opened batch {} {}: {} submissions into {}; receipt {}",
                opened.sequence,
                opened.batch_id,
                opened.submissions,
                out.display(),
                opened.receipt.display()
            ));
            for (submission, origin) in &opened.already_archived {
                out_line(&format!(
                    "  submission {submission} is already in the archive (from relay {} batch {}, same ciphertext): nothing added",
                    relay_fingerprint(&origin.relay_key),
                    origin.batch_sequence
                ));
            }
            for (submission, reason) in &opened.quarantined {
                note_line(&format!(
                    "submission {submission} is quarantined ({reason}): its ciphertext is kept in custody and the rest of the batch opened; try it later with `reviewer retry {submission} --out {}`",
                    out.display()
                ));
            }
            for (submission, n) in &opened.flagged {
                note_line(&format!(
                    "submission {submission}: {n} attachment{} flagged (identifying metadata, or no scrubbed copy): see `reviewer show {} {submission}` before sharing",
                    if *n == 1 { "" } else { "s" },
                    out.display()
                ));
            }
            for (submission, thread) in &opened.threads {
                out_line(&format!("  submission {submission}: thread {thread}"));
            }
        });
        for (_, thread) in &opened.threads {
            if !self.touched.contains(thread) {
                self.touched.push(*thread);
            }
        }
    }
}

pub(super) fn open_cmd(a: OpenArgs, helper: Option<&Path>) -> Result<(), Error> {
    let key = pinned_key(&a.chain, false)?;
    let store = StateStore::for_archive(&a.out);
    let scrubber = a.scrub.scrubber(helper)?;
    let mut printer = OpenPrinter {
        out: &a.out,
        bar: ProgressBar::hidden(),
        touched: Vec::new(),
    };
    let result = open::open_batches(
        &a.batches,
        &key,
        &store,
        a.chain.start_at,
        &a.out,
        &mut || unlock_identities(&a.identity, &a.passphrase_file),
        &scrubber,
        &mut printer,
    );
    printer.bar.finish_and_clear();
    result?;
    odk_pass(&a.out, a.odk_key.as_deref())?;
    // Each thread seen, with everything known of it (earlier batches too).
    if !printer.touched.is_empty() {
        let index = ThreadIndex::load(&store)?;
        for thread in printer.touched.iter().filter_map(|t| index.get(t)) {
            out_line(&thread.summary());
        }
    }
    Ok(())
}

/// Decrypts the archive's ODK encrypted submissions that are not yet (with
/// `--odk-key`), or says that there are some (without it).
fn odk_pass(out: &Path, key: Option<&Path>) -> Result<(), Error> {
    use crate::odk;
    let archive = Archive::load(out)?;
    let pending: Vec<_> = archive
        .records()?
        .into_iter()
        .filter(|r| odk::is_encrypted(r) && !out.join(&r.dir).join(odk::DECRYPTED_DIR).exists())
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let Some(key) = key else {
        note_line(&format!(
            "{} submission{} encrypted on the phone (ODK encrypted form): open again with --odk-key FILE to decrypt {}",
            pending.len(),
            if pending.len() == 1 { " is" } else { "s are" },
            if pending.len() == 1 { "it" } else { "them" }
        ));
        return Ok(());
    };
    let key = odk::OdkKey::load(key)?;
    for r in &pending {
        let d = odk::decrypt(&key, out, r)?;
        out_line(&format!(
            "  submission {}: ODK-encrypted form decrypted into {} (submission.xml and {} media file{})",
            r.id,
            d.dir.display(),
            d.media,
            if d.media == 1 { "" } else { "s" }
        ));
        if !d.signature_matches {
            note_line(&format!(
                "submission {}: its ODK element signature does not match what was decrypted (a damaged or altered file?)",
                r.id
            ));
        }
    }
    Ok(())
}

pub(super) fn retry_cmd(a: RetryArgs, helper: Option<&Path>) -> Result<(), Error> {
    let archive = Archive::open(&a.out)?;
    let id = archive.resolve(&a.id)?;
    if archive.quarantined_submission(&id).is_none() {
        return Err(Error::Open(crate::open::OpenError::NotQuarantined {
            id,
            dir: a.out,
        }));
    }
    let scrubber = a.scrub.scrubber(helper)?;
    let identities = unlock_identities(&a.identity, &a.passphrase_file)?;
    let r = open::retry(&a.out, &id, &identities, &scrubber)?;
    out_line(&format!(
        "submission {} opened into {} (no longer quarantined)",
        r.id,
        a.out.display()
    ));
    if r.flagged > 0 {
        note_line(&format!(
            "submission {}: {} attachment{} flagged: see `reviewer show {} {}` before sharing",
            r.id,
            r.flagged,
            if r.flagged == 1 { "" } else { "s" },
            a.out.display(),
            r.id
        ));
    }
    Ok(())
}
