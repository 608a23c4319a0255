//! The identity map, grown on demand in 2 MiB pages below 4 GiB.
//!
//! At entry only the 2 MiB pages up to the end of the image are mapped. RAM for the heap and
//! device windows are mapped when first needed: under nested virtualization each page-table store
//! is trapped and emulated (about 6 us each, measured), so mapping all 4 GiB up front (2048
//! stores) cost 12 ms of boot.
//! Entries only go from absent to present, which needs no TLB flush.

use core::sync::atomic::{Ordering, compiler_fence};

/// Bytes per mapping.
pub const PAGE: u64 = 2 << 20;
/// Identity-mapped address space.
const LIMIT: u64 = 1 << 32;
/// Entry flags: present, writable, 2 MiB page; and cache-disable + write-through for devices.
const PRESENT_RW_LARGE: u64 = 0x83;
const UNCACHED: u64 = 0x18;

unsafe extern "C" {
    // SAFETY: page-table pages defined in `boot.rs`'s `global_asm!` (.bss, page aligned).
    static mut morgana_pdpt: [u64; 512];
    static mut morgana_pd: [u64; 2048];
}

/// Identity-map `[start, start + len)`, uncached for device windows. `false` if the range
/// reaches beyond 4 GiB (nothing is mapped then).
///
/// # Safety
///
/// Call from task context, never from an interrupt handler: the tables are written without a
/// lock. The range must be RAM that nothing else owns or maps differently (the heap's, the
/// loader's tables) or a device window with `uncached` set: making other memory reachable hands
/// out addresses that Rust code may then treat as its own.
pub unsafe fn map(start: u64, len: u64, uncached: bool) -> bool {
    let Some(end) = start.checked_add(len).filter(|e| *e <= LIMIT) else { return false };
    let flags = PRESENT_RW_LARGE | if uncached { UNCACHED } else { 0 };
    let pd = &raw mut morgana_pd as *mut u64;
    let pdpt = &raw mut morgana_pdpt as *mut u64;
    let mut page = start & !(PAGE - 1);
    while page < end {
        let i = (page / PAGE) as usize;
        let dir = i / 512;
        // SAFETY: `i < 2048` and `dir < 4` because `page < 4 GiB`; the tables are statics that
        // only this module writes (after the trampoline), from task context on the one CPU
        // (the caller's contract).
        // Entries only go from zero to present: nothing mapped before changes meaning.
        unsafe {
            if pdpt.add(dir).read_volatile() == 0 {
                pdpt.add(dir).write_volatile((pd.add(dir * 512) as u64) | 0x3);
            }
            if pd.add(i).read_volatile() == 0 {
                pd.add(i).write_volatile(page | flags);
            }
        }
        page += PAGE;
    }
    // The tables must be written before the mapped memory is used.
    compiler_fence(Ordering::SeqCst);
    true
}
