//! Everything the VMM writes into guest RAM before the first instruction: the LWK image (loaded
//! with linux-loader after its protocol note is checked), the initial page tables, the boot-info
//! block, the program path, and the initial stack block with the argv/envp strings at its top.
//!
//! Guest-physical layout: offload-abi `layout` (docs/DESIGN.md "Boot").

use crate::memory::MIB2;
use offload_abi::layout::{self, DIRECT_MAP_BASE};
use offload_abi::{
    ABI_NOTE_NAME, ABI_NOTE_TYPE, AUXV_WORDS, BOOT_INFO_MAGIC, BootInfo, MAX_MEM_REGIONS,
    MemRegion, PROTOCOL_VERSION, RLIMIT_COUNT, UTSNAME_LEN, mem_kind,
};
use offload_host::wire::Wire;
use std::io::Cursor;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// The guest kernel image, built by build.rs.
pub static GUEST_ELF: &[u8] = include_bytes!(env!("LWK_GUEST_ELF"));

/// Errors preparing guest memory.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The embedded LWK image is not what this VMM expects.
    #[error("the embedded LWK image is invalid: {0}")]
    BadImage(&'static str),
    /// Protocol mismatch between VMM and LWK.
    #[error(
        "the LWK image speaks offload protocol {found}, this lwk-vmm speaks {PROTOCOL_VERSION}"
    )]
    ProtocolMismatch {
        /// Version in the image.
        found: u32,
    },
    /// linux-loader failed.
    #[error("cannot load the LWK image")]
    Load(#[source] linux_loader::loader::Error),
    /// Guest memory too small or too large for the layout.
    #[error("guest memory of {size} MiB is not usable: {reason}")]
    MemorySize {
        /// Requested MiB.
        size: u64,
        /// Why.
        reason: &'static str,
    },
    /// argv + envp do not fit.
    #[error("argument list too long: argv and environment need {need} bytes, the limit is {limit}")]
    ArgsTooLong {
        /// Bytes needed.
        need: u64,
        /// Limit.
        limit: u64,
    },
    /// A write to guest memory failed (a layout bug).
    #[error("cannot write guest memory at {0:#x}")]
    GuestWrite(u64),
}

fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Finds the protocol version in the image's `LWK-VMM` PT_NOTE.
pub fn image_protocol_version(elf: &[u8]) -> Result<u32, BootError> {
    let bad = BootError::BadImage;
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(bad("not an ELF file"));
    }
    let phoff = le_u64(elf, 32).ok_or(bad("truncated header"))? as usize;
    let phnum = le_u16(elf, 56).ok_or(bad("truncated header"))? as usize;
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i * 56)
            .ok_or(bad("program headers out of range"))?;
        if le_u32(elf, ph) != Some(4) {
            continue; // not PT_NOTE
        }
        let off = le_u64(elf, ph + 8).ok_or(bad("truncated program header"))? as usize;
        let size = le_u64(elf, ph + 32).ok_or(bad("truncated program header"))? as usize;
        let notes = elf
            .get(off..off.saturating_add(size))
            .ok_or(bad("note outside the file"))?;
        let mut p = 0;
        while p + 12 <= notes.len() {
            let namesz = le_u32(notes, p).unwrap_or(0) as usize;
            let descsz = le_u32(notes, p + 4).unwrap_or(0) as usize;
            let ntype = le_u32(notes, p + 8).unwrap_or(0);
            let name_at = p + 12;
            let desc_at = name_at + namesz.next_multiple_of(4);
            if ntype == ABI_NOTE_TYPE
                && notes.get(name_at..name_at + namesz) == Some(ABI_NOTE_NAME.as_slice())
            {
                return le_u32(notes, desc_at).ok_or(bad("truncated protocol note"));
            }
            p = desc_at + descsz.next_multiple_of(4);
        }
    }
    Err(bad("no protocol-version note"))
}

/// Loads the LWK image and returns its entry point (a kernel-virtual address).
pub fn load_kernel(mem: &GuestMemoryMmap) -> Result<u64, BootError> {
    use linux_loader::loader::KernelLoader;
    use linux_loader::loader::elf::Elf;
    let version = image_protocol_version(GUEST_ELF)?;
    if version != PROTOCOL_VERSION {
        return Err(BootError::ProtocolMismatch { found: version });
    }
    let entry = le_u64(GUEST_ELF, 24).ok_or(BootError::BadImage("truncated header"))?;
    // Every loadable segment must lie in the kernel's reserved physical range.
    let phoff = le_u64(GUEST_ELF, 32).unwrap_or(0) as usize;
    let phnum = le_u16(GUEST_ELF, 56).unwrap_or(0) as usize;
    for i in 0..phnum {
        let ph = phoff.saturating_add(i * 56);
        if le_u32(GUEST_ELF, ph) != Some(1) {
            continue;
        }
        let paddr = le_u64(GUEST_ELF, ph + 24).unwrap_or(0);
        let filesz = le_u64(GUEST_ELF, ph + 32).unwrap_or(0);
        let memsz = le_u64(GUEST_ELF, ph + 40).unwrap_or(0);
        let end = paddr
            .checked_add(memsz)
            .ok_or(BootError::BadImage("segment overflows"))?;
        if paddr < layout::KERNEL_PHYS || end > layout::KERNEL_PHYS_END {
            return Err(BootError::BadImage(
                "segment outside the kernel's physical range",
            ));
        }
        // linux-loader copies only p_filesz: zero the rest (BSS) ourselves.
        let zeros = vec![0u8; (memsz.saturating_sub(filesz)) as usize];
        mem.write_slice(&zeros, GuestAddress(paddr + filesz))
            .map_err(|_| BootError::GuestWrite(paddr))?;
    }
    Elf::load(mem, None, &mut Cursor::new(GUEST_ELF), None).map_err(BootError::Load)?;
    Ok(entry)
}

const PTE_P: u64 = 1;
const PTE_W: u64 = 2;
const PTE_PS: u64 = 0x80;
const PTE_NX: u64 = 1 << 63;

/// Builds the initial page tables: the kernel image at -2 GiB (first GiB of RAM, RWX) and the
/// direct map of all RAM (RW, NX), both with 2 MiB pages and supervisor-only. The user half
/// is empty; the LWK fills it. Returns the CR3 value.
pub fn build_page_tables(mem: &GuestMemoryMmap, mem_size: u64) -> Result<u64, BootError> {
    let pml4 = layout::PAGE_TABLES_GPA;
    let pdpt_kernel = pml4 + 0x1000;
    let pd_kernel = pml4 + 0x2000;
    let pdpt_direct = pml4 + 0x3000;
    let first_direct_pd = pml4 + 0x4000;
    let gib = 1u64 << 30;
    let direct_pds = mem_size.div_ceil(gib);
    if first_direct_pd + direct_pds * 0x1000 > layout::PAGE_TABLES_END {
        return Err(BootError::MemorySize {
            size: mem_size >> 20,
            reason: "more than the page-table area can map",
        });
    }
    let w = |value: u64, at: u64| {
        mem.write_obj(value, GuestAddress(at))
            .map_err(|_| BootError::GuestWrite(at))
    };
    let pml4_index = |va: u64| (va >> 39) & 511;
    w(
        pdpt_kernel | PTE_P | PTE_W,
        pml4 + pml4_index(layout::KERNEL_VIRT_BASE) * 8,
    )?;
    w(
        pd_kernel | PTE_P | PTE_W,
        pdpt_kernel + ((layout::KERNEL_VIRT_BASE >> 30) & 511) * 8,
    )?;
    for i in 0..512u64.min(mem_size.div_ceil(MIB2)) {
        w((i * MIB2) | PTE_P | PTE_W | PTE_PS, pd_kernel + i * 8)?;
    }
    w(
        pdpt_direct | PTE_P | PTE_W,
        pml4 + pml4_index(DIRECT_MAP_BASE) * 8,
    )?;
    let pages_2m = mem_size.div_ceil(MIB2);
    for g in 0..direct_pds {
        let pd = first_direct_pd + g * 0x1000;
        w(pd | PTE_P | PTE_W, pdpt_direct + g * 8)?;
        for i in 0..512u64.min(pages_2m - g * 512) {
            w(
                ((g * 512 + i) * MIB2) | PTE_P | PTE_W | PTE_PS | PTE_NX,
                pd + i * 8,
            )?;
        }
    }
    Ok(pml4)
}

/// What the program starts with.
pub struct ProgramStart<'a> {
    /// argv, as given.
    pub argv: &'a [Vec<u8>],
    /// envp.
    pub envp: &'a [Vec<u8>],
    /// AT_EXECFN: the path the program was started by.
    pub execfn: &'a [u8],
    /// The program's path inside the job root, opened by the LWK.
    pub exe_path: &'a [u8],
}

/// Host facts the boot info carries.
pub struct HostFacts {
    /// TSC frequency (kHz).
    pub tsc_khz: u64,
    /// CPUID.1:EDX.
    pub hwcap: u64,
    /// Number of vCPUs.
    pub vcpu_count: u32,
    /// Time slice for threads sharing a vCPU, in µs (0: the LWK refuses such threads).
    pub timeslice_us: u64,
}

/// Writes boot info, program path, string offsets and the stack block; returns the boot info.
pub fn write_boot_info(
    mem: &GuestMemoryMmap,
    mem_size: u64,
    stack_size: u64,
    prog: &ProgramStart<'_>,
    host: &HostFacts,
    flags: u64,
) -> Result<BootInfo, BootError> {
    let size_mib = mem_size >> 20;
    if mem_size < layout::KERNEL_PHYS_END + stack_size + 16 * MIB2 {
        return Err(BootError::MemorySize {
            size: size_mib,
            reason: "too small (at least 64 MiB)",
        });
    }

    // The string blob at the very top of the stack: argv..., envp..., execfn, platform, 16
    // random bytes.
    let mut blob = Vec::new();
    let mut offsets: Vec<u64> = Vec::new();
    for s in prog.argv.iter().chain(prog.envp) {
        offsets.push(blob.len() as u64);
        blob.extend_from_slice(s);
        blob.push(0);
    }
    let execfn_off = blob.len() as u32;
    blob.extend_from_slice(prog.execfn);
    blob.push(0);
    let platform_off = blob.len() as u32;
    blob.extend_from_slice(b"x86_64\0");
    let random_off = blob.len() as u32;
    let mut random = [0u8; 16];
    let _ = getrandom_bytes(&mut random);
    blob.extend_from_slice(&random);
    let strings_len = (blob.len() as u64).next_multiple_of(16);
    let blob_va = layout::USER_STACK_TOP - strings_len;

    // Below it: argc, argv[], NULL, envp[], NULL, room for auxv; RSP 16-byte aligned at argc.
    let argc = prog.argv.len() as u64;
    let words = 1 + argc + 1 + prog.envp.len() as u64 + 1 + AUXV_WORDS as u64;
    let sp = (blob_va - words * 8) & !15;
    // Linux's limit for argv + envp is a quarter of the stack.
    let limit = stack_size / 4;
    let need = layout::USER_STACK_TOP - sp;
    if need > limit {
        return Err(BootError::ArgsTooLong { need, limit });
    }
    let mut vector: Vec<u64> = Vec::with_capacity(words as usize);
    vector.push(argc);
    for (i, off) in offsets.iter().enumerate() {
        if i as u64 == argc {
            vector.push(0);
        }
        vector.push(blob_va + off);
    }
    if prog.envp.is_empty() {
        vector.push(0);
    }
    vector.push(0);
    let auxv_va = sp + vector.len() as u64 * 8;
    let stack_gpa = mem_size - stack_size;
    let to_gpa = |va: u64| stack_gpa + (va - (layout::USER_STACK_TOP - stack_size));
    let bytes: Vec<u8> = vector.iter().flat_map(|w| w.to_le_bytes()).collect();
    mem.write_slice(&bytes, GuestAddress(to_gpa(sp)))
        .map_err(|_| BootError::GuestWrite(to_gpa(sp)))?;
    mem.write_slice(&blob, GuestAddress(to_gpa(blob_va)))
        .map_err(|_| BootError::GuestWrite(to_gpa(blob_va)))?;

    if prog.exe_path.len() >= layout::EXE_PATH_MAX {
        return Err(BootError::ArgsTooLong {
            need: prog.exe_path.len() as u64,
            limit: layout::EXE_PATH_MAX as u64,
        });
    }
    let mut exe = prog.exe_path.to_vec();
    exe.push(0);
    mem.write_slice(&exe, GuestAddress(layout::EXE_PATH_GPA))
        .map_err(|_| BootError::GuestWrite(layout::EXE_PATH_GPA))?;

    let mut regions = [MemRegion::default(); MAX_MEM_REGIONS];
    regions[0] = MemRegion {
        base: layout::KERNEL_PHYS_END,
        len: stack_gpa - layout::KERNEL_PHYS_END,
        kind: mem_kind::USABLE,
        _pad: 0,
    };
    let info = BootInfo {
        magic: BOOT_INFO_MAGIC,
        version: PROTOCOL_VERSION,
        vcpu_count: host.vcpu_count,
        mem_size,
        nr_regions: 1,
        _pad0: 0,
        regions,
        tsc_khz: host.tsc_khz,
        flags,
        stack_gpa,
        stack_size,
        // The blob sits at the very top of the stack: its offsets count from mem_size - len.
        strings_len,
        argc: prog.argv.len() as u32,
        envc: prog.envp.len() as u32,
        execfn_off,
        platform_off,
        random_off,
        _pad1: 0,
        ids: current_ids(),
        hwcap: host.hwcap,
        pid: std::process::id(),
        ppid: std::os::unix::process::parent_id(),
        rlimits: current_rlimits(),
        utsname: current_utsname(),
        _pad3: [0; 2],
        initial_sp: sp,
        auxv_va,
        timeslice_us: host.timeslice_us,
        // SAFETY: getpgrp has no preconditions and cannot fail.
        pgid: unsafe { libc::getpgrp() } as u32,
        // SAFETY: getsid(0) asks about the calling process; it cannot fail for it.
        sid: unsafe { libc::getsid(0) } as u32,
    };
    mem.write_obj(Wire(info), GuestAddress(layout::BOOT_INFO_GPA))
        .map_err(|_| BootError::GuestWrite(layout::BOOT_INFO_GPA))?;
    Ok(info)
}

fn getrandom_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

fn current_ids() -> [u32; 4] {
    // SAFETY: these calls take no arguments and cannot fail.
    unsafe {
        [
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        ]
    }
}

fn current_rlimits() -> [[u64; 2]; RLIMIT_COUNT] {
    let mut out = [[u64::MAX; 2]; RLIMIT_COUNT];
    for (i, slot) in out.iter_mut().enumerate() {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `r` is a valid rlimit to write; resource ids 0..16 are Linux's.
        if unsafe { libc::getrlimit(i as libc::__rlimit_resource_t, &mut r) } == 0 {
            *slot = [r.rlim_cur, r.rlim_max];
        }
    }
    out
}

fn current_utsname() -> [u8; UTSNAME_LEN] {
    let mut out = [0u8; UTSNAME_LEN];
    // SAFETY: utsname is plain data; zeroed is a valid value for uname to fill.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid utsname to write.
    if unsafe { libc::uname(&mut u) } != 0 {
        return out;
    }
    let fields = [
        &u.sysname,
        &u.nodename,
        &u.release,
        &u.version,
        &u.machine,
        &u.domainname,
    ];
    for (i, f) in fields.iter().enumerate() {
        for (j, c) in f.iter().take(65).enumerate() {
            out[i * 65 + j] = *c as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_image_speaks_our_protocol() {
        assert_eq!(image_protocol_version(GUEST_ELF).unwrap(), PROTOCOL_VERSION);
    }

    #[test]
    fn malformed_images_are_errors_not_panics() {
        assert!(image_protocol_version(b"").is_err());
        assert!(image_protocol_version(b"\x7fELF").is_err());
        let mut truncated = GUEST_ELF[..200].to_vec();
        assert!(image_protocol_version(&truncated).is_err());
        // Program headers pointing past the end.
        truncated[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(image_protocol_version(&truncated).is_err());
    }

    #[test]
    fn page_tables_map_kernel_and_direct_map() {
        let size = 256 << 20;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)]).unwrap();
        let cr3 = build_page_tables(&mem, size).unwrap();
        let host_mem = &mem;
        let view = offload_host::GuestView::new(host_mem, cr3, true);
        assert_eq!(
            view.translate(layout::KERNEL_VIRT_BASE + 0x20_1234, false)
                .unwrap()
                .0,
            0x20_1234
        );
        assert_eq!(
            view.translate(DIRECT_MAP_BASE + 0x0abc_d123, true)
                .unwrap()
                .0,
            0x0abc_d123
        );
        assert!(view.translate(DIRECT_MAP_BASE + size, false).is_err());
        // Nothing in the user half, and user requests see nothing at all.
        assert!(view.translate(0x40_0000, false).is_err());
        let user = offload_host::GuestView::new(host_mem, cr3, false);
        assert!(user.translate(DIRECT_MAP_BASE, false).is_err());
    }
}
