/* execve and execveat: the program re-executes itself (through argv[0], made absolute) with a
 * new argv and envp and the new image prints them; pid and parent survive exec; handlers are
 * reset, ignored signals stay ignored and the signal mask is kept; an O_CLOEXEC fd is closed and
 * a plain one survives; execveat with AT_EMPTY_PATH on an fd and with a directory fd and a
 * relative path; `#!` scripts (/bin/sh, /bin/sh with an option, and this program as the
 * interpreter with an optional argument, so it receives [interp, optarg, script, args]); failures
 * with ENOENT, EACCES (not executable, a directory), ENOTDIR, ENOEXEC (raw execve of garbage),
 * ENOENT for a missing `#!` interpreter and E2BIG for one argument over MAX_ARG_STRLEN.
 * Files go to a per-run directory under /tmp; only base names are printed. */
// lwk-vmm: --cpus 2 --oversubscribe timeslice
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static char self[2 * PATH_MAX + 2];
static char dir[PATH_MAX];

/* Forks; the child runs `fn(arg)` (which execs) and exits 127 if it returns; the parent waits
 * and prints the child's status. */
static void in_child(const char *label, void (*fn)(void *), void *arg)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn(arg);
        printf("%s: exec failed: %s\n", label, ename(errno));
        fflush(stdout);
        _exit(127);
    }
    int st = -1;
    waitpid(pid, &st, 0);
    print_status(label, st);
}

/* ---- modes of the re-executed image ---- */

static int show(int argc, char **argv)
{
    printf("show: argc %d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("show: argv[%d] = \"%s\"\n", i, i == 0 ? base(argv[i]) : argv[i]);
    for (char **e = environ; *e; e++)
        printf("show: env \"%s\"\n", *e);
    /* The process's own view after exec: /proc/self/cmdline holds the new argv (NULs shown
     * as '|', argv[0] by its last component), /proc/self/comm the exec'd file's name. */
    char b[512];
    int fd = open("/proc/self/cmdline", O_RDONLY);
    int n = fd < 0 ? -1 : (int)read(fd, b, sizeof b - 1);
    if (fd >= 0)
        close(fd);
    if (n > 0) {
        b[n] = 0;
        int first = (int)strlen(b) + 1;
        for (int i = first; i < n; i++)
            if (!b[i])
                b[i] = '|';
        printf("show: cmdline \"%s|%s\"\n", base(b), first < n ? b + first : "");
    } else {
        printf("show: cmdline unreadable\n");
    }
    fd = open("/proc/self/comm", O_RDONLY);
    n = fd < 0 ? -1 : (int)read(fd, b, sizeof b - 1);
    if (fd >= 0)
        close(fd);
    printf("show: comm %.*s", n > 0 ? n : 0, b);
    return 0;
}

static int ids(char **argv)
{
    printf("ids: getpid() unchanged by exec: %s\n", yes(getpid() == atoi(argv[2])));
    printf("ids: getppid() unchanged by exec: %s\n", yes(getppid() == atoi(argv[3])));
    return 0;
}

static int sigs(void)
{
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    printf("sigs: SIGUSR1 (had a handler) is now %s\n",
           sa.sa_handler == SIG_DFL ? "SIG_DFL" : "not SIG_DFL");
    sigaction(SIGUSR2, NULL, &sa);
    printf("sigs: SIGUSR2 (ignored) is now %s\n",
           sa.sa_handler == SIG_IGN ? "SIG_IGN" : "not SIG_IGN");
    sigset_t m;
    sigprocmask(SIG_BLOCK, NULL, &m);
    printf("sigs: SIGHUP still blocked: %s, SIGUSR1 blocked: %s\n", yes(sigismember(&m, SIGHUP)),
           yes(sigismember(&m, SIGUSR1)));
    return 0;
}

static int fds(char **argv)
{
    int cloexec_fd = atoi(argv[2]), keep_fd = atoi(argv[3]);
    errno = 0;
    int r = fcntl(cloexec_fd, F_GETFD);
    printf("fds: O_CLOEXEC fd after exec: %s\n", r < 0 ? ename(errno) : "open");
    char buf[32] = {0};
    ssize_t n = read(keep_fd, buf, sizeof buf - 1);
    printf("fds: plain fd after exec reads \"%s\" (%zd bytes)\n", n > 0 ? buf : "", n);
    return 0;
}

/* This program as a `#!` interpreter: argv = [interp, optarg, script, args...]. */
static int interp(int argc, char **argv)
{
    printf("interp: argc %d\n", argc);
    printf("interp: argv[0] is an absolute path: %s\n", yes(argv[0][0] == '/'));
    for (int i = 0; i < argc; i++)
        printf("interp: argv[%d] = \"%s\"\n", i, i == 0 || i == 2 ? base(argv[i]) : argv[i]);
    return 4;
}

/* ---- exec helpers run in children ---- */

static void exec_show(void *arg)
{
    (void)arg;
    char *args[] = {"renamed-zero", "show", "two words", "", "last", NULL};
    char *env[] = {"A=1", "B=two words", "EMPTY=", NULL};
    execve(self, args, env);
}

static void exec_ids(void *arg)
{
    (void)arg;
    char p[16], pp[16];
    snprintf(p, sizeof p, "%d", (int)getpid());
    snprintf(pp, sizeof pp, "%d", (int)getppid());
    char *args[] = {self, "ids", p, pp, NULL};
    execve(self, args, environ);
}

static void on_usr1(int s)
{
    (void)s;
}

static void exec_sigs(void *arg)
{
    (void)arg;
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGUSR2, SIG_IGN);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGHUP);
    sigprocmask(SIG_BLOCK, &m, NULL);
    char *args[] = {self, "sigs", NULL};
    execve(self, args, environ);
}

static void exec_fds(void *arg)
{
    (void)arg;
    int cx[2], keep[2];
    if (pipe2(cx, O_CLOEXEC) || pipe(keep))
        return;
    write(keep[1], "survived", 8);
    close(keep[1]);
    char a[16], b[16];
    snprintf(a, sizeof a, "%d", cx[0]);
    snprintf(b, sizeof b, "%d", keep[0]);
    char *args[] = {self, "fds", a, b, NULL};
    execve(self, args, environ);
}

static void execveat_fd(void *arg)
{
    (void)arg;
    int fd = open(self, O_RDONLY);
    char *args[] = {"via-fd", "show", "execveat AT_EMPTY_PATH", NULL};
    char *env[] = {"HOW=fd", NULL};
    syscall(SYS_execveat, fd, "", args, env, AT_EMPTY_PATH);
}

static void execveat_dirfd(void *arg)
{
    (void)arg;
    char d[sizeof self];
    strcpy(d, self);
    *strrchr(d, '/') = 0;
    int dfd = open(d[0] ? d : "/", O_RDONLY | O_DIRECTORY);
    char *args[] = {"via-dirfd", "show", "execveat dirfd relative", NULL};
    char *env[] = {"HOW=dirfd", NULL};
    syscall(SYS_execveat, dfd, base(self), args, env, 0);
}

static void exec_path(void *arg)
{
    char *script = arg;
    char *args[] = {script, "one", "two three", NULL};
    char *env[] = {"PATH=/usr/bin:/bin", "SCRIPT_VAR=from-envp", NULL};
    execve(script, args, env);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    write(fd, text, strlen(text));
    close(fd);
    chmod(path, mode);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "show"))
        return show(argc, argv);
    if (argc == 4 && !strcmp(argv[1], "ids"))
        return ids(argv);
    if (argc == 2 && !strcmp(argv[1], "sigs"))
        return sigs();
    if (argc == 4 && !strcmp(argv[1], "fds"))
        return fds(argv);
    if (argc > 1 && !strcmp(argv[1], "interp-opt"))
        return interp(argc, argv);
    if (argc > 1) {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (argv[0][0] == '/') {
        snprintf(self, sizeof self, "%s", argv[0]);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return 1;
        snprintf(self, sizeof self, "%s/%s", cwd, argv[0]);
    }
    snprintf(dir, sizeof dir, "/tmp/lwk-proc-exec-%d", (int)getpid());
    if (mkdir(dir, 0700))
        return 1;

    in_child("execve self with new argv/envp", exec_show, NULL);
    in_child("execve keeps pid and parent", exec_ids, NULL);
    in_child("execve resets handlers", exec_sigs, NULL);
    in_child("execve and close-on-exec", exec_fds, NULL);
    in_child("execveat AT_EMPTY_PATH", execveat_fd, NULL);
    in_child("execveat dirfd + relative path", execveat_dirfd, NULL);

    char sh_script[PATH_MAX + 32], sh_opt[PATH_MAX + 32], own[PATH_MAX + 32];
    snprintf(sh_script, sizeof sh_script, "%s/script.sh", dir);
    write_file(sh_script,
               "#!/bin/sh\n"
               "echo \"sh script: \\$0 base=${0##*/} \\$1=$1 \\$2=$2 \\$#=$# \\$@=$@\"\n"
               "echo \"sh script: SCRIPT_VAR=$SCRIPT_VAR\"\n"
               "false; echo \"sh script: \\$? after false=$?\"\n"
               "exit 3\n",
               0755);
    in_child("#!/bin/sh script", exec_path, sh_script);
    snprintf(sh_opt, sizeof sh_opt, "%s/script-opt.sh", dir);
    write_file(sh_opt,
               "#!/bin/sh -e\n"
               "echo \"sh -e script: args $#: $*\"\n"
               "false\n"
               "echo \"not reached\"\n",
               0755);
    in_child("#!/bin/sh -e script", exec_path, sh_opt);
    snprintf(own, sizeof own, "%s/own-interp", dir);
    char text[sizeof self + 64];
    snprintf(text, sizeof text, "#!%s interp-opt\nthis text is never read\n", self);
    write_file(own, text, 0755);
    in_child("#! this program", exec_path, own);

    /* Failures, in this process. */
    char *args[] = {"x", NULL};
    char *env[] = {NULL};
    TRY("execve nonexistent", execve("/nonexistent/prog", args, env));
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/not-executable", dir);
    write_file(path, "#!/bin/sh\necho hi\n", 0644);
    TRY("execve mode 0644", execve(path, args, env));
    TRY("execve a directory", execve(dir, args, env));
    char through[PATH_MAX + 64];
    snprintf(through, sizeof through, "%s/x", path);
    TRY("execve through a file", execve(through, args, env));
    snprintf(path, sizeof path, "%s/garbage", dir);
    write_file(path, "\x01\x02 this is not a program\n", 0755);
    TRY("execve garbage", execve(path, args, env));
    snprintf(path, sizeof path, "%s/empty", dir);
    write_file(path, "", 0755);
    TRY("execve empty file", execve(path, args, env));
    snprintf(path, sizeof path, "%s/bad-interp", dir);
    write_file(path, "#!/nonexistent/interpreter\n", 0755);
    TRY("execve #! missing interpreter", execve(path, args, env));
    size_t big = 200 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, 'a', big);
    huge[big] = 0;
    char *bigargs[] = {self, "show", huge, NULL};
    TRY("execve with a 200 KiB argument", execve(self, bigargs, env));
    char *bigenv[] = {huge, NULL};
    huge[0] = 'H';
    huge[1] = '=';
    TRY("execve with a 200 KiB env string", execve(self, args, bigenv));
    TRY("execveat bad dirfd", syscall(SYS_execveat, 9999, "x", args, env, 0));
    TRY("execveat bad flags", syscall(SYS_execveat, AT_FDCWD, self, args, env, 0x1));

    const char *names[] = {"script.sh", "script-opt.sh", "own-interp", "not-executable", "garbage",
                           "empty", "bad-interp"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    printf("done\n");
    return 0;
}
