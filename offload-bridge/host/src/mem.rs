//! Memory work the LWK leaves to the host, because guest ring 0 must not do bulk work (it is
//! emulated on the development KVM): zeroing guest-physical ranges (`op::ZERO_PHYS`) and
//! copying them (`op::COPY_PHYS`).
//!
//! The lists come from guest memory and are checked like any guest input: at most
//! [`MAX_ZERO_RANGES`] / [`MAX_COPY_RANGES`] entries, every range inside guest RAM,
//! overflow-checked. A copy list is checked whole before the first byte moves.

use crate::sys;
use offload_abi::errno::{EFAULT, EINVAL};
use offload_abi::{CopyRange, MAX_COPY_RANGES, MAX_ZERO_RANGES, PhysRange};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// 2 MiB: host pages are dropped only in whole, aligned 2 MiB units (a transparent huge page
/// is never split, and small leftovers are cheaper to clear than to refault).
const DISCARD_UNIT: u64 = 2 << 20;

/// How the host makes guest RAM read zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroMethod {
    /// Write zeros (any backing; hugetlb pages must stay, or they could be gone at refault).
    #[default]
    Write,
    /// Drop whole 2 MiB units with MADV_DONTNEED (private anonymous 4 KiB or THP backing),
    /// write zeros elsewhere.
    Discard,
}

/// Serves `op::ZERO_PHYS`: zeroes the `count` ranges listed at guest-physical `list`.
pub(crate) fn zero_phys<M: GuestMemoryBackend>(
    mem: &M,
    list: u64,
    count: u64,
    method: ZeroMethod,
) -> i64 {
    if count > MAX_ZERO_RANGES {
        return -EINVAL;
    }
    let mut raw = vec![0u8; count as usize * size_of::<PhysRange>()];
    if mem.read_slice(&mut raw, GuestAddress(list)).is_err() {
        return -EFAULT;
    }
    for entry in raw.chunks_exact(16) {
        let mut word = [0u8; 8];
        word.copy_from_slice(entry.get(..8).unwrap_or(&[0; 8]));
        let gpa = u64::from_le_bytes(word);
        word.copy_from_slice(entry.get(8..16).unwrap_or(&[0; 8]));
        let len = u64::from_le_bytes(word);
        if let Err(e) = zero_range(mem, gpa, len, method) {
            return -e;
        }
    }
    0
}

fn zero_range<M: GuestMemoryBackend>(
    mem: &M,
    gpa: u64,
    len: u64,
    method: ZeroMethod,
) -> Result<(), i64> {
    let end = gpa.checked_add(len).ok_or(EFAULT)?;
    if len == 0 {
        return Ok(());
    }
    if usize::try_from(len).is_err() || !mem.check_range(GuestAddress(gpa), len as usize) {
        return Err(EFAULT);
    }
    let (mut lo, mut hi) = (gpa, gpa);
    if method == ZeroMethod::Discard {
        lo = gpa.next_multiple_of(DISCARD_UNIT);
        hi = end / DISCARD_UNIT * DISCARD_UNIT;
        if lo >= hi {
            (lo, hi) = (gpa, gpa);
        }
    }
    fill(mem, gpa, lo - gpa)?;
    if hi > lo {
        for slice in mem.get_slices(GuestAddress(lo), (hi - lo) as usize) {
            let slice = slice.map_err(|_| EFAULT)?;
            if sys::discard_guest(&slice).is_err() {
                sys::zero_guest(&slice);
            }
        }
    }
    fill(mem, hi.max(gpa), end - hi.max(gpa))
}

fn fill<M: GuestMemoryBackend>(mem: &M, gpa: u64, len: u64) -> Result<(), i64> {
    if len == 0 {
        return Ok(());
    }
    for slice in mem.get_slices(GuestAddress(gpa), len as usize) {
        sys::zero_guest(&slice.map_err(|_| EFAULT)?);
    }
    Ok(())
}

/// Serves `op::COPY_PHYS`: checks all `count` [`CopyRange`]s listed at guest-physical `list`,
/// then copies them in order. An error copies nothing.
pub(crate) fn copy_phys<M: GuestMemoryBackend>(mem: &M, list: u64, count: u64) -> i64 {
    match copy_ranges(mem, list, count) {
        Ok(()) => 0,
        Err(e) => -e,
    }
}

fn copy_ranges<M: GuestMemoryBackend>(mem: &M, list: u64, count: u64) -> Result<(), i64> {
    if count > MAX_COPY_RANGES {
        return Err(EINVAL);
    }
    // Copied out of guest memory once: the guest cannot change a range after it was checked.
    let mut raw = vec![0u8; count as usize * size_of::<CopyRange>()];
    mem.read_slice(&mut raw, GuestAddress(list))
        .map_err(|_| EFAULT)?;
    let word = |entry: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(entry.get(at..at + 8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(w)
    };
    let mut ranges = Vec::with_capacity(count as usize);
    for entry in raw.chunks_exact(size_of::<CopyRange>()) {
        let (src, dst, len) = (word(entry, 0), word(entry, 8), word(entry, 16));
        check_copy(mem, src, dst, len)?;
        ranges.push((src, dst, len));
    }
    for (src, dst, len) in ranges {
        copy_range(mem, src, dst, len)?;
    }
    Ok(())
}

/// One range of a copy list: both ends inside guest RAM (`EFAULT`), not overlapping (`EINVAL`).
fn check_copy<M: GuestMemoryBackend>(mem: &M, src: u64, dst: u64, len: u64) -> Result<(), i64> {
    let src_end = src.checked_add(len).ok_or(EFAULT)?;
    let dst_end = dst.checked_add(len).ok_or(EFAULT)?;
    if len == 0 {
        return Ok(());
    }
    let n = usize::try_from(len).map_err(|_| EFAULT)?;
    if !mem.check_range(GuestAddress(src), n) || !mem.check_range(GuestAddress(dst), n) {
        return Err(EFAULT);
    }
    if src < dst_end && dst < src_end {
        return Err(EINVAL);
    }
    Ok(())
}

/// Copies a checked range: memcpy between the host mappings of the source and destination,
/// piece by piece where either crosses from one guest memory region to the next.
fn copy_range<M: GuestMemoryBackend>(mem: &M, src: u64, dst: u64, len: u64) -> Result<(), i64> {
    if len == 0 {
        return Ok(());
    }
    let mut done = 0u64;
    for from in mem.get_slices(GuestAddress(src), len as usize) {
        let from = from.map_err(|_| EFAULT)?;
        let mut off = 0usize;
        for to in mem.get_slices(GuestAddress(dst + done), from.len()) {
            let to = to.map_err(|_| EFAULT)?;
            let n = to.len();
            let piece = from.subslice(off, n).map_err(|_| EFAULT)?;
            // A memcpy (vm-memory copies with `ptr::copy`) that marks `to` dirty.
            piece.copy_to_volatile_slice(to);
            off += n;
        }
        done += from.len() as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 8 << 20)]).unwrap()
    }

    fn list(mem: &GuestMemoryMmap, ranges: &[(u64, u64)]) {
        for (i, (gpa, len)) in ranges.iter().enumerate() {
            mem.write_obj(*gpa, GuestAddress(0x1000 + i as u64 * 16))
                .unwrap();
            mem.write_obj(*len, GuestAddress(0x1008 + i as u64 * 16))
                .unwrap();
        }
    }

    #[test]
    fn ranges_read_zero_with_either_method() {
        for method in [ZeroMethod::Write, ZeroMethod::Discard] {
            let m = mem();
            m.write_slice(&[0xaa; 6 << 20], GuestAddress(1 << 20))
                .unwrap();
            // A small range, and one covering a whole aligned 2 MiB unit plus ragged ends.
            list(&m, &[(0x10_0100, 0x100), (0x1f_f000, 0x40_2000)]);
            assert_eq!(zero_phys(&m, 0x1000, 2, method), 0);
            let mut b = vec![0u8; 7 << 20];
            m.read_slice(&mut b, GuestAddress(0)).unwrap();
            let zero = |from: u64, to: u64| b[from as usize..to as usize].iter().all(|&x| x == 0);
            assert!(zero(0x10_0100, 0x10_0200), "{method:?}");
            assert!(zero(0x1f_f000, 0x60_1000), "{method:?}");
            assert_eq!(b[0x10_00ff], 0xaa);
            assert_eq!(b[0x10_0200], 0xaa);
            assert_eq!(b[0x1f_efff], 0xaa);
            assert_eq!(b[0x60_1000], 0xaa);
        }
    }

    #[test]
    fn hostile_lists_are_errors() {
        let m = mem();
        assert_eq!(
            zero_phys(&m, 0x1000, MAX_ZERO_RANGES + 1, ZeroMethod::Write),
            -EINVAL
        );
        assert_eq!(zero_phys(&m, u64::MAX - 8, 1, ZeroMethod::Write), -EFAULT);
        list(&m, &[(7 << 20, 2 << 20)]);
        assert_eq!(zero_phys(&m, 0x1000, 1, ZeroMethod::Write), -EFAULT);
        list(&m, &[(u64::MAX - 4, 16)]);
        assert_eq!(zero_phys(&m, 0x1000, 1, ZeroMethod::Discard), -EFAULT);
        list(&m, &[(0, u64::MAX)]);
        assert_eq!(zero_phys(&m, 0x1000, 1, ZeroMethod::Write), -EFAULT);
    }

    /// Writes a copy list at 0x1000.
    fn copies(mem: &GuestMemoryMmap, ranges: &[(u64, u64, u64)]) {
        for (i, (src, dst, len)) in ranges.iter().enumerate() {
            let at = 0x1000 + i as u64 * 32;
            let entry = CopyRange {
                src: *src,
                dst: *dst,
                len: *len,
                _pad: 0xdead,
            };
            for (k, w) in [entry.src, entry.dst, entry.len, entry._pad]
                .iter()
                .enumerate()
            {
                mem.write_obj(*w, GuestAddress(at + k as u64 * 8)).unwrap();
            }
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
    }

    fn get(m: &GuestMemoryMmap, gpa: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        m.read_slice(&mut b, GuestAddress(gpa)).unwrap();
        b
    }

    #[test]
    fn ranges_are_copied_in_order() {
        let m = mem();
        let big = pattern(3 << 20, 1);
        m.write_slice(&big, GuestAddress(1 << 20)).unwrap();
        let small = pattern(100, 2);
        m.write_slice(&small, GuestAddress(0x8000)).unwrap();
        copies(
            &m,
            &[
                (1 << 20, 5 << 20, 3 << 20),
                (0x8000, 0x9001, 100),
                (0x9001, 0xa000, 100), // sees the previous copy's result
                (0x8000, 0xb000, 0),
            ],
        );
        assert_eq!(copy_phys(&m, 0x1000, 4), 0);
        assert_eq!(get(&m, 5 << 20, 3 << 20), big);
        assert_eq!(get(&m, 0x9001, 100), small);
        assert_eq!(get(&m, 0xa000, 100), small);
        assert_eq!(get(&m, 0x9000, 1), [0]);
        assert_eq!(get(&m, 0x9001 + 100, 1), [0]);
        assert_eq!(copy_phys(&m, 0x1000, 0), 0, "an empty list is a no-op");
    }

    #[test]
    fn copies_cross_region_boundaries() {
        // Two regions with a hole between them; a range may span the two adjacent ones.
        let m = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 1 << 20),
            (GuestAddress(1 << 20), 1 << 20),
            (GuestAddress(4 << 20), 1 << 20),
        ])
        .unwrap();
        let data = pattern(0x3000, 3);
        m.write_slice(&data, GuestAddress((1 << 20) - 0x1000))
            .unwrap();
        copies(&m, &[((1 << 20) - 0x1000, (4 << 20) + 0x100, 0x3000)]);
        assert_eq!(copy_phys(&m, 0x1000, 1), 0);
        assert_eq!(get(&m, (4 << 20) + 0x100, 0x3000), data);
        // A destination spanning two adjacent regions.
        copies(&m, &[((4 << 20) + 0x100, (1 << 20) - 0x800, 0x1000)]);
        assert_eq!(copy_phys(&m, 0x1000, 1), 0);
        assert_eq!(get(&m, (1 << 20) - 0x800, 0x1000), data[..0x1000]);
        // Into the hole: refused.
        copies(&m, &[(0, (2 << 20) - 0x800, 0x1000)]);
        assert_eq!(copy_phys(&m, 0x1000, 1), -EFAULT);
    }

    #[test]
    fn hostile_copy_lists_copy_nothing() {
        let m = mem();
        let marker = pattern(0x1000, 9);
        m.write_slice(&marker, GuestAddress(0x10_0000)).unwrap();
        assert_eq!(copy_phys(&m, 0x1000, MAX_COPY_RANGES + 1), -EINVAL);
        assert_eq!(copy_phys(&m, 0x1000, u64::MAX), -EINVAL);
        assert_eq!(copy_phys(&m, u64::MAX - 8, 1), -EFAULT);
        assert_eq!(copy_phys(&m, (8 << 20) - 16, 1), -EFAULT, "list past RAM");
        let end = 8u64 << 20;
        // Each hostile range comes after a good one, which must not have been copied.
        let good = (0x10_0000, 0x20_0000, 0x1000);
        for (bad, errno) in [
            ((u64::MAX - 4, 0x30_0000, 16), EFAULT),
            ((0x30_0000, u64::MAX - 4, 16), EFAULT),
            ((0, 0x30_0000, u64::MAX), EFAULT),
            ((end - 0x800, 0x30_0000, 0x1000), EFAULT),
            ((0x30_0000, end - 0x800, 0x1000), EFAULT),
            ((end, 0x30_0000, 1), EFAULT),
            ((0x30_0000, 0x30_0800, 0x1000), EINVAL),
            ((0x30_0800, 0x30_0000, 0x1000), EINVAL),
            ((0x30_0000, 0x30_0000, 1), EINVAL),
        ] {
            copies(&m, &[good, bad]);
            assert_eq!(copy_phys(&m, 0x1000, 2), -errno, "{bad:x?}");
            assert_eq!(get(&m, 0x20_0000, 0x1000), vec![0; 0x1000], "{bad:x?}");
        }
        // Adjacent ranges do not overlap.
        copies(&m, &[(0x10_0000, 0x10_1000, 0x1000)]);
        assert_eq!(copy_phys(&m, 0x1000, 1), 0);
        assert_eq!(get(&m, 0x10_1000, 0x1000), marker);
        // A full list of MAX_COPY_RANGES is accepted.
        let full: Vec<_> = (0..MAX_COPY_RANGES)
            .map(|i| (0x10_0000 + i * 16, 0x40_0000 + i * 16, 16))
            .collect();
        copies(&m, &full);
        assert_eq!(copy_phys(&m, 0x1000, MAX_COPY_RANGES), 0);
        assert_eq!(get(&m, 0x40_0000, 0x800), marker[..0x800]);
    }
}
