//! Processes (fork, exec, wait, process groups) with programs nobody here wrote: shell command
//! lines through Debian's static busybox and the host's dynamically linked /bin/sh (dash) —
//! pipelines, subshells, command substitution, `$?`, loops, here-documents, background jobs —
//! natively and under lwk-vmm on two vCPUs and on one shared vCPU, stdout and exit status
//! compared. Also the process test programs (tests/programs/proc_*.c, which the main test runs
//! with the `--cpus 2` their `// lwk-vmm:` line asks) with every process on one vCPU.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Shell command lines and what each exercises. Each must print the same bytes on every run.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "pipeline",
        "echo a b c | tr ' ' '\\n' | sort -r | head -n 2",
    ),
    (
        "subshell and cd",
        "( cd /tmp && pwd ); pwd >/dev/null; echo after",
    ),
    (
        "command substitution",
        "echo $(echo nested $(echo deep)); x=$(printf '%s-' 1 2 3); echo \"$x\"",
    ),
    (
        "exit statuses",
        "false; echo \"false: $?\"; true; echo \"true: $?\"; (exit 7); echo \"subshell: $?\"; \
         sh -c 'exit 9'; echo \"child sh: $?\"",
    ),
    (
        "loops",
        "for i in 1 2 3; do echo \"n=$i\"; done; i=0; while [ $i -lt 3 ]; do i=$((i+1)); done; \
         echo \"while: $i\"",
    ),
    (
        "here-document",
        "cat <<EOF\nfirst line\nsum $((2 + 3))\nvar ${LWK_TEST_VAR:-unset}\nEOF",
    ),
    (
        "wc and redirections",
        "printf 'hello world\\n' | wc -c; echo two words 2>&1 >/dev/null | wc -l; \
         { echo out; echo err >&2; } 2>&1 | sort",
    ),
    (
        "background job",
        "(exit 4) & wait $!; echo \"background: $?\"; echo x | (read v; echo \"read $v\")",
    ),
    ("exit code", "echo before; exit 3"),
    (
        "killed by a signal",
        "echo before; kill -TERM $$; echo not reached",
    ),
];

fn host_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `shell -c script` natively and under lwk-vmm with `opts`; returns a failure description.
fn compare(shell: &[&str], label: &str, script: &str, opts: &[&str], cwd: &Path) -> Option<String> {
    let n = run(Command::new(shell[0])
        .args(&shell[1..])
        .args(["-c", script])
        .current_dir(cwd));
    let l = run(Command::new(LWK_VMM)
        .arg("run")
        .args(opts)
        .args(shell)
        .args(["-c", script])
        .current_dir(cwd));
    let what = format!("{shell:?} {label} with {opts:?}");
    if n.stdout == l.stdout && status_of(&n) == status_of(&l) {
        eprintln!("PASS {what} ({})", status_of(&l));
        None
    } else {
        Some(format!(
            "{what}: native {} / lwk-vmm {}\n--- script\n{script}\n--- native\n{}--- lwk-vmm\n{}--- stderr\n{}",
            status_of(&n),
            status_of(&l),
            String::from_utf8_lossy(&n.stdout),
            String::from_utf8_lossy(&l.stdout),
            String::from_utf8_lossy(&l.stderr)
        ))
    }
}

fn check_shell(shell: &[&str]) {
    if !Path::new(shell[0]).exists() {
        eprintln!("==================================================================");
        eprintln!("SKIP: {} is not installed (.ci/run installs it)", shell[0]);
        eprintln!("==================================================================");
        return;
    }
    let cwd = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut configs: Vec<&[&str]> = vec![&["--cpus", "1", "--oversubscribe", "timeslice"]];
    if host_cpus() >= 2 {
        configs.push(&["--cpus", "2", "--oversubscribe", "timeslice"]);
    }
    let mut failures = Vec::new();
    for opts in configs {
        for (label, script) in SCRIPTS {
            failures.extend(compare(shell, label, script, opts, cwd));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn busybox_sh_command_lines_match_native() {
    if !kvm_usable() {
        return;
    }
    check_shell(&["/bin/busybox", "sh"]);
}

#[test]
fn host_dash_command_lines_match_native() {
    if !kvm_usable() {
        return;
    }
    check_shell(&["/bin/sh"]);
}

#[test]
fn process_programs_match_native_on_one_shared_vcpu() {
    if !kvm_usable() {
        return;
    }
    let mut failures = Vec::new();
    for (prog, args) in programs() {
        let name = prog.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("proc_") {
            continue;
        }
        let want = native(prog, args);
        let got = run_on_shared_vcpu(prog, args, &[], None);
        if want.stdout == got.stdout && status_of(&want) == status_of(&got) {
            eprintln!("PASS {name} on one vCPU ({})", status_of(&got));
        } else {
            eprintln!(
                "FAIL {name} on one vCPU: native {} / lwk-vmm {}\n--- native stdout\n{}--- lwk-vmm stdout\n{}--- lwk-vmm stderr\n{}",
                status_of(&want),
                status_of(&got),
                String::from_utf8_lossy(&want.stdout),
                String::from_utf8_lossy(&got.stdout),
                String::from_utf8_lossy(&got.stderr)
            );
            failures.push(name);
        }
    }
    assert!(
        failures.is_empty(),
        "process programs differing from their native run on one vCPU: {failures:?}"
    );
}

/// Memory comes back when processes end (fork, exec, MAP_SHARED shared across fork, read-only
/// memory shared by fork and then partly made private): `tests/process/memory_returned.c` runs
/// each case many times in a 128 MiB job and compares the free memory sysinfo reports before
/// and after (lwk-vmm only: a native run's free memory moves with the rest of the host).
#[test]
fn memory_of_ended_processes_is_returned() {
    if !kvm_usable() {
        return;
    }
    let bin = build_process_test("memory_returned");
    let out = run(Command::new(LWK_VMM).arg("run").args(SMALL_JOB).arg(&bin));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.lines().count() == 4,
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().all(|l| l.ends_with(": returned")), "{text}");
}

/// The page cache: read-only mappings of the same file share frames between processes that
/// mapped it on their own, a written copy, read() into the mapping, MADV_DONTNEED and a changed
/// file never show anything but the file's bytes, and cached pages are given back when a
/// program asks for the memory (`tests/process/page_cache.c`; lwk-vmm only: it measures the
/// job's free memory).
#[test]
fn read_only_file_pages_are_shared_through_the_page_cache() {
    if !kvm_usable() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let bin = build_process_test("page_cache");
    // A file nobody changed for a while: the C library the host's programs use.
    let old = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    let out = run(Command::new(LWK_VMM)
        .args(["run", "-v"])
        .args(SMALL_JOB)
        .arg(&bin)
        .arg(old)
        .arg(dir));
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.lines().count() == 7,
        "{text}{stderr}"
    );
    assert!(text.lines().all(|l| l.ends_with(": ok")), "{text}");
    let (_, _, dropped) = cache_counts(&stderr);
    assert!(dropped >= 1, "the cache was never given back: {stderr}");
}

/// Processes that exec the same program independently map its read-only segments from the
/// page cache: busybox is read once (when the job starts) and each child's exec maps the same
/// frames (the `-v` memory summary counts both).
#[test]
fn exec_of_the_same_program_reads_it_once() {
    if !kvm_usable() {
        return;
    }
    let out = run(Command::new(LWK_VMM).args([
        "run",
        "-v",
        "--cpus",
        "2",
        "--oversubscribe",
        "timeslice",
        "/bin/busybox",
        "sh",
        "-c",
        "/bin/busybox true; /bin/busybox true",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (mapped, read, _) = cache_counts(&stderr);
    assert!(
        read > 0 && mapped >= 2 * read,
        "busybox read {read} KiB into the cache, mapped {mapped} KiB from it: {stderr}"
    );
}

/// Options of the jobs that measure their memory: small, so that a leak or a cache that is not
/// given back shows; two vCPUs shared by the processes.
const SMALL_JOB: [&str; 6] = [
    "--memory",
    "128M",
    "--cpus",
    "2",
    "--oversubscribe",
    "timeslice",
];

/// Builds `tests/process/<name>.c` (static, glibc) and returns the binary's path.
fn build_process_test(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/process/{name}.c"));
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let o = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("gcc runs (installed by .ci/run)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    bin
}

/// KiB mapped from the page cache, KiB read into it, and how often it was dropped, from the
/// `-v` memory summary.
fn cache_counts(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find_map(|l| l.split("page cache: ").nth(1))
        .unwrap_or_else(|| panic!("no page cache figures in the memory summary: {stderr}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .take(3)
        .map(|w| w.parse().unwrap())
        .collect();
    (nums[0], nums[1], nums[2])
}

/// The README's example, exactly as a newcomer types it: no options at all. A shell pipeline
/// forks two children and needs more contexts than the default single vCPU, which the
/// default oversubscription policy (time slicing) gives.
#[test]
fn readme_shell_example_runs_with_no_options() {
    if !kvm_usable() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-example");
    let _ = std::fs::create_dir_all(&dir);
    for name in ["a", "b", "c"] {
        std::fs::write(dir.join(name), name).expect("fixture");
    }
    let failure = compare(&["/bin/sh"], "README example", "ls | wc -l", &[], &dir);
    assert!(failure.is_none(), "{}", failure.unwrap_or_default());
}
