/* Allocates N MiB (first argument; default 64) with malloc and writes every page: the test of
 * page faults (none when pre-faulting) and of ENOMEM when the guest has less memory. With a
 * second argument "exhaust", allocates and touches 4 MiB blocks until malloc fails. */
// args: 64
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 64;
    if (argc > 2 && strcmp(argv[2], "exhaust") == 0) {
        size_t got = 0;
        for (;;) {
            unsigned char *b = malloc(4 << 20);
            if (!b)
                break;
            for (size_t i = 0; i < (4 << 20); i += 4096)
                b[i] = 1;
            got += 4;
        }
        printf("exhausted after %zu MiB\n", got);
        return 0;
    }
    unsigned char *p = malloc(mib << 20);
    if (!p) {
        printf("%zu MiB: ENOMEM\n", mib);
        return 0;
    }
    unsigned long sum = 0;
    for (size_t i = 0; i < (mib << 20); i += 4096) {
        p[i] = (unsigned char)(i >> 12);
        sum += p[i];
    }
    printf("%zu MiB touched, sum %lu\n", mib, sum);
    free(p);
    return 0;
}
