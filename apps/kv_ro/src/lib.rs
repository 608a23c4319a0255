//! `kv_ro`: read known keys from key-value stores and list them (mirage-skeleton
//! device-usage/kv_ro).
//!
//! The `data/` directory is compiled into the unikernel ([`EMBEDDED`], Mirage's crunch). The
//! app checks that it holds the [`KNOWN`] keys with the known contents, lists its tree, and does
//! the same for a second store when one is given (on unix, `--kv DIR`: point it at `data/`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;
use core::fmt;

use morgana::kv::{Key, Kind, KvRo};
use morgana::{KvError, Platform};
use morgana_args::ArgSpec;
use morgana_crunch::Crunch;
use morgana_target::Store;

/// `kv_ro` has no arguments of its own: the second store is the device [`DIR`].
pub const ARGS: &[ArgSpec] = &[];

/// The second store, `--kv DIR`, where the target has directories.
pub const DIR: Store = Store::new(
    "kv",
    "directory to check as well as the compiled-in store (point it at apps/kv_ro/data)",
    "drop --kv to check the compiled-in store",
);

/// The `data/` directory, compiled in.
pub static EMBEDDED: Crunch = include!(concat!(env!("OUT_DIR"), "/data.rs"));

/// Keys every store must hold, with their contents.
pub const KNOWN: &[(&str, &[u8])] = &[
    ("/secret", b"The secret of kv_ro: a unikernel carries its own files.\n"),
    (
        "/docs/readme.txt",
        b"Compiled into the unikernel by morgana-crunch, or served from a directory by DirKv.\n",
    ),
    ("/docs/nested/deep.txt", b"three levels down\n"),
];

/// The checks that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed(pub usize);

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} key check(s) failed", self.0)
    }
}

/// Check the known keys of `kv` (called `name` in the log) and list its tree; failures counted.
pub async fn check<K: KvRo>(name: &str, kv: &K) -> usize {
    let mut failed = 0;
    for (path, want) in KNOWN {
        let key = Key::parse(path).unwrap_or_default();
        match kv.get(&key).await {
            Ok(got) if got == *want => log::info!("{name}: {path}: {} bytes, as expected", got.len()),
            Ok(got) => {
                failed += 1;
                log::error!(
                    "{name}: {path}: {} bytes that differ from the expected {}",
                    got.len(),
                    want.len()
                );
            }
            Err(e) => {
                failed += 1;
                log::error!("{name}: {e}");
            }
        }
    }
    // Depth first, in key order: a stack of entries still to visit.
    let mut todo = vec![(Key::root(), Kind::Dictionary)];
    while let Some((key, kind)) = todo.pop() {
        match kind {
            Kind::Dictionary => match kv.list(&key).await {
                Ok(entries) => todo.extend(entries.into_iter().rev()),
                Err(e) => {
                    failed += 1;
                    log::error!("{name}: list {key}: {e}");
                }
            },
            Kind::Value => match describe(kv, &key).await {
                Ok((size, digest)) => log::info!("{name}: {key} ({size} bytes, sha256 {digest})"),
                Err(e) => {
                    failed += 1;
                    log::error!("{name}: {e}");
                }
            },
        }
    }
    failed
}

async fn describe<K: KvRo>(kv: &K, key: &Key) -> Result<(u64, Hex8), KvError> {
    Ok((kv.size(key).await?, Hex8(kv.digest(key).await?)))
}

/// The first 8 bytes of a digest, in hex.
struct Hex8([u8; 32]);

impl fmt::Display for Hex8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0[..8].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Check the compiled-in store and, if given, a second one.
pub async fn start<P: Platform, E: KvRo, D: KvRo>(
    platform: P,
    embedded: E,
    dir: Option<D>,
) -> Result<(), Failed> {
    let _ = platform;
    let mut failed = check("compiled-in", &embedded).await;
    match dir {
        Some(kv) => failed += check("directory", &kv).await,
        None => log::info!("no second store given (--kv DIR): only the compiled-in one was checked"),
    }
    if failed == 0 { Ok(()) } else { Err(Failed(failed)) }
}
