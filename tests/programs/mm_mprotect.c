/* mprotect: data survives RW -> RO -> RW and RW -> NONE -> RW, partial changes split mappings
 * (also inside 2 MiB pages), PROT_NONE reservations made accessible piece by piece, and the
 * errnos of bad requests. Enforcement (the fault itself) is in mm_segv_*.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static const char *err(int e)
{
    return e == 0 ? "ok" : e == EINVAL ? "EINVAL" : e == ENOMEM ? "ENOMEM" : e == EACCES ? "EACCES" : "other";
}

static uint64_t sum(const unsigned char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i += 256)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void pattern(unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i += 256)
        p[i] = (unsigned char)((i >> 8) * 7 + seed);
}

static void report(const char *what, int rc)
{
    printf("%s: %d %s\n", what, rc, err(rc ? errno : 0));
}

int main(void)
{
    const size_t pg = 4096;
    unsigned char *p = mmap(NULL, 8 * pg, RW, ANON, -1, 0);
    pattern(p, 8 * pg, 1);
    uint64_t h = sum(p, 8 * pg);
    report("to read-only", mprotect(p, 8 * pg, PROT_READ));
    printf("readable, same data: %d\n", sum(p, 8 * pg) == h);
    report("back to read-write", mprotect(p, 8 * pg, RW));
    p[0] = 9;
    report("to none", mprotect(p, 8 * pg, PROT_NONE));
    report("back again", mprotect(p, 8 * pg, RW));
    printf("data survived PROT_NONE: %d\n", p[0] == 9 && p[256] == (unsigned char)(7 + 1));
    report("middle read-only", mprotect(p + 2 * pg, 2 * pg, PROT_READ));
    report("middle exec", mprotect(p + 5 * pg, pg, PROT_READ | PROT_EXEC));
    p[pg] = 1;
    p[4 * pg] = 2;
    p[7 * pg] = 3;
    printf("writes around the read-only part: %d %d %d\n", p[pg], p[4 * pg], p[7 * pg]);
    report("PROT_SEM is accepted", mprotect(p, pg, RW | 0x8));
    munmap(p, 8 * pg);

    /* Inside 2 MiB pages. */
    size_t big = 8 << 20;
    unsigned char *b = mmap(NULL, big, RW, ANON, -1, 0);
    pattern(b, big, 3);
    h = sum(b, big);
    report("1M read-only inside a 2M block", mprotect(b + (3 << 20), 1 << 20, PROT_READ));
    report("one page none", mprotect(b + (6 << 20), pg, PROT_NONE));
    report("all read-write", mprotect(b, big, RW));
    printf("2M data kept: %d\n", sum(b, big) == h);
    b[(3 << 20) + 5] = 1;
    b[(6 << 20) + 5] = 2;
    printf("writable again: %d %d\n", b[(3 << 20) + 5], b[(6 << 20) + 5]);
    munmap(b, big);

    /* A PROT_NONE reservation opened piece by piece (as malloc arenas do). */
    size_t res = 64 << 20;
    unsigned char *r = mmap(NULL, res, PROT_NONE, ANON | MAP_NORESERVE, -1, 0);
    report("open 132K", mprotect(r, 132 << 10, RW));
    memset(r, 0x11, 132 << 10);
    report("open 4M more", mprotect(r + (132 << 10), 4 << 20, RW));
    printf("new part zero: %d, old part kept: %d\n",
           r[(132 << 10) + 100] == 0 && r[(4 << 20) + 100] == 0, r[100] == 0x11);
    munmap(r, res);

    /* Bad requests. */
    unsigned char *q = mmap(NULL, 4 * pg, RW, ANON, -1, 0);
    munmap(q + 2 * pg, pg);
    report("len 0", mprotect(q + 1, 0, PROT_READ));
    report("unaligned", mprotect(q + 1, pg, PROT_READ));
    report("unknown prot bit", mprotect(q, pg, PROT_READ | 0x10));
    report("growsdown and growsup", mprotect(q, pg, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP));
    report("growsdown on a normal mapping", mprotect(q, pg, PROT_READ | PROT_GROWSDOWN));
    report("unmapped start", mprotect(q + 2 * pg, pg, PROT_READ));
    report("hole in the range", mprotect(q, 4 * pg, PROT_READ));
    /* Linux changes what lies before the hole. */
    printf("first page changed before the hole: %d\n", mprotect(q, pg, PROT_READ) == 0);
    report("wrapping", mprotect(q, (size_t)-4096, PROT_READ));
    return 0;
}
