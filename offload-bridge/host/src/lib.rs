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
//! `unsafe`), and one file per handler family: `fs` (paths, metadata), `io` (read/write
//! family, ioctl), `fd` (close, dup, fcntl), `misc`, `mem` (memory work for the LWK: zeroing).
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

mod fd;
mod fs;
mod io;
mod mem;
mod misc;
mod sys;

pub use fdtable::FdTable;
pub use guest_mem::{GuestRange, GuestView};
pub use mem::ZeroMethod;

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
    /// The working directory, as an absolute path inside the root.
    pub cwd: Vec<u8>,
    /// What /proc/self/exe names: the program, as an absolute path inside the root.
    pub exe: Vec<u8>,
}

/// Log messages the LWK sends, for the VMM to print.
pub trait LogSink {
    /// One message at `level` (0 error, 1 info).
    fn log(&mut self, level: u64, message: &[u8]);
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
#[derive(Debug)]
pub struct Servicer {
    /// The guest's fd table.
    pub fds: FdTable,
    /// Root, cwd and program path.
    pub ctx: JobContext,
    /// Counters.
    pub stats: ServicerStats,
    /// How `op::ZERO_PHYS` makes guest RAM read zero (the VMM sets it from the RAM backing).
    pub zero_method: ZeroMethod,
}

/// Arguments of a syscall handler: the view of guest memory and the six raw arguments.
pub(crate) struct Call<'a, 'm, M: GuestMemoryBackend> {
    pub mem: &'a GuestView<'m, M>,
    pub args: [u64; 6],
}

impl Servicer {
    /// A servicer with the given fd table and context.
    pub fn new(fds: FdTable, ctx: JobContext) -> Self {
        Servicer {
            fds,
            ctx,
            stats: ServicerStats::default(),
            zero_method: ZeroMethod::default(),
        }
    }

    /// Serves the request in the bridge page at guest-physical `gpa`: copies it out, serves
    /// it, and writes back only the result fields. A page outside guest RAM is ignored (there is
    /// nowhere to answer).
    pub fn serve_at<M: GuestMemoryBackend>(&mut self, mem: &M, gpa: u64, log: &mut dyn LogSink) {
        use vm_memory::{Bytes, GuestAddress};
        let Ok(wire::Wire(mut req)) = mem.read_obj::<wire::Wire<BridgeRequest>>(GuestAddress(gpa))
        else {
            self.stats.rejected += 1;
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
        &mut self,
        mem: &M,
        req: &mut BridgeRequest,
        log: &mut dyn LogSink,
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
            op::ZERO_PHYS => {
                req.ret = mem::zero_phys(mem, req.args[0], req.args[1], self.zero_method);
            }
            _ => {
                self.stats.rejected += 1;
                req.ret = -ENOSYS;
            }
        }
    }

    /// Executes offloaded syscall `number`. Numbers the table does not mark offloaded are
    /// refused (a guest cannot reach host calls the table does not allow).
    pub fn syscall<M: GuestMemoryBackend>(
        &mut self,
        mem: &GuestView<'_, M>,
        number: u64,
        args: [u64; 6],
    ) -> SysResult {
        if disposition(number) != Disposition::Offload {
            self.stats.rejected += 1;
            return Err(Errno(ENOSYS));
        }
        *self.stats.per_nr.entry(number).or_default() += 1;
        let c = Call { mem, args };
        match number {
            nr::read => io::read(self, &c),
            nr::write => io::write(self, &c),
            nr::pread64 => io::pread64(self, &c),
            nr::pwrite64 => io::pwrite64(self, &c),
            nr::readv => io::readv(self, &c),
            nr::writev => io::writev(self, &c),
            nr::lseek => io::lseek(self, &c),
            nr::ioctl => io::ioctl(self, &c),
            nr::open => fs::open(self, &c),
            nr::openat => fs::openat(self, &c),
            nr::stat => fs::stat(self, &c),
            nr::lstat => fs::lstat(self, &c),
            nr::fstat => fs::fstat(self, &c),
            nr::newfstatat => fs::newfstatat(self, &c),
            nr::readlink => fs::readlink(self, &c),
            nr::readlinkat => fs::readlinkat(self, &c),
            nr::access => fs::access(self, &c),
            nr::faccessat => fs::faccessat(self, &c),
            nr::faccessat2 => fs::faccessat2(self, &c),
            nr::getcwd => fs::getcwd(self, &c),
            nr::close => fd::close(self, &c),
            nr::dup => fd::dup(self, &c),
            nr::dup2 => fd::dup2(self, &c),
            nr::dup3 => fd::dup3(self, &c),
            nr::fcntl => fd::fcntl(self, &c),
            nr::getrandom => misc::getrandom(self, &c),
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
            },
        )
    }

    #[test]
    fn every_offloaded_syscall_has_a_handler() {
        let mem: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        // Page tables with nothing mapped: every pointer is EFAULT, every fd EBADF.
        let view = GuestView::new(&mem, 0x1000, false);
        let mut s = servicer();
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
        let mut s = servicer();
        // kill, execve, mmap (local), 999 (no such syscall): the host never executes them.
        for nr in [nr::kill, nr::execve, nr::mmap, 999, u64::MAX] {
            assert_eq!(s.syscall(&view, nr, [0; 6]), Err(Errno(ENOSYS)));
        }
        assert_eq!(s.stats.rejected, 5);
    }
}
