//! `deploy/relay.toml` goes through the real config parser: the example an
//! operator copies must load once its placeholders are filled, must refuse
//! to load while they are not, and must keep the security-relevant values.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::path::{Path, PathBuf};

use relay::config::{Config, Limits};

fn example() -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/relay.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn placeholders_stop_the_relay() {
    let (path, text) = example();
    let e = Config::parse(&path, &text).unwrap_err().to_string();
    assert!(e.contains("reviewers.recipients[0]"), "{e}");
}

#[test]
fn filled_example_loads_with_safe_values() {
    let (path, text) = example();
    let (_, recipient) = relay::seal::generate_identity(format::Day::today(), "test");
    let (_, token_hash) = relay::keys::new_api_token();
    let filled = text
        .replace("age1-REPLACE-WITH-A-REVIEWER-RECIPIENT", &recipient)
        .replace(
            "REPLACE-WITH-THE-LINE-relay-token-PRINTS",
            &token_hash.to_string(),
        );
    let c = Config::parse(&path, &filled).unwrap();
    assert!(!c.demo, "the production example must not be in demo mode");
    assert_eq!(c.recipients, [recipient]);
    assert_eq!(c.api_token_sha256, token_hash);
    // The example states the defaults explicitly; keep them in step.
    assert_eq!(c.limits, Limits::default());
    assert!(c.store.cache_mib <= 64, "sled's cache must stay small");
    assert_eq!(c.form.categories.len(), 5);
    assert_eq!(c.tls_cert, Path::new("/etc/relay/tls/fullchain.pem"));
}
