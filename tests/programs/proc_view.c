/* /proc/self and /proc/PID as ps, top, Python and glibc read them: stat and statm field by
 * field against the process's own calls, the directory listings of /proc/self, fd/, fdinfo/
 * and task/, environ and auxv against the process's own, /proc listing the process, a forked
 * child seen from its parent (stat, cmdline, comm), pthread_getattr_np on the main thread.
 * Prints consistency checks, never pids, addresses or sizes. */
#define _GNU_SOURCE
#include "check.h"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

static char buf[1 << 16];

static long slurp(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    long n = 0, r;
    while ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += r;
    close(fd);
    buf[n] = 0;
    return n;
}

/* Fields of a stat line after the comm's closing parenthesis (field 3 is f[0]). */
static int stat_fields(const char *path, char f[60][32], char *comm)
{
    if (slurp(path) < 0)
        return -1;
    char *open_p = strchr(buf, '('), *close_p = strrchr(buf, ')');
    if (!open_p || !close_p)
        return -1;
    snprintf(comm, 32, "%.*s", (int)(close_p - open_p - 1), open_p + 1);
    int n = 0;
    for (char *t = strtok(close_p + 1, " \n"); t && n < 60; t = strtok(NULL, " \n"))
        snprintf(f[n++], 32, "%s", t);
    return n + 2;
}

static int lists(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, name) == 0)
            found = 1;
    closedir(d);
    return found;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

int main(void)
{
    char f[60][32], comm[32], path[64];
    pid_t me = getpid();

    int n = stat_fields("/proc/self/stat", f, comm);
    printf("stat fields: %d\n", n);
    printf("stat comm: %s\n", comm);
    printf("stat state R: %d\n", strcmp(f[0], "R") == 0);
    printf("stat ppid: %d\n", atol(f[1]) == getppid());
    printf("stat pgrp: %d\n", atol(f[2]) == getpgrp());
    printf("stat session: %d\n", atol(f[3]) == getsid(0));
    printf("stat threads: %s\n", f[17]);
    printf("stat vsize > 0: %d\n", atol(f[20]) > 0);
    unsigned long sp = (unsigned long)&n;
    printf("stat startstack above sp: %d\n", strtoul(f[25], NULL, 10) > sp);
    unsigned long env0 = (unsigned long)environ[0];
    printf("stat env range holds environ[0]: %d\n",
           strtoul(f[47], NULL, 10) <= env0 && env0 < strtoul(f[48], NULL, 10));

    snprintf(path, sizeof path, "/proc/%d/stat", (int)me);
    char g[60][32], comm2[32];
    printf("/proc/PID/stat same pid: %d\n",
           stat_fields(path, g, comm2) == n && strcmp(comm, comm2) == 0);

    slurp("/proc/self/statm");
    long size = 0, res = 0;
    printf("statm fields: %d\n", sscanf(buf, "%ld %ld %*d %*d %*d %*d %*d", &size, &res) + 5);
    printf("statm resident <= size: %d\n", res > 0 && res <= size);

    printf("/proc/self lists status, fd, task, stat, environ: %d %d %d %d %d\n",
           lists("/proc/self", "status"), lists("/proc/self", "fd"), lists("/proc/self", "task"),
           lists("/proc/self", "stat"), lists("/proc/self", "environ"));
    char pidname[16];
    snprintf(pidname, sizeof pidname, "%d", (int)me);
    printf("/proc lists the process: %d\n", lists("/proc", pidname));
    printf("task lists only the main thread: %d %d\n", lists("/proc/self/task", pidname),
           count_entries("/proc/self/task"));

    /* fd/: 0, 1, 2 and the directory's own fd, as Linux lists them when read. */
    int extra = open("/proc/self/comm", O_RDONLY);
    char extra_name[16];
    snprintf(extra_name, sizeof extra_name, "%d", extra);
    printf("fd lists 0 1 2 and an open fd: %d %d %d %d\n", lists("/proc/self/fd", "0"),
           lists("/proc/self/fd", "1"), lists("/proc/self/fd", "2"),
           lists("/proc/self/fd", extra_name));
    printf("fdinfo lists the open fd: %d\n", lists("/proc/self/fdinfo", extra_name));
    char info[64];
    snprintf(info, sizeof info, "/proc/self/fdinfo/%d", extra);
    slurp(info);
    printf("fdinfo has pos and flags: %d %d\n", strstr(buf, "pos:\t0\n") != NULL,
           strstr(buf, "flags:\t") != NULL);
    close(extra);
    snprintf(info, sizeof info, "/proc/self/fdinfo/%d", extra);
    errno = 0;
    TRY("fdinfo of a closed fd", open(info, O_RDONLY));
    TRY("a thread that is not the process's", open("/proc/self/task/1/stat", O_RDONLY));

    /* environ: the same strings as the process's environment, in order. */
    long len = slurp("/proc/self/environ");
    int same = len > 0, i = 0;
    for (char *p = buf; p < buf + len && same; p += strlen(p) + 1, i++)
        same = environ[i] && strcmp(environ[i], p) == 0;
    printf("environ matches: %d\n", same && environ[i] == NULL);

    /* auxv: AT_PAGESZ and AT_ENTRY as getauxval gives them, ending with AT_NULL. */
    len = slurp("/proc/self/auxv");
    unsigned long *a = (unsigned long *)buf;
    int pagesz = 0, entry = 0, ends = len >= 16 && a[len / 8 - 2] == 0;
    for (long k = 0; k + 1 < len / 8; k += 2) {
        if (a[k] == AT_PAGESZ)
            pagesz = a[k + 1] == getauxval(AT_PAGESZ);
        if (a[k] == AT_ENTRY)
            entry = a[k + 1] == getauxval(AT_ENTRY);
    }
    printf("auxv pagesz entry null-terminated: %d %d %d\n", pagesz, entry, ends);

    /* The main thread's stack, as glibc finds it (/proc/self/maps and RLIMIT_STACK). */
    pthread_attr_t attr;
    void *stack;
    size_t ssize;
    int r = pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &stack, &ssize);
    printf("pthread_getattr_np: %d, holds sp: %d\n", r,
           (unsigned long)stack < sp && sp < (unsigned long)stack + ssize);

    /* A child seen by its parent. */
    int p2c[2];
    if (pipe(p2c) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        char c;
        read(p2c[0], &c, 1);
        _exit(0);
    }
    snprintf(path, sizeof path, "/proc/%d/stat", (int)child);
    n = stat_fields(path, g, comm2);
    printf("child stat: fields %d, comm %s, ppid is me %d, state R or S %d\n", n, comm2,
           atol(g[1]) == me, strcmp(g[0], "R") == 0 || strcmp(g[0], "S") == 0);
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)child);
    slurp(path);
    printf("child cmdline ends in proc_view: %d\n", strstr(buf, "proc_view") != NULL);
    printf("/proc lists the child: %d\n", (snprintf(pidname, sizeof pidname, "%d", (int)child),
                                            lists("/proc", pidname)));
    write(p2c[1], "x", 1);
    waitpid(child, NULL, 0);
    printf("reaped child gone: %d\n", access(path, F_OK) != 0 && errno == ENOENT);
    return 0;
}
