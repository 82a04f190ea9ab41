//! A process's memory: its page tables, its areas (VMAs), the program break and the mmap layout,
//! and the policy that decides when memory is mapped (docs/DESIGN.md "Memory").
//!
//! Layout as Linux's x86_64 one: the stack at the top of the user half, mmap areas top-down from
//! `mmap_base` (a guard of max(stack limit, 128 MiB) below the stack), the program break after
//! the program. Policy: with pre-faulting (the default) memory is mapped when brk/mmap/mprotect
//! grant it, so the program's steady state takes no page faults; without, the page-fault handler
//! maps on first touch. Both map 2 MiB pages (1 GiB where the CPU takes them) wherever an
//! aligned block lies inside an area; big mappings are placed 2 MiB aligned so that they can.
//!
//! The heap gets 2 MiB pages although it grows in small steps: the incomplete 2 MiB block at
//! its end is backed by one reserved 2 MiB chunk whose frames its 4 KiB pages map in place, so
//! the block turns into one 2 MiB page (one entry written) when the break passes its end.

use crate::arch::{self, SpinLock};
use crate::frames::Frames;
use crate::mm::{AddressSpace, GIGA, HUGE, PAGE, align_up, pte};
use crate::vma::{Vma, VmaTable, kind, prot};
use crate::{Kernel, KernelGuard, bridge, klog, pagecache};
use core::ops::DerefMut;
use offload_abi::errno::{EBUSY, EEXIST, EFAULT, EINTR, EINVAL, ENOMEM};
use offload_abi::{BootInfo, boot_flags, layout, syscall_fault};

/// Lowest address mmap hands out (Linux's default vm.mmap_min_addr).
pub const MMAP_MIN: u64 = 0x10000;
/// One past the highest address a mapping may use (Linux's TASK_SIZE on x86_64: the last page
/// below 2^47 is never mapped).
pub const TASK_SIZE: u64 = layout::USER_END - PAGE;
/// Linux's stack_guard_gap: kept free below areas that grow down.
pub const STACK_GUARD: u64 = 256 * PAGE;
/// MAP_32BIT window (arch/x86/kernel/sys_x86_64.c).
const LOW32: (u64, u64) = (0x4000_0000, 0x8000_0000);

/// Page-table leaf flags for `PROT_*` bits.
pub fn leaf_flags(p: u32) -> u64 {
    if p & prot::MASK == 0 {
        return pte::RESERVED | pte::USER;
    }
    let mut f = pte::PRESENT | pte::USER;
    if p & prot::WRITE != 0 {
        f |= pte::WRITABLE;
    }
    if p & prot::EXEC == 0 {
        f |= pte::NO_EXECUTE;
    }
    f
}

/// Figures for `-v` and docs/PERFORMANCE.md: how much ring-0 work the memory paths cost.
#[derive(Clone, Copy)]
pub struct Counters {
    /// Memory syscalls served.
    pub calls: u64,
    /// TSC ticks spent in them (handler entry to return, in ring 0).
    pub call_ticks: u64,
    /// Page faults served by mapping memory (demand paging, stack growth).
    pub faults: u64,
    /// TSC ticks spent serving them.
    pub fault_ticks: u64,
    /// Pages mapped with fresh memory: 4 KiB, 2 MiB, 1 GiB.
    pub mapped: [u64; 3],
    /// Heap blocks turned into 2 MiB pages.
    pub promoted: u64,
    /// Host zero requests and the bytes they covered.
    pub zero_requests: u64,
    pub zeroed_bytes: u64,
    /// Bytes lost to extent lists that overflowed.
    pub lost_bytes: u64,
    /// Page cache: bytes of file mappings served from it, bytes read into it, times it was
    /// dropped because memory ran short.
    pub cache_hit_bytes: u64,
    pub cache_miss_bytes: u64,
    pub cache_reclaims: u64,
    verbose: bool,
    tsc_khz: u64,
}

static COUNTERS: SpinLock<Counters> = SpinLock::new(Counters {
    calls: 0,
    call_ticks: 0,
    faults: 0,
    fault_ticks: 0,
    mapped: [0; 3],
    promoted: 0,
    zero_requests: 0,
    zeroed_bytes: 0,
    lost_bytes: 0,
    cache_hit_bytes: 0,
    cache_miss_bytes: 0,
    cache_reclaims: 0,
    verbose: false,
    tsc_khz: 0,
});

/// Updates the counters.
pub fn count(f: impl FnOnce(&mut Counters)) {
    f(&mut COUNTERS.lock())
}

/// Logs what the memory manager did (with `-v`; called once when the job ends).
pub fn log_summary() {
    // Never wait here: the job may be ending from a panic inside `count`.
    let Some(c) = COUNTERS.try_lock().map(|c| *c) else {
        return;
    };
    if !c.verbose {
        return;
    }
    let us = |t: u64| t * 1000 / c.tsc_khz.max(1);
    klog!(
        bridge::level::INFO,
        "mm: {} memory syscalls, {} us in ring 0 ({} us each); {} faults served ({} us); mapped \
         {} x 4K, {} x 2M, {} x 1G pages, {} heap blocks promoted to 2M; host zeroing: {} \
         requests, {} KiB; lost to fragmentation: {} KiB; page cache: {} KiB mapped from it, {} \
         KiB read into it, dropped {} times; TLB shootdowns that interrupted other vCPUs: {}",
        c.calls,
        us(c.call_ticks),
        us(c.call_ticks) / c.calls.max(1),
        c.faults,
        us(c.fault_ticks),
        c.mapped[0],
        c.mapped[1],
        c.mapped[2],
        c.promoted,
        c.zero_requests,
        c.zeroed_bytes >> 10,
        c.lost_bytes >> 10,
        c.cache_hit_bytes >> 10,
        c.cache_miss_bytes >> 10,
        c.cache_reclaims,
        crate::tlb::remote_count()
    );
}

/// Runs a memory syscall handler and accounts its ring-0 time.
pub fn timed(f: impl FnOnce() -> i64) -> i64 {
    let t = arch::rdtsc();
    let r = f();
    let dt = arch::rdtsc().wrapping_sub(t);
    count(|c| {
        c.calls += 1;
        c.call_ticks += dt;
    });
    r
}

/// Where a new mapping goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Anywhere; at the hint if that range is free.
    Hint(u64),
    /// Exactly here, replacing what was there (MAP_FIXED).
    Fixed(u64),
    /// Exactly here, EEXIST if anything is there (MAP_FIXED_NOREPLACE).
    NoReplace(u64),
    /// Below 2 GiB (MAP_32BIT).
    Low32,
}

/// A new anonymous mapping.
pub struct MapRequest {
    pub place: Place,
    /// Page multiple.
    pub len: u64,
    pub prot: u32,
    /// [`kind`] bits.
    pub kind: u32,
    /// Map now even without pre-faulting (MAP_POPULATE, MAP_LOCKED).
    pub populate: bool,
    /// Alignment of the start (4 KiB, or 2 MiB for MAP_HUGETLB).
    pub align: u64,
}

/// Outcome of a page fault.
pub enum Fault {
    /// Memory is mapped now; the instruction can run again.
    Mapped,
    /// The program gets this signal.
    Signal(u32, &'static str),
}

/// The first program's `StackLayout`, from the VMM's initial stack: the string blob at the
/// top holds the argv strings, then the envp strings, then AT_EXECFN.
pub fn boot_stack_layout(info: &BootInfo) -> offload_abi::StackLayout {
    let top = layout::USER_STACK_TOP;
    let bottom = top - info.stack_size;
    let blob = top - info.strings_len;
    let execfn = blob + u64::from(info.execfn_off);
    // envp[0] (the first environment string) follows argv's pointers and NULL.
    let envp0 = info.initial_sp + 8 * (u64::from(info.argc) + 2);
    let env_start = if info.envc > 0 && (bottom..top - 8).contains(&envp0) {
        crate::phys::read_u64(info.stack_gpa + (envp0 - bottom))
    } else {
        execfn
    };
    let env_start = env_start.clamp(blob, execfn);
    offload_abi::StackLayout {
        arg_start: blob,
        arg_end: env_start,
        env_start,
        env_end: execfn,
        auxv_start: info.auxv_va,
        auxv_end: info.auxv_va + offload_abi::AUXV_WORDS as u64 * 8,
        start_stack: info.initial_sp,
    }
}

/// A process's memory.
pub struct Mm {
    pub aspace: AddressSpace,
    /// Where its arguments and environment are (for the /proc view).
    pub layout: offload_abi::StackLayout,
    vmas: &'static mut VmaTable,
    brk_start: u64,
    brk: u64,
    /// 2 MiB chunk behind the heap's incomplete last block (0: none); see the module docs.
    heap_chunk: u64,
    /// The 2 MiB block `heap_chunk` backs.
    heap_block: u64,
    mmap_base: u64,
    /// Where the next top-down search starts (the last mapping's start, raised when memory
    /// above it is unmapped): most searches then look at one gap instead of every area.
    free_cache: u64,
    prefault: bool,
    /// mlockall(MCL_FUTURE): new areas are locked and mapped at once.
    lock_future: bool,
    stack_limit: u64,
}

/// Worst-case page-table bytes for mapping `len` bytes with 4 KiB pages.
fn table_overhead(len: u64) -> u64 {
    (len / HUGE + len / GIGA + 4) * PAGE
}

impl Mm {
    /// An empty address space using the page tables at `pml4` (whose user half is empty), with
    /// the stack block the VMM prepared as its first area.
    pub fn new(frames: &mut Frames, info: &BootInfo, pml4: u64) -> Option<Mm> {
        let vmas = VmaTable::new(frames)?;
        let stack_bottom = layout::USER_STACK_TOP - info.stack_size;
        vmas.insert(Vma {
            start: stack_bottom,
            end: layout::USER_STACK_TOP,
            prot: prot::READ | prot::WRITE,
            kind: kind::GROWSDOWN,
        })
        .ok()?;
        let gap = (info.stack_size + STACK_GUARD).max(128 << 20);
        count(|c| {
            c.verbose = info.flags & boot_flags::VERBOSE != 0;
            c.tsc_khz = info.tsc_khz;
        });
        Some(Mm {
            aspace: AddressSpace::new(pml4),
            layout: offload_abi::StackLayout::default(),
            vmas,
            brk_start: 0,
            brk: 0,
            heap_chunk: 0,
            heap_block: 0,
            mmap_base: (layout::USER_STACK_TOP - gap) & !(HUGE - 1),
            free_cache: (layout::USER_STACK_TOP - gap) & !(HUGE - 1),
            prefault: info.flags & boot_flags::PREFAULT != 0,
            lock_future: false,
            stack_limit: info.rlimits[3][0].max(info.stack_size),
        })
    }

    /// A copy of this address space for a forked child: the same areas, program break and
    /// layout, every page that has a frame copied into a fresh one (by the host: ring 0 only
    /// walks the tables and queues ranges). The heap's reserved chunk stays the parent's.
    ///
    /// MAP_SHARED areas are shared, not copied: mapped first if they are not yet (demand
    /// paging), then the child maps the same frames, counted as held by both (`Frames::share`).
    ///
    /// `rsp` is the forking thread's stack pointer: in the main stack, what lies below it (past
    /// the 128-byte red zone) is dead by the ABI (a signal handler may overwrite it at any
    /// time), so only the live part of the stack is copied; the rest of the child's stack
    /// reads zero. (The stack is 8 MiB by default; a program uses a few pages of it.)
    pub fn fork(&mut self, frames: &mut Frames, rsp: u64) -> Result<Mm, i64> {
        let shared: [Option<(u64, u64)>; 16] = {
            let mut list = [None; 16];
            let mut n = 0;
            for v in self.vmas.all() {
                if v.kind & kind::SHARED != 0 {
                    if n == list.len() {
                        return Err(-ENOMEM);
                    }
                    list[n] = Some((v.start, v.end));
                    n += 1;
                }
            }
            list
        };
        for &(a, b) in shared.iter().flatten() {
            // Demand paging: every page must have its frame before both sides map it.
            self.populate(frames, a, b)?;
        }
        let pml4 = crate::mm::new_pml4(frames).ok_or(-ENOMEM)?;
        let Some(vmas) = VmaTable::new(frames) else {
            frames.free(pml4, PAGE);
            return Err(-ENOMEM);
        };
        vmas.copy_from(self.vmas);
        let child = Mm {
            aspace: AddressSpace::new(pml4),
            layout: self.layout,
            vmas,
            brk_start: self.brk_start,
            brk: self.brk,
            heap_chunk: 0,
            heap_block: 0,
            mmap_base: self.mmap_base,
            free_cache: self.free_cache,
            prefault: self.prefault,
            lock_future: self.lock_future,
            stack_limit: self.stack_limit,
        };
        let Some(mut batch) = CopyBatch::new(frames) else {
            child.destroy(frames);
            return Err(-ENOMEM);
        };
        let mut ok = true;
        for v in self.vmas.all() {
            let r = self.aspace.fork_range(
                &child.aspace,
                frames,
                v.start,
                v.end,
                if v.kind & kind::SHARED != 0 {
                    crate::mm::ForkCopy::Share
                } else if v.prot & prot::WRITE == 0 {
                    // Read-only memory (program text, read-only file mappings): shared until
                    // someone makes it writable.
                    crate::mm::ForkCopy::ShareOrCopy
                } else if v.kind & kind::GROWSDOWN != 0 && rsp > v.start && rsp <= v.end {
                    crate::mm::ForkCopy::From(rsp.saturating_sub(128) & !(PAGE - 1))
                } else {
                    crate::mm::ForkCopy::From(0)
                },
                &mut |f, src, dst, len| batch.push(f, src, dst, len),
            );
            if r.is_err() {
                ok = false;
                break;
            }
        }
        ok = ok && batch.flush().is_ok();
        batch.free(frames);
        if ok {
            Ok(child)
        } else {
            child.destroy(frames);
            Err(-ENOMEM)
        }
    }

    /// Gives `[start, end)` its own copies of frames that other processes also hold (before
    /// the range becomes writable): fresh frames, the contents copied by the host, the shared
    /// ones released.
    pub fn unshare(&mut self, frames: &mut Frames, start: u64, end: u64) -> Result<(), i64> {
        while let Some((va, pa, len, flags)) = self.aspace.first_held_run(frames, start, end) {
            let mut batch = CopyBatch::new(frames).ok_or(-ENOMEM)?;
            let r = (|| {
                self.aspace
                    .unmap(frames, va, va + len, false)
                    .map_err(|_| -ENOMEM)?;
                self.aspace
                    .map_copy(frames, (va, pa, len, flags), 0, &mut |f, src, dst, n| {
                        batch.push(f, src, dst, n)
                    })
                    .map_err(|_| -ENOMEM)?;
                batch.flush().map_err(|_| -ENOMEM)
            })();
            batch.free(frames);
            if let Err(e) = r {
                // Put the shared frames back where the copy could not be made.
                let _ = self.aspace.unmap(frames, va, va + len, true);
                let _ = self
                    .aspace
                    .map_contiguous(frames, va, pa, len, flags, false);
                return Err(e);
            }
            // The copy is in place: this process lets go of the shared frames.
            frames.free(pa, len);
        }
        Ok(())
    }

    /// Frees everything of this address space: its frames, page tables and area table. The
    /// calling CPU must not have it loaded.
    pub fn destroy(mut self, frames: &mut Frames) {
        self.drop_heap_chunk(frames);
        self.aspace.teardown(frames);
        VmaTable::free(self.vmas, frames);
    }

    /// Records a segment of the program image that the loader mapped (`start` may lie inside
    /// the previous segment's last page, which keeps that segment's area).
    pub fn add_image_area(&mut self, start: u64, end: u64, p: u32) -> Result<(), ()> {
        let start = match self.vmas.find(start) {
            Some(v) => v.end,
            None => start,
        };
        if start >= end {
            return Ok(());
        }
        self.vmas
            .insert(Vma {
                start,
                end,
                prot: p,
                kind: kind::IMAGE,
            })
            .map_err(|_| ())
    }

    /// Where the heap starts (proc(5)'s start_brk).
    pub fn brk_start(&self) -> u64 {
        self.brk_start
    }

    /// Sets the program break after the image ending at `image_end`. The heap starts at the
    /// next 2 MiB boundary (Linux randomises it above the image anyway) so that it can be
    /// mapped with 2 MiB pages from its first byte.
    pub fn set_break(&mut self, image_end: u64) {
        self.brk_start = align_up(image_end, HUGE);
        self.brk = self.brk_start;
    }

    fn wants_prefault(&self, k: u32) -> bool {
        k & kind::LOCKED != 0 || ((self.prefault || self.lock_future) && k & kind::NORESERVE == 0)
    }

    /// Gives the heap's reserved chunk up when an operation other than brk growth touches its
    /// block (see [`Mm::drop_heap_chunk`]).
    fn release_heap_chunk(&mut self, frames: &mut Frames, start: u64, end: u64) {
        if self.heap_chunk != 0 && end > self.heap_block && start < self.heap_block + HUGE {
            self.drop_heap_chunk(frames);
        }
    }

    /// Ends the heap's reservation: the chunk's frames its block does not map in place go back
    /// to the allocator (clean: never mapped); the mapped ones become ordinary pages. Callers
    /// that unmap part of the block do so afterwards, so no frame is freed twice.
    fn drop_heap_chunk(&mut self, frames: &mut Frames) {
        if self.heap_chunk == 0 {
            return;
        }
        self.aspace
            .unused_in_place(self.heap_block, self.heap_chunk, |pa, len| {
                frames.free_clean(pa, len)
            });
        self.heap_chunk = 0;
    }

    /// Whether `[start, end)` is free, with the guard gap below areas that grow down.
    fn range_free(&self, start: u64, end: u64) -> bool {
        if self.vmas.intersects(start, end) {
            return false;
        }
        match self.vmas.above(end.saturating_sub(1)) {
            Some(v) if v.kind & kind::GROWSDOWN != 0 => v.start.saturating_sub(STACK_GUARD) >= end,
            _ => true,
        }
    }

    /// Finds room for `len` bytes: the hint if free, else top-down below `mmap_base` (first
    /// from the free-area cache down), else anywhere. `offset` is the wanted start modulo 2 MiB
    /// (mremap keeps large pages large).
    fn find_place(
        &mut self,
        giga_ok: bool,
        place: Place,
        len: u64,
        align: u64,
        offset: u64,
    ) -> Option<u64> {
        if len > TASK_SIZE - MMAP_MIN {
            return None;
        }
        let mut aligns = [align, align, align];
        if align == PAGE && len >= HUGE {
            aligns = [if giga_ok && len >= GIGA { GIGA } else { HUGE }, HUGE, PAGE];
        }
        match place {
            Place::Low32 => {
                return self
                    .vmas
                    .gap_top_down(len, PAGE, 0, LOW32.0, LOW32.1, STACK_GUARD);
            }
            Place::Hint(hint) if hint != 0 => {
                let a = if hint & !(PAGE - 1) < MMAP_MIN {
                    MMAP_MIN
                } else {
                    hint & !(PAGE - 1)
                };
                if a.is_multiple_of(align)
                    && a.checked_add(len).is_some_and(|e| e <= TASK_SIZE)
                    && self.range_free(a, a + len)
                {
                    return Some(a);
                }
            }
            _ => {}
        }
        let cache = self.free_cache.min(self.mmap_base);
        for a in aligns {
            let off = if a == PAGE {
                0
            } else {
                offset & (a - 1) & !(PAGE - 1)
            };
            for high in [cache, self.mmap_base, TASK_SIZE] {
                if let Some(va) = self
                    .vmas
                    .gap_top_down(len, a, off, MMAP_MIN, high, STACK_GUARD)
                {
                    if va < self.mmap_base {
                        self.free_cache = va;
                    }
                    return Some(va);
                }
            }
        }
        None
    }

    /// Maps fresh memory for `[start, end)` with `p`, 2 MiB pages where blocks fit. `fresh`:
    /// nothing in the range is mapped yet (see [`AddressSpace::populate`]).
    fn fill(
        &self,
        frames: &mut Frames,
        start: u64,
        end: u64,
        p: u32,
        fresh: bool,
    ) -> Result<(), i64> {
        let counts = self
            .aspace
            .populate(frames, start, end, leaf_flags(p), true, fresh)
            .map_err(|_| -ENOMEM)?;
        count(|c| {
            for (m, n) in c.mapped.iter_mut().zip(counts) {
                *m += n;
            }
        });
        Ok(())
    }

    /// mmap(2) of anonymous memory; the caller validated the arguments.
    pub fn map_anon(&mut self, frames: &mut Frames, r: MapRequest) -> Result<u64, i64> {
        let (va, populate) = self.new_area(frames, &r, false)?;
        if populate && let Err(e) = self.fill(frames, va, va + r.len, r.prot, true) {
            self.drop_new_area(frames, va, va + r.len);
            return Err(e);
        }
        Ok(va)
    }

    /// mmap(2) of a file: `r.len` bytes mapped at once, the first `valid` of them holding
    /// `file`'s bytes from `off` (see [`pagecache::map_file`]: read-only mappings share the
    /// page cache's frames); the caller validated the arguments.
    pub fn map_file(
        &mut self,
        frames: &mut Frames,
        r: MapRequest,
        file: &pagecache::File,
        off: u64,
        valid: u64,
    ) -> Result<u64, i64> {
        let (va, _) = self.new_area(frames, &r, true)?;
        let flags = leaf_flags(r.prot);
        if let Err(e) =
            pagecache::map_file(&self.aspace, frames, va, r.len, flags, file, off, valid)
        {
            self.drop_new_area(frames, va, va + r.len);
            return Err(e);
        }
        Ok(va)
    }

    /// Places and records the area of a new mapping (`map_all`: it will be mapped at once
    /// whatever the policy); returns its start and whether the policy maps it at once.
    fn new_area(
        &mut self,
        frames: &mut Frames,
        r: &MapRequest,
        map_all: bool,
    ) -> Result<(u64, bool), i64> {
        let va = match r.place {
            Place::Fixed(a) => {
                self.unmap(frames, a, a + r.len)?;
                a
            }
            Place::NoReplace(a) => {
                if self.vmas.intersects(a, a + r.len) {
                    return Err(-EEXIST);
                }
                a
            }
            place => self
                .find_place(frames.giga_ok != 0, place, r.len, r.align, 0)
                .ok_or(-ENOMEM)?,
        };
        let end = va + r.len;
        self.release_heap_chunk(frames, va, end);
        let kind = r.kind | if self.lock_future { kind::LOCKED } else { 0 };
        let populate = map_all || (r.prot != 0 && (r.populate || self.wants_prefault(kind)));
        if populate && frames.available() < r.len + table_overhead(r.len) {
            return Err(-ENOMEM);
        }
        // Demand paging refuses what could never fit, as Linux's heuristic overcommit does
        // (MAP_NORESERVE is exempt there too).
        if !populate && kind & kind::NORESERVE == 0 && r.len > frames.total {
            return Err(-ENOMEM);
        }
        self.vmas
            .insert(Vma {
                start: va,
                end,
                prot: r.prot,
                kind,
            })
            .map_err(|_| -ENOMEM)?;
        Ok((va, populate))
    }

    /// Undoes [`Mm::new_area`] after mapping it failed part way.
    fn drop_new_area(&mut self, frames: &mut Frames, start: u64, end: u64) {
        let _ = self.aspace.unmap(frames, start, end, true);
        self.remove_areas(start, end);
    }

    fn remove_areas(&mut self, start: u64, end: u64) {
        if self.vmas.split(start).is_ok() && self.vmas.split(end).is_ok() {
            self.vmas.remove_range(start, end);
        }
    }

    /// munmap(2) of `[start, end)` (page aligned): frees its memory, splits areas.
    pub fn unmap(&mut self, frames: &mut Frames, start: u64, end: u64) -> Result<(), i64> {
        if !self.vmas.intersects(start, end) {
            return Ok(());
        }
        if end > self.free_cache {
            // The hole can be found again by the next top-down search.
            self.free_cache = end.min(self.mmap_base);
        }
        self.release_heap_chunk(frames, start, end);
        if self
            .vmas
            .find(start)
            .is_some_and(|v| v.start == start && v.end == end)
        {
            // Exactly one area: no splitting.
            self.aspace
                .unmap(frames, start, end, true)
                .map_err(|_| -ENOMEM)?;
            self.vmas.remove_exact(start, end);
            return Ok(());
        }
        self.vmas.split(start).map_err(|_| -ENOMEM)?;
        self.vmas.split(end).map_err(|_| -ENOMEM)?;
        // Only the part that has areas can have page tables.
        let lo = self
            .vmas
            .first_in(start, end)
            .map_or(start, |v| v.start.max(start));
        let hi = self.vmas.below(end).map_or(end, |v| v.end.min(end));
        if lo < hi {
            self.aspace
                .unmap(frames, lo, hi, true)
                .map_err(|_| -ENOMEM)?;
        }
        self.vmas.remove_range(start, end);
        Ok(())
    }

    /// mprotect(2) of `[start, end)`: areas up to the first hole change (ENOMEM for the hole),
    /// as Linux does. Memory that becomes accessible is mapped when the policy pre-faults.
    pub fn protect(
        &mut self,
        frames: &mut Frames,
        start: u64,
        end: u64,
        p: u32,
    ) -> Result<(), i64> {
        self.release_heap_chunk(frames, start, end);
        let mut cur = start;
        while cur < end {
            let Some(v) = self.vmas.find(cur) else {
                self.vmas.merge_at(cur);
                return Err(-ENOMEM);
            };
            let seg_end = v.end.min(end);
            self.vmas.split(cur).map_err(|_| -ENOMEM)?;
            self.vmas.split(seg_end).map_err(|_| -ENOMEM)?;
            if p & prot::WRITE != 0 && v.kind & kind::SHARED == 0 {
                // Frames shared with other processes since a fork become this one's own.
                self.unshare(frames, cur, seg_end)?;
            }
            self.vmas.set_prot(cur, seg_end, p);
            self.aspace
                .protect(frames, cur, seg_end, leaf_flags(p))
                .map_err(|_| -ENOMEM)?;
            if v.prot == 0 && p != 0 && self.wants_prefault(v.kind) {
                // Not fatal: what cannot be mapped now is mapped on first touch.
                let _ = self.fill(frames, cur, seg_end, p, false);
            }
            self.vmas.merge_at(cur);
            cur = seg_end;
        }
        self.vmas.merge_at(end);
        Ok(())
    }

    /// brk(2): returns the new break, or the old one when it cannot move.
    pub fn brk(&mut self, frames: &mut Frames, addr: u64) -> u64 {
        if addr < self.brk_start {
            return self.brk;
        }
        let old_end = align_up(self.brk, PAGE);
        let Some(new_end) = addr.checked_add(PAGE - 1).map(|v| v & !(PAGE - 1)) else {
            return self.brk;
        };
        if new_end > TASK_SIZE {
            return self.brk;
        }
        if new_end < old_end {
            if self.unmap(frames, new_end, old_end).is_err() {
                return self.brk;
            }
        } else if new_end > old_end {
            // Linux keeps one page (and the stack guard) free above the new break.
            if !self.range_free(old_end, new_end + PAGE) {
                return self.brk;
            }
            if self.grow_heap(frames, old_end, new_end).is_err() {
                return self.brk;
            }
        }
        self.brk = addr;
        addr
    }

    fn grow_heap(&mut self, frames: &mut Frames, old_end: u64, new_end: u64) -> Result<(), ()> {
        let rw = prot::READ | prot::WRITE;
        let heap_kind = kind::HEAP | if self.lock_future { kind::LOCKED } else { 0 };
        let prefault = self.wants_prefault(heap_kind);
        let delta = new_end - old_end;
        if (prefault && frames.available() < delta + table_overhead(delta))
            || (!prefault && delta > frames.total)
        {
            return Err(());
        }
        match self.vmas.find(old_end.wrapping_sub(1)) {
            Some(v) if old_end > self.brk_start && v.kind & kind::HEAP != 0 && v.end == old_end => {
                self.vmas.set_end(old_end, new_end)
            }
            _ => self
                .vmas
                .insert(Vma {
                    start: old_end,
                    end: new_end,
                    prot: rw,
                    kind: heap_kind,
                })
                .map_err(|_| ())?,
        }
        if !prefault {
            return Ok(());
        }
        if self.map_heap(frames, old_end, new_end).is_err() {
            self.drop_heap_chunk(frames);
            let _ = self.aspace.unmap(frames, old_end, new_end, true);
            self.remove_areas(old_end, new_end);
            return Err(());
        }
        Ok(())
    }

    /// Maps the heap's new `[from, to)`: the rest of the reserved block, whole 2 MiB blocks,
    /// and a new reserved block for the incomplete end.
    fn map_heap(&mut self, frames: &mut Frames, from: u64, to: u64) -> Result<(), i64> {
        let rw = prot::READ | prot::WRITE;
        let flags = leaf_flags(rw);
        let mut va = from;
        if va & (HUGE - 1) != 0 {
            let block = va & !(HUGE - 1);
            let upto = to.min(block + HUGE);
            if self.heap_chunk != 0 {
                self.aspace
                    .map_4k(
                        frames,
                        va,
                        self.heap_chunk + (va - block),
                        (upto - va) / PAGE,
                        flags,
                    )
                    .map_err(|_| -ENOMEM)?;
                count(|c| c.mapped[0] += (upto - va) / PAGE);
            } else {
                self.fill(frames, va, upto, rw, true)?;
            }
            va = upto;
            if va == block + HUGE && self.heap_chunk != 0 {
                if self.aspace.promote(frames, block) {
                    count(|c| c.promoted += 1);
                }
                self.heap_chunk = 0;
            }
        }
        let whole = to & !(HUGE - 1);
        if whole > va {
            self.fill(frames, va, whole, rw, true)?;
            va = whole;
        }
        if va < to {
            // The page table first: once the chunk is reserved, mapping into it cannot fail.
            self.aspace.ensure_table(frames, va).map_err(|_| -ENOMEM)?;
            match frames.alloc_chunk(HUGE, HUGE) {
                Some((pa, _)) => {
                    self.heap_chunk = pa;
                    self.heap_block = va;
                    self.aspace
                        .map_4k(frames, va, pa, (to - va) / PAGE, flags)
                        .map_err(|_| -ENOMEM)?;
                    count(|c| c.mapped[0] += (to - va) / PAGE);
                }
                None => self.fill(frames, va, to, rw, true)?,
            }
        }
        Ok(())
    }

    /// mremap(2); the caller checked flags and alignment. `fixed` is the MREMAP_FIXED target.
    #[allow(clippy::too_many_arguments)]
    pub fn remap(
        &mut self,
        frames: &mut Frames,
        old: u64,
        mut old_len: u64,
        new_len: u64,
        may_move: bool,
        fixed: Option<u64>,
        dont_unmap: bool,
    ) -> Result<u64, i64> {
        self.release_heap_chunk(frames, old, old + old_len.max(new_len));
        if let Some(new) = fixed {
            if new & (PAGE - 1) != 0 || new_len > TASK_SIZE || new > TASK_SIZE - new_len {
                return Err(-EINVAL);
            }
            if old + old_len > new && new + new_len > old {
                return Err(-EINVAL);
            }
            self.unmap(frames, new, new + new_len)?;
            if old_len > new_len {
                self.unmap(frames, old + new_len, old + old_len)?;
                old_len = new_len;
            }
            let v = self.area_to_resize(old, old_len)?;
            return self.move_area(frames, v, old, old_len, new, new_len, dont_unmap);
        }
        if dont_unmap {
            let v = self.area_to_resize(old, old_len)?;
            let new = self
                .find_place(frames.giga_ok != 0, Place::Hint(0), new_len, PAGE, old)
                .ok_or(-ENOMEM)?;
            return self.move_area(frames, v, old, old_len, new, new_len, true);
        }
        if old_len >= new_len {
            if old_len > new_len {
                self.unmap(frames, old + new_len, old + old_len)?;
            }
            return Ok(old);
        }
        let v = self.area_to_resize(old, old_len)?;
        let grow_end = old + new_len;
        if old + old_len == v.end && grow_end <= TASK_SIZE && self.range_free(v.end, grow_end) {
            let prefault = v.prot != 0 && self.wants_prefault(v.kind);
            let delta = new_len - old_len;
            if (prefault && frames.available() < delta + table_overhead(delta))
                || (!prefault && v.kind & kind::NORESERVE == 0 && delta > frames.total)
            {
                return Err(-ENOMEM);
            }
            self.vmas.set_end(v.end, grow_end);
            if prefault && let Err(e) = self.fill(frames, v.end, grow_end, v.prot, true) {
                let _ = self.aspace.unmap(frames, v.end, grow_end, true);
                self.vmas.set_end(grow_end, v.end);
                return Err(e);
            }
            return Ok(old);
        }
        if !may_move {
            return Err(-ENOMEM);
        }
        let new = self
            .find_place(frames.giga_ok != 0, Place::Hint(0), new_len, PAGE, old)
            .ok_or(-ENOMEM)?;
        self.move_area(frames, v, old, old_len, new, new_len, false)
    }

    /// Linux's vma_to_resize: `[old, old + len)` must lie inside one area.
    fn area_to_resize(&self, old: u64, len: u64) -> Result<Vma, i64> {
        let v = self.vmas.find(old).ok_or(-EFAULT)?;
        if len > v.end - old {
            return Err(-EFAULT);
        }
        if len == 0 && v.kind & kind::SHARED == 0 {
            return Err(-EINVAL);
        }
        if len == 0 {
            // Duplicating a shared mapping (old_size 0) needs shared frames: not supported.
            return Err(-EINVAL);
        }
        Ok(v)
    }

    /// Moves `[old, old + old_len)` of area `v` to `new` and makes it `new_len` long.
    #[allow(clippy::too_many_arguments)]
    fn move_area(
        &mut self,
        frames: &mut Frames,
        v: Vma,
        old: u64,
        old_len: u64,
        new: u64,
        new_len: u64,
        dont_unmap: bool,
    ) -> Result<u64, i64> {
        let prefault = v.prot != 0 && self.wants_prefault(v.kind);
        let grow = new_len.saturating_sub(old_len);
        if !prefault && v.kind & kind::NORESERVE == 0 && grow > frames.total {
            return Err(-ENOMEM);
        }
        let refill = if dont_unmap { old_len } else { 0 };
        if frames.available() < table_overhead(new_len) + if prefault { grow + refill } else { 0 } {
            return Err(-ENOMEM);
        }
        let moved_kind = v.kind & !(kind::HEAP | kind::IMAGE);
        // The old area goes first, so that the new one cannot merge with it.
        self.vmas.split(old).map_err(|_| -ENOMEM)?;
        self.vmas.split(old + old_len).map_err(|_| -ENOMEM)?;
        self.vmas.remove_range(old, old + old_len);
        let new_area = Vma {
            start: new,
            end: new + new_len,
            prot: v.prot,
            kind: moved_kind,
        };
        if self.vmas.insert(new_area).is_err() {
            let _ = self.vmas.insert(Vma {
                start: old,
                end: old + old_len,
                ..v
            });
            return Err(-ENOMEM);
        }
        if self.aspace.relocate(frames, old, new, old_len).is_err() {
            // Nothing moved (relocate undoes itself): the old area comes back.
            self.remove_areas(new, new + new_len);
            let _ = self.vmas.insert(Vma {
                start: old,
                end: old + old_len,
                ..v
            });
            return Err(-ENOMEM);
        }
        if dont_unmap {
            // The old range stays mapped and reads zero (Linux: fresh pages on the next touch).
            let _ = self.vmas.insert(Vma {
                start: old,
                end: old + old_len,
                ..v
            });
            if prefault {
                let _ = self.fill(frames, old, old + old_len, v.prot, true);
            }
        }
        if prefault && grow > 0 {
            let _ = self.fill(frames, new + old_len, new + new_len, v.prot, true);
        }
        Ok(new)
    }

    /// Visits the areas covering `[start, end)` from low to high as `(area, lo, hi)` pieces;
    /// `Err(ENOMEM)` after the visit if part of the range has no area. `f` may stop the walk
    /// with an error.
    fn for_areas(
        &mut self,
        frames: &mut Frames,
        start: u64,
        end: u64,
        mut f: impl FnMut(&mut Self, &mut Frames, Vma, u64, u64) -> Result<(), i64>,
    ) -> Result<(), i64> {
        let mut cur = start;
        let mut hole = false;
        while cur < end {
            let v = match self.vmas.find(cur) {
                Some(v) => v,
                None => {
                    hole = true;
                    match self.vmas.above(cur) {
                        Some(v) if v.start < end => v,
                        _ => break,
                    }
                }
            };
            let lo = v.start.max(cur);
            let hi = v.end.min(end);
            f(self, frames, v, lo, hi)?;
            cur = hi;
        }
        if hole { Err(-ENOMEM) } else { Ok(()) }
    }

    /// madvise(MADV_DONTNEED), and MADV_REMOVE (`remove`) on shared memory: private
    /// anonymous memory reads zero afterwards. Pre-faulted memory is zeroed in place by the host
    /// (one request, no page faults later); demand-paged memory is dropped and faults in fresh.
    /// As in Linux, MAP_SHARED memory keeps its bytes under MADV_DONTNEED and loses them for
    /// every process under MADV_REMOVE, and read-only file pages keep the file's bytes.
    pub fn discard(
        &mut self,
        frames: &mut Frames,
        start: u64,
        end: u64,
        locked_ok: bool,
        remove: bool,
    ) -> Result<(), i64> {
        let r = self.for_areas(frames, start, end, |mm, frames, v, lo, hi| {
            if v.kind & kind::LOCKED != 0 && !locked_ok {
                return Err(-EINVAL);
            }
            if v.kind & kind::SHARED != 0 {
                if remove {
                    mm.aspace
                        .frames_of(lo, hi, |pa, len| frames.queue_zero(pa, len));
                }
                return Ok(());
            }
            if v.kind & (kind::FILE | kind::IMAGE) != 0 && v.prot & prot::WRITE == 0 {
                // Linux maps the file's bytes again on the next touch: these pages hold them
                // (and may be the page cache's).
                return Ok(());
            }
            // Frames another process or the page cache also holds are let go, never zeroed
            // in place (read-only memory shared since a fork).
            let mut let_go = false;
            while let Some((va, _, len, _)) = mm.aspace.first_held_run(frames, lo, hi) {
                mm.aspace
                    .unmap(frames, va, va + len, true)
                    .map_err(|_| -ENOMEM)?;
                let_go = true;
            }
            if v.prot != 0 && mm.wants_prefault(v.kind) {
                mm.aspace
                    .frames_of(lo, hi, |pa, len| frames.queue_zero(pa, len));
                if let_go {
                    // Not fatal: what cannot be mapped now is mapped on first touch.
                    let _ = mm.fill(frames, lo, hi, v.prot, false);
                }
            } else {
                mm.release_heap_chunk(frames, lo, hi);
                mm.aspace.unmap(frames, lo, hi, true).map_err(|_| -ENOMEM)?;
            }
            Ok(())
        });
        frames.flush_zero();
        r
    }

    /// Maps everything in `[start, end)` that the areas allow (MADV_POPULATE_*, mlock,
    /// MAP_POPULATE under demand paging).
    pub fn populate(&mut self, frames: &mut Frames, start: u64, end: u64) -> Result<(), i64> {
        self.for_areas(frames, start, end, |mm, frames, v, lo, hi| {
            if v.prot != 0 {
                mm.fill(frames, lo, hi, v.prot, false)?;
            }
            Ok(())
        })
    }

    /// mlock(2)/munlock(2): marks the areas (splitting them) and maps them.
    pub fn lock(&mut self, frames: &mut Frames, start: u64, end: u64, on: bool) -> Result<(), i64> {
        // Linux checks the whole range first: a hole fails without changing anything.
        let mut cur = start;
        while cur < end {
            cur = self.vmas.find(cur).ok_or(-ENOMEM)?.end;
        }
        self.vmas.split(start).map_err(|_| -ENOMEM)?;
        self.vmas.split(end).map_err(|_| -ENOMEM)?;
        self.vmas.set_kind(start, end, kind::LOCKED, on);
        if on {
            self.populate(frames, start, end)?;
        }
        Ok(())
    }

    /// mlockall(2) / munlockall(2).
    pub fn lock_all(
        &mut self,
        frames: &mut Frames,
        current: bool,
        future: bool,
    ) -> Result<(), i64> {
        if current {
            self.vmas.set_kind(0, TASK_SIZE, kind::LOCKED, true);
            self.populate(frames, MMAP_MIN, TASK_SIZE).or_else(|e| {
                // Holes between areas are fine here.
                if e == -ENOMEM { Ok(()) } else { Err(e) }
            })?;
        }
        self.lock_future = future;
        Ok(())
    }

    /// munlockall(2).
    pub fn unlock_all(&mut self) {
        self.vmas.set_kind(0, TASK_SIZE, kind::LOCKED, false);
        self.lock_future = false;
    }

    /// msync(2) on anonymous memory: nothing to write back; holes are ENOMEM and
    /// MS_INVALIDATE of locked memory EBUSY, as in Linux.
    pub fn sync(
        &mut self,
        frames: &mut Frames,
        start: u64,
        end: u64,
        invalidate: bool,
    ) -> Result<(), i64> {
        self.for_areas(frames, start, end, |_, _, v, _, _| {
            if invalidate && v.kind & kind::LOCKED != 0 {
                Err(-EBUSY)
            } else {
                Ok(())
            }
        })
    }

    /// Whether every page of `[start, end)` has an area (mincore, madvise).
    pub fn covered(&self, start: u64, end: u64) -> bool {
        let mut cur = start;
        while cur < end {
            match self.vmas.find(cur) {
                Some(v) => cur = v.end,
                None => return false,
            }
        }
        true
    }

    /// Maps the kernel-provided page at `pa` (the signal trampoline) at `va` with protection
    /// `p`, as an area of its own (boot).
    pub fn map_special(&mut self, frames: &mut Frames, va: u64, pa: u64, p: u32) -> Result<(), ()> {
        self.vmas
            .insert(Vma {
                start: va,
                end: va + PAGE,
                prot: p,
                kind: kind::IMAGE,
            })
            .map_err(|_| ())?;
        self.aspace
            .map_4k(frames, va, pa, 1, leaf_flags(p))
            .map_err(|_| ())
    }

    /// The area containing `addr`.
    pub fn area(&self, addr: u64) -> Option<Vma> {
        self.vmas.find(addr)
    }

    /// The lowest area intersecting `[start, end)`.
    pub fn first_area(&self, start: u64, end: u64) -> Option<Vma> {
        self.vmas.first_in(start, end)
    }

    /// Serves a page fault of the program at `addr` (#PF error code `error`).
    pub fn fault(&mut self, frames: &mut Frames, addr: u64, error: u64) -> Fault {
        const PRESENT: u64 = 1;
        const WRITE: u64 = 2;
        const RESERVED_BIT: u64 = 8;
        const FETCH: u64 = 16;
        const SEGV: Fault = Fault::Signal(11, "SIGSEGV");
        if error & RESERVED_BIT != 0 {
            // The CPU refuses 1 GiB pages (the development KVM does): use 2 MiB from now on.
            if frames.giga_ok != 0 && matches!(self.aspace.leaf(addr), Some((_, _, GIGA))) {
                frames.giga_ok = 0;
                if self.aspace.split_all_giga(frames).is_ok() {
                    return Fault::Mapped;
                }
            }
            return SEGV;
        }
        if error & PRESENT != 0 || addr >= TASK_SIZE {
            return SEGV;
        }
        let v = match self.vmas.find(addr) {
            Some(v) => v,
            None => match self.grow_stack(frames, addr) {
                Some(v) => v,
                None => return SEGV,
            },
        };
        let p = v.prot;
        if p == 0
            || (error & WRITE != 0 && p & prot::WRITE == 0)
            || (error & FETCH != 0 && p & prot::EXEC == 0)
        {
            return SEGV;
        }
        let block = addr & !(HUGE - 1);
        let (lo, hi, large) =
            if block >= v.start && block + HUGE <= v.end && self.aspace.block_empty(block) {
                (block, block + HUGE, true)
            } else {
                let page = addr & !(PAGE - 1);
                (page, page + PAGE, false)
            };
        let mapped = self
            .aspace
            .populate(frames, lo, hi, leaf_flags(p), large, true)
            .map(|counts| {
                count(|c| {
                    for (m, n) in c.mapped.iter_mut().zip(counts) {
                        *m += n;
                    }
                })
            });
        match mapped {
            Ok(()) => Fault::Mapped,
            Err(_) => Fault::Signal(9, "SIGKILL (out of guest memory; raise --memory)"),
        }
    }

    /// Grows an area that grows down (MAP_GROWSDOWN, the stack) to cover `addr`, as Linux's
    /// expand_downwards: within the stack limit and the guard gap above the area below.
    fn grow_stack(&mut self, frames: &mut Frames, addr: u64) -> Option<Vma> {
        let v = self.vmas.above(addr)?;
        if v.kind & kind::GROWSDOWN == 0 {
            return None;
        }
        let new_start = addr & !(PAGE - 1);
        if v.end - new_start > self.stack_limit || new_start < MMAP_MIN {
            return None;
        }
        if let Some(below) = self.vmas.below(new_start)
            && below.prot != 0
            && below.end + STACK_GUARD > new_start
        {
            return None;
        }
        self.vmas.extend_down(v.start, new_start);
        if self.wants_prefault(v.kind) {
            let _ = self.fill(frames, new_start, v.start, v.prot, true);
        }
        Some(Vma {
            start: new_start,
            ..v
        })
    }

    /// Runs the user copy `f`; when it fails on a page that is not mapped yet (demand paging),
    /// maps that page and runs it again (a few times at most).
    pub fn user_copy(
        &mut self,
        frames: &mut Frames,
        mut f: impl FnMut(&AddressSpace) -> Result<(), ()>,
    ) -> Result<(), ()> {
        let _ = self.aspace.take_missing();
        for _ in 0..8 {
            if f(&self.aspace).is_ok() {
                return Ok(());
            }
            let Some((miss, write)) = self.aspace.take_missing() else {
                return Err(());
            };
            if !self.fault_in(frames, miss, write) {
                return Err(());
            }
        }
        Err(())
    }

    /// Maps the page at `va` for a kernel or host access that found it missing; false if the
    /// program may not access it that way.
    pub fn fault_in(&mut self, frames: &mut Frames, va: u64, write: bool) -> bool {
        const USER: u64 = 4;
        let error = USER | if write { 2 } else { 0 };
        matches!(self.fault(frames, va, error), Fault::Mapped)
    }
}

/// Most pages one syscall may fault in before it gives up with EFAULT.
const MAX_FAULT_RETRIES: u32 = 1 << 16;

/// Runs a local syscall handler; if its user copy found a page not yet mapped (demand paging),
/// maps it and runs the handler again (local handlers check user memory before changing
/// anything).
pub fn with_faults<K: DerefMut<Target = Kernel>>(
    k: &mut K,
    mut f: impl FnMut(&mut K) -> i64,
) -> i64 {
    let _ = k.mms[crate::process::cur_mm()].aspace.take_missing();
    for _ in 0..MAX_FAULT_RETRIES {
        let r = f(k);
        if r != -EFAULT {
            return r;
        }
        let kernel: &mut Kernel = k;
        let Some((va, write)) = kernel.mms[crate::process::cur_mm()].aspace.take_missing() else {
            return r;
        };
        if !kernel.mms[crate::process::cur_mm()].fault_in(kernel.frames, va, write) {
            return r;
        }
    }
    -EFAULT
}

/// Offloads a syscall (with the kernel lock released: the host call may block); when the host
/// reports a page that is not present (demand paging), maps it and sends the call again (the
/// host checks buffers before doing anything irreversible).
pub fn offload(k: &mut KernelGuard, nr: u64, args: [u64; 6]) -> i64 {
    for _ in 0..MAX_FAULT_RETRIES {
        let me = arch::current_slot();
        // A signal came before the call could start (a kick found no call to interrupt): the
        // call could block with nobody left to interrupt it. As Linux's would with a signal
        // pending, it then completes only if it need not wait (a write with room), else the
        // host answers a restart code that the signal's delivery turns into EINTR or a
        // restart (`req_flags::NO_BLOCK`).
        let flags = if offload_abi::syscalls::may_block(nr) && crate::signal::interrupted(k, me) {
            offload_abi::req_flags::NO_BLOCK
        } else {
            0
        };
        let (r, val) = if crate::sched::offload_async_for(k, nr) {
            k.sched.slots[me].in_offload = crate::sched::InOffload::Async;
            crate::sched::offload_async(k, nr, args, flags)
        } else {
            k.sched.slots[me].in_offload = crate::sched::InOffload::Sync;
            let mut reply = (0, [0; 2]);
            k.unlocked(|| reply = bridge::user_syscall(nr, args, flags));
            reply
        };
        k.sched.slots[me].in_offload = crate::sched::InOffload::No;
        if r == -EINTR || crate::signal::is_restart(r) {
            // The VMM interrupted a blocked host call, or kept one from waiting, for a host
            // signal whose interrupt is still pending on this CPU (ring 0 runs with IF clear):
            // take it now, so that the restart rules of the caller see the signal.
            crate::hostsig::poll(k);
        }
        if r != -EFAULT || val[1] & syscall_fault::NOT_PRESENT == 0 {
            return r;
        }
        let write = val[1] & syscall_fault::WRITE != 0;
        let kernel: &mut Kernel = k;
        if !kernel.mms[crate::process::cur_mm()].fault_in(kernel.frames, val[0], write) {
            return r;
        }
    }
    -EFAULT
}

/// Serves a page fault from ring 3 that is not a syscall arrival: `None` if memory was mapped
/// and the program continues, else the signal that ends it.
pub fn page_fault(k: &mut Kernel, addr: u64, error: u64) -> Option<(u32, &'static str)> {
    let t = arch::rdtsc();
    let outcome = k.mms[crate::process::cur_mm()].fault(k.frames, addr, error);
    let dt = arch::rdtsc().wrapping_sub(t);
    match outcome {
        Fault::Mapped => {
            count(|c| {
                c.faults += 1;
                c.fault_ticks += dt;
            });
            None
        }
        Fault::Signal(sig, name) => Some((sig, name)),
    }
}

/// Ranges for the host to copy (`op::COPY_PHYS`), queued in a page of their own and sent when
/// it is full; consecutive ranges merge.
struct CopyBatch {
    page: u64,
    n: u64,
    last: Option<offload_abi::CopyRange>,
}

impl CopyBatch {
    fn new(frames: &mut Frames) -> Option<CopyBatch> {
        Some(CopyBatch {
            page: frames.alloc_page()?,
            n: 0,
            last: None,
        })
    }

    fn push(
        &mut self,
        _frames: &mut Frames,
        src: u64,
        dst: u64,
        len: u64,
    ) -> Result<(), crate::mm::MapError> {
        if let Some(l) = self.last.as_mut()
            && l.src + l.len == src
            && l.dst + l.len == dst
        {
            l.len += len;
            return Ok(());
        }
        self.stage()?;
        self.last = Some(offload_abi::CopyRange {
            src,
            dst,
            len,
            _pad: 0,
        });
        Ok(())
    }

    /// Writes the pending range into the page, sending the page first when it is full.
    fn stage(&mut self) -> Result<(), crate::mm::MapError> {
        let Some(l) = self.last.take() else {
            return Ok(());
        };
        if self.n == offload_abi::MAX_COPY_RANGES {
            self.send()?;
        }
        crate::phys::write_u64s(self.page + self.n * 32, &[l.src, l.dst, l.len, 0]);
        self.n += 1;
        Ok(())
    }

    fn send(&mut self) -> Result<(), crate::mm::MapError> {
        if self.n == 0 {
            return Ok(());
        }
        let r = bridge::copy_phys(self.page, self.n);
        self.n = 0;
        if r < 0 {
            klog!(
                bridge::level::ERROR,
                "fork: the host could not copy memory ({r})"
            );
            return Err(crate::mm::MapError::NoMemory);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), crate::mm::MapError> {
        self.stage()?;
        self.send()
    }

    fn free(self, frames: &mut Frames) {
        frames.free(self.page, PAGE);
    }
}
