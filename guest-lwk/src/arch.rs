//! x86_64 glue: descriptor tables, trap and syscall entry stubs, MSRs, control registers, port
//! I/O and the jump to ring 3. Together with `phys` this is the only module with `unsafe`.
//!
//! Syscall entry (one dispatcher, two arrivals — see docs/DESIGN.md "Syscall entry"):
//! - hardware semantics: `syscall` enters ring 0 at LSTAR (`syscall_entry`), which builds the
//!   same [`TrapFrame`] an exception would and marks it with vector [`VECTOR_SYSCALL`];
//! - kvm_pvm semantics: `syscall` jumps to LSTAR but stays in ring 3; LSTAR is a supervisor page,
//!   so the instruction fetch raises #PF (error 0x15) at RIP == LSTAR with RCX/R11 already set.
//!   `trap::dispatch` recognises that fault and treats it as the syscall it is.
//!
//! Both return with `iretq` to RCX with RFLAGS from R11.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;

/// Kernel 64-bit code selector.
pub const KERNEL_CS: u64 = 0x10;
/// Kernel data selector.
pub const KERNEL_DS: u64 = 0x18;
/// User data selector (RPL 3); STAR makes `sysret` use it, Linux uses the same value.
pub const USER_DS: u64 = 0x2b;
/// User 64-bit code selector (RPL 3).
pub const USER_CS: u64 = 0x33;
/// TSS selector.
const TSS_SEL: u16 = 0x40;

/// Pseudo vector number of a syscall that arrived through LSTAR in ring 0.
pub const VECTOR_SYSCALL: u64 = 256;

/// Size of the kernel stack (boot, traps and syscalls share it: one thread per vCPU).
const KSTACK_SIZE: usize = 64 * 1024;

/// A cell for kernel globals.
///
/// The LWK runs one vCPU with interrupts disabled in ring 0 and never re-enters a trap handler
/// while one runs (a fault in ring 0 is fatal), so at most one `&mut` to a global exists at a
/// time. Every access site states this in its `SAFETY:` comment.
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: see the type's documentation: accesses are serialised by construction (single vCPU,
// no reentrancy), so sharing the cell between "threads" (there are none) cannot race.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// Raw pointer to the value; see the type's documentation for when it may be dereferenced.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

#[repr(C, align(16))]
struct KernelStack([u8; KSTACK_SIZE]);

static KSTACK: Global<KernelStack> = Global::new(KernelStack([0; KSTACK_SIZE]));

/// Saved user (or kernel) state of a trap or syscall, as the entry stubs lay it out.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Per-CPU block addressed through GS in `syscall_entry` (after `swapgs`).
#[repr(C)]
struct PerCpu {
    /// Offset 0: kernel stack top to switch to.
    kernel_rsp: u64,
    /// Offset 8: the user RSP while the entry stub switches stacks.
    scratch_rsp: u64,
}

static PERCPU: Global<PerCpu> = Global::new(PerCpu {
    kernel_rsp: 0,
    scratch_rsp: 0,
});

#[repr(C, packed)]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}
const _: () = assert!(core::mem::size_of::<Tss>() == 104);

static TSS: Global<Tss> = Global::new(Tss {
    _reserved0: 0,
    rsp: [0; 3],
    _reserved1: 0,
    ist: [0; 7],
    _reserved2: 0,
    _reserved3: 0,
    // No I/O permission bitmap: ring 3 gets no port access.
    iomap_base: 104,
});

/// GDT in the Linux x86_64 layout (so `syscall`/`sysret` selectors match Linux's).
static GDT: Global<[u64; 10]> = Global::new([
    0,
    0x00cf_9a00_0000_ffff, // 0x08 kernel code 32 (unused)
    0x00af_9a00_0000_ffff, // 0x10 kernel code 64
    0x00cf_9200_0000_ffff, // 0x18 kernel data
    0x00cf_fa00_0000_ffff, // 0x20 user code 32 (unused)
    0x00cf_f200_0000_ffff, // 0x28 user data
    0x00af_fa00_0000_ffff, // 0x30 user code 64
    0,
    0, // 0x40 TSS, filled at boot
    0,
]);

static IDT: Global<[[u64; 2]; 32]> = Global::new([[0; 2]; 32]);

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

unsafe extern "C" {
    /// The 32 exception stubs: 16 bytes each, from this 512-byte aligned address (so the low
    /// 16 bits of every stub address are those of the first plus 16 * vector).
    static TRAP_STUBS_START: u8;
    fn syscall_entry();
}

global_asm!(
    r#"
.macro TRAP_NOERR n
.balign 16
trap_stub_\n:
    push 0
    push \n
    jmp trap_common
.endm
.macro TRAP_ERR n
.balign 16
trap_stub_\n:
    push \n
    jmp trap_common
.endm

.pushsection .text
.balign 512
.global TRAP_STUBS_START
TRAP_STUBS_START:
TRAP_NOERR 0
TRAP_NOERR 1
TRAP_NOERR 2
TRAP_NOERR 3
TRAP_NOERR 4
TRAP_NOERR 5
TRAP_NOERR 6
TRAP_NOERR 7
TRAP_ERR 8
TRAP_NOERR 9
TRAP_ERR 10
TRAP_ERR 11
TRAP_ERR 12
TRAP_ERR 13
TRAP_ERR 14
TRAP_NOERR 15
TRAP_NOERR 16
TRAP_ERR 17
TRAP_NOERR 18
TRAP_NOERR 19
TRAP_NOERR 20
TRAP_ERR 21
TRAP_NOERR 22
TRAP_NOERR 23
TRAP_NOERR 24
TRAP_NOERR 25
TRAP_NOERR 26
TRAP_NOERR 27
TRAP_NOERR 28
TRAP_ERR 29
TRAP_ERR 30
TRAP_NOERR 31

.global syscall_entry
syscall_entry:
    swapgs
    mov gs:[8], rsp
    mov rsp, gs:[0]
    push {user_ds}
    push qword ptr gs:[8]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {vector_syscall}
    swapgs
    jmp trap_common

trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {dispatch}
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
.popsection

.pushsection .text.entry, "ax"
.global _start
_start:
    lea rsp, [rip + {stack}]
    add rsp, {stack_size}
    mov rdi, rsi
    call {kmain}
2:  hlt
    jmp 2b
.popsection
"#,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    vector_syscall = const VECTOR_SYSCALL,
    dispatch = sym crate::trap::dispatch_entry,
    stack = sym KSTACK,
    stack_size = const KSTACK_SIZE,
    kmain = sym crate::kmain,
);

/// Top of the kernel stack.
fn kernel_stack_top() -> u64 {
    KSTACK.get() as u64 + KSTACK_SIZE as u64
}

/// Loads the LWK's GDT, TSS and IDT and reloads the segment registers.
pub fn init_descriptors() {
    let tss_base = TSS.get() as u64;
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    let low = (limit & 0xffff)
        | ((tss_base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((tss_base >> 24) & 0xff) << 56);
    // SAFETY: boot runs once on one vCPU before anything else touches these globals
    // (see `Global`).
    unsafe {
        let gdt = &mut *GDT.get();
        gdt[8] = low;
        gdt[9] = tss_base >> 32;
        let tss = &mut *TSS.get();
        tss.rsp[0] = kernel_stack_top();
        let percpu = &mut *PERCPU.get();
        percpu.kernel_rsp = kernel_stack_top();
    }

    // Gates are computed from the first stub's and patched for the exceptions; the loop is a
    // few instructions per entry (ring 0 is emulated on the development KVM).
    let base = core::ptr::addr_of!(TRAP_STUBS_START) as u64;
    let gate = |handler: u64, ist: u64, type_attr: u64| {
        (handler & 0xffff)
            | (KERNEL_CS << 16)
            | (ist << 32)
            | (type_attr << 40)
            | (((handler >> 16) & 0xffff) << 48)
    };
    let first = gate(base, 0, 0x8e);
    // SAFETY: as above.
    let idt = unsafe { &mut *IDT.get() };
    let mut low = first;
    for entry in idt.iter_mut() {
        entry[0] = low;
        entry[1] = base >> 32;
        low += 16;
    }
    // int3 and into may be used by ring 3 (DPL 3); everything else is DPL 0.
    idt[3][0] = gate(base + 3 * 16, 0, 0xee);
    idt[4][0] = gate(base + 4 * 16, 0, 0xee);
    // Double faults run on their own stack (IST1) so a kernel stack overflow still reports.
    idt[8][0] = gate(base + 8 * 16, 1, 0x8e);
    // SAFETY: as above.
    unsafe { (*TSS.get()).ist[0] = kernel_stack_top() };

    let gdtr = DescriptorPointer {
        limit: (10 * 8 - 1) as u16,
        base: GDT.get() as u64,
    };
    let idtr = DescriptorPointer {
        limit: (32 * 16 - 1) as u16,
        base: IDT.get() as u64,
    };
    // SAFETY: the tables are static and fully initialised above; the selectors used exist in
    // the GDT; the far return reloads CS with the same 64-bit code segment.
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "lidt [{idtr}]",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:x}",
            "mov gs, {tmp:x}",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "ltr {tss:x}",
            gdtr = in(reg) &gdtr,
            idtr = in(reg) &idtr,
            ds = in(reg) KERNEL_DS,
            cs = in(reg) KERNEL_CS,
            tss = in(reg) TSS_SEL,
            tmp = out(reg) _,
        );
    }
}

/// Model-specific registers the LWK uses.
pub mod msr {
    /// Extended features (SCE, LME, LMA, NXE).
    pub const EFER: u32 = 0xc000_0080;
    /// Segment selectors for syscall/sysret.
    pub const STAR: u32 = 0xc000_0081;
    /// 64-bit syscall entry point.
    pub const LSTAR: u32 = 0xc000_0082;
    /// RFLAGS bits cleared on syscall.
    pub const SFMASK: u32 = 0xc000_0084;
    /// FS base (user TLS).
    pub const FS_BASE: u32 = 0xc000_0100;
    /// GS base.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// GS base swapped in by `swapgs`.
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
}

/// Reads an MSR.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading the architectural MSRs listed in `msr` has no side effects.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes an MSR. Only the MSRs in [`msr`] are written, each with a value valid for it.
pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: callers pass MSRs from `msr` with valid values (canonical addresses, EFER bits
    // the CPU supports); none of them changes memory safety of the running kernel.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack))
    };
}

/// Sets up `syscall`: EFER.SCE, STAR selectors, LSTAR, SFMASK, and the per-CPU block.
pub fn init_syscall() {
    wrmsr(msr::EFER, rdmsr(msr::EFER) | 1);
    // sysret: CS = 0x23 + 16 = 0x33, SS = 0x23 + 8 = 0x2b; syscall: CS = 0x10, SS = 0x18.
    wrmsr(msr::STAR, (0x23 << 48) | (KERNEL_CS << 32));
    wrmsr(msr::LSTAR, syscall_entry_address());
    // Clear TF, IF, DF, IOPL, NT, AC on entry, as Linux does.
    wrmsr(msr::SFMASK, 0x4_7700);
    wrmsr(msr::KERNEL_GS_BASE, PERCPU.get() as u64);
    wrmsr(msr::GS_BASE, 0);
}

/// Address of the LSTAR entry stub.
pub fn syscall_entry_address() -> u64 {
    syscall_entry as *const () as u64
}

/// Writes a 32-bit value to an I/O port (a VM exit to the VMM's device for that port).
pub fn outl(port: u16, value: u32) {
    // SAFETY: the ports used belong to lwk-vmm's own devices (offload-abi::port); the VMM
    // services the write synchronously and touches only memory the request names.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack)) };
}

/// Reads CR3 (the current page-table root).
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

/// Reads CR2 (the faulting address of the last #PF).
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack)) };
    v
}

/// Invalidates the TLB entry of one virtual address.
pub fn invlpg(va: u64) {
    // SAFETY: invalidating a TLB entry only makes the CPU re-read the page tables.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack)) };
}

/// Invalidates every non-global TLB entry and the paging-structure caches (reloads CR3): one
/// instruction instead of one `invlpg` per page for large ranges.
pub fn flush_tlb() {
    // SAFETY: writing back the current CR3 only makes the CPU drop cached translations.
    unsafe {
        asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack));
    }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the TSC.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Halts the vCPU forever (after the exit port was written the VMM never resumes it).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: hlt with interrupts disabled just stops the vCPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// Leaves ring 0 for the program: jumps to `rip` in ring 3 with stack `rsp`, every general
/// register zero (the x86_64 psABI start state: rdx = 0 means "no exit handler").
pub fn enter_user(rip: u64, rsp: u64) -> ! {
    // SAFETY: `rip`/`rsp` are user addresses mapped by the loader; the user selectors exist in
    // the GDT; after iretq the CPU runs in ring 3 and can only come back through the IDT or
    // LSTAR, which use the kernel stack from the TSS / per-CPU block.
    unsafe {
        asm!(
            "push {ss}",
            "push {rsp}",
            "push {rflags}",
            "push {cs}",
            "push {rip}",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor esi, esi",
            "xor edi, edi",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "iretq",
            ss = in(reg) USER_DS,
            rsp = in(reg) rsp,
            rflags = in(reg) 0x202u64,
            cs = in(reg) USER_CS,
            rip = in(reg) rip,
            options(noreturn),
        )
    }
}
