/* Run under lwk-vmm only (tests/integration/process.rs): memory that processes use comes back
 * when they end. Each case runs many times in a small job and compares sysinfo's freeram before
 * and after; a leak of even one page per round shows. Prints "<case>: returned" or the loss. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

static long free_kib(void)
{
    struct sysinfo s;
    sysinfo(&s);
    return (long)(s.freeram * s.mem_unit / 1024);
}

static int wait_ok(pid_t p)
{
    int st = 0;
    return waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int fork_exit(const char *self)
{
    (void)self;
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    return wait_ok(p);
}

static int fork_exec(const char *self)
{
    pid_t p = fork();
    if (p == 0) {
        execl(self, self, "noop", (char *)0);
        _exit(1);
    }
    return wait_ok(p);
}

static int shared_fork(const char *self)
{
    (void)self;
    size_t len = 4 << 20;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 0;
    memset(m, 1, len);
    pid_t p = fork();
    if (p == 0) {
        m[len - 1] = 7;
        _exit(0);
    }
    int ok = wait_ok(p) && m[len - 1] == 7;
    munmap(m, len);
    return ok;
}

static int readonly_fork(const char *self)
{
    (void)self;
    size_t len = 1 << 20;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 0;
    memset(m, 2, len);
    mprotect(m, len, PROT_READ);
    pid_t p = fork();
    if (p == 0) {
        /* Half of it becomes the child's own. */
        mprotect(m, len / 2, PROT_READ | PROT_WRITE);
        m[0] = 3;
        _exit(m[len - 1] == 2 ? 0 : 1);
    }
    int ok = wait_ok(p) && m[0] == 2;
    munmap(m, len);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "noop"))
        return 0;
    struct {
        const char *name;
        int (*run)(const char *);
        int rounds;
    } cases[] = {
        {"fork+exit", fork_exit, 40},
        {"fork+exec", fork_exec, 20},
        {"MAP_SHARED across fork", shared_fork, 20},
        {"read-only memory shared by fork", readonly_fork, 20},
    };
    int bad = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        /* One round first: allocator state settles (page tables, the job's own structures). */
        if (!cases[c].run(argv[0])) {
            printf("%s: failed\n", cases[c].name);
            bad = 1;
            continue;
        }
        long before = free_kib();
        int ok = 1;
        for (int i = 0; i < cases[c].rounds && ok; i++)
            ok = cases[c].run(argv[0]);
        long lost = before - free_kib();
        if (!ok) {
            printf("%s: failed\n", cases[c].name);
            bad = 1;
        } else if (lost > 64) {
            printf("%s: %ld KiB not returned after %d rounds\n", cases[c].name, lost, cases[c].rounds);
            bad = 1;
        } else {
            printf("%s: returned\n", cases[c].name);
        }
    }
    return bad;
}
