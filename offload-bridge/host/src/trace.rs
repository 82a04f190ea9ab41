//! `--trace`: one strace-like line per syscall the program made.
//!
//! The LWK sends a record after each syscall (number, raw arguments, result, duration); this
//! module decodes it into `pid disposition name(args) = result <seconds>`. Names and the
//! local/offloaded/unsupported marker come from the one syscall table; arguments are decoded
//! for the common calls (strings and buffers are read from guest memory through the checked
//! `GuestView`, after the call, as strace shows them); other calls show their raw arguments.

use crate::GuestView;
use crate::guest_mem::{GuestRange, In};
use offload_abi::syscalls::{Disposition, disposition, name, nr};
use std::fmt::Write as _;
use vm_memory::GuestMemoryBackend;

/// How to show one argument.
#[derive(Clone, Copy)]
enum Arg {
    Int,
    Hex,
    Fd,
    DirFd,
    Path,
    /// A buffer the call reads, its length in argument `n`.
    InBuf(usize),
    /// A buffer the call filled, its length in the result.
    OutBuf,
    OpenFlags,
    Mode,
    Prot,
    MapFlags,
    Whence,
    AtFlags,
    Ptr,
}

/// Argument kinds of the calls decoded in detail.
fn spec(number: u64) -> Option<&'static [Arg]> {
    use Arg::*;
    Some(match number {
        nr::read => &[Fd, OutBuf, Int],
        nr::write => &[Fd, InBuf(2), Int],
        nr::pread64 => &[Fd, OutBuf, Int, Int],
        nr::pwrite64 => &[Fd, InBuf(2), Int, Int],
        nr::readv | nr::writev => &[Fd, Ptr, Int],
        nr::open => &[Path, OpenFlags, Mode],
        nr::openat => &[DirFd, Path, OpenFlags, Mode],
        nr::close | nr::dup | nr::fsync | nr::fdatasync => &[Fd],
        nr::dup2 => &[Fd, Fd],
        nr::dup3 => &[Fd, Fd, OpenFlags],
        nr::stat | nr::lstat => &[Path, Ptr],
        nr::fstat => &[Fd, Ptr],
        nr::newfstatat => &[DirFd, Path, Ptr, AtFlags],
        nr::access => &[Path, Mode],
        nr::faccessat => &[DirFd, Path, Mode],
        nr::faccessat2 => &[DirFd, Path, Mode, AtFlags],
        nr::readlink => &[Path, OutBuf, Int],
        nr::readlinkat => &[DirFd, Path, OutBuf, Int],
        nr::getcwd => &[OutBuf, Int],
        nr::lseek => &[Fd, Int, Whence],
        nr::ioctl => &[Fd, Hex, Ptr],
        nr::fcntl => &[Fd, Int, Hex],
        nr::mmap => &[Ptr, Int, Prot, MapFlags, Fd, Hex],
        nr::mprotect => &[Ptr, Int, Prot],
        nr::munmap => &[Ptr, Int],
        nr::madvise => &[Ptr, Int, Int],
        nr::brk => &[Ptr],
        nr::arch_prctl => &[Hex, Ptr],
        nr::set_tid_address => &[Ptr],
        nr::set_robust_list => &[Ptr, Int],
        nr::exit | nr::exit_group => &[Int],
        nr::clock_gettime | nr::clock_getres => &[Int, Ptr],
        nr::gettimeofday => &[Ptr, Ptr],
        nr::getrandom => &[Ptr, Int, Hex],
        nr::prlimit64 => &[Int, Int, Ptr, Ptr],
        nr::getrlimit => &[Int, Ptr],
        nr::uname | nr::time => &[Ptr],
        nr::rseq => &[Ptr, Int, Hex, Hex],
        nr::getpid
        | nr::gettid
        | nr::getppid
        | nr::getuid
        | nr::geteuid
        | nr::getgid
        | nr::getegid
        | nr::sched_yield => &[],
        _ => return None,
    })
}

/// Shows at most this many bytes of a buffer.
const SHOW_BYTES: usize = 32;

fn quoted(bytes: &[u8], truncated: bool) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    if truncated {
        s.push_str("...");
    }
    s
}

fn buffer<M: GuestMemoryBackend>(mem: &GuestView<'_, M>, addr: u64, len: u64) -> String {
    let show = len.min(SHOW_BYTES as u64);
    match mem.read(GuestRange::<In>::new(addr, show)) {
        Ok(b) => quoted(&b, len > show),
        Err(_) => format!("{addr:#x}"),
    }
}

fn flags(value: u64, names: &[(u64, &str)], zero: &str) -> String {
    let mut parts = Vec::new();
    let mut rest = value;
    for &(bit, n) in names {
        if bit != 0 && value & bit == bit {
            parts.push(n.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        zero.to_string()
    } else {
        parts.join("|")
    }
}

fn open_flags(v: u64) -> String {
    let v = v & 0xffff_ffff;
    let access = match v & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let others = flags(
        v & !3,
        &[
            (0o100, "O_CREAT"),
            (0o200, "O_EXCL"),
            (0o400, "O_NOCTTY"),
            (0o1000, "O_TRUNC"),
            (0o2000, "O_APPEND"),
            (0o4000, "O_NONBLOCK"),
            (0o40000, "O_DIRECT"),
            (0o200000, "O_DIRECTORY"),
            (0o400000, "O_NOFOLLOW"),
            (0o2000000, "O_CLOEXEC"),
            (0o10000000, "O_PATH"),
        ],
        "",
    );
    if others.is_empty() {
        access.to_string()
    } else {
        format!("{access}|{others}")
    }
}

fn arg<M: GuestMemoryBackend>(
    mem: &GuestView<'_, M>,
    kind: Arg,
    value: u64,
    args: &[u64; 6],
    ret: Option<i64>,
) -> String {
    match kind {
        Arg::Int => (value as i64).to_string(),
        Arg::Hex => format!("{value:#x}"),
        Arg::Fd => (value as i32).to_string(),
        Arg::DirFd if value as i32 == -100 => "AT_FDCWD".into(),
        Arg::DirFd => (value as i32).to_string(),
        Arg::Path => match mem.read_cstr(value, 4095) {
            Ok(p) => quoted(&p, false),
            Err(_) => format!("{value:#x}"),
        },
        Arg::InBuf(n) => buffer(mem, value, args.get(n).copied().unwrap_or(0)),
        Arg::OutBuf => match ret {
            Some(r) if r > 0 => buffer(mem, value, r as u64),
            _ => format!("{value:#x}"),
        },
        Arg::OpenFlags => open_flags(value),
        Arg::Mode => format!("0{:o}", value & 0o7777),
        Arg::Prot => flags(
            value,
            &[(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")],
            "PROT_NONE",
        ),
        Arg::MapFlags => flags(
            value & 0xffff_ffff,
            &[
                (0x01, "MAP_SHARED"),
                (0x02, "MAP_PRIVATE"),
                (0x10, "MAP_FIXED"),
                (0x20, "MAP_ANONYMOUS"),
                (0x100, "MAP_GROWSDOWN"),
                (0x4000, "MAP_NORESERVE"),
                (0x8000, "MAP_POPULATE"),
                (0x20000, "MAP_STACK"),
                (0x40000, "MAP_HUGETLB"),
                (0x100000, "MAP_FIXED_NOREPLACE"),
            ],
            "0",
        ),
        Arg::Whence => match value as i32 {
            0 => "SEEK_SET".into(),
            1 => "SEEK_CUR".into(),
            2 => "SEEK_END".into(),
            w => w.to_string(),
        },
        Arg::AtFlags => flags(
            value & 0xffff_ffff,
            &[
                (0x100, "AT_SYMLINK_NOFOLLOW"),
                (0x200, "AT_EACCESS"),
                (0x800, "AT_NO_AUTOMOUNT"),
                (0x1000, "AT_EMPTY_PATH"),
            ],
            "0",
        ),
        Arg::Ptr if value == 0 => "NULL".into(),
        Arg::Ptr => format!("{value:#x}"),
    }
}

/// The symbolic name of an errno.
pub fn errno_name(e: i64) -> String {
    const NAMES: &[&str] = &[
        "",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
    ];
    usize::try_from(e)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("E{e}"), |n| n.to_string())
}

fn result(number: u64, ret: Option<i64>) -> String {
    let Some(r) = ret else {
        return "?".into();
    };
    if offload_abi::errno::is_error(r) {
        let msg = std::io::Error::from_raw_os_error(-r as i32).to_string();
        let msg = msg.split(" (os error").next().unwrap_or(&msg).to_string();
        return format!("-1 {} ({msg})", errno_name(-r));
    }
    let hex = matches!(number, nr::mmap | nr::brk);
    if hex {
        format!("{r:#x}")
    } else {
        r.to_string()
    }
}

/// One trace line (without the newline).
pub fn format_line<M: GuestMemoryBackend>(
    mem: &GuestView<'_, M>,
    pid: u32,
    number: u64,
    args: [u64; 6],
    ret: Option<i64>,
    ns: u64,
) -> String {
    let marker = match disposition(number) {
        Disposition::Local => "local  ",
        Disposition::Offload => "offload",
        Disposition::Unsupported(_) => "nosys  ",
    };
    let shown_name = name(number).map_or_else(|| format!("syscall_{number}"), str::to_string);
    let decoded: Vec<String> = match spec(number) {
        Some(kinds) => kinds
            .iter()
            .zip(args.iter())
            .map(|(&k, &v)| arg(mem, k, v, &args, ret))
            .collect(),
        None => {
            let used = args.iter().rposition(|&a| a != 0).map_or(0, |i| i + 1);
            args.iter().take(used).map(|a| format!("{a:#x}")).collect()
        }
    };
    let mut line = format!(
        "{pid} {marker} {shown_name}({}) = {}",
        decoded.join(", "),
        result(number, ret)
    );
    if ret.is_some() {
        let _ = write!(
            line,
            " <{}.{:06}>",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1000
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    #[test]
    fn lines_look_like_strace() {
        let mem: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let view = GuestView::new(&mem, 0x1000, false);
        let l = format_line(
            &view,
            7,
            nr::openat,
            [(-100i64) as u64, 0x4000, 0o2000000, 0, 0, 0],
            Some(-2),
            12_000,
        );
        assert_eq!(
            l,
            "7 offload openat(AT_FDCWD, 0x4000, O_RDONLY|O_CLOEXEC, 00) = -1 ENOENT (No such file or directory) <0.000012>"
        );
        let l = format_line(&view, 7, nr::getpid, [0; 6], Some(7), 1_500_000_000);
        assert_eq!(l, "7 local   getpid() = 7 <1.500000>");
        let l = format_line(&view, 7, nr::exit_group, [3, 0, 0, 0, 0, 0], None, 0);
        assert_eq!(l, "7 local   exit_group(3) = ?");
        let l = format_line(&view, 7, 999, [1, 2, 0, 0, 0, 0], Some(-38), 0);
        assert!(
            l.starts_with("7 nosys   syscall_999(0x1, 0x2) = -1 ENOSYS"),
            "{l}"
        );
    }

    #[test]
    fn strings_are_escaped_and_cut() {
        assert_eq!(quoted(b"a\n\"\x01", false), "\"a\\n\\\"\\x01\"");
        assert_eq!(quoted(b"abc", true), "\"abc\"...");
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(4000), "E4000");
    }
}
