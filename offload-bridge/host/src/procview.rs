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

use crate::Proc;
use crate::guest_mem::GuestView;
use crate::path::normalize;
use crate::sys;
use offload_abi::layout::{KERNEL_PHYS_END, USER_STACK_TOP};
use std::ffi::CStr;
use std::fmt::Write;
use std::os::fd::AsFd;
use vm_memory::GuestMemoryBackend;

/// What a process-view path stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProcNode {
    /// No such file in the view.
    NotFound,
    /// /proc/self/maps (needs the request's page tables).
    Maps,
    /// A synthesised file (memfd name, content).
    File(&'static CStr, Content),
    /// A host file passed through read-only.
    Host(&'static str),
    /// exe, cwd, root.
    Link(Link),
    /// fd/N: the guest's fd N.
    Fd(i32),
}

/// Synthesised file contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    Status,
    Cmdline,
    Comm,
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
        _ => {}
    }
    if let Some(name) = n.strip_prefix(b"/sys/devices/system/cpu/")
        && cpu(name)
    {
        return Some(ProcNode::File(c"cpulist", Content::CpuList));
    }
    let rest = n.strip_prefix(b"/proc/")?;
    let (who, rest) = split(rest);
    let pid = s.pid().to_string();
    let me = who == b"self" || who == b"thread-self" || who == pid.as_bytes();
    if !me || rest.is_empty() {
        return None;
    }
    let rest = match split(rest) {
        (b"task", tail) => {
            let (tid, tail) = split(tail);
            if tid != pid.as_bytes() {
                return Some(ProcNode::NotFound);
            }
            if tail.is_empty() {
                return None;
            }
            tail
        }
        _ => rest,
    };
    Some(self_node(rest).unwrap_or(ProcNode::NotFound))
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
/// names the view does not know.
pub(crate) fn self_node(rest: &[u8]) -> Option<ProcNode> {
    Some(match rest {
        b"maps" => ProcNode::Maps,
        b"status" => ProcNode::File(c"status", Content::Status),
        b"cmdline" => ProcNode::File(c"cmdline", Content::Cmdline),
        b"comm" => ProcNode::File(c"comm", Content::Comm),
        b"exe" => ProcNode::Link(Link::Exe),
        b"cwd" => ProcNode::Link(Link::Cwd),
        b"root" => ProcNode::Link(Link::Root),
        b"mounts" => ProcNode::Host("/proc/self/mounts"),
        b"mountinfo" => ProcNode::Host("/proc/self/mountinfo"),
        b"cgroup" => ProcNode::Host("/proc/self/cgroup"),
        b"limits" => ProcNode::Host("/proc/self/limits"),
        _ => {
            let n = rest.strip_prefix(b"fd/")?;
            let n = std::str::from_utf8(n).ok()?.parse::<i32>().ok()?;
            if n < 0 {
                return None;
            }
            ProcNode::Fd(n)
        }
    })
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
    let host_held = s.fds.get(n as u64).ok()?;
    let host = host_held.as_fd();
    if let Some(p) = s.path_in_root(host) {
        return Some(p);
    }
    let t = std::fs::read_link(format!("/proc/self/fd/{}", host.as_raw_fd())).ok()?;
    Some(t.as_os_str().as_bytes().to_vec())
}

impl Content {
    /// The file's bytes now.
    pub(crate) fn produce(self, s: &Proc<'_>) -> Vec<u8> {
        let p = &s.ctx.process;
        let vcpus = p.vcpus.max(1);
        let mut out = String::new();
        match self {
            Content::Cmdline => {
                if let Some(c) = s.cmdline() {
                    return c;
                }
                let mut b = Vec::new();
                for a in &p.argv {
                    b.extend_from_slice(a);
                    b.push(0);
                }
                return b;
            }
            Content::Comm => {
                let mut c = s.comm();
                c.push(b'\n');
                return c;
            }
            Content::Status => {
                let ids = sys::ids();
                let name = String::from_utf8_lossy(&s.comm()).into_owned();
                let _ = write!(
                    out,
                    "Name:\t{name}\nUmask:\t{:04o}\nState:\tR (running)\nTgid:\t{pid}\n\
                     Ngid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\nTracerPid:\t0\n\
                     Uid:\t{u}\t{eu}\t{eu}\t{eu}\nGid:\t{g}\t{eg}\t{eg}\t{eg}\n\
                     FDSize:\t{fdsize}\nGroups:\t\nThreads:\t{threads}\n\
                     Cpus_allowed_list:\t{cpus}\nMems_allowed_list:\t0\n",
                    s.umask(),
                    pid = s.pid(),
                    ppid = s.ppid(),
                    threads = s.threads(),
                    u = ids[0],
                    eu = ids[1],
                    g = ids[2],
                    eg = ids[3],
                    fdsize = s.fds.numbers().last().map_or(64, |n| (n + 64) / 64 * 64),
                    cpus = cpu_list(vcpus).trim_end(),
                );
            }
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
        out.into_bytes()
    }
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

/// /proc/self/maps of the address space at the view's CR3: runs of equally accessible user
/// pages from the page tables, in Linux's format. The LWK keeps no names or file offsets
/// for its mappings, so only the stack is named.
pub(crate) fn maps<M: GuestMemoryBackend>(view: &GuestView<'_, M>) -> Vec<u8> {
    let mut out = String::new();
    for m in view.user_mappings(65536) {
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
    }
    out.into_bytes()
}
