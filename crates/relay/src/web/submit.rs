//! The submission intake: multipart form → spool → seal → store → ack.
//!
//! The async handler reads the multipart stream and passes attachment
//! chunks through a small bounded channel to one blocking worker per upload,
//! which spools and then seals them (file and sled I/O belong on blocking
//! threads). Memory per upload is the channel's few chunks plus age's and
//! tar's fixed buffers, whatever the upload's size.
//!
//! The source is told "stored" only after the sealed submission is durable
//! ([`Store::sync`](crate::store::Store::sync)). Any failure before that
//! leaves nothing: the spool is an unnamed temporary file and an unfinished
//! store write removes itself (or is removed at the next start-up).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use format::{Day, SubmissionId};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::AppState;
use super::pages::{self, Prefill};
use crate::Error;
use crate::keys::random_bytes;
use crate::seal::{self, Spool, Submission};

/// How long an upload waits for a free slot before "busy".
const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// Chunks in flight between the handler and the worker.
const CHANNEL_CHUNKS: usize = 4;
/// Longest region answer, in characters.
const MAX_REGION_CHARS: usize = 200;
/// Longest short answer read from the form, in bytes.
const MAX_SHORT_FIELD_BYTES: usize = 4 * MAX_REGION_CHARS;

/// Why a submission was refused. Messages are shown to the source.
#[derive(Debug)]
enum Reject {
    /// Malformed or incomplete form (400).
    BadRequest(&'static str),
    /// Over a limit (413).
    TooLarge(&'static str),
    /// Our fault (500). Logged, never shown.
    Internal(Error),
}

impl From<Error> for Reject {
    fn from(e: Error) -> Self {
        Reject::Internal(e)
    }
}

fn multipart_reject(e: MultipartError) -> Reject {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Reject::TooLarge("The files are larger than this service accepts.")
    } else {
        Reject::BadRequest("The form did not arrive complete. Please send it again.")
    }
}

/// Commands from the handler to the upload's worker.
enum Command {
    BeginFile(Zeroizing<String>),
    Data(Bytes),
    Finish(Submission),
}

/// The text answers as they arrive (zeroized on drop).
#[derive(Default)]
struct Answers {
    text: Option<Zeroizing<String>>,
    category: Option<Zeroizing<String>>,
    region: Option<Zeroizing<String>>,
    events_month: Option<Zeroizing<String>>,
    events_year: Option<Zeroizing<String>>,
}

impl Answers {
    fn prefill(&self) -> Prefill<'_> {
        let s = answer;
        Prefill {
            text: s(&self.text),
            category: s(&self.category),
            region: s(&self.region),
            events_month: s(&self.events_month),
            events_year: s(&self.events_year),
        }
    }
}

pub(super) async fn submit(State(state): State<Arc<AppState>>, multipart: Multipart) -> Response {
    // A burst waits briefly for a slot rather than being turned away; only
    // a sustained overload gets "busy, try later". Waiting costs nothing
    // but a socket: the body is not read until a slot is free.
    let slot = tokio::time::timeout(SLOT_WAIT, state.uploads.clone().acquire_owned()).await;
    let Ok(Ok(slot)) = slot else {
        return pages::busy();
    };
    let mut answers = Answers::default();
    match receive(&state, multipart, &mut answers, slot).await {
        Ok(()) => pages::received(),
        Err(Reject::BadRequest(msg)) => pages::render_form(
            &state,
            StatusCode::BAD_REQUEST,
            Some(msg),
            &answers.prefill(),
        ),
        Err(Reject::TooLarge(msg)) => pages::render_form(
            &state,
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(msg),
            &answers.prefill(),
        ),
        Err(Reject::Internal(e)) => {
            // The error names the failing step only; it holds nothing the
            // source sent.
            tracing::warn!(route = "/submit", status = 500, error = %e, "submission failed");
            pages::internal_error()
        }
    }
}

/// Reads the form, seals it and waits until it is durable.
async fn receive(
    state: &Arc<AppState>,
    mut multipart: Multipart,
    answers: &mut Answers,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), Reject> {
    let (tx, rx) = mpsc::channel::<Command>(CHANNEL_CHUNKS);
    let worker_state = state.clone();
    // The worker holds the upload slot: if the client goes away and this
    // handler is cancelled, the worker still runs to its end, and the slot
    // stays taken until it does.
    let worker = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        ingest(rx, &worker_state)
    });

    let submission = match feed(state, &mut multipart, answers, &tx).await {
        Ok(submission) => submission,
        Err(reject) => {
            // Dropping the sender makes the worker discard the spool. If the
            // worker itself failed first, its error is the real cause.
            drop(tx);
            drain(&mut multipart).await;
            return Err(match (reject, worker.await) {
                (Reject::Internal(_), Ok(Err(worker_error))) => worker_error,
                (reject, _) => reject,
            });
        }
    };
    let finish_sent = tx.send(Command::Finish(submission)).await.is_ok();
    drop(tx);
    worker
        .await
        .map_err(|_| Reject::Internal(worker_died()))??;
    if !finish_sent {
        return Err(Reject::Internal(worker_died()));
    }
    state.store.sync().await?;
    Ok(())
}

/// Reads and discards the rest of a refused upload, so that the client,
/// which is still sending, gets to read the error page instead of seeing
/// the connection reset. Bounded by the route's body limit and the
/// server's timeouts; stops at the first error.
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

fn worker_died() -> Error {
    Error::Seal {
        stage: "run the upload worker",
        source: "the worker stopped early".into(),
    }
}

/// Sends attachments to the worker and collects the text answers.
async fn feed(
    state: &AppState,
    multipart: &mut Multipart,
    answers: &mut Answers,
    tx: &mpsc::Sender<Command>,
) -> Result<Submission, Reject> {
    let limits = &state.config.limits;
    let mut total: u64 = 0;
    let mut files = 0usize;
    let send = |cmd| async {
        tx.send(cmd)
            .await
            .map_err(|_| Reject::Internal(worker_died()))
    };

    while let Some(mut field) = multipart.next_field().await.map_err(multipart_reject)? {
        let Some(name) = field.name().map(str::to_owned) else {
            return Err(Reject::BadRequest(
                "The form did not arrive complete. Please send it again.",
            ));
        };
        let slot = match name.as_str() {
            "files" => {
                let file_name = Zeroizing::new(field.file_name().unwrap_or("").to_owned());
                let mut started = false;
                while let Some(chunk) = field.chunk().await.map_err(multipart_reject)? {
                    if chunk.is_empty() {
                        continue;
                    }
                    total += chunk.len() as u64;
                    if total > limits.max_submission_bytes {
                        return Err(Reject::TooLarge(
                            "The files are larger than this service accepts.",
                        ));
                    }
                    if !started {
                        files += 1;
                        if files > limits.max_files {
                            return Err(Reject::TooLarge("Too many files were attached."));
                        }
                        send(Command::BeginFile(file_name.clone())).await?;
                        started = true;
                    }
                    send(Command::Data(chunk)).await?;
                }
                // A browser sends an empty, nameless part when no file was
                // chosen; a named empty file is kept.
                if !started && !file_name.is_empty() {
                    files += 1;
                    if files > limits.max_files {
                        return Err(Reject::TooLarge("Too many files were attached."));
                    }
                    send(Command::BeginFile(file_name)).await?;
                }
                continue;
            }
            "text" => &mut answers.text,
            "category" => &mut answers.category,
            "region" => &mut answers.region,
            "events_month" => &mut answers.events_month,
            "events_year" => &mut answers.events_year,
            _ => return Err(Reject::BadRequest("The form had an unexpected field.")),
        };
        if slot.is_some() {
            return Err(Reject::BadRequest("The form had a field twice."));
        }
        let max = if name == "text" {
            limits.max_text_chars.saturating_mul(4)
        } else {
            MAX_SHORT_FIELD_BYTES
        };
        *slot = Some(read_text(&mut field, max).await?);
    }
    validate(state, answers)
}

/// Reads one text part, at most `max` bytes, as UTF-8.
async fn read_text(field: &mut Field<'_>, max: usize) -> Result<Zeroizing<String>, Reject> {
    let mut buf = Zeroizing::new(Vec::new());
    while let Some(chunk) = field.chunk().await.map_err(multipart_reject)? {
        if buf.len() + chunk.len() > max {
            return Err(Reject::TooLarge(
                "The text is longer than this service accepts.",
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    let text = std::str::from_utf8(&buf)
        .map_err(|_| Reject::BadRequest("The text was not readable (not UTF-8)."))?;
    // Browsers send CRLF line ends from text areas; store plain LF.
    Ok(Zeroizing::new(text.replace("\r\n", "\n")))
}

/// An answer as text, empty when missing.
fn answer(v: &Option<Zeroizing<String>>) -> &str {
    v.as_deref().map_or("", |s| s.as_str())
}

/// Turns the answers into a submission, or says what is wrong.
fn validate(state: &AppState, a: &Answers) -> Result<Submission, Reject> {
    let cfg = &state.config;
    let get = |v| answer(v).trim();
    let text = a.text.as_deref().map_or("", |s| s.as_str());
    if text.chars().count() > cfg.limits.max_text_chars {
        return Err(Reject::TooLarge(
            "The text is longer than this service accepts.",
        ));
    }
    let category = get(&a.category);
    if !cfg.form.categories.iter().any(|c| c == category) {
        return Err(Reject::BadRequest(
            "Please choose what the testimony is about.",
        ));
    }
    let region = get(&a.region);
    if region.chars().count() > MAX_REGION_CHARS || region.chars().any(char::is_control) {
        return Err(Reject::BadRequest("The region is too long."));
    }
    let month = get(&a.events_month);
    let year = get(&a.events_year);
    let events = match (month, year) {
        ("", "") => None,
        (_, "") => {
            return Err(Reject::BadRequest(
                "Please choose the year too, or no month.",
            ));
        }
        (m, y) => {
            let y: i32 = y
                .parse()
                .map_err(|_| Reject::BadRequest("The year is not valid."))?;
            if !(pages::current_year() - 100..=pages::current_year()).contains(&y) {
                return Err(Reject::BadRequest("The year is not valid."));
            }
            if m.is_empty() {
                Some(format!("{y:04}"))
            } else {
                let m: u8 = m
                    .parse()
                    .ok()
                    .filter(|m| (1..=12).contains(m))
                    .ok_or(Reject::BadRequest("The month is not valid."))?;
                Some(format!("{y:04}-{m:02}"))
            }
        }
    };
    let mut fields = BTreeMap::new();
    fields.insert("category".to_owned(), category.to_owned());
    if !region.is_empty() {
        fields.insert("region".to_owned(), region.to_owned());
    }
    if let Some(e) = events {
        fields.insert("events_month".to_owned(), e);
    }
    Ok(Submission {
        form_version: cfg.form.version,
        language: "en".to_owned(),
        fields,
        text: text.to_owned(),
        received_day: Day::today(),
    })
}

/// The upload's blocking worker: spools attachments, then seals.
fn ingest(
    mut rx: mpsc::Receiver<Command>,
    state: &AppState,
) -> Result<crate::store::SubmissionMeta, Reject> {
    let mut spool = Spool::new(&state.spool_dir)?;
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Command::BeginFile(name) => spool.begin_file(&name),
            Command::Data(bytes) => spool.write(&bytes)?,
            Command::Finish(submission) => {
                if submission.text.trim().is_empty() && spool.file_count() == 0 {
                    return Err(Reject::BadRequest(
                        "Please write your testimony or attach a file.",
                    ));
                }
                let id = SubmissionId::from_bytes(random_bytes());
                let pending = state.store.begin(id)?;
                // Sealed to the current key epoch only: `recipients` were
                // built from the config's current epoch.
                return Ok(seal::seal(
                    submission,
                    spool,
                    &state.recipients,
                    state.config.epoch,
                    pending,
                )?);
            }
        }
    }
    Err(Reject::Internal(Error::Seal {
        stage: "receive the form",
        source: "the upload ended early".into(),
    }))
}
