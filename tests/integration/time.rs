//! Time in the LWK: the vDSO serves clock_gettime without a trap, and the guest's
//! CLOCK_REALTIME (vDSO and syscall) agrees with the host's. (The clock semantics themselves are
//! compared native vs lwk-vmm by the `clocks` and `vdso` programs in the main integration test.)

mod common;

use common::*;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

#[test]
fn vdso_serves_clock_gettime_without_traps() {
    if !kvm_usable() {
        return;
    }
    for libc in ["glibc", "musl"] {
        let name = format!("vdso-{libc}");
        let (prog, _) = program(&name);
        let stats = stats_path(&format!("{name}-10000"));
        let o = run(Command::new(LWK_VMM)
            .args(["run", "--stats-json"])
            .arg(&stats)
            .arg(&prog)
            .arg("10000"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "10000 calls monotonic: ok\n"
        );
        let s = read_stats(&stats);
        let traps = s["syscalls_by_name"]["clock_gettime"].as_u64().unwrap_or(0);
        // glibc and musl make no clock_gettime syscall of their own at startup; allow a few.
        assert!(
            traps <= 5,
            "{name}: {traps} clock_gettime syscalls for 10000 calls: {s}"
        );
    }
}

fn host_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("host clock after 1970")
        .as_nanos() as i128
}

#[test]
fn guest_realtime_agrees_with_the_host() {
    if !kvm_usable() {
        return;
    }
    // Both readings must fall between host readings taken before the job starts and after it
    // ends, with a few ms of tolerance for the boot-time calibration.
    const SLACK_NS: i128 = 5_000_000;
    for libc in ["glibc", "musl"] {
        let (prog, _) = program(&format!("vdso-{libc}"));
        let before = host_ns();
        let o = run(Command::new(LWK_VMM).arg("run").arg(&prog).arg("realtime"));
        let after = host_ns();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout);
        for field in out.split_whitespace() {
            let guest: i128 = field.parse().expect("a number of ns");
            assert!(
                guest >= before - SLACK_NS && guest <= after + SLACK_NS,
                "{libc}: guest realtime {guest} outside host [{before}, {after}] (+-{SLACK_NS} ns)"
            );
        }
    }
}
