/* Signals between two threads: tgkill to a thread spinning in user mode (delivered promptly
 * by an IPI), to a thread sleeping in nanosleep (EINTR with time left), to a thread waiting
 * on a futex under SA_RESTART (the wait restarts), a process-directed kill that the main
 * thread blocks (the other thread takes it), and pause() woken by a signal. */
// lwk-vmm: --cpus 2
#define _GNU_SOURCE
#include <errno.h>
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "check.h"

static volatile int stop, hits, ready, phase;
static volatile pid_t worker_tid, handler_tid;
static int futex_word;

static void handler(int sig)
{
    (void)sig;
    hits++;
    handler_tid = gettid();
}

static void wait_phase(int p)
{
    while (phase != p)
        __asm__ volatile("pause");
}

static void *worker(void *arg)
{
    (void)arg;
    worker_tid = gettid();
    /* 1: spin in user mode until a handler sets `stop`. */
    ready = 1;
    while (!stop)
        __asm__ volatile("" ::: "memory");
    printf("worker: spin ended by handler, hits %d\n", hits);
    /* 2: nanosleep interrupted. */
    ready = 2;
    struct timespec req = {5, 0}, rem = {0, 0};
    int r = nanosleep(&req, &rem);
    printf("worker: nanosleep r %d errno %s rem_ok %d hits %d\n", r, ename(errno),
           rem.tv_sec < 5 && (rem.tv_sec > 0 || rem.tv_nsec > 0), hits);
    /* 3: futex wait restarted under SA_RESTART; ends when main wakes it after the signal. */
    ready = 3;
    long fr = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    printf("worker: futex r %ld word %d hits %d\n", fr, futex_word, hits);
    /* 4: pause. */
    ready = 4;
    r = pause();
    printf("worker: pause r %d errno %s hits %d\n", r, ename(errno), hits);
    /* 5: wait for the process-directed signal. */
    ready = 5;
    wait_phase(5);
    return NULL;
}

static void settle(void)
{
    struct timespec t = {0, 20 * 1000 * 1000};
    nanosleep(&t, NULL);
}

/* The main thread's results are printed at the end: the worker prints meanwhile, and two
 * threads printing at once would make the order differ from run to run. */
static long results[8];
static int nresults;
#define SEND(expr) (results[nresults++] = (long)(expr))

static void spin_handler(int sig)
{
    (void)sig;
    hits++;
    stop = 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t;
    signal(SIGUSR1, spin_handler);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigaction(SIGUSR2, &sa, NULL); /* no SA_RESTART */
    pthread_create(&t, NULL, worker, NULL);
    while (ready != 1)
        ;
    SEND(syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR1));
    while (ready != 2)
        ;
    settle();
    SEND(syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR2));
    while (ready != 3)
        ;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
    settle();
    SEND(syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR2));
    settle();
    __atomic_store_n(&futex_word, 1, __ATOMIC_SEQ_CST);
    while (syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) == 0)
        settle();
    while (ready != 4)
        ;
    settle();
    SEND(syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR2));
    while (ready != 5)
        ;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int before = hits;
    SEND(kill(getpid(), SIGUSR2));
    while (hits == before)
        ;
    printf("process signal taken by worker: %d\n", handler_tid == worker_tid);
    phase = 5;
    pthread_join(t, NULL);
    printf("hits %d\n", hits);
    for (int i = 0; i < nresults; i++)
        printf("send %d: %ld\n", i, results[i]);
    return 0;
}
