/* SIGSEGV recovery with sigsetjmp/siglongjmp: an unmapped address (SEGV_MAPERR), a read-only
 * page written (SEGV_ACCERR), si_addr compared with the faulting address; SIGFPE from a
 * division by zero (FPE_INTDIV); SIGTRAP from int3; the handler runs on an alternate stack
 * (SA_ONSTACK) and sees it in uc_stack/sigaltstack. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "check.h"

static sigjmp_buf env;
static volatile void *fault_addr;
static volatile int fault_code, fault_sig, on_alt, uc_onstack;
static char *alt;
static size_t alt_size = 65536;

static void handler(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    char here;
    fault_sig = sig;
    fault_code = si->si_code;
    fault_addr = si->si_addr;
    on_alt = &here >= alt && &here < alt + alt_size;
    stack_t st;
    sigaltstack(NULL, &st);
    uc_onstack = (st.ss_flags & SS_ONSTACK) != 0 && uc->uc_stack.ss_sp == alt;
    siglongjmp(env, 1);
}

static volatile int zero;

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    alt = malloc(alt_size);
    stack_t ss = {.ss_sp = alt, .ss_size = alt_size, .ss_flags = 0};
    TRY("sigaltstack", sigaltstack(&ss, NULL));
    stack_t small = {.ss_sp = alt, .ss_size = 100, .ss_flags = 0};
    TRY("sigaltstack too small", sigaltstack(&small, NULL));
    stack_t badflags = {.ss_sp = alt, .ss_size = alt_size, .ss_flags = 77};
    TRY("sigaltstack bad flags", sigaltstack(&badflags, NULL));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGTRAP, &sa, NULL);

    volatile char *unmapped = (char *)0x10;
    if (sigsetjmp(env, 1) == 0) {
        *unmapped = 1;
        puts("no fault?");
    }
    printf("unmapped: sig %d code %d (MAPERR %d) addr_match %d on_alt %d uc_onstack %d\n",
           fault_sig, fault_code, SEGV_MAPERR, fault_addr == (void *)unmapped, on_alt,
           uc_onstack);

    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 3; i++) {
        fault_sig = 0;
        if (sigsetjmp(env, 1) == 0) {
            ((volatile char *)ro)[100 + i] = 1;
            puts("no fault?");
        }
        printf("read-only %d: sig %d code %d (ACCERR %d) addr_match %d on_alt %d\n", i,
               fault_sig, fault_code, SEGV_ACCERR, fault_addr == ro + 100 + i, on_alt);
    }
    munmap(ro, 4096);
    if (sigsetjmp(env, 1) == 0) {
        ((volatile char *)ro)[5] = 1;
        puts("no fault?");
    }
    printf("after munmap: sig %d code %d addr_match %d\n", fault_sig, fault_code,
           fault_addr == ro + 5);

    /* The mask was saved by sigsetjmp(env, 1): SIGSEGV is unblocked again. */
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("SIGSEGV blocked after longjmp: %d\n", sigismember(&cur, SIGSEGV));

    if (sigsetjmp(env, 1) == 0) {
        volatile int x = 10 / zero;
        (void)x;
        puts("no fault?");
    }
    printf("divide: sig %d code %d (INTDIV %d)\n", fault_sig, fault_code, FPE_INTDIV);

    if (sigsetjmp(env, 1) == 0) {
        __asm__ volatile("int3");
        puts("no trap?");
    }
    printf("int3: sig %d code %d\n", fault_sig, fault_code);

    stack_t now;
    sigaltstack(NULL, &now);
    printf("altstack after: flags %d size_ok %d\n", now.ss_flags, now.ss_size == alt_size);
    ss.ss_flags = SS_DISABLE;
    TRY("disable altstack", sigaltstack(&ss, NULL));
    sigaltstack(NULL, &now);
    printf("altstack disabled: flags %d\n", now.ss_flags);
    return 0;
}
