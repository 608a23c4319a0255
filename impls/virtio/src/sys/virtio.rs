//! virtio-drivers glue: the DMA HAL, transport discovery (virtio-mmio from the command line,
//! virtio-pci through ports 0xcf8/0xcfc), and queue owners that keep every buffer the device may
//! touch alive and untouched until the device hands it back. Above this module, devices are safe.

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;

use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use virtio_drivers::transport::{DeviceType, SomeTransport, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

use super::cpu::{inl, outl};
use crate::cmdline::MmioDevice;

pub use virtio_drivers::Error;

/// DMA through the identity map: a heap allocation's address is its physical address.
pub struct KernelHal;

fn dma_layout(pages: usize) -> Option<Layout> {
    Layout::from_size_align(pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned, exclusively owned heap memory whose virtual
// and physical addresses are equal (identity map); `share` returns a buffer's own address for the
// same reason; MMIO addresses are mapped one to one.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(layout) = dma_layout(pages).filter(|l| l.size() > 0) else {
            return (0, NonNull::dangling());
        };
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        match NonNull::new(ptr) {
            Some(p) => (p.as_ptr() as PhysAddr, p),
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        match dma_layout(pages) {
            // SAFETY: the caller passes back what `dma_alloc` returned for `pages`.
            Some(layout) => unsafe { dealloc(vaddr.as_ptr(), layout) },
            None => return -1,
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// The transports this kernel drives.
pub type AnyTransport = SomeTransport<'static>;

/// A virtio device found at boot.
pub struct Found {
    /// Its transport, ready for a driver.
    pub transport: AnyTransport,
    /// The GSI it interrupts on.
    pub gsi: u32,
    /// Where it is, for messages (`mmio@0xfeb00e00`, `pci 00:02.0`).
    pub location: String,
}

impl Found {
    /// What kind of device it is.
    pub fn device_type(&self) -> DeviceType {
        self.transport.device_type()
    }
}

/// The lowest address a virtio-mmio window may have: the top gigabyte below 4 GiB, where
/// hypervisors put device windows and no RAM lives.
const MMIO_FLOOR: u64 = 0xc000_0000;

/// Open the virtio-mmio device a command-line word announced; `None` for an empty slot.
/// `Err` for a window outside the device area.
pub fn probe_mmio(dev: &MmioDevice) -> Result<Option<Found>, String> {
    let end = dev.base.saturating_add(dev.size);
    if dev.base < MMIO_FLOOR || end > 1 << 32 || dev.size < 0x100 || !dev.base.is_multiple_of(4) {
        return Err(format!(
            "virtio_mmio.device={}@{:#x}:{}: the window must lie between {MMIO_FLOOR:#x} and 4 GiB",
            dev.size, dev.base, dev.irq
        ));
    }
    let Some(header) = NonNull::new(dev.base as *mut VirtIOHeader) else { return Ok(None) };
    super::paging::map(dev.base, dev.size, true);
    // SAFETY: the hypervisor announced a virtio-mmio window here; it lies in the identity-mapped,
    // uncached device area (checked above) where no Rust object lives, and `crate::devices`
    // probes each announced window once, so this transport is its only user.
    match unsafe { MmioTransport::new(header, dev.size as usize) } {
        Ok(t) => {
            Ok(Some(Found { transport: t.into(), gsi: dev.irq, location: format!("mmio@{:#x}", dev.base) }))
        }
        // An empty slot has device ID 0.
        Err(MmioError::InvalidDeviceID(_)) => Ok(None),
        Err(e) => Err(format!("virtio-mmio window at {:#x}: {e}", dev.base)),
    }
}

/// PCI configuration space through the legacy I/O ports 0xcf8/0xcfc.
pub struct PortCam;

fn config_address(df: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000
        | u32::from(df.bus) << 16
        | u32::from(df.device) << 11
        | u32::from(df.function) << 8
        | u32::from(offset & 0xfc)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        outl(0xcf8, config_address(df, offset));
        inl(0xcfc)
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        outl(0xcf8, config_address(df, offset));
        outl(0xcfc, data);
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

impl PortCam {
    /// Whether a host bridge answers on the configuration ports (none on microvm).
    pub fn present() -> bool {
        let id = PortCam.read_word(DeviceFunction { bus: 0, device: 0, function: 0 }, 0);
        id != 0xffff_ffff && id != 0
    }
}

/// Descriptors per virtio-net queue, and so receive buffers posted and frames in flight.
pub const NET_QUEUE: usize = 32;
/// Bytes per network buffer: a virtio-net header and a 1514-byte frame fit.
const NET_BUF: usize = 1536 + 64;

struct Slot {
    buf: Box<[u8]>,
    /// `Some` while the device owns the buffer.
    token: Option<u16>,
    /// Bytes handed to the device (transmit), needed to complete the request.
    len: usize,
}

/// A virtio-net device with its receive and transmit buffers.
pub struct NetQueues {
    // Declared first so it is dropped first: the device is reset before the buffers go away.
    raw: VirtIONetRaw<KernelHal, AnyTransport, NET_QUEUE>,
    rx: Vec<Slot>,
    tx: Vec<Slot>,
    hdr: usize,
}

impl NetQueues {
    /// Initialise the device and post every receive buffer.
    pub fn new(transport: AnyTransport) -> Result<Self, Error> {
        let raw = VirtIONetRaw::new(transport)?;
        let hdr = raw.fill_buffer_header(&mut [0u8; 64])?;
        let slot = || Slot { buf: vec![0u8; NET_BUF].into_boxed_slice(), token: None, len: 0 };
        let mut q = Self {
            raw,
            rx: (0..NET_QUEUE).map(|_| slot()).collect(),
            tx: (0..NET_QUEUE / 2).map(|_| slot()).collect(),
            hdr,
        };
        for i in 0..q.rx.len() {
            q.post_rx(i)?;
        }
        q.raw.enable_interrupts();
        Ok(q)
    }

    /// The device's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    /// Acknowledge the device's interrupt.
    pub fn ack(&mut self) {
        self.raw.ack_interrupt();
    }

    /// Largest frame a buffer holds.
    pub fn max_frame(&self) -> usize {
        NET_BUF - self.hdr
    }

    fn post_rx(&mut self, i: usize) -> Result<(), Error> {
        let slot = &mut self.rx[i];
        if slot.token.is_none() {
            // SAFETY: the buffer is owned by `self.rx` and not touched again until the device
            // returns this token (`poll_rx`), or the device is reset (drop order).
            slot.token = Some(unsafe { self.raw.receive_begin(&mut slot.buf)? });
        }
        Ok(())
    }

    /// The next received frame: `(slot, offset, len)`; the slot stays out of the device until
    /// [`repost`](Self::repost). `Some(Err(..))` for a completion the device got wrong.
    pub fn poll_rx(&mut self) -> Option<Result<(usize, usize, usize), Error>> {
        let token = self.raw.poll_receive()?;
        let Some(i) = self.rx.iter().position(|s| s.token == Some(token)) else {
            return Some(Err(Error::WrongToken));
        };
        let slot = &mut self.rx[i];
        // SAFETY: the same buffer that `receive_begin` returned `token` for.
        let done = unsafe { self.raw.receive_complete(token, &mut slot.buf) };
        slot.token = None;
        Some(match done {
            Ok((hdr, len)) if hdr + len <= slot.buf.len() => Ok((i, hdr, len)),
            Ok(_) | Err(_) => {
                let _ = self.post_rx(i);
                Err(Error::IoError)
            }
        })
    }

    /// Take a received buffer out while the stack reads it (the slot is not in the device).
    pub fn take_rx(&mut self, slot: usize) -> Box<[u8]> {
        let s = &mut self.rx[slot];
        if s.token.is_some() { Box::default() } else { core::mem::take(&mut s.buf) }
    }

    /// Put a buffer from [`take_rx`](Self::take_rx) back and give it to the device.
    pub fn give_rx(&mut self, slot: usize, buf: Box<[u8]>) {
        if self.rx[slot].token.is_none() && buf.len() == NET_BUF {
            self.rx[slot].buf = buf;
        }
        self.repost(slot);
    }

    /// Give a receive buffer back to the device.
    pub fn repost(&mut self, slot: usize) {
        // A failure leaves the slot out of the ring; the others keep receiving.
        let _ = self.post_rx(slot);
    }

    /// Collect finished transmissions; how many.
    pub fn reclaim_tx(&mut self) -> usize {
        let mut done = 0;
        while let Some(token) = self.raw.poll_transmit() {
            let Some(slot) = self.tx.iter_mut().find(|s| s.token == Some(token)) else { break };
            // SAFETY: the same buffer and length that `transmit_begin` returned `token` for.
            let _ = unsafe { self.raw.transmit_complete(token, &slot.buf[..slot.len]) };
            slot.token = None;
            done += 1;
        }
        done
    }

    /// Whether a transmit buffer is free.
    pub fn tx_free(&self) -> Option<usize> {
        self.tx.iter().position(|s| s.token.is_none() && !s.buf.is_empty())
    }

    /// Take a free transmit buffer out to fill it: `(slot, buffer, offset of the frame)`.
    pub fn take_tx(&mut self) -> Option<(usize, Box<[u8]>, usize)> {
        let slot = self.tx_free()?;
        Some((slot, core::mem::take(&mut self.tx[slot].buf), self.hdr))
    }

    /// Put a buffer from [`take_tx`](Self::take_tx) back and send the `len`-byte frame in it.
    pub fn give_tx(&mut self, slot: usize, buf: Box<[u8]>, len: usize) -> Result<(), Error> {
        let total = self.hdr + len;
        let s = &mut self.tx[slot];
        if s.token.is_some() || buf.len() != NET_BUF || total > NET_BUF {
            return Err(Error::InvalidParam);
        }
        s.buf = buf;
        self.raw.fill_buffer_header(&mut s.buf)?;
        // SAFETY: the buffer is owned by `self.tx` and not touched until `reclaim_tx` sees the
        // token come back, or the device is reset (drop order).
        let token = unsafe { self.raw.transmit_begin(&s.buf[..total])? };
        s.token = Some(token);
        s.len = total;
        Ok(())
    }
}

/// Bytes one block request moves at most (through a bounce buffer the queue owns).
pub const BLK_CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy)]
enum BlkOp {
    Read,
    Write,
}

/// A virtio-blk device with the request, response and data buffers of its one request in flight.
pub struct BlkQueue {
    // Declared first so it is dropped first: the device is reset before the buffers go away.
    dev: VirtIOBlk<KernelHal, AnyTransport>,
    req: Box<BlkReq>,
    resp: Box<BlkResp>,
    buf: Box<[u8]>,
    inflight: Option<(u16, BlkOp, usize)>,
}

impl BlkQueue {
    /// Initialise the device.
    pub fn new(transport: AnyTransport) -> Result<Self, Error> {
        let mut dev = VirtIOBlk::new(transport)?;
        dev.enable_interrupts();
        Ok(Self {
            dev,
            req: Box::default(),
            resp: Box::default(),
            buf: vec![0u8; BLK_CHUNK].into_boxed_slice(),
            inflight: None,
        })
    }

    /// Capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.dev.capacity()
    }

    /// Whether the device refuses writes.
    pub fn read_only(&self) -> bool {
        self.dev.readonly()
    }

    /// Acknowledge the device's interrupt.
    pub fn ack(&mut self) {
        self.dev.ack_interrupt();
    }

    /// Whether a request is in flight.
    pub fn busy(&self) -> bool {
        self.inflight.is_some()
    }

    /// Start reading `len` bytes (whole sectors, at most [`BLK_CHUNK`]) from `sector`.
    pub fn start_read(&mut self, sector: u64, len: usize) -> Result<(), Error> {
        if self.busy() || len == 0 || len > BLK_CHUNK || !len.is_multiple_of(512) {
            return Err(Error::InvalidParam);
        }
        let sector = usize::try_from(sector).map_err(|_| Error::InvalidParam)?;
        // SAFETY: `req`, `resp` and the bounce buffer are owned by `self` and not touched until
        // `poll` sees this token complete, or the device is reset (drop order).
        let token =
            unsafe { self.dev.read_blocks_nb(sector, &mut self.req, &mut self.buf[..len], &mut self.resp)? };
        self.inflight = Some((token, BlkOp::Read, len));
        Ok(())
    }

    /// Start writing `data` (whole sectors, at most [`BLK_CHUNK`]) at `sector`.
    pub fn start_write(&mut self, sector: u64, data: &[u8]) -> Result<(), Error> {
        let len = data.len();
        if self.busy() || len == 0 || len > BLK_CHUNK || !len.is_multiple_of(512) {
            return Err(Error::InvalidParam);
        }
        let sector = usize::try_from(sector).map_err(|_| Error::InvalidParam)?;
        self.buf[..len].copy_from_slice(data);
        // SAFETY: as for `start_read`.
        let token =
            unsafe { self.dev.write_blocks_nb(sector, &mut self.req, &self.buf[..len], &mut self.resp)? };
        self.inflight = Some((token, BlkOp::Write, len));
        Ok(())
    }

    /// The result of the request in flight, once the device has finished it.
    pub fn poll(&mut self) -> Option<Result<(), Error>> {
        let (token, op, len) = self.inflight?;
        if self.dev.peek_used() != Some(token) {
            return None;
        }
        self.inflight = None;
        // SAFETY: the same buffers `read_blocks_nb`/`write_blocks_nb` returned `token` for.
        Some(unsafe {
            match op {
                BlkOp::Read => {
                    self.dev.complete_read_blocks(token, &self.req, &mut self.buf[..len], &mut self.resp)
                }
                BlkOp::Write => {
                    self.dev.complete_write_blocks(token, &self.req, &self.buf[..len], &mut self.resp)
                }
            }
        })
    }

    /// The first `len` bytes of the last completed read.
    pub fn data(&self, len: usize) -> &[u8] {
        if self.busy() { &[] } else { &self.buf[..len.min(BLK_CHUNK)] }
    }

    /// Make completed writes durable. Waits for the device (virtio-drivers has no non-blocking
    /// flush); QEMU answers within one `fdatasync` of the disk image.
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.busy() {
            return Err(Error::NotReady);
        }
        self.dev.flush()
    }
}
