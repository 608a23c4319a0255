//! Addresses that change: DHCPv4 leases (and the DNS servers they bring), the link going up
//! and down, and the tasks waiting for an address.

use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::Ipv4Addr;
use core::task::Poll;

use morgana::StackError;
use smoltcp::socket::{dhcpv4, dns};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{IpAddress, IpCidr, Ipv4Cidr};

use crate::stack::{Inner, Stack};

/// With DHCP, how long a connect or a name lookup waits for the first lease before it fails
/// (three of smoltcp's 10 s DISCOVER retries).
const LEASE_WAIT: SmolDuration = SmolDuration::from_secs(30);

impl Inner {
    /// With DHCP and no lease yet: when waiting for one stops (see [`LEASE_WAIT`]).
    pub(crate) fn lease_deadline(&self) -> Option<SmolInstant> {
        let waiting = self.dhcp.is_some() && self.iface.ipv4_addr().is_none() && !self.lease_overdue;
        waiting.then(|| self.lease_asked + LEASE_WAIT)
    }

    pub(crate) fn set_ipv4(&mut self, cidr: Option<Ipv4Cidr>, gateway: Option<Ipv4Addr>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_)));
            if let Some(c) = cidr {
                // Room was made by removing the old IPv4 address. First, as smoltcp looks
                // addresses up in order for every packet, and most traffic is IPv4.
                let _ = addrs.insert(0, IpCidr::Ipv4(c));
            }
        });
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        if let Some(gw) = gateway {
            let _ = routes.add_default_ipv4_route(gw);
        }
        for w in self.config_waiters.drain(..) {
            w.wake();
        }
    }

    pub(crate) fn dns_server_list(&self) -> Vec<IpAddress> {
        let configured = self.config.dns_servers.iter().map(|&a| IpAddress::from(a));
        configured.chain(self.learned_dns.iter().map(|&a| IpAddress::Ipv4(a))).collect()
    }

    pub(crate) fn set_dns_servers(&mut self, learned: &[Ipv4Addr]) {
        self.learned_dns = learned.to_vec();
        let Some(h) = self.dns else { return };
        let servers = self.dns_server_list();
        self.sockets.get_mut::<dns::Socket>(h).update_servers(&servers);
    }

    /// The link went up or down (with DHCP, a link that comes up asks for a lease afresh).
    #[cold]
    #[inline(never)]
    pub(crate) fn link_changed(&mut self, up: bool) {
        self.link_up = up;
        log::info!("link {}", if up { "up" } else { "down" });
        if let (true, Some(h)) = (up, self.dhcp) {
            self.sockets.get_mut::<dhcpv4::Socket>(h).reset();
            (self.lease_asked, self.lease_overdue) = (self.now, false);
        }
    }

    /// With DHCP: take the client's news, and give up waiting for a first lease once it is
    /// overdue. Whether the addresses changed.
    #[inline(never)]
    pub(crate) fn poll_lease(&mut self) -> bool {
        let reconfigured = self.poll_dhcp();
        if self.lease_deadline().is_some_and(|at| self.now >= at) {
            self.lease_overdue = true;
            log::warn!(
                "no DHCP lease after {} s: is a DHCP server on the link? (still asking)",
                LEASE_WAIT.secs()
            );
            for w in self.config_waiters.drain(..) {
                w.wake();
            }
        }
        reconfigured
    }

    pub(crate) fn poll_dhcp(&mut self) -> bool {
        let Some(h) = self.dhcp else { return false };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return false,
            Some(dhcpv4::Event::Deconfigured) => None,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router, c.dns_servers.clone())),
        };
        match event {
            Some((addr, router, dns)) => {
                log::info!(
                    "DHCP lease: {addr}{}{}",
                    router.map(|r| alloc::format!(" via {r}")).unwrap_or_default(),
                    if dns.is_empty() {
                        alloc::string::String::new()
                    } else {
                        alloc::format!(", DNS {dns:?}")
                    }
                );
                self.set_ipv4(Some(addr), router);
                self.set_dns_servers(&dns);
            }
            // smoltcp also reports this at start, before any lease.
            None if self.iface.ipv4_addr().is_none() => return false,
            None => {
                log::warn!("DHCP lease lost: no IPv4 address until a server answers");
                (self.lease_asked, self.lease_overdue) = (self.now, false);
                self.set_ipv4(None, None);
                self.set_dns_servers(&[]);
            }
        }
        true
    }
}

impl Stack {
    /// Wait until the interface has an IPv4 address (at once with a static one; after the
    /// first lease with DHCP) and return it.
    pub async fn wait_ipv4(&self) -> Ipv4Addr {
        poll_fn(|cx| match self.ipv4() {
            Some((a, _)) => Poll::Ready(a),
            None => {
                let mut inner = self.borrow();
                if !inner.config_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    inner.config_waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }

    /// With DHCP, wait for the first lease (at once without DHCP or with a lease); `TimedOut`
    /// if none came within 30 s of asking. Connections and lookups wait here, so an app may
    /// use the stack as soon as it has it, as with a static address.
    pub(crate) async fn wait_lease(&self) -> Result<(), StackError> {
        poll_fn(|cx| {
            let mut inner = self.borrow();
            if inner.dhcp.is_none() || inner.iface.ipv4_addr().is_some() {
                Poll::Ready(Ok(()))
            } else if inner.lease_overdue {
                Poll::Ready(Err(StackError::TimedOut))
            } else {
                if !inner.config_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    inner.config_waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}
