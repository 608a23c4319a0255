//! `Key` parsing (`morgana::kv::Key`): any text as a key path.
//!
//! Checked against the documented rules: a path is accepted exactly when each of its segments
//! (after an optional leading `/`) is non-empty, not `.` or `..`, and has no NUL; an accepted
//! key prints as `/`-joined segments that parse back to the same key; its parent is a prefix of
//! it, and joining its basename onto its parent gives it back.

use morgana::kv::{Key, KeyError};

fn segment_ok(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('\0') && !s.contains('/')
}

/// Parse one text as a key and as a segment.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let body = text.strip_prefix('/').unwrap_or(text);
    let valid = body.is_empty() || body.split('/').all(segment_ok);
    match Key::parse(text) {
        Ok(k) => {
            assert!(valid, "{text:?} was accepted as {k}");
            let shown = k.to_string();
            assert!(shown.starts_with('/'));
            assert_eq!(Key::parse(&shown).as_ref(), Ok(&k), "{shown} does not parse back");
            assert_eq!(shown, if body.is_empty() { "/".to_string() } else { format!("/{body}") });
            assert!(k.segments().all(segment_ok));
            assert!(k.parent().is_prefix_of(&k) && k.is_prefix_of(&k) && Key::root().is_prefix_of(&k));
            if k.is_root() {
                assert_eq!(k.basename(), "");
            } else {
                assert_eq!(k.parent().join(k.basename()).as_ref(), Ok(&k));
                assert_eq!(k.parent().segments().len() + 1, k.segments().len());
            }
        }
        Err(e) => {
            assert!(!valid, "{text:?} was refused: {e}");
            assert!(!e.to_string().is_empty());
        }
    }
    match Key::root().join(text) {
        Ok(k) => assert!(segment_ok(text) && k.basename() == text),
        Err(e) => {
            assert!(!segment_ok(text), "segment {text:?} was refused: {e}");
            assert!(text.contains('/') || e != KeyError::Slash);
        }
    }
}

/// Keys the stores' own tests use, and the edge cases their rules name.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    [
        "/",
        "",
        "/index.html",
        "a/b/c",
        "/a//b",
        "/a/./b",
        "/a/../b",
        "/a/b/",
        "/x\0y",
        "/é/ü",
        "/.hidden",
        "...",
    ]
    .iter()
    .enumerate()
    .map(|(i, k)| (format!("key-{i}"), k.as_bytes().to_vec()))
    .collect()
}
