/* The lwk-vmm vDSO: clock_gettime, gettimeofday, time, clock_getres and getcpu for programs
 * that look them up through AT_SYSINFO_EHDR (glibc's setup_vdso, musl's __vdsosym), under the
 * names and version (LINUX_2.6) Linux's x86_64 vDSO exports.
 *
 * Time is computed exactly as the LWK's syscalls compute it (guest-lwk/src/time.rs):
 * base + ((tsc - tsc0) * mult) >> 32, from the read-only vvar page the LWK maps one page below
 * this object. rdtsc runs natively in ring 3 (CR4.TSD is clear). The CPU-time clocks, unknown
 * clock ids and getcpu go to the real syscall. Built position-independent, without libc, by
 * guest-lwk/build.rs; the result must need no relocations (the LWK maps it as is). */
#include <stddef.h>
#include <stdint.h>
#include "vvar.h"

struct k_timespec { long tv_sec; long tv_nsec; };
struct k_timeval { long tv_sec; long tv_usec; };
struct k_timezone { int tz_minuteswest; int tz_dsttime; };

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define CLOCK_MONOTONIC_RAW 4
#define CLOCK_REALTIME_COARSE 5
#define CLOCK_MONOTONIC_COARSE 6
#define CLOCK_BOOTTIME 7

#define SYS_gettimeofday 96
#define SYS_time 201
#define SYS_clock_gettime 228
#define SYS_clock_getres 229
#define SYS_getcpu 309

/* Defined by vdso.lds, one page below the object's first byte. */
extern const struct lwk_vvar lwk_vvar_page __attribute__((visibility("hidden")));

static inline long syscall3(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    /* lfence: the TSC is read after earlier loads, as the kernel's rdtsc_ordered does. */
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline const volatile struct lwk_vvar *vvar(void)
{
    return &lwk_vvar_page;
}

/* Nanoseconds of `clock`, or -1 if this clock needs the syscall. */
static inline int read_ns(int clock, uint64_t *out)
{
    const volatile struct lwk_vvar *v = vvar();
    if (v->version != LWK_VVAR_VERSION)
        return -1;
    uint64_t tsc0 = v->tsc0, t = rdtsc();
    uint64_t delta = t > tsc0 ? t - tsc0 : 0;
    uint64_t elapsed = (uint64_t)(((unsigned __int128)delta * v->mult) >> 32);
    switch (clock) {
    case CLOCK_REALTIME:
        *out = v->realtime0 + elapsed;
        return 0;
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_BOOTTIME:
        *out = v->monotonic0 + elapsed;
        return 0;
    case CLOCK_REALTIME_COARSE:
        *out = (v->realtime0 + elapsed) / v->coarse_ns * v->coarse_ns;
        return 0;
    case CLOCK_MONOTONIC_COARSE:
        *out = (v->monotonic0 + elapsed) / v->coarse_ns * v->coarse_ns;
        return 0;
    default:
        return -1;
    }
}

int __vdso_clock_gettime(int clock, struct k_timespec *ts)
{
    uint64_t ns;
    if (read_ns(clock, &ns) != 0)
        return (int)syscall3(SYS_clock_gettime, clock, (long)ts, 0);
    ts->tv_sec = (long)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
    return 0;
}

int __vdso_gettimeofday(struct k_timeval *tv, struct k_timezone *tz)
{
    uint64_t ns;
    if (read_ns(CLOCK_REALTIME, &ns) != 0)
        return (int)syscall3(SYS_gettimeofday, (long)tv, (long)tz, 0);
    if (tv) {
        tv->tv_sec = (long)(ns / 1000000000);
        tv->tv_usec = (long)(ns % 1000000000 / 1000);
    }
    if (tz) {
        tz->tz_minuteswest = 0;
        tz->tz_dsttime = 0;
    }
    return 0;
}

long __vdso_time(long *t)
{
    uint64_t ns;
    if (read_ns(CLOCK_REALTIME, &ns) != 0)
        return syscall3(SYS_time, (long)t, 0, 0);
    long secs = (long)(ns / 1000000000);
    if (t)
        *t = secs;
    return secs;
}

int __vdso_clock_getres(int clock, struct k_timespec *res)
{
    const volatile struct lwk_vvar *v = vvar();
    long ns;
    switch (clock) {
    case CLOCK_REALTIME:
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_BOOTTIME:
        ns = 1;
        break;
    case CLOCK_REALTIME_COARSE:
    case CLOCK_MONOTONIC_COARSE:
        ns = (long)v->coarse_ns;
        break;
    default:
        return (int)syscall3(SYS_clock_getres, clock, (long)res, 0);
    }
    if (v->version != LWK_VVAR_VERSION)
        return (int)syscall3(SYS_clock_getres, clock, (long)res, 0);
    if (res) {
        res->tv_sec = 0;
        res->tv_nsec = ns;
    }
    return 0;
}

/* The vCPU is not visible from ring 3 without a per-CPU descriptor (Linux reads it with
 * rdpid/lsl); this one asks the LWK. */
long __vdso_getcpu(unsigned *cpu, unsigned *node, void *unused)
{
    return syscall3(SYS_getcpu, (long)cpu, (long)node, (long)unused);
}

int clock_gettime(int, struct k_timespec *) __attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct k_timeval *, struct k_timezone *) __attribute__((weak, alias("__vdso_gettimeofday")));
long time(long *) __attribute__((weak, alias("__vdso_time")));
int clock_getres(int, struct k_timespec *) __attribute__((weak, alias("__vdso_clock_getres")));
long getcpu(unsigned *, unsigned *, void *) __attribute__((weak, alias("__vdso_getcpu")));
