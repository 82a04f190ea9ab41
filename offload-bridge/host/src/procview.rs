//! The process's view of itself (DESIGN.md rule 5): /proc/self/*, /proc/cpuinfo,
//! /proc/meminfo and /sys/devices/system/cpu/{online,possible,present} describe the program
//! and the LWK it runs on (its vCPUs, its guest memory, its page tables), not the VMM.
//!
//! Files are synthesised when opened, into a memfd reopened read-only, that enters the guest's
//! fd table like any file (a snapshot, where Linux regenerates on every read; programs read
//! these files from open to EOF). Links (exe, cwd, root, fd/N) answer readlink from the job's
//! state and open what they name inside the root. A few /proc/self files that say nothing
//! about the VMM itself pass through (mounts, mountinfo, cgroup, limits); everything else
//! under /proc/self is ENOENT. The rest of /proc and /sys passes through untouched.
//!
//! Recognition is by the normalised path (`path::normalize`); symlinks into the view
//! (/dev/stdin -> /proc/self/fd/0, /dev/fd -> /proc/self/fd) are followed by hand when the
//! kernel refuses them, and the open backstop in `path.rs` catches the same files reached
//! any other way.

use crate::guest_mem::GuestView;
use crate::path::normalize;
use crate::{Errno, Proc, sys};
use offload_abi::errno::ENOENT;
use offload_abi::layout::{KERNEL_PHYS_END, PROC_TABLE_GPA, USER_STACK_TOP};
use offload_abi::{ProcRecord, ProcTable, thread_state};
use std::ffi::CStr;
use std::fmt::Write;
use std::os::fd::AsFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// What the /proc view reads from guest memory: the LWK's published process table and the
/// memory of the job's processes through their page tables. Implemented by the request's
/// [`GuestView`] (whose CR3 is the caller's); every read is checked.
pub(crate) trait GuestProcs {
    /// The LWK's [`ProcTable`], if guest RAM holds it.
    fn table(&self) -> Option<ProcTable>;
    /// The calling process's page-table root.
    fn own_cr3(&self) -> u64;
    /// The user mappings of the address space at `cr3` (at most `max` runs).
    fn mappings(&self, cr3: u64, max: usize) -> Vec<crate::guest_mem::Mapping>;
    /// `len` bytes of user memory at `addr` in the address space at `cr3`, as far as they
    /// are readable.
    fn read_user(&self, cr3: u64, addr: u64, len: u64) -> Vec<u8>;
}

impl<M: GuestMemoryBackend> GuestProcs for GuestView<'_, M> {
    fn table(&self) -> Option<ProcTable> {
        let crate::wire::Wire(t) = self
            .memory()
            .read_obj::<crate::wire::Wire<ProcTable>>(GuestAddress(PROC_TABLE_GPA))
            .ok()?;
        Some(t)
    }

    fn own_cr3(&self) -> u64 {
        self.cr3()
    }

    fn mappings(&self, cr3: u64, max: usize) -> Vec<crate::guest_mem::Mapping> {
        GuestView::new(self.memory(), cr3, false).user_mappings(max)
    }

    fn read_user(&self, cr3: u64, addr: u64, len: u64) -> Vec<u8> {
        let view = GuestView::new(self.memory(), cr3, false);
        let mut out = Vec::new();
        let mut at = addr;
        let end = addr.saturating_add(len.min(MAX_PROC_READ));
        while at < end {
            let n = (4096 - at % 4096).min(end - at);
            let mut chunk = vec![0u8; n as usize];
            if view.read_into(at, &mut chunk).is_err() {
                break;
            }
            out.extend_from_slice(&chunk);
            at += n;
        }
        out
    }
}

/// Most bytes of a process's memory one /proc file shows (environ, auxv).
const MAX_PROC_READ: u64 = 1 << 20;

/// What a process-view path stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProcNode {
    /// No such file in the view.
    NotFound,
    /// A synthesised file (memfd name, content).
    File(&'static CStr, Content),
    /// A host file passed through read-only.
    Host(&'static str),
    /// exe, cwd, root.
    Link(Link),
    /// fd/N: the guest's fd N.
    Fd(i32),
    /// A directory of the view.
    Dir(DirNode),
}

/// The view's directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirNode {
    /// /proc itself: the host's entries that are not processes, and the job's processes.
    Root,
    /// /proc/PID.
    Pid(u32),
    /// /proc/PID/fd.
    Fds(u32),
    /// /proc/PID/fdinfo.
    FdInfo(u32),
    /// /proc/PID/task.
    Tasks(u32),
    /// /proc/PID/task/TID.
    Task(u32, u32),
}

/// Which process (and thread) a file describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub pid: u32,
    /// For /proc/PID/task/TID files.
    pub tid: Option<u32>,
}

/// Synthesised file contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    Status(Target),
    Stat(Target),
    Statm(u32),
    Cmdline(u32),
    Comm(Target),
    Environ(u32),
    Auxv(u32),
    Maps(u32),
    Smaps(u32),
    /// fdinfo/N of the calling process.
    FdInfo(i32),
    Cpuinfo,
    Meminfo,
    CpuList,
}

/// The /proc/self links that name a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Exe,
    Cwd,
    Root,
}

impl Link {
    /// The guest path the link names.
    pub(crate) fn resolve(self, s: &Proc<'_>) -> Vec<u8> {
        match self {
            Link::Exe => s.exe(),
            Link::Cwd => s.cwd(),
            Link::Root => b"/".to_vec(),
        }
    }
}

impl ProcNode {
    /// For links: the VMM's procfs link of the same kind (to lstat a link as a link).
    pub(crate) fn host_link(&self, s: &Proc<'_>) -> Option<HostLink> {
        let fixed = |path: &str| HostLink {
            path: path.into(),
            _held: None,
        };
        match self {
            ProcNode::Link(Link::Exe) => Some(fixed("/proc/self/exe")),
            ProcNode::Link(Link::Cwd) => Some(fixed("/proc/self/cwd")),
            ProcNode::Link(Link::Root) => Some(fixed("/proc/self/root")),
            ProcNode::Fd(n) => {
                use std::os::fd::AsRawFd;
                let host = s.fds.get(*n as u64).ok()?;
                Some(HostLink {
                    path: format!("/proc/self/fd/{}", host.as_raw_fd()),
                    _held: Some(host),
                })
            }
            _ => None,
        }
    }
}

/// What the absolute guest path `abs` stands for in the process view, or None when it is an
/// ordinary path.
pub(crate) fn classify(s: &Proc<'_>, abs: &[u8]) -> Option<ProcNode> {
    let n = normalize(abs);
    let cpu = |name: &[u8]| matches!(name, b"online" | b"possible" | b"present");
    match n.as_slice() {
        b"/proc/cpuinfo" => return Some(ProcNode::File(c"cpuinfo", Content::Cpuinfo)),
        b"/proc/meminfo" => return Some(ProcNode::File(c"meminfo", Content::Meminfo)),
        b"/proc" => return Some(ProcNode::Dir(DirNode::Root)),
        _ => {}
    }
    if let Some(name) = n.strip_prefix(b"/sys/devices/system/cpu/")
        && cpu(name)
    {
        return Some(ProcNode::File(c"cpulist", Content::CpuList));
    }
    let rest = n.strip_prefix(b"/proc/")?;
    let (who, rest) = split(rest);
    let me = s.pid();
    let pid = match who {
        b"self" | b"thread-self" => me,
        _ => {
            let Some(pid) = parse_id(who) else {
                // /proc/sys, /proc/uptime, ...: the host's.
                return None;
            };
            if s.process(pid).is_none() {
                // A process of the host, or none: not visible from the job.
                return Some(ProcNode::NotFound);
            }
            pid
        }
    };
    if rest.is_empty() {
        return Some(ProcNode::Dir(DirNode::Pid(pid)));
    }
    let (first, tail) = split(rest);
    if first == b"task" {
        if tail.is_empty() {
            return Some(ProcNode::Dir(DirNode::Tasks(pid)));
        }
        let (tid, tail) = split(tail);
        // Whether the thread exists is checked when it is opened (that needs guest memory).
        let Some(tid) = parse_id(tid) else {
            return Some(ProcNode::NotFound);
        };
        let t = Target {
            pid,
            tid: Some(tid),
        };
        return Some(match tail {
            b"" => ProcNode::Dir(DirNode::Task(pid, tid)),
            b"stat" => ProcNode::File(c"stat", Content::Stat(t)),
            b"status" => ProcNode::File(c"status", Content::Status(t)),
            b"comm" => ProcNode::File(c"comm", Content::Comm(t)),
            _ if pid == me => self_node(tail).unwrap_or(ProcNode::NotFound),
            _ => ProcNode::NotFound,
        });
    }
    if let Some(node) = pid_node(pid, rest) {
        return Some(node);
    }
    if pid == me {
        return Some(self_node(rest).unwrap_or(ProcNode::NotFound));
    }
    Some(ProcNode::NotFound)
}

/// A decimal id (no sign, no leading zero), as /proc names processes.
fn parse_id(b: &[u8]) -> Option<u32> {
    if b.first().is_none_or(|&c| c == b'0') || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Files every job process has, whoever asks.
fn pid_node(pid: u32, rest: &[u8]) -> Option<ProcNode> {
    let t = Target { pid, tid: None };
    Some(match rest {
        b"stat" => ProcNode::File(c"stat", Content::Stat(t)),
        b"status" => ProcNode::File(c"status", Content::Status(t)),
        b"statm" => ProcNode::File(c"statm", Content::Statm(pid)),
        b"cmdline" => ProcNode::File(c"cmdline", Content::Cmdline(pid)),
        b"comm" => ProcNode::File(c"comm", Content::Comm(t)),
        b"environ" => ProcNode::File(c"environ", Content::Environ(pid)),
        b"auxv" => ProcNode::File(c"auxv", Content::Auxv(pid)),
        b"maps" => ProcNode::File(c"maps", Content::Maps(pid)),
        b"smaps" => ProcNode::File(c"smaps", Content::Smaps(pid)),
        b"fd" => ProcNode::Dir(DirNode::Fds(pid)),
        b"fdinfo" => ProcNode::Dir(DirNode::FdInfo(pid)),
        _ => return None,
    })
}

fn split(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().position(|&b| b == b'/') {
        Some(i) => (
            p.get(..i).unwrap_or_default(),
            p.get(i + 1..).unwrap_or_default(),
        ),
        None => (p, &[]),
    }
}

/// The node for a path below /proc/self/ (`rest` normalised, without the prefix); None for
/// names the view does not know. Files that need the caller's own fd table, cwd or the
/// VMM's host files are only the caller's.
pub(crate) fn self_node(rest: &[u8]) -> Option<ProcNode> {
    Some(match rest {
        b"exe" => ProcNode::Link(Link::Exe),
        b"cwd" => ProcNode::Link(Link::Cwd),
        b"root" => ProcNode::Link(Link::Root),
        b"mounts" => ProcNode::Host("/proc/self/mounts"),
        b"mountinfo" => ProcNode::Host("/proc/self/mountinfo"),
        b"cgroup" => ProcNode::Host("/proc/self/cgroup"),
        b"limits" => ProcNode::Host("/proc/self/limits"),
        _ => {
            if let Some(n) = rest.strip_prefix(b"fdinfo/") {
                let n = std::str::from_utf8(n).ok()?.parse::<i32>().ok()?;
                return (n >= 0).then_some(ProcNode::File(c"fdinfo", Content::FdInfo(n)));
            }
            let n = rest.strip_prefix(b"fd/")?;
            let n = std::str::from_utf8(n).ok()?.parse::<i32>().ok()?;
            if n < 0 {
                return None;
            }
            ProcNode::Fd(n)
        }
    })
}

/// The node for a path below the caller's own /proc/PID/ (`rest` normalised, without the
/// prefix), as the open backstop finds it; None for names the view does not know.
pub(crate) fn own_node(pid: u32, rest: &[u8]) -> Option<ProcNode> {
    pid_node(pid, rest).or_else(|| self_node(rest))
}

/// The entries of /proc/PID (d_type: 4 directory, 8 file, 10 link).
const PID_ENTRIES: &[(&str, u8)] = &[
    ("fd", 4),
    ("fdinfo", 4),
    ("task", 4),
    ("environ", 8),
    ("auxv", 8),
    ("status", 8),
    ("limits", 8),
    ("cgroup", 8),
    ("cmdline", 8),
    ("stat", 8),
    ("statm", 8),
    ("maps", 8),
    ("mounts", 8),
    ("mountinfo", 8),
    ("comm", 8),
    ("smaps", 8),
    ("cwd", 10),
    ("root", 10),
    ("exe", 10),
];

/// The thread ids of process `pid`: from the LWK's thread records, else just the pid.
pub(crate) fn task_ids(mem: Option<&dyn GuestProcs>, pid: u32) -> Vec<u32> {
    let mut tids: Vec<u32> = mem
        .and_then(GuestProcs::table)
        .map(|t| {
            t.threads
                .iter()
                .filter(|r| r.pid == pid && r.tid != 0)
                .map(|r| r.tid)
                .collect()
        })
        .unwrap_or_default();
    if !tids.contains(&pid) {
        tids.push(pid);
    }
    tids.sort_unstable();
    tids.dedup();
    tids
}

/// The listing of a view directory: (name, d_type, inode).
pub(crate) fn list(
    s: &Proc<'_>,
    dir: DirNode,
    mem: Option<&dyn GuestProcs>,
) -> Vec<(Vec<u8>, u8, u64)> {
    let ino = |pid: u32, i: usize| (u64::from(pid) << 12) | (i as u64 + 16);
    let mut out: Vec<(Vec<u8>, u8, u64)> = vec![(b".".to_vec(), 4, 1), (b"..".to_vec(), 4, 2)];
    match dir {
        DirNode::Root => {
            if let Ok(rd) = std::fs::read_dir("/proc") {
                use std::os::unix::ffi::OsStrExt;
                for (i, e) in rd.flatten().enumerate() {
                    let name = e.file_name().as_bytes().to_vec();
                    if parse_id(&name).is_some() {
                        continue;
                    }
                    let ty = match e.file_type() {
                        Ok(t) if t.is_dir() => 4,
                        Ok(t) if t.is_symlink() => 10,
                        _ => 8,
                    };
                    out.push((name, ty, 0x100 + i as u64));
                }
            }
            for pid in s.pids() {
                out.push((pid.to_string().into_bytes(), 4, ino(pid, 0)));
            }
        }
        DirNode::Pid(pid) => {
            for (i, (name, ty)) in PID_ENTRIES.iter().enumerate() {
                out.push((name.as_bytes().to_vec(), *ty, ino(pid, i)));
            }
        }
        DirNode::Fds(pid) | DirNode::FdInfo(pid) => {
            let ty = if matches!(dir, DirNode::Fds(_)) {
                10
            } else {
                8
            };
            if let Some(p) = s.process(pid) {
                for n in p.fds.numbers() {
                    out.push((n.to_string().into_bytes(), ty, ino(pid, 64 + n as usize)));
                }
            }
        }
        DirNode::Tasks(pid) => {
            for tid in task_ids(mem, pid) {
                out.push((tid.to_string().into_bytes(), 4, ino(tid, 1)));
            }
        }
        DirNode::Task(_, tid) => {
            for (i, name) in ["stat", "status", "comm"].iter().enumerate() {
                out.push((name.as_bytes().to_vec(), 8, ino(tid, 2 + i)));
            }
        }
    }
    out
}

/// Whether a view directory exists now (its process, and for task/TID its thread).
pub(crate) fn dir_exists(s: &Proc<'_>, dir: DirNode, mem: Option<&dyn GuestProcs>) -> bool {
    match dir {
        DirNode::Root => true,
        DirNode::Pid(p) | DirNode::Fds(p) | DirNode::FdInfo(p) | DirNode::Tasks(p) => {
            s.process(p).is_some()
        }
        DirNode::Task(p, t) => s.process(p).is_some() && task_ids(mem, p).contains(&t),
    }
}

/// The absolute guest path of a view directory.
pub(crate) fn dir_path(dir: DirNode) -> Vec<u8> {
    match dir {
        DirNode::Root => b"/proc".to_vec(),
        DirNode::Pid(p) => format!("/proc/{p}").into_bytes(),
        DirNode::Fds(p) => format!("/proc/{p}/fd").into_bytes(),
        DirNode::FdInfo(p) => format!("/proc/{p}/fdinfo").into_bytes(),
        DirNode::Tasks(p) => format!("/proc/{p}/task").into_bytes(),
        DirNode::Task(p, t) => format!("/proc/{p}/task/{t}").into_bytes(),
    }
}

/// One of the VMM's procfs links standing for a link of the view; for a guest fd it holds the
/// host fd, so that the number in `path` names it until the link is opened (a concurrent
/// guest close cannot hand the number to another host fd meanwhile).
pub(crate) struct HostLink {
    pub path: String,
    pub _held: Option<crate::fdtable::HostFd>,
}

/// The text readlink gives for guest fd `n` (/proc/self/fd/N): a path inside the root, or
/// the kernel's `pipe:[…]`-style name.
pub(crate) fn fd_link(s: &Proc<'_>, n: i32) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    if let Some(d) = s.fds.virt_dir(n as u64) {
        return Some(dir_path(d.node));
    }
    let host_held = s.fds.get(n as u64).ok()?;
    let host = host_held.as_fd();
    if let Some(p) = s.path_in_root(host) {
        return Some(p);
    }
    let t = std::fs::read_link(format!("/proc/self/fd/{}", host.as_raw_fd())).ok()?;
    Some(t.as_os_str().as_bytes().to_vec())
}

/// The process a file describes, as the host sees it (for another process than the
/// caller, its own [`Proc`]).
fn with_process<T>(s: &Proc<'_>, pid: u32, f: impl FnOnce(&Proc<'_>) -> T) -> Option<T> {
    if pid == s.pid() {
        return Some(f(s));
    }
    let p = s.process(pid)?;
    let job: &crate::Servicer = s;
    Some(f(&Proc::new(job, &p)))
}

/// The LWK's record of process `pid`, if it published one.
fn record(mem: Option<&dyn GuestProcs>, pid: u32) -> Option<(ProcRecord, ProcTable)> {
    let t = mem?.table()?;
    let r = *t.procs.iter().find(|r| r.pid == pid)?;
    Some((r, t))
}

/// The page-table root of process `pid`: the caller's own, or the one the LWK published.
fn cr3_of(s: &Proc<'_>, mem: &dyn GuestProcs, pid: u32) -> Option<u64> {
    if pid == s.pid() {
        return Some(mem.own_cr3());
    }
    let (r, _) = record(Some(mem), pid)?;
    (r.state != u32::from(b'Z') && r.cr3 != 0).then_some(r.cr3)
}

/// Clock ticks (USER_HZ, 100 per second) of `tsc` TSC ticks.
fn clock_ticks(tsc: u64, tsc_khz: u64) -> u64 {
    if tsc_khz == 0 {
        return 0;
    }
    (u128::from(tsc) * 100 / (u128::from(tsc_khz) * 1000)) as u64
}

/// (user, system) clock ticks of process `pid`'s live threads, or of thread `tid`.
fn cpu_ticks(t: &ProcTable, pid: u32, tid: Option<u32>, tsc_khz: u64) -> (u64, u64) {
    let mut user = 0u64;
    let mut sys = 0u64;
    for (r, c) in t.threads.iter().zip(t.cpu.iter()) {
        if r.tid == 0 || r.pid != pid || tid.is_some_and(|tid| tid != r.tid) {
            continue;
        }
        user = user.saturating_add(c.user.saturating_sub(c.base_user));
        sys = sys.saturating_add(c.sys.saturating_sub(c.base_sys));
    }
    (clock_ticks(user, tsc_khz), clock_ticks(sys, tsc_khz))
}

/// Sizes from the page tables, in bytes.
struct MemSizes {
    /// Every mapped page.
    total: u64,
    /// Writable pages.
    writable: u64,
    /// Executable pages of the program image (below its heap).
    text: u64,
    /// First and last address of those.
    code: (u64, u64),
}

/// The sizes of `runs` for a process whose heap starts at `start_brk` (0: unknown, then
/// every executable run counts as the program's).
fn mem_sizes(runs: &[crate::guest_mem::Mapping], start_brk: u64) -> MemSizes {
    let mut m = MemSizes {
        total: 0,
        writable: 0,
        text: 0,
        code: (0, 0),
    };
    for r in runs {
        let len = r.end - r.start;
        m.total += len;
        if r.write {
            m.writable += len;
        }
        if r.exec && (start_brk == 0 || r.end <= start_brk) {
            m.text += len;
            if m.code.0 == 0 {
                m.code.0 = r.start;
            }
            m.code.1 = r.end;
        }
    }
    m
}

/// The memory sizes of process `pid` (all zero without guest memory or an address space).
fn sizes_of(s: &Proc<'_>, mem: Option<&dyn GuestProcs>, pid: u32) -> MemSizes {
    let runs = mem
        .and_then(|m| cr3_of(s, m, pid).map(|c| m.mappings(c, MAX_RUNS)))
        .unwrap_or_default();
    let start_brk = record(mem, pid).map_or(0, |(r, _)| r.start_brk);
    mem_sizes(&runs, start_brk)
}

/// Most runs a maps walk returns (and page-table pages it reads: `MAX_TABLE_PAGES`).
const MAX_RUNS: usize = 65536;

/// The terminal fields of the VMM's own stat (tty_nr, tpgid): the job runs on lwk-vmm's
/// controlling terminal.
fn host_tty() -> (i64, i64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
    (num(4), num(5))
}

impl Content {
    /// Whether the file exists now (a task/TID file: whether that thread is the process's).
    pub(crate) fn exists(self, s: &Proc<'_>, mem: Option<&dyn GuestProcs>) -> bool {
        match self {
            Content::Status(t) | Content::Stat(t) | Content::Comm(t) => match t.tid {
                Some(tid) => dir_exists(s, DirNode::Task(t.pid, tid), mem),
                None => true,
            },
            _ => true,
        }
    }

    /// The file's bytes now; `mem` reads the LWK's records and the processes' memory.
    pub(crate) fn produce(
        self,
        s: &Proc<'_>,
        mem: Option<&dyn GuestProcs>,
    ) -> Result<Vec<u8>, Errno> {
        let p = &s.ctx.process;
        let vcpus = p.vcpus.max(1);
        let gone = || Errno(ENOENT);
        let mut out = String::new();
        match self {
            Content::Cmdline(pid) => {
                return with_process(s, pid, |t| {
                    if let Some(c) = t.cmdline() {
                        return c;
                    }
                    let mut b = Vec::new();
                    for a in &p.argv {
                        b.extend_from_slice(a);
                        b.push(0);
                    }
                    b
                })
                .ok_or_else(gone);
            }
            Content::Comm(t) => {
                let mut c = with_process(s, t.pid, |p| p.comm()).ok_or_else(gone)?;
                c.push(b'\n');
                return Ok(c);
            }
            Content::Status(t) => {
                let ids = sys::ids();
                let rec = record(mem, t.pid);
                let (name, umask, ppid, threads, fdsize) = with_process(s, t.pid, |q| {
                    (
                        String::from_utf8_lossy(&q.comm()).into_owned(),
                        q.umask(),
                        q.ppid(),
                        q.threads(),
                        q.fds.numbers().last().map_or(64, |n| (n + 64) / 64 * 64),
                    )
                })
                .ok_or_else(gone)?;
                let state = match rec.as_ref().map(|(r, _)| r.state) {
                    Some(z) if z == u32::from(b'Z') => "Z (zombie)",
                    _ => match thread_state(s, rec.as_ref(), t) {
                        b'S' => "S (sleeping)",
                        _ => "R (running)",
                    },
                };
                let sizes = sizes_of(s, mem, t.pid);
                let (pgid, sid) = rec
                    .as_ref()
                    .map_or((t.pid, t.pid), |(r, _)| (r.pgid, r.sid));
                let _ = write!(
                    out,
                    "Name:\t{name}\nUmask:\t{umask:04o}\nState:\t{state}\nTgid:\t{pid}\n\
                     Ngid:\t0\nPid:\t{tid}\nPPid:\t{ppid}\nTracerPid:\t0\n\
                     Uid:\t{u}\t{eu}\t{eu}\t{eu}\nGid:\t{g}\t{eg}\t{eg}\t{eg}\n\
                     FDSize:\t{fdsize}\nGroups:\t\nNStgid:\t{pid}\nNSpid:\t{tid}\n\
                     NSpgid:\t{pgid}\nNSsid:\t{sid}\n\
                     VmPeak:\t{vm:>8} kB\nVmSize:\t{vm:>8} kB\nVmLck:\t{z:>8} kB\n\
                     VmPin:\t{z:>8} kB\nVmHWM:\t{vm:>8} kB\nVmRSS:\t{vm:>8} kB\n\
                     RssAnon:\t{vm:>8} kB\nRssFile:\t{z:>8} kB\nRssShmem:\t{z:>8} kB\n\
                     VmData:\t{data:>8} kB\nVmStk:\t{z:>8} kB\nVmExe:\t{text:>8} kB\n\
                     VmLib:\t{z:>8} kB\nVmPTE:\t{z:>8} kB\nVmSwap:\t{z:>8} kB\n\
                     Threads:\t{threads}\nSigQ:\t0/0\n\
                     Cpus_allowed_list:\t{cpus}\nMems_allowed_list:\t0\n",
                    pid = t.pid,
                    tid = t.tid.unwrap_or(t.pid),
                    u = ids[0],
                    eu = ids[1],
                    g = ids[2],
                    eg = ids[3],
                    vm = sizes.total / 1024,
                    data = sizes.writable / 1024,
                    text = sizes.text / 1024,
                    z = 0,
                    cpus = cpu_list(vcpus).trim_end(),
                );
            }
            Content::Stat(t) => out = stat(s, mem, t)?,
            Content::Statm(pid) => {
                let Some(m) = mem else {
                    // Metadata only (stat): no guest memory needed, size 0 as on Linux.
                    return Ok(Vec::new());
                };
                let z = sizes_of(s, Some(m), pid);
                let _ = writeln!(
                    out,
                    "{} {} 0 {} 0 {} 0",
                    z.total / 4096,
                    z.total / 4096,
                    z.text / 4096,
                    z.writable / 4096
                );
            }
            Content::Environ(pid) | Content::Auxv(pid) => {
                let Some(m) = mem else {
                    // Metadata only (stat): no guest memory needed, size 0 as on Linux.
                    return Ok(Vec::new());
                };
                let (r, _) = record(mem, pid).ok_or_else(gone)?;
                let Some(cr3) = cr3_of(s, m, pid) else {
                    return Ok(Vec::new());
                };
                if matches!(self, Content::Environ(_)) {
                    let len = r.stack.env_end.saturating_sub(r.stack.env_start);
                    return Ok(m.read_user(cr3, r.stack.env_start, len));
                }
                let len = r.stack.auxv_end.saturating_sub(r.stack.auxv_start);
                let words = m.read_user(cr3, r.stack.auxv_start, len);
                // Up to and including the AT_NULL pair, as Linux shows it.
                let mut end = 0;
                for pair in words.chunks_exact(16) {
                    end += 16;
                    if pair.get(..8) == Some(&[0u8; 8][..]) {
                        break;
                    }
                }
                return Ok(words.get(..end).unwrap_or_default().to_vec());
            }
            Content::Maps(pid) | Content::Smaps(pid) => {
                let Some(m) = mem else {
                    // Metadata only (stat): no guest memory needed, size 0 as on Linux.
                    return Ok(Vec::new());
                };
                let runs = cr3_of(s, m, pid)
                    .map(|c| m.mappings(c, MAX_RUNS))
                    .unwrap_or_default();
                return Ok(maps(&runs, matches!(self, Content::Smaps(_))));
            }
            Content::FdInfo(n) => out = fdinfo(s, n)?,
            Content::CpuList => out = cpu_list(vcpus),
            Content::Meminfo => {
                let total = p.mem_size / 1024;
                let free = p.mem_size.saturating_sub(KERNEL_PHYS_END) / 1024;
                for (k, v) in [
                    ("MemTotal", total),
                    ("MemFree", free),
                    ("MemAvailable", free),
                    ("Buffers", 0),
                    ("Cached", 0),
                    ("SwapCached", 0),
                    ("SwapTotal", 0),
                    ("SwapFree", 0),
                    ("Shmem", 0),
                ] {
                    let _ = writeln!(out, "{:<16}{:>8} kB", format!("{k}:"), v);
                }
                for (k, v) in [("HugePages_Total", 0), ("HugePages_Free", 0)] {
                    let _ = writeln!(out, "{:<16}{:>8}", format!("{k}:"), v);
                }
                let _ = writeln!(out, "{:<16}{:>8} kB", "Hugepagesize:", 2048);
            }
            Content::Cpuinfo => out = cpuinfo(vcpus),
        }
        Ok(out.into_bytes())
    }
}

/// The state letter of a process (any of its threads running: `R`) or of one thread. The
/// caller's own process is running (it is reading this).
fn thread_state(s: &Proc<'_>, rec: Option<&(ProcRecord, ProcTable)>, t: Target) -> u8 {
    let Some((_, table)) = rec else {
        return b'R';
    };
    if t.pid == s.pid() && t.tid.is_none() {
        return b'R';
    }
    let mut any = false;
    for r in table
        .threads
        .iter()
        .filter(|r| r.tid != 0 && r.pid == t.pid)
    {
        if t.tid.is_some_and(|tid| tid != r.tid) {
            continue;
        }
        any = true;
        if r.state == thread_state::RUNNING {
            return b'R';
        }
    }
    if any { b'S' } else { b'R' }
}

/// /proc/PID/stat (or task/TID/stat), field by field as proc(5) lists them.
fn stat(s: &Proc<'_>, mem: Option<&dyn GuestProcs>, t: Target) -> Result<String, Errno> {
    let (comm, ppid, threads, start) = with_process(s, t.pid, |q| {
        (
            String::from_utf8_lossy(&q.comm()).into_owned(),
            q.ppid(),
            q.threads(),
            q.start_ticks(),
        )
    })
    .ok_or(Errno(ENOENT))?;
    let rec = record(mem, t.pid);
    let r = rec.map(|(r, _)| r).unwrap_or_default();
    let zombie = r.state == u32::from(b'Z');
    let state = if zombie {
        'Z'
    } else {
        char::from(thread_state(s, rec.as_ref(), t))
    };
    let (pgid, sid) = if r.pid == 0 {
        (t.pid, t.pid)
    } else {
        (r.pgid, r.sid)
    };
    let khz = s.ctx.process.tsc_khz;
    let (utime, stime) = rec
        .as_ref()
        .map_or((0, 0), |(_, table)| cpu_ticks(table, t.pid, t.tid, khz));
    let cpu = rec
        .as_ref()
        .and_then(|(_, table)| {
            let tid = t.tid.unwrap_or(t.pid);
            table.threads.iter().find(|x| x.tid == tid).map(|x| x.cpu)
        })
        .unwrap_or(0);
    // A zombie has no memory (cr3_of gives none).
    let z = sizes_of(s, mem, t.pid);
    let (tty, tpgid) = host_tty();
    let f = |v: u64| if zombie { 0 } else { v };
    Ok(format!(
        "{pid} ({comm}) {state} {ppid} {pgid} {sid} {tty} {tpgid} 4194560 0 0 0 0 {utime} {stime} \
         0 0 20 0 {threads} 0 {start} {vsize} {rss} 18446744073709551615 {sc} {ec} {ss} 0 0 \
         0 0 0 0 0 0 0 17 {cpu} 0 0 0 0 0 0 0 {brk} {as_} {ae} {es} {ee} 0\n",
        pid = t.tid.unwrap_or(t.pid),
        vsize = z.total,
        rss = z.total / 4096,
        sc = f(z.code.0),
        ec = f(z.code.1),
        ss = f(r.stack.start_stack),
        brk = f(r.start_brk),
        as_ = f(r.stack.arg_start),
        ae = f(r.stack.arg_end),
        es = f(r.stack.env_start),
        ee = f(r.stack.env_end),
    ))
}

/// /proc/self/fdinfo/N: position, flags (with O_CLOEXEC from the guest's flag), and the
/// host's mount id and inode of the open file.
fn fdinfo(s: &Proc<'_>, n: i32) -> Result<String, Errno> {
    use std::os::fd::AsRawFd;
    let host = s.fds.get(n as u64).map_err(|_| Errno(ENOENT))?;
    let pos = sys::lseek(host.as_fd(), 0, libc::SEEK_CUR).unwrap_or(0);
    let mut flags = sys::fcntl_getfl(host.as_fd()).unwrap_or(0) as u32 & !(libc::O_CLOEXEC as u32);
    if s.fds.cloexec(n as u64).unwrap_or(false) {
        flags |= libc::O_CLOEXEC as u32;
    }
    let host_info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", host.as_raw_fd()))
        .unwrap_or_default();
    let field = |k: &str| {
        host_info
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map_or("0".to_string(), |v| v.trim().to_string())
    };
    Ok(format!(
        "pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t{}\nino:\t{}\n",
        field("mnt_id:"),
        field("ino:")
    ))
}

fn cpu_list(n: u32) -> String {
    if n <= 1 {
        "0\n".into()
    } else {
        format!("0-{}\n", n - 1)
    }
}

/// /proc/cpuinfo for `n` vCPUs: the host's description of its first CPU (a ring-3 `cpuid`
/// sees the host CPU too), once per vCPU with the numbering and topology of the VM.
fn cpuinfo(n: u32) -> String {
    let host = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let first = host.split("\n\n").next().unwrap_or_default();
    let mut out = String::new();
    for i in 0..n {
        for line in first.lines() {
            let key = line.split(':').next().unwrap_or_default().trim_end();
            let v = match key {
                "processor" | "core id" | "apicid" | "initial apicid" => Some(i),
                "siblings" | "cpu cores" => Some(n),
                "physical id" => Some(0),
                _ => None,
            };
            match v {
                Some(v) => {
                    let _ = writeln!(out, "{}: {v}", line.split(':').next().unwrap_or_default());
                }
                None => {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        out.push('\n');
    }
    out
}

/// /proc/PID/maps (or smaps, with `detail`) of the runs of equally accessible user pages
/// in the process's page tables, in Linux's format. The LWK keeps no names or file offsets
/// for its mappings, so only the stack is named.
fn maps(runs: &[crate::guest_mem::Mapping], detail: bool) -> Vec<u8> {
    let mut out = String::new();
    for m in runs {
        let mut line = format!(
            "{:08x}-{:08x} r{}{}p 00000000 00:00 0 ",
            m.start,
            m.end,
            if m.write { 'w' } else { '-' },
            if m.exec { 'x' } else { '-' },
        );
        if (m.start..m.end).contains(&(USER_STACK_TOP - 1)) {
            while line.len() < 73 {
                line.push(' ');
            }
            line.push_str("[stack]");
        }
        out.push_str(&line);
        out.push('\n');
        if detail {
            let kb = (m.end - m.start) / 1024;
            let _ = write!(
                out,
                "Size:           {kb:>8} kB\nKernelPageSize:        4 kB\nMMUPageSize:           4 kB\n\
                 Rss:            {kb:>8} kB\nPss:            {kb:>8} kB\nShared_Clean:          0 kB\n\
                 Shared_Dirty:          0 kB\nPrivate_Clean:         0 kB\n\
                 Private_Dirty:  {kb:>8} kB\nReferenced:     {kb:>8} kB\nAnonymous:      {kb:>8} kB\n\
                 LazyFree:              0 kB\nAnonHugePages:         0 kB\nShmemPmdMapped:        0 kB\n\
                 FilePmdMapped:         0 kB\nShared_Hugetlb:        0 kB\nPrivate_Hugetlb:       0 kB\n\
                 Swap:                  0 kB\nSwapPss:               0 kB\nLocked:                0 kB\n\
                 THPeligible:    0\nVmFlags: rd{}{} mr mw me ac\n",
                if m.write { " wr" } else { "" },
                if m.exec { " ex" } else { "" },
            );
        }
    }
    out.into_bytes()
}
