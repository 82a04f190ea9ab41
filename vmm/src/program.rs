//! Finding and checking the program before a VM is built, so that a missing or unrunnable
//! program gets a clear message and the exit status a shell would give (127 / 126).
//!
//! Every lookup goes through openat2(RESOLVE_IN_ROOT) on the job root, exactly as the guest's
//! own open of the program will, so what is checked here is what the LWK loads.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Why a program cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// Not found (in PATH, or at the given path).
    #[error("{name}: program not found{where_}")]
    NotFound {
        /// As given.
        name: String,
        /// " in PATH" / " inside the job root" hint.
        where_: &'static str,
    },
    /// Found but not runnable.
    #[error("{path}: {reason}")]
    NotExecutable {
        /// Path inside the root.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A program ready to be loaded by the LWK.
#[derive(Debug, Clone)]
pub struct Program {
    /// The path the LWK opens and /proc/self/exe names: absolute, canonical, inside the root.
    pub exe_path: Vec<u8>,
    /// AT_EXECFN: the path it was started by.
    pub execfn: Vec<u8>,
}

fn openat2_in_root(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    offload_host::openat2(
        root,
        &c,
        flags,
        0,
        offload_host::RESOLVE_IN_ROOT | offload_host::RESOLVE_NO_MAGICLINKS,
    )
}

pub use offload_host::{join_path as join, path_in_root};

/// Resolves `name` like a shell: a name with a slash is a path (relative to `cwd`), otherwise
/// each directory of `path_var` is tried.
pub fn resolve(
    root: BorrowedFd<'_>,
    root_path: &Path,
    cwd: &[u8],
    name: &OsStr,
    path_var: Option<&[u8]>,
) -> Result<Program, ProgramError> {
    let name_bytes = name.as_bytes();
    let shown = name.to_string_lossy().into_owned();
    let candidates: Vec<Vec<u8>> = if name_bytes.contains(&b'/') {
        vec![name_bytes.to_vec()]
    } else {
        path_var
            .unwrap_or(b"/usr/local/bin:/usr/bin:/bin")
            .split(|&b| b == b':')
            .map(|dir| if dir.is_empty() { b".".as_slice() } else { dir })
            .map(|dir| join(dir, name_bytes))
            .collect()
    };
    let mut denied = None;
    for candidate in &candidates {
        let in_root = join(cwd, candidate);
        match openat2_in_root(root, &in_root) {
            Ok(fd) => {
                let exe_path = path_in_root(std::os::fd::AsFd::as_fd(&fd), root_path)
                    .unwrap_or(in_root.clone());
                let shown_path = String::from_utf8_lossy(&exe_path).into_owned();
                check_executable(fd, &shown_path)?;
                return Ok(Program {
                    exe_path,
                    execfn: candidate.clone(),
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => denied = Some(in_root),
            Err(_) => {}
        }
    }
    if let Some(path) = denied {
        return Err(ProgramError::NotExecutable {
            path: String::from_utf8_lossy(&path).into_owned(),
            reason: "permission denied".into(),
        });
    }
    Err(ProgramError::NotFound {
        name: shown,
        where_: if name_bytes.contains(&b'/') {
            ""
        } else {
            " in PATH"
        },
    })
}

fn check_executable(fd: OwnedFd, path: &str) -> Result<(), ProgramError> {
    let not = |reason: &str| ProgramError::NotExecutable {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| not(&format!("cannot read its metadata: {e}")))?;
    if meta.is_dir() {
        return Err(not("is a directory"));
    }
    use std::os::unix::fs::PermissionsExt;
    if !meta.is_file() {
        return Err(not("is not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(not("permission denied (not executable)"));
    }
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let n = (&file)
        .read(&mut head)
        .map_err(|e| not(&format!("cannot read it: {e}")))?;
    head.truncate(n);
    check_elf(&head).map_err(not)
}

/// Checks an ELF header (and the program headers within `head`) for what the LWK can run.
pub fn check_elf(head: &[u8]) -> Result<(), &'static str> {
    if head.starts_with(b"#!") {
        return Err(
            "is a script (#!); scripts need process support, which lwk-vmm does not have yet",
        );
    }
    if head.len() < 64 || head.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF executable");
    }
    let u16_at = |o: usize| {
        head.get(o..o + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    };
    if head[4] != 2 || head[5] != 1 || u16_at(18) != 62 {
        return Err("not an x86_64 (64-bit little-endian) executable");
    }
    match u16_at(16) {
        2 | 3 => {}
        _ => return Err("not an executable ELF file (a relocatable object or core dump?)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_checks() {
        assert!(check_elf(b"#!/bin/sh\n").unwrap_err().contains("script"));
        assert!(check_elf(b"hello").unwrap_err().contains("not an ELF"));
        let me = std::fs::read("/proc/self/exe").unwrap();
        // The test binary itself is a dynamically linked x86_64 executable: the LWK loads
        // its interpreter.
        assert!(check_elf(&me[..4096]).is_ok());
        let mut arm = me[..4096].to_vec();
        arm[18] = 183;
        assert!(check_elf(&arm).unwrap_err().contains("x86_64"));
    }

    #[test]
    fn joins() {
        assert_eq!(join(b"/home/u", b"a.out"), b"/home/u/a.out");
        assert_eq!(join(b"/", b"./x"), b"/./x");
        assert_eq!(join(b"/home", b"/bin/ls"), b"/bin/ls");
    }
}
