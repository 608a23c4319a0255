//! The HTTP client against servers that misbehave: every answer is an error or a response,
//! never a panic or an allocation the server's numbers ask for.

use embedded_io_async::{Read, Write};
use futures::future::join;
use morgana::{FlowWrite, StackError};
use morgana_http::{Client, HttpError, Response};
use morgana_mem::{PipeEnd, pipe};
use morgana_rt::{Executor, VirtualTime};

/// Send a GET through a client to a server that reads the request and answers `reply`, then
/// closes; what the client made of it.
fn answer(reply: Vec<u8>) -> Result<Response, HttpError<StackError>> {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let out = exec.block_on(&mut time.park(), async {
        let (a, b) = pipe(256 * 1024);
        let server = async move {
            let mut a: PipeEnd = a;
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match a.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = a.write_all(&reply).await;
            let _ = a.shutdown_write().await;
        };
        let client = async move { Client::new(b).get("a", "/").await };
        join(server, client).await.1
    });
    out.expect("no stall")
}

#[test]
fn chunked_and_close_delimited_bodies_are_read_whole() {
    let r = answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec())
        .unwrap();
    assert_eq!((r.minor_version, r.status, r.body.as_slice()), (1, 200, &b"hello world"[..]));
    let r = answer(b"HTTP/1.0 200 ok\r\nContent-type: text/plain\r\n\r\nto the end\n".to_vec()).unwrap();
    assert_eq!((r.minor_version, r.reason.as_str(), r.body.as_slice()), (0, "ok", &b"to the end\n"[..]));
}

#[test]
fn lying_or_huge_sizes_are_errors() {
    // A chunk size that overflows a u64 sum with what came before.
    let r = answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n".to_vec(),
    );
    assert!(matches!(r, Err(HttpError::TooLarge)), "{r:?}");
    // A chunk-size line that never ends.
    let mut long = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
    long.resize(long.len() + 100_000, b'a');
    let r = answer(long);
    assert!(matches!(r, Err(HttpError::Malformed("chunk size line too long"))), "{r:?}");
    // Trailers that never end.
    let mut trailer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ".to_vec();
    trailer.resize(trailer.len() + 100_000, b'b');
    let r = answer(trailer);
    assert!(matches!(r, Err(HttpError::TooLarge)), "{r:?}");
    // A length announced and not sent; one beyond the limit.
    let r = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 60000000\r\n\r\nshort".to_vec());
    assert!(matches!(r, Err(HttpError::UnexpectedEof)), "{r:?}");
    let r = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n".to_vec());
    assert!(matches!(r, Err(HttpError::TooLarge)), "{r:?}");
    // Not HTTP at all.
    let r = answer(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec());
    assert!(matches!(r, Err(HttpError::Malformed(_))), "{r:?}");
}

/// Found by the http_client fuzz target: httparse reads any three digits as a status, and the
/// client returned responses with status 0, 2 or 65 (`HTTP/1.1 065 Continue`).
#[test]
fn a_status_outside_100_to_599_is_malformed() {
    for line in ["HTTP/1.1 000 Zero", "HTTP/1.1 065 Continue", "HTTP/1.1 600 Custom", "HTTP/1.1 999 X"] {
        let r = answer(format!("{line}\r\nContent-Length: 0\r\n\r\n").into_bytes());
        assert_eq!(r, Err(HttpError::Malformed("bad status code")), "{line}");
    }
    assert_eq!(answer(b"HTTP/1.1 599 Edge\r\nContent-Length: 0\r\n\r\n".to_vec()).map(|r| r.status), Ok(599));
}
