//! Signals and timers beyond stdout comparison (the signal and timer programs themselves run
//! native vs lwk-vmm in the main integration test): the LWK has no timer tick, so a compute
//! loop takes no timer interrupt, while an interval timer does take them.

mod common;

use common::*;
use std::process::Command;

fn timer_interrupts(name: &str, stats_name: &str) -> u64 {
    let (prog, args) = program(name);
    let stats = stats_path(stats_name);
    let o = run(Command::new(LWK_VMM)
        .args(["run", "--stats-json"])
        .arg(&stats)
        .arg(&prog)
        .args(&args));
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let s = read_stats(&stats);
    s["guest_timer_interrupts"]
        .as_u64()
        .unwrap_or_else(|| panic!("no guest_timer_interrupts in {s}"))
}

#[test]
fn a_compute_loop_takes_no_timer_interrupt() {
    if !kvm_usable() {
        return;
    }
    assert_eq!(timer_interrupts("timer_none-glibc", "timer-none"), 0);
}

#[test]
fn an_interval_timer_takes_timer_interrupts() {
    if !kvm_usable() {
        return;
    }
    let n = timer_interrupts("timer_alarm-glibc", "timer-alarm");
    assert!(n > 0, "setitimer ran without a timer interrupt");
}

#[test]
fn own_signals_interrupt_offloaded_calls_on_a_shared_vcpu() {
    if !kvm_usable() {
        return;
    }
    // The main test runs this program with --cpus 2 (the blocked reader's synchronous call is
    // interrupted from the other vCPU); here both threads share one vCPU, so every blocked
    // call is asynchronous and the interruption goes to its host worker.
    let (prog, args) = program("sig_offload_interrupt-musl");
    let want = native(&prog, &args);
    let got = run_on_shared_vcpu(&prog, &args, &[], None);
    assert_like_native("sig_offload_interrupt-musl", &got, &want);
}
