//! `guest-lwk`: the lwk-vmm light-weight kernel.
//!
//! A `#![no_std]` kernel for x86_64 that the VMM starts directly in 64-bit mode. It sets up its
//! own GDT/TSS/IDT and syscall MSRs, loads the program's ELF (reading the file through the
//! offload bridge), builds the initial stack as Linux does and runs the program in ring 3.
//! Syscalls are dispatched by the one table in `offload-abi`: local ones are served here,
//! offloaded ones go to the VMM over the bridge, the rest return ENOSYS.
//!
//! Modules: `arch` (descriptor tables, entry stubs, MSRs; `unsafe`), `phys` (guest-physical
//! memory through the direct map; `unsafe`), `frames` (the physical memory manager), `mm` (page
//! tables, user copies), `vma` (areas), `vm` (a process's memory: mmap, brk, faults), `bridge`
//! (offload requests), `loader` (ELF and initial stack), `trap` (exceptions, the two syscall
//! arrivals), `syscall` (the dispatcher and local syscalls), `time` (TSC clock),
//! `hostsig` (signals sent to lwk-vmm), `tlb` (TLB shootdown across vCPUs), `vdso` (the vDSO and
//! vvar page mapped into processes).
//! Neighbours: `offload-abi` (the contract with the VMM); built and embedded by `vmm/build.rs`.
#![no_std]
#![no_main]

mod arch;
mod bridge;
mod exec;
mod frames;
mod hostsig;
mod loader;
mod mm;
mod pagecache;
mod phys;
mod process;
mod procinfo;
mod sched;
mod signal;
mod syscall;
mod time;
mod timer;
mod tlb;
mod trap;
mod vdso;
mod vm;
mod vma;

use arch::SpinLock;
use offload_abi::{
    BOOT_INFO_MAGIC, BootInfo, GuestStats, PROTOCOL_VERSION, exit_kind, layout, port,
};

/// The ELF note that tells the VMM which protocol version this image speaks.
#[repr(C, align(4))]
struct AbiNote {
    namesz: u32,
    descsz: u32,
    note_type: u32,
    name: [u8; 8],
    version: u32,
}

#[used]
#[unsafe(link_section = ".note.lwk")]
static ABI_NOTE: AbiNote = AbiNote {
    namesz: offload_abi::ABI_NOTE_NAME.len() as u32,
    descsz: 4,
    note_type: offload_abi::ABI_NOTE_TYPE,
    name: *offload_abi::ABI_NOTE_NAME,
    version: PROTOCOL_VERSION,
};

/// Everything the kernel knows, shared by the CPUs under one lock after boot.
pub struct Kernel {
    pub info: BootInfo,
    /// CPUs and the threads on them.
    pub sched: sched::Sched,
    /// The physical memory manager (one for the whole machine).
    pub frames: &'static mut frames::Frames,
    /// The job's processes and address spaces (`process`).
    pub procs: process::Procs,
    pub mms: process::Mms,
    pub clock: time::Clock,
    pub stats: &'static mut GuestStats,
    /// The LSTAR address: a #PF at this RIP from ring 3 is a syscall (kvm_pvm arrival).
    pub lstar: u64,
}

static KERNEL: SpinLock<Option<Kernel>> = SpinLock::new(None);

/// The locked kernel state. Dropping it unlocks; [`KernelGuard::unlocked`] lets a CPU halt
/// without holding the lock.
pub struct KernelGuard(Option<arch::SpinGuard<'static, Option<Kernel>>>);

impl KernelGuard {
    /// Runs `f` with the lock released, then takes it again.
    pub fn unlocked(&mut self, f: impl FnOnce()) {
        drop(self.0.take());
        f();
        self.0 = Some(KERNEL.lock());
    }
}

impl core::ops::Deref for KernelGuard {
    type Target = Kernel;
    fn deref(&self) -> &Kernel {
        match self.0.as_deref() {
            Some(Some(k)) => k,
            _ => panic!("kernel state used before boot finished"),
        }
    }
}

impl core::ops::DerefMut for KernelGuard {
    fn deref_mut(&mut self) -> &mut Kernel {
        match self.0.as_deref_mut() {
            Some(Some(k)) => k,
            _ => panic!("kernel state used before boot finished"),
        }
    }
}

/// Locks the kernel state (trap path).
pub fn kernel() -> KernelGuard {
    KernelGuard(Some(KERNEL.lock()))
}

/// Ends the job: records how in the statistics page and tells the VMM (which never resumes
/// this vCPU).
pub fn exit_job(kind: u32, code: u32) -> ! {
    // exit_kind and exit_code are adjacent u32s: one 8-byte store (through the direct map, so
    // this also works from the panic handler while other references to the page are live).
    const _: () = assert!(
        core::mem::offset_of!(GuestStats, exit_code)
            == core::mem::offset_of!(GuestStats, exit_kind) + 4
    );
    vm::log_summary();
    phys::write_u64(
        layout::STATS_GPA + core::mem::offset_of!(GuestStats, tlb_shootdowns) as u64,
        tlb::remote_count(),
    );
    phys::write_u64(
        layout::STATS_GPA + core::mem::offset_of!(GuestStats, exit_kind) as u64,
        u64::from(kind) | (u64::from(code) << 32),
    );
    arch::outl(port::EXIT, 0);
    arch::halt_forever()
}

/// Rust entry point, called by `_start` on this CPU's stack with the boot info GPA (RSI at
/// entry) and the vCPU id (RDX at entry).
extern "C" fn kmain(boot_info_gpa: u64, cpu: u64) -> ! {
    let cpu = cpu as usize;
    if cpu != 0 {
        ap_main(cpu);
    }
    let t0 = arch::rdtsc();
    let info: BootInfo = phys::read(layout::BOOT_INFO_GPA);
    phys::init(info.mem_size);
    arch::build_idt();
    arch::init_descriptors(0);
    arch::init_syscall(0);
    arch::apic_init();
    hostsig::init();
    bridge::init();
    if !arch::has_tsc_deadline() {
        klog!(
            bridge::level::ERROR,
            "no TSC-deadline timer: futex waits and sleeps with a timeout will not time out"
        );
    }
    let stats: &'static mut GuestStats = phys::fixed_mut(layout::STATS_GPA);
    if boot_info_gpa != layout::BOOT_INFO_GPA
        || info.magic != BOOT_INFO_MAGIC
        || info.version != PROTOCOL_VERSION
    {
        klog!(
            bridge::level::ERROR,
            "boot info invalid: magic {:#x}, version {}",
            info.magic,
            info.version
        );
        exit_job(exit_kind::KERNEL_PANIC, 0);
    }
    let t1 = arch::rdtsc();
    let clock = time::Clock::new(&info);
    let t2 = arch::rdtsc();
    let frames = frames::Frames::init(&info);
    mm::record_kernel_half(arch::read_cr3() & mm::pte::ADDR);
    let Some(mut mm) = vm::Mm::new(frames, &info, arch::read_cr3() & mm::pte::ADDR) else {
        klog!(
            bridge::level::ERROR,
            "not enough guest memory to start (raise --memory)"
        );
        exit_job(exit_kind::EXITED, 126);
    };
    let image = match loader::load(&info, frames, &mut mm, &clock.vvar(), clock.realtime_ns()) {
        Ok(image) => image,
        Err(e) => {
            klog!(
                bridge::level::ERROR,
                "cannot load the program: {}",
                e.message()
            );
            exit_job(exit_kind::EXITED, e.exit_status());
        }
    };
    mm.layout = vm::boot_stack_layout(&info);
    mm.layout.start_stack = image.stack_pointer;
    let t3 = arch::rdtsc();
    let us = |a: u64, b: u64| (b - a) * 1000 / info.tsc_khz.max(1);
    klog!(
        bridge::level::INFO,
        "boot: descriptors {} us, clock {} us, program load {} us",
        us(t0, t1),
        us(t1, t2),
        us(t2, t3)
    );
    let Some(sig) = signal::Table::new(frames, &mut mm) else {
        klog!(
            bridge::level::ERROR,
            "not enough guest memory to start (raise --memory)"
        );
        exit_job(exit_kind::EXITED, 126);
    };
    let (procs, mms) = process::init(&info, frames, mm, sig);
    let ncpus = (info.vcpu_count as usize).clamp(1, arch::MAX_CPUS);
    let timeslice = info.timeslice_us.saturating_mul(info.tsc_khz) / 1000;
    *KERNEL.lock() = Some(Kernel {
        info,
        sched: sched::Sched::new(ncpus, info.pid, timeslice, info.tsc_khz),
        frames,
        procs,
        mms,
        clock,
        stats,
        lstar: arch::syscall_entry_address(),
    });
    if let Some(k) = KERNEL.lock().as_ref() {
        procinfo::publish(k, 0);
    }
    procinfo::thread_bound(0, info.pid, info.pid, 0);
    if ncpus > 1 {
        // The other vCPUs start now; the program starts once they can take threads.
        arch::outl(port::START_APS, 0);
        sched::wait_all_online(ncpus);
    }
    time::thread_start();
    arch::enter_user(image.entry, image.stack_pointer)
}

/// Entry of vCPUs other than 0, after vCPU 0 wrote `port::START_APS`.
fn ap_main(cpu: usize) -> ! {
    arch::init_descriptors(cpu);
    arch::init_syscall(cpu);
    arch::apic_init();
    bridge::init();
    sched::cpu_online(cpu);
    sched::idle(cpu)
}

#[panic_handler]
fn panic(panic_info: &core::panic::PanicInfo) -> ! {
    klog!(bridge::level::ERROR, "LWK panic: {}", panic_info);
    exit_job(exit_kind::KERNEL_PANIC, 0)
}
