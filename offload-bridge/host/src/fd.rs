//! Descriptor operations on the guest's fd table: close, close_range, dup, dup2, dup3, fcntl,
//! flock, and the calls that make new anonymous fds: pipe, pipe2, eventfd, eventfd2.

use crate::Proc;
use crate::guest_mem::{GuestRange, In, Out};
use crate::sys::{self, FLOCK_SIZE};
use crate::{Call, Errno, SysResult};
use offload_abi::errno::{EBADF, EINVAL};
use std::os::fd::{AsFd, OwnedFd};
use vm_memory::GuestMemoryBackend;

const F_DUPFD: i32 = 0;
const F_GETFD: i32 = 1;
const F_SETFD: i32 = 2;
const F_GETFL: i32 = 3;
const F_SETFL: i32 = 4;
const F_GETLK: i32 = 5;
const F_SETLK: i32 = 6;
const F_SETLKW: i32 = 7;
const F_OFD_GETLK: i32 = 36;
const F_OFD_SETLK: i32 = 37;
const F_OFD_SETLKW: i32 = 38;
const F_GETOWN: i32 = 9;
const F_DUPFD_CLOEXEC: i32 = 1030;
const F_SETPIPE_SZ: i32 = 1031;
const F_GETPIPE_SZ: i32 = 1032;
const F_ADD_SEALS: i32 = 1033;
const F_GET_SEALS: i32 = 1034;
const O_ASYNC: i64 = libc::O_ASYNC as i64;
const CLOSE_RANGE_UNSHARE: u64 = 2;
const CLOSE_RANGE_CLOEXEC: u64 = 4;
const FD_CLOEXEC: i64 = 1;
const O_CLOEXEC: u64 = libc::O_CLOEXEC as u64;

/// close(2)
pub(crate) fn close<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    drop(s.fds.remove(c.args[0])?);
    Ok(0)
}

/// dup(2)
pub(crate) fn dup<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let host = s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?;
    Ok(i64::from(s.fds.insert(host, false)?))
}

/// dup2(2)
pub(crate) fn dup2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let host = s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?;
    if c.args[0] as i32 == c.args[1] as i32 {
        return Ok(i64::from(c.args[1] as i32));
    }
    Ok(i64::from(s.fds.insert_at(c.args[1], host, false)?))
}

/// dup3(2)
pub(crate) fn dup3<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = u64::from(c.args[2] as u32);
    if flags & !O_CLOEXEC != 0 || c.args[0] as i32 == c.args[1] as i32 {
        return Err(Errno(EINVAL));
    }
    let host = s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?;
    Ok(i64::from(s.fds.insert_at(c.args[1], host, flags != 0)?))
}

/// fcntl(2): descriptor flags live in the guest table; status flags, locks and pipe sizes are
/// the host's.
pub(crate) fn fcntl<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let cmd = c.args[1] as i32;
    let arg = c.args[2];
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = arg as i32;
            if min < 0 {
                return Err(Errno(EINVAL));
            }
            let host = s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?;
            Ok(i64::from(s.fds.insert_from(
                host,
                cmd == F_DUPFD_CLOEXEC,
                min,
            )?))
        }
        F_GETFD => Ok(if s.fds.cloexec(c.args[0])? {
            FD_CLOEXEC
        } else {
            0
        }),
        F_SETFD => {
            s.fds
                .set_cloexec(c.args[0], (arg as i64) & FD_CLOEXEC != 0)?;
            Ok(0)
        }
        F_SETFL if i64::from(arg as i32) & O_ASYNC != 0 => {
            // SIGIO would be sent to the VMM process, not to the program (signals: issue #7).
            s.fds.get(c.args[0])?;
            Err(Errno(EINVAL))
        }
        F_GETOWN => {
            s.fds.get(c.args[0])?;
            Ok(0)
        }
        F_GETFL | F_SETFL | F_GETPIPE_SZ | F_SETPIPE_SZ | F_ADD_SEALS | F_GET_SEALS => {
            let fd_held = s.fds.get(c.args[0])?;
            let fd = fd_held.as_fd();
            Ok(sys::fcntl_int(fd, cmd, i64::from(arg as i32))?)
        }
        F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW => {
            let fd = s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?;
            let raw = c.mem.read(GuestRange::<In>::new(arg, FLOCK_SIZE as u64))?;
            let mut lock = [0u8; FLOCK_SIZE];
            lock.copy_from_slice(&raw);
            let r = sys::fcntl_flock(fd.as_fd(), cmd, &mut lock)?;
            if cmd == F_GETLK || cmd == F_OFD_GETLK {
                c.mem
                    .write(GuestRange::<Out>::new(arg, FLOCK_SIZE as u64), &lock)?;
            }
            Ok(r)
        }
        // F_SETOWN, F_SETSIG, F_SETLEASE, F_NOTIFY and the like direct signals at the VMM
        // process: refused until the LWK delivers signals (issue #7).
        _ => {
            // Validate the fd first, as Linux does.
            s.fds.get(c.args[0]).map_err(|_| Errno(EBADF))?;
            Err(Errno(EINVAL))
        }
    }
}

/// close_range(2): closes (or, with `CLOSE_RANGE_CLOEXEC`, marks) the guest fds in
/// `first..=last`. The guest has one fd table (no threads sharing it yet), so
/// `CLOSE_RANGE_UNSHARE` changes nothing.
pub(crate) fn close_range<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let (first, last) = (c.args[0] as u32, c.args[1] as u32);
    let flags = u64::from(c.args[2] as u32);
    if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(Errno(EINVAL));
    }
    let hit: Vec<i32> = s
        .fds
        .numbers()
        .into_iter()
        .filter(|&n| (first..=last).contains(&(n as u32)))
        .collect();
    // Another thread may close some of them meanwhile (the table's lock is not held across
    // the loop); those are simply gone already, as with Linux's close_range racing a close.
    for n in hit {
        if flags & CLOSE_RANGE_CLOEXEC != 0 {
            let _ = s.fds.set_cloexec(n as u64, true);
        } else {
            drop(s.fds.remove(n as u64));
        }
    }
    Ok(0)
}

/// flock(2)
pub(crate) fn flock<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sys::flock(s.fds.get(c.args[0])?.as_fd(), c.args[1] as i32)?;
    Ok(0)
}

/// Enters two new host fds into the guest table and writes their numbers as `int[2]` at
/// `addr` (checked writable before anything is created, so failure leaves no fds behind).
pub(crate) fn insert_pair<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    addr: u64,
    make: impl FnOnce() -> std::io::Result<(OwnedFd, OwnedFd)>,
    cloexec: bool,
) -> SysResult {
    c.mem.check_writable(GuestRange::new(addr, 8))?;
    let (a, b) = make()?;
    let ga = s.fds.insert(a, cloexec)?;
    let gb = match s.fds.insert(b, cloexec) {
        Ok(n) => n,
        Err(e) => {
            drop(s.fds.remove(ga as u64));
            return Err(e);
        }
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&ga.to_le_bytes());
    out[4..].copy_from_slice(&gb.to_le_bytes());
    if let Err(e) = c.mem.write_at(addr, &out) {
        drop(s.fds.remove(ga as u64));
        drop(s.fds.remove(gb as u64));
        return Err(e);
    }
    Ok(0)
}

/// pipe(2)
pub(crate) fn pipe<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    insert_pair(s, c, c.args[0], || sys::pipe2(0), false)
}

/// pipe2(2)
pub(crate) fn pipe2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = c.args[1] as i32;
    let known = libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT | libc::O_EXCL;
    if flags & !known != 0 {
        return Err(Errno(EINVAL));
    }
    let cloexec = flags & libc::O_CLOEXEC != 0;
    insert_pair(
        s,
        c,
        c.args[0],
        || sys::pipe2(flags & !libc::O_CLOEXEC),
        cloexec,
    )
}

/// eventfd(2)
pub(crate) fn eventfd<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    make_eventfd(s, c.args[0] as u32, 0)
}

/// eventfd2(2)
pub(crate) fn eventfd2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    make_eventfd(s, c.args[0] as u32, c.args[1] as i32)
}

fn make_eventfd(s: &Proc<'_>, initval: u32, flags: i32) -> SysResult {
    let known = libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE;
    if flags & !known != 0 {
        return Err(Errno(EINVAL));
    }
    let fd = sys::eventfd(initval, flags & !libc::EFD_CLOEXEC)?;
    Ok(i64::from(s.fds.insert(fd, flags & libc::EFD_CLOEXEC != 0)?))
}
