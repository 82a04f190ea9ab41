//! Hostile-guest tests of the handlers against a fake guest memory (no KVM): bad, short and
//! wrapping pointers, absurd lengths and counts, fds the guest does not have, paths that try
//! to leave the root. Every case must give the errno Linux gives (or a refusal), never a
//! panic, and never an effect on the host outside the job's root and fd table.

use crate::guest_mem::GuestRange;
use crate::{Errno, FdTable, JobContext, ProcessInfo, Servicer};
use offload_abi::errno::*;
use offload_abi::syscalls::nr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const PML4: u64 = 0x1000;
/// User read-write page (gpa 0x10_0000).
const RW: u64 = 0x40_0000;
/// User read-only page right after it.
const RO: u64 = 0x40_1000;
/// Supervisor page after that.
const SUP: u64 = 0x40_2000;
/// User read-write 2 MiB page (gpa 0x20_0000).
const BIG: u64 = 0x60_0000;

/// Guest RAM with the page tables described by the constants above.
fn memory() -> GuestMemoryMmap {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
    let (pdpt, pd, pt) = (0x2000u64, 0x3000u64, 0x4000u64);
    mem.write_obj(pdpt | 7, GuestAddress(PML4)).unwrap();
    mem.write_obj(pd | 7, GuestAddress(pdpt)).unwrap();
    mem.write_obj(pt | 7, GuestAddress(pd + 2 * 8)).unwrap();
    mem.write_obj(0x20_0000u64 | 7 | 0x80, GuestAddress(pd + 3 * 8))
        .unwrap();
    mem.write_obj(0x10_0000u64 | 7, GuestAddress(pt)).unwrap();
    mem.write_obj(0x10_1000u64 | 5, GuestAddress(pt + 8))
        .unwrap();
    mem.write_obj(0x10_2000u64 | 3, GuestAddress(pt + 16))
        .unwrap();
    mem
}

/// A scratch directory: `root/` is the job's root, `outside/marker` lies outside it.
struct Scratch {
    base: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let base = std::env::temp_dir().join(format!(
            "offload-host-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/sub")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/marker"), "outside").unwrap();
        std::fs::write(base.join("root/inside"), "inside").unwrap();
        Scratch { base }
    }

    fn root(&self) -> PathBuf {
        std::fs::canonicalize(self.base.join("root")).unwrap()
    }

    fn outside(&self) -> PathBuf {
        self.base.join("outside")
    }

    fn servicer(&self) -> Servicer {
        let root: OwnedFd = std::fs::File::open(self.root()).unwrap().into();
        let s = Servicer::new(
            FdTable::new(64),
            JobContext {
                root,
                root_path: self.root(),
                cwd: b"/sub".to_vec(),
                exe: b"/bin/prog".to_vec(),
                execfn: b"prog".to_vec(),
                process: ProcessInfo {
                    pid: std::process::id(),
                    ppid: 1,
                    argv: vec![b"prog".to_vec(), b"arg".to_vec()],
                    vcpus: 2,
                    mem_size: 16 << 20,
                    tsc_khz: 1_000_000,
                },
            },
        );
        s.process(std::process::id()).unwrap().swap_umask(0o022);
        s
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

struct Guest {
    mem: GuestMemoryMmap,
}

impl Guest {
    fn new() -> Self {
        Guest { mem: memory() }
    }

    fn call(&self, s: &Servicer, number: u64, args: &[u64]) -> Result<i64, Errno> {
        self.call_as(s, s.ctx.process.pid, number, args)
    }

    /// A syscall made by process `pid`.
    fn call_as(&self, s: &Servicer, pid: u32, number: u64, args: &[u64]) -> Result<i64, Errno> {
        let view = crate::GuestView::new(&self.mem, PML4, false);
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        s.syscall(pid, &view, number, a)
    }

    /// Puts bytes at a user address (through the page tables).
    fn put(&self, va: u64, data: &[u8]) {
        let view = crate::GuestView::new(&self.mem, PML4, true);
        view.write(GuestRange::new(va, data.len() as u64), data)
            .unwrap();
    }

    fn get(&self, va: u64, len: u64) -> Vec<u8> {
        let view = crate::GuestView::new(&self.mem, PML4, true);
        view.read(GuestRange::new(va, len)).unwrap()
    }

    /// Writes a NUL-terminated string at `va`; returns `va`.
    fn cstr(&self, va: u64, s: &str) -> u64 {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(va, &b);
        va
    }
}

fn pipe(g: &Guest, s: &Servicer) -> (u64, u64) {
    g.call(s, nr::pipe2, &[RW + 0xf00, 0]).unwrap();
    let b = g.get(RW + 0xf00, 8);
    let r = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let w = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    (u64::from(r), u64::from(w))
}

#[test]
fn bad_buffers_are_efault_and_lose_nothing() {
    let sc = Scratch::new("buffers");
    let s = sc.servicer();
    let g = Guest::new();
    let (r, w) = pipe(&g, &s);
    g.put(RW, b"hello");
    assert_eq!(g.call(&s, nr::write, &[w, RW, 5]), Ok(5));
    // Read into read-only, supervisor, unmapped, wrapping and half-mapped buffers.
    for (buf, len) in [
        (RO, 5),
        (SUP, 5),
        (0, 5),
        (u64::MAX - 2, 5),
        (RW + 0xffe, 5),
        (0x8000_0000_0000, 5),
        (0xffff_8000_0000_0000, 5),
    ] {
        assert_eq!(
            g.call(&s, nr::read, &[r, buf, len]),
            Err(Errno(EFAULT)),
            "{buf:#x}"
        );
    }
    // The data is still in the pipe.
    assert_eq!(g.call(&s, nr::read, &[r, BIG, 5]), Ok(5));
    assert_eq!(g.get(BIG, 5), b"hello");
    // Writes from memory the guest cannot read.
    for buf in [SUP, 0, u64::MAX - 1] {
        assert_eq!(g.call(&s, nr::write, &[w, buf, 4]), Err(Errno(EFAULT)));
    }
    // Absurd lengths: capped or refused, never a huge host allocation or a panic.
    assert_eq!(g.call(&s, nr::read, &[r, RW, u64::MAX]), Err(Errno(EFAULT)));
    assert_eq!(
        g.call(&s, nr::write, &[w, RW, u64::MAX]),
        Err(Errno(EFAULT))
    );
    // readv: an iovec array in unmapped memory, an iovec into the supervisor page, too many
    // iovecs, lengths that overflow ssize_t.
    assert_eq!(g.call(&s, nr::readv, &[r, SUP, 1]), Err(Errno(EFAULT)));
    let mut iov = Vec::new();
    iov.extend_from_slice(&RW.to_le_bytes());
    iov.extend_from_slice(&4u64.to_le_bytes());
    iov.extend_from_slice(&SUP.to_le_bytes());
    iov.extend_from_slice(&4u64.to_le_bytes());
    g.put(BIG, &iov);
    assert_eq!(g.call(&s, nr::readv, &[r, BIG, 2]), Err(Errno(EFAULT)));
    assert_eq!(g.call(&s, nr::readv, &[r, BIG, 1025]), Err(Errno(EINVAL)));
    assert_eq!(
        g.call(&s, nr::readv, &[r, BIG, u64::MAX]),
        Err(Errno(EINVAL))
    );
    let mut huge = Vec::new();
    for _ in 0..2 {
        huge.extend_from_slice(&RW.to_le_bytes());
        huge.extend_from_slice(&(u64::MAX / 2 + 1).to_le_bytes());
    }
    g.put(BIG + 0x100, &huge);
    assert_eq!(
        g.call(&s, nr::writev, &[w, BIG + 0x100, 2]),
        Err(Errno(EINVAL))
    );
    // pipe2 with a read-only result pointer creates nothing.
    let before: Vec<i32> = s.process(s.ctx.process.pid).unwrap().fds.numbers();
    assert_eq!(g.call(&s, nr::pipe2, &[RO, 0]), Err(Errno(EFAULT)));
    assert_eq!(
        g.call(&s, nr::socketpair, &[1, 1, 0, SUP]),
        Err(Errno(EFAULT))
    );
    assert_eq!(s.process(s.ctx.process.pid).unwrap().fds.numbers(), before);
}

#[test]
fn foreign_and_absurd_fds_are_ebadf() {
    let sc = Scratch::new("fds");
    let s = sc.servicer();
    let g = Guest::new();
    // A host fd the VMM has open is not a guest fd.
    let host = std::fs::File::open("/dev/null").unwrap();
    let n = host.as_raw_fd() as u64;
    for fd in [n, 1000, u64::MAX, 0xffff_ffff, 0x1_0000_0000 + 3] {
        assert_eq!(g.call(&s, nr::read, &[fd, RW, 1]), Err(Errno(EBADF)));
        assert_eq!(g.call(&s, nr::fstat, &[fd, RW]), Err(Errno(EBADF)));
        assert_eq!(g.call(&s, nr::close, &[fd]), Err(Errno(EBADF)));
        assert_eq!(g.call(&s, nr::dup, &[fd]), Err(Errno(EBADF)));
        assert_eq!(g.call(&s, nr::fchdir, &[fd]), Err(Errno(EBADF)));
        assert_eq!(
            g.call(&s, nr::getdents64, &[fd, RW, 100]),
            Err(Errno(EBADF))
        );
        assert_eq!(g.call(&s, nr::listen, &[fd, 1]), Err(Errno(EBADF)));
        assert_eq!(
            g.call(&s, nr::epoll_ctl, &[fd, 1, fd, RW]),
            Err(Errno(EBADF))
        );
    }
    // dup2 beyond the table's limit.
    let (r, _w) = pipe(&g, &s);
    assert_eq!(g.call(&s, nr::dup2, &[r, 64]), Err(Errno(EBADF)));
    assert_eq!(g.call(&s, nr::dup2, &[r, u64::MAX]), Err(Errno(EBADF)));
    // poll: a foreign fd is POLLNVAL, not the host's fd.
    let mut pfd = Vec::new();
    pfd.extend_from_slice(&(n as i32).to_le_bytes());
    pfd.extend_from_slice(&1i16.to_le_bytes());
    pfd.extend_from_slice(&0i16.to_le_bytes());
    g.put(RW, &pfd);
    assert_eq!(g.call(&s, nr::poll, &[RW, 1, 0]), Ok(1));
    assert_eq!(g.get(RW + 6, 2), 0x20i16.to_le_bytes());
    // Absurd counts.
    assert_eq!(g.call(&s, nr::poll, &[RW, 1 << 20, 0]), Err(Errno(EINVAL)));
    let ep = g.call(&s, nr::epoll_create1, &[0]).unwrap() as u64;
    assert_eq!(
        g.call(&s, nr::epoll_wait, &[ep, RW, u64::MAX, 0]),
        Err(Errno(EINVAL))
    );
    assert_eq!(
        g.call(&s, nr::epoll_wait, &[ep, RO, 4, 0]),
        Err(Errno(EFAULT))
    );
    // select with a bit set for a foreign fd.
    let mut set = [0u8; 128];
    set[(n / 8) as usize] |= 1 << (n % 8);
    g.put(RW, &set);
    assert_eq!(
        g.call(&s, nr::select, &[n + 1, RW, 0, 0, 0]),
        Err(Errno(EBADF))
    );
    drop(host);
}

/// A `struct msghdr` at `at` with one iovec and optional control data.
fn msghdr(g: &Guest, at: u64, data: u64, len: u64, control: u64, clen: u64) {
    let iov = at + 0x100;
    let mut m = vec![0u8; 56];
    m[16..24].copy_from_slice(&iov.to_le_bytes());
    m[24..32].copy_from_slice(&1u64.to_le_bytes());
    m[32..40].copy_from_slice(&control.to_le_bytes());
    m[40..48].copy_from_slice(&clen.to_le_bytes());
    g.put(at, &m);
    let mut v = data.to_le_bytes().to_vec();
    v.extend_from_slice(&len.to_le_bytes());
    g.put(iov, &v);
}

fn cmsg_rights(fds: &[i32], len_override: Option<u64>) -> Vec<u8> {
    let len = 16 + 4 * fds.len() as u64;
    let mut c = len_override.unwrap_or(len).to_le_bytes().to_vec();
    c.extend_from_slice(&1i32.to_le_bytes()); // SOL_SOCKET
    c.extend_from_slice(&1i32.to_le_bytes()); // SCM_RIGHTS
    for f in fds {
        c.extend_from_slice(&f.to_le_bytes());
    }
    while !c.len().is_multiple_of(8) {
        c.push(0);
    }
    c
}

#[test]
fn scm_rights_travel_through_the_table() {
    let sc = Scratch::new("scm");
    let s = sc.servicer();
    let g = Guest::new();
    g.call(&s, nr::socketpair, &[1, 1, 0, RW + 0xf00]).unwrap();
    let b = g.get(RW + 0xf00, 8);
    let (a, bsock) = (
        u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        u64::from(u32::from_le_bytes([b[4], b[5], b[6], b[7]])),
    );
    let (pr, pw) = pipe(&g, &s);
    g.put(BIG, b"x");
    // A foreign fd in SCM_RIGHTS is EBADF; nothing is sent.
    let host = std::fs::File::open("/dev/null").unwrap();
    g.put(BIG + 0x1000, &cmsg_rights(&[host.as_raw_fd()], None));
    msghdr(&g, BIG + 0x2000, BIG, 1, BIG + 0x1000, 24);
    assert_eq!(
        g.call(&s, nr::sendmsg, &[a, BIG + 0x2000, 0]),
        Err(Errno(EBADF))
    );
    // Malformed control headers.
    for bad in [Some(8u64), Some(1000)] {
        g.put(BIG + 0x1000, &cmsg_rights(&[pr as i32], bad));
        assert_eq!(
            g.call(&s, nr::sendmsg, &[a, BIG + 0x2000, 0]),
            Err(Errno(EINVAL)),
            "{bad:?}"
        );
    }
    msghdr(&g, BIG + 0x2000, BIG, 1, BIG + 0x1000, 1 << 30);
    assert_eq!(
        g.call(&s, nr::sendmsg, &[a, BIG + 0x2000, 0]),
        Err(Errno(ENOBUFS))
    );
    // A good one: the pipe's read end arrives as a new guest fd that reads the pipe.
    g.put(BIG + 0x1000, &cmsg_rights(&[pr as i32], None));
    msghdr(&g, BIG + 0x2000, BIG, 1, BIG + 0x1000, 24);
    assert_eq!(g.call(&s, nr::sendmsg, &[a, BIG + 0x2000, 0]), Ok(1));
    // recvmsg into a read-only control buffer: EFAULT before anything is received.
    msghdr(&g, BIG + 0x3000, BIG + 0x4000, 16, RO, 24);
    assert_eq!(
        g.call(&s, nr::recvmsg, &[bsock, BIG + 0x3000, 0]),
        Err(Errno(EFAULT))
    );
    msghdr(&g, BIG + 0x3000, BIG + 0x4000, 16, BIG + 0x5000, 24);
    assert_eq!(g.call(&s, nr::recvmsg, &[bsock, BIG + 0x3000, 0]), Ok(1));
    let c = g.get(BIG + 0x5000, 20);
    let got = u32::from_le_bytes([c[16], c[17], c[18], c[19]]);
    assert!(
        s.process(s.ctx.process.pid)
            .unwrap()
            .fds
            .get(u64::from(got))
            .is_ok(),
        "received fd {got} is a guest fd"
    );
    g.put(RW, b"via");
    assert_eq!(g.call(&s, nr::write, &[pw, RW, 3]), Ok(3));
    assert_eq!(
        g.call(&s, nr::read, &[u64::from(got), BIG + 0x6000, 3]),
        Ok(3)
    );
    assert_eq!(g.get(BIG + 0x6000, 3), b"via");
    // The control length the kernel reported (CMSG_SPACE of one int) reaches the guest.
    let m = g.get(BIG + 0x3000, 56);
    assert_eq!(u64::from_le_bytes(m[40..48].try_into().unwrap()), 24);
    drop(host);
}

#[test]
fn paths_stay_inside_the_root() {
    let sc = Scratch::new("paths");
    let s = sc.servicer();
    let g = Guest::new();
    let outside = sc.outside();
    let marker = outside.join("marker");
    std::os::unix::fs::symlink(&marker, sc.root().join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../..", sc.root().join("up")).unwrap();
    let depth = sc.root().components().count();
    let climb = format!("{}{}", "../".repeat(depth + 2), marker.display());
    for p in [
        format!("/..{}", marker.display()),
        climb.clone(),
        "/abs".into(),
        format!("/up{}", marker.display()),
        format!("/proc/self/root{}", marker.display()),
    ] {
        let a = g.cstr(BIG, &p);
        assert_eq!(g.call(&s, nr::open, &[a, 0, 0]), Err(Errno(ENOENT)), "{p}");
        assert_eq!(g.call(&s, nr::stat, &[a, RW]), Err(Errno(ENOENT)), "{p}");
        assert_eq!(
            g.call(&s, nr::chmod, &[a, 0o777]),
            Err(Errno(ENOENT)),
            "{p}"
        );
        assert_eq!(g.call(&s, nr::truncate, &[a, 0]), Err(Errno(ENOENT)), "{p}");
        // Unlinking "/abs" removes the link inside the root, which is fine; the marker
        // outside is checked at the end.
        let _ = g.call(&s, nr::unlink, &[a]);
    }
    // Entries created through `..` chains land inside the root.
    let a = g.cstr(BIG, &format!("{}made", "../".repeat(depth + 2)));
    assert_eq!(g.call(&s, nr::mkdir, &[a, 0o777]), Ok(0));
    assert!(sc.root().join("made").is_dir());
    let meta = std::fs::metadata(sc.root().join("made")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o755,
        "the job's umask applies"
    );
    let a = g.cstr(BIG, &format!("/..{}/planted", outside.display()));
    assert_eq!(g.call(&s, nr::mkdir, &[a, 0o777]), Err(Errno(ENOENT)));
    let t = g.cstr(BIG + 0x100, "/inside");
    assert_eq!(g.call(&s, nr::symlink, &[t, a]), Err(Errno(ENOENT)));
    assert_eq!(g.call(&s, nr::rename, &[t, a]), Err(Errno(ENOENT)));
    assert_eq!(g.call(&s, nr::link, &[t, a]), Err(Errno(ENOENT)));
    // "." and ".." and the root itself as the last component.
    let dotdot = g.cstr(BIG, "/..");
    assert_eq!(g.call(&s, nr::unlink, &[dotdot]), Err(Errno(EISDIR)));
    assert_eq!(g.call(&s, nr::rmdir, &[dotdot]), Err(Errno(ENOTEMPTY)));
    assert_eq!(g.call(&s, nr::mkdir, &[dotdot, 0o777]), Err(Errno(EEXIST)));
    let new = g.cstr(BIG + 0x100, "/x");
    assert_eq!(g.call(&s, nr::rename, &[dotdot, new]), Err(Errno(EBUSY)));
    let root = g.cstr(BIG, "///");
    assert_eq!(g.call(&s, nr::rmdir, &[root]), Err(Errno(EBUSY)));
    assert_eq!(g.call(&s, nr::mkdir, &[root, 0o777]), Err(Errno(EEXIST)));
    // chmod of the root's parent through "..": it is the root that changes.
    use std::os::unix::fs::PermissionsExt;
    let base_mode = std::fs::metadata(&sc.base).unwrap().permissions().mode();
    assert_eq!(g.call(&s, nr::chmod, &[dotdot, 0o700]), Ok(0));
    assert_eq!(
        std::fs::metadata(sc.root()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&sc.base).unwrap().permissions().mode(),
        base_mode
    );
    // chdir cannot leave either.
    assert_eq!(g.call(&s, nr::chdir, &[dotdot]), Ok(0));
    assert_eq!(g.call(&s, nr::getcwd, &[RW, 100]), Ok(2));
    assert_eq!(g.get(RW, 2), b"/\0");
    // AF_UNIX names resolve in the root too.
    let sock = g.call(&s, nr::socket, &[1, 1, 0]).unwrap() as u64;
    let mut addr = 1u16.to_le_bytes().to_vec();
    addr.extend_from_slice(format!("/..{}/sock", outside.display()).as_bytes());
    addr.push(0);
    g.put(BIG, &addr);
    assert_eq!(
        g.call(&s, nr::bind, &[sock, BIG, addr.len() as u64]),
        Err(Errno(ENOENT))
    );
    let mut addr = 1u16.to_le_bytes().to_vec();
    addr.extend_from_slice(b"/../sock");
    addr.push(0);
    g.put(BIG, &addr);
    assert_eq!(g.call(&s, nr::bind, &[sock, BIG, addr.len() as u64]), Ok(0));
    assert!(sc.root().join("sock").exists());
    // getsockname reports the guest's name.
    g.put(RW, &128u32.to_le_bytes());
    assert_eq!(g.call(&s, nr::getsockname, &[sock, RW + 8, RW]), Ok(0));
    assert_eq!(&g.get(RW + 10, 9), b"/../sock\0");
    // Bad path pointers and lengths.
    assert_eq!(g.call(&s, nr::open, &[SUP, 0, 0]), Err(Errno(EFAULT)));
    assert_eq!(g.call(&s, nr::open, &[0, 0, 0]), Err(Errno(EFAULT)));
    // A string without NUL running from a readable page into the supervisor page.
    g.mem
        .write_slice(&[b'a'; 4096], GuestAddress(0x10_1000))
        .unwrap();
    assert_eq!(g.call(&s, nr::mkdir, &[RO + 0x800, 0]), Err(Errno(EFAULT)));
    let long = "a/".repeat(3000);
    let a = g.cstr(BIG, &long);
    assert_eq!(g.call(&s, nr::open, &[a, 0, 0]), Err(Errno(ENAMETOOLONG)));
    // The marker is untouched and nothing appeared outside.
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "outside");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn the_process_view_is_the_guests() {
    let sc = Scratch::new("proc");
    let s = sc.servicer();
    let g = Guest::new();
    let read_all = |s: &Servicer, path: &str| -> Result<Vec<u8>, Errno> {
        let a = g.cstr(BIG, path);
        let fd = g.call(s, nr::open, &[a, 0, 0])? as u64;
        let n = g.call(s, nr::read, &[fd, BIG + 0x1000, 0x10000])?;
        g.call(s, nr::close, &[fd])?;
        Ok(g.get(BIG + 0x1000, n as u64))
    };
    let maps = String::from_utf8(read_all(&s, "/proc/self/maps").unwrap()).unwrap();
    assert_eq!(
        maps,
        "00400000-00401000 rwxp 00000000 00:00 0 \n\
         00401000-00402000 r-xp 00000000 00:00 0 \n\
         00600000-00800000 rwxp 00000000 00:00 0 \n"
    );
    let status = String::from_utf8(read_all(&s, "/proc/self/status").unwrap()).unwrap();
    assert!(
        status.contains("Name:\tprog\n") && status.contains("PPid:\t1\n"),
        "{status}"
    );
    assert!(status.contains("Umask:\t0022\n") && status.contains("Cpus_allowed_list:\t0-1\n"));
    assert_eq!(read_all(&s, "/proc/self/cmdline").unwrap(), b"prog\0arg\0");
    assert_eq!(
        read_all(&s, "/proc/./self/../self/comm").unwrap(),
        b"prog\n"
    );
    assert_eq!(
        read_all(&s, "/sys/devices/system/cpu/online").unwrap(),
        b"0-1\n"
    );
    let cpu = String::from_utf8(read_all(&s, "/proc/cpuinfo").unwrap()).unwrap();
    assert_eq!(cpu.matches("processor\t: ").count(), 2, "{cpu}");
    let mem = String::from_utf8(read_all(&s, "/proc/meminfo").unwrap()).unwrap();
    assert!(mem.starts_with("MemTotal:          16384 kB\n"), "{mem}");
    // The VMM's own /proc files are not the guest's, whatever the spelling.
    assert_eq!(read_all(&s, "/proc/self/mem"), Err(Errno(ENOENT)));
    assert_eq!(read_all(&s, "/proc/self/environ"), Err(Errno(ENOENT)));
    assert_eq!(read_all(&s, "/proc/self/fd/3"), Err(Errno(ENOENT)));
    let me = std::process::id();
    let tid = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|t| t != &me.to_string())
        .unwrap_or_else(|| me.to_string());
    let via_task = format!("/proc/{tid}/mem");
    let r = read_all(&s, &via_task);
    assert!(
        matches!(r, Err(Errno(EACCES)) | Err(Errno(ENOENT))),
        "{via_task}: {r:?}"
    );
    // A symlink into the view (like /dev/stdin -> /proc/self/fd/0) is followed by hand to
    // the guest's fd (the kernel refuses the magic link with ELOOP where /proc is mounted;
    // this scratch root has no /proc, so the walk is called directly).
    let (r, _w) = pipe(&g, &s);
    std::os::unix::fs::symlink(format!("../proc/self/fd/{r}"), sc.root().join("sub/in")).unwrap();
    std::os::unix::fs::symlink("sub", sc.root().join("s")).unwrap();
    assert_eq!(
        crate::Proc::new(&s, &s.process(s.ctx.process.pid).unwrap())
            .expand_to_node(b"/s/./in", true),
        Some(crate::procview::ProcNode::Fd(r as i32))
    );
    assert_eq!(
        crate::Proc::new(&s, &s.process(s.ctx.process.pid).unwrap())
            .expand_to_node(b"/s/in", false),
        None
    );
    assert_eq!(
        crate::Proc::new(&s, &s.process(s.ctx.process.pid).unwrap())
            .expand_to_node(b"/inside", true),
        None
    );
    // Written files cannot be opened for writing.
    let a = g.cstr(BIG, "/proc/self/status");
    assert_eq!(g.call(&s, nr::open, &[a, 1, 0]), Err(Errno(EACCES)));
    // readlink of the links.
    let a = g.cstr(BIG, "/proc/self/exe");
    assert_eq!(g.call(&s, nr::readlink, &[a, RW, 100]), Ok(9));
    assert_eq!(g.get(RW, 9), b"/bin/prog");
    let a = g.cstr(BIG, "/proc/self/cwd");
    assert_eq!(g.call(&s, nr::readlink, &[a, RW, 100]), Ok(4));
    assert_eq!(g.get(RW, 4), b"/sub");
}

#[test]
fn hostile_page_tables_end_the_maps_walk() {
    let g = Guest::new();
    // PML4 slot 1 points back at the PML4 itself, slot 2 outside RAM: the walk stays
    // bounded and reports only real runs.
    g.mem.write_obj(PML4 | 7, GuestAddress(PML4 + 8)).unwrap();
    g.mem
        .write_obj(0xdead_0000_0000u64 | 7, GuestAddress(PML4 + 16))
        .unwrap();
    let view = crate::GuestView::new(&g.mem, PML4, false);
    let runs = view.user_mappings(1 << 20);
    assert!(runs.len() < 100_000);
    assert!(runs.windows(2).all(|w| w[0].end <= w[1].start));
    let capped = view.user_mappings(2);
    assert_eq!(capped.len(), 2);
}

/// Every offloaded handler with arguments drawn from pointers into each kind of page, edge
/// values and garbage, over guest memory full of pseudo-random bytes: no panic, and the
/// effects stay inside the scratch root. The fd table is emptied after every call (so no
/// call can block on an fd another one made); the calls that wait with no fd at all (poll,
/// select, epoll_wait families) are left out.
#[test]
fn random_arguments_never_panic() {
    use offload_abi::syscalls::{Disposition, TABLE};
    let sc = Scratch::new("random");
    let s = sc.servicer();
    let g = Guest::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut noise = vec![0u8; 0x1000];
    for b in noise.iter_mut() {
        *b = (next() % 96) as u8 + 32;
    }
    g.put(RW, &noise);
    g.put(BIG, &noise);
    let values = [
        0,
        1,
        2,
        RW,
        RW + 0xff8,
        RO,
        SUP,
        BIG,
        BIG + 0x1f_fff0,
        u64::MAX,
        u64::MAX - 7,
        1 << 40,
        0x8000_0000_0000,
        0xffff_ffff,
        (-100i64) as u64,
        4096,
    ];
    let skip = [
        nr::poll,
        nr::ppoll,
        nr::select,
        nr::pselect6,
        nr::epoll_wait,
        nr::epoll_pwait,
        nr::epoll_pwait2,
        nr::sync,
        nr::syncfs,
    ];
    for row in TABLE
        .iter()
        .filter(|r| r.disposition == Disposition::Offload && !skip.contains(&r.nr))
    {
        for _ in 0..48 {
            let mut a = [0u64; 6];
            for v in a.iter_mut() {
                *v = values[(next() % values.len() as u64) as usize];
            }
            let _ = g.call(&s, row.nr, &a);
            s.process(s.ctx.process.pid).unwrap().fds.clear();
        }
    }
    assert_eq!(
        std::fs::read_to_string(sc.outside().join("marker")).unwrap(),
        "outside"
    );
    assert_eq!(std::fs::read_dir(sc.outside()).unwrap().count(), 1);
}

#[test]
fn xattrs_stay_inside_the_root_and_check_their_buffers() {
    let sc = Scratch::new("xattr");
    let s = sc.servicer();
    let g = Guest::new();
    // A file outside the root with an attribute; a symlink inside pointing at it.
    let outside = sc.outside().join("secret");
    std::fs::write(&outside, "x").unwrap();
    let name = std::ffi::CString::new("user.k").unwrap();
    let host = std::ffi::CString::new(outside.to_str().unwrap()).unwrap();
    // SAFETY: valid C strings and a 1-byte value.
    let set = unsafe { libc::setxattr(host.as_ptr(), name.as_ptr(), c"v".as_ptr().cast(), 1, 0) };
    if set != 0 {
        eprintln!("SKIP: the scratch file system has no user xattrs");
        return;
    }
    std::os::unix::fs::symlink(&outside, sc.root().join("abs")).unwrap();
    std::fs::write(sc.root().join("in"), "y").unwrap();
    let n = g.cstr(BIG + 0x800, "user.k");
    // The absolute symlink resolves inside the root (where nothing is): ENOENT, not the
    // outside file's attribute.
    let p = g.cstr(BIG, "/abs");
    assert_eq!(
        g.call(&s, nr::getxattr, &[p, n, RW, 100]),
        Err(Errno(ENOENT))
    );
    let p = g.cstr(BIG, "/in");
    assert_eq!(
        g.call(&s, nr::setxattr, &[p, n, RW, 1 << 20, 0]),
        Err(Errno(libc::E2BIG as i64))
    );
    g.put(RW, b"val");
    assert_eq!(g.call(&s, nr::setxattr, &[p, n, RW, 3, 0]), Ok(0));
    // Value buffers: read-only page (EFAULT), supervisor page (EFAULT), absurd size (clamped).
    assert_eq!(g.call(&s, nr::getxattr, &[p, n, RO, 3]), Err(Errno(EFAULT)));
    assert_eq!(
        g.call(&s, nr::getxattr, &[p, n, SUP, 3]),
        Err(Errno(EFAULT))
    );
    assert_eq!(g.call(&s, nr::getxattr, &[p, n, RW, u64::MAX]), Ok(3));
    assert_eq!(g.get(RW, 3), b"val");
    // Names: unmapped, empty, too long.
    assert_eq!(
        g.call(&s, nr::getxattr, &[p, SUP, RW, 3]),
        Err(Errno(EFAULT))
    );
    let empty = g.cstr(BIG + 0x900, "");
    assert_eq!(
        g.call(&s, nr::getxattr, &[p, empty, RW, 3]),
        Err(Errno(ERANGE))
    );
    let long = g.cstr(BIG + 0xa00, &format!("user.{}", "n".repeat(300)));
    assert_eq!(
        g.call(&s, nr::getxattr, &[p, long, RW, 3]),
        Err(Errno(ERANGE))
    );
    // A foreign fd number is EBADF.
    assert_eq!(
        g.call(&s, nr::fgetxattr, &[77, n, RW, 3]),
        Err(Errno(EBADF))
    );
}

/// Concurrent offloads (docs/DESIGN.md "Concurrent offloads"): one servicer serves several
/// threads at once. A read blocked on an empty pipe holds no lock the others need: another
/// thread closes the very fd it blocks on, reuses the number (the table hands out the lowest
/// free one) and writes to the pipe, which wakes the reader with the data from the pipe it
/// started on.
#[test]
fn a_blocked_call_holds_no_lock_and_survives_a_close_of_its_fd() {
    let sc = Scratch::new("concurrent");
    let s = sc.servicer();
    let g = Guest::new();
    let (r, w) = pipe(&g, &s);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| g.call(&s, nr::read, &[r, BIG, 5]));
        // Give the reader time to block on the host (if it has not yet, it finds the fd gone
        // and gets EBADF, which the assertion below reports).
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!reader.is_finished());
        assert_eq!(g.call(&s, nr::close, &[r]), Ok(0));
        let path = g.cstr(RW + 0x800, "/sub/reused");
        let fd = g.call(&s, nr::openat, &[libc::AT_FDCWD as u64, path, 0o102, 0o600]);
        assert_eq!(fd, Ok(r as i64), "the number is free again");
        g.put(RW, b"hello");
        assert_eq!(g.call(&s, nr::write, &[w, RW, 5]), Ok(5));
        assert_eq!(reader.join().unwrap(), Ok(5));
    });
    assert_eq!(g.get(BIG, 5), b"hello");
}

#[path = "processes_tests.rs"]
mod processes;
