//! A small HTTP/1.1 client: requests on one connection (keep-alive or pipelined), responses
//! framed by `Content-Length`, chunked encoding or the end of the connection.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;

use morgana::Flow;

use crate::error::HttpError;

/// Largest response head the client accepts.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a response.
const MAX_HEADERS: usize = 100;

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP minor version the server answered with: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD, 204 and 304).
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 client on one flow.
pub struct Client<F> {
    flow: F,
    buf: Vec<u8>,
    filled: usize,
    max_body: usize,
}

impl<F: Flow> Client<F> {
    /// A client on `flow`, accepting bodies up to 64 MiB.
    pub fn new(flow: F) -> Self {
        Self { flow, buf: vec![0; 16 * 1024], filled: 0, max_body: 64 << 20 }
    }

    /// Accept bodies up to `bytes`.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The flow, e.g. to close it.
    pub fn into_inner(self) -> F {
        self.flow
    }

    /// The flow, to write raw bytes to it.
    pub fn flow_mut(&mut self) -> &mut F {
        &mut self.flow
    }

    /// Send a request without a body.
    pub async fn send(
        &mut self,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<(), HttpError<F::Error>> {
        let mut head = String::with_capacity(128);
        let _ = write!(head, "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: morgana-http\r\n");
        for (k, v) in headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        head.push_str("\r\n");
        self.flow.write_all(head.as_bytes()).await.map_err(HttpError::Transport)?;
        self.flow.flush().await.map_err(HttpError::Transport)
    }

    /// Send a request and read its response.
    pub async fn request(
        &mut self,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, HttpError<F::Error>> {
        self.send(method, host, target, headers).await?;
        self.receive(method == "HEAD").await
    }

    /// `GET target` from `host`.
    pub async fn get(&mut self, host: &str, target: &str) -> Result<Response, HttpError<F::Error>> {
        self.request("GET", host, target, &[]).await
    }

    /// Read more bytes into the buffer; `false` at the end of the flow.
    async fn fill(&mut self) -> Result<bool, HttpError<F::Error>> {
        if self.filled == self.buf.len() {
            if self.buf.len() >= MAX_HEAD.max(self.max_body) + MAX_HEAD {
                return Err(HttpError::TooLarge);
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.flow.read(&mut self.buf[self.filled..]).await.map_err(HttpError::Transport)?;
        self.filled += n;
        Ok(n > 0)
    }

    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }

    /// Read the response to a request sent earlier (`head_request`: it was a HEAD).
    pub async fn receive(&mut self, head_request: bool) -> Result<Response, HttpError<F::Error>> {
        loop {
            let (mut response, head_len, framing) = loop {
                if self.filled > 0 {
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut r = httparse::Response::new(&mut headers);
                    match r.parse(&self.buf[..self.filled]) {
                        Ok(httparse::Status::Complete(n)) => {
                            // httparse takes any three digits; RFC 9110 15 allows 100 to 599.
                            if !r.code.is_some_and(|c| (100..600).contains(&c)) {
                                return Err(HttpError::Malformed("bad status code"));
                            }
                            let response = Response {
                                minor_version: r.version.unwrap_or(1),
                                status: r.code.unwrap_or_default(),
                                reason: r.reason.unwrap_or_default().to_string(),
                                headers: r
                                    .headers
                                    .iter()
                                    .map(|h| {
                                        (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())
                                    })
                                    .collect(),
                                body: Vec::new(),
                            };
                            let framing = framing(&response, head_request)?;
                            break (response, n, framing);
                        }
                        Ok(httparse::Status::Partial) if self.filled >= MAX_HEAD => {
                            return Err(HttpError::TooLarge);
                        }
                        Ok(httparse::Status::Partial) => {}
                        Err(_) => return Err(HttpError::Malformed("bad response head")),
                    }
                }
                if !self.fill().await? {
                    return Err(HttpError::UnexpectedEof);
                }
            };
            self.consume(head_len);
            if (100..200).contains(&response.status) {
                continue;
            }
            response.body = match framing {
                Framing::None => Vec::new(),
                Framing::Length(n) => self.read_exact_body(n).await?,
                Framing::Chunked => self.read_chunked().await?,
                Framing::ToEnd => self.read_to_end().await?,
            };
            return Ok(response);
        }
    }

    async fn read_exact_body(&mut self, n: u64) -> Result<Vec<u8>, HttpError<F::Error>> {
        let n = usize::try_from(n).ok().filter(|n| *n <= self.max_body).ok_or(HttpError::TooLarge)?;
        // The length is the server's word: grow as bytes arrive rather than trust it up front.
        let mut body = Vec::with_capacity(n.min(64 * 1024));
        while body.len() < n {
            if self.filled == 0 && !self.fill().await? {
                return Err(HttpError::UnexpectedEof);
            }
            let take = self.filled.min(n - body.len());
            body.extend_from_slice(&self.buf[..take]);
            self.consume(take);
        }
        Ok(body)
    }

    async fn read_to_end(&mut self) -> Result<Vec<u8>, HttpError<F::Error>> {
        let mut body = Vec::new();
        loop {
            body.extend_from_slice(&self.buf[..self.filled]);
            self.filled = 0;
            if body.len() > self.max_body {
                return Err(HttpError::TooLarge);
            }
            if !self.fill().await? {
                return Ok(body);
            }
        }
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, HttpError<F::Error>> {
        let mut body = Vec::new();
        loop {
            let (used, size) = loop {
                match httparse::parse_chunk_size(&self.buf[..self.filled]) {
                    Ok(httparse::Status::Complete(c)) => break c,
                    Ok(httparse::Status::Partial) if self.filled >= MAX_HEAD => {
                        return Err(HttpError::Malformed("chunk size line too long"));
                    }
                    Ok(httparse::Status::Partial) => {
                        if !self.fill().await? {
                            return Err(HttpError::UnexpectedEof);
                        }
                    }
                    Err(_) => return Err(HttpError::Malformed("bad chunk size")),
                }
            };
            self.consume(used);
            if size == 0 {
                // Trailer fields, then the empty line.
                loop {
                    if let Some(i) = self.buf[..self.filled].windows(2).position(|w| w == b"\r\n") {
                        self.consume(i + 2);
                        if i == 0 {
                            return Ok(body);
                        }
                    } else if self.filled >= MAX_HEAD {
                        return Err(HttpError::TooLarge);
                    } else if !self.fill().await? {
                        return Err(HttpError::UnexpectedEof);
                    }
                }
            }
            if size > self.max_body.saturating_sub(body.len()) as u64 {
                return Err(HttpError::TooLarge);
            }
            let chunk = self.read_exact_body(size + 2).await?;
            if !chunk.ends_with(b"\r\n") {
                return Err(HttpError::Malformed("chunk without CRLF"));
            }
            body.extend_from_slice(&chunk[..chunk.len() - 2]);
        }
    }
}

/// How a response body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    ToEnd,
}

fn framing<E>(r: &Response, head_request: bool) -> Result<Framing, HttpError<E>> {
    if head_request || r.status == 204 || r.status == 304 || (100..200).contains(&r.status) {
        return Ok(Framing::None);
    }
    if let Some(te) = r.header("transfer-encoding") {
        return if te.to_ascii_lowercase().trim_end().ends_with("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(HttpError::Malformed("unsupported transfer coding"))
        };
    }
    match r.header("content-length") {
        Some(v) => {
            v.trim().parse().map(Framing::Length).map_err(|_| HttpError::Malformed("bad Content-Length"))
        }
        None => Ok(Framing::ToEnd),
    }
}
