/* Shared by the offload test programs: print a call's outcome as "label: ok" or
 * "label: -1 ENAME", never addresses, pids or timings, so that the native run and the
 * lwk-vmm run print the same bytes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((unused)) static const char *ename(int e)
{
    static char buf[16];
    switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN) E(ENOMEM)
    E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR) E(EISDIR)
    E(EINVAL) E(EMFILE) E(ENOTTY) E(ESPIPE) E(EPIPE) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS)
    E(ENOTEMPTY) E(ELOOP) E(ENOTSOCK) E(EMSGSIZE) E(ENOPROTOOPT) E(EOPNOTSUPP)
    E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETUNREACH) E(ECONNREFUSED)
    E(ENOTCONN) E(EISCONN) E(EDESTADDRREQ) E(EOVERFLOW) E(ENOBUFS)
    E(ECHILD) E(ENOEXEC) E(ETXTBSY)
#undef E
    default:
        snprintf(buf, sizeof buf, "E%d", e);
        return buf;
    }
}

__attribute__((unused)) static long report(const char *label, long r, int e)
{
    if (r < 0)
        printf("%s: -1 %s\n", label, ename(e));
    else
        printf("%s: ok\n", label);
    return r;
}

/* Runs `expr` (a call returning -1 and setting errno on failure) and prints its outcome. */
#define TRY(label, expr) ({ errno = 0; long r_ = (long)(expr); report((label), r_, errno); })
/* Same, printing the value on success. */
#define VAL(label, expr) ({ errno = 0; long r_ = (long)(expr); report_val((label), r_, errno); })

__attribute__((unused)) static long report_val(const char *label, long r, int e)
{
    if (r < 0)
        printf("%s: -1 %s\n", label, ename(e));
    else
        printf("%s: %ld\n", label, r);
    return r;
}

/* FNV-1a over a buffer: a checksum to print instead of contents. */
__attribute__((unused)) static unsigned long fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned long h = 1469598103934665603UL;
    while (n--)
        h = (h ^ *b++) * 1099511628211UL;
    return h;
}

/* A signal's name without "SIG" ("KILL"), or its number: the same text under every libc. */
__attribute__((unused)) static const char *signame(int s)
{
    static char buf[16];
    switch (s) {
#define S(x) case SIG##x: return #x;
    S(HUP) S(INT) S(QUIT) S(ILL) S(TRAP) S(ABRT) S(BUS) S(FPE) S(KILL) S(USR1) S(SEGV) S(USR2)
    S(PIPE) S(ALRM) S(TERM) S(CHLD) S(CONT) S(STOP) S(TSTP) S(TTIN) S(TTOU) S(URG) S(XCPU)
    S(XFSZ) S(VTALRM) S(PROF) S(WINCH) S(IO) S(PWR) S(SYS)
#undef S
    default:
        snprintf(buf, sizeof buf, "%d", s);
        return buf;
    }
}

/* "yes" or "no", for printing relations instead of values. */
__attribute__((unused)) static const char *yes(int b)
{
    return b ? "yes" : "no";
}

/* fork() with stdout flushed first (the child must not print the parent's buffer again). */
__attribute__((unused)) static pid_t fork_flushed(void)
{
    fflush(stdout);
    return fork();
}

/* A wait status as "exited N" or "signaled NAME". */
__attribute__((unused)) static void print_status(const char *label, int st)
{
    if (WIFEXITED(st))
        printf("%s: exited %d\n", label, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: signaled %s\n", label, signame(WTERMSIG(st)));
    else
        printf("%s: other status\n", label);
}
