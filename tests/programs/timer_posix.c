/* POSIX timers: SIGEV_SIGNAL with si_value and SI_TIMER, periodic with overruns counted
 * loosely, SIGEV_NONE polled with timer_gettime, TIMER_ABSTIME on CLOCK_REALTIME, a
 * SIGEV_THREAD_ID timer aimed at the calling thread, and errors. Loose timing bounds only. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "check.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

static volatile int fired, last_code, last_value, last_sig;
static void handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    fired++;
    last_sig = sig;
    last_code = si->si_code;
    last_value = si->si_value.sival_int;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    timer_t t;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN;
    ev.sigev_value.sival_int = 1234;
    TRY("timer_create", timer_create(CLOCK_MONOTONIC, &ev, &t));
    struct itimerspec its = {{0, 0}, {0, 30 * 1000 * 1000}}, cur;
    TRY("timer_settime", timer_settime(t, 0, &its, NULL));
    TRY("timer_gettime", timer_gettime(t, &cur));
    printf("armed: value_le_30ms %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec <= 30000000 && cur.it_value.tv_nsec > 0);
    while (!fired)
        pause();
    printf("one-shot: fired %d sig_ok %d code SI_TIMER %d value %d\n", fired, last_sig == SIGRTMIN,
           last_code == SI_TIMER, last_value);
    timer_gettime(t, &cur);
    printf("after: disarmed %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);

    /* Periodic. */
    fired = 0;
    its.it_interval.tv_nsec = 10 * 1000 * 1000;
    its.it_value.tv_nsec = 10 * 1000 * 1000;
    timer_settime(t, 0, &its, NULL);
    while (fired < 5)
        pause();
    struct itimerspec zero = {{0, 0}, {0, 0}};
    TRY("disarm", timer_settime(t, 0, &zero, &cur));
    printf("periodic: >=5 %d old interval %ld\n", fired >= 5, cur.it_interval.tv_nsec);
    printf("overrun >= 0: %d\n", timer_getoverrun(t) >= 0);
    TRY("timer_delete", timer_delete(t));
    TRY("timer_delete again", timer_delete(t));
    TRY("timer_gettime deleted", timer_gettime(t, &cur));

    /* SIGEV_NONE: nothing is delivered, the time runs down. */
    ev.sigev_notify = SIGEV_NONE;
    TRY("create none", timer_create(CLOCK_REALTIME, &ev, &t));
    its.it_interval.tv_nsec = 0;
    its.it_value.tv_sec = 100;
    its.it_value.tv_nsec = 0;
    timer_settime(t, 0, &its, NULL);
    timer_gettime(t, &cur);
    printf("none: left 90..100 s %d\n", cur.it_value.tv_sec >= 90 && cur.it_value.tv_sec <= 100);
    timer_delete(t);

    /* TIMER_ABSTIME on CLOCK_REALTIME, SIGEV_THREAD_ID to this thread. */
    fired = 0;
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGUSR1;
    ev.sigev_notify_thread_id = gettid();
    TRY("create thread_id", timer_create(CLOCK_REALTIME, &ev, &t));
    struct timespec nowts;
    clock_gettime(CLOCK_REALTIME, &nowts);
    its.it_value = nowts;
    its.it_value.tv_nsec += 20 * 1000 * 1000;
    if (its.it_value.tv_nsec >= 1000000000) {
        its.it_value.tv_sec++;
        its.it_value.tv_nsec -= 1000000000;
    }
    TRY("settime abs", timer_settime(t, TIMER_ABSTIME, &its, NULL));
    while (!fired)
        pause();
    printf("abs thread_id: fired %d sig_ok %d value %d\n", fired, last_sig == SIGUSR1, last_value);
    timer_delete(t);

    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = 0;
    TRY("create bad signo", timer_create(CLOCK_MONOTONIC, &ev, &t));
    ev.sigev_signo = SIGUSR1;
    TRY("create bad clock", timer_create(12345, &ev, &t));
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_notify_thread_id = 999999;
    TRY("create bad tid", timer_create(CLOCK_MONOTONIC, &ev, &t));
    return 0;
}
