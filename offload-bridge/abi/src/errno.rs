//! Linux errno values the LWK and the host exchange. Results travel Linux style: a
//! non-negative value, or `-errno` in the range `-4095..=-1`.

#![allow(missing_docs)]

pub const EPERM: i64 = 1;
pub const ENOENT: i64 = 2;
pub const ESRCH: i64 = 3;
pub const EINTR: i64 = 4;
pub const EIO: i64 = 5;
pub const E2BIG: i64 = 7;
pub const ENOEXEC: i64 = 8;
pub const EBADF: i64 = 9;
pub const ECHILD: i64 = 10;
pub const EAGAIN: i64 = 11;
pub const ENOMEM: i64 = 12;
pub const EACCES: i64 = 13;
pub const EFAULT: i64 = 14;
pub const EEXIST: i64 = 17;
pub const ENOTDIR: i64 = 20;
pub const EISDIR: i64 = 21;
pub const EINVAL: i64 = 22;
pub const EMFILE: i64 = 24;
pub const ENOTTY: i64 = 25;
pub const ENODEV: i64 = 19;
pub const ESPIPE: i64 = 29;
pub const ERANGE: i64 = 34;
pub const ENAMETOOLONG: i64 = 36;
pub const ENODATA: i64 = 61;
pub const ENOSYS: i64 = 38;
pub const ELOOP: i64 = 40;
pub const EOVERFLOW: i64 = 75;
pub const EXDEV: i64 = 18;
pub const ETIMEDOUT: i64 = 110;
pub const ENXIO: i64 = 6;
pub const EBUSY: i64 = 16;
pub const EPIPE: i64 = 32;
pub const ENOTEMPTY: i64 = 39;
pub const ENOTSOCK: i64 = 88;
pub const EMSGSIZE: i64 = 90;
pub const ENOPROTOOPT: i64 = 92;
pub const EOPNOTSUPP: i64 = 95;
pub const EAFNOSUPPORT: i64 = 97;
pub const EADDRINUSE: i64 = 98;
pub const ENOBUFS: i64 = 105;
pub const ENOTCONN: i64 = 107;

/// Largest errno value; results in `-MAX_ERRNO..0` are errors.
pub const MAX_ERRNO: i64 = 4095;

/// Restart codes (Linux's, never seen by the program): the answer to an offloaded call that
/// was not allowed to wait because a signal is to be taken first (see
/// [`crate::req_flags::NO_BLOCK`]). The LWK delivers the signal, then makes it EINTR or
/// restarts the call: ERESTARTSYS restarts with SA_RESTART, ERESTARTNOHAND only when no handler
/// ran, ERESTARTNOINTR always.
pub const ERESTARTSYS: i64 = 512;
pub const ERESTARTNOINTR: i64 = 513;
pub const ERESTARTNOHAND: i64 = 514;

/// Whether a Linux-style result is an error.
#[inline]
pub const fn is_error(ret: i64) -> bool {
    ret < 0 && ret >= -MAX_ERRNO
}
