//! The syscall dispatcher: one entry for both arrivals, driven by the table in `offload-abi`.
//!
//! Local syscalls live in one file per family (`mem`, `time`, `process`); each handler takes
//! the kernel and the six raw arguments and returns a Linux-style result (value or `-errno`).
//! Handlers truncate integer arguments to their C types themselves (an `int` arrives with
//! whatever the caller left in the upper 32 bits).

mod mem;
mod process;
mod signal;
mod thread;
mod time;

use crate::arch::{self, TrapFrame};
use crate::bridge;
use crate::{Kernel, KernelGuard};
use offload_abi::boot_flags;
use offload_abi::errno::{EFAULT, EINTR, ENOSYS, EPIPE};
use offload_abi::syscalls::{Disposition, MAX_NR, disposition, nr};

/// Serves the syscall in `frame` (RAX = number, args in RDI, RSI, RDX, R10, R8, R9) and puts
/// the result in RAX. Takes the kernel lock; releases it around offloaded calls (which may
/// block on the host) and while a thread waits.
pub fn handle(mut k: KernelGuard, frame: &mut TrapFrame) {
    let number = frame.rax;
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    k.stats.last_syscall = number;
    if let Some(count) = k.stats.per_nr.get_mut(number as usize) {
        *count = count.wrapping_add(1);
    } else if let Some(count) = k.stats.per_nr.get_mut(MAX_NR - 1) {
        // Out-of-range numbers are counted in the last slot, which no syscall uses.
        *count = count.wrapping_add(1);
    }
    let tracing = k.info.flags & boot_flags::TRACE != 0;
    let started = if tracing { arch::rdtsc() } else { 0 };
    if tracing && (number == nr::exit || number == nr::exit_group) {
        bridge::trace(number, args, None, 0);
    }
    if number == nr::rt_sigreturn {
        // Every register comes from the signal frame: RAX is not a result here.
        k.stats.syscalls_local += 1;
        signal::rt_sigreturn(&mut k, frame);
        return;
    }
    let ret = match disposition(number) {
        Disposition::Local => {
            k.stats.syscalls_local += 1;
            match number {
                nr::exit => thread::exit(k, args),
                nr::exit_group => process::exit_group(k, args),
                nr::fork => thread::fork(&mut k, frame, false),
                nr::vfork => thread::fork(&mut k, frame, true),
                nr::execve | nr::execveat => {
                    // execve(path, argv, envp) is execveat(AT_FDCWD, path, argv, envp, 0).
                    let a = if number == nr::execve {
                        [-100i64 as u64, args[0], args[1], args[2], 0, 0]
                    } else {
                        [
                            args[0] as i32 as i64 as u64,
                            args[1],
                            args[2],
                            args[3],
                            args[4],
                            0,
                        ]
                    };
                    crate::vm::with_faults(&mut k, |k| {
                        crate::exec::execve(k, frame, a[0] as i64, a[1], a[2], a[3], a[4])
                    })
                }
                nr::wait4 => process::wait4(&mut k, args),
                nr::waitid => process::waitid(&mut k, args),
                nr::clone => thread::clone(&mut k, frame, args),
                nr::clone3 => thread::clone3(&mut k, frame, args),
                nr::futex => crate::vm::with_faults(&mut k, |k| thread::futex(k, args)),
                nr::futex_waitv => crate::vm::with_faults(&mut k, |k| thread::futex_waitv(k, args)),
                nr::sched_yield => crate::sched::yield_now(&mut k),
                nr::nanosleep => crate::vm::with_faults(&mut k, |k| thread::nanosleep(k, args)),
                nr::clock_nanosleep => {
                    crate::vm::with_faults(&mut k, |k| thread::clock_nanosleep(k, args))
                }
                nr::set_tid_address => thread::set_tid_address(&mut k, args),
                nr::gettid => thread::gettid(&mut k),
                nr::set_robust_list => thread::set_robust_list(&mut k, args),
                nr::get_robust_list => {
                    crate::vm::with_faults(&mut k, |k| thread::get_robust_list(k, args))
                }
                nr::sched_getaffinity => {
                    crate::vm::with_faults(&mut k, |k| thread::sched_getaffinity(k, args))
                }
                nr::sched_setaffinity => thread::sched_setaffinity(&mut k, args),
                nr::getcpu => crate::vm::with_faults(&mut k, |k| thread::getcpu(k, args)),
                nr::sched_getscheduler
                | nr::sched_setscheduler
                | nr::sched_getparam
                | nr::sched_setparam => {
                    crate::vm::with_faults(&mut k, |k| thread::sched_policy(k, number, args))
                }
                nr::sched_get_priority_max | nr::sched_get_priority_min => {
                    thread::priority_range(number, args)
                }
                nr::pause => signal::pause(&mut k),
                nr::alarm => crate::timer::alarm(&mut k, args),
                nr::setitimer => {
                    crate::vm::with_faults(&mut k, |k| crate::timer::setitimer(k, args))
                }
                nr::getitimer => {
                    crate::vm::with_faults(&mut k, |k| crate::timer::getitimer(k, args))
                }
                nr::timer_create => {
                    crate::vm::with_faults(&mut k, |k| crate::timer::timer_create(k, args))
                }
                nr::timer_settime => {
                    crate::vm::with_faults(&mut k, |k| crate::timer::timer_settime(k, args))
                }
                nr::timer_gettime => {
                    crate::vm::with_faults(&mut k, |k| crate::timer::timer_gettime(k, args))
                }
                nr::timer_getoverrun => crate::timer::timer_getoverrun(&mut k, args),
                nr::timer_delete => crate::timer::timer_delete(&mut k, args),
                nr::rt_sigsuspend => {
                    crate::vm::with_faults(&mut k, |k| signal::rt_sigsuspend(k, args))
                }
                nr::rt_sigtimedwait => {
                    crate::vm::with_faults(&mut k, |k| signal::rt_sigtimedwait(k, args))
                }
                nr::sigaltstack => {
                    let rsp = frame.rsp;
                    crate::vm::with_faults(&mut k, |k| signal::sigaltstack(k, args, rsp))
                }
                _ => crate::vm::with_faults(&mut k, |k| local(k, number, args)),
            }
        }
        Disposition::Offload => {
            k.stats.syscalls_offloaded += 1;
            let r = crate::vm::offload(&mut k, number, args);
            if r == -EPIPE && raises_sigpipe(number, args) {
                // Linux sends SIGPIPE with EPIPE for a write to a pipe or socket that nobody
                // reads; the host call only returned the errno.
                let me = arch::current_slot();
                let p = crate::process::cur();
                let info = crate::signal::Info::user(
                    crate::signal::code::SI_USER,
                    k.procs[p].pid,
                    k.info.ids[0],
                );
                crate::signal::send_thread(&mut k, me, crate::signal::sig::SIGPIPE, info);
            }
            if r == -EINTR && crate::signal::interrupted(&k, arch::current_slot()) {
                // The host call was interrupted for a signal of the program: Linux's restart
                // rules decide (poll and friends never restart, the rest under SA_RESTART).
                offload_abi::syscalls::restart_code(number)
            } else {
                r
            }
        }
        Disposition::Unsupported(_) => {
            k.stats.syscalls_unsupported += 1;
            -ENOSYS
        }
    };
    frame.rax = ret as u64;
    if crate::signal::is_restart(ret) {
        crate::signal::note_restart(&mut k, arch::current_slot(), number);
    }
    if tracing {
        let ticks = arch::rdtsc().wrapping_sub(started);
        let khz = k.info.tsc_khz.max(1);
        drop(k);
        bridge::trace(
            number,
            args,
            Some(ret),
            ticks.saturating_mul(1_000_000) / khz,
        );
    }
}

fn local(k: &mut Kernel, number: u64, a: [u64; 6]) -> i64 {
    match number {
        nr::brk => mem::brk(k, a),
        nr::mmap => mem::mmap(k, a),
        nr::munmap => mem::munmap(k, a),
        nr::mprotect => mem::mprotect(k, a),
        nr::madvise => mem::madvise(k, a),
        nr::mremap => mem::mremap(k, a),
        nr::msync => mem::msync(k, a),
        nr::mincore => mem::mincore(k, a),
        nr::mlock => mem::mlock(k, a),
        nr::mlock2 => mem::mlock2(k, a),
        nr::munlock => mem::munlock(k, a),
        nr::mlockall => mem::mlockall(k, a),
        nr::munlockall => mem::munlockall(k, a),
        nr::clock_gettime => time::clock_gettime(k, a),
        nr::clock_getres => time::clock_getres(k, a),
        nr::gettimeofday => time::gettimeofday(k, a),
        nr::time => time::time(k, a),
        nr::times => time::times(k, a),
        nr::getrusage => time::getrusage(k, a),
        nr::getpid => process::getpid(k, a),
        nr::getppid => process::getppid(k, a),
        nr::getpgrp => i64::from(k.procs[crate::process::cur()].pgid),
        nr::getpgid => process::getpgid(k, a),
        nr::getsid => process::getsid(k, a),
        nr::setpgid => process::setpgid(k, a),
        nr::setsid => process::setsid(k),
        nr::prctl => process::prctl(k, a),
        nr::getuid => i64::from(k.info.ids[0]),
        nr::geteuid => i64::from(k.info.ids[1]),
        nr::getgid => i64::from(k.info.ids[2]),
        nr::getegid => i64::from(k.info.ids[3]),
        nr::uname => process::uname(k, a),
        nr::sysinfo => process::sysinfo(k, a),
        nr::arch_prctl => process::arch_prctl(k, a),
        nr::prlimit64 => process::prlimit64(k, a),
        nr::getrlimit => process::getrlimit(k, a),
        nr::rt_sigaction => signal::rt_sigaction(k, a),
        nr::rt_sigprocmask => signal::rt_sigprocmask(k, a),
        nr::rt_sigpending => signal::rt_sigpending(k, a),
        nr::kill => signal::kill(k, a),
        nr::tkill => signal::tgkill(k, -1, a[0] as i64, a[1]),
        nr::tgkill => signal::tgkill(k, a[0] as i32 as i64, a[1] as i64, a[2]),
        nr::rt_sigqueueinfo => signal::rt_sigqueueinfo(k, a),
        nr::rt_tgsigqueueinfo => signal::rt_tgsigqueueinfo(k, a),
        // The table marks a call local that neither match serves: a kernel bug, but the
        // program gets what Linux gives for an unknown call.
        _ => -ENOSYS,
    }
}

/// Whether an EPIPE from offloaded call `nr` comes with SIGPIPE (writes; socket sends without
/// MSG_NOSIGNAL).
fn raises_sigpipe(number: u64, a: [u64; 6]) -> bool {
    const MSG_NOSIGNAL: u64 = 0x4000;
    match number {
        nr::write
        | nr::writev
        | nr::pwrite64
        | nr::pwritev
        | nr::pwritev2
        | nr::splice
        | nr::vmsplice
        | nr::tee
        | nr::sendfile => true,
        nr::sendto | nr::sendmmsg => a[3] & MSG_NOSIGNAL == 0,
        nr::sendmsg => a[2] & MSG_NOSIGNAL == 0,
        _ => false,
    }
}

/// Writes a plain value to user memory, `-EFAULT` if it is not mapped user-writable.
pub fn put_user(k: &Kernel, va: u64, bytes: &[u8]) -> Result<(), i64> {
    k.mms[crate::process::cur_mm()]
        .aspace
        .copy_to_user(va, bytes)
        .map_err(|()| -EFAULT)
}

/// Reads user memory, `-EFAULT` if it is not mapped user-readable.
pub fn get_user(k: &Kernel, va: u64, out: &mut [u8]) -> Result<(), i64> {
    k.mms[crate::process::cur_mm()]
        .aspace
        .copy_from_user(va, out)
        .map_err(|()| -EFAULT)
}
