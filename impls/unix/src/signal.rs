//! Signals the user sends a running program: SIGUSR1 asks for the counters now; SIGTERM and
//! SIGINT (Ctrl-C) stop it, after it prints them. Read through a signalfd in the event loop,
//! so no handler runs between two instructions of the program.

use std::os::fd::{AsFd, OwnedFd};
use std::task::{Context, Poll};

use morgana_target::{StatsRequest, StatsRequests};

use crate::reactor::Async;
use crate::sys;

/// The signals that ask for the counters, or for the counters and the end.
pub struct Signals {
    io: Async<OwnedFd>,
    failed: bool,
}

impl Signals {
    /// Take SIGUSR1, SIGTERM and SIGINT from now on (the calling thread blocks them, so they
    /// reach the descriptor instead of their default action).
    pub fn new() -> std::io::Result<Self> {
        let fd = sys::signalfd(&[libc::SIGUSR1, libc::SIGTERM, libc::SIGINT])?;
        Ok(Self { io: Async::new(fd)?, failed: false })
    }
}

impl StatsRequests for Signals {
    fn poll_request(&mut self, cx: &mut Context<'_>) -> Poll<StatsRequest> {
        if self.failed {
            return Poll::Pending;
        }
        match self.io.poll_read_with(cx, |fd| sys::read_signal(fd.as_fd())) {
            Poll::Ready(Ok(libc::SIGUSR1)) => Poll::Ready(StatsRequest::Now),
            Poll::Ready(Ok(signal)) => Poll::Ready(StatsRequest::Exit(128u8.saturating_add(signal as u8))),
            Poll::Ready(Err(e)) => {
                log::warn!("cannot read signals any more (SIGUSR1, SIGTERM): {e}");
                self.failed = true;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
