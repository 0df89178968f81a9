//! A catalogue of hostile requests, sent to the real relay binary over real
//! TLS on loopback. Each case states what the relay must answer; after
//! every case the store must hold nothing new (unless the case is a
//! well-formed submission with hostile content, which is stored with its
//! file names sanitised), and the relay must still serve a page and take a
//! real submission.
//!
//! Raw cases go through `util::raw` (rustls on a `TcpStream`), since no HTTP
//! client sends malformed HTTP.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::util;

use std::path::Path;
use std::time::Instant;

use util::raw::{self, Tls};
use util::{Served, client, demo_data, settle_pools, status_line, submit};

/// The multipart boundary of every case.
const B: &str = "hostile-boundary-7f3a";

/// Limits small enough for the cases to cross them quickly.
const LIMITS: &str = "\n[limits]\n\
                      max_submission_bytes = 6291456\n\
                      max_files = 5\n\
                      max_text_chars = 1000\n\
                      body_idle_seconds = 2\n";
const MAX_SUBMISSION: usize = 6_291_456;

/// How a case is sent.
enum Send {
    /// Over TLS; then wait for the answer.
    Tls(Vec<u8>),
    /// Over TLS; then close our sending side (close_notify and FIN).
    TlsThenClose(Vec<u8>),
    /// Over TLS; then read until the relay closes, expecting no HTTP/1
    /// response (HTTP/2 frames may come back).
    TlsNoHttp1(Vec<u8>),
    /// Straight onto TCP, with no TLS at all.
    Plain(Vec<u8>),
    /// A genuine ClientHello, then these bytes instead of the rest of the
    /// handshake.
    HelloThen(Vec<u8>),
    /// A finished handshake, then these bytes raw on TCP, outside any TLS
    /// record the session could decrypt.
    HandshakeThenRaw(Vec<u8>),
}

/// What the relay must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Answer exactly this status; store nothing.
    Status(u16),
    /// Answer this status, or close without answering; store nothing.
    StatusOrClosed(u16),
    /// Close without an HTTP answer (garbage at the TLS layer); store nothing.
    Closed,
    /// Well-formed, hostile content: 200, and one submission stored.
    Stored,
    /// As `Stored`, then close the connection without reading further
    /// (nothing pipelined behind the body is answered).
    StoredThenClosed,
}

struct Case {
    name: &'static str,
    send: Send,
    expect: Expect,
}

fn case(name: &'static str, send: Send, expect: Expect) -> Case {
    Case { name, send, expect }
}

// --- Building requests -------------------------------------------------------

/// A part: its header lines, then its content.
fn raw_part(headers: &[u8], content: &[u8]) -> Vec<u8> {
    [headers, b"\r\n\r\n", content].concat()
}

fn text(name: &str, value: &[u8]) -> Vec<u8> {
    raw_part(
        format!("Content-Disposition: form-data; name=\"{name}\"").as_bytes(),
        value,
    )
}

/// A file part whose `filename` parameter is exactly these bytes.
fn file(filename: &[u8], content: &[u8]) -> Vec<u8> {
    raw_part(
        &[
            b"Content-Disposition: form-data; name=\"files\"; filename=\"",
            filename,
            b"\"\r\nContent-Type: application/octet-stream",
        ]
        .concat(),
        content,
    )
}

/// The parts of a minimal valid submission.
fn valid() -> Vec<Vec<u8>> {
    vec![
        text("category", b"other"),
        text("text", b"hostile catalogue"),
    ]
}

fn with(extra: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut parts = valid();
    parts.extend(extra);
    parts
}

/// A multipart body with boundary [`B`].
fn form(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{B}\r\n").as_bytes());
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    body
}

/// A request: the request line and headers as given (CRLF added), then the
/// body.
fn request(head: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in head {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// `POST /en/submit` with this body, its true length and the multipart
/// content type.
fn post(body: &[u8]) -> Vec<u8> {
    post_with(&[], body)
}

fn post_with(extra_headers: &[&str], body: &[u8]) -> Vec<u8> {
    let ct = format!("Content-Type: multipart/form-data; boundary={B}");
    let cl = format!("Content-Length: {}", body.len());
    let mut head = vec!["POST /en/submit HTTP/1.1", "Host: 127.0.0.1", &ct, &cl];
    head.extend_from_slice(extra_headers);
    request(&head, body)
}

/// `body` as one chunk of a chunked body, with the last chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    [
        format!("{:x}\r\n", body.len()).as_bytes(),
        body,
        b"\r\n0\r\n\r\n",
    ]
    .concat()
}

fn post_chunked(chunked_body: &[u8]) -> Vec<u8> {
    let ct = format!("Content-Type: multipart/form-data; boundary={B}");
    request(
        &[
            "POST /en/submit HTTP/1.1",
            "Host: 127.0.0.1",
            &ct,
            "Transfer-Encoding: chunked",
        ],
        chunked_body,
    )
}

fn get(target: &str) -> Vec<u8> {
    request(&[&format!("GET {target} HTTP/1.1"), "Host: 127.0.0.1"], b"")
}

/// Deterministic noise.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

// --- The catalogue -----------------------------------------------------------

fn catalogue() -> Vec<Case> {
    use Expect::{Closed, Status, StatusOrClosed, Stored, StoredThenClosed};
    use Send::{HandshakeThenRaw, HelloThen, Plain, Tls, TlsNoHttp1, TlsThenClose};
    let valid_body = form(&valid());
    let ct = format!("Content-Type: multipart/form-data; boundary={B}");
    let cl = format!("Content-Length: {}", valid_body.len());
    // The form without its closing delimiter `--B--\r\n`.
    let open_body = &valid_body[..valid_body.len() - (B.len() + 6)];
    let many_tiny_files: Vec<Vec<u8>> = (0..5000).map(|_| file(b"", b"")).collect();
    let many_tiny_fields: Vec<Vec<u8>> = (0..5000).map(|_| text("region", b"x")).collect();
    let forty_headers: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();

    vec![
        // Multipart framing.
        case(
            "missing boundary parameter",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    "Content-Type: multipart/form-data",
                    &cl,
                ],
                &valid_body,
            )),
            Status(400),
        ),
        case(
            "wrong boundary",
            Tls(post(&valid_body.replace_all(B, "some-other-boundary"))),
            Status(400),
        ),
        case(
            "empty boundary",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    "Content-Type: multipart/form-data; boundary=",
                    &cl,
                ],
                &valid_body,
            )),
            Status(400),
        ),
        case("empty body", Tls(post(b"")), Status(400)),
        case(
            "only the closing boundary",
            Tls(post(format!("--{B}--\r\n").as_bytes())),
            Status(400),
        ),
        case(
            "truncated body: cut inside a part's data",
            Tls(post(&valid_body[..valid_body.len() - 30])),
            Status(400),
        ),
        case(
            "truncated body: cut inside a part's head",
            Tls(post(
                format!("--{B}\r\nContent-Disposition: form-da").as_bytes(),
            )),
            Status(400),
        ),
        case("no closing boundary", Tls(post(open_body)), Status(400)),
        case(
            "part without a name",
            Tls(post(&form(&with(vec![raw_part(
                b"Content-Disposition: form-data",
                b"x",
            )])))),
            Status(400),
        ),
        case(
            "part without Content-Disposition",
            Tls(post(&form(&with(vec![raw_part(
                b"Content-Type: text/plain",
                b"x",
            )])))),
            Status(400),
        ),
        case(
            "part head that never ends (5 MiB)",
            Tls(post(
                &[
                    format!("--{B}\r\nContent-Disposition: form-data; name=\"text\"\r\nX: ")
                        .as_bytes(),
                    &vec![b'a'; 5 << 20],
                ]
                .concat(),
            )),
            Status(400),
        ),
        case(
            "part with 40 header lines",
            Tls(post(&form(&with(vec![raw_part(
                format!("{forty_headers}Content-Disposition: form-data; name=\"region\"")
                    .as_bytes(),
                b"x",
            )])))),
            Status(400),
        ),
        case(
            "binary garbage as a part head",
            Tls(post(
                &[
                    format!("--{B}\r\n").as_bytes(),
                    &noise(300, 1),
                    b"\r\n\r\nx\r\n",
                    format!("--{B}--\r\n").as_bytes(),
                ]
                .concat(),
            )),
            Status(400),
        ),
        case(
            "duplicate text field",
            Tls(post(&form(&with(vec![text("text", b"again")])))),
            Status(400),
        ),
        case(
            "duplicate category",
            Tls(post(&form(&with(vec![text("category", b"health")])))),
            Status(400),
        ),
        case(
            "unknown field",
            Tls(post(&form(&with(vec![text("is_admin", b"1")])))),
            Status(400),
        ),
        case(
            "field name with a quote in it",
            Tls(post(&form(&with(vec![raw_part(
                b"Content-Disposition: form-data; name=\"te\\\"xt\"",
                b"x",
            )])))),
            Status(400),
        ),
        case(
            "5,000 tiny file parts",
            Tls(post(&form(&with(many_tiny_files)))),
            Status(413),
        ),
        case(
            "5,000 tiny text parts",
            Tls(post(&form(&with(many_tiny_fields)))),
            Status(400),
        ),
        case(
            "six files (max_files = 5)",
            Tls(post(&form(&with(
                (0..6)
                    .map(|i| file(format!("f{i}").as_bytes(), b"x"))
                    .collect(),
            )))),
            Status(413),
        ),
        case(
            "attachments one byte over max_submission_bytes",
            Tls(post(&form(&with(vec![file(
                b"big.bin",
                &vec![b'z'; MAX_SUBMISSION + 1],
            )])))),
            Status(413),
        ),
        case(
            "text over its byte bound (4 x max_text_chars)",
            Tls(post(&form(&[
                text("category", b"other"),
                text("text", &vec![b'a'; 4001]),
            ]))),
            Status(413),
        ),
        case(
            "text over max_text_chars",
            Tls(post(&form(&[
                text("category", b"other"),
                text("text", "й".repeat(1001).as_bytes()),
            ]))),
            Status(413),
        ),
        case(
            "invalid UTF-8 in the text",
            Tls(post(&form(&[
                text("category", b"other"),
                text("text", b"ok \xff\xfe \xc3\x28 end"),
            ]))),
            Status(400),
        ),
        case(
            "invalid UTF-8 in the category",
            Tls(post(&form(&[
                text("category", b"oth\xffer"),
                text("text", b"x"),
            ]))),
            Status(400),
        ),
        case(
            "control characters in a free-text answer",
            Tls(post(&form(&[
                text("category", b"other"),
                text("text", b"x"),
                text("region", b"a\x1b[31mb"),
            ]))),
            Status(400),
        ),
        case(
            "year out of range",
            Tls(post(&form(&with(vec![
                text("events_month", b"13"),
                text("events_year", b"99999999999999999999"),
            ])))),
            Status(400),
        ),
        case(
            "empty testimony and no file",
            Tls(post(&form(&[
                text("category", b"other"),
                text("text", b"  "),
            ]))),
            Status(400),
        ),
        // Hostile file names: stored, sanitised (the reviewer side checks
        // what comes out).
        case(
            // Control characters other than tab cannot reach a file name:
            // the part-head parser refuses them.
            "NUL in a file name",
            Tls(post(&form(&with(vec![file(b"a\x00b.txt", b"x")])))),
            Status(400),
        ),
        case(
            "escape, bell and DEL in a file name",
            Tls(post(&form(&with(vec![file(
                b"a\x1b[2Jb\x07c\x7fd.txt",
                b"x",
            )])))),
            Status(400),
        ),
        case(
            "tab, C1 controls and zero-width characters in a file name",
            Tls(post(&form(&with(vec![file(
                "a\tb\u{85}c\u{9b}d\u{200b}e\u{feff}.txt".as_bytes(),
                b"x",
            )])))),
            Stored,
        ),
        case(
            "file name with a right-to-left override",
            Tls(post(&form(&with(vec![file(
                "invoice\u{202e}fdp.exe".as_bytes(),
                b"x",
            )])))),
            Stored,
        ),
        case(
            "absolute file name",
            Tls(post(&form(&with(vec![file(b"/etc/passwd", b"x")])))),
            Stored,
        ),
        case(
            "file name climbing with ..",
            Tls(post(&form(&with(vec![file(
                b"../../../../../../tmp/evil.sh",
                b"x",
            )])))),
            Stored,
        ),
        case(
            "Windows path file name",
            Tls(post(&form(&with(vec![file(
                b"C:\\\\Windows\\\\System32\\\\evil.dll",
                b"x",
            )])))),
            Stored,
        ),
        case(
            "Windows reserved file names",
            Tls(post(&form(&with(vec![
                file(b"CON", b"x"),
                file(b"nul.txt", b"x"),
                file(b"COM1.", b"x"),
                file(b"aux .pdf", b"x"),
            ])))),
            Stored,
        ),
        case(
            "10,000-character file name",
            Tls(post(&form(&with(vec![file(
                "ж".repeat(10_000).as_bytes(),
                b"x",
            )])))),
            Stored,
        ),
        case(
            "file name of invalid UTF-8",
            Tls(post(&form(&with(vec![file(b"\xff\xfe\xfd.bin", b"x")])))),
            Stored,
        ),
        case(
            "file name only dots",
            Tls(post(&form(&with(vec![
                file(b"..", b"x"),
                file(b".", b"y"),
            ])))),
            Stored,
        ),
        // Content type.
        case(
            "urlencoded content type",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    "Content-Type: application/x-www-form-urlencoded",
                    "Content-Length: 26",
                ],
                b"category=other&text=hello!",
            )),
            Status(400),
        ),
        case(
            "JSON content type",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    "Content-Type: application/json",
                    "Content-Length: 2",
                ],
                b"{}",
            )),
            Status(400),
        ),
        case(
            "no content type",
            Tls(request(
                &["POST /en/submit HTTP/1.1", "Host: 127.0.0.1", &cl],
                &valid_body,
            )),
            Status(400),
        ),
        // Body framing.
        case(
            "chunked: a chunk longer than its size line",
            Tls(post_chunked(
                &[b"5\r\n".as_slice(), &valid_body, b"\r\n0\r\n\r\n"].concat(),
            )),
            Status(400),
        ),
        case(
            "chunked: size line not hex",
            Tls(post_chunked(b"zz\r\nhello\r\n0\r\n\r\n")),
            Status(400),
        ),
        case(
            "chunked: size overflowing 64 bits",
            Tls(post_chunked(b"fffffffffffffffffffff\r\nx\r\n0\r\n\r\n")),
            Status(400),
        ),
        case(
            "chunked: size line longer than the data, then silence",
            Tls(post_chunked(
                &[b"ffff\r\n".as_slice(), &valid_body[..100]].concat(),
            )),
            Status(408),
        ),
        case(
            "chunked: form cut short, no last chunk, then the client closes",
            TlsThenClose(post_chunked(&chunked(open_body)[..open_body.len() + 6])),
            Status(400),
        ),
        case(
            // The form's own closing delimiter ends it: the relay reads no
            // further, so the missing last chunk is never waited for.
            "chunked: whole form, no last chunk, then the client closes",
            TlsThenClose(post_chunked(&chunked(&valid_body)[..valid_body.len() + 6])),
            Stored,
        ),
        case(
            "Content-Length shorter than the body",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    &ct,
                    &format!("Content-Length: {}", valid_body.len() - 40),
                ],
                &valid_body,
            )),
            Status(400),
        ),
        case(
            "Content-Length longer than the body, then silence",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    &ct,
                    &format!("Content-Length: {}", open_body.len() + 1000),
                ],
                open_body,
            )),
            Status(408),
        ),
        case(
            "Content-Length longer than the body, then the client closes",
            TlsThenClose(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    &ct,
                    &format!("Content-Length: {}", open_body.len() + 1000),
                ],
                open_body,
            )),
            Status(400),
        ),
        case(
            // As with the missing last chunk: the form is whole.
            "Content-Length longer than a whole form, then silence",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    &ct,
                    &format!("Content-Length: {}", valid_body.len() + 1000),
                ],
                &valid_body,
            )),
            Stored,
        ),
        case(
            "Content-Length not a number",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    &ct,
                    "Content-Length: 12abc",
                ],
                &valid_body,
            )),
            Status(400),
        ),
        case(
            "two different Content-Lengths",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    &ct,
                    &cl,
                    "Content-Length: 3",
                ],
                &valid_body,
            )),
            Status(400),
        ),
        case(
            "Content-Length and Transfer-Encoding, a request smuggled behind",
            Tls([
                request(
                    &[
                        "POST /en/submit HTTP/1.1",
                        "Host: 127.0.0.1",
                        &ct,
                        "Content-Length: 4",
                        "Transfer-Encoding: chunked",
                    ],
                    &chunked(&valid_body),
                ),
                get("/smuggled"),
            ]
            .concat()),
            StoredThenClosed,
        ),
        case(
            "Transfer-Encoding other than chunked",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.1",
                    "Host: 127.0.0.1",
                    &ct,
                    "Transfer-Encoding: gzip",
                ],
                &valid_body,
            )),
            Status(400),
        ),
        case(
            "Transfer-Encoding on HTTP/1.0",
            Tls(request(
                &[
                    "POST /en/submit HTTP/1.0",
                    &ct,
                    "Transfer-Encoding: chunked",
                ],
                &chunked(&valid_body),
            )),
            Status(400),
        ),
        // Protocol versions, request line and headers.
        case(
            "HTTP/1.0 GET without Host",
            Tls(request(&["GET /en/ HTTP/1.0"], b"")),
            Status(200),
        ),
        case(
            "HTTP/1.0 POST of a valid form",
            Tls(request(
                &["POST /en/submit HTTP/1.0", &ct, &cl],
                &valid_body,
            )),
            Stored,
        ),
        case(
            "HTTP/1.0 POST without Content-Length",
            Tls(request(&["POST /en/submit HTTP/1.0", &ct], &valid_body)),
            Status(400),
        ),
        case(
            "HTTP/0.9 request line",
            Tls(b"GET /en/\r\n\r\n".to_vec()),
            Status(400),
        ),
        case(
            "HTTP/2.0 in an HTTP/1 request line",
            Tls(request(&["GET /en/ HTTP/2.0", "Host: 127.0.0.1"], b"")),
            Status(400),
        ),
        case(
            "header of 100 KiB",
            Tls(request(
                &[
                    "GET /en/ HTTP/1.1",
                    "Host: 127.0.0.1",
                    &format!("X-Big: {}", "a".repeat(100 * 1024)),
                ],
                b"",
            )),
            StatusOrClosed(431),
        ),
        case(
            "200 headers",
            Tls(format!("GET /en/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{many_headers}\r\n").into_bytes()),
            StatusOrClosed(431),
        ),
        case(
            "request line of 100 KiB",
            Tls(get(&format!("/en/{}", "a".repeat(100 * 1024)))),
            StatusOrClosed(431),
        ),
        case(
            "header value with a NUL byte",
            Tls(request(
                &["GET /en/ HTTP/1.1", "Host: 127.0.0.1", "X-A: a\0b"],
                b"",
            )),
            Status(400),
        ),
        case(
            "header line without a colon",
            Tls(request(
                &["GET /en/ HTTP/1.1", "Host: 127.0.0.1", "NoColonHere"],
                b"",
            )),
            Status(400),
        ),
        case(
            "obsolete folded header",
            Tls(request(
                &["GET /en/ HTTP/1.1", "Host: 127.0.0.1", "X-A: a", " folded"],
                b"",
            )),
            Status(400),
        ),
        case(
            "unknown method",
            Tls(request(
                &["BREW /en/submit HTTP/1.1", "Host: 127.0.0.1", &ct, &cl],
                &valid_body,
            )),
            Status(405),
        ),
        case(
            "method that is not a token",
            Tls(request(&["G(E)T /en/ HTTP/1.1", "Host: 127.0.0.1"], b"")),
            Status(400),
        ),
        case(
            "submission by GET with a body",
            Tls(request(
                &["GET /en/submit HTTP/1.1", "Host: 127.0.0.1", &ct, &cl],
                &valid_body,
            )),
            Status(405),
        ),
        // URLs.
        case(
            "raw non-UTF-8 bytes in the URL",
            Tls(b"GET /\xff\xfe/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec()),
            Status(400),
        ),
        case(
            "percent-encoded invalid UTF-8 as the language",
            Tls(post_with(&[], &valid_body).replace_all("/en/submit", "/%FF%FE/submit")),
            Status(400),
        ),
        case(
            "unknown language segment",
            Tls(post(&valid_body).replace_all("/en/submit", "/xx/submit")),
            Status(404),
        ),
        case(
            "language segment with a NUL",
            Tls(get("/e%00n/")),
            Status(404),
        ),
        case(
            "dot segments escaping the root",
            Tls(get("/../../../../etc/passwd")),
            Status(404),
        ),
        // TLS layer.
        case("plain HTTP on the TLS port", Plain(get("/en/")), Closed),
        case(
            "random bytes before any handshake",
            Plain(noise(4096, 2)),
            Closed,
        ),
        case(
            "a ClientHello, then garbage",
            HelloThen(noise(2048, 3)),
            Closed,
        ),
        case(
            "a finished handshake, then raw garbage records",
            HandshakeThenRaw([b"\x17\x03\x03\x00\x40".as_slice(), &noise(64, 4)].concat()),
            Closed,
        ),
        case(
            "binary garbage inside TLS",
            Tls(noise(4096, 5)),
            Status(400),
        ),
        case(
            "an HTTP/2 preface, then garbage, inside TLS",
            TlsNoHttp1(
                [
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".as_slice(),
                    &noise(512, 6),
                ]
                .concat(),
            ),
            Closed,
        ),
    ]
}

trait ReplaceAll {
    fn replace_all(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceAll for Vec<u8> {
    /// Replaces every `from`.
    fn replace_all(&self, from: &str, to: &str) -> Vec<u8> {
        let (from, to) = (from.as_bytes(), to.as_bytes());
        let mut out = Vec::with_capacity(self.len());
        let mut i = 0;
        while i < self.len() {
            if self[i..].starts_with(from) {
                out.extend_from_slice(to);
                i += from.len();
            } else {
                out.push(self[i]);
                i += 1;
            }
        }
        out
    }
}

// --- Running it --------------------------------------------------------------

/// What came back.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A response with this status (0: a plaintext answer on the TLS port).
    Status(u16),
    /// No HTTP response; the connection ended.
    Closed,
}

fn run(tls: &Tls, send: &Send, expect: Expect) -> Result<Outcome, String> {
    let err = |e: std::io::Error| e.to_string();
    match send {
        Send::Tls(bytes) | Send::TlsThenClose(bytes) => {
            let mut s = tls.connect();
            raw::send(&mut s, bytes).map_err(err)?;
            if matches!(send, Send::TlsThenClose(_)) {
                raw::half_close(&mut s);
            }
            match raw::read_response(&mut s).map_err(err)? {
                None => Ok(Outcome::Closed),
                Some(r) => {
                    if expect == Expect::StoredThenClosed {
                        // Nothing after the first response: the request
                        // behind the body is never answered.
                        let rest = raw::read_to_close(&mut s).map_err(err)?;
                        if !rest.is_empty() {
                            return Err(format!(
                                "more after the response: {:?}",
                                String::from_utf8_lossy(&rest)
                            ));
                        }
                    }
                    Ok(Outcome::Status(r.status))
                }
            }
        }
        Send::TlsNoHttp1(bytes) => {
            let mut s = tls.connect();
            raw::send(&mut s, bytes).map_err(err)?;
            let got = raw::read_to_close(&mut s).map_err(err)?;
            Ok(plain_outcome(&got))
        }
        Send::Plain(bytes) => {
            let mut s = tls.tcp();
            raw::send(&mut s, bytes).map_err(err)?;
            let got = raw::read_to_close(&mut s).map_err(err)?;
            Ok(plain_outcome(&got))
        }
        Send::HelloThen(garbage) => {
            let mut hello = Vec::new();
            tls.session().write_tls(&mut hello).unwrap();
            let mut s = tls.tcp();
            raw::send(&mut s, &hello).map_err(err)?;
            raw::send(&mut s, garbage).map_err(err)?;
            let got = raw::read_to_close(&mut s).map_err(err)?;
            Ok(plain_outcome(&got))
        }
        Send::HandshakeThenRaw(garbage) => {
            let mut s = tls.connect();
            raw::send(&mut s.sock, garbage).map_err(err)?;
            let got = raw::read_to_close(&mut s.sock).map_err(err)?;
            Ok(plain_outcome(&got))
        }
    }
}

/// Bytes read off TCP: a TLS alert or nothing is "closed"; anything that
/// reads as HTTP would be a plaintext answer.
fn plain_outcome(got: &[u8]) -> Outcome {
    match raw::find(got, b"HTTP/1.") {
        Some(_) => Outcome::Status(0),
        None => Outcome::Closed,
    }
}

fn matches(expect: Expect, got: &Outcome) -> bool {
    match (expect, got) {
        (Expect::Status(s), Outcome::Status(g)) => s == *g,
        (Expect::StatusOrClosed(s), Outcome::Status(g)) => s == *g,
        (Expect::StatusOrClosed(_) | Expect::Closed, Outcome::Closed) => true,
        (Expect::Stored | Expect::StoredThenClosed, Outcome::Status(g)) => *g == 200,
        _ => false,
    }
}

/// Nothing half-stored: a refused upload leaves no bytes in a spool file.
/// (How many were stored, and that no lane keeps bytes past its committed
/// length, is checked once the relay stops.)
fn check_store(data: &Path) -> Result<(), String> {
    settle_pools(data)
}

#[test]
fn hostile_requests_are_refused_and_the_relay_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let data = demo_data(root.path(), |t| format!("{t}{LIMITS}"));
    let served = Served::start(&data);
    let tls = Tls::new(&data, served.addr);
    let url = served.url();
    let good = client(&data);

    let cases = catalogue();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut objects = 0;
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for c in &cases {
        let started = Instant::now();
        let got = run(&tls, &c.send, c.expect);
        let took = started.elapsed();
        if matches!(c.expect, Expect::Stored | Expect::StoredThenClosed) {
            objects += 1;
        }
        let store = check_store(&data);
        let ok = got.as_ref().is_ok_and(|g| matches(c.expect, g)) && store.is_ok();
        if !ok {
            failures.push(format!(
                "{}: expected {:?}, got {got:?}; store: {store:?}",
                c.name, c.expect,
            ));
        }
        let got_text = match &got {
            Ok(Outcome::Status(s)) => s.to_string(),
            Ok(Outcome::Closed) => "closed".to_owned(),
            Err(e) => e.clone(),
        };
        report.push(format!(
            "{:<68} {:<22} {:<7} {:>5} ms{}",
            c.name,
            format!("{:?}", c.expect),
            got_text,
            took.as_millis(),
            if ok { "" } else { "  FAILED" }
        ));

        // The relay still serves a page and takes a real submission.
        let page = good.get(format!("{url}/en/")).send();
        assert!(
            page.as_ref().is_ok_and(|p| p.status() == 200),
            "after {}: GET /en/ gave {page:?}\n{}",
            c.name,
            served.log()
        );
        let status = submit(&data, &url, "the next good submission");
        assert_eq!(status, 200, "after {}: a good submission failed", c.name);
        objects += 1;
        if let Err(e) = check_store(&data) {
            panic!("after {}: a good submission: {e}", c.name);
        }
    }
    println!("{} hostile cases:\n{}", cases.len(), report.join("\n"));
    assert!(
        failures.is_empty(),
        "{}\nrelay log:\n{}",
        failures.join("\n"),
        served.log()
    );

    let log = served.stop();
    assert!(
        !log.contains("panicked"),
        "the relay panicked somewhere:\n{log}"
    );
    let status = status_line(&data);
    assert!(
        status.contains(&format!("submissions: {objects} ")),
        "{status}"
    );
    // Refused and cut-off large uploads cut their lanes back.
    assert_eq!(util::torn_tails(&data), Vec::<String>::new());
}
