//! Server-rendered pages (askama templates in `crates/relay/templates`), in
//! the language of the URL.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::i18n::{Lang, Tr};
use crate::form::{Choice, Form, QuestionKind};

/// How many years back the "when" questions offer.
const YEARS_BACK: i32 = 30;

/// A link to the same page in another language.
pub(super) struct LangLink {
    pub(super) code: &'static str,
    pub(super) name: String,
    pub(super) current: bool,
}

/// What every page shares: language, messages, language links.
pub(super) struct Chrome {
    pub(super) tr: Tr,
    pub(super) lang: &'static str,
    pub(super) langs: Vec<LangLink>,
    /// Where the language links go: `""` for `/{lang}/`, `"/followup"`
    /// for `/followup/{lang}/`.
    pub(super) base: &'static str,
    /// Follow-up pages may set a session cookie; their footer says so.
    pub(super) cookie: bool,
    /// A demo relay: every page says it is not safe for real testimony.
    pub(super) demo: bool,
}

tokio::task_local! {
    /// Whether the request being answered is served by a demo relay; set
    /// around every request by the header layer (`super::security_headers`),
    /// so that every page, error and panic pages included, shows the
    /// banner without each handler passing the config down.
    pub(super) static DEMO: bool;
}

impl Chrome {
    pub(super) fn new(lang: Lang) -> Self {
        Self::with_base(lang, "")
    }

    /// For the follow-up pages.
    pub(super) fn followup(lang: Lang) -> Self {
        Self {
            cookie: true,
            ..Self::with_base(lang, "/followup")
        }
    }

    fn with_base(lang: Lang, base: &'static str) -> Self {
        Chrome {
            base,
            cookie: false,
            demo: DEMO.try_with(|d| *d).unwrap_or(false),
            tr: Tr { lang },
            lang: lang.code(),
            langs: Lang::ALL
                .iter()
                .map(|l| LangLink {
                    code: l.code(),
                    name: Tr { lang: *l }.t("language-name"),
                    current: *l == lang,
                })
                .collect(),
        }
    }
}

/// One error on the form: the message, and the field it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FormError {
    /// The field's id (`None` for the whole form).
    pub(super) field: Option<String>,
    /// The Fluent message key.
    pub(super) message: &'static str,
}

/// An option of a `<select>`.
struct Opt {
    value: String,
    label: String,
    selected: bool,
}

/// A question as the template renders it.
struct Field {
    /// Name and id.
    key: String,
    kind: &'static str,
    label: String,
    help: Option<String>,
    required: bool,
    error: Option<String>,
    /// What the source typed (a refused form shown again): zeroized when
    /// the page is dropped.
    value: zeroize::Zeroizing<String>,
    options: Vec<Opt>,
    month_options: Vec<Opt>,
    year_options: Vec<Opt>,
}

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage {
    c: Chrome,
    errors: Vec<(Option<String>, String)>,
    help: Option<String>,
    fields: Vec<Field>,
    max_text_chars: usize,
    files_help: String,
    files_error: Option<String>,
    /// Offer a codename (follow-up is on); `Some(checked)`.
    followup: Option<bool>,
    /// This render's one-time token ([`super::once`]).
    once: String,
}

/// What the source had typed, by field name, to show the form again.
pub(super) type Prefill<'a> = BTreeMap<&'a str, &'a str>;

pub(super) fn current_year() -> i32 {
    time::OffsetDateTime::now_utc().year()
}

fn options(choices: &[Choice], lang: Lang, selected: &str, empty: Option<String>) -> Vec<Opt> {
    empty
        .map(|label| Opt {
            value: String::new(),
            label,
            selected: selected.is_empty(),
        })
        .into_iter()
        .chain(choices.iter().map(|c| Opt {
            value: c.key.clone(),
            label: c.label(lang).to_owned(),
            selected: c.key == selected,
        }))
        .collect()
}

fn month_year(tr: &Tr, month: &str, year: &str) -> (Vec<Opt>, Vec<Opt>) {
    let dash = || Opt {
        value: String::new(),
        label: "—".to_owned(),
        selected: false,
    };
    let months = std::iter::once(Opt {
        selected: month.is_empty(),
        ..dash()
    })
    .chain((1..=12).map(|m| Opt {
        value: format!("{m:02}"),
        label: tr.t(&format!("month-{m}")),
        selected: month == format!("{m:02}"),
    }))
    .collect();
    let now = current_year();
    let years = std::iter::once(Opt {
        selected: year.is_empty(),
        ..dash()
    })
    .chain((now - YEARS_BACK..=now).rev().map(|y| Opt {
        value: y.to_string(),
        label: y.to_string(),
        selected: year == y.to_string(),
    }))
    .collect();
    (months, years)
}

fn field(key: &str, kind: &'static str, label: String, required: bool) -> Field {
    Field {
        key: key.to_owned(),
        kind,
        label,
        help: None,
        required,
        error: None,
        value: zeroize::Zeroizing::new(String::new()),
        options: Vec::new(),
        month_options: Vec::new(),
        year_options: Vec::new(),
    }
}

/// The form in `lang`, optionally with errors and what the source typed.
pub(super) fn render_form(
    state: &AppState,
    lang: Lang,
    status: StatusCode,
    errors: &[FormError],
    prefill: &Prefill<'_>,
) -> Response {
    let c = Chrome::new(lang);
    let tr = c.tr;
    let form: &Form = &state.config.form;
    let limits = &state.config.limits;
    let get = |k: &str| prefill.get(k).copied().unwrap_or("");
    let error_for = |k: &str| {
        errors
            .iter()
            .find(|e| e.field.as_deref() == Some(k))
            .map(|e| tr.t(e.message))
    };

    let mut category = field("category", "choice", tr.t("field-category"), true);
    category.options = options(
        &form.category,
        lang,
        get("category"),
        Some(tr.t("field-category-choose")),
    );
    category.error = error_for("category");

    let mut text = field("text", "textarea", tr.t("field-text"), false);
    text.help = Some(tr.t("field-text-help"));
    text.value = zeroize::Zeroizing::new(get("text").to_owned());
    text.error = error_for("text");

    let mut region = if form.region.is_empty() {
        let mut f = field("region", "text", tr.t("field-region"), false);
        f.value = zeroize::Zeroizing::new(get("region").to_owned());
        f
    } else {
        let mut f = field("region", "choice", tr.t("field-region"), false);
        f.options = options(
            &form.region,
            lang,
            get("region"),
            Some(tr.t("field-region-any")),
        );
        f
    };
    region.error = error_for("region");

    let mut when = field("events", "month", tr.t("field-when"), false);
    when.help = Some(tr.t("field-when-help"));
    (when.month_options, when.year_options) =
        month_year(&tr, get("events_month"), get("events_year"));
    when.error = error_for("events");

    let questions: Vec<Field> = form
        .question
        .iter()
        .map(|q| {
            let kind = match q.kind {
                QuestionKind::Text => "text",
                QuestionKind::Choice => "choice",
                QuestionKind::Month => "month",
            };
            let mut f = field(&q.key, kind, q.label.get(lang).to_owned(), q.required);
            f.help = q.help.as_ref().map(|h| h.get(lang).to_owned());
            f.value = zeroize::Zeroizing::new(get(&q.key).to_owned());
            f.error = error_for(&q.key);
            match q.kind {
                QuestionKind::Choice => {
                    f.options = options(&q.option, lang, get(&q.key), Some("—".to_owned()));
                }
                QuestionKind::Month => {
                    (f.month_options, f.year_options) = month_year(
                        &tr,
                        get(&format!("{}_month", q.key)),
                        get(&format!("{}_year", q.key)),
                    );
                }
                QuestionKind::Text => {}
            }
            f
        })
        .collect();

    let page = FormPage {
        once: super::once::FormTokens::fresh(),
        errors: errors
            .iter()
            .map(|e| (e.field.clone(), tr.t(e.message)))
            .collect(),
        help: form.help.as_ref().map(|h| h.get(lang).to_owned()),
        fields: [category, text, region, when]
            .into_iter()
            .chain(questions)
            .collect(),
        max_text_chars: limits.max_text_chars,
        files_help: tr.t_n(
            "field-files-help",
            &[
                ("files", limits.max_files as u64),
                ("mib", limits.max_submission_bytes / (1024 * 1024)),
            ],
        ),
        files_error: error_for("files"),
        // Checked by default; a form shown again keeps the source's choice.
        followup: state
            .followup
            .as_ref()
            .map(|_| prefill.is_empty() || get("followup") == "yes"),
        c,
    };
    // A refused form carries what the source typed.
    html_secret(status, page.render())
}

/// The 404 page, in the default language.
pub(super) fn not_found_page(state: &AppState) -> Response {
    error_page(
        state.config.form.default_lang(),
        StatusCode::NOT_FOUND,
        "not-found-title",
        "not-found-body",
    )
}

pub(super) async fn form(State(state): State<Arc<AppState>>, Path(code): Path<String>) -> Response {
    match Lang::from_code(&code) {
        Some(lang) => render_form(&state, lang, StatusCode::OK, &[], &Prefill::new()),
        None => not_found_page(&state),
    }
}

/// `/`: sends the browser to its language, chosen from `Accept-Language`
/// (no cookie, nothing remembered).
pub(super) async fn root(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    to_negotiated_lang(&state, &headers, "")
}

/// A 303 to `{base}/{lang}/`, the language chosen from `Accept-Language`
/// (no cookie, nothing remembered). `base` is `""` or `"/followup"`.
pub(super) fn to_negotiated_lang(state: &AppState, headers: &HeaderMap, base: &str) -> Response {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = Lang::negotiate(accept, state.config.form.default_lang());
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, format!("{base}/{}/", lang.code())),
            (header::VARY, "Accept-Language".to_owned()),
        ],
    )
        .into_response()
}

/// `/{lang}` without the slash.
pub(super) async fn lang_root(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
) -> Response {
    match Lang::from_code(&code) {
        Some(lang) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("/{}/", lang.code()))],
        )
            .into_response(),
        None => not_found_page(&state),
    }
}

#[derive(Template)]
#[template(path = "received.html")]
struct ReceivedPage<'a> {
    c: Chrome,
    /// The new codename's words, shown once.
    codename: Option<Vec<&'a str>>,
    codename_failed: bool,
}

pub(super) fn received(lang: Lang, outcome: &super::submit::Outcome) -> Response {
    if outcome.already {
        // The same form again (a reload of this page): nothing stored.
        return error_page(lang, StatusCode::OK, "already-title", "already-body");
    }
    let page = ReceivedPage {
        c: Chrome::new(lang),
        codename: outcome.codename.as_ref().map(|c| c.words().collect()),
        codename_failed: outcome.codename_failed,
    };
    // The rendered page holds the codename: zeroize it once sent.
    html_secret(StatusCode::OK, page.render())
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    title: String,
    message: String,
}

pub(super) fn error_page(lang: Lang, status: StatusCode, title: &str, message: &str) -> Response {
    let c = Chrome::new(lang);
    let page = ErrorPage {
        title: c.tr.t(title),
        message: c.tr.t(message),
        c,
    };
    html(status, page.render())
}

pub(super) fn busy(lang: Lang) -> Response {
    let mut res = error_page(
        lang,
        StatusCode::SERVICE_UNAVAILABLE,
        "busy-title",
        "busy-body",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("120"));
    res
}

pub(super) fn internal_error(lang: Lang) -> Response {
    error_page(
        lang,
        StatusCode::INTERNAL_SERVER_ERROR,
        "failed-title",
        "failed-body",
    )
}

pub(super) async fn not_found(State(state): State<Arc<AppState>>) -> Response {
    not_found_page(&state)
}

/// A GET on an address that only answers a form (`/kk/submit`, a
/// follow-up log-in…), as a restored tab or a history entry opens it: a
/// short page in that address's language saying the testimony is safe if
/// the source saw "Received", instead of a blank 405. Nothing is done.
pub(super) async fn post_only(
    State(state): State<Arc<AppState>>,
    uri: axum::http::Uri,
) -> Response {
    let mut segments = uri.path().trim_start_matches('/').split('/');
    let first = segments.next().unwrap_or_default();
    let code = if first == "followup" {
        segments.next().unwrap_or_default()
    } else {
        first
    };
    let lang = Lang::from_code(code).unwrap_or_else(|| state.config.form.default_lang());
    let mut res = error_page(
        lang,
        StatusCode::METHOD_NOT_ALLOWED,
        "post-only-title",
        "post-only-body",
    );
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    res
}

#[derive(Template)]
#[template(path = "source.html")]
struct SourcePage<'a> {
    c: Chrome,
    version: &'static str,
    url: Option<&'a str>,
}

/// `/{lang}/source`: the licence, the version, and where the source code
/// is (AGPL-3.0 §13). The address is shown as text, never as a link: the
/// relay's pages lead nowhere off the site (docs/decisions.md).
pub(super) async fn source(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return not_found_page(&state);
    };
    let page = SourcePage {
        c: Chrome::new(lang),
        version: env!("CARGO_PKG_VERSION"),
        url: state.config.source_url.as_deref(),
    };
    html(StatusCode::OK, page.render())
}

/// `/favicon.ico`: every browser asks for it; an empty answer rather than
/// a 404 page (the relay has no icon, and needs none).
pub(super) async fn favicon() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/style.css"),
    )
        .into_response()
}

/// A page that holds a secret (a codename, a reply): its HTML is zeroized
/// when the response body is dropped.
pub(super) fn html_secret(status: StatusCode, rendered: askama::Result<String>) -> Response {
    match rendered {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            axum::body::Body::from(bytes::Bytes::from_owner(ZeroizingBody(
                zeroize::Zeroizing::new(body.into_bytes()),
            ))),
        )
            .into_response(),
        Err(e) => html(status, Err(e)),
    }
}

/// Bytes that are zeroized when the last reference to them is dropped.
struct ZeroizingBody(zeroize::Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

pub(super) fn html(status: StatusCode, rendered: askama::Result<String>) -> Response {
    match rendered {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}
