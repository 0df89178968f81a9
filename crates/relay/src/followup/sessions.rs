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
//!
//! A flood cannot take follow-up away from everyone (issue 15): each thread
//! has at most one session (a new log-in replaces the old one, so one
//! codename logged in a thousand times holds one entry), and a full table
//! evicts the least recently used session instead of refusing log-ins. Both
//! maps are allocated at their full size at start, so they never grow and
//! never leave copies of identities behind in freed memory.

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

#[derive(Default)]
struct Table {
    /// By the SHA-256 of the token.
    by_token: HashMap<[u8; 32], Session>,
    /// Each thread's one session.
    by_thread: HashMap<ThreadId, [u8; 32]>,
}

impl Table {
    fn remove(&mut self, key: &[u8; 32]) -> Option<Session> {
        let session = self.by_token.remove(key)?;
        self.by_thread.remove(&session.thread);
        Some(session)
    }

    fn retain_live(&mut self, now: Instant, idle: Duration) {
        self.by_token
            .retain(|_, s| now.duration_since(s.last_seen) < idle);
        let by_token = &self.by_token;
        self.by_thread.retain(|_, k| by_token.contains_key(k));
    }
}

/// The session table.
pub struct Sessions {
    map: Mutex<Table>,
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

/// The session table holds no session at all (`max_sessions` 0): 503.
#[derive(Debug)]
pub struct Full;

fn key_of(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// An empty table: sessions end after `idle`, at most `max` at once.
    pub fn new(idle: Duration, max: usize) -> Self {
        // Sized once for `max` (plus the one being added), so that neither
        // map reallocates while identities are in it.
        let table = Table {
            by_token: HashMap::with_capacity(max.saturating_add(1)),
            by_thread: HashMap::with_capacity(max.saturating_add(1)),
        };
        Self {
            map: Mutex::new(table),
            idle,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for a source who proved the codename: the thread's
    /// earlier session, if any, ends; if the table is full, expired
    /// sessions go, then the least recently used one.
    pub fn create(&self, thread: ThreadId, secret: SourceSecret) -> Result<Token, Full> {
        if self.max == 0 {
            return Err(Full);
        }
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(old) = map.by_thread.get(&thread).copied() {
            map.remove(&old);
        }
        if map.by_token.len() >= self.max {
            map.retain_live(now, self.idle);
        }
        while map.by_token.len() >= self.max {
            let Some(oldest) = map
                .by_token
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
            else {
                break;
            };
            map.remove(&oldest);
        }
        let raw = Zeroizing::new(crate::keys::random_bytes::<32>());
        let token = Token(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*raw),
        ));
        let key = key_of(token.as_str());
        map.by_token.insert(
            key,
            Session {
                thread,
                secret,
                last_seen: now,
            },
        );
        map.by_thread.insert(thread, key);
        Ok(token)
    }

    /// The live session of `token`, if any, marked as just used. An expired
    /// one is removed (and its identity zeroized) here.
    pub fn get(&self, token: &str) -> Option<Active> {
        let key = key_of(token);
        let now = Instant::now();
        let mut map = self.lock();
        let session = map.by_token.get_mut(&key)?;
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
        self.lock().retain_live(Instant::now(), self.idle);
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.lock().by_token.len()
    }

    /// How many sessions the table can hold without reallocating (tests:
    /// it never grows).
    pub fn capacity(&self) -> usize {
        let t = self.lock();
        t.by_token.capacity().min(t.by_thread.capacity())
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
    async fn one_session_per_thread_and_a_full_table_evicts_the_least_recent() {
        let s = Sessions::new(Duration::from_secs(60), 3);
        let capacity = s.capacity();
        assert!(capacity >= 3);
        let t = |n: u8| ThreadId::from_bytes([n; 16]);
        // A thousand log-ins with one codename hold one session.
        let mut last = s.create(t(1), secret()).unwrap();
        for _ in 0..1000 {
            let next = s.create(t(1), secret()).unwrap();
            assert!(s.get(last.as_str()).is_none(), "the old session ended");
            last = next;
        }
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(last.as_str()).unwrap().thread, t(1));

        // Full: the least recently used goes, never a refusal.
        tokio::time::advance(Duration::from_secs(1)).await;
        let b = s.create(t(2), secret()).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let c = s.create(t(3), secret()).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(s.get(last.as_str()).is_some()); // t(1) used again: b is oldest
        let d = s.create(t(4), secret()).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.get(b.as_str()).is_none());
        for live in [&last, &c, &d] {
            assert!(s.get(live.as_str()).is_some());
        }
        // A flood of other threads evicts, but never grows the maps.
        for n in 10..200 {
            s.create(t(n), secret()).unwrap();
        }
        assert_eq!((s.len(), s.capacity()), (3, capacity));

        tokio::time::advance(Duration::from_secs(61)).await;
        s.sweep();
        assert!(s.is_empty());
        assert!(
            Sessions::new(Duration::from_secs(60), 0)
                .create(t(1), secret())
                .is_err()
        );
    }
}
