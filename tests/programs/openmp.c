/* OpenMP (static libgomp): a parallel reduction with the default thread count, which is the
 * number of CPUs the program may use (natively: the host's; under lwk-vmm: the vCPUs). The
 * output is the same whatever that number is. */
// needs: openmp
// lwk-vmm: --cpus 2
#include <omp.h>
#include <stdio.h>

int main(void)
{
    long sum = 0;
    int threads = 0;
    /* The default team size goes to stderr (it differs natively and under lwk-vmm by design:
     * host CPUs vs vCPUs); tests check it there. */
    fprintf(stderr, "omp default threads=%d\n", omp_get_max_threads());
#pragma omp parallel reduction(+ : sum)
    {
#pragma omp single
        threads = omp_get_num_threads();
#pragma omp for
        for (long i = 1; i <= 1000000; i++)
            sum += i % 7;
    }
    printf("sum=%ld\n", sum);
    long counter = 0;
    int barrier_ok = 1;
    int phase[64] = {0};
#pragma omp parallel shared(counter, barrier_ok, phase)
    {
        int me = omp_get_thread_num() % 64;
        for (int i = 0; i < 1000; i++) {
#pragma omp atomic
            counter++;
        }
        phase[me] = 1;
#pragma omp barrier
        for (int i = 0; i < omp_get_num_threads() && i < 64; i++)
            if (!phase[i])
                barrier_ok = 0;
    }
    printf("atomic counter per thread=%ld\n", counter / (threads > 0 ? threads : 1));
    printf("barrier ok: %s\n", barrier_ok ? "yes" : "no");
    printf("threads>=1: %s\n", threads >= 1 ? "yes" : "no");
    return 0;
}
