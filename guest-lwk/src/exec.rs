//! execve and execveat (issue #9): a new program image for the calling process, loaded by the
//! LWK (`loader`), with `#!` scripts, Linux's argument limits, and the host closing the
//! close-on-exec fds (`op::PROC_EXEC`).
//!
//! The new image is built in a new address space while the old one is intact: an error at any
//! point (a bad ELF, no memory, the host refusing) returns to the caller as an errno, where
//! Linux would have to kill the process past its point of no return. Only then does the
//! process switch: the old address space goes (or stays with the parent that vforked), other
//! threads have already ended, caught signals go back to their defaults, POSIX timers are
//! deleted, and the calling thread starts the new program with zeroed registers.
//!
//! The argument strings are read from the old address space straight into the new stack
//! block (its frames are contiguous), in two passes: one to measure, one to copy.

use crate::arch::{self, TrapFrame};
use crate::loader::{self, AuxStrings, LoadError};
use crate::mm::{PAGE, pte};
use crate::process::{self, cur, cur_mm};
use crate::syscall::get_user;
use crate::vm::Mm;
use crate::{Kernel, KernelGuard, bridge, klog, phys, sched};
use offload_abi::errno::{
    E2BIG, EACCES, EFAULT, EINTR, EINVAL, ELOOP, ENAMETOOLONG, ENOENT, ENOEXEC, ENOMEM,
};
use offload_abi::layout;
use offload_abi::syscalls::nr;

const AT_FDCWD: i64 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EMPTY_PATH: u64 = 0x1000;
const O_RDONLY_CLOEXEC: u64 = 0o2000000;
const X_OK: u64 = 1;
/// Longest single argument or environment string, with its NUL (Linux's MAX_ARG_STRLEN).
const MAX_ARG_STRLEN: u64 = 32 * PAGE;
/// Bytes of a `#!` line Linux looks at (BINPRM_BUF_SIZE).
const BINPRM_BUF: u64 = 256;
/// Nested `#!` interpreters Linux follows before ELOOP.
const MAX_DEPTH: u32 = 4;

/// Scratch pages of one exec: the path being opened, the file's first bytes, the strings a
/// `#!` line adds in front of the arguments, the host's `stat`.
struct Scratch {
    base: u64,
}

impl Scratch {
    const PAGES: u64 = 4;
    fn path(&self) -> u64 {
        self.base
    }
    fn head(&self) -> u64 {
        self.base + PAGE
    }
    fn prefix(&self) -> u64 {
        self.base + 2 * PAGE
    }
    fn stat(&self) -> u64 {
        self.base + 3 * PAGE
    }
}

/// Strings a `#!` chain puts before the program's own arguments (in the prefix page).
struct Prefix {
    /// (offset, length without NUL) of each string.
    items: [(u16, u16); 16],
    n: usize,
    /// Bytes used in the page.
    used: u64,
    /// The program's argv[0] is replaced (the first `#!` dropped it).
    skip_argv0: bool,
}

/// execve(2) (`dirfd` AT_FDCWD, `flags` 0) and execveat(2). Returns 0 with `frame` set to
/// start the new program, or an errno with nothing changed.
pub fn execve(
    k: &mut KernelGuard,
    frame: &mut TrapFrame,
    dirfd: i64,
    path: u64,
    argv: u64,
    envp: u64,
    flags: u64,
) -> i64 {
    if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
        return -EINVAL;
    }
    let Some(base) = k.frames.alloc_contiguous(Scratch::PAGES) else {
        return -ENOMEM;
    };
    let scratch = Scratch { base };
    let r = exec_with(k, frame, &scratch, dirfd, path, argv, envp, flags);
    k.frames.free(base, Scratch::PAGES * PAGE);
    match r {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// What the opened program is.
struct Opened {
    fd: i64,
    /// The file name argv and AT_EXECFN get (`/dev/fd/N` for an fd), in the prefix page
    /// after the `#!` strings: offset and length.
    filename: (u64, u64),
    /// It was named by an fd alone (execveat AT_EMPTY_PATH): Linux names the process after the
    /// file itself, not after `/dev/fd/N`.
    by_fd: bool,
}

#[allow(clippy::too_many_arguments)]
fn exec_with(
    k: &mut KernelGuard,
    frame: &mut TrapFrame,
    s: &Scratch,
    dirfd: i64,
    path: u64,
    argv: u64,
    envp: u64,
    flags: u64,
) -> Result<(), i64> {
    let len = read_path(k, path, s.path())?;
    if len == 0 && flags & AT_EMPTY_PATH == 0 {
        return Err(-ENOENT);
    }
    let mut prefix = Prefix {
        items: [(0, 0); 16],
        n: 0,
        used: 0,
        skip_argv0: false,
    };
    let opened = open_program(s, dirfd, len, flags, &mut prefix)?;
    let mut closed = false;
    let r = exec_opened(k, frame, s, &opened, &prefix, [argv, envp], &mut closed);
    if !closed {
        bridge::kernel_syscall(nr::close, [opened.fd as u64, 0, 0, 0, 0, 0]);
    }
    r
}

/// Copies the NUL-terminated user path at `va` into the page at `pa`; returns its length.
fn read_path(k: &Kernel, va: u64, pa: u64) -> Result<u64, i64> {
    let mut done = 0u64;
    let mut chunk = [0u8; 256];
    while done < PAGE {
        let at = va.wrapping_add(done);
        let n = (PAGE - (at & (PAGE - 1)))
            .min(chunk.len() as u64)
            .min(PAGE - done) as usize;
        get_user(k, at, &mut chunk[..n])?;
        let end = nul_in(&chunk[..n]);
        phys::write_bytes(pa + done, &chunk[..end.map_or(n, |e| e + 1)]);
        if let Some(e) = end {
            return Ok(done + e as u64);
        }
        done += n as u64;
    }
    Err(-ENAMETOOLONG)
}

/// The index of the first NUL in `b` (a word at a time: every ring-0 instruction is emulated
/// on the development KVM).
fn nul_in(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(w);
        if x.wrapping_sub(LO) & !x & HI != 0 {
            break;
        }
        i += 8;
    }
    b[i..].iter().position(|&c| c == 0).map(|p| i + p)
}

fn host(nr: u64, args: [u64; 6]) -> Result<i64, i64> {
    let r = bridge::kernel_syscall(nr, args);
    if r < 0 { Err(r) } else { Ok(r) }
}

/// Opens the program named by the path page (`len` bytes) relative to `dirfd`, following
/// `#!` lines; returns the ELF program's fd (close-on-exec) and the file name.
fn open_program(
    s: &Scratch,
    dirfd: i64,
    len: u64,
    flags: u64,
    prefix: &mut Prefix,
) -> Result<Opened, i64> {
    // The file name argv[0] of an interpreter and AT_EXECFN get: the path, or /dev/fd/N[/path].
    let filename = {
        let mut name = [0u8; 32];
        let mut n = 0;
        if dirfd != AT_FDCWD && (len == 0 || phys::read_u64(s.path()) & 0xff != u64::from(b'/')) {
            let mut w = |b: &[u8]| {
                name[n..n + b.len()].copy_from_slice(b);
                n += b.len();
            };
            w(b"/dev/fd/");
            let (digits, d) = decimal(dirfd as u64);
            w(&digits[..d]);
            if len != 0 {
                w(b"/");
            }
        }
        // The prefix page's tail holds the file name: what it starts with, then the path.
        let at = PAGE - PAGE / 2;
        phys::write_bytes(s.prefix() + at, &name[..n]);
        let tail = len.min(PAGE / 2 - n as u64 - 1);
        copy_phys_bytes(s.path(), s.prefix() + at + n as u64, tail);
        phys::write_bytes(s.prefix() + at + n as u64 + tail, &[0]);
        (at, n as u64 + tail)
    };
    let mut dirfd = dirfd;
    let mut len = len;
    let mut empty = flags & AT_EMPTY_PATH != 0 && len == 0;
    let mut depth = 0;
    loop {
        let fd = if empty {
            // execveat(fd, "", AT_EMPTY_PATH): the fd itself (a duplicate the load closes).
            const F_DUPFD_CLOEXEC: u64 = 1030;
            host(nr::fcntl, [dirfd as u64, F_DUPFD_CLOEXEC, 0, 0, 0, 0])?
        } else {
            let p = phys::virt(s.path());
            host(nr::faccessat, [dirfd as u64, p, X_OK, 0, 0, 0])?;
            host(nr::openat, [dirfd as u64, p, O_RDONLY_CLOEXEC, 0, 0, 0])?
        };
        let close = |fd: i64| {
            bridge::kernel_syscall(nr::close, [fd as u64, 0, 0, 0, 0, 0]);
        };
        // A regular file with an execute bit (faccessat checked the caller's rights).
        if let Err(e) = host(nr::fstat, [fd as u64, phys::virt(s.stat()), 0, 0, 0, 0]) {
            close(fd);
            return Err(e);
        }
        let mode = phys::read_u64(s.stat() + 24) as u32;
        if mode & 0o170000 != 0o100000 || mode & 0o111 == 0 {
            close(fd);
            return Err(-EACCES);
        }
        let n = match host(
            nr::pread64,
            [fd as u64, phys::virt(s.head()), BINPRM_BUF, 0, 0, 0],
        ) {
            Ok(n) => n as u64,
            Err(e) => {
                close(fd);
                return Err(e);
            }
        };
        let mut head = [0u8; BINPRM_BUF as usize];
        phys::read_bytes(s.head(), &mut head);
        let head = &head[..n as usize];
        if head.starts_with(b"#!") {
            close(fd);
            if depth == MAX_DEPTH {
                return Err(-ELOOP);
            }
            depth += 1;
            let (interp, arg) = parse_shebang(head)?;
            // argv becomes: interpreter, its argument, the script's name, the rest.
            let script = if depth == 1 {
                filename
            } else {
                (PAGE - PAGE / 2, 0) // replaced below: the previous interpreter's path
            };
            push_script(s, prefix, head, interp, arg, script, len)?;
            phys::write_bytes(s.path(), &head[interp.0..interp.1]);
            phys::write_bytes(s.path() + (interp.1 - interp.0) as u64, &[0]);
            len = (interp.1 - interp.0) as u64;
            dirfd = AT_FDCWD;
            empty = false;
            continue;
        }
        let elf = head.len() >= 20
            && head[0..4] == *b"\x7fELF"
            && head[4] == 2
            && head[5] == 1
            && u16::from_le_bytes([head[18], head[19]]) == 62
            && matches!(u16::from_le_bytes([head[16], head[17]]), 2 | 3);
        if !elf {
            close(fd);
            return Err(-ENOEXEC);
        }
        return Ok(Opened {
            fd,
            filename,
            by_fd: flags & AT_EMPTY_PATH != 0 && depth == 0 && len == 0,
        });
    }
}

/// The decimal digits of `v` and how many there are.
fn decimal(mut v: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut d = 0;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    digits[..d].reverse();
    (digits, d)
}

/// Copies `len` bytes between guest-physical ranges (short: path strings).
fn copy_phys_bytes(from: u64, to: u64, len: u64) {
    let mut buf = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        phys::read_bytes(from + done, &mut buf[..n]);
        phys::write_bytes(to + done, &buf[..n]);
        done += n as u64;
    }
}

/// The interpreter and its optional argument of a `#!` line (byte ranges in `head`).
#[allow(clippy::type_complexity)]
fn parse_shebang(head: &[u8]) -> Result<((usize, usize), Option<(usize, usize)>), i64> {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let blank = |b: u8| b == b' ' || b == b'\t';
    let mut i = 2;
    while i < end && blank(head[i]) {
        i += 1;
    }
    let start = i;
    while i < end && !blank(head[i]) && head[i] != 0 {
        i += 1;
    }
    if i == start {
        return Err(-ENOEXEC);
    }
    let interp = (start, i);
    while i < end && blank(head[i]) {
        i += 1;
    }
    let mut j = end;
    while j > i && (blank(head[j - 1]) || head[j - 1] == 0) {
        j -= 1;
    }
    if let Some(z) = head[i..j].iter().position(|&b| b == 0) {
        j = i + z;
    }
    let arg = (j > i).then_some((i, j));
    Ok((interp, arg))
}

/// Records one `#!` level: the new argument list starts with the interpreter, its argument
/// and the script's name, followed by the old list without its first string.
fn push_script(
    s: &Scratch,
    p: &mut Prefix,
    head: &[u8],
    interp: (usize, usize),
    arg: Option<(usize, usize)>,
    script: (u64, u64),
    path_len: u64,
) -> Result<(), i64> {
    // The old list loses its first string: a prefix string, or the program's argv[0].
    let mut old: [(u16, u16); 16] = [(0, 0); 16];
    let old_n = p.n;
    old[..old_n].copy_from_slice(&p.items[..old_n]);
    let (rest, rest_n) = if old_n > 0 {
        (&old[1..old_n], old_n - 1)
    } else {
        p.skip_argv0 = true;
        (&old[..0], 0)
    };
    let add = |p: &mut Prefix, bytes_at: Option<u64>, data: &[u8], len: u64| {
        if p.n == p.items.len() || p.used + len + 1 > PAGE / 2 {
            return Err(-E2BIG);
        }
        let at = p.used;
        match bytes_at {
            Some(src) => copy_phys_bytes(src, s.prefix() + at, len),
            None => phys::write_bytes(s.prefix() + at, data),
        }
        phys::write_bytes(s.prefix() + at + len, &[0]);
        p.items[p.n] = (at as u16, len as u16);
        p.n += 1;
        p.used += len + 1;
        Ok(())
    };
    let mut fresh = Prefix {
        items: [(0, 0); 16],
        n: 0,
        used: p.used,
        skip_argv0: p.skip_argv0,
    };
    add(
        &mut fresh,
        None,
        &head[interp.0..interp.1],
        (interp.1 - interp.0) as u64,
    )?;
    if let Some(a) = arg {
        add(&mut fresh, None, &head[a.0..a.1], (a.1 - a.0) as u64)?;
    }
    if script.1 != 0 {
        add(&mut fresh, Some(s.prefix() + script.0), &[], script.1)?;
    } else {
        // A nested script: its name is the path just opened (the previous interpreter).
        add(&mut fresh, Some(s.path()), &[], path_len)?;
    }
    for &(o, l) in rest.iter().take(rest_n) {
        if fresh.n == fresh.items.len() {
            return Err(-E2BIG);
        }
        fresh.items[fresh.n] = (o, l);
        fresh.n += 1;
    }
    *p = fresh;
    Ok(())
}

/// Measures a NULL-terminated user array of strings (`vec` may be NULL: empty); returns the
/// count and the bytes of the strings with their NULs.
fn measure(k: &Kernel, vec: u64, skip: usize) -> Result<(u64, u64), i64> {
    let mut count = 0u64;
    let mut bytes = 0u64;
    if vec == 0 {
        return Ok((0, 0));
    }
    let mut i = 0u64;
    loop {
        let ptr = read_ptr(k, vec, i)?;
        if ptr == 0 {
            break;
        }
        if i as usize >= skip {
            let n = strnlen_user(k, ptr, MAX_ARG_STRLEN)?;
            if n >= MAX_ARG_STRLEN {
                return Err(-E2BIG);
            }
            count += 1;
            bytes += n + 1;
        }
        i += 1;
        if i > 1 << 21 {
            return Err(-E2BIG);
        }
    }
    Ok((count, bytes))
}

fn read_ptr(k: &Kernel, vec: u64, i: u64) -> Result<u64, i64> {
    let mut b = [0u8; 8];
    get_user(k, vec.wrapping_add(i * 8), &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Length of the user string at `va` (at most `max`; `max` itself when longer).
fn strnlen_user(k: &Kernel, va: u64, max: u64) -> Result<u64, i64> {
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < max {
        let at = va.wrapping_add(done);
        let n = (PAGE - (at & (PAGE - 1))).min(chunk.len() as u64) as usize;
        get_user(k, at, &mut chunk[..n])?;
        if let Some(e) = nul_in(&chunk[..n]) {
            return Ok(done + e as u64);
        }
        done += n as u64;
    }
    Ok(max)
}

/// Copies the user string at `va` (with its NUL, `len` + 1 bytes) to guest-physical `pa`.
fn copy_string(k: &Kernel, va: u64, pa: u64, len: u64) -> Result<(), i64> {
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    let total = len + 1;
    while done < total {
        let at = va.wrapping_add(done);
        let n = (PAGE - (at & (PAGE - 1)))
            .min(chunk.len() as u64)
            .min(total - done) as usize;
        get_user(k, at, &mut chunk[..n])?;
        phys::write_bytes(pa + done, &chunk[..n]);
        done += n as u64;
    }
    // The string may have changed since it was measured: the copy ends with a NUL anyway.
    phys::write_bytes(pa + total - 1, &[0]);
    Ok(())
}

/// Ends every other thread of the calling process (exec keeps only the caller). `Err`: the
/// process was killed meanwhile. Called once the new image is built: every failure before it
/// leaves the process as it was.
fn de_thread(k: &mut KernelGuard) -> Result<(), i64> {
    let me = arch::current_slot();
    let p = cur();
    if k.procs[p].threads <= 1 {
        return Ok(());
    }
    k.procs[p].exec_waiter = Some(me);
    process::kill_threads(k, p, Some(me));
    while k.procs[p].threads > 1 {
        if k.procs[p].exec_waiter != Some(me) {
            return Err(-EINTR);
        }
        sched::block(k, None);
    }
    if k.procs[p].exec_waiter != Some(me) {
        return Err(-EINTR);
    }
    k.procs[p].exec_waiter = None;
    k.procs[p].dying = false;
    Ok(())
}

/// Loads the opened program into a new address space with the arguments, then switches the
/// process to it.
/// `closed` is set once the program's fd is closed (the caller closes it otherwise).
fn exec_opened(
    k: &mut KernelGuard,
    frame: &mut TrapFrame,
    s: &Scratch,
    o: &Opened,
    prefix: &Prefix,
    [argv, envp]: [u64; 2],
    closed: &mut bool,
) -> Result<(), i64> {
    let skip = usize::from(prefix.skip_argv0);
    let (user_argc, argv_bytes) = measure(k, argv, skip)?;
    let (envc, env_bytes) = measure(k, envp, 0)?;
    let prefix_bytes: u64 = prefix.items[..prefix.n]
        .iter()
        .map(|&(_, l)| u64::from(l) + 1)
        .sum();
    let argc = user_argc + prefix.n as u64;
    let (fn_off, fn_len) = o.filename;
    let info = k.info;
    let size = info.stack_size;
    let strings = prefix_bytes + argv_bytes + env_bytes + fn_len + 1 + 7 + 16;
    let pointers = (1 + argc + 1 + envc + 1 + 40) * 8;
    // Linux: the strings and pointers may use a quarter of the stack limit (at least 128 KiB,
    // at most 6 MiB), here also at most a quarter of the stack block.
    let limit = (k.procs[cur()].rlimits[3][0] / 4)
        .clamp(32 * PAGE, 6 << 20)
        .min(size / 4);
    if strings + pointers > limit {
        return Err(-E2BIG);
    }
    // 2 MiB aligned where possible: the block is then mapped with large pages.
    let stack_pa = k
        .frames
        .alloc_contiguous_aligned(size / PAGE, crate::mm::HUGE)
        .ok_or(-ENOMEM)?;
    let bottom = layout::USER_STACK_TOP - size;
    let va_pa = |va: u64| stack_pa + (va - bottom);
    // Strings, top down: random bytes, platform, file name, then argv and envp strings.
    let top = layout::USER_STACK_TOP;
    let random = top - 16;
    let platform = random - 7;
    let execfn = platform - (fn_len + 1);
    let blob = execfn - prefix_bytes - argv_bytes - env_bytes;
    let sp = (blob - pointers) & !15;
    let fill = (|| {
        bridge::kernel_syscall(nr::getrandom, [phys::virt(va_pa(random)), 16, 0, 0, 0, 0]);
        phys::write_bytes(va_pa(platform), b"x86_64\0");
        copy_phys_bytes(s.prefix() + fn_off, va_pa(execfn), fn_len + 1);
        let mut cursor = blob;
        let mut slot = sp + 8;
        phys::write_u64(va_pa(sp), argc);
        for &(o, l) in &prefix.items[..prefix.n] {
            let l = u64::from(l);
            copy_phys_bytes(s.prefix() + u64::from(o), va_pa(cursor), l + 1);
            phys::write_u64(va_pa(slot), cursor);
            cursor += l + 1;
            slot += 8;
        }
        let mut args_end = cursor;
        for (list, (vec, n, skip)) in [(argv, user_argc, skip as u64), (envp, envc, 0)]
            .into_iter()
            .enumerate()
        {
            for i in 0..n {
                let ptr = read_ptr(k, vec, i + skip)?;
                if ptr == 0 {
                    return Err(-EFAULT);
                }
                let len = strnlen_user(k, ptr, MAX_ARG_STRLEN)?;
                if cursor + len + 1 > execfn {
                    return Err(-E2BIG); // changed since measured
                }
                copy_string(k, ptr, va_pa(cursor), len)?;
                phys::write_u64(va_pa(slot), cursor);
                cursor += len + 1;
                slot += 8;
            }
            phys::write_u64(va_pa(slot), 0);
            slot += 8;
            if list == 0 {
                args_end = cursor;
            }
        }
        Ok((slot, args_end))
    })();
    let (auxv_va, args_end) = match fill {
        Ok(v) => v,
        Err(e) => {
            k.frames.free(stack_pa, size);
            return Err(e);
        }
    };
    // The new address space, with the stack block mapped and the program loaded.
    let built = build_mm(k, o.fd, stack_pa, bottom);
    let (mut mm, start, aux) = match built {
        Ok(b) => b,
        Err(e) => {
            return Err(match e {
                LoadError::NoMemory => -ENOMEM,
                LoadError::Open(e) => e,
                LoadError::Read => -offload_abi::errno::EIO,
                _ => -ENOEXEC,
            });
        }
    };
    let words = loader::auxv_words(
        &aux,
        &info,
        &AuxStrings {
            platform,
            random,
            execfn,
        },
    );
    phys::write_u64s(va_pa(auxv_va), &words);
    mm.layout = offload_abi::StackLayout {
        arg_start: blob,
        arg_end: args_end,
        env_start: args_end,
        env_end: execfn,
        auxv_start: auxv_va,
        auxv_end: auxv_va + words.len() as u64 * 8,
        start_stack: sp,
    };
    // The host side: /proc/self/exe, comm, close-on-exec fds. Its path: the program's as
    // opened (the interpreter of a script), resolved by the host through the fd.
    let pid = k.procs[cur()].pid;
    let link = proc_fd_path(s, o.fd);
    bridge::kernel_syscall(nr::close, [o.fd as u64, 0, 0, 0, 0, 0]);
    *closed = true;
    // The new address space's slot now, so that nothing can fail after the host's part.
    let pml4 = mm.aspace.pml4;
    let new = match k.mms.insert(mm) {
        Ok(m) => m,
        Err(mm) => {
            let kernel: &mut Kernel = k;
            mm.destroy(kernel.frames);
            return Err(-ENOMEM);
        }
    };
    let drop_new = |k: &mut KernelGuard| {
        let kernel: &mut Kernel = k;
        kernel.mms.release(new, kernel.frames);
    };
    // The other threads end now (exec keeps only the caller).
    if let Err(e) = de_thread(k) {
        drop_new(k);
        return Err(e);
    }
    // /proc/self/cmdline: the argument strings, as Linux reads [arg_start, arg_end).
    let (cmd, cmd_len) = (
        phys::virt(va_pa(blob)),
        (args_end - blob).min(offload_abi::MAX_CMDLINE),
    );
    let mut r = match link {
        Some(n) => bridge::proc_exec(pid, phys::virt(s.head()), n, cmd, cmd_len),
        None => bridge::proc_exec(pid, 0, 0, cmd, cmd_len),
    };
    if r < 0 && link.is_some() {
        // The host cannot name the file (a memfd, a file unlinked since it was opened): the
        // exec goes on, /proc/self/exe keeps its old name.
        r = bridge::proc_exec(pid, 0, 0, cmd, cmd_len);
    }
    if r < 0 {
        klog!(
            bridge::level::INFO,
            "execve: the host refused the new program ({r})"
        );
        drop_new(k);
        return Err(r);
    }
    commit(k, frame, (new, pml4), start, sp, s, o, link);
    Ok(())
}

/// Reads where the host says fd `fd` points into the head page; its length.
fn proc_fd_path(s: &Scratch, fd: i64) -> Option<u64> {
    let mut name = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0";
    let (digits, d) = decimal(fd as u64);
    let d = d.min(name.len() - 15);
    name[14..14 + d].copy_from_slice(&digits[..d]);
    phys::write_bytes(s.stat(), &name);
    let n = bridge::kernel_syscall(
        nr::readlinkat,
        [
            AT_FDCWD as u64,
            phys::virt(s.stat()),
            phys::virt(s.head()),
            PAGE - 1,
            0,
            0,
        ],
    );
    (n > 0).then_some(n as u64)
}

fn build_mm(
    k: &mut KernelGuard,
    fd: i64,
    stack_pa: u64,
    bottom: u64,
) -> Result<(Mm, u64, loader::Auxv), LoadError> {
    let info = k.info;
    let vvar = k.clock.vvar();
    let now = k.clock.realtime_ns();
    let kernel: &mut Kernel = k;
    let frames = &mut *kernel.frames;
    let Some(pml4) = crate::mm::new_pml4(frames) else {
        frames.free(stack_pa, info.stack_size);
        return Err(LoadError::NoMemory);
    };
    let Some(mut mm) = Mm::new(frames, &info, pml4) else {
        frames.free(pml4, PAGE);
        frames.free(stack_pa, info.stack_size);
        return Err(LoadError::NoMemory);
    };
    let flags = pte::PRESENT | pte::WRITABLE | pte::USER | pte::NO_EXECUTE;
    let r = (|| {
        if mm
            .aspace
            .map_contiguous(frames, bottom, stack_pa, info.stack_size, flags, false)
            .is_err()
        {
            // Whatever got mapped is unmapped without freeing: the block goes back whole.
            let _ = mm
                .aspace
                .unmap(frames, bottom, layout::USER_STACK_TOP, false);
            frames.free(stack_pa, info.stack_size);
            return Err(LoadError::NoMemory);
        }
        crate::signal::map_trampoline(frames, &mut mm).ok_or(LoadError::NoMemory)?;
        let file = crate::pagecache::File::new(frames, fd, now);
        loader::load_image(&file, frames, &mut mm, &vvar, bottom)
    })();
    match r {
        Ok((start, aux)) => Ok((mm, start, aux)),
        Err(e) => {
            mm.destroy(frames);
            Err(e)
        }
    }
}

/// The switch to address space `new` (root `pml4`): the process runs the new image from now
/// on. Cannot fail.
#[allow(clippy::too_many_arguments)]
fn commit(
    k: &mut KernelGuard,
    frame: &mut TrapFrame,
    (new, pml4): (usize, u64),
    start: u64,
    sp: u64,
    s: &Scratch,
    o: &Opened,
    link: Option<u64>,
) {
    let me = arch::current_slot();
    let p = cur();
    let old = cur_mm();
    k.procs[p].mm = new;
    process::rebind_mm(me, new);
    arch::write_cr3(pml4);
    {
        let kernel: &mut Kernel = k;
        kernel.mms.release(old, kernel.frames);
    }
    // Signals: handlers reset, POSIX timers deleted (itimers and alarm stay, as on Linux).
    crate::signal::exec_reset(k.procs[p].sig, me);
    for t in k.procs[p].sig.timers[3..].iter_mut() {
        *t = crate::timer::Timer::default();
    }
    crate::timer::rearm(k);
    if let Some(t) = k.sched.slots[me].thread.as_mut() {
        t.clear_child_tid = 0;
        t.robust_list = (0, 0);
    }
    k.procs[p].execed = true;
    crate::procinfo::publish(k, p);
    // comm: the name the program was exec'd by (a script's, not its interpreter's), or for an
    // fd the file's own name (where the host resolved it, in the head page).
    let (src, len) = match (o.by_fd, link) {
        (true, Some(l)) => (s.head(), l),
        _ => (s.prefix() + o.filename.0, o.filename.1),
    };
    let mut name = [0u8; 256];
    // The last 256 bytes hold the last component whenever it fits in a comm.
    let skip = len.saturating_sub(name.len() as u64);
    let n = (len - skip) as usize;
    phys::read_bytes(src + skip, &mut name[..n]);
    let comm = process::comm_of(&name[..n]);
    let clen = comm.iter().position(|&b| b == 0).unwrap_or(15);
    process::set_comm(k, &comm[..clen]);
    process::release_vfork(k, p);
    crate::signal::update_interrupting(k);
    // Registers as Linux's start_thread leaves them: all zero but RIP, RSP and RFLAGS.
    let (cs, ss) = (frame.cs, frame.ss);
    *frame = TrapFrame {
        rip: start,
        rsp: sp,
        rflags: 0x202,
        cs,
        ss,
        ..zero_frame(frame)
    };
    arch::wrmsr(arch::msr::FS_BASE, 0);
    arch::wrmsr(arch::msr::GS_BASE, 0);
}

/// `f` with every register zeroed (the trap bookkeeping fields kept).
fn zero_frame(f: &TrapFrame) -> TrapFrame {
    let mut z = *f;
    z.rax = 0;
    z.rbx = 0;
    z.rcx = 0;
    z.rdx = 0;
    z.rsi = 0;
    z.rdi = 0;
    z.rbp = 0;
    z.r8 = 0;
    z.r9 = 0;
    z.r10 = 0;
    z.r11 = 0;
    z.r12 = 0;
    z.r13 = 0;
    z.r14 = 0;
    z.r15 = 0;
    z
}
