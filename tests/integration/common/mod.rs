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

/// One line of the manifest tests/programs/build.sh writes.
struct Entry {
    path: PathBuf,
    args: Vec<String>,
    /// Options for `lwk-vmm run` (`// lwk-vmm:` line), e.g. `--cpus 2`.
    lwk_options: Vec<String>,
}

fn entries() -> &'static Vec<Entry> {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("programs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs/build.sh");
        let status = Command::new("sh")
            .arg(&script)
            .arg(&out)
            .status()
            .expect("run tests/programs/build.sh");
        assert!(status.success(), "building the test programs failed");
        let manifest = std::fs::read_to_string(out.join("manifest.tsv")).expect("manifest.tsv");
        let words = |f: Option<&str>| -> Vec<String> {
            match f {
                None | Some("-") => Vec::new(),
                Some(f) => f.split_whitespace().map(str::to_string).collect(),
            }
        };
        manifest
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut fields = l.split('\t');
                let name = fields.next().unwrap_or(l);
                Entry {
                    path: out.join(name),
                    args: words(fields.next()),
                    lwk_options: words(fields.next()),
                }
            })
            .collect()
    })
}

/// The test programs, built once per test process: (binary path, args).
pub fn programs() -> &'static Vec<(PathBuf, Vec<String>)> {
    static PROGRAMS: OnceLock<Vec<(PathBuf, Vec<String>)>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        entries()
            .iter()
            .map(|e| (e.path.clone(), e.args.clone()))
            .collect()
    })
}

/// The `lwk-vmm run` options the manifest gives `prog` (empty for programs not in it).
pub fn lwk_options(prog: &Path) -> Vec<String> {
    entries()
        .iter()
        .find(|e| e.path == prog)
        .map(|e| e.lwk_options.clone())
        .unwrap_or_default()
}

pub fn program(name: &str) -> (PathBuf, Vec<String>) {
    programs()
        .iter()
        .find(|(p, _)| p.file_name().is_some_and(|f| f == name))
        .cloned()
        .unwrap_or_else(|| panic!("no test program {name}"))
}

/// Longest a single program run may take before the test fails (a hung guest must fail the
/// test, not hang CI).
const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `cmd` with stdin from /dev/null and `LWK_TEST_VAR=hello`, collecting its output;
/// panics (failing the test) if it runs longer than `RUN_TIMEOUT`.
pub fn run(cmd: &mut Command) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LWK_TEST_VAR", "hello")
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

pub fn native(prog: &Path, args: &[String]) -> Output {
    run(Command::new(prog).args(args))
}

pub fn lwk(prog: &Path, args: &[String], stats: Option<&Path>) -> Output {
    let mut cmd = Command::new(LWK_VMM);
    cmd.arg("run").args(lwk_options(prog));
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

/// Runs `prog` with all its threads on one vCPU (`--cpus 1 --oversubscribe timeslice`, plus
/// `extra` options), writing statistics to `stats` if given.
#[allow(dead_code)] // Not every test target uses it.
pub fn run_on_shared_vcpu(
    prog: &Path,
    args: &[String],
    extra: &[&str],
    stats: Option<&Path>,
) -> Output {
    let mut cmd = Command::new(LWK_VMM);
    cmd.args(["run", "--cpus", "1", "--oversubscribe", "timeslice"])
        .args(extra);
    if let Some(s) = stats {
        cmd.arg("--stats-json").arg(s);
    }
    run(cmd.arg(prog).args(args))
}

/// Asserts that an lwk-vmm run exited like the native run and printed the same stdout.
#[allow(dead_code)] // Not every test target uses it.
pub fn assert_like_native(label: &str, got: &Output, want: &Output) {
    assert_eq!(
        status_of(got),
        status_of(want),
        "{label}: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        String::from_utf8_lossy(&want.stdout),
        "{label}"
    );
}
