//! Directories and directory entries: getcwd, chdir, fchdir, getdents(64), mkdir, mknod,
//! rmdir, unlink, rename, link, symlink (and their `*at` forms).
//!
//! Entry calls act on the parent directory, opened inside the root, and the last component
//! (`Servicer::entry`); the cwd is per job, a path inside the root.

use crate::Proc;
use crate::fs::read_path;
use crate::guest_mem::{GuestRange, MAX_COPY, Out};
use crate::path::{AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, stat_mode};
use crate::procview::{self, ProcNode};
use crate::{Call, Errno, SysResult, sys};
use offload_abi::errno::{EACCES, EBUSY, EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR, EPERM, ERANGE};
use std::os::fd::{AsFd, BorrowedFd};
use vm_memory::GuestMemoryBackend;

const AT: u64 = AT_FDCWD as u64;

/// getcwd(2): the cwd inside the root; returns the length including the NUL.
pub(crate) fn getcwd<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let mut cwd = s.cwd();
    cwd.push(0);
    if (c.args[1] as usize) < cwd.len() {
        return Err(Errno(ERANGE));
    }
    c.mem.write_at(c.args[0], &cwd)?;
    Ok(cwd.len() as i64)
}

/// Makes the directory `fd` the job's cwd (it must be a searchable directory inside the root).
fn set_cwd(s: &Proc<'_>, fd: BorrowedFd<'_>) -> SysResult {
    if stat_mode(&sys::fstat(fd)?) & libc::S_IFMT != libc::S_IFDIR {
        return Err(Errno(ENOTDIR));
    }
    sys::faccess_fd(fd, libc::X_OK, libc::AT_EACCESS)?;
    // A directory outside the root (an inherited fd) cannot be the cwd: relative paths would
    // have no spelling inside the root.
    s.set_cwd(s.path_in_root(fd).ok_or(Errno(EACCES))?);
    Ok(0)
}

/// chdir(2)
pub(crate) fn chdir<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let path = read_path(c, c.args[0])?;
    if let Some(ProcNode::Dir(d)) = s
        .guest_abs(AT, &path)
        .and_then(|a| procview::classify(s, &a))
    {
        // A directory of the /proc view: lookups from the cwd then go through the view.
        if !procview::dir_exists(s, d, Some(c.mem)) {
            return Err(Errno(ENOENT));
        }
        s.set_cwd(procview::dir_path(d));
        return Ok(0);
    }
    let fd = s.object_fd(AT, &path, 0)?;
    set_cwd(s, fd.as_fd())
}

/// fchdir(2)
pub(crate) fn fchdir<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    if let Some(d) = s.fds.virt_dir(c.args[0]) {
        s.set_cwd(procview::dir_path(d.node));
        return Ok(0);
    }
    let fd = s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?;
    set_cwd(s, fd.as_fd())
}

/// getdents of a /proc view directory: its listing from the fd's position, in the record
/// format of getdents64 (`old`: getdents's `struct linux_dirent`, d_type in its last byte).
fn view_getdents<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    dir: &crate::fdtable::VirtDir,
    old: bool,
) -> SysResult {
    let count = u64::from(c.args[2] as u32).min(MAX_COPY) as usize;
    let dest = GuestRange::<Out>::new(c.args[1], count as u64);
    c.mem.check_writable(dest)?;
    let mut state = dir
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (pos, entries) = &mut *state;
    if *pos == 0 {
        // Listed when reading starts (again, after a rewind), as Linux lists /proc.
        *entries = procview::list(s, dir.node, Some(c.mem));
    }
    let mut buf = Vec::new();
    for (i, (name, ty, ino)) in entries.iter().enumerate().skip(*pos) {
        // Header (19 bytes for linux_dirent64, 18 for linux_dirent), name, NUL, [d_type],
        // padded to 8.
        let head = if old { 18 } else { 19 };
        let len = (head + name.len() + 1 + usize::from(old)).div_ceil(8) * 8;
        if buf.len() + len > count {
            if buf.is_empty() {
                return Err(Errno(EINVAL));
            }
            break;
        }
        let start = buf.len();
        buf.extend_from_slice(&ino.to_le_bytes());
        buf.extend_from_slice(&(i as i64 + 1).to_le_bytes());
        buf.extend_from_slice(&(len as u16).to_le_bytes());
        if old {
            buf.extend_from_slice(name);
            buf.resize(start + len - 1, 0);
            buf.push(*ty);
        } else {
            buf.push(*ty);
            buf.extend_from_slice(name);
            buf.resize(start + len, 0);
        }
        *pos = i + 1;
    }
    c.mem.write(dest.prefix(buf.len() as u64), &buf)?;
    Ok(buf.len() as i64)
}

fn do_getdents<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>, old: bool) -> SysResult {
    if let Some(d) = s.fds.virt_dir(c.args[0]) {
        return view_getdents(s, c, &d, old);
    }
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    let count = u64::from(c.args[2] as u32);
    let dest = GuestRange::<Out>::new(c.args[1], count).prefix(MAX_COPY);
    // Checked before the directory position moves.
    c.mem.check_writable(dest)?;
    let mut buf = vec![0u8; dest.len() as usize];
    let n = sys::getdents(fd, &mut buf, old)?;
    c.mem.write(dest, buf.get(..n).unwrap_or_default())?;
    Ok(n as i64)
}

/// getdents64(2): `struct linux_dirent64` records are the same bytes on host and guest.
pub(crate) fn getdents64<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_getdents(s, c, false)
}

/// getdents(2) (the old `struct linux_dirent` records)
pub(crate) fn getdents<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_getdents(s, c, true)
}

/// mkdir(2)
pub(crate) fn mkdir<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_mkdirat(s, c, AT, c.args[0], c.args[1])
}

/// mkdirat(2)
pub(crate) fn mkdirat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_mkdirat(s, c, c.args[0], c.args[1], c.args[2])
}

fn do_mkdirat<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    mode: u64,
) -> SysResult {
    let path = read_path(c, path)?;
    let (dir, name) = s.entry(dirfd, &path, EEXIST)?;
    sys::mkdirat(dir.as_fd(), &name, s.create_mode(mode) as u32)?;
    Ok(0)
}

/// mknod(2)
pub(crate) fn mknod<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_mknodat(s, c, AT, c.args[0], c.args[1], c.args[2])
}

/// mknodat(2)
pub(crate) fn mknodat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_mknodat(s, c, c.args[0], c.args[1], c.args[2], c.args[3])
}

fn do_mknodat<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    mode: u64,
    dev: u64,
) -> SysResult {
    let path = read_path(c, path)?;
    let (dir, name) = s.entry(dirfd, &path, EEXIST)?;
    let mode = (mode as u32 & libc::S_IFMT) | s.create_mode(mode) as u32;
    sys::mknodat(dir.as_fd(), &name, mode, u64::from(dev as u32))?;
    Ok(0)
}

/// rmdir(2)
pub(crate) fn rmdir<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_unlinkat(s, c, AT, c.args[0], AT_REMOVEDIR)
}

/// unlink(2)
pub(crate) fn unlink<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_unlinkat(s, c, AT, c.args[0], 0)
}

/// unlinkat(2)
pub(crate) fn unlinkat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = u64::from(c.args[2] as u32);
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno(EINVAL));
    }
    do_unlinkat(s, c, c.args[0], c.args[1], flags)
}

fn do_unlinkat<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    flags: u64,
) -> SysResult {
    let path = read_path(c, path)?;
    let at_root = if flags & AT_REMOVEDIR != 0 {
        EBUSY
    } else {
        EISDIR
    };
    let (dir, name) = s.entry(dirfd, &path, at_root)?;
    sys::unlinkat(dir.as_fd(), &name, flags as i32)?;
    Ok(0)
}

/// rename(2)
pub(crate) fn rename<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_renameat2(s, c, [AT, c.args[0], AT, c.args[1]], 0)
}

/// renameat(2)
pub(crate) fn renameat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_renameat2(s, c, [c.args[0], c.args[1], c.args[2], c.args[3]], 0)
}

/// renameat2(2)
pub(crate) fn renameat2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let a = c.args;
    do_renameat2(s, c, [a[0], a[1], a[2], a[3]], a[4] as u32)
}

fn do_renameat2<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    [olddir, old, newdir, new]: [u64; 4],
    flags: u32,
) -> SysResult {
    let old = read_path(c, old)?;
    let new = read_path(c, new)?;
    let (od, on) = s.entry(olddir, &old, EBUSY)?;
    let (nd, nn) = s.entry(newdir, &new, EBUSY)?;
    sys::renameat2(od.as_fd(), &on, nd.as_fd(), &nn, flags)?;
    Ok(0)
}

/// link(2)
pub(crate) fn link<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_linkat(s, c, [AT, c.args[0], AT, c.args[1]], 0)
}

/// linkat(2): without `AT_SYMLINK_FOLLOW` the old entry is named by its parent and last
/// component; with it, the object it resolves to is linked through its own fd.
pub(crate) fn linkat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let a = c.args;
    do_linkat(s, c, [a[0], a[1], a[2], a[3]], u64::from(a[4] as u32))
}

fn do_linkat<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    [olddir, old, newdir, new]: [u64; 4],
    flags: u64,
) -> SysResult {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno(EINVAL));
    }
    let old = read_path(c, old)?;
    let new = read_path(c, new)?;
    let (nd, nn) = s.entry(newdir, &new, EEXIST)?;
    if old.is_empty() && flags & AT_EMPTY_PATH != 0 {
        let fd_held = s.fds.get(olddir)?;
        let fd = fd_held.as_fd();
        sys::linkat(Some(fd), c"", nd.as_fd(), &nn, libc::AT_EMPTY_PATH)?;
    } else if flags & AT_SYMLINK_FOLLOW != 0 {
        let fd = s.object_fd(olddir, &old, 0)?;
        let magic = sys::magic_path(fd.as_fd());
        sys::linkat(None, &magic, nd.as_fd(), &nn, libc::AT_SYMLINK_FOLLOW)?;
    } else {
        let (od, on) = s.entry(olddir, &old, EPERM)?;
        sys::linkat(Some(od.as_fd()), &on, nd.as_fd(), &nn, 0)?;
    }
    Ok(0)
}

/// symlink(2)
pub(crate) fn symlink<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_symlinkat(s, c, c.args[0], AT, c.args[1])
}

/// symlinkat(2): the target is stored as the guest wrote it; it is resolved (inside the
/// root) only when the link is followed.
pub(crate) fn symlinkat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_symlinkat(s, c, c.args[0], c.args[1], c.args[2])
}

fn do_symlinkat<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    target: u64,
    dirfd: u64,
    path: u64,
) -> SysResult {
    let target = read_path(c, target)?;
    if target.is_empty() {
        return Err(Errno(ENOENT));
    }
    let path = read_path(c, path)?;
    let (dir, name) = s.entry(dirfd, &path, EEXIST)?;
    sys::symlinkat(&crate::path::cstring(target)?, dir.as_fd(), &name)?;
    Ok(0)
}
