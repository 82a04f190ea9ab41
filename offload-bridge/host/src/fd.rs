//! Descriptor operations on the guest's fd table: close, dup, dup2, dup3, fcntl.

use crate::guest_mem::{GuestRange, In, Out};
use crate::sys::{self, FLOCK_SIZE};
use crate::{Call, Errno, Servicer, SysResult};
use offload_abi::errno::{EBADF, EINVAL};
use std::os::fd::AsFd;
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
const F_DUPFD_CLOEXEC: i32 = 1030;
const F_SETPIPE_SZ: i32 = 1031;
const F_GETPIPE_SZ: i32 = 1032;
const FD_CLOEXEC: i64 = 1;
const O_CLOEXEC: u64 = libc::O_CLOEXEC as u64;

/// close(2)
pub(crate) fn close<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    drop(s.fds.remove(c.args[0])?);
    Ok(0)
}

/// dup(2)
pub(crate) fn dup<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let host = s.fds.get(c.args[0])?.try_clone_to_owned()?;
    Ok(i64::from(s.fds.insert(host, false)?))
}

/// dup2(2)
pub(crate) fn dup2<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let host = s.fds.get(c.args[0])?.try_clone_to_owned()?;
    if c.args[0] as i32 == c.args[1] as i32 {
        return Ok(i64::from(c.args[1] as i32));
    }
    Ok(i64::from(s.fds.insert_at(c.args[1], host, false)?))
}

/// dup3(2)
pub(crate) fn dup3<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let flags = u64::from(c.args[2] as u32);
    if flags & !O_CLOEXEC != 0 || c.args[0] as i32 == c.args[1] as i32 {
        return Err(Errno(EINVAL));
    }
    let host = s.fds.get(c.args[0])?.try_clone_to_owned()?;
    Ok(i64::from(s.fds.insert_at(c.args[1], host, flags != 0)?))
}

/// fcntl(2): descriptor flags live in the guest table; status flags, locks and pipe sizes are
/// the host's.
pub(crate) fn fcntl<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let cmd = c.args[1] as i32;
    let arg = c.args[2];
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = arg as i32;
            if min < 0 {
                return Err(Errno(EINVAL));
            }
            let host = s.fds.get(c.args[0])?.try_clone_to_owned()?;
            Ok(i64::from(s.fds.insert_from(
                host,
                cmd == F_DUPFD_CLOEXEC,
                min,
            )?))
        }
        F_GETFD => Ok(if s.fds.entry(c.args[0])?.cloexec {
            FD_CLOEXEC
        } else {
            0
        }),
        F_SETFD => {
            s.fds.entry_mut(c.args[0])?.cloexec = (arg as i64) & FD_CLOEXEC != 0;
            Ok(0)
        }
        F_GETFL | F_SETFL | F_GETPIPE_SZ | F_SETPIPE_SZ => {
            let fd = s.fds.get(c.args[0])?;
            Ok(sys::fcntl_int(fd, cmd, i64::from(arg as i32))?)
        }
        F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW => {
            let fd = s.fds.get(c.args[0])?.try_clone_to_owned()?;
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
        _ => {
            // Validate the fd first, as Linux does.
            s.fds.get(c.args[0]).map_err(|_| Errno(EBADF))?;
            Err(Errno(EINVAL))
        }
    }
}
