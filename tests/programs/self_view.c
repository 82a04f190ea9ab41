/* The program's view of itself: /proc/self/exe is the program, uname says Linux x86_64. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>
#include <sys/utsname.h>

int main(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n < 0) {
        perror("readlink");
        return 1;
    }
    buf[n] = 0;
    const char *base = strrchr(buf, '/');
    printf("exe basename: %s\n", base ? base + 1 : buf);
    printf("exe absolute: %s\n", buf[0] == '/' ? "yes" : "no");
    struct utsname u;
    if (uname(&u) != 0) {
        perror("uname");
        return 1;
    }
    printf("sysname=%s machine=%s\n", u.sysname, u.machine);
    printf("uid matches euid: %s\n", getuid() == geteuid() ? "yes" : "no");
    printf("pid positive: %s\n", getpid() > 0 ? "yes" : "no");
    return 0;
}
