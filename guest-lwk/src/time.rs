//! Time from the TSC: the host gives the TSC frequency; at boot the LWK reads the host clocks
//! once through the bridge and from then on computes every clock locally (no VM exit).

use crate::{arch, bridge};
use offload_abi::BootInfo;

/// Nanosecond clocks derived from the TSC.
pub struct Clock {
    tsc0: u64,
    realtime0: u64,
    monotonic0: u64,
    /// Nanoseconds per TSC tick as a 32.32 fixed-point number.
    mult: u64,
    /// TSC frequency.
    khz: u64,
}

impl Clock {
    /// Calibrates against the host clocks (one offload round trip; the TSC is read halfway).
    pub fn new(info: &BootInfo) -> Self {
        let khz = info.tsc_khz.max(1);
        let before = arch::rdtsc();
        let (realtime0, monotonic0) = bridge::host_time();
        let after = arch::rdtsc();
        Clock {
            tsc0: before + (after - before) / 2,
            realtime0,
            monotonic0,
            mult: (1_000_000u64 << 32) / khz,
            khz,
        }
    }

    /// Nanoseconds since boot calibration.
    #[inline]
    pub fn elapsed_ns(&self) -> u64 {
        let delta = arch::rdtsc().wrapping_sub(self.tsc0);
        ((u128::from(delta) * u128::from(self.mult)) >> 32) as u64
    }

    /// CLOCK_MONOTONIC in nanoseconds (continues the host's monotonic clock).
    pub fn monotonic_ns(&self) -> u64 {
        self.monotonic0 + self.elapsed_ns()
    }

    /// The TSC value at which CLOCK_MONOTONIC reads `ns` (saturating at boot).
    pub fn tsc_at_monotonic(&self, ns: u64) -> u64 {
        let delta = ns.saturating_sub(self.monotonic0);
        self.tsc0
            .saturating_add(((u128::from(delta) * u128::from(self.khz)) / 1_000_000) as u64)
    }

    /// CLOCK_MONOTONIC minus CLOCK_REALTIME offset: realtime = monotonic + this.
    pub fn realtime_offset(&self) -> i128 {
        i128::from(self.realtime0) - i128::from(self.monotonic0)
    }

    /// CLOCK_REALTIME in nanoseconds since the epoch.
    pub fn realtime_ns(&self) -> u64 {
        self.realtime0 + self.elapsed_ns()
    }
}
