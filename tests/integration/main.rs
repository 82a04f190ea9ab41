//! KVM integration tier: every test program in tests/programs (built by its build.sh, the one
//! list shared with the real-KVM tier) runs natively and under `lwk-vmm run`; stdout and the
//! exit status (code or signal) must be equal. More targeted checks use `--stats-json`.
//!
//! Without a usable /dev/kvm these tests print a loud SKIP and pass, unless
//! `LWK_VMM_REQUIRE_KVM=1` (set by .ci/run), which turns every skip into a failure.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn every_program_matches_its_native_run() {
    if !kvm_usable() {
        return;
    }
    let mut failures = Vec::new();
    for (prog, args) in programs() {
        let name = prog.file_name().unwrap().to_string_lossy().into_owned();
        let n = native(prog, args);
        let stats = stats_path(&name);
        let l = lwk(prog, args, Some(&stats));
        let entry = read_stats(&stats)["syscall_entry"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        if n.stdout == l.stdout && status_of(&n) == status_of(&l) {
            eprintln!("PASS {name} ({}; syscall entry: {entry})", status_of(&l));
        } else {
            eprintln!(
                "FAIL {name}: native {} / lwk-vmm {}\n--- native stdout\n{}--- lwk-vmm stdout\n{}--- lwk-vmm stderr\n{}",
                status_of(&n),
                status_of(&l),
                String::from_utf8_lossy(&n.stdout),
                String::from_utf8_lossy(&l.stdout),
                String::from_utf8_lossy(&l.stderr)
            );
            failures.push(name);
        }
    }
    assert!(
        failures.is_empty(),
        "programs differing from their native run: {failures:?}"
    );
}

#[test]
fn local_syscalls_stay_in_the_vm() {
    if !kvm_usable() {
        return;
    }
    for libc in ["glibc", "musl"] {
        let (prog, args) = program(&format!("many_syscalls-{libc}"));
        let stats = stats_path(&format!("many_syscalls-{libc}-exits"));
        let out = lwk(&prog, &args, Some(&stats));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = read_stats(&stats);
        let local = s["syscalls"]["local"].as_u64().unwrap();
        let exits = s["vm_exits"].as_u64().unwrap();
        assert!(
            local >= 20_000,
            "{libc}: only {local} local syscalls counted"
        );
        // Start-up offloads (open/read of the program, stdio) only: a handful, not thousands.
        assert!(
            exits < 40,
            "{libc}: {exits} VM exits for {local} local syscalls: {s}"
        );
        assert_eq!(s["vm_exits_by_reason"]["io_out"].as_u64(), Some(exits));
    }
}

#[test]
fn stats_json_has_the_promised_shape() {
    if !kvm_usable() {
        return;
    }
    let (prog, args) = program("hello-glibc");
    let stats = stats_path("hello-shape");
    assert!(lwk(&prog, &args, Some(&stats)).status.success());
    let s = read_stats(&stats);
    for key in ["vm_exits", "guest_page_faults", "wall_ms"] {
        assert!(s[key].is_number(), "{key} missing: {s}");
    }
    assert!(s["vm_exits_by_reason"].is_object());
    for key in ["local", "offloaded", "unsupported"] {
        assert!(s["syscalls"][key].is_u64(), "syscalls.{key} missing");
    }
    assert!(
        s["syscalls"]["offloaded"].as_u64().unwrap() >= 1,
        "hello writes through the bridge"
    );
    assert!(matches!(
        s["syscall_entry"].as_str(),
        Some("native" | "fault")
    ));
    assert!(matches!(
        s["memory_backing"].as_str(),
        Some("4K" | "thp" | "hugetlb-2M" | "hugetlb-1G")
    ));
    let vcpus = s["vcpus"].as_array().unwrap();
    assert_eq!(vcpus.len(), 1);
    assert_eq!(vcpus[0]["id"], 0);
    assert!(vcpus[0]["host_cpu"].is_u64());
}

fn lwk_stderr(args: &[&str]) -> (Option<i32>, String) {
    let o = run(Command::new(LWK_VMM).args(args));
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn unrunnable_programs_get_clear_errors() {
    // These fail before any VM is created: no KVM needed.
    let (code, err) = lwk_stderr(&["run", "/nonexistent/prog"]);
    assert_eq!(code, Some(127), "{err}");
    assert!(err.contains("not found"), "{err}");
    let (code, err) = lwk_stderr(&["run", "no-such-command-anywhere"]);
    assert_eq!(code, Some(127), "{err}");
    assert!(err.contains("in PATH"), "{err}");
    let (code, err) = lwk_stderr(&["run", "/etc/hostname"]);
    assert_eq!(code, Some(126), "{err}");
    let (code, err) = lwk_stderr(&["run", "/"]);
    assert_eq!(code, Some(126), "{err}");
    assert!(err.contains("directory"), "{err}");
    let text = Path::new(env!("CARGO_TARGET_TMPDIR")).join("not-elf");
    std::fs::write(&text, "plain text, executable\n").unwrap();
    std::fs::set_permissions(&text, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, err) = lwk_stderr(&["run", text.to_str().unwrap()]);
    assert_eq!(code, Some(126), "{err}");
    assert!(err.contains("not an ELF"), "{err}");
    let (code, err) = lwk_stderr(&["run", "--memory", "1K", "/bin/true"]);
    assert_eq!(code, Some(125), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
