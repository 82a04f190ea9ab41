/* A thread sleeps while the other threads of its vCPU exit (oversubscribe = "timeslice"): the
 * vCPU then idles with the sleeper blocked, and its timer must still wake it at its deadline.
 * Repeated, since which thread lands on which vCPU and who exits first depend on timing. */
// lwk-vmm: --cpus 2 --oversubscribe timeslice
#include <pthread.h>
#include <stdio.h>
#include <time.h>

static void *sleeper(void *arg)
{
    (void)arg;
    struct timespec d = {0, 20 * 1000000};
    nanosleep(&d, NULL);
    return (void *)1L;
}

static void *quick(void *arg)
{
    return arg;
}

int main(void)
{
    long woke = 0;
    for (int round = 0; round < 20; round++) {
        pthread_t s, q[4];
        pthread_create(&s, NULL, sleeper, NULL);
        for (int i = 0; i < 4; i++)
            pthread_create(&q[i], NULL, quick, NULL);
        for (int i = 0; i < 4; i++)
            pthread_join(q[i], NULL);
        void *r;
        pthread_join(s, &r);
        woke += (long)r;
    }
    printf("sleepers woken: %ld of 20\n", woke);
    return 0;
}
