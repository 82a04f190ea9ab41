//! Exceptions and the two arrivals of a syscall (see `arch` for the entry stubs).
//!
//! A page fault in ring 3 that is not a syscall arrival goes to the memory manager (demand
//! paging, stack growth, the 1 GiB-page fallback); any other fault, and a page fault it cannot
//! serve, ends the program with the signal Linux would send (full signal delivery to handlers
//! comes with issue #7). A fault in ring 0 is a kernel
//! bug: it is reported with the registers and ends the job with a distinct status.

use crate::arch::{
    self, TrapFrame, VECTOR_HOSTSIG, VECTOR_IPI, VECTOR_SPURIOUS, VECTOR_SYSCALL, VECTOR_TIMER,
};
use crate::{bridge, exit_job, kernel, klog, syscall};
use offload_abi::exit_kind;

/// #PF error code of a syscall on kvm_pvm: present | user | instruction fetch.
const PF_SYSCALL_ARRIVAL: u64 = 0x15;

/// Called by `trap_common` with the saved state.
pub extern "C" fn dispatch_entry(frame: &mut TrapFrame) {
    if frame.cs & 3 == 3 {
        crate::tlb::from_user();
    }
    dispatch(frame);
    if frame.cs & 3 == 3 {
        crate::tlb::to_user();
    }
}

fn dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        // A wake-up IPI or the deadline timer: whoever halted re-checks its condition.
        VECTOR_IPI | VECTOR_TIMER => {
            arch::apic_eoi();
            return;
        }
        VECTOR_SPURIOUS => return,
        // Signals sent to lwk-vmm.
        VECTOR_HOSTSIG => {
            crate::hostsig::on_interrupt();
            return;
        }
        _ => {}
    }
    if frame.vector == VECTOR_SYSCALL {
        let mut k = kernel();
        k.stats.entry_native += 1;
        syscall::handle(k, frame);
        return;
    }
    if frame.cs & 3 != 3 {
        kernel_fault(frame);
    }
    let mut k = kernel();
    if frame.vector == 14 && frame.error == PF_SYSCALL_ARRIVAL && frame.rip == k.lstar {
        // kvm_pvm: `syscall` jumped to LSTAR in ring 3. RCX holds the return address and R11
        // the flags, exactly as for the ring-0 arrival.
        k.stats.entry_fault += 1;
        frame.rip = frame.rcx;
        frame.rflags = frame.r11;
        syscall::handle(k, frame);
        return;
    }
    let cr2 = crate::arch::read_cr2();
    let (signal, name) = if frame.vector == 14 {
        // A page fault of the program: demand paging, stack growth, or a real SIGSEGV.
        k.stats.page_faults += 1;
        match crate::vm::page_fault(&mut k, cr2, frame.error) {
            None => return,
            Some(killed) => killed,
        }
    } else {
        match frame.vector {
            0 | 16 | 19 => (8, "SIGFPE"),
            1 | 3 => (5, "SIGTRAP"),
            6 => (4, "SIGILL"),
            11 | 12 | 17 => (7, "SIGBUS"),
            _ => (11, "SIGSEGV"),
        }
    };
    drop(k);
    klog!(
        bridge::level::INFO,
        "program killed by {}: exception {} error {:#x} at rip {:#x} (fault address {:#x}, rsp {:#x})",
        name,
        frame.vector,
        frame.error,
        frame.rip,
        cr2,
        frame.rsp
    );
    exit_job(exit_kind::SIGNALED, signal)
}

fn kernel_fault(frame: &TrapFrame) -> ! {
    let cr2 = crate::arch::read_cr2();
    klog!(
        bridge::level::ERROR,
        "LWK fault: exception {} error {:#x} rip {:#x} cr2 {:#x} rsp {:#x} rax {:#x} rdi {:#x} rsi {:#x}",
        frame.vector,
        frame.error,
        frame.rip,
        cr2,
        frame.rsp,
        frame.rax,
        frame.rdi,
        frame.rsi
    );
    exit_job(exit_kind::KERNEL_PANIC, 0)
}
