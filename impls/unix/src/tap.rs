//! `TapNet`: a Linux TAP interface as a Morgana `Net`.
//!
//! `/dev/net/tun` is opened non-blocking and attached to an interface with `IFF_TAP |
//! IFF_NO_PI`: each `read` is one Ethernet frame the host sent to the interface, each `write`
//! one frame from the unikernel. The descriptor is registered with the event loop, so a stack
//! waiting for frames parks in epoll. The unikernel has its own MAC address (random, locally
//! administered, as Mirage's unix netif does); the host side keeps the interface's.

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

/// Largest read: anything longer than the MTU is counted and dropped, so the buffer only has to
/// tell "too long" from "fits".
const RX_BUF: usize = 65536;

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
    /// Open (creating if needed) the TAP interface `name`, with a random MAC for the unikernel.
    pub fn open(name: &str) -> Result<Self, TapError> {
        if !valid_name(name) {
            return Err(TapError::BadName(name.into()));
        }
        let file = OpenOptions::new()
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
            })?;
        let name = sys::tun_set_iff(file.as_fd(), name).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => TapError::Permission,
            Some(libc::EBUSY) => TapError::Busy(name.into()),
            Some(libc::EINVAL) => TapError::BadName(name.into()),
            _ => TapError::Io(name.into(), e),
        })?;
        let io = Async::new(file).map_err(|e| TapError::Io(name.clone(), e))?;
        Ok(Self {
            io,
            name,
            mac: random_mac(),
            caps: Capabilities::ethernet(1500),
            stats: NetStats::default(),
            rx: vec![0; RX_BUF].into_boxed_slice(),
            tx: vec![0; RX_BUF].into_boxed_slice(),
        })
    }

    /// The same device with the unikernel's MAC set to `mac`.
    pub fn with_mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = mac;
        self
    }

    /// The same device carrying IP packets of up to `mtu` bytes (match the host side's MTU).
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.caps = Capabilities::ethernet(mtu.min(RX_BUF - morgana::net::ETHERNET_HEADER_LEN));
        self
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }
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
}

impl TxToken for TapTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        if len > self.max {
            self.stats.tx_dropped += 1;
            return f(&mut vec![0u8; len]);
        }
        let out = f(&mut self.buf[..len]);
        // A TAP write takes the whole frame or fails (interface down, host queue full): a lost
        // frame, which the protocols above recover from.
        match (&*self.file).write(&self.buf[..len]) {
            Ok(n) if n == len => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
            }
            _ => self.stats.tx_dropped += 1,
        }
        out
    }
}

impl Net for TapNet {
    type RxToken<'a> = TapRx<'a>;
    type TxToken<'a> = TapTx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(TapRx<'_>, TapTx<'_>)> {
        let max = self.caps.max_frame_len();
        let len = loop {
            let rx = &mut self.rx;
            match self.io.poll_read_with(cx, |mut f| f.read(rx)) {
                Poll::Ready(Ok(n)) if n > max || n < morgana::net::ETHERNET_HEADER_LEN => {
                    self.stats.rx_dropped += 1;
                }
                Poll::Ready(Ok(n)) => break n,
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
        let rx = TapRx { frame: &mut self.rx[..len] };
        let tx = TapTx { file: self.io.get_ref(), buf: &mut self.tx, stats: &mut self.stats, max };
        Some((rx, tx))
    }

    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<TapTx<'_>> {
        let max = self.caps.max_frame_len();
        Some(TapTx { file: self.io.get_ref(), buf: &mut self.tx, stats: &mut self.stats, max })
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
