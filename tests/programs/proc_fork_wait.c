/* fork and the wait family: children exiting with codes 0, 3 and 255, killed by SIGKILL from the
 * parent, by a SIGSEGV fault, by abort() and by raise(SIGTERM); wait4, waitpid and waitid
 * (P_PID, P_ALL, P_PGID, WNOWAIT, WNOHANG before the child exits, synchronised by a pipe);
 * ECHILD with no children left; several children reaped by waitpid(-1) (codes sorted before
 * printing); the child's memory is a copy (global, heap and stack writes stay in the child);
 * getppid() in the child; fork from a parent with a second thread (the child has one thread).
 * Prints relations and statuses, never pids. */
// lwk-vmm: --cpus 2 --oversubscribe timeslice
#define _GNU_SOURCE
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int global_var = 1;

static void print_wait(const char *label, int st)
{
    if (WIFEXITED(st))
        printf("%s: exited %d\n", label, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: signaled %d (%s)\n", label, WTERMSIG(st), signame(WTERMSIG(st)));
    else
        printf("%s: other status %#x\n", label, st);
}

static const char *cld(int code)
{
    switch (code) {
    case CLD_EXITED: return "CLD_EXITED";
    case CLD_KILLED: return "CLD_KILLED";
    case CLD_DUMPED: return "CLD_DUMPED";
    case CLD_STOPPED: return "CLD_STOPPED";
    case CLD_CONTINUED: return "CLD_CONTINUED";
    default: return "?";
    }
}

static void no_core(void)
{
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
}

/* A child exiting with `code`, reaped by waitpid(pid). */
static void exit_code(int code)
{
    pid_t pid = fork_flushed();
    if (pid == 0)
        _exit(code);
    int st = -1;
    pid_t r = waitpid(pid, &st, 0);
    char label[64];
    snprintf(label, sizeof label, "exit(%d) via waitpid (pid matches: %s)", code, yes(r == pid));
    print_wait(label, st);
}

static long threads_in_status(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

static int thread_pipe[2];

static void *blocker(void *arg)
{
    (void)arg;
    char c;
    while (read(thread_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void *child_thread(void *arg)
{
    return (void *)((long)arg + 1);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pid_t me = getpid();
    int st;

    /* Exit codes. */
    exit_code(0);
    exit_code(3);
    exit_code(255);
    exit_code(256 + 7); /* only the low 8 bits survive */

    /* wait4 with rusage. */
    pid_t pid = fork_flushed();
    if (pid == 0)
        _exit(42);
    struct rusage ru;
    st = -1;
    pid_t r = wait4(pid, &st, 0, &ru);
    printf("wait4 returned the child: %s\n", yes(r == pid));
    print_wait("exit(42) via wait4", st);

    /* Killed by the parent: the child blocks on an empty pipe. */
    int p[2];
    if (pipe(p))
        return 1;
    pid = fork_flushed();
    if (pid == 0) {
        char c;
        close(p[1]);
        read(p[0], &c, 1);
        _exit(0);
    }
    close(p[0]);
    TRY("kill(child, SIGKILL)", kill(pid, SIGKILL));
    st = -1;
    waitpid(pid, &st, 0);
    print_wait("killed by parent", st);
    close(p[1]);

    /* A fault. */
    pid = fork_flushed();
    if (pid == 0) {
        no_core();
        volatile int *volatile bad = NULL;
        *bad = 1;
        _exit(0);
    }
    st = -1;
    waitpid(pid, &st, 0);
    print_wait("null write", st);

    /* abort(). */
    pid = fork_flushed();
    if (pid == 0) {
        no_core();
        abort();
    }
    st = -1;
    waitpid(pid, &st, 0);
    print_wait("abort()", st);

    /* raise(SIGTERM), reaped by waitid(P_PID). */
    pid = fork_flushed();
    if (pid == 0) {
        raise(SIGTERM);
        _exit(0);
    }
    siginfo_t si;
    memset(&si, 0, sizeof si);
    TRY("waitid(P_PID, SIGTERM child)", waitid(P_PID, pid, &si, WEXITED));
    printf("waitid: si_signo %s, si_code %s, si_status %d (%s), si_pid matches: %s\n",
           signame(si.si_signo), cld(si.si_code), si.si_status,
           signame(si.si_status), yes(si.si_pid == pid));

    /* waitid WNOWAIT leaves the zombie; WNOHANG before the child exits returns 0 with si_pid 0. */
    if (pipe(p))
        return 1;
    pid = fork_flushed();
    if (pid == 0) {
        char c;
        close(p[1]);
        read(p[0], &c, 1);
        _exit(c);
    }
    close(p[0]);
    st = -1;
    VAL("waitpid WNOHANG while running", waitpid(pid, &st, WNOHANG));
    memset(&si, 0, sizeof si);
    si.si_pid = 12345;
    VAL("waitid WNOHANG while running", waitid(P_PID, pid, &si, WEXITED | WNOHANG));
    printf("waitid WNOHANG si_pid zeroed: %s\n", yes(si.si_pid == 0));
    char code = 9;
    write(p[1], &code, 1);
    close(p[1]);
    memset(&si, 0, sizeof si);
    TRY("waitid WNOWAIT", waitid(P_PID, pid, &si, WEXITED | WNOWAIT));
    printf("WNOWAIT: si_code %s, si_status %d\n", cld(si.si_code), si.si_status);
    TRY("kill(zombie, 0)", kill(pid, 0));
    memset(&si, 0, sizeof si);
    TRY("waitid(P_ALL) reaps it", waitid(P_ALL, 0, &si, WEXITED));
    printf("P_ALL: si_code %s, si_status %d, same child: %s\n", cld(si.si_code), si.si_status,
           yes(si.si_pid == pid));

    /* waitid(P_PGID) for the caller's group. */
    pid = fork_flushed();
    if (pid == 0)
        _exit(17);
    memset(&si, 0, sizeof si);
    TRY("waitid(P_PGID, getpgrp())", waitid(P_PGID, getpgrp(), &si, WEXITED));
    printf("P_PGID: si_code %s, si_status %d, same child: %s\n", cld(si.si_code), si.si_status,
           yes(si.si_pid == pid));

    /* Several children, reaped in any order by waitpid(-1). */
    int codes[4], n = 0;
    for (int i = 0; i < 4; i++) {
        if (fork_flushed() == 0)
            _exit(20 + (i * 7) % 4);
    }
    while ((r = waitpid(-1, &st, 0)) > 0)
        codes[n++] = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    printf("waitpid(-1) loop ended with: %s\n", ename(errno));
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (codes[j] < codes[i]) {
                int t = codes[i];
                codes[i] = codes[j];
                codes[j] = t;
            }
    printf("reaped %d children, codes:", n);
    for (int i = 0; i < n; i++)
        printf(" %d", codes[i]);
    printf("\n");
    TRY("wait(NULL) with no children", wait(NULL));
    TRY("waitid(P_ALL) with no children", waitid(P_ALL, 0, &si, WEXITED));
    TRY("waitpid(1) not a child", waitpid(1, &st, 0));

    /* Memory is copied: the child's writes stay in the child. */
    int *heap = malloc(sizeof *heap);
    *heap = 2;
    volatile int stack_var = 3;
    pid = fork_flushed();
    if (pid == 0) {
        global_var = 101;
        *heap = 102;
        stack_var = 103;
        int own = global_var == 101 && *heap == 102 && stack_var == 103;
        int ppid_ok = getppid() == me;
        int self_new = getpid() != me;
        _exit((own ? 1 : 0) | (ppid_ok ? 2 : 0) | (self_new ? 4 : 0));
    }
    st = -1;
    waitpid(pid, &st, 0);
    int bits = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    printf("child saw its own writes: %s\n", yes(bits & 1));
    printf("child: getppid() == parent's getpid(): %s\n", yes(bits & 2));
    printf("child: getpid() differs from the parent's: %s\n", yes(bits & 4));
    printf("parent still has global %d, heap %d, stack %d\n", global_var, *heap, stack_var);
    printf("fork returned a pid other than the parent's: %s\n", yes(pid > 0 && pid != me));

    /* fork with a second thread alive: the child has only the forking thread. */
    if (pipe(thread_pipe))
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, blocker, NULL);
    printf("parent threads: %ld\n", threads_in_status());
    pid = fork_flushed();
    if (pid == 0) {
        long nthreads = threads_in_status();
        pthread_t t2;
        void *ret = NULL;
        /* The child can start and join its own thread. */
        int ok = pthread_create(&t2, NULL, child_thread, (void *)41L) == 0 &&
                 pthread_join(t2, &ret) == 0 && (long)ret == 42;
        _exit((nthreads == 1 ? 1 : 0) | (ok ? 2 : 0));
    }
    st = -1;
    waitpid(pid, &st, 0);
    bits = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    printf("child of a 2-thread parent has 1 thread: %s\n", yes(bits & 1));
    printf("child can create and join a thread: %s\n", yes(bits & 2));
    write(thread_pipe[1], "x", 1);
    pthread_join(t, NULL);
    printf("done\n");
    return 0;
}
