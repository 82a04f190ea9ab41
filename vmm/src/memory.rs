//! Guest RAM: one anonymous host mapping registered as guest-physical `0..size`.
//!
//! `--hugepages` chooses the host backing: `1G` / `2M` (hugetlb pages, reserved when the
//! mapping is made, so success means they are ours), `thp` (transparent huge pages via
//! madvise), `off` (4 KiB pages, THP explicitly refused), or `auto` (default): 1G if enough
//! are free and the size allows, else 2M if enough are free, else THP if the host enables it,
//! else 4 KiB. An explicit choice that cannot be satisfied is an error that says what to do.
//! Fresh anonymous memory reads zero, which the LWK relies on for pages it hands out; when it
//! reuses memory it asks the host to zero it ([`Backing::zero_method`]).
//!
//! How much of it a program gets: guest RAM minus 16 MiB (the LWK image, its page tables and
//! bridge pages), minus the initial stack block (RLIMIT_STACK, 2-64 MiB, always mapped), minus
//! the LWK's own bookkeeping (~140 KiB) and the program's page tables (4 KiB per 2 MiB mapped
//! with 4 KiB pages, next to nothing for 2 MiB pages). A request beyond that is ENOMEM.

use std::io;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap};

/// 2 MiB.
pub const MIB2: u64 = 2 << 20;

/// 1 GiB.
pub const GIB: u64 = 1 << 30;

/// What `--hugepages` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HugepagePolicy {
    /// The best backing the host has right now.
    Auto,
    /// hugetlb 1 GiB pages (error if not enough are free).
    #[value(name = "1G")]
    Huge1G,
    /// hugetlb 2 MiB pages (error if not enough are free).
    #[value(name = "2M")]
    Huge2M,
    /// Transparent huge pages (error if the host disables THP).
    Thp,
    /// 4 KiB pages.
    Off,
}

/// How guest RAM is backed on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// hugetlbfs 1 GiB pages.
    Hugetlb1G,
    /// hugetlbfs 2 MiB pages.
    Hugetlb2M,
    /// Transparent huge pages (madvise).
    Thp,
    /// Base pages.
    Small,
}

impl Backing {
    /// The name used in `--stats-json`.
    pub fn name(self) -> &'static str {
        match self {
            Backing::Hugetlb1G => "hugetlb-1G",
            Backing::Hugetlb2M => "hugetlb-2M",
            Backing::Thp => "thp",
            Backing::Small => "4K",
        }
    }
}

/// Errors creating guest RAM.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The host refused the mapping.
    #[error("cannot allocate {size} bytes of guest memory")]
    Mmap {
        /// Requested size.
        size: u64,
        /// Cause.
        #[source]
        source: vm_memory::mmap::MmapRegionError,
    },
    /// vm-memory refused the region layout (a bug).
    #[error("cannot register guest memory")]
    Region,
    /// Not enough hugetlb pages.
    #[error(
        "--hugepages {size}: {need} hugepages of {size} needed, {free} free (reserve them as root: \
         echo {need} > /sys/kernel/mm/hugepages/hugepages-{kb}kB/nr_hugepages)"
    )]
    NotEnoughHugepages {
        /// "1G" or "2M".
        size: &'static str,
        /// Pages needed.
        need: u64,
        /// Pages free.
        free: u64,
        /// Page size in kB (for the sysfs path).
        kb: u64,
    },
    /// 1 GiB pages need a size that is a multiple of 1 GiB.
    #[error("--hugepages 1G needs --memory to be a multiple of 1G (it is {0} MiB)")]
    NotGibMultiple(u64),
    /// THP disabled on the host.
    #[error(
        "--hugepages thp: transparent huge pages are disabled on this host (/sys/kernel/mm/transparent_hugepage/enabled is [never])"
    )]
    ThpDisabled,
    /// hugetlb mmap failed although pages were free.
    #[error("--hugepages {size}: the host refused the hugetlb mapping")]
    HugetlbMap {
        /// "1G" or "2M".
        size: &'static str,
        /// Cause.
        #[source]
        source: vm_memory::mmap::MmapRegionError,
    },
}

impl Backing {
    /// How the host makes reused guest RAM read zero: hugetlb pages must stay (a dropped page
    /// might not come back at refault), anonymous pages can be dropped.
    pub fn zero_method(self) -> offload_host::ZeroMethod {
        match self {
            Backing::Hugetlb1G | Backing::Hugetlb2M => offload_host::ZeroMethod::Write,
            Backing::Thp | Backing::Small => offload_host::ZeroMethod::Discard,
        }
    }
}

/// Guest RAM and how it is backed.
pub struct GuestRam {
    /// The memory, guest-physical `0..size`.
    pub mem: GuestMemoryMmap,
    /// Bytes.
    pub size: u64,
    /// Host backing.
    pub backing: Backing,
    /// What `--hugepages auto` tried before it got `backing` (empty for explicit choices).
    pub tried: Vec<String>,
    /// The host mapping when it was made here (2 MiB aligned) rather than by vm-memory;
    /// declared after `mem`, so it is unmapped after the memory object that points into it.
    _mapping: Option<AlignedMapping>,
}

/// An anonymous host mapping at a 2 MiB-aligned address, unmapped on drop. Transparent huge
/// pages need the alignment; kernels before 6.7 do not align large anonymous mappings by
/// themselves, and host-side zeroing drops guest RAM in 2 MiB units that must be host THPs.
struct AlignedMapping {
    addr: usize,
    len: usize,
}

impl AlignedMapping {
    /// `len` bytes of private anonymous memory (MAP_NORESERVE) at a 2 MiB boundary.
    fn new(len: usize) -> io::Result<AlignedMapping> {
        let unit = MIB2 as usize;
        let reserve = len.checked_add(unit).ok_or(io::ErrorKind::InvalidInput)?;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a new mapping at an address the kernel picks; nothing refers to it yet.
        let raw =
            unsafe { libc::mmap(std::ptr::null_mut(), reserve, libc::PROT_NONE, flags, -1, 0) };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = raw as usize;
        let addr = start.next_multiple_of(unit);
        // SAFETY: `addr..addr + len` lies inside the reservation just made, which only this
        // function knows; MAP_FIXED replaces that part of it with accessible memory.
        let mapped = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        let error = (mapped == libc::MAP_FAILED).then(io::Error::last_os_error);
        // SAFETY: the head and tail are parts of the reservation outside `addr..addr + len`
        // (the whole reservation when the mapping failed); no one else refers to them.
        unsafe {
            if let Some(e) = error {
                libc::munmap(raw, reserve);
                return Err(e);
            }
            if addr > start {
                libc::munmap(raw, addr - start);
            }
            if start + reserve > addr + len {
                libc::munmap(
                    (addr + len) as *mut libc::c_void,
                    start + reserve - (addr + len),
                );
            }
        }
        Ok(AlignedMapping { addr, len })
    }
}

impl Drop for AlignedMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` and is unmapped once, here; the guest memory
        // object pointing into it is dropped before (see `GuestRam`).
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

impl GuestRam {
    /// One line for `-v`: size, backing and how auto decided.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} MiB guest memory ({})",
            self.size >> 20,
            self.backing.name()
        );
        if !self.tried.is_empty() {
            s.push_str(&format!(" [auto: {}]", self.tried.join("; ")));
        }
        s
    }
}

fn hugepage_count(kb: u64, what: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/kernel/mm/hugepages/hugepages-{kb}kB/{what}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Hugetlb pages of `kb` that a new mapping can still reserve: free minus those other
/// mappings reserved but have not touched yet.
fn free_hugepages(kb: u64) -> u64 {
    hugepage_count(kb, "free_hugepages").saturating_sub(hugepage_count(kb, "resv_hugepages"))
}

fn thp_enabled() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .map(|s| s.contains("[always]") || s.contains("[madvise]"))
        .unwrap_or(false)
}

fn build(
    size: u64,
    flags: i32,
    hugetlb: bool,
) -> Result<GuestMemoryMmap, vm_memory::mmap::MmapRegionError> {
    let region = MmapRegionBuilder::new(size as usize)
        .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
        .with_mmap_flags(flags)
        .with_hugetlbfs(hugetlb)
        .build()?;
    let region = GuestRegionMmap::new(region, GuestAddress(0))
        .ok_or(vm_memory::mmap::MmapRegionError::InvalidPointer)?;
    GuestMemoryMmap::from_regions(vec![region])
        .map_err(|_| vm_memory::mmap::MmapRegionError::InvalidPointer)
}

fn hugetlb(size: u64, one_gib: bool) -> Result<GuestRam, MemoryError> {
    let (name, kb, page, flag, backing) = if one_gib {
        (
            "1G",
            1024 * 1024,
            GIB,
            libc::MAP_HUGE_1GB,
            Backing::Hugetlb1G,
        )
    } else {
        ("2M", 2048, MIB2, libc::MAP_HUGE_2MB, Backing::Hugetlb2M)
    };
    if one_gib && !size.is_multiple_of(GIB) {
        return Err(MemoryError::NotGibMultiple(size >> 20));
    }
    let need = size.div_ceil(page);
    let free = free_hugepages(kb);
    if free < need {
        return Err(MemoryError::NotEnoughHugepages {
            size: name,
            need,
            free,
            kb,
        });
    }
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | flag;
    let mem = build(size, flags, true)
        .map_err(|source| MemoryError::HugetlbMap { size: name, source })?;
    Ok(GuestRam {
        mem,
        size,
        backing,
        tried: Vec::new(),
        _mapping: None,
    })
}

fn small(size: u64, thp: bool) -> Result<GuestRam, MemoryError> {
    let mmap_error = |source| MemoryError::Mmap { size, source };
    let mapping = AlignedMapping::new(size as usize)
        .map_err(|e| mmap_error(vm_memory::mmap::MmapRegionError::Mmap(e)))?;
    // SAFETY: `mapping` is a present mapping of exactly `size` bytes, and it outlives the region
    // (both end up in the same `GuestRam`, the region first).
    let builder = unsafe {
        MmapRegionBuilder::new(size as usize).with_raw_mmap_pointer(mapping.addr as *mut u8)
    };
    let region = builder
        .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
        .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE)
        .build()
        .map_err(mmap_error)?;
    let region = GuestRegionMmap::new(region, GuestAddress(0))
        .ok_or(vm_memory::mmap::MmapRegionError::InvalidPointer)
        .map_err(mmap_error)?;
    let mem = GuestMemoryMmap::from_regions(vec![region]).map_err(|_| MemoryError::Region)?;
    let advice = if thp {
        libc::MADV_HUGEPAGE
    } else {
        libc::MADV_NOHUGEPAGE
    };
    let advised = advise(&mem, size, advice).is_ok();
    let backing = if thp && advised {
        Backing::Thp
    } else {
        Backing::Small
    };
    Ok(GuestRam {
        mem,
        size,
        backing,
        tried: Vec::new(),
        _mapping: Some(mapping),
    })
}

/// Allocates `size` bytes (a multiple of 2 MiB) of guest RAM backed as `policy` asks.
pub fn allocate(size: u64, policy: HugepagePolicy) -> Result<GuestRam, MemoryError> {
    match policy {
        HugepagePolicy::Huge1G => hugetlb(size, true),
        HugepagePolicy::Huge2M => hugetlb(size, false),
        HugepagePolicy::Thp if !thp_enabled() => Err(MemoryError::ThpDisabled),
        HugepagePolicy::Thp => small(size, true),
        HugepagePolicy::Off => small(size, false),
        HugepagePolicy::Auto => {
            let mut tried = Vec::new();
            if size.is_multiple_of(GIB) {
                match hugetlb(size, true) {
                    Ok(ram) => return Ok(ram),
                    Err(e) => tried.push(format!("1G: {}", short_reason(&e))),
                }
            } else {
                tried.push("1G: size not a multiple of 1G".into());
            }
            match hugetlb(size, false) {
                Ok(ram) => return Ok(GuestRam { tried, ..ram }),
                Err(e) => tried.push(format!("2M: {}", short_reason(&e))),
            }
            let thp = thp_enabled();
            if !thp {
                tried.push("thp: disabled on this host".into());
            }
            let ram = small(size, thp)?;
            Ok(GuestRam { tried, ..ram })
        }
    }
}

/// Why a hugetlb attempt failed, in a few words.
fn short_reason(e: &MemoryError) -> String {
    match e {
        MemoryError::NotEnoughHugepages { need, free, .. } => {
            format!("{free} free of {need} needed")
        }
        MemoryError::HugetlbMap { .. } => "the host refused the mapping".into(),
        other => other.to_string(),
    }
}

fn advise(mem: &GuestMemoryMmap, size: u64, advice: i32) -> io::Result<()> {
    let host = mem
        .get_host_address(GuestAddress(0))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `host..host+size` is exactly the mapping vm-memory created above; MADV_HUGEPAGE
    // and MADV_NOHUGEPAGE only change how the kernel backs it, never its contents.
    let r = unsafe { libc::madvise(host.cast(), size as usize, advice) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
