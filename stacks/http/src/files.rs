//! Handlers: static files from a key-value store, and a redirect to HTTPS.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use embedded_io_async::Write;
use morgana::{Key, Kind, KvError, KvRo};

use crate::date::HttpDate;
use crate::server::{Handler, Request, Responder};

/// Serves the values of a [`KvRo`] as files: `GET` and `HEAD`, `index.html` for a directory,
/// `Content-Type` by extension, a strong `ETag` from the store's digest (`If-None-Match` → 304),
/// `Last-Modified`, and single byte ranges (`Range` → 206 or 416).
pub struct StaticFiles<K> {
    kv: K,
    chunk: usize,
}

impl<K: KvRo> StaticFiles<K> {
    /// Serve `kv`.
    pub fn new(kv: K) -> Self {
        Self { kv, chunk: 16 * 1024 }
    }

    /// The store served.
    pub fn kv(&self) -> &K {
        &self.kv
    }
}

/// The media type for a file name, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Decode `%XX` escapes; `None` for a bad escape or a NUL. Borrows when there is nothing to decode.
pub fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') {
        return (!s.contains('\0')).then_some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(core::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// A byte range resolved against a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// No (usable) range: the whole value.
    Full,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// A range that selects nothing of a value this long: 416.
    Unsatisfiable,
}

/// Interpret a `Range` header for a value of `len` bytes. Only one range is honoured; several,
/// or a syntax this does not know, serve the whole value (as RFC 9110 allows).
pub fn parse_range(header: &str, len: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Range::Full };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Range::Full };
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), b.is_empty()) {
        (true, false) => match b.parse::<u64>() {
            Ok(0) => Range::Unsatisfiable,
            Ok(n) if len == 0 => {
                let _ = n;
                Range::Unsatisfiable
            }
            Ok(n) => Range::Part { start: len.saturating_sub(n), end: len - 1 },
            Err(_) => Range::Full,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else { return Range::Full };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match b.parse::<u64>() {
                    Ok(e) if e >= start => e,
                    _ => return Range::Full,
                }
            };
            if start >= len { Range::Unsatisfiable } else { Range::Part { start, end: end.min(len - 1) } }
        }
        (true, true) => Range::Full,
    }
}

/// The strong entity tag for a digest: the first 16 bytes in hex, quoted.
pub fn etag(digest: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(34);
    s.push('"');
    for b in &digest[..16] {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s.push('"');
    s
}

/// Whether an `If-None-Match` value matches `tag` (weak comparison, as RFC 9110 says for it).
pub fn none_match(header: &str, tag: &str) -> bool {
    let header = header.trim();
    header == "*" || header.split(',').any(|t| t.trim().trim_start_matches("W/") == tag)
}

/// What a path names in the store.
enum Target {
    File(Key),
    /// A directory asked for without its trailing slash: redirect there.
    Slash,
    Missing,
}

impl<K: KvRo> StaticFiles<K> {
    async fn resolve(&self, path: &str) -> Result<Target, KvError> {
        let dir = path.ends_with('/');
        let Ok(key) = Key::parse(path.trim_end_matches('/')) else { return Ok(Target::Missing) };
        match self.kv.exists(&key).await? {
            Some(Kind::Value) if !dir => Ok(Target::File(key)),
            Some(Kind::Dictionary) if !dir && !key.is_root() => Ok(Target::Slash),
            Some(Kind::Dictionary) => match key.join("index.html") {
                Ok(index) if self.kv.exists(&index).await? == Some(Kind::Value) => Ok(Target::File(index)),
                _ => Ok(Target::Missing),
            },
            _ => Ok(Target::Missing),
        }
    }

    async fn send_file<W: Write>(
        &self,
        req: &Request<'_>,
        res: Responder<'_, W>,
        key: &Key,
    ) -> Result<(), W::Error> {
        let meta = async {
            let size = self.kv.size(key).await?;
            let digest = self.kv.digest(key).await?;
            let modified = self.kv.last_modified(key).await?;
            Ok::<_, KvError>((size, digest, modified))
        };
        let (size, digest, modified) = match meta.await {
            Ok(m) => m,
            Err(e) => return internal_error(res, &e).await,
        };
        let tag = etag(&digest);
        let modified = HttpDate(modified.as_secs()).to_bytes();
        let modified = core::str::from_utf8(&modified).unwrap_or_default();
        let ctype = content_type(key.basename());
        if let Some(inm) = req.header_str("if-none-match")
            && none_match(inm, &tag)
        {
            return res.send_empty(304, &[("ETag", &tag), ("Last-Modified", modified)]).await;
        }
        let if_range_ok = req.header_str("if-range").is_none_or(|v| v == tag);
        let range = match req.header_str("range") {
            Some(r) if if_range_ok => parse_range(r, size),
            _ => Range::Full,
        };
        let (status, start, len, content_range) = match range {
            Range::Full => (200, 0, size, None),
            Range::Part { start, end } => {
                (206, start, end - start + 1, Some(format!("bytes {start}-{end}/{size}")))
            }
            Range::Unsatisfiable => {
                let cr = format!("bytes */{size}");
                return res
                    .send(416, &[("Content-Range", &cr), ("Content-Type", "text/plain")], b"416\n")
                    .await;
            }
        };
        let all = [
            ("Content-Type", ctype),
            ("ETag", &tag),
            ("Last-Modified", modified),
            ("Accept-Ranges", "bytes"),
            ("Content-Range", content_range.as_deref().unwrap_or_default()),
        ];
        let headers = if content_range.is_some() { &all[..] } else { &all[..4] };
        let head_only = res.head_only();
        let mut body = res.start(status, headers, len);
        if !head_only {
            let mut offset = start;
            while body.remaining() > 0 {
                let want = usize::try_from(body.remaining()).unwrap_or(usize::MAX).min(self.chunk);
                let piece = match self.kv.get_partial(key, offset, want).await {
                    Ok(p) if !p.is_empty() => p,
                    // The value shrank or failed under us: stop short; the server closes.
                    _ => break,
                };
                body.write(&piece).await?;
                offset += piece.len() as u64;
            }
        }
        body.finish().await
    }
}

async fn internal_error<W: Write>(res: Responder<'_, W>, e: &KvError) -> Result<(), W::Error> {
    log::warn!("http: store error: {e}");
    res.send(500, &[("Content-Type", "text/plain; charset=utf-8")], b"500 Internal Server Error\n").await
}

const NOT_FOUND: &[u8] = b"<!DOCTYPE html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n";

impl<K: KvRo> Handler for StaticFiles<K> {
    async fn handle<W: Write>(&self, req: &Request<'_>, res: Responder<'_, W>) -> Result<(), W::Error> {
        if req.method != "GET" && req.method != "HEAD" {
            let body = b"405 Method Not Allowed\n";
            return res
                .send(405, &[("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")], body)
                .await;
        }
        let raw = req.path();
        let Some(path) = percent_decode(raw).filter(|p| p.starts_with('/')) else {
            return res
                .send(400, &[("Content-Type", "text/plain; charset=utf-8")], b"400 Bad Request\n")
                .await;
        };
        match self.resolve(&path).await {
            Ok(Target::File(key)) => self.send_file(req, res, &key).await,
            Ok(Target::Slash) => {
                let location = format!("{raw}/");
                res.send(301, &[("Location", &location), ("Content-Type", "text/plain")], b"301\n").await
            }
            Ok(Target::Missing) => {
                res.send(404, &[("Content-Type", "text/html; charset=utf-8")], NOT_FOUND).await
            }
            Err(e) => internal_error(res, &e).await,
        }
    }
}

/// Redirects every request to the same path over HTTPS on `https_port` (308 keeps the method).
pub struct RedirectToHttps {
    https_port: u16,
}

impl RedirectToHttps {
    /// Redirect to HTTPS on `https_port` (443 leaves the port out of the URL).
    pub fn new(https_port: u16) -> Self {
        Self { https_port }
    }
}

/// The host part of a `Host` header if it is a plausible host name or address.
fn host_only(host: &str) -> Option<&str> {
    let host = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    ok.then_some(host)
}

impl Handler for RedirectToHttps {
    async fn handle<W: Write>(&self, req: &Request<'_>, res: Responder<'_, W>) -> Result<(), W::Error> {
        let Some(host) = req.header_str("host").and_then(host_only) else {
            return res
                .send(400, &[("Content-Type", "text/plain; charset=utf-8")], b"400 Bad Request\n")
                .await;
        };
        let target = if req.target.starts_with('/') { req.target } else { "/" };
        let location = match self.https_port {
            443 => format!("https://{host}{target}"),
            port => format!("https://{host}:{port}{target}"),
        };
        res.send(308, &[("Location", &location), ("Content-Type", "text/plain; charset=utf-8")], b"308\n")
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Range::Part { start: 0, end: 9 });
        assert_eq!(parse_range("bytes=90-", 100), Range::Part { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-10", 100), Range::Part { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-1000", 100), Range::Part { start: 0, end: 99 });
        assert_eq!(parse_range("bytes=50-1000", 100), Range::Part { start: 50, end: 99 });
        assert_eq!(parse_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Range::Full);
        assert_eq!(parse_range("bytes=9-1", 100), Range::Full);
        assert_eq!(parse_range("items=0-1", 100), Range::Full);
        assert_eq!(parse_range("bytes=x-1", 100), Range::Full);
        assert_eq!(parse_range("bytes=0-", 0), Range::Unsatisfiable);
    }

    #[test]
    fn types_escapes_tags_hosts() {
        assert_eq!(content_type("index.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("logo.png"), "image/png");
        assert_eq!(content_type("README"), "application/octet-stream");
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/a%2"), None);
        assert_eq!(percent_decode("/a%00"), None);
        assert!(matches!(percent_decode("/plain/path"), Some(Cow::Borrowed("/plain/path"))));
        assert_eq!(percent_decode("/a\0b"), None);
        let tag = etag(&[0xab; 32]);
        assert_eq!(tag, "\"abababababababababababababababab\"");
        assert!(none_match(&alloc::format!("W/{tag}, \"x\""), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"x\"", &tag));
        assert_eq!(host_only("example.com:8080"), Some("example.com"));
        assert_eq!(host_only("[::1]:80"), Some("[::1]"));
        assert_eq!(host_only("evil.com/x"), None);
    }
}
