//! Reading an upload's body defensively: a pace the client must keep, and a
//! bound on what the multipart parser may buffer while it looks for a
//! part's head.
//!
//! Pace. An upload holds one of the few upload slots until its body ends,
//! so a client that stalls, or trickles a byte a second, must not keep it
//! for ever. Each read gets a deadline. It starts `limits.body_idle_seconds`
//! ahead; every byte received moves it on by the time that byte takes at
//! `limits.min_body_bytes_per_second`, but never to more than
//! `body_idle_seconds` from now. So an upload is cut when it pauses for
//! `body_idle_seconds`, or falls that far behind the minimum rate on
//! average; a fast upload may pause as long as a slow one. Time the relay
//! spends between reads (waiting for the disk) is not counted against the
//! client.
//!
//! Part heads. The parser (multer, under axum's `Multipart`) keeps
//! everything it reads in memory until it finds the blank line that ends a
//! part's head, and searches the whole buffer again at every read: a
//! "head" hundreds of MiB long would cost that much memory per upload and
//! quadratic time. While the parser looks for a head, the body it may pull
//! is therefore limited to [`HEAD_READ_LIMIT`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::extract::multipart::{Field, Multipart, MultipartError};
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::Instant;

use crate::config::Limits;

/// Most body bytes the parser may pull while looking for one part's head.
/// A real head is a few hundred bytes; the rest is what the parser reads
/// ahead in one go (one HTTP/1.1 read, or one HTTP/2 flow-control window
/// of 1 MiB).
pub(super) const HEAD_READ_LIMIT: u64 = 4 * 1024 * 1024;

/// No head being looked for: no limit.
const NO_HEAD: u64 = u64::MAX;

/// Why reading the body stopped early.
#[derive(Debug)]
pub(super) enum Stop {
    /// The body is malformed, too large, or ended early.
    Multipart(MultipartError),
    /// The client paused too long or sent too slowly.
    Stalled,
}

/// The upload's body reader: deadlines and the head limit.
#[derive(Debug)]
pub(super) struct BodyReader {
    idle: Duration,
    min_rate: u64,
    /// Set at the first read: waiting for an upload slot is not the
    /// client's time either.
    deadline: Option<Instant>,
    /// When the last read ended; the time since is the relay's own.
    last_read: Option<Instant>,
    /// Bytes the parser may still pull for the head it is looking for
    /// ([`NO_HEAD`] while it reads a part's data).
    head_left: Arc<AtomicU64>,
}

impl BodyReader {
    /// Wraps `request`'s body so the head limit applies to it. The clock
    /// starts at the first read.
    pub(super) fn new(limits: &Limits, request: Request) -> (Self, Request) {
        let head_left = Arc::new(AtomicU64::new(NO_HEAD));
        let request = request.map(|body| {
            Body::from_stream(HeadLimited {
                inner: body.into_data_stream(),
                head_left: head_left.clone(),
            })
        });
        let reader = Self {
            idle: Duration::from_secs(limits.body_idle_seconds),
            min_rate: limits.min_body_bytes_per_second,
            deadline: None,
            last_read: None,
            head_left,
        };
        (reader, request)
    }

    /// The next part, within the deadline and the head limit.
    pub(super) async fn next_field<'m>(
        &mut self,
        multipart: &'m mut Multipart,
    ) -> Result<Option<Field<'m>>, Stop> {
        self.head_left.store(HEAD_READ_LIMIT, Ordering::Relaxed);
        let field = self.paced(multipart.next_field()).await;
        self.head_left.store(NO_HEAD, Ordering::Relaxed);
        field?.map_err(Stop::Multipart)
    }

    /// The next piece of a part's data, within the deadline.
    pub(super) async fn chunk(&mut self, field: &mut Field<'_>) -> Result<Option<Bytes>, Stop> {
        let chunk = self.paced(field.chunk()).await?.map_err(Stop::Multipart)?;
        if let Some(bytes) = &chunk {
            self.credit(bytes.len());
        }
        Ok(chunk)
    }

    async fn paced<T>(&mut self, read: impl Future<Output = T>) -> Result<T, Stop> {
        let now = Instant::now();
        let deadline = match (self.deadline, self.last_read.take()) {
            (Some(deadline), Some(last)) => deadline + (now - last),
            (Some(deadline), None) => deadline,
            (None, _) => now + self.idle,
        };
        self.deadline = Some(deadline);
        let out = tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| Stop::Stalled)?;
        self.last_read = Some(Instant::now());
        Ok(out)
    }

    /// Moves the deadline on for `bytes` received.
    fn credit(&mut self, bytes: usize) {
        let cap = Instant::now() + self.idle;
        let earned = match self.min_rate {
            0 => self.idle,
            rate => Duration::from_nanos((bytes as u64).saturating_mul(1_000_000_000) / rate),
        };
        self.deadline = Some(
            self.deadline
                .and_then(|d| d.checked_add(earned))
                .map_or(cap, |later| later.min(cap)),
        );
    }
}

/// The body stream, failing once the parser has pulled more than its head
/// budget while looking for a head.
struct HeadLimited<S> {
    inner: S,
    head_left: Arc<AtomicU64>,
}

impl<S> Stream for HeadLimited<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = Result<Bytes, axum::BoxError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let item = std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_next(cx));
        let Some(Ok(bytes)) = item else {
            return Poll::Ready(item.map(|r| r.map_err(Into::into)));
        };
        let left = self.head_left.load(Ordering::Relaxed);
        if left != NO_HEAD {
            let Some(rest) = left.checked_sub(bytes.len() as u64) else {
                return Poll::Ready(Some(Err("a part's head is too long".into())));
            };
            self.head_left.store(rest, Ordering::Relaxed);
        }
        Poll::Ready(Some(Ok(bytes)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reader(idle: u64, rate: u64) -> BodyReader {
        let limits = Limits {
            body_idle_seconds: idle,
            min_body_bytes_per_second: rate,
            ..Limits::default()
        };
        BodyReader::new(&limits, Request::new(Body::empty())).0
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_falls_behind_the_minimum_rate() {
        let mut r = reader(2, 1024);
        let start = Instant::now();
        // One byte a second earns about a millisecond a second.
        loop {
            let wait = r.paced(tokio::time::sleep(Duration::from_secs(1))).await;
            if wait.is_err() {
                break;
            }
            r.credit(1);
            assert!(start.elapsed() < Duration::from_secs(5), "never cut");
        }
        let cut = start.elapsed();
        assert!(
            cut >= Duration::from_secs(2) && cut < Duration::from_secs(3),
            "{cut:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_upload_may_pause_for_the_idle_time_but_no_longer() {
        for (pause, ok) in [(1900, true), (2100, false)] {
            let mut r = reader(2, 1024);
            // 20 s at 640 KiB/s: far ahead of the minimum rate, but the
            // deadline never runs further ahead than the idle time.
            for _ in 0..200 {
                r.paced(tokio::time::sleep(Duration::from_millis(100)))
                    .await
                    .unwrap();
                r.credit(64 * 1024);
            }
            let paused = r
                .paced(tokio::time::sleep(Duration::from_millis(pause)))
                .await;
            assert_eq!(paused.is_ok(), ok, "pause of {pause} ms");
        }
    }

    #[tokio::test]
    async fn a_part_head_that_never_ends_is_cut_at_the_head_limit() {
        use tower::ServiceExt as _;
        // An endless part head, in 64 KiB pieces, counting what is pulled.
        let pulled = Arc::new(AtomicU64::new(0));
        let counter = pulled.clone();
        let mut first = true;
        let body = futures_util::stream::repeat_with(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            let piece = if std::mem::take(&mut first) {
                b"--B\r\nContent-Disposition: form-data; name=\"text\"\r\nX: ".to_vec()
            } else {
                vec![b'a'; 64 * 1024]
            };
            Ok::<_, std::io::Error>(Bytes::from(piece))
        });
        let request = Request::builder()
            .method("POST")
            .header("content-type", "multipart/form-data; boundary=B")
            .body(Body::from_stream(body))
            .unwrap();
        // Through a router without a body limit, as an upload's large limit
        // would be: only the head limit can stop this.
        async fn handler(request: Request) -> String {
            use axum::extract::FromRequest as _;
            let (mut reader, request) = BodyReader::new(&Limits::default(), request);
            let mut multipart = Multipart::from_request(request, &()).await.unwrap();
            match reader.next_field(&mut multipart).await {
                Err(Stop::Multipart(_)) => "refused".into(),
                other => format!("{other:?}"),
            }
        }
        let app = axum::Router::new()
            .route("/", axum::routing::post(handler))
            .layer(axum::extract::DefaultBodyLimit::disable());
        let response = app.oneshot(request).await.unwrap();
        let text = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&text[..], b"refused");
        let pieces = pulled.load(Ordering::Relaxed);
        assert!(
            pieces <= HEAD_READ_LIMIT / (64 * 1024) + 2,
            "{pieces} pieces of 64 KiB pulled"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_relays_own_time_is_not_counted() {
        let mut r = reader(2, 0);
        r.paced(std::future::ready(())).await.unwrap();
        // The relay is busy (the disk is slow) for longer than the idle time.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            r.paced(tokio::time::sleep(Duration::from_millis(1900)))
                .await
                .is_ok()
        );
    }
}
