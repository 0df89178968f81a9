//! The command line: `keygen`, `fetch`, `verify`, `open`, `ack`,
//! `retire-epoch`.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::Error;
use crate::error::printable;
use crate::fetch::{self, RelayClient};
use crate::identity::{self, Identity, PassphraseSource, Protection};
use crate::open;
use crate::retire::{self, Confirmation};
use crate::state::StateStore;
use crate::verify::{self, PinnedKey};

/// Offline reviewer for the secure submission relay: pulls signed batches,
/// verifies them against the pinned relay key and the hash chain, and
/// decrypts them into folders.
#[derive(Debug, Parser)]
#[command(name = "reviewer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new reviewer identity (age X25519), passphrase-protected.
    Keygen(KeygenArgs),
    /// Download new batches from the relay (online; needs no identity).
    Fetch(FetchArgs),
    /// Check batches (structure, signature, hashes, chain); writes nothing.
    Verify(VerifyArgs),
    /// Verify, then decrypt batches into folders and write receipts.
    Open(OpenArgs),
    /// Tell the relay a batch is safely opened, so it deletes it.
    Ack(AckArgs),
    /// Destroy the identity of an old key epoch, so nothing sealed to it
    /// can ever be opened again (asks you to type the epoch number).
    RetireEpoch(RetireArgs),
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Where to write the identity file (never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Write the identity unencrypted (for scripts; keep it offline).
    #[arg(long, conflicts_with = "passphrase_file")]
    no_passphrase: bool,
    /// Read the passphrase from the first line of this file.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RelayArgs {
    /// The relay's base URL (https://…).
    #[arg(long, value_name = "URL")]
    relay: String,
    /// File whose first line is the reviewer API token.
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// Trust only this certificate (PEM) for the relay, e.g. a self-signed one.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct FetchArgs {
    #[command(flatten)]
    relay: RelayArgs,
    /// Directory to save batches in.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct ChainArgs {
    /// The relay's public key (RW…, as `relay pubkey` prints it) or a file holding it.
    #[arg(long, value_name = "PUB")]
    relay_key: String,
    /// Directory of the chain state [default: $REVIEWER_STATE_DIR, $XDG_STATE_HOME/relay-reviewer or ~/.local/state/relay-reviewer].
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// With no history for this relay, accept a first batch with this sequence.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    start_at: Option<u64>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Batch files (.tar).
    #[arg(value_name = "BATCH", required = true)]
    batches: Vec<PathBuf>,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Debug, Args)]
struct OpenArgs {
    /// Batch files (.tar).
    #[arg(value_name = "BATCH", required = true)]
    batches: Vec<PathBuf>,
    /// A reviewer identity file (`reviewer keygen` writes one); repeat it
    /// once per key epoch you hold. Each is unlocked once per command.
    #[arg(long, value_name = "FILE", required = true)]
    identity: Vec<PathBuf>,
    /// Directory to write submissions and receipts into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Read the identities' passphrase from the first line of this file:
    /// once for all identities, or once per --identity, in the same order.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Vec<PathBuf>,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Debug, Args)]
struct AckArgs {
    /// The receipt `reviewer open` wrote.
    #[arg(value_name = "RECEIPT")]
    receipt: PathBuf,
    #[command(flatten)]
    relay: RelayArgs,
}

#[derive(Debug, Args)]
struct RetireArgs {
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

/// Runs the reviewer with these arguments (the first is the program name),
/// printing results on stdout. For in-process use; [`main`] is the binary.
pub fn run<I, T>(args: I) -> Result<(), Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(Error::Usage)?;
    execute(cli)
}

/// The binary's entry point: runs, prints errors as `reviewer: <message>`
/// (one line, plus a hint line when there is one) and returns the exit code
/// (0 success, 1 failure, 2 usage).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "reviewer: {}", printable(&e.to_string()));
            if let Some(hint) = e.hint() {
                let _ = writeln!(err, "hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Keygen(a) => keygen(a),
        Command::Fetch(a) => off_runtime(|| fetch_cmd(a)),
        Command::Verify(a) => verify_cmd(a),
        Command::Open(a) => open_cmd(a),
        Command::Ack(a) => off_runtime(|| ack_cmd(a)),
        Command::RetireEpoch(a) => retire_cmd(a),
    }
}

/// Runs a network command on its own thread. The HTTP client is blocking
/// and refuses to run inside an async runtime; [`run`] may be called from
/// one (end-to-end tests drive the relay with tokio), so the blocking work
/// never runs on the caller's thread.
fn off_runtime(f: impl FnOnce() -> Result<(), Error> + Send) -> Result<(), Error> {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn out_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", printable(line));
}

fn passphrase_source(file: Option<PathBuf>) -> PassphraseSource {
    file.map_or(PassphraseSource::Terminal, PassphraseSource::File)
}

fn keygen(a: KeygenArgs) -> Result<(), Error> {
    let protection = if a.no_passphrase {
        Protection::None
    } else {
        Protection::Passphrase(passphrase_source(a.passphrase_file))
    };
    let recipient = identity::generate(&a.out, &protection)?;
    out_line(&recipient);
    let _ = writeln!(
        std::io::stderr().lock(),
        "reviewer: wrote {}; add the recipient above to the relay config's [reviewers] recipients (for a key rotation: to the new epoch's recipients)",
        printable(&a.out.display().to_string())
    );
    Ok(())
}

fn client(r: &RelayArgs) -> Result<RelayClient, Error> {
    RelayClient::new(&r.relay, &r.token_file, r.tls_cert.as_deref())
}

fn fetch_cmd(a: FetchArgs) -> Result<(), Error> {
    let client = client(&a.relay)?;
    let saved = fetch::fetch(&client, &a.out, |f| {
        out_line(&format!(
            "saved {} (batch {}, {} submissions)",
            f.path.display(),
            f.sequence,
            f.submissions
        ));
    })?;
    if saved.is_empty() {
        out_line(&format!("no new batches (in {})", a.out.display()));
    }
    Ok(())
}

fn chain_setup(c: &ChainArgs) -> Result<(PinnedKey, StateStore), Error> {
    let key = PinnedKey::from_arg(&c.relay_key)?;
    let store = StateStore::resolve(c.state.as_deref())?;
    Ok((key, store))
}

fn verify_all(
    batches: &[PathBuf],
    c: &ChainArgs,
) -> Result<(Vec<verify::VerifiedBatch>, StateStore), Error> {
    let (key, store) = chain_setup(c)?;
    let anchor = store.anchor(key.as_base64(), c.start_at)?;
    let verified = verify::verify_batches(batches, &key, &anchor)?;
    Ok((verified, store))
}

fn verify_cmd(a: VerifyArgs) -> Result<(), Error> {
    let (verified, _) = verify_all(&a.batches, &a.chain)?;
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

fn open_cmd(a: OpenArgs) -> Result<(), Error> {
    // Verify every batch before asking for a passphrase or writing anything.
    let (verified, store) = verify_all(&a.batches, &a.chain)?;
    let passphrases: Vec<PassphraseSource> = match a.passphrase_file.len() {
        0 => vec![PassphraseSource::Terminal; a.identity.len()],
        1 => vec![PassphraseSource::File(a.passphrase_file[0].clone()); a.identity.len()],
        n if n == a.identity.len() => a
            .passphrase_file
            .into_iter()
            .map(PassphraseSource::File)
            .collect(),
        n => {
            return Err(Error::PassphraseFiles {
                identities: a.identity.len(),
                files: n,
            });
        }
    };
    // Unlocked once each, then used for every submission of every batch.
    let identities = a
        .identity
        .iter()
        .zip(&passphrases)
        .map(|(path, pass)| Identity::load(path, pass))
        .collect::<Result<Vec<_>, Error>>()?;
    for batch in verified {
        let opened = open::open_batch(batch, &identities, &a.out, &store)?;
        out_line(&format!(
            "opened batch {} {}: {} submissions into {}; receipt {}",
            opened.sequence,
            opened.batch_id,
            opened.submissions,
            a.out.display(),
            opened.receipt.display()
        ));
    }
    Ok(())
}

fn retire_cmd(a: RetireArgs) -> Result<(), Error> {
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

fn ack_cmd(a: AckArgs) -> Result<(), Error> {
    let client = client(&a.relay)?;
    let acked = fetch::ack(&client, &a.receipt)?;
    out_line(&format!(
        "relay deleted {} submissions of batch {}",
        acked.deleted, acked.sequence
    ));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_are_errors() {
        assert!(matches!(run(["reviewer", "verify"]), Err(Error::Usage(_))));
        assert!(matches!(
            run([
                "reviewer",
                "keygen",
                "--out",
                "x",
                "--no-passphrase",
                "--passphrase-file",
                "p"
            ]),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            run([
                "reviewer",
                "verify",
                "b.tar",
                "--relay-key",
                "k",
                "--start-at",
                "0"
            ]),
            Err(Error::Usage(_))
        ));
    }
}
