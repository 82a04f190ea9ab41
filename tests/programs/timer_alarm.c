/* alarm + pause, setitimer(ITIMER_REAL) periodic with getitimer, alarm's return value, and
 * a nanosleep interrupted by SIGALRM. Loose timing bounds only. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static volatile int alarms;
static void on_alarm(int sig) { (void)sig; alarms++; }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGALRM, on_alarm);
    printf("alarm first: %u\n", alarm(1));
    double t0 = now();
    int r = pause();
    double dt = now() - t0;
    printf("pause: r %d errno %s alarms %d took_0.5_to_3s %d\n", r, ename(errno), alarms,
           dt > 0.5 && dt < 3.0);
    alarm(10);
    printf("alarm replaced: %u\n", alarm(0));
    printf("alarm cleared: %u\n", alarm(0));

    struct itimerval it = {{0, 20000}, {0, 20000}}, cur;
    TRY("setitimer", setitimer(ITIMER_REAL, &it, NULL));
    TRY("getitimer", getitimer(ITIMER_REAL, &cur));
    printf("interval %ld.%06ld value_le_20ms %d\n", (long)cur.it_interval.tv_sec,
           (long)cur.it_interval.tv_usec, cur.it_value.tv_sec == 0 && cur.it_value.tv_usec <= 20000);
    alarms = 0;
    while (alarms < 5)
        pause();
    struct itimerval off = {{0, 0}, {0, 0}};
    TRY("setitimer off", setitimer(ITIMER_REAL, &off, &cur));
    printf("periodic alarms >= 5: %d, old interval %ld\n", alarms >= 5, (long)cur.it_interval.tv_usec);
    getitimer(ITIMER_REAL, &cur);
    printf("disarmed: %ld %ld\n", (long)cur.it_value.tv_sec, (long)cur.it_value.tv_usec);
    TRY("setitimer bad which", setitimer(5, &it, NULL));
    struct itimerval bad = {{0, 0}, {0, 2000000}};
    TRY("setitimer bad usec", setitimer(ITIMER_REAL, &bad, NULL));

    /* nanosleep interrupted by SIGALRM: EINTR and the time left. */
    struct itimerval once = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &once, NULL);
    struct timespec req = {3, 0}, rem = {0, 0};
    r = nanosleep(&req, &rem);
    printf("nanosleep: r %d errno %s rem_between %d\n", r, ename(errno),
           rem.tv_sec >= 1 && rem.tv_sec < 3);
    /* SA_RESTART does not restart nanosleep; a blocked alarm does not interrupt it. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    setitimer(ITIMER_REAL, &once, NULL);
    req.tv_sec = 0;
    req.tv_nsec = 150 * 1000 * 1000;
    r = nanosleep(&req, NULL);
    sigset_t pend;
    sigpending(&pend);
    printf("blocked alarm: nanosleep r %d pending %d\n", r, sigismember(&pend, SIGALRM));
    int s;
    sigwait(&set, &s);
    printf("sigwait got %d\n", s);
    return 0;
}
