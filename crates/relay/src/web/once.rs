//! One-time form tokens: a reload of the success page ("Resend?", which Tor
//! Browser asks and people answer yes) must not store the testimony a
//! second time, nor draw a second codename.
//!
//! Every render of the form carries a fresh random token in a hidden field.
//! Nothing is kept when it is issued; once a submission carrying it is
//! stored, the token goes into a bounded set in RAM for [`TTL`]. A later
//! POST with a token in the set gets the "already received" page and
//! stores nothing. A token the set does not hold (never seen, forgotten
//! after [`TTL`], lost in a restart, or missing) is never a reason to
//! refuse: the submission is stored as usual. So the token links nothing
//! on disk (it is never stored or put in a batch), and a source who wrote
//! for hours, or whose relay restarted, loses nothing. Two POSTs of one
//! form at the same moment (a double click) may both be stored: better a
//! duplicate than a lost testimony.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// How long a used token is remembered.
pub(super) const TTL: Duration = Duration::from_secs(6 * 60 * 60);
/// Most used tokens remembered at once; past it, the oldest is forgotten.
pub(super) const MAX_USED: usize = 16_384;

/// The form field that carries the token.
pub(super) const FIELD: &str = "once";

/// Used tokens, with when each was used.
#[derive(Debug)]
pub(crate) struct FormTokens {
    used: Mutex<HashMap<[u8; 16], Instant>>,
}

impl Default for FormTokens {
    fn default() -> Self {
        Self {
            used: Mutex::new(HashMap::with_capacity(MAX_USED + 1)),
        }
    }
}

impl FormTokens {
    /// A fresh token for a form render (22 base64url characters).
    pub(super) fn fresh() -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::keys::random_bytes::<16>())
    }

    /// The token a form sent, if it has the right shape.
    pub(super) fn parse(value: &str) -> Option<[u8; 16]> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim())
            .ok()?;
        bytes.try_into().ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Instant>> {
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a submission with this token was stored within [`TTL`].
    pub(super) fn was_used(&self, token: &[u8; 16]) -> bool {
        self.lock().get(token).is_some_and(|at| at.elapsed() < TTL)
    }

    /// Remembers that a submission with this token is stored.
    pub(super) fn mark_used(&self, token: [u8; 16]) {
        let mut used = self.lock();
        if used.len() >= MAX_USED {
            used.retain(|_, at| at.elapsed() < TTL);
        }
        if used.len() >= MAX_USED
            && let Some(oldest) = used.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
        {
            used.remove(&oldest);
        }
        used.insert(token, Instant::now());
    }

    /// Tokens remembered now (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_remembered_once_used_and_the_set_is_bounded() {
        let t = FormTokens::default();
        let a = FormTokens::parse(&FormTokens::fresh()).unwrap();
        assert!(!t.was_used(&a));
        t.mark_used(a);
        assert!(t.was_used(&a));
        assert!(FormTokens::parse("not a token").is_none());
        assert!(FormTokens::parse("").is_none());
        for i in 0..(MAX_USED as u32 + 10) {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_be_bytes());
            k[15] = 1;
            t.mark_used(k);
        }
        assert_eq!(t.len(), MAX_USED);
        // The oldest went first.
        assert!(!t.was_used(&a));
    }
}
