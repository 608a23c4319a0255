//! Network interfaces: frames delivered intact, MTU enforced, counters kept.

use alloc::vec::Vec;
use core::future::poll_fn;
use core::pin::pin;
use core::task::Poll;

use futures::future::{Either, select};
use morgana::net::{Net, RxToken, TxToken};
use morgana::{Clock, Duration};

/// EtherType of suite frames (IEEE 802 local experimental).
pub const ETHERTYPE: u16 = 0x88b5;

/// A suite frame from `src` to `dst` of `len` bytes, tagged with `seq`.
pub fn frame(dst: [u8; 6], src: [u8; 6], seq: u16, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    let mut x = u32::from(seq).wrapping_mul(2_654_435_761);
    while f.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f.truncate(len);
    f
}

/// Send `data` as one frame.
pub async fn send<N: Net>(net: &mut N, data: &[u8]) {
    poll_fn(|cx| match net.transmit(cx) {
        Some(tx) => {
            tx.consume(data.len(), |buf| buf.copy_from_slice(data));
            Poll::Ready(())
        }
        None => Poll::Pending,
    })
    .await
}

/// The next suite frame `net` receives (other traffic is skipped), or `None` after `timeout`.
pub async fn recv<N: Net, C: Clock>(net: &mut N, clock: &C, timeout: Duration) -> Option<Vec<u8>> {
    let rx = pin!(poll_fn(|cx| loop {
        match net.receive(cx) {
            Some((rx, _tx)) => {
                let f = rx.consume(|buf| buf.to_vec());
                if f.len() >= 16 && f[12..14] == ETHERTYPE.to_be_bytes() {
                    return Poll::Ready(f);
                }
            }
            None => return Poll::Pending,
        }
    }));
    match select(rx, pin!(clock.sleep(timeout))).await {
        Either::Left((f, _)) => Some(f),
        Either::Right(_) => None,
    }
}

/// Check two interfaces that reach each other (a pair, two switch ports, two NICs on a hub).
pub async fn check_pair<A: Net, B: Net, C: Clock>(a: &mut A, b: &mut B, clock: &C) {
    let wait = Duration::from_secs(2);
    let caps = a.capabilities();
    assert_eq!(caps, b.capabilities(), "both ends agree on capabilities");
    let max = caps.max_frame_len();
    assert!(max >= 60 + 4, "frames of at least 64 bytes fit (max {max})");
    assert_ne!(a.mac(), b.mac(), "the two ends have distinct MACs");
    let (sa, sb) = (a.stats(), b.stats());

    // Every size from the minimum Ethernet frame to the maximum, both ways.
    let sizes = [60, 61, 64, 128, 511, 1000, max - 1, max];
    let mut seq = 0u16;
    for &len in &sizes {
        seq += 1;
        let f = frame(b.mac(), a.mac(), seq, len);
        send(a, &f).await;
        let got = recv(b, clock, wait).await;
        assert!(got.as_deref() == Some(&f[..]), "a->b frame of {len} bytes arrives intact");
        seq += 1;
        let f = frame(a.mac(), b.mac(), seq, len);
        send(b, &f).await;
        let got = recv(a, clock, wait).await;
        assert!(got.as_deref() == Some(&f[..]), "b->a frame of {len} bytes arrives intact");
    }

    // Several frames in flight keep their order.
    let burst: Vec<Vec<u8>> =
        (0..8).map(|i| frame(b.mac(), a.mac(), 1000 + i, 100 + usize::from(i))).collect();
    for f in &burst {
        send(a, f).await;
    }
    for f in &burst {
        let got = recv(b, clock, wait).await;
        assert!(got.as_deref() == Some(&f[..]), "a burst arrives in order");
    }

    // A frame above the MTU is not delivered; the next one is.
    let too_big = frame(b.mac(), a.mac(), 2000, max + 1);
    let next = frame(b.mac(), a.mac(), 2001, 100);
    send(a, &too_big).await;
    send(a, &next).await;
    let got = recv(b, clock, wait).await;
    assert!(got.as_deref() == Some(&next[..]), "an oversized frame is dropped, the next one arrives");
    assert!(
        a.stats().tx_dropped > sa.tx_dropped || b.stats().rx_dropped > sb.rx_dropped,
        "the oversized frame is counted as dropped"
    );

    // Counters.
    let n = sizes.len() as u64;
    assert!(a.stats().tx_frames >= sa.tx_frames + n + 9, "a counts the frames it sent");
    assert!(b.stats().rx_frames >= sb.rx_frames + n + 9, "b counts the frames it received");
    assert!(b.stats().rx_bytes > sb.rx_bytes, "b counts received bytes");
}
