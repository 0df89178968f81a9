//! Listeners: HTTPS with rustls, bounded and timed out, shut down gracefully.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum_server::Control;
use axum_server::Handle;
use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, Limits, TlsVersion};
use crate::keys::SigningKey;
use crate::seal::{Recipients, Spools};
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
/// How often the certificate files are checked for changes.
const TLS_POLL: Duration = Duration::from_secs(30);
/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers) in bytes; a longer one
/// gets 431 and the connection is closed.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// File descriptors kept back from connections, for the store, listeners
/// and logs (each upload's two files are counted apart).
const RESERVED_FDS: u64 = 128;
/// Least time between two "connection limit reached" warnings.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(60);

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
    let spools = prepare_spool_dir(&spool_dir, config.limits.max_concurrent_uploads)?;
    let store = Store::open_with(
        &data_dir.join(STORE_DIR),
        config.store.options(config.limits.max_concurrent_uploads),
    )?;
    // The spool's files get the same cover as the store's.
    let mut covered = spools.paths();
    covered.push(spool_dir.clone());
    covered.push(data_dir.to_owned());
    store.cover_also(covered);
    let followup = if config.followup.enabled {
        let (salt, created) = crate::followup::Salt::load_or_create(data_dir)?;
        if created {
            tracing::info!(
                file = crate::followup::SALT_FILE,
                "created the follow-up salt; back it up with the signing key: without it no codename is recognised"
            );
        }
        Some(crate::followup::Followup::new(&config.followup, salt)?)
    } else {
        None
    };
    let mut state = AppState::new(config, Arc::new(store), recipients, signer, spools);
    state.followup = followup;
    Ok(Arc::new(state))
}

/// Creates the spool directory with its pool of `count` spool files
/// (emptied: a crash may have left encrypted bytes whose key is gone), and
/// removes anything else in it (spools of older versions).
fn prepare_spool_dir(dir: &Path, count: usize) -> Result<Spools, Error> {
    fsutil::create_private_dir(dir)?;
    let pool: std::collections::BTreeSet<String> =
        (0..count).map(|i| format!("spool-{i:02}")).collect();
    for entry in std::fs::read_dir(dir).map_err(Error::io("read", dir))? {
        let entry = entry.map_err(Error::io("read", dir))?;
        let path = entry.path();
        if pool.contains(&*entry.file_name().to_string_lossy()) && path.is_file() {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(Error::io("remove leftover spool", &path))?;
    }
    Spools::open(dir, count)
}

/// A PEM file's problem in words (a missing file says so, not "Io(...)").
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) if io.kind() == io::ErrorKind::NotFound => {
            "no such file".to_owned()
        }
        rustls::pki_types::pem::Error::Io(io) => format!("cannot read it ({io})"),
        other => format!("not a valid PEM file ({other:?})"),
    }
}

/// Builds the TLS server configuration from PEM files.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    min_version: TlsVersion,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            Error::Tls(format!(
                "certificate {} (config key `tls.cert`): {}: point `tls.cert` at the PEM certificate (chain) file",
                cert.display(),
                pem_problem(&e)
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "certificate {} (config key `tls.cert`): no PEM certificate in it: point `tls.cert` at the PEM certificate (chain) file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        Error::Tls(format!(
            "private key {} (config key `tls.key`): {}: point `tls.key` at the certificate's PEM private key file",
            key.display(),
            pem_problem(&e)
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Tls(format!(
                "the certificate (`tls.cert`) and the private key (`tls.key`) do not fit together ({e}): give the key the certificate was issued for"
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // No session resumption (docs/decisions.md, "No TLS session resumption"): a TLS 1.3 ticket or a session id
    // the relay hands out comes back on the source's next visit, which
    // would let anyone watching the running relay link a clearnet source's
    // visits for the ticket's lifetime (24 h). Every connection is a full
    // handshake instead (docs/benchmarks.md measures what that costs).
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.ticketer = Arc::new(NoTickets);
    Ok(Arc::new(config))
}

/// A ticketer that issues no tickets (so TLS 1.2 clients get none
/// either). rustls's default is already this; it is spelt out so that a
/// change of default cannot bring resumption back.
#[derive(Debug)]
struct NoTickets;

impl rustls::server::ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// The relay's TLS material, reloadable while serving.
#[derive(Clone, Debug)]
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    min_version: TlsVersion,
    live: RustlsConfig,
}

impl Tls {
    fn stamp(&self) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((m(&self.cert)?, m(&self.key)?))
    }

    /// Loads the files again; on failure keeps serving the old ones.
    fn reload(&self) -> Result<(), Error> {
        let config = tls_config(&self.cert, &self.key, self.min_version)?;
        self.live.reload_from_config(config);
        Ok(())
    }
}

/// Reloads the certificate on SIGHUP, and when the files change (checked
/// every [`TLS_POLL`]), without dropping connections. The caller registers
/// the SIGHUP handler before spawning this, so that a SIGHUP arriving at any
/// moment after start-up reloads instead of killing the process.
async fn watch_tls(tls: Tls, mut hup: Option<tokio::signal::unix::Signal>) {
    let mut last = tls.stamp();
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let forced = tokio::select! {
            () = hangup => true,
            () = tokio::time::sleep(TLS_POLL) => false,
        };
        let now = tls.stamp();
        if !forced && now == last {
            continue;
        }
        last = now;
        match tls.reload() {
            Ok(()) => tracing::info!("reloaded the TLS certificate"),
            Err(e) => tracing::error!(error = %e, "kept the old TLS certificate"),
        }
    }
}

/// A relay serving in the background (used by `serve` and by tests).
#[derive(Debug)]
pub struct Running {
    /// The HTTPS address actually bound (useful with port 0).
    pub https_addr: Option<SocketAddr>,
    /// The plain-HTTP (onion) address actually bound.
    pub onion_addr: Option<SocketAddr>,
    /// The API-only address actually bound (`[api] listen`).
    pub api_addr: Option<SocketAddr>,
    control: Control,
    tls: Option<Tls>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    sweeper: Option<tokio::task::JoinHandle<()>>,
    reporter: Option<tokio::task::JoinHandle<()>>,
    status: Option<(tokio::task::JoinHandle<()>, PathBuf)>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.control.graceful_shutdown(Some(SHUTDOWN_GRACE));
        self.wait().await
    }

    /// Reloads the TLS certificate and key from their files now.
    pub fn reload_tls(&self) -> Result<(), Error> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// Waits until the servers stop.
    pub async fn wait(mut self) -> Result<(), Error> {
        let mut result = Ok(());
        for task in self.tasks.drain(..) {
            if let Ok(Err(e)) = task.await {
                self.control.graceful_shutdown(Some(SHUTDOWN_GRACE));
                result = Err(Error::Tls(format!("a listener stopped: {e}")));
            }
        }
        let status = self.status.take();
        for t in [
            self.watcher.take(),
            self.sweeper.take(),
            self.reporter.take(),
        ]
        .into_iter()
        .flatten()
        {
            t.abort();
            // Wait until it is gone: the store must be free to reopen once
            // this returns.
            let _ = t.await;
        }
        if let Some((t, path)) = status {
            t.abort();
            let _ = t.await;
            let _ = std::fs::remove_file(path);
        }
        result
    }
}

fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), Error> {
    let err = |source| Error::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}

/// Applies the timeouts and limits every listener shares. (Upload bodies
/// are paced by the intake itself: `limits.body_idle_seconds`.)
fn bounded<A>(
    mut server: axum_server::Server<SocketAddr, A>,
    handle: Handle<SocketAddr>,
) -> axum_server::Server<SocketAddr, A> {
    // hyper starts the header timeout whenever it waits for a request head,
    // so it also ends idle keep-alive connections. A head larger than the
    // buffer gets 431 (HTTP/2 has its own 16 KiB header list limit).
    server
        .http_builder()
        .http1()
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    // HTTP/2 flow control decides how much of a request body the relay
    // must buffer before a handler reads it, and a submission waiting for
    // an upload slot does not read. hyper's fixed default (1 MiB per
    // connection) let 1,024 such connections pin about 1 GiB (measured:
    // 100 of them, +112 MiB). The adaptive window starts at the protocol's
    // 64 KiB, the same order as an HTTP/1.1 connection's read buffer, and
    // grows (up to 16 MiB) only with the bandwidth-delay product it
    // measures while a handler is actually reading, so a real upload over
    // a long path still fills the pipe. See docs/decisions.md.
    server.http_builder().http2().adaptive_window(true);
    server.handle(handle).first_request_timeout(HEADER_TIMEOUT)
}

/// Keeps at most `limits.max_connections` connections open, over all
/// listeners together.
///
/// axum-server has no connection limit of its own. This acceptor runs first
/// on each accepted TCP stream (inside the TLS acceptor, so before the
/// handshake costs anything): it takes a permit, or closes the stream at
/// once when none is left. The permit lives in the stream wrapper, so it
/// comes back when the connection closes, whatever closes it. The
/// handshake, header and body timeouts bound how long a connection that
/// sends nothing useful can keep its permit.
#[derive(Clone, Debug)]
struct ConnectionLimit {
    permits: Arc<Semaphore>,
    max: usize,
    last_warning: Arc<Mutex<Option<Instant>>>,
}

impl ConnectionLimit {
    fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            last_warning: Arc::new(Mutex::new(None)),
        }
    }

    /// Logs that connections are being refused, at most once a minute: a
    /// flood must not flood the log too.
    fn warn_refusing(&self) {
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < LIMIT_WARNING_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        tracing::warn!(
            max_connections = self.max,
            "connection limit reached: closing new connections until some end (limits.max_connections)"
        );
    }
}

impl<S> Accept<TcpStream, S> for ConnectionLimit {
    type Stream = Counted;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Counted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok((
                Counted {
                    stream,
                    _permit: permit,
                },
                service,
            )),
            Err(_) => {
                self.warn_refusing();
                // Dropping the stream closes the connection.
                Err(io::Error::other("connection limit reached"))
            }
        })
    }
}

/// An accepted connection holding its permit until it is dropped.
#[derive(Debug)]
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// How many connections the relay can hold: `limits.max_connections`, or
/// fewer if the open-file limit cannot be raised to fit them (a connection
/// is a file descriptor, and running out of them would fail uploads'
/// spool and store files rather than turn away new connections). Raises the
/// soft limit towards the hard one as needed (systemd's default soft limit
/// is 1,024).
fn connection_budget(limits: &Limits) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let uploads = 2 * limits.max_concurrent_uploads as u64;
    let wanted = limits.max_connections as u64 + uploads + RESERVED_FDS;
    let mut rlimit = getrlimit(Resource::Nofile);
    let soft = rlimit.current.unwrap_or(u64::MAX);
    if soft < wanted {
        rlimit.current = Some(rlimit.maximum.map_or(wanted, |hard| hard.min(wanted)));
        if let Err(e) = setrlimit(Resource::Nofile, rlimit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let fits = usize::try_from(soft.saturating_sub(uploads + RESERVED_FDS)).unwrap_or(usize::MAX);
    if fits < limits.max_connections {
        let fits = fits.max(1);
        tracing::warn!(
            max_connections = limits.max_connections,
            open_file_limit = soft,
            allowed = fits,
            "the open-file limit is too low for limits.max_connections; raise LimitNOFILE"
        );
        return fits;
    }
    limits.max_connections
}

/// The addresses to listen on.
#[derive(Clone, Debug, Default)]
pub struct Listen {
    /// HTTPS (rustls).
    pub https: Option<SocketAddr>,
    /// Plain HTTP for the local Tor daemon; must be loopback.
    pub onion: Option<SocketAddr>,
    /// Plain HTTP serving only `/api/v1`, for the reviewers' own
    /// client-authorised onion service; must be loopback.
    pub api: Option<SocketAddr>,
    /// A Unix socket that answers every connection with `relay status`'s
    /// counts (the binary puts it in the data directory).
    pub status: Option<PathBuf>,
}

impl Listen {
    /// The listeners a config asks for.
    pub fn from_config(config: &Config) -> Self {
        Listen {
            https: config.listen,
            onion: config.onion_listen,
            api: config.api_listen,
            status: None,
        }
    }
}

/// Binds the status socket at `path` (a leftover one, from a relay that
/// was killed, is replaced: the store's lock says no other relay runs).
fn bind_status(path: &Path) -> Result<tokio::net::UnixListener, Error> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove the old status socket", path)(e)),
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(Error::io("create the status socket", path))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(Error::io("restrict the status socket", path))?;
    Ok(listener)
}

/// Answers each connection to the status socket with the store's counts,
/// then closes it. Only the relay's user can connect (mode 0600, in the
/// 0700 data directory). Counts only: nothing in it is a time.
async fn serve_status(listener: tokio::net::UnixListener, state: std::sync::Weak<AppState>) {
    use tokio::io::AsyncWriteExt as _;
    loop {
        let mut conn = match listener.accept().await {
            Ok((conn, _)) => conn,
            Err(_) => {
                // Out of descriptors, most likely: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(state) = state.upgrade() else { break };
        let text = tokio::task::spawn_blocking(move || crate::cli::status_text(state.store()))
            .await
            .map_err(|_| "the status task failed".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .unwrap_or_else(|e| format!("error: {e}\n"));
        let _ =
            tokio::time::timeout(Duration::from_secs(10), conn.write_all(text.as_bytes())).await;
    }
}

/// Binds the listeners and serves the relay in the background.
pub async fn start(state: Arc<AppState>, listen: Listen) -> Result<Running, Error> {
    if let Some(addr) = listen.onion
        && !addr.ip().is_loopback()
    {
        return Err(Error::NotLoopback(addr, "the plain-HTTP (onion) listener"));
    }
    if let Some(addr) = listen.api
        && !addr.ip().is_loopback()
    {
        return Err(Error::NotLoopback(
            addr,
            "the API listener (`[api] listen`)",
        ));
    }
    if let Some(addr) = listen.https
        && state.config.demo
        && !addr.ip().is_loopback()
    {
        return Err(Error::NotLoopback(addr, "demo mode"));
    }
    if listen.https.is_none() && listen.onion.is_none() {
        return Err(Error::Tls(
            "no listener configured (`listen` or `onion_listen`)".into(),
        ));
    }
    let control = Control::new();
    let connections = ConnectionLimit::new(connection_budget(&state.config.limits));
    let mut tasks = Vec::new();
    let mut running = Running {
        https_addr: None,
        onion_addr: None,
        api_addr: None,
        control: control.clone(),
        tls: None,
        tasks: Vec::new(),
        watcher: None,
        sweeper: None,
        reporter: None,
        status: None,
    };

    if let Some(addr) = listen.https {
        let (cert, key) = match (&state.config.tls_cert, &state.config.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => {
                return Err(Error::Tls(
                    "the HTTPS listener needs [tls] cert and key".into(),
                ));
            }
        };
        let min_version = state.config.tls_min_version;
        let live = RustlsConfig::from_config(tls_config(&cert, &key, min_version)?);
        let tls = Tls {
            cert,
            key,
            min_version,
            live: live.clone(),
        };
        let (listener, bound) = bind(addr)?;
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(live)
            .handshake_timeout(HANDSHAKE_TIMEOUT)
            .acceptor(connections.clone());
        let server = axum_server::from_tcp(listener)
            .map_err(|source| Error::Bind { addr, source })?
            .acceptor(acceptor);
        let server = bounded(server, Handle::with_control(control.clone()));
        // No `ConnectInfo`: handlers cannot learn a peer's address.
        let app = web::app(state.clone(), web::Listener::Https);
        tasks.push(tokio::spawn(server.serve(app.into_make_service())));
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(
            |e| {
                Error::Tls(format!(
                    "cannot listen for SIGHUP (certificate reload): {e}"
                ))
            },
        )?;
        running.watcher = Some(tokio::spawn(watch_tls(tls.clone(), Some(hup))));
        running.tls = Some(tls);
        running.https_addr = Some(bound);
    }

    // The loopback plain-HTTP listeners, for the local Tor daemon.
    for (addr, kind) in [
        (listen.onion, web::Listener::Onion),
        (listen.api, web::Listener::Api),
    ] {
        let Some(addr) = addr else { continue };
        let (listener, bound) = bind(addr)?;
        let server = axum_server::from_tcp(listener)
            .map_err(|source| Error::Bind { addr, source })?
            .acceptor(connections.clone());
        let server = bounded(server, Handle::with_control(control.clone()));
        let app = web::app(state.clone(), kind);
        tasks.push(tokio::spawn(server.serve(app.into_make_service())));
        if kind == web::Listener::Api {
            running.api_addr = Some(bound);
        } else {
            running.onion_addr = Some(bound);
        }
    }
    if state.followup.is_some() {
        // Expired follow-up sessions (and the identities they hold) are
        // dropped within a minute of expiring, even if nobody asks again.
        // A weak reference: the sweeper must not keep the store open.
        let state = Arc::downgrade(&state);
        running.sweeper = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(state) = state.upgrade() else { break };
                if let Some(f) = state.followup.as_ref() {
                    f.sessions.sweep();
                }
            }
        }));
    }
    // The tally of refusals and failures, written once a day (and when the
    // state goes, at shutdown). A weak reference, like the sweeper's.
    let weak = Arc::downgrade(&state);
    running.reporter = Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(web::tally::REPORT_EVERY);
        // The first tick is immediate: nothing to say yet.
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            state.tally.report("daily");
        }
    }));
    if let Some(path) = &listen.status {
        let listener = bind_status(path)?;
        let task = tokio::spawn(serve_status(listener, Arc::downgrade(&state)));
        running.status = Some((task, path.clone()));
    }
    running.tasks = tasks;
    Ok(running)
}

/// Serves until `shutdown` resolves, then shuts down gracefully.
pub async fn serve(
    state: Arc<AppState>,
    listen: Listen,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (public_key, recipients, epoch) = (
        state.signer.public_base64(),
        state.recipients.len(),
        state.config.epoch,
    );
    let running = start(state, listen).await?;
    if let Some(addr) = running.https_addr {
        tracing::info!(address = %addr, "relay listening (HTTPS)");
    }
    if let Some(addr) = running.onion_addr {
        tracing::info!(address = %addr, "relay listening (plain HTTP, for the local Tor daemon)");
    }
    if let Some(addr) = running.api_addr {
        tracing::info!(address = %addr, "reviewer API listening (plain HTTP, for its own onion service)");
    }
    // Only now: every listener is bound and serving.
    tracing::info!(%public_key, recipients, epoch, "relay ready");
    let control = running.control.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        control.graceful_shutdown(Some(SHUTDOWN_GRACE));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connection_limit_closes_connections_beyond_it_and_frees_on_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limit = ConnectionLimit::new(2);
        let mut accepted = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let (stream, _) = listener.accept().await.unwrap();
            accepted.push(limit.accept(stream, ()).await);
        }
        assert!(accepted[0].is_ok() && accepted[1].is_ok());
        assert!(accepted[2].is_err(), "the third connection is refused");
        // The refused one was closed: its client reads end-of-file.
        let mut buf = [0u8; 1];
        let n = tokio::io::AsyncReadExt::read(&mut clients[2], &mut buf)
            .await
            .unwrap_or(0);
        assert_eq!(n, 0);
        // Closing a connection gives its permit back.
        accepted.remove(0).unwrap();
        clients.push(TcpStream::connect(addr).await.unwrap());
        let (stream, _) = listener.accept().await.unwrap();
        assert!(limit.accept(stream, ()).await.is_ok());
    }
}
