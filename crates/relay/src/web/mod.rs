//! HTTP: the source's pages, the submission intake, the reviewer API.
//!
//! This is the only module that builds axum routers. Handlers never see the
//! peer's address (the server is run without `ConnectInfo`) and nothing here
//! logs a request: no access log. Every response carries the same strict
//! headers, and every error is a fixed page.

mod api;
mod followup;
pub mod i18n;
mod once;
mod openrosa;
mod pages;
mod submit;
pub mod tally;
mod upload;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::export::BatchLock;
use crate::keys::SigningKey;
use crate::seal::Recipients;
use crate::store::Store;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) recipients: Recipients,
    pub(crate) signer: SigningKey,
    pub(crate) spools: crate::seal::Spools,
    pub(crate) uploads: Arc<Semaphore>,
    pub(crate) batch_lock: BatchLock,
    /// Codenames and follow-up sessions (`None` when `[followup]` is off).
    pub followup: Option<crate::followup::Followup>,
    /// Refusals, failures and missing codenames, counted, not logged one by
    /// one ([`tally`]).
    pub tally: tally::Tally,
    /// Tokens of forms whose submission is stored ([`once`]).
    pub(crate) form_tokens: once::FormTokens,
    /// The questionnaire as an XForm, for field apps ([`crate::openrosa`]).
    pub(crate) xform: crate::openrosa::XForm,
    /// Instances seen lately, to join split submissions ([`openrosa`]).
    pub(crate) instances: openrosa::Instances,
}

impl AppState {
    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The batch signing key.
    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// The reviewer recipients submissions are sealed to.
    pub fn recipients(&self) -> &Recipients {
        &self.recipients
    }

    /// Bundles the relay's parts for the handlers.
    pub fn new(
        config: Config,
        store: Arc<Store>,
        recipients: Recipients,
        signer: SigningKey,
        spools: crate::seal::Spools,
    ) -> Self {
        let uploads = Arc::new(Semaphore::new(config.limits.max_concurrent_uploads));
        let config_form_for_xform = config.form.clone();
        let max_files = config.limits.max_files;
        let odk_key = config.odk_public_key.clone();
        store.set_limits(config.limits.max_store_bytes, config.limits.min_free_bytes);
        Self {
            config,
            store,
            recipients,
            signer,
            spools,
            uploads,
            batch_lock: BatchLock::default(),
            followup: None,
            tally: tally::Tally::default(),
            form_tokens: once::FormTokens::default(),
            xform: crate::openrosa::xform(&config_form_for_xform, max_files, odk_key.as_deref()),
            instances: openrosa::Instances::default(),
        }
    }

    /// Turns follow-up on, with this salt (tests; `server::open` does it
    /// from the config and the data directory).
    pub fn with_followup(mut self, salt: crate::followup::Salt) -> Result<Self, crate::Error> {
        self.followup = Some(crate::followup::Followup::new(&self.config.followup, salt)?);
        Ok(self)
    }
}

/// Largest codename log-in body: a codename is under 100 bytes; this leaves
/// room for odd spacing and encoding, and nothing more.
const LOGIN_BODY_LIMIT: usize = 4096;

/// Content-Security-Policy of every response: nothing but our own
/// stylesheet, forms only to ourselves, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Which listener a router serves: headers differ slightly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The public HTTPS listener: adds HSTS, and `Onion-Location` when an
    /// onion address is configured.
    Https,
    /// The loopback plain-HTTP listener behind the Tor daemon: no HSTS
    /// (there is no TLS; Tor encrypts end to end).
    Onion,
    /// The loopback plain-HTTP listener of `[api] listen`, behind a second,
    /// client-authorised onion service: only `/api/v1`, no HSTS.
    Api,
}

/// The relay's router for one listener. Tests drive it without a socket.
pub fn app(state: Arc<AppState>, listener: Listener) -> Router {
    app_with(state, listener, Router::new())
}

/// [`app`] with `extra` routes besides the relay's, under the same layers
/// (tests add a route that panics, to see the panic page's headers; no
/// relay build has one).
pub fn app_with(state: Arc<AppState>, listener: Listener, extra: Router<Arc<AppState>>) -> Router {
    // The body limit covers every attachment, the text and multipart
    // framing; the intake enforces the exact per-part limits itself.
    let body_limit = usize::try_from(state.config.limits.max_submission_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(state.config.limits.max_text_chars.saturating_mul(4))
        .saturating_add(1024 * 1024);
    // With `[api] listen`, the API is reachable only there (its own,
    // client-authorised onion service), and that listener serves nothing
    // else: a source's listeners answer /api/v1 with the plain 404, and a
    // holder of the API onion's client key reaches no page.
    let routes = match (listener, state.config.api_listen) {
        (Listener::Api, _) => Router::new().nest("/api/v1", api::router(state.clone())),
        (_, Some(_)) => public_routes(body_limit),
        (_, None) => public_routes(body_limit).nest("/api/v1", api::router(state.clone())),
    };
    routes
        .merge(extra)
        .fallback(pages::not_found)
        .with_state(state.clone())
        .layer(axum::Extension(listener))
        // Inside the header layer, so that the page a panic turns into
        // carries every security header too (CSP, no-store, HSTS).
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| pages::internal_error(i18n::Lang::En),
        ))
        .layer(axum::middleware::from_fn_with_state(
            HeaderContext {
                listener,
                onion: state.config.onion_address.clone(),
                demo: state.config.demo,
            },
            security_headers,
        ))
        // And outside it, should the header layer itself ever panic.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| pages::internal_error(i18n::Lang::En),
        ))
}

/// The pages, the submission paths and the OpenRosa endpoints: what a
/// source's listeners serve.
fn public_routes(body_limit: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(pages::root))
        .route("/{lang}", get(pages::lang_root))
        .route("/{lang}/", get(pages::form))
        .route("/{lang}/source", get(pages::source))
        .route(
            "/{lang}/submit",
            post(submit::submit)
                .layer(axum::extract::DefaultBodyLimit::max(body_limit))
                .get(pages::post_only),
        )
        .route("/followup", get(followup::root))
        .route("/followup/", get(followup::root))
        .route("/followup/{lang}", get(followup::lang_root))
        .route("/followup/{lang}/", get(followup::page))
        .route(
            "/followup/{lang}/login",
            post(followup::login)
                .layer(axum::extract::DefaultBodyLimit::max(LOGIN_BODY_LIMIT))
                .get(pages::post_only),
        )
        .route(
            "/followup/{lang}/logout",
            post(followup::logout).get(pages::post_only),
        )
        .route(
            "/followup/{lang}/replies/{id}/delete",
            post(followup::delete_reply).get(pages::post_only),
        )
        .route(
            "/followup/{lang}/submit",
            post(followup::submit)
                .layer(axum::extract::DefaultBodyLimit::max(body_limit))
                .get(pages::post_only),
        )
        .route("/openrosa/formList", get(openrosa::form_list))
        .route("/openrosa/forms/relay-testimony.xml", get(openrosa::form))
        .route(
            "/openrosa/submission",
            post(openrosa::submission)
                .head(openrosa::head)
                .layer(axum::extract::DefaultBodyLimit::max(body_limit)),
        )
        // The same under a secret path token (`[openrosa] path_token`).
        .route("/openrosa/k/{token}/formList", get(openrosa::form_list_k))
        .route(
            "/openrosa/k/{token}/forms/relay-testimony.xml",
            get(openrosa::form_k),
        )
        .route(
            "/openrosa/k/{token}/submission",
            post(openrosa::submission_k)
                .head(openrosa::head_k)
                .layer(axum::extract::DefaultBodyLimit::max(body_limit)),
        )
        .route("/static/style.css", get(pages::stylesheet))
        .route("/favicon.ico", get(pages::favicon))
}

/// What the header middleware needs to know.
#[derive(Clone, Debug)]
struct HeaderContext {
    listener: Listener,
    onion: Option<String>,
    /// Demo mode: pages show the demo banner ([`pages::DEMO`]).
    demo: bool,
}

/// Adds the fixed security headers to every response.
async fn security_headers(
    axum::extract::State(ctx): axum::extract::State<HeaderContext>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let onion_location = match (&ctx.onion, ctx.listener) {
        (Some(onion), Listener::Https) => {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            HeaderValue::from_str(&format!("http://{onion}{path}")).ok()
        }
        _ => None,
    };
    // Only the follow-up pages may set a cookie (their session); the
    // submission path and everything else stay cookie-free.
    let may_set_cookie = req.uri().path().starts_with("/followup/");
    // OpenRosa clients expect the version header on every answer, a 404
    // of a mistyped path included.
    let openrosa = req.uri().path().starts_with("/openrosa/");
    // The follow-up pages send same-origin referrers so that their own
    // POSTs carry a real `Origin` (`followup.rs`, module notes); nothing
    // leaves the site either way (no page links elsewhere).
    let referrer_policy = if req.uri().path().starts_with("/followup") {
        "same-origin"
    } else {
        "no-referrer"
    };
    let mut res = pages::DEMO.scope(ctx.demo, next.run(req)).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::REFERRER_POLICY, referrer_policy);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-store");
    if openrosa {
        set(h, HeaderName::from_static("x-openrosa-version"), "1.0");
    }
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    if ctx.listener == Listener::Https {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    if let Some(v) = onion_location {
        h.insert(HeaderName::from_static("onion-location"), v);
    }
    h.remove(header::SERVER);
    h.remove(header::ETAG);
    if !may_set_cookie {
        h.remove(header::SET_COOKIE);
    }
    res
}
