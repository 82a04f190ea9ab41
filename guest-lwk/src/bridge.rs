//! The guest side of the offload bridge, `exit` transport: fill this vCPU's request page,
//! write the vCPU id to the offload port (one VM exit), read the result.
//!
//! The guest sends raw syscall arguments; the host resolves guest-virtual pointers itself by
//! walking the page tables rooted at the CR3 sent along (docs/DESIGN.md "Offload"), so the
//! LWK runs only a handful of ring-0 instructions per offloaded call.

use crate::arch::{self, Global, MAX_CPUS};
use crate::phys;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, Ordering, fence};
use offload_abi::{AsyncSlot, BootInfo, BridgeRequest, async_offload, layout, op, port, req_flags};

/// Each vCPU's request page (vCPU `i` at `BRIDGE_GPA + 4096 * i`), taken at its boot.
static REQUESTS: Global<[Option<&'static mut BridgeRequest>; MAX_CPUS]> =
    Global::new([const { None }; MAX_CPUS]);

fn page_of(cpu: usize) -> u64 {
    layout::BRIDGE_GPA + 4096 * cpu as u64
}

/// The job's first process (`BootInfo::pid`), taken at [`init`]: what requests name before the
/// process table exists.
static PID: AtomicU32 = AtomicU32::new(0);

/// The pid requests name (`BridgeRequest::pid`): the calling thread's process.
fn pid() -> u32 {
    match crate::process::pid_of(arch::current_slot()) {
        0 => PID.load(Ordering::Relaxed),
        p => p,
    }
}

/// Takes this vCPU's request page and the boot pid.
pub fn init() {
    // `pid` is followed by `ppid` in one aligned 8-byte word: the low half is the pid.
    const PID_WORD: u64 = layout::BOOT_INFO_GPA + offset_of!(BootInfo, pid) as u64;
    const _: () = assert!(offset_of!(BootInfo, pid) % 8 == 0);
    PID.store(phys::read_u64(PID_WORD) as u32, Ordering::Relaxed);
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
    req.pid = pid();
    req.ret = -offload_abi::errno::ENOSYS;
    // The port write is an asm block the compiler cannot see through: the stores above happen
    // before it and the loads below after it.
    arch::outl(port::OFFLOAD, cpu as u32);
    (req.ret, req.val)
}

/// Offloads a syscall made by the program (pointers are user addresses; `flags`: 0 or
/// `req_flags::NO_BLOCK`). Returns `ret` and `val`: on `-EFAULT`, `val` tells which page was
/// not present (`offload_abi::syscall_fault`).
pub fn user_syscall(nr: u64, args: [u64; 6], flags: u32) -> (i64, [u64; 2]) {
    // While the host runs it the thread is in a call that may wait (/proc's state `S`).
    let me = arch::current_slot();
    crate::procinfo::thread_sleeping(me, true);
    let r = call(op::SYSCALL, flags, nr, args);
    crate::procinfo::thread_sleeping(me, false);
    r
}

/// Has the host zero the `count` [`offload_abi::PhysRange`]s listed at guest-physical `list`.
pub fn zero_phys(list: u64, count: u64) -> i64 {
    kernel_op(op::ZERO_PHYS, [list, count, 0, 0, 0, 0])
}

/// Sends a kernel-origin operation (not a syscall) and returns its `ret`.
fn kernel_op(opcode: u32, args: [u64; 6]) -> i64 {
    call(opcode, req_flags::KERNEL_ORIGIN, 0, args).0
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

// Asynchronous offloads (offload_abi::async_offload). The page is the caller's: a 4 KiB-aligned
// guest-physical page that starts with an `AsyncSlot`. Every access goes through `phys` with
// volatile 8-byte accesses (no reference into a page the VMM writes while this vCPU runs).

const SLOT_NR: u64 = offset_of!(AsyncSlot, req) as u64 + offset_of!(BridgeRequest, nr) as u64;
const SLOT_ARGS: u64 = offset_of!(AsyncSlot, req) as u64 + offset_of!(BridgeRequest, args) as u64;
const SLOT_CR3: u64 = offset_of!(AsyncSlot, req) as u64 + offset_of!(BridgeRequest, cr3) as u64;
const SLOT_RET: u64 = offset_of!(AsyncSlot, req) as u64 + offset_of!(BridgeRequest, ret) as u64;
const SLOT_VAL: u64 = offset_of!(AsyncSlot, req) as u64 + offset_of!(BridgeRequest, val) as u64;
// `pid` (low half) and its padding share one aligned 8-byte word.
const SLOT_PID: u64 = offset_of!(AsyncSlot, req) as u64 + offset_of!(BridgeRequest, pid) as u64;
const _: () = assert!(offset_of!(BridgeRequest, _pad) as u64 == SLOT_PID + 4);
const _: () = assert!(SLOT_PID.is_multiple_of(8));
// `done` (low half) and `vcpu` (high half) share one aligned 8-byte word.
const SLOT_DONE_WORD: u64 = offset_of!(AsyncSlot, done) as u64;
const _: () = assert!(offset_of!(AsyncSlot, vcpu) as u64 == SLOT_DONE_WORD + 4);
const _: () = assert!(SLOT_DONE_WORD.is_multiple_of(8));
const _: () = assert!(offset_of!(AsyncSlot, req) == 0 && offset_of!(BridgeRequest, op) == 0);
const _: () = assert!(offset_of!(BridgeRequest, flags) == 4);

/// Fills the request of the async slot at `page_pa` with a syscall the program made (user
/// pointers, this address space). Call before [`submit_async`].
pub fn async_user_syscall(page_pa: u64, nr: u64, args: [u64; 6], flags: u32) {
    // op = SYSCALL, then the flags (user origin: no KERNEL_ORIGIN).
    phys::write_u64(page_pa, u64::from(op::SYSCALL) | u64::from(flags) << 32);
    phys::write_u64(page_pa + SLOT_NR, nr);
    for (i, a) in args.iter().enumerate() {
        phys::write_u64(page_pa + SLOT_ARGS + 8 * i as u64, *a);
    }
    phys::write_u64(page_pa + SLOT_CR3, arch::read_cr3());
    phys::write_u64(page_pa + SLOT_PID, u64::from(pid()));
}

/// Submits the async slot at `page_pa` (4 KiB-aligned, request filled): stores `done = 0`,
/// then writes the page number to `port::OFFLOAD_ASYNC`. Returns at once; the VMM completes
/// the call later (`done` becomes 1 and vector `async_offload::VECTOR` is raised on this
/// vCPU). Refusals (in-flight limit: -EAGAIN, ...) complete before this returns.
pub fn submit_async(page_pa: u64) {
    assert!(
        page_pa.is_multiple_of(4096) && page_pa >> 12 <= u64::from(u32::MAX),
        "async offload page {page_pa:#x} is not a 4 KiB page below 16 TiB"
    );
    // done = DONE_PENDING, vcpu = 0 (the VMM writes it).
    phys::write_u64(
        page_pa + SLOT_DONE_WORD,
        u64::from(async_offload::DONE_PENDING),
    );
    // The stores above are ordered before the port write: `outl` is an asm block the compiler
    // cannot move memory accesses across, and `out` is serializing on x86.
    arch::outl(port::OFFLOAD_ASYNC, (page_pa >> 12) as u32);
}

/// Whether the async call in the slot at `page_pa` has completed. Once it returns true,
/// [`async_result`] may be read.
pub fn async_done(page_pa: u64) -> bool {
    // An aligned 8-byte load is single-copy atomic on x86; the acquire fence after it pairs
    // with the VMM's release store of `done`, so `ret`/`val` read after this are the
    // completion's.
    let word = phys::read_u64(page_pa + SLOT_DONE_WORD);
    fence(Ordering::Acquire);
    word as u32 == async_offload::DONE_COMPLETE
}

/// `ret` and `val` of a completed async call (see [`async_done`]).
pub fn async_result(page_pa: u64) -> (i64, [u64; 2]) {
    let ret = phys::read_u64(page_pa + SLOT_RET) as i64;
    let val = [
        phys::read_u64(page_pa + SLOT_VAL),
        phys::read_u64(page_pa + SLOT_VAL + 8),
    ];
    (ret, val)
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

/// Has the host copy the `count` [`offload_abi::CopyRange`]s listed at guest-physical `list`
/// (checked whole first: an error copies nothing).
pub fn copy_phys(list: u64, count: u64) -> i64 {
    kernel_op(op::COPY_PHYS, [list, count, 0, 0, 0, 0])
}

/// Sets process `pid`'s command name (/proc/self/comm) to the `len` bytes at kernel-virtual
/// `name_kva` (the host stops at a NUL and keeps at most [`offload_abi::COMM_LEN`] bytes).
pub fn proc_name(pid: u32, name_kva: u64, len: u64) -> i64 {
    kernel_op(op::PROC_NAME, [u64::from(pid), name_kva, len, 0, 0, 0])
}

/// The host gives process `child` a copy of `parent`'s fd table, cwd and umask (fork).
pub fn proc_fork(parent: u32, child: u32) -> i64 {
    kernel_op(
        op::PROC_FORK,
        [u64::from(parent), u64::from(child), 0, 0, 0, 0],
    )
}

/// Process `pid` exec'd the program at kernel-virtual `path_kva` (`len` bytes): the host
/// closes its close-on-exec fds and records the program (/proc/self/exe, comm).
/// `cmdline_kva`/`cmdline_len`: its new /proc/self/cmdline (the argument strings).
pub fn proc_exec(pid: u32, path_kva: u64, len: u64, cmdline_kva: u64, cmdline_len: u64) -> i64 {
    kernel_op(
        op::PROC_EXEC,
        [u64::from(pid), path_kva, len, cmdline_kva, cmdline_len, 0],
    )
}

/// Process `pid` ended: the host drops its fd table, cwd and umask.
pub fn proc_exit(pid: u32) -> i64 {
    kernel_op(op::PROC_EXIT, [u64::from(pid), 0, 0, 0, 0, 0])
}

/// Tells the host process `pid`'s live threads and parent pid (/proc/self/status).
pub fn proc_state(pid: u32, threads: u32, ppid: u32) -> i64 {
    kernel_op(
        op::PROC_STATE,
        [u64::from(pid), u64::from(threads), u64::from(ppid), 0, 0, 0],
    )
}
