//! A fake virtio device for host tests: a [`Transport`] whose queues a test serves the way a
//! device does, following the split-virtqueue layout of the virtio 1.2 specification (2.7):
//! 16-byte descriptors, an available ring the driver fills, a used ring the device fills.
//!
//! virtio-drivers' own `FakeTransport` exists only inside that crate's tests, so this is ours.
//! Addresses in the queues are the buffers' own (the test HAL shares memory one to one), and
//! the device reads and writes them directly, as a hypervisor does guest memory.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{Ordering, fence};
use std::task::Waker;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Error, Hal, PAGE_SIZE, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// DMA from the host heap; "physical" addresses are the host addresses.
pub struct TestHal;

fn layout(pages: usize) -> Layout {
    Layout::from_size_align(pages.max(1) * PAGE_SIZE, PAGE_SIZE).expect("a page-sized layout")
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory the caller owns until `dma_dealloc`;
// addresses are host addresses, which is what the fake device dereferences.
unsafe impl Hal for TestHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // SAFETY: the layout has a non-zero size.
        let p = NonNull::new(unsafe { alloc_zeroed(layout(pages)) }).expect("test allocation");
        (p.as_ptr() as PhysAddr, p)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: the caller passes back what `dma_alloc` returned for `pages`.
        unsafe { dealloc(vaddr.as_ptr(), layout(pages)) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("a non-null address")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// One virtqueue as the driver set it up, and how far the device has got in it.
#[derive(Debug, Default)]
pub struct Queue {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    /// Next available-ring entry the device will take.
    next_avail: u16,
    /// Used-ring index the device writes next.
    used_idx: u16,
    /// Times the driver notified this queue.
    pub notified: usize,
}

/// One buffer of a descriptor chain.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    addr: u64,
    len: u32,
    /// Device-writable (the driver's "output").
    pub writable: bool,
}

/// A descriptor chain the device took from the available ring.
#[derive(Debug, Clone)]
pub struct Chain {
    head: u16,
    /// Its buffers in order.
    pub parts: Vec<Part>,
}

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

/// Read a `T` the driver placed at `addr`.
///
/// # Safety
///
/// `addr` must lie in memory the driver shared with the device (a queue area or a buffer in a
/// chain it made available), which it keeps alive and does not access until the device hands
/// it back.
unsafe fn load<T: Copy>(addr: u64) -> T {
    // SAFETY: per the contract; unaligned reads because buffers carry no alignment.
    unsafe { (addr as *const T).read_unaligned() }
}

/// Write a `T` at `addr`.
///
/// # Safety
///
/// As for [`load`], and the memory must be device-writable (the used ring, or a writable part).
unsafe fn store<T: Copy>(addr: u64, value: T) {
    // SAFETY: per the contract.
    unsafe { (addr as *mut T).write_unaligned(value) }
}

/// The device's side: what the driver negotiated and set up, and the queues to serve.
#[derive(Debug)]
pub struct Device {
    device_type: DeviceType,
    /// Feature bits the device offers.
    pub offered: u64,
    /// Feature bits the driver accepted.
    pub accepted: u64,
    /// The status the driver last wrote.
    pub status: DeviceStatus,
    /// The configuration space.
    pub config: Vec<u8>,
    /// The queues, by index.
    pub queues: Vec<Queue>,
    /// The interrupt status register (one bit: a queue was used).
    isr: bool,
    /// The interrupt line: raised with `isr`, lowered when the driver's line is serviced.
    fired: bool,
    waker: Option<Waker>,
    /// Interrupts raised.
    pub interrupts: usize,
}

impl Device {
    /// Take the next chain the driver made available on `queue`, if any.
    pub fn pop(&mut self, queue: usize) -> Option<Chain> {
        let q = &mut self.queues[queue];
        if q.size == 0 {
            return None;
        }
        // SAFETY: `avail` is the driver area the driver set up for this queue (flags, idx, ring).
        let idx: u16 = unsafe { load(q.avail + 2) };
        if idx == q.next_avail {
            return None;
        }
        fence(Ordering::Acquire);
        let slot = u64::from(q.next_avail % q.size);
        // SAFETY: as above; the ring has `size` entries.
        let head: u16 = unsafe { load(q.avail + 4 + 2 * slot) };
        q.next_avail = q.next_avail.wrapping_add(1);
        let mut parts = Vec::new();
        let mut i = head;
        loop {
            assert!(i < q.size, "descriptor index {i} outside a queue of {}", q.size);
            assert!(parts.len() < usize::from(q.size), "a descriptor chain loops");
            let d = q.desc + 16 * u64::from(i);
            // SAFETY: the descriptor table has `size` 16-byte entries (addr, len, flags, next).
            let (addr, len, flags, next): (u64, u32, u16, u16) =
                unsafe { (load(d), load(d + 8), load(d + 12), load(d + 14)) };
            parts.push(Part { addr, len, writable: flags & DESC_F_WRITE != 0 });
            if flags & DESC_F_NEXT == 0 {
                break;
            }
            i = next;
        }
        Some(Chain { head, parts })
    }

    /// Hand `chain` back on `queue` with `written` bytes written, and interrupt.
    pub fn complete(&mut self, queue: usize, chain: &Chain, written: usize) {
        let q = &mut self.queues[queue];
        let slot = u64::from(q.used_idx % q.size);
        let entry = q.used + 4 + 8 * slot;
        // SAFETY: `used` is the device area of this queue (flags, idx, `size` entries of id and
        // len), which only the device writes.
        unsafe {
            store(entry, u32::from(chain.head));
            store(entry + 4, written as u32);
            fence(Ordering::Release);
            q.used_idx = q.used_idx.wrapping_add(1);
            store(q.used + 2, q.used_idx);
        }
        self.interrupt();
    }

    /// Raise the interrupt: the line fires and wakes whoever waits on it.
    pub fn interrupt(&mut self) {
        self.isr = true;
        self.fired = true;
        self.interrupts += 1;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The bytes the driver gave in `chain`'s readable parts, in order.
pub fn read(chain: &Chain) -> Vec<u8> {
    let mut out = Vec::new();
    for p in chain.parts.iter().filter(|p| !p.writable) {
        // SAFETY: a readable buffer of a chain the driver made available, `len` bytes long.
        out.extend((0..u64::from(p.len)).map(|i| unsafe { load::<u8>(p.addr + i) }));
    }
    out
}

/// Write `data` into `chain`'s writable parts, in order; how many bytes fit.
pub fn write(chain: &Chain, data: &[u8]) -> usize {
    let mut n = 0;
    for p in chain.parts.iter().filter(|p| p.writable) {
        for i in 0..u64::from(p.len) {
            let Some(&b) = data.get(n) else { return n };
            // SAFETY: a writable buffer of a chain the driver made available, `len` bytes long.
            unsafe { store(p.addr + i, b) };
            n += 1;
        }
    }
    n
}

/// A fake device: its transport for the driver and its side for the test.
#[derive(Clone, Debug)]
pub struct Fake(pub Rc<RefCell<Device>>);

impl Fake {
    /// A device of `device_type` offering `offered`, with `queues` queues and `config`.
    pub fn new(device_type: DeviceType, offered: u64, queues: usize, config: Vec<u8>) -> Self {
        Self(Rc::new(RefCell::new(Device {
            device_type,
            offered,
            accepted: 0,
            status: DeviceStatus::empty(),
            config,
            queues: (0..queues).map(|_| Queue::default()).collect(),
            isr: false,
            fired: false,
            waker: None,
            interrupts: 0,
        })))
    }

    /// The transport to give the driver.
    pub fn transport(&self) -> FakeTransport {
        FakeTransport(self.clone())
    }

    /// The device's interrupt line, to give the driver.
    pub fn line(&self) -> FakeLine {
        FakeLine(self.clone())
    }

    /// The device's side.
    pub fn dev(&self) -> std::cell::RefMut<'_, Device> {
        self.0.borrow_mut()
    }
}

/// The driver's view of a [`Fake`].
#[derive(Debug)]
pub struct FakeTransport(Fake);

impl Transport for FakeTransport {
    fn device_type(&self) -> DeviceType {
        self.0.0.borrow().device_type
    }

    fn read_device_features(&mut self) -> u64 {
        self.0.dev().offered
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        self.0.dev().accepted = driver_features;
    }

    fn max_queue_size(&mut self, _queue: u16) -> u32 {
        256
    }

    fn notify(&mut self, queue: u16) {
        self.0.dev().queues[usize::from(queue)].notified += 1;
    }

    fn get_status(&self) -> DeviceStatus {
        self.0.0.borrow().status
    }

    fn set_status(&mut self, status: DeviceStatus) {
        let mut d = self.0.dev();
        d.status = status;
        if status.is_empty() {
            // A reset: the device forgets its queues.
            d.queues.iter_mut().for_each(|q| *q = Queue::default());
        }
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver: PhysAddr,
        device: PhysAddr,
    ) {
        let mut d = self.0.dev();
        let q = &mut d.queues[usize::from(queue)];
        *q = Queue { size: size as u16, desc: descriptors, avail: driver, used: device, ..Queue::default() };
    }

    fn queue_unset(&mut self, queue: u16) {
        self.0.dev().queues[usize::from(queue)] = Queue::default();
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.dev().queues[usize::from(queue)].desc != 0
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        let mut d = self.0.dev();
        if std::mem::replace(&mut d.isr, false) {
            InterruptStatus::QUEUE_INTERRUPT
        } else {
            InterruptStatus::empty()
        }
    }

    fn read_config_generation(&self) -> u32 {
        0
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let d = self.0.0.borrow();
        let bytes = d.config.get(offset..offset + size_of::<T>()).ok_or(Error::ConfigSpaceTooSmall)?;
        T::read_from_bytes(bytes).map_err(|_| Error::ConfigSpaceTooSmall)
    }

    fn write_config_space<T: IntoBytes + Immutable>(&mut self, offset: usize, value: T) -> Result<(), Error> {
        let mut d = self.0.dev();
        let bytes = d.config.get_mut(offset..offset + size_of::<T>()).ok_or(Error::ConfigSpaceTooSmall)?;
        bytes.copy_from_slice(value.as_bytes());
        Ok(())
    }
}

/// The fake device's interrupt line, as a platform's would be.
#[derive(Debug)]
pub struct FakeLine(Fake);

impl crate::Interrupt for FakeLine {
    fn service(&self, waker: &Waker, ack: impl FnOnce()) {
        let fired = {
            let mut d = self.0.dev();
            d.waker = Some(waker.clone());
            std::mem::replace(&mut d.fired, false)
        };
        if fired {
            ack();
        }
    }
}

/// Bytes the device may write into `chain`.
pub fn writable_len(chain: &Chain) -> usize {
    chain.parts.iter().filter(|p| p.writable).map(|p| p.len as usize).sum()
}
