//! UDP sockets.

use alloc::vec;
use core::future::poll_fn;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use core::task::Poll;

use morgana::stack::{StackError, UdpStack};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{Socket, udp};
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::stack::{Inner, Stack};

/// A bound UDP socket. Dropping it unbinds the port.
pub struct UdpSocket {
    stack: Stack,
    handle: SocketHandle,
    port: u16,
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.stack.borrow().sockets.remove(self.handle);
    }
}

fn udp_port_in_use(inner: &Inner, port: u16) -> bool {
    inner.sockets.iter().any(|(_, s)| matches!(s, Socket::Udp(u) if u.endpoint().port == port))
}

impl UdpStack for Stack {
    type Socket = UdpSocket;

    async fn bind(&self, port: u16) -> Result<UdpSocket, StackError> {
        let mut inner = self.borrow();
        let port = match port {
            0 => inner.ephemeral_port(udp_port_in_use)?,
            p if udp_port_in_use(&inner, p) => return Err(StackError::AddrInUse),
            p => p,
        };
        let (n, bytes) = (inner.config.udp_packets.max(1), inner.config.udp_buffer.max(1));
        let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; n], vec![0; bytes]);
        let mut s = udp::Socket::new(buffer(), buffer());
        s.bind(port).map_err(|_| StackError::InvalidInput)?;
        let handle = inner.sockets.add(s);
        Ok(UdpSocket { stack: self.clone(), handle, port })
    }
}

impl morgana::stack::UdpSocket for UdpSocket {
    async fn send_to(&mut self, data: &[u8], remote: SocketAddr) -> Result<(), StackError> {
        if remote.port() == 0 {
            return Err(StackError::InvalidInput);
        }
        let to = IpEndpoint::from(remote);
        {
            let inner = self.stack.borrow();
            inner.check_route(to.addr)?;
            let header = match to.addr {
                IpAddress::Ipv4(_) => 20 + 8,
                IpAddress::Ipv6(_) => 40 + 8,
            };
            // No IP fragmentation: a datagram must fit one frame (and the send buffer).
            let max = inner.ip_mtu.saturating_sub(header).min(inner.config.udp_buffer);
            if data.len() > max {
                log::debug!("UDP datagram of {} bytes is over the {max} that fit one packet", data.len());
                return Err(StackError::InvalidInput);
            }
        }
        poll_fn(|cx| {
            let mut inner = self.stack.borrow();
            let s = inner.sockets.get_mut::<udp::Socket>(self.handle);
            match s.send_slice(data, to) {
                Ok(()) => {
                    inner.wake_runner();
                    Poll::Ready(Ok(()))
                }
                Err(udp::SendError::BufferFull) => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Err(udp::SendError::Unaddressable) => Poll::Ready(Err(StackError::InvalidInput)),
            }
        })
        .await
    }

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), StackError> {
        poll_fn(|cx| {
            let mut inner = self.stack.borrow();
            let s = inner.sockets.get_mut::<udp::Socket>(self.handle);
            match s.recv() {
                Ok((payload, meta)) => {
                    let n = payload.len().min(buf.len());
                    buf[..n].copy_from_slice(&payload[..n]);
                    Poll::Ready(Ok((n, SocketAddr::from(meta.endpoint))))
                }
                Err(_) => {
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    fn local_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), self.port)
    }
}

impl UdpSocket {
    /// The port it is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }
}
