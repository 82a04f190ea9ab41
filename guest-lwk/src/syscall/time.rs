//! Clocks and CPU time, served from the TSC without leaving the VM (see `crate::time`).
//!
//! The vDSO (`guest-lwk/vdso/`) answers clock_gettime, gettimeofday and time in ring 3 with the
//! same formula; these handlers serve programs that trap anyway (raw `syscall`, no vDSO lookup)
//! and the CPU-time clocks, which the vDSO passes on here.

use super::put_user;
use crate::Kernel;
use crate::arch;
use crate::time::{COARSE_NS, process_ticks, thread_ticks};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use offload_abi::errno::EINVAL;

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
const CLOCK_MONOTONIC_RAW: i32 = 4;
const CLOCK_REALTIME_COARSE: i32 = 5;
const CLOCK_MONOTONIC_COARSE: i32 = 6;
const CLOCK_BOOTTIME: i32 = 7;

/// Linux's `sysconf(_SC_CLK_TCK)` / AT_CLKTCK: the unit of times(2).
const CLK_TCK: u64 = 100;

/// Which CPU time a clock measures.
#[derive(Clone, Copy)]
enum CpuClock {
    /// User + system (CPUCLOCK_PROF, CPUCLOCK_SCHED).
    All,
    /// User only (CPUCLOCK_VIRT).
    User,
}

/// Ticks of user + system or user time of a (user, system) pair.
fn pick(which: CpuClock, (user, sys): (u64, u64)) -> u64 {
    match which {
        CpuClock::All => user + sys,
        CpuClock::User => user,
    }
}

/// The CPU-time clock ids Linux builds for a pid or tid (`clock_getcpuclockid(3)`,
/// `pthread_getcpuclockid(3)`: `(~id << 3) | perthread << 2 | which`, kernel/time/posix-cpu-timers.c).
/// Returns the ticks, or None for a clock that names no process or thread of this job.
fn cpu_clock_ticks(k: &Kernel, clock: i32) -> Option<u64> {
    let which = match clock & 3 {
        0 | 2 => CpuClock::All,
        1 => CpuClock::User,
        _ => return None,
    };
    let id = !(clock >> 3) as u32;
    if clock & 4 == 0 {
        // A process clock: this process (0 means the caller's).
        if id != 0 && id != k.procs[crate::process::cur()].pid {
            return None;
        }
        return Some(pick(which, process_ticks()));
    }
    let slot = if id == 0 {
        arch::current_slot()
    } else {
        k.sched.slot_of(id)?
    };
    Some(pick(which, thread_ticks(slot)))
}

/// The reading of `clock` in nanoseconds, None for an invalid clock id.
fn clock_ns(k: &Kernel, clock: i32) -> Option<u64> {
    let c = &k.clock;
    Some(match clock {
        CLOCK_REALTIME => c.realtime_ns(),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_BOOTTIME => c.monotonic_ns(),
        CLOCK_REALTIME_COARSE => c.realtime_ns() / COARSE_NS * COARSE_NS,
        CLOCK_MONOTONIC_COARSE => c.monotonic_ns() / COARSE_NS * COARSE_NS,
        CLOCK_PROCESS_CPUTIME_ID => c.ticks_to_ns(pick(CpuClock::All, process_ticks())),
        CLOCK_THREAD_CPUTIME_ID => {
            c.ticks_to_ns(pick(CpuClock::All, thread_ticks(arch::current_slot())))
        }
        _ if clock < 0 => c.ticks_to_ns(cpu_clock_ticks(k, clock)?),
        _ => return None,
    })
}

fn timespec(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    b
}

fn timeval(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
    b
}

fn status(r: Result<(), i64>) -> i64 {
    match r {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// clock_gettime(2)
pub fn clock_gettime(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let Some(ns) = clock_ns(k, a[0] as i32) else {
        return -EINVAL;
    };
    status(put_user(k, a[1], &timespec(ns)))
}

/// clock_getres(2): what Linux with a high-resolution clocksource reports.
pub fn clock_getres(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let clock = a[0] as i32;
    if clock_ns(k, clock).is_none() {
        return -EINVAL;
    }
    if a[1] == 0 {
        return 0;
    }
    // Linux reports a tick for the coarse clocks and for the per-process/thread PROF and VIRT
    // CPU clocks (posix_cpu_clock_getres), 1 ns for the rest.
    let res = if clock == CLOCK_REALTIME_COARSE
        || clock == CLOCK_MONOTONIC_COARSE
        || (clock < 0 && clock & 3 != 2)
    {
        COARSE_NS
    } else {
        1
    };
    status(put_user(k, a[1], &timespec(res)))
}

/// gettimeofday(2); the timezone is zeros (UTC, no DST), as Linux's default `sys_tz`.
pub fn gettimeofday(k: &mut Kernel, a: [u64; 6]) -> i64 {
    if a[0] != 0
        && let Err(e) = put_user(k, a[0], &timeval(k.clock.realtime_ns()))
    {
        return e;
    }
    if a[1] != 0
        && let Err(e) = put_user(k, a[1], &[0u8; 8])
    {
        return e;
    }
    0
}

/// time(2)
pub fn time(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let secs = k.clock.realtime_ns() / 1_000_000_000;
    if a[0] != 0
        && let Err(e) = put_user(k, a[0], &secs.to_le_bytes())
    {
        return e;
    }
    secs as i64
}

/// times(2): the process's user and system time in clock ticks (AT_CLKTCK = 100 Hz); children
/// are always 0 (the LWK runs one process). Returns CLOCK_MONOTONIC in ticks (Linux returns
/// jiffies since an arbitrary point).
pub fn times(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let to_ticks = |t: u64| k.clock.ticks_to_ns(t) / (1_000_000_000 / CLK_TCK);
    if a[0] != 0 {
        let (user, sys) = process_ticks();
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&to_ticks(user).to_le_bytes());
        b[8..16].copy_from_slice(&to_ticks(sys).to_le_bytes());
        if let Err(e) = put_user(k, a[0], &b) {
            return e;
        }
    }
    (k.clock.monotonic_ns() / (1_000_000_000 / CLK_TCK)) as i64
}

/// The largest memory footprint seen by getrusage, in KiB.
static MAXRSS_KB: AtomicU64 = AtomicU64::new(0);

/// getrusage(2): RUSAGE_SELF and RUSAGE_THREAD give the LWK's user/system accounting and
/// `ru_maxrss` (the physical memory the LWK has handed out to the job, the largest value seen
/// at any getrusage call, in KiB); RUSAGE_CHILDREN is all zero (no child processes). Every
/// other field is 0: the LWK does no paging from files, swapping, counting of signals or of
/// context switches.
pub fn getrusage(k: &mut Kernel, a: [u64; 6]) -> i64 {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_CHILDREN: i32 = -1;
    const RUSAGE_THREAD: i32 = 1;
    let (user, sys, rss) = match a[0] as i32 {
        RUSAGE_SELF | RUSAGE_THREAD => {
            let (user, sys) = if a[0] as i32 == RUSAGE_SELF {
                process_ticks()
            } else {
                thread_ticks(arch::current_slot())
            };
            let used = k.frames.total.saturating_sub(k.frames.available()) / 1024;
            let rss = MAXRSS_KB.fetch_max(used, Relaxed).max(used);
            (user, sys, rss)
        }
        RUSAGE_CHILDREN => (0, 0, 0),
        _ => return -EINVAL,
    };
    // struct rusage: ru_utime, ru_stime (timeval), then 14 longs starting with ru_maxrss.
    let mut b = [0u8; 144];
    b[..16].copy_from_slice(&timeval(k.clock.ticks_to_ns(user)));
    b[16..32].copy_from_slice(&timeval(k.clock.ticks_to_ns(sys)));
    b[32..40].copy_from_slice(&rss.to_le_bytes());
    status(put_user(k, a[1], &b))
}
