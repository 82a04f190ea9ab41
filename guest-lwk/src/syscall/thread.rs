//! Threads: clone/clone3 (threads only; new processes are issue #9), thread exit with
//! CLEARTID, futex and futex_waitv, sleeping, the tid/robust-list calls and the scheduling
//! queries. See `sched` for the model: a thread per vCPU, or threads sharing vCPUs in time
//! slices (`oversubscribe`).

use super::{get_user, put_user};
use crate::arch::{self, TrapFrame};
use crate::process::ForkArgs;
use crate::sched::{FutexWait, Thread, block};
use crate::{KernelGuard, bridge, klog, sched};
use offload_abi::errno::{EAGAIN, EFAULT, EINVAL, ENOSYS, EPERM, ESRCH, ETIMEDOUT};

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_NEWNS: u64 = 0x20000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
/// Flags a thread-creating clone may carry.
const THREAD_FLAGS: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID;

fn ret(r: Result<i64, i64>) -> i64 {
    match r {
        Ok(v) | Err(v) => v,
    }
}

/// clone(2): x86_64 argument order (flags, stack, parent_tid, child_tid, tls).
pub fn clone(k: &mut KernelGuard, frame: &TrapFrame, a: [u64; 6]) -> i64 {
    let args = ForkArgs {
        flags: a[0],
        stack: a[1],
        parent_tid: a[2],
        child_tid: a[3],
        tls: a[4],
        // The low byte of the flags (CSIGNAL).
        exit_signal: (a[0] & 0xff) as u32,
    };
    ret(do_clone(k, frame, &args))
}

/// clone3(2): `struct clone_args` read from user memory.
pub fn clone3(k: &mut KernelGuard, frame: &TrapFrame, a: [u64; 6]) -> i64 {
    const CLONE_ARGS_MIN: u64 = 64; // CLONE_ARGS_SIZE_VER0
    let size = a[1];
    if !(CLONE_ARGS_MIN..=4096).contains(&size) {
        return -EINVAL;
    }
    let mut raw = [0u8; 88];
    let n = (size as usize).min(raw.len());
    if get_user(k, a[0], &mut raw[..n]).is_err() {
        return -EFAULT;
    }
    let field = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let (flags, pidfd, child_tid, parent_tid, exit_signal) =
        (field(0), field(1), field(2), field(3), field(4));
    let (stack, stack_size, tls) = (field(5), field(6), field(7));
    if pidfd != 0 && flags & CLONE_PIDFD != 0 {
        return -EINVAL;
    }
    // clone3 carries the exit signal in its own field: CSIGNAL bits in the flags are EINVAL.
    if (exit_signal != 0 && flags & CLONE_THREAD != 0) || exit_signal > 64 || flags & 0xff != 0 {
        return -EINVAL;
    }
    let sp = if stack == 0 {
        0
    } else {
        stack.wrapping_add(stack_size)
    };
    let args = ForkArgs {
        flags,
        stack: sp,
        parent_tid,
        child_tid,
        tls,
        exit_signal: exit_signal as u32,
    };
    ret(do_clone(k, frame, &args))
}

fn do_clone(k: &mut KernelGuard, frame: &TrapFrame, a: &ForkArgs) -> Result<i64, i64> {
    let flags = a.flags;
    if flags & CLONE_THREAD == 0 {
        return fork_with(k, frame, a);
    }
    if crate::process::must_exit(k, arch::current_slot()) {
        // The process is ending: a new thread would never be told to end with it.
        return Err(-offload_abi::errno::EINTR);
    }
    let thread_bits = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND;
    if flags & thread_bits != thread_bits
        || flags & !(THREAD_FLAGS | 0xff) != 0
        || flags & (CLONE_VFORK | CLONE_PARENT) != 0
    {
        return Err(-EINVAL);
    }
    let cpu = crate::process::place(k, "clone")?;
    let tid = k.sched.next_tid;
    if flags & CLONE_PARENT_SETTID != 0 {
        put_user(k, a.parent_tid, &tid.to_le_bytes())?;
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        // Threads share the address space: the parent can write the child's word now.
        put_user(k, a.child_tid, &tid.to_le_bytes())?;
    }
    let fs_base = a.fs_base()?;
    let child = a.child_frame(frame);
    let clear = if flags & CLONE_CHILD_CLEARTID != 0 {
        a.child_tid
    } else {
        0
    };
    let thread = Thread {
        tid,
        clear_child_tid: clear,
        robust_list: (0, 0),
    };
    let Some(slot) = k.sched.spawn(cpu, thread, &child, fs_base) else {
        klog!(
            bridge::level::ERROR,
            "clone: all {} thread contexts are in use",
            arch::MAX_THREADS
        );
        return Err(-EAGAIN);
    };
    k.sched.next_tid = tid.wrapping_add(1);
    let p = crate::process::cur();
    k.procs[p].threads += 1;
    crate::process::report_state(k, p);
    crate::process::bind_thread(slot, arch::current_slot());
    crate::procinfo::thread_bound(slot, tid, k.procs[p].pid, cpu);
    crate::signal::thread_start(k, slot, arch::current_slot());
    Ok(i64::from(tid))
}

/// Flags a process-creating clone may carry (CLONE_NEWNS and the other namespaces, and
/// CLONE_SIGHAND without CLONE_VM, are refused with EINVAL).
const PROCESS_FLAGS: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_VFORK
    | CLONE_PARENT
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID;

/// clone without CLONE_THREAD: a new process.
fn fork_with(k: &mut KernelGuard, frame: &TrapFrame, a: &ForkArgs) -> Result<i64, i64> {
    let flags = a.flags;
    if flags & !(PROCESS_FLAGS | 0xff) != 0 || flags & CLONE_SIGHAND != 0 {
        return Err(if flags & CLONE_NEWNS != 0 {
            -EPERM
        } else {
            -EINVAL
        });
    }
    // CLONE_FILES and CLONE_FS would share the fd table and cwd with the parent; the host
    // gives every process its own copy (the difference shows only when one of them opens,
    // closes or chdirs before exec, which posix_spawn does not).
    crate::process::fork(k, frame, a)
}

/// fork(2) and vfork(2).
pub fn fork(k: &mut KernelGuard, frame: &TrapFrame, vfork: bool) -> i64 {
    const SIGCHLD: u64 = 17;
    let flags = if vfork {
        CLONE_VM | CLONE_VFORK | SIGCHLD
    } else {
        SIGCHLD
    };
    let args = ForkArgs {
        flags,
        stack: 0,
        parent_tid: 0,
        child_tid: 0,
        tls: 0,
        exit_signal: SIGCHLD as u32,
    };
    ret(fork_with(k, frame, &args))
}

/// exit(2): ends the calling thread (its process when it is the last one, the job when that
/// is the first process). CLEARTID: the tid word is zeroed and one futex waiter woken, as
/// pthread_join expects.
pub fn exit(k: KernelGuard, a: [u64; 6]) -> ! {
    let status = crate::process::exited_status(a[0] as i32 as u32 & 0xff);
    crate::process::exit_thread(k, status, false)
}

/// set_tid_address(2)
pub fn set_tid_address(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let t = k.sched.current();
    t.clear_child_tid = a[0];
    i64::from(t.tid)
}

/// gettid(2)
pub fn gettid(k: &mut KernelGuard) -> i64 {
    i64::from(k.sched.current().tid)
}

/// set_robust_list(2): recorded per thread.
pub fn set_robust_list(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    if a[1] != 24 {
        return -EINVAL;
    }
    k.sched.current().robust_list = (a[0], a[1]);
    0
}

/// get_robust_list(2)
pub fn get_robust_list(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let tid = a[0] as i32;
    let found = if tid == 0 {
        Some(k.sched.current().robust_list)
    } else {
        k.sched
            .threads()
            .find(|(_, t)| t.tid as i32 == tid)
            .map(|(_, t)| t.robust_list)
    };
    let Some((head, len)) = found else {
        return -ESRCH;
    };
    if let Err(e) = put_user(k, a[1], &head.to_le_bytes()) {
        return e;
    }
    ret(put_user(k, a[2], &len.to_le_bytes()).map(|()| 0))
}

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_REQUEUE: i32 = 3;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_WAKE_OP: i32 = 5;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;

fn read_u32(k: &KernelGuard, addr: u64) -> Result<u32, i64> {
    let mut b = [0u8; 4];
    get_user(k, addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_timespec(k: &KernelGuard, addr: u64) -> Result<u64, i64> {
    let mut b = [0u8; 16];
    get_user(k, addr, &mut b)?;
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[..8]);
    let sec = i64::from_le_bytes(s);
    s.copy_from_slice(&b[8..]);
    let nsec = i64::from_le_bytes(s);
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(-EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec as u64))
}

/// The TSC deadline for an absolute time on `realtime` or CLOCK_MONOTONIC.
fn deadline_abs(k: &KernelGuard, ns: u64, realtime: bool) -> u64 {
    let mono = if realtime {
        (i128::from(ns) - k.clock.realtime_offset()).clamp(0, i128::from(u64::MAX)) as u64
    } else {
        ns
    };
    k.clock.tsc_at_monotonic(mono)
}

/// Waits on `key` if it still holds `val`: 0 when woken, -EAGAIN, -ETIMEDOUT.
fn futex_wait(k: &mut KernelGuard, addr: u64, val: u32, bitset: u32, deadline: Option<u64>) -> i64 {
    match read_u32(k, addr) {
        Ok(v) if v != val => return -EAGAIN,
        Ok(_) => {}
        Err(e) => return e,
    }
    let me = arch::current_slot();
    let key = crate::process::futex_key_at(k, addr);
    k.sched.slots[me].futex = Some(FutexWait { key, bitset });
    k.sched.slots[me].woken = false;
    let r = loop {
        if !block(k, deadline) {
            break -ETIMEDOUT;
        }
        if k.sched.slots[me].futex.is_none() {
            break 0;
        }
        if crate::signal::interrupted(k, me) {
            // Linux: an untimed wait restarts under SA_RESTART, a timed one returns EINTR
            // to a handler (ERESTART_RESTARTBLOCK).
            break if deadline.is_some() {
                -crate::signal::ERESTART_RESTARTBLOCK
            } else {
                -crate::signal::ERESTARTSYS
            };
        }
    };
    k.sched.slots[me].futex = None;
    r
}

/// The FUTEX_WAKE_OP operation on `*uaddr2`; returns the old value.
fn wake_op(k: &mut KernelGuard, uaddr2: u64, encoded: u32) -> Result<u32, i64> {
    let op = (encoded >> 28) & 7;
    let shift = encoded & (8 << 28) != 0;
    let mut oparg = (encoded >> 12) & 0xfff;
    if shift {
        oparg = 1u32.checked_shl(oparg).unwrap_or(0);
    }
    let old = read_u32(k, uaddr2)?;
    let new = match op {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Err(-ENOSYS),
    };
    put_user(k, uaddr2, &new.to_le_bytes())?;
    Ok(old)
}

fn wake_op_cmp(old: u32, encoded: u32) -> bool {
    let cmp = (encoded >> 24) & 15;
    let arg = encoded & 0xfff;
    let old = old as i32;
    let arg = arg as i32;
    match cmp {
        0 => old == arg,
        1 => old != arg,
        2 => old < arg,
        3 => old <= arg,
        4 => old > arg,
        5 => old >= arg,
        _ => false,
    }
}

/// futex(2). Keys are user addresses per address space. PI futexes are ENOSYS.
pub fn futex(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let (uaddr, op, val, uaddr2, val3) = (a[0], a[1] as i32, a[2] as u32, a[4], a[5] as u32);
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    if uaddr % 4 != 0 {
        return -EINVAL;
    }
    if op & FUTEX_CLOCK_REALTIME != 0 && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT {
        return -ENOSYS;
    }
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { u32::MAX } else { val3 };
            if bitset == 0 {
                return -EINVAL;
            }
            let deadline = if a[3] == 0 {
                None
            } else {
                let ns = match read_timespec(k, a[3]) {
                    Ok(ns) => ns,
                    Err(e) => return e,
                };
                Some(if cmd == FUTEX_WAIT {
                    // Relative, on CLOCK_MONOTONIC (CLOCK_REALTIME only changes the clock for
                    // absolute timeouts).
                    let now = k.clock.monotonic_ns();
                    k.clock.tsc_at_monotonic(now.saturating_add(ns))
                } else {
                    deadline_abs(k, ns, op & FUTEX_CLOCK_REALTIME != 0)
                })
            };
            futex_wait(k, uaddr, val, bitset, deadline)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { u32::MAX } else { val3 };
            if bitset == 0 {
                return -EINVAL;
            }
            {
                let key = crate::process::futex_key_at(k, uaddr);
                i64::from(k.sched.futex_wake(key, val, bitset))
            }
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            if uaddr2 % 4 != 0 || (val as i32) < 0 {
                return -EINVAL;
            }
            if cmd == FUTEX_CMP_REQUEUE {
                match read_u32(k, uaddr) {
                    Ok(v) if v != val3 => return -EAGAIN,
                    Ok(_) => {}
                    Err(e) => return e,
                }
            }
            let (from, to) = (
                crate::process::futex_key_at(k, uaddr),
                crate::process::futex_key_at(k, uaddr2),
            );
            let woken = k.sched.futex_wake(from, val, u32::MAX);
            let moved = k.sched.futex_requeue(from, to, a[3] as u32);
            i64::from(woken + if cmd == FUTEX_CMP_REQUEUE { moved } else { 0 })
        }
        FUTEX_WAKE_OP => {
            if uaddr2 % 4 != 0 {
                return -EINVAL;
            }
            let old = match wake_op(k, uaddr2, val3) {
                Ok(old) => old,
                Err(e) => return e,
            };
            let (first, second) = (
                crate::process::futex_key_at(k, uaddr),
                crate::process::futex_key_at(k, uaddr2),
            );
            let mut n = k.sched.futex_wake(first, val, u32::MAX);
            if wake_op_cmp(old, val3) {
                n += k.sched.futex_wake(second, a[3] as u32, u32::MAX);
            }
            i64::from(n)
        }
        // FUTEX_LOCK_PI, UNLOCK_PI, TRYLOCK_PI, WAIT_REQUEUE_PI, CMP_REQUEUE_PI, LOCK_PI2.
        _ => -ENOSYS,
    }
}

/// futex_waitv(2): waits on up to 128 futexes at once (all 32-bit, private or shared alike:
/// one address space per job); returns the index of the one that woke it.
pub fn futex_waitv(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    const FUTEX2_SIZE_U32: u32 = 0x02;
    const FUTEX2_SIZE_MASK: u32 = 0x03;
    const FUTEX2_PRIVATE: u32 = 128;
    const ENTRY: usize = 24; // struct futex_waitv { u64 val; u64 uaddr; u32 flags; u32 rsvd; }
    let (waiters, n, flags, timeout, clock) = (a[0], a[1], a[2], a[3], a[4] as i32);
    if flags != 0 || n == 0 || n > sched::WAITV_MAX as u64 {
        return -EINVAL;
    }
    let deadline = if timeout == 0 {
        None
    } else {
        let realtime = match clock {
            0 => true,
            1 => false,
            _ => return -EINVAL,
        };
        match read_timespec(k, timeout) {
            Ok(ns) => Some(deadline_abs(k, ns, realtime)),
            Err(e) => return e,
        }
    };
    let n = n as usize;
    let mut raw = [0u8; ENTRY * sched::WAITV_MAX];
    if let Err(e) = get_user(k, waiters, &mut raw[..ENTRY * n]) {
        return e;
    }
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let mut keys = [0u64; sched::WAITV_MAX];
    let mut vals = [0u32; sched::WAITV_MAX];
    for (i, e) in raw[..ENTRY * n].chunks_exact(ENTRY).enumerate() {
        let (val, uaddr) = (word(&e[0..8]), word(&e[8..16]));
        let f = word(&e[16..24]);
        let (wflags, reserved) = (f as u32, (f >> 32) as u32);
        if reserved != 0
            || wflags & !(FUTEX2_SIZE_MASK | FUTEX2_PRIVATE) != 0
            || wflags & FUTEX2_SIZE_MASK != FUTEX2_SIZE_U32
            || val > u64::from(u32::MAX)
            || uaddr % 4 != 0
        {
            return -EINVAL;
        }
        keys[i] = uaddr;
        vals[i] = val as u32;
    }
    for i in 0..n {
        match read_u32(k, keys[i]) {
            Ok(v) if v != vals[i] => return -EAGAIN,
            Ok(_) => {}
            Err(e) => return e,
        }
    }
    let me = arch::current_slot();
    for key in keys[..n].iter_mut() {
        *key = crate::process::futex_key_at(k, *key);
    }
    k.sched.waitv[me][..n].copy_from_slice(&keys[..n]);
    k.sched.slots[me].waitv_len = n as u8;
    k.sched.slots[me].woken = false;
    let r = loop {
        if !block(k, deadline) {
            break -ETIMEDOUT;
        }
        if k.sched.slots[me].waitv_len == 0 {
            break i64::from(k.sched.slots[me].waitv_woke);
        }
        if crate::signal::interrupted(k, me) {
            break -crate::signal::ERESTARTSYS;
        }
    };
    k.sched.slots[me].waitv_len = 0;
    r
}

fn sleep_until(k: &mut KernelGuard, deadline: u64) -> bool {
    let me = arch::current_slot();
    loop {
        k.sched.slots[me].woken = false;
        if crate::signal::interrupted(k, me) {
            return false;
        }
        if !block(k, Some(deadline)) || arch::rdtsc() >= deadline {
            return true;
        }
    }
}

/// Writes the time left until `deadline` to `rem` (nanosleep interrupted by a signal).
fn write_remaining(k: &mut KernelGuard, rem: u64, deadline: u64) -> Result<(), i64> {
    if rem == 0 {
        return Ok(());
    }
    let ticks = deadline.saturating_sub(arch::rdtsc());
    let left = (u128::from(ticks) * 1_000_000 / u128::from(k.info.tsc_khz.max(1))) as u64;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(left / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&(left % 1_000_000_000).to_le_bytes());
    put_user(k, rem, &b)
}

/// nanosleep(2); a signal for a handler ends it with EINTR and the time left in `rem`.
pub fn nanosleep(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let ns = match read_timespec(k, a[0]) {
        Ok(ns) => ns,
        Err(e) => return e,
    };
    let now = k.clock.monotonic_ns();
    let deadline = k.clock.tsc_at_monotonic(now.saturating_add(ns));
    if sleep_until(k, deadline) {
        return 0;
    }
    match write_remaining(k, a[1], deadline) {
        Ok(()) => -crate::signal::ERESTART_RESTARTBLOCK,
        Err(e) => e,
    }
}

/// clock_nanosleep(2): relative or TIMER_ABSTIME on the realtime/monotonic/boottime clocks.
pub fn clock_nanosleep(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    const TIMER_ABSTIME: i32 = 1;
    let clock = a[0] as i32;
    let realtime = match clock {
        0 => true,               // CLOCK_REALTIME
        1 | 7 => false,          // CLOCK_MONOTONIC, CLOCK_BOOTTIME
        2 | 3 => return -ENOSYS, // CPU-time clocks: not sleepable here
        _ => return -EINVAL,
    };
    let ns = match read_timespec(k, a[2]) {
        Ok(ns) => ns,
        Err(e) => return e,
    };
    let abs = a[1] as i32 & TIMER_ABSTIME != 0;
    let deadline = if abs {
        deadline_abs(k, ns, realtime)
    } else {
        let now = k.clock.monotonic_ns();
        k.clock.tsc_at_monotonic(now.saturating_add(ns))
    };
    if sleep_until(k, deadline) {
        return 0;
    }
    if abs {
        return -crate::signal::ERESTARTNOHAND;
    }
    match write_remaining(k, a[3], deadline) {
        Ok(()) => -crate::signal::ERESTART_RESTARTBLOCK,
        Err(e) => e,
    }
}

/// sched_getaffinity(2): the job's vCPUs, numbered 0..N.
pub fn sched_getaffinity(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let len = a[1];
    if len < 8 || !len.is_multiple_of(8) {
        return -EINVAL;
    }
    if !tid_exists(k, a[0] as i32) {
        return -ESRCH;
    }
    let n = k.sched.ncpus;
    let mask: u64 = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    ret(put_user(k, a[2], &mask.to_le_bytes()).map(|()| 8))
}

/// sched_setaffinity(2): threads stay on their vCPU; a mask that includes it is accepted.
pub fn sched_setaffinity(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    if !tid_exists(k, a[0] as i32) {
        return -ESRCH;
    }
    let mut b = [0u8; 8];
    let n = (a[1] as usize).min(8);
    if n == 0 {
        return -EINVAL;
    }
    if let Err(e) = get_user(k, a[2], &mut b[..n]) {
        return e;
    }
    let mask = u64::from_le_bytes(b);
    let cpu = thread_cpu(k, a[0] as i32).unwrap_or(0);
    if cpu >= 64 || mask & (1 << cpu) == 0 {
        // Moving a thread to another vCPU is not supported: one thread owns one vCPU.
        return -EINVAL;
    }
    0
}

/// The vCPU of thread `tid` (0: the caller).
fn thread_cpu(k: &KernelGuard, tid: i32) -> Option<usize> {
    if tid == 0 {
        return Some(arch::current_cpu());
    }
    let slot = k.sched.slot_of(u32::try_from(tid).ok()?)?;
    Some(k.sched.slots[slot].cpu)
}

fn tid_exists(k: &KernelGuard, tid: i32) -> bool {
    thread_cpu(k, tid).is_some()
}

/// getcpu(2): the vCPU, node 0.
pub fn getcpu(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let cpu = arch::current_cpu() as u32;
    if a[0] != 0
        && let Err(e) = put_user(k, a[0], &cpu.to_le_bytes())
    {
        return e;
    }
    if a[1] != 0
        && let Err(e) = put_user(k, a[1], &0u32.to_le_bytes())
    {
        return e;
    }
    0
}

/// sched_getscheduler(2) / sched_setscheduler(2) / sched_getparam(2) / sched_setparam(2):
/// every thread runs SCHED_OTHER with priority 0 (round-robin among the threads of a vCPU);
/// requests are accepted.
pub fn sched_policy(k: &mut KernelGuard, number: u64, a: [u64; 6]) -> i64 {
    use offload_abi::syscalls::nr;
    if !tid_exists(k, a[0] as i32) {
        return -ESRCH;
    }
    match number {
        nr::sched_getscheduler => 0,
        nr::sched_getparam => ret(put_user(k, a[1], &0u32.to_le_bytes()).map(|()| 0)),
        nr::sched_setscheduler => {
            let policy = a[1] as i32 & !0x4000_0000; // SCHED_RESET_ON_FORK
            if !(0..=6).contains(&policy) || policy == 4 {
                return -EINVAL;
            }
            ret(read_u32(k, a[2]).map(|_| 0))
        }
        _ => ret(read_u32(k, a[1]).map(|_| 0)),
    }
}

/// sched_get_priority_max(2) / sched_get_priority_min(2), as Linux.
pub fn priority_range(number: u64, a: [u64; 6]) -> i64 {
    use offload_abi::syscalls::nr;
    match a[0] as i32 {
        1 | 2 => {
            if number == nr::sched_get_priority_max {
                99
            } else {
                1
            }
        }
        0 | 3 | 5 | 6 => 0,
        _ => -EINVAL,
    }
}
