//! Host syscalls as small safe functions over `libc`: the only `unsafe` in this crate. Every
//! function takes Rust-owned buffers and borrowed fds, so the kernel never sees a pointer into
//! guest memory or a dangling fd, and every fd the kernel creates is wrapped in an `OwnedFd`
//! at once (and created `CLOEXEC`, so nothing of the guest leaks into a process the VMM runs).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Wraps a fresh fd number returned by the kernel.
fn owned(fd: i64) -> OwnedFd {
    // SAFETY: callers pass only numbers a successful fd-creating syscall just returned; nobody
    // else owns them.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn cvt(r: libc::c_long) -> io::Result<i64> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Current time of a host clock in nanoseconds.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock ids passed are constants.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `RESOLVE_NO_MAGICLINKS`: /proc/*/fd-style links are refused.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `RESOLVE_IN_ROOT`: resolve as if `dir` were `/` (no escape by `..` or absolute symlinks).
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2(2).
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: u64,
    mode: u64,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags,
        mode,
        resolve,
    };
    // SAFETY: `path` is NUL-terminated, `how` is a valid open_how of the size passed; the
    // returned fd is new and owned by nobody else.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })?;
    Ok(owned(fd))
}

/// Size of Linux x86_64 `struct stat`.
pub const STAT_SIZE: usize = 144;
const _: () = assert!(std::mem::size_of::<libc::stat>() == STAT_SIZE);

/// fstat(2), returning the raw `struct stat` bytes as the guest expects them.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<[u8; STAT_SIZE]> {
    let mut out = [0u8; STAT_SIZE];
    // SAFETY: `out` has exactly the size of `struct stat`; the kernel writes only into it.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), out.as_mut_ptr().cast::<libc::stat>()) }.into())?;
    Ok(out)
}

/// readlinkat(2) with an empty path on an `O_PATH|O_NOFOLLOW` fd of the link itself.
pub fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: the path is a valid empty C string; `buf` is writable for its length.
    let n = cvt(unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    } as i64)?;
    buf.truncate(n as usize);
    Ok(buf)
}

/// faccessat2(2) with `AT_EMPTY_PATH` on an `O_PATH` fd.
pub fn faccess_fd(fd: BorrowedFd<'_>, mode: i32, flags: i32) -> io::Result<()> {
    // SAFETY: the path is a valid empty C string; no memory is written.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            flags | libc::AT_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// read(2) into `buf`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length.
    cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } as i64)
        .map(|n| n as usize)
}

/// write(2) from `buf`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is readable for its length.
    cvt(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) } as i64)
        .map(|n| n as usize)
}

/// pread64(2) into `buf`.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: i64) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length.
    cvt(unsafe { libc::pread64(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) } as i64)
        .map(|n| n as usize)
}

/// pwrite64(2) from `buf`.
pub fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], offset: i64) -> io::Result<usize> {
    // SAFETY: `buf` is readable for its length.
    cvt(unsafe { libc::pwrite64(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), offset) } as i64)
        .map(|n| n as usize)
}

/// lseek(2).
pub fn lseek(fd: BorrowedFd<'_>, offset: i64, whence: i32) -> io::Result<i64> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::lseek64(fd.as_raw_fd(), offset, whence) })
}

/// ioctl(2) whose argument points to `arg` (in, out or both: the buffer has the exact size
/// the request encodes, checked by the caller's whitelist).
pub fn ioctl_buf(fd: BorrowedFd<'_>, request: u64, arg: &mut [u8]) -> io::Result<i64> {
    // SAFETY: callers only pass whitelisted requests whose argument is a buffer of exactly
    // `arg.len()` bytes, so the kernel reads/writes only inside `arg`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request as libc::Ioctl, arg.as_mut_ptr()) }.into())
}

/// ioctl(2) whose argument is an integer (or unused).
pub fn ioctl_value(fd: BorrowedFd<'_>, request: u64, arg: u64) -> io::Result<i64> {
    // SAFETY: callers only pass whitelisted requests whose argument is not a pointer.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request as libc::Ioctl, arg) }.into())
}

/// fcntl(2) with an integer argument.
pub fn fcntl_int(fd: BorrowedFd<'_>, cmd: i32, arg: i64) -> io::Result<i64> {
    // SAFETY: integer-argument commands do not access memory.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, arg) }.into())
}

/// Size of Linux x86_64 `struct flock`.
pub const FLOCK_SIZE: usize = 32;
const _: () = assert!(std::mem::size_of::<libc::flock>() == FLOCK_SIZE);

/// fcntl(F_GETFL): the file status flags and access mode.
pub fn fcntl_getfl(fd: BorrowedFd<'_>) -> io::Result<i64> {
    fcntl_int(fd, libc::F_GETFL, 0)
}

/// fcntl(2) with a `struct flock` argument (the lock commands).
pub fn fcntl_flock(fd: BorrowedFd<'_>, cmd: i32, lock: &mut [u8; FLOCK_SIZE]) -> io::Result<i64> {
    // SAFETY: lock commands take a `struct flock *`; `lock` has exactly its size.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, lock.as_mut_ptr()) }.into())
}

/// getrandom(2) into `buf`.
pub fn getrandom(buf: &mut [u8], flags: u32) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length.
    cvt(unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), flags) } as i64)
        .map(|n| n as usize)
}

/// A `timespec` as the kernel takes it.
pub type Timespec = libc::timespec;

fn timespec_mut(ts: &mut Option<Timespec>) -> *mut Timespec {
    ts.as_mut()
        .map_or(std::ptr::null_mut(), |t| t as *mut Timespec)
}

/// preadv2(2) into one buffer (`offset` -1 reads at the file position).
pub fn preadv2(fd: BorrowedFd<'_>, buf: &mut [u8], offset: i64, flags: i32) -> io::Result<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec describing `buf`, writable for its length.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_preadv2,
            fd.as_raw_fd(),
            &iov as *const libc::iovec,
            1,
            offset,
            0,
            flags,
        )
    })
    .map(|n| n as usize)
}

/// pwritev2(2) from one buffer (`offset` -1 writes at the file position).
pub fn pwritev2(fd: BorrowedFd<'_>, buf: &[u8], offset: i64, flags: i32) -> io::Result<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: one iovec describing `buf`, which the kernel only reads.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pwritev2,
            fd.as_raw_fd(),
            &iov as *const libc::iovec,
            1,
            offset,
            0,
            flags,
        )
    })
    .map(|n| n as usize)
}

/// Size of Linux `struct statx`.
pub const STATX_SIZE: usize = 256;
const _: () = assert!(std::mem::size_of::<libc::statx>() == STATX_SIZE);

/// statx(2) of the object `fd` refers to (`AT_EMPTY_PATH`), raw bytes.
pub fn statx_fd(fd: BorrowedFd<'_>, flags: i32, mask: u32) -> io::Result<[u8; STATX_SIZE]> {
    let mut out = [0u8; STATX_SIZE];
    // SAFETY: the path is a valid empty C string; `out` has exactly the size of struct statx.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags | libc::AT_EMPTY_PATH,
            mask,
            out.as_mut_ptr(),
        )
    })?;
    Ok(out)
}

/// Size of Linux x86_64 `struct statfs`.
pub const STATFS_SIZE: usize = 120;
const _: () = assert!(std::mem::size_of::<libc::statfs>() == STATFS_SIZE);

/// fstatfs(2), raw bytes (works on `O_PATH` fds).
pub fn fstatfs(fd: BorrowedFd<'_>) -> io::Result<[u8; STATFS_SIZE]> {
    let mut out = [0u8; STATFS_SIZE];
    // SAFETY: `out` has exactly the size of struct statfs.
    cvt(unsafe { libc::syscall(libc::SYS_fstatfs, fd.as_raw_fd(), out.as_mut_ptr()) })?;
    Ok(out)
}

/// The `f_type` of the filesystem `fd` lives on.
pub fn fs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    let st = fstatfs(fd)?;
    let mut t = [0u8; 8];
    t.copy_from_slice(st.get(..8).unwrap_or(&[0; 8]));
    Ok(i64::from_le_bytes(t))
}

/// getdents64(2) (`old` selects the old getdents(2) record format).
pub fn getdents(fd: BorrowedFd<'_>, buf: &mut [u8], old: bool) -> io::Result<usize> {
    let nr = if old {
        libc::SYS_getdents
    } else {
        libc::SYS_getdents64
    };
    // SAFETY: `buf` is writable for its length.
    cvt(unsafe { libc::syscall(nr, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) })
        .map(|n| n as usize)
}

/// mkdirat(2).
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }.into()).map(drop)
}

/// mknodat(2).
pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }.into()).map(drop)
}

/// unlinkat(2).
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }.into()).map(drop)
}

/// renameat2(2).
pub fn renameat2(
    olddir: BorrowedFd<'_>,
    old: &CStr,
    newdir: BorrowedFd<'_>,
    new: &CStr,
    flags: u32,
) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            olddir.as_raw_fd(),
            old.as_ptr(),
            newdir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// linkat(2). `olddir` None is `AT_FDCWD` (only with absolute `/proc/self/fd/N` paths).
pub fn linkat(
    olddir: Option<BorrowedFd<'_>>,
    old: &CStr,
    newdir: BorrowedFd<'_>,
    new: &CStr,
    flags: i32,
) -> io::Result<()> {
    let od = olddir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: both names are NUL-terminated.
    cvt(unsafe { libc::linkat(od, old.as_ptr(), newdir.as_raw_fd(), new.as_ptr(), flags) }.into())
        .map(drop)
}

/// symlinkat(2).
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }.into())
        .map(drop)
}

/// The `/proc/self/fd/N` name of one of our own fds: the kernel follows it to exactly the
/// object `fd` refers to (no path lookup, no race), for calls that have no fd form.
pub fn magic_path(fd: BorrowedFd<'_>) -> std::ffi::CString {
    let s = format!("/proc/self/fd/{}", fd.as_raw_fd());
    // A formatted number has no NUL byte.
    std::ffi::CString::new(s).unwrap_or_default()
}

/// chmod of the object an `O_PATH` fd refers to: fchmodat2(AT_EMPTY_PATH) (Linux 6.6), else
/// chmod of its `/proc/self/fd` name.
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: the path is a valid empty C string.
    let r = cvt(unsafe {
        libc::syscall(
            452, // fchmodat2
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    });
    match r {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL)) => {
            let p = magic_path(fd);
            // SAFETY: `p` is NUL-terminated.
            cvt(unsafe { libc::chmod(p.as_ptr(), mode) }.into()).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// fchmod(2).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }.into()).map(drop)
}

/// fchownat(2) with `AT_EMPTY_PATH`: chown of the object `fd` refers to (`O_PATH` fds too).
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: the path is a valid empty C string.
    cvt(
        unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) }
            .into(),
    )
    .map(drop)
}

/// utimensat(2) of the object `fd` refers to: `AT_EMPTY_PATH`, else its `/proc/self/fd` name
/// (kernels before 5.8 reject `AT_EMPTY_PATH` here). `times` None is "now".
pub fn utimens_fd(fd: BorrowedFd<'_>, times: Option<[Timespec; 2]>) -> io::Result<()> {
    let ptr = times.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: the path is a valid empty C string; `ptr` is null or two valid timespecs.
    let r = cvt(
        unsafe { libc::utimensat(fd.as_raw_fd(), c"".as_ptr(), ptr, libc::AT_EMPTY_PATH) }.into(),
    );
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let p = magic_path(fd);
            // SAFETY: `p` is NUL-terminated; `ptr` as above.
            cvt(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), ptr, 0) }.into()).map(drop)
        }
        r => r.map(drop),
    }
}

/// Reopens the object an fd (typically `O_PATH`) refers to with new open flags, through its
/// `/proc/self/fd` name (the kernel checks permissions as for a fresh open).
pub fn reopen(fd: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
    let p = magic_path(fd);
    // SAFETY: `p` is NUL-terminated; a mode is only read with O_CREAT, which is not passed.
    let r =
        cvt(unsafe { libc::open(p.as_ptr(), (flags & !libc::O_CREAT) | libc::O_CLOEXEC) }.into())?;
    Ok(owned(r))
}

/// ftruncate(2).
pub fn ftruncate(fd: BorrowedFd<'_>, len: i64) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::ftruncate64(fd.as_raw_fd(), len) }.into()).map(drop)
}

/// fsync(2) (`data_only`: fdatasync(2)).
pub fn fsync(fd: BorrowedFd<'_>, data_only: bool) -> io::Result<()> {
    // SAFETY: no memory is involved.
    let r = unsafe {
        if data_only {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    };
    cvt(r.into()).map(drop)
}

/// syncfs(2).
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::syncfs(fd.as_raw_fd()) }.into()).map(drop)
}

/// sync(2).
pub fn sync() {
    // SAFETY: no arguments.
    unsafe { libc::sync() }
}

/// fallocate(2).
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, offset: i64, len: i64) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::fallocate64(fd.as_raw_fd(), mode, offset, len) }.into()).map(drop)
}

/// fadvise64(2).
pub fn fadvise(fd: BorrowedFd<'_>, offset: i64, len: i64, advice: i32) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::syscall(libc::SYS_fadvise64, fd.as_raw_fd(), offset, len, advice) })
        .map(drop)
}

/// readahead(2).
pub fn readahead(fd: BorrowedFd<'_>, offset: i64, count: usize) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::syscall(libc::SYS_readahead, fd.as_raw_fd(), offset, count) }).map(drop)
}

/// sync_file_range(2).
pub fn sync_file_range(fd: BorrowedFd<'_>, offset: i64, len: i64, flags: u32) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_sync_file_range,
            fd.as_raw_fd(),
            offset,
            len,
            flags,
        )
    })
    .map(drop)
}

/// flock(2).
pub fn flock(fd: BorrowedFd<'_>, op: i32) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::flock(fd.as_raw_fd(), op) }.into()).map(drop)
}

/// pipe2(2); the host ends are always `O_CLOEXEC`.
pub fn pipe2(flags: i32) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a writable int[2].
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), flags | libc::O_CLOEXEC) }.into())?;
    Ok((owned(fds[0].into()), owned(fds[1].into())))
}

/// eventfd2(2); always `EFD_CLOEXEC` on the host.
pub fn eventfd(initval: u32, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: no memory is involved.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_eventfd2, initval, flags | libc::EFD_CLOEXEC) })?;
    Ok(owned(fd))
}

/// memfd_create(2) holding `data`, reopened read-only (the guest gets a file it cannot
/// change, like a /proc file).
pub fn memfd_with(name: &CStr, data: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated.
    let fd = owned(cvt(unsafe {
        libc::syscall(libc::SYS_memfd_create, name.as_ptr(), libc::MFD_CLOEXEC)
    })?);
    let mut done = 0;
    while done < data.len() {
        let n = write(fd.as_fd(), data.get(done..).unwrap_or_default())?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        done += n;
    }
    reopen(fd.as_fd(), libc::O_RDONLY)
}

/// umask(2); returns the previous mask.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: no memory is involved.
    unsafe { libc::umask(mask) }
}

/// socket(2); always `SOCK_CLOEXEC` on the host.
pub fn socket(domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: no memory is involved.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) }.into())?;
    Ok(owned(fd))
}

/// socketpair(2); always `SOCK_CLOEXEC` on the host.
pub fn socketpair(domain: i32, ty: i32, protocol: i32) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    cvt(
        // SAFETY: `fds` is a writable int[2].
        unsafe { libc::socketpair(domain, ty | libc::SOCK_CLOEXEC, protocol, fds.as_mut_ptr()) }
            .into(),
    )?;
    Ok((owned(fds[0].into()), owned(fds[1].into())))
}

/// bind(2) (`connect`: connect(2)) to the raw socket address `addr`.
pub fn bind_or_connect(fd: BorrowedFd<'_>, addr: &[u8], connect: bool) -> io::Result<()> {
    let len = addr.len() as libc::socklen_t;
    let p = addr.as_ptr().cast::<libc::sockaddr>();
    // SAFETY: `p` points to `len` readable bytes; the kernel copies at most `len`.
    let r = unsafe {
        if connect {
            libc::connect(fd.as_raw_fd(), p, len)
        } else {
            libc::bind(fd.as_raw_fd(), p, len)
        }
    };
    cvt(r.into()).map(drop)
}

/// listen(2).
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) }.into()).map(drop)
}

/// shutdown(2).
pub fn shutdown(fd: BorrowedFd<'_>, how: i32) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) }.into()).map(drop)
}

/// accept4(2); the peer address goes to `addr` (its full length is returned, as the kernel
/// reports it). Always `SOCK_CLOEXEC` on the host.
pub fn accept4(fd: BorrowedFd<'_>, addr: &mut [u8], flags: i32) -> io::Result<(OwnedFd, usize)> {
    let mut len = addr.len() as libc::socklen_t;
    // SAFETY: `addr` is writable for `len` bytes and `len` is a valid socklen_t.
    let r = cvt(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            addr.as_mut_ptr().cast(),
            &mut len,
            flags | libc::SOCK_CLOEXEC,
        )
    }
    .into())?;
    Ok((owned(r), len as usize))
}

/// getsockname(2) (`peer`: getpeername(2)) into `addr`; returns the full address length.
pub fn sock_name(fd: BorrowedFd<'_>, addr: &mut [u8], peer: bool) -> io::Result<usize> {
    let mut len = addr.len() as libc::socklen_t;
    let p = addr.as_mut_ptr().cast::<libc::sockaddr>();
    // SAFETY: `p` is writable for `len` bytes.
    let r = unsafe {
        if peer {
            libc::getpeername(fd.as_raw_fd(), p, &mut len)
        } else {
            libc::getsockname(fd.as_raw_fd(), p, &mut len)
        }
    };
    cvt(r.into())?;
    Ok(len as usize)
}

/// sendto(2) with an optional raw destination address.
pub fn sendto(
    fd: BorrowedFd<'_>,
    data: &[u8],
    flags: i32,
    addr: Option<&[u8]>,
) -> io::Result<usize> {
    let (p, len) = addr.map_or((std::ptr::null(), 0), |a| {
        (
            a.as_ptr().cast::<libc::sockaddr>(),
            a.len() as libc::socklen_t,
        )
    });
    // SAFETY: `data` is readable for its length; `p` is null or readable for `len` bytes.
    cvt(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            flags,
            p,
            len,
        )
    } as i64)
    .map(|n| n as usize)
}

/// recvfrom(2); the source address goes to `addr` (full length returned; 0 if none).
pub fn recvfrom(
    fd: BorrowedFd<'_>,
    data: &mut [u8],
    flags: i32,
    addr: &mut [u8],
) -> io::Result<(usize, usize)> {
    let mut len = addr.len() as libc::socklen_t;
    let p = if addr.is_empty() {
        std::ptr::null_mut()
    } else {
        addr.as_mut_ptr().cast::<libc::sockaddr>()
    };
    let lp = if addr.is_empty() {
        std::ptr::null_mut()
    } else {
        &mut len as *mut libc::socklen_t
    };
    // SAFETY: `data` is writable for its length; `p`/`lp` are null or describe `addr`.
    let n = cvt(unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            data.as_mut_ptr().cast(),
            data.len(),
            flags,
            p,
            lp,
        )
    } as i64)?;
    Ok((n as usize, if addr.is_empty() { 0 } else { len as usize }))
}

/// The result of [`recvmsg`].
pub struct RecvMsg {
    /// Bytes received (the full datagram length with `MSG_TRUNC`).
    pub len: usize,
    /// Length of the source address the kernel reports.
    pub name_len: usize,
    /// Bytes of control data written.
    pub control_len: usize,
    /// `msg_flags`.
    pub flags: i32,
    /// The fds the kernel installed for SCM_RIGHTS / SCM_PIDFD control messages, with the
    /// byte offset of each `int` in the control buffer.
    pub fds: Vec<(usize, OwnedFd)>,
}

/// `SCM_RIGHTS`.
pub const SCM_RIGHTS: i32 = 1;
/// `SCM_PIDFD` (Linux 6.5): also carries an fd.
pub const SCM_PIDFD: i32 = 4;
/// Size of `struct cmsghdr` on x86_64.
pub const CMSG_HDR: usize = 16;

/// The control messages in `control`: (offset of the header, level, type, data range end).
/// Stops at a malformed header; a message running past the end is cut at the end.
pub fn cmsgs(control: &[u8]) -> Vec<(usize, i32, i32, usize)> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + CMSG_HDR <= control.len() {
        let word = |a: usize, n: usize| control.get(off + a..off + a + n);
        let (Some(l), Some(lv), Some(ty)) = (word(0, 8), word(8, 4), word(12, 4)) else {
            break;
        };
        let mut b8 = [0u8; 8];
        let mut b4 = [0u8; 4];
        b8.copy_from_slice(l);
        let len = u64::from_le_bytes(b8) as usize;
        if len < CMSG_HDR {
            break;
        }
        b4.copy_from_slice(lv);
        let level = i32::from_le_bytes(b4);
        b4.copy_from_slice(ty);
        let kind = i32::from_le_bytes(b4);
        let end = off.saturating_add(len).min(control.len());
        out.push((off, level, kind, end));
        off = off.saturating_add(len.next_multiple_of(8));
    }
    out
}

/// sendmsg(2) of one data buffer with an optional address and raw control data (in which
/// any fds are already host fds).
pub fn sendmsg(
    fd: BorrowedFd<'_>,
    name: Option<&[u8]>,
    data: &[u8],
    control: &[u8],
    flags: i32,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(n) = name {
        msg.msg_name = n.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = n.len() as libc::socklen_t;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !control.is_empty() {
        msg.msg_control = control.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len();
    }
    // SAFETY: every pointer in `msg` describes a live buffer of the given length that the
    // kernel only reads.
    cvt(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) } as i64).map(|n| n as usize)
}

/// recvmsg(2) into one data buffer, an address buffer and a control buffer. Always
/// `MSG_CMSG_CLOEXEC` on the host.
pub fn recvmsg(
    fd: BorrowedFd<'_>,
    name: &mut [u8],
    data: &mut [u8],
    control: &mut [u8],
    flags: i32,
) -> io::Result<RecvMsg> {
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if !name.is_empty() {
        msg.msg_name = name.as_mut_ptr().cast();
        msg.msg_namelen = name.len() as libc::socklen_t;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !control.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
    }
    // SAFETY: every pointer in `msg` describes a live, writable buffer of the given length.
    let n = cvt(
        unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags | libc::MSG_CMSG_CLOEXEC) } as i64,
    )?;
    let control_len = if control.is_empty() {
        0
    } else {
        msg.msg_controllen.min(control.len())
    };
    let mut fds = Vec::new();
    for (off, level, kind, end) in cmsgs(control.get(..control_len).unwrap_or_default()) {
        if level != libc::SOL_SOCKET || (kind != SCM_RIGHTS && kind != SCM_PIDFD) {
            continue;
        }
        let mut at = off + CMSG_HDR;
        while at + 4 <= end {
            let mut b = [0u8; 4];
            b.copy_from_slice(control.get(at..at + 4).unwrap_or(&[0xff; 4]));
            let raw = i32::from_le_bytes(b);
            if raw >= 0 {
                // The kernel installed this fd into our table during this very call (with
                // MSG_CMSG_CLOEXEC); nobody else knows its number.
                fds.push((at, owned(raw.into())));
            }
            at += 4;
        }
    }
    Ok(RecvMsg {
        len: n as usize,
        name_len: if name.is_empty() {
            0
        } else {
            msg.msg_namelen as usize
        },
        control_len,
        flags: msg.msg_flags,
        fds,
    })
}

/// getsockopt(2) into `val`; returns the length the kernel reports.
pub fn getsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, val: &mut [u8]) -> io::Result<usize> {
    let mut len = val.len() as libc::socklen_t;
    // SAFETY: `val` is writable for `len` bytes; the caller's allowlist excludes options whose
    // value holds pointers or creates fds.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val.as_mut_ptr().cast(),
            &mut len,
        )
    }
    .into())?;
    Ok(len as usize)
}

/// setsockopt(2) from `val`.
pub fn setsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, val: &[u8]) -> io::Result<()> {
    // SAFETY: `val` is readable for its length; the caller's allowlist excludes options whose
    // value holds pointers or fds.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val.as_ptr().cast(),
            val.len() as libc::socklen_t,
        )
    }
    .into())
    .map(drop)
}

/// ppoll(2) on host `pollfd`s (`timeout` None waits forever); `timeout` is updated with the
/// time left, as the kernel does.
pub fn ppoll(fds: &mut [libc::pollfd], timeout: &mut Option<Timespec>) -> io::Result<usize> {
    // SAFETY: `fds` is a writable array of its length; the timeout is null or a valid
    // timespec; no signal mask is passed.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            timespec_mut(timeout),
            std::ptr::null::<libc::sigset_t>(),
            8usize,
        )
    })
    .map(|n| n as usize)
}

/// epoll_create1(2); always `EPOLL_CLOEXEC` on the host.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no memory is involved.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }.into())?;
    Ok(owned(fd))
}

/// Size of x86_64 `struct epoll_event` (packed).
pub const EPOLL_EVENT_SIZE: usize = 12;
const _: () = assert!(std::mem::size_of::<libc::epoll_event>() == EPOLL_EVENT_SIZE);

/// epoll_ctl(2) with a raw 12-byte event (or none for `EPOLL_CTL_DEL`).
pub fn epoll_ctl(
    epfd: BorrowedFd<'_>,
    op: i32,
    fd: BorrowedFd<'_>,
    event: Option<[u8; EPOLL_EVENT_SIZE]>,
) -> io::Result<()> {
    let mut ev = event.map(|b| {
        let mut e = libc::epoll_event { events: 0, u64: 0 };
        let mut w = [0u8; 4];
        let mut d = [0u8; 8];
        w.copy_from_slice(b.get(..4).unwrap_or(&[0; 4]));
        d.copy_from_slice(b.get(4..12).unwrap_or(&[0; 8]));
        e.events = u32::from_le_bytes(w);
        e.u64 = u64::from_le_bytes(d);
        e
    });
    let p = ev
        .as_mut()
        .map_or(std::ptr::null_mut(), |e| e as *mut libc::epoll_event);
    // SAFETY: `p` is null or a valid epoll_event.
    cvt(unsafe { libc::epoll_ctl(epfd.as_raw_fd(), op, fd.as_raw_fd(), p) }.into()).map(drop)
}

/// epoll_pwait2(2)-style wait (`timeout` None waits forever); returns raw 12-byte events.
pub fn epoll_wait(
    epfd: BorrowedFd<'_>,
    max: usize,
    timeout: Option<Timespec>,
) -> io::Result<Vec<[u8; EPOLL_EVENT_SIZE]>> {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; max];
    let ms = timeout.map_or(-1, |t| {
        let ms = t.tv_sec.saturating_mul(1000) + (t.tv_nsec + 999_999) / 1_000_000;
        ms.clamp(0, i64::from(i32::MAX)) as i32
    });
    // SAFETY: `events` is a writable array of `max` epoll_events.
    let n =
        cvt(
            unsafe { libc::epoll_wait(epfd.as_raw_fd(), events.as_mut_ptr(), max as i32, ms) }
                .into(),
        )?;
    Ok(events
        .iter()
        .take(n as usize)
        .map(|e| {
            let mut b = [0u8; EPOLL_EVENT_SIZE];
            let (w, d) = ({ e.events }, { e.u64 });
            b[..4].copy_from_slice(&w.to_le_bytes());
            b[4..].copy_from_slice(&d.to_le_bytes());
            b
        })
        .collect())
}

/// sendfile(2); `offset` None uses and moves the input file position.
pub fn sendfile(
    out: BorrowedFd<'_>,
    input: BorrowedFd<'_>,
    offset: &mut Option<i64>,
    count: usize,
) -> io::Result<usize> {
    let p = offset
        .as_mut()
        .map_or(std::ptr::null_mut(), |o| o as *mut i64);
    // SAFETY: `p` is null or a valid off_t.
    cvt(unsafe { libc::sendfile64(out.as_raw_fd(), input.as_raw_fd(), p, count) } as i64)
        .map(|n| n as usize)
}

/// copy_file_range(2) (`splice`: splice(2) with the same argument shape).
pub fn copy_range(
    input: BorrowedFd<'_>,
    off_in: &mut Option<i64>,
    out: BorrowedFd<'_>,
    off_out: &mut Option<i64>,
    len: usize,
    flags: u32,
    splice: bool,
) -> io::Result<usize> {
    let pi = off_in
        .as_mut()
        .map_or(std::ptr::null_mut(), |o| o as *mut i64);
    let po = off_out
        .as_mut()
        .map_or(std::ptr::null_mut(), |o| o as *mut i64);
    let nr = if splice {
        libc::SYS_splice
    } else {
        libc::SYS_copy_file_range
    };
    // SAFETY: `pi`/`po` are null or valid loff_t values; no other memory is involved.
    cvt(unsafe { libc::syscall(nr, input.as_raw_fd(), pi, out.as_raw_fd(), po, len, flags) })
        .map(|n| n as usize)
}

/// tee(2).
pub fn tee(
    input: BorrowedFd<'_>,
    out: BorrowedFd<'_>,
    len: usize,
    flags: u32,
) -> io::Result<usize> {
    // SAFETY: no memory is involved.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_tee,
            input.as_raw_fd(),
            out.as_raw_fd(),
            len,
            flags,
        )
    })
    .map(|n| n as usize)
}

/// The VMM's process group (the job's first process's, as the program sees it).
pub fn process_group() -> i32 {
    // SAFETY: getpgrp has no preconditions and cannot fail.
    unsafe { libc::getpgrp() }
}

/// Real and effective user and group ids of the VMM (which the program gets too).
pub fn ids() -> [u32; 4] {
    // SAFETY: these calls cannot fail and touch no memory.
    unsafe {
        [
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        ]
    }
}

/// Fills a range of guest RAM with zeros (the LWK's `op::ZERO_PHYS`).
pub fn zero_guest<B: vm_memory::bitmap::BitmapSlice>(slice: &vm_memory::VolatileSlice<'_, B>) {
    let guard = slice.ptr_guard_mut();
    // SAFETY: vm-memory made the slice from a range it checked to lie inside the guest RAM
    // mapping, which lives as long as the memory object the slice borrows; raw writes through
    // the pointer create no Rust reference, so a vCPU touching the same bytes is a data race
    // of the guest with itself, never host memory unsafety.
    unsafe { std::ptr::write_bytes(guard.as_ptr(), 0, guard.len()) };
    slice.bitmap().mark_dirty(0, slice.len());
}

/// Drops the host pages behind a range of guest RAM with MADV_DONTNEED: for private anonymous
/// memory (and only that: the caller knows the backing) the range reads zero afterwards, and the
/// host gets the memory back until the guest touches it again.
pub fn discard_guest<B: vm_memory::bitmap::BitmapSlice>(
    slice: &vm_memory::VolatileSlice<'_, B>,
) -> io::Result<()> {
    let guard = slice.ptr_guard_mut();
    // SAFETY: as in `zero_guest`, the range is inside the guest RAM mapping; MADV_DONTNEED
    // changes no mapping and no host data structure, only the range's contents (to zero).
    let r = unsafe { libc::madvise(guard.as_ptr().cast(), guard.len(), libc::MADV_DONTNEED) };
    if r == 0 {
        slice.bitmap().mark_dirty(0, slice.len());
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The extended-attribute calls: on a path (the caller passes `/proc/self/fd/N` of an `O_PATH`
/// fd it resolved inside the root, so the host walks no guest-chosen path) or on an open fd.
pub enum XattrTarget<'a> {
    Path(&'a CStr),
    Fd(BorrowedFd<'a>),
}

/// getxattr(2) / fgetxattr(2); an empty `buf` asks for the size.
pub fn getxattr(t: &XattrTarget<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let (p, n) = (buf.as_mut_ptr().cast(), buf.len());
    // SAFETY: `name` and the path are valid C strings; `buf` is writable for `n` bytes.
    let r = unsafe {
        match t {
            XattrTarget::Path(path) => libc::getxattr(path.as_ptr(), name.as_ptr(), p, n),
            XattrTarget::Fd(fd) => libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), p, n),
        }
    };
    cvt(r as i64).map(|n| n as usize)
}

/// listxattr(2) / flistxattr(2); an empty `buf` asks for the size.
pub fn listxattr(t: &XattrTarget<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let (p, n) = (buf.as_mut_ptr().cast(), buf.len());
    // SAFETY: the path is a valid C string; `buf` is writable for `n` bytes.
    let r = unsafe {
        match t {
            XattrTarget::Path(path) => libc::listxattr(path.as_ptr(), p, n),
            XattrTarget::Fd(fd) => libc::flistxattr(fd.as_raw_fd(), p, n),
        }
    };
    cvt(r as i64).map(|n| n as usize)
}

/// setxattr(2) / fsetxattr(2).
pub fn setxattr(t: &XattrTarget<'_>, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    let (p, n) = (value.as_ptr().cast(), value.len());
    // SAFETY: `name` and the path are valid C strings; `value` is readable for `n` bytes.
    let r = unsafe {
        match t {
            XattrTarget::Path(path) => libc::setxattr(path.as_ptr(), name.as_ptr(), p, n, flags),
            XattrTarget::Fd(fd) => libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), p, n, flags),
        }
    };
    cvt(r.into()).map(drop)
}

/// removexattr(2) / fremovexattr(2).
pub fn removexattr(t: &XattrTarget<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` and the path are valid C strings.
    let r = unsafe {
        match t {
            XattrTarget::Path(path) => libc::removexattr(path.as_ptr(), name.as_ptr()),
            XattrTarget::Fd(fd) => libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()),
        }
    };
    cvt(r.into()).map(drop)
}
