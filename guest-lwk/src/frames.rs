//! The physical memory manager: free guest RAM as sorted lists of extents, split into *clean*
//! frames (known to read zero) and *dirty* ones (freed by the program, contents unknown).
//!
//! Zeroing is never done in ring 0 (emulated on the development KVM, ~0.5-1.5 us per
//! instruction): guest RAM starts zeroed (fresh host memory), so every frame is clean until the
//! program frees it. Allocations take clean frames; only when clean memory runs short are all
//! dirty extents zeroed by the host in one request ([`offload_abi::op::ZERO_PHYS`]) and moved
//! to the clean list ("scrub"). Freeing costs no exit at all, and a program that never reuses
//! memory never causes a scrub.
//!
//! Extents instead of a bitmap or buddy lists: every operation costs a handful of instructions
//! per *extent*, independent of how many frames it covers. Small allocations (page tables, 4 KiB
//! pages) come from the lowest clean extent, large aligned chunks (2 MiB and 1 GiB pages) from
//! the top, which keeps the large chunks unfragmented.
//!
//! The allocator's own state lives in the first frames of the first usable region (zeroed RAM
//! is its valid empty state), so boot copies nothing.

use crate::vm::count;
use crate::{bridge, phys};
use offload_abi::{BootInfo, MAX_ZERO_RANGES, layout, mem_kind};

/// 4 KiB.
pub const PAGE: u64 = 4096;

/// Extents per list. A list that would overflow degrades gracefully (dirty: scrub into clean;
/// clean: the smallest extent is dropped and counted as lost).
const MAX_EXTENTS: usize = 1023;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Extent {
    start: u64,
    end: u64,
}

/// Free extents sorted by address, adjacent ones merged.
#[repr(C)]
struct ExtentList {
    len: u64,
    bytes: u64,
    items: [Extent; MAX_EXTENTS],
}

impl ExtentList {
    fn len(&self) -> usize {
        self.len as usize
    }

    /// Index of the first extent starting above `pa`.
    fn upper(&self, pa: u64) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.items[mid].start > pa {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    fn remove(&mut self, i: usize) {
        let n = self.len();
        self.items.copy_within(i + 1..n, i);
        self.len -= 1;
    }

    /// Adds `[start, end)`; false if it neither merges nor fits.
    fn insert(&mut self, start: u64, end: u64) -> bool {
        let i = self.upper(start);
        let n = self.len();
        assert!(
            (i == 0 || self.items[i - 1].end <= start) && (i == n || end <= self.items[i].start),
            "frames {start:#x}..{end:#x} freed twice"
        );
        let prev = i > 0 && self.items[i - 1].end == start;
        let next = i < n && self.items[i].start == end;
        match (prev, next) {
            (true, true) => {
                self.items[i - 1].end = self.items[i].end;
                self.remove(i);
            }
            (true, false) => self.items[i - 1].end = end,
            (false, true) => self.items[i].start = start,
            (false, false) => {
                if n == MAX_EXTENTS {
                    return false;
                }
                self.items.copy_within(i..n, i + 1);
                self.items[i] = Extent { start, end };
                self.len += 1;
            }
        }
        self.bytes += end - start;
        true
    }

    /// Up to `pages` contiguous frames from the lowest extent.
    fn take_low(&mut self, pages: u64) -> Option<(u64, u64)> {
        if self.len == 0 || pages == 0 {
            return None;
        }
        let e = &mut self.items[0];
        let n = pages.min((e.end - e.start) / PAGE);
        let pa = e.start;
        e.start += n * PAGE;
        if e.start == e.end {
            self.remove(0);
        }
        self.bytes -= n * PAGE;
        Some((pa, n))
    }

    /// Exactly `bytes` contiguous, aligned to `align`, first fit from the bottom.
    fn take_exact(&mut self, bytes: u64, align: u64) -> Option<u64> {
        for i in 0..self.len() {
            let e = self.items[i];
            let start = align_up(e.start, align);
            let end = start.checked_add(bytes)?;
            if end > e.end {
                continue;
            }
            self.carve(i, start, end);
            return Some(start);
        }
        None
    }

    /// The largest `align`-aligned chunk of at most `max` bytes (a multiple of `align`),
    /// searching from the top: `(start, len)`.
    fn take_chunk_high(&mut self, max: u64, align: u64) -> Option<(u64, u64)> {
        for i in (0..self.len()).rev() {
            let e = self.items[i];
            let hi = e.end & !(align - 1);
            let lo = align_up(e.start, align);
            if hi <= lo {
                continue;
            }
            let len = (hi - lo).min(max);
            self.carve(i, hi - len, hi);
            return Some((hi - len, len));
        }
        None
    }

    /// Removes `[start, end)` (inside extent `i`) from the list.
    fn carve(&mut self, i: usize, start: u64, end: u64) {
        let e = self.items[i];
        self.bytes -= end - start;
        match (start == e.start, end == e.end) {
            (true, true) => self.remove(i),
            (true, false) => self.items[i].start = end,
            (false, true) => self.items[i].end = start,
            (false, false) => {
                self.items[i].end = start;
                let n = self.len();
                if n == MAX_EXTENTS {
                    // No room for the upper remainder: it is lost (rare: only a list this
                    // fragmented gets here).
                    self.bytes -= e.end - end;
                    return;
                }
                self.items.copy_within(i + 1..n, i + 2);
                self.items[i + 1] = Extent {
                    start: end,
                    end: e.end,
                };
                self.len += 1;
            }
        }
    }
}

/// Entries of the shared-frames table.
const MAX_SHARED: usize = 1023;

/// Frames with more than one holder: `[start, end)` held by `refs` address spaces.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Held {
    start: u64,
    end: u64,
    refs: u64,
}

/// Sorted, non-overlapping [`Held`] entries (refs >= 2; an entry whose count drops to one is
/// removed: its one holder owns the frames again).
#[repr(C)]
struct SharedList {
    len: u64,
    items: [Held; MAX_SHARED],
}

impl SharedList {
    fn len(&self) -> usize {
        self.len as usize
    }

    /// The first entry overlapping `[start, end)`.
    fn first_overlap(&self, start: u64, end: u64) -> Option<usize> {
        // Binary search for the first entry ending above `start`.
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.items[mid].end <= start {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo < self.len() && self.items[lo].start < end).then_some(lo)
    }

    fn count_overlaps(&self, start: u64, end: u64) -> usize {
        let Some(first) = self.first_overlap(start, end) else {
            return 0;
        };
        self.items[first..self.len()]
            .iter()
            .take_while(|e| e.start < end)
            .count()
    }

    /// Inserts `[start, end)` with `refs` (it overlaps nothing); the caller checked room.
    fn insert_new(&mut self, start: u64, end: u64, refs: u64) {
        let n = self.len();
        let i = self.items[..n].partition_point(|e| e.start < start);
        self.items.copy_within(i..n, i + 1);
        self.items[i] = Held { start, end, refs };
        self.len += 1;
    }

    fn remove(&mut self, i: usize) {
        let n = self.len();
        self.items.copy_within(i + 1..n, i);
        self.len -= 1;
    }

    /// Adds `delta` to the holders of `[a, b)`, a part of entry `i`, splitting it; parts left
    /// with one holder go. False (nothing changed) if a split finds no room.
    fn add(&mut self, i: usize, a: u64, b: u64, delta: i64) -> bool {
        let e = self.items[i];
        let pieces = usize::from(e.start < a) + usize::from(b < e.end);
        if self.len() + pieces > MAX_SHARED {
            return false;
        }
        let refs = e.refs.wrapping_add_signed(delta);
        self.remove(i);
        if e.start < a {
            self.insert_new(e.start, a, e.refs);
        }
        if refs >= 2 {
            self.insert_new(a, b, refs);
        }
        if b < e.end {
            self.insert_new(b, e.end, e.refs);
        }
        true
    }
}

/// The allocator. Obtained once with [`Frames::init`].
#[repr(C)]
pub struct Frames {
    clean: ExtentList,
    dirty: ExtentList,
    /// Frames that several address spaces map (fork shares read-only memory), with how many:
    /// freeing such a frame only drops one holder, and the last holder's free is a real one.
    shared: SharedList,
    /// Guest-physical page holding the `PhysRange` list of a zero request.
    scratch: u64,
    /// Ranges queued in `scratch`.
    pending: u64,
    /// Whether 1 GiB pages may be used for program memory (cleared when the CPU reports them
    /// as reserved: the development KVM does).
    pub giga_ok: u64,
    /// Bytes of guest RAM the allocator manages (what programs can get at most).
    pub total: u64,
    /// Frames holding file pages for read-only mappings (see `pagecache`): one more holder of
    /// them, dropped when allocations run short.
    pub(crate) cache: crate::pagecache::PageCache,
}

// SAFETY: integers and arrays of integers only; the all-zero pattern is the empty allocator.
unsafe impl phys::PlainData for Frames {}

impl Frames {
    /// Takes the usable regions of the boot memory map; the allocator's own state occupies the
    /// first frames of the first region big enough.
    pub fn init(info: &BootInfo) -> &'static mut Frames {
        let own = align_up(core::mem::size_of::<Frames>() as u64, PAGE) + PAGE;
        let n = (info.nr_regions as usize).min(offload_abi::MAX_MEM_REGIONS);
        let usable = |r: &&offload_abi::MemRegion| {
            r.kind == mem_kind::USABLE
                && r.base >= layout::KERNEL_PHYS_END
                && r.base
                    .checked_add(r.len)
                    .is_some_and(|e| e <= info.mem_size)
        };
        let home = info
            .regions
            .iter()
            .take(n)
            .filter(usable)
            .find(|r| r.len >= own + PAGE)
            .map(|r| align_up(r.base, PAGE));
        let Some(home) = home else {
            panic!("no usable guest memory in the boot memory map");
        };
        let frames: &'static mut Frames = phys::owned_mut(home);
        frames.scratch = home + own - PAGE;
        frames.giga_ok = 1;
        for r in info.regions.iter().take(n).filter(usable) {
            let mut start = align_up(r.base, PAGE);
            let end = (r.base + r.len) & !(PAGE - 1);
            if start == home {
                start += own;
            }
            if start < end {
                frames.clean.insert(start, end);
            }
        }
        frames.total = frames.clean.bytes;
        frames
    }

    /// Bytes that allocations can still get: clean and dirty frames, and the page cache's
    /// (dropped when allocations run short; this counts cached frames that processes map too,
    /// which only come back when they unmap them).
    pub fn available(&self) -> u64 {
        self.clean.bytes + self.dirty.bytes + self.cache.bytes()
    }

    /// Drops the page cache and makes the frames that freed clean: whether there was a cache
    /// to drop (an allocation that failed is worth another try).
    fn reclaim_clean(&mut self) -> bool {
        let dropped = self.reclaim();
        self.scrub();
        dropped
    }

    /// One zeroed 4 KiB frame.
    pub fn alloc_page(&mut self) -> Option<u64> {
        self.alloc_run(1).map(|(pa, _)| pa)
    }

    /// Between 1 and `pages` contiguous zeroed frames: `(address, count)`.
    pub fn alloc_run(&mut self, pages: u64) -> Option<(u64, u64)> {
        if let Some(r) = self.clean.take_low(pages) {
            return Some(r);
        }
        self.scrub();
        if let Some(r) = self.clean.take_low(pages) {
            return Some(r);
        }
        self.reclaim_clean().then(|| self.clean.take_low(pages))?
    }

    /// Exactly `pages` contiguous zeroed frames.
    pub fn alloc_contiguous(&mut self, pages: u64) -> Option<u64> {
        let bytes = pages.checked_mul(PAGE)?;
        if let Some(pa) = self.clean.take_exact(bytes, PAGE) {
            return Some(pa);
        }
        self.scrub();
        if let Some(pa) = self.clean.take_exact(bytes, PAGE) {
            return Some(pa);
        }
        self.reclaim_clean()
            .then(|| self.clean.take_exact(bytes, PAGE))?
    }

    /// Exactly `pages` contiguous zeroed frames starting at a multiple of `align` (2 MiB: the
    /// block can be mapped with large pages), else anywhere.
    pub fn alloc_contiguous_aligned(&mut self, pages: u64, align: u64) -> Option<u64> {
        let bytes = pages.checked_mul(PAGE)?;
        if let Some(pa) = self.clean.take_exact(bytes, align) {
            return Some(pa);
        }
        self.scrub();
        self.clean
            .take_exact(bytes, align)
            .or_else(|| self.alloc_contiguous(pages))
    }

    /// A zeroed chunk aligned to `align` (2 MiB or 1 GiB) of at most `max` bytes (a multiple
    /// of `align`), as large as available: `(address, bytes)`.
    pub fn alloc_chunk(&mut self, max: u64, align: u64) -> Option<(u64, u64)> {
        if max < align {
            return None;
        }
        if let Some(r) = self.clean.take_chunk_high(max, align) {
            return Some(r);
        }
        // Drop the page cache only when memory is short, not when it is merely fragmented
        // (callers fall back to smaller pages).
        let short = self.clean.bytes + self.dirty.bytes < max;
        if self.dirty.bytes < align && !(short && self.cache.bytes() > 0) {
            return None;
        }
        if short {
            self.reclaim();
        }
        self.scrub();
        self.clean.take_chunk_high(max, align)
    }

    /// Returns frames whose contents are unknown; they are zeroed before anyone gets them again.
    /// Frames other address spaces still hold (see [`Frames::share`]) only lose one holder.
    pub fn free(&mut self, pa: u64, len: u64) {
        if len == 0 {
            return;
        }
        if self.shared.len == 0 {
            return self.free_owned(pa, len);
        }
        let end = pa + len;
        let mut cur = pa;
        while cur < end {
            let Some(i) = self.shared.first_overlap(cur, end) else {
                self.free_owned(cur, end - cur);
                return;
            };
            let e = self.shared.items[i];
            if e.start > cur {
                self.free_owned(cur, e.start - cur);
            }
            let (a, b) = (e.start.max(cur), e.end.min(end));
            if !self.shared.add(i, a, b, -1) {
                // No room to split the entry: these frames stay held (lost until the job
                // ends) rather than freed under another holder.
                count(|c| c.lost_bytes += b - a);
            }
            cur = b;
        }
    }

    /// One more address space maps the frames `[pa, pa + len)` (fork shares read-only
    /// memory). False, changing nothing, when the table of shared frames is full (the caller
    /// copies instead).
    pub fn share(&mut self, pa: u64, len: u64) -> bool {
        let end = pa + len;
        // Worst case: every overlapped entry splits twice and every gap needs one.
        let overlaps = self.shared.count_overlaps(pa, end);
        if self.shared.len() + 2 * overlaps + overlaps + 3 > MAX_SHARED {
            return false;
        }
        let mut cur = pa;
        while cur < end {
            let (gap_end, next) = match self.shared.first_overlap(cur, end) {
                Some(i) => (self.shared.items[i].start.max(cur), Some(i)),
                None => (end, None),
            };
            if gap_end > cur {
                // Held by one so far (the one sharing it): two holders now.
                self.shared.insert_new(cur, gap_end, 2);
                cur = gap_end;
                continue;
            }
            let Some(i) = next else { break };
            let e = self.shared.items[i];
            let b = e.end.min(end);
            self.shared.add(i, cur, b, 1);
            cur = b;
        }
        true
    }

    /// Whether any frame of `[pa, pa + len)` is held by more than one address space.
    pub fn is_shared(&self, pa: u64, len: u64) -> bool {
        self.shared.len != 0 && self.shared.first_overlap(pa, pa + len).is_some()
    }

    fn free_owned(&mut self, pa: u64, len: u64) {
        assert!(
            pa >= layout::KERNEL_PHYS_END,
            "freeing kernel frames {pa:#x}"
        );
        if !self.dirty.insert(pa, pa + len) {
            self.scrub();
            if !self.dirty.insert(pa, pa + len) {
                count(|c| c.lost_bytes += len);
            }
        }
    }

    /// Returns frames known to read zero (never handed out, or emptied page tables).
    pub fn free_clean(&mut self, pa: u64, len: u64) {
        if len == 0 {
            return;
        }
        assert!(
            pa >= layout::KERNEL_PHYS_END,
            "freeing kernel frames {pa:#x}"
        );
        if !self.clean.insert(pa, pa + len) {
            count(|c| c.lost_bytes += len);
        }
    }

    /// Has the host zero every dirty extent and moves them to the clean list. One VM exit per
    /// [`MAX_ZERO_RANGES`] extents.
    pub fn scrub(&mut self) {
        while self.dirty.len > 0 {
            let n = self.dirty.len().min(MAX_ZERO_RANGES as usize);
            let first = self.dirty.len() - n;
            for i in first..self.dirty.len() {
                let e = self.dirty.items[i];
                self.queue_zero(e.start, e.end - e.start);
            }
            self.flush_zero();
            for i in first..self.dirty.len() {
                let e = self.dirty.items[i];
                if !self.clean.insert(e.start, e.end) {
                    count(|c| c.lost_bytes += e.end - e.start);
                }
            }
            self.dirty.bytes -= self.dirty.items[first..self.dirty.len()]
                .iter()
                .map(|e| e.end - e.start)
                .sum::<u64>();
            self.dirty.len = first as u64;
        }
    }

    /// Queues `[pa, pa + len)` to be zeroed by the host at the next [`Frames::flush_zero`]
    /// (sent early when the request page is full). Adjacent ranges are merged.
    pub fn queue_zero(&mut self, pa: u64, len: u64) {
        if len == 0 {
            return;
        }
        if self.pending > 0 {
            let last = self.scratch + (self.pending - 1) * 16;
            let (gpa, plen) = (phys::read_u64(last), phys::read_u64(last + 8));
            if gpa + plen == pa {
                phys::write_u64(last + 8, plen + len);
                count(|c| c.zeroed_bytes += len);
                return;
            }
        }
        if self.pending == MAX_ZERO_RANGES {
            self.flush_zero();
        }
        phys::write_u64s(self.scratch + self.pending * 16, &[pa, len]);
        self.pending += 1;
        count(|c| c.zeroed_bytes += len);
    }

    /// Sends the queued zero request (one VM exit), if any.
    pub fn flush_zero(&mut self) {
        if self.pending == 0 {
            return;
        }
        let r = bridge::zero_phys(self.scratch, self.pending);
        assert!(r == 0, "the host refused to zero guest memory ({r})");
        count(|c| c.zero_requests += 1);
        self.pending = 0;
    }
}

#[inline]
pub const fn align_up(v: u64, align: u64) -> u64 {
    (v.wrapping_add(align - 1)) & !(align - 1)
}
