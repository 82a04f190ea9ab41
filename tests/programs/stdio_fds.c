/* Offloaded fd calls: fstat, writev, lseek on a pipe/regular fd, isatty, stderr. */
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>

int main(void)
{
    struct stat st;
    if (fstat(1, &st) != 0) {
        perror("fstat");
        return 1;
    }
    printf("stdout is fifo or file or chr: %s\n",
           (S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) ? "yes" : "no");
    fflush(stdout);
    struct iovec iov[3] = {
        {"writev ", 7},
        {"in three ", 9},
        {"pieces\n", 7},
    };
    if (writev(1, iov, 3) != 23)
        return 2;
    errno = 0;
    if (fstat(97, &st) == 0 || errno != EBADF)
        return 3;
    printf("fstat(97): EBADF\n");
    errno = 0;
    if (syscall(SYS_fstat, 1, (void *)16) != -1 || errno != EFAULT)
        return 4;
    printf("fstat(bad pointer): EFAULT\n");
    fprintf(stderr, "this goes to stderr\n");
    return 0;
}
