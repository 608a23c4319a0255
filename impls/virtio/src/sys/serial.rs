//! The COM1 serial port (16550 UART at 0x3f8), output only.
//!
//! Each register access is a VM exit, which the boot-time budget cannot afford one byte at a
//! time: the transmit FIFO is switched on once, and bytes go out 16 at a time (one FIFO's worth)
//! with a single `rep outsb`, after one look at the line status. A hypervisor's UART transmits at
//! reset settings, so nothing else is programmed.

use core::sync::atomic::{AtomicBool, Ordering};

use super::cpu::{inb, outb, outsb};

const COM1: u16 = 0x3f8;
const FCR: u16 = COM1 + 2;
const LSR: u16 = COM1 + 5;
/// Transmit-holding register empty: with the FIFO on, the whole 16-byte FIFO is free.
const LSR_THRE: u8 = 0x20;
const FIFO: usize = 16;

/// Whether the FIFO has been switched on.
static FIFO_ON: AtomicBool = AtomicBool::new(false);

/// Write `bytes`; `\n` becomes `\r\n`.
pub fn write(bytes: &[u8]) {
    let mut lines = bytes.split(|&b| b == b'\n');
    if let Some(first) = lines.next() {
        write_raw(first);
    }
    for line in lines {
        write_raw(b"\r\n");
        write_raw(line);
    }
}

/// Write `bytes` as they are, a FIFO's worth at a time.
pub fn write_raw(bytes: &[u8]) {
    if !FIFO_ON.swap(true, Ordering::Relaxed) {
        // Enable both FIFOs and clear them.
        // SAFETY: COM1's FIFO control register; the UART does no DMA.
        unsafe { outb(FCR, 0x07) };
    }
    for chunk in bytes.chunks(FIFO) {
        // Bounded: a UART that never drains must not hang a panic message forever.
        for _ in 0..100_000 {
            // SAFETY: COM1's line status register: a read without memory effects.
            if unsafe { inb(LSR) } & LSR_THRE != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        // SAFETY: COM1's transmit register; the UART does no DMA.
        unsafe { outsb(COM1, chunk) };
    }
}

/// Nothing is buffered in the kernel: a no-op kept so exit paths read clearly.
pub fn flush() {}
