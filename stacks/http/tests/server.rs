//! The HTTP server and client over the in-memory pipe, on virtual time.

use std::future::Future;

use embedded_io_async::{Read, Write};
use futures::future::join;
use morgana::{Clock, Duration, FlowWrite, Instant, Key, KvRw};
use morgana_http::{Client, ConnStats, HttpError, Limits, RedirectToHttps, StaticFiles, serve};
use morgana_mem::{MemKv, PipeEnd, pipe};
use morgana_rt::{Executor, Handle, VirtualTime};

type Clk = Handle<VirtualTime>;
type Served = Result<ConnStats, HttpError<morgana::StackError>>;

const INDEX: &[u8] = b"<!DOCTYPE html><title>home</title><link rel=stylesheet href=style.css>";
const CSS: &[u8] = b"body { color: #222 }";
const DOCS: &[u8] = b"<!DOCTYPE html><title>docs</title>";

fn logo() -> Vec<u8> {
    (0..3000u32).map(|i| (i * 7 % 256) as u8).collect()
}

fn big() -> Vec<u8> {
    (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

async fn site(clock: &Clk) -> MemKv<Clk> {
    let kv = MemKv::new(clock.clone());
    for (k, v) in [
        ("/index.html", INDEX.to_vec()),
        ("/style.css", CSS.to_vec()),
        ("/docs/index.html", DOCS.to_vec()),
        ("/img/logo.png", logo()),
        ("/big.bin", big()),
        ("/empty/readme.txt", b"no index here".to_vec()),
    ] {
        kv.set(&Key::parse(k).unwrap(), &v).await.unwrap();
    }
    kv
}

/// Run a server for one connection beside `client`; return both results and the end time.
fn with_server<T, F: Future<Output = T>>(
    limits: Limits,
    client: impl FnOnce(PipeEnd, Clk) -> F,
) -> (Served, T, Instant) {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let clock = exec.handle();
    let out = exec.block_on(&mut time.park(), async {
        let kv = site(&clock).await;
        let files = StaticFiles::new(&kv);
        let (a, b) = pipe(64 * 1024);
        let r = join(serve(a, &files, &clock, &limits), client(b, clock.clone())).await;
        (r.0, r.1, clock.now())
    });
    out.expect("no stall")
}

/// Everything the peer sends until it closes.
async fn drain(flow: &mut PipeEnd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = flow.read(&mut buf).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn pages_types_directories_and_404() {
    let (served, responses, _) = with_server(Limits::default(), |b, _| async move {
        let mut c = Client::new(b);
        let mut out = Vec::new();
        for path in [
            "/",
            "/style.css",
            "/docs/",
            "/docs",
            "/img/logo.png",
            "/nope",
            "/../etc/passwd",
            "/img/",
            "/empty/",
        ] {
            out.push(c.get("localhost", path).await.unwrap());
        }
        out
    });
    assert_eq!(served.unwrap().requests, 9);
    let r = &responses;
    assert_eq!((r[0].status, r[0].body.as_slice()), (200, INDEX));
    assert_eq!(r[0].header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r[0].header("server"), Some("morgana"));
    assert_eq!(r[0].header("date"), Some("Thu, 01 Jan 2026 00:00:00 GMT"));
    assert_eq!((r[1].status, r[1].header("content-type")), (200, Some("text/css; charset=utf-8")));
    assert_eq!((r[2].status, r[2].body.as_slice()), (200, DOCS), "a directory serves its index.html");
    assert_eq!((r[3].status, r[3].header("location")), (301, Some("/docs/")));
    assert_eq!((r[4].status, r[4].header("content-type")), (200, Some("image/png")));
    assert_eq!(r[4].body, logo());
    assert_eq!(r[5].status, 404);
    assert_eq!(r[6].status, 404, "no escaping the store");
    assert_eq!(r[7].status, 404, "a directory without index.html");
    assert_eq!(r[8].status, 404);
}

#[test]
fn etag_and_if_none_match_give_304() {
    let (_, (first, again, stale, star), _) = with_server(Limits::default(), |b, _| async move {
        let mut c = Client::new(b);
        let first = c.get("localhost", "/style.css").await.unwrap();
        let tag = first.header("etag").unwrap().to_string();
        let again = c.request("GET", "localhost", "/style.css", &[("If-None-Match", &tag)]).await.unwrap();
        let stale =
            c.request("GET", "localhost", "/style.css", &[("If-None-Match", "\"other\"")]).await.unwrap();
        let star = c.request("GET", "localhost", "/style.css", &[("If-None-Match", "*")]).await.unwrap();
        (first, again, stale, star)
    });
    let tag = first.header("etag").unwrap();
    assert!(tag.starts_with('"') && tag.len() == 34, "{tag}");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(tag));
    assert_eq!((stale.status, stale.body.as_slice()), (200, CSS));
    assert_eq!(star.status, 304);
}

#[test]
fn ranges_give_206_or_416() {
    let data = big();
    let (_, r, _) = with_server(Limits::default(), |b, _| async move {
        let mut c = Client::new(b);
        let mut out = Vec::new();
        for range in
            ["bytes=0-9", "bytes=199990-", "bytes=-5", "bytes=1000-150999", "bytes=300000-", "bytes=0-1,3-4"]
        {
            out.push(c.request("GET", "localhost", "/big.bin", &[("Range", range)]).await.unwrap());
        }
        let tag = out[0].header("etag").unwrap().to_string();
        out.push(
            c.request("GET", "localhost", "/big.bin", &[("Range", "bytes=0-1"), ("If-Range", &tag)])
                .await
                .unwrap(),
        );
        out.push(
            c.request("GET", "localhost", "/big.bin", &[("Range", "bytes=0-1"), ("If-Range", "\"x\"")])
                .await
                .unwrap(),
        );
        out
    });
    assert_eq!((r[0].status, r[0].header("content-range")), (206, Some("bytes 0-9/200000")));
    assert_eq!(r[0].body, &data[..10]);
    assert_eq!(r[1].body, &data[199_990..]);
    assert_eq!((r[2].status, r[2].body.as_slice()), (206, &data[199_995..]));
    assert_eq!(r[3].body, &data[1000..151_000], "a range larger than one chunk");
    assert_eq!((r[4].status, r[4].header("content-range")), (416, Some("bytes */200000")));
    assert_eq!((r[5].status, r[5].body.len()), (200, 200_000), "several ranges: the whole file");
    assert_eq!((r[6].status, r[6].body.len()), (206, 2));
    assert_eq!((r[7].status, r[7].body.len()), (200, 200_000), "If-Range mismatch: the whole file");
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let (_, (head, get), _) = with_server(Limits::default(), |b, _| async move {
        let mut c = Client::new(b);
        let head = c.request("HEAD", "localhost", "/big.bin", &[]).await.unwrap();
        // The connection is still in step: the next response is parsed correctly.
        let get = c.get("localhost", "/style.css").await.unwrap();
        (head, get)
    });
    assert_eq!((head.status, head.header("content-length")), (200, Some("200000")));
    assert!(head.body.is_empty());
    assert_eq!(get.body, CSS);
}

#[test]
fn a_hundred_requests_on_one_keep_alive_connection() {
    let (served, ok, _) = with_server(Limits::default(), |b, _| async move {
        let mut c = Client::new(b);
        let mut ok = 0;
        for i in 0..100 {
            let path = if i % 2 == 0 { "/" } else { "/img/logo.png" };
            let r = c.get("localhost", path).await.unwrap();
            ok += usize::from(r.status == 200 && !r.body.is_empty());
        }
        ok
    });
    assert_eq!(ok, 100);
    assert_eq!(served.unwrap().requests, 100, "one connection served all of them");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (served, r, _) = with_server(Limits::default(), |mut b, _| async move {
        b.write_all(
            b"GET /style.css HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET /docs/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut c = Client::new(b);
        let r = vec![
            c.receive(false).await.unwrap(),
            c.receive(true).await.unwrap(),
            c.receive(false).await.unwrap(),
        ];
        let mut rest = c.into_inner();
        (r, drain(&mut rest).await)
    });
    let (r, rest) = r;
    assert_eq!(served.unwrap().requests, 3);
    assert_eq!(r[0].body, CSS);
    assert_eq!((r[1].status, r[1].body.len()), (200, 0));
    assert_eq!(r[2].body, DOCS);
    assert_eq!(r[2].header("connection"), Some("close"));
    assert!(rest.is_empty(), "closed after the last one");
}

#[test]
fn other_methods_get_405_and_request_bodies_are_skipped() {
    let (_, (post, next), _) = with_server(Limits::default(), |mut b, _| async move {
        b.write_all(b"POST /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello").await.unwrap();
        let mut c = Client::new(b);
        let post = c.receive(false).await.unwrap();
        let next = c.get("a", "/style.css").await.unwrap();
        (post, next)
    });
    assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(next.body, CSS, "the body was skipped, the next request parsed");
}

#[test]
fn malformed_requests_get_an_error_status_and_a_closed_connection() {
    let mut huge = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let mut long_uri = b"GET /".to_vec();
    long_uri.extend(std::iter::repeat_n(b'a', 5000));
    long_uri.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n".to_vec(), "400"),
        ("1 MiB header", huge, "431"),
        ("too many headers", many, "431"),
        ("long request line", long_uri, "414"),
        ("body too large", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999\r\n\r\n".to_vec(), "413"),
        (
            "chunked body",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            "501",
        ),
        ("bad content length", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n".to_vec(), "400"),
        ("no host", b"GET / HTTP/1.1\r\n\r\n".to_vec(), "400"),
    ];
    for (name, raw, status) in cases {
        let (served, answer, _) = with_server(Limits::default(), |b, _| async move {
            let (mut r, mut w) = morgana::Flow::split(b);
            // The server may stop reading (and close) before all of a huge request is sent.
            let send = async {
                let _ = w.write_all(&raw).await;
                let _ = w.shutdown_write().await;
            };
            let (_, answer) = join(send, async {
                let mut out = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(&buf[..n]);
                }
                out
            })
            .await;
            String::from_utf8_lossy(&answer).into_owned()
        });
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{name}: {answer:?}");
        assert!(answer.contains("Connection: close"), "{name}: {answer:?}");
        assert!(served.is_err(), "{name}: the server reports it");
        // A new connection is served as usual.
        let (_, ok, _) =
            with_server(Limits::default(), |b, _| async move { Client::new(b).get("a", "/").await.unwrap() });
        assert_eq!(ok.status, 200, "{name}");
    }
    // A well-formed request for a malformed path is answered and the connection stays usable.
    let (served, (bad, next), _) = with_server(Limits::default(), |b, _| async move {
        let mut c = Client::new(b);
        (c.get("a", "/%zz").await.unwrap(), c.get("a", "/").await.unwrap())
    });
    assert_eq!((bad.status, next.status), (400, 200));
    assert_eq!(served.unwrap().requests, 2);
}

#[test]
fn idle_connections_close_and_slow_heads_get_408() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(5),
        header_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    // Idle: one request, then nothing.
    let (served, (status, rest), end) = with_server(limits.clone(), |b, _| async move {
        let mut c = Client::new(b);
        let status = c.get("a", "/").await.unwrap().status;
        let mut b = c.into_inner();
        (status, drain(&mut b).await)
    });
    assert_eq!((status, rest.len()), (200, 0));
    assert_eq!(served.unwrap().requests, 1);
    assert_eq!(end, Instant::ZERO + Duration::from_secs(5), "closed after exactly the idle timeout");
    // Slow: half a head, then silence.
    let (served, answer, end) = with_server(limits, |mut b, clock| async move {
        clock.sleep(Duration::from_secs(1)).await;
        b.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        String::from_utf8(drain(&mut b).await).unwrap()
    });
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(matches!(served, Err(HttpError::TimedOut)));
    assert_eq!(end, Instant::ZERO + Duration::from_secs(3), "two seconds after the head started");
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let (served, (answer,), _) = with_server(Limits::default(), |mut b, _| async move {
        b.write_all(b"GET /style.css HTTP/1.0\r\n\r\n").await.unwrap();
        (String::from_utf8_lossy(&drain(&mut b).await).into_owned(),)
    });
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("body { color: #222 }"),
        "{answer}"
    );
    assert!(answer.contains("Connection: close"));
    assert_eq!(served.unwrap().requests, 1);
    let (served, (a, b), _) = with_server(Limits::default(), |mut b, _| async move {
        b.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await.unwrap();
        let mut c = Client::new(b);
        let a = c.receive(false).await.unwrap();
        let b = c.get("a", "/style.css").await.unwrap();
        (a, b)
    });
    assert_eq!(a.header("connection"), Some("keep-alive"));
    assert_eq!(b.status, 200);
    assert_eq!(served.unwrap().requests, 2);
}

#[test]
fn plain_http_redirects_to_https() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let clock = exec.handle();
    let out = exec.block_on(&mut time.park(), async {
        let mut answers = Vec::new();
        for (port, host) in [(8443, "example.com:8080"), (443, "example.com"), (443, "[::1]:80")] {
            let handler = RedirectToHttps::new(port);
            let (a, b) = pipe(4096);
            let limits = Limits::default();
            let (_, r) = join(serve(a, &handler, &clock, &limits), async {
                let mut c = Client::new(b);
                c.get(host, "/docs/?q=1").await.unwrap()
            })
            .await;
            answers.push((r.status, r.header("location").unwrap().to_string()));
        }
        answers
    });
    assert_eq!(
        out.unwrap(),
        [
            (308, "https://example.com:8443/docs/?q=1".to_string()),
            (308, "https://example.com/docs/?q=1".to_string()),
            (308, "https://[::1]/docs/?q=1".to_string())
        ]
    );
}

/// Found by the http_server fuzz target: an over-long request line that is malformed within
/// the limit got 414 when it arrived whole and 400 when its start arrived first. It is 400
/// either way, and an over-long well-formed one is 414 either way.
#[test]
fn an_over_long_request_line_gets_one_answer_however_it_arrives() {
    let limits = Limits { max_request_line: 64, ..Limits::default() };
    let mut bad = b"GET )TTP\xff /".to_vec();
    bad.extend(std::iter::repeat_n(b'a', 100));
    bad.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut good = b"GET /".to_vec();
    good.extend(std::iter::repeat_n(b'a', 100));
    good.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    for (raw, status) in [(bad, "400"), (good, "414")] {
        for pieces in [vec![&raw[..]], vec![&raw[..8], &raw[8..]]] {
            let (_, answer, _) = with_server(limits.clone(), |b, clock| async move {
                let (mut r, mut w) = morgana::Flow::split(b);
                let send = async {
                    for p in pieces {
                        let _ = w.write_all(p).await;
                        // Let the server read this piece on its own.
                        clock.sleep(Duration::from_millis(1)).await;
                    }
                    let _ = w.shutdown_write().await;
                };
                let receive = async {
                    let mut out = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = r.read(&mut buf).await {
                        out.extend_from_slice(&buf[..n]);
                    }
                    out
                };
                join(send, receive).await.1
            });
            let answer = String::from_utf8_lossy(&answer).into_owned();
            assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{answer:?}");
        }
    }
}
