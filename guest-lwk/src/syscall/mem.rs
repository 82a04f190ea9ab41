//! Memory syscalls on anonymous memory: argument checks and errnos in the order Linux makes them
//! (mm/mmap.c, mm/mremap.c, mm/mprotect.c, mm/madvise.c, mm/mlock.c, mm/msync.c, mm/mincore.c);
//! the work is done by the process's memory manager (`vm`). File mappings (MAP_PRIVATE, and
//! MAP_SHARED without PROT_WRITE) are filled from the file when they are made, read-only ones
//! from the page cache (see docs/DESIGN.md "File mappings" and "The page cache").

use super::put_user;
use crate::Kernel;
use crate::bridge;
use crate::mm::{GIGA, HUGE, PAGE, align_up};
use crate::vm::{self, MapRequest, Place, TASK_SIZE};
use crate::vma::{kind, prot};
use offload_abi::errno::{EBADF, EFAULT, EINVAL, ENODEV, ENOMEM, EPERM};
use offload_abi::syscalls::nr;

const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_TYPE: u64 = 0x0f;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_32BIT: u64 = 0x40;
const MAP_GROWSDOWN: u64 = 0x100;
const MAP_LOCKED: u64 = 0x2000;
const MAP_NORESERVE: u64 = 0x4000;
const MAP_POPULATE: u64 = 0x8000;
const MAP_NONBLOCK: u64 = 0x1_0000;
const MAP_HUGETLB: u64 = 0x4_0000;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MAP_HUGE_SHIFT: u64 = 26;
const MAP_HUGE_MASK: u64 = 0x3f;

const PROT_SEM: u32 = 0x8;
const PROT_GROWSDOWN: u32 = 0x0100_0000;
const PROT_GROWSUP: u32 = 0x0200_0000;

/// `len` rounded up to pages; `None` if that overflows to 0.
fn page_align(len: u64) -> Option<u64> {
    let l = len.wrapping_add(PAGE - 1) & !(PAGE - 1);
    (l != 0 || len == 0).then_some(l)
}

fn ret(r: Result<u64, i64>) -> i64 {
    match r {
        Ok(v) => v as i64,
        Err(e) => e,
    }
}

/// brk(2)
pub fn brk(k: &mut Kernel, a: [u64; 6]) -> i64 {
    vm::timed(|| k.mms[crate::process::cur_mm()].brk(k.frames, a[0]) as i64)
}

/// mmap(2): anonymous mappings (private or shared) and file mappings (filled from the file).
pub fn mmap(k: &mut Kernel, a: [u64; 6]) -> i64 {
    vm::timed(|| ret(mmap_inner(k, a)))
}

fn mmap_inner(k: &mut Kernel, a: [u64; 6]) -> Result<u64, i64> {
    let (addr, len, p, flags, fd, off) = (a[0], a[1], a[2] as u32, a[3] as u32 as u64, a[4], a[5]);
    if off & (PAGE - 1) != 0 {
        return Err(-EINVAL);
    }
    let file = if flags & MAP_ANONYMOUS == 0 {
        if (fd as i32) < 0 {
            return Err(-EBADF);
        }
        let file = crate::pagecache::File::new(k.frames, fd as i32 as i64, k.clock.realtime_ns());
        check_mappable(&file, off, flags, p)?;
        Some(file)
    } else {
        None
    };
    let mut len = len;
    let mut align = PAGE;
    if flags & MAP_HUGETLB != 0 {
        align = match (flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK {
            0 | 21 => HUGE,
            30 => GIGA,
            _ => return Err(-EINVAL),
        };
        len = len.checked_add(align - 1).ok_or(-ENOMEM)? & !(align - 1);
    }
    if len == 0 {
        return Err(-EINVAL);
    }
    let len = page_align(len).ok_or(-ENOMEM)?;
    if len > TASK_SIZE - vm::MMAP_MIN {
        return Err(-ENOMEM);
    }
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    if fixed {
        if addr > TASK_SIZE - len {
            return Err(-ENOMEM);
        }
        if addr & (align - 1) != 0 {
            return Err(-EINVAL);
        }
        if addr < vm::MMAP_MIN {
            return Err(-EPERM);
        }
    }
    let mut k_bits = 0;
    match flags & MAP_TYPE {
        MAP_SHARED => {
            if flags & MAP_GROWSDOWN != 0 {
                return Err(-EINVAL);
            }
            k_bits |= kind::SHARED;
        }
        MAP_PRIVATE => {}
        _ => return Err(-EINVAL),
    }
    if flags & MAP_GROWSDOWN != 0 {
        k_bits |= kind::GROWSDOWN;
    }
    if flags & MAP_NORESERVE != 0 {
        k_bits |= kind::NORESERVE;
    }
    if flags & MAP_LOCKED != 0 {
        k_bits |= kind::LOCKED;
    }
    let place = if flags & MAP_FIXED_NOREPLACE != 0 {
        Place::NoReplace(addr)
    } else if flags & MAP_FIXED != 0 {
        Place::Fixed(addr)
    } else if flags & MAP_32BIT != 0 {
        Place::Low32
    } else {
        Place::Hint(addr)
    };
    let populate =
        flags & MAP_LOCKED != 0 || (flags & MAP_POPULATE != 0 && flags & MAP_NONBLOCK == 0);
    let mut request = MapRequest {
        place,
        len,
        prot: p & prot::MASK,
        kind: k_bits,
        populate,
        align,
    };
    let mm = &mut k.mms[crate::process::cur_mm()];
    let Some(file) = file else {
        return mm.map_anon(k.frames, request);
    };
    // A private copy, or the page cache's frames where read-only: sharing with the file is not
    // kept (read-only MAP_SHARED reads the same bytes; writable MAP_SHARED was refused above).
    request.kind = (request.kind & !kind::SHARED) | kind::FILE;
    mm.map_file(k.frames, request, &file, off, len)
}

/// Whether `file` can back a file mapping at `off`, checked before anything is mapped (a
/// failed MAP_FIXED must not have replaced the old mapping): a readable file that supports
/// pread. The `fstat` that described it for the page cache also tells an fd that is not open
/// (EBADF).
fn check_mappable(file: &crate::pagecache::File, off: u64, flags: u64, p: u32) -> Result<(), i64> {
    if file.size().is_none() {
        return Err(-EBADF);
    }
    let fd = file.fd;
    if flags & MAP_TYPE == MAP_SHARED && p & prot::WRITE != 0 {
        // Writes through a shared mapping would have to reach the file: not supported.
        return Err(-ENODEV);
    }
    // A zero-length pread tells readable regular files (0) from write-only fds (EBADF), pipes
    // and sockets (ESPIPE) and directories (EISDIR), without moving any file offset.
    let mut probe = 0u8;
    let r = bridge::kernel_syscall(
        nr::pread64,
        [
            fd as u64,
            core::ptr::addr_of_mut!(probe) as u64,
            0,
            off,
            0,
            0,
        ],
    );
    if r < 0 {
        return Err(crate::pagecache::read_errno(r));
    }
    Ok(())
}

/// munmap(2)
pub fn munmap(k: &mut Kernel, a: [u64; 6]) -> i64 {
    vm::timed(|| {
        let (start, len) = (a[0], a[1]);
        if start & (PAGE - 1) != 0 || start > TASK_SIZE || len > TASK_SIZE - start {
            return -EINVAL;
        }
        let len = align_up(len, PAGE);
        if len == 0 {
            return -EINVAL;
        }
        ret(k.mms[crate::process::cur_mm()]
            .unmap(k.frames, start, start + len)
            .map(|()| 0))
    })
}

/// mprotect(2): permissions are enforced in the page tables.
pub fn mprotect(k: &mut Kernel, a: [u64; 6]) -> i64 {
    vm::timed(|| {
        let (mut start, len, mut p) = (a[0], a[1], a[2] as u32);
        let grows = p & (PROT_GROWSDOWN | PROT_GROWSUP);
        p &= !(PROT_GROWSDOWN | PROT_GROWSUP);
        if grows == PROT_GROWSDOWN | PROT_GROWSUP {
            return -EINVAL;
        }
        if start & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        if len == 0 {
            return 0;
        }
        let Some(len) = page_align(len) else {
            return -ENOMEM;
        };
        let Some(end) = start.checked_add(len) else {
            return -ENOMEM;
        };
        if p & !(prot::MASK | PROT_SEM) != 0 {
            return -EINVAL;
        }
        let mm = &mut k.mms[crate::process::cur_mm()];
        if grows == PROT_GROWSDOWN {
            let Some(v) = mm.first_area(start, end) else {
                return -ENOMEM;
            };
            if v.kind & kind::GROWSDOWN == 0 {
                return -EINVAL;
            }
            start = v.start;
        } else if grows == PROT_GROWSUP {
            return if mm.area(start).is_some() {
                -EINVAL
            } else {
                -ENOMEM
            };
        }
        ret(mm.protect(k.frames, start, end, p & prot::MASK).map(|()| 0))
    })
}

const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const MREMAP_DONTUNMAP: u64 = 4;

/// mremap(2): grow (in place or moving), shrink, MREMAP_FIXED, MREMAP_DONTUNMAP. Pages move
/// with their frames (no copying); 2 MiB pages stay 2 MiB pages.
pub fn mremap(k: &mut Kernel, a: [u64; 6]) -> i64 {
    vm::timed(|| {
        let (old, old_len, new_len, flags, new_addr) = (a[0], a[1], a[2], a[3], a[4]);
        if flags & !(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP) != 0 {
            return -EINVAL;
        }
        let may_move = flags & MREMAP_MAYMOVE != 0;
        if flags & MREMAP_FIXED != 0 && !may_move {
            return -EINVAL;
        }
        let dont_unmap = flags & MREMAP_DONTUNMAP != 0;
        if dont_unmap && (!may_move || old_len != new_len) {
            return -EINVAL;
        }
        if old & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        let old_len = align_up(old_len, PAGE);
        let new_len = align_up(new_len, PAGE);
        if new_len == 0 || old.checked_add(old_len).is_none_or(|e| e > TASK_SIZE) {
            return -EINVAL;
        }
        let fixed = (flags & MREMAP_FIXED != 0).then_some(new_addr);
        ret(k.mms[crate::process::cur_mm()]
            .remap(k.frames, old, old_len, new_len, may_move, fixed, dont_unmap))
    })
}

const MADV_DONTNEED: i32 = 4;
const MADV_FREE: i32 = 8;
const MADV_REMOVE: i32 = 9;
const MADV_COLD: i32 = 20;
const MADV_PAGEOUT: i32 = 21;
const MADV_WIPEONFORK: i32 = 18;
const MADV_POPULATE_READ: i32 = 22;
const MADV_POPULATE_WRITE: i32 = 23;
const MADV_DONTNEED_LOCKED: i32 = 24;
const MADV_HWPOISON: i32 = 100;
const MADV_SOFT_OFFLINE: i32 = 101;

/// madvise(2): MADV_DONTNEED (private memory) and REMOVE (shared memory) make the range read
/// zero; the populate advice maps it; every other advice Linux 6.1 knows is accepted (memory
/// is resident and never swapped) with Linux's checks of the areas.
pub fn madvise(k: &mut Kernel, a: [u64; 6]) -> i64 {
    vm::timed(|| {
        let (start, len_in, advice) = (a[0], a[1], a[2] as i32);
        let valid = matches!(advice, 0..=4 | 8..=25 | MADV_HWPOISON | MADV_SOFT_OFFLINE);
        if !valid {
            return -EINVAL;
        }
        if start & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        let Some(len) = page_align(len_in) else {
            return -EINVAL;
        };
        let Some(end) = start.checked_add(len) else {
            return -EINVAL;
        };
        if end == start {
            return 0;
        }
        if matches!(advice, MADV_HWPOISON | MADV_SOFT_OFFLINE) {
            return -EPERM;
        }
        let mm = &mut k.mms[crate::process::cur_mm()];
        let frames = &mut *k.frames;
        let r = match advice {
            MADV_DONTNEED | MADV_DONTNEED_LOCKED => {
                mm.discard(frames, start, end, advice == MADV_DONTNEED_LOCKED, false)
            }
            MADV_REMOVE => {
                if area_check(mm, start, end, |v| v.kind & kind::SHARED == 0) {
                    Err(-EINVAL)
                } else {
                    mm.discard(frames, start, end, false, true)
                }
            }
            MADV_FREE | MADV_COLD | MADV_PAGEOUT | MADV_WIPEONFORK => {
                let bad = |v: crate::vma::Vma| match advice {
                    MADV_FREE | MADV_WIPEONFORK => v.kind & (kind::LOCKED | kind::SHARED) != 0,
                    _ => v.kind & kind::LOCKED != 0,
                };
                if area_check(mm, start, end, bad) {
                    Err(-EINVAL)
                } else if mm.covered(start, end) {
                    Ok(())
                } else {
                    Err(-ENOMEM)
                }
            }
            MADV_POPULATE_READ | MADV_POPULATE_WRITE => {
                let write = advice == MADV_POPULATE_WRITE;
                let denied =
                    |v: crate::vma::Vma| v.prot == 0 || (write && v.prot & prot::WRITE == 0);
                if !mm.covered(start, end) {
                    Err(-ENOMEM)
                } else if area_check(mm, start, end, denied) {
                    Err(-EINVAL)
                } else {
                    mm.populate(frames, start, end)
                }
            }
            _ => {
                if mm.covered(start, end) {
                    Ok(())
                } else {
                    Err(-ENOMEM)
                }
            }
        };
        ret(r.map(|()| 0))
    })
}

/// Whether any area in `[start, end)` satisfies `bad`.
fn area_check(
    mm: &vm::Mm,
    start: u64,
    end: u64,
    mut bad: impl FnMut(crate::vma::Vma) -> bool,
) -> bool {
    let mut cur = start;
    while cur < end {
        match mm.area(cur) {
            Some(v) => {
                if bad(v) {
                    return true;
                }
                cur = v.end;
            }
            None => cur += PAGE,
        }
    }
    false
}

/// The page range mlock-style calls cover: `addr` rounded down, `len` extended to match.
fn lock_range(addr: u64, len: u64) -> Result<(u64, u64), i64> {
    let start = addr & !(PAGE - 1);
    let len = len
        .checked_add(addr & (PAGE - 1))
        .and_then(page_align)
        .ok_or(-EINVAL)?;
    let end = start.checked_add(len).ok_or(-EINVAL)?;
    Ok((start, end))
}

fn lock(k: &mut Kernel, addr: u64, len: u64, on: bool) -> i64 {
    let (start, end) = match lock_range(addr, len) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if start == end {
        return 0;
    }
    ret(k.mms[crate::process::cur_mm()]
        .lock(k.frames, start, end, on)
        .map(|()| 0))
}

/// mlock(2): succeeds on mapped memory (it is resident: mapped now if it was not yet).
pub fn mlock(k: &mut Kernel, a: [u64; 6]) -> i64 {
    vm::timed(|| lock(k, a[0], a[1], true))
}

/// mlock2(2): as mlock; MLOCK_ONFAULT is accepted.
pub fn mlock2(k: &mut Kernel, a: [u64; 6]) -> i64 {
    const MLOCK_ONFAULT: u64 = 1;
    vm::timed(|| {
        if a[2] as u32 as u64 & !MLOCK_ONFAULT != 0 {
            return -EINVAL;
        }
        lock(k, a[0], a[1], true)
    })
}

/// munlock(2)
pub fn munlock(k: &mut Kernel, a: [u64; 6]) -> i64 {
    vm::timed(|| lock(k, a[0], a[1], false))
}

/// mlockall(2): MCL_CURRENT maps everything now, MCL_FUTURE maps new memory when granted.
pub fn mlockall(k: &mut Kernel, a: [u64; 6]) -> i64 {
    const MCL_CURRENT: u64 = 1;
    const MCL_FUTURE: u64 = 2;
    const MCL_ONFAULT: u64 = 4;
    vm::timed(|| {
        let flags = a[0] as u32 as u64;
        if flags == 0
            || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0
            || flags == MCL_ONFAULT
        {
            return -EINVAL;
        }
        ret(k.mms[crate::process::cur_mm()]
            .lock_all(k.frames, flags & MCL_CURRENT != 0, flags & MCL_FUTURE != 0)
            .map(|()| 0))
    })
}

/// munlockall(2)
pub fn munlockall(k: &mut Kernel, _a: [u64; 6]) -> i64 {
    vm::timed(|| {
        k.mms[crate::process::cur_mm()].unlock_all();
        0
    })
}

/// msync(2): anonymous memory has nothing to write back.
pub fn msync(k: &mut Kernel, a: [u64; 6]) -> i64 {
    const MS_ASYNC: u64 = 1;
    const MS_INVALIDATE: u64 = 2;
    const MS_SYNC: u64 = 4;
    vm::timed(|| {
        let (start, len, flags) = (a[0], a[1], a[2] as u32 as u64);
        if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 || start & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        if flags & MS_ASYNC != 0 && flags & MS_SYNC != 0 {
            return -EINVAL;
        }
        let Some(end) = page_align(len).and_then(|l| start.checked_add(l)) else {
            return -ENOMEM;
        };
        if end == start {
            return 0;
        }
        ret(k.mms[crate::process::cur_mm()]
            .sync(k.frames, start, end, flags & MS_INVALIDATE != 0)
            .map(|()| 0))
    })
}

/// mincore(2): a page is resident when it is mapped (everything granted, when pre-faulting).
pub fn mincore(k: &mut Kernel, a: [u64; 6]) -> i64 {
    vm::timed(|| {
        let (start, len, vec) = (a[0], a[1], a[2]);
        if start & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        if start.checked_add(len).is_none_or(|e| e > TASK_SIZE) {
            return -ENOMEM;
        }
        let pages = len.div_ceil(PAGE);
        if vec.checked_add(pages).is_none_or(|e| e > TASK_SIZE) {
            return -EFAULT;
        }
        let mut buf = [0u8; 256];
        let mut done = 0u64;
        while done < pages {
            let n = (pages - done).min(buf.len() as u64);
            for (i, b) in buf.iter_mut().take(n as usize).enumerate() {
                let va = start + (done + i as u64) * PAGE;
                if k.mms[crate::process::cur_mm()].area(va).is_none() {
                    // Linux reports what it got so far through vec, then ENOMEM.
                    if i > 0
                        && let Err(e) = put_user(k, vec + done, &buf[..i])
                    {
                        return e;
                    }
                    return -ENOMEM;
                }
                *b = u8::from(k.mms[crate::process::cur_mm()].aspace.has_frame(va));
            }
            if let Err(e) = put_user(k, vec + done, &buf[..n as usize]) {
                return e;
            }
            done += n;
        }
        0
    })
}
