//! The global allocator over the RAM the memory map leaves free.

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Hand `[start, start + len)` to the allocator. Call once, before the first allocation.
///
/// The range comes from [`crate::memmap::heap_region`]: RAM from the PVH memory map, identity
/// mapped, outside the kernel image and the boot information.
pub fn init(start: u64, len: u64) {
    // SAFETY: per the documentation above the range is unused RAM that nothing else will touch,
    // and this runs once, before any allocation (interrupt handlers never allocate).
    unsafe { HEAP.lock().init(start as *mut u8, len as usize) }
}
