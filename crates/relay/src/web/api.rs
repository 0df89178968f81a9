//! The reviewer API: pull batches, acknowledge them, push replies.
//!
//! Every route needs `Authorization: Bearer <token>`. The config holds only
//! the token's SHA-256, compared in constant time. Spec: `docs/format.md`,
//! "Reviewer API".

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use format::{AckRequest, AckResponse, BatchId, BatchListing, BatchSummary};
use tokio::sync::mpsc;

use super::AppState;
use crate::Error;
use crate::export;
use crate::keys::token_matches;
use crate::store::{AckOutcome, BatchRecord};

pub(super) fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/batches", get(list))
        .route("/batches/next", get(next))
        .route("/batches/{id}", get(download))
        .route("/batches/{id}/ack", post(ack))
        .route(
            "/replies",
            post(import_replies).layer(axum::extract::DefaultBodyLimit::max(
                format::MAX_SIGNED_BUNDLE_BYTES,
            )),
        )
        .layer(axum::middleware::from_fn_with_state(state, require_token))
}

/// Refuses requests without the right bearer token.
async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(token) if token_matches(token, &state.config.api_token_sha256) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required\n",
        )
            .into_response(),
    }
}

fn plain(status: StatusCode, msg: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

fn internal(route: &'static str, e: &Error) -> Response {
    tracing::warn!(route, status = 500, error = %e, "reviewer API request failed");
    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| {
        Err(Error::Store {
            action: "run a blocking task",
            source: "the task panicked".into(),
        })
    })
}

async fn list(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    match blocking(move || store.unacked_batches()).await {
        Ok(records) => axum::Json(BatchListing {
            batches: records
                .into_iter()
                .map(|r| BatchSummary {
                    batch_id: r.batch_id,
                    sequence: r.sequence,
                    submissions: r.submissions,
                })
                .collect(),
        })
        .into_response(),
        Err(e) => internal("/api/v1/batches", &e),
    }
}

async fn next(State(state): State<Arc<AppState>>) -> Response {
    let s = state.clone();
    let created = blocking(move || {
        export::create_batch(
            &s.batch_lock,
            &s.store,
            &s.signer,
            s.config.limits.max_batch_submissions,
            s.config.demo,
        )
    })
    .await;
    match created {
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Ok(Some(record)) => {
            // Durable before it is handed out, so a crash cannot reuse the
            // sequence number for a different batch.
            if let Err(e) = state.store.sync().await {
                return internal("/api/v1/batches/next", &e);
            }
            stream_batch(state, record).await
        }
        Err(e) => internal("/api/v1/batches/next", &e),
    }
}

async fn download(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<BatchId>() else {
        return plain(StatusCode::NOT_FOUND, "no such batch\n");
    };
    let store = state.store.clone();
    match blocking(move || store.batch(&id)).await {
        Ok(Some(record)) if !record.acked => stream_batch(state, record).await,
        Ok(_) => plain(StatusCode::NOT_FOUND, "no such unacknowledged batch\n"),
        Err(e) => internal("/api/v1/batches/{id}", &e),
    }
}

async fn ack(State(state): State<Arc<AppState>>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(id) = id.parse::<BatchId>() else {
        return plain(StatusCode::NOT_FOUND, "no such batch\n");
    };
    let Ok(request) = serde_json::from_slice::<AckRequest>(&body) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "expected JSON {\"manifest_sha256\": \"<64 hex digits>\"}\n",
        );
    };
    let store = state.store.clone();
    let outcome = blocking(move || store.ack(&id, &request.manifest_sha256)).await;
    match outcome {
        Ok(outcome) => {
            if let Err(e) = state.store.sync().await {
                return internal("/api/v1/batches/{id}/ack", &e);
            }
            let deleted = match outcome {
                AckOutcome::Deleted(n) => n,
                AckOutcome::AlreadyAcked => 0,
            };
            axum::Json(AckResponse { deleted }).into_response()
        }
        Err(Error::UnknownBatch(_)) => plain(StatusCode::NOT_FOUND, "no such batch\n"),
        Err(Error::AckMismatch(_)) => plain(
            StatusCode::CONFLICT,
            "manifest hash does not match this batch; nothing was deleted\n",
        ),
        Err(e) => internal("/api/v1/batches/{id}/ack", &e),
    }
}

/// Streams a batch's tar, with its exact Content-Length so a client can tell
/// a cut-off download from a complete one.
/// `POST /api/v1/replies`: a signed reply bundle from the reviewers (JSON).
/// All or nothing: 400 if it is malformed, 403 if it is unsigned or not
/// signed by a key in `[reviewers] reply_signing_keys` (the API token alone
/// cannot put words in the NGO's mouth), 422 if a reply names a thread this
/// relay does not hold or is not an age file; otherwise 200 and what was
/// stored. The relay cannot read the replies.
async fn import_replies(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let store = state.store.clone();
    let pinned = state.config.reply_signing_keys.clone();
    match blocking(move || crate::followup::import_replies(&store, &body, &pinned)).await {
        Ok(outcome) => axum::Json(outcome).into_response(),
        Err(Error::MalformedReplies(reason)) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("not a reply bundle, nothing stored: {reason}\n"),
        )
            .into_response(),
        Err(e @ Error::UnsignedReplies(_)) => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{e}\n"),
        )
            .into_response(),
        Err(Error::BadReplies(reason)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("reply bundle refused, nothing stored: {reason}\n"),
        )
            .into_response(),
        Err(e) => internal("/api/v1/replies", &e),
    }
}

async fn stream_batch(state: Arc<AppState>, record: BatchRecord) -> Response {
    let s = state.clone();
    let seq = record.sequence;
    let length = match blocking(move || export::batch_len(&s.store, seq)).await {
        Ok(n) => n,
        Err(e) => return internal("/api/v1/batches", &e),
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let file_name = format!("batch-{:06}-{}.tar", record.sequence, record.batch_id);
    tokio::task::spawn_blocking(move || {
        let writer = BufWriter::with_capacity(64 * 1024, ChannelWriter { tx: tx.clone() });
        let result = export::write_batch(&state.store, &record, writer).and_then(|mut w| {
            w.flush().map_err(|e| Error::Store {
                action: "send a batch",
                source: Box::new(e),
            })
        });
        if let Err(e) = result {
            tracing::warn!(route = "/api/v1/batches", error = %e, "batch download interrupted");
            let _ = tx.blocking_send(Err(io::Error::other("batch interrupted")));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(header::CONTENT_LENGTH, length)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        )
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
}

/// A `Write` that hands its bytes to the response stream.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
