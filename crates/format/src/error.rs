//! The one error type of the format crate.

/// Why a structure could not be parsed.
///
/// Every variant names the rule that was broken, so a reviewer who sees the
/// message can tell a corrupted file from a version mismatch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not valid JSON for this structure (syntax, a missing or
    /// unknown field, a value of the wrong type).
    #[error("malformed {what}: {source}")]
    Json {
        /// Which structure was being parsed.
        what: &'static str,
        /// The parser's own description.
        #[source]
        source: serde_json::Error,
    },
    /// The structure declares a format version this build does not know.
    #[error("unsupported {what} format {found:?} (this build reads {expected:?})")]
    UnsupportedFormat {
        /// Which structure was being parsed.
        what: &'static str,
        /// The version found.
        found: String,
        /// The version this build reads.
        expected: &'static str,
    },
    /// The structure parsed but breaks a rule of the specification.
    #[error("invalid {what}: {rule}")]
    Invalid {
        /// Which structure was being parsed.
        what: &'static str,
        /// The rule that was broken, quoted from `docs/format.md`.
        rule: String,
    },
    /// The input is larger than the specification allows.
    #[error("{what} is too large ({size} bytes, at most {max})")]
    TooLarge {
        /// Which structure was being parsed.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The maximum size.
        max: usize,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, rule: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            rule: rule.into(),
        }
    }
}
