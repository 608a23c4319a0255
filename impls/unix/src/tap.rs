//! `TapNet`: a Linux TAP interface as a Morgana `Net`.
//!
//! `/dev/net/tun` is opened non-blocking and attached to an interface with `IFF_TAP |
//! IFF_NO_PI`: each `read` is one Ethernet frame the host sent to the interface, each `write`
//! one frame from the unikernel. The descriptor is registered with the event loop, so a stack
//! waiting for frames parks in epoll. The unikernel has its own MAC address (random, locally
//! administered, as Mirage's unix netif does); the host side keeps the interface's.
//!
//! Offloads ([`TapNet::open`]; [`TapNet::open_without_offloads`] has none): the interface is
//! attached with `IFF_VNET_HDR` too, so each frame read or written is a 10-byte `struct
//! virtio_net_hdr` followed by a plain Ethernet frame (layout in `morgana-vnet`), and the kernel is
//! told with `TUNSETOFFLOAD` that we take partial checksums (`TUN_F_CSUM`) and TCP super-frames
//! (`TUN_F_TSO4 | TUN_F_TSO6`). Then:
//!
//! - checksums: the stack leaves TCP and UDP checksums alone; a frame sent carries the
//!   pseudo-header sum and `NEEDS_CSUM`, one received is trusted when the kernel marks it
//!   `NEEDS_CSUM` (it comes from this host) or `DATA_VALID`, and checked here otherwise;
//! - TSO: the stack hands over TCP segments of up to 64 KiB with the MSS
//!   ([`morgana::TxToken::set_segment_size`]), written as one super-frame with `gso_type` and
//!   `gso_size`: the kernel cuts them (or, for its own TCP, takes them whole);
//! - receive offload: the host's TCP sends us super-frames of up to 64 KiB (one per `read`),
//!   which the stack takes like any segment.
//!
//! A kernel that refuses `TUNSETOFFLOAD` (or `IFF_VNET_HDR`) leaves the device as it was
//! without offloads; [`TapNet::offloads`] and a `--log debug` line say what it accepted. For a
//! link emulator between two such devices: a super-frame is `ceil((len - hdr_len) / gso_size)`
//! wire segments, each of `hdr_len` header bytes and at most `gso_size` payload bytes.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::task::{Context, Poll};

use morgana::net::{Capabilities, LinkState, Net, NetStats, RxToken, TxToken};
use rand_core::{OsRng, TryRngCore};

use crate::reactor::Async;
use crate::sys;
use crate::vnet::{self, VnetHdr};

/// Longest frame, Ethernet header included, with an offload: an IP packet's length field has
/// 16 bits.
const SUPER_FRAME: usize = u16::MAX as usize + morgana::net::ETHERNET_HEADER_LEN;

/// Longest read: a virtio_net_hdr and a super-frame with a VLAN tag. Anything longer than the
/// device delivers is counted and dropped, so the buffer only has to tell "too long" from
/// "fits".
const RX_BUF: usize = vnet::HDR_LEN + SUPER_FRAME + 4;

/// Which offloads the kernel granted a [`TapNet`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TapOffloads {
    /// Frames carry a `struct virtio_net_hdr` (`IFF_VNET_HDR`).
    pub vnet_hdr: bool,
    /// The kernel takes and gives partial TCP/UDP checksums (`TUN_F_CSUM`); with `vnet_hdr`
    /// this also makes TCP segmentation offload on what we send.
    pub checksum: bool,
    /// The kernel gives us TCP super-frames, IPv4 and IPv6 (`TUN_F_TSO4 | TUN_F_TSO6`).
    pub rx_super_frames: bool,
}

/// Why a TAP device could not be opened.
#[derive(Debug)]
pub enum TapError {
    /// Creating or attaching a TAP interface needs `CAP_NET_ADMIN`.
    Permission,
    /// `/dev/net/tun` is missing (no `tun` module, or a container without the device).
    NoTunDevice,
    /// Another process has the interface open.
    Busy(String),
    /// Not a valid interface name.
    BadName(String),
    /// Anything else the host said.
    Io(String, io::Error),
}

impl fmt::Display for TapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Permission => {
                f.write_str("TAP needs root or CAP_NET_ADMIN; run as root or use --net socket")
            }
            Self::NoTunDevice => {
                f.write_str("TAP needs /dev/net/tun; load the tun module (modprobe tun) or use --net socket")
            }
            Self::Busy(name) => {
                write!(f, "TAP interface {name} is in use by another process; pick another name")
            }
            Self::BadName(name) => {
                write!(f, "{name:?} is not an interface name (1 to 15 characters, no '/' or spaces)")
            }
            Self::Io(name, e) => write!(f, "TAP interface {name}: {e}"),
        }
    }
}

impl std::error::Error for TapError {}

fn valid_name(name: &str) -> bool {
    (1..libc::IFNAMSIZ).contains(&name.len())
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// An Ethernet interface on a host TAP device.
pub struct TapNet {
    io: Async<File>,
    name: String,
    mac: [u8; 6],
    mtu: usize,
    offloads: TapOffloads,
    caps: Capabilities,
    stats: NetStats,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
}

impl fmt::Debug for TapNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapNet").field("name", &self.name).field("mac", &self.mac).finish_non_exhaustive()
    }
}

/// A random locally administered unicast MAC address.
fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    if OsRng.try_fill_bytes(&mut mac).is_err() {
        // No entropy at all is a broken host; a fixed local address still works on one link.
        mac = [0x02, 0x6d, 0x6f, 0x72, 0x67, 0x01];
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

impl TapNet {
    /// Open (creating if needed) the TAP interface `name`, with a random MAC for the unikernel
    /// and whichever offloads the kernel grants (see the module's documentation).
    pub fn open(name: &str) -> Result<Self, TapError> {
        Self::open_with(name, true)
    }

    /// [`open`](Self::open) without offloads: plain Ethernet frames, checksums by the stack.
    pub fn open_without_offloads(name: &str) -> Result<Self, TapError> {
        Self::open_with(name, false)
    }

    fn open_with(name: &str, offload: bool) -> Result<Self, TapError> {
        if !valid_name(name) {
            return Err(TapError::BadName(name.into()));
        }
        let open_tun = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open("/dev/net/tun")
                .map_err(|e| match e.kind() {
                    io::ErrorKind::PermissionDenied => TapError::Permission,
                    io::ErrorKind::NotFound => TapError::NoTunDevice,
                    _ if e.raw_os_error() == Some(libc::ENODEV) || e.raw_os_error() == Some(libc::ENXIO) => {
                        TapError::NoTunDevice
                    }
                    _ => TapError::Io(name.into(), e),
                })
        };
        let attach_error = |e: io::Error| match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => TapError::Permission,
            Some(libc::EBUSY) => TapError::Busy(name.into()),
            Some(libc::EINVAL) => TapError::BadName(name.into()),
            _ => TapError::Io(name.into(), e),
        };
        let mut file = open_tun()?;
        let mut offloads = TapOffloads::default();
        let mut attached = None;
        if offload {
            match sys::tun_set_iff(file.as_fd(), name, true) {
                Ok(n) => {
                    attached = Some(n);
                    offloads.vnet_hdr = sys::tun_set_vnet_hdr_len(file.as_fd(), vnet::HDR_LEN).is_ok();
                    if !offloads.vnet_hdr {
                        // A header of another length that we cannot change: no offloads, on a
                        // fresh handle (the flag stays with the one that set it).
                        file = open_tun()?;
                        attached = None;
                    }
                }
                // Permission and a busy interface are the same with or without the flag.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES | libc::EBUSY)) => {
                    return Err(attach_error(e));
                }
                Err(e) => log::debug!("TAP {name}: no IFF_VNET_HDR ({e}): no offloads"),
            }
        }
        let name = match attached {
            Some(n) => n,
            None => sys::tun_set_iff(file.as_fd(), name, false).map_err(attach_error)?,
        };
        if offloads.vnet_hdr {
            let all = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
            if sys::tun_set_offload(file.as_fd(), all).is_ok() {
                offloads.checksum = true;
                offloads.rx_super_frames = true;
            } else if sys::tun_set_offload(file.as_fd(), libc::TUN_F_CSUM).is_ok() {
                offloads.checksum = true;
            }
        }
        if !offload {
            log::debug!("TAP {name}: no offloads asked for: plain Ethernet frames");
        } else {
            log::debug!(
                "TAP {name}: virtio_net_hdr {}, checksum offload (TUN_F_CSUM) {}, TSO on send {}, TCP \
                 super-frames received (TUN_F_TSO4/6) {}",
                yes(offloads.vnet_hdr),
                yes(offloads.checksum),
                yes(offloads.checksum),
                yes(offloads.rx_super_frames)
            );
        }
        let io = Async::new(file).map_err(|e| TapError::Io(name.clone(), e))?;
        let mut tap = Self {
            io,
            name,
            mac: random_mac(),
            mtu: 1500,
            offloads,
            caps: Capabilities::default(),
            stats: NetStats::default(),
            rx: vec![0; RX_BUF].into_boxed_slice(),
            tx: vec![0; RX_BUF].into_boxed_slice(),
        };
        tap.caps = tap.compute_caps();
        Ok(tap)
    }

    fn compute_caps(&self) -> Capabilities {
        let mut caps = Capabilities::ethernet(self.mtu);
        if self.offloads.checksum {
            caps.checksum_offload = true;
            caps.tso_max_frame_len = SUPER_FRAME;
        }
        if self.offloads.rx_super_frames {
            caps.rx_max_frame_len = SUPER_FRAME;
        }
        caps
    }

    /// The same device with the unikernel's MAC set to `mac`.
    pub fn with_mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = mac;
        self
    }

    /// The same device carrying IP packets of up to `mtu` bytes (match the host side's MTU).
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu.min(SUPER_FRAME - morgana::net::ETHERNET_HEADER_LEN);
        self.caps = self.compute_caps();
        self
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The offloads the kernel granted.
    pub fn offloads(&self) -> TapOffloads {
        self.offloads
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// A frame read from the TAP device.
pub struct TapRx<'a> {
    frame: &'a mut [u8],
}

impl RxToken for TapRx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room to write one frame to the TAP device.
pub struct TapTx<'a> {
    file: &'a File,
    buf: &'a mut [u8],
    stats: &'a mut NetStats,
    max: usize,
    tso_max: usize,
    vnet: bool,
    checksum: bool,
    mss: Option<u16>,
}

impl<'a> TapTx<'a> {
    fn new(
        io: &'a Async<File>,
        buf: &'a mut [u8],
        stats: &'a mut NetStats,
        caps: &Capabilities,
        offloads: &TapOffloads,
    ) -> Self {
        TapTx {
            file: io.get_ref(),
            buf,
            stats,
            max: caps.max_frame_len(),
            tso_max: caps.tso_max_frame_len,
            vnet: offloads.vnet_hdr,
            checksum: offloads.checksum,
            mss: None,
        }
    }
}

impl TxToken for TapTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let max = if self.mss.is_some() && self.tso_max > 0 { self.tso_max } else { self.max };
        if len > max {
            self.stats.tx_dropped += 1;
            return f(&mut vec![0u8; len]);
        }
        let head = if self.vnet { vnet::HDR_LEN } else { 0 };
        let (hdr, frame) = self.buf[..head + len].split_at_mut(head);
        let out = f(frame);
        if self.vnet {
            let h = if self.checksum { vnet::offload_tx(frame, self.mss) } else { VnetHdr::default() };
            h.write(hdr);
        }
        // A TAP write takes the whole frame or fails (interface down, host queue full): a lost
        // frame, which the protocols above recover from.
        match (&*self.file).write(&self.buf[..head + len]) {
            Ok(n) if n == head + len => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
            }
            _ => self.stats.tx_dropped += 1,
        }
        out
    }

    fn set_segment_size(&mut self, mss: u16) {
        self.mss = Some(mss);
    }
}

impl Net for TapNet {
    type RxToken<'a> = TapRx<'a>;
    type TxToken<'a> = TapTx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(TapRx<'_>, TapTx<'_>)> {
        let max = self.caps.max_rx_frame_len();
        let head = if self.offloads.vnet_hdr { vnet::HDR_LEN } else { 0 };
        let len = loop {
            let rx = &mut self.rx;
            match self.io.poll_read_with(cx, |mut f| f.read(rx)) {
                Poll::Ready(Ok(n)) if n > head + max || n < head + morgana::net::ETHERNET_HEADER_LEN => {
                    self.stats.rx_dropped += 1;
                }
                Poll::Ready(Ok(n))
                    if self.offloads.checksum
                        && !vnet::rx_checksum_ok(&VnetHdr::read(&self.rx[..head]), &self.rx[head..n]) =>
                {
                    self.stats.rx_dropped += 1;
                }
                Poll::Ready(Ok(n)) => break n - head,
                // EIO and the like: the interface went away or down. Nothing to deliver; try
                // again when the kernel reports the fd ready.
                Poll::Ready(Err(_)) => {
                    self.stats.rx_dropped += 1;
                    self.io.wake_when_readable(cx);
                    return None;
                }
                Poll::Pending => return None,
            }
        };
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += len as u64;
        let TapNet { io, rx, tx, stats, caps, offloads, .. } = self;
        let rx = TapRx { frame: &mut rx[head..head + len] };
        Some((rx, TapTx::new(io, tx, stats, caps, offloads)))
    }

    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<TapTx<'_>> {
        let TapNet { io, tx, stats, caps, offloads, .. } = self;
        Some(TapTx::new(io, tx, stats, caps, offloads))
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        // The link of a TAP device is up while we hold it open.
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn stats(&self) -> NetStats {
        self.stats
    }
}
