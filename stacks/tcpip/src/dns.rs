//! Name resolution with smoltcp's DNS socket.

use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::IpAddr;
use core::task::Poll;

use morgana::stack::{Resolver, StackError};
use smoltcp::socket::dns::{self, GetQueryResultError, QueryHandle, StartQueryError};
use smoltcp::time::Duration;
use smoltcp::wire::DnsQueryType;

use crate::stack::Stack;

/// smoltcp gives up on a query after 10 s without an answer and reports it like a negative
/// answer; a failure that late is a timeout.
const GAVE_UP_AFTER: Duration = Duration::from_secs(9);

/// A query in flight; dropping it (a caller's timeout) frees its slot.
struct Query {
    stack: Stack,
    handle: Option<QueryHandle>,
}

impl Drop for Query {
    fn drop(&mut self) {
        let mut inner = self.stack.borrow();
        if let (Some(q), Some(h)) = (self.handle.take(), inner.dns) {
            inner.sockets.get_mut::<dns::Socket>(h).cancel_query(q);
        }
    }
}

impl Query {
    fn start(stack: &Stack, name: &str, kind: DnsQueryType) -> Result<Self, StackError> {
        let mut guard = stack.borrow();
        let inner = &mut *guard;
        let h = inner.dns_socket();
        let socket = inner.sockets.get_mut::<dns::Socket>(h);
        let q = socket.start_query(inner.iface.context(), name, kind).map_err(|e| match e {
            StartQueryError::NoFreeSlot => StackError::NoResources,
            StartQueryError::InvalidName | StartQueryError::NameTooLong => StackError::InvalidInput,
        })?;
        inner.wake_runner();
        Ok(Self { stack: stack.clone(), handle: Some(q) })
    }

    /// The addresses found, or `None` if the query failed.
    async fn result(mut self) -> Option<Vec<IpAddr>> {
        poll_fn(|cx| {
            let mut guard = self.stack.borrow();
            let inner = &mut *guard;
            let (Some(q), Some(h)) = (self.handle, inner.dns) else { return Poll::Ready(None) };
            let socket = inner.sockets.get_mut::<dns::Socket>(h);
            match socket.get_query_result(q) {
                Err(GetQueryResultError::Pending) => {
                    socket.register_query_waker(q, cx.waker());
                    Poll::Pending
                }
                // Either way smoltcp freed the slot.
                Ok(addrs) => {
                    self.handle = None;
                    Poll::Ready(Some(addrs.iter().map(|&a| IpAddr::from(a)).collect()))
                }
                Err(GetQueryResultError::Failed) => {
                    self.handle = None;
                    Poll::Ready(None)
                }
            }
        })
        .await
    }
}

impl Resolver for Stack {
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(alloc::vec![ip]);
        }
        // With DHCP the lease may bring the servers, and queries need its address anyway.
        if let Err(e) = self.wait_lease().await {
            log::warn!("cannot resolve {name}: no DHCP lease yet, so no address and no DNS server");
            return Err(e);
        }
        if self.dns_servers().is_empty() {
            log::warn!("cannot resolve {name}: no DNS server (pass --dns-server ADDR or use --dhcp)");
            return Err(StackError::NoRoute);
        }
        let started = self.borrow().now;
        // Both families at once: smoltcp runs the two queries concurrently.
        let v4 = Query::start(self, name, DnsQueryType::A)?;
        let v6 = Query::start(self, name, DnsQueryType::Aaaa)?;
        let (v4, v6) = (v4.result().await, v6.result().await);
        let failed = v4.is_none() && v6.is_none();
        let addrs: Vec<IpAddr> = v4.into_iter().chain(v6).flatten().collect();
        if !addrs.is_empty() {
            return Ok(addrs);
        }
        if failed && self.borrow().now - started >= GAVE_UP_AFTER {
            return Err(StackError::TimedOut);
        }
        Err(StackError::NameNotFound)
    }
}
