//! What the harnesses share: a seeded splitter, a yielding future, and a virtual-time runner.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use embedded_io_async::Read;
use futures::future::join3;
use morgana::{Flow, FlowWrite};
use morgana_mem::{PipeEnd, pipe};
use morgana_rt::{Executor, Handle, VirtualTime};

/// The executor handle every harness runs on: virtual time, so timeouts cost nothing.
pub type Clock = Handle<VirtualTime>;

/// Run `f` on a fresh executor with virtual time; `None` if it stalled (nothing could ever run
/// again) or passed `limit_secs` of virtual time.
pub fn run_virtual<F: Future>(limit_secs: u64, f: impl FnOnce(Clock) -> F) -> Option<F::Output> {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let limit = morgana::Instant::from_millis(limit_secs * 1000);
    exec.block_on(&mut time.park_until(limit), f(exec.handle())).ok()
}

/// Cut `data` into pieces at points drawn from `seed` (xorshift): the same bytes as a peer
/// might deliver them, a byte at a time or all at once.
pub fn split(data: &[u8], seed: u16) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![data];
    }
    let mut x = u32::from(seed) | 0x1_0000;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // Mostly short pieces, sometimes long ones.
        let n = match x % 4 {
            0 => 1,
            1 => 1 + (x >> 8) as usize % 8,
            2 => 1 + (x >> 8) as usize % 64,
            _ => 1 + (x >> 8) as usize % 2048,
        };
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

/// A future that is pending once: lets every other task run before the caller goes on.
pub struct YieldNow(bool);

/// Yield to the other tasks once.
pub fn yield_now() -> YieldNow {
    YieldNow(false)
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Prefix `body` with a little-endian u16 `seed`: the input format of the split harnesses.
pub fn with_seed(seed: u16, body: &[u8]) -> Vec<u8> {
    let mut v = seed.to_le_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// Send `pieces` on `tx` (yielding between them, so the reader sees each on its own), then
/// half-close.
pub async fn send_pieces<W: FlowWrite>(tx: &mut W, pieces: &[&[u8]]) {
    for p in pieces {
        if tx.write_all(p).await.is_err() {
            return;
        }
        yield_now().await;
    }
    let _ = tx.shutdown_write().await;
}

/// Everything `rx` yields until its end.
pub async fn read_all<R: Read>(rx: &mut R) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = rx.read(&mut buf).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// On a pipe: `peer` gets one end, the harness sends `pieces` into it from the other end and
/// reads what comes back until it closes; `peer`'s result and those bytes.
pub async fn feed<T>(pieces: &[&[u8]], peer: impl AsyncFnOnce(PipeEnd) -> T) -> (T, Vec<u8>) {
    let (theirs, ours) = pipe(64 * 1024);
    let (mut rx, mut tx) = ours.split();
    let (out, (), back) = join3(peer(theirs), send_pieces(&mut tx, pieces), read_all(&mut rx)).await;
    (out, back)
}
