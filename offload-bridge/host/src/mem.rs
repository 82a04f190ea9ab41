//! Memory work the LWK leaves to the host, because guest ring 0 must not do bulk work (it is
//! emulated on the development KVM): zeroing guest-physical ranges (`op::ZERO_PHYS`).
//!
//! The list comes from guest memory and is checked like any guest input: at most
//! [`MAX_ZERO_RANGES`] entries, every range inside guest RAM, overflow-checked.

use crate::sys;
use offload_abi::errno::{EFAULT, EINVAL};
use offload_abi::{MAX_ZERO_RANGES, PhysRange};
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
}
