//! The command line: `keygen`, `fetch`, `verify`, `open`, `ack`,
//! `retire-epoch`, and for follow-up: `threads`, `reply`, `push`.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use format::{Day, ThreadId};

use crate::Error;
use crate::error::printable;
use crate::fetch::{self, RelayClient};
use crate::fsutil::exists_no_follow;
use crate::identity::{self, Identity, PassphraseSource, Protection};
use crate::open;
use crate::reply::{self, CheckedBundle};
use crate::retire::{self, Confirmation};
use crate::state::StateStore;
use crate::threads::{self, ThreadIndex};
use crate::verify::{self, PinnedKey};

const THREADS_EXAMPLES: &str = "\
Examples:
  # After `reviewer open`: each thread, with its submissions across batches
  reviewer threads
  reviewer threads --state /media/usb/reviewer-state";

const REPLY_EXAMPLES: &str = "\
Examples:
  # The source's recipient from the thread index `reviewer open` keeps
  reviewer reply --thread 3f0c…e1 --message answer.txt -r age1…your-own… --out reply-1.json

  # Every reviewer keeps a copy; the recipient read from the batch files,
  # each verified with the pinned relay key
  reviewer reply --thread 3f0c…e1 --message answer.txt --recipients-file reviewers.txt \\
    --batch-dir batches --relay-key relay.pub --out reply-1.json

  # Type the message instead of keeping it in a file (end with Ctrl-D)
  reviewer reply --thread 3f0c…e1 --message - -r age1… --out reply-1.json

Carry the bundle to the online machine and upload it with `reviewer push`.";

const PUSH_EXAMPLES: &str = "\
Examples:
  # Online: upload the bundles `reviewer reply` wrote
  reviewer push reply-1.json reply-2.json --relay https://relay.example.org --token-file reviewer.token

  # A relay with a self-signed certificate: pin it
  reviewer push reply-1.json --relay https://127.0.0.1:8443 --token-file api.token --tls-cert cert.pem

With no network path to the relay, the operator imports the bundle instead,
with the relay stopped:
  relay import-replies --data /var/lib/relay reply-1.json";

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
    /// List follow-up threads and their submissions across batches (as
    /// `open` recorded them).
    #[command(after_help = THREADS_EXAMPLES)]
    Threads(ThreadsArgs),
    /// Write a reply to a source (offline), encrypted to the source and to
    /// reviewers, into a bundle for `push`.
    #[command(after_help = REPLY_EXAMPLES)]
    Reply(ReplyArgs),
    /// Upload reply bundles to the relay (online; needs no identity).
    #[command(after_help = PUSH_EXAMPLES)]
    Push(PushArgs),
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

#[derive(Debug, Args)]
struct ThreadsArgs {
    /// Directory of the chain state and thread index [default: as for open].
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReplyArgs {
    /// The thread to reply to (`reviewer threads` lists them; open writes
    /// it in each submission's testimony.txt).
    #[arg(long, value_name = "ID")]
    thread: ThreadId,
    /// The message: a UTF-8 text file, or - for standard input.
    #[arg(long, value_name = "FILE")]
    message: PathBuf,
    /// Where to write the reply bundle (never overwritten).
    #[arg(long, value_name = "BUNDLE")]
    out: PathBuf,
    /// A reviewer recipient (age1…) who can read the reply too; repeat it
    /// for several. At least one reviewer recipient is required.
    #[arg(short = 'r', long = "recipient", value_name = "AGE1")]
    recipients: Vec<String>,
    /// An age recipients file of reviewers (one age1… per line, # comments).
    #[arg(long, value_name = "FILE")]
    recipients_file: Vec<PathBuf>,
    /// Take the source's recipient from the thread index in this state
    /// directory [default: as for open].
    #[arg(long, value_name = "DIR", conflicts_with = "batch_dir")]
    state: Option<PathBuf>,
    /// Take the source's recipient from the batch files (*.tar) in this
    /// directory instead, each verified with --relay-key.
    #[arg(long, value_name = "DIR", requires = "relay_key")]
    batch_dir: Option<PathBuf>,
    /// The relay's public key, to verify the batches of --batch-dir.
    #[arg(long, value_name = "PUB", requires = "batch_dir")]
    relay_key: Option<String>,
}

#[derive(Debug, Args)]
struct PushArgs {
    /// Reply bundles written by `reviewer reply`.
    #[arg(value_name = "BUNDLE", required = true)]
    bundles: Vec<PathBuf>,
    #[command(flatten)]
    relay: RelayArgs,
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
        Command::Threads(a) => threads_cmd(a),
        Command::Reply(a) => reply_cmd(a),
        Command::Push(a) => off_runtime(|| push_cmd(a)),
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
    // Verify every batch (and that their threads agree with the thread
    // index) before asking for a passphrase or writing anything.
    let (verified, store) = verify_all(&a.batches, &a.chain)?;
    threads::check_batches(&store, &verified)?;
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
    let mut touched: Vec<ThreadId> = Vec::new();
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
        for (submission, thread) in &opened.threads {
            out_line(&format!("  submission {submission}: thread {thread}"));
            if !touched.contains(thread) {
                touched.push(*thread);
            }
        }
    }
    // Each thread seen, with everything known of it (earlier batches too).
    if !touched.is_empty() {
        let index = ThreadIndex::load(&store)?;
        for thread in touched.iter().filter_map(|t| index.get(t)) {
            out_line(&thread.summary());
        }
    }
    Ok(())
}

fn threads_cmd(a: ThreadsArgs) -> Result<(), Error> {
    let store = StateStore::resolve(a.state.as_deref())?;
    let index = ThreadIndex::load(&store)?;
    if index.is_empty() {
        out_line(&format!(
            "no threads recorded in {} (`reviewer open` records them)",
            threads::index_path(&store).display()
        ));
        return Ok(());
    }
    for t in index.threads() {
        out_line(&format!(
            "{}; source recipient {}",
            t.summary(),
            t.recipient
        ));
        for s in &t.submissions {
            out_line(&format!(
                "  submission {}  batch {}  received {}  relay {}",
                s.id, s.batch_sequence, s.received_day, s.relay_key
            ));
        }
    }
    Ok(())
}

fn reply_cmd(a: ReplyArgs) -> Result<(), Error> {
    // Cheap refusals first; write_reply checks both again.
    if a.recipients.is_empty() && a.recipients_file.is_empty() {
        return Err(Error::NoReviewerRecipient);
    }
    if exists_no_follow(&a.out)? {
        return Err(Error::AlreadyExists { path: a.out });
    }
    let source = match &a.batch_dir {
        Some(dir) => {
            // clap makes --relay-key required with --batch-dir.
            let key = PinnedKey::from_arg(a.relay_key.as_deref().unwrap_or_default())?;
            reply::source_from_batches(dir, &key, a.thread)?
        }
        None => {
            let store = StateStore::resolve(a.state.as_deref())?;
            reply::source_from_index(&store, a.thread)?
        }
    };
    let reviewers = reply::reviewer_recipients(&a.recipients, &a.recipients_file, &source)?;
    let message = reply::load_message(&a.message, Day::today())?;
    let written = reply::write_reply(
        &source,
        &reviewers,
        &message,
        reply::random_reply_id(),
        &a.out,
    )?;
    out_line(&format!(
        "wrote reply {} to thread {} into {} (encrypted to the source and {} reviewer recipient{})",
        written.id,
        written.thread,
        written.path.display(),
        written.reviewers,
        if written.reviewers == 1 { "" } else { "s" }
    ));
    let _ = writeln!(
        std::io::stderr().lock(),
        "reviewer: carry it to the online machine and upload it with `reviewer push {} --relay URL --token-file FILE`, or give it to the relay operator for `relay import-replies`",
        printable(&written.path.display().to_string())
    );
    Ok(())
}

fn push_cmd(a: PushArgs) -> Result<(), Error> {
    // Every bundle is read and checked before anything goes on the network.
    let bundles = a
        .bundles
        .iter()
        .map(|p| CheckedBundle::read(p))
        .collect::<Result<Vec<_>, Error>>()?;
    let client = client(&a.relay)?;
    for bundle in bundles {
        let path = bundle.path().to_owned();
        let n = bundle.bundle().replies.len();
        let done = fetch::push(&client, bundle)?;
        out_line(&format!(
            "pushed {} ({n} repl{}): {} stored, {} already held, {} deleted by the source",
            path.display(),
            if n == 1 { "y" } else { "ies" },
            done.stored,
            done.already_held,
            done.deleted_by_source
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
