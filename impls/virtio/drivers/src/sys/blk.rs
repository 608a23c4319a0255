//! The virtio-blk request queue: one request in flight, its header, status byte and a bounce
//! buffer owned here (virtio 1.2, 5.2.6).

use alloc::boxed::Box;
use alloc::vec;

use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceStatus, Transport};
use virtio_drivers::{Error, Hal};

use crate::features::{self, Features};

/// `VIRTIO_BLK_F_RO`: the device refuses writes.
pub const F_RO: u64 = 1 << 5;
/// `VIRTIO_BLK_F_FLUSH`: the device has a write cache and a flush command.
pub const F_FLUSH: u64 = 1 << 9;

/// Bytes one request moves at most (through the bounce buffer).
pub const CHUNK: usize = 64 * 1024;
/// Bytes per virtio-blk sector.
pub const SECTOR: usize = 512;

/// Descriptors: a request takes three (header, data, status), and one is in flight.
const QUEUE_SIZE: usize = 4;
const QUEUE: u16 = 0;

/// A request kind (`VIRTIO_BLK_T_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `VIRTIO_BLK_T_IN`.
    Read = 0,
    /// `VIRTIO_BLK_T_OUT`.
    Write = 1,
    /// `VIRTIO_BLK_T_FLUSH`.
    Flush = 4,
}

/// A status byte the device never writes: still there after completion means no status.
const NO_STATUS: u8 = 0xff;

/// A virtio-blk device with the buffers of its one request in flight.
pub struct BlkQueue<H: Hal, T: Transport> {
    transport: T,
    queue: VirtQueue<H, QUEUE_SIZE>,
    /// `struct virtio_blk_req`'s header: type, reserved, sector (little-endian).
    header: Box<[u8; 16]>,
    status: Box<[u8; 1]>,
    buf: Box<[u8]>,
    /// Token, kind and data length of the request the device holds.
    inflight: Option<(u16, Op, usize)>,
    sectors: u64,
    features: Features,
}

impl<H: Hal, T: Transport> BlkQueue<H, T> {
    /// Negotiate read-only and flush, read the capacity, set up the queue.
    pub fn new(mut transport: T) -> Result<Self, Error> {
        let features = features::negotiate(&mut transport, F_RO | F_FLUSH)?;
        let sectors = transport.read_consistent(|| {
            let low: u32 = transport.read_config_space(0)?;
            let high: u32 = transport.read_config_space(4)?;
            Ok(u64::from(high) << 32 | u64::from(low))
        })?;
        let queue = VirtQueue::new(&mut transport, QUEUE, false, false)?;
        features::ready(&mut transport);
        Ok(Self {
            transport,
            queue,
            header: Box::new([0; 16]),
            status: Box::new([NO_STATUS]),
            buf: vec![0u8; CHUNK].into_boxed_slice(),
            inflight: None,
            sectors,
            features,
        })
    }

    /// Capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// The features negotiated.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Acknowledge the device's interrupt.
    pub fn ack(&mut self) {
        self.transport.ack_interrupt();
    }

    /// Whether a request is in flight.
    pub fn busy(&self) -> bool {
        self.inflight.is_some()
    }

    /// The bounce buffer's first `len` bytes, to fill before [`start`](Self::start) of a write.
    /// Empty while a request is in flight (the device may be reading it).
    pub fn data_mut(&mut self, len: usize) -> &mut [u8] {
        if self.busy() { &mut [] } else { &mut self.buf[..len.min(CHUNK)] }
    }

    /// The first `len` bytes of the last completed read.
    pub fn data(&self, len: usize) -> &[u8] {
        if self.busy() { &[] } else { &self.buf[..len.min(CHUNK)] }
    }

    /// Hand the device a request: `len` bytes (whole sectors, at most [`CHUNK`]) at `sector`
    /// to or from the bounce buffer; a flush moves no data. `QueueFull` if the queue has no
    /// room, `NotReady` if a request is already in flight.
    pub fn start(&mut self, op: Op, sector: u64, len: usize) -> Result<(), Error> {
        if self.busy() {
            return Err(Error::NotReady);
        }
        let data = op != Op::Flush;
        if data && (len == 0 || len > CHUNK || !len.is_multiple_of(SECTOR)) {
            return Err(Error::InvalidParam);
        }
        self.header[..4].copy_from_slice(&(op as u32).to_le_bytes());
        self.header[4..8].fill(0);
        self.header[8..].copy_from_slice(&(if data { sector } else { 0 }).to_le_bytes());
        self.status[0] = NO_STATUS;
        let (header, status, buf) = (&self.header[..], &mut self.status[..], &mut self.buf[..len]);
        // SAFETY: the header, status byte and bounce buffer are owned by `self` and not touched
        // until `poll` pops this token with the same buffers, or the device is reset (`Drop`).
        let token = unsafe {
            match op {
                Op::Read => self.queue.add(&[header], &mut [buf, status]),
                Op::Write => self.queue.add(&[header, buf], &mut [status]),
                Op::Flush => self.queue.add(&[header], &mut [status]),
            }
        }?;
        if self.queue.should_notify() {
            self.transport.notify(QUEUE);
        }
        self.inflight = Some((token, op, len));
        Ok(())
    }

    /// The result of the request in flight, once the device has finished it.
    pub fn poll(&mut self) -> Option<Result<(), Error>> {
        let (token, op, len) = self.inflight?;
        if self.queue.peek_used() != Some(token) {
            return None;
        }
        self.inflight = None;
        let (header, status, buf) = (&self.header[..], &mut self.status[..], &mut self.buf[..len]);
        // SAFETY: the same buffers `start` added for this token.
        let popped = unsafe {
            match op {
                Op::Read => self.queue.pop_used(token, &[header], &mut [buf, status]),
                Op::Write => self.queue.pop_used(token, &[header, buf], &mut [status]),
                Op::Flush => self.queue.pop_used(token, &[header], &mut [status]),
            }
        };
        Some(popped.and_then(|_| match self.status[0] {
            0 => Ok(()),
            2 => Err(Error::Unsupported),
            _ => Err(Error::IoError),
        }))
    }
}

impl<H: Hal, T: Transport> Drop for BlkQueue<H, T> {
    fn drop(&mut self) {
        // Reset first: the device stops using the queue and the buffers before they are freed.
        self.transport.set_status(DeviceStatus::empty());
        self.transport.queue_unset(QUEUE);
    }
}
