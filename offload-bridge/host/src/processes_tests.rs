//! Per-process host state (issue #9): the process operations and the calls that must follow
//! the requesting process (fd table, cwd, umask, /proc/self).

use super::{BIG, Guest, RW, Scratch};
use crate::{Errno, LogSink, Servicer};
use offload_abi::errno::*;
use offload_abi::syscalls::nr;
use offload_abi::{BridgeRequest, MAX_PROCESSES, op, req_flags};
use std::os::unix::fs::PermissionsExt;

const CHILD: u32 = 1_000_001;
const GRANDCHILD: u32 = 1_000_002;
const FD_CLOEXEC: u64 = 1;

struct NoLog;

impl LogSink for NoLog {
    fn log(&self, _level: u64, _message: &[u8]) {}
    fn trace(&self, _line: &str) {}
}

/// Serves one process operation the way the VMM does (through `serve`).
fn proc_op(g: &Guest, s: &Servicer, opcode: u32, flags: u32, args: [u64; 2]) -> i64 {
    let mut req = BridgeRequest {
        op: opcode,
        flags,
        args: [args[0], args[1], 0, 0, 0, 0],
        pid: s.ctx.process.pid,
        ..Default::default()
    };
    s.serve(&g.mem, &mut req, &NoLog);
    req.ret
}

fn fork(g: &Guest, s: &Servicer, parent: u32, child: u32) -> i64 {
    let k = req_flags::KERNEL_ORIGIN;
    proc_op(
        g,
        s,
        op::PROC_FORK,
        k,
        [u64::from(parent), u64::from(child)],
    )
}

fn exec(g: &Guest, s: &Servicer, pid: u32) -> i64 {
    let k = req_flags::KERNEL_ORIGIN;
    proc_op(g, s, op::PROC_EXEC, k, [u64::from(pid), 0])
}

fn exit(g: &Guest, s: &Servicer, pid: u32) -> i64 {
    let k = req_flags::KERNEL_ORIGIN;
    proc_op(g, s, op::PROC_EXIT, k, [u64::from(pid), 0])
}

/// pipe2 made by process `pid`: (read end, write end).
fn pipe_as(g: &Guest, s: &Servicer, pid: u32, flags: u64) -> (u64, u64) {
    g.call_as(s, pid, nr::pipe2, &[RW + 0xf00, flags]).unwrap();
    let b = g.get(RW + 0xf00, 8);
    let r = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let w = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    (u64::from(r), u64::from(w))
}

/// A pipe of process `pid` whose read end (only) is close-on-exec.
fn pipe_cloexec_read_end(g: &Guest, s: &Servicer, pid: u32) -> (u64, u64) {
    let (r, w) = pipe_as(g, s, pid, 0);
    g.call_as(s, pid, nr::fcntl, &[r, libc::F_SETFD as u64, FD_CLOEXEC])
        .unwrap();
    (r, w)
}

fn cwd_of(g: &Guest, s: &Servicer, pid: u32) -> Vec<u8> {
    let n = g.call_as(s, pid, nr::getcwd, &[BIG, 4096]).unwrap();
    let mut b = g.get(BIG, n as u64);
    b.pop(); // the NUL
    b
}

fn readlink_as(g: &Guest, s: &Servicer, pid: u32, path: &str) -> Result<Vec<u8>, Errno> {
    let a = g.cstr(BIG, path);
    let n = g.call_as(s, pid, nr::readlink, &[a, BIG + 0x1000, 4096])?;
    Ok(g.get(BIG + 0x1000, n as u64))
}

fn read_file_as(g: &Guest, s: &Servicer, pid: u32, path: &str) -> String {
    let a = g.cstr(BIG, path);
    let fd = g.call_as(s, pid, nr::open, &[a, 0, 0]).unwrap() as u64;
    let n = g
        .call_as(s, pid, nr::read, &[fd, BIG + 0x1000, 0x10000])
        .unwrap();
    g.call_as(s, pid, nr::close, &[fd]).unwrap();
    String::from_utf8(g.get(BIG + 0x1000, n as u64)).unwrap()
}

#[test]
fn fork_shares_open_files_and_keeps_cloexec() {
    let sc = Scratch::new("fork");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    let (r, w) = pipe_cloexec_read_end(&g, &s, parent);
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    let mut both = vec![CHILD, parent];
    both.sort_unstable();
    assert_eq!(s.pids(), both);
    // Written through the child's copy of the write end, read through the parent's read end:
    // one pipe.
    g.put(RW, b"hi");
    assert_eq!(g.call_as(&s, CHILD, nr::write, &[w, RW, 2]), Ok(2));
    assert_eq!(g.call_as(&s, parent, nr::read, &[r, RW + 0x100, 16]), Ok(2));
    assert_eq!(g.get(RW + 0x100, 2), b"hi");
    // The per-fd CLOEXEC flags came along.
    let getfd = libc::F_GETFD as u64;
    assert_eq!(g.call_as(&s, CHILD, nr::fcntl, &[r, getfd]), Ok(1));
    assert_eq!(g.call_as(&s, CHILD, nr::fcntl, &[w, getfd]), Ok(0));
    // The tables are copies: a close in the child leaves the parent's fd.
    assert_eq!(g.call_as(&s, CHILD, nr::close, &[w]), Ok(0));
    assert_eq!(
        g.call_as(&s, CHILD, nr::fcntl, &[w, getfd]),
        Err(Errno(EBADF))
    );
    assert_eq!(g.call_as(&s, parent, nr::fcntl, &[w, getfd]), Ok(0));
    // A fork of the child (a grandchild) works the same.
    assert_eq!(fork(&g, &s, CHILD, GRANDCHILD), 0);
    assert_eq!(g.call_as(&s, GRANDCHILD, nr::fcntl, &[r, getfd]), Ok(1));
}

#[test]
fn exec_closes_only_cloexec_fds_of_that_process() {
    let sc = Scratch::new("exec");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    let (r, w) = pipe_cloexec_read_end(&g, &s, parent);
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    assert_eq!(exec(&g, &s, CHILD), 1, "one CLOEXEC fd closed");
    let getfd = libc::F_GETFD as u64;
    assert_eq!(
        g.call_as(&s, CHILD, nr::fcntl, &[r, getfd]),
        Err(Errno(EBADF))
    );
    assert_eq!(g.call_as(&s, CHILD, nr::fcntl, &[w, getfd]), Ok(0));
    // The parent keeps both.
    assert_eq!(g.call_as(&s, parent, nr::fcntl, &[r, getfd]), Ok(1));
    assert_eq!(g.call_as(&s, parent, nr::fcntl, &[w, getfd]), Ok(0));
    // The pipe still works across them.
    g.put(RW, b"x");
    assert_eq!(g.call_as(&s, CHILD, nr::write, &[w, RW, 1]), Ok(1));
    assert_eq!(g.call_as(&s, parent, nr::read, &[r, RW + 0x100, 16]), Ok(1));
    // A second exec has nothing left to close.
    assert_eq!(exec(&g, &s, CHILD), 0);
}

#[test]
fn exit_releases_the_processes_fds() {
    let sc = Scratch::new("exit");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    // Non-blocking: a write end left open anywhere gives EAGAIN instead of hanging the test.
    let (r, w) = pipe_as(&g, &s, parent, libc::O_NONBLOCK as u64);
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    assert_eq!(g.call_as(&s, parent, nr::close, &[w]), Ok(0));
    // The child's copy of the write end keeps the pipe open.
    assert_eq!(
        g.call_as(&s, parent, nr::read, &[r, RW + 0x100, 16]),
        Err(Errno(EAGAIN))
    );
    assert_eq!(exit(&g, &s, CHILD), 0);
    // Its table is gone with the last write end: the reader sees EOF.
    assert_eq!(g.call_as(&s, parent, nr::read, &[r, RW + 0x100, 16]), Ok(0));
    assert!(s.process(CHILD).is_none());
    assert_eq!(s.pids(), vec![parent]);
    // An exited process makes no more calls and cannot exit twice.
    assert_eq!(
        g.call_as(&s, CHILD, nr::getcwd, &[BIG, 4096]),
        Err(Errno(ESRCH))
    );
    assert_eq!(exit(&g, &s, CHILD), -ESRCH);
    // The last process exiting leaves a servicer that still answers (ESRCH) without panic.
    assert_eq!(exit(&g, &s, parent), 0);
    assert_eq!(
        g.call_as(&s, parent, nr::read, &[r, RW, 1]),
        Err(Errno(ESRCH))
    );
    assert!(s.pids().is_empty());
    let mut req = BridgeRequest {
        op: op::HOST_TIME,
        flags: req_flags::KERNEL_ORIGIN,
        ..Default::default()
    };
    s.serve(&g.mem, &mut req, &NoLog);
    assert_eq!(req.ret, 0, "operations that need no process still work");
}

#[test]
fn cwd_and_umask_are_per_process() {
    let sc = Scratch::new("cwd");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    assert_eq!(
        cwd_of(&g, &s, CHILD),
        b"/sub",
        "the child starts where the parent is"
    );
    let root = g.cstr(BIG, "/");
    assert_eq!(g.call_as(&s, CHILD, nr::chdir, &[root]), Ok(0));
    assert_eq!(cwd_of(&g, &s, CHILD), b"/");
    assert_eq!(
        cwd_of(&g, &s, parent),
        b"/sub",
        "chdir in the child does not move the parent"
    );
    assert_eq!(readlink_as(&g, &s, CHILD, "/proc/self/cwd").unwrap(), b"/");
    assert_eq!(
        readlink_as(&g, &s, parent, "/proc/self/cwd").unwrap(),
        b"/sub"
    );
    // Relative paths resolve against the caller's cwd: "inside" exists only at the root.
    let rel = g.cstr(BIG, "inside");
    assert!(g.call_as(&s, CHILD, nr::access, &[rel, 0]).is_ok());
    assert_eq!(
        g.call_as(&s, parent, nr::access, &[rel, 0]),
        Err(Errno(ENOENT))
    );
    // umask: the child inherited 022 and sets 077; the parent's stays 022.
    assert_eq!(g.call_as(&s, CHILD, nr::umask, &[0o077]), Ok(0o022));
    assert_eq!(g.call_as(&s, parent, nr::umask, &[0o022]), Ok(0o022));
    let creat = libc::O_CREAT as u64 | libc::O_WRONLY as u64;
    let c = g.cstr(BIG, "/by-child");
    g.call_as(&s, CHILD, nr::open, &[c, creat, 0o666]).unwrap();
    let p = g.cstr(BIG, "/by-parent");
    g.call_as(&s, parent, nr::open, &[p, creat, 0o666]).unwrap();
    let mode = |name: &str| {
        std::fs::metadata(sc.root().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("by-child"), 0o600);
    assert_eq!(mode("by-parent"), 0o644);
}

#[test]
fn the_proc_view_follows_the_requesting_process() {
    let sc = Scratch::new("procself");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    let inside = g.cstr(BIG, "/inside");
    let fd = g.call_as(&s, CHILD, nr::open, &[inside, 0, 0]).unwrap();
    let link = format!("/proc/self/fd/{fd}");
    assert_eq!(readlink_as(&g, &s, CHILD, &link).unwrap(), b"/inside");
    assert_eq!(readlink_as(&g, &s, parent, &link), Err(Errno(ENOENT)));
    // /proc/<pid>/ is the view for the process's own pid.
    let own = format!("/proc/{CHILD}/fd/{fd}");
    assert_eq!(readlink_as(&g, &s, CHILD, &own).unwrap(), b"/inside");
    let status = read_file_as(&g, &s, CHILD, "/proc/self/status");
    assert!(status.contains(&format!("\nPid:\t{CHILD}\n")), "{status}");
    assert!(status.contains(&format!("\nPPid:\t{parent}\n")), "{status}");
    let status = read_file_as(&g, &s, parent, "/proc/self/status");
    assert!(status.contains(&format!("\nPid:\t{parent}\n")), "{status}");
}

#[test]
fn process_operations_refuse_hostile_requests() {
    let sc = Scratch::new("procops");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    // Unknown pids: nothing happens.
    assert_eq!(g.call_as(&s, 77, nr::umask, &[0o777]), Err(Errno(ESRCH)));
    assert_eq!(g.call_as(&s, parent, nr::umask, &[0o022]), Ok(0o022));
    assert_eq!(fork(&g, &s, 77, CHILD), -ESRCH);
    assert_eq!(exec(&g, &s, 77), -ESRCH);
    assert_eq!(exit(&g, &s, 77), -ESRCH);
    let k = req_flags::KERNEL_ORIGIN;
    assert_eq!(proc_op(&g, &s, op::PROC_EXIT, k, [u64::MAX, 0]), -ESRCH);
    assert_eq!(
        proc_op(&g, &s, op::PROC_FORK, k, [u64::from(parent), 1 << 32]),
        -EINVAL
    );
    // Not from the kernel: refused, whatever the arguments.
    let pid = u64::from(parent);
    assert_eq!(
        proc_op(&g, &s, op::PROC_FORK, 0, [pid, u64::from(CHILD)]),
        -EPERM
    );
    assert_eq!(proc_op(&g, &s, op::PROC_EXEC, 0, [pid, 0]), -EPERM);
    assert_eq!(proc_op(&g, &s, op::PROC_EXIT, 0, [pid, 0]), -EPERM);
    assert_eq!(s.pids(), vec![parent], "nothing was created or removed");
    // A child pid in use, including the parent's own.
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    assert_eq!(fork(&g, &s, parent, CHILD), -EEXIST);
    assert_eq!(fork(&g, &s, CHILD, parent), -EEXIST);
    // The process limit.
    let mut next = 2_000_000u32;
    while s.pids().len() < MAX_PROCESSES {
        assert_eq!(fork(&g, &s, parent, next), 0);
        next += 1;
    }
    assert_eq!(fork(&g, &s, parent, next), -EAGAIN);
    assert_eq!(s.pids().len(), MAX_PROCESSES);
    // An exit makes room again.
    assert_eq!(exit(&g, &s, CHILD), 0);
    assert_eq!(fork(&g, &s, parent, next), 0);
}

/// PROC_EXEC with a new program path at a kernel-virtual address (here: a user page, which a
/// kernel-origin request may read too).
fn exec_path(g: &Guest, s: &Servicer, pid: u32, addr: u64, len: u64) -> i64 {
    let mut req = BridgeRequest {
        op: op::PROC_EXEC,
        flags: req_flags::KERNEL_ORIGIN,
        args: [u64::from(pid), addr, len, 0, 0, 0],
        cr3: super::PML4,
        ..Default::default()
    };
    s.serve(&g.mem, &mut req, &NoLog);
    req.ret
}

#[test]
fn exec_names_the_new_program_inside_the_root() {
    let sc = Scratch::new("exe");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    // Both ends CLOEXEC.
    let (r, w) = pipe_as(&g, &s, parent, libc::O_CLOEXEC as u64);
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    let getfd = libc::F_GETFD as u64;
    // Failures change nothing: no such file, a path escaping the root (.. stops at the root),
    // a bad pointer, a NUL inside, an absurd length.
    g.put(RW, b"/nope");
    assert_eq!(exec_path(&g, &s, CHILD, RW, 5), -ENOENT);
    g.put(RW, b"../../outside/marker");
    assert_eq!(exec_path(&g, &s, CHILD, RW, 20), -ENOENT);
    assert_eq!(exec_path(&g, &s, CHILD, 0xdead_0000, 8), -EFAULT);
    g.put(RW, b"/ins\0de");
    assert_eq!(exec_path(&g, &s, CHILD, RW, 7), -EINVAL);
    assert_eq!(exec_path(&g, &s, CHILD, RW, 1 << 40), -ENAMETOOLONG);
    assert_eq!(g.call_as(&s, CHILD, nr::fcntl, &[r, getfd]), Ok(1));
    assert_eq!(
        readlink_as(&g, &s, CHILD, "/proc/self/exe").unwrap(),
        b"/bin/prog"
    );
    // Relative to the child's cwd (/sub): ../inside is /inside.
    g.put(RW, b"../inside");
    assert_eq!(exec_path(&g, &s, CHILD, RW, 9), 2);
    assert_eq!(
        readlink_as(&g, &s, CHILD, "/proc/self/exe").unwrap(),
        b"/inside"
    );
    assert_eq!(
        readlink_as(&g, &s, parent, "/proc/self/exe").unwrap(),
        b"/bin/prog"
    );
    assert_eq!(
        g.call_as(&s, CHILD, nr::fcntl, &[r, getfd]),
        Err(Errno(EBADF))
    );
    assert_eq!(
        g.call_as(&s, CHILD, nr::fcntl, &[w, getfd]),
        Err(Errno(EBADF))
    );
    // A fork of the exec'd child inherits its program.
    assert_eq!(fork(&g, &s, CHILD, GRANDCHILD), 0);
    assert_eq!(
        readlink_as(&g, &s, GRANDCHILD, "/proc/self/exe").unwrap(),
        b"/inside"
    );
}

/// PROC_NAME for `pid` with the name at kernel-virtual `addr` (a user page here, as in
/// `exec_path`), `len` bytes.
fn name_op(g: &Guest, s: &Servicer, flags: u32, pid: u64, addr: u64, len: u64) -> i64 {
    let mut req = BridgeRequest {
        op: op::PROC_NAME,
        flags,
        args: [pid, addr, len, 0, 0, 0],
        cr3: super::PML4,
        ..Default::default()
    };
    s.serve(&g.mem, &mut req, &NoLog);
    req.ret
}

fn comm_of(g: &Guest, s: &Servicer, pid: u32) -> String {
    read_file_as(g, s, pid, "/proc/self/comm")
}

fn status_name(g: &Guest, s: &Servicer, pid: u32) -> String {
    let status = read_file_as(g, s, pid, "/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("Name:\t")).unwrap();
    line["Name:\t".len()..].to_string()
}

#[test]
fn proc_name_sets_comm_and_forks_inherit_it() {
    let sc = Scratch::new("comm");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    let k = req_flags::KERNEL_ORIGIN;
    // The first process: the last component of the path it was started by.
    assert_eq!(comm_of(&g, &s, parent), "prog\n");
    assert_eq!(status_name(&g, &s, parent), "prog");
    // Truncated to 15 bytes; bytes after a NUL ignored.
    g.put(RW, b"a-very-long-thread-name");
    assert_eq!(name_op(&g, &s, k, u64::from(parent), RW, 23), 0);
    assert_eq!(comm_of(&g, &s, parent), "a-very-long-thr\n");
    assert_eq!(status_name(&g, &s, parent), "a-very-long-thr");
    g.put(RW, b"wk\0junk");
    assert_eq!(name_op(&g, &s, k, u64::from(parent), RW, 7), 0);
    assert_eq!(comm_of(&g, &s, parent), "wk\n");
    // A fork inherits the name; renaming the child leaves the parent alone.
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    assert_eq!(comm_of(&g, &s, CHILD), "wk\n");
    g.put(RW, b"child");
    assert_eq!(name_op(&g, &s, k, u64::from(CHILD), RW, 5), 0);
    assert_eq!(comm_of(&g, &s, CHILD), "child\n");
    assert_eq!(comm_of(&g, &s, parent), "wk\n");
    // Only the bytes that can be part of the name are read: a huge length is fine.
    g.put(RW, b"0123456789abcdefXYZ");
    assert_eq!(name_op(&g, &s, k, u64::from(CHILD), RW, u64::MAX), 0);
    assert_eq!(comm_of(&g, &s, CHILD), "0123456789abcde\n");
    // An empty name is allowed (prctl(PR_SET_NAME, "") gives one too).
    assert_eq!(name_op(&g, &s, k, u64::from(CHILD), RW, 0), 0);
    assert_eq!(comm_of(&g, &s, CHILD), "\n");
}

#[test]
fn proc_name_refuses_hostile_requests() {
    let sc = Scratch::new("commbad");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = u64::from(s.ctx.process.pid);
    let k = req_flags::KERNEL_ORIGIN;
    g.put(RW, b"evil");
    assert_eq!(name_op(&g, &s, 0, parent, RW, 4), -EPERM);
    assert_eq!(name_op(&g, &s, k, 77, RW, 4), -ESRCH);
    assert_eq!(name_op(&g, &s, k, u64::MAX, RW, 4), -ESRCH);
    assert_eq!(name_op(&g, &s, k, 77, 0xdead_0000, 4), -ESRCH);
    assert_eq!(name_op(&g, &s, k, parent, 0xdead_0000, 4), -EFAULT);
    assert_eq!(name_op(&g, &s, k, parent, u64::MAX - 2, 15), -EFAULT);
    assert_eq!(comm_of(&g, &s, s.ctx.process.pid), "prog\n", "unchanged");
}

#[test]
fn exec_names_the_process_after_the_path_it_was_given() {
    let sc = Scratch::new("execcomm");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    // A failed exec keeps the name.
    g.put(RW, b"/nope");
    assert_eq!(exec_path(&g, &s, CHILD, RW, 5), -ENOENT);
    assert_eq!(comm_of(&g, &s, CHILD), "prog\n");
    // The last component of the path as given (relative to the child's cwd, /sub).
    g.put(RW, b"../inside");
    assert!(exec_path(&g, &s, CHILD, RW, 9) >= 0);
    assert_eq!(comm_of(&g, &s, CHILD), "inside\n");
    assert_eq!(status_name(&g, &s, CHILD), "inside");
    assert_eq!(comm_of(&g, &s, parent), "prog\n");
    // Truncated to 15 bytes.
    std::fs::write(sc.root().join("a-program-with-a-long-name"), b"").unwrap();
    g.put(RW, b"/a-program-with-a-long-name");
    assert!(exec_path(&g, &s, CHILD, RW, 27) >= 0);
    assert_eq!(comm_of(&g, &s, CHILD), "a-program-with-\n");
    // An exec without a path keeps the name.
    assert!(exec(&g, &s, CHILD) >= 0);
    assert_eq!(comm_of(&g, &s, CHILD), "a-program-with-\n");
}

#[test]
fn copy_phys_is_kernel_origin_only() {
    let g = Guest::new();
    let sc = Scratch::new("copyphys");
    let s = sc.servicer();
    // One range in the list page at guest-physical `list`: 16 bytes from `from` to `to`.
    let (list, from, to) = (0x7_0000u64, 0x7_1000u64, 0x7_2000u64);
    for (i, w) in [from, to, 16, 0].iter().enumerate() {
        vm_memory::Bytes::write_obj(&g.mem, *w, vm_memory::GuestAddress(list + i as u64 * 8))
            .unwrap();
    }
    vm_memory::Bytes::write_slice(&g.mem, b"0123456789abcdef", vm_memory::GuestAddress(from))
        .unwrap();
    let mut req = BridgeRequest {
        op: op::COPY_PHYS,
        args: [list, 1, 0, 0, 0, 0],
        ..Default::default()
    };
    s.serve(&g.mem, &mut req, &NoLog);
    assert_eq!(req.ret, -EPERM);
    let mut copied = [0u8; 16];
    vm_memory::Bytes::read_slice(&g.mem, &mut copied, vm_memory::GuestAddress(to)).unwrap();
    assert_eq!(copied, [0; 16], "a refused copy copies nothing");
    req.flags = req_flags::KERNEL_ORIGIN;
    s.serve(&g.mem, &mut req, &NoLog);
    assert_eq!(req.ret, 0);
    vm_memory::Bytes::read_slice(&g.mem, &mut copied, vm_memory::GuestAddress(to)).unwrap();
    assert_eq!(&copied, b"0123456789abcdef");
}

fn state_op(g: &Guest, s: &Servicer, flags: u32, args: [u64; 3]) -> i64 {
    let mut req = BridgeRequest {
        op: op::PROC_STATE,
        flags,
        args: [args[0], args[1], args[2], 0, 0, 0],
        cr3: super::PML4,
        ..Default::default()
    };
    s.serve(&g.mem, &mut req, &NoLog);
    req.ret
}

fn status_field(g: &Guest, s: &Servicer, pid: u32, field: &str) -> String {
    let status = read_file_as(g, s, pid, "/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line[field.len()..].trim().to_string()
}

#[test]
fn proc_state_sets_threads_and_parent_per_process() {
    let sc = Scratch::new("state");
    let s = sc.servicer();
    let g = Guest::new();
    let parent = s.ctx.process.pid;
    let k = req_flags::KERNEL_ORIGIN;
    assert_eq!(status_field(&g, &s, parent, "Threads:"), "1");
    assert_eq!(fork(&g, &s, parent, CHILD), 0);
    assert_eq!(status_field(&g, &s, CHILD, "PPid:"), parent.to_string());
    assert_eq!(state_op(&g, &s, k, [u64::from(parent), 3, 1]), 0);
    assert_eq!(status_field(&g, &s, parent, "Threads:"), "3");
    // The child is separate: still one thread; reparenting changes its PPid.
    assert_eq!(status_field(&g, &s, CHILD, "Threads:"), "1");
    assert_eq!(state_op(&g, &s, k, [u64::from(CHILD), 1, 77]), 0);
    assert_eq!(status_field(&g, &s, CHILD, "PPid:"), "77");
    // Hostile or mistaken requests change nothing.
    assert_eq!(state_op(&g, &s, 0, [u64::from(parent), 2, 1]), -EPERM);
    assert_eq!(state_op(&g, &s, k, [u64::from(parent), 0, 1]), -EINVAL);
    assert_eq!(
        state_op(&g, &s, k, [u64::from(parent), u64::MAX, 1]),
        -EINVAL
    );
    assert_eq!(
        state_op(&g, &s, k, [u64::from(parent), 2, u64::MAX]),
        -EINVAL
    );
    assert_eq!(state_op(&g, &s, k, [u64::MAX, 2, 1]), -ESRCH);
    assert_eq!(state_op(&g, &s, k, [12345, 2, 1]), -ESRCH);
    assert_eq!(status_field(&g, &s, parent, "Threads:"), "3");
}
