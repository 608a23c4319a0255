//! Two stacks on an in-memory switch, on virtual time, with seeded faults.
#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use embedded_io_async::Read;
use morgana::{FlowWrite, Platform, Spawn, StackError};
use morgana_mem::sim::{Outcome, Sim, SimPlatform};
use morgana_mem::{FaultConfig, FaultyNet, MemNet, Switch};
use morgana_rt::{Handle, VirtualTime};
use morgana_tcpip::{Config, Stack};

pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
pub const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub type Clock = Handle<VirtualTime>;
pub type Net = FaultyNet<MemNet, Clock>;

/// Run `app` on virtual time with seed `seed`, failing on a stall.
pub fn run<F: Future>(seed: u64, app: impl FnOnce(SimPlatform) -> F) -> Outcome<F::Output> {
    Sim::new(seed).run(app)
}

/// A stack on a new port of `switch` at `mac`/`ip`, its frames faulted by `faults`; its runner
/// is spawned on `p`.
pub fn stack_on(
    p: &SimPlatform,
    switch: &Switch,
    mac: [u8; 6],
    config: Config,
    faults: FaultConfig,
    seed: u64,
) -> Stack {
    let net = FaultyNet::new(switch.port(mac), p.clock(), faults, seed);
    let (stack, runner) = morgana_tcpip::new(net, p.clock(), config.seed(seed));
    p.spawn(async move { runner.run().await });
    stack
}

/// Two stacks, A at 10.0.0.1 and B at 10.0.0.2, both receiving through `faults`.
pub fn two_stacks(p: &SimPlatform, faults: FaultConfig, seed: u64, config: Config) -> (Stack, Stack) {
    let switch = Switch::default();
    let a = stack_on(p, &switch, MAC_A, config.clone().ipv4_static(IP_A, 24, None), faults, seed);
    let b = stack_on(p, &switch, MAC_B, config.ipv4_static(IP_B, 24, None), faults, seed ^ 0x5eed);
    (a, b)
}

/// A deterministic byte stream: `fill` continues it.
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Write `len` bytes of `Pattern::new(seed)` in chunks of 8 KiB (the last one may be shorter),
/// then half-close.
pub async fn send_pattern<W: FlowWrite<Error = StackError>>(
    w: &mut W,
    seed: u64,
    len: usize,
) -> Result<(), StackError> {
    let mut pat = Pattern::new(seed);
    let mut buf = vec![0u8; 8192];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        pat.fill(&mut buf[..n]);
        w.write_all(&buf[..n]).await?;
        left -= n;
    }
    w.shutdown_write().await
}

/// Read until EOF and check every byte against `Pattern::new(seed)`; the count read.
pub async fn expect_pattern<R: Read<Error = StackError>>(r: &mut R, seed: u64) -> Result<usize, StackError> {
    let mut pat = Pattern::new(seed);
    let mut buf = vec![0u8; 16384];
    let mut want = vec![0u8; 8192];
    let (mut total, mut have) = (0usize, 0usize);
    loop {
        let n = r.read(&mut buf[have..]).await?;
        if n == 0 {
            if have > 0 {
                pat.fill(&mut want);
                assert!(buf[..have] == want[..have], "byte mismatch in the last chunk, at offset {total}");
            }
            return Ok(total + have);
        }
        have += n;
        // Compare whole 8-byte-aligned chunks as the pattern produces them.
        let whole = have / 8192 * 8192;
        let mut off = 0;
        while off < whole {
            pat.fill(&mut want);
            assert!(buf[off..off + 8192] == want[..], "byte mismatch in chunk at offset {}", total + off);
            off += 8192;
        }
        total += whole;
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
}

pub fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// A `Net` whose cable a test can cut and reconnect: while cut, frames are dropped both ways.
pub struct Cuttable<N> {
    pub inner: N,
    pub open: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<N: morgana::Net> morgana::Net for Cuttable<N> {
    type RxToken<'a>
        = N::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = N::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut std::task::Context<'_>) -> Option<(N::RxToken<'_>, N::TxToken<'_>)> {
        if !self.open.get() {
            // Drain and drop, so the queue does not deliver stale frames on reconnection.
            while let Some((rx, _)) = self.inner.receive(cx) {
                morgana::RxToken::consume(rx, |_| ());
            }
            return None;
        }
        self.inner.receive(cx)
    }
    fn transmit(&mut self, cx: &mut std::task::Context<'_>) -> Option<N::TxToken<'_>> {
        // While cut, frames still go out but the peer's side drops them too (both ends cut).
        self.inner.transmit(cx)
    }
    fn link_state(&mut self, cx: &mut std::task::Context<'_>) -> morgana::LinkState {
        self.inner.link_state(cx)
    }
    fn capabilities(&self) -> morgana::Capabilities {
        self.inner.capabilities()
    }
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn stats(&self) -> morgana::NetStats {
        self.inner.stats()
    }
}

/// Two stacks on a switch whose receive paths are cut while the returned flag is `false`.
pub fn two_cuttable_stacks(
    p: &SimPlatform,
    config: Config,
) -> (Stack, Stack, std::rc::Rc<std::cell::Cell<bool>>) {
    let switch = Switch::default();
    let open = std::rc::Rc::new(std::cell::Cell::new(true));
    let mut stacks = Vec::new();
    for (mac, ip) in [(MAC_A, IP_A), (MAC_B, IP_B)] {
        let net = Cuttable { inner: switch.port(mac), open: open.clone() };
        let (stack, runner) = morgana_tcpip::new(net, p.clock(), config.clone().ipv4_static(ip, 24, None));
        p.spawn(async move { runner.run().await });
        stacks.push(stack);
    }
    let b = stacks.pop().unwrap();
    (stacks.pop().unwrap(), b, open)
}
