/* sysinfo(2) and the sysconf values glibc/musl derive from it: facts that hold both natively
 * and in the LWK (the numbers themselves differ: the LWK reports its guest RAM). */
#include <errno.h>
#include <stdio.h>
#include <sys/sysinfo.h>
#include <unistd.h>

int main(void) {
    struct sysinfo si;
    int r = sysinfo(&si);
    printf("sysinfo %d\n", r);
    printf("totalram > 64 MiB: %d\n", (unsigned long long)si.totalram * si.mem_unit > (64ull << 20));
    printf("freeram <= totalram: %d\n", si.freeram <= si.totalram);
    printf("uptime > 0: %d\n", si.uptime > 0);
    printf("procs >= 1: %d\n", si.procs >= 1);
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    printf("phys pages > 0: %d, avail <= phys: %d\n", pages > 0, avail <= pages);
    errno = 0;
    r = sysinfo((struct sysinfo *)8);
    printf("bad pointer: %d %s\n", r, errno == EFAULT ? "EFAULT" : "other");
    return 0;
}
