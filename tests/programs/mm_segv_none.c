/* Reading PROT_NONE memory is killed by SIGSEGV. */
#include <stdio.h>
#include <sys/mman.h>

int main(void)
{
    volatile unsigned char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 1;
    mprotect((void *)p, 1 << 20, PROT_NONE);
    puts("made PROT_NONE");
    fflush(stdout);
    printf("%d\n", p[100]);
    puts("not reached");
    return 0;
}
