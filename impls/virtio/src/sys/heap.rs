//! The global allocator: a linked-list heap over the RAM the memory map leaves free, mapped and
//! grown 2 MiB at a time as allocations need it (so a small app touches few pages at boot).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use linked_list_allocator::LockedHeap;

use super::paging::{self, PAGE};
use super::pvh::StartInfo;

struct GrowingHeap {
    heap: LockedHeap,
    /// Start of the heap's RAM.
    start: AtomicU64,
    /// End of the RAM the heap may grow into.
    end: AtomicU64,
    /// The size of the latest allocation that found no room (0: none yet).
    failed: AtomicUsize,
}

#[global_allocator]
static HEAP: GrowingHeap = GrowingHeap {
    heap: LockedHeap::empty(),
    start: AtomicU64::new(0),
    end: AtomicU64::new(0),
    failed: AtomicUsize::new(0),
};

/// Bytes allocated now and the heap's whole size (the RAM it may grow into), for the counters
/// and the out-of-memory report; `None` while the heap is locked (inside an allocation).
pub fn usage() -> Option<(usize, usize)> {
    let used = HEAP.heap.try_lock()?.used();
    let size = HEAP.end.load(Ordering::Relaxed).saturating_sub(HEAP.start.load(Ordering::Relaxed));
    Some((used, size as usize))
}

/// The size of the latest allocation that found no room, if one has: a fallible allocation
/// (`try_reserve`) that failed sets it too, so read it only to explain an allocation failure.
pub fn failed_allocation() -> Option<usize> {
    Some(HEAP.failed.load(Ordering::Relaxed)).filter(|&n| n > 0)
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// Whether `[start, end)` overlaps the RAM the heap may use.
pub fn overlaps(start: u64, end: u64) -> bool {
    start < HEAP.end.load(Ordering::Relaxed) && end > HEAP.start.load(Ordering::Relaxed)
}

/// Give the allocator the largest free RAM region of the loader's memory map below 4 GiB
/// ([`crate::memmap::heap_region`]), outside the image and the boot information; its size in
/// bytes. Only its first 2 MiB page is mapped now. The first call does it; `Err` says why not.
pub fn init(info: &StartInfo) -> Result<u64, &'static str> {
    let (start, len) = crate::memmap::heap_region(info.regions(), info.reserved(), 1 << 32)
        .ok_or("the memory map has no free RAM for a heap: give the VM more memory (--mem)")?;
    if STARTED.swap(true, Ordering::AcqRel) {
        return Err("the heap is set up already");
    }
    let end = start.saturating_add(len);
    let first = ((start / PAGE + 1) * PAGE).min(end);
    // SAFETY: task context (boot); the range is RAM the loader's map says is free, outside
    // every range `StartInfo` reserves, and owned by the heap alone from now on (once, above).
    if !unsafe { paging::map(start, first - start, false) } {
        return Err("the heap's memory lies above 4 GiB");
    }
    HEAP.start.store(start, Ordering::Relaxed);
    HEAP.end.store(end, Ordering::Relaxed);
    // SAFETY: as above the range is unused RAM that nothing else touches, `[start, first)` is
    // now mapped, and this runs once (`STARTED`), before any allocation (boot allocates nothing
    // before the heap exists).
    unsafe { HEAP.heap.lock().init(start as *mut u8, (first - start) as usize) };
    Ok(len)
}

// SAFETY: allocations come from `linked_list_allocator`'s first-fit heap under its spin lock;
// it only ever grows over mapped, otherwise unused RAM (`init`). Interrupt handlers never
// allocate, so the lock is never taken re-entrantly.
unsafe impl GlobalAlloc for GrowingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.heap.lock();
        loop {
            if let Ok(p) = heap.allocate_first_fit(layout) {
                return p.as_ptr();
            }
            // Grow: map enough whole pages past the top for this request, and extend.
            let top = heap.top() as u64;
            let end = self.end.load(Ordering::Relaxed);
            let want = (layout.size() + layout.align()) as u64;
            let new_top = top.saturating_add(want).div_ceil(PAGE).saturating_mul(PAGE).min(end);
            // SAFETY: `[top, new_top)` is the heap's own RAM (inside the region `init` took);
            // interrupt handlers never allocate, so this is task context.
            if new_top <= top || !unsafe { paging::map(top, new_top - top, false) } {
                self.failed.store(layout.size(), Ordering::Relaxed);
                return null_mut();
            }
            // SAFETY: `[top, new_top)` is RAM inside the heap's region, just mapped, unused.
            unsafe { heap.extend((new_top - top) as usize) };
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the caller passes a pointer this allocator returned for `layout`.
            unsafe { self.heap.lock().deallocate(p, layout) }
        }
    }
}
