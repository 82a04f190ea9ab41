/* The vDSO: AT_SYSINFO_EHDR is present and points at a valid ELF shared object that exports
 * __vdso_clock_gettime, __vdso_gettimeofday, __vdso_time, __vdso_getcpu and
 * __vdso_clock_getres under version LINUX_2.6; calling them directly agrees with the syscalls.
 * With an argument N, makes N clock_gettime calls through libc (the trap-count test); with
 * "realtime", prints CLOCK_REALTIME in ns read through libc and through the raw syscall (the
 * host-agreement test, which compares them with the host clock; tests/integration/time.rs). */
#define _GNU_SOURCE
#include <elf.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static const Elf64_Ehdr *eh;
static uintptr_t base;
static const Elf64_Sym *syms;
static const char *strs;
static const uint32_t *hash;
static const uint16_t *versym;
static const Elf64_Verdef *verdef;

static const char *version_of(int i)
{
    if (!versym || !verdef)
        return "";
    uint16_t v = versym[i] & 0x7fff;
    for (const Elf64_Verdef *d = verdef;; d = (const void *)((const char *)d + d->vd_next)) {
        if (d->vd_ndx == v && !(d->vd_flags & VER_FLG_BASE)) {
            const Elf64_Verdaux *a = (const void *)((const char *)d + d->vd_aux);
            return strs + a->vda_name;
        }
        if (!d->vd_next)
            return "";
    }
}

static void *sym(const char *name)
{
    for (uint32_t i = 0; i < hash[1]; i++) {
        if (strcmp(strs + syms[i].st_name, name) == 0 && syms[i].st_shndx != SHN_UNDEF) {
            printf("symbol %s: %s\n", name, version_of(i));
            return (void *)(base + syms[i].st_value);
        }
    }
    printf("symbol %s: missing\n", name);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "realtime") == 0) {
        struct timespec a, b;
        clock_gettime(CLOCK_REALTIME, &a);
        syscall(SYS_clock_gettime, CLOCK_REALTIME, &b);
        printf("%lld %lld\n", a.tv_sec * 1000000000LL + a.tv_nsec, b.tv_sec * 1000000000LL + b.tv_nsec);
        return 0;
    }
    if (argc > 1) {
        long n = atol(argv[1]);
        struct timespec ts, last = {0, 0};
        int ok = 1;
        for (long i = 0; i < n; i++) {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            if (ts.tv_sec < last.tv_sec || (ts.tv_sec == last.tv_sec && ts.tv_nsec < last.tv_nsec))
                ok = 0;
            last = ts;
        }
        printf("%ld calls monotonic: %s\n", n, ok ? "ok" : "BAD");
        return 0;
    }
    unsigned long at = getauxval(AT_SYSINFO_EHDR);
    printf("AT_SYSINFO_EHDR present: %s\n", at ? "ok" : "BAD");
    if (!at)
        return 1;
    eh = (const Elf64_Ehdr *)at;
    printf("elf magic: %s\n", memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 ? "ok" : "BAD");
    printf("class %d data %d type %d machine %d\n", eh->e_ident[EI_CLASS], eh->e_ident[EI_DATA], eh->e_type, eh->e_machine);
    const Elf64_Phdr *ph = (const void *)(at + eh->e_phoff);
    const Elf64_Dyn *dyn = NULL;
    int loads = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD) {
            if (!loads++)
                base = at + ph[i].p_offset - ph[i].p_vaddr;
            printf("PT_LOAD flags %s\n", (ph[i].p_flags & (PF_R | PF_X)) == (PF_R | PF_X) && !(ph[i].p_flags & PF_W) ? "r-x" : "other");
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dyn = (const void *)(at + ph[i].p_offset);
        }
    }
    printf("PT_DYNAMIC: %s\n", dyn ? "ok" : "BAD");
    if (!dyn)
        return 1;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB: syms = (const void *)(base + dyn->d_un.d_ptr); break;
        case DT_STRTAB: strs = (const void *)(base + dyn->d_un.d_ptr); break;
        case DT_HASH: hash = (const void *)(base + dyn->d_un.d_ptr); break;
        case DT_VERSYM: versym = (const void *)(base + dyn->d_un.d_ptr); break;
        case DT_VERDEF: verdef = (const void *)(base + dyn->d_un.d_ptr); break;
        }
    }
    printf("dynamic tables: %s\n", syms && strs && hash && versym && verdef ? "ok" : "BAD");
    if (!(syms && strs && hash))
        return 1;

    int (*cgt)(clockid_t, struct timespec *) = (int (*)(clockid_t, struct timespec *))sym("__vdso_clock_gettime");
    int (*gtod)(struct timeval *, void *) = (int (*)(struct timeval *, void *))sym("__vdso_gettimeofday");
    time_t (*tm)(time_t *) = (time_t(*)(time_t *))sym("__vdso_time");
    long (*gcpu)(unsigned *, unsigned *, void *) = (long (*)(unsigned *, unsigned *, void *))sym("__vdso_getcpu");
    int (*gres)(clockid_t, struct timespec *) = (int (*)(clockid_t, struct timespec *))sym("__vdso_clock_getres");
    if (!cgt || !gtod || !tm || !gcpu || !gres)
        return 1;

    static const clockid_t ids[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID,
                                    CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME};
    for (unsigned i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct timespec a, b, c;
        int r1 = syscall(SYS_clock_gettime, ids[i], &a);
        int r2 = cgt(ids[i], &b);
        int r3 = syscall(SYS_clock_gettime, ids[i], &c);
        int64_t na = a.tv_sec * 1000000000LL + a.tv_nsec, nb = b.tv_sec * 1000000000LL + b.tv_nsec,
                nc = c.tv_sec * 1000000000LL + c.tv_nsec;
        printf("vdso clock %d: %d %d %d %s\n", ids[i], r1, r2, r3, na <= nb && nb <= nc && nc - na < 1000000000 ? "ok" : "BAD");
        struct timespec ra, rb;
        r1 = syscall(SYS_clock_getres, ids[i], &ra);
        r2 = gres(ids[i], &rb);
        printf("vdso getres %d: %d %d %s\n", ids[i], r1, r2, ra.tv_sec == rb.tv_sec && ra.tv_nsec == rb.tv_nsec ? "ok" : "BAD");
    }
    struct timespec ts;
    printf("vdso clock_gettime(12345): %d\n", cgt(12345, &ts));
    printf("vdso clock_getres(12345): %d\n", gres(12345, &ts));
    printf("vdso clock_getres(MONOTONIC, NULL): %d\n", gres(CLOCK_MONOTONIC, NULL));
    struct timeval tv;
    struct { int a, b; } tz = {7, 7};
    struct timespec r1, r2;
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &r1);
    int g = gtod(&tv, &tz);
    time_t t = tm(NULL);
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &r2);
    int64_t us = tv.tv_sec * 1000000LL + tv.tv_usec;
    printf("vdso gettimeofday: %d %s tz %d %d\n", g,
           us >= (r1.tv_sec * 1000000LL + r1.tv_nsec / 1000) && us <= (r2.tv_sec * 1000000LL + r2.tv_nsec / 1000) ? "ok" : "BAD",
           tz.a, tz.b);
    printf("vdso time: %s\n", t >= r1.tv_sec - 1 && t <= r2.tv_sec ? "ok" : "BAD");
    time_t t2 = 0;
    printf("vdso time(&t): %s\n", tm(&t2) == t2 ? "ok" : "BAD");
    unsigned cpu = 999, node = 999, scpu = 998;
    long gr = gcpu(&cpu, &node, NULL);
    syscall(SYS_getcpu, &scpu, NULL, NULL);
    printf("vdso getcpu: %ld %s node %u\n", gr, cpu == scpu ? "ok" : "BAD", node);
    return 0;
}
