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
//! A flood cannot take follow-up away from everyone: each thread
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
use hmac::Mac as _;
use sha2::Digest as _;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::{Codename, SourceSecret, redacted_debug};

redacted_debug!(Token, Active, Tag);

/// The keyed hash of a codename that finds its live session (see the module
/// documentation).
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct Tag([u8; 32]);

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
    tag: Tag,
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
    /// Each codename's one session, by its [`Tag`].
    by_tag: HashMap<[u8; 32], [u8; 32]>,
}

impl Table {
    fn remove(&mut self, key: &[u8; 32]) -> Option<Session> {
        let session = self.by_token.remove(key)?;
        self.by_thread.remove(&session.thread);
        self.by_tag.remove(&session.tag.0);
        Some(session)
    }

    fn retain_live(&mut self, now: Instant, idle: Duration) {
        self.by_token
            .retain(|_, s| now.duration_since(s.last_seen) < idle);
        let by_token = &self.by_token;
        self.by_thread.retain(|_, k| by_token.contains_key(k));
        self.by_tag.retain(|_, k| by_token.contains_key(k));
    }

    /// Inserts `session` under a new token (the caller made room).
    fn insert(&mut self, session: Session) -> Token {
        let raw = Zeroizing::new(crate::keys::random_bytes::<32>());
        let token = Token(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*raw),
        ));
        let key = key_of(token.as_str());
        self.by_thread.insert(session.thread, key);
        self.by_tag.insert(session.tag.0, key);
        self.by_token.insert(key, session);
        token
    }
}

/// The session table.
pub struct Sessions {
    map: Mutex<Table>,
    idle: Duration,
    max: usize,
    /// The [`Tag`] key: random per process, never written.
    tag_key: Zeroizing<[u8; 32]>,
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
            by_tag: HashMap::with_capacity(max.saturating_add(1)),
        };
        Self {
            map: Mutex::new(table),
            idle,
            max,
            tag_key: Zeroizing::new(crate::keys::random_bytes::<32>()),
        }
    }

    /// The [`Tag`] of `codename` (one HMAC-SHA256; no Argon2id).
    pub fn tag(&self, codename: &Codename) -> Tag {
        #[allow(clippy::expect_used)] // HMAC takes a key of any length
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.tag_key[..])
            .expect("HMAC accepts a 32-byte key");
        mac.update(codename.as_str().as_bytes());
        Tag(mac.finalize().into_bytes().into())
    }

    /// A log-in with a codename whose session is live: that session ends
    /// and the same thread and identity continue under a new token, with
    /// no derivation. `None` when there is no live session for `tag` (then
    /// derive, and [`Sessions::create`]).
    pub fn renew(&self, tag: Tag) -> Option<Token> {
        let now = Instant::now();
        let mut map = self.lock();
        let key = *map.by_tag.get(&tag.0)?;
        let mut session = map.remove(&key)?;
        if now.duration_since(session.last_seen) >= self.idle {
            return None;
        }
        session.last_seen = now;
        Some(map.insert(session))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for a source who proved the codename: the thread's
    /// earlier session, if any, ends; if the table is full, expired
    /// sessions go, then the least recently used one.
    pub fn create(&self, thread: ThreadId, secret: SourceSecret, tag: Tag) -> Result<Token, Full> {
        if self.max == 0 {
            return Err(Full);
        }
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(old) = map.by_thread.get(&thread).copied() {
            map.remove(&old);
        }
        if let Some(old) = map.by_tag.get(&tag.0).copied() {
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
        Ok(map.insert(Session {
            thread,
            secret,
            tag,
            last_seen: now,
        }))
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
        t.by_token
            .capacity()
            .min(t.by_thread.capacity())
            .min(t.by_tag.capacity())
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

    fn tag(n: u8) -> Tag {
        Tag([n; 32])
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_codename_renews_its_session_without_a_derivation() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let thread = ThreadId::from_bytes([1; 16]);
        let codename = Codename::generate();
        let tag = s.tag(&codename);
        // Keyed: the same codename gives the same tag in this process, and
        // another process (another key) gives another.
        assert!(tag == s.tag(&Codename::parse(codename.as_str()).unwrap()));
        assert!(tag != Sessions::new(Duration::from_secs(60), 10).tag(&codename));
        assert!(tag != s.tag(&Codename::generate()));

        assert!(s.renew(tag).is_none(), "no session yet: derive first");
        let first = s.create(thread, secret(), tag).unwrap();
        let second = s.renew(tag).expect("a live session renews");
        assert!(s.get(first.as_str()).is_none(), "the old token ended");
        let active = s.get(second.as_str()).unwrap();
        assert_eq!(active.thread, thread);
        assert_eq!(*active.secret.0, [9; 32]);
        assert_eq!(s.len(), 1);

        // Idle past the limit: no renewal, and the session is gone.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(s.renew(tag).is_none());
        assert!(s.is_empty());
        // Log-out ends the renewal too.
        let third = s.create(thread, secret(), tag).unwrap();
        assert!(s.remove(third.as_str()));
        assert!(s.renew(tag).is_none());
        // Eviction takes the tag with the session.
        let small = Sessions::new(Duration::from_secs(60), 1);
        small.create(thread, secret(), tag).unwrap();
        small
            .create(ThreadId::from_bytes([2; 16]), secret(), super::Tag([7; 32]))
            .unwrap();
        assert!(small.renew(tag).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_when_idle_and_end_on_logout() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let thread = ThreadId::from_bytes([1; 16]);
        let token = s.create(thread, secret(), tag(1)).unwrap();
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

        let token = s.create(thread, secret(), tag(1)).unwrap();
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
        let mut last = s.create(t(1), secret(), tag(1)).unwrap();
        for _ in 0..1000 {
            let next = s.create(t(1), secret(), tag(1)).unwrap();
            assert!(s.get(last.as_str()).is_none(), "the old session ended");
            last = next;
        }
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(last.as_str()).unwrap().thread, t(1));

        // Full: the least recently used goes, never a refusal.
        tokio::time::advance(Duration::from_secs(1)).await;
        let b = s.create(t(2), secret(), tag(2)).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let c = s.create(t(3), secret(), tag(3)).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(s.get(last.as_str()).is_some()); // t(1) used again: b is oldest
        let d = s.create(t(4), secret(), tag(4)).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.get(b.as_str()).is_none());
        for live in [&last, &c, &d] {
            assert!(s.get(live.as_str()).is_some());
        }
        // A flood of other threads evicts, but never grows the maps.
        for n in 10..200 {
            s.create(t(n), secret(), tag(n)).unwrap();
        }
        assert_eq!((s.len(), s.capacity()), (3, capacity));

        tokio::time::advance(Duration::from_secs(61)).await;
        s.sweep();
        assert!(s.is_empty());
        assert!(
            Sessions::new(Duration::from_secs(60), 0)
                .create(t(1), secret(), tag(1))
                .is_err()
        );
    }
}
