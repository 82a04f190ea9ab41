/* MAP_GROWSDOWN: touching just below the mapping grows it (as the main stack grows), and the
 * grown part reads zero. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

int main(void)
{
    size_t len = 64 << 10;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
    if (p == MAP_FAILED) {
        puts("mmap failed");
        return 1;
    }
    memset(p, 1, len);
    volatile unsigned char *below = p - 4096;
    printf("one page below reads %d\n", below[0]);
    below[0] = 7;
    volatile unsigned char *further = p - 5 * 4096;
    printf("five pages below reads %d\n", further[100]);
    further[100] = 8;
    printf("written: %d %d, original kept %d\n", below[0], further[100], p[0]);
    /* Deep recursion on the main stack grows it as well. */
    volatile unsigned char big[1 << 20];
    memset((void *)big, 3, sizeof big);
    printf("1 MiB on the stack: %d\n", big[12345]);
    return 0;
}
