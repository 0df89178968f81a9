//! The relay's integration tests, in one test binary: each module was a
//! test binary of its own, each linking the relay and every dependency
//! again. The data they read stays beside this directory (`../data`,
//! `../vectors`).
//!
//! The modules share one process: what is process-wide (the open-file
//! limit, `relay::process::harden`) is handled where it is used, and every
//! test works in its own temporary directory.

mod util;

mod binary;
mod boundaries;
mod crash;
mod deploy;
mod floods;
mod followup;
mod hardening;
mod hostile;
mod memory;
mod seizure;
mod storage;
mod walkthrough;
