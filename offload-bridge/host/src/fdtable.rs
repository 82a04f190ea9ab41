//! The guest's file-descriptor table (DESIGN.md rule 4).
//!
//! Guest fd numbers are the guest's own: each maps to a host fd owned by the table (a `dup` of
//! whatever it came from). The VMM's own fds (/dev/kvm, the VM, vCPUs, logs) are never entered,
//! so no guest number can reach them. Numbering is Linux's: the lowest free number, below the
//! RLIMIT_NOFILE soft limit.

use crate::Errno;
use offload_abi::errno::{EBADF, EMFILE};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// One open guest fd.
#[derive(Debug)]
pub struct FdEntry {
    /// The host fd that backs it (always CLOEXEC on the host).
    pub host: OwnedFd,
    /// The guest's FD_CLOEXEC flag, applied when the guest execs (issue #9).
    pub cloexec: bool,
}

/// Guest fd number -> host fd.
#[derive(Debug)]
pub struct FdTable {
    entries: BTreeMap<i32, FdEntry>,
    limit: i32,
}

impl FdTable {
    /// An empty table allowing fd numbers below `limit`.
    pub fn new(limit: u64) -> Self {
        FdTable {
            entries: BTreeMap::new(),
            limit: i32::try_from(limit).unwrap_or(i32::MAX),
        }
    }

    /// The host fd behind guest fd `fd` (`EBADF` if none). Takes the raw syscall argument and
    /// truncates it to `int` as Linux does.
    pub fn get(&self, fd: u64) -> Result<BorrowedFd<'_>, Errno> {
        self.entry(fd).map(|e| e.host.as_fd())
    }

    /// The entry of guest fd `fd`.
    pub fn entry(&self, fd: u64) -> Result<&FdEntry, Errno> {
        self.entries.get(&(fd as i32)).ok_or(Errno(EBADF))
    }

    /// Mutable entry of guest fd `fd`.
    pub fn entry_mut(&mut self, fd: u64) -> Result<&mut FdEntry, Errno> {
        self.entries.get_mut(&(fd as i32)).ok_or(Errno(EBADF))
    }

    /// Lowest free number that is at least `min`.
    fn lowest_free(&self, min: i32) -> Result<i32, Errno> {
        let mut candidate = min.max(0);
        for (&n, _) in self.entries.range(candidate..) {
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
    pub fn insert_from(&mut self, host: OwnedFd, cloexec: bool, min: i32) -> Result<i32, Errno> {
        let n = self.lowest_free(min)?;
        self.entries.insert(n, FdEntry { host, cloexec });
        Ok(n)
    }

    /// Enters `host` at the lowest free number.
    pub fn insert(&mut self, host: OwnedFd, cloexec: bool) -> Result<i32, Errno> {
        self.insert_from(host, cloexec, 0)
    }

    /// Enters `host` at exactly `fd`, closing what was there (dup2 semantics). `EBADF` if `fd`
    /// is out of range.
    pub fn insert_at(&mut self, fd: u64, host: OwnedFd, cloexec: bool) -> Result<i32, Errno> {
        let n = fd as i32;
        if n < 0 || n >= self.limit {
            return Err(Errno(EBADF));
        }
        self.entries.insert(n, FdEntry { host, cloexec });
        Ok(n)
    }

    /// Removes guest fd `fd`, returning its host fd (dropping it closes it).
    pub fn remove(&mut self, fd: u64) -> Result<OwnedFd, Errno> {
        self.entries
            .remove(&(fd as i32))
            .map(|e| e.host)
            .ok_or(Errno(EBADF))
    }

    /// One past the largest number the table may hold (RLIMIT_NOFILE).
    pub fn limit(&self) -> u64 {
        self.limit as u64
    }

    /// Guest numbers in use.
    pub fn numbers(&self) -> impl Iterator<Item = i32> + '_ {
        self.entries.keys().copied()
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
        let mut t = FdTable::new(8);
        assert_eq!(t.insert(devnull(), false), Ok(0));
        assert_eq!(t.insert(devnull(), false), Ok(1));
        assert_eq!(t.insert(devnull(), false), Ok(2));
        t.remove(1).unwrap();
        assert_eq!(t.insert(devnull(), false), Ok(1));
        assert_eq!(t.insert_from(devnull(), true, 5), Ok(5));
        assert_eq!(t.insert(devnull(), false), Ok(3));
        assert!(t.entry(5).unwrap().cloexec);
    }

    #[test]
    fn limits_and_bad_numbers() {
        let mut t = FdTable::new(2);
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
}
