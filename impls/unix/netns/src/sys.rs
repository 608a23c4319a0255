//! The few Linux calls std does not wrap that the link emulator needs: entering a network
//! namespace (the calling thread only), attaching to a TAP device, `AF_PACKET` sockets, a poll
//! with a nanosecond timeout, a thread's timer slack, and killing a process group.
//!
//! Everything unsafe in this crate lives here; each function hands back owned, safe types.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `-1` from a libc call becomes the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// An interface name as the kernel wants it in an `ifreq` (NUL-terminated, < IFNAMSIZ).
fn ifname_bytes(name: &str) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?}: not an interface name")));
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (dst, src) in out.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(out)
}

/// Move the calling thread (only it: network namespaces are per thread) into the namespace
/// whose handle `ns` is (`/run/netns/NAME`).
pub fn setns_net(ns: &File) -> io::Result<()> {
    // SAFETY: `ns` is an open file; setns takes no pointers.
    check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

/// Attach the `/dev/net/tun` handle `fd` to the TAP interface `name` with `IFF_TAP |
/// IFF_NO_PI` (no packet-information header, no virtio-net header: the kernel hands over
/// whole, checksummed, wire-sized frames).
pub fn tun_attach(fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    // SAFETY: ifreq is plain old data (arrays, integers, a union of those and a raw pointer);
    // all zeroes is a valid value of it.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_name = ifname_bytes(name)?;
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: `fd` is open; TUNSETIFF reads and writes one ifreq, and `ifr` is a valid one that
    // outlives the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) })?;
    Ok(())
}

fn set_int_opt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is open; the option value is one c_int that outlives the call, its length given.
    check(unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (&raw const value).cast(), len) })?;
    Ok(())
}

/// A non-blocking `AF_PACKET` raw socket bound to interface `ifname` of the calling thread's
/// namespace, for every protocol: a read is one frame the interface received, a write sends
/// one frame out of it. Frames the interface itself sends are not read back
/// (`PACKET_IGNORE_OUTGOING`).
/// `linux/if_packet.h`'s socket option (the `libc` crate has only `PACKET_VNET_HDR_SZ`).
const PACKET_VNET_HDR: libc::c_int = 15;

/// Length of the `virtio_net_hdr` before every frame on a socket with `PACKET_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;

pub fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    let name = ifname_bytes(ifname)?;
    // SAFETY: `name` is NUL-terminated (ifname_bytes leaves at least one zero at the end).
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket takes no pointers; a non-negative result is a new fd we now own.
    let fd = check(unsafe {
        libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto.into())
    })?;
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value of it.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as libc::c_int;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `fd` is open; `sll` is a valid sockaddr_ll of the length given, read by the kernel.
    check(unsafe { libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), len) })?;
    set_int_opt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
    // Every frame read or written carries a `virtio_net_hdr` first (`VNET_HDR_LEN` bytes): on
    // the kernel side of an offloading TAP, what a unikernel sends may be a super-frame or
    // leave its checksum to be finished, and the header says so.
    set_int_opt(fd.as_fd(), libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
    // Room for bursts while the emulator thread is off the CPU (FORCE: beyond rmem_max, as root).
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        set_int_opt(fd.as_fd(), libc::SOL_SOCKET, opt, 8 << 20)?;
    }
    Ok(fd)
}

/// Wait until one of `fds` is readable or `timeout` passes (`None`: forever); sets `ready[i]`
/// for each readable `fds[i]`. An interrupted wait returns with nothing ready.
pub fn poll_readable(
    fds: &[BorrowedFd<'_>],
    ready: &mut [bool],
    timeout: Option<Duration>,
) -> io::Result<()> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfds the kernel may write; `ts_ptr` is
    // null or points to a timespec that outlives the call; no signal mask is passed.
    let ret = unsafe { libc::ppoll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ts_ptr, std::ptr::null()) };
    ready.iter_mut().for_each(|r| *r = false);
    if ret < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
    }
    for (r, p) in ready.iter_mut().zip(&pfds) {
        *r = p.revents != 0;
    }
    Ok(())
}

/// Let the calling thread's timers fire within `slack` of their time (the default is 50 µs,
/// as much as half the one-way delay of a 0.2 ms round trip).
pub fn set_timer_slack(slack: Duration) {
    let ns = libc::c_ulong::try_from(slack.as_nanos()).unwrap_or(libc::c_ulong::MAX).max(1);
    // SAFETY: PR_SET_TIMERSLACK takes an integer and no pointers; failure leaves the default.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) };
}

/// Send `SIGKILL` to every process in the process group `pgid` (a launcher started in a group
/// of its own, and what it started).
pub fn kill_group(pgid: u32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pgid <= 1 {
        // kill(0) and kill(-1) would reach far more than one group.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill takes no pointers; a negative id names exactly one process group.
    check(unsafe { libc::kill(-pgid, libc::SIGKILL) })?;
    Ok(())
}
