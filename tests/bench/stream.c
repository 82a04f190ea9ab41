/* Bandwidth benchmark (STREAM-style triad a[i] = b[i] + s * c[i]) over three arrays much larger
 * than the caches.
 *
 * Usage: stream PAGES ARRAY_MIB [REPEATS]
 *   PAGES: "4k" (MADV_NOHUGEPAGE) or "thp" (MADV_HUGEPAGE, 2 MiB-aligned arrays), as gups.
 * Prints the best of REPEATS triads (default 10) in GB/s, counting 24 bytes per element (two
 * loads and a store, as STREAM does), and a checksum. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double *array(size_t bytes, int thp)
{
    size_t huge = 2 << 20;
    unsigned char *raw = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    double *a = (double *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    madvise(a, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return a;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: stream 4k|thp ARRAY_MIB [REPEATS]\n");
        return 2;
    }
    int thp = strcmp(argv[1], "thp") == 0;
    size_t bytes = (size_t)atol(argv[2]) << 20;
    int repeats = argc > 3 ? atoi(argv[3]) : 10;
    size_t n = bytes / sizeof(double);
    double *a = array(bytes, thp), *b = array(bytes, thp), *c = array(bytes, thp);
    for (size_t i = 0; i < n; i++) {
        a[i] = 0;
        b[i] = 1.0 + (double)(i & 7);
        c[i] = 2.0;
    }
    const double s = 3.0;
    double best = 0;
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + s * c[i];
        double dt = now() - t0;
        double gbs = 3.0 * bytes / dt / 1e9;
        if (gbs > best)
            best = gbs;
    }
    double sum = 0;
    for (size_t i = 0; i < n; i += 512)
        sum += a[i];
    printf("stream %s arrays 3 x %zu MiB: triad %.2f GB/s (checksum %.0f)\n", argv[1],
           bytes >> 20, best, sum);
    return 0;
}
