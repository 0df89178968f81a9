//! The command line: `keygen`, `fetch`, `verify`, `open`, `ack`,
//! `retire-epoch`; for follow-up: `threads`, `reply`, `push`; and the
//! workbench on an archive: `list`, `show`, `tag`, `status`, `export`,
//! `report`, `verify-archive`.

use std::ffi::OsString;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use format::{Day, ThreadId};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Error;
use crate::archive::{self, Archive, Triage, relay_fingerprint};
use crate::audit;
use crate::error::printable;
use crate::export::{self, ExportFormat};
use crate::fetch::{self, RelayClient};
use crate::fsutil::exists_no_follow;
use crate::identity::{self, Identity, PassphraseSource, Protection};
use crate::open;
use crate::reply::{self, CheckedBundle};
use crate::retire::{self, Confirmation};
use crate::state::StateStore;
use crate::text;
use crate::threads::{self, ThreadIndex};
use crate::triage::{self, Filter, Summary};
use crate::verify::{self, PinnedKey};
use crate::workbench::{Record, Status};

const KEYGEN_EXAMPLES: &str = "\
Examples:
  # A passphrase-protected identity (asked twice); prints the recipient age1…
  reviewer keygen --out ~/reviewer.key

  # The next key epoch, when the relay rotates reviewer keys
  reviewer keygen --out ~/epoch-2.key

Give the printed age1… line to the relay operator ([reviewers] recipients).";

const FETCH_EXAMPLES: &str = "\
Examples:
  # Online machine, no identity needed: save every new batch
  reviewer fetch --relay https://relay.example.org --token-file reviewer.token --out batches

  # A relay with a self-signed certificate: pin it
  reviewer fetch --relay https://127.0.0.1:8443 --token-file api.token --tls-cert cert.pem --out batches

Carry the batches to the offline machine and run `reviewer open`.";

const VERIFY_EXAMPLES: &str = "\
Examples:
  # Check batches against the pinned relay key and the chain; writes nothing
  reviewer verify batches/*.tar --relay-key RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3

  # The key from a file, a separate chain state
  reviewer verify batches/*.tar --relay-key relay.pub --state /media/usb/reviewer-state";

const OPEN_EXAMPLES: &str = "\
Examples:
  # Verify, decrypt and add to the archive in ~/cases (the passphrase is asked once)
  reviewer open batches/*.tar --identity ~/reviewer.key --relay-key relay.pub --out ~/cases

  # Two relays: open each relay's batches with its own key, into the same archive
  reviewer open relay-a/*.tar --identity ~/reviewer.key --relay-key relay-a.pub --out ~/cases
  reviewer open relay-b/*.tar --identity ~/reviewer.key --relay-key relay-b.pub --out ~/cases

  # During a key rotation: one identity per epoch
  reviewer open batches/*.tar --identity ~/epoch-1.key --identity ~/epoch-2.key \\
    --relay-key relay.pub --out ~/cases

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

const RETRY_EXAMPLES: &str = "\
Examples:
  # Try a quarantined submission again (a newer reviewer, or more memory)
  reviewer retry 3f9c2a --identity ~/reviewer.key --out ~/cases --scrub-memory 2048";

const ACK_EXAMPLES: &str = "\
Examples:
  # Online: the relay deletes what the receipt says you hold
  reviewer ack ~/cases/receipts/batch-000003-….json --relay https://relay.example.org --token-file reviewer.token";

const RETIRE_EXAMPLES: &str = "\
Examples:
  # After every epoch-1 batch is opened and acknowledged (asks you to type 1)
  reviewer retire-epoch --identity ~/epoch-1.key --epoch 1

Destroy every other copy of that identity too (backups, USB sticks).";

const LIST_EXAMPLES: &str = "\
Examples:
  reviewer list ~/cases
  reviewer list ~/cases --status new --category health
  reviewer list ~/cases --region aktobe --from 2026-11-01 --to 2026-11-30
  reviewer list ~/cases --tag urgent --tag medical-workers --search \"arrested\"
  reviewer list ~/cases --thread 3f0c1a --format json

Filters combine: a submission is listed if it passes every filter given.
Categories and regions are the answer keys (`reviewer show` prints them).";

const SHOW_EXAMPLES: &str = "\
Examples:
  # A unique start of the id is enough (at least 6 hex digits)
  reviewer show ~/cases 3f0c1a2b";

const TAG_EXAMPLES: &str = "\
Examples:
  reviewer tag ~/cases 3f0c1a2b urgent medical-workers
  reviewer tag ~/cases 3f0c1a2b urgent --remove

Tags are 1 to 40 characters: lowercase letters a-z, digits and -, starting
with a letter or digit.";

const STATUS_EXAMPLES: &str = "\
Examples:
  reviewer status ~/cases 3f0c1a2b reviewing
  reviewer status ~/cases 3f0c1a2b discarded

Every submission starts as new. Status and tags are kept in the archive's
triage.json, never in the submission.";

const EXPORT_EXAMPLES: &str = "\
Examples:
  # Answers only, for a spreadsheet
  reviewer export ~/cases --format csv --out answers.csv

  # For analysis tools, with the text, verified submissions only
  reviewer export ~/cases --format json --with-text --status verified --out verified.json

One row per submission: id, received_day, relay, batch_sequence, thread,
status, tags, language, then <key> and <key>_label for every questionnaire
key, then attachments (a count; files are never exported) and, with
--with-text only, text. CSV cells that start with =, +, -, @, a tab or a
carriage return get a leading apostrophe (') so that spreadsheets show them
as text instead of running them as formulas.";

const REPORT_EXAMPLES: &str = "\
Examples:
  reviewer report ~/cases --out ~/report-2026-11
  reviewer report ~/cases --out /media/usb/report --title \"Kazakhstan, November\" --include-discarded

Open SITE/index.html in a browser: it needs no network and no JavaScript.
The site holds the testimonies and attachments: keep it as safe as the
archive.";

const VERIFY_ARCHIVE_EXAMPLES: &str = "\
Examples:
  reviewer verify-archive ~/cases --relay-key relay.pub
  reviewer verify-archive ~/cases --relay-key relay-a.pub --relay-key relay-b.pub

Prints one line per problem and exits 1 if there is any. Batches missing
between two archived ones are noted (note: lines), not counted as problems.";

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
    /// The reviewer binary that scrubs attachments as a child process
    /// (default: this one). For tests and packagers.
    #[arg(long, global = true, hide = true, value_name = "FILE")]
    scrub_helper: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new reviewer identity (age X25519), passphrase-protected.
    #[command(after_help = KEYGEN_EXAMPLES)]
    Keygen(KeygenArgs),
    /// Download new batches from the relay (online; needs no identity).
    #[command(after_help = FETCH_EXAMPLES)]
    Fetch(FetchArgs),
    /// Check batches (structure, signature, hashes, chain); writes nothing.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Verify, then decrypt batches into the archive and write receipts.
    #[command(after_help = OPEN_EXAMPLES)]
    Open(OpenArgs),
    /// Open a quarantined submission again from its custody ciphertext.
    #[command(after_help = RETRY_EXAMPLES)]
    Retry(RetryArgs),
    /// Tell the relay a batch is safely opened, so it deletes it.
    #[command(after_help = ACK_EXAMPLES)]
    Ack(AckArgs),
    /// Destroy the identity of an old key epoch, so nothing sealed to it
    /// can ever be opened again (asks you to type the epoch number).
    #[command(after_help = RETIRE_EXAMPLES)]
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
    /// List the archive's submissions, with filters.
    #[command(after_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// Show one submission: answers, text, attachments and their
    /// metadata, status, tags, thread and chain of custody.
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
    /// Add tags to a submission (or remove them with --remove).
    #[command(after_help = TAG_EXAMPLES)]
    Tag(TagArgs),
    /// Set a submission's status.
    #[command(after_help = STATUS_EXAMPLES)]
    Status(StatusArgs),
    /// Export the questionnaire answers as CSV or JSON (no files; the text
    /// only with --with-text).
    #[command(after_help = EXPORT_EXAMPLES)]
    Export(ExportArgs),
    /// Write a static HTML report of the archive (no network, no
    /// JavaScript).
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Check the archive's chain of custody: signatures, hash chain,
    /// ciphertexts, testimonies and original attachments.
    #[command(after_help = VERIFY_ARCHIVE_EXAMPLES)]
    VerifyArchive(VerifyArchiveArgs),
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
    /// The archive to open into (created if needed): one folder per
    /// submission, receipts, and the chain-of-custody copies.
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
}

/// Limits of the scrubbing children (`open`, `retry`).
#[derive(Debug, Args)]
struct ScrubArgs {
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
struct RetryArgs {
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

#[derive(Debug, Args)]
struct FilterArgs {
    /// Only this category (the answer's key, e.g. health).
    #[arg(long, value_name = "KEY")]
    category: Option<String>,
    /// Only this region (the answer's key, e.g. aktobe).
    #[arg(long, value_name = "KEY")]
    region: Option<String>,
    /// Only this status.
    #[arg(long, value_enum, value_name = "STATUS")]
    status: Option<StatusArg>,
    /// Only submissions with this tag (repeat: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only submissions received on or after this day (YYYY-MM-DD).
    #[arg(long, value_name = "DAY")]
    from: Option<Day>,
    /// Only submissions received on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DAY")]
    to: Option<Day>,
    /// Only submissions whose text or answers contain this (any case).
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// Only this follow-up thread (its id, or at least 6 of its first digits).
    #[arg(long, value_name = "ID")]
    thread: Option<String>,
}

impl FilterArgs {
    fn to_filter(&self, archive: &Archive) -> Result<Filter, Error> {
        let filter = Filter {
            category: self.category.clone(),
            region: self.region.clone(),
            status: self.status.map(Status::from),
            tags: self.tags.clone(),
            from: self.from,
            to: self.to,
            search: self.search.clone(),
            thread: self
                .thread
                .as_deref()
                .map(|t| triage::resolve_thread(archive, t))
                .transpose()?,
        };
        filter.check()?;
        Ok(filter)
    }
}

/// A triage status on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StatusArg {
    New,
    Reviewing,
    Verified,
    Published,
    Discarded,
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::New => Status::New,
            StatusArg::Reviewing => Status::Reviewing,
            StatusArg::Verified => Status::Verified,
            StatusArg::Published => Status::Published,
            StatusArg::Discarded => Status::Discarded,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    /// One line per submission.
    Table,
    /// A JSON array (everything but the text).
    Json,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// The archive (the --out of `reviewer open`).
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    #[command(flatten)]
    filter: FilterArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
    /// List only the quarantined submissions (content that could not be
    /// opened; its ciphertext is in custody), with the reason.
    #[arg(long)]
    quarantined: bool,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// The submission: its id or a unique start of it (6+ hex digits).
    #[arg(value_name = "ID")]
    id: String,
}

#[derive(Debug, Args)]
struct TagArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// The submission: its id or a unique start of it (6+ hex digits).
    #[arg(value_name = "ID")]
    id: String,
    /// Tags: lowercase a-z, digits and -, at most 40 characters.
    #[arg(value_name = "TAG", required = true)]
    tags: Vec<String>,
    /// Remove these tags instead of adding them.
    #[arg(long)]
    remove: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// The submission: its id or a unique start of it (6+ hex digits).
    #[arg(value_name = "ID")]
    id: String,
    /// The new status.
    #[arg(value_enum, value_name = "STATUS")]
    status: StatusArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormatArg {
    /// Comma-separated values, spreadsheet-safe (formula cells get a leading ').
    Csv,
    /// A JSON document: {"format", "columns", "submissions": [...]}.
    Json,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    format: ExportFormatArg,
    /// Include the testimony text (left out by default: exports travel).
    #[arg(long)]
    with_text: bool,
    /// Write to this file (created 0600, never overwritten) instead of
    /// standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// The directory to write the site into (must not exist, or be empty).
    #[arg(long, value_name = "SITE")]
    out: PathBuf,
    /// The dashboard's title.
    #[arg(long, value_name = "TITLE", default_value = "Testimonies")]
    title: String,
    /// Include discarded submissions.
    #[arg(long)]
    include_discarded: bool,
}

#[derive(Debug, Args)]
struct VerifyArchiveArgs {
    /// The archive.
    #[arg(value_name = "DIR")]
    archive: PathBuf,
    /// A relay public key (RW…, or a file holding it) the batches must be
    /// signed with; repeat for several relays. Without it, signatures are
    /// checked with the keys the archive records.
    #[arg(long, value_name = "PUB")]
    relay_key: Vec<String>,
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
    // A scrubbing child (see `sandbox`): before any parsing, so that the
    // hidden command never appears in `--help` and takes no other flag.
    let args: Vec<OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == crate::sandbox::CHILD_COMMAND)
    {
        return crate::sandbox::child_main(&args[2..]);
    }
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
    let helper = cli.scrub_helper;
    match cli.command {
        Command::Keygen(a) => keygen(a),
        Command::Fetch(a) => off_runtime(|| fetch_cmd(a)),
        Command::Verify(a) => verify_cmd(a),
        Command::Open(a) => open_cmd(a, helper.as_deref()),
        Command::Retry(a) => retry_cmd(a, helper.as_deref()),
        Command::Ack(a) => off_runtime(|| ack_cmd(a)),
        Command::RetireEpoch(a) => retire_cmd(a),
        Command::Threads(a) => threads_cmd(a),
        Command::Reply(a) => reply_cmd(a),
        Command::Push(a) => off_runtime(|| push_cmd(a)),
        Command::List(a) => list_cmd(a),
        Command::Show(a) => show_cmd(a),
        Command::Tag(a) => tag_cmd(a),
        Command::Status(a) => status_cmd(a),
        Command::Export(a) => export_cmd(a),
        Command::Report(a) => report_cmd(a),
        Command::VerifyArchive(a) => verify_archive_cmd(a),
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

/// A line on standard error that is worth reading but not a result
/// (standard output stays one line per batch for scripts).
fn note_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "reviewer: note: {}", printable(line));
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

/// The identities of `--identity`, each with its passphrase source.
fn unlock_identities(paths: &[PathBuf], files: &[PathBuf]) -> Result<Vec<Identity>, Error> {
    let passphrases: Vec<PassphraseSource> = match files.len() {
        0 => vec![PassphraseSource::Terminal; paths.len()],
        1 => vec![PassphraseSource::File(files[0].clone()); paths.len()],
        n if n == paths.len() => files.iter().cloned().map(PassphraseSource::File).collect(),
        n => {
            return Err(Error::PassphraseFiles {
                identities: paths.len(),
                files: n,
            });
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
struct OpenPrinter<'a> {
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

fn open_cmd(a: OpenArgs, helper: Option<&Path>) -> Result<(), Error> {
    let (key, store) = chain_setup(&a.chain)?;
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
    // Each thread seen, with everything known of it (earlier batches too).
    if !printer.touched.is_empty() {
        let index = ThreadIndex::load(&store)?;
        for thread in printer.touched.iter().filter_map(|t| index.get(t)) {
            out_line(&thread.summary());
        }
    }
    Ok(())
}

fn retry_cmd(a: RetryArgs, helper: Option<&Path>) -> Result<(), Error> {
    let archive = Archive::open(&a.out)?;
    let id = archive.resolve(&a.id)?;
    if archive.quarantined_submission(&id).is_none() {
        return Err(Error::NotQuarantined { id, dir: a.out });
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

/// A progress bar on standard error, hidden when that is not a terminal
/// (scripts, tests, redirected output).
fn progress_bar(len: u64, what: &str, bytes: bool) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = if bytes {
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})"
    } else {
        "{msg} [{bar:40}] {pos}/{len}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// One line per quarantined submission (table format).
fn quarantine_lines(archive: &Archive, dir: &Path) {
    let n = archive.quarantined().count();
    if n == 0 {
        return;
    }
    out_line(&format!(
        "{n} quarantined (content not opened, ciphertext kept; `reviewer retry ID --out {}`):",
        dir.display()
    ));
    for q in archive.quarantined() {
        let id = q.id.to_string();
        out_line(&format!(
            "{:<12}  {:<10}  quarantined  {}",
            id.get(..12).unwrap_or(&id),
            q.received_day,
            text::clean(&q.reason)
        ));
    }
}

fn list_cmd(a: ListArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    if a.quarantined {
        match a.format {
            ListFormat::Json => {
                let all: Vec<&archive::QuarantinedSubmission> = archive.quarantined().collect();
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &all)
                    .map_err(|e| Error::io("write", "standard output", std::io::Error::other(e)))?;
                let _ = writeln!(out);
            }
            ListFormat::Table if archive.quarantined().next().is_none() => {
                out_line("no submission is quarantined");
            }
            ListFormat::Table => quarantine_lines(&archive, &a.archive),
        }
        return Ok(());
    }
    let filter = a.filter.to_filter(&archive)?;
    let records = archive.records()?;
    let selected: Vec<&Record> = records.iter().filter(|r| filter.matches(r)).collect();
    match a.format {
        ListFormat::Json => {
            let summaries: Vec<Summary<'_>> = selected.iter().map(|r| Summary::of(r)).collect();
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &summaries)
                .map_err(|e| Error::io("write", "standard output", std::io::Error::other(e)))?;
            let _ = writeln!(out);
        }
        ListFormat::Table => {
            if selected.is_empty() {
                out_line(&format!(
                    "no submission matches ({} in the archive)",
                    records.len()
                ));
                quarantine_lines(&archive, &a.archive);
                return Ok(());
            }
            out_line(&format!(
                "{:<12}  {:<10}  {:<9}  {:<18}  {:<18}  {:<5}  TAGS",
                "ID", "RECEIVED", "STATUS", "CATEGORY", "REGION", "FILES"
            ));
            for r in &selected {
                let flagged = r
                    .attachments
                    .iter()
                    .filter(|x| archive::is_flagged(x))
                    .count();
                let files = if flagged > 0 {
                    format!("{}!{flagged}", r.attachments.len())
                } else {
                    r.attachments.len().to_string()
                };
                let tags: Vec<&str> = r.tags.iter().map(String::as_str).collect();
                let id = r.id.to_string();
                out_line(
                    format!(
                        "{:<12}  {:<10}  {:<9}  {}  {}  {:<5}  {}",
                        id.get(..12).unwrap_or(&id),
                        r.received_day.to_string(),
                        r.status.as_str(),
                        cell(r.fields.get("category").map(String::as_str), 18),
                        cell(r.fields.get("region").map(String::as_str), 18),
                        files,
                        tags.join(",")
                    )
                    .trim_end(),
                );
            }
            out_line(&format!(
                "{} of {} submissions{}",
                selected.len(),
                records.len(),
                if selected
                    .iter()
                    .any(|r| r.attachments.iter().any(archive::is_flagged))
                {
                    " (FILES n!k: k of n attachments flagged; `reviewer show DIR ID`)"
                } else {
                    ""
                }
            ));
            quarantine_lines(&archive, &a.archive);
        }
    }
    Ok(())
}

/// A table cell: escaped, cut to `width` characters, padded.
fn cell(value: Option<&str>, width: usize) -> String {
    let clean = text::clean(value.unwrap_or("-"));
    let mut out: String = clean.chars().take(width).collect();
    if clean.chars().count() > width {
        out.pop();
        out.push('…');
    }
    let n = out.chars().count();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(n)));
    out
}

fn show_cmd(a: ShowArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    let id = archive.resolve(&a.id)?;
    if let Some(q) = archive.quarantined_submission(&id) {
        out_line(&format!("Submission {id}: QUARANTINED"));
        out_line(&format!("Received: {}", q.received_day));
        out_line(&format!("Key epoch: {}", q.origin.epoch));
        if let Some(t) = q.thread {
            out_line(&format!("Thread: {t}"));
        }
        out_line(&format!("Reason: {}", text::clean(&q.reason)));
        out_line(&format!("Last tried: {}", q.tried_day));
        out_line(&format!(
            "From: relay {} batch {} ({})",
            relay_fingerprint(&q.origin.relay_key),
            q.origin.batch_sequence,
            q.origin.batch_id
        ));
        out_line(&format!(
            "Ciphertext (in custody): {} sha256 {}",
            archive::custody_ciphertext(&a.archive, &q.origin.relay_key, &id).display(),
            q.origin.ciphertext_sha256
        ));
        out_line(&format!(
            "Nothing of its content was written. Try again: reviewer retry {id} --identity KEY --out {}",
            a.archive.display()
        ));
        return Ok(());
    }
    let record = archive.record(&id)?;
    let mates: Vec<format::SubmissionId> = match record.thread {
        Some(t) => archive
            .submissions()
            .filter(|s| s.thread == Some(t) && s.id != id)
            .map(|s| s.id)
            .collect(),
        None => Vec::new(),
    };
    let also = archive
        .submission(&id)
        .map(|s| s.also_received.clone())
        .unwrap_or_default();
    let shown = text::render_record(&record, &mates, &also);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(shown.as_bytes());
    Ok(())
}

fn tag_cmd(a: TagArgs) -> Result<(), Error> {
    for t in &a.tags {
        archive::check_tag(t).map_err(|reason| Error::BadTag {
            tag: t.chars().take(50).collect(),
            reason,
        })?;
    }
    let archive = Archive::open(&a.archive)?;
    let id = archive.resolve(&a.id)?;
    let mut triage = Triage::load(archive.root())?;
    let changed = if a.remove {
        triage.remove_tags(id, &a.tags)
    } else {
        triage.add_tags(id, &a.tags)
    };
    triage.save(archive.root())?;
    let now: Vec<String> = triage.get(&id).tags.into_iter().collect();
    out_line(&format!(
        "submission {id}: {} {}; tags now: {}",
        if a.remove { "removed" } else { "added" },
        if changed.is_empty() {
            "nothing (unchanged)".to_owned()
        } else {
            changed.join(", ")
        },
        if now.is_empty() {
            "none".to_owned()
        } else {
            now.join(", ")
        }
    ));
    Ok(())
}

fn status_cmd(a: StatusArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    let id = archive.resolve(&a.id)?;
    let mut triage = Triage::load(archive.root())?;
    let before = triage.get(&id).status;
    let status = Status::from(a.status);
    triage.set_status(id, status);
    triage.save(archive.root())?;
    out_line(&format!("submission {id}: status {status} (was {before})"));
    Ok(())
}

fn export_cmd(a: ExportArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    let filter = a.filter.to_filter(&archive)?;
    let mut records = archive.records()?;
    records.retain(|r| filter.matches(r));
    let format = match a.format {
        ExportFormatArg::Csv => ExportFormat::Csv,
        ExportFormatArg::Json => ExportFormat::Json,
    };
    match &a.out {
        None => {
            let mut out = std::io::stdout().lock();
            export::export(&records, format, a.with_text, &mut out)
                .map_err(|e| Error::io("write", "standard output", e))?;
        }
        Some(path) => {
            let file = crate::fsutil::create_private_file(path)?;
            let mut w = std::io::BufWriter::new(file);
            let written = export::export(&records, format, a.with_text, &mut w)
                .and_then(|()| w.flush())
                .and_then(|()| w.get_ref().sync_all());
            if let Err(e) = written {
                // Never leave half an export behind.
                drop(w);
                let _ = std::fs::remove_file(path);
                return Err(Error::io("write", path, e));
            }
            let _ = writeln!(
                std::io::stderr().lock(),
                "reviewer: wrote {} submission{} to {}{}",
                records.len(),
                if records.len() == 1 { "" } else { "s" },
                printable(&path.display().to_string()),
                if a.with_text {
                    " (with the testimony text: keep it as safe as the archive)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

fn report_cmd(a: ReportArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    let records = archive.records()?;
    let options = crate::report::ReportOptions {
        title: a.title,
        include_discarded: a.include_discarded,
        generated_day: Day::today(),
        quarantined: archive.quarantined().cloned().collect(),
    };
    let bar = progress_bar(records.len() as u64, "writing the report", false);
    let written = write_site(
        &records,
        archive.root(),
        &a.out,
        &options,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    let summary = written?;
    out_line(&format!(
        "wrote the report into {}: {} pages, {} submissions, {} threads, {} files copied, {} flagged",
        a.out.display(),
        summary.pages,
        summary.submissions,
        summary.threads,
        summary.files_copied,
        summary.flagged_files
    ));
    out_line(&format!(
        "open {} in a browser (it needs no network); the site holds the testimonies: keep it as safe as the archive",
        a.out.join("index.html").display()
    ));
    Ok(())
}

/// The one place that calls the report writer ([`crate::report`]).
fn write_site(
    records: &[Record],
    archive_root: &Path,
    out: &Path,
    options: &crate::report::ReportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<crate::report::ReportSummary, Error> {
    crate::report::write_report(records, archive_root, out, options, progress)
}

fn verify_archive_cmd(a: VerifyArchiveArgs) -> Result<(), Error> {
    let pinned = a
        .relay_key
        .iter()
        .map(|k| PinnedKey::from_arg(k))
        .collect::<Result<Vec<_>, Error>>()?;
    let report = audit::verify_archive(&a.archive, &pinned)?;
    for p in &report.problems {
        out_line(&format!("problem: {p}"));
    }
    for n in &report.notes {
        out_line(&format!("note: {n}"));
    }
    out_line(&format!(
        "checked {} batch{} from {} relay{}, {} submission{}, {} original attachment{}: {}",
        report.batches,
        if report.batches == 1 { "" } else { "es" },
        report.relays,
        if report.relays == 1 { "" } else { "s" },
        report.submissions,
        if report.submissions == 1 { "" } else { "s" },
        report.attachments,
        if report.attachments == 1 { "" } else { "s" },
        match report.problems.len() {
            0 => "no problem".to_owned(),
            1 => "1 problem".to_owned(),
            n => format!("{n} problems"),
        }
    ));
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::ArchiveProblems {
            dir: a.archive,
            problems: report.problems.len(),
        })
    }
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
    fn every_command_has_examples() {
        let cli = Cli::command();
        let mut n = 0;
        for sub in cli.get_subcommands() {
            let after = sub
                .get_after_help()
                .map(|s| s.to_string())
                .unwrap_or_default();
            assert!(
                after.starts_with("Examples:\n"),
                "`reviewer {}` has no Examples: section",
                sub.get_name()
            );
            assert!(
                after.contains(&format!("reviewer {}", sub.get_name())),
                "`reviewer {}`'s examples do not run it",
                sub.get_name()
            );
            n += 1;
        }
        assert_eq!(n, 16);
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
