//! The HTTP server (`morgana_http::serve`): a client's byte stream, pipelined requests and
//! all, delivered whole and again cut at points drawn from the input, to a static-file site or
//! to the HTTPS redirector.
//!
//! Input: a little-endian u16 (the split seed; 0 delivers the stream whole only; its low bit
//! picks the handler), then the stream. Checked beyond "no panic":
//! - what the server writes is a sequence of well-formed responses, each with its
//!   `Content-Length` (or none, for 304) and exactly that much body (none after a HEAD), one per
//!   request the handler answered plus at most one error status for a request the server
//!   refused, and nothing after a `Connection: close`;
//! - the bytes written and the outcome are the same however the stream was cut.

use std::cell::RefCell;

use embedded_io_async::Write;
use morgana::{Key, KvRw, StackError};
use morgana_http::{
    ConnStats, Handler, HttpError, Limits, RedirectToHttps, Request, Responder, StaticFiles, serve,
};
use morgana_mem::{MemKv, pipe};

use crate::util::{Clock, feed, read_all, run_virtual, split, with_seed};

/// A handler that notes which requests it was given (whether each was a HEAD).
struct Noting<H> {
    inner: H,
    heads: RefCell<Vec<bool>>,
}

impl<H: Handler> Handler for Noting<H> {
    async fn handle<W: Write>(&self, req: &Request<'_>, res: Responder<'_, W>) -> Result<(), W::Error> {
        self.heads.borrow_mut().push(res.head_only());
        self.inner.handle(req, res).await
    }
}

type Served = Result<ConnStats, HttpError<StackError>>;

async fn site(clock: &Clock) -> MemKv<Clock> {
    let kv = MemKv::new(clock.clone());
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for (k, v) in [
        ("/index.html", b"<h1>home</h1>".to_vec()),
        ("/style.css", b"body { color: #222 }".to_vec()),
        ("/docs/index.html", b"<h1>docs</h1>".to_vec()),
        ("/a b/c.txt", b"spaced".to_vec()),
        ("/empty.txt", Vec::new()),
        ("/big.bin", big),
    ] {
        kv.set(&Key::parse(k).expect("valid key"), &v).await.expect("a fresh store takes it");
    }
    kv
}

/// Serve one connection whose client sends `pieces` (yielding between them, so the server sees
/// each on its own), then half-closes; what the server wrote, how it ended, and the HEAD flags
/// of the requests its handler answered.
fn exchange(pieces: &[&[u8]], redirect: bool) -> (Vec<u8>, Served, Vec<bool>) {
    run_virtual(3600, |clock| async move {
        // The redirect half also keeps request bodies (`keep_body`), so both ways of reading a
        // body, skipping and buffering it, get the same inputs.
        let limits = Limits {
            max_head: 2048,
            max_request_line: 1024,
            max_headers: 16,
            keep_body: redirect,
            ..Limits::default()
        };
        if redirect {
            let h = Noting { inner: RedirectToHttps::new(8443), heads: RefCell::new(Vec::new()) };
            let (served, out) = feed(pieces, async |end| serve(end, &h, &clock, &limits).await).await;
            (out, served, h.heads.into_inner())
        } else {
            let kv = site(&clock).await;
            let h = Noting { inner: StaticFiles::new(&kv), heads: RefCell::new(Vec::new()) };
            let (served, out) = feed(pieces, async |end| serve(end, &h, &clock, &limits).await).await;
            (out, served, h.heads.into_inner())
        }
    })
    .expect("the server finishes once the client has closed")
}

/// Check that `out` is one well-formed response per answered request (`heads`), plus at most
/// one refusal, as `served` says.
fn check_responses(out: &[u8], served: &Served, heads: &[bool]) {
    let mut rest = out;
    let mut n = 0usize;
    let mut closed = false;
    while !rest.is_empty() {
        assert!(
            !closed,
            "bytes after a response with Connection: close: {:?}",
            String::from_utf8_lossy(rest)
        );
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        let head_len = match r.parse(rest) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!(
                "response {n} is not a complete HTTP head ({other:?}): {:?}",
                String::from_utf8_lossy(rest)
            ),
        };
        let status = r.code.expect("a complete head has a status");
        assert_eq!(r.version, Some(1), "response {n}: HTTP/1.1");
        let header =
            |name: &str| r.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
        assert!(header("date").is_some(), "response {n}: no Date");
        let lengths = r.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length")).count();
        let len: usize = match header("content-length") {
            Some(v) => {
                std::str::from_utf8(v).ok().and_then(|v| v.parse().ok()).expect("a decimal Content-Length")
            }
            None => {
                assert!(matches!(status, 304 | 204), "response {n}: {status} without Content-Length");
                0
            }
        };
        assert!(lengths <= 1, "response {n}: {lengths} Content-Length fields");
        closed = header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let head_only = heads.get(n).copied().unwrap_or(false);
        let body = if head_only || matches!(status, 304 | 204) { 0 } else { len };
        assert!(rest.len() >= head_len + body, "response {n}: body shorter than its Content-Length {len}");
        // RFC 9110 14.4: a part's range, or the whole length of what was unsatisfiable.
        if let Some(range) = header("content-range") {
            let want: &[u8] = if status == 416 { b"bytes */" } else { b"bytes " };
            assert!(matches!(status, 206 | 416), "response {n}: Content-Range on a {status}");
            assert!(range.starts_with(want), "response {n}: Content-Range {range:?} on a {status}");
        }
        rest = &rest[head_len + body..];
        n += 1;
    }
    let answered = heads.len();
    match served {
        Ok(stats) => {
            assert_eq!(stats.requests as usize, answered, "requests counted and handled differ");
            assert_eq!(n, answered, "{n} responses to {answered} requests");
        }
        // A refusal: its error status follows the answers.
        Err(HttpError::Malformed(_)) => {
            assert_eq!(n, answered + 1, "{n} responses to {answered} requests and a refusal")
        }
        Err(HttpError::UnexpectedEof) => assert_eq!(n, answered, "{n} responses to {answered} requests"),
        Err(e) => panic!("the server failed with {e:?} on an in-memory pipe without delays"),
    }
}

/// Feed one client byte stream.
pub fn run(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let seed = u16::from_le_bytes([data[0], data[1]]);
    let stream = &data[2..];
    let redirect = seed & 1 == 1;
    let (out, served, heads) = exchange(&[stream], redirect);
    check_responses(&out, &served, &heads);
    if seed > 1 {
        let pieces = split(stream, seed);
        let (out2, served2, heads2) = exchange(&pieces, redirect);
        assert_eq!(served2, served, "the outcome depends on how the stream was cut");
        assert_eq!(heads2, heads);
        assert!(out2 == out, "the responses depend on how the stream was cut");
    }
}

/// What the server writes for the `own-client` seed: responses for the client harness's seeds.
pub fn recorded_responses() -> Vec<u8> {
    let stream = own_client_requests();
    exchange(&[&stream], false).0
}

fn own_client_requests() -> Vec<u8> {
    run_virtual(60, |_| async {
        let (a, mut b) = pipe(64 * 1024);
        let mut c = morgana_http::Client::new(a);
        c.send("GET", "localhost", "/", &[]).await.expect("pipe write");
        c.send("HEAD", "localhost", "/style.css", &[]).await.expect("pipe write");
        c.send("GET", "localhost", "/big.bin", &[("Range", "bytes=100-199")]).await.expect("pipe write");
        c.send("GET", "localhost", "/docs/", &[("If-None-Match", "\"x\"")]).await.expect("pipe write");
        c.send("GET", "localhost", "/a%20b/c.txt", &[("Connection", "close")]).await.expect("pipe write");
        drop(c);
        read_all(&mut b).await
    })
    .expect("writing to a pipe does not stall")
}

/// Requests as morgana's own client writes them, pipelined, plus what curl and browsers send
/// and what the server must refuse.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let own = own_client_requests();
    let streams: Vec<(&str, Vec<u8>)> = vec![
        ("own-client", own),
        ("curl", b"GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n".to_vec()),
        ("http10", b"GET / HTTP/1.0\r\n\r\nGET /style.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec()),
        ("body", b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec()),
        ("chunked", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec()),
        ("range-suffix", b"GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=-10\r\n\r\nHEAD /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=5-\r\n\r\n".to_vec()),
        ("no-host", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("bad", b"GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n".to_vec()),
        ("long-line", [b"GET /".as_slice(), &[b'a'; 1100], b" HTTP/1.1\r\nHost: h\r\n\r\n"].concat()),
        ("lf-only", b"GET / HTTP/1.1\nHost: h\n\nGET /style.css HTTP/1.1\nHost: h\n\n".to_vec()),
    ];
    let mut out = Vec::new();
    for (name, s) in streams {
        out.push((format!("{name}-whole"), with_seed(0, &s)));
        out.push((format!("{name}-split"), with_seed(0x5a5a, &s)));
        out.push((format!("{name}-redirect"), with_seed(0x1235, &s)));
    }
    out
}
