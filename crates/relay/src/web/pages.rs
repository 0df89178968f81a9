//! Server-rendered pages (askama templates in `crates/relay/templates`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

const MONTHS: [(&str, &str); 12] = [
    ("01", "January"),
    ("02", "February"),
    ("03", "March"),
    ("04", "April"),
    ("05", "May"),
    ("06", "June"),
    ("07", "July"),
    ("08", "August"),
    ("09", "September"),
    ("10", "October"),
    ("11", "November"),
    ("12", "December"),
];

/// How many years back the "when" question offers.
const YEARS_BACK: i32 = 30;

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage<'a> {
    categories: &'a [String],
    error: Option<&'a str>,
    text: &'a str,
    category: &'a str,
    region: &'a str,
    events_month: &'a str,
    events_year: &'a str,
    months: &'a [(&'a str, &'a str)],
    years: Vec<i32>,
    max_text_chars: usize,
    max_files: usize,
    max_mib: u64,
}

/// What the source had typed, to show the form again after an error.
#[derive(Default)]
pub(super) struct Prefill<'a> {
    pub(super) text: &'a str,
    pub(super) category: &'a str,
    pub(super) region: &'a str,
    pub(super) events_month: &'a str,
    pub(super) events_year: &'a str,
}

pub(super) fn current_year() -> i32 {
    time::OffsetDateTime::now_utc().year()
}

/// The form, optionally with an error and what the source typed.
pub(super) fn render_form(
    state: &AppState,
    status: StatusCode,
    error: Option<&str>,
    prefill: &Prefill<'_>,
) -> Response {
    let limits = &state.config.limits;
    let year = current_year();
    let page = FormPage {
        categories: &state.config.form.categories,
        error,
        text: prefill.text,
        category: prefill.category,
        region: prefill.region,
        events_month: prefill.events_month,
        events_year: prefill.events_year,
        months: &MONTHS,
        years: (year - YEARS_BACK..=year).rev().collect(),
        max_text_chars: limits.max_text_chars,
        max_files: limits.max_files,
        max_mib: limits.max_submission_bytes / (1024 * 1024),
    };
    html(status, page.render())
}

pub(super) async fn form(State(state): State<Arc<AppState>>) -> Response {
    render_form(&state, StatusCode::OK, None, &Prefill::default())
}

#[derive(Template)]
#[template(path = "received.html")]
struct ReceivedPage;

pub(super) fn received() -> Response {
    html(StatusCode::OK, ReceivedPage.render())
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

pub(super) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, ErrorPage { title, message }.render())
}

pub(super) fn busy() -> Response {
    let mut res = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is busy",
        "Nothing was stored. Please try again in a few minutes.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("120"));
    res
}

pub(super) fn internal_error() -> Response {
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Your testimony was NOT stored. Please try again later.",
    )
}

pub(super) async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
    )
}

pub(super) async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/style.css"),
    )
        .into_response()
}

fn html(status: StatusCode, rendered: askama::Result<String>) -> Response {
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
