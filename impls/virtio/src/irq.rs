//! Device interrupts and the park hook.
//!
//! An interrupt handler only records which line fired (and masks it: virtio lines are
//! level-triggered and stay up until the device is acknowledged). [`HaltPark`] hands each fired
//! line to the devices on it and wakes their tasks; a device, polled by its task, acknowledges
//! itself and unmasks its line ([`IrqLine::service`]) before looking at its queues, so nothing
//! that completes after the look goes unnoticed.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::task::Waker;

use morgana::Instant;
use morgana_rt::{Park, Stalled, TimeSource};

use crate::sys::{apic, cpu};
use crate::time::{KernelTime, Scale};

struct Line {
    gsi: u32,
    fired: bool,
    waker: Option<Waker>,
}

/// The interrupt lines devices listen on.
#[derive(Clone, Default)]
pub struct Irqs {
    lines: Rc<RefCell<Vec<Line>>>,
}

/// One device's interrupt line.
pub struct IrqLine {
    irqs: Irqs,
    index: usize,
    gsi: u32,
}

impl Irqs {
    /// Listen on `gsi`: route it through the IOAPIC to its vector.
    pub fn line(&self, gsi: u32) -> Result<IrqLine, String> {
        if !apic::route(gsi) {
            return Err(alloc::format!("interrupt line {gsi} has no IOAPIC pin"));
        }
        let mut lines = self.lines.borrow_mut();
        lines.push(Line { gsi, fired: false, waker: None });
        Ok(IrqLine { irqs: self.clone(), index: lines.len() - 1, gsi })
    }

    /// Whether any device listens (then waiting without a timer is not a deadlock).
    pub fn any(&self) -> bool {
        !self.lines.borrow().is_empty()
    }

    /// Mark every line in `pending` (bit `g` = GSI `g`) fired and wake its device's task.
    fn dispatch(&self, pending: u64) {
        if pending == 0 {
            return;
        }
        let wakers: Vec<Waker> = self
            .lines
            .borrow_mut()
            .iter_mut()
            .filter(|l| l.gsi < 64 && pending & (1 << l.gsi) != 0)
            .filter_map(|l| {
                l.fired = true;
                l.waker.clone()
            })
            .collect();
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl morgana_virtio_drivers::Interrupt for IrqLine {
    /// Register `waker` for the next interrupt; if the line fired since the last call, run
    /// `ack` (acknowledge the device) and let the line interrupt again.
    fn service(&self, waker: &Waker, ack: impl FnOnce()) {
        let fired = {
            let mut lines = self.irqs.lines.borrow_mut();
            let line = &mut lines[self.index];
            match &line.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => line.waker = Some(waker.clone()),
            }
            core::mem::replace(&mut line.fired, false)
        };
        if fired {
            ack();
            // Another device may share the line: unmasking while it still asserts just fires
            // again, and that device is acknowledged on its own poll.
            apic::unmask(self.gsi);
        }
    }
}

impl IrqLine {
    /// The GSI.
    pub fn gsi(&self) -> u32 {
        self.gsi
    }
}

/// How the local APIC timer is armed.
#[derive(Debug, Clone, Copy)]
pub enum Timer {
    /// TSC-deadline mode: arm with the TSC value of the deadline.
    TscDeadline,
    /// One-shot mode with a calibrated count rate.
    OneShot(Scale),
}

/// Parks the CPU with `hlt` until an interrupt or the next timer deadline.
pub struct HaltPark {
    time: KernelTime,
    irqs: Irqs,
    timer: Timer,
}

impl HaltPark {
    /// A park over `time`, waking for `irqs` and arming `timer`.
    pub fn new(time: KernelTime, irqs: Irqs, timer: Timer) -> Self {
        Self { time, irqs, timer }
    }

    fn arm(&self, at: Instant, now: Instant) {
        match self.timer {
            Timer::TscDeadline => apic::arm_deadline(self.time.tsc_at(at)),
            Timer::OneShot(scale) => apic::arm_oneshot(scale.ticks((at - now).as_nanos() as u64)),
        }
    }

    fn dispatch(&self) {
        let (pending, _timer) = apic::take_pending();
        self.irqs.dispatch(pending);
    }
}

impl Park for HaltPark {
    fn park(&mut self, deadline: Option<Instant>) -> Result<(), Stalled> {
        if crate::sys::boot::stack_overflowed() {
            panic!(
                "stack overflow: the app used more than the {} KiB boot stack",
                crate::sys::boot::STACK_SIZE / 1024
            );
        }
        cpu::cli();
        // With interrupts off nothing can fire between this check and `sti; hlt`, whose
        // one-instruction interrupt shadow makes the halt itself the first thing interrupted.
        if apic::any_pending() {
            cpu::sti();
            self.dispatch();
            return Ok(());
        }
        let now = self.time.now();
        match deadline {
            Some(at) if at <= now => {
                cpu::sti();
                return Ok(());
            }
            Some(at) => self.arm(at, now),
            None if !self.irqs.any() => {
                cpu::sti();
                return Err(Stalled::Deadlock { at: now });
            }
            None => {}
        }
        cpu::sti_hlt();
        self.dispatch();
        Ok(())
    }
}
