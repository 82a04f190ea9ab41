//! TLB shootdown: when the memory manager removes or narrows a user mapping, every other vCPU
//! that may hold the old translation drops it before the frames behind it can be reused.
//!
//! The threads of a program share one address space, each on its own vCPU. Only ring 3 uses
//! user translations (the kernel reaches user memory through the direct map after a software
//! walk), so a CPU must be flushed before it next runs in ring 3, and a CPU that is in ring 3
//! right now must be interrupted. The protocol:
//!
//! - a global generation counts page-table changes that need a flush; each CPU records the
//!   generation it last flushed at and whether it is in ring 3;
//! - a CPU about to enter ring 3 marks itself "in user" and then compares generations,
//!   flushing if it is behind ([`to_user`]); on every entry to ring 0 it clears the mark
//!   ([`from_user`]);
//! - the CPU that changed the tables (holding the kernel lock, after its own flush) bumps the
//!   generation, sends the wake-up IPI to every CPU marked "in user", and waits until each is
//!   either no longer in user or has caught up ([`shootdown`]).
//!
//! Both sides write their own variable and then read the other's with sequentially consistent
//! ordering, so either the changer sees the "in user" mark (and waits for the IPI to land), or
//! the entering CPU sees the new generation (and flushes before `iretq`). The waiting cannot
//! deadlock: a CPU in ring 3 always takes interrupts (ring 3 cannot clear IF), and a CPU in
//! ring 0 is not waited for. On one vCPU the cost is a few atomic operations.

use crate::arch::{self, MAX_CPUS};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

static GENERATION: AtomicU64 = AtomicU64::new(0);
static FLUSHED_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static IN_USER: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Shootdowns that had to interrupt another CPU (for `-v` and the statistics).
static REMOTE: AtomicU64 = AtomicU64::new(0);

/// This CPU entered ring 0 from ring 3.
pub fn from_user() {
    IN_USER[arch::current_cpu()].store(false, SeqCst);
}

/// This CPU is about to return to ring 3: flush if another CPU changed the tables since.
pub fn to_user() {
    let cpu = arch::current_cpu();
    IN_USER[cpu].store(true, SeqCst);
    let g = GENERATION.load(SeqCst);
    if FLUSHED_AT[cpu].load(SeqCst) < g {
        arch::flush_tlb();
        FLUSHED_AT[cpu].store(g, SeqCst);
    }
}

/// Makes every other CPU drop user translations; the caller has already changed the page
/// tables and flushed its own TLB. Returns when no CPU can use an old translation.
pub fn shootdown() {
    let me = arch::current_cpu();
    let g = GENERATION.fetch_add(1, SeqCst) + 1;
    FLUSHED_AT[me].store(g, SeqCst);
    let mut sent = false;
    for (cpu, in_user) in IN_USER.iter().enumerate() {
        if cpu != me && in_user.load(SeqCst) {
            arch::send_wakeup(cpu);
            sent = true;
        }
    }
    if !sent {
        return;
    }
    REMOTE.fetch_add(1, SeqCst);
    for (cpu, in_user) in IN_USER.iter().enumerate() {
        if cpu == me {
            continue;
        }
        while in_user.load(SeqCst) && FLUSHED_AT[cpu].load(SeqCst) < g {
            core::hint::spin_loop();
        }
    }
}

/// Flushes this CPU's TLB and every other CPU's (a CR3 reload everywhere).
pub fn flush_all() {
    arch::flush_tlb();
    shootdown();
}

/// Shootdowns that interrupted another CPU so far.
pub fn remote_count() -> u64 {
    REMOTE.load(SeqCst)
}
