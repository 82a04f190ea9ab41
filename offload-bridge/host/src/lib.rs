//! `offload-host`: the host side of the lwk-vmm offload bridge.
//!
//! The VMM hands every offload request the guest makes (an [`offload_abi::BridgeRequest`] in
//! the vCPU's bridge page) to [`Servicer::serve`], which executes it against host Linux:
//! offloaded syscalls run in the VMM process, on the calling process's fd table ([`FdTable`]), with
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
//! `mem` does memory work for the LWK (zeroing and copying guest-physical ranges,
//! `op::ZERO_PHYS`, `op::COPY_PHYS`).
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

use offload_abi::errno::{EAGAIN, EEXIST, EINVAL, EIO, ENAMETOOLONG, ENOSYS, EPERM, ESRCH};
use offload_abi::syscalls::{Disposition, disposition, nr};
use offload_abi::{BridgeRequest, COMM_LEN, op, req_flags};
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
    /// The path the program was started by (AT_EXECFN, symlinks not resolved): its last
    /// component is the first process's command name, as Linux takes `comm` from the exec'd
    /// file name. Empty: the last component of `exe`.
    pub execfn: Vec<u8>,
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
    /// The vCPUs' TSC frequency (the LWK's CPU-time counters count its ticks).
    pub tsc_khz: u64,
}

/// Clears the VMM process's umask while any servicer lives, restoring it after the last one:
/// the guest's umask is per process and applied by the servicer to every mode it passes, so the
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

/// One process of the job as the host sees it (issue #9): its fd table, working directory and
/// umask. Forks copy it, exec closes its CLOEXEC fds, exit drops it ([`op::PROC_FORK`],
/// [`op::PROC_EXEC`], [`op::PROC_EXIT`]). Calls hold it as an `Arc`, so a process that exits
/// while one of its calls still runs on another host thread stays alive until that call ends.
#[derive(Debug)]
pub struct Process {
    /// Its pid as the program sees it.
    pub pid: u32,
    /// Its parent's pid (what /proc/self/status reports; [`op::PROC_STATE`] updates it).
    ppid: std::sync::atomic::AtomicU32,
    /// Its live threads ([`op::PROC_STATE`]).
    threads: std::sync::atomic::AtomicU32,
    /// /proc/self/cmdline once it exec'd ([`op::PROC_EXEC`]); before, the job's argv.
    cmdline: std::sync::Mutex<Option<Vec<u8>>>,
    /// Its fd table.
    pub fds: FdTable,
    cwd: std::sync::Mutex<Vec<u8>>,
    /// umask(2) is per process; applied by the servicer to every mode it passes.
    umask: std::sync::atomic::AtomicU32,
    /// What /proc/self/exe names (absolute, inside the root): the job's program, then what
    /// [`op::PROC_EXEC`] names.
    exe: std::sync::Mutex<Vec<u8>>,
    /// The command name (`comm`, at most [`COMM_LEN`] bytes): the exec'd file's last path
    /// component, or what [`op::PROC_NAME`] set.
    comm: std::sync::Mutex<Vec<u8>>,
    /// When it started, in clock ticks (USER_HZ) since the host booted (/proc/PID/stat's
    /// starttime, which ps compares with the host's /proc/uptime).
    start_ticks: u64,
}

/// Clock ticks (USER_HZ, 100 per second) since the host booted (CLOCK_BOOTTIME).
fn boot_ticks() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 100 + (ts.tv_nsec as u64) / 10_000_000
}

/// The command name Linux gives a process exec'd from `path`: its last component, truncated
/// to [`COMM_LEN`] bytes.
fn comm_of_path(path: &[u8]) -> Vec<u8> {
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
    base.iter().take(COMM_LEN).copied().collect()
}

impl Process {
    /// The current working directory (absolute, inside the root).
    pub fn cwd(&self) -> Vec<u8> {
        lock(&self.cwd).clone()
    }

    /// The process's umask.
    pub fn umask(&self) -> u32 {
        self.umask.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replaces the process's umask; returns the old one.
    pub fn swap_umask(&self, mask: u32) -> u32 {
        self.umask.swap(mask, std::sync::atomic::Ordering::Relaxed)
    }

    /// What /proc/self/exe names.
    pub fn exe(&self) -> Vec<u8> {
        lock(&self.exe).clone()
    }

    /// The command name (/proc/self/comm, without the newline).
    pub fn comm(&self) -> Vec<u8> {
        lock(&self.comm).clone()
    }

    /// Its parent's pid.
    pub fn ppid(&self) -> u32 {
        self.ppid.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Its live threads.
    pub fn threads(&self) -> u32 {
        self.threads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When it started (clock ticks since the host booted).
    pub fn start_ticks(&self) -> u64 {
        self.start_ticks
    }

    /// Its /proc/self/cmdline since it exec'd (`None`: the job's argv).
    pub fn cmdline(&self) -> Option<Vec<u8>> {
        lock(&self.cmdline).clone()
    }

    /// A copy for a forked child `pid`: the same open files (`FdTable::fork`), cwd, umask,
    /// program and command name.
    fn fork(&self, pid: u32) -> Process {
        Process {
            pid,
            ppid: self.pid.into(),
            threads: 1.into(),
            cmdline: std::sync::Mutex::new(lock(&self.cmdline).clone()),
            fds: self.fds.fork(),
            cwd: std::sync::Mutex::new(self.cwd()),
            umask: self.umask().into(),
            exe: std::sync::Mutex::new(self.exe()),
            comm: std::sync::Mutex::new(self.comm()),
            start_ticks: boot_ticks(),
        }
    }
}

/// Executes offload requests for one job.
///
/// Shared by every host thread that serves the job (`&self` everywhere; it is `Sync`): the
/// vCPU threads serving synchronous offloads and the workers of asynchronous ones run calls
/// concurrently. Mutable state sits behind short locks that are never held across a host call
/// (docs/DESIGN.md "Concurrent offloads"): the process map (pid -> `Arc<Process>`, looked up
/// once per request), each process's fd table and working directory, the AF_UNIX name map and
/// the counters; umasks are atomics.
#[derive(Debug)]
pub struct Servicer {
    /// Root and program path (the working directory moved to the first [`Process`]).
    pub ctx: JobContext,
    /// The job's processes by pid (docs/DESIGN.md "Processes on the host side").
    procs: std::sync::Mutex<std::collections::BTreeMap<u32, std::sync::Arc<Process>>>,
    stats: std::sync::Mutex<ServicerStats>,
    _host_umask: ProcessUmask,
    /// AF_UNIX names: the address the host kernel reports for a socket the guest bound (a
    /// `/proc/self/fd/N/name` spelling) -> the path the guest bound it to. Per job, not per
    /// process: the key names a host socket, which forked processes share.
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

/// What a handler runs against: the job ([`Servicer`], by `Deref`) and the calling process
/// (its fd table as `fds`, its cwd and umask).
pub(crate) struct Proc<'a> {
    job: &'a Servicer,
    process: &'a Process,
    /// The calling process's fd table.
    pub fds: &'a FdTable,
}

impl std::ops::Deref for Proc<'_> {
    type Target = Servicer;
    fn deref(&self) -> &Servicer {
        self.job
    }
}

impl<'a> Proc<'a> {
    pub(crate) fn new(job: &'a Servicer, process: &'a Process) -> Self {
        Proc {
            job,
            process,
            fds: &process.fds,
        }
    }

    /// The calling process's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The calling process's parent pid.
    pub(crate) fn ppid(&self) -> u32 {
        self.process.ppid()
    }

    /// The calling process's live threads.
    pub(crate) fn threads(&self) -> u32 {
        self.process.threads()
    }

    /// When the calling process started (clock ticks since the host booted).
    pub(crate) fn start_ticks(&self) -> u64 {
        self.process.start_ticks()
    }

    /// The calling process's /proc/self/cmdline since it exec'd.
    pub(crate) fn cmdline(&self) -> Option<Vec<u8>> {
        self.process.cmdline()
    }

    /// The current working directory (absolute, inside the root).
    pub(crate) fn cwd(&self) -> Vec<u8> {
        self.process.cwd()
    }

    pub(crate) fn set_cwd(&self, cwd: Vec<u8>) {
        *lock(&self.process.cwd) = cwd;
    }

    /// The process's umask.
    pub(crate) fn umask(&self) -> u32 {
        self.process.umask()
    }

    /// What /proc/self/exe names.
    pub(crate) fn exe(&self) -> Vec<u8> {
        self.process.exe()
    }

    /// The command name (/proc/self/comm, without the newline).
    pub(crate) fn comm(&self) -> Vec<u8> {
        self.process.comm()
    }

    /// Replaces the process's umask; returns the old one.
    pub(crate) fn swap_umask(&self, mask: u32) -> u32 {
        self.process.swap_umask(mask)
    }
}

impl Servicer {
    /// A servicer with one process, `ctx.process.pid`, owning the given fd table and starting
    /// in `ctx.cwd`. While servicers exist the VMM process's umask is 0 (each process applies
    /// its own; the first starts with the VMM process's).
    pub fn new(fds: FdTable, mut ctx: JobContext) -> Self {
        let (guard, umask) = ProcessUmask::take();
        let started_by = if ctx.execfn.is_empty() {
            &ctx.exe
        } else {
            &ctx.execfn
        };
        let comm = comm_of_path(started_by);
        let first = Process {
            pid: ctx.process.pid,
            ppid: ctx.process.ppid.into(),
            threads: 1.into(),
            cmdline: std::sync::Mutex::new(None),
            fds,
            cwd: std::sync::Mutex::new(std::mem::take(&mut ctx.cwd)),
            umask: umask.into(),
            exe: std::sync::Mutex::new(ctx.exe.clone()),
            comm: std::sync::Mutex::new(comm),
            start_ticks: boot_ticks(),
        };
        let procs = std::iter::once((first.pid, std::sync::Arc::new(first))).collect();
        Servicer {
            ctx,
            procs: std::sync::Mutex::new(procs),
            stats: Default::default(),
            _host_umask: guard,
            unix_names: Default::default(),
            zero_method: ZeroMethod::default(),
        }
    }

    /// Process `pid`, if the job has it.
    pub fn process(&self, pid: u32) -> Option<std::sync::Arc<Process>> {
        lock(&self.procs).get(&pid).cloned()
    }

    /// Pids of the job's processes, ascending.
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.procs).keys().copied().collect()
    }

    /// [`op::PROC_FORK`]: `child` gets a copy of `parent`.
    pub fn fork_process(&self, parent: u32, child: u32) -> SysResult {
        let parent = self.process(parent).ok_or(Errno(ESRCH))?;
        // The copy is made before taking the map's lock (it takes the parent's table lock).
        let copy = std::sync::Arc::new(parent.fork(child));
        let mut procs = lock(&self.procs);
        if procs.contains_key(&child) {
            return Err(Errno(EEXIST));
        }
        if procs.len() >= offload_abi::MAX_PROCESSES {
            return Err(Errno(EAGAIN));
        }
        procs.insert(child, copy);
        Ok(0)
    }

    /// [`op::PROC_EXEC`]: closes `pid`'s CLOEXEC fds; returns how many. With `exe`, the
    /// new program's path (relative paths from the process's cwd) must open inside the root
    /// (the same `openat2(RESOLVE_IN_ROOT)` as every guest path) and becomes what
    /// /proc/self/exe names, and its last component (as given, symlinks not followed) the
    /// command name; if it does not open, nothing changes.
    pub fn exec_process(
        &self,
        pid: u32,
        exe: Option<&[u8]>,
        cmdline: Option<Vec<u8>>,
    ) -> SysResult {
        use std::os::fd::AsFd;
        let p = self.process(pid).ok_or(Errno(ESRCH))?;
        if let Some(path) = exe {
            let joined = join_path(&p.cwd(), path);
            let c = path::cstring(joined.clone())?;
            let flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
            let resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
            let file = openat2(self.ctx.root.as_fd(), &c, flags, 0, resolve)?;
            // The file's own name inside the root (symlinks resolved), as Linux shows it.
            let name = path_in_root(file.as_fd(), &self.ctx.root_path)
                .unwrap_or_else(|| path::normalize(&joined));
            *lock(&p.exe) = name;
            *lock(&p.comm) = comm_of_path(path);
        }
        if cmdline.is_some() {
            *lock(&p.cmdline) = cmdline;
        }
        Ok(p.fds.close_on_exec() as i64)
    }

    /// [`op::PROC_NAME`]: sets `pid`'s command name to `name` up to its first NUL, truncated
    /// to [`COMM_LEN`] bytes.
    pub fn name_process(&self, pid: u32, name: &[u8]) -> SysResult {
        let p = self.process(pid).ok_or(Errno(ESRCH))?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let name = name.get(..end.min(COMM_LEN)).unwrap_or_default();
        *lock(&p.comm) = name.to_vec();
        Ok(0)
    }

    /// [`op::PROC_EXIT`]: forgets `pid`; its fds close when no other process or running call
    /// holds them.
    pub fn exit_process(&self, pid: u32) -> SysResult {
        let p = lock(&self.procs).remove(&pid).ok_or(Errno(ESRCH))?;
        // Close its fds now, even if a call of the process still holds the `Arc<Process>`
        // (such a call keeps only the host fds it took out of the table).
        p.fds.clear();
        Ok(0)
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
                let no_block = req.flags & req_flags::NO_BLOCK != 0
                    && offload_abi::syscalls::may_block(req.nr);
                req.ret = if no_block {
                    self.syscall_no_wait(req.pid, &view, req.nr, req.args)
                } else {
                    to_ret(self.syscall(req.pid, &view, req.nr, req.args))
                };
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
                // The calling process's pid as the program sees it (the guest names it).
                let pid = if req.pid != 0 {
                    req.pid
                } else {
                    std::process::id()
                };
                let line = trace::format_line(&user, pid, req.nr, req.args, ret, req.val[1]);
                log.trace(&line);
                req.ret = 0;
            }
            op::ZERO_PHYS => {
                req.ret = mem::zero_phys(mem, req.args[0], req.args[1], self.zero_method);
            }
            op::COPY_PHYS => {
                req.ret = if kernel_origin {
                    mem::copy_phys(mem, req.args[0], req.args[1])
                } else {
                    -EPERM
                };
            }
            op::PROC_FORK | op::PROC_EXEC | op::PROC_EXIT | op::PROC_NAME | op::PROC_STATE => {
                req.ret = to_ret(self.process_op(&view, req.op, kernel_origin, req.args));
            }
            _ => {
                self.count_rejected();
                req.ret = -ENOSYS;
            }
        }
    }

    /// The process operations: kernel origin only (a program cannot forge them); pids are
    /// numbers to look up (`args` truncated to 32 bits would alias, so larger values are
    /// unknown pids).
    fn process_op<M: GuestMemoryBackend>(
        &self,
        view: &GuestView<'_, M>,
        opcode: u32,
        kernel_origin: bool,
        args: [u64; 6],
    ) -> SysResult {
        if !kernel_origin {
            return Err(Errno(EPERM));
        }
        let pid = |a: u64| u32::try_from(a).map_err(|_| Errno(ESRCH));
        match opcode {
            op::PROC_FORK => {
                let parent = pid(args[0])?;
                let child = u32::try_from(args[1]).map_err(|_| Errno(EINVAL))?;
                self.fork_process(parent, child)
            }
            op::PROC_EXEC => {
                let pid = pid(args[0])?;
                let exe = match args[2] {
                    0 => None,
                    len if len >= path::PATH_MAX as u64 => return Err(Errno(ENAMETOOLONG)),
                    len => Some(view.read(GuestRange::new(args[1], len))?),
                };
                let cmdline = match args[4] {
                    0 => None,
                    len if len > offload_abi::MAX_CMDLINE => return Err(Errno(EINVAL)),
                    len => Some(view.read(GuestRange::new(args[3], len))?),
                };
                self.exec_process(pid, exe.as_deref(), cmdline)
            }
            op::PROC_NAME => {
                let pid = pid(args[0])?;
                // The pid first: an unknown process is ESRCH whatever the pointer.
                self.process(pid).ok_or(Errno(ESRCH))?;
                // Only the bytes that can end up in the name are read.
                let len = args[2].min(COMM_LEN as u64);
                let name = view.read(GuestRange::new(args[1], len))?;
                self.name_process(pid, &name)
            }
            op::PROC_STATE => {
                let p = self.process(pid(args[0])?).ok_or(Errno(ESRCH))?;
                if args[1] == 0 || args[1] > offload_abi::MAX_THREADS_PER_PROCESS {
                    return Err(Errno(EINVAL));
                }
                let ppid = u32::try_from(args[2]).map_err(|_| Errno(EINVAL))?;
                p.threads
                    .store(args[1] as u32, std::sync::atomic::Ordering::Relaxed);
                p.ppid.store(ppid, std::sync::atomic::Ordering::Relaxed);
                Ok(0)
            }
            _ => self.exit_process(pid(args[0])?),
        }
    }

    /// Runs process `pid`'s may-block call `number` so that it does not wait (see
    /// [`req_flags::NO_BLOCK`] and [`poll::no_wait`]): the call's result, or its restart code
    /// when it would have waited.
    fn syscall_no_wait<M: GuestMemoryBackend>(
        &self,
        pid: u32,
        view: &GuestView<'_, M>,
        number: u64,
        args: [u64; 6],
    ) -> i64 {
        let plan = match self.process(pid) {
            Some(p) => poll::no_wait(&p.fds, number, args),
            None => poll::NoWait::Run, // ESRCH from the call itself
        };
        match plan {
            poll::NoWait::Run => to_ret(self.syscall(pid, view, number, args)),
            poll::NoWait::Wait => offload_abi::syscalls::restart_code(number),
            poll::NoWait::Try { args, waited } => {
                let r = to_ret(self.syscall(pid, view, number, args));
                if r == waited {
                    offload_abi::syscalls::restart_code(number)
                } else {
                    r
                }
            }
        }
    }

    /// Executes offloaded syscall `number`. Numbers the table does not mark offloaded are
    /// refused (a guest cannot reach host calls the table does not allow).
    /// It runs as process `pid` (`ESRCH` if the job has none).
    pub fn syscall<M: GuestMemoryBackend>(
        &self,
        pid: u32,
        mem: &GuestView<'_, M>,
        number: u64,
        args: [u64; 6],
    ) -> SysResult {
        if disposition(number) != Disposition::Offload {
            self.count_rejected();
            return Err(Errno(ENOSYS));
        }
        let Some(process) = self.process(pid) else {
            self.count_rejected();
            return Err(Errno(ESRCH));
        };
        *lock(&self.stats).per_nr.entry(number).or_default() += 1;
        let c = Call { mem, args };
        let p = Proc::new(self, &process);
        let s = &p;
        match number {
            nr::read => io::read(s, &c),
            nr::write => io::write(s, &c),
            nr::pread64 => io::pread64(s, &c),
            nr::pwrite64 => io::pwrite64(s, &c),
            nr::readv => io::readv(s, &c),
            nr::writev => io::writev(s, &c),
            nr::preadv => io::preadv(s, &c),
            nr::pwritev => io::pwritev(s, &c),
            nr::preadv2 => io::preadv2(s, &c),
            nr::pwritev2 => io::pwritev2(s, &c),
            nr::lseek => io::lseek(s, &c),
            nr::ioctl => io::ioctl(s, &c),
            nr::sendfile => io::sendfile(s, &c),
            nr::copy_file_range => io::copy_file_range(s, &c),
            nr::splice => io::splice(s, &c),
            nr::tee => io::tee(s, &c),
            nr::fsync => io::fsync(s, &c),
            nr::fdatasync => io::fdatasync(s, &c),
            nr::sync => io::sync(s, &c),
            nr::syncfs => io::syncfs(s, &c),
            nr::fallocate => io::fallocate(s, &c),
            nr::fadvise64 => io::fadvise64(s, &c),
            nr::readahead => io::readahead(s, &c),
            nr::sync_file_range => io::sync_file_range(s, &c),
            nr::open => fs::open(s, &c),
            nr::openat => fs::openat(s, &c),
            nr::openat2 => fs::openat2(s, &c),
            nr::creat => fs::creat(s, &c),
            nr::stat => fs::stat(s, &c),
            nr::lstat => fs::lstat(s, &c),
            nr::fstat => fs::fstat(s, &c),
            nr::newfstatat => fs::newfstatat(s, &c),
            nr::statx => fs::statx(s, &c),
            nr::statfs => fs::statfs(s, &c),
            nr::fstatfs => fs::fstatfs(s, &c),
            nr::getxattr => xattr::getxattr(s, &c, xattr::Form::Path),
            nr::lgetxattr => xattr::getxattr(s, &c, xattr::Form::LinkPath),
            nr::fgetxattr => xattr::getxattr(s, &c, xattr::Form::Fd),
            nr::listxattr => xattr::listxattr(s, &c, xattr::Form::Path),
            nr::llistxattr => xattr::listxattr(s, &c, xattr::Form::LinkPath),
            nr::flistxattr => xattr::listxattr(s, &c, xattr::Form::Fd),
            nr::setxattr => xattr::setxattr(s, &c, xattr::Form::Path),
            nr::lsetxattr => xattr::setxattr(s, &c, xattr::Form::LinkPath),
            nr::fsetxattr => xattr::setxattr(s, &c, xattr::Form::Fd),
            nr::removexattr => xattr::removexattr(s, &c, xattr::Form::Path),
            nr::lremovexattr => xattr::removexattr(s, &c, xattr::Form::LinkPath),
            nr::fremovexattr => xattr::removexattr(s, &c, xattr::Form::Fd),
            nr::readlink => fs::readlink(s, &c),
            nr::readlinkat => fs::readlinkat(s, &c),
            nr::access => fs::access(s, &c),
            nr::faccessat => fs::faccessat(s, &c),
            nr::faccessat2 => fs::faccessat2(s, &c),
            nr::chmod => fs::chmod(s, &c),
            nr::fchmod => fs::fchmod(s, &c),
            nr::fchmodat => fs::fchmodat(s, &c),
            nr::fchmodat2 => fs::fchmodat2(s, &c),
            nr::chown => fs::chown(s, &c),
            nr::fchown => fs::fchown(s, &c),
            nr::lchown => fs::lchown(s, &c),
            nr::fchownat => fs::fchownat(s, &c),
            nr::utimensat => fs::utimensat(s, &c),
            nr::utimes => fs::utimes(s, &c),
            nr::utime => fs::utime(s, &c),
            nr::futimesat => fs::futimesat(s, &c),
            nr::truncate => fs::truncate(s, &c),
            nr::ftruncate => fs::ftruncate(s, &c),
            nr::getcwd => dir::getcwd(s, &c),
            nr::chdir => dir::chdir(s, &c),
            nr::fchdir => dir::fchdir(s, &c),
            nr::getdents => dir::getdents(s, &c),
            nr::getdents64 => dir::getdents64(s, &c),
            nr::mkdir => dir::mkdir(s, &c),
            nr::mkdirat => dir::mkdirat(s, &c),
            nr::mknod => dir::mknod(s, &c),
            nr::mknodat => dir::mknodat(s, &c),
            nr::rmdir => dir::rmdir(s, &c),
            nr::unlink => dir::unlink(s, &c),
            nr::unlinkat => dir::unlinkat(s, &c),
            nr::rename => dir::rename(s, &c),
            nr::renameat => dir::renameat(s, &c),
            nr::renameat2 => dir::renameat2(s, &c),
            nr::link => dir::link(s, &c),
            nr::linkat => dir::linkat(s, &c),
            nr::symlink => dir::symlink(s, &c),
            nr::symlinkat => dir::symlinkat(s, &c),
            nr::close => fd::close(s, &c),
            nr::close_range => fd::close_range(s, &c),
            nr::dup => fd::dup(s, &c),
            nr::dup2 => fd::dup2(s, &c),
            nr::dup3 => fd::dup3(s, &c),
            nr::fcntl => fd::fcntl(s, &c),
            nr::flock => fd::flock(s, &c),
            nr::pipe => fd::pipe(s, &c),
            nr::pipe2 => fd::pipe2(s, &c),
            nr::eventfd => fd::eventfd(s, &c),
            nr::eventfd2 => fd::eventfd2(s, &c),
            nr::socket => net::socket(s, &c),
            nr::socketpair => net::socketpair(s, &c),
            nr::bind => net::bind(s, &c),
            nr::connect => net::connect(s, &c),
            nr::listen => net::listen(s, &c),
            nr::accept => net::accept(s, &c),
            nr::accept4 => net::accept4(s, &c),
            nr::shutdown => net::shutdown(s, &c),
            nr::sendto => net::sendto(s, &c),
            nr::recvfrom => net::recvfrom(s, &c),
            nr::sendmsg => net::sendmsg(s, &c),
            nr::recvmsg => net::recvmsg(s, &c),
            nr::sendmmsg => net::sendmmsg(s, &c),
            nr::recvmmsg => net::recvmmsg(s, &c),
            nr::getsockopt => net::getsockopt(s, &c),
            nr::setsockopt => net::setsockopt(s, &c),
            nr::getsockname => net::getsockname(s, &c),
            nr::getpeername => net::getpeername(s, &c),
            nr::poll => poll::poll(s, &c),
            nr::ppoll => poll::ppoll(s, &c),
            nr::select => poll::select(s, &c),
            nr::pselect6 => poll::pselect6(s, &c),
            nr::epoll_create => poll::epoll_create(s, &c),
            nr::epoll_create1 => poll::epoll_create1(s, &c),
            nr::epoll_ctl => poll::epoll_ctl(s, &c),
            nr::epoll_wait => poll::epoll_wait(s, &c),
            nr::epoll_pwait => poll::epoll_pwait(s, &c),
            nr::epoll_pwait2 => poll::epoll_pwait2(s, &c),
            nr::getrandom => misc::getrandom(s, &c),
            nr::umask => misc::umask(s, &c),
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
                execfn: Vec::new(),
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
            let r = s.syscall(0, &view, row.nr, [7, 0x1000, 16, 0, 0, 0]);
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
            assert_eq!(s.syscall(0, &view, nr, [0; 6]), Err(Errno(ENOSYS)));
        }
        assert_eq!(s.stats().rejected, 5);
    }
}
