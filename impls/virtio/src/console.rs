//! The serial console: `log` records, messages, panics and CPU exceptions.

use alloc::boxed::Box;
use core::fmt::{self, Write};

use morgana_rt::TimeSource;

use crate::sys::serial;
use crate::time::KernelTime;

/// Bytes gathered before they go to the port: one line, usually.
const LINE: usize = 256;

/// A line assembled on the stack, so the port sees one write per line instead of one per
/// formatted piece (each write costs a look at the line status, a VM exit).
struct LineBuf {
    buf: [u8; LINE],
    len: usize,
}

impl LineBuf {
    /// Append `s` as it is, sending the buffer whenever it fills.
    fn push_raw(&mut self, mut s: &[u8]) {
        while !s.is_empty() {
            if self.len == LINE {
                serial::write_raw(&self.buf);
                self.len = 0;
            }
            let n = s.len().min(LINE - self.len);
            // Byte by byte: pieces are a few bytes long, and a `memcpy` call (a `rep movsb`
            // started for five bytes) costs more under an emulating hypervisor.
            for (d, b) in self.buf[self.len..self.len + n].iter_mut().zip(s) {
                *d = *b;
            }
            self.len += n;
            s = &s[n..];
        }
    }

    /// Append text, `\n` as `\r\n` (what a terminal on the serial line wants).
    fn push(&mut self, s: &[u8]) {
        let mut lines = s.split(|&b| b == b'\n');
        if let Some(first) = lines.next() {
            self.push_raw(first);
        }
        for line in lines {
            self.push_raw(b"\r\n");
            self.push_raw(line);
        }
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

impl crate::logline::Sink for LineBuf {
    fn ascii(&mut self, bytes: &[u8]) {
        self.push_raw(bytes);
    }
}

/// Print one line on the console.
pub fn println(args: fmt::Arguments<'_>) {
    let mut line = LineBuf { buf: [0; LINE], len: 0 };
    let _ = writeln!(line, "{args}");
    serial::write_raw(&line.buf[..line.len]);
}

struct SerialLogger {
    time: KernelTime,
    level: log::LevelFilter,
}

impl log::Log for SerialLogger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        // virtio-drivers narrates device setup at info level: only its warnings matter unless
        // the user asked for trace.
        let cap = if meta.target().starts_with("virtio_drivers") && self.level < log::LevelFilter::Trace {
            log::LevelFilter::Warn
        } else {
            self.level
        };
        meta.level() <= cap
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let mut line = LineBuf { buf: [0; LINE], len: 0 };
            let _ = crate::logline::write_log_line(&mut line, self.time.now(), record);
            line.push(b"\n");
            serial::write_raw(&line.buf[..line.len]);
        }
    }

    fn flush(&self) {}
}

/// Route `log` to the serial port at `level`.
pub fn init_log(time: KernelTime, level: log::LevelFilter) {
    let logger = Box::leak(Box::new(SerialLogger { time, level }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// Report a CPU exception (called by the exception handler, which then exits).
pub fn report_exception(vector: u64, name: &str, error: u64, rip: u64, rsp: u64, cr2: u64) {
    println(format_args!(
        "CPU exception {vector} ({name}), error code {error:#x}, at RIP {rip:#x} (RSP {rsp:#x}, CR2 {cr2:#x})"
    ));
    if crate::sys::boot::stack_overflowed() {
        println(format_args!("the boot stack has overflowed: its bottom word was overwritten"));
    }
}

/// Frames a crash's backtrace shows at most.
const FRAMES: usize = 32;

/// Print the backtrace from frame pointer `fp` (the crashed code's), a line per frame with its
/// return address, innermost first: `backtrace: #0 0x10a3f2`. `cargo xtask run` and the QEMU
/// suite print each frame's function and line under it, from the image's unstripped copy.
pub fn report_backtrace(fp: u64) {
    let mut frames = [0u64; FRAMES];
    let n = crate::sys::backtrace::walk(fp, &mut frames);
    for (i, ret) in frames[..n].iter().enumerate() {
        println(format_args!("backtrace: #{i} {ret:#x}"));
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::sys::cpu::cli();
    if let Some(failed) = crate::sys::heap::failed_allocation()
        && is_allocation_failure(info.message(), failed)
    {
        report_out_of_memory(failed);
    } else {
        match info.location() {
            Some(at) => println(format_args!("panicked at {at}: {}", info.message())),
            None => println(format_args!("panicked: {}", info.message())),
        }
    }
    report_backtrace(crate::sys::backtrace::frame_pointer());
    crate::sys::exit(crate::run::EXIT_PANIC)
}

/// Whether a panic's message is the one `alloc` panics with when the allocator found no room for
/// `size` bytes ("memory allocation of 65536 bytes failed").
#[cfg(target_os = "none")]
fn is_allocation_failure(message: core::panic::PanicMessage<'_>, size: usize) -> bool {
    use core::fmt::Write;
    /// The first bytes of a message, enough to hold the one `alloc` writes.
    struct Start {
        buf: [u8; 64],
        len: usize,
    }
    impl Write for Start {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len + s.len();
            self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut start = Start { buf: [0; 64], len: 0 };
    if write!(start, "{message}").is_err() {
        return false;
    }
    let said = core::str::from_utf8(&start.buf[..start.len]).unwrap_or_default();
    said.strip_prefix("memory allocation of ")
        .and_then(|rest| rest.strip_suffix(" bytes failed"))
        .and_then(|n| n.parse::<usize>().ok())
        == Some(size)
}

/// One line for an allocation the heap had no room for: its size, and the heap's use and size.
#[cfg(target_os = "none")]
fn report_out_of_memory(size: usize) {
    // Tenths of a MiB in integers: float formatting would cost every image a few KiB.
    let tenths = |n: usize| (n as u64 * 10 + (1 << 19)) >> 20;
    match crate::sys::heap::usage() {
        Some((used, heap)) => {
            let (used, heap) = (tenths(used), tenths(heap));
            println(format_args!(
                "out of memory: a {size}-byte allocation failed with {}.{} of {}.{} MiB in use",
                used / 10,
                used % 10,
                heap / 10,
                heap % 10
            ))
        }
        None => println(format_args!("out of memory: a {size}-byte allocation failed")),
    }
}
