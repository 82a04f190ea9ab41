//! Memory tier (issue #4): large pages on hugepage-backed guest RAM, pre-faulting versus demand
//! paging as seen in `guest_page_faults`, ENOMEM instead of crashes, and every mm_* program
//! matching its native run under demand paging too (the default policy is covered by the
//! `integration` target, which runs every program).
//!
//! The hugetlb test reserves 2 MiB pages through /proc/sys/vm/nr_hugepages (as root) and puts
//! the previous value back when it ends, also when it fails. Tests here run one at a time:
//! they share the machine's hugepages.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `lwk-vmm run OPTIONS PROGRAM ARGS` with statistics; returns the output and the stats.
fn lwk_with(
    options: &[&str],
    prog: &Path,
    args: &[&str],
    name: &str,
) -> (Output, serde_json::Value) {
    let stats = stats_path(name);
    let _ = std::fs::remove_file(&stats);
    let mut cmd = Command::new(LWK_VMM);
    // The manifest's own options (`// lwk-vmm: --cpus 2`) first; the test's come after.
    cmd.arg("run")
        .args(lwk_options(prog))
        .args(options)
        .arg("--stats-json")
        .arg(&stats)
        .arg(prog)
        .args(args);
    let out = run(&mut cmd);
    let s = if stats.exists() {
        read_stats(&stats)
    } else {
        serde_json::Value::Null
    };
    (out, s)
}

fn faults(s: &serde_json::Value) -> u64 {
    s["guest_page_faults"]
        .as_u64()
        .expect("guest_page_faults in the stats")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temporary reservation of 2 MiB hugepages; the previous count comes back on drop.
struct Hugepages {
    previous: String,
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
const FREE_2M: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";

impl Hugepages {
    /// Adds `count` free 2 MiB pages to what is reserved now; `None` if the host will not.
    fn reserve(count: u64) -> Option<Hugepages> {
        let previous = std::fs::read_to_string(NR_HUGEPAGES).ok()?;
        let now: u64 = previous.trim().parse().ok()?;
        let guard = Hugepages {
            previous: previous.trim().to_string(),
        };
        std::fs::write(NR_HUGEPAGES, (now + count).to_string()).ok()?;
        let free: u64 = std::fs::read_to_string(FREE_2M).ok()?.trim().parse().ok()?;
        (free >= count).then_some(guard)
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(NR_HUGEPAGES, &self.previous) {
            eprintln!("could not restore {NR_HUGEPAGES} to {}: {e}", self.previous);
        }
    }
}

#[test]
fn hugetlb_backed_768_mib_take_almost_no_page_faults() {
    if !kvm_usable() {
        return;
    }
    let _one = serial();
    let (prog, _) = program("mm_touch-glibc");
    let native = native(&prog, &["768".into()]);
    // 1 GiB of guest RAM: 512 pages, plus slack for other jobs on the machine.
    let Some(_pages) = Hugepages::reserve(512 + 16) else {
        eprintln!("==================================================================");
        eprintln!("SKIP: cannot reserve 2 MiB hugepages (needs root); hugetlb test did NOT run");
        eprintln!("==================================================================");
        return;
    };
    let (out, s) = lwk_with(
        &["--memory", "1G", "--hugepages", "2M"],
        &prog,
        &["768"],
        "touch-768-hugetlb",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, native.stdout, "{}", text(&out.stderr));
    assert_eq!(s["memory_backing"], "hugetlb-2M", "{s}");
    assert!(
        faults(&s) < 64,
        "{} page faults touching 768 MiB: {s}",
        faults(&s)
    );
}

#[test]
fn demand_paging_faults_are_counted_and_prefaulting_avoids_them() {
    if !kvm_usable() {
        return;
    }
    let _one = serial();
    let (prog, _) = program("mm_touch-glibc");
    let native = native(&prog, &["64".into()]);
    let (demand, ds) = lwk_with(&["--no-prefault", "-v"], &prog, &["64"], "touch-64-demand");
    assert!(demand.status.success(), "{}", text(&demand.stderr));
    assert_eq!(demand.stdout, native.stdout);
    // 64 MiB in 2 MiB blocks: at least 32 first touches.
    assert!(
        faults(&ds) >= 32,
        "demand paging counted {} faults: {ds}",
        faults(&ds)
    );
    assert!(
        text(&demand.stderr).contains("faults served"),
        "-v prints the memory summary: {}",
        text(&demand.stderr)
    );
    let (pre, ps) = lwk_with(&[], &prog, &["64"], "touch-64-prefault");
    assert!(pre.status.success(), "{}", text(&pre.stderr));
    assert_eq!(pre.stdout, native.stdout);
    assert!(
        faults(&ps) <= 2,
        "pre-faulting still took {} faults: {ps}",
        faults(&ps)
    );
}

#[test]
fn asking_for_more_than_the_guest_has_is_enomem() {
    if !kvm_usable() {
        return;
    }
    let _one = serial();
    let (prog, _) = program("mm_touch-glibc");
    for policy in [&[][..], &["--no-prefault"][..]] {
        let opts: Vec<&str> = [&["--memory", "128M"][..], policy].concat();
        let (out, _) = lwk_with(&opts, &prog, &["512"], "touch-512-in-128");
        assert!(out.status.success(), "{policy:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "512 MiB: ENOMEM\n", "{policy:?}");
    }
    // Exhausting memory step by step: ENOMEM from malloc when pre-faulting ...
    let (out, _) = lwk_with(
        &["--memory", "128M"],
        &prog,
        &["1", "exhaust"],
        "exhaust-prefault",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: u64 = text(&out.stdout)
        .trim()
        .strip_prefix("exhausted after ")
        .and_then(|s| s.strip_suffix(" MiB"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output {}", text(&out.stdout)));
    assert!((64..=112).contains(&got), "a 128 MiB guest gave {got} MiB");
    // ... and, with demand paging, the out-of-memory kill Linux would give (never a crash).
    let (out, _) = lwk_with(
        &["--memory", "128M", "--no-prefault", "-v"],
        &prog,
        &["1", "exhaust"],
        "exhaust-demand",
    );
    assert_eq!(status_of(&out), "signal 9", "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("out of guest memory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_heap_grows_into_2mib_pages() {
    if !kvm_usable() {
        return;
    }
    let _one = serial();
    // 100 brk steps of 132 KiB (as malloc grows the heap): the heap's 2 MiB blocks become
    // 2 MiB pages as the break passes them (the -v memory summary counts them).
    let (prog, args) = program("mm_brk-glibc");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, _) = lwk_with(&["-v"], &prog, &args, "brk-promote");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let promoted: u64 = stderr
        .split(" heap blocks promoted")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no memory summary: {stderr}"));
    assert!(
        promoted >= 5,
        "only {promoted} heap blocks became 2 MiB pages: {stderr}"
    );
}

#[test]
fn reused_memory_reads_zero() {
    if !kvm_usable() {
        return;
    }
    let _one = serial();
    // 6 x 64 MiB mapped, 6 x 32 MiB through calloc: three times what a 256 MiB guest has, so
    // freed frames are handed out again (and zeroed by the host first).
    let (prog, _) = program("mm_reuse-glibc");
    let args = ["6", "64"];
    let native = native(&prog, &args.map(String::from));
    for policy in [&[][..], &["--no-prefault"][..]] {
        let opts: Vec<&str> = [&["--memory", "256M", "-v"][..], policy].concat();
        let (out, _) = lwk_with(&opts, &prog, &args, "reuse-256");
        assert!(out.status.success(), "{policy:?}: {}", text(&out.stderr));
        assert_eq!(
            out.stdout,
            native.stdout,
            "{policy:?}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(
            !stderr.contains("host zeroing: 0 requests"),
            "{policy:?}: no frame was reused, the test proves nothing: {stderr}"
        );
    }
}

#[test]
fn giga_pages_fall_back_when_the_cpu_refuses_them() {
    if !kvm_usable() {
        return;
    }
    let _one = serial();
    // 3 GiB of guest RAM holds a free, 1 GiB-aligned GiB; a 1.5 GiB mapping gets a 1 GiB page
    // where the CPU takes it and 2 MiB pages after a reserved-bit fault where it does not.
    let (prog, _) = program("mm_touch-glibc");
    let native = native(&prog, &["1536".into()]);
    let (out, s) = lwk_with(
        &["--memory", "3G", "--hugepages", "thp"],
        &prog,
        &["1536"],
        "touch-1536",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, native.stdout);
    assert!(faults(&s) < 64, "{s}");
}

#[test]
fn mm_programs_match_native_with_demand_paging() {
    if !kvm_usable() {
        return;
    }
    let _one = serial();
    let mut failures = Vec::new();
    for (prog, args) in programs() {
        let name = prog.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("mm_") {
            continue;
        }
        let n = native(prog, args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (l, _) = lwk_with(&["--no-prefault"], prog, &args, &format!("{name}-demand"));
        if n.stdout == l.stdout && status_of(&n) == status_of(&l) {
            eprintln!("PASS {name} (demand paging, {})", status_of(&l));
        } else {
            eprintln!(
                "FAIL {name} (demand paging): native {} / lwk-vmm {}\n--- native\n{}--- lwk-vmm\n{}--- stderr\n{}",
                status_of(&n),
                status_of(&l),
                text(&n.stdout),
                text(&l.stdout),
                text(&l.stderr)
            );
            failures.push(name);
        }
    }
    assert!(
        failures.is_empty(),
        "differ from native with demand paging: {failures:?}"
    );
}
