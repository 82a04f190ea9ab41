//! The read/write family (including the vectored and positioned forms), lseek, the
//! in-kernel transfers (sendfile, copy_file_range, splice, tee), sync calls and ioctl.
//!
//! Data moves through a host buffer: the destination range is checked writable before the host
//! consumes anything (a read from a pipe cannot lose data to a bad guest pointer), and transfers
//! are capped at `MAX_COPY` per call (a short read/write, which Linux also allows). In-kernel
//! transfers never touch guest memory except for their offset arguments.

use crate::Proc;
use crate::guest_mem::{GuestRange, In, MAX_COPY, Out};
use crate::{Call, Errno, SysResult, sys};
use offload_abi::errno::{EINVAL, ENOTTY};
use std::os::fd::{AsFd, BorrowedFd};
use vm_memory::GuestMemoryBackend;

/// Most iovecs in one readv/writev (Linux's UIO_MAXIOV).
pub(crate) const UIO_MAXIOV: u64 = 1024;

fn read_common<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    offset: Option<i64>,
) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    let dest = GuestRange::<Out>::new(c.args[1], c.args[2]).prefix(MAX_COPY);
    c.mem.check_writable(dest)?;
    let mut buf = vec![0u8; dest.len() as usize];
    let n = match offset {
        None => sys::read(fd, &mut buf)?,
        Some(off) => sys::pread(fd, &mut buf, off)?,
    };
    c.mem.write(dest, buf.get(..n).unwrap_or_default())?;
    Ok(n as i64)
}

fn write_common<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    offset: Option<i64>,
) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    let data = c
        .mem
        .read(GuestRange::<In>::new(c.args[1], c.args[2]).prefix(MAX_COPY))?;
    let n = match offset {
        None => sys::write(fd, &data)?,
        Some(off) => sys::pwrite(fd, &data, off)?,
    };
    Ok(n as i64)
}

/// read(2)
pub(crate) fn read<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    read_common(s, c, None)
}

/// write(2)
pub(crate) fn write<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    write_common(s, c, None)
}

/// pread64(2)
pub(crate) fn pread64<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let off = c.args[3] as i64;
    if off < 0 {
        return Err(Errno(EINVAL));
    }
    read_common(s, c, Some(off))
}

/// pwrite64(2)
pub(crate) fn pwrite64<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let off = c.args[3] as i64;
    if off < 0 {
        return Err(Errno(EINVAL));
    }
    write_common(s, c, Some(off))
}

/// The iovec array of readv/writev, copied out of the guest first.
fn iovecs<M: GuestMemoryBackend>(c: &Call<'_, '_, M>) -> Result<Vec<(u64, u64)>, Errno> {
    let count = c.args[2] as i32;
    if count < 0 || count as u64 > UIO_MAXIOV {
        return Err(Errno(EINVAL));
    }
    iovecs_at(c, c.args[1], count as u64)
}

/// `count` iovecs (`{base, len}` pairs) at `addr`, copied out of the guest; their total
/// must fit in `ssize_t` (EINVAL, as Linux).
pub(crate) fn iovecs_at<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    addr: u64,
    count: u64,
) -> Result<Vec<(u64, u64)>, Errno> {
    let raw = c.mem.read(GuestRange::<In>::new(addr, count * 16))?;
    let mut out = Vec::with_capacity(count as usize);
    let mut total: u64 = 0;
    for chunk in raw.chunks_exact(16) {
        let mut base = [0u8; 8];
        let mut len = [0u8; 8];
        base.copy_from_slice(chunk.get(..8).unwrap_or(&[0; 8]));
        len.copy_from_slice(chunk.get(8..16).unwrap_or(&[0; 8]));
        let len = u64::from_le_bytes(len);
        total = total
            .checked_add(len)
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or(Errno(EINVAL))?;
        out.push((u64::from_le_bytes(base), len));
    }
    Ok(out)
}

/// The destinations of a scattering read, each checked writable, at most `MAX_COPY` bytes
/// in all.
pub(crate) fn scatter_ranges<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    iov: &[(u64, u64)],
) -> Result<Vec<GuestRange<Out>>, Errno> {
    let mut budget = MAX_COPY;
    let mut parts = Vec::with_capacity(iov.len());
    for &(base, len) in iov {
        let r = GuestRange::<Out>::new(base, len).prefix(budget);
        c.mem.check_writable(r)?;
        budget -= r.len();
        parts.push(r);
    }
    Ok(parts)
}

/// Writes `data` across `parts` in order.
pub(crate) fn scatter<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    parts: &[GuestRange<Out>],
    data: &[u8],
) -> Result<(), Errno> {
    let mut done = 0usize;
    for r in parts {
        if done >= data.len() {
            break;
        }
        let take = (r.len() as usize).min(data.len() - done);
        c.mem
            .write(*r, data.get(done..done + take).unwrap_or_default())?;
        done += take;
    }
    Ok(())
}

/// The bytes of the iovecs, gathered (at most `MAX_COPY`).
pub(crate) fn gather<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    iov: &[(u64, u64)],
) -> Result<Vec<u8>, Errno> {
    let mut data = Vec::new();
    for &(base, len) in iov {
        let room = MAX_COPY - data.len() as u64;
        if room == 0 {
            break;
        }
        data.extend_from_slice(&c.mem.read(GuestRange::<In>::new(base, len).prefix(room))?);
    }
    Ok(data)
}

/// A vectored read at `offset` (-1: the file position) with RWF_* `flags`: one host read
/// into a buffer, scattered into the iovecs (all checked writable first).
fn read_vectored<M: GuestMemoryBackend>(
    fd: BorrowedFd<'_>,
    c: &Call<'_, '_, M>,
    offset: i64,
    flags: i32,
) -> SysResult {
    let parts = scatter_ranges(c, &iovecs(c)?)?;
    let mut buf = vec![0u8; parts.iter().map(|r| r.len() as usize).sum()];
    let n = if offset == -1 && flags == 0 {
        sys::read(fd, &mut buf)?
    } else {
        sys::preadv2(fd, &mut buf, offset, flags)?
    };
    scatter(c, &parts, buf.get(..n).unwrap_or_default())?;
    Ok(n as i64)
}

/// A vectored write: the iovecs gathered into one host write (atomic for pipes as on Linux).
fn write_vectored<M: GuestMemoryBackend>(
    fd: BorrowedFd<'_>,
    c: &Call<'_, '_, M>,
    offset: i64,
    flags: i32,
) -> SysResult {
    let data = gather(c, &iovecs(c)?)?;
    let n = if offset == -1 && flags == 0 {
        sys::write(fd, &data)?
    } else {
        sys::pwritev2(fd, &data, offset, flags)?
    };
    Ok(n as i64)
}

/// readv(2)
pub(crate) fn readv<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    read_vectored(s.fds.get(c.args[0])?.as_fd(), c, -1, 0)
}

/// writev(2)
pub(crate) fn writev<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    write_vectored(s.fds.get(c.args[0])?.as_fd(), c, -1, 0)
}

/// The offset of preadv/pwritev (x86_64 passes it whole in `pos_l`; `pos_h` is ignored).
fn vec_offset(pos_l: u64, allow_current: bool) -> Result<i64, Errno> {
    let off = pos_l as i64;
    if off < 0 && !(allow_current && off == -1) {
        return Err(Errno(EINVAL));
    }
    Ok(off)
}

/// preadv(2)
pub(crate) fn preadv<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    read_vectored(fd, c, vec_offset(c.args[3], false)?, 0)
}

/// pwritev(2)
pub(crate) fn pwritev<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    write_vectored(fd, c, vec_offset(c.args[3], false)?, 0)
}

/// preadv2(2): offset -1 reads at the file position; RWF_* flags are the host kernel's.
pub(crate) fn preadv2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    read_vectored(fd, c, vec_offset(c.args[3], true)?, c.args[5] as i32)
}

/// pwritev2(2)
pub(crate) fn pwritev2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    write_vectored(fd, c, vec_offset(c.args[3], true)?, c.args[5] as i32)
}

/// lseek(2)
pub(crate) fn lseek<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    if let Some(d) = s.fds.virt_dir(c.args[0]) {
        // A /proc view directory: the position is an entry index (getdents's d_off).
        let mut state = d
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pos = &mut state.0;
        let base = match c.args[2] as i32 {
            libc::SEEK_SET => 0,
            libc::SEEK_CUR => *pos as i64,
            _ => return Err(crate::Errno(offload_abi::errno::EINVAL)),
        };
        let new = base
            .checked_add(c.args[1] as i64)
            .filter(|&n| n >= 0)
            .ok_or(crate::Errno(offload_abi::errno::EINVAL))?;
        *pos = usize::try_from(new).unwrap_or(usize::MAX);
        return Ok(new);
    }
    Ok(sys::lseek(
        s.fds.get(c.args[0])?.as_fd(),
        c.args[1] as i64,
        c.args[2] as i32,
    )?)
}

/// How an ioctl's argument is passed.
#[derive(Clone, Copy)]
enum IoctlArg {
    /// The host writes `n` bytes to the guest pointer.
    Out(u64),
    /// The host reads `n` bytes from the guest pointer.
    In(u64),
    /// The argument is an integer, not a pointer (or unused).
    Value,
}

/// The ioctls the bridge forwards, with their argument sizes (ioctl_tty(2), ioctl_list(2)).
/// Anything else is ENOTTY: an unknown request could make the host kernel read or write an
/// unchecked amount of memory.
fn ioctl_kind(request: u32) -> Option<IoctlArg> {
    const TERMIOS: u64 = 36; // struct termios (kernel, x86_64)
    const TERMIOS2: u64 = 44; // struct termios2
    Some(match request {
        0x5401 => IoctlArg::Out(TERMIOS),                    // TCGETS
        0x5402..=0x5404 => IoctlArg::In(TERMIOS),            // TCSETS, TCSETSW, TCSETSF
        0x5409..=0x540b => IoctlArg::Value,                  // TCSBRK, TCXONC, TCFLSH
        0x540c | 0x540d => IoctlArg::Value,                  // TIOCEXCL, TIOCNXCL
        TIOCGPGRP => IoctlArg::Out(4),                       // TIOCGPGRP
        TIOCSPGRP => IoctlArg::In(4),                        // TIOCSPGRP
        0x5411 => IoctlArg::Out(4),                          // TIOCOUTQ / SIOCOUTQ
        0x5413 => IoctlArg::Out(8),                          // TIOCGWINSZ
        0x5414 => IoctlArg::In(8),                           // TIOCSWINSZ
        0x5415 => IoctlArg::Out(4),                          // TIOCMGET
        0x541b => IoctlArg::Out(4),                          // FIONREAD / SIOCINQ
        0x5421 => IoctlArg::In(4),                           // FIONBIO
        0x5429 => IoctlArg::Out(4),                          // TIOCGSID
        0x5452 => IoctlArg::In(4),                           // FIOASYNC
        0x5460 => IoctlArg::Out(8),                          // FIOQSIZE
        0x802c_542a => IoctlArg::Out(TERMIOS2),              // TCGETS2
        0x402c_542b..=0x402c_542d => IoctlArg::In(TERMIOS2), // TCSETS2, TCSETSW2, TCSETSF2
        0x8004_5430 => IoctlArg::Out(4),                     // TIOCGPTN
        0x4004_5431 => IoctlArg::In(4),                      // TIOCSPTLCK
        0x8905 => IoctlArg::Out(4),                          // SIOCATMARK
        0x0002 => IoctlArg::Out(4),                          // FIGETBSZ
        0x8008_6601 => IoctlArg::Out(8),                     // FS_IOC_GETFLAGS
        0x4008_6602 => IoctlArg::In(8),                      // FS_IOC_SETFLAGS
        _ => return None,
    })
}

/// ioctl(2) for the terminal and FIONREAD/FIONBIO families; FIOCLEX/FIONCLEX act on the
/// guest's fd table.
pub(crate) fn ioctl<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let request = c.args[1] as u32;
    match request {
        0x5451 => {
            s.fds.set_cloexec(c.args[0], true)?; // FIOCLEX
            return Ok(0);
        }
        0x5450 => {
            s.fds.set_cloexec(c.args[0], false)?; // FIONCLEX
            return Ok(0);
        }
        _ => {}
    }
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    let Some(kind) = ioctl_kind(request) else {
        return Err(Errno(ENOTTY));
    };
    match kind {
        IoctlArg::Out(n) => {
            let dest = GuestRange::<Out>::new(c.args[2], n);
            c.mem.check_writable(dest)?;
            let mut buf = vec![0u8; n as usize];
            let r = sys::ioctl_buf(fd, u64::from(request), &mut buf)?;
            c.mem.write(dest, &buf)?;
            Ok(r)
        }
        IoctlArg::In(n) => {
            let mut buf = c.mem.read(GuestRange::<In>::new(c.args[2], n))?;
            if request == TIOCSPGRP && !own_group(&buf) {
                // The job's process groups other than lwk-vmm's own exist only in the LWK:
                // a host pgid with that number would be some other host process group. The
                // terminal keeps lwk-vmm's group in the foreground (it holds every process of
                // the job); the call succeeds on a terminal, as it would for a group of the
                // caller's session.
                let mut probe = [0u8; 4];
                sys::ioctl_buf(fd, u64::from(TIOCGPGRP), &mut probe)?;
                return Ok(0);
            }
            Ok(sys::ioctl_buf(fd, u64::from(request), &mut buf)?)
        }
        IoctlArg::Value => Ok(sys::ioctl_value(fd, u64::from(request), c.args[2])?),
    }
}

const TIOCGPGRP: u32 = 0x540f;
const TIOCSPGRP: u32 = 0x5410;

/// Whether the 4-byte pgid in `buf` is lwk-vmm's own process group.
fn own_group(buf: &[u8]) -> bool {
    let mut b = [0u8; 4];
    b.copy_from_slice(buf.get(..4).unwrap_or(&[0; 4]));
    i32::from_le_bytes(b) == sys::process_group()
}

/// Reads an optional `loff_t` argument (NULL: use the file position), checked writable for
/// the update afterwards.
fn read_offset<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    addr: u64,
) -> Result<Option<i64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    c.mem.check_writable(GuestRange::new(addr, 8))?;
    let off = c.mem.read_u64(addr)? as i64;
    if off < 0 {
        return Err(Errno(EINVAL));
    }
    Ok(Some(off))
}

fn write_offset<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    addr: u64,
    off: Option<i64>,
) -> Result<(), Errno> {
    match off {
        Some(o) => c.mem.write_at(addr, &o.to_le_bytes()),
        None => Ok(()),
    }
}

/// sendfile(2)
pub(crate) fn sendfile<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let out_held = s.fds.get(c.args[0])?;
    let out = out_held.as_fd();
    let input_held = s.fds.get(c.args[1])?;
    let input = input_held.as_fd();
    let mut off = read_offset(c, c.args[2])?;
    let count = c.args[3].min(MAX_COPY) as usize;
    let n = sys::sendfile(out, input, &mut off, count)?;
    write_offset(c, c.args[2], off)?;
    Ok(n as i64)
}

fn copy_common<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    splice: bool,
) -> SysResult {
    let input_held = s.fds.get(c.args[0])?;
    let input = input_held.as_fd();
    let out_held = s.fds.get(c.args[2])?;
    let out = out_held.as_fd();
    let mut off_in = read_offset(c, c.args[1])?;
    let mut off_out = read_offset(c, c.args[3])?;
    let len = c.args[4].min(MAX_COPY) as usize;
    let flags = c.args[5] as u32;
    let n = sys::copy_range(input, &mut off_in, out, &mut off_out, len, flags, splice)?;
    write_offset(c, c.args[1], off_in)?;
    write_offset(c, c.args[3], off_out)?;
    Ok(n as i64)
}

/// copy_file_range(2)
pub(crate) fn copy_file_range<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
) -> SysResult {
    copy_common(s, c, false)
}

/// splice(2)
pub(crate) fn splice<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    copy_common(s, c, true)
}

/// tee(2)
pub(crate) fn tee<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let input_held = s.fds.get(c.args[0])?;
    let input = input_held.as_fd();
    let out_held = s.fds.get(c.args[1])?;
    let out = out_held.as_fd();
    let len = c.args[2].min(MAX_COPY) as usize;
    Ok(sys::tee(input, out, len, c.args[3] as u32)? as i64)
}

/// fsync(2)
pub(crate) fn fsync<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sys::fsync(s.fds.get(c.args[0])?.as_fd(), false)?;
    Ok(0)
}

/// fdatasync(2)
pub(crate) fn fdatasync<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sys::fsync(s.fds.get(c.args[0])?.as_fd(), true)?;
    Ok(0)
}

/// sync(2)
pub(crate) fn sync<M: GuestMemoryBackend>(_s: &Proc<'_>, _c: &Call<'_, '_, M>) -> SysResult {
    sys::sync();
    Ok(0)
}

/// syncfs(2)
pub(crate) fn syncfs<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sys::syncfs(s.fds.get(c.args[0])?.as_fd())?;
    Ok(0)
}

/// fallocate(2)
pub(crate) fn fallocate<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    sys::fallocate(fd, c.args[1] as i32, c.args[2] as i64, c.args[3] as i64)?;
    Ok(0)
}

/// fadvise64(2)
pub(crate) fn fadvise64<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    sys::fadvise(fd, c.args[1] as i64, c.args[2] as i64, c.args[3] as i32)?;
    Ok(0)
}

/// readahead(2)
pub(crate) fn readahead<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    sys::readahead(fd, c.args[1] as i64, c.args[2] as usize)?;
    Ok(0)
}

/// sync_file_range(2)
pub(crate) fn sync_file_range<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    sys::sync_file_range(fd, c.args[1] as i64, c.args[2] as i64, c.args[3] as u32)?;
    Ok(0)
}
