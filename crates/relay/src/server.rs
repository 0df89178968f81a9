//! Listeners: HTTPS with rustls, bounded and timed out, shut down gracefully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;
use crate::keys::SigningKey;
use crate::seal::Recipients;
use crate::store::Store;
use crate::web::{self, AppState};
use crate::{Error, fsutil};

/// Directory (inside the data directory) of the sled store.
pub const STORE_DIR: &str = "store";
/// Directory (inside the data directory) of upload spools.
pub const SPOOL_DIR: &str = "tmp";

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client has to send its first request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Opens the store and keys in `data_dir` and checks `config`.
pub fn open(data_dir: &Path, config: Config) -> Result<Arc<AppState>, Error> {
    fsutil::create_private_dir(data_dir)?;
    let recipients = Recipients::parse(&config.recipients)?;
    let (signer, created) = SigningKey::load_or_create(data_dir)?;
    if created {
        tracing::info!(
            public_key = %signer.public_base64(),
            "created the relay's batch signing key; give reviewers this public key to pin"
        );
    }
    let spool_dir = data_dir.join(SPOOL_DIR);
    prepare_spool_dir(&spool_dir)?;
    let store = Store::open(
        &data_dir.join(STORE_DIR),
        config.store.cache_mib * 1024 * 1024,
    )?;
    Ok(Arc::new(AppState::new(
        config,
        Arc::new(store),
        recipients,
        signer,
        spool_dir,
    )))
}

/// Creates the spool directory and removes anything left in it. Spools are
/// unnamed files, so normally there is nothing; a named file here could only
/// be left by a crash on a system without `O_TMPFILE`.
fn prepare_spool_dir(dir: &PathBuf) -> Result<(), Error> {
    fsutil::create_private_dir(dir)?;
    for entry in std::fs::read_dir(dir).map_err(Error::io("read", dir))? {
        let entry = entry.map_err(Error::io("read", dir))?;
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(Error::io("remove leftover spool", &path))?;
    }
    Ok(())
}

/// Builds the TLS server configuration from PEM files.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| Error::Tls(format!("certificate {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "certificate {}: no PEM certificate in it",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Tls(format!("private key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("certificate and key do not fit together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A relay serving in the background (used by `serve` and by tests).
#[derive(Debug)]
pub struct Running {
    /// The HTTPS address actually bound (useful with port 0).
    pub https_addr: SocketAddr,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        self.wait().await
    }

    /// Waits until the server stops.
    pub async fn wait(self) -> Result<(), Error> {
        let addr = self.https_addr;
        match self.task.await {
            Ok(result) => result.map_err(|source| Error::Bind { addr, source }),
            Err(_) => Ok(()),
        }
    }
}

/// Binds `listen` and serves the relay over HTTPS in the background.
pub async fn start(state: Arc<AppState>, listen: SocketAddr) -> Result<Running, Error> {
    if state.config.demo && !listen.ip().is_loopback() {
        return Err(Error::NotLoopback(listen, "demo mode"));
    }
    let tls = tls_config(&state.config.tls_cert, &state.config.tls_key)?;
    let listener = std::net::TcpListener::bind(listen).map_err(|source| Error::Bind {
        addr: listen,
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let https_addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: listen,
        source,
    })?;
    let handle = Handle::new();
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(RustlsConfig::from_config(tls))
        .handshake_timeout(HANDSHAKE_TIMEOUT);
    let mut server = axum_server::from_tcp(listener)
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?
        .acceptor(acceptor)
        .handle(handle.clone())
        .first_request_timeout(HEADER_TIMEOUT);
    server
        .http_builder()
        .http1()
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    // No `ConnectInfo`: handlers cannot learn a peer's address.
    let app = web::app(state);
    let task = tokio::spawn(server.serve(app.into_make_service()));
    Ok(Running {
        https_addr,
        handle,
        task,
    })
}

/// Serves until `shutdown` resolves, then shuts down gracefully.
pub async fn serve(
    state: Arc<AppState>,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let running = start(state, listen).await?;
    tracing::info!(address = %running.https_addr, "relay listening (HTTPS)");
    let handle = running.handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    running.wait().await
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
