/* mlock, munlock, mlock2, mlockall, munlockall succeed on mapped memory (it is resident);
 * msync on anonymous memory; mincore of touched memory; MAP_LOCKED; locked memory refuses
 * MADV_DONTNEED as in Linux; and the errnos of bad requests. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static const char *err(int e)
{
    return e == 0 ? "ok" : e == EINVAL ? "EINVAL" : e == ENOMEM ? "ENOMEM" : e == EBUSY ? "EBUSY" : e == EFAULT ? "EFAULT" : "other";
}

static void report(const char *what, long rc)
{
    printf("%s: %ld %s\n", what, rc, err(rc ? errno : 0));
}

int main(void)
{
    const size_t pg = 4096;
    unsigned char *p = mmap(NULL, 64 * pg, RW, ANON, -1, 0);
    memset(p, 1, 64 * pg);
    report("mlock", mlock(p, 16 * pg));
    report("mlock unaligned start (rounded)", mlock(p + 100, pg));
    report("mlock2 onfault", syscall(SYS_mlock2, p + 16 * pg, 4 * pg, MLOCK_ONFAULT));
    report("mlock2 bad flag", syscall(SYS_mlock2, p, pg, 2));
    report("dontneed on locked", madvise(p, pg, MADV_DONTNEED));
    report("dontneed_locked on locked", madvise(p, pg, MADV_DONTNEED_LOCKED));
    printf("zero after dontneed_locked: %d, neighbour kept: %d\n", p[0] == 0 && p[pg - 1] == 0, p[pg] == 1);
    report("msync invalidate on locked", msync(p, pg, MS_INVALIDATE));
    report("munlock", munlock(p, 64 * pg));
    report("dontneed after munlock", madvise(p + pg, pg, MADV_DONTNEED));
    report("mlock len 0", mlock(p, 0));

    unsigned char vec[64];
    memset(p, 2, 64 * pg);
    report("mincore of touched pages", mincore(p, 64 * pg, vec));
    int resident = 0;
    for (int i = 0; i < 64; i++)
        resident += vec[i] & 1;
    printf("resident pages: %d\n", resident);
    report("mincore unaligned", mincore(p + 1, pg, vec));
    report("mincore bad vector", mincore(p, pg, (unsigned char *)8));

    report("msync sync", msync(p, 64 * pg, MS_SYNC));
    report("msync async", msync(p, 64 * pg, MS_ASYNC));
    report("msync invalidate", msync(p, 64 * pg, MS_INVALIDATE));
    report("msync len 0", msync(p, 0, MS_SYNC));
    report("msync sync|async", msync(p, pg, MS_SYNC | MS_ASYNC));
    report("msync unknown flag", msync(p, pg, 8));
    report("msync unaligned", msync(p + 1, pg, MS_SYNC));
    munmap(p + 32 * pg, pg);
    report("mlock across a hole", mlock(p, 64 * pg));
    report("msync across a hole", msync(p, 64 * pg, MS_SYNC));
    report("mincore across a hole", mincore(p, 64 * pg, vec));

    unsigned char *l = mmap(NULL, 1 << 20, RW, ANON | MAP_LOCKED, -1, 0);
    printf("MAP_LOCKED: %d, zero %d\n", l != MAP_FAILED, l != MAP_FAILED && l[0] == 0 && l[(1 << 20) - 1] == 0);
    report("dontneed on MAP_LOCKED", madvise(l, pg, MADV_DONTNEED));

    report("mlockall bad flags", mlockall(0));
    report("mlockall onfault alone", mlockall(MCL_ONFAULT));
    report("mlockall current", mlockall(MCL_CURRENT));
    report("dontneed after mlockall", madvise(p, pg, MADV_DONTNEED));
    report("mlockall future", mlockall(MCL_FUTURE));
    unsigned char *q = mmap(NULL, 4 * pg, RW, ANON, -1, 0);
    report("dontneed on memory mapped after MCL_FUTURE", madvise(q, pg, MADV_DONTNEED));
    report("munlockall", munlockall());
    report("dontneed after munlockall", madvise(q, pg, MADV_DONTNEED));
    return 0;
}
