/* Signals between processes and process groups: SIGCHLD (an SA_SIGINFO handler's si_code and
 * si_status; a handler reaping three children with SA_RESTART|SA_NOCLDSTOP; SIG_IGN and
 * SA_NOCLDWAIT, after which children are reaped automatically and wait reports ECHILD); a zombie
 * answers kill(pid, 0) until it is reaped; kill() to a child's handler; setpgid of two children
 * into one group killed by kill(-pgid); kill(0) reaching every process of the sender's group;
 * getpgid/getsid of a child; setsid in a child; prctl PR_SET_NAME/PR_GET_NAME (inherited by
 * fork); PR_SET_PDEATHSIG in a grandchild whose parent exits, and the orphan's new parent (this
 * process is a child subreaper, so it is the new parent natively too). All synchronised by
 * pipes; prints relations and signal names, never pids. */
// lwk-vmm: --cpus 2 --oversubscribe timeslice
#define _GNU_SOURCE
#include "check.h"
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void wait_byte(int fd)
{
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR)
        ;
}

static volatile sig_atomic_t chld_code, chld_status, chld_pid_match, chld_count, reaped, got_sig;
static volatile pid_t expected_pid;

static void on_chld_info(int s, siginfo_t *si, void *ctx)
{
    (void)s;
    (void)ctx;
    chld_code = si->si_code;
    chld_status = si->si_status;
    chld_pid_match = si->si_pid == expected_pid;
    chld_count++;
}

static void on_chld_reap(int s)
{
    (void)s;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        reaped++;
    errno = saved;
}

static void on_sig(int s)
{
    got_sig = s;
}

static int pdeath_pipe[2];

static void on_pdeath(int s)
{
    char c = (char)s;
    write(pdeath_pipe[1], &c, 1);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int st, p[2];
    pid_t pid, me = getpid();
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);

    /* SIGCHLD with SA_SIGINFO: one child exits 5. */
    struct sigaction sa = {0};
    sa.sa_sigaction = on_chld_info;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid = fork_flushed();
    if (pid == 0)
        _exit(5);
    expected_pid = pid;
    while (chld_count == 0)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("SIGCHLD siginfo: si_code is CLD_EXITED: %s, si_status %d, si_pid is the child: %s\n",
           yes(chld_code == CLD_EXITED), (int)chld_status, yes(chld_pid_match));
    waitpid(pid, &st, 0);
    print_status("SIGCHLD child", st);

    /* A handler that reaps: three children. */
    sa.sa_handler = on_chld_reap;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sigprocmask(SIG_BLOCK, &chld, &old);
    for (int i = 0; i < 3; i++)
        if (fork_flushed() == 0)
            _exit(i);
    while (reaped < 3)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("children reaped by the SIGCHLD handler: %d\n", (int)reaped);
    TRY("wait after the handler reaped all", wait(&st));

    /* SIGCHLD ignored: children do not become zombies; wait blocks until they are gone. */
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 2; i++)
        if (fork_flushed() == 0)
            _exit(1);
    TRY("wait with SIGCHLD ignored", wait(&st));
    signal(SIGCHLD, SIG_DFL);

    /* SA_NOCLDWAIT with the default action. */
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = SA_NOCLDWAIT;
    sigaction(SIGCHLD, &sa, NULL);
    if (fork_flushed() == 0)
        _exit(1);
    TRY("wait with SA_NOCLDWAIT", wait(&st));
    signal(SIGCHLD, SIG_DFL);

    /* A zombie answers kill(pid, 0) until it is reaped. */
    pid = fork_flushed();
    if (pid == 0)
        _exit(0);
    siginfo_t si;
    waitid(P_PID, pid, &si, WEXITED | WNOWAIT);
    TRY("kill(zombie, 0)", kill(pid, 0));
    waitpid(pid, &st, 0);
    TRY("kill(reaped, 0)", kill(pid, 0));

    /* kill() to a child's handler. */
    if (pipe(p))
        return 1;
    pid = fork_flushed();
    if (pid == 0) {
        signal(SIGUSR1, on_sig);
        sigset_t m, none;
        sigemptyset(&m);
        sigaddset(&m, SIGUSR1);
        sigprocmask(SIG_BLOCK, &m, &none);
        write(p[1], "r", 1);
        while (!got_sig)
            sigsuspend(&none);
        _exit(got_sig == SIGUSR1 ? 10 : 1);
    }
    wait_byte(p[0]);
    TRY("kill(child, SIGUSR1)", kill(pid, SIGUSR1));
    waitpid(pid, &st, 0);
    print_status("child with a SIGUSR1 handler (10 = caught)", st);
    close(p[0]);
    close(p[1]);

    /* Two children in a new group, killed together. */
    if (pipe(p))
        return 1;
    pid_t a = fork_flushed();
    if (a == 0) {
        setpgid(0, 0);
        write(p[1], "a", 1);
        for (;;)
            pause();
    }
    setpgid(a, a);
    pid_t b = fork_flushed();
    if (b == 0) {
        setpgid(0, a);
        write(p[1], "b", 1);
        for (;;)
            pause();
    }
    setpgid(b, a);
    wait_byte(p[0]);
    wait_byte(p[0]);
    printf("child in the parent's session: %s\n", yes(getsid(a) == getsid(0)));
    printf("getpgid(first) == first: %s, getpgid(second) == first: %s, own group unchanged: %s\n",
           yes(getpgid(a) == a), yes(getpgid(b) == a), yes(getpgrp() != a));
    TRY("kill(-group, SIGTERM)", kill(-a, SIGTERM));
    waitpid(a, &st, 0);
    print_status("first in group", st);
    waitpid(b, &st, 0);
    print_status("second in group", st);
    TRY("kill(-group) after both died", kill(-a, SIGTERM));
    close(p[0]);
    close(p[1]);

    /* kill(0, sig) from a child that leads a group with a grandchild in it. */
    if (pipe(p))
        return 1;
    pid = fork_flushed();
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGUSR2, on_sig);
        pid_t g = fork();
        if (g == 0) {
            signal(SIGUSR2, SIG_DFL);
            write(p[1], "g", 1);
            for (;;)
                pause();
        }
        wait_byte(p[0]);
        kill(0, SIGUSR2);
        int gst;
        waitpid(g, &gst, 0);
        int killed = WIFSIGNALED(gst) && WTERMSIG(gst) == SIGUSR2;
        _exit((killed ? 1 : 0) | (got_sig == SIGUSR2 ? 2 : 0));
    }
    waitpid(pid, &st, 0);
    printf("kill(0, SIGUSR2): grandchild killed: %s, sender's own handler ran: %s\n",
           yes(WIFEXITED(st) && (WEXITSTATUS(st) & 1)), yes(WIFEXITED(st) && (WEXITSTATUS(st) & 2)));
    close(p[0]);
    close(p[1]);

    /* setsid in a child. */
    int q[2];
    if (pipe(p) || pipe(q))
        return 1;
    pid = fork_flushed();
    if (pid == 0) {
        pid_t s = setsid();
        int ok = s == getpid() && getsid(0) == s && getpgrp() == s;
        errno = 0;
        int again = setsid() < 0 && errno == EPERM;
        errno = 0;
        int pg = setpgid(0, 0) < 0 && errno == EPERM; /* a session leader cannot move */
        write(p[1], "s", 1);
        wait_byte(q[0]);
        _exit((ok ? 1 : 0) | (again ? 2 : 0) | (pg ? 4 : 0));
    }
    wait_byte(p[0]);
    printf("after setsid: getsid(child) == child: %s, getpgid(child) == child: %s\n",
           yes(getsid(pid) == pid), yes(getpgid(pid) == pid));
    TRY("setpgid(child in another session, own group)", setpgid(pid, getpgrp()));
    write(q[1], "q", 1);
    waitpid(pid, &st, 0);
    int bits = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    printf("child: setsid() made it leader of session and group: %s\n", yes(bits & 1));
    printf("child: second setsid() fails with EPERM: %s\n", yes(bits & 2));
    printf("child: setpgid(0, 0) as session leader fails with EPERM: %s\n", yes(bits & 4));
    for (int i = 0; i < 2; i++) {
        close(p[i]);
        close(q[i]);
    }

    /* prctl names. */
    char name[32] = {0};
    TRY("PR_SET_NAME", prctl(PR_SET_NAME, "proc-signals", 0, 0, 0));
    prctl(PR_GET_NAME, name, 0, 0, 0);
    printf("PR_GET_NAME: \"%s\"\n", name);
    prctl(PR_SET_NAME, "a-much-too-long-process-name", 0, 0, 0);
    memset(name, 0, sizeof name);
    prctl(PR_GET_NAME, name, 0, 0, 0);
    printf("PR_GET_NAME after a long name: \"%s\" (%zu bytes)\n", name, strlen(name));
    if (pipe(p))
        return 1;
    pid = fork_flushed();
    if (pid == 0) {
        char n[32] = {0};
        prctl(PR_GET_NAME, n, 0, 0, 0);
        prctl(PR_SET_NAME, "child-name", 0, 0, 0);
        write(p[1], n, strlen(n));
        _exit(0);
    }
    waitpid(pid, &st, 0);
    close(p[1]);
    memset(name, 0, sizeof name);
    read(p[0], name, sizeof name - 1);
    close(p[0]);
    printf("child inherited the name: %s\n", yes(!strcmp(name, "a-much-too-long")));
    memset(name, 0, sizeof name);
    prctl(PR_GET_NAME, name, 0, 0, 0);
    printf("parent's name unchanged by the child: %s\n", yes(!strcmp(name, "a-much-too-long")));

    /* PR_SET_PDEATHSIG and reparenting of an orphan to this subreaper. */
    TRY("PR_SET_CHILD_SUBREAPER", prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
    if (pipe(pdeath_pipe) || pipe(p) || pipe(q))
        return 1;
    pid_t middle = fork_flushed();
    if (middle == 0) {
        pid_t mid_self = getpid();
        pid_t g = fork();
        if (g == 0) {
            signal(SIGUSR1, on_pdeath);
            prctl(PR_SET_PDEATHSIG, SIGUSR1, 0, 0, 0);
            int sig = 0;
            prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0);
            char ok = (getppid() == mid_self && sig == SIGUSR1) ? 'y' : 'n';
            write(p[1], &ok, 1);
            /* Waits for the parent's death (the signal's handler writes to pdeath_pipe). */
            wait_byte(q[0]);
            char re = getppid() == me ? 'y' : 'n';
            write(p[1], &re, 1);
            _exit(12);
        }
        char c = 0;
        read(p[0], &c, 1); /* the grandchild is set up */
        _exit(c == 'y' ? 0 : 1);
    }
    waitpid(middle, &st, 0);
    print_status("middle process (0: grandchild saw it as parent, PR_GET_PDEATHSIG ok)", st);
    char sig = 0;
    read(pdeath_pipe[0], &sig, 1);
    printf("grandchild's parent-death signal: %s\n", signame(sig));
    write(q[1], "go", 1);
    char re = 0;
    read(p[0], &re, 1);
    printf("orphan reparented to this subreaper: %s\n", yes(re == 'y'));
    st = -1;
    pid = waitpid(-1, &st, 0);
    printf("subreaper reaps the orphan: %s\n", yes(pid > 0));
    print_status("orphan", st);
    TRY("no children left", wait(&st));
    printf("done\n");
    return 0;
}
