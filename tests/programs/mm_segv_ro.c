/* Writing to memory made read-only with mprotect is killed by SIGSEGV (permissions are really
 * enforced in the page tables). */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

int main(void)
{
    volatile unsigned char *p = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[5 << 20] = 1;
    mprotect((void *)(p + (4 << 20)), 4096, PROT_READ);
    printf("read-only page reads %d\n", p[4 << 20]);
    fflush(stdout);
    p[(4 << 20) + 8] = 2;
    puts("not reached");
    return 0;
}
