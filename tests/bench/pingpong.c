/* Futex ping-pong between two threads: N round trips through raw FUTEX_WAIT/FUTEX_WAKE.
 * Prints the round trips and the time per round trip (the benchmark, not a test). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint32_t turn; /* 0: ping's turn, 1: pong's turn */
static long rounds;

static void wait_for(uint32_t want)
{
    uint32_t v;
    while ((v = __atomic_load_n(&turn, __ATOMIC_ACQUIRE)) != want)
        syscall(SYS_futex, &turn, 128 /* FUTEX_WAIT_PRIVATE */, v, NULL, NULL, 0);
}

static void give(uint32_t to)
{
    __atomic_store_n(&turn, to, __ATOMIC_RELEASE);
    syscall(SYS_futex, &turn, 129 /* FUTEX_WAKE_PRIVATE */, 1, NULL, NULL, 0);
}

static void *pong(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        wait_for(1);
        give(0);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atol(argv[1]) : 1000;
    pthread_t t;
    if (pthread_create(&t, NULL, pong, NULL) != 0)
        return 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < rounds; i++) {
        give(1);
        wait_for(0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_join(t, NULL);
    double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3;
    printf("%ld round trips, %.2f us per round trip\n", rounds, us / rounds);
    return 0;
}
