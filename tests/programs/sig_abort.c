/* abort(): SIGABRT with its default action ends the program as killed by signal 6 (exit
 * status 134 from a shell), even after a handler that returns and with SIGABRT blocked. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void handler(int sig)
{
    printf("handler %d\n", sig);
    fflush(stdout);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGABRT, handler);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGABRT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    puts("aborting");
    abort();
}
