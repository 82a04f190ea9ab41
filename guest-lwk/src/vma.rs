//! Virtual memory areas: the ranges of a process's address space that the program may use,
//! with their protection and kind, as Linux's VMAs (mm/mmap.c). One table per address space,
//! kept in frames of its own.
//!
//! The table is an array sorted by *descending* start address: Linux places mappings top-down,
//! so a new mapping usually lands below all others and is appended (or merged into its upper
//! neighbour) without moving any entry. Lookups are binary searches.

use crate::frames::{Frames, PAGE};
use crate::phys;

/// Protection bits (`PROT_*`).
pub mod prot {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const EXEC: u32 = 4;
    pub const MASK: u32 = READ | WRITE | EXEC;
}

/// Kind bits of a VMA.
pub mod kind {
    /// MAP_SHARED (anonymous shared memory; the same as private while there is one process).
    pub const SHARED: u32 = 1 << 0;
    /// Grows down on faults just below it (MAP_GROWSDOWN, the main stack).
    pub const GROWSDOWN: u32 = 1 << 1;
    /// The program break's heap.
    pub const HEAP: u32 = 1 << 2;
    /// mlock(2)ed (VM_LOCKED: MADV_DONTNEED refuses it, as Linux does).
    pub const LOCKED: u32 = 1 << 3;
    /// Mapped on first touch even when the job pre-faults (MAP_NORESERVE: address-space
    /// reservations far larger than memory).
    pub const NORESERVE: u32 = 1 << 4;
    /// A segment of the program image.
    pub const IMAGE: u32 = 1 << 5;
    /// A file mapping (mmap of a file): its pages hold the file's bytes, not zeros.
    pub const FILE: u32 = 1 << 6;
    /// Bits that keep a VMA from merging with its neighbours.
    pub const NO_MERGE: u32 = GROWSDOWN | HEAP | IMAGE;
}

/// One area `[start, end)`, page aligned.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
    pub kind: u32,
}

impl Vma {
    fn merges_with(&self, other: &Vma) -> bool {
        self.prot == other.prot && self.kind == other.kind && self.kind & kind::NO_MERGE == 0
    }
}

/// Areas per address space. Linux allows 65530 by default; programs rarely need more than a
/// few hundred, and running out is ENOMEM as in Linux.
pub const MAX_VMAS: usize = 4095;

/// The areas of one address space, sorted by descending start.
#[repr(C)]
pub struct VmaTable {
    len: u64,
    _pad: u64,
    items: [Vma; MAX_VMAS],
}

// SAFETY: integers only; all-zero is the empty table.
unsafe impl phys::PlainData for VmaTable {}

/// The table is full (ENOMEM for the caller).
#[derive(Debug, Clone, Copy)]
pub struct Full;

impl VmaTable {
    /// An empty table in frames of its own (`None` if memory is exhausted).
    pub fn new(frames: &mut Frames) -> Option<&'static mut VmaTable> {
        let pages = crate::frames::align_up(core::mem::size_of::<VmaTable>() as u64, PAGE) / PAGE;
        let pa = frames.alloc_contiguous(pages)?;
        Some(phys::owned_mut(pa))
    }

    fn len(&self) -> usize {
        self.len as usize
    }

    /// Index of the first area (highest first) starting at or below `addr`.
    fn at_or_below(&self, addr: u64) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.items[mid].start > addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Makes this (empty) table a copy of `other` (fork).
    pub fn copy_from(&mut self, other: &VmaTable) {
        let n = other.len();
        self.items[..n].copy_from_slice(&other.items[..n]);
        self.len = other.len;
    }

    /// Every area, highest first.
    pub fn all(&self) -> &[Vma] {
        &self.items[..self.len()]
    }

    /// Frees the table (its address space is gone).
    pub fn free(t: &'static mut VmaTable, frames: &mut Frames) {
        let pages = crate::frames::align_up(core::mem::size_of::<VmaTable>() as u64, PAGE) / PAGE;
        frames.free(phys::pa_of(t), pages * PAGE);
    }

    /// Removes the area that is exactly `[start, end)`; false if there is none.
    pub fn remove_exact(&mut self, start: u64, end: u64) -> bool {
        let i = self.at_or_below(start);
        if i >= self.len() || self.items[i].start != start || self.items[i].end != end {
            return false;
        }
        let n = self.len();
        self.items.copy_within(i + 1..n, i);
        self.len -= 1;
        true
    }

    /// The area containing `addr`.
    pub fn find(&self, addr: u64) -> Option<Vma> {
        let i = self.at_or_below(addr);
        (i < self.len() && self.items[i].end > addr).then(|| self.items[i])
    }

    /// The lowest area starting above `addr`.
    pub fn above(&self, addr: u64) -> Option<Vma> {
        let i = self.at_or_below(addr);
        (i > 0).then(|| self.items[i - 1])
    }

    /// The highest area ending at or below `addr`.
    pub fn below(&self, addr: u64) -> Option<Vma> {
        let i = self.at_or_below(addr);
        let i = if i < self.len() && self.items[i].end > addr {
            i + 1
        } else {
            i
        };
        (i < self.len()).then(|| self.items[i])
    }

    /// Whether any area intersects `[start, end)`.
    pub fn intersects(&self, start: u64, end: u64) -> bool {
        if end <= start {
            return false;
        }
        let i = self.at_or_below(end - 1);
        i < self.len() && self.items[i].end > start
    }

    /// The first area (lowest address) that intersects `[start, end)`.
    pub fn first_in(&self, start: u64, end: u64) -> Option<Vma> {
        if let Some(v) = self.find(start) {
            return Some(v);
        }
        self.above(start).filter(|v| v.start < end)
    }

    /// Splits the area containing `addr` (if `addr` is strictly inside it) into two.
    pub fn split(&mut self, addr: u64) -> Result<(), Full> {
        let i = self.at_or_below(addr);
        if i >= self.len() || self.items[i].end <= addr || self.items[i].start == addr {
            return Ok(());
        }
        let n = self.len();
        if n == MAX_VMAS {
            return Err(Full);
        }
        self.items.copy_within(i..n, i + 1);
        self.items[i].start = addr;
        self.items[i + 1].end = addr;
        self.len += 1;
        Ok(())
    }

    /// Removes every area inside `[start, end)`; the caller split at both ends first.
    pub fn remove_range(&mut self, start: u64, end: u64) {
        if end <= start {
            return;
        }
        // Highest index with start >= start .. lowest index with start < end.
        let hi = self.at_or_below(end - 1);
        let mut lo = hi;
        while lo < self.len() && self.items[lo].start >= start {
            lo += 1;
        }
        let n = self.len();
        if lo > hi {
            self.items.copy_within(lo..n, hi);
            self.len -= (lo - hi) as u64;
        }
    }

    /// Sets the protection of every area inside `[start, end)` (already split at both ends).
    pub fn set_prot(&mut self, start: u64, end: u64, prot: u32) {
        self.update(start, end, |v| v.prot = prot);
    }

    /// Sets or clears kind bits of every area inside `[start, end)` (already split).
    pub fn set_kind(&mut self, start: u64, end: u64, bits: u32, on: bool) {
        self.update(start, end, |v| {
            if on { v.kind |= bits } else { v.kind &= !bits }
        });
    }

    fn update(&mut self, start: u64, end: u64, mut f: impl FnMut(&mut Vma)) {
        if end <= start {
            return;
        }
        let mut i = self.at_or_below(end - 1);
        while i < self.len() && self.items[i].start >= start {
            f(&mut self.items[i]);
            i += 1;
        }
    }

    /// Adds an area over a free range, merging with equal neighbours.
    pub fn insert(&mut self, vma: Vma) -> Result<(), Full> {
        let i = self.at_or_below(vma.start);
        let n = self.len();
        let above =
            i > 0 && self.items[i - 1].start == vma.end && self.items[i - 1].merges_with(&vma);
        let below = i < n && self.items[i].end == vma.start && self.items[i].merges_with(&vma);
        match (above, below) {
            (true, true) => {
                self.items[i - 1].start = self.items[i].start;
                self.items.copy_within(i + 1..n, i);
                self.len -= 1;
            }
            (true, false) => self.items[i - 1].start = vma.start,
            (false, true) => self.items[i].end = vma.end,
            (false, false) => {
                if n == MAX_VMAS {
                    return Err(Full);
                }
                self.items.copy_within(i..n, i + 1);
                self.items[i] = vma;
                self.len += 1;
            }
        }
        Ok(())
    }

    /// Merges the areas meeting at `addr` if they are alike (after mprotect and friends).
    pub fn merge_at(&mut self, addr: u64) {
        let i = self.at_or_below(addr);
        if i == 0 || i >= self.len() {
            return;
        }
        let (upper, lower) = (self.items[i - 1], self.items[i]);
        if upper.start == addr && lower.end == addr && upper.merges_with(&lower) {
            self.items[i - 1].start = lower.start;
            let n = self.len();
            self.items.copy_within(i + 1..n, i);
            self.len -= 1;
        }
    }

    /// Moves the start of the area starting at `old` down to `new` (stack growth).
    pub fn extend_down(&mut self, old: u64, new: u64) {
        let i = self.at_or_below(old);
        if i < self.len() && self.items[i].start == old {
            self.items[i].start = new;
        }
    }

    /// Moves the end of the area ending at `old` to `new` (brk, mremap in place).
    pub fn set_end(&mut self, old: u64, new: u64) {
        if old == 0 {
            return;
        }
        let i = self.at_or_below(old - 1);
        if i < self.len() && self.items[i].end == old {
            self.items[i].end = new;
        }
    }

    /// The highest address `a` with `a + len <= high`, `a >= low`, `a % align == offset` and
    /// `[a, a + len)` free, keeping `guard` bytes below areas that grow down (Linux's
    /// stack_guard_gap).
    pub fn gap_top_down(
        &self,
        len: u64,
        align: u64,
        offset: u64,
        low: u64,
        high: u64,
        guard: u64,
    ) -> Option<u64> {
        let fit = |lo: u64, hi: u64| -> Option<u64> {
            let top = hi.checked_sub(len)?;
            let mut a = (top & !(align - 1)) + offset;
            if a > top {
                a = a.checked_sub(align)?;
            }
            (a >= lo).then_some(a)
        };
        let mut hi = high;
        // Areas starting at or above `high` cannot hold the gap; at most one of them (the
        // first) reaches below it. Binary search skips them.
        let first = self.at_or_below(high.saturating_sub(1));
        if first > 0 {
            let v = self.items[first - 1];
            if v.kind & kind::GROWSDOWN != 0 {
                hi = hi.min(v.start.saturating_sub(guard));
            }
        }
        for v in &self.items[first..self.len()] {
            if v.end >= hi {
                hi = hi.min(v.start);
            } else {
                if hi - v.end >= len
                    && let Some(a) = fit(v.end.max(low), hi)
                {
                    return Some(a);
                }
                hi = v.start;
            }
            if v.kind & kind::GROWSDOWN != 0 {
                hi = hi.saturating_sub(guard);
            }
            if hi <= low {
                return None;
            }
        }
        fit(low, hi)
    }
}
