//! PVH entry: the ELF note, the 32-bit trampoline to long mode, and the jump into Rust.
//!
//! A PVH loader (QEMU `-kernel`, Firecracker, cloud-hypervisor) reads the `XEN_ELFNOTE_PHYS32_ENTRY`
//! note and enters `pvh_start32` in 32-bit protected mode, paging off, with the physical address
//! of the `hvm_start_info` block in `ebx`. The trampoline records the TSC (the boot-time figure
//! starts here), identity-maps the first 2 MiB through a page table built into the image (the
//! null page and the stack guard page at 1 MiB left out) and the 2 MiB pages the rest of the
//! image covers, enables PAE and long mode, loads a flat GDT (with room for the TSS that
//! `idt::init` adds) and jumps to 64-bit code, which sets a stack and calls [`rust_start`]. The rest of
//! the identity map (RAM for the heap, device windows) is added on demand by [`super::paging`].
//!
//! `.bss` is not cleared here: an ELF loader zero-fills everything between a segment's file size
//! and its memory size (the page tables rely on it).

use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes of the boot stack (the executor's `block_on` keeps the app's main future on it).
pub const STACK_SIZE: usize = 256 * 1024;

/// The page below the boot stack, never mapped: an overflow faults there (see `link.ld`).
pub const STACK_GUARD: u64 = 0x10_0000;

/// Written at the bottom of the stack at entry; gone once the stack has overflowed.
const CANARY: u64 = 0x6d6f_7267_616e_6121;

unsafe extern "C" {
    // SAFETY: the stack's lowest word, defined in the `global_asm!` below.
    static morgana_stack_bottom: u64;
    // SAFETY: the label just above the boot stack, defined there too; only its address is used.
    static morgana_stack_top: u8;
}

/// The boot stack's addresses.
pub fn stack() -> core::ops::Range<u64> {
    let bottom = &raw const morgana_stack_bottom as u64;
    bottom..&raw const morgana_stack_top as u64
}

/// Whether the stack has overflowed (its bottom word was overwritten).
pub fn stack_overflowed() -> bool {
    // SAFETY: reads the first word of the boot stack, a static this module defines; a volatile
    // read because the compiler cannot see the stores into it.
    unsafe { core::ptr::read_volatile(&raw const morgana_stack_bottom) != CANARY }
}

/// TSC at the first instruction, written by the trampoline.
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// Physical address of `hvm_start_info`, written by the trampoline.
static START_INFO: AtomicU32 = AtomicU32::new(0);

global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4                 /* name size: "Xen\0" */
    .long 8                 /* descriptor size */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .popsection

    /* Placed by the linker script just above the guard page at 1 MiB. */
    .pushsection .bss.stack, "aw", @nobits
    .balign 4096
    .globl morgana_stack_bottom
morgana_stack_bottom: .skip {stack_size}
    .globl morgana_stack_top
morgana_stack_top:
    .popsection

    /* The first 2 MiB in 4 KiB pages, identity-mapped, but for the null page (a null pointer
       faults) and the stack guard page at 1 MiB. Built here, in the file, rather than at boot:
       512 stores cost about a millisecond under an emulating hypervisor. */
    .pushsection .boot.pt0, "a"
    .balign 4096
morgana_pt0:
    .set page, 0
    .rept 512
    .if (page == 0) || (page == {guard})
    .quad 0
    .else
    .quad page + 0x3        /* present, writable */
    .endif
    .set page, page + 0x1000
    .endr
    .popsection

    .pushsection .bss.boot, "aw", @nobits
    .balign 4096
morgana_pml4: .skip 4096
    .globl morgana_pdpt
morgana_pdpt: .skip 4096
    .globl morgana_pd
morgana_pd:   .skip 4096 * 4
    .popsection

    .pushsection .data.boot, "aw"
    .balign 16
    .globl morgana_gdt
morgana_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
    .quad 0, 0                  /* 0x18: the TSS, filled in by `idt::init` */
morgana_gdt_end:
    .balign 4
morgana_gdt_ptr:
    .word morgana_gdt_end - morgana_gdt - 1
    .quad morgana_gdt
    .popsection

    .pushsection .text.boot, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    rdtsc
    movl %eax, {boot_tsc}
    movl %edx, {boot_tsc}+4
    movl %ebx, {start_info}

    /* Map the first 2 MiB through `morgana_pt0`, then the 2 MiB pages up to the end of the
       image (the loader's tables, image, .bss): a few stores, made before paging is on. The rest of the identity map is added on demand
       (`paging::map`), because once paging is on every store to a page table is trapped and
       emulated under nested virtualization (about 6 us each, measured). The tables are in .bss,
       already zero. */
    movl $morgana_pdpt + 0x3, morgana_pml4
    movl $morgana_pd + 0x3, morgana_pdpt
    movl $morgana_pt0 + 0x3, morgana_pd
    movl $0x200083, %eax        /* present, writable, 2 MiB */
    movl $morgana_pd + 8, %edi
    jmp 2f
1:
    movl %eax, (%edi)
    addl $8, %edi
    addl $0x200000, %eax
2:
    cmpl $__kernel_end + 0x83, %eax
    jb 1b
    movl $morgana_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax             /* PAE */
    movl %eax, %cr4
    movl $0xc0000080, %ecx      /* EFER */
    rdmsr
    orl $0x100, %eax            /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax       /* PG | PE */
    movl %eax, %cr0
    lgdt morgana_gdt_ptr
    ljmp $0x08, $morgana_start64

    .code64
morgana_start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    leaq morgana_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    movabsq ${canary}, %rax
    movq %rax, morgana_stack_bottom(%rip)

    call {rust_start}
    ud2
    .popsection
    "#,
    stack_size = const STACK_SIZE,
    guard = const STACK_GUARD,
    canary = const CANARY,
    boot_tsc = sym BOOT_TSC,
    start_info = sym START_INFO,
    rust_start = sym rust_start,
    options(att_syntax)
);

// SAFETY: `crate::entry!` exports both symbols with exactly these types from the app's crate.
unsafe extern "Rust" {
    /// The app's entry.
    safe fn morgana_virtio_main() -> !;
    /// The app's crate name.
    safe static morgana_virtio_program: &'static str;
}

/// The app's name, for messages.
pub fn program_name() -> &'static str {
    morgana_virtio_program
}

/// First Rust code: the app's `main` (which calls [`crate::run`]).
extern "C" fn rust_start() -> ! {
    morgana_virtio_main()
}

/// TSC value at the first instruction of the kernel.
pub fn boot_tsc() -> u64 {
    BOOT_TSC.load(Ordering::Relaxed)
}

/// Physical address of the PVH start-info block.
pub fn start_info_addr() -> u32 {
    START_INFO.load(Ordering::Relaxed)
}
