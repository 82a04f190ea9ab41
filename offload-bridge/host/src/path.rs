//! Path resolution inside the job's root (DESIGN.md rule 5), shared by every path-taking call.
//!
//! Three ways a guest path is turned into something the host can act on, none of which checks
//! first and acts later (no time-of-check/time-of-use window):
//! - **open**: `openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` — absolute paths,
//!   `..` and symlink targets stay inside the root, atomically, in the kernel;
//! - **object** (stat, chmod, chown, utimensat, truncate, statfs, chdir, access, readlink): the
//!   same open with `O_PATH` (and `O_NOFOLLOW` for the `l*` forms), then the fd form of the
//!   call on that fd (`AT_EMPTY_PATH`, or the fd's `/proc/self/fd` name where the call has no
//!   fd form on older kernels — the kernel follows that name to exactly this object);
//! - **entry** (mkdir, mknod, unlink, rmdir, rename, link, symlink, AF_UNIX bind): the parent
//!   directory opened as an object, then the `*at` call with the last component only. A last
//!   component of `.` or `..` is refused by the kernel for every one of these calls before any
//!   lookup, so it cannot reach the parent of the root.
//!
//! Relative paths are made root-relative first: the job's cwd is a path inside the root, and a
//! directory fd's path inside the root is read from the VMM's `/proc/self/fd` (a directory
//! renamed meanwhile resolves to where it is now — still inside the root). A directory fd
//! outside the root (only an inherited one can be) confines resolution beneath itself.
//!
//! Paths that describe the process itself (/proc/self/…, /proc/cpuinfo, …) are answered by
//! `procview`: first by their normalised spelling, and as a backstop after every open: an fd
//! that turns out to be a file in the VMM's own /proc/<pid> directory (reached through a
//! symlink, a task directory, …) is replaced by the program's view or refused. The VMM's
//! /proc/self/mem, fd/ and environ are never reachable.

use crate::Proc;
use crate::procview::{self, ProcNode};
use crate::{Errno, sys};
use offload_abi::errno::{EACCES, EINVAL, ELOOP, ENOENT, ENOTDIR};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// `AT_FDCWD`.
pub(crate) const AT_FDCWD: i32 = -100;
/// `AT_SYMLINK_NOFOLLOW`.
pub(crate) const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
/// `AT_REMOVEDIR`.
pub(crate) const AT_REMOVEDIR: u64 = 0x200;
/// `AT_SYMLINK_FOLLOW` (linkat).
pub(crate) const AT_SYMLINK_FOLLOW: u64 = 0x400;
/// `AT_NO_AUTOMOUNT`.
pub(crate) const AT_NO_AUTOMOUNT: u64 = 0x800;
/// `AT_EMPTY_PATH`.
pub(crate) const AT_EMPTY_PATH: u64 = 0x1000;
/// Longest path the kernel accepts, with its NUL.
pub(crate) const PATH_MAX: usize = 4096;

const O_PATH: u64 = libc::O_PATH as u64;
const O_CLOEXEC: u64 = libc::O_CLOEXEC as u64;
const O_NOFOLLOW: u64 = libc::O_NOFOLLOW as u64;
const O_DIRECTORY: u64 = libc::O_DIRECTORY as u64;
const O_ACCMODE: u64 = libc::O_ACCMODE as u64;
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Guest memory for the /proc view's files (the LWK's records, the processes' memory).
pub(crate) type Mem<'a> = Option<&'a dyn procview::GuestProcs>;

pub(crate) fn cstring(bytes: Vec<u8>) -> Result<CString, Errno> {
    CString::new(bytes).map_err(|_| Errno(EINVAL))
}

/// Joins `path` onto the directory `base` (both guest paths): an absolute `path` stands alone.
pub fn join(base: &[u8], path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let mut joined = base.to_vec();
    if joined.last() != Some(&b'/') {
        joined.push(b'/');
    }
    joined.extend_from_slice(path);
    joined
}

/// The lexical normal form of an absolute path: no empty or `.` components, `..` applied
/// (never above `/`). Used only to recognise the process's own /proc paths; resolution itself
/// is always the kernel's.
pub(crate) fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// The absolute path inside `root_path` (a host path) of the open file `fd`, if it is there.
pub fn path_in_root(fd: BorrowedFd<'_>, root_path: &std::path::Path) -> Option<Vec<u8>> {
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let rel = target.strip_prefix(root_path).ok()?;
    Some(join(b"/", rel.as_os_str().as_bytes()))
}

/// A new fd of an empty directory that stands for a /proc view directory (fstat says
/// directory, getdents is answered from the view's listing). One directory for the VMM
/// process, made in the temporary directory and removed at once, so nothing is left behind
/// and nothing can ever be created in it (a removed directory takes no new entries).
pub(crate) fn empty_dir() -> Result<OwnedFd, Errno> {
    static DIR: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    let held = DIR.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("lwk-vmm-procdir-{}", std::process::id()));
        std::fs::create_dir(&base).ok()?;
        let fd = std::fs::File::open(&base).map(OwnedFd::from);
        let _ = std::fs::remove_dir(&base);
        fd.ok()
    });
    match held {
        // A dup: its read position is never used (getdents on it is answered by the view).
        Some(fd) => Ok(fd.try_clone()?),
        None => Err(Errno(offload_abi::errno::ENOMEM)),
    }
}

/// Where a lookup starts: the job root, or a guest directory fd (held for the lookup, so a
/// concurrent close of that guest fd cannot pull it away).
enum StartDir<'a> {
    Root(BorrowedFd<'a>),
    Fd(crate::fdtable::HostFd),
}

impl AsFd for StartDir<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            StartDir::Root(fd) => *fd,
            StartDir::Fd(fd) => fd.as_fd(),
        }
    }
}

impl Proc<'_> {
    /// The absolute path inside the root of an open fd, if it has one there.
    pub(crate) fn path_in_root(&self, fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
        path_in_root(fd, &self.ctx.root_path)
    }

    /// The absolute guest path `(dirfd, path)` names, when it can be spelled (not for paths
    /// relative to a directory outside the root, a pipe, ...).
    pub(crate) fn guest_abs(&self, dirfd: u64, path: &[u8]) -> Option<Vec<u8>> {
        if path.first() == Some(&b'/') {
            return Some(path.to_vec());
        }
        let base = if dirfd as i32 == AT_FDCWD {
            self.cwd()
        } else if let Some(d) = self.fds.virt_dir(dirfd) {
            procview::dir_path(d.node)
        } else {
            self.path_in_root(self.fds.get(dirfd).ok()?.as_fd())?
        };
        Some(join(&base, path))
    }

    /// The directory and the path relative to it that `(dirfd, path)` names, for openat2
    /// with RESOLVE_IN_ROOT (see the module comment).
    fn resolve_at(&self, dirfd: u64, path: &[u8]) -> Result<(StartDir<'_>, CString), Errno> {
        if path.first() == Some(&b'/') {
            return Ok((
                StartDir::Root(self.ctx.root.as_fd()),
                cstring(path.to_vec())?,
            ));
        }
        let base = if dirfd as i32 == AT_FDCWD {
            self.cwd()
        } else if let Some(d) = self.fds.virt_dir(dirfd) {
            procview::dir_path(d.node)
        } else {
            let dir_held = self.fds.get(dirfd)?;
            let dir = dir_held.as_fd();
            match self.path_in_root(dir) {
                Some(p) => p,
                // A directory outside the root (inherited), or not a directory (ENOTDIR from
                // the kernel): resolution stays beneath it.
                None => return Ok((StartDir::Fd(dir_held.clone()), cstring(path.to_vec())?)),
            }
        };
        Ok((
            StartDir::Root(self.ctx.root.as_fd()),
            cstring(join(&base, path))?,
        ))
    }

    /// openat2 of `(dirfd, path)` inside the root, with the /proc backstop. `extra_resolve`
    /// adds the guest's own RESOLVE_* flags (openat2).
    pub(crate) fn open_in_root(
        &self,
        dirfd: u64,
        path: &[u8],
        flags: u64,
        mode: u64,
        extra_resolve: u64,
        mem: Mem<'_>,
    ) -> Result<OwnedFd, Errno> {
        if path.is_empty() {
            return Err(Errno(ENOENT));
        }
        let (dir, rel) = self.resolve_at(dirfd, path)?;
        let resolve = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS | extra_resolve;
        let fd = sys::openat2(dir.as_fd(), &rel, flags | O_CLOEXEC, mode, resolve)?;
        self.vet(fd, flags, mem)
    }

    /// The backstop: an fd the host opened for the guest that is a file of the VMM's own
    /// /proc/<pid> (or one of its tasks) is swapped for the program's view of that file, or
    /// refused. Directories pass, and `O_PATH` fds (metadata only) of anything but a link.
    pub(crate) fn vet(&self, fd: OwnedFd, flags: u64, mem: Mem<'_>) -> Result<OwnedFd, Errno> {
        if sys::fs_type(fd.as_fd()).ok() != Some(PROC_SUPER_MAGIC) {
            return Ok(fd);
        }
        let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
            return Err(Errno(EACCES));
        };
        let Some(rest) = vmm_proc_rest_of(&target) else {
            return Ok(fd);
        };
        let kind = sys::fstat(fd.as_fd()).map_or(0, |st| stat_mode(&st) & libc::S_IFMT);
        if kind == libc::S_IFDIR {
            return Ok(fd);
        }
        if flags & O_PATH != 0 {
            // Metadata only; but no handle on the VMM's own magic links (fd/N, exe, ns/...),
            // which a later reopen would follow.
            if kind != libc::S_IFLNK {
                return Ok(fd);
            }
            let link = vmm_proc_rest_of(&target)
                .and_then(|rest| procview::own_node(self.pid(), &rest))
                .and_then(|node| node.host_link(self));
            return match link {
                // The view's own link of that name (fd/N of a guest fd, exe, cwd, root).
                Some(link) => open_host_link(link),
                None => Err(Errno(EACCES)),
            };
        }
        match procview::own_node(self.pid(), &rest) {
            Some(node) => self.open_node(node, flags, mem),
            None => Err(Errno(EACCES)),
        }
    }

    /// Opens `(dirfd, path)` for the guest: the process's own /proc paths by their spelling,
    /// everything else inside the root. `view` lets /proc/self/maps read the page tables.
    pub(crate) fn open_guest_path(
        &self,
        dirfd: u64,
        path: &[u8],
        flags: u64,
        mode: u64,
        extra_resolve: u64,
        mem: Mem<'_>,
    ) -> Result<OwnedFd, Errno> {
        if path.is_empty() {
            return Err(Errno(ENOENT));
        }
        let abs = self.guest_abs(dirfd, path);
        if let Some(node) = abs.as_ref().and_then(|a| procview::classify(self, a)) {
            return self.open_node(node, flags, mem);
        }
        match self.open_in_root(dirfd, path, flags, mode, extra_resolve, mem) {
            // A symlink into the process view (/dev/stdin -> /proc/self/fd/0): the kernel
            // refuses the magic link at its end; follow the links by hand.
            Err(Errno(ELOOP)) => {
                let follow_last = flags & O_NOFOLLOW == 0;
                match abs.and_then(|a| self.expand_to_node(&a, follow_last)) {
                    Some(node) => self.open_node(node, flags, mem),
                    None => Err(Errno(ELOOP)),
                }
            }
            r => r,
        }
    }

    /// Follows the symlinks of the absolute guest path `abs` one component at a time, inside
    /// the root, until it names a node of the process view; None if it never does (or does
    /// not resolve, or loops). Used only after the kernel said ELOOP, so it costs nothing on
    /// ordinary paths.
    pub(crate) fn expand_to_node(&self, abs: &[u8], follow_last: bool) -> Option<ProcNode> {
        let mut todo: Vec<Vec<u8>> = abs
            .split(|&b| b == b'/')
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut done: Vec<u8> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop() {
            match part.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    let cut = done.iter().rposition(|&b| b == b'/').unwrap_or(0);
                    done.truncate(cut);
                    continue;
                }
                _ => {}
            }
            done.push(b'/');
            done.extend_from_slice(&part);
            let mut whole = done.clone();
            for rest in todo.iter().rev() {
                whole.push(b'/');
                whole.extend_from_slice(rest);
            }
            if let Some(node) = procview::classify(self, &whole) {
                return Some(node);
            }
            if todo.is_empty() && !follow_last {
                return None;
            }
            let fd = self
                .open_in_root(AT_FDCWD as u64, &done, O_PATH | O_NOFOLLOW, 0, 0, None)
                .ok()?;
            let st = sys::fstat(fd.as_fd()).ok()?;
            if stat_mode(&st) & libc::S_IFMT != libc::S_IFLNK {
                continue;
            }
            links += 1;
            if links > 40 {
                return None;
            }
            let target = sys::readlink_fd(fd.as_fd()).ok()?;
            let cut = done.iter().rposition(|&b| b == b'/').unwrap_or(0);
            done.truncate(cut);
            if target.first() == Some(&b'/') {
                done.clear();
            }
            todo.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
        }
        None
    }

    /// Opens what a /proc view node stands for.
    pub(crate) fn open_node(
        &self,
        node: ProcNode,
        flags: u64,
        mem: Mem<'_>,
    ) -> Result<OwnedFd, Errno> {
        let read_only = || {
            if flags & O_ACCMODE != libc::O_RDONLY as u64 {
                Err(Errno(EACCES))
            } else if flags & O_DIRECTORY != 0 {
                Err(Errno(ENOTDIR))
            } else {
                Ok(())
            }
        };
        match node {
            ProcNode::NotFound => Err(Errno(ENOENT)),
            ProcNode::File(name, content) => {
                read_only()?;
                if !content.exists(self, mem) {
                    return Err(Errno(ENOENT));
                }
                if flags & O_PATH != 0 {
                    // Metadata only (stat, access): nothing to read.
                    return Ok(sys::memfd_with(name, &[])?);
                }
                Ok(sys::memfd_with(name, &content.produce(self, mem)?)?)
            }
            ProcNode::Dir(_) => {
                if flags & O_ACCMODE != libc::O_RDONLY as u64 {
                    return Err(Errno(offload_abi::errno::EISDIR));
                }
                empty_dir()
            }
            ProcNode::Host(host_path) => {
                read_only()?;
                let p = cstring(host_path.as_bytes().to_vec())?;
                let cwd = std::fs::File::open("/").map_err(Errno::from)?;
                Ok(sys::openat2(
                    cwd.as_fd(),
                    &p,
                    libc::O_RDONLY as u64 | O_CLOEXEC,
                    0,
                    0,
                )?)
            }
            ProcNode::Link(target) => {
                if flags & O_NOFOLLOW != 0 && flags & O_PATH == 0 {
                    return Err(Errno(ELOOP));
                }
                let target = target.resolve(self);
                self.open_in_root(AT_FDCWD as u64, &target, flags & !O_NOFOLLOW, 0, 0, mem)
            }
            ProcNode::Fd(n) => {
                let host_held = self.fds.get(n as u64).map_err(|_| Errno(ENOENT))?;
                let host = host_held.as_fd();
                if flags & O_PATH != 0 {
                    return Ok(host.try_clone_to_owned()?);
                }
                let fd = sys::reopen(host, (flags & !O_CLOEXEC) as i32)?;
                self.vet(fd, flags, mem)
            }
        }
    }

    /// An `O_PATH` fd for `(dirfd, path)` honouring `AT_SYMLINK_NOFOLLOW` / `AT_EMPTY_PATH`:
    /// the object of the metadata calls.
    pub(crate) fn object_fd(
        &self,
        dirfd: u64,
        path: &[u8],
        at_flags: u64,
    ) -> Result<OwnedFd, Errno> {
        if path.is_empty() {
            if at_flags & AT_EMPTY_PATH == 0 {
                return Err(Errno(ENOENT));
            }
            return if dirfd as i32 == AT_FDCWD {
                self.open_in_root(dirfd, b".", O_PATH, 0, 0, None)
            } else {
                Ok(self.fds.get(dirfd)?.as_fd().try_clone_to_owned()?)
            };
        }
        let nofollow = at_flags & AT_SYMLINK_NOFOLLOW != 0;
        let abs = self.guest_abs(dirfd, path);
        let mut flags = O_PATH;
        if nofollow {
            flags |= O_NOFOLLOW;
        }
        let node = match abs.as_ref().and_then(|a| procview::classify(self, a)) {
            Some(node) => node,
            None => match self.open_in_root(dirfd, path, flags, 0, 0, None) {
                // See open_guest_path.
                Err(Errno(ELOOP)) => abs
                    .and_then(|a| self.expand_to_node(&a, !nofollow))
                    .ok_or(Errno(ELOOP))?,
                r => return r,
            },
        };
        if nofollow && let Some(link) = node.host_link(self) {
            return open_host_link(link);
        }
        match node {
            ProcNode::Fd(n) => Ok(self
                .fds
                .get(n as u64)
                .map_err(|_| Errno(ENOENT))?
                .as_fd()
                .try_clone_to_owned()?),
            // Synthesised files are stat'ed as what the guest would read.
            node => self.open_node(node, libc::O_RDONLY as u64, None),
        }
    }

    /// The parent directory (an `O_PATH` fd inside the root) and the last component of
    /// `(dirfd, path)`, for calls that act on a directory entry. A trailing slash stays on the
    /// name (the kernel then insists on a directory, as for the whole path). `at_root` is the
    /// errno Linux gives when the path names the root itself.
    pub(crate) fn entry(
        &self,
        dirfd: u64,
        path: &[u8],
        at_root: i64,
    ) -> Result<(OwnedFd, CString), Errno> {
        if path.is_empty() {
            return Err(Errno(ENOENT));
        }
        let end = path.iter().rposition(|&b| b != b'/').map(|i| i + 1);
        let Some(end) = end else {
            return Err(Errno(at_root));
        };
        let trimmed = path.get(..end).unwrap_or_default();
        let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (
                trimmed.get(..i + 1).unwrap_or_default(),
                trimmed.get(i + 1..).unwrap_or_default(),
            ),
            None => (&b"."[..], trimmed),
        };
        let mut name = name.to_vec();
        if end < path.len() {
            name.push(b'/');
        }
        let dir = self.open_in_root(dirfd, parent, O_PATH | O_DIRECTORY, 0, 0, None)?;
        Ok((dir, cstring(name)?))
    }
}

/// An `O_PATH` handle on one of the VMM's procfs links standing for a link of the view (to
/// lstat a link as a link): /proc/self/{exe,cwd,root}, or /proc/self/fd/N of the host fd
/// behind a guest fd.
fn open_host_link(link: procview::HostLink) -> Result<OwnedFd, Errno> {
    let p = cstring(link.path.clone().into_bytes())?;
    let root = std::fs::File::open("/").map_err(Errno::from)?;
    Ok(sys::openat2(
        root.as_fd(),
        &p,
        O_PATH | O_NOFOLLOW | O_CLOEXEC,
        0,
        0,
    )?)
}

fn vmm_proc_rest_of(target: &std::path::Path) -> Option<Vec<u8>> {
    vmm_proc_rest(target.as_os_str().as_bytes())
}

/// The part of a host /proc path after `/proc/<pid>/` (or `/proc/<pid>/task/<tid>/`) when
/// `<pid>` is this VMM process or one of its threads; None for anything else.
fn vmm_proc_rest(host_path: &[u8]) -> Option<Vec<u8>> {
    let rest = host_path.strip_prefix(b"/proc/")?;
    let (pid, rest) = split_first(rest);
    if !is_own_task(pid) {
        return None;
    }
    let rest = match split_first(rest) {
        (b"task", tail) => {
            let (tid, tail) = split_first(tail);
            if !is_own_task(tid) {
                return None;
            }
            tail
        }
        _ => rest,
    };
    Some(rest.to_vec())
}

fn split_first(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().position(|&b| b == b'/') {
        Some(i) => (
            p.get(..i).unwrap_or_default(),
            p.get(i + 1..).unwrap_or_default(),
        ),
        None => (p, &[]),
    }
}

/// Whether the decimal `id` is this process or one of its threads.
fn is_own_task(id: &[u8]) -> bool {
    let Some(n) = std::str::from_utf8(id)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
    else {
        return false;
    };
    n == std::process::id() || std::fs::metadata(format!("/proc/self/task/{n}")).is_ok()
}

/// `st_mode` of raw `struct stat` bytes.
pub(crate) fn stat_mode(st: &[u8; sys::STAT_SIZE]) -> u32 {
    let mut m = [0u8; 4];
    m.copy_from_slice(st.get(24..28).unwrap_or(&[0; 4]));
    u32::from_le_bytes(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        assert_eq!(normalize(b"/"), b"/");
        assert_eq!(
            normalize(b"//proc/./self/../self//maps/"),
            b"/proc/self/maps"
        );
        assert_eq!(normalize(b"/../../etc"), b"/etc");
        assert_eq!(join(b"/a/b", b"../c"), b"/a/b/../c");
        assert_eq!(join(b"/", b"c"), b"/c");
        assert_eq!(join(b"/x", b"/abs"), b"/abs");
    }

    #[test]
    fn own_proc_paths_are_recognised() {
        let me = std::process::id();
        let p = format!("/proc/{me}/mem");
        assert_eq!(vmm_proc_rest(p.as_bytes()), Some(b"mem".to_vec()));
        let p = format!("/proc/{me}/task/{me}/status");
        assert_eq!(vmm_proc_rest(p.as_bytes()), Some(b"status".to_vec()));
        assert_eq!(vmm_proc_rest(b"/proc/1/mem"), None);
        assert_eq!(vmm_proc_rest(b"/proc/cpuinfo"), None);
        assert_eq!(vmm_proc_rest(b"/etc/passwd"), None);
    }
}
