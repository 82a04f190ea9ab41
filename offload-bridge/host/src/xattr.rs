//! Extended attributes: getxattr, listxattr, setxattr, removexattr and their `l*` (no
//! following of a final symlink) and `f*` (open fd) forms.
//!
//! Path forms resolve the path inside the job root like every other call (`object_fd`: an
//! `O_PATH` fd), then act on `/proc/self/fd/N` of that fd, which the host kernel follows to
//! exactly that object — no guest-chosen path is walked on the host. An `O_PATH` fd of a
//! symlink cannot carry the `l*` forms through that link, so a symlink is treated as having no
//! attributes: get ENODATA, an empty list, set and remove EPERM (what Linux gives for `user.*`
//! attributes on symlinks; `trusted.*`/`security.*` attributes of symlinks are not reachable). Limits as Linux: names of 1..=255 bytes (else ERANGE), values and
//! lists of at most 64 KiB (a larger get/list buffer is clamped, a larger value is E2BIG).

use crate::Proc;
use crate::fs::object;
use crate::guest_mem::{GuestRange, In, Out};
use crate::path::stat_mode;
use crate::sys::{self, XattrTarget};
use crate::{Call, Errno, SysResult};
use offload_abi::errno::{E2BIG, EINVAL, ENODATA, EPERM, ERANGE};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use vm_memory::GuestMemoryBackend;

const AT_FDCWD: u64 = -100i64 as u64;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: u64 = 65536;
const XATTR_CREATE: u64 = 1;
const XATTR_REPLACE: u64 = 2;

/// Where the attributes live: a resolved object (path forms) or a guest fd (`f*` forms).
enum Target {
    /// An `O_PATH` fd of the object; `None` when it is a symlink (no attributes reachable).
    Object(Option<OwnedFd>),
    Fd(u64),
}

fn path_target<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    follow: bool,
) -> Result<Target, Errno> {
    let flags = if follow { 0 } else { AT_SYMLINK_NOFOLLOW };
    let fd = object(s, c, AT_FDCWD, c.args[0], flags)?;
    let is_link = !follow && stat_mode(&sys::fstat(fd.as_fd())?) & libc::S_IFMT == libc::S_IFLNK;
    Ok(Target::Object((!is_link).then_some(fd)))
}

/// Runs `f` on the host form of `t`; `on_link` is the result for a symlink.
fn with_target<T>(
    s: &Proc<'_>,
    t: &Target,
    on_link: Result<T, Errno>,
    f: impl FnOnce(&XattrTarget<'_>) -> std::io::Result<T>,
) -> Result<T, Errno> {
    match t {
        Target::Object(None) => on_link,
        Target::Object(Some(fd)) => {
            let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_err(|_| Errno(EINVAL))?;
            Ok(f(&XattrTarget::Path(&path))?)
        }
        Target::Fd(n) => Ok(f(&XattrTarget::Fd(s.fds.get(*n)?.as_fd()))?),
    }
}

fn read_name<M: GuestMemoryBackend>(c: &Call<'_, '_, M>, addr: u64) -> Result<CString, Errno> {
    let name = c.mem.read_cstr(addr, XATTR_NAME_MAX + 1).map_err(|e| {
        // A name that does not end within 256 bytes is too long, not a fault.
        if e == Errno(offload_abi::errno::ENAMETOOLONG) {
            Errno(ERANGE)
        } else {
            e
        }
    })?;
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(Errno(ERANGE));
    }
    CString::new(name).map_err(|_| Errno(ERANGE))
}

fn get<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    t: Target,
    name: u64,
    buf: u64,
    size: u64,
) -> SysResult {
    let name = read_name(c, name)?;
    let size = size.min(XATTR_SIZE_MAX);
    let mut value = vec![0u8; size as usize];
    let n = with_target(s, &t, Err(Errno(ENODATA)), |h| {
        sys::getxattr(h, &name, &mut value)
    })?;
    if size > 0 {
        let data = value.get(..n).unwrap_or_default();
        c.mem.write(GuestRange::<Out>::new(buf, n as u64), data)?;
    }
    Ok(n as i64)
}

fn list<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    t: Target,
    buf: u64,
    size: u64,
) -> SysResult {
    let size = size.min(XATTR_SIZE_MAX);
    let mut names = vec![0u8; size as usize];
    let n = with_target(s, &t, Ok(0), |h| sys::listxattr(h, &mut names))?;
    if size > 0 {
        let data = names.get(..n).unwrap_or_default();
        c.mem.write(GuestRange::<Out>::new(buf, n as u64), data)?;
    }
    Ok(n as i64)
}

fn set<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    t: Target,
    a: [u64; 4],
) -> SysResult {
    let [name, value, size, flags] = a;
    if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
        return Err(Errno(EINVAL));
    }
    let name = read_name(c, name)?;
    if size > XATTR_SIZE_MAX {
        return Err(Errno(E2BIG));
    }
    let value = if size == 0 {
        Vec::new()
    } else {
        c.mem.read(GuestRange::<In>::new(value, size))?
    };
    with_target(s, &t, Err(Errno(EPERM)), |h| {
        sys::setxattr(h, &name, &value, flags as i32)
    })?;
    Ok(0)
}

fn remove<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    t: Target,
    name: u64,
) -> SysResult {
    let name = read_name(c, name)?;
    with_target(s, &t, Err(Errno(EPERM)), |h| sys::removexattr(h, &name))?;
    Ok(0)
}

/// getxattr(2), lgetxattr(2), fgetxattr(2)
pub(crate) fn getxattr<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    form: Form,
) -> SysResult {
    let t = form.target(s, c)?;
    get(s, c, t, c.args[1], c.args[2], c.args[3])
}

/// listxattr(2), llistxattr(2), flistxattr(2)
pub(crate) fn listxattr<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    form: Form,
) -> SysResult {
    let t = form.target(s, c)?;
    list(s, c, t, c.args[1], c.args[2])
}

/// setxattr(2), lsetxattr(2), fsetxattr(2)
pub(crate) fn setxattr<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    form: Form,
) -> SysResult {
    let t = form.target(s, c)?;
    set(s, c, t, [c.args[1], c.args[2], c.args[3], c.args[4]])
}

/// removexattr(2), lremovexattr(2), fremovexattr(2)
pub(crate) fn removexattr<M: GuestMemoryBackend>(
    s: &Proc<'_>,
    c: &Call<'_, '_, M>,
    form: Form,
) -> SysResult {
    let t = form.target(s, c)?;
    remove(s, c, t, c.args[1])
}

/// Which of the three forms a call is.
#[derive(Clone, Copy)]
pub(crate) enum Form {
    /// A path, following a final symlink.
    Path,
    /// A path, not following a final symlink (`l*`).
    LinkPath,
    /// An open fd (`f*`).
    Fd,
}

impl Form {
    fn target<M: GuestMemoryBackend>(
        self,
        s: &Proc<'_>,
        c: &Call<'_, '_, M>,
    ) -> Result<Target, Errno> {
        match self {
            Form::Path => path_target(s, c, true),
            Form::LinkPath => path_target(s, c, false),
            Form::Fd => Ok(Target::Fd(c.args[0])),
        }
    }
}
