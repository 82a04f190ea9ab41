/* Random-access benchmark (GUPS / test-tlb style): read-modify-write of random 8-byte words in
 * a table much larger than the caches and the 4 KiB TLB reach, so every update pays a TLB miss
 * unless the table is mapped with large pages.
 *
 * Usage: gups PAGES TABLE_MIB UPDATES_M [REPEATS]
 *   PAGES: "4k" (madvise MADV_NOHUGEPAGE: base pages natively) or "thp" (MADV_HUGEPAGE on a
 *   2 MiB-aligned table). Under lwk-vmm the advice is accepted and the LWK maps 2 MiB pages.
 * Prints the best of REPEATS runs (default 3) in million updates per second, and a checksum. */
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

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: gups 4k|thp TABLE_MIB UPDATES_M [REPEATS]\n");
        return 2;
    }
    int thp = strcmp(argv[1], "thp") == 0;
    size_t bytes = (size_t)atol(argv[2]) << 20;
    uint64_t updates = (uint64_t)atol(argv[3]) * 1000000;
    int repeats = argc > 4 ? atoi(argv[4]) : 3;
    size_t huge = 2 << 20;
    unsigned char *raw = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    uint64_t *t = (uint64_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    madvise(t, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    size_t n = bytes / 8; /* a power of two when TABLE_MIB is */
    for (size_t i = 0; i < n; i++)
        t[i] = i;
    double best = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        for (uint64_t i = 0; i < updates; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t[x & (n - 1)] ^= x;
        }
        double dt = now() - t0;
        double mups = updates / dt / 1e6;
        if (mups > best)
            best = mups;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 4096 / 8)
        sum += t[i];
    printf("gups %s table %zu MiB: %.2f Mupdates/s (checksum %016llx)\n", argv[1], bytes >> 20,
           best, (unsigned long long)sum);
    return 0;
}
