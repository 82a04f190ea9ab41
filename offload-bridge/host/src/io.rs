//! The read/write family, lseek and ioctl.
//!
//! Data moves through a host buffer: the destination range is checked writable before the host
//! consumes anything (a read from a pipe cannot lose data to a bad guest pointer), and transfers
//! are capped at `MAX_COPY` per call (a short read/write, which Linux also allows).

use crate::guest_mem::{GuestRange, In, MAX_COPY, Out};
use crate::{Call, Errno, Servicer, SysResult, sys};
use offload_abi::errno::{EINVAL, ENOTTY};
use vm_memory::GuestMemoryBackend;

/// Most iovecs in one readv/writev (Linux's UIO_MAXIOV).
const UIO_MAXIOV: u64 = 1024;

fn read_common<M: GuestMemoryBackend>(
    s: &Servicer,
    c: &Call<'_, '_, M>,
    offset: Option<i64>,
) -> SysResult {
    let fd = s.fds.get(c.args[0])?;
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
    s: &Servicer,
    c: &Call<'_, '_, M>,
    offset: Option<i64>,
) -> SysResult {
    let fd = s.fds.get(c.args[0])?;
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
pub(crate) fn read<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    read_common(s, c, None)
}

/// write(2)
pub(crate) fn write<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    write_common(s, c, None)
}

/// pread64(2)
pub(crate) fn pread64<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let off = c.args[3] as i64;
    if off < 0 {
        return Err(Errno(EINVAL));
    }
    read_common(s, c, Some(off))
}

/// pwrite64(2)
pub(crate) fn pwrite64<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let off = c.args[3] as i64;
    if off < 0 {
        return Err(Errno(EINVAL));
    }
    write_common(s, c, Some(off))
}

/// The iovec array of readv/writev, copied out of the guest first.
fn iovecs<M: GuestMemoryBackend>(c: &Call<'_, '_, M>) -> Result<Vec<(u64, u64)>, Errno> {
    let count = u64::from(c.args[2] as u32);
    if (c.args[2] as i32) < 0 || count > UIO_MAXIOV {
        return Err(Errno(EINVAL));
    }
    let raw = c.mem.read(GuestRange::<In>::new(c.args[1], count * 16))?;
    let mut out = Vec::with_capacity(count as usize);
    let mut total: u64 = 0;
    for chunk in raw.chunks_exact(16) {
        let mut base = [0u8; 8];
        let mut len = [0u8; 8];
        base.copy_from_slice(chunk.get(..8).unwrap_or(&[0; 8]));
        len.copy_from_slice(chunk.get(8..16).unwrap_or(&[0; 8]));
        let len = u64::from_le_bytes(len);
        // The total must fit in ssize_t (Linux: EINVAL).
        total = total
            .checked_add(len)
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or(Errno(EINVAL))?;
        out.push((u64::from_le_bytes(base), len));
    }
    Ok(out)
}

/// readv(2): one host read into a buffer, scattered into the iovecs.
pub(crate) fn readv<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let fd = s.fds.get(c.args[0])?;
    let iov = iovecs(c)?;
    let mut budget = MAX_COPY;
    let mut parts = Vec::new();
    for &(base, len) in &iov {
        let r = GuestRange::<Out>::new(base, len).prefix(budget);
        c.mem.check_writable(r)?;
        budget -= r.len();
        parts.push(r);
    }
    let mut buf = vec![0u8; (MAX_COPY - budget) as usize];
    let n = sys::read(fd, &mut buf)?;
    let mut done = 0usize;
    for r in parts {
        if done >= n {
            break;
        }
        let take = (r.len() as usize).min(n - done);
        c.mem
            .write(r, buf.get(done..done + take).unwrap_or_default())?;
        done += take;
    }
    Ok(n as i64)
}

/// writev(2): the iovecs gathered into one host write (atomic for pipes as on Linux).
pub(crate) fn writev<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let fd = s.fds.get(c.args[0])?;
    let iov = iovecs(c)?;
    let mut data = Vec::new();
    for (base, len) in iov {
        let room = MAX_COPY - data.len() as u64;
        if room == 0 {
            break;
        }
        data.extend_from_slice(&c.mem.read(GuestRange::<In>::new(base, len).prefix(room))?);
    }
    Ok(sys::write(fd, &data)? as i64)
}

/// lseek(2)
pub(crate) fn lseek<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    Ok(sys::lseek(
        s.fds.get(c.args[0])?,
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
}

/// The ioctls the bridge forwards, with their argument sizes (ioctl_tty(2), ioctl_list(2)).
/// Anything else is ENOTTY: an unknown request could make the host kernel read or write an
/// unchecked amount of memory.
fn ioctl_kind(request: u32) -> Option<IoctlArg> {
    const TERMIOS: u64 = 36; // struct termios (kernel, x86_64)
    Some(match request {
        0x5401 => IoctlArg::Out(TERMIOS),         // TCGETS
        0x5402..=0x5404 => IoctlArg::In(TERMIOS), // TCSETS, TCSETSW, TCSETSF
        0x540f => IoctlArg::Out(4),               // TIOCGPGRP
        0x5410 => IoctlArg::In(4),                // TIOCSPGRP
        0x5413 => IoctlArg::Out(8),               // TIOCGWINSZ
        0x5414 => IoctlArg::In(8),                // TIOCSWINSZ
        0x541b => IoctlArg::Out(4),               // FIONREAD
        0x5421 => IoctlArg::In(4),                // FIONBIO
        0x5452 => IoctlArg::In(4),                // FIOASYNC
        _ => return None,
    })
}

/// ioctl(2) for the terminal and FIONREAD/FIONBIO families; FIOCLEX/FIONCLEX act on the
/// guest's fd table.
pub(crate) fn ioctl<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let request = c.args[1] as u32;
    match request {
        0x5451 => {
            s.fds.entry_mut(c.args[0])?.cloexec = true; // FIOCLEX
            return Ok(0);
        }
        0x5450 => {
            s.fds.entry_mut(c.args[0])?.cloexec = false; // FIONCLEX
            return Ok(0);
        }
        _ => {}
    }
    let fd = s.fds.get(c.args[0])?;
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
            Ok(sys::ioctl_buf(fd, u64::from(request), &mut buf)?)
        }
    }
}
