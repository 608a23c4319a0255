//! Bulk TCP throughput: `morgana-tcpip` against raw smoltcp driven by hand, on the same
//! in-memory link (two ports of a `morgana_mem::Switch`), the same buffer sizes and the same
//! virtual clock, so the ratio measures what the stack's runner, wakers and shared state cost.
//!
//! `cargo xtask bench tcpip` runs it in release mode; arguments: `[MIB_PER_RUN] [RUNS]`. Then,
//! as root, `tap ECHO [MIB] [RUNS]`: Linux → unikernel `echo` over TAP beside Linux → Linux over
//! veth (see [`tap`]); `link ECHO [--quick] ...`: morgana-tcpip against Linux TCP through the
//! same userspace link emulator, under loss and delay, and fairness at a shared bottleneck (see
//! [`link`]).

use std::future::poll_fn;
use std::task::{Context, Poll, Waker};
use std::time::Instant as WallInstant;

use embedded_io_async::{Read, Write};
use morgana::net::Net;
use morgana::{Spawn, TcpListener, TcpStack};
use morgana_mem::{MemNet, Switch};
use morgana_netns::median;
use morgana_rt::{Executor, VirtualTime};
use morgana_tcpip::Config;
use smoltcp::iface::{Interface, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const IP_A: [u8; 4] = [10, 0, 0, 1];
const IP_B: [u8; 4] = [10, 0, 0, 2];
const BUFFER: usize = 64 * 1024;
const CHUNK: usize = 16 * 1024;

mod flood;
mod link;
mod tap;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mode = match argv.first().map(String::as_str) {
        Some("tap") => Some(tap::run as fn(&[String]) -> Result<(), String>),
        Some("link") => Some(link::run as fn(&[String]) -> Result<(), String>),
        Some("flood") => Some(flood::run as fn(&[String]) -> Result<(), String>),
        Some("client") => Some(tap::client as fn(&[String]) -> Result<(), String>),
        _ => None,
    };
    if let Some(mode) = mode {
        if let Err(e) = mode(&argv[1..]) {
            eprintln!("bench tcpip: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut args = argv.into_iter();
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let bytes = mib << 20;
    let data: &'static [u8] = Vec::leak((0..CHUNK).map(|i| (i * 31 + 7) as u8).collect());
    let clock = if on_cpu_ns().is_some() { "on-CPU time of the thread" } else { "wall time" };
    println!(
        "bulk TCP, {mib} MiB per run, {runs} runs each, {} KiB buffers, in-memory link, {clock}",
        BUFFER / 1024
    );
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    // Profiling aid: BENCH_ONLY=raw or BENCH_ONLY=ours runs one side.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for _ in 0..runs {
        // Alternate, so drift in the machine's speed hits both alike.
        if only != "ours" {
            raw.push(mib_per_s(bytes, raw_smoltcp(bytes, data)));
        }
        if only != "raw" {
            ours.push(mib_per_s(bytes, morgana_tcpip(bytes, data)));
        }
    }
    if !only.is_empty() {
        return;
    }
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        println!("raw:  {raw:.0?}\nours: {ours:.0?}");
    }
    // The best run of each is the one least disturbed by whatever else the machine runs; the
    // medians show how noisy it was.
    let (ours_med, raw_med) = (median(&ours), median(&raw));
    let best = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    let (ours, raw) = (best(&ours), best(&raw));
    println!("raw smoltcp (by hand):  {raw:8.1} MiB/s best, {raw_med:8.1} median");
    println!("morgana-tcpip:          {ours:8.1} MiB/s best, {ours_med:8.1} median");
    println!(
        "ratio morgana-tcpip / raw smoltcp: {:.3} best-of-{runs}, {:.3} median (target >= 0.95)",
        ours / raw,
        ours_med / raw_med
    );
}

/// A stopwatch of the time this thread spent on a CPU, so that other work on the machine does
/// not count against either side; wall time where that is not available.
///
/// Read with `CLOCK_THREAD_CPUTIME_ID`, to the nanosecond. (`/proc/thread-self/schedstat`, read
/// before, is brought up to date only at scheduler ticks: 4 ms steps on a run of ~70 ms, which
/// turned every ratio into one of 18/19, 18/18, ... whatever the true speeds.)
struct CpuClock {
    wall: WallInstant,
    cpu: Option<u64>,
}

fn on_cpu_ns() -> Option<u64> {
    morgana_unix::thread_cpu_time().and_then(|t| u64::try_from(t.as_nanos()).ok())
}

impl CpuClock {
    fn start() -> Self {
        Self { wall: WallInstant::now(), cpu: on_cpu_ns() }
    }

    fn seconds(&self) -> f64 {
        match (self.cpu, on_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => self.wall.elapsed().as_secs_f64(),
        }
    }
}

fn mib_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs
}

/// Seconds to move `bytes` from A to B through two morgana-tcpip stacks.
fn morgana_tcpip(bytes: usize, data: &'static [u8]) -> f64 {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let switch = Switch::default();
    // The same fixed buffers as the raw smoltcp side: the stack's buffers may not grow here.
    let config = |ip: [u8; 4]| {
        let mut c = Config::default().tcp_buffers(BUFFER, BUFFER).ipv4_static(ip.into(), 24, None);
        c.tcp_buffer_max = BUFFER;
        c
    };
    let (a, ra) = morgana_tcpip::new(switch.port(MAC_A), h.clone(), config(IP_A));
    let (b, rb) = morgana_tcpip::new(switch.port(MAC_B), h.clone(), config(IP_B));
    h.spawn(async move { ra.run().await });
    h.spawn(async move { rb.run().await });
    let started = CpuClock::start();
    let received = exec
        .block_on(&mut time.park(), async {
            let mut listener = b.listen(7, 1).await.unwrap();
            h.spawn(async move {
                let mut conn = a.connect((IP_B, 7).into()).await.unwrap();
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(data.len());
                    conn.write_all(&data[..n]).await.unwrap();
                    left -= n;
                }
                morgana::FlowWrite::shutdown_write(&mut conn).await.unwrap();
            });
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0;
            loop {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break total;
                }
                total += n;
            }
        })
        .expect("no stall");
    assert_eq!(received, bytes);
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        println!("morgana-tcpip: virtual time {}", morgana::Clock::now(&h));
    }
    started.seconds()
}

/// A `MemNet` as a smoltcp device, the way one would write it by hand.
struct Dev(MemNet);

struct Rx<T>(T);
struct Tx<T>(T);

impl<T: morgana::RxToken> phy::RxToken for Rx<T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        self.0.consume(|b| f(b))
    }
}

impl<T: morgana::TxToken> phy::TxToken for Tx<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.consume(len, f)
    }
}

impl phy::Device for Dev {
    type RxToken<'a> = Rx<<MemNet as Net>::RxToken<'a>>;
    type TxToken<'a> = Tx<<MemNet as Net>::TxToken<'a>>;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let mut cx = Context::from_waker(Waker::noop());
        self.0.receive(&mut cx).map(|(rx, tx)| (Rx(rx), Tx(tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        let mut cx = Context::from_waker(Waker::noop());
        self.0.transmit(&mut cx).map(Tx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.0.capabilities().max_frame_len();
        caps
    }
}

fn raw_iface(dev: &mut Dev, mac: [u8; 6], ip: [u8; 4]) -> Interface {
    let config = smoltcp::iface::Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    let mut iface = Interface::new(config, dev, Instant::ZERO);
    iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), 24)).unwrap());
    iface
}

/// Seconds to move `bytes` from A to B through two smoltcp interfaces polled by hand.
fn raw_smoltcp(bytes: usize, data: &[u8]) -> f64 {
    let switch = Switch::default();
    let (mut da, mut db) = (Dev(switch.port(MAC_A)), Dev(switch.port(MAC_B)));
    let (mut ia, mut ib) = (raw_iface(&mut da, MAC_A, IP_A), raw_iface(&mut db, MAC_B, IP_B));
    let socket =
        || tcp::Socket::new(tcp::SocketBuffer::new(vec![0; BUFFER]), tcp::SocketBuffer::new(vec![0; BUFFER]));
    let (mut sa, mut sb) = (SocketSet::new(Vec::new()), SocketSet::new(Vec::new()));
    let client = sa.add(socket());
    let server = sb.add(socket());
    sb.get_mut::<tcp::Socket>(server).listen(7).unwrap();
    sa.get_mut::<tcp::Socket>(client).connect(ia.context(), (IpAddress::v4(10, 0, 0, 2), 7), 49152).unwrap();
    let started = CpuClock::start();
    let mut now = Instant::ZERO;
    let (mut sent, mut received, mut closed) = (0usize, 0usize, false);
    let mut buf = vec![0u8; CHUNK];
    // The same block_on shape as the executor gives the other side: poll until done.
    let done = poll_fn(|_| {
        loop {
            ia.poll(now, &mut da, &mut sa);
            ib.poll(now, &mut db, &mut sb);
            let mut progress = false;
            let c = sa.get_mut::<tcp::Socket>(client);
            while sent < bytes && c.can_send() {
                let n = (bytes - sent).min(data.len());
                let k = c.send_slice(&data[..n]).unwrap();
                if k == 0 {
                    break;
                }
                sent += k;
                progress = true;
            }
            if sent == bytes && !closed {
                c.close();
                closed = true;
            }
            let s = sb.get_mut::<tcp::Socket>(server);
            while s.can_recv() {
                let n = s.recv_slice(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                received += n;
                progress = true;
            }
            if received == bytes && !s.may_recv() {
                return Poll::Ready(received);
            }
            if !progress {
                let next = [ia.poll_at(now, &sa), ib.poll_at(now, &sb)].into_iter().flatten().min();
                if let Some(next) = next
                    && next > now
                {
                    now = next;
                }
            }
        }
    });
    let got = futures_lite_block_on(done);
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        println!("raw: virtual time {}us, frames {:?}", now.total_micros(), da.0.stats());
    }
    assert_eq!(got, bytes);
    started.seconds()
}

/// Poll a future that never returns `Pending`.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
