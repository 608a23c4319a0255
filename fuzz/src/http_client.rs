//! The HTTP client (`morgana_http::Client::receive`): a server's byte stream, several
//! responses on one connection, delivered whole and again cut at points drawn from the input.
//!
//! Input: a little-endian u16 (the split seed; 0 delivers the stream whole only), a byte whose
//! bits say which of the requests were HEADs, then the stream. Checked beyond "no panic":
//! each response read is the one its framing says (a body of exactly `Content-Length` bytes,
//! none after a HEAD, a 204 or a 304, never more than the client's limit), and what is read
//! (responses and the error that ends the reading) is the same however the stream was cut.

use futures::future::join;
use morgana::StackError;
use morgana_http::{Client, HttpError, Response};
use morgana_mem::pipe;

use crate::util::{run_virtual, send_pieces, split, with_seed};

/// Most responses read from one stream.
const RESPONSES: usize = 4;
/// The client's body limit here (its default is 64 MiB).
const MAX_BODY: usize = 1 << 20;

type Read = Vec<Result<Response, HttpError<StackError>>>;

fn exchange(pieces: &[&[u8]], heads: u8) -> Read {
    run_virtual(3600, |_| async move {
        let (server_end, client_end) = pipe(64 * 1024);
        let (_rx, mut tx) = morgana::Flow::split(server_end);
        let mut client = Client::new(client_end).max_body(MAX_BODY);
        let send = send_pieces(&mut tx, pieces);
        let receive = async {
            let mut got = Vec::new();
            for i in 0..RESPONSES {
                let r = client.receive(heads & (1 << i) != 0).await;
                let stop = r.is_err();
                got.push(r);
                if stop {
                    break;
                }
            }
            got
        };
        join(send, receive).await.1
    })
    .expect("the client finishes once the server has closed")
}

fn check(read: &Read, heads: u8) {
    for (i, r) in read.iter().enumerate() {
        let Ok(r) = r else { continue };
        assert!((200..600).contains(&r.status), "response {i}: status {} (1xx are skipped)", r.status);
        assert!(r.body.len() <= MAX_BODY, "response {i}: a body over the limit");
        let no_body = heads & (1 << i) != 0 || matches!(r.status, 204 | 304);
        if no_body {
            assert!(r.body.is_empty(), "response {i}: a body where none can be");
        } else if r.header("transfer-encoding").is_none()
            && let Some(len) = r.header("content-length")
        {
            let len: usize = len.trim().parse().expect("the client accepted this Content-Length");
            assert_eq!(r.body.len(), len, "response {i}: body and Content-Length differ");
        }
    }
}

/// Feed one server byte stream.
pub fn run(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let seed = u16::from_le_bytes([data[0], data[1]]);
    let heads = data[2];
    let stream = &data[3..];
    let whole = exchange(&[stream], heads);
    check(&whole, heads);
    if seed != 0 {
        let cut = exchange(&split(stream, seed), heads);
        assert_eq!(cut, whole, "what the client reads depends on how the stream was cut");
    }
}

/// Responses as morgana's own server writes them (recorded from the server harness's site),
/// and the framings other servers use.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let own = crate::http_server::recorded_responses();
    let streams: Vec<(&str, u8, Vec<u8>)> = vec![
        ("own-server", 0b0010, own),
        ("chunked", 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        ("continue", 0, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("to-end", 0, b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end".to_vec()),
        ("head", 1, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".to_vec()),
        ("bad-length", 0, b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n".to_vec()),
        ("truncated", 0, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec()),
    ];
    let mut out = Vec::new();
    for (name, heads, s) in streams {
        let body = [&[heads][..], &s].concat();
        out.push((format!("{name}-whole"), with_seed(0, &body)));
        out.push((format!("{name}-split"), with_seed(0x2b2b, &body)));
    }
    out
}
