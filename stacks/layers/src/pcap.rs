//! A capture of any `Net`: every frame received and sent, as a classic libpcap file.
//!
//! ```
//! use morgana_layers::PcapWriter;
//! use morgana_mem::{ManualClock, pair};
//! use morgana::Duration;
//!
//! let (nic, _peer) = pair([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
//! let nic = PcapWriter::new(nic, ManualClock::new(Duration::ZERO), Vec::new());
//! // ... hand `nic` to a stack; later:
//! let (_nic, capture) = nic.into_parts();
//! assert_eq!(&capture[..4], &0xa1b2_3c4du32.to_le_bytes()); // pcap, nanoseconds, little-endian
//! assert_eq!(capture.len(), 24); // the file header, no frame yet
//! ```
//!
//! The file is what `tcpdump -r` and Wireshark read: a 24-byte header (`LINKTYPE_ETHERNET`,
//! nanosecond timestamps), then per frame a 16-byte record header and the frame. Timestamps are
//! the clock's `now()`, time since its origin (boot): Wireshark shows relative times right and
//! dates in 1970. A received frame is written as it arrived, before the stack sees it; a sent
//! one as the stack filled it (with a TSO device, a TCP super-frame of up to 64 KiB: the snap
//! length, 256 KiB, keeps it whole), including one the device then drops as too long.
//!
//! Writes are blocking, one `write_all` per record, on the network path: give it a sink that
//! keeps up (memory, a buffered file). The first write or flush that fails stops the capture for
//! good: it is logged once, the frames from then on are counted in
//! [`CaptureStats::missed`], and the network goes on as if the writer were not there. The file
//! then ends at the failed record, possibly inside it (`tcpdump` reads up to there).

use core::cell::RefCell;
use core::task::Context;

use embedded_io::{Error as _, ErrorKind, Write};
use morgana::Clock;
use morgana::net::{Capabilities, LinkState, Net, NetStats, RxToken, TxToken};

/// The pcap magic for nanosecond timestamps (written little-endian).
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// `LINKTYPE_ETHERNET`.
const LINKTYPE_ETHERNET: u32 = 1;
/// Bytes kept of each frame: tcpdump's default, above a 64 KiB super-frame.
pub const SNAPLEN: u32 = 262_144;

/// What a [`PcapWriter`] has written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureStats {
    /// Frames written to the sink.
    pub captured: u64,
    /// Frames not written because the sink had failed (the one whose write failed included).
    pub missed: u64,
    /// The sink's error that stopped the capture, if one did.
    pub error: Option<ErrorKind>,
}

/// The sink and what has gone into it; shared by the tokens of one `receive`.
struct Capture<C, W> {
    clock: C,
    sink: W,
    stats: CaptureStats,
}

impl<C: Clock, W: Write> Capture<C, W> {
    fn header() -> [u8; 24] {
        let mut h = [0; 24];
        h[0..4].copy_from_slice(&MAGIC_NS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes()); // Version 2.4.
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // 8..16: time zone and accuracy, zero.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        h
    }

    fn write(&mut self, bytes: &[u8]) -> bool {
        if self.stats.error.is_some() {
            return false;
        }
        match self.sink.write_all(bytes) {
            Ok(()) => true,
            Err(e) => {
                self.fail(e.kind());
                false
            }
        }
    }

    fn fail(&mut self, kind: ErrorKind) {
        log::warn!("pcap: the capture stopped: its sink failed ({kind:?}); the network is unaffected");
        self.stats.error = Some(kind);
    }

    fn record(&mut self, frame: &[u8]) {
        if self.stats.error.is_some() {
            self.stats.missed += 1;
            return;
        }
        let ns = self.clock.now().as_nanos();
        let kept = frame.len().min(SNAPLEN as usize);
        let mut head = [0; 16];
        let sec = u32::try_from(ns / 1_000_000_000).unwrap_or(u32::MAX);
        let fields =
            [sec, (ns % 1_000_000_000) as u32, kept as u32, u32::try_from(frame.len()).unwrap_or(u32::MAX)];
        for (at, v) in fields.into_iter().enumerate() {
            head[at * 4..at * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        if self.write(&head) && self.write(&frame[..kept]) {
            self.stats.captured += 1;
        } else {
            self.stats.missed += 1;
        }
    }
}

/// A `Net` that writes every frame `inner` receives and sends to a pcap sink (see the module).
pub struct PcapWriter<N, C, W> {
    inner: N,
    capture: RefCell<Capture<C, W>>,
}

impl<N: Net, C: Clock, W: Write> PcapWriter<N, C, W> {
    /// Capture `inner`'s frames into `sink`, stamped by `clock`; the file header is written now.
    pub fn new(inner: N, clock: C, sink: W) -> Self {
        let mut capture = Capture { clock, sink, stats: CaptureStats::default() };
        capture.write(&Capture::<C, W>::header());
        Self { inner, capture: RefCell::new(capture) }
    }

    /// What has been written so far.
    pub fn capture_stats(&self) -> CaptureStats {
        self.capture.borrow().stats
    }

    /// Flush the sink (a failure stops the capture, as a failed write does).
    pub fn flush(&mut self) {
        let capture = self.capture.get_mut();
        if capture.stats.error.is_none()
            && let Err(e) = capture.sink.flush()
        {
            capture.fail(e.kind());
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &N {
        &self.inner
    }

    /// The wrapped device and the sink, the capture ending here.
    pub fn into_parts(self) -> (N, W) {
        (self.inner, self.capture.into_inner().sink)
    }
}

/// A received frame, written to the capture when consumed.
pub struct PcapRx<'a, T, C, W> {
    inner: T,
    capture: &'a RefCell<Capture<C, W>>,
}

impl<T: RxToken, C: Clock, W: Write> RxToken for PcapRx<'_, T, C, W> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        let capture = self.capture;
        self.inner.consume(|frame| {
            // Written before `f`, which may send an answer (through the other token) and may
            // change the frame in place; the borrow ends first.
            capture.borrow_mut().record(frame);
            f(frame)
        })
    }
}

/// Room to send a frame, written to the capture once filled.
pub struct PcapTx<'a, T, C, W> {
    inner: T,
    capture: &'a RefCell<Capture<C, W>>,
}

impl<T: TxToken, C: Clock, W: Write> TxToken for PcapTx<'_, T, C, W> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let capture = self.capture;
        self.inner.consume(len, |frame| {
            let r = f(frame);
            capture.borrow_mut().record(frame);
            r
        })
    }

    fn set_segment_size(&mut self, mss: u16) {
        self.inner.set_segment_size(mss);
    }
}

impl<N: Net, C: Clock, W: Write> Net for PcapWriter<N, C, W> {
    type RxToken<'a>
        = PcapRx<'a, N::RxToken<'a>, C, W>
    where
        Self: 'a;
    type TxToken<'a>
        = PcapTx<'a, N::TxToken<'a>, C, W>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(cx)?;
        let capture = &self.capture;
        Some((PcapRx { inner: rx, capture }, PcapTx { inner: tx, capture }))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Self::TxToken<'_>> {
        let tx = self.inner.transmit(cx)?;
        Some(PcapTx { inner: tx, capture: &self.capture })
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
