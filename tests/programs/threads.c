/* pthreads on pinned vCPUs: create/join, mutex + condvar (futex WAIT/WAKE), rwlock, barrier,
 * thread-local storage, gettid != getpid in threads, exit codes through join, a detached
 * thread. Needs 2 CPUs; a create that finds no free vCPU yet (the detached thread still
 * exiting) is retried, as a program facing EAGAIN would. */
// lwk-vmm: --cpus 2
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stage;
static long counter;
static __thread int tls_value = 7;

static void *worker(void *arg)
{
    long id = (long)arg;
    tls_value = 100 + (int)id;
    int own_tid = syscall(SYS_gettid) != getpid();
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    stage = 1;
    pthread_cond_signal(&cond);
    while (stage != 2)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return (void *)(long)(tls_value * 10 + own_tid);
}

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_barrier_t barrier;
static int shared_value;
static volatile int detached_done;

static void *rw_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        pthread_rwlock_wrlock(&rw);
        shared_value++;
        pthread_rwlock_unlock(&rw);
    }
    pthread_barrier_wait(&barrier);
    pthread_exit((void *)42);
}

static void *detached(void *arg)
{
    (void)arg;
    __atomic_store_n(&detached_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int create_retrying(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    int r;
    while ((r = pthread_create(t, a, fn, arg)) == EAGAIN)
        sched_yield();
    return r;
}

int main(void)
{
    pthread_t t;
    /* No retry here: with fewer vCPUs than threads, this must fail cleanly (EAGAIN). */
    if (pthread_create(&t, NULL, worker, (void *)1) != 0) {
        puts("pthread_create failed");
        return 1;
    }
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    while (stage != 1)
        pthread_cond_wait(&cond, &lock);
    stage = 2;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    void *ret;
    pthread_join(t, &ret);
    printf("counter=%ld\n", counter);
    printf("worker returned %ld\n", (long)ret);
    printf("main tls=%d\n", tls_value);

    pthread_barrier_init(&barrier, NULL, 2);
    if (create_retrying(&t, NULL, rw_worker, NULL) != 0)
        return 2;
    int readers_saw_valid = 1;
    for (int i = 0; i < 1000; i++) {
        pthread_rwlock_rdlock(&rw);
        if (shared_value < 0 || shared_value > 1000)
            readers_saw_valid = 0;
        pthread_rwlock_unlock(&rw);
    }
    pthread_barrier_wait(&barrier);
    pthread_join(t, &ret);
    printf("rwlock value=%d readers ok=%d exit code=%ld\n", shared_value, readers_saw_valid, (long)ret);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (create_retrying(&t, &attr, detached, NULL) != 0)
        return 3;
    while (!__atomic_load_n(&detached_done, __ATOMIC_ACQUIRE))
        sched_yield();
    printf("detached thread ran\n");
    return 0;
}
