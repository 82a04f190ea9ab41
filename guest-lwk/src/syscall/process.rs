//! Process identity, limits and thread-area calls, served locally.

use super::{get_user, put_user};
use crate::arch::{self, msr};
use crate::process::{self, Which, cur};
use crate::{Kernel, KernelGuard};
use offload_abi::RLIMIT_COUNT;
use offload_abi::errno::{EACCES, EBADF, ECHILD, EFAULT, EINVAL, EPERM, ESRCH};

/// exit_group(2): ends every thread of the calling process (the job, for the first process).
pub fn exit_group(k: KernelGuard, a: [u64; 6]) -> ! {
    let status = process::exited_status(a[0] as i32 as u32 & 0xff);
    process::exit_thread(k, status, true)
}

/// getpid(2)
pub fn getpid(k: &mut Kernel, _a: [u64; 6]) -> i64 {
    i64::from(k.procs[cur()].pid)
}

/// getppid(2): the parent's pid (lwk-vmm's parent for the first process).
pub fn getppid(k: &mut Kernel, _a: [u64; 6]) -> i64 {
    i64::from(k.procs[cur()].ppid)
}

/// The process `pid` names (0: the caller).
fn target(k: &Kernel, pid: u64) -> Result<usize, i64> {
    match pid as i32 {
        0 => Ok(cur()),
        p if p < 0 => Err(-EINVAL),
        p => k.procs.by_pid(p as u32).ok_or(-ESRCH),
    }
}

/// getpgid(2)
pub fn getpgid(k: &mut Kernel, a: [u64; 6]) -> i64 {
    match target(k, a[0]) {
        Ok(p) => i64::from(k.procs[p].pgid),
        Err(_) => -ESRCH,
    }
}

/// getsid(2)
pub fn getsid(k: &mut Kernel, a: [u64; 6]) -> i64 {
    match target(k, a[0]) {
        Ok(p) => i64::from(k.procs[p].sid),
        Err(_) => -ESRCH,
    }
}

/// setpgid(2), by Linux's rules: the caller or a child of it (EACCES once the child exec'd,
/// EPERM in another session); a session leader cannot move (EPERM); the group must be the
/// process's own (`pgid` 0 or its pid) or an existing group of the same session (EPERM).
pub fn setpgid(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let me = cur();
    let pgid = a[1] as i32;
    if pgid < 0 {
        return -EINVAL;
    }
    let p = match target(k, a[0]) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if p != me {
        if !process::is_child(k, me, p) || k.procs[p].life != process::Life::Live {
            return -ESRCH;
        }
        if k.procs[p].sid != k.procs[me].sid {
            return -EPERM;
        }
        if k.procs[p].execed {
            return -EACCES;
        }
    }
    let (pid, sid) = (k.procs[p].pid, k.procs[p].sid);
    let want = if pgid == 0 { pid } else { pgid as u32 };
    if sid == pid {
        return -EPERM;
    }
    if want != pid
        && !k
            .procs
            .iter()
            .any(|(_, q)| q.pgid == want && q.sid == sid && q.life == process::Life::Live)
    {
        return -EPERM;
    }
    k.procs[p].pgid = want;
    crate::procinfo::publish(k, p);
    0
}

/// setsid(2): a new session and group led by the caller, unless a group with its pid exists.
pub fn setsid(k: &mut Kernel) -> i64 {
    let me = cur();
    let pid = k.procs[me].pid;
    if k.procs.group_exists(pid) {
        return -EPERM;
    }
    let p = &mut k.procs[me];
    p.sid = pid;
    p.pgid = pid;
    crate::procinfo::publish(k, me);
    i64::from(pid)
}

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WEXITED: u64 = 4;
const WCONTINUED: u64 = 8;
const WNOWAIT: u64 = 0x0100_0000;
const WNOTHREAD: u64 = 0x2000_0000;
const WALL: u64 = 0x4000_0000;
const WCLONE: u64 = 0x8000_0000;

/// wait4(2). Stopped and continued children are never reported (no job control: SIGSTOP and
/// friends are ignored in the job), so WUNTRACED and WCONTINUED only wait for exits.
pub fn wait4(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    if a[2] & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0 {
        return -EINVAL;
    }
    let pid = a[0] as i32;
    let which = match pid {
        i32::MIN => return -ESRCH,
        -1 => Which::Any,
        0 => Which::Group(k.procs[cur()].pgid),
        p if p < 0 => Which::Group(p.unsigned_abs()),
        p => Which::Pid(p as u32),
    };
    match process::wait_child(k, which, a[2] & WNOHANG != 0, false) {
        Ok(Some(w)) => {
            // The status and rusage words are written after the reaping, as Linux does; a
            // bad pointer then loses them but not the child.
            if a[1] != 0
                && let Err(e) = put_user(k, a[1], &w.status.to_le_bytes())
            {
                return e;
            }
            if a[3] != 0
                && let Err(e) = put_user(k, a[3], &[0u8; 144])
            {
                return e;
            }
            i64::from(w.pid)
        }
        Ok(None) => 0,
        Err(e) => e,
    }
}

/// waitid(2): as [`wait4`], after waitid's own argument checks; fills the `siginfo_t`.
pub fn waitid(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    const P_ALL: u64 = 0;
    const P_PID: u64 = 1;
    const P_PGID: u64 = 2;
    const P_PIDFD: u64 = 3;
    let (idtype, id, infop, options) = (a[0], a[1] as i32, a[2], a[3]);
    if options & !(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL | WCLONE)
        != 0
        || options & (WEXITED | WUNTRACED | WCONTINUED) == 0
        || idtype > P_PIDFD
        || (idtype == P_PID && id <= 0)
        || ((idtype == P_PGID || idtype == P_PIDFD) && id < 0)
    {
        return -EINVAL;
    }
    let which = match idtype {
        P_ALL => Which::Any,
        P_PID => Which::Pid(id as u32),
        P_PGID if id == 0 => Which::Group(k.procs[cur()].pgid),
        P_PGID => Which::Group(id as u32),
        // No pidfd can exist in the job: whatever the fd is, it is not one.
        _ => return -EBADF,
    };
    if options & WEXITED == 0 {
        // Only stops or continues were asked for, and the job has neither.
        return if options & WNOHANG != 0 { 0 } else { -ECHILD };
    }
    let keep = options & WNOWAIT != 0;
    let mut info = [0u8; 128];
    let r = match process::wait_child(k, which, options & WNOHANG != 0, keep) {
        Ok(Some(w)) => {
            let (code, value) = process::cld_code(w.status);
            info[0..4].copy_from_slice(&17u32.to_le_bytes()); // SIGCHLD
            info[8..12].copy_from_slice(&code.to_le_bytes());
            info[16..20].copy_from_slice(&w.pid.to_le_bytes());
            info[20..24].copy_from_slice(&w.uid.to_le_bytes());
            info[24..28].copy_from_slice(&value.to_le_bytes());
            0
        }
        // WNOHANG without a child that ended: a zeroed siginfo (si_pid 0).
        Ok(None) => 0,
        Err(e) => return e,
    };
    if infop != 0
        && let Err(e) = put_user(k, infop, &info)
    {
        return e;
    }
    r
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_CHILD_SUBREAPER: u64 = 36;
const PR_GET_CHILD_SUBREAPER: u64 = 37;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;

/// prctl(2): names, the parent-death signal, child subreapers; dumpable and no_new_privs are
/// recorded answers (the job never changes credentials). Other options: EINVAL, as Linux
/// answers options it does not know.
pub fn prctl(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let me = cur();
    match a[0] {
        PR_SET_PDEATHSIG => {
            if a[1] > 64 {
                return -EINVAL;
            }
            k.procs[me].pdeath_signal = a[1] as u32;
            0
        }
        PR_GET_PDEATHSIG => {
            let s = k.procs[me].pdeath_signal;
            ret(put_user(k, a[1], &s.to_le_bytes()).map(|()| 0))
        }
        PR_SET_NAME => {
            let mut name = [0u8; 16];
            // Up to 16 bytes, stopping at an unmapped page like strncpy_from_user.
            let mut n = 0;
            while n < 16 {
                if get_user(k, a[1].wrapping_add(n as u64), &mut name[n..n + 1]).is_err() {
                    if n == 0 {
                        return -EFAULT;
                    }
                    break;
                }
                if name[n] == 0 {
                    break;
                }
                n += 1;
            }
            process::set_comm(k, &name[..n.min(15)]);
            0
        }
        PR_GET_NAME => {
            let comm = k.procs[me].comm;
            ret(put_user(k, a[1], &comm).map(|()| 0))
        }
        PR_SET_CHILD_SUBREAPER => {
            k.procs[me].subreaper = a[1] != 0;
            0
        }
        PR_GET_CHILD_SUBREAPER => {
            let v = u32::from(k.procs[me].subreaper);
            ret(put_user(k, a[1], &v.to_le_bytes()).map(|()| 0))
        }
        PR_GET_DUMPABLE => 1,
        PR_SET_DUMPABLE => {
            if a[1] > 1 {
                -EINVAL
            } else {
                0
            }
        }
        PR_SET_NO_NEW_PRIVS => {
            if a[1] != 1 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
                -EINVAL
            } else {
                0
            }
        }
        PR_GET_NO_NEW_PRIVS => 0,
        _ => -EINVAL,
    }
}

fn ret(r: Result<i64, i64>) -> i64 {
    match r {
        Ok(v) | Err(v) => v,
    }
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
    let p = match target(k, a[0]) {
        Ok(p) => p,
        Err(_) => return -ESRCH,
    };
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
        && let Err(e) = put_user(k, a[3], &limits_bytes(k.procs[p].rlimits[resource]))
    {
        return e;
    }
    if let Some(l) = new {
        k.procs[p].rlimits[resource] = l;
    }
    0
}

/// getrlimit(2)
pub fn getrlimit(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let resource = a[0] as u32 as usize;
    if resource >= RLIMIT_COUNT {
        return -EINVAL;
    }
    match put_user(
        k,
        a[1],
        &limits_bytes(k.procs[crate::process::cur()].rlimits[resource]),
    ) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// sysinfo(2): the job's machine as the LWK sees it — uptime from the host's monotonic clock
/// (as natively), guest RAM for programs (`totalram`; `freeram` what is not handed out, the
/// page cache included: it is given back when a program needs the memory), no
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
