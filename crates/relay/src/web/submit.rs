//! The submission intake: multipart form → spool → seal → store → ack.
//!
//! The async handler reads the multipart stream and passes attachment
//! chunks through a small bounded channel to one blocking worker per upload,
//! which spools and then seals them (file and sled I/O belong on blocking
//! threads). Memory per upload is the channel's few chunks plus age's and
//! tar's fixed buffers, whatever the upload's size. The body is read at a
//! pace the client must keep, with the parser's buffering bounded
//! ([`super::upload`]).
//!
//! The source is told "stored" only after the sealed submission is durable
//! ([`Store::sync`](crate::store::Store::sync)). Any failure before that
//! leaves nothing: the spool is an unnamed temporary file and an unfinished
//! store write removes itself (or is removed at the next start-up).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest as _, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use format::{Day, FieldLabel, SubmissionId, ThreadId};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::AppState;
use super::i18n::{Lang, Tr};
use super::pages::{self, FormError, Prefill};
use super::tally::Kind;
use super::upload::{BodyReader, Stop};
use crate::Error;
use crate::followup::{self, Codename, DeriveError};
use crate::form::{Form, QuestionKind};
use crate::keys::random_bytes;
use crate::seal::{self, Spool, Submission};
use crate::store::ThreadRecord;

/// How long an upload waits for a free slot before "busy".
pub(super) const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// Chunks in flight between the handler and the worker. Each is at most
/// hyper's 64 KiB read buffer, so at most 1 MiB per upload; measured on a
/// 256 MiB upload over loopback, 4 left the reader waiting for the worker
/// (5.8 s), 16 to 64 did not (5.3 s).
const CHANNEL_CHUNKS: usize = 16;
/// Longest region answer, in characters.
const MAX_REGION_CHARS: usize = 200;
/// Longest short answer read from the form, in bytes.
const MAX_SHORT_FIELD_BYTES: usize = 4 * MAX_REGION_CHARS;
/// How long a submission that asked for a codename waits for a derivation
/// slot; past it, the testimony is still stored, without a codename.
const DERIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often (in bytes of attachments) a streaming upload checks that it
/// still fits the store's quota and the disk's reserve.
const ADMIT_EVERY: u64 = 64 * 1024;

/// Why a submission was refused. Messages (Fluent keys) are shown to the
/// source in the page's language, next to the field they concern.
#[derive(Debug)]
pub(super) enum Reject {
    /// Malformed, incomplete or unanswered form (400).
    BadRequest(Vec<FormError>),
    /// Over a limit (413).
    TooLarge(FormError),
    /// No room: the store's quota is reached or the disk is full (503,
    /// "busy, try later"). Logged, never shown.
    Full(Error),
    /// The client paused too long or sent too slowly (408).
    TimedOut,
    /// Our fault (500). Logged, never shown.
    Internal(Error),
    /// An OpenRosa instance that is not one of the served form (400; the
    /// reason goes into the app's `OpenRosaResponse`).
    BadInstance(crate::openrosa::InstanceError),
}

impl From<Error> for Reject {
    fn from(e: Error) -> Self {
        if e.is_out_of_space() {
            Reject::Full(e)
        } else {
            Reject::Internal(e)
        }
    }
}

fn form_error(field: Option<&str>, message: &'static str) -> FormError {
    FormError {
        field: field.map(str::to_owned),
        message,
    }
}

fn bad(field: Option<&str>, message: &'static str) -> Reject {
    Reject::BadRequest(vec![form_error(field, message)])
}

fn multipart_reject(e: MultipartError) -> Reject {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Reject::TooLarge(form_error(Some("files"), "error-files-too-large"))
    } else {
        bad(None, "error-incomplete")
    }
}

impl From<Stop> for Reject {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Multipart(e) => multipart_reject(e),
            Stop::Stalled => Reject::TimedOut,
        }
    }
}

/// Commands from the handler to the upload's worker.
enum Command {
    BeginFile(Zeroizing<String>),
    Data(Bytes),
    Finish(Submission),
}

/// The text answers as they arrive, by field name (zeroized on drop), and
/// for an OpenRosa instance what the intake learnt of it.
#[derive(Default)]
pub(super) struct Answers(
    BTreeMap<String, Zeroizing<String>>,
    pub(super) Option<OpenRosaSeen>,
);

/// What the OpenRosa intake learnt of an instance, for its answer and for
/// joining the POSTs of one split submission.
#[derive(Debug, Clone)]
pub(super) struct OpenRosaSeen {
    /// `meta/instanceID`, if the instance had one (memory only).
    pub(super) instance_id: Option<Zeroizing<String>>,
    /// SHA-256 of the instance as sent.
    pub(super) xml_sha256: [u8; 32],
    /// Not the last POST of a split submission (`*isIncomplete*`).
    pub(super) incomplete: bool,
    /// The app's language, if the instance named one of ours.
    pub(super) lang: Option<Lang>,
}

impl Answers {
    fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", |v| v.as_str())
    }

    /// The testimony text typed so far.
    pub(super) fn text(&self) -> &str {
        self.get("text")
    }

    fn prefill(&self) -> Prefill<'_> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// Where a submission goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Intake {
    /// The questionnaire at `/{lang}/`: a new testimony, which may ask for
    /// a codename (`followup=yes`).
    Form,
    /// More testimony from a source with a follow-up session: text and
    /// files only, joining the session's thread.
    FollowUp(ThreadId),
    /// An instance of the XForm from a field app (`/openrosa/submission`).
    OpenRosa,
}

/// What the source is told after a stored submission.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Their new codename, shown once.
    pub(super) codename: Option<Codename>,
    /// They asked for a codename but none could be made (the testimony is
    /// stored all the same).
    pub(super) codename_failed: bool,
    /// The same form was stored before (a reload): nothing stored now.
    pub(super) already: bool,
    /// An OpenRosa instance refused by the pre-store check (409).
    pub(super) conflict: bool,
}

/// A check of an OpenRosa instance before it is stored: `Err(OK)` for one
/// stored before, `Err(CONFLICT)` for one that contradicts it.
pub(super) type InstanceCheck<'a> =
    dyn Fn(&OpenRosaSeen) -> Result<(), StatusCode> + Send + Sync + 'a;

/// What became of an OpenRosa submission that was not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    /// Stored now, durably.
    Now,
    /// Its last part was stored before: nothing stored now.
    Before,
    /// Its `instanceID` came with another instance: nothing stored.
    Conflict,
}

/// Reads, seals and stores one OpenRosa submission (the handler holds the
/// upload slot and has checked the content type).
pub(super) async fn receive_openrosa(
    state: &Arc<AppState>,
    lang: Lang,
    multipart: Multipart,
    reader: BodyReader,
    answers: &mut Answers,
    slot: tokio::sync::OwnedSemaphorePermit,
    check: &InstanceCheck<'_>,
) -> Result<Stored, Reject> {
    let outcome = receive(
        state,
        lang,
        Intake::OpenRosa,
        multipart,
        reader,
        answers,
        slot,
        Some(check),
    )
    .await?;
    Ok(if outcome.conflict {
        Stored::Conflict
    } else if outcome.already {
        Stored::Before
    } else {
        Stored::Now
    })
}

/// Why an intake ended without storing anything.
pub(super) enum Failure {
    /// Turned away before the body was read (bad content type, busy).
    Early(Response),
    /// Refused while reading or sealing.
    Refused(Reject),
}

pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    request: Request,
) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return pages::not_found_page(&state);
    };
    let mut answers = Answers::default();
    match take(&state, lang, request, Intake::Form, &mut answers).await {
        Ok(outcome) => pages::received(lang, &outcome),
        Err(Failure::Early(response)) => response,
        Err(Failure::Refused(reject)) => {
            let (status, errors) = refusal(&state, reject);
            match errors {
                Some(errors) => {
                    pages::render_form(&state, lang, status, &errors, &answers.prefill())
                }
                None if status == StatusCode::SERVICE_UNAVAILABLE => pages::busy(lang),
                None => pages::internal_error(lang),
            }
        }
    }
}

/// The status of a refusal and, for the source's own mistakes, what to
/// show next to the fields. Counts what the operator must know (never
/// anything the source sent) in the state's tally, which reports it at
/// most once a day: a log line per refusal would date the request.
pub(super) fn refusal(state: &AppState, reject: Reject) -> (StatusCode, Option<Vec<FormError>>) {
    match reject {
        Reject::BadRequest(errors) => (StatusCode::BAD_REQUEST, Some(errors)),
        // Only the OpenRosa intake refuses with it, and answers it itself.
        Reject::BadInstance(_) => (
            StatusCode::BAD_REQUEST,
            Some(vec![form_error(None, "error-incomplete")]),
        ),
        Reject::TooLarge(error) => (StatusCode::PAYLOAD_TOO_LARGE, Some(vec![error])),
        // A client still trickling never reads this; one that stalled for a
        // moment (a phone changing networks) is told to send again.
        Reject::TimedOut => (
            StatusCode::REQUEST_TIMEOUT,
            Some(vec![form_error(None, "error-incomplete")]),
        ),
        Reject::Full(e) => {
            // Nothing was stored: the source may try again later. The
            // operator learns why from the daily report (the reason holds
            // nothing the source sent).
            state.tally.count(Kind::Refused, &e);
            (StatusCode::SERVICE_UNAVAILABLE, None)
        }
        Reject::Internal(e) => {
            // The error names the failing step only; it holds nothing the
            // source sent.
            state.tally.count(Kind::Failed, &e);
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    }
}

/// Reads, seals and stores one submission; the answers stay in `answers`
/// so that a refused form can be shown again as it was.
pub(super) async fn take(
    state: &Arc<AppState>,
    lang: Lang,
    request: Request,
    intake: Intake,
    answers: &mut Answers,
) -> Result<Outcome, Failure> {
    let (reader, request) = BodyReader::new(&state.config.limits, request);
    // Only checks the content type: nothing of the body is read yet.
    let multipart = match Multipart::from_request(request, state).await {
        Ok(multipart) => multipart,
        Err(rejection) => return Err(Failure::Early(rejection.into_response())),
    };
    // A burst waits briefly for a slot rather than being turned away; only
    // a sustained overload gets "busy, try later". Waiting costs nothing
    // but a socket: the body is not read until a slot is free.
    let slot = tokio::time::timeout(SLOT_WAIT, state.uploads.clone().acquire_owned()).await;
    let Ok(Ok(slot)) = slot else {
        return Err(Failure::Early(pages::busy(lang)));
    };
    receive(state, lang, intake, multipart, reader, answers, slot, None)
        .await
        .map_err(Failure::Refused)
}

/// Reads the form, seals it and waits until it is durable.
#[allow(clippy::too_many_arguments)]
async fn receive(
    state: &Arc<AppState>,
    lang: Lang,
    intake: Intake,
    mut multipart: Multipart,
    mut reader: BodyReader,
    answers: &mut Answers,
    slot: tokio::sync::OwnedSemaphorePermit,
    check: Option<&InstanceCheck<'_>>,
) -> Result<Outcome, Reject> {
    let (tx, rx) = mpsc::channel::<Command>(CHANNEL_CHUNKS);
    let worker_state = state.clone();
    // The worker holds the upload slot: if the client goes away and this
    // handler is cancelled, the worker still runs to its end, and the slot
    // stays taken until it does.
    let worker = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        ingest(rx, &worker_state)
    });

    let fed = match intake {
        Intake::OpenRosa => feed_openrosa(state, &mut multipart, &mut reader, answers, &tx).await,
        _ => {
            feed(
                state,
                lang,
                intake,
                &mut multipart,
                &mut reader,
                answers,
                &tx,
            )
            .await
        }
    };
    let mut submission = match fed {
        Ok(submission) => submission,
        Err(reject) => {
            // Dropping the sender makes the worker discard the spool. If the
            // worker itself failed first, its error is the real cause.
            drop(tx);
            drain(&mut multipart, &mut reader).await;
            return Err(match (reject, worker.await) {
                (Reject::Internal(_), Ok(Err(worker_error))) => worker_error,
                (reject, _) => reject,
            });
        }
    };
    let mut outcome = Outcome::default();
    // An OpenRosa instance stored before, or contradicting one: nothing is
    // stored (the worker discards the spool).
    if let (Some(check), Some(seen)) = (check, answers.1.as_ref()) {
        match check(seen) {
            Ok(()) => {}
            Err(status) => {
                drop(tx);
                let _ = worker.await;
                drain(&mut multipart, &mut reader).await;
                outcome.already = status == StatusCode::OK;
                outcome.conflict = status == StatusCode::CONFLICT;
                return Ok(outcome);
            }
        }
    }
    // A form whose submission is stored already (a reload of the success
    // page): store nothing, draw no codename (`once.rs`).
    let token = matches!(intake, Intake::Form)
        .then(|| super::once::FormTokens::parse(answers.get(super::once::FIELD)))
        .flatten();
    if let Some(t) = &token
        && state.form_tokens.was_used(t)
    {
        drop(tx);
        let _ = worker.await;
        outcome.already = true;
        return Ok(outcome);
    }
    let mut new_thread = None;
    if matches!(intake, Intake::Form)
        && answers.get("followup") == "yes"
        && let Some(f) = state.followup.as_ref()
    {
        match new_codename(state, f).await {
            Ok((codename, lookup, thread)) => {
                submission.thread = Some(thread);
                new_thread = Some((lookup, thread));
                outcome.codename = Some(codename);
            }
            Err(e) => {
                // The testimony is stored all the same; the source is told
                // there is no codename this time.
                state.tally.count(Kind::NoCodename, &e);
                outcome.codename_failed = true;
            }
        }
    }
    let stored = async {
        let finish_sent = tx.send(Command::Finish(submission)).await.is_ok();
        drop(tx);
        let (id, _) = worker
            .await
            .map_err(|_| Reject::Internal(worker_died()))??;
        if !finish_sent {
            return Err(Reject::Internal(worker_died()));
        }
        state.store.commit(id).await?;
        Ok(())
    }
    .await;
    if let (Err(_), Some((lookup, thread))) = (&stored, new_thread) {
        // The source never sees this codename: forget its thread.
        let _ = state.store.remove_thread(&lookup.0, thread);
    }
    if let (Ok(()), Some(t)) = (&stored, token) {
        state.form_tokens.mark_used(t);
    }
    stored.map(|()| outcome)
}

/// Draws a codename and records its thread (durable with the submission's
/// commit round). Waits for a derivation slot rather than refusing.
async fn new_codename(
    state: &AppState,
    f: &followup::Followup,
) -> Result<(Codename, followup::LookupId, ThreadId), Error> {
    let codename = Codename::generate();
    let derived = match f.derive(codename.duplicate(), Some(DERIVE_WAIT)).await {
        Ok(d) => d,
        Err(DeriveError::Busy) => {
            return Err(Error::Followup("every derivation slot stayed busy".into()));
        }
        Err(DeriveError::Failed(e)) => return Err(e),
    };
    let record = ThreadRecord {
        recipient: derived.secret.recipient()?,
        created_day: Day::today(),
    };
    let thread = followup::new_thread_id();
    state
        .store
        .create_thread(&derived.lookup.0, thread, &record)?;
    Ok((codename, derived.lookup, thread))
}

/// Reads and discards the rest of a refused upload, so that the client,
/// which is still sending, gets to read the error page instead of seeing
/// the connection reset. Bounded by the route's body limit and the body's
/// pace (after a stall, it reads nothing); stops at the first error.
async fn drain(multipart: &mut Multipart, reader: &mut BodyReader) {
    while let Ok(Some(mut field)) = reader.next_field(multipart).await {
        while let Ok(Some(_)) = reader.chunk(&mut field).await {}
    }
}

fn worker_died() -> Error {
    Error::Seal {
        stage: "run the upload worker",
        source: "the worker stopped early".into(),
    }
}

/// The text fields a form may send: the built-in questions and the
/// operator's extra ones (month questions as `KEY_month` and `KEY_year`).
fn allowed_fields(form: &Form, followup: bool) -> Vec<String> {
    let mut names: Vec<String> = ["text", "category", "region", "events_month", "events_year"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for q in &form.question {
        match q.kind {
            QuestionKind::Month => {
                names.push(format!("{}_month", q.key));
                names.push(format!("{}_year", q.key));
            }
            QuestionKind::Text | QuestionKind::Choice => names.push(q.key.clone()),
        }
    }
    if followup {
        names.push("followup".to_owned());
    }
    // The one-time token (`once.rs`): read, never stored (`validate` takes
    // only the questions' keys).
    names.push(super::once::FIELD.to_owned());
    names
}

/// Sends attachments to the worker and collects the text answers.
async fn feed(
    state: &AppState,
    lang: Lang,
    intake: Intake,
    multipart: &mut Multipart,
    reader: &mut BodyReader,
    answers: &mut Answers,
    tx: &mpsc::Sender<Command>,
) -> Result<Submission, Reject> {
    let limits = &state.config.limits;
    let allowed = match intake {
        Intake::Form => allowed_fields(&state.config.form, state.followup.is_some()),
        Intake::FollowUp(_) => vec!["text".to_owned()],
        Intake::OpenRosa => Vec::new(),
    };
    let mut total: u64 = 0;
    let mut files = 0usize;
    let mut file_parts = 0usize;
    let send = |cmd| async {
        tx.send(cmd)
            .await
            .map_err(|_| Reject::Internal(worker_died()))
    };
    let too_many = || Reject::TooLarge(form_error(Some("files"), "error-too-many-files"));
    // Every submission stores at least the padding floor; refuse before
    // reading anything if even that does not fit, then again as attachments
    // stream in. (The store enforces the quota exactly as it writes.)
    let upcoming = |total: u64| total.max(format::MIN_PADDED_PLAINTEXT);
    state.store.admit(upcoming(0))?;
    let mut next_admit = ADMIT_EVERY;

    while let Some(mut field) = reader.next_field(multipart).await? {
        let Some(name) = field.name().map(str::to_owned) else {
            return Err(bad(None, "error-incomplete"));
        };
        if name == "files" {
            // One part per file, or one empty part when none was chosen:
            // more is a flood of parts.
            file_parts += 1;
            if file_parts > limits.max_files.max(1) {
                return Err(too_many());
            }
            let file_name = Zeroizing::new(field.file_name().unwrap_or("").to_owned());
            let mut started = false;
            while let Some(chunk) = reader.chunk(&mut field).await? {
                if chunk.is_empty() {
                    continue;
                }
                total += chunk.len() as u64;
                if total > limits.max_submission_bytes {
                    return Err(Reject::TooLarge(form_error(
                        Some("files"),
                        "error-files-too-large",
                    )));
                }
                if total >= next_admit {
                    state.store.admit(upcoming(total))?;
                    next_admit = total.saturating_add(ADMIT_EVERY);
                }
                if !started {
                    files += 1;
                    if files > limits.max_files {
                        return Err(too_many());
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
                    return Err(too_many());
                }
                send(Command::BeginFile(file_name)).await?;
            }
            continue;
        }
        if !allowed.contains(&name) {
            return Err(bad(None, "error-unexpected-field"));
        }
        if answers.0.contains_key(&name) {
            return Err(bad(None, "error-duplicate-field"));
        }
        let max = if name == "text" {
            limits.max_text_chars.saturating_mul(4)
        } else {
            MAX_SHORT_FIELD_BYTES
        };
        let value = read_text(reader, &mut field, max).await?;
        answers.0.insert(name, value);
    }
    match intake {
        Intake::Form | Intake::OpenRosa => validate(state, lang, answers),
        Intake::FollowUp(thread) => validate_followup(state, lang, answers, thread),
    }
}

/// Reads an OpenRosa submission: the instance XML first (as ODK Collect
/// and Enketo send it), then the attachments it names, and maps its
/// answers onto the web form's, so that the same `validate` makes the same
/// testimony. The instance, reduced to what the form asks, is sealed as the
/// first file (`openrosa::INSTANCE_FILE_NAME`). A part the instance does
/// not name is read and dropped, and counted with the instance's dropped
/// elements.
async fn feed_openrosa(
    state: &AppState,
    multipart: &mut Multipart,
    reader: &mut BodyReader,
    answers: &mut Answers,
    tx: &mpsc::Sender<Command>,
) -> Result<Submission, Reject> {
    use crate::openrosa::{self, InstanceError};
    let limits = &state.config.limits;
    let send = |cmd| async {
        tx.send(cmd)
            .await
            .map_err(|_| Reject::Internal(worker_died()))
    };
    let upcoming = |total: u64| total.max(format::MIN_PADDED_PLAINTEXT);
    state.store.admit(upcoming(0))?;

    let missing = || {
        Reject::BadInstance(InstanceError::NotXml(
            "no xml_submission_file part came first".into(),
        ))
    };
    let Some(mut field) = reader.next_field(multipart).await? else {
        return Err(missing());
    };
    if field.name() != Some("xml_submission_file") {
        return Err(missing());
    }
    let xml_type = field.content_type().map(|t| t.to_ascii_lowercase());
    if !xml_type
        .as_deref()
        .is_some_and(|t| t.starts_with("text/xml") || t.starts_with("application/xml"))
    {
        return Err(Reject::BadInstance(InstanceError::NotXml(
            "the xml_submission_file part is not text/xml".into(),
        )));
    }
    let mut xml = Zeroizing::new(Vec::new());
    while let Some(chunk) = reader.chunk(&mut field).await? {
        if xml.len() + chunk.len() > openrosa::MAX_INSTANCE_BYTES {
            return Err(Reject::BadInstance(InstanceError::TooLarge("bytes")));
        }
        xml.extend_from_slice(&chunk);
    }
    drop(field);
    let xform = &state.xform;
    let names = openrosa::answer_elements(&state.config.form);
    let uploads: Vec<&str> = openrosa::uploads(limits.max_files).collect();
    let instance = openrosa::parse_instance(&xml, &xform.version, &names, &uploads)
        .map_err(Reject::BadInstance)?;
    let xml_sha256 = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&xml[..]).into()
    };
    drop(xml);
    for (name, value) in &instance.answers {
        answers.0.insert(name.clone(), value.clone());
    }
    let mut total = instance.kept_xml.len() as u64;
    send(Command::BeginFile(Zeroizing::new(
        openrosa::INSTANCE_FILE_NAME.to_owned(),
    )))
    .await?;
    send(Command::Data(Bytes::copy_from_slice(&instance.kept_xml))).await?;

    let mut dropped = instance.dropped;
    let mut incomplete = false;
    let mut received: Vec<Zeroizing<String>> = Vec::new();
    let mut parts = 0usize;
    let mut next_admit = ADMIT_EVERY;
    let too_many = || Reject::TooLarge(form_error(Some("files"), "error-too-many-files"));
    while let Some(mut field) = reader.next_field(multipart).await? {
        parts += 1;
        // The named attachments, one `*isIncomplete*`, and a few parts an
        // app may add: more is a flood of parts.
        if parts > limits.max_files.saturating_add(4) {
            return Err(too_many());
        }
        let name = field.name().unwrap_or("").to_owned();
        if name == "*isIncomplete*" {
            let v = read_text(reader, &mut field, 16).await?;
            incomplete = v.trim().eq_ignore_ascii_case("yes");
            continue;
        }
        let file_name = Zeroizing::new(field.file_name().unwrap_or(&name).to_owned());
        let wanted = instance
            .files
            .iter()
            .any(|f| f.as_str() == file_name.as_str())
            && !received.iter().any(|f| f.as_str() == file_name.as_str());
        if !wanted {
            // Not named by the instance (or sent twice): read past it.
            while reader.chunk(&mut field).await?.is_some() {}
            dropped += 1;
            continue;
        }
        if received.len() + 1 >= limits.max_files {
            return Err(too_many());
        }
        send(Command::BeginFile(file_name.clone())).await?;
        received.push(file_name);
        while let Some(chunk) = reader.chunk(&mut field).await? {
            total += chunk.len() as u64;
            if total > limits.max_submission_bytes {
                return Err(Reject::TooLarge(form_error(
                    Some("files"),
                    "error-files-too-large",
                )));
            }
            if total >= next_admit {
                state.store.admit(upcoming(total))?;
                next_admit = total.saturating_add(ADMIT_EVERY);
            }
            send(Command::Data(chunk)).await?;
        }
    }
    let lang = instance
        .language
        .unwrap_or_else(|| state.config.form.default_lang());
    let mut submission = if instance.encrypted {
        // Encrypted on the phone (ODK encrypted forms): there is nothing
        // to validate; the reviewer's `--odk-key` decrypts it.
        Submission {
            form_version: state.config.form.version,
            language: lang.code().to_owned(),
            fields: BTreeMap::new(),
            labels: BTreeMap::new(),
            text: String::new(),
            received_day: Day::today(),
            thread: None,
        }
    } else {
        validate(state, lang, answers)?
    };
    let mut note = |key: &str, value: String, question: &str, answer: Option<String>| {
        submission.labels.insert(
            key.to_owned(),
            FieldLabel {
                question: question.to_owned(),
                answer,
            },
        );
        submission.fields.insert(key.to_owned(), value);
    };
    note(
        "channel",
        "openrosa".into(),
        "Sent through",
        Some("a field app (OpenRosa)".into()),
    );
    if instance.encrypted {
        note(
            "openrosa_encrypted",
            "yes".into(),
            "Encrypted on the phone (ODK encrypted form)",
            Some("open it with `reviewer open --odk-key`".into()),
        );
    }
    if dropped > 0 {
        note(
            "openrosa_dropped",
            dropped.to_string(),
            "Unrequested fields dropped by the relay",
            None,
        );
    }
    let absent = instance.files.len().saturating_sub(received.len());
    if incomplete || absent > 0 {
        note(
            "openrosa_part",
            if incomplete { "incomplete" } else { "last" }.into(),
            "Part of a split submission",
            Some(format!(
                "{} of the instance's {} files are in this part; the others come in another part with the same instance",
                received.len(),
                instance.files.len()
            )),
        );
    }
    answers.1 = Some(OpenRosaSeen {
        instance_id: instance.instance_id.clone(),
        xml_sha256,
        incomplete,
        lang: instance.language,
    });
    Ok(submission)
}

/// A follow-up: text and files, in the session's thread. Its one field
/// tells reviewers what it is.
fn validate_followup(
    state: &AppState,
    lang: Lang,
    a: &Answers,
    thread: ThreadId,
) -> Result<Submission, Reject> {
    let text = a.get("text");
    if text.chars().count() > state.config.limits.max_text_chars {
        return Err(Reject::TooLarge(form_error(
            Some("text"),
            "error-text-too-long",
        )));
    }
    let en = Tr { lang: Lang::En };
    Ok(Submission {
        form_version: state.config.form.version,
        language: lang.code().to_owned(),
        fields: [("kind".to_owned(), "followup".to_owned())].into(),
        labels: [(
            "kind".to_owned(),
            FieldLabel {
                question: en.t("followup-kind-question"),
                answer: Some(en.t("followup-kind-answer")),
            },
        )]
        .into(),
        text: text.to_owned(),
        received_day: Day::today(),
        thread: Some(thread),
    })
}

/// Reads one text part, at most `max` bytes, as UTF-8.
///
/// The part's chunks are kept as they came (multer's and hyper's buffers,
/// which the zeroizing allocator wipes when they go) and copied once into
/// a zeroizing buffer of the final size, so that no reallocation leaves a
/// partial copy behind; line ends are then normalised in place.
async fn read_text(
    reader: &mut BodyReader,
    field: &mut Field<'_>,
    max: usize,
) -> Result<Zeroizing<String>, Reject> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = reader.chunk(field).await? {
        if len + chunk.len() > max {
            return Err(Reject::TooLarge(form_error(
                Some("text"),
                "error-text-too-long",
            )));
        }
        len += chunk.len();
        chunks.push(chunk);
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(len));
    for chunk in chunks {
        buf.extend_from_slice(&chunk);
    }
    text_from_bytes(buf)
}

/// A text part's bytes as UTF-8 text with LF line ends (browsers send CRLF
/// from text areas), in the same allocation.
fn text_from_bytes(mut buf: Zeroizing<Vec<u8>>) -> Result<Zeroizing<String>, Reject> {
    if std::str::from_utf8(&buf).is_err() {
        return Err(bad(Some("text"), "error-not-utf8"));
    }
    let mut write = 0;
    for read in 0..buf.len() {
        let b = buf[read];
        if b == b'\r' && buf.get(read + 1) == Some(&b'\n') {
            continue;
        }
        buf[write] = b;
        write += 1;
    }
    // What `truncate` leaves past the end is zeroized here, not left for
    // the free.
    zeroize::Zeroize::zeroize(&mut buf[write..]);
    buf.truncate(write);
    let bytes = std::mem::take(&mut *buf);
    // Dropping a CR before an LF keeps UTF-8 valid.
    String::from_utf8(bytes)
        .map(Zeroizing::new)
        .map_err(|_| bad(Some("text"), "error-not-utf8"))
}

/// A month question's answer (`YYYY-MM`, or `YYYY`), if any.
fn month_answer(
    month: &str,
    year: &str,
    field: &str,
    errors: &mut Vec<FormError>,
) -> Option<String> {
    match (month.trim(), year.trim()) {
        ("", "") => None,
        (_, "") => {
            errors.push(form_error(Some(field), "error-month-needs-year"));
            None
        }
        (m, y) => {
            let now = pages::current_year();
            let Some(y) = y
                .parse::<i32>()
                .ok()
                .filter(|y| (now - 100..=now).contains(y))
            else {
                errors.push(form_error(Some(field), "error-year"));
                return None;
            };
            if m.is_empty() {
                return Some(format!("{y:04}"));
            }
            match m.parse::<u8>().ok().filter(|m| (1..=12).contains(m)) {
                Some(m) => Some(format!("{y:04}-{m:02}")),
                None => {
                    errors.push(form_error(Some(field), "error-month"));
                    None
                }
            }
        }
    }
}

/// Turns the answers into a submission, or lists what is wrong, each next
/// to its field. Answers are stored by stable key, with the English wording
/// of each question and chosen answer so reviewers see them labelled.
fn validate(state: &AppState, lang: Lang, a: &Answers) -> Result<Submission, Reject> {
    let cfg = &state.config;
    let form = &cfg.form;
    let en = Tr { lang: Lang::En };
    let mut errors = Vec::new();
    let mut fields = BTreeMap::new();
    let mut labels = BTreeMap::new();
    let mut answer = |key: &str, value: String, question: String, label: Option<&str>| {
        labels.insert(
            key.to_owned(),
            FieldLabel {
                question,
                answer: label.map(str::to_owned),
            },
        );
        fields.insert(key.to_owned(), value);
    };

    let text = a.get("text");
    if text.chars().count() > cfg.limits.max_text_chars {
        return Err(Reject::TooLarge(form_error(
            Some("text"),
            "error-text-too-long",
        )));
    }
    match form.category(a.get("category").trim()) {
        Some(c) => answer(
            "category",
            c.key.clone(),
            en.t("field-category"),
            Some(&c.en),
        ),
        None => errors.push(form_error(Some("category"), "error-category")),
    }
    let region = a.get("region").trim();
    if !region.is_empty() {
        if form.region.is_empty() {
            if region.chars().count() > MAX_REGION_CHARS || region.chars().any(char::is_control) {
                errors.push(form_error(Some("region"), "error-region"));
            } else {
                answer("region", region.to_owned(), en.t("field-region"), None);
            }
        } else {
            match form.region(region) {
                Some(r) => answer("region", r.key.clone(), en.t("field-region"), Some(&r.en)),
                None => errors.push(form_error(Some("region"), "error-region")),
            }
        }
    }
    if let Some(m) = month_answer(
        a.get("events_month"),
        a.get("events_year"),
        "events",
        &mut errors,
    ) {
        answer("events_month", m, en.t("field-when"), None);
    }
    for q in &form.question {
        let field = q.key.as_str();
        let value = match q.kind {
            QuestionKind::Text => {
                let v = a.get(&q.key).trim();
                if v.chars().count() > MAX_REGION_CHARS || v.chars().any(char::is_control) {
                    errors.push(form_error(Some(field), "error-region"));
                    None
                } else {
                    (!v.is_empty()).then(|| (v.to_owned(), None))
                }
            }
            QuestionKind::Choice => {
                let v = a.get(&q.key).trim();
                if v.is_empty() {
                    None
                } else {
                    match q.option.iter().find(|o| o.key == v) {
                        Some(o) => Some((o.key.clone(), Some(o.en.as_str()))),
                        None => {
                            errors.push(form_error(Some(field), "error-choice"));
                            None
                        }
                    }
                }
            }
            QuestionKind::Month => month_answer(
                a.get(&format!("{}_month", q.key)),
                a.get(&format!("{}_year", q.key)),
                field,
                &mut errors,
            )
            .map(|m| (m, None)),
        };
        match value {
            Some((v, label)) => answer(&q.key, v, q.label.en.clone(), label),
            None if q.required && !errors.iter().any(|e| e.field.as_deref() == Some(field)) => {
                errors.push(form_error(Some(field), "error-field-required"));
            }
            None => {}
        }
    }
    if !errors.is_empty() {
        return Err(Reject::BadRequest(errors));
    }
    Ok(Submission {
        form_version: form.version,
        language: lang.code().to_owned(),
        fields,
        labels,
        text: text.to_owned(),
        received_day: Day::today(),
        thread: None,
    })
}

/// The upload's blocking worker: spools attachments, then seals.
fn ingest(
    mut rx: mpsc::Receiver<Command>,
    state: &AppState,
) -> Result<(SubmissionId, crate::store::SubmissionMeta), Reject> {
    let mut spool = Spool::new(&state.spools)?;
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Command::BeginFile(name) => spool.begin_file(&name)?,
            Command::Data(bytes) => spool.write(&bytes)?,
            Command::Finish(submission) => {
                if submission.text.trim().is_empty() && spool.file_count() == 0 {
                    return Err(bad(Some("text"), "error-empty"));
                }
                let id = SubmissionId::from_bytes(random_bytes());
                let pending = state.store.begin(id)?;
                // Sealed to the current key epoch only: `recipients` were
                // built from the config's current epoch.
                let (pending, sealed) = seal::seal(
                    submission,
                    spool,
                    &state.recipients,
                    state.config.epoch,
                    pending,
                )?;
                let meta = pending.finish(
                    sealed.received_day,
                    sealed.epoch,
                    sealed.key_set,
                    sealed.thread,
                )?;
                return Ok((id, meta));
            }
        }
    }
    Err(Reject::Internal(Error::Seal {
        stage: "receive the form",
        source: "the upload ended early".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_parts_lose_their_crs_in_place_and_must_be_utf8() {
        let raw = "Строка 1\r\nline 2\r\n\r\nend\r".as_bytes().to_vec();
        let ptr = raw.as_ptr();
        let text = text_from_bytes(Zeroizing::new(raw)).ok().unwrap();
        assert_eq!(text.as_str(), "Строка 1\nline 2\n\nend\r");
        assert_eq!(text.as_ptr(), ptr, "the same allocation, not a copy");
        assert!(text_from_bytes(Zeroizing::new(vec![b'a', 0xff])).is_err());
    }
}
