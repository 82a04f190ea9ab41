/* madvise: MADV_DONTNEED makes memory read zero (small, inside 2 MiB pages, whole large
 * mappings), but shared memory and read-only file pages keep their bytes (also in a forked
 * child, whose read-only pages the parent shares); MADV_REMOVE zeroes shared memory; the other
 * advice is accepted, populate works, and the errnos of bad requests. */
// lwk-vmm: --cpus 2 --oversubscribe timeslice
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static const char *err(int e)
{
    return e == 0 ? "ok" : e == EINVAL ? "EINVAL" : e == ENOMEM ? "ENOMEM" : e == EFAULT ? "EFAULT" : "other";
}

static int is_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return 0;
    return 1;
}

static int all(const unsigned char *p, size_t len, unsigned char v)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void report(const char *what, int rc)
{
    printf("%s: %d %s\n", what, rc, err(rc ? errno : 0));
}

int main(void)
{
    const size_t pg = 4096, M = 1 << 20;
    unsigned char *p = mmap(NULL, 16 * pg, RW, ANON, -1, 0);
    memset(p, 0x77, 16 * pg);
    report("dontneed 2 pages", madvise(p + 4 * pg, 2 * pg, MADV_DONTNEED));
    printf("zero %d, rest kept %d %d\n", is_zero(p + 4 * pg, 2 * pg), all(p, 4 * pg, 0x77),
           all(p + 6 * pg, 10 * pg, 0x77));
    memset(p + 4 * pg, 0x66, 2 * pg);
    printf("writable after: %d\n", all(p + 4 * pg, 2 * pg, 0x66));

    size_t big = 16 * M;
    unsigned char *b = mmap(NULL, big, RW, ANON, -1, 0);
    memset(b, 0x33, big);
    report("dontneed 1M inside 2M pages", madvise(b + 3 * M, M, MADV_DONTNEED));
    printf("zero %d, before kept %d, after kept %d\n", is_zero(b + 3 * M, M), all(b, 3 * M, 0x33),
           all(b + 4 * M, big - 4 * M, 0x33));
    report("dontneed everything", madvise(b, big, MADV_DONTNEED));
    printf("all zero %d\n", is_zero(b, big));
    memset(b, 0x44, big);
    printf("refilled %d\n", all(b, big, 0x44));
    munmap(b, big);

    struct {
        const char *name;
        int advice;
    } ok[] = {
        {"MADV_NORMAL", MADV_NORMAL},         {"MADV_RANDOM", MADV_RANDOM},
        {"MADV_SEQUENTIAL", MADV_SEQUENTIAL}, {"MADV_WILLNEED", MADV_WILLNEED},
        {"MADV_DONTFORK", MADV_DONTFORK},     {"MADV_DOFORK", MADV_DOFORK},
        {"MADV_DONTDUMP", MADV_DONTDUMP},     {"MADV_DODUMP", MADV_DODUMP},
        {"MADV_WIPEONFORK", MADV_WIPEONFORK}, {"MADV_KEEPONFORK", MADV_KEEPONFORK},
        {"MADV_FREE", MADV_FREE},             {"MADV_POPULATE_READ", MADV_POPULATE_READ},
        {"MADV_POPULATE_WRITE", MADV_POPULATE_WRITE},
    };
    for (unsigned i = 0; i < sizeof ok / sizeof ok[0]; i++)
        report(ok[i].name, madvise(p, 16 * pg, ok[i].advice));
    printf("data after MADV_FREE and the rest, then rewritten: ");
    memset(p, 0x12, 16 * pg);
    printf("%d\n", all(p, 16 * pg, 0x12));

    unsigned char *ro = mmap(NULL, 4 * pg, PROT_READ, ANON, -1, 0);
    report("populate read on read-only", madvise(ro, 4 * pg, MADV_POPULATE_READ));
    report("populate write on read-only", madvise(ro, 4 * pg, MADV_POPULATE_WRITE));
    unsigned char *none = mmap(NULL, 4 * pg, PROT_NONE, ANON, -1, 0);
    report("populate read on PROT_NONE", madvise(none, 4 * pg, MADV_POPULATE_READ));
    report("dontneed on PROT_NONE", madvise(none, 4 * pg, MADV_DONTNEED));

    munmap(p + 8 * pg, pg);
    report("len 0", madvise(p, 0, MADV_DONTNEED));
    report("unknown advice 5", madvise(p, pg, 5));
    report("unknown advice 999", madvise(p, pg, 999));
    report("unaligned", madvise(p + 1, pg, MADV_NORMAL));
    report("hole in the range", madvise(p, 16 * pg, MADV_NORMAL));
    report("dontneed across a hole", madvise(p, 16 * pg, MADV_DONTNEED));
    printf("pages before the hole zeroed anyway: %d\n", is_zero(p, 8 * pg));
    report("remove on private memory", madvise(p, pg, MADV_REMOVE));
    report("wrapping", madvise(p, (size_t)-4096, MADV_NORMAL));

    unsigned char *sh = mmap(NULL, 4 * pg, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(sh, 0x33, 4 * pg);
    report("dontneed on shared memory", madvise(sh, 4 * pg, MADV_DONTNEED));
    printf("shared memory keeps its bytes: %d\n", all(sh, 4 * pg, 0x33));
    report("remove on shared memory", madvise(sh, pg, MADV_REMOVE));
    printf("removed page reads zero, the rest kept: %d %d\n", is_zero(sh, pg),
           all(sh + pg, 3 * pg, 0x33));

    /* Read-only file pages: this program's own file. */
    int fd = open("/proc/self/exe", O_RDONLY);
    unsigned char first[64];
    if (fd < 0 || pread(fd, first, sizeof first, 0) != (ssize_t)sizeof first)
        return 1;
    unsigned char *f = mmap(NULL, 2 * pg, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        /* The child's pages are the parent's (shared at fork): dropping them here must not
         * change the parent's. */
        int r = madvise(f, 2 * pg, MADV_DONTNEED);
        _exit(r == 0 && memcmp(f, first, sizeof first) == 0 ? 0 : 1);
    }
    int st = -1;
    waitpid(child, &st, 0);
    printf("file pages after dontneed in a child: child %d, parent's kept %d\n",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, memcmp(f, first, sizeof first) == 0);
    report("dontneed on file pages", madvise(f, 2 * pg, MADV_DONTNEED));
    printf("file pages keep the file's bytes: %d\n", memcmp(f, first, sizeof first) == 0);

    unsigned char *ro2 = mmap(NULL, 2 * pg, RW, ANON, -1, 0);
    memset(ro2, 0x44, 2 * pg);
    mprotect(ro2, 2 * pg, PROT_READ);
    fflush(stdout);
    child = fork();
    if (child == 0)
        _exit(madvise(ro2, 2 * pg, MADV_DONTNEED) == 0 && is_zero(ro2, 2 * pg) ? 0 : 1);
    waitpid(child, &st, 0);
    printf("read-only memory after dontneed in a child: child zero %d, parent's kept %d\n",
           WIFEXITED(st) && WEXITSTATUS(st) == 0, all(ro2, 2 * pg, 0x44));
    return 0;
}
