//! The OpenRosa endpoints field apps talk to (ODK Collect, Tella,
//! KoboCollect, Enketo): the server URL to give them is
//! `https://RELAY/openrosa` (or the onion's).
//!
//! - `GET /openrosa/formList`: the OpenRosa 1.0 form list (one form).
//! - `GET /openrosa/forms/relay-testimony.xml`: the XForm.
//! - `HEAD /openrosa/submission`: 204, with the largest body accepted.
//! - `POST /openrosa/submission`: one instance and its attachments,
//!   sealed exactly as the web form's submissions are; 201 once durable.
//!
//! Every answer carries `X-OpenRosa-Version: 1.0`; success is 201, never
//! 200 (a captive portal answers 200, and an app must not take that for
//! "stored"). Nothing of a request is logged or stored but the sealed
//! submission: not the User-Agent (Collect's names the phone model and
//! Android version), not the `deviceID` query parameter of the form list,
//! no header.
//!
//! A split submission (an app sends the instance again with the next
//! attachments, `*isIncomplete*` on all but the last POST) is sealed part
//! by part, each part a submission of its own whose testimony says so; the
//! parts carry the same instance, so the reviewer sees them together (the
//! instance's `meta/instanceID` is in each sealed part). To refuse the same
//! `instanceID` with another instance (409), and to answer a repeated last
//! POST (an app that never saw our 201) without storing it twice, the relay
//! remembers, in memory only and for [`REMEMBER`], an HMAC of each
//! `instanceID` under a key made at start, with the SHA-256 of its
//! instance: never the id itself, never on disk, never in a batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{FromRequest as _, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use hmac::Mac as _;

use super::AppState;
use super::i18n::{Lang, Tr};
use super::submit::{self, Answers, Reject};

/// How long an instance is remembered: an app retries a send it did not
/// see answered within this (a phone that found a network again), and a
/// split submission's parts come one after another.
pub(super) const REMEMBER: Duration = Duration::from_secs(24 * 60 * 60);
/// The most instances remembered at once; past it the oldest is forgotten
/// (a repeated send of it is then stored again, which a reviewer sees as a
/// duplicate: nothing is lost).
const MAX_REMEMBERED: usize = 10_000;
/// Seconds an app is asked to wait when the relay is busy.
const RETRY_AFTER: &str = "120";

/// What is remembered of one instance.
#[derive(Debug, Clone, Copy)]
struct Seen {
    xml_sha256: [u8; 32],
    /// Its last POST (the one without `*isIncomplete*`) is stored.
    complete: bool,
    at: Instant,
}

/// Instances seen lately, by HMAC of their `instanceID` (memory only).
#[derive(Debug)]
pub(crate) struct Instances {
    key: zeroize::Zeroizing<[u8; 32]>,
    seen: Mutex<HashMap<[u8; 32], Seen>>,
}

impl Default for Instances {
    fn default() -> Self {
        Self {
            key: zeroize::Zeroizing::new(crate::keys::random_bytes()),
            seen: Mutex::new(HashMap::new()),
        }
    }
}

/// What to do with an instance before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Store,
    /// The same instance's last POST is stored already.
    Already,
    /// The same `instanceID` with another instance.
    Conflict,
}

impl Instances {
    fn tag(&self, instance_id: &str) -> [u8; 32] {
        // HMAC-SHA256 takes a key of any length: this cannot fail.
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(instance_id.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Seen>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn verdict(&self, instance_id: &str, xml_sha256: &[u8; 32], incomplete: bool) -> Verdict {
        let tag = self.tag(instance_id);
        let mut seen = self.lock();
        seen.retain(|_, s| s.at.elapsed() < REMEMBER);
        match seen.get(&tag) {
            Some(s) if s.xml_sha256 != *xml_sha256 => Verdict::Conflict,
            Some(s) if s.complete && !incomplete => Verdict::Already,
            _ => Verdict::Store,
        }
    }

    fn record(&self, instance_id: &str, xml_sha256: [u8; 32], incomplete: bool) {
        let tag = self.tag(instance_id);
        let mut seen = self.lock();
        if seen.len() >= MAX_REMEMBERED
            && !seen.contains_key(&tag)
            && let Some(oldest) = seen.iter().min_by_key(|(_, s)| s.at).map(|(k, _)| *k)
        {
            seen.remove(&oldest);
        }
        let entry = seen.entry(tag).or_insert(Seen {
            xml_sha256,
            complete: false,
            at: Instant::now(),
        });
        entry.complete |= !incomplete;
    }
}

#[derive(Template)]
#[template(path = "openrosa/form_list.xml")]
struct FormList<'a> {
    form_id: &'static str,
    name: String,
    version: &'a str,
    hash: &'a str,
    download_url: String,
}

#[derive(Template)]
#[template(path = "openrosa/response.xml")]
struct OpenRosaResponse<'a> {
    nature: &'static str,
    message: &'a str,
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    h.insert("x-openrosa-version", HeaderValue::from_static("1.0"));
    res
}

fn message(status: StatusCode, nature: &'static str, text: &str) -> Response {
    let body = OpenRosaResponse {
        nature,
        message: text,
    }
    .render()
    .unwrap_or_default();
    xml(status, body)
}

/// The base URL the app used (so `downloadUrl` works over HTTPS and over
/// the onion alike): the `Host` it sent, and https unless it came in
/// through the onion listener.
fn base_url(req_host: Option<&HeaderValue>, listener: super::Listener) -> Option<String> {
    let host = req_host?.to_str().ok()?;
    // A host name or address with an optional port, nothing else.
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    {
        return None;
    }
    let scheme = match listener {
        super::Listener::Https => "https",
        super::Listener::Onion | super::Listener::Api => "http",
    };
    Some(format!("{scheme}://{host}"))
}

/// Whether a request reached the endpoints the way the config allows:
/// without a token when none is set, with the right one when one is (a
/// constant-time comparison).
fn allowed(state: &AppState, given: Option<&str>) -> bool {
    use subtle::ConstantTimeEq as _;
    match (&state.config.openrosa_path_token, given) {
        (None, None) => true,
        (Some(token), Some(given)) => bool::from(token.as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    }
}

/// The path the endpoints are under.
fn prefix(state: &AppState) -> String {
    match &state.config.openrosa_path_token {
        Some(t) => format!("/openrosa/k/{t}"),
        None => "/openrosa".to_owned(),
    }
}

fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "", "not found")
}

/// `GET /openrosa/formList`. Query parameters (Collect sends `deviceID`,
/// older apps `formID`) are not read.
pub(super) async fn form_list(
    State(state): State<Arc<AppState>>,
    listener: axum::Extension<super::Listener>,
    headers: axum::http::HeaderMap,
) -> Response {
    list(&state, listener.0, &headers, None)
}

/// `GET /openrosa/k/TOKEN/formList`.
pub(super) async fn form_list_k(
    State(state): State<Arc<AppState>>,
    listener: axum::Extension<super::Listener>,
    axum::extract::Path(token): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    list(&state, listener.0, &headers, Some(&token))
}

fn list(
    state: &AppState,
    listener: super::Listener,
    headers: &axum::http::HeaderMap,
    token: Option<&str>,
) -> Response {
    if !allowed(state, token) {
        return not_found();
    }
    let Some(base) = base_url(headers.get(header::HOST), listener) else {
        return message(StatusCode::BAD_REQUEST, "", "no usable Host header");
    };
    let list = FormList {
        form_id: crate::openrosa::FORM_ID,
        name: Tr {
            lang: state.config.form.default_lang(),
        }
        .t("form-title"),
        version: &state.xform.version,
        hash: &state.xform.hash,
        download_url: format!(
            "{base}{}/forms/{}.xml",
            prefix(state),
            crate::openrosa::FORM_ID
        ),
    };
    xml(StatusCode::OK, list.render().unwrap_or_default())
}

/// `GET /openrosa/forms/relay-testimony.xml`: the XForm.
pub(super) async fn form(State(state): State<Arc<AppState>>) -> Response {
    if !allowed(&state, None) {
        return not_found();
    }
    xml(StatusCode::OK, state.xform.xml.clone())
}

/// The same under the path token.
pub(super) async fn form_k(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    if !allowed(&state, Some(&token)) {
        return not_found();
    }
    xml(StatusCode::OK, state.xform.xml.clone())
}

/// `HEAD /openrosa/submission`: 204, and how large a POST may be (an app
/// splits a larger submission over several POSTs).
pub(super) async fn head(State(state): State<Arc<AppState>>) -> Response {
    if !allowed(&state, None) {
        return not_found();
    }
    head_answer(&state)
}

/// The same under the path token.
pub(super) async fn head_k(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    if !allowed(&state, Some(&token)) {
        return not_found();
    }
    head_answer(&state)
}

fn head_answer(state: &AppState) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert("x-openrosa-version", HeaderValue::from_static("1.0"));
    if let Ok(v) = HeaderValue::from_str(&state.config.limits.max_submission_bytes.to_string()) {
        h.insert("x-openrosa-accept-content-length", v);
    }
    res
}

fn busy(lang: Lang) -> Response {
    let mut res = message(
        StatusCode::SERVICE_UNAVAILABLE,
        "",
        &Tr { lang }.t("openrosa-busy"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
    res
}

/// `POST /openrosa/submission`.
pub(super) async fn submission(State(state): State<Arc<AppState>>, request: Request) -> Response {
    if !allowed(&state, None) {
        return not_found();
    }
    take(state, request).await
}

/// The same under the path token.
pub(super) async fn submission_k(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(token): axum::extract::Path<String>,
    request: Request,
) -> Response {
    if !allowed(&state, Some(&token)) {
        return not_found();
    }
    take(state, request).await
}

async fn take(state: Arc<AppState>, request: Request) -> Response {
    let default = state.config.form.default_lang();
    let (reader, request) = super::upload::BodyReader::new(&state.config.limits, request);
    let multipart = match Multipart::from_request(request, &state).await {
        Ok(m) => m,
        Err(_) => {
            return message(
                StatusCode::BAD_REQUEST,
                "",
                "expected multipart/form-data with an xml_submission_file part",
            );
        }
    };
    let slot = tokio::time::timeout(submit::SLOT_WAIT, state.uploads.clone().acquire_owned()).await;
    let Ok(Ok(slot)) = slot else {
        return busy(default);
    };
    let mut answers = Answers::default();
    let result = submit::receive_openrosa(
        &state,
        default,
        multipart,
        reader,
        &mut answers,
        slot,
        &|seen| match &seen.instance_id {
            Some(id) => match state
                .instances
                .verdict(id, &seen.xml_sha256, seen.incomplete)
            {
                Verdict::Store => Ok(()),
                Verdict::Already => Err(StatusCode::OK),
                Verdict::Conflict => Err(StatusCode::CONFLICT),
            },
            None => Ok(()),
        },
    )
    .await;
    let lang = answers.1.as_ref().and_then(|s| s.lang).unwrap_or(default);
    let t = Tr { lang };
    match result {
        Ok(submit::Stored::Now) => {
            if let Some(seen) = &answers.1
                && let Some(id) = &seen.instance_id
            {
                state.instances.record(id, seen.xml_sha256, seen.incomplete);
            }
            message(
                StatusCode::CREATED,
                "submit_success",
                &t.t("openrosa-stored"),
            )
        }
        Ok(submit::Stored::Before) => message(
            StatusCode::CREATED,
            "submit_success",
            &t.t("openrosa-already"),
        ),
        Ok(submit::Stored::Conflict) => message(
            StatusCode::CONFLICT,
            "",
            "another submission with this instanceID was received with other answers: nothing was stored",
        ),
        Err(Reject::BadInstance(e)) => message(StatusCode::BAD_REQUEST, "", &e.to_string()),
        Err(reject) => {
            let (status, _) = submit::refusal(&state, reject);
            match status {
                StatusCode::SERVICE_UNAVAILABLE => busy(lang),
                StatusCode::PAYLOAD_TOO_LARGE => message(
                    status,
                    "",
                    "the submission is larger than this relay takes (see X-OpenRosa-Accept-Content-Length)",
                ),
                StatusCode::INTERNAL_SERVER_ERROR => message(
                    status,
                    "",
                    "the relay failed: nothing was stored; try again later",
                ),
                _ => message(
                    status,
                    "",
                    "the submission is not one of this relay's form: nothing was stored",
                ),
            }
        }
    }
}
