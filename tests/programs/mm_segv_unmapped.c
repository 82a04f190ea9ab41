/* Touching memory after munmap is killed by SIGSEGV (a page fault outside every mapping is a
 * real SIGSEGV, also with demand paging). */
#include <stdio.h>
#include <sys/mman.h>

int main(void)
{
    volatile unsigned char *p = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[3 << 20] = 1;
    munmap((void *)(p + (2 << 20)), 2 << 20);
    printf("kept half reads %d\n", p[0]);
    fflush(stdout);
    p[3 << 20] = 2;
    puts("not reached");
    return 0;
}
