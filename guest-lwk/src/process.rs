//! Processes (issue #9): the job's process table, fork/vfork/clone without CLONE_THREAD,
//! process exit with zombies and SIGCHLD, wait, reparenting, and the address spaces they use.
//!
//! - Every thread context (`sched`) belongs to one process and runs in one address space
//!   ([`of`], [`mm_of`]: per-context, read without the lock). A process owns an address
//!   space, or shares its parent's after `vfork`/`CLONE_VM` until it execs (refcounted
//!   [`Mms`]).
//! - fork copies the parent's memory into fresh frames; the host does the copying
//!   (`op::COPY_PHYS`), ring 0 only walks the page tables (docs/DESIGN.md "Processes").
//! - The job is a PID namespace whose init is the first process: when it ends, the job ends
//!   with its status, and processes still running end with it. Orphans are reparented to the
//!   nearest child subreaper, else to the first process.
//! - The host keeps each process's fd table, cwd and umask (`op::PROC_FORK`/`PROC_EXEC`/
//!   `PROC_EXIT`); every offloaded call names the calling thread's process.

use crate::arch::{self, Global, MAX_THREADS, TrapFrame};
use crate::signal::{self, Info, Table};
use crate::vm::Mm;
use crate::{Kernel, KernelGuard, bridge, exit_job, klog, sched};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use offload_abi::errno::{EAGAIN, ECHILD, ENOMEM};
use offload_abi::{BootInfo, RLIMIT_COUNT, exit_kind};

/// Most processes (live and zombie) in one job.
pub const MAX_PROCS: usize = 64;

/// The process of each thread context.
static PROC_OF: [AtomicU8; MAX_THREADS] = [const { AtomicU8::new(0) }; MAX_THREADS];
/// The address space of each thread context.
static MM_OF: [AtomicU8; MAX_THREADS] = [const { AtomicU8::new(0) }; MAX_THREADS];
/// The pid of each thread context's process (what offloaded calls name; 0: the first
/// process, for contexts that never ran a thread).
static PID_OF: [AtomicU32; MAX_THREADS] = [const { AtomicU32::new(0) }; MAX_THREADS];
/// Set while the thread in a context waits in vfork for its child to exec or exit.
static VFORK_WAIT: [AtomicBool; MAX_THREADS] = [const { AtomicBool::new(false) }; MAX_THREADS];
/// Set while the thread in a context waits for a child in wait4/waitid.
static CHILD_WAIT: [AtomicBool; MAX_THREADS] = [const { AtomicBool::new(false) }; MAX_THREADS];
/// A page-table root with only the kernel half, loaded while a vCPU runs no thread (so that
/// no vCPU keeps a freed address space loaded).
static IDLE_CR3: AtomicU32 = AtomicU32::new(0);

/// The process of thread context `slot`.
#[inline]
pub fn of(slot: usize) -> usize {
    PROC_OF[slot].load(Ordering::Relaxed) as usize
}

/// The calling thread's process.
#[inline]
pub fn cur() -> usize {
    of(arch::current_slot())
}

/// The address space of thread context `slot`.
#[inline]
pub fn mm_of(slot: usize) -> usize {
    MM_OF[slot].load(Ordering::Relaxed) as usize
}

/// The calling thread's address space.
#[inline]
pub fn cur_mm() -> usize {
    mm_of(arch::current_slot())
}

/// The pid offloaded calls from context `slot` name (0: not set, the caller uses the first
/// process's).
pub fn pid_of(slot: usize) -> u32 {
    PID_OF.get(slot).map_or(0, |p| p.load(Ordering::Relaxed))
}

/// Records that context `slot` runs a thread of process `p` (pid `pid`) in address space `mm`.
fn bind(slot: usize, p: usize, mm: usize, pid: u32) {
    PROC_OF[slot].store(p as u8, Ordering::Relaxed);
    MM_OF[slot].store(mm as u8, Ordering::Relaxed);
    PID_OF[slot].store(pid, Ordering::Relaxed);
}

/// Loads the kernel-only page-table root (a thread ends; its address space may go away).
pub fn load_idle_cr3() {
    let cr3 = u64::from(IDLE_CR3.load(Ordering::Relaxed)) << 12;
    if cr3 != 0 && arch::read_cr3() & crate::mm::pte::ADDR != cr3 {
        arch::write_cr3(cr3);
    }
}

/// Whether a process runs or waits to be reaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    Live,
    Zombie,
}

/// One process.
pub struct Process {
    /// Its address space (index in [`Mms`]).
    pub mm: usize,
    pub rlimits: [[u64; 2]; RLIMIT_COUNT],
    pub pid: u32,
    /// Process group and session.
    pub pgid: u32,
    pub sid: u32,
    /// Its parent's pid as getppid reports it, and the parent's index (none for the first
    /// process, whose parent is outside the job).
    pub ppid: u32,
    pub parent: Option<usize>,
    /// Dispositions, pending sets and per-thread signal state (`crate::signal`).
    pub sig: &'static mut Table,
    pub life: Life,
    /// Live threads.
    pub threads: u32,
    /// Signal its parent gets when it ends (clone's low byte; SIGCHLD for fork).
    pub exit_signal: u32,
    /// Wait status (Linux encoding) once it ends or is made to end.
    pub status: u32,
    /// Its threads must end (exit_group, a fatal signal, or exec removing the others).
    pub dying: bool,
    /// The thread in exec waiting for the others to end.
    pub exec_waiter: Option<usize>,
    /// The context of the parent thread waiting in vfork until this process execs or ends.
    pub vfork_waiter: Option<usize>,
    /// It has exec'd since fork (setpgid by the parent then fails with EACCES).
    pub execed: bool,
    /// PR_SET_PDEATHSIG.
    pub pdeath_signal: u32,
    /// PR_SET_CHILD_SUBREAPER.
    pub subreaper: bool,
    /// PR_SET_NAME / the basename of its program (NUL-padded).
    pub comm: [u8; 16],
}

/// The job's processes, indexed by process index.
pub struct Procs(&'static mut [Option<Process>; MAX_PROCS]);

static PROCS: Global<[Option<Process>; MAX_PROCS]> = Global::new([const { None }; MAX_PROCS]);

impl core::ops::Index<usize> for Procs {
    type Output = Process;
    fn index(&self, i: usize) -> &Process {
        match self.0.get(i).and_then(Option::as_ref) {
            Some(p) => p,
            None => panic!("process {i} does not exist"),
        }
    }
}

impl core::ops::IndexMut<usize> for Procs {
    fn index_mut(&mut self, i: usize) -> &mut Process {
        match self.0.get_mut(i).and_then(Option::as_mut) {
            Some(p) => p,
            None => panic!("process {i} does not exist"),
        }
    }
}

impl Procs {
    /// Process `i`, if it exists.
    pub fn get(&self, i: usize) -> Option<&Process> {
        self.0.get(i).and_then(Option::as_ref)
    }

    /// Every process with its index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Process)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }

    /// The index of the process with pid `pid`.
    pub fn by_pid(&self, pid: u32) -> Option<usize> {
        self.iter().find(|(_, p)| p.pid == pid).map(|(i, _)| i)
    }

    /// Whether some process belongs to group `pgid`.
    pub fn group_exists(&self, pgid: u32) -> bool {
        self.iter().any(|(_, p)| p.pgid == pgid)
    }

    /// An unused index.
    fn free_index(&self) -> Option<usize> {
        self.0.iter().position(Option::is_none)
    }
}

/// An address space and how many processes use it.
pub struct MmSlot {
    pub mm: Mm,
    pub refs: u32,
}

/// The job's address spaces.
pub struct Mms(&'static mut [Option<MmSlot>; MAX_PROCS]);

static MMS: Global<[Option<MmSlot>; MAX_PROCS]> = Global::new([const { None }; MAX_PROCS]);

impl core::ops::Index<usize> for Mms {
    type Output = Mm;
    fn index(&self, i: usize) -> &Mm {
        match self.0.get(i).and_then(Option::as_ref) {
            Some(s) => &s.mm,
            None => panic!("address space {i} does not exist"),
        }
    }
}

impl core::ops::IndexMut<usize> for Mms {
    fn index_mut(&mut self, i: usize) -> &mut Mm {
        match self.0.get_mut(i).and_then(Option::as_mut) {
            Some(s) => &mut s.mm,
            None => panic!("address space {i} does not exist"),
        }
    }
}

impl Mms {
    /// Address space `i`, if it exists.
    pub fn get(&self, i: usize) -> Option<&Mm> {
        self.0.get(i).and_then(Option::as_ref).map(|s| &s.mm)
    }

    /// Adds `mm` with one user; `Err` gives it back when the table is full (by value: the
    /// kernel has no heap to box it in, and the caller must destroy it).
    #[allow(clippy::result_large_err)]
    pub fn insert(&mut self, mm: Mm) -> Result<usize, Mm> {
        match self.0.iter().position(Option::is_none) {
            Some(i) => {
                self.0[i] = Some(MmSlot { mm, refs: 1 });
                Ok(i)
            }
            None => Err(mm),
        }
    }

    /// One more process uses address space `i`.
    fn share(&mut self, i: usize) {
        if let Some(Some(s)) = self.0.get_mut(i) {
            s.refs += 1;
        }
    }

    /// One process fewer uses address space `i`; the last one frees it (this vCPU must not
    /// have it loaded).
    pub fn release(&mut self, i: usize, frames: &mut crate::frames::Frames) {
        let Some(Some(s)) = self.0.get_mut(i) else {
            return;
        };
        s.refs -= 1;
        if s.refs == 0
            && let Some(s) = self.0[i].take()
        {
            s.mm.destroy(frames);
        }
    }
}

/// The process table at boot: the first process (the program) in address space `mm`.
pub fn init(
    info: &BootInfo,
    frames: &mut crate::frames::Frames,
    mm: Mm,
    sig: &'static mut Table,
) -> (Procs, Mms) {
    // SAFETY: boot, on vCPU 0 before the other vCPUs start (see `Global`); afterwards the
    // tables are reached only through the kernel state, under the kernel lock.
    let (procs, mms) = unsafe { (&mut *PROCS.get(), &mut *MMS.get()) };
    let procs = Procs(procs);
    let mut mms = Mms(mms);
    if let Some(pml4) = crate::mm::new_pml4(frames) {
        IDLE_CR3.store((pml4 >> 12) as u32, Ordering::Relaxed);
    }
    let m = mms.insert(mm).unwrap_or(0);
    let comm = boot_comm(info);
    let first = Process {
        mm: m,
        rlimits: info.rlimits,
        pid: info.pid,
        pgid: info.pgid,
        sid: info.sid,
        ppid: info.ppid,
        parent: None,
        sig,
        life: Life::Live,
        threads: 1,
        exit_signal: 0,
        status: 0,
        dying: false,
        exec_waiter: None,
        vfork_waiter: None,
        execed: false,
        pdeath_signal: 0,
        subreaper: false,
        comm,
    };
    procs.0[0] = Some(first);
    for p in PID_OF.iter() {
        p.store(info.pid, Ordering::Relaxed);
    }
    bind(0, 0, m, info.pid);
    (procs, mms)
}

/// The first process's name: the last part of AT_EXECFN (the path it was started by, as the
/// host names it), at most 15 bytes.
fn boot_comm(info: &BootInfo) -> [u8; 16] {
    let mut buf = [0u8; 256];
    let size = info.stack_size;
    let blob = info.stack_gpa + size - info.strings_len;
    let start = u64::from(info.execfn_off);
    if info.strings_len > size || start >= info.strings_len {
        return [0; 16];
    }
    let n = (info.strings_len - start).min(buf.len() as u64) as usize;
    crate::phys::read_bytes(blob + start, &mut buf[..n]);
    let end = buf[..n].iter().position(|&b| b == 0).unwrap_or(n);
    comm_of(&buf[..end])
}

/// A comm value from a path: its last part, at most 15 bytes.
pub fn comm_of(path: &[u8]) -> [u8; 16] {
    let base = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    let mut comm = [0u8; 16];
    let n = base.len().min(15);
    comm[..n].copy_from_slice(&base[..n]);
    comm
}

/// Wait-status encodings.
pub fn exited_status(code: u32) -> u32 {
    (code & 0xff) << 8
}

pub fn signaled_status(s: u32) -> u32 {
    s & 0x7f
}

/// The vCPU for a new thread or process, or EAGAIN (with one warning) when the
/// oversubscription policy refuses.
pub fn place(k: &mut Kernel, what: &str) -> Result<usize, i64> {
    if let Some(cpu) = k.sched.place() {
        return Ok(cpu);
    }
    if !k.sched.warned_full {
        k.sched.warned_full = true;
        let n = k.sched.ncpus;
        klog!(
            bridge::level::ERROR,
            "{what}: all {n} vCPUs run threads; more threads than vCPUs are refused (run with more --cpus, or with oversubscribe = \"timeslice\", the default)"
        );
    }
    Err(-EAGAIN)
}

/// What a new thread or process is made with (clone's and clone3's arguments).
pub struct ForkArgs {
    pub flags: u64,
    /// The new stack pointer (0: the caller's).
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
    /// Signal the parent gets when a new process ends.
    pub exit_signal: u32,
}

impl ForkArgs {
    /// The new thread's FS base: `tls` with CLONE_SETTLS (a user address, else EINVAL), else
    /// the caller's.
    pub fn fs_base(&self) -> Result<u64, i64> {
        if self.flags & CLONE_SETTLS == 0 {
            return Ok(arch::rdmsr(arch::msr::FS_BASE));
        }
        if self.tls >= offload_abi::layout::USER_END {
            return Err(-offload_abi::errno::EINVAL);
        }
        Ok(self.tls)
    }

    /// The registers the new thread enters ring 3 with: the caller's, RAX 0, the new stack.
    pub fn child_frame(&self, frame: &TrapFrame) -> TrapFrame {
        let mut regs = *frame;
        regs.rax = 0;
        if self.stack != 0 {
            regs.rsp = self.stack;
        }
        regs
    }
}

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;

/// fork, vfork and clone without CLONE_THREAD: a new process whose one thread returns 0 from
/// the call with the caller's registers. Returns the child's pid.
pub fn fork(k: &mut KernelGuard, frame: &TrapFrame, a: &ForkArgs) -> Result<i64, i64> {
    let me = arch::current_slot();
    let parent = cur();
    if must_exit(k, me) {
        // The process is ending: no new process from it (it would outlive its threads).
        return Err(-offload_abi::errno::EINTR);
    }
    if a.flags & CLONE_PARENT != 0 && k.procs[parent].parent.is_none() {
        // The job's first process has no parent in the job (Linux: EINVAL from a pid
        // namespace's init).
        return Err(-offload_abi::errno::EINVAL);
    }
    let cpu = place(k, "fork")?;
    let pid = k.sched.next_tid;
    let Some(c) = k.procs.free_index() else {
        klog!(
            bridge::level::ERROR,
            "fork: the job already has {MAX_PROCS} processes"
        );
        return Err(-EAGAIN);
    };
    if a.flags & CLONE_PARENT_SETTID != 0 {
        // Before the copy: the child sees the word too, as on Linux.
        crate::syscall::put_user(k, a.parent_tid, &pid.to_le_bytes())?;
    }
    let fs_base = a.fs_base()?;
    // The address space: shared (vfork, CLONE_VM) or copied.
    let mm = if a.flags & CLONE_VM != 0 {
        let m = cur_mm();
        k.mms.share(m);
        m
    } else {
        let kernel: &mut Kernel = k;
        let copy = kernel.mms[mm_of(me)].fork(kernel.frames, frame.rsp)?;
        match kernel.mms.insert(copy) {
            Ok(m) => m,
            Err(copy) => {
                copy.destroy(kernel.frames);
                return Err(-ENOMEM);
            }
        }
    };
    let undo_mm = |k: &mut KernelGuard| {
        let kernel: &mut Kernel = k;
        kernel.mms.release(mm, kernel.frames);
    };
    let Some(table) = Table::alloc(k.frames) else {
        undo_mm(k);
        return Err(-ENOMEM);
    };
    let (ppid_idx, ppid) = if a.flags & CLONE_PARENT != 0 {
        (k.procs[parent].parent, k.procs[parent].ppid)
    } else {
        (Some(parent), k.procs[parent].pid)
    };
    let p = &k.procs[parent];
    let child = Process {
        mm,
        rlimits: p.rlimits,
        pid,
        pgid: p.pgid,
        sid: p.sid,
        ppid,
        parent: ppid_idx,
        sig: table,
        life: Life::Live,
        threads: 1,
        exit_signal: a.exit_signal,
        status: 0,
        dying: false,
        exec_waiter: None,
        vfork_waiter: None,
        execed: false,
        pdeath_signal: 0,
        subreaper: false,
        comm: p.comm,
    };
    k.procs.0[c] = Some(child);
    let drop_child = |k: &mut KernelGuard| {
        if let Some(child) = k.procs.0[c].take() {
            signal::free_table(k.frames, child.sig);
        }
        undo_mm(k);
    };
    let r = bridge::proc_fork(k.procs[parent].pid, pid);
    if r < 0 {
        klog!(
            bridge::level::ERROR,
            "fork: the host refused the new process ({r})"
        );
        drop_child(k);
        return Err(if r == -EAGAIN { -EAGAIN } else { -ENOMEM });
    }
    let regs = a.child_frame(frame);
    let thread = sched::Thread {
        tid: pid,
        clear_child_tid: if a.flags & CLONE_CHILD_CLEARTID != 0 {
            a.child_tid
        } else {
            0
        },
        robust_list: (0, 0),
    };
    let Some(slot) = k.sched.spawn(cpu, thread, &regs, fs_base) else {
        klog!(
            bridge::level::ERROR,
            "fork: all {} thread contexts are in use",
            MAX_THREADS
        );
        bridge::proc_exit(pid);
        drop_child(k);
        return Err(-EAGAIN);
    };
    bind(slot, c, mm, pid);
    crate::procinfo::publish(k, c);
    crate::procinfo::thread_bound(slot, pid, pid, cpu);
    k.sched.next_tid = pid.wrapping_add(1);
    {
        let kernel: &mut Kernel = k;
        let (pt, ct) = two(&mut kernel.procs, parent, c);
        signal::fork_table(pt.sig, ct.sig, me, slot);
    }
    if a.flags & CLONE_CHILD_SETTID != 0 {
        // In the child's memory (its own copy unless it shares the caller's).
        let _ = k.mms[mm]
            .aspace
            .copy_to_user(a.child_tid, &pid.to_le_bytes());
    }
    if a.flags & CLONE_VFORK != 0 {
        k.procs[c].vfork_waiter = Some(me);
        VFORK_WAIT[me].store(true, Ordering::Relaxed);
        while VFORK_WAIT[me].load(Ordering::Relaxed) {
            if must_exit(k, me) {
                // Killed while waiting (Linux's vfork wait is killable): the child goes on
                // alone, with the address space it shares.
                VFORK_WAIT[me].store(false, Ordering::Relaxed);
                if let Some(child) = k.procs.0[c].as_mut()
                    && child.vfork_waiter == Some(me)
                {
                    child.vfork_waiter = None;
                }
                break;
            }
            sched::block(k, None);
        }
    }
    Ok(i64::from(pid))
}

/// Mutable references to two different processes.
fn two(procs: &mut Procs, a: usize, b: usize) -> (&mut Process, &mut Process) {
    assert!(a != b, "two references to process {a}");
    let (lo, hi) = (a.min(b), a.max(b));
    let (x, y) = procs.0.split_at_mut(hi);
    let (l, h) = match (x[lo].as_mut(), y[0].as_mut()) {
        (Some(l), Some(h)) => (l, h),
        _ => panic!("process {a} or {b} does not exist"),
    };
    if a < b { (l, h) } else { (h, l) }
}

/// The parent waiting in vfork for process `p` may go on (it exec'd or ended).
pub fn release_vfork(k: &mut Kernel, p: usize) {
    if let Some(w) = k.procs[p].vfork_waiter.take() {
        VFORK_WAIT[w].store(false, Ordering::Relaxed);
        k.sched.wake(w);
    }
}

/// Makes every thread of process `p` but context `except` end (they do on their way back to
/// ring 3, or out of their waits and host calls).
pub fn kill_threads(k: &mut Kernel, p: usize, except: Option<usize>) {
    k.procs[p].dying = true;
    for slot in 0..k.sched.high {
        if Some(slot) != except && k.sched.is_thread(slot) && of(slot) == p {
            signal::kick_slot(k, slot);
        }
    }
}

/// Whether the thread in context `slot` must end (its process is dying and it is not the one
/// exec waits in).
pub fn must_exit(k: &Kernel, slot: usize) -> bool {
    let p = &k.procs[of(slot)];
    p.dying && p.exec_waiter != Some(slot)
}

/// Process `p` is killed by signal `s` (a default action, or SIGKILL). The first process
/// ends the job; another process's threads end and it becomes a zombie.
pub fn kill_process(k: &mut Kernel, p: usize, s: u32) {
    if k.procs[p].parent.is_none() {
        signal::kill_job(s);
    }
    if !k.procs[p].dying || k.procs[p].exec_waiter.is_some() {
        k.procs[p].status = signaled_status(s);
        k.procs[p].exec_waiter = None;
    }
    kill_threads(k, p, None);
}

/// Ends the calling thread; `group` (exit_group, a fatal signal) ends its whole process with
/// that wait status. The last thread of a process ends the process. Never returns.
pub fn exit_thread(mut k: KernelGuard, status: u32, group: bool) -> ! {
    let me = arch::current_slot();
    let p = cur();
    if group && !k.procs[p].dying {
        k.procs[p].status = status;
        kill_threads(&mut k, p, Some(me));
    }
    let thread = k.sched.slots[me].thread;
    if let Some(t) = thread
        && t.clear_child_tid != 0
        && k.mms[mm_of(me)]
            .aspace
            .copy_to_user(t.clear_child_tid, &0u32.to_le_bytes())
            .is_ok()
    {
        let key = futex_key_at(&k, t.clear_child_tid);
        k.sched.futex_wake(key, 1, u32::MAX);
    }
    k.sched.live = k.sched.live.saturating_sub(1);
    k.procs[p].threads -= 1;
    // "Blocked in every thread" no longer counts this one.
    k.sched.slots[me].thread = None;
    crate::procinfo::thread_ended(me);
    if k.procs[p].threads == 0 {
        let st = if k.procs[p].dying {
            k.procs[p].status
        } else {
            status
        };
        process_ended(&mut k, p, st);
    } else {
        report_state(&k, p);
        if let Some(w) = k.procs[p].exec_waiter
            && k.procs[p].threads == 1
        {
            k.sched.wake(w);
        }
    }
    signal::update_interrupting(&k);
    load_idle_cr3();
    sched::exit_current(k)
}

/// The futex key of the calling thread's user address `va`: the address in its address space
/// (private futexes are per address space), or for MAP_SHARED memory the physical address
/// (processes share it).
pub fn futex_key_at(k: &Kernel, va: u64) -> u64 {
    let m = cur_mm();
    let mm = &k.mms[m];
    if mm
        .area(va)
        .is_some_and(|v| v.kind & crate::vma::kind::SHARED != 0)
        && let Some(pa) = mm.aspace.user_phys(va, false)
    {
        return pa | (1 << 62);
    }
    va | ((m as u64 + 1) << 48)
}

/// Process `p`'s last thread ended with wait status `status`.
fn process_ended(k: &mut KernelGuard, p: usize, status: u32) {
    if k.procs[p].parent.is_none() {
        if status & 0x7f == 0 {
            exit_job(exit_kind::EXITED, (status >> 8) & 0xff);
        }
        exit_job(exit_kind::SIGNALED, status & 0x7f);
    }
    let pid = k.procs[p].pid;
    bridge::proc_exit(pid);
    load_idle_cr3();
    {
        let kernel: &mut Kernel = k;
        let mm = kernel.procs[p].mm;
        kernel.mms.release(mm, kernel.frames);
    }
    release_vfork(k, p);
    // Timers of a process that ended fire no more.
    for t in k.procs[p].sig.timers.iter_mut() {
        *t = crate::timer::Timer::default();
    }
    crate::timer::rearm(k);
    reparent_children(k, p);
    k.procs[p].life = Life::Zombie;
    k.procs[p].status = status;
    crate::procinfo::publish(k, p);
    let Some(parent) = k.procs[p].parent else {
        return;
    };
    let es = k.procs[p].exit_signal;
    if (1..=64).contains(&es) {
        // Sent even with SA_NOCLDWAIT (a handler still runs); SIG_IGN drops it.
        let info = chld_info(k, pid, status);
        signal::send_process(k, parent, es, info);
    }
    if signal::no_zombies(&k.procs[parent]) {
        reap(k, p);
    }
    wake_waiters(k, parent);
}

const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;

/// `si_code` and `si_status` for a child that ended with wait status `status`: CLD_EXITED
/// with its exit code, or CLD_KILLED with the signal.
pub fn cld_code(status: u32) -> (i32, u32) {
    if status & 0x7f == 0 {
        (CLD_EXITED, (status >> 8) & 0xff)
    } else {
        (CLD_KILLED, status & 0x7f)
    }
}

/// The SIGCHLD siginfo for child `pid` that ended with wait status `status`.
fn chld_info(k: &Kernel, pid: u32, status: u32) -> Info {
    let (code, value) = cld_code(status);
    Info {
        code,
        _pad: 0,
        a: u64::from(pid) | (u64::from(k.info.ids[0]) << 32),
        b: u64::from(value),
    }
}

/// Threads of process `p` waiting for a child look again.
fn wake_waiters(k: &mut Kernel, p: usize) {
    for (slot, waiting) in CHILD_WAIT.iter().enumerate().take(k.sched.high) {
        if waiting.load(Ordering::Relaxed) && k.sched.is_thread(slot) && of(slot) == p {
            k.sched.wake(slot);
        }
    }
}

/// The children of ending process `p` get a new parent: the nearest ancestor that is a child
/// subreaper, else the first process. A PR_SET_PDEATHSIG child gets its signal.
fn reparent_children(k: &mut Kernel, p: usize) {
    let mut reaper = k.procs[p].parent;
    while let Some(r) = reaper {
        if k.procs[r].subreaper && k.procs[r].life == Life::Live {
            break;
        }
        reaper = k.procs[r].parent;
    }
    let reaper = reaper.unwrap_or(0);
    let reaper_pid = k.procs[reaper].pid;
    let children: [Option<usize>; MAX_PROCS] = core::array::from_fn(|i| {
        k.procs
            .get(i)
            .filter(|c| c.parent == Some(p) && i != reaper)
            .map(|_| i)
    });
    let mut zombie = false;
    for c in children.into_iter().flatten() {
        k.procs[c].parent = Some(reaper);
        k.procs[c].ppid = reaper_pid;
        if k.procs[c].life == Life::Live {
            report_state(k, c);
        } else {
            crate::procinfo::publish(k, c);
            // A zombie the new parent would never be told about: as Linux, it is reaped at
            // once if that parent takes no zombies, else the parent gets SIGCHLD for it.
            if signal::no_zombies(&k.procs[reaper]) {
                reap(k, c);
                continue;
            }
            let info = chld_info(k, k.procs[c].pid, k.procs[c].status);
            signal::send_process(k, reaper, signal::sig::SIGCHLD, info);
        }
        zombie |= k.procs[c].life == Life::Zombie;
        let s = k.procs[c].pdeath_signal;
        if s != 0 && k.procs[c].life == Life::Live {
            let info = Info::user(signal::code::SI_USER, 0, 0);
            signal::send_process(k, c, s, info);
        }
    }
    if zombie {
        wake_waiters(k, reaper);
    }
}

/// Frees zombie `p`.
fn reap(k: &mut Kernel, p: usize) {
    if let Some(z) = k.procs.0[p].take() {
        signal::free_table(k.frames, z.sig);
    }
    crate::procinfo::publish(k, p);
}

/// Which children a wait names.
#[derive(Clone, Copy)]
pub enum Which {
    Any,
    Pid(u32),
    Group(u32),
}

/// A reaped (or, with `keep`, only reported) child: pid and wait status.
pub struct Waited {
    pub pid: u32,
    pub status: u32,
    pub uid: u32,
}

/// wait4/waitid's core: the first zombie child of the caller's process that `which` names,
/// reaped unless `keep`. `Ok(None)`: children exist but none has ended (with `nohang`);
/// `Err(-ECHILD)`: no such child; `Err(-ERESTARTSYS)`: a signal came while waiting.
pub fn wait_child(
    k: &mut KernelGuard,
    which: Which,
    nohang: bool,
    keep: bool,
) -> Result<Option<Waited>, i64> {
    let me = arch::current_slot();
    let p = cur();
    loop {
        let mut any = false;
        let mut found = None;
        for (i, c) in k.procs.iter() {
            if c.parent != Some(p) {
                continue;
            }
            let named = match which {
                Which::Any => true,
                Which::Pid(pid) => c.pid == pid,
                Which::Group(g) => c.pgid == g,
            };
            if !named {
                continue;
            }
            any = true;
            if c.life == Life::Zombie {
                found = Some(i);
                break;
            }
        }
        if let Some(i) = found {
            let w = Waited {
                pid: k.procs[i].pid,
                status: k.procs[i].status,
                uid: k.info.ids[0],
            };
            if !keep {
                reap(k, i);
            }
            return Ok(Some(w));
        }
        if !any {
            return Err(-ECHILD);
        }
        if nohang {
            return Ok(None);
        }
        if signal::interrupted(k, me) {
            return Err(-signal::ERESTARTSYS);
        }
        CHILD_WAIT[me].store(true, Ordering::Relaxed);
        sched::block(k, None);
        CHILD_WAIT[me].store(false, Ordering::Relaxed);
    }
}

/// Whether process `c` is a child of process `p` (zombie or live).
pub fn is_child(k: &Kernel, p: usize, c: usize) -> bool {
    k.procs.get(c).is_some_and(|x| x.parent == Some(p))
}

/// Sets the comm of the calling process (and the host's view of it).
pub fn set_comm(k: &mut Kernel, name: &[u8]) {
    let p = cur();
    let mut comm = [0u8; 16];
    let n = name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(name.len())
        .min(15);
    comm[..n].copy_from_slice(&name[..n]);
    k.procs[p].comm = comm;
    let page = k.frames.alloc_page();
    if let Some(pa) = page {
        crate::phys::write_bytes(pa, &comm[..n]);
        bridge::proc_name(k.procs[p].pid, crate::phys::virt(pa), n as u64);
        k.frames.free(pa, crate::mm::PAGE);
    }
}

/// Sends `s` with `info` to every live process `pick` chooses (kill to a group, to all);
/// returns how many it reached.
pub fn signal_each(
    k: &mut Kernel,
    s: Option<u32>,
    info: Info,
    mut pick: impl FnMut(usize, &Process) -> bool,
) -> usize {
    let targets: [bool; MAX_PROCS] =
        core::array::from_fn(|i| k.procs.get(i).is_some_and(|p| pick(i, p)));
    let mut n = 0;
    for (i, t) in targets.iter().enumerate() {
        if *t {
            n += 1;
            if let Some(s) = s
                && k.procs[i].life == Life::Live
            {
                signal::send_process(k, i, s, info);
            }
        }
    }
    n
}

/// Tells the host process `p`'s thread count and parent (its /proc/self/status).
pub fn report_state(k: &Kernel, p: usize) {
    crate::procinfo::publish(k, p);
    let x = &k.procs[p];
    bridge::proc_state(x.pid, x.threads.max(1), x.ppid);
}

/// Context `slot` runs a new thread of the process of context `creator` (clone).
pub fn bind_thread(slot: usize, creator: usize) {
    bind(
        slot,
        of(creator),
        mm_of(creator),
        PID_OF[creator].load(Ordering::Relaxed),
    );
}

/// Context `slot` now runs in address space `mm` (exec).
pub fn rebind_mm(slot: usize, mm: usize) {
    MM_OF[slot].store(mm as u8, Ordering::Relaxed);
}
