//! The one Linux x86_64 syscall table (DESIGN.md rule 3).
//!
//! Every syscall number Linux defines on x86_64 appears here exactly once with its disposition.
//! The guest dispatcher, `--trace` names, statistics and docs/COMPATIBILITY.md are all derived
//! from this table; nothing else in the project lists syscall numbers.

/// Where a syscall is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Handled inside the LWK without leaving the VM.
    Local,
    /// Forwarded to the VMM, which executes it on host Linux.
    Offload,
    /// Returns ENOSYS; the string says why.
    Unsupported(&'static str),
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct SyscallInfo {
    /// The Linux x86_64 syscall number.
    pub nr: u64,
    /// The Linux name, as strace prints it.
    pub name: &'static str,
    /// Where the LWK serves it.
    pub disposition: Disposition,
}

/// One past the largest syscall number the table can hold.
pub const MAX_NR: usize = 512;

macro_rules! syscall_table {
    ($($nr:literal => $name:ident : $disp:expr,)*) => {
        /// Syscall numbers as constants named like Linux's `__NR_*`.
        #[allow(non_upper_case_globals, missing_docs)]
        pub mod nr {
            $(pub const $name: u64 = $nr;)*
        }

        /// Every row, sorted by number.
        pub const TABLE: &[SyscallInfo] = {
            use Disposition::*;
            &[$(SyscallInfo { nr: $nr, name: stringify!($name), disposition: $disp },)*]
        };
    };
}

const fn build_index() -> [u16; MAX_NR] {
    let mut index = [u16::MAX; MAX_NR];
    let mut i = 0;
    while i < TABLE.len() {
        let nr = TABLE[i].nr as usize;
        assert!(nr < MAX_NR, "syscall number beyond MAX_NR");
        assert!(index[nr] == u16::MAX, "syscall number listed twice");
        index[nr] = i as u16;
        i += 1;
    }
    index
}

/// Row index by syscall number (`u16::MAX` where Linux defines no syscall).
const INDEX: [u16; MAX_NR] = build_index();

/// The table row for `nr`, or `None` for a number Linux does not define.
#[inline]
pub fn lookup(nr: u64) -> Option<&'static SyscallInfo> {
    let slot = *INDEX.get(usize::try_from(nr).ok()?)?;
    TABLE.get(usize::from(slot))
}

/// The strace-style name of `nr`, or `None` for an unknown number.
pub fn name(nr: u64) -> Option<&'static str> {
    lookup(nr).map(|s| s.name)
}

/// Disposition of `nr`; unknown numbers are unsupported.
#[inline]
pub fn disposition(nr: u64) -> Disposition {
    match lookup(nr) {
        Some(s) => s.disposition,
        None => Disposition::Unsupported("not a Linux x86_64 syscall number"),
    }
}

syscall_table! {
    0 => read: Offload,
    1 => write: Offload,
    2 => open: Offload,
    3 => close: Offload,
    4 => stat: Offload,
    5 => fstat: Offload,
    6 => lstat: Offload,
    7 => poll: Offload,
    8 => lseek: Offload,
    9 => mmap: Local,
    10 => mprotect: Local,
    11 => munmap: Local,
    12 => brk: Local,
    13 => rt_sigaction: Local,
    14 => rt_sigprocmask: Local,
    15 => rt_sigreturn: Local,
    16 => ioctl: Offload,
    17 => pread64: Offload,
    18 => pwrite64: Offload,
    19 => readv: Offload,
    20 => writev: Offload,
    21 => access: Offload,
    22 => pipe: Offload,
    23 => select: Offload,
    24 => sched_yield: Local,
    25 => mremap: Local,
    26 => msync: Local,
    27 => mincore: Local,
    28 => madvise: Local,
    29 => shmget: Unsupported("not implemented yet"),
    30 => shmat: Unsupported("not implemented yet"),
    31 => shmctl: Unsupported("not implemented yet"),
    32 => dup: Offload,
    33 => dup2: Offload,
    34 => pause: Local,
    35 => nanosleep: Local,
    36 => getitimer: Local,
    37 => alarm: Local,
    38 => setitimer: Local,
    39 => getpid: Local,
    40 => sendfile: Offload,
    41 => socket: Offload,
    42 => connect: Offload,
    43 => accept: Offload,
    44 => sendto: Offload,
    45 => recvfrom: Offload,
    46 => sendmsg: Offload,
    47 => recvmsg: Offload,
    48 => shutdown: Offload,
    49 => bind: Offload,
    50 => listen: Offload,
    51 => getsockname: Offload,
    52 => getpeername: Offload,
    53 => socketpair: Offload,
    54 => setsockopt: Offload,
    55 => getsockopt: Offload,
    56 => clone: Local,
    57 => fork: Local,
    58 => vfork: Local,
    59 => execve: Local,
    60 => exit: Local,
    61 => wait4: Local,
    62 => kill: Local,
    63 => uname: Local,
    64 => semget: Unsupported("not implemented yet"),
    65 => semop: Unsupported("not implemented yet"),
    66 => semctl: Unsupported("not implemented yet"),
    67 => shmdt: Unsupported("not implemented yet"),
    68 => msgget: Unsupported("not implemented yet"),
    69 => msgsnd: Unsupported("not implemented yet"),
    70 => msgrcv: Unsupported("not implemented yet"),
    71 => msgctl: Unsupported("not implemented yet"),
    72 => fcntl: Offload,
    73 => flock: Offload,
    74 => fsync: Offload,
    75 => fdatasync: Offload,
    76 => truncate: Offload,
    77 => ftruncate: Offload,
    78 => getdents: Offload,
    79 => getcwd: Offload,
    80 => chdir: Offload,
    81 => fchdir: Offload,
    82 => rename: Offload,
    83 => mkdir: Offload,
    84 => rmdir: Offload,
    85 => creat: Offload,
    86 => link: Offload,
    87 => unlink: Offload,
    88 => symlink: Offload,
    89 => readlink: Offload,
    90 => chmod: Offload,
    91 => fchmod: Offload,
    92 => chown: Offload,
    93 => fchown: Offload,
    94 => lchown: Offload,
    95 => umask: Offload,
    96 => gettimeofday: Local,
    97 => getrlimit: Local,
    98 => getrusage: Local,
    99 => sysinfo: Local,
    100 => times: Local,
    101 => ptrace: Unsupported("not implemented yet"),
    102 => getuid: Local,
    103 => syslog: Unsupported("not implemented yet"),
    104 => getgid: Local,
    105 => setuid: Unsupported("not implemented yet"),
    106 => setgid: Unsupported("not implemented yet"),
    107 => geteuid: Local,
    108 => getegid: Local,
    109 => setpgid: Local,
    110 => getppid: Local,
    111 => getpgrp: Local,
    112 => setsid: Local,
    113 => setreuid: Unsupported("not implemented yet"),
    114 => setregid: Unsupported("not implemented yet"),
    115 => getgroups: Unsupported("not implemented yet"),
    116 => setgroups: Unsupported("not implemented yet"),
    117 => setresuid: Unsupported("not implemented yet"),
    118 => getresuid: Unsupported("not implemented yet"),
    119 => setresgid: Unsupported("not implemented yet"),
    120 => getresgid: Unsupported("not implemented yet"),
    121 => getpgid: Local,
    122 => setfsuid: Unsupported("not implemented yet"),
    123 => setfsgid: Unsupported("not implemented yet"),
    124 => getsid: Local,
    125 => capget: Unsupported("not implemented yet"),
    126 => capset: Unsupported("not implemented yet"),
    127 => rt_sigpending: Local,
    128 => rt_sigtimedwait: Local,
    129 => rt_sigqueueinfo: Local,
    130 => rt_sigsuspend: Local,
    131 => sigaltstack: Local,
    132 => utime: Offload,
    133 => mknod: Offload,
    134 => uselib: Unsupported("not implemented yet"),
    135 => personality: Unsupported("not implemented yet"),
    136 => ustat: Unsupported("not implemented yet"),
    137 => statfs: Offload,
    138 => fstatfs: Offload,
    139 => sysfs: Unsupported("not implemented yet"),
    140 => getpriority: Unsupported("not implemented yet"),
    141 => setpriority: Unsupported("not implemented yet"),
    142 => sched_setparam: Local,
    143 => sched_getparam: Local,
    144 => sched_setscheduler: Local,
    145 => sched_getscheduler: Local,
    146 => sched_get_priority_max: Local,
    147 => sched_get_priority_min: Local,
    148 => sched_rr_get_interval: Unsupported("not implemented yet"),
    149 => mlock: Local,
    150 => munlock: Local,
    151 => mlockall: Local,
    152 => munlockall: Local,
    153 => vhangup: Unsupported("not implemented yet"),
    154 => modify_ldt: Unsupported("not implemented yet"),
    155 => pivot_root: Unsupported("the job cannot change or inspect the host's mounts"),
    156 => _sysctl: Unsupported("not implemented yet"),
    157 => prctl: Local,
    158 => arch_prctl: Local,
    159 => adjtimex: Unsupported("not implemented yet"),
    160 => setrlimit: Unsupported("not implemented yet"),
    161 => chroot: Unsupported("not supported: the job root is fixed by --root"),
    162 => sync: Offload,
    163 => acct: Unsupported("not implemented yet"),
    164 => settimeofday: Unsupported("not implemented yet"),
    165 => mount: Unsupported("the job cannot change or inspect the host's mounts"),
    166 => umount2: Unsupported("the job cannot change or inspect the host's mounts"),
    167 => swapon: Unsupported("not implemented yet"),
    168 => swapoff: Unsupported("not implemented yet"),
    169 => reboot: Unsupported("not implemented yet"),
    170 => sethostname: Unsupported("not implemented yet"),
    171 => setdomainname: Unsupported("not implemented yet"),
    172 => iopl: Unsupported("not implemented yet"),
    173 => ioperm: Unsupported("not implemented yet"),
    174 => create_module: Unsupported("not implemented yet"),
    175 => init_module: Unsupported("not implemented yet"),
    176 => delete_module: Unsupported("not implemented yet"),
    177 => get_kernel_syms: Unsupported("not implemented yet"),
    178 => query_module: Unsupported("not implemented yet"),
    179 => quotactl: Unsupported("not implemented yet"),
    180 => nfsservctl: Unsupported("not implemented yet"),
    181 => getpmsg: Unsupported("not implemented yet"),
    182 => putpmsg: Unsupported("not implemented yet"),
    183 => afs_syscall: Unsupported("not implemented yet"),
    184 => tuxcall: Unsupported("not implemented yet"),
    185 => security: Unsupported("not implemented yet"),
    186 => gettid: Local,
    187 => readahead: Offload,
    188 => setxattr: Offload,
    189 => lsetxattr: Offload,
    190 => fsetxattr: Offload,
    191 => getxattr: Offload,
    192 => lgetxattr: Offload,
    193 => fgetxattr: Offload,
    194 => listxattr: Offload,
    195 => llistxattr: Offload,
    196 => flistxattr: Offload,
    197 => removexattr: Offload,
    198 => lremovexattr: Offload,
    199 => fremovexattr: Offload,
    200 => tkill: Local,
    201 => time: Local,
    202 => futex: Local,
    203 => sched_setaffinity: Local,
    204 => sched_getaffinity: Local,
    205 => set_thread_area: Unsupported("not implemented yet"),
    206 => io_setup: Unsupported("Linux AIO keeps guest buffers in flight after the call returns; the bridge copies"),
    207 => io_destroy: Unsupported("Linux AIO keeps guest buffers in flight after the call returns; the bridge copies"),
    208 => io_getevents: Unsupported("Linux AIO keeps guest buffers in flight after the call returns; the bridge copies"),
    209 => io_submit: Unsupported("Linux AIO keeps guest buffers in flight after the call returns; the bridge copies"),
    210 => io_cancel: Unsupported("Linux AIO keeps guest buffers in flight after the call returns; the bridge copies"),
    211 => get_thread_area: Unsupported("not implemented yet"),
    212 => lookup_dcookie: Unsupported("not implemented yet"),
    213 => epoll_create: Offload,
    214 => epoll_ctl_old: Unsupported("never implemented by Linux on x86_64 (ENOSYS natively)"),
    215 => epoll_wait_old: Unsupported("never implemented by Linux on x86_64 (ENOSYS natively)"),
    216 => remap_file_pages: Unsupported("not implemented yet"),
    217 => getdents64: Offload,
    218 => set_tid_address: Local,
    219 => restart_syscall: Unsupported("not implemented yet"),
    220 => semtimedop: Unsupported("not implemented yet"),
    221 => fadvise64: Offload,
    222 => timer_create: Local,
    223 => timer_settime: Local,
    224 => timer_gettime: Local,
    225 => timer_getoverrun: Local,
    226 => timer_delete: Local,
    227 => clock_settime: Unsupported("not implemented yet"),
    228 => clock_gettime: Local,
    229 => clock_getres: Local,
    230 => clock_nanosleep: Local,
    231 => exit_group: Local,
    232 => epoll_wait: Offload,
    233 => epoll_ctl: Offload,
    234 => tgkill: Local,
    235 => utimes: Offload,
    236 => vserver: Unsupported("not implemented yet"),
    237 => mbind: Unsupported("not implemented yet"),
    238 => set_mempolicy: Unsupported("not implemented yet"),
    239 => get_mempolicy: Unsupported("not implemented yet"),
    240 => mq_open: Unsupported("not implemented yet"),
    241 => mq_unlink: Unsupported("not implemented yet"),
    242 => mq_timedsend: Unsupported("not implemented yet"),
    243 => mq_timedreceive: Unsupported("not implemented yet"),
    244 => mq_notify: Unsupported("not implemented yet"),
    245 => mq_getsetattr: Unsupported("not implemented yet"),
    246 => kexec_load: Unsupported("not implemented yet"),
    247 => waitid: Local,
    248 => add_key: Unsupported("not implemented yet"),
    249 => request_key: Unsupported("not implemented yet"),
    250 => keyctl: Unsupported("not implemented yet"),
    251 => ioprio_set: Unsupported("not implemented yet"),
    252 => ioprio_get: Unsupported("not implemented yet"),
    253 => inotify_init: Unsupported("file-change notification is not offloaded yet (watches name paths that must be resolved inside the root)"),
    254 => inotify_add_watch: Unsupported("file-change notification is not offloaded yet (watches name paths that must be resolved inside the root)"),
    255 => inotify_rm_watch: Unsupported("file-change notification is not offloaded yet (watches name paths that must be resolved inside the root)"),
    256 => migrate_pages: Unsupported("not implemented yet"),
    257 => openat: Offload,
    258 => mkdirat: Offload,
    259 => mknodat: Offload,
    260 => fchownat: Offload,
    261 => futimesat: Offload,
    262 => newfstatat: Offload,
    263 => unlinkat: Offload,
    264 => renameat: Offload,
    265 => linkat: Offload,
    266 => symlinkat: Offload,
    267 => readlinkat: Offload,
    268 => fchmodat: Offload,
    269 => faccessat: Offload,
    270 => pselect6: Offload,
    271 => ppoll: Offload,
    272 => unshare: Unsupported("not implemented yet"),
    273 => set_robust_list: Local,
    274 => get_robust_list: Local,
    275 => splice: Offload,
    276 => tee: Offload,
    277 => sync_file_range: Offload,
    278 => vmsplice: Unsupported("lends guest pages to the host kernel by reference; the bridge only copies"),
    279 => move_pages: Unsupported("not implemented yet"),
    280 => utimensat: Offload,
    281 => epoll_pwait: Offload,
    282 => signalfd: Unsupported("signals come with issue #7"),
    283 => timerfd_create: Unsupported("timers come with issue #7"),
    284 => eventfd: Offload,
    285 => fallocate: Offload,
    286 => timerfd_settime: Unsupported("timers come with issue #7"),
    287 => timerfd_gettime: Unsupported("timers come with issue #7"),
    288 => accept4: Offload,
    289 => signalfd4: Unsupported("signals come with issue #7"),
    290 => eventfd2: Offload,
    291 => epoll_create1: Offload,
    292 => dup3: Offload,
    293 => pipe2: Offload,
    294 => inotify_init1: Unsupported("file-change notification is not offloaded yet (watches name paths that must be resolved inside the root)"),
    295 => preadv: Offload,
    296 => pwritev: Offload,
    297 => rt_tgsigqueueinfo: Local,
    298 => perf_event_open: Unsupported("not implemented yet"),
    299 => recvmmsg: Offload,
    300 => fanotify_init: Unsupported("file-change notification is not offloaded yet (watches name paths that must be resolved inside the root)"),
    301 => fanotify_mark: Unsupported("file-change notification is not offloaded yet (watches name paths that must be resolved inside the root)"),
    302 => prlimit64: Local,
    303 => name_to_handle_at: Unsupported("file handles open files by inode, bypassing the job root"),
    304 => open_by_handle_at: Unsupported("file handles open files by inode, bypassing the job root"),
    305 => clock_adjtime: Unsupported("not implemented yet"),
    306 => syncfs: Offload,
    307 => sendmmsg: Offload,
    308 => setns: Unsupported("not implemented yet"),
    309 => getcpu: Local,
    310 => process_vm_readv: Unsupported("not implemented yet"),
    311 => process_vm_writev: Unsupported("not implemented yet"),
    312 => kcmp: Unsupported("not implemented yet"),
    313 => finit_module: Unsupported("not implemented yet"),
    314 => sched_setattr: Unsupported("not implemented yet"),
    315 => sched_getattr: Unsupported("not implemented yet"),
    316 => renameat2: Offload,
    317 => seccomp: Unsupported("not implemented yet"),
    318 => getrandom: Offload,
    319 => memfd_create: Unsupported("not offloaded yet: a memfd is only useful with file-backed mmap (issue #4)"),
    320 => kexec_file_load: Unsupported("not implemented yet"),
    321 => bpf: Unsupported("not implemented yet"),
    322 => execveat: Local,
    323 => userfaultfd: Unsupported("not implemented yet"),
    324 => membarrier: Unsupported("not implemented yet"),
    325 => mlock2: Local,
    326 => copy_file_range: Offload,
    327 => preadv2: Offload,
    328 => pwritev2: Offload,
    329 => pkey_mprotect: Unsupported("not implemented yet"),
    330 => pkey_alloc: Unsupported("not implemented yet"),
    331 => pkey_free: Unsupported("not implemented yet"),
    332 => statx: Offload,
    333 => io_pgetevents: Unsupported("Linux AIO keeps guest buffers in flight after the call returns; the bridge copies"),
    334 => rseq: Unsupported("restartable sequences are not supported; glibc and musl fall back without them"),
    424 => pidfd_send_signal: Unsupported("not implemented yet"),
    425 => io_uring_setup: Unsupported("io_uring shares memory rings with the kernel; the bridge copies"),
    426 => io_uring_enter: Unsupported("io_uring shares memory rings with the kernel; the bridge copies"),
    427 => io_uring_register: Unsupported("io_uring shares memory rings with the kernel; the bridge copies"),
    428 => open_tree: Unsupported("the job cannot change or inspect the host's mounts"),
    429 => move_mount: Unsupported("the job cannot change or inspect the host's mounts"),
    430 => fsopen: Unsupported("the job cannot change or inspect the host's mounts"),
    431 => fsconfig: Unsupported("the job cannot change or inspect the host's mounts"),
    432 => fsmount: Unsupported("the job cannot change or inspect the host's mounts"),
    433 => fspick: Unsupported("the job cannot change or inspect the host's mounts"),
    434 => pidfd_open: Unsupported("not implemented yet"),
    435 => clone3: Local,
    436 => close_range: Offload,
    437 => openat2: Offload,
    438 => pidfd_getfd: Unsupported("not implemented yet"),
    439 => faccessat2: Offload,
    440 => process_madvise: Unsupported("not implemented yet"),
    441 => epoll_pwait2: Offload,
    442 => mount_setattr: Unsupported("the job cannot change or inspect the host's mounts"),
    443 => quotactl_fd: Unsupported("not implemented yet"),
    444 => landlock_create_ruleset: Unsupported("not implemented yet"),
    445 => landlock_add_rule: Unsupported("not implemented yet"),
    446 => landlock_restrict_self: Unsupported("not implemented yet"),
    447 => memfd_secret: Unsupported("secret memory cannot be shared with the host by design"),
    448 => process_mrelease: Unsupported("not implemented yet"),
    449 => futex_waitv: Local,
    450 => set_mempolicy_home_node: Unsupported("not implemented yet"),
    451 => cachestat: Unsupported("not implemented yet"),
    452 => fchmodat2: Offload,
    453 => map_shadow_stack: Unsupported("not implemented yet"),
    454 => futex_wake: Unsupported("not implemented yet"),
    455 => futex_wait: Unsupported("not implemented yet"),
    456 => futex_requeue: Unsupported("not implemented yet"),
    457 => statmount: Unsupported("the job cannot change or inspect the host's mounts"),
    458 => listmount: Unsupported("the job cannot change or inspect the host's mounts"),
    459 => lsm_get_self_attr: Unsupported("not implemented yet"),
    460 => lsm_set_self_attr: Unsupported("not implemented yet"),
    461 => lsm_list_modules: Unsupported("not implemented yet"),
    462 => mseal: Unsupported("not implemented yet"),
    463 => setxattrat: Unsupported("the *xattrat calls of Linux 6.13 are not offloaded yet (the older xattr calls are)"),
    464 => getxattrat: Unsupported("the *xattrat calls of Linux 6.13 are not offloaded yet (the older xattr calls are)"),
    465 => listxattrat: Unsupported("the *xattrat calls of Linux 6.13 are not offloaded yet (the older xattr calls are)"),
    466 => removexattrat: Unsupported("the *xattrat calls of Linux 6.13 are not offloaded yet (the older xattr calls are)"),
    467 => open_tree_attr: Unsupported("the job cannot change or inspect the host's mounts"),
}

/// The restart code of may-block call `number` cut short by a signal (interrupted while it
/// waited, or kept from waiting: [`crate::req_flags::NO_BLOCK`]), Linux's: the poll family is
/// interrupted whatever SA_RESTART says (ERESTARTNOHAND), the rest restart with it
/// (ERESTARTSYS). Returned negated, as a syscall result.
pub fn restart_code(number: u64) -> i64 {
    match number {
        nr::poll
        | nr::ppoll
        | nr::select
        | nr::pselect6
        | nr::epoll_wait
        | nr::epoll_pwait
        | nr::epoll_pwait2 => -crate::errno::ERESTARTNOHAND,
        _ => -crate::errno::ERESTARTSYS,
    }
}

/// Offloaded syscalls that may block indefinitely (on a pipe, socket, terminal or lock): the
/// ones a signal must be able to interrupt while they wait on the host.
pub fn may_block(number: u64) -> bool {
    matches!(
        number,
        nr::read
            | nr::readv
            | nr::write
            | nr::writev
            | nr::recvfrom
            | nr::recvmsg
            | nr::recvmmsg
            | nr::sendto
            | nr::sendmsg
            | nr::sendmmsg
            | nr::accept
            | nr::accept4
            | nr::connect
            | nr::poll
            | nr::ppoll
            | nr::select
            | nr::pselect6
            | nr::epoll_wait
            | nr::epoll_pwait
            | nr::epoll_pwait2
            | nr::flock
            | nr::splice
            | nr::tee
    )
}
