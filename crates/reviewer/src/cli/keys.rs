//! `keygen` and `retire-epoch`: the reviewer's identities.

use super::*;

pub(super) const KEYGEN_EXAMPLES: &str = "\
Examples:
  # A passphrase-protected identity (asked twice); prints the recipient age1…
  reviewer keygen --out ~/reviewer.key

  # The next key epoch, when the relay rotates reviewer keys
  reviewer keygen --out ~/epoch-2.key

  # A reply-signing key (and reply-signing.key.pub); prints the RW… public key
  reviewer keygen --reply-signing --out ~/reply-signing.key

Give the printed age1… line to the relay operator ([reviewers] recipients),
and the RW… line of a reply-signing key too ([reviewers] reply_signing_keys).

A weak passphrase is refused (shorter than 12 characters, one word with digits
around it, a common password or phrase): choose six random words, with dice
and the EFF large word list (eff.org/dice). --allow-weak-passphrase keeps a
weak one anyway.";

pub(super) const RETIRE_EXAMPLES: &str = "\
Examples:
  # After every epoch-1 batch is opened and acknowledged (asks you to type 1)
  reviewer retire-epoch --identity ~/epoch-1.key --epoch 1

Destroy every other copy of that identity too (backups, USB sticks).";

#[derive(Debug, Args)]
pub(super) struct KeygenArgs {
    /// Where to write the identity file (never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Write the identity unencrypted (for scripts; keep it offline).
    #[arg(long, conflicts_with = "passphrase_file")]
    no_passphrase: bool,
    /// Read the passphrase from the first line of this file.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Accept a passphrase that is short, one word, or a common one (it is
    /// refused otherwise: anyone who copies the key file can guess it
    /// offline).
    #[arg(long, conflicts_with = "no_passphrase")]
    allow_weak_passphrase: bool,
    /// Make a reply-signing key (minisign Ed25519) instead of an age
    /// identity: `reviewer reply --signing-key` signs replies with it, and
    /// the relay stores only replies signed by a key its config pins.
    #[arg(long)]
    reply_signing: bool,
}

#[derive(Debug, Args)]
pub(super) struct RetireArgs {
    /// The identity file of the epoch to retire; it is overwritten with
    /// zeros, then deleted.
    #[arg(long, value_name = "FILE")]
    identity: PathBuf,
    /// The key epoch this identity belongs to (as the relay config and the
    /// batch manifests number it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    epoch: u32,
    /// Do not ask for confirmation (for scripts; there is no undo).
    #[arg(long)]
    yes: bool,
}

pub(super) fn keygen(a: KeygenArgs) -> Result<(), Error> {
    let protection = if a.no_passphrase {
        Protection::None
    } else if a.allow_weak_passphrase {
        Protection::PassphraseAsGiven(passphrase_source(a.passphrase_file))
    } else {
        Protection::Passphrase(passphrase_source(a.passphrase_file))
    };
    if a.allow_weak_passphrase {
        note_line(
            "--allow-weak-passphrase: the passphrase is not checked; whoever copies the key file can try to guess it offline, for as long as they like",
        );
    }
    if a.reply_signing {
        let public = crate::signing::generate(&a.out, &protection)?;
        out_line(&public);
        let _ = writeln!(
            std::io::stderr().lock(),
            "reviewer: wrote {} and {}; add the RW… line above to the relay config's [reviewers] reply_signing_keys",
            printable(&a.out.display().to_string()),
            printable(
                &crate::signing::public_key_path(&a.out)
                    .display()
                    .to_string()
            )
        );
        return Ok(());
    }
    let recipient = identity::generate(&a.out, &protection)?;
    out_line(&recipient);
    let _ = writeln!(
        std::io::stderr().lock(),
        "reviewer: wrote {}; add the recipient above to the relay config's [reviewers] recipients (for a key rotation: to the new epoch's recipients)",
        printable(&a.out.display().to_string())
    );
    Ok(())
}

pub(super) fn retire_cmd(a: RetireArgs) -> Result<(), Error> {
    let confirmation = if a.yes {
        Confirmation::Given
    } else {
        Confirmation::Terminal
    };
    let done = retire::retire_epoch(&a.identity, a.epoch, confirmation)?;
    let epoch = done.epoch;
    let mut what = format!(
        "retired epoch {epoch}: overwrote {} ({} bytes{}) with zeros, flushed it to disk and deleted it",
        done.path.display(),
        done.bytes,
        if done.passphrase_protected {
            ", passphrase-protected"
        } else {
            ""
        }
    );
    if !done.recipients.is_empty() {
        what.push_str(&format!("; it held {}", done.recipients.join(", ")));
    }
    out_line(&what);
    if done.other_links > 0 {
        out_line(&format!(
            "note: {} other name(s) of the same file (hard links) now hold only zeros",
            done.other_links
        ));
    }
    out_line(&format!(
        "destroy every other copy of this identity too (backups, USB sticks, other machines): any copy left can still open epoch {epoch}"
    ));
    out_line(&format!(
        "once every reviewer of epoch {epoch} has done the same, ciphertext sealed to epoch {epoch} (in batches, on the relay's disk, in its backups) can never be opened again"
    ));
    Ok(())
}
