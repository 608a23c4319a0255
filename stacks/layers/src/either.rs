//! One of two key-value stores, picked at run time, as one type.
//!
//! An app is generic over one `K: KvRo`; to serve either a directory (`--kv DIR`) or the site
//! compiled into it, its `main.rs` hands it an [`Either`] of the two, and every call is a
//! `match`: no `dyn` (the traits' `async fn`s are not object-safe anyway), no allocation.
//!
//! ```
//! use morgana::{Key, KvRo, KvRw};
//! use morgana_crunch::{Crunch, File};
//! use morgana_layers::Either;
//! use morgana_mem::{MemKv, ManualClock};
//! use morgana::Duration;
//!
//! static SITE: Crunch = Crunch::new(&[File::new("/index.html", b"<h1>built in</h1>", 0)]);
//!
//! /// The store the app reads: the compiled-in site, or a writable one when asked for.
//! fn store(writable: bool) -> Either<Crunch, MemKv<ManualClock>> {
//!     if writable { Either::Right(MemKv::new(ManualClock::new(Duration::ZERO))) } else { Either::Left(SITE) }
//! }
//!
//! # futures_lite(async {
//! let key = Key::parse("/index.html").unwrap();
//! assert_eq!(store(false).get(&key).await.unwrap(), b"<h1>built in</h1>");
//! # });
//! # fn futures_lite<F: core::future::Future>(f: F) -> F::Output {
//! #     let time = morgana_rt::VirtualTime::new();
//! #     morgana_rt::Executor::new(time.clone()).block_on(&mut time.park(), f).unwrap()
//! # }
//! ```
//!
//! [`morgana::KvRw`] is implemented only when both sides are writable: a read-only side makes
//! the whole `Either` read-only, at compile time. The type is the signature crate's
//! [`morgana::Either`], re-exported here, which also implements the block, flow and transport
//! traits.

pub use morgana::Either;

#[cfg(test)]
mod tests {
    use super::*;
    use core::future::Future;
    use morgana::kv::{Key, KvError, KvRo, KvRw};
    use morgana_crunch::{Crunch, File};
    use morgana_mem::MemKv;
    use morgana_rt::{Executor, Handle, VirtualTime};
    use morgana_testkit::kv::{check_ro, check_rw};

    type Mem = MemKv<Handle<VirtualTime>>;

    fn run<F: Future>(f: impl FnOnce(Handle<VirtualTime>) -> F) -> F::Output {
        let time = VirtualTime::new();
        let exec = Executor::new(time.clone());
        exec.block_on(&mut time.park(), f(exec.handle())).expect("no stall")
    }

    const CONTENTS: &[(&str, &[u8])] =
        &[("/a/b/c/deep", b"deep value"), ("/css/site.css", b"body{}"), ("/index.html", b"<h1>hi</h1>")];
    static FILES: [File; 3] = [
        File::new("/a/b/c/deep", b"deep value", 1),
        File::new("/css/site.css", b"body{}", 2),
        File::new("/index.html", b"<h1>hi</h1>", 3),
    ];

    #[test]
    fn either_side_passes_the_kv_suite() {
        run(|h| async move {
            let left: Either<Mem, Mem> = Either::Left(MemKv::new(h.clone()));
            check_rw(&left).await;
            let right: Either<Mem, Mem> = Either::Right(MemKv::new(h));
            check_rw(&right).await;
        });
    }

    #[test]
    fn a_read_only_side_passes_the_read_only_suite() {
        run(|h| async move {
            let compiled: Either<Crunch, Mem> = Either::Left(Crunch::new(&FILES));
            check_ro(&compiled, CONTENTS).await;
            let mem = MemKv::new(h);
            for (path, value) in CONTENTS {
                mem.set(&path.parse().unwrap(), value).await.unwrap();
            }
            let chosen: Either<Crunch, Mem> = Either::Right(mem);
            check_ro(&chosen, CONTENTS).await;
        });
    }

    #[test]
    fn calls_reach_the_side_that_was_picked() {
        run(|h| async move {
            let key: Key = "/index.html".parse().unwrap();
            let (a, b) = (MemKv::new(h.clone()), MemKv::new(h));
            b.set(&key, b"only in b").await.unwrap();
            let picked: Either<&Mem, &Mem> = Either::Right(&b);
            picked.set(&"/new".parse().unwrap(), b"written").await.unwrap();
            assert_eq!(picked.get(&key).await.unwrap(), b"only in b");
            assert_eq!(b.get(&"/new".parse().unwrap()).await.unwrap(), b"written");
            assert_eq!(a.exists(&"/new".parse().unwrap()).await, Ok(None), "the other side is untouched");
            let other: Either<&Mem, &Mem> = Either::Left(&a);
            assert_eq!(other.get(&key).await, Err(KvError::NotFound(key)));
        });
    }
}
