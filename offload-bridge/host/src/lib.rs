//! `offload-host`: the host side of the lwk-vmm offload bridge.
//!
//! The VMM hands every offload request the guest makes (an [`offload_abi::BridgeRequest`] in
//! the vCPU's bridge page) to [`Servicer::serve`], which executes it against host Linux:
//! offloaded syscalls run in the VMM process, on the guest's own fd table ([`FdTable`]), with
//! paths resolved inside the job's root, and guest pointers resolved and checked through
//! [`GuestView`] (the one checked guest-memory type).
//!
//! Threat model: the guest — kernel and program — is hostile. Nothing a request contains may
//! panic the host, touch host memory outside guest RAM, or reach fds or paths outside the
//! job's table and root; failures become Linux errnos for the guest.
//!
//! Modules: `guest_mem` (checked guest memory), `fdtable`, `sys` (the host syscalls, the only
//! `unsafe`), `path` (resolution inside the job root, shared by every path-taking call),
//! `procview` (the program's /proc/self, /proc/cpuinfo, ... view), and one file per handler
//! family: `fs` (open, metadata), `dir` (directories and directory entries), `io` (read/write
//! family, zero-copy transfers, sync, ioctl), `fd` (close, dup, fcntl, pipes, eventfd),
//! `net` (sockets), `poll` (poll, select, epoll), `misc` (getrandom, umask), `xattr`
//! (extended attributes).
//!
//! Concurrency: one [`Servicer`] serves the whole job from many host threads at once (the
//! vCPU threads and the VMM's asynchronous-offload workers); it is `Sync`, handlers take
//! `&Servicer`, and its mutable state is behind short locks never held across a host call. A
//! call holds the host fds it uses as [`fdtable::HostFd`] (`Arc<OwnedFd>`) clones, so a guest
//! close on another vCPU cannot close or renumber an fd under a running call.
//!
//! Blocking: a handler that blocks (read on an empty pipe, accept, poll) blocks only the thread
//! serving the request — with the `exit` transport the calling vCPU's thread, which is the
//! only thread of the program that is waiting; for an asynchronous offload, its worker. Signals sent to lwk-vmm interrupt it (issue
//! #7, the VMM's `signals` module) by signalling that host thread (a no-op handler installed
//! without `SA_RESTART`): the blocked host call returns `EINTR`, which the handler passes on
//! for the LWK to deliver the signal and restart or fail the call as Linux would. Handlers
//! must therefore never retry a host call on `EINTR`.
//!
//! `mem` does memory work for the LWK (zeroing guest-physical ranges, `op::ZERO_PHYS`).
//! Neighbours: `offload-abi` (the contract); used by `lwk-vmm`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod fdtable;
pub mod guest_mem;
pub mod wire;

mod dir;
mod fd;
mod fs;
#[cfg(test)]
mod hostile;
mod io;
mod mem;
mod misc;
mod net;
mod path;
mod poll;
mod procview;
mod sys;
pub mod trace;
mod xattr;

pub use fdtable::FdTable;
pub use guest_mem::{GuestRange, GuestView};
pub use mem::ZeroMethod;
/// Guest-path helpers the VMM's own program lookup shares with the offloaded calls.
pub use path::{join as join_path, path_in_root};
/// openat2 and its RESOLVE flags, for the VMM's own lookups of the program inside the root
/// (the same resolution the guest's offloaded opens get).
pub use sys::{RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2};

use offload_abi::errno::{EIO, ENOSYS};
use offload_abi::syscalls::{Disposition, disposition, nr};
use offload_abi::{BridgeRequest, op, req_flags};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use vm_memory::GuestMemoryBackend;

/// A Linux errno value (positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i64);

impl Errno {
    /// The errno of a host error: the OS error number where there is one, else EIO. This is
    /// the one host -> guest errno mapping (host and guest are both Linux x86_64, so numbers
    /// pass through unchanged).
    pub fn from_io(e: &std::io::Error) -> Self {
        Errno(e.raw_os_error().map_or(EIO, i64::from))
    }
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Self {
        Errno::from_io(&e)
    }
}

/// A syscall result: a non-negative value or an errno.
pub type SysResult = Result<i64, Errno>;

/// Linux-style return value of a result (`-errno` on failure).
pub fn to_ret(r: SysResult) -> i64 {
    match r {
        Ok(v) => v,
        Err(Errno(e)) => -e,
    }
}

/// What the job's offloaded calls run against.
#[derive(Debug)]
pub struct JobContext {
    /// The job's root directory on the host (`/` unless `--root`).
    pub root: OwnedFd,
    /// Host path of the root (for messages and /proc/self/fd translation).
    pub root_path: PathBuf,
    /// The working directory the job starts in, as an absolute path inside the root. The
    /// servicer takes it over ([`Servicer::cwd`] is the current one; chdir changes that).
    pub cwd: Vec<u8>,
    /// What /proc/self/exe names: the program, as an absolute path inside the root.
    pub exe: Vec<u8>,
    /// What the program may learn about itself (/proc/self, /proc/cpuinfo, ...).
    pub process: ProcessInfo,
}

/// The job's process as the program sees it, for the /proc views.
#[derive(Debug, Clone, Default)]
pub struct ProcessInfo {
    /// Process id the program sees.
    pub pid: u32,
    /// Parent process id the program sees.
    pub ppid: u32,
    /// The program's argv.
    pub argv: Vec<Vec<u8>>,
    /// Number of vCPUs of the LWK.
    pub vcpus: u32,
    /// Bytes of guest memory.
    pub mem_size: u64,
}

/// Clears the VMM process's umask while any servicer lives, restoring it after the last one:
/// the guest's umask is per job and applied by the servicer to every mode it passes, so the
/// host's must not strip bits a second time.
#[derive(Debug)]
struct ProcessUmask;

/// (live servicers, the umask they found).
static UMASK_USERS: std::sync::Mutex<(usize, u32)> = std::sync::Mutex::new((0, 0));

impl ProcessUmask {
    /// Takes over the process umask; returns the guard and the umask the process had.
    fn take() -> (Self, u32) {
        let mut g = UMASK_USERS.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            g.1 = sys::umask(0);
        }
        g.0 += 1;
        (ProcessUmask, g.1)
    }
}

impl Drop for ProcessUmask {
    fn drop(&mut self) {
        let mut g = UMASK_USERS.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = g.0.saturating_sub(1);
        if g.0 == 0 {
            sys::umask(g.1);
        }
    }
}

/// What the LWK reports besides syscalls, for the VMM to print. Shared by the threads that
/// serve offloads: an implementation writes each message or line whole (under its own lock).
pub trait LogSink: Send + Sync {
    /// One message at `level` (0 error, 1 info).
    fn log(&self, level: u64, message: &[u8]);
    /// One `--trace` line (without newline).
    fn trace(&self, line: &str);
}

/// Counters of what the servicer did.
#[derive(Debug, Default, Clone)]
pub struct ServicerStats {
    /// Offloaded syscalls served, by number.
    pub per_nr: std::collections::BTreeMap<u64, u64>,
    /// Requests with an unknown op or a non-offloaded syscall number.
    pub rejected: u64,
}

/// Executes offload requests for one job.
///
/// Shared by every host thread that serves the job (`&self` everywhere; it is `Sync`): the
/// vCPU threads serving synchronous offloads and the workers of asynchronous ones run calls
/// concurrently. Mutable state sits behind short locks that are never held across a host call
/// (docs/DESIGN.md "Concurrent offloads"): the fd table's map, the working directory, the
/// AF_UNIX name map and the counters; the umask is an atomic.
#[derive(Debug)]
pub struct Servicer {
    /// The guest's fd table.
    pub fds: FdTable,
    /// Root and program path (the working directory moved to [`Servicer::cwd`]).
    pub ctx: JobContext,
    cwd: std::sync::Mutex<Vec<u8>>,
    stats: std::sync::Mutex<ServicerStats>,
    /// The job's umask (umask(2) is per process; the host's own is 0 meanwhile).
    umask: std::sync::atomic::AtomicU32,
    _host_umask: ProcessUmask,
    /// AF_UNIX names: the address the host kernel reports for a socket the guest bound (a
    /// `/proc/self/fd/N/name` spelling) -> the path the guest bound it to.
    pub(crate) unix_names: std::sync::Mutex<std::collections::BTreeMap<Vec<u8>, Vec<u8>>>,
    /// How `op::ZERO_PHYS` makes guest RAM read zero (the VMM sets it from the RAM backing).
    pub zero_method: ZeroMethod,
}

/// A lock that a panicking holder cannot make unusable: every update under the servicer's
/// locks is a single assignment or map operation, so there is no half-done state to protect.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Arguments of a syscall handler: the view of guest memory and the six raw arguments.
pub(crate) struct Call<'a, 'm, M: GuestMemoryBackend> {
    pub mem: &'a GuestView<'m, M>,
    pub args: [u64; 6],
}

impl Servicer {
    /// A servicer with the given fd table and context. While servicers exist the VMM
    /// process's umask is 0 (each job applies its own; it starts as the process's).
    pub fn new(fds: FdTable, mut ctx: JobContext) -> Self {
        let (guard, umask) = ProcessUmask::take();
        let cwd = std::mem::take(&mut ctx.cwd);
        Servicer {
            fds,
            ctx,
            cwd: std::sync::Mutex::new(cwd),
            stats: Default::default(),
            umask: umask.into(),
            _host_umask: guard,
            unix_names: Default::default(),
            zero_method: ZeroMethod::default(),
        }
    }

    /// The current working directory (absolute, inside the root).
    pub fn cwd(&self) -> Vec<u8> {
        lock(&self.cwd).clone()
    }

    pub(crate) fn set_cwd(&self, cwd: Vec<u8>) {
        *lock(&self.cwd) = cwd;
    }

    /// The job's umask.
    pub fn umask(&self) -> u32 {
        self.umask.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replaces the job's umask; returns the old one.
    pub fn swap_umask(&self, mask: u32) -> u32 {
        self.umask.swap(mask, std::sync::atomic::Ordering::Relaxed)
    }

    /// A copy of the counters.
    pub fn stats(&self) -> ServicerStats {
        lock(&self.stats).clone()
    }

    fn count_rejected(&self) {
        lock(&self.stats).rejected += 1;
    }

    /// Serves the request in the bridge page at guest-physical `gpa`: copies it out, serves
    /// it, and writes back only the result fields. A page outside guest RAM is ignored (there is
    /// nowhere to answer).
    pub fn serve_at<M: GuestMemoryBackend>(&self, mem: &M, gpa: u64, log: &dyn LogSink) {
        use vm_memory::{Bytes, GuestAddress};
        let Ok(wire::Wire(mut req)) = mem.read_obj::<wire::Wire<BridgeRequest>>(GuestAddress(gpa))
        else {
            self.count_rejected();
            return;
        };
        self.serve(mem, &mut req, log);
        let ret_at = gpa + std::mem::offset_of!(BridgeRequest, ret) as u64;
        let val_at = gpa + std::mem::offset_of!(BridgeRequest, val) as u64;
        // Both fields lie inside the page that was just read, so these cannot fail.
        let _ = mem.write_obj(req.ret, GuestAddress(ret_at));
        let _ = mem.write_obj(req.val, GuestAddress(val_at));
    }

    /// Serves one request in place: reads the operation from `req` and writes `ret`/`val`.
    pub fn serve<M: GuestMemoryBackend>(
        &self,
        mem: &M,
        req: &mut BridgeRequest,
        log: &dyn LogSink,
    ) {
        let kernel_origin = req.flags & req_flags::KERNEL_ORIGIN != 0;
        let view = GuestView::new(mem, req.cr3, kernel_origin);
        match req.op {
            op::SYSCALL => {
                req.ret = to_ret(self.syscall(&view, req.nr, req.args));
                req.val = view.fault_report(req.ret);
            }
            op::HOST_TIME => {
                req.val = [
                    sys::clock_ns(libc::CLOCK_REALTIME),
                    sys::clock_ns(libc::CLOCK_MONOTONIC),
                ];
                req.ret = 0;
            }
            op::LOG => {
                let len = req.args[1].min(4096);
                match view.read(GuestRange::new(req.args[0], len)) {
                    Ok(bytes) => {
                        log.log(req.args[2], &bytes);
                        req.ret = 0;
                    }
                    Err(Errno(e)) => req.ret = -e,
                }
            }
            op::TRACE => {
                let no_return = req.flags & req_flags::NO_RETURN != 0;
                let ret = if no_return {
                    None
                } else {
                    Some(req.val[0] as i64)
                };
                // The program's own pointers: user pages only.
                let user = GuestView::new(mem, req.cr3, false);
                let line = trace::format_line(
                    &user,
                    std::process::id(),
                    req.nr,
                    req.args,
                    ret,
                    req.val[1],
                );
                log.trace(&line);
                req.ret = 0;
            }
            op::ZERO_PHYS => {
                req.ret = mem::zero_phys(mem, req.args[0], req.args[1], self.zero_method);
            }
            _ => {
                self.count_rejected();
                req.ret = -ENOSYS;
            }
        }
    }

    /// Executes offloaded syscall `number`. Numbers the table does not mark offloaded are
    /// refused (a guest cannot reach host calls the table does not allow).
    pub fn syscall<M: GuestMemoryBackend>(
        &self,
        mem: &GuestView<'_, M>,
        number: u64,
        args: [u64; 6],
    ) -> SysResult {
        if disposition(number) != Disposition::Offload {
            self.count_rejected();
            return Err(Errno(ENOSYS));
        }
        *lock(&self.stats).per_nr.entry(number).or_default() += 1;
        let c = Call { mem, args };
        match number {
            nr::read => io::read(self, &c),
            nr::write => io::write(self, &c),
            nr::pread64 => io::pread64(self, &c),
            nr::pwrite64 => io::pwrite64(self, &c),
            nr::readv => io::readv(self, &c),
            nr::writev => io::writev(self, &c),
            nr::preadv => io::preadv(self, &c),
            nr::pwritev => io::pwritev(self, &c),
            nr::preadv2 => io::preadv2(self, &c),
            nr::pwritev2 => io::pwritev2(self, &c),
            nr::lseek => io::lseek(self, &c),
            nr::ioctl => io::ioctl(self, &c),
            nr::sendfile => io::sendfile(self, &c),
            nr::copy_file_range => io::copy_file_range(self, &c),
            nr::splice => io::splice(self, &c),
            nr::tee => io::tee(self, &c),
            nr::fsync => io::fsync(self, &c),
            nr::fdatasync => io::fdatasync(self, &c),
            nr::sync => io::sync(self, &c),
            nr::syncfs => io::syncfs(self, &c),
            nr::fallocate => io::fallocate(self, &c),
            nr::fadvise64 => io::fadvise64(self, &c),
            nr::readahead => io::readahead(self, &c),
            nr::sync_file_range => io::sync_file_range(self, &c),
            nr::open => fs::open(self, &c),
            nr::openat => fs::openat(self, &c),
            nr::openat2 => fs::openat2(self, &c),
            nr::creat => fs::creat(self, &c),
            nr::stat => fs::stat(self, &c),
            nr::lstat => fs::lstat(self, &c),
            nr::fstat => fs::fstat(self, &c),
            nr::newfstatat => fs::newfstatat(self, &c),
            nr::statx => fs::statx(self, &c),
            nr::statfs => fs::statfs(self, &c),
            nr::fstatfs => fs::fstatfs(self, &c),
            nr::getxattr => xattr::getxattr(self, &c, xattr::Form::Path),
            nr::lgetxattr => xattr::getxattr(self, &c, xattr::Form::LinkPath),
            nr::fgetxattr => xattr::getxattr(self, &c, xattr::Form::Fd),
            nr::listxattr => xattr::listxattr(self, &c, xattr::Form::Path),
            nr::llistxattr => xattr::listxattr(self, &c, xattr::Form::LinkPath),
            nr::flistxattr => xattr::listxattr(self, &c, xattr::Form::Fd),
            nr::setxattr => xattr::setxattr(self, &c, xattr::Form::Path),
            nr::lsetxattr => xattr::setxattr(self, &c, xattr::Form::LinkPath),
            nr::fsetxattr => xattr::setxattr(self, &c, xattr::Form::Fd),
            nr::removexattr => xattr::removexattr(self, &c, xattr::Form::Path),
            nr::lremovexattr => xattr::removexattr(self, &c, xattr::Form::LinkPath),
            nr::fremovexattr => xattr::removexattr(self, &c, xattr::Form::Fd),
            nr::readlink => fs::readlink(self, &c),
            nr::readlinkat => fs::readlinkat(self, &c),
            nr::access => fs::access(self, &c),
            nr::faccessat => fs::faccessat(self, &c),
            nr::faccessat2 => fs::faccessat2(self, &c),
            nr::chmod => fs::chmod(self, &c),
            nr::fchmod => fs::fchmod(self, &c),
            nr::fchmodat => fs::fchmodat(self, &c),
            nr::fchmodat2 => fs::fchmodat2(self, &c),
            nr::chown => fs::chown(self, &c),
            nr::fchown => fs::fchown(self, &c),
            nr::lchown => fs::lchown(self, &c),
            nr::fchownat => fs::fchownat(self, &c),
            nr::utimensat => fs::utimensat(self, &c),
            nr::utimes => fs::utimes(self, &c),
            nr::utime => fs::utime(self, &c),
            nr::futimesat => fs::futimesat(self, &c),
            nr::truncate => fs::truncate(self, &c),
            nr::ftruncate => fs::ftruncate(self, &c),
            nr::getcwd => dir::getcwd(self, &c),
            nr::chdir => dir::chdir(self, &c),
            nr::fchdir => dir::fchdir(self, &c),
            nr::getdents => dir::getdents(self, &c),
            nr::getdents64 => dir::getdents64(self, &c),
            nr::mkdir => dir::mkdir(self, &c),
            nr::mkdirat => dir::mkdirat(self, &c),
            nr::mknod => dir::mknod(self, &c),
            nr::mknodat => dir::mknodat(self, &c),
            nr::rmdir => dir::rmdir(self, &c),
            nr::unlink => dir::unlink(self, &c),
            nr::unlinkat => dir::unlinkat(self, &c),
            nr::rename => dir::rename(self, &c),
            nr::renameat => dir::renameat(self, &c),
            nr::renameat2 => dir::renameat2(self, &c),
            nr::link => dir::link(self, &c),
            nr::linkat => dir::linkat(self, &c),
            nr::symlink => dir::symlink(self, &c),
            nr::symlinkat => dir::symlinkat(self, &c),
            nr::close => fd::close(self, &c),
            nr::close_range => fd::close_range(self, &c),
            nr::dup => fd::dup(self, &c),
            nr::dup2 => fd::dup2(self, &c),
            nr::dup3 => fd::dup3(self, &c),
            nr::fcntl => fd::fcntl(self, &c),
            nr::flock => fd::flock(self, &c),
            nr::pipe => fd::pipe(self, &c),
            nr::pipe2 => fd::pipe2(self, &c),
            nr::eventfd => fd::eventfd(self, &c),
            nr::eventfd2 => fd::eventfd2(self, &c),
            nr::socket => net::socket(self, &c),
            nr::socketpair => net::socketpair(self, &c),
            nr::bind => net::bind(self, &c),
            nr::connect => net::connect(self, &c),
            nr::listen => net::listen(self, &c),
            nr::accept => net::accept(self, &c),
            nr::accept4 => net::accept4(self, &c),
            nr::shutdown => net::shutdown(self, &c),
            nr::sendto => net::sendto(self, &c),
            nr::recvfrom => net::recvfrom(self, &c),
            nr::sendmsg => net::sendmsg(self, &c),
            nr::recvmsg => net::recvmsg(self, &c),
            nr::sendmmsg => net::sendmmsg(self, &c),
            nr::recvmmsg => net::recvmmsg(self, &c),
            nr::getsockopt => net::getsockopt(self, &c),
            nr::setsockopt => net::setsockopt(self, &c),
            nr::getsockname => net::getsockname(self, &c),
            nr::getpeername => net::getpeername(self, &c),
            nr::poll => poll::poll(self, &c),
            nr::ppoll => poll::ppoll(self, &c),
            nr::select => poll::select(self, &c),
            nr::pselect6 => poll::pselect6(self, &c),
            nr::epoll_create => poll::epoll_create(self, &c),
            nr::epoll_create1 => poll::epoll_create1(self, &c),
            nr::epoll_ctl => poll::epoll_ctl(self, &c),
            nr::epoll_wait => poll::epoll_wait(self, &c),
            nr::epoll_pwait => poll::epoll_pwait(self, &c),
            nr::epoll_pwait2 => poll::epoll_pwait2(self, &c),
            nr::getrandom => misc::getrandom(self, &c),
            nr::umask => misc::umask(self, &c),
            _ => Err(Errno(ENOSYS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload_abi::syscalls::TABLE;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    fn servicer() -> Servicer {
        let root: OwnedFd = std::fs::File::open("/").unwrap().into();
        Servicer::new(
            FdTable::new(64),
            JobContext {
                root,
                root_path: "/".into(),
                cwd: b"/".to_vec(),
                exe: b"/bin/prog".to_vec(),
                process: ProcessInfo::default(),
            },
        )
    }

    #[test]
    fn every_offloaded_syscall_has_a_handler() {
        let mem: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        // Page tables with nothing mapped: every pointer is EFAULT, every fd EBADF.
        let view = GuestView::new(&mem, 0x1000, false);
        let s = servicer();
        for row in TABLE
            .iter()
            .filter(|r| r.disposition == Disposition::Offload)
        {
            let r = s.syscall(&view, row.nr, [7, 0x1000, 16, 0, 0, 0]);
            assert_ne!(
                r,
                Err(Errno(ENOSYS)),
                "{} is marked offloaded but has no handler",
                row.name
            );
        }
    }

    #[test]
    fn calls_not_marked_offloaded_are_refused() {
        let mem: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let view = GuestView::new(&mem, 0x1000, false);
        let s = servicer();
        // kill, execve, mmap (local), 999 (no such syscall): the host never executes them.
        for nr in [nr::kill, nr::execve, nr::mmap, 999, u64::MAX] {
            assert_eq!(s.syscall(&view, nr, [0; 6]), Err(Errno(ENOSYS)));
        }
        assert_eq!(s.stats().rejected, 5);
    }
}
