//! Clocks, served from the TSC without leaving the VM.

use super::put_user;
use crate::Kernel;
use offload_abi::errno::EINVAL;

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
const CLOCK_MONOTONIC_RAW: i32 = 4;
const CLOCK_REALTIME_COARSE: i32 = 5;
const CLOCK_MONOTONIC_COARSE: i32 = 6;
const CLOCK_BOOTTIME: i32 = 7;

fn clock_ns(k: &Kernel, clock: i32) -> Option<u64> {
    Some(match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => k.clock.realtime_ns(),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => {
            k.clock.monotonic_ns()
        }
        // One thread that owns its core: CPU time is the time since the program started.
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => k.clock.elapsed_ns(),
        _ => return None,
    })
}

fn timespec(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    b
}

/// clock_gettime(2)
pub fn clock_gettime(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let Some(ns) = clock_ns(k, a[0] as i32) else {
        return -EINVAL;
    };
    match put_user(k, a[1], &timespec(ns)) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// clock_getres(2)
pub fn clock_getres(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let clock = a[0] as i32;
    if clock_ns(k, clock).is_none() {
        return -EINVAL;
    }
    if a[1] == 0 {
        return 0;
    }
    // Coarse clocks have jiffy resolution on Linux (CONFIG_HZ=250 on Debian: 4 ms).
    let res = if clock == CLOCK_REALTIME_COARSE || clock == CLOCK_MONOTONIC_COARSE {
        4_000_000
    } else {
        1
    };
    match put_user(k, a[1], &timespec(res)) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// gettimeofday(2); the timezone argument is filled with zeros like Linux does by default.
pub fn gettimeofday(k: &mut Kernel, a: [u64; 6]) -> i64 {
    if a[0] != 0 {
        let ns = k.clock.realtime_ns();
        let mut tv = [0u8; 16];
        tv[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        tv[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
        if let Err(e) = put_user(k, a[0], &tv) {
            return e;
        }
    }
    if a[1] != 0
        && let Err(e) = put_user(k, a[1], &[0u8; 8])
    {
        return e;
    }
    0
}

/// time(2)
pub fn time(k: &mut Kernel, a: [u64; 6]) -> i64 {
    let secs = k.clock.realtime_ns() / 1_000_000_000;
    if a[0] != 0
        && let Err(e) = put_user(k, a[0], &secs.to_le_bytes())
    {
        return e;
    }
    secs as i64
}
