//! Process identity, limits and thread-area calls, served locally.

use super::{get_user, put_user};
use crate::arch::{self, msr};
use crate::{Kernel, exit_job};
use offload_abi::errno::{EBADF, ECHILD, EINVAL, EPERM, ESRCH};
use offload_abi::{RLIMIT_COUNT, exit_kind};

/// exit_group(2): ends the job (all threads; the VMM stops every vCPU).
pub fn exit_group(_k: &mut Kernel, a: [u64; 6]) -> i64 {
    exit_job(exit_kind::EXITED, (a[0] as i32 as u32) & 0xff)
}

/// getpid(2)
pub fn getpid(k: &mut Kernel, _a: [u64; 6]) -> i64 {
    i64::from(k.process.pid)
}

/// getppid(2)
pub fn getppid(k: &mut Kernel, _a: [u64; 6]) -> i64 {
    i64::from(k.info.ppid)
}

/// Whether `pid` names the calling process (0 or its own pid). The job is one process: other
/// pids name nothing the program can reach.
fn is_self(k: &Kernel, pid: u64) -> Result<(), i64> {
    match pid as i32 {
        0 => Ok(()),
        p if p as u32 == k.process.pid => Ok(()),
        p if p < 0 => Err(-EINVAL),
        _ => Err(-ESRCH),
    }
}

/// getpgid(2)
pub fn getpgid(k: &mut Kernel, a: [u64; 6]) -> i64 {
    match is_self(k, a[0]) {
        Ok(()) => i64::from(k.process.pgid),
        Err(e) if e == -EINVAL => -ESRCH,
        Err(e) => e,
    }
}

/// getsid(2)
pub fn getsid(k: &mut Kernel, a: [u64; 6]) -> i64 {
    match is_self(k, a[0]) {
        Ok(()) => i64::from(k.process.sid),
        Err(e) if e == -EINVAL => -ESRCH,
        Err(e) => e,
    }
}

/// setpgid(2), by Linux's rules for the calling process: a session leader cannot move
/// (EPERM); it may lead a group of its own (`pgid` 0 or its pid) or stay in its group; any
/// other group would have to exist in its session, and the job has no other process (EPERM).
pub fn setpgid(k: &mut Kernel, a: [u64; 6]) -> i64 {
    if let Err(e) = is_self(k, a[0]) {
        return e;
    }
    let pgid = a[1] as i32;
    if pgid < 0 {
        return -EINVAL;
    }
    let p = &mut k.process;
    let want = if pgid == 0 { p.pid } else { pgid as u32 };
    if p.sid == p.pid {
        return -EPERM;
    }
    if want != p.pid && want != p.pgid {
        return -EPERM;
    }
    p.pgid = want;
    0
}

/// setsid(2): a new session and group led by the caller, unless it already leads a group.
pub fn setsid(k: &mut Kernel) -> i64 {
    let p = &mut k.process;
    if p.pgid == p.pid {
        return -EPERM;
    }
    p.sid = p.pid;
    p.pgid = p.pid;
    i64::from(p.pid)
}

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WEXITED: u64 = 4;
const WCONTINUED: u64 = 8;
const WNOWAIT: u64 = 0x0100_0000;
const WNOTHREAD: u64 = 0x2000_0000;
const WALL: u64 = 0x4000_0000;
const WCLONE: u64 = 0x8000_0000;

/// wait4(2): the job's process has no children (fork is not implemented yet), so after the
/// argument checks Linux's answer is ECHILD.
pub fn wait4(a: [u64; 6]) -> i64 {
    if a[2] & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0 {
        return -EINVAL;
    }
    if a[0] as i32 == i32::MIN {
        return -ESRCH;
    }
    -ECHILD
}

/// waitid(2): as [`wait4`], after waitid's own argument checks.
pub fn waitid(a: [u64; 6]) -> i64 {
    const P_PID: u64 = 1;
    const P_PGID: u64 = 2;
    const P_PIDFD: u64 = 3;
    let (idtype, id, options) = (a[0], a[1] as i32, a[3]);
    if options & !(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL | WCLONE)
        != 0
        || options & (WEXITED | WUNTRACED | WCONTINUED) == 0
        || idtype > P_PIDFD
        || (idtype == P_PID && id <= 0)
        || ((idtype == P_PGID || idtype == P_PIDFD) && id < 0)
    {
        return -EINVAL;
    }
    if idtype == P_PIDFD {
        // No pidfd can exist in the job: whatever the fd is, it is not one.
        return -EBADF;
    }
    -ECHILD
}

/// uname(2): the host's identity (so programs that print it match their native run).
pub fn uname(k: &mut Kernel, a: [u64; 6]) -> i64 {
    match put_user(k, a[0], &k.info.utsname) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

const ARCH_SET_GS: i32 = 0x1001;
const ARCH_SET_FS: i32 = 0x1002;
const ARCH_GET_FS: i32 = 0x1003;
const ARCH_GET_GS: i32 = 0x1004;

/// arch_prctl(2): the FS/GS bases of the thread (TLS).
pub fn arch_prctl(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let code = a[0] as i32;
    let addr = a[1];
    let set = |m: u32| {
        if addr >= offload_abi::layout::USER_END {
            return -EPERM;
        }
        arch::wrmsr(m, addr);
        0
    };
    // The trap path runs with the user's GS base loaded (syscall_entry swaps it back before
    // calling Rust), so GS_BASE is the user's in both arrivals.
    let get = |m: u32| match put_user(k, addr, &arch::rdmsr(m).to_le_bytes()) {
        Ok(()) => 0,
        Err(e) => e,
    };
    match code {
        ARCH_SET_FS => set(msr::FS_BASE),
        ARCH_SET_GS => set(msr::GS_BASE),
        ARCH_GET_FS => get(msr::FS_BASE),
        ARCH_GET_GS => get(msr::GS_BASE),
        _ => -EINVAL,
    }
}

fn limits_bytes(l: [u64; 2]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&l[0].to_le_bytes());
    b[8..].copy_from_slice(&l[1].to_le_bytes());
    b
}

/// prlimit64(2) on the program itself (limits start as the host's, recorded per process).
pub fn prlimit64(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let pid = a[0] as i32;
    if pid != 0 && pid as u32 != k.process.pid {
        return -ESRCH;
    }
    let resource = a[1] as u32 as usize;
    if resource >= RLIMIT_COUNT {
        return -EINVAL;
    }
    let mut new = None;
    if a[2] != 0 {
        let mut b = [0u8; 16];
        if let Err(e) = get_user(k, a[2], &mut b) {
            return e;
        }
        let soft = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let hard = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        if soft > hard {
            return -EINVAL;
        }
        new = Some([soft, hard]);
    }
    if a[3] != 0
        && let Err(e) = put_user(k, a[3], &limits_bytes(k.process.rlimits[resource]))
    {
        return e;
    }
    if let Some(l) = new {
        k.process.rlimits[resource] = l;
    }
    0
}

/// getrlimit(2)
pub fn getrlimit(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let resource = a[0] as u32 as usize;
    if resource >= RLIMIT_COUNT {
        return -EINVAL;
    }
    match put_user(k, a[1], &limits_bytes(k.process.rlimits[resource])) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// sysinfo(2): the job's machine as the LWK sees it — uptime from the host's monotonic clock
/// (as natively), guest RAM for programs (`totalram`; `freeram` what is not handed out), no
/// swap, no load average, `procs` the live threads. `sysconf(_SC_PHYS_PAGES)` and
/// `_SC_AVPHYS_PAGES` read these.
pub fn sysinfo(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let mut info = [0u8; 112];
    let mut put = |off: usize, v: &[u8]| {
        if let Some(dst) = info.get_mut(off..off + v.len()) {
            dst.copy_from_slice(v);
        }
    };
    let uptime = k.clock.monotonic_ns() / 1_000_000_000;
    put(0, &uptime.to_le_bytes());
    put(32, &k.frames.total.to_le_bytes());
    put(40, &k.frames.available().to_le_bytes());
    put(
        80,
        &(k.sched.live.min(u32::from(u16::MAX)) as u16).to_le_bytes(),
    );
    put(104, &1u32.to_le_bytes()); // mem_unit
    match put_user(k, a[0], &info) {
        Ok(()) => 0,
        Err(e) => e,
    }
}
