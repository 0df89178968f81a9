//! No code. This crate only pins the features of shared dependencies so
//! that `relay` and `reviewer` compile them once, whichever is built first;
//! see its Cargo.toml and docs/decisions.md ("One build of the dependency
//! tree").
#![forbid(unsafe_code)]
