//! The HTTP side: methods on keys of the store.

use alloc::borrow::Cow;
use alloc::string::String;
use core::fmt::Write as _;

use morgana::embedded_io_async::Write;
use morgana::{Key, Kind, KvError, KvRw};
use morgana_http::{Handler, Request, Responder, StaticFiles, percent_decode};

/// The service: `GET`/`HEAD` through [`StaticFiles`] (ETag, ranges), directory listings as
/// JSON, `PUT` and `DELETE` on the store, writes behind the bearer token if there is one.
pub struct Notes<K> {
    files: StaticFiles<K>,
    token: Option<String>,
}

impl<K: KvRw> Notes<K> {
    /// Serve `kv`; `token`: the bearer token writes need.
    pub fn new(kv: K, token: Option<String>) -> Self {
        Self { files: StaticFiles::new(kv), token }
    }

    /// The store.
    pub fn kv(&self) -> &K {
        self.files.kv()
    }

    /// Whether `req` carries the token (always, without one). Compared in time that does not
    /// depend on where the first difference is.
    fn authorized(&self, req: &Request<'_>) -> bool {
        let Some(token) = &self.token else { return true };
        let given = req.header("authorization").and_then(|v| v.strip_prefix(b"Bearer ")).unwrap_or_default();
        given.len() == token.len()
            && given.iter().zip(token.as_bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }
}

/// The key a request path names (a directory's, for a path ending in `/`): percent-decoded;
/// `None` if it is not a valid key.
fn key_of(path: &str) -> Option<Key> {
    let decoded: Cow<'_, str> = percent_decode(path)?;
    let trimmed = decoded.strip_suffix('/').filter(|t| !t.is_empty()).unwrap_or(&decoded);
    Key::parse(trimmed).ok()
}

/// The status for a store error, and a line of text for the body.
fn status_of(e: &KvError) -> u16 {
    match e {
        KvError::NotFound(_) => 404,
        KvError::NoSpace => 507,
        KvError::DictionaryExpected(_) | KvError::ValueExpected(_) | KvError::AlreadyPresent(_) => 409,
        KvError::ReadOnly => 503,
        _ => 500,
    }
}

/// `s` as a JSON string, quotes included.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A directory's entries as a JSON array of `{"name", "kind"}`.
fn listing(entries: &[(Key, Kind)]) -> String {
    let mut out = String::from("[");
    for (i, (key, kind)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&mut out, key.basename());
        let kind = match kind {
            Kind::Value => "value",
            Kind::Dictionary => "dictionary",
        };
        let _ = write!(out, ",\"kind\":\"{kind}\"}}");
    }
    out.push_str("]\n");
    out
}

const TEXT: (&str, &str) = ("Content-Type", "text/plain; charset=utf-8");

impl<K: KvRw> Handler for Notes<K> {
    async fn handle<W: Write>(&self, req: &Request<'_>, res: Responder<'_, W>) -> Result<(), W::Error> {
        let path = req.path();
        let Some(key) = key_of(path) else {
            return res.send(400, &[TEXT], b"not a valid key\n").await;
        };
        let writes = matches!(req.method, "PUT" | "DELETE");
        if writes && !self.authorized(req) {
            return res
                .send(
                    401,
                    &[TEXT, ("WWW-Authenticate", "Bearer")],
                    b"this needs Authorization: Bearer TOKEN\n",
                )
                .await;
        }
        let kv = self.kv();
        match req.method {
            "GET" | "HEAD" if path.ends_with('/') => match kv.list(&key).await {
                Ok(mut entries) => {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    let body = listing(&entries);
                    res.send(200, &[("Content-Type", "application/json")], body.as_bytes()).await
                }
                Err(e) => res.send(status_of(&e), &[TEXT], error_line(&e).as_bytes()).await,
            },
            "GET" | "HEAD" => self.files.handle(req, res).await,
            "PUT" => {
                let existed = matches!(kv.exists(&key).await, Ok(Some(Kind::Value)));
                match kv.set(&key, req.body).await {
                    Ok(()) if existed => res.send_empty(204, &[]).await,
                    Ok(()) => res.send(201, &[("Location", path)], b"").await,
                    Err(e) => {
                        log::warn!("PUT {path}: {e}");
                        res.send(status_of(&e), &[TEXT], error_line(&e).as_bytes()).await
                    }
                }
            }
            "DELETE" => match kv.exists(&key).await {
                Ok(None) => res.send(404, &[TEXT], b"not found\n").await,
                Ok(Some(_)) => match kv.remove(&key).await {
                    Ok(()) => res.send_empty(204, &[]).await,
                    Err(e) => res.send(status_of(&e), &[TEXT], error_line(&e).as_bytes()).await,
                },
                Err(e) => res.send(status_of(&e), &[TEXT], error_line(&e).as_bytes()).await,
            },
            _ => res.send(405, &[TEXT, ("Allow", "GET, HEAD, PUT, DELETE")], b"method not allowed\n").await,
        }
    }
}

/// The error as a line of the response body.
fn error_line(e: &KvError) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{e}");
    s
}
