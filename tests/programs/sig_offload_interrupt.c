/* A signal from the program itself interrupts an offloaded call blocked on the host: an
 * interval timer's SIGALRM during a read on an empty pipe (EINTR without SA_RESTART; with
 * SA_RESTART the read restarts and gets the byte the handler wrote), and pthread_kill of a
 * thread blocked in read from another thread (EINTR). */
// lwk-vmm: --cpus 2
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

static int fds[2], fds2[2];
static volatile sig_atomic_t alarms, usr1s;

static void on_alarm(int s)
{
    (void)s;
    alarms++;
    if (alarms == 2) {
        char c = 'x';
        if (write(fds[1], &c, 1) != 1)
            _exit(3);
    }
}

static void on_usr1(int s)
{
    (void)s;
    usr1s++;
}

static void arm_ms(long ms)
{
    struct itimerval it = {{0, 0}, {0, ms * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void *reader(void *arg)
{
    (void)arg;
    char c;
    long r = read(fds2[0], &c, 1);
    report("thread read interrupted by pthread_kill", r, errno);
    return NULL;
}

int main(void)
{
    char c;
    TRY("pipe", pipe(fds));
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    TRY("sigaction SIGALRM", sigaction(SIGALRM, &sa, NULL));
    arm_ms(50);
    long r = read(fds[0], &c, 1);
    report("read interrupted by SIGALRM", r, errno);
    printf("alarms: %d\n", (int)alarms);
    sa.sa_flags = SA_RESTART;
    TRY("sigaction SIGALRM SA_RESTART", sigaction(SIGALRM, &sa, NULL));
    arm_ms(50);
    r = read(fds[0], &c, 1);
    report("read restarted after SIGALRM", r, errno);
    printf("got '%c', alarms: %d\n", r == 1 ? c : '?', (int)alarms);

    TRY("pipe 2", pipe(fds2));
    struct sigaction su = {0};
    su.sa_handler = on_usr1;
    sigemptyset(&su.sa_mask);
    TRY("sigaction SIGUSR1", sigaction(SIGUSR1, &su, NULL));
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    usleep(100000);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    printf("usr1 handled: %d\n", (int)usr1s);
    return 0;
}
