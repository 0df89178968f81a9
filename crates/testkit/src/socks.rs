//! A SOCKS5 proxy standing in for Tor's SOCKS port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A SOCKS5 proxy on 127.0.0.1 (RFC 1928, no authentication, CONNECT
/// only), standing in for Tor's SOCKS port: it records the host and port
/// each client asks for, exactly as sent (a name stays a name: ATYP 3),
/// and connects every request to `target` whatever it names.
#[derive(Debug)]
pub struct Socks {
    /// `socks5h://127.0.0.1:PORT`, for `--proxy`.
    pub url: String,
    /// `(host, port)` per CONNECT, an address written as text.
    pub asked: Arc<Mutex<Vec<(String, u16)>>>,
}

/// Starts the proxy; its thread lives until the test process ends.
pub fn socks_proxy(target: SocketAddr) -> Socks {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("socks5h://{}", listener.local_addr().unwrap());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(client) = stream else { continue };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let _ = socks_session(client, target, &seen);
            });
        }
    });
    Socks { url, asked }
}

fn socks_session(
    mut client: TcpStream,
    target: SocketAddr,
    seen: &Mutex<Vec<(String, u16)>>,
) -> std::io::Result<()> {
    let mut b = [0u8; 2];
    client.read_exact(&mut b)?; // VER 5, NMETHODS
    let mut methods = vec![0u8; usize::from(b[1])];
    client.read_exact(&mut methods)?;
    client.write_all(&[5, 0])?; // no authentication
    let mut head = [0u8; 4];
    client.read_exact(&mut head)?; // VER, CMD, RSV, ATYP
    let host = match head[3] {
        1 => {
            let mut a = [0u8; 4];
            client.read_exact(&mut a)?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut n = [0u8; 1];
            client.read_exact(&mut n)?;
            let mut name = vec![0u8; usize::from(n[0])];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut a = [0u8; 16];
            client.read_exact(&mut a)?;
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    seen.lock().unwrap().push((host, u16::from_be_bytes(port)));
    let upstream = TcpStream::connect(target)?;
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?; // succeeded
    let (mut c2, mut u2) = (client.try_clone()?, upstream.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(std::net::Shutdown::Write);
    });
    let (mut u, mut c) = (upstream, client);
    let _ = std::io::copy(&mut u, &mut c);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
    Ok(())
}
