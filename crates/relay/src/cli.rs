//! The `relay` command line.

use std::ffi::OsString;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use format::{BatchId, Receipt};

use crate::config::Config;
use crate::demo::{self, CONFIG_FILE};
use crate::export::{self, BatchLock};
use crate::keys::{self, SigningKey};
use crate::server::{self, STORE_DIR};
use crate::store::{AckOutcome, Store};
use crate::{Error, fsutil};

/// Anonymous submission relay: serves the form, seals each submission to the
/// reviewers' age keys, stores only ciphertext, and hands out signed batches.
#[derive(Debug, Parser)]
#[command(name = "relay", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct DataArgs {
    /// Data directory: store, signing key, spool (and the demo setup).
    #[arg(long = "data", value_name = "DIR", default_value = "relay-data")]
    dir: PathBuf,
    /// Config file [default: DIR/relay.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl DataArgs {
    fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| self.dir.join(CONFIG_FILE))
    }

    fn load_config(&self) -> Result<Config, Error> {
        Config::load(&self.config_path())
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the relay. With no config in the data directory, set up and run
    /// a loopback-only demo (self-signed certificate, demo reviewer key).
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// HTTPS listen address [default: the config's, or 127.0.0.1:8443].
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
    },
    /// Print the relay's batch signing public key, for reviewers to pin.
    Pubkey {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write a batch of new submissions to a file (the relay must be stopped).
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// Where to write the batch (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Write this unacknowledged batch again instead of a new one.
        #[arg(long, value_name = "BATCH_ID")]
        batch: Option<BatchId>,
    },
    /// Delete the submissions of a batch a reviewer has safely opened, given
    /// the receipt `reviewer open` wrote (the relay must be stopped).
    Ack {
        #[command(flatten)]
        data: DataArgs,
        /// The receipt file.
        receipt: PathBuf,
    },
    /// Create a reviewer API token: writes it to FILE and prints the line for
    /// the config's [api] section.
    Token {
        /// Where to write the token (0600, never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Store reviewers' replies from a bundle `reviewer reply` wrote (the
    /// relay must be stopped; while it runs, use `reviewer push`). All or
    /// nothing: a bundle not signed by a key in `[reviewers]
    /// reply_signing_keys`, or a reply to an unknown thread, refuses the
    /// whole bundle.
    ImportReplies {
        #[command(flatten)]
        data: DataArgs,
        /// The signed reply bundle (JSON, `reviewer reply` writes it).
        bundle: PathBuf,
    },
    /// Show how many submissions and batches the store holds.
    Status {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Verify the store without changing it (the relay must be stopped):
    /// every submission's ciphertext file is present, of the recorded size
    /// and SHA-256, with an age header that parses; no file lacks an index
    /// entry; every unacknowledged batch has its manifest. Prints one line
    /// per problem and exits with status 1 if there is any.
    Check {
        #[command(flatten)]
        data: DataArgs,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    match run(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(RunError::Usage(e)) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(RunError::Relay(e)) => {
            eprintln!("relay: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Why [`run`] failed.
#[derive(Debug)]
pub enum RunError {
    /// Bad command line (or `--help`).
    Usage(clap::Error),
    /// The command failed.
    Relay(Error),
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        RunError::Relay(e)
    }
}

/// Runs the command line `args` (including the program name).
pub fn run<I, T>(args: I) -> Result<(), RunError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(RunError::Usage)?;
    init_tracing();
    match cli.command {
        Command::Serve { data, listen } => serve(&data, listen)?,
        Command::Pubkey { data } => {
            let key = SigningKey::load(&data.dir)?;
            println!("{}", key.public_base64());
        }
        Command::Export { data, out, batch } => export_cmd(&data, &out, batch)?,
        Command::Ack { data, receipt } => ack_cmd(&data, &receipt)?,
        Command::Token { out } => {
            let (token, hash) = keys::new_api_token();
            let mut line = zeroize::Zeroizing::new(token.as_bytes().to_vec());
            line.push(b'\n');
            fsutil::write_new(&out, &line, 0o600)?;
            println!("[api]\ntoken_sha256 = \"{hash}\"");
            eprintln!(
                "relay: wrote the token to {}; give that file to the reviewers and put the lines above in relay.toml",
                out.display()
            );
        }
        Command::Check { data } => check_cmd(&data)?,
        Command::ImportReplies { data, bundle } => {
            // The config pins the reviewers' reply-signing keys.
            let config = data.load_config()?;
            let bytes = std::fs::read(&bundle).map_err(Error::io("read", &bundle))?;
            let store = Store::open(&data.dir.join(STORE_DIR), 16 << 20)?;
            let outcome =
                crate::followup::import_replies(&store, &bytes, &config.reply_signing_keys)?;
            println!(
                "stored {} new replies ({} already held, {} already read and deleted by their source)",
                outcome.stored, outcome.already_held, outcome.deleted_by_source
            );
        }
        Command::Status { data } => {
            let store = Store::open(&data.dir.join(STORE_DIR), 16 << 20)?;
            let stats = store.stats()?;
            let batches = store.unacked_batches()?;
            println!(
                "submissions: {} ({} not yet in a batch), ciphertext bytes: {}, unacknowledged batches: {}, follow-up threads: {}, replies held: {}, segments: {} ({} of them lanes for large ciphertexts; {} bytes, {} of them acknowledged and awaiting compaction)",
                stats.submissions,
                stats.unexported,
                stats.ciphertext_bytes,
                batches.len(),
                stats.threads,
                stats.replies,
                stats.segments,
                stats.lanes,
                stats.segment_bytes,
                stats.dead_bytes
            );
        }
    }
    Ok(())
}

fn init_tracing() {
    // What a log line may carry is decided here, once:
    // - no timestamps from us: a line's time could be matched with a
    //   source's traffic (journald adds its own; see SECURITY.md);
    // - dependencies (hyper, h2, rustls, sled, ...) log at `error` only,
    //   whatever the operator sets: at debug or trace they can print
    //   headers, addresses or payload sizes. `RELAY_LOG` (error, warn,
    //   info, debug, trace; default info) sets the relay's own level.
    let level = std::env::var("RELAY_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::ERROR)
        .with_target("relay", level);
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .without_time()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .try_init();
}

fn serve(data: &DataArgs, listen: Option<SocketAddr>) -> Result<(), Error> {
    let config_path = data.config_path();
    if data.config.is_none() && !config_path.exists() {
        let addr = match listen {
            Some(a) => a,
            None => crate::config::DEFAULT_LISTEN
                .parse()
                .map_err(|_| Error::Tls("bad default address".into()))?,
        };
        demo::init(&data.dir, addr)?;
        tracing::warn!(
            data_dir = %data.dir.display(),
            "DEMO MODE: created a demo setup. The DEMO reviewer private key is {}; \
             anyone with this disk can read every submission. Never use demo mode for real testimony.",
            data.dir.join(demo::DEMO_IDENTITY_FILE).display()
        );
    }
    let mut config = Config::load(&config_path)?;
    if let Some(addr) = listen {
        config.listen = Some(addr);
    }
    if config.demo {
        if let Some(addr) = config.listen
            && !addr.ip().is_loopback()
        {
            return Err(Error::NotLoopback(addr, "demo mode"));
        }
        tracing::warn!(
            "DEMO MODE: loopback only; the reviewer key is in {}. Reviewer API token: {}",
            data.dir.join(demo::DEMO_IDENTITY_FILE).display(),
            data.dir.join(demo::DEMO_TOKEN_FILE).display(),
        );
    }
    crate::process::harden()?;
    let listen = server::Listen::from_config(&config);
    let state = server::open(&data.dir, config)?;
    tracing::info!(
        public_key = %state.signer.public_base64(),
        recipients = state.recipients.len(),
        epoch = state.config.epoch,
        "relay ready"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            action: "start the async runtime for",
            path: data.dir.clone(),
            source: e,
        })?;
    runtime.block_on(server::serve(state, listen, server::shutdown_signal()))
}

fn export_cmd(data: &DataArgs, out: &Path, batch: Option<BatchId>) -> Result<(), Error> {
    let config = data.load_config()?;
    let store = Store::open(&data.dir.join(STORE_DIR), config.store.cache_mib << 20)?;
    let record = match batch {
        Some(id) => {
            let record = store.batch(&id)?.ok_or(Error::UnknownBatch(id))?;
            if record.acked {
                return Err(Error::UnknownBatch(id));
            }
            record
        }
        None => {
            let signer = SigningKey::load(&data.dir)?;
            let lock = BatchLock::default();
            match export::create_batch(&lock, &store, &signer, config.limits.max_batch_submissions)?
            {
                Some(record) => {
                    store.sync_blocking()?;
                    record
                }
                None => {
                    let pending = store.unacked_batches()?;
                    eprintln!(
                        "relay: nothing to export: no submissions since the last batch ({} unacknowledged batch(es); write one again with --batch ID)",
                        pending.len()
                    );
                    for b in pending {
                        eprintln!(
                            "  batch {} (sequence {}, {} submissions)",
                            b.batch_id, b.sequence, b.submissions
                        );
                    }
                    return Ok(());
                }
            }
        }
    };
    let file = fsutil::create_new(out, 0o600)?;
    let written =
        export::write_batch(&store, &record, std::io::BufWriter::new(file)).and_then(|w| {
            let file = w
                .into_inner()
                .map_err(|e| Error::io("write", out)(e.into_error()))?;
            file.sync_all().map_err(Error::io("sync", out))
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "wrote batch {} (sequence {}, {} submissions) to {}",
        record.batch_id,
        record.sequence,
        record.submissions,
        out.display()
    );
    Ok(())
}

fn check_cmd(data: &DataArgs) -> Result<(), Error> {
    // The config is optional here (a store can be checked without it); it
    // gives the cache size and the quota to report against.
    let config = if data.config.is_some() || data.config_path().exists() {
        Some(data.load_config()?)
    } else {
        None
    };
    let cache = config
        .as_ref()
        .map_or(16 << 20, |c| c.store.cache_mib << 20);
    let store = Store::open_for_check(&data.dir.join(STORE_DIR), cache)?;
    let report = store.check(crate::seal::check_header)?;
    drop(store);
    let mut out = std::io::stdout().lock();
    for line in &report.repairs {
        let _ = writeln!(out, "note: {line}");
    }
    for line in &report.problems {
        let _ = writeln!(out, "problem: {line}");
    }
    let quota = config.map(|c| c.limits.max_store_bytes);
    if let Some(max) = quota
        && report.ciphertext_bytes > max
    {
        let _ = writeln!(
            out,
            "note: the store holds more than limits.max_store_bytes ({max}): new submissions are refused until a batch is acknowledged"
        );
    }
    let _ = writeln!(
        out,
        "checked {} submissions ({} bytes of ciphertext{}) and {} unacknowledged batches: {}",
        report.submissions,
        report.ciphertext_bytes,
        quota.map_or_else(String::new, |q| format!(" of a {q}-byte quota")),
        report.unacked_batches,
        if report.problems.is_empty() {
            "no problems".to_owned()
        } else {
            format!("{} problem(s)", report.problems.len())
        }
    );
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::CheckFailed(report.problems.len() as u64))
    }
}

fn ack_cmd(data: &DataArgs, receipt_path: &Path) -> Result<(), Error> {
    let bytes = std::fs::read(receipt_path).map_err(Error::io("read", receipt_path))?;
    let receipt = Receipt::from_json(&bytes).map_err(|e| Error::Config {
        path: receipt_path.to_owned(),
        problem: format!("not a receipt: {e}"),
    })?;
    let signer = SigningKey::load(&data.dir)?;
    if receipt.relay_key != signer.public_base64() {
        return Err(Error::WrongRelay(receipt.relay_key));
    }
    let store = Store::open(&data.dir.join(STORE_DIR), 16 << 20)?;
    let outcome = store.ack(&receipt.batch_id, &receipt.manifest_sha256)?;
    store.sync_blocking()?;
    // The relay is stopped: rewrite the segments now rather than leave the
    // acknowledged ciphertext to the next start's rounds.
    store.compact_now(true)?;
    match outcome {
        AckOutcome::Deleted(n) => println!(
            "deleted {n} submissions of batch {} (sequence {})",
            receipt.batch_id, receipt.sequence
        ),
        AckOutcome::AlreadyAcked => println!(
            "batch {} was already acknowledged; nothing to delete",
            receipt.batch_id
        ),
    }
    Ok(())
}
