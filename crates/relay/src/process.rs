//! Process hardening at start-up.
//!
//! The relay's memory holds plaintext while a submission is in flight (see
//! `SECURITY.md`). A core dump would write it to disk, and a same-user
//! process could read it through `ptrace` or `/proc/PID/mem`. At start the
//! relay therefore makes itself non-dumpable (which also forbids same-user
//! ptrace attach and makes `/proc/PID/mem` root-only) and sets its core
//! size limit to zero. Both through `rustix`'s safe wrappers; `unsafe`
//! stays forbidden in this crate.

use crate::Error;

/// Disables core dumps and marks the process non-dumpable.
pub fn harden() -> Result<(), Error> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| Error::Hardening(format!("cannot disable core dumps: {e}")))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Error::Hardening(format!("cannot make the process non-dumpable: {e}")))
}

/// Whether the process is currently non-dumpable.
pub fn is_hardened() -> bool {
    matches!(
        rustix::process::dumpable_behavior(),
        Ok(rustix::process::DumpableBehavior::NotDumpable)
    )
}
