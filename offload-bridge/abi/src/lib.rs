//! `offload-abi`: the one contract between the lwk-vmm host (VMM) and the guest LWK.
//!
//! Everything that crosses the guest/host boundary is defined here and nowhere else
//! (DESIGN.md rule 1): the guest-physical and guest-virtual layout, the I/O ports, the
//! boot-info block, the offload request, the guest statistics page, the protocol version, the
//! Linux syscall table and errno values. Shared structs are `#[repr(C)]`, integers only, with
//! explicit padding and compile-time size/offset asserts; enumerations travel as integers and
//! are decoded with `TryFrom` on the receiving side.
//!
//! Neighbours: the guest kernel (`guest-lwk`) and the host crates (`offload-host`, `lwk-devices`,
//! `lwk-vmm`) import this crate. It imports nothing of the project.
#![no_std]
#![forbid(unsafe_code)]

pub mod errno;
pub mod syscalls;

use core::mem::{offset_of, size_of};

/// Version of this contract. The guest image carries it in an ELF note (see [`ABI_NOTE_NAME`]);
/// the VMM refuses an image whose version differs. Version 2 added asynchronous offloads
/// ([`port::OFFLOAD_ASYNC`], [`AsyncSlot`]). Version 3 added [`BridgeRequest::pid`] and the
/// process operations ([`op::PROC_FORK`], [`op::PROC_EXEC`], [`op::PROC_EXIT`]). Version 4
/// added [`op::COPY_PHYS`] ([`CopyRange`], [`MAX_COPY_RANGES`]) and [`op::PROC_NAME`] (and
/// made [`op::PROC_EXEC`] set the process's command name). Version 5 added [`op::PROC_STATE`] and the cmdline of [`op::PROC_EXEC`]. Version 7 added the
/// [`ProcTable`] at [`layout::PROC_TABLE_GPA`].
pub const PROTOCOL_VERSION: u32 = 7;

/// Name of the ELF note (PT_NOTE) in the guest image that carries [`PROTOCOL_VERSION`].
pub const ABI_NOTE_NAME: &[u8; 8] = b"LWK-VMM\0";
/// Type of that ELF note. Its descriptor is one little-endian u32: the protocol version.
pub const ABI_NOTE_TYPE: u32 = 0x4c57_4b01;

/// Guest-physical layout chosen by the VMM. The guest learns the variable parts from
/// [`BootInfo`]; the fixed parts are here so both sides agree.
pub mod layout {
    /// Guest-physical address of the [`super::BootInfo`] page; also passed in RSI at entry.
    pub const BOOT_INFO_GPA: u64 = 0x1000;
    /// The program path the LWK opens (NUL-terminated, at most [`EXE_PATH_MAX`] bytes).
    pub const EXE_PATH_GPA: u64 = 0x2000;
    /// Size of the program-path page.
    pub const EXE_PATH_MAX: usize = 4096;
    /// The [`super::GuestStats`] page.
    pub const STATS_GPA: u64 = 0x3000;
    /// Offload request pages, one per vCPU: vCPU `i` uses `BRIDGE_GPA + i * 4096`.
    pub const BRIDGE_GPA: u64 = 0x4000;
    /// Most vCPUs the layout has room for (bridge pages end below 0x8_0000).
    pub const MAX_VCPUS: u32 = 64;
    /// The [`super::ProcTable`] the LWK publishes for the host's /proc view.
    pub const PROC_TABLE_GPA: u64 = 0x8_0000;
    /// Page tables built by the VMM (PML4, PDPTs, PDs for the kernel and direct maps).
    pub const PAGE_TABLES_GPA: u64 = 0x10_0000;
    /// End of the VMM's page-table area.
    pub const PAGE_TABLES_END: u64 = 0x20_0000;
    /// Where the guest kernel image is loaded (its ELF LMA).
    pub const KERNEL_PHYS: u64 = 0x20_0000;
    /// End of the area reserved for the kernel image; free memory starts here.
    pub const KERNEL_PHYS_END: u64 = 0x100_0000;
    /// Virtual base of the kernel image mapping: maps guest-physical `0..1 GiB`.
    pub const KERNEL_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    /// Virtual base of the direct map: maps all guest RAM at `DIRECT_MAP_BASE + gpa`.
    pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
    /// Top of the program's initial stack (exclusive); 2 MiB aligned.
    pub const USER_STACK_TOP: u64 = 0x7fff_ffe0_0000;
    /// One past the highest user virtual address.
    pub const USER_END: u64 = 0x8000_0000_0000;
}

/// I/O ports of the guest's devices. Chosen outside the legacy PC range that an in-kernel
/// irqchip claims (PIC 0x20/0xa0, PIT 0x40, ...).
pub mod port {
    /// 32-bit write: the vCPU's offload request page is ready (value: vCPU id; the VMM serves
    /// the page of the vCPU that made the write, whatever the value).
    pub const OFFLOAD: u16 = 0x7100;
    /// 32-bit write: the job is over; details are in [`super::GuestStats`].
    pub const EXIT: u16 = 0x7101;
    /// 32-bit write by vCPU 0: shared kernel state is ready, the other vCPUs may start
    /// (they begin at the image entry with RSI = boot info, RDX = vCPU id).
    pub const START_APS: u16 = 0x7102;
    /// 32-bit write: submit an asynchronous offload (value: guest-physical address of an
    /// [`super::AsyncSlot`] page, shifted right by 12). See [`super::async_offload`].
    pub const OFFLOAD_ASYNC: u16 = 0x7103;
    /// Switches the vCPU's FPU/SSE/AVX state between threads (the LWK's ring 0 cannot run
    /// `xsave` on every KVM, so the VMM does it with KVM_GET_XSAVE/KVM_SET_XSAVE). The value
    /// is the guest-physical address of an [`super::FpuSwitch`] shifted right by 4.
    pub const FPU_SWITCH: u16 = 0x7104;
    /// The LWK has a signal for a thread whose offloaded call may be blocked on the host: the
    /// VMM interrupts the synchronous call of the vCPU whose id is written (32-bit), if one is
    /// in flight. The host call then returns -EINTR if it was blocked (the VMM repeats the
    /// interruption for up to 2 ms, in case it was not blocked yet); a call that was not
    /// blocked completes normally. Nothing happens if the vCPU has no call in flight.
    pub const INTERRUPT_SYNC: u16 = 0x7105;
    /// The same for the asynchronous call in the [`super::AsyncSlot`] page whose GPA >> 12 is
    /// written; a call submitted but not started yet that may block must not wait when it
    /// starts ([`super::req_flags::NO_BLOCK`]).
    pub const INTERRUPT_ASYNC: u16 = 0x7106;
}

/// Magic value at the start of [`BootInfo`] (`"LWKBOOT1"`).
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"LWKBOOT1");

/// Kind of a [`MemRegion`].
pub mod mem_kind {
    /// RAM the LWK may allocate.
    pub const USABLE: u32 = 1;
}

/// One range of guest-physical memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRegion {
    /// First guest-physical address.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// A [`mem_kind`] value.
    pub kind: u32,
    /// Explicit padding; zero.
    pub _pad: u32,
}
const _: () = assert!(size_of::<MemRegion>() == 24);

/// Most memory regions in [`BootInfo`].
pub const MAX_MEM_REGIONS: usize = 8;

/// Bits of [`BootInfo::flags`].
pub mod boot_flags {
    /// Map program memory when it is granted (no demand paging).
    pub const PREFAULT: u64 = 1 << 0;
    /// Send an [`super::op::TRACE`] record after every syscall (`--trace`).
    pub const TRACE: u64 = 1 << 1;
    /// `-v`: the LWK may log extra information (a memory summary at exit).
    pub const VERBOSE: u64 = 1 << 2;
}

/// What the VMM tells the LWK at boot. Lives at [`layout::BOOT_INFO_GPA`]; RSI points to it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u64,
    /// [`PROTOCOL_VERSION`] of the VMM that wrote this block.
    pub version: u32,
    /// Number of vCPUs.
    pub vcpu_count: u32,
    /// Bytes of guest RAM (guest-physical `0..mem_size`).
    pub mem_size: u64,
    /// Number of valid entries in `regions`.
    pub nr_regions: u32,
    /// Explicit padding; zero.
    pub _pad0: u32,
    /// Memory map.
    pub regions: [MemRegion; MAX_MEM_REGIONS],
    /// TSC frequency in kHz, as KVM reports it for the vCPUs.
    pub tsc_khz: u64,
    /// [`boot_flags`] bits.
    pub flags: u64,
    /// Guest-physical base of the program's initial stack block (zeroed, physically contiguous).
    pub stack_gpa: u64,
    /// Size of that block; it is mapped to end at [`layout::USER_STACK_TOP`].
    pub stack_size: u64,
    /// Bytes of string data at the very top of the stack block: argv strings, envp strings,
    /// `AT_EXECFN`, `AT_PLATFORM` (each NUL-terminated), then 16 random bytes for `AT_RANDOM`.
    pub strings_len: u64,
    /// Number of argv strings.
    pub argc: u32,
    /// Number of envp strings.
    pub envc: u32,
    /// Offset of the `AT_EXECFN` string inside the string blob.
    pub execfn_off: u32,
    /// Offset of the `AT_PLATFORM` string inside the string blob.
    pub platform_off: u32,
    /// Offset of the 16 `AT_RANDOM` bytes inside the string blob.
    pub random_off: u32,
    /// Explicit padding; zero.
    pub _pad1: u32,
    /// Real, effective user and group ids the program sees (uid, euid, gid, egid).
    pub ids: [u32; 4],
    /// `AT_HWCAP` (CPUID leaf 1 EDX, as Linux reports it).
    pub hwcap: u64,
    /// Process id the program sees.
    pub pid: u32,
    /// Parent process id the program sees.
    pub ppid: u32,
    /// Resource limits (soft, hard) the program starts with, indexed by `RLIMIT_*`.
    pub rlimits: [[u64; 2]; RLIMIT_COUNT],
    /// `struct utsname` as uname(2) returns it: six NUL-padded 65-byte fields.
    pub utsname: [u8; UTSNAME_LEN],
    /// Explicit padding; zero.
    pub _pad3: [u8; 2],
    /// The program's initial RSP (user virtual, 16-byte aligned): the VMM has written argc,
    /// argv[] (pointers into the string blob), NULL, envp[], NULL there (bulk pointer work is
    /// done on the host side; see docs/DESIGN.md "Initial stack").
    pub initial_sp: u64,
    /// Where the LWK writes the auxiliary vector: [`AUXV_WORDS`] zeroed words right after
    /// envp's NULL.
    pub auxv_va: u64,
    /// Time slice in microseconds when threads outnumber vCPUs (`oversubscribe =
    /// "timeslice"`); 0: clone refuses a thread that would need one (`"refuse"`).
    pub timeslice_us: u64,
    /// Process group of lwk-vmm (the program's at start, as if it ran natively in its place:
    /// it has lwk-vmm's pid).
    pub pgid: u32,
    /// Session of lwk-vmm (likewise).
    pub sid: u32,
}

/// Words reserved for the auxiliary vector on the initial stack (24 key/value pairs).
pub const AUXV_WORDS: usize = 48;

/// Number of `RLIMIT_*` resources Linux defines.
pub const RLIMIT_COUNT: usize = 16;
/// Size of Linux's `struct utsname` (6 fields of 65 bytes).
pub const UTSNAME_LEN: usize = 6 * 65;
const _: () = assert!(offset_of!(BootInfo, regions) == 32);
const _: () = assert!(offset_of!(BootInfo, tsc_khz) == 224);
const _: () = assert!(offset_of!(BootInfo, ids) == 288);
const _: () = assert!(offset_of!(BootInfo, rlimits) == 320);
const _: () = assert!(offset_of!(BootInfo, utsname) == 576);
const _: () = assert!(offset_of!(BootInfo, initial_sp) == 968);
const _: () = assert!(size_of::<BootInfo>() == 1000);
const _: () = assert!(size_of::<BootInfo>() <= 4096);

/// Operations of an offload request ([`BridgeRequest::op`]).
pub mod op {
    /// Execute Linux syscall `nr` with `args` on the host.
    pub const SYSCALL: u32 = 1;
    /// Read the host clocks: `val[0]` = CLOCK_REALTIME ns, `val[1]` = CLOCK_MONOTONIC ns.
    pub const HOST_TIME: u32 = 2;
    /// Print a kernel log message: `args[0]` = kernel-virtual address, `args[1]` = length,
    /// `args[2]` = level (0 error, 1 info).
    pub const LOG: u32 = 3;
    /// A syscall the program made (`--trace`): `nr`, `args` as the program passed them,
    /// `val[0]` = result, `val[1]` = duration in ns; pointers resolve through `cr3`.
    pub const TRACE: u32 = 4;
    /// Make guest-physical ranges read zero: `args[0]` = guest-physical address of an array of
    /// `args[1]` (at most [`super::MAX_ZERO_RANGES`]) [`super::PhysRange`]s. Every range must
    /// lie inside guest RAM (else `-EFAULT`, possibly after zeroing earlier ranges). The host
    /// does the bulk work (memset, or dropping its pages where that reads back zero), so the
    /// LWK never zeroes memory in ring 0 (docs/DESIGN.md "Memory").
    pub const ZERO_PHYS: u32 = 5;
    /// A process forked (issue #9): `args[0]` = parent pid, `args[1]` = child pid. The host
    /// gives the child a copy of the parent's fd table (the same open file descriptions, the
    /// per-fd CLOEXEC flags kept), working directory and umask. `-ESRCH`: no such parent;
    /// `-EEXIST`: the child pid is in use; `-EAGAIN`: already [`super::MAX_PROCESSES`]
    /// processes. Kernel origin only ([`super::req_flags::KERNEL_ORIGIN`]), else `-EPERM`.
    pub const PROC_FORK: u32 = 6;
    /// A process exec'd: `args[0]` = pid, `args[1]` = kernel-virtual address of the new
    /// program's path and `args[2]` its length in bytes, without NUL (0: keep the old one).
    /// The path (relative: from the process's cwd) must open inside the job's root, like any
    /// guest path; it becomes what the process's /proc/self/exe names. Then the host closes
    /// the process's CLOEXEC fds (a host fd closes when no other process shares it) and
    /// returns how many. With a path, the process's command name ([`PROC_NAME`]) becomes the
    /// path's last component, truncated to [`super::COMM_LEN`] bytes (Linux takes it from the
    /// exec'd file name). Errors change nothing: `-ESRCH` no such process, `-ENAMETOOLONG`
    /// length of 4096 or more, `-EFAULT` unreadable path, `-EINVAL` a NUL in it, the open's
    /// errno (`-ENOENT`, ...). Protocol 5: `args[3]` = kernel-virtual address of the new
    /// /proc/self/cmdline bytes (the argument strings, each with its NUL) and `args[4]` their
    /// length (0: keep the old ones; more than [`super::MAX_CMDLINE`]: `-EINVAL`). Kernel
    /// origin only, else `-EPERM`.
    pub const PROC_EXEC: u32 = 7;
    /// A process exited: `args[0]` = pid. The host drops its fd table, working directory and
    /// umask. `-ESRCH`: no such process. Kernel origin only, else `-EPERM`.
    pub const PROC_EXIT: u32 = 8;
    /// Copy guest-physical ranges: `args[0]` = guest-physical address of an array of `args[1]`
    /// (at most [`super::MAX_COPY_RANGES`]) [`super::CopyRange`]s; each copies `len` bytes
    /// from `src` to `dst`, in list order. The host does the bulk work (memcpy on its mapping
    /// of guest RAM), so the LWK never copies memory in ring 0 (a fork's address space). The
    /// whole list is checked before anything is copied, so an error copies nothing:
    /// `-EINVAL` too many ranges or a range whose source and destination overlap, `-EFAULT`
    /// an unreadable list or a range not inside guest RAM. Returns 0. Kernel origin only, else
    /// `-EPERM`.
    pub const COPY_PHYS: u32 = 9;
    /// Set a process's command name (`comm`: /proc/self/comm, the `Name:` of
    /// /proc/self/status; prctl(PR_SET_NAME)): `args[0]` = pid, `args[1]` = kernel-virtual
    /// address of the name, `args[2]` = its length. As Linux does, bytes from the first NUL
    /// on are ignored and the name is truncated to [`super::COMM_LEN`] bytes (so at most that
    /// many bytes are read). Returns 0. `-ESRCH` no such process, `-EFAULT` unreadable name.
    /// Forked processes inherit the name. Kernel origin only, else `-EPERM`.
    pub const PROC_NAME: u32 = 10;
    /// A process's state changed in the LWK: `args[0]` = pid, `args[1]` = its live threads
    /// (/proc/self/status `Threads:`), `args[2]` = its parent's pid (`PPid:`; it changes when
    /// the parent ends and the process is reparented). `-ESRCH`: no such process; `-EINVAL`: 0
    /// threads or a count above [`super::MAX_THREADS_PER_PROCESS`]. Kernel origin only, else
    /// `-EPERM`.
    pub const PROC_STATE: u32 = 11;
}

/// Most bytes of a process's command name ([`op::PROC_NAME`]); Linux's `TASK_COMM_LEN` - 1.
pub const COMM_LEN: usize = 15;

/// Most ranges in one [`op::COPY_PHYS`] request (one 4 KiB page of [`CopyRange`]s).
pub const MAX_COPY_RANGES: u64 = 128;

/// A guest-physical copy (an element of an [`op::COPY_PHYS`] list): `len` bytes from `src` to
/// `dst`, which must not overlap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyRange {
    /// First guest-physical address to read.
    pub src: u64,
    /// First guest-physical address to write.
    pub dst: u64,
    /// Length in bytes.
    pub len: u64,
    /// Zero (explicit padding to 32 bytes; ignored by the host).
    pub _pad: u64,
}
const _: () = assert!(size_of::<CopyRange>() == 32);
const _: () = assert!(offset_of!(CopyRange, dst) == 8);
const _: () = assert!(offset_of!(CopyRange, len) == 16);
const _: () = assert!(MAX_COPY_RANGES * size_of::<CopyRange>() as u64 == 4096);

/// Longest /proc/self/cmdline an [`op::PROC_EXEC`] may set (Linux's ARG_MAX for an 8 MiB
/// stack).
pub const MAX_CMDLINE: u64 = 2 << 20;

/// Most threads a [`op::PROC_STATE`] may report for one process.
pub const MAX_THREADS_PER_PROCESS: u64 = 1 << 16;

/// Most processes the host keeps state for in one job ([`op::PROC_FORK`] beyond it: `-EAGAIN`).
pub const MAX_PROCESSES: usize = 1024;

/// Most ranges in one [`op::ZERO_PHYS`] request (one 4 KiB page of [`PhysRange`]s).
pub const MAX_ZERO_RANGES: u64 = 256;

/// A guest-physical byte range (an element of an [`op::ZERO_PHYS`] list).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysRange {
    /// First guest-physical address.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
}
const _: () = assert!(size_of::<PhysRange>() == 16);
const _: () = assert!(MAX_ZERO_RANGES * size_of::<PhysRange>() as u64 == 4096);

/// What an [`op::SYSCALL`] result carries in `val` when it is `-EFAULT` because a page was not
/// present (demand paging): `val[0]` = the first such guest-virtual address, `val[1]` = these
/// bits. The LWK maps the page if it belongs to the program and repeats the call (the host
/// checks every buffer before doing anything irreversible, so a repeated call is safe).
pub mod syscall_fault {
    /// `val[0]` names a guest-virtual address that was not present.
    pub const NOT_PRESENT: u64 = 1 << 0;
    /// The host wanted to write there.
    pub const WRITE: u64 = 1 << 1;
}

/// Host signals (issue #7): signals sent to `lwk-vmm` reach the program.
///
/// The VMM sets bit `sig - 1` of [`HostSignals::pending`] (atomic OR on the host mapping of
/// guest RAM) and raises interrupt [`hostsig::VECTOR`] on vCPU 0 (MSI to x2APIC id 0); the LWK
/// takes the bits with an atomic swap to zero and delivers them as process-directed signals
/// (`kill` semantics, `si_code = SI_USER`, `si_pid = 0`). When a vCPU is blocked in an offloaded
/// host call and the signal's bit is set in [`HostSignals::interrupting`], the VMM also
/// interrupts that host call (it returns `-EINTR` to the LWK, which delivers the signal and
/// restarts the call or returns EINTR as Linux would).
pub mod hostsig {
    /// Guest-physical address of the [`super::HostSignals`] block (the boot-info page, after
    /// [`super::BootInfo`]).
    pub const GPA: u64 = 0x1c00;
    /// The interrupt vector the VMM raises on vCPU 0.
    pub const VECTOR: u8 = 0xf2;
    /// The signals lwk-vmm forwards: SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM,
    /// SIGCONT, SIGWINCH (bit `sig - 1`).
    pub const FORWARDED: u64 =
        (1 << 0) | (1 << 1) | (1 << 2) | (1 << 9) | (1 << 11) | (1 << 14) | (1 << 17) | (1 << 27);
    /// What [`super::HostSignals::interrupting`] holds until the LWK says otherwise: every
    /// forwarded signal whose default action terminates (all but SIGCONT and SIGWINCH).
    pub const DEFAULT_INTERRUPTING: u64 = FORWARDED & !((1 << 17) | (1 << 27));
}

/// The host-signal block at [`hostsig::GPA`], shared by the VMM and the LWK.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HostSignals {
    /// Signals sent to lwk-vmm and not yet taken by the LWK (bit `sig - 1`). Written by the
    /// VMM (atomic OR), taken by the LWK (atomic swap).
    pub pending: u64,
    /// Signals whose arrival must interrupt an offloaded host call that blocks: those the
    /// program neither ignores nor blocks in every thread. The VMM writes
    /// [`hostsig::DEFAULT_INTERRUPTING`] before boot; the LWK rewrites it on every change of
    /// disposition or mask.
    pub interrupting: u64,
}
const _: () = assert!(size_of::<HostSignals>() == 16);
const _: () = assert!(
    hostsig::GPA >= layout::BOOT_INFO_GPA + size_of::<BootInfo>() as u64
        && hostsig::GPA + size_of::<HostSignals>() as u64 <= layout::EXE_PATH_GPA
);

/// What [`port::FPU_SWITCH`] does: first the vCPU's current FPU state is stored at `save`, then
/// the state stored earlier at `restore` is loaded. Each is the guest-physical address of a
/// 4 KiB-aligned [`FPU_AREA_SIZE`]-byte area in guest RAM (the `struct kvm_xsave` layout), or 0
/// for "not this half". A descriptor or area the VMM cannot use ends the job with an error.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FpuSwitch {
    /// Where to store the current state (0: nowhere).
    pub save: u64,
    /// Where to load the new state from (0: keep the current one).
    pub restore: u64,
}
const _: () = assert!(size_of::<FpuSwitch>() == 16);

/// Bytes of one saved FPU state (`struct kvm_xsave`).
pub const FPU_AREA_SIZE: u64 = 4096;

/// Bits of [`BridgeRequest::flags`].
pub mod req_flags {
    /// Pointers in the request were made by the kernel: they may point to supervisor pages.
    /// Without this bit only user-accessible pages are accepted (a user program cannot make
    /// the host read kernel memory on its behalf).
    pub const KERNEL_ORIGIN: u32 = 1 << 0;
    /// On a [`super::op::TRACE`] record: the syscall does not return (exit, exit_group).
    pub const NO_RETURN: u32 = 1 << 1;
    /// On a syscall that may block ([`super::syscalls::may_block`]): a signal is already
    /// pending for the caller, so nobody would interrupt the call once it waits. The host runs
    /// it only if it cannot wait (its fd is ready or non-blocking, MSG_DONTWAIT, LOCK_NB, a
    /// zero timeout), as Linux's call completes with a signal pending when it need not sleep;
    /// otherwise it answers [`super::errno::ERESTARTSYS`] ([`super::errno::ERESTARTNOHAND`]
    /// for the poll family), which the signal's delivery turns into EINTR or a restart as on
    /// Linux. Set by the LWK, or by the VMM for a host signal or an interrupt request that
    /// came before the call started.
    pub const NO_BLOCK: u32 = 1 << 2;
}

/// One offload request, in the vCPU's bridge page. The guest fills everything but `ret` and
/// `val`, writes its vCPU id to [`port::OFFLOAD`], and reads `ret`/`val` when the write returns.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeRequest {
    /// An [`op`] value.
    pub op: u32,
    /// [`req_flags`] bits.
    pub flags: u32,
    /// Syscall number for [`op::SYSCALL`].
    pub nr: u64,
    /// Raw syscall arguments; pointers are guest-virtual, resolved by the host through the
    /// guest page tables rooted at `cr3`.
    pub args: [u64; 6],
    /// Guest CR3 of the address space the pointers belong to.
    pub cr3: u64,
    /// Result, Linux style: a value, or `-errno`.
    pub ret: i64,
    /// Extra results of some operations.
    pub val: [u64; 2],
    /// The process making the request (its pid as the program sees it): [`op::SYSCALL`]
    /// runs on that process's fd table, working directory and umask, and `-ESRCH` answers a
    /// pid the host does not know. The other operations ignore it.
    pub pid: u32,
    /// Explicit padding; zero.
    pub _pad: u32,
}
const _: () = assert!(offset_of!(BridgeRequest, args) == 16);
const _: () = assert!(offset_of!(BridgeRequest, cr3) == 64);
const _: () = assert!(offset_of!(BridgeRequest, ret) == 72);
const _: () = assert!(offset_of!(BridgeRequest, val) == 80);
const _: () = assert!(offset_of!(BridgeRequest, pid) == 96);
const _: () = assert!(size_of::<BridgeRequest>() == 104);

/// Asynchronous offloads: the guest submits a request and keeps running; the host completes it
/// later and interrupts the submitting vCPU. For calls that may block on the host (a read on an
/// empty pipe, accept, poll, ...), so that the LWK can run another thread meanwhile.
///
/// Protocol, for one [`AsyncSlot`] in a 4 KiB-aligned page of guest RAM owned by the guest:
/// 1. The guest fills `slot.req` (`op`, `flags`, `nr`, `args`, `cr3`, `pid` exactly as for
///    [`port::OFFLOAD`]; `ret`/`val` are outputs), stores [`DONE_PENDING`] in `slot.done`, and
///    writes `gpa >> 12` (32 bits) to [`port::OFFLOAD_ASYNC`]. A page address is aligned by
///    construction; pages must lie below 16 TiB.
/// 2. The VMM reads the request once (the guest may reuse or scribble over the page afterwards
///    without affecting the call) and returns from the port write at once; the call runs on a
///    host worker thread, concurrently with everything else.
/// 3. When the call has finished the VMM writes `req.ret` and `req.val`, then `vcpu` (the
///    vCPU that submitted), then stores [`DONE_COMPLETE`] in `done` with release ordering,
///    then raises interrupt [`VECTOR`] on the submitting vCPU (fixed-delivery MSI to APIC id =
///    vCPU id). The guest reads `done` with acquire ordering; once it reads
///    [`DONE_COMPLETE`], `ret`/`val`/`vcpu` are valid. The interrupt is only a wake-up hint
///    (it may arrive after the guest has already seen `done`, and one interrupt may stand for
///    several completions): the guest must check the `done` words of its slots.
///
/// Outcomes that never panic the host, each documented and tested:
/// - Page not entirely inside guest RAM: nothing can be answered; the submission is dropped
///   (counted by the VMM; the guest gets neither a completion nor an interrupt).
/// - Already [`MAX_IN_FLIGHT`] asynchronous calls in flight in the job, or no host thread can
///   be started: completed at once (before the port write returns) with `ret = -EAGAIN`,
///   `done = 1`, and the interrupt.
/// - `req.op` other than [`op::SYSCALL`]: completed at once with `-EINVAL`; a syscall number
///   the table does not mark offloaded: completed at once with `-ENOSYS`.
/// - A request whose pointers are bad completes like the synchronous call would (`-EFAULT`,
///   with the not-present report in `val`, see [`syscall_fault`]).
/// - The job ends while calls are in flight: the VMM interrupts their host calls (as host
///   signals do, [`hostsig`]), waits for the workers and ends; calls that had not started are
///   completed with `-EINTR`.
///
/// Host signals interrupt an asynchronous call like a synchronous one: its host call returns
/// and it completes with `-EINTR` (when the signal's bit is in `HostSignals::interrupting`).
pub mod async_offload {
    /// The interrupt vector the VMM raises on the submitting vCPU when a call completes.
    pub const VECTOR: u8 = 0xf3;
    /// Most asynchronous calls in flight per job; more are completed at once with `-EAGAIN`.
    pub const MAX_IN_FLIGHT: u32 = 64;
    /// [`super::AsyncSlot::done`] before completion (the guest stores it before submitting).
    pub const DONE_PENDING: u32 = 0;
    /// [`super::AsyncSlot::done`] after completion (the host stores it, release ordering).
    pub const DONE_COMPLETE: u32 = 1;
}

/// One asynchronous offload, at the start of a 4 KiB-aligned guest page (see
/// [`async_offload`]). The rest of the page is the guest's; the host never touches it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsyncSlot {
    /// The request: `op`, `flags`, `nr`, `args`, `cr3`, `pid` written by the guest before it
    /// submits; `ret` and `val` written by the host before `done`.
    pub req: BridgeRequest,
    /// [`async_offload::DONE_PENDING`] (guest, before submitting) or
    /// [`async_offload::DONE_COMPLETE`] (host, release store after `req.ret`/`req.val`/`vcpu`).
    /// Accessed atomically as a 32-bit word by both sides.
    pub done: u32,
    /// Written by the host before `done`: the vCPU that submitted, which the completion
    /// interrupt is sent to.
    pub vcpu: u32,
    /// The guest's own word (e.g. which thread waits on this slot); the host never reads or
    /// writes it.
    pub tag: u64,
}
const _: () = assert!(offset_of!(AsyncSlot, req) == 0);
const _: () = assert!(offset_of!(AsyncSlot, done) == 104);
const _: () = assert!(offset_of!(AsyncSlot, vcpu) == 108);
const _: () = assert!(offset_of!(AsyncSlot, tag) == 112);
const _: () = assert!(size_of::<AsyncSlot>() == 120);
const _: () = assert!(offset_of!(AsyncSlot, done) % 4 == 0);
const _: () = assert!(async_offload::VECTOR != hostsig::VECTOR);

/// How the job ended ([`GuestStats::exit_kind`]).
pub mod exit_kind {
    /// The program called exit/exit_group; `exit_code` is its status.
    pub const EXITED: u32 = 1;
    /// The program was killed by signal `exit_code`.
    pub const SIGNALED: u32 = 2;
    /// The LWK itself failed; a message was logged before.
    pub const KERNEL_PANIC: u32 = 3;
}

/// Process records in a [`ProcTable`]: the LWK's process-table size.
pub const PROC_RECORDS: usize = 64;
/// Thread records in a [`ProcTable`]: one per LWK thread context (two per vCPU).
pub const THREAD_RECORDS: usize = 2 * layout::MAX_VCPUS as usize;

/// What the LWK publishes about one process for the host's /proc view (/proc/PID/stat,
/// statm, environ, auxv, maps of other processes, the /proc listing). Written by the LWK under
/// its process lock at fork, exec, exit, reaping, setpgid/setsid, reparenting and thread
/// creation or exit; read by the host while the guest runs, so a read may see a record half
/// updated: the host treats every field as untrusted numbers and checks each address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcRecord {
    /// Process id; 0: the record is free.
    pub pid: u32,
    /// Parent's pid as getppid reports it.
    pub ppid: u32,
    /// Process group.
    pub pgid: u32,
    /// Session.
    pub sid: u32,
    /// Linux's state letter: `R` live, `Z` ended and not yet waited for.
    pub state: u32,
    /// Live threads.
    pub threads: u32,
    /// Guest-physical address of its page-table root (its address space).
    pub cr3: u64,
    /// Where exec (or the VMM, for the first program) put its arguments and environment.
    pub stack: StackLayout,
    /// Where its heap (brk) starts.
    pub start_brk: u64,
}

/// Where a program's arguments, environment, auxiliary vector and initial stack pointer are
/// (user addresses, as exec or the VMM laid them out; proc(5) stat's `arg_start`..`env_end`
/// and `startstack`, /proc/PID/environ and auxv). The LWK keeps one per address space.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackLayout {
    /// User address of the argument strings.
    pub arg_start: u64,
    /// End of the argument strings.
    pub arg_end: u64,
    /// User address of the environment strings.
    pub env_start: u64,
    /// End of the environment strings.
    pub env_end: u64,
    /// User address of the auxiliary vector.
    pub auxv_start: u64,
    /// End of the room for it (the vector ends at its AT_NULL pair).
    pub auxv_end: u64,
    /// The initial stack pointer (where argc is).
    pub start_stack: u64,
}

/// Linux's thread states as the LWK reports them in [`ThreadRecord::state`].
pub mod thread_state {
    /// On its vCPU or waiting for it.
    pub const RUNNING: u32 = b'R' as u32;
    /// Waiting for an event (futex, sleep, signal, child, an offloaded call that blocks).
    pub const SLEEPING: u32 = b'S' as u32;
}

/// What the LWK publishes about one thread context: the thread it runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadRecord {
    /// Thread id; 0: the context runs no thread.
    pub tid: u32,
    /// Its process's pid.
    pub pid: u32,
    /// [`thread_state`].
    pub state: u32,
    /// Its vCPU.
    pub cpu: u32,
}

/// One thread context's CPU-time counters, in TSC ticks: the LWK's own accounting (its
/// clock_gettime CPU clocks and getrusage read them), kept here so the host reads the same
/// numbers. A context keeps counting when it is reused: the thread's times are `user -
/// base_user` and `sys - base_sys`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadCpu {
    /// TSC at the context's last user/kernel transition.
    pub last: u64,
    /// User time of every thread the context ran.
    pub user: u64,
    /// System time likewise.
    pub sys: u64,
    /// `user` when the context's current thread started.
    pub base_user: u64,
    /// `sys` when the context's current thread started.
    pub base_sys: u64,
}

/// The LWK's published process and thread records, at [`layout::PROC_TABLE_GPA`] (zeroed
/// by the VMM like all guest RAM).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcTable {
    /// By the LWK's process index.
    pub procs: [ProcRecord; PROC_RECORDS],
    /// By thread context.
    pub threads: [ThreadRecord; THREAD_RECORDS],
    /// By thread context.
    pub cpu: [ThreadCpu; THREAD_RECORDS],
}
const _: () = assert!(size_of::<ProcRecord>() == 96);
const _: () = assert!(size_of::<ThreadRecord>() == 16);
const _: () = assert!(size_of::<ThreadCpu>() == 40);
const _: () = assert!(
    layout::PROC_TABLE_GPA + size_of::<ProcTable>() as u64 <= layout::PAGE_TABLES_GPA
        && layout::BRIDGE_GPA + layout::MAX_VCPUS as u64 * 4096 <= layout::PROC_TABLE_GPA
);

/// Counters and the exit report the LWK keeps at [`layout::STATS_GPA`]; the host reads them
/// when the job ends. Guest-written: the host treats every field as untrusted numbers.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GuestStats {
    /// Syscalls served inside the LWK.
    pub syscalls_local: u64,
    /// Syscalls forwarded to the host.
    pub syscalls_offloaded: u64,
    /// Syscalls answered with ENOSYS.
    pub syscalls_unsupported: u64,
    /// Syscalls that arrived through the ring-0 LSTAR entry (hardware semantics).
    pub entry_native: u64,
    /// Syscalls that arrived as a user instruction-fetch #PF at LSTAR (kvm_pvm semantics).
    pub entry_fault: u64,
    /// Page faults that were not syscall arrivals.
    pub page_faults: u64,
    /// Number of the last syscall the program made (for crash reports).
    pub last_syscall: u64,
    /// An [`exit_kind`] value, set before the exit port is written.
    pub exit_kind: u32,
    /// Exit status or signal number.
    pub exit_code: u32,
    /// Per-syscall-number counts.
    pub per_nr: [u32; syscalls::MAX_NR],
    /// TLB shootdowns that had to interrupt another vCPU running the program (a mapping
    /// was removed or narrowed while another thread ran in user mode).
    pub tlb_shootdowns: u64,
    /// TSC-deadline timer interrupts the LWK took (timeouts and timers; no periodic tick, so
    /// a program that neither sleeps nor uses timers gets none).
    pub timer_interrupts: u64,
    /// Switches of a vCPU from one thread to another (threads outnumbering vCPUs with
    /// `oversubscribe = "timeslice"`; 0 when each thread owns a vCPU).
    pub context_switches: u64,
}
const _: () = assert!(offset_of!(GuestStats, per_nr) == 64);
const _: () = assert!(size_of::<GuestStats>() == 88 + 4 * syscalls::MAX_NR);
const _: () = assert!(size_of::<GuestStats>() <= 4096);

#[cfg(test)]
mod tests {
    use super::syscalls::{Disposition, MAX_NR, TABLE, disposition, lookup, name, nr};

    #[test]
    fn table_is_sorted_unique_and_in_range() {
        for pair in TABLE.windows(2) {
            assert!(
                pair[0].nr < pair[1].nr,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        assert!(TABLE.iter().all(|s| (s.nr as usize) < MAX_NR));
        assert!(
            TABLE.len() > 370,
            "the table covers every Linux x86_64 syscall"
        );
    }

    #[test]
    fn lookup_matches_linux_numbers() {
        assert_eq!(nr::read, 0);
        assert_eq!(nr::write, 1);
        assert_eq!(nr::exit_group, 231);
        assert_eq!(nr::clone3, 435);
        assert_eq!(name(39), Some("getpid"));
        assert_eq!(name(0x1_0000_0027), None);
        assert_eq!(name(400), None);
        assert!(lookup(u64::MAX).is_none());
    }

    #[test]
    fn start_up_calls_have_the_promised_disposition() {
        for n in [
            nr::brk,
            nr::arch_prctl,
            nr::set_tid_address,
            nr::getpid,
            nr::exit_group,
        ] {
            assert_eq!(disposition(n), Disposition::Local, "{:?}", name(n));
        }
        for n in [
            nr::read,
            nr::write,
            nr::writev,
            nr::newfstatat,
            nr::ioctl,
            nr::readlink,
        ] {
            assert_eq!(disposition(n), Disposition::Offload, "{:?}", name(n));
        }
        assert!(matches!(disposition(nr::rseq), Disposition::Unsupported(_)));
        assert!(matches!(disposition(999), Disposition::Unsupported(_)));
    }
}
