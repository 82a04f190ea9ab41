/* The fds a program starts with: which numbers are open, their kind and FD_CLOEXEC, and the
 * contents of fd 5 when the caller passed one (tests/integration/offload.rs does). Under
 * lwk-vmm the VMM's own fds (/dev/kvm, the VM, vCPUs) must not show up. */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void)
{
    for (int fd = 0; fd < 1024; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0)
            continue;
        struct stat st;
        const char *kind = "?";
        if (fstat(fd, &st) == 0)
            kind = S_ISREG(st.st_mode) ? "file" : S_ISFIFO(st.st_mode) ? "fifo"
                 : S_ISCHR(st.st_mode) ? "chr" : S_ISSOCK(st.st_mode) ? "sock"
                 : S_ISDIR(st.st_mode) ? "dir" : "other";
        printf("fd %d: %s%s\n", fd, kind, (flags & FD_CLOEXEC) ? " cloexec" : "");
    }
    char buf[256];
    ssize_t n = read(5, buf, sizeof buf - 1);
    if (n >= 0) {
        buf[n] = 0;
        printf("fd 5 says: %s", buf);
    }
    int fd = open("/dev/null", O_RDONLY);
    printf("first free fd is lowest: %s\n", fcntl(fd - 1, F_GETFD) >= 0 || fd == 0 ? "yes" : "no");
    return 0;
}
