//! The reviewer's integration tests, in one test binary: each module was a
//! test binary of its own, each linking the reviewer and every dependency
//! again. The fixtures they read stay beside this directory
//! (`../fixtures`).
//!
//! The modules share one process: every test works in its own temporary
//! directory, ids are distinct across the process (`util`), and the
//! `reviewer` binary runs as a child wherever a test needs a process of
//! its own.

mod util;

mod cli;
mod fetch;
mod followup;
mod hostile_batch;
mod kill_loop;
mod open;
mod report;
mod scrub;
mod verify;
mod workbench;
