use super::*;

use crate::socket::tcp::Socket;

impl InterfaceInner {
    pub(crate) fn process_tcp<'frame>(
        &mut self,
        sockets: &mut SocketSet,
        handled_by_raw_socket: bool,
        ip_repr: IpRepr,
        ip_payload: &'frame [u8],
    ) -> Option<Packet<'frame>> {
        let (src_addr, dst_addr) = (ip_repr.src_addr(), ip_repr.dst_addr());

        // Per RFC 1122 §3.2.1.3, the unspecified address must never appear as a source
        // or destination in any IP datagram. Drop such TCP segments early to avoid
        // creating sockets with unspecified peers (which would later panic on egress).
        // This is not done at the iface level because it might be useful with
        // UDP or raw sockets, but it's definitely not useful for TCP.
        if src_addr.is_unspecified() || dst_addr.is_unspecified() {
            return None;
        }
        // TCP is unicast only (RFC 1122 4.2.3.10: a SYN to a broadcast or multicast address is
        // discarded), and a segment for an address the interface does not have is no one's
        // here: answering either with a RST (or a listener's SYN|ACK) sent it from an address
        // that is not ours, such as 255.255.255.255.
        if !self.has_ip_addr(dst_addr) {
            net_debug!(
                "dropping a TCP segment to {}, not an address of ours",
                dst_addr
            );
            return None;
        }

        let tcp_packet = check!(TcpPacket::new_checked(ip_payload));
        let tcp_repr = check!(TcpRepr::parse(
            &tcp_packet,
            &src_addr,
            &dst_addr,
            &self.caps.checksum
        ));

        // A segment goes to the connection with its 4-tuple first, then to a socket listening on
        // its port, then to one listening with SYN cookies, and last to one that drops SYNs
        // (`Socket::set_syn_drop`) (as in Linux, which finds the
        // established socket first and answers by cookie only when its SYN queue is full).
        // Otherwise a listening socket earlier in the set would take a late duplicate SYN of a
        // live connection, or one with cookies would answer every SYN without options.
        for pass in 0..4 {
            for tcp_socket in sockets
                .items_mut()
                .filter_map(|i| Socket::downcast_mut(&mut i.socket))
            {
                let rank = match (
                    tcp_socket.remote_endpoint(),
                    tcp_socket.syn_cookies(),
                    tcp_socket.syn_drop(),
                ) {
                    (Some(_), _, _) => 0,
                    (None, false, false) => 1,
                    (None, true, false) => 2,
                    (None, _, true) => 3,
                };
                if rank == pass && tcp_socket.accepts(self, &ip_repr, &tcp_repr) {
                    return tcp_socket
                        .process(self, &ip_repr, &tcp_repr)
                        .map(|(ip, tcp)| Packet::new(ip, IpPayload::Tcp(tcp)));
                }
            }
        }

        if tcp_repr.control == TcpControl::Rst
            || ip_repr.dst_addr().is_unspecified()
            || ip_repr.src_addr().is_unspecified()
            || handled_by_raw_socket
        {
            // Never reply to a TCP RST packet with another TCP RST packet.
            // Never send a TCP RST packet with unspecified addresses.
            // Never send a TCP RST when packet has been handled by raw socket.
            None
        } else {
            // The packet wasn't handled by a socket, send a TCP RST packet.
            let (ip, tcp) = tcp::Socket::rst_reply(&ip_repr, &tcp_repr);
            Some(Packet::new(ip, IpPayload::Tcp(tcp)))
        }
    }
}
