/* Anonymous mmap: sizes, zero fill, shared and private, hints, MAP_FIXED, MAP_FIXED_NOREPLACE,
 * the accepted flags (MAP_POPULATE, MAP_NORESERVE, MAP_STACK, MAP_GROWSDOWN, MAP_32BIT) and the
 * errnos of bad requests. Prints results and checksums, never addresses. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *err(int e)
{
    static char buf[32];
    switch (e) {
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EEXIST: return "EEXIST";
    case EBADF: return "EBADF";
    case ENODEV: return "ENODEV";
    case EPERM: return "EPERM";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: snprintf(buf, sizeof buf, "errno %d", e); return buf;
    }
}

#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static void *try_map(const char *what, void *addr, size_t len, int prot, int flags)
{
    errno = 0;
    void *p = mmap(addr, len, prot, flags, -1, 0);
    if (p == MAP_FAILED)
        printf("%s: %s\n", what, err(errno));
    return p;
}

static int is_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return 0;
    return 1;
}

static uint64_t fill_and_sum(unsigned char *p, size_t len, unsigned seed)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i += 64) {
        p[i] = (unsigned char)(i / 64 * 31 + seed);
        h = (h ^ p[i]) * 1099511628211ull;
    }
    p[len - 1] = (unsigned char)seed;
    return h ^ p[len - 1];
}

int main(void)
{
    const long pg = sysconf(_SC_PAGESIZE);
    size_t sizes[] = {1, 4096, 4097, 65536, (2 << 20) - 4096, 2 << 20, (2 << 20) + 4096,
                      3 << 20, 16 << 20, (64 << 20) + 12288};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int shared = 0; shared < 2; shared++) {
            int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS;
            unsigned char *p = try_map("map", NULL, sizes[i], RW, flags);
            if (p == MAP_FAILED)
                continue;
            int zero = is_zero(p, sizes[i]);
            uint64_t h = fill_and_sum(p, sizes[i], i);
            printf("size %zu %s: page aligned %d, zero %d, sum %016llx, munmap %d\n", sizes[i],
                   shared ? "shared" : "private", ((uintptr_t)p % pg) == 0, zero,
                   (unsigned long long)h, munmap(p, sizes[i]));
        }
    }

    /* A hint is honoured when the range is free. */
    unsigned char *area = try_map("reserve", NULL, 8 << 20, PROT_NONE, ANON);
    munmap(area, 8 << 20);
    unsigned char *hint = area + (2 << 20);
    unsigned char *h1 = try_map("hint", hint, 1 << 20, RW, ANON);
    printf("free hint honoured: %d\n", h1 == hint);
    unsigned char *h2 = try_map("hint taken", hint, 1 << 20, RW, ANON);
    printf("taken hint moved elsewhere: %d, no overlap: %d\n", h2 != hint && h2 != MAP_FAILED,
           h2 + (1 << 20) <= h1 || h2 >= h1 + (1 << 20));
    munmap(h2, 1 << 20);

    /* MAP_FIXED replaces, MAP_FIXED_NOREPLACE refuses. */
    memset(h1, 0x5a, 3 * pg);
    unsigned char *f = try_map("fixed", h1 + pg, pg, RW, ANON | MAP_FIXED);
    printf("fixed at address: %d, replaced page zero: %d, neighbours kept: %d %d\n", f == h1 + pg,
           is_zero(h1 + pg, pg), h1[0] == 0x5a && h1[pg - 1] == 0x5a,
           h1[2 * pg] == 0x5a && h1[3 * pg - 1] == 0x5a);
    f = try_map("fixed_noreplace on a mapping", h1, pg, RW, ANON | MAP_FIXED_NOREPLACE);
    printf("noreplace refused, data kept: %d\n", f == MAP_FAILED && h1[0] == 0x5a);
    munmap(h1, 1 << 20);
    f = try_map("fixed_noreplace on a hole", h1, pg, RW, ANON | MAP_FIXED_NOREPLACE);
    printf("noreplace on a hole: %d\n", f == h1);
    munmap(f, pg);

    /* Flags that are accepted. */
    struct {
        const char *name;
        int flags;
    } ok[] = {
        {"MAP_POPULATE", MAP_POPULATE},   {"MAP_NORESERVE", MAP_NORESERVE},
        {"MAP_STACK", MAP_STACK},         {"MAP_GROWSDOWN", MAP_GROWSDOWN},
        {"MAP_NONBLOCK", MAP_NONBLOCK},   {"MAP_POPULATE|MAP_NONBLOCK", MAP_POPULATE | MAP_NONBLOCK},
    };
    for (unsigned i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        unsigned char *p = try_map(ok[i].name, NULL, 3 << 20, RW, ANON | ok[i].flags);
        if (p == MAP_FAILED)
            continue;
        int zero = is_zero(p, 3 << 20);
        printf("%s: zero %d, sum %016llx\n", ok[i].name, zero,
               (unsigned long long)fill_and_sum(p, 3 << 20, i));
        munmap(p, 3 << 20);
    }
    unsigned char *low = try_map("MAP_32BIT", NULL, 1 << 20, RW, ANON | MAP_32BIT);
    if (low != MAP_FAILED) {
        printf("MAP_32BIT below 2 GiB: %d\n", (uintptr_t)low + (1 << 20) <= 0x80000000u);
        munmap(low, 1 << 20);
    }

    /* A huge MAP_NORESERVE reservation, touched sparsely. */
    size_t big = (size_t)64 << 30;
    unsigned char *r = try_map("noreserve 64G", NULL, big, RW, ANON | MAP_NORESERVE);
    if (r != MAP_FAILED) {
        r[0] = 1;
        r[big / 2] = 2;
        r[big - 1] = 3;
        printf("noreserve 64G: touched %d %d %d, untouched zero %d\n", r[0], r[big / 2], r[big - 1],
               r[big / 4] == 0 && r[4096] == 0);
        munmap(r, big);
    }

    /* Bad requests. */
    struct {
        const char *name;
        void *addr;
        size_t len;
        int flags;
        int fd;
        long off;
    } bad[] = {
        {"len 0", NULL, 0, ANON, -1, 0},
        {"no type", NULL, 4096, MAP_ANONYMOUS, -1, 0},
        {"unaligned offset", NULL, 4096, ANON, -1, 1},
        {"fixed unaligned", (void *)0x10000001, 4096, ANON | MAP_FIXED, -1, 0},
        /* Beyond any user half (also 5-level paging's). */
        {"fixed beyond the user half", (void *)(1ull << 60), 4096, ANON | MAP_FIXED, -1, 0},
        {"huge length", NULL, (size_t)1 << 47, ANON, -1, 0},
        {"wrapping length", NULL, (size_t)-4096, ANON, -1, 0},
        {"more than memory (1 TiB)", NULL, (size_t)1 << 40, ANON, -1, 0},
        {"file mapping, fd -1", NULL, 4096, MAP_PRIVATE, -1, 0},
        {"file mapping, closed fd", NULL, 4096, MAP_PRIVATE, 999, 0},
        {"shared growsdown", NULL, 4096, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0},
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = mmap(bad[i].addr, bad[i].len, RW, bad[i].flags, bad[i].fd, bad[i].off);
        printf("%s: %s\n", bad[i].name, p == MAP_FAILED ? err(errno) : "mapped");
        if (p != MAP_FAILED)
            munmap(p, bad[i].len);
    }
    return 0;
}
