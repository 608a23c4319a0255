//! # morgana-tcpip: a TCP/IP stack over any `Net`
//!
//! Mirage's `tcpip` is a functor over a network device; this is Morgana's: [smoltcp] over any
//! [`morgana::Net`] and [`morgana::Clock`], implementing [`morgana::TcpStack`],
//! [`morgana::UdpStack`] and [`morgana::Resolver`]. An app written against those traits runs
//! unchanged on host sockets, on a TAP device, on virtio, or on the in-memory switch of a test.
//!
//! IPv4 (static or DHCP with lease renewal) and IPv6 (link-local from the MAC, plus a static
//! address), ARP and NDP, echo replies to ping, TCP with listen backlogs, half-close, resets,
//! keep-alive and configurable buffers, UDP, and DNS.
//!
//! ## Shape
//!
//! [`new`] returns a [`Stack`] (a cheap handle: connect, listen, bind, resolve) and a
//! [`Runner`], the one task that owns the device. The runner polls the interface when the
//! device wakes it (a frame arrived, room to send) or when smoltcp's next timer is due, and
//! sleeps otherwise: no busy loop, no tick. Socket operations only touch socket buffers and wake
//! the runner. Dropping a connection closes it; the runner finishes the close.
//!
//! ```
//! use morgana::{Platform, Spawn, TcpStack};
//! use morgana_tcpip::Config;
//!
//! async fn serve<P: Platform, N: morgana::Net + 'static>(p: P, net: N) {
//!     let config = Config::default().ipv4_static([10, 0, 0, 2].into(), 24, None);
//!     let (stack, runner) = morgana_tcpip::new(net, p.clock(), config);
//!     p.spawn(async move { runner.run().await });
//!     let _listener = stack.listen(7, 4).await;
//! }
//! ```
//!
//! [`spawn`] does those two steps (and seeds the stack from the platform's RNG). A target that
//! can offer host sockets too (the hosted one, by `--net`) hands an app an [`either::Either`]
//! of the two, Mirage's `generic_stackv4v6`. [`ARGS`] are the arguments the stack reads
//! ([`Config::from_args`]).
//!
//! ## On a hostile network
//!
//! TCP runs on our fork of smoltcp (`stacks/smoltcp`, its changes in `MORGANA.md`): CUBIC by
//! default ([`Congestion`]), an RFC 6928 initial window, SACK-driven (RFC 6675's pipe) and
//! NewReno loss recovery, a reordering window before a hole is taken as lost, loss probes, three
//! SACK blocks on every segment while data is out of order, a 200 ms minimum RTO ([`Config::tcp_min_rto`]), buffers that grow with the path
//! ([`Config::tcp_buffer_max`]), RFC 5961 challenge ACKs, and SYN cookies. Each listener keeps
//! a port open whatever arrives: see [`Listener`] for SYN floods and memory limits.
//!
//! Everything a peer can make the stack hold is bounded:
//!
//! | what | bound |
//! |---|---|
//! | half-open connections | the listener's pool ([`Config::max_backlog`], 16), each for at most 15 s; beyond it SYNs are answered by cookie (no state), and when no socket is free they are dropped, not reset |
//! | connections | as many as the heap gives buffers to while [`Config::memory_reserve`] stays free; 16 KiB each way to start, at most [`Config::tcp_buffer_max`] each way |
//! | out-of-order data | inside the receive buffer, in at most 32 ranges (smoltcp's assembler, `assembler-max-segment-count-32`) |
//! | IP fragments | none kept: reassembly is not built in, fragments are dropped |
//! | neighbours | 64 cache entries (`iface-neighbor-cache-count-64`: a server talks to every client on its own link directly; with 8, an answer to an ARP request was pushed out by the next before the waiting socket could use it once more than 8 peers were busy, and connections sat silent for seconds); those confirmed by traffic are never evicted by unsolicited ARP; one request per address per second, 64 addresses tracked. Beyond 64 busy peers on the link the cache turns over, each new one costing an ARP round trip or more |
//! | SACK information | 8 blocks per connection |
//! | DNS | [`Config::dns_queries`] queries at once, 4 results each |
//! | DHCP | one client, its lease |
//! | UDP | [`Config::udp_packets`] datagrams and [`Config::udp_buffer`] bytes per socket and direction |
//!
//! [`Stack::counters`] says what happened, for a person reading why a service is slow: the
//! device's frames, bytes and drops, TCP connections open, accepted and refused for lack of
//! memory, and retransmissions (the fork's `Socket::retransmits`, summed over the sockets
//! alive and gone). The targets print them (`net.*`, `tcp.*`) with `--stats-interval`.
//!
//! `no_std` + `alloc`; no unsafe code.
//!
//! [smoltcp]: https://docs.rs/smoltcp
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod config;
mod device;
mod dhcp;
mod dns;
pub mod either;
mod lifecycle;
mod listen;
mod runner;
mod stack;
mod tcp;
mod udp;

pub use config::{ARGS, Config, Congestion, Ipv4Mode, Ipv6Cidr};
pub use listen::Listener;
pub use runner::Runner;
pub use stack::{Counters, Stack, new, spawn};
pub use tcp::{Connection, ReadHalf, WriteHalf};
pub use udp::UdpSocket;
