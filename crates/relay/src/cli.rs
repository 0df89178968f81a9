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

/// Where a config is looked for when `--config` is not given, after
/// `DIR/relay.toml`: where the Debian package and README put it.
pub const SYSTEM_CONFIG: &str = "/etc/relay/relay.toml";

#[derive(Debug, clap::Args)]
struct DataArgs {
    /// Data directory: store, signing key, spool.
    #[arg(long = "data", value_name = "DIR", default_value = "relay-data")]
    dir: PathBuf,
    /// Config file [default: DIR/relay.toml if it exists, else /etc/relay/relay.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl DataArgs {
    /// The config every command uses: the same rule for all of them.
    fn config_path(&self) -> Result<PathBuf, Error> {
        find_config(self.config.as_deref(), &self.dir, Path::new(SYSTEM_CONFIG))
    }

    fn load_config(&self) -> Result<Config, Error> {
        Config::load(&self.config_path()?)
    }

    /// For the offline commands: the data directory must hold a relay's
    /// store. Checked before anything opens it, so that a mistyped `--data`
    /// creates nothing.
    fn require_store(&self) -> Result<PathBuf, Error> {
        let store = self.dir.join(STORE_DIR);
        if store.is_dir() {
            Ok(store)
        } else {
            Err(Error::NoRelayData(self.dir.clone()))
        }
    }
}

/// `--config` if given; else `DIR/relay.toml` if it exists; else `system`
/// if it exists; else [`Error::NoConfig`].
pub fn find_config(explicit: Option<&Path>, dir: &Path, system: &Path) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let in_data = dir.join(CONFIG_FILE);
    if in_data.exists() {
        return Ok(in_data);
    }
    if system.exists() {
        return Ok(system.to_owned());
    }
    Err(Error::NoConfig {
        in_data,
        system: system.to_owned(),
    })
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the relay with its config. Refuses to start while a demo
    /// reviewer key sits in the data directory of a non-demo relay.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// HTTPS listen address [default: the config's, or 127.0.0.1:8443].
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
    },
    /// Try the relay: set up (on first run) and serve a loopback-only demo
    /// in its own data directory, with a self-signed certificate and a demo
    /// reviewer key stored next to the data. It protects nothing; never use
    /// it for real testimony. Refuses a directory a real relay uses.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo {
        /// The demo's data directory (created on first run).
        #[arg(long = "data", value_name = "DIR", default_value = "relay-data")]
        dir: PathBuf,
        /// HTTPS listen address, loopback only [default: 127.0.0.1:8443].
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
    },
    /// Print the relay's batch signing public key, for reviewers to pin.
    #[command(after_help = PUBKEY_EXAMPLES)]
    Pubkey {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write a batch of new submissions to a file (the relay must be stopped).
    #[command(after_help = EXPORT_EXAMPLES)]
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
    #[command(after_help = ACK_EXAMPLES)]
    Ack {
        #[command(flatten)]
        data: DataArgs,
        /// The receipt file.
        receipt: PathBuf,
    },
    /// Create a reviewer API token: writes it to FILE and prints the line for
    /// the config's [api] section.
    #[command(after_help = TOKEN_EXAMPLES)]
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
    #[command(after_help = IMPORT_REPLIES_EXAMPLES)]
    ImportReplies {
        #[command(flatten)]
        data: DataArgs,
        /// The signed reply bundle (JSON, `reviewer reply` writes it).
        bundle: PathBuf,
    },
    /// Show how many submissions and batches the store holds: counts only,
    /// never a time. Works while the relay runs (it asks the relay through
    /// DIR/status.sock) and while it is stopped.
    #[command(after_help = STATUS_EXAMPLES)]
    Status {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Verify the store without changing it (the relay must be stopped):
    /// every submission's ciphertext file is present, of the recorded size
    /// and SHA-256, with an age header that parses; no file lacks an index
    /// entry; every unacknowledged batch has its manifest. Prints one line
    /// per problem and exits with status 1 if there is any.
    #[command(after_help = CHECK_EXAMPLES)]
    Check {
        #[command(flatten)]
        data: DataArgs,
    },
}

const SERVE_EXAMPLES: &str = "\
Examples:
  # A real relay, as the systemd unit starts it
  relay serve --data /var/lib/relay --config /etc/relay/relay.toml

  # The config is found in DIR/relay.toml, else /etc/relay/relay.toml
  relay serve --data /var/lib/relay";

const DEMO_EXAMPLES: &str = "\
Examples:
  # Try it: https://127.0.0.1:8443, everything in ./relay-data (never real testimony)
  relay demo

  # Another directory and port
  relay demo --data /tmp/relay-demo --listen 127.0.0.1:9443";

const PUBKEY_EXAMPLES: &str = "\
Examples:
  # The line reviewers pin (`reviewer open --relay-key ...`)
  relay pubkey --data /var/lib/relay";

const EXPORT_EXAMPLES: &str = "\
Examples:
  # With the relay stopped: a new batch of everything not yet exported
  relay export --data /var/lib/relay --out /media/usb/batch-7.tar

  # Write an unacknowledged batch again (its id as `relay status` or an earlier export printed it)
  relay export --data /var/lib/relay --out batch.tar --batch 2f6c...";

const ACK_EXAMPLES: &str = "\
Examples:
  # With the relay stopped: delete what the reviewers' receipt says they opened safely
  relay ack --data /var/lib/relay /media/usb/batch-000007-2f6c....json";

const TOKEN_EXAMPLES: &str = "\
Examples:
  # A token for the reviewers; put the printed lines in relay.toml
  relay token --out /media/usb/api.token";

const IMPORT_REPLIES_EXAMPLES: &str = "\
Examples:
  # With the relay stopped and no network path: store a signed reply bundle
  relay import-replies --data /var/lib/relay /media/usb/reply-1.json";

const STATUS_EXAMPLES: &str = "\
Examples:
  # Counts of what the store holds, running or stopped
  sudo -u relay relay status --data /var/lib/relay";

const CHECK_EXAMPLES: &str = "\
Examples:
  # With the relay stopped: verify every stored ciphertext and batch
  sudo systemctl stop relay && sudo -u relay relay check --data /var/lib/relay";

/// The status socket inside the data directory: `relay status` asks a
/// running relay through it (the store is locked while the relay runs).
pub const STATUS_SOCKET: &str = "status.sock";

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
            eprint!("{}", error_report(&e));
            ExitCode::FAILURE
        }
    }
}

/// What the binary prints for a failed command: the error, then each cause
/// the lines above do not already say (most messages include their cause,
/// and a cause printed twice reads as two failures).
pub fn error_report(e: &Error) -> String {
    let mut out = format!("relay: {e}\n");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let line = s.to_string();
        if !out.contains(&line) {
            out.push_str(&format!("  caused by: {line}\n"));
        }
        source = s.source();
    }
    out
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
        Command::Demo { dir, listen } => demo_cmd(&dir, listen)?,
        Command::Pubkey { data } => {
            if !data.dir.is_dir() {
                return Err(Error::NoRelayData(data.dir).into());
            }
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
            let store_dir = data.require_store()?;
            let config = data.load_config()?;
            let bytes = std::fs::read(&bundle).map_err(Error::io("read", &bundle))?;
            let store = Store::open(&store_dir, 16 << 20)?;
            let outcome =
                crate::followup::import_replies(&store, &bytes, &config.reply_signing_keys)?;
            println!(
                "stored {} new replies ({} already held, {} already read and deleted by their source)",
                outcome.stored, outcome.already_held, outcome.deleted_by_source
            );
        }
        Command::Status { data } => {
            let store_dir = data.require_store()?;
            match Store::open(&store_dir, 16 << 20) {
                Ok(store) => print!("{}", status_text(&store)?),
                // The running relay holds the lock: ask it.
                Err(Error::StoreLocked(_)) => {
                    print!(
                        "{}",
                        ask_running(&store_dir, &data.dir.join(STATUS_SOCKET))?
                    )
                }
                Err(e) => return Err(e.into()),
            }
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

/// What `relay status` prints: counts only, never a time.
pub fn status_text(store: &Store) -> Result<String, Error> {
    let stats = store.stats()?;
    let batches = store.unacked_batches()?;
    Ok(format!(
        "submissions: {} ({} not yet in a batch), ciphertext bytes: {}, unacknowledged batches: {}, follow-up threads: {}, replies held: {}, segments: {} ({} of them lanes for large ciphertexts; {} bytes, {} of them acknowledged and awaiting compaction)\n",
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
    ))
}

/// Reads the running relay's status from its socket.
fn ask_running(store: &Path, socket: &Path) -> Result<String, Error> {
    use std::io::Read as _;
    let failed = |reason: String| Error::StatusSocket {
        store: store.to_owned(),
        socket: socket.to_owned(),
        reason,
    };
    let conn =
        std::os::unix::net::UnixStream::connect(socket).map_err(|e| failed(e.to_string()))?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(|e| failed(e.to_string()))?;
    let mut text = String::new();
    conn.take(64 << 10)
        .read_to_string(&mut text)
        .map_err(|e| failed(e.to_string()))?;
    match text.strip_prefix("error: ") {
        Some(e) => Err(failed(e.trim_end().to_owned())),
        None if text.ends_with('\n') => Ok(text),
        None => Err(failed("it closed the connection early".into())),
    }
}

fn demo_cmd(dir: &Path, listen: Option<SocketAddr>) -> Result<(), Error> {
    let config_path = dir.join(CONFIG_FILE);
    if config_path.exists() {
        let config = Config::load(&config_path)?;
        if !config.demo {
            return Err(Error::NotForDemo {
                dir: dir.to_owned(),
                why: "holds a relay.toml without `demo = true`",
            });
        }
    } else {
        // A store or a signing key without a demo config: a real relay's
        // directory (or an unfinished one). Never put a demo key there.
        for (name, why) in [
            (STORE_DIR, "already holds a relay's store"),
            (
                keys::SIGNING_KEY_FILE,
                "already holds a relay's signing key",
            ),
        ] {
            if dir.join(name).exists() {
                return Err(Error::NotForDemo {
                    dir: dir.to_owned(),
                    why,
                });
            }
        }
        let addr = match listen {
            Some(a) => a,
            None => crate::config::DEFAULT_LISTEN
                .parse()
                .map_err(|_| Error::Tls("bad default address".into()))?,
        };
        demo::init(dir, addr)?;
        tracing::warn!(
            data_dir = %dir.display(),
            "DEMO MODE: created a demo setup. The DEMO reviewer private key is {}; \
             anyone with this disk can read every submission. Never use demo mode for real testimony.",
            dir.join(demo::DEMO_IDENTITY_FILE).display()
        );
    }
    run_relay(dir, Config::load(&config_path)?, listen)
}

fn serve(data: &DataArgs, listen: Option<SocketAddr>) -> Result<(), Error> {
    let config = data.load_config()?;
    let demo_key = data.dir.join(demo::DEMO_IDENTITY_FILE);
    if !config.demo && demo_key.exists() {
        return Err(Error::DemoKeyPresent(demo_key));
    }
    run_relay(&data.dir, config, listen)
}

fn run_relay(dir: &Path, mut config: Config, listen: Option<SocketAddr>) -> Result<(), Error> {
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
            dir.join(demo::DEMO_IDENTITY_FILE).display(),
            dir.join(demo::DEMO_TOKEN_FILE).display(),
        );
    }
    crate::process::harden()?;
    // The certificate first: a bad `tls.cert` must fail before anything
    // is opened or created, with the key's name.
    if config.listen.is_some()
        && let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key)
    {
        server::tls_config(cert, key, config.tls_min_version)?;
    }
    let mut listen = server::Listen::from_config(&config);
    listen.status = Some(dir.join(STATUS_SOCKET));
    let state = server::open(dir, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            action: "start the async runtime for",
            path: dir.to_owned(),
            source: e,
        })?;
    runtime.block_on(server::serve(state, listen, server::shutdown_signal()))
}

fn export_cmd(data: &DataArgs, out: &Path, batch: Option<BatchId>) -> Result<(), Error> {
    let store_dir = data.require_store()?;
    let config = data.load_config()?;
    let store = Store::open(&store_dir, config.store.cache_mib << 20)?;
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
            match export::create_batch(
                &lock,
                &store,
                &signer,
                config.limits.max_batch_submissions,
                config.demo,
            )? {
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
    let store_dir = data.require_store()?;
    let config = match data.config_path() {
        Ok(path) => Some(Config::load(&path)?),
        Err(Error::NoConfig { .. }) => None,
        Err(e) => return Err(e),
    };
    let cache = config
        .as_ref()
        .map_or(16 << 20, |c| c.store.cache_mib << 20);
    let store = Store::open_for_check(&store_dir, cache)?;
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
    let store_dir = data.require_store()?;
    let bytes = std::fs::read(receipt_path).map_err(Error::io("read", receipt_path))?;
    let receipt = Receipt::from_json(&bytes).map_err(|e| Error::Config {
        path: receipt_path.to_owned(),
        problem: format!("not a receipt: {e}"),
    })?;
    let signer = SigningKey::load(&data.dir)?;
    if receipt.relay_key != signer.public_base64() {
        return Err(Error::WrongRelay(receipt.relay_key));
    }
    let store = Store::open(&store_dir, 16 << 20)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_examples_that_run_it() {
        let mut n = 0;
        for sub in Cli::command().get_subcommands() {
            let after = sub
                .get_after_help()
                .map(|s| s.to_string())
                .unwrap_or_default();
            assert!(
                after.starts_with("Examples:\n"),
                "`relay {}` has no Examples: section",
                sub.get_name()
            );
            assert!(
                after.contains(&format!("relay {}", sub.get_name())),
                "`relay {}`'s examples do not run it",
                sub.get_name()
            );
            n += 1;
        }
        assert_eq!(n, 9);
    }

    #[test]
    fn every_command_finds_the_config_by_one_rule() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let system = tmp.path().join("etc-relay.toml");
        let explicit = tmp.path().join("given.toml");
        // Nothing anywhere: the error names both places and --config.
        let e = find_config(None, &dir, &system).unwrap_err().to_string();
        assert!(
            e.contains(&dir.join(CONFIG_FILE).display().to_string())
                && e.contains(&system.display().to_string())
                && e.contains("--config")
                && e.contains("relay demo"),
            "{e}"
        );
        // The system config, when the data directory has none.
        std::fs::write(&system, "").unwrap();
        assert_eq!(find_config(None, &dir, &system).unwrap(), system);
        // The data directory's wins over the system one.
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(CONFIG_FILE), "").unwrap();
        assert_eq!(
            find_config(None, &dir, &system).unwrap(),
            dir.join(CONFIG_FILE)
        );
        // --config wins over both, even when the file is missing (the
        // load then says so).
        assert_eq!(
            find_config(Some(&explicit), &dir, &system).unwrap(),
            explicit
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_printed_again() {
        let e = Error::Bind {
            addr: "127.0.0.1:1".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let report = error_report(&e);
        assert_eq!(report.lines().count(), 1, "{report}");
        assert_eq!(report.matches("ddress").count(), 1, "{report}");
        // A cause the message does not say is still printed.
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Error::Store {
            action: "open",
            source: Box::new(Outer(std::io::Error::other("disk on fire"))),
        };
        let report = error_report(&e);
        assert_eq!(
            report,
            "relay: store: cannot open: outer\n  caused by: disk on fire\n"
        );
    }
}
