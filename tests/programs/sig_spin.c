/* Host signals (issue #7): prints "ready", then spins in user mode for argv[1] milliseconds
 * (checking the clock every few million iterations) and prints "done". Run alone it ends on
 * its own; the hostsig test sends it signals while it spins: SIGINT/SIGTERM kill it, SIGWINCH
 * and SIGCONT are ignored by default. */
// args: 200
#include "check.h"
#include <stdlib.h>
#include <time.h>

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    long long limit = argc > 1 ? atoll(argv[1]) : 200;
    printf("ready\n");
    fflush(stdout);
    long long start = now_ms();
    volatile unsigned long sink = 0;
    while (now_ms() - start < limit)
        for (unsigned long i = 0; i < 4000000; i++)
            sink += i;
    printf("done\n");
    return 0;
}
