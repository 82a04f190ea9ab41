//! The guest side of the offload bridge, `exit` transport: fill this vCPU's request page,
//! write the vCPU id to the offload port (one VM exit), read the result.
//!
//! The guest sends raw syscall arguments; the host resolves guest-virtual pointers itself by
//! walking the page tables rooted at the CR3 sent along (docs/DESIGN.md "Offload"), so the
//! LWK runs only a handful of ring-0 instructions per offloaded call.

use crate::arch::{self, Global, MAX_CPUS};
use crate::phys;
use offload_abi::{BridgeRequest, layout, op, port, req_flags};

/// Each vCPU's request page (vCPU `i` at `BRIDGE_GPA + 4096 * i`), taken at its boot.
static REQUESTS: Global<[Option<&'static mut BridgeRequest>; MAX_CPUS]> =
    Global::new([const { None }; MAX_CPUS]);

fn page_of(cpu: usize) -> u64 {
    layout::BRIDGE_GPA + 4096 * cpu as u64
}

/// Takes this vCPU's request page.
pub fn init() {
    let cpu = arch::current_cpu();
    // SAFETY: this CPU's element only (see `arch::Global`).
    unsafe { (*REQUESTS.get())[cpu] = Some(phys::fixed_mut(page_of(cpu))) };
}

/// Sends one request and returns `ret`/`val`. `val` is left as the caller set it (an input of
/// some operations).
fn call(opcode: u32, flags: u32, nr: u64, args: [u64; 6]) -> (i64, [u64; 2]) {
    let cpu = arch::current_cpu();
    // SAFETY: this CPU's element only, and no other reference to it is live on this CPU (the
    // trap path does not nest; see `arch::Global`).
    let slot = unsafe { &mut (*REQUESTS.get())[cpu] };
    // Taken lazily as well, so that a panic before `init` can still log.
    let req = slot.get_or_insert_with(|| phys::fixed_mut(page_of(cpu)));
    req.op = opcode;
    req.flags = flags;
    req.nr = nr;
    req.args = args;
    req.cr3 = arch::read_cr3();
    req.ret = -offload_abi::errno::ENOSYS;
    // The port write is an asm block the compiler cannot see through: the stores above happen
    // before it and the loads below after it.
    arch::outl(port::OFFLOAD, cpu as u32);
    (req.ret, req.val)
}

/// Offloads a syscall made by the program (pointers are user addresses). Returns `ret` and
/// `val`: on `-EFAULT`, `val` tells which page was not present (`offload_abi::syscall_fault`).
pub fn user_syscall(nr: u64, args: [u64; 6]) -> (i64, [u64; 2]) {
    call(op::SYSCALL, 0, nr, args)
}

/// Has the host zero the `count` [`offload_abi::PhysRange`]s listed at guest-physical `list`.
pub fn zero_phys(list: u64, count: u64) -> i64 {
    call(
        op::ZERO_PHYS,
        req_flags::KERNEL_ORIGIN,
        0,
        [list, count, 0, 0, 0, 0],
    )
    .0
}

/// Offloads a syscall on the kernel's own behalf (pointers may be kernel addresses).
pub fn kernel_syscall(nr: u64, args: [u64; 6]) -> i64 {
    call(op::SYSCALL, req_flags::KERNEL_ORIGIN, nr, args).0
}

/// Host CLOCK_REALTIME and CLOCK_MONOTONIC in nanoseconds.
pub fn host_time() -> (u64, u64) {
    let (_, val) = call(op::HOST_TIME, req_flags::KERNEL_ORIGIN, 0, [0; 6]);
    (val[0], val[1])
}

/// Reports a finished syscall for `--trace` (`result` None: it does not return).
pub fn trace(nr: u64, args: [u64; 6], result: Option<i64>, ns: u64) {
    {
        let cpu = arch::current_cpu();
        // SAFETY: this CPU's element; this borrow ends before `call` takes its own (see
        // `arch::Global`).
        let slot = unsafe { &mut (*REQUESTS.get())[cpu] };
        let req = slot.get_or_insert_with(|| phys::fixed_mut(page_of(cpu)));
        req.val = [result.unwrap_or(0) as u64, ns];
    }
    let flags = if result.is_none() {
        req_flags::NO_RETURN
    } else {
        0
    };
    call(op::TRACE, flags, nr, args);
}

/// Log levels of [`log`].
pub mod level {
    /// Shown always.
    pub const ERROR: u64 = 0;
    /// Shown with `-v`.
    pub const INFO: u64 = 1;
}

/// Prints a kernel message through the VMM.
pub fn log(level: u64, msg: &[u8]) {
    call(
        op::LOG,
        req_flags::KERNEL_ORIGIN,
        0,
        [msg.as_ptr() as u64, msg.len() as u64, level, 0, 0, 0],
    );
}

/// A fixed buffer for formatting log messages without an allocator.
pub struct LogBuf {
    buf: [u8; 512],
    len: usize,
}

impl LogBuf {
    /// An empty buffer.
    pub const fn new() -> Self {
        LogBuf {
            buf: [0; 512],
            len: 0,
        }
    }

    /// The formatted bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl core::fmt::Write for LogBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Formats and logs a message: `klog!(level, "fmt", args...)`.
#[macro_export]
macro_rules! klog {
    ($level:expr, $($arg:tt)*) => {{
        let mut b = $crate::bridge::LogBuf::new();
        let _ = core::fmt::Write::write_fmt(&mut b, format_args!($($arg)*));
        $crate::bridge::log($level, b.bytes());
    }};
}
