//! The one checked way to touch guest memory on behalf of a guest request (DESIGN.md rule 2).
//!
//! A [`GuestView`] resolves guest-virtual addresses by walking the guest's 4-level page tables
//! (rooted at the CR3 the request names) inside guest RAM, checking present / user / writable
//! bits at every level. A [`GuestRange`] is an address + length + direction ([`In`]: the host
//! reads guest memory, [`Out`]: the host writes it); its arithmetic is overflow-checked and every
//! failure is `EFAULT` for the guest. Data is copied out of guest memory before it is parsed;
//! no `&T` into guest memory is ever created.

use crate::Errno;
use offload_abi::errno::{EFAULT, ENAMETOOLONG};
use offload_abi::layout::USER_END;
use offload_abi::syscall_fault;
use std::cell::Cell;
use std::marker::PhantomData;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const PAGE: u64 = 4096;
const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;
const PTE_HUGE: u64 = 1 << 7;
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Largest single copy between host and guest (bigger transfers are split by the caller or
/// returned short, as Linux does for huge reads).
pub const MAX_COPY: u64 = 16 << 20;

/// Direction marker: the host reads guest memory.
#[derive(Debug, Clone, Copy)]
pub struct In;
/// Direction marker: the host writes guest memory.
#[derive(Debug, Clone, Copy)]
pub struct Out;

/// A guest-virtual byte range with a direction. Constructing one checks nothing; every use
/// checks everything.
#[derive(Debug, Clone, Copy)]
pub struct GuestRange<D> {
    addr: u64,
    len: u64,
    _dir: PhantomData<D>,
}

impl<D> GuestRange<D> {
    /// The range `addr..addr + len` (raw guest values, possibly hostile).
    pub fn new(addr: u64, len: u64) -> Self {
        GuestRange {
            addr,
            len,
            _dir: PhantomData,
        }
    }

    /// Start address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first `len` bytes of this range (for short transfers).
    pub fn prefix(&self, len: u64) -> Self {
        GuestRange::new(self.addr, self.len.min(len))
    }
}

/// Guest memory as one address space (page tables at `cr3`) sees it.
pub struct GuestView<'a, M: GuestMemoryBackend> {
    mem: &'a M,
    cr3: u64,
    kernel_origin: bool,
    /// The first page found not present, and whether it was to be written (demand paging:
    /// the guest maps it and repeats the call).
    not_present: Cell<Option<(u64, bool)>>,
}

impl<'a, M: GuestMemoryBackend> GuestView<'a, M> {
    /// A view through the page tables at `cr3`. With `kernel_origin` false only user pages are
    /// accessible (the request came from the program); with true supervisor pages are too (the
    /// LWK asked on its own behalf).
    pub fn new(mem: &'a M, cr3: u64, kernel_origin: bool) -> Self {
        GuestView {
            mem,
            cr3: cr3 & PTE_ADDR,
            kernel_origin,
            not_present: Cell::new(None),
        }
    }

    /// The guest memory this view reads.
    pub fn memory(&self) -> &'a M {
        self.mem
    }

    /// The page-table root this view walks.
    pub fn cr3(&self) -> u64 {
        self.cr3
    }

    /// `val` of a syscall result `ret`: for `-EFAULT` caused by a page that was not present,
    /// where and how (`offload_abi::syscall_fault`); else zero.
    pub fn fault_report(&self, ret: i64) -> [u64; 2] {
        match self.not_present.get() {
            Some((va, write)) if ret == -EFAULT => [
                va,
                syscall_fault::NOT_PRESENT | if write { syscall_fault::WRITE } else { 0 },
            ],
            _ => [0, 0],
        }
    }

    fn read_pte(&self, table: u64, index: u64) -> Result<u64, Errno> {
        let addr = table.checked_add(index * 8).ok_or(Errno(EFAULT))?;
        self.mem
            .read_obj::<u64>(GuestAddress(addr))
            .map_err(|_| Errno(EFAULT))
    }

    /// Guest-physical address of `va` and the bytes left in its page, if the access is allowed.
    pub fn translate(&self, va: u64, write: bool) -> Result<(u64, u64), Errno> {
        // Canonical 48-bit addresses only; user requests only in the lower half.
        let canonical = !(USER_END..0xffff_8000_0000_0000).contains(&va);
        if !canonical || (!self.kernel_origin && va >= USER_END) {
            return Err(Errno(EFAULT));
        }
        let mut need = PTE_PRESENT;
        if !self.kernel_origin {
            need |= PTE_USER;
        }
        if write {
            need |= PTE_WRITABLE;
        }
        let mut table = self.cr3;
        for level in (0..4u32).rev() {
            let index = (va >> (12 + 9 * level)) & 511;
            let entry = self.read_pte(table, index)?;
            if entry & need != need {
                if entry & PTE_PRESENT == 0 && self.not_present.get().is_none() {
                    self.not_present.set(Some((va, write)));
                }
                return Err(Errno(EFAULT));
            }
            let leaf = level == 0 || ((level == 1 || level == 2) && entry & PTE_HUGE != 0);
            if leaf {
                let size = 1u64 << (12 + 9 * level);
                let base = entry & PTE_ADDR & !(size - 1);
                let offset = va & (size - 1);
                return Ok((base + offset, size - offset));
            }
            table = entry & PTE_ADDR;
        }
        Err(Errno(EFAULT))
    }

    /// Checks that every byte of `range` could be accessed in its direction.
    fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), Errno> {
        if len == 0 {
            return Ok(());
        }
        addr.checked_add(len).ok_or(Errno(EFAULT))?;
        let mut done = 0;
        while done < len {
            let (_, left) = self.translate(addr + done, write)?;
            done = done.saturating_add(left);
        }
        Ok(())
    }

    /// Copies the guest bytes of `range` out (at most [`MAX_COPY`]; longer is `EFAULT`).
    pub fn read(&self, range: GuestRange<In>) -> Result<Vec<u8>, Errno> {
        if range.len > MAX_COPY {
            return Err(Errno(EFAULT));
        }
        let mut out = vec![0u8; range.len as usize];
        self.read_into(range.addr, &mut out)?;
        Ok(out)
    }

    /// Copies guest bytes at `addr` into `out`.
    pub fn read_into(&self, addr: u64, out: &mut [u8]) -> Result<(), Errno> {
        self.check(addr, out.len() as u64, false)?;
        let mut done = 0usize;
        while done < out.len() {
            let (gpa, left) = self.translate(addr + done as u64, false)?;
            let n = (left as usize).min(out.len() - done);
            let chunk = out.get_mut(done..done + n).ok_or(Errno(EFAULT))?;
            self.mem
                .read_slice(chunk, GuestAddress(gpa))
                .map_err(|_| Errno(EFAULT))?;
            done += n;
        }
        Ok(())
    }

    /// Checks that `range` is writable now (before the host does something irreversible,
    /// such as consuming data from a pipe).
    pub fn check_writable(&self, range: GuestRange<Out>) -> Result<(), Errno> {
        self.check(range.addr, range.len, true)
    }

    /// Writes `data` to the start of `range`; `data` longer than the range is `EFAULT`.
    pub fn write(&self, range: GuestRange<Out>, data: &[u8]) -> Result<(), Errno> {
        if data.len() as u64 > range.len {
            return Err(Errno(EFAULT));
        }
        self.check(range.addr, data.len() as u64, true)?;
        let mut done = 0usize;
        while done < data.len() {
            let (gpa, left) = self.translate(range.addr + done as u64, true)?;
            let n = (left as usize).min(data.len() - done);
            let chunk = data.get(done..done + n).ok_or(Errno(EFAULT))?;
            self.mem
                .write_slice(chunk, GuestAddress(gpa))
                .map_err(|_| Errno(EFAULT))?;
            done += n;
        }
        Ok(())
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL); longer is
    /// `ENAMETOOLONG`, unmapped is `EFAULT`.
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        let mut cur = addr;
        loop {
            let (gpa, left) = self.translate(cur, false)?;
            let n = (left as usize).min(max + 1 - out.len()).min(256);
            let mut chunk = vec![0u8; n];
            self.mem
                .read_slice(&mut chunk, GuestAddress(gpa))
                .map_err(|_| Errno(EFAULT))?;
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(chunk.get(..nul).unwrap_or_default());
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            if out.len() > max {
                return Err(Errno(ENAMETOOLONG));
            }
            cur = cur.checked_add(n as u64).ok_or(Errno(EFAULT))?;
        }
    }

    /// Reads a little-endian u64 at `addr`.
    pub fn read_u64(&self, addr: u64) -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        self.read_into(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads `N` bytes at `addr`.
    pub fn read_array<const N: usize>(&self, addr: u64) -> Result<[u8; N], Errno> {
        let mut b = [0u8; N];
        self.read_into(addr, &mut b)?;
        Ok(b)
    }

    /// Reads a little-endian u32 at `addr`.
    pub fn read_u32(&self, addr: u64) -> Result<u32, Errno> {
        self.read_array::<4>(addr).map(u32::from_le_bytes)
    }

    /// Writes `data` at `addr` (all of it or nothing).
    pub fn write_at(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.write(GuestRange::new(addr, data.len() as u64), data)
    }

    /// The user half of the address space as runs of equally accessible memory, in address
    /// order, from the page tables at this view's CR3 (what /proc/self/maps shows). The walk
    /// reads at most [`MAX_TABLE_PAGES`] table pages (a hostile guest cannot make it loop) and
    /// returns at most `max_runs` runs; page tables outside RAM end the walk of that subtree.
    pub fn user_mappings(&self, max_runs: usize) -> Vec<Mapping> {
        let mut w = Walk {
            view: self,
            runs: Vec::new(),
            max_runs,
            tables_left: MAX_TABLE_PAGES,
        };
        w.table(self.cr3, 3, 0, true, true);
        w.runs
    }
}

/// Most page-table pages [`GuestView::user_mappings`] reads.
pub const MAX_TABLE_PAGES: usize = 1 << 16;
const PTE_NX: u64 = 1 << 63;

/// One run of user memory with the same access rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Writable by the program.
    pub write: bool,
    /// Executable by the program.
    pub exec: bool,
}

struct Walk<'v, 'a, M: GuestMemoryBackend> {
    view: &'v GuestView<'a, M>,
    runs: Vec<Mapping>,
    max_runs: usize,
    tables_left: usize,
}

impl<M: GuestMemoryBackend> Walk<'_, '_, M> {
    fn table(&mut self, table: u64, level: u32, base: u64, write: bool, exec: bool) {
        if self.tables_left == 0 {
            return;
        }
        self.tables_left -= 1;
        let mut page = [0u8; PAGE as usize];
        if self
            .view
            .mem
            .read_slice(&mut page, GuestAddress(table))
            .is_err()
        {
            return;
        }
        // The user half is the lower 256 PML4 slots.
        let slots = if level == 3 { 256 } else { 512 };
        for (i, raw) in page.chunks_exact(8).take(slots).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(raw);
            let entry = u64::from_le_bytes(b);
            if entry & (PTE_PRESENT | PTE_USER) != PTE_PRESENT | PTE_USER {
                continue;
            }
            let shift = 12 + 9 * level;
            let va = base | ((i as u64) << shift);
            let w = write && entry & PTE_WRITABLE != 0;
            let x = exec && entry & PTE_NX == 0;
            let leaf = level == 0 || ((level == 1 || level == 2) && entry & PTE_HUGE != 0);
            if leaf {
                self.add(va, va + (1u64 << shift), w, x);
            } else {
                self.table(entry & PTE_ADDR, level - 1, va, w, x);
            }
        }
    }

    fn add(&mut self, start: u64, end: u64, write: bool, exec: bool) {
        if let Some(last) = self.runs.last_mut()
            && last.end == start
            && last.write == write
            && last.exec == exec
        {
            last.end = end;
            return;
        }
        if self.runs.len() < self.max_runs {
            self.runs.push(Mapping {
                start,
                end,
                write,
                exec,
            });
        }
    }
}

/// Page size used by the walker (for callers splitting transfers).
pub const GUEST_PAGE: u64 = PAGE;

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    const MEM: usize = 16 << 20;
    const PML4: u64 = 0x1000;

    /// Guest RAM with page tables mapping:
    /// - user RW 4 KiB page at 0x40_0000 -> 0x10_0000
    /// - user RO 4 KiB page at 0x40_1000 -> 0x10_1000
    /// - supervisor page at 0x40_2000 -> 0x10_2000
    /// - user RW 2 MiB page at 0x60_0000 -> 0x20_0000
    fn setup() -> GuestMemoryMmap {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
        let (pdpt, pd, pt) = (0x2000u64, 0x3000u64, 0x4000u64);
        mem.write_obj(pdpt | 7, GuestAddress(PML4)).unwrap();
        mem.write_obj(pd | 7, GuestAddress(pdpt)).unwrap();
        mem.write_obj(pt | 7, GuestAddress(pd + 2 * 8)).unwrap();
        mem.write_obj(0x20_0000u64 | 7 | PTE_HUGE, GuestAddress(pd + 3 * 8))
            .unwrap();
        mem.write_obj(0x10_0000u64 | 7, GuestAddress(pt)).unwrap();
        mem.write_obj(0x10_1000u64 | 5, GuestAddress(pt + 8))
            .unwrap();
        mem.write_obj(0x10_2000u64 | 3, GuestAddress(pt + 16))
            .unwrap();
        mem
    }

    #[test]
    fn user_read_write_round_trip() {
        let mem = setup();
        let view = GuestView::new(&mem, PML4, false);
        view.write(GuestRange::new(0x40_0ffc, 4), b"abcd").unwrap();
        let back = view.read(GuestRange::new(0x40_0ffc, 4)).unwrap();
        assert_eq!(back, b"abcd");
        // Crossing into the read-only page: readable, not writable.
        assert_eq!(view.read(GuestRange::new(0x40_0ffe, 4)).unwrap().len(), 4);
        assert_eq!(
            view.write(GuestRange::new(0x40_0ffe, 4), b"wxyz"),
            Err(Errno(EFAULT))
        );
        // Nothing was written by the failed call.
        assert_eq!(view.read(GuestRange::new(0x40_0ffc, 4)).unwrap(), b"abcd");
    }

    #[test]
    fn huge_pages_translate() {
        let mem = setup();
        let view = GuestView::new(&mem, PML4, false);
        assert_eq!(
            view.translate(0x60_1234, true),
            Ok((0x20_1234, 0x20_0000 - 0x1234))
        );
        view.write(GuestRange::new(0x7f_fffe, 2), b"hi").unwrap();
        assert_eq!(
            mem.read_obj::<[u8; 2]>(GuestAddress(0x3f_fffe)).unwrap(),
            *b"hi"
        );
    }

    #[test]
    fn bad_pointers_are_efault() {
        let mem = setup();
        let view = GuestView::new(&mem, PML4, false);
        for addr in [
            0,
            0x40_3000,
            0x1000,
            u64::MAX - 2,
            0x8000_0000_0000,
            0xffff_8000_0000_0000,
        ] {
            assert_eq!(
                view.read(GuestRange::new(addr, 4)),
                Err(Errno(EFAULT)),
                "{addr:#x}"
            );
        }
        // Wrap-around and lengths past the mapping.
        assert_eq!(
            view.read(GuestRange::new(0x40_0000, u64::MAX)),
            Err(Errno(EFAULT))
        );
        assert_eq!(
            view.read(GuestRange::new(0x40_0000, 0x3001)),
            Err(Errno(EFAULT))
        );
        assert_eq!(
            view.check_writable(GuestRange::new(u64::MAX, 2)),
            Err(Errno(EFAULT))
        );
        // Supervisor page: user requests cannot reach it, kernel requests can.
        assert_eq!(view.read(GuestRange::new(0x40_2000, 1)), Err(Errno(EFAULT)));
        let kview = GuestView::new(&mem, PML4, true);
        assert!(kview.read(GuestRange::new(0x40_2000, 1)).is_ok());
    }

    #[test]
    fn page_tables_pointing_outside_ram_are_efault() {
        let mem = setup();
        // A PDPT entry pointing far outside guest RAM.
        mem.write_obj(0xdead_0000_0000u64 | 7, GuestAddress(0x2000 + 8))
            .unwrap();
        let view = GuestView::new(&mem, PML4, false);
        assert_eq!(
            view.read(GuestRange::new(0x4000_0000, 1)),
            Err(Errno(EFAULT))
        );
        // CR3 itself outside RAM.
        let view = GuestView::new(&mem, 0x7fff_ffff_f000, false);
        assert_eq!(view.read(GuestRange::new(0x40_0000, 1)), Err(Errno(EFAULT)));
    }

    #[test]
    fn cstrings() {
        let mem = setup();
        let view = GuestView::new(&mem, PML4, false);
        view.write(GuestRange::new(0x40_0ff0, 16), b"/etc/passwd\0")
            .unwrap();
        assert_eq!(view.read_cstr(0x40_0ff0, 4096).unwrap(), b"/etc/passwd");
        assert_eq!(view.read_cstr(0x40_0ff0, 4), Err(Errno(ENAMETOOLONG)));
        // A string running into an unmapped page.
        view.write(GuestRange::new(0x60_0000 + 0x1f_fff0, 16), &[b'a'; 16])
            .unwrap();
        assert_eq!(view.read_cstr(0x7f_fff0, 4096), Err(Errno(EFAULT)));
    }
}
