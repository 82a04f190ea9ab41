//! Loads the program: reads its ELF through the bridge (the host copies file data straight into
//! the frames, no bulk copying in ring 0), maps its segments, maps the initial stack the VMM
//! filled with the argv/envp strings, and writes argc/argv/envp/auxv as Linux does
//! (System V x86_64 psABI §3.4.1; Linux fs/binfmt_elf.c create_elf_tables).

use crate::frames::Frames;
use crate::mm::{MapError, PAGE, align_up, pte};
use crate::pagecache::File;
use crate::time::Vvar;
use crate::vm::Mm;
use crate::vma::prot;
use crate::{bridge, phys};
use offload_abi::syscalls::nr;
use offload_abi::{AUXV_WORDS, BootInfo, errno, layout};

/// Where a loaded program starts.
pub struct Image {
    pub entry: u64,
    pub stack_pointer: u64,
}

/// Why loading failed.
#[derive(Debug, Clone, Copy)]
pub enum LoadError {
    Open(i64),
    Read,
    NotElf,
    WrongArch,
    /// The interpreter named by PT_INTERP cannot be loaded (the detail is logged).
    Interpreter,
    BadSegment,
    NoMemory,
    TooManyStrings,
}

impl LoadError {
    /// One line for the log.
    pub fn message(&self) -> &'static str {
        match self {
            LoadError::Open(e) if *e == -errno::ENOENT => "the program file does not exist",
            LoadError::Open(e) if *e == -errno::EACCES => "permission denied opening the program",
            LoadError::Open(_) => "the program file cannot be opened",
            LoadError::Read => "the program file cannot be read",
            LoadError::NotElf => "the program is not an ELF executable",
            LoadError::WrongArch => "the program is not a 64-bit x86_64 little-endian executable",
            LoadError::Interpreter => {
                "the program's interpreter (PT_INTERP, e.g. ld-linux) cannot be loaded"
            }
            LoadError::BadSegment => "the program has a malformed or overlapping segment",
            LoadError::NoMemory => "not enough guest memory to load the program (raise --memory)",
            LoadError::TooManyStrings => "argument list too long",
        }
    }

    /// Exit status, as a shell reports a program it cannot run (126) or find (127).
    pub fn exit_status(&self) -> u32 {
        match self {
            LoadError::Open(e) if *e == -errno::ENOENT => 127,
            _ => 126,
        }
    }

    /// The error for a file mapping that failed with errno `e`.
    fn from_map(e: i64) -> Self {
        if e == -errno::ENOMEM {
            LoadError::NoMemory
        } else {
            LoadError::Read
        }
    }
}

impl From<MapError> for LoadError {
    fn from(_: MapError) -> Self {
        LoadError::NoMemory
    }
}

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
/// Where Linux places a static-PIE (ET_DYN without interpreter) on x86_64.
const ET_DYN_BASE: u64 = 0x5555_5555_4000;

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// The `vma::prot` bits of a program header's `p_flags`.
fn segment_prot(flags: u32) -> u32 {
    let mut p = 0;
    if flags & PF_R != 0 {
        p |= prot::READ;
    }
    if flags & PF_W != 0 {
        p |= prot::WRITE;
    }
    if flags & PF_X != 0 {
        p |= prot::EXEC;
    }
    p
}

struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn pread(fd: i64, pa: u64, len: u64, offset: u64) -> Result<(), LoadError> {
    match crate::pagecache::read_phys(fd, pa, len, offset) {
        Err(_) => Err(LoadError::Read),
        Ok(n) if n < len => Err(LoadError::BadSegment), // file shorter than its headers claim
        Ok(_) => Ok(()),
    }
}

/// Reads up to `len` bytes of file `fd` from `offset` into the frames behind the user range
/// `[start, start + len)`, which must be fully populated (every page has a frame; the frames
/// read zero). The host writes straight into guest RAM through the direct map: no copy in ring
/// 0. Stops at end of file (the rest stays zero). Returns the bytes read, or the host's errno.
pub fn read_file_into(
    aspace: &crate::mm::AddressSpace,
    start: u64,
    len: u64,
    fd: i64,
    offset: u64,
) -> Result<(), i64> {
    let mut done = 0u64;
    let mut result = Ok(());
    let mut eof = false;
    aspace.frames_of(start, start + len, |pa, run| {
        let mut got = 0;
        while result.is_ok() && !eof && got < run && done + got < len {
            let want = (run - got).min(len - done - got);
            let r = bridge::kernel_syscall(
                nr::pread64,
                [
                    fd as u64,
                    phys::virt(pa + got),
                    want,
                    offset + done + got,
                    0,
                    0,
                ],
            );
            if r < 0 {
                result = Err(r);
            } else if r == 0 {
                eof = true;
            } else {
                got += r as u64;
            }
        }
        // Runs follow the range in address order; a short read leaves the rest of the run
        // zero but keeps the file offset in step with the addresses.
        done += run;
    });
    result
}

/// Loads the program named in the boot info and builds its initial stack.
/// The vDSO is mapped with `vvar` as its clock parameters; `now_ns` is CLOCK_REALTIME (for the
/// page cache).
pub fn load(
    info: &BootInfo,
    frames: &mut Frames,
    mm: &mut Mm,
    vvar: &Vvar,
    now_ns: u64,
) -> Result<Image, LoadError> {
    const AT_FDCWD: i64 = -100;
    const O_RDONLY_CLOEXEC: u64 = 0o2000000;
    let fd = bridge::kernel_syscall(
        nr::openat,
        [
            AT_FDCWD as u64,
            phys::virt(layout::EXE_PATH_GPA),
            O_RDONLY_CLOEXEC,
            0,
            0,
            0,
        ],
    );
    if fd < 0 {
        return Err(LoadError::Open(fd));
    }
    let stack_bottom = layout::USER_STACK_TOP - info.stack_size;
    let file = File::new(frames, fd, now_ns);
    let result = load_image(&file, frames, mm, vvar, stack_bottom);
    bridge::kernel_syscall(nr::close, [fd as u64, 0, 0, 0, 0, 0]);
    let (start, aux) = result?;
    let stack_pointer = build_stack(info, frames, mm, &aux)?;
    Ok(Image {
        entry: start,
        stack_pointer,
    })
}

/// Loads the ELF program open as `file` into `mm` (below `stack_bottom`), with its interpreter
/// and the vDSO; returns where it starts (the interpreter's entry, if any) and its auxiliary
/// vector values. Boot and exec.
pub fn load_image(
    file: &File,
    frames: &mut Frames,
    mm: &mut Mm,
    vvar: &Vvar,
    stack_bottom: u64,
) -> Result<(u64, Auxv), LoadError> {
    let header_pa = frames.alloc_page().ok_or(LoadError::NoMemory)?;
    let result = load_with_header(file, frames, mm, header_pa, vvar, stack_bottom);
    frames.free(header_pa, PAGE);
    result
}

fn load_with_header(
    file: &File,
    frames: &mut Frames,
    mm: &mut Mm,
    header_pa: u64,
    vvar: &Vvar,
    stack_bottom: u64,
) -> Result<(u64, Auxv), LoadError> {
    let n = bridge::kernel_syscall(
        nr::pread64,
        [file.fd as u64, phys::virt(header_pa), PAGE, 0, 0, 0],
    );
    if n < 0 {
        return Err(LoadError::Read);
    }
    if n < 64 {
        return Err(LoadError::NotElf);
    }
    let header: [u8; 64] = phys::read(header_pa);
    if header[0..4] != *b"\x7fELF" {
        return Err(LoadError::NotElf);
    }
    if header[4] != 2 || header[5] != 1 || u16_at(&header, 18) != 62 {
        return Err(LoadError::WrongArch);
    }
    let e_type = u16_at(&header, 16);
    let bias = match e_type {
        ET_EXEC => 0,
        ET_DYN => ET_DYN_BASE,
        _ => return Err(LoadError::NotElf),
    };
    let entry = u64_at(&header, 24)
        .checked_add(bias)
        .ok_or(LoadError::BadSegment)?;
    let phoff = u64_at(&header, 32);
    let phentsize = u16_at(&header, 54);
    let phnum = u64::from(u16_at(&header, 56));
    if phentsize != 56 || phnum == 0 || phoff.saturating_add(phnum * 56) > n as u64 {
        return Err(LoadError::NotElf);
    }

    let mut brk_start = 0;
    let mut phdr_addr = 0;
    let mut first_load_base = None;
    let mut interp = None;
    for i in 0..phnum {
        let raw: [u8; 56] = phys::read(header_pa + phoff + i * 56);
        let ph = Phdr {
            kind: u32_at(&raw, 0),
            flags: u32_at(&raw, 4),
            offset: u64_at(&raw, 8),
            vaddr: u64_at(&raw, 16),
            filesz: u64_at(&raw, 32),
            memsz: u64_at(&raw, 40),
        };
        match ph.kind {
            PT_INTERP => interp = Some((ph.offset, ph.filesz)),
            PT_PHDR => phdr_addr = ph.vaddr.wrapping_add(bias),
            PT_LOAD => {
                let end = load_segment(file, &ph, bias, stack_bottom, frames, mm)?;
                brk_start = brk_start.max(end);
                if first_load_base.is_none() {
                    first_load_base = Some(ph.vaddr.wrapping_add(bias).wrapping_sub(ph.offset));
                }
            }
            _ => {}
        }
    }
    let Some(load_base) = first_load_base else {
        return Err(LoadError::BadSegment);
    };
    if phdr_addr == 0 {
        phdr_addr = load_base.wrapping_add(phoff);
    }
    mm.set_break(brk_start);
    let (start, base) = match interp {
        Some((offset, len)) => {
            let (base, interp_entry) = load_interp(file, offset, len, frames, mm)?;
            (interp_entry, base)
        }
        None => (entry, 0),
    };
    let sysinfo_ehdr = crate::vdso::map(frames, mm, vvar)?;
    Ok((
        start,
        Auxv {
            phdr: phdr_addr,
            phnum,
            entry,
            base,
            sysinfo_ehdr,
        },
    ))
}

/// Maps one PT_LOAD segment and reads its file bytes; returns its page-aligned end.
fn load_segment(
    file: &File,
    ph: &Phdr,
    bias: u64,
    limit: u64,
    frames: &mut Frames,
    mm: &mut Mm,
) -> Result<u64, LoadError> {
    let va = ph.vaddr.checked_add(bias).ok_or(LoadError::BadSegment)?;
    let mem_end = va.checked_add(ph.memsz).ok_or(LoadError::BadSegment)?;
    if ph.filesz > ph.memsz || mem_end > limit || va < PAGE || (va ^ ph.offset) & (PAGE - 1) != 0 {
        return Err(LoadError::BadSegment);
    }
    ph.offset
        .checked_add(ph.filesz)
        .ok_or(LoadError::BadSegment)?;
    if file.size().is_some_and(|size| size < ph.offset + ph.filesz) {
        return Err(LoadError::BadSegment); // file shorter than its headers claim
    }
    let start = va & !(PAGE - 1);
    let end = align_up(mem_end, PAGE);
    let p = segment_prot(ph.flags);
    let flags = crate::vm::leaf_flags(p);
    // Segments do not overlap, but the first page of one may be the last page of the previous
    // one: it keeps its frame and gains this segment's permissions. Nothing else may be mapped
    // already (a hostile file's overlapping segments are refused, not mapped over each other).
    // The pages that hold file bytes are mapped as a file mapping is (read-only ones from the
    // page cache, writable ones read into fresh frames, run by run); the zero-fill rest (.bss)
    // is mapped like anonymous memory, with 2 MiB pages where whole blocks fit. (Per-page work
    // is what costs here: ring 0 is emulated on the development KVM.)
    if mm
        .area(start)
        .is_some_and(|v| v.kind & crate::vma::kind::IMAGE == 0)
        || (end > start + PAGE && mm.first_area(start + PAGE, end).is_some())
    {
        return Err(LoadError::BadSegment);
    }
    if mm.area(start).is_some() {
        // The page gets this segment's permissions too: a 4 KiB page of its own.
        mm.aspace.split_edges(frames, start, start + PAGE)?;
    }
    if let Some((_, e, PAGE)) = mm.aspace.leaf(start)
        && e & pte::HOLDS != 0
        && frames.is_shared(e & pte::ADDR, PAGE)
    {
        // The page is the page cache's (the previous segment is read-only): this segment's
        // bytes go into a copy of its own.
        mm.unshare(frames, start, start + PAGE)
            .map_err(|_| LoadError::NoMemory)?;
    }
    let aspace = &mm.aspace;
    let mut fresh_start = start;
    let mut shared_pa = None;
    if let Some((entry, e, PAGE)) = aspace.leaf(start)
        && e & pte::HOLDS != 0
    {
        // Both segments' permissions (a PROT_NONE page has none of its own).
        let merged = if e & pte::PRESENT == 0 {
            (e & pte::ADDR) | flags
        } else {
            let mut m = e | (flags & pte::WRITABLE);
            if flags & pte::NO_EXECUTE == 0 {
                m &= !pte::NO_EXECUTE;
            }
            m
        };
        phys::write_u64(entry, merged);
        shared_pa = Some(e & pte::ADDR);
        fresh_start = start + PAGE;
    }
    let file_end = va + ph.filesz;
    let data_end = align_up(file_end, PAGE).clamp(fresh_start.min(end), end);
    if let Some(pa) = shared_pa {
        let piece_end = file_end.min(fresh_start);
        if piece_end > va {
            pread(file.fd, pa + (va - start), piece_end - va, ph.offset)?;
        }
    }
    if data_end > fresh_start {
        // Whole file pages, from the page cache where read-only (the file offset of `start`
        // is page aligned: `va` and `ph.offset` agree modulo the page size).
        let off = ph.offset - (va - start) + (fresh_start - start);
        crate::pagecache::map_file(
            aspace,
            frames,
            fresh_start,
            data_end - fresh_start,
            flags,
            file,
            off,
            file_end.saturating_sub(fresh_start),
        )
        .map_err(LoadError::from_map)?;
    }
    if end > data_end.max(fresh_start) {
        aspace.populate(frames, data_end.max(fresh_start), end, flags, true, true)?;
    }
    mm.add_image_area(start, end, p)
        .map_err(|()| LoadError::NoMemory)?;
    Ok(end)
}

/// Loads the program interpreter named by the PT_INTERP at `offset`/`len` of the program file
/// `fd` (ld-linux, resolved inside the job root like every path) the way Linux's
/// `load_elf_interp` does: one reservation for its whole span in the mmap area, then each
/// PT_LOAD mapped there with its file bytes (the host reads them straight into the frames) and
/// its zero-filled rest. Returns the load base and the interpreter's entry point.
fn load_interp(
    file: &File,
    offset: u64,
    len: u64,
    frames: &mut Frames,
    mm: &mut Mm,
) -> Result<(u64, u64), LoadError> {
    let fail = |what: &str| {
        crate::klog!(
            bridge::level::ERROR,
            "cannot load the program interpreter: {}",
            what
        );
        LoadError::Interpreter
    };
    if !(2..=PAGE).contains(&len) {
        return Err(fail("PT_INTERP has a bad size"));
    }
    let page = frames.alloc_page().ok_or(LoadError::NoMemory)?;
    let result = (|| {
        pread(file.fd, page, len, offset)?;
        let last = page + len - 1;
        if (phys::read_u64(last & !7) >> ((last & 7) * 8)) & 0xff != 0 {
            return Err(fail("PT_INTERP is not NUL-terminated"));
        }
        const AT_FDCWD: i64 = -100;
        const O_RDONLY_CLOEXEC: u64 = 0o2000000;
        let ifd = bridge::kernel_syscall(
            nr::openat,
            [AT_FDCWD as u64, phys::virt(page), O_RDONLY_CLOEXEC, 0, 0, 0],
        );
        if ifd < 0 {
            return Err(fail("it cannot be opened inside the job root"));
        }
        let r = interp_segments(&file.other(frames, ifd), page, frames, mm);
        bridge::kernel_syscall(nr::close, [ifd as u64, 0, 0, 0, 0, 0]);
        r
    })();
    frames.free(page, PAGE);
    result
}

/// Maps the interpreter open as `file`, using `page` as scratch for its headers.
fn interp_segments(
    file: &File,
    page: u64,
    frames: &mut Frames,
    mm: &mut Mm,
) -> Result<(u64, u64), LoadError> {
    use crate::vm::{MapRequest, Place};
    use crate::vma::kind;
    let n = bridge::kernel_syscall(
        nr::pread64,
        [file.fd as u64, phys::virt(page), PAGE, 0, 0, 0],
    );
    if n < 64 {
        return Err(LoadError::Interpreter);
    }
    let header: [u8; 64] = phys::read(page);
    if header[0..4] != *b"\x7fELF"
        || header[4] != 2
        || header[5] != 1
        || u16_at(&header, 18) != 62
        || u16_at(&header, 16) != ET_DYN
    {
        return Err(LoadError::Interpreter);
    }
    let entry = u64_at(&header, 24);
    let phoff = u64_at(&header, 32);
    let phnum = u64::from(u16_at(&header, 56));
    if u16_at(&header, 54) != 56 || phnum == 0 || phoff.saturating_add(phnum * 56) > n as u64 {
        return Err(LoadError::Interpreter);
    }
    let mut segs = [(0u64, 0u64, 0u64, 0u64, 0u32); 8];
    let mut count = 0;
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for i in 0..phnum {
        let raw: [u8; 56] = phys::read(page + phoff + i * 56);
        if u32_at(&raw, 0) != PT_LOAD {
            continue;
        }
        let (flags, off, vaddr, filesz, memsz) = (
            u32_at(&raw, 4),
            u64_at(&raw, 8),
            u64_at(&raw, 16),
            u64_at(&raw, 32),
            u64_at(&raw, 40),
        );
        let end = vaddr.checked_add(memsz).ok_or(LoadError::Interpreter)?;
        if count == segs.len()
            || filesz > memsz
            || (vaddr ^ off) & (PAGE - 1) != 0
            || end > 1 << 40
            || off.checked_add(filesz).is_none()
        {
            return Err(LoadError::Interpreter);
        }
        segs[count] = (off, vaddr, filesz, memsz, segment_prot(flags));
        count += 1;
        lo = lo.min(vaddr & !(PAGE - 1));
        hi = hi.max(end);
    }
    if count == 0 || entry < lo || entry >= hi {
        return Err(LoadError::Interpreter);
    }
    let span = align_up(hi, PAGE) - lo;
    // The reservation takes no frames (NORESERVE); the segments replace it.
    let base = mm
        .map_anon(
            frames,
            MapRequest {
                place: Place::Hint(0),
                len: span,
                prot: 0,
                kind: kind::NORESERVE,
                populate: false,
                align: PAGE,
            },
        )
        .map_err(|_| LoadError::NoMemory)?
        - lo;
    for &(off, vaddr, filesz, memsz, p) in &segs[..count] {
        let start = base + (vaddr & !(PAGE - 1));
        let lead = vaddr & (PAGE - 1);
        let file_end = align_up(base + vaddr + filesz, PAGE);
        let end = align_up(base + vaddr + memsz, PAGE);
        let request = |from: u64, to: u64, kind: u32| MapRequest {
            place: Place::Fixed(from),
            len: to - from,
            prot: p,
            kind,
            populate: true,
            align: PAGE,
        };
        if file_end > start {
            // Read-only segments (ld.so's text) come from the page cache.
            mm.map_file(
                frames,
                request(start, file_end, kind::FILE),
                file,
                off - lead,
                lead + filesz,
            )
            .map_err(|e| match LoadError::from_map(e) {
                LoadError::Read => LoadError::Interpreter,
                other => other,
            })?;
        }
        if end > file_end.max(start) {
            mm.map_anon(frames, request(file_end.max(start), end, 0))
                .map_err(|_| LoadError::NoMemory)?;
        }
    }
    Ok((base, base + entry))
}

/// The program-specific auxiliary vector values.
pub struct Auxv {
    phdr: u64,
    phnum: u64,
    entry: u64,
    /// Where the interpreter was loaded (0: none).
    base: u64,
    sysinfo_ehdr: u64,
}

/// Where the strings the auxiliary vector points at are (user addresses).
pub struct AuxStrings {
    pub platform: u64,
    pub random: u64,
    pub execfn: u64,
}

/// The auxiliary vector Linux's create_elf_tables writes, in its order.
pub fn auxv_words(aux: &Auxv, info: &BootInfo, at: &AuxStrings) -> [u64; 40] {
    #[rustfmt::skip]
    let auxv: [u64; 40] = [
        33, aux.sysinfo_ehdr,             // AT_SYSINFO_EHDR (first, as Linux's ARCH_DLINFO)
        3, aux.phdr,                      // AT_PHDR
        4, 56,                            // AT_PHENT
        5, aux.phnum,                     // AT_PHNUM
        6, PAGE,                          // AT_PAGESZ
        7, aux.base,                      // AT_BASE
        8, 0,                             // AT_FLAGS
        9, aux.entry,                     // AT_ENTRY
        11, u64::from(info.ids[0]),       // AT_UID
        12, u64::from(info.ids[1]),       // AT_EUID
        13, u64::from(info.ids[2]),       // AT_GID
        14, u64::from(info.ids[3]),       // AT_EGID
        15, at.platform,                  // AT_PLATFORM
        16, info.hwcap,                   // AT_HWCAP
        17, 100,                          // AT_CLKTCK
        23, 0,                            // AT_SECURE
        25, at.random,                    // AT_RANDOM
        26, 0,                            // AT_HWCAP2
        31, at.execfn,                    // AT_EXECFN
        0, 0,                             // AT_NULL
    ];
    auxv
}

/// Maps the stack block (2 MiB pages where aligned) and writes the auxiliary vector into the
/// room the VMM left after envp. Returns the initial RSP (16-byte aligned, pointing at argc).
fn build_stack(
    info: &BootInfo,
    frames: &mut Frames,
    mm: &Mm,
    aux: &Auxv,
) -> Result<u64, LoadError> {
    let size = info.stack_size;
    let bottom = layout::USER_STACK_TOP - size;
    let flags = pte::PRESENT | pte::WRITABLE | pte::USER | pte::NO_EXECUTE;
    mm.aspace
        .map_contiguous(frames, bottom, info.stack_gpa, size, flags, false)?;

    // The VMM wrote argc/argv/envp at `initial_sp` and the strings above; the LWK adds the
    // auxiliary vector, which only it knows.
    let sp = info.initial_sp;
    let blob = layout::USER_STACK_TOP.wrapping_sub(info.strings_len);
    let auxv_end = info.auxv_va.wrapping_add(AUXV_WORDS as u64 * 8);
    if sp < bottom + PAGE
        || !sp.is_multiple_of(16)
        || info.auxv_va < sp
        || auxv_end > blob
        || blob > layout::USER_STACK_TOP
    {
        return Err(LoadError::TooManyStrings);
    }
    let at = |off: u32| blob + u64::from(off);
    let auxv = auxv_words(
        aux,
        info,
        &AuxStrings {
            platform: at(info.platform_off),
            random: at(info.random_off),
            execfn: at(info.execfn_off),
        },
    );
    const _: () = assert!(40 <= AUXV_WORDS);
    phys::write_u64s(info.stack_gpa + (info.auxv_va - bottom), &auxv);
    Ok(sp)
}
