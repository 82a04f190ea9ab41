//! The records the LWK publishes about its processes and threads for the host's /proc view
//! (`offload_abi::ProcTable` at `layout::PROC_TABLE_GPA`; docs/DESIGN.md "The /proc view").
//!
//! Plain volatile stores of whole records into reserved guest RAM, made where the state they
//! describe changes (fork, exec, exit, reaping, setpgid/setsid, reparenting, thread start and
//! end, a thread halting and waking): no VM exit, a few ring-0 instructions each. The host
//! reads the table while the guest runs and checks every value it uses. Process records are
//! written under the process table's lock (the kernel lock today); a thread record only by
//! its own context (state) or under that lock (start and end).

use crate::Kernel;
use crate::process::Life;
use offload_abi::{PROC_RECORDS, ProcRecord, ProcTable, THREAD_RECORDS, ThreadRecord, layout};

fn table() -> *mut ProcTable {
    crate::phys::virt(layout::PROC_TABLE_GPA) as *mut ProcTable
}

fn write_proc(i: usize, r: ProcRecord) {
    if i >= PROC_RECORDS {
        return;
    }
    // SAFETY: the table's range is guest RAM reserved by the boot layout, mapped by the
    // direct map and never handed out by the frame allocator; `i` is in bounds; a volatile
    // store keeps the host-visible write. The only Rust references into it are `time`'s
    // atomics over the separate `cpu` array.
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*table()).procs[i]), r);
    }
}

fn write_thread(slot: usize, r: ThreadRecord) {
    if slot >= THREAD_RECORDS {
        return;
    }
    // SAFETY: as in `write_proc`.
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*table()).threads[slot]), r);
    }
}

/// Publishes process `p` of the table as it is now (or frees its record when it is gone).
pub fn publish(k: &Kernel, p: usize) {
    let Some(x) = k.procs.get(p) else {
        write_proc(p, ProcRecord::default());
        return;
    };
    let mut r = ProcRecord {
        pid: x.pid,
        ppid: x.ppid,
        pgid: x.pgid,
        sid: x.sid,
        threads: x.threads,
        ..ProcRecord::default()
    };
    if x.life == Life::Zombie {
        r.state = u32::from(b'Z');
        r.threads = 0;
    } else {
        r.state = u32::from(b'R');
        if let Some(mm) = k.mms.get(x.mm) {
            r.cr3 = mm.aspace.pml4;
            r.stack = mm.layout;
            r.start_brk = mm.brk_start();
        }
    }
    write_proc(p, r);
}

/// Context `slot` runs thread `tid` of process `pid` on vCPU `cpu`.
pub fn thread_bound(slot: usize, tid: u32, pid: u32, cpu: usize) {
    write_thread(
        slot,
        ThreadRecord {
            tid,
            pid,
            state: offload_abi::thread_state::RUNNING,
            cpu: cpu as u32,
        },
    );
}

/// The thread in context `slot` ended: the context runs none.
pub fn thread_ended(slot: usize) {
    write_thread(slot, ThreadRecord::default());
}

/// The thread in context `slot` waits (`true`) or runs again. One store (this is on the
/// path of every offloaded call and every wait).
#[inline]
pub fn thread_sleeping(slot: usize, sleeping: bool) {
    use offload_abi::thread_state::{RUNNING, SLEEPING};
    if slot >= THREAD_RECORDS {
        return;
    }
    // SAFETY: as in `write_proc`.
    unsafe {
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!((*table()).threads[slot].state),
            if sleeping { SLEEPING } else { RUNNING },
        );
    }
}
