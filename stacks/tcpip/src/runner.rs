//! The task that drives the interface: receive, transmit, run the timers, and sleep until
//! the device or the next timer wakes it.

use core::convert::Infallible;
use core::future::poll_fn;
use core::task::{Context, Poll};

use morgana::Clock;
use morgana::net::{LinkState, Net};
use smoltcp::iface::{PollIngressSingleResult, PollResult};
use smoltcp::phy::DeviceCapabilities;
use smoltcp::time::Instant as SmolInstant;

use crate::device::Adapter;
use crate::stack::{Stack, smol_instant};

/// Frames processed per runner poll before it yields to other tasks (and polls again at once):
/// a flood of frames must not starve the app.
const INGRESS_BUDGET: usize = 64;

fn morgana_instant(at: SmolInstant) -> morgana::Instant {
    morgana::Instant::from_micros(u64::try_from(at.total_micros()).unwrap_or(0))
}

/// The task that drives the interface: run it beside the app (`spawn(runner.run())`). It alone
/// owns the `Net`.
pub struct Runner<N, C> {
    pub(crate) net: N,
    pub(crate) clock: C,
    pub(crate) caps: DeviceCapabilities,
    pub(crate) stack: Stack,
}

impl<N: Net, C: Clock> Runner<N, C> {
    /// A handle on the stack this runner drives.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The device (e.g. to read its counters).
    pub fn net(&self) -> &N {
        &self.net
    }

    /// Drive the interface forever: receive, transmit, run timers, wake the tasks waiting on
    /// sockets. It sleeps until the device or the next protocol timer wakes it.
    pub async fn run(mut self) -> ! {
        let never: Infallible = poll_fn(|cx| {
            self.poll(cx);
            Poll::Pending
        })
        .await;
        match never {}
    }

    /// One pass: everything that can be done now, then arm the wake-ups.
    pub fn poll(&mut self, cx: &mut Context<'_>) {
        let mut inner = self.stack.borrow();
        let inner = &mut *inner;
        if !inner.runner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            inner.runner = Some(cx.waker().clone());
        }
        // From here on, what the app does must wake the runner again.
        inner.runner_woken.set(false);
        let now = smol_instant(self.clock.now());
        inner.now = now;

        let up = self.net.link_state(cx) == LinkState::Up;
        if up != inner.link_up {
            inner.link_changed(up);
        }

        inner.counted.net = self.net.stats();
        let mut dev = Adapter { net: &mut self.net, cx, caps: &self.caps, tx_blocked: false };
        let mut budget = INGRESS_BUDGET;
        let mut changed = false;
        while budget > 0 {
            match inner.iface.poll_ingress_single(now, &mut dev, &mut inner.sockets) {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    changed = true;
                    if !inner.listeners.is_empty() {
                        // Before the next frame, which may be the next cookie of a burst.
                        inner.take_cookie_connections();
                    }
                }
            }
            budget -= 1;
        }
        if changed {
            inner.observe_ingress();
        }
        while inner.iface.poll_egress(now, &mut dev, &mut inner.sockets) == PollResult::SocketStateChanged {}
        let tx_blocked = dev.tx_blocked;
        // A timeout closes a socket without a state-change report, so look every time.
        let stall = inner.observe_egress();
        let reconfigured = inner.dhcp.is_some() && inner.poll_lease();
        let orphans = if inner.orphans.is_empty() { None } else { inner.reap_orphans() };
        let relisten = if inner.listeners.is_empty() { None } else { inner.tend_listeners() };

        let waker = cx.waker();
        if budget == 0 || reconfigured {
            // More frames may be queued, or new addresses need a pass: yield, then go on.
            inner.wake_runner();
        } else if let Some(at) =
            [inner.iface.poll_at(now, &inner.sockets), stall, orphans, relisten, inner.lease_deadline()]
                .into_iter()
                .flatten()
                .min()
        {
            if at > now {
                self.clock.wake_at(morgana_instant(at), waker);
            } else if !tx_blocked {
                inner.wake_runner();
            }
        }
    }
}
