//! PCI layout on QEMU `q35`: where unassigned BARs go and which IOAPIC pin a device interrupts on.

/// Memory window for BARs the firmware left unassigned: below the IOAPIC, above the ECAM window
/// QEMU reserves at 0xb000_0000, inside the identity-mapped (uncached) top gigabyte.
pub const BAR_WINDOW: (u64, u64) = (0xc000_0000, 0xfec0_0000);

/// Hands out naturally aligned addresses from a window, lowest first.
#[derive(Debug, Clone)]
pub struct BarAllocator {
    next: u64,
    end: u64,
}

impl BarAllocator {
    /// An allocator over `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self { next: start, end }
    }

    /// Never hand out `[start, end)` (a BAR the firmware already placed).
    pub fn reserve(&mut self, start: u64, end: u64) {
        if start < self.end && end > self.next && start <= self.next {
            self.next = end;
        }
    }

    /// An address for a BAR of `size` bytes (a power of two), or `None` when the window is full.
    pub fn alloc(&mut self, size: u64) -> Option<u64> {
        let size = size.max(0x1000);
        if !size.is_power_of_two() {
            return None;
        }
        let at = self.next.checked_add(size - 1)? & !(size - 1);
        let end = at.checked_add(size)?;
        if end > self.end {
            return None;
        }
        self.next = end;
        Some(at)
    }
}

/// The GSI of a device on q35's root bus: QEMU's ICH9 routes slots 0 to 24 to PIRQ E-H, rotated
/// by slot and pin, and PIRQ A-H to IOAPIC pins 16-23. `pin` is the config-space Interrupt Pin
/// register (1 = INTA); `None` if the device has no interrupt pin.
pub fn q35_gsi(slot: u8, pin: u8) -> Option<u32> {
    if !(1..=4).contains(&pin) {
        return None;
    }
    let intx = u32::from(pin - 1);
    let pirq = match slot {
        // The chipset's own functions use the D*IR registers (default INTA-D -> PIRQ A-D).
        25..=31 => intx,
        _ => 4 + (u32::from(slot) + intx) % 4,
    };
    Some(16 + pirq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_aligned_and_do_not_overlap() {
        let mut a = BarAllocator::new(0xc000_0000, 0xc001_0000);
        assert_eq!(a.alloc(0x1000), Some(0xc000_0000));
        assert_eq!(a.alloc(0x4000), Some(0xc000_4000));
        assert_eq!(a.alloc(0x10), Some(0xc000_8000), "small BARs take a page");
        assert_eq!(a.alloc(0x8000), None, "the window is full");
        assert_eq!(a.alloc(0x3000), None, "not a power of two");
        let mut b = BarAllocator::new(0xc000_0000, 0xd000_0000);
        b.reserve(0xc000_0000, 0xc010_0000);
        assert_eq!(b.alloc(0x1000), Some(0xc010_0000));
    }

    #[test]
    fn q35_interrupt_routing() {
        assert_eq!(q35_gsi(1, 1), Some(21));
        assert_eq!(q35_gsi(2, 1), Some(22));
        assert_eq!(q35_gsi(3, 1), Some(23));
        assert_eq!(q35_gsi(4, 1), Some(20));
        assert_eq!(q35_gsi(3, 2), Some(20));
        assert_eq!(q35_gsi(31, 1), Some(16));
        assert_eq!(q35_gsi(2, 0), None);
    }
}
