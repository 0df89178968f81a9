//! The source's follow-up pages: enter the codename, read the reviewers'
//! replies (decrypted for this request only), delete one, add testimony to
//! the thread, log out. All work without JavaScript.
//!
//! Routes live under `/followup/` so that the session cookie (`Path=/followup`)
//! never reaches the submission path, which stays cookie-free. Every POST
//! here must come from one of our own pages: the cookie is
//! `SameSite=Strict`, and a request whose `Sec-Fetch-Site` or `Origin`
//! says it came from another site is refused (403).
//!
//! Old and privacy-minded browsers: these pages are served with
//! `Referrer-Policy: same-origin` (the rest of the site keeps
//! `no-referrer`), because under `no-referrer` browsers send `Origin: null`
//! on a same-origin POST, and Safari before 16.4 sends no `Sec-Fetch-Site`
//! to tell it apart, so every log-in from those phones was refused. Still,
//! `Origin: null` is also what a sandboxed frame on another site sends, so
//! it is accepted only with a live session cookie, which `SameSite=Strict`
//! keeps to our own site: never for a log-in.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use format::ReplyId;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::i18n::Lang;
use super::pages::{self, Chrome};
use super::submit::{self, Answers, Failure, Intake};
use super::{AppState, Listener};
use crate::followup::sessions::Active;
use crate::followup::{self, Codename, CodenameError, DeriveError, ShownReply};

/// The session cookie's name.
pub(super) const COOKIE: &str = "followup";

/// The session token in the request's cookies, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// The request's live session, if any.
pub(super) fn session(state: &AppState, headers: &HeaderMap) -> Option<Active> {
    let f = state.followup.as_ref()?;
    f.sessions.get(cookie(headers)?)
}

fn cookie_header(value: &str, listener: Listener, max_age_zero: bool) -> HeaderValue {
    // `Secure` over TLS; the onion listener is plain HTTP to Tor (which
    // encrypts end to end), where a `Secure` cookie would not come back.
    let secure = if listener == Listener::Https {
        "; Secure"
    } else {
        ""
    };
    let expire = if max_age_zero { "; Max-Age=0" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/followup; HttpOnly; SameSite=Strict{secure}{expire}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("followup=; Path=/followup; Max-Age=0"))
}

/// Whether a POST came from one of our own pages (see the module notes).
/// Browsers too old to send either header fall back on `SameSite=Strict`.
/// `with_session`: the request carries a live session cookie.
fn same_origin(headers: &HeaderMap, with_session: bool) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some("null") => with_session,
        Some(origin) => {
            let authority = origin.split_once("://").map(|(_, a)| a);
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
        }
    }
}

fn forbidden(lang: Lang) -> Response {
    pages::error_page(
        lang,
        StatusCode::FORBIDDEN,
        "forbidden-title",
        "forbidden-body",
    )
}

fn see_other(location: String) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// When the relay does not offer follow-up (`[followup] enabled = false`).
fn not_offered(lang: Lang) -> Response {
    pages::error_page(
        lang,
        StatusCode::NOT_FOUND,
        "followup-off-title",
        "followup-off-body",
    )
}

/// `/followup`: to the browser's language.
pub(super) async fn root(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    pages::to_negotiated_lang(&state, &headers, "/followup")
}

/// `/followup/{lang}` without the slash.
pub(super) async fn lang_root(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
) -> Response {
    match Lang::from_code(&code) {
        Some(lang) => see_other(format!("/followup/{}/", lang.code())),
        None => pages::not_found_page(&state),
    }
}

#[derive(Template)]
#[template(path = "followup_login.html")]
struct LoginPage {
    c: Chrome,
    /// Title and text of the error box.
    error: Option<(String, String)>,
    /// What the source typed, given back after a typo so that eight words
    /// need not be typed again (the page is then zeroized when sent).
    typed: Option<Zeroizing<String>>,
}

fn login_page(lang: Lang, status: StatusCode, error: Option<(&str, &str)>) -> Response {
    let c = Chrome::followup(lang);
    let error = error.map(|(t, m)| (c.tr.t(t), c.tr.t(m)));
    pages::html(
        status,
        LoginPage {
            c,
            error,
            typed: None,
        }
        .render(),
    )
}

/// The log-in page again after a codename that does not parse: says why
/// (which word, counted from 1, is not in the list) and keeps the text.
fn login_retry(lang: Lang, error: &CodenameError, typed: Zeroizing<String>) -> Response {
    let c = Chrome::followup(lang);
    let message = match error {
        CodenameError::WordCount => c.tr.t("codename-error-count"),
        CodenameError::UnknownWord(n) => c.tr.t_n(
            "codename-error-word",
            &[("n", u64::try_from(*n).unwrap_or(0))],
        ),
    };
    let page = LoginPage {
        error: Some((c.tr.t("codename-error-title"), message)),
        c,
        typed: Some(typed),
    };
    pages::html_secret(StatusCode::BAD_REQUEST, page.render())
}

/// One reply as the thread page shows it.
struct ReplyView {
    id: String,
    /// `None` when it could not be read.
    day: Option<String>,
    paragraphs: Vec<Zeroizing<String>>,
}

#[derive(Template)]
#[template(path = "followup_thread.html")]
struct ThreadPage {
    c: Chrome,
    notice: Option<String>,
    /// Why the last addition was refused, and what the source had typed.
    errors: Vec<String>,
    text: Zeroizing<String>,
    replies: Vec<ReplyView>,
    max_text_chars: usize,
    files_help: String,
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    done: Option<String>,
}

/// `/followup/{lang}/`: the thread (with a session) or the codename form.
pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    Extension(listener): Extension<Listener>,
    Path(code): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return pages::not_found_page(&state);
    };
    if state.followup.is_none() {
        return not_offered(lang);
    }
    let Some(active) = session(&state, &headers) else {
        if cookie(&headers).is_some() {
            // An expired or unknown session: say so, and drop the cookie.
            let mut res = login_page(
                lang,
                StatusCode::OK,
                Some(("session-ended-title", "session-ended-body")),
            );
            res.headers_mut()
                .insert(header::SET_COOKIE, cookie_header("", listener, true));
            return res;
        }
        return login_page(lang, StatusCode::OK, None);
    };
    let notice = match query.done.as_deref() {
        Some("added") => Some("thread-added"),
        Some("deleted") => Some("thread-deleted"),
        _ => None,
    };
    thread_page(&state, lang, &active, notice, Refused::default()).await
}

/// A refused addition, shown above the form that keeps the text.
#[derive(Default)]
struct Refused {
    status: Option<StatusCode>,
    errors: Vec<String>,
    text: Zeroizing<String>,
}

async fn thread_page(
    state: &Arc<AppState>,
    lang: Lang,
    active: &Active,
    notice: Option<&str>,
    refused: Refused,
) -> Response {
    let store = state.store.clone();
    let thread = active.thread;
    let secret = active.secret.duplicate();
    let replies =
        tokio::task::spawn_blocking(move || followup::thread_replies(&store, &thread, &secret))
            .await;
    let replies = match replies {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(route = "/followup/{lang}/", status = 500, error = %e, "follow-up page failed");
            return pages::internal_error(lang);
        }
        Err(_) => return pages::internal_error(lang),
    };
    let c = Chrome::followup(lang);
    let limits = &state.config.limits;
    let page = ThreadPage {
        notice: notice.map(|n| c.tr.t(n)),
        errors: refused.errors,
        text: refused.text,
        replies: replies
            .into_iter()
            .map(|r| match r {
                ShownReply::Read { id, message } => ReplyView {
                    id: id.to_string(),
                    day: Some(message.written_day.to_string()),
                    paragraphs: message
                        .text
                        .lines()
                        .map(str::trim_end)
                        .filter(|l| !l.is_empty())
                        .map(|l| Zeroizing::new(l.to_owned()))
                        .collect(),
                },
                ShownReply::Unreadable { id } => ReplyView {
                    id: id.to_string(),
                    day: None,
                    paragraphs: Vec::new(),
                },
            })
            .collect(),
        max_text_chars: limits.max_text_chars,
        files_help: c.tr.t_n(
            "field-files-help",
            &[
                ("files", limits.max_files as u64),
                ("mib", limits.max_submission_bytes / (1024 * 1024)),
            ],
        ),
        c,
    };
    pages::html_secret(refused.status.unwrap_or(StatusCode::OK), page.render())
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    codename: Zeroizing<String>,
}

/// `POST /followup/{lang}/login`: derive from the codename; if it leads to
/// a thread, open a session.
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    Extension(listener): Extension<Listener>,
    Path(code): Path<String>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return pages::not_found_page(&state);
    };
    let Some(f) = state.followup.as_ref() else {
        return not_offered(lang);
    };
    if !same_origin(&headers, false) {
        return forbidden(lang);
    }
    let Ok(Form(form)) = form else {
        return login_page(
            lang,
            StatusCode::BAD_REQUEST,
            Some(("codename-error-title", "codename-error-count")),
        );
    };
    let codename = match Codename::parse(&form.codename) {
        Ok(c) => c,
        Err(e) => return login_retry(lang, &e, form.codename),
    };
    drop(form);
    // Logged in already (another tab, a reload, or a flood with its own
    // codename): renew that session; no derivation slot is taken.
    let tag = f.sessions.tag(&codename);
    if let Some(token) = f.sessions.renew(tag) {
        return logged_in(lang, listener, &token);
    }
    let derived = match f.derive(codename, None).await {
        Ok(d) => d,
        // Every derivation slot is taken: a flood of log-ins (or a busy
        // moment). Nothing else waits on this; try again later.
        Err(DeriveError::Busy) => return pages::busy(lang),
        Err(DeriveError::Failed(e)) => {
            tracing::warn!(route = "/followup/{lang}/login", status = 500, error = %e, "log-in failed");
            return pages::internal_error(lang);
        }
    };
    let thread = match state.store.thread_for_lookup(&derived.lookup.0) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(route = "/followup/{lang}/login", status = 500, error = %e, "log-in failed");
            return pages::internal_error(lang);
        }
    };
    let Some(thread) = thread else {
        return login_page(
            lang,
            StatusCode::FORBIDDEN,
            Some(("codename-unknown-title", "codename-unknown-body")),
        );
    };
    let Ok(token) = f.sessions.create(thread, derived.secret, tag) else {
        return pages::busy(lang);
    };
    logged_in(lang, listener, &token)
}

/// The answer to a log-in that opened a session: its cookie, and on to the
/// thread.
fn logged_in(lang: Lang, listener: Listener, token: &crate::followup::sessions::Token) -> Response {
    let mut res = see_other(format!("/followup/{}/", lang.code()));
    res.headers_mut().insert(
        header::SET_COOKIE,
        cookie_header(token.as_str(), listener, false),
    );
    res
}

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticePage {
    c: Chrome,
    title: String,
    paragraphs: Vec<String>,
    link: (String, String),
}

/// `POST /followup/{lang}/logout`: ends the session now.
pub(super) async fn logout(
    State(state): State<Arc<AppState>>,
    Extension(listener): Extension<Listener>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return pages::not_found_page(&state);
    };
    let Some(f) = state.followup.as_ref() else {
        return not_offered(lang);
    };
    if !same_origin(&headers, session(&state, &headers).is_some()) {
        return forbidden(lang);
    }
    if let Some(token) = cookie(&headers) {
        f.sessions.remove(token);
    }
    let c = Chrome::followup(lang);
    let page = NoticePage {
        title: c.tr.t("logged-out-title"),
        paragraphs: vec![c.tr.t("logged-out-body"), c.tr.t("received-close")],
        link: (format!("/{}/", lang.code()), c.tr.t("back-to-form")),
        c,
    };
    let mut res = pages::html(StatusCode::OK, page.render());
    res.headers_mut()
        .insert(header::SET_COOKIE, cookie_header("", listener, true));
    res
}

/// `POST /followup/{lang}/replies/{id}/delete`: deletes a reply for good.
pub(super) async fn delete_reply(
    State(state): State<Arc<AppState>>,
    Path((code, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return pages::not_found_page(&state);
    };
    if state.followup.is_none() {
        return not_offered(lang);
    }
    if !same_origin(&headers, session(&state, &headers).is_some()) {
        return forbidden(lang);
    }
    let Some(active) = session(&state, &headers) else {
        return login_page(
            lang,
            StatusCode::FORBIDDEN,
            Some(("session-ended-title", "session-ended-body")),
        );
    };
    let Ok(id) = id.parse::<ReplyId>() else {
        return pages::not_found_page(&state);
    };
    let deleted = state.store.delete_reply(&active.thread, &id).map(|_| ());
    let durable = match deleted {
        Ok(()) => state.store.sync().await,
        Err(e) => Err(e),
    };
    if let Err(e) = durable {
        tracing::warn!(route = "/followup/{lang}/replies/{id}/delete", status = 500, error = %e, "deleting a reply failed");
        return pages::internal_error(lang);
    }
    // Deleting a reply that is already gone is not an error: the page
    // shows what is left.
    see_other(format!("/followup/{}/?done=deleted", lang.code()))
}

/// `POST /followup/{lang}/submit`: more testimony in the session's thread.
pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    request: Request,
) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return pages::not_found_page(&state);
    };
    if state.followup.is_none() {
        return not_offered(lang);
    }
    if !same_origin(
        request.headers(),
        session(&state, request.headers()).is_some(),
    ) {
        return forbidden(lang);
    }
    let Some(active) = session(&state, request.headers()) else {
        return login_page(
            lang,
            StatusCode::FORBIDDEN,
            Some(("session-ended-title", "session-ended-unsent")),
        );
    };
    let mut answers = Answers::default();
    let taken = submit::take(
        &state,
        lang,
        request,
        Intake::FollowUp(active.thread),
        &mut answers,
    )
    .await;
    match taken {
        Ok(_) => see_other(format!("/followup/{}/?done=added", lang.code())),
        Err(Failure::Early(response)) => response,
        Err(Failure::Refused(reject)) => {
            let (status, errors) = submit::refusal(&state, reject);
            match errors {
                Some(errors) => {
                    let tr = super::i18n::Tr { lang };
                    let refused = Refused {
                        status: Some(status),
                        errors: errors.iter().map(|e| tr.t(e.message)).collect(),
                        text: Zeroizing::new(answers.text().to_owned()),
                    };
                    thread_page(&state, lang, &active, None, refused).await
                }
                None if status == StatusCode::SERVICE_UNAVAILABLE => pages::busy(lang),
                None => pages::internal_error(lang),
            }
        }
    }
}
