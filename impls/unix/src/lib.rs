//! # morgana-unix: the hosted Linux target
//!
//! Runs a Morgana app as an ordinary Linux process with real devices, as Mirage's `unix` target
//! does. [`Unix`] implements [`morgana_target::Target`]: an app's one `main.rs` body (through
//! `morgana-app`, which picks this target on a host) asks it for the devices it listed, and
//! [`run`] is the shared run skeleton on the process's arguments.
//!
//! | what | here |
//! |---|---|
//! | event loop | [`ReactorPark`]: the executor parks in `epoll_wait` on every registered fd, with the next timer as the timeout; an idle app burns no CPU |
//! | network | [`SocketStack`] (`--net socket`, default: `TcpStack` + `UdpStack` + `Resolver` on host sockets, no root) or `morgana-tcpip` on a [`TapNet`] (`--net tap:IFNAME`: a TAP interface as a `Net`, root or `CAP_NET_ADMIN`) |
//! | block | [`FileBlock`]: a file or host block device, `pread`/`pwrite`, `fdatasync` |
//! | key-value | [`DirKv`]: a directory, atomic `set`, SHA-256 digests, keys confined to the root |
//! | clocks, entropy, console | [`SystemTime`], [`OsEntropy`] (`getrandom`), [`StdoutConsole`] and `log` on stdout |
//! | limits | [`run`] raises the soft limit on open files to the hard one; [`open_files_limit`] reads it |
//! | arguments | for the devices the app lists: [`NET_ARGS`] and [`morgana_tcpip::ARGS`] for a stack or a NIC, [`BLOCK_ARGS`] for a disk, `--NAME DIR`/`--NAME FILE` for stores and files; [`stack`], [`net`], [`block`], [`kv`] build devices from them |
//!
//! ```no_run
//! use morgana::{Clock, Duration, Platform};
//! use morgana_target::{Device, Target};
//!
//! fn main() {
//!     morgana_unix::run(&[], &[Device::TcpStack], |t| {
//!         let (platform, _stack) = (t.platform(), t.tcp_stack()?);
//!         Ok(async move {
//!             platform.clock().sleep(Duration::from_millis(10)).await;
//!             log::info!("done");
//!             Ok::<(), core::convert::Infallible>(())
//!         })
//!     })
//! }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod block;
mod console;
mod entropy;
mod kv;
mod logger;
mod reactor;
mod run;
mod signal;
mod socket;
#[allow(unsafe_code)]
mod sys;
mod tap;
mod target;
mod time;
use morgana_vnet as vnet;
mod wiring;

pub use block::{FileBlock, FileBlockError, FileBlockOptions};
pub use console::StdoutConsole;
pub use entropy::OsEntropy;
pub use kv::DirKv;
pub use morgana_target::StartError;
pub use reactor::{Async, Reactor, ReactorPark};
pub use run::{Runtime, UnixPlatform, open_files_limit, run, run_with};
pub use socket::{
    SocketConnection, SocketListener, SocketReadHalf, SocketStack, SocketUdp, SocketWriteHalf, stack_error,
};
pub use tap::{TapError, TapNet, TapOffloads, TapRx, TapTx};
pub use target::Unix;
pub use time::{SystemTime, thread_cpu_time};
pub use wiring::{
    BLOCK_ARGS, NET_ARGS, NetChoice, UnixStack, block, choose, file_opt, kv, kv_opt, net, socket_stack, stack,
};
