//! # morgana-mem: in-memory devices for tests and simulation
//!
//! Every device here implements a `morgana` trait without touching the host, so an app can be
//! tested with the same code it runs in production, on a virtual clock, with faults injected on
//! purpose and reproducible from a seed:
//!
//! - [`Switch`] and [`pair`]: Ethernet ports joined by a learning switch.
//! - [`FaultyNet`]: seeded loss, duplication, reordering, corruption and delay around any `Net`.
//! - [`MemBlock`] and [`FaultyBlock`]: a RAM disk, and a disk that fails as real ones do around
//!   any `Block` (pending writes lost or torn in any order at a power cut, flipped and
//!   misdirected reads, misdirected writes, rot).
//! - [`MemKv`]: a key-value store with Mirage_kv semantics.
//! - [`ManualClock`]: a clock a test moves by hand; the executor's virtual time is
//!   [`morgana_rt::VirtualTime`].
//! - [`pipe`] and [`MemTcpNet`]: a duplex byte pipe (a `Flow`), and a `TcpStack` over pipes.
//! - [`Pcap`]: a capture in the pcap format, in memory (a `Net`'s own: `morgana_layers::PcapWriter`).
//! - [`SeededEntropy`], [`MemConsole`].
//! - `sim` (feature `std`): run an app on virtual time and capture what it logs.
//!
//! `no_std` + `alloc` without the `std` feature.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod block;
mod clock;
mod console;
mod fault_block;
mod fault_net;
mod kv;
mod net;
mod pcap;
mod pipe;
pub mod port;
mod rng;
#[cfg(feature = "std")]
pub mod sim;
mod tcp;

pub use block::MemBlock;
pub use clock::ManualClock;
pub use console::MemConsole;
pub use fault_block::{BlockFaults, FaultyBlock, PowerCut};
pub use fault_net::{FaultConfig, FaultStats, FaultyNet};
pub use kv::MemKv;
pub use net::{MemNet, Switch, pair};
pub use pcap::Pcap;
pub use pipe::{PipeEnd, PipeReader, PipeWriter, pipe, pipe_chunked};
pub use rng::{SeededEntropy, SeededRng};
pub use tcp::{MemListener, MemTcp, MemTcpNet};
