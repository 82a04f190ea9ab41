//! Time from the TSC, and CPU-time accounting.
//!
//! **Clocks.** The host gives the TSC frequency; at boot the LWK reads the host clocks once
//! through the bridge and from then on computes every clock locally (no VM exit) as
//! `base + ((tsc - tsc0) * mult) >> 32`. The same parameters are published in the vvar page
//! ([`Vvar`]), which the vDSO (`guest-lwk/vdso/`) reads in ring 3 with the same formula, so
//! syscall and vDSO readings are interchangeable (see docs/DESIGN.md, "Time").
//! CLOCK_MONOTONIC continues the host's monotonic clock; MONOTONIC_RAW and BOOTTIME read the same
//! (the LWK does not slew and the job is never suspended); the coarse clocks are the fine ones
//! rounded down to [`COARSE_NS`], the tick length Linux reports for them.
//!
//! **CPU time.** CPU time is kept per thread context (`sched`): the trap entry/exit hooks
//! ([`enter_kernel`], [`exit_kernel`]) add the TSC ticks since the last transition to the user
//! or the system counter, and [`block_begin`]/[`block_end`] leave out the time a thread spends
//! halted or switched out (sleeping, waiting on a futex, waiting for its vCPU). A thread's time
//! is its context's counters since [`thread_start`]; the process's is the sum over all contexts
//! (threads that exited included, as in Linux).

use crate::arch::{self, MAX_THREADS};
use crate::bridge;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use offload_abi::BootInfo;

/// Resolution of the coarse clocks: one tick of Linux at CONFIG_HZ=250 (Debian's kernels),
/// which is what `clock_getres(CLOCK_*_COARSE)` reports there.
pub const COARSE_NS: u64 = 4_000_000;

/// The page of clock parameters the vDSO reads (mapped read-only into every process). Layout
/// shared with `guest-lwk/vdso/vvar.h`; written once at boot, before the program starts.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Vvar {
    /// TSC at calibration.
    pub tsc0: u64,
    /// Nanoseconds per TSC tick, 32.32 fixed point.
    pub mult: u64,
    /// CLOCK_REALTIME at `tsc0`, nanoseconds since the epoch.
    pub realtime0: u64,
    /// CLOCK_MONOTONIC at `tsc0`, nanoseconds.
    pub monotonic0: u64,
    /// Resolution of the coarse clocks in nanoseconds.
    pub coarse_ns: u64,
    /// Layout version of this page (`VVAR_VERSION`); 0 means "not written, use the syscall".
    pub version: u64,
}
const _: () = assert!(core::mem::size_of::<Vvar>() == 48);
const _: () = assert!(core::mem::offset_of!(Vvar, monotonic0) == 24);

/// Must match `LWK_VVAR_VERSION` in vvar.h.
pub const VVAR_VERSION: u64 = 1;

/// Nanosecond clocks derived from the TSC.
pub struct Clock {
    tsc0: u64,
    realtime0: u64,
    monotonic0: u64,
    /// Nanoseconds per TSC tick as a 32.32 fixed-point number.
    mult: u64,
    /// TSC frequency.
    khz: u64,
}

impl Clock {
    /// Calibrates against the host clocks (one offload round trip; the TSC is read halfway).
    pub fn new(info: &BootInfo) -> Self {
        let khz = info.tsc_khz.max(1);
        let before = arch::rdtsc();
        let (realtime0, monotonic0) = bridge::host_time();
        let after = arch::rdtsc();
        Clock {
            tsc0: before + (after - before) / 2,
            realtime0,
            monotonic0,
            mult: (1_000_000u64 << 32) / khz,
            khz,
        }
    }

    /// The parameters the vDSO needs.
    pub fn vvar(&self) -> Vvar {
        Vvar {
            tsc0: self.tsc0,
            mult: self.mult,
            realtime0: self.realtime0,
            monotonic0: self.monotonic0,
            coarse_ns: COARSE_NS,
            version: VVAR_VERSION,
        }
    }

    /// TSC ticks to nanoseconds (the clocks' scale).
    #[inline]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ((u128::from(ticks) * u128::from(self.mult)) >> 32) as u64
    }

    /// Nanoseconds since boot calibration (0 on a vCPU whose TSC reads behind it).
    #[inline]
    pub fn elapsed_ns(&self) -> u64 {
        self.ticks_to_ns(arch::rdtsc().saturating_sub(self.tsc0))
    }

    /// CLOCK_MONOTONIC in nanoseconds (continues the host's monotonic clock).
    pub fn monotonic_ns(&self) -> u64 {
        self.monotonic0 + self.elapsed_ns()
    }

    /// The TSC value at which CLOCK_MONOTONIC reads `ns` (saturating at boot).
    pub fn tsc_at_monotonic(&self, ns: u64) -> u64 {
        let delta = ns.saturating_sub(self.monotonic0);
        self.tsc0
            .saturating_add(((u128::from(delta) * u128::from(self.khz)) / 1_000_000) as u64)
    }

    /// CLOCK_MONOTONIC minus CLOCK_REALTIME offset: realtime = monotonic + this.
    pub fn realtime_offset(&self) -> i128 {
        i128::from(self.realtime0) - i128::from(self.monotonic0)
    }

    /// CLOCK_REALTIME in nanoseconds since the epoch.
    pub fn realtime_ns(&self) -> u64 {
        self.realtime0 + self.elapsed_ns()
    }
}

/// One thread context's CPU-time counters, in TSC ticks. Written only by that context (in its
/// trap hooks, syscalls and switches); other vCPUs read them for the process total. A context
/// keeps counting when it is reused, so the total includes threads that ended. The layout is
/// `offload_abi::ThreadCpu`'s: the counters live in the published process table, where the
/// host reads them for /proc/PID/stat.
#[repr(C)]
struct CpuTime {
    /// TSC at the last user/kernel transition (or block end).
    last: AtomicU64,
    user: AtomicU64,
    sys: AtomicU64,
    /// `user`/`sys` when the context's current thread started.
    base_user: AtomicU64,
    base_sys: AtomicU64,
}
const _: () = assert!(
    core::mem::size_of::<CpuTime>() == core::mem::size_of::<offload_abi::ThreadCpu>()
        && MAX_THREADS == offload_abi::THREAD_RECORDS
);

/// Every context's counters (`ProcTable::cpu`).
#[inline]
fn cpu_times() -> &'static [CpuTime; MAX_THREADS] {
    let pa = offload_abi::layout::PROC_TABLE_GPA
        + core::mem::offset_of!(offload_abi::ProcTable, cpu) as u64;
    // SAFETY: the process table's GPA range is guest RAM reserved by the boot layout (below
    // KERNEL_PHYS_END, never handed out by the frame allocator) and zeroed by the VMM;
    // `CpuTime` is five AtomicU64s, valid for any bit pattern, with `ThreadCpu`'s layout
    // (checked above) at an 8-aligned offset; only shared references are made.
    unsafe { &*(crate::phys::virt(pa) as *const [CpuTime; MAX_THREADS]) }
}

#[inline]
fn add_since_last(counter: &AtomicU64, c: &CpuTime) {
    let now = arch::rdtsc();
    let last = c.last.load(Relaxed);
    counter.store(counter.load(Relaxed) + now.saturating_sub(last), Relaxed);
    c.last.store(now, Relaxed);
}

/// Trap entry from ring 3: the time since the last exit was user time.
#[inline]
pub fn enter_kernel() {
    let c = &cpu_times()[arch::current_slot()];
    add_since_last(&c.user, c);
}

/// Return to ring 3: the time since entry was system time.
#[inline]
pub fn exit_kernel() {
    let c = &cpu_times()[arch::current_slot()];
    add_since_last(&c.sys, c);
}

/// The calling thread is about to halt: count system time up to here.
pub fn block_begin() {
    exit_kernel();
}

/// The calling thread runs again: the halt was no CPU time.
pub fn block_end() {
    cpu_times()[arch::current_slot()]
        .last
        .store(arch::rdtsc(), Relaxed);
}

/// A thread starts in the calling context (just before its first entry to ring 3).
pub fn thread_start() {
    let c = &cpu_times()[arch::current_slot()];
    c.base_user.store(c.user.load(Relaxed), Relaxed);
    c.base_sys.store(c.sys.load(Relaxed), Relaxed);
    c.last.store(arch::rdtsc(), Relaxed);
}

/// (user, system) ticks of the thread in context `slot`. Called from a syscall: for the caller
/// the system time of the syscall so far is included.
pub fn thread_ticks(slot: usize) -> (u64, u64) {
    let Some(c) = cpu_times().get(slot) else {
        return (0, 0);
    };
    let (user, sys) = run_ticks(slot);
    (
        user.saturating_sub(c.base_user.load(Relaxed)),
        sys.saturating_sub(c.base_sys.load(Relaxed)),
    )
}

/// (user, system) ticks context `slot` has run, over every thread it ran (for the caller,
/// its system time up to now): differences of these measure what a thread used of its slice.
pub fn run_ticks(slot: usize) -> (u64, u64) {
    let Some(c) = cpu_times().get(slot) else {
        return (0, 0);
    };
    let mut sys = c.sys.load(Relaxed);
    if slot == arch::current_slot() {
        sys += arch::rdtsc().saturating_sub(c.last.load(Relaxed));
    }
    (c.user.load(Relaxed), sys)
}

/// (user, system) ticks of the whole process, over all contexts.
pub fn process_ticks() -> (u64, u64) {
    let me = arch::current_slot();
    let mut user = 0;
    let mut sys = 0;
    for (slot, c) in cpu_times().iter().enumerate() {
        user += c.user.load(Relaxed);
        sys += c.sys.load(Relaxed);
        if slot == me {
            sys += arch::rdtsc().saturating_sub(c.last.load(Relaxed));
        }
    }
    (user, sys)
}
