//! Helpers shared by the integration test targets: building the test programs (the one list in
//! tests/programs/build.sh), running them natively and under lwk-vmm, and the KVM skip rule.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const LWK_VMM: &str = env!("CARGO_BIN_EXE_lwk-vmm");

pub fn kvm_usable() -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !ok {
        if std::env::var("LWK_VMM_REQUIRE_KVM").as_deref() == Ok("1") {
            panic!("/dev/kvm is not usable and LWK_VMM_REQUIRE_KVM=1: KVM tests must run here");
        }
        eprintln!("==================================================================");
        eprintln!("SKIP: /dev/kvm is not usable; KVM integration tests did NOT run");
        eprintln!("==================================================================");
    }
    ok
}

/// The test programs, built once per test process: (binary path, args).
pub fn programs() -> &'static Vec<(PathBuf, Vec<String>)> {
    static PROGRAMS: OnceLock<Vec<(PathBuf, Vec<String>)>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("programs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs/build.sh");
        let status = Command::new("sh")
            .arg(&script)
            .arg(&out)
            .status()
            .expect("run tests/programs/build.sh");
        assert!(status.success(), "building the test programs failed");
        let manifest = std::fs::read_to_string(out.join("manifest.tsv")).expect("manifest.tsv");
        manifest
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (name, args) = l.split_once('\t').unwrap_or((l, ""));
                (
                    out.join(name),
                    args.split_whitespace().map(str::to_string).collect(),
                )
            })
            .collect()
    })
}

pub fn program(name: &str) -> (PathBuf, Vec<String>) {
    programs()
        .iter()
        .find(|(p, _)| p.file_name().is_some_and(|f| f == name))
        .cloned()
        .unwrap_or_else(|| panic!("no test program {name}"))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .env("LWK_TEST_VAR", "hello")
        .output()
        .expect("spawn")
}

pub fn native(prog: &Path, args: &[String]) -> Output {
    run(Command::new(prog).args(args))
}

pub fn lwk(prog: &Path, args: &[String], stats: Option<&Path>) -> Output {
    let mut cmd = Command::new(LWK_VMM);
    cmd.arg("run");
    if let Some(s) = stats {
        cmd.arg("--stats-json").arg(s);
    }
    run(cmd.arg(prog).args(args))
}

pub fn status_of(o: &Output) -> String {
    match (o.status.code(), o.status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown".into(),
    }
}

pub fn stats_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.stats.json"))
}

pub fn read_stats(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("stats file written"))
        .expect("stats are JSON")
}
