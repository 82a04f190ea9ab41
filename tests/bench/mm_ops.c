/* One memory operation, COUNT times, for memory_cost.sh: the LWK's -v summary then tells the
 * ring-0 time per call (or per page fault) of that path.
 *
 * Usage: mm_ops OP COUNT, OP one of:
 *   mmap4k    mmap + munmap of one page              mmap64m   mmap + munmap of 64 MiB
 *   brk       grow the break by 132 KiB (as malloc)  mprotect  one page read-only and back
 *   dontneed  MADV_DONTNEED of 2 MiB (host zeroing)  touch2m   first touch of COUNT 2 MiB blocks
 *   touch4k   first touch of COUNT 4 KiB pages (a mapping that is not 2 MiB aligned) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: mm_ops OP COUNT\n");
        return 2;
    }
    const char *op = argv[1];
    long n = atol(argv[2]);
    if (!strcmp(op, "mmap4k")) {
        for (long i = 0; i < n; i++)
            munmap(mmap(NULL, 4096, RW, ANON, -1, 0), 4096);
    } else if (!strcmp(op, "mmap64m")) {
        for (long i = 0; i < n; i++)
            munmap(mmap(NULL, 64 << 20, RW, ANON, -1, 0), 64 << 20);
    } else if (!strcmp(op, "brk")) {
        long start = syscall(SYS_brk, 0);
        for (long i = 1; i <= n; i++)
            syscall(SYS_brk, start + i * 135168);
        syscall(SYS_brk, start);
    } else if (!strcmp(op, "mprotect")) {
        char *p = mmap(NULL, 4096, RW, ANON, -1, 0);
        for (long i = 0; i < n; i++)
            mprotect(p, 4096, i & 1 ? RW : PROT_READ);
    } else if (!strcmp(op, "dontneed")) {
        char *p = mmap(NULL, 64 << 20, RW, ANON, -1, 0);
        for (long i = 0; i < n; i++)
            madvise(p + (i % 32) * (2 << 20), 2 << 20, MADV_DONTNEED);
    } else if (!strcmp(op, "touch2m") || !strcmp(op, "touch4k")) {
        int big = !strcmp(op, "touch2m");
        size_t step = big ? 2 << 20 : 4096;
        char *p = mmap(NULL, n * step + (4 << 20), RW, ANON, -1, 0);
        char *q = (char *)(((unsigned long)p + (2 << 20) - 1) & ~((2ul << 20) - 1));
        if (!big) {
            /* The first page of a 2 MiB block unmapped: the block's other pages are 4 KiB
             * pages (COUNT at most 511). */
            munmap(q, 4096);
            q += 4096;
        }
        for (long i = 0; i < n; i++)
            q[i * step] = 1;
    } else {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    return 0;
}
