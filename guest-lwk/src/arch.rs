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
use core::sync::atomic::{AtomicU32, Ordering};

/// Kernel 64-bit code selector.
pub const KERNEL_CS: u64 = 0x10;
/// Kernel data selector.
pub const KERNEL_DS: u64 = 0x18;
/// User data selector (RPL 3); STAR makes `sysret` use it, Linux uses the same value.
pub const USER_DS: u64 = 0x2b;
/// User 64-bit code selector (RPL 3).
pub const USER_CS: u64 = 0x33;
/// Selector of CPU 0's TSS; CPU `i` uses `TSS_SEL + 16 * i`.
const TSS_SEL: u16 = 0x40;

/// Most CPUs the LWK supports (the ABI layout's limit).
pub const MAX_CPUS: usize = offload_abi::layout::MAX_VCPUS as usize;

/// Vector of the wake-up IPI.
pub const VECTOR_IPI: u64 = 0xf0;
/// Vector of the LAPIC timer (TSC-deadline mode).
pub const VECTOR_TIMER: u64 = 0xf1;
/// Vector the VMM raises when signals were sent to lwk-vmm (`offload_abi::hostsig`).
pub const VECTOR_HOSTSIG: u64 = offload_abi::hostsig::VECTOR as u64;
/// Vector the VMM raises when an asynchronous offload completed (`offload_abi::async_offload`).
pub const VECTOR_ASYNC: u64 = offload_abi::async_offload::VECTOR as u64;
/// Spurious-interrupt vector.
pub const VECTOR_SPURIOUS: u64 = 0xff;

/// Pseudo vector number of a syscall that arrived through LSTAR in ring 0.
pub const VECTOR_SYSCALL: u64 = 256;

/// Most thread contexts (threads, and the idle loops of vCPUs without a thread), each with a
/// kernel stack of its own.
pub const MAX_THREADS: usize = 2 * MAX_CPUS;

/// Size of each thread context's kernel stack (its traps and syscalls run on it; vCPU `i`
/// boots on context `i`'s).
const KSTACK_SIZE: usize = 1 << KSTACK_SHIFT;
const KSTACK_SHIFT: u32 = 15;

/// A cell for kernel globals that need no lock because of who touches them.
///
/// Used for: state written during single-threaded boot (vCPU 0 before it releases the other
/// vCPUs) and read-only afterwards; per-CPU arrays where each CPU touches only its own element;
/// and the vCPU-local bridge page. The LWK runs with interrupts disabled in ring 0 except in
/// its halt windows, and never re-enters a trap handler on a CPU while one runs there (a fault
/// in ring 0 is fatal). Every access site states which case applies in its `SAFETY:` comment.
/// Shared mutable kernel state lives in a [`SpinLock`] instead.
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: see the type's documentation: every access is either boot-time (one CPU), per-CPU
// (disjoint elements), or read-only, so sharing the cell between CPUs cannot race.
unsafe impl<T> Sync for Global<T> {}

/// A spinlock for kernel state shared between CPUs. Critical sections are short (no halting
/// or offloading while held): each spin iteration is emulated on the development KVM.
pub struct SpinLock<T> {
    locked: core::sync::atomic::AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Exclusive access to a [`SpinLock`]'s value; unlocks when dropped.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    /// A new unlocked lock.
    pub const fn new(value: T) -> Self {
        SpinLock {
            locked: core::sync::atomic::AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        use core::sync::atomic::Ordering;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        SpinGuard { lock: self }
    }

    /// Takes the lock if it is free (paths that must not wait, such as the panic path).
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        use core::sync::atomic::Ordering;
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinGuard { lock: self })
    }

    /// A guard for a lock that is already held on behalf of the caller: a context switch
    /// hands the kernel lock from the context that switched to the one that runs next, and a
    /// context's first run has no guard of its own to continue with.
    ///
    /// # Safety
    /// The lock must be held, and nothing else may use or release that holding afterwards.
    pub unsafe fn adopt(&self) -> SpinGuard<'_, T> {
        debug_assert!(self.locked.load(core::sync::atomic::Ordering::Relaxed));
        SpinGuard { lock: self }
    }
}

impl<T> core::ops::Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> core::ops::DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock
            .locked
            .store(false, core::sync::atomic::Ordering::Release);
    }
}

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

/// One kernel stack per thread context, zero-initialised (in .bss, so not in the image file).
#[unsafe(link_section = ".bss.kstacks")]
static KSTACKS: Global<[KernelStack; MAX_THREADS]> =
    Global::new([const { KernelStack([0; KSTACK_SIZE]) }; MAX_THREADS]);

/// The vCPU each thread context runs on (contexts never migrate); context `i < MAX_CPUS` is
/// vCPU `i`'s boot context.
static SLOT_CPU: [AtomicU32; MAX_THREADS] = {
    let mut a = [const { AtomicU32::new(0) }; MAX_THREADS];
    let mut i = 0;
    while i < MAX_CPUS {
        a[i] = AtomicU32::new(i as u32);
        i += 1;
    }
    a
};

/// Saved user (or kernel) state of a trap or syscall, as the entry stubs lay it out.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
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

static PERCPU: Global<[PerCpu; MAX_CPUS]> = Global::new(
    [const {
        PerCpu {
            kernel_rsp: 0,
            scratch_rsp: 0,
        }
    }; MAX_CPUS],
);

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

static TSS: Global<[Tss; MAX_CPUS]> = Global::new(
    [const {
        Tss {
            _reserved0: 0,
            rsp: [0; 3],
            _reserved1: 0,
            ist: [0; 7],
            _reserved2: 0,
            _reserved3: 0,
            // No I/O permission bitmap: ring 3 gets no port access.
            iomap_base: 104,
        }
    }; MAX_CPUS],
);

/// GDT entries: Linux's 8 plus a 16-byte TSS descriptor per CPU.
const GDT_ENTRIES: usize = 8 + 2 * MAX_CPUS;

/// GDT in the Linux x86_64 layout (so `syscall`/`sysret` selectors match Linux's).
static GDT: Global<[u64; GDT_ENTRIES]> = Global::new({
    let mut g = [0u64; GDT_ENTRIES];
    g[1] = 0x00cf_9a00_0000_ffff; // 0x08 kernel code 32 (unused)
    g[2] = 0x00af_9a00_0000_ffff; // 0x10 kernel code 64
    g[3] = 0x00cf_9200_0000_ffff; // 0x18 kernel data
    g[4] = 0x00cf_fa00_0000_ffff; // 0x20 user code 32 (unused)
    g[5] = 0x00cf_f200_0000_ffff; // 0x28 user data
    g[6] = 0x00af_fa00_0000_ffff; // 0x30 user code 64
    g // 0x40 + 16 * cpu: TSS descriptors, filled by each CPU at boot
});

static IDT: Global<[[u64; 2]; 256]> = Global::new([[0; 2]; 256]);

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
    fn irq_stub_ipi();
    fn irq_stub_timer();
    fn irq_stub_spurious();
    fn irq_stub_hostsig();
    fn irq_stub_async();
    fn lwk_switch_stack();
    fn thread_first_entry();
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

.balign 16
.global irq_stub_ipi
irq_stub_ipi:
    push 0
    push {vector_ipi}
    jmp trap_common
.balign 16
.global irq_stub_timer
irq_stub_timer:
    push 0
    push {vector_timer}
    jmp trap_common
.balign 16
.balign 16
.global irq_stub_hostsig
irq_stub_hostsig:
    push 0
    push {vector_hostsig}
    jmp trap_common
.balign 16
.global irq_stub_async
irq_stub_async:
    push 0
    push {vector_async}
    jmp trap_common
.balign 16
.global irq_stub_spurious
irq_stub_spurious:
    push 0
    push {vector_spurious}
    jmp trap_common

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
.global trap_restore
trap_restore:
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

.global lwk_switch_stack
lwk_switch_stack:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

.global thread_first_entry
thread_first_entry:
    mov rdi, rsp
    call {first_run}
    jmp trap_restore
.popsection

.pushsection .text.entry, "ax"
.global _start
_start:
    cmp rdx, {max_cpus}
    jae 3f
    lea rsp, [rip + {stacks}]
    mov rax, rdx
    inc rax
    shl rax, {stack_shift}
    add rsp, rax
    mov rdi, rsi
    mov rsi, rdx
    call {kmain}
3:  cli
    hlt
    jmp 3b
.popsection
"#,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    vector_syscall = const VECTOR_SYSCALL,
    dispatch = sym crate::trap::dispatch_entry,
    stacks = sym KSTACKS,
    stack_shift = const KSTACK_SHIFT,
    max_cpus = const MAX_CPUS,
    vector_ipi = const VECTOR_IPI,
    vector_timer = const VECTOR_TIMER,
    vector_spurious = const VECTOR_SPURIOUS,
    vector_hostsig = const VECTOR_HOSTSIG,
    vector_async = const VECTOR_ASYNC,
    kmain = sym crate::kmain,
    first_run = sym crate::sched::first_run,
);

/// Top of thread context `slot`'s kernel stack.
fn kernel_stack_top(slot: usize) -> u64 {
    KSTACKS.get() as u64 + ((slot as u64 + 1) << KSTACK_SHIFT)
}

/// The thread context this code runs in, from the kernel stack it runs on.
#[inline]
pub fn current_slot() -> usize {
    let sp: u64;
    // SAFETY: reading RSP has no side effects.
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    let slot = (sp.wrapping_sub(KSTACKS.get() as u64) >> KSTACK_SHIFT) as usize;
    // Outside every stack (cannot happen after boot): context 0, rather than an index fault.
    if slot < MAX_THREADS { slot } else { 0 }
}

/// The vCPU this code runs on: the one its thread context belongs to.
#[inline]
pub fn current_cpu() -> usize {
    SLOT_CPU[current_slot()].load(Ordering::Relaxed) as usize
}

/// Binds thread context `slot` to vCPU `cpu` (before it first runs).
pub fn set_slot_cpu(slot: usize, cpu: usize) {
    if let Some(c) = SLOT_CPU.get(slot) {
        c.store(cpu as u32, Ordering::Relaxed);
    }
}

/// Makes this CPU's traps and syscalls from ring 3 enter on context `slot`'s kernel stack.
pub fn set_kernel_stack(slot: usize) {
    let cpu = current_cpu();
    let top = kernel_stack_top(slot);
    // SAFETY: this CPU's TSS and per-CPU block only (see `Global`).
    unsafe {
        let tss = &mut (*TSS.get())[cpu];
        tss.rsp[0] = top;
        tss.ist[0] = top;
        (*PERCPU.get())[cpu].kernel_rsp = top;
    }
}

/// Prepares the kernel stack of context `slot` for its first switch-in: the user frame
/// `frame` at the top (user selectors and flags forced) and below it a
/// switch record that "returns" to `thread_first_entry`, which calls `first` with the frame and
/// then leaves for ring 3 through `trap_restore`. Returns the stack pointer for
/// [`switch_stack`].
pub fn prepare_stack(slot: usize, frame: &TrapFrame) -> u64 {
    let top = kernel_stack_top(slot);
    let frame_at = top - core::mem::size_of::<TrapFrame>() as u64;
    let mut f = *frame;
    f.cs = USER_CS;
    f.ss = USER_DS;
    f.rflags = (f.rflags & 0x3c_0fd5) | 0x202;
    // Six callee-saved registers (zero), then the return address.
    let sp = frame_at - 7 * 8;
    // SAFETY: `slot` is not running (the caller allocated it and holds the kernel lock), so
    // nothing else uses its stack; both writes stay inside it (the frame ends at its top).
    unsafe {
        core::ptr::write(frame_at as *mut TrapFrame, f);
        let words = sp as *mut u64;
        for i in 0..6 {
            core::ptr::write(words.add(i), 0);
        }
        core::ptr::write(words.add(6), thread_first_entry as *const () as u64);
    }
    sp
}

/// Saves the callee-saved registers and stack pointer of the running context to `*prev_sp`,
/// and continues the context whose stack pointer is `next_sp` (one saved by an earlier call,
/// or made by [`prepare_stack`]). Returns when something switches back to this context.
///
/// # Safety
/// `next_sp` must be a stack pointer saved by this function or returned by `prepare_stack`, of
/// a context that is not running; `prev_sp` must be valid for a write. Interrupts are
/// disabled (ring 0).
pub unsafe fn switch_stack(prev_sp: *mut u64, next_sp: u64) {
    // SAFETY: the caller's contract; every register the asm block does not save is declared
    // clobbered (the `extern "C"` call ABI of `lwk_switch_stack`).
    unsafe {
        asm!(
            "call {f}",
            f = sym lwk_switch_stack,
            in("rdi") prev_sp,
            in("rsi") next_sp,
            clobber_abi("C"),
        )
    }
}

fn gate(handler: u64, ist: u64, type_attr: u64) -> [u64; 2] {
    [
        (handler & 0xffff)
            | (KERNEL_CS << 16)
            | (ist << 32)
            | (type_attr << 40)
            | (((handler >> 16) & 0xffff) << 48),
        handler >> 32,
    ]
}

/// Builds the IDT (CPU 0, once, before the other CPUs start).
pub fn build_idt() {
    // Gates are computed from the first stub's and patched for the exceptions; the loop is a
    // few instructions per entry (ring 0 is emulated on the development KVM).
    let base = core::ptr::addr_of!(TRAP_STUBS_START) as u64;
    let first = gate(base, 0, 0x8e);
    // SAFETY: boot on CPU 0 before the other CPUs run (see `Global`).
    let idt = unsafe { &mut *IDT.get() };
    let mut low = first[0];
    for entry in idt.iter_mut().take(32) {
        entry[0] = low;
        entry[1] = first[1];
        low += 16;
    }
    // int3 and into may be used by ring 3 (DPL 3); everything else is DPL 0.
    idt[3] = gate(base + 3 * 16, 0, 0xee);
    idt[4] = gate(base + 4 * 16, 0, 0xee);
    // Double faults run on their own stack (IST1) so a kernel stack overflow still reports.
    idt[8] = gate(base + 8 * 16, 1, 0x8e);
    idt[VECTOR_IPI as usize] = gate(irq_stub_ipi as *const () as u64, 0, 0x8e);
    idt[VECTOR_TIMER as usize] = gate(irq_stub_timer as *const () as u64, 0, 0x8e);
    idt[VECTOR_SPURIOUS as usize] = gate(irq_stub_spurious as *const () as u64, 0, 0x8e);
    idt[VECTOR_HOSTSIG as usize] = gate(irq_stub_hostsig as *const () as u64, 0, 0x8e);
    idt[VECTOR_ASYNC as usize] = gate(irq_stub_async as *const () as u64, 0, 0x8e);
}

/// Loads the LWK's GDT (with this CPU's TSS) and IDT and reloads the segment registers.
pub fn init_descriptors(cpu: usize) {
    // SAFETY: each CPU touches only its own TSS, per-CPU block and GDT slots (see `Global`).
    let tss_base = unsafe { core::ptr::addr_of_mut!((*TSS.get())[cpu]) } as u64;
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    let low = (limit & 0xffff)
        | ((tss_base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((tss_base >> 24) & 0xff) << 56);
    // vCPU `cpu` boots on context `cpu`'s stack.
    let top = kernel_stack_top(cpu);
    // SAFETY: as above: this CPU's elements only.
    unsafe {
        let gdt = &mut *GDT.get();
        gdt[8 + 2 * cpu] = low;
        gdt[9 + 2 * cpu] = tss_base >> 32;
        let tss = &mut (*TSS.get())[cpu];
        tss.rsp[0] = top;
        // Double faults (IST1) restart at the top of this CPU's stack: a last-gasp report.
        tss.ist[0] = top;
        (*PERCPU.get())[cpu].kernel_rsp = top;
    }
    let tss_sel = TSS_SEL + 16 * cpu as u16;

    let gdtr = DescriptorPointer {
        limit: (GDT_ENTRIES * 8 - 1) as u16,
        base: GDT.get() as u64,
    };
    let idtr = DescriptorPointer {
        limit: (256 * 16 - 1) as u16,
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
            tss = in(reg) tss_sel,
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

/// Sets up `syscall` on this CPU: EFER.SCE, STAR selectors, LSTAR, SFMASK, and the per-CPU
/// block.
pub fn init_syscall(cpu: usize) {
    wrmsr(msr::EFER, rdmsr(msr::EFER) | 1);
    // sysret: CS = 0x23 + 16 = 0x33, SS = 0x23 + 8 = 0x2b; syscall: CS = 0x10, SS = 0x18.
    wrmsr(msr::STAR, (0x23 << 48) | (KERNEL_CS << 32));
    wrmsr(msr::LSTAR, syscall_entry_address());
    // Clear TF, IF, DF, IOPL, NT, AC on entry, as Linux does.
    wrmsr(msr::SFMASK, 0x4_7700);
    // SAFETY: only the address of this CPU's element is taken.
    wrmsr(
        msr::KERNEL_GS_BASE,
        unsafe { core::ptr::addr_of_mut!((*PERCPU.get())[cpu]) } as u64,
    );
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

/// Loads CR3 (switches address spaces; drops the TLB's user translations).
pub fn write_cr3(v: u64) {
    // SAFETY: callers pass a PML4 whose kernel half is the kernel's (`mm::new_pml4`, the boot
    // tables), so the code and data running now stay mapped.
    unsafe { asm!("mov cr3, {}", in(reg) v, options(nostack)) };
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

/// x2APIC registers (MSR numbers).
mod apic {
    pub const BASE: u32 = 0x1b;
    pub const TPR: u32 = 0x808;
    pub const EOI: u32 = 0x80b;
    pub const SVR: u32 = 0x80f;
    pub const ICR: u32 = 0x830;
    pub const LVT_TIMER: u32 = 0x832;
    pub const TSC_DEADLINE: u32 = 0x6e0;
}

/// Whether the CPU has the TSC-deadline timer (CPUID.1:ECX[24]).
pub fn has_tsc_deadline() -> bool {
    let r = core::arch::x86_64::__cpuid(1);
    r.ecx & (1 << 24) != 0
}

/// Puts this CPU's local APIC in x2APIC mode with the timer in TSC-deadline mode.
pub fn apic_init() {
    // EN | EXTD: x2APIC mode (registers are MSRs; no MMIO page needed).
    wrmsr(apic::BASE, rdmsr(apic::BASE) | (1 << 11) | (1 << 10));
    wrmsr(apic::SVR, 0x100 | VECTOR_SPURIOUS);
    wrmsr(apic::TPR, 0);
    wrmsr(apic::LVT_TIMER, VECTOR_TIMER | (0b10 << 17));
}

/// Acknowledges the interrupt being handled.
pub fn apic_eoi() {
    wrmsr(apic::EOI, 0);
}

/// Sends the wake-up IPI to `cpu` (its APIC id is its index: the VMM creates vCPU `i` with
/// APIC id `i`).
pub fn send_wakeup(cpu: usize) {
    wrmsr(apic::ICR, ((cpu as u64) << 32) | VECTOR_IPI);
}

/// Raises `vector` on this CPU (x2APIC ICR, destination shorthand "self"); it is taken when
/// interrupts are next enabled.
pub fn send_self(vector: u64) {
    wrmsr(apic::ICR, (0b01 << 18) | (vector & 0xff));
}

/// A saved FPU state, in the layout the VMM's KVM_GET_XSAVE/KVM_SET_XSAVE use.
#[repr(C, align(4096))]
struct FpuArea([u8; offload_abi::FPU_AREA_SIZE as usize]);

/// One FPU save area per thread context (in .bss).
#[unsafe(link_section = ".bss.fpu")]
static FPU_AREAS: Global<[FpuArea; MAX_THREADS]> =
    Global::new([const { FpuArea([0; offload_abi::FPU_AREA_SIZE as usize]) }; MAX_THREADS]);

/// One page per thread context for its asynchronous offloads (`offload_abi::AsyncSlot`).
#[repr(C, align(4096))]
struct AsyncPage([u8; 4096]);
#[unsafe(link_section = ".bss.async")]
static ASYNC_PAGES: Global<[AsyncPage; MAX_THREADS]> =
    Global::new([const { AsyncPage([0; 4096]) }; MAX_THREADS]);

/// Guest-physical address of context `slot`'s async offload page (accessed only through
/// `phys`, by that context and the VMM).
pub fn async_page_pa(slot: usize) -> u64 {
    image_pa(ASYNC_PAGES.get() as u64) + (slot.min(MAX_THREADS - 1) as u64) * 4096
}

/// Per-CPU [`offload_abi::FpuSwitch`] descriptors.
#[repr(C, align(16))]
struct FpuDesc(offload_abi::FpuSwitch);
static FPU_DESC: Global<[FpuDesc; MAX_CPUS]> = Global::new(
    [const {
        FpuDesc(offload_abi::FpuSwitch {
            save: 0,
            restore: 0,
        })
    }; MAX_CPUS],
);

/// Guest-physical address of a kernel image address (the image is linked at
/// `KERNEL_VIRT_BASE + KERNEL_PHYS` and loaded at `KERNEL_PHYS`).
fn image_pa(va: u64) -> u64 {
    va - offload_abi::layout::KERNEL_VIRT_BASE
}

/// Has the VMM store this CPU's FPU state in context `save`'s area and then load context
/// `restore`'s (either may be `None`). One VM exit.
pub fn fpu_switch(save: Option<usize>, restore: Option<usize>) {
    let area = |slot: Option<usize>| {
        slot.filter(|&s| s < MAX_THREADS).map_or(0, |s| {
            image_pa(FPU_AREAS.get() as u64) + s as u64 * offload_abi::FPU_AREA_SIZE
        })
    };
    let desc = offload_abi::FpuSwitch {
        save: area(save),
        restore: area(restore),
    };
    if desc.save == 0 && desc.restore == 0 {
        return;
    }
    let cpu = current_cpu();
    // SAFETY: this CPU's element only (see `Global`); the VMM reads it during the port write.
    let pa = unsafe {
        let d = &mut (*FPU_DESC.get())[cpu];
        d.0 = desc;
        image_pa(core::ptr::addr_of!(d.0) as u64)
    };
    outl(offload_abi::port::FPU_SWITCH, (pa >> 4) as u32);
}

/// Arms this CPU's timer to fire when the TSC reaches `tsc` (0 disarms).
pub fn arm_timer(tsc: u64) {
    wrmsr(apic::TSC_DEADLINE, tsc);
}

/// Waits with interrupts enabled until one arrives (`sti; hlt` is atomic: an interrupt that
/// is already pending wakes the `hlt` rather than being lost), then disables them again.
pub fn wait_for_interrupt() {
    // SAFETY: the trap path handles the interrupt vectors this CPU can receive; the kernel
    // holds no lock across this call (callers guarantee it).
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Leaves ring 0 for the program: jumps to `rip` in ring 3 with stack `rsp`, every general
/// register zero (the x86_64 psABI start state: rdx = 0 means "no exit handler").
pub fn enter_user(rip: u64, rsp: u64) -> ! {
    crate::tlb::to_user();
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
