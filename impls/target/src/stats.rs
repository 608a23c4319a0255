//! Counters a user can see: each layer (the NIC, the TCP/IP stack, the heap, the app's TLS and
//! HTTP) registers a group of named counters in the run's [`Counters`]; the run skeleton prints
//! them as one line at exit, every `--stats-interval SECONDS`, and when the user asks (SIGUSR1
//! on a host). A generic app registers its own groups through `t.counters()` without knowing
//! the target; the target registers those of the devices and stacks it builds.
//!
//! ```text
//! stats: heap.used_kib=1480 heap.size_kib=6912 net.rx_frames=2210 net.tx_frames=2304 net.rx_dropped=0
//!        net.tx_dropped=0 tcp.open=12 tcp.accepted=230 tcp.refused=0 tcp.retransmits=41
//!        tls.handshakes=230 tls.failed=0 tls.timed_out=0 http.1xx=0 http.2xx=228 http.3xx=0 http.4xx=2 http.5xx=0
//! ```
//! (one line; wrapped here).

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::Write as _;

/// Where one group writes its counters: `put(name, value)` for each.
pub struct Line<'a> {
    group: &'static str,
    out: &'a mut String,
}

impl Line<'_> {
    /// One counter: `group.name=value`.
    pub fn put(&mut self, name: &str, value: u64) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
        let _ = write!(self.out, "{}.{name}={value}", self.group);
    }
}

type Group = (&'static str, Box<dyn Fn(&mut Line<'_>)>);

/// The run's counters: groups registered by the target and the app, read when a line is due.
/// Cheap to clone (a shared handle). Reading them is off every data path, so a group is a
/// boxed closure over the counters it owns (cells, a stack handle), not a generic.
#[derive(Clone, Default)]
pub struct Counters {
    groups: Rc<RefCell<Vec<Group>>>,
}

impl core::fmt::Debug for Counters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names: Vec<&str> = self.groups.borrow().iter().map(|(n, _)| *n).collect();
        f.debug_struct("Counters").field("groups", &names).finish()
    }
}

impl Counters {
    /// Add the group `name` (`net`, `tcp`, `tls`, ...): `read` writes its counters when a line
    /// is printed.
    pub fn add(&self, name: &'static str, read: impl Fn(&mut Line<'_>) + 'static) {
        self.groups.borrow_mut().push((name, Box::new(read)));
    }

    /// Add the `net` (the device's frames, bytes and drops) and `tcp` (connections open,
    /// accepted and refused; retransmissions) groups of a `morgana-tcpip` stack: a target calls
    /// it for the stacks it builds.
    pub fn add_tcpip(&self, stack: &morgana_tcpip::Stack) {
        let s = stack.clone();
        self.add("net", move |l| {
            let n = s.counters().net;
            l.put("rx_frames", n.rx_frames);
            l.put("tx_frames", n.tx_frames);
            l.put("rx_bytes", n.rx_bytes);
            l.put("tx_bytes", n.tx_bytes);
            l.put("rx_dropped", n.rx_dropped);
            l.put("tx_dropped", n.tx_dropped);
        });
        let s = stack.clone();
        self.add("tcp", move |l| {
            let c = s.counters();
            l.put("open", c.open);
            l.put("accepted", c.accepted);
            l.put("refused", c.refused);
            l.put("retransmits", c.retransmits);
        });
    }

    /// Whether any group is registered.
    pub fn is_empty(&self) -> bool {
        self.groups.borrow().is_empty()
    }

    /// Every group's counters, in the order they were added: `group.name=value ...`.
    pub fn line(&self) -> String {
        let mut out = String::new();
        for (group, read) in self.groups.borrow().iter() {
            read(&mut Line { group, out: &mut out });
        }
        out
    }
}

/// A count of events, for a group's counters (`Cell<u64>` with a name that says what it is).
#[derive(Debug, Default)]
pub struct Count(core::cell::Cell<u64>);

impl Count {
    /// One more.
    pub fn add(&self) {
        self.0.set(self.0.get() + 1);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_print_in_order_as_group_dot_name() {
        let c = Counters::default();
        assert_eq!(c.line(), "");
        let hits = Rc::new(Count::default());
        c.add("tls", {
            let hits = hits.clone();
            move |l| l.put("handshakes", hits.get())
        });
        c.add("heap", |l| {
            l.put("used_kib", 3);
            l.put("size_kib", 8);
        });
        hits.add();
        hits.add();
        assert_eq!(c.line(), "tls.handshakes=2 heap.used_kib=3 heap.size_kib=8");
    }
}
