/* Signal handlers with siginfo: raise/kill/sigqueue/tgkill give si_signo, si_code, si_pid,
 * si_value; SA_RESETHAND and SA_NODEFER; a handler that changes registers in the ucontext
 * (skips a ud2 by RIP += 2 and sets RAX); xmm registers survive a handler that clobbers them. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "check.h"

static volatile int got_sig, got_code, got_value, pid_ok, depth, max_depth;

static void info_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got_sig = si->si_signo == sig ? sig : -1;
    got_code = si->si_code;
    got_value = si->si_value.sival_int;
    pid_ok = si->si_pid == getpid();
}

static volatile int calls;
static void nodefer_handler(int sig)
{
    depth++;
    calls++;
    if (depth > max_depth)
        max_depth = depth;
    if (calls < 3)
        raise(sig);
    depth--;
}

static void ill_handler(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    unsigned char *ip = (unsigned char *)uc->uc_mcontext.gregs[REG_RIP];
    printf("SIGILL: signo %d code %d addr_is_rip %d insn %02x%02x\n", sig, si->si_code,
           si->si_addr == (void *)ip, ip[0], ip[1]);
    uc->uc_mcontext.gregs[REG_RIP] += 2;
    uc->uc_mcontext.gregs[REG_RAX] = 4242;
}

static void fpu_handler(int sig)
{
    (void)sig;
    __asm__ volatile("pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm7, %%xmm7\n\t"
                     "pxor %%xmm15, %%xmm15" ::: "xmm0", "xmm1", "xmm7", "xmm15");
    volatile double d = 1.0;
    for (int i = 0; i < 10; i++)
        d = d * 3.5 + 0.25;
    got_sig = (int)d > 0;
}

/* Reads the interrupted xmm3 from the frame's FPU area and changes it: rt_sigreturn must
 * restore the changed value. */
static void fpmod_handler(int sig, siginfo_t *si, void *ucv)
{
    (void)si;
    ucontext_t *uc = ucv;
    fpregset_t fp = uc->uc_mcontext.fpregs;
    printf("fpregs: sig %d present %d aligned %d mxcsr %#x xmm3 %u\n", sig, fp != NULL,
           ((unsigned long)fp & 15) == 0, fp ? fp->mxcsr & 0xffc0 : 0,
           fp ? fp->_xmm[3].element[0] : 0);
    if (fp)
        fp->_xmm[3].element[0] = 99;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = info_handler;
    sa.sa_flags = SA_SIGINFO;
    TRY("sigaction USR1", sigaction(SIGUSR1, &sa, NULL));
    TRY("raise", raise(SIGUSR1));
    printf("raise: sig %d code %d pid_ok %d\n", got_sig, got_code, pid_ok);
    got_sig = 0;
    TRY("kill", kill(getpid(), SIGUSR1));
    printf("kill: sig %d code %d pid_ok %d\n", got_sig, got_code, pid_ok);
    got_sig = 0;
    union sigval v = {.sival_int = 77};
    TRY("sigqueue", sigqueue(getpid(), SIGUSR1, v));
    printf("sigqueue: sig %d code %d value %d pid_ok %d\n", got_sig, got_code, got_value, pid_ok);
    got_sig = 0;
    TRY("tgkill", syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1));
    printf("tgkill: sig %d code %d pid_ok %d\n", got_sig, got_code, pid_ok);
    TRY("kill 0 sig0", kill(0, 0));
    TRY("kill self sig0", kill(getpid(), 0));
    TRY("kill bad sig", kill(getpid(), 65));
    TRY("kill bad sig -1", kill(getpid(), -1));
    TRY("tgkill bad tid", syscall(SYS_tgkill, getpid(), 999999, SIGUSR1));
    TRY("tgkill bad tgid", syscall(SYS_tgkill, 0, gettid(), SIGUSR1));
    TRY("sigaction SIGKILL", sigaction(SIGKILL, &sa, NULL));
    TRY("sigaction SIGSTOP", sigaction(SIGSTOP, &sa, NULL));
    TRY("sigaction 0", sigaction(0, &sa, NULL));
    TRY("sigaction 65", syscall(SYS_rt_sigaction, 65, NULL, NULL, 8));
    TRY("sigaction size 4", syscall(SYS_rt_sigaction, SIGUSR1, NULL, NULL, 4));
    TRY("sigaction EFAULT", syscall(SYS_rt_sigaction, SIGUSR1, (void *)8, NULL, 8));

    struct sigaction old;
    TRY("sigaction query", sigaction(SIGUSR1, NULL, &old));
    printf("old flags has SIGINFO %d handler same %d\n", !!(old.sa_flags & SA_SIGINFO),
           old.sa_sigaction == info_handler);

    /* SA_NODEFER: the handler nests; without it, the raise inside stays pending. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = nodefer_handler;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGUSR2, &sa, NULL);
    raise(SIGUSR2);
    printf("nodefer max depth %d\n", max_depth);
    printf("nodefer calls %d\n", calls);
    max_depth = 0;
    calls = 0;
    sa.sa_flags = 0;
    sigaction(SIGUSR2, &sa, NULL);
    raise(SIGUSR2);
    printf("defer max depth %d calls %d\n", max_depth, calls);

    /* SA_RESETHAND: second raise finds SIG_DFL; check through sigaction. */
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGUSR2, &sa, NULL);
    raise(SIGUSR2);
    sigaction(SIGUSR2, NULL, &old);
    printf("resethand: handler now default %d\n", old.sa_handler == SIG_DFL);

    /* Change registers from the handler. */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = ill_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGILL, &sa, NULL);
    long rax = 1;
    __asm__ volatile("ud2" : "+a"(rax));
    printf("after ud2: rax %ld\n", rax);

    /* FPU state survives a handler that clobbers xmm registers. */
    signal(SIGUSR2, fpu_handler);
    double a = 1.5, b = 2.25;
    __asm__ volatile("movsd %0, %%xmm0\n\tmovsd %1, %%xmm15" ::"m"(a), "m"(b) : "xmm0", "xmm15");
    raise(SIGUSR2);
    double a2, b2;
    __asm__ volatile("movsd %%xmm0, %0\n\tmovsd %%xmm15, %1" : "=m"(a2), "=m"(b2));
    printf("xmm after handler: %g %g (handler ran %d)\n", a2, b2, got_sig);
    /* The same through a direct syscall with live xmm values (no libc in between). */
    double c = 6.75;
    long r;
    __asm__ volatile("movsd %2, %%xmm3\n\tsyscall\n\tmovsd %%xmm3, %1"
                     : "=a"(r), "=m"(c)
                     : "m"(c), "0"((long)SYS_kill), "D"((long)getpid()), "S"((long)SIGUSR2)
                     : "rcx", "r11", "memory", "xmm3");
    printf("xmm3 after kill: %g r %ld\n", c, r);

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fpmod_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    unsigned int in = 4321, out = 0;
    __asm__ volatile("movd %2, %%xmm3\n\tsyscall\n\tmovd %%xmm3, %1"
                     : "=a"(r), "=r"(out)
                     : "r"(in), "0"((long)SYS_kill), "D"((long)getpid()), "S"((long)SIGUSR2)
                     : "rcx", "r11", "memory", "xmm3");
    printf("xmm3 changed by the handler: %u\n", out);
    return 0;
}
