//! The relay: an HTTPS service that takes testimony from sources, seals each
//! submission with age to the reviewers' public keys, stores only
//! ciphertext, and hands reviewers signed, hash-chained batches.
//!
//! It never holds a key that can decrypt what it stores and never records
//! who submitted. The formats it shares with the reviewer are in the
//! `relay-format` crate and specified in `docs/format.md`; the threat model
//! is `SECURITY.md`.
//!
//! Layout: [`config`] (operator's file), [`server`] (listeners), [`web`]
//! (routes; the only module building routers), [`seal`] (the only module
//! importing age), [`store`] (the only module importing sled), [`export`]
//! (batches), [`keys`] (signing key, API token, randomness), [`demo`].
//!
//! Driving the relay without a socket, as the tests do:
//!
//! ```no_run
//! # async fn example() -> Result<(), relay::Error> {
//! let data = std::path::Path::new("relay-data");
//! let config_path = relay::demo::init(data, "127.0.0.1:8443".parse().unwrap())?;
//! let config = relay::config::Config::load(&config_path)?;
//! let state = relay::server::open(data, config)?;
//! let router = relay::web::app(state, relay::web::Listener::Https); // a tower Service
//! # drop(router); Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod archive;
pub mod cli;
pub mod config;
pub mod demo;
mod error;
pub mod export;
pub mod followup;
pub mod form;
mod fsutil;
pub mod keys;
pub mod openrosa;
mod pipeline;
pub mod process;
pub mod seal;
pub mod server;
mod spool;
pub mod store;
pub mod web;

pub use error::{BoxError, Error};
