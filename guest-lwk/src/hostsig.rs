//! Signals sent to lwk-vmm (issue #7, the `offload_abi::hostsig` contract).
//!
//! The VMM sets bit `sig - 1` of `HostSignals::pending` (guest-physical `hostsig::GPA`) with an
//! atomic OR and raises `hostsig::VECTOR` on CPU 0. [`on_interrupt`] takes the bits with an
//! atomic swap and acts on them. In ring 0 interrupts are off, so a signal that arrives while
//! the kernel works (or while the VMM serves an offloaded call, which it interrupts with
//! EINTR when the signal is in `HostSignals::interrupting`) is taken as the CPU returns to
//! ring 3, or when it halts.
//!
//! The signals become process-directed signals of the program (`signal::post_host`: handlers,
//! masks and default actions as for `kill`); the signal code keeps `HostSignals::interrupting`
//! current as dispositions and masks change.

use crate::arch::{self, VECTOR_HOSTSIG};
use crate::phys;
use offload_abi::{HostSignals, hostsig};

/// Guest-physical address of `HostSignals::pending`.
const PENDING: u64 = hostsig::GPA + core::mem::offset_of!(HostSignals, pending) as u64;

/// After CPU 0 enabled its local APIC: a signal sent before then set its bit, but the
/// interrupt the VMM raised was not accepted; raise it now (it is taken in ring 3).
pub fn init() {
    if phys::read_u64(PENDING) != 0 {
        arch::send_self(VECTOR_HOSTSIG);
    }
}

/// The pending host signals, taken (swapped to none).
fn take() -> u64 {
    phys::swap_u64(PENDING, 0) & hostsig::FORWARDED
}

/// Takes the pending host signals now and posts them (an offloaded call came back with EINTR
/// because of one, before its interrupt could be taken; the interrupt then finds nothing).
pub fn poll(k: &mut crate::Kernel) {
    let mask = take();
    if mask != 0 {
        crate::signal::post_host(k, mask);
    }
}

/// The host-signal interrupt: acknowledge it and take the pending signals.
pub fn on_interrupt() {
    arch::apic_eoi();
    let mask = take();
    if mask != 0 {
        // Interrupts are taken only in ring 3 or in a halt with the kernel lock released (ring
        // 0 otherwise runs with IF clear), and never before boot has set up the kernel state
        // (IF is first set when vCPU 0 waits for the APs or enters the program): taking the
        // lock here cannot deadlock.
        crate::signal::post_host(&mut crate::kernel(), mask);
    }
}
