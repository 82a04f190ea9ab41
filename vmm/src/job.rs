//! One job: check the program, build the VM, run the LWK, collect the outcome and statistics.

use crate::boot::{self, BootError, HostFacts, ProgramStart};
use crate::memory::{self, MIB2, MemoryError};
use crate::program::{self, ProgramError};
use crate::stats::{JobStats, VcpuPlacement};
use crate::vcpu::{self, ExitCounts, VcpuError};
use kvm_ioctls::Kvm;
use lwk_devices::{Doorbell, DoorbellHandler, ExitPort, PortBus};
use offload_abi::{GuestStats, boot_flags, exit_kind, layout};
use offload_host::wire::Wire;
use offload_host::{FdTable, JobContext, LogSink, Servicer};
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Instant;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Everything `lwk-vmm run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Map program memory when it is granted (else on first touch).
    pub prefault: bool,
    /// Host backing policy of guest RAM.
    pub hugepages: memory::HugepagePolicy,
    /// Where to write the JSON statistics.
    pub stats_json: Option<PathBuf>,
    /// Verbosity (0 quiet-ish, 1 `-v`).
    pub verbose: u8,
    /// The job root.
    pub root: PathBuf,
    /// The working directory inside the root.
    pub cwd: Option<PathBuf>,
    /// `KEY=VALUE` additions to the environment.
    pub env: Vec<OsString>,
    /// Start from an empty environment.
    pub clear_env: bool,
    /// The program.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

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

struct StderrLog {
    verbose: u8,
}

impl LogSink for StderrLog {
    fn log(&mut self, level: u64, message: &[u8]) {
        if level == 0 || self.verbose > 0 {
            eprintln!("lwk-vmm: [lwk] {}", String::from_utf8_lossy(message));
        }
    }
}

struct OffloadExit {
    mem: GuestMemoryMmap,
    servicer: Servicer,
    log: StderrLog,
}

impl DoorbellHandler for OffloadExit {
    fn ring(&mut self, vcpu: u32) {
        if vcpu >= layout::MAX_VCPUS {
            return;
        }
        let gpa = layout::BRIDGE_GPA + u64::from(vcpu) * 4096;
        self.servicer.serve_at(&self.mem, gpa, &mut self.log);
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
    let mut table = FdTable::new(limit.rlim_cur);
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

/// Picks the host CPU for vCPU 0: an isolated core we may use, else the first allowed core.
fn pick_and_pin_cpu() -> Option<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return None;
    }
    // SAFETY: CPU_ISSET reads the set within its size.
    let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    let isolated = std::fs::read_to_string("/sys/devices/system/cpu/isolated").unwrap_or_default();
    let isolated = parse_cpu_list(isolated.trim());
    let cpu = allowed
        .iter()
        .copied()
        .find(|c| isolated.contains(c))
        .or_else(|| allowed.first().copied())?;
    // SAFETY: as above.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE (it came from the set).
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: `one` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &one) } != 0 {
        return None;
    }
    Some(cpu)
}

/// Parses a Linux CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                    out.extend(a..=b.min(a + 4096));
                }
            }
            None => out.extend(part.trim().parse::<usize>().ok()),
        }
    }
    out
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
    let vm = kvm.create_vm().map_err(|source| JobError::Kvm {
        what: "creating the VM",
        source,
    })?;
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
    let mut vcpu = vm.create_vcpu(0).map_err(|source| JobError::Kvm {
        what: "creating vCPU 0",
        source,
    })?;
    let features = vcpu::setup_cpuid(&kvm, &vcpu, 0)?;
    let tsc_khz = vcpu.get_tsc_khz().map_err(|source| JobError::Kvm {
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
        vcpu_count: 1,
    };
    boot::write_boot_info(
        &ram.mem,
        ram.size,
        stack_size(),
        &start,
        &host,
        if opts.prefault {
            boot_flags::PREFAULT
        } else {
            0
        } | if opts.verbose > 0 {
            boot_flags::VERBOSE
        } else {
            0
        },
    )?;
    vcpu::setup_registers(&vcpu, entry, cr3, &features)?;

    let mut servicer = Servicer::new(
        guest_fd_table(&inherited),
        JobContext {
            root: root_fd,
            root_path,
            cwd,
            exe: prog.exe_path.clone(),
        },
    );
    servicer.zero_method = ram.backing.zero_method();
    let mut bus = PortBus::new();
    let offload = OffloadExit {
        mem: ram.mem.clone(),
        servicer,
        log: StderrLog {
            verbose: opts.verbose,
        },
    };
    // The two registrations use distinct fixed ports; they cannot overlap.
    let _ = bus.register(ExitPort::PORT, 1, Box::new(ExitPort));
    let _ = bus.register(
        Doorbell::<OffloadExit>::PORT,
        1,
        Box::new(Doorbell::new(offload)),
    );

    let host_cpu = pick_and_pin_cpu();
    if opts.verbose > 0 {
        eprintln!(
            "lwk-vmm: {}, vCPU 0 on host CPU {}, TSC {} kHz",
            ram.describe(),
            host_cpu.map_or("?".to_string(), |c| c.to_string()),
            tsc_khz
        );
    }
    let mut exits = ExitCounts::default();
    let setup = started.elapsed();
    let run_result = vcpu::run(&mut vcpu, &mut bus, &mut exits);
    if opts.verbose > 0 {
        eprintln!(
            "lwk-vmm: host setup {:.2} ms, guest run {:.2} ms",
            setup.as_secs_f64() * 1e3,
            (started.elapsed() - setup).as_secs_f64() * 1e3
        );
    }

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
        eprintln!(
            "lwk-vmm: last syscall of the program: {name} ({})",
            g.last_syscall
        );
    }
    let stats = JobStats::collect(
        &exits,
        guest.as_ref(),
        ram.backing.name(),
        vec![VcpuPlacement { id: 0, host_cpu }],
        started.elapsed(),
    );
    Ok((outcome, stats))
}
