//! `ping`: answer ICMP echo requests on IPv4 and IPv6 and log each answer (mirage-skeleton
//! device-usage/ping6).
//!
//! The app takes a network device, runs `morgana-tcpip` on it (which answers echo requests
//! itself), and watches the frames the stack sends: every echo reply is logged as
//! `answered ping from ADDR: seq N, LEN bytes`. The watching is a `Net` wrapping the device,
//! as smoltcp's tracer wraps one.
#![no_std]
#![forbid(unsafe_code)]

use alloc::rc::Rc;
use core::cell::Cell;
use core::future::poll_fn;
use core::net::IpAddr;
use core::task::{Context, Poll, Waker};

use morgana::net::{Capabilities, LinkState, Net, NetStats, TxToken};
use morgana::{Platform, StackError};
use morgana_args::{ArgError, ArgSpec, Args};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet, IpProtocol,
    Ipv4Packet, Ipv6Packet,
};

extern crate alloc;

/// `--count N`: stop after answering N pings (0, the default: never stop).
pub const ARGS: &[ArgSpec] =
    &[ArgSpec::value("count", "N", "stop after answering N echo requests (0: run forever)").default("0")];

/// What `ping` does.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The stack's addressing.
    pub tcpip: morgana_tcpip::Config,
    /// Answers after which to stop (0: never).
    pub count: u64,
}

impl Config {
    /// Read `--count` and the stack's arguments (`--ipv4`, `--dhcp`, ...).
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(Self { tcpip: morgana_tcpip::Config::from_args(args)?, count: args.get("count")? })
    }
}

/// An echo reply found in an outgoing frame: to whom, its sequence number and payload length.
fn echo_reply(frame: &[u8]) -> Option<(IpAddr, u16, usize)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Icmp {
                return None;
            }
            let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
            (icmp.msg_type() == Icmpv4Message::EchoReply)
                .then(|| (IpAddr::V4(ip.dst_addr()), icmp.echo_seq_no(), icmp.data().len()))
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Icmpv6 {
                return None;
            }
            let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
            (icmp.msg_type() == Icmpv6Message::EchoReply)
                .then(|| (IpAddr::V6(ip.dst_addr()), icmp.echo_seq_no(), icmp.payload().len()))
        }
        _ => None,
    }
}

/// Counts answers and wakes whoever waits for a number of them.
#[derive(Default)]
struct Answers {
    count: Cell<u64>,
    waiter: Cell<Option<Waker>>,
}

/// A `Net` that logs the echo replies sent through it.
pub struct EchoLog<N> {
    inner: N,
    answers: Rc<Answers>,
}

/// A send token that looks at the frame once it is filled.
pub struct LoggedTx<T> {
    inner: T,
    answers: Rc<Answers>,
}

impl<T: TxToken> TxToken for LoggedTx<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let answers = self.answers;
        self.inner.consume(len, |buf| {
            let r = f(buf);
            if let Some((to, seq, bytes)) = echo_reply(buf) {
                log::info!("answered ping from {to}: seq {seq}, {bytes} bytes");
                answers.count.set(answers.count.get() + 1);
                if let Some(w) = answers.waiter.take() {
                    w.wake();
                }
            }
            r
        })
    }

    fn set_segment_size(&mut self, mss: u16) {
        self.inner.set_segment_size(mss);
    }
}

impl<N: Net> Net for EchoLog<N> {
    type RxToken<'a>
        = N::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = LoggedTx<N::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let answers = self.answers.clone();
        self.inner.receive(cx).map(|(rx, tx)| (rx, LoggedTx { inner: tx, answers }))
    }
    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Self::TxToken<'_>> {
        let answers = self.answers.clone();
        self.inner.transmit(cx).map(|tx| LoggedTx { inner: tx, answers })
    }
    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState {
        self.inner.link_state(cx)
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn stats(&self) -> NetStats {
        self.inner.stats()
    }
}

/// Run the stack on `net`, log the addresses it answers on, then log every echo reply it
/// sends; return after `count` answers (never, if 0).
pub async fn start<P: Platform, N: Net + 'static>(
    platform: P,
    net: N,
    config: Config,
) -> Result<u64, StackError> {
    let answers = Rc::new(Answers::default());
    let net = EchoLog { inner: net, answers: answers.clone() };
    let dhcp = config.tcpip.ipv4 == morgana_tcpip::Ipv4Mode::Dhcp;
    let stack = morgana_tcpip::spawn(&platform, net, config.tcpip);
    if dhcp {
        stack.wait_ipv4().await;
    }
    if let Some((v4, prefix)) = stack.ipv4() {
        log::info!("answering ping on {v4}/{prefix}");
    }
    for v6 in stack.ipv6() {
        log::info!("answering ping6 on {v6}");
    }
    poll_fn(|cx| {
        let n = answers.count.get();
        if config.count > 0 && n >= config.count {
            return Poll::Ready(Ok(n));
        }
        answers.waiter.set(Some(cx.waker().clone()));
        Poll::Pending
    })
    .await
}
