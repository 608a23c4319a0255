//! Request bodies: kept for the handler with `Limits::keep_body` (however the bytes arrive,
//! pipelined requests after them intact), skipped without it, refused past `max_body`, and held
//! to a deadline.

use std::future::Future;

use embedded_io_async::Write;
use futures::future::join;
use morgana::{Clock, Duration};
use morgana_http::{Client, ConnStats, Handler, HttpError, Limits, Request, Responder, serve};
use morgana_mem::{PipeEnd, pipe};
use morgana_rt::{Executor, Handle, VirtualTime};

type Clk = Handle<VirtualTime>;
type Served = Result<ConnStats, HttpError<morgana::StackError>>;

/// Answers `METHOD PATH LEN SUM` for every request: what the handler saw of its body.
struct Summary;

impl Handler for Summary {
    async fn handle<W: embedded_io_async::Write>(
        &self,
        req: &Request<'_>,
        res: Responder<'_, W>,
    ) -> Result<(), W::Error> {
        let sum: u64 = req.body.iter().map(|&b| u64::from(b)).sum();
        let line = format!("{} {} {} {sum}", req.method, req.path(), req.body.len());
        res.send(200, &[], line.as_bytes()).await
    }
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn summary(method: &str, path: &str, body: &[u8]) -> String {
    format!("{method} {path} {} {}", body.len(), body.iter().map(|&b| u64::from(b)).sum::<u64>())
}

fn put_head(path: &str, len: usize) -> String {
    format!("PUT {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n")
}

fn with_server<T, F: Future<Output = T>>(
    limits: Limits,
    client: impl FnOnce(PipeEnd, Clk) -> F,
) -> (Served, T) {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let clock = exec.handle();
    let out = exec.block_on(&mut time.park(), async {
        let (a, b) = pipe(64 * 1024);
        join(serve(a, &Summary, &clock, &limits), client(b, clock.clone())).await
    });
    out.expect("no stall")
}

fn keeping(max_body: u64) -> Limits {
    Limits { keep_body: true, max_body, ..Limits::default() }
}

#[test]
fn a_kept_body_reaches_the_handler_whole_and_pipelined_requests_follow_it() {
    let big = body(300_000);
    let small = body(10);
    let (served, answers) = with_server(keeping(1 << 20), |b, clock| {
        let (big, small) = (big.clone(), small.clone());
        async move {
            let mut c = Client::new(b);
            let f = c.flow_mut();
            // The big body in three pieces, a pause between them.
            f.write_all(put_head("/big", big.len()).as_bytes()).await.unwrap();
            for piece in big.chunks(100_000) {
                f.write_all(piece).await.unwrap();
                clock.sleep(Duration::from_millis(300)).await;
            }
            // Then a small PUT and a GET in one write.
            let mut two = put_head("/small", small.len()).into_bytes();
            two.extend_from_slice(&small);
            two.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
            f.write_all(&two).await.unwrap();
            let mut out = Vec::new();
            for _ in 0..3 {
                out.push(String::from_utf8(c.receive(false).await.unwrap().body).unwrap());
            }
            out
        }
    });
    assert_eq!(served.unwrap().requests, 3);
    assert_eq!(
        answers,
        [summary("PUT", "/big", &big), summary("PUT", "/small", &small), summary("GET", "/after", &[])]
    );
}

#[test]
fn without_keep_body_a_body_is_skipped_and_the_next_request_is_answered() {
    let (served, answers) = with_server(Limits::default(), |b, _| async move {
        let mut c = Client::new(b);
        let mut req = put_head("/x", 5000).into_bytes();
        req.extend_from_slice(&body(5000));
        req.extend_from_slice(b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n");
        c.flow_mut().write_all(&req).await.unwrap();
        let first = String::from_utf8(c.receive(false).await.unwrap().body).unwrap();
        let second = String::from_utf8(c.receive(false).await.unwrap().body).unwrap();
        (first, second)
    });
    assert_eq!(served.unwrap().requests, 2);
    assert_eq!(answers, ("PUT /x 0 0".to_string(), "GET /y 0 0".to_string()));
}

#[test]
fn a_body_past_max_body_gets_413_and_a_stalled_one_408() {
    let (served, status) = with_server(keeping(1000), |b, _| async move {
        let mut c = Client::new(b);
        c.flow_mut().write_all(put_head("/x", 1001).as_bytes()).await.unwrap();
        c.receive(false).await.unwrap().status
    });
    assert_eq!(status, 413);
    assert!(served.is_err());
    let (served, status) = with_server(keeping(1 << 20), |b, _| async move {
        let mut c = Client::new(b);
        c.flow_mut().write_all(put_head("/x", 1000).as_bytes()).await.unwrap();
        c.flow_mut().write_all(&body(10)).await.unwrap();
        c.receive(false).await.unwrap().status
    });
    assert_eq!(status, 408);
    assert!(matches!(served, Err(HttpError::TimedOut)));
}
