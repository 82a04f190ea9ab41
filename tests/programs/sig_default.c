/* Default actions: ignored signals (SIGCHLD, SIGURG, SIGWINCH, SIGCONT) do nothing; SIGTERM
 * ends the program as killed by signal 15 (exit status 143). */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    raise(SIGCHLD);
    raise(SIGURG);
    raise(SIGWINCH);
    raise(SIGCONT);
    puts("still alive");
    signal(SIGTERM, SIG_IGN);
    raise(SIGTERM);
    puts("SIGTERM ignored");
    signal(SIGTERM, SIG_DFL);
    kill(getpid(), SIGTERM);
    puts("not reached");
    return 0;
}
