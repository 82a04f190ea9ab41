/* posix_spawn and posix_spawnp (glibc and musl start the child with clone(CLONE_VM|CLONE_VFORK)):
 * file actions (open onto a chosen fd, dup2 of a pipe onto stdout, close), attributes (new
 * process group, signal mask, default disposition for an ignored signal), `/bin/sh -c 'exit 7'`
 * found through PATH, a nonexistent program (the error comes back as the return value); vfork()
 * then _exit (the parent resumes only after the child has exited) and vfork() then execve.
 * The spawned copies of this program report through a pipe; nothing prints pids or fd numbers. */
// lwk-vmm: --cpus 2 --oversubscribe timeslice
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The spawned image: argv = [self, "report", parent pid, opened fd, closed fd]. */
static int report_mode(char **argv)
{
    int opened = atoi(argv[3]), closed = atoi(argv[4]);
    printf("report: getppid() is the spawner: %s\n", yes(getppid() == atoi(argv[2])));
    printf("report: leads its own process group: %s\n", yes(getpgrp() == getpid()));
    sigset_t m;
    sigprocmask(SIG_BLOCK, NULL, &m);
    printf("report: SIGUSR1 blocked: %s\n", yes(sigismember(&m, SIGUSR1)));
    struct sigaction sa;
    sigaction(SIGUSR2, NULL, &sa);
    printf("report: SIGUSR2 is SIG_DFL: %s\n", yes(sa.sa_handler == SIG_DFL));
    char buf[64] = {0};
    ssize_t n = read(opened, buf, sizeof buf - 1);
    printf("report: opened fd reads \"%s\" (%zd bytes)\n", n > 0 ? buf : "", n);
    errno = 0;
    int r = fcntl(closed, F_GETFD);
    printf("report: closed fd: %s\n", r < 0 ? ename(errno) : "open");
    return 6;
}

static int simple_mode(int argc, char **argv)
{
    printf("simple: argc %d, last \"%s\", pgid same as parent's: %s\n", argc, argv[argc - 1],
           yes(getpgrp() == atoi(argv[2])));
    return 8;
}

/* Prints every line the spawned program wrote to the pipe, then closes it. */
static void drain(int fd)
{
    char buf[2048];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += r;
    buf[n] = 0;
    fputs(buf, stdout);
    close(fd);
}

static volatile sig_atomic_t spawn_chld;

static void on_spawn_chld(int s)
{
    (void)s;
    spawn_chld++;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "report"))
        return report_mode(argv);
    if (argc >= 3 && !strcmp(argv[1], "simple"))
        return simple_mode(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int st;

    char path[64];
    snprintf(path, sizeof path, "/tmp/lwk-proc-spawn-%d", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    write(fd, "file contents", 13);
    close(fd);

    /* posix_spawn with file actions and attributes. */
    int p[2];
    if (pipe(p))
        return 1;
    int to_close = open("/dev/null", O_RDONLY);
    const int opened = 40;
    char spid[16], sopened[16], sclosed[16];
    snprintf(spid, sizeof spid, "%d", (int)getpid());
    snprintf(sopened, sizeof sopened, "%d", opened);
    snprintf(sclosed, sizeof sclosed, "%d", to_close);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, opened, path, O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    posix_spawn_file_actions_addclose(&fa, to_close);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t mask, def;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    posix_spawnattr_setsigmask(&at, &mask);
    sigemptyset(&def);
    sigaddset(&def, SIGUSR2);
    posix_spawnattr_setsigdefault(&at, &def);
    signal(SIGUSR2, SIG_IGN);
    char *rargs[] = {argv[0], "report", spid, sopened, sclosed, NULL};
    pid_t pid = -1;
    fflush(stdout);
    int e = posix_spawn(&pid, argv[0], &fa, &at, rargs, environ);
    printf("posix_spawn with file actions: %s\n", e ? ename(e) : "ok");
    close(p[1]);
    drain(p[0]);
    st = -1;
    printf("waitpid returns the spawned pid: %s\n", yes(waitpid(pid, &st, 0) == pid));
    print_status("spawned report", st);
    signal(SIGUSR2, SIG_DFL);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(to_close);
    unlink(path);

    /* No attributes: the child shares stdout and the process group. */
    char spgrp[16];
    snprintf(spgrp, sizeof spgrp, "%d", (int)getpgrp());
    char *sargs[] = {argv[0], "simple", spgrp, "plain spawn", NULL};
    fflush(stdout);
    e = posix_spawn(&pid, argv[0], NULL, NULL, sargs, environ);
    waitpid(pid, &st, 0); /* before printing: the child writes to the same stdout */
    printf("posix_spawn plain: %s\n", e ? ename(e) : "ok");
    print_status("plain spawn", st);

    /* posix_spawnp through PATH. */
    char *env[] = {"PATH=/nonexistent:/usr/bin:/bin", NULL};
    char *shargs[] = {"sh", "-c", "exit 7", NULL};
    e = posix_spawnp(&pid, "sh", NULL, NULL, shargs, env);
    printf("posix_spawnp sh -c 'exit 7': %s\n", e ? ename(e) : "ok");
    waitpid(pid, &st, 0);
    print_status("sh -c 'exit 7'", st);

    /* Failures come back as the return value; no child is left to wait for. */
    char *nargs[] = {"nope", NULL};
    pid = 0;
    e = posix_spawn(&pid, "/nonexistent/prog", NULL, NULL, nargs, environ);
    printf("posix_spawn nonexistent: %s\n", e ? ename(e) : "ok");
    e = posix_spawnp(&pid, "no-such-program-anywhere", NULL, NULL, nargs, env);
    printf("posix_spawnp not in PATH: %s\n", e ? ename(e) : "ok");
    TRY("wait after failed spawns", wait(&st));

    /* vfork: the parent resumes after the child's _exit, which has written to the pipe. */
    if (pipe(p))
        return 1;
    fflush(stdout);
    pid = vfork();
    if (pid == 0) {
        write(p[1], "v", 1);
        _exit(3);
    }
    int fl = fcntl(p[0], F_GETFL);
    fcntl(p[0], F_SETFL, fl | O_NONBLOCK);
    char c = 0;
    ssize_t n = read(p[0], &c, 1);
    printf("after vfork returns, the child's byte is there: %s\n", yes(n == 1 && c == 'v'));
    waitpid(pid, &st, 0);
    print_status("vfork + _exit(3)", st);
    close(p[0]);
    close(p[1]);

    /* vfork + execve. */
    char *vargs[] = {argv[0], "simple", spgrp, "via vfork", NULL};
    fflush(stdout);
    pid = vfork();
    if (pid == 0) {
        execve(argv[0], vargs, environ);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    print_status("vfork + execve", st);
    fflush(stdout);
    pid = vfork();
    if (pid == 0) {
        execve("/nonexistent/prog", vargs, environ);
        _exit(errno == ENOENT ? 99 : 98);
    }
    waitpid(pid, &st, 0);
    print_status("vfork + failing execve (99 = ENOENT)", st);

    /* The child's exit signal: glibc's posix_spawn uses clone3, which carries it in a field
     * of its own. */
    spawn_chld = 0;
    signal(SIGCHLD, on_spawn_chld);
    if (posix_spawn(&pid, argv[0], NULL, NULL, sargs, environ) == 0) {
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        printf("SIGCHLD after posix_spawn's child ended: %d\n", (int)spawn_chld);
    }
    signal(SIGCHLD, SIG_DFL);
    printf("done\n");
    return 0;
}
