/* FWQ (fixed work quanta) noise benchmark, after LLNL's FWQ: the same amount of work is timed
 * with rdtsc SAMPLES times; any sample longer than the fastest one was stretched by something
 * other than the work (interrupts, preemption, TLB/page faults, host activity).
 * Usage: fwq [SAMPLES] [WORK]   (WORK = loop iterations per quantum)
 * Prints: samples, min/median/max ticks, and the noise fraction sum(x - min) / sum(x). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long samples = argc > 1 ? atol(argv[1]) : 200000;
    long work = argc > 2 ? atol(argv[2]) : 20000;
    uint64_t *t = malloc(samples * sizeof *t);
    if (!t)
        return 1;
    volatile uint64_t sink = 0;
    for (long s = 0; s < samples; s++) /* touch the array first: no page faults while timing */
        t[s] = 0;
    for (long s = 0; s < samples; s++) {
        uint64_t a = rdtsc();
        uint64_t x = 0;
        for (long i = 0; i < work; i++)
            __asm__ volatile("add %1, %0" : "+r"(x) : "r"(i)); /* not optimized away */
        uint64_t b = rdtsc();
        sink += x;
        t[s] = b - a;
    }
    uint64_t min = UINT64_MAX, max = 0;
    double sum = 0, excess = 0;
    for (long s = 0; s < samples; s++) {
        if (t[s] < min) min = t[s];
        if (t[s] > max) max = t[s];
        sum += (double)t[s];
    }
    for (long s = 0; s < samples; s++)
        excess += (double)(t[s] - min);
    qsort(t, samples, sizeof *t, cmp);
    printf("samples %ld min %llu median %llu p99 %llu max %llu noise %.6f\n", samples,
           (unsigned long long)min, (unsigned long long)t[samples / 2],
           (unsigned long long)t[samples * 99 / 100], (unsigned long long)max, excess / sum);
    return 0;
}
