//! Raw HTTP/1.1 over TLS (rustls on a std `TcpStream`), for requests no
//! HTTP client library would send.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// How long any single read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Connects to a relay, trusting only its demo certificate.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub addr: SocketAddr,
}

impl Tls {
    pub fn new(data: &Path, addr: SocketAddr) -> Self {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(data.join("tls/cert.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            config: Arc::new(config),
            addr,
        }
    }

    /// A fresh TLS session, not yet started: its first flight is the
    /// ClientHello.
    pub fn session(&self) -> ClientConnection {
        ClientConnection::new(self.config.clone(), ServerName::from(self.addr.ip())).unwrap()
    }

    /// A TCP connection with both timeouts set.
    pub fn tcp(&self) -> TcpStream {
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp
    }

    /// A TLS connection with the handshake done.
    pub fn connect(&self) -> TlsStream {
        let mut tcp = self.tcp();
        let mut conn = self.session();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        StreamOwned::new(conn, tcp)
    }
}

/// Ends our sending side: TLS close_notify, then TCP FIN.
pub fn half_close(s: &mut TlsStream) {
    s.conn.send_close_notify();
    let _ = s.conn.complete_io(&mut s.sock);
    let _ = s.sock.shutdown(Shutdown::Write);
}

/// Whether an I/O error only means "the peer is gone".
pub fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Writes all of `bytes`; a peer that closed first is not an error (it may
/// have answered already).
pub fn send(s: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    match s.write_all(bytes).and_then(|()| s.flush()) {
        Err(e) if is_gone(&e) => Ok(()),
        other => other,
    }
}

/// One HTTP response. (The tests so far look at the status only; the head
/// and body are there to print when one needs to see why.)
#[derive(Debug)]
#[allow(dead_code)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Reads one response: `Ok(None)` if the connection ended before one began.
/// Fails on a timeout or a malformed response.
pub fn read_response(s: &mut impl Read) -> io::Result<Option<Response>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) => return eof(&buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_gone(&e) => return eof(&buf),
            Err(e) => return Err(e),
        }
        if buf.len() > 1 << 20 {
            return Err(io::Error::other("response head over 1 MiB"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP response: {head:?}")))?;
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = buf[head_end..].to_vec();
    while length.is_none_or(|n| body.len() < n) && body.len() < 4 << 20 {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if is_gone(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(Some(Response { status, head, body }))
}

fn eof(buf: &[u8]) -> io::Result<Option<Response>> {
    if buf.is_empty() {
        Ok(None)
    } else {
        Err(io::Error::other(format!(
            "connection ended inside a response head: {:?}",
            String::from_utf8_lossy(buf)
        )))
    }
}

/// Reads until the peer closes (or is gone); fails on a timeout.
pub fn read_to_close(s: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if is_gone(&e) => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
