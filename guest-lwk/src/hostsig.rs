//! Signals sent to lwk-vmm (issue #7, the `offload_abi::hostsig` contract).
//!
//! The VMM sets bit `sig - 1` of `HostSignals::pending` (guest-physical `hostsig::GPA`) with an
//! atomic OR and raises `hostsig::VECTOR` on CPU 0. [`on_interrupt`] takes the bits with an
//! atomic swap and acts on them. In ring 0 interrupts are off, so a signal that arrives while
//! the kernel works (or while the VMM serves an offloaded call, which it interrupts with
//! EINTR when the signal is in `HostSignals::interrupting`) is taken as the CPU returns to
//! ring 3, or when it halts.
//!
//! Until full signal delivery exists, [`default_action`] applies Linux's default action:
//! SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 and SIGTERM end the job as killed by that signal;
//! SIGCONT and SIGWINCH are ignored. The VMM's default `interrupting` set
//! (`hostsig::DEFAULT_INTERRUPTING`) matches exactly these defaults, so the LWK leaves it as is.

use crate::arch::{self, VECTOR_HOSTSIG};
use crate::{bridge, exit_job, klog, phys};
use offload_abi::{HostSignals, exit_kind, hostsig};

/// Guest-physical address of `HostSignals::pending`.
const PENDING: u64 = hostsig::GPA + core::mem::offset_of!(HostSignals, pending) as u64;

/// Signals whose default action ends the process: SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2,
/// SIGTERM (bit `sig - 1`). SIGQUIT would also dump core natively; lwk-vmm ends with it
/// without a core file.
const TERMINATE: u64 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 9) | (1 << 11) | (1 << 14);

/// After CPU 0 enabled its local APIC: a signal sent before then set its bit, but the
/// interrupt the VMM raised was not accepted; raise it now (it is taken in ring 3).
pub fn init() {
    if phys::read_u64(PENDING) != 0 {
        arch::send_self(VECTOR_HOSTSIG);
    }
}

/// The host-signal interrupt: acknowledge it and take the pending signals.
pub fn on_interrupt() {
    arch::apic_eoi();
    let mask = phys::swap_u64(PENDING, 0) & hostsig::FORWARDED;
    if mask != 0 {
        default_action(mask);
    }
}

/// Linux's default action for the host signals in `mask` (bit `sig - 1`): the lowest
/// terminating signal ends the job; SIGCONT and SIGWINCH are ignored. Replaced by the full
/// delivery (`crate::signal::post_host`) when the program's dispositions exist.
fn default_action(mask: u64) {
    let fatal = mask & TERMINATE;
    if fatal != 0 {
        let sig = fatal.trailing_zeros() + 1;
        klog!(
            bridge::level::INFO,
            "program killed by host signal {} (sent to lwk-vmm)",
            sig
        );
        exit_job(exit_kind::SIGNALED, sig);
    }
}
