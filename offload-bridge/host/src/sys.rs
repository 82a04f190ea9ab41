//! Host syscalls as small safe functions over `libc`: the only `unsafe` in this crate. Every
//! function takes Rust-owned buffers and borrowed fds, so the kernel never sees a pointer into
//! guest memory or a dangling fd.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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
    // SAFETY: openat2 returned a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
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

/// fcntl(2) with an integer argument.
pub fn fcntl_int(fd: BorrowedFd<'_>, cmd: i32, arg: i64) -> io::Result<i64> {
    // SAFETY: integer-argument commands do not access memory.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, arg) }.into())
}

/// Size of Linux x86_64 `struct flock`.
pub const FLOCK_SIZE: usize = 32;
const _: () = assert!(std::mem::size_of::<libc::flock>() == FLOCK_SIZE);

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
