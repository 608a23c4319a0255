//! The interrupt descriptor table: CPU exceptions report and exit; device and timer interrupts
//! go to [`apic::on_interrupt`](super::apic::on_interrupt).
//!
//! Page faults and double faults run on a stack of their own (IST 1 of the task-state segment):
//! a boot-stack overflow faults on the guard page below the stack, where the CPU could not push
//! the exception frame, and is reported as such instead of resetting the machine.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use super::apic::{GSIS, IRQ_BASE, SPURIOUS_VECTOR, TIMER_VECTOR, on_interrupt};

/// Exception stubs are 16 bytes apart from `morgana_exc_stubs`; interrupt stubs likewise from
/// `morgana_irq_stubs` (one per vector from `IRQ_BASE` through the timer's).
const STUB_SIZE: u64 = 16;
const IRQ_STUBS: u32 = GSIS as u32 + 1;

global_asm!(
    r#"
    .pushsection .text.morgana_idt, "ax"
    .code64

    /* Exceptions: push a zero where the CPU pushes no error code, then the vector. */
    .balign 16
    .globl morgana_exc_stubs
morgana_exc_stubs:
    .set vec, 0
    .rept 32
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp morgana_exc_common
    .set vec, vec + 1
    .endr

morgana_exc_common:
    /* [rsp] = vector, error code, rip, cs, rflags, rsp, ss. Never returns. The interrupted
       code's frame pointer, for the backtrace, is the second argument. */
    movq %rsp, %rdi
    movq %rbp, %rsi
    andq $-16, %rsp
    cld
    call {exception}
    ud2

    /* Interrupts: push the vector, save the caller-saved registers, call, restore, return. */
    .balign 16
    .globl morgana_irq_stubs
morgana_irq_stubs:
    .set vec, {irq_base}
    .rept {irq_stubs}
    .balign 16
    pushq $vec
    jmp morgana_irq_common
    .set vec, vec + 1
    .endr

morgana_irq_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    movq 72(%rsp), %rdi
    subq $8, %rsp
    cld
    call {interrupt}
    addq $8, %rsp
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $8, %rsp
    iretq

    .balign 16
    .globl morgana_spurious
morgana_spurious:
    iretq
    .popsection
    "#,
    exception = sym on_exception,
    interrupt = sym on_interrupt,
    irq_base = const IRQ_BASE,
    irq_stubs = const IRQ_STUBS,
    options(att_syntax)
);

unsafe extern "C" {
    // SAFETY: labels defined in the `global_asm!` above; only their addresses are used.
    static morgana_exc_stubs: u8;
    static morgana_irq_stubs: u8;
    static morgana_spurious: u8;
}

#[repr(C, align(16))]
struct Table(UnsafeCell<[u64; 512]>);

// SAFETY: written by `init` before interrupts are enabled, and by `enable_irq` with interrupts
// off for a vector nothing can raise yet; otherwise only read by the CPU.
unsafe impl Sync for Table {}

static IDT: Table = Table(UnsafeCell::new([0; 512]));

/// The 64-bit task-state segment: only its interrupt stack table is used.
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

struct TssCell(UnsafeCell<Tss>);

// SAFETY: written once by `init` with interrupts off, before `ltr`; then only the CPU reads it.
unsafe impl Sync for TssCell {}

static TSS: TssCell = TssCell(UnsafeCell::new(Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    // No I/O permission bitmap: past the segment's limit.
    iomap_base: size_of::<Tss>() as u16,
}));

/// The stack page faults and double faults run on (IST 1).
#[repr(C, align(16))]
struct FaultStack(UnsafeCell<[u8; 16 * 1024]>);

// SAFETY: only the CPU uses it, as a stack, when it delivers a fault; the handler never returns.
unsafe impl Sync for FaultStack {}

static FAULT_STACK: FaultStack = FaultStack(UnsafeCell::new([0; 16 * 1024]));

/// The addresses of the stack page faults and double faults run on.
pub fn fault_stack() -> core::ops::Range<u64> {
    let bottom = FAULT_STACK.0.get() as u64;
    bottom..bottom + size_of::<FaultStack>() as u64
}

/// The TSS's selector: GDT entry 3 (see `boot.rs`).
const TSS_SELECTOR: u16 = 0x18;

unsafe extern "C" {
    // SAFETY: the GDT in `boot.rs`'s `global_asm!`: five quadwords in .data, the last two
    // reserved for the TSS descriptor.
    static mut morgana_gdt: [u64; 5];
}

/// The two quadwords of an interrupt gate to `handler` in the kernel code segment, on interrupt
/// stack `ist` (0 for the current one).
fn gate(handler: u64, ist: u64) -> (u64, u64) {
    let low =
        (handler & 0xffff) | (0x08 << 16) | (ist << 32) | (0x8e << 40) | ((handler >> 16) & 0xffff) << 48;
    (low, handler >> 32)
}

/// Point `vector` at `handler` ([`gate`]). Two stores, with interrupts masked: boot executes
/// every instruction at a cost under an emulating hypervisor.
///
/// Private: every `handler` passed is one of the stubs in the `global_asm!` above.
fn set(vector: u8, handler: u64, ist: u64) {
    let (low, high) = gate(handler, ist);
    let entry = IDT.0.get() as *mut u64;
    // SAFETY: `2 * vector + 1 < 512`; interrupts are masked, so no CPU reads the gate while it
    // is half written, and no Rust reference to the table exists.
    super::cpu::without_interrupts(|| unsafe {
        entry.add(2 * usize::from(vector)).write_volatile(low);
        entry.add(2 * usize::from(vector) + 1).write_volatile(high);
    })
}

/// Vectors 0..32 to the exception stubs (`STUB_SIZE` apart from `stubs`), page and double
/// faults on IST 1: in one interrupt-masked stretch, and when the stubs share their upper 48
/// address bits (they are 512 bytes in one section), each gate is the first one plus the
/// stub's offset, two stores and an add (the general [`gate`] is about 20 instructions, which
/// this host's KVM emulates one by one at boot).
fn set_exceptions(stubs: u64) {
    const COUNT: usize = 32;
    let entry = IDT.0.get() as *mut u64;
    super::cpu::without_interrupts(|| {
        if (stubs & 0xffff) + COUNT as u64 * STUB_SIZE <= 0x1_0000 {
            let (mut low, high) = gate(stubs, 0);
            for v in 0..COUNT {
                // SAFETY: `2 * v + 1 < 64 < 512`; interrupts are masked, so no CPU reads the
                // gate while it is half written, and no Rust reference to the table exists.
                unsafe {
                    entry.add(2 * v).write_volatile(low);
                    entry.add(2 * v + 1).write_volatile(high);
                }
                low += STUB_SIZE;
            }
        } else {
            for v in 0..COUNT {
                let (low, high) = gate(stubs + v as u64 * STUB_SIZE, 0);
                // SAFETY: as above.
                unsafe {
                    entry.add(2 * v).write_volatile(low);
                    entry.add(2 * v + 1).write_volatile(high);
                }
            }
        }
        for v in [8, 14] {
            // SAFETY: as above; the gate's IST field (bits 32..35 of its first quadword) to 1.
            unsafe { entry.add(2 * v).write_volatile(entry.add(2 * v).read_volatile() | 1 << 32) }
        }
    })
}

/// Load the task-state segment, whose IST 1 is [`FAULT_STACK`].
fn init_tss() {
    let tss = TSS.0.get();
    let base = tss as u64;
    let limit = (size_of::<Tss>() - 1) as u64;
    // Available 64-bit TSS (type 9), present.
    let low = (limit & 0xffff) | (base & 0xff_ffff) << 16 | 0x89 << 40 | ((base >> 24) & 0xff) << 56;
    let top = FAULT_STACK.0.get() as u64 + size_of::<FaultStack>() as u64;
    // SAFETY: with interrupts off (`init`), before `ltr`, which runs once (`init`), nothing reads
    // the TSS or the GDT's last two entries; the TSS is a static, so the descriptor's base stays valid; `ltr` loads a selector
    // of the descriptor just written (and marks it busy, as it must be loaded once).
    unsafe {
        (&raw mut (*tss).ist[0]).write_unaligned(top);
        let gdt = &raw mut morgana_gdt as *mut u64;
        gdt.add(3).write_volatile(low);
        gdt.add(4).write_volatile(base >> 32);
        asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack, preserves_flags));
    }
}

static LOADED: AtomicBool = AtomicBool::new(false);

/// Fill the exception, timer and spurious vectors and load the IDT (the first call; later ones
/// do nothing). Device vectors are filled as their lines are routed ([`enable_irq`]).
pub fn init() {
    if LOADED.swap(true, Ordering::AcqRel) {
        return;
    }
    super::cpu::without_interrupts(init_tss);
    // Page and double faults on their own stack: the boot stack may be what faulted.
    set_exceptions(&raw const morgana_exc_stubs as u64);
    enable_irq(TIMER_VECTOR);
    set(SPURIOUS_VECTOR, &raw const morgana_spurious as u64, 0);
    let pointer = Dtr { limit: (512 * 8 - 1) as u16, base: IDT.0.get() as u64 };
    // SAFETY: `pointer` describes the static table, which lives forever; every vector that can
    // fire has its gate.
    unsafe { asm!("lidt [{}]", in(reg) &raw const pointer, options(readonly, nostack, preserves_flags)) }
}

/// Give interrupt `vector` (a device line's, from `IRQ_BASE`, or the timer's) its gate, before
/// the vector can fire; out-of-range vectors are ignored.
pub fn enable_irq(vector: u8) {
    if let Some(i) = vector.checked_sub(IRQ_BASE).filter(|i| u32::from(*i) < IRQ_STUBS) {
        set(vector, &raw const morgana_irq_stubs as u64 + u64::from(i) * STUB_SIZE, 0);
    }
}

/// The operand of `lidt`.
#[repr(C, packed)]
struct Dtr {
    limit: u16,
    base: u64,
}

/// What the CPU pushed, plus the vector the stub pushed.
#[repr(C)]
pub struct ExceptionFrame {
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection fault",
    "page fault",
    "reserved",
    "x87 floating-point error",
    "alignment check",
    "machine check",
    "SIMD floating-point error",
    "virtualization exception",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security exception",
    "reserved",
];

extern "C" fn on_exception(frame: &ExceptionFrame, rbp: u64) -> ! {
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) }
    let name = NAMES.get(frame.vector as usize).copied().unwrap_or("unknown");
    crate::console::report_exception(frame.vector, name, frame.error, frame.rip, frame.rsp, cr2);
    let guard = super::boot::STACK_GUARD..super::boot::STACK_GUARD + 4096;
    if (frame.vector == 14 && guard.contains(&cr2)) || (frame.vector == 8 && guard.contains(&frame.rsp)) {
        crate::console::println(format_args!(
            "stack overflow: the app used more than the {} KiB boot stack",
            super::boot::STACK_SIZE / 1024
        ));
    }
    crate::console::report_backtrace(rbp);
    super::exit(crate::run::EXIT_EXCEPTION)
}
