//! The global allocator: talc over the RAM the memory map leaves free, mapped and handed to it
//! 2 MiB at a time as allocations need it (so a small app touches few pages at boot).

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use spinning_top::RawSpinlock;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;

use super::paging::{self, PAGE};
use super::pvh::StartInfo;

/// Where the heap's RAM comes from: the region `init` took, mapped a 2 MiB page at a time as
/// talc runs out (its `acquire`), so a small app touches few pages at boot.
#[derive(Debug)]
struct Grow {
    /// The end of the RAM talc manages now (0 before the first claim).
    top: usize,
}

/// Start of the heap's RAM.
static START: AtomicU64 = AtomicU64::new(0);
/// End of the RAM the heap may grow into.
static END: AtomicU64 = AtomicU64::new(0);
/// The size of the latest allocation that found no room (0: none yet).
static FAILED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: `acquire` hands talc only RAM inside the region `init` took for the heap (nothing
// else uses it), each part mapped before it is given, and never the same part twice (`top`
// only grows); it allocates nothing, so it never re-enters the allocator.
unsafe impl Source for Grow {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let (start, end) = (START.load(Ordering::Relaxed), END.load(Ordering::Relaxed));
        let top = if talc.source.top == 0 { start } else { talc.source.top as u64 };
        // Room for this request and talc's own tags, whole pages past the top.
        let want = (layout.size() + layout.align() + 4 * core::mem::size_of::<usize>()) as u64;
        let new_top = top.saturating_add(want).div_ceil(PAGE).saturating_mul(PAGE).min(end);
        // SAFETY: `[top, new_top)` is the heap's own RAM (inside the region `init` took, past
        // what talc has); interrupt handlers never allocate, so this is task context.
        if new_top <= top || !unsafe { paging::map(top, new_top - top, false) } {
            FAILED.store(layout.size(), Ordering::Relaxed);
            return Err(());
        }
        let grown = if talc.source.top == 0 {
            // SAFETY: `[start, new_top)` is mapped RAM that only the heap uses from now on.
            unsafe { talc.claim(start as *mut u8, (new_top - start) as usize) }
        } else {
            let old = core::ptr::NonNull::new(top as *mut u8).ok_or(())?;
            // SAFETY: `old` is the end talc returned for its heap, and `[top, new_top)` is
            // mapped RAM that only the heap uses from now on.
            Some(unsafe { talc.extend(old, new_top as *mut u8) })
        };
        match grown {
            Some(end) if end.as_ptr() as u64 > top => {
                talc.source.top = end.as_ptr() as usize;
                Ok(())
            }
            _ => {
                FAILED.store(layout.size(), Ordering::Relaxed);
                Err(())
            }
        }
    }
}

/// Talc (binned free lists, constant time whatever the heap holds; a first-fit list went
/// quadratic under the store's thousands of live nodes) under a spin lock. Interrupt handlers
/// never allocate, so the lock is never taken re-entrantly.
static TALC: talc::sync::TalcLock<RawSpinlock, Grow, Bins> = talc::sync::TalcLock::new(Grow { top: 0 });

/// Talc's free lists for this heap: 63, tracked in one `u64`. (Its default has 191 in three
/// words: their 1.5 KiB of list heads are written at the first allocation and each allocation
/// searches the three words, instructions that this host's KVM emulates one by one at boot.)
/// Sizes up to 256 bytes in 32-byte steps, then four lists per doubling up to about 2 MiB;
/// larger blocks share the last list.
struct Bins;

impl Binning for Bins {
    type AvailabilityBitField = u64;
    const BIN_COUNT: u32 = 63;

    fn size_to_bin(size: usize) -> u32 {
        talc::base::binning::linear_extent_then_linearly_divided_exponential_binning::<4, 2>(size)
    }
}

/// Bytes allocated now (talc's own counters keep a dozen figures per allocation; this is the
/// one the counters line and the out-of-memory report need).
static USED: AtomicUsize = AtomicUsize::new(0);

/// The global allocator: [`TALC`], counting the bytes in use.
struct Heap;

#[global_allocator]
static HEAP: Heap = Heap;

// SAFETY: every call is passed to talc's `GlobalAlloc` with the caller's own arguments, so its
// contract is the caller's; `USED` is only a count.
unsafe impl core::alloc::GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract (a non-zero-sized layout), passed on.
        let p = unsafe { TALC.alloc(layout) };
        if !p.is_null() {
            USED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        USED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller passes a pointer this allocator returned for `layout`.
        unsafe { TALC.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let p = unsafe { TALC.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            USED.fetch_add(new_size, Ordering::Relaxed);
            USED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

/// Bytes allocated now and the heap's whole size (the RAM it may grow into), for the counters
/// and the out-of-memory report (`Option` for the platform's `heap` hook; always there).
pub fn usage() -> Option<(usize, usize)> {
    let used = USED.load(Ordering::Relaxed);
    let size = END.load(Ordering::Relaxed).saturating_sub(START.load(Ordering::Relaxed));
    Some((used, size as usize))
}

/// The size of the latest allocation that found no room, if one has: a fallible allocation
/// (`try_reserve`) that failed sets it too, so read it only to explain an allocation failure.
pub fn failed_allocation() -> Option<usize> {
    Some(FAILED.load(Ordering::Relaxed)).filter(|&n| n > 0)
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// Whether `[start, end)` overlaps the RAM the heap may use.
pub fn overlaps(start: u64, end: u64) -> bool {
    start < END.load(Ordering::Relaxed) && end > START.load(Ordering::Relaxed)
}

/// Give the allocator the largest free RAM region of the loader's memory map below 4 GiB
/// ([`crate::memmap::heap_region`]), outside the image and the boot information; its size in
/// bytes. Only its first 2 MiB page is mapped now, and talc claims it at the first allocation.
/// The first call does it; `Err` says why not.
pub fn init(info: &StartInfo) -> Result<u64, &'static str> {
    let (start, len) = crate::memmap::heap_region(info.regions(), info.reserved(), 1 << 32)
        .ok_or("the memory map has no free RAM for a heap: give the VM more memory (--mem)")?;
    if STARTED.swap(true, Ordering::AcqRel) {
        return Err("the heap is set up already");
    }
    let first = ((start / PAGE + 1) * PAGE).min(start.saturating_add(len));
    // SAFETY: task context (boot); the range is RAM the loader's map says is free, outside
    // every range `StartInfo` reserves, and owned by the heap alone from now on (once, above).
    if !unsafe { paging::map(start, first - start, false) } {
        return Err("the heap's memory lies above 4 GiB");
    }
    START.store(start, Ordering::Relaxed);
    END.store(start.saturating_add(len), Ordering::Relaxed);
    Ok(len)
}
