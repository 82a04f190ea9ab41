/* Clock benchmark program (tests/bench/clocks.sh).
 *   clocks cost ITERS REPS : per rep, ns per clock_gettime(CLOCK_MONOTONIC) through libc (the
 *                            vDSO where there is one) and through the raw syscall; one line
 *                            "vdso_ns syscall_ns" per rep.
 *   clocks drift           : for every line read on stdin, prints CLOCK_REALTIME in ns (libc
 *                            and raw syscall), so a driver can compare with the host clock. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "drift") == 0) {
        char line[64];
        while (fgets(line, sizeof line, stdin)) {
            struct timespec a, b;
            clock_gettime(CLOCK_REALTIME, &a);
            syscall(SYS_clock_gettime, CLOCK_REALTIME, &b);
            printf("%lld %lld\n", (long long)ns(a), (long long)ns(b));
            fflush(stdout);
        }
        return 0;
    }
    long iters = argc > 2 ? atol(argv[2]) : 100000, reps = argc > 3 ? atol(argv[3]) : 7;
    long sys_iters = iters / 100 > 0 ? iters / 100 : 1;
    struct timespec t0, t1, x;
    for (long r = 0; r < reps; r++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < iters; i++)
            clock_gettime(CLOCK_MONOTONIC, &x);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double v = (double)(ns(t1) - ns(t0)) / iters;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < sys_iters; i++)
            syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &x);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(ns(t1) - ns(t0)) / sys_iters;
        printf("%.2f %.2f\n", v, s);
    }
    return 0;
}
