//! The guest's file-descriptor table (DESIGN.md rule 4).
//!
//! Guest fd numbers are the guest's own: each maps to a host fd owned by the table (a `dup` of
//! whatever it came from). The VMM's own fds (/dev/kvm, the VM, vCPUs, logs) are never entered,
//! so no guest number can reach them. Numbering is Linux's: the lowest free number, below the
//! RLIMIT_NOFILE soft limit.

use crate::Errno;
use offload_abi::errno::{EBADF, EMFILE};
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A host fd taken out of the table for one call. The table keeps its own reference; a call
/// holds this one while it runs on the host without the table's lock, so a guest `close` (or
/// `dup2` over the number) by another vCPU while the call blocks on the fd is safe: the host fd
/// stays open until the call returns (Linux behaves alike: a file stays referenced by a syscall
/// using it when another thread closes the descriptor).
pub type HostFd = Arc<OwnedFd>;

/// A view directory's entries: (name, d_type, inode) in listing order.
pub(crate) type Listing = Vec<(Vec<u8>, u8, u64)>;

/// A directory of the /proc view (`procview`): which one, and the read position that
/// getdents and lseek move with the entries listed when getdents last started from the
/// beginning (Linux lists a /proc directory when it is read, so the directory's own fd
/// appears in /proc/self/fd). Shared by the fd's copies across fork, like an open file
/// description.
#[derive(Debug)]
pub(crate) struct VirtDir {
    /// Which directory (its guest path, `procview::dir_path`, is where relative lookups
    /// from it and fchdir start).
    pub node: crate::procview::DirNode,
    /// (index of the next entry getdents returns, the listing).
    pub state: Mutex<(usize, Listing)>,
}

/// One open guest fd.
#[derive(Debug)]
struct FdEntry {
    /// The host fd that backs it (always CLOEXEC on the host).
    host: HostFd,
    /// The guest's FD_CLOEXEC flag, applied when the guest execs (issue #9).
    cloexec: bool,
    /// For a /proc view directory, its listing (the host fd is then an empty directory).
    dir: Option<Arc<VirtDir>>,
}

/// Guest fd number -> host fd, shared by every thread that serves the job's offloads.
///
/// Locking (docs/DESIGN.md "Concurrent offloads"): one mutex over the map, held only inside
/// these methods for a lookup or an update, never across a host call. An entry removed or
/// replaced is dropped (its host fd closed, if no call holds it) after the lock is released.
#[derive(Debug)]
pub struct FdTable {
    entries: Mutex<BTreeMap<i32, FdEntry>>,
    limit: i32,
}

impl FdTable {
    /// An empty table allowing fd numbers below `limit`.
    pub fn new(limit: u64) -> Self {
        FdTable {
            entries: Mutex::new(BTreeMap::new()),
            limit: i32::try_from(limit).unwrap_or(i32::MAX),
        }
    }

    /// The map, even if a thread panicked while holding it (every update is a single map
    /// operation, so a panic cannot leave it half-changed).
    fn map(&self) -> MutexGuard<'_, BTreeMap<i32, FdEntry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The host fd behind guest fd `fd` (`EBADF` if none). Takes the raw syscall argument and
    /// truncates it to `int` as Linux does.
    pub fn get(&self, fd: u64) -> Result<HostFd, Errno> {
        self.map()
            .get(&(fd as i32))
            .map(|e| e.host.clone())
            .ok_or(Errno(EBADF))
    }

    /// The guest's FD_CLOEXEC flag of `fd`.
    pub fn cloexec(&self, fd: u64) -> Result<bool, Errno> {
        self.map()
            .get(&(fd as i32))
            .map(|e| e.cloexec)
            .ok_or(Errno(EBADF))
    }

    /// Sets the guest's FD_CLOEXEC flag of `fd`.
    pub fn set_cloexec(&self, fd: u64, cloexec: bool) -> Result<(), Errno> {
        let mut map = self.map();
        let e = map.get_mut(&(fd as i32)).ok_or(Errno(EBADF))?;
        e.cloexec = cloexec;
        Ok(())
    }

    /// Lowest free number that is at least `min`.
    fn lowest_free(&self, map: &BTreeMap<i32, FdEntry>, min: i32) -> Result<i32, Errno> {
        let mut candidate = min.max(0);
        for (&n, _) in map.range(candidate..) {
            if n != candidate {
                break;
            }
            candidate = candidate.checked_add(1).ok_or(Errno(EMFILE))?;
        }
        if candidate >= self.limit {
            return Err(Errno(EMFILE));
        }
        Ok(candidate)
    }

    /// Enters `host` at the lowest free number `>= min`; returns the guest number.
    pub fn insert_from(&self, host: OwnedFd, cloexec: bool, min: i32) -> Result<i32, Errno> {
        let mut map = self.map();
        let n = self.lowest_free(&map, min)?;
        map.insert(
            n,
            FdEntry {
                host: Arc::new(host),
                cloexec,
                dir: None,
            },
        );
        Ok(n)
    }

    /// Enters a /proc view directory (`host`: an empty directory standing for it) at the
    /// lowest free number.
    pub(crate) fn insert_dir(
        &self,
        host: OwnedFd,
        cloexec: bool,
        dir: VirtDir,
    ) -> Result<i32, Errno> {
        let mut map = self.map();
        let n = self.lowest_free(&map, 0)?;
        map.insert(
            n,
            FdEntry {
                host: Arc::new(host),
                cloexec,
                dir: Some(Arc::new(dir)),
            },
        );
        Ok(n)
    }

    /// The /proc view directory guest fd `fd` is, if it is one.
    pub(crate) fn virt_dir(&self, fd: u64) -> Option<Arc<VirtDir>> {
        self.map().get(&(fd as i32)).and_then(|e| e.dir.clone())
    }

    /// Enters `host` at the lowest free number.
    pub fn insert(&self, host: OwnedFd, cloexec: bool) -> Result<i32, Errno> {
        self.insert_from(host, cloexec, 0)
    }

    /// Enters `host` at exactly `fd`, closing what was there (dup2 semantics). `EBADF` if `fd`
    /// is out of range.
    pub fn insert_at(&self, fd: u64, host: OwnedFd, cloexec: bool) -> Result<i32, Errno> {
        let n = fd as i32;
        if n < 0 || n >= self.limit {
            return Err(Errno(EBADF));
        }
        let entry = FdEntry {
            host: Arc::new(host),
            cloexec,
            dir: None,
        };
        let old = self.map().insert(n, entry);
        // Closed here, after the lock (a close may block, e.g. a socket lingering).
        drop(old);
        Ok(n)
    }

    /// Removes guest fd `fd`, returning its host fd (dropping the last reference closes it).
    pub fn remove(&self, fd: u64) -> Result<HostFd, Errno> {
        let removed = self.map().remove(&(fd as i32));
        removed.map(|e| e.host).ok_or(Errno(EBADF))
    }

    /// One past the largest number the table may hold (RLIMIT_NOFILE).
    pub fn limit(&self) -> u64 {
        self.limit as u64
    }

    /// Guest numbers in use, ascending.
    pub fn numbers(&self) -> Vec<i32> {
        self.map().keys().copied().collect()
    }

    /// A copy for a forked process: the same numbers naming the same host fds (the same open
    /// file descriptions, as fork(2) shares them), with the same CLOEXEC flags and limit.
    pub fn fork(&self) -> FdTable {
        let copy = self
            .map()
            .iter()
            .map(|(&n, e)| {
                let entry = FdEntry {
                    host: e.host.clone(),
                    cloexec: e.cloexec,
                    dir: e.dir.clone(),
                };
                (n, entry)
            })
            .collect();
        FdTable {
            entries: Mutex::new(copy),
            limit: self.limit,
        }
    }

    /// execve(2)'s part: removes every fd whose CLOEXEC flag is set. Returns how many.
    pub fn close_on_exec(&self) -> usize {
        let removed: Vec<FdEntry> = {
            let mut map = self.map();
            let doomed: Vec<i32> = map
                .iter()
                .filter(|(_, e)| e.cloexec)
                .map(|(&n, _)| n)
                .collect();
            doomed.iter().filter_map(|n| map.remove(n)).collect()
        };
        // Closed here, after the lock.
        removed.len()
    }

    /// Removes every fd (the process exited); host fds close after the lock, when no other
    /// table or running call holds them.
    pub fn clear(&self) {
        let all = std::mem::take(&mut *self.map());
        drop(all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn devnull() -> OwnedFd {
        File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn lowest_free_numbering() {
        let t = FdTable::new(8);
        assert_eq!(t.insert(devnull(), false), Ok(0));
        assert_eq!(t.insert(devnull(), false), Ok(1));
        assert_eq!(t.insert(devnull(), false), Ok(2));
        t.remove(1).unwrap();
        assert_eq!(t.insert(devnull(), false), Ok(1));
        assert_eq!(t.insert_from(devnull(), true, 5), Ok(5));
        assert_eq!(t.insert(devnull(), false), Ok(3));
        assert!(t.cloexec(5).unwrap());
    }

    #[test]
    fn limits_and_bad_numbers() {
        let t = FdTable::new(2);
        t.insert(devnull(), false).unwrap();
        t.insert(devnull(), false).unwrap();
        assert_eq!(t.insert(devnull(), false), Err(Errno(EMFILE)));
        assert_eq!(t.get(7).err(), Some(Errno(EBADF)));
        assert_eq!(t.get(u64::MAX).err(), Some(Errno(EBADF)));
        // An int argument with junk in the upper half is truncated like Linux does.
        assert!(t.get(0xdead_beef_0000_0001).is_ok());
        assert_eq!(t.insert_at(2, devnull(), false), Err(Errno(EBADF)));
        assert_eq!(t.remove(9).err(), Some(Errno(EBADF)));
    }

    #[test]
    fn a_held_fd_survives_close_and_dup2_over_it() {
        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        let t = FdTable::new(8);
        let (r, w) = std::io::pipe().unwrap();
        let rn = t.insert(r.into(), false).unwrap();
        // A call on another vCPU holds the read end while the guest closes the number...
        let held = t.get(rn as u64).unwrap();
        drop(t.remove(rn as u64).unwrap());
        assert_eq!(t.get(rn as u64).err(), Some(Errno(EBADF)));
        // ...and another fd takes the number (dup2 over it would do the same).
        t.insert_at(rn as u64, devnull(), false).unwrap();
        let mut w = w;
        w.write_all(b"x").unwrap();
        let mut f = std::fs::File::from(held.as_fd().try_clone_to_owned().unwrap());
        let mut b = [0u8; 1];
        assert_eq!(
            f.read(&mut b).unwrap(),
            1,
            "the held host fd is still the pipe"
        );
        assert_eq!(&b, b"x");
    }
}
