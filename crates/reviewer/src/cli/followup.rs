//! Follow-up: `threads` and `reply`.

use super::*;

pub(super) const THREADS_EXAMPLES: &str = "\
Examples:
  # After `reviewer open`: each thread, with its submissions across batches
  reviewer threads ~/cases";

pub(super) const REPLIES_EXAMPLES: &str = "\
Examples:
  # Every reply sent from this archive, by thread
  reviewer replies ~/cases

  # The replies of one thread (its id or a unique start of it)
  reviewer replies ~/cases --thread 3f0c1a";

pub(super) const REPLY_EXAMPLES: &str = "\
Examples:
  # The source's recipient from the thread index `reviewer open` keeps
  reviewer reply ~/cases --thread 3f0c…e1 --message answer.txt -r age1…your-own… --out reply-1.json

  # Every reviewer keeps a copy; the recipient read from the batch files,
  # each verified with the pinned relay key
  reviewer reply ~/cases --thread 3f0c…e1 --message answer.txt --recipients-file reviewers.txt \\
    --batch-dir batches --relay-key relay.pub --out reply-1.json

  # Type the message instead of keeping it in a file (end with Ctrl-D)
  reviewer reply ~/cases --thread 3f0c…e1 --message - -r age1… --out reply-1.json

Carry the bundle to the online machine and upload it with `reviewer push`.";

#[derive(Debug, Args)]
pub(super) struct ThreadsArgs {
    /// The archive (`reviewer open … --out DIR`).
    #[arg(value_name = "ARCHIVE")]
    archive: PathBuf,
    /// Gone: the thread index lives in the archive (refused with a message).
    #[arg(long, value_name = "DIR", hide = true)]
    state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct RepliesArgs {
    /// The archive (`reviewer open … --out DIR`).
    #[arg(value_name = "ARCHIVE")]
    archive: PathBuf,
    /// Only this thread (its id, or at least 6 of its first digits).
    #[arg(long, value_name = "ID")]
    thread: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct ReplyArgs {
    /// The archive (`reviewer open … --out DIR`): its thread index gives
    /// the source's recipient, and the reply is recorded in its thread.
    #[arg(value_name = "ARCHIVE")]
    archive: PathBuf,
    /// The thread to reply to: its id or a unique start of it (`reviewer
    /// threads` lists them; open writes it in each submission's
    /// testimony.txt).
    #[arg(long, value_name = "ID")]
    thread: String,
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
    /// Gone: the thread index lives in the archive (refused with a message).
    #[arg(long, value_name = "DIR", hide = true)]
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

/// The archive's thread index (rebuilt from the archive first if missing).
fn thread_index(archive: &Archive) -> Result<ThreadIndex, Error> {
    let store = StateStore::for_archive(archive.root());
    ThreadIndex::ensure(archive, &store)?;
    ThreadIndex::load(&store)
}

pub(super) fn threads_cmd(a: ThreadsArgs) -> Result<(), Error> {
    if a.state.is_some() {
        return Err(Error::State(crate::state::StateError::StateOptionGone {
            verify: false,
        }));
    }
    let archive = Archive::open(&a.archive)?;
    let index = thread_index(&archive)?;
    if index.is_empty() {
        out_line(&format!(
            "no threads in the archive {} (`reviewer open` records them from the batches it opens)",
            a.archive.display()
        ));
        return Ok(());
    }
    let replies = crate::replies::Replies::load(archive.root())?;
    for t in index.threads() {
        let sent = match replies.of_thread(&t.id).len() {
            0 => String::new(),
            1 => "; 1 reply sent".to_owned(),
            n => format!("; {n} replies sent"),
        };
        out_line(&format!(
            "{}{sent}; source recipient {}",
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

pub(super) fn replies_cmd(a: RepliesArgs) -> Result<(), Error> {
    let archive = Archive::open(&a.archive)?;
    let thread = a
        .thread
        .as_deref()
        .map(|t| triage::resolve_thread(&archive, t))
        .transpose()?;
    let replies = crate::replies::Replies::load(archive.root())?;
    let shown: Vec<_> = match &thread {
        Some(t) => replies.of_thread(t),
        None => replies.all(),
    };
    if shown.is_empty() {
        out_line(&format!(
            "no replies recorded{} in {} (`reviewer reply` records each one it writes)",
            thread
                .map(|t| format!(" for thread {t}"))
                .unwrap_or_default(),
            a.archive.display()
        ));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let mut current = None;
    for r in shown {
        if current != Some(r.thread) {
            current = Some(r.thread);
            let _ = writeln!(out, "thread {}:", r.thread);
        }
        let _ = out.write_all(r.render().as_bytes());
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
    if a.state.is_some() {
        return Err(Error::State(crate::state::StateError::StateOptionGone {
            verify: false,
        }));
    }
    let archive = Archive::open(&a.archive)?;
    let source = match &a.batch_dir {
        Some(dir) => {
            // A thread the archive does not know yet may be named in full.
            let thread = match (
                triage::resolve_thread(&archive, &a.thread),
                a.thread.trim().parse::<ThreadId>(),
            ) {
                (Ok(t), _) | (Err(_), Ok(t)) => t,
                (Err(e), Err(_)) => return Err(e),
            };
            // clap makes --relay-key required with --batch-dir.
            let key = PinnedKey::from_arg(a.relay_key.as_deref().unwrap_or_default())?;
            reply::source_from_batches(dir, &key, thread)?
        }
        None => {
            let thread = triage::resolve_thread(&archive, &a.thread)?;
            let store = StateStore::for_archive(&a.archive);
            ThreadIndex::ensure(&archive, &store)?;
            reply::source_from_index(&store, thread)?
        }
    };
    let reviewers = reply::reviewer_recipients(&a.recipients, &a.recipients_file, &source)?;
    // Read before anything is written: a broken replies file stops here.
    let mut replies = crate::replies::Replies::load(&a.archive)?;
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
    // The NGO's record of what it told the source, in the source's thread.
    replies.record(crate::replies::SentReply {
        id: written.id,
        thread: written.thread,
        written_day: message.written_day,
        text: message.text.clone(),
    });
    replies.save(&a.archive)?;
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
        "reviewer: recorded in the archive's thread (`reviewer replies {} --thread {}`); carry the bundle to the online machine and upload it with `reviewer push {} --relay URL --token-file FILE`, or give it to the relay operator for `relay import-replies`",
        printable(&a.archive.display().to_string()),
        written.thread,
        printable(&written.path.display().to_string())
    );
    Ok(())
}
