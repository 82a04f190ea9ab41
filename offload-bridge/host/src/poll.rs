//! Readiness: poll, ppoll, select, pselect6, epoll_create(1), epoll_ctl, epoll_wait,
//! epoll_pwait, epoll_pwait2.
//!
//! Guest fd numbers are translated to host fds on the way in and results mapped back: a
//! pollfd naming no guest fd gets POLLNVAL (as on Linux), select sets are served by one host
//! ppoll over the translated fds (host fd numbers may exceed FD_SETSIZE), and epoll keeps
//! the guest's 64-bit event data opaque, so the host kernel hands back exactly what the
//! guest registered. Signal masks are accepted and ignored: the LWK has no signals yet
//! (issue #7). Waiting blocks the serving thread (see the crate documentation).

use crate::Proc;
use crate::guest_mem::GuestRange;
use crate::{Call, Errno, SysResult, sys};
use offload_abi::errno::{EBADF, EINVAL};
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use vm_memory::GuestMemoryBackend;

const POLLIN: i16 = 0x001;
const POLLPRI: i16 = 0x002;
const POLLOUT: i16 = 0x004;
const POLLERR: i16 = 0x008;
const POLLHUP: i16 = 0x010;
const POLLNVAL: i16 = 0x020;
const POLLRDNORM: i16 = 0x040;
const POLLRDBAND: i16 = 0x080;
const POLLWRNORM: i16 = 0x100;
const POLLWRBAND: i16 = 0x200;
/// What select counts as readable, writable, exceptional (fs/select.c).
const IN_SET: i16 = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR;
const OUT_SET: i16 = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR;
const EX_SET: i16 = POLLPRI;
/// Largest epoll_wait batch served at once (fewer events is always a valid answer).
const EPOLL_BATCH: usize = 1024;
const EPOLL_CLOEXEC: u64 = libc::EPOLL_CLOEXEC as u64;
const EPOLL_CTL_DEL: i32 = 2;

/// Reads a `timespec` (NULL: wait forever), checked as Linux does.
fn read_timespec<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    addr: u64,
) -> Result<Option<sys::Timespec>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let raw = c.mem.read_array::<16>(addr)?;
    let (sec, nsec) = split_pair(&raw);
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(Errno(EINVAL));
    }
    Ok(Some(sys::Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }))
}

fn split_pair(raw: &[u8; 16]) -> (i64, i64) {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(raw.get(..8).unwrap_or(&[0; 8]));
    b.copy_from_slice(raw.get(8..).unwrap_or(&[0; 8]));
    (i64::from_le_bytes(a), i64::from_le_bytes(b))
}

fn pair_bytes(a: i64, b: i64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&b.to_le_bytes());
    out
}

/// A millisecond timeout as a timespec (negative: wait forever).
fn ms_timeout(ms: i32) -> Option<sys::Timespec> {
    (ms >= 0).then(|| sys::Timespec {
        tv_sec: i64::from(ms / 1000),
        tv_nsec: i64::from(ms % 1000) * 1_000_000,
    })
}

/// Checks a sigset argument (ignored until the LWK has signals): a mask needs
/// `sigsetsize == 8`.
fn check_sigset(mask: u64, size: u64) -> Result<(), Errno> {
    if mask != 0 && size != 8 {
        return Err(Errno(EINVAL));
    }
    Ok(())
}

/// poll(2)
pub(crate) fn poll<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let mut timeout = ms_timeout(c.args[2] as i32);
    do_poll(s, c, &mut timeout)
}

/// ppoll(2): the time left is written back, as Linux does.
pub(crate) fn ppoll<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    check_sigset(c.args[3], c.args[4])?;
    let mut timeout = read_timespec(c, c.args[2])?;
    let r = do_poll(s, c, &mut timeout)?;
    if let Some(t) = timeout {
        // Linux ignores a failure to write the time left.
        let _ = c.mem.write_at(c.args[2], &pair_bytes(t.tv_sec, t.tv_nsec));
    }
    Ok(r)
}

fn do_poll<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    timeout: &mut Option<sys::Timespec>,
) -> SysResult {
    let nfds = c.args[1] as u32;
    if u64::from(nfds) > s.fds.limit() {
        return Err(Errno(EINVAL));
    }
    let len = u64::from(nfds) * 8;
    let mut raw = c.mem.read(GuestRange::new(c.args[0], len))?;
    c.mem.check_writable(GuestRange::new(c.args[0], len))?;
    let mut host = Vec::with_capacity(nfds as usize);
    let mut invalid = vec![false; nfds as usize];
    // The host fds stay held until ppoll returns: a guest close on another vCPU meanwhile must
    // not let the number name some other host fd under the poll (see `fdtable::HostFd`).
    let mut held = Vec::new();
    for (i, p) in raw.chunks_exact(8).enumerate() {
        let mut e = [0u8; 8];
        e.copy_from_slice(p);
        let fd = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let events = i16::from_le_bytes([e[4], e[5]]);
        let hfd = if fd < 0 {
            -1
        } else {
            match s.fds.get(fd as u64) {
                Ok(h) => {
                    let raw = h.as_raw_fd();
                    held.push(h);
                    raw
                }
                Err(_) => {
                    if let Some(v) = invalid.get_mut(i) {
                        *v = true;
                    }
                    -1
                }
            }
        };
        host.push(libc::pollfd {
            fd: hfd,
            events,
            revents: 0,
        });
    }
    let nval = invalid.iter().filter(|&&v| v).count();
    if nval > 0 {
        // Linux answers at once when any entry is already ready (POLLNVAL counts).
        *timeout = Some(sys::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        });
    }
    sys::ppoll(&mut host, timeout)?;
    let mut ready = 0i64;
    for ((p, h), bad) in raw.chunks_exact_mut(8).zip(&host).zip(&invalid) {
        let revents = if *bad { POLLNVAL } else { h.revents };
        if revents != 0 {
            ready += 1;
        }
        if let Some(slot) = p.get_mut(6..8) {
            slot.copy_from_slice(&revents.to_le_bytes());
        }
    }
    c.mem
        .write(GuestRange::new(c.args[0], raw.len() as u64), &raw)?;
    Ok(ready)
}

/// select(2): the time left is written back, as Linux does.
pub(crate) fn select<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let mut timeout = if c.args[4] == 0 {
        None
    } else {
        let raw = c.mem.read_array::<16>(c.args[4])?;
        let (sec, usec) = split_pair(&raw);
        if sec < 0 || !(0..1_000_000).contains(&usec) {
            return Err(Errno(EINVAL));
        }
        Some(sys::Timespec {
            tv_sec: sec,
            tv_nsec: usec * 1000,
        })
    };
    let r = do_select(s, c, &mut timeout)?;
    if let Some(t) = timeout {
        let _ = c
            .mem
            .write_at(c.args[4], &pair_bytes(t.tv_sec, t.tv_nsec / 1000));
    }
    Ok(r)
}

/// pselect6(2): the sixth argument points to `{sigset *, size}`.
pub(crate) fn pselect6<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    if c.args[5] != 0 {
        let raw = c.mem.read_array::<16>(c.args[5])?;
        let (mask, size) = split_pair(&raw);
        check_sigset(mask as u64, size as u64)?;
    }
    let mut timeout = read_timespec(c, c.args[4])?;
    let r = do_select(s, c, &mut timeout)?;
    if let Some(t) = timeout {
        let _ = c.mem.write_at(c.args[4], &pair_bytes(t.tv_sec, t.tv_nsec));
    }
    Ok(r)
}

fn do_select<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    timeout: &mut Option<sys::Timespec>,
) -> SysResult {
    let nfds = c.args[0] as i32;
    if nfds < 0 {
        return Err(Errno(EINVAL));
    }
    // Linux cuts nfds down to the size of the fd table (at least 64 slots); every set bit
    // below that must name an open fd.
    let nfds = (nfds as u64).min(s.fds.limit().max(64)) as usize;
    let bytes = nfds.div_ceil(64) * 8;
    let read_set = |addr: u64| -> Result<Option<Vec<u8>>, Errno> {
        if addr == 0 {
            return Ok(None);
        }
        let v = c.mem.read(GuestRange::new(addr, bytes as u64))?;
        c.mem.check_writable(GuestRange::new(addr, bytes as u64))?;
        Ok(Some(v))
    };
    let (rs, ws, es) = (
        read_set(c.args[1])?,
        read_set(c.args[2])?,
        read_set(c.args[3])?,
    );
    let bit = |set: &Option<Vec<u8>>, fd: usize| {
        set.as_ref()
            .and_then(|v| v.get(fd / 8))
            .is_some_and(|b| b & (1 << (fd % 8)) != 0)
    };
    let mut host = Vec::new();
    let mut which = Vec::new();
    // Held until ppoll returns (as in `do_poll`).
    let mut held = Vec::new();
    for fd in 0..nfds {
        let want = [bit(&rs, fd), bit(&ws, fd), bit(&es, fd)];
        if !want.iter().any(|&w| w) {
            continue;
        }
        let h_held = s.fds.get(fd as u64).map_err(|_| Errno(EBADF))?;
        let h = h_held.as_raw_fd();
        held.push(h_held);
        let mut events = 0;
        for (w, ev) in want.iter().zip([
            POLLIN | POLLRDNORM | POLLRDBAND,
            POLLOUT | POLLWRNORM | POLLWRBAND,
            POLLPRI,
        ]) {
            if *w {
                events |= ev;
            }
        }
        host.push(libc::pollfd {
            fd: h,
            events,
            revents: 0,
        });
        which.push((fd, want));
    }
    sys::ppoll(&mut host, timeout)?;
    let (mut ro, mut wo, mut eo) = (vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]);
    let mut ready = 0i64;
    for (h, (fd, want)) in host.iter().zip(which) {
        let outs = [&mut ro, &mut wo, &mut eo];
        for ((mask, w), out) in [IN_SET, OUT_SET, EX_SET].into_iter().zip(want).zip(outs) {
            if w && h.revents & mask != 0 {
                if let Some(b) = out.get_mut(fd / 8) {
                    *b |= 1 << (fd % 8);
                }
                ready += 1;
            }
        }
    }
    for (addr, set, out) in [
        (c.args[1], &rs, &ro),
        (c.args[2], &ws, &wo),
        (c.args[3], &es, &eo),
    ] {
        if set.is_some() {
            c.mem.write_at(addr, out)?;
        }
    }
    Ok(ready)
}

/// epoll_create(2)
pub(crate) fn epoll_create<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    if (c.args[0] as i32) <= 0 {
        return Err(Errno(EINVAL));
    }
    Ok(i64::from(s.fds.insert(sys::epoll_create()?, false)?))
}

/// epoll_create1(2)
pub(crate) fn epoll_create1<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = u64::from(c.args[0] as u32);
    if flags & !EPOLL_CLOEXEC != 0 {
        return Err(Errno(EINVAL));
    }
    Ok(i64::from(s.fds.insert(sys::epoll_create()?, flags != 0)?))
}

/// epoll_ctl(2): the fd is translated; the event's data stays the guest's.
pub(crate) fn epoll_ctl<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let op = c.args[1] as i32;
    let event = if op == EPOLL_CTL_DEL {
        None
    } else {
        Some(c.mem.read_array::<{ sys::EPOLL_EVENT_SIZE }>(c.args[3])?)
    };
    let epfd_held = s.fds.get(c.args[0])?;
    let epfd = epfd_held.as_fd();
    let fd_held = s.fds.get(c.args[2])?;
    let fd = fd_held.as_fd();
    sys::epoll_ctl(epfd, op, fd, event)?;
    Ok(0)
}

/// epoll_wait(2)
pub(crate) fn epoll_wait<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_epoll_wait(s, c, ms_timeout(c.args[3] as i32))
}

/// epoll_pwait(2)
pub(crate) fn epoll_pwait<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    check_sigset(c.args[4], c.args[5])?;
    do_epoll_wait(s, c, ms_timeout(c.args[3] as i32))
}

/// epoll_pwait2(2)
pub(crate) fn epoll_pwait2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    check_sigset(c.args[4], c.args[5])?;
    let timeout = read_timespec(c, c.args[3])?;
    do_epoll_wait(s, c, timeout)
}

fn do_epoll_wait<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    timeout: Option<sys::Timespec>,
) -> SysResult {
    let max = c.args[2] as i32;
    if max <= 0 || max as usize > i32::MAX as usize / sys::EPOLL_EVENT_SIZE {
        return Err(Errno(EINVAL));
    }
    let epfd_held = s.fds.get(c.args[0])?;
    let epfd = epfd_held.as_fd();
    let max = (max as usize).min(EPOLL_BATCH);
    let dest = GuestRange::new(c.args[1], (max * sys::EPOLL_EVENT_SIZE) as u64);
    c.mem.check_writable(dest)?;
    let events = sys::epoll_wait(epfd, max, timeout)?;
    let bytes: Vec<u8> = events.iter().flatten().copied().collect();
    c.mem.write(dest, &bytes)?;
    Ok(events.len() as i64)
}

/// How to run a call that must not wait ([`offload_abi::req_flags::NO_BLOCK`]: a signal is
/// pending), as Linux's completes with a signal pending only if it need not sleep.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoWait {
    /// As it is: it cannot wait (its fd is ready, in error or not the caller's, non-blocking,
    /// MSG_DONTWAIT, LOCK_NB, LOCK_UN, SPLICE_F_NONBLOCK, a zero timeout).
    Run,
    /// With these arguments, which cannot wait (a zero timeout, LOCK_NB, MSG_DONTWAIT); the
    /// result `waited` means it would have waited.
    Try { args: [u64; 6], waited: i64 },
    /// Not at all: it would wait (answer the restart code).
    Wait,
}

/// How offloaded call `number` of a caller with fd table `fds` runs without waiting. The poll
/// family with a timeout in memory (ppoll, select, pselect6, epoll_pwait2) and a blocking
/// connect count as waiting; a read or write on a blocking fd runs when the fd is ready (a
/// write larger than the room left in a pipe then waits for the rest, interruptible by the
/// next signal, where Linux would stop after what fits).
pub(crate) fn no_wait(fds: &crate::fdtable::FdTable, number: u64, a: [u64; 6]) -> NoWait {
    use offload_abi::errno::EAGAIN;
    // flock's "would block" is EWOULDBLOCK, the same number as EAGAIN.
    const EWOULDBLOCK: i64 = EAGAIN;
    use offload_abi::syscalls::nr;
    const MSG_DONTWAIT: u64 = 0x40;
    const LOCK_NB: u64 = 4;
    const LOCK_UN: u64 = 8;
    const SPLICE_F_NONBLOCK: u64 = 2;
    // None: not an fd of the caller (the call fails by itself without waiting).
    let nonblocking = |fd: u64| {
        let host = fds.get(fd).ok()?;
        let fl = sys::fcntl_int(host.as_fd(), libc::F_GETFL, 0).ok()?;
        Some((host, fl & i64::from(libc::O_NONBLOCK) != 0))
    };
    let ready = |fd: u64, events: i16| match nonblocking(fd) {
        None | Some((_, true)) => true,
        Some((host, false)) => {
            let mut p = [libc::pollfd {
                fd: host.as_raw_fd(),
                events,
                revents: 0,
            }];
            let mut now = Some(libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            });
            sys::ppoll(&mut p, &mut now).map_or(true, |n| n > 0)
        }
    };
    let when = |ok: bool| if ok { NoWait::Run } else { NoWait::Wait };
    // A socket call on a blocking fd tries once with MSG_DONTWAIT in its flags argument
    // (`flags`, which `set` marks).
    let dontwait = |flags: u64, set: fn(&mut [u64; 6])| {
        if flags & MSG_DONTWAIT != 0 || nonblocking(a[0]).is_none_or(|(_, nb)| nb) {
            return NoWait::Run;
        }
        let mut args = a;
        set(&mut args);
        NoWait::Try {
            args,
            waited: -EAGAIN,
        }
    };
    // A timeout argument (`timeout`, which `clear` zeroes) is tried as 0: nothing ready means
    // the call would have waited.
    let zero_timeout = |timeout: u64, clear: fn(&mut [u64; 6])| {
        if timeout as i32 == 0 {
            return NoWait::Run;
        }
        let mut args = a;
        clear(&mut args);
        NoWait::Try { args, waited: 0 }
    };
    match number {
        nr::read | nr::readv | nr::accept | nr::accept4 => when(ready(a[0], POLLIN)),
        nr::write | nr::writev => when(ready(a[0], POLLOUT)),
        nr::recvfrom | nr::recvmmsg | nr::sendto | nr::sendmmsg => {
            dontwait(a[3], |x| x[3] |= MSG_DONTWAIT)
        }
        nr::recvmsg | nr::sendmsg => dontwait(a[2], |x| x[2] |= MSG_DONTWAIT),
        nr::splice => {
            when(a[5] & SPLICE_F_NONBLOCK != 0 || (ready(a[0], POLLIN) && ready(a[2], POLLOUT)))
        }
        nr::tee => {
            when(a[3] & SPLICE_F_NONBLOCK != 0 || (ready(a[0], POLLIN) && ready(a[1], POLLOUT)))
        }
        nr::connect => when(nonblocking(a[0]).is_none_or(|(_, nb)| nb)),
        nr::flock if a[1] & (LOCK_NB | LOCK_UN) == 0 => NoWait::Try {
            args: [a[0], a[1] | LOCK_NB, a[2], a[3], a[4], a[5]],
            waited: -EWOULDBLOCK,
        },
        nr::flock => NoWait::Run,
        nr::poll => zero_timeout(a[2], |x| x[2] = 0),
        nr::epoll_wait | nr::epoll_pwait => zero_timeout(a[3], |x| x[3] = 0),
        _ => NoWait::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::{NoWait, no_wait};
    use crate::fdtable::FdTable;
    use offload_abi::errno::{EAGAIN, ERESTARTNOHAND, ERESTARTSYS};
    const EWOULDBLOCK: i64 = EAGAIN;
    use offload_abi::syscalls::{nr, restart_code};
    use std::os::fd::{FromRawFd, OwnedFd};

    fn pipe(flags: i32) -> (OwnedFd, OwnedFd) {
        let mut p = [0i32; 2];
        // SAFETY: `p` is writable for two ints.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), flags) }, 0);
        // SAFETY: pipe2 just returned these two fds, owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
    }

    #[test]
    fn a_call_with_a_signal_pending_waits_only_when_it_would_block() {
        let fds = FdTable::new(64);
        let (r, w) = pipe(0);
        let w_dup = w.try_clone().unwrap();
        let rfd = fds.insert(r, false).unwrap() as u64;
        let wfd = fds.insert(w, false).unwrap() as u64;
        let args = |fd: u64| [fd, 0, 1, 0, 0, 0];
        assert_eq!(
            no_wait(&fds, nr::read, args(rfd)),
            NoWait::Wait,
            "empty pipe"
        );
        assert_eq!(no_wait(&fds, nr::write, args(wfd)), NoWait::Run, "room");
        assert_eq!(
            no_wait(&fds, nr::read, args(99)),
            NoWait::Run,
            "fails at once"
        );
        let mut dontwait = args(rfd);
        dontwait[3] = 0x40;
        assert_eq!(no_wait(&fds, nr::recvfrom, dontwait), NoWait::Run);
        let mut tried = args(rfd);
        tried[3] = 0x40;
        assert_eq!(
            no_wait(&fds, nr::recvfrom, args(rfd)),
            NoWait::Try {
                args: tried,
                waited: -EAGAIN
            },
            "a blocking socket call tries once with MSG_DONTWAIT"
        );
        let mut w_file = std::fs::File::from(w_dup);
        std::io::Write::write_all(&mut w_file, b"x").unwrap();
        assert_eq!(no_wait(&fds, nr::read, args(rfd)), NoWait::Run, "data");
        let (nb, _nbw) = pipe(libc::O_NONBLOCK);
        let nbfd = fds.insert(nb, false).unwrap() as u64;
        assert_eq!(
            no_wait(&fds, nr::read, args(nbfd)),
            NoWait::Run,
            "O_NONBLOCK"
        );
        assert_eq!(no_wait(&fds, nr::recvmsg, args(nbfd)), NoWait::Run);
        assert_eq!(
            no_wait(&fds, nr::flock, [rfd, 2 | 4, 0, 0, 0, 0]),
            NoWait::Run
        );
        assert_eq!(
            no_wait(&fds, nr::flock, [rfd, 2, 0, 0, 0, 0]),
            NoWait::Try {
                args: [rfd, 2 | 4, 0, 0, 0, 0],
                waited: -EWOULDBLOCK
            }
        );
        assert_eq!(no_wait(&fds, nr::poll, [0, 1, 0, 0, 0, 0]), NoWait::Run);
        assert_eq!(
            no_wait(&fds, nr::poll, [0, 1, (-1i64) as u64, 0, 0, 0]),
            NoWait::Try {
                args: [0, 1, 0, 0, 0, 0],
                waited: 0
            },
            "poll looks once"
        );
        assert_eq!(no_wait(&fds, nr::ppoll, [0; 6]), NoWait::Wait);
        assert_eq!(restart_code(nr::read), -ERESTARTSYS);
        assert_eq!(restart_code(nr::epoll_wait), -ERESTARTNOHAND);
    }
}
