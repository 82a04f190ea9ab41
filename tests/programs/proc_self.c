/* The program's view of itself through /proc and /sys: maps (its own stack, code and heap),
 * status, cmdline, comm, cwd, fd/N, cpuinfo against the online CPU list, meminfo.
 * Prints consistency checks, never addresses or sizes. */
// args: first second-arg
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("open %s: %s\n", path, ename(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    ssize_t r;
    while ((r = read(fd, b + n, cap - n)) > 0) {
        n += r;
        if (n == cap)
            b = realloc(b, (cap *= 2) + 1);
    }
    close(fd);
    b[n] = 0;
    if (len)
        *len = n;
    return b;
}

/* The permissions of the maps line containing `addr`, or "none". */
static const char *perms_of(const char *maps, uintptr_t addr, int *is_stack)
{
    static char perms[5];
    const char *line = maps;
    while (line && *line) {
        unsigned long lo, hi;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && addr >= lo && addr < hi) {
            memcpy(perms, p, 5);
            const char *eol = strchr(line, '\n');
            *is_stack = strstr(line, "[stack]") != NULL && (!eol || strstr(line, "[stack]") < eol);
            return perms;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return "none";
}

static long field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

int main(int argc, char **argv)
{
    char *maps = slurp("/proc/self/maps", NULL);
    int local = 0, st = 0;
    char *heap = malloc(64);
    if (maps) {
        const char *p = perms_of(maps, (uintptr_t)&local, &st);
        printf("stack local: %.3s stack-named: %s\n", p, st ? "yes" : "no");
        p = perms_of(maps, (uintptr_t)&main, &st);
        printf("code: %.1s%.1s%.1s\n", p, p + 1, p + 2);
        p = perms_of(maps, (uintptr_t)heap, &st);
        printf("heap: %.2s\n", p);
        printf("unmapped: %s\n", perms_of(maps, 0x1000, &st));
        unsigned long prev = 0, lo, hi;
        int sorted = 1, lines = 0;
        for (const char *l = maps; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
            if (sscanf(l, "%lx-%lx", &lo, &hi) != 2 || lo < prev || hi <= lo)
                sorted = 0;
            prev = hi;
            lines++;
        }
        printf("maps sorted and well-formed: %s, at least 3 lines: %s\n", sorted ? "yes" : "no",
               lines >= 3 ? "yes" : "no");
    }
    char *status = slurp("/proc/self/status", NULL);
    if (status) {
        printf("status Pid matches: %s\n", field(status, "\nPid:") == getpid() ? "yes" : "no");
        printf("status PPid matches: %s\n", field(status, "\nPPid:") == getppid() ? "yes" : "no");
        printf("status Uid matches: %s\n", field(status, "\nUid:") == (long)getuid() ? "yes" : "no");
        printf("status Threads: %ld\n", field(status, "\nThreads:"));
        const char *name = strstr(status, "Name:\t");
        printf("status Name: %.*s\n", name ? (int)strcspn(name + 6, "\n") : 0, name ? name + 6 : "");
    }
    size_t n;
    char *cmd = slurp("/proc/self/cmdline", &n);
    if (cmd) {
        int args = 0, same = 1;
        for (size_t i = 0; i < n; i += strlen(cmd + i) + 1, args++)
            if (args < argc && strcmp(cmd + i, argv[args]) != 0)
                same = 0;
        printf("cmdline: %d args, same as argv: %s\n", args, same && args == argc ? "yes" : "no");
    }
    char *comm = slurp("/proc/self/comm", NULL);
    if (comm) {
        const char *base = strrchr(argv[0], '/');
        base = base ? base + 1 : argv[0];
        printf("comm is argv[0] basename: %s\n", strncmp(comm, base, 15) == 0 ? "yes" : "no");
    }
    char cwd[4096], link[4096];
    getcwd(cwd, sizeof cwd);
    ssize_t l = readlink("/proc/self/cwd", link, sizeof link - 1);
    link[l > 0 ? l : 0] = 0;
    printf("cwd link is getcwd: %s\n", strcmp(cwd, link) == 0 ? "yes" : "no");
    char path[64], name[64];
    snprintf(path, sizeof path, "/tmp/lwk-proc-%d", getpid());
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    write(fd, "via proc", 8);
    snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
    l = readlink(name, link, sizeof link - 1);
    link[l > 0 ? l : 0] = 0;
    printf("fd link is the path: %s\n", strcmp(link, path) == 0 ? "yes" : "no");
    int again = open(name, O_RDONLY);
    char buf[16] = {0};
    VAL("read reopened fd", read(again, buf, sizeof buf));
    printf("content: %s\n", buf);
    snprintf(name, sizeof name, "/dev/fd/%d", fd);
    VAL("open /dev/fd/N", close(open(name, O_RDONLY)));
    TRY("open /proc/self/fd/99", open("/proc/self/fd/99", O_RDONLY));
    TRY("open /dev/stdin", open("/dev/stdin", O_RDONLY));
    unlink(path);

    char *cpu = slurp("/proc/cpuinfo", NULL), *online = slurp("/sys/devices/system/cpu/online", NULL);
    if (cpu && online) {
        int procs = 0;
        for (const char *p = cpu; (p = strstr(p, "processor\t:")); p++)
            procs++;
        long first = strtol(online, NULL, 10), last = first;
        const char *dash = strchr(online, '-');
        if (dash)
            last = strtol(dash + 1, NULL, 10);
        printf("cpuinfo processors match the online list: %s\n", procs == last - first + 1 ? "yes" : "no");
    }
    char *mem = slurp("/proc/meminfo", NULL);
    if (mem)
        printf("MemTotal positive: %s\n", field(mem, "MemTotal:") > 0 ? "yes" : "no");
    return 0;
}
