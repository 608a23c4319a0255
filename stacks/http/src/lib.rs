//! # morgana-http: HTTP/1.1 over any flow
//!
//! [`serve`] answers requests on one [`morgana::Flow`] (a TCP connection, a TLS session, an
//! in-memory pipe) with a [`Handler`]: keep-alive and pipelined requests, `GET` and `HEAD`,
//! limits on head size, header count and request-line length (431, 414), request bodies skipped
//! up to a limit (413), and idle, header-read and write timeouts on the platform's
//! [`Clock`](morgana::Clock). Whatever a client sends, the server answers with an error status or
//! closes the connection; it never panics. Parsing is `httparse`'s.
//!
//! [`StaticFiles`] serves any [`KvRo`](morgana::KvRo) as a web site (ETag from the store's
//! digest, `If-None-Match` → 304, `Range`, `Content-Type` by extension, `index.html` for a
//! directory); [`RedirectToHttps`] sends plain HTTP to HTTPS. [`Client`] is a small client for
//! tests and tools. `no_std` + `alloc`.
//!
//! ```
//! use morgana::{Key, KvRw};
//! use morgana_http::{Client, Limits, StaticFiles, serve};
//!
//! let time = morgana_rt::VirtualTime::new();
//! let exec = morgana_rt::Executor::new(time.clone());
//! let clock = exec.handle();
//! let site = morgana_mem::MemKv::new(clock.clone());
//! let (server_end, client_end) = morgana_mem::pipe(64 * 1024);
//! let response = exec.block_on(&mut time.park(), async {
//!     site.set(&Key::parse("/index.html").unwrap(), b"<h1>hi</h1>").await.unwrap();
//!     let files = StaticFiles::new(&site);
//!     let limits = Limits::default();
//!     let server = serve(server_end, &files, &clock, &limits);
//!     let client = async {
//!         let mut c = Client::new(client_end);
//!         let r = c.get("localhost", "/").await.unwrap();
//!         drop(c); // closes the connection: the server returns
//!         r
//!     };
//!     futures::future::join(server, client).await.1
//! });
//! let response = response.unwrap();
//! assert_eq!(response.status, 200);
//! assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"));
//! assert_eq!(response.body, b"<h1>hi</h1>");
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// A unikernel is single-threaded: futures need no `Send` bound.
#![allow(async_fn_in_trait)]

extern crate alloc;

mod client;
mod date;
mod error;
mod files;
mod server;

pub use client::{Client, Response};
pub use date::HttpDate;
pub use error::HttpError;
pub use files::{
    Range, RedirectToHttps, StaticFiles, content_type, etag, none_match, parse_range, percent_decode,
};
pub use server::{
    BodyWriter, ConnStats, Handler, Limits, Request, Responder, StatusCounts, reason, serve, serve_counting,
    with_deadline,
};
