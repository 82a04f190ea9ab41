/* munmap: partial unmaps split mappings (the rest keeps its data), holes really become free,
 * a 2 MiB page is split by a partial unmap, unmapping several mappings at once, and the errnos
 * of bad requests. Prints results and checksums, never addresses. */
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
    return e == 0 ? "ok" : e == EINVAL ? "EINVAL" : e == ENOMEM ? "ENOMEM" : "other";
}

static uint64_t sum(const unsigned char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i += 512)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void pattern(unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i += 512)
        p[i] = (unsigned char)(i >> 9);
}

static int is_free(void *addr, size_t len)
{
    void *p = mmap(addr, len, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    munmap(p, len);
    return p == addr;
}

int main(void)
{
    const size_t pg = 4096;
    unsigned char *p = mmap(NULL, 16 * pg, RW, ANON, -1, 0);
    pattern(p, 16 * pg);
    uint64_t head = sum(p, 6 * pg), tail = sum(p + 10 * pg, 6 * pg);
    printf("middle munmap: %d\n", munmap(p + 6 * pg, 4 * pg));
    printf("head kept %d, tail kept %d, hole free %d\n", sum(p, 6 * pg) == head,
           sum(p + 10 * pg, 6 * pg) == tail, is_free(p + 6 * pg, 4 * pg));
    int rc = munmap(p, 16 * pg);
    printf("unmap across the hole: %d, all free %d\n", rc, is_free(p, 16 * pg));

    /* 2 MiB pages split by partial unmaps. */
    size_t big = 8 << 20;
    unsigned char *b = mmap(NULL, big, RW, ANON, -1, 0);
    pattern(b, big);
    uint64_t before = sum(b, 3 << 20);
    uint64_t after = sum(b + (4 << 20), 4 << 20);
    printf("unmap 1M inside a 2M block: %d\n", munmap(b + (3 << 20), 1 << 20));
    printf("before kept %d, after kept %d, hole free %d\n", sum(b, 3 << 20) == before,
           sum(b + (4 << 20), 4 << 20) == after, is_free(b + (3 << 20), 1 << 20));
    printf("unmap single page at 5M: %d, neighbours kept %d\n", munmap(b + (5 << 20), pg),
           b[(5 << 20) - 512] == (unsigned char)(((5 << 20) - 512) >> 9) &&
               b[(5 << 20) + pg] == (unsigned char)(((5 << 20) + pg) >> 9));
    munmap(b, big);

    /* Several mappings in one call. */
    unsigned char *r = mmap(NULL, 12 * pg, PROT_NONE, ANON, -1, 0);
    mmap(r, 4 * pg, RW, ANON | MAP_FIXED, -1, 0);
    mmap(r + 4 * pg, 4 * pg, PROT_READ, ANON | MAP_FIXED, -1, 0);
    mmap(r + 8 * pg, 4 * pg, RW | PROT_EXEC, ANON | MAP_FIXED, -1, 0);
    r[0] = 1;
    r[8 * pg] = 2;
    rc = munmap(r, 12 * pg);
    printf("unmap three mappings: %d, all free %d\n", rc, is_free(r, 12 * pg));

    /* Unmapping nothing is fine; bad arguments are not. */
    printf("unmap a hole: %d\n", munmap(r, 12 * pg));
    struct {
        const char *name;
        void *addr;
        size_t len;
    } bad[] = {
        {"len 0", r, 0},
        {"unaligned", r + 1, pg},
        {"beyond the user half", (void *)(1ull << 60), pg},
        {"wrapping", r, (size_t)-4096},
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        int rc = munmap(bad[i].addr, bad[i].len);
        printf("%s: %d %s\n", bad[i].name, rc, err(errno));
    }
    return 0;
}
