/* Clocks and CPU time: every clock id with clock_getres, monotonicity under a mix of libc (vDSO)
 * and raw-syscall reads, gettimeofday/time against CLOCK_REALTIME, CPU-time clocks (including
 * the ids clock_getcpuclockid/pthread_getcpuclockid build), times/getrusage after CPU work,
 * nanosleep accuracy, EINVAL/EFAULT. Prints only time-independent facts. */
// lwk-vmm: --cpus 2
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/times.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static int64_t now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return ns_of(t);
}

static int64_t raw_now(clockid_t c)
{
    struct timespec t;
    syscall(SYS_clock_gettime, c, &t);
    return ns_of(t);
}

static volatile uint64_t sink;

/* A fixed amount of pure user-mode work (about `ms` milliseconds on an idle machine): fixed
 * work, not a wall-clock deadline, so that a loaded machine cannot make the CPU time small. */
static void spin(int ms)
{
    for (long n = 0; n < (long)ms * 200; n++)
        for (int i = 0; i < 10000; i++)
            sink += i;
}

static const struct { clockid_t id; const char *name; } clocks[] = {
    {CLOCK_REALTIME, "REALTIME"}, {CLOCK_MONOTONIC, "MONOTONIC"},
    {CLOCK_PROCESS_CPUTIME_ID, "PROCESS_CPUTIME_ID"}, {CLOCK_THREAD_CPUTIME_ID, "THREAD_CPUTIME_ID"},
    {CLOCK_MONOTONIC_RAW, "MONOTONIC_RAW"}, {CLOCK_REALTIME_COARSE, "REALTIME_COARSE"},
    {CLOCK_MONOTONIC_COARSE, "MONOTONIC_COARSE"}, {CLOCK_BOOTTIME, "BOOTTIME"},
};

static pthread_barrier_t bar;
static int64_t worker_cpu;

static void *worker(void *arg)
{
    (void)arg;
    int64_t t0 = now(CLOCK_THREAD_CPUTIME_ID);
    spin(30);
    int64_t t1 = now(CLOCK_THREAD_CPUTIME_ID);
    printf("thread cputime advances: %s\n", t1 > t0 && t1 - t0 < 20000000000 ? "ok" : "BAD");
    worker_cpu = t1;
    pthread_barrier_wait(&bar); /* main reads our clock now */
    pthread_barrier_wait(&bar);
    return NULL;
}

int main(void)
{
    struct timespec ts;
    for (unsigned i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        errno = 0;
        long r = clock_getres(clocks[i].id, &ts);
        printf("getres %s: %ld %ld.%09ld\n", clocks[i].name, r, (long)ts.tv_sec, ts.tv_nsec);
        r = clock_gettime(clocks[i].id, &ts);
        printf("gettime %s: %ld %s\n", clocks[i].name, r, ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000 ? "ok" : "BAD");
        r = syscall(SYS_clock_gettime, clocks[i].id, &ts);
        printf("raw gettime %s: %ld %s\n", clocks[i].name, r, ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000 ? "ok" : "BAD");
    }

    /* Monotonic across vDSO and syscall reads, and realtime/monotonic advance together. */
    int mono_ok = 1, raw_ok = 1, boot_ok = 1;
    int64_t last = now(CLOCK_MONOTONIC);
    for (int i = 0; i < 300; i++) {
        int64_t a = raw_now(CLOCK_MONOTONIC), b = now(CLOCK_MONOTONIC);
        for (int j = 0; j < 20; j++) {
            int64_t c = now(CLOCK_MONOTONIC);
            if (c < b) mono_ok = 0;
            b = c;
        }
        int64_t d = raw_now(CLOCK_MONOTONIC);
        if (a < last || b < a || d < b) mono_ok = 0;
        last = d;
        int64_t r1 = now(CLOCK_MONOTONIC_RAW), r2 = raw_now(CLOCK_MONOTONIC_RAW);
        if (r2 < r1) raw_ok = 0;
        int64_t b1 = now(CLOCK_BOOTTIME), b2 = raw_now(CLOCK_BOOTTIME);
        if (b2 < b1 || b1 < d) boot_ok = 0;
    }
    printf("monotonic vdso/syscall mix: %s\n", mono_ok ? "ok" : "BAD");
    printf("monotonic_raw mix: %s\n", raw_ok ? "ok" : "BAD");
    printf("boottime >= monotonic: %s\n", boot_ok ? "ok" : "BAD");

    /* Coarse clocks trail the fine ones by less than a few ticks. */
    int coarse_ok = 1;
    for (int i = 0; i < 100; i++) {
        int64_t c = now(CLOCK_MONOTONIC_COARSE), f = now(CLOCK_MONOTONIC);
        int64_t rc = now(CLOCK_REALTIME_COARSE), rf = raw_now(CLOCK_REALTIME);
        if (c > f || f - c > 100000000 || rc > rf || rf - rc > 100000000) coarse_ok = 0;
    }
    printf("coarse clocks trail: %s\n", coarse_ok ? "ok" : "BAD");

    /* gettimeofday and time agree with CLOCK_REALTIME. */
    int tod_ok = 1;
    for (int i = 0; i < 100; i++) {
        struct timeval tv;
        struct timezone tz = {123, 456};
        int64_t r1 = now(CLOCK_REALTIME);
        int rv = i & 1 ? gettimeofday(&tv, &tz) : (int)syscall(SYS_gettimeofday, &tv, &tz);
        time_t t = i & 2 ? time(NULL) : (time_t)syscall(SYS_time, NULL);
        int64_t r2 = now(CLOCK_REALTIME);
        int64_t us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
        if (rv != 0 || us < r1 / 1000 || us > r2 / 1000 || t < r1 / 1000000000 - 1 || t > r2 / 1000000000)
            tod_ok = 0;
        /* The kernel fills tz with zeros; musl's gettimeofday leaves it alone. */
        if (!(i & 1) && (tz.tz_minuteswest != 0 || tz.tz_dsttime != 0)) tod_ok = 0;
    }
    printf("gettimeofday/time vs realtime: %s\n", tod_ok ? "ok" : "BAD");
    struct timeval tv;
    printf("gettimeofday(tv, NULL): %d\n", gettimeofday(&tv, NULL));
    time_t tt = 0;
    time_t tr = time(&tt);
    printf("time(&t) == t: %s\n", tr == tt ? "ok" : "BAD");
    int64_t rt = now(CLOCK_REALTIME);
    printf("realtime is 2020..2100: %s\n", rt > 1577836800LL * 1000000000 && rt < 4102444800LL * 1000000000 ? "ok" : "BAD");

    /* CPU time after ~200 ms of work: user time grows, within the wall time. */
    struct tms tm0, tm1;
    clock_t c0 = times(&tm0);
    int64_t w0 = now(CLOCK_MONOTONIC), p0 = now(CLOCK_PROCESS_CPUTIME_ID), th0 = now(CLOCK_THREAD_CPUTIME_ID);
    spin(200);
    int64_t w1 = now(CLOCK_MONOTONIC), p1 = now(CLOCK_PROCESS_CPUTIME_ID), th1 = now(CLOCK_THREAD_CPUTIME_ID);
    clock_t c1 = times(&tm1);
    int64_t wall = w1 - w0;
    printf("process cputime within wall: %s\n", p1 - p0 > 0 && p1 - p0 <= wall + 20000000 ? "ok" : "BAD");
    printf("thread cputime within wall: %s\n", th1 - th0 > 0 && th1 - th0 <= wall + 20000000 ? "ok" : "BAD");
    long ticks = sysconf(_SC_CLK_TCK);
    printf("clk_tck: %ld\n", ticks);
    long du = (long)(tm1.tms_utime - tm0.tms_utime);
    printf("times user ticks: %s\n", du > 0 && du <= (wall / 1000000 + 50) * ticks / 1000 + 2 ? "ok" : "BAD");
    printf("times elapsed: %s\n", c1 - c0 >= 0 && c1 - c0 <= (wall / 1000000) * ticks / 1000 + 10 ? "ok" : "BAD");
    /* Children's times are inherited across exec (a shell that ran other commands and then
     * exec'ed this one), so only their sanity is printed. */
    printf("times children: %s\n", tm1.tms_cutime >= 0 && tm1.tms_cstime >= 0 ? "ok" : "BAD");

    struct rusage ru, rt2, rc;
    printf("getrusage self: %d\n", getrusage(RUSAGE_SELF, &ru));
    int64_t ru_user = (int64_t)ru.ru_utime.tv_sec * 1000000000 + ru.ru_utime.tv_usec * 1000;
    printf("rusage user time: %s\n", ru_user > 0 && ru_user <= now(CLOCK_PROCESS_CPUTIME_ID) + 10000000 ? "ok" : "BAD");
    printf("rusage maxrss: %s\n", ru.ru_maxrss > 100 && ru.ru_maxrss < 16 * 1024 * 1024 ? "ok" : "BAD");
    printf("getrusage thread: %d\n", getrusage(RUSAGE_THREAD, &rt2));
    printf("rusage thread user: %s\n", rt2.ru_utime.tv_sec * 1000000 + rt2.ru_utime.tv_usec > 0 ? "ok" : "BAD");
    printf("getrusage children: %d\n", getrusage(RUSAGE_CHILDREN, &rc));
    printf("rusage children: %s\n", rc.ru_utime.tv_sec >= 0 && rc.ru_utime.tv_usec >= 0 && rc.ru_stime.tv_usec >= 0 ? "ok" : "BAD");
    TRY("getrusage(5)", getrusage(5, &ru));
    TRY("getrusage(self, bad)", syscall(SYS_getrusage, RUSAGE_SELF, (void *)8));

    /* CPU clock ids built by glibc/musl for the process and a thread. */
    clockid_t pc;
    printf("clock_getcpuclockid(0): %d\n", clock_getcpuclockid(0, &pc));
    printf("cpuclock(0) gettime: %s\n", clock_gettime(pc, &ts) == 0 && ns_of(ts) > 0 ? "ok" : "BAD");
    printf("clock_getcpuclockid(getpid()): %d\n", clock_getcpuclockid(getpid(), &pc));
    printf("cpuclock(pid) gettime: %s\n", clock_gettime(pc, &ts) == 0 && ns_of(ts) > 0 ? "ok" : "BAD");
    int rr = clock_getres(pc, &ts);
    printf("cpuclock(pid) getres: %d %ld\n", rr, ts.tv_nsec);
    /* PROF (which 0) and VIRT (which 1) variants of the own process, raw. */
    clockid_t prof = (clockid_t)((~0u) << 3), virt = (clockid_t)(((~0u) << 3) | 1);
    printf("prof clock: %ld\n", syscall(SYS_clock_gettime, prof, &ts));
    printf("virt clock: %ld\n", syscall(SYS_clock_gettime, virt, &ts));
    long lr = syscall(SYS_clock_getres, prof, &ts);
    printf("prof getres: %ld %ld\n", lr, ts.tv_nsec);
    TRY("cpuclock which=3", syscall(SYS_clock_gettime, (clockid_t)(((~0u) << 3) | 3), &ts));

    pthread_t th;
    pthread_barrier_init(&bar, NULL, 2);
    pthread_create(&th, NULL, worker, NULL);
    pthread_barrier_wait(&bar);
    clockid_t tc;
    printf("pthread_getcpuclockid: %d\n", pthread_getcpuclockid(th, &tc));
    rr = clock_gettime(tc, &ts);
    printf("thread clock from main: %s\n", rr == 0 && ns_of(ts) >= worker_cpu ? "ok" : "BAD");
    printf("own thread clock: %d\n", pthread_getcpuclockid(pthread_self(), &tc));
    printf("own thread clock gettime: %s\n", clock_gettime(tc, &ts) == 0 && ns_of(ts) > 0 ? "ok" : "BAD");
    pthread_barrier_wait(&bar);
    pthread_join(th, NULL);

    /* nanosleep: at least the time asked, loosely bounded above. */
    int sleep_ok = 1;
    for (int i = 0; i < 5; i++) {
        int64_t s0 = now(CLOCK_MONOTONIC);
        struct timespec req = {0, 20000000};
        if (nanosleep(&req, NULL) != 0) sleep_ok = 0;
        int64_t d = now(CLOCK_MONOTONIC) - s0;
        if (d < 20000000 || d > 520000000) sleep_ok = 0;
    }
    printf("nanosleep 20ms: %s\n", sleep_ok ? "ok" : "BAD");
    int64_t cp0 = now(CLOCK_PROCESS_CPUTIME_ID);
    struct timespec req = {0, 100000000};
    nanosleep(&req, NULL);
    int64_t cp1 = now(CLOCK_PROCESS_CPUTIME_ID);
    printf("sleep is not cpu time: %s\n", cp1 - cp0 < 50000000 ? "ok" : "BAD");

    /* Errors. */
    TRY("clock_gettime(12345)", clock_gettime(12345, &ts));
    TRY("clock_gettime(-1)", clock_gettime(-1, &ts));
    TRY("clock_getres(12345)", clock_getres(12345, &ts));
    TRY("clock_getres(MONOTONIC, NULL)", clock_getres(CLOCK_MONOTONIC, NULL));
    TRY("raw clock_gettime bad ptr", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (void *)8));
    TRY("raw clock_gettime cputime bad ptr", syscall(SYS_clock_gettime, CLOCK_PROCESS_CPUTIME_ID, (void *)8));
    TRY("raw clock_getres bad ptr", syscall(SYS_clock_getres, CLOCK_REALTIME, (void *)8));
    TRY("raw gettimeofday bad ptr", syscall(SYS_gettimeofday, (void *)8, NULL));
    TRY("raw gettimeofday bad tz", syscall(SYS_gettimeofday, NULL, (void *)8));
    TRY("raw time bad ptr", syscall(SYS_time, (void *)8));
    TRY("raw times bad ptr", syscall(SYS_times, (void *)8));
    TRY("raw times NULL", syscall(SYS_times, NULL));
    return 0;
}
