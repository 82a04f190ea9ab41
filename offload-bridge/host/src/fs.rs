//! Paths and metadata: open, openat, stat family, readlink(at), access family, getcwd.
//!
//! Every path the guest names resolves inside the job's root with openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS): `..`, absolute paths and symlink targets cannot leave it, and the
//! kernel does the resolution atomically (no check-then-use race). `/proc/self/exe` names the
//! program, not the VMM.

use crate::guest_mem::{GuestRange, Out};
use crate::{Call, Errno, Servicer, SysResult, sys};
use offload_abi::errno::{EINVAL, ENOENT, ERANGE};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use vm_memory::GuestMemoryBackend;

const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EACCESS: u64 = 0x200;
const AT_EMPTY_PATH: u64 = 0x1000;
const PATH_MAX: usize = 4096;
const O_CLOEXEC: u64 = libc::O_CLOEXEC as u64;
const O_CREAT: u64 = libc::O_CREAT as u64;
const O_TMPFILE: u64 = libc::O_TMPFILE as u64;
const O_PATH: u64 = libc::O_PATH as u64;
const O_NOFOLLOW: u64 = libc::O_NOFOLLOW as u64;
/// Open flags Linux's openat accepts (openat2 refuses unknown bits, openat ignores them).
const VALID_OPEN_FLAGS: u64 = 0o37_777_777 & !0o40_000_000;

fn cstring(bytes: Vec<u8>) -> Result<CString, Errno> {
    CString::new(bytes).map_err(|_| Errno(EINVAL))
}

impl Servicer {
    /// The directory and the path relative to it that `(dirfd, path)` names, for openat2 with
    /// RESOLVE_IN_ROOT. Paths relative to the cwd or to a directory fd inside the root are made
    /// root-relative so that `..` behaves as on Linux up to the root and no further.
    fn resolve_at(&self, dirfd: u64, path: &[u8]) -> Result<(BorrowedFd<'_>, CString), Errno> {
        if path.first() == Some(&b'/') {
            return Ok((self.ctx.root.as_fd(), cstring(path.to_vec())?));
        }
        let base = if dirfd as i32 == AT_FDCWD {
            self.ctx.cwd.clone()
        } else {
            let dir = self.fds.get(dirfd)?;
            match self.path_in_root(dir) {
                Some(p) => p,
                // A directory outside the root (inherited): resolution stays beneath it.
                None => return Ok((dir, cstring(path.to_vec())?)),
            }
        };
        let mut joined = base;
        if joined.last() != Some(&b'/') {
            joined.push(b'/');
        }
        joined.extend_from_slice(path);
        Ok((self.ctx.root.as_fd(), cstring(joined)?))
    }

    /// The absolute path inside the root of an open directory, if it is inside the root.
    fn path_in_root(&self, fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        let rel = target.strip_prefix(&self.ctx.root_path).ok()?;
        let mut out = b"/".to_vec();
        out.extend_from_slice(rel.as_os_str().as_bytes());
        Some(out)
    }

    /// Opens `(dirfd, path)` inside the root.
    fn open_in_root(
        &self,
        dirfd: u64,
        path: &[u8],
        flags: u64,
        mode: u64,
    ) -> Result<OwnedFd, Errno> {
        if path.is_empty() {
            return Err(Errno(ENOENT));
        }
        let (dir, rel) = self.resolve_at(dirfd, path)?;
        let resolve = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;
        Ok(sys::openat2(dir, &rel, flags, mode, resolve)?)
    }

    /// An `O_PATH` fd for `(dirfd, path)` honouring `AT_SYMLINK_NOFOLLOW` / `AT_EMPTY_PATH`.
    fn path_fd(&self, dirfd: u64, path: &[u8], at_flags: u64) -> Result<OwnedFd, Errno> {
        if path.is_empty() && at_flags & AT_EMPTY_PATH != 0 {
            let fd = if dirfd as i32 == AT_FDCWD {
                self.open_in_root(dirfd, b".", O_PATH | O_CLOEXEC, 0)?
            } else {
                self.fds.get(dirfd)?.try_clone_to_owned()?
            };
            return Ok(fd);
        }
        let mut flags = O_PATH | O_CLOEXEC;
        if at_flags & AT_SYMLINK_NOFOLLOW != 0 {
            flags |= O_NOFOLLOW;
        }
        self.open_in_root(dirfd, path, flags, 0)
    }

    fn is_proc_self_exe(path: &[u8]) -> bool {
        path == b"/proc/self/exe" || path == format!("/proc/{}/exe", std::process::id()).as_bytes()
    }
}

fn read_path<M: GuestMemoryBackend>(c: &Call<'_, '_, M>, addr: u64) -> Result<Vec<u8>, Errno> {
    c.mem.read_cstr(addr, PATH_MAX - 1)
}

/// open(2)
pub(crate) fn open<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    do_openat(s, c, AT_FDCWD as u64, c.args[0], c.args[1], c.args[2])
}

/// openat(2)
pub(crate) fn openat<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    do_openat(s, c, c.args[0], c.args[1], c.args[2], c.args[3])
}

fn do_openat<M: GuestMemoryBackend>(
    s: &mut Servicer,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    flags: u64,
    mode: u64,
) -> SysResult {
    let path = read_path(c, path)?;
    let flags = u64::from(flags as u32) & VALID_OPEN_FLAGS;
    let mode = if flags & (O_CREAT | O_TMPFILE) != 0 {
        u64::from(mode as u32) & 0o7777
    } else {
        0
    };
    let host = s.open_in_root(dirfd, &path, flags | O_CLOEXEC, mode)?;
    Ok(i64::from(s.fds.insert(host, flags & O_CLOEXEC != 0)?))
}

fn put_stat<M: GuestMemoryBackend>(c: &Call<'_, '_, M>, addr: u64, st: &[u8]) -> SysResult {
    c.mem
        .write(GuestRange::<Out>::new(addr, st.len() as u64), st)?;
    Ok(0)
}

/// fstat(2)
pub(crate) fn fstat<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let st = sys::fstat(s.fds.get(c.args[0])?)?;
    put_stat(c, c.args[1], &st)
}

/// stat(2)
pub(crate) fn stat<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    do_fstatat(s, c, AT_FDCWD as u64, c.args[0], c.args[1], 0)
}

/// lstat(2)
pub(crate) fn lstat<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    do_fstatat(
        s,
        c,
        AT_FDCWD as u64,
        c.args[0],
        c.args[1],
        AT_SYMLINK_NOFOLLOW,
    )
}

/// newfstatat(2) (fstatat in C)
pub(crate) fn newfstatat<M: GuestMemoryBackend>(
    s: &mut Servicer,
    c: &Call<'_, '_, M>,
) -> SysResult {
    do_fstatat(s, c, c.args[0], c.args[1], c.args[2], c.args[3])
}

fn do_fstatat<M: GuestMemoryBackend>(
    s: &mut Servicer,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    buf: u64,
    flags: u64,
) -> SysResult {
    let flags = u64::from(flags as u32);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800/* AT_NO_AUTOMOUNT */) != 0 {
        return Err(Errno(EINVAL));
    }
    let path = read_path(c, path)?;
    let fd = s.path_fd(dirfd, &path, flags)?;
    let st = sys::fstat(fd.as_fd())?;
    put_stat(c, buf, &st)
}

/// readlink(2)
pub(crate) fn readlink<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    do_readlinkat(s, c, AT_FDCWD as u64, c.args[0], c.args[1], c.args[2])
}

/// readlinkat(2)
pub(crate) fn readlinkat<M: GuestMemoryBackend>(
    s: &mut Servicer,
    c: &Call<'_, '_, M>,
) -> SysResult {
    do_readlinkat(s, c, c.args[0], c.args[1], c.args[2], c.args[3])
}

fn do_readlinkat<M: GuestMemoryBackend>(
    s: &mut Servicer,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    buf: u64,
    size: u64,
) -> SysResult {
    let size = size as i32;
    if size <= 0 {
        return Err(Errno(EINVAL));
    }
    let path = read_path(c, path)?;
    let target = if Servicer::is_proc_self_exe(&path) {
        s.ctx.exe.clone()
    } else {
        let fd = s.path_fd(dirfd, &path, AT_SYMLINK_NOFOLLOW)?;
        sys::readlink_fd(fd.as_fd())?
    };
    let n = target.len().min(size as usize);
    let out = target.get(..n).unwrap_or_default();
    c.mem.write(GuestRange::<Out>::new(buf, n as u64), out)?;
    Ok(n as i64)
}

/// access(2)
pub(crate) fn access<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    do_faccessat(s, c, AT_FDCWD as u64, c.args[0], c.args[1], 0)
}

/// faccessat(2) (the syscall has no flags argument)
pub(crate) fn faccessat<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    do_faccessat(s, c, c.args[0], c.args[1], c.args[2], 0)
}

/// faccessat2(2)
pub(crate) fn faccessat2<M: GuestMemoryBackend>(
    s: &mut Servicer,
    c: &Call<'_, '_, M>,
) -> SysResult {
    do_faccessat(s, c, c.args[0], c.args[1], c.args[2], c.args[3])
}

fn do_faccessat<M: GuestMemoryBackend>(
    s: &mut Servicer,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    mode: u64,
    flags: u64,
) -> SysResult {
    let mode = mode as i32;
    let flags = u64::from(flags as u32);
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno(EINVAL));
    }
    let path = read_path(c, path)?;
    let fd = s.path_fd(dirfd, &path, flags)?;
    sys::faccess_fd(fd.as_fd(), mode, (flags & AT_EACCESS) as i32)?;
    Ok(0)
}

/// getcwd(2): the cwd inside the root; returns the length including the NUL.
pub(crate) fn getcwd<M: GuestMemoryBackend>(s: &mut Servicer, c: &Call<'_, '_, M>) -> SysResult {
    let mut cwd = s.ctx.cwd.clone();
    cwd.push(0);
    if (c.args[1] as usize) < cwd.len() {
        return Err(Errno(ERANGE));
    }
    c.mem
        .write(GuestRange::<Out>::new(c.args[0], cwd.len() as u64), &cwd)?;
    Ok(cwd.len() as i64)
}
