//! Helpers shared by the integration tests of the workspace: the relay's
//! (`crates/relay/tests/it`), the reviewer's (`crates/reviewer/tests/it`)
//! and the end-to-end tests (`tests/it`). A development dependency only,
//! never published or shipped.
//!
//! - [`contains`] and the tree walks [`paths`] and [`files`]: what tests
//!   use to look for plaintext on disk;
//! - [`identity_file`] and [`decrypt`]: a plain age identity file (such as
//!   the demo reviewer key a demo relay writes) and decryption with it,
//!   through the `age` library, for tests that open a sealed submission by
//!   hand rather than with `reviewer open`;
//! - [`codename_of`], [`login_form`] and [`log_in`]: a source's codename
//!   on a success page, and the follow-up log-in with it;
//! - [`ReviewerCmd`] and [`reviewer_bin`]: `reviewer` command lines, run
//!   in-process (`reviewer::run`) or as the binary;
//! - [`html`]: a strict HTML reader, for pages that must parse as a browser
//!   would build them;
//! - [`socks_proxy`]: a SOCKS5 proxy that records the names clients ask
//!   for, standing in for Tor's SOCKS port.
//!
//! It depends on neither the relay nor the reviewer, so that a change to one
//! does not rebuild the other's tests; callers pass what they know (a path,
//! a base URL, an argument list).
#![forbid(unsafe_code)]
// A panic in a test helper is a failed test.
#![allow(clippy::unwrap_used)]

mod followup;
pub mod html;
mod reviewer;
mod sealed;
mod socks;
mod tree;

pub use followup::{LogIn, codename_of, log_in, login_form};
pub use reviewer::{ReviewerCmd, reviewer_bin};
pub use sealed::{decrypt, identity_file};
pub use socks::{Socks, socks_proxy};
pub use tree::{files, paths};

/// Whether `needle` occurs in `hay`. An empty needle occurs nowhere (a test
/// asserting its absence would otherwise pass for nothing).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
