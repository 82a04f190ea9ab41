//! Signals: dispositions, masks, pending sets, delivery with Linux-exact frames, and the ring-3
//! FPU trampoline (see docs/DESIGN.md "Signals").
//!
//! - Per process: the 64 dispositions and the process pending set (with one `siginfo` per
//!   signal). Per thread (indexed by its `sched` context): mask, pending set, alternate stack,
//!   the mask `sigsuspend` replaced, the set `sigtimedwait` waits for.
//! - Delivery happens on the way back to ring 3 ([`to_user`], called by `trap::dispatch_entry`):
//!   a per-thread hint keeps that a load and a branch when nothing is pending.
//! - The frame is `struct rt_sigframe` of x86_64 Linux. Ring 0 cannot run `xsave`/`fxsave` on
//!   the development KVM, so the kernel enters the handler through a user page of its own
//!   (the "trampoline", at [`TRAMP_VA`]): it saves the interrupted FPU state into the frame,
//!   resets the FPU and jumps to the handler. `rt_sigreturn` returns through the same page,
//!   which restores the FPU state (as the handler may have changed it) and then the last three
//!   registers, RIP, RSP and RFLAGS with a ring-3 `iretq`. One path for both machines.

use crate::arch::{self, MAX_THREADS, TrapFrame, USER_CS, USER_DS};
use crate::frames::Frames;
use crate::mm::PAGE;
use crate::{Kernel, bridge, exit_job, klog, phys};
use core::sync::atomic::{AtomicBool, Ordering};
use offload_abi::{exit_kind, hostsig};

/// Signal numbers the kernel names.
pub mod sig {
    pub const SIGILL: u32 = 4;
    pub const SIGTRAP: u32 = 5;
    pub const SIGBUS: u32 = 7;
    pub const SIGFPE: u32 = 8;
    pub const SIGKILL: u32 = 9;
    pub const SIGSEGV: u32 = 11;
    pub const SIGPIPE: u32 = 13;
    pub const SIGCHLD: u32 = 17;
    pub const SIGCONT: u32 = 18;
    pub const SIGSTOP: u32 = 19;
    pub const SIGTSTP: u32 = 20;
    pub const SIGTTIN: u32 = 21;
    pub const SIGTTOU: u32 = 22;
    pub const SIGURG: u32 = 23;
    pub const SIGWINCH: u32 = 28;
    pub const SIGSYS: u32 = 31;
}

/// `si_code` values.
pub mod code {
    pub const SI_USER: i32 = 0;
    pub const SI_KERNEL: i32 = 0x80;
    pub const SI_TIMER: i32 = -2;
    pub const SI_TKILL: i32 = -6;
    pub const SEGV_MAPERR: i32 = 1;
    pub const SEGV_ACCERR: i32 = 2;
    pub const FPE_INTDIV: i32 = 1;
    pub const FPE_FLTINV: i32 = 7;
    pub const ILL_ILLOPN: i32 = 2;
    pub const BUS_ADRALN: i32 = 1;
}

/// Restart codes a blocking syscall returns when a signal interrupts it (never seen by the
/// program: [`to_user`] turns them into EINTR or a restart, as Linux's `handle_signal`).
pub const ERESTARTSYS: i64 = offload_abi::errno::ERESTARTSYS;
pub const ERESTARTNOINTR: i64 = offload_abi::errno::ERESTARTNOINTR;
pub const ERESTARTNOHAND: i64 = offload_abi::errno::ERESTARTNOHAND;
pub const ERESTART_RESTARTBLOCK: i64 = 516;

pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub const SS_ONSTACK: u64 = 1;
pub const SS_DISABLE: u64 = 2;
pub const SS_AUTODISARM: u64 = 1 << 31;
pub const MINSIGSTKSZ: u64 = 2048;

/// Bit of signal `s` in a sigset.
pub const fn bit(s: u32) -> u64 {
    1u64 << (s - 1)
}

/// Signals that can be neither caught, blocked nor ignored.
pub const UNBLOCKABLE: u64 = bit(sig::SIGKILL) | bit(sig::SIGSTOP);
/// Synchronous (fault) signals, dequeued first as Linux does.
const SYNCHRONOUS: u64 = bit(sig::SIGSEGV)
    | bit(sig::SIGBUS)
    | bit(sig::SIGILL)
    | bit(sig::SIGTRAP)
    | bit(sig::SIGFPE)
    | bit(sig::SIGSYS);
/// Default action "ignore" (Linux) or "stop" (accepted and treated as ignore: one process, no
/// job control).
const DEFAULT_IGNORE: u64 = bit(sig::SIGCHLD)
    | bit(sig::SIGURG)
    | bit(sig::SIGWINCH)
    | bit(sig::SIGCONT)
    | bit(sig::SIGSTOP)
    | bit(sig::SIGTSTP)
    | bit(sig::SIGTTIN)
    | bit(sig::SIGTTOU);

/// The fields of a `siginfo_t` beyond signo/errno/code: `a` at offset 16 (si_pid|si_uid,
/// si_addr, si_tid|si_overrun), `b` at offset 24 (si_value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Info {
    pub code: i32,
    pub _pad: u32,
    pub a: u64,
    pub b: u64,
}

impl Info {
    /// kill(2)-style info from the process itself.
    pub fn user(code: i32, pid: u32, uid: u32) -> Info {
        Info {
            code,
            _pad: 0,
            a: u64::from(pid) | (u64::from(uid) << 32),
            b: 0,
        }
    }
}

/// `struct sigaction` as the kernel sees it (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Action {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// One thread's signal state.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ThreadSig {
    pub mask: u64,
    pub pending: u64,
    /// The mask `rt_sigsuspend` replaced (valid when `has_saved` != 0).
    pub saved_mask: u64,
    pub has_saved: u64,
    /// Signals `rt_sigtimedwait` waits for (they wake the thread even when blocked).
    pub waitset: u64,
    pub alt_sp: u64,
    pub alt_size: u64,
    pub alt_flags: u64,
    /// Syscall number + 1 whose restart code waits for [`to_user`] (0: none).
    pub restart_nr: u64,
    /// Trap number, error code and CR2 of the fault a pending synchronous signal comes from.
    pub fault: [u64; 3],
    pub fault_sig: u64,
    pub info: [Info; 64],
}

/// Most real-time signals queued behind pending ones, per process (more are dropped, where
/// Linux's sigqueue would fail with EAGAIN at RLIMIT_SIGPENDING).
pub const RTQ_MAX: usize = 64;
/// First real-time signal number (the kernel's SIGRTMIN).
const SIGRTMIN: u32 = 32;
/// `Queued::target` of a process-directed signal.
const TO_PROCESS: u32 = u32::MAX;

/// A queued real-time signal.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Queued {
    pub signo: u32,
    /// Context of the target thread, or [`TO_PROCESS`].
    pub target: u32,
    pub info: Info,
}

/// The signal state of the process and its threads, in frames of its own (it is large).
#[repr(C)]
pub struct Table {
    pub actions: [Action; 64],
    pub pending: u64,
    /// Bytes reserved for the FPU state in a frame (xsave size + 4, or 512).
    pub fpu_size: u64,
    /// xsave area size (0: fxsave).
    pub xsave_size: u64,
    /// XCR0 features saved (for the frame's `_fpx_sw_bytes`).
    pub xfeatures: u64,
    pub info: [Info; 64],
    pub threads: [ThreadSig; MAX_THREADS],
    /// Real-time signals queued behind a pending one of the same number (Linux queues them;
    /// standard signals merge): `rtq_len` entries in order of sending.
    pub rtq_len: u64,
    pub rtq: [Queued; RTQ_MAX],
    /// alarm/setitimer and POSIX timers (`crate::timer`).
    pub timers: [crate::timer::Timer; crate::timer::MAX_TIMERS],
}

// SAFETY: integers only; all-zero is "every action SIG_DFL, nothing pending or blocked".
unsafe impl phys::PlainData for Table {}

/// "Maybe something to deliver" per thread context: checked without the lock on every return to ring 3.
static HINT: [AtomicBool; MAX_THREADS] = [const { AtomicBool::new(false) }; MAX_THREADS];

/// User address of the trampoline page (just above the stack block, below the top of user
/// space).
pub const TRAMP_VA: u64 = offload_abi::layout::USER_STACK_TOP + PAGE;

// The trampoline: position-independent code copied to the start of the user page.
// Entries (offsets from the page start, see `tramp` below):
//   enter_x / enter_fx: RSP = frame (pretcode at [RSP]), RDI/RSI/RDX = handler arguments,
//     RCX = handler, R8 = fpstate. Saves the FPU state at R8, loads the initial FPU state,
//     jumps to the handler with RAX = 0 (the return address is the restorer at [RSP]).
//   ret_x / ret_fx / ret_none: RCX = fpstate, RSP = [rax, rdx, rcx, rip, cs, rflags, rsp, ss]
//     (EDX:EAX = all ones for xrstor). Restores the FPU state, the three registers and returns
//     with a same-privilege `iretq`, which loads RIP, RFLAGS and RSP without touching the
//     interrupted code's stack (its red zone stays intact).
core::arch::global_asm!(
    r#"
.pushsection .rodata.lwk_sigtramp, "a"
.balign 64
.global lwk_sigtramp_start
lwk_sigtramp_start:
    mov r9, rdx
    mov r10, rcx
    xor ecx, ecx
    xgetbv
    xsave64 [r8]
    lea r11, [rip + lwk_sigtramp_init]
    xrstor64 [r11]
    mov rdx, r9
    xor eax, eax
    jmp r10
.balign 64
    fxsave64 [r8]
    lea r11, [rip + lwk_sigtramp_init]
    fxrstor64 [r11]
    xor eax, eax
    jmp rcx
.balign 64
    xrstor64 [rcx]
    pop rax
    pop rdx
    pop rcx
    iretq
.balign 64
    fxrstor64 [rcx]
    pop rax
    pop rdx
    pop rcx
    iretq
.balign 64
    pop rax
    pop rdx
    pop rcx
    iretq
.balign 64
lwk_sigtramp_init:
    .short 0x37f
    .fill 22, 1, 0
    .long 0x1f80
    .fill 576 - 28, 1, 0
.global lwk_sigtramp_end
lwk_sigtramp_end:
.popsection
"#
);

/// Offsets of the trampoline entries.
mod tramp {
    pub const ENTER_X: u64 = 0;
    pub const ENTER_FX: u64 = 64;
    pub const RET_X: u64 = 128;
    pub const RET_FX: u64 = 192;
    pub const RET_NONE: u64 = 256;
}

unsafe extern "C" {
    static lwk_sigtramp_start: u8;
    static lwk_sigtramp_end: u8;
}

/// CPUID.1:ECX.OSXSAVE and the xsave area size for the enabled features.
fn fpu_layout() -> (u64, u64) {
    let r = core::arch::x86_64::__cpuid(1);
    if r.ecx & (1 << 27) == 0 {
        return (0, 0);
    }
    let d = core::arch::x86_64::__cpuid_count(0xd, 0);
    // The VMM enables x87|SSE|AVX|AVX-512 of what the CPU supports (vmm/src/vcpu.rs); ECX is
    // the size for every supported feature, an upper bound of what `xsave` writes.
    let features = (u64::from(d.eax) | (u64::from(d.edx) << 32)) & 0xe7;
    (u64::from(d.ecx.max(d.ebx)).max(576), features)
}

/// Pages of one [`Table`].
const TABLE_PAGES: u64 = crate::frames::align_up(core::mem::size_of::<Table>() as u64, PAGE) / PAGE;

/// Frees a process's table (its process was reaped, or never ran).
pub fn free_table(frames: &mut Frames, t: &'static mut Table) {
    frames.free(phys::pa_of(t), TABLE_PAGES * PAGE);
}

/// Whether a process with these dispositions leaves no zombies (SIGCHLD ignored, or
/// SA_NOCLDWAIT): its children are reaped as they end.
pub fn no_zombies(p: &crate::process::Process) -> bool {
    const SA_NOCLDWAIT: u64 = 2;
    let a = p.sig.actions[(sig::SIGCHLD - 1) as usize];
    a.handler == SIG_IGN || a.flags & SA_NOCLDWAIT != 0
}

/// A forked child's table: the parent's dispositions, and for its thread (context `child`)
/// the mask and alternate stack of the forking thread (context `me`); nothing pending.
pub fn fork_table(parent: &Table, t: &mut Table, me: usize, child: usize) {
    t.actions = parent.actions;
    let from = &parent.threads[me];
    let th = &mut t.threads[child];
    th.mask = from.mask;
    th.alt_sp = from.alt_sp;
    th.alt_size = from.alt_size;
    th.alt_flags = from.alt_flags;
}

/// exec: caught signals go back to SIG_DFL (ignored ones stay ignored), the alternate stack
/// goes; masks and pending signals stay.
pub fn exec_reset(t: &mut Table, slot: usize) {
    for a in t.actions.iter_mut() {
        if a.handler != SIG_IGN {
            *a = Action::default();
        }
    }
    let th = &mut t.threads[slot];
    th.alt_sp = 0;
    th.alt_size = 0;
    th.alt_flags = SS_DISABLE;
    th.has_saved = 0;
}

impl Table {
    /// Allocates a zeroed table with this CPU's FPU frame layout (`None`: no memory).
    pub fn alloc(frames: &mut Frames) -> Option<&'static mut Table> {
        let pa = frames.alloc_contiguous(TABLE_PAGES)?;
        let t: &'static mut Table = phys::owned_mut(pa);
        let (xsize, features) = fpu_layout();
        t.xsave_size = xsize;
        t.xfeatures = features;
        t.fpu_size = if xsize != 0 { xsize + 4 } else { 512 };
        Some(t)
    }

    /// Allocates the table and maps the trampoline page into `mm` (boot, vCPU 0).
    pub fn new(frames: &mut Frames, mm: &mut crate::vm::Mm) -> Option<&'static mut Table> {
        let t = Self::alloc(frames)?;
        map_trampoline(frames, mm)?;
        Some(t)
    }
}

/// Maps a fresh copy of the trampoline page into `mm` (boot and exec).
pub fn map_trampoline(frames: &mut Frames, mm: &mut crate::vm::Mm) -> Option<()> {
    {
        let page = frames.alloc_page()?;
        let start = core::ptr::addr_of!(lwk_sigtramp_start) as usize;
        let end = core::ptr::addr_of!(lwk_sigtramp_end) as usize;
        // SAFETY: both symbols delimit the trampoline bytes in the kernel's read-only data
        // (the `global_asm!` above), which live as long as the kernel.
        let code = unsafe { core::slice::from_raw_parts(start as *const u8, end - start) };
        phys::write_bytes(page, code);
        mm.map_special(
            frames,
            TRAMP_VA,
            page,
            crate::vma::prot::READ | crate::vma::prot::EXEC,
        )
        .ok()?;
        Some(())
    }
}

fn lowest(set: u64) -> u32 {
    set.trailing_zeros() + 1
}

/// Queues a real-time signal behind a pending one; false if the queue is full.
fn enqueue(t: &mut Table, s: u32, target: u32, info: Info) -> bool {
    let n = t.rtq_len as usize;
    match t.rtq.get_mut(n) {
        Some(q) => {
            *q = Queued {
                signo: s,
                target,
                info,
            };
            t.rtq_len += 1;
            true
        }
        None => false,
    }
}

/// Takes the next queued instance of `s` for `target`, if any.
fn unqueue(t: &mut Table, s: u32, target: u32) -> Option<Info> {
    let n = t.rtq_len as usize;
    let i = t.rtq[..n]
        .iter()
        .position(|q| q.signo == s && q.target == target)?;
    let info = t.rtq[i].info;
    t.rtq.copy_within(i + 1..n, i);
    t.rtq_len -= 1;
    Some(info)
}

/// Drops queued instances of `s` (all targets when `target` is None).
pub fn flush_queued(t: &mut Table, s: Option<u32>, target: Option<u32>) {
    let n = t.rtq_len as usize;
    let mut keep = 0;
    for i in 0..n {
        let q = t.rtq[i];
        let drop_it = s.is_none_or(|s| q.signo == s) && target.is_none_or(|c| q.target == c);
        if !drop_it {
            t.rtq[keep] = q;
            keep += 1;
        }
    }
    t.rtq_len = keep as u64;
}

/// Whether signal `s` would be ignored by its disposition.
fn ignored(t: &Table, s: u32) -> bool {
    let a = &t.actions[(s - 1) as usize];
    a.handler == SIG_IGN || (a.handler == SIG_DFL && DEFAULT_IGNORE & bit(s) != 0)
}

fn wants(t: &ThreadSig, b: u64) -> bool {
    t.mask & b == 0 || t.waitset & b != 0
}

fn live(k: &Kernel, slot: usize) -> bool {
    k.sched.is_thread(slot)
}

/// Marks the thread in context `slot` to look at its signals, and wakes it: out of a wait
/// (futex, sleep, sigsuspend: `woken`), out of user mode (its vCPU enters and leaves ring 0), or
/// out of an offloaded call blocked on the host (`sched::interrupt_offload`).
pub fn kick_slot(k: &mut Kernel, slot: usize) {
    HINT[slot].store(true, Ordering::Release);
    k.sched.wake(slot);
    crate::sched::interrupt_offload(k, slot);
}

/// Whether the thread on `slot` has a signal it does not block (a blocking call then stops).
pub fn interrupted(k: &Kernel, slot: usize) -> bool {
    let t = &k.procs[crate::process::of(slot)].sig;
    (t.threads[slot].pending | t.pending) & !t.threads[slot].mask != 0
        || crate::process::must_exit(k, slot)
}

/// Sends `s` to the thread on `slot` (tgkill, faults, SIGEV_THREAD_ID timers).
pub fn send_thread(k: &mut Kernel, slot: usize, s: u32, info: Info) {
    if s == sig::SIGKILL {
        crate::process::kill_process(k, crate::process::of(slot), s);
        return;
    }
    let t = &mut k.procs[crate::process::of(slot)].sig;
    let b = bit(s);
    if ignored(t, s) && !wants_blocked(&t.threads[slot], b) {
        return;
    }
    if t.threads[slot].pending & b == 0 {
        t.threads[slot].pending |= b;
        t.threads[slot].info[(s - 1) as usize] = info;
    } else if s >= SIGRTMIN {
        enqueue(t, s, slot as u32, info);
    }
    if wants(&t.threads[slot], b) {
        kick_slot(k, slot);
    }
}

fn wants_blocked(t: &ThreadSig, b: u64) -> bool {
    t.mask & b != 0 || t.waitset & b != 0
}

/// Sends `s` to the process (kill, host signals, timers): pending for the process, and the
/// first thread that does not block it (the caller first) is woken to take it.
pub fn send_process(k: &mut Kernel, p: usize, s: u32, info: Info) {
    if s == sig::SIGKILL {
        crate::process::kill_process(k, p, s);
        return;
    }
    let b = bit(s);
    let me = arch::current_slot();
    let mine = |k: &Kernel, c: usize| live(k, c) && crate::process::of(c) == p;
    let t = &k.procs[p].sig;
    let blocked_somewhere = (0..MAX_THREADS).any(|c| mine(k, c) && wants_blocked(&t.threads[c], b));
    if ignored(t, s) && !blocked_somewhere {
        return;
    }
    let target = core::iter::once(me)
        .chain(0..MAX_THREADS)
        .find(|&c| mine(k, c) && wants(&k.procs[p].sig.threads[c], b));
    let t = &mut k.procs[p].sig;
    if t.pending & b == 0 {
        t.pending |= b;
        t.info[(s - 1) as usize] = info;
    } else if s >= SIGRTMIN {
        enqueue(t, s, TO_PROCESS, info);
    }
    if let Some(c) = target {
        kick_slot(k, c);
    }
}

/// Host signals (issue #7, `offload_abi::hostsig`): each bit `sig - 1` of `mask` becomes a
/// process-directed signal from "the kernel side" (`SI_USER`, `si_pid` 0), as if `kill`ed.
pub fn post_host(k: &mut Kernel, mask: u64) {
    let mut m = mask;
    while m != 0 {
        let s = lowest(m);
        m &= !bit(s);
        send_process(k, 0, s, Info::user(code::SI_USER, 0, 0));
    }
}

/// Rewrites `HostSignals::interrupting`: forwarded signals the program neither ignores nor
/// blocks in every thread.
pub fn update_interrupting(k: &Kernel) {
    // Host signals go to the first process (index 0), which lives as long as the job.
    let t = &k.procs[0].sig;
    let mut blocked_all = u64::MAX;
    for c in 0..MAX_THREADS {
        if live(k, c) && crate::process::of(c) == 0 {
            blocked_all &= t.threads[c].mask;
        }
    }
    let mut v = 0;
    let mut m = hostsig::FORWARDED;
    while m != 0 {
        let s = lowest(m);
        m &= !bit(s);
        if !ignored(t, s) && blocked_all & bit(s) == 0 {
            v |= bit(s);
        }
    }
    phys::write_u64(
        hostsig::GPA + core::mem::offset_of!(offload_abi::HostSignals, interrupting) as u64,
        v,
    );
}

/// Ends the job as killed by `s` (the VMM re-raises it on itself).
pub fn kill_job(s: u32) -> ! {
    exit_job(exit_kind::SIGNALED, s)
}

/// A fault of the program (`trap`): the signal goes to the faulting thread; blocked or
/// ignored, it kills the process as Linux's `force_sig` does.
pub fn force_fault(k: &mut Kernel, frame: &TrapFrame, s: u32, info: Info, cr2: u64) {
    let slot = arch::current_slot();
    let t = &mut k.procs[crate::process::of(slot)].sig;
    let a = t.actions[(s - 1) as usize];
    let th = &mut t.threads[slot];
    if a.handler == SIG_IGN || a.handler == SIG_DFL || th.mask & bit(s) != 0 {
        klog!(
            bridge::level::INFO,
            "program killed by signal {}: exception {} error {:#x} at rip {:#x} (fault address {:#x}, rsp {:#x})",
            s,
            frame.vector,
            frame.error,
            frame.rip,
            cr2,
            frame.rsp
        );
        kill_fatally(k, slot, s);
        return;
    }
    th.pending |= bit(s);
    th.info[(s - 1) as usize] = info;
    th.fault = [frame.vector, frame.error, cr2];
    th.fault_sig = u64::from(s);
    HINT[slot].store(true, Ordering::Release);
}

/// A new thread on `slot` inherits the mask of the thread on `parent` (clone).
pub fn thread_start(k: &mut Kernel, slot: usize, parent: usize) {
    let t = &mut k.procs[crate::process::of(parent)].sig;
    let mask = t.threads[parent].mask;
    let th = &mut t.threads[slot];
    th.mask = mask;
    th.pending = 0;
    th.has_saved = 0;
    th.waitset = 0;
    th.alt_sp = 0;
    th.alt_size = 0;
    th.alt_flags = SS_DISABLE;
    th.restart_nr = 0;
    th.fault_sig = 0;
    flush_queued(t, None, Some(slot as u32));
    if t.pending & !mask != 0 {
        HINT[slot].store(true, Ordering::Release);
    }
    update_interrupting(k);
}

/// Records that the syscall `nr` on `slot` returned a restart code: [`to_user`] decides.
pub fn note_restart(k: &mut Kernel, slot: usize, nr: u64) {
    k.procs[crate::process::of(slot)].sig.threads[slot].restart_nr = nr + 1;
    HINT[slot].store(true, Ordering::Release);
}

/// Whether a value is one of the restart codes.
pub fn is_restart(ret: i64) -> bool {
    matches!(
        -ret,
        ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND | ERESTART_RESTARTBLOCK
    )
}

/// Sets the calling thread's mask (SIGKILL/SIGSTOP never blocked) and looks again at what is
/// pending.
pub fn set_mask(k: &mut Kernel, slot: usize, mask: u64) {
    let t = &mut k.procs[crate::process::of(slot)].sig;
    t.threads[slot].mask = mask & !UNBLOCKABLE;
    if (t.threads[slot].pending | t.pending) & !t.threads[slot].mask != 0 {
        HINT[slot].store(true, Ordering::Release);
    }
}

/// Takes the next signal from `set` pending for the thread on `slot` (its own first, then the
/// process's; synchronous signals before others, then the lowest number).
pub fn dequeue(k: &mut Kernel, slot: usize, set: u64) -> Option<(u32, Info)> {
    let t = &mut k.procs[crate::process::of(slot)].sig;
    let pick = |p: u64| -> Option<u32> {
        let p = p & set;
        if p == 0 {
            None
        } else if p & SYNCHRONOUS != 0 {
            Some(lowest(p & SYNCHRONOUS))
        } else {
            Some(lowest(p))
        }
    };
    if let Some(s) = pick(t.threads[slot].pending) {
        let info = t.threads[slot].info[(s - 1) as usize];
        t.threads[slot].pending &= !bit(s);
        if s >= SIGRTMIN
            && let Some(next) = unqueue(t, s, slot as u32)
        {
            t.threads[slot].pending |= bit(s);
            t.threads[slot].info[(s - 1) as usize] = next;
        }
        return Some((s, info));
    }
    let s = pick(t.pending)?;
    let info = t.info[(s - 1) as usize];
    t.pending &= !bit(s);
    if s >= SIGRTMIN
        && let Some(next) = unqueue(t, s, TO_PROCESS)
    {
        t.pending |= bit(s);
        t.info[(s - 1) as usize] = next;
    }
    Some((s, info))
}

/// The return to ring 3 (`trap::dispatch_entry`): delivers pending signals and settles an
/// interrupted syscall.
#[inline]
pub fn to_user(frame: &mut TrapFrame) {
    let slot = arch::current_slot();
    // A plain load first: nothing is pending almost always, and a locked exchange costs more
    // (every ring-0 instruction is emulated on the development KVM).
    if slot >= MAX_THREADS
        || !HINT[slot].load(Ordering::Relaxed)
        || !HINT[slot].swap(false, Ordering::Acquire)
    {
        return;
    }
    let mut k = crate::kernel();
    if !crate::process::must_exit(&k, slot) {
        deliver(&mut k, slot, frame);
    }
    if crate::process::must_exit(&k, slot) {
        crate::process::exit_thread(k, 0, false);
    }
}

#[inline(never)]
fn deliver(k: &mut Kernel, slot: usize, frame: &mut TrapFrame) {
    let mut restart =
        core::mem::take(&mut k.procs[crate::process::of(slot)].sig.threads[slot].restart_nr);
    loop {
        let mask = k.procs[crate::process::of(slot)].sig.threads[slot].mask;
        let Some((s, info)) = dequeue(k, slot, !mask) else {
            if restart != 0 && is_restart(frame.rax as i64) {
                // No handler ran: the call starts again (Linux restarts all four codes here;
                // restart_syscall's saved deadline is approximated by the original call).
                frame.rax = restart - 1;
                frame.rip = frame.rip.wrapping_sub(2);
            }
            let th = &mut k.procs[crate::process::of(slot)].sig.threads[slot];
            if th.has_saved != 0 {
                th.has_saved = 0;
                th.mask = th.saved_mask;
            }
            return;
        };
        let a = k.procs[crate::process::of(slot)].sig.actions[(s - 1) as usize];
        if a.handler == SIG_IGN || (a.handler == SIG_DFL && DEFAULT_IGNORE & bit(s) != 0) {
            continue;
        }
        if a.handler == SIG_DFL {
            kill_fatally(k, slot, s);
            return;
        }
        if restart != 0 && is_restart(frame.rax as i64) {
            let r = -(frame.rax as i64);
            if r == ERESTARTNOINTR || (r == ERESTARTSYS && a.flags & SA_RESTART != 0) {
                frame.rax = restart - 1;
                frame.rip = frame.rip.wrapping_sub(2);
            } else {
                frame.rax = (-offload_abi::errno::EINTR) as u64;
            }
        }
        restart = 0;
        if setup_frame(k, slot, frame, s, info, a).is_err() {
            klog!(
                bridge::level::INFO,
                "program killed by SIGSEGV: cannot build the frame for signal {} (rsp {:#x})",
                s,
                frame.rsp
            );
            kill_fatally(k, slot, sig::SIGSEGV);
            return;
        }
    }
}

/// The process of the thread on `slot` is killed by signal `s` (a default action, or a fault
/// it cannot handle): the first process ends the job; another one ends once its threads have
/// (the caller's thread on its way back to ring 3).
pub fn kill_fatally(k: &mut Kernel, slot: usize, s: u32) {
    let p = crate::process::of(slot);
    if p == 0 {
        klog!(bridge::level::INFO, "program killed by signal {}", s);
    }
    crate::process::kill_process(k, p, s);
}

/// Copies to user memory, mapping pages on demand (the stack below RSP may not be mapped yet).
fn put(k: &mut Kernel, va: u64, bytes: &[u8]) -> Result<(), ()> {
    k.mms[crate::process::cur_mm()].user_copy(k.frames, |a| a.copy_to_user(va, bytes))
}

/// Reads user memory, mapping pages on demand.
fn get(k: &mut Kernel, va: u64, out: &mut [u8]) -> Result<(), ()> {
    k.mms[crate::process::cur_mm()].user_copy(k.frames, |a| a.copy_from_user(va, out))
}

fn on_altstack(t: &ThreadSig, sp: u64) -> bool {
    t.alt_size != 0 && sp > t.alt_sp && sp - t.alt_sp <= t.alt_size
}

/// `ss_flags` as sigaltstack reports it for stack pointer `sp`.
pub fn altstack_flags(t: &ThreadSig, sp: u64) -> u64 {
    if t.alt_size == 0 {
        SS_DISABLE
    } else if on_altstack(t, sp) {
        SS_ONSTACK
    } else {
        t.alt_flags & SS_AUTODISARM
    }
}

/// Size of `struct rt_sigframe` (pretcode, ucontext, siginfo).
const FRAME_SIZE: usize = 440;
/// Offsets in the frame.
mod off {
    pub const UC: usize = 8;
    pub const MCONTEXT: usize = 48;
    pub const SIGMASK: usize = 304;
    pub const INFO: usize = 312;
    /// Offsets in `struct sigcontext` (from MCONTEXT).
    pub const SC_RSP: usize = 120;
    pub const SC_RIP: usize = 128;
    pub const SC_EFLAGS: usize = 136;
    pub const SC_FPSTATE: usize = 184;
}

const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// RFLAGS bits sigreturn takes from the frame (Linux FIX_EFLAGS).
const FIX_EFLAGS: u64 = 0x5_0dd5;

fn w64(buf: &mut [u8], at: usize, v: u64) {
    if let Some(d) = buf.get_mut(at..at + 8) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

fn r64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = buf.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

/// The general registers in `struct sigcontext` order (r8 .. rcx), from a trap frame.
fn sc_regs(f: &TrapFrame) -> [u64; 15] {
    [
        f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15, f.rdi, f.rsi, f.rbp, f.rbx, f.rdx,
        f.rax, f.rcx,
    ]
}

fn setup_frame(
    k: &mut Kernel,
    slot: usize,
    frame: &mut TrapFrame,
    s: u32,
    info: Info,
    a: Action,
) -> Result<(), ()> {
    if a.flags & SA_RESTORER == 0 {
        // x86_64 Linux requires a restorer (libc always gives one).
        return Err(());
    }
    let t = &k.procs[crate::process::of(slot)].sig;
    let th = t.threads[slot];
    let (xsize, features, fpu_size) = (t.xsave_size, t.xfeatures, t.fpu_size);
    let sp0 = frame.rsp;
    let mut sp = sp0.wrapping_sub(128);
    let mut entering_alt = false;
    if a.flags & SA_ONSTACK != 0 && altstack_flags(&th, sp0) == 0 {
        sp = th.alt_sp.wrapping_add(th.alt_size);
        entering_alt = true;
    } else if a.flags & SA_ONSTACK != 0 && on_altstack(&th, sp0) && !on_altstack(&th, sp) {
        return Err(());
    }
    sp = sp.wrapping_sub(fpu_size) & !63;
    let fpstate = sp;
    sp = (sp.wrapping_sub(FRAME_SIZE as u64) & !15).wrapping_sub(8);
    if entering_alt && sp < th.alt_sp {
        return Err(());
    }
    let oldmask = if th.has_saved != 0 {
        th.saved_mask
    } else {
        th.mask
    };
    let mut buf = [0u8; FRAME_SIZE];
    w64(&mut buf, 0, a.restorer);
    let uc_flags =
        UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | if xsize != 0 { UC_FP_XSTATE } else { 0 };
    w64(&mut buf, off::UC, uc_flags);
    w64(&mut buf, off::UC + 16, th.alt_sp);
    w64(&mut buf, off::UC + 24, altstack_flags(&th, sp0));
    w64(&mut buf, off::UC + 32, th.alt_size);
    for (i, r) in sc_regs(frame).iter().enumerate() {
        w64(&mut buf, off::MCONTEXT + 8 * i, *r);
    }
    w64(&mut buf, off::MCONTEXT + off::SC_RSP, frame.rsp);
    w64(&mut buf, off::MCONTEXT + off::SC_RIP, frame.rip);
    w64(&mut buf, off::MCONTEXT + off::SC_EFLAGS, frame.rflags);
    w64(&mut buf, off::MCONTEXT + 144, USER_CS | (USER_DS << 48));
    if th.fault_sig == u64::from(s) {
        w64(&mut buf, off::MCONTEXT + 152, th.fault[1]);
        w64(&mut buf, off::MCONTEXT + 160, th.fault[0]);
        w64(&mut buf, off::MCONTEXT + 176, th.fault[2]);
    }
    w64(&mut buf, off::MCONTEXT + 168, oldmask);
    w64(&mut buf, off::MCONTEXT + off::SC_FPSTATE, fpstate);
    w64(&mut buf, off::SIGMASK, oldmask);
    w64(&mut buf, off::INFO, u64::from(s));
    w64(&mut buf, off::INFO + 8, info.code as u32 as u64);
    w64(&mut buf, off::INFO + 16, info.a);
    w64(&mut buf, off::INFO + 24, info.b);
    put(k, sp, &buf)?;
    // The FPU area: software bytes (464..512), the xsave header (512..576, must be zero for
    // xrstor) and the second magic; the trampoline's xsave fills the rest. The writes at both
    // ends also map its pages if needed.
    let mut sw = [0u8; 48 + 64];
    if xsize != 0 {
        sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        sw[4..8].copy_from_slice(&((xsize + 4) as u32).to_le_bytes());
        sw[8..16].copy_from_slice(&features.to_le_bytes());
        sw[16..20].copy_from_slice(&(xsize as u32).to_le_bytes());
        put(k, fpstate + 464, &sw)?;
        put(k, fpstate + xsize, &FP_XSTATE_MAGIC2.to_le_bytes())?;
    } else {
        put(k, fpstate + 464, &sw[..48])?;
    }
    let t = &mut k.procs[crate::process::of(slot)].sig;
    let th = &mut t.threads[slot];
    th.has_saved = 0;
    if th.fault_sig == u64::from(s) {
        th.fault_sig = 0;
    }
    let mut newmask = th.mask | a.mask;
    if a.flags & SA_NODEFER == 0 {
        newmask |= bit(s);
    }
    th.mask = newmask & !UNBLOCKABLE;
    if a.flags & SA_RESETHAND != 0 {
        t.actions[(s - 1) as usize].handler = SIG_DFL;
    }
    frame.rdi = u64::from(s);
    frame.rsi = sp + off::INFO as u64;
    frame.rdx = sp + off::UC as u64;
    frame.rax = 0;
    frame.rcx = a.handler;
    frame.r8 = fpstate;
    frame.rsp = sp;
    frame.rip = TRAMP_VA
        + if xsize != 0 {
            tramp::ENTER_X
        } else {
            tramp::ENTER_FX
        };
    // DF, TF and RF cleared for the handler, as Linux.
    frame.rflags &= !(0x400 | 0x100 | 0x1_0000);
    frame.cs = USER_CS;
    frame.ss = USER_DS;
    Ok(())
}

/// rt_sigreturn(2): restores the mask and registers from the frame at RSP - 8; the FPU state
/// and the last registers are restored in ring 3 by the trampoline.
pub fn rt_sigreturn(k: &mut Kernel, frame: &mut TrapFrame) {
    let slot = arch::current_slot();
    let base = frame.rsp.wrapping_sub(8);
    let mut uc = [0u8; FRAME_SIZE - off::UC];
    let uc_len = off::INFO - off::UC;
    if get(k, base + off::UC as u64, &mut uc[..uc_len]).is_err() {
        klog!(
            bridge::level::INFO,
            "program killed by SIGSEGV: bad rt_sigreturn frame"
        );
        kill_fatally(k, slot, sig::SIGSEGV);
        return;
    }
    let m = off::MCONTEXT - off::UC;
    let mask = r64(&uc, off::SIGMASK - off::UC);
    set_mask(k, slot, mask);
    // uc_stack: a handler may change the alternate stack through it, as with sigaltstack.
    let ss_sp = r64(&uc, 16);
    let ss_flags = r64(&uc, 24) & 0xffff_ffff;
    let ss_size = r64(&uc, 32);
    {
        let th = &mut k.procs[crate::process::of(slot)].sig.threads[slot];
        if !on_altstack(th, frame.rsp) {
            if ss_flags & SS_DISABLE != 0 {
                th.alt_size = 0;
                th.alt_sp = 0;
                th.alt_flags = SS_DISABLE;
            } else if ss_flags & !(SS_ONSTACK | SS_AUTODISARM) == 0 && ss_size >= MINSIGSTKSZ {
                th.alt_sp = ss_sp;
                th.alt_size = ss_size;
                th.alt_flags = ss_flags & SS_AUTODISARM;
            }
        }
    }
    let g = |i: usize| r64(&uc, m + 8 * i);
    let rip = r64(&uc, m + off::SC_RIP);
    let rsp = r64(&uc, m + off::SC_RSP);
    let flags = (0x202 & !FIX_EFLAGS) | (r64(&uc, m + off::SC_EFLAGS) & FIX_EFLAGS);
    let fpstate = r64(&uc, m + off::SC_FPSTATE);
    // The block the trampoline pops: rax, rdx, rcx, then an iretq frame. It goes where the
    // frame was (below the interrupted red zone).
    let block = [g(13), g(12), g(14), rip, USER_CS, flags, rsp, USER_DS];
    let mut bytes = [0u8; 64];
    for (i, v) in block.iter().enumerate() {
        w64(&mut bytes, 8 * i, *v);
    }
    if put(k, base, &bytes).is_err() {
        kill_fatally(k, slot, sig::SIGSEGV);
        return;
    }
    frame.r8 = g(0);
    frame.r9 = g(1);
    frame.r10 = g(2);
    frame.r11 = g(3);
    frame.r12 = g(4);
    frame.r13 = g(5);
    frame.r14 = g(6);
    frame.r15 = g(7);
    frame.rdi = g(8);
    frame.rsi = g(9);
    frame.rbp = g(10);
    frame.rbx = g(11);
    frame.rax = 0xffff_ffff;
    frame.rdx = 0xffff_ffff;
    frame.rcx = fpstate;
    frame.rsp = base;
    frame.rip = TRAMP_VA
        + if fpstate == 0 {
            tramp::RET_NONE
        } else if k.procs[crate::process::of(slot)].sig.xsave_size != 0 {
            tramp::RET_X
        } else {
            tramp::RET_FX
        };
    frame.rflags = 0x202;
    frame.cs = USER_CS;
    frame.ss = USER_DS;
}
