//! Anonymous memory: brk, mmap, munmap, mprotect, madvise. Memory is mapped (pre-faulted) when
//! it is granted and comes from frames that read zero. The full memory manager (VMAs, frame
//! reuse with host-side zeroing, large pages for the heap) is issue #4.

use crate::Kernel;
use crate::mm::{PAGE, align_up, pte};
use offload_abi::errno::{EEXIST, EINVAL, ENODEV, ENOMEM};
use offload_abi::layout;

const PROT_READ: u64 = 1;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_TYPE: u64 = 0x0f;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MADV_DONTNEED: i32 = 4;
const MADV_FREE: i32 = 8;

/// Leaf flags for `prot`.
fn leaf_flags(prot: u64) -> u64 {
    if prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 {
        return pte::RESERVED | pte::USER;
    }
    let mut f = pte::PRESENT | pte::USER;
    if prot & PROT_WRITE != 0 {
        f |= pte::WRITABLE;
    }
    if prot & PROT_EXEC == 0 {
        f |= pte::NO_EXECUTE;
    }
    f
}

/// Maps `len` bytes (page multiple) of fresh zeroed memory at `va`.
fn map_fresh(k: &mut Kernel, va: u64, len: u64, flags: u64) -> Result<(), i64> {
    let pages = len / PAGE;
    let pa = k.frames.alloc(pages).ok_or(-ENOMEM)?;
    k.aspace
        .map_4k(&mut k.frames, va, pa, pages, flags)
        .map_err(|_| -ENOMEM)
}

fn unmap(k: &mut Kernel, start: u64, end: u64) {
    k.aspace.update_range(start, end, |_| 0);
}

/// brk(2)
pub fn brk(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let p = &k.process;
    let addr = a[0];
    if addr < p.brk_start {
        return p.brk as i64;
    }
    let new_end = align_up(addr, PAGE);
    if new_end > p.mmap_floor || new_end < addr {
        return p.brk as i64;
    }
    let mapped = p.brk_mapped;
    if new_end > mapped {
        let flags = pte::PRESENT | pte::WRITABLE | pte::USER | pte::NO_EXECUTE;
        if map_fresh(k, mapped, new_end - mapped, flags).is_err() {
            return k.process.brk as i64;
        }
    } else if new_end < mapped {
        unmap(k, new_end, mapped);
    }
    k.process.brk_mapped = new_end;
    k.process.brk = addr;
    addr as i64
}

/// mmap(2), anonymous mappings. File mappings come with issue #9 (ENODEV until then).
pub fn mmap(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let (addr, len, prot, flags) = (a[0], a[1], a[2] as u32 as u64, a[3] as u32 as u64);
    if len == 0 {
        return -EINVAL;
    }
    let Some(len) = len.checked_add(PAGE - 1).map(|l| l & !(PAGE - 1)) else {
        return -ENOMEM;
    };
    if !matches!(
        flags & MAP_TYPE,
        MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE
    ) {
        return -EINVAL;
    }
    if flags & MAP_ANONYMOUS == 0 {
        return -ENODEV;
    }
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    let va = if fixed {
        if addr & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        match addr.checked_add(len) {
            Some(end) if end <= layout::USER_END && addr >= PAGE => {}
            _ => return -ENOMEM,
        }
        if flags & MAP_FIXED == 0 {
            let mut page = addr;
            while page < addr + len {
                if matches!(k.aspace.leaf(page), Some((_, e, _)) if e & (pte::PRESENT | pte::RESERVED) != 0)
                {
                    return -EEXIST;
                }
                page += PAGE;
            }
        } else {
            unmap(k, addr, addr + len);
        }
        addr
    } else {
        let p = &mut k.process;
        match p.mmap_next.checked_sub(len) {
            Some(va) if va >= p.mmap_floor => {
                p.mmap_next = va;
                va
            }
            _ => return -ENOMEM,
        }
    };
    match map_fresh(k, va, len, leaf_flags(prot)) {
        Ok(()) => va as i64,
        Err(e) => e,
    }
}

fn checked_range(addr: u64, len: u64) -> Result<(u64, u64), i64> {
    if addr & (PAGE - 1) != 0 {
        return Err(-EINVAL);
    }
    let end = addr
        .checked_add(len)
        .map(|e| align_up(e, PAGE))
        .ok_or(-EINVAL)?;
    if end > layout::USER_END || end < addr {
        return Err(-EINVAL);
    }
    Ok((addr, end))
}

/// munmap(2)
pub fn munmap(k: &mut Kernel, a: [u64; 6]) -> i64 {
    if a[1] == 0 {
        return -EINVAL;
    }
    match checked_range(a[0], a[1]) {
        Ok((start, end)) => {
            unmap(k, start, end);
            0
        }
        Err(e) => e,
    }
}

/// mprotect(2): permissions are enforced in the page tables.
pub fn mprotect(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let (start, end) = match checked_range(a[0], a[1]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let prot = a[2] as u32 as u64;
    if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | 0x0100_0000 | 0x0200_0000) != 0 {
        return -EINVAL;
    }
    let flags = leaf_flags(prot);
    if k.aspace
        .update_range(start, end, |e| (e & (pte::ADDR | pte::HUGE)) | flags)
    {
        0
    } else {
        -ENOMEM
    }
}

/// madvise(2): DONTNEED/FREE replace the pages with fresh zeroed ones; other advice is
/// accepted as Linux does (memory is resident and not swapped).
pub fn madvise(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let (start, end) = match checked_range(a[0], a[1]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let advice = a[2] as i32;
    if advice != MADV_DONTNEED && advice != MADV_FREE {
        return 0;
    }
    let frames = &mut k.frames;
    let mut failed = false;
    k.aspace.update_range(start, end, |e| {
        if e & pte::PRESENT == 0 || e & pte::HUGE != 0 {
            // Not present, or part of the stack's 2 MiB pages: left as it is.
            return e;
        }
        match frames.alloc(1) {
            Some(fresh) => fresh | (e & !pte::ADDR),
            None => {
                failed = true;
                e
            }
        }
    });
    if failed { -ENOMEM } else { 0 }
}
