//! Follow-up: `threads` and `reply`.

use super::*;

pub(super) const THREADS_EXAMPLES: &str = "\
Examples:
  # After `reviewer open`: each thread, with its submissions across batches
  reviewer threads
  reviewer threads --state /media/usb/reviewer-state";

pub(super) const REPLY_EXAMPLES: &str = "\
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

#[derive(Debug, Args)]
pub(super) struct ThreadsArgs {
    /// Directory of the chain state and thread index [default: as for open].
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct ReplyArgs {
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
    /// Your reply-signing key (`reviewer keygen --reply-signing` wrote it):
    /// the relay stores only replies signed by a key its config pins.
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// Read the signing key's passphrase from the first line of this file.
    #[arg(long, value_name = "FILE")]
    signing_passphrase_file: Option<PathBuf>,
}

pub(super) fn threads_cmd(a: ThreadsArgs) -> Result<(), Error> {
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

pub(super) fn reply_cmd(a: ReplyArgs) -> Result<(), Error> {
    // Cheap refusals first; write_reply checks both again.
    if a.recipients.is_empty() && a.recipients_file.is_empty() {
        return Err(Error::Reply(crate::reply::ReplyError::NoReviewerRecipient));
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
    let signer = crate::signing::ReplySigner::load(
        &a.signing_key,
        &passphrase_source(a.signing_passphrase_file),
    )?;
    let written = reply::write_reply(
        &source,
        &reviewers,
        &message,
        reply::random_reply_id(),
        &signer,
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
