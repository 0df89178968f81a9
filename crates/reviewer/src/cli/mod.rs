//! The command line, one file per command group:
//!
//! - `cli/keys.rs`: `keygen`, `retire-epoch`;
//! - `cli/online.rs`: `fetch`, `ack`, `push` (no identity needed),
//!   `onion-auth`;
//! - `cli/batches.rs`: `verify`, `open`, `retry`;
//! - `cli/followup.rs`: `threads`, `reply`, `replies`;
//! - `cli/workbench.rs`: `list`, `show`, `tag`, `status`, `export`, `report`,
//!   `verify-archive`.
//!
//! Each command parses its arguments, calls the library and prints what
//! the library returns; the work itself (and its tests) is in the library
//! modules. This file holds the parser, the entry points and the printing
//! helpers they share.

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
use crate::threads::ThreadIndex;
use crate::triage::{self, Filter, Summary};
use crate::verify::{self, PinnedKey};

mod batches;
mod followup;
mod keys;
mod online;
mod workbench;

use batches::*;
use followup::*;
use keys::*;
use online::*;
use workbench::*;

use crate::workbench::{Record, Status};

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
    /// Read the replies sent to sources, as the archive recorded them.
    #[command(after_help = REPLIES_EXAMPLES)]
    Replies(RepliesArgs),
    /// Upload reply bundles to the relay (online; needs no identity).
    #[command(after_help = PUSH_EXAMPLES)]
    Push(PushArgs),
    /// Make a Tor client key for the reviewer API's own onion service
    /// (`[api] listen` on the relay, deploy/torrc-api).
    #[command(after_help = ONION_AUTH_EXAMPLES)]
    OnionAuth(OnionAuthArgs),
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
        // An option a command refuses after parsing: as the parser would.
        Err(Error::Usage(e)) => {
            let _ = e.print();
            ExitCode::from(2)
        }
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
        Command::OnionAuth(a) => onion_auth_cmd(a),
        Command::Verify(a) => verify_cmd(a),
        Command::Open(a) => open_cmd(a, helper.as_deref()),
        Command::Retry(a) => retry_cmd(a, helper.as_deref()),
        Command::Ack(a) => off_runtime(|| ack_cmd(a)),
        Command::RetireEpoch(a) => retire_cmd(a),
        Command::Threads(a) => threads_cmd(a),
        Command::Reply(a) => reply_cmd(a),
        Command::Replies(a) => replies_cmd(a),
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
        assert_eq!(n, 19);
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
