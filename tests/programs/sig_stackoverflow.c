/* Stack overflow caught on an alternate stack: unbounded recursion faults below the stack
 * limit, the SIGSEGV handler runs on the sigaltstack (the normal stack is exhausted) and
 * siglongjmps back; the program then recurses again to show the stack still works. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sigjmp_buf env;
static char *alt;
static volatile int on_alt, sig_seen;

static void handler(int sig)
{
    char here;
    sig_seen = sig;
    on_alt = &here >= alt && &here < alt + 65536;
    siglongjmp(env, 1);
}

static volatile int limit = 1 << 30; /* never reached: the stack ends first */
static int recurse(volatile char *prev, int n)
{
    volatile char buf[1024];
    buf[0] = (char)n;
    buf[1023] = prev ? prev[0] : 0;
    if (n >= limit)
        return 0;
    return recurse(buf, n + 1) + buf[0];
}

static int bounded(int n) { volatile char b[256]; b[0] = (char)n; return n ? bounded(n - 1) + b[0] : 0; }

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    alt = malloc(65536);
    stack_t ss = {.ss_sp = alt, .ss_size = 65536, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(env, 1) == 0) {
        recurse(NULL, 0);
        puts("no overflow?");
    }
    printf("overflow: sig %d on_alt %d\n", sig_seen, on_alt);
    printf("bounded recursion after: %d\n", bounded(1000) != 0);
    return 0;
}
