//! Page tables of one address space and checked access to user memory.
//!
//! Everything here is written as runs over page-table entries (`phys::fill_u64_run`,
//! `scan_u64`, `update_u64_run`: one range check, a few instructions per entry), and prefers
//! the largest page the alignment allows (1 GiB where the CPU takes it, else 2 MiB, else 4 KiB):
//! on the development KVM each ring-0 instruction costs ~0.5-1.5 us, and large pages mean fewer
//! entries to write as well as fewer TLB misses for the program.
//!
//! Leaf entries that hold a frame are either present or carry the software bit
//! [`pte::RESERVED`] (PROT_NONE: not present to the CPU, but the frame and its contents stay).

use crate::frames::Frames;
use crate::{arch, phys, tlb};
use core::cell::Cell;

pub use crate::frames::{PAGE, align_up};

/// 2 MiB.
pub const HUGE: u64 = 2 * 1024 * 1024;
/// 1 GiB.
pub const GIGA: u64 = 1024 * 1024 * 1024;

/// Page-table entry bits.
pub mod pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    /// Set by the CPU on access / write: never part of what the LWK compares.
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    /// Page size (1 GiB / 2 MiB leaf) in PDPT and PD entries.
    pub const HUGE: u64 = 1 << 7;
    /// Software bit: the entry holds a frame but the page is PROT_NONE (not present).
    pub const RESERVED: u64 = 1 << 9;
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// Physical address bits of a 4 KiB entry (and of table pointers).
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
    /// Physical address bits of a 2 MiB entry.
    pub const ADDR_2M: u64 = 0x000f_ffff_ffe0_0000;
    /// Physical address bits of a 1 GiB entry.
    pub const ADDR_1G: u64 = 0x000f_ffff_c000_0000;
    /// Flag bits of a leaf (everything but the address).
    pub const FLAGS: u64 = !ADDR;
    /// The entry holds a frame (present, or PROT_NONE).
    pub const HOLDS: u64 = PRESENT | RESERVED;
    /// Flags of intermediate tables: everything is decided at the leaf.
    pub const TABLE: u64 = PRESENT | WRITABLE | USER;
}

/// Error of a mapping operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Out of physical memory.
    NoMemory,
}

#[inline]
fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level)) & 511
}

#[inline]
fn size_of_level(level: u32) -> u64 {
    1 << (12 + 9 * level)
}

/// Whether `e` is a huge leaf (at PDPT/PD level) that holds a frame.
#[inline]
fn is_huge_leaf(e: u64) -> bool {
    e & pte::HOLDS != 0 && e & pte::HUGE != 0
}

/// What sits at one place of the walk.
enum Slot {
    /// Nothing mapped in the naturally aligned block of `size` around the address.
    Hole { size: u64 },
    /// A 1 GiB or 2 MiB leaf: its entry's address, value and size.
    Huge { entry: u64, e: u64, size: u64 },
    /// A page table: the address of the 4 KiB entry for the address, and of the PD entry
    /// pointing to the table.
    Table { pte: u64, pde: u64 },
}

/// Physically contiguous runs of frames, so that freeing or zeroing costs per run, not per
/// page.
struct Runs {
    start: u64,
    len: u64,
}

impl Runs {
    const fn new() -> Self {
        Runs { start: 0, len: 0 }
    }

    /// Adds `[pa, pa + len)`; returns the previous run when this one does not continue it.
    #[inline]
    fn push(&mut self, pa: u64, len: u64) -> Option<(u64, u64)> {
        if self.len > 0 && self.start + self.len == pa {
            self.len += len;
            return None;
        }
        let done = self.finish();
        self.start = pa;
        self.len = len;
        done
    }

    fn finish(&mut self) -> Option<(u64, u64)> {
        let done = (self.len > 0).then_some((self.start, self.len));
        self.len = 0;
        done
    }
}

/// What [`AddressSpace::walk`] visits.
enum Leaf {
    /// A huge leaf entry: its address, value, the virtual base and size of the page.
    Huge {
        entry: u64,
        e: u64,
        base: u64,
        size: u64,
    },
    /// `n` consecutive 4 KiB entries from `pte` mapping from `va`, in the table `pde` points to.
    Ptes { pte: u64, pde: u64, va: u64, n: u64 },
}

/// TLB invalidation for an operation on `[start, end)`: per page for small ranges, one CR3
/// reload for large ones; then the other vCPUs (`tlb::shootdown`) when anything changed.
struct Flush {
    full: bool,
    needed: bool,
}

impl Flush {
    fn new(start: u64, end: u64) -> Self {
        Flush {
            full: end - start > 32 * PAGE,
            needed: false,
        }
    }

    #[inline]
    fn page(&mut self, va: u64) {
        self.needed = true;
        if !self.full {
            arch::invlpg(va);
        }
    }

    fn done(self) {
        if self.needed {
            if self.full {
                arch::flush_tlb();
            }
            tlb::shootdown();
        }
    }
}

/// How [`AddressSpace::fork_range`] gives the child a range.
#[derive(Clone, Copy)]
pub enum ForkCopy {
    /// The same frames, counted as held by one more address space (MAP_SHARED memory: the
    /// frames are freed when the last holder lets go; no room to count them is ENOMEM).
    Share,
    /// The same, or a copy when there is no room to count them (read-only private memory: a
    /// holder that makes it writable gets its own copy first).
    ShareOrCopy,
    /// Fresh frames, with the bytes from this address up copied.
    From(u64),
}

/// One address space: a PML4 whose upper half is the kernel's.
pub struct AddressSpace {
    /// Guest-physical address of the PML4 (the CR3 value).
    pub pml4: u64,
    /// The first user page a kernel copy found not present (for demand paging: the fault is
    /// served and the syscall repeated).
    missing: Cell<Option<(u64, bool)>>,
}

impl AddressSpace {
    /// The address space rooted at `pml4`.
    pub fn new(pml4: u64) -> Self {
        AddressSpace {
            pml4,
            missing: Cell::new(None),
        }
    }

    /// The entry for `va` at `level` (0 = PT, 1 = PD, 2 = PDPT), creating missing tables above
    /// it; `Ok(None)` if a huge leaf above that level already maps `va`.
    fn table_entry(
        &self,
        frames: &mut Frames,
        va: u64,
        level: u32,
    ) -> Result<Option<u64>, MapError> {
        let mut table = self.pml4;
        let mut l = 3;
        loop {
            let entry = table + index(va, l) * 8;
            if l == level {
                return Ok(Some(entry));
            }
            let mut e = phys::read_u64(entry);
            if e & pte::HOLDS == 0 {
                let new = frames.alloc_page().ok_or(MapError::NoMemory)?;
                e = new | pte::TABLE;
                phys::write_u64(entry, e);
            } else if e & pte::HUGE != 0 {
                return Ok(None);
            }
            table = e & pte::ADDR;
            l -= 1;
        }
    }

    fn slot(&self, va: u64) -> Slot {
        let e4 = phys::read_u64(self.pml4 + index(va, 3) * 8);
        if e4 & pte::PRESENT == 0 {
            return Slot::Hole { size: 1 << 39 };
        }
        let pdpte = (e4 & pte::ADDR) + index(va, 2) * 8;
        let e3 = phys::read_u64(pdpte);
        if e3 & pte::HOLDS == 0 {
            return Slot::Hole { size: GIGA };
        }
        if e3 & pte::HUGE != 0 {
            return Slot::Huge {
                entry: pdpte,
                e: e3,
                size: GIGA,
            };
        }
        let pde = (e3 & pte::ADDR) + index(va, 1) * 8;
        let e2 = phys::read_u64(pde);
        if e2 & pte::HOLDS == 0 {
            return Slot::Hole { size: HUGE };
        }
        if e2 & pte::HUGE != 0 {
            return Slot::Huge {
                entry: pde,
                e: e2,
                size: HUGE,
            };
        }
        Slot::Table {
            pte: (e2 & pte::ADDR) + index(va, 0) * 8,
            pde,
        }
    }

    /// Maps `pages` 4 KiB pages at `va` to consecutive frames from `pa`, replacing whatever
    /// 4 KiB entries were there (the caller invalidates the TLB where it replaced present
    /// pages). The range must not be covered by huge leaves.
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
            let Some(entry) = self.table_entry(frames, va, 0)? else {
                panic!("map_4k over a huge page at {va:#x}");
            };
            let n = (512 - index(va, 0)).min(left);
            phys::fill_u64_run(entry, n, pa | flags, PAGE);
            pa += n * PAGE;
            va += n * PAGE;
            left -= n;
        }
        Ok(())
    }

    /// Frees a page table that only holds empty entries (after a huge leaf replaced it).
    fn drop_empty_table(frames: &mut Frames, e: u64) {
        let table = e & pte::ADDR;
        assert!(
            phys::scan_u64(table, 512, |x| x == 0) == 512,
            "replacing a page table that still maps pages"
        );
        frames.free_clean(table, PAGE);
    }

    /// Maps the physically contiguous `[pa, pa + len)` at `va` with the largest pages the
    /// alignment of both allows (1 GiB only with `giga`). The range must be empty; empty page
    /// tables in the way are freed.
    pub fn map_contiguous(
        &self,
        frames: &mut Frames,
        va: u64,
        pa: u64,
        len: u64,
        flags: u64,
        giga: bool,
    ) -> Result<(), MapError> {
        let (mut va, mut pa, mut left) = (va, pa, len);
        let mut flush = false;
        while left > 0 {
            let both = va | pa;
            let level = if giga && both & (GIGA - 1) == 0 && left >= GIGA {
                2
            } else if both & (HUGE - 1) == 0 && left >= HUGE {
                1
            } else {
                0
            };
            let size = size_of_level(level);
            let Some(entry) = self.table_entry(frames, va, level)? else {
                panic!("mapping over a huge page at {va:#x}");
            };
            let n = (512 - index(va, level)).min(left / size);
            if level > 0 {
                for i in 0..n {
                    let old = phys::read_u64(entry + i * 8);
                    if old != 0 {
                        Self::drop_empty_table(frames, old);
                        flush = true;
                    }
                }
            }
            let leaf = if level > 0 { flags | pte::HUGE } else { flags };
            phys::fill_u64_run(entry, n, pa | leaf, size);
            va += n * size;
            pa += n * size;
            left -= n * size;
        }
        if flush {
            tlb::flush_all();
        }
        Ok(())
    }

    /// Maps fresh zeroed memory wherever `[start, end)` has no frame yet, with `flags`. With
    /// `large`, naturally aligned 2 MiB blocks (1 GiB with `frames.giga_ok`) inside the range get
    /// huge pages when a chunk is free. `fresh` promises that nothing in the range is mapped (a
    /// new area), which saves scanning the entries. Returns the number of 4 KiB, 2 MiB and
    /// 1 GiB pages it mapped.
    pub fn populate(
        &self,
        frames: &mut Frames,
        start: u64,
        end: u64,
        flags: u64,
        large: bool,
        fresh: bool,
    ) -> Result<[u64; 3], MapError> {
        let mut counts = [0u64; 3];
        let mut va = start;
        while va < end {
            if large && frames.giga_ok != 0 && va & (GIGA - 1) == 0 && end - va >= GIGA {
                let Some(entry) = self.table_entry(frames, va, 2)? else {
                    unreachable!("no leaf above a PDPT entry");
                };
                if phys::read_u64(entry) == 0
                    && let Some((pa, _)) = frames.alloc_chunk(GIGA, GIGA)
                {
                    phys::write_u64(entry, pa | flags | pte::HUGE);
                    counts[2] += 1;
                    va += GIGA;
                    continue;
                }
            }
            if large && va & (HUGE - 1) == 0 && end - va >= HUGE {
                let Some(pde) = self.table_entry(frames, va, 1)? else {
                    va = (va & !(GIGA - 1)) + GIGA; // inside a 1 GiB leaf: populated
                    continue;
                };
                let most = (512 - index(va, 1)).min((end - va) / HUGE);
                let empty = phys::scan_u64(pde, most, |e| e == 0);
                if empty > 0 {
                    if let Some((pa, len)) = frames.alloc_chunk(empty * HUGE, HUGE) {
                        phys::fill_u64_run(pde, len / HUGE, pa | flags | pte::HUGE, HUGE);
                        counts[1] += len / HUGE;
                        va += len;
                        continue;
                    }
                } else {
                    let e = phys::read_u64(pde);
                    if is_huge_leaf(e) {
                        va += phys::scan_u64(pde, most, is_huge_leaf) * HUGE;
                        continue;
                    }
                    if fresh {
                        // An empty table left by earlier unmaps: a 2 MiB page replaces it.
                        phys::write_u64(pde, 0);
                        Self::drop_empty_table(frames, e);
                        // Before the table can be reused: no CPU may still walk through it.
                        arch::invlpg(va);
                        tlb::shootdown();
                        continue;
                    }
                }
            }
            let Some(entry) = self.table_entry(frames, va, 0)? else {
                va = (va & !(HUGE - 1)) + HUGE; // inside a huge leaf: populated
                continue;
            };
            let most = (512 - index(va, 0)).min((end - va) / PAGE);
            let holes = if fresh {
                most
            } else {
                let full = phys::scan_u64(entry, most, |e| e != 0);
                if full > 0 {
                    va += full * PAGE;
                    continue;
                }
                phys::scan_u64(entry, most, |e| e == 0)
            };
            let (pa, got) = frames.alloc_run(holes).ok_or(MapError::NoMemory)?;
            phys::fill_u64_run(entry, got, pa | flags, PAGE);
            counts[0] += got;
            va += got * PAGE;
        }
        Ok(counts)
    }

    /// Splits the huge leaf `e` at `entry` (covering `size`) into 512 smaller leaves with the
    /// same frames and flags.
    fn split(&self, frames: &mut Frames, entry: u64, e: u64, size: u64) -> Result<(), MapError> {
        let table = frames.alloc_page().ok_or(MapError::NoMemory)?;
        let (addr, small, first_flags) = if size == GIGA {
            (e & pte::ADDR_1G, HUGE, (e & pte::FLAGS) & !0x1000)
        } else {
            (
                e & pte::ADDR_2M,
                PAGE,
                (e & pte::FLAGS) & !(pte::HUGE | 0x1000),
            )
        };
        phys::fill_u64_run(table, 512, addr | first_flags, small);
        phys::write_u64(entry, table | pte::TABLE);
        arch::flush_tlb();
        Ok(())
    }

    /// Splits huge leaves that stick out of `[start, end)` at either end, so that the range
    /// can be changed without touching memory outside it.
    pub fn split_edges(&self, frames: &mut Frames, start: u64, end: u64) -> Result<(), MapError> {
        for va in [start, end - PAGE] {
            while let Slot::Huge { entry, e, size } = self.slot(va) {
                let base = va & !(size - 1);
                if base >= start && base + size <= end {
                    break;
                }
                self.split(frames, entry, e, size)?;
            }
        }
        Ok(())
    }

    /// Visits the leaves of `[start, end)` (page aligned); holes are skipped.
    fn walk(&self, start: u64, end: u64, mut visit: impl FnMut(Leaf)) {
        let mut va = start;
        while va < end {
            match self.slot(va) {
                Slot::Hole { size } => va = (va & !(size - 1)).saturating_add(size),
                Slot::Huge { entry, e, size } => {
                    let base = va & !(size - 1);
                    visit(Leaf::Huge {
                        entry,
                        e,
                        base,
                        size,
                    });
                    va = base + size;
                }
                Slot::Table { pte, pde } => {
                    // A partial last page counts (an unaligned `end` must not stall the walk).
                    let n = (512 - index(va, 0)).min((end - va).div_ceil(PAGE));
                    visit(Leaf::Ptes { pte, pde, va, n });
                    va += n * PAGE;
                }
            }
        }
    }

    /// Removes every mapping in `[start, end)`. With `free`, the frames go back to the
    /// allocator (dirty); without, the caller has moved them elsewhere. Page tables that become
    /// empty are freed. Fails only when a huge page must be split and no frame is left.
    pub fn unmap(
        &self,
        frames: &mut Frames,
        start: u64,
        end: u64,
        free: bool,
    ) -> Result<(), MapError> {
        if end <= start {
            return Ok(());
        }
        self.split_edges(frames, start, end)?;
        let mut flush = Flush::new(start, end);
        let mut runs = Runs::new();
        self.walk(start, end, |leaf| match leaf {
            Leaf::Huge {
                entry,
                e,
                base,
                size,
            } => {
                if let Some((pa, len)) = runs.push(e & pte::ADDR & !(size - 1), size)
                    && free
                {
                    frames.free(pa, len);
                }
                phys::write_u64(entry, 0);
                flush.page(base);
            }
            Leaf::Ptes { pte, pde, va, n } => {
                let mut page = va;
                phys::update_u64_run(pte, n, |e| {
                    if e & pte::HOLDS != 0 {
                        if let Some((pa, len)) = runs.push(e & pte::ADDR, PAGE)
                            && free
                        {
                            frames.free(pa, len);
                        }
                        flush.page(page);
                    }
                    page += PAGE;
                    0
                });
                if n == 512 {
                    // The whole table is empty now: it goes back as clean memory.
                    phys::write_u64(pde, 0);
                    frames.free_clean(pte, PAGE);
                    flush.page(va);
                }
            }
        });
        if let Some((pa, len)) = runs.finish()
            && free
        {
            frames.free(pa, len);
        }
        flush.done();
        Ok(())
    }

    /// Sets the leaf flags of every page in `[start, end)` that holds a frame.
    pub fn protect(
        &self,
        frames: &mut Frames,
        start: u64,
        end: u64,
        flags: u64,
    ) -> Result<(), MapError> {
        if end <= start {
            return Ok(());
        }
        self.split_edges(frames, start, end)?;
        let mut flush = Flush::new(start, end);
        self.walk(start, end, |leaf| match leaf {
            Leaf::Huge {
                entry,
                e,
                base,
                size,
            } => {
                let new = (e & pte::ADDR & !(size - 1)) | flags | pte::HUGE;
                if new != e {
                    phys::write_u64(entry, new);
                    flush.page(base);
                }
            }
            Leaf::Ptes { pte, va, n, .. } => {
                let mut page = va;
                phys::update_u64_run(pte, n, |e| {
                    let new = if e & pte::HOLDS != 0 {
                        (e & pte::ADDR) | flags
                    } else {
                        e
                    };
                    if new != e {
                        flush.page(page);
                    }
                    page += PAGE;
                    new
                });
            }
        });
        flush.done();
        Ok(())
    }

    /// Calls `f(pa, len)` for the physically contiguous runs of frames behind `[start, end)`
    /// (pages without a frame are skipped).
    pub fn frames_of(&self, start: u64, end: u64, mut f: impl FnMut(u64, u64)) {
        let mut runs = Runs::new();
        self.walk(start, end, |leaf| match leaf {
            Leaf::Huge { e, base, size, .. } => {
                let addr = e & pte::ADDR & !(size - 1);
                let lo = base.max(start);
                let hi = (base + size).min(end);
                if let Some((pa, len)) = runs.push(addr + (lo - base), hi - lo) {
                    f(pa, len);
                }
            }
            Leaf::Ptes { pte, n, .. } => {
                phys::scan_u64(pte, n, |e| {
                    if e & pte::HOLDS != 0
                        && let Some((pa, len)) = runs.push(e & pte::ADDR, PAGE)
                    {
                        f(pa, len);
                    }
                    true
                });
            }
        });
        if let Some((pa, len)) = runs.finish() {
            f(pa, len);
        }
    }

    /// Maps fresh frames at `run.0` (`run.2` bytes, leaf flags `run.3`; 2 MiB pages where
    /// they fit) holding a copy of the frames from `run.1`, made by `copy(frames, src, dst,
    /// len)`; bytes below `copy_from` are not copied (they read zero). The range must be empty.
    pub fn map_copy(
        &self,
        frames: &mut Frames,
        run: (u64, u64, u64, u64),
        copy_from: u64,
        copy: &mut impl FnMut(&mut Frames, u64, u64, u64) -> Result<(), MapError>,
    ) -> Result<(), MapError> {
        let (va, pa, len, flags) = run;
        let mut off = 0;
        while off < len {
            let (v, left) = (va + off, len - off);
            let chunk = if v & (HUGE - 1) == 0 && left >= HUGE {
                frames.alloc_chunk(left & !(HUGE - 1), HUGE)
            } else {
                None
            };
            let (npa, got) = match chunk {
                Some(c) => c,
                None => {
                    // 4 KiB frames up to the next 2 MiB boundary.
                    let to_boundary = (HUGE - (v & (HUGE - 1))).min(left);
                    let (p, n) = frames
                        .alloc_run(to_boundary / PAGE)
                        .ok_or(MapError::NoMemory)?;
                    (p, n * PAGE)
                }
            };
            self.map_contiguous(frames, v, npa, got, flags, false)?;
            // Below `copy_from` the fresh (zeroed) frames stay as they are.
            let skip = copy_from.saturating_sub(v).min(got);
            if skip < got {
                copy(frames, pa + off + skip, npa + skip, got - skip)?;
            }
            off += got;
        }
        Ok(())
    }

    /// The first run of `[start, end)` (as [`AddressSpace::leaf_runs`]) that maps frames
    /// another address space also holds: `(va, pa, len, flags)`.
    pub fn first_held_run(
        &self,
        frames: &mut Frames,
        start: u64,
        end: u64,
    ) -> Option<(u64, u64, u64, u64)> {
        let mut found = None;
        self.leaf_runs(frames, start, end, |frames, va, pa, len, flags| {
            if found.is_none() && frames.is_shared(pa, len) {
                found = Some((va, pa, len, flags));
            }
        });
        found
    }

    /// Calls `f(frames, va, pa, len, flags)` for each maximal run of `[start, end)` whose pages
    /// map consecutive frames with equal leaf flags (huge leaves clipped to the range; a page
    /// without a frame ends a run). Accessed/dirty bits are not part of the flags.
    fn leaf_runs(
        &self,
        frames: &mut Frames,
        start: u64,
        end: u64,
        mut f: impl FnMut(&mut Frames, u64, u64, u64, u64),
    ) {
        // The current run: virtual start, physical start, length, leaf flags.
        let mut run = (0u64, 0u64, 0u64, 0u64);
        let mut piece = |va: u64, pa: u64, size: u64, flags: u64, frames: &mut Frames| {
            if run.2 > 0 && run.0 + run.2 == va && run.1 + run.2 == pa && run.3 == flags {
                run.2 += size;
                return;
            }
            if run.2 > 0 {
                f(frames, run.0, run.1, run.2, run.3);
            }
            run = (va, pa, size, flags);
        };
        self.walk(start, end, |leaf| match leaf {
            Leaf::Huge { e, base, size, .. } => {
                let flags = e & pte::FLAGS & !(pte::HUGE | 0x1000 | pte::ACCESSED | pte::DIRTY);
                let lo = base.max(start);
                let hi = (base + size).min(end);
                let pa = (e & pte::ADDR & !(size - 1)) + (lo - base);
                piece(lo, pa, hi - lo, flags, frames);
            }
            Leaf::Ptes { pte, va, n, .. } => {
                let mut page = va;
                phys::scan_u64(pte, n, |e| {
                    if e & pte::HOLDS != 0 {
                        let flags = e & pte::FLAGS & !(pte::ACCESSED | pte::DIRTY);
                        piece(page, e & pte::ADDR, PAGE, flags, frames);
                    }
                    page += PAGE;
                    true
                });
            }
        });
        // Flush the last run with a piece that never continues it.
        piece(u64::MAX - PAGE, 0, 0, 0, frames);
    }

    /// Moves the mappings of `[old, old + len)` to `[new, new + len)` (which must be empty and
    /// not overlap), keeping frames and flags; physically contiguous runs are remapped with the
    /// largest pages their new alignment allows.
    pub fn relocate(
        &self,
        frames: &mut Frames,
        old: u64,
        new: u64,
        len: u64,
    ) -> Result<(), MapError> {
        let end = old + len;
        self.split_edges(frames, old, end)?;
        let giga = frames.giga_ok != 0;
        let mut result = Ok(());
        self.leaf_runs(frames, old, end, |frames, va, pa, len, flags| {
            if result.is_ok() {
                result = self.map_contiguous(frames, va - old + new, pa, len, flags, giga);
            }
        });
        if let Err(e) = result {
            // Back as it was: the frames stay mapped at `old` only.
            let _ = self.unmap(frames, new, new + len, false);
            return Err(e);
        }
        self.unmap(frames, old, end, false)
    }

    /// Gives `child` (an address space with nothing mapped in `[start, end)`) a copy of this
    /// range: fresh frames with the same leaf flags (2 MiB pages where the frames allow), the
    /// contents copied by `copy(frames, src, dst, len)` (the host does it, `op::COPY_PHYS`).
    ///
    /// With [`ForkCopy::Share`] or [`ForkCopy::ShareOrCopy`] the child maps the same frames
    /// instead; with [`ForkCopy::From`], bytes below that address are not copied (the child
    /// reads zero there).
    pub fn fork_range(
        &self,
        child: &AddressSpace,
        frames: &mut Frames,
        start: u64,
        end: u64,
        how: ForkCopy,
        copy: &mut impl FnMut(&mut Frames, u64, u64, u64) -> Result<(), MapError>,
    ) -> Result<(), MapError> {
        let mut flush = |run: (u64, u64, u64, u64), frames: &mut Frames| -> Result<(), MapError> {
            let (va, pa, len, flags) = run;
            let copy_from = match how {
                ForkCopy::Share => {
                    if !frames.share(pa, len) {
                        return Err(MapError::NoMemory);
                    }
                    return child.map_contiguous(frames, va, pa, len, flags, false);
                }
                ForkCopy::ShareOrCopy => {
                    // A writable page inside a read-only area (a program segment's first page
                    // that is also the previous segment's last) is never shared.
                    if flags & pte::WRITABLE == 0 && frames.share(pa, len) {
                        return child.map_contiguous(frames, va, pa, len, flags, false);
                    }
                    0 // The table of shared frames is full: a copy.
                }
                ForkCopy::From(a) => a,
            };
            child.map_copy(frames, (va, pa, len, flags), copy_from, copy)
        };
        let mut result = Ok(());
        self.leaf_runs(frames, start, end, |frames, va, pa, len, flags| {
            if result.is_ok() {
                result = flush((va, pa, len, flags), frames);
            }
        });
        result
    }

    /// Frees everything of the user half in one pass over the tables: the frames behind every
    /// leaf (frames other address spaces also hold only lose a holder, see `Frames::free`),
    /// every page table, and the PML4 itself (the boot PML4, not the allocator's, is emptied
    /// instead). Scanning entries in place costs far less than
    /// walking from the root per step (ring 0 is emulated on the development KVM). Nobody may
    /// have this root loaded, and no TLB holds its translations (every CPU that ran it has
    /// loaded another root since).
    pub fn teardown(&self, frames: &mut Frames) {
        let mut runs = Runs::new();
        let mut leaf = |frames: &mut Frames, _va: u64, pa: u64, size: u64| {
            if let Some((p, l)) = runs.push(pa, size) {
                frames.free(p, l);
            }
        };
        let kept_root = self.pml4 < offload_abi::layout::KERNEL_PHYS_END;
        // Calls `f(index, entry)` for the non-zero entries among the first `n` of `table`.
        let each = |table: u64, n: u64, f: &mut dyn FnMut(u64, u64)| {
            let mut i = 0;
            while let Some(d) = phys::first_nonzero_u64(table + i * 8, n - i) {
                let at = i + d;
                f(at, phys::read_u64(table + at * 8));
                i = at + 1;
            }
        };
        each(self.pml4, 256, &mut |i, e4| {
            if e4 & pte::PRESENT == 0 {
                return;
            }
            let pdpt = e4 & pte::ADDR;
            each(pdpt, 512, &mut |j, e3| {
                let va3 = (i << 39) | (j << 30);
                if e3 & pte::HOLDS == 0 {
                    return;
                }
                if e3 & pte::HUGE != 0 {
                    leaf(frames, va3, e3 & pte::ADDR_1G, GIGA);
                    return;
                }
                let pd = e3 & pte::ADDR;
                each(pd, 512, &mut |l, e2| {
                    let va2 = va3 | (l << 21);
                    if e2 & pte::HOLDS == 0 {
                        return;
                    }
                    if e2 & pte::HUGE != 0 {
                        leaf(frames, va2, e2 & pte::ADDR_2M, HUGE);
                        return;
                    }
                    let pt = e2 & pte::ADDR;
                    each(pt, 512, &mut |m, e| {
                        if e & pte::HOLDS != 0 {
                            leaf(frames, va2 | (m << 12), e & pte::ADDR, PAGE);
                        }
                    });
                    frames.free(pt, PAGE);
                });
                frames.free(pd, PAGE);
            });
            frames.free(pdpt, PAGE);
            if kept_root {
                // The boot PML4 stays (vCPUs that never ran a thread still use it): no entry
                // may point at the freed tables.
                phys::write_u64(self.pml4 + i * 8, 0);
            }
        });
        if let Some((p, l)) = runs.finish() {
            frames.free(p, l);
        }
        if !kept_root {
            frames.free(self.pml4, PAGE);
        }
    }

    /// Replaces the page table under the 2 MiB block at `va` by one 2 MiB leaf when it maps
    /// 512 consecutive frames starting 2 MiB aligned with equal flags (the heap's block became
    /// complete). Returns whether it did.
    pub fn promote(&self, frames: &mut Frames, va: u64) -> bool {
        let Slot::Table { pte: first, pde } = self.slot(va & !(HUGE - 1)) else {
            return false;
        };
        let e0 = phys::read_u64(first);
        if e0 & pte::PRESENT == 0 || e0 & pte::ADDR & (HUGE - 1) != 0 {
            return false;
        }
        let cpu_bits = pte::ACCESSED | pte::DIRTY;
        let mut want = e0 & !cpu_bits;
        if phys::scan_u64(first, 512, |e| {
            let ok = e & !cpu_bits == want;
            want += PAGE;
            ok
        }) != 512
        {
            return false;
        }
        phys::write_u64(pde, (e0 & !cpu_bits) | pte::HUGE);
        tlb::flush_all();
        // The table's entries are not zero: it goes back as dirty memory.
        frames.free(first, PAGE);
        true
    }

    /// Calls `f(pa, len)` for the runs of frames of the 2 MiB chunk at `chunk` that the 2 MiB
    /// block at `block` does not map in place (page i of the block mapping frame i of the
    /// chunk): the unused part of a heap reservation.
    pub fn unused_in_place(&self, block: u64, chunk: u64, mut f: impl FnMut(u64, u64)) {
        match self.slot(block) {
            Slot::Hole { .. } => f(chunk, HUGE),
            Slot::Huge { .. } => {} // promoted: every frame is in use
            Slot::Table { pte, .. } => {
                let mut runs = Runs::new();
                let mut frame = chunk;
                phys::scan_u64(pte, 512, |e| {
                    let in_place = e & pte::HOLDS != 0 && e & pte::ADDR == frame;
                    if !in_place && let Some((pa, len)) = runs.push(frame, PAGE) {
                        f(pa, len);
                    }
                    frame += PAGE;
                    true
                });
                if let Some((pa, len)) = runs.finish() {
                    f(pa, len);
                }
            }
        }
    }

    /// Creates the page table that maps `va` with 4 KiB pages, if it is missing.
    pub fn ensure_table(&self, frames: &mut Frames, va: u64) -> Result<(), MapError> {
        self.table_entry(frames, va, 0).map(|_| ())
    }

    /// Splits every 1 GiB leaf of the user half into 2 MiB leaves (the CPU refused them).
    pub fn split_all_giga(&self, frames: &mut Frames) -> Result<(), MapError> {
        for i in 0..256u64 {
            let e4 = phys::read_u64(self.pml4 + i * 8);
            if e4 & pte::PRESENT == 0 {
                continue;
            }
            let pdpt = e4 & pte::ADDR;
            for j in 0..512u64 {
                let e = phys::read_u64(pdpt + j * 8);
                if is_huge_leaf(e) {
                    self.split(frames, pdpt + j * 8, e, GIGA)?;
                }
            }
        }
        Ok(())
    }

    /// The leaf entry mapping `va`: `(entry address, entry, page size)`, if any table down to
    /// the leaf exists.
    pub fn leaf(&self, va: u64) -> Option<(u64, u64, u64)> {
        match self.slot(va) {
            Slot::Hole { .. } => None,
            Slot::Huge { entry, e, size } => Some((entry, e, size)),
            Slot::Table { pte, .. } => Some((pte, phys::read_u64(pte), PAGE)),
        }
    }

    /// Whether the page at `va` holds a frame (present or PROT_NONE): resident, for mincore.
    pub fn has_frame(&self, va: u64) -> bool {
        self.leaf(va).is_some_and(|(_, e, _)| e & pte::HOLDS != 0)
    }

    /// Whether the 2 MiB block containing `va` has nothing mapped (no leaf, no table).
    pub fn block_empty(&self, va: u64) -> bool {
        matches!(self.slot(va), Slot::Hole { .. })
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
        Some((e & pte::ADDR & !(size - 1)) + (va & (size - 1)))
    }

    /// Like [`AddressSpace::user_phys`], recording the page if it has no frame at all (demand
    /// paging may map it and the syscall be repeated).
    fn user_phys_noting(&self, va: u64, write: bool) -> Option<u64> {
        let pa = self.user_phys(va, write);
        if pa.is_none()
            && va < offload_abi::layout::USER_END
            && self.leaf(va).is_none_or(|(_, e, _)| e & pte::HOLDS == 0)
            && self.missing.get().is_none()
        {
            self.missing.set(Some((va & !(PAGE - 1), write)));
        }
        pa
    }

    /// The first page a copy found without a frame since the last call, and whether the copy
    /// wanted to write.
    pub fn take_missing(&self) -> Option<(u64, bool)> {
        self.missing.take()
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
            let pa = self.user_phys_noting(cur, false).ok_or(())?;
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
            self.user_phys_noting(page, write).ok_or(())?;
            page += PAGE;
        }
        Ok(())
    }
}

/// The kernel half of the boot PML4 (its present entries), recorded once at boot: every new
/// address space starts with it.
static KERNEL_HALF: crate::arch::Global<[(u64, u64); 8]> = crate::arch::Global::new([(0, 0); 8]);

/// Records the kernel half of `pml4` (boot, vCPU 0, before any other vCPU runs).
pub fn record_kernel_half(pml4: u64) {
    let mut half = [(0u64, 0u64); 8];
    let mut n = 0;
    let mut i = 256u64;
    while let Some(d) = phys::first_nonzero_u64(pml4 + i * 8, 512 - i) {
        i += d;
        let e = phys::read_u64(pml4 + i * 8);
        if e & pte::PRESENT != 0 {
            assert!(n < half.len(), "too many kernel PML4 entries");
            half[n] = (i, e);
            n += 1;
        }
        i += 1;
    }
    // SAFETY: boot, on vCPU 0 before the other vCPUs start (see `Global`); read-only after.
    unsafe { *KERNEL_HALF.get() = half };
}

/// A new PML4 with the kernel half and an empty user half (`None`: no memory).
pub fn new_pml4(frames: &mut Frames) -> Option<u64> {
    let pml4 = frames.alloc_page()?;
    // SAFETY: written once at boot (see `record_kernel_half`), read-only afterwards.
    let half = unsafe { &*KERNEL_HALF.get() };
    for &(i, e) in half.iter().filter(|(_, e)| *e != 0) {
        phys::write_u64(pml4 + i * 8, e);
    }
    Some(pml4)
}
