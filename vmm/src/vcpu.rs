//! vCPU state and the exit loop.
//!
//! The vCPU starts directly in 64-bit mode at the LWK's entry. Exits are decoded into the
//! neutral [`Exit`] enum and handled by [`handle_exit`] against the device bus, so the loop
//! has no port numbers and can be tested with synthetic exits.

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_fpu, kvm_regs, kvm_segment, kvm_xcrs};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd};
use lwk_devices::{PortAction, PortBus};
use offload_abi::{layout, port};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use vm_memory::GuestMemoryMmap;

/// Errors setting up or running a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// A KVM ioctl failed.
    #[error("KVM refused {what}")]
    Kvm {
        /// Which operation.
        what: &'static str,
        /// Cause.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The guest did something that ends the job abnormally.
    #[error("the LWK stopped unexpectedly: {0}")]
    GuestFailure(String),
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VcpuError {
    move |source| VcpuError::Kvm { what, source }
}

/// CPU features the boot needs to know.
pub struct CpuFeatures {
    /// CPUID.1:EDX (AT_HWCAP).
    pub hwcap: u64,
    /// XCR0 to program (0: no XSAVE).
    pub xcr0: u64,
}

/// Sets CPUID (KVM's supported set) and returns what boot needs from it.
pub fn setup_cpuid(kvm: &Kvm, vcpu: &VcpuFd, id: u32) -> Result<CpuFeatures, VcpuError> {
    let mut cpuid: CpuId = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("reading supported CPUID"))?;
    // KVM emulates the TSC-deadline timer but leaves advertising it to userspace; the LWK
    // times futex waits and sleeps with it.
    let tsc_deadline = kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
    let mut hwcap = 0;
    let mut xsave = false;
    let mut xcr0_supported = 0;
    for e in cpuid.as_mut_slice() {
        match (e.function, e.index) {
            (1, _) => {
                // Initial APIC id in EBX[31:24].
                e.ebx = (e.ebx & 0x00ff_ffff) | (id << 24);
                if tsc_deadline {
                    e.ecx |= 1 << 24;
                }
                hwcap = u64::from(e.edx);
                xsave = e.ecx & (1 << 26) != 0;
                // The OS enables XSAVE (CR4.OSXSAVE) when the CPU has it.
                if xsave {
                    e.ecx |= 1 << 27;
                }
            }
            (0xb, _) | (0x1f, _) => e.edx = id,
            (0xd, 0) => xcr0_supported = u64::from(e.eax) | (u64::from(e.edx) << 32),
            _ => {}
        }
    }
    vcpu.set_cpuid2(&cpuid).map_err(kvm_err("setting CPUID"))?;
    // x87 | SSE | AVX | AVX-512 state, as far as supported.
    let xcr0 = if xsave { xcr0_supported & 0xe7 } else { 0 };
    Ok(CpuFeatures { hwcap, xcr0 })
}

fn code_segment() -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: 0x10,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

fn data_segment() -> kvm_segment {
    kvm_segment {
        selector: 0x18,
        type_: 0x3,
        db: 1,
        l: 0,
        ..code_segment()
    }
}

/// Puts the vCPU in 64-bit mode at `entry` with paging on (CR3 = `cr3`), RSI pointing to the
/// boot info and RDX = its id (the LWK picks its per-CPU stack from it). vCPUs other than 0
/// are made runnable directly (no INIT/SIPI: they start in long mode like vCPU 0).
pub fn setup_registers(
    vcpu: &VcpuFd,
    id: u32,
    entry: u64,
    cr3: u64,
    features: &CpuFeatures,
) -> Result<(), VcpuError> {
    let mut sregs = vcpu
        .get_sregs()
        .map_err(kvm_err("reading special registers"))?;
    sregs.cs = code_segment();
    let data = data_segment();
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment {
        selector: 0,
        type_: 0xb,
        s: 0,
        l: 0,
        g: 0,
        db: 0,
        limit: 0x67,
        ..code_segment()
    };
    // The LWK loads its own GDT/IDT before it reloads a segment or can take an exception.
    sregs.gdt.base = 0;
    sregs.gdt.limit = 0;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    // PE | MP | ET | NE | WP | AM | PG, as Linux runs.
    sregs.cr0 = 0x8005_0033;
    sregs.cr3 = cr3;
    // PAE | OSFXSR | OSXMMEXCPT (+ OSXSAVE): user code may use SSE/AVX; the LWK never does.
    sregs.cr4 = 0x20 | 0x200 | 0x400 | if features.xcr0 != 0 { 0x4_0000 } else { 0 };
    // LME | LMA | NXE; the LWK sets SCE itself.
    sregs.efer = 0x100 | 0x400 | 0x800;
    vcpu.set_sregs(&sregs)
        .map_err(kvm_err("setting special registers"))?;

    if features.xcr0 != 0 {
        let mut xcrs = kvm_xcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        xcrs.xcrs[0].xcr = 0;
        xcrs.xcrs[0].value = features.xcr0;
        vcpu.set_xcrs(&xcrs).map_err(kvm_err("setting XCR0"))?;
    }
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu)
        .map_err(kvm_err("setting the FPU state"))?;
    let regs = kvm_regs {
        rip: entry,
        rsi: layout::BOOT_INFO_GPA,
        rdx: u64::from(id),
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm_err("setting registers"))?;
    if id != 0 {
        let runnable = kvm_bindings::kvm_mp_state {
            mp_state: kvm_bindings::KVM_MP_STATE_RUNNABLE,
        };
        vcpu.set_mp_state(runnable)
            .map_err(kvm_err("making the vCPU runnable"))?;
    }
    Ok(())
}

/// A vCPU exit, decoded from KVM's and copied out (KVM's borrows the vCPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Port write.
    PortOut {
        /// Port.
        port: u16,
        /// Bytes written.
        data: Vec<u8>,
    },
    /// Port read of `len` bytes.
    PortIn {
        /// Port.
        port: u16,
        /// Access size.
        len: usize,
    },
    /// Access to guest-physical memory with no RAM or device.
    Mmio {
        /// Address.
        addr: u64,
        /// Write or read.
        write: bool,
    },
    /// `hlt` (the LWK never halts while the job runs).
    Halt,
    /// Triple fault.
    Shutdown,
    /// KVM could not emulate an instruction.
    InternalError,
    /// VM entry failed.
    FailEntry(u64),
    /// A signal interrupted KVM_RUN.
    Interrupted,
    /// Anything else.
    Other(&'static str),
}

impl Exit {
    /// The reason name used in `vm_exits_by_reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Exit::PortOut { .. } => "io_out",
            Exit::PortIn { .. } => "io_in",
            Exit::Mmio { .. } => "mmio",
            Exit::Halt => "hlt",
            Exit::Shutdown => "shutdown",
            Exit::InternalError => "internal_error",
            Exit::FailEntry(_) => "fail_entry",
            Exit::Interrupted => "interrupted",
            Exit::Other(name) => name,
        }
    }
}

/// What the loop does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Run the vCPU again.
    Continue,
    /// The guest ended the job through the exit port.
    Done,
    /// The job ends abnormally.
    Fail(String),
}

/// Handles one exit of vCPU `id` against the device bus. Port reads return through `in_data`.
/// The bus is shared by all vCPU threads without a lock (its devices take `&self`), so an exit
/// that blocks (an offloaded host call) holds up only its own vCPU.
pub fn handle_exit(exit: &Exit, bus: &PortBus, id: u32, in_data: &mut [u8]) -> Flow {
    match exit {
        Exit::PortOut { port, data } => match bus.write(id, *port, data) {
            Some(PortAction::Continue) => Flow::Continue,
            Some(PortAction::Stop) => Flow::Done,
            None => Flow::Fail(format!("write to unknown I/O port {port:#x}")),
        },
        Exit::PortIn { port, .. } => match bus.read(id, *port, in_data) {
            Some(PortAction::Continue) => Flow::Continue,
            Some(PortAction::Stop) => Flow::Done,
            None => Flow::Fail(format!("read from unknown I/O port {port:#x}")),
        },
        Exit::Mmio { addr, write } => Flow::Fail(format!(
            "{} of guest-physical address {addr:#x}, which is neither RAM nor a device",
            if *write { "write" } else { "read" }
        )),
        Exit::Halt => Flow::Fail("the LWK halted the vCPU".into()),
        Exit::Shutdown => {
            Flow::Fail("triple fault (the LWK crashed while handling a fault)".into())
        }
        Exit::InternalError => Flow::Fail(
            "KVM could not emulate a guest instruction (on nested/software KVM such as kvm_pvm, \
             ring-0 SSE/XSAVE instructions are not emulated)"
                .into(),
        ),
        Exit::FailEntry(reason) => {
            Flow::Fail(format!("VM entry failed (hardware reason {reason:#x})"))
        }
        Exit::Interrupted => Flow::Continue,
        Exit::Other(name) => Flow::Fail(format!("unexpected vCPU exit: {name}")),
    }
}

/// Counts exits by reason.
#[derive(Debug, Default)]
pub struct ExitCounts {
    /// Reason -> count.
    pub by_reason: BTreeMap<&'static str, u64>,
}

impl ExitCounts {
    /// Total exits.
    pub fn total(&self) -> u64 {
        self.by_reason.values().sum()
    }
}

/// IA32_TSC_DEADLINE.
const MSR_TSC_DEADLINE: u32 = 0x6e0;

/// Disarms the vCPU's TSC-deadline timer once it runs no more (the job ended while the LWK had
/// a deadline armed): KVM cancels the timer now, in this thread, instead of while it destroys
/// the VM. Best effort: an error only means the timer stays until then.
pub fn disarm_timer(fd: &VcpuFd) {
    let entry = kvm_bindings::kvm_msr_entry {
        index: MSR_TSC_DEADLINE,
        data: 0,
        ..Default::default()
    };
    if let Ok(msrs) = kvm_bindings::Msrs::from_entries(&[entry]) {
        let _ = fd.set_msrs(&msrs);
    }
}

/// Runs the vCPU until the guest ends the job, fails, or `stop` is set (another vCPU ended
/// the job; the caller interrupts KVM_RUN with a signal so that `stop` is seen).
pub fn run(
    vcpu: &mut VcpuFd,
    id: u32,
    mem: &GuestMemoryMmap,
    bus: &PortBus,
    counts: &mut ExitCounts,
    stop: &AtomicBool,
) -> Result<(), VcpuError> {
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let exit = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => Exit::PortOut {
                port,
                data: data.to_vec(),
            },
            Ok(VcpuExit::IoIn(port, data)) => {
                let len = data.len();
                let mut buf = [0u8; 8];
                let slot = buf.get_mut(..len).unwrap_or_default();
                let flow = handle_exit(&Exit::PortIn { port, len }, bus, id, slot);
                data.copy_from_slice(slot);
                *counts.by_reason.entry("io_in").or_default() += 1;
                match flow {
                    Flow::Continue => continue,
                    Flow::Done => return Ok(()),
                    Flow::Fail(msg) => return Err(VcpuError::GuestFailure(msg)),
                }
            }
            Ok(VcpuExit::MmioRead(addr, _)) => Exit::Mmio { addr, write: false },
            Ok(VcpuExit::MmioWrite(addr, _)) => Exit::Mmio { addr, write: true },
            Ok(VcpuExit::Hlt) => Exit::Halt,
            Ok(VcpuExit::Shutdown) => Exit::Shutdown,
            Ok(VcpuExit::InternalError) => Exit::InternalError,
            Ok(VcpuExit::FailEntry(reason, _)) => Exit::FailEntry(reason),
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            Ok(VcpuExit::Exception) => Exit::Other("exception"),
            Ok(VcpuExit::Debug(_)) => Exit::Other("debug"),
            Ok(VcpuExit::SystemEvent(_, _)) => Exit::Other("system_event"),
            Ok(_) => Exit::Other("unknown"),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Exit::Interrupted,
            Err(source) => {
                return Err(VcpuError::Kvm {
                    what: "running the vCPU",
                    source,
                });
            }
        };
        *counts.by_reason.entry(exit.reason()).or_default() += 1;
        if let Exit::PortOut {
            port: port::FPU_SWITCH,
            data,
        } = &exit
        {
            // The scheduler's FPU switch needs this vCPU, not the bus.
            crate::fpu::descriptor(mem, data)
                .and_then(|d| crate::fpu::switch(vcpu, mem, d))
                .map_err(|e| VcpuError::GuestFailure(e.to_string()))?;
            continue;
        }
        match handle_exit(&exit, bus, id, &mut []) {
            Flow::Continue => {}
            Flow::Done => return Ok(()),
            Flow::Fail(msg) => {
                return Err(VcpuError::GuestFailure(format!(
                    "{msg}; {}",
                    register_report(vcpu)
                )));
            }
        }
    }
}

/// One line of vCPU state for crash reports.
pub fn register_report(vcpu: &VcpuFd) -> String {
    match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(r), Ok(s)) => format!(
            "rip={:#x} rsp={:#x} rax={:#x} rdi={:#x} rsi={:#x} rflags={:#x} cs={:#x} cr2={:#x} cr3={:#x}",
            r.rip, r.rsp, r.rax, r.rdi, r.rsi, r.rflags, s.cs.selector, s.cr2, s.cr3
        ),
        _ => "registers unavailable".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwk_devices::ExitPort;

    #[test]
    fn synthetic_exits() {
        let mut bus = PortBus::new();
        bus.register(ExitPort::PORT, 1, Box::new(ExitPort)).unwrap();
        let out = |port| Exit::PortOut {
            port,
            data: vec![0, 0, 0, 0],
        };
        assert_eq!(
            handle_exit(&out(ExitPort::PORT), &bus, 0, &mut []),
            Flow::Done
        );
        assert!(
            matches!(handle_exit(&out(0x80), &bus, 0, &mut []), Flow::Fail(m) if m.contains("0x80"))
        );
        assert_eq!(
            handle_exit(&Exit::Interrupted, &bus, 0, &mut []),
            Flow::Continue
        );
        assert!(
            matches!(handle_exit(&Exit::Shutdown, &bus, 0, &mut []), Flow::Fail(m) if m.contains("triple"))
        );
        let mut byte = [0u8; 1];
        assert_eq!(
            handle_exit(
                &Exit::PortIn {
                    port: ExitPort::PORT,
                    len: 1
                },
                &bus,
                0,
                &mut byte
            ),
            Flow::Continue
        );
        assert_eq!(byte, [0xff]);
    }
}
