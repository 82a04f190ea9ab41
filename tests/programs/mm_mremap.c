/* mremap: grow in place, grow blocked without MREMAP_MAYMOVE, move (data kept, new part zero),
 * shrink, MREMAP_FIXED, MREMAP_DONTUNMAP, large moves that keep 2 MiB pages, and the errnos of
 * bad requests. Prints results and checksums, never addresses. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static const char *err(int e)
{
    return e == EINVAL ? "EINVAL" : e == ENOMEM ? "ENOMEM" : e == EFAULT ? "EFAULT" : "other";
}

static uint64_t sum(const unsigned char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i += 512)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void pattern(unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i += 512)
        p[i] = (unsigned char)((i >> 9) * 13 + seed);
}

static int is_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i += 64)
        if (p[i])
            return 0;
    return 1;
}

static int is_free(void *addr, size_t len)
{
    void *p = mmap(addr, len, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    munmap(p, len);
    return p == addr;
}

static void *remap(const char *what, void *old, size_t old_len, size_t new_len, int flags,
                   void *new_addr)
{
    errno = 0;
    void *p = mremap(old, old_len, new_len, flags, new_addr);
    if (p == MAP_FAILED)
        printf("%s: %s\n", what, err(errno));
    return p;
}

int main(void)
{
    const size_t M = 1 << 20;
    /* Room above: reserve 4M, keep the first 1M. */
    unsigned char *a = mmap(NULL, 4 * M, RW, ANON, -1, 0);
    munmap(a + M, 3 * M);
    pattern(a, M, 1);
    uint64_t h = sum(a, M);
    unsigned char *g = remap("grow in place", a, M, 2 * M, 0, NULL);
    printf("grew in place: %d, data kept %d, new part zero %d\n", g == a, sum(a, M) == h,
           is_zero(a + M, M));
    pattern(a + M, M, 2);

    /* Blocked growth. */
    unsigned char *blocker = mmap(a + 2 * M, M, PROT_READ, ANON | MAP_FIXED_NOREPLACE, -1, 0);
    printf("blocker placed: %d\n", blocker == a + 2 * M);
    remap("grow without MAYMOVE", a, 2 * M, 3 * M, 0, NULL);
    h = sum(a, 2 * M);
    unsigned char *m = remap("grow with MAYMOVE", a, 2 * M, 6 * M, MREMAP_MAYMOVE, NULL);
    printf("moved: %d, data kept %d, new part zero %d, old range free %d\n", m != a,
           sum(m, 2 * M) == h, is_zero(m + 2 * M, 4 * M), is_free(a, 2 * M));
    munmap(blocker, M);

    /* Shrink. */
    unsigned char *s = remap("shrink", m, 6 * M, M + 4096, 0, NULL);
    printf("shrunk in place: %d, data kept %d, tail free %d\n", s == m,
           m[512] == (unsigned char)(13 + 1), is_free(m + 2 * M, 4 * M));

    /* MREMAP_FIXED to a free place. */
    unsigned char *dst = mmap(NULL, 8 * M, PROT_NONE, ANON, -1, 0);
    munmap(dst, 8 * M);
    h = sum(s, M);
    unsigned char *f = remap("fixed", s, M + 4096, 2 * M, MREMAP_MAYMOVE | MREMAP_FIXED, dst + M);
    printf("fixed at target: %d, data kept %d, grown part zero %d, old range free %d\n",
           f == dst + M, sum(f, M) == h, is_zero(f + M + 4096, M - 4096), is_free(s, M + 4096));

    /* MREMAP_DONTUNMAP: the old range stays mapped and reads zero. */
    unsigned char *d = mmap(NULL, M, RW, ANON, -1, 0);
    pattern(d, M, 5);
    h = sum(d, M);
    unsigned char *dn = remap("dontunmap", d, M, M, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
    if (dn != MAP_FAILED)
        printf("dontunmap: moved %d, data kept %d, old range zero %d\n", dn != d, sum(dn, M) == h,
               is_zero(d, M));

    /* A big move keeps its contents (and, in the LWK, its 2 MiB pages). */
    size_t big = 64 * M;
    unsigned char *b = mmap(NULL, big, RW, ANON, -1, 0);
    pattern(b, big, 7);
    h = sum(b, big);
    unsigned char *bb = remap("big grow", b, big, 2 * big, MREMAP_MAYMOVE, NULL);
    printf("big: data kept %d, new half zero %d\n", sum(bb, big) == h, is_zero(bb + big, big));
    munmap(bb, 2 * big);

    /* Bad requests. */
    unsigned char *x = mmap(NULL, 4 * 4096, RW, ANON, -1, 0);
    mprotect(x + 2 * 4096, 2 * 4096, PROT_READ);
    remap("unknown flag", x, 4096, 8192, 8, NULL);
    remap("fixed without maymove", x, 4096, 8192, MREMAP_FIXED, dst);
    remap("dontunmap with a new size", x, 4096, 8192, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
    remap("unaligned", x + 1, 4096, 8192, MREMAP_MAYMOVE, NULL);
    remap("new size 0", x, 4096, 0, MREMAP_MAYMOVE, NULL);
    remap("across two mappings", x, 4 * 4096, 8 * 4096, MREMAP_MAYMOVE, NULL);
    unsigned char *hole = mmap(NULL, M, PROT_NONE, ANON, -1, 0);
    munmap(hole, M);
    remap("not mapped", hole, 4096, 8192, MREMAP_MAYMOVE, NULL);
    remap("fixed onto itself", x, 2 * 4096, 2 * 4096, MREMAP_MAYMOVE | MREMAP_FIXED, x + 4096);
    return 0;
}
