//! CPUs and threads: one thread per vCPU, no preemption, no timer tick.
//!
//! A thread runs on the vCPU it was started on until it exits. A thread that blocks (futex
//! wait, sleep) halts its vCPU inside the syscall, with the kernel lock released, until another
//! CPU wakes it with an IPI or its TSC-deadline timer fires. A vCPU without a thread halts in
//! [`idle`] until `clone` hands it one. More threads than vCPUs are refused with EAGAIN
//! (McKernel's default; time slicing is not implemented).

use crate::arch::{self, MAX_CPUS, TrapFrame};
use crate::{KernelGuard, kernel};

/// A thread of the (single) process.
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

/// What a thread needs for its first entry to ring 3.
#[derive(Clone, Copy, Debug)]
pub struct Start {
    /// User registers.
    pub frame: TrapFrame,
    /// FS base (TLS).
    pub fs_base: u64,
}

/// One vCPU as the scheduler sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// The vCPU has booted and waits for work.
    pub online: bool,
    /// The thread that owns this vCPU.
    pub thread: Option<Thread>,
    /// Set by `clone`: the thread's first entry, taken by the vCPU's idle loop.
    pub start: Option<Start>,
    /// Set while the thread waits on a futex.
    pub futex: Option<FutexWait>,
    /// Set by a waker; the waiting thread clears it.
    pub woken: bool,
}

/// All vCPUs.
pub struct Sched {
    /// vCPUs of this job.
    pub ncpus: usize,
    /// Per-vCPU state.
    pub cpus: [Cpu; MAX_CPUS],
    /// Threads alive (the job ends with the last one).
    pub live: u32,
    /// Next thread id.
    pub next_tid: u32,
    /// The "no free vCPU" warning was printed.
    pub warned_full: bool,
}

impl Sched {
    /// vCPU 0 runs the first thread, with the process id as its thread id.
    pub fn new(ncpus: usize, pid: u32) -> Self {
        let mut cpus = [Cpu::default(); MAX_CPUS];
        cpus[0].online = true;
        cpus[0].thread = Some(Thread {
            tid: pid,
            clear_child_tid: 0,
            robust_list: (0, 0),
        });
        Sched {
            ncpus,
            cpus,
            live: 1,
            next_tid: pid.wrapping_add(1),
            warned_full: false,
        }
    }

    /// The thread on the calling vCPU.
    pub fn current(&mut self) -> &mut Thread {
        let cpu = arch::current_cpu();
        match self.cpus.get_mut(cpu).and_then(|c| c.thread.as_mut()) {
            Some(t) => t,
            None => panic!("syscall on vCPU {cpu}, which runs no thread"),
        }
    }

    /// A vCPU that can take a new thread.
    pub fn free_cpu(&self) -> Option<usize> {
        (0..self.ncpus).find(|&c| {
            self.cpus[c].online && self.cpus[c].thread.is_none() && self.cpus[c].start.is_none()
        })
    }

    /// Wakes up to `n` threads waiting on `key` whose bitset intersects `bitset`; returns how
    /// many.
    pub fn futex_wake(&mut self, key: u64, n: u32, bitset: u32) -> u32 {
        let mut woken = 0;
        for (c, cpu) in self.cpus.iter_mut().enumerate().take(self.ncpus) {
            if woken >= n {
                break;
            }
            if let Some(w) = cpu.futex
                && w.key == key
                && w.bitset & bitset != 0
            {
                cpu.futex = None;
                cpu.woken = true;
                arch::send_wakeup(c);
                woken += 1;
            }
        }
        woken
    }

    /// Moves up to `n` waiters from `from` to `to` (FUTEX_REQUEUE); returns how many.
    pub fn futex_requeue(&mut self, from: u64, to: u64, n: u32) -> u32 {
        let mut moved = 0;
        for cpu in self.cpus.iter_mut().take(self.ncpus) {
            if moved >= n {
                break;
            }
            if let Some(w) = cpu.futex.as_mut()
                && w.key == from
            {
                w.key = to;
                moved += 1;
            }
        }
        moved
    }
}

/// Halts the calling vCPU until it is woken or the TSC reaches `deadline` (if any), with the
/// kernel lock released meanwhile. Returns true if `woken` said so, false on timeout.
pub fn block(k: &mut KernelGuard, deadline: Option<u64>) -> bool {
    let cpu = arch::current_cpu();
    loop {
        // The deadline timer serves this wait and the vCPU's timers (`timer`): it is armed
        // for the earlier of the two, and left armed for the timers afterwards.
        if k.sched.cpus[cpu].woken {
            k.sched.cpus[cpu].woken = false;
            arch::arm_timer(crate::timer::next(cpu));
            return true;
        }
        if let Some(d) = deadline {
            if arch::rdtsc() >= d {
                arch::arm_timer(crate::timer::next(cpu));
                return false;
            }
            arch::arm_timer(crate::timer::combine(cpu, d));
        }
        k.unlocked(|| {
            crate::time::block_begin();
            arch::wait_for_interrupt();
            crate::time::block_end();
        });
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

/// The loop of a vCPU without a thread: halt until `clone` hands one over, then run it.
pub fn idle(cpu: usize) -> ! {
    loop {
        let start = {
            let mut k = kernel();
            k.sched.cpus.get_mut(cpu).and_then(|c| c.start.take())
        };
        if let Some(s) = start {
            arch::wrmsr(arch::msr::FS_BASE, s.fs_base);
            arch::wrmsr(arch::msr::GS_BASE, 0);
            crate::time::thread_start();
            arch::resume_user(&s.frame);
        }
        arch::wait_for_interrupt();
    }
}
