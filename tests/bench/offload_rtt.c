/* Benchmark program (tests/bench/offload.sh): per-call time of an offloaded 4 KiB pread and
 * of the cheapest offloaded call there is, fcntl(F_GETFD) on a closed fd (the host answers
 * EBADF from its fd table without a host syscall: the exit transport's round-trip floor as a
 * program can see it). Prints one line per repetition: "pread_ns floor_ns". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000, reps = argc > 2 ? atoi(argv[2]) : 7;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/tmp/lwk-bench-%d", getpid());
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    for (int i = 0; i < 4096; i++)
        buf[i] = (char)i;
    if (fd < 0 || write(fd, buf, sizeof buf) != sizeof buf)
        return 1;
    unlink(path);
    for (int r = 0; r < reps; r++) {
        long long t0 = now();
        for (int i = 0; i < iters; i++)
            if (pread(fd, buf, sizeof buf, 0) != sizeof buf)
                return 2;
        long long t1 = now();
        for (int i = 0; i < iters; i++)
            if (fcntl(999, F_GETFD) != -1)
                return 3;
        long long t2 = now();
        printf("%lld %lld\n", (t1 - t0) / iters, (t2 - t1) / iters);
    }
    return 0;
}
