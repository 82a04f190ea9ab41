/* Six threads on two vCPUs (oversubscribe = "timeslice"), through every way a thread waits:
 * a mutex/condvar producer-consumer, a pthread barrier, timed sleeps and a timed futex wait
 * that expires while other threads run, a signal sent with pthread_kill to a thread that is
 * switched out in sigwait, sched_yield, and joins. Prints only results that do not depend on
 * timing, so the native and lwk-vmm runs print the same bytes. */
// lwk-vmm: --cpus 2 --oversubscribe timeslice --timeslice-ms 2
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ITEMS 2000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nonempty = PTHREAD_COND_INITIALIZER, nonfull = PTHREAD_COND_INITIALIZER;
static int queue[8], head, count;
static long consumed_sum;
static pthread_barrier_t barrier;
static uint32_t never;

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 1; i <= ITEMS; i++) {
        pthread_mutex_lock(&lock);
        while (count == 8)
            pthread_cond_wait(&nonfull, &lock);
        queue[(head + count++) % 8] = i;
        pthread_cond_signal(&nonempty);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (int i = 0; i < ITEMS; i++) {
        pthread_mutex_lock(&lock);
        while (count == 0)
            pthread_cond_wait(&nonempty, &lock);
        consumed_sum += queue[head];
        head = (head + 1) % 8;
        count--;
        pthread_cond_signal(&nonfull);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static long elapsed_ms(struct timespec a, struct timespec b)
{
    return (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

static void *sleeper(void *arg)
{
    (void)arg;
    struct timespec a, b, d = {0, 20 * 1000000};
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        nanosleep(&d, NULL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        ok &= elapsed_ms(a, b) >= 20;
    }
    /* A futex wait that nobody wakes: it must time out. */
    struct timespec t = {0, 30 * 1000000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    long r = syscall(SYS_futex, &never, 0 /* FUTEX_WAIT */, 0, &t, NULL, 0);
    int e = errno;
    clock_gettime(CLOCK_MONOTONIC, &b);
    ok &= r == -1 && e == ETIMEDOUT && elapsed_ms(a, b) >= 30;
    return (void *)(long)ok;
}

static void *waiter(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    sigwait(set, &sig);
    return (void *)(long)sig;
}

static void *spinner(void *arg)
{
    (void)arg;
    volatile unsigned long x = 0;
    for (int i = 0; i < 200; i++) {
        for (int j = 0; j < 100000; j++)
            x += j;
        sched_yield();
    }
    pthread_barrier_wait(&barrier);
    return NULL;
}

int main(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_barrier_init(&barrier, NULL, 3);
    pthread_t p, c, s, w, sp1, sp2;
    pthread_create(&w, NULL, waiter, &set);
    pthread_create(&p, NULL, producer, NULL);
    pthread_create(&c, NULL, consumer, NULL);
    pthread_create(&s, NULL, sleeper, NULL);
    pthread_create(&sp1, NULL, spinner, NULL);
    pthread_create(&sp2, NULL, spinner, NULL);
    pthread_barrier_wait(&barrier);
    printf("barrier passed\n");
    usleep(10000);
    pthread_kill(w, SIGUSR1);
    void *r;
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    printf("consumed sum %ld (expected %ld)\n", consumed_sum, (long)ITEMS * (ITEMS + 1) / 2);
    pthread_join(s, &r);
    printf("sleeps and timed futex wait: %s\n", r ? "ok" : "WRONG");
    pthread_join(w, &r);
    printf("sigwait got signal %ld\n", (long)r);
    pthread_join(sp1, NULL);
    pthread_join(sp2, NULL);
    printf("all joined\n");
    return 0;
}
