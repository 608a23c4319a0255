//! The PVH `hvm_start_info` block: command line and memory map.

use super::paging::map;
use crate::memmap::Region;

const MAGIC: u32 = 0x336e_c578;
/// Memory-map entries read at most; QEMU gives a handful.
pub const MAX_REGIONS: usize = 64;
/// Longest kernel command line read.
const MAX_CMDLINE: u64 = 65_536;

unsafe extern "C" {
    // SAFETY: defined by the linker script at the end of `.bss`; only its address is used.
    static __kernel_end: u8;
}

/// What the loader handed over. Only [`start_info`] makes one, so the heap can trust its map.
pub struct StartInfo {
    regions: &'static [Region],
    cmdline: &'static [u8],
    reserved: [(u64, u64); 5],
}

impl StartInfo {
    /// The memory map: the loader's own table, read in place.
    pub fn regions(&self) -> &'static [Region] {
        self.regions
    }

    /// The command line (empty if none).
    pub fn cmdline(&self) -> &'static [u8] {
        self.cmdline
    }

    /// Physical ranges to keep out of the heap: the image, the start info, the tables it
    /// points to.
    pub fn reserved(&self) -> &[(u64, u64)] {
        &self.reserved
    }
}

/// The end of the kernel image (its `.bss` included).
pub fn kernel_end() -> u64 {
    &raw const __kernel_end as u64
}

/// Map the loader's `[start, start + len)`, RAM it placed the start info or a table in.
fn map_loader(start: u64, len: u64) -> bool {
    // SAFETY: boot, task context; the loader's start info and the tables it points to are RAM
    // that `StartInfo::reserved` keeps out of the heap, and nothing else maps.
    unsafe { map(start, len, false) }
}

fn read<T: Copy>(addr: u64) -> T {
    // SAFETY: `addr` is inside the start-info block or a table it points to, which the loader
    // placed in identity-mapped RAM and which nothing writes after boot.
    unsafe { core::ptr::read_unaligned(addr as *const T) }
}

/// Read the start-info block the trampoline saved; `Err` says what is wrong.
pub fn start_info() -> Result<StartInfo, &'static str> {
    let base = u64::from(super::boot::start_info_addr());
    // The loader's tables are usually below 1 MiB, already mapped; map them wherever they are.
    if base == 0 || !map_loader(base, 56) || read::<u32>(base) != MAGIC {
        return Err("no PVH start info: boot this image with a PVH loader (QEMU -kernel, Firecracker)");
    }
    let version: u32 = read(base + 4);
    let cmdline_addr: u64 = read(base + 24);
    let (memmap, entries) =
        if version >= 1 { (read::<u64>(base + 40), read::<u32>(base + 48)) } else { (0, 0) };
    if memmap == 0 || entries == 0 {
        return Err("the PVH start info has no memory map (version 1 or later is needed)");
    }
    if !map_loader(memmap, 24 * u64::from(entries)) {
        return Err("the PVH memory map lies above 4 GiB");
    }
    if memmap % 8 != 0 {
        return Err("the PVH memory map is not 8-byte aligned");
    }
    let len = (entries as usize).min(MAX_REGIONS);
    // SAFETY: `len` entries of `hvm_memmap_table_entry` at `memmap`, mapped above, aligned
    // (checked), in RAM kept out of the heap (`reserved`) and never written after boot;
    // `Region` has their layout (`repr(C)`, checked by a unit test) and any bits are valid.
    let regions: &'static [Region] = unsafe { core::slice::from_raw_parts(memmap as *const Region, len) };
    let cmdline: &'static [u8] = if cmdline_addr == 0 {
        &[]
    } else if !map_loader(cmdline_addr, MAX_CMDLINE) {
        return Err("the kernel command line lies above 4 GiB");
    } else {
        let mut n = 0u64;
        while read::<u8>(cmdline_addr + n) != 0 {
            n += 1;
            if n == MAX_CMDLINE {
                return Err("the kernel command line is longer than 64 KiB");
            }
        }
        // SAFETY: the loader's NUL-terminated string of `n` bytes in RAM kept out of the heap
        // (see `reserved`), never written after boot.
        unsafe { core::slice::from_raw_parts(cmdline_addr as *const u8, n as usize) }
    };
    let kernel_end = kernel_end();
    let reserved = [
        // Real-mode area, firmware and the loader's tables below 1 MiB.
        (0, 0x10_0000),
        (0x10_0000, kernel_end),
        (base, base + 64),
        (cmdline_addr, cmdline_addr + cmdline.len() as u64 + 1),
        (memmap, memmap + 24 * u64::from(entries)),
    ];
    Ok(StartInfo { regions, cmdline, reserved })
}
