//! CPUs and threads: each thread lives on one vCPU; no timer tick unless threads share a vCPU.
//!
//! Every thread runs in a *context* (`arch::MAX_THREADS` of them, each with a kernel stack of
//! its own); contexts never move between vCPUs. A thread that blocks (futex wait, sleep,
//! sigsuspend) switches to another ready context of its vCPU if there is one, else halts its
//! vCPU inside the syscall, with the kernel lock released, until another CPU wakes it with an
//! IPI or the TSC-deadline timer fires. A vCPU without a thread runs its idle loop in a
//! context of its own (freed when the vCPU switches to a thread).
//!
//! More threads than vCPUs (`oversubscribe` in the job config, passed as
//! `BootInfo::timeslice_us`): "refuse" (0) makes clone fail with EAGAIN when every vCPU has a
//! thread, as McKernel does; "timeslice" places the new thread on the vCPU with the fewest,
//! and a vCPU with more than one runnable thread arms its TSC-deadline timer for the end of
//! the running thread's slice (of its own run time: [`Sched::keeps_slice`]) and switches
//! round-robin when it fires, or when a thread of it is woken. A vCPU with one runnable thread never has a slice timer (no tick).
//!
//! A switch between two threads also switches their FPU/SSE/AVX state, through the VMM
//! (`arch::fpu_switch`), lazily: a vCPU's state stays loaded while it idles or runs the same
//! thread again.

use crate::arch::{self, MAX_CPUS, MAX_THREADS, TrapFrame};
use crate::{Kernel, KernelGuard, kernel};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A thread (of the process `process::of` its context names).
#[derive(Clone, Copy, Debug)]
pub struct Thread {
    /// Thread id (the first thread's is the process id).
    pub tid: u32,
    /// `set_tid_address` / CLONE_CHILD_CLEARTID: zeroed and woken when the thread exits.
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
}

/// A thread waiting on a futex.
#[derive(Clone, Copy, Debug)]
pub struct FutexWait {
    /// The futex word's user address.
    pub key: u64,
    /// FUTEX_WAIT_BITSET mask.
    pub bitset: u32,
}

/// Most futexes one `futex_waitv` waits on (Linux's FUTEX_WAITV_MAX).
pub const WAITV_MAX: usize = 128;

/// Keys of each context's `futex_waitv` (in .bss: 128 KiB).
static WAITV_KEYS: arch::Global<[[u64; WAITV_MAX]; MAX_THREADS]> =
    arch::Global::new([[0; WAITV_MAX]; MAX_THREADS]);

/// What a context is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum State {
    /// Unused; its stack is free.
    #[default]
    Free,
    /// On its vCPU now (in ring 3, in the kernel, or halted in a wait with nothing else to
    /// run).
    Running,
    /// Waits for its vCPU.
    Ready,
    /// Switched out in a wait; made ready by a wake-up or its deadline.
    Blocked,
    /// Runs its vCPU's idle loop (no thread).
    Idle,
    /// Ended; its stack is freed once its vCPU runs another context.
    Dead,
}

/// One context.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// What it is doing.
    pub state: State,
    /// Its vCPU.
    pub cpu: usize,
    /// The thread it runs (none for an idle loop).
    pub thread: Option<Thread>,
    /// Set while the thread waits on a futex.
    pub futex: Option<FutexWait>,
    /// Set by a waker; the waiting thread clears it.
    pub woken: bool,
    /// TSC deadline of the wait the thread is in (0: none).
    pub deadline: u64,
    /// Saved kernel stack pointer while not running.
    ksp: u64,
    /// User FS and GS base while not running.
    fs_base: u64,
    gs_base: u64,
    /// Its FPU state is in its save area (not in its vCPU's registers).
    fpu_saved: bool,
    /// Its offloaded call on the host, if any (for [`interrupt_offload`]).
    pub in_offload: InOffload,
    /// Number of futexes its `futex_waitv` waits on (keys in `Sched::waitv`; 0: none).
    pub waitv_len: u8,
    /// Index of the futex a wake-up of its `futex_waitv` came through.
    pub waitv_woke: u8,
}

impl Slot {
    /// An unused context.
    const FREE: Slot = Slot {
        state: State::Free,
        cpu: 0,
        thread: None,
        futex: None,
        woken: false,
        deadline: 0,
        ksp: 0,
        fs_base: 0,
        gs_base: 0,
        fpu_saved: false,
        in_offload: InOffload::No,
        waitv_len: 0,
        waitv_woke: 0,
    };
}

/// The contexts, in .bss: the scheduler refers to them (too large to build on a kernel stack).
static SLOTS: arch::Global<[Slot; MAX_THREADS]> = arch::Global::new([Slot::FREE; MAX_THREADS]);

/// Where a thread's offloaded call runs while the thread waits for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InOffload {
    /// No call.
    #[default]
    No,
    /// A synchronous call: its vCPU is in the VMM until it returns.
    Sync,
    /// An asynchronous call in the thread's async page.
    Async,
}

/// One vCPU as the scheduler sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// The vCPU has booted and waits for work.
    pub online: bool,
    /// The context it runs.
    pub current: usize,
    /// Live threads placed on it.
    pub threads: u32,
    /// The context whose FPU state its registers hold.
    fpu_owner: Option<usize>,
    /// TSC at which the running thread's slice ends at the earliest (0: no other thread
    /// waits; [`SLICE_AT_USER`]: set when the thread leaves for ring 3, [`slice_to_user`]);
    /// see [`Sched::keeps_slice`].
    slice_end: u64,
    /// The running thread's user time, and its user + system time, when its slice started
    /// (its context's counters, `time::run_ticks`).
    slice_user: u64,
    slice_run: u64,
}

/// A thread that spends its slice in syscalls (little user time) still yields the vCPU once
/// it has run this many slices of user + system time.
const SLICE_RUN_LIMIT: u64 = 8;

/// `Cpu::slice_end` of a slice whose deadline is set on the way to ring 3.
const SLICE_AT_USER: u64 = u64::MAX;

/// Per vCPU: user ticks of the running thread's slice still to run, counted from when it next
/// leaves for ring 3 ([`slice_to_user`]; 0: none pending). The way out of a switch or of the
/// interrupt that ended a slice is ring-0 work that must not eat the slice.
static SLICE_LEFT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// All vCPUs and contexts.
pub struct Sched {
    /// vCPUs of this job.
    pub ncpus: usize,
    /// Per-vCPU state.
    pub cpus: [Cpu; MAX_CPUS],
    /// Per-context state.
    pub slots: &'static mut [Slot; MAX_THREADS],
    /// Per-context `futex_waitv` keys (the first `Slot::waitv_len`).
    pub waitv: &'static mut [[u64; WAITV_MAX]; MAX_THREADS],
    /// Threads alive (the job ends with the last one).
    pub live: u32,
    /// Next thread id.
    pub next_tid: u32,
    /// The "no free vCPU" warning was printed.
    pub warned_full: bool,
    /// Slice length in TSC ticks; 0: more threads than vCPUs are refused.
    pub timeslice: u64,
    /// Contexts at and above this index have never been used: scans stop here (every
    /// ring-0 instruction is emulated on the development KVM).
    pub high: usize,
    /// TSC ticks from now at which a deadline that already passed is armed (100 µs).
    pub late: u64,
}

/// Per vCPU: a context of it became ready, or its running thread's slice ended; checked
/// without the lock on every return to ring 3.
static NEED_RESCHED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

impl Sched {
    /// vCPU 0 runs the first thread (context 0), with the process id as its thread id; the
    /// other vCPUs boot into their idle loops (contexts 1..ncpus).
    pub fn new(ncpus: usize, pid: u32, timeslice: u64, tsc_khz: u64) -> Self {
        let mut cpus = [Cpu::default(); MAX_CPUS];
        // SAFETY: called once, at boot on vCPU 0 before the other vCPUs start (see `Global`);
        // afterwards the slots are reached only through the scheduler, under the kernel lock.
        let slots = unsafe { &mut *SLOTS.get() };
        // SAFETY: as for `slots`.
        let waitv = unsafe { &mut *WAITV_KEYS.get() };
        for (c, cpu) in cpus.iter_mut().enumerate().take(ncpus) {
            cpu.current = c;
            slots[c].state = State::Idle;
            slots[c].cpu = c;
        }
        cpus[0].online = true;
        cpus[0].threads = 1;
        cpus[0].fpu_owner = Some(0);
        slots[0].state = State::Running;
        slots[0].thread = Some(Thread {
            tid: pid,
            clear_child_tid: 0,
            robust_list: (0, 0),
        });
        Sched {
            ncpus,
            cpus,
            slots,
            waitv,
            live: 1,
            next_tid: pid.wrapping_add(1),
            warned_full: false,
            timeslice,
            high: ncpus,
            late: (tsc_khz / 10).max(1),
        }
    }

    /// The thread in the calling context.
    pub fn current(&mut self) -> &mut Thread {
        let slot = arch::current_slot();
        match self.slots[slot].thread.as_mut() {
            Some(t) => t,
            None => panic!("syscall in context {slot}, which runs no thread"),
        }
    }

    /// Contexts that run a thread, with it.
    pub fn threads(&self) -> impl Iterator<Item = (usize, &Thread)> {
        self.slots[..self.high]
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state != State::Dead)
            .filter_map(|(i, s)| s.thread.as_ref().map(|t| (i, t)))
    }

    /// The context of thread `tid`.
    pub fn slot_of(&self, tid: u32) -> Option<usize> {
        self.threads().find(|(_, t)| t.tid == tid).map(|(i, _)| i)
    }

    /// Whether context `slot` runs a live thread.
    pub fn is_thread(&self, slot: usize) -> bool {
        self.slots
            .get(slot)
            .is_some_and(|s| s.thread.is_some() && s.state != State::Dead)
    }

    /// The vCPU for a new thread: one without threads, else (time slicing) the one with the
    /// fewest; `None` when the policy refuses.
    ///
    /// A vCPU whose running thread waits in a synchronous host call is taken last: it is in
    /// the VMM until the call returns, which may be never if the call waits for the new
    /// thread. The caller's own vCPU never is, so with time slicing there is always a choice.
    pub fn place(&self) -> Option<usize> {
        let online = (0..self.ncpus).filter(|&c| self.cpus[c].online);
        let best = online.min_by_key(|&c| {
            let stuck = self.cpus[c].threads > 0
                && self.slots[self.cpus[c].current].in_offload == InOffload::Sync;
            (stuck, self.cpus[c].threads)
        })?;
        (self.cpus[best].threads == 0 || self.timeslice != 0).then_some(best)
    }

    /// Creates a ready context for thread `thread` on vCPU `cpu` that enters ring 3 with
    /// `frame` and FS base `fs_base`; returns it (`None`: all contexts are in use).
    pub fn spawn(
        &mut self,
        cpu: usize,
        thread: Thread,
        frame: &TrapFrame,
        fs_base: u64,
    ) -> Option<usize> {
        let slot = self.slots.iter().position(|s| s.state == State::Free)?;
        self.high = self.high.max(slot + 1);
        arch::set_slot_cpu(slot, cpu);
        let ksp = arch::prepare_stack(slot, frame);
        // The new thread starts with its creator's FPU state, as on Linux.
        arch::fpu_switch(Some(slot), None);
        self.slots[slot] = Slot {
            state: State::Ready,
            cpu,
            thread: Some(thread),
            futex: None,
            woken: false,
            deadline: 0,
            ksp,
            fs_base,
            gs_base: 0,
            fpu_saved: true,
            in_offload: InOffload::No,
            waitv_len: 0,
            waitv_woke: 0,
        };
        self.cpus[cpu].threads += 1;
        self.live += 1;
        self.kick_cpu(cpu);
        Some(slot)
    }

    /// Marks context `slot` woken: a blocked one becomes ready, and its vCPU looks again
    /// (out of a halt, or out of ring 3 to switch to it).
    pub fn wake(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.woken = true;
        let cpu = s.cpu;
        if s.state == State::Blocked {
            s.state = State::Ready;
            self.kick_cpu(cpu);
        } else if cpu != arch::current_cpu() {
            // Halted in its wait, or in ring 3 (a signal): the IPI is enough.
            arch::send_wakeup(cpu);
        }
    }

    fn kick_cpu(&self, cpu: usize) {
        NEED_RESCHED[cpu].store(true, Ordering::Release);
        if cpu != arch::current_cpu() {
            arch::send_wakeup(cpu);
        }
    }

    /// Wakes up to `n` threads waiting on `key` whose bitset intersects `bitset` (a
    /// `futex_waitv` waiter on any of its keys); returns how many.
    pub fn futex_wake(&mut self, key: u64, n: u32, bitset: u32) -> u32 {
        let mut woken = 0;
        for slot in 0..self.high {
            if woken >= n {
                break;
            }
            if let Some(w) = self.slots[slot].futex
                && w.key == key
                && w.bitset & bitset != 0
            {
                self.slots[slot].futex = None;
                self.wake(slot);
                woken += 1;
                continue;
            }
            let len = usize::from(self.slots[slot].waitv_len);
            if len == 0 {
                continue;
            }
            if let Some(i) = self.waitv[slot][..len].iter().position(|&k| k == key) {
                self.slots[slot].waitv_len = 0;
                self.slots[slot].waitv_woke = i as u8;
                self.wake(slot);
                woken += 1;
            }
        }
        woken
    }

    /// Moves up to `n` waiters from `from` to `to` (FUTEX_REQUEUE); returns how many.
    pub fn futex_requeue(&mut self, from: u64, to: u64, n: u32) -> u32 {
        let mut moved = 0;
        for slot in 0..self.high {
            if moved >= n {
                break;
            }
            if let Some(w) = self.slots[slot].futex.as_mut()
                && w.key == from
            {
                w.key = to;
                moved += 1;
                continue;
            }
            let len = usize::from(self.slots[slot].waitv_len);
            if len == 0 {
                continue;
            }
            if let Some(k) = self.waitv[slot][..len].iter_mut().find(|k| **k == from) {
                *k = to;
                moved += 1;
            }
        }
        moved
    }

    /// Blocked contexts of `cpu` whose wait deadline passed become ready; returns the next
    /// ready context after `after` (round-robin), if any.
    fn next_ready(&mut self, cpu: usize, after: usize) -> Option<usize> {
        let now = arch::rdtsc();
        let mut first = None;
        let mut next = None;
        for (i, s) in self.slots[..self.high].iter_mut().enumerate() {
            if s.cpu != cpu {
                continue;
            }
            if s.state == State::Blocked && s.deadline != 0 && s.deadline <= now {
                s.state = State::Ready;
            }
            if s.state == State::Ready && i != after {
                first = first.or(Some(i));
                if i > after && next.is_none() {
                    next = Some(i);
                }
            }
        }
        next.or(first)
    }

    /// Whether `cpu` has a ready context besides the running one.
    fn others_ready(&self, cpu: usize) -> bool {
        self.slots[..self.high]
            .iter()
            .any(|s| s.state == State::Ready && s.cpu == cpu)
    }

    /// Arms `cpu`'s TSC-deadline timer (the calling vCPU's) for the earliest of its timers
    /// (`timer`), the waits of its contexts and the running thread's slice end.
    ///
    /// A wait deadline or slice end that has already passed (the vCPU was late: its host
    /// thread was descheduled, say) is armed a short delay ([`Sched::late`]) from now, never
    /// dropped: whoever it is for may need the interrupt to run at all (a thread spinning in
    /// ring 3 is only preempted by it). Nor is it armed in the past: the timer would fire again
    /// the moment its own interrupt returned, for as long as nobody consumed the deadline (an
    /// interrupt storm on hardware KVM). A timer's deadline is armed as it is: its interrupt is
    /// what fires it, and `timer::expire` moves it on.
    pub fn arm(&self, cpu: usize) {
        // Read the TSC only if there is a deadline to compare (rdtsc in ring 0 is emulated).
        let mut now = None;
        let late = self.late;
        let mut d = crate::timer::next(cpu);
        let mut take = |t: u64| {
            if t == 0 {
                return;
            }
            let now = *now.get_or_insert_with(arch::rdtsc);
            let t = t.max(now.saturating_add(late));
            if d == 0 || t < d {
                d = t;
            }
        };
        if self.cpus[cpu].slice_end != SLICE_AT_USER {
            take(self.cpus[cpu].slice_end);
        }
        let current = &self.slots[self.cpus[cpu].current];
        if self.cpus[cpu].threads <= 1 && current.thread.is_some() {
            // The common case, one thread per vCPU, and it runs: only it can wait. (When the
            // vCPU idles, its one thread may be blocked with a deadline: scan.)
            take(current.deadline);
        } else {
            for s in self.slots[..self.high].iter() {
                if s.cpu == cpu && matches!(s.state, State::Blocked | State::Running) {
                    take(s.deadline);
                }
            }
        }
        arch::arm_timer(d);
    }

    /// The running thread's slice starts now if another thread of `cpu` waits to run.
    fn start_slice(&mut self, cpu: usize) {
        if self.timeslice == 0 || !self.others_ready(cpu) {
            self.cpus[cpu].slice_end = 0;
            return;
        }
        let (user, sys) = crate::time::run_ticks(self.cpus[cpu].current);
        let c = &mut self.cpus[cpu];
        c.slice_end = SLICE_AT_USER;
        c.slice_user = user;
        c.slice_run = user + sys;
        SLICE_LEFT[cpu].store(self.timeslice, Ordering::Relaxed);
    }

    /// Whether the running thread of `cpu`, which has a slice, keeps the vCPU. A slice is
    /// `timeslice` of the thread's own user time (or [`SLICE_RUN_LIMIT`] times that of user +
    /// system time, for a thread that lives in syscalls), not of wall time: on a KVM that
    /// emulates ring 0 (~1.4 µs per instruction here) the interrupt, the switch and the way
    /// back to ring 3 cost more than a 2 ms slice, and a slice counted on the wall clock from
    /// the switch ended before the thread ran a single user instruction — every thread was
    /// switched out again at once and none progressed (`sched_oversub_mix` with 2 ms slices
    /// hung that way). For the same reason the deadline is set only when the thread leaves
    /// for ring 3, for the user time it has left ([`slice_to_user`]); one that came before the
    /// thread used its slice (a slice spent partly in syscalls) moves likewise.
    fn keeps_slice(&mut self, cpu: usize) -> bool {
        let now = arch::rdtsc();
        if now < self.cpus[cpu].slice_end {
            return true;
        }
        let c = self.cpus[cpu];
        let (user, sys) = crate::time::run_ticks(c.current);
        let used = user.saturating_sub(c.slice_user);
        let ran = (user + sys).saturating_sub(c.slice_run);
        if used >= self.timeslice || ran >= SLICE_RUN_LIMIT.saturating_mul(self.timeslice) {
            return false;
        }
        self.cpus[cpu].slice_end = SLICE_AT_USER;
        SLICE_LEFT[cpu].store((self.timeslice - used).max(self.late), Ordering::Relaxed);
        true
    }
}

/// Runs context `next` on this vCPU instead of `prev` (the calling one), whose state the
/// caller has set; returns when `prev` runs again. The kernel lock stays held across: the
/// context that runs next continues with it.
fn switch(k: &mut KernelGuard, prev: usize, next: usize) {
    let cpu = arch::current_cpu();
    if k.sched.slots[prev].thread.is_some() && k.sched.slots[next].thread.is_some() {
        k.stats.context_switches += 1;
    }
    if k.sched.slots[next].thread.is_some() {
        // The next thread's address space (processes have their own).
        let pml4 = k.mms[crate::process::mm_of(next)].aspace.pml4;
        if arch::read_cr3() & crate::mm::pte::ADDR != pml4 {
            arch::write_cr3(pml4);
        }
    }
    let s = &mut k.sched;
    if s.slots[prev].thread.is_some() {
        s.slots[prev].fs_base = arch::rdmsr(arch::msr::FS_BASE);
        s.slots[prev].gs_base = arch::rdmsr(arch::msr::GS_BASE);
    }
    if s.slots[next].thread.is_some() && s.cpus[cpu].fpu_owner != Some(next) {
        // The registers hold the owner's state; the next thread's is in its area.
        let save = s.cpus[cpu].fpu_owner.filter(|&o| s.is_thread(o));
        let restore = s.slots[next].fpu_saved.then_some(next);
        arch::fpu_switch(save, restore);
        if let Some(o) = save {
            s.slots[o].fpu_saved = true;
        }
        s.slots[next].fpu_saved = false;
        s.cpus[cpu].fpu_owner = Some(next);
    }
    s.slots[next].state = State::Running;
    s.cpus[cpu].current = next;
    s.start_slice(cpu);
    s.arm(cpu);
    arch::wrmsr(arch::msr::FS_BASE, s.slots[next].fs_base);
    arch::wrmsr(arch::msr::GS_BASE, s.slots[next].gs_base);
    arch::set_kernel_stack(next);
    let prev_sp = core::ptr::addr_of_mut!(s.slots[prev].ksp);
    let next_sp = s.slots[next].ksp;
    crate::time::block_begin();
    // SAFETY: `next` is a ready context of this vCPU, so its saved stack pointer came from
    // `switch_stack` or `prepare_stack` and nothing runs on it; `prev_sp` points into the
    // locked scheduler state, which outlives the switch (the lock stays held).
    unsafe { arch::switch_stack(prev_sp, next_sp) };
    crate::time::block_end();
    finish_switch(k);
}

/// After a switch, in the context that now runs: contexts of this vCPU that ended are freed
/// (nothing runs on their stacks any more).
fn finish_switch(k: &mut KernelGuard) {
    let cpu = arch::current_cpu();
    let me = arch::current_slot();
    let high = k.sched.high;
    for (i, s) in k.sched.slots[..high].iter_mut().enumerate() {
        if s.state == State::Dead && s.cpu == cpu && i != me {
            *s = Slot::FREE;
        }
    }
}

/// First run of a context made by [`Sched::spawn`], called by `thread_first_entry` on its
/// stack with the user frame it enters ring 3 with (through `trap_restore`).
pub extern "C" fn first_run(frame: &mut TrapFrame) {
    // SAFETY: the context that switched here held the kernel lock and handed it over.
    let mut k = KernelGuard(Some(unsafe { crate::KERNEL.adopt() }));
    finish_switch(&mut k);
    drop(k);
    crate::time::thread_start();
    crate::signal::to_user(frame);
    slice_to_user();
    crate::tlb::to_user();
}

/// Halts the calling vCPU until the calling thread is woken or the TSC reaches `deadline` (if
/// any), running the vCPU's other ready threads meanwhile. Returns true if `woken` said so,
/// false on timeout.
pub fn block(k: &mut KernelGuard, deadline: Option<u64>) -> bool {
    let cpu = arch::current_cpu();
    let me = arch::current_slot();
    k.sched.slots[me].deadline = deadline.unwrap_or(0);
    crate::procinfo::thread_sleeping(me, true);
    let woken = loop {
        if k.sched.slots[me].woken {
            k.sched.slots[me].woken = false;
            break true;
        }
        if let Some(d) = deadline
            && arch::rdtsc() >= d
        {
            break false;
        }
        // Only a vCPU with other threads can have one ready (contexts never migrate).
        let shared = k.sched.cpus[cpu].threads > 1;
        if shared && let Some(next) = k.sched.next_ready(cpu, me) {
            k.sched.slots[me].state = State::Blocked;
            switch(k, me, next);
            continue;
        }
        k.sched.cpus[cpu].slice_end = 0;
        k.sched.arm(cpu);
        k.unlocked(|| {
            crate::time::block_begin();
            arch::wait_for_interrupt();
            crate::time::block_end();
        });
    };
    k.sched.slots[me].deadline = 0;
    crate::procinfo::thread_sleeping(me, false);
    if deadline.is_some() || k.sched.cpus[cpu].threads > 1 {
        // Drop this wait's deadline from the timer (the vCPU's other deadlines stay).
        k.sched.arm(cpu);
    }
    woken
}

/// On the way back to ring 3 (`trap::dispatch_entry`): switches to another thread of this
/// vCPU if one was woken or the running thread's slice ended.
#[inline]
pub fn preempt() {
    let cpu = arch::current_cpu();
    // A plain load first: the common answer is "no", and a locked exchange is dearer (every
    // ring-0 instruction is emulated on the development KVM).
    if NEED_RESCHED[cpu].load(Ordering::Relaxed) && NEED_RESCHED[cpu].swap(false, Ordering::Acquire)
    {
        reschedule(cpu);
    }
}

/// Last thing before ring 3 (after signal delivery): a slice started or moved in ring 0 gets
/// its deadline now, for the user time it has left. One load when there is none.
#[inline]
pub fn slice_to_user() {
    let cpu = arch::current_cpu();
    if SLICE_LEFT[cpu].load(Ordering::Relaxed) != 0 {
        arm_slice(cpu);
    }
}

#[inline(never)]
fn arm_slice(cpu: usize) {
    let left = SLICE_LEFT[cpu].swap(0, Ordering::Relaxed);
    let mut k = kernel();
    let s = &mut k.sched;
    if s.cpus[cpu].slice_end == SLICE_AT_USER {
        s.cpus[cpu].slice_end = arch::rdtsc().saturating_add(left);
        s.arm(cpu);
    }
}

#[inline(never)]
fn reschedule(cpu: usize) {
    let mut k = kernel();
    let me = arch::current_slot();
    let end = k.sched.cpus[cpu].slice_end;
    // A thread keeps the vCPU until its slice ends, unless it has none yet (it ran alone).
    if end != 0 && k.sched.keeps_slice(cpu) {
        return;
    }
    if let Some(next) = k.sched.next_ready(cpu, me) {
        k.sched.slots[me].state = State::Ready;
        switch(&mut k, me, next);
    } else {
        k.sched.start_slice(cpu);
        k.sched.arm(cpu);
    }
}

/// The TSC-deadline interrupt, after `timer::expire`: waits that timed out become ready and a
/// slice that ended asks for a switch.
pub fn tick() {
    let cpu = arch::current_cpu();
    let mut k = kernel();
    let end = k.sched.cpus[cpu].slice_end;
    let ended = end != 0 && !k.sched.keeps_slice(cpu);
    // `next_ready` also readies the waits that timed out.
    if ended || (end == 0 && k.sched.next_ready(cpu, arch::current_slot()).is_some()) {
        NEED_RESCHED[cpu].store(true, Ordering::Release);
    }
    k.sched.arm(cpu);
}

/// Ends the calling thread's context and runs something else on its vCPU.
pub fn exit_current(mut k: KernelGuard) -> ! {
    let cpu = arch::current_cpu();
    let me = arch::current_slot();
    let s = &mut k.sched;
    s.slots[me].state = State::Dead;
    s.slots[me].futex = None;
    s.slots[me].waitv_len = 0;
    s.cpus[cpu].threads = s.cpus[cpu].threads.saturating_sub(1);
    if s.cpus[cpu].fpu_owner == Some(me) {
        s.cpus[cpu].fpu_owner = None;
    }
    run_others(k, cpu, me)
}

/// sched_yield(2): lets the vCPU's other ready threads run first.
pub fn yield_now(k: &mut KernelGuard) -> i64 {
    let cpu = arch::current_cpu();
    let me = arch::current_slot();
    if let Some(next) = k.sched.next_ready(cpu, me) {
        k.sched.slots[me].state = State::Ready;
        switch(k, me, next);
    }
    0
}

/// The loop of a vCPU without a thread to run: switch to a ready one, else halt.
fn run_others(mut k: KernelGuard, cpu: usize, me: usize) -> ! {
    loop {
        if let Some(next) = k.sched.next_ready(cpu, me) {
            // This context is not needed again: it is freed once `next` runs.
            k.sched.slots[me].state = State::Dead;
            switch(&mut k, me, next);
            unreachable!("a dead context was switched back to");
        }
        if k.sched.slots[me].state == State::Dead {
            // An exited thread's context keeps running the idle loop until then.
            k.sched.slots[me].state = State::Idle;
            k.sched.slots[me].thread = None;
        }
        k.sched.cpus[cpu].slice_end = 0;
        k.sched.arm(cpu);
        k.unlocked(arch::wait_for_interrupt);
    }
}

/// Runs the offloaded call `nr(args)` of the calling thread on a host worker (an asynchronous
/// offload) and lets the vCPU run its other threads, and take its interrupts, until it
/// completes (`flags`: `req_flags`); returns `ret`, `val`. See [`offload_async_for`] for when;
/// the caller marks the
/// thread `InOffload::Async` around it (what [`async_completed`] looks for).
pub fn offload_async(k: &mut KernelGuard, nr: u64, args: [u64; 6], flags: u32) -> (i64, [u64; 2]) {
    let me = arch::current_slot();
    let page = arch::async_page_pa(me);
    crate::bridge::async_user_syscall(page, nr, args, flags);
    crate::bridge::submit_async(page);
    while !crate::bridge::async_done(page) {
        // Woken by `async_completed`, or by a signal (which also asked the VMM to interrupt
        // the call: `interrupt_offload`); either way the call's end is what counts.
        block(k, None);
    }
    crate::bridge::async_result(page)
}

/// The async-completion interrupt: wakes this vCPU's threads whose offload completed.
pub fn async_completed() {
    let cpu = arch::current_cpu();
    let mut k = kernel();
    for slot in 0..k.sched.high {
        let s = &k.sched.slots[slot];
        if s.in_offload == InOffload::Async
            && s.cpu == cpu
            && crate::bridge::async_done(arch::async_page_pa(slot))
        {
            k.sched.wake(slot);
        }
    }
}

/// Whether the offloaded call `nr` of the calling thread runs asynchronously: when its vCPU has
/// other threads (they must run while it waits), or when it may block and a timer of this vCPU
/// is armed (its interrupt must be taken, and may bring a signal that interrupts the call:
/// `alarm(); read()`). Otherwise it is synchronous: one VM exit, no thread hop.
pub fn offload_async_for(k: &KernelGuard, nr: u64) -> bool {
    let cpu = arch::current_cpu();
    k.sched.cpus[cpu].threads > 1
        || (offload_abi::syscalls::may_block(nr) && crate::timer::next(cpu) != 0)
}

/// A signal came for the thread in context `slot`: if it waits for an offloaded call, ask the
/// VMM to interrupt that call (a blocked host call then returns EINTR, and the LWK delivers
/// the signal and restarts or fails the call as Linux would). A synchronous call can only be
/// interrupted from another vCPU: its own is in the VMM.
pub fn interrupt_offload(k: &Kernel, slot: usize) {
    let s = &k.sched.slots[slot];
    match s.in_offload {
        InOffload::No => {}
        InOffload::Sync => {
            if s.cpu != arch::current_cpu() {
                arch::outl(offload_abi::port::INTERRUPT_SYNC, s.cpu as u32);
            }
        }
        InOffload::Async => {
            arch::outl(
                offload_abi::port::INTERRUPT_ASYNC,
                (arch::async_page_pa(slot) >> 12) as u32,
            );
        }
    }
}

/// Marks vCPU `cpu` ready for threads and tells vCPU 0.
pub fn cpu_online(cpu: usize) {
    let mut k = kernel();
    if let Some(c) = k.sched.cpus.get_mut(cpu) {
        c.online = true;
    }
    drop(k);
    arch::send_wakeup(0);
}

/// vCPU 0 waits (halted) until all `ncpus` vCPUs are online.
pub fn wait_all_online(ncpus: usize) {
    let mut k = kernel();
    while k.sched.cpus.iter().take(ncpus).any(|c| !c.online) {
        k.unlocked(arch::wait_for_interrupt);
    }
}

/// The idle loop of vCPU `cpu` after boot (in its boot context).
pub fn idle(cpu: usize) -> ! {
    run_others(kernel(), cpu, arch::current_slot())
}
