//! Follow-up sessions: in RAM only.
//!
//! A source who enters a valid codename gets a session: a random 256-bit
//! token in a cookie (`HttpOnly; SameSite=Strict; Path=/followup`, and
//! `Secure` over TLS), mapped here to the thread id and the source's
//! identity, so that reading replies or adding testimony does not need the
//! codename (and another Argon2id run) on every page. Nothing of a session
//! is written anywhere: a restart ends them all. The map is keyed by the
//! SHA-256 of the token, so the token itself is never compared or kept.
//! A session ends after `followup.session_idle_minutes` without a request,
//! on log-out, or when the relay stops; its identity is zeroized then.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use format::ThreadId;
use sha2::Digest as _;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::{SourceSecret, redacted_debug};

redacted_debug!(Token, Active);

/// A session token as sent in the cookie (43 base64url characters).
pub struct Token(Zeroizing<String>);

impl Token {
    /// The cookie value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

struct Session {
    thread: ThreadId,
    secret: SourceSecret,
    last_seen: Instant,
}

/// What a request learns from its session.
pub struct Active {
    /// The source's thread.
    pub thread: ThreadId,
    /// The source's identity (a copy; zeroized when dropped).
    pub secret: SourceSecret,
}

/// The session table.
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
    max: usize,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("idle", &self.idle)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// The session table is full (503, "try later").
#[derive(Debug)]
pub struct Full;

fn key_of(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// An empty table: sessions end after `idle`, at most `max` at once.
    pub fn new(idle: Duration, max: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            idle,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for a source who proved the codename.
    pub fn create(&self, thread: ThreadId, secret: SourceSecret) -> Result<Token, Full> {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= self.max {
            map.retain(|_, s| now.duration_since(s.last_seen) < self.idle);
            if map.len() >= self.max {
                return Err(Full);
            }
        }
        let raw = Zeroizing::new(crate::keys::random_bytes::<32>());
        let token = Token(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*raw),
        ));
        map.insert(
            key_of(token.as_str()),
            Session {
                thread,
                secret,
                last_seen: now,
            },
        );
        Ok(token)
    }

    /// The live session of `token`, if any, marked as just used. An expired
    /// one is removed (and its identity zeroized) here.
    pub fn get(&self, token: &str) -> Option<Active> {
        let key = key_of(token);
        let now = Instant::now();
        let mut map = self.lock();
        let session = map.get_mut(&key)?;
        if now.duration_since(session.last_seen) >= self.idle {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(Active {
            thread: session.thread,
            secret: session.secret.duplicate(),
        })
    }

    /// Ends the session of `token` (log-out). Returns whether there was one.
    pub fn remove(&self, token: &str) -> bool {
        self.lock().remove(&key_of(token)).is_some()
    }

    /// Drops every expired session; run periodically so that an abandoned
    /// session's identity does not stay in memory past its expiry.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.lock()
            .retain(|_, s| now.duration_since(s.last_seen) < self.idle);
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SourceSecret {
        SourceSecret(Zeroizing::new([9; 32]))
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_when_idle_and_end_on_logout() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let thread = ThreadId::from_bytes([1; 16]);
        let token = s.create(thread, secret()).unwrap();
        assert_eq!(token.as_str().len(), 43);
        assert_eq!(s.get(token.as_str()).unwrap().thread, thread);
        // Use keeps it alive.
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(s.get(token.as_str()).is_some());
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(s.get(token.as_str()).is_some());
        // Idle past the limit: gone.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(s.get(token.as_str()).is_none());
        assert!(s.is_empty());

        let token = s.create(thread, secret()).unwrap();
        assert!(s.get("not-a-token").is_none());
        assert!(s.remove(token.as_str()));
        assert!(s.get(token.as_str()).is_none());
        assert!(!s.remove(token.as_str()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded_and_swept() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let thread = ThreadId::from_bytes([1; 16]);
        let a = s.create(thread, secret()).unwrap();
        let _b = s.create(thread, secret()).unwrap();
        assert!(s.create(thread, secret()).is_err());
        assert_ne!(a.as_str(), _b.as_str());
        tokio::time::advance(Duration::from_secs(61)).await;
        // Expired sessions make room.
        assert!(s.create(thread, secret()).is_ok());
        tokio::time::advance(Duration::from_secs(61)).await;
        s.sweep();
        assert!(s.is_empty());
    }
}
