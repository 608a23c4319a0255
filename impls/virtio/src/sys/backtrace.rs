//! The frame-pointer walk behind a crash's backtrace.
//!
//! Images are built with frame pointers (`-C force-frame-pointers=yes`): every function's
//! prologue pushes the caller's `rbp` and points `rbp` at it, so `[rbp]` is the caller's frame
//! pointer and `[rbp + 8]` the return address into the caller. The walk reads those two words
//! only while the frame lies inside one of the kernel's stacks (the boot stack, the fault stack)
//! and the return address inside the image's code, and stops at anything else (a null frame
//! pointer: the entry clears `rbp`), so a corrupt chain ends the backtrace instead of faulting.

use core::arch::asm;
use core::ops::Range;

unsafe extern "C" {
    // SAFETY: bounds of the image's code, defined in `link.ld`; only their addresses are used.
    static __text_start: u8;
    static __text_end: u8;
}

/// The frame pointer of the function this is inlined into: a walk from it starts with the
/// return address into that function's caller.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: copies a register; no memory is touched.
    unsafe { asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) }
    rbp
}

/// The return addresses of the frames from frame pointer `fp` outward, innermost first, into
/// `out`; how many it found.
pub fn walk(mut fp: u64, out: &mut [u64]) -> usize {
    let code = &raw const __text_start as u64..&raw const __text_end as u64;
    let stacks = [super::boot::stack(), super::idt::fault_stack()];
    let Some(stack) = stacks.iter().find(|s| s.contains(&fp)).cloned() else { return 0 };
    let mut n = 0;
    while n < out.len() && inside(&stack, fp) {
        let frame = fp as *const u64;
        // SAFETY: `fp..fp + 16` is 8-byte aligned and inside a stack (`inside`), a static that is
        // always mapped and was zeroed at load, so both words are readable and initialised. They
        // may belong to live frames: they are only read, with interrupts off (the panic and
        // exception paths), so nothing writes them meanwhile.
        let (next, ret) = unsafe { (frame.read_volatile(), frame.add(1).read_volatile()) };
        if !code.contains(&ret) {
            break;
        }
        out[n] = ret;
        n += 1;
        // Callers' frames are higher up the stack: anything else is a broken chain.
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

/// Whether a frame record (two words) at `fp` lies aligned inside `stack`.
fn inside(stack: &Range<u64>, fp: u64) -> bool {
    fp.is_multiple_of(8) && fp >= stack.start && fp.checked_add(16).is_some_and(|end| end <= stack.end)
}
