//! docs/COMPATIBILITY.md is generated from the one syscall table (DESIGN.md rule 3); a test
//! keeps it in sync. Regenerate with `LWK_UPDATE_DOCS=1 cargo test -p lwk-vmm compat`.

use offload_abi::syscalls::{Disposition, TABLE};

/// The compatibility document, as Markdown.
pub fn render() -> String {
    let mut local = Vec::new();
    let mut offload = Vec::new();
    let mut unsupported = Vec::new();
    for s in TABLE {
        match s.disposition {
            Disposition::Local => local.push(s),
            Disposition::Offload => offload.push(s),
            Disposition::Unsupported(reason) => unsupported.push((s, reason)),
        }
    }
    let names = |v: &[&offload_abi::syscalls::SyscallInfo]| {
        v.iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    out.push_str("# Linux syscall compatibility\n\n");
    out.push_str(
        "Generated from the syscall table in `offload-bridge/abi/src/syscalls.rs` by \
         `vmm/src/compat.rs`; do not edit by hand (`LWK_UPDATE_DOCS=1 cargo test -p lwk-vmm compat` \
         regenerates it, and the test fails when it is stale).\n\n",
    );
    out.push_str(&format!(
        "{} syscalls: {} served in the LWK (no VM exit), {} offloaded to the host, {} unsupported \
         (ENOSYS). Numbers outside the table also get ENOSYS and are counted.\n\n",
        TABLE.len(),
        local.len(),
        offload.len(),
        unsupported.len()
    ));
    out.push_str("## Local (served in the LWK)\n\n");
    out.push_str(&names(&local));
    out.push_str("\n\n## Offloaded (executed by the VMM on host Linux)\n\n");
    out.push_str(&names(&offload));
    out.push_str("\n\n## Unsupported (ENOSYS)\n\n| nr | name | why |\n|---:|---|---|\n");
    for (s, reason) in unsupported {
        out.push_str(&format!("| {} | `{}` | {} |\n", s.nr, s.name, reason));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn compat_doc_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/COMPATIBILITY.md");
        let want = super::render();
        if std::env::var_os("LWK_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/COMPATIBILITY.md is stale: run LWK_UPDATE_DOCS=1 cargo test -p lwk-vmm compat"
        );
    }
}

#[cfg(test)]
mod dispatch_tests {
    use offload_abi::syscalls::{Disposition, TABLE};

    /// The guest kernel cannot run as a host test, so its dispatcher's source is checked: every
    /// syscall the table calls local must have an arm in `guest-lwk/src/syscall/mod.rs`.
    #[test]
    fn every_local_syscall_has_a_guest_handler() {
        let src = include_str!("../../guest-lwk/src/syscall/mod.rs");
        for row in TABLE.iter().filter(|r| r.disposition == Disposition::Local) {
            let arm = format!("nr::{}", row.name);
            let found = src.match_indices(&arm).any(|(i, _)| {
                let next = src[i + arm.len()..].chars().next().unwrap_or(' ');
                !(next.is_alphanumeric() || next == '_')
            });
            assert!(
                found,
                "{} is marked local but guest-lwk has no arm for it",
                row.name
            );
        }
    }
}
