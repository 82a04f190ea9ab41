/* More threads than vCPUs under oversubscribe = "timeslice": four threads on one vCPU that
 * only make progress if the vCPU is preempted (they meet at a barrier that spins without any
 * syscall), and whose FPU state must survive every switch: each thread runs with its own
 * rounding mode and keeps SSE accumulators live across the preemptions. The sums are checked
 * against the same computation made before the threads met, so any FPU state leaking between
 * threads at a switch changes the output. */
// lwk-vmm: --cpus 1 --oversubscribe timeslice --timeslice-ms 2
#include <fenv.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define ROUNDS 3

static const int modes[THREADS] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
static const char *names[THREADS] = {"nearest", "upward", "downward", "towardzero"};
static atomic_int arrived;
static atomic_int phase;

/* Spins (no syscall, no futex) until all threads arrived: on one vCPU only preemption lets
 * the others run. */
static void spin_barrier(int round) {
    if (atomic_fetch_add(&arrived, 1) == THREADS * (round + 1) - 1)
        atomic_store(&phase, round + 1);
    while (atomic_load(&phase) <= round)
        ;
}

/* Long enough to span several 2 ms slices; the accumulators stay in xmm registers. */
static double work(unsigned seed) {
    double a = 1.0, b = 0.0, third = 1.0 / (3.0 + seed);
    for (long i = 0; i < 6000000; i++) {
        a = a * 1.0000001 + third;
        b += a / (1.0 + (double)(i & 7));
        if (a > 1e6)
            a -= 1e6;
    }
    return a + b;
}

struct result {
    double before, after[ROUNDS];
    int mode_kept;
};
static struct result results[THREADS];

static void *thread_main(void *arg) {
    int id = (int)(long)arg;
    fesetround(modes[id]);
    struct result *r = &results[id];
    r->before = work(id);
    r->mode_kept = 1;
    for (int round = 0; round < ROUNDS; round++) {
        spin_barrier(round);
        r->after[round] = work(id);
        if (fegetround() != modes[id])
            r->mode_kept = 0;
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) {
        if (pthread_create(&t[i], NULL, thread_main, (void *)i) != 0) {
            printf("pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        int same = 1;
        for (int round = 0; round < ROUNDS; round++)
            same &= results[i].after[round] == results[i].before;
        printf("thread %d (%s): rounding mode %s, sums %s\n", i, names[i],
               results[i].mode_kept ? "kept" : "LOST", same ? "identical" : "DIFFER");
        bad |= !same || !results[i].mode_kept;
    }
    /* Different rounding modes must give different sums (the modes really were in effect). */
    int distinct = results[1].before != results[2].before;
    printf("rounding modes %s\n", distinct ? "distinct" : "NOT DISTINCT");
    return bad || !distinct;
}
