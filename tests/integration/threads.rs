//! Threads on pinned vCPUs: placement on distinct host cores, the oversubscription policy,
//! OpenMP's default team size. (The pthread/OpenMP/futex programs themselves run native vs
//! lwk-vmm in the main integration test, with the `--cpus` their `// lwk-vmm:` line asks.)

mod common;

use common::*;
use std::process::Command;

fn host_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn vcpus_land_on_distinct_host_cores() {
    if !kvm_usable() || host_cpus() < 2 {
        return;
    }
    let (prog, args) = program("threads-glibc");
    let stats = stats_path("threads-placement");
    let o = run(Command::new(LWK_VMM)
        .args(["run", "--cpus", "2", "--stats-json"])
        .arg(&stats)
        .arg(&prog)
        .args(&args));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = read_stats(&stats);
    let vcpus = s["vcpus"].as_array().expect("vcpus");
    assert_eq!(vcpus.len(), 2, "{s}");
    let cores: Vec<u64> = vcpus
        .iter()
        .map(|v| v["host_cpu"].as_u64().expect("pinned"))
        .collect();
    assert_ne!(cores[0], cores[1], "two vCPUs on one core: {s}");
    assert!(
        s["syscalls_by_name"]["clone3"]
            .as_u64()
            .or(s["syscalls_by_name"]["clone"].as_u64())
            .unwrap_or(0)
            >= 1
    );
}

#[test]
fn more_threads_than_vcpus_are_refused_with_eagain() {
    if !kvm_usable() {
        return;
    }
    let (prog, args) = program("threads-musl");
    let o = run(Command::new(LWK_VMM)
        .args(["run", "--cpus", "1", "--oversubscribe", "refuse"])
        .arg(&prog)
        .args(&args));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("pthread_create failed"), "{out}");
    assert_eq!(
        err.matches("more threads than vCPUs are refused").count(),
        1,
        "one warning line: {err}"
    );
    // Asking for more vCPUs than cores is an error before anything runs.
    let o = run(Command::new(LWK_VMM)
        .args(["run", "--cpus", &(host_cpus() + 1).to_string()])
        .arg(&prog));
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("each vCPU needs its own host core"));
}

#[test]
fn threads_beyond_the_vcpus_run_by_default() {
    if !kvm_usable() {
        return;
    }
    // No options: one vCPU, time slicing (the default policy) runs every thread.
    let (prog, args) = program("threads-musl");
    let want = native(&prog, &args);
    let got = run(Command::new(LWK_VMM).arg("run").arg(&prog).args(&args));
    assert_like_native("threads-musl with no options", &got, &want);
}

#[test]
fn openmp_team_size_is_the_vcpu_count() {
    if !kvm_usable() {
        return;
    }
    let (prog, _) = program("openmp-glibc");
    for cpus in 1..=host_cpus().min(2) {
        let o = run(Command::new(LWK_VMM)
            .args(["run", "--cpus", &cpus.to_string()])
            .arg(&prog));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(
            err.contains(&format!("omp default threads={cpus}")),
            "--cpus {cpus}: {err}"
        );
    }
}

#[test]
fn unmapping_while_another_thread_runs_shoots_down_its_tlb() {
    if !kvm_usable() || host_cpus() < 2 {
        return;
    }
    // The reader thread spins in user mode on the other vCPU while the writer replaces the
    // page under it. The output (no stale reads) is compared with native in the main test;
    // this checks that the LWK really interrupted the other vCPU. (Neither KVM on this
    // machine keeps a stale translation long enough for the output alone to show a missing
    // shootdown: kvm_pvm's shadow paging and QEMU's TCG both flush on their own.)
    let (prog, args) = program("mm_tlb_threads-glibc");
    let stats = stats_path("tlb-shootdown");
    let o = run(Command::new(LWK_VMM)
        .args(["run", "--cpus", "2", "--stats-json"])
        .arg(&stats)
        .arg(&prog)
        .args(&args));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("8 rounds, 0 stale"), "{out}");
    let s = read_stats(&stats);
    let n = s["tlb_shootdowns"].as_u64().expect("tlb_shootdowns");
    assert!(n >= 1, "no shootdown interrupted the reader's vCPU: {s}");
}

#[test]
fn threads_share_a_vcpu_with_timeslice() {
    if !kvm_usable() {
        return;
    }
    // Four threads on one vCPU: they meet at spin barriers (no syscall), so only preemption
    // lets the program finish; each keeps its own rounding mode and SSE accumulators. The
    // output itself is compared with native in the main test.
    let (prog, args) = program("sched_timeslice-musl");
    let stats = stats_path("timeslice");
    let o = run_on_shared_vcpu(&prog, &args, &["--timeslice-ms", "2"], Some(&stats));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        out.matches("rounding mode kept, sums identical").count(),
        4,
        "{out}"
    );
    let s = read_stats(&stats);
    let switches = s["context_switches"].as_u64().expect("context_switches");
    assert!(switches >= 4, "the threads never shared the vCPU: {s}");

    // One thread per vCPU under the same policy: no slice timer, no switch (no tick).
    let (prog, args) = program("timer_none-glibc");
    let stats = stats_path("timeslice-alone");
    let o = run_on_shared_vcpu(&prog, &args, &[], Some(&stats));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = read_stats(&stats);
    assert_eq!(s["guest_timer_interrupts"].as_u64(), Some(0), "{s}");
    assert_eq!(s["context_switches"].as_u64(), Some(0), "{s}");
}

#[test]
fn bad_oversubscription_options_are_clear_errors() {
    let check = |args: &[&str], want: &str| {
        let o = run(Command::new(LWK_VMM).arg("run").args(args).arg("/bin/true"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    };
    check(&["--oversubscribe", "sometimes"], "sometimes");
    check(
        &["--timeslice-ms", "0"],
        "timeslice_ms: 0 is not between 1 and 1000",
    );
    let dir = std::env::temp_dir().join(format!("lwk-oversub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "cpus = 1\noversubscribe = \"never\"\n").expect("config");
    check(
        &["--config", cfg.to_str().expect("utf-8 path")],
        "bad.toml:2: oversubscribe: 'never' is not one of refuse, timeslice",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn blocking_host_calls_do_not_stop_threads_sharing_a_vcpu() {
    if !kvm_usable() {
        return;
    }
    // One thread blocks on the host (read on an empty pipe, accept) while the thread that
    // unblocks it shares its only vCPU: the call must go to a host worker (an asynchronous
    // offload) and the vCPU run the other thread meanwhile, else the job deadlocks.
    for name in ["threads_pipe-musl", "threads_accept-glibc"] {
        let (prog, args) = program(name);
        let want = native(&prog, &args);
        let stats = stats_path(&format!("shared-{name}"));
        let got = run_on_shared_vcpu(&prog, &args, &[], Some(&stats));
        assert_like_native(name, &got, &want);
        let s = read_stats(&stats);
        let submitted = s["async_offloads"]["submitted"].as_u64().unwrap_or(0);
        assert!(submitted >= 1, "{name}: no asynchronous offload: {s}");
        assert!(
            s["context_switches"].as_u64().unwrap_or(0) >= 1,
            "{name}: the threads never switched: {s}"
        );
    }
}
