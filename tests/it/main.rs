//! The end-to-end tests, in one test binary: each module was a test binary
//! of its own, each linking the relay, the reviewer and every dependency
//! again. The shared harness is the `e2e` library (`harness.rs`).
//!
//! The modules share one process: each relay runs on its own runtime, on a
//! port the system chose, over its own temporary directory.

mod api_onion;
mod browser;
mod end_to_end;
mod epochs;
mod followup;
mod one_build;
mod openrosa;
