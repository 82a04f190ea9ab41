//! Physical frames, page tables and checked access to user memory.
//!
//! Frames come from a bump allocator over the boot memory map. Guest RAM starts zeroed (the
//! VMM maps fresh anonymous memory), and the allocator never hands out a frame twice, so every
//! frame it returns reads zero without the kernel zeroing anything in ring 0 (emulated, slow on
//! the development KVM). Freed frames are not reused yet: reuse needs host-side zeroing, which
//! comes with the full memory manager (issue #4).
//!
//! Page-table walks are written as tight loops: on the development KVM each ring-0 instruction
//! costs ~0.5 us.

use crate::phys;
use offload_abi::{BootInfo, mem_kind};

pub const PAGE: u64 = 4096;
pub const HUGE: u64 = 2 * 1024 * 1024;

/// Page-table entry bits.
pub mod pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const HUGE: u64 = 1 << 7;
    /// Software bit: the entry holds a frame but the page is PROT_NONE (not present).
    pub const RESERVED: u64 = 1 << 9;
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// Physical address bits of a 4 KiB entry.
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
    /// Physical address bits of a 2 MiB entry.
    pub const ADDR_2M: u64 = 0x000f_ffff_ffe0_0000;
    /// Flags of intermediate tables: everything is decided at the leaf.
    pub const TABLE: u64 = PRESENT | WRITABLE | USER;
}

#[derive(Clone, Copy, Default)]
struct Region {
    next: u64,
    end: u64,
}

/// Bump allocator of zeroed frames.
pub struct Frames {
    regions: [Region; offload_abi::MAX_MEM_REGIONS],
    count: usize,
    current: usize,
}

impl Frames {
    /// Takes the usable regions of the boot memory map.
    pub fn new(info: &BootInfo) -> Self {
        let mut frames = Frames {
            regions: [Region::default(); offload_abi::MAX_MEM_REGIONS],
            count: 0,
            current: 0,
        };
        let n = (info.nr_regions as usize).min(offload_abi::MAX_MEM_REGIONS);
        for r in info.regions.iter().take(n) {
            if r.kind != mem_kind::USABLE {
                continue;
            }
            let start = align_up(r.base, PAGE);
            let end = r.base.saturating_add(r.len) & !(PAGE - 1);
            if start < end && start < info.mem_size && end <= info.mem_size {
                frames.regions[frames.count] = Region { next: start, end };
                frames.count += 1;
            }
        }
        frames
    }

    /// `pages` physically contiguous zeroed frames aligned to `align`, or `None` when memory is
    /// exhausted.
    pub fn alloc_aligned(&mut self, pages: u64, align: u64) -> Option<u64> {
        let bytes = pages.checked_mul(PAGE)?;
        while self.current < self.count {
            let r = &mut self.regions[self.current];
            let start = align_up(r.next, align);
            if let Some(end) = start.checked_add(bytes)
                && end <= r.end
            {
                r.next = end;
                return Some(start);
            }
            if bytes <= HUGE {
                // A small request that does not fit: this region is (nearly) used up.
                self.current += 1;
            } else {
                return self.alloc_from_later(bytes, align);
            }
        }
        None
    }

    fn alloc_from_later(&mut self, bytes: u64, align: u64) -> Option<u64> {
        for r in self.regions[self.current..self.count].iter_mut() {
            let start = align_up(r.next, align);
            if let Some(end) = start.checked_add(bytes)
                && end <= r.end
            {
                r.next = end;
                return Some(start);
            }
        }
        None
    }

    /// `pages` contiguous zeroed 4 KiB frames.
    pub fn alloc(&mut self, pages: u64) -> Option<u64> {
        self.alloc_aligned(pages, PAGE)
    }

    /// Bytes still available.
    pub fn free_bytes(&self) -> u64 {
        self.regions[self.current.min(self.count)..self.count]
            .iter()
            .map(|r| r.end - r.next)
            .sum()
    }
}

#[inline]
pub const fn align_up(v: u64, align: u64) -> u64 {
    (v.wrapping_add(align - 1)) & !(align - 1)
}

/// Error of a mapping operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Out of physical memory.
    NoMemory,
    /// The range collides with a 2 MiB mapping that cannot be split here.
    HugeConflict,
}

#[inline]
fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level)) & 511
}

/// One address space: a PML4 whose upper half is the kernel's.
pub struct AddressSpace {
    /// Guest-physical address of the PML4 (the CR3 value).
    pub pml4: u64,
}

impl AddressSpace {
    /// Address of the entry for `va` at index level `stop` (0 = PT entry, 1 = PD entry),
    /// creating missing tables above it.
    fn table_entry(&self, frames: &mut Frames, va: u64, stop: u32) -> Result<u64, MapError> {
        let mut table = self.pml4;
        let mut level = 3;
        loop {
            let entry_pa = table + index(va, level) * 8;
            if level == stop {
                return Ok(entry_pa);
            }
            let mut e = phys::read_u64(entry_pa);
            if e & pte::PRESENT == 0 {
                let new = frames.alloc(1).ok_or(MapError::NoMemory)?;
                e = new | pte::TABLE;
                phys::write_u64(entry_pa, e);
            } else if e & pte::HUGE != 0 {
                return Err(MapError::HugeConflict);
            }
            table = e & pte::ADDR;
            level -= 1;
        }
    }

    /// Maps `pages` 4 KiB pages at `va` to consecutive frames from `pa`, replacing whatever
    /// was mapped there (the caller invalidates the TLB where it replaced present pages).
    pub fn map_4k(
        &self,
        frames: &mut Frames,
        va: u64,
        pa: u64,
        pages: u64,
        flags: u64,
    ) -> Result<(), MapError> {
        let mut va = va;
        let mut pa = pa;
        let mut left = pages;
        while left > 0 {
            let entry = self.table_entry(frames, va, 0)?;
            let in_table = 512 - index(va, 0);
            let n = in_table.min(left);
            phys::fill_u64_run(entry, n, pa | flags, PAGE);
            pa += n * PAGE;
            va += n * PAGE;
            left -= n;
        }
        Ok(())
    }

    /// Maps one 2 MiB page at `va` (2 MiB aligned) to `pa` (2 MiB aligned).
    pub fn map_2m(
        &self,
        frames: &mut Frames,
        va: u64,
        pa: u64,
        flags: u64,
    ) -> Result<(), MapError> {
        let entry = self.table_entry(frames, va, 1)?;
        let old = phys::read_u64(entry);
        if old & pte::PRESENT != 0 && old & pte::HUGE == 0 {
            return Err(MapError::HugeConflict);
        }
        phys::write_u64(entry, pa | flags | pte::HUGE);
        Ok(())
    }

    /// The leaf entry mapping `va`: `(entry address, entry, page size)`, if any table down to
    /// the leaf exists.
    pub fn leaf(&self, va: u64) -> Option<(u64, u64, u64)> {
        let mut table = self.pml4;
        let mut level = 4;
        loop {
            let entry_pa = table + index(va, level - 1) * 8;
            let e = phys::read_u64(entry_pa);
            if level == 1 {
                return Some((entry_pa, e, PAGE));
            }
            if e & pte::PRESENT == 0 {
                return None;
            }
            if level == 2 && e & pte::HUGE != 0 {
                return Some((entry_pa, e, HUGE));
            }
            if level == 3 && e & pte::HUGE != 0 {
                return None;
            }
            table = e & pte::ADDR;
            level -= 1;
        }
    }

    /// Guest-physical address behind user address `va` if the page is present, user-accessible
    /// and (for `write`) writable.
    pub fn user_phys(&self, va: u64, write: bool) -> Option<u64> {
        if va >= offload_abi::layout::USER_END {
            return None;
        }
        let (_, e, size) = self.leaf(va)?;
        let need = pte::PRESENT | pte::USER | if write { pte::WRITABLE } else { 0 };
        if e & need != need {
            return None;
        }
        let base = if size == HUGE {
            e & pte::ADDR_2M
        } else {
            e & pte::ADDR
        };
        Some(base + (va & (size - 1)))
    }

    /// Copies `data` to user memory at `va`; `Err(())` (EFAULT) if any byte is not mapped
    /// user-writable. Nothing is written unless the whole range is valid.
    pub fn copy_to_user(&self, va: u64, data: &[u8]) -> Result<(), ()> {
        self.check_user(va, data.len() as u64, true)?;
        let mut done = 0usize;
        while done < data.len() {
            let cur = va + done as u64;
            let pa = self.user_phys(cur, true).ok_or(())?;
            let in_page = (PAGE - (cur & (PAGE - 1))) as usize;
            let n = in_page.min(data.len() - done);
            phys::write_bytes(pa, &data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Copies user memory at `va` into `out`; `Err(())` (EFAULT) if any byte is not mapped
    /// user-readable.
    pub fn copy_from_user(&self, va: u64, out: &mut [u8]) -> Result<(), ()> {
        let mut done = 0usize;
        while done < out.len() {
            let cur = va.checked_add(done as u64).ok_or(())?;
            let pa = self.user_phys(cur, false).ok_or(())?;
            let in_page = (PAGE - (cur & (PAGE - 1))) as usize;
            let n = in_page.min(out.len() - done);
            phys::read_bytes(pa, &mut out[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn check_user(&self, va: u64, len: u64, write: bool) -> Result<(), ()> {
        if len == 0 {
            return Ok(());
        }
        let end = va.checked_add(len).ok_or(())?;
        let mut page = va & !(PAGE - 1);
        while page < end {
            self.user_phys(page, write).ok_or(())?;
            page += PAGE;
        }
        Ok(())
    }

    /// Applies `f` to every 4 KiB leaf entry in `[start, end)` that holds a frame (present or
    /// PROT_NONE); returns false if a page in the range holds none or is a 2 MiB page that the
    /// range covers only partly.
    pub fn update_range(&self, start: u64, end: u64, mut f: impl FnMut(u64) -> u64) -> bool {
        let mut va = start;
        let mut all = true;
        while va < end {
            match self.leaf(va) {
                Some((entry, e, size)) if e & (pte::PRESENT | pte::RESERVED) != 0 => {
                    if size == HUGE && (va & (HUGE - 1) != 0 || end - va < HUGE) {
                        all = false;
                        va = (va & !(HUGE - 1)) + HUGE;
                        continue;
                    }
                    let new = f(e);
                    if new != e {
                        phys::write_u64(entry, new);
                        crate::arch::invlpg(va);
                    }
                    va += size;
                }
                _ => {
                    all = false;
                    va += PAGE;
                }
            }
        }
        all
    }
}
