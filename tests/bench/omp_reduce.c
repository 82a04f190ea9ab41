/* OpenMP parallel-for reduction (the benchmark, not a test): REPS reductions over N doubles
 * with the default team (OMP_NUM_THREADS or the CPU count). Prints the team size, the time per
 * reduction and the sum (so the work cannot be optimised away). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 4000000;
    int reps = argc > 2 ? atoi(argv[2]) : 50;
    double *a = malloc(n * sizeof *a);
    if (!a)
        return 1;
#pragma omp parallel for
    for (long i = 0; i < n; i++)
        a[i] = (double)(i % 1000) * 0.001;
    double total = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < reps; r++) {
        double s = 0;
#pragma omp parallel for reduction(+ : s)
        for (long i = 0; i < n; i++)
            s += a[i] * a[i];
        total += s;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3;
    printf("threads %d, %.1f us per reduction, sum %.6e\n", omp_get_max_threads(), us / reps, total);
    return 0;
}
