//! Calls that need the host for what the LWK cannot know or make, and per-process state
//! the host keeps (umask).

use crate::Proc;
use crate::guest_mem::{GuestRange, MAX_COPY, Out};
use crate::{Call, Errno, SysResult, sys};
use offload_abi::errno::EINVAL;
use vm_memory::GuestMemoryBackend;

/// getrandom(2): entropy comes from the host kernel (the LWK has no entropy source of its own
/// that works on every KVM: RDRAND may be unavailable, and a guest-side CSPRNG would cost more
/// ring-0 instructions than the single exit this takes).
pub(crate) fn getrandom<M: GuestMemoryBackend>(_s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let flags = c.args[2] as u32;
    if flags & !(libc::GRND_NONBLOCK | libc::GRND_RANDOM | 0x4/* GRND_INSECURE */) != 0 {
        return Err(Errno(EINVAL));
    }
    let dest = GuestRange::<Out>::new(c.args[0], c.args[1]).prefix(MAX_COPY);
    c.mem.check_writable(dest)?;
    let mut buf = vec![0u8; dest.len() as usize];
    let n = sys::getrandom(&mut buf, flags)?;
    c.mem.write(dest, buf.get(..n).unwrap_or_default())?;
    Ok(n as i64)
}

/// umask(2): each process's umask lives in the servicer and is applied to every mode it passes to
/// the host (whose own umask is 0 meanwhile).
pub(crate) fn umask<M: GuestMemoryBackend>(s: &Proc<'_>, c: &Call<'_, '_, M>) -> SysResult {
    let old = s.swap_umask((c.args[0] as u32) & 0o777);
    Ok(i64::from(old))
}
