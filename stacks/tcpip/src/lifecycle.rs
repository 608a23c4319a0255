//! The lifecycle of TCP connections that the stack follows: how a reset is told from a
//! timeout, when a stalled connection is reset, dropped connections finishing their close, and
//! buffers that grow with the path and shrink back once the connection is quiet.

use alloc::vec::Vec;

use morgana::StackError;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};

use crate::config::Config;
use crate::stack::{Inner, smol_duration, zeroed};

/// Send our FIN. (A socket with data or a FIN unacknowledged once got a 5 s keep-alive here:
/// smoltcp 0.14 could leave it with no timer running. The fork fixes both ways that happened,
/// each with a packet-level test: `test_retransmit_timeout_into_a_closed_window_starts_zero_window_probes`
/// and `test_fast_retransmit_with_only_a_fin_outstanding_resends_the_fin`.)
pub(crate) fn close(s: &mut tcp::Socket<'_>) {
    s.close();
}

/// Where in a runner poll a TCP connection changed state: it tells a reset (a segment arrived)
/// from a timeout (a timer fired while we were sending).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ingress,
    Egress,
}

/// Whether a socket in `state` waits for the peer to acknowledge something (data or our FIN).
fn outstanding(s: &tcp::Socket<'_>, state: tcp::State) -> bool {
    use tcp::State::*;
    match state {
        Established | CloseWait => s.send_queue() > 0,
        FinWait1 | Closing | LastAck => true,
        _ => false,
    }
}

/// When a socket with something outstanding last made progress.
///
/// smoltcp's own timeout counts from the last segment received, idle or not, so it would kill
/// an idle connection on the next poll after the timeout, and reset instead of closing one
/// closed after such a pause. So established connections use it only with keep-alive (whose
/// answered probes keep that count fresh), and the stack measures stalls itself: a socket
/// with something outstanding whose queues and state do not move for `tcp_timeout` is reset.
#[derive(Clone, Copy)]
struct Progress {
    since: SmolInstant,
    mark: (usize, usize, tcp::State),
}

impl Progress {
    fn new(now: SmolInstant, s: &tcp::Socket<'_>) -> Self {
        Self { since: now, mark: (s.send_queue(), s.recv_queue(), s.state()) }
    }

    /// Note progress; whether `s` has been stuck with something outstanding for `timeout`.
    fn stalled(&mut self, now: SmolInstant, s: &tcp::Socket<'_>, timeout: Option<SmolDuration>) -> bool {
        let state = s.state();
        self.note(now, (s.send_queue(), s.recv_queue(), state), outstanding(s, state), timeout)
    }

    /// [`Progress::stalled`] with the socket's queues and state (`mark`) already read.
    fn note(
        &mut self,
        now: SmolInstant,
        mark: (usize, usize, tcp::State),
        outstanding: bool,
        timeout: Option<SmolDuration>,
    ) -> bool {
        if mark != self.mark || !outstanding {
            *self = Self { since: now, mark };
            return false;
        }
        timeout.is_some_and(|t| now >= self.since + t)
    }

    /// When it will have been stuck for `timeout`, if something is `outstanding`.
    fn deadline(&self, outstanding: bool, timeout: Option<SmolDuration>) -> Option<SmolInstant> {
        if outstanding { timeout.map(|t| self.since + t) } else { None }
    }
}

/// `s` made no progress for `timeout` with something outstanding: reset it.
#[cold]
#[inline(never)]
fn stall(s: &mut tcp::Socket<'_>, t: &mut Tracked, timeout: Option<SmolDuration>) {
    log::debug!("TCP connection to {:?} stalled for {:?}: reset", s.remote_endpoint(), timeout);
    s.abort();
    t.error = Some(StackError::TimedOut);
}

/// A TCP socket owned by a live connection (or a connect in progress): its last seen state and
/// why it failed, if it did.
pub(crate) struct Tracked {
    pub handle: SocketHandle,
    state: tcp::State,
    pub error: Option<StackError>,
    progress: Progress,
    /// `recv_total` and the bytes the app had read when the receive buffer last grew (or was
    /// last found big enough).
    rx_epoch: (u64, u64),
    /// The app found the send buffer full since the runner last looked.
    tx_full: bool,
    /// `recv_total` when the connection last moved data (bytes arrived, or either buffer held
    /// some), and when that was: grown buffers shrink after [`SHRINK_AFTER`] of quiet.
    quiet: (u64, SmolInstant),
}

impl Tracked {
    /// The socket went from `self.state` to `state`; `phase` tells a reset or a refusal (a
    /// segment closed it) from a timeout (a timer did).
    fn changed(&mut self, state: tcp::State, phase: Phase) {
        if state == tcp::State::Closed && self.error.is_none() {
            use tcp::State::*;
            self.error = match (phase, self.state) {
                // The normal ends of a connection.
                (_, TimeWait | LastAck | Closing | Closed | Listen) => None,
                (Phase::Ingress, SynSent) => Some(StackError::ConnectionRefused),
                (Phase::Ingress, _) => Some(StackError::ConnectionReset),
                (Phase::Egress, _) => Some(StackError::TimedOut),
            };
        }
        self.state = state;
    }
}

/// The configured TCP timers, converted to smoltcp's units once rather than on every poll.
#[derive(Clone, Copy)]
pub(crate) struct Timers {
    /// A connection with something outstanding and no progress for this long is reset.
    timeout: Option<SmolDuration>,
    /// FIN-WAIT-2 of a dropped connection lasts this long.
    linger: SmolDuration,
    /// How long a dropped connection may make no progress.
    orphan_timeout: SmolDuration,
}

impl Timers {
    pub(crate) fn new(c: &Config) -> Self {
        Self {
            timeout: c.tcp_timeout.map(smol_duration),
            linger: smol_duration(c.close_linger),
            // How long a dropped connection may make no progress: the connections' timeout,
            // or the FIN-WAIT-2 linger if there is none (a dropped connection must end some day).
            orphan_timeout: smol_duration(c.tcp_timeout.unwrap_or(c.close_linger)),
        }
    }
}

/// A dropped connection finishing its close.
pub(crate) struct Orphan {
    handle: SocketHandle,
    /// When it was dropped: FIN-WAIT-2 lasts `close_linger` from here.
    dropped: SmolInstant,
    progress: Progress,
}

impl Inner {
    /// Follow `handle` as a live connection.
    pub fn track(&mut self, handle: SocketHandle) {
        let s = self.sockets.get::<tcp::Socket>(handle);
        let progress = Progress::new(self.now, s);
        let rx_epoch = (s.recv_total(), s.recv_total() - s.recv_queue() as u64);
        self.tracked.push(Tracked {
            handle,
            state: s.state(),
            error: None,
            progress,
            rx_epoch,
            tx_full: false,
            quiet: (s.recv_total(), self.now),
        });
    }

    /// The handshake on `handle` is done: from now on the connection's timers apply (see
    /// [`Progress`] for why smoltcp's timeout stays off without keep-alive).
    pub fn established(&mut self, handle: SocketHandle) {
        let (timeout, keep_alive) = (self.config.tcp_timeout, self.config.tcp_keep_alive);
        let s = self.sockets.get_mut::<tcp::Socket>(handle);
        s.set_timeout(keep_alive.and(timeout).map(smol_duration));
        s.set_keep_alive(keep_alive.map(smol_duration));
    }

    /// The app found the send buffer of `handle` full: a hint that it may need to grow.
    pub fn send_buffer_full(&mut self, handle: SocketHandle) {
        if let Some(t) = self.tracked.iter_mut().find(|t| t.handle == handle) {
            t.tx_full = true;
        }
    }

    /// Why the connection on `handle` failed, if it did.
    pub fn error_of(&self, handle: SocketHandle) -> Option<StackError> {
        self.tracked.iter().find(|t| t.handle == handle).and_then(|t| t.error)
    }

    /// After ingress: note state changes (a close here came from a segment: a reset or a
    /// refusal).
    pub(crate) fn observe_ingress(&mut self) {
        for t in &mut self.tracked {
            let state = self.sockets.get::<tcp::Socket>(t.handle).state();
            if state != t.state {
                t.changed(state, Phase::Ingress);
            }
        }
    }

    /// After egress (so that what was just queued has been sent, and a probe does not go out
    /// needlessly beside it): reset connections stalled for the timeout, give those with
    /// something outstanding the short keep-alive, note state changes (a close here is a
    /// timeout). Returns when the next stall check (or shrink of grown buffers) is due.
    pub(crate) fn observe_egress(&mut self) -> Option<SmolInstant> {
        let Timers { timeout, .. } = self.timers;
        let now = self.now;
        let mut next: Option<SmolInstant> = None;
        for t in &mut self.tracked {
            let s = self.sockets.get_mut::<tcp::Socket>(t.handle);
            let mut state = s.state();
            let mut outstanding = outstanding(s, state);
            if t.error.is_none()
                && t.progress.note(now, (s.send_queue(), s.recv_queue(), state), outstanding, timeout)
            {
                stall(s, t, timeout);
                state = s.state();
                outstanding = self::outstanding(s, state);
            }
            if matches!(state, tcp::State::Established | tcp::State::CloseWait)
                && let Some(at) = tune_buffers(s, t, &self.config, now)
            {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            if state != t.state {
                t.changed(state, Phase::Egress);
            }
            if t.error.is_none()
                && let Some(at) = t.progress.deadline(outstanding, timeout)
            {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// The connection on `handle` was dropped: close it (reset it if data was left unread, as
    /// Linux does) and let the runner remove it once closed.
    pub fn release_tcp(&mut self, handle: SocketHandle) {
        self.tracked.retain(|t| t.handle != handle);
        let s = self.sockets.get_mut::<tcp::Socket>(handle);
        if s.recv_queue() > 0 {
            s.abort();
        } else {
            close(s);
        }
        let progress = Progress::new(self.now, self.sockets.get::<tcp::Socket>(handle));
        self.orphans.push(Orphan { handle, dropped: self.now, progress });
        self.wake_runner();
    }

    /// Remove dropped connections that have finished closing; returns when the next stall check
    /// of those left is due.
    #[inline(never)]
    pub(crate) fn reap_orphans(&mut self) -> Option<SmolInstant> {
        let now = self.now;
        let Timers { linger, orphan_timeout, .. } = self.timers;
        let timeout = Some(orphan_timeout);
        let sockets = &mut self.sockets;
        let retired = &mut self.counted.retransmits_retired;
        let mut next: Option<SmolInstant> = None;
        self.orphans.retain_mut(|o| {
            let s = sockets.get_mut::<tcp::Socket>(o.handle);
            let done = match s.state() {
                tcp::State::TimeWait => true,
                // Closed and its RST (if any) sent.
                tcp::State::Closed => s.remote_endpoint().is_none(),
                // Data that nobody will read: reset, as Linux does on close. FIN-WAIT-2 (the
                // peer acknowledged our FIN but never sends its own) has no timer of its own.
                _ if s.recv_queue() > 0
                    || (s.state() == tcp::State::FinWait2 && now >= o.dropped + linger)
                    || o.progress.stalled(now, s, timeout) =>
                {
                    s.abort();
                    false
                }
                _ => false,
            };
            if done {
                *retired += s.retransmits();
                sockets.remove(o.handle);
            } else if let Some(at) = o.progress.deadline(outstanding(s, s.state()), timeout) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            !done
        });
        next
    }
}

/// How long a connection must move no data before buffers that grew shrink back to their
/// initial sizes.
const SHRINK_AFTER: SmolDuration = SmolDuration::from_secs(1);

/// Grow the buffers of a connection that has outgrown them (see [`Config::tcp_buffer_max`]),
/// and shrink grown ones back to their initial sizes once the connection has moved no
/// data for [`SHRINK_AFTER`]; returns when that is due, if a buffer is larger than its initial
/// size.
fn tune_buffers(
    s: &mut tcp::Socket<'_>,
    t: &mut Tracked,
    c: &Config,
    now: SmolInstant,
) -> Option<SmolInstant> {
    let max = c.tcp_buffer_max;
    let cap = s.recv_capacity();
    let total = s.recv_total();
    let queued = s.send_queue();
    if total != t.quiet.0 || queued > 0 || s.recv_queue() > 0 {
        t.quiet = (total, now);
    }
    let quiet = now >= t.quiet.1 + SHRINK_AFTER;
    if cap < max && total - t.rx_epoch.0 >= (cap / 2) as u64 {
        // Half a buffer's worth arrived since the last look: if the app read at least half of
        // that (it keeps up), a larger window may carry more. Half, not all: the window must
        // grow ahead of a sender in slow start, which doubles every round trip; waiting for a
        // whole buffer held it to a doubling every two (at 100 ms, 8 MiB took twice as long).
        let read = total - s.recv_queue() as u64;
        if read - t.rx_epoch.1 >= (cap / 4) as u64
            && let Some(buf) = spare(c, (2 * cap).min(max))
        {
            s.grow_rx_buffer(buf);
        }
        t.rx_epoch = (total, read);
    } else if quiet
        && cap > c.tcp_rx_buffer
        && let Some(buf) = zeroed(c.tcp_rx_buffer.max(1))
        && s.shrink_rx_buffer(buf)
    {
        // Empty and quiet (the peer has nothing in flight): the window shrinks with it, and
        // grows again as a new transfer asks (smoltcp announces the smaller window at once).
        t.rx_epoch = (total, total);
    }
    let cap = s.send_capacity();
    let full = core::mem::take(&mut t.tx_full);
    if cap < max && full && s.congestion_window() >= cap / 2 {
        if let Some(buf) = spare(c, (2 * cap).min(max)) {
            s.grow_tx_buffer(buf);
        }
    } else if quiet
        && queued == 0
        && cap > c.tcp_tx_buffer
        && let Some(buf) = zeroed(c.tcp_tx_buffer.max(1))
    {
        s.shrink_tx_buffer(buf);
    }
    let grown = s.recv_capacity() > c.tcp_rx_buffer || s.send_capacity() > c.tcp_tx_buffer;
    let at = t.quiet.1 + SHRINK_AFTER;
    (grown && at > now).then_some(at)
}

/// `n` zero bytes for a buffer, if the heap can give them and keep the reserve free.
fn spare(c: &Config, n: usize) -> Option<Vec<u8>> {
    let reserve = zeroed(c.memory_reserve)?;
    let buf = zeroed(n)?;
    drop(reserve);
    Some(buf)
}
