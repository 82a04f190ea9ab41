//! `--stats-json`: one JSON object per job (names fixed by issue #2; later issues add keys).

use crate::vcpu::ExitCounts;
use offload_abi::GuestStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where a vCPU ran.
#[derive(Debug, Clone, Serialize)]
pub struct VcpuPlacement {
    /// vCPU id.
    pub id: u32,
    /// Host CPU it was pinned to (null if pinning failed).
    pub host_cpu: Option<usize>,
}

/// Syscall counts by disposition.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyscallCounts {
    /// Served in the LWK.
    pub local: u64,
    /// Forwarded to the host.
    pub offloaded: u64,
    /// Answered with ENOSYS.
    pub unsupported: u64,
}

/// What the host-signal forwarder did (see `signals`).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSignalCounts {
    /// Signals sent to lwk-vmm and forwarded to the program.
    pub forwarded: u64,
    /// Offloaded host calls interrupted by them (answered -EINTR, or a restart code when they
    /// would have waited after the signal came).
    pub interrupted_offloads: u64,
}

/// The statistics of one job.
#[derive(Debug, Clone, Serialize)]
pub struct JobStats {
    /// Exits of the vCPU to the VMM.
    pub vm_exits: u64,
    /// The same, by reason.
    pub vm_exits_by_reason: BTreeMap<&'static str, u64>,
    /// Syscalls by disposition.
    pub syscalls: SyscallCounts,
    /// Per-syscall counts (name -> count), nonzero only.
    pub syscalls_by_name: BTreeMap<String, u64>,
    /// How syscalls arrived: "native" (ring-0 LSTAR entry), "fault" (kvm_pvm's #PF at
    /// LSTAR), or "none" (no syscall was made).
    pub syscall_entry: &'static str,
    /// Page faults in the guest that were not syscall arrivals.
    pub guest_page_faults: u64,
    /// TLB shootdowns that interrupted another vCPU (memory changes while threads ran).
    pub tlb_shootdowns: u64,
    /// TSC-deadline timer interrupts in the guest (timeouts and timers; 0 for pure compute).
    pub guest_timer_interrupts: u64,
    /// Switches between threads sharing a vCPU (`oversubscribe = "timeslice"`).
    pub context_switches: u64,
    /// Host backing of guest RAM.
    pub memory_backing: &'static str,
    /// vCPU placement.
    pub vcpus: Vec<VcpuPlacement>,
    /// Wall-clock time of the whole job in milliseconds.
    pub wall_ms: f64,
    /// Signals sent to lwk-vmm (SIGINT, SIGTERM, ...) and forwarded to the program.
    pub host_signals: u64,
    /// Offloaded host calls that a signal interrupted (they returned EINTR), or kept from
    /// waiting because it came before they started.
    pub interrupted_offloads: u64,
    /// Asynchronous offloads (`port::OFFLOAD_ASYNC`).
    pub async_offloads: crate::offload::AsyncCounts,
}

impl JobStats {
    /// The `--stats` summary: a few lines for humans.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let s = &self.syscalls;
        let _ = writeln!(out, "lwk-vmm stats: wall {:.1} ms", self.wall_ms);
        let _ = writeln!(
            out,
            "  syscalls: {} local, {} offloaded, {} unsupported (entry: {})",
            s.local, s.offloaded, s.unsupported, self.syscall_entry
        );
        let mut top: Vec<(&String, &u64)> = self.syscalls_by_name.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = top
            .iter()
            .take(8)
            .map(|(n, c)| format!("{n} {c}"))
            .collect();
        if !top.is_empty() {
            let _ = writeln!(out, "  top: {}", top.join(", "));
        }
        let reasons: Vec<String> = self
            .vm_exits_by_reason
            .iter()
            .map(|(r, c)| format!("{r} {c}"))
            .collect();
        let _ = writeln!(
            out,
            "  VM exits: {} ({})",
            self.vm_exits,
            reasons.join(", ")
        );
        let _ = writeln!(
            out,
            "  guest page faults: {}, TLB shootdowns to other vCPUs: {}, timer interrupts: {}, context switches: {}",
            self.guest_page_faults,
            self.tlb_shootdowns,
            self.guest_timer_interrupts,
            self.context_switches
        );
        let _ = writeln!(out, "  memory backing: {}", self.memory_backing);
        let a = &self.async_offloads;
        if a.submitted > 0 {
            let _ = writeln!(
                out,
                "  async offloads: {} submitted, {} completed, {} refused, {} dropped",
                a.submitted, a.completed, a.refused, a.dropped
            );
        }
        if self.host_signals > 0 {
            let _ = writeln!(
                out,
                "  host signals forwarded: {}, offloads interrupted: {}",
                self.host_signals, self.interrupted_offloads
            );
        }
        let cores: Vec<String> = self
            .vcpus
            .iter()
            .map(|v| {
                format!(
                    "vCPU {} -> CPU {}",
                    v.id,
                    v.host_cpu.map_or("?".into(), |c| c.to_string())
                )
            })
            .collect();
        let _ = writeln!(out, "  cores: {}", cores.join(", "));
        out
    }

    /// Gathers the figures of a finished job. `guest` is the LWK's page (untrusted numbers:
    /// only counted and printed).
    pub fn collect(
        exits: &ExitCounts,
        guest: Option<&GuestStats>,
        backing: &'static str,
        vcpus: Vec<VcpuPlacement>,
        wall: Duration,
        signals: HostSignalCounts,
        async_offloads: crate::offload::AsyncCounts,
    ) -> Self {
        let mut syscalls = SyscallCounts::default();
        let mut by_name = BTreeMap::new();
        let mut entry = "none";
        let mut faults = 0;
        let mut shootdowns = 0;
        let mut timer_interrupts = 0;
        let mut switches = 0;
        if let Some(g) = guest {
            syscalls = SyscallCounts {
                local: g.syscalls_local,
                offloaded: g.syscalls_offloaded,
                unsupported: g.syscalls_unsupported,
            };
            for (nr, &count) in g.per_nr.iter().enumerate() {
                if count > 0 {
                    let name = offload_abi::syscalls::name(nr as u64)
                        .map_or_else(|| format!("syscall_{nr}"), str::to_string);
                    by_name.insert(name, u64::from(count));
                }
            }
            entry = if g.entry_native > 0 {
                "native"
            } else if g.entry_fault > 0 {
                "fault"
            } else {
                "none"
            };
            faults = g.page_faults;
            shootdowns = g.tlb_shootdowns;
            timer_interrupts = g.timer_interrupts;
            switches = g.context_switches;
        }
        JobStats {
            vm_exits: exits.total(),
            vm_exits_by_reason: exits.by_reason.clone(),
            syscalls,
            syscalls_by_name: by_name,
            syscall_entry: entry,
            guest_page_faults: faults,
            tlb_shootdowns: shootdowns,
            guest_timer_interrupts: timer_interrupts,
            context_switches: switches,
            memory_backing: backing,
            vcpus,
            wall_ms: wall.as_secs_f64() * 1000.0,
            host_signals: signals.forwarded,
            interrupted_offloads: signals.interrupted_offloads,
            async_offloads,
        }
    }
}
