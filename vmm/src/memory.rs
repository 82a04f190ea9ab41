//! Guest RAM: one anonymous host mapping registered as guest-physical `0..size`.
//!
//! Backing, best first: hugetlb 2 MiB pages when enough are free, else transparent huge pages
//! (madvise) when the host enables them, else 4 KiB pages. The choice is reported as
//! `memory_backing` (the full `--hugepages` policy and 1 GiB pages are issue #4). Fresh anonymous
//! memory reads zero, which the LWK relies on for pages it hands out.

use std::io;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap};

/// 2 MiB.
pub const MIB2: u64 = 2 << 20;

/// How guest RAM is backed on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
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
}

/// Guest RAM and how it is backed.
pub struct GuestRam {
    /// The memory, guest-physical `0..size`.
    pub mem: GuestMemoryMmap,
    /// Bytes.
    pub size: u64,
    /// Host backing.
    pub backing: Backing,
}

fn free_hugepages_2m() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
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

/// Allocates `size` bytes (a multiple of 2 MiB) of guest RAM with the best backing available.
pub fn allocate(size: u64) -> Result<GuestRam, MemoryError> {
    let base = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    if free_hugepages_2m() >= size / MIB2 {
        // MAP_HUGETLB reserves the pages at mmap time, so success means they are ours.
        let flags =
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | libc::MAP_HUGE_2MB;
        if let Ok(mem) = build(size, flags, true) {
            return Ok(GuestRam {
                mem,
                size,
                backing: Backing::Hugetlb2M,
            });
        }
    }
    let mem = build(size, base, false).map_err(|source| MemoryError::Mmap { size, source })?;
    let mut backing = Backing::Small;
    if thp_enabled() && advise_hugepages(&mem, size).is_ok() {
        backing = Backing::Thp;
    }
    Ok(GuestRam { mem, size, backing })
}

fn advise_hugepages(mem: &GuestMemoryMmap, size: u64) -> io::Result<()> {
    let host = mem
        .get_host_address(GuestAddress(0))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `host..host+size` is exactly the mapping vm-memory created above; MADV_HUGEPAGE
    // only changes how the kernel backs it and never invalidates its contents.
    let r = unsafe { libc::madvise(host.cast(), size as usize, libc::MADV_HUGEPAGE) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
