/* pthreads on pinned vCPUs: create/join, mutex + condvar (futex WAIT/WAKE), a barrier,
 * thread-local storage, gettid != getpid in threads, joinable results. */
// lwk-vmm: --cpus 2
#define _GNU_SOURCE
#include <pthread.h>
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

int main(void)
{
    pthread_t t;
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
    return 0;
}
