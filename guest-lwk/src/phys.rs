//! Guest-physical memory through the direct map (`layout::DIRECT_MAP_BASE + gpa`, built by the
//! VMM with 2 MiB pages over all guest RAM). With `arch`, the only module with `unsafe`.
//!
//! Every function checks that the whole range lies inside guest RAM; anything else is a kernel
//! bug and panics (a clear report and a distinct exit status, never a wild write).

use crate::arch::Global;
use offload_abi::layout::DIRECT_MAP_BASE;

/// Bytes of guest RAM; until boot reads the real size, the low 16 MiB that every layout has.
static MEM_SIZE: Global<u64> = Global::new(offload_abi::layout::KERNEL_PHYS_END);

/// Records the size of guest RAM (once, at boot, before any other call).
pub fn init(mem_size: u64) {
    // SAFETY: written once during boot on the only vCPU (see `Global`).
    unsafe { *MEM_SIZE.get() = mem_size };
}

#[inline]
fn check(pa: u64, len: u64) -> u64 {
    // SAFETY: MEM_SIZE is only written once at boot (see `Global`).
    let size = unsafe { *MEM_SIZE.get() };
    match pa.checked_add(len) {
        Some(end) if end <= size => DIRECT_MAP_BASE + pa,
        _ => panic!("physical access {pa:#x}+{len:#x} outside guest RAM ({size:#x})"),
    }
}

/// Kernel-virtual address of guest-physical `pa` in the direct map.
#[inline]
pub fn virt(pa: u64) -> u64 {
    DIRECT_MAP_BASE + pa
}

/// The guest-physical address of a kernel object reached through the direct map (one that
/// [`owned_mut`] or [`fixed_mut`] gave out).
pub fn pa_of<T>(r: &T) -> u64 {
    (r as *const T as u64).wrapping_sub(DIRECT_MAP_BASE)
}

/// Reads a u64 at `pa` (8-byte aligned).
#[inline]
pub fn read_u64(pa: u64) -> u64 {
    let va = check(pa, 8);
    // SAFETY: `check` proved the 8 bytes are guest RAM, which the direct map covers; any bit
    // pattern is a valid u64.
    unsafe { core::ptr::read_volatile(va as *const u64) }
}

/// Writes a u64 at `pa` (8-byte aligned).
#[inline]
pub fn write_u64(pa: u64, value: u64) {
    let va = check(pa, 8);
    // SAFETY: as in `read_u64`; kernel data structures never live in free frames handed out
    // by the frame allocator, so this write cannot alias a Rust reference.
    unsafe { core::ptr::write_volatile(va as *mut u64, value) };
}

/// Atomically replaces the u64 at `pa` (8-byte aligned) with `value` and returns the old one:
/// for words the VMM updates concurrently with atomic operations (the host-signal block).
#[inline]
pub fn swap_u64(pa: u64, value: u64) -> u64 {
    let va = check(pa, 8);
    assert!(va.is_multiple_of(8), "misaligned atomic word");
    // SAFETY: `check` proved the 8 bytes are guest RAM in the direct map and the assert that
    // they are aligned for AtomicU64; every access to this word (the LWK's and the VMM's) is
    // atomic, and any bit pattern is a valid u64.
    let word = unsafe { core::sync::atomic::AtomicU64::from_ptr(va as *mut u64) };
    word.swap(value, core::sync::atomic::Ordering::SeqCst)
}

/// Writes `count` consecutive u64s at `pa`: `first`, `first + step`, ... (page-table runs).
/// The range is checked once; the loop is a handful of instructions per entry, which matters
/// where ring 0 is emulated.
#[inline]
pub fn fill_u64_run(pa: u64, count: u64, first: u64, step: u64) {
    let va = check(pa, count.saturating_mul(8));
    let mut p = va as *mut u64;
    let mut v = first;
    for _ in 0..count {
        // SAFETY: `check` proved `count` u64s from `pa` are guest RAM in the direct map; page
        // tables are kernel-owned frames that no Rust reference points into.
        unsafe {
            core::ptr::write_volatile(p, v);
            p = p.add(1);
        }
        v = v.wrapping_add(step);
    }
}

/// Number of leading u64s at `pa` (at most `count`) for which `f` holds: page-table scans with
/// one range check and a few instructions per entry.
#[inline]
pub fn scan_u64(pa: u64, count: u64, mut f: impl FnMut(u64) -> bool) -> u64 {
    let va = check(pa, count.saturating_mul(8));
    let mut p = va as *const u64;
    let mut n = 0;
    while n < count {
        // SAFETY: `check` proved `count` u64s from `pa` are guest RAM in the direct map; any bit
        // pattern is a valid u64; page tables are read, never referenced.
        let v = unsafe { core::ptr::read_volatile(p) };
        if !f(v) {
            break;
        }
        // SAFETY: stays inside the checked range (n < count).
        p = unsafe { p.add(1) };
        n += 1;
    }
    n
}

/// The index of the first non-zero u64 among the `count` at `pa` (`None`: all zero), found with
/// one `repe scasq` (one instruction to decode where ring 0 is emulated, instead of a loop).
#[inline]
pub fn first_nonzero_u64(pa: u64, count: u64) -> Option<u64> {
    if count == 0 {
        return None;
    }
    let va = check(pa, count.saturating_mul(8));
    let left: u64;
    let found: u8;
    // SAFETY: `check` proved the `count` u64s from `pa` are guest RAM in the direct map;
    // `scasq` only reads them (RDI moves forward: the direction flag is clear in the kernel, as
    // the ABI requires at every call).
    unsafe {
        core::arch::asm!(
            "repe scasq",
            "setne {found}",
            found = out(reg_byte) found,
            inout("rcx") count => left,
            inout("rdi") va => _,
            in("rax") 0u64,
            options(nostack, readonly),
        );
    }
    (found != 0).then(|| count - left - 1)
}

/// Replaces each of the `count` u64s at `pa` with `f(old)` (page-table runs that keep per-entry
/// state, such as the frame each entry maps).
#[inline]
pub fn update_u64_run(pa: u64, count: u64, mut f: impl FnMut(u64) -> u64) {
    let va = check(pa, count.saturating_mul(8));
    let mut p = va as *mut u64;
    for _ in 0..count {
        // SAFETY: as in `fill_u64_run`: the whole range was checked to be guest RAM and no Rust
        // reference points into page tables.
        unsafe {
            let old = core::ptr::read_volatile(p);
            let new = f(old);
            if new != old {
                core::ptr::write_volatile(p, new);
            }
            p = p.add(1);
        }
    }
}

/// A kernel object of plain-data type `T` in frames the frame allocator handed out for it alone
/// (zeroed, so the object starts as all-zero integers). The kernel keeps the frames for the
/// object's whole life and never maps them to user space.
pub fn owned_mut<T: PlainData>(pa: u64) -> &'static mut T {
    let va = check(pa, core::mem::size_of::<T>() as u64);
    assert!(
        va.is_multiple_of(core::mem::align_of::<T>() as u64),
        "misaligned kernel object"
    );
    // SAFETY: the range is guest RAM that the frame allocator gave to exactly this object (the
    // caller's contract, stated above), so no other reference to it exists; `PlainData` types
    // accept the zero bit pattern they start with.
    unsafe { &mut *(va as *mut T) }
}

/// Writes the u64s of `words` at guest-physical `pa` (one range check for all).
pub fn write_u64s(pa: u64, words: &[u64]) {
    let va = check(pa, words.len() as u64 * 8);
    let mut p = va as *mut u64;
    for &w in words {
        // SAFETY: as in `fill_u64_run`: the whole range was checked to be guest RAM.
        unsafe {
            core::ptr::write_volatile(p, w);
            p = p.add(1);
        }
    }
}

/// Copies `data` to guest-physical `pa`.
pub fn write_bytes(pa: u64, data: &[u8]) {
    let va = check(pa, data.len() as u64);
    // SAFETY: the destination range is guest RAM (checked) and does not overlap `data`, which
    // is kernel memory outside the frames callers pass here.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), va as *mut u8, data.len()) };
}

/// Copies guest-physical `pa..pa+out.len()` into `out`.
pub fn read_bytes(pa: u64, out: &mut [u8]) {
    let va = check(pa, out.len() as u64);
    // SAFETY: as in `write_bytes`, in the other direction.
    unsafe { core::ptr::copy_nonoverlapping(va as *const u8, out.as_mut_ptr(), out.len()) };
}

/// Reads a plain-data value (integers only, every bit pattern valid) at `pa`.
pub fn read<T: Copy + PlainData>(pa: u64) -> T {
    let va = check(pa, core::mem::size_of::<T>() as u64);
    // SAFETY: the range is guest RAM (checked); `PlainData` types accept any bit pattern;
    // `read_unaligned` has no alignment requirement.
    unsafe { core::ptr::read_unaligned(va as *const T) }
}

/// A mutable reference to a plain-data structure that the kernel owns for its whole life at
/// a fixed guest-physical address (the statistics page, the bridge page).
pub fn fixed_mut<T: PlainData>(pa: u64) -> &'static mut T {
    let va = check(pa, core::mem::size_of::<T>() as u64);
    assert!(
        va.is_multiple_of(core::mem::align_of::<T>() as u64),
        "misaligned fixed structure"
    );
    // SAFETY: the range is guest RAM reserved for this structure by the boot layout
    // (offload-abi::layout), never handed out by the frame allocator; callers take it once at
    // boot, so no second reference exists. The VMM reads/writes it only while this vCPU is
    // stopped in a port-I/O exit, which the compiler sees as an opaque asm boundary.
    unsafe { &mut *(va as *mut T) }
}

/// Marker for `#[repr(C)]` integer-only types for which every bit pattern is valid.
///
/// # Safety
/// Implementors must be plain integers/arrays of integers with no invalid bit patterns.
pub unsafe trait PlainData {}
// SAFETY: integer-only repr(C) structs from the ABI crate.
unsafe impl PlainData for offload_abi::BootInfo {}
// SAFETY: as above.
unsafe impl PlainData for offload_abi::GuestStats {}
// SAFETY: as above.
unsafe impl PlainData for offload_abi::BridgeRequest {}
// SAFETY: an array of integers.
unsafe impl PlainData for [u8; 64] {}
// SAFETY: an array of integers.
unsafe impl PlainData for [u8; 56] {}
// SAFETY: an integer.
unsafe impl PlainData for u32 {}
