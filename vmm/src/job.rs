//! One job: check the program, build the VM, run the LWK, collect the outcome and statistics.

use crate::boot::{self, BootError, HostFacts, ProgramStart};
use crate::memory::{self, MIB2, MemoryError};
use crate::offload::{AsyncOffloads, LwkLog, MsiNotifier, SyncOffload};
use crate::program::{self, ProgramError};
use crate::signals::{self, Slots};
use crate::stats::{JobStats, VcpuPlacement};
use crate::vcpu::{self, ExitCounts, VcpuError};
use kvm_ioctls::Kvm;
use lwk_devices::{AsyncDoorbell, Doorbell, ExitPort, Gate, InterruptPorts, PortBus, StartAps};
use offload_abi::{GuestStats, boot_flags, exit_kind, layout};
use offload_host::wire::Wire;
use offload_host::{FdTable, JobContext, Servicer};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

pub use crate::config::RunOptions;
use crate::config::{Oversubscribe, TraceTarget};

/// How the job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The program exited with this status.
    Exited(i32),
    /// The program was killed by this signal.
    Signaled(i32),
    /// The LWK or the VM failed while the program ran.
    LwkFailed(String),
}

/// Why a job could not run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// /dev/kvm missing.
    #[error(
        "KVM is not available: /dev/kvm is missing (load kvm_intel or kvm_amd, or enable virtualization in the firmware)"
    )]
    KvmMissing,
    /// /dev/kvm not accessible.
    #[error("no permission to use /dev/kvm (add your user to the 'kvm' group, or run as root)")]
    KvmPermission,
    /// Other KVM failures.
    #[error("KVM failed while {what}")]
    Kvm {
        /// What was being done.
        what: &'static str,
        /// Cause.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The job root.
    #[error("cannot use {path} as the job root")]
    Root {
        /// The root.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The working directory.
    #[error("the working directory {0} is not a directory inside the job root")]
    Cwd(PathBuf),
    /// The trace file.
    #[error("cannot create the trace file {path}")]
    TraceFile {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// More vCPUs than this version runs.
    #[error("--cpus {0}: between 1 and 64 vCPUs per job")]
    TooManyCpus(u32),
    /// Fewer usable cores than vCPUs.
    #[error(
        "--cpus {asked}: each vCPU needs its own host core, and lwk-vmm may use only {allowed}"
    )]
    NotEnoughCores {
        /// vCPUs asked for.
        asked: usize,
        /// The allowed cores.
        allowed: String,
    },
    /// A core in --cpu-list that this process may not use.
    #[error("--cpu-list: host CPU {cpu} is not available to lwk-vmm (allowed: {allowed})")]
    CpuNotAllowed {
        /// The core.
        cpu: usize,
        /// The allowed list.
        allowed: String,
    },
    /// The program.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// Guest RAM.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Boot preparation.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// vCPU setup.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// Host-signal forwarding.
    #[error("cannot set up the forwarding of signals to the program")]
    Signals(#[source] std::io::Error),
}

impl JobError {
    /// Exit status for this failure: 127 not found, 126 cannot execute, 125 anything else.
    pub fn exit_status(&self) -> i32 {
        match self {
            JobError::Program(ProgramError::NotFound { .. }) => 127,
            JobError::Program(ProgramError::NotExecutable { .. }) => 126,
            JobError::Boot(BootError::ArgsTooLong { .. }) => 126,
            _ => 125,
        }
    }
}

/// File descriptors this process inherited (open now, before any of our own are opened).
fn inherited_fds() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return vec![0, 1, 2];
    };
    let numbers: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The listing's own fd is closed again by now; keep only fds that are still open.
    numbers
        .into_iter()
        // SAFETY: F_GETFD only queries the descriptor flags of a number; no memory involved.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .collect()
}

fn guest_fd_table(inherited: &[i32]) -> FdTable {
    let mut limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: `limit` is a valid rlimit to write.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let table = FdTable::new(limit.rlim_cur);
    for &fd in inherited {
        // SAFETY: `fd` was open when listed and we have not closed it; the borrow ends before
        // anything could close it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        if let Ok(owned) = borrowed.try_clone_to_owned() {
            // SAFETY: as above.
            let cloexec = unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC != 0;
            let _ = table.insert_at(fd as u64, owned, cloexec);
        }
    }
    table
}

fn open_root(path: &PathBuf) -> Result<(OwnedFd, PathBuf), JobError> {
    let canonical = std::fs::canonicalize(path).map_err(|source| JobError::Root {
        path: path.clone(),
        source,
    })?;
    let dir = std::fs::File::open(&canonical).map_err(|source| JobError::Root {
        path: path.clone(),
        source,
    })?;
    if !dir.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(JobError::Root {
            path: path.clone(),
            source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
        });
    }
    Ok((dir.into(), canonical))
}

fn job_cwd(root_path: &PathBuf, requested: Option<&PathBuf>) -> Result<Vec<u8>, JobError> {
    if let Some(cwd) = requested {
        if !cwd.is_absolute()
            || !root_path
                .join(cwd.strip_prefix("/").unwrap_or(cwd))
                .is_dir()
        {
            return Err(JobError::Cwd(cwd.clone()));
        }
        return Ok(cwd.as_os_str().as_bytes().to_vec());
    }
    let here = std::env::current_dir()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok());
    Ok(here
        .and_then(|p| {
            p.strip_prefix(root_path)
                .ok()
                .map(|rel| program::join(b"/", rel.as_os_str().as_bytes()))
        })
        .unwrap_or_else(|| b"/".to_vec()))
}

fn environment(opts: &RunOptions) -> Vec<Vec<u8>> {
    let mut env: Vec<Vec<u8>> = if opts.clear_env {
        Vec::new()
    } else {
        std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                kv
            })
            .collect()
    };
    for extra in &opts.env {
        let bytes = extra.as_bytes();
        let key_len = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
        let key = &bytes[..key_len];
        env.retain(|e| !(e.starts_with(key) && e.get(key_len) == Some(&b'=')));
        env.push(bytes.to_vec());
    }
    env
}

/// Host cores this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads the set within its size.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

fn pin_to(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE (callers take it from an affinity set or a validated list).
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: `one` is a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &one) == 0 }
}

/// Chooses one host core per vCPU: the `--cpu-list` ones (each must be allowed), else the
/// isolated cores lwk-vmm may use, then its other allowed cores. Never two vCPUs on one core.
fn choose_cores(n: usize, requested: &[usize]) -> Result<Vec<usize>, JobError> {
    let allowed = allowed_cpus();
    let list = || {
        allowed
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if n > offload_abi::layout::MAX_VCPUS as usize {
        return Err(JobError::TooManyCpus(n as u32));
    }
    if !requested.is_empty() {
        if let Some(&c) = requested.iter().find(|c| !allowed.contains(c)) {
            return Err(JobError::CpuNotAllowed {
                cpu: c,
                allowed: list(),
            });
        }
        return Ok(requested.to_vec());
    }
    let isolated = std::fs::read_to_string("/sys/devices/system/cpu/isolated").unwrap_or_default();
    let isolated = crate::config::parse_cpu_list(isolated.trim()).unwrap_or_default();
    let mut cores: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| isolated.contains(c))
        .collect();
    cores.extend(allowed.iter().copied().filter(|c| !isolated.contains(c)));
    if cores.len() < n {
        return Err(JobError::NotEnoughCores {
            asked: n,
            allowed: list(),
        });
    }
    cores.truncate(n);
    Ok(cores)
}

/// Where asynchronous-offload workers run: the allowed cores no vCPU uses, else all allowed
/// cores (a worker mostly waits on the host; it must not stay pinned to its vCPU's core).
/// Computed in the main thread, whose affinity is the whole allowed set.
fn worker_cores(vcpu_cores: &[usize]) -> Vec<usize> {
    let allowed = allowed_cpus();
    let spare: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !vcpu_cores.contains(c))
        .collect();
    if spare.is_empty() { allowed } else { spare }
}

/// Stops vCPU threads blocked in KVM_RUN: a signal with a no-op handler makes the ioctl
/// return EINTR, after which the thread sees the stop flag.
fn kick_signal() -> i32 {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn ignore_signal(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Runs every vCPU in its own thread pinned to its core; vCPUs other than 0 start when vCPU 0
/// opens `gate`. The first vCPU to end the job (or fail) stops the others.
fn run_vcpus(
    vcpus: Vec<kvm_ioctls::VcpuFd>,
    mem: &GuestMemoryMmap,
    cores: &[usize],
    bus: &PortBus,
    gate: &Gate,
) -> (Result<(), VcpuError>, ExitCounts, Vec<VcpuPlacement>) {
    let _ = vmm_sys_util::signal::register_signal_handler(kick_signal(), ignore_signal);
    let stop = AtomicBool::new(false);
    // Each vCPU thread's pthread_t, for kicking it out of KVM_RUN.
    let threads: Vec<std::sync::atomic::AtomicU64> = cores
        .iter()
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (id, (mut fd, &core)) in vcpus.into_iter().zip(cores).enumerate() {
            let stop = &stop;
            let me = &threads[id];
            let done = done_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn_scoped(scope, move || {
                    // SAFETY: pthread_self has no preconditions.
                    me.store(unsafe { libc::pthread_self() } as u64, Ordering::Release);
                    let pinned = pin_to(core).then_some(core);
                    let mut counts = ExitCounts::default();
                    let result = if id == 0 || gate.wait(|| stop.load(Ordering::Acquire)) {
                        vcpu::run(&mut fd, id as u32, mem, bus, &mut counts, stop)
                    } else {
                        Ok(())
                    };
                    vcpu::disarm_timer(&fd);
                    stop.store(true, Ordering::Release);
                    let _ = done.send(());
                    (
                        result,
                        counts,
                        VcpuPlacement {
                            id: id as u32,
                            host_cpu: pinned,
                        },
                    )
                });
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    stop.store(true, Ordering::Release);
                    tracing::error!("cannot start a vCPU thread: {e}");
                }
            }
        }
        drop(done_tx);
        // The first vCPU that finishes ends the job; kick the others until all are back.
        let _ = done_rx.recv();
        stop.store(true, Ordering::Release);
        while handles.iter().any(|h| !h.is_finished()) {
            for (h, t) in handles.iter().zip(&threads) {
                let id = t.load(Ordering::Acquire);
                if !h.is_finished() && id != 0 {
                    // SAFETY: `id` is the pthread_t of a scoped thread that has not been
                    // joined yet (the scope keeps it alive); the signal has a no-op handler.
                    unsafe { libc::pthread_kill(id as libc::pthread_t, kick_signal()) };
                }
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let mut result = Ok(());
        let mut total = ExitCounts::default();
        let mut placements = Vec::new();
        for h in handles {
            match h.join() {
                Ok((r, counts, placement)) => {
                    if result.is_ok() {
                        result = r;
                    }
                    for (reason, n) in counts.by_reason {
                        *total.by_reason.entry(reason).or_default() += n;
                    }
                    placements.push(placement);
                }
                Err(_) => result = Err(VcpuError::GuestFailure("a vCPU thread panicked".into())),
            }
        }
        placements.sort_by_key(|p| p.id);
        (result, total, placements)
    })
}

fn open_kvm() -> Result<Kvm, JobError> {
    Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT | libc::ENODEV | libc::ENXIO => JobError::KvmMissing,
        libc::EACCES | libc::EPERM => JobError::KvmPermission,
        _ => JobError::Kvm {
            what: "opening /dev/kvm",
            source: e,
        },
    })
}

/// Size of the initial stack block: the host's RLIMIT_STACK soft limit (as Linux would allow
/// the stack to grow to), between 2 MiB and 64 MiB, in 2 MiB units.
fn stack_size() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 8 << 20,
        rlim_max: 8 << 20,
    };
    // SAFETY: `r` is a valid rlimit to write.
    unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut r) };
    r.rlim_cur.clamp(MIB2, 64 << 20).next_multiple_of(MIB2)
}

/// Runs the job to its end.
pub fn run(opts: &RunOptions) -> Result<(Outcome, JobStats), JobError> {
    let started = Instant::now();
    let inherited = inherited_fds();
    let (root_fd, root_path) = open_root(&opts.root)?;
    let cwd = job_cwd(&root_path, opts.cwd.as_ref())?;
    let env = environment(opts);
    let path_var = env.iter().find_map(|e| e.strip_prefix(b"PATH="));
    let prog = program::resolve(root_fd.as_fd(), &root_path, &cwd, &opts.program, path_var)?;
    let mut argv = vec![opts.program.as_bytes().to_vec()];
    argv.extend(opts.args.iter().map(|a| a.as_bytes().to_vec()));

    let kvm = open_kvm()?;
    let ram = memory::allocate(opts.memory, opts.hugepages)?;
    // Shared with the asynchronous offloads' completion interrupts (their workers are joined
    // before this function returns).
    let vm = Arc::new(kvm.create_vm().map_err(|source| JobError::Kvm {
        what: "creating the VM",
        source,
    })?);
    let host_addr = ram
        .mem
        .get_host_address(GuestAddress(0))
        .map_err(|_| MemoryError::Region)?;
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: ram.size,
        userspace_addr: host_addr as u64,
    };
    // SAFETY: the region is the whole mapping owned by `ram`, which lives until after `vm` is
    // dropped at the end of this function (declared earlier, dropped later).
    unsafe { vm.set_user_memory_region(region) }.map_err(|source| JobError::Kvm {
        what: "registering guest memory",
        source,
    })?;

    let entry = boot::load_kernel(&ram.mem)?;
    let cr3 = boot::build_page_tables(&ram.mem, ram.size)?;
    let cores = choose_cores(opts.cpus as usize, &opts.cpu_list)?;
    // The in-kernel LAPICs carry the LWK's wake-up IPIs and TSC-deadline timers.
    vm.create_irq_chip().map_err(|source| JobError::Kvm {
        what: "creating the interrupt controller",
        source,
    })?;
    let mut vcpus = Vec::with_capacity(cores.len());
    let mut features = None;
    for id in 0..cores.len() as u32 {
        let fd = vm
            .create_vcpu(u64::from(id))
            .map_err(|source| JobError::Kvm {
                what: "creating a vCPU",
                source,
            })?;
        let f = vcpu::setup_cpuid(&kvm, &fd, id)?;
        vcpu::setup_registers(&fd, id, entry, cr3, &f)?;
        features.get_or_insert(f);
        vcpus.push(fd);
    }
    let Some(features) = features else {
        return Err(JobError::TooManyCpus(0));
    };
    let tsc_khz = vcpus[0].get_tsc_khz().map_err(|source| JobError::Kvm {
        what: "reading the TSC frequency",
        source,
    })?;
    let start = ProgramStart {
        argv: &argv,
        envp: &env,
        execfn: &prog.execfn,
        exe_path: &prog.exe_path,
    };
    let host = HostFacts {
        tsc_khz: u64::from(tsc_khz),
        hwcap: features.hwcap,
        vcpu_count: cores.len() as u32,
        timeslice_us: match opts.oversubscribe {
            Oversubscribe::Refuse => 0,
            Oversubscribe::Timeslice => opts.timeslice_ms * 1000,
        },
    };
    let trace_out: Option<Box<dyn std::io::Write + Send>> = match &opts.trace {
        None => None,
        Some(TraceTarget::Stderr) => Some(Box::new(std::io::stderr())),
        Some(TraceTarget::File(path)) => Some(Box::new(std::io::LineWriter::new(
            std::fs::File::create(path).map_err(|source| JobError::TraceFile {
                path: path.clone(),
                source,
            })?,
        ))),
    };
    let mut flags = if opts.prefault {
        boot_flags::PREFAULT
    } else {
        0
    };
    if trace_out.is_some() {
        flags |= boot_flags::TRACE;
    }
    if opts.verbose > 0 {
        flags |= boot_flags::VERBOSE;
    }
    boot::write_boot_info(&ram.mem, ram.size, stack_size(), &start, &host, flags)?;
    signals::init_block(&ram.mem).map_err(|_| MemoryError::Region)?;
    signals::install_interrupt_handler().map_err(JobError::Signals)?;
    let signal_service = signals::Service::new().map_err(JobError::Signals)?;
    let slots = Arc::new(Slots::default());

    let mut servicer = Servicer::new(
        guest_fd_table(&inherited),
        JobContext {
            root: root_fd,
            root_path,
            cwd,
            exe: prog.exe_path.clone(),
            execfn: prog.execfn.clone(),
            // The program's view of itself (/proc/self, /proc/cpuinfo, ...): issue #5.
            process: offload_host::ProcessInfo {
                pid: std::process::id(),
                ppid: std::os::unix::process::parent_id(),
                argv: argv.clone(),
                vcpus: host.vcpu_count,
                mem_size: ram.size,
                tsc_khz: u64::from(tsc_khz),
            },
        },
    );
    let gate = Arc::new(Gate::default());
    servicer.zero_method = ram.backing.zero_method();
    let servicer = Arc::new(servicer);
    let log = Arc::new(LwkLog::new(trace_out));
    let mut bus = PortBus::new();
    let offload = SyncOffload {
        mem: ram.mem.clone(),
        servicer: servicer.clone(),
        log: log.clone(),
        slots: slots.clone(),
    };
    let async_offloads = AsyncOffloads::new(
        ram.mem.clone(),
        servicer,
        log,
        slots.clone(),
        Arc::new(MsiNotifier(vm.clone())),
        worker_cores(&cores),
    );
    // Distinct fixed ports: the registrations cannot overlap.
    let _ = bus.register(ExitPort::PORT, 1, Box::new(ExitPort));
    let _ = bus.register(StartAps::PORT, 1, Box::new(StartAps::new(gate.clone())));
    let _ = bus.register(
        Doorbell::<SyncOffload>::PORT,
        1,
        Box::new(Doorbell::new(offload)),
    );
    let _ = bus.register(
        AsyncDoorbell::<AsyncOffloads>::PORT,
        1,
        Box::new(AsyncDoorbell::new(async_offloads.clone())),
    );
    let _ = bus.register(
        InterruptPorts::<AsyncOffloads>::PORT,
        2,
        Box::new(InterruptPorts::new(async_offloads.clone())),
    );

    tracing::info!(
        "{}, {} vCPU(s) on host CPU(s) {:?}, TSC {} kHz, {}",
        ram.describe(),
        cores.len(),
        cores,
        tsc_khz,
        match opts.oversubscribe {
            Oversubscribe::Refuse => "more threads than vCPUs refused".to_string(),
            Oversubscribe::Timeslice => format!(
                "more threads than vCPUs time-sliced ({} ms; none while each vCPU has one)",
                opts.timeslice_ms
            ),
        }
    );
    let setup = started.elapsed();
    // Signals sent to lwk-vmm are forwarded by their own thread while the vCPUs run.
    let (run_result, exits, placements, workers_joined) = std::thread::scope(|scope| {
        let forwarder = std::thread::Builder::new()
            .name("hostsig".into())
            .spawn_scoped(scope, || signal_service.run(&ram.mem, &vm, &slots, &cores));
        if let Err(e) = &forwarder {
            tracing::error!("cannot start the signal forwarding thread: {e}");
        }
        let r = run_vcpus(vcpus, &ram.mem, &cores, &bus, &gate);
        // Asynchronous calls still blocked on the host are interrupted and their workers
        // joined before the job's resources go.
        let joined = async_offloads.shutdown(Duration::from_secs(2));
        let _ = signal_service.stop.write(1);
        if let Ok(h) = forwarder {
            let _ = h.join();
        }
        (r.0, r.1, r.2, joined)
    });
    tracing::info!(
        "host setup {:.2} ms, guest run {:.2} ms",
        setup.as_secs_f64() * 1e3,
        (started.elapsed() - setup).as_secs_f64() * 1e3
    );

    let guest: Option<GuestStats> = ram
        .mem
        .read_obj::<Wire<GuestStats>>(GuestAddress(layout::STATS_GPA))
        .ok()
        .map(|w| w.0);
    let outcome = match (&run_result, &guest) {
        (Err(e), _) => Outcome::LwkFailed(e.to_string()),
        (Ok(()), Some(g)) => match g.exit_kind {
            exit_kind::EXITED => Outcome::Exited((g.exit_code & 0xff) as i32),
            exit_kind::SIGNALED if (1..65).contains(&g.exit_code) => {
                Outcome::Signaled(g.exit_code as i32)
            }
            exit_kind::KERNEL_PANIC => {
                Outcome::LwkFailed("the LWK panicked (message above)".into())
            }
            other => Outcome::LwkFailed(format!("the LWK reported an unknown exit kind {other}")),
        },
        (Ok(()), None) => Outcome::LwkFailed("cannot read the LWK's statistics page".into()),
    };
    if let (Outcome::LwkFailed(_), Some(g)) = (&outcome, &guest) {
        let name = offload_abi::syscalls::name(g.last_syscall).unwrap_or("?");
        tracing::error!("last syscall of the program: {name} ({})", g.last_syscall);
    }
    let stats = JobStats::collect(
        &exits,
        guest.as_ref(),
        ram.backing.name(),
        placements,
        started.elapsed(),
        crate::stats::HostSignalCounts {
            forwarded: slots.forwarded.load(Ordering::Relaxed),
            interrupted_offloads: slots.interrupted.load(Ordering::Relaxed),
        },
        async_offloads.counts(),
    );
    if !workers_joined {
        // A worker left detached still holds a clone of `ram.mem`, which may point into a
        // mapping `ram` owns (4 KiB/THP backing) and would unmap on drop while the worker can
        // still write its completion there. Keep guest RAM mapped; the process exits soon.
        std::mem::forget(ram);
    }
    Ok((outcome, stats))
}
