//! # Morgana device signatures
//!
//! A Morgana unikernel is an `async fn` generic over the traits in this crate; a *target* supplies
//! the concrete devices and the compiler monomorphises the whole stack for it. The same app runs
//! as a Linux process (`morgana-unix`), as a bare-metal image under a hypervisor
//! (`morgana-virtio`) and inside a test on in-memory devices (`morgana-mem`).
//!
//! | device | trait | what it is |
//! |---|---|---|
//! | network interface | [`Net`] | Ethernet frames through borrowed Rx/Tx tokens, polled with a `Context` |
//! | block device | [`Block`] | fixed-size sectors, read/write/flush |
//! | clocks | [`Clock`], [`WallClock`] | monotonic time with a waker primitive; POSIX time |
//! | key-value store | [`KvRo`], [`KvRw`] | Mirage_kv semantics over validated [`Key`] paths |
//! | transport | [`TcpStack`], [`UdpStack`], [`Resolver`], [`Flow`] | sockets, whoever implements them |
//! | entropy | [`rand_core::RngCore`] + [`rand_core::CryptoRng`] | re-exported as [`rand_core`] |
//! | the bundle | [`Platform`] | clock, RNG and task spawning, handed to every app |
//!
//! Two helpers every server writes otherwise: [`time::timeout`]/[`time::deadline`] bound a future by a
//! [`Clock`], and [`TaskGroup`] spawns tasks, counts them while they run and waits for room
//! under a limit. [`Either`] is one of two devices chosen at run time, as one type that
//! implements every trait here both sides implement.
//!
//! `use morgana::prelude::*;` brings every trait an app calls methods of into scope.
//!
//! The crate is `no_std` (with `alloc`), has no unsafe code and no target code. Runtime
//! arguments are not a device signature: they live in `morgana-args`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// A unikernel is single-threaded: futures need no `Send` bound, so `async fn` in traits is right.
#![allow(async_fn_in_trait)]

extern crate alloc;

pub mod block;
pub mod either;
pub mod flow;
pub mod kv;
pub mod net;
pub mod platform;
pub mod prelude;
pub mod stack;
pub mod sync;
pub mod task;
pub mod time;

pub use block::{Block, BlockError, BlockInfo};
pub use either::Either;
pub use embedded_io;
pub use embedded_io_async;
pub use flow::{Flow, FlowWrite};
pub use kv::{Key, KeyError, Kind, KvError, KvRo, KvRw};
pub use net::{Capabilities, LinkState, Net, NetStats, RxToken, TxToken};
pub use platform::{HeapUsage, Platform, Spawn};
pub use rand_core;
pub use stack::{Resolver, StackError, TcpListener, TcpStack, UdpSocket, UdpStack};
pub use task::{Place, TaskGroup};
pub use time::{Clock, Duration, Instant, TimedOut, WallClock};
