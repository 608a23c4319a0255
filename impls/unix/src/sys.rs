//! The few Linux system calls std does not wrap: epoll, the TAP ioctl, sockets that are
//! non-blocking from birth (non-blocking connect, dual-stack listeners with a chosen backlog),
//! and the limit on open file descriptors.
//!
//! Everything unsafe in this crate lives here; each function hands back owned, safe types.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `-1` from a libc call becomes the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// CPU time the calling thread has run (`CLOCK_THREAD_CPUTIME_ID`), to the nanosecond.
pub fn thread_cpu_time() -> io::Result<std::time::Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec that the kernel only writes; the clock id is a constant.
    check(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) })?;
    Ok(std::time::Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    ))
}

/// The calling process's limit on open file descriptors (`RLIMIT_NOFILE`): (soft, hard).
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit that the kernel only writes; the resource is a constant.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raise the soft limit on open file descriptors to `soft` (at most the hard limit, which an
/// unprivileged process cannot raise).
pub fn set_nofile_soft_limit(soft: u64) -> io::Result<()> {
    let (_, hard) = nofile_limit()?;
    let lim = libc::rlimit { rlim_cur: soft.min(hard), rlim_max: hard };
    // SAFETY: `lim` is a valid rlimit that the kernel only reads; the resource is a constant.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    Ok(())
}

/// An epoll instance, close-on-exec.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd we now own.
    let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Readiness the reactor asks for: both directions, edge-triggered, peer half-close included.
const INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// Watch `fd` on `epoll`, reporting its events with `token`.
pub fn epoll_add(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events: INTEREST, u64: token };
    // SAFETY: both fds are open (borrowed); `ev` is a valid epoll_event the kernel only reads.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) })?;
    Ok(())
}

/// Stop watching `fd`.
pub fn epoll_del(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: both fds are open; the event argument is ignored for DEL but must be non-null on
    // old kernels, so a valid one is passed.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), &mut ev) })?;
    Ok(())
}

/// One readiness report.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Event(libc::epoll_event);

impl Event {
    /// An empty slot for [`epoll_wait`] to fill.
    pub const EMPTY: Event = Event(libc::epoll_event { events: 0, u64: 0 });

    /// The token given to [`epoll_add`].
    pub fn token(&self) -> u64 {
        // A copy, not a reference: the struct is packed on x86_64.
        self.0.u64
    }

    /// Whether a reader may proceed (data, end of stream, or an error to report).
    pub fn readable(&self) -> bool {
        let e = self.0.events;
        e & (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }

    /// Whether a writer may proceed (room, or an error to report).
    pub fn writable(&self) -> bool {
        let e = self.0.events;
        e & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }
}

/// Wait up to `timeout_ms` (-1: forever) for events; how many were stored in `events`.
pub fn epoll_wait(epoll: BorrowedFd<'_>, events: &mut [Event], timeout_ms: i32) -> io::Result<usize> {
    let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `Event` is `repr(transparent)` over epoll_event (same layout), and the
    // kernel writes at most `max` entries into the buffer, which is that long.
    let n = check(unsafe {
        libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr().cast::<libc::epoll_event>(), max, timeout_ms)
    })?;
    Ok(n as usize)
}

/// Attach the `/dev/net/tun` handle `fd` to the TAP interface `name` (created if absent) with
/// `IFF_TAP | IFF_NO_PI`, and `IFF_VNET_HDR` if `vnet_hdr` (every frame then starts with a
/// `struct virtio_net_hdr`); returns the interface's name as the kernel spells it.
pub fn tun_set_iff(fd: BorrowedFd<'_>, name: &str, vnet_hdr: bool) -> io::Result<String> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: ifreq is plain old data (arrays, integers, a union of those and a raw pointer);
    // all zeroes is a valid value of it.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let vnet = if vnet_hdr { libc::IFF_VNET_HDR } else { 0 };
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | vnet) as libc::c_short;
    // SAFETY: `fd` is open; TUNSETIFF reads and writes one ifreq, and `ifr` is a valid one that
    // outlives the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) })?;
    let len = ifr.ifr_name.iter().position(|c| *c == 0).unwrap_or(libc::IFNAMSIZ);
    Ok(ifr.ifr_name[..len].iter().map(|c| *c as u8 as char).collect())
}

/// Set the length of the header before each frame on a TAP attached with `IFF_VNET_HDR`
/// (`TUNSETVNETHDRSZ`; 10 is `struct virtio_net_hdr`, the kernel's default).
pub fn tun_set_vnet_hdr_len(fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    let len = libc::c_int::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fd` is open; TUNSETVNETHDRSZ reads one int through the pointer, which points at
    // `len` for the whole call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &len) })?;
    Ok(())
}

/// Tell the kernel which offloads the reader of a TAP handles (`TUNSETOFFLOAD`, `TUN_F_*`
/// bits): partial checksums, TCP super-frames. The kernel refuses bits it does not know.
pub fn tun_set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: `fd` is open; TUNSETOFFLOAD takes its argument by value (an unsigned long), no
    // pointer.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, libc::c_ulong::from(flags)) })?;
    Ok(())
}

/// A socket address in the kernel's layout.
enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl RawAddr {
    fn new(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => Self::V4(v4(a)),
            SocketAddr::V6(a) => Self::V6(v6(a)),
        }
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        match self {
            Self::V4(a) => (a as *const libc::sockaddr_in).cast(),
            Self::V6(a) => (a as *const libc::sockaddr_in6).cast(),
        }
    }

    fn len(&self) -> libc::socklen_t {
        let len = match self {
            Self::V4(_) => std::mem::size_of::<libc::sockaddr_in>(),
            Self::V6(_) => std::mem::size_of::<libc::sockaddr_in6>(),
        };
        len as libc::socklen_t
    }
}

fn v4(a: &SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
        sin_zero: [0; 8],
    }
}

fn v6(a: &SocketAddrV6) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: a.port().to_be(),
        sin6_flowinfo: a.flowinfo(),
        sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
        sin6_scope_id: a.scope_id(),
    }
}

/// Kind of socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockType {
    /// TCP.
    Stream,
    /// UDP.
    Datagram,
}

/// A new non-blocking, close-on-exec socket for addresses like `addr`.
pub fn socket(addr: &SocketAddr, ty: SockType) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let ty = match ty {
        SockType::Stream => libc::SOCK_STREAM,
        SockType::Datagram => libc::SOCK_DGRAM,
    };
    // SAFETY: socket takes no pointers; a non-negative result is a new fd we now own.
    let fd = check(unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is open; the kernel reads `len` bytes from `&value`, an int that lives
    // through the call.
    check(unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (&value as *const libc::c_int).cast(), len)
    })?;
    Ok(())
}

/// Let a listener rebind a port whose old connections are in TIME-WAIT.
pub fn set_reuse_addr(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
}

/// Make an IPv6 socket accept IPv4 too (`false`) or IPv6 only (`true`), whatever the sysctl says.
pub fn set_v6_only(fd: BorrowedFd<'_>, only: bool) -> io::Result<()> {
    set_int_option(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, libc::c_int::from(only))
}

/// Bind `fd` to `addr`.
pub fn bind(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<()> {
    let raw = RawAddr::new(addr);
    // SAFETY: `fd` is open; `raw` holds a sockaddr of exactly `raw.len()` bytes for the call.
    check(unsafe { libc::bind(fd.as_raw_fd(), raw.as_ptr(), raw.len()) })?;
    Ok(())
}

/// Start listening with up to `backlog` pending connections.
pub fn listen(fd: BorrowedFd<'_>, backlog: usize) -> io::Result<()> {
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    // SAFETY: listen takes no pointers; `fd` is open.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(())
}

/// Start connecting `fd` to `addr`: `Ok(true)` if connected already, `Ok(false)` if the
/// connection is in progress (wait until the socket is writable, then check its error).
pub fn connect(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<bool> {
    let raw = RawAddr::new(addr);
    // SAFETY: `fd` is open; `raw` holds a sockaddr of exactly `raw.len()` bytes for the call.
    match check(unsafe { libc::connect(fd.as_raw_fd(), raw.as_ptr(), raw.len()) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Block `signals` in the calling thread and return a non-blocking signalfd that reads them
/// (delivered to the process while no other thread takes them: a unikernel's one thread).
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero sigset_t is a valid value for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned here; the signal numbers come from libc's constants.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
    }
    // SAFETY: `set` is initialised; the old mask is not asked for (null).
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    // SAFETY: `set` is initialised; -1 asks for a new descriptor.
    let fd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by signalfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Read one signal from a signalfd made by [`signalfd`]: its number.
pub fn read_signal(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: an all-zero signalfd_siginfo is a valid value (plain integers).
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let len = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a valid, writable buffer of `len` bytes; `fd` is an open descriptor.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut info).cast(), len) };
    match usize::try_from(n) {
        Err(_) => Err(io::Error::last_os_error()),
        Ok(n) if n == len => Ok(libc::c_int::try_from(info.ssi_signo).unwrap_or(0)),
        Ok(_) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a short read from a signalfd")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_are_checked_before_the_kernel_sees_them() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsFd::as_fd(&f);
        for bad in ["", "0123456789abcdef", "a\0b"] {
            assert_eq!(
                tun_set_iff(fd, bad, true).unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_soft_file_limit_can_be_set_up_to_the_hard_one() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard);
        set_nofile_soft_limit(u64::MAX).unwrap();
        assert_eq!(nofile_limit().unwrap(), (hard, hard), "capped at the hard limit");
        set_nofile_soft_limit(soft).unwrap();
        assert_eq!(nofile_limit().unwrap(), (soft, hard));
    }

    #[test]
    fn addresses_reach_the_kernel_intact() {
        use std::os::fd::AsFd;
        let fd = socket(&"127.0.0.1:0".parse().unwrap(), SockType::Datagram).unwrap();
        bind(fd.as_fd(), &"127.0.0.1:0".parse().unwrap()).unwrap();
        let sock = std::net::UdpSocket::from(fd);
        assert_eq!(sock.local_addr().unwrap().ip(), std::net::Ipv4Addr::LOCALHOST);
    }
}
