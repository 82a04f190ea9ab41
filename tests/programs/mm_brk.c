/* brk through the raw syscall: growth reads zero, shrink and regrow read zero again (also after
 * the memory was written), growth in small steps as malloc does (the heap's 2 MiB blocks), and
 * refused moves (below the start, beyond the address space). Results are collected first and
 * printed after the break is restored, so stdio's own heap use does not interfere. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static uintptr_t brk_(uintptr_t to)
{
    return (uintptr_t)syscall(SYS_brk, to);
}

static int is_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return 0;
    return 1;
}

static char out[4096];
static size_t used;
#define SAY(...) (used += (size_t)snprintf(out + used, sizeof out - used, __VA_ARGS__))

int main(void)
{
    uintptr_t start = brk_(0);
    SAY("brk(0) again is the same: %d\n", brk_(0) == start);
    uintptr_t want = start + 100000;
    SAY("grow 100000: %d\n", brk_(want) == want);
    SAY("zero: %d\n", is_zero((unsigned char *)start, 100000));
    memset((void *)start, 0xab, 100000);

    want = start + (5 << 20) + 123;
    SAY("grow to 5M+123: %d\n", brk_(want) == want);
    SAY("old part kept: %d, new part zero: %d\n", ((unsigned char *)start)[99999] == 0xab,
        is_zero((unsigned char *)start + 100000, (5 << 20) + 123 - 100000));
    memset((void *)start, 0xcd, (5 << 20) + 123);

    want = start + 65536;
    SAY("shrink to 64K: %d\n", brk_(want) == want);
    want = start + (5 << 20);
    SAY("regrow to 5M: %d\n", brk_(want) == want);
    SAY("regrown part zero: %d, kept part: %d\n",
        is_zero((unsigned char *)start + 65536, (5 << 20) - 65536),
        ((unsigned char *)start)[65535] == 0xcd);

    /* Small steps, as malloc grows the heap. */
    uintptr_t cur = brk_(0);
    int ok = 1;
    for (int i = 0; i < 100; i++) {
        uintptr_t next = cur + 135168;
        if (brk_(next) != next) {
            ok = 0;
            break;
        }
        if (!is_zero((unsigned char *)cur, 135168))
            ok = 0;
        memset((void *)cur, i + 1, 135168);
        cur = next;
    }
    SAY("100 steps of 132K: %d\n", ok);
    unsigned long s = 0;
    for (uintptr_t a = start + (5 << 20); a < cur; a += 4096)
        s += *(unsigned char *)a;
    SAY("step sum: %lu\n", s);

    SAY("below the start refused: %d\n", brk_(4096) == cur);
    SAY("beyond the address space refused: %d\n", brk_(start + ((uintptr_t)1 << 47)) == cur);
    SAY("shrink back to the start: %d\n", brk_(start) == start);
    SAY("grow again after all, zero: %d\n",
        brk_(start + (3 << 20)) == start + (3 << 20) && is_zero((unsigned char *)start, 3 << 20));
    brk_(start);
    fputs(out, stdout);
    return 0;
}
