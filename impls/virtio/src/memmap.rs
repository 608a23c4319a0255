//! Where the heap goes: the largest stretch of RAM that nothing else uses.

/// `hvm_memmap_table_entry` type of usable RAM.
pub const RAM: u32 = 1;

/// One entry of the PVH memory map. `repr(C)`: the same layout as the loader's
/// `hvm_memmap_table_entry` (whose trailing reserved word falls in the padding), so the kernel
/// reads the loader's table in place instead of copying it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// Entry type (1 is RAM).
    pub kind: u32,
}

/// The largest page-aligned range of RAM below `limit` that overlaps no `reserved` range:
/// `(start, len)`.
pub fn heap_region(map: &[Region], reserved: &[(u64, u64)], limit: u64) -> Option<(u64, u64)> {
    let mut best: Option<(u64, u64)> = None;
    for r in map.iter().filter(|r| r.kind == RAM) {
        let mut start = r.addr;
        let end = r.addr.saturating_add(r.size).min(limit);
        let mut consider = |s: u64, e: u64| {
            let (s, e) = (align_up(s), e & !0xfff);
            if e > s && best.is_none_or(|(_, len)| e - s > len) {
                best = Some((s, e - s));
            }
        };
        // Walk the RAM range, cutting out reserved ranges lowest first (no allocation: this
        // runs before the heap exists).
        while start < end {
            let cut = reserved.iter().filter(|&&(s, e)| s < end && e > start).min_by_key(|&&(s, _)| s);
            match cut {
                Some(&(s, e)) => {
                    if s > start {
                        consider(start, s);
                    }
                    start = start.max(e);
                }
                None => {
                    consider(start, end);
                    break;
                }
            }
        }
    }
    best
}

fn align_up(x: u64) -> u64 {
    x.saturating_add(0xfff) & !0xfff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_have_the_loaders_layout() {
        assert_eq!((size_of::<Region>(), align_of::<Region>()), (24, 8));
        assert_eq!(core::mem::offset_of!(Region, kind), 16);
    }

    const fn ram(addr: u64, size: u64) -> Region {
        Region { addr, size, kind: RAM }
    }

    #[test]
    fn picks_the_largest_free_ram() {
        let map =
            [ram(0, 0x9fc00), Region { addr: 0xf0000, size: 0x10000, kind: 2 }, ram(0x100000, 0x7f00000)];
        // The kernel image from 1 MiB to 1.5 MiB.
        let got = heap_region(&map, &[(0x100000, 0x180000)], 1 << 32);
        assert_eq!(got, Some((0x180000, 0x8000000 - 0x180000)));
    }

    #[test]
    fn reserved_ranges_split_ram_and_limits_apply() {
        let map = [ram(0x100000, 0x1000_0000)];
        let got = heap_region(&map, &[(0x100000, 0x200000), (0x900_0000, 0x900_1000)], 1 << 32);
        assert_eq!(got, Some((0x200000, 0x900_0000 - 0x200000)));
        assert_eq!(heap_region(&map, &[], 0x400000), Some((0x100000, 0x300000)));
        assert_eq!(heap_region(&[ram(0x1001, 0x800)], &[], 1 << 32), None);
        assert_eq!(heap_region(&[], &[], 1 << 32), None);
    }
}
