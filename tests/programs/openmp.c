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
#pragma omp parallel reduction(+ : sum)
    {
#pragma omp single
        threads = omp_get_num_threads();
#pragma omp for
        for (long i = 1; i <= 1000000; i++)
            sum += i % 7;
    }
    printf("sum=%ld\n", sum);
    printf("threads>=1: %s\n", threads >= 1 ? "yes" : "no");
    return 0;
}
