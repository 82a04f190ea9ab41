//! Timers without a tick: alarm, setitimer/getitimer and POSIX timers (timer_create and
//! friends). Each timer belongs to the vCPU that armed it; a vCPU's TSC-deadline timer is armed
//! only for the earliest deadline among its timers, the waits of its threads and a time slice
//! (`sched::Sched::arm` asks [`next`]). When it fires, [`expire`] sends the signals and
//! re-arms periodic timers.
//!
//! ITIMER_VIRTUAL and ITIMER_PROF count wall time (a thread that owns its vCPU never waits for
//! a CPU, so its CPU time only differs from wall time while it sleeps; with time slicing it
//! also runs slower): documented approximation.

use crate::arch::{self, MAX_CPUS};
use crate::signal::{self, Info, code};
use crate::{Kernel, KernelGuard};
use core::sync::atomic::{AtomicU64, Ordering};
use offload_abi::errno::{EFAULT, EINVAL};

/// Timers per process: the three itimers, then POSIX timers (ids 0..).
pub const MAX_TIMERS: usize = 3 + 32;
const POSIX_BASE: usize = 3;

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD_ID: i32 = 4;

/// One timer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer {
    /// Created (POSIX) or in use.
    pub used: u64,
    /// TSC deadline of the next expiry (0: disarmed).
    pub deadline: u64,
    /// Period in TSC ticks (0: one-shot).
    pub interval: u64,
    /// vCPU whose TSC-deadline timer serves it.
    pub cpu: u64,
    pub signo: u64,
    /// SIGEV_* value.
    pub notify: u64,
    /// Target thread context for SIGEV_THREAD_ID.
    pub target: u64,
    pub value: u64,
    pub overrun: u64,
    /// CLOCK_REALTIME (1) or CLOCK_MONOTONIC (0), for TIMER_ABSTIME.
    pub realtime: u64,
}

/// Earliest timer deadline per vCPU (0: none), read by `sched::block` without the lock.
static NEXT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The earliest timer deadline of vCPU `cpu` (0: none).
pub fn next(cpu: usize) -> u64 {
    NEXT.get(cpu).map_or(0, |n| n.load(Ordering::Acquire))
}

/// Recomputes the earliest deadline of the calling vCPU (over every process's timers) and
/// arms its timer for it. Also after a process's timers went away (another vCPU's stale
/// deadline only costs it one early interrupt, after which it re-arms).
pub fn rearm(k: &Kernel) {
    let cpu = arch::current_cpu();
    let mut n = 0u64;
    for (_, p) in k.procs.iter() {
        if p.life != crate::process::Life::Live {
            continue;
        }
        for t in p.sig.timers.iter() {
            if t.used != 0 && t.deadline != 0 && t.cpu == cpu as u64 && (n == 0 || t.deadline < n) {
                n = t.deadline;
            }
        }
    }
    NEXT[cpu].store(n, Ordering::Release);
    k.sched.arm(cpu);
}

/// The TSC-deadline interrupt: counts it, fires due timers of this vCPU, re-arms.
pub fn expire() {
    let mut k = crate::kernel();
    k.stats.timer_interrupts += 1;
    let cpu = arch::current_cpu() as u64;
    let now = arch::rdtsc();
    for p in 0..crate::process::MAX_PROCS {
        if k.procs
            .get(p)
            .is_none_or(|x| x.life != crate::process::Life::Live)
        {
            continue;
        }
        for i in 0..MAX_TIMERS {
            let t = k.procs[p].sig.timers[i];
            if t.used == 0 || t.deadline == 0 || t.cpu != cpu || t.deadline > now {
                continue;
            }
            let mut missed = 0;
            let mut nt = t;
            if t.interval != 0 {
                nt.deadline = t.deadline.saturating_add(t.interval);
                if nt.deadline <= now {
                    missed = (now - nt.deadline) / t.interval + 1;
                    nt.deadline = nt
                        .deadline
                        .saturating_add(missed.saturating_mul(t.interval));
                }
            } else {
                nt.deadline = 0;
            }
            nt.overrun = missed;
            k.procs[p].sig.timers[i] = nt;
            fire(&mut k, p, i, &nt);
        }
    }
    rearm(&k);
}

fn fire(k: &mut Kernel, p: usize, i: usize, t: &Timer) {
    let s = t.signo as u32;
    if !(1..=64).contains(&s)
        || k.procs
            .get(p)
            .is_none_or(|x| x.life != crate::process::Life::Live)
    {
        return;
    }
    if i < POSIX_BASE {
        signal::send_process(k, p, s, Info::user(code::SI_KERNEL, 0, 0));
        return;
    }
    let info = Info {
        code: code::SI_TIMER,
        _pad: 0,
        a: ((i - POSIX_BASE) as u64) | (t.overrun.min(i32::MAX as u64) << 32),
        b: t.value,
    };
    match t.notify as i32 {
        SIGEV_NONE => {}
        SIGEV_THREAD_ID => {
            let c = t.target as usize;
            if k.sched.is_thread(c) && crate::process::of(c) == p {
                signal::send_thread(k, c, s, info);
            }
        }
        _ => signal::send_process(k, p, s, info),
    }
}

fn ns_to_tsc(k: &Kernel, ns: u64) -> u64 {
    (u128::from(ns) * u128::from(k.info.tsc_khz) / 1_000_000).min(u128::from(u64::MAX)) as u64
}

fn tsc_to_ns(k: &Kernel, t: u64) -> u64 {
    (u128::from(t) * 1_000_000 / u128::from(k.info.tsc_khz.max(1))) as u64
}

/// Time left until `deadline` in ns (0 if disarmed; at least 1 if armed).
fn left_ns(k: &Kernel, deadline: u64) -> u64 {
    if deadline == 0 {
        return 0;
    }
    tsc_to_ns(k, deadline.saturating_sub(arch::rdtsc())).max(1)
}

/// Arms timer `i` to expire in `value_ns` (0 disarms), then every `interval_ns`; returns the
/// old (left, interval) in ns.
fn set(k: &mut Kernel, i: usize, value_ns: Option<u64>, interval_ns: u64) -> (u64, u64) {
    let t = k.procs[crate::process::cur()].sig.timers[i];
    let old = (left_ns(k, t.deadline), tsc_to_ns(k, t.interval));
    let deadline = match value_ns {
        None | Some(0) => 0,
        Some(ns) => arch::rdtsc().saturating_add(ns_to_tsc(k, ns)).max(1),
    };
    let interval = ns_to_tsc(k, interval_ns);
    let cpu = arch::current_cpu() as u64;
    let tm = &mut k.procs[crate::process::cur()].sig.timers[i];
    tm.deadline = deadline;
    tm.interval = if deadline == 0 { 0 } else { interval };
    tm.cpu = cpu;
    tm.overrun = 0;
    rearm(k);
    old
}

fn read_pair(k: &Kernel, va: u64, unit: u64) -> Result<(u64, u64), i64> {
    let mut b = [0u8; 32];
    k.mms[crate::process::cur_mm()]
        .aspace
        .copy_from_user(va, &mut b)
        .map_err(|()| -EFAULT)?;
    let f = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        i64::from_le_bytes(w)
    };
    let conv = |s: i64, sub: i64| -> Result<u64, i64> {
        if s < 0 || sub < 0 || sub as u64 >= 1_000_000_000 / unit {
            return Err(-EINVAL);
        }
        Ok((s as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(sub as u64 * unit))
    };
    Ok((conv(f(0), f(1))?, conv(f(2), f(3))?))
}

fn write_pair(k: &Kernel, va: u64, interval: u64, value: u64, unit: u64) -> Result<(), i64> {
    let mut b = [0u8; 32];
    let ws = |b: &mut [u8], i: usize, v: u64| b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    ws(&mut b, 0, interval / 1_000_000_000);
    ws(&mut b, 1, (interval % 1_000_000_000) / unit);
    ws(&mut b, 2, value / 1_000_000_000);
    ws(&mut b, 3, (value % 1_000_000_000).div_ceil(unit));
    k.mms[crate::process::cur_mm()]
        .aspace
        .copy_to_user(va, &b)
        .map_err(|()| -EFAULT)
}

fn itimer_signal(which: usize) -> u64 {
    [14, 26, 27][which]
}

/// alarm(2).
pub fn alarm(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let secs = a[0] as u32;
    k.procs[crate::process::cur()].sig.timers[0].used = 1;
    k.procs[crate::process::cur()].sig.timers[0].signo = itimer_signal(0);
    let (left, _) = set(k, 0, Some(u64::from(secs) * 1_000_000_000), 0);
    if left == 0 {
        return 0;
    }
    // Linux: rounded to the nearest second, and at least 1 if the old alarm was armed.
    (((left + 500_000_000) / 1_000_000_000).max(1)) as i64
}

/// setitimer(2).
pub fn setitimer(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let which = a[0] as i32;
    if !(0..=2).contains(&which) {
        return -EINVAL;
    }
    let which = which as usize;
    let new = if a[1] != 0 {
        match read_pair(k, a[1], 1000) {
            Ok(p) => Some(p),
            Err(e) => return e,
        }
    } else {
        None
    };
    let t = k.procs[crate::process::cur()].sig.timers[which];
    let (left, interval) = (left_ns(k, t.deadline), tsc_to_ns(k, t.interval));
    if a[2] != 0
        && let Err(e) = write_pair(k, a[2], interval, left, 1000)
    {
        return e;
    }
    let (ivl, val) = new.unwrap_or((0, 0));
    k.procs[crate::process::cur()].sig.timers[which].used = 1;
    k.procs[crate::process::cur()].sig.timers[which].signo = itimer_signal(which);
    set(k, which, Some(val), ivl);
    0
}

/// getitimer(2).
pub fn getitimer(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let which = a[0] as i32;
    if !(0..=2).contains(&which) {
        return -EINVAL;
    }
    let t = k.procs[crate::process::cur()].sig.timers[which as usize];
    let (left, interval) = (left_ns(k, t.deadline), tsc_to_ns(k, t.interval));
    match write_pair(k, a[1], interval, left, 1000) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

fn posix_index(k: &Kernel, id: u64) -> Option<usize> {
    let id = id as i32;
    if id < 0 || id as usize >= MAX_TIMERS - POSIX_BASE {
        return None;
    }
    let i = POSIX_BASE + id as usize;
    (k.procs[crate::process::cur()].sig.timers[i].used != 0).then_some(i)
}

/// timer_create(2): CLOCK_REALTIME/MONOTONIC (and BOOTTIME), SIGEV_SIGNAL, SIGEV_NONE,
/// SIGEV_THREAD_ID.
pub fn timer_create(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let realtime = match a[0] as i32 {
        0 => 1,
        1 | 7 => 0,
        _ => return -EINVAL,
    };
    let (notify, signo, value, target) = if a[1] != 0 {
        let mut b = [0u8; 24];
        if k.mms[crate::process::cur_mm()]
            .aspace
            .copy_from_user(a[1], &mut b)
            .is_err()
        {
            return -EFAULT;
        }
        let i32_at = |o: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[o..o + 4]);
            i32::from_le_bytes(w)
        };
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[..8]);
        let (signo, notify, tid) = (i32_at(8), i32_at(12), i32_at(16));
        let target = match notify {
            SIGEV_NONE => 0,
            SIGEV_SIGNAL | SIGEV_THREAD_ID if !(1..=64).contains(&signo) => return -EINVAL,
            SIGEV_SIGNAL => 0,
            SIGEV_THREAD_ID => match u32::try_from(tid).ok().and_then(|t| k.sched.slot_of(t)) {
                Some(c) => c as u64,
                None => return -EINVAL,
            },
            _ => return -EINVAL,
        };
        (notify, signo as u64, u64::from_le_bytes(v), target)
    } else {
        (SIGEV_SIGNAL, 14, u64::MAX, 0)
    };
    let Some(slot) =
        (POSIX_BASE..MAX_TIMERS).find(|&i| k.procs[crate::process::cur()].sig.timers[i].used == 0)
    else {
        return -offload_abi::errno::EAGAIN;
    };
    let id = (slot - POSIX_BASE) as u32;
    if k.mms[crate::process::cur_mm()]
        .aspace
        .copy_to_user(a[2], &id.to_le_bytes())
        .is_err()
    {
        return -EFAULT;
    }
    k.procs[crate::process::cur()].sig.timers[slot] = Timer {
        used: 1,
        deadline: 0,
        interval: 0,
        cpu: arch::current_cpu() as u64,
        signo,
        notify: notify as u64,
        target,
        value: if value == u64::MAX {
            u64::from(id)
        } else {
            value
        },
        overrun: 0,
        realtime,
    };
    0
}

/// timer_settime(2) (TIMER_ABSTIME on the timer's clock).
pub fn timer_settime(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let Some(i) = posix_index(k, a[0]) else {
        return -EINVAL;
    };
    let (ivl, mut val) = match read_pair(k, a[2], 1) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if a[1] as i32 & 1 != 0 && val != 0 {
        // Absolute: convert the clock's time to a delay from now.
        let now = if k.procs[crate::process::cur()].sig.timers[i].realtime != 0 {
            k.clock.realtime_ns()
        } else {
            k.clock.monotonic_ns()
        };
        val = val.saturating_sub(now).max(1);
    }
    let t = k.procs[crate::process::cur()].sig.timers[i];
    let old = (left_ns(k, t.deadline), tsc_to_ns(k, t.interval));
    if a[3] != 0
        && let Err(e) = write_pair(k, a[3], old.1, old.0, 1)
    {
        return e;
    }
    set(k, i, Some(val), ivl);
    0
}

/// timer_gettime(2).
pub fn timer_gettime(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let Some(i) = posix_index(k, a[0]) else {
        return -EINVAL;
    };
    let t = k.procs[crate::process::cur()].sig.timers[i];
    let (left, interval) = (left_ns(k, t.deadline), tsc_to_ns(k, t.interval));
    match write_pair(k, a[1], interval, left, 1) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// timer_getoverrun(2).
pub fn timer_getoverrun(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    match posix_index(k, a[0]) {
        Some(i) => k.procs[crate::process::cur()].sig.timers[i]
            .overrun
            .min(i32::MAX as u64) as i64,
        None => -EINVAL,
    }
}

/// timer_delete(2).
pub fn timer_delete(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let Some(i) = posix_index(k, a[0]) else {
        return -EINVAL;
    };
    k.procs[crate::process::cur()].sig.timers[i] = Timer::default();
    rearm(k);
    0
}
