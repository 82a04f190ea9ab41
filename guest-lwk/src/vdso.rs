//! The vDSO and its vvar page, mapped into every process (Linux: arch/x86/entry/vdso/vma.c).
//!
//! The vDSO is a small ELF shared object built from `guest-lwk/vdso/` by `build.rs` and
//! embedded here; it needs no relocation. Each process gets a copy of it at [`VDSO_VA`]
//! (read + execute) and, one page below, the vvar page (read-only) holding the clock
//! parameters of `crate::time::Vvar`. Both are ordinary image areas: a program that unmaps them
//! loses them, as on Linux. AT_SYSINFO_EHDR points at [`VDSO_VA`].

use crate::frames::Frames;
use crate::mm::{MapError, PAGE, align_up};
use crate::phys;
use crate::time::Vvar;
use crate::vm::{Mm, leaf_flags};
use crate::vma::prot;
use offload_abi::layout;

static VDSO: &[u8] = include_bytes!(env!("LWK_VDSO"));

/// The vvar page: 1 MiB above the stack top, in the gap Linux also uses for the vDSO.
pub const VVAR_VA: u64 = layout::USER_STACK_TOP + 0x10_0000;
/// The vDSO's ELF header.
pub const VDSO_VA: u64 = VVAR_VA + PAGE;

/// Maps the vvar page (filled with `vvar`) and a copy of the vDSO into `mm`; returns the
/// vDSO's address for AT_SYSINFO_EHDR.
pub fn map(frames: &mut Frames, mm: &mut Mm, vvar: &Vvar) -> Result<u64, MapError> {
    let pages = align_up(VDSO.len() as u64, PAGE) / PAGE;
    let pa = frames
        .alloc_contiguous(1 + pages)
        .ok_or(MapError::NoMemory)?;
    let words = [
        vvar.tsc0,
        vvar.mult,
        vvar.realtime0,
        vvar.monotonic0,
        vvar.coarse_ns,
        vvar.version,
    ];
    const _: () = assert!(core::mem::size_of::<Vvar>() == 6 * 8);
    phys::write_u64s(pa, &words);
    phys::write_bytes(pa + PAGE, VDSO);
    mm.aspace
        .map_4k(frames, VVAR_VA, pa, 1, leaf_flags(prot::READ))?;
    mm.aspace.map_4k(
        frames,
        VDSO_VA,
        pa + PAGE,
        pages,
        leaf_flags(prot::READ | prot::EXEC),
    )?;
    mm.add_image_area(VVAR_VA, VDSO_VA, prot::READ)
        .map_err(|()| MapError::NoMemory)?;
    mm.add_image_area(VDSO_VA, VDSO_VA + pages * PAGE, prot::READ | prot::EXEC)
        .map_err(|()| MapError::NoMemory)?;
    Ok(VDSO_VA)
}
