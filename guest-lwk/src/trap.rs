//! Exceptions and the two arrivals of a syscall (see `arch` for the entry stubs).
//!
//! A page fault in ring 3 that is not a syscall arrival goes to the memory manager (demand
//! paging, stack growth, the 1 GiB-page fallback); any other fault, and a page fault it cannot
//! serve, becomes the signal Linux would send (`signal::force_fault`: delivered to a handler,
//! or the end of the program if it has none or blocks it). A fault in ring 0 is a kernel
//! bug: it is reported with the registers and ends the job with a distinct status.

use crate::arch::{
    self, TrapFrame, VECTOR_ASYNC, VECTOR_HOSTSIG, VECTOR_IPI, VECTOR_SPURIOUS, VECTOR_SYSCALL,
    VECTOR_TIMER,
};
use crate::signal::{Info, code, sig};
use crate::{bridge, exit_job, kernel, klog, syscall};
use offload_abi::exit_kind;

/// #PF error code of a syscall on kvm_pvm: present | user | instruction fetch.
const PF_SYSCALL_ARRIVAL: u64 = 0x15;

/// Called by `trap_common` with the saved state.
pub extern "C" fn dispatch_entry(frame: &mut TrapFrame) {
    if frame.cs & 3 == 3 {
        crate::time::enter_kernel();
        crate::tlb::from_user();
    }
    dispatch(frame);
    if frame.cs & 3 == 3 {
        crate::sched::preempt();
        crate::signal::to_user(frame);
        crate::sched::slice_to_user();
        crate::tlb::to_user();
        crate::time::exit_kernel();
    }
}

fn dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        // A wake-up IPI or the deadline timer: whoever halted re-checks its condition.
        VECTOR_IPI => {
            arch::apic_eoi();
            return;
        }
        // The deadline timer: a wait's timeout (whoever halted re-checks) and/or due timers.
        VECTOR_TIMER => {
            arch::apic_eoi();
            crate::timer::expire();
            crate::sched::tick();
            return;
        }
        VECTOR_SPURIOUS => return,
        // Asynchronous offloads of this vCPU's threads completed.
        VECTOR_ASYNC => {
            arch::apic_eoi();
            crate::sched::async_completed();
            return;
        }
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
    let (s, code, addr) = if frame.vector == 14 {
        // A page fault of the program: demand paging, stack growth, or a real SIGSEGV.
        k.stats.page_faults += 1;
        match crate::vm::page_fault(&mut k, cr2, frame.error) {
            None => return,
            Some((sig::SIGSEGV, _)) => {
                // ACCERR: present but not allowed, or inside an area whose protection
                // forbids the access; MAPERR: nothing mapped there.
                let accerr =
                    frame.error & 1 != 0 || k.mms[crate::process::cur_mm()].area(cr2).is_some();
                let c = if accerr {
                    code::SEGV_ACCERR
                } else {
                    code::SEGV_MAPERR
                };
                (sig::SIGSEGV, c, cr2)
            }
            Some((s, name)) => {
                drop(k);
                klog!(
                    bridge::level::INFO,
                    "program killed by {}: fault address {:#x} at rip {:#x}",
                    name,
                    cr2,
                    frame.rip
                );
                let mut k = kernel();
                crate::signal::kill_fatally(&mut k, crate::arch::current_slot(), s);
                return;
            }
        }
    } else {
        // As Linux's traps.c: the signal, its si_code and si_addr for each exception.
        match frame.vector {
            0 => (sig::SIGFPE, code::FPE_INTDIV, frame.rip),
            16 | 19 => (sig::SIGFPE, code::FPE_FLTINV, frame.rip),
            1 | 3 => (sig::SIGTRAP, code::SI_KERNEL, 0),
            6 => (sig::SIGILL, code::ILL_ILLOPN, frame.rip),
            17 => (sig::SIGBUS, code::BUS_ADRALN, 0),
            11 | 12 => (sig::SIGBUS, code::SI_KERNEL, 0),
            _ => (sig::SIGSEGV, code::SI_KERNEL, 0),
        }
    };
    let info = Info {
        code,
        _pad: 0,
        a: addr,
        b: 0,
    };
    crate::signal::force_fault(&mut k, frame, s, info, cr2);
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
