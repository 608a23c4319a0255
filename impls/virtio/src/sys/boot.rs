//! PVH entry: the ELF note, the 32-bit trampoline to long mode, and the jump into Rust.
//!
//! A PVH loader (QEMU `-kernel`, Firecracker, cloud-hypervisor) reads the `XEN_ELFNOTE_PHYS32_ENTRY`
//! note and enters `pvh_start32` in 32-bit protected mode, paging off, with the physical address
//! of the `hvm_start_info` block in `ebx`. The trampoline records the TSC (the boot-time figure
//! starts here), identity-maps the first 4 GiB with 1 GiB pages (2 MiB pages on CPUs without
//! them; the top GiB uncached: MMIO, IOAPIC, LAPIC), enables PAE and long mode, loads a flat GDT and jumps to 64-bit code, which
//! sets a stack and calls [`rust_start`].
//!
//! `.bss` is not cleared here: an ELF loader zero-fills everything between a segment's file size
//! and its memory size, and the page tables are written in full.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes of the boot stack (the executor's `block_on` keeps the app's main future on it).
pub const STACK_SIZE: usize = 256 * 1024;

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

    .pushsection .bss.boot, "aw", @nobits
    .balign 4096
morgana_pml4: .skip 4096
morgana_pdpt: .skip 4096
morgana_pd:   .skip 4096 * 4
    .balign 16
morgana_stack_bottom: .skip {stack_size}
morgana_stack_top:
    .popsection

    .pushsection .rodata.boot, "a"
    .balign 16
morgana_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
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

    /* PML4 and PDPT: clear, then one PML4 entry. */
    movl $morgana_pml4, %edi
    movl $2048, %ecx
    xorl %eax, %eax
    rep stosl
    movl $morgana_pdpt + 0x3, %eax
    movl %eax, morgana_pml4

    /* 1 GiB pages where the CPU has them (fewer page-table pages to touch: each first touch is
       a nested page fault under a hypervisor): four PDPT entries, the top one uncached. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb 4f
    movl $0x80000001, %eax
    cpuid
    btl $26, %edx
    jnc 4f
    movl $0x00000083, morgana_pdpt
    movl $0x40000083, morgana_pdpt + 8
    movl $0x80000083, morgana_pdpt + 16
    movl $0xc000009b, morgana_pdpt + 24
    jmp 5f

    /* Else four page directories of 2 MiB pages: present, writable, large; PCD|PWT above
       3 GiB. */
4:  movl $morgana_pd + 0x3, %eax
    xorl %ecx, %ecx
1:  movl %eax, morgana_pdpt(,%ecx,8)
    addl $4096, %eax
    incl %ecx
    cmpl $4, %ecx
    jb 1b
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    cmpl $1536, %ecx
    jb 3f
    orl $0x18, %eax
3:  movl %eax, morgana_pd(,%ecx,8)
    movl $0, morgana_pd+4(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 2b

5:  movl $morgana_pml4, %eax
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
    call {rust_start}
    ud2
    .popsection
    "#,
    stack_size = const STACK_SIZE,
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
