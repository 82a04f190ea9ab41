//! Sockets: socket, socketpair, bind, listen, accept(4), connect, shutdown, sendto,
//! recvfrom, sendmsg, recvmsg, sendmmsg, recvmmsg, getsockopt, setsockopt, getsockname,
//! getpeername.
//!
//! Socket addresses are bytes (the host is Linux x86_64 too) with one exception: AF_UNIX
//! path names are file-system paths and resolve inside the job's root like every other path.
//! bind creates the socket in the parent directory opened inside the root (spelled
//! `/proc/self/fd/<dir>/<name>` for the host kernel); connect and sendto reach an existing
//! socket through an `O_PATH` fd of it (`/proc/self/fd/<fd>`). Names the host kernel reports
//! back are translated to what the guest bound.
//!
//! msghdr, iovec and cmsg are parsed here from copied-out bytes; fds in SCM_RIGHTS travel
//! through the guest's fd table in both directions (a guest can only send fds it has, and
//! every fd it receives enters its table). Socket options that carry pointers or fds
//! (SO_ATTACH_FILTER, SO_ATTACH_BPF, SO_PEERPIDFD, TCP_ZEROCOPY_RECEIVE, ...) are refused with
//! ENOPROTOOPT and levels not listed with EOPNOTSUPP: the host kernel would follow a guest
//! pointer in the VMM's address space or create an fd outside the guest's table.

use crate::Proc;
use crate::fd::insert_pair;
use crate::guest_mem::{GuestRange, MAX_COPY, Out};
use crate::io::{UIO_MAXIOV, gather, iovecs_at, scatter, scatter_ranges};
use crate::path::AT_FDCWD;
use crate::{Call, Errno, SysResult, sys};
use offload_abi::errno::{
    EADDRINUSE, EBADF, EINVAL, EMSGSIZE, ENAMETOOLONG, ENOBUFS, ENOPROTOOPT, EOPNOTSUPP,
};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use vm_memory::GuestMemoryBackend;

const AF_UNIX: u16 = 1;
/// `sizeof(struct sockaddr_storage)`.
const SOCKADDR_MAX: usize = 128;
/// `sizeof(struct sockaddr_un)`.
const SUN_LEN: usize = 110;
const SOCK_CLOEXEC: i32 = libc::SOCK_CLOEXEC;
const SOCK_NONBLOCK: i32 = libc::SOCK_NONBLOCK;
const MSG_CMSG_CLOEXEC: i32 = libc::MSG_CMSG_CLOEXEC;
const MSG_CTRUNC: i32 = libc::MSG_CTRUNC;
const MSG_WAITFORONE: i32 = 0x10000;
const MSG_DONTWAIT: i32 = libc::MSG_DONTWAIT;
/// Largest control buffer passed on (Linux's optmem_max is of this order).
const CONTROL_MAX: u64 = 64 << 10;
/// Largest socket option value passed on.
const OPT_MAX: u64 = 64 << 10;
/// Most AF_UNIX name translations kept.
const UNIX_NAMES_MAX: usize = 4096;
/// `struct msghdr` on x86_64.
const MSGHDR_SIZE: u64 = 56;
/// `struct mmsghdr` on x86_64.
const MMSGHDR_SIZE: u64 = 64;

/// A socket address ready for the host kernel, with the fd its AF_UNIX name goes through.
struct HostAddr {
    bytes: Vec<u8>,
    _through: Option<OwnedFd>,
}

/// Reads a guest socket address (`len` as the `socklen_t` the guest passed).
fn read_sockaddr<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    addr: u64,
    len: u64,
) -> Result<Vec<u8>, Errno> {
    let len = len as i32;
    if len < 0 || len as usize > SOCKADDR_MAX {
        return Err(Errno(EINVAL));
    }
    c.mem.read(GuestRange::new(addr, len as u64))
}

/// The path of an AF_UNIX address with a file-system name (not unnamed, not abstract).
fn unix_path(raw: &[u8]) -> Option<&[u8]> {
    let family = u16::from_le_bytes([*raw.first()?, *raw.get(1)?]);
    if family != AF_UNIX {
        return None;
    }
    let path = raw.get(2..)?;
    if path.first().is_none_or(|&b| b == 0) {
        return None;
    }
    Some(path.split(|&b| b == 0).next().unwrap_or_default())
}

fn unix_addr(path: &[u8]) -> Vec<u8> {
    let mut out = AF_UNIX.to_le_bytes().to_vec();
    out.extend_from_slice(path);
    out.push(0);
    out
}

impl Proc<'_> {
    /// Rewrites a guest address for the host: AF_UNIX names are resolved inside the root
    /// (`bind`: the entry to create; otherwise the existing socket).
    fn host_addr(&self, raw: Vec<u8>, bind: bool) -> Result<HostAddr, Errno> {
        let Some(path) = unix_path(&raw) else {
            return Ok(HostAddr {
                bytes: raw,
                _through: None,
            });
        };
        if raw.len() > SUN_LEN {
            return Err(Errno(EINVAL));
        }
        let path = path.to_vec();
        let (host_path, through) = if bind {
            let (dir, name) = self.entry(AT_FDCWD as u64, &path, EADDRINUSE)?;
            let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            p.extend_from_slice(name.as_bytes());
            (p, dir)
        } else {
            let fd = self.object_fd(AT_FDCWD as u64, &path, 0)?;
            (sys::magic_path(fd.as_fd()).into_bytes(), fd)
        };
        if host_path.len() >= SUN_LEN - 2 {
            return Err(Errno(ENAMETOOLONG));
        }
        if bind {
            // Bounded: a guest binding sockets forever cannot grow the VMM without limit
            // (past the bound, some earlier names lose their translation).
            let mut names = crate::lock(&self.unix_names);
            if names.len() >= UNIX_NAMES_MAX {
                names.pop_first();
            }
            names.insert(host_path.clone(), path);
        }
        Ok(HostAddr {
            bytes: unix_addr(&host_path),
            _through: Some(through),
        })
    }

    /// Translates an address the host kernel reported (`len` its full length) for the guest.
    fn guest_addr(&self, host: &[u8], len: usize) -> Vec<u8> {
        let host = host.get(..len.min(host.len())).unwrap_or_default();
        let Some(path) = unix_path(host) else {
            return host.to_vec();
        };
        if let Some(guest) = crate::lock(&self.unix_names).get(path) {
            return unix_addr(guest);
        }
        let root = self.ctx.root_path.as_os_str().as_encoded_bytes();
        if root != b"/"
            && let Some(rest) = path.strip_prefix(root)
            && rest.first() == Some(&b'/')
        {
            return unix_addr(rest);
        }
        unix_addr(path)
    }
}

/// Where an output address goes: the buffer and the `socklen_t` in/out length.
struct AddrOut {
    addr: u64,
    len_ptr: u64,
    room: usize,
}

/// Checks an output address pair (`addr` NULL: the caller does not want it) before the call
/// that produces it.
fn addr_out<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    addr: u64,
    len_ptr: u64,
) -> Result<Option<AddrOut>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let room = c.mem.read_u32(len_ptr)? as i32;
    if room < 0 {
        return Err(Errno(EINVAL));
    }
    c.mem.check_writable(GuestRange::new(len_ptr, 4))?;
    c.mem.check_writable(GuestRange::new(
        addr,
        (room as u64).min(SOCKADDR_MAX as u64),
    ))?;
    Ok(Some(AddrOut {
        addr,
        len_ptr,
        room: room as usize,
    }))
}

/// Writes an address: as much as fits, and its full length.
fn put_addr<M: GuestMemoryBackend>(
    c: &Call<'_, '_, M>,
    out: &AddrOut,
    bytes: &[u8],
) -> Result<(), Errno> {
    let n = bytes.len().min(out.room);
    c.mem
        .write_at(out.addr, bytes.get(..n).unwrap_or_default())?;
    c.mem
        .write_at(out.len_ptr, &(bytes.len() as u32).to_le_bytes())
}

/// socket(2)
pub(crate) fn socket<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let ty = c.args[1] as i32;
    let fd = sys::socket(c.args[0] as i32, ty & !SOCK_CLOEXEC, c.args[2] as i32)?;
    Ok(i64::from(s.fds.insert(fd, ty & SOCK_CLOEXEC != 0)?))
}

/// socketpair(2)
pub(crate) fn socketpair<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let (domain, ty, proto) = (c.args[0] as i32, c.args[1] as i32, c.args[2] as i32);
    let make = || sys::socketpair(domain, ty & !SOCK_CLOEXEC, proto);
    insert_pair(s, c, c.args[3], make, ty & SOCK_CLOEXEC != 0)
}

fn bind_or_connect<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    connect: bool,
) -> SysResult {
    let fd = s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?;
    let raw = read_sockaddr(c, c.args[1], c.args[2])?;
    let addr = s.host_addr(raw, !connect)?;
    sys::bind_or_connect(fd.as_fd(), &addr.bytes, connect)?;
    Ok(0)
}

/// bind(2)
pub(crate) fn bind<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    bind_or_connect(s, c, false)
}

/// connect(2)
pub(crate) fn connect<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    bind_or_connect(s, c, true)
}

/// listen(2)
pub(crate) fn listen<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sys::listen(s.fds.get(c.args[0])?.as_fd(), c.args[1] as i32)?;
    Ok(0)
}

/// shutdown(2)
pub(crate) fn shutdown<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sys::shutdown(s.fds.get(c.args[0])?.as_fd(), c.args[1] as i32)?;
    Ok(0)
}

/// accept(2)
pub(crate) fn accept<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_accept4(s, c, 0)
}

/// accept4(2)
pub(crate) fn accept4<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    do_accept4(s, c, c.args[3] as i32)
}

fn do_accept4<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>, flags: i32) -> SysResult {
    if flags & !(SOCK_CLOEXEC | SOCK_NONBLOCK) != 0 {
        return Err(Errno(EINVAL));
    }
    let listener_held = s.fds.get(c.args[0])?;
    let listener = listener_held.as_fd();
    // Checked before accepting: a bad pointer must not cost the connection.
    let out = addr_out(c, c.args[1], c.args[2])?;
    let mut buf = [0u8; SOCKADDR_MAX];
    let (conn, len) = sys::accept4(listener, &mut buf, flags & !SOCK_CLOEXEC)?;
    let n = s.fds.insert(conn, flags & SOCK_CLOEXEC != 0)?;
    if let Some(out) = out {
        let addr = s.guest_addr(&buf, len);
        put_addr(c, &out, &addr)?;
    }
    Ok(i64::from(n))
}

/// getsockname(2)
pub(crate) fn getsockname<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sock_name(s, c, false)
}

/// getpeername(2)
pub(crate) fn getpeername<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    sock_name(s, c, true)
}

fn sock_name<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>, peer: bool) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    let out = addr_out(c, c.args[1], c.args[2])?.ok_or(Errno(libc::EFAULT as i64))?;
    let mut buf = [0u8; SOCKADDR_MAX];
    let len = sys::sock_name(fd, &mut buf, peer)?;
    put_addr(c, &out, &s.guest_addr(&buf, len))?;
    Ok(0)
}

/// sendto(2)
pub(crate) fn sendto<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd = s.fds.get(c.args[0])?.as_fd().try_clone_to_owned()?;
    let data = c
        .mem
        .read(GuestRange::new(c.args[1], c.args[2]).prefix(MAX_COPY))?;
    let addr = if c.args[4] == 0 {
        None
    } else {
        let raw = read_sockaddr(c, c.args[4], c.args[5])?;
        Some(s.host_addr(raw, false)?)
    };
    let dest = addr.as_ref().map(|a| a.bytes.as_slice());
    Ok(sys::sendto(fd.as_fd(), &data, c.args[3] as i32, dest)? as i64)
}

/// recvfrom(2)
pub(crate) fn recvfrom<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    let dest = GuestRange::<Out>::new(c.args[1], c.args[2]).prefix(MAX_COPY);
    c.mem.check_writable(dest)?;
    let out = addr_out(c, c.args[4], c.args[5])?;
    let mut buf = vec![0u8; dest.len() as usize];
    let mut abuf = [0u8; SOCKADDR_MAX];
    let abuf: &mut [u8] = if out.is_some() { &mut abuf } else { &mut [] };
    let (n, alen) = sys::recvfrom(fd, &mut buf, c.args[3] as i32, abuf)?;
    c.mem
        .write(dest, buf.get(..n.min(buf.len())).unwrap_or_default())?;
    if let Some(out) = out {
        put_addr(c, &out, &s.guest_addr(abuf, alen))?;
    }
    Ok(n as i64)
}

/// A `struct msghdr` copied out of the guest.
struct MsgHdr {
    name: u64,
    namelen: u64,
    iov: Vec<(u64, u64)>,
    control: u64,
    controllen: u64,
}

fn read_msghdr<M: GuestMemoryBackend>(c: &Call<'_, '_, M>, addr: u64) -> Result<MsgHdr, Errno> {
    let raw = c.mem.read_array::<{ MSGHDR_SIZE as usize }>(addr)?;
    let word = |off: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(raw.get(off..off + 8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(b)
    };
    let iovlen = word(24);
    if iovlen > UIO_MAXIOV {
        return Err(Errno(EMSGSIZE));
    }
    let controllen = word(40);
    if controllen > CONTROL_MAX {
        return Err(Errno(ENOBUFS));
    }
    Ok(MsgHdr {
        name: word(0),
        namelen: word(8) & 0xffff_ffff,
        iov: iovecs_at(c, word(16), iovlen)?,
        control: word(32),
        controllen,
    })
}

/// Rewrites the fds of SCM_RIGHTS messages in `control` from guest to host numbers, checking
/// every header as Linux does (a length below the header size or past the buffer: EINVAL;
/// an fd the guest does not have: EBADF). Returns the host fds, which the caller holds until
/// the message is sent (a concurrent guest close must not let a number name another host fd).
fn control_to_host(s: &Proc<'_>, control: &mut [u8]) -> Result<Vec<crate::fdtable::HostFd>, Errno> {
    let mut held = Vec::new();
    let mut off = 0usize;
    while off + sys::CMSG_HDR <= control.len() {
        let hdr = control.get(off..off + sys::CMSG_HDR).ok_or(Errno(EINVAL))?;
        let mut b8 = [0u8; 8];
        let mut b4 = [0u8; 4];
        b8.copy_from_slice(hdr.get(..8).unwrap_or(&[0; 8]));
        let len = u64::from_le_bytes(b8);
        if len < sys::CMSG_HDR as u64 || len > (control.len() - off) as u64 {
            return Err(Errno(EINVAL));
        }
        b4.copy_from_slice(hdr.get(8..12).unwrap_or(&[0; 4]));
        let level = i32::from_le_bytes(b4);
        b4.copy_from_slice(hdr.get(12..16).unwrap_or(&[0; 4]));
        let kind = i32::from_le_bytes(b4);
        let end = off + len as usize;
        if level == libc::SOL_SOCKET && kind == sys::SCM_RIGHTS {
            let mut at = off + sys::CMSG_HDR;
            while at + 4 <= end {
                let slot = control.get_mut(at..at + 4).ok_or(Errno(EINVAL))?;
                b4.copy_from_slice(slot);
                let guest = i32::from_le_bytes(b4);
                let host = s.fds.get(guest as u32 as u64).map_err(|_| Errno(EBADF))?;
                slot.copy_from_slice(&host.as_raw_fd().to_le_bytes());
                held.push(host);
                at += 4;
            }
        }
        off = end.next_multiple_of(8);
    }
    Ok(held)
}

fn send_one<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    fd: u64,
    msg: u64,
    flags: i32,
) -> SysResult {
    let fd = s.fds.get(fd)?.as_fd().try_clone_to_owned()?;
    let h = read_msghdr(c, msg)?;
    let name = if h.name != 0 && h.namelen != 0 {
        let raw = read_sockaddr(c, h.name, h.namelen)?;
        Some(s.host_addr(raw, false)?)
    } else {
        None
    };
    let data = gather(c, &h.iov)?;
    let mut control = if h.control != 0 && h.controllen != 0 {
        c.mem.read(GuestRange::new(h.control, h.controllen))?
    } else {
        Vec::new()
    };
    let _held = control_to_host(s, &mut control)?;
    let name = name.as_ref().map(|a| a.bytes.as_slice());
    // The host fds named in `control` stay open until sendmsg returns: `_held` owns them.
    Ok(sys::sendmsg(fd.as_fd(), name, &data, &control, flags)? as i64)
}

fn recv_one<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    fd: u64,
    msg: u64,
    flags: i32,
) -> SysResult {
    let fd = s.fds.get(fd)?.as_fd().try_clone_to_owned()?;
    c.mem.check_writable(GuestRange::new(msg, MSGHDR_SIZE))?;
    let h = read_msghdr(c, msg)?;
    let parts = scatter_ranges(c, &h.iov)?;
    let want_name = h.name != 0;
    if want_name {
        c.mem
            .check_writable(GuestRange::new(h.name, h.namelen.min(SOCKADDR_MAX as u64)))?;
    }
    let controllen = if h.control == 0 { 0 } else { h.controllen };
    c.mem
        .check_writable(GuestRange::new(h.control, controllen))?;
    let mut data = vec![0u8; parts.iter().map(|r| r.len() as usize).sum()];
    let mut name = [0u8; SOCKADDR_MAX];
    let name_buf: &mut [u8] = if want_name { &mut name } else { &mut [] };
    let mut control = vec![0u8; controllen as usize];
    let r = sys::recvmsg(fd.as_fd(), name_buf, &mut data, &mut control, flags)?;
    let mut msg_flags = r.flags;
    let mut control_len = r.control_len;
    // Received fds enter the guest's table; their host numbers in the control data become
    // guest numbers. If the table is full, the rest are closed and MSG_CTRUNC says so.
    let cloexec = flags & MSG_CMSG_CLOEXEC != 0;
    let mut full_at = None;
    for (at, host) in r.fds {
        if full_at.is_some() {
            continue;
        }
        match s.fds.insert(host, cloexec) {
            Ok(n) => {
                if let Some(slot) = control.get_mut(at..at + 4) {
                    slot.copy_from_slice(&n.to_le_bytes());
                }
            }
            Err(_) => full_at = Some(at),
        }
    }
    if let Some(at) = full_at {
        msg_flags |= MSG_CTRUNC;
        control_len = control_len.min(at);
    }
    scatter(
        c,
        &parts,
        data.get(..r.len.min(data.len())).unwrap_or_default(),
    )?;
    if want_name {
        let addr = s.guest_addr(name_buf, r.name_len);
        let n = addr.len().min(h.namelen as usize);
        c.mem.write_at(h.name, addr.get(..n).unwrap_or_default())?;
        c.mem
            .write_at(msg + 8, &(addr.len() as u32).to_le_bytes())?;
    } else {
        c.mem.write_at(msg + 8, &0u32.to_le_bytes())?;
    }
    if controllen != 0 {
        c.mem
            .write_at(h.control, control.get(..control_len).unwrap_or_default())?;
    }
    c.mem
        .write_at(msg + 40, &(control_len as u64).to_le_bytes())?;
    c.mem.write_at(msg + 48, &msg_flags.to_le_bytes())?;
    Ok(r.len as i64)
}

/// sendmsg(2)
pub(crate) fn sendmsg<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    send_one(s, c, c.args[0], c.args[1], c.args[2] as i32)
}

/// recvmsg(2)
pub(crate) fn recvmsg<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    recv_one(s, c, c.args[0], c.args[1], c.args[2] as i32)
}

/// sendmmsg(2): one sendmsg per entry; stops at the first error (reported only if nothing
/// was sent, as Linux does).
pub(crate) fn sendmmsg<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let vlen = (c.args[2] as u32).min(UIO_MAXIOV as u32);
    let mut sent = 0u32;
    while sent < vlen {
        let at = c.args[1] + u64::from(sent) * MMSGHDR_SIZE;
        match send_one(s, c, c.args[0], at, c.args[3] as i32) {
            Ok(n) => c
                .mem
                .write_at(at + MSGHDR_SIZE, &(n as u32).to_le_bytes())?,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
        sent += 1;
    }
    Ok(i64::from(sent))
}

/// recvmmsg(2): one recvmsg per entry; `MSG_WAITFORONE` makes all but the first
/// non-blocking. The timeout argument is not supported (it is checked only between
/// messages on Linux too); a non-NULL one is EINVAL.
pub(crate) fn recvmmsg<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    if c.args[4] != 0 {
        return Err(Errno(EINVAL));
    }
    let vlen = (c.args[2] as u32).min(UIO_MAXIOV as u32);
    let mut flags = c.args[3] as i32;
    let mut got = 0u32;
    while got < vlen {
        let at = c.args[1] + u64::from(got) * MMSGHDR_SIZE;
        match recv_one(s, c, c.args[0], at, flags & !MSG_WAITFORONE) {
            Ok(n) => c
                .mem
                .write_at(at + MSGHDR_SIZE, &(n as u32).to_le_bytes())?,
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
        got += 1;
        if flags & MSG_WAITFORONE != 0 {
            flags |= MSG_DONTWAIT;
        }
    }
    Ok(i64::from(got))
}

/// Whether a socket option may pass to the host: its value is plain data and it creates no
/// fd (see the module comment). Refusals: ENOPROTOOPT for an option of a known level,
/// EOPNOTSUPP (what Linux's protocols mostly answer) for a level not listed.
fn sockopt_check(level: i32, name: i32) -> Result<(), Errno> {
    if !known_level(level) {
        return Err(Errno(EOPNOTSUPP));
    }
    if !sockopt_allowed(level, name) {
        return Err(Errno(ENOPROTOOPT));
    }
    Ok(())
}

fn known_level(level: i32) -> bool {
    matches!(
        level,
        libc::SOL_SOCKET
            | libc::IPPROTO_TCP
            | libc::IPPROTO_IP
            | libc::IPPROTO_IPV6
            | libc::IPPROTO_UDP
            | libc::IPPROTO_ICMPV6
            | libc::SOL_RAW
            | libc::SOL_NETLINK
    )
}

fn sockopt_allowed(level: i32, name: i32) -> bool {
    match level {
        // SO_ATTACH_FILTER/SO_GET_FILTER (26), SO_ATTACH_BPF (50),
        // SO_ATTACH_REUSEPORT_CBPF/EBPF (51, 52), SO_ZEROCOPY (60: the kernel would keep
        // reading a bounce buffer after the call), SO_PEERPIDFD (77), SO_DEVMEM_* (78-80).
        libc::SOL_SOCKET => !matches!(name, 26 | 50 | 51 | 52 | 60 | 77..=80),
        // TCP_ZEROCOPY_RECEIVE (35) maps pages at an address it is given.
        libc::IPPROTO_TCP => name != 35,
        libc::IPPROTO_IP
        | libc::IPPROTO_IPV6
        | libc::IPPROTO_UDP
        | libc::IPPROTO_ICMPV6
        | libc::SOL_RAW
        | libc::SOL_NETLINK => true,
        _ => false,
    }
}

/// getsockopt(2)
pub(crate) fn getsockopt<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    let (level, name) = (c.args[1] as i32, c.args[2] as i32);
    sockopt_check(level, name)?;
    let room = c.mem.read_u32(c.args[4])? as i32;
    if room < 0 {
        return Err(Errno(EINVAL));
    }
    c.mem.check_writable(GuestRange::new(c.args[4], 4))?;
    let dest = GuestRange::<Out>::new(c.args[3], (room as u64).min(OPT_MAX));
    c.mem.check_writable(dest)?;
    let mut val = vec![0u8; dest.len() as usize];
    let len = sys::getsockopt(fd, level, name, &mut val)?;
    c.mem
        .write(dest, val.get(..len.min(val.len())).unwrap_or_default())?;
    c.mem.write_at(c.args[4], &(len as u32).to_le_bytes())?;
    Ok(0)
}

/// setsockopt(2)
pub(crate) fn setsockopt<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let fd_held = s.fds.get(c.args[0])?;
    let fd = fd_held.as_fd();
    let (level, name) = (c.args[1] as i32, c.args[2] as i32);
    sockopt_check(level, name)?;
    let len = c.args[4] as i32;
    if len < 0 || len as u64 > OPT_MAX {
        return Err(Errno(EINVAL));
    }
    let val = c.mem.read(GuestRange::new(c.args[3], len as u64))?;
    sys::setsockopt(fd, level, name, &val)?;
    Ok(0)
}
