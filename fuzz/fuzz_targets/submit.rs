//! The submission path, multipart body to sealed ciphertext, through the
//! relay's real router (in-process, no socket): whatever the body, the
//! answer is a page (200, 4xx, or 503), never a panic and never a 500.
#![no_main]

use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt as _;

struct Relay {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

static RELAY: LazyLock<Relay> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("relay-data");
    let config_path =
        relay::demo::init(&data, "127.0.0.1:8443".parse().expect("address")).expect("demo");
    let mut text = std::fs::read_to_string(&config_path).expect("config");
    // Small limits, so the fuzzer reaches them.
    text.push_str("\n[limits]\nmax_submission_bytes = 65536\nmax_files = 3\nmax_text_chars = 2000\n");
    std::fs::write(&config_path, text).expect("config");
    let config = relay::config::Config::load(&config_path).expect("config");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let state = {
        let _guard = runtime.enter();
        relay::server::open(&data, config).expect("relay")
    };
    let router = relay::web::app(state, relay::web::Listener::Https);
    Relay {
        runtime,
        router,
        _dir: dir,
    }
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let relay = &*RELAY;
    let request = Request::post("/en/submit")
        .header("content-type", "multipart/form-data; boundary=B")
        .header("content-length", data.len())
        .body(Body::from(data.to_vec()))
        .expect("request");
    let response = relay
        .runtime
        .block_on(relay.router.clone().oneshot(request))
        .expect("infallible");
    let status = response.status();
    assert!(
        status == StatusCode::OK
            || status.is_client_error()
            || status == StatusCode::SERVICE_UNAVAILABLE,
        "unexpected status {status}"
    );
});
