//! The COM1 serial port (16550 UART at 0x3f8), output only.
//!
//! The port is not programmed: every hypervisor's emulated UART transmits at reset settings, and
//! each register access is a VM exit, which the boot-time budget cannot afford.

use super::cpu::{inb, outb};

const COM1: u16 = 0x3f8;
const LSR: u16 = COM1 + 5;
/// Transmit-holding register empty: the 16-byte FIFO has room for 16 bytes.
const LSR_THRE: u8 = 0x20;
const FIFO: usize = 16;

/// Write `bytes`, waiting for room once per FIFO's worth; `\n` becomes `\r\n`.
pub fn write(bytes: &[u8]) {
    let mut room = 0;
    for &b in bytes {
        if b == b'\n' {
            put(b'\r', &mut room);
        }
        put(b, &mut room);
    }
}

fn put(b: u8, room: &mut usize) {
    if *room == 0 {
        // Bounded: a UART that never drains must not hang a panic message forever.
        for _ in 0..100_000 {
            if inb(LSR) & LSR_THRE != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        *room = FIFO;
    }
    outb(COM1, b);
    *room -= 1;
}

/// Nothing is buffered in the kernel: a no-op kept so exit paths read clearly.
pub fn flush() {}
