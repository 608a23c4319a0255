//! # morgana-virtio-drivers: virtio-net and virtio-blk as Morgana devices
//!
//! [`VirtioNet`] is a [`morgana::Net`] and [`VirtioBlock`] a [`morgana::Block`] on any virtio
//! transport. They are generic over the three things a platform supplies:
//!
//! - a [`Hal`] (virtio-drivers' DMA allocation and address translation),
//! - a [`Transport`] (virtio-mmio, virtio-pci, or a fake device in a test),
//! - an [`Interrupt`]: the device's interrupt line, which wakes the task that waits on it.
//!
//! Queues are virtio-drivers' [`VirtQueue`](virtio_drivers::queue::VirtQueue); the device
//! protocols on top (feature negotiation, the virtio-net header, virtio-blk requests) are ours,
//! so that a request completes by interrupt, never by spinning, and so that the features a
//! device lacks are said once at start ([`VirtioBlock::missing`], [`VirtioNet::new`]'s errors).
//!
//! `no_std` + `alloc`. Unsafe code is only in the `sys` module: buffers handed to a device stay
//! owned and untouched until the device hands them back. The crate compiles on the host, where
//! its tests run both drivers, and Morgana's conformance suites, against a fake device that
//! follows the split-virtqueue layout of the virtio specification.
//!
//! ```ignore
//! let net = VirtioNet::<MyHal, _, _>::new(transport, line)?; // line: impl Interrupt
//! let stack = morgana_tcpip::spawn(&platform, net, config);
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod block;
mod features;
mod net;
#[allow(unsafe_code)]
mod sys;

use core::task::Waker;

pub use block::VirtioBlock;
pub use features::Features;
pub use net::{Offloads, VirtioNet, VirtioRx, VirtioTx, drain_tx};
pub use virtio_drivers::transport::Transport;
pub use virtio_drivers::{Error, Hal};

/// A device's interrupt line, as the platform wires it.
///
/// A line is level-triggered in spirit: it stays "fired" until the device is acknowledged. The
/// driver calls [`service`](Self::service) each time its task polls it, before it looks at its
/// queues, so a completion that arrives after the look still wakes the task.
pub trait Interrupt {
    /// Register `waker` for the line's next interrupt. If the line fired since the last call, run
    /// `ack` (the driver acknowledges its device) and let the line interrupt again.
    fn service(&self, waker: &Waker, ack: impl FnOnce());
}

impl<I: Interrupt + ?Sized> Interrupt for &I {
    fn service(&self, waker: &Waker, ack: impl FnOnce()) {
        (**self).service(waker, ack)
    }
}

#[cfg(test)]
mod tests;
