//! Signal syscalls (local): sigaction, masks, pending sets, waiting, sending, sigaltstack.
//! The machinery (frames, delivery, the trampoline) is in `crate::signal`.

use super::{get_user, put_user};
use crate::arch::{self, TrapFrame};
use crate::sched::block;
use crate::signal::{
    self, Action, ERESTARTNOHAND, Info, MINSIGSTKSZ, SIG_IGN, SS_AUTODISARM, SS_DISABLE,
    SS_ONSTACK, UNBLOCKABLE, bit, code, sig,
};
use crate::{Kernel, KernelGuard};
use offload_abi::errno::{EAGAIN, EFAULT, EINTR, EINVAL, ENOMEM, EPERM, ESRCH};

fn ret(r: Result<i64, i64>) -> i64 {
    match r {
        Ok(v) | Err(v) => v,
    }
}

fn read_u64(k: &Kernel, va: u64) -> Result<u64, i64> {
    let mut b = [0u8; 8];
    get_user(k, va, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn uid(k: &Kernel) -> u32 {
    k.info.ids[0]
}

/// rt_sigaction(2).
pub fn rt_sigaction(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let (s, act, oact, size) = (a[0] as i32 as i64 as u64, a[1], a[2], a[3]);
    if size != 8 || !(1..=64).contains(&s) {
        return -EINVAL;
    }
    let s = s as u32;
    if act != 0 && (s == sig::SIGKILL || s == sig::SIGSTOP) {
        return -EINVAL;
    }
    let new = if act != 0 {
        let mut b = [0u8; 32];
        if let Err(e) = get_user(k, act, &mut b) {
            return e;
        }
        let f = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Some(Action {
            handler: f(0),
            flags: f(1),
            restorer: f(2),
            mask: f(3) & !UNBLOCKABLE,
        })
    } else {
        None
    };
    let old = k.procs[crate::process::cur()].sig.actions[(s - 1) as usize];
    if oact != 0 {
        let mut b = [0u8; 32];
        for (i, v) in [old.handler, old.flags, old.restorer, old.mask]
            .iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        if let Err(e) = put_user(k, oact, &b) {
            return e;
        }
    }
    if let Some(n) = new {
        let t = &mut k.procs[crate::process::cur()].sig;
        t.actions[(s - 1) as usize] = n;
        // Setting a signal to ignored discards what is pending of it (POSIX, Linux).
        let dfl_ignored = n.handler == 0
            && matches!(s, sig::SIGCHLD | sig::SIGURG | sig::SIGWINCH | sig::SIGCONT);
        if n.handler == SIG_IGN || dfl_ignored {
            t.pending &= !bit(s);
            for th in t.threads.iter_mut() {
                th.pending &= !bit(s);
            }
            signal::flush_queued(t, Some(s), None);
        }
        signal::update_interrupting(k);
    }
    0
}

/// rt_sigprocmask(2).
pub fn rt_sigprocmask(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let (how, set, oset, size) = (a[0] as i32, a[1], a[2], a[3]);
    if size != 8 {
        return -EINVAL;
    }
    let slot = arch::current_slot();
    let old = k.procs[crate::process::cur()].sig.threads[slot].mask;
    let new = if set != 0 {
        let v = match read_u64(k, set) {
            Ok(v) => v,
            Err(e) => return e,
        };
        Some(match how {
            0 => old | v,
            1 => old & !v,
            2 => v,
            _ => return -EINVAL,
        })
    } else {
        None
    };
    if oset != 0
        && let Err(e) = put_user(k, oset, &old.to_le_bytes())
    {
        return e;
    }
    if let Some(m) = new {
        signal::set_mask(k, slot, m);
        signal::update_interrupting(k);
    }
    0
}

/// rt_sigpending(2).
pub fn rt_sigpending(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let size = a[1];
    if size > 8 {
        return -EINVAL;
    }
    let slot = arch::current_slot();
    let t = &k.procs[crate::process::cur()].sig;
    let v = (t.threads[slot].pending | t.pending) & t.threads[slot].mask;
    ret(put_user(k, a[0], &v.to_le_bytes()[..size as usize]).map(|()| 0))
}

/// sigaltstack(2); `rsp` is the caller's stack pointer.
pub fn sigaltstack(k: &mut Kernel, a: [u64; 6], rsp: u64) -> i64 {
    let slot = arch::current_slot();
    let th = k.procs[crate::process::cur()].sig.threads[slot];
    let new = if a[0] != 0 {
        let mut b = [0u8; 24];
        if let Err(e) = get_user(k, a[0], &mut b) {
            return e;
        }
        let f = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Some((f(0), f(1) & 0xffff_ffff, f(2)))
    } else {
        None
    };
    if a[1] != 0 {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&th.alt_sp.to_le_bytes());
        b[8..16].copy_from_slice(&signal::altstack_flags(&th, rsp).to_le_bytes());
        b[16..24].copy_from_slice(&th.alt_size.to_le_bytes());
        if let Err(e) = put_user(k, a[1], &b) {
            return e;
        }
    }
    if let Some((sp, flags, size)) = new {
        if signal::altstack_flags(&th, rsp) == SS_ONSTACK {
            return -EPERM;
        }
        let mode = flags & !SS_AUTODISARM;
        if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
            return -EINVAL;
        }
        let t = &mut k.procs[crate::process::cur()].sig.threads[slot];
        if mode == SS_DISABLE {
            t.alt_sp = 0;
            t.alt_size = 0;
            t.alt_flags = SS_DISABLE;
        } else {
            if size < MINSIGSTKSZ {
                return -ENOMEM;
            }
            t.alt_sp = sp;
            t.alt_size = size;
            t.alt_flags = flags & SS_AUTODISARM;
        }
    }
    0
}

/// Halts until the thread has a signal it does not block.
fn wait_signal(k: &mut KernelGuard, slot: usize) {
    while !signal::interrupted(k, slot) {
        k.sched.slots[slot].woken = false;
        block(k, None);
    }
}

/// pause(2).
pub fn pause(k: &mut KernelGuard) -> i64 {
    let slot = arch::current_slot();
    wait_signal(k, slot);
    -ERESTARTNOHAND
}

/// rt_sigsuspend(2).
pub fn rt_sigsuspend(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    if a[1] != 8 {
        return -EINVAL;
    }
    let m = match read_u64(k, a[0]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let slot = arch::current_slot();
    let old = k.procs[crate::process::cur()].sig.threads[slot].mask;
    {
        let th = &mut k.procs[crate::process::cur()].sig.threads[slot];
        th.saved_mask = old;
        th.has_saved = 1;
    }
    signal::set_mask(k, slot, m);
    wait_signal(k, slot);
    -ERESTARTNOHAND
}

/// rt_sigtimedwait(2).
pub fn rt_sigtimedwait(k: &mut KernelGuard, a: [u64; 6]) -> i64 {
    let (set, uinfo, ts, size) = (a[0], a[1], a[2], a[3]);
    if size != 8 {
        return -EINVAL;
    }
    let want = match read_u64(k, set) {
        Ok(v) => v & !UNBLOCKABLE,
        Err(e) => return e,
    };
    let deadline = if ts != 0 {
        let mut b = [0u8; 16];
        if let Err(e) = get_user(k, ts, &mut b) {
            return e;
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[..8]);
        let sec = i64::from_le_bytes(w);
        w.copy_from_slice(&b[8..]);
        let nsec = i64::from_le_bytes(w);
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return -EINVAL;
        }
        let ns = (sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(nsec as u64);
        let now = k.clock.monotonic_ns();
        Some(k.clock.tsc_at_monotonic(now.saturating_add(ns)))
    } else {
        None
    };
    let slot = arch::current_slot();
    k.procs[crate::process::cur()].sig.threads[slot].waitset = want;
    let got = loop {
        if let Some(g) = signal::dequeue(k, slot, want) {
            break Ok(g);
        }
        if signal::interrupted(k, slot) {
            break Err(-EINTR);
        }
        k.sched.slots[slot].woken = false;
        if !block(k, deadline) {
            break Err(-EAGAIN);
        }
    };
    k.procs[crate::process::cur()].sig.threads[slot].waitset = 0;
    let (s, info) = match got {
        Ok(g) => g,
        Err(e) => return e,
    };
    if uinfo != 0 {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&s.to_le_bytes());
        b[8..12].copy_from_slice(&info.code.to_le_bytes());
        b[16..24].copy_from_slice(&info.a.to_le_bytes());
        b[24..32].copy_from_slice(&info.b.to_le_bytes());
        if put_user(k, uinfo, &b).is_err() {
            return -EFAULT;
        }
    }
    i64::from(s)
}

/// The context of thread `tid` of this process.
fn thread_slot(k: &Kernel, tid: i32) -> Option<usize> {
    k.sched.slot_of(u32::try_from(tid).ok()?)
}

/// Validates a signal number for sending (0 = existence check only).
fn sendable(s: u64) -> Result<Option<u32>, i64> {
    let s = s as i32;
    if !(0..=64).contains(&s) {
        return Err(-EINVAL);
    }
    Ok(if s == 0 { None } else { Some(s as u32) })
}

/// kill(2): a process (`pid` > 0), the caller's group (0), every process but the caller and
/// the job's first process (-1), or group `-pid`. A zombie counts as existing.
pub fn kill(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let s = match sendable(a[1]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let me = crate::process::cur();
    let info = Info::user(code::SI_USER, k.procs[me].pid, uid(k));
    let pid = a[0] as i32;
    let n = match pid {
        i32::MIN => return -ESRCH,
        0 => {
            let g = k.procs[me].pgid;
            crate::process::signal_each(k, s, info, |_, p| p.pgid == g)
        }
        -1 => crate::process::signal_each(k, s, info, |i, _| i != me && i != 0),
        p if p < 0 => {
            let g = p.unsigned_abs();
            crate::process::signal_each(k, s, info, |_, p| p.pgid == g)
        }
        p => crate::process::signal_each(k, s, info, |_, x| x.pid == p as u32),
    };
    if n == 0 { -ESRCH } else { 0 }
}

/// tgkill(2) / tkill(2) (`tgid` < 0: tkill).
pub fn tgkill(k: &mut Kernel, tgid: i64, tid: i64, s: u64) -> i64 {
    let s = match sendable(s) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if tid as i32 <= 0 || (tgid >= 0 && tgid as i32 <= 0) {
        return -EINVAL;
    }
    let Some(slot) = thread_slot(k, tid as i32) else {
        return -ESRCH;
    };
    if tgid >= 0 && tgid as i32 != k.procs[crate::process::of(slot)].pid as i32 {
        return -ESRCH;
    }
    if let Some(s) = s {
        let info = Info::user(code::SI_TKILL, k.procs[crate::process::cur()].pid, uid(k));
        signal::send_thread(k, slot, s, info);
    }
    0
}

fn read_info(k: &Kernel, va: u64) -> Result<Info, i64> {
    let mut b = [0u8; 32];
    get_user(k, va, &mut b)?;
    let f = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let code = f(8) as u32 as i32;
    // A process may not pretend to be the kernel or kill(2) towards others; towards itself
    // Linux allows any code.
    Ok(Info {
        code,
        _pad: 0,
        a: f(16),
        b: f(24),
    })
}

/// rt_sigqueueinfo(2).
pub fn rt_sigqueueinfo(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let s = match sendable(a[1]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let info = match read_info(k, a[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let Some(p) = u32::try_from(a[0] as i32)
        .ok()
        .and_then(|pid| k.procs.by_pid(pid))
        .filter(|&p| k.procs[p].life == crate::process::Life::Live || s.is_none())
    else {
        return -ESRCH;
    };
    if let Some(s) = s {
        signal::send_process(k, p, s, info);
    }
    0
}

/// rt_tgsigqueueinfo(2).
pub fn rt_tgsigqueueinfo(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let s = match sendable(a[2]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let info = match read_info(k, a[3]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    if a[0] as i32 <= 0 || a[1] as i32 <= 0 {
        return -EINVAL;
    }
    let Some(slot) = thread_slot(k, a[1] as i32) else {
        return -ESRCH;
    };
    if a[0] as i32 != k.procs[crate::process::of(slot)].pid as i32 {
        return -ESRCH;
    }
    if let Some(s) = s {
        signal::send_thread(k, slot, s, info);
    }
    0
}

/// rt_sigreturn(2) (registers come from the frame, so the dispatcher does not set RAX).
pub fn rt_sigreturn(k: &mut Kernel, frame: &mut TrapFrame) {
    signal::rt_sigreturn(k, frame);
}
