//! Opening and metadata: open family, stat family, statx, statfs, readlink, access, chmod,
//! chown, utimensat and friends, truncate.
//!
//! Every path resolves inside the job's root through `path.rs`; metadata calls act on an
//! `O_PATH` fd of the object (`Servicer::object_fd`), never on a path checked earlier.

use crate::Proc;
use crate::guest_mem::{GuestRange, Out};
use crate::path::{
    AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT, AT_SYMLINK_NOFOLLOW, PATH_MAX, stat_mode,
};
use crate::procview::{self, ProcNode};
use crate::{Call, Errno, SysResult, sys};
use offload_abi::errno::{E2BIG, EINVAL, EISDIR, ENOENT};
use std::os::fd::AsFd;
use vm_memory::GuestMemoryBackend;

const AT_EACCESS: u64 = 0x200;
const AT_STATX_SYNC_TYPE: u64 = 0x6000;
const O_CLOEXEC: u64 = libc::O_CLOEXEC as u64;
const O_CREAT: u64 = libc::O_CREAT as u64;
const O_TMPFILE: u64 = libc::O_TMPFILE as u64;
/// Open flags Linux's open/openat accept (they ignore unknown bits; openat2 refuses them).
const VALID_OPEN_FLAGS: u64 = 0o37_777_777 & !0o40_000_000;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;
/// Size of `struct open_how` version 0.
const OPEN_HOW_SIZE_VER0: u64 = 24;
const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// Reads a guest path argument (NUL-terminated, at most PATH_MAX with its NUL).
pub(crate) fn read_path<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    addr: u64,
) -> Result<Vec<u8>, Errno> {
    c.mem.read_cstr(addr, PATH_MAX - 1)
}

impl Proc<'_> {
    /// `mode` with the job's umask applied, for calls that create something.
    pub(crate) fn create_mode(&self, mode: u64) -> u64 {
        u64::from(mode as u32) & 0o7777 & !u64::from(self.umask() & 0o777)
    }
}

/// open(2)
pub(crate) fn open<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_open(s, c, AT_FDCWD as u64, c.args[0], c.args[1], c.args[2], 0)
}

/// openat(2)
pub(crate) fn openat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_open(s, c, c.args[0], c.args[1], c.args[2], c.args[3], 0)
}

/// creat(2)
pub(crate) fn creat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64;
    do_open(s, c, AT_FDCWD as u64, c.args[0], flags, c.args[1], 0)
}

/// openat2(2): the guest's RESOLVE_* flags apply on top of the root's confinement.
pub(crate) fn openat2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let size = c.args[3];
    if size < OPEN_HOW_SIZE_VER0 {
        return Err(Errno(EINVAL));
    }
    if size > 4096 {
        return Err(Errno(E2BIG));
    }
    let how = c.mem.read(GuestRange::new(c.args[2], size))?;
    // Fields this kernel does not know must be zero (copy_struct_from_user).
    if how
        .iter()
        .skip(OPEN_HOW_SIZE_VER0 as usize)
        .any(|&b| b != 0)
    {
        return Err(Errno(E2BIG));
    }
    let field = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(how.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(b)
    };
    let (flags, mode, resolve) = (field(0), field(1), field(2));
    if flags & !(VALID_OPEN_FLAGS | O_CLOEXEC) != 0 || mode & !0o7777 != 0 {
        return Err(Errno(EINVAL));
    }
    if mode != 0 && flags & (O_CREAT | O_TMPFILE) == 0 {
        return Err(Errno(EINVAL));
    }
    let path = read_path(c, c.args[1])?;
    if resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) != 0 {
        // The guest confines the lookup to `dirfd` itself, which is at least as strict as
        // the job's root.
        let dir = if c.args[0] as i32 == AT_FDCWD {
            s.object_fd(AT_FDCWD as u64, b"", AT_EMPTY_PATH)?
        } else {
            s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?
        };
        let p = crate::path::cstring(path)?;
        let host = sys::openat2(
            dir.as_fd(),
            &p,
            flags | O_CLOEXEC,
            s.create_mode(mode),
            resolve | sys::RESOLVE_NO_MAGICLINKS,
        )?;
        let host = s.vet(host, flags, Some(c.mem))?;
        return Ok(i64::from(s.fds.insert(host, flags & O_CLOEXEC != 0)?));
    }
    do_open_path(s, c, c.args[0], path, flags, mode, resolve)
}

fn do_open<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    flags: u64,
    mode: u64,
    resolve: u64,
) -> SysResult {
    let path = read_path(c, path)?;
    let flags = u64::from(flags as u32) & VALID_OPEN_FLAGS;
    do_open_path(s, c, dirfd, path, flags, mode, resolve)
}

fn do_open_path<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: Vec<u8>,
    flags: u64,
    mode: u64,
    resolve: u64,
) -> SysResult {
    let mode = if flags & (O_CREAT | O_TMPFILE) != 0 {
        s.create_mode(mode)
    } else {
        0
    };
    let abs = s.guest_abs(dirfd, &path);
    if let Some(ProcNode::Dir(d)) = abs.as_ref().and_then(|a| procview::classify(s, a)) {
        // A directory of the /proc view: an empty host directory stands for it; getdents
        // and lookups from it use the listing and path kept with the guest fd.
        if flags & libc::O_ACCMODE as u64 != libc::O_RDONLY as u64 {
            return Err(Errno(EISDIR));
        }
        if !procview::dir_exists(s, d, Some(c.mem)) {
            return Err(Errno(ENOENT));
        }
        let dir = crate::fdtable::VirtDir {
            node: d,
            state: std::sync::Mutex::new((0, Vec::new())),
        };
        let host = crate::path::empty_dir()?;
        return Ok(i64::from(s.fds.insert_dir(
            host,
            flags & O_CLOEXEC != 0,
            dir,
        )?));
    }
    let host = s.open_guest_path(dirfd, &path, flags, mode, resolve, Some(c.mem))?;
    Ok(i64::from(s.fds.insert(host, flags & O_CLOEXEC != 0)?))
}

/// The object `(dirfd, path ptr)` names, for a call with `AT_*` flags.
pub(crate) fn object<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    at_flags: u64,
) -> Result<std::os::fd::OwnedFd, Errno> {
    let path = read_path(c, path)?;
    s.object_fd(dirfd, &path, at_flags)
}

/// fstat(2)
pub(crate) fn fstat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let st = sys::fstat(s.fds.get(c.args[0])?.as_fd())?;
    c.mem.write_at(c.args[1], &st)?;
    Ok(0)
}

/// stat(2)
pub(crate) fn stat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_fstatat(s, c, AT_FDCWD as u64, c.args[0], c.args[1], 0)
}

/// lstat(2)
pub(crate) fn lstat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let nofollow = AT_SYMLINK_NOFOLLOW;
    do_fstatat(s, c, AT_FDCWD as u64, c.args[0], c.args[1], nofollow)
}

/// newfstatat(2) (fstatat in C)
pub(crate) fn newfstatat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_fstatat(s, c, c.args[0], c.args[1], c.args[2], c.args[3])
}

fn do_fstatat<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    dirfd: u64,
    path: u64,
    buf: u64,
    flags: u64,
) -> SysResult {
    let flags = u64::from(flags as u32);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno(EINVAL));
    }
    let fd = object(s, c, dirfd, path, flags)?;
    let st = sys::fstat(fd.as_fd())?;
    c.mem.write_at(buf, &st)?;
    Ok(0)
}

/// statx(2)
pub(crate) fn statx<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = u64::from(c.args[2] as u32);
    let mask = c.args[3] as u32;
    let known = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE;
    if flags & !known != 0 || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE {
        return Err(Errno(EINVAL));
    }
    if mask & 0x8000_0000 != 0 {
        return Err(Errno(EINVAL)); // STATX__RESERVED
    }
    // Linux 6.11 accepts a NULL path with AT_EMPTY_PATH.
    let path = if c.args[1] == 0 && flags & AT_EMPTY_PATH != 0 {
        Vec::new()
    } else {
        read_path(c, c.args[1])?
    };
    let fd = s.object_fd(c.args[0], &path, flags)?;
    let st = sys::statx_fd(fd.as_fd(), (flags & AT_STATX_SYNC_TYPE) as i32, mask)?;
    c.mem.write_at(c.args[4], &st)?;
    Ok(0)
}

/// statfs(2)
pub(crate) fn statfs<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd = object(s, c, AT_FDCWD as u64, c.args[0], 0)?;
    let st = sys::fstatfs(fd.as_fd())?;
    c.mem.write_at(c.args[1], &st)?;
    Ok(0)
}

/// fstatfs(2)
pub(crate) fn fstatfs<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let st = sys::fstatfs(s.fds.get(c.args[0])?.as_fd())?;
    c.mem.write_at(c.args[1], &st)?;
    Ok(0)
}

/// readlink(2)
pub(crate) fn readlink<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_readlinkat(s, c, AT_FDCWD as u64, c.args[0], c.args[1], c.args[2])
}

/// readlinkat(2)
pub(crate) fn readlinkat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_readlinkat(s, c, c.args[0], c.args[1], c.args[2], c.args[3])
}

fn do_readlinkat<M: GuestMemoryBackend>(
    s: &Proc<'_>,
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
    let abs = s.guest_abs(dirfd, &path).filter(|_| !path.is_empty());
    if abs.as_deref().map(crate::path::normalize).as_deref() == Some(b"/proc/self") {
        // The link to the caller's own /proc/PID.
        let pid = s.pid().to_string().into_bytes();
        let n = pid.len().min(size as usize);
        c.mem.write(
            GuestRange::<Out>::new(buf, n as u64),
            pid.get(..n).unwrap_or_default(),
        )?;
        return Ok(n as i64);
    }
    let node = abs.and_then(|a| procview::classify(s, &a));
    let target = match node {
        Some(ProcNode::Link(l)) => l.resolve(s),
        Some(ProcNode::Fd(n)) => procview::fd_link(s, n).ok_or(Errno(ENOENT))?,
        Some(ProcNode::NotFound) => return Err(Errno(ENOENT)),
        Some(_) => return Err(Errno(EINVAL)),
        None => {
            let fd = s.object_fd(dirfd, &path, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)?;
            // Not a symlink: readlinkat(fd, "") says ENOENT, readlink(path) EINVAL.
            sys::readlink_fd(fd.as_fd()).map_err(|e| match Errno::from_io(&e) {
                Errno(ENOENT) if !path.is_empty() => Errno(EINVAL),
                other => other,
            })?
        }
    };
    let n = target.len().min(size as usize);
    let out = target.get(..n).unwrap_or_default();
    c.mem.write(GuestRange::<Out>::new(buf, n as u64), out)?;
    Ok(n as i64)
}

/// access(2)
pub(crate) fn access<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_faccessat(s, c, AT_FDCWD as u64, c.args[0], c.args[1], 0)
}

/// faccessat(2) (the syscall has no flags argument)
pub(crate) fn faccessat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_faccessat(s, c, c.args[0], c.args[1], c.args[2], 0)
}

/// faccessat2(2)
pub(crate) fn faccessat2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_faccessat(s, c, c.args[0], c.args[1], c.args[2], c.args[3])
}

fn do_faccessat<M: GuestMemoryBackend>(
    s: &Proc<'_>,
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
    let fd = object(s, c, dirfd, path, flags)?;
    sys::faccess_fd(fd.as_fd(), mode, (flags & AT_EACCESS) as i32)?;
    Ok(0)
}

/// chmod(2)
pub(crate) fn chmod<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd = object(s, c, AT_FDCWD as u64, c.args[0], 0)?;
    sys::chmod_fd(fd.as_fd(), (c.args[1] as u32) & 0o7777)?;
    Ok(0)
}

/// fchmod(2)
pub(crate) fn fchmod<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sys::fchmod(s.fds.get(c.args[0])?.as_fd(), (c.args[1] as u32) & 0o7777)?;
    Ok(0)
}

/// fchmodat(2) (the syscall has no flags argument)
pub(crate) fn fchmodat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd = object(s, c, c.args[0], c.args[1], 0)?;
    sys::chmod_fd(fd.as_fd(), (c.args[2] as u32) & 0o7777)?;
    Ok(0)
}

/// fchmodat2(2)
pub(crate) fn fchmodat2<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = u64::from(c.args[3] as u32);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno(EINVAL));
    }
    let fd = object(s, c, c.args[0], c.args[1], flags)?;
    sys::chmod_fd(fd.as_fd(), (c.args[2] as u32) & 0o7777)?;
    Ok(0)
}

/// chown(2)
pub(crate) fn chown<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd = object(s, c, AT_FDCWD as u64, c.args[0], 0)?;
    sys::chown_fd(fd.as_fd(), c.args[1] as u32, c.args[2] as u32)?;
    Ok(0)
}

/// lchown(2)
pub(crate) fn lchown<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd = object(s, c, AT_FDCWD as u64, c.args[0], AT_SYMLINK_NOFOLLOW)?;
    sys::chown_fd(fd.as_fd(), c.args[1] as u32, c.args[2] as u32)?;
    Ok(0)
}

/// fchown(2)
pub(crate) fn fchown<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sys::chown_fd(
        s.fds.get(c.args[0])?.as_fd(),
        c.args[1] as u32,
        c.args[2] as u32,
    )?;
    Ok(0)
}

/// fchownat(2)
pub(crate) fn fchownat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = u64::from(c.args[4] as u32);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno(EINVAL));
    }
    let fd = object(s, c, c.args[0], c.args[1], flags)?;
    sys::chown_fd(fd.as_fd(), c.args[2] as u32, c.args[3] as u32)?;
    Ok(0)
}

/// Reads two `timespec`s (NULL: now) and checks them as Linux does.
fn read_times<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    addr: u64,
) -> Result<Option<[sys::Timespec; 2]>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let raw = c.mem.read_array::<32>(addr)?;
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(raw.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
        i64::from_le_bytes(b)
    };
    let mut out = [sys::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    }; 2];
    for (i, t) in out.iter_mut().enumerate() {
        let (sec, nsec) = (word(2 * i), word(2 * i + 1));
        if !(0..1_000_000_000).contains(&nsec) && nsec != UTIME_NOW && nsec != UTIME_OMIT {
            return Err(Errno(EINVAL));
        }
        t.tv_sec = sec;
        t.tv_nsec = nsec;
    }
    Ok(Some(out))
}

/// Reads two `timeval`s (utimes) or a `utimbuf` (utime) as `timespec`s (NULL: now).
fn read_old_times<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    addr: u64,
    timeval: bool,
) -> Result<Option<[sys::Timespec; 2]>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let mut out = [sys::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    }; 2];
    if timeval {
        let raw = c.mem.read_array::<32>(addr)?;
        for (i, t) in out.iter_mut().enumerate() {
            let mut s = [0u8; 8];
            let mut u = [0u8; 8];
            s.copy_from_slice(raw.get(i * 16..i * 16 + 8).unwrap_or(&[0; 8]));
            u.copy_from_slice(raw.get(i * 16 + 8..i * 16 + 16).unwrap_or(&[0; 8]));
            let usec = i64::from_le_bytes(u);
            if !(0..1_000_000).contains(&usec) {
                return Err(Errno(EINVAL));
            }
            t.tv_sec = i64::from_le_bytes(s);
            t.tv_nsec = usec * 1000;
        }
    } else {
        let raw = c.mem.read_array::<16>(addr)?;
        for (i, t) in out.iter_mut().enumerate() {
            let mut s = [0u8; 8];
            s.copy_from_slice(raw.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
            t.tv_sec = i64::from_le_bytes(s);
        }
    }
    Ok(Some(out))
}

/// utimensat(2); a NULL path sets the times of `dirfd` itself (futimens).
pub(crate) fn utimensat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = u64::from(c.args[3] as u32);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno(EINVAL));
    }
    let times = read_times(c, c.args[2])?;
    let fd = if c.args[1] == 0 {
        if c.args[0] as i32 == AT_FDCWD {
            return Err(Errno(libc::EFAULT as i64));
        }
        s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?
    } else {
        object(s, c, c.args[0], c.args[1], flags)?
    };
    sys::utimens_fd(fd.as_fd(), times)?;
    Ok(0)
}

/// utimes(2)
pub(crate) fn utimes<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let times = read_old_times(c, c.args[1], true)?;
    let fd = object(s, c, AT_FDCWD as u64, c.args[0], 0)?;
    sys::utimens_fd(fd.as_fd(), times)?;
    Ok(0)
}

/// futimesat(2)
pub(crate) fn futimesat<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let times = read_old_times(c, c.args[2], true)?;
    let fd = object(s, c, c.args[0], c.args[1], 0)?;
    sys::utimens_fd(fd.as_fd(), times)?;
    Ok(0)
}

/// utime(2)
pub(crate) fn utime<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let times = read_old_times(c, c.args[1], false)?;
    let fd = object(s, c, AT_FDCWD as u64, c.args[0], 0)?;
    sys::utimens_fd(fd.as_fd(), times)?;
    Ok(0)
}

/// truncate(2): the object is found as `O_PATH`, checked to be a regular file, and reopened
/// for writing through its own fd (no second lookup of the path).
pub(crate) fn truncate<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let len = c.args[1] as i64;
    if len < 0 {
        return Err(Errno(EINVAL));
    }
    let fd = object(s, c, AT_FDCWD as u64, c.args[0], 0)?;
    let kind = stat_mode(&sys::fstat(fd.as_fd())?) & libc::S_IFMT;
    if kind == libc::S_IFDIR {
        return Err(Errno(EISDIR));
    }
    if kind != libc::S_IFREG {
        return Err(Errno(EINVAL));
    }
    let w = sys::reopen(fd.as_fd(), libc::O_WRONLY)?;
    sys::ftruncate(w.as_fd(), len)?;
    Ok(0)
}

/// ftruncate(2)
pub(crate) fn ftruncate<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let len = c.args[1] as i64;
    if len < 0 {
        return Err(Errno(EINVAL));
    }
    sys::ftruncate(s.fds.get(c.args[0])?.as_fd(), len)?;
    Ok(0)
}
