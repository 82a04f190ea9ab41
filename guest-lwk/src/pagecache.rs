//! The page cache: frames holding pages of files, shared by every read-only mapping of the same
//! file pages (program text and read-only data of executables and libraries, read-only `mmap`s)
//! in every process of the job, whether or not the processes are related by fork (see
//! docs/DESIGN.md "The page cache").
//!
//! An entry names a file by what `fstat` says about it — device, inode, size, modification
//! and change times — and holds a physically contiguous run of frames with the file's bytes
//! from a page-aligned offset (zero past the end of the file). The cache is one holder of those
//! frames in the allocator's holder counts (`Frames::share`): a process mapping them is
//! another, so the frames outlive every mapping while the entry lives, and an entry's frames
//! are freed for real only when the cache lets go and no process maps them any more.
//!
//! **Staleness.** A file whose contents change gets a new change time, so its old entries no
//! longer match (and are dropped when the file is next mapped). Linux stamps times with a
//! coarse clock (one tick), so a change within the same tick as the state the cache read could
//! keep the same times: a file is therefore cached only once its change time is
//! [`SETTLE_NS`] old, and any later change then gets a visibly later time. Pseudo file systems
//! whose contents change without new times (procfs, sysfs, FUSE, ...) are never cached.
//!
//! **Memory.** The cache has no size limit of its own: when an allocation finds no free frames,
//! the allocator drops the whole cache (`Frames::reclaim`) and tries again, so cached pages
//! never cost a program memory it asks for. Frames only the cache holds count as available.
//!
//! **Writes.** Cached frames are mapped without write permission only. Making such a mapping
//! writable (mprotect) gives the process its own copy first (`Mm::unshare`), as fork's shared
//! read-only memory does; mappings created writable read their own frames from the file; the
//! host refuses guest writes to pages mapped read-only.

use crate::bridge;
use crate::frames::{Frames, PAGE, align_up};
use crate::mm::{AddressSpace, pte};
use crate::phys;
use crate::vm::count;
use offload_abi::errno::{EACCES, EBADF, ENODEV, ENOMEM};
use offload_abi::syscalls::nr;

/// How old a file's change time must be before its pages are cached (see the module docs).
pub const SETTLE_NS: u64 = 2_000_000_000;

/// Entries in the cache (runs of frames; a file read at once is usually one).
const MAX_ENTRIES: usize = 255;

/// File systems remembered as cacheable or not (by device).
const MAX_DEVS: usize = 16;

/// What identifies one version of a file's contents.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: [u64; 2],
    ctime: [u64; 2],
}

/// One run of cached frames: the bytes of file `id` from `off` (page aligned) for `len` bytes.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Entry {
    id: FileId,
    off: u64,
    pa: u64,
    len: u64,
    /// Value of the use clock at its last use (the least recently used entry goes first when
    /// the table is full).
    used: u64,
}

/// A device's file system verdict: whether its files may be cached.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Dev {
    dev: u64,
    ok: u64,
}

/// The cache's table (a part of the allocator's state, which lives in guest RAM).
#[repr(C)]
pub struct PageCache {
    len: u64,
    clock: u64,
    /// Bytes of frames the entries hold.
    bytes: u64,
    devs_len: u64,
    devs: [Dev; MAX_DEVS],
    entries: [Entry; MAX_ENTRIES],
}

impl PageCache {
    /// Bytes of frames the cache holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn entries(&self) -> &[Entry] {
        &self.entries[..self.len as usize]
    }

    /// The entry holding byte `off` of file `id`.
    fn find(&self, id: &FileId, off: u64) -> Option<usize> {
        self.entries()
            .iter()
            .position(|e| e.id.ino == id.ino && e.id == *id && e.off <= off && off < e.off + e.len)
    }

    /// Where the first cached run of file `id` above `off` starts.
    fn next_start(&self, id: &FileId, off: u64) -> Option<u64> {
        self.entries()
            .iter()
            .filter(|e| e.id.ino == id.ino && e.id == *id && e.off > off)
            .map(|e| e.off)
            .min()
    }
}

/// A file being mapped: its fd (in the calling process's host fd table) and, when its pages
/// may be cached, its identity.
pub struct File {
    pub fd: i64,
    id: Option<FileId>,
    /// Its size (`None`: fstat failed).
    size: Option<u64>,
    /// CLOCK_REALTIME when the mapping started (files changed less than [`SETTLE_NS`] before
    /// are not cached).
    now_ns: u64,
}

// struct stat (x86_64) offsets.
const ST_DEV: usize = 0;
const ST_INO: usize = 8;
const ST_MODE: usize = 24;
const ST_SIZE: usize = 48;
const ST_MTIME: usize = 88;
const ST_CTIME: usize = 104;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// File systems whose file contents can change without new times, or change behind the
/// kernel's back: procfs, sysfs, debugfs, tracefs, securityfs, configfs, cgroup v1 and v2,
/// bpf, efivarfs, pstore, FUSE.
const UNCACHEABLE_FS: [u64; 12] = [
    0x9fa0,
    0x6265_6572,
    0x6462_6720,
    0x7472_6163,
    0x7363_6673,
    0x6265_6570,
    0x0027_e0eb,
    0x6367_7270,
    0xcafe_4a11,
    0xde5e_81e4,
    0x6165_676c,
    0x6573_5546,
];

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

impl File {
    /// Describes `fd` for mapping at realtime `now_ns`. Never fails: a file that cannot be
    /// described, is not regular, changed recently or lives on a pseudo file system is
    /// mapped without the cache.
    pub fn new(frames: &mut Frames, fd: i64, now_ns: u64) -> File {
        let (id, size) = Self::identify(frames, fd, now_ns);
        File {
            fd,
            id,
            size,
            now_ns,
        }
    }

    /// The file's size when it was described (`None`: unknown).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The same description for another fd (the program interpreter the loader opened).
    pub fn other(&self, frames: &mut Frames, fd: i64) -> File {
        File::new(frames, fd, self.now_ns)
    }

    /// The file's identity if it may be cached, and its size.
    fn identify(frames: &mut Frames, fd: i64, now_ns: u64) -> (Option<FileId>, Option<u64>) {
        let mut st = [0u8; 144];
        let r = bridge::kernel_syscall(
            nr::fstat,
            [fd as u64, core::ptr::addr_of_mut!(st) as u64, 0, 0, 0, 0],
        );
        if r < 0 {
            return (None, None);
        }
        let size = Some(u64_at(&st, ST_SIZE));
        if (u64_at(&st, ST_MODE) as u32) & S_IFMT != S_IFREG {
            return (None, size);
        }
        let t = |off: usize| [u64_at(&st, off), u64_at(&st, off + 8)];
        let id = FileId {
            dev: u64_at(&st, ST_DEV),
            ino: u64_at(&st, ST_INO),
            size: u64_at(&st, ST_SIZE),
            mtime: t(ST_MTIME),
            ctime: t(ST_CTIME),
        };
        // Every change of contents sets the change time to the present (the modification time
        // can be set back by anyone who may write the file; the change time cannot). A change
        // time before 1970 is not trusted either.
        let settled = id.ctime[0]
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(id.ctime[1]))
            .and_then(|t| t.checked_add(SETTLE_NS))
            .is_some_and(|t| t <= now_ns);
        let id = (settled && frames.fs_cacheable(fd, id.dev)).then_some(id);
        (id, size)
    }
}

impl Frames {
    /// Whether files on device `dev` (of `fd`) may be cached: asks the host once per device.
    fn fs_cacheable(&mut self, fd: i64, dev: u64) -> bool {
        let c = &mut self.cache;
        if let Some(d) = c.devs[..c.devs_len as usize].iter().find(|d| d.dev == dev) {
            return d.ok != 0;
        }
        let mut sfs = [0u8; 120];
        let r = bridge::kernel_syscall(
            nr::fstatfs,
            [fd as u64, core::ptr::addr_of_mut!(sfs) as u64, 0, 0, 0, 0],
        );
        let ok = r == 0 && !UNCACHEABLE_FS.contains(&u64_at(&sfs, 0));
        let c = &mut self.cache;
        if (c.devs_len as usize) < MAX_DEVS && r == 0 {
            c.devs[c.devs_len as usize] = Dev {
                dev,
                ok: u64::from(ok),
            };
            c.devs_len += 1;
        }
        ok
    }

    /// Drops every entry: their frames lose the cache as a holder (freed if no process maps
    /// them). Returns whether there was anything to drop. The allocator calls this when it
    /// runs out of free frames.
    pub fn reclaim(&mut self) -> bool {
        if self.cache.len == 0 {
            return false;
        }
        while self.cache.len > 0 {
            self.cache_evict(self.cache.len as usize - 1);
        }
        count(|c| c.cache_reclaims += 1);
        true
    }

    fn cache_evict(&mut self, i: usize) {
        let e = self.cache.entries[i];
        let n = self.cache.len as usize;
        self.cache.entries.copy_within(i + 1..n, i);
        self.cache.len -= 1;
        self.cache.bytes -= e.len;
        self.free(e.pa, e.len);
    }

    /// Drops the entries of older versions of the file `id` names (same device and inode).
    fn cache_drop_stale(&mut self, id: &FileId) {
        let mut i = 0;
        while i < self.cache.len as usize {
            let e = &self.cache.entries[i].id;
            if e.ino == id.ino && e.dev == id.dev && e != id {
                self.cache_evict(i);
            } else {
                i += 1;
            }
        }
    }

    /// The cached frames for byte `off` of file `id` on: `(frame address, bytes to the end of
    /// the run)`.
    fn cache_find(&mut self, id: &FileId, off: u64) -> Option<(u64, u64)> {
        let i = self.cache.find(id, off)?;
        self.cache.clock += 1;
        let e = &mut self.cache.entries[i];
        e.used = self.cache.clock;
        Some((e.pa + (off - e.off), e.off + e.len - off))
    }

    /// Caches the frames `[pa, pa + len)` as file `id`'s bytes from `off` (the caller just
    /// filled them and maps them). The least recently used entry makes room when the table is
    /// full; nothing happens when the frames cannot be counted as shared.
    fn cache_insert(&mut self, id: &FileId, off: u64, pa: u64, len: u64) {
        if !self.share(pa, len) {
            return;
        }
        self.cache.clock += 1;
        let used = self.cache.clock;
        // Grow the run this one continues (a file read in pieces).
        if let Some(e) = self.cache.entries[..self.cache.len as usize]
            .iter_mut()
            .find(|e| e.id == *id && e.off + e.len == off && e.pa + e.len == pa)
        {
            e.len += len;
            e.used = used;
            self.cache.bytes += len;
            return;
        }
        if self.cache.len as usize == MAX_ENTRIES {
            let oldest = (0..MAX_ENTRIES)
                .min_by_key(|&i| self.cache.entries[i].used)
                .unwrap_or(0);
            self.cache_evict(oldest);
        }
        let n = self.cache.len as usize;
        self.cache.entries[n] = Entry {
            id: *id,
            off,
            pa,
            len,
            used,
        };
        self.cache.len += 1;
        self.cache.bytes += len;
    }
}

/// The errno mmap gives for a host error reading the file.
pub fn read_errno(e: i64) -> i64 {
    match -e {
        EBADF => -EACCES,
        ENOMEM => -ENOMEM,
        _ => -ENODEV,
    }
}

/// Reads `len` bytes of `fd` from `off` into the frames `[pa, pa + len)` (the host writes them
/// through the direct map); stops at the end of the file (the rest is left as it was). Returns
/// the bytes read, or the host's errno.
pub fn read_phys(fd: i64, pa: u64, len: u64, off: u64) -> Result<u64, i64> {
    let mut done = 0;
    while done < len {
        let r = bridge::kernel_syscall(
            nr::pread64,
            [
                fd as u64,
                phys::virt(pa + done),
                len - done,
                off + done,
                0,
                0,
            ],
        );
        if r < 0 {
            return Err(r);
        }
        if r == 0 {
            break;
        }
        done += r as u64;
    }
    Ok(done)
}

/// Maps the frames `[pa, pa + len)`, which the caller holds, at `va`. On failure none of them
/// stays mapped and the caller's hold is dropped (the partly mapped part is unmapped without
/// freeing, then the run is freed once).
fn map_run(
    aspace: &AddressSpace,
    frames: &mut Frames,
    va: u64,
    pa: u64,
    len: u64,
    flags: u64,
) -> Result<(), i64> {
    if aspace
        .map_contiguous(frames, va, pa, len, flags, false)
        .is_err()
    {
        let _ = aspace.unmap(frames, va, va + len, false);
        frames.free(pa, len);
        return Err(-ENOMEM);
    }
    Ok(())
}

/// Maps `len` bytes (a page multiple) at `va` with leaf `flags`: the first `valid` bytes hold
/// the bytes of `file` from `off` (page aligned; short at the end of the file), the rest reads
/// zero. The range must have no frames; on error the caller unmaps it (whatever got mapped is
/// freed or, if cached, loses this holder).
///
/// Read-only mappings (no `pte::WRITABLE` in `flags`) take whole file pages from the page
/// cache, filling it where it misses; a page only partly inside `valid` (the end of an ELF
/// segment before its .bss) is read privately unless the file ends there too.
#[allow(clippy::too_many_arguments)]
pub fn map_file(
    aspace: &AddressSpace,
    frames: &mut Frames,
    va: u64,
    len: u64,
    flags: u64,
    file: &File,
    off: u64,
    valid: u64,
) -> Result<(), i64> {
    let valid = valid.min(len);
    let mut cur = 0;
    if let Some(id) = file.id.as_ref().filter(|_| flags & pte::WRITABLE == 0) {
        frames.cache_drop_stale(id);
        let in_file = id.size.saturating_sub(off);
        let cached_end = if valid >= in_file {
            align_up(in_file, PAGE).min(len)
        } else {
            valid & !(PAGE - 1)
        };
        while cur < cached_end {
            let at = off + cur;
            let (miss_end, cache_it) = match frames.cache_find(id, at) {
                Some((pa, n)) => {
                    let n = n.min(cached_end - cur);
                    if frames.share(pa, n) {
                        map_run(aspace, frames, va + cur, pa, n, flags)?;
                        count(|c| c.cache_hit_bytes += n);
                        cur += n;
                        continue;
                    }
                    // No room to count another holder: a private copy of this run.
                    (cur + n, false)
                }
                None => (
                    frames
                        .cache
                        .next_start(id, at)
                        .map_or(cached_end, |s| (s - off).min(cached_end)),
                    true,
                ),
            };
            // Fresh frames for the miss, read from the file, then cached.
            while cur < miss_end {
                let (pa, pages) = frames.alloc_run((miss_end - cur) / PAGE).ok_or(-ENOMEM)?;
                let n = pages * PAGE;
                map_run(aspace, frames, va + cur, pa, n, flags)?;
                read_phys(file.fd, pa, n, off + cur).map_err(read_errno)?;
                if cache_it {
                    frames.cache_insert(id, off + cur, pa, n);
                }
                count(|c| c.cache_miss_bytes += n);
                cur += n;
            }
        }
    }
    if cur < len {
        aspace
            .populate(frames, va + cur, va + len, flags, true, true)
            .map_err(|_| -ENOMEM)?;
        if valid > cur {
            crate::loader::read_file_into(aspace, va + cur, valid - cur, file.fd, off + cur)
                .map_err(read_errno)?;
        }
    }
    Ok(())
}
