//! The server side: one connection, many requests (keep-alive and pipelining).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::mem::MaybeUninit;

use embedded_io_async::Write;
use morgana::{Clock, Duration, Flow, Instant, WallClock};

use crate::date::HttpDate;
use crate::error::HttpError;

/// Limits that keep one client from holding more than its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers), in bytes; more is 431.
    pub max_head: usize,
    /// Most header fields in a request; more is 431.
    pub max_headers: usize,
    /// Longest request line, in bytes; more is 414.
    pub max_request_line: usize,
    /// Largest request body accepted; more is 413.
    pub max_body: u64,
    /// Read each request's body (up to `max_body`) before the handler runs and give it as
    /// [`Request::body`]; otherwise bodies are skipped as they arrive (a server that only
    /// reads holds no more than `max_head` per connection).
    pub keep_body: bool,
    /// How long a connection may wait for the first byte of its next request.
    pub idle_timeout: Duration,
    /// How long a request head may take to arrive once it has started; then 408.
    pub header_timeout: Duration,
    /// How long writing one response may take.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: 8 * 1024,
            max_headers: 64,
            max_request_line: 4 * 1024,
            max_body: 64 * 1024,
            keep_body: false,
            idle_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// A parsed request head, borrowed from the connection's buffer.
#[derive(Debug)]
pub struct Request<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The request target as sent, e.g. `/index.html?x=1`.
    pub target: &'a str,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// The header fields, in order.
    pub headers: &'a [httparse::Header<'a>],
    /// The body, with [`Limits::keep_body`]; empty otherwise.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The target without its query.
    pub fn path(&self) -> &'a str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    /// The value of the header `name` as text, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| core::str::from_utf8(v).ok()).map(str::trim)
    }
}

/// Answers requests.
pub trait Handler {
    /// Answer `req` through `res`. Write errors are the flow's; a handler that sends no complete
    /// response makes the server close the connection.
    async fn handle<W: Write>(&self, req: &Request<'_>, res: Responder<'_, W>) -> Result<(), W::Error>;
}

impl<T: Handler + ?Sized> Handler for &T {
    async fn handle<W: Write>(&self, req: &Request<'_>, res: Responder<'_, W>) -> Result<(), W::Error> {
        T::handle(self, req, res).await
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// What was sent for a request.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    status: u16,
    complete: bool,
}

/// Sends the one response to a request. HEAD requests get the head only; the server adds
/// `Server`, `Date`, `Content-Length` and `Connection`.
pub struct Responder<'a, W> {
    out: &'a mut W,
    head_only: bool,
    close: bool,
    version: u8,
    date: u64,
    sent: &'a mut Sent,
}

impl<'a, W: Write> Responder<'a, W> {
    /// Whether only the head will be sent (a HEAD request).
    pub fn head_only(&self) -> bool {
        self.head_only
    }

    /// The response head, in a buffer with room for `extra` more bytes (the body that follows).
    fn head(
        &self,
        status: u16,
        headers: &[(&str, &str)],
        content_length: Option<u64>,
        extra: usize,
    ) -> Vec<u8> {
        let fields: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut h = Vec::with_capacity(160 + fields + extra);
        // Built by hand rather than with `write!`: this runs for every response.
        h.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(&mut h, u64::from(status));
        h.push(b' ');
        h.extend_from_slice(reason(status).as_bytes());
        h.extend_from_slice(b"\r\nServer: morgana\r\nDate: ");
        h.extend_from_slice(&HttpDate(self.date).to_bytes());
        h.extend_from_slice(b"\r\n");
        for (k, v) in headers {
            h.extend_from_slice(k.as_bytes());
            h.extend_from_slice(b": ");
            h.extend_from_slice(v.as_bytes());
            h.extend_from_slice(b"\r\n");
        }
        if let Some(n) = content_length {
            h.extend_from_slice(b"Content-Length: ");
            push_decimal(&mut h, n);
            h.extend_from_slice(b"\r\n");
        }
        if self.close {
            h.extend_from_slice(b"Connection: close\r\n");
        } else if self.version == 0 {
            h.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        h.extend_from_slice(b"\r\n");
        h
    }

    /// Send a whole response with `body`.
    pub async fn send(self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), W::Error> {
        let extra = if self.head_only { 0 } else { body.len() };
        let mut msg = self.head(status, headers, Some(body.len() as u64), extra);
        if !self.head_only {
            msg.extend_from_slice(body);
        }
        self.out.write_all(&msg).await?;
        self.out.flush().await?;
        *self.sent = Sent { status, complete: true };
        Ok(())
    }

    /// Send a response that has no body by definition (304, 204): no `Content-Length`.
    pub async fn send_empty(self, status: u16, headers: &[(&str, &str)]) -> Result<(), W::Error> {
        let msg = self.head(status, headers, None, 0);
        self.out.write_all(&msg).await?;
        self.out.flush().await?;
        *self.sent = Sent { status, complete: true };
        Ok(())
    }

    /// Send the head of a response whose body of `len` bytes follows through the returned
    /// writer.
    pub fn start(self, status: u16, headers: &[(&str, &str)], len: u64) -> BodyWriter<'a, W> {
        // Room for the body when it is small enough to go out with the head.
        let extra = if self.head_only { 0 } else { usize::try_from(len).unwrap_or(usize::MAX) };
        let head = self.head(status, headers, Some(len), if extra <= COALESCE { extra } else { 0 });
        self.sent.status = status;
        BodyWriter { out: self.out, head, remaining: len, head_only: self.head_only, sent: self.sent }
    }
}

/// Append `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Streams a response body of a declared length.
pub struct BodyWriter<'a, W> {
    out: &'a mut W,
    /// The head, until it goes out with the first piece of body.
    head: Vec<u8>,
    remaining: u64,
    head_only: bool,
    sent: &'a mut Sent,
}

/// Coalesce the head with body pieces up to this size: one write, one TLS record.
const COALESCE: usize = 16 * 1024;

impl<W: Write> BodyWriter<'_, W> {
    /// Bytes of body still to write.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Write the next piece of the body (a piece beyond the declared length is cut).
    pub async fn write(&mut self, piece: &[u8]) -> Result<(), W::Error> {
        let piece = &piece[..piece.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX))];
        self.remaining -= piece.len() as u64;
        if self.head_only {
            return Ok(());
        }
        if !self.head.is_empty() {
            if piece.len() <= COALESCE {
                self.head.extend_from_slice(piece);
                let msg = core::mem::take(&mut self.head);
                return self.out.write_all(&msg).await;
            }
            let head = core::mem::take(&mut self.head);
            self.out.write_all(&head).await?;
        }
        self.out.write_all(piece).await
    }

    /// End the response; complete only if the whole declared body was written.
    pub async fn finish(mut self) -> Result<(), W::Error> {
        if !self.head.is_empty() {
            let head = core::mem::take(&mut self.head);
            self.out.write_all(&head).await?;
        }
        self.out.flush().await?;
        self.sent.complete = self.remaining == 0 || self.head_only;
        Ok(())
    }
}

/// Run `f` until `at` on `clock`: `None` if the deadline came first
/// ([`morgana::time::deadline`], whose `Err(TimedOut)` reads as `None` here).
pub async fn with_deadline<C: Clock, F: Future>(clock: &C, at: Instant, f: F) -> Option<F::Output> {
    morgana::time::deadline(clock, at, f).await.ok()
}

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnStats {
    /// Requests answered.
    pub requests: u32,
}

/// What one parse attempt found.
enum Parsed {
    NeedMore,
    /// The head is complete, and the head and its body need this many bytes in the buffer
    /// ([`Limits::keep_body`]).
    NeedBody(usize),
    Reject(u16),
    Done {
        head_len: usize,
        body_len: u64,
        close: bool,
        complete: bool,
        status: u16,
    },
}

fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Serve HTTP/1.1 on `flow` with `handler` until the client closes, a limit is hit, or the
/// connection idles out. Malformed requests get their error status and the connection closes;
/// nothing a client sends makes this panic.
pub async fn serve<F, H, C>(
    flow: F,
    handler: &H,
    clock: &C,
    limits: &Limits,
) -> Result<ConnStats, HttpError<F::Error>>
where
    F: Flow,
    H: Handler,
    C: Clock + WallClock,
{
    serve_counting(flow, handler, clock, limits, &StatusCounts::default()).await
}

/// Answers sent, by status class (`1xx` to `5xx`), across every connection that shares it:
/// the counters a person reads to see a server's errors.
#[derive(Debug, Default)]
pub struct StatusCounts([core::cell::Cell<u64>; 5]);

impl StatusCounts {
    fn count(&self, status: u16) {
        if let Some(c) = self.0.get(usize::from(status / 100).wrapping_sub(1)) {
            c.set(c.get() + 1);
        }
    }

    /// Answers of class `class`xx (1 to 5) so far.
    pub fn class(&self, class: u8) -> u64 {
        self.0.get(usize::from(class).wrapping_sub(1)).map_or(0, core::cell::Cell::get)
    }
}

/// [`serve`], counting each answer's status class in `counts`.
pub async fn serve_counting<F, H, C>(
    mut flow: F,
    handler: &H,
    clock: &C,
    limits: &Limits,
    counts: &StatusCounts,
) -> Result<ConnStats, HttpError<F::Error>>
where
    F: Flow,
    H: Handler,
    C: Clock + WallClock,
{
    let head_room = limits.max_head.max(64);
    let mut buf = vec![0u8; head_room];
    let mut filled = 0usize;
    let mut stats = ConnStats::default();
    let mut head_deadline: Option<Instant> = None;
    loop {
        let parsed = if filled == 0 {
            Parsed::NeedMore
        } else {
            parse_and_answer(&buf[..filled], head_room, &mut flow, handler, clock, limits).await?
        };
        let parsed = match parsed {
            Parsed::NeedBody(total) => {
                if buf.len() < total {
                    buf.resize(total, 0);
                    // The body may take longer than a head: at least 64 KiB/s more.
                    let extra = Duration::from_micros(total as u64 * 1_000_000 / (64 * 1024));
                    head_deadline = head_deadline.map(|at| at + extra);
                }
                Parsed::NeedMore
            }
            parsed => parsed,
        };
        match parsed {
            Parsed::NeedBody(_) => unreachable!("turned into NeedMore above"),
            Parsed::NeedMore => {
                let at = head_deadline.unwrap_or_else(|| clock.now() + limits.idle_timeout);
                match with_deadline(clock, at, flow.read(&mut buf[filled..])).await {
                    None if filled == 0 => {
                        log::debug!("http: idle connection closed");
                        let _ = with_deadline(clock, clock.now() + limits.write_timeout, flow.close()).await;
                        return Ok(stats);
                    }
                    None => {
                        reject(&mut flow, 408, clock, limits).await;
                        return Err(HttpError::TimedOut);
                    }
                    Some(Ok(0)) if filled == 0 => {
                        let _ = with_deadline(clock, clock.now() + limits.write_timeout, flow.close()).await;
                        return Ok(stats);
                    }
                    Some(Ok(0)) => return Err(HttpError::UnexpectedEof),
                    Some(Ok(n)) => {
                        if filled == 0 {
                            head_deadline = Some(clock.now() + limits.header_timeout);
                        }
                        filled += n;
                    }
                    // A reset or a TLS failure ends the connection; nothing to answer.
                    Some(Err(e)) => return Err(HttpError::Transport(e)),
                }
            }
            Parsed::Reject(status) => {
                counts.count(status);
                log::debug!("http: rejected a request with {status}");
                reject(&mut flow, status, clock, limits).await;
                return Err(HttpError::Malformed(reason(status)));
            }
            Parsed::Done { head_len, body_len, close, complete, status } => {
                stats.requests += 1;
                counts.count(status);
                head_deadline = None;
                log::debug!("http: {status}");
                if close || !complete {
                    let _ = with_deadline(clock, clock.now() + limits.write_timeout, flow.close()).await;
                    return Ok(stats);
                }
                // Drop the head and the (ignored) body; keep what follows: a pipelined request.
                let mut skip = head_len as u64 + body_len;
                let here = usize::try_from(skip).unwrap_or(usize::MAX).min(filled);
                buf.copy_within(here..filled, 0);
                filled -= here;
                skip -= here as u64;
                while skip > 0 {
                    let want = usize::try_from(skip).unwrap_or(usize::MAX).min(buf.len());
                    let at = clock.now() + limits.header_timeout;
                    match with_deadline(clock, at, flow.read(&mut buf[..want])).await {
                        Some(Ok(0)) | None => return Err(HttpError::UnexpectedEof),
                        Some(Ok(n)) => skip -= n as u64,
                        Some(Err(e)) => return Err(HttpError::Transport(e)),
                    }
                }
                if buf.len() > head_room && filled <= head_room {
                    // A kept body grew the buffer: back to the head's size once what follows
                    // (a pipelined request) fits in it.
                    buf.truncate(head_room);
                    buf.shrink_to_fit();
                }
                if filled > 0 {
                    head_deadline = Some(clock.now() + limits.header_timeout);
                }
            }
        }
    }
}

/// Answer a request the server itself refuses, then close.
async fn reject<F: Flow, C: Clock + WallClock>(flow: &mut F, status: u16, clock: &C, limits: &Limits) {
    let mut sent = Sent::default();
    let res = Responder {
        out: &mut *flow,
        head_only: false,
        close: true,
        version: 1,
        date: clock.now_unix().as_secs(),
        sent: &mut sent,
    };
    let body = format!("{status} {}\n", reason(status));
    let at = clock.now() + limits.write_timeout;
    let _ = with_deadline(
        clock,
        at,
        res.send(status, &[("Content-Type", "text/plain; charset=utf-8")], body.as_bytes()),
    )
    .await;
    let _ = with_deadline(clock, at, flow.shutdown_write()).await;
}

/// Header fields parsed without allocating (the default limit is 64).
const STACK_HEADERS: usize = 64;

/// Parse the head at the start of `data` and, if complete and acceptable, answer it.
async fn parse_and_answer<F, H, C>(
    data: &[u8],
    capacity: usize,
    flow: &mut F,
    handler: &H,
    clock: &C,
    limits: &Limits,
) -> Result<Parsed, HttpError<F::Error>>
where
    F: Flow,
    H: Handler,
    C: Clock + WallClock,
{
    let line = data.iter().position(|&b| b == b'\n');
    if line.unwrap_or(data.len()) > limits.max_request_line {
        // A line already malformed within the limit is a 400, as it would have been had it
        // arrived in pieces: the answer must not depend on how the bytes were cut (found by
        // the http_server fuzz target).
        let within = &data[..limits.max_request_line];
        let malformed = httparse::Request::new(&mut []).parse(within).is_err();
        return Ok(Parsed::Reject(if malformed { 400 } else { 414 }));
    }
    // The usual limit fits on the stack: no allocation per request.
    let mut on_stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut on_heap = Vec::new();
    let headers = if limits.max_headers <= STACK_HEADERS {
        &mut on_stack[..limits.max_headers]
    } else {
        on_heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut on_heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(data, headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if data.len() >= capacity => {
            return Ok(Parsed::Reject(if line.is_none() { 414 } else { 431 }));
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::NeedMore),
        Err(httparse::Error::TooManyHeaders) => return Ok(Parsed::Reject(431)),
        Err(_) => return Ok(Parsed::Reject(400)),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Ok(Parsed::Reject(400));
    };
    let mut request = Request { method, target, version, headers: req.headers, body: &[] };
    let connection = request.header("connection").unwrap_or_default();
    let close =
        if version == 0 { !has_token(connection, "keep-alive") } else { has_token(connection, "close") };
    if request.header("transfer-encoding").is_some() {
        // Request bodies are read only with a Content-Length.
        return Ok(Parsed::Reject(501));
    }
    let mut body_len = 0u64;
    for h in request.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length")) {
        let n = core::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
        match n {
            Some(n) if body_len == 0 || body_len == n => body_len = n,
            _ => return Ok(Parsed::Reject(400)),
        }
    }
    if body_len > limits.max_body {
        return Ok(Parsed::Reject(413));
    }
    if version == 1 && request.header("host").is_none() {
        return Ok(Parsed::Reject(400));
    }
    if limits.keep_body && body_len > 0 {
        // `max_body` bounds it, so it fits a `usize`.
        let total = head_len + body_len as usize;
        if data.len() < total {
            return Ok(Parsed::NeedBody(total));
        }
        request.body = &data[head_len..total];
    }
    let mut sent = Sent::default();
    let res = Responder {
        out: &mut *flow,
        head_only: method == "HEAD",
        close,
        version,
        date: clock.now_unix().as_secs(),
        sent: &mut sent,
    };
    let at = clock.now() + limits.write_timeout;
    match with_deadline(clock, at, handler.handle(&request, res)).await {
        None => return Err(HttpError::TimedOut),
        Some(Err(e)) => return Err(HttpError::Transport(e)),
        Some(Ok(())) => {}
    }
    Ok(Parsed::Done { head_len, body_len, close, complete: sent.complete, status: sent.status })
}
