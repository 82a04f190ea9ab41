//! Host signals (issue #7): signals sent to `lwk-vmm` reach the program.
//!
//! - [`block_forwarded`] blocks the forwarded signals (SIGHUP, SIGINT, SIGQUIT, SIGUSR1,
//!   SIGUSR2, SIGTERM, SIGCONT, SIGWINCH: `offload_abi::hostsig::FORWARDED`) in the main
//!   thread before any other thread exists, so every thread inherits the mask and no handler
//!   ever runs for them: the kernel keeps them pending for the process.
//! - [`serve`] runs on a dedicated service thread (pinned away from the vCPU cores when there
//!   are cores to spare) that reads them from a signalfd. For each one it sets bit `sig - 1` of
//!   `HostSignals::pending` in guest RAM with an atomic OR and raises vector
//!   `hostsig::VECTOR` on vCPU 0 with `KVM_SIGNAL_MSI` (address 0xfee00000: destination APIC
//!   id 0, fixed delivery; data: the vector). The in-kernel LAPIC delivers it even while the
//!   program spins in ring 3.
//! - If the signal's bit is set in `HostSignals::interrupting` (read from guest memory, checked,
//!   at that moment), offloaded host calls in flight are interrupted: the service thread sends
//!   [`interrupt_signal`] (a real-time signal whose handler is a no-op installed without
//!   `SA_RESTART`) to each host thread that is serving an offload (the vCPU thread for a
//!   synchronous offload, the worker for an asynchronous one: each registers itself in
//!   [`Slots`] while it runs the call), and repeats every
//!   millisecond or so until that offload has ended (the thread may have been signalled just
//!   before it entered the blocking call). The blocking host call returns EINTR, which the
//!   servicer passes to the LWK as -EINTR; no servicer handler retries on EINTR.
//! - An offload that starts while an interrupting signal is pending (sent, not yet taken by
//!   the LWK) and that may block indefinitely must not wait (the other race of the two): it is
//!   marked `req_flags::NO_BLOCK`, so it runs only if it can complete at once and is otherwise
//!   answered a restart code without running, as Linux's call with a signal pending.
//!
//! The service thread takes no lock that a blocked offload holds: it touches only guest RAM,
//! the VM fd and the offload [`Slots`], whose locks are held for a few instructions and never
//! across a host call.
//!
//! Other signals are left as they were: SIGKILL ends lwk-vmm and with it the job; SIGPIPE is
//! ignored by the Rust runtime (a write to a closed pipe gives the program EPIPE); SIGTSTP,
//! SIGTTIN, SIGTTOU stop lwk-vmm as a whole (the job with it); SIGALRM, SIGPWR, SIGPROF, ...
//! have their default actions for lwk-vmm itself.

use kvm_ioctls::VmFd;
use offload_abi::{
    BridgeRequest, HostSignals, async_offload, errno, hostsig, layout, op, req_flags,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

/// The forwarded signals, by number.
pub const FORWARDED_SIGNALS: [i32; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGCONT,
    libc::SIGWINCH,
];

const _: () = {
    let mut mask = 0u64;
    let mut i = 0;
    while i < FORWARDED_SIGNALS.len() {
        mask |= 1 << (FORWARDED_SIGNALS[i] - 1);
        i += 1;
    }
    assert!(mask == hostsig::FORWARDED);
};

const PENDING_GPA: u64 = hostsig::GPA + std::mem::offset_of!(HostSignals, pending) as u64;
const INTERRUPTING_GPA: u64 = hostsig::GPA + std::mem::offset_of!(HostSignals, interrupting) as u64;

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it in place with valid
    // signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the forwarded signals in the calling thread. Call it in the main thread before any
/// other thread is spawned: threads inherit the mask, so the signals stay pending for the
/// process until the service thread reads them.
pub fn block_forwarded() {
    let set = forwarded_set();
    // SAFETY: `set` is an initialised sigset_t; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// The real-time signal that interrupts a vCPU thread's blocking host call (distinct from the
/// SIGRTMIN kick that stops vCPU threads at the end of the job).
pub fn interrupt_signal() -> i32 {
    vmm_sys_util::signal::SIGRTMIN() + 1
}

extern "C" fn interrupt_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the no-op handler of [`interrupt_signal`] without `SA_RESTART`, so that a host call
/// it interrupts returns EINTR instead of being restarted by the host kernel.
pub fn install_interrupt_handler() -> std::io::Result<()> {
    // SAFETY: sigaction is plain data; the handler is an `extern "C"` function that does
    // nothing (trivially async-signal-safe); the signal number is a valid real-time signal.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = interrupt_handler as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut act.sa_mask);
        if libc::sigaction(interrupt_signal(), &act, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One offload in flight: slot `i < MAX_VCPUS` is vCPU `i`'s synchronous offload; slots from
/// `MAX_VCPUS` on belong to asynchronous offloads (`crate::offload`), one per call in flight.
#[derive(Debug, Default)]
struct Slot {
    /// The host thread serving it (`None`: no offload in flight).
    thread: Option<libc::pthread_t>,
    /// Offloads begun on this slot; identifies the one in flight.
    seq: u64,
    /// Whether the service thread signalled this offload.
    signalled: bool,
    /// The LWK asked to interrupt the call on this slot (`port::INTERRUPT_SYNC`/`_ASYNC`);
    /// cleared when it ends.
    requested: bool,
}

/// Offloads in flight (one slot per vCPU id, then one per asynchronous call) and the
/// host-signal counters.
#[derive(Debug)]
pub struct Slots {
    slots: Vec<Mutex<Slot>>,
    /// Signals forwarded to the guest.
    pub forwarded: AtomicU64,
    /// Offloads that the service thread interrupted and that returned -EINTR, and those that
    /// were kept from waiting because an interrupting signal was pending when they began
    /// (answered a restart code).
    pub interrupted: AtomicU64,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            slots: (0..Self::LEN)
                .map(|_| Mutex::new(Slot::default()))
                .collect(),
            forwarded: AtomicU64::new(0),
            interrupted: AtomicU64::new(0),
        }
    }
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Slots {
    /// Index of the first asynchronous slot.
    pub const ASYNC_BASE: usize = layout::MAX_VCPUS as usize;
    /// Number of slots.
    pub const LEN: usize = Self::ASYNC_BASE + async_offload::MAX_IN_FLIGHT as usize;

    /// Serves one offload of vCPU `vcpu` on the calling thread with `serve`, marked in flight
    /// so that an interrupting host signal can interrupt it. `req_gpa` is the request in
    /// guest RAM (its op and number decide whether a pending signal keeps it from waiting:
    /// the request is then marked [`req_flags::NO_BLOCK`] before `serve` runs it).
    pub fn serve(&self, mem: &GuestMemoryMmap, vcpu: u32, req_gpa: u64, serve: impl FnOnce()) {
        let field = |offset: usize| GuestAddress(req_gpa + offset as u64);
        let opcode = mem
            .read_obj::<u32>(field(std::mem::offset_of!(BridgeRequest, op)))
            .unwrap_or(0);
        let number = mem
            .read_obj::<u64>(field(std::mem::offset_of!(BridgeRequest, nr)))
            .unwrap_or(u64::MAX);
        let ret_gpa = GuestAddress(req_gpa + std::mem::offset_of!(BridgeRequest, ret) as u64);
        let flags_gpa = field(std::mem::offset_of!(BridgeRequest, flags));
        // Only vCPU ids have synchronous slots (a bigger id served without one is simply not
        // interruptible).
        let index = (vcpu < layout::MAX_VCPUS).then_some(vcpu as usize);
        self.interruptible(mem, index, opcode, number, |no_block| {
            if no_block {
                // Outside guest RAM there is no request to mark (the servicer ignores such
                // pages too).
                let flags = mem.read_obj::<u32>(flags_gpa).unwrap_or(0);
                let _ = mem.write_obj(flags | req_flags::NO_BLOCK, flags_gpa);
            }
            serve();
            mem.read_obj::<i64>(ret_gpa).unwrap_or(0)
        });
    }

    /// Runs one offload (operation `opcode`, syscall `number`) on the calling thread as the
    /// call in flight on slot `index`, so that an interrupting host signal can interrupt it.
    /// `serve(no_block)` executes it and returns its `ret`. `no_block` is true when the call
    /// may block and an interrupting signal is already pending (or the LWK asked to interrupt
    /// it): nobody would interrupt it once it waits, so it must not wait
    /// ([`req_flags::NO_BLOCK`]: it runs if it can complete at once, as Linux's would with a
    /// signal pending, and is otherwise answered with a restart code that the signal's delivery
    /// turns into EINTR or a restart).
    pub fn interruptible(
        &self,
        mem: &GuestMemoryMmap,
        index: Option<usize>,
        opcode: u32,
        number: u64,
        serve: impl FnOnce(bool) -> i64,
    ) -> i64 {
        // Only the program's syscalls are interrupted; the LWK's own requests (logging, time,
        // zeroing memory) always run to completion.
        let slot = index
            .and_then(|i| self.slots.get(i))
            .filter(|_| opcode == op::SYSCALL);
        let Some(slot) = slot else {
            return serve(false);
        };
        let requested = {
            let mut s = lock(slot);
            // SAFETY: pthread_self has no preconditions.
            s.thread = Some(unsafe { libc::pthread_self() });
            s.seq = s.seq.wrapping_add(1);
            s.signalled = false;
            s.requested
        };
        // Registered first, then the pending set read: either this reads a signal the service
        // thread has set, or the service thread sees this offload in flight and signals it.
        let pending = pending_interrupting(mem);
        // A call that may block, entered while an interrupting signal is pending (or after the
        // LWK asked to interrupt it), must not wait.
        let no_block = (pending != 0 || requested) && offload_abi::syscalls::may_block(number);
        let ret = serve(no_block);
        let signalled = {
            let mut s = lock(slot);
            s.thread = None;
            s.requested = false;
            s.signalled
        };
        let cut_short = (-516..=-512).contains(&ret); // a restart code: it would have waited
        if (no_block && cut_short) || (signalled && ret == -errno::EINTR) {
            self.interrupted.fetch_add(1, Ordering::Relaxed);
        }
        ret
    }

    /// The LWK asks to interrupt the call on slot `index` (it has a signal for the thread that
    /// made it). A call in flight is signalled, repeatedly for up to 2 ms in case it had not
    /// blocked yet when the first signal came (blocked, it returns EINTR at once; running, it
    /// completes normally). With no call in flight nothing happens, unless `reserved` (a call
    /// made on this slot that has not started yet): it then must not wait when it starts, if
    /// it may block (`req_flags::NO_BLOCK`). Runs on the asking vCPU's thread.
    pub fn request_interrupt(&self, index: usize, reserved: bool) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let seq = {
            let mut s = lock(slot);
            match s.thread {
                Some(_) => {
                    s.requested = true;
                    s.seq
                }
                None => {
                    s.requested |= reserved;
                    return;
                }
            }
        };
        let deadline = std::time::Instant::now() + Duration::from_millis(2);
        while self.kick(index, seq, false) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Forgets an interruption request on slot `index` (its call ended without reaching
    /// [`Slots::interruptible`]).
    pub fn clear_request(&self, index: usize) {
        if let Some(slot) = self.slots.get(index) {
            lock(slot).requested = false;
        }
    }

    /// The offloads in flight now: (slot index, sequence number).
    pub(crate) fn in_flight(&self) -> Vec<(usize, u64)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = lock(s);
                s.thread.map(|_| (i, s.seq))
            })
            .collect()
    }

    /// Signals the thread serving offload `seq` of slot `index` if that offload is still in
    /// flight, for a host signal (an -EINTR result is then counted in `interrupted`); returns
    /// whether it was in flight.
    pub(crate) fn interrupt(&self, index: usize, seq: u64) -> bool {
        self.kick(index, seq, true)
    }

    /// The same for the end of the job (not counted as a host-signal interruption).
    pub(crate) fn interrupt_for_exit(&self, index: usize, seq: u64) -> bool {
        self.kick(index, seq, false)
    }

    fn kick(&self, index: usize, seq: u64, for_signal: bool) -> bool {
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let mut s = lock(slot);
        match s.thread {
            Some(t) if s.seq == seq => {
                s.signalled |= for_signal;
                // SAFETY: `t` is the thread serving this offload; it cannot end the offload
                // (and so cannot exit) without this lock, which we hold, so the pthread_t is
                // alive. The signal's handler is a no-op.
                unsafe { libc::pthread_kill(t, interrupt_signal()) };
                true
            }
            _ => false,
        }
    }
}

/// `pending & interrupting` of the host-signal block (0 if it cannot be read).
fn pending_interrupting(mem: &GuestMemoryMmap) -> u64 {
    let pending = mem.read_obj::<u64>(GuestAddress(PENDING_GPA)).unwrap_or(0);
    let interrupting = mem
        .read_obj::<u64>(GuestAddress(INTERRUPTING_GPA))
        .unwrap_or(0);
    pending & interrupting
}

/// Writes the initial host-signal block (nothing pending, the default interrupting set).
pub fn init_block(mem: &GuestMemoryMmap) -> Result<(), vm_memory::GuestMemoryError> {
    mem.write_obj(0u64, GuestAddress(PENDING_GPA))?;
    mem.write_obj(
        hostsig::DEFAULT_INTERRUPTING,
        GuestAddress(INTERRUPTING_GPA),
    )
}

/// Sets `bit` in `HostSignals::pending` with an atomic OR on the host mapping of guest RAM.
fn post(mem: &GuestMemoryMmap, bit: u64) -> bool {
    use vm_memory::VolatileMemory;
    let Ok(slice) = mem.get_slice(GuestAddress(PENDING_GPA), 8) else {
        return false;
    };
    match slice.get_atomic_ref::<AtomicU64>(0) {
        Ok(word) => {
            word.fetch_or(bit, Ordering::SeqCst);
            true
        }
        Err(_) => false,
    }
}

/// Raises `vector` on the LAPIC with id `apic_id` (= vCPU id) through the in-kernel irqchip:
/// an MSI with fixed delivery, physical destination (address 0xfee00000 | id << 12; the ids
/// this VMM creates are below 256). Returns KVM's answer: `Ok(n)`, `n > 0` if delivered.
pub fn signal_msi(vm: &VmFd, apic_id: u32, vector: u8) -> Result<i32, kvm_ioctls::Error> {
    let msi = kvm_bindings::kvm_msi {
        address_lo: 0xfee0_0000 | ((apic_id & 0xff) << 12),
        address_hi: 0,
        data: u32::from(vector),
        ..Default::default()
    };
    vm.signal_msi(msi)
}

/// Raises `hostsig::VECTOR` on vCPU 0 (x2APIC id 0) through the in-kernel irqchip.
fn raise(vm: &VmFd) {
    match signal_msi(vm, 0, hostsig::VECTOR) {
        Ok(n) if n > 0 => {}
        // 0: the LAPIC did not accept it (not yet enabled at boot); the LWK raises the vector
        // itself when it finds bits pending after enabling its LAPIC.
        Ok(_) => tracing::debug!("host signal interrupt not accepted by vCPU 0's LAPIC (yet)"),
        Err(e) => tracing::warn!("cannot raise the host-signal interrupt: {e}"),
    }
}

/// The service thread's resources: a signalfd for the forwarded signals and the stop event.
pub struct Service {
    sigfd: OwnedFd,
    /// Written once to stop [`Service::run`].
    pub stop: EventFd,
}

impl Service {
    /// Opens the signalfd (close-on-exec, non-blocking) and the stop event.
    pub fn new() -> std::io::Result<Self> {
        let set = forwarded_set();
        // SAFETY: `set` is an initialised sigset_t; -1 asks for a new fd.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by signalfd and is owned by nobody else.
        let sigfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let stop = EventFd::new(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)?;
        Ok(Service { sigfd, stop })
    }

    /// Forwards signals until `stop` is written. `avoid` are the vCPU cores: the thread runs
    /// on the other allowed cores if there are any.
    pub fn run(&self, mem: &GuestMemoryMmap, vm: &VmFd, slots: &Slots, avoid: &[usize]) {
        pin_away_from(avoid);
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.sigfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stop.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two pollfds for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                tracing::error!(
                    "host signals: poll failed: {}",
                    std::io::Error::last_os_error()
                );
                return;
            }
            if fds[1].revents != 0 {
                return;
            }
            while let Some(sig) = self.read_one() {
                self.forward(mem, vm, slots, sig);
            }
        }
    }

    fn read_one(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is writable for `size` bytes; the fd is our signalfd.
        let n = unsafe {
            libc::read(
                self.sigfd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n == size as isize).then_some(info.ssi_signo as i32)
    }

    fn forward(&self, mem: &GuestMemoryMmap, vm: &VmFd, slots: &Slots, sig: i32) {
        if !(1..=64).contains(&sig) {
            return;
        }
        let bit = 1u64 << (sig - 1);
        if bit & hostsig::FORWARDED == 0 || !post(mem, bit) {
            return;
        }
        slots.forwarded.fetch_add(1, Ordering::Relaxed);
        tracing::info!("forwarding signal {sig} to the program");
        raise(vm);
        // The LWK's current view of which signals must interrupt a blocked call (hostile data:
        // only its bits are used).
        let interrupting = mem
            .read_obj::<u64>(GuestAddress(INTERRUPTING_GPA))
            .unwrap_or(0);
        if interrupting & bit == 0 {
            return;
        }
        let mut targets = slots.in_flight();
        let mut wait = Duration::from_micros(200);
        let stopped = || {
            let mut fd = libc::pollfd {
                fd: self.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, zero timeout.
            unsafe { libc::poll(&mut fd, 1, 0) > 0 }
        };
        // Re-signal each offload until it has ended: a signal that lands just before the
        // thread enters its blocking call is lost on the no-op handler.
        while !targets.is_empty() && !stopped() {
            targets.retain(|&(i, seq)| slots.interrupt(i, seq));
            if targets.is_empty() {
                break;
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(20));
        }
    }
}

/// Pins the calling thread to the allowed cores not in `avoid`, if there are any.
fn pin_away_from(avoid: &[usize]) {
    let others: Vec<usize> = crate::job::allowed_cpus()
        .into_iter()
        .filter(|c| !avoid.contains(c))
        .collect();
    set_affinity(&others);
}

/// Restricts the calling thread to `cores` (nothing happens for an empty list).
pub fn set_affinity(cores: &[usize]) {
    if cores.is_empty() {
        return;
    }
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cores {
        if c < libc::CPU_SETSIZE as usize {
            // SAFETY: `c` < CPU_SETSIZE.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload_abi::syscalls::nr;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    #[test]
    fn post_sets_bits_and_init_writes_the_default_set() {
        let m = mem();
        init_block(&m).unwrap();
        assert!(post(&m, 1 << 1));
        assert!(post(&m, 1 << 14));
        assert_eq!(
            m.read_obj::<u64>(GuestAddress(PENDING_GPA)).unwrap(),
            (1 << 1) | (1 << 14)
        );
        assert_eq!(pending_interrupting(&m), (1 << 1) | (1 << 14));
        m.write_obj(0u64, GuestAddress(INTERRUPTING_GPA)).unwrap();
        assert_eq!(pending_interrupting(&m), 0);
    }

    #[test]
    fn blocking_offload_entered_with_a_signal_pending_must_not_wait() {
        let m = mem();
        init_block(&m).unwrap();
        let gpa = 0x8000;
        let flags_gpa = GuestAddress(gpa + std::mem::offset_of!(BridgeRequest, flags) as u64);
        let write = |nr: u64| {
            let req = BridgeRequest {
                op: op::SYSCALL,
                nr,
                ..Default::default()
            };
            m.write_obj(offload_host::wire::Wire(req), GuestAddress(gpa))
                .unwrap();
        };
        let no_block = || m.read_obj::<u32>(flags_gpa).unwrap() & req_flags::NO_BLOCK != 0;
        write(nr::read);
        let slots = Slots::default();
        let mut served = 0;
        slots.serve(&m, 0, gpa, || served += 1);
        assert_eq!(served, 1);
        assert!(!no_block(), "nothing pending: the call may wait");
        post(&m, 1 << (libc::SIGINT - 1));
        let ret_gpa = GuestAddress(gpa + std::mem::offset_of!(BridgeRequest, ret) as u64);
        slots.serve(&m, 0, gpa, || {
            served += 1;
            // The servicer's answer when it would have waited.
            m.write_obj(-errno::ERESTARTSYS, ret_gpa).unwrap();
        });
        assert_eq!(served, 2, "served, marked");
        assert!(no_block(), "a signal pending: the call must not wait");
        assert_eq!(
            slots.interrupted.load(Ordering::Relaxed),
            1,
            "counted: cut short"
        );
        // A call that does not block runs unmarked; so does any call for a pending signal
        // that does not interrupt (SIGWINCH).
        write(nr::openat);
        slots.serve(&m, 0, gpa, || served += 1);
        assert_eq!(served, 3);
        assert!(!no_block());
        m.write_obj(1u64 << (libc::SIGWINCH - 1), GuestAddress(PENDING_GPA))
            .unwrap();
        write(nr::read);
        slots.serve(&m, 0, gpa, || served += 1);
        assert_eq!(served, 4);
        assert!(!no_block());
        assert!(slots.in_flight().is_empty());
    }

    #[test]
    fn a_thread_blocked_in_read_is_interrupted_and_sees_eintr() {
        install_interrupt_handler().unwrap();
        let m = mem();
        init_block(&m).unwrap();
        let slots = Slots::default();
        let req = BridgeRequest {
            op: op::SYSCALL,
            nr: nr::read,
            ..Default::default()
        };
        m.write_obj(offload_host::wire::Wire(req), GuestAddress(0x8000))
            .unwrap();
        let (r, w) = {
            let mut p = [0; 2];
            // SAFETY: `p` has room for two fds.
            assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
            // SAFETY: both fds are new and owned here.
            unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
        };
        let result = std::sync::Mutex::new(0isize);
        std::thread::scope(|s| {
            s.spawn(|| {
                slots.serve(&m, 3, 0x8000, || {
                    let mut b = [0u8; 1];
                    // SAFETY: `b` is writable for 1 byte.
                    let n = unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
                    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                    *result.lock().unwrap() = if n < 0 { -(e as isize) } else { n };
                })
            });
            // Wait until the reader is in flight, then interrupt it as the service thread does.
            while slots.in_flight().is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut targets = slots.in_flight();
            while !targets.is_empty() {
                targets.retain(|&(i, seq)| slots.interrupt(i, seq));
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        drop(w);
        assert_eq!(*result.lock().unwrap(), -(libc::EINTR as isize));
    }
}
