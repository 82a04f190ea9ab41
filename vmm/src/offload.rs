//! Offloaded calls in the VMM: the synchronous doorbell (`port::OFFLOAD`, served in the
//! calling vCPU's thread) and asynchronous offloads (`port::OFFLOAD_ASYNC`, served by worker
//! threads; the contract is `offload_abi::async_offload`).
//!
//! Concurrency (docs/DESIGN.md "Concurrent offloads"): the port bus has no lock, and every
//! thread that serves offloads shares one [`Servicer`], whose state sits behind short locks
//! that are never held across a host call. A host call that blocks holds up only the thread
//! it runs on: its own vCPU (synchronous) or its worker (asynchronous).
//!
//! Every offload of the program registers the host thread that runs it in [`Slots`] (slot =
//! vCPU id for synchronous calls, one of `async_offload::MAX_IN_FLIGHT` further slots for
//! asynchronous ones), so that host signals (`signals`) and the end of the job can interrupt
//! it. The asynchronous slots are also the in-flight bound.

use crate::signals::{self, Slots};
use kvm_ioctls::VmFd;
use lwk_devices::{AsyncHandler, DoorbellHandler, InterruptHandler};
use offload_abi::syscalls::{Disposition, disposition};
use offload_abi::{AsyncSlot, BridgeRequest, async_offload, errno, layout, op, req_flags};
use offload_host::wire::Wire;
use offload_host::{LogSink, Servicer};
use serde::Serialize;
use std::io::Write as _;
use std::mem::offset_of;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileMemory};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The LWK's log messages, through `tracing` (errors always, the rest at `-v`), and the
/// `--trace` lines, each written whole under the writer's lock (threads serving offloads
/// concurrently never interleave inside a line).
pub struct LwkLog {
    trace: Option<Mutex<Box<dyn std::io::Write + Send>>>,
}

impl LwkLog {
    /// A log that writes `--trace` lines to `trace`, if any.
    pub fn new(trace: Option<Box<dyn std::io::Write + Send>>) -> Self {
        LwkLog {
            trace: trace.map(Mutex::new),
        }
    }
}

impl LogSink for LwkLog {
    fn trace(&self, line: &str) {
        if let Some(out) = self.trace.as_ref() {
            // A trace that cannot be written (full disk, closed pipe) must not end the job.
            let _ = writeln!(lock(out), "{line}");
        }
    }

    fn log(&self, level: u64, message: &[u8]) {
        let text = String::from_utf8_lossy(message);
        if level == 0 {
            tracing::error!("[lwk] {text}");
        } else {
            tracing::info!("[lwk] {text}");
        }
    }
}

/// The synchronous offload doorbell's handler: serves vCPU `i`'s bridge page in vCPU `i`'s
/// thread (the fast path: no thread hop, no lock shared with other vCPUs' calls).
pub struct SyncOffload {
    /// Guest RAM.
    pub mem: GuestMemoryMmap,
    /// The job's servicer.
    pub servicer: Arc<Servicer>,
    /// Where LWK messages and trace lines go.
    pub log: Arc<LwkLog>,
    /// Offloads in flight, for interruption by host signals.
    pub slots: Arc<Slots>,
}

impl DoorbellHandler for SyncOffload {
    fn ring(&self, vcpu: u32) {
        if vcpu >= layout::MAX_VCPUS {
            return;
        }
        let gpa = layout::BRIDGE_GPA + u64::from(vcpu) * 4096;
        self.slots.serve(&self.mem, vcpu, gpa, || {
            self.servicer.serve_at(&self.mem, gpa, &*self.log)
        });
    }
}

/// Tells a vCPU that an asynchronous offload it submitted has completed.
pub trait Notifier: Send + Sync {
    /// Raise `async_offload::VECTOR` on vCPU `vcpu`.
    fn notify(&self, vcpu: u32);
}

/// The KVM notifier: an MSI through the in-kernel irqchip to the vCPU's LAPIC.
pub struct MsiNotifier(pub Arc<VmFd>);

impl Notifier for MsiNotifier {
    fn notify(&self, vcpu: u32) {
        match signals::signal_msi(&self.0, vcpu, async_offload::VECTOR) {
            Ok(n) if n > 0 => {}
            // Not accepted (the LAPIC is not enabled yet): `done` is set all the same, and the
            // interrupt is documented as a hint.
            Ok(_) => tracing::debug!("async offload interrupt not accepted by vCPU {vcpu}"),
            Err(e) => tracing::warn!("cannot raise the async offload interrupt: {e}"),
        }
    }
}

/// What the asynchronous offloads of a job did (`--stats`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AsyncCounts {
    /// Submissions (writes to the async port).
    pub submitted: u64,
    /// Calls executed on a worker and completed.
    pub completed: u64,
    /// Completed at once without running: in-flight limit (-EAGAIN), bad op (-EINVAL), not
    /// offloaded (-ENOSYS), job ending (-EINTR).
    pub refused: u64,
    /// Dropped: the slot page is not inside guest RAM (nowhere to answer).
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    completed: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
}

struct Inner {
    mem: GuestMemoryMmap,
    servicer: Arc<Servicer>,
    log: Arc<dyn LogSink>,
    slots: Arc<Slots>,
    notifier: Arc<dyn Notifier>,
    /// Host cores the workers run on (empty: where the submitting thread runs).
    cores: Vec<usize>,
    /// Free asynchronous slot indices in `slots`; empty = `MAX_IN_FLIGHT` calls in flight.
    free: Mutex<Vec<usize>>,
    /// Page GPA -> slot index of each call submitted and not completed (for
    /// `port::INTERRUPT_ASYNC`).
    pages: Mutex<std::collections::HashMap<u64, usize>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stopping: AtomicBool,
    counts: Counters,
}

/// Asynchronous offloads of one job: the handler of `port::OFFLOAD_ASYNC` (a clone goes to the
/// bus; the job keeps one to end them).
#[derive(Clone)]
pub struct AsyncOffloads {
    inner: Arc<Inner>,
}

const REQ: u64 = offset_of!(AsyncSlot, req) as u64;
const RET: u64 = REQ + offset_of!(BridgeRequest, ret) as u64;
const VAL: u64 = REQ + offset_of!(BridgeRequest, val) as u64;
const DONE: u64 = offset_of!(AsyncSlot, done) as u64;
const VCPU: u64 = offset_of!(AsyncSlot, vcpu) as u64;

impl AsyncOffloads {
    /// The asynchronous offloads of a job that runs against `servicer` in `mem`. Workers run
    /// on `cores` (empty: where the submitting vCPU thread runs, i.e. its pinned core).
    pub fn new(
        mem: GuestMemoryMmap,
        servicer: Arc<Servicer>,
        log: Arc<dyn LogSink>,
        slots: Arc<Slots>,
        notifier: Arc<dyn Notifier>,
        cores: Vec<usize>,
    ) -> Self {
        AsyncOffloads {
            inner: Arc::new(Inner {
                mem,
                servicer,
                log,
                slots,
                notifier,
                cores,
                // Popped from the end: the lowest index first.
                free: Mutex::new((Slots::ASYNC_BASE..Slots::LEN).rev().collect()),
                pages: Mutex::new(std::collections::HashMap::new()),
                workers: Mutex::new(Vec::new()),
                stopping: AtomicBool::new(false),
                counts: Counters::default(),
            }),
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> AsyncCounts {
        let c = &self.inner.counts;
        AsyncCounts {
            submitted: c.submitted.load(Ordering::Relaxed),
            completed: c.completed.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// Calls in flight now.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        Slots::LEN - Slots::ASYNC_BASE - lock(&self.inner.free).len()
    }

    /// Ends the asynchronous offloads when the job ends (after the vCPUs have stopped: no new
    /// submissions). Calls that have not started complete with -EINTR; calls blocked on the
    /// host are interrupted with the host-signal interruption (`signals::interrupt_signal`,
    /// repeated every millisecond, since a worker may be signalled just before it enters its
    /// host call) and their workers joined. Returns false if some worker was still running
    /// after `patience` (it is left detached: it owns clones of what it uses, and the caller
    /// then keeps guest RAM mapped, whose clone alone does not keep a mapping the VMM made
    /// itself; the process is about to exit).
    pub fn shutdown(&self, patience: Duration) -> bool {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + patience;
        loop {
            let running: Vec<JoinHandle<()>> = {
                let mut workers = lock(&inner.workers);
                let all = std::mem::take(&mut *workers);
                let (done, running): (Vec<_>, Vec<_>) =
                    all.into_iter().partition(|h| h.is_finished());
                for h in done {
                    let _ = h.join();
                }
                running
            };
            if running.is_empty() {
                return true;
            }
            lock(&inner.workers).extend(running);
            if Instant::now() > deadline {
                tracing::warn!(
                    "{} asynchronous offload(s) still blocked on the host at the end of the job",
                    lock(&inner.workers).len()
                );
                return false;
            }
            for (index, seq) in inner.slots.in_flight() {
                if index >= Slots::ASYNC_BASE {
                    inner.slots.interrupt_for_exit(index, seq);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl AsyncHandler for AsyncOffloads {
    fn submit(&self, vcpu: u32, pfn: u32) {
        Inner::submit(&self.inner, vcpu, pfn);
    }
}

impl InterruptHandler for AsyncOffloads {
    fn interrupt_sync(&self, vcpu: u32) {
        if vcpu < offload_abi::layout::MAX_VCPUS {
            // Kept even when the call has not reached the VMM yet (the LWK marks the thread as
            // in a synchronous call before it leaves the VM): it then starts marked NO_BLOCK.
            // A request that comes after the call ended costs the vCPU's next may-block call
            // one restart at most.
            self.inner.slots.request_interrupt(vcpu as usize, true);
        }
    }

    fn interrupt_async(&self, pfn: u32) {
        let index = lock(&self.inner.pages)
            .get(&(u64::from(pfn) << 12))
            .copied();
        if let Some(index) = index {
            self.inner.slots.request_interrupt(index, true);
        }
    }
}

impl Inner {
    fn submit(this: &Arc<Self>, vcpu: u32, pfn: u32) {
        this.counts.submitted.fetch_add(1, Ordering::Relaxed);
        let gpa = u64::from(pfn) << 12;
        // The one read of the request (the guest may change the page afterwards). A slot that
        // is not entirely inside guest RAM cannot be answered.
        let Ok(Wire(slot)) = this.mem.read_obj::<Wire<AsyncSlot>>(GuestAddress(gpa)) else {
            this.counts.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("async offload from vCPU {vcpu}: page {gpa:#x} is not guest RAM");
            return;
        };
        let req = slot.req;
        let refusal = if req.op != op::SYSCALL {
            Some(-errno::EINVAL)
        } else if disposition(req.nr) != Disposition::Offload {
            Some(-errno::ENOSYS)
        } else if this.stopping.load(Ordering::SeqCst) {
            Some(-errno::EINTR)
        } else {
            None
        };
        if let Some(ret) = refusal {
            return this.refuse(gpa, vcpu, ret);
        }
        let Some(index) = lock(&this.free).pop() else {
            return this.refuse(gpa, vcpu, -errno::EAGAIN);
        };
        lock(&this.pages).insert(gpa, index);
        let worker = this.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("offload{}", index - Slots::ASYNC_BASE))
            .spawn(move || worker.work(index, vcpu, gpa, req));
        match spawned {
            Ok(handle) => {
                let mut workers = lock(&this.workers);
                // Finished workers' handles are dropped here (their threads are gone).
                workers.retain(|h| !h.is_finished());
                workers.push(handle);
            }
            Err(e) => {
                tracing::warn!("cannot start an async offload worker: {e}");
                lock(&this.pages).remove(&gpa);
                this.slots.clear_request(index);
                lock(&this.free).push(index);
                this.refuse(gpa, vcpu, -errno::EAGAIN);
            }
        }
    }

    fn refuse(&self, gpa: u64, vcpu: u32, ret: i64) {
        self.counts.refused.fetch_add(1, Ordering::Relaxed);
        self.complete(gpa, vcpu, ret, [0; 2]);
    }

    /// A worker: runs the request as the call in flight on async slot `index`.
    fn work(&self, index: usize, vcpu: u32, gpa: u64, mut req: BridgeRequest) {
        // Off the submitting vCPU's core (the thread inherited its pinning).
        signals::set_affinity(&self.cores);
        let (opcode, number) = (req.op, req.nr);
        if self.stopping.load(Ordering::SeqCst) {
            // Refused before it ran: the job ends.
            req.ret = -errno::EINTR;
            req.val = [0; 2];
        } else {
            self.slots
                .interruptible(&self.mem, Some(index), opcode, number, |no_block| {
                    if no_block {
                        req.flags |= req_flags::NO_BLOCK;
                    }
                    self.servicer.serve(&self.mem, &mut req, &*self.log);
                    req.ret
                });
        }
        // The slot is free again before the guest can see the completion (so that it may
        // submit again at once without meeting the limit).
        lock(&self.pages).remove(&gpa);
        self.slots.clear_request(index);
        lock(&self.free).push(index);
        self.counts.completed.fetch_add(1, Ordering::Relaxed);
        self.complete(gpa, vcpu, req.ret, req.val);
    }

    /// Writes the result into the slot at `gpa`, then `done` (release), then interrupts `vcpu`.
    fn complete(&self, gpa: u64, vcpu: u32, ret: i64, val: [u64; 2]) {
        let mem = &self.mem;
        // The slot was read whole from guest RAM, so these lie inside it and cannot fail (if
        // they did, there would be nothing else to do).
        let _ = mem.write_obj(ret, GuestAddress(gpa + RET));
        let _ = mem.write_obj(val, GuestAddress(gpa + VAL));
        let _ = mem.write_obj(vcpu, GuestAddress(gpa + VCPU));
        if let Ok(word) = mem.get_slice(GuestAddress(gpa + DONE), 4)
            && let Ok(done) = word.get_atomic_ref::<AtomicU32>(0)
        {
            done.store(async_offload::DONE_COMPLETE, Ordering::Release);
        }
        self.notifier.notify(vcpu);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload_abi::syscalls::nr;
    use offload_host::{FdTable, JobContext, ProcessInfo};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::{UnixListener, UnixStream};

    const MEM: u64 = 1 << 20;

    /// Records completions; at each interrupt it reads the watched slot, so the test sees what
    /// the guest would see when the interrupt arrives.
    struct Recorder {
        mem: GuestMemoryMmap,
        watch: u64,
        seen: Mutex<Vec<(u32, u32, i64)>>,
    }

    impl Notifier for Recorder {
        fn notify(&self, vcpu: u32) {
            let done = self.mem.read_obj::<u32>(GuestAddress(self.watch + DONE));
            let ret = self.mem.read_obj::<i64>(GuestAddress(self.watch + RET));
            lock(&self.seen).push((vcpu, done.unwrap(), ret.unwrap()));
        }
    }

    struct Job {
        mem: GuestMemoryMmap,
        servicer: Arc<Servicer>,
        slots: Arc<Slots>,
        recorder: Arc<Recorder>,
        offloads: AsyncOffloads,
        _listener: UnixListener,
        path: std::path::PathBuf,
    }

    /// A job whose guest fd 3 is a listening AF_UNIX socket (accept(3, NULL, NULL) blocks on
    /// the host and takes no guest pointer) and whose notifier watches the slot at `watch`.
    fn job(name: &str, watch: u64) -> Job {
        signals::install_interrupt_handler().unwrap();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap();
        signals::init_block(&mem).unwrap();
        let path =
            std::env::temp_dir().join(format!("lwk-async-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let fds = FdTable::new(256);
        let host: OwnedFd = listener.try_clone().unwrap().into();
        fds.insert_at(3, host, false).unwrap();
        let root: OwnedFd = std::fs::File::open("/").unwrap().into();
        let servicer = Arc::new(Servicer::new(
            fds,
            JobContext {
                root,
                root_path: "/".into(),
                cwd: b"/".to_vec(),
                exe: b"/bin/prog".to_vec(),
                execfn: Vec::new(),
                process: ProcessInfo::default(),
            },
        ));
        let slots = Arc::new(Slots::default());
        let recorder = Arc::new(Recorder {
            mem: mem.clone(),
            watch,
            seen: Mutex::new(Vec::new()),
        });
        let offloads = AsyncOffloads::new(
            mem.clone(),
            servicer.clone(),
            Arc::new(LwkLog::new(None)),
            slots.clone(),
            recorder.clone(),
            Vec::new(),
        );
        Job {
            mem,
            servicer,
            slots,
            recorder,
            offloads,
            _listener: listener,
            path,
        }
    }

    impl Drop for Job {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Writes a slot as the guest does (done = 0, tag set, garbage in the outputs).
    fn put(mem: &GuestMemoryMmap, gpa: u64, opcode: u32, number: u64, args: [u64; 6]) {
        let slot = AsyncSlot {
            req: BridgeRequest {
                op: opcode,
                nr: number,
                args,
                ret: 0x5555,
                val: [7, 7],
                ..Default::default()
            },
            done: async_offload::DONE_PENDING,
            vcpu: 0xdead,
            tag: 0x1234_5678,
        };
        mem.write_obj(Wire(slot), GuestAddress(gpa)).unwrap();
    }

    fn get(mem: &GuestMemoryMmap, gpa: u64) -> AsyncSlot {
        mem.read_obj::<Wire<AsyncSlot>>(GuestAddress(gpa))
            .unwrap()
            .0
    }

    /// Waits (up to 10 s) until the slot at `gpa` is done, reading `done` as the guest does.
    fn wait_done(mem: &GuestMemoryMmap, gpa: u64) -> AsyncSlot {
        let start = Instant::now();
        loop {
            let word = mem.get_slice(GuestAddress(gpa + DONE), 4).unwrap();
            let done = word.get_atomic_ref::<AtomicU32>(0).unwrap();
            if done.load(Ordering::Acquire) == async_offload::DONE_COMPLETE {
                return get(mem, gpa);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "slot {gpa:#x} never completed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn pfn(gpa: u64) -> u32 {
        (gpa >> 12) as u32
    }

    #[test]
    fn an_async_call_runs_as_the_process_its_slot_names() {
        let page = 0x2_0000;
        let j = job("pid", page);
        assert_eq!(j.servicer.fork_process(0, 42), Ok(0));
        // dup(3) as process 42: its copy of the table has fd 3, the lowest free number is 0.
        put(&j.mem, page, op::SYSCALL, nr::dup, [3, 0, 0, 0, 0, 0]);
        let pid_at = page + std::mem::offset_of!(BridgeRequest, pid) as u64;
        j.mem.write_obj(42u32, GuestAddress(pid_at)).unwrap();
        j.offloads.submit(1, pfn(page));
        assert_eq!(wait_done(&j.mem, page).req.ret, 0);
        let child = j.servicer.process(42).unwrap();
        assert!(child.fds.get(0).is_ok(), "the dup went to process 42");
        let first = j.servicer.process(0).unwrap();
        assert!(first.fds.get(0).is_err(), "not to the first process");
        // A pid the job does not have: ESRCH, nothing done.
        put(&j.mem, page, op::SYSCALL, nr::dup, [3, 0, 0, 0, 0, 0]);
        j.mem.write_obj(7u32, GuestAddress(pid_at)).unwrap();
        j.offloads.submit(1, pfn(page));
        assert_eq!(wait_done(&j.mem, page).req.ret, -errno::ESRCH);
        assert!(first.fds.get(0).is_err());
        assert!(j.offloads.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn a_call_completes_with_ret_then_done_then_the_interrupt() {
        let page = 0x2_0000;
        let j = job("complete", page);
        put(&j.mem, page, op::SYSCALL, nr::dup, [3, 0, 0, 0, 0, 0]);
        j.offloads.submit(2, pfn(page));
        let slot = wait_done(&j.mem, page);
        assert_eq!(slot.req.ret, 0, "dup gives the lowest free guest fd");
        assert_eq!(slot.req.val, [0, 0]);
        assert_eq!(slot.vcpu, 2);
        assert_eq!(slot.tag, 0x1234_5678, "the guest's word is untouched");
        assert!(j.servicer.process(0).unwrap().fds.get(0).is_ok());
        assert!(j.offloads.shutdown(Duration::from_secs(5)));
        // The interrupt went to the submitting vCPU, and when it was raised the guest could
        // already see done = 1 and the result.
        assert_eq!(*lock(&j.recorder.seen), vec![(2, 1, 0)]);
        let c = j.offloads.counts();
        assert_eq!(
            (c.submitted, c.completed, c.refused, c.dropped),
            (1, 1, 0, 0)
        );
    }

    #[test]
    fn a_blocked_call_holds_up_nothing_and_completes_when_the_host_call_returns() {
        let page = 0x2_0000;
        let j = job("blocked", page);
        put(&j.mem, page, op::SYSCALL, nr::accept, [3, 0, 0, 0, 0, 0]);
        j.offloads.submit(1, pfn(page));
        // The port write returned at once; the call is in flight on a worker.
        while j.offloads.in_flight() == 0 || j.slots.in_flight().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(get(&j.mem, page).done, 0);
        // A synchronous offload of another vCPU runs meanwhile (dup of the listener).
        let sync = SyncOffload {
            mem: j.mem.clone(),
            servicer: j.servicer.clone(),
            log: Arc::new(LwkLog::new(None)),
            slots: j.slots.clone(),
        };
        let bridge = layout::BRIDGE_GPA;
        let req = BridgeRequest {
            op: op::SYSCALL,
            nr: nr::dup,
            args: [3, 0, 0, 0, 0, 0],
            ..Default::default()
        };
        j.mem.write_obj(Wire(req), GuestAddress(bridge)).unwrap();
        sync.ring(0);
        let r = j.mem.read_obj::<i64>(GuestAddress(bridge + 72)).unwrap();
        assert_eq!(r, 0, "the synchronous dup ran while accept blocked");
        assert_eq!(get(&j.mem, page).done, 0, "accept still blocked");
        // A connection completes the accept with a new guest fd.
        let _client = UnixStream::connect(&j.path).unwrap();
        let slot = wait_done(&j.mem, page);
        assert_eq!(slot.req.ret, 1);
        assert_eq!(slot.vcpu, 1);
        assert!(j.offloads.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn hostile_submissions_get_their_documented_outcome() {
        let page = 0x2_0000;
        let j = job("hostile", page);
        // Pages outside guest RAM: dropped, nothing written, no interrupt.
        for p in [pfn(MEM), pfn(MEM) + 1, u32::MAX] {
            j.offloads.submit(0, p);
        }
        // An op other than SYSCALL: -EINVAL at once.
        put(&j.mem, page, op::LOG, 0, [0x1000, 8, 0, 0, 0, 0]);
        j.offloads.submit(0, pfn(page));
        let slot = get(&j.mem, page);
        assert_eq!((slot.done, slot.req.ret, slot.vcpu), (1, -errno::EINVAL, 0));
        // A number the table does not offload (kill; an unknown number): -ENOSYS at once.
        for number in [nr::kill, 4000, u64::MAX] {
            put(&j.mem, page, op::SYSCALL, number, [0; 6]);
            j.offloads.submit(3, pfn(page));
            let slot = get(&j.mem, page);
            assert_eq!((slot.done, slot.req.ret, slot.vcpu), (1, -errno::ENOSYS, 3));
        }
        // Bad fds and pointers complete like the synchronous call (EBADF, EFAULT).
        put(
            &j.mem,
            page,
            op::SYSCALL,
            nr::read,
            [99, 0x1000, 8, 0, 0, 0],
        );
        j.offloads.submit(0, pfn(page));
        assert_eq!(wait_done(&j.mem, page).req.ret, -errno::EBADF);
        put(
            &j.mem,
            page,
            op::SYSCALL,
            nr::accept,
            [3, 0xdead_0000, 0x10, 0, 0, 0],
        );
        j.offloads.submit(0, pfn(page));
        assert_eq!(wait_done(&j.mem, page).req.ret, -errno::EFAULT);
        // The last page of RAM works (the slot lies entirely inside it).
        let last = MEM - 4096;
        put(&j.mem, last, op::SYSCALL, nr::dup, [3, 0, 0, 0, 0, 0]);
        j.offloads.submit(0, pfn(last));
        assert!(wait_done(&j.mem, last).req.ret >= 0);
        assert!(j.offloads.shutdown(Duration::from_secs(5)));
        let c = j.offloads.counts();
        assert_eq!(
            (c.submitted, c.dropped, c.refused, c.completed),
            (10, 3, 4, 3)
        );
        assert_eq!(
            lock(&j.recorder.seen).len(),
            7,
            "every answered submission interrupts, dropped ones do not"
        );
    }

    #[test]
    fn the_in_flight_limit_answers_eagain_and_the_job_end_interrupts_blocked_calls() {
        let first = 0x2_0000;
        let j = job("limit", first);
        let max = async_offload::MAX_IN_FLIGHT as u64;
        for i in 0..max {
            let page = first + 4096 * i;
            put(&j.mem, page, op::SYSCALL, nr::accept, [3, 0, 0, 0, 0, 0]);
            j.offloads.submit(0, pfn(page));
        }
        assert_eq!(j.offloads.in_flight(), max as usize);
        let over = first + 4096 * max;
        put(&j.mem, over, op::SYSCALL, nr::accept, [3, 0, 0, 0, 0, 0]);
        j.offloads.submit(1, pfn(over));
        let slot = get(&j.mem, over);
        assert_eq!(
            (slot.done, slot.req.ret, slot.vcpu),
            (1, -errno::EAGAIN, 1),
            "completed before the port write returned"
        );
        for i in 0..max {
            assert_eq!(
                get(&j.mem, first + 4096 * i).done,
                0,
                "all blocked in accept"
            );
        }
        // The job ends with all of them blocked on the host: they are interrupted and joined.
        let start = Instant::now();
        assert!(j.offloads.shutdown(Duration::from_secs(10)));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        for i in 0..max {
            let slot = get(&j.mem, first + 4096 * i);
            assert_eq!((slot.done, slot.req.ret), (1, -errno::EINTR));
        }
        assert_eq!(j.offloads.in_flight(), 0);
        assert_eq!(
            j.slots.interrupted.load(Ordering::Relaxed),
            0,
            "the end of the job is not a host signal"
        );
        // After the end, a submission is refused with -EINTR, never run.
        put(&j.mem, over, op::SYSCALL, nr::accept, [3, 0, 0, 0, 0, 0]);
        j.offloads.submit(0, pfn(over));
        assert_eq!(get(&j.mem, over).req.ret, -errno::EINTR);
        let c = j.offloads.counts();
        assert_eq!((c.completed, c.refused), (max, 2));
    }

    #[test]
    fn a_host_signal_interrupts_the_worker_of_a_blocked_async_call() {
        let page = 0x2_0000;
        let j = job("hostsig", page);
        put(&j.mem, page, op::SYSCALL, nr::accept, [3, 0, 0, 0, 0, 0]);
        j.offloads.submit(0, pfn(page));
        // What the host-signal service thread does for an interrupting signal: signal every
        // thread with an offload in flight until that offload has ended.
        let mut targets = Vec::new();
        while targets.is_empty() {
            targets = j.slots.in_flight();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(targets.iter().all(|&(i, _)| i >= Slots::ASYNC_BASE));
        while !targets.is_empty() {
            targets.retain(|&(i, seq)| j.slots.interrupt(i, seq));
            std::thread::sleep(Duration::from_millis(1));
        }
        let slot = wait_done(&j.mem, page);
        assert_eq!(slot.req.ret, -errno::EINTR);
        assert_eq!(j.slots.interrupted.load(Ordering::Relaxed), 1);
        assert!(j.offloads.shutdown(Duration::from_secs(5)));
    }
}
