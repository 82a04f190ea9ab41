//! The tool as users meet it: exit-status classes, malformed programs, `--trace`, `--stats`,
//! config files, `check`, verbosity. Tests that boot a VM follow the KVM skip rule of
//! `common::kvm_usable`.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lwk_vmm(args: &[&str]) -> Output {
    run(Command::new(LWK_VMM).args(args))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes `bytes` as an executable file and returns its path.
fn executable(name: &str, bytes: &[u8], mode: u32) -> String {
    let p = scratch(name);
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.to_string_lossy().into_owned()
}

fn hello() -> (PathBuf, Vec<String>) {
    program("hello-glibc")
}

#[test]
fn malformed_programs_are_126_with_a_reason() {
    let (hello, _) = hello();
    let elf = std::fs::read(&hello).unwrap();
    let mut other_machine = elf.clone();
    other_machine[18] = 183; // EM_AARCH64
    let mut elf32 = elf.clone();
    elf32[4] = 1; // ELFCLASS32
    let cases: Vec<(&str, Vec<u8>, u32, &str)> = vec![
        ("empty", Vec::new(), 0o755, "not an ELF"),
        ("aarch64", other_machine, 0o755, "x86_64"),
        ("elf32", elf32, 0o755, "x86_64"),
        ("no-exec", elf.clone(), 0o644, "permission denied"),
        ("script", b"#!/bin/sh\necho hi\n".to_vec(), 0o755, "script"),
    ];
    for (name, bytes, mode, why) in cases {
        let path = executable(name, &bytes, mode);
        let o = lwk_vmm(&["run", &path]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(126), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    let o = lwk_vmm(&["run", scratch("").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(126));
    assert!(text(&o.stderr).contains("directory"));
}

#[test]
fn truncated_programs_fail_cleanly_in_the_lwk() {
    if !kvm_usable() {
        return;
    }
    let (hello, _) = hello();
    let elf = std::fs::read(&hello).unwrap();
    // Two PT_LOADs over the same pages: the third one a copy of the second's (the text).
    let mut overlapping = elf.clone();
    let u = |b: &[u8], at: usize, n: usize| {
        b[at..at + n]
            .iter()
            .rev()
            .fold(0usize, |v, &x| (v << 8) | usize::from(x))
    };
    let (phoff, phnum) = (u(&elf, 32, 8), u(&elf, 56, 2));
    let loads: Vec<usize> = (0..phnum)
        .map(|i| phoff + i * 56)
        .filter(|&at| u(&elf, at, 4) == 1)
        .collect();
    assert!(loads.len() >= 3, "hello has R, RX, R and RW PT_LOADs");
    overlapping.copy_within(loads[1]..loads[1] + 56, loads[2]);
    let cases = [
        ("trunc-header", elf[..120].to_vec()),
        ("trunc-body", elf[..16 * 1024].to_vec()),
        ("overlapping-segments", overlapping),
    ];
    for (name, bytes) in cases {
        let path = executable(name, &bytes, 0o755);
        let o = lwk_vmm(&["run", &path]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(126), "{name}: {err}");
        assert!(err.contains("cannot load the program"), "{name}: {err}");
    }
}

#[test]
fn usage_errors_are_125() {
    for args in [
        vec!["run", "--bogus-option", "/bin/true"],
        vec!["run", "--memory", "lots", "/bin/true"],
        vec!["run", "--hugepages", "4M", "/bin/true"],
        vec!["run", "--cpu-list", "x", "/bin/true"],
        vec!["run"],
        vec!["frobnicate"],
    ] {
        let o = lwk_vmm(&args);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", text(&o.stderr));
    }
    let bad = scratch("bad.toml");
    std::fs::write(&bad, "memory = \"1G\"\ncpuz = 2\n").unwrap();
    let o = lwk_vmm(&["run", "--config", bad.to_str().unwrap(), "/bin/true"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("bad.toml:2") && err.contains("cpuz"), "{err}");
    let o = lwk_vmm(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).starts_with("lwk-vmm "));
}

#[test]
fn trace_shows_every_syscall_like_strace() {
    if !kvm_usable() {
        return;
    }
    let (hello, _) = hello();
    let trace = scratch("hello.trace");
    let o = lwk_vmm(&[
        "run",
        &format!("--trace={}", trace.display()),
        hello.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "hello from a static program\n",
        "the trace must not go to stdout"
    );
    let t = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = t.lines().collect();
    // Stable fields only: pid, marker, call, decoded arguments, result.
    let strip = |l: &str| {
        l.split(" <")
            .next()
            .unwrap_or(l)
            .split_once(' ')
            .map(|x| x.1)
            .unwrap_or(l)
            .to_string()
    };
    let calls: Vec<String> = lines.iter().map(|l| strip(l)).collect();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("local   brk(NULL) = 0x")),
        "{t}"
    );
    assert!(
        calls
            .contains(&"offload write(1, \"hello from a static program\\n\", 28) = 28".to_string()),
        "{t}"
    );
    // The trace shows at most 32 bytes of a buffer.
    let exe = hello.to_str().unwrap();
    let readlink = format!(
        "offload readlink(\"/proc/self/exe\", \"{}",
        &exe[..exe.len().min(32)]
    );
    assert!(
        calls.iter().any(|c| c.starts_with(&readlink)),
        "{readlink} in {t}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("nosys   rseq(")
            && c.contains("= -1 ENOSYS (Function not implemented)")),
        "{t}"
    );
    assert_eq!(
        calls.last().map(String::as_str),
        Some("local   exit_group(0) = ?"),
        "{t}"
    );
    let pid_field = lines[0].split(' ').next().unwrap();
    assert!(pid_field.parse::<u32>().is_ok(), "{t}");
    assert!(lines.iter().all(|l| l.starts_with(pid_field)));
    // Timing field on every returning call.
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.ends_with('>') && l.contains(" <0.")),
        "{t}"
    );
    // Failed calls are shown strace-style.
    let o = lwk_vmm(&[
        "run",
        "--trace",
        program("stdio_fds-musl").0.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert!(
        err.contains("fstat(97, ") && err.contains("= -1 EBADF (Bad file descriptor)"),
        "{err}"
    );
}

#[test]
fn stats_summary_and_verbosity() {
    if !kvm_usable() {
        return;
    }
    let (hello, _) = hello();
    let o = lwk_vmm(&["run", "--stats", hello.to_str().unwrap()]);
    let err = text(&o.stderr);
    for want in [
        "lwk-vmm stats: wall",
        "syscalls:",
        "local",
        "offloaded",
        "VM exits:",
        "memory backing:",
        "vCPU 0 -> CPU",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    let o = lwk_vmm(&["run", "-v", hello.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert!(
        err.contains("lwk-vmm: [lwk] boot:") && err.contains("guest memory"),
        "{err}"
    );
    let o = lwk_vmm(&["run", "-q", hello.to_str().unwrap()]);
    assert_eq!(text(&o.stderr), "", "-q prints nothing for a good run");
    assert_eq!(text(&o.stdout), "hello from a static program\n");
}

#[test]
fn shipped_configs_run_a_program() {
    if !kvm_usable() {
        return;
    }
    let (hello, _) = hello();
    for name in ["default.toml", "hpc.toml", "laptop.toml"] {
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(name);
        let o = lwk_vmm(&[
            "run",
            "-q",
            "--config",
            cfg.to_str().unwrap(),
            hello.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "hello from a static program\n", "{name}");
    }
}

#[test]
fn check_reports_and_succeeds_where_kvm_works() {
    let o = lwk_vmm(&["check"]);
    let out = text(&o.stdout);
    for want in [
        "KVM flavour:",
        "/dev/kvm:",
        "THP:",
        "isolated cores:",
        "cores for vCPUs:",
    ] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }
    if kvm_usable() {
        assert_eq!(o.status.code(), Some(0), "{out}");
        assert!(out.contains("jobs can run here"));
    } else {
        assert_ne!(o.status.code(), Some(0));
    }
}
