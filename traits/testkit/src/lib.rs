//! # Conformance suites for Morgana devices
//!
//! Each suite is an `async fn` generic over one trait that panics, with a message naming the
//! broken rule, when the implementation under test disagrees with the contract. They are
//! `no_std`, so the same suite runs in `cargo test` on host devices and inside a bare-metal test
//! image booted in QEMU. Every implementation in Morgana runs its suite in its own tests.
//!
//! - [`kv::check_rw`] / [`kv::check_ro`]: Mirage_kv semantics, every operation and error.
//! - [`block::check_rw`] / [`block::check_read_only`]: bounds, alignment, mode, data survives.
//! - [`net::check_pair`]: frames delivered intact both ways, MTU enforced, counters.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod block;
pub mod kv;
pub mod net;

/// Hex of `bytes`, for messages and digests.
pub fn hex(bytes: &[u8]) -> alloc::string::String {
    use core::fmt::Write;
    let mut s = alloc::string::String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
