//! Floods and slow clients against the real relay binary on loopback:
//! hundreds of idle connections, slow headers and trickling uploads must not
//! stop a real source, and each kind is cut by its own limit.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::util;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use util::raw::{self, Tls, TlsStream};
use util::{Served, client, demo_data, submit};

/// Idle TCP connections that never start TLS.
const IDLE_TCP: usize = 500;
/// Idle TLS connections that never send a request.
const IDLE_TLS: usize = 50;
/// Clients sending their request head a byte a second.
const SLOW_HEADS: usize = 20;
/// Clients sending an upload's body a byte a second: more than the 16
/// upload slots.
const TRICKLERS: usize = 24;
/// `limits.body_idle_seconds` in these tests.
const BODY_IDLE: Duration = Duration::from_secs(2);
/// The relay's TLS handshake and request-head timeouts (server.rs).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Raises this process's open-file limit to fit the flood. The limit is
/// the whole process's: under a lock, so that a test asking for less cannot
/// lower it back between another's check and its raise.
fn raise_fd_limit(needed: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    static RAISING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _raising = RAISING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|soft| soft < needed) {
        limit.current = Some(limit.maximum.map_or(needed, |hard| hard.min(needed)));
        setrlimit(Resource::Nofile, limit).unwrap();
    }
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(soft >= needed, "open-file limit {soft} < {needed}");
}

/// How a slow client ended.
#[derive(Debug)]
struct Cut {
    /// From its first byte to the relay's answer or close.
    after: Duration,
    /// The status, if the relay answered before closing.
    status: Option<u16>,
}

/// Sends `head` then one byte of `filler` a second until the relay answers
/// or closes (at most `give_up`).
fn trickle(tls: Tls, head: Vec<u8>, give_up: Duration) -> JoinHandle<Option<Cut>> {
    std::thread::spawn(move || {
        let mut s = tls.connect();
        s.sock
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let started = Instant::now();
        if raw::send(&mut s, &head).is_err() {
            return None;
        }
        while started.elapsed() < give_up {
            if s.write_all(b"a").and_then(|()| s.flush()).is_err() {
                return Some(Cut {
                    after: started.elapsed(),
                    status: None,
                });
            }
            if let Some(status) = answered(&mut s) {
                return Some(Cut {
                    after: started.elapsed(),
                    status,
                });
            }
        }
        None
    })
}

/// Waits up to the read timeout: `Some(status)` if the relay answered or
/// closed, `None` if it is still listening.
fn answered(s: &mut TlsStream) -> Option<Option<u16>> {
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(0) => Some(None),
        Ok(n) => Some(
            std::str::from_utf8(&buf[..n])
                .ok()
                .and_then(|t| t.strip_prefix("HTTP/1.1 "))
                .and_then(|t| t.get(..3))
                .and_then(|c| c.parse().ok()),
        ),
        Err(e) if raw::is_gone(&e) => Some(None),
        Err(_) => None,
    }
}

/// Whether the relay has closed `tcp` (reads end-of-file or an error other
/// than a timeout, within `wait`).
fn closed_by_relay(tcp: &mut TcpStream, wait: Duration) -> bool {
    tcp.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {} // a TLS alert, then the close
            Err(e) => return raw::is_gone(&e),
        }
    }
}

#[test]
fn a_real_submission_gets_through_idle_connections_slow_heads_and_trickling_uploads() {
    raise_fd_limit(4096);
    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| {
        format!(
            "{t}\n[limits]\nbody_idle_seconds = {}\n",
            BODY_IDLE.as_secs()
        )
    });
    let served = Served::start(&data);
    let tls = Tls::new(&data, served.addr);
    let url = served.url();
    let t0 = Instant::now();

    let mut idle_tcp: Vec<TcpStream> = (0..IDLE_TCP).map(|_| tls.tcp()).collect();
    let idle_tls: Vec<TlsStream> = (0..IDLE_TLS).map(|_| tls.connect()).collect();
    let slow_heads: Vec<_> = (0..SLOW_HEADS)
        .map(|_| {
            trickle(
                tls.clone(),
                b"GET /en/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".to_vec(),
                HEADER_TIMEOUT + Duration::from_secs(10),
            )
        })
        .collect();
    let upload_head: &[u8] = b"POST /en/submit HTTP/1.1\r\nHost: 127.0.0.1\r\n\
        Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 1000000\r\n\r\n\
        --B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n";
    let tricklers: Vec<_> = (0..TRICKLERS)
        .map(|_| trickle(tls.clone(), upload_head.to_vec(), Duration::from_secs(60)))
        .collect();
    // Let the tricklers take every upload slot.
    std::thread::sleep(Duration::from_secs(1));
    let flood_ready = t0.elapsed();

    // A real source, now.
    let started = Instant::now();
    let page = client(&data).get(format!("{url}/en/")).send().unwrap();
    assert_eq!(page.status(), 200);
    let page_took = started.elapsed();
    let started = Instant::now();
    assert_eq!(submit(&data, &url, "a real testimony"), 200);
    let submit_took = started.elapsed();
    assert!(
        submit_took < Duration::from_secs(10),
        "the real submission took {submit_took:?}"
    );

    // Every trickling upload was cut, with 408 or a close, within two
    // rounds of the idle time (those beyond the 16 slots waited for one).
    let cuts: Vec<Cut> = tricklers
        .into_iter()
        .map(|t| t.join().unwrap().expect("a trickling upload was never cut"))
        .collect();
    for cut in &cuts {
        assert!(
            matches!(cut.status, Some(408) | None),
            "trickler answered {cut:?}"
        );
        assert!(
            cut.after < 2 * BODY_IDLE + Duration::from_secs(4),
            "trickler cut only after {:?}",
            cut.after
        );
    }
    let slowest_trickler = cuts.iter().map(|c| c.after).max().unwrap();

    // The idle TCP connections are closed by the handshake timeout.
    let handshake_deadline = t0 + HANDSHAKE_TIMEOUT + Duration::from_secs(10);
    for tcp in &mut idle_tcp {
        let wait = handshake_deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_by_relay(tcp, wait.max(Duration::from_millis(100))),
            "an idle connection outlived the handshake timeout"
        );
    }
    let idle_closed = t0.elapsed();
    drop(idle_tls);

    // Slow request heads are cut by the header timeout (hyper answers 408
    // or just closes).
    let slow: Vec<Cut> = slow_heads
        .into_iter()
        .map(|t| t.join().unwrap().expect("a slow head was never cut"))
        .collect();
    for cut in &slow {
        assert!(
            cut.after < HEADER_TIMEOUT + Duration::from_secs(5),
            "slow head cut after {:?}",
            cut.after
        );
    }
    let slowest_head = slow.iter().map(|c| c.after).max().unwrap();

    // And the relay still serves.
    assert_eq!(submit(&data, &url, "after the flood"), 200);
    println!(
        "flood of {IDLE_TCP} idle TCP + {IDLE_TLS} idle TLS + {SLOW_HEADS} slow heads + \
         {TRICKLERS} trickling uploads, ready after {flood_ready:?}\n\
         real page: {page_took:?}; real submission: {submit_took:?}\n\
         trickling uploads cut by {slowest_trickler:?} (statuses {:?})\n\
         idle TCP connections all closed by {idle_closed:?} from the start\n\
         slow heads cut by {slowest_head:?} (statuses {:?})",
        cuts.iter().map(|c| c.status).collect::<Vec<_>>(),
        slow.iter().map(|c| c.status).collect::<Vec<_>>(),
    );
    let log = served.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn connections_beyond_max_connections_are_closed_at_once() {
    raise_fd_limit(1024);
    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| {
        format!("{t}\n[limits]\nmax_connections = 100\n")
    });
    let served = Served::start(&data);
    let tls = Tls::new(&data, served.addr);
    let url = served.url();

    let mut held: Vec<TcpStream> = (0..100).map(|_| tls.tcp()).collect();
    // Let the relay accept them all.
    std::thread::sleep(Duration::from_millis(500));

    // The 101st is closed at once, long before any timeout.
    let started = Instant::now();
    let mut extra = tls.tcp();
    let mut hello = Vec::new();
    tls.session().write_tls(&mut hello).unwrap();
    let _ = extra.write_all(&hello);
    assert!(closed_by_relay(&mut extra, Duration::from_secs(5)));
    let refused_in = started.elapsed();
    assert!(refused_in < Duration::from_secs(2), "{refused_in:?}");
    assert!(client(&data).get(format!("{url}/en/")).send().is_err());

    // Closing some gives their slots back.
    held.truncate(50);
    std::thread::sleep(Duration::from_millis(300));
    let page = client(&data).get(format!("{url}/en/")).send().unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(submit(&data, &url, "after the limit"), 200);
    drop(held);

    let log = served.stop();
    assert_eq!(
        log.matches("connection limit reached").count(),
        1,
        "one warning, not one per connection:\n{log}"
    );
    println!("connection 101 of max_connections = 100 closed in {refused_in:?}");
}

/// What one HTTP/2 request can make the relay buffer before any handler
/// reads its body: it sends as much of a large body as flow control lets
/// it for `wait`, and returns how many bytes that was.
async fn h2_pushed_unread(tls: &Tls, wait: Duration) -> u64 {
    use std::sync::Arc;
    let mut config = (*tls.config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(tls.addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls::pki_types::ServerName::from(tls.addr.ip()), tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = axum::http::Request::post(format!("https://{}/en/submit", tls.addr))
        .header("content-type", "multipart/form-data; boundary=B")
        .header("content-length", (16u64 << 20).to_string())
        .body(())
        .unwrap();
    let (_response, mut body) = client.send_request(request, false).unwrap();
    body.reserve_capacity(16 << 20);
    let deadline = tokio::time::Instant::now() + wait;
    let mut pushed = 0u64;
    while let Ok(Some(Ok(n))) =
        tokio::time::timeout_at(deadline, std::future::poll_fn(|cx| body.poll_capacity(cx))).await
    {
        body.send_data(bytes::Bytes::from(vec![b'a'; n]), false)
            .unwrap();
        pushed += n as u64;
    }
    driver.abort();
    pushed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_waiting_for_an_upload_slot_pin_little_memory() {
    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| {
        format!("{t}\n[limits]\nmax_concurrent_uploads = 1\n")
    });
    let served = Served::start(&data);
    let tls = Tls::new(&data, served.addr);
    // One upload over HTTP/1.1 takes the only slot and stays.
    let holder = {
        let tls = tls.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = tls.connect();
            raw::send(
                &mut s,
                b"POST /en/submit HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                  Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 1000000\r\n\r\n\
                  --B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nheld",
            )
            .unwrap();
            s
        })
        .await
        .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Requests over HTTP/2 now wait for the slot, unread. Each may push
    // only the protocol's initial window (64 KiB), not hyper's default
    // 1 MiB: 1,024 connections (limits.max_connections) pin at most 64 MiB.
    let pushed = futures_util::future::join_all(
        (0..8).map(|_| h2_pushed_unread(&tls, Duration::from_secs(2))),
    )
    .await;
    for p in &pushed {
        assert!(*p > 0, "the test pushed nothing: {pushed:?}");
        assert!(
            *p <= 65_535,
            "one waiting request made the relay buffer {p} bytes: {pushed:?}"
        );
    }
    drop(holder);
    // A real submission still gets through once the slot is free.
    let url = served.url();
    let status = tokio::task::spawn_blocking(move || submit(&data, &url, "after the h2 flood"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let log = served.stop();
    assert!(!log.contains("panicked"), "{log}");
}
